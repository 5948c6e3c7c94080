// Reference kernels of the matrix products: MatMul (numpy semantics), MatMulInteger,
// QLinearMatMul and Gemm. Floats accumulate in float (f64 in double); integers in 64-bit
// wrapping arithmetic, truncated to the element type at the end.
#include <cmath>

#include "cpu/kernels/nn_util.h"
#include "cpu/kernels/util.h"

namespace anvil::cpu::kernels::nn {

namespace {

// Compute type: float for f16/bf16/f32, double for f64, u64 (wrapping) for integers.
template <typename T>
using AccT = std::conditional_t<std::is_floating_point_v<ComputeT<T>>, ComputeT<T>, uint64_t>;

template <typename A, typename T>
A toAcc(T v) {
  if constexpr (std::is_integral_v<A>) return A(int64_t(v));
  else return A(ComputeT<T>(v));
}

// Batch broadcasting and the shapes of a numpy matmul.
struct MatMulPlan {
  int64_t M = 1, N = 1, K = 1;
  std::vector<int64_t> outDims;
  std::vector<int64_t> aBatch, bBatch;  // element offset of each output batch's A / B matrix
};

MatMulPlan planMatMul(const KernelContext& ctx, const std::vector<int64_t>& aDims, const std::vector<int64_t>& bDims) {
  ctx.check(!aDims.empty() && !bDims.empty(), "MatMul operands must have rank >= 1");
  std::vector<int64_t> ad = aDims, bd = bDims;
  const bool aVec = ad.size() == 1, bVec = bd.size() == 1;
  if (aVec) ad.insert(ad.begin(), 1);
  if (bVec) bd.push_back(1);
  MatMulPlan p;
  p.M = ad[ad.size() - 2];
  p.K = ad[ad.size() - 1];
  p.N = bd[bd.size() - 1];
  ctx.check(bd[bd.size() - 2] == p.K, "inner dims differ: " + ir::Shape::fromExtents(aDims).str() + " x " +
                                          ir::Shape::fromExtents(bDims).str());
  std::vector<int64_t> ab(ad.begin(), ad.end() - 2), bb(bd.begin(), bd.end() - 2), batch;
  try {
    batch = ir::broadcastExtents(ab, bb);
  } catch (const Error& e) {
    ctx.fail(std::string("batch dims do not broadcast: ") + e.what());
  }
  auto ia = broadcastIndex(ab, batch), ib = broadcastIndex(bb, batch);
  for (int64_t i : ia) p.aBatch.push_back(i * p.M * p.K);
  for (int64_t i : ib) p.bBatch.push_back(i * p.K * p.N);
  p.outDims = batch;
  if (!aVec) p.outDims.push_back(p.M);
  if (!bVec) p.outDims.push_back(p.N);
  return p;
}

template <typename A>
void runMatMul(const MatMulPlan& p, const A* a, const A* b, A* y) {
  for (size_t bi = 0; bi < p.aBatch.size(); ++bi)
    gemmAccumulate(p.M, p.N, p.K, a + p.aBatch[bi], p.K, 1, b + p.bBatch[bi], p.N, y + int64_t(bi) * p.M * p.N, p.N);
}

template <typename T, typename A>
std::vector<A> accVector(const Tensor& t) {
  std::vector<A> v(size_t(t.numel()));
  const T* p = t.data<T>();
  for (size_t i = 0; i < v.size(); ++i) v[i] = toAcc<A>(p[i]);
  return v;
}

void matmulKernel(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  ctx.check(a.dtype() == b.dtype(), "A and B must have the same type");
  MatMulPlan p = planMatMul(ctx, a.dims(), b.dims());
  dispatchNumeric(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = AccT<T>;
    Tensor& out = ctx.allocOutput(0, a.dtype(), p.outDims);
    if constexpr (std::is_same_v<T, A>) {
      runMatMul(p, a.data<A>(), b.data<A>(), out.data<A>());
    } else {
      std::vector<A> av = accVector<T, A>(a), bv = accVector<T, A>(b), y(size_t(out.numel()), A(0));
      runMatMul(p, av.data(), bv.data(), y.data());
      T* o = out.data<T>();
      for (size_t i = 0; i < y.size(); ++i) o[i] = T(y[i]);
    }
  });
}

// x - zero_point as i64, the zero point per tensor, per row (A: [M] or [...,M,1]) or per
// column (B: [N] or [...,1,N]), broadcast against x.
std::vector<int64_t> subtractZeroPoint(const KernelContext& ctx, const Tensor& x, size_t zi, bool isA,
                                       const char* what) {
  std::vector<int64_t> v(size_t(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) v[size_t(i)] = x.getInt(i);
  if (!ctx.hasInput(zi)) return v;
  const Tensor& z = ctx.input(zi);
  ctx.check(z.dtype() == x.dtype(), std::string(what) + " must have the type of its data");
  if (z.numel() == 1) {
    const int64_t zp = z.getInt(0);
    for (int64_t& e : v) e -= zp;
    return v;
  }
  std::vector<int64_t> zd = z.dims();
  if (zd.size() == 1 && x.rank() >= 2) zd = isA ? std::vector<int64_t>{zd[0], 1} : std::vector<int64_t>{1, zd[0]};
  bool ok = zd.size() <= x.rank();
  for (size_t i = 0; ok && i < zd.size(); ++i) {
    int64_t xd = x.dim(x.rank() - zd.size() + i);
    ok = zd[i] == 1 || zd[i] == xd;
  }
  ctx.check(ok, std::string(what) + " " + z.summary() + " does not broadcast to " + x.summary());
  auto idx = broadcastIndex(zd, x.dims());
  for (size_t i = 0; i < v.size(); ++i) v[i] -= z.getInt(idx[i]);
  return v;
}

std::vector<int64_t> integerMatMul(const KernelContext& ctx, const Tensor& a, size_t azp, const Tensor& b,
                                   size_t bzp, const MatMulPlan& p) {
  ctx.check((a.dtype() == DataType::kU8 || a.dtype() == DataType::kI8) &&
                (b.dtype() == DataType::kU8 || b.dtype() == DataType::kI8),
            "A and B must be u8 or i8");
  std::vector<int64_t> av = subtractZeroPoint(ctx, a, azp, true, "a_zero_point");
  std::vector<int64_t> bv = subtractZeroPoint(ctx, b, bzp, false, "b_zero_point");
  std::vector<int64_t> y(size_t(ir::numelOf(p.outDims)), 0);
  runMatMul(p, av.data(), bv.data(), y.data());
  return y;
}

void matmulIntegerKernel(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  MatMulPlan p = planMatMul(ctx, a.dims(), b.dims());
  std::vector<int64_t> y = integerMatMul(ctx, a, 2, b, 3, p);
  Tensor& out = ctx.allocOutput(0, DataType::kI32, p.outDims);
  for (size_t i = 0; i < y.size(); ++i) out.data<int32_t>()[i] = int32_t(y[i]);
}

// Scale of input i: per tensor, or `n` values along rows (A) / columns (B).
std::vector<float> matScale(const KernelContext& ctx, size_t i, int64_t n, const char* what) {
  const Tensor& t = ctx.input(i);
  ctx.check(ir::isFloat(t.dtype()), std::string(what) + " must be a float tensor");
  ctx.check(t.numel() == 1 || t.numel() == n,
            std::string(what) + " must be a scalar or have " + std::to_string(n) + " values, got " + t.summary());
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) v[size_t(k)] = float(t.getDouble(t.numel() == 1 ? 0 : k));
  return v;
}

void qlinearMatmulKernel(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(3);
  MatMulPlan p = planMatMul(ctx, a.dims(), b.dims());
  std::vector<int64_t> acc = integerMatMul(ctx, a, 2, b, 5, p);
  const std::vector<float> as = matScale(ctx, 1, p.M, "a_scale"), bs = matScale(ctx, 4, p.N, "b_scale");
  const float ys = matScale(ctx, 6, 1, "y_scale")[0];
  const DataType outType = ctx.hasInput(7) ? ctx.input(7).dtype() : a.dtype();
  ctx.check(outType == DataType::kU8 || outType == DataType::kI8, "y_zero_point must be u8 or i8");
  int64_t yzp = 0;
  if (ctx.hasInput(7)) {
    ctx.check(ctx.input(7).numel() == 1, "y_zero_point must be a scalar");
    yzp = ctx.input(7).getInt(0);
  }
  // Scales of f16/bf16 type combine in their own precision, as the ONNX reference does.
  const DataType st = ctx.input(1).dtype();
  auto narrow = [&](float v) {
    if (st == DataType::kF16) return float(ir::Half(v));
    if (st == DataType::kBF16) return float(ir::BFloat16(v));
    return v;
  };
  int64_t lo, hi;
  intRange(outType, &lo, &hi);
  Tensor& out = ctx.allocOutput(0, outType, p.outDims);
  const int64_t batches = int64_t(p.aBatch.size());
  for (int64_t bi = 0; bi < batches; ++bi)
    for (int64_t m = 0; m < p.M; ++m)
      for (int64_t n = 0; n < p.N; ++n) {
        const int64_t i = (bi * p.M + m) * p.N + n;
        const float mult = narrow(narrow(as[size_t(m)] * bs[size_t(n)]) / ys);
        // Round, then add the zero point (QuantizeLinear's order, as onnxruntime does).
        setIntElement(out, i, roundSaturate(std::nearbyint(double(acc[size_t(i)]) * double(mult)) + double(yzp), lo, hi));
      }
}

void gemmKernel(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  ctx.check(a.dtype() == b.dtype(), "A and B must have the same type");
  ctx.check(a.rank() == 2 && b.rank() == 2, "A and B must be 2-D, got " + a.summary() + " and " + b.summary());
  const bool ta = ctx.attrs().getInt("transA", 0) != 0, tb = ctx.attrs().getInt("transB", 0) != 0;
  const double alpha = ctx.attrs().getFloat("alpha", 1.0f), beta = ctx.attrs().getFloat("beta", 1.0f);
  const int64_t M = ta ? a.dim(1) : a.dim(0), K = ta ? a.dim(0) : a.dim(1);
  const int64_t Kb = tb ? b.dim(1) : b.dim(0), N = tb ? b.dim(0) : b.dim(1);
  ctx.check(K == Kb, "inner dims differ: A " + a.summary() + (ta ? "^T" : "") + " x B " + b.summary() + (tb ? "^T" : ""));
  std::vector<int64_t> cIdx;
  const Tensor* c = ctx.hasInput(2) ? &ctx.input(2) : nullptr;
  if (c) {
    ctx.check(c->dtype() == a.dtype(), "C must have the type of A");
    bool ok = c->rank() <= 2;
    for (size_t i = 0; ok && i < c->rank(); ++i) {
      int64_t want = (c->rank() - i == 1) ? N : M;
      ok = c->dim(i) == 1 || c->dim(i) == want;
    }
    ctx.check(ok, "C " + c->summary() + " does not broadcast to [" + std::to_string(M) + "," + std::to_string(N) + "]");
    cIdx = broadcastIndex(c->dims(), {M, N});
  }
  dispatchNumeric(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = AccT<T>;
    std::vector<A> av = accVector<T, A>(a), bv = accVector<T, A>(b);
    if (tb) {  // B' row-major [K][N]
      std::vector<A> t(bv.size());
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) t[size_t(k * N + n)] = bv[size_t(n * K + k)];
      bv.swap(t);
    }
    std::vector<A> acc(size_t(M * N), A(0));
    gemmAccumulate(M, N, K, av.data(), ta ? 1 : K, ta ? M : 1, bv.data(), N, acc.data(), N);
    Tensor& out = ctx.allocOutput(0, a.dtype(), {M, N});
    T* o = out.data<T>();
    for (int64_t i = 0; i < M * N; ++i) {
      if constexpr (std::is_floating_point_v<A>) {
        A v = A(alpha) * acc[size_t(i)];
        if (c) v += A(beta) * A(ComputeT<T>(c->data<T>()[cIdx[size_t(i)]]));
        o[i] = T(v);
      } else {
        double v = alpha * double(int64_t(acc[size_t(i)]));
        if (c) v += beta * double(c->data<T>()[cIdx[size_t(i)]]);
        o[i] = T(int64_t(v));
      }
    }
  });
}

}  // namespace

void registerMatMulKernels(KernelRegistry& r) {
  r.add("MatMul", matmulKernel);
  r.add("MatMulInteger", matmulIntegerKernel);
  r.add("QLinearMatMul", qlinearMatmulKernel);
  r.add("Gemm", gemmKernel);
}

}  // namespace anvil::cpu::kernels::nn
