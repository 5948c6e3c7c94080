// The 3x3, 5x5 and 7x7 depthwise convolution kernels (cpu/tactics/native_dwconv.cpp), registered
// with the other small-filter convolutions by registerNativeWinogradKernels (native_winograd.cpp).
#pragma once

#include "runtime/kernel.h"

namespace anvil::cpu::tactics {

// f32_dwconv2d_{3x3,5x5,7x7}_rows__{avx2,avx512} (Conv) and f32_dwconv2d_{..}_rows_epilogue__{avx2,avx512}
// (anvil.FusedConv).
void registerDwConvKernels(runtime::Kernels& k);

}  // namespace anvil::cpu::tactics
