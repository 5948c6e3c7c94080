// Native normalization and reduction kernels on f32: Softmax / LogSoftmax over any axis,
// LayerNormalization (Y only) over the trailing dims from its axis, InstanceNormalization
// and GroupNormalization (per-channel scale and bias), BatchNormalization in inference
// mode, the ten Reduce* ops over any axes. All accumulate in double with the reference's
// order and formulas (cpu/kernels/reduce.cpp, reduce_norm.cpp), so their outputs equal the
// reference's bit for bit (the timed `_f32acc` / `_dpart__avx2` variants excepted); a row (or a column, for an inner softmax
// axis; an output element, for the reductions) is one task's, so threads never change a
// result.
#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstring>
#include <limits>

#include "cpu/tactics/native_ops_util.h"

// GCC 12's -O2 vectorizes a loop only when no scalar remainder is left (its "very cheap"
// cost model); the loops here run over arbitrary extents, so this file asks for the
// dynamic model (per-element IEEE operations: results do not change).
#pragma GCC optimize("vect-cost-model=dynamic")

namespace anvil::runtime::nops {

namespace {

// ---- Softmax -------------------------------------------------------------------------

struct SoftmaxParams {
  int32_t axis = 0;
  int32_t log = 0;
};

void softmaxKernel(const StepArgs& a) {
  const SoftmaxParams& p = a.paramsAs<SoftmaxParams>();
  const TensorView& x = a.in(0);
  int64_t outer = 1, n = x.dims[p.axis], inner = 1;
  for (int i = 0; i < p.axis; ++i) outer *= x.dims[i];
  for (int i = p.axis + 1; i < x.rank; ++i) inner *= x.dims[i];
  const float* xp = x.as<const float>();
  float* yp = a.out(0).as<float>();
  const bool log = p.log != 0;
  parallelRange(a.executor, outer * inner, std::max<int64_t>(1, 2048 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    for (int64_t col = b; col < e; ++col) {
      const int64_t base = (col / inner) * n * inner + col % inner;
      const float* v = xp + base;
      float* y = yp + base;
      double m = 0;
      for (int64_t k = 0; k < n; ++k)
        if (k == 0 || double(v[k * inner]) > m) m = double(v[k * inner]);  // first max, as the reference
      double sum = 0;
      for (int64_t k = 0; k < n; ++k) sum += std::exp(double(v[k * inner]) - m);
      if (log) {
        const double logSum = std::log(sum);
        for (int64_t k = 0; k < n; ++k) y[k * inner] = float(double(v[k * inner]) - m - logSum);
      } else {
        for (int64_t k = 0; k < n; ++k) y[k * inner] = float(std::exp(double(v[k * inner]) - m) / sum);
      }
    }
  });
}

// ---- LayerNormalization --------------------------------------------------------------

struct LayerNormParams {
  int32_t axis = 0;
  int32_t hasBias = 0;
  double eps = 0;
};

void layerNormKernel(const StepArgs& a) {
  const LayerNormParams& p = a.paramsAs<LayerNormParams>();
  const TensorView& x = a.in(0);
  int64_t rows = 1, cols = 1;
  for (int i = 0; i < x.rank; ++i) (i < p.axis ? rows : cols) *= x.dims[i];
  if (a.in(1).numel() != cols || (p.hasBias && a.in(2).numel() != cols)) a.fail("Scale and B must cover the normalized dims");
  const float* xp = x.as<const float>();
  const float* scale = a.in(1).as<const float>();
  const float* bias = p.hasBias ? a.in(2).as<const float>() : nullptr;
  float* yp = a.out(0).as<float>();
  const double eps = p.eps;
  parallelRange(a.executor, rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(cols, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* v = xp + r * cols;
      float* y = yp + r * cols;
      double sum = 0, sq = 0;
      for (int64_t k = 0; k < cols; ++k) sum += double(v[k]);
      const double m = cols ? sum / double(cols) : 0;
      for (int64_t k = 0; k < cols; ++k) {
        const double dv = double(v[k]) - m;
        sq += dv * dv;
      }
      const double is = 1.0 / std::sqrt((cols ? sq / double(cols) : 0) + eps);
      if (bias) {
        for (int64_t k = 0; k < cols; ++k) y[k] = float((double(v[k]) - m) * is * double(scale[k]) + double(bias[k]));
      } else {
        for (int64_t k = 0; k < cols; ++k) y[k] = float((double(v[k]) - m) * is * double(scale[k]));
      }
    }
  });
}

// The same normalization in float with eight partial sums per pass (vectorized; a fixed
// order, so independent of threads): within 2e-6 of the output range of the
// double-accumulating reference (the test's bound), about 2x faster on bert's 64-wide rows.
inline float sum8(const float* __restrict v, int64_t n, float m, bool centered) {
  float part[8] = {};
  int64_t i = 0;
  if (centered) {
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; ++j) part[j] += (v[i + j] - m) * (v[i + j] - m);
  } else {
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; ++j) part[j] += v[i + j];
  }
  float s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
  for (; i < n; ++i) s += centered ? (v[i] - m) * (v[i] - m) : v[i];
  return s;
}

void layerNormF32Kernel(const StepArgs& a) {
  const LayerNormParams& p = a.paramsAs<LayerNormParams>();
  const TensorView& x = a.in(0);
  int64_t rows = 1, cols = 1;
  for (int i = 0; i < x.rank; ++i) (i < p.axis ? rows : cols) *= x.dims[i];
  if (a.in(1).numel() != cols || (p.hasBias && a.in(2).numel() != cols)) a.fail("Scale and B must cover the normalized dims");
  const float* xp = x.as<const float>();
  const float* scale = a.in(1).as<const float>();
  const float* bias = p.hasBias ? a.in(2).as<const float>() : nullptr;
  float* yp = a.out(0).as<float>();
  const float eps = float(p.eps);
  parallelRange(a.executor, rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(cols, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* __restrict v = xp + r * cols;
      float* __restrict y = yp + r * cols;
      const float m = cols ? sum8(v, cols, 0.f, false) / float(cols) : 0.f;
      const float var = cols ? sum8(v, cols, m, true) / float(cols) : 0.f;
      const float is = 1.f / std::sqrt(var + eps);
      if (bias) {
        for (int64_t k = 0; k < cols; ++k) y[k] = (v[k] - m) * is * scale[k] + bias[k];
      } else {
        for (int64_t k = 0; k < cols; ++k) y[k] = (v[k] - m) * is * scale[k];
      }
    }
  });
}

// ---- InstanceNormalization / GroupNormalization ------------------------------------

struct GroupNormParams {
  int64_t groups = 0;  // 0: InstanceNormalization (a group per channel)
  double eps = 0;
};

// InstanceNormalization's and GroupNormalization's kernels compute in double with the
// reference's sums and formulas (InstanceNormalization: (x - m) * (scale / sd) + bias;
// GroupNormalization: (x - m) / sd * scale + bias), bitwise; the `_dpart__avx2` variants
// (timed against them) sum in 8 double partial sums and write x f + c in float.

// The two sums of a group: in the reference's order (Parts = 1: one sequential chain of
// double adds, bitwise the reference) or in 8 double partial sums (vectorized; the
// kernels' `_dpart` variants, which also write y = x f + c in float).
template <int Parts>
inline double sumOf(const float* __restrict v, int64_t n, double m, bool centered) {
  if constexpr (Parts == 1) {
    double s = 0;
    if (centered) {
      for (int64_t k = 0; k < n; ++k) {
        const double dv = double(v[k]) - m;
        s += dv * dv;
      }
    } else {
      for (int64_t k = 0; k < n; ++k) s += double(v[k]);
    }
    return s;
  } else {
    double part[Parts] = {};
    int64_t k = 0;
    if (centered) {
      for (; k + Parts <= n; k += Parts)
        for (int j = 0; j < Parts; ++j) {
          const double dv = double(v[k + j]) - m;
          part[j] += dv * dv;
        }
    } else {
      for (; k + Parts <= n; k += Parts)
        for (int j = 0; j < Parts; ++j) part[j] += double(v[k + j]);
    }
    double s = 0;
    for (int j = 0; j < Parts; ++j) s += part[j];
    for (; k < n; ++k) {
      const double dv = centered ? double(v[k]) - m : double(v[k]);
      s += centered ? dv * dv : dv;
    }
    return s;
  }
}

// One (image, group): v and y its cpg channels' planes of S elements; scale and bias from
// the group's first channel.
template <int Parts>
[[gnu::always_inline]] inline void normGroup(const float* __restrict v, float* __restrict y, int64_t S, int64_t cpg,
                                             const float* scale, const float* bias, double eps, bool instance) {
  const int64_t len = cpg * S;
  const double m = len ? sumOf<Parts>(v, len, 0.0, false) / double(len) : 0;
  const double var = len ? sumOf<Parts>(v, len, m, true) / double(len) : 0;
  for (int64_t c = 0; c < cpg; ++c) {
    const double sc = double(scale[c]), bi = double(bias[c]);
    const float* vc = v + c * S;
    float* yc = y + c * S;
    if (Parts > 1) {
      // y = x f + (bias - m f) in float (vectorized): within ~1 ulp of the output's
      // magnitude where the reference rounds once.
      const double f = instance ? sc / std::sqrt(var + eps) : 1.0 / std::sqrt(var + eps) * sc;
      const float ff = float(f), cf = float(bi - m * f);
      for (int64_t k = 0; k < S; ++k) yc[k] = vc[k] * ff + cf;
    } else if (instance) {
      const double f = sc / std::sqrt(var + eps);
      for (int64_t k = 0; k < S; ++k) yc[k] = float((double(vc[k]) - m) * f + bi);
    } else {
      const double is = 1.0 / std::sqrt(var + eps);
      for (int64_t k = 0; k < S; ++k) yc[k] = float((double(vc[k]) - m) * is * sc + bi);
    }
  }
}
void normGroupRef(const float* v, float* y, int64_t S, int64_t cpg, const float* scale, const float* bias, double eps,
                  bool instance) {
  normGroup<1>(v, y, S, cpg, scale, bias, eps, instance);
}
// Four doubles a vector: the AVX2 build of the partial sums (the baseline's SSE2 has two).
__attribute__((target("avx2,fma"))) void normGroupPartsAvx2(const float* v, float* y, int64_t S, int64_t cpg,
                                                            const float* scale, const float* bias, double eps,
                                                            bool instance) {
  normGroup<8>(v, y, S, cpg, scale, bias, eps, instance);
}

// X [N, C, spatial...]: each (image, group of C / groups channels) normalized over its
// channels' planes, then scale[c] and bias[c]; one group per task at a time.
template <bool Dpart>
void groupNormKernel(const StepArgs& a) {
  const GroupNormParams& p = a.paramsAs<GroupNormParams>();
  const TensorView& x = a.in(0);
  if (x.rank < 2) a.fail("X must be [N, C, ...]");
  const int64_t N = x.dims[0], C = x.dims[1];
  int64_t S = 1;
  for (int i = 2; i < x.rank; ++i) S *= x.dims[i];
  const int64_t G = p.groups ? p.groups : C;
  if (G < 1 || C % G != 0) a.fail("num_groups must divide the channels");
  if (a.in(1).numel() != C || a.in(2).numel() != C) a.fail("scale and bias must have one value per channel");
  const int64_t cpg = C / G, len = cpg * S;
  const float* xp = x.as<const float>();
  const float* scale = a.in(1).as<const float>();
  const float* bias = a.in(2).as<const float>();
  float* yp = a.out(0).as<float>();
  const bool instance = p.groups == 0;
  const auto group = Dpart ? normGroupPartsAvx2 : normGroupRef;
  parallelRange(a.executor, N * G, std::max<int64_t>(1, 4096 / std::max<int64_t>(len, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t c0 = (r % G) * cpg;
      group(xp + r * len, yp + r * len, S, cpg, scale + c0, bias + c0, p.eps, instance);
    }
  });
}

// Whether a parameter of type `t` covers exactly the dims of X from `axis` (leading 1s
// allowed): then its element k is the k-th of a row.
bool coversTrailing(const ir::TensorType& t, const ir::TensorType& x, int axis) {
  if (t.dtype != DataType::kF32 || !t.shape.isStatic() || !x.shape.isStatic()) return false;
  const std::vector<int64_t> pe = t.shape.extents(), xe = x.shape.extents();
  const size_t trailing = xe.size() - size_t(axis);
  if (pe.size() > xe.size()) return false;
  for (size_t i = 0; i < pe.size(); ++i) {
    const size_t fromEnd = pe.size() - i;  // 1 = last
    if (fromEnd > trailing) {
      if (pe[i] != 1) return false;
    } else if (pe[i] != xe[xe.size() - fromEnd]) {
      return false;
    }
  }
  int64_t n = 1, c = 1;
  for (int64_t d : pe) n *= d;
  for (size_t i = size_t(axis); i < xe.size(); ++i) c *= xe[i];
  return n == c;
}

// ---- BatchNormalization (inference) ---------------------------------------------------

struct BatchNormParams {
  double eps = 0;
};

void batchNormKernel(const StepArgs& a) {
  const TensorView& x = a.in(0);
  const int64_t N = x.dims[0], C = x.dims[1];
  int64_t S = 1;
  for (int i = 2; i < x.rank; ++i) S *= x.dims[i];
  for (int i = 1; i <= 4; ++i)
    if (a.in(i).numel() != C) a.fail("scale, B, mean and var must have one element per channel");
  const float* scale = a.in(1).as<const float>();
  const float* bias = a.in(2).as<const float>();
  const float* mean = a.in(3).as<const float>();
  const float* var = a.in(4).as<const float>();
  const float* xp = x.as<const float>();
  float* yp = a.out(0).as<float>();
  const double eps = a.paramsAs<BatchNormParams>().eps;
  parallelRange(a.executor, N * C, std::max<int64_t>(1, 8192 / std::max<int64_t>(S, 1)), [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t c = nc % C;
      const double k = double(scale[c]) / std::sqrt(double(var[c]) + eps);
      const double m = double(mean[c]), bb = double(bias[c]);
      const float* __restrict v = xp + nc * S;
      float* __restrict y = yp + nc * S;
      for (int64_t i = 0; i < S; ++i) y[i] = float((double(v[i]) - m) * k + bb);
    }
  });
}

// ---- Reduce* ----------------------------------------------------------------------------

// The reference's reductions (cpu/kernels/reduce.cpp), each in double over the reduced
// elements in increasing input order; Max / Min let NaN through as it does.
enum class Red : int32_t { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

struct ReduceParams {
  Red kind = Red::kSum;
  int32_t noopWithEmptyAxes = 0;
};

// Calls f(off) for the reduced elements of output o, in increasing input order.
struct ReducePlan {
  int64_t keptDims[kMaxRank], keptStride[kMaxRank], redDims[kMaxRank], redStride[kMaxRank];
  int nk = 0, nr = 0;
  int64_t count = 1;
  template <typename F>
  void forEach(int64_t o, F&& f) const {
    int64_t base = 0, rem = o;
    for (int k = 0; k < nk; ++k) {
      base += (rem % keptDims[k]) * keptStride[k];
      rem /= keptDims[k];
    }
    int64_t idx[kMaxRank] = {};
    const int64_t inner = nr ? redDims[0] : 1, innerStride = nr ? redStride[0] : 1;
    for (int64_t done = 0; done < count; done += inner) {
      int64_t off = base;
      for (int k = 1; k < nr; ++k) off += idx[k] * redStride[k];
      for (int64_t i = 0; i < inner; ++i) f(off + i * innerStride);
      for (int k = 1; k < nr; ++k) {
        if (++idx[k] < redDims[k]) break;
        idx[k] = 0;
      }
    }
  }
};

template <Red K>
float reduceOne(const ReducePlan& pl, const float* xp, int64_t o) {
  const double inf = std::numeric_limits<double>::infinity();
  double acc = K == Red::kProd ? 1.0 : K == Red::kMax || K == Red::kLogSumExp ? -inf : K == Red::kMin ? inf : 0.0;
  pl.forEach(o, [&](int64_t off) {
    const double v = double(xp[off]);
    if constexpr (K == Red::kSum || K == Red::kMean || K == Red::kLogSum) acc += v;
    else if constexpr (K == Red::kProd) acc *= v;
    else if constexpr (K == Red::kL1) acc += std::fabs(v);
    else if constexpr (K == Red::kL2 || K == Red::kSumSquare) acc += v * v;
    else if constexpr (K == Red::kMax || K == Red::kLogSumExp) {
      if (v > acc || std::isnan(v)) acc = v;
    } else if constexpr (K == Red::kMin) {
      if (v < acc || std::isnan(v)) acc = v;
    }
  });
  if constexpr (K == Red::kLogSumExp) {
    const double m = acc;
    if (!std::isfinite(m)) return float(m);
    double sum = 0;
    pl.forEach(o, [&](int64_t off) { sum += std::exp(double(xp[off]) - m); });
    acc = m + std::log(sum);
  }
  if constexpr (K == Red::kMean) acc = acc / double(pl.count);
  if constexpr (K == Red::kL2) acc = std::sqrt(acc);
  if constexpr (K == Red::kLogSum) acc = std::log(acc);
  return float(acc);
}

// The same reductions where the reduced axes are one run with kept axes after it
// (channels of an NCHW tensor): X as [outer, red, inner], an output row of `len` inner
// positions accumulated side by side, the reduced elements of each still in increasing
// input order (contiguous loads instead of a stride of inner per element).
template <Red K>
void reduceRows(const float* x, int64_t red, int64_t inner, int64_t len, float* y) {
  constexpr int64_t kChunk = 1024;
  double acc[kChunk], sum[kChunk];
  const double inf = std::numeric_limits<double>::infinity();
  const double init = K == Red::kProd ? 1.0 : K == Red::kMax || K == Red::kLogSumExp ? -inf : K == Red::kMin ? inf : 0.0;
  for (int64_t c0 = 0; c0 < len; c0 += kChunk) {
    const int64_t n = std::min(kChunk, len - c0);
    std::fill_n(acc, n, init);
    for (int64_t k = 0; k < red; ++k) {
      const float* row = x + k * inner + c0;
      for (int64_t c = 0; c < n; ++c) {
        const double v = double(row[c]);
        if constexpr (K == Red::kSum || K == Red::kMean || K == Red::kLogSum) acc[c] += v;
        else if constexpr (K == Red::kProd) acc[c] *= v;
        else if constexpr (K == Red::kL1) acc[c] += std::fabs(v);
        else if constexpr (K == Red::kL2 || K == Red::kSumSquare) acc[c] += v * v;
        else if constexpr (K == Red::kMax || K == Red::kLogSumExp) acc[c] = (v > acc[c] || v != v) ? v : acc[c];
        else if constexpr (K == Red::kMin) acc[c] = (v < acc[c] || v != v) ? v : acc[c];
      }
    }
    if constexpr (K == Red::kLogSumExp) {
      std::fill_n(sum, n, 0.0);
      for (int64_t k = 0; k < red; ++k) {
        const float* row = x + k * inner + c0;
        for (int64_t c = 0; c < n; ++c)
          if (std::isfinite(acc[c])) sum[c] += std::exp(double(row[c]) - acc[c]);
      }
    }
    for (int64_t c = 0; c < n; ++c) {
      double a = acc[c];
      if constexpr (K == Red::kLogSumExp) a = std::isfinite(a) ? a + std::log(sum[c]) : a;
      if constexpr (K == Red::kMean) a = a / double(red);
      if constexpr (K == Red::kL2) a = std::sqrt(a);
      if constexpr (K == Red::kLogSum) a = std::log(a);
      y[c0 + c] = float(a);
    }
  }
}

using ReduceRowsFn = void (*)(const float*, int64_t, int64_t, int64_t, float*);
ReduceRowsFn reduceRowsFn(Red k) {
  switch (k) {
    case Red::kSum: return reduceRows<Red::kSum>;
    case Red::kMean: return reduceRows<Red::kMean>;
    case Red::kMax: return reduceRows<Red::kMax>;
    case Red::kMin: return reduceRows<Red::kMin>;
    case Red::kProd: return reduceRows<Red::kProd>;
    case Red::kL1: return reduceRows<Red::kL1>;
    case Red::kL2: return reduceRows<Red::kL2>;
    case Red::kLogSum: return reduceRows<Red::kLogSum>;
    case Red::kLogSumExp: return reduceRows<Red::kLogSumExp>;
    case Red::kSumSquare: return reduceRows<Red::kSumSquare>;
  }
  return nullptr;
}

using ReduceOneFn = float (*)(const ReducePlan&, const float*, int64_t);
ReduceOneFn reduceFn(Red k) {
  switch (k) {
    case Red::kSum: return reduceOne<Red::kSum>;
    case Red::kMean: return reduceOne<Red::kMean>;
    case Red::kMax: return reduceOne<Red::kMax>;
    case Red::kMin: return reduceOne<Red::kMin>;
    case Red::kProd: return reduceOne<Red::kProd>;
    case Red::kL1: return reduceOne<Red::kL1>;
    case Red::kL2: return reduceOne<Red::kL2>;
    case Red::kLogSum: return reduceOne<Red::kLogSum>;
    case Red::kLogSumExp: return reduceOne<Red::kLogSumExp>;
    case Red::kSumSquare: return reduceOne<Red::kSumSquare>;
  }
  return nullptr;
}

void reduceKernel(const StepArgs& a) {
  const ReduceParams& p = a.paramsAs<ReduceParams>();
  const TensorView& x = a.in(0);
  const int r = x.rank;
  bool reduced[kMaxRank] = {};
  const int64_t nAxes = a.hasInput(1) ? a.in(1).numel() : 0;
  if (nAxes == 0 && p.noopWithEmptyAxes) {
    std::memcpy(a.out(0).data, x.data, a.out(0).bytes());
    return;
  }
  for (int64_t i = 0; i < nAxes; ++i) {
    const int64_t ax = normAxis(a.in(1).as<const int64_t>()[i], r);
    if (ax < 0 || ax >= r) a.fail("axis out of range");
    reduced[ax] = true;
  }
  if (nAxes == 0)
    for (int d = 0; d < r; ++d) reduced[d] = true;
  // Kept dims (the output's order) and reduced dims, each with its input stride, both
  // innermost first.
  ReducePlan pl;
  int64_t stride = 1;
  for (int d = r - 1; d >= 0; --d) {
    if (reduced[d]) {
      pl.redDims[pl.nr] = x.dims[d];
      pl.redStride[pl.nr++] = stride;
      pl.count *= x.dims[d];
    } else {
      pl.keptDims[pl.nk] = x.dims[d];
      pl.keptStride[pl.nk++] = stride;
    }
    stride *= x.dims[d];
  }
  const int64_t outN = a.out(0).numel();
  const float* xp = x.as<const float>();
  float* yp = a.out(0).as<float>();
  // One run of reduced axes with kept axes after it: [outer, red, inner] rows.
  int first = -1, last = -1;
  for (int d = 0; d < r; ++d)
    if (reduced[d]) {
      if (first < 0) first = d;
      last = d;
    }
  bool run = first >= 0;
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < r && run; ++d) {
    if (d >= first && d <= last) run = reduced[d];
    else (d < first ? outer : inner) *= x.dims[d];
  }
  if (run && inner > 1 && pl.count > 0) {
    const ReduceRowsFn rows = reduceRowsFn(p.kind);
    const int64_t chunks = (inner + 1023) / 1024;
    parallelRange(a.executor, outer * chunks, std::max<int64_t>(1, 8192 / std::max<int64_t>(pl.count * 1024, 1)),
                  [&](int64_t b, int64_t e) {
                    for (int64_t it = b; it < e; ++it) {
                      const int64_t o = it / chunks, c0 = it % chunks * 1024, len = std::min<int64_t>(1024, inner - c0);
                      rows(xp + o * pl.count * inner + c0, pl.count, inner, len, yp + o * inner + c0);
                    }
                  });
    return;
  }
  const ReduceOneFn one = reduceFn(p.kind);
  parallelRange(a.executor, outN, std::max<int64_t>(1, 8192 / std::max<int64_t>(pl.count, 1)), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) yp[o] = one(pl, xp, o);
  });
}

Kernel base(const std::string& name, const std::string& op) {
  Kernel k;
  k.name = name;
  k.version = 1;
  k.op = op;
  k.precision = DataType::kF32;
  return k;
}

}  // namespace

void registerNorm(Kernels& k) {
  for (bool log : {false, true}) {
    Kernel s = base(log ? "f32_logsoftmax_rows" : "f32_softmax_rows", log ? "LogSoftmax" : "Softmax");
    s.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& t) {
      const int r = rankOf(t, 0);
      if (t.empty() || t[0].dtype != DataType::kF32 || r < 1) return false;
      const int64_t axis = normAxis(n.attrs().getInt("axis", -1), r);
      return axis >= 0 && axis < r;
    };
    s.prepare = [log](const PrepareInfo& info, Prepared* p) {
      const int r = rankOf(info.maxTypes, 0);
      p->setParams(SoftmaxParams{int32_t(normAxis(info.node->attrs().getInt("axis", -1), r)), log ? 1 : 0});
    };
    s.run = softmaxKernel;
    k.add(std::move(s));
  }

  Kernel ln = base("f32_layernorm_rows", "LayerNormalization");
  ln.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& t) {
    const int r = rankOf(t, 0);
    if (t.size() < 2 || t[0].dtype != DataType::kF32 || r < 1) return false;
    if (outputUsed(n, 1) || outputUsed(n, 2)) return false;  // Mean / InvStdDev: the reference
    const int64_t axis = normAxis(n.attrs().getInt("axis", -1), r);
    if (axis < 0 || axis >= r) return false;
    if (!coversTrailing(t[1], t[0], int(axis))) return false;
    return !hasType(t, 2) || coversTrailing(t[2], t[0], int(axis));
  };
  ln.prepare = [](const PrepareInfo& info, Prepared* p) {
    const int r = rankOf(info.maxTypes, 0);
    LayerNormParams lp;
    lp.axis = int32_t(normAxis(info.node->attrs().getInt("axis", -1), r));
    lp.hasBias = hasType(info.maxTypes, 2) ? 1 : 0;
    lp.eps = double(info.node->attrs().getFloat("epsilon", 1e-5f));
    p->setParams(lp);
  };
  ln.run = layerNormKernel;
  Kernel lnF = ln;
  lnF.name = "f32_layernorm_rows_f32acc";
  lnF.run = layerNormF32Kernel;
  k.add(std::move(ln));
  k.add(std::move(lnF));

  for (bool instance : {true, false}) {
    Kernel gn = base(instance ? "f32_instancenorm_planes" : "f32_groupnorm_planes",
                     instance ? "InstanceNormalization" : "GroupNormalization");
    gn.supports = [instance](const ir::Node& n, const std::vector<ir::TensorType>& t) {
      if (t.size() != 3 || rankOf(t, 0) < 2) return false;
      for (const ir::TensorType& i : t)
        if (i.dtype != DataType::kF32) return false;
      if (!t[0].shape[1].isStatic()) return false;
      const int64_t C = t[0].shape[1].value();
      for (size_t i = 1; i < 3; ++i)
        if (!t[i].shape.isStatic() || t[i].shape.numel() != C) return false;  // per channel (opset 21's form)
      if (instance) return true;
      const int64_t g = n.attrs().getInt("num_groups", 0);
      return g >= 1 && C % g == 0 && n.attrs().getInt("stash_type", 1) == 1;
    };
    gn.prepare = [instance](const PrepareInfo& info, Prepared* p) {
      GroupNormParams gp;
      gp.groups = instance ? 0 : info.node->attrs().getInt("num_groups", 1);
      gp.eps = double(info.node->attrs().getFloat("epsilon", 1e-5f));
      p->setParams(gp);
    };
    gn.run = groupNormKernel<false>;
    Kernel gp = gn;
    gp.name += "_dpart__avx2";
    gp.requirements = {"avx2", "fma"};
    gp.run = groupNormKernel<true>;
    k.add(std::move(gn));
    k.add(std::move(gp));
  }

  Kernel bn = base("f32_batchnorm_inference", "BatchNormalization");
  bn.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& t) {
    if (t.size() != 5 || rankOf(t, 0) < 2 || n.attrs().getInt("training_mode", 0) != 0) return false;
    if (outputUsed(n, 1) || outputUsed(n, 2)) return false;  // running stats: the reference
    for (const ir::TensorType& i : t)
      if (i.dtype != DataType::kF32) return false;
    return true;
  };
  bn.prepare = [](const PrepareInfo& info, Prepared* p) {
    p->setParams(BatchNormParams{double(info.node->attrs().getFloat("epsilon", 1e-5f))});
  };
  bn.run = batchNormKernel;
  k.add(std::move(bn));

  const std::pair<const char*, Red> reductions[] = {
      {"ReduceMean", Red::kMean}, {"ReduceSum", Red::kSum},     {"ReduceMax", Red::kMax},
      {"ReduceMin", Red::kMin},   {"ReduceProd", Red::kProd},   {"ReduceL1", Red::kL1},
      {"ReduceL2", Red::kL2},     {"ReduceLogSum", Red::kLogSum}, {"ReduceLogSumExp", Red::kLogSumExp},
      {"ReduceSumSquare", Red::kSumSquare}};
  for (const auto& [op, kind] : reductions) {
    std::string name = op;  // f32_reduce_mean, f32_reduce_sum, f32_reduce_logsumexp, ...
    name = "f32_reduce_" + name.substr(6);
    for (char& ch : name) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    Kernel rd = base(name, op);
    rd.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& t) {
      if (t.empty() || t[0].dtype != DataType::kF32 || rankOf(t, 0) < 0 || n.attrs().has("axes")) return false;
      return !hasType(t, 1) || t[1].dtype == DataType::kI64;
    };
    const Red which = kind;
    rd.prepare = [which](const PrepareInfo& info, Prepared* p) {
      p->setParams(ReduceParams{which, info.node->attrs().getInt("noop_with_empty_axes", 0) != 0 ? 1 : 0});
    };
    rd.run = reduceKernel;
    k.add(std::move(rd));
  }
}

}  // namespace anvil::runtime::nops
