// Shared graph edits and build-time facts of the cleanup passes.
#include "passes/graph_edit.h"

#include <algorithm>

#include "ir/op_schema.h"

namespace anvil::passes {

bool isGraphInput(const ir::Graph& g, const ir::Value* v) {
  return std::find(g.inputs().begin(), g.inputs().end(), v) != g.inputs().end();
}

const ir::Tensor* trueConstantOf(const ir::Graph& g, const ir::Value* v) {
  if (!v || !v->isInitializer() || isGraphInput(g, v)) return nullptr;
  return v->initializer();
}

bool hasSubgraphs(const ir::Node& n) {
  for (const auto& [name, a] : n.attrs().all()) {
    (void)name;
    if (a.kind() == ir::Attribute::Kind::kGraph || a.kind() == ir::Attribute::Kind::kGraphs) return true;
  }
  return false;
}

bool isObservedOutput(const ir::Graph& g, const ir::Value* v) {
  if (std::find(g.outputs().begin(), g.outputs().end(), v) != g.outputs().end()) return true;
  for (const ir::Graph* sub : g.subgraphs())
    if (std::find(sub->outputs().begin(), sub->outputs().end(), v) != sub->outputs().end()) return true;
  return false;
}

std::unordered_set<const ir::Value*> observedOutputs(const ir::Graph& g) {
  std::unordered_set<const ir::Value*> out(g.outputs().begin(), g.outputs().end());
  for (const ir::Graph* sub : g.subgraphs()) out.insert(sub->outputs().begin(), sub->outputs().end());
  return out;
}

std::string uniqueName(const ir::Graph& g, const std::string& base) {
  std::string stem = base.empty() ? "v" : base;
  if (!g.lookup(stem)) return stem;
  for (int i = 1;; ++i) {
    std::string s = stem + "_" + std::to_string(i);
    if (!g.lookup(s)) return s;
  }
}

ir::Value* addConstant(ir::Graph& g, const std::string& base, ir::Tensor t) {
  return g.addInitializer(uniqueName(g, base), std::move(t));
}

void makeConstant(ir::Value* v, ir::Tensor t) {
  v->setType(t.type());
  v->setInitializer(std::move(t));
}

std::optional<int64_t> shapeValueInt(const ir::Dim& d) {
  if (d.isStatic()) return d.value();
  if (!d.isSymbolic()) return std::nullopt;
  const std::string& s = d.symbolName();
  if (s.size() < 2 || s[0] != '-') return std::nullopt;
  for (size_t i = 1; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
  try {
    return std::stoll(s);
  } catch (...) {
    return std::nullopt;
  }
}

KnownValues computeKnownValues(const ir::Graph& g) {
  KnownValues kv;
  for (ir::Value* v : g.initializers())
    if (!isGraphInput(g, v)) kv.data[v] = *v->initializer();
  for (const auto& np : g.nodes()) {
    const ir::Node& n = *np;
    const ir::OpSchema* schema = n.schema();
    if (!schema || !schema->infer || hasSubgraphs(n)) continue;
    std::vector<const ir::TensorType*> types;
    std::vector<const ir::Tensor*> values;
    std::vector<const std::vector<ir::Dim>*> shapeValues;
    bool typed = true;
    for (const ir::Value* in : n.inputs()) {
      if (!in) {
        types.push_back(nullptr);
        values.push_back(nullptr);
        shapeValues.push_back(nullptr);
        continue;
      }
      typed = typed && in->dtype() != ir::DataType::kUndefined;
      types.push_back(&in->type());
      values.push_back(kv.dataOf(in));
      shapeValues.push_back(kv.shapeValueOf(in));
    }
    if (!typed) continue;
    ir::InferContext ctx(n, types, values, shapeValues);
    try {
      schema->infer(ctx);
    } catch (const Error&) {
      continue;  // what inference cannot prove stays unknown
    }
    for (size_t i = 0; i < n.numOutputs(); ++i) {
      const ir::Value* out = n.output(i);
      if (!out) continue;
      // Folded data must agree with the value's type (dtype and static extents).
      if (const auto& t = ctx.outputValues()[i]; t && t->dtype() == out->dtype() &&
                                                 (!out->shape().rankKnown() || out->shape().isStatic()) &&
                                                 (!out->shape().rankKnown() || out->shape().extents() == t->dims()))
        kv.data[out] = *t;
      if (const auto& sv = ctx.outputShapeValues()[i]) kv.shapeValues[out] = *sv;
    }
  }
  return kv;
}

namespace {
bool isGraphOutputValue(const ir::Graph& g, const ir::Value* v) {
  return std::find(g.outputs().begin(), g.outputs().end(), v) != g.outputs().end();
}
}  // namespace

bool forwardValue(ir::Graph& g, ir::Node* dead, ir::Value* from, ir::Value* to) {
  // Values stored differently (layout, device, quantization) are not interchangeable: the
  // dead node converts between them.
  if (!from->sameMeta(*to)) return false;
  // The dead node's other outputs must be unobserved.
  for (ir::Value* o : dead->outputs())
    if (o != from && (isGraphOutputValue(g, o) || !g.users(o).empty())) return false;
  if (!isGraphOutputValue(g, from)) {
    g.replaceAllUses(from, to);
    g.removeNode(dead);
    return true;
  }
  // `from` is a graph output: re-create `to`'s producer under `from`'s name.
  ir::Node* p = to->producer();
  if (!p || p == dead || hasSubgraphs(*p) || isGraphOutputValue(g, to)) return false;
  auto users = g.users(to);
  if (users.size() != 1 || users[0] != dead) return false;
  size_t slot = 0;
  for (size_t j = 0; j < p->numOutputs(); ++j) {
    if (p->output(j) == to) slot = j;
    else if (isGraphOutputValue(g, p->output(j))) return false;
  }
  const std::string fromName = from->name();
  const ir::TensorType fromType = from->type();
  g.replaceAllUses(from, to);
  g.removeNode(dead);
  g.removeUnusedValues();  // frees `from`'s name
  std::vector<std::string> names;
  for (size_t j = 0; j < p->numOutputs(); ++j) {
    const std::string& old = p->output(j)->name();
    names.push_back(j == slot ? fromName : old.empty() ? "" : uniqueName(g, old));
  }
  ir::Node* q = g.addNode(p->op(), p->domain(), p->name(), p->inputs(), names);
  q->attrs() = p->attrs();
  q->copyMetaFrom(*p);
  for (size_t j = 0; j < p->numOutputs(); ++j) {
    q->output(j)->setType(j == slot ? fromType : p->output(j)->type());
    q->output(j)->copyMetaFrom(*p->output(j));  // the slot's equals `from`'s (checked above)
    g.replaceAllUses(p->output(j), q->output(j));
  }
  g.removeNode(p);
  g.topoSort();
  return true;
}

ir::Node* replaceNode(ir::Graph& g, ir::Node* old, const std::string& op, const std::string& domain,
                      const std::vector<ir::Value*>& inputs, const ir::Attributes& attrs) {
  std::vector<std::string> names, tmpNames;
  std::vector<ir::TensorType> types;
  std::vector<ir::Value> metas;  // holders of the outputs' layout, quantization and device
  for (const ir::Value* o : old->outputs()) {
    names.push_back(o->name());
    types.push_back(o->type());
    metas.emplace_back().copyMetaFrom(*o);
    tmpNames.push_back(o->name().empty() ? "" : uniqueName(g, o->name() + "_tmp"));
  }
  const ir::DataType precision = old->precision();
  const ir::Device device = old->device();
  // A temporary node holds the readers (and the new inputs) while the old names are freed.
  ir::Node* tmp = g.addNode(op, domain, old->name(), inputs, tmpNames);
  for (size_t i = 0; i < names.size(); ++i)
    if (!names[i].empty()) g.replaceAllUses(old->output(i), tmp->output(i));
  const std::string nodeName = old->name();
  g.removeNode(old);
  g.removeUnusedValues();
  ir::Node* n = g.addNode(op, domain, nodeName, inputs, names);
  n->attrs() = attrs;
  // Same outputs, same precision and device; the old op's tactic parameters do not carry.
  n->setPrecision(precision);
  n->setDevice(device);
  for (size_t i = 0; i < names.size(); ++i) {
    n->output(i)->setType(types[i]);
    n->output(i)->copyMetaFrom(metas[i]);
    if (!names[i].empty()) g.replaceAllUses(tmp->output(i), n->output(i));
  }
  g.removeNode(tmp);
  g.topoSort();
  return n;
}

bool removeIfUnused(ir::Graph& g, ir::Node* n) {
  for (const ir::Value* o : n->outputs())
    if (isGraphOutputValue(g, o) || !g.users(o).empty()) return false;
  g.removeNode(n);
  return true;
}

std::optional<std::vector<int64_t>> constantReshapeTarget(const ir::Shape& in, const std::vector<ir::Dim>& want,
                                                          bool allowzero) {
  std::vector<int64_t> out(want.size(), 0);
  std::vector<size_t> open;
  bool hasMinusOne = false;
  for (size_t i = 0; i < want.size(); ++i) {
    if (auto v = shapeValueInt(want[i])) {
      if (*v < -1 || (*v == 0 && !allowzero)) return std::nullopt;  // a literal 0 would mean "copy"
      hasMinusOne = hasMinusOne || *v == -1;
      out[i] = *v;
    } else if (!allowzero && want[i].isSymbolic() && in.rankKnown() && i < in.rank() && in[i] == want[i]) {
      out[i] = 0;  // copy the input's dim i, which is this very symbol
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

}  // namespace anvil::passes
