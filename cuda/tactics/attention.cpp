// anvil.Attention on the CUDA backend: the f32 flash-style kernel (cuda/attention.h) over the
// plain form (Q, K, V of rank 2 to 4, batch dims broadcast) and the packed form (heads read in
// place from one QKV projection, layout bshd or sbhd), with every mask kind of the op (add,
// fill_true, fill_false) broadcast to the scores. Head sizes up to 128.
#include <limits>
#include <string>
#include <vector>

#include "cuda/attention.h"
#include "cuda/tactics/tactic_util.h"
#include "cuda/tactics/tactics.h"

namespace anvil::cuda::tactics {

namespace {

struct AttentionParams {
  bool packed = false;
  bool bshd = true;
  std::int64_t heads = 0, headSize = 0;
  AttentionMask mask = AttentionMask::kNone;
  float scale = 1.0f;
  float fill = -std::numeric_limits<float>::infinity();
};

bool maskKindOf(const std::string& s, AttentionMask* out) {
  if (s == "none") *out = AttentionMask::kNone;
  else if (s == "add") *out = AttentionMask::kAdd;
  else if (s == "fill_true") *out = AttentionMask::kFillTrue;
  else if (s == "fill_false") *out = AttentionMask::kFillFalse;
  else return false;
  return true;
}

bool headFits(const ir::TensorType& t) {
  if (!t.shape.rankKnown() || t.shape.rank() < 1) return false;
  const ir::Dim& d = t.shape[t.shape.rank() - 1];
  return d.isStatic() && d.value() >= 1 && d.value() <= attentionMaxHead();
}

bool attentionSupports(const ir::Node& n, const std::vector<ir::TensorType>& types) {
  AttentionMask kind;
  if (!maskKindOf(n.attrs().getString("mask_kind", "none"), &kind)) return false;
  if (types.empty() || types[0].dtype != DataType::kF32 || !types[0].shape.rankKnown()) return false;
  const bool packed = n.attrs().getInt("qkv_packed", 0) != 0;
  const size_t maskInput = packed ? 1 : 3;
  const bool hasMask = maskInput < types.size() && types[maskInput].dtype != DataType::kUndefined;
  if (hasMask != (kind != AttentionMask::kNone)) return false;
  if (hasMask) {
    const ir::TensorType& m = types[maskInput];
    if (m.dtype != (kind == AttentionMask::kAdd ? DataType::kF32 : DataType::kBool) || !m.shape.rankKnown() ||
        m.shape.rank() > 4)
      return false;
  }
  if (packed) {
    const std::string layout = n.attrs().getString("layout", "bshd");
    const std::int64_t h = n.attrs().getInt("num_heads", 0), d = n.attrs().getInt("head_size", 0);
    return (layout == "bshd" || layout == "sbhd") && h > 0 && d >= 1 && d <= attentionMaxHead() &&
           types[0].shape.rank() == 3;
  }
  if (types.size() < 3) return false;
  const size_t r = types[0].shape.rank();
  if (r < 2 || r > 4) return false;
  for (size_t i = 0; i < 3; ++i)
    if (types[i].dtype != DataType::kF32 || !headFits(types[i]) || types[i].shape.rank() != r) return false;
  return !hasMask || types[3].shape.rank() <= r;
}

void attentionPrepare(const runtime::PrepareInfo& info, runtime::Prepared* prepared) {
  const ir::Node& n = *info.node;
  AttentionParams p;
  maskKindOf(n.attrs().getString("mask_kind", "none"), &p.mask);
  p.packed = n.attrs().getInt("qkv_packed", 0) != 0;
  p.bshd = n.attrs().getString("layout", "bshd") == "bshd";
  p.heads = n.attrs().getInt("num_heads", 0);
  p.headSize = n.attrs().getInt("head_size", 0);
  p.scale = n.attrs().getFloat("scale", 1.0f);
  p.fill = n.attrs().getFloat("mask_fill", -std::numeric_limits<float>::infinity());
  prepared->setParams(p);
}

// The element steps of `t`'s right-aligned axes against an index space of `rank` axes with
// extents `space`: 0 where t has extent 1 or lacks the axis. False when t does not broadcast
// to the space without enlarging it.
bool broadcastSteps(const runtime::TensorView& t, const std::int64_t* space, int rank, std::int64_t* steps) {
  if (t.rank > rank) return false;
  std::int64_t stride = 1;
  for (int x = rank - 1; x >= 0; --x) {
    const int tx = x - (rank - t.rank);
    if (tx < 0) {
      steps[x] = 0;
      continue;
    }
    const std::int64_t e = t.dims[tx];
    if (e != 1 && e != space[x]) return false;
    steps[x] = e == 1 ? 0 : stride;
    stride *= e;
  }
  return true;
}

void attentionRun(const runtime::StepArgs& a) {
  const AttentionParams& p = a.paramsAs<AttentionParams>();
  runtime::TensorView& Y = a.out(0);
  AttentionDesc d;
  d.scale = p.scale;
  d.fill = p.fill;
  d.maskKind = p.mask;
  d.y = Y.as<float>();
  // The scores' index space (b, h, i, j), for the mask.
  std::int64_t scores[4];
  int maskInput;
  if (p.packed) {
    const runtime::TensorView& x = a.in(0);
    const std::int64_t e = p.heads * p.headSize, w = 3 * e;
    if (x.rank != 3 || x.dims[2] != w) a.fail("Attention: QKV is not [B, S, 3 * num_heads * head_size]");
    const std::int64_t b = x.dims[p.bshd ? 0 : 1], s = x.dims[p.bshd ? 1 : 0];
    d.outer = b, d.heads = p.heads, d.sq = d.sk = s, d.d = d.dv = p.headSize;
    const float* base = x.as<const float>();
    d.q = base, d.k = base + e, d.v = base + 2 * e;
    const std::int64_t rowStep = p.bshd ? w : b * w, batchStep = p.bshd ? s * w : w;
    d.qB = d.kB = d.vB = batchStep;
    d.qH = d.kH = d.vH = p.headSize;
    d.qS = d.kS = d.vS = rowStep;
    d.yB = p.bshd ? s * e : e;
    d.yH = p.headSize;
    d.yS = p.bshd ? e : b * e;
    if (Y.rank != 3 || Y.dims[0] != x.dims[0] || Y.dims[1] != x.dims[1] || Y.dims[2] != e)
      a.fail("Attention: the output is not QKV's [., ., num_heads * head_size]");
    scores[0] = b, scores[1] = p.heads, scores[2] = s, scores[3] = s;
    maskInput = 1;
  } else {
    const runtime::TensorView &q = a.in(0), &k = a.in(1), &v = a.in(2);
    const int r = q.rank, nb = r - 2;
    d.sq = q.dims[r - 2], d.sk = k.dims[r - 2], d.d = q.dims[r - 1], d.dv = v.dims[r - 1];
    if (k.rank != r || v.rank != r || k.dims[r - 1] != d.d || v.dims[r - 2] != d.sk)
      a.fail("Attention: Q, K and V do not agree in rank, D or Sk");
    // The output's batch dims and each operand's steps along them.
    std::int64_t batch[2] = {1, 1};
    for (int i = 0; i < nb; ++i) {
      std::int64_t e = 1;
      for (const runtime::TensorView* t : {&q, &k, &v}) {
        const std::int64_t x = t->dims[i];
        if (x != 1 && e != 1 && x != e) a.fail("Attention: the batch dims of Q, K and V do not broadcast");
        if (x != 1) e = x;
      }
      batch[i] = e;
    }
    std::int64_t steps[3][2] = {};
    int idx = 0;
    for (const runtime::TensorView* t : {&q, &k, &v}) {
      std::int64_t stride = t->dims[r - 2] * t->dims[r - 1];
      for (int i = nb - 1; i >= 0; --i) {
        steps[idx][i] = t->dims[i] == 1 ? 0 : stride;
        stride *= t->dims[i];
      }
      ++idx;
    }
    // Two batch dims are (b, h); one is h with a single b.
    auto place = [&](int op, std::int64_t* sB, std::int64_t* sH) {
      *sB = nb == 2 ? steps[op][0] : 0;
      *sH = nb == 2 ? steps[op][1] : nb == 1 ? steps[op][0] : 0;
    };
    place(0, &d.qB, &d.qH);
    place(1, &d.kB, &d.kH);
    place(2, &d.vB, &d.vH);
    d.outer = nb == 2 ? batch[0] : 1;
    d.heads = nb == 2 ? batch[1] : nb == 1 ? batch[0] : 1;
    d.q = q.as<const float>(), d.k = k.as<const float>(), d.v = v.as<const float>();
    d.qS = d.d, d.kS = d.d, d.vS = d.dv;
    d.yS = d.dv, d.yH = d.sq * d.dv, d.yB = d.heads * d.sq * d.dv;
    if (Y.numel() != d.outer * d.heads * d.sq * d.dv) a.fail("Attention: the output's extents do not match");
    scores[0] = d.outer, scores[1] = d.heads, scores[2] = d.sq, scores[3] = d.sk;
    maskInput = 3;
  }
  if (p.mask != AttentionMask::kNone) {
    const runtime::TensorView& m = a.in(maskInput);
    // The plain form's scores have rank r (batch dims 0, 1 or 2); the mask aligns to their
    // right, so align it against the used slots of (b, h, i, j) only.
    const int rank = p.packed ? 4 : a.in(0).rank;
    std::int64_t steps[4] = {0, 0, 0, 0};
    if (!broadcastSteps(m, scores + (4 - rank), rank, steps + (4 - rank)))
      a.fail("Attention: the mask does not broadcast to the scores");
    d.mask = m.data;
    d.maskB = steps[0], d.maskH = steps[1], d.maskI = steps[2], d.maskJ = steps[3];
  }
  launchAttention(runtimeOf(a), streamOf(a), d);
}

}  // namespace

void addAttentionKernels(runtime::Kernels& k) {
  runtime::Kernel c = cudaKernel(attentionKernelName(), "Attention", "anvil");
  c.supports = attentionSupports;
  c.prepare = attentionPrepare;
  c.run = attentionRun;
  k.add(std::move(c));
}

}  // namespace anvil::cuda::tactics
