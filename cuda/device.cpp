// Device queries and the checked launchers of cuda/device.h: arguments are validated here,
// before any CUDA call, and every CUDA failure becomes an anvil::Error that names the call
// or kernel and the CUDA error.
#include "cuda/device.h"

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "anvil/error.h"
#include "cuda/arg_pack.h"
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

// Checks a launchActivation call; returns the kernel's name, or "" when there is nothing to do.
// The checks return the kernel's name from tables built once: a launch allocates nothing
// (a CUDA step's run() calls these); "" when there is nothing to launch.
const std::string& checkActivation(Activation act, DataType dtype, const void* x, const void* y,
                            std::int64_t n) {
  if (!validActivation(act)) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "launchActivation: unknown activation ",
                static_cast<int>(act));
  }
  if (!validDataType(dtype)) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "launchActivation(", activationName(act),
                "): unsupported element type ", dtypeName(dtype), " (", static_cast<int>(dtype),
                "); expected f32 or f16");
  }
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (int a = 0; a < kActivationCount; ++a)
      for (DataType t : {DataType::kF32, DataType::kF16}) v.push_back(activationKernelName(Activation(a), t));
    return v;
  }();
  static const std::string none;
  const std::string& name = names[size_t(static_cast<int>(act)) * 2 + (dtype == DataType::kF32 ? 0 : 1)];
  if (n < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": element count ", n, " is negative");
  if (n == 0) return none;
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
  return name;
}

const std::string& checkSoftmaxRows(const float* x, const float* y, std::int64_t rows,
                                    std::int64_t cols) {
  static const std::string name = softmaxRowsKernelName(DataType::kF32), none;
  if (rows < 0 || cols < 0) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": shape [", rows, ", ", cols,
                "] has a negative dimension");
  }
  if (rows == 0 || cols == 0) return none;
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
  return name;
}

// One launch through a runtime: the pack's types are the kernel's parameters.
template <typename Pack>
void launchPacked(DeviceRuntime& runtime, Stream stream, const std::string& name,
                  const Pack& pack, const LaunchShape& shape, const DeviceRange (&ranges)[2]) {
  KernelLaunch k;
  k.name = name.c_str();
  k.args = &pack;
  k.argBytes = sizeof pack;
  k.ranges = ranges;
  k.rangeCount = 2;
  runtime.launch(k, shape, stream);
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

std::string versionString() {
  int driver = 0, runtime = 0;
  if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
  if (cudaRuntimeGetVersion(&runtime) != cudaSuccess) runtime = 0;
  (void)cudaGetLastError();
  return ::anvil::detail::concat("driver ", driver, " runtime ", runtime);
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
  const std::string& name = checkActivation(act, dtype, x, y, n);
  if (name.empty()) return;
  (void)cudaGetLastError();  // report this launch's error, not an earlier one
  checkCuda(kernels::launchActivation(act, dtype, x, y, n, stream),
            ::anvil::detail::concat("launching ", name, " over ", n, " elements"));
}

void launchActivation(DeviceRuntime& runtime, Stream stream, Activation act, DataType dtype,
                      const void* x, void* y, std::int64_t n) {
  const std::string& name = checkActivation(act, dtype, x, y, n);
  if (name.empty()) return;
  const std::size_t bytes = static_cast<std::size_t>(n) * (dtype == DataType::kF32 ? 4 : 2);
  const DeviceRange ranges[2] = {{x, bytes, "input"}, {y, bytes, "output"}};
  const LaunchShape shape{Dim3{kernels::activationGrid(n)},
                          Dim3{static_cast<unsigned>(kernels::kActivationBlock)}, 0};
  if (dtype == DataType::kF32) {
    launchPacked(runtime, stream, name, packArgs<const float*, float*, std::int64_t>(x, y, n),
                 shape, ranges);
  } else {
    launchPacked(runtime, stream, name, packArgs<const __half*, __half*, std::int64_t>(x, y, n),
                 shape, ranges);
  }
}

void launchSoftmaxRows(const float* x, float* y, std::int64_t rows, std::int64_t cols,
                       cudaStream_t stream) {
  const std::string& name = checkSoftmaxRows(x, y, rows, cols);
  if (name.empty()) return;
  (void)cudaGetLastError();
  checkCuda(kernels::launchSoftmaxRowsF32(x, y, rows, cols, stream),
            ::anvil::detail::concat("launching ", name, " over [", rows, ", ", cols, "]"));
}

void launchSoftmaxRows(DeviceRuntime& runtime, Stream stream, const float* x, float* y,
                       std::int64_t rows, std::int64_t cols) {
  const std::string& name = checkSoftmaxRows(x, y, rows, cols);
  if (name.empty()) return;
  const std::size_t bytes = static_cast<std::size_t>(rows * cols) * sizeof(float);
  const DeviceRange ranges[2] = {{x, bytes, "input"}, {y, bytes, "output"}};
  const LaunchShape shape{Dim3{kernels::softmaxGrid(rows)},
                          Dim3{static_cast<unsigned>(kernels::kSoftmaxBlock)}, 0};
  launchPacked(runtime, stream, name,
               packArgs<const float*, float*, std::int64_t, std::int64_t>(x, y, rows, cols),
               shape, ranges);
}

}  // namespace anvil::cuda
