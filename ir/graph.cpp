// Graph bookkeeping: value/node creation, use replacement, topological order.
#include "ir/graph.h"

#include <algorithm>
#include <functional>
#include <set>
#include <unordered_map>

#include "ir/op_schema.h"

namespace anvil::ir {

const char* Attribute::kindName(Kind k) {
  static const char* names[] = {"int", "float", "string", "ints", "floats",
                                "strings", "tensor", "graph", "graphs"};
  return names[int(k)];
}

const Attribute* Attributes::find(const std::string& name) const {
  auto it = map_.find(name);
  return it == map_.end() ? nullptr : &it->second;
}

namespace {
template <typename T>
const T& expect(const Attribute& a, const std::string& name, const char* want) {
  const T* v = std::get_if<T>(&a.value);
  if (!v)
    ANVIL_THROW(ErrorCode::kInvalidModel, "attribute '", name, "' is ", Attribute::kindName(a.kind()),
                ", expected ", want);
  return *v;
}
}  // namespace

int64_t Attributes::getInt(const std::string& name, int64_t def) const {
  const Attribute* a = find(name);
  if (!a) return def;
  if (auto* f = std::get_if<float>(&a->value)) return int64_t(*f);  // lenient: some exporters
  return expect<int64_t>(*a, name, "int");
}
float Attributes::getFloat(const std::string& name, float def) const {
  const Attribute* a = find(name);
  if (!a) return def;
  if (auto* i = std::get_if<int64_t>(&a->value)) return float(*i);
  return expect<float>(*a, name, "float");
}
std::string Attributes::getString(const std::string& name, const std::string& def) const {
  const Attribute* a = find(name);
  return a ? expect<std::string>(*a, name, "string") : def;
}
std::vector<int64_t> Attributes::getInts(const std::string& name, std::vector<int64_t> def) const {
  const Attribute* a = find(name);
  return a ? expect<std::vector<int64_t>>(*a, name, "ints") : def;
}
std::vector<float> Attributes::getFloats(const std::string& name, std::vector<float> def) const {
  const Attribute* a = find(name);
  return a ? expect<std::vector<float>>(*a, name, "floats") : def;
}
std::vector<std::string> Attributes::getStrings(const std::string& name,
                                                std::vector<std::string> def) const {
  const Attribute* a = find(name);
  return a ? expect<std::vector<std::string>>(*a, name, "strings") : def;
}
const Tensor* Attributes::getTensor(const std::string& name) const {
  const Attribute* a = find(name);
  return a ? &expect<Tensor>(*a, name, "tensor") : nullptr;
}
const Graph* Attributes::getGraph(const std::string& name) const {
  const Attribute* a = find(name);
  return a ? expect<std::shared_ptr<Graph>>(*a, name, "graph").get() : nullptr;
}
int64_t Attributes::requireInt(const std::string& name) const {
  ANVIL_CHECK(has(name), ErrorCode::kInvalidModel, "missing required attribute '", name, "'");
  return getInt(name, 0);
}
const Graph& Attributes::requireGraph(const std::string& name) const {
  const Graph* g = getGraph(name);
  ANVIL_CHECK(g != nullptr, ErrorCode::kInvalidModel, "missing required graph attribute '", name, "'");
  return *g;
}

bool Value::isLowered() const {
  return quant_.has_value() && isInteger(type_.dtype) && !initializer_.has_value() && quant_->scale.defined() &&
         isFloat(quant_->scale.dtype());
}

TensorType Value::expressedType() const {
  if (!isLowered()) return type_;
  return TensorType{quant_->scale.dtype(), type_.shape};
}

bool Quantization::operator==(const Quantization& o) const {
  auto same = [](const Tensor& a, const Tensor& b) { return a.defined() == b.defined() && (!a.defined() || a.sameAs(b)); };
  return axis == o.axis && same(scale, o.scale) && same(zeroPoint, o.zeroPoint);
}

std::string Node::label() const {
  std::string s = domain_.empty() ? op_ : domain_ + "." + op_;
  return s + " '" + name_ + "'";
}

void Node::setInput(size_t i, Value* v) {
  if (i >= inputs_.size()) inputs_.resize(i + 1, nullptr);
  inputs_[i] = v;
}

Value* Graph::addValue(const std::string& name, TensorType type) {
  if (!name.empty()) {
    ANVIL_CHECK(byName_.count(name) == 0, ErrorCode::kInvalidModel, "graph '", name_,
                "': value '", name, "' is defined twice");
  }
  auto v = std::make_unique<Value>();
  v->name_ = name;
  v->type_ = std::move(type);
  v->owner_ = this;
  Value* raw = v.get();
  values_.push_back(std::move(v));
  if (!name.empty()) byName_[name] = raw;
  return raw;
}

Value* Graph::addInitializer(const std::string& name, Tensor data) {
  Value* v = addValue(name, data.type());
  v->initializer_ = std::move(data);
  return v;
}

void Graph::renameValue(Value* v, const std::string& name) {
  ANVIL_CHECK(v->owner_ == this && !name.empty(), ErrorCode::kInternal, "graph '", name_, "': bad rename to '", name, "'");
  if (v->name_ == name) return;
  ANVIL_CHECK(byName_.count(name) == 0, ErrorCode::kInvalidModel, "graph '", name_, "': value '", name,
              "' is defined twice");
  auto it = byName_.find(v->name_);
  if (it != byName_.end() && it->second == v) byName_.erase(it);
  v->name_ = name;
  byName_[name] = v;
}

Value* Graph::findValue(const std::string& name) const {
  auto it = byName_.find(name);
  return it == byName_.end() ? nullptr : it->second;
}

Value* Graph::lookup(const std::string& name) const {
  for (const Graph* g = this; g; g = g->parent_)
    if (Value* v = g->findValue(name)) return v;
  return nullptr;
}

std::vector<Value*> Graph::initializers() const {
  std::vector<Value*> out;
  for (const auto& v : values_)
    if (v->isInitializer()) out.push_back(v.get());
  return out;
}

Node* Graph::addNode(const std::string& op, const std::string& domain, const std::string& name,
                     const std::vector<Value*>& inputs, const std::vector<std::string>& outputNames) {
  auto n = std::make_unique<Node>();
  n->op_ = op;
  n->domain_ = domain == "ai.onnx" ? "" : domain;
  n->name_ = name;
  n->inputs_ = inputs;
  n->owner_ = this;
  n->schema_ = OpRegistry::instance().find(op, n->domain_);
  Node* raw = n.get();
  for (const std::string& o : outputNames) {
    Value* v = addValue(o);
    v->producer_ = raw;
    raw->outputs_.push_back(v);
  }
  nodes_.push_back(std::move(n));
  return raw;
}

void Graph::removeNode(Node* n) {
  for (Value* o : n->outputs_)
    if (o->producer_ == n) o->producer_ = nullptr;
  nodes_.erase(std::remove_if(nodes_.begin(), nodes_.end(),
                              [n](const std::unique_ptr<Node>& p) { return p.get() == n; }),
               nodes_.end());
}

void Graph::replaceAllUses(Value* from, Value* to) {
  for (auto& n : nodes_) {
    for (Value*& in : n->inputs_)
      if (in == from) in = to;
    for (auto& [name, attr] : n->attrs_.all()) {
      (void)name;
      if (auto* g = std::get_if<std::shared_ptr<Graph>>(&attr.value)) (*g)->replaceAllUses(from, to);
      if (auto* gs = std::get_if<std::vector<std::shared_ptr<Graph>>>(&attr.value))
        for (auto& g : *gs) g->replaceAllUses(from, to);
    }
  }
  for (Value*& o : outputs_)
    if (o == from) o = to;
}

std::vector<Node*> Graph::users(const Value* v) const {
  std::vector<Node*> out;
  for (const auto& n : nodes_) {
    bool uses = std::find(n->inputs_.begin(), n->inputs_.end(), v) != n->inputs_.end();
    if (!uses) {
      for (const auto& [name, attr] : n->attrs_.all()) {
        (void)name;
        std::vector<const Graph*> subs;
        if (auto* g = std::get_if<std::shared_ptr<Graph>>(&attr.value)) subs.push_back(g->get());
        if (auto* gs = std::get_if<std::vector<std::shared_ptr<Graph>>>(&attr.value))
          for (auto& g : *gs) subs.push_back(g.get());
        for (const Graph* g : subs)
          if (!g->users(v).empty() ||
              std::find(g->outputs().begin(), g->outputs().end(), v) != g->outputs().end())
            uses = true;
      }
    }
    if (uses) out.push_back(n.get());
  }
  return out;
}

void Graph::removeUnusedValues() {
  std::set<const Value*> used(inputs_.begin(), inputs_.end());
  used.insert(outputs_.begin(), outputs_.end());
  for (const auto& n : nodes_) {
    used.insert(n->inputs_.begin(), n->inputs_.end());
    used.insert(n->outputs_.begin(), n->outputs_.end());
  }
  // Values used only from subgraphs (outer-scope references) must stay.
  for (const Graph* g : subgraphs()) {
    for (const auto& n : g->nodes()) used.insert(n->inputs().begin(), n->inputs().end());
    used.insert(g->outputs().begin(), g->outputs().end());  // a body may return an outer value
  }
  std::vector<std::unique_ptr<Value>> kept;
  for (auto& v : values_) {
    if (used.count(v.get())) {
      kept.push_back(std::move(v));
    } else if (!v->name_.empty()) {
      auto it = byName_.find(v->name_);
      if (it != byName_.end() && it->second == v.get()) byName_.erase(it);  // a renamed value's old name may be taken
    }
  }
  values_ = std::move(kept);
}

void Graph::topoSort() {
  // Kahn's algorithm, stable with respect to the current order.
  std::unordered_map<const Value*, Node*> producer;
  for (auto& n : nodes_)
    for (Value* o : n->outputs_) producer[o] = n.get();
  std::unordered_map<Node*, size_t> index;
  for (size_t i = 0; i < nodes_.size(); ++i) index[nodes_[i].get()] = i;
  std::vector<int> state(nodes_.size(), 0);  // 0 new, 1 visiting, 2 done
  std::vector<std::unique_ptr<Node>> order;
  order.reserve(nodes_.size());
  std::vector<std::unique_ptr<Node>> pool = std::move(nodes_);
  // Inputs used by a node, including outer-scope references inside its subgraphs.
  auto deps = [&](Node* n) {
    std::vector<Value*> d(n->inputs_.begin(), n->inputs_.end());
    for (const auto& [name, attr] : n->attrs_.all()) {
      (void)name;
      std::vector<const Graph*> subs;
      if (auto* g = std::get_if<std::shared_ptr<Graph>>(&attr.value)) subs.push_back(g->get());
      if (auto* gs = std::get_if<std::vector<std::shared_ptr<Graph>>>(&attr.value))
        for (auto& g : *gs) subs.push_back(g.get());
      for (size_t k = 0; k < subs.size(); ++k) {
        for (const auto& sn : subs[k]->nodes()) d.insert(d.end(), sn->inputs().begin(), sn->inputs().end());
        d.insert(d.end(), subs[k]->outputs().begin(), subs[k]->outputs().end());
        for (const Graph* inner : subs[k]->subgraphs()) subs.push_back(inner);
      }
    }
    return d;
  };
  std::function<void(size_t)> visit = [&](size_t i) {
    if (state[i] == 2) return;
    ANVIL_CHECK(state[i] != 1, ErrorCode::kInvalidModel, "graph '", name_, "' has a cycle through ",
                pool[i]->label());
    state[i] = 1;
    for (Value* in : deps(pool[i].get())) {
      auto it = producer.find(in);
      if (it != producer.end()) visit(index[it->second]);
    }
    state[i] = 2;
    order.push_back(std::move(pool[i]));
  };
  for (size_t i = 0; i < pool.size(); ++i) visit(i);
  nodes_ = std::move(order);
}

std::vector<const Graph*> Graph::subgraphs() const {
  std::vector<const Graph*> out;
  for (const auto& n : nodes_) {
    for (const auto& [name, attr] : n->attrs_.all()) {
      (void)name;
      std::vector<const Graph*> direct;
      if (auto* g = std::get_if<std::shared_ptr<Graph>>(&attr.value)) direct.push_back(g->get());
      if (auto* gs = std::get_if<std::vector<std::shared_ptr<Graph>>>(&attr.value))
        for (auto& g : *gs) direct.push_back(g.get());
      for (const Graph* g : direct) {
        out.push_back(g);
        auto inner = g->subgraphs();
        out.insert(out.end(), inner.begin(), inner.end());
      }
    }
  }
  return out;
}

}  // namespace anvil::ir
