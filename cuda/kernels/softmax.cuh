// Row softmax over the last axis, f32: one block per row (grid-stride over rows), three
// passes over the row (max, sum of exp, write), each reduction a warp butterfly plus a
// shared-memory step across warps. Compiled by nvcc (cuda/kernels/softmax.cu) and by the
// host compiler against cuda/sim for tests.
#pragma once

#include <cmath>
#include <cstdint>

#include "cuda/kernels/compat.cuh"
#include "cuda/kernels/reduce.cuh"

namespace anvil::cuda::kernels {

// y[r, :] = exp(x[r, :] - max) / sum(exp(x[r, :] - max)) for r < rows; rows of `cols`
// contiguous floats. Launch with blockDim.x == kBlock and any gridDim.x. A row of all -inf
// or holding NaN gives NaN, as the ONNX reference does. x == y (in place) is allowed: each
// element is read and then written by the same thread, after both reductions of its row;
// so the pointers are not __restrict__. Partial overlap is not allowed.
template <int kBlock>
__global__ void __launch_bounds__(kBlock)
    f32_softmax_row_block(const float* x, float* y, std::int64_t rows, std::int64_t cols) {
  __shared__ float scratch[kBlock / 32 + 1];
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* xr = x + row * cols;
    float* yr = y + row * cols;

    float m = -INFINITY;
    for (std::int64_t c = threadIdx.x; c < cols; c += kBlock) m = fmaxf(m, xr[c]);
    m = blockAllReduce<kBlock>(m, scratch, MaxOp{}, -INFINITY);

    float s = 0.0f;
    for (std::int64_t c = threadIdx.x; c < cols; c += kBlock) s += expf(xr[c] - m);
    s = blockAllReduce<kBlock>(s, scratch, SumOp{}, 0.0f);

    const float inv = 1.0f / s;
    for (std::int64_t c = threadIdx.x; c < cols; c += kBlock) yr[c] = expf(xr[c] - m) * inv;
  }
}

}  // namespace anvil::cuda::kernels
