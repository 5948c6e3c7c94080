// transpose-cancellation: Transpose(Transpose(x, p1), p2) becomes one Transpose with the
// composed permutation, or nothing when that is the identity; a Transpose that only moves
// extent-1 dims (the order of the other dims is kept) becomes a Reshape; Reshape of a
// Reshape/Flatten/Squeeze/Unsqueeze reads the inner input directly (row-major data is
// the same; a 0 in the outer target must copy a dim the inner input has too, else a
// static outer output shape becomes the target).
// The inner node is removed when nothing else reads it.
//
// Channels-last regions (ConvNeXt-style blocks, NHWC exports): a depthwise Conv read only by a
// Transpose to channels-last (perm 0,2,3,1) becomes anvil.ConvNhwc of the input transposed
// instead (the transpose moves in front, where it cancels against a channels-last producer),
// and a Transpose is sunk below the chain of same-shape elementwise ops that reads it (each
// other operand a constant, permuted; a Transpose of the same perm, read through; or a value
// whose inverse Transpose exists already, read through that) when the move pays: it merges
// with a second Transpose on the way or lands in front of an inverse Transpose of its
// result. One ConvNeXt block then keeps no Transpose: its residual stream, depthwise
// convolution, LayerNorm and MLP all run channels-last.
#include <cstring>

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

std::vector<int64_t> inversePerm(const std::vector<int64_t>& p) {
  std::vector<int64_t> q(p.size());
  for (size_t j = 0; j < p.size(); ++j) q[size_t(p[j])] = int64_t(j);
  return q;
}

bool validPerm(const std::vector<int64_t>& p) {
  std::vector<char> seen(p.size(), 0);
  for (int64_t k : p) {
    if (k < 0 || k >= int64_t(p.size()) || seen[size_t(k)]) return false;
    seen[size_t(k)] = 1;
  }
  return true;
}

// t (rank r <= perm.size(), right-aligned to that rank as broadcasting reads it) with its
// dims in the order perm: out dim i = in dim perm[i]. Fixed-size element types only.
std::optional<ir::Tensor> permuteConstant(const ir::Tensor& t, const std::vector<int64_t>& perm) {
  const size_t R = perm.size();
  if (t.rank() > R || t.dtype() == ir::DataType::kString) return std::nullopt;
  std::vector<int64_t> dims(R - t.rank(), 1);
  dims.insert(dims.end(), t.dims().begin(), t.dims().end());
  std::vector<int64_t> od(R), stride(R, 1);
  for (size_t i = 0; i < R; ++i) od[i] = dims[size_t(perm[i])];
  for (size_t i = R; i-- > 1;) stride[i - 1] = stride[i] * dims[i];
  ir::Tensor out(t.dtype(), od);
  const int64_t n = t.numel();
  if (n == 0) return out;
  if (t.nbytes() % size_t(n) != 0) return std::nullopt;  // sub-byte elements
  const size_t es = t.nbytes() / size_t(n);
  const char* src = static_cast<const char*>(t.raw());
  char* dst = static_cast<char*>(out.mutableRaw());
  std::vector<int64_t> idx(R, 0);
  for (int64_t o = 0; o < n; ++o) {
    int64_t i = 0;
    for (size_t k = 0; k < R; ++k) i += idx[k] * stride[size_t(perm[k])];
    std::memcpy(dst + size_t(o) * es, src + size_t(i) * es, es);
    for (size_t k = R; k-- > 0;) {
      if (++idx[k] < od[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}

bool sameShape(const ir::Shape& a, const ir::Shape& b) {
  if (!a.rankKnown() || !b.rankKnown() || a.rank() != b.rank()) return false;
  for (size_t i = 0; i < a.rank(); ++i)
    if (a[i].isUnknown() || a[i] != b[i]) return false;
  return true;
}

ir::Shape permutedShape(const ir::Shape& s, const std::vector<int64_t>& perm) {
  std::vector<ir::Dim> d;
  for (int64_t k : perm) d.push_back(s[size_t(k)]);
  return ir::Shape(d);
}

bool hasPerm(const ir::Node* n, const std::vector<int64_t>& p) {
  if (!n || n->op() != "Transpose" || !n->domain().empty()) return false;
  auto q = permOf(*n);
  return q && *q == p;
}

// A depthwise 2-D Conv whose only reader is a Transpose to channels-last becomes
// anvil.ConvNhwc(Transpose(X)): the transposes move to the input side.
bool depthwiseToChannelsLast(ir::Graph& g, ir::Node& t) {
  if (!hasPerm(&t, {0, 2, 3, 1})) return false;
  ir::Value* y = t.input(0);
  ir::Node* conv = producerIs(y, "Conv");
  if (!conv || !hasSingleUse(g, y) || conv->numInputs() < 2) return false;
  ir::Value *x = conv->input(0), *w = conv->input(1);
  if (!x || !w || x->dtype() != ir::DataType::kF32 || !x->shape().rankKnown() || x->shape().rank() != 4) return false;
  const ir::Tensor* wt = trueConstantOf(g, w);
  const ir::Dim& c = x->shape()[1];
  if (!wt || !c.isStatic() || wt->rank() != 4 || wt->dim(0) != c.value() || wt->dim(1) != 1) return false;
  if (conv->attrs().getInt("group", 1) != c.value() || conv->attrs().getString("auto_pad", "NOTSET") != "NOTSET")
    return false;
  for (int64_t d : conv->attrs().getInts("dilations", {1, 1}))
    if (d != 1) return false;
  const ir::Value* b = conv->numInputs() > 2 ? conv->input(2) : nullptr;
  if (b && !trueConstantOf(g, b)) return false;
  ir::Node* in = g.addNode("Transpose", "", uniqueName(g, conv->name() + "_to_nhwc"), {x},
                           {uniqueName(g, x->name().empty() ? "nhwc" : x->name() + "_nhwc")});
  in->attrs().set("perm", std::vector<int64_t>{0, 2, 3, 1});
  in->output(0)->setType({x->dtype(), permutedShape(x->shape(), {0, 2, 3, 1})});
  std::vector<ir::Value*> inputs{in->output(0), w};
  if (conv->numInputs() > 2 && conv->input(2)) inputs.push_back(conv->input(2));
  const ir::Attributes attrs = conv->attrs();
  const std::string name = conv->name();
  ir::Node* n = replaceNode(g, &t, "ConvNhwc", "anvil", inputs, attrs);
  g.removeNode(conv);
  n->setName(name);
  return true;
}

// One elementwise node of a sinking chain: its inputs with the chain's value replaced.
struct SinkStep {
  ir::Node* node;
  std::vector<ir::Value*> inputs;  // null at the chain's input
  bool merged;                     // an operand was a Transpose of the same perm
};

// Sinks the Transpose t below the elementwise chain that reads it, where that pays (see the
// file comment).
bool sinkTranspose(ir::Graph& g, ir::Node& t) {
  auto p = permOf(t);
  ir::Value *a = t.input(0), *cur = t.output(0);
  if (!p || !a || !validPerm(*p) || isIdentity(*p) || !a->shape().rankKnown() || a->shape().rank() != p->size())
    return false;
  const std::vector<int64_t> inv = inversePerm(*p);
  std::vector<SinkStep> steps;
  std::vector<std::pair<size_t, ir::Tensor>> consts;  // (step * 8 + input, permuted data)
  size_t best = 0;  // steps [0, best) pay
  bool merged = false;
  while (!isGraphOutput(g, cur)) {
    auto users = g.users(cur);
    if (users.size() != 1 || users[0]->owner() != &g) break;
    ir::Node* e = users[0];
    if (!e->schema() || !e->schema()->has(ir::kTraitElementwise) || e->numOutputs() != 1 || hasSubgraphs(*e) ||
        e->numInputs() > 8 || e->schema()->has(ir::kTraitRandom))
      break;
    if (!sameShape(e->output(0)->shape(), cur->shape())) break;  // broadcasting would grow what moves
    SinkStep s{e, {}, false};
    bool ok = true;
    int chainUses = 0;
    for (size_t i = 0; i < e->numInputs() && ok; ++i) {
      ir::Value* v = e->input(i);
      if (v == cur) {
        ++chainUses;
        s.inputs.push_back(nullptr);
      } else if (!v) {
        s.inputs.push_back(nullptr);
      } else if (const ir::Tensor* c = trueConstantOf(g, v)) {
        auto pc = permuteConstant(*c, inv);
        ok = pc.has_value();
        if (ok) consts.emplace_back(steps.size() * 8 + i, std::move(*pc));
        s.inputs.push_back(nullptr);
      } else if (ir::Node* q = v->producer(); hasPerm(q, *p) && q->input(0)) {
        s.inputs.push_back(q->input(0));
        s.merged = true;
      } else {
        ir::Value* found = nullptr;
        if (v->shape().rankKnown() && v->shape().rank() == p->size())
          for (ir::Node* u : g.users(v))
            if (u->owner() == &g && hasPerm(u, inv)) found = u->output(0);
        ok = found != nullptr;
        s.inputs.push_back(found);
      }
    }
    if (!ok || chainUses != 1) break;
    merged = merged || s.merged;
    steps.push_back(std::move(s));
    cur = e->output(0);
    bool lands = false;
    for (ir::Node* u : g.users(cur)) lands = lands || (u->owner() == &g && hasPerm(u, inv));
    if (merged || lands) best = steps.size();
  }
  if (best == 0) return false;
  // Rebuild the chain on a, then a Transpose computes the last step's old output.
  ir::Value* prev = a;
  std::vector<ir::Node*> dead;
  for (size_t k = 0; k < best; ++k) {
    SinkStep& s = steps[k];
    std::vector<ir::Value*> ins;
    for (size_t i = 0; i < s.node->numInputs(); ++i) {
      ir::Value* v = s.node->input(i);
      if (v && v == (k == 0 ? t.output(0) : steps[k - 1].node->output(0))) v = prev;
      else if (s.inputs[i]) v = s.inputs[i];
      else if (v && trueConstantOf(g, v)) {
        for (auto& [key, data] : consts)
          if (key == k * 8 + i) v = addConstant(g, v->name() + "_perm", data);
      }
      ins.push_back(v);
    }
    ir::Value* old = s.node->output(0);
    ir::Node* n = g.addNode(s.node->op(), s.node->domain(), s.node->name(), ins,
                            {uniqueName(g, old->name().empty() ? "sunk" : old->name() + "_sunk")});
    n->attrs() = s.node->attrs();
    n->copyMetaFrom(*s.node);
    n->output(0)->setType({old->dtype(), a->shape()});
    prev = n->output(0);
    if (k + 1 < best) dead.push_back(s.node);
  }
  ir::Node* last = steps[best - 1].node;
  ir::Attributes attrs;
  attrs.set("perm", *p);
  // Readers of the replaced nodes' operands: the read-through Transposes may fall unread.
  std::vector<ir::Node*> maybe;
  for (size_t k = 0; k < best; ++k)
    for (ir::Value* v : steps[k].node->inputs())
      if (v && v->producer()) maybe.push_back(v->producer());
  // The chain's nodes keep their names (the layer names users know); the Transpose after them
  // takes a new one.
  const std::string lastName = last->name();
  ir::Node* moved = replaceNode(g, last, "Transpose", "", {prev}, attrs);
  moved->setName(lastName + "_transpose");
  for (auto it = dead.rbegin(); it != dead.rend(); ++it) g.removeNode(*it);
  removeIfUnused(g, &t);
  for (ir::Node* m : maybe)
    for (const auto& n : g.nodes())
      if (n.get() == m && m->op() == "Transpose") {
        removeIfUnused(g, m);
        break;
      }
  return true;
}

}  // namespace

PassResult cancelTransposes(ir::Graph& g, const PassContext& ctx) {
  std::string stats;
  // anvil.ConvNhwc has CPU kernels only: a CUDA build keeps the Conv between its Transposes.
  const bool cpu = ctx.device == ir::Device::kCPU;
  auto channelsLast = [cpu](ir::Graph& gr, ir::Node& t) { return cpu && depthwiseToChannelsLast(gr, t); };
  int n = applyPatterns(g,
                        {
                            {"depthwise-channels-last", "Transpose", "", channelsLast},
                            {"transpose-pair", "Transpose", "", transposePair},
                            {"transpose-sinking", "Transpose", "", sinkTranspose},
                            {"transpose-to-reshape", "Transpose", "", transposeToReshape},
                            {"reshape-chain", "Reshape", "", reshapeChain},
                        },
                        &stats);
  return {n, stats};
}

}  // namespace anvil::passes
