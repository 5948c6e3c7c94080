// The builder's timing of CPU candidates (codegen/builder.cpp): alternating rounds, one run
// of each candidate in turn after one warm-up each, so that load from other processes
// falls on all of them alike; a fast candidate (warm-up under 0.25 ms) runs once more,
// untimed, before each timed run, to find its data in cache again as in the engine; the
// winner still computes the right thing. A kernel that names splits of its work into tasks
// (Kernel::taskSplits) is timed once per split, and the engine keeps the split it chose.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <time.h>

#include "anvil/anvil.hpp"
#include "cpu/tactics.h"
#include "runtime/clock.h"
#include "runtime/kernel.h"
#include "tests/onnx_writer.h"

namespace fs = std::filesystem;

namespace {

std::mutex gLogMu;
std::vector<char> gLog;  // which test kernel ran, in order

void softsign(const anvil::runtime::StepArgs& a, char who) {
  {
    std::lock_guard<std::mutex> lk(gLogMu);
    gLog.push_back(who);
  }
  // c is a slow candidate: its warm-up takes over 0.25 ms, so it gets no re-warm run. It
  // spins rather than sleeps: one-thread candidates are timed in the thread's CPU time.
  if (who == 'c') {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(300);
    while (std::chrono::steady_clock::now() < until) {
    }
  }
  const float* x = a.in(0).as<float>();
  float* y = a.out(0).as<float>();
  for (int64_t i = 0; i < a.in(0).numel(); ++i) y[i] = x[i] / (1.0f + std::fabs(x[i]));
}

void registerOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (char who : {'a', 'b', 'c'}) {
      anvil::runtime::Kernel k;
      k.name = std::string("test_softsign_interleave_") + who;
      k.op = "Softsign";
      k.precision = anvil::ir::DataType::kF32;
      k.supports = [](const anvil::ir::Node&, const std::vector<anvil::ir::TensorType>& in) {
        return in.size() == 1 && in[0].dtype == anvil::ir::DataType::kF32;
      };
      k.run = [who](const anvil::runtime::StepArgs& a) { softsign(a, who); };
      anvil::runtime::Kernels::instance().add(std::move(k));
    }
  });
}

// Two more Softsign candidates that differ only in how they spend their time: "sleeper"
// waits 20 ms off the CPU (what time slices lost to other processes look like from the
// kernel's thread), "spinner" computes for 1 ms of its thread's CPU time.
void registerClockKernels() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (bool sleeps : {true, false}) {
      anvil::runtime::Kernel k;
      k.name = sleeps ? "test_softsign_clock_sleeper" : "test_softsign_clock_spinner";
      k.op = "Softsign";
      k.precision = anvil::ir::DataType::kF32;
      k.supports = [](const anvil::ir::Node&, const std::vector<anvil::ir::TensorType>& in) {
        return in.size() == 1 && in[0].dtype == anvil::ir::DataType::kF32;
      };
      k.run = [sleeps](const anvil::runtime::StepArgs& a) {
        if (sleeps) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        } else {
          const double until = anvil::runtime::threadCpuMs() + 1.0;
          while (anvil::runtime::threadCpuMs() < until) {
          }
        }
        const float* x = a.in(0).as<float>();
        float* y = a.out(0).as<float>();
        for (int64_t i = 0; i < a.in(0).numel(); ++i) y[i] = x[i] / (1.0f + std::fabs(x[i]));
      };
      anvil::runtime::Kernels::instance().add(std::move(k));
    }
  });
}

// x [1, 37] -> Softsign -> y.
std::string writeModel() {
  anvil::test::OnnxWriter w;
  w.input("x", {1, 37});
  w.output("y", {1, 37});
  w.node("Softsign", "softsign", {"x"}, "y");
  return w.save("anvil_tuning_order_softsign.onnx");
}

TEST(TuningOrder, CpuCandidatesAlternate) {
  registerOnce();
  const std::string model = writeModel();
  anvil::BuilderConfig cfg;
  cfg.optimizationLevel = 0;
  cfg.timingIterations = 5;
  {
    std::lock_guard<std::mutex> lk(gLogMu);
    gLog.clear();
  }
  std::string bytes;
  anvil::BuildReport report;
  anvil::Status s = anvil::Builder::buildFromOnnx(model, cfg, &bytes, &report);
  ASSERT_TRUE(s.isOk()) << s.message();
  std::vector<char> log;
  {
    std::lock_guard<std::mutex> lk(gLogMu);
    log = gLog;
  }
  // One warm-up each, then 5 rounds of a, b, c in turn (other Softsign kernels of the
  // runtime interleave with them but do not log), the fast a and b twice a round (an
  // untimed re-warm run, then the timed one), the slow c once: abc aabbc aabbc ...
  std::string got(log.begin(), log.end()), want = "abc";
  for (int r = 0; r < 5; ++r) want += "aabbc";
  EXPECT_EQ(got, want);
  EXPECT_GE(report.tacticsTimed, 3);

  // Whichever won, the engine computes Softsign.
  std::shared_ptr<anvil::Engine> e;
  ASSERT_TRUE(anvil::Engine::fromBytes(std::move(bytes), &e).isOk());
  std::unique_ptr<anvil::ExecutionContext> ctx;
  ASSERT_TRUE(e->createContext(&ctx).isOk());
  std::vector<float> x(37), y(37, -7.f);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-4.f, 4.f);
  for (float& v : x) v = d(rng);
  ASSERT_TRUE(ctx->setTensorAddress("x", x.data()).isOk());
  ASSERT_TRUE(ctx->setTensorAddress("y", y.data()).isOk());
  ASSERT_TRUE(ctx->run().isOk());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], x[i] / (1.f + std::fabs(x[i])), 1e-6f) << i;
  fs::remove(model);
}

// A one-thread build times its candidates in the thread's CPU time, so the sleeper (20 ms of
// wall clock, next to no CPU) times faster than the spinner (1 ms of CPU); a build with a
// worker thread times on the wall clock, and the spinner is the faster. Read back from the
// timing cache, which records every candidate's milliseconds.
TEST(TuningOrder, OneThreadBuildsTimeInThreadCpuTime) {
  registerClockKernels();
  const std::string model = writeModel();
  auto timings = [&](int threads) {
    const fs::path cache = fs::temp_directory_path() / ("anvil_tuning_clock_" + std::to_string(threads) + ".json");
    fs::remove(cache);
    anvil::BuilderConfig cfg;
    cfg.optimizationLevel = 0;
    cfg.timingIterations = 3;
    cfg.threads = threads;
    cfg.timingCachePath = cache.string();
    std::string bytes;
    anvil::BuildReport report;
    const anvil::Status s = anvil::Builder::buildFromOnnx(model, cfg, &bytes, &report);
    EXPECT_TRUE(s.isOk()) << s.message();
    std::map<std::string, double> ms;
    std::ifstream f(cache);
    const nlohmann::json j = nlohmann::json::parse(f);
    for (const auto& [key, e] : j.at("entries").items())
      for (const auto& [name, t] : e.at("ms").items()) ms[name] = t.get<double>();
    fs::remove(cache);
    return ms;
  };
  std::map<std::string, double> one = timings(1), two = timings(2);
  ASSERT_TRUE(one.count("test_softsign_clock_sleeper") && one.count("test_softsign_clock_spinner"));
  ASSERT_TRUE(two.count("test_softsign_clock_sleeper") && two.count("test_softsign_clock_spinner"));
  EXPECT_LT(one["test_softsign_clock_sleeper"], 0.5);
  EXPECT_GE(one["test_softsign_clock_spinner"], 0.99);
  EXPECT_GE(two["test_softsign_clock_sleeper"], 19.9);
  EXPECT_LT(two["test_softsign_clock_spinner"], two["test_softsign_clock_sleeper"]);
  fs::remove(model);
}

// A kernel that names splits of its work (Kernel::taskSplits) is offered once per split, each
// prepared with PrepareInfo::tasks and timed under its own name (kernel/tasks=N); the engine
// keeps the winner's split and reports it (LayerInfo::tasks, after the bytes were loaded).
// A one-task run of "test_softsign_split" spins 2 ms, so its one-task split never wins.
TEST(TuningOrder, TaskSplitsAreTimedAndTheChosenOneKept) {
  static std::once_flag once;
  std::call_once(once, [] {
    anvil::runtime::Kernel k;
    k.name = "test_softsign_split";
    k.op = "Softsign";
    k.precision = anvil::ir::DataType::kF32;
    k.supports = [](const anvil::ir::Node&, const std::vector<anvil::ir::TensorType>& in) {
      return in.size() == 1 && in[0].dtype == anvil::ir::DataType::kF32;
    };
    k.taskSplits = [](const anvil::runtime::PrepareInfo& info) {
      return info.threads >= 2 ? std::vector<int>{1, info.threads} : std::vector<int>{};
    };
    k.prepare = [](const anvil::runtime::PrepareInfo& info, anvil::runtime::Prepared* out) {
      out->setParams(int32_t(info.tasks));
    };
    k.run = [](const anvil::runtime::StepArgs& a) {
      if (a.paramsAs<int32_t>() == 1) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
        while (std::chrono::steady_clock::now() < until) {
        }
      }
      const float* x = a.in(0).as<float>();
      float* y = a.out(0).as<float>();
      for (int64_t i = 0; i < a.in(0).numel(); ++i) y[i] = x[i] / (1.0f + std::fabs(x[i]));
    };
    anvil::runtime::Kernels::instance().add(std::move(k));
  });
  const std::string model = writeModel();
  for (int threads : {1, 2}) {
    const fs::path cache = fs::temp_directory_path() / ("anvil_tuning_split_" + std::to_string(threads) + ".json");
    fs::remove(cache);
    anvil::BuilderConfig cfg;
    cfg.optimizationLevel = 0;
    cfg.timingIterations = 3;
    cfg.threads = threads;
    cfg.timingCachePath = cache.string();
    std::string bytes;
    anvil::BuildReport report;
    ASSERT_TRUE(anvil::Builder::buildFromOnnx(model, cfg, &bytes, &report).isOk());
    std::map<std::string, double> ms;
    {
      std::ifstream f(cache);
      const nlohmann::json j = nlohmann::json::parse(f);
      for (const auto& [key, e] : j.at("entries").items())
        for (const auto& [name, t] : e.at("ms").items()) ms[name] = t.get<double>();
    }
    fs::remove(cache);
    std::shared_ptr<anvil::Engine> e;
    ASSERT_TRUE(anvil::Engine::fromBytes(std::move(bytes), &e).isOk());
    const auto layers = e->layers();
    ASSERT_EQ(layers.size(), 1u);
    const anvil::LayerInfo& l = layers[0];
    if (threads == 1) {  // nothing to split: one candidate under the kernel's own name
      EXPECT_TRUE(ms.count("test_softsign_split"));
      EXPECT_FALSE(ms.count("test_softsign_split/tasks=1"));
      EXPECT_EQ(l.tasks, 0);
      continue;
    }
    ASSERT_TRUE(ms.count("test_softsign_split/tasks=1") && ms.count("test_softsign_split/tasks=2"));
    EXPECT_FALSE(ms.count("test_softsign_split"));
    EXPECT_GE(ms["test_softsign_split/tasks=1"], 1.9);
    EXPECT_LT(ms["test_softsign_split/tasks=2"], ms["test_softsign_split/tasks=1"]);
    EXPECT_TRUE(l.timed);
    if (l.tactic == "test_softsign_split") {
      EXPECT_EQ(l.tasks, 2);
    }
    EXPECT_FALSE(l.tactic == "test_softsign_split" && l.tasks == 1);
    // The chosen split is in the step's params: the engine runs it and computes Softsign.
    std::unique_ptr<anvil::ExecutionContext> ctx;
    ASSERT_TRUE(e->createContext(&ctx).isOk());
    std::vector<float> x(37), y(37, -7.f);
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(i) * 0.25f - 4.f;
    ASSERT_TRUE(ctx->setTensorAddress("x", x.data()).isOk());
    ASSERT_TRUE(ctx->setTensorAddress("y", y.data()).isOk());
    ASSERT_TRUE(ctx->run().isOk());
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], x[i] / (1.f + std::fabs(x[i])), 1e-6f) << i;
  }
  fs::remove(model);
}

// x [1, 64, 8, 8] -> 1x1 Conv (96 outputs) -> y: 786432 flops, in the window where the
// native Conv kernels name splits at 2 threads (cpu/tactics/task_split.h).
std::string writeConvModel() {
  anvil::test::OnnxWriter w;
  w.input("x", {1, 64, 8, 8});
  w.output("y", {1, 96, 8, 8});
  w.weight("w", {96, 64, 1, 1}, 37u, 0.5f);
  w.node("Conv", "conv", {"x", "w"}, "y");
  return w.save("anvil_tuning_split_conv.onnx");
}

// The native Conv kernels at 2 threads: each offered as one task and as two, the engine's
// Conv step chosen among them by time, its split reported; at 1 thread no split is named.
TEST(TuningOrder, NativeConvSplitsAreTimedInTheWindow) {
  const std::string model = writeConvModel();
  for (int threads : {1, 2}) {
    const fs::path cache = fs::temp_directory_path() / ("anvil_tuning_split_conv_" + std::to_string(threads) + ".json");
    fs::remove(cache);
    anvil::BuilderConfig cfg;
    cfg.timingIterations = 3;
    cfg.threads = threads;
    cfg.blockedLayouts = anvil::BuilderConfig::BlockedLayouts::kNever;
    cfg.timingCachePath = cache.string();
    std::string bytes;
    anvil::BuildReport report;
    ASSERT_TRUE(anvil::Builder::buildFromOnnx(model, cfg, &bytes, &report).isOk());
    int one = 0, two = 0, plain = 0;
    {
      std::ifstream f(cache);
      const nlohmann::json j = nlohmann::json::parse(f);
      for (const auto& [key, e] : j.at("entries").items())
        for (const auto& [name, t] : e.at("ms").items()) {
          const bool native = name.rfind("f32_conv2d_rows_6x16__avx2", 0) == 0;
          one += native && name.find("/tasks=1") != std::string::npos;
          two += native && name.find("/tasks=2") != std::string::npos;
          plain += name == "f32_conv2d_rows_6x16__avx2";
        }
    }
    fs::remove(cache);
    std::shared_ptr<anvil::Engine> e;
    ASSERT_TRUE(anvil::Engine::fromBytes(std::move(bytes), &e).isOk());
    const anvil::LayerInfo* conv = nullptr;
    for (const auto& l : e->layers())
      if (l.type == "Conv") conv = &l;
    ASSERT_NE(conv, nullptr);
    if (threads == 1) {
      EXPECT_EQ(one + two, 0);
      EXPECT_EQ(plain, 1);
      EXPECT_EQ(conv->tasks, 0);
    } else {
      EXPECT_EQ(one, 1);
      EXPECT_EQ(two, 1);
      EXPECT_EQ(plain, 0);
      EXPECT_TRUE(conv->timed);
      // Every f32 kernel of a 1x1 Conv over 64 pixels names its splits: the step keeps one.
      EXPECT_TRUE(conv->tasks == 1 || conv->tasks == 2) << conv->tactic << " tasks=" << conv->tasks;
    }
  }
  fs::remove(model);
}

// Where the model's weights exceed one core's L2, the timed runs of a step whose weights
// outweigh its activations follow an eviction of the caches near the cores (so that its
// weights come from L3 or memory, as in the engine, not from the L2 its previous run left
// them in): the build log says so and the timing cache keeps such builds' timings apart
// ("weights=cold" in every key). A model without weights is timed warm throughout.
// x [1, n] -> PRelu(slope [n], an initializer of L2 + 4 KiB) -> y.
TEST(TuningOrder, WeightsBeyondL2AreTimedOutOfCache) {
  static std::once_flag once;
  std::call_once(once, [] {
    for (const char* name : {"test_prelu_cold_a", "test_prelu_cold_b"}) {  // two: something to time
      anvil::runtime::Kernel k;
      k.name = name;
      k.op = "PRelu";
      k.precision = anvil::ir::DataType::kF32;
      k.supports = [](const anvil::ir::Node&, const std::vector<anvil::ir::TensorType>& in) {
        return in.size() == 2 && in[0].dtype == anvil::ir::DataType::kF32 && in[0].shape == in[1].shape;
      };
      k.run = [](const anvil::runtime::StepArgs& a) {
        const float* x = a.in(0).as<float>();
        const float* s = a.in(1).as<float>();
        float* y = a.out(0).as<float>();
        for (int64_t i = 0; i < a.in(0).numel(); ++i) y[i] = x[i] >= 0.f ? x[i] : s[i] * x[i];
      };
      anvil::runtime::Kernels::instance().add(std::move(k));
    }
  });
  const int64_t l2 = anvil::cpu::l2CacheBytes();
  ASSERT_GE(l2, int64_t(64) << 10);
  const int64_t n = (l2 + 4096) / int64_t(sizeof(float));
  anvil::test::OnnxWriter w;
  w.input("x", {1, n});
  w.output("y", {1, n});
  w.weight("slope", {1, n}, 7u, 1.0f);
  w.node("PRelu", "prelu", {"x", "slope"}, "y");
  const std::string big = w.save("anvil_tuning_order_prelu_cold.onnx");
  const std::string small = writeModel();
  registerOnce();  // Softsign's three test kernels: something to time

  auto buildWith = [](const std::string& model, bool* logged) {
    const fs::path cache = fs::temp_directory_path() / "anvil_tuning_cold.json";
    fs::remove(cache);
    anvil::BuilderConfig cfg;
    cfg.optimizationLevel = 0;
    cfg.timingIterations = 2;
    cfg.threads = 2;
    cfg.timingCachePath = cache.string();
    std::string bytes;
    anvil::BuildReport report;
    const anvil::Status s = anvil::Builder::buildFromOnnx(model, cfg, &bytes, &report);
    EXPECT_TRUE(s.isOk()) << s.message();
    *logged = false;
    for (const std::string& line : report.passLog) *logged |= line.rfind("tactic timing: weights ", 0) == 0;
    std::vector<std::string> keys;
    std::ifstream f(cache);
    const nlohmann::json j = nlohmann::json::parse(f);
    for (const auto& [key, e] : j.at("entries").items()) keys.push_back(key);
    fs::remove(cache);
    return std::make_pair(keys, bytes);
  };
  bool logged = false;
  auto [coldKeys, bytes] = buildWith(big, &logged);
  EXPECT_TRUE(logged);
  ASSERT_FALSE(coldKeys.empty()) << "nothing was timed";
  for (const std::string& k : coldKeys) EXPECT_NE(k.find("|weights=cold|"), std::string::npos) << k;
  auto [warmKeys, unused] = buildWith(small, &logged);
  EXPECT_FALSE(logged);
  ASSERT_FALSE(warmKeys.empty());
  for (const std::string& k : warmKeys) EXPECT_EQ(k.find("weights=cold"), std::string::npos) << k;

  // The engine built with cold timing computes PRelu.
  std::shared_ptr<anvil::Engine> e;
  ASSERT_TRUE(anvil::Engine::fromBytes(std::move(bytes), &e).isOk());
  std::unique_ptr<anvil::ExecutionContext> ctx;
  ASSERT_TRUE(e->createContext(&ctx).isOk());
  const size_t count = static_cast<size_t>(n);
  std::vector<float> x(count), y(count, -7.f), slope(count);
  {
    std::mt19937 rng(7u);  // OnnxWriter::weight's draw
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& v : slope) v = u(rng);
  }
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-4.f, 4.f);
  for (float& v : x) v = d(rng);
  ASSERT_TRUE(ctx->setTensorAddress("x", x.data()).isOk());
  ASSERT_TRUE(ctx->setTensorAddress("y", y.data()).isOk());
  ASSERT_TRUE(ctx->run().isOk());
  for (size_t i = 0; i < x.size(); i += 997) EXPECT_EQ(y[i], x[i] >= 0.f ? x[i] : slope[i] * x[i]) << i;
  fs::remove(big);
  fs::remove(small);
}

}  // namespace
