// Normalizations and reductions, f32, accumulated in f32: Layer/Group/InstanceNormalization
// over rows (a warp per row up to 1024 columns, a block per row beyond), inference
// BatchNormalization (an element per thread), log-softmax over rows (a block per row),
// softmax / log-softmax along an inner axis (a thread per column), the Reduce* family (a block
// per output for long reductions, a thread per output for short ones) and ArgMax / ArgMin.
// Compiled by nvcc (cuda/kernels/normpool.cu) and by the host compiler against cuda/sim
// (cuda/kernels/sim_normmove.cpp).
#pragma once

#include <cmath>
#include <cstdint>

#include "cuda/kernels/compat.cuh"
#include "cuda/kernels/normmove_args.h"
#include "cuda/kernels/reduce.cuh"

namespace anvil::cuda::kernels {

// LayerNormalization over rows (and Group/InstanceNormalization: a row per image and group,
// the affine parameters per channel; see LayerNormArgs), two-pass: the mean, then the mean of squared deviations from
// it (not E[x^2] - E[x]^2, which cancels badly for rows far from zero), then the affine write.
// Each pass re-reads the row from global memory (L1/L2-resident for the row sizes of
// transformers). x == y is allowed: every element is read and written by one thread after
// both reductions. Launch with blockDim.x == kBlock, any gridDim.x.
template <int kBlock>
__global__ void __launch_bounds__(kBlock) f32_layernorm_row_block(LayerNormArgs a) {
  __shared__ float scratch[kBlock / 32 + 1];
  const float invCols = 1.0f / static_cast<float>(a.cols);
  for (std::int64_t row = blockIdx.x; row < a.rows; row += gridDim.x) {
    const float* xr = a.x + row * a.cols;
    float* yr = a.y + row * a.cols;
    float s = 0.0f;
    for (std::int64_t c = threadIdx.x; c < a.cols; c += kBlock) s += xr[c];
    const float mean = blockAllReduce<kBlock>(s, scratch, SumOp{}, 0.0f) * invCols;
    float q = 0.0f;
    for (std::int64_t c = threadIdx.x; c < a.cols; c += kBlock) {
      const float d = xr[c] - mean;
      q += d * d;
    }
    const float var = blockAllReduce<kBlock>(q, scratch, SumOp{}, 0.0f) * invCols;
    const float inv = 1.0f / sqrtf(var + a.epsilon);
    const std::int64_t pbase = (row % a.groups) * a.perGroup;
    for (std::int64_t c = threadIdx.x; c < a.cols; c += kBlock) {
      const std::int64_t p = pbase + (a.spatial == 1 ? c : c / a.spatial);
      float v = (xr[c] - mean) * inv * a.scale[p];
      if (a.bias != nullptr) v += a.bias[p];
      yr[c] = v;
    }
  }
}

// The same, one warp per row (kBlock / 32 rows per block, shuffles only, no barrier): for the
// short rows of small transformers (hidden 128..1024), where a block per row would leave
// most of its threads idle. The launcher picks it for rows of at most kWarpRowMaxCols
// (normmove_args.h).
template <int kBlock>
__global__ void __launch_bounds__(kBlock) f32_layernorm_row_warp(LayerNormArgs a) {
  constexpr int kWarps = kBlock / 32;
  const int lane = threadIdx.x & 31;
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const float invCols = 1.0f / static_cast<float>(a.cols);
  for (std::int64_t row = first; row < a.rows; row += static_cast<std::int64_t>(gridDim.x) * kWarps) {
    const float* xr = a.x + row * a.cols;
    float* yr = a.y + row * a.cols;
    float s = 0.0f;
    for (std::int64_t c = lane; c < a.cols; c += 32) s += xr[c];
    const float mean = warpAllReduce(s, SumOp{}) * invCols;
    float q = 0.0f;
    for (std::int64_t c = lane; c < a.cols; c += 32) {
      const float d = xr[c] - mean;
      q += d * d;
    }
    const float var = warpAllReduce(q, SumOp{}) * invCols;
    const float inv = 1.0f / sqrtf(var + a.epsilon);
    const std::int64_t pbase = (row % a.groups) * a.perGroup;
    for (std::int64_t c = lane; c < a.cols; c += 32) {
      const std::int64_t p = pbase + (a.spatial == 1 ? c : c / a.spatial);
      float v = (xr[c] - mean) * inv * a.scale[p];
      if (a.bias != nullptr) v += a.bias[p];
      yr[c] = v;
    }
  }
}

// Inference BatchNormalization, one thread per element (x == y allowed). T is float (a template
// so that every TU including this header may define it).
template <typename T>
__global__ void __launch_bounds__(kGridStrideBlock) batchnorm_gridstride(ChannelAffineArgs a) {
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.count; i += step) {
    const std::int64_t c = (i / a.spatial) % a.channels;
    a.y[i] = static_cast<T>((a.x[i] - a.mean[c]) * a.a[c] + a.b[c]);
  }
}

// LpNormalization over rows of the last axis (inner == 1), one block per row.
template <int kBlock, int kP>
__global__ void __launch_bounds__(kBlock) f32_lpnorm_row_block(LpNormArgs a) {
  __shared__ float scratch[kBlock / 32 + 1];
  for (std::int64_t row = blockIdx.x; row < a.outer; row += gridDim.x) {
    const float* xr = a.x + row * a.n;
    float* yr = a.y + row * a.n;
    float s = 0.0f;
    for (std::int64_t c = threadIdx.x; c < a.n; c += kBlock) s += kP == 1 ? fabsf(xr[c]) : xr[c] * xr[c];
    s = blockAllReduce<kBlock>(s, scratch, SumOp{}, 0.0f);
    const float norm = kP == 1 ? s : sqrtf(s);
    for (std::int64_t c = threadIdx.x; c < a.n; c += kBlock) yr[c] = norm == 0.0f ? 0.0f : xr[c] / norm;
  }
}

// LpNormalization along an inner axis, one thread per (outer, inner) column.
template <int kP>
__global__ void __launch_bounds__(kGridStrideBlock) f32_lpnorm_axis_gridstride(LpNormArgs a) {
  const std::int64_t columns = a.outer * a.inner;
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < columns; t += step) {
    const std::int64_t o = t / a.inner, i = t - o * a.inner;
    const float* xc = a.x + o * a.n * a.inner + i;
    float* yc = a.y + o * a.n * a.inner + i;
    float s = 0.0f;
    for (std::int64_t k = 0; k < a.n; ++k) {
      const float v = xc[k * a.inner];
      s += kP == 1 ? fabsf(v) : v * v;
    }
    const float norm = kP == 1 ? s : sqrtf(s);
    for (std::int64_t k = 0; k < a.n; ++k) yc[k * a.inner] = norm == 0.0f ? 0.0f : xc[k * a.inner] / norm;
  }
}

// LogSoftmax over rows of the last axis: x - max - log(sum(exp(x - max))), one block per row.
template <int kBlock>
__global__ void __launch_bounds__(kBlock) f32_log_softmax_row_block(SoftmaxAxisArgs a) {
  __shared__ float scratch[kBlock / 32 + 1];
  const std::int64_t cols = a.n;
  for (std::int64_t row = blockIdx.x; row < a.outer; row += gridDim.x) {
    const float* xr = a.x + row * cols;
    float* yr = a.y + row * cols;
    float m = -INFINITY;
    for (std::int64_t c = threadIdx.x; c < cols; c += kBlock) m = fmaxf(m, xr[c]);
    m = blockAllReduce<kBlock>(m, scratch, MaxOp{}, -INFINITY);
    float s = 0.0f;
    for (std::int64_t c = threadIdx.x; c < cols; c += kBlock) s += expf(xr[c] - m);
    s = blockAllReduce<kBlock>(s, scratch, SumOp{}, 0.0f);
    const float shift = m + logf(s);
    for (std::int64_t c = threadIdx.x; c < cols; c += kBlock) yr[c] = xr[c] - shift;
  }
}

// Softmax (kLog false) or LogSoftmax along the middle axis of [outer, n, inner], one thread per
// (outer, inner) column, three passes down the column; a warp's loads are consecutive inner
// positions. For the last axis (inner == 1) the row kernels above are the fast path.
template <bool kLog>
__global__ void __launch_bounds__(kGridStrideBlock) f32_softmax_axis_gridstride(SoftmaxAxisArgs a) {
  const std::int64_t columns = a.outer * a.inner;
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < columns; t += step) {
    const std::int64_t o = t / a.inner, i = t - o * a.inner;
    const float* xc = a.x + o * a.n * a.inner + i;
    float* yc = a.y + o * a.n * a.inner + i;
    float m = -INFINITY;
    for (std::int64_t k = 0; k < a.n; ++k) m = fmaxf(m, xc[k * a.inner]);
    float s = 0.0f;
    for (std::int64_t k = 0; k < a.n; ++k) s += expf(xc[k * a.inner] - m);
    if (kLog) {
      const float shift = m + logf(s);
      for (std::int64_t k = 0; k < a.n; ++k) yc[k * a.inner] = xc[k * a.inner] - shift;
    } else {
      const float inv = 1.0f / s;
      for (std::int64_t k = 0; k < a.n; ++k) yc[k * a.inner] = expf(xc[k * a.inner] - m) * inv;
    }
  }
}

// The reductions. Max and min propagate NaN (as the reference does), so they cannot use
// fmaxf / fminf, which drop a NaN operand. Each op maps an element (pre), combines, and
// finishes the accumulator; LogSumExp is two passes (max, then the sum of exp(x - max)).
enum ReduceOpKind : int {
  kReduceSum = 0,
  kReduceMean = 1,
  kReduceMax = 2,
  kReduceMin = 3,
  kReduceProd = 4,
  kReduceL1 = 5,
  kReduceL2 = 6,
  kReduceSumSquare = 7,
  kReduceLogSum = 8,
  kReduceLogSumExp = 9
};

template <int kOp>
struct ReduceOp {
  static __device__ __forceinline__ float pre(float v) {
    if (kOp == kReduceL1) return fabsf(v);
    if (kOp == kReduceL2 || kOp == kReduceSumSquare) return v * v;
    return v;
  }
  __device__ __forceinline__ float operator()(float acc, float v) const {
    if (kOp == kReduceMax || kOp == kReduceLogSumExp) return (v > acc || v != v) ? v : acc;
    if (kOp == kReduceMin) return (v < acc || v != v) ? v : acc;
    if (kOp == kReduceProd) return acc * v;
    return acc + v;
  }
  static __device__ __forceinline__ float identity() {
    return kOp == kReduceMax || kOp == kReduceLogSumExp ? -INFINITY
           : kOp == kReduceMin                          ? INFINITY
           : kOp == kReduceProd                         ? 1.0f
                                                        : 0.0f;
  }
  // Mean of zero elements is 0/0 = NaN, as the reference's.
  static __device__ __forceinline__ float finish(float acc, std::int64_t count) {
    if (kOp == kReduceMean) return acc / static_cast<float>(count);
    if (kOp == kReduceL2) return sqrtf(acc);
    if (kOp == kReduceLogSum) return logf(acc);
    return acc;
  }
};

// LogSumExp's finish: max + log(sum of exp(x - max)), or the max itself when it is not finite
// (-inf for an empty reduction, as the reference).
// (fabsf(v) < INFINITY: isfinite has no unqualified host spelling; NaN compares false.)
__device__ __forceinline__ bool finiteF(float v) { return fabsf(v) < INFINITY; }
__device__ __forceinline__ float logSumExpFinish(float m, float s) { return finiteF(m) ? m + logf(s) : m; }

// Offset of the element at row-major index `idx` of dims[0..rank) with the given strides.
__device__ __forceinline__ std::int64_t stridedOffset(std::int64_t idx, int rank, const std::int64_t* dims,
                                                      const std::int64_t* strides) {
  std::int64_t off = 0;
  for (int d = rank - 1; d >= 0; --d) {
    const std::int64_t q = idx / dims[d];
    off += (idx - q * dims[d]) * strides[d];
    idx = q;
  }
  return off;
}

// One block per output element, the reduced elements spread over the block's threads (for
// long reductions: a row of a ReduceMean over the hidden axis, a global pool's plane).
template <int kBlock, int kOp>
__global__ void __launch_bounds__(kBlock) f32_reduce_block(ReduceArgs a) {
  __shared__ float scratch[kBlock / 32 + 1];
  const ReduceOp<kOp> op;
  const bool flat = a.redRank == 1;  // the common case: one (merged) reduced dim
  for (std::int64_t o = blockIdx.x; o < a.outputs; o += gridDim.x) {
    const float* base = a.x + stridedOffset(o, a.keptRank, a.keptDims, a.keptStrides);
    float acc = ReduceOp<kOp>::identity();
    for (std::int64_t k = threadIdx.x; k < a.count; k += kBlock) {
      const std::int64_t off = flat ? k * a.redStrides[0] : stridedOffset(k, a.redRank, a.redDims, a.redStrides);
      acc = op(acc, ReduceOp<kOp>::pre(base[off]));
    }
    acc = blockAllReduce<kBlock>(acc, scratch, op, ReduceOp<kOp>::identity());
    if (kOp == kReduceLogSumExp) {
      const float m = acc;
      float s = 0.0f;
      if (finiteF(m))
        for (std::int64_t k = threadIdx.x; k < a.count; k += kBlock) {
          const std::int64_t off = flat ? k * a.redStrides[0] : stridedOffset(k, a.redRank, a.redDims, a.redStrides);
          s += expf(base[off] - m);
        }
      s = blockAllReduce<kBlock>(s, scratch, SumOp{}, 0.0f);
      acc = logSumExpFinish(m, s);
    }
    if (threadIdx.x == 0) a.y[o] = ReduceOp<kOp>::finish(acc, a.count);
  }
}

// One thread per output element (short reductions over many outputs: a reduce over channels).
template <int kOp>
__global__ void __launch_bounds__(kGridStrideBlock) f32_reduce_thread(ReduceArgs a) {
  const ReduceOp<kOp> op;
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < a.outputs; o += step) {
    const float* base = a.x + stridedOffset(o, a.keptRank, a.keptDims, a.keptStrides);
    float acc = ReduceOp<kOp>::identity();
    for (std::int64_t k = 0; k < a.count; ++k)
      acc = op(acc, ReduceOp<kOp>::pre(base[stridedOffset(k, a.redRank, a.redDims, a.redStrides)]));
    if (kOp == kReduceLogSumExp) {
      float s = 0.0f;
      if (finiteF(acc))
        for (std::int64_t k = 0; k < a.count; ++k)
          s += expf(base[stridedOffset(k, a.redRank, a.redDims, a.redStrides)] - acc);
      acc = logSumExpFinish(acc, s);
    }
    a.y[o] = ReduceOp<kOp>::finish(acc, a.count);
  }
}

// ArgMax (kMax) / ArgMin along the middle axis, one thread per (outer, inner) column, with the
// reference's total order: NaN above every number, so ArgMax picks the first NaN and ArgMin
// ignores NaNs unless all are NaN.
__device__ __forceinline__ bool lessNaNLast(float a, float b) {
  if (a != a) return false;
  if (b != b) return true;
  return a < b;
}

template <bool kMax>
__global__ void __launch_bounds__(kGridStrideBlock) f32_argreduce_gridstride(ArgReduceArgs a) {
  const std::int64_t columns = a.outer * a.inner;
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < columns; t += step) {
    const std::int64_t o = t / a.inner, i = t - o * a.inner;
    const float* xc = a.x + o * a.n * a.inner + i;
    std::int64_t best = 0;
    float b = a.n > 0 ? xc[0] : 0.0f;
    for (std::int64_t k = 1; k < a.n; ++k) {
      const float v = xc[k * a.inner];
      const bool better = kMax ? lessNaNLast(b, v) : lessNaNLast(v, b);
      const bool tie = !lessNaNLast(v, b) && !lessNaNLast(b, v);
      if (better || (a.selectLast && tie)) {
        best = k;
        b = v;
      }
    }
    a.y[t] = best;
  }
}

// CumSum, one thread per (outer, inner) column scanning it serially; T float (f32
// accumulation), int32_t or int64_t (64-bit accumulation, stored wrapped as the reference).
template <typename T, typename A>
__global__ void __launch_bounds__(kGridStrideBlock) cumsum_gridstride(const T* x, T* y, CumSumArgs a) {
  const std::int64_t columns = a.outer * a.inner;
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < columns; t += step) {
    const std::int64_t o = t / a.inner, i = t - o * a.inner;
    const std::int64_t base = o * a.n * a.inner + i;
    A acc = 0;
    for (std::int64_t j = 0; j < a.n; ++j) {
      const std::int64_t at = base + (a.reverse ? a.n - 1 - j : j) * a.inner;
      const A v = static_cast<A>(x[at]);
      if (a.exclusive) {
        y[at] = static_cast<T>(acc);
        acc += v;
      } else {
        acc += v;
        y[at] = static_cast<T>(acc);
      }
    }
  }
}

}  // namespace anvil::cuda::kernels
