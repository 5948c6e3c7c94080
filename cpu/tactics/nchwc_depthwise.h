// The blocked (NCHW16c / NCHW8c) depthwise row of cpu/tactics/native_nchwc_spatial.cpp for
// kernels that produce the depthwise convolution's input themselves (anvil.FusedConvDw,
// native_conv_dw_fused.inc): its input rows as pointers, each a block plane's row [W][b].
#pragma once

#include "cpu/tactics/native_linear_conv.h"

namespace anvil::cpu::tactics {

// Output row y ([OW][block]) of one channel block: rows[i] is input row oh * sH - pt + i of
// the block's plane, or a row of zeros (at least W * block floats) above and below it; w the
// block's filter [kh][kw][block], bias its lanes; the outputs clamped to [lo, hi]. The same
// taps in the same order as f32_dwconv2d_nchw{8,16}c: the same bits. block 16 needs
// AVX-512, 8 AVX2 and FMA.
void blockedDwRow(int block, const Conv2dGeom& g, const float* const* rows, const float* w, const float* bias,
                  float* y, float lo, float hi);

// Whether blockedDwRowPair serves the window at this block: two output rows a pass where
// that is faster (3x3 stride 1 on AVX-512; f32_dwconv2d_nchw16c pairs them too).
bool blockedDwRowPairs(int block, const Conv2dGeom& g);
// Output rows y0 and y1 (the next) from rows[0 .. kh]: the bits of two blockedDwRow calls.
void blockedDwRowPair(int block, const Conv2dGeom& g, const float* const* rows, const float* w, const float* bias,
                      float* y0, float* y1, float lo, float hi);

}  // namespace anvil::cpu::tactics
