// Blocked-layout regions and the graph edits around them (see layout_selection.h).
#include "codegen/layout_selection.h"

#include <algorithm>
#include <numeric>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "ir/layout.h"
#include "passes/graph_edit.h"
#include "runtime/kernel.h"

namespace anvil::codegen {

int hostNchwcBlock() {
  if (runtime::hostHas("avx512f")) return 16;
  if (runtime::hostHas("avx2") && runtime::hostHas("fma")) return 8;
  return 0;
}

bool isBlockableActivation(const ir::Value* v) {
  return v && !v->name().empty() && !v->isInitializer() && v->dtype() == ir::DataType::kF32 &&
         v->shape().rankKnown() && v->shape().rank() == 4 && v->shape().isStatic() && v->layout().isPlain();
}

namespace {

bool isGraphOutput(const ir::Graph& g, const ir::Value* v) {
  return std::find(g.outputs().begin(), g.outputs().end(), v) != g.outputs().end();
}

// Whether a node may join a region at all, before asking its kernels.
bool eligible(const ir::Graph& g, const ir::Node& n, const std::unordered_set<const ir::Value*>& observed) {
  if (passes::hasSubgraphs(n) || n.numOutputs() == 0) return false;
  bool anyActivationInput = false;
  for (const ir::Value* v : n.inputs()) anyActivationInput |= isBlockableActivation(v);
  if (!anyActivationInput) return false;
  for (const ir::Value* o : n.outputs()) {
    // A graph output is reordered back under its name; one a subgraph returns stays.
    if (!isBlockableActivation(o) || (observed.count(o) && !isGraphOutput(g, o))) return false;
    for (const ir::Node* u : g.users(o))
      if (u->owner() != &g) return false;  // read by a subgraph as an outer-scope value
  }
  return true;
}

struct UnionFind {
  std::vector<size_t> parent;
  explicit UnionFind(size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), size_t(0)); }
  size_t find(size_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  }
  void unite(size_t a, size_t b) { parent[find(a)] = find(b); }
};

}  // namespace

std::vector<std::vector<ir::Node*>> findBlockedRegions(ir::Graph& g, int block,
                                                       const std::function<bool(const ir::Node&)>& servable) {
  const ir::Layout blocked = ir::Layout::nchwc(block);
  const auto observed = passes::observedOutputs(g);
  const auto& nodes = g.nodes();
  std::unordered_map<const ir::Node*, size_t> index;
  std::vector<char> in(nodes.size(), 0);
  for (size_t i = 0; i < nodes.size(); ++i) {
    ir::Node& n = *nodes[i];
    index[&n] = i;
    if (!eligible(g, n, observed)) continue;
    // Ask with the node's activations blocked, then put the layouts back.
    std::vector<ir::Value*> set;
    for (ir::Value* v : n.inputs())
      if (isBlockableActivation(v)) set.push_back(v);
    for (ir::Value* v : n.outputs()) set.push_back(v);
    for (ir::Value* v : set) v->setLayout(blocked);
    bool ok = false;
    try {
      ok = servable(n);
    } catch (...) {
      ok = false;
    }
    for (ir::Value* v : set) v->setLayout(ir::Layout::plain());
    in[i] = ok;
  }
  UnionFind uf(nodes.size());
  std::unordered_map<const ir::Value*, size_t> firstOutsideConsumer;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (!in[i]) continue;
    for (const ir::Value* v : nodes[i]->inputs()) {
      if (!isBlockableActivation(v)) continue;
      const ir::Node* p = v->producer();
      auto it = p ? index.find(p) : index.end();
      if (it != index.end() && in[it->second]) {
        uf.unite(i, it->second);
      } else {  // enters from outside: consumers of one value share its Reorder
        auto [f, fresh] = firstOutsideConsumer.emplace(v, i);
        if (!fresh) uf.unite(i, f->second);
      }
    }
  }
  std::map<size_t, std::vector<ir::Node*>> groups;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (in[i]) groups[uf.find(i)].push_back(nodes[i].get());
  std::vector<std::vector<ir::Node*>> out;
  for (auto& [root, members] : groups) out.push_back(std::move(members));
  return out;
}

AppliedRegion applyBlockedRegion(ir::Graph& g, const std::vector<ir::Node*>& region, int block,
                                 std::map<const ir::Value*, ir::TensorType>* declared,
                                 const std::function<bool(const ir::Node&, size_t)>& keepPlain) {
  const ir::Layout blocked = ir::Layout::nchwc(block);
  AppliedRegion r;
  r.nodes = region;
  const std::set<const ir::Node*> inRegion(region.begin(), region.end());
  auto reorder = [&](ir::Value* from, const ir::Layout& to, const std::string& suffix) {
    ir::Node* n = g.addNode("Reorder", "anvil", passes::uniqueName(g, from->name() + "_reorder" + suffix), {from},
                            {passes::uniqueName(g, from->name() + suffix)});
    n->attrs().set("to", ir::layoutName(to));
    ir::Value* out = n->output(0);
    out->setType(from->type());
    out->copyMetaFrom(*from);  // the same logical values: device and quantization grid carry over
    out->setLayout(to);
    (*declared)[out] = declared->count(from) ? declared->at(from) : from->type();
    r.reorders.push_back(n);
    return out;
  };
  // Region outputs first (before entry Reorders exist, so users() sees only real users).
  std::vector<std::pair<ir::Value*, std::vector<ir::Node*>>> exits;
  for (ir::Node* n : region)
    for (ir::Value* o : n->outputs()) {
      std::vector<ir::Node*> outside;
      for (ir::Node* u : g.users(o))
        if (!inRegion.count(u)) outside.push_back(u);
      exits.push_back({o, std::move(outside)});
    }
  // The region's outputs are blocked from here on (keepPlain asks with them so).
  for (auto& [o, outside] : exits) o->setLayout(blocked);
  // Entries: one Reorder per value coming from outside.
  std::unordered_map<const ir::Value*, ir::Value*> entry;
  for (ir::Node* n : region)
    for (size_t i = 0; i < n->numInputs(); ++i) {
      ir::Value* v = n->input(i);
      if (!isBlockableActivation(v)) continue;
      if (v->producer() && inRegion.count(v->producer())) continue;
      if (keepPlain && keepPlain(*n, i)) continue;
      auto it = entry.find(v);
      ir::Value* b = it != entry.end() ? it->second : (entry[v] = reorder(v, blocked, "_nchwc"));
      n->setInput(i, b);
      r.rewired.push_back({n, i, v});
    }
  for (auto& [o, outside] : exits) {
    r.blocked.push_back(o);
    const bool graphOutput = isGraphOutput(g, o);
    if (outside.empty() && !graphOutput) continue;
    ir::Value* plain = reorder(o, ir::Layout::plain(), "_plain");
    for (ir::Node* u : outside)
      for (size_t i = 0; i < u->numInputs(); ++i)
        if (u->input(i) == o) {
          u->setInput(i, plain);
          r.rewired.push_back({u, i, o});
        }
    if (graphOutput) {  // the caller binds the name: the row-major Reorder output takes it
      const std::string name = o->name();
      g.renameValue(o, passes::uniqueName(g, name + "_nchwc"));
      g.renameValue(plain, name);
      for (size_t i = 0; i < g.outputs().size(); ++i)
        if (g.outputs()[i] == o) g.setOutput(i, plain);
      r.renamed.push_back({o, plain, name});
    }
  }
  return r;
}

void revertBlockedRegion(ir::Graph& g, const AppliedRegion& r) {
  for (auto it = r.renamed.rbegin(); it != r.renamed.rend(); ++it) {
    for (size_t i = 0; i < g.outputs().size(); ++i)
      if (g.outputs()[i] == it->plain) g.setOutput(i, it->blocked);
    g.renameValue(it->plain, passes::uniqueName(g, it->name + "_unused"));
    g.renameValue(it->blocked, it->name);
  }
  for (auto it = r.rewired.rbegin(); it != r.rewired.rend(); ++it) it->node->setInput(it->input, it->original);
  for (ir::Value* v : r.blocked) v->setLayout(ir::Layout::plain());
  for (ir::Node* n : r.reorders) g.removeNode(n);
}

}  // namespace anvil::codegen
