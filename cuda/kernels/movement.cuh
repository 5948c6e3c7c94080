// Data movement by element size (any dtype of 1, 2, 4 or 8 bytes travels as uint8/16/32/64):
// a strided copy (Transpose, Slice, Concat, Split, Expand, Tile, DepthToSpace, the body of
// Pad), its shared-memory tiled form for copies that swap the innermost dim, a fill (Pad's
// border), Gather and Resize (nearest; linear for f32); grid-stride loops with 64-bit
// indexing. Compiled by nvcc (cuda/kernels/movement.cu) and by the host compiler against
// cuda/sim (cuda/kernels/sim_normmove.cpp).
#pragma once

#include <cstdint>

#include "cuda/kernels/compat.cuh"
#include "cuda/kernels/normmove_args.h"

namespace anvil::cuda::kernels {

template <typename T>
__global__ void __launch_bounds__(kGridStrideBlock) strided_copy_gridstride(const T* src, T* dst, StridedCopyArgs a) {
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.count; i += step) {
    std::int64_t idx = i, so = 0, d = 0;
    for (int k = a.rank - 1; k >= 0; --k) {
      const std::int64_t q = idx / a.dims[k];
      const std::int64_t c = idx - q * a.dims[k];
      so += c * a.srcStrides[k];
      d += c * a.dstStrides[k];
      idx = q;
    }
    dst[d] = src[so];
  }
}

// Launch with block (kTransposeTile, kTransposeRows); blocks stride over batches x tiles.
template <typename T>
__global__ void __launch_bounds__(kTransposeTile* kTransposeRows)
    tiled_transpose(const T* src, T* dst, TiledTransposeArgs p) {
  // +1 column: the column reads of the store phase fall in distinct banks.
  __shared__ T tile[kTransposeTile][kTransposeTile + 1];
  const std::int64_t perBatch = p.tilesA * p.tilesB;
  const std::int64_t total = p.batches * perBatch;
  const std::int64_t lenA = p.dims[p.a], lenB = p.dims[p.b];
  for (std::int64_t t = blockIdx.x; t < total; t += gridDim.x) {
    const std::int64_t batch = t / perBatch;
    const std::int64_t r = t - batch * perBatch;
    const std::int64_t tb = r / p.tilesA, ta = r - tb * p.tilesA;
    std::int64_t idx = batch, so = 0, dof = 0;
    for (int d = p.rank - 1; d >= 0; --d) {
      if (d == p.a || d == p.b) continue;
      const std::int64_t q = idx / p.dims[d];
      const std::int64_t c = idx - q * p.dims[d];
      so += c * p.srcStrides[d];
      dof += c * p.dstStrides[d];
      idx = q;
    }
    const std::int64_t a0 = ta * kTransposeTile, b0 = tb * kTransposeTile;
    for (int j = threadIdx.y; j < kTransposeTile; j += kTransposeRows) {
      const std::int64_t ia = a0 + j, ib = b0 + threadIdx.x;
      if (ia < lenA && ib < lenB) tile[j][threadIdx.x] = src[so + ia * p.srcStrides[p.a] + ib];
    }
    __syncthreads();
    for (int j = threadIdx.y; j < kTransposeTile; j += kTransposeRows) {
      const std::int64_t ib = b0 + j, ia = a0 + threadIdx.x;
      if (ia < lenA && ib < lenB) dst[dof + ib * p.dstStrides[p.b] + ia] = tile[threadIdx.x][j];
    }
    __syncthreads();  // the tile is refilled by the next iteration
  }
}

template <typename T>
__global__ void __launch_bounds__(kGridStrideBlock) fill_gridstride(T* dst, std::int64_t n, T value) {
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    dst[i] = value;
}

template <typename T>
__global__ void __launch_bounds__(kGridStrideBlock) pad_index_gridstride(const T* x, T* y, PadIndexArgs a) {
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.count; i += step) {
    std::int64_t idx = i, off = 0;
    for (int d = a.rank - 1; d >= 0; --d) {
      const std::int64_t q = idx / a.outDims[d];
      const std::int64_t n0 = a.inDims[d];
      std::int64_t j = idx - q * a.outDims[d] - a.before[d];
      idx = q;
      if (j < 0 || j >= n0) {
        if (a.mode == kPadEdge) {
          j = j < 0 ? 0 : n0 - 1;
        } else if (a.mode == kPadWrap) {
          j = ((j % n0) + n0) % n0;
        } else if (n0 == 1) {
          j = 0;
        } else {  // reflect without repeating the edge, over any number of periods
          const std::int64_t period = 2 * (n0 - 1);
          j = ((j % period) + period) % period;
          if (j >= n0) j = period - j;
        }
      }
      off += j * a.inStrides[d];
    }
    y[i] = x[off];
  }
}

template <typename T, typename I>
__global__ void __launch_bounds__(kGridStrideBlock)
    gather_elements_gridstride(const T* data, const I* index, T* out, GatherElementsArgs a) {
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.count; i += step) {
    std::int64_t k = static_cast<std::int64_t>(index[i]);
    if (k < 0) k += a.axisLen;
    std::int64_t idx = i, off = 0;
    for (int d = a.rank - 1; d >= 0; --d) {
      const std::int64_t q = idx / a.dims[d];
      off += (d == a.axis ? k : idx - q * a.dims[d]) * a.dataStrides[d];
      idx = q;
    }
    out[i] = (k >= 0 && k < a.axisLen) ? data[off] : T{};
  }
}

// The data offset of tuple `t`'s slice, or -1 when an index is out of range.
__device__ __forceinline__ std::int64_t indexNDOffset(const std::int64_t* index, std::int64_t t, const IndexNDArgs& a) {
  std::int64_t off = (t / a.tuplesPerBatch) * a.batchStride;
  for (int j = 0; j < a.k; ++j) {
    const std::int64_t len = a.dims[a.batchDims + j];
    std::int64_t v = index[t * a.k + j];
    if (v < 0) v += len;
    if (v < 0 || v >= len) return -1;
    off += v * a.strides[a.batchDims + j];
  }
  return off;
}

// GatherND: out[e] = data[slice of tuple e / sliceSize], zero bytes for an out-of-range tuple.
template <typename T>
__global__ void __launch_bounds__(kGridStrideBlock)
    gather_nd_gridstride(const T* data, const std::int64_t* index, T* out, IndexNDArgs a) {
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < a.count; e += step) {
    const std::int64_t t = e / a.sliceSize;
    const std::int64_t off = indexNDOffset(index, t, a);
    out[e] = off < 0 ? T{} : data[off + (e - t * a.sliceSize)];
  }
}

// ScatterND (reduction none) on a copy of the data already in `out`: out[slice of tuple] =
// updates; out-of-range tuples are skipped. Duplicate tuples race (the spec leaves them
// undefined; the reference keeps the last).
template <typename T>
__global__ void __launch_bounds__(kGridStrideBlock)
    scatter_nd_gridstride(const std::int64_t* index, const T* updates, T* out, IndexNDArgs a) {
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < a.count; e += step) {
    const std::int64_t t = e / a.sliceSize;
    const std::int64_t off = indexNDOffset(index, t, a);
    if (off >= 0) out[off + (e - t * a.sliceSize)] = updates[e];
  }
}

// I: the index type (int32_t or int64_t).
template <typename T, typename I>
__global__ void __launch_bounds__(kGridStrideBlock)
    gather_gridstride(const T* data, const I* index, T* out, GatherArgs a) {
  const std::int64_t total = a.outer * a.indices * a.inner;
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += step) {
    const std::int64_t i = t % a.inner;
    const std::int64_t r = t / a.inner;
    const std::int64_t j = r % a.indices;
    const std::int64_t o = r / a.indices;
    std::int64_t k = static_cast<std::int64_t>(index[j]);
    if (k < 0) k += a.axisLen;
    // The reference rejects an out-of-range index; a kernel cannot, so it writes zero bytes.
    out[t] = (k >= 0 && k < a.axisLen) ? data[(o * a.axisLen + k) * a.inner + i] : T{};
  }
}

}  // namespace anvil::cuda::kernels

namespace anvil::cuda::kernels {

// The reference Resize's taps of output coordinate o on axis d (see ResizeArgs): the left
// neighbour is the pixel strictly left of the source coordinate (ratio in (0, 1]); indices
// clamp to the axis. Linear gives (left, 1 - ratio) and (left + 1, ratio), a zero weight
// meaning "skip"; nearest one tap of weight 1. Double precision and the reference's operation
// order (no multiply-add to contract), so nearest picks exactly the reference's pixel.
struct ResizeTaps {
  std::int64_t index[2];
  double weight[2];
};

template <bool kLinear>
__device__ __forceinline__ ResizeTaps resizeTaps(const ResizeArgs& a, int d, std::int64_t o) {
  const double xd = static_cast<double>(o);
  const double L = static_cast<double>(a.inDims[d]);
  const double scale = a.scale[d], outWidth = a.outWidth[d];
  double xo;
  switch (a.coord) {
    case kCoordAlignCorners:
      xo = outWidth == 1 ? 0.0 : xd * (L - 1) / (outWidth - 1);
      break;
    case kCoordAsymmetric:
      xo = xd / scale;
      break;
    case kCoordPytorchHalfPixel:
      xo = a.outDims[d] > 1 ? (xd + 0.5) / scale - 0.5 : 0.0;
      break;
    case kCoordHalfPixelSymmetric:
      xo = a.shift[d] + (xd + 0.5) / scale - 0.5;
      break;
    case kCoordTfHalfPixelForNn:
      xo = (xd + 0.5) / scale;
      break;
    default:
      xo = (xd + 0.5) / scale - 0.5;
      break;
  }
  const double fl = floor(xo);
  const bool integral = fl == xo;
  const double ratio = integral ? 1.0 : xo - fl;
  const std::int64_t left = integral ? static_cast<std::int64_t>(fl) - 1 : static_cast<std::int64_t>(fl);
  const std::int64_t last = a.inDims[d] - 1;
  ResizeTaps t;
  if (!kLinear) {
    bool right;
    if (integral)
      right = true;
    else if (a.nearest == kRoundPreferFloor)
      right = ratio > 0.5;
    else if (a.nearest == kRoundPreferCeil)
      right = ratio >= 0.5;
    else
      right = a.nearest == kNearestCeil;
    std::int64_t i = left + (right ? 1 : 0);
    t.index[0] = t.index[1] = i < 0 ? 0 : i > last ? last : i;
    t.weight[0] = 1.0;
    t.weight[1] = 0.0;
    return t;
  }
  std::int64_t i0 = left, i1 = left + 1;
  double w0 = 1 - ratio, w1 = ratio;
  if (a.excludeOutside) {
    if (i0 < 0 || i0 > last) w0 = 0;
    if (i1 < 0 || i1 > last) w1 = 0;
    const double sum = w0 + w1;
    if (sum != 0) {
      w0 /= sum;
      w1 /= sum;
    }
  }
  t.index[0] = i0 < 0 ? 0 : i0 > last ? last : i0;
  t.index[1] = i1 < 0 ? 0 : i1 > last ? last : i1;
  t.weight[0] = w0;
  t.weight[1] = w1;
  return t;
}

// Nearest Resize of any element type (T by size): one thread per output element.
template <typename T>
__global__ void __launch_bounds__(kGridStrideBlock) resize_nearest_gridstride(const T* x, T* y, ResizeArgs a) {
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.count; i += step) {
    std::int64_t idx = i, off = 0, stride = 1;
    for (int d = a.rank - 1; d >= 0; --d) {
      const std::int64_t q = idx / a.outDims[d];
      off += resizeTaps<false>(a, d, idx - q * a.outDims[d]).index[0] * stride;
      stride *= a.inDims[d];
      idx = q;
    }
    y[i] = x[off];
  }
}

// Linear Resize, f32: the weighted sum over every combination of each axis's two taps
// (zero-weight taps skipped), accumulated in double as the reference, rounded once. T is
// float (a template so that every TU including this header may define it).
template <typename T>
__global__ void __launch_bounds__(kGridStrideBlock) resize_linear_gridstride(const T* x, T* y, ResizeArgs a) {
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.count; i += step) {
    ResizeTaps taps[kMaxMoveRank];
    std::int64_t strides[kMaxMoveRank];
    std::int64_t idx = i, stride = 1;
    for (int d = a.rank - 1; d >= 0; --d) {
      const std::int64_t q = idx / a.outDims[d];
      taps[d] = resizeTaps<true>(a, d, idx - q * a.outDims[d]);
      strides[d] = stride;
      stride *= a.inDims[d];
      idx = q;
    }
    double acc = 0;
    for (int c = 0; c < (1 << a.rank); ++c) {
      double w = 1;
      std::int64_t off = 0;
      for (int d = 0; d < a.rank; ++d) {
        const int k = (c >> (a.rank - 1 - d)) & 1;
        w *= taps[d].weight[k];
        off += taps[d].index[k] * strides[d];
      }
      if (w != 0) acc += w * static_cast<double>(x[off]);
    }
    y[i] = static_cast<T>(acc);
  }
}

}  // namespace anvil::cuda::kernels
