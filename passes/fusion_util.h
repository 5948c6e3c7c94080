// Small matching helpers shared by the transformer and elementwise fusions
// (layernorm-, gelu-, softmax-, attention-, elementwise-fusion): true scalar constants
// with a tolerance, the other operand of a binary node, use checks, and reading a
// reduction's axes.
#pragma once

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/graph_edit.h"
#include "passes/pattern.h"

namespace anvil::passes::fusion {

// The value of a one-element constant that the caller cannot override (not a graph
// input), of a float or integer type.
inline std::optional<double> scalarOf(const ir::Graph& g, const ir::Value* v) {
  const ir::Tensor* t = trueConstantOf(g, v);
  if (!t || t->numel() != 1 || t->dtype() == ir::DataType::kString || t->dtype() == ir::DataType::kBool)
    return std::nullopt;
  return t->getDouble(0);
}

// Whether v is a scalar constant equal to `want` within a relative tolerance (exporters
// write sqrt(2), 1/sqrt(2), sqrt(2/pi) rounded to f32).
inline bool isScalar(const ir::Graph& g, const ir::Value* v, double want, double relTol = 1e-6) {
  auto s = scalarOf(g, v);
  return s && std::fabs(*s - want) <= relTol * std::max(1.0, std::fabs(want));
}

// A one-element constant only broadcasts harmlessly when its rank does not exceed the
// other operand's (a [1,1,1] constant would lift a [4] value to rank 3).
inline bool scalarKeepsShape(const ir::Value* scalar, const ir::Value* other) {
  return scalar->shape().rankKnown() && other->shape().rankKnown() && scalar->shape().rank() <= other->shape().rank();
}

// For a binary node reading `v`, the other operand (null if the node does not read v
// exactly once among its first two inputs).
inline ir::Value* otherOperand(const ir::Node* n, const ir::Value* v) {
  if (!n || n->numInputs() != 2) return nullptr;
  if (n->input(0) == v && n->input(1) != v) return n->input(1);
  if (n->input(1) == v && n->input(0) != v) return n->input(0);
  return nullptr;
}

// The single node reading v (v not a graph output), else null.
inline ir::Node* soleUser(const ir::Graph& g, const ir::Value* v) {
  if (isGraphOutput(g, v)) return nullptr;
  auto users = g.users(v);
  return users.size() == 1 ? users[0] : nullptr;
}

// Whether every reader of v is one of `allowed` and v is not a graph output.
inline bool usedOnlyBy(const ir::Graph& g, const ir::Value* v, const std::vector<const ir::Node*>& allowed) {
  if (isGraphOutput(g, v)) return false;
  for (const ir::Node* u : g.users(v))
    if (std::find(allowed.begin(), allowed.end(), u) == allowed.end()) return false;
  return true;
}

// The producer of v if its op is one of `ops` (domain ""), else null.
inline ir::Node* producerIn(const ir::Value* v, std::initializer_list<const char*> ops) {
  if (!v || !v->producer() || !v->producer()->domain().empty()) return nullptr;
  for (const char* op : ops)
    if (v->producer()->op() == op) return v->producer();
  return nullptr;
}

// Normalized axes (sorted, in [0, rank)) of a Reduce* node of the newest opsets (axes as
// input 1, else the attribute of older forms); nullopt when they are not constant, the
// rank is unknown, keepdims is not `keepdims`, or the axes are empty (reduce-all or no-op).
inline std::optional<std::vector<int64_t>> reduceAxes(const ir::Graph& g, const ir::Node* n, bool keepdims) {
  if (!n || n->numOutputs() != 1) return std::nullopt;
  const ir::Value* x = n->input(0);
  if (!x || !x->shape().rankKnown()) return std::nullopt;
  const int64_t rank = int64_t(x->shape().rank());
  if ((n->attrs().getInt("keepdims", 1) != 0) != keepdims) return std::nullopt;
  std::vector<int64_t> axes;
  if (n->numInputs() >= 2 && n->input(1)) {
    const ir::Tensor* t = trueConstantOf(g, n->input(1));
    if (!t) return std::nullopt;
    axes = t->toInt64Vector();
  } else if (n->attrs().has("axes")) {
    axes = n->attrs().getInts("axes");
  } else {
    return std::nullopt;
  }
  if (axes.empty()) return std::nullopt;
  std::set<int64_t> norm;
  for (int64_t a : axes) {
    if (a < -rank || a >= rank) return std::nullopt;
    norm.insert(a < 0 ? a + rank : a);
  }
  if (norm.size() != axes.size()) return std::nullopt;
  return std::vector<int64_t>(norm.begin(), norm.end());
}

inline bool isFloatType(ir::DataType t) {
  return t == ir::DataType::kF32 || t == ir::DataType::kF64 || t == ir::DataType::kF16 || t == ir::DataType::kBF16;
}

}  // namespace anvil::passes::fusion
