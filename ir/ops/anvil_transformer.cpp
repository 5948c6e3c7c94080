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
//
// The packed form (qkv_packed=1) reads the heads straight out of one QKV projection:
// anvil.Attention(QKV [, mask]) -> Y with
//   num_heads H, head_size D (E = H * D), layout "bshd" (default) or "sbhd":
//   QKV [B, S, 3E] (bshd) or [S, B, 3E] (sbhd): along the last axis Q, then K, then V,
//     each H heads of D columns (head h of Q at columns [h*D, h*D+D), of K at E + h*D,
//     of V at 2E + h*D);
//   Y [B, S, E] or [S, B, E] (QKV's layout): head h's output at columns [h*D, h*D+D);
//   mask (input 1) numpy-broadcasts to the scores [B, H, S, S] and must not enlarge them.
// It equals the plain form on Q, K, V = Transpose(Reshape(Slice(QKV)), to [B, H, S, D])
// followed by the inverse merge, without materializing any of them.
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

void checkMask(const InferContext& c, const Shape& m, const std::vector<Dim>& scores) {
  if (!m.rankKnown()) return;
  c.check(m.rank() <= scores.size(), "mask " + m.str() + " has a higher rank than the scores");
  for (size_t i = 0; i < m.rank(); ++i) {
    const Dim& md = m[i];
    const Dim& sd = scores[scores.size() - m.rank() + i];
    if (md.isStatic() && md.value() != 1 && sd.isStatic())
      c.check(md.value() == sd.value(), "mask " + m.str() + " does not broadcast to the scores " + Shape(scores).str());
  }
}

std::string checkMaskKind(InferContext& c, const TensorType& q, int maskInput) {
  const std::string kind = c.attrs().getString("mask_kind", "none");
  c.check(kind == "none" || kind == "add" || kind == "fill_true" || kind == "fill_false",
          "mask_kind must be none, add, fill_true or fill_false, got '" + kind + "'");
  const bool hasMask = c.hasInput(size_t(maskInput));
  c.check(hasMask == (kind != "none"), kind == "none" ? "a mask input needs mask_kind add, fill_true or fill_false"
                                                      : "mask_kind " + kind + " needs the mask input (input " +
                                                            std::to_string(maskInput) + ")");
  if (hasMask) {
    const DataType mt = c.inputDtype(size_t(maskInput));
    if (kind == "add")
      c.check(mt == q.dtype, std::string("an additive mask must have Q's type, got ") + dtypeName(mt));
    else
      c.check(mt == DataType::kBool, std::string("a fill mask must be bool, got ") + dtypeName(mt));
  }
  return kind;
}

void inferPackedAttention(InferContext& c) {
  const TensorType& p = c.inputType(0);
  c.check(isFloatType(p.dtype), std::string("QKV must be a float type, got ") + dtypeName(p.dtype));
  c.check(c.numInputs() <= 2, "the packed form takes QKV and an optional mask, got " +
                                  std::to_string(c.numInputs()) + " inputs");
  const std::string layout = c.attrs().getString("layout", "bshd");
  c.check(layout == "bshd" || layout == "sbhd", "layout must be bshd or sbhd, got '" + layout + "'");
  const int64_t h = c.attrs().getInt("num_heads", 0), d = c.attrs().getInt("head_size", 0);
  c.check(h > 0 && d > 0, "the packed form needs num_heads > 0 and head_size > 0, got " + std::to_string(h) + ", " +
                              std::to_string(d));
  const bool hasMask = checkMaskKind(c, p, 1) != "none";
  if (!p.shape.rankKnown()) {
    c.setOutput(0, p.dtype, Shape::unknownRank());
    return;
  }
  c.check(p.shape.rank() == 3, "QKV must have rank 3 ([B, S, 3*H*D] or [S, B, 3*H*D]), got " + p.shape.str());
  if (p.shape[2].isStatic())
    c.check(p.shape[2].value() == 3 * h * d, "QKV's last dim must be 3 * num_heads * head_size = " +
                                                 std::to_string(3 * h * d) + ", got " + p.shape.str());
  const bool bshd = layout == "bshd";
  const Dim& b = p.shape[bshd ? 0 : 1];
  const Dim& s = p.shape[bshd ? 1 : 0];
  if (hasMask) checkMask(c, c.inputShape(1), {b, Dim(h), s, s});
  c.setOutput(0, p.dtype, Shape({p.shape[0], p.shape[1], Dim(h * d)}));
}

void inferAttention(InferContext& c) {
  if (c.attrs().getInt("qkv_packed", 0) != 0) return inferPackedAttention(c);
  c.check(c.numInputs() >= 3, "Q, K and V are inputs 0-2 (or set qkv_packed=1), got " +
                                  std::to_string(c.numInputs()) + " inputs");
  const TensorType &q = c.inputType(0), &k = c.inputType(1), &v = c.inputType(2);
  c.check(isFloatType(q.dtype), std::string("Q must be a float type, got ") + dtypeName(q.dtype));
  c.check(k.dtype == q.dtype && v.dtype == q.dtype, "Q, K and V must have one element type");
  const bool hasMask = checkMaskKind(c, q, 3) != "none";
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
  if (hasMask) checkMask(c, c.inputShape(3), scores);
  c.setOutput(0, q.dtype, Shape(out));
}

}  // namespace

void registerAnvilTransformerOps(OpRegistry& r) {
  r.add({.name = "Attention", .domain = "anvil", .minInputs = 1, .maxInputs = 4, .traits = kTraitFused,
         .infer = inferAttention,
         .summary = "softmax(mask(scale * Q.K^T)).V over the last axis; Q,K,V [b...,S,D]; optional mask (input 3); or qkv_packed=1: QKV [B,S,3HD]/[S,B,3HD] (layout bshd/sbhd), mask (input 1)"});
}

}  // namespace anvil::ir::ops
