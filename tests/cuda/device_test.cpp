// The device API of cuda/device.h. Argument checks and the no-GPU behaviour run everywhere;
// the kernel comparisons run on a GPU and skip with "no CUDA device" elsewhere.
#include "cuda/device.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "anvil/error.h"
#include "tests/cuda/cuda_test_util.h"

namespace anvil::cuda {
namespace {

using namespace testing;

#define SKIP_WITHOUT_GPU() \
  if (deviceCount() == 0) GTEST_SKIP() << "no CUDA device"

void expectError(const std::function<void()>& f, ErrorCode code, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing \"" << fragment << "\"";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(CudaDevice, CountNeverThrows) {
  int n = -1;
  EXPECT_NO_THROW(n = deviceCount());
  EXPECT_GE(n, 0);
  std::printf("CUDA devices: %d\n", n);
  for (int i = 0; i < n; ++i) {
    const ComputeCapability cc = computeCapability(i);
    std::printf("  %d: %s, sm_%d%d\n", i, deviceName(i).c_str(), cc.major, cc.minor);
    EXPECT_GE(cc.major, 5);
  }
}

TEST(CudaDevice, QueriesOfAMissingDeviceThrow) {
  const int n = deviceCount();
  expectError([&] { deviceName(n); }, ErrorCode::kInvalidArgument,
              "CUDA device " + std::to_string(n) + " does not exist");
  expectError([&] { computeCapability(-1); }, ErrorCode::kInvalidArgument,
              "CUDA device -1 does not exist");
}

TEST(CudaDevice, KernelNames) {
  EXPECT_EQ(activationKernelName(Activation::kGeluErf, DataType::kF16),
            "f16_gelu_erf_gridstride_block256");
  EXPECT_EQ(activationKernelName(Activation::kRelu, DataType::kF32),
            "f32_relu_gridstride_block256");
  EXPECT_EQ(softmaxRowsKernelName(DataType::kF32), "f32_softmax_row_block256");
}

// Checked before any CUDA call, so the same with or without a GPU.
TEST(CudaDevice, BadArgumentsAreRejected) {
  float buf[8];
  expectError([&] { launchActivation(Activation::kSilu, DataType::kF32, buf, buf, -1, nullptr); },
              ErrorCode::kInvalidArgument,
              "f32_silu_gridstride_block256: element count -1 is negative");
  expectError(
      [&] { launchActivation(Activation::kTanh, DataType::kF16, nullptr, buf, 4, nullptr); },
      ErrorCode::kInvalidArgument, "f16_tanh_gridstride_block256: null input pointer");
  expectError(
      [&] { launchActivation(Activation::kRelu, DataType::kF32, buf, buf + 1, 4, nullptr); },
      ErrorCode::kInvalidArgument, "overlap partially");
  expectError(
      [&] { launchActivation(static_cast<Activation>(42), DataType::kF32, buf, buf, 4, nullptr); },
      ErrorCode::kInvalidArgument, "unknown activation 42");
  expectError(
      [&] { launchActivation(Activation::kRelu, static_cast<DataType>(9), buf, buf, 4, nullptr); },
      ErrorCode::kInvalidArgument, "unsupported element type bool (9)");
  expectError([&] { launchActivation(Activation::kRelu, DataType::kBF16, buf, buf, 4, nullptr); },
              ErrorCode::kInvalidArgument,
              "launchActivation(relu): unsupported element type bf16 (16)");
  expectError([&] { launchSoftmaxRows(buf, buf, 2, -3, nullptr); }, ErrorCode::kInvalidArgument,
              "f32_softmax_row_block256: shape [2, -3] has a negative dimension");
  expectError([&] { launchSoftmaxRows(buf, nullptr, 2, 3, nullptr); }, ErrorCode::kInvalidArgument,
              "null output pointer");
  expectError([&] { launchSoftmaxRows(buf, buf + 2, 2, 3, nullptr); }, ErrorCode::kInvalidArgument,
              "overlap partially");
  // Empty work is not an error and touches nothing.
  EXPECT_NO_THROW(
      launchActivation(Activation::kRelu, DataType::kF32, nullptr, nullptr, 0, nullptr));
  EXPECT_NO_THROW(launchSoftmaxRows(nullptr, nullptr, 0, 5, nullptr));
}

TEST(CudaDevice, LaunchWithoutGpuIsAClearError) {
  if (deviceCount() != 0) GTEST_SKIP() << "a CUDA device is present";
  // Never dereferenced: the launch fails first.
  auto* fake = reinterpret_cast<float*>(std::uintptr_t{0x10000});
  expectError(
      [&] { launchActivation(Activation::kRelu, DataType::kF32, fake, fake, 10, nullptr); },
      ErrorCode::kRuntimeError,
      "launching f32_relu_gridstride_block256 over 10 elements failed: cuda");
  expectError([&] { launchSoftmaxRows(fake, fake, 2, 3, nullptr); }, ErrorCode::kRuntimeError,
              "launching f32_softmax_row_block256 over [2, 3] failed: cuda");
}

// ---- on a GPU: the real kernels against the reference loops ----

void check(cudaError_t e, const char* what) {
  ASSERT_EQ(e, cudaSuccess) << what << ": " << cudaGetErrorString(e);
}

// A device copy of a guarded host buffer, guards included.
template <typename T>
class DeviceCopy {
 public:
  explicit DeviceCopy(Guarded<T>& host) : host_(host) {
    bytes_ = host.all().size() * sizeof(T);
    check(cudaMalloc(&base_, bytes_), "cudaMalloc");
    check(cudaMemcpy(base_, host.all().data(), bytes_, cudaMemcpyHostToDevice), "copy in");
  }
  ~DeviceCopy() { cudaFree(base_); }
  T* data() { return static_cast<T*>(base_) + Guarded<T>::kGuard; }
  void copyBack() {
    check(cudaMemcpy(host_.all().data(), base_, bytes_, cudaMemcpyDeviceToHost), "copy out");
  }

 private:
  Guarded<T>& host_;
  void* base_ = nullptr;
  std::size_t bytes_ = 0;
};

template <typename T>
void checkDeviceActivation(Activation act, std::int64_t n, bool inPlace, cudaStream_t stream) {
  SCOPED_TRACE(activationKernelName(act, dtypeOf<T>()) + " n=" + std::to_string(n) +
               (inPlace ? " in place" : ""));
  const std::vector<T> x = makeInput<T>(n, 4321 + static_cast<std::uint32_t>(n));
  std::vector<double> want(n);
  for (std::int64_t i = 0; i < n; ++i) want[i] = referenceActivation(act, toF(x[i]));
  Guarded<T> in(x), out(n);
  DeviceCopy<T> din(in), dout(out);
  T* y = inPlace ? din.data() : dout.data();
  launchActivation(act, dtypeOf<T>(), din.data(), y, n, stream);
  check(cudaStreamSynchronize(stream), "synchronize");
  din.copyBack();
  dout.copyBack();
  // The device's expf/erfcf/tanhf are within a few ulp; 1e-5 relative still holds.
  EXPECT_EQ(compare(inPlace ? in.data() : out.data(), want), "");
  EXPECT_EQ(in.guardDamage(), "");
  EXPECT_EQ(out.guardDamage(), "");
}

const std::int64_t kSizes[] = {1, 7, 33, 257, 1000, 4099, 1 << 20};

TEST(CudaDevice, ActivationsMatchReference) {
  SKIP_WITHOUT_GPU();
  for (Activation act : kAllActivations) {
    for (std::int64_t n : kSizes) {
      checkDeviceActivation<float>(act, n, false, nullptr);
      checkDeviceActivation<__half>(act, n, false, nullptr);
    }
    checkDeviceActivation<float>(act, 1000, true, nullptr);
    checkDeviceActivation<__half>(act, 1000, true, nullptr);
  }
}

TEST(CudaDevice, ActivationOnAStream) {
  SKIP_WITHOUT_GPU();
  cudaStream_t stream = nullptr;
  check(cudaStreamCreate(&stream), "cudaStreamCreate");
  checkDeviceActivation<float>(Activation::kGeluErf, 100003, false, stream);
  check(cudaStreamDestroy(stream), "cudaStreamDestroy");
}

void checkDeviceSoftmax(std::int64_t rows, std::int64_t cols, float shift, bool inPlace) {
  SCOPED_TRACE("softmax rows=" + std::to_string(rows) + " cols=" + std::to_string(cols) +
               (inPlace ? " in place" : ""));
  const std::vector<float> x = makeInput<float>(rows * cols, 17 + static_cast<std::uint32_t>(cols),
                                                -8.0f + shift, 8.0f + shift);
  const std::vector<double> want = referenceSoftmax(x, rows, cols);
  Guarded<float> in(x), out(rows * cols);
  DeviceCopy<float> din(in), dout(out);
  launchSoftmaxRows(din.data(), inPlace ? din.data() : dout.data(), rows, cols, nullptr);
  check(cudaDeviceSynchronize(), "synchronize");
  din.copyBack();
  dout.copyBack();
  EXPECT_EQ(compare(inPlace ? in.data() : out.data(), want), "");
  EXPECT_EQ(in.guardDamage(), "");
  EXPECT_EQ(out.guardDamage(), "");
}

TEST(CudaDevice, SoftmaxMatchesReference) {
  SKIP_WITHOUT_GPU();
  for (std::int64_t cols : {1, 7, 33, 257, 1000, 4099}) {
    for (std::int64_t rows : {1, 3, 65}) checkDeviceSoftmax(rows, cols, 0.0f, false);
  }
  checkDeviceSoftmax(4, 1000, 1000.0f, false);
  checkDeviceSoftmax(5, 257, 0.0f, true);
  // More rows than the grid cap: blocks stride over rows.
  checkDeviceSoftmax(70000, 7, 0.0f, false);
}

}  // namespace
}  // namespace anvil::cuda
