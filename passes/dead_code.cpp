// Dead-code elimination: removes nodes none of whose outputs reach a graph output
// (random ops included: their values are unobservable when unused).
#include <unordered_set>

#include "passes/passes.h"

namespace anvil::passes {

namespace {
void markUsed(const ir::Graph& g, std::unordered_set<const ir::Value*>& live);

void markNodeInputs(const ir::Node& n, std::unordered_set<const ir::Value*>& live) {
  for (const ir::Value* in : n.inputs())
    if (in) live.insert(in);
  for (const auto& [name, a] : n.attrs().all()) {
    (void)name;
    if (auto* sg = std::get_if<std::shared_ptr<ir::Graph>>(&a.value)) markUsed(**sg, live);
    if (auto* gs = std::get_if<std::vector<std::shared_ptr<ir::Graph>>>(&a.value))
      for (const auto& s : *gs) markUsed(*s, live);
  }
}

// Everything a subgraph reads (its nodes' inputs, its outputs) counts as used.
void markUsed(const ir::Graph& g, std::unordered_set<const ir::Value*>& live) {
  for (const ir::Value* o : g.outputs()) live.insert(o);
  for (const auto& n : g.nodes()) markNodeInputs(*n, live);
}
}  // namespace

PassResult eliminateDeadCode(ir::Graph& g, const PassContext& /*ctx*/) {
  std::unordered_set<const ir::Value*> live(g.outputs().begin(), g.outputs().end());
  std::vector<ir::Node*> dead;
  // Walk backwards: a node is live if any output is live.
  for (auto it = g.nodes().rbegin(); it != g.nodes().rend(); ++it) {
    const ir::Node& n = **it;
    bool used = false;
    for (const ir::Value* o : n.outputs()) used = used || live.count(o);
    if (used) markNodeInputs(n, live);
    else dead.push_back(it->get());
  }
  for (ir::Node* n : dead) g.removeNode(n);
  g.removeUnusedValues();
  return {int(dead.size()), ""};
}

}  // namespace anvil::passes
