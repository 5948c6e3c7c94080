// The kernel parameters of the SIMT GEMM and the implicit-GEMM convolution (gemm.cuh,
// conv.cuh): plain structs with no CUDA header, so the host launchers (cuda/linear.cpp) pack
// exactly the type the kernels take.
#pragma once

#include <cmath>
#include <cstdint>

namespace anvil::cuda::kernels {

// Row-major operands with row strides (ld*) and batch strides (stride*; 0 broadcasts an
// operand over the batch). op(A) is M x K: A is stored M x K (lda >= K) or, transposed, K x M
// (lda >= M); likewise op(B) is K x N, stored K x N or N x K. bias (N) and z (M x N, ldz) may
// be null. All five share the element type T (float, __half, __nv_bfloat16); the kernel
// accumulates and applies the epilogue in f32 and rounds once at the store. The launcher
// (cuda/linear.cpp) checks all of it.
template <typename T>
struct GemmArgsOf {
  const T* a;
  const T* b;
  const T* bias;
  const T* z;
  T* c;
  std::int64_t batch, m, n, k;
  std::int64_t lda, ldb, ldc, ldz;
  std::int64_t strideA, strideB, strideC, strideZ;
  float alpha, beta;
  std::int32_t act;
  // Clip bounds after the activation (ONNX Clip's comparisons: NaN stays NaN); the defaults
  // clip nothing. Relu6 is clipLo = 0, clipHi = 6 with no activation.
  float clipLo = -INFINITY, clipHi = INFINITY;
  // The parameters of the parameterised activations (LeakyRelu alpha; HardSigmoid alpha, beta).
  float actAlpha = 0.0f, actBeta = 0.0f;
};
using GemmArgs = GemmArgsOf<float>;

// x: [n, c, h, w]; weight: [k, c / groups, r, s]; bias: [k] or null; z: like y or null (z == y
// is allowed: each element is read and written by the same thread); y: [n, k, oh, ow]. padTop
// and padLeft place the window; oh and ow (from all four pads) bound it. Checked by the
// launcher (cuda/linear.cpp), which also keeps c/groups * r * s below 2^31.
// The implicit-GEMM convolution's parameters; W is the weights' storage type (float for the
// SIMT kernel, __half / __nv_bfloat16 prepacked for the tensor-core one, gemm_tc_args.h).
template <typename W>
struct Conv2dArgsOf {
  const float* x;
  const W* weight;
  const float* bias;
  const float* z;
  float* y;
  std::int64_t n, c, h, w;
  std::int64_t k, r, s;
  std::int64_t oh, ow;
  std::int32_t strideH, strideW, padTop, padLeft, dilationH, dilationW;
  std::int64_t groups;
  std::int32_t act;
  float clipLo = -INFINITY, clipHi = INFINITY;  // as GemmArgsOf's
  float actAlpha = 0.0f, actBeta = 0.0f;        // as GemmArgsOf's
};
using Conv2dArgs = Conv2dArgsOf<float>;
}  // namespace anvil::cuda::kernels
