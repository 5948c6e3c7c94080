// The ring kernels of the mpc program (program.h): pure functions over dense row-major
// std::vector<Ring> and their shapes, wrapping mod 2^64. The plaintext fixed executor
// (fixed.cpp) is these kernels in step order; the secure protocol applies the same
// kernels to shares (the bilinear maps to masked operands, the local steps to each
// party's share, the lookup to opened bytes), so both sides compute with one definition.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/mpc/program.h"

namespace anvil::mpc {

using Dims = std::vector<int64_t>;
using RingVec = std::vector<Ring>;

int64_t numelOf(const Dims& shape);

// kInput: int64 round-half-away(x / scale), as a ring element.
Ring quantize(double x, double scale);
// kOutput: int64(v) * scale.
double dequantize(Ring v, double scale);

// ---- kLinear / kScale: the bilinear map op(W, x) without bias (step.linear, step.conv,
// step.weightShape say which); `xShape` the input's shape, `outShape` the output's.
RingVec applyBilinear(const Step& step, const RingVec& W, const RingVec& x, const Dims& xShape, const Dims& outShape);
// Adds step.bias (laid out as program.h says) to `out` in place; no-op without a bias.
void addBias(const Step& step, RingVec& out, const Dims& outShape);

// ---- kLut / kMaxPool truncation and lookup.
// t = floor((v + 2^(shift-1)) / 2^shift) mod 256 on the two's-complement reading of v
// (shift 0: v mod 256). A logical shift of the uint64 gives the same low byte for shift <= 56.
uint8_t lutIndex(Ring v, int32_t shift);
RingVec applyLut(const Step& step, const RingVec& in);
// kMaxPool: for each output element (row-major over outShape), the flat input indices of
// its window in window order (kh-major, then kw), padding skipped.
std::vector<std::vector<int64_t>> maxPoolWindows(const Step& step, const Dims& inShape, const Dims& outShape);
// One comparison of the tree: b + table[lutIndex(a - b)].
Ring pairwiseMax(const Step& step, Ring a, Ring b);
// The whole pooling: per window, levels pairing (0,1), (2,3), ... (a even, b odd), an odd
// last element moving up unchanged.
RingVec applyMaxPool(const Step& step, const RingVec& in, const Dims& inShape, const Dims& outShape);

// ---- Local steps (kAdd, kSub, kMulConst, kSumPool, kReduceSum, kReshape, kTranspose,
// kConcat, kSlice): exact, and linear in each input, so each party applies them to its
// share (kAdd/kSub/kConcat take both inputs from the same party).
RingVec applyLocal(const Step& step, const std::vector<const RingVec*>& ins, const std::vector<Dims>& inShapes,
                   const Dims& outShape);

// ---- Elementwise and matrix products with numpy broadcasting (kMul, kMatMul in
// plaintext; the protocol's Beaver terms e*b, a*f, e*f use the same maps).
RingVec addBroadcast(const RingVec& a, const Dims& aShape, const RingVec& b, const Dims& bShape, const Dims& outShape);
RingVec subBroadcast(const RingVec& a, const Dims& aShape, const RingVec& b, const Dims& bShape, const Dims& outShape);
RingVec mulBroadcast(const RingVec& a, const Dims& aShape, const RingVec& b, const Dims& bShape, const Dims& outShape);
// [.., M, K] x [.., K, N] -> [.., M, N] with the batch axes broadcast.
RingVec matmulBatched(const RingVec& a, const Dims& aShape, const RingVec& b, const Dims& bShape, const Dims& outShape);

// The output shape of a kLinear conv / kMaxPool / kSumPool window op on an NCHW input
// (oc: output channels, ignored by pooling which keeps C).
Dims windowOutputShape(const ConvGeometry& g, const Dims& inShape, int64_t oc);

}  // namespace anvil::mpc
