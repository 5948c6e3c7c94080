// Reference kernels of the normalizations: BatchNormalization (inference and training
// mode), LayerNormalization, InstanceNormalization, GroupNormalization, LRN,
// MeanVarianceNormalization, LpNormalization. Statistics are computed in double.
#include <algorithm>

#include "cpu/kernels/reduce_common.h"
#include "cpu/kernels/util.h"

namespace anvil::cpu::kernels::reduce {

namespace {

// Reads X as doubles and writes Y from doubles, for any float type.
template <typename F>
void withFloat(KernelContext& ctx, const Tensor& x, Tensor& y, F&& body) {
  dispatchFloat(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = x.data<T>();
    T* out = y.data<T>();
    body([&](int64_t i) { return toD(in[i]); }, [&](int64_t i, double v) { out[i] = fromD<T>(v); });
  });
}

std::vector<double> paramVector(const KernelContext& ctx, size_t i, int64_t len, const char* what) {
  const Tensor& t = ctx.input(i);
  ctx.check(ir::isFloat(t.dtype()), std::string(what) + " must be a float tensor");
  ctx.check(t.numel() == len, std::string(what) + " must have " + std::to_string(len) + " elements, got " +
                                  t.summary());
  return toDoubles(t);
}

// [N, C, rest...] as N, C and the product of the rest.
struct NCS {
  int64_t n, c, s;
};
NCS nsc(const KernelContext& ctx, const Tensor& x, const char* what) {
  ctx.check(x.rank() >= 2, std::string(what) + " must be [N, C, ...] (rank >= 2), got " + x.summary());
  int64_t s = 1;
  for (size_t i = 2; i < x.rank(); ++i) s *= x.dim(i);
  return {x.dim(0), x.dim(1), s};
}

void batchNorm(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  NCS d = nsc(ctx, x, "X");
  const double eps = ctx.attrs().getFloat("epsilon", 1e-5f);
  const double momentum = ctx.attrs().getFloat("momentum", 0.9f);
  const bool training = ctx.attrs().getInt("training_mode", 0) != 0;
  std::vector<double> scale = paramVector(ctx, 1, d.c, "scale");
  std::vector<double> bias = paramVector(ctx, 2, d.c, "B");
  std::vector<double> mean = paramVector(ctx, 3, d.c, "input_mean");
  std::vector<double> var = paramVector(ctx, 4, d.c, "input_var");
  std::vector<double> useMean = mean, useVar = var;
  if (training) {
    const double cnt = double(d.n * d.s);
    for (int64_t c = 0; c < d.c; ++c) {
      double sum = 0, sq = 0;
      for (int64_t n = 0; n < d.n; ++n)
        for (int64_t k = 0; k < d.s; ++k) sum += x.getDouble((n * d.c + c) * d.s + k);
      const double m = sum / cnt;
      for (int64_t n = 0; n < d.n; ++n)
        for (int64_t k = 0; k < d.s; ++k) {
          double dv = x.getDouble((n * d.c + c) * d.s + k) - m;
          sq += dv * dv;
        }
      useMean[size_t(c)] = m;
      useVar[size_t(c)] = sq / cnt;  // population variance, as the spec's ReduceVar
    }
  }
  Tensor& y = ctx.allocOutput(0, x.dtype(), x.dims());
  withFloat(ctx, x, y, [&](auto get, auto set) {
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t c = 0; c < d.c; ++c) {
        const double a = scale[size_t(c)] / std::sqrt(useVar[size_t(c)] + eps);
        for (int64_t k = 0; k < d.s; ++k) {
          const int64_t i = (n * d.c + c) * d.s + k;
          set(i, (get(i) - useMean[size_t(c)]) * a + bias[size_t(c)]);
        }
      }
  });
  // running_mean / running_var: blended with the batch statistics in training mode; in
  // inference mode the inputs pass through.
  for (size_t o = 1; o < ctx.numOutputs() && o <= 2; ++o) {
    const Tensor& src = ctx.input(o + 2);
    Tensor& t = ctx.allocOutput(o, src.dtype(), {d.c});
    for (int64_t c = 0; c < d.c; ++c) {
      double in = o == 1 ? mean[size_t(c)] : var[size_t(c)];
      double batch = o == 1 ? useMean[size_t(c)] : useVar[size_t(c)];
      t.setDouble(c, training ? in * momentum + batch * (1 - momentum) : in);
    }
  }
}

void layerNorm(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t rank = int64_t(x.rank());
  ctx.check(rank >= 1, "X must have rank >= 1");
  const int64_t axis = axisOf(ctx, ctx.attrs().getInt("axis", -1), rank);
  const double eps = ctx.attrs().getFloat("epsilon", 1e-5f);
  const int64_t stash = ctx.attrs().getInt("stash_type", 1);
  ctx.check(stash == 1 || stash == 10 || stash == 11 || stash == 16, "stash_type must be a float type");
  int64_t rows = 1, cols = 1;
  for (int64_t i = 0; i < rank; ++i) (i < axis ? rows : cols) *= x.dim(size_t(i));
  auto paramIndex = [&](size_t i, const char* what) {
    const Tensor& p = ctx.input(i);
    ctx.check(p.rank() <= x.rank(), std::string(what) + " has a higher rank than X");
    try {
      ctx.check(ir::broadcastExtents(p.dims(), x.dims()) == x.dims(),
                std::string(what) + " " + p.summary() + " does not broadcast to X " + x.summary());
    } catch (const Error&) {
      ctx.fail(std::string(what) + " " + p.summary() + " does not broadcast to X " + x.summary());
    }
    return broadcastIndex(p.dims(), x.dims());
  };
  const Tensor& scale = ctx.input(1);
  std::vector<int64_t> si = paramIndex(1, "Scale");
  std::vector<int64_t> bi;
  if (ctx.hasInput(2)) bi = paramIndex(2, "B");
  std::vector<int64_t> statDims = x.dims();
  for (int64_t i = axis; i < rank; ++i) statDims[size_t(i)] = 1;
  std::vector<double> mean(static_cast<size_t>(rows)), inv(static_cast<size_t>(rows));
  Tensor& y = ctx.allocOutput(0, x.dtype(), x.dims());
  withFloat(ctx, x, y, [&](auto get, auto set) {
    for (int64_t r = 0; r < rows; ++r) {
      double sum = 0, sq = 0;
      for (int64_t k = 0; k < cols; ++k) sum += get(r * cols + k);
      const double m = cols ? sum / double(cols) : 0;
      for (int64_t k = 0; k < cols; ++k) {
        double dv = get(r * cols + k) - m;
        sq += dv * dv;
      }
      const double is = 1.0 / std::sqrt((cols ? sq / double(cols) : 0) + eps);
      mean[size_t(r)] = m;
      inv[size_t(r)] = is;
      for (int64_t k = 0; k < cols; ++k) {
        const int64_t i = r * cols + k;
        double v = (get(i) - m) * is * scale.getDouble(si[size_t(i)]);
        if (ctx.hasInput(2)) v += ctx.input(2).getDouble(bi[size_t(i)]);
        set(i, v);
      }
    }
  });
  for (size_t o = 1; o < ctx.numOutputs() && o <= 2; ++o) {
    Tensor& t = ctx.allocOutput(o, DataType(stash), statDims);
    for (int64_t r = 0; r < rows; ++r) t.setDouble(r, o == 1 ? mean[size_t(r)] : inv[size_t(r)]);
  }
}

void instanceNorm(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  NCS d = nsc(ctx, x, "input");
  const double eps = ctx.attrs().getFloat("epsilon", 1e-5f);
  std::vector<double> scale = paramVector(ctx, 1, d.c, "scale");
  std::vector<double> bias = paramVector(ctx, 2, d.c, "B");
  Tensor& y = ctx.allocOutput(0, x.dtype(), x.dims());
  withFloat(ctx, x, y, [&](auto get, auto set) {
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t c = 0; c < d.c; ++c) {
        const int64_t base = (n * d.c + c) * d.s;
        double sum = 0, sq = 0;
        for (int64_t k = 0; k < d.s; ++k) sum += get(base + k);
        const double m = d.s ? sum / double(d.s) : 0;
        for (int64_t k = 0; k < d.s; ++k) sq += (get(base + k) - m) * (get(base + k) - m);
        const double a = scale[size_t(c)] / std::sqrt((d.s ? sq / double(d.s) : 0) + eps);
        for (int64_t k = 0; k < d.s; ++k) set(base + k, (get(base + k) - m) * a + bias[size_t(c)]);
      }
  });
}

void groupNorm(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  NCS d = nsc(ctx, x, "X");
  const int64_t g = ctx.attrs().requireInt("num_groups");
  ctx.check(g >= 1 && d.c % g == 0, "num_groups (" + std::to_string(g) + ") must divide the channels (" +
                                        std::to_string(d.c) + ")");
  const double eps = ctx.attrs().getFloat("epsilon", 1e-5f);
  std::vector<double> scale = paramVector(ctx, 1, d.c, "scale");
  std::vector<double> bias = paramVector(ctx, 2, d.c, "bias");
  const int64_t cpg = d.c / g, len = cpg * d.s;
  Tensor& y = ctx.allocOutput(0, x.dtype(), x.dims());
  withFloat(ctx, x, y, [&](auto get, auto set) {
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t gi = 0; gi < g; ++gi) {
        const int64_t base = (n * d.c + gi * cpg) * d.s;
        double sum = 0, sq = 0;
        for (int64_t k = 0; k < len; ++k) sum += get(base + k);
        const double m = len ? sum / double(len) : 0;
        for (int64_t k = 0; k < len; ++k) sq += (get(base + k) - m) * (get(base + k) - m);
        const double is = 1.0 / std::sqrt((len ? sq / double(len) : 0) + eps);
        for (int64_t k = 0; k < len; ++k) {
          const size_t c = size_t(gi * cpg + k / std::max<int64_t>(d.s, 1));
          set(base + k, (get(base + k) - m) * is * scale[c] + bias[c]);
        }
      }
  });
}

void lrn(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  NCS d = nsc(ctx, x, "X");
  const int64_t size = ctx.attrs().requireInt("size");
  ctx.check(size >= 1, "size must be >= 1");
  const double alpha = ctx.attrs().getFloat("alpha", 1e-4f);
  const double beta = ctx.attrs().getFloat("beta", 0.75f);
  const double bias = ctx.attrs().getFloat("bias", 1.0f);
  const int64_t lo = (size - 1) / 2, hi = (size - 1) - lo;  // floor and ceil of (size-1)/2
  Tensor& y = ctx.allocOutput(0, x.dtype(), x.dims());
  withFloat(ctx, x, y, [&](auto get, auto set) {
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t c = 0; c < d.c; ++c)
        for (int64_t k = 0; k < d.s; ++k) {
          double sq = 0;
          for (int64_t j = std::max<int64_t>(0, c - lo); j <= std::min(d.c - 1, c + hi); ++j) {
            double v = get((n * d.c + j) * d.s + k);
            sq += v * v;
          }
          const int64_t i = (n * d.c + c) * d.s + k;
          set(i, get(i) / std::pow(bias + alpha / double(size) * sq, beta));
        }
  });
}

void mvn(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t rank = int64_t(x.rank());
  std::vector<int64_t> axes = ctx.attrs().getInts("axes", {0, 2, 3});
  std::vector<bool> reduced(size_t(rank), false);
  for (int64_t a : axes) {
    int64_t n = axisOf(ctx, a, rank);
    ctx.check(!reduced[size_t(n)], "axis " + std::to_string(a) + " is repeated");
    reduced[size_t(n)] = true;
  }
  int64_t outN = 0;
  std::vector<int64_t> idx = reductionIndex(x.dims(), reduced, &outN);
  const double cnt = outN ? double(x.numel()) / double(outN) : 0;
  std::vector<double> sum(size_t(outN), 0), sq(size_t(outN), 0);
  Tensor& y = ctx.allocOutput(0, x.dtype(), x.dims());
  withFloat(ctx, x, y, [&](auto get, auto set) {
    for (int64_t i = 0; i < x.numel(); ++i) {
      double v = get(i);
      sum[size_t(idx[size_t(i)])] += v;
      sq[size_t(idx[size_t(i)])] += v * v;
    }
    for (int64_t i = 0; i < x.numel(); ++i) {
      const size_t o = size_t(idx[size_t(i)]);
      const double m = sum[o] / cnt;
      const double var = std::max(0.0, sq[o] / cnt - m * m);  // E[x^2] - E[x]^2, as the spec's function
      set(i, (get(i) - m) / (std::sqrt(var) + 1e-9));
    }
  });
}

void lpNorm(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t rank = int64_t(x.rank());
  ctx.check(rank >= 1, "input must have rank >= 1");
  const int64_t axis = axisOf(ctx, ctx.attrs().getInt("axis", -1), rank);
  const int64_t p = ctx.attrs().getInt("p", 2);
  ctx.check(p == 1 || p == 2, "p must be 1 or 2, got " + std::to_string(p));
  Split s = splitAt(x.dims(), axis);
  Tensor& y = ctx.allocOutput(0, x.dtype(), x.dims());
  withFloat(ctx, x, y, [&](auto get, auto set) {
    for (int64_t a = 0; a < s.outer; ++a)
      for (int64_t c = 0; c < s.inner; ++c) {
        const int64_t base = a * s.n * s.inner + c;
        double norm = 0;
        for (int64_t k = 0; k < s.n; ++k) {
          double v = get(base + k * s.inner);
          norm += p == 1 ? std::fabs(v) : v * v;
        }
        if (p == 2) norm = std::sqrt(norm);
        // A zero vector stays zero (as onnxruntime) instead of becoming NaN.
        for (int64_t k = 0; k < s.n; ++k)
          set(base + k * s.inner, norm == 0 ? 0.0 : get(base + k * s.inner) / norm);
      }
  });
}

}  // namespace

void registerNormKernels(KernelRegistry& r) {
  r.add("BatchNormalization", batchNorm);
  r.add("LayerNormalization", layerNorm);
  r.add("InstanceNormalization", instanceNorm);
  r.add("GroupNormalization", groupNorm);
  r.add("LRN", lrn);
  r.add("MeanVarianceNormalization", mvn);
  r.add("LpNormalization", lpNorm);
}

}  // namespace anvil::cpu::kernels::reduce
