// The thin host API of the CUDA backend: device queries and launchers for our own kernels.
// It needs no CUDA header; errors are anvil::Error with the CUDA error named in the message.
#pragma once

#include <cstdint>
#include <string>

#include "cuda/runtime.h"
#include "cuda/types.h"

// The same declaration as CUDA's driver_types.h, so callers need not include it.
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

namespace anvil::cuda {

// Number of CUDA devices. 0 where there is no GPU: no driver (cudaGetDeviceCount fails with
// cudaErrorInsufficientDriver, 35) or a driver and no device (cudaErrorNoDevice, 100). Any
// other failure throws kRuntimeError.
int deviceCount();

// Name of device `device` (e.g. "NVIDIA H100 80GB HBM3"); kInvalidArgument if it does not
// exist.
std::string deviceName(int device);

struct ComputeCapability {
  int major = 0;
  int minor = 0;
};
ComputeCapability computeCapability(int device);

// "driver 13000 runtime 13000" (cudaDriverGetVersion / cudaRuntimeGetVersion; driver 0
// where there is none): what a timing cache entry measured on a GPU also depends on.
std::string versionString();

// The kernel a launcher runs, for messages and profiles: "f16_gelu_erf_gridstride_block256".
std::string activationKernelName(Activation act, DataType dtype);
std::string softmaxRowsKernelName(DataType dtype);  // "f32_softmax_row_block256"

// The launchers run on a DeviceRuntime (cuda/runtime.h) or, in their first form, straight on a
// cudaStream_t of the current device. Both forms check the same arguments and run the same
// kernel with the same launch shape; on the sim runtime x and y must be its device memory.

// y[i] = act(x[i]) for i < n; x and y are device pointers to n elements of dtype (float or
// __half). x == y (in place) is allowed, partial overlap is not. Asynchronous on `stream`
// (nullptr: the default stream); throws kInvalidArgument for bad arguments and
// kRuntimeError if the launch fails (no GPU, bad pointer from an earlier failure, ...).
void launchActivation(Activation act, DataType dtype, const void* x, void* y, std::int64_t n,
                      cudaStream_t stream);
void launchActivation(DeviceRuntime& runtime, Stream stream, Activation act, DataType dtype,
                      const void* x, void* y, std::int64_t n);

// Softmax over each of `rows` contiguous rows of `cols` floats (ONNX Softmax with the last
// axis). x == y (in place) is allowed, partial overlap is not. Asynchronous on `stream`.
void launchSoftmaxRows(const float* x, float* y, std::int64_t rows, std::int64_t cols,
                       cudaStream_t stream);
void launchSoftmaxRows(DeviceRuntime& runtime, Stream stream, const float* x, float* y,
                       std::int64_t rows, std::int64_t cols);

}  // namespace anvil::cuda
