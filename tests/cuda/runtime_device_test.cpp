// The real DeviceRuntime (cuda/runtime_cuda.cpp): without a GPU its factory fails cleanly;
// with one, the contract checks of runtime_test_common.h, which the sim passes too.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "tests/cuda/runtime_test_common.h"

namespace anvil::cuda {
namespace {

using namespace testing;

std::unique_ptr<DeviceRuntime> gpuRuntime() {
  return deviceCount() == 0 ? nullptr : cudaRuntime(0);
}

#define GPU_RUNTIME_OR_SKIP(rt)                       \
  auto rt = gpuRuntime();                             \
  if (!rt) GTEST_SKIP() << "no CUDA device"

TEST(CudaRuntime, FactoryWithoutGpuIsAClearError) {
  if (deviceCount() != 0) GTEST_SKIP() << "a CUDA device is present";
  expectError([] { cudaRuntime(0); }, ErrorCode::kUnsupported, "no CUDA device: cudaGetDeviceCount");
  expectError([] { cudaRuntime(3); }, ErrorCode::kUnsupported, "no GPU or no driver");
}

TEST(CudaRuntime, FactoryRejectsAMissingDevice) {
  const int n = deviceCount();
  if (n == 0) GTEST_SKIP() << "no CUDA device";
  expectError([&] { cudaRuntime(n); }, ErrorCode::kInvalidArgument,
              "CUDA device " + std::to_string(n) + " does not exist");
}

TEST(CudaRuntime, Identity) {
  GPU_RUNTIME_OR_SKIP(rt);
  EXPECT_FALSE(rt->simulated());
  EXPECT_EQ(rt->name().rfind("cuda:0 ", 0), 0u) << rt->name();
  std::printf("%s\n", rt->name().c_str());
}

TEST(CudaRuntime, AllocationsAreAligned) {
  GPU_RUNTIME_OR_SKIP(rt);
  checkAllocationAlignment(*rt);
}

// What a context checks a buffer bound with MemoryLocation::kDevice by: cudaMalloc memory
// is device memory, pageable and pinned host memory are not.
TEST(CudaRuntime, IsDeviceMemoryTellsCudaMallocFromHostMemory) {
  GPU_RUNTIME_OR_SKIP(rt);
  void* d = rt->allocate(1024);
  void* pinned = rt->allocateHost(1024);
  std::vector<float> host(256);
  EXPECT_TRUE(rt->isDeviceMemory(d, 1024));
  EXPECT_FALSE(rt->isDeviceMemory(host.data(), 1024));
  EXPECT_FALSE(rt->isDeviceMemory(pinned, 1024));
  EXPECT_FALSE(rt->isDeviceMemory(nullptr, 4));
  rt->free(d);
  rt->freeHost(pinned);
}

TEST(CudaRuntime, OrderingOnOneStream) {
  GPU_RUNTIME_OR_SKIP(rt);
  checkOrderingOnOneStream(*rt, Stream{});
  const Stream s = rt->createStream();
  checkOrderingOnOneStream(*rt, s);
  rt->destroyStream(s);
}

TEST(CudaRuntime, HostRunsAhead) {
  GPU_RUNTIME_OR_SKIP(rt);
  checkAsyncRunsAhead(*rt);
}

TEST(CudaRuntime, TwoStreamsWithAnEvent) {
  GPU_RUNTIME_OR_SKIP(rt);
  checkTwoStreamsWithAnEvent(*rt);
}

TEST(CudaRuntime, DefaultStreamIsIndependent) {
  GPU_RUNTIME_OR_SKIP(rt);
  checkDefaultStreamIsIndependent(*rt);
}

TEST(CudaRuntime, DestroyDrains) {
  GPU_RUNTIME_OR_SKIP(rt);
  checkDestroyDrains(*rt);
}

TEST(CudaRuntime, HandleMisuse) {
  GPU_RUNTIME_OR_SKIP(rt);
  checkHandleMisuse(*rt);
}

// Work on an adopted caller's stream runs there; destroying the handle leaves the stream.
TEST(CudaRuntime, AdoptedStream) {
  GPU_RUNTIME_OR_SKIP(rt);
  cudaStream_t raw = nullptr;
  ASSERT_EQ(cudaStreamCreate(&raw), cudaSuccess);
  const Stream s = rt->adoptStream(raw);
  EXPECT_EQ(rt->nativeStream(s), static_cast<void*>(raw));
  checkOrderingOnOneStream(*rt, s);
  rt->destroyStream(s);
  EXPECT_EQ(cudaStreamQuery(raw), cudaSuccess);  // still a live stream
  EXPECT_EQ(cudaStreamDestroy(raw), cudaSuccess);
  expectError([&] { rt->adoptStream(nullptr); }, ErrorCode::kInvalidArgument,
              "the default stream is Stream{}");
}

TEST(CudaRuntime, GraphReplay) {
  GPU_RUNTIME_OR_SKIP(rt);
  checkGraphReplay(*rt);
}

TEST(CudaRuntime, SoftmaxThroughTheRuntime) {
  GPU_RUNTIME_OR_SKIP(rt);
  const Stream s = rt->createStream();
  for (std::int64_t cols : {1, 7, 257, 1000}) {
    for (std::int64_t rows : {1, 65}) {
      const std::int64_t n = rows * cols;
      const std::vector<float> x = makeInput<float>(n, 3 + static_cast<std::uint32_t>(cols));
      DeviceBuffer<float> d(*rt, n);
      rt->copyAsync(d.get(), x.data(), d.bytes(), CopyKind::kHostToDevice, s);
      launchSoftmaxRows(*rt, s, d.get(), d.get(), rows, cols);
      std::vector<float> got(n);
      rt->copyAsync(got.data(), d.get(), d.bytes(), CopyKind::kDeviceToHost, s);
      rt->synchronize(s);
      EXPECT_EQ(compare(got.data(), referenceSoftmax(x, rows, cols)), "")
          << rows << "x" << cols;
    }
  }
  rt->destroyStream(s);
}

TEST(CudaRuntime, UnknownKernelIsUnsupported) {
  GPU_RUNTIME_OR_SKIP(rt);
  int arg = 0;
  KernelLaunch kl;
  kl.name = "no_such_kernel";
  kl.args = &arg;
  kl.argBytes = sizeof arg;
  expectError([&] { rt->launch(kl, LaunchShape{}, Stream{}); }, ErrorCode::kUnsupported,
              "kernel no_such_kernel has no device build");
}

}  // namespace
}  // namespace anvil::cuda
