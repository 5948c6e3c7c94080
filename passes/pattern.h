// The shared pattern-rewrite driver and the graph queries fusions need. A pattern is
// anchored at one op: the driver visits every live node of that op and lets the pattern
// match backwards from it and rewrite; it repeats until nothing changes.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace anvil::passes {

struct Pattern {
  std::string name;
  std::string anchorOp;      // op type at which matching starts ("" = every node)
  std::string anchorDomain;  // "" = ai.onnx
  // Tries to rewrite at `anchor`; returns true if the graph changed. It may add nodes
  // (appended; the driver re-sorts) and remove nodes (via Graph::removeNode).
  std::function<bool(ir::Graph& g, ir::Node& anchor)> apply;
};

// Applies the patterns to a fixpoint (at most maxRounds sweeps); returns the number of
// rewrites per pattern name joined as "name=count" in `stats`, and the total.
int applyPatterns(ir::Graph& g, const std::vector<Pattern>& patterns, std::string* stats = nullptr,
                  int maxRounds = 8);

// ---- queries ------------------------------------------------------------------------
// Nodes that read v (inside subgraphs too).
std::vector<ir::Node*> usersOf(const ir::Graph& g, const ir::Value* v);
// Whether v is read by exactly one node and is not a graph output.
bool hasSingleUse(const ir::Graph& g, const ir::Value* v);
bool isGraphOutput(const ir::Graph& g, const ir::Value* v);
// The producer of v if it is op `op` (domain ""), else null.
ir::Node* producerIs(const ir::Value* v, const std::string& op, const std::string& domain = "");
// Initializer data of v (a constant), else null.
const ir::Tensor* constantOf(const ir::Value* v);
// A scalar constant's value (any numeric type, any shape with one element).
bool scalarConstant(const ir::Value* v, double* out);
// Replaces every use of `from` by `to` and removes `dead` nodes (in order).
void replaceAndRemove(ir::Graph& g, ir::Value* from, ir::Value* to, const std::vector<ir::Node*>& dead);

}  // namespace anvil::passes
