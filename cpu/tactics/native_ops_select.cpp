// Native ArgMax / ArgMin, TopK and CumSum on f32, i32 and i64 (the heads of classifiers
// and segmentation nets, detection post-processing, positions from masks). The
// reference's orders and rules (cpu/kernels/reduce.cpp): NaN above every number, ties to
// the lower index unless select_last_index, TopK's ties keep the lower index first and its
// output is always sorted (a heap of the K best (value, index) pairs over the row, then
// sorted), CumSum accumulates floats in double and integers in 64 bits
// along the axis: results equal the reference's exactly. Work is split over the positions
// outside the axis, each computed whole by one task.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "cpu/tactics/native_ops_util.h"

namespace anvil::runtime::nops {

namespace {

// a < b with NaN above every number (the reference's lessNaNLast).
template <typename T>
inline bool lessNaNLast(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
  }
  return a < b;
}

// [outer, n, inner] around an axis.
struct Around {
  int64_t outer = 1, n = 1, inner = 1;
};
Around around(const TensorView& x, int axis) {
  Around s;
  for (int i = 0; i < x.rank; ++i) (i < axis ? s.outer : i == axis ? s.n : s.inner) *= x.dims[i];
  return s;
}

bool selectType(DataType t) { return t == DataType::kF32 || t == DataType::kI32 || t == DataType::kI64; }

template <typename F>
void byType(const StepArgs& a, DataType t, F&& f) {
  switch (t) {
    case DataType::kF32: return f(float());
    case DataType::kI32: return f(int32_t());
    case DataType::kI64: return f(int64_t());
    default: a.fail("unsupported element type");
  }
}

struct AxisParams {
  int32_t axis = 0;
  int32_t flag = 0;  // ArgMax / ArgMin: select_last_index
  int32_t isMax = 0, reverse = 0;  // ArgMax (else ArgMin); CumSum: reverse
  int32_t exclusive = 0, reserved = 0;  // CumSum: exclusive
};

// ---- ArgMax / ArgMin --------------------------------------------------------------------

// One row k of a chunk against the best so far, without branches: v beats bv where
// lessNaNLast says so (NaN above every number), ties (equal, or both NaN) move the best
// to k only with select_last_index.
template <typename T>
[[gnu::always_inline]] inline void argRowBody(const T* __restrict row, int64_t len, int64_t k, bool isMax, bool last,
                                              int64_t* __restrict best, T* __restrict bestV) {
  for (int64_t c = 0; c < len; ++c) {
    const T v = row[c], bv = bestV[c];
    bool up, tie;
    if constexpr (std::is_floating_point_v<T>) {
      const bool nv = v != v, nb = bv != bv;
      up = isMax ? ((bv < v) | (!nb & nv)) : ((v < bv) | (!nv & nb));
      tie = (v == bv) | (nv & nb);
    } else {
      up = isMax ? bv < v : v < bv;
      tie = v == bv;
    }
    const bool take = up | (last & tie);
    best[c] = take ? k : best[c];
    bestV[c] = take ? v : bv;
  }
}
template <typename T>
void argRow(const T* row, int64_t len, int64_t k, bool isMax, bool last, int64_t* best, T* bestV) {
  argRowBody(row, len, k, isMax, last, best, bestV);
}
// The f32 rows in AVX2 where the host has it (GCC keeps the loop above scalar): 8 lanes of
// the same compares, the indices blended as two halves of four.
__attribute__((target("avx2"))) void argRowF32Avx2(const float* row, int64_t len, int64_t k, bool isMax, bool last,
                                                   int64_t* best, float* bestV) {
  const __m256i kk = _mm256_set1_epi64x(k);
  const __m256 lastMask = _mm256_castsi256_ps(_mm256_set1_epi32(last ? -1 : 0));
  int64_t c = 0;
  for (; c + 8 <= len; c += 8) {
    const __m256 v = _mm256_loadu_ps(row + c), bv = _mm256_loadu_ps(bestV + c);
    const __m256 nv = _mm256_cmp_ps(v, v, _CMP_UNORD_Q), nb = _mm256_cmp_ps(bv, bv, _CMP_UNORD_Q);
    const __m256 up = isMax ? _mm256_or_ps(_mm256_cmp_ps(bv, v, _CMP_LT_OQ), _mm256_andnot_ps(nb, nv))
                            : _mm256_or_ps(_mm256_cmp_ps(v, bv, _CMP_LT_OQ), _mm256_andnot_ps(nv, nb));
    const __m256 tie = _mm256_or_ps(_mm256_cmp_ps(v, bv, _CMP_EQ_OQ), _mm256_and_ps(nv, nb));
    const __m256 take = _mm256_or_ps(up, _mm256_and_ps(tie, lastMask));
    _mm256_storeu_ps(bestV + c, _mm256_blendv_ps(bv, v, take));
    const __m256i t = _mm256_castps_si256(take);
    const __m256i lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(t));
    const __m256i hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(t, 1));
    __m256i* b = reinterpret_cast<__m256i*>(best + c);
    _mm256_storeu_si256(b, _mm256_blendv_epi8(_mm256_loadu_si256(b), kk, lo));
    _mm256_storeu_si256(b + 1, _mm256_blendv_epi8(_mm256_loadu_si256(b + 1), kk, hi));
  }
  if (c < len) argRowBody(row + c, len - c, k, isMax, last, best + c, bestV + c);
}
template <>
void argRow<float>(const float* row, int64_t len, int64_t k, bool isMax, bool last, int64_t* best, float* bestV) {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) argRowF32Avx2(row, len, k, isMax, last, best, bestV);
  else argRowBody(row, len, k, isMax, last, best, bestV);
}

void argKernel(const StepArgs& a) {
  const AxisParams& p = a.paramsAs<AxisParams>();
  const TensorView& x = a.in(0);
  const Around s = around(x, p.axis);
  if (s.n == 0 && s.outer * s.inner > 0) a.fail("cannot take an arg-reduction over an empty axis");
  if (a.out(0).numel() != s.outer * s.inner) a.fail("the output's extents differ from the arg-reduction's");
  int64_t* out = a.out(0).as<int64_t>();
  const bool last = p.flag != 0, isMax = p.isMax != 0;
  byType(a, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* in = x.as<const T>();
    // Items: (outer block, chunk of up to kChunk inner positions), the chunk's best values
    // kept beside their indices (contiguous rows, no gather).
    constexpr int64_t kChunk = 2048;
    const int64_t chunks = (s.inner + kChunk - 1) / kChunk;
    parallelRange(a.executor, s.outer * chunks, std::max<int64_t>(1, 16384 / std::max<int64_t>(s.n * std::min(s.inner, kChunk), 1)),
                  [&](int64_t b, int64_t e) {
                    T bestV[kChunk];
                    for (int64_t item = b; item < e; ++item) {
                      const int64_t o = item / chunks, c0 = item % chunks * kChunk;
                      const int64_t len = std::min(kChunk, s.inner - c0);
                      const T* p0 = in + o * s.n * s.inner + c0;
                      int64_t* best = out + o * s.inner + c0;
                      std::fill_n(best, len, int64_t(0));
                      std::copy_n(p0, len, bestV);
                      for (int64_t k = 1; k < s.n; ++k) {
                        const T* row = p0 + k * s.inner;
                        argRow(row, len, k, isMax, last, best, bestV);
                      }
                    }
                  });
  });
}

// ---- TopK ----------------------------------------------------------------------------

struct TopKParams {
  int32_t axis = 0;
  int32_t largest = 1;
  int64_t maxN = 0;  // the axis' extent at the profile's max shapes (workspace per task)
};

void topKKernel(const StepArgs& a) {
  const TopKParams& p = a.paramsAs<TopKParams>();
  const TensorView& x = a.in(0);
  if (a.in(1).numel() != 1) a.fail("K must be a 1-D tensor with one element");
  const int64_t K = a.in(1).as<const int64_t>()[0];
  const Around s = around(x, p.axis);
  if (K < 0 || K > s.n) a.fail("K must be in [0, the axis' extent]");
  if (s.n > p.maxN) a.fail("the axis is longer than the profile's (outside the profile?)");
  if (a.out(0).numel() != s.outer * K * s.inner || a.out(1).numel() != s.outer * K * s.inner)
    a.fail("the outputs' extents differ from TopK's");
  const int64_t rows = s.outer * s.inner;
  const int64_t slots = int64_t(a.workspaceBytes / (uint64_t(std::max<int64_t>(p.maxN, 1)) * 16));
  const int64_t tasks = std::min<int64_t>({slots, a.executor ? a.executor->threads() : 1, rows});
  if (tasks < 1 && rows > 0) a.fail("the workspace is smaller than prepared");
  int64_t* oi = a.out(1).as<int64_t>();
  const bool largest = p.largest != 0;
  byType(a, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* in = x.as<const T>();
    T* ov = a.out(0).as<T>();
    struct Entry {
      T v;
      int64_t i;
    };
    static_assert(sizeof(Entry) <= 16, "a TopK entry takes 16 bytes of workspace");
    auto body = [&](int64_t t) {
      Entry* e = reinterpret_cast<Entry*>(static_cast<char*>(a.workspace) + t * std::max<int64_t>(p.maxN, 1) * 16);
      // The stable order's first K: value order, ties to the lower index (a strict total order).
      auto before = [&](const Entry& x, const Entry& y) {
        const bool ahead = largest ? lessNaNLast(y.v, x.v) : lessNaNLast(x.v, y.v);
        const bool behind = largest ? lessNaNLast(x.v, y.v) : lessNaNLast(y.v, x.v);
        return ahead || (!behind && x.i < y.i);
      };
      for (int64_t r = rows * t / tasks; r < rows * (t + 1) / tasks; ++r) {
        const int64_t o = r / s.inner, c = r % s.inner;
        const T* row = in + o * s.n * s.inner + c;
        // A heap of the K best so far, its root the one that comes last: most elements of a
        // long row lose to the root in one comparison.
        int64_t h = 0;
        for (int64_t i = 0; i < s.n && K > 0; ++i) {
          const T v = row[i * s.inner];
          // Once the heap is full, most elements lose to its root on one comparison: a value
          // strictly worse than the root's (NaN never is) cannot enter.
          if (h == K && (largest ? v < e[0].v : e[0].v < v)) continue;
          const Entry x{v, i};
          if (h < K) {
            e[h++] = x;
            std::push_heap(e, e + h, before);
          } else if (before(x, e[0])) {
            std::pop_heap(e, e + h, before);
            e[h - 1] = x;
            std::push_heap(e, e + h, before);
          }
        }
        std::sort_heap(e, e + h, before);
        for (int64_t k = 0; k < K; ++k) {
          const int64_t at = (o * K + k) * s.inner + c;
          ov[at] = e[k].v;
          oi[at] = e[k].i;
        }
      }
    };
    if (tasks <= 1) body(0);
    else a.executor->parallelFor(tasks, body);
  });
}

// ---- CumSum --------------------------------------------------------------------------

void cumSumKernel(const StepArgs& a) {
  const AxisParams& p = a.paramsAs<AxisParams>();
  const TensorView& x = a.in(0);
  if (a.in(1).numel() != 1) a.fail("axis must be a scalar");
  const int64_t ax = normAxis(intAt(a.in(1), 0), x.rank);
  if (ax < 0 || ax >= x.rank) a.fail("axis out of range");
  const Around s = around(x, int(ax));
  const bool reverse = p.reverse != 0, exclusive = p.exclusive != 0;
  byType(a, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
    const T* in = x.as<const T>();
    T* out = a.out(0).as<T>();
    parallelRange(a.executor, s.outer * s.inner, std::max<int64_t>(1, 16384 / std::max<int64_t>(s.n, 1)),
                  [&](int64_t b, int64_t e) {
                    for (int64_t r = b; r < e; ++r) {
                      const int64_t base = (r / s.inner) * s.n * s.inner + r % s.inner;
                      A acc = 0;
                      for (int64_t j = 0; j < s.n; ++j) {
                        const int64_t at = base + (reverse ? s.n - 1 - j : j) * s.inner;
                        const A v = A(in[at]);
                        if (exclusive) {
                          out[at] = T(acc);
                          acc = A(acc + v);
                        } else {
                          acc = A(acc + v);
                          out[at] = T(acc);
                        }
                      }
                    }
                  });
  });
}

Kernel base(const std::string& name, const std::string& op) {
  Kernel k;
  k.name = name;
  k.version = 1;
  k.op = op;
  k.precision = DataType::kUndefined;  // f32, i32 and i64 alike
  return k;
}

int axisOf(const ir::Node& n, const std::vector<ir::TensorType>& t, int64_t dflt) {
  return int(normAxis(n.attrs().getInt("axis", dflt), rankOf(t, 0)));
}

}  // namespace

void registerSelect(Kernels& k) {
  for (bool isMax : {true, false}) {
    Kernel g = base(isMax ? "x_argmax_rows" : "x_argmin_rows", isMax ? "ArgMax" : "ArgMin");
    g.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& t) {
      const int r = rankOf(t, 0);
      const int axis = r >= 1 ? axisOf(n, t, 0) : -1;
      return r >= 1 && selectType(t[0].dtype) && axis >= 0 && axis < r;
    };
    g.prepare = [isMax](const PrepareInfo& info, Prepared* out) {
      AxisParams p;
      p.axis = axisOf(*info.node, info.maxTypes, 0);
      p.flag = info.node->attrs().getInt("select_last_index", 0) != 0;
      p.isMax = isMax;
      out->setParams(p);
    };
    g.run = argKernel;
    k.add(std::move(g));
  }

  Kernel tk = base("x_topk_partial_sort", "TopK");
  tk.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& t) {
    const int r = rankOf(t, 0);
    if (r < 1 || t.size() != 2 || !selectType(t[0].dtype) || t[1].dtype != DataType::kI64) return false;
    const int axis = axisOf(n, t, -1);
    return axis >= 0 && axis < r && t[0].shape[size_t(axis)].isStatic();
  };
  tk.prepare = [](const PrepareInfo& info, Prepared* out) {
    TopKParams p;
    p.axis = axisOf(*info.node, info.maxTypes, -1);
    p.largest = info.node->attrs().getInt("largest", 1) != 0;
    p.maxN = info.maxTypes[0].shape[size_t(p.axis)].value();
    out->workspaceBytes = uint64_t(std::max(1, info.threads)) * uint64_t(std::max<int64_t>(p.maxN, 1)) * 16;
    out->setParams(p);
  };
  tk.run = topKKernel;
  k.add(std::move(tk));

  Kernel cs = base("x_cumsum_rows", "CumSum");
  cs.supports = [](const ir::Node&, const std::vector<ir::TensorType>& t) {
    return t.size() == 2 && rankOf(t, 0) >= 1 && selectType(t[0].dtype) &&
           (t[1].dtype == DataType::kI32 || t[1].dtype == DataType::kI64);
  };
  cs.prepare = [](const PrepareInfo& info, Prepared* out) {
    AxisParams p;
    p.reverse = info.node->attrs().getInt("reverse", 0) != 0;
    p.exclusive = info.node->attrs().getInt("exclusive", 0) != 0;
    out->setParams(p);
  };
  cs.run = cumSumKernel;
  k.add(std::move(cs));
}

}  // namespace anvil::runtime::nops
