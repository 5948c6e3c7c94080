// Helpers shared by the reduce family's reference kernels (cpu/kernels/reduce*.cpp):
// element conversions through double, axis handling, outer/axis/inner splits.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels::reduce {

template <typename T>
inline constexpr bool kIsNarrowFloat = std::is_same_v<T, ir::Half> || std::is_same_v<T, ir::BFloat16>;

template <typename T>
inline constexpr bool kIsFloat = kIsNarrowFloat<T> || std::is_floating_point_v<T>;

template <typename T>
double toD(T v) {
  if constexpr (kIsNarrowFloat<T>) return double(float(v));
  else return double(v);
}

// double -> T: rounds for floats; integers truncate toward zero and saturate, NaN -> 0.
template <typename T>
T fromD(double v) {
  if constexpr (kIsNarrowFloat<T>) {
    return T(float(v));
  } else if constexpr (std::is_same_v<T, bool>) {
    return v != 0;
  } else if constexpr (std::is_integral_v<T>) {
    if (std::isnan(v)) return T(0);
    if (v <= double(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
    if (v >= double(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(v);
  } else {
    return static_cast<T>(v);
  }
}

// Normalizes one axis against rank, failing with the node's label.
inline int64_t axisOf(const KernelContext& ctx, int64_t axis, int64_t rank, const char* what = "axis") {
  if (axis < -rank || axis >= rank)
    ctx.fail(std::string(what) + " " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

// outer * axis * inner split of dims at `axis`.
struct Split {
  int64_t outer = 1, n = 1, inner = 1;
};
inline Split splitAt(const std::vector<int64_t>& dims, int64_t axis) {
  Split s;
  for (int64_t i = 0; i < int64_t(dims.size()); ++i) {
    if (i < axis) s.outer *= dims[size_t(i)];
    else if (i == axis) s.n = dims[size_t(i)];
    else s.inner *= dims[size_t(i)];
  }
  return s;
}

// Reads a float-typed tensor (any float dtype) as doubles.
inline std::vector<double> toDoubles(const Tensor& t) {
  std::vector<double> v(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[size_t(i)] = t.getDouble(i);
  return v;
}

// For a reduction over `reduced` axes (flags per dim) of `dims`: the output index of
// every input element, in row-major input order.
inline std::vector<int64_t> reductionIndex(const std::vector<int64_t>& dims, const std::vector<bool>& reduced,
                                           int64_t* outCount) {
  const size_t r = dims.size();
  std::vector<int64_t> outStride(r, 0);
  int64_t s = 1;
  for (int64_t i = int64_t(r) - 1; i >= 0; --i) {
    if (reduced[size_t(i)]) continue;
    outStride[size_t(i)] = s;
    s *= dims[size_t(i)];
  }
  *outCount = s;
  int64_t n = ir::numelOf(dims);
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::vector<int64_t> pos(r, 0);
  int64_t off = 0;
  for (int64_t k = 0; k < n; ++k) {
    idx[size_t(k)] = off;
    for (int64_t d = int64_t(r) - 1; d >= 0; --d) {
      if (++pos[size_t(d)] < dims[size_t(d)]) {
        off += outStride[size_t(d)];
        break;
      }
      off -= outStride[size_t(d)] * (dims[size_t(d)] - 1);
      pos[size_t(d)] = 0;
    }
  }
  return idx;
}

// Kernels in cpu/kernels/reduce_norm.cpp and reduce_misc.cpp.
void registerNormKernels(KernelRegistry& r);
void registerMiscKernels(KernelRegistry& r);

}  // namespace anvil::cpu::kernels::reduce
