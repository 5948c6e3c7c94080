// The IR verifier: structural checks every pass must preserve. Run it after parsing and
// after each pass in tests; it never changes the graph.
//
// Checked, for the graph and recursively for every subgraph:
//  - every node input is defined before use: a graph input, an initializer, an output of
//    an earlier node, or (in a subgraph) a value of an enclosing graph defined before
//    the node that owns the subgraph; required inputs (below the schema's minimum) are
//    not omitted;
//  - every value is defined once (graph inputs may also be initializers: ONNX defaults);
//  - nodes are in topological order, and there is no cycle (reported as the cycle);
//  - the op is in the op table, and input/output counts are within its schema;
//  - graph outputs are defined;
//  - ownership is consistent: nodes and the values they define belong to the graph,
//    each output records its producer, each subgraph's parent is the enclosing graph;
//  - metadata fits: a value's layout suits its rank (layoutDefect), its quantization
//    parameters its type (quantizationDefect); a node's precision is a numeric type and
//    its tactic parameters hold no graphs.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"

namespace anvil::ir {

struct VerifyOptions {
  bool allowUnknownOps = false;  // tolerate ops missing from the op table (pass tests)
};

// Metadata checks shared with the text parser: "" when the layout / quantization fits a
// value of type `t`, else what is wrong ("NCHW8c needs rank 4, the value has rank 2").
std::string layoutDefect(const Layout& l, const TensorType& t);
std::string quantizationDefect(const Quantization& q, const TensorType& t);

// Every defect found, one message each, naming the graph, the node and what is wrong;
// empty when the graph is valid.
std::vector<std::string> verifyErrors(const Graph& graph, const VerifyOptions& options = {});
// Throws anvil::Error kInvalidModel with every defect (one per line) if there is any.
void verify(const Graph& graph, const VerifyOptions& options = {});

}  // namespace anvil::ir
