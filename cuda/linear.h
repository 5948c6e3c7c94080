// The linear layers of the CUDA backend: checked launchers of our SIMT FP32 GEMM and
// implicit-GEMM convolution (cuda/kernels/gemm.cuh, conv.cuh) on a DeviceRuntime, with their
// fused epilogues (bias, residual, activation). No CUDA header here.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "cuda/runtime.h"
#include "cuda/types.h"

namespace anvil::cuda {

// C[b] = clip(act(alpha * op(A[b]) . op(B[b]) + bias + beta * Z[b])) for b < batch; row-major, in
// device memory, all five of `dtype`: f32, or f16 / bf16 (accumulated in f32, rounded once at
// the store; registered as nn and nt only, i.e. transA = false). op(A) is m x k: A is stored m x k, or k x m when transA; op(B)
// is k x n: B is stored k x n, or n x k when transB. ld* are row strides of the matrices as
// stored (in elements, at least their column count); stride* step from one batch to the next
// (0 broadcasts A, B or Z over the batch; C's must keep batches apart). bias (n floats) and z
// (m x n, ldz) are optional. z == c (an in-place residual) is allowed; any other overlap of c
// with an input is not.
struct GemmDesc {
  DataType dtype = DataType::kF32;
  std::int64_t batch = 1, m = 0, n = 0, k = 0;
  bool transA = false, transB = false;
  const void* a = nullptr;
  std::int64_t lda = 0, strideA = 0;
  const void* b = nullptr;
  std::int64_t ldb = 0, strideB = 0;
  void* c = nullptr;
  std::int64_t ldc = 0, strideC = 0;
  const void* bias = nullptr;
  const void* z = nullptr;
  std::int64_t ldz = 0, strideZ = 0;
  float alpha = 1.0f, beta = 1.0f;
  std::optional<Activation> activation;
  // Clamped to [clipLo, clipHi] after the activation as ONNX Clip does (NaN stays NaN); the
  // infinite defaults clamp nothing (Relu6: 0 and 6 without an activation).
  float clipLo = -std::numeric_limits<float>::infinity();
  float clipHi = std::numeric_limits<float>::infinity();
  // The activation's parameters: LeakyRelu's alpha; HardSigmoid's alpha and beta.
  float actAlpha = 0.0f, actBeta = 0.0f;

  // Densely packed operands: every ld and stride set from the shape (Z packed like C).
  static GemmDesc packed(std::int64_t batch, std::int64_t m, std::int64_t n, std::int64_t k,
                         bool transA, bool transB, const void* a, const void* b, void* c,
                         DataType dtype = DataType::kF32);
};

// y = clip(act(conv2d(x, weight) + bias + z)), NCHW f32 in device memory. x: [n, c, h, w];
// weight: [k, c / groups, r, s]; bias: [k] or null; z: like y or null (z == y allowed);
// y: [n, k, oh, ow] with oh, ow from conv2dOutputSize. Asymmetric pads as ONNX's
// [top, left, bottom, right].
struct Conv2dDesc {
  std::int64_t n = 0, c = 0, h = 0, w = 0;
  std::int64_t k = 0, r = 1, s = 1;
  std::int64_t strideH = 1, strideW = 1;
  std::int64_t padTop = 0, padLeft = 0, padBottom = 0, padRight = 0;
  std::int64_t dilationH = 1, dilationW = 1;
  std::int64_t groups = 1;
  const float* x = nullptr;
  const float* weight = nullptr;
  const float* bias = nullptr;
  const float* z = nullptr;
  float* y = nullptr;
  std::optional<Activation> activation;
  float clipLo = -std::numeric_limits<float>::infinity();  // as GemmDesc's
  float clipHi = std::numeric_limits<float>::infinity();
  float actAlpha = 0.0f, actBeta = 0.0f;  // as GemmDesc's

  std::int64_t outH() const;  // (h + pads - dilation * (r - 1) - 1) / stride + 1
  std::int64_t outW() const;
};

// "f32_gemm_simt_64x64x16_4x4_nt": element type, block tile MxNxK, thread tile, then A and
// B as stored (n: as used, t: transposed).
std::string gemmKernelName(bool transA, bool transB, DataType dtype = DataType::kF32);
std::string conv2dKernelName();  // "f32_conv2d_implicit_gemm_64x64x16_4x4"

// Asynchronous on `stream`. kInvalidArgument (naming the kernel and the bad field) for a bad
// descriptor, before anything is queued; nothing is launched when the output is empty.
void launchGemm(DeviceRuntime& runtime, Stream stream, const GemmDesc& desc);
void launchConv2d(DeviceRuntime& runtime, Stream stream, const Conv2dDesc& desc);

}  // namespace anvil::cuda
