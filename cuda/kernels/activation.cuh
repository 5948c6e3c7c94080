// Elementwise activations (relu, sigmoid, tanh, gelu-erf, silu) over f32 and f16: one
// grid-stride kernel template, the math in f32 for both element types. Compiled by nvcc
// (cuda/kernels/activation.cu) and by the host compiler against cuda/sim for tests.
#pragma once

#include <cmath>
#include <cstdint>

#include "cuda/kernels/compat.cuh"
#include "cuda/types.h"

namespace anvil::cuda::kernels {

template <Activation A>
struct ActivationOp;

template <>
struct ActivationOp<Activation::kRelu> {
  // `x < 0 ? 0 : x` rather than fmaxf(x, 0) so that NaN propagates, as ONNX Relu does.
  __device__ __forceinline__ static float apply(float x) { return x < 0.0f ? 0.0f : x; }
};

// sigmoid from exp(-|x|), which never overflows: for x < 0 it is e / (1 + e), which keeps
// full relative accuracy down to the subnormals where 1 / (1 + exp(-x)) flushes to 0.
__device__ __forceinline__ float stableSigmoid(float x) {
  const float e = expf(-fabsf(x));
  const float r = 1.0f / (1.0f + e);
  return x >= 0.0f ? r : e * r;
}

template <>
struct ActivationOp<Activation::kSigmoid> {
  __device__ __forceinline__ static float apply(float x) { return stableSigmoid(x); }
};

template <>
struct ActivationOp<Activation::kTanh> {
  __device__ __forceinline__ static float apply(float x) { return tanhf(x); }
};

template <>
struct ActivationOp<Activation::kGeluErf> {
  // x * Phi(x) = 0.5 x erfc(-x / sqrt 2): erfc keeps full relative accuracy in the negative
  // tail where 0.5 x (1 + erf(x / sqrt 2)) cancels to noise (at x = -6 by ~8 digits).
  __device__ __forceinline__ static float apply(float x) {
    return 0.5f * x * erfcf(-x * 0.70710678118654752f);
  }
};

template <>
struct ActivationOp<Activation::kSilu> {
  __device__ __forceinline__ static float apply(float x) { return x * stableSigmoid(x); }
};

// y[i] = act(x[i]) for i < n. Any grid and block size; x == y (in place) is allowed, so the
// pointers are not __restrict__. The device launcher uses 256-thread blocks.
template <typename T, Activation A>
__global__ void activation_gridstride(const T* x, T* y, std::int64_t n) {
  const std::int64_t stride = std::int64_t(blockDim.x) * gridDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    y[i] = fromFloat<T>(ActivationOp<A>::apply(toFloat(x[i])));
  }
}

}  // namespace anvil::cuda::kernels
