// constant-folding: evaluates, on the reference kernels (cpu::Interpreter::runNode), every
// node whose inputs are all build-time constants and makes its outputs initializers;
// Constant nodes become initializers; Shape and Size of inputs whose (selected) dims are
// static become initializers too. One sweep in topological order folds whole chains.
//
// Not folded: random ops (kTraitRandom), nodes with subgraphs, results over
// kMaxFoldElements elements (they would bloat the engine's weights), initializers that are
// also graph inputs (a caller may override those), and nodes that produce a graph output
// or a value a subgraph returns directly (a graph output stays computed by a node:
// engines bind outputs by name, and an output that is a weight would be neither).
#include <algorithm>

#include "cpu/reference.h"
#include "ir/op_schema.h"
#include "passes/graph_edit.h"
#include "passes/pattern.h"
#include "passes/passes.h"

namespace anvil::passes {

namespace {

constexpr int64_t kMaxFoldElements = int64_t(16) << 20;

// Shape/Size of a value whose selected dims are static, else an undefined tensor.
ir::Tensor foldShapeOp(const ir::Node& n) {
  const ir::Value* x = n.input(0);
  if (!x || !x->shape().rankKnown()) return {};
  const ir::Shape& s = x->shape();
  const int64_t r = int64_t(s.rank());
  if (n.op() == "Size") {
    if (!s.isStatic()) return {};
    return ir::Tensor::scalar<int64_t>(ir::DataType::kI64, s.numel());
  }
  int64_t start = n.attrs().getInt("start", 0), end = n.attrs().getInt("end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  std::vector<int64_t> dims;
  for (int64_t i = start; i < end; ++i) {
    if (!s[size_t(i)].isStatic()) return {};
    dims.push_back(s[size_t(i)].value());
  }
  return ir::Tensor::fromVector<int64_t>(ir::DataType::kI64, {int64_t(dims.size())}, dims);
}

bool staticTooLarge(const ir::Value* v) {
  return v->shape().isStatic() && v->shape().numel() > kMaxFoldElements;
}

}  // namespace

PassResult foldConstants(ir::Graph& g, const PassContext& /*ctx*/) {
  int constants = 0, folded = 0, shapes = 0, failed = 0;
  const auto observed = observedOutputs(g);
  std::vector<ir::Node*> snapshot;
  for (const auto& n : g.nodes()) snapshot.push_back(n.get());
  for (ir::Node* n : snapshot) {
    const ir::OpSchema* schema = n->schema();
    if (!schema || schema->has(ir::kTraitRandom) || schema->has(ir::kTraitControlFlow) || hasSubgraphs(*n))
      continue;
    bool producesOutput = false, tooLarge = false;
    for (const ir::Value* o : n->outputs()) {
      producesOutput = producesOutput || observed.count(o);
      tooLarge = tooLarge || staticTooLarge(o);
    }
    if (producesOutput || tooLarge) continue;

    std::vector<ir::Tensor> outs;
    const bool shapeOp = (n->op() == "Shape" || n->op() == "Size") && n->domain().empty();
    if (shapeOp) {
      ir::Tensor t = foldShapeOp(*n);
      if (!t.defined()) continue;
      outs.push_back(std::move(t));
    } else {
      std::vector<const ir::Tensor*> inputs;
      bool allConstant = true;
      for (const ir::Value* in : n->inputs()) {
        const ir::Tensor* t = in ? trueConstantOf(g, in) : nullptr;
        if (in && !t) allConstant = false;
        inputs.push_back(t);
      }
      if (!allConstant) continue;
      try {
        outs = cpu::Interpreter::runNode(*n, inputs);
      } catch (const Error&) {
        ++failed;  // left for run time, where the same error names the node
        continue;
      }
    }
    bool ok = outs.size() == n->numOutputs();
    for (size_t i = 0; ok && i < outs.size(); ++i) {
      const ir::Value* o = n->output(i);
      if (o->name().empty()) continue;
      ok = outs[i].defined() && outs[i].numel() <= kMaxFoldElements &&
           (o->dtype() == ir::DataType::kUndefined || o->dtype() == outs[i].dtype());
    }
    if (!ok) continue;
    // Kernels may return views of their inputs; a folded weight owns its data.
    for (size_t i = 0; i < outs.size(); ++i)
      if (!n->output(i)->name().empty()) makeConstant(n->output(i), outs[i].clone());
    g.removeNode(n);
    (shapeOp ? shapes : schema->name == "Constant" && schema->domain.empty() ? constants : folded)++;
  }
  g.removeUnusedValues();
  std::string stats = "Constant=" + std::to_string(constants) + ", folded=" + std::to_string(folded) +
                      ", shape=" + std::to_string(shapes);
  if (failed) stats += ", kernel-errors=" + std::to_string(failed);
  return {constants + folded + shapes, stats};
}

}  // namespace anvil::passes
