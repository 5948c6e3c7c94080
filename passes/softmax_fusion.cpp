// softmax-fusion: rewrites the decomposed, max-subtracted softmax over one axis into one
// ONNX Softmax:
//
//   e = Exp(Sub(x, ReduceMax(x, [a], keepdims=1)))
//   y = Div(e, ReduceSum(e, [a], keepdims=1))   | Mul(e, Reciprocal(ReduceSum(...)))
//   ->  y = Softmax(x) {axis=a}
//
// Only the max-subtracted form is fused. The plain form Exp(x) / ReduceSum(Exp(x)) is the
// same function in exact arithmetic, but not in f32: Exp overflows to inf for x > 88.7,
// where the plain graph gives inf/inf = NaN (or 0 for the other entries of the row) and
// Softmax gives finite probabilities; and for rows whose values are all below about -103
// every Exp underflows to 0, giving 0/0 = NaN against Softmax's finite answer. Rewriting it
// would change outputs on such inputs, so it is declined (a deliberate choice: the rewrite
// must preserve the graph's results, not improve them).
#include "passes/fusion_util.h"
#include "passes/linear_rewrite.h"
#include "passes/passes.h"

namespace anvil::passes {

namespace {

using fusion::soleUser;

// The single axis a keepdims reduction reduces, or nullopt.
std::optional<int64_t> singleAxis(const ir::Graph& g, const ir::Node* reduce) {
  auto axes = fusion::reduceAxes(g, reduce, true);
  if (!axes || axes->size() != 1) return std::nullopt;
  return (*axes)[0];
}

bool fuseAt(ir::Graph& g, ir::Node& exp) {
  // exp = Exp(Sub(x, ReduceMax(x, [a])))
  ir::Value* d = exp.input(0);
  ir::Node* sub = producerIs(d, "Sub");
  if (!sub || !hasSingleUse(g, d)) return false;
  ir::Value* x = sub->input(0);
  ir::Value* mx = sub->input(1);
  ir::Node* rmax = producerIs(mx, "ReduceMax");
  if (!rmax || rmax->input(0) != x || !hasSingleUse(g, mx)) return false;
  if (!fusion::isFloatType(x->dtype()) || !x->shape().rankKnown()) return false;
  auto axis = singleAxis(g, rmax);
  if (!axis) return false;
  // e is read by the ReduceSum and the normalizing Div/Mul only.
  ir::Value* e = exp.output(0);
  if (isGraphOutput(g, e)) return false;
  auto users = g.users(e);
  if (users.size() != 2) return false;
  ir::Node* rsum = nullptr;
  ir::Node* norm = nullptr;
  for (ir::Node* u : users) {
    if (u->op() == "ReduceSum" && u->domain().empty() && u->input(0) == e) rsum = u;
    else norm = u;
  }
  if (!rsum || !norm || singleAxis(g, rsum) != axis) return false;
  ir::Value* s = rsum->output(0);
  std::vector<ir::Node*> dead = {rmax, sub, &exp, rsum, norm};
  if (norm->op() == "Div" && norm->domain().empty()) {
    if (norm->input(0) != e || norm->input(1) != s || !hasSingleUse(g, s)) return false;
  } else if (norm->op() == "Mul" && norm->domain().empty()) {
    ir::Value* inv = fusion::otherOperand(norm, e);
    ir::Node* rec = inv ? producerIs(inv, "Reciprocal") : nullptr;
    if (!rec || rec->input(0) != s || !hasSingleUse(g, s) || !hasSingleUse(g, inv)) return false;
    dead.push_back(rec);
  } else {
    return false;
  }
  ir::Value* y = norm->output(0);
  if (y->shape() != x->shape()) return false;
  ir::Attributes attrs;
  attrs.set("axis", *axis);
  const std::string name = (exp.name().empty() ? std::string("softmax") : exp.name()) + "/Softmax";
  linear::replaceChain(g, y, dead, "Softmax", "", name, {x}, std::move(attrs));
  return true;
}

}  // namespace

PassResult fuseSoftmax(ir::Graph& g, const PassContext& /*ctx*/) {
  std::vector<Pattern> patterns = {
      {"softmax", "Exp", "", [](ir::Graph& gr, ir::Node& n) { return fuseAt(gr, n); }},
  };
  PassResult r;
  r.changed = applyPatterns(g, patterns, &r.stats);
  return r;
}

}  // namespace anvil::passes
