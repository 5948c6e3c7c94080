// The builder's timing of CPU candidates (codegen/builder.cpp): alternating rounds, one run
// of each candidate in turn after one warm-up each, so that load from other processes
// falls on all of them alike; a fast candidate (warm-up under 0.25 ms) runs once more,
// untimed, before each timed run, to find its data in cache again as in the engine; the
// winner still computes the right thing.
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
#include "runtime/clock.h"
#include "runtime/kernel.h"

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
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("g");
  for (const char* nm : {"x", "y"}) {
    auto* v = std::string(nm) == "x" ? g->add_input() : g->add_output();
    v->set_name(nm);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    t->mutable_shape()->add_dim()->set_dim_value(1);
    t->mutable_shape()->add_dim()->set_dim_value(37);
  }
  auto* n = g->add_node();
  n->set_op_type("Softsign");
  n->set_name("softsign");
  n->add_input("x");
  n->add_output("y");
  const fs::path p = fs::temp_directory_path() / "anvil_tuning_order_softsign.onnx";
  std::ofstream f(p, std::ios::binary);
  m.SerializeToOstream(&f);
  return p.string();
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

}  // namespace
