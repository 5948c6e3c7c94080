// The precision guard (codegen/precision_guard.h): a build whose layers took INT8 by their
// own times is timed whole against the FP32 engine, and the faster is kept. The layers'
// choice is made deterministic with a timing cache written by the test (INT8 candidates
// 0.01 ms, every other 1 ms), and the whole-engine times come from a timer the test gives,
// so each branch of the choice is the arithmetic on known numbers; one build also runs the
// guard's real alternating timing.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "anvil/anvil.hpp"
#include "codegen/precision_guard.h"
#include "tests/onnx_writer.h"

namespace fs = std::filesystem;

namespace {

// x [1, C, 16, 16] -> Conv c1 (1x1, 2C) -> Relu -> Conv c2 (1x1, C) -> y.
std::string writeModel(int64_t c = 32, const std::string& name = "anvil_precision_guard.onnx") {
  anvil::test::OnnxWriter w;
  w.input("x", {1, c, 16, 16});
  w.output("y", {1, c, 16, 16});
  w.weight("w1", {2 * c, c, 1, 1}, 21u, 0.3f);
  w.weight("w2", {c, 2 * c, 1, 1}, 22u, 0.3f);
  w.node("Conv", "c1", {"x", "w1"}, "a1");
  w.node("Relu", "r1", {"a1"}, "b1");
  w.node("Conv", "c2", {"b1", "w2"}, "y");
  return w.save(name);
}

// Every INT8 candidate 0.01 ms, every other 1 ms: both convolutions take INT8 by cost.
void favourInt8(const fs::path& cache) {
  nlohmann::json j;
  {
    std::ifstream f(cache);
    j = nlohmann::json::parse(f);
  }
  for (auto& [key, e] : j.at("entries").items()) {
    for (auto& [name, t] : e.at("ms").items()) t = name.rfind("i8_", 0) == 0 ? 0.01 : 1.0;
    std::string best;
    double bestMs = 1e30;
    for (auto& [name, t] : e.at("ms").items())
      if (t.get<double>() < bestMs) best = name, bestMs = t.get<double>();
    e["best"] = best;
  }
  std::ofstream(cache) << j.dump(1);
}

struct Fixture {
  std::string model;
  fs::path cache;
  anvil::BuilderConfig cfg;
};

// Populates the cache (a build with the guard off) and makes INT8 win every layer's choice.
Fixture prepare(const std::string& cacheName) {
  Fixture f;
  f.model = writeModel();
  f.cache = fs::temp_directory_path() / cacheName;
  fs::remove(f.cache);
  f.cfg.int8 = true;
  f.cfg.timingIterations = 1;
  f.cfg.timingCachePath = f.cache.string();
  f.cfg.threads = 1;
  anvil::BuilderConfig off = f.cfg;
  off.precisionGuard = false;
  std::string bytes;
  anvil::BuildReport r;
  const anvil::Status s = anvil::Builder::buildFromOnnx(f.model, off, &bytes, &r);
  EXPECT_TRUE(s.isOk()) << s.message();
  favourInt8(f.cache);
  return f;
}

int countPrecision(const std::string& bytes, const std::string& p) {
  std::shared_ptr<anvil::Engine> e;
  EXPECT_TRUE(anvil::Engine::fromBytes(bytes, &e).isOk());
  int n = 0;
  if (e)
    for (const anvil::LayerInfo& l : e->layers()) n += l.precision == p;
  return n;
}

// The build the guard starts from: INT8 by cost, the guard itself not run yet.
std::string reducedBuild(const Fixture& f, anvil::BuildReport* r) {
  anvil::BuilderConfig c = f.cfg;
  c.precisionGuard = false;
  std::string bytes;
  const anvil::Status s = anvil::Builder::buildFromOnnx(f.model, c, &bytes, r);
  EXPECT_TRUE(s.isOk()) << s.message();
  EXPECT_EQ(r->guardReducedMs, -1);  // off: not run
  EXPECT_EQ(countPrecision(bytes, "i8"), 2);
  return bytes;
}

TEST(PrecisionGuard, KeepsTheFp32EngineWhereItRunsFasterWhole) {
  const Fixture f = prepare("anvil_precision_guard_a.json");
  anvil::BuildReport r;
  std::string bytes = reducedBuild(f, &r);
  std::string seenReduced, seenF32;
  anvil::codegen::guardPrecision(f.model, f.cfg, &bytes, &r, [&](const std::string& a, const std::string& b) {
    seenReduced = a, seenF32 = b;
    return std::make_pair(2.0, 1.5);
  });
  EXPECT_EQ(countPrecision(seenReduced, "i8"), 2);  // the timer saw the reduced engine first
  EXPECT_EQ(countPrecision(seenF32, "i8"), 0);
  EXPECT_EQ(bytes, seenF32);  // and the FP32 engine is the one built
  EXPECT_EQ(countPrecision(bytes, "i8"), 0);
  EXPECT_TRUE(r.guardKeptF32);
  EXPECT_EQ(r.guardReducedMs, 2.0);
  EXPECT_EQ(r.guardF32Ms, 1.5);
  EXPECT_EQ(r.layersByPrecision.count("i8"), 0u);  // the report describes the engine kept
  EXPECT_EQ(r.layersByPrecision.at("f32"), 2);
  bool warned = false;
  for (const std::string& w : r.warnings) warned |= w.find("FP32 engine ran faster whole") != std::string::npos;
  EXPECT_TRUE(warned);
  bool logged = false;
  for (const std::string& l : r.passLog) logged |= l.find("precision guard") != std::string::npos;
  EXPECT_TRUE(logged);
  fs::remove(f.cache);
}

TEST(PrecisionGuard, KeepsTheReducedEngineWhereItIsFaster) {
  const Fixture f = prepare("anvil_precision_guard_b.json");
  anvil::BuildReport r;
  std::string bytes = reducedBuild(f, &r);
  const std::string before = bytes;
  anvil::codegen::guardPrecision(f.model, f.cfg, &bytes, &r,
                                 [](const std::string&, const std::string&) { return std::make_pair(1.0, 1.2); });
  EXPECT_EQ(bytes, before);
  EXPECT_FALSE(r.guardKeptF32);
  EXPECT_EQ(r.guardReducedMs, 1.0);
  EXPECT_EQ(r.guardF32Ms, 1.2);
  EXPECT_EQ(r.layersByPrecision.at("i8"), 2);
  // A tie keeps FP32: the reduced engine must be faster to be worth its error.
  anvil::codegen::guardPrecision(f.model, f.cfg, &bytes, &r,
                                 [](const std::string&, const std::string&) { return std::make_pair(1.0, 1.0); });
  EXPECT_TRUE(r.guardKeptF32);
  EXPECT_EQ(countPrecision(bytes, "i8"), 0);
  fs::remove(f.cache);
}

// Through Builder::buildFromOnnx with the real timing: the guard runs by default, measures
// both engines, and the engine built is the faster of the two it measured.
TEST(PrecisionGuard, RunsByDefaultAndKeepsTheFasterEngine) {
  const Fixture f = prepare("anvil_precision_guard_c.json");
  std::string bytes;
  anvil::BuildReport r;
  const anvil::Status s = anvil::Builder::buildFromOnnx(f.model, f.cfg, &bytes, &r);
  ASSERT_TRUE(s.isOk()) << s.message();
  EXPECT_GT(r.guardReducedMs, 0);
  EXPECT_GT(r.guardF32Ms, 0);
  EXPECT_EQ(r.guardKeptF32, r.guardF32Ms <= r.guardReducedMs);
  EXPECT_EQ(countPrecision(bytes, "i8"), r.guardKeptF32 ? 0 : 2);
  fs::remove(f.cache);
}

// Not run where no layer chose by cost (every layer forced to INT8 by the user), nor for a
// build without reduced precisions.
TEST(PrecisionGuard, OnlyWhereLayersChoseByCost) {
  const Fixture f = prepare("anvil_precision_guard_d.json");
  anvil::BuilderConfig forced = f.cfg;
  forced.layerPrecisions["*"] = anvil::DataType::kI8;
  std::string bytes;
  anvil::BuildReport r;
  ASSERT_TRUE(anvil::Builder::buildFromOnnx(f.model, forced, &bytes, &r).isOk());
  EXPECT_EQ(r.guardReducedMs, -1);
  EXPECT_EQ(countPrecision(bytes, "i8"), 2);
  bool said = false;
  for (const std::string& l : r.passLog) said |= l.find("precision guard: no layer took") != std::string::npos;
  EXPECT_TRUE(said);

  anvil::BuilderConfig f32 = f.cfg;
  f32.int8 = false;
  EXPECT_FALSE(anvil::codegen::precisionGuardApplies(f32));
  anvil::BuilderConfig autoP = f.cfg;
  autoP.autoPrecision = true;
  EXPECT_FALSE(anvil::codegen::precisionGuardApplies(autoP));
  anvil::BuilderConfig gpu = f.cfg;
  gpu.device = anvil::Device::kCUDA;
  EXPECT_FALSE(anvil::codegen::precisionGuardApplies(gpu));
  EXPECT_TRUE(anvil::codegen::precisionGuardApplies(f.cfg));
  fs::remove(f.cache);
}

// The alternating timer itself: an engine of 16x the work (channels 4x) measures longer
// than the small one, whichever side it is on.
TEST(PrecisionGuard, AlternatingTimerMediansFollowTheWork) {
  anvil::BuilderConfig c;
  c.threads = 1;
  c.timingIterations = 1;
  std::string small, big;
  anvil::BuildReport r;
  ASSERT_TRUE(anvil::Builder::buildFromOnnx(writeModel(32, "anvil_precision_guard_s.onnx"), c, &small, &r).isOk());
  ASSERT_TRUE(anvil::Builder::buildFromOnnx(writeModel(128, "anvil_precision_guard_l.onnx"), c, &big, &r).isOk());
  std::map<std::string, anvil::ir::Tensor> in32, in128;
  in32.emplace("x", anvil::ir::Tensor(anvil::ir::DataType::kF32, {1, 32, 16, 16}));
  in128.emplace("x", anvil::ir::Tensor(anvil::ir::DataType::kF32, {1, 128, 16, 16}));
  std::shared_ptr<anvil::Engine> es, el;
  ASSERT_TRUE(anvil::Engine::fromBytes(small, &es).isOk() && anvil::Engine::fromBytes(big, &el).isOk());
  // Each engine on its own inputs: two contexts of one engine per call.
  const auto a = anvil::codegen::timeEnginesAlternating(*es, *es, 1, in32, 15, 100);
  const auto b = anvil::codegen::timeEnginesAlternating(*el, *el, 1, in128, 15, 100);
  EXPECT_GT(a.first, 0);
  EXPECT_GT(a.second, 0);
  EXPECT_GT(b.first, 2 * a.first);
  EXPECT_GT(b.second, 2 * a.second);
}

}  // namespace
