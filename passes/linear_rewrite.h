// Small rewrite helpers shared by the linear-layer passes (batchnorm-folding, pad-folding,
// matmul-add-to-gemm, linear-epilogue-fusion): fresh names, new initializers, and
// replacing a chain of nodes by one node that produces the chain's final value under its
// own name (so graph outputs keep their names).
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/pattern.h"

namespace anvil::passes::linear {

// A value name not yet used in g (or an enclosing graph): base, base_1, base_2, ...
inline std::string freshName(const ir::Graph& g, const std::string& base) {
  std::string b = base.empty() ? "v" : base;
  if (!g.lookup(b)) return b;
  for (int i = 1;; ++i) {
    std::string n = b + "_" + std::to_string(i);
    if (!g.lookup(n)) return n;
  }
}

// Initializer data of v when it is fixed at build time: not also a graph input (ONNX
// lets a caller override those), else null.
inline const ir::Tensor* fixedConstant(const ir::Graph& g, const ir::Value* v) {
  if (!v || !v->initializer()) return nullptr;
  for (const ir::Value* in : g.inputs())
    if (in == v) return nullptr;
  return v->initializer();
}

// A fixed one-element numeric constant's value.
inline bool fixedScalar(const ir::Graph& g, const ir::Value* v, double* out) {
  const ir::Tensor* t = fixedConstant(g, v);
  if (!t || t->numel() != 1 || t->dtype() == ir::DataType::kString) return false;
  *out = t->getDouble(0);
  return true;
}

inline ir::Value* addConstant(ir::Graph& g, const std::string& base, ir::Tensor t) {
  return g.addInitializer(freshName(g, base), std::move(t));
}

// Replaces the nodes `dead` (which include the producer of `last`) by a new node
// `op`(`inputs`) whose single output takes over `last`: its users, its graph-output slots
// and its name, so a graph output is never renamed. The new node is appended (the
// pattern driver re-sorts); its output type is `last`'s type until inference runs, its
// output metadata `last`'s, its precision, device and tactic parameters those of
// `principal` — the node the chain is built around (the Conv or MatMul whose epilogue
// absorbs a Relu: a Q/DQ model's INT8 precision and input grid live on it) — or, without
// one, of `last`'s producer.
inline ir::Node* replaceChain(ir::Graph& g, ir::Value* last, const std::vector<ir::Node*>& dead,
                              std::string op, std::string domain, std::string nodeName,
                              std::vector<ir::Value*> inputs, ir::Attributes attrs,
                              const ir::Node* principal = nullptr) {
  // Everything is taken by value: the arguments often refer to the nodes removed here.
  const std::string name = last->name();
  const ir::TensorType type = last->type();
  ir::Value meta;  // `last`'s layout, quantization and device, which the new output keeps
  meta.copyMetaFrom(*last);
  const ir::Node* producer = principal ? principal : last->producer();
  const ir::DataType precision = producer ? producer->precision() : ir::DataType::kUndefined;
  const ir::Device device = producer ? producer->device() : ir::Device::kCPU;
  ir::Attributes tacticParams = producer ? producer->tacticParams() : ir::Attributes{};
  // Park the uses on a placeholder and keep the new inputs alive with an output-less
  // keeper node, so that dropping the old value (and freeing its name) loses nothing.
  ir::Value* hold = g.addValue(freshName(g, name + "__hold"), type);
  g.replaceAllUses(last, hold);
  ir::Node* keeper = g.addNode("__keep", "", "", inputs, {});
  for (ir::Node* n : dead) g.removeNode(n);
  g.removeUnusedValues();
  const std::string outName = name.empty() || g.lookup(name) ? freshName(g, name) : name;
  ir::Node* n = g.addNode(op, domain, nodeName, inputs, {outName});
  g.removeNode(keeper);
  n->attrs() = std::move(attrs);
  n->setPrecision(precision);
  n->setDevice(device);
  n->tacticParams() = std::move(tacticParams);
  n->output(0)->setType(type);
  n->output(0)->copyMetaFrom(meta);
  g.replaceAllUses(hold, n->output(0));
  g.removeUnusedValues();
  return n;
}

// Whether every user of v is `user` (which may read it more than once) and v is not a
// graph output.
inline bool onlyUsedBy(const ir::Graph& g, const ir::Value* v, const ir::Node* user) {
  if (isGraphOutput(g, v)) return false;
  for (const ir::Node* u : g.users(v))
    if (u != user) return false;
  return true;
}

inline bool isFloatType(ir::DataType t) {
  return t == ir::DataType::kF32 || t == ir::DataType::kF64 || t == ir::DataType::kF16 || t == ir::DataType::kBF16;
}

// Static extents of a shape, or false.
inline bool staticDims(const ir::Shape& s, std::vector<int64_t>* out) {
  if (!s.rankKnown()) return false;
  out->clear();
  for (size_t i = 0; i < s.rank(); ++i) {
    if (!s[i].isStatic()) return false;
    out->push_back(s[i].value());
  }
  return true;
}

}  // namespace anvil::passes::linear
