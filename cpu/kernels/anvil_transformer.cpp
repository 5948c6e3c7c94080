// Reference kernels of the anvil-domain transformer ops: anvil.Attention (schema and
// semantics in ir/ops/anvil_transformer.cpp). Plain loops: per (batch, query row) the
// scores Q.K^T in the compute type, scaled, masked, a numerically stable softmax (max
// subtracted), then the weighted sum of V rows.
#include "cpu/kernels/anvil_transformer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/kernels/util.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

namespace {

// Element steps of `dims` (right-aligned) along each axis of the index space `out`; 0 where
// the tensor is broadcast.
std::vector<int64_t> broadcastSteps(const std::vector<int64_t>& dims, const std::vector<int64_t>& out) {
  std::vector<int64_t> steps(out.size(), 0);
  const std::vector<int64_t> s = stridesOf(dims);
  for (size_t i = 0; i < dims.size(); ++i) {
    const size_t o = out.size() - dims.size() + i;
    steps[o] = dims[i] == 1 ? 0 : s[i];
  }
  return steps;
}

// For each flat index of `batch`, the sum of its coordinates times `steps` (the first
// batch.size() entries), times `scale`.
std::vector<int64_t> batchOffsets(const std::vector<int64_t>& batch, const std::vector<int64_t>& steps, int64_t scale) {
  const int64_t nb = ir::numelOf(batch);
  std::vector<int64_t> offs(static_cast<size_t>(nb), 0);
  std::vector<int64_t> pos(batch.size(), 0);
  for (int64_t b = 0; b < nb; ++b) {
    int64_t off = 0;
    for (size_t i = 0; i < batch.size(); ++i) off += pos[i] * steps[i];
    offs[size_t(b)] = off * scale;
    for (size_t i = batch.size(); i-- > 0;) {
      if (++pos[i] < batch[i]) break;
      pos[i] = 0;
    }
  }
  return offs;
}

template <typename T>
void attention(const AttentionPlan& p, const Tensor& q, const Tensor& k, const Tensor& v) {
  using C = ComputeT<T>;
  const T* qp = q.data<T>();
  const T* kp = k.data<T>();
  const T* vp = v.data<T>();
  T* yp = p.out->data<T>();
  const C scale = C(p.scale), fill = C(p.fill);
  std::vector<C> s(static_cast<size_t>(p.sk), C(0));
  std::vector<C> acc(static_cast<size_t>(p.dv), C(0));
  for (int64_t b = 0; b < p.batches; ++b) {
    for (int64_t i = 0; i < p.sq; ++i) {
      const T* qr = qp + p.qOff[size_t(b)] + i * p.d;
      C m = -std::numeric_limits<C>::infinity();
      for (int64_t j = 0; j < p.sk; ++j) {
        const T* kr = kp + p.kOff[size_t(b)] + j * p.d;
        C dot = 0;
        for (int64_t t = 0; t < p.d; ++t) dot += C(qr[t]) * C(kr[t]);
        C x = dot * scale;
        if (p.mask) {
          const int64_t mo = p.maskBase[size_t(b)] + i * p.maskStepI + j * p.maskStepJ;
          if (p.kind == AttentionMask::kAdd) x = x + C(p.mask->data<T>()[mo]);
          else if (p.mask->data<bool>()[mo] == (p.kind == AttentionMask::kFillTrue)) x = fill;
        }
        s[size_t(j)] = x;
        // The first maximum, as the Softmax reference kernel takes it (NaN never wins).
        if (j == 0 || x > m) m = x;
      }
      C sum = 0;
      for (int64_t j = 0; j < p.sk; ++j) {
        s[size_t(j)] = std::exp(s[size_t(j)] - m);
        sum += s[size_t(j)];
      }
      std::fill(acc.begin(), acc.end(), C(0));
      for (int64_t j = 0; j < p.sk; ++j) {
        const C w = s[size_t(j)] / sum;
        const T* vr = vp + p.vOff[size_t(b)] + j * p.dv;
        for (int64_t t = 0; t < p.dv; ++t) acc[size_t(t)] += w * C(vr[t]);
      }
      T* yr = yp + (b * p.sq + i) * p.dv;
      for (int64_t t = 0; t < p.dv; ++t) yr[t] = T(acc[size_t(t)]);
    }
  }
}

// The packed form (qkv_packed=1): per (batch b, head h, query row i) the same loops, the
// operands addressed in QKV directly. Element (b, s, column c) of a [B, S, W] tensor in
// layout bshd is at (b * S + s) * W + c, in layout sbhd at (s * B + b) * W + c.
template <typename T>
void packedAttention(KernelContext& ctx, AttentionMask kind, bool bshd, int64_t heads, int64_t d) {
  using C = ComputeT<T>;
  const Tensor& qkv = ctx.input(0);
  const int64_t nb = qkv.dim(bshd ? 0 : 1), ns = qkv.dim(bshd ? 1 : 0), e = heads * d;
  Tensor& out = ctx.allocOutput(0, qkv.dtype(), {qkv.dim(0), qkv.dim(1), e});
  const T* x = qkv.data<T>();
  T* y = out.data<T>();
  auto at = [&](int64_t b, int64_t s, int64_t w) { return bshd ? (b * ns + s) * w : (s * nb + b) * w; };
  const C scale = C(ctx.attrs().getFloat("scale", 1.0f));
  const C fill = C(ctx.attrs().getFloat("mask_fill", -std::numeric_limits<float>::infinity()));
  // The mask against the scores [B, H, S, S]: steps of its right-aligned axes, 0 where broadcast.
  const Tensor* mask = kind == AttentionMask::kNone ? nullptr : &ctx.input(1);
  std::vector<int64_t> ms(4, 0);
  if (mask) {
    const std::vector<int64_t> scores = {nb, heads, ns, ns};
    bool fits = mask->rank() <= 4;
    try {
      fits = fits && ir::broadcastExtents(mask->dims(), scores) == scores;
    } catch (const Error&) {
      fits = false;
    }
    ctx.check(fits, "mask " + mask->summary() + " does not broadcast to the scores " +
                        ir::Shape::fromExtents(scores).str());
    ms = broadcastSteps(mask->dims(), scores);
  }
  std::vector<C> s(static_cast<size_t>(ns), C(0));
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < ns; ++i) {
        const T* qr = x + at(b, i, 3 * e) + h * d;
        C m = -std::numeric_limits<C>::infinity();
        for (int64_t j = 0; j < ns; ++j) {
          const T* kr = x + at(b, j, 3 * e) + e + h * d;
          C dot = 0;
          for (int64_t t = 0; t < d; ++t) dot += C(qr[t]) * C(kr[t]);
          C v = dot * scale;
          if (mask) {
            const int64_t mo = b * ms[0] + h * ms[1] + i * ms[2] + j * ms[3];
            if (kind == AttentionMask::kAdd) v = v + C(mask->data<T>()[mo]);
            else if (mask->data<bool>()[mo] == (kind == AttentionMask::kFillTrue)) v = fill;
          }
          s[size_t(j)] = v;
          if (j == 0 || v > m) m = v;  // the first maximum, as the plain form takes it
        }
        C sum = 0;
        for (int64_t j = 0; j < ns; ++j) {
          s[size_t(j)] = std::exp(s[size_t(j)] - m);
          sum += s[size_t(j)];
        }
        T* yr = y + at(b, i, e) + h * d;
        for (int64_t t = 0; t < d; ++t) {
          C acc = 0;
          for (int64_t j = 0; j < ns; ++j) acc += s[size_t(j)] / sum * C(x[at(b, j, 3 * e) + 2 * e + h * d + t]);
          yr[t] = T(acc);
        }
      }
}

AttentionMask maskKindOf(KernelContext& ctx) {
  const std::string kindName = ctx.attrs().getString("mask_kind", "none");
  if (kindName == "none") return AttentionMask::kNone;
  if (kindName == "add") return AttentionMask::kAdd;
  if (kindName == "fill_true") return AttentionMask::kFillTrue;
  if (kindName == "fill_false") return AttentionMask::kFillFalse;
  ctx.fail("mask_kind must be none, add, fill_true or fill_false, got '" + kindName + "'");
}

void packedAttentionKernel(KernelContext& ctx) {
  const AttentionMask kind = maskKindOf(ctx);
  const std::string layout = ctx.attrs().getString("layout", "bshd");
  ctx.check(layout == "bshd" || layout == "sbhd", "layout must be bshd or sbhd, got '" + layout + "'");
  const int64_t heads = ctx.attrs().getInt("num_heads", 0), d = ctx.attrs().getInt("head_size", 0);
  ctx.check(heads > 0 && d > 0, "the packed form needs num_heads > 0 and head_size > 0");
  ctx.check((kind != AttentionMask::kNone) == ctx.hasInput(1),
            "the mask input (1) must be given exactly when mask_kind is not none");
  const Tensor& qkv = ctx.input(0);
  ctx.check(qkv.rank() == 3 && qkv.dim(2) == 3 * heads * d,
            "QKV must be [B, S, 3 * num_heads * head_size], got " + qkv.summary());
  if (kind == AttentionMask::kAdd) ctx.check(ctx.input(1).dtype() == qkv.dtype(), "an additive mask must have QKV's type");
  if (kind == AttentionMask::kFillTrue || kind == AttentionMask::kFillFalse)
    ctx.check(ctx.input(1).dtype() == DataType::kBool, "a fill mask must be bool");
  dispatchFloat(qkv.dtype(), [&](auto tag) {
    packedAttention<typename decltype(tag)::type>(ctx, kind, layout == "bshd", heads, d);
  });
}

void attentionKernel(KernelContext& ctx) {
  if (ctx.attrs().getInt("qkv_packed", 0) != 0) return packedAttentionKernel(ctx);
  const AttentionPlan p = planAttention(ctx);
  dispatchFloat(ctx.input(0).dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    attention<T>(p, ctx.input(0), ctx.input(1), ctx.input(2));
  });
}

}  // namespace

AttentionPlan planAttention(KernelContext& ctx) {
  AttentionPlan p;
  const std::string kindName = ctx.attrs().getString("mask_kind", "none");
  if (kindName == "none") p.kind = AttentionMask::kNone;
  else if (kindName == "add") p.kind = AttentionMask::kAdd;
  else if (kindName == "fill_true") p.kind = AttentionMask::kFillTrue;
  else if (kindName == "fill_false") p.kind = AttentionMask::kFillFalse;
  else ctx.fail("mask_kind must be none, add, fill_true or fill_false, got '" + kindName + "'");
  ctx.check((p.kind != AttentionMask::kNone) == ctx.hasInput(3),
            "the mask input (3) must be given exactly when mask_kind is not none");
  const Tensor &q = ctx.input(0), &k = ctx.input(1), &v = ctx.input(2);
  ctx.check(k.dtype() == q.dtype() && v.dtype() == q.dtype(), "Q, K and V must have one element type");
  const size_t r = q.rank();
  ctx.check(r >= 2 && k.rank() == r && v.rank() == r, "Q, K and V must have one rank >= 2, got " + q.summary() + ", " +
                                                          k.summary() + ", " + v.summary());
  ctx.check(q.dim(r - 1) == k.dim(r - 1), "Q " + q.summary() + " and K " + k.summary() + " differ in D");
  ctx.check(k.dim(r - 2) == v.dim(r - 2), "K " + k.summary() + " and V " + v.summary() + " differ in Sk");
  if (p.kind == AttentionMask::kAdd) ctx.check(ctx.input(3).dtype() == q.dtype(), "an additive mask must have Q's type");
  if (p.kind == AttentionMask::kFillTrue || p.kind == AttentionMask::kFillFalse)
    ctx.check(ctx.input(3).dtype() == DataType::kBool, "a fill mask must be bool");
  p.scale = ctx.attrs().getFloat("scale", 1.0f);
  p.fill = ctx.attrs().getFloat("mask_fill", -std::numeric_limits<float>::infinity());
  p.sq = q.dim(r - 2);
  p.d = q.dim(r - 1);
  p.sk = k.dim(r - 2);
  p.dv = v.dim(r - 1);
  // Batch dims: numpy broadcast of Q's, K's and V's leading dims.
  auto lead = [](const Tensor& t) { return std::vector<int64_t>(t.dims().begin(), t.dims().end() - 2); };
  std::vector<int64_t> batch;
  try {
    batch = ir::broadcastExtents(ir::broadcastExtents(lead(q), lead(k)), lead(v));
  } catch (const Error& e) {
    ctx.fail(std::string("batch dims of Q, K, V do not broadcast: ") + e.what());
  }
  p.batches = ir::numelOf(batch);
  p.qOff = batchOffsets(batch, broadcastSteps(lead(q), batch), p.sq * p.d);
  p.kOff = batchOffsets(batch, broadcastSteps(lead(k), batch), p.sk * p.d);
  p.vOff = batchOffsets(batch, broadcastSteps(lead(v), batch), p.sk * p.dv);
  std::vector<int64_t> scoreDims = batch;
  scoreDims.push_back(p.sq);
  scoreDims.push_back(p.sk);
  if (p.kind != AttentionMask::kNone) {
    const Tensor& mask = ctx.input(3);
    bool fits = mask.rank() <= scoreDims.size();
    try {
      fits = fits && ir::broadcastExtents(mask.dims(), scoreDims) == scoreDims;
    } catch (const Error&) {
      fits = false;
    }
    ctx.check(fits, "mask " + mask.summary() + " does not broadcast to the scores " +
                        ir::Shape::fromExtents(scoreDims).str());
    const std::vector<int64_t> steps = broadcastSteps(mask.dims(), scoreDims);
    p.maskStepI = steps[scoreDims.size() - 2];
    p.maskStepJ = steps[scoreDims.size() - 1];
    p.maskBase = batchOffsets(batch, steps, 1);
    p.mask = &mask;
  }
  std::vector<int64_t> outDims = batch;
  outDims.push_back(p.sq);
  outDims.push_back(p.dv);
  p.out = &ctx.allocOutput(0, q.dtype(), outDims);
  return p;
}

void registerAnvilTransformerKernels(KernelRegistry& r) { r.add("Attention", "anvil", attentionKernel); }

}  // namespace anvil::cpu::kernels
