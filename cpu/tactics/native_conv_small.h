// The 1x1 convolutions over tiny images (cpu/tactics/native_conv_small.cpp): the
// squeeze-and-excite convs of efficientnet-like models, registered with the other
// small-filter convolutions by registerNativeWinogradKernels (native_winograd.cpp).
#pragma once

#include "runtime/kernel.h"

namespace anvil::cpu::tactics {

// f32_conv1x1_gemv__avx2 (Conv) and f32_conv1x1_gemv_epilogue__avx2 (anvil.FusedConv), and
// their blocked one-pixel forms f32_conv1x1_gemv_nchw{8,16}c{,_epilogue}__avx2.
void registerConvSmallKernels(runtime::Kernels& k);

}  // namespace anvil::cpu::tactics
