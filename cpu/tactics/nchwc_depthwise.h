// The blocked (NCHW16c / NCHW8c) depthwise row of cpu/tactics/native_nchwc_spatial.cpp for
// kernels that produce the depthwise convolution's input themselves (anvil.FusedConvDw,
// native_conv_dw_fused.inc): its input rows as pointers, each a block plane's row [W][b].
#pragma once

#include <cmath>

#include "cpu/tactics/native_linear_conv.h"
#include "ir/ops/anvil_linear.h"

namespace anvil::cpu::tactics {

// Output row y ([OW][block]) of one channel block: rows[i] is input row oh * sH - pt + i of
// the block's plane, or a row of zeros (at least W * block floats) above and below it; w the
// block's filter [kh][kw][block], bias its lanes; the outputs clamped to [lo, hi]. The same
// taps in the same order as f32_dwconv2d_nchw{8,16}c: the same bits. block 16 needs
// AVX-512, 8 AVX2 and FMA.
void blockedDwRow(int block, const Conv2dGeom& g, const float* const* rows, const float* w, const float* bias,
                  float* y, float lo, float hi);

// How the blocked depthwise kernels apply a depthwise Conv's epilogue e without a residual:
// Relu and Clip as the row's clamp [*lo, *hi] (returns false), any other activation as an
// epilogueRow pass over each finished row (returns true; the clamp stays open).
inline bool dwEpiloguePass(const ir::linear::Epilogue& e, float* lo, float* hi) {
  *lo = -INFINITY, *hi = INFINITY;
  if (e.act == ir::linear::Activation::kRelu) return *lo = 0.0f, false;
  if (e.act == ir::linear::Activation::kClip) return *lo = e.p0, *hi = e.p1, false;
  return e.act != ir::linear::Activation::kNone;
}

// Whether blockedDwRowPair serves the window at this block: two output rows a pass where
// that is faster (3x3 stride 1 on AVX-512; f32_dwconv2d_nchw16c pairs them too).
bool blockedDwRowPairs(int block, const Conv2dGeom& g);
// Output rows y0 and y1 (the next) from rows[0 .. kh]: the bits of two blockedDwRow calls.
void blockedDwRowPair(int block, const Conv2dGeom& g, const float* const* rows, const float* w, const float* bias,
                      float* y0, float* y1, float lo, float hi);

}  // namespace anvil::cpu::tactics
