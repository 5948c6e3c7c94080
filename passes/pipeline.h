// The optimization pipeline: one ordered list of passes per optimization level
// (0 = only the passes every build needs, placement ... 3 = all). Each pass is a function
// Graph -> Graph (in place) with a name, a one-line summary and statistics, and receives
// the build's PassContext.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/pass_context.h"

namespace anvil::passes {

struct PassResult {
  int changed = 0;  // nodes removed, rewritten or fused
  std::string stats;
};

struct Pass {
  std::string name;
  std::string summary;
  int minLevel;  // runs at this optimization level and above
  std::function<PassResult(ir::Graph&, const PassContext&)> run;
};

struct OptimizeOptions {
  std::string dumpDir;  // write the IR text before and after each pass here ("" = off)
  bool verify = true;   // run the verifier after every pass (cheap; always on in tests)
  PassContext context;  // the target, precision configuration, ... every pass receives
};

// The passes in pipeline order.
const std::vector<Pass>& pipeline();
// Runs the pipeline for `level`; returns one log line per pass that ran (its statistics).
std::vector<std::string> optimize(ir::Graph& graph, int level, const OptimizeOptions& options = {});

}  // namespace anvil::passes
