// The pass list and the driver that runs it, re-inferring shapes after each pass.
#include "passes/pipeline.h"

#include "ir/op_schema.h"

namespace anvil::passes {

PassResult eliminateDeadCode(ir::Graph& g);  // passes/dead_code.cpp

const std::vector<Pass>& pipeline() {
  static const std::vector<Pass> passes = {
      {"dead-code", "remove nodes whose outputs nobody reads", 1, eliminateDeadCode},
  };
  return passes;
}

std::vector<std::string> optimize(ir::Graph& graph, int level) {
  std::vector<std::string> log;
  for (const Pass& p : pipeline()) {
    if (level < p.minLevel) continue;
    const size_t before = graph.nodes().size();
    PassResult r = p.run(graph);
    ir::inferShapes(graph);
    log.push_back(p.name + ": " + std::to_string(before) + " -> " + std::to_string(graph.nodes().size()) +
                  " nodes, " + std::to_string(r.changed) + " changed" + (r.stats.empty() ? "" : ", " + r.stats));
  }
  return log;
}

}  // namespace anvil::passes
