// transpose-cancellation: Transpose(Transpose(x, p1), p2) becomes one Transpose with the
// composed permutation, or nothing when that is the identity; a Transpose that only moves
// extent-1 dims (the order of the other dims is kept) becomes a Reshape; Reshape of a
// Reshape/Flatten/Squeeze/Unsqueeze reads the inner input directly (row-major data is
// the same; a 0 in the outer target must copy a dim the inner input has too, else a
// static outer output shape becomes the target).
// The inner node is removed when nothing else reads it.
#include "ir/op_schema.h"
#include "passes/graph_edit.h"
#include "passes/pattern.h"
#include "passes/passes.h"

namespace anvil::passes {

namespace {

// The permutation of a Transpose (absent: reversed dims), when the rank is known.
std::optional<std::vector<int64_t>> permOf(const ir::Node& t) {
  const ir::Value* x = t.input(0);
  if (t.attrs().has("perm")) return t.attrs().getInts("perm");
  if (!x || !x->shape().rankKnown()) return std::nullopt;
  std::vector<int64_t> p;
  for (int64_t i = int64_t(x->shape().rank()) - 1; i >= 0; --i) p.push_back(i);
  return p;
}

bool isIdentity(const std::vector<int64_t>& p) {
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != int64_t(i)) return false;
  return true;
}

ir::Tensor i64Vector(const std::vector<int64_t>& v) {
  return ir::Tensor::fromVector<int64_t>(ir::DataType::kI64, {int64_t(v.size())}, v);
}

bool transposePair(ir::Graph& g, ir::Node& outer) {
  if (outer.op() != "Transpose" || !outer.domain().empty()) return false;
  ir::Node* inner = producerIs(outer.input(0), "Transpose");
  if (!inner || !inner->input(0)) return false;
  auto p1 = permOf(*inner), p2 = permOf(outer);
  if (!p1 || !p2 || p1->size() != p2->size()) return false;
  std::vector<int64_t> q(p2->size());
  for (size_t j = 0; j < q.size(); ++j) {
    const int64_t k = (*p2)[j];
    if (k < 0 || k >= int64_t(p1->size())) return false;
    q[j] = (*p1)[size_t(k)];
  }
  ir::Value* x = inner->input(0);
  if (isIdentity(q) && forwardValue(g, &outer, outer.output(0), x)) {
    // gone; when the output must stay a node's (a graph output of a graph input), the
    // outer Transpose below keeps the identity permutation: one copy instead of two.
  } else {
    outer.setInput(0, x);
    outer.attrs().set("perm", q);
  }
  removeIfUnused(g, inner);
  return true;
}

// The order of the dims that are not statically 1 is kept: the data order is too.
bool transposeToReshape(ir::Graph& g, ir::Node& t) {
  if (t.op() != "Transpose" || !t.domain().empty()) return false;
  ir::Value *x = t.input(0), *y = t.output(0);
  if (!x || !x->shape().rankKnown() || !y->shape().rankKnown()) return false;
  auto p = permOf(t);
  if (!p || p->size() != x->shape().rank() || isIdentity(*p)) return false;
  int64_t last = -1;
  for (int64_t k : *p) {
    if (k < 0 || k >= int64_t(p->size())) return false;
    const ir::Dim& d = x->shape()[size_t(k)];
    if (d.isStatic() && d.value() == 1) continue;
    if (k < last) return false;
    last = k;
  }
  auto target = constantReshapeTarget(x->shape(), y->shape().dims(), false);
  if (!target) return false;
  ir::Value* shape = addConstant(g, y->name().empty() ? "shape" : y->name() + "_shape", i64Vector(*target));
  replaceNode(g, &t, "Reshape", "", {x, shape}, ir::Attributes{});
  return true;
}

bool reshapeChain(ir::Graph& g, ir::Node& outer) {
  if (outer.op() != "Reshape" || !outer.domain().empty()) return false;
  ir::Value* mid = outer.input(0);
  ir::Node* inner = nullptr;
  for (const char* op : {"Reshape", "Flatten", "Squeeze", "Unsqueeze"})
    if (!inner) inner = producerIs(mid, op);
  if (!inner || !inner->input(0) || !outer.input(1)) return false;
  const bool allowzero = outer.attrs().getInt("allowzero", 0) != 0;
  ir::Value* shape = outer.input(1);
  const ir::Tensor* s = trueConstantOf(g, shape);
  // A 0 copies the inner result's dim; reading x instead copies x's, the same only when
  // both are the same known dim. An unknown target may copy anything.
  bool copies = !s;
  if (s && !allowzero) {
    const ir::Shape &ms = mid->shape(), &xs = inner->input(0)->shape();
    std::vector<int64_t> v = s->toInt64Vector();
    for (size_t i = 0; i < v.size(); ++i)
      if (v[i] == 0)
        copies = copies || !ms.rankKnown() || !xs.rankKnown() || i >= ms.rank() || i >= xs.rank() ||
                 ms[i].isUnknown() || ms[i] != xs[i];
  }
  if (copies) {
    // A static output shape is the target itself.
    const ir::Shape& ys = outer.output(0)->shape();
    if (!ys.isStatic()) return false;
    std::vector<int64_t> ext = ys.extents();
    for (int64_t e : ext)
      if (e == 0 && !allowzero) return false;
    shape = addConstant(g, "shape", i64Vector(ext));
    outer.setInput(1, shape);
  }
  outer.setInput(0, inner->input(0));
  removeIfUnused(g, inner);
  return true;
}

}  // namespace

PassResult cancelTransposes(ir::Graph& g, const PassContext& /*ctx*/) {
  std::string stats;
  int n = applyPatterns(g,
                        {
                            {"transpose-pair", "Transpose", "", transposePair},
                            {"transpose-to-reshape", "Transpose", "", transposeToReshape},
                            {"reshape-chain", "Reshape", "", reshapeChain},
                        },
                        &stats);
  return {n, stats};
}

}  // namespace anvil::passes
