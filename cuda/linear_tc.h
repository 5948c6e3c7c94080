// The tensor-core GEMM of the CUDA backend: the checked launcher of the WMMA kernel
// (cuda/kernels/gemm_tc.cuh), f32 activations against f16 / bf16 operands. No CUDA header here.
#pragma once

#include <string>

#include "cuda/linear.h"
#include "cuda/runtime.h"
#include "cuda/types.h"

namespace anvil::cuda {

// "f16_gemm_wmma_64x64x16" / "bf16_gemm_wmma_64x64x16": the operand type, then the block tile.
const char* gemmTensorCoreKernelName(DataType operandType);

// launchGemm's descriptor and semantics (batch, transposes, ld*, stride*, bias, Z, alpha,
// beta, activation, clip), except for what d.dtype means: the type the tensor cores multiply,
// kF16 or kBF16. B is stored in it (a prepacked weight); A, bias, Z and C are f32, and A is
// rounded to d.dtype as the kernel stages it. Products accumulate in f32. Asynchronous on
// `stream`; kInvalidArgument (naming the kernel and the field) for a bad descriptor, before
// anything is queued; nothing is launched when C is empty.
void launchGemmTensorCore(DeviceRuntime& runtime, Stream stream, const GemmDesc& d);

// "f16_conv2d_implicit_gemm_wmma_64x64x16" / "bf16_...".
const char* conv2dTensorCoreKernelName(DataType operandType);

// launchConv2d's descriptor and semantics (any window, groups, bias, Z, activation, clip), with
// the weights [k, c / groups, r, s] in `weight`, of `operandType` (kF16 or kBF16) rather than in
// d.weight (not read). x is rounded to operandType as the kernel stages it; products
// accumulate in f32; x, bias, z and y are f32.
void launchConv2dTensorCore(DeviceRuntime& runtime, Stream stream, const Conv2dDesc& d,
                            const void* weight, DataType operandType);

}  // namespace anvil::cuda
