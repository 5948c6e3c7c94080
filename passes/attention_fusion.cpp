// attention-fusion: rewrites scaled dot-product attention, as BERT-like exports and torch's
// MultiheadAttention emit it, into one anvil.Attention node (ir/ops/anvil_transformer.cpp):
//
//   s = MatMul(Q', Kt)                Q' = Q [* or / scalar]     Kt = K^T [* or / scalar]
//   s = s [* or / scalar]...          (every scalar folds into the `scale` attribute)
//   s = Add(s, mask)                  -> mask_kind "add"        (either operand order)
//     | Where(m, fill, s)             -> mask_kind "fill_true",  mask_fill = fill
//     | Where(m, s, fill)             -> mask_kind "fill_false", mask_fill = fill
//   p = Softmax(s) over the last axis
//   y = MatMul(p, V)
//   ->  y = anvil.Attention(Q, K, V [, mask]) {scale, mask_kind, mask_fill}
//
// K enters untransposed ([b..., Sk, D]): when Kt is Transpose(X, perm) (torch: perm
// [1,2,0] of [S, N*h, D]; HF: [0,2,3,1] of [N, S, h, D]), the exporter's Transpose is
// replaced by one with the last two axes of perm swapped (dropped if that is the
// identity); any other Kt gets a Transpose of its last two axes. The projections stay
// outside (they are MatMul/Gemm). A scale applied after the mask is not folded (it would
// scale the mask too), so such graphs are declined, as are: a scale that is not a true
// scalar constant, intermediates with other readers (attention weights returned as an
// output), ranks that differ or are unknown, non-f32 types, a softmax over another axis,
// and masks that would broadcast the scores to a bigger shape.
#include <cmath>
#include <numeric>

#include "passes/fusion_util.h"
#include "passes/linear_rewrite.h"
#include "passes/passes.h"

namespace anvil::passes {

namespace {

using fusion::otherOperand;

// Strips v = Mul(a, c) / Mul(c, a) / Div(a, c) with c a true scalar constant (c != 0) and
// v read only by the chain; multiplies *scale by c (or 1/c) and returns a.
ir::Value* stripScale(ir::Graph& g, ir::Value* v, double* scale, std::vector<ir::Node*>* dead) {
  if (!hasSingleUse(g, v)) return nullptr;
  ir::Node* n = fusion::producerIn(v, {"Mul", "Div"});
  if (!n || n->numInputs() != 2) return nullptr;
  for (int i = 0; i < 2; ++i) {
    if (n->op() == "Div" && i == 0) continue;  // c / a is not a scale
    auto c = fusion::scalarOf(g, n->input(size_t(i)));
    ir::Value* a = n->input(size_t(1 - i));
    if (!c || *c == 0 || !std::isfinite(*c) || !fusion::scalarKeepsShape(n->input(size_t(i)), a)) continue;
    *scale *= n->op() == "Div" ? 1.0 / *c : *c;
    dead->push_back(n);
    return a;
  }
  return nullptr;
}

// Peels every scalar scale off v; returns the unscaled value.
ir::Value* stripScales(ir::Graph& g, ir::Value* v, double* scale, std::vector<ir::Node*>* dead) {
  while (ir::Value* a = stripScale(g, v, scale, dead)) v = a;
  return v;
}

bool sameDims(const ir::Shape& a, const ir::Shape& b) { return a.rankKnown() && b.rankKnown() && a == b; }

// The pieces of one match, gathered before anything is changed.
struct Match {
  ir::Value* q = nullptr;
  ir::Value* kt = nullptr;  // K^T as the MatMul reads it (before scales were stripped)
  ir::Value* v = nullptr;
  ir::Value* mask = nullptr;
  std::string maskKind = "none";
  double fill = -INFINITY;
  double scale = 1.0;
  std::vector<ir::Node*> dead;
};

// s is the softmax input; fills m.mask/maskKind/fill/scale and returns the QK MatMul.
ir::Node* matchScores(ir::Graph& g, ir::Value* s, Match& m) {
  auto qk = [&](ir::Value* v) -> ir::Node* {
    ir::Value* raw = stripScales(g, v, &m.scale, &m.dead);
    ir::Node* mm = producerIs(raw, "MatMul");
    if (!mm || !hasSingleUse(g, raw)) return nullptr;
    return mm;
  };
  if (ir::Node* add = producerIs(s, "Add"); add && hasSingleUse(g, s)) {
    for (int i = 0; i < 2; ++i) {
      const size_t before = m.dead.size();
      const double scale = m.scale;
      if (ir::Node* mm = qk(add->input(size_t(i)))) {
        m.mask = add->input(size_t(1 - i));
        m.maskKind = "add";
        m.dead.push_back(add);
        return mm;
      }
      m.dead.resize(before);
      m.scale = scale;
    }
    return nullptr;
  }
  if (ir::Node* where = producerIs(s, "Where"); where && hasSingleUse(g, s)) {
    for (int i = 1; i <= 2; ++i) {
      auto fill = fusion::scalarOf(g, where->input(size_t(3 - i)));
      if (!fill || !fusion::scalarKeepsShape(where->input(size_t(3 - i)), where->input(size_t(i)))) continue;
      const size_t before = m.dead.size();
      const double scale = m.scale;
      if (ir::Node* mm = qk(where->input(size_t(i)))) {
        m.mask = where->input(0);
        m.maskKind = i == 2 ? "fill_true" : "fill_false";  // Where(m, fill, s): true -> fill
        m.fill = *fill;
        m.dead.push_back(where);
        return mm;
      }
      m.dead.resize(before);
      m.scale = scale;
    }
    return nullptr;
  }
  return qk(s);
}

bool fuseAt(ir::Graph& g, ir::Node& pv) {
  // pv = MatMul(Softmax(s), V)
  if (pv.numInputs() != 2) return false;
  Match m;
  ir::Value* p = pv.input(0);
  m.v = pv.input(1);
  ir::Node* sm = producerIs(p, "Softmax");
  if (!sm || !hasSingleUse(g, p)) return false;
  ir::Value* s = sm->input(0);
  if (!s->shape().rankKnown()) return false;
  const int64_t rank = int64_t(s->shape().rank());
  const int64_t axis = sm->attrs().getInt("axis", -1);
  if (rank < 2 || (axis != -1 && axis != rank - 1)) return false;
  m.dead.push_back(sm);
  ir::Node* qk = matchScores(g, s, m);
  if (!qk) return false;
  m.dead.push_back(qk);
  // The scores' shape must be the QK MatMul's: the mask may not enlarge it.
  if (!sameDims(qk->output(0)->shape(), s->shape())) return false;
  m.q = stripScales(g, qk->input(0), &m.scale, &m.dead);
  m.kt = stripScales(g, qk->input(1), &m.scale, &m.dead);
  for (ir::Value* v : {m.q, m.kt, m.v})
    if (v->dtype() != ir::DataType::kF32 || !v->shape().rankKnown() || int64_t(v->shape().rank()) != rank)
      return false;
  if (pv.output(0)->dtype() != ir::DataType::kF32) return false;
  if (m.mask) {
    const ir::DataType want = m.maskKind == "add" ? ir::DataType::kF32 : ir::DataType::kBool;
    if (m.mask->dtype() != want || !m.mask->shape().rankKnown() || int64_t(m.mask->shape().rank()) > rank) return false;
  }
  if (!std::isfinite(m.scale) || float(m.scale) == 0.0f) return false;
  // The output must be what Attention infers: [batch..., Sq, Dv] with the MatMul's batch.
  const ir::Shape& out = pv.output(0)->shape();
  if (!out.rankKnown() || int64_t(out.rank()) != rank) return false;

  // K from K^T: fold the exporter's Transpose or add one.
  ir::Node* tr = producerIs(m.kt, "Transpose");
  std::vector<int64_t> perm;
  ir::Value* kSrc = m.kt;
  if (tr && hasSingleUse(g, m.kt)) {
    perm = tr->attrs().getInts("perm");
    if (perm.empty()) {  // default: reverse the axes
      perm.resize(size_t(rank));
      std::iota(perm.rbegin(), perm.rend(), 0);
    }
    if (int64_t(perm.size()) != rank) return false;
    std::swap(perm[size_t(rank - 1)], perm[size_t(rank - 2)]);
    kSrc = tr->input(0);
    m.dead.push_back(tr);
  } else {
    perm.resize(size_t(rank));
    std::iota(perm.begin(), perm.end(), 0);
    std::swap(perm[size_t(rank - 1)], perm[size_t(rank - 2)]);
  }
  bool identity = true;
  for (int64_t i = 0; i < rank; ++i) identity = identity && perm[size_t(i)] == i;

  // Rewrite. Names come from the QK MatMul (the block's first node).
  const std::string base = pv.name().empty() ? std::string("attention") : pv.name();
  ir::Value* k = kSrc;
  ir::Node* newTr = nullptr;
  if (!identity) {
    newTr = g.addNode("Transpose", "", base + "/K", {kSrc}, {linear::freshName(g, base + "/K")});
    newTr->attrs().set("perm", perm);
    k = newTr->output(0);
  }
  ir::Attributes attrs;
  attrs.set("scale", float(m.scale));
  if (m.mask) {
    attrs.set("mask_kind", m.maskKind);
    if (m.maskKind != "add") attrs.set("mask_fill", float(m.fill));
  }
  std::vector<ir::Value*> inputs = {m.q, k, m.v};
  if (m.mask) inputs.push_back(m.mask);
  m.dead.push_back(&pv);
  linear::replaceChain(g, pv.output(0), m.dead, "Attention", "anvil", base + "/Attention", inputs, std::move(attrs));
  return true;
}

}  // namespace

PassResult fuseAttention(ir::Graph& g, const PassContext& /*ctx*/) {
  std::vector<Pattern> patterns = {
      {"attention", "MatMul", "", [](ir::Graph& gr, ir::Node& n) { return fuseAt(gr, n); }},
  };
  PassResult r;
  r.changed = applyPatterns(g, patterns, &r.stats);
  return r;
}

}  // namespace anvil::passes
