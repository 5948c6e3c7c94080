// The simulated DeviceRuntime (cuda/runtime_sim.cpp): the shared contract checks of
// runtime_test_common.h, the device-memory registry's misuse errors, sticky errors of queued
// work, and our kernels launched through a sim stream giving the same bits as sim::launch.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cuda/arg_pack.h"
#include "cuda/kernels/activation.cuh"
#include "cuda/kernels/faces.cuh"
#include "cuda/kernels/launch.h"
#include "cuda/kernels/softmax.cuh"
#include "cuda/sim/sim.h"
#include "tests/cuda/runtime_test_common.h"

namespace anvil::cuda {
namespace {

using namespace testing;
namespace k = kernels;

TEST(CudaSimRuntime, Identity) {
  auto rt = simRuntime();
  EXPECT_TRUE(rt->simulated());
  EXPECT_NE(rt->name().find("cuda sim"), std::string::npos) << rt->name();
}

TEST(CudaSimRuntime, AllocationsAreAligned) { checkAllocationAlignment(*simRuntime()); }

TEST(CudaSimRuntime, ImpossibleAllocationsFailCleanly) {
  auto rt = simRuntime();
  expectError([&] { rt->allocate(SIZE_MAX - 3); }, ErrorCode::kRuntimeError,
              "out of memory allocating");
  expectError([&] { rt->allocateHost(SIZE_MAX); }, ErrorCode::kRuntimeError,
              "bytes of pinned host memory");
}

TEST(CudaSimRuntime, OrderingOnOneStream) {
  auto rt = simRuntime();
  checkOrderingOnOneStream(*rt, Stream{});
  const Stream s = rt->createStream();
  checkOrderingOnOneStream(*rt, s);
  rt->destroyStream(s);
}

TEST(CudaSimRuntime, HostRunsAhead) { checkAsyncRunsAhead(*simRuntime()); }
TEST(CudaSimRuntime, TwoStreamsWithAnEvent) { checkTwoStreamsWithAnEvent(*simRuntime()); }
TEST(CudaSimRuntime, DefaultStreamIsIndependent) { checkDefaultStreamIsIndependent(*simRuntime()); }
TEST(CudaSimRuntime, DestroyDrains) { checkDestroyDrains(*simRuntime()); }
TEST(CudaSimRuntime, HandleMisuse) { checkHandleMisuse(*simRuntime()); }
TEST(CudaSimRuntime, GraphReplay) { checkGraphReplay(*simRuntime()); }

TEST(CudaSimRuntime, GraphCaptureMisuse) {
  auto rt = simRuntime();
  const Stream s = rt->createStream();
  const Event e = rt->createEvent();
  rt->record(e, Stream{});
  const std::string id = std::to_string(s.id);
  expectError([&] { rt->endCapture(s); }, ErrorCode::kInvalidArgument,
              "endCapture: stream " + id + " is not capturing");
  rt->beginCapture(s);
  expectError([&] { rt->beginCapture(s); }, ErrorCode::kInvalidArgument, "is already capturing");
  expectError([&] { rt->synchronize(s); }, ErrorCode::kInvalidArgument,
              "synchronize(stream " + id + "): the stream is capturing a graph");
  expectError([&] { rt->query(s); }, ErrorCode::kInvalidArgument, "is capturing a graph");
  expectError([&] { rt->record(e, s); }, ErrorCode::kUnsupported,
              "record on stream " + id + ", which is capturing a graph");
  expectError([&] { rt->wait(s, e); }, ErrorCode::kUnsupported, "which is capturing a graph");
  const Graph empty = rt->endCapture(s);
  EXPECT_NO_THROW(rt->launchGraph(empty, s));
  rt->synchronize(s);
  expectError([&] { rt->launchGraph(Graph{1u << 30}, s); }, ErrorCode::kInvalidArgument,
              "was never created by this runtime");
  rt->destroyStream(s);
}

// A replay checks the captured buffers again: one freed since the capture fails the replay
// before any of it is queued.
TEST(CudaSimRuntime, GraphReplayAfterFreeIsCaught) {
  auto rt = simRuntime();
  const Stream s = rt->createStream();
  auto* d = static_cast<float*>(rt->allocate(64 * sizeof(float)));
  rt->beginCapture(s);
  rt->memsetAsync(d, 0, 64 * sizeof(float), s);
  launchActivation(*rt, s, Activation::kSilu, DataType::kF32, d, d, 64);
  const Graph g = rt->endCapture(s);
  rt->launchGraph(g, s);
  rt->synchronize(s);
  rt->free(d);
  expectError([&] { rt->launchGraph(g, s); }, ErrorCode::kInvalidArgument,
              "graph " + std::to_string(g.id) + ": memset of 256 bytes at ");
  expectError([&] { rt->launchGraph(g, s); }, ErrorCode::kInvalidArgument,
              ": use after free: destination");
  EXPECT_TRUE(rt->query(s));
  rt->destroyStream(s);
}

TEST(CudaSimRuntime, AFailingGraphNamesItself) {
  auto rt = simRuntime();
  const Stream s = rt->createStream();
  rt->beginCapture(s);
  rt->launchHost(s, [](void*) { throw std::runtime_error("no"); }, nullptr);
  const Graph g = rt->endCapture(s);
  rt->launchGraph(g, s);
  expectError([&] { rt->synchronize(s); }, ErrorCode::kRuntimeError,
              "stream " + std::to_string(s.id) + ": graph " + std::to_string(g.id) +
                  ": host function failed: no");
  EXPECT_THROW(rt->destroyStream(s), Error);
}

TEST(CudaSimRuntime, EventTimesFollowTheQueue) {
  auto rt = simRuntime();
  const Stream s = rt->createStream();
  const Event a = rt->createEvent(), b = rt->createEvent();
  Gate gate;
  rt->record(a, s);
  gate.enqueue(*rt, s);
  rt->record(b, s);
  gate.waitReached();
  EXPECT_TRUE(rt->query(a));
  EXPECT_FALSE(rt->query(b));
  expectError([&] { rt->elapsedMs(a, b); }, ErrorCode::kInvalidArgument,
              "event " + std::to_string(b.id) + " has not completed");
  gate.open();
  rt->synchronize(b);
  EXPECT_GE(rt->elapsedMs(a, b), 0.0f);
  EXPECT_LE(rt->elapsedMs(b, a), 0.0f);
  // Re-recording moves the event to the new point of the queue.
  Gate second;
  second.enqueue(*rt, s);
  rt->record(a, s);
  second.waitReached();
  EXPECT_FALSE(rt->query(a));
  second.open();
  rt->synchronize(a);
  EXPECT_GE(rt->elapsedMs(b, a), 0.0f);
  rt->destroyStream(s);
}

// Several host threads, each with its own stream, one runtime (run under TSan too).
TEST(CudaSimRuntime, HostThreadsShareARuntime) {
  auto rt = simRuntime();
  const std::size_t n = 1000;
  const std::vector<float> x = makeInput<float>(n, 8);
  std::vector<double> want(n);
  for (std::size_t i = 0; i < n; ++i) want[i] = referenceActivation(Activation::kGeluErf, x[i]);
  std::vector<std::vector<float>> out(4, std::vector<float>(n));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const Stream s = rt->createStream();
      for (int rep = 0; rep < 5; ++rep) {
        DeviceBuffer<float> d(*rt, n);
        rt->copyAsync(d.get(), x.data(), d.bytes(), CopyKind::kHostToDevice, s);
        launchActivation(*rt, s, Activation::kGeluErf, DataType::kF32, d.get(), d.get(), n);
        rt->copyAsync(out[t].data(), d.get(), d.bytes(), CopyKind::kDeviceToHost, s);
        rt->synchronize(s);
      }
      rt->destroyStream(s);
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(compare(out[t].data(), want), "") << "thread " << t;
}

// ---- the device-memory registry ----

TEST(CudaSimRuntime, UnknownPointers) {
  auto rt = simRuntime();
  std::vector<float> host(64);
  DeviceBuffer<float> d(*rt, 64);
  expectError(
      [&] { rt->copy(host.data(), host.data(), 256, CopyKind::kHostToDevice); },
      ErrorCode::kInvalidArgument,
      "host-to-device copy of 256 bytes: destination [");
  expectError([&] { rt->copy(host.data(), host.data(), 256, CopyKind::kHostToDevice); },
              ErrorCode::kInvalidArgument, "is not device memory allocated by this runtime");
  expectError([&] { rt->memsetAsync(host.data(), 0, 8, Stream{}); },
              ErrorCode::kInvalidArgument, "memset of 8 bytes: destination");
  expectError([&] { rt->free(host.data()); }, ErrorCode::kInvalidArgument,
              "not device memory allocated by this runtime");
  expectError([&] { rt->free(d.get() + 4); }, ErrorCode::kInvalidArgument,
              "points 16 bytes into device allocation");
  expectError([&] { rt->freeHost(host.data()); }, ErrorCode::kInvalidArgument,
              "not pinned host memory allocated by this runtime");
  // The host side of a copy given device memory: a wrong copy kind.
  DeviceBuffer<float> e(*rt, 64);
  expectError([&] { rt->copy(d.get(), e.get(), 256, CopyKind::kHostToDevice); },
              ErrorCode::kInvalidArgument, "is device memory; host-to-device is the wrong copy kind");
  // A launch over host memory.
  expectError(
      [&] {
        launchActivation(*rt, Stream{}, Activation::kRelu, DataType::kF32, host.data(),
                         host.data(), 64);
      },
      ErrorCode::kInvalidArgument,
      "launch of f32_relu_gridstride_block256 grid (1,1,1) block (256,1,1) shared 0: input [");
}

// isDeviceMemory (how a context checks a buffer bound with MemoryLocation::kDevice): live
// allocations of this runtime, whole ranges inside one, nothing else.
TEST(CudaSimRuntime, IsDeviceMemoryKnowsItsAllocations) {
  auto rt = simRuntime(), other = simRuntime();
  std::vector<float> host(64);
  void* d = rt->allocate(64 * sizeof(float));
  EXPECT_TRUE(rt->isDeviceMemory(d, 64 * sizeof(float)));
  EXPECT_TRUE(rt->isDeviceMemory(static_cast<float*>(d) + 63, sizeof(float)));
  EXPECT_FALSE(rt->isDeviceMemory(d, 64 * sizeof(float) + 1));  // one byte past its end
  EXPECT_FALSE(rt->isDeviceMemory(host.data(), 4));
  EXPECT_FALSE(other->isDeviceMemory(d, 4));  // another runtime's
  rt->free(d);
  EXPECT_FALSE(rt->isDeviceMemory(d, 4));  // freed
}

TEST(CudaSimRuntime, OutOfBounds) {
  auto rt = simRuntime();
  DeviceBuffer<float> d(*rt, 100);  // 400 bytes, 512 reserved: the check uses 400
  std::vector<float> host(200);
  expectError(
      [&] { rt->copy(d.get(), host.data(), 404, CopyKind::kHostToDevice); },
      ErrorCode::kInvalidArgument,
      "out of bounds: destination");
  expectError([&] { rt->copy(d.get(), host.data(), 404, CopyKind::kHostToDevice); },
              ErrorCode::kInvalidArgument, "runs 4 bytes past the end of device allocation");
  expectError([&] { rt->copy(host.data(), d.get() + 50, 204, CopyKind::kDeviceToHost); },
              ErrorCode::kInvalidArgument, "out of bounds: source");
  expectError([&] { rt->memsetAsync(d.get() + 99, 0, 8, Stream{}); }, ErrorCode::kInvalidArgument,
              "runs 4 bytes past the end");
  expectError(
      [&] {
        launchActivation(*rt, Stream{}, Activation::kTanh, DataType::kF32, d.get(), d.get(), 101);
      },
      ErrorCode::kInvalidArgument, "out of bounds: input");
  // The last byte is fine.
  EXPECT_NO_THROW(rt->copy(d.get(), host.data(), 400, CopyKind::kHostToDevice));
}

TEST(CudaSimRuntime, UseAfterFreeAndDoubleFree) {
  auto rt = simRuntime();
  auto* p = static_cast<float*>(rt->allocate(1024));
  std::vector<float> host(256);
  rt->free(p);
  expectError([&] { rt->copy(p, host.data(), 1024, CopyKind::kHostToDevice); },
              ErrorCode::kInvalidArgument, "use after free: destination");
  expectError([&] { rt->copy(host.data(), p + 10, 8, CopyKind::kDeviceToHost); },
              ErrorCode::kInvalidArgument, "which was freed");
  expectError(
      [&] { launchSoftmaxRows(*rt, Stream{}, p, p, 2, 3); }, ErrorCode::kInvalidArgument,
      "launch of f32_softmax_row_block256 grid (2,1,1) block (256,1,1) shared 0: use after free: "
      "input");
  expectError([&] { rt->free(p); }, ErrorCode::kInvalidArgument,
              "double free of device allocation");
  void* h = rt->allocateHost(64);
  rt->freeHost(h);
  expectError([&] { rt->freeHost(h); }, ErrorCode::kInvalidArgument, "freed twice?");
}

TEST(CudaSimRuntime, FreeWaitsForQueuedWork) {
  auto rt = simRuntime();
  const Stream s = rt->createStream();
  const std::size_t n = 1 << 16;
  const std::vector<float> x(n, 1.5f);
  std::vector<float> out(n);
  auto* d = static_cast<float*>(rt->allocate(n * sizeof(float)));
  rt->copyAsync(d, x.data(), n * sizeof(float), CopyKind::kHostToDevice, s);
  launchActivation(*rt, s, Activation::kSilu, DataType::kF32, d, d, n);
  rt->copyAsync(out.data(), d, n * sizeof(float), CopyKind::kDeviceToHost, s);
  rt->free(d);  // returns once the three ops above are done
  EXPECT_TRUE(rt->query(s));
  EXPECT_FLOAT_EQ(out[n - 1], 1.5f / (1.0f + std::exp(-1.5f)));
  rt->destroyStream(s);
}

// ---- sticky errors ----

void throwingHostFunction(void*) { throw std::runtime_error("the host function failed"); }

__global__ void divergentBarrier(int* out) {
  if (threadIdx.x == 0) return;  // thread 0 never reaches the barrier
  __syncthreads();
  out[threadIdx.x] = 1;
}

TEST(CudaSimRuntime, ErrorsOfQueuedWorkAreSticky) {
  auto rt = simRuntime();
  const Stream s = rt->createStream(), other = rt->createStream();
  const Event after = rt->createEvent();
  Gate gate;  // holds s until everything is queued: enqueueing on a failed stream throws
  gate.enqueue(*rt, s);
  rt->launchHost(s, &throwingHostFunction, nullptr);
  rt->record(after, s);  // will never be reached
  rt->wait(other, after);
  gate.open();
  const std::string sticky =
      "cuda sim: stream " + std::to_string(s.id) + ": host function failed: the host function failed";
  expectError([&] { rt->synchronize(s); }, ErrorCode::kRuntimeError, sticky);
  expectError([&] { rt->synchronize(s); }, ErrorCode::kRuntimeError, sticky);  // still there
  expectError([&] { rt->query(s); }, ErrorCode::kRuntimeError, sticky);
  expectError([&] { rt->launchHost(s, &Gate::hold, nullptr); }, ErrorCode::kRuntimeError,
              sticky);
  // The event behind the failure fails too, and so does the stream waiting on it.
  expectError([&] { rt->synchronize(after); }, ErrorCode::kRuntimeError, sticky);
  expectError([&] { rt->synchronize(other); }, ErrorCode::kRuntimeError,
              "stream " + std::to_string(other.id) + ": wait for event " +
                  std::to_string(after.id) + " failed: " + sticky);
  expectError([&] { rt->synchronizeDevice(); }, ErrorCode::kRuntimeError, "failed");
  // Destroying a failed stream reports its error once more; the handle is gone after.
  expectError([&] { rt->destroyStream(s); }, ErrorCode::kRuntimeError, sticky);
  expectError([&] { rt->query(s); }, ErrorCode::kInvalidArgument, "was destroyed");
  expectError([&] { rt->destroyStream(other); }, ErrorCode::kRuntimeError, "wait for event");
  // Other streams are unaffected.
  EXPECT_NO_THROW(rt->synchronize(Stream{}));
}

TEST(CudaSimRuntime, AKernelErrorIsStickyAndNamesTheLaunch) {
  auto rt = simRuntime();
  const Stream s = rt->createStream();
  DeviceBuffer<int> out(*rt, 64);
  const auto pack = packArgs<int*>(out.get());
  KernelLaunch kl;
  kl.name = "test_divergent_barrier";
  kl.args = &pack;
  kl.argBytes = sizeof pack;
  kl.sim = &k::simFace<&divergentBarrier>;
  rt->launch(kl, LaunchShape{Dim3{1}, Dim3{64}, 0}, s);
  expectError([&] { rt->synchronize(s); }, ErrorCode::kRuntimeError,
              "launch of test_divergent_barrier grid (1,1,1) block (64,1,1) shared 0 failed: "
              "cuda sim: deadlock in block (0,0,0)");
  expectError([&] { rt->destroyStream(s); }, ErrorCode::kRuntimeError, "deadlock");
}

TEST(CudaSimRuntime, LaunchErrors) {
  auto rt = simRuntime();
  const auto pack = packArgs<int>(1);
  KernelLaunch kl;
  kl.name = "no_such_kernel";
  kl.args = &pack;
  kl.argBytes = sizeof pack;
  expectError([&] { rt->launch(kl, LaunchShape{}, Stream{}); }, ErrorCode::kUnsupported,
              "launch of no_such_kernel grid (1,1,1) block (1,1,1) shared 0: the kernel has no "
              "simulated build");
  kl.name = "f32_relu_gridstride_block256";
  expectError([&] { rt->launch(kl, LaunchShape{}, Stream{}); }, ErrorCode::kInternal,
              "the kernel takes 24 bytes of arguments, the launch passes 4");
  kl.sim = &k::simFace<&divergentBarrier>;
  expectError([&] { rt->launch(kl, LaunchShape{Dim3{1}, Dim3{2048}, 0}, Stream{}); },
              ErrorCode::kInvalidArgument, "invalid launch configuration");
  expectError([&] { rt->launch(kl, LaunchShape{Dim3{0}, Dim3{32}, 0}, Stream{}); },
              ErrorCode::kInvalidArgument, "invalid launch configuration");
  expectError([&] { rt->nativeStream(Stream{}); }, ErrorCode::kUnsupported,
              "has no native cudaStream_t");
  expectError([&] { rt->adoptStream(nullptr); }, ErrorCode::kUnsupported,
              "the sim has no CUDA streams to adopt");
  KernelLaunch unnamed = kl;
  unnamed.name = nullptr;
  expectError([&] { rt->launch(unnamed, LaunchShape{}, Stream{}); }, ErrorCode::kInvalidArgument,
              "cuda sim: a kernel launch without a name");
  KernelLaunch noArgs = kl;
  noArgs.args = nullptr;
  expectError([&] { rt->launch(noArgs, LaunchShape{}, Stream{}); }, ErrorCode::kInvalidArgument,
              "4 bytes of arguments at a null pointer");
  KernelLaunch noRanges = kl;
  noRanges.rangeCount = 2;
  expectError([&] { rt->launch(noRanges, LaunchShape{}, Stream{}); },
              ErrorCode::kInvalidArgument, "2 device ranges at a null pointer");
}

// ---- our kernels through a sim stream: the bits of a direct sim::launch ----

template <typename T>
void (*activationKernel(Activation a))(const T*, T*, std::int64_t) {
  switch (a) {
    case Activation::kRelu:
      return &k::activation_gridstride<T, Activation::kRelu>;
    case Activation::kSigmoid:
      return &k::activation_gridstride<T, Activation::kSigmoid>;
    case Activation::kTanh:
      return &k::activation_gridstride<T, Activation::kTanh>;
    case Activation::kGeluErf:
      return &k::activation_gridstride<T, Activation::kGeluErf>;
    case Activation::kSilu:
      return &k::activation_gridstride<T, Activation::kSilu>;
    default:  // the fused-epilogue-only activations have no standalone kernel
      break;
  }
  return nullptr;
}

template <typename T>
void checkActivationBits(DeviceRuntime& rt, Stream s, Activation act, std::int64_t n) {
  SCOPED_TRACE(activationKernelName(act, dtypeOf<T>()) + " n=" + std::to_string(n));
  const std::vector<T> x = makeInput<T>(n, 2024 + static_cast<std::uint32_t>(n));
  std::vector<T> direct(n);
  sim::launch(dim3(k::activationGrid(n)), dim3(k::kActivationBlock), 0, activationKernel<T>(act),
              x.data(), direct.data(), n);
  DeviceBuffer<T> dx(rt, n), dy(rt, n);
  Guarded<T> got(n);
  rt.copyAsync(dx.get(), x.data(), dx.bytes(), CopyKind::kHostToDevice, s);
  launchActivation(rt, s, act, dtypeOf<T>(), dx.get(), dy.get(), n);
  rt.copyAsync(got.data(), dy.get(), dy.bytes(), CopyKind::kDeviceToHost, s);
  rt.synchronize(s);
  EXPECT_EQ(std::memcmp(got.data(), direct.data(), n * sizeof(T)), 0);
  std::vector<double> want(n);
  for (std::int64_t i = 0; i < n; ++i) want[i] = referenceActivation(act, toF(x[i]));
  EXPECT_EQ(compare(got.data(), want), "");
  EXPECT_EQ(got.guardDamage(), "");
}

TEST(CudaSimRuntime, ActivationsGiveTheBitsOfSimLaunch) {
  auto rt = simRuntime();
  const Stream s = rt->createStream();
  for (Activation act : kAllActivations) {
    for (std::int64_t n : {1, 7, 257, 4099}) {
      checkActivationBits<float>(*rt, s, act, n);
      checkActivationBits<__half>(*rt, s, act, n);
    }
  }
  rt->destroyStream(s);
}

TEST(CudaSimRuntime, SoftmaxGivesTheBitsOfSimLaunch) {
  auto rt = simRuntime();
  const Stream s = rt->createStream();
  for (std::int64_t cols : {1, 7, 33, 257, 1000}) {
    for (std::int64_t rows : {1, 3, 5}) {
      SCOPED_TRACE("softmax rows=" + std::to_string(rows) + " cols=" + std::to_string(cols));
      const std::int64_t n = rows * cols;
      const std::vector<float> x = makeInput<float>(n, 31 + static_cast<std::uint32_t>(cols));
      std::vector<float> direct(n);
      sim::launch(dim3(k::softmaxGrid(rows)), dim3(k::kSoftmaxBlock), 0,
                  &k::f32_softmax_row_block<k::kSoftmaxBlock>, x.data(), direct.data(), rows, cols);
      DeviceBuffer<float> d(*rt, n);
      rt->copyAsync(d.get(), x.data(), d.bytes(), CopyKind::kHostToDevice, s);
      launchSoftmaxRows(*rt, s, d.get(), d.get(), rows, cols);  // in place
      Guarded<float> got(n);
      rt->copyAsync(got.data(), d.get(), d.bytes(), CopyKind::kDeviceToHost, s);
      rt->synchronize(s);
      EXPECT_EQ(std::memcmp(got.data(), direct.data(), n * sizeof(float)), 0);
      EXPECT_EQ(compare(got.data(), referenceSoftmax(x, rows, cols)), "");
      EXPECT_EQ(got.guardDamage(), "");
    }
  }
  rt->destroyStream(s);
}

}  // namespace
}  // namespace anvil::cuda
