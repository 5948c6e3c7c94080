// Device queries and the checked launchers of cuda/device.h: arguments are validated here,
// before any CUDA call, and every CUDA failure becomes an anvil::Error that names the call
// or kernel and the CUDA error.
#include "cuda/device.h"

#include <cuda_runtime_api.h>

#include <cstdint>

#include "anvil/error.h"
#include "cuda/kernels/launch.h"

namespace anvil::cuda {
namespace {

std::string describe(cudaError_t e) {
  return ::anvil::detail::concat(cudaGetErrorName(e), " (", static_cast<int>(e),
                                 "): ", cudaGetErrorString(e));
}

void checkCuda(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) ANVIL_THROW(ErrorCode::kRuntimeError, what, " failed: ", describe(e));
}

void checkDevice(int device) {
  const int count = deviceCount();
  if (device < 0 || device >= count) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "CUDA device ", device, " does not exist: ", count,
                count == 0 ? " devices (no GPU or no driver)" : " devices");
  }
}

bool validActivation(Activation a) {
  return static_cast<int>(a) < kActivationCount;  // the underlying type is unsigned
}
bool validDataType(DataType t) { return t == DataType::kF32 || t == DataType::kF16; }

// Exact aliasing is fine for our elementwise-per-thread kernels; partial overlap races.
bool partiallyOverlap(const void* x, const void* y, std::int64_t bytes) {
  const auto a = reinterpret_cast<std::uintptr_t>(x);
  const auto b = reinterpret_cast<std::uintptr_t>(y);
  return a != b && a < b + static_cast<std::uintptr_t>(bytes) &&
         b < a + static_cast<std::uintptr_t>(bytes);
}

}  // namespace

int deviceCount() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice) {
    (void)cudaGetLastError();  // not sticky; keep it out of the next launch check
    return 0;
  }
  checkCuda(e, "cudaGetDeviceCount");
  return count;
}

std::string deviceName(int device) {
  checkDevice(device);
  cudaDeviceProp prop{};
  checkCuda(cudaGetDeviceProperties(&prop, device),
            ::anvil::detail::concat("cudaGetDeviceProperties(", device, ")"));
  return prop.name;
}

ComputeCapability computeCapability(int device) {
  checkDevice(device);
  ComputeCapability cc;
  checkCuda(
      cudaDeviceGetAttribute(&cc.major, cudaDevAttrComputeCapabilityMajor, device),
      ::anvil::detail::concat("cudaDeviceGetAttribute(ComputeCapabilityMajor, ", device, ")"));
  checkCuda(
      cudaDeviceGetAttribute(&cc.minor, cudaDevAttrComputeCapabilityMinor, device),
      ::anvil::detail::concat("cudaDeviceGetAttribute(ComputeCapabilityMinor, ", device, ")"));
  return cc;
}

std::string activationKernelName(Activation act, DataType dtype) {
  return ::anvil::detail::concat(dtypeName(dtype), "_", activationName(act), "_gridstride_block",
                                 kernels::kActivationBlock);
}

std::string softmaxRowsKernelName(DataType dtype) {
  return ::anvil::detail::concat(dtypeName(dtype), "_softmax_row_block", kernels::kSoftmaxBlock);
}

void launchActivation(Activation act, DataType dtype, const void* x, void* y, std::int64_t n,
                      cudaStream_t stream) {
  if (!validActivation(act)) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "launchActivation: unknown activation ",
                static_cast<int>(act));
  }
  if (!validDataType(dtype)) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "launchActivation(", activationName(act),
                "): unsupported element type ", dtypeName(dtype), " (", static_cast<int>(dtype),
                "); expected f32 or f16");
  }
  const std::string name = activationKernelName(act, dtype);
  if (n < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": element count ", n, " is negative");
  if (n == 0) return;
  if (n > INT64_MAX / 4)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": element count ", n, " is too large");
  if (x == nullptr || y == nullptr) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null ", x == nullptr ? "input" : "output",
                " pointer for ", n, " elements");
  }
  const std::int64_t bytes = n * (dtype == DataType::kF32 ? 4 : 2);
  if (partiallyOverlap(x, y, bytes)) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name,
                ": input and output overlap partially; they must be equal (in place) or disjoint");
  }
  (void)cudaGetLastError();  // report this launch's error, not an earlier one
  checkCuda(kernels::launchActivation(act, dtype, x, y, n, stream),
            ::anvil::detail::concat("launching ", name, " over ", n, " elements"));
}

void launchSoftmaxRows(const float* x, float* y, std::int64_t rows, std::int64_t cols,
                       cudaStream_t stream) {
  const std::string name = softmaxRowsKernelName(DataType::kF32);
  if (rows < 0 || cols < 0) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": shape [", rows, ", ", cols,
                "] has a negative dimension");
  }
  if (rows == 0 || cols == 0) return;
  if (rows > INT64_MAX / 4 / cols) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": shape [", rows, ", ", cols,
                "] is too large to address");
  }
  if (x == nullptr || y == nullptr) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null ", x == nullptr ? "input" : "output",
                " pointer for shape [", rows, ", ", cols, "]");
  }
  if (partiallyOverlap(x, y, rows * cols * 4)) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name,
                ": input and output overlap partially; they must be equal (in place) or disjoint");
  }
  (void)cudaGetLastError();
  checkCuda(kernels::launchSoftmaxRowsF32(x, y, rows, cols, stream),
            ::anvil::detail::concat("launching ", name, " over [", rows, ", ", cols, "]"));
}

}  // namespace anvil::cuda
