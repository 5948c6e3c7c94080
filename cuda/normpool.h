// The normalization, reduction and pooling launchers of the CUDA backend (kernels in
// cuda/kernels/norm.cuh and pool.cuh): checked, on a DeviceRuntime + Stream, f32, pointers in
// device memory. No CUDA header here; the kernel names are shared with the registries.
#pragma once

#include <cstdint>
#include <string>

#include "cuda/runtime.h"
#include "cuda/types.h"

namespace anvil::cuda {

// The values of kernels::ReduceOpKind (cuda/kernels/norm.cuh).
enum class ReduceKind : int {
  kSum = 0,
  kMean = 1,
  kMax = 2,
  kMin = 3,
  kProd = 4,
  kL1 = 5,
  kL2 = 6,
  kSumSquare = 7,
  kLogSum = 8,
  kLogSumExp = 9
};

// The kernels' names (built once: launches in run() must not allocate).
const std::string& layerNormKernelName(bool warpPerRow);  // "f32_layernorm_row_warp_block256"
const std::string& batchNormKernelName();                 // "f32_batchnorm_gridstride_block256"
const std::string& lpNormKernelName(int p,
                                    bool rows);  // "f32_lp2norm_row_block256", "f32_lp1norm_axis_gridstride_block256"
const std::string& logSoftmaxRowsKernelName();   // "f32_log_softmax_row_block256"
const std::string& softmaxAxisKernelName(bool log);                   // "f32_softmax_axis_gridstride_block256"
const std::string& reduceKernelName(ReduceKind kind, bool perBlock);  // "f32_reduce_mean_row_block256"
const std::string& pool2dKernelName(bool max);                        // "f32_maxpool2d_gridstride_block256"
const std::string& argReduceKernelName(bool max);
// "f32_cumsum_gridstride_block256", "i32_...", "i64_..." (elementBytes 4 or 8, float only 4)
const std::string& cumSumKernelName(int elementBytes, bool isFloat);  // "f32_argmax_gridstride_block256"

// LayerNormalization over `rows` rows of `cols` contiguous floats: y = (x - mean) /
// sqrt(var + epsilon) * scale + bias, scale and bias (optional, may be null) of `cols`
// floats. x == y is allowed. Rows of at most 1024 columns take a warp each, longer ones a block.
void launchLayerNorm(DeviceRuntime& runtime, Stream stream, const float* x, const float* scale, const float* bias,
                     float* y, std::int64_t rows, std::int64_t cols, float epsilon);

// GroupNormalization over x [n, channels, spatial] with `groups` dividing channels: mean and
// variance per (image, group), then y = normalized * scale[ch] + bias[ch] (both of `channels`
// floats, required). InstanceNormalization is groups == channels. x == y is allowed.
void launchGroupNorm(DeviceRuntime& runtime, Stream stream, const float* x, const float* scale, const float* bias,
                     float* y, std::int64_t n, std::int64_t channels, std::int64_t groups, std::int64_t spatial,
                     float epsilon);

// LpNormalization (p 1 or 2) of x [outer, n, inner] along n: y = x / ||x||_p, zero vectors stay
// zero. inner == 1 runs a block per row, any other a thread per column. x == y allowed.
void launchLpNorm(DeviceRuntime& runtime, Stream stream, int p, const float* x, float* y, std::int64_t outer,
                  std::int64_t n, std::int64_t inner);

// Inference BatchNormalization over x [n, channels, spatial]: y = (x - mean[c]) * a[c] + b[c],
// mean, a, b of `channels` floats (a = scale / sqrt(var + eps) and b = B, folded by the caller).
void launchBatchNorm(DeviceRuntime& runtime, Stream stream, const float* x, const float* mean, const float* a,
                     const float* b, float* y, std::int64_t n, std::int64_t channels, std::int64_t spatial);

// Softmax (log false) or LogSoftmax of x viewed as [outer, n, inner] along n; dense, x == y
// allowed. inner == 1 runs a row kernel (one block per row), any other a column kernel.
void launchSoftmaxAxis(DeviceRuntime& runtime, Stream stream, bool log, const float* x, float* y, std::int64_t outer,
                       std::int64_t n, std::int64_t inner);

// y = reduce(x) over the dims of x flagged in `reducedMask` (bit d: dim d), x dense of
// `rank` <= 12 dims; y dense over the kept dims (keepdims does not change its layout).
void launchReduce(DeviceRuntime& runtime, Stream stream, ReduceKind kind, const float* x, float* y, int rank,
                  const std::int64_t* dims, std::uint32_t reducedMask);

// ArgMax (max) / ArgMin of x [outer, n, inner] along n into y [outer, inner] of int64, NaN
// ranking above every number, ties to the first index (or the last with selectLast).
void launchArgReduce(DeviceRuntime& runtime, Stream stream, bool max, const float* x, std::int64_t* y,
                     std::int64_t outer, std::int64_t n, std::int64_t inner, bool selectLast);

// CumSum of x [outer, n, inner] along n, dtype f32, i32 or i64 (integers accumulate in 64 bits
// and wrap on the store). x == y is allowed.
void launchCumSum(DeviceRuntime& runtime, Stream stream, DataType dtype, const void* x, void* y, std::int64_t outer,
                  std::int64_t n, std::int64_t inner, bool exclusive, bool reverse);

struct Pool2dDesc {
  bool max = true;
  const float* x = nullptr;
  float* y = nullptr;
  std::int64_t n = 0, c = 0, h = 0, w = 0, oh = 0, ow = 0;
  int kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, padTop = 0, padLeft = 0;
  bool countIncludePad = false;
};
// MaxPool / AveragePool over NCHW planes (windows that reach past the input read nothing
// there); y dense [n, c, oh, ow].
void launchPool2d(DeviceRuntime& runtime, Stream stream, const Pool2dDesc& d);

}  // namespace anvil::cuda
