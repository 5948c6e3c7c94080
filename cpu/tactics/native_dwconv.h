// The 3x3 depthwise convolution kernels (cpu/tactics/native_dwconv.cpp), registered with
// the other 3x3 convolutions by registerNativeWinogradKernels (native_winograd.cpp).
#pragma once

#include "runtime/kernel.h"

namespace anvil::cpu::tactics {

// f32_dwconv2d_3x3_rows__avx2 (Conv) and f32_dwconv2d_3x3_rows_epilogue__avx2 (anvil.FusedConv).
void registerDwConv3x3Kernels(runtime::Kernels& k);

}  // namespace anvil::cpu::tactics
