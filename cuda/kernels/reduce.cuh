// Warp and block reductions shared by the kernels: butterfly shuffles within a warp, one
// shared-memory slot per warp across the block.
#pragma once

#include "cuda/kernels/compat.cuh"

namespace anvil::cuda::kernels {

struct MaxOp {
  // fmaxf drops a NaN operand; softmax still yields NaN for a row holding NaN because the
  // NaN reaches the sum through expf(x - max).
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};

// Every lane of a full warp gets op over the 32 lanes (xor butterfly, 5 steps).
template <typename Op>
__device__ __forceinline__ float warpAllReduce(float v, Op op) {
  ANVIL_UNROLL
  for (int offset = 16; offset > 0; offset >>= 1) {
    v = op(v, __shfl_xor_sync(kFullWarpMask, v, offset));
  }
  return v;
}

// Every thread of a block of kBlock threads (a multiple of 32) gets op over the block.
// scratch holds kBlock / 32 + 1 floats of __shared__ memory; it may be reused as soon as
// this returns (the trailing barrier keeps a fast thread's next write from racing the
// broadcast read).
template <int kBlock, typename Op>
__device__ __forceinline__ float blockAllReduce(float v, float* scratch, Op op, float identity) {
  static_assert(kBlock % 32 == 0 && kBlock >= 32 && kBlock <= 1024,
                "block reductions need a whole number of warps, at most 1024 threads");
  constexpr int kWarps = kBlock / 32;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  v = warpAllReduce(v, op);
  if (kWarps == 1) return v;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = warpAllReduce(lane < kWarps ? scratch[lane] : identity, op);
    if (lane == 0) scratch[kWarps] = v;
  }
  __syncthreads();
  v = scratch[kWarps];
  __syncthreads();
  return v;
}

}  // namespace anvil::cuda::kernels
