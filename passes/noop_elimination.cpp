// noop-elimination: removes nodes that return their data input unchanged at inference:
// Identity; Dropout outside training (its mask, when read, becomes a constant true
// tensor); Cast/CastLike to the input's own type; Reshape/Flatten/Squeeze/Unsqueeze/
// Expand whose output type equals the input type; Pad with all-zero pads; Slice with unit
// steps that starts at 0 and runs to the end of every axis; Transpose with the identity
// permutation; Concat of one input.
//
// "Output type equals input type" accepts static dims and symbolic dims that are the same
// symbol (inference is exact on symbols: N stays N only when it provably is); a dim
// inference could not name (`?`) never matches.
//
// Graph outputs keep their Value names. When the no-op's output is a graph output, its
// data input's producer is re-created to produce a value of that name (forwardValue).
// When that is impossible -- the data input is a graph input, an initializer, another
// graph output, or read by other nodes -- the node stays: a graph output must remain a
// value computed by a node of its own (engines bind inputs and outputs by name), and an
// Identity there costs one copy.
#include <limits>

#include "passes/graph_edit.h"
#include "passes/pattern.h"
#include "passes/passes.h"

namespace anvil::passes {

namespace {

bool sameKnownType(const ir::Value* a, const ir::Value* b) {
  if (!a || !b || a->dtype() == ir::DataType::kUndefined || a->dtype() != b->dtype()) return false;
  const ir::Shape &sa = a->shape(), &sb = b->shape();
  if (!sa.rankKnown() || !sb.rankKnown() || sa.rank() != sb.rank()) return false;
  for (size_t i = 0; i < sa.rank(); ++i)
    if (sa[i].isUnknown() || sa[i] != sb[i]) return false;
  return true;
}

// Integer elements of a build-time constant input, else nullopt.
std::optional<std::vector<int64_t>> constInts(const ir::Graph& g, const ir::Value* v) {
  const ir::Tensor* t = trueConstantOf(g, v);
  if (!t || !ir::isInteger(t->dtype())) return std::nullopt;
  return t->toInt64Vector();
}

bool isIdentityPerm(const std::vector<int64_t>& perm) {
  for (size_t i = 0; i < perm.size(); ++i)
    if (perm[i] != int64_t(i)) return false;
  return true;
}

// Slice that keeps everything: unit steps, every sliced axis from 0 to its end.
bool sliceKeepsAll(const ir::Graph& g, const ir::Node& n) {
  const ir::Value *x = n.input(0), *y = n.output(0);
  if (!sameKnownType(x, y)) return false;
  auto starts = constInts(g, n.input(1)), ends = constInts(g, n.input(2));
  if (!starts || !ends || starts->size() != ends->size()) return false;
  const int64_t r = int64_t(x->shape().rank());
  std::vector<int64_t> axes;
  if (n.input(3)) {
    auto a = constInts(g, n.input(3));
    if (!a || a->size() != starts->size()) return false;
    axes = *a;
  } else {
    for (size_t i = 0; i < starts->size(); ++i) axes.push_back(int64_t(i));
  }
  if (n.input(4)) {
    auto s = constInts(g, n.input(4));
    if (!s || s->size() != starts->size()) return false;
    for (int64_t st : *s)
      if (st != 1) return false;  // a reversed slice keeps the shape but not the data
  }
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t ax = axes[i] < 0 ? axes[i] + r : axes[i];
    if (ax < 0 || ax >= r) return false;
    const ir::Dim& d = x->shape()[size_t(ax)];
    int64_t s = (*starts)[i], e = (*ends)[i];
    // With unit step the length is clamp(e) - clamp(s); it equals the extent only if s
    // clamps to 0 and e to the extent.
    bool startsAtZero = s == 0 || (d.isStatic() && s <= -d.value());
    bool runsToEnd = e >= std::numeric_limits<int64_t>::max() / 2 || (d.isStatic() && e >= d.value());
    if (!startsAtZero || !runsToEnd) return false;
  }
  return true;
}

// Whether Dropout runs in inference mode (training_mode absent or a constant false).
bool dropoutInference(const ir::Graph& g, const ir::Node& n) {
  const ir::Value* tm = n.input(2);
  if (!tm) return true;
  const ir::Tensor* t = trueConstantOf(g, tm);
  return t && t->numel() == 1 && t->getDouble(0) == 0;
}

}  // namespace

PassResult eliminateNoops(ir::Graph& g, const PassContext& /*ctx*/) {
  std::map<std::string, int> counts;
  int total = 0, kept = 0;
  std::vector<ir::Node*> snapshot;
  for (const auto& n : g.nodes()) snapshot.push_back(n.get());
  // forwardValue removes only the node at hand and its data input's producer, both
  // visited already, so every node still ahead in the snapshot is alive.
  for (ir::Node* n : snapshot) {
    if (!n->domain().empty() || n->numInputs() == 0 || !n->input(0)) continue;
    const std::string op = n->op();  // a copy: forwardValue may delete n
    ir::Value* x = n->input(0);
    ir::Value* y = n->output(0);
    bool noop = false;
    if (op == "Identity") {
      noop = true;
    } else if (op == "Dropout") {
      noop = dropoutInference(g, *n) && x->dtype() == y->dtype();
      if (noop && n->numOutputs() > 1 && !n->output(1)->name().empty()) {
        ir::Value* mask = n->output(1);
        if (isGraphOutput(g, mask)) {
          noop = false;
        } else if (!g.users(mask).empty()) {
          if (!x->shape().isStatic()) {
            noop = false;
          } else {
            ir::Tensor ones(ir::DataType::kBool, x->shape().extents());
            for (int64_t i = 0; i < ones.numel(); ++i) ones.setDouble(i, 1);
            g.replaceAllUses(mask, addConstant(g, mask->name() + "_true", std::move(ones)));
          }
        }
      }
    } else if (op == "Cast") {
      noop = x->dtype() != ir::DataType::kUndefined && n->attrs().getInt("to", 0) == int64_t(x->dtype()) &&
             y->dtype() == x->dtype();
    } else if (op == "CastLike") {
      noop = n->input(1) && x->dtype() != ir::DataType::kUndefined && n->input(1)->dtype() == x->dtype();
    } else if (op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze" || op == "Expand") {
      noop = sameKnownType(x, y);
    } else if (op == "Pad") {
      auto pads = constInts(g, n->input(1));
      noop = pads && sameKnownType(x, y);
      if (noop)
        for (int64_t p : *pads) noop = noop && p == 0;
    } else if (op == "Slice") {
      noop = sliceKeepsAll(g, *n);
    } else if (op == "Transpose") {
      if (n->attrs().has("perm")) noop = isIdentityPerm(n->attrs().getInts("perm"));
      else noop = x->shape().rankKnown() && x->shape().rank() <= 1;
      noop = noop && sameKnownType(x, y);
    } else if (op == "Concat") {
      noop = n->numInputs() == 1 && sameKnownType(x, y);
    }
    if (!noop) continue;
    if (forwardValue(g, n, y, x)) {
      ++counts[op];
      ++total;
    } else {
      ++kept;
    }
  }
  g.topoSort();
  g.removeUnusedValues();
  std::string stats;
  for (const auto& [op, c] : counts) stats += (stats.empty() ? "" : ", ") + op + "=" + std::to_string(c);
  if (kept) stats += (stats.empty() ? "" : ", ") + std::string("kept-at-graph-output=") + std::to_string(kept);
  return {total, stats};
}

}  // namespace anvil::passes
