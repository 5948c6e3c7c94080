// Graph edits and build-time facts shared by the cleanup passes (noop elimination,
// constant and shape folding, CSE, transpose cancellation): which values are true
// constants, the data and symbolic shape values inference can prove, and rewiring a
// value away without renaming a graph output.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ir/graph.h"

namespace anvil::passes {

bool isGraphInput(const ir::Graph& g, const ir::Value* v);
// An initializer that is not also a graph input (ONNX lets a caller override those), so
// its data is fixed at build time.
const ir::Tensor* trueConstantOf(const ir::Graph& g, const ir::Value* v);
// Whether the node carries subgraphs (If/Loop/Scan bodies).
bool hasSubgraphs(const ir::Node& n);
// Whether `v` is a graph output, or is returned directly by a subgraph of `g` (an
// outer-scope value as a branch result). Such values must stay node outputs: a graph
// output is bound by name, and Graph::removeUnusedValues does not see subgraph outputs.
bool isObservedOutput(const ir::Graph& g, const ir::Value* v);
// The same for every value at once (graph outputs and values subgraphs return directly).
std::unordered_set<const ir::Value*> observedOutputs(const ir::Graph& g);
// A name not yet used in `g` nor in an enclosing graph, derived from `base`.
std::string uniqueName(const ir::Graph& g, const std::string& base);
// Adds an initializer under a fresh name derived from `base`.
ir::Value* addConstant(ir::Graph& g, const std::string& base, ir::Tensor t);
// Turns node output `v` into an initializer holding `t` (same Value, same name) and
// drops its producer's claim on it; the producer must be removed by the caller once all
// its outputs are folded.
void makeConstant(ir::Value* v, ir::Tensor t);

// What inference proves at build time about each value of the graph (not subgraphs):
// its data (initializers that are not graph inputs, Constant nodes and the cheap folds
// inference does) and its symbolic shape value (the elements of a small integer tensor
// computed from shapes: Shape -> Gather -> Concat ..., possibly symbolic like N).
// Recomputed by running every node's inference function; the graph is not changed.
struct KnownValues {
  std::unordered_map<const ir::Value*, ir::Tensor> data;
  std::unordered_map<const ir::Value*, std::vector<ir::Dim>> shapeValues;
  const ir::Tensor* dataOf(const ir::Value* v) const {
    auto it = data.find(v);
    return it == data.end() ? nullptr : &it->second;
  }
  const std::vector<ir::Dim>* shapeValueOf(const ir::Value* v) const {
    auto it = shapeValues.find(v);
    return it == shapeValues.end() ? nullptr : &it->second;
  }
};
KnownValues computeKnownValues(const ir::Graph& g);

// The integer a shape-value element stands for: a static dim, or a known negative
// integer (inference spells those as the symbol "-1").
std::optional<int64_t> shapeValueInt(const ir::Dim& d);

// Replaces every use of `from` (an output of `dead`) by `to` and removes `dead`, keeping
// graph outputs' names: when `from` is a graph output, `to`'s producer is re-created so
// that it produces a value named like `from` (legal only when `to` is an output of a
// single-output-in-use node without subgraphs, read by nobody else and not a graph
// output). Returns false and changes nothing when that is impossible (e.g. `to` is a
// graph input or an initializer: a graph output must stay computed by a node) or when
// `from` and `to` carry different metadata (layout, device, quantization).
bool forwardValue(ir::Graph& g, ir::Node* dead, ir::Value* from, ir::Value* to);

// Replaces `old` by a new node (op, domain, inputs, attributes) that computes the same
// outputs: same count, names and types, and every reader (graph outputs included) now
// reads the new node's; the outputs keep their metadata and the node its precision and
// device (not its tactic parameters). Values unused at the time of the call are swept
// (removeUnusedValues), so the caller must not hold pointers to unreferenced values.
ir::Node* replaceNode(ir::Graph& g, ir::Node* old, const std::string& op, const std::string& domain,
                      const std::vector<ir::Value*>& inputs, const ir::Attributes& attrs);

// Removes `n` if none of its outputs is read or is a graph output; returns whether it did.
bool removeIfUnused(ir::Graph& g, ir::Node* n);

// A constant Reshape target (for input shape `in`) equivalent to the output dims `want`,
// when that is exact for every value of the symbols: static extents stay; an element that
// is the symbol of `in`'s dim at the same position becomes 0 (copy; needs allowzero=0);
// at most one other element becomes -1, and only when every other element is then a
// static positive extent. Known -1 elements of a shape value (the symbol "-1") stay.
std::optional<std::vector<int64_t>> constantReshapeTarget(const ir::Shape& in, const std::vector<ir::Dim>& want,
                                                          bool allowzero);

}  // namespace anvil::passes
