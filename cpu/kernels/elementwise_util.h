// Helpers of the elementwise reference kernels (cpu/kernels/elementwise*.cpp): an
// allocation-free N-ary broadcast walk, wrapping integer arithmetic (numpy semantics,
// no signed-overflow UB), and the registration entry points of the family's files.
#pragma once

#include <array>
#include <cmath>
#include <type_traits>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/kernels/util.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels::ew {

void registerArithmetic(KernelRegistry& r);  // elementwise.cpp
void registerMath(KernelRegistry& r);        // elementwise_math.cpp
void registerCast(KernelRegistry& r);        // elementwise_cast.cpp

// Extents of the numpy broadcast of the given tensors; fails naming the node.
inline std::vector<int64_t> broadcastDims(const KernelContext& ctx, const std::vector<const Tensor*>& ins) {
  std::vector<int64_t> dims;
  bool first = true;
  for (const Tensor* t : ins) {
    try {
      dims = first ? t->dims() : ir::broadcastExtents(dims, t->dims());
    } catch (const Error& e) {
      ctx.fail(e.what());
    }
    first = false;
  }
  return dims;
}

// Calls f(i, off) for every element i of `out` in row-major order, off[k] being the
// element of input k (extents ins[k], numpy-broadcast to `out`). O(1) amortized per element.
template <size_t K, typename F>
void forEachBroadcast(const std::vector<int64_t>& out, const std::array<const std::vector<int64_t>*, K>& ins, F&& f) {
  const int64_t n = ir::numelOf(out);
  if (n == 0) return;
  std::array<int64_t, K> off{};
  bool same = true;
  for (size_t k = 0; k < K; ++k) same = same && *ins[k] == out;
  if (same) {
    for (int64_t i = 0; i < n; ++i) {
      off.fill(i);
      f(i, off);
    }
    return;
  }
  const size_t r = out.size();
  if (r == 0) {
    f(0, off);
    return;
  }
  // st[d][k]: step of input k along output dim d (0 where the input is broadcast).
  std::vector<std::array<int64_t, K>> st(r, std::array<int64_t, K>{});
  for (size_t k = 0; k < K; ++k) {
    const std::vector<int64_t>& in = *ins[k];
    const std::vector<int64_t> s = stridesOf(in);
    for (size_t j = 0; j < in.size(); ++j) st[r - in.size() + j][k] = in[j] == 1 ? 0 : s[j];
  }
  const int64_t inner = out[r - 1];
  std::vector<int64_t> pos(r, 0);
  std::array<int64_t, K> base{};
  for (int64_t o = 0; o < n; o += inner) {
    std::array<int64_t, K> cur = base;
    for (int64_t j = 0; j < inner; ++j) {
      f(o + j, cur);
      for (size_t k = 0; k < K; ++k) cur[k] += st[r - 1][k];
    }
    for (int64_t d = int64_t(r) - 2; d >= 0; --d) {
      if (++pos[size_t(d)] < out[size_t(d)]) {
        for (size_t k = 0; k < K; ++k) base[k] += st[size_t(d)][k];
        break;
      }
      for (size_t k = 0; k < K; ++k) base[k] -= st[size_t(d)][k] * (out[size_t(d)] - 1);
      pos[size_t(d)] = 0;
    }
  }
}

// z = f(x, y) with broadcasting; inputs of element types A and B, output of type O.
template <typename A, typename B, typename O, typename F>
void binaryMap(KernelContext& ctx, DataType outType, F&& f) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  std::vector<int64_t> dims = broadcastDims(ctx, {&a, &b});
  Tensor& o = ctx.allocOutput(0, outType, dims);
  const A* x = a.data<A>();
  const B* y = b.data<B>();
  O* z = o.data<O>();
  const int64_t n = o.numel();
  // Plain loops for the common cases: equal shapes, or one side a single element.
  const bool fullA = a.dims() == dims, fullB = b.dims() == dims;
  if (fullA && fullB) {
    for (int64_t i = 0; i < n; ++i) z[i] = f(x[i], y[i]);
    return;
  }
  if (fullA && b.numel() == 1) {
    const B s = y[0];
    for (int64_t i = 0; i < n; ++i) z[i] = f(x[i], s);
    return;
  }
  if (fullB && a.numel() == 1) {
    const A s = x[0];
    for (int64_t i = 0; i < n; ++i) z[i] = f(s, y[i]);
    return;
  }
  forEachBroadcast<2>(dims, {&a.dims(), &b.dims()},
                      [&](int64_t i, const std::array<int64_t, 2>& off) { z[i] = f(x[off[0]], y[off[1]]); });
}

// Integer arithmetic that wraps like numpy instead of overflowing (UB) in C++: done in
// the unsigned type the operands promote to.
template <typename T>
using Wide = std::make_unsigned_t<decltype(+T())>;
template <typename T>
T addW(T a, T b) {
  if constexpr (std::is_integral_v<T>) return T(Wide<T>(a) + Wide<T>(b));
  else return T(ComputeT<T>(a) + ComputeT<T>(b));
}
template <typename T>
T subW(T a, T b) {
  if constexpr (std::is_integral_v<T>) return T(Wide<T>(a) - Wide<T>(b));
  else return T(ComputeT<T>(a) - ComputeT<T>(b));
}
template <typename T>
T mulW(T a, T b) {
  if constexpr (std::is_integral_v<T>) return T(Wide<T>(a) * Wide<T>(b));
  else return T(ComputeT<T>(a) * ComputeT<T>(b));
}
template <typename T>
T negW(T a) {
  if constexpr (std::is_integral_v<T>) return T(Wide<T>(0) - Wide<T>(a));
  else return T(-ComputeT<T>(a));
}

// A double converted to an integer type: truncated toward zero, NaN -> 0, saturated to
// int64 and then wrapped to T (numpy's astype for in-range values; defined for all).
template <typename T>
T doubleToInt(double v) {
  if (std::isnan(v)) return T(0);
  v = std::trunc(v);
  if constexpr (std::is_same_v<T, uint64_t>) {
    if (v >= 9223372036854775808.0) return v >= 18446744073709551616.0 ? ~uint64_t(0) : uint64_t(v);
  }
  if (v >= 9223372036854775807.0) return T(INT64_MAX);
  if (v <= -9223372036854775808.0) return T(INT64_MIN);
  return T(int64_t(v));
}

}  // namespace anvil::cpu::kernels::ew
