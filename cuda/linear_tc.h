// The tensor-core GEMM of the CUDA backend: the checked launchers of the WMMA kernels
// (cuda/kernels/gemm_tc.cuh, gemm_tc_i8.cuh), f32 activations against f16 / bf16 operands, or
// quantized per tensor against s8 weights. No CUDA header here.
#pragma once

#include <cstdint>
#include <string>

#include "cuda/linear.h"
#include "cuda/runtime.h"
#include "cuda/types.h"

namespace anvil::cuda {

// "f16_gemm_wmma_64x64x16" / "bf16_..." / "i8_...": the operand type, then the block tile.
const char* gemmTensorCoreKernelName(DataType operandType);

// launchGemm's descriptor and semantics (batch, transposes, ld*, stride*, bias, Z, alpha,
// beta, activation, clip), except for what d.dtype means: the type the tensor cores multiply,
// kF16 or kBF16. B is stored in it (a prepacked weight); A, bias, Z and C are f32, and A is
// rounded to d.dtype as the kernel stages it. Products accumulate in f32. Asynchronous on
// `stream`; kInvalidArgument (naming the kernel and the field) for a bad descriptor, before
// anything is queued; nothing is launched when C is empty.
void launchGemmTensorCore(DeviceRuntime& runtime, Stream stream, const GemmDesc& d);

// "f16_conv2d_implicit_gemm_wmma_64x64x16" / "bf16_..." / "i8_...".
const char* conv2dTensorCoreKernelName(DataType operandType);

// launchConv2d's descriptor and semantics (any window, groups, bias, Z, activation, clip), with
// the weights [k, c / groups, r, s] in `weight`, of `operandType` (kF16 or kBF16) rather than in
// d.weight (not read). x is rounded to operandType as the kernel stages it; products
// accumulate in f32; x, bias, z and y are f32.
void launchConv2dTensorCore(DeviceRuntime& runtime, Stream stream, const Conv2dDesc& d,
                            const void* weight, DataType operandType);

// ---- INT8 (s8 x s8 WMMA, exact s32 sums) ----

// The largest reduction length whose sums stay exact in s32: 255 * 127 * K < 2^31, the CPU INT8
// kernels' kI8MaxK.
inline constexpr std::int64_t kInt8TensorCoreMaxK = 66000;

// The quantization of an INT8 launch, as the CPU INT8 kernels quantize (cpu/tactics/int8_gemm.h):
// the f32 activations go on the u8 grid q = clamp(rint(x * xInv) + xZero, 0, 255) as the kernel
// stages them (as s8 q - 128); per output feature f (a GEMM's column, a conv's output channel),
// device arrays scale[f] = s_x * s_w[f] (times a GEMM's alpha) and offset[f] = (xZero - 128) *
// sum_k w[f][k]. The exact s32 sum of (q - 128) * w minus offset[f] is sum (q - xZero) * w; the
// kernel's f32 result before the epilogue is float(that) * scale[f].
struct Int8Quant {
  const float* scale = nullptr;
  const std::int32_t* offset = nullptr;
  float xInv = 1.0f;
  std::int32_t xZero = 0;
};

// launchGemmTensorCore with d.dtype kI8, d.transB set and B the s8 weights, n rows of k (ldb >= k),
// alpha 1 (folded into q.scale); A, bias, Z and C f32. k <= kInt8TensorCoreMaxK.
void launchGemmInt8TensorCore(DeviceRuntime& runtime, Stream stream, const GemmDesc& d, const Int8Quant& q);

// launchConv2dTensorCore with s8 weights [k, c / groups, r, s] in `weight`; x is quantized as its
// im2col column is staged (a padding tap is the quantized 0.0, xZero). c / groups * r * s <=
// kInt8TensorCoreMaxK.
void launchConv2dInt8TensorCore(DeviceRuntime& runtime, Stream stream, const Conv2dDesc& d, const void* weight,
                                const Int8Quant& q);

}  // namespace anvil::cuda
