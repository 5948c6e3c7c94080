// Reference kernels of the reduce op family: Reduce*, ArgMax/ArgMin, Softmax/LogSoftmax/
// Hardmax, CumSum, TopK. Normalizations live in reduce_norm.cpp; Einsum, Det and the
// losses in reduce_misc.cpp. Floats accumulate in double, integers in 64 bits.
#include <algorithm>
#include <numeric>

#include "cpu/kernels/families.h"
#include "cpu/kernels/reduce_common.h"
#include "cpu/kernels/util.h"

namespace anvil::cpu::kernels {

using namespace reduce;

namespace {

enum class Reduction { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

template <typename T>
void reduceTyped(const Tensor& x, Tensor& o, const std::vector<int64_t>& idx, int64_t outN, Reduction kind) {
  const T* in = x.data<T>();
  T* out = o.data<T>();
  const int64_t n = x.numel();
  const int64_t count = outN > 0 ? n / outN : 0;  // elements reduced into each output
  constexpr bool kInt = std::is_integral_v<T>;
  if constexpr (kInt) {
    // Exact integer arithmetic (wrapping like the element type would) where the result
    // stays an integer; the rest goes through double below.
    using A = std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>;
    if (kind == Reduction::kSum || kind == Reduction::kProd || kind == Reduction::kL1 ||
        kind == Reduction::kSumSquare || kind == Reduction::kMax || kind == Reduction::kMin) {
      A init = 0;
      if (kind == Reduction::kProd) init = 1;
      if (kind == Reduction::kMax) init = A(std::numeric_limits<T>::lowest());
      if (kind == Reduction::kMin) init = A(std::numeric_limits<T>::max());
      std::vector<A> acc(size_t(outN), init);
      for (int64_t i = 0; i < n; ++i) {
        A v = A(in[i]);
        A& a = acc[size_t(idx[size_t(i)])];
        switch (kind) {
          case Reduction::kSum: a = A(a + v); break;
          case Reduction::kProd: a = A(a * v); break;
          case Reduction::kL1: a = A(a + (v < A(0) ? A(0 - v) : v)); break;
          case Reduction::kSumSquare: a = A(a + v * v); break;
          case Reduction::kMax: a = std::max(a, v); break;
          case Reduction::kMin: a = std::min(a, v); break;
          default: break;
        }
      }
      for (int64_t k = 0; k < outN; ++k) out[k] = static_cast<T>(acc[size_t(k)]);
      return;
    }
  }
  if constexpr (!std::is_same_v<T, bool>) {
    const double inf = std::numeric_limits<double>::infinity();
    double init = 0;
    if (kind == Reduction::kProd) init = 1;
    if (kind == Reduction::kMax || kind == Reduction::kLogSumExp) init = -inf;
    if (kind == Reduction::kMin) init = inf;
    std::vector<double> acc(size_t(outN), init);
    for (int64_t i = 0; i < n; ++i) {
      double v = toD(in[i]);
      double& a = acc[size_t(idx[size_t(i)])];
      switch (kind) {
        case Reduction::kSum: case Reduction::kMean: case Reduction::kLogSum: a += v; break;
        case Reduction::kProd: a *= v; break;
        case Reduction::kL1: a += std::fabs(v); break;
        case Reduction::kL2: case Reduction::kSumSquare: a += v * v; break;
        case Reduction::kMax: case Reduction::kLogSumExp:
          if (v > a || std::isnan(v)) a = v;  // NaN propagates
          break;
        case Reduction::kMin:
          if (v < a || std::isnan(v)) a = v;
          break;
      }
    }
    if (kind == Reduction::kLogSumExp) {
      std::vector<double> sum(size_t(outN), 0.0);
      for (int64_t i = 0; i < n; ++i) {
        double m = acc[size_t(idx[size_t(i)])];
        if (std::isfinite(m)) sum[size_t(idx[size_t(i)])] += std::exp(toD(in[i]) - m);
      }
      for (int64_t k = 0; k < outN; ++k) {
        double m = acc[size_t(k)];
        acc[size_t(k)] = std::isfinite(m) ? m + std::log(sum[size_t(k)]) : m;  // -inf when empty
      }
    }
    for (int64_t k = 0; k < outN; ++k) {
      double a = acc[size_t(k)];
      if (kind == Reduction::kMean) a = a / double(count);
      if (kind == Reduction::kL2) a = std::sqrt(a);
      if (kind == Reduction::kLogSum) a = std::log(a);
      out[k] = fromD<T>(a);
    }
  } else {
    // bool: ReduceMax is "any", ReduceMin is "all".
    std::vector<uint8_t> acc(size_t(outN), kind == Reduction::kMin ? 1 : 0);
    for (int64_t i = 0; i < n; ++i) {
      uint8_t& a = acc[size_t(idx[size_t(i)])];
      if (kind == Reduction::kMax) a = a || in[i];
      else a = a && in[i];
    }
    for (int64_t k = 0; k < outN; ++k) out[k] = acc[size_t(k)] != 0;
  }
}

void reduceKernel(KernelContext& ctx, Reduction kind) {
  const Tensor& x = ctx.input(0);
  const bool keep = ctx.attrs().getInt("keepdims", 1) != 0;
  const bool noop = ctx.attrs().getInt("noop_with_empty_axes", 0) != 0;
  std::vector<int64_t> axes;
  if (ctx.hasInput(1)) axes = ctx.input(1).toInt64Vector();
  if (axes.empty() && noop) {
    // The spec: "the output tensor would be equivalent to the input tensor" (onnx's
    // reference agrees for every Reduce* but ReduceSumSquare, which squares).
    ctx.setOutput(0, x);
    return;
  }
  const int64_t rank = int64_t(x.rank());
  std::vector<bool> reduced(size_t(rank), axes.empty());
  for (int64_t a : axes) {
    int64_t n = axisOf(ctx, a, rank);
    ctx.check(!reduced[size_t(n)], "axis " + std::to_string(a) + " is repeated");
    reduced[size_t(n)] = true;
  }
  std::vector<int64_t> outDims;
  for (int64_t i = 0; i < rank; ++i) {
    if (!reduced[size_t(i)]) outDims.push_back(x.dim(size_t(i)));
    else if (keep) outDims.push_back(1);
  }
  int64_t outN = 0;
  std::vector<int64_t> idx = reductionIndex(x.dims(), reduced, &outN);
  Tensor& o = ctx.allocOutput(0, x.dtype(), outDims);
  const bool boolOk = kind == Reduction::kMax || kind == Reduction::kMin;
  ctx.check(x.dtype() != DataType::kBool || boolOk, "bool input is only allowed for ReduceMax and ReduceMin");
  dispatchAll(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    reduceTyped<T>(x, o, idx, outN, kind);
  });
}

template <typename T>
bool lessNaNLast(T a, T b) {  // a total order: NaN above every number
  if constexpr (kIsFloat<T>) {
    double x = toD(a), y = toD(b);
    if (std::isnan(x)) return false;
    if (std::isnan(y)) return true;
    return x < y;
  } else {
    return a < b;
  }
}

void argKernel(KernelContext& ctx, bool isMax) {
  const Tensor& x = ctx.input(0);
  const int64_t rank = int64_t(x.rank());
  ctx.check(rank >= 1, "data must have rank >= 1");
  const int64_t axis = axisOf(ctx, ctx.attrs().getInt("axis", 0), rank);
  const bool keep = ctx.attrs().getInt("keepdims", 1) != 0;
  const bool last = ctx.attrs().getInt("select_last_index", 0) != 0;
  Split s = splitAt(x.dims(), axis);
  ctx.check(s.n > 0 || s.outer * s.inner == 0, "cannot take an arg-reduction over an empty axis");
  std::vector<int64_t> outDims = x.dims();
  if (keep) outDims[size_t(axis)] = 1;
  else outDims.erase(outDims.begin() + axis);
  Tensor& o = ctx.allocOutput(0, DataType::kI64, outDims);
  int64_t* out = o.data<int64_t>();
  dispatchNumeric(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = x.data<T>();
    for (int64_t a = 0; a < s.outer; ++a)
      for (int64_t c = 0; c < s.inner; ++c) {
        const T* p = in + a * s.n * s.inner + c;
        int64_t best = 0;
        for (int64_t k = 1; k < s.n; ++k) {
          T v = p[k * s.inner], b = p[best * s.inner];
          bool better = isMax ? lessNaNLast(b, v) : lessNaNLast(v, b);
          bool tie = !lessNaNLast(v, b) && !lessNaNLast(b, v);
          if (better || (last && tie)) best = k;
        }
        out[a * s.inner + c] = best;
      }
  });
}

enum class SoftKind { kSoftmax, kLogSoftmax, kHardmax };

void softmaxKernel(KernelContext& ctx, SoftKind kind) {
  const Tensor& x = ctx.input(0);
  const int64_t rank = int64_t(x.rank());
  ctx.check(rank >= 1, "input must have rank >= 1");
  const int64_t axis = axisOf(ctx, ctx.attrs().getInt("axis", -1), rank);
  Split s = splitAt(x.dims(), axis);
  Tensor& o = ctx.allocOutput(0, x.dtype(), x.dims());
  dispatchFloat(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = x.data<T>();
    T* out = o.data<T>();
    std::vector<double> v(size_t(s.n));
    for (int64_t a = 0; a < s.outer; ++a)
      for (int64_t c = 0; c < s.inner; ++c) {
        const int64_t base = a * s.n * s.inner + c;
        double m = 0;
        int64_t arg = -1;  // first max
        for (int64_t k = 0; k < s.n; ++k) {
          v[size_t(k)] = toD(in[base + k * s.inner]);
          if (arg < 0 || v[size_t(k)] > m) {
            m = v[size_t(k)];
            arg = k;
          }
        }
        if (kind == SoftKind::kHardmax) {
          for (int64_t k = 0; k < s.n; ++k) out[base + k * s.inner] = fromD<T>(k == arg ? 1.0 : 0.0);
          continue;
        }
        double sum = 0;
        for (int64_t k = 0; k < s.n; ++k) sum += std::exp(v[size_t(k)] - m);
        const double logSum = std::log(sum);
        for (int64_t k = 0; k < s.n; ++k) {
          double r = kind == SoftKind::kSoftmax ? std::exp(v[size_t(k)] - m) / sum : v[size_t(k)] - m - logSum;
          out[base + k * s.inner] = fromD<T>(r);
        }
      }
  });
}

void cumSumKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& ax = ctx.input(1);
  ctx.check(ax.numel() == 1 && ax.rank() <= 1, "axis must be a scalar");
  ctx.check(ax.dtype() == DataType::kI32 || ax.dtype() == DataType::kI64, "axis must be i32 or i64");
  const int64_t rank = int64_t(x.rank());
  ctx.check(rank >= 1, "x must have rank >= 1");
  const int64_t axis = axisOf(ctx, ax.getInt(0), rank);
  const bool exclusive = ctx.attrs().getInt("exclusive", 0) != 0;
  const bool reverse = ctx.attrs().getInt("reverse", 0) != 0;
  Split s = splitAt(x.dims(), axis);
  Tensor& o = ctx.allocOutput(0, x.dtype(), x.dims());
  dispatchNumeric(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = std::conditional_t<kIsFloat<T>, double, std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>;
    const T* in = x.data<T>();
    T* out = o.data<T>();
    for (int64_t a = 0; a < s.outer; ++a)
      for (int64_t c = 0; c < s.inner; ++c) {
        const int64_t base = a * s.n * s.inner + c;
        A acc = 0;
        for (int64_t j = 0; j < s.n; ++j) {
          const int64_t k = reverse ? s.n - 1 - j : j;
          A v;
          if constexpr (kIsFloat<T>) v = toD(in[base + k * s.inner]);
          else v = A(in[base + k * s.inner]);
          if (exclusive) {
            if constexpr (kIsFloat<T>) out[base + k * s.inner] = fromD<T>(acc);
            else out[base + k * s.inner] = static_cast<T>(acc);
            acc = A(acc + v);
          } else {
            acc = A(acc + v);
            if constexpr (kIsFloat<T>) out[base + k * s.inner] = fromD<T>(acc);
            else out[base + k * s.inner] = static_cast<T>(acc);
          }
        }
      }
  });
}

void topKKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& kt = ctx.input(1);
  ctx.check(kt.numel() == 1 && kt.rank() <= 1, "K must be a 1-D tensor with one element");
  const int64_t K = kt.getInt(0);
  const int64_t rank = int64_t(x.rank());
  ctx.check(rank >= 1, "X must have rank >= 1");
  const int64_t axis = axisOf(ctx, ctx.attrs().getInt("axis", -1), rank);
  const bool largest = ctx.attrs().getInt("largest", 1) != 0;
  Split s = splitAt(x.dims(), axis);
  ctx.check(K >= 0 && K <= s.n, "K = " + std::to_string(K) + " must be in [0, " + std::to_string(s.n) + "]");
  std::vector<int64_t> outDims = x.dims();
  outDims[size_t(axis)] = K;
  Tensor& vals = ctx.allocOutput(0, x.dtype(), outDims);
  Tensor& inds = ctx.allocOutput(1, DataType::kI64, outDims);
  int64_t* oi = inds.data<int64_t>();
  dispatchNumeric(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = x.data<T>();
    T* ov = vals.data<T>();
    std::vector<int64_t> order(size_t(s.n));
    for (int64_t a = 0; a < s.outer; ++a)
      for (int64_t c = 0; c < s.inner; ++c) {
        const T* p = in + a * s.n * s.inner + c;
        std::iota(order.begin(), order.end(), 0);
        // Ties keep the lower index first (stable), whatever the direction.
        auto before = [&](int64_t i, int64_t j) {
          T u = p[i * s.inner], w = p[j * s.inner];
          return largest ? lessNaNLast(w, u) : lessNaNLast(u, w);
        };
        std::stable_sort(order.begin(), order.end(), before);
        for (int64_t k = 0; k < K; ++k) {
          const int64_t o = a * K * s.inner + k * s.inner + c;
          ov[o] = p[order[size_t(k)] * s.inner];
          oi[o] = order[size_t(k)];
        }
      }
  });
}

}  // namespace

void registerReduceKernels(KernelRegistry& r) {
  const std::pair<const char*, Reduction> reductions[] = {
      {"ReduceSum", Reduction::kSum},       {"ReduceMean", Reduction::kMean},
      {"ReduceMax", Reduction::kMax},       {"ReduceMin", Reduction::kMin},
      {"ReduceProd", Reduction::kProd},     {"ReduceL1", Reduction::kL1},
      {"ReduceL2", Reduction::kL2},         {"ReduceLogSum", Reduction::kLogSum},
      {"ReduceLogSumExp", Reduction::kLogSumExp}, {"ReduceSumSquare", Reduction::kSumSquare},
  };
  for (auto [name, kind] : reductions) r.add(name, [kind](KernelContext& ctx) { reduceKernel(ctx, kind); });
  r.add("ArgMax", [](KernelContext& ctx) { argKernel(ctx, true); });
  r.add("ArgMin", [](KernelContext& ctx) { argKernel(ctx, false); });
  r.add("Softmax", [](KernelContext& ctx) { softmaxKernel(ctx, SoftKind::kSoftmax); });
  r.add("LogSoftmax", [](KernelContext& ctx) { softmaxKernel(ctx, SoftKind::kLogSoftmax); });
  r.add("Hardmax", [](KernelContext& ctx) { softmaxKernel(ctx, SoftKind::kHardmax); });
  r.add("CumSum", cumSumKernel);
  r.add("TopK", topKKernel);
  registerNormKernels(r);
  registerMiscKernels(r);
}

}  // namespace anvil::cpu::kernels
