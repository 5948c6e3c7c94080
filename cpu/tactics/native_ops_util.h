// Shared pieces of the native op kernels (cpu/tactics/native_ops_*.cpp): chunked parallel
// loops over an executor, numpy broadcast plans built from a step's views on the stack,
// and a strided copy that serves every movement op. Nothing here allocates.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/kernel.h"

namespace anvil::runtime::nops {

// The families (one file each), registered from native_ops.cpp.
void registerElementwise(Kernels& k);  // native_ops_elementwise.cpp
void registerPool(Kernels& k);         // native_ops_pool.cpp
void registerNorm(Kernels& k);         // native_ops_norm.cpp
void registerMovement(Kernels& k);     // native_ops_movement.cpp
void registerApprox(Kernels& k);       // native_ops_approx.cpp
void registerResize(Kernels& k);       // native_ops_resize.cpp
void registerRearrange(Kernels& k);    // native_ops_rearrange.cpp
void registerSelect(Kernels& k);       // native_ops_select.cpp

// Runs fn(begin, end) over [0, n) in contiguous chunks of at least `grain` items, at most
// one chunk per thread. Each item lands in exactly one chunk; kernels compute every item
// on its own, so the result is the same for every thread count.
template <typename F>
void parallelRange(Executor* ex, int64_t n, int64_t grain, F&& fn) {
  if (n <= 0) return;
  const int64_t threads = ex ? ex->threads() : 1;
  const int64_t chunks = std::min<int64_t>(threads, (n + grain - 1) / std::max<int64_t>(grain, 1));
  if (chunks <= 1) {
    fn(int64_t(0), n);
    return;
  }
  ex->parallelFor(chunks, [&](int64_t c) { fn(n * c / chunks, n * (c + 1) / chunks); });
}

// A numpy broadcast of K inputs to an output, with size-1 dims dropped and contiguous runs
// merged: dims[rank-1] is the innermost run, strides[k][d] the element step of input k
// along dim d (0 where it is broadcast).
template <int K>
struct BroadcastPlan {
  int rank = 1;
  int64_t numel = 0;
  int64_t dims[kMaxRank] = {};
  int64_t strides[K][kMaxRank] = {};

  // False when an input does not broadcast to `out` (the builder's inference rules that out).
  bool make(const TensorView& out, const TensorView* const* ins) {
    const int r = out.rank;
    if (r < 0 || r > kMaxRank) return false;
    int64_t full[K][kMaxRank] = {};
    for (int k = 0; k < K; ++k) {
      const TensorView& t = *ins[k];
      if (t.rank > r) return false;
      int64_t s = 1;
      for (int j = t.rank - 1; j >= 0; --j) {
        const int d = r - t.rank + j;
        if (t.dims[j] != out.dims[d] && t.dims[j] != 1) return false;
        full[k][d] = t.dims[j] == 1 ? 0 : s;
        s *= t.dims[j];
      }
    }
    numel = out.numel();
    rank = 0;
    for (int d = 0; d < r; ++d) {
      if (out.dims[d] == 1) continue;
      bool merge = rank > 0;
      for (int k = 0; k < K && merge; ++k) merge = strides[k][rank - 1] == full[k][d] * out.dims[d];
      if (merge) {
        dims[rank - 1] *= out.dims[d];
        for (int k = 0; k < K; ++k) strides[k][rank - 1] = full[k][d];
      } else {
        dims[rank] = out.dims[d];
        for (int k = 0; k < K; ++k) strides[k][rank] = full[k][d];
        ++rank;
      }
    }
    if (rank == 0) {
      rank = 1;
      dims[0] = 1;
      for (int k = 0; k < K; ++k) strides[k][0] = 0;
    }
    return true;
  }

  // Calls f(outIndex, off, len, step) for the runs covering output elements [begin, end):
  // off[k] is input k's element at outIndex, step[k] its step along the run.
  template <typename F>
  void forRuns(int64_t begin, int64_t end, F&& f) const {
    if (begin >= end) return;
    int64_t idx[kMaxRank], off[K] = {}, step[K];
    int64_t rem = begin;
    for (int d = rank - 1; d >= 0; --d) {
      idx[d] = rem % dims[d];
      rem /= dims[d];
    }
    for (int k = 0; k < K; ++k) {
      step[k] = strides[k][rank - 1];
      for (int d = 0; d < rank; ++d) off[k] += idx[d] * strides[k][d];
    }
    const int64_t inner = dims[rank - 1];
    int64_t pos = begin;
    while (pos < end) {
      const int64_t len = std::min(inner - idx[rank - 1], end - pos);
      f(pos, static_cast<const int64_t*>(off), len, static_cast<const int64_t*>(step));
      pos += len;
      if (pos >= end) break;
      // Move to the start of the next run: the innermost dim restarts at 0.
      for (int k = 0; k < K; ++k) off[k] -= idx[rank - 1] * strides[k][rank - 1];
      idx[rank - 1] = 0;
      for (int d = rank - 2; d >= 0; --d) {
        if (++idx[d] < dims[d]) {
          for (int k = 0; k < K; ++k) off[k] += strides[k][d];
          break;
        }
        for (int k = 0; k < K; ++k) off[k] -= strides[k][d] * (dims[d] - 1);
        idx[d] = 0;
      }
    }
  }
};

// dst[i] = src[sum_d idx_d * strides[d]] over the row-major elements i of `dims`, for
// elements of `elem` bytes (strides in elements, may be 0 or negative). Parallel over
// output ranges; a pure copy, so any split gives the same bytes.
void copyStrided(Executor* ex, size_t elem, int rank, const int64_t* dims, const int64_t* strides, const void* src,
                 void* dst);

// Element sizes the movement kernels copy: whole bytes, no strings.
inline bool plainBytes(DataType t) {
  return t != DataType::kString && t != DataType::kUndefined && ir::bitWidth(t) >= 8 && ir::bitWidth(t) % 8 == 0;
}
inline size_t elemBytes(DataType t) { return size_t(ir::bitWidth(t) / 8); }

// Static rank of input i at build (-1 when unknown).
inline int rankOf(const std::vector<ir::TensorType>& types, size_t i);

// A kernel that moves bytes of any element type (the movement and rearranging families).
inline Kernel byteKernel(const std::string& name, const std::string& op) {
  Kernel k;
  k.name = name;
  k.version = 1;
  k.op = op;
  k.precision = DataType::kUndefined;
  return k;
}
// Input 0 of whole bytes and known rank: what those kernels move.
inline bool movable(const std::vector<ir::TensorType>& t) {
  return !t.empty() && plainBytes(t[0].dtype) && rankOf(t, 0) >= 0;
}

// Static rank of input i at build (-1 when unknown).
inline int rankOf(const std::vector<ir::TensorType>& types, size_t i) {
  if (i >= types.size() || !types[i].shape.rankKnown()) return -1;
  return int(types[i].shape.rank());
}
inline bool hasType(const std::vector<ir::TensorType>& types, size_t i) {
  return i < types.size() && types[i].dtype != DataType::kUndefined;
}
// Whether output i of a node is used (an omitted optional output is null or unnamed).
inline bool outputUsed(const ir::Node& n, size_t i) {
  return i < n.numOutputs() && n.output(i) != nullptr && !n.output(i)->name().empty();
}

// Whether input i of a node is computed at run time (not an initializer). The native
// kernels of ops whose output extents follow an input's values (ConstantOfShape, Expand,
// Slice) serve computed shape inputs: the builder no longer times the reference kernel
// against them, and a candidate that refuses the random timing data is skipped.
constexpr bool kServeComputedShapeInputs = true;
inline bool computedInput(const ir::Node& n, size_t i) {
  return i < n.numInputs() && n.input(i) != nullptr && !n.input(i)->isInitializer();
}

inline int64_t normAxis(int64_t axis, int64_t rank) { return axis < 0 ? axis + rank : axis; }

// Element i of an integer view (i32 or i64; the kernels' supports() admit nothing else).
inline int64_t intAt(const TensorView& v, int64_t i) {
  return v.dtype == DataType::kI32 ? int64_t(v.as<const int32_t>()[i]) : v.as<const int64_t>()[i];
}

}  // namespace anvil::runtime::nops
