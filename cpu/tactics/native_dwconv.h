// The 3x3 and 5x5 depthwise convolution kernels (cpu/tactics/native_dwconv.cpp), registered
// with the other small-filter convolutions by registerNativeWinogradKernels (native_winograd.cpp).
#pragma once

#include "runtime/kernel.h"

namespace anvil::cpu::tactics {

// f32_dwconv2d_{3x3,5x5}_rows__avx2 (Conv) and f32_dwconv2d_{3x3,5x5}_rows_epilogue__avx2
// (anvil.FusedConv).
void registerDwConvKernels(runtime::Kernels& k);

}  // namespace anvil::cpu::tactics
