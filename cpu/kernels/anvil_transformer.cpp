// Reference kernels of the anvil-domain transformer ops: anvil.Attention (schema and
// semantics in ir/ops/anvil_transformer.cpp). Plain loops: per (batch, query row) the
// scores Q.K^T in the compute type, scaled, masked, a numerically stable softmax (max
// subtracted), then the weighted sum of V rows.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/kernels/util.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

namespace {

// Element steps of `dims` (right-aligned) along each axis of an `outRank`-dim index space
// of extents `out`; 0 where the tensor is broadcast.
std::vector<int64_t> broadcastSteps(const std::vector<int64_t>& dims, const std::vector<int64_t>& out) {
  std::vector<int64_t> steps(out.size(), 0);
  const std::vector<int64_t> s = stridesOf(dims);
  for (size_t i = 0; i < dims.size(); ++i) {
    const size_t o = out.size() - dims.size() + i;
    steps[o] = dims[i] == 1 ? 0 : s[i];
  }
  return steps;
}

enum class MaskKind { kNone, kAdd, kFillTrue, kFillFalse };

template <typename T>
void attention(KernelContext& ctx, MaskKind kind, double scaleD, double fillD) {
  using C = ComputeT<T>;
  const Tensor &q = ctx.input(0), &k = ctx.input(1), &v = ctx.input(2);
  const size_t r = q.rank();
  const int64_t sq = q.dim(r - 2), d = q.dim(r - 1), sk = k.dim(r - 2), dv = v.dim(r - 1);
  // Batch dims: numpy broadcast of Q's, K's and V's leading dims.
  auto lead = [](const Tensor& t) { return std::vector<int64_t>(t.dims().begin(), t.dims().end() - 2); };
  std::vector<int64_t> batch;
  try {
    batch = ir::broadcastExtents(ir::broadcastExtents(lead(q), lead(k)), lead(v));
  } catch (const Error& e) {
    ctx.fail(std::string("batch dims of Q, K, V do not broadcast: ") + e.what());
  }
  std::vector<int64_t> outDims = batch, scoreDims = batch;
  outDims.push_back(sq);
  outDims.push_back(dv);
  scoreDims.push_back(sq);
  scoreDims.push_back(sk);
  Tensor& y = ctx.allocOutput(0, q.dtype(), outDims);
  const int64_t nb = ir::numelOf(batch);
  // Per batch index, the offset of each operand's [S, D] matrix (and the mask's).
  auto batchOffsets = [&](const std::vector<int64_t>& dims, int64_t matrix) {
    std::vector<int64_t> offs(size_t(nb), 0);
    const std::vector<int64_t> steps = broadcastSteps(dims, batch);
    std::vector<int64_t> pos(batch.size(), 0);
    for (int64_t b = 0; b < nb; ++b) {
      int64_t off = 0;
      for (size_t i = 0; i < batch.size(); ++i) off += pos[i] * steps[i];
      offs[size_t(b)] = off * matrix;
      for (int64_t i = int64_t(batch.size()) - 1; i >= 0; --i) {
        if (++pos[size_t(i)] < batch[size_t(i)]) break;
        pos[size_t(i)] = 0;
      }
    }
    return offs;
  };
  const std::vector<int64_t> qo = batchOffsets(lead(q), sq * d), ko = batchOffsets(lead(k), sk * d),
                             vo = batchOffsets(lead(v), sk * dv);
  // The mask: element offset = maskBase[b] + i * mStepI + j * mStepJ.
  const Tensor* mask = kind == MaskKind::kNone ? nullptr : &ctx.input(3);
  std::vector<int64_t> maskBase(size_t(nb), 0);
  int64_t mStepI = 0, mStepJ = 0;
  if (mask) {
    ctx.check(mask->rank() <= scoreDims.size(), "mask " + mask->summary() + " has a higher rank than the scores");
    try {
      ctx.check(ir::broadcastExtents(mask->dims(), scoreDims) == scoreDims,
                "mask " + mask->summary() + " does not broadcast to the scores");
    } catch (const Error&) {
      ctx.fail("mask " + mask->summary() + " does not broadcast to the scores");
    }
    const std::vector<int64_t> steps = broadcastSteps(mask->dims(), scoreDims);
    mStepI = steps[scoreDims.size() - 2];
    mStepJ = steps[scoreDims.size() - 1];
    std::vector<int64_t> pos(batch.size(), 0);
    for (int64_t b = 0; b < nb; ++b) {
      int64_t off = 0;
      for (size_t i = 0; i < batch.size(); ++i) off += pos[i] * steps[i];
      maskBase[size_t(b)] = off;
      for (int64_t i = int64_t(batch.size()) - 1; i >= 0; --i) {
        if (++pos[size_t(i)] < batch[size_t(i)]) break;
        pos[size_t(i)] = 0;
      }
    }
  }
  const T* qp = q.data<T>();
  const T* kp = k.data<T>();
  const T* vp = v.data<T>();
  T* yp = y.data<T>();
  const C scale = C(scaleD), fill = C(fillD);
  std::vector<C> s(static_cast<size_t>(sk), C(0));
  std::vector<C> acc(static_cast<size_t>(dv), C(0));
  for (int64_t b = 0; b < nb; ++b) {
    for (int64_t i = 0; i < sq; ++i) {
      const T* qr = qp + qo[size_t(b)] + i * d;
      C m = -std::numeric_limits<C>::infinity();
      bool first = true;
      for (int64_t j = 0; j < sk; ++j) {
        const T* kr = kp + ko[size_t(b)] + j * d;
        C dot = 0;
        for (int64_t t = 0; t < d; ++t) dot += C(qr[t]) * C(kr[t]);
        C x = dot * scale;
        if (mask) {
          const int64_t mo = maskBase[size_t(b)] + i * mStepI + j * mStepJ;
          if (kind == MaskKind::kAdd) x = x + C(mask->data<T>()[mo]);
          else if (mask->data<bool>()[mo] == (kind == MaskKind::kFillTrue)) x = fill;
        }
        s[size_t(j)] = x;
        // The first maximum, as the Softmax reference kernel takes it (NaN never wins).
        if (first || x > m) m = x;
        first = false;
      }
      C sum = 0;
      for (int64_t j = 0; j < sk; ++j) {
        s[size_t(j)] = std::exp(s[size_t(j)] - m);
        sum += s[size_t(j)];
      }
      std::fill(acc.begin(), acc.end(), C(0));
      for (int64_t j = 0; j < sk; ++j) {
        const C p = s[size_t(j)] / sum;
        const T* vr = vp + vo[size_t(b)] + j * dv;
        for (int64_t t = 0; t < dv; ++t) acc[size_t(t)] += p * C(vr[t]);
      }
      T* yr = yp + (b * sq + i) * dv;
      for (int64_t t = 0; t < dv; ++t) yr[t] = T(acc[size_t(t)]);
    }
  }
}

void attentionKernel(KernelContext& ctx) {
  const std::string kindName = ctx.attrs().getString("mask_kind", "none");
  MaskKind kind;
  if (kindName == "none") kind = MaskKind::kNone;
  else if (kindName == "add") kind = MaskKind::kAdd;
  else if (kindName == "fill_true") kind = MaskKind::kFillTrue;
  else if (kindName == "fill_false") kind = MaskKind::kFillFalse;
  else ctx.fail("mask_kind must be none, add, fill_true or fill_false, got '" + kindName + "'");
  ctx.check((kind != MaskKind::kNone) == ctx.hasInput(3), "the mask input (3) must be given exactly when mask_kind is not none");
  const Tensor &q = ctx.input(0), &k = ctx.input(1), &v = ctx.input(2);
  ctx.check(k.dtype() == q.dtype() && v.dtype() == q.dtype(), "Q, K and V must have one element type");
  const size_t r = q.rank();
  ctx.check(r >= 2 && k.rank() == r && v.rank() == r, "Q, K and V must have one rank >= 2, got " + q.summary() + ", " +
                                                          k.summary() + ", " + v.summary());
  ctx.check(q.dim(r - 1) == k.dim(r - 1), "Q " + q.summary() + " and K " + k.summary() + " differ in D");
  ctx.check(k.dim(r - 2) == v.dim(r - 2), "K " + k.summary() + " and V " + v.summary() + " differ in Sk");
  if (kind == MaskKind::kAdd) ctx.check(ctx.input(3).dtype() == q.dtype(), "an additive mask must have Q's type");
  if (kind == MaskKind::kFillTrue || kind == MaskKind::kFillFalse)
    ctx.check(ctx.input(3).dtype() == DataType::kBool, "a fill mask must be bool");
  const double scale = ctx.attrs().getFloat("scale", 1.0f);
  const double fill = ctx.attrs().getFloat("mask_fill", -std::numeric_limits<float>::infinity());
  dispatchFloat(q.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    attention<T>(ctx, kind, scale, fill);
  });
}

}  // namespace

void registerAnvilTransformerKernels(KernelRegistry& r) { r.add("Attention", "anvil", attentionKernel); }

}  // namespace anvil::cpu::kernels
