// The blocked activation layout NCHW<b>c (b = 8 for AVX2 kernels, 16 for AVX-512 ones):
// what the builder's layout selection (codegen/layout_selection.cpp) promises the blocked
// kernels, and what they promise back.
//
//  - A rank-4 f32 value [N, C, H, W] in NCHW<b>c is stored [N][ceil(C/b)][H][W][b]:
//    element (n, c, h, w) at ((n * ceil(C/b) + c / b) * H * W + h * W + w) * b + c % b.
//    Its TensorView keeps the logical dims [N, C, H, W]; bytes() of the view is not its
//    storage size (storageFloats() is).
//  - Padding lanes (channels C .. ceil(C/b)*b - 1 of the last block) are ZERO. Every
//    blocked kernel writes zeros there (after its epilogue: sigmoid(0) is not 0) and may
//    rely on reading zeros there.
//  - In a blocked node every non-constant rank-4 input and every rank-4 output has the same
//    layout NCHW<b>c; constants (filters, biases, [1,C,1,1] scales) stay row-major.
//  - A kernel that serves blocked nodes sets Kernel::nchwcBlock = b; the builder offers it
//    only nodes whose values carry that layout, and offers row-major kernels only nodes
//    without blocked values. Its supports() still checks everything else.
//  - anvil.Reorder (attribute "to": "NCHW8c", "NCHW16c" or "plain") converts between the
//    row-major and the blocked storage of the same logical tensor at region boundaries.
#pragma once

#include <cstdint>
#include <cstring>

#include "ir/graph.h"
#include "ir/ops/anvil_linear.h"

namespace anvil::cpu::nchwc {

// The block of a value's layout: 8 or 16 for NCHW8c / NCHW16c, 0 for any other layout.
inline int blockOf(const ir::Value* v) {
  if (!v || v->layout().family() != "NCHWc") return 0;
  return v->layout().block();
}

inline int64_t channelBlocks(int64_t channels, int block) { return (channels + block - 1) / block; }

// Whether a Conv / anvil.FusedConv node's activations are all NCHW<block>c (X, Y, and the
// residual Z where given) and its constants W and B plain.
inline bool convActivationsBlocked(int block, const ir::Node& n) {
  if (blockOf(n.input(0)) != block || blockOf(n.output(0)) != block) return false;
  if (blockOf(n.input(1)) != 0 || (n.input(2) && blockOf(n.input(2)) != 0)) return false;
  const ir::Value* z = n.input(ir::linear::kResidualInput);  // null where absent
  return !z || blockOf(z) == block;
}

// Zeros into lanes [c, block) of `pixels` consecutive pixels of a channel block (c: the
// channels the last block holds, C % block; 0: no padding lanes, nothing to do). Every
// blocked kernel ends its last output block with it (the layout's padding lanes are zero).
inline void zeroPadLanes(float* y, int64_t pixels, int block, int64_t c) {
  if (c == 0) return;
  for (int64_t p = 0; p < pixels; ++p) std::memset(y + p * block + c, 0, size_t(block - c) * sizeof(float));
}

// Floats a blocked [N, C, H, W] value occupies.
inline int64_t storageFloats(int64_t n, int64_t c, int64_t h, int64_t w, int block) {
  return n * channelBlocks(c, block) * block * h * w;
}

}  // namespace anvil::cpu::nchwc
