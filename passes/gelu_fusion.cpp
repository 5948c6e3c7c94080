// gelu-fusion: rewrites the two decomposed GELU forms into one ONNX Gelu (opset 20):
//
//   erf form   x * 0.5 * (1 + Erf(x / 1.41421356))       -> Gelu(x) {approximate="none"}
//              (Erf(x * 0.70710678) as well)
//   tanh form  0.5 * x * (1 + Tanh(0.79788456 * (x + 0.044715 * x^3)))
//              (x^3 as Pow(x, 3), Mul(x, Mul(x, x)) or Mul(Mul(x, x), x))
//                                                       -> Gelu(x) {approximate="tanh"}
//
// Every operand order torch, TF and ONNX's own Gelu function emit is accepted: each Mul/Add
// commuted (a two-input Sum counts as Add), and the 0.5
// applied to x first, to (1 + erf) first, or to the product last. Constants match within
// a relative 1e-6 (exporters round them to f32). Every intermediate must have the chain as
// its only reader. Declines for non-float types.
#include "passes/fusion_util.h"
#include "passes/linear_rewrite.h"
#include "passes/passes.h"

namespace anvil::passes {

namespace {

using fusion::isScalar;
using fusion::otherOperand;
using fusion::soleUser;

constexpr double kSqrt2 = 1.41421356237309504880;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kTanhCoeff = 0.044715;

// If v = Mul(a, c) (either order) with c a scalar constant equal to `want`, returns a.
ir::Value* mulByScalar(const ir::Graph& g, const ir::Value* v, double want, ir::Node** node) {
  ir::Node* m = producerIs(v, "Mul");
  if (!m) return nullptr;
  for (int i = 0; i < 2; ++i)
    if (isScalar(g, m->input(size_t(i)), want) && fusion::scalarKeepsShape(m->input(size_t(i)), m->input(size_t(1 - i)))) {
      *node = m;
      return m->input(size_t(1 - i));
    }
  return nullptr;
}

// The argument x of the erf: Erf's input is x / sqrt(2) or x * (1/sqrt(2)).
ir::Value* erfArgument(ir::Graph& g, ir::Node& erf, std::vector<ir::Node*>* dead) {
  ir::Value* in = erf.input(0);
  if (!hasSingleUse(g, in)) return nullptr;
  if (ir::Node* div = producerIs(in, "Div")) {
    if (isScalar(g, div->input(1), kSqrt2) && fusion::scalarKeepsShape(div->input(1), div->input(0))) {
      dead->push_back(div);
      return div->input(0);
    }
    return nullptr;
  }
  ir::Node* mul = nullptr;
  if (ir::Value* x = mulByScalar(g, in, 1.0 / kSqrt2, &mul)) {
    dead->push_back(mul);
    return x;
  }
  return nullptr;
}

// Whether v is x^3: Pow(x, 3), Mul(x, Mul(x, x)) or Mul(Mul(x, x), x) (any order).
bool isCube(const ir::Graph& g, ir::Value* v, ir::Value* x, std::vector<ir::Node*>* dead) {
  if (ir::Node* p = producerIs(v, "Pow")) {
    if (p->input(0) == x && isScalar(g, p->input(1), 3.0, 0.0)) {
      dead->push_back(p);
      return true;
    }
    return false;
  }
  ir::Node* m = producerIs(v, "Mul");
  if (!m) return false;
  ir::Value* sq = otherOperand(m, x);
  ir::Node* m2 = sq ? producerIs(sq, "Mul") : nullptr;
  if (!m2 || m2->input(0) != x || m2->input(1) != x || !hasSingleUse(g, sq)) return false;
  dead->push_back(m);
  dead->push_back(m2);
  return true;
}

// The argument x of the tanh: Tanh(k * (x + 0.044715 * x^3)).
ir::Value* tanhArgument(ir::Graph& g, ir::Node& tanh, std::vector<ir::Node*>* dead) {
  ir::Value* in = tanh.input(0);
  if (!hasSingleUse(g, in)) return nullptr;
  ir::Node* kMul = nullptr;
  ir::Value* inner = mulByScalar(g, in, kSqrt2OverPi, &kMul);
  if (!inner || !hasSingleUse(g, inner)) return nullptr;
  ir::Node* add = fusion::producerIn(inner, {"Add", "Sum"});
  if (!add || add->numInputs() != 2) return nullptr;
  for (int i = 0; i < 2; ++i) {
    ir::Value* x = add->input(size_t(i));
    ir::Value* term = add->input(size_t(1 - i));
    ir::Node* cMul = nullptr;
    ir::Value* cube = mulByScalar(g, term, kTanhCoeff, &cMul);
    if (!cube || !hasSingleUse(g, term) || !hasSingleUse(g, cube)) continue;
    std::vector<ir::Node*> cubeNodes;
    if (!isCube(g, cube, x, &cubeNodes)) continue;
    dead->insert(dead->end(), {kMul, add, cMul});
    dead->insert(dead->end(), cubeNodes.begin(), cubeNodes.end());
    return x;
  }
  return nullptr;
}

// From t = Erf(...) or Tanh(...) with argument x: matches 0.5 * x * (1 + t) in any
// association; returns the chain's final value and appends its nodes to dead.
ir::Value* matchTail(ir::Graph& g, ir::Value* t, ir::Value* x, std::vector<ir::Node*>* dead) {
  ir::Node* add = soleUser(g, t);
  if (!add || (add->op() != "Add" && add->op() != "Sum") || !add->domain().empty()) return nullptr;
  ir::Value* one = otherOperand(add, t);
  if (!one || !isScalar(g, one, 1.0) || !fusion::scalarKeepsShape(one, t)) return nullptr;
  ir::Value* p = add->output(0);  // 1 + t
  ir::Node* m1 = soleUser(g, p);
  if (!m1 || m1->op() != "Mul" || !m1->domain().empty()) return nullptr;
  ir::Value* o = otherOperand(m1, p);
  if (!o) return nullptr;
  std::vector<ir::Node*> nodes = {add, m1};
  ir::Value* out = nullptr;
  if (o == x) {
    // (x * (1 + t)) * 0.5
    ir::Node* m2 = soleUser(g, m1->output(0));
    if (!m2 || m2->op() != "Mul" || !m2->domain().empty()) return nullptr;
    ir::Value* h = otherOperand(m2, m1->output(0));
    if (!h || !isScalar(g, h, 0.5) || !fusion::scalarKeepsShape(h, x)) return nullptr;
    nodes.push_back(m2);
    out = m2->output(0);
  } else if (isScalar(g, o, 0.5) && fusion::scalarKeepsShape(o, p)) {
    // x * ((1 + t) * 0.5)
    ir::Node* m2 = soleUser(g, m1->output(0));
    if (!m2 || m2->op() != "Mul" || !m2->domain().empty() || otherOperand(m2, m1->output(0)) != x) return nullptr;
    nodes.push_back(m2);
    out = m2->output(0);
  } else {
    // (x * 0.5) * (1 + t)
    ir::Node* half = nullptr;
    if (mulByScalar(g, o, 0.5, &half) != x || !hasSingleUse(g, o)) return nullptr;
    nodes.push_back(half);
    out = m1->output(0);
  }
  if (out->shape() != x->shape()) return nullptr;  // something broadcast x up: not a GELU of x
  dead->insert(dead->end(), nodes.begin(), nodes.end());
  return out;
}

bool fuse(ir::Graph& g, ir::Node& act, bool tanh) {
  std::vector<ir::Node*> dead;
  ir::Value* x = tanh ? tanhArgument(g, act, &dead) : erfArgument(g, act, &dead);
  if (!x || !fusion::isFloatType(x->dtype()) || !x->shape().rankKnown()) return false;
  ir::Value* out = matchTail(g, act.output(0), x, &dead);
  if (!out) return false;
  dead.push_back(&act);
  ir::Attributes attrs;
  attrs.set("approximate", std::string(tanh ? "tanh" : "none"));
  const std::string name = (act.name().empty() ? std::string("gelu") : act.name()) + "/Gelu";
  linear::replaceChain(g, out, dead, "Gelu", "", name, {x}, std::move(attrs));
  return true;
}

}  // namespace

PassResult fuseGelu(ir::Graph& g, const PassContext& /*ctx*/) {
  std::vector<Pattern> patterns = {
      {"gelu-erf", "Erf", "", [](ir::Graph& gr, ir::Node& n) { return fuse(gr, n, false); }},
      {"gelu-tanh", "Tanh", "", [](ir::Graph& gr, ir::Node& n) { return fuse(gr, n, true); }},
  };
  PassResult r;
  r.changed = applyPatterns(g, patterns, &r.stats);
  return r;
}

}  // namespace anvil::passes
