// Engine build/serialize/load round trips, the C++ API, dynamic input shapes, the
// profiler, the timing cache, and a corpus of corrupted engine files that must all be
// rejected with an error (never a crash).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "anvil/anvil.hpp"
#include "cpu/reference.h"
#include "parser/onnx_parser.h"
#include "runtime/engine_format.h"
#include "runtime/kernel.h"

namespace fs = std::filesystem;

namespace {

const std::string kModel = std::string(ANVIL_SOURCE_DIR) + "/examples/models/tiny_cnn.onnx";

// Builds with a batch profile of 1..8 (opt 1) unless the caller gives shapes.
std::string buildEngine(const std::string& model, anvil::BuilderConfig cfg = {}, anvil::BuildReport* report = nullptr) {
  if (cfg.profiles.empty() && cfg.inputShapes.empty()) cfg.profiles["input"] = {{1, 1, 28, 28}, {1, 1, 28, 28}, {8, 1, 28, 28}};
  std::string bytes;
  anvil::Status s = anvil::Builder::buildFromOnnx(model, cfg, &bytes, report);
  EXPECT_TRUE(s.isOk()) << s.message();
  return bytes;
}

std::vector<float> input(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(0.f, 1.f);
  std::vector<float> x(size_t(n) * 28 * 28);
  for (float& v : x) v = d(rng);
  return x;
}

// Runs the engine on batch n; returns the probabilities.
std::vector<float> runEngine(const anvil::Engine& engine, const std::vector<float>& x, int n) {
  std::unique_ptr<anvil::ExecutionContext> ctx;
  EXPECT_TRUE(engine.createContext(&ctx).isOk());
  EXPECT_TRUE(ctx->setInputShape("input", {n, 1, 28, 28}).isOk());
  std::vector<float> y(size_t(n) * 10, -1.f);
  EXPECT_TRUE(ctx->setTensorAddress("input", const_cast<float*>(x.data())).isOk());
  EXPECT_TRUE(ctx->setTensorAddress("probs", y.data()).isOk());
  anvil::Status s = ctx->run();
  EXPECT_TRUE(s.isOk()) << s.message();
  return y;
}

// The reference interpreter on the parsed model: the oracle for engine runs.
std::vector<float> runReference(const std::vector<float>& x, int n) {
  auto model = anvil::parser::parseOnnxFile(kModel);
  anvil::ir::Tensor t(anvil::ir::DataType::kF32, {n, 1, 28, 28});
  std::memcpy(t.mutableRaw(), x.data(), x.size() * 4);
  auto out = anvil::cpu::Interpreter::run(*model.graph, {{"input", t}});
  return std::vector<float>(out[0].data<float>(), out[0].data<float>() + out[0].numel());
}

void expectNear(const std::vector<float>& a, const std::vector<float>& b, float tol = 1e-5f) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol) << "at " << i;
}

}  // namespace

// Layers that compute: all but the Reorders a blocked-layout region adds at its boundaries.
static size_t computeLayers(const anvil::Engine& e) {
  size_t n = 0;
  for (const auto& l : e.layers()) n += l.type != "anvil.Reorder";
  return n;
}

TEST(Engine, BuildSaveLoadRunMatchesReference) {
  anvil::BuildReport report;
  std::string bytes = buildEngine(kModel, {}, &report);
  EXPECT_GT(report.peakActivationBytes, 0u);
  fs::path path = fs::temp_directory_path() / "anvil_engine_test.engine";
  {
    std::ofstream f(path, std::ios::binary);
    f.write(bytes.data(), std::streamsize(bytes.size()));
  }
  std::shared_ptr<anvil::Engine> engine;
  ASSERT_TRUE(anvil::Engine::load(path.string(), &engine).isOk());
  ASSERT_EQ(engine->io().size(), 2u);
  EXPECT_TRUE(engine->io()[0].isInput);
  EXPECT_EQ(engine->io()[0].dims, (std::vector<int64_t>{-1, 1, 28, 28}));  // N stays dynamic
  EXPECT_EQ(engine->optShape("input"), (std::vector<int64_t>{1, 1, 28, 28}));
  // Level 3 fuses Conv+Relu and Gemm's epilogue: fewer layers than the model's 9 nodes
  // (not counting the Reorders a blocked-layout region adds at its boundaries).
  EXPECT_LT(computeLayers(*engine), 9u);
  EXPECT_GE(computeLayers(*engine), 5u);
  auto x = input(1, 1);
  expectNear(runEngine(*engine, x, 1), runReference(x, 1));
  fs::remove(path);
}

TEST(Engine, OptimizationLevelZeroKeepsEveryNode) {
  anvil::BuilderConfig cfg;
  cfg.optimizationLevel = 0;
  std::shared_ptr<anvil::Engine> engine;
  ASSERT_TRUE(anvil::Engine::fromBytes(buildEngine(kModel, cfg), &engine).isOk());
  EXPECT_EQ(computeLayers(*engine), 9u);  // every node is a layer
  auto x = input(2, 4);
  expectNear(runEngine(*engine, x, 2), runReference(x, 2));
}

TEST(Engine, DynamicBatchReplansAndMatches) {
  std::shared_ptr<anvil::Engine> engine;
  ASSERT_TRUE(anvil::Engine::fromBytes(buildEngine(kModel), &engine).isOk());
  std::unique_ptr<anvil::ExecutionContext> ctx;
  ASSERT_TRUE(engine->createContext(&ctx).isOk());
  for (int n : {3, 1, 5}) {
    auto x = input(n, uint32_t(n));
    ASSERT_TRUE(ctx->setInputShape("input", {n, 1, 28, 28}).isOk());
    std::vector<int64_t> dims;
    ASSERT_TRUE(ctx->getTensorShape("probs", &dims).isOk());
    EXPECT_EQ(dims, (std::vector<int64_t>{n, 10}));
    std::vector<float> y(size_t(n) * 10);
    ASSERT_TRUE(ctx->setTensorAddress("input", x.data()).isOk());
    ASSERT_TRUE(ctx->setTensorAddress("probs", y.data()).isOk());
    ASSERT_TRUE(ctx->run().isOk());
    expectNear(y, runReference(x, n));
  }
}

TEST(Engine, BadShapesAndNamesAreErrors) {
  std::shared_ptr<anvil::Engine> engine;
  ASSERT_TRUE(anvil::Engine::fromBytes(buildEngine(kModel), &engine).isOk());
  std::unique_ptr<anvil::ExecutionContext> ctx;
  ASSERT_TRUE(engine->createContext(&ctx).isOk());
  EXPECT_EQ(ctx->setInputShape("input", {1, 3, 28, 28}).code(), anvil::ErrorCode::kShapeMismatch);
  EXPECT_EQ(ctx->setInputShape("input", {1, 28, 28}).code(), anvil::ErrorCode::kShapeMismatch);
  EXPECT_EQ(ctx->setInputShape("nope", {1}).code(), anvil::ErrorCode::kInvalidArgument);
  EXPECT_EQ(ctx->setInputShape("probs", {1, 10}).code(), anvil::ErrorCode::kInvalidArgument);
  EXPECT_FALSE(ctx->run().isOk());  // no input buffer bound
  anvil::BuilderConfig cfg;
  cfg.inputShapes["input"] = {2, 3, 28, 28};
  std::string bytes;
  EXPECT_EQ(anvil::Builder::buildFromOnnx(kModel, cfg, &bytes).code(), anvil::ErrorCode::kShapeMismatch);
}

TEST(Engine, ProfilerSeesEveryLayer) {
  std::shared_ptr<anvil::Engine> engine;
  ASSERT_TRUE(anvil::Engine::fromBytes(buildEngine(kModel), &engine).isOk());
  std::unique_ptr<anvil::ExecutionContext> ctx;
  ASSERT_TRUE(engine->createContext(&ctx).isOk());
  std::vector<std::string> seen;
  ctx->setProfiler([&](const anvil::LayerTiming& t) {
    seen.push_back(t.name);
    EXPECT_GE(t.milliseconds, 0.0);
    EXPECT_FALSE(t.tactic.empty());
  });
  auto x = input(1, 9);
  ASSERT_TRUE(ctx->setTensorAddress("input", x.data()).isOk());
  ASSERT_TRUE(ctx->run().isOk());
  EXPECT_EQ(seen.size(), engine->layers().size());
  EXPECT_NE(ctx->outputData("probs"), nullptr);
  EXPECT_GT(ctx->activationBytes(), 0u);
}

TEST(Engine, SecondBuildWithTimingCacheTimesNothing) {
  fs::path cache = fs::temp_directory_path() / "anvil_engine_test.cache";
  fs::remove(cache);
  anvil::BuilderConfig cfg;
  cfg.timingCachePath = cache.string();
  anvil::BuildReport first, second;
  std::string a = buildEngine(kModel, cfg, &first);
  std::string b = buildEngine(kModel, cfg, &second);
  EXPECT_TRUE(fs::exists(cache));
  EXPECT_EQ(second.tacticsTimed, 0);
  EXPECT_EQ(second.tacticsFromCache, first.layersTuned);
  if (first.layersTuned > 0) {
    EXPECT_GT(first.tacticsTimed, first.layersTuned);  // >= 2 candidates each
  }
  EXPECT_EQ(a, b);  // same choices, same bytes
  // A corrupt cache is a clear error, not a crash.
  {
    std::ofstream f(cache);
    f << "{ not json";
  }
  std::string bytes;
  anvil::Status s = anvil::Builder::buildFromOnnx(kModel, cfg, &bytes);
  EXPECT_EQ(s.code(), anvil::ErrorCode::kIoError);
  fs::remove(cache);
}

TEST(Engine, ManyContextsManyThreadsIdentical) {
  std::shared_ptr<anvil::Engine> engine;
  ASSERT_TRUE(anvil::Engine::fromBytes(buildEngine(kModel), &engine).isOk());
  auto x = input(2, 5);
  const auto want = runEngine(*engine, x, 2);
  std::vector<int> mismatches(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      std::unique_ptr<anvil::ExecutionContext> ctx;
      if (!engine->createContext(&ctx).isOk()) {
        mismatches[size_t(t)] = -1;
        return;
      }
      std::vector<float> y(20);
      ctx->setInputShape("input", {2, 1, 28, 28});
      ctx->setTensorAddress("input", x.data());
      ctx->setTensorAddress("probs", y.data());
      for (int i = 0; i < 25; ++i) {
        if (!ctx->run().isOk() || std::memcmp(y.data(), want.data(), 80) != 0) ++mismatches[size_t(t)];
      }
    });
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

// Every mutation of a valid engine is rejected (or, for bytes the checksum cannot see,
// still loads and runs); nothing crashes. Mutations with a recomputed checksum reach the
// structural checks behind it.
TEST(Engine, CorruptedEngineCorpusIsRejected) {
  const std::string good = buildEngine(kModel);
  std::mt19937 rng(99);
  int rejected = 0, loaded = 0;
  auto tryLoad = [&](std::string bytes) {
    std::shared_ptr<anvil::Engine> e;
    anvil::Status s = anvil::Engine::fromBytes(std::move(bytes), &e);
    if (!s) {
      EXPECT_EQ(s.code(), anvil::ErrorCode::kInvalidEngine) << s.message();
      EXPECT_NE(s.message().find("invalid engine"), std::string::npos) << s.message();
      ++rejected;
      return;
    }
    ++loaded;
    std::unique_ptr<anvil::ExecutionContext> ctx;
    if (!e->createContext(&ctx).isOk()) return;
    std::vector<float> x(28 * 28, 0.5f), y(10);
    ctx->setTensorAddress("input", x.data());
    ctx->setTensorAddress("probs", y.data());
    (void)ctx->run();
  };
  auto rechecksum = [](std::string& b) {
    anvil::runtime::EngineHeader h;
    std::memcpy(&h, b.data(), sizeof h);
    h.checksum = anvil::runtime::engineChecksum(reinterpret_cast<const uint8_t*>(b.data()) + 64, b.size() - 64);
    std::memcpy(b.data(), &h, sizeof h);
  };
  anvil::runtime::EngineHeader h0;
  std::memcpy(&h0, good.data(), sizeof h0);
  for (int i = 0; i < 400; ++i) {
    std::string b = good;
    switch (i % 5) {
      case 0: b.resize(rng() % b.size()); break;                                      // truncated
      case 1: b[64 + rng() % (b.size() - 64)] ^= char(1 + rng() % 255); break;        // flipped (checksum)
      case 2: b[rng() % 64] ^= char(1 + rng() % 255); break;                          // header field
      case 3: {                                                                       // plan flip, valid checksum
        b[64 + rng() % h0.planBytes] ^= char(1 + rng() % 255);
        rechecksum(b);
        break;
      }
      case 4: b.append(1 + rng() % 100, char(rng())); break;                          // trailing garbage
    }
    if (b == good) continue;
    tryLoad(b);
  }
  EXPECT_GT(rejected, 300);
  std::cout << "corrupted engines: " << rejected << " rejected, " << loaded << " loaded (plan bytes the checks accept)\n";
}

// Every single-byte edit of the plan, with a valid checksum, is rejected or loads and runs
// without a crash. The random corpus above found two holes only now and then (the engine
// differs with the tactics the builder times): a node output left without an arena slot
// for a kernel that does not allocate its outputs, and a step's params moved onto other
// bytes of the weights section (caught by the step seal).
TEST(Engine, EveryPlanByteEditIsRejectedOrRunsSafely) {
  const std::string good = buildEngine(kModel);
  anvil::runtime::EngineHeader h0;
  std::memcpy(&h0, good.data(), sizeof h0);
  int rejected = 0, loaded = 0, sealed = 0;
  std::vector<float> x(28 * 28, 0.5f), y(10);
  for (uint64_t off = 0; off < h0.planBytes; ++off)
    for (unsigned char mask : {0x01, 0x80, 0xff}) {
      std::string b = good;
      b[64 + off] ^= char(mask);
      anvil::runtime::EngineHeader h = h0;
      h.checksum = anvil::runtime::engineChecksum(reinterpret_cast<const uint8_t*>(b.data()) + 64, b.size() - 64);
      std::memcpy(b.data(), &h, sizeof h);
      std::shared_ptr<anvil::Engine> e;
      anvil::Status s = anvil::Engine::fromBytes(std::move(b), &e);
      if (!s) {
        EXPECT_EQ(s.code(), anvil::ErrorCode::kInvalidEngine) << s.message();
        sealed += s.message().find("does not match its seal") != std::string::npos;
        ++rejected;
        continue;
      }
      ++loaded;
      std::unique_ptr<anvil::ExecutionContext> ctx;
      if (!e->createContext(&ctx).isOk()) continue;
      ctx->setTensorAddress("input", x.data());
      ctx->setTensorAddress("probs", y.data());
      (void)ctx->run();
    }
  EXPECT_GT(sealed, 0);
  std::cout << "plan byte edits: " << rejected << " rejected (" << sealed << " by a step seal), " << loaded
            << " loaded\n";
}

TEST(Engine, WrongVersionAndTargetAreRejected) {
  const std::string good = buildEngine(kModel);
  auto reject = [](std::string b, const std::string& what) {
    std::shared_ptr<anvil::Engine> e;
    anvil::Status s = anvil::Engine::fromBytes(std::move(b), &e);
    EXPECT_FALSE(s.isOk());
    EXPECT_NE(s.message().find(what), std::string::npos) << s.message();
  };
  std::string v = good;
  anvil::runtime::EngineHeader h;
  std::memcpy(&h, v.data(), sizeof h);
  h.formatVersion = 99;
  std::memcpy(v.data(), &h, sizeof h);
  reject(v, "format version 99, this runtime reads version 3 (rebuild the engine)");
  // A plan for another device or a CPU feature this machine lacks.
  anvil::runtime::Plan plan = anvil::runtime::deserializeEngine(anvil::runtime::engineBytesFromString(good));
  plan.device = "cuda:sm_90";
  reject(anvil::runtime::serializeEngine(plan), "targets device 'cuda:sm_90'");
  plan.device = "cpu";
  plan.requirements = {"avx512fp16_imaginary"};
  reject(anvil::runtime::serializeEngine(plan), "needs host feature 'avx512fp16_imaginary'");
  plan.requirements.clear();
  auto renamed = plan;
  renamed.steps[0].kernel = "no_such_tactic";
  reject(anvil::runtime::serializeEngine(renamed), "no_such_tactic");
  auto bumped = plan;
  bumped.steps[0].kernelVersion = 999;
  reject(anvil::runtime::serializeEngine(bumped), "version 999");
  // The unchanged plan still serializes to a working engine (prepared blobs survive).
  std::shared_ptr<anvil::Engine> again;
  ASSERT_TRUE(anvil::Engine::fromBytes(anvil::runtime::serializeEngine(plan), &again).isOk());
  std::shared_ptr<anvil::Engine> e;
  anvil::Status s = anvil::Engine::load("/nonexistent/x.engine", &e);
  EXPECT_EQ(s.code(), anvil::ErrorCode::kIoError);
}

// A shape outside the profile is a clear error that names the input and the range.
TEST(Engine, ShapeOutsideProfileIsRejected) {
  std::shared_ptr<anvil::Engine> engine;
  ASSERT_TRUE(anvil::Engine::fromBytes(buildEngine(kModel), &engine).isOk());
  EXPECT_EQ(engine->profile("input").max, (std::vector<int64_t>{8, 1, 28, 28}));
  std::unique_ptr<anvil::ExecutionContext> ctx;
  ASSERT_TRUE(engine->createContext(&ctx).isOk());
  anvil::Status s = ctx->setInputShape("input", {9, 1, 28, 28});
  EXPECT_EQ(s.code(), anvil::ErrorCode::kShapeMismatch);
  EXPECT_NE(s.message().find("outside the engine's profile [1, 8]"), std::string::npos) << s.message();
  EXPECT_TRUE(ctx->setInputShape("input", {8, 1, 28, 28}).isOk());
}

// Steps are prepared kernels: every layer names its kernel and version, views run no
// kernel, and two contexts own their own executors.
TEST(Engine, LayersDescribePreparedSteps) {
  std::shared_ptr<anvil::Engine> engine;
  ASSERT_TRUE(anvil::Engine::fromBytes(buildEngine(kModel), &engine).isOk());
  bool sawView = false;
  for (const auto& l : engine->layers()) {
    EXPECT_FALSE(l.tactic.empty());
    EXPECT_GE(l.tacticVersion, 1);
    EXPECT_GE(l.candidates, 1);
    EXPECT_EQ(l.timed, l.candidates > 1);
    sawView |= l.tactic == "view";
  }
  EXPECT_TRUE(sawView);  // Flatten aliases its input
  std::unique_ptr<anvil::ExecutionContext> a, b;
  ASSERT_TRUE(engine->createContext(&a, anvil::ContextOptions{2}).isOk());
  ASSERT_TRUE(engine->createContext(&b, anvil::ContextOptions{1}).isOk());
  EXPECT_EQ(a->threads(), 2);
  EXPECT_EQ(b->threads(), 1);
}

namespace {
// A Relu kernel that serves batch 1 only, registered by the tests below (once per process).
void registerBatchOneRelu() {
  static bool done = [] {
    anvil::runtime::Kernel k;
    k.name = "test_relu_batch1_only";
    k.version = 1;
    k.op = "Relu";
    k.supports = [](const anvil::ir::Node&, const std::vector<anvil::ir::TensorType>& types) {
      return types[0].shape.isStatic() && types[0].shape.rank() > 0 && types[0].shape[0].value() == 1;
    };
    k.run = [](const anvil::runtime::StepArgs& a) {
      const float* x = a.in(0).as<float>();
      float* y = a.out(0).as<float>();
      for (int64_t i = 0; i < a.in(0).numel(); ++i) y[i] = x[i] > 0 ? x[i] : 0;
    };
    anvil::runtime::Kernels::instance().add(std::move(k));
    return true;
  }();
  (void)done;
}

int reluCandidates(const anvil::Engine& e) {
  for (const auto& l : e.layers())
    if (l.type == "Relu") return l.candidates;
  return -1;
}
}  // namespace

// A kernel is a candidate only if it serves the profile's min, opt and max shapes.
TEST(Engine, KernelsMustServeTheWholeProfile) {
  registerBatchOneRelu();
  anvil::BuilderConfig fixed;
  fixed.optimizationLevel = 0;  // keep the Relu nodes
  fixed.blockedLayouts = anvil::BuilderConfig::BlockedLayouts::kNever;  // the row-major Relu kernels
  fixed.inputShapes["input"] = {1, 1, 28, 28};
  anvil::BuilderConfig ranged = fixed;
  ranged.inputShapes.clear();
  ranged.profiles["input"] = {{1, 1, 28, 28}, {1, 1, 28, 28}, {4, 1, 28, 28}};
  std::shared_ptr<anvil::Engine> a, b;
  ASSERT_TRUE(anvil::Engine::fromBytes(buildEngine(kModel, fixed), &a).isOk());
  ASSERT_TRUE(anvil::Engine::fromBytes(buildEngine(kModel, ranged), &b).isOk());
  EXPECT_EQ(reluCandidates(*a), reluCandidates(*b) + 1);
  for (const auto& l : b->layers()) EXPECT_NE(l.tactic, "test_relu_batch1_only");
  // And the ranged engine runs every batch of its profile.
  for (int n : {1, 3, 4}) {
    auto x = input(n, uint32_t(10 + n));
    expectNear(runEngine(*b, x, n), runReference(x, n));
  }
}

// The timing cache is keyed by the candidates' names and versions: a new kernel is timed on
// the next build instead of being hidden by an old cache entry.
TEST(Engine, TimingCacheRetimesWhenKernelsChange) {
  fs::path cache = fs::temp_directory_path() / "anvil_engine_test_versions.cache";
  fs::remove(cache);
  anvil::BuilderConfig cfg;
  cfg.optimizationLevel = 0;
  cfg.inputShapes["input"] = {1, 1, 28, 28};
  cfg.timingCachePath = cache.string();
  anvil::BuildReport first, second, third;
  buildEngine(kModel, cfg, &first);
  buildEngine(kModel, cfg, &second);
  EXPECT_EQ(second.tacticsTimed, 0);
  anvil::runtime::Kernel k;  // a kernel no earlier build has seen
  k.name = "test_relu_cache_probe";
  k.op = "Relu";
  k.run = [](const anvil::runtime::StepArgs& a) {
    const float* x = a.in(0).as<float>();
    float* y = a.out(0).as<float>();
    for (int64_t i = 0; i < a.in(0).numel(); ++i) y[i] = x[i] > 0 ? x[i] : 0;
  };
  anvil::runtime::Kernels::instance().add(std::move(k));
  buildEngine(kModel, cfg, &third);
  EXPECT_GT(third.tacticsTimed, 0);  // the Relu layers meet a new candidate
  fs::remove(cache);
}
