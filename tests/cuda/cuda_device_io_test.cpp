// Device-pointer I/O bindings of CUDA engines (setTensorAddress with MemoryLocation::kDevice),
// run through the simulator: an MLP, a small CNN and a view output cross-built for sm_90 give
// bit for bit the outputs of the host-bound run with inputs and outputs on the device, mixed,
// enqueued and replayed from a CUDA graph, while the boundary copies (anvil.Copy) they make
// unneeded do not run; inputs a CPU layer reads first and outputs a CPU layer makes;
// re-binding between runs; dynamic shapes; the refusals (CPU engines, pointers that are not
// device memory). Also the per-engine device weights that the contexts of an engine share.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstring>
#include <random>
#include <thread>

#include "anvil/anvil.hpp"
#include "runtime/engine_stats.h"
#include "tests/cuda/small_models.h"
#include "tests/onnx_writer.h"

namespace anvil {
namespace {

// The models' files: anvil_cuda_device_io_<name>.onnx in the temp directory.
std::string save(const test::OnnxWriter& w, const std::string& name) {
  return w.save("anvil_cuda_device_io_" + name + ".onnx");
}

// x[b,33] -> MatMul -> Add -> Relu -> Gemm -> y[b,17] (tests/cuda/small_models.h).
std::string writeMlp(int64_t batch) {
  return test::writeSmallMlp(batch, "g", std::string("anvil_cuda_device_io_") + (batch < 0 ? "mlp_dyn" : "mlp") + ".onnx");
}

// x[1,3,9,9] -> Conv 3x3 (4 channels, pad 1) + bias -> Relu -> Conv 1x1 (5 channels) -> y[1,5,9,9].
std::string writeCnn() { return test::writeSmallCnn(1, 4, 5, "g", "anvil_cuda_device_io_cnn.onnx"); }

// x[2,5] -> Hardmax (no CUDA kernel: a CPU layer) -> Relu -> Sigmoid -> y: the input's first
// reader is on the CPU. cpuLast: x -> Relu -> Hardmax -> y, the output is made on the CPU.
std::string writeCpuEdge(bool cpuLast) {
  test::OnnxWriter w;
  w.input("x", {2, 5});
  w.output("y", {2, 5});
  if (cpuLast) {
    w.node("Relu", "relu", {"x"}, "r");
    w.node("Hardmax", "hardmax", {"r"}, "y");
  } else {
    w.node("Hardmax", "hardmax", {"x"}, "h");
    w.node("Relu", "relu", {"h"}, "r");
    w.node("Sigmoid", "sigmoid", {"r"}, "y");
  }
  return save(w, cpuLast ? "cpu_last" : "cpu_first");
}

// x[2,6] -> Relu -> Reshape [3,4] -> y: the output made on the GPU is a view of the Relu's
// (no arena slot of its own), so a device-bound y takes a device-to-device copy.
std::string writeViewOutput() {
  test::OnnxWriter w;
  w.input("x", {2, 6});
  w.output("y", {3, 4});
  w.ints("shape", {3, 4});
  w.node("Relu", "relu", {"x"}, "r");
  w.node("Reshape", "reshape", {"r", "shape"}, "y");
  return save(w, "view_output");
}

BuilderConfig cudaConfig() {
  BuilderConfig cfg;
  cfg.device = Device::kCUDA;
  cfg.computeCapability = 90;
  return cfg;
}

std::vector<float> input(size_t n, uint32_t seed) {
  std::vector<float> x(n);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1, 1);
  for (float& v : x) v = d(rng);
  return x;
}

size_t numel(const std::vector<int64_t>& dims) {
  size_t n = 1;
  for (int64_t d : dims) n *= size_t(d);
  return n;
}

bool bitEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// One run of `e` on x (shape xDims) with x and y bound on the device or the host; returns y
// and counts the anvil.Copy steps that ran (through the profiler, when `copies` is given).
struct Binding {
  bool xDevice = false, yDevice = false;
  bool enqueue = false, cudaGraph = false;
};
std::vector<float> runBound(const Engine& e, const std::vector<int64_t>& xDims, const std::vector<float>& x,
                            Binding b, int* copies = nullptr) {
  std::unique_ptr<ExecutionContext> ctx;
  ContextOptions o;
  o.simulate = true;
  o.useCudaGraph = b.cudaGraph;
  Status s = e.createContext(&ctx, o);
  EXPECT_TRUE(s.isOk()) << s.message();
  if (!s.isOk()) return {};
  EXPECT_TRUE(ctx->setInputShape("x", xDims).isOk());
  std::vector<int64_t> yDims;
  EXPECT_TRUE(ctx->getTensorShape("y", &yDims).isOk());
  std::vector<float> y(numel(yDims), -7.0f), xHost = x;
  void *xDev = nullptr, *yDev = nullptr;
  if (b.xDevice) {
    EXPECT_TRUE(ctx->allocateDevice(x.size() * 4, &xDev).isOk());
    EXPECT_TRUE(ctx->copyToDevice(xDev, x.data(), x.size() * 4).isOk());
    EXPECT_TRUE(ctx->setTensorAddress("x", xDev, MemoryLocation::kDevice).isOk());
  } else {
    EXPECT_TRUE(ctx->setTensorAddress("x", xHost.data()).isOk());
  }
  if (b.yDevice) {
    EXPECT_TRUE(ctx->allocateDevice(y.size() * 4, &yDev).isOk());
    EXPECT_TRUE(ctx->copyToDevice(yDev, y.data(), y.size() * 4).isOk());
    EXPECT_TRUE(ctx->setTensorAddress("y", yDev, MemoryLocation::kDevice).isOk());
  } else {
    EXPECT_TRUE(ctx->setTensorAddress("y", y.data(), MemoryLocation::kHost).isOk());
  }
  if (copies) {
    *copies = 0;
    ctx->setProfiler([copies](const LayerTiming& t) { *copies += t.type == "Copy"; });
  }
  for (int i = 0; i < 2; ++i) {  // twice: the second run reuses every binding (and replays a graph)
    s = b.enqueue ? ctx->enqueue() : ctx->run();
    EXPECT_TRUE(s.isOk()) << s.message();
    if (b.enqueue) {
      EXPECT_TRUE(ctx->synchronize().isOk());
    }
  }
  if (copies) *copies /= 2;
  if (b.yDevice) {
    EXPECT_TRUE(ctx->copyFromDevice(y.data(), yDev, y.size() * 4).isOk());
  }
  EXPECT_TRUE(ctx->freeDevice(xDev).isOk());
  EXPECT_TRUE(ctx->freeDevice(yDev).isOk());
  return y;
}

// Host-bound vs device-bound, every mix, on an engine whose input is read and output made
// on the GPU: bit for bit the same, and each device binding removes its boundary copy.
void checkEveryBinding(const Engine& e, const std::vector<int64_t>& xDims) {
  for (const LayerInfo& l : e.layers()) {
    if (l.type != "anvil.Copy") {
      EXPECT_EQ(l.device, "cuda") << l.name << " " << l.type;
    }
  }
  const std::vector<float> x = input(numel(xDims), 11);
  int hostCopies = -1;
  const std::vector<float> want = runBound(e, xDims, x, {}, &hostCopies);
  EXPECT_EQ(hostCopies, 2);  // x up, y down
  for (bool xDev : {false, true})
    for (bool yDev : {false, true}) {
      SCOPED_TRACE(std::string("x on ") + (xDev ? "device" : "host") + ", y on " + (yDev ? "device" : "host"));
      int copies = -1;
      EXPECT_TRUE(bitEqual(runBound(e, xDims, x, {xDev, yDev}, &copies), want));
      EXPECT_EQ(copies, 2 - int(xDev) - int(yDev));
      EXPECT_TRUE(bitEqual(runBound(e, xDims, x, {xDev, yDev, true, false}), want)) << "enqueue";
      EXPECT_TRUE(bitEqual(runBound(e, xDims, x, {xDev, yDev, false, true}), want)) << "CUDA graph";
      EXPECT_TRUE(bitEqual(runBound(e, xDims, x, {xDev, yDev, true, true}), want)) << "enqueue + CUDA graph";
    }
}

TEST(CudaDeviceIo, MlpDeviceBindingsMatchHostBindingsBitForBit) {
  auto e = test::buildEngine(writeMlp(5), cudaConfig());
  ASSERT_TRUE(e);
  checkEveryBinding(*e, {5, 33});
}

TEST(CudaDeviceIo, AViewOutputIsCopiedDeviceToDevice) {
  auto e = test::buildEngine(writeViewOutput(), cudaConfig());
  ASSERT_TRUE(e);
  bool view = false;
  for (const LayerInfo& l : e->layers()) view |= l.type == "Reshape" && l.tactic == "view";
  ASSERT_TRUE(view);
  checkEveryBinding(*e, {2, 6});
}

TEST(CudaDeviceIo, CnnDeviceBindingsMatchHostBindingsBitForBit) {
  auto e = test::buildEngine(writeCnn(), cudaConfig());
  ASSERT_TRUE(e);
  checkEveryBinding(*e, {1, 3, 9, 9});
}

// A CPU layer reads the device-bound input first / makes the device-bound output: the
// context copies between the device and the host itself, and the result is the host run's.
TEST(CudaDeviceIo, CpuLayersAtTheEdgesCopyThroughTheHost) {
  for (bool cpuLast : {false, true}) {
    SCOPED_TRACE(cpuLast ? "output made on the CPU" : "input read on the CPU");
    auto e = test::buildEngine(writeCpuEdge(cpuLast), cudaConfig());
    ASSERT_TRUE(e);
    bool hardmaxOnCpu = false;
    for (const LayerInfo& l : e->layers()) hardmaxOnCpu |= l.type == "Hardmax" && l.device == "cpu";
    ASSERT_TRUE(hardmaxOnCpu);
    const std::vector<float> x = input(10, 5);
    int hostCopies = -1;
    const std::vector<float> want = runBound(*e, {2, 5}, x, {}, &hostCopies);
    EXPECT_EQ(hostCopies, 2);  // one boundary copy, one between the CPU and the GPU layers
    for (bool enqueue : {false, true}) {
      int copies = -1;
      EXPECT_TRUE(bitEqual(runBound(*e, {2, 5}, x, {true, true, enqueue, false}, &copies), want));
      EXPECT_EQ(copies, 1);  // the boundary copy went; the one between the layers stays
    }
  }
}

// Re-binding between runs: the outputs go to the new buffer (and none to the old one), also
// when the run replays a CUDA graph, which is captured again for the new pointers.
TEST(CudaDeviceIo, RebindingBetweenRunsUsesTheNewBuffers) {
  auto e = test::buildEngine(writeMlp(5), cudaConfig());
  ASSERT_TRUE(e);
  const std::vector<float> x1 = input(5 * 33, 1), x2 = input(5 * 33, 2);
  const std::vector<float> want1 = runBound(*e, {5, 33}, x1, {}), want2 = runBound(*e, {5, 33}, x2, {});
  ASSERT_FALSE(bitEqual(want1, want2));
  for (bool graph : {false, true}) {
    SCOPED_TRACE(graph ? "CUDA graph" : "plain");
    std::unique_ptr<ExecutionContext> ctx;
    ContextOptions o;
    o.simulate = true;
    o.useCudaGraph = graph;
    ASSERT_TRUE(e->createContext(&ctx, o).isOk());
    void *xa, *xb, *ya, *yb;
    ASSERT_TRUE(ctx->allocateDevice(x1.size() * 4, &xa).isOk());
    ASSERT_TRUE(ctx->allocateDevice(x2.size() * 4, &xb).isOk());
    ASSERT_TRUE(ctx->allocateDevice(want1.size() * 4, &ya).isOk());
    ASSERT_TRUE(ctx->allocateDevice(want1.size() * 4, &yb).isOk());
    ASSERT_TRUE(ctx->copyToDevice(xa, x1.data(), x1.size() * 4).isOk());
    ASSERT_TRUE(ctx->copyToDevice(xb, x2.data(), x2.size() * 4).isOk());
    ASSERT_TRUE(ctx->setTensorAddress("x", xa, MemoryLocation::kDevice).isOk());
    ASSERT_TRUE(ctx->setTensorAddress("y", ya, MemoryLocation::kDevice).isOk());
    ASSERT_TRUE(ctx->run().isOk());
    ASSERT_TRUE(ctx->setTensorAddress("x", xb, MemoryLocation::kDevice).isOk());
    ASSERT_TRUE(ctx->setTensorAddress("y", yb, MemoryLocation::kDevice).isOk());
    Status s = ctx->run();
    ASSERT_TRUE(s.isOk()) << s.message();
    std::vector<float> ga(want1.size()), gb(want1.size());
    ASSERT_TRUE(ctx->copyFromDevice(ga.data(), ya, ga.size() * 4).isOk());
    ASSERT_TRUE(ctx->copyFromDevice(gb.data(), yb, gb.size() * 4).isOk());
    EXPECT_TRUE(bitEqual(ga, want1));
    EXPECT_TRUE(bitEqual(gb, want2));
    // Back to the host for the output: it arrives there again.
    std::vector<float> yh(want1.size(), -7.0f);
    ASSERT_TRUE(ctx->setTensorAddress("x", xa, MemoryLocation::kDevice).isOk());
    ASSERT_TRUE(ctx->setTensorAddress("y", yh.data()).isOk());
    ASSERT_TRUE(ctx->run().isOk());
    EXPECT_TRUE(bitEqual(yh, want1));
  }
}

// Dynamic shapes: the bound buffer holds the tensor at the current shapes (the caller's check).
TEST(CudaDeviceIo, DynamicShapesWithDeviceBindings) {
  BuilderConfig cfg = cudaConfig();
  cfg.profiles["x"] = {{1, 33}, {3, 33}, {7, 33}};
  auto e = test::buildEngine(writeMlp(-1), cfg);
  ASSERT_TRUE(e);
  for (int64_t b : {3, 7, 1}) {
    SCOPED_TRACE(b);
    const std::vector<float> x = input(size_t(b) * 33, uint32_t(b));
    const std::vector<float> want = runBound(*e, {b, 33}, x, {});
    EXPECT_TRUE(bitEqual(runBound(*e, {b, 33}, x, {true, true}), want));
  }
}

TEST(CudaDeviceIo, RefusedWhereTheyCannotWork) {
  // A CPU engine has no device memory.
  auto cpu = test::buildEngine(writeMlp(5), BuilderConfig{});
  ASSERT_TRUE(cpu);
  std::unique_ptr<ExecutionContext> c;
  ASSERT_TRUE(cpu->createContext(&c).isOk());
  float dummy[4];
  Status s = c->setTensorAddress("x", dummy, MemoryLocation::kDevice);
  EXPECT_EQ(s.code(), ErrorCode::kUnsupported) << s.message();
  EXPECT_NE(s.message().find("CPU engine"), std::string::npos) << s.message();
  void* p = nullptr;
  s = c->allocateDevice(64, &p);
  EXPECT_EQ(s.code(), ErrorCode::kUnsupported) << s.message();

  // Host memory bound as device memory, a freed buffer, a buffer of another engine's
  // simulated device (contexts of one engine share one): the simulator knows its
  // allocations and run() says so.
  auto e = test::buildEngine(writeMlp(5), cudaConfig()), e2 = test::buildEngine(writeMlp(5), cudaConfig());
  ASSERT_TRUE(e && e2);
  ContextOptions o;
  o.simulate = true;
  std::unique_ptr<ExecutionContext> ctx, other;
  ASSERT_TRUE(e->createContext(&ctx, o).isOk());
  ASSERT_TRUE(e2->createContext(&other, o).isOk());
  std::vector<float> x = input(5 * 33, 3), y(5 * 17);
  ASSERT_TRUE(ctx->setTensorAddress("y", y.data()).isOk());
  ASSERT_TRUE(ctx->setTensorAddress("x", x.data(), MemoryLocation::kDevice).isOk());
  s = ctx->run();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.message();
  EXPECT_NE(s.message().find("input 'x' is bound as device memory"), std::string::npos) << s.message();
  void* foreign = nullptr;
  ASSERT_TRUE(other->allocateDevice(x.size() * 4, &foreign).isOk());
  ASSERT_TRUE(ctx->setTensorAddress("x", foreign, MemoryLocation::kDevice).isOk());
  s = ctx->run();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.message();
  void *small = nullptr, *freed = nullptr;
  ASSERT_TRUE(ctx->allocateDevice(x.size() * 4 - 4, &small).isOk());  // one element short
  ASSERT_TRUE(ctx->setTensorAddress("x", small, MemoryLocation::kDevice).isOk());
  s = ctx->run();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.message();
  ASSERT_TRUE(ctx->allocateDevice(x.size() * 4, &freed).isOk());
  ASSERT_TRUE(ctx->freeDevice(freed).isOk());
  ASSERT_TRUE(ctx->setTensorAddress("x", freed, MemoryLocation::kDevice).isOk());
  s = ctx->run();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.message();
  s = ctx->freeDevice(foreign);  // not this context's
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.message();
  // A device-bound output of host memory is refused the same way.
  void* xd = nullptr;
  ASSERT_TRUE(ctx->allocateDevice(x.size() * 4, &xd).isOk());
  ASSERT_TRUE(ctx->setTensorAddress("x", xd, MemoryLocation::kDevice).isOk());
  ASSERT_TRUE(ctx->setTensorAddress("y", y.data(), MemoryLocation::kDevice).isOk());
  s = ctx->run();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.message();
  EXPECT_NE(s.message().find("output 'y'"), std::string::npos) << s.message();
}

// Per-engine device weights: the contexts of one engine on one device upload its constants
// and blobs once and share them, run concurrently correctly, and the last one frees them.
TEST(CudaDeviceIo, ContextsOfAnEngineShareItsDeviceWeights) {
  for (const std::string& onnx : {writeMlp(5), writeCnn()}) {
    SCOPED_TRACE(onnx);
    auto e = test::buildEngine(onnx, cudaConfig());
    ASSERT_TRUE(e);
    const std::vector<int64_t> xDims = onnx.find("cnn") != std::string::npos ? std::vector<int64_t>{1, 3, 9, 9}
                                                                             : std::vector<int64_t>{5, 33};
    ContextOptions o;
    o.simulate = true;
    const uint64_t before = detail::deviceWeightBytesUploaded();
    std::unique_ptr<ExecutionContext> a, b;
    ASSERT_TRUE(e->createContext(&a, o).isOk());
    const uint64_t one = detail::deviceWeightBytesUploaded() - before;
    EXPECT_GT(one, 0u);
    ASSERT_TRUE(e->createContext(&b, o).isOk());
    EXPECT_EQ(detail::deviceWeightBytesUploaded() - before, one);  // the second context uploaded nothing
    // Both at once, each on its own thread with its own data, many runs.
    std::vector<float> xs[2] = {input(numel(xDims), 21), input(numel(xDims), 22)};
    std::vector<float> want[2] = {runBound(*e, xDims, xs[0], {}), runBound(*e, xDims, xs[1], {})};
    ASSERT_FALSE(bitEqual(want[0], want[1]));
    bool ok[2] = {true, true};
    auto worker = [&](int i, ExecutionContext* c) {
      std::vector<float> y(want[i].size());
      ok[i] = c->setInputShape("x", xDims).isOk() && c->setTensorAddress("x", xs[i].data()).isOk() &&
              c->setTensorAddress("y", y.data()).isOk();
      for (int r = 0; r < 20 && ok[i]; ++r) {
        std::fill(y.begin(), y.end(), -7.0f);
        ok[i] = c->run().isOk() && bitEqual(y, want[i]);
      }
    };
    std::thread ta(worker, 0, a.get()), tb(worker, 1, b.get());
    ta.join();
    tb.join();
    EXPECT_TRUE(ok[0]);
    EXPECT_TRUE(ok[1]);
    // While one context lives the weights stay; after the last, a new context uploads again.
    a.reset();
    std::unique_ptr<ExecutionContext> c;
    ASSERT_TRUE(e->createContext(&c, o).isOk());
    EXPECT_EQ(detail::deviceWeightBytesUploaded() - before, one);
    b.reset();
    c.reset();
    ASSERT_TRUE(e->createContext(&c, o).isOk());
    EXPECT_EQ(detail::deviceWeightBytesUploaded() - before, 2 * one);
  }
}

}  // namespace
}  // namespace anvil
