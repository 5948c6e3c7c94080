// shape-folding: folds Shape -> Gather -> Unsqueeze -> Concat -> (Reshape, Expand, ...)
// chains using what inference proves about shape values (passes/graph_edit.h
// KnownValues), so the chains die (dead-code runs next).
//
//  - A node whose every output inference knows as integer data (e.g. Gather(Shape(x), 1)
//    when dim 1 of x is static while dim 0 is N) becomes initializers.
//  - Reshape(x, s) with s computed from shapes, its value known symbolically, gets a
//    constant target when that is exact: a static element stays; a symbolic element equal
//    to x's dim at the same position becomes 0 ("copy", allowzero=0); a known -1 stays;
//    at most one other element (symbolic like 2*N, or unknown) becomes -1, and only when
//    there is no -1 already and every other element is a static positive extent, so the
//    inferred extent is exactly the one the chain computed (the element count fixes it).
//  - Expand(x, s) with s known symbolically gets a constant target: an element equal to
//    the aligned dim of x becomes 1 (broadcasting keeps x's dim), static ones stay.
//  - In a broadcasting elementwise node (Where, Add, ...), an operand ConstantOfShape(s)
//    whose shape the other operands already span becomes its scalar fill value.
//  - Then a constant-folding sweep, for what now has constant inputs only (ConstantOfShape
//    of a folded shape, ...).
// Anything else (a symbolic element the rules cannot place, allowzero=1 copies) is left.
#include "ir/op_schema.h"
#include "passes/graph_edit.h"
#include "passes/pattern.h"
#include "passes/passes.h"

namespace anvil::passes {

namespace {

constexpr int64_t kMaxFoldElements = 4096;

ir::Tensor i64Vector(const std::vector<int64_t>& v) {
  return ir::Tensor::fromVector<int64_t>(ir::DataType::kI64, {int64_t(v.size())}, v);
}

// A constant Reshape target equivalent to the symbolic shape value `sv`, when exact.
std::optional<std::vector<int64_t>> reshapeTarget(const ir::Shape& in, const std::vector<ir::Dim>& sv, bool allowzero) {
  std::vector<int64_t> out(sv.size(), 0);
  std::vector<size_t> open;
  bool hasMinusOne = false;
  for (size_t i = 0; i < sv.size(); ++i) {
    if (auto v = shapeValueInt(sv[i])) {
      if (*v < -1) return std::nullopt;
      hasMinusOne = hasMinusOne || *v == -1;
      out[i] = *v;
    } else if (!allowzero && sv[i].isSymbolic() && in.rankKnown() && i < in.rank() && in[i] == sv[i]) {
      out[i] = 0;  // copy x's dim i, which is this very symbol
    } else {
      open.push_back(i);
    }
  }
  if (open.empty()) return out;
  if (open.size() > 1 || hasMinusOne) return std::nullopt;
  for (size_t i = 0; i < out.size(); ++i)
    if (i != open[0] && out[i] <= 0) return std::nullopt;  // only static positive extents beside a new -1
  out[open[0]] = -1;
  return out;
}

// A constant Expand target equivalent to `sv` for input shape `in`, when exact.
std::optional<std::vector<int64_t>> expandTarget(const ir::Shape& in, const std::vector<ir::Dim>& sv) {
  if (!in.rankKnown()) return std::nullopt;
  const int64_t r = int64_t(in.rank()), m = int64_t(sv.size());
  std::vector<int64_t> out;
  for (int64_t i = 0; i < m; ++i) {
    const int64_t j = i + r - m;  // the aligned dim of x, if any
    if (auto v = shapeValueInt(sv[size_t(i)])) {
      if (*v < 0) return std::nullopt;
      out.push_back(*v);
    } else if (j >= 0 && sv[size_t(i)].isSymbolic() && in[size_t(j)] == sv[size_t(i)]) {
      out.push_back(1);
    } else {
      return std::nullopt;
    }
  }
  return out;
}

// In a broadcasting elementwise node, an operand ConstantOfShape(s) whose shape the
// other operands already span (their broadcast is the node's output shape, every dim
// known) can be its scalar fill value: the result is the same for every s.
int scalarizeFills(ir::Graph& g, ir::Node& n) {
  int changed = 0;
  if (n.numOutputs() != 1) return 0;
  const ir::Shape& ys = n.output(0)->shape();
  if (!ys.rankKnown()) return 0;
  for (const ir::Dim& d : ys.dims())
    if (d.isUnknown()) return 0;
  for (size_t i = 0; i < n.numInputs(); ++i) {
    ir::Node* c = producerIs(n.input(i), "ConstantOfShape");
    if (!c) continue;
    ir::Shape b;
    bool any = false;
    try {
      for (size_t j = 0; j < n.numInputs(); ++j) {
        if (j == i || !n.input(j)) continue;
        b = any ? ir::broadcastShapes(b, n.input(j)->shape()) : n.input(j)->shape();
        any = true;
      }
    } catch (const Error&) {
      continue;
    }
    if (!any || b != ys) continue;
    const ir::Tensor* value = c->attrs().getTensor("value");
    if (value && value->numel() != 1) continue;
    ir::Tensor fill = value ? value->reshaped({}).clone() : ir::Tensor(ir::DataType::kF32, {});
    if (fill.dtype() != n.input(i)->dtype()) continue;
    n.setInput(i, addConstant(g, "fill", std::move(fill)));
    ++changed;
  }
  return changed;
}

}  // namespace

PassResult foldShapeChains(ir::Graph& g, const PassContext& ctx) {
  KnownValues kv = computeKnownValues(g);
  int values = 0, reshapes = 0, expands = 0, fills = 0;
  const auto observed = observedOutputs(g);
  std::vector<ir::Node*> snapshot;
  for (const auto& n : g.nodes()) snapshot.push_back(n.get());
  for (ir::Node* n : snapshot) {
    const ir::OpSchema* schema = n->schema();
    if (!schema || schema->has(ir::kTraitRandom) || hasSubgraphs(*n)) continue;
    // Outputs inference knows as data.
    bool allKnown = n->numOutputs() > 0, anyOutput = false;
    for (const ir::Value* o : n->outputs()) {
      if (o->name().empty()) continue;
      const ir::Tensor* t = kv.dataOf(o);
      anyOutput = anyOutput || observed.count(o);
      // Integers only: float folds in inference need not round like the kernels; those
      // nodes fold in the constant-folding sweep below once their inputs are constants.
      allKnown = allKnown && t && t->numel() <= kMaxFoldElements &&
                 (ir::isInteger(t->dtype()) || t->dtype() == ir::DataType::kBool);
    }
    if (allKnown && !anyOutput) {
      for (ir::Value* o : n->outputs())
        if (!o->name().empty()) makeConstant(o, kv.dataOf(o)->clone());
      g.removeNode(n);
      ++values;
      continue;
    }
    if (n->domain().empty() && schema->has(ir::kTraitElementwise) && schema->has(ir::kTraitBroadcast)) {
      fills += scalarizeFills(g, *n);
      continue;
    }
    if (!n->domain().empty() || n->numInputs() < 2 || !n->input(0) || !n->input(1)) continue;
    ir::Value* s = n->input(1);
    if (trueConstantOf(g, s)) continue;
    const std::vector<ir::Dim>* sv = kv.shapeValueOf(s);
    if (!sv) continue;
    const ir::Shape& in = n->input(0)->shape();
    if (n->op() == "Reshape") {
      if (auto t = reshapeTarget(in, *sv, n->attrs().getInt("allowzero", 0) != 0)) {
        n->setInput(1, addConstant(g, n->output(0)->name() + "_shape", i64Vector(*t)));
        ++reshapes;
      }
    } else if (n->op() == "Expand") {
      if (auto t = expandTarget(in, *sv)) {
        n->setInput(1, addConstant(g, n->output(0)->name() + "_shape", i64Vector(*t)));
        ++expands;
      }
    }
  }
  g.removeUnusedValues();
  // What now has constant inputs only (ConstantOfShape of a folded shape, ...).
  PassResult cf = foldConstants(g, ctx);
  std::string stats = "values=" + std::to_string(values) + ", Reshape=" + std::to_string(reshapes) +
                      ", Expand=" + std::to_string(expands) + ", fill-to-scalar=" + std::to_string(fills) +
                      ", then-folded=" + std::to_string(cf.changed);
  return {values + reshapes + expands + fills + cf.changed, stats};
}

}  // namespace anvil::passes
