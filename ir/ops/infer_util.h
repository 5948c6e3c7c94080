// Small helpers shared by the op families' inference functions.
#pragma once

#include <optional>
#include <vector>

#include "ir/op_schema.h"

namespace anvil::ir::ops {

// Elements of a known integer input (initializer, Constant, folded), else nullopt.
inline std::optional<std::vector<int64_t>> knownInts(const InferContext& ctx, size_t i) {
  const Tensor* t = ctx.inputValue(i);
  if (!t) return std::nullopt;
  return t->toInt64Vector();
}

// A known integer input as dims: from data, else from symbolic shape values.
inline std::optional<std::vector<Dim>> knownDims(const InferContext& ctx, size_t i) {
  if (auto v = knownInts(ctx, i)) {
    std::vector<Dim> d;
    for (int64_t x : *v) d.emplace_back(x);
    return d;
  }
  if (const auto* sv = ctx.inputShapeValue(i)) return *sv;
  return std::nullopt;
}

// Rank-only shape (all dims unknown) or unknown rank when rank < 0.
inline Shape unknownDims(int64_t rank) {
  if (rank < 0) return Shape::unknownRank();
  return Shape(std::vector<Dim>(size_t(rank)));
}

}  // namespace anvil::ir::ops
