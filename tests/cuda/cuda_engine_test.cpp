// CUDA engines end to end without a GPU: placement of each layer by kernel availability,
// the copies between devices, cross-built engines (heuristic tactics, marked untimed), the
// refusal to run them without a GPU of their compute capability, and their simulated
// execution (ContextOptions::simulate) against the CPU engine and the reference. A test
// kernel for Relu (launchActivation) is registered here so that these checks do not depend
// on which op families the backend serves.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <random>

#include "anvil/anvil.hpp"
#include "cuda/device.h"
#include "cuda/tactics/tactic_util.h"
#include "runtime/kernel.h"
#include "tests/onnx_writer.h"

namespace anvil {
namespace {

// One CUDA Relu kernel for these tests, whatever the backend registers.
void registerTestRelu() {
  static const bool once = [] {
    runtime::Kernel k = cuda::tactics::cudaKernel("test_f32_relu", "Relu");
    k.supports = [](const ir::Node&, const std::vector<ir::TensorType>& t) {
      return t.size() == 1 && t[0].dtype == DataType::kF32;
    };
    k.run = [](const runtime::StepArgs& a) {
      cuda::launchActivation(cuda::tactics::runtimeOf(a), cuda::tactics::streamOf(a), cuda::Activation::kRelu,
                             DataType::kF32, a.in(0).data, a.out(0).data, a.in(0).numel());
    };
    runtime::Kernels::instance().add(std::move(k));
    return true;
  }();
  (void)once;
}

// x[dims] -> op -> y as an ONNX file named `name` in the temp directory (dim -1: "batch").
std::string writeOneNodeModel(const std::string& name, const std::string& op, const std::vector<int64_t>& dims,
                              const std::function<void(onnx::NodeProto*)>& attrs = {}) {
  test::OnnxWriter w;
  w.input("x", dims);
  w.output("y", dims);
  onnx::NodeProto* n = w.node(op, name, {"x"}, "y");
  if (attrs) attrs(n);
  return w.save("anvil_cuda_engine_" + name + ".onnx");
}

// x[b,5] -> Relu -> Hardmax (along axis 1) -> Relu -> y, and r = the first Relu's output
// too: a GPU layer, a CPU layer (no CUDA Hardmax), a GPU layer, two graph outputs made on
// the GPU.
std::string writeModel(const std::string& name, int64_t batch) {
  test::OnnxWriter w;
  w.input("x", {batch, 5});
  w.output("y", {batch, 5});
  w.output("r", {batch, 5});
  w.node("Relu", "relu1", {"x"}, "r");
  w.node("Hardmax", "hardmax", {"r"}, "c");
  w.node("Relu", "relu2", {"c"}, "y");
  return w.save("anvil_cuda_engine_" + name + ".onnx");
}

// What writeModel's y is for x: one-hot of the first largest relu(x) per row of 5.
std::vector<float> expectedY(const std::vector<float>& x) {
  std::vector<float> y(x.size(), 0.0f);
  for (size_t row = 0; row < x.size() / 5; ++row) {
    size_t best = 0;
    for (size_t j = 1; j < 5; ++j)
      if (std::max(x[row * 5 + j], 0.0f) > std::max(x[row * 5 + best], 0.0f)) best = j;
    y[row * 5 + best] = 1.0f;
  }
  return y;
}

std::vector<float> input(int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-1, 1);
  for (float& v : x) v = d(rng);
  return x;
}

// Runs `e` on x[b,5]; returns {y, r}.
std::pair<std::vector<float>, std::vector<float>> run(const Engine& e, int64_t b, bool simulate) {
  std::unique_ptr<ExecutionContext> ctx;
  ContextOptions o;
  o.simulate = simulate;
  Status s = e.createContext(&ctx, o);
  EXPECT_TRUE(s.isOk()) << s.message();
  if (!s.isOk()) return {};
  std::vector<float> x = input(b * 5), y(size_t(b * 5), -7), r(size_t(b * 5), -7);
  EXPECT_TRUE(ctx->setInputShape("x", {b, 5}).isOk());
  EXPECT_TRUE(ctx->setTensorAddress("x", x.data()).isOk());
  EXPECT_TRUE(ctx->setTensorAddress("y", y.data()).isOk());
  EXPECT_TRUE(ctx->setTensorAddress("r", r.data()).isOk());
  for (int i = 0; i < 2; ++i) {  // twice: a second run reuses every buffer
    s = ctx->run();
    EXPECT_TRUE(s.isOk()) << s.message();
  }
  return {y, r};
}

TEST(CudaEngine, CrossBuildPlacesLayersAndCopies) {
  registerTestRelu();
  BuilderConfig cfg;
  cfg.device = Device::kCUDA;
  cfg.computeCapability = 90;
  cfg.inputShapes["x"] = {3, 5};
  BuildReport report;
  auto e = test::buildEngine(writeModel("place", 3), cfg, &report);
  ASSERT_TRUE(e);
  EXPECT_EQ(report.cudaLayers, 2);
  EXPECT_EQ(report.cpuLayers, 1);
  EXPECT_EQ(report.cpuOps, std::vector<std::string>{"Hardmax"});
  // x up; r down (for Hardmax and as output r); c up; y down.
  EXPECT_EQ(report.deviceCopies, 4);
  EXPECT_NE(e->target().find("cuda sm_90"), std::string::npos) << e->target();
  int copies = 0;
  for (const LayerInfo& l : e->layers()) {
    if (l.type == "anvil.Copy") {
      ++copies;
      EXPECT_EQ(l.device, "cuda") << l.name;
    } else if (l.type == "Relu") {
      EXPECT_EQ(l.device, "cuda") << l.name;
      EXPECT_TRUE(l.untimed) << l.name;
      EXPECT_FALSE(l.timed) << l.name;
    } else {
      EXPECT_EQ(l.type, "Hardmax");
      EXPECT_EQ(l.device, "cpu");
      EXPECT_FALSE(l.untimed);
    }
  }
  EXPECT_EQ(copies, 4);
}

TEST(CudaEngine, WithoutAGpuIsRefusedClearly) {
  registerTestRelu();
  if (cuda::deviceCount() > 0) GTEST_SKIP() << "skipped: this machine has a GPU";
  BuilderConfig cfg;
  cfg.device = Device::kCUDA;
  cfg.computeCapability = 90;
  cfg.inputShapes["x"] = {3, 5};
  auto e = test::buildEngine(writeModel("refuse", 3), cfg);
  ASSERT_TRUE(e);
  std::unique_ptr<ExecutionContext> ctx;
  Status s = e->createContext(&ctx);
  EXPECT_FALSE(s.isOk());
  EXPECT_EQ(s.code(), ErrorCode::kUnsupported);
  EXPECT_NE(s.message().find("needs a GPU with compute capability 9.0"), std::string::npos) << s.message();
  // And a CUDA build with no target named has nothing to build for.
  cfg.computeCapability = 0;
  std::string bytes;
  BuildReport r;
  s = Builder::buildFromOnnx(writeModel("refuse", 3), cfg, &bytes, &r);
  EXPECT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("--computeCapability"), std::string::npos) << s.message();
}

TEST(CudaEngine, SimulatedRunMatchesTheCpuEngine) {
  registerTestRelu();
  BuilderConfig cfg;
  cfg.device = Device::kCUDA;
  cfg.computeCapability = 80;
  cfg.inputShapes["x"] = {3, 5};
  const std::string onnx = writeModel("sim", 3);
  auto gpu = test::buildEngine(onnx, cfg);
  BuilderConfig cpuCfg;
  cpuCfg.inputShapes["x"] = {3, 5};
  auto cpu = test::buildEngine(onnx, cpuCfg);
  ASSERT_TRUE(gpu && cpu);
  auto [y, r] = run(*gpu, 3, true);
  auto [yc, rc] = run(*cpu, 3, false);
  EXPECT_EQ(y, yc);
  EXPECT_EQ(r, rc);
  // And against the definition.
  const std::vector<float> x = input(15);
  EXPECT_EQ(y, expectedY(x));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(r[i], std::max(x[i], 0.0f));
}

TEST(CudaEngine, SimulatedRunServesTheWholeProfile) {
  registerTestRelu();
  BuilderConfig cfg;
  cfg.device = Device::kCUDA;
  cfg.computeCapability = 90;
  cfg.profiles["x"] = {{1, 5}, {2, 5}, {6, 5}};
  const std::string onnx = writeModel("profile", -1);
  auto gpu = test::buildEngine(onnx, cfg);
  BuilderConfig cpuCfg;
  cpuCfg.profiles = cfg.profiles;
  auto cpu = test::buildEngine(onnx, cpuCfg);
  ASSERT_TRUE(gpu && cpu);
  for (int64_t b : {1, 2, 6}) {
    auto [y, r] = run(*gpu, b, true);
    auto [yc, rc] = run(*cpu, b, false);
    EXPECT_EQ(y, yc) << "batch " << b;
    EXPECT_EQ(r, rc) << "batch " << b;
  }
}

TEST(CudaEngine, TimedOnTheSimulatorWhenAskedTo) {
  registerTestRelu();
  BuilderConfig cfg;
  cfg.device = Device::kCUDA;
  cfg.computeCapability = 90;
  cfg.timeOnSimulator = true;
  cfg.inputShapes["x"] = {3, 5};
  BuildReport report;
  auto e = test::buildEngine(writeModel("timed", 3), cfg, &report);
  ASSERT_TRUE(e);
  EXPECT_EQ(report.untimedLayers, 0);
  for (const LayerInfo& l : e->layers()) EXPECT_FALSE(l.untimed) << l.name;
  auto [y, r] = run(*e, 3, true);
  EXPECT_EQ(y.size(), 15u);
}

// x[b,5] -> Relu -> y: every layer on the GPU (a CUDA graph can hold the run).
std::string writeGpuOnlyModel() { return writeOneNodeModel("gpu_only", "Relu", {-1, 5}); }

TEST(CudaEngine, CudaGraphReplaysWithNewDataAndRecapturesForNewShapes) {
  registerTestRelu();
  BuilderConfig cfg;
  cfg.device = Device::kCUDA;
  cfg.computeCapability = 90;
  cfg.profiles["x"] = {{1, 5}, {2, 5}, {4, 5}};
  auto e = test::buildEngine(writeGpuOnlyModel(), cfg);
  ASSERT_TRUE(e);
  for (const LayerInfo& l : e->layers()) EXPECT_EQ(l.device, "cuda") << l.name;
  std::unique_ptr<ExecutionContext> ctx;
  ContextOptions o;
  o.simulate = true;
  o.useCudaGraph = true;
  o.spinWait = true;
  ASSERT_TRUE(e->createContext(&ctx, o).isOk());
  for (int64_t b : {2, 2, 4, 1}) {
    for (float sign : {1.0f, -1.0f}) {  // new data in the same buffers: the replay reads it
      std::vector<float> x = input(b * 5), y(size_t(b * 5), -7);
      for (float& v : x) v *= sign;
      ASSERT_TRUE(ctx->setInputShape("x", {b, 5}).isOk());
      ASSERT_TRUE(ctx->setTensorAddress("x", x.data()).isOk());
      ASSERT_TRUE(ctx->setTensorAddress("y", y.data()).isOk());
      Status s = ctx->run();
      ASSERT_TRUE(s.isOk()) << s.message();
      for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], std::max(x[i], 0.0f)) << "batch " << b << " i " << i;
    }
  }
}

TEST(CudaEngine, EnqueueReadsInputsAtOnceAndSynchronizeDeliversTheOutputs) {
  registerTestRelu();
  BuilderConfig cfg;
  cfg.device = Device::kCUDA;
  cfg.computeCapability = 90;
  cfg.inputShapes["x"] = {2, 5};
  for (const std::string& onnx : {writeGpuOnlyModel(), writeModel("enqueue", 2)}) {  // all on the GPU; a CPU layer between
    auto e = test::buildEngine(onnx, cfg);
    ASSERT_TRUE(e);
    for (bool graph : {false, true}) {
      std::unique_ptr<ExecutionContext> ctx;
      ContextOptions o;
      o.simulate = true;
      o.useCudaGraph = graph;
      ASSERT_TRUE(e->createContext(&ctx, o).isOk());
      std::vector<float> x = input(10), y(10, -7), r(10, -7);
      ASSERT_TRUE(ctx->setTensorAddress("x", x.data()).isOk());
      ASSERT_TRUE(ctx->setTensorAddress("y", y.data()).isOk());
      (void)ctx->setTensorAddress("r", r.data());  // the second model's other output
      for (int i = 0; i < 3; ++i) {
        for (float& v : x) v = -v;  // new data each time: read before enqueue returns
        const std::vector<float> sent = x;
        Status s = ctx->enqueue();
        ASSERT_TRUE(s.isOk()) << s.message();
        std::fill(x.begin(), x.end(), 100.0f);  // the caller may reuse its input buffer at once
        s = ctx->synchronize();
        ASSERT_TRUE(s.isOk()) << s.message();
        for (size_t j = 0; j < 10; ++j) {
          if (onnx.find("gpu_only") != std::string::npos) {
            EXPECT_EQ(y[j], std::max(sent[j], 0.0f)) << j;
          } else {
            EXPECT_EQ(y[j], expectedY(sent)[j]) << j;
          }
        }
        x = sent;
      }
    }
  }
  // Back-to-back enqueues: the second waits for the first before it reuses the context's
  // staging, so the outputs are the second input's.
  {
    auto e2 = test::buildEngine(writeGpuOnlyModel(), cfg);
    std::unique_ptr<ExecutionContext> ctx;
    ContextOptions o;
    o.simulate = true;
    ASSERT_TRUE(e2->createContext(&ctx, o).isOk());
    std::vector<float> x1 = input(10), x2 = input(10), y(10, -7);
    for (float& v : x2) v = -v;
    ASSERT_TRUE(ctx->setTensorAddress("y", y.data()).isOk());
    ASSERT_TRUE(ctx->setTensorAddress("x", x1.data()).isOk());
    ASSERT_TRUE(ctx->enqueue().isOk());
    ASSERT_TRUE(ctx->setTensorAddress("x", x2.data()).isOk());
    ASSERT_TRUE(ctx->enqueue().isOk());
    ASSERT_TRUE(ctx->synchronize().isOk());
    for (size_t j = 0; j < 10; ++j) EXPECT_EQ(y[j], std::max(x2[j], 0.0f)) << j;
  }
  // A caller's CUDA stream needs a GPU: the simulator says so.
  auto e = test::buildEngine(writeGpuOnlyModel(), cfg);
  std::unique_ptr<ExecutionContext> ctx;
  ContextOptions o;
  o.simulate = true;
  ASSERT_TRUE(e->createContext(&ctx, o).isOk());
  int fake = 0;
  Status s = ctx->enqueue(&fake);
  EXPECT_EQ(s.code(), ErrorCode::kUnsupported) << s.message();
}

TEST(CudaEngine, NoDataTransfersSkipsTheBoundaryCopies) {
  registerTestRelu();
  BuilderConfig cfg;
  cfg.device = Device::kCUDA;
  cfg.computeCapability = 90;
  cfg.inputShapes["x"] = {2, 5};
  auto e = test::buildEngine(writeGpuOnlyModel(), cfg);
  ASSERT_TRUE(e);
  std::unique_ptr<ExecutionContext> ctx;
  ContextOptions o;
  o.simulate = true;
  o.noDataTransfers = true;
  ASSERT_TRUE(e->createContext(&ctx, o).isOk());
  std::vector<float> x = input(10), y(10, -7);
  ASSERT_TRUE(ctx->setTensorAddress("x", x.data()).isOk());
  ASSERT_TRUE(ctx->setTensorAddress("y", y.data()).isOk());
  Status s = ctx->run();
  ASSERT_TRUE(s.isOk()) << s.message();
  EXPECT_EQ(y, std::vector<float>(10, -7));  // nothing came back
}

// Per-context state: a CUDA kernel with open()/close() (Shrink with lambd = bias = 0 is the
// identity: a device-to-device copy) counts its runs in its state; a gpuOnly kernel (for
// Hardmax) must never be offered to a cross-build or the simulator.
std::atomic<int> gOpened{0}, gClosed{0};
void registerStatefulKernels() {
  static const bool once = [] {
    runtime::Kernel k = cuda::tactics::cudaKernel("test_f32_shrink_stateful", "Shrink");
    k.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& t) {
      return t.size() == 1 && t[0].dtype == DataType::kF32 && n.attrs().getFloat("lambd", 0.5f) == 0.0f &&
             n.attrs().getFloat("bias", 0.0f) == 0.0f;
    };
    k.open = [](const runtime::OpenArgs& o) -> void* {
      EXPECT_NE(o.device, nullptr);
      ++gOpened;
      return new int(0);
    };
    k.close = [](void* s, cuda::DeviceRuntime*) {
      delete static_cast<int*>(s);
      ++gClosed;
    };
    k.run = [](const runtime::StepArgs& a) {
      ++*static_cast<int*>(a.state);
      cuda::tactics::runtimeOf(a).copyAsync(a.out(0).data, a.in(0).data, a.in(0).bytes(),
                                            cuda::CopyKind::kDeviceToDevice, cuda::tactics::streamOf(a));
    };
    runtime::Kernels::instance().add(std::move(k));
    // A second Shrink kernel that computes something else (zeros): timed on a GPU (here the
    // simulator) it must be dropped, not chosen.
    runtime::Kernel wrong = cuda::tactics::cudaKernel("test_f32_shrink_wrong", "Shrink");
    wrong.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& t) {
      return t.size() == 1 && t[0].dtype == DataType::kF32 && n.attrs().getFloat("lambd", 0.5f) == 0.0f;
    };
    wrong.run = [](const runtime::StepArgs& a) {
      cuda::tactics::runtimeOf(a).memsetAsync(a.out(0).data, 0, a.out(0).bytes(), cuda::tactics::streamOf(a));
    };
    runtime::Kernels::instance().add(std::move(wrong));
    runtime::Kernel g = cuda::tactics::cudaKernel("test_f32_hardmax_gpu_only", "Hardmax");
    g.gpuOnly = true;
    g.run = [](const runtime::StepArgs& a) { a.fail("a gpuOnly kernel ran without a GPU"); };
    runtime::Kernels::instance().add(std::move(g));
    return true;
  }();
  (void)once;
}

TEST(CudaEngine, StepsOpenPerContextStateAndGpuOnlyKernelsStayOut) {
  registerTestRelu();
  registerStatefulKernels();
  const std::string model = writeOneNodeModel("shrink", "Shrink", {2, 5}, [](onnx::NodeProto* n) {
    auto* l = n->add_attribute();
    l->set_name("lambd");
    l->set_type(onnx::AttributeProto::FLOAT);
    l->set_f(0.0f);
  });
  BuilderConfig cfg;
  cfg.device = Device::kCUDA;
  cfg.computeCapability = 90;
  cfg.inputShapes["x"] = {2, 5};
  auto e = test::buildEngine(model, cfg);
  ASSERT_TRUE(e);
  bool served = false;
  for (const LayerInfo& li : e->layers()) served |= li.tactic == "test_f32_shrink_stateful";
  ASSERT_TRUE(served);
  const int opened = gOpened, closed = gClosed;
  for (int contexts = 0; contexts < 2; ++contexts) {
    std::unique_ptr<ExecutionContext> ctx;
    ContextOptions o;
    o.simulate = true;
    ASSERT_TRUE(e->createContext(&ctx, o).isOk());
    EXPECT_EQ(gOpened, opened + contexts + 1);
    std::vector<float> x = input(10), out(10, -7);
    ASSERT_TRUE(ctx->setTensorAddress("x", x.data()).isOk());
    ASSERT_TRUE(ctx->setTensorAddress("y", out.data()).isOk());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(ctx->run().isOk());
    EXPECT_EQ(out, x);
  }
  EXPECT_EQ(gClosed, closed + 2);
  // Timed (on the simulator), the wrong Shrink kernel disagrees with the first and is dropped.
  {
    BuilderConfig timed = cfg;
    timed.timeOnSimulator = true;
    BuildReport report;
    auto t = test::buildEngine(model, timed, &report);
    ASSERT_TRUE(t);
    for (const LayerInfo& li : t->layers()) {
      if (li.type == "Shrink") {
        EXPECT_EQ(li.tactic, "test_f32_shrink_stateful");
      }
    }
    bool warned = false;
    for (const std::string& w : report.warnings) warned |= w.find("test_f32_shrink_wrong disagrees") != std::string::npos;
    EXPECT_TRUE(warned);
  }
  // The cross-built model never takes the gpuOnly kernel: Hardmax stays on the CPU.
  BuildReport report;
  cfg.inputShapes["x"] = {3, 5};
  auto c = test::buildEngine(writeModel("hardmax_cross", 3), cfg, &report);
  ASSERT_TRUE(c);
  for (const LayerInfo& li : c->layers()) {
    if (li.type == "Hardmax") {
      EXPECT_EQ(li.device, "cpu") << li.tactic;
    }
  }
  cfg.timeOnSimulator = true;  // nor when timing on the simulator
  c = test::buildEngine(writeModel("hardmax_cross", 3), cfg, &report);
  ASSERT_TRUE(c);
  for (const LayerInfo& li : c->layers()) {
    if (li.type == "Hardmax") {
      EXPECT_EQ(li.device, "cpu") << li.tactic;
    }
  }
}

}  // namespace
}  // namespace anvil
