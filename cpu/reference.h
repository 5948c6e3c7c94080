// Reference CPU kernels: one plain, obviously correct kernel per op, registered by
// family (cpu/kernels/*.cpp). They define the numbers every faster tactic is checked
// against, and they run constant folding and the conformance suite.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"

namespace anvil::cpu {

using ir::DataType;
using ir::Tensor;

// Runs a subgraph (If/Loop/Scan bodies) with the given inputs; outer-scope values are
// resolved through the calling context.
using SubgraphRunner =
    std::function<std::vector<Tensor>(const ir::Graph& body, const std::vector<Tensor>& inputs)>;

class KernelContext {
 public:
  KernelContext(const ir::Node& node, std::vector<const Tensor*> inputs, SubgraphRunner runner)
      : node_(node), inputs_(std::move(inputs)), outputs_(node.numOutputs()), runner_(std::move(runner)) {}

  const ir::Node& node() const { return node_; }
  const ir::Attributes& attrs() const { return node_.attrs(); }
  size_t numInputs() const { return inputs_.size(); }
  size_t numOutputs() const { return outputs_.size(); }
  bool hasInput(size_t i) const { return i < inputs_.size() && inputs_[i] != nullptr; }
  // Input i; throws naming the node when it is absent.
  const Tensor& input(size_t i) const;
  // Allocates output i (zero-filled) and returns it for writing. When the caller planned
  // memory for output i (an arena slot of enough bytes), the tensor lives there.
  Tensor& allocOutput(size_t i, DataType dtype, std::vector<int64_t> dims);
  // Planned memory for outputs (engine runtime): slot i = {pointer, capacity in bytes}.
  struct Slot {
    void* data = nullptr;
    size_t bytes = 0;
    bool allocate = true;  // false: the output must end up here, but allocOutput may not use it
  };
  void setOutputSlots(std::vector<Slot> slots) { slots_ = std::move(slots); }
  // Sets output i to an existing tensor (may share storage with an input: a view).
  void setOutput(size_t i, Tensor t) { outputs_.at(i) = std::move(t); }
  std::vector<Tensor>& outputs() { return outputs_; }
  // Whether output i is consumed (optional outputs may be skipped).
  bool outputWanted(size_t i) const { return i < node_.numOutputs() && node_.output(i) && !node_.output(i)->name().empty(); }

  std::vector<Tensor> runSubgraph(const ir::Graph& body, const std::vector<Tensor>& inputs) const {
    return runner_(body, inputs);
  }
  // Throws kRuntimeError naming the node.
  [[noreturn]] void fail(const std::string& message) const;
  void check(bool cond, const std::string& message) const {
    if (!cond) fail(message);
  }

 private:
  const ir::Node& node_;
  std::vector<const Tensor*> inputs_;
  std::vector<Tensor> outputs_;
  SubgraphRunner runner_;
  std::vector<Slot> slots_;
};

using RefKernel = std::function<void(KernelContext&)>;

class KernelRegistry {
 public:
  static KernelRegistry& instance();  // filled on first use by every family
  void add(const std::string& op, const std::string& domain, RefKernel kernel);
  void add(const std::string& op, RefKernel kernel) { add(op, "", std::move(kernel)); }
  const RefKernel* find(const std::string& op, const std::string& domain = "") const;
  std::vector<std::pair<std::string, std::string>> ops() const;  // (domain, op), sorted

 private:
  std::map<std::pair<std::string, std::string>, RefKernel> kernels_;
};

// How an engine steers execution of the top-level graph: which kernel (tactic) runs a
// node, where its outputs live (arena slots), and a per-node timing callback. Nodes
// inside subgraphs always run their reference kernels.
struct ExecHooks {
  std::function<const RefKernel*(size_t nodeIndex)> kernelFor;                  // null: reference
  std::function<std::vector<KernelContext::Slot>(size_t nodeIndex)> slotsFor;   // null: heap
  std::function<void(size_t nodeIndex, double milliseconds)> onNodeDone;         // profiler
  bool checkInferred = true;  // compare outputs with inferred types (off in the lean runtime)
};

// Executes graphs on the reference kernels. Stateless between runs; safe to share.
class Interpreter {
 public:
  // Runs `graph` with inputs by graph-input name; returns the graph outputs in order.
  // Missing inputs that have an initializer use it; other missing inputs are errors.
  static std::vector<Tensor> run(const ir::Graph& graph, const std::map<std::string, Tensor>& inputs,
                                 const ExecHooks* hooks = nullptr);
  // Runs one node on concrete inputs (constant folding).
  static std::vector<Tensor> runNode(const ir::Node& node, const std::vector<const Tensor*>& inputs);
  // Runs one node with `outer` supplying the enclosing graph's values its subgraphs read
  // (see outerScopeValues), `kernel` instead of the reference kernel (null: reference) and
  // optional output slots. The engine runtime's adapter for reference and older tactics.
  static std::vector<Tensor> runNodeScoped(const ir::Node& node, const std::vector<const Tensor*>& inputs,
                                           const std::vector<std::pair<const ir::Value*, Tensor>>& outer,
                                           const RefKernel* kernel = nullptr,
                                           std::vector<KernelContext::Slot> slots = {});
};

// Values of enclosing graphs that a node's subgraphs read (If/Loop/Scan bodies reach
// outer values by name), in a deterministic order; empty for nodes without subgraphs.
std::vector<const ir::Value*> outerScopeValues(const ir::Node& node);

// The epilogue of an anvil-domain linear node (anvil.FusedConv / FusedGemm / FusedMatMul)
// applied to v, its linear part's output (FusedMatMul: with the bias added): the node's
// output 0 bit for bit as its reference kernel computes it (the same per-element steps,
// each rounded to the element type). z: the residual input (null where the node has none).
// The calibration run computes v for its condition estimates and takes the output from it.
Tensor fusedLinearEpilogue(const ir::Node& node, const Tensor& v, const Tensor* z);



}  // namespace anvil::cpu
