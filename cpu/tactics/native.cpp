// Native kernels of the CPU backend (runtime/kernel.h: prepare at build, run on views),
// registered by family. Families replace their KernelContext tactics as they are ported.
#include "runtime/kernel.h"

namespace anvil::runtime {

void registerNativeLinearKernels(Kernels& k);     // cpu/tactics/native_linear.cpp: MatMul, Gemm, Conv, fused linear
void registerNativeOpKernels(Kernels& k);         // cpu/tactics/native_ops.cpp: pooling, elementwise, norms, movement
void registerNativeSequenceKernels(Kernels& k);   // cpu/tactics/native_sequence.cpp: attention, fused chains, RNNs
void registerNativeWinogradKernels(Kernels& k);   // cpu/tactics/native_winograd.cpp: 3x3 convolutions
void registerNativeConvRowsKernels(Kernels& k);   // cpu/tactics/native_conv_rows.cpp: Conv with pixels as GEMM rows
void registerNativeConvStemKernels(Kernels& k);   // cpu/tactics/native_conv_stem.cpp: Conv over <= 4 input channels
void registerNativeNchwcOpKernels(Kernels& k);     // cpu/tactics/native_nchwc_ops.cpp: blocked Reorder, elementwise, GAP, Concat
void registerNativeNchwcSpatialKernels(Kernels& k);  // cpu/tactics/native_nchwc_spatial.cpp: blocked depthwise, pooling
void registerNativeInt8Kernels(Kernels& k);       // cpu/tactics/native_int8.cpp: INT8 MatMul, Gemm, Conv, fused linear
void registerNativeInt8PoolKernels(Kernels& k);   // cpu/tactics/native_int8_pool.cpp: u8 MaxPool of lowered chains
void registerNativeInt8PixelsKernels(Kernels& k);  // cpu/tactics/native_int8_conv_pixels.cpp: INT8 Conv, pixels as tile rows
void registerNativeInt8AmxKernels(Kernels& k);    // cpu/tactics/native_int8_amx.cpp: INT8 Conv, MatMul, Gemm on AMX tiles
void registerNativeHalfKernels(Kernels& k);       // cpu/tactics/native_half.cpp: FP16 / BF16 MatMul, Gemm, Conv
void registerNativeQdqKernels(Kernels& k);        // cpu/tactics/native_qdq.cpp: per-tensor Q/DQ steps, QLinearAdd
void registerNativeConvTransposeKernels(Kernels& k);  // cpu/tactics/native_conv_transpose.cpp: 2-D ConvTranspose

void registerNativeCpuKernels(Kernels& k) {
  registerNativeLinearKernels(k);
  registerNativeOpKernels(k);
  registerNativeSequenceKernels(k);
  registerNativeWinogradKernels(k);
  registerNativeConvRowsKernels(k);
  registerNativeConvStemKernels(k);
  registerNativeNchwcOpKernels(k);
  registerNativeNchwcSpatialKernels(k);
  registerNativeInt8Kernels(k);
  registerNativeInt8PoolKernels(k);
  registerNativeInt8PixelsKernels(k);
  registerNativeInt8AmxKernels(k);
  registerNativeHalfKernels(k);
  registerNativeQdqKernels(k);
  registerNativeConvTransposeKernels(k);
}

}  // namespace anvil::runtime
