// Data movement by element size (any dtype of 1, 2, 4 or 8 bytes travels as uint8/16/32/64):
// a strided copy (Transpose, Slice, Concat, Split, the body of Pad), a fill (Pad's border)
// and Gather, one thread per output element with grid-stride loops and 64-bit indexing.
// Compiled by nvcc (cuda/kernels/movement.cu) and by the host compiler against cuda/sim
// (cuda/kernels/sim_normmove.cpp).
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

template <typename T>
__global__ void __launch_bounds__(kGridStrideBlock) fill_gridstride(T* dst, std::int64_t n, T value) {
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    dst[i] = value;
}

// I: the index type (int32_t or int64_t).
template <typename T, typename I>
__global__ void __launch_bounds__(kGridStrideBlock) gather_gridstride(const T* data, const I* index, T* out, GatherArgs a) {
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
