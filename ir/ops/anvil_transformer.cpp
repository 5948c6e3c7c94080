// Schemas of the anvil-domain transformer ops. LayerNorm and GELU fuse into the ONNX ops
// (LayerNormalization, Gelu); attention has no ONNX op at our opsets, so it is ours:
//
// anvil.Attention(Q, K, V [, mask]) -> Y: scaled dot-product attention,
//   Y = softmax(mask(scale * Q . K^T)) . V over the last axis, where
//   Q [b..., Sq, D], K [b..., Sk, D], V [b..., Sk, Dv] (one rank >= 2; batch dims b...
//   numpy-broadcast like MatMul's), Y [b..., Sq, Dv];
//   scale      float (default 1): multiplies Q . K^T;
//   mask_kind  string: "none" (default, no mask input)
//                      "add"        scores + mask (mask: Q's type)
//                      "fill_true"  scores where mask is false, mask_fill where it is true
//                      "fill_false" scores where mask is true, mask_fill where it is false
//              (bool mask for the fill kinds); the mask numpy-broadcasts to [b..., Sq, Sk]
//              and must not enlarge it;
//   mask_fill  float (default -inf).
// Projections stay outside (they are Gemm/MatMul); K is not transposed (the fusion
// absorbs the exporter's Transpose).
#include "ir/op_schema.h"
#include "ir/ops/infer_util.h"

namespace anvil::ir::ops {

namespace {

bool isFloatType(DataType t) {
  return t == DataType::kF32 || t == DataType::kF64 || t == DataType::kF16 || t == DataType::kBF16;
}

// Two dims that must agree: a mismatch is only provable when both are static.
void checkSameDim(const InferContext& c, const Dim& a, const Dim& b, const std::string& what) {
  if (a.isStatic() && b.isStatic())
    c.check(a.value() == b.value(), what + ": " + std::to_string(a.value()) + " vs " + std::to_string(b.value()));
}

void inferAttention(InferContext& c) {
  const TensorType &q = c.inputType(0), &k = c.inputType(1), &v = c.inputType(2);
  c.check(isFloatType(q.dtype), std::string("Q must be a float type, got ") + dtypeName(q.dtype));
  c.check(k.dtype == q.dtype && v.dtype == q.dtype, "Q, K and V must have one element type");
  const std::string kind = c.attrs().getString("mask_kind", "none");
  c.check(kind == "none" || kind == "add" || kind == "fill_true" || kind == "fill_false",
          "mask_kind must be none, add, fill_true or fill_false, got '" + kind + "'");
  const bool hasMask = c.hasInput(3);
  c.check(hasMask == (kind != "none"), kind == "none" ? "a mask input needs mask_kind add, fill_true or fill_false"
                                                      : "mask_kind " + kind + " needs the mask input (input 3)");
  if (hasMask) {
    const DataType mt = c.inputDtype(3);
    if (kind == "add")
      c.check(mt == q.dtype, std::string("an additive mask must have Q's type, got ") + dtypeName(mt));
    else
      c.check(mt == DataType::kBool, std::string("a fill mask must be bool, got ") + dtypeName(mt));
  }
  if (!q.shape.rankKnown() || !k.shape.rankKnown() || !v.shape.rankKnown()) {
    c.setOutput(0, q.dtype, Shape::unknownRank());
    return;
  }
  const size_t r = q.shape.rank();
  c.check(r >= 2, "Q must have rank >= 2, got " + q.shape.str());
  c.check(k.shape.rank() == r && v.shape.rank() == r,
          "Q, K and V must have one rank, got " + q.shape.str() + ", " + k.shape.str() + ", " + v.shape.str());
  checkSameDim(c, q.shape[r - 1], k.shape[r - 1], "Q and K must have the same head size D");
  checkSameDim(c, k.shape[r - 2], v.shape[r - 2], "K and V must have the same sequence length Sk");
  std::vector<Dim> qb(q.shape.dims().begin(), q.shape.dims().end() - 2);
  std::vector<Dim> kb(k.shape.dims().begin(), k.shape.dims().end() - 2);
  std::vector<Dim> vb(v.shape.dims().begin(), v.shape.dims().end() - 2);
  Shape batch;
  try {
    batch = broadcastShapes(broadcastShapes(Shape(qb), Shape(kb)), Shape(vb));
  } catch (const Error& e) {
    c.fail(std::string("batch dims of Q, K, V do not broadcast: ") + e.what());
  }
  std::vector<Dim> out = batch.dims();
  std::vector<Dim> scores = out;
  out.push_back(q.shape[r - 2]);
  out.push_back(v.shape[r - 1]);
  scores.push_back(q.shape[r - 2]);
  scores.push_back(k.shape[r - 2]);
  if (hasMask && c.inputShape(3).rankKnown()) {
    const Shape& m = c.inputShape(3);
    c.check(m.rank() <= scores.size(), "mask " + m.str() + " has a higher rank than the scores");
    for (size_t i = 0; i < m.rank(); ++i) {
      const Dim& md = m[i];
      const Dim& sd = scores[scores.size() - m.rank() + i];
      if (md.isStatic() && md.value() != 1 && sd.isStatic())
        c.check(md.value() == sd.value(), "mask " + m.str() + " does not broadcast to the scores " + Shape(scores).str());
    }
  }
  c.setOutput(0, q.dtype, Shape(out));
}

}  // namespace

void registerAnvilTransformerOps(OpRegistry& r) {
  r.add({.name = "Attention", .domain = "anvil", .minInputs = 3, .maxInputs = 4, .traits = kTraitFused,
         .infer = inferAttention,
         .summary = "softmax(mask(scale * Q.K^T)).V over the last axis; Q,K,V [b...,S,D]; optional mask (input 3)"});
}

}  // namespace anvil::ir::ops
