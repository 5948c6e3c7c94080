// Native kernels of anvil.Attention (f32), for the plain form and the packed one
// (qkv_packed=1: the heads read in place from the [B, S, 3E] / [S, B, 3E] projection with
// row strides, the output written in place into [B, S, E] / [S, B, E]; no copies):
// - f32_attention_tiled_6x64__avx512, f32_attention_tiled_6x16__avx2: per (batch, head) K^T
//   packed once, per block of 24 query rows S = Q K^T and Y = P V as register-tiled small
//   GEMMs, the softmax over the block's score rows between them (the schedule:
//   native_sequence_attention_tiled.inc, compiled once per ISA below).
// - f32_attention_rows__avx2 and the portable f32_attention_rows: one query row at a time
//   (dot products against every K row, the softmax, a weighted sum of V rows): K and V are
//   read again for every row. Kept for the builder to time against the tiled ones.
// Every output row is computed by one task in a fixed order, so the result does not depend
// on the thread count. Semantics: ir/ops/anvil_transformer.cpp; reference:
// cpu/kernels/anvil_transformer.cpp.
// Measured (NativeAttentionBench.DISABLED_Timing, one thread, medians, the shared AVX-512
// dev box under load, ranges over runs): vit_small's layer (packed [1, 197, 3*192], 3 heads
// of 64) rows__avx2 0.83-0.96 ms, tiled avx2 0.33-0.39 ms, tiled avx512 0.20-0.24 ms (its
// FMAs alone at the 206 GFLOP/s peak measured next to it: 0.15 ms); BERT-base's (packed
// [1, 128, 3*768], 12 heads of 64) 1.55-1.73 / 0.62-0.70 / 0.36-0.45 ms; bert_tiny's
// (packed [2, 16, 3*64], 4 heads of 16, additive mask) 10-11 / 3.3-3.5 / 2.7-3.0 us. In
// vit_small (4 layers, per-layer medians of --dumpProfile) 3.5-3.8 ms -> 0.87-0.97 ms;
// onnxruntime's QK^T MatMul + Softmax + PV MatMul nodes of the same layers: 1.06-1.24 ms.
// The rows kernels earlier: [12,128,64] avx2 1.45 ms, portable 20 ms; an AVX-512 variant of
// that schedule measured no faster, as it is bound by its loads.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "cpu/tactics/native_sequence_util.h"
#include "cpu/tactics/native_sequence_math.h"

namespace anvil::runtime::seq {

namespace {

enum class MaskKind : int32_t { kNone, kAdd, kFillTrue, kFillFalse };

struct AttnParams {
  MaskKind kind = MaskKind::kNone;
  float scale = 1.0f, fill = 0.0f;
  int32_t packed = 0, bshd = 1;  // qkv_packed, layout == "bshd"
  int64_t heads = 0, headSize = 0;
};

bool maskKindOf(const std::string& s, MaskKind* k) {
  if (s == "none") *k = MaskKind::kNone;
  else if (s == "add") *k = MaskKind::kAdd;
  else if (s == "fill_true") *k = MaskKind::kFillTrue;
  else if (s == "fill_false") *k = MaskKind::kFillFalse;
  else return false;
  return true;
}

// Where each row's operands live: flat batch index -> element offsets of that batch's Q,
// K, V, Y matrices and mask [Sq, Sk] view, from the views' extents (numpy broadcast of the
// batch dims: a dim of 1 does not advance); row i of a matrix is `i * (its row stride)`
// further. The packed form's batch axes are [B, H]: a head advances by D columns.
struct Layout {
  int nb = 0;                    // batch axes
  int64_t batch[kMaxRank] = {};  // broadcast batch extents
  int64_t qs[kMaxRank] = {}, ks[kMaxRank] = {}, vs[kMaxRank] = {}, ys[kMaxRank] = {}, ms[kMaxRank] = {};
  int64_t q0 = 0, k0 = 0, v0 = 0;  // offsets of the first Q, K, V element (packed: 0, E, 2E)
  int64_t ldq = 0, ldk = 0, ldv = 0, ldy = 0;  // row strides
  int64_t sq = 0, d = 0, sk = 0, dv = 0, batches = 1;
  int64_t maskStepI = 0, maskStepJ = 0;

  void offsets(int64_t b, int64_t* q, int64_t* k, int64_t* v, int64_t* y, int64_t* m) const {
    int64_t oq = q0, ok = k0, ov = v0, oy = 0, om = 0;
    for (int i = nb; i-- > 0;) {
      const int64_t c = b % batch[i];
      b /= batch[i];
      oq += c * qs[i];
      ok += c * ks[i];
      ov += c * vs[i];
      oy += c * ys[i];
      om += c * ms[i];
    }
    *q = oq;
    *k = ok;
    *v = ov;
    *y = oy;
    *m = om;
  }
};

// Element steps of a tensor's batch axes (its dims right-aligned to rank `r`), 0 where
// broadcast; `inner` is the element count of one matrix.
void batchSteps(const TensorView& t, int r, int nb, int64_t* steps) {
  int64_t stride = 1;
  for (int i = r - 1; i >= 0; --i) {
    const int ti = i - (r - t.rank);  // the tensor's axis, right-aligned
    const int64_t ext = ti >= 0 ? t.dims[ti] : 1;
    if (i < nb) steps[i] = ext == 1 ? 0 : stride;
    stride *= ext;
  }
}

// The mask's steps against scores of rank r (batch axes [0, nb), then [Sq, Sk]).
void maskSteps(const TensorView& m, int r, int nb, Layout* L) {
  batchSteps(m, r, nb, L->ms);
  // The mask's last two axes (right-aligned to [Sq, Sk]).
  const int64_t mj = m.rank >= 1 ? m.dims[m.rank - 1] : 1;
  const int64_t mi = m.rank >= 2 ? m.dims[m.rank - 2] : 1;
  L->maskStepJ = mj == 1 ? 0 : 1;
  L->maskStepI = mi == 1 ? 0 : mj;
}

// The packed form: batch axes [B, H], Q/K/V rows S with the projection's row stride.
Layout packedLayoutOf(const StepArgs& a, const AttnParams& p) {
  const TensorView& x = a.in(0);
  Layout L;
  const int64_t e = p.heads * p.headSize;
  const int64_t nb = x.dims[p.bshd ? 0 : 1], ns = x.dims[p.bshd ? 1 : 0];
  L.nb = 2;
  L.batch[0] = nb;
  L.batch[1] = p.heads;
  L.batches = nb * p.heads;
  L.sq = L.sk = ns;
  L.d = L.dv = p.headSize;
  // bshd: (b, s) at (b * S + s) * W; sbhd: at (s * B + b) * W.
  const int64_t rowsPerStep = p.bshd ? 1 : nb;       // rows between consecutive s
  const int64_t batchRows = p.bshd ? ns : 1;         // rows between consecutive b
  L.ldq = L.ldk = L.ldv = rowsPerStep * 3 * e;
  L.ldy = rowsPerStep * e;
  L.qs[0] = L.ks[0] = L.vs[0] = batchRows * 3 * e;
  L.ys[0] = batchRows * e;
  L.qs[1] = L.ks[1] = L.vs[1] = L.ys[1] = p.headSize;
  L.q0 = 0;
  L.k0 = e;
  L.v0 = 2 * e;
  if (p.kind != MaskKind::kNone) maskSteps(a.in(1), 4, 2, &L);
  return L;
}

Layout layoutOf(const StepArgs& a, const AttnParams& p) {
  if (p.packed) return packedLayoutOf(a, p);
  const TensorView &q = a.in(0), &k = a.in(1), &v = a.in(2);
  Layout L;
  const int r = q.rank;
  L.nb = r - 2;
  L.sq = q.dims[r - 2];
  L.d = q.dims[r - 1];
  L.sk = k.dims[r - 2];
  L.dv = v.dims[r - 1];
  const TensorView& y = a.out(0);  // [batch..., Sq, Dv]: the broadcast batch dims (0 wins over 1)
  for (int i = 0; i < L.nb; ++i) {
    L.batch[i] = y.dims[i];
    L.batches *= L.batch[i];
  }
  batchSteps(q, r, L.nb, L.qs);
  batchSteps(k, r, L.nb, L.ks);
  batchSteps(v, r, L.nb, L.vs);
  batchSteps(y, r, L.nb, L.ys);
  L.ldq = L.ldk = L.d;
  L.ldv = L.ldy = L.dv;
  if (p.kind != MaskKind::kNone) maskSteps(a.in(3), r, L.nb, &L);
  return L;
}

struct Operands {
  const float *q, *k, *v, *maskF;
  const bool* maskB;
  float* y;
};

// The mask on a scaled score x (flat mask offset mo).
inline float applyMask(float x, const AttnParams& p, const Operands& o, int64_t mo) {
  if (o.maskF) x += o.maskF[mo];
  else if (o.maskB && o.maskB[mo] == (p.kind == MaskKind::kFillTrue)) x = p.fill;
  return x;
}

// One row's masked score: scale * dot, then the mask (reference order: scale first).
inline float masked(float dot, const AttnParams& p, const Operands& o, int64_t mo) {
  return applyMask(dot * p.scale, p, o, mo);
}

// Softmax of s[0..n) in place (max subtracted, first maximum as the reference takes it);
// returns the sum of the exponentials.
inline float softmaxExp(float* s, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j)
    if (j == 0 || s[j] > m) m = s[j];
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - m));
  return sum;
}

// ---- portable -------------------------------------------------------------------------

void rowsPortable(const Layout& L, const AttnParams& p, const Operands& o, float* s, int64_t row0, int64_t row1) {
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t b = row / L.sq, i = row % L.sq;
    int64_t oq, ok, ov, oy, om;
    L.offsets(b, &oq, &ok, &ov, &oy, &om);
    const float* qr = o.q + oq + i * L.ldq;
    const int64_t mrow = om + i * L.maskStepI;
    for (int64_t j = 0; j < L.sk; ++j) {
      const float* kr = o.k + ok + j * L.ldk;
      float dot = 0;
      for (int64_t t = 0; t < L.d; ++t) dot += qr[t] * kr[t];
      s[j] = masked(dot, p, o, mrow + j * L.maskStepJ);
    }
    const float sum = softmaxExp(s, L.sk);
    float* yr = o.y + oy + i * L.ldy;
    std::fill(yr, yr + L.dv, 0.0f);
    for (int64_t j = 0; j < L.sk; ++j) {
      const float w = s[j] / sum;
      const float* vr = o.v + ov + j * L.ldv;
      for (int64_t t = 0; t < L.dv; ++t) yr[t] += w * vr[t];
    }
  }
}

// ---- AVX2 + FMA -----------------------------------------------------------------------
// Scores four keys at a time (one load of q feeds four FMAs; the four sums reduce
// together), the softmax over the row with the vector exp, and the output row in blocks
// of 32 columns kept in registers across all keys.

__attribute__((target("avx2,fma"))) inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) inline float hmax8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// dots[0..4) = q . k_i[0..d) for the four rows k0 + i * ldk.
__attribute__((target("avx2,fma"))) inline void dot4(const float* q, const float* k0, int64_t ldk, int64_t d,
                                                     float* dots) {
  const float *k1 = k0 + ldk, *k2 = k1 + ldk, *k3 = k2 + ldk;
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 8 <= d; t += 8) {
    const __m256 qv = _mm256_loadu_ps(q + t);
    a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + t), a0);
    a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + t), a1);
    a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + t), a2);
    a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + t), a3);
  }
  // Pairwise horizontal adds: lane i of the result is the sum of a_i.
  const __m256 h01 = _mm256_hadd_ps(a0, a1), h23 = _mm256_hadd_ps(a2, a3);
  const __m256 h = _mm256_hadd_ps(h01, h23);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  _mm_storeu_ps(dots, s);
  for (; t < d; ++t) {
    dots[0] += q[t] * k0[t];
    dots[1] += q[t] * k1[t];
    dots[2] += q[t] * k2[t];
    dots[3] += q[t] * k3[t];
  }
}

__attribute__((target("avx2,fma"))) inline float dot1(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 8 <= n; t += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + t), _mm256_loadu_ps(b + t), acc);
  float r = hsum8(acc);
  for (; t < n; ++t) r += a[t] * b[t];
  return r;
}

// s[0..n) = exp(s - max) / sum, max the first maximum; all -inf (or NaN) rows give NaN.
__attribute__((target("avx2,fma"))) void softmaxAvx2(float* s, int64_t n) {
  if (n == 0) return;
  float m = s[0];
  for (int64_t j = 1; j < n; ++j)
    if (s[j] > m) m = s[j];
  const __m256 mv = _mm256_set1_ps(m);
  __m256 sv = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), mv));
    _mm256_storeu_ps(s + j, e);
    sv = _mm256_add_ps(sv, e);
  }
  float sum = hsum8(sv);
  for (; j < n; ++j) sum += (s[j] = std::exp(s[j] - m));
  const __m256 inv = _mm256_set1_ps(sum);
  j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(s + j, _mm256_div_ps(_mm256_loadu_ps(s + j), inv));
  for (; j < n; ++j) s[j] /= sum;
}

// y[0..dv) = sum_j w[j] v_j, v_j = v + j * ldv.
__attribute__((target("avx2,fma"))) void weightedRows(const float* w, const float* v, int64_t ldv, int64_t sk,
                                                      int64_t dv, float* y) {
  int64_t c = 0;
  for (; c + 32 <= dv; c += 32) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (int64_t j = 0; j < sk; ++j) {
      const __m256 wj = _mm256_set1_ps(w[j]);
      const float* vr = v + j * ldv + c;
      a0 = _mm256_fmadd_ps(wj, _mm256_loadu_ps(vr), a0);
      a1 = _mm256_fmadd_ps(wj, _mm256_loadu_ps(vr + 8), a1);
      a2 = _mm256_fmadd_ps(wj, _mm256_loadu_ps(vr + 16), a2);
      a3 = _mm256_fmadd_ps(wj, _mm256_loadu_ps(vr + 24), a3);
    }
    _mm256_storeu_ps(y + c, a0);
    _mm256_storeu_ps(y + c + 8, a1);
    _mm256_storeu_ps(y + c + 16, a2);
    _mm256_storeu_ps(y + c + 24, a3);
  }
  for (; c + 8 <= dv; c += 8) {
    __m256 a = _mm256_setzero_ps();
    for (int64_t j = 0; j < sk; ++j) a = _mm256_fmadd_ps(_mm256_set1_ps(w[j]), _mm256_loadu_ps(v + j * ldv + c), a);
    _mm256_storeu_ps(y + c, a);
  }
  for (; c < dv; ++c) {
    float a = 0;
    for (int64_t j = 0; j < sk; ++j) a += w[j] * v[j * ldv + c];
    y[c] = a;
  }
}

__attribute__((target("avx2,fma"))) void rowsAvx2(const Layout& L, const AttnParams& p, const Operands& o, float* s,
                                                  int64_t row0, int64_t row1) {
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t b = row / L.sq, i = row % L.sq;
    int64_t oq, ok, ov, oy, om;
    L.offsets(b, &oq, &ok, &ov, &oy, &om);
    const float* qr = o.q + oq + i * L.ldq;
    const float* kb = o.k + ok;
    const int64_t mrow = om + i * L.maskStepI;
    int64_t j = 0;
    for (; j + 4 <= L.sk; j += 4) {
      float dots[4];
      dot4(qr, kb + j * L.ldk, L.ldk, L.d, dots);
      for (int u = 0; u < 4; ++u) s[j + u] = masked(dots[u], p, o, mrow + (j + u) * L.maskStepJ);
    }
    for (; j < L.sk; ++j) s[j] = masked(dot1(qr, kb + j * L.ldk, L.d), p, o, mrow + j * L.maskStepJ);
    softmaxAvx2(s, L.sk);
    weightedRows(s, o.v + ov, L.ldv, L.sk, L.dv, o.y + oy + i * L.ldy);
  }
}

// ---- tiled: f32_attention_tiled_6x64__avx512, f32_attention_tiled_6x16__avx2 ------------
// The schedule is native_sequence_attention_tiled.inc, compiled once per ISA below.

constexpr int64_t kBlockRows = 24;  // query rows per work item: four micro-tiles of 6

// 8x8 transpose in registers: v[r] = row r becomes v[c] = column c.
__attribute__((target("avx2"), always_inline)) inline void transpose8x8(__m256 (&v)[8]) {
  __m256 t[8], u[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
  }
#pragma GCC unroll 8
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
#pragma GCC unroll 8
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    v[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

namespace tiled512 {
#pragma GCC push_options
#pragma GCC target("avx512f")
// 16 lanes; micro-tiles of 6 rows x 64 keys (scores) and 6 rows x 64 columns (output):
// 24 accumulators, 10 loads per 24 FMAs. (Full-mask forms of max and the byte widening:
// GCC 12's plain forms start from an undefined vector and warn.)
struct Simd {
  static constexpr int kLanes = 16, kMR = 6, kNP = 4, kNV = 4;
  using V = __m512;
  using M = __mmask16;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V loadMasked(const float* p, M m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void storeMasked(float* p, M m, V v) { _mm512_mask_storeu_ps(p, m, v); }
  static M maskOf(int n) { return M((1u << n) - 1); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V max(V a, V b) { return _mm512_mask_max_ps(a, 0xffff, a, b); }
  // e^x for the softmax's x = score - max <= 0 (or NaN, kept): exp16's reduction and
  // polynomial with 2^n by scalef (no exponent arithmetic, no clamp above, one blend),
  // 0 below -87 as exp16 (a denormal out of scalef costs a microcode assist: clamping at
  // -104 instead made the vit_small layer 15% slower). The softmax pass was 14% of that
  // layer with exp16; this one made the layer 7% faster.
  static V exp(V in) {
    const __mmask16 all = 0xffff;
    const V lo = _mm512_set1_ps(-87.0f);
    const V x = _mm512_mask_max_ps(lo, all, lo, in);  // a NaN in `in` is returned as is
    const V t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
    const V n = _mm512_mask_roundscale_ps(t, all, t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    V p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    const __mmask16 under = _mm512_cmp_ps_mask(in, lo, _CMP_LT_OQ);
    return _mm512_maskz_scalef_ps(__mmask16(~under), p, n);
  }
  static V keepFirst(V x, int n, float other) { return _mm512_mask_mov_ps(_mm512_set1_ps(other), maskOf(n), x); }
  // Lanes whose bool m[l] equals `match` become `fill`.
  static V fillWhere(V x, const bool* m, bool match, V fill) {
    const __m512i w = _mm512_maskz_cvtepu8_epi32(0xffff, _mm_loadu_si128(reinterpret_cast<const __m128i*>(m)));
    const __mmask16 t = _mm512_test_epi32_mask(w, w);
    return _mm512_mask_mov_ps(x, match ? t : __mmask16(~t), fill);
  }
  static __m256 high(V v) {
    return _mm256_castpd_ps(_mm512_mask_extractf64x4_pd(_mm256_setzero_pd(), 0xff, _mm512_castps_pd(v), 1));
  }
  static __m256 low(V v) {
    return _mm256_castpd_ps(_mm512_mask_extractf64x4_pd(_mm256_setzero_pd(), 0xff, _mm512_castps_pd(v), 0));
  }
  // Within the target region (hsum8 and hmax8 are avx2+fma functions: a call each).
  static float hmax(V v) {
    const __m256 h = _mm256_max_ps(low(v), high(v));
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
  }
  static float hsum(V v) {
    const __m256 h = _mm256_add_ps(low(v), high(v));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
};
#include "cpu/tactics/native_sequence_attention_tiled.inc"
#pragma GCC pop_options
}  // namespace tiled512

namespace tiled256 {
#pragma GCC push_options
#pragma GCC target("avx2,fma")
// 8 lanes, 16 registers: micro-tiles of 6 rows x 16 keys and 6 rows x 16 columns (12
// accumulators, as the AVX2 GEMM's 6x16).
struct Simd {
  static constexpr int kLanes = 8, kMR = 6, kNP = 2, kNV = 2;
  using V = __m256;
  using M = __m256i;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V loadMasked(const float* p, M m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static void storeMasked(float* p, M m, V v) { _mm256_maskstore_ps(p, m, v); }
  static M maskOf(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V exp(V x) { return exp8(x); }
  static V keepFirst(V x, int n, float other) {
    return _mm256_blendv_ps(_mm256_set1_ps(other), x, _mm256_castsi256_ps(maskOf(n)));
  }
  static V fillWhere(V x, const bool* m, bool match, V fill) {
    const __m256i w = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(m)));
    __m256i sel = _mm256_cmpeq_epi32(w, _mm256_setzero_si256());  // lanes holding false
    if (match) sel = _mm256_xor_si256(sel, _mm256_set1_epi32(-1));
    return _mm256_blendv_ps(x, fill, _mm256_castsi256_ps(sel));
  }
  static float hmax(V v) { return hmax8(v); }
  static float hsum(V v) { return hsum8(v); }
};
#include "cpu/tactics/native_sequence_attention_tiled.inc"
#pragma GCC pop_options
}  // namespace tiled256

// Per task: K^T chunks, the block's scores and its row sums, for Sk keys of depth d.
size_t tiledSlotBytes(int64_t sk, int64_t d) {
  const int64_t skp = roundUp(std::max<int64_t>(sk, 1), 16);
  Carver c;
  c.take<float>(std::max<int64_t>(d, 1) * skp);
  c.take<float>(kBlockRows * skp);
  c.take<float>(kBlockRows * 16);
  c.take<float>(kBlockRows);
  return c.used();
}

// ---- the kernel -----------------------------------------------------------------------

size_t slotBytes(int64_t sk) { return alignUp(size_t(std::max<int64_t>(sk, 1)) * sizeof(float)); }

// The packed form: QKV [B, S, 3 * H * D] or [S, B, ...] f32, an optional mask at input 1.
bool supportsPacked(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.empty() || in.size() > 2 || !allStatic(in) || in[0].dtype != DataType::kF32) return false;
  const std::string layout = n.attrs().getString("layout", "bshd");
  const int64_t h = n.attrs().getInt("num_heads", 0), d = n.attrs().getInt("head_size", 0);
  if ((layout != "bshd" && layout != "sbhd") || h <= 0 || d <= 0) return false;
  if (in[0].shape.rank() != 3 || in[0].shape[2].value() != 3 * h * d) return false;
  MaskKind kind;
  if (!maskKindOf(n.attrs().getString("mask_kind", "none"), &kind)) return false;
  const bool hasMask = in.size() > 1 && in[1].dtype != DataType::kUndefined;
  if (hasMask != (kind != MaskKind::kNone)) return false;
  if (hasMask) {
    if (in[1].shape.rank() > 4) return false;
    return kind == MaskKind::kAdd ? in[1].dtype == DataType::kF32 : in[1].dtype == DataType::kBool;
  }
  return true;
}

bool supports(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (n.attrs().getInt("qkv_packed", 0) != 0) return supportsPacked(n, in);
  if (in.size() < 3 || !allStatic(in)) return false;
  for (size_t i = 0; i < 3; ++i)
    if (in[i].dtype != DataType::kF32) return false;
  const size_t r = in[0].shape.rank();
  if (r < 2 || r > size_t(kMaxRank) || in[1].shape.rank() != r || in[2].shape.rank() != r) return false;
  MaskKind kind;
  if (!maskKindOf(n.attrs().getString("mask_kind", "none"), &kind)) return false;
  const bool hasMask = in.size() > 3 && in[3].dtype != DataType::kUndefined;
  if (hasMask != (kind != MaskKind::kNone)) return false;
  if (hasMask) {
    if (in[3].shape.rank() > r) return false;
    return kind == MaskKind::kAdd ? in[3].dtype == DataType::kF32 : in[3].dtype == DataType::kBool;
  }
  return true;
}

void prepare(const PrepareInfo& info, Prepared* out) {
  const ir::Node& n = *info.node;
  AttnParams p;
  ANVIL_CHECK(maskKindOf(n.attrs().getString("mask_kind", "none"), &p.kind), ErrorCode::kInvalidModel, n.label(),
              ": anvil.Attention mask_kind must be none, add, fill_true or fill_false");
  p.scale = n.attrs().getFloat("scale", 1.0f);
  p.fill = n.attrs().getFloat("mask_fill", -std::numeric_limits<float>::infinity());
  p.packed = n.attrs().getInt("qkv_packed", 0) != 0 ? 1 : 0;
  p.bshd = n.attrs().getString("layout", "bshd") == "bshd" ? 1 : 0;
  p.heads = n.attrs().getInt("num_heads", 0);
  p.headSize = n.attrs().getInt("head_size", 0);
  out->setParams(p);
  // One score row per thread, for the longest Sk of the profile.
  int64_t sk;
  if (p.packed) {
    sk = info.maxTypes[0].shape[p.bshd ? 1 : 0].value();
  } else {
    const ir::TensorType& k = info.maxTypes[1];
    sk = k.shape[k.shape.rank() - 2].value();
  }
  out->workspaceBytes = uint64_t(std::max(1, info.threads)) * slotBytes(sk);
}

template <bool kAvx2>
void run(const StepArgs& a) {
  const AttnParams& p = a.paramsAs<AttnParams>();
  const Layout L = layoutOf(a, p);
  const int64_t rows = L.batches * L.sq;
  if (rows == 0 || L.dv == 0) return;
  const float* x = a.in(0).as<float>();
  Operands o{x, p.packed ? x : a.in(1).as<float>(), p.packed ? x : a.in(2).as<float>(), nullptr, nullptr,
             a.out(0).as<float>()};
  const int maskInput = p.packed ? 1 : 3;
  if (p.kind == MaskKind::kAdd) o.maskF = a.in(maskInput).as<float>();
  else if (p.kind != MaskKind::kNone) o.maskB = a.in(maskInput).as<bool>();
  const size_t slot = slotBytes(L.sk);
  const int64_t slots = std::min<int64_t>(a.executor->threads(), int64_t(a.workspaceBytes / slot));
  if (slots < 1) a.fail("anvil.Attention: workspace too small for Sk = " + std::to_string(L.sk));
  // One block of rows per slot: a task owns its slot's score row; rows are independent,
  // so how they are split does not change any bit of the output.
  const int64_t tasks = taskCount(std::min(rows, slots), double(rows) * double(L.sk) * double(L.d + L.dv));
  char* ws = static_cast<char*>(a.workspace);
  a.executor->parallelFor(tasks, [&](int64_t t) {
    float* s = reinterpret_cast<float*>(ws + size_t(t) * slot);
    const int64_t r0 = rows * t / tasks, r1 = rows * (t + 1) / tasks;
    if constexpr (kAvx2) rowsAvx2(L, p, o, s, r0, r1);
    else rowsPortable(L, p, o, s, r0, r1);
  });
}

// The tiled kernels hold a block's scores and a head's K^T per thread: beyond 32768 keys
// (24 x 32768 floats, 3 MiB of scores) the row kernels serve.
constexpr int64_t kMaxTiledKeys = 32768;

bool supportsTiled(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (!supports(n, in)) return false;
  const bool packed = n.attrs().getInt("qkv_packed", 0) != 0;
  const ir::Shape& k = in[packed ? 0 : 1].shape;
  const bool bshd = n.attrs().getString("layout", "bshd") == "bshd";
  return (packed ? k[bshd ? 1 : 0].value() : k[k.rank() - 2].value()) <= kMaxTiledKeys;
}

void prepareTiled(const PrepareInfo& info, Prepared* out) {
  prepare(info, out);
  AttnParams p;
  std::memcpy(&p, out->params.data(), sizeof p);
  int64_t sk, d;
  if (p.packed) {
    sk = info.maxTypes[0].shape[p.bshd ? 1 : 0].value();
    d = p.headSize;
  } else {
    const ir::TensorType &q = info.maxTypes[0], &k = info.maxTypes[1];
    sk = k.shape[k.shape.rank() - 2].value();
    d = q.shape[q.shape.rank() - 1].value();
  }
  out->workspaceBytes = uint64_t(std::max(1, info.threads)) * tiledSlotBytes(sk, d);
}

template <bool kAvx512>
void runTiled(const StepArgs& a) {
  const AttnParams& p = a.paramsAs<AttnParams>();
  const Layout L = layoutOf(a, p);
  const int64_t rows = L.batches * L.sq;
  if (rows == 0 || L.dv == 0) return;
  const float* x = a.in(0).as<float>();
  Operands o{x, p.packed ? x : a.in(1).as<float>(), p.packed ? x : a.in(2).as<float>(), nullptr, nullptr,
             a.out(0).as<float>()};
  const int maskInput = p.packed ? 1 : 3;
  if (p.kind == MaskKind::kAdd) o.maskF = a.in(maskInput).as<float>();
  else if (p.kind != MaskKind::kNone) o.maskB = a.in(maskInput).as<bool>();
  const size_t slot = tiledSlotBytes(L.sk, L.d);
  const int64_t slots = std::min<int64_t>(a.executor->threads(), int64_t(a.workspaceBytes / slot));
  if (slots < 1) a.fail("anvil.Attention: workspace too small for Sk = " + std::to_string(L.sk));
  // Work items (batch, block of kBlockRows query rows) in fixed contiguous ranges per task;
  // a task packs K^T again only where its batch (K matrix) changes.
  const int64_t blocks = (L.sq + kBlockRows - 1) / kBlockRows, count = L.batches * blocks;
  const int64_t tasks = taskCount(std::min(count, slots), double(rows) * double(L.sk) * double(L.d + L.dv));
  char* ws = static_cast<char*>(a.workspace);
  const int64_t skp = roundUp(std::max<int64_t>(L.sk, 1), 16);
  a.executor->parallelFor(tasks, [&](int64_t t) {
    Carver c(ws + size_t(t) * slot);
    float* kt = c.take<float>(std::max<int64_t>(L.d, 1) * skp);
    float* s = c.take<float>(kBlockRows * skp);
    float* rmax = c.take<float>(kBlockRows * 16);
    float* inv = c.take<float>(kBlockRows);
    const int64_t i0 = count * t / tasks, i1 = count * (t + 1) / tasks;
    if constexpr (kAvx512) tiled512::items(L, p, o, {kt, s, rmax, inv, skp}, blocks, i0, i1);
    else tiled256::items(L, p, o, {kt, s, rmax, inv, skp}, blocks, i0, i1);
  });
}

}  // namespace

void registerAttentionKernels(Kernels& k) {
  for (bool avx2 : {true, false}) {
    Kernel kn;
    kn.name = avx2 ? "f32_attention_rows__avx2" : "f32_attention_rows";
    kn.version = 2;
    kn.op = "Attention";
    kn.domain = "anvil";
    kn.precision = DataType::kF32;
    if (avx2) kn.requirements = {"avx2", "fma"};
    kn.supports = supports;
    kn.prepare = prepare;
    kn.run = avx2 ? RunFn(run<true>) : RunFn(run<false>);
    k.add(std::move(kn));
  }
  for (bool avx512 : {true, false}) {
    Kernel kn;
    kn.name = avx512 ? "f32_attention_tiled_6x64__avx512" : "f32_attention_tiled_6x16__avx2";
    kn.version = 1;
    kn.op = "Attention";
    kn.domain = "anvil";
    kn.precision = DataType::kF32;
    kn.requirements = avx512 ? std::vector<std::string>{"avx512f"} : std::vector<std::string>{"avx2", "fma"};
    kn.supports = supportsTiled;
    kn.prepare = prepareTiled;
    kn.run = avx512 ? RunFn(runTiled<true>) : RunFn(runTiled<false>);
    k.add(std::move(kn));
  }
}

}  // namespace anvil::runtime::seq
