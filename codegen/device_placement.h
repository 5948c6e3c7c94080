// Placement of a CUDA build: each node runs on the GPU where a CUDA kernel serves it and on
// the CPU otherwise; every value lives where its producer runs (graph inputs, outputs and
// initializers on the host: the runtime uploads the constants CUDA steps read); anvil.Copy
// nodes are inserted where a value crosses, once per value and direction (not for Shape and
// Size, which read only the extents of a value wherever it lives).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace anvil::codegen {

struct PlacementResult {
  int cudaNodes = 0, cpuNodes = 0, copies = 0;  // copies inserted (counted in neither)
  std::vector<std::string> cpuOps;              // ops left on the CPU, one entry per op type
};

// `onCuda(node)`: a CUDA kernel serves the node. `isView(node)`: the node's output 0 aliases
// its input 0 (it runs where that input lives, moving nothing). Nodes whose outputs a
// subgraph reads stay on the CPU (subgraphs run on the CPU). Re-sorts the graph.
PlacementResult placeOnDevices(ir::Graph& g, const std::function<bool(const ir::Node&)>& onCuda,
                               const std::function<bool(const ir::Node&)>& isView);

}  // namespace anvil::codegen
