// cse: merges identical small initializers (same type, extents and bytes; at most
// kMaxMergeElements elements), then nodes with the same op, domain, attributes and
// inputs: the later one's outputs are replaced by the earlier one's. One sweep in
// topological order merges whole duplicated chains (Shape(x) twice -> Gather twice ...).
//
// Not merged: random ops, nodes with subgraphs, initializers that are graph inputs or
// outputs, values stored differently or nodes run differently (IR metadata). When the later node produces a graph output the earlier one is dropped
// instead, so graph outputs keep their values; two graph outputs are never merged.
#include <cstring>
#include <map>

#include "ir/op_schema.h"
#include "passes/graph_edit.h"
#include "passes/pattern.h"
#include "passes/passes.h"

namespace anvil::passes {

namespace {

constexpr int64_t kMaxMergeElements = int64_t(1) << 16;

std::string tensorKey(const ir::Tensor& t) {
  std::string k = std::to_string(int(t.dtype())) + "[";
  for (int64_t d : t.dims()) k += std::to_string(d) + ",";
  k += "]";
  if (t.dtype() == ir::DataType::kString) {
    for (int64_t i = 0; i < t.numel(); ++i) k += std::to_string(t.str(i).size()) + ":" + t.str(i);
  } else if (t.nbytes()) {
    k.append(static_cast<const char*>(t.raw()), t.nbytes());
  }
  return k;
}

std::string floatBits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return std::to_string(b);
}

// Attributes as an exact key (floats by bit pattern, tensors by bytes); nullopt for
// subgraph attributes, which are never merged.
std::optional<std::string> attrsKey(const ir::Attributes& attrs) {
  std::string k;
  for (const auto& [name, a] : attrs.all()) {
    k += name + "=" + std::to_string(int(a.kind())) + ":";
    switch (a.kind()) {
      case ir::Attribute::Kind::kInt: k += std::to_string(std::get<int64_t>(a.value)); break;
      case ir::Attribute::Kind::kFloat: k += floatBits(std::get<float>(a.value)); break;
      case ir::Attribute::Kind::kString: {
        const auto& s = std::get<std::string>(a.value);
        k += std::to_string(s.size()) + ":" + s;
        break;
      }
      case ir::Attribute::Kind::kInts:
        for (int64_t v : std::get<std::vector<int64_t>>(a.value)) k += std::to_string(v) + ",";
        break;
      case ir::Attribute::Kind::kFloats:
        for (float v : std::get<std::vector<float>>(a.value)) k += floatBits(v) + ",";
        break;
      case ir::Attribute::Kind::kStrings:
        for (const auto& s : std::get<std::vector<std::string>>(a.value)) k += std::to_string(s.size()) + ":" + s;
        break;
      case ir::Attribute::Kind::kTensor: k += tensorKey(std::get<ir::Tensor>(a.value)); break;
      default: return std::nullopt;
    }
    k += ";";
  }
  return k;
}

// Values merge only when stored alike (layout, device, quantization), nodes only when
// they run alike (precision, device, tactic parameters) and produce values stored alike.
std::string valueMetaKey(const ir::Value& v) {
  if (v.hasDefaultMeta()) return "";
  std::string k = ir::layoutName(v.layout()) + "/" + ir::deviceName(v.device());
  if (const auto& q = v.quantization())
    k += "/q" + (q->axis ? std::to_string(*q->axis) : std::string("-")) + ":" + tensorKey(q->scale) + ":" +
         (q->zeroPoint.defined() ? tensorKey(q->zeroPoint) : std::string());
  return k;
}

std::optional<std::string> nodeMetaKey(const ir::Node& n) {
  std::string k = std::to_string(int(n.precision())) + "/" + ir::deviceName(n.device());
  if (!n.tacticParams().empty()) {
    auto tk = attrsKey(n.tacticParams());
    if (!tk) return std::nullopt;
    k += "/" + *tk;
  }
  for (const ir::Value* o : n.outputs()) k += "|" + valueMetaKey(*o);
  return k;
}

int mergeInitializers(ir::Graph& g) {
  std::map<std::string, ir::Value*> seen;
  int merged = 0;
  for (ir::Value* v : g.initializers()) {
    if (isGraphInput(g, v) || isGraphOutput(g, v) || v->initializer()->numel() > kMaxMergeElements) continue;
    auto [it, fresh] = seen.emplace(valueMetaKey(*v) + "|" + tensorKey(*v->initializer()), v);
    if (fresh) continue;
    g.replaceAllUses(v, it->second);
    ++merged;
  }
  return merged;
}

}  // namespace

PassResult eliminateCommonSubexpressions(ir::Graph& g, const PassContext& /*ctx*/) {
  const int inits = mergeInitializers(g);
  std::map<std::string, ir::Node*> seen;
  int nodes = 0, skipped = 0;
  std::vector<ir::Node*> snapshot;
  for (const auto& n : g.nodes()) snapshot.push_back(n.get());
  for (ir::Node* n : snapshot) {
    const ir::OpSchema* schema = n->schema();
    if (!schema || schema->has(ir::kTraitRandom) || hasSubgraphs(*n)) continue;
    auto ak = attrsKey(n->attrs());
    auto mk = nodeMetaKey(*n);
    if (!ak || !mk) continue;
    // Inputs by identity (pointers are stable for the sweep; merged ones were rewired).
    std::string key = n->domain() + "|" + n->op() + "|" + std::to_string(n->numOutputs()) + "|";
    for (const ir::Value* in : n->inputs()) key += std::to_string(reinterpret_cast<uintptr_t>(in)) + ",";
    key += "|" + *ak + "|" + *mk;
    auto [it, fresh] = seen.emplace(key, n);
    if (fresh) continue;
    ir::Node* keep = it->second;
    ir::Node* drop = n;
    bool keepOut = false, dropOut = false;
    for (size_t i = 0; i < n->numOutputs(); ++i) {
      keepOut = keepOut || isGraphOutput(g, keep->output(i));
      dropOut = dropOut || isGraphOutput(g, drop->output(i));
    }
    if (keepOut && dropOut) {
      ++skipped;
      continue;
    }
    if (dropOut) std::swap(keep, drop);  // the node producing a graph output survives
    // Every output the dropped node's readers use must exist on the kept node.
    bool ok = true;
    for (size_t i = 0; i < n->numOutputs(); ++i)
      if (keep->output(i)->name().empty() && !drop->output(i)->name().empty() && !g.users(drop->output(i)).empty())
        ok = false;
    if (!ok) {
      ++skipped;
      continue;
    }
    for (size_t i = 0; i < n->numOutputs(); ++i)
      if (!drop->output(i)->name().empty()) g.replaceAllUses(drop->output(i), keep->output(i));
    g.removeNode(drop);
    it->second = keep;
    ++nodes;
  }
  g.topoSort();
  g.removeUnusedValues();
  std::string stats = "nodes=" + std::to_string(nodes) + ", initializers=" + std::to_string(inits);
  if (skipped) stats += ", skipped=" + std::to_string(skipped);
  return {nodes + inits, stats};
}

}  // namespace anvil::passes
