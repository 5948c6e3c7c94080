// The kernel parameters and the registered tile of the tensor-core (WMMA) GEMM
// (cuda/kernels/gemm_tc.cuh): a plain struct with no CUDA header, so the host launcher
// (cuda/linear_tc.cpp) packs exactly the type the kernel takes.
#pragma once

#include <cmath>
#include <cstdint>

#include "cuda/kernels/linear_args.h"

namespace anvil::cuda::kernels {

// The block tile: 64x64 outputs per block of 4 warps (2 x 2, each 32x32 = 2 x 2 fragments of
// 16x16), stepping K by 16 (one fragment step per shared-memory stage). K steps of 32 took
// 226 registers at sm_80 (the 32 staged loads' hoisted addresses and bounds), which would hold
// an SM to 2 blocks; 16 takes 128 with no spills.
inline constexpr int kGemmTcTileM = 64, kGemmTcTileN = 64, kGemmTcTileK = 16;
inline constexpr int kGemmTcThreads = 128;
// The registered kernels, one per operand type; transposes are runtime flags (the staging
// order follows them), so each costs one nvcc instantiation per architecture.
inline constexpr const char* kGemmTcF16Kernel = "f16_gemm_wmma_64x64x16";
inline constexpr const char* kGemmTcBF16Kernel = "bf16_gemm_wmma_64x64x16";
inline constexpr const char* kConv2dTcF16Kernel = "f16_conv2d_implicit_gemm_wmma_64x64x16";
inline constexpr const char* kConv2dTcBF16Kernel = "bf16_conv2d_implicit_gemm_wmma_64x64x16";

// C = clip(act(alpha * op(A) op(B) + bias[n] + beta * Z)) as GemmArgsOf (linear_args.h), but A,
// bias, Z and C are f32 while B is stored in the operand type T (__half / __nv_bfloat16); A is
// rounded to T as it is staged and the products accumulate in f32.
template <typename T>
struct GemmTcArgsOf {
  const float* a;
  const T* b;
  const float* bias;
  const float* z;
  float* c;
  std::int64_t batch, m, n, k;
  std::int64_t lda, ldb, ldc, ldz;
  std::int64_t strideA, strideB, strideC, strideZ;
  float alpha, beta;
  std::int32_t act;
  std::int32_t transA, transB;  // 0 or 1
  float clipLo = -INFINITY, clipHi = INFINITY;
  float actAlpha = 0.0f, actBeta = 0.0f;  // as GemmArgsOf's
};

// Conv2dArgsOf (linear_args.h) with the weights in the operand type T ([k, c / groups, r, s],
// prepacked); x, bias, z and y f32, x rounded to T as it is staged.
template <typename T>
using Conv2dTcArgsOf = Conv2dArgsOf<T>;

}  // namespace anvil::cuda::kernels

namespace anvil::cuda::kernels {

// ---- INT8 (gemm_tc_i8.cuh): s8 x s8 WMMA 16x16x16 with s32 accumulators, sm_72+ ----

inline constexpr const char* kGemmTcI8Kernel = "i8_gemm_wmma_64x64x16";
inline constexpr const char* kConv2dTcI8Kernel = "i8_conv2d_implicit_gemm_wmma_64x64x16";

// How an INT8 tensor-core kernel quantizes and dequantizes, with the CPU INT8 kernels' grid
// (cpu/tactics/int8_gemm.h): an f32 activation x becomes q = clamp(rint(x * xInv) + xZero, 0,
// 255) (NaN -> xZero), staged as the s8 q - 128 (WMMA multiplies s8 by s8; u8 x s8 has no
// WMMA shape). Weights are s8 per output feature f. The exact s32 sum of (q - 128) * w over k
// minus offset[f] = (xZero - 128) * sum_k w[f][k] is sum (q - xZero) * w, the CPU kernels'
// integer; it becomes float(that) * scale[f], scale = (s_x * s_w[f]) * alpha.
struct I8QuantArgs {
  const float* scale;          // [features]
  const std::int32_t* offset;  // [features]
  float xInv;
  std::int32_t xZero;
};

// C = clip(act(dequantized op(A) op(B) + bias[n] + beta * Z)): A f32 (M x K, or K x M with
// transA), quantized per tensor as it is staged; B s8, N rows of K (row stride ldb >= K,
// batch stride strideB): op(B) = B^T, the weight's features as rows; bias, Z and C f32.
// alpha lives in q.scale.
struct GemmI8Args {
  const float* a;
  const signed char* b;
  const float* bias;
  const float* z;
  float* c;
  std::int64_t batch, m, n, k;
  std::int64_t lda, ldb, ldc, ldz;
  std::int64_t strideA, strideB, strideC, strideZ;
  float alpha, beta;  // alpha is 1 (the launcher checks): folded into q.scale
  std::int32_t act;
  std::int32_t transA;  // 0 or 1
  float clipLo = -INFINITY, clipHi = INFINITY;
  float actAlpha = 0.0f, actBeta = 0.0f;
  I8QuantArgs q;
};

// Conv2dArgsOf with s8 weights [k, c / groups, r, s] and the quantization (features = the k
// output channels); x quantized per tensor as the im2col column is staged (a padding tap
// stages xZero - 128, the quantized 0.0).
struct Conv2dI8Args {
  Conv2dArgsOf<signed char> conv;
  I8QuantArgs q;
};

}  // namespace anvil::cuda::kernels
