// linear-epilogue-fusion: fuse a Conv / Gemm / MatMul with what follows it into one
// anvil.FusedConv / FusedGemm / FusedMatMul (ir/ops/anvil_linear.h):
//   1. a bias Add of a per-output-channel constant (folded into the op's bias input);
//   2. then an activation (Relu, Clip, Sigmoid, Tanh, LeakyRelu, HardSigmoid, HardSwish,
//      Gelu with either approximation, and x * Sigmoid(x) as Silu) and/or a residual Add
//      of any tensor Z of the output's shape, in either order: act(y + Z) (ResNet's
//      conv -> BN -> +x -> ReLU) or act(y) + Z.
// Removes every absorbed Add, activation and Mul node. A bias Add alone turns a Conv/Gemm
// into one with that bias (no anvil op needed) and a MatMul into FusedMatMul.
//
// Declines on: intermediates read by anything else (or graph outputs), a bias that is not
// constant or not per output channel, a residual whose shape is not provably the
// output's (symbolic dims must be the same symbol), non-float types; bias folding also
// needs f32/f64 (f16 would round once instead of twice).
#include <cmath>
#include <limits>

#include "ir/ops/anvil_linear.h"
#include "passes/linear_rewrite.h"
#include "passes/pattern.h"
#include "passes/passes.h"

namespace anvil::passes {

namespace {

using ir::DataType;
using ir::Tensor;
using ir::linear::Activation;
using ir::linear::Epilogue;

bool isOnnx(const ir::Node* n, const char* op) { return n && n->domain().empty() && n->op() == op; }

// The only node that reads v (once), or null.
ir::Node* soleUser(const ir::Graph& g, const ir::Value* v) {
  if (!hasSingleUse(g, v)) return nullptr;
  return g.users(v)[0];
}

bool sameShape(const ir::Shape& a, const ir::Shape& b) {
  if (!a.rankKnown() || !b.rankKnown() || a.rank() != b.rank()) return false;
  for (size_t i = 0; i < a.rank(); ++i)
    if (a[i].isUnknown() || a[i] != b[i]) return false;
  return true;
}

// Recognizes an activation reading v; fills the epilogue's activation, the absorbed nodes
// and the activation's output.
bool matchActivation(const ir::Graph& g, ir::Value* v, Epilogue* e, std::vector<ir::Node*>* dead, ir::Value** out) {
  if (isGraphOutput(g, v)) return false;
  const std::vector<ir::Node*> users = g.users(v);
  // Silu: v -> Sigmoid -> Mul(v, sigmoid) (either operand order).
  if (users.size() == 2) {
    ir::Node* s = isOnnx(users[0], "Sigmoid") ? users[0] : isOnnx(users[1], "Sigmoid") ? users[1] : nullptr;
    ir::Node* m = s == users[0] ? users[1] : users[0];
    if (!s || !isOnnx(m, "Mul") || s->input(0) != v || m->numInputs() != 2) return false;
    if (soleUser(g, s->output(0)) != m) return false;
    const bool order = (m->input(0) == v && m->input(1) == s->output(0)) || (m->input(1) == v && m->input(0) == s->output(0));
    if (!order) return false;
    e->act = Activation::kSilu;
    dead->push_back(s);
    dead->push_back(m);
    *out = m->output(0);
    return true;
  }
  ir::Node* u = soleUser(g, v);
  if (!u || u->input(0) != v || u->numOutputs() != 1) return false;
  const std::string& op = u->op();
  const bool onnx = u->domain().empty();
  if (onnx && op == "Relu") {
    e->act = Activation::kRelu;
  } else if (onnx && op == "Sigmoid") {
    e->act = Activation::kSigmoid;
  } else if (onnx && op == "Tanh") {
    e->act = Activation::kTanh;
  } else if (onnx && op == "HardSwish") {
    e->act = Activation::kHardSwish;
  } else if (onnx && op == "LeakyRelu") {
    e->act = Activation::kLeakyRelu;
    e->p0 = u->attrs().getFloat("alpha", 0.01f);
  } else if (onnx && op == "HardSigmoid") {
    e->act = Activation::kHardSigmoid;
    e->p0 = u->attrs().getFloat("alpha", 0.2f);
    e->p1 = u->attrs().getFloat("beta", 0.5f);
  } else if (onnx && op == "Clip") {
    double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
    if (u->input(1) && !linear::fixedScalar(g, u->input(1), &lo)) return false;
    if (u->input(2) && !linear::fixedScalar(g, u->input(2), &hi)) return false;
    e->act = Activation::kClip;
    e->p0 = float(lo);
    e->p1 = float(hi);
    if (double(e->p0) != lo && !std::isinf(lo)) return false;  // not exact in f32: keep the Clip
    if (double(e->p1) != hi && !std::isinf(hi)) return false;
  } else if ((onnx || u->domain() == "anvil") && op == "Gelu") {
    const std::string approx = u->attrs().getString("approximate", "none");
    if (approx == "none") e->act = Activation::kGelu;
    else if (approx == "tanh") e->act = Activation::kGeluTanh;
    else return false;
  } else {
    return false;
  }
  dead->push_back(u);
  *out = u->output(0);
  return true;
}

// A residual Add of v and a tensor Z of v's shape.
bool matchResidual(const ir::Graph& g, ir::Value* v, ir::Value** z, ir::Node** add) {
  ir::Node* u = soleUser(g, v);
  if (!isOnnx(u, "Add") || u->numInputs() != 2) return false;
  ir::Value* other = u->input(0) == v ? u->input(1) : u->input(0);
  if (!other || other == v || other->dtype() != v->dtype() || !sameShape(other->shape(), v->shape())) return false;
  if (!sameShape(u->output(0)->shape(), v->shape()) && u->output(0)->shape().rankKnown()) return false;
  *z = other;
  *add = u;
  return true;
}

// Per-channel values of a constant c added to an output of rank r along `axis`: c must
// broadcast into the output without growing it and vary at most along `axis`. Returns the
// channel values expanded to `channels`.
bool channelVector(const Tensor& c, size_t r, size_t axis, int64_t channels, std::vector<double>* out) {
  if (c.rank() > r) return false;
  const size_t off = r - c.rank();
  for (size_t i = 0; i < c.rank(); ++i) {
    const int64_t d = c.dim(i);
    if (i + off == axis) {
      if (d != 1 && d != channels) return false;
    } else if (d != 1) {
      return false;
    }
  }
  out->assign(size_t(channels), 0.0);
  for (int64_t m = 0; m < channels; ++m) (*out)[size_t(m)] = c.getDouble(c.numel() == 1 ? 0 : m);
  return true;
}

struct Fusion {
  ir::Node* lin = nullptr;
  std::vector<ir::Node*> dead;
  ir::Value* last = nullptr;
  std::vector<ir::Value*> inputs;  // the fused op's inputs before Z
  ir::Attributes attrs;
  Epilogue e;
  ir::Value* z = nullptr;
  bool biasFolded = false;
};

// Folds a bias Add after the linear op into its bias input; updates f.
bool foldBias(ir::Graph& g, Fusion& f) {
  ir::Node* add = soleUser(g, f.last);
  if (!isOnnx(add, "Add") || add->numInputs() != 2) return false;
  ir::Value* cv = add->input(0) == f.last ? add->input(1) : add->input(0);
  const Tensor* c = linear::fixedConstant(g, cv);
  const DataType t = f.last->dtype();
  if (!c || c->dtype() != t || (t != DataType::kF32 && t != DataType::kF64)) return false;
  const ir::Shape& ys = f.last->shape();
  if (!ys.rankKnown() || ys.rank() < 2) return false;
  const size_t r = ys.rank();
  const std::string& op = f.lin->op();
  std::vector<double> bias;
  std::string base;
  if (op == "Conv") {
    const Tensor* w = linear::fixedConstant(g, f.lin->input(1));
    if (!ys[1].isStatic() || (w && w->dim(0) != ys[1].value())) return false;
    const int64_t M = ys[1].value();
    if (!channelVector(*c, r, 1, M, &bias)) return false;
    if (f.lin->input(2)) {
      const Tensor* b = linear::fixedConstant(g, f.lin->input(2));
      if (!b || b->dtype() != t || b->numel() != M) return false;
      for (int64_t m = 0; m < M; ++m) bias[size_t(m)] += b->getDouble(m);
    }
    base = f.lin->input(1)->name();
  } else {  // Gemm, MatMul: per column n of the last dim
    if (!ys[r - 1].isStatic()) return false;
    const int64_t N = ys[r - 1].value();
    if (!channelVector(*c, r, r - 1, N, &bias)) return false;
    if (op == "Gemm" && f.lin->input(2)) {
      const Tensor* b = linear::fixedConstant(g, f.lin->input(2));
      if (!b || b->dtype() != t || b->rank() > 2 || (b->rank() == 2 && b->dim(0) != 1)) return false;
      if (b->numel() != 1 && b->numel() != N) return false;
      const double beta = f.attrs.getFloat("beta", 1.0f);
      for (int64_t n = 0; n < N; ++n) bias[size_t(n)] += beta * b->getDouble(b->numel() == 1 ? 0 : n);
    }
    if (op == "Gemm") f.attrs.set("beta", 1.0f);
    base = f.lin->input(1)->name();
  }
  Tensor bt(t, {int64_t(bias.size())});
  for (size_t i = 0; i < bias.size(); ++i) bt.setDouble(int64_t(i), bias[i]);
  ir::Value* bv = linear::addConstant(g, base + "_bias", std::move(bt));
  if (f.inputs.size() < 3) f.inputs.resize(3, nullptr);
  f.inputs[2] = bv;
  f.dead.push_back(add);
  f.last = add->output(0);
  f.biasFolded = true;
  return true;
}

bool fuse(ir::Graph& g, ir::Node& lin) {
  if (!lin.domain().empty() || lin.numOutputs() != 1) return false;
  const std::string op = lin.op();
  if (op != "Conv" && op != "Gemm" && op != "MatMul") return false;
  ir::Value* y = lin.output(0);
  if (!linear::isFloatType(y->dtype()) || !y->shape().rankKnown()) return false;
  if (op == "MatMul") {  // numpy 1-D promotion changes the output rank: leave those alone
    for (size_t i = 0; i < 2; ++i)
      if (!lin.input(i) || !lin.input(i)->shape().rankKnown() || lin.input(i)->shape().rank() < 2) return false;
  }
  Fusion f;
  f.lin = &lin;
  f.dead.push_back(&lin);
  f.last = y;
  f.inputs = lin.inputs();
  f.attrs = lin.attrs();
  foldBias(g, f);

  Epilogue& e = f.e;
  std::vector<ir::Node*> actNodes;
  ir::Value* actOut = nullptr;
  ir::Node* add = nullptr;
  if (matchActivation(g, f.last, &e, &actNodes, &actOut)) {
    f.dead.insert(f.dead.end(), actNodes.begin(), actNodes.end());
    f.last = actOut;
    if (matchResidual(g, f.last, &f.z, &add)) {
      e.residual = true;
      e.addFirst = false;
      f.dead.push_back(add);
      f.last = add->output(0);
    }
  } else if (matchResidual(g, f.last, &f.z, &add)) {
    e.residual = true;
    e.addFirst = true;
    f.dead.push_back(add);
    f.last = add->output(0);
    actNodes.clear();
    Epilogue act;
    if (matchActivation(g, f.last, &act, &actNodes, &actOut)) {
      e.act = act.act;
      e.p0 = act.p0;
      e.p1 = act.p1;
      f.dead.insert(f.dead.end(), actNodes.begin(), actNodes.end());
      f.last = actOut;
    }
  }
  const bool epilogue = e.act != Activation::kNone || e.residual;
  if (!epilogue && !f.biasFolded) return false;

  std::string fusedOp = op, domain;
  if (epilogue || op == "MatMul") {
    fusedOp = "Fused" + op;
    domain = "anvil";
    ir::linear::writeEpilogue(e, &f.attrs);
  }
  std::vector<ir::Value*> inputs = f.inputs;
  if (e.residual) {
    inputs.resize(ir::linear::kResidualInput, nullptr);
    inputs.push_back(f.z);
  }
  while (!inputs.empty() && !inputs.back()) inputs.pop_back();
  linear::replaceChain(g, f.last, f.dead, fusedOp, domain, lin.name(), inputs, f.attrs, &lin);
  return true;
}

}  // namespace

PassResult fuseLinearEpilogues(ir::Graph& g, const PassContext& /*ctx*/) {
  std::string stats;
  int n = 0;
  for (const char* op : {"Conv", "Gemm", "MatMul"}) {
    std::string s;
    n += applyPatterns(g, {{std::string("epilogue-") + op, op, "", fuse}}, &s);
    if (!s.empty()) stats += (stats.empty() ? "" : ", ") + s;
  }
  return {n, stats};
}

}  // namespace anvil::passes
