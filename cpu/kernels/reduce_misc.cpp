// Reference kernels of Einsum (general: ellipsis, diagonals, broadcasting, implicit
// output), Det, and the losses SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss.
#include <algorithm>
#include <map>

#include "cpu/kernels/reduce_common.h"
#include "cpu/kernels/util.h"
#include "ir/ops/reduce_einsum.h"

namespace anvil::cpu::kernels::reduce {

namespace {

void einsumKernel(KernelContext& ctx) {
  const size_t nin = ctx.numInputs();
  ctx.check(nin >= 1, "needs at least one input");
  ir::einsum::Equation eq = ir::einsum::parse(ctx.attrs().getString("equation", ""), ctx.node().label());
  std::vector<int64_t> ranks;
  for (size_t i = 0; i < nin; ++i) {
    ctx.check(ctx.input(i).dtype() == ctx.input(0).dtype(), "all inputs must have the same type");
    ranks.push_back(int64_t(ctx.input(i).rank()));
  }
  ir::einsum::expandEllipsis(eq, ranks, ctx.node().label());
  // Label extents (a 1 broadcasts against any extent).
  std::map<int, int64_t> ext;
  for (size_t i = 0; i < nin; ++i)
    for (size_t k = 0; k < eq.inputs[i].labels.size(); ++k) {
      const int l = eq.inputs[i].labels[k];
      const int64_t d = ctx.input(i).dim(k);
      auto it = ext.find(l);
      if (it == ext.end() || it->second == 1) ext[l] = d;
      else if (d != 1 && d != it->second)
        ctx.fail("einsum label extents disagree: " + std::to_string(it->second) + " vs " + std::to_string(d) +
                 " (operand " + std::to_string(i) + ", dim " + std::to_string(k) + ")");
    }
  std::vector<int> outL = eq.output.labels, sumL;
  for (const auto& [l, d] : ext)
    if (std::find(outL.begin(), outL.end(), l) == outL.end()) sumL.push_back(l);
  std::vector<int64_t> outDims;
  for (int l : outL) outDims.push_back(ext.count(l) ? ext[l] : 1);
  // Per input, the element stride of each label (repeated labels add up: a diagonal).
  std::vector<std::map<int, int64_t>> stride(nin);
  for (size_t i = 0; i < nin; ++i) {
    std::vector<int64_t> s = stridesOf(ctx.input(i).dims());
    for (size_t k = 0; k < eq.inputs[i].labels.size(); ++k) {
      const int l = eq.inputs[i].labels[k];
      if (ctx.input(i).dim(k) == 1 && ext[l] != 1) continue;  // broadcast
      stride[i][l] += s[k];
    }
  }
  auto strideOf = [&](size_t i, int l) {
    auto it = stride[i].find(l);
    return it == stride[i].end() ? int64_t(0) : it->second;
  };
  int64_t sumN = 1;
  for (int l : sumL) sumN *= ext[l];
  Tensor& o = ctx.allocOutput(0, ctx.input(0).dtype(), outDims);
  dispatchNumeric(o.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = std::conditional_t<kIsFloat<T>, double, std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>;
    std::vector<const T*> in(nin);
    for (size_t i = 0; i < nin; ++i) in[i] = ctx.input(i).data<T>();
    T* out = o.data<T>();
    // Offsets of every summed position per input, computed once.
    std::vector<int64_t> sumOff(size_t(sumN) * nin, 0);
    for (int64_t sidx = 0; sidx < sumN; ++sidx) {
      int64_t rem = sidx;
      for (int64_t j = int64_t(sumL.size()) - 1; j >= 0; --j) {
        const int l = sumL[size_t(j)];
        const int64_t p = rem % ext[l];
        rem /= ext[l];
        for (size_t i = 0; i < nin; ++i) sumOff[size_t(sidx) * nin + i] += p * strideOf(i, l);
      }
    }
    std::vector<int64_t> base(nin);
    for (int64_t oi = 0; oi < o.numel(); ++oi) {
      std::fill(base.begin(), base.end(), 0);
      int64_t rem = oi;
      for (int64_t j = int64_t(outL.size()) - 1; j >= 0; --j) {
        const int64_t p = rem % outDims[size_t(j)];
        rem /= outDims[size_t(j)];
        for (size_t i = 0; i < nin; ++i) base[i] += p * strideOf(i, outL[size_t(j)]);
      }
      A acc = 0;
      for (int64_t sidx = 0; sidx < sumN; ++sidx) {
        A prod = 1;
        for (size_t i = 0; i < nin; ++i) {
          const T v = in[i][base[i] + sumOff[size_t(sidx) * nin + i]];
          if constexpr (kIsFloat<T>) prod *= toD(v);
          else prod = A(prod * A(v));
        }
        acc = A(acc + prod);
      }
      if constexpr (kIsFloat<T>) out[oi] = fromD<T>(acc);
      else out[oi] = static_cast<T>(acc);
    }
  });
}

void detKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ctx.check(x.rank() >= 2, "X must be [*, M, M], got " + x.summary());
  const int64_t m = x.dim(x.rank() - 1);
  ctx.check(x.dim(x.rank() - 2) == m, "X must hold square matrices, got " + x.summary());
  std::vector<int64_t> outDims(x.dims().begin(), x.dims().end() - 2);
  Tensor& o = ctx.allocOutput(0, x.dtype(), outDims);
  ctx.check(ir::isFloat(x.dtype()), "X must be a float tensor");
  const int64_t batch = o.numel();
  std::vector<double> a(size_t(m * m));
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t i = 0; i < m * m; ++i) a[size_t(i)] = x.getDouble(b * m * m + i);
    // LU with partial pivoting.
    double det = 1;
    for (int64_t c = 0; c < m && det != 0; ++c) {
      int64_t piv = c;
      for (int64_t r = c + 1; r < m; ++r)
        if (std::fabs(a[size_t(r * m + c)]) > std::fabs(a[size_t(piv * m + c)])) piv = r;
      if (a[size_t(piv * m + c)] == 0) {
        det = 0;
        break;
      }
      if (piv != c) {
        for (int64_t k = 0; k < m; ++k) std::swap(a[size_t(c * m + k)], a[size_t(piv * m + k)]);
        det = -det;
      }
      const double d = a[size_t(c * m + c)];
      det *= d;
      for (int64_t r = c + 1; r < m; ++r) {
        const double f = a[size_t(r * m + c)] / d;
        if (f == 0) continue;
        for (int64_t k = c; k < m; ++k) a[size_t(r * m + k)] -= f * a[size_t(c * m + k)];
      }
    }
    o.setDouble(b, det);
  }
}

// NLL over log-probabilities `lp` laid out [N, C, D] (D = product of the extra dims).
// Writes the loss to output 0 per the reduction attribute.
void nllInto(KernelContext& ctx, const std::vector<double>& lp, int64_t N, int64_t C, int64_t D,
             const Tensor& target, DataType dt) {
  const std::string red = ctx.attrs().getString("reduction", "mean");
  ctx.check(red == "none" || red == "sum" || red == "mean",
            "reduction must be 'none', 'sum' or 'mean', got '" + red + "'");
  ctx.check(target.dtype() == DataType::kI32 || target.dtype() == DataType::kI64, "target must be i32 or i64");
  ctx.check(target.numel() == N * D, "target " + target.summary() + " does not match the scores' [N, d1, ...]");
  const bool hasIgnore = ctx.attrs().has("ignore_index");
  const int64_t ignore = ctx.attrs().getInt("ignore_index", 0);
  std::vector<double> weight;
  if (ctx.hasInput(2)) {
    const Tensor& w = ctx.input(2);
    ctx.check(w.numel() == C && w.rank() == 1, "weights must be [C] with C = " + std::to_string(C));
    weight = toDoubles(w);
  }
  std::vector<double> loss(size_t(N * D), 0);
  double lossSum = 0, weightSum = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) {
      const int64_t t = target.getInt(n * D + d);
      if (hasIgnore && t == ignore) continue;
      ctx.check(t >= 0 && t < C, "target value " + std::to_string(t) + " is out of range [0, " + std::to_string(C) +
                                     ")");
      const double w = weight.empty() ? 1.0 : weight[size_t(t)];
      const double l = -lp[size_t((n * C + t) * D + d)] * w;
      loss[size_t(n * D + d)] = l;
      lossSum += l;
      weightSum += w;
    }
  if (red == "none") {
    Tensor& o = ctx.allocOutput(0, dt, target.dims());
    for (int64_t i = 0; i < N * D; ++i) o.setDouble(i, loss[size_t(i)]);
  } else {
    Tensor& o = ctx.allocOutput(0, dt, {});
    // mean: divided by the sum of the weights applied (ignored targets weigh 0).
    o.setDouble(0, red == "sum" ? lossSum : lossSum / weightSum);
  }
}

struct NCD {
  int64_t n, c, d;
};
NCD ncd(const KernelContext& ctx, const Tensor& x) {
  ctx.check(x.rank() >= 2, "the scores must be [N, C, d1, ...], got " + x.summary());
  ctx.check(ir::isFloat(x.dtype()), "the scores must be a float tensor");
  int64_t d = 1;
  for (size_t i = 2; i < x.rank(); ++i) d *= x.dim(i);
  return {x.dim(0), x.dim(1), d};
}

void checkTargetShape(const KernelContext& ctx, const Tensor& x, const Tensor& t) {
  bool ok = t.rank() + 1 == x.rank() && t.dim(0) == x.dim(0);
  for (size_t i = 1; ok && i < t.rank(); ++i) ok = t.dim(i) == x.dim(i + 1);
  ctx.check(ok, "target " + t.summary() + " must be [N, d1, ...] of the scores " + x.summary());
}

void nllKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  NCD s = ncd(ctx, x);
  checkTargetShape(ctx, x, ctx.input(1));
  nllInto(ctx, toDoubles(x), s.n, s.c, s.d, ctx.input(1), x.dtype());
}

void sceKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  NCD s = ncd(ctx, x);
  checkTargetShape(ctx, x, ctx.input(1));
  std::vector<double> v = toDoubles(x), lp(v.size());
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t d = 0; d < s.d; ++d) {
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t c = 0; c < s.c; ++c) m = std::max(m, v[size_t((n * s.c + c) * s.d + d)]);
      double sum = 0;
      for (int64_t c = 0; c < s.c; ++c) sum += std::exp(v[size_t((n * s.c + c) * s.d + d)] - m);
      const double ls = std::log(sum);
      for (int64_t c = 0; c < s.c; ++c) {
        const size_t i = size_t((n * s.c + c) * s.d + d);
        lp[i] = v[i] - m - ls;
      }
    }
  nllInto(ctx, lp, s.n, s.c, s.d, ctx.input(1), x.dtype());
  if (ctx.numOutputs() > 1) {
    Tensor& o = ctx.allocOutput(1, x.dtype(), x.dims());
    for (int64_t i = 0; i < x.numel(); ++i) o.setDouble(i, lp[size_t(i)]);
  }
}

}  // namespace

void registerMiscKernels(KernelRegistry& r) {
  r.add("Einsum", einsumKernel);
  r.add("Det", detKernel);
  r.add("NegativeLogLikelihoodLoss", nllKernel);
  r.add("SoftmaxCrossEntropyLoss", sceKernel);
}

}  // namespace anvil::cpu::kernels::reduce
