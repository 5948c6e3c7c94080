// Native pooling kernels on NCHW f32: MaxPool and AveragePool over 2-d windows (strides,
// dilations, explicit or automatic pads, ceil_mode, count_include_pad) and
// GlobalAveragePool / GlobalMaxPool. Semantics of cpu/kernels/nn_pool.cpp: padding never
// contributes a value; with count_include_pad the divisor is the whole window (positions
// past the end that ceil_mode adds included, as the ONNX reference); max keeps the first
// of equal values and an empty window gives -inf. Kernels: the generic rows (every window),
// MaxPool separable (AVX2) and by whole planes (AVX-512) for dilation 1 and strides 1 and 2,
// GlobalAveragePool in 8 or (AVX-512) 32 double partial sums; the builder times them.
#include <immintrin.h>

#include <cmath>
#include <limits>

#include "cpu/tactics/native_ops_util.h"
#include "ir/ops/nn_util.h"

// GCC 12's -O2 vectorizes a loop only when no scalar remainder is left (its "very cheap"
// cost model); the loops here run over arbitrary extents, so this file asks for the
// dynamic model (per-element IEEE operations: results do not change).
#pragma GCC optimize("vect-cost-model=dynamic")

namespace anvil::runtime::nops {

namespace {

struct PoolParams {
  int32_t max = 0;  // 1: MaxPool, 0: AveragePool
  int32_t includePad = 0;
  int32_t autoPad = 0;  // ir::nn::AutoPad
  int64_t k[2] = {}, s[2] = {}, d[2] = {}, pads[4] = {};
};

// Pad before the window along one dim for the run's input extent (auto_pad is resolved
// from it, as ir::nn::forwardDim does).
int64_t padBegin(const PoolParams& p, int i, int64_t in, int64_t out) {
  const auto ap = ir::nn::AutoPad(p.autoPad);
  if (ap == ir::nn::AutoPad::kSameUpper || ap == ir::nn::AutoPad::kSameLower) {
    const int64_t dk = (p.k[i] - 1) * p.d[i] + 1;
    const int64_t total = std::max<int64_t>(0, (out - 1) * p.s[i] + dk - in);
    return ap == ir::nn::AutoPad::kSameUpper ? total / 2 : total - total / 2;
  }
  if (ap == ir::nn::AutoPad::kValid) return 0;
  return p.pads[i];
}

// The window geometry of one run (auto_pad resolved for its extents).
struct PoolGeom {
  int64_t H, W, OH, OW, pt, pl, kh, kw, sh, sw, dh, dw;
};

PoolGeom poolGeom(const PoolParams& p, const TensorView& x, const TensorView& y) {
  PoolGeom g;
  g.H = x.dims[2];
  g.W = x.dims[3];
  g.OH = y.dims[2];
  g.OW = y.dims[3];
  g.pt = padBegin(p, 0, g.H, g.OH);
  g.pl = padBegin(p, 1, g.W, g.OW);
  g.kh = p.k[0];
  g.kw = p.k[1];
  g.sh = p.s[0];
  g.sw = p.s[1];
  g.dh = p.d[0];
  g.dw = p.d[1];
  return g;
}

// Kernel rows [k0, k1) of output row oh that fall inside the input.
void windowRows(const PoolGeom& g, int64_t oh, int64_t* k0, int64_t* k1) {
  const int64_t h0 = oh * g.sh - g.pt;
  *k0 = h0 >= 0 ? 0 : (-h0 + g.dh - 1) / g.dh;
  *k1 = h0 + (g.kh - 1) * g.dh < g.H ? g.kh : (g.H - 1 - h0) / g.dh + 1;
  if (g.H - 1 - h0 < 0) *k1 = 0;
  if (*k1 < *k0) *k1 = *k0;
}

// One output row of one plane, any window: the semantics every pooling kernel here keeps.
void poolRow(const PoolParams& p, const PoolGeom& g, const float* src, float* dst, int64_t oh) {
  const bool isMax = p.max != 0;
  const float fullDiv = float(g.kh * g.kw);
  const int64_t W = g.W, OW = g.OW, pl = g.pl;
  const int64_t kw = g.kw, sh = g.sh, sw = g.sw, dh = g.dh, dw = g.dw;
  const int64_t h0 = oh * sh - g.pt;
  // Rows of the window inside the input: kernel rows [k0, k1).
  int64_t k0, k1;
  windowRows(g, oh, &k0, &k1);
  // Interior columns [lo, hi) (whole window inside the input): the window loops run
  // outside the column loop, which vectorizes; each output still sees its window in
  // row-major order, so results equal the element-wise path (and the reference).
  int64_t lo = OW, hi = OW;
  if (k1 > k0) {
    lo = std::min<int64_t>(OW, (pl + sw - 1) / sw);
    const int64_t num = W - 1 - (kw - 1) * dw + pl;
    hi = num < 0 ? lo : std::max(lo, std::min<int64_t>(OW, num / sw + 1));
  }
  const int64_t n = hi - lo;
  if (n > 0) {
    float* __restrict d = dst + lo;
    const int64_t c0 = lo * sw - pl;  // input column of output lo, window column 0
    if (isMax) {
      const float* first = src + (h0 + k0 * dh) * W + c0;
      for (int64_t o = 0; o < n; ++o) d[o] = first[o * sw];
      for (int64_t i = k0; i < k1; ++i)
        for (int64_t j = (i == k0 ? 1 : 0); j < kw; ++j) {
          const float* __restrict s0 = src + (h0 + i * dh) * W + c0 + j * dw;
          for (int64_t o = 0; o < n; ++o) {
            const float v = s0[o * sw];
            d[o] = v > d[o] ? v : d[o];
          }
        }
    } else {
      for (int64_t o = 0; o < n; ++o) d[o] = 0.f;
      for (int64_t i = k0; i < k1; ++i)
        for (int64_t j = 0; j < kw; ++j) {
          const float* __restrict s0 = src + (h0 + i * dh) * W + c0 + j * dw;
          for (int64_t o = 0; o < n; ++o) d[o] += s0[o * sw];
        }
      const float div = p.includePad ? fullDiv : float((k1 - k0) * kw);
      for (int64_t o = 0; o < n; ++o) d[o] = d[o] / div;
    }
  }
  for (int64_t ow = 0; ow < OW; ++ow) {
    if (ow == lo) ow = hi;
    if (ow >= OW) break;
    const int64_t w0 = ow * sw - pl;
    int64_t j0 = w0 >= 0 ? 0 : (-w0 + dw - 1) / dw;
    int64_t j1 = w0 + (kw - 1) * dw < W ? kw : (W - 1 - w0) / dw + 1;
    if (W - 1 - w0 < 0) j1 = 0;
    if (j1 < j0) j1 = j0;
    if (isMax) {
      float best = -std::numeric_limits<float>::infinity();
      bool any = false;
      for (int64_t i = k0; i < k1; ++i) {
        const int64_t row = (h0 + i * dh) * W + w0;  // an index: w0 may be negative
        for (int64_t j = j0; j < j1; ++j) {
          const float v = src[row + j * dw];
          if (!any || v > best) best = v;
          any = true;
        }
      }
      dst[ow] = best;
    } else {
      float sum = 0.f;
      for (int64_t i = k0; i < k1; ++i) {
        const int64_t row = (h0 + i * dh) * W + w0;
        for (int64_t j = j0; j < j1; ++j) sum += src[row + j * dw];
      }
      const int64_t cnt = (k1 - k0) * (j1 - j0);
      const float div = p.includePad ? fullDiv : float(cnt);
      dst[ow] = div > 0.f ? sum / div : 0.f;
    }
  }
}

void poolKernel(const StepArgs& a) {
  const PoolParams& p = a.paramsAs<PoolParams>();
  const TensorView& x = a.in(0);
  const TensorView& y = a.out(0);
  const PoolGeom g = poolGeom(p, x, y);
  const int64_t planes = x.dims[0] * x.dims[1];
  const float* xp = x.as<const float>();
  float* yp = y.as<float>();
  parallelRange(a.executor, planes * g.OH, 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t plane = r / g.OH, oh = r % g.OH;
      poolRow(p, g, xp + plane * g.H * g.W, yp + plane * g.OH * g.OW + oh * g.OW, oh);
    }
  });
}

// ---- separable MaxPool (AVX2) ------------------------------------------------------------
//
// f32_maxpool2d_separable__avx2: dilation 1, strides 1 or 2 per axis, any window, pads,
// auto_pad and ceil_mode. Per output row, the column maxima over the window's rows go into a
// row padded with -inf on both sides (the padding and ceil_mode's overhang contribute
// nothing, as in the reference); at stride 2 that row is split into its even and odd
// columns; then each output is the max over kw consecutive loads. max_ps(x, m) keeps m
// when x is NaN, so NaN inputs are dropped as the reference drops every NaN but the
// window's first element; a row whose first window row holds a NaN anywhere goes through
// poolRow (exact, rare). Equal values of opposite zero sign may come out with the other
// sign than the reference's first-of-equals (the max value is the same).
// Measured (NativePoolDwBench.DISABLED_MaxPool, 1 thread, AVX-512 Xeon, shared machine, min of
// 200): resnet18's 3x3 s2 pad 1 over 64x112x112: f32_maxpool2d_nchw 0.45 ms, this 0.21 ms,
// f32_maxpool2d_planes__avx512 0.24 ms (both near the cost of streaming the 3.2 MB input);
// squeezenet's 256x27x27 ceil_mode: 0.14, 0.095, 0.073 ms.

// The padded column-max row: every window's columns (ceil_mode's overhang included) and 32
// floats of slack (the last vector's lanes past OW), a multiple of 16.
int64_t sepRowWidth(const PoolGeom& g) {
  return (std::max(g.pl + g.W, (g.OW - 1) * g.sw + g.kw) + 32 + 15) / 16 * 16;
}
// Floats per task: that row (Lp) and its even/odd split (2 x (Lp / 2 + 16)).
int64_t sepRowFloats(const PoolGeom& g) {
  const int64_t Lp = sepRowWidth(g);
  return Lp + 2 * (Lp / 2 + 16);
}

// One output row; false (nothing written) when the first window row holds a NaN.
__attribute__((target("avx2,fma"))) bool sepMaxRow(const PoolGeom& g, const float* src, float* dst, int64_t oh,
                                                   float* buf, int64_t Lp) {
  const int64_t W = g.W, OW = g.OW, kw = g.kw;
  int64_t k0, k1;
  windowRows(g, oh, &k0, &k1);
  if (k1 <= k0) {  // every window empty
    for (int64_t ow = 0; ow < OW; ++ow) dst[ow] = -std::numeric_limits<float>::infinity();
    return true;
  }
  const float* rows[16];
  const int64_t nr = k1 - k0;
  for (int64_t i = 0; i < nr; ++i) rows[i] = src + (oh * g.sh - g.pt + k0 + i) * W;
  // The first window row's NaNs decide (see above): the caller takes the exact path.
  __m256 nan = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= W; j += 8) {
    const __m256 v = _mm256_loadu_ps(rows[0] + j);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  bool hasNan = _mm256_movemask_ps(nan) != 0;
  for (; j < W; ++j) hasNan |= std::isnan(rows[0][j]);
  if (hasNan) return false;
  // Column maxima into buf[pl, pl + W); buf's pads hold -inf (set once per run).
  float* m = buf + g.pl;
  j = 0;
  for (; j + 8 <= W; j += 8) {
    __m256 v = _mm256_loadu_ps(rows[0] + j);
    for (int64_t i = 1; i < nr; ++i) v = _mm256_max_ps(_mm256_loadu_ps(rows[i] + j), v);
    _mm256_storeu_ps(m + j, v);
  }
  for (; j < W; ++j) {
    float v = rows[0][j];
    for (int64_t i = 1; i < nr; ++i) v = rows[i][j] > v ? rows[i][j] : v;
    m[j] = v;
  }
  const float* e = buf;
  const float* o = buf;
  if (g.sw == 2) {
    float* ev = buf + Lp;
    float* od = ev + Lp / 2 + 16;
    for (int64_t q = 0; q < Lp / 2; q += 8) {
      const __m256 a = _mm256_loadu_ps(buf + 2 * q), b = _mm256_loadu_ps(buf + 2 * q + 8);
      const __m256 ea = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
      const __m256 oa = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
      _mm256_storeu_ps(ev + q, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ea), _MM_SHUFFLE(3, 1, 2, 0))));
      _mm256_storeu_ps(od + q, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(oa), _MM_SHUFFLE(3, 1, 2, 0))));
    }
    e = ev;
    o = od;
  }
  // Output ow, window column c: padded column ow * sw + c, at stride 2 (c even ? e : o)[ow + c / 2].
  auto col = [&](int64_t c) { return g.sw == 1 ? buf + c : (c & 1 ? o : e) + c / 2; };
  int64_t ow = 0;
  for (; ow + 8 <= OW; ow += 8) {
    __m256 v = _mm256_loadu_ps(col(0) + ow);
    for (int64_t c = 1; c < kw; ++c) v = _mm256_max_ps(_mm256_loadu_ps(col(c) + ow), v);
    _mm256_storeu_ps(dst + ow, v);
  }
  if (ow < OW) {
    __m256 v = _mm256_loadu_ps(col(0) + ow);
    for (int64_t c = 1; c < kw; ++c) v = _mm256_max_ps(_mm256_loadu_ps(col(c) + ow), v);
    alignas(32) float t[8];
    _mm256_store_ps(t, v);
    for (int64_t i = 0; ow + i < OW; ++i) dst[ow + i] = t[i];
  }
  return true;
}

struct SepParams {
  PoolParams pool;
  int64_t rowFloats = 0;  // per task, at the profile's max extents
  int32_t tasks = 1, reserved = 0;
};

void sepMaxKernel(const StepArgs& a) {
  const SepParams& sp = a.paramsAs<SepParams>();
  const PoolParams& p = sp.pool;
  const TensorView& x = a.in(0);
  const TensorView& y = a.out(0);
  const PoolGeom g = poolGeom(p, x, y);
  const int64_t planes = x.dims[0] * x.dims[1], rows = planes * g.OH;
  if (rows == 0 || g.OW == 0) return;
  const float* xp = x.as<const float>();
  float* yp = y.as<float>();
  const int64_t need = sepRowFloats(g);
  const int64_t T = std::min<int64_t>(std::max(1, std::min(sp.tasks, a.executor->threads())), rows);
  if (need > sp.rowFloats || g.kh > 16 || uint64_t(T * sp.rowFloats) * sizeof(float) > a.workspaceBytes) {
    poolKernel(a);  // wider than prepared (outside the profile): the generic rows
    return;
  }
  const int64_t Lp = sepRowWidth(g);
  float* ws = static_cast<float*>(a.workspace);
  a.executor->parallelFor(T, [&](int64_t t) {
    float* buf = ws + t * sp.rowFloats;
    for (int64_t i = 0; i < Lp; ++i) buf[i] = -std::numeric_limits<float>::infinity();
    for (int64_t r = rows * t / T; r < rows * (t + 1) / T; ++r) {
      const int64_t plane = r / g.OH, oh = r % g.OH;
      const float* src = xp + plane * g.H * g.W;
      float* dst = yp + plane * g.OH * g.OW + oh * g.OW;
      if (!sepMaxRow(g, src, dst, oh, buf, Lp)) poolRow(p, g, src, dst, oh);
    }
  });
}

bool poolSupports(bool isMax, const ir::Node& n, const std::vector<ir::TensorType>& t) {
  if (t.empty() || t[0].dtype != DataType::kF32 || rankOf(t, 0) != 4) return false;
  if (isMax && outputUsed(n, 1)) return false;  // Indices: the reference serves them
  ir::nn::Window w;
  if (!ir::nn::readWindow(n.attrs(), 2, {}, &w).empty() || w.kernel.size() != 2) return false;
  return true;
}

void poolPrepare(bool isMax, const PrepareInfo& info, Prepared* out) {
  ir::nn::Window w;
  const std::string err = ir::nn::readWindow(info.node->attrs(), 2, {}, &w);
  ANVIL_CHECK(err.empty(), ErrorCode::kInvalidArgument, info.node->label(), ": ", err);
  PoolParams p;
  p.max = isMax ? 1 : 0;
  p.includePad = info.node->attrs().getInt("count_include_pad", 0) != 0 ? 1 : 0;
  p.autoPad = int32_t(w.autoPad);
  for (int i = 0; i < 2; ++i) {
    p.k[i] = w.kernel[size_t(i)];
    p.s[i] = w.strides[size_t(i)];
    p.d[i] = w.dilations[size_t(i)];
  }
  for (int i = 0; i < 4; ++i) p.pads[i] = w.pads[size_t(i)];
  out->setParams(p);
}

// ---- whole-plane MaxPool (AVX-512) --------------------------------------------------------
//
// f32_maxpool2d_planes__avx512: the same windows as the separable kernel, a plane per step,
// row max first: each input row's window maxima along W (hm, one row of OW per input row,
// from masked loads that read -inf outside the row: no padded copy, no scalar tails), then
// each output row is the max over its window's hm rows. Planes of 7..56 columns (squeezenet's
// 27x27 and 55x55) pay no per-row setup beyond a few masks. A plane with a NaN anywhere goes
// through poolRow row by row (the reference's first-element rule; rare).

// max_ps(a, b) (b when either is NaN) in its zero-masked form with every lane: the same
// vmaxps; GCC 12 warns on the plain form's undefined start once it inlines into loops.
__attribute__((target("avx512f"))) inline __m512 max16(__m512 a, __m512 b) {
  return _mm512_maskz_max_ps(__mmask16(0xffff), a, b);
}

// The lanes of a 16-float load from column c inside [0, W).
inline __mmask16 laneMask(int64_t c, int64_t W) {
  const int64_t lo = std::max<int64_t>(0, -c), hi = std::min<int64_t>(16, W - c);
  return hi <= lo ? __mmask16(0) : __mmask16(((1u << hi) - 1) & ~((1u << lo) - 1));
}

// hm[r][0..16) for rows [rLo, rHi): the max over window columns of the 16 outputs whose
// window column 0 is input column c0 + S * lane. KW: the window width, 0 for kw at run time.
// Returns the lanes of the loads that held a NaN.
template <int S, int KW>
__attribute__((target("avx512f"))) __mmask16 rowMaxBlock(const float* x, int64_t W, int64_t c0, int64_t kwRun,
                                                       int64_t rLo, int64_t rHi, float* hm, int64_t OWv) {
  const int64_t kw = KW ? KW : kwRun;
  const int64_t loads = S == 1 ? kw : 2 * ((kw + 1) / 2);  // stride 2: pairs from c0 + j, j even
  __mmask16 m[34] = {};
  for (int64_t l = 0; l < loads; ++l) m[l] = laneMask(S == 1 ? c0 + l : c0 + (l & ~1) + (l & 1) * 16, W);
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __m512i evenIdx = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i oddIdx = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  __mmask16 nan = 0;
  for (int64_t r = rLo; r < rHi; ++r) {
    const float* xr = x + r * W + c0;  // may point before the row: masked lanes are not read
    __m512 v = ninf;
    if constexpr (S == 1) {
      for (int64_t j = 0; j < kw; ++j) {
        const __m512 u = _mm512_mask_loadu_ps(ninf, m[j], xr + j);
        nan |= _mm512_cmp_ps_mask(u, u, _CMP_UNORD_Q);
        v = max16(u, v);
      }
    } else {
      for (int64_t j = 0; j < kw; j += 2) {
        const __m512 a = _mm512_mask_loadu_ps(ninf, m[j], xr + j), b = _mm512_mask_loadu_ps(ninf, m[j + 1], xr + j + 16);
        nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q);
        v = max16(_mm512_permutex2var_ps(a, evenIdx, b), v);
        if (j + 1 < kw) v = max16(_mm512_permutex2var_ps(a, oddIdx, b), v);
      }
    }
    _mm512_storeu_ps(hm + r * OWv, v);
  }
  return nan;
}

// hm: H rows of OWv (OW rounded up to 16) floats. False (y untouched) when an input value
// some window reads is NaN: every such value passes through a load here, checked on the way
// (a separate pass over the plane would read it from memory twice).
__attribute__((target("avx512f"))) bool planeMax(const PoolGeom& g, const float* x, float* y, float* hm, int64_t OWv) {
  const int64_t W = g.W, OW = g.OW, kw = g.kw, pl = g.pl;
  // Only the input rows some window reads.
  int64_t rLo = g.H, rHi = 0;
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    int64_t k0, k1;
    windowRows(g, oh, &k0, &k1);
    if (k1 > k0) {
      rLo = std::min(rLo, oh * g.sh - g.pt + k0);
      rHi = std::max(rHi, oh * g.sh - g.pt + k1);
    }
  }
  // Column block by column block: the load masks depend on the block only.
  __mmask16 nan = 0;
  for (int64_t ow = 0; ow < OW; ow += 16) {
    const int64_t c0 = ow * g.sw - pl;  // input column of lane 0, window column 0
    if (g.sw == 2 && kw == 3) nan |= rowMaxBlock<2, 3>(x, W, c0, kw, rLo, rHi, hm + ow, OWv);
    else if (g.sw == 1 && kw == 3) nan |= rowMaxBlock<1, 3>(x, W, c0, kw, rLo, rHi, hm + ow, OWv);
    else if (g.sw == 2) nan |= rowMaxBlock<2, 0>(x, W, c0, kw, rLo, rHi, hm + ow, OWv);
    else nan |= rowMaxBlock<1, 0>(x, W, c0, kw, rLo, rHi, hm + ow, OWv);
  }
  if (nan) return false;
  const __mmask16 tail = __mmask16((1u << (OW - (OWv - 16))) - 1);
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    int64_t k0, k1;
    windowRows(g, oh, &k0, &k1);
    float* yr = y + oh * OW;
    const float* h0 = hm + (oh * g.sh - g.pt) * OWv;
    for (int64_t ow = 0; ow < OW; ow += 16) {
      __m512 v = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
      for (int64_t i = k0; i < k1; ++i) v = max16(_mm512_loadu_ps(h0 + i * OWv + ow), v);
      if (ow + 16 <= OW) _mm512_storeu_ps(yr + ow, v);
      else _mm512_mask_storeu_ps(yr + ow, tail, v);
    }
  }
  return true;
}

struct PlaneParams {
  PoolParams pool;
  int64_t planeFloats = 0;  // per task, at the profile's max extents
  int32_t tasks = 1, reserved = 0;
};

int64_t planeFloatsFor(const PoolGeom& g) { return g.H * ((g.OW + 15) / 16 * 16); }

void planeMaxKernel(const StepArgs& a) {
  const PlaneParams& pp = a.paramsAs<PlaneParams>();
  const PoolParams& p = pp.pool;
  const TensorView& x = a.in(0);
  const TensorView& y = a.out(0);
  const PoolGeom g = poolGeom(p, x, y);
  const int64_t planes = x.dims[0] * x.dims[1];
  if (planes == 0 || g.OH == 0 || g.OW == 0) return;
  const int64_t T = std::min<int64_t>(std::max(1, std::min(pp.tasks, a.executor->threads())), planes);
  if (planeFloatsFor(g) > pp.planeFloats || uint64_t(T * pp.planeFloats) * sizeof(float) > a.workspaceBytes) {
    poolKernel(a);  // larger than prepared (outside the profile): the generic rows
    return;
  }
  const int64_t OWv = (g.OW + 15) / 16 * 16;
  const float* xp = x.as<const float>();
  float* yp = y.as<float>();
  float* ws = static_cast<float*>(a.workspace);
  a.executor->parallelFor(T, [&](int64_t t) {
    float* hm = ws + t * pp.planeFloats;
    for (int64_t pl = planes * t / T; pl < planes * (t + 1) / T; ++pl) {
      const float* src = xp + pl * g.H * g.W;
      float* dst = yp + pl * g.OH * g.OW;
      if (!planeMax(g, src, dst, hm, OWv))
        for (int64_t oh = 0; oh < g.OH; ++oh) poolRow(p, g, src, dst + oh * g.OW, oh);
    }
  });
}

void planeMaxPrepare(const PrepareInfo& info, Prepared* out) {
  Prepared plain;
  poolPrepare(true, info, &plain);
  PlaneParams pp;
  std::memset(static_cast<void*>(&pp), 0, sizeof pp);  // no stray padding bytes: params are compared byte for byte
  std::memcpy(&pp.pool, plain.params.data(), sizeof pp.pool);
  pp.tasks = std::max(1, info.threads);
  const ir::Shape& xs = info.maxTypes.at(0).shape;
  const ir::Shape& ys = info.maxOutputTypes.at(0).shape;
  ANVIL_CHECK(xs.isStatic() && ys.isStatic() && xs.rank() == 4 && ys.rank() == 4, ErrorCode::kInternal,
              info.node->label(), ": MaxPool has no static extents at the profile's max shapes");
  TensorView xv, yv;
  xv.setExtents(xs.extents());
  yv.setExtents(ys.extents());
  pp.planeFloats = planeFloatsFor(poolGeom(pp.pool, xv, yv));
  out->workspaceBytes = uint64_t(pp.tasks * pp.planeFloats) * sizeof(float);
  out->setParams(pp);
}

bool sepMaxSupports(const ir::Node& n, const std::vector<ir::TensorType>& t) {
  if (!poolSupports(true, n, t)) return false;
  ir::nn::Window w;
  if (!ir::nn::readWindow(n.attrs(), 2, {}, &w).empty()) return false;
  for (int i = 0; i < 2; ++i) {
    const size_t d = size_t(i);
    if (w.dilations[d] != 1 || (w.strides[d] != 1 && w.strides[d] != 2) || w.kernel[d] > 16) return false;
  }
  return true;
}

void sepMaxPrepare(const PrepareInfo& info, Prepared* out) {
  Prepared plain;
  poolPrepare(true, info, &plain);
  SepParams sp;
  std::memset(static_cast<void*>(&sp), 0, sizeof sp);  // no stray padding bytes: params are compared byte for byte
  std::memcpy(&sp.pool, plain.params.data(), sizeof sp.pool);
  sp.tasks = std::max(1, info.threads);
  const ir::Shape& xs = info.maxTypes.at(0).shape;
  const ir::Shape& ys = info.maxOutputTypes.at(0).shape;
  ANVIL_CHECK(xs.isStatic() && ys.isStatic() && xs.rank() == 4 && ys.rank() == 4, ErrorCode::kInternal,
              info.node->label(), ": MaxPool has no static extents at the profile's max shapes");
  const std::vector<int64_t> xd = xs.extents(), yd = ys.extents();
  TensorView xv, yv;
  xv.setExtents(xd);
  yv.setExtents(yd);
  sp.rowFloats = sepRowFloats(poolGeom(sp.pool, xv, yv));
  out->workspaceBytes = uint64_t(sp.tasks * sp.rowFloats) * sizeof(float);
  out->setParams(sp);
}

// ---- global pools ----------------------------------------------------------------------

struct GlobalParams {
  int32_t max = 0;
};

void globalKernel(const StepArgs& a) {
  const TensorView& x = a.in(0);
  const int64_t planes = x.dims[0] * x.dims[1];
  int64_t size = 1;
  for (int i = 2; i < x.rank; ++i) size *= x.dims[i];
  const float* xp = x.as<const float>();
  float* yp = a.out(0).as<float>();
  const bool isMax = a.paramsAs<GlobalParams>().max != 0;
  parallelRange(a.executor, planes, std::max<int64_t>(1, 4096 / std::max<int64_t>(size, 1)), [&](int64_t b, int64_t e) {
    for (int64_t pl = b; pl < e; ++pl) {
      const float* __restrict v = xp + pl * size;
      if (isMax) {
        // NaN wins, as the reference.
        float acc = -std::numeric_limits<float>::infinity();
        for (int64_t i = 0; i < size; ++i) acc = (v[i] > acc || std::isnan(v[i])) ? v[i] : acc;
        yp[pl] = acc;
        continue;
      }
      // Eight partial sums in double (a fixed order, so vectorized and independent of
      // threads). The reference sums left to right in float, whose error grows with the
      // plane (up to n * 2^-24 of the magnitude); this sum is exact to ~1e-16 before the
      // final rounding, so the two differ by the reference's rounding (see the test).
      double part[8] = {};
      int64_t i = 0;
      for (; i + 8 <= size; i += 8)
        for (int j = 0; j < 8; ++j) part[j] += double(v[i + j]);
      double sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
      for (; i < size; ++i) sum += double(v[i]);
      yp[pl] = size > 0 ? float(sum / double(size)) : 0.f;
    }
  });
}

// f32_global_avgpool_f64x32__avx512: the plane's sum in 32 double partial sums (element i into
// partial i mod 32, four registers of 8), combined in a fixed order. The 8 partials of
// globalKernel are 8 chains of dependent adds (latency-bound at 2 floats a cycle whatever the
// vector width); 32 in four registers keep the adders busy. The sum is as exact (~1e-16
// before the final rounding), in another order: a kernel of its own, the builder times both.
// efficientnet_b0's squeeze-excite means over 32x112x112 took 0.14 ms with globalKernel (and
// 0.05 ms in onnxruntime).
__attribute__((target("avx512f"))) inline __m512d widen(const float* v) {
  // The zero-masked form with every lane: GCC 12 warns on the plain one's undefined start.
  return _mm512_maskz_cvtps_pd(__mmask8(0xff), _mm256_loadu_ps(v));
}

__attribute__((target("avx512f"))) double planeSum512(const float* v, int64_t n) {
  __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_add_pd(a0, widen(v + i));
    a1 = _mm512_add_pd(a1, widen(v + i + 8));
    a2 = _mm512_add_pd(a2, widen(v + i + 16));
    a3 = _mm512_add_pd(a3, widen(v + i + 24));
  }
  for (; i + 8 <= n; i += 8) a0 = _mm512_add_pd(a0, widen(v + i));
  alignas(64) double lanes[8];
  _mm512_store_pd(lanes, _mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
  double sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; i < n; ++i) sum += double(v[i]);
  return sum;
}

void globalAvg512Kernel(const StepArgs& a) {
  const TensorView& x = a.in(0);
  const int64_t planes = x.dims[0] * x.dims[1];
  int64_t size = 1;
  for (int i = 2; i < x.rank; ++i) size *= x.dims[i];
  const float* xp = x.as<const float>();
  float* yp = a.out(0).as<float>();
  parallelRange(a.executor, planes, std::max<int64_t>(1, 4096 / std::max<int64_t>(size, 1)), [&](int64_t b, int64_t e) {
    for (int64_t pl = b; pl < e; ++pl)
      yp[pl] = size > 0 ? float(planeSum512(xp + pl * size, size) / double(size)) : 0.f;
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

void registerPool(Kernels& k) {
  for (bool isMax : {true, false}) {
    Kernel kn = base(isMax ? "f32_maxpool2d_nchw" : "f32_avgpool2d_nchw", isMax ? "MaxPool" : "AveragePool");
    kn.supports = [isMax](const ir::Node& n, const std::vector<ir::TensorType>& t) { return poolSupports(isMax, n, t); };
    kn.prepare = [isMax](const PrepareInfo& info, Prepared* p) { poolPrepare(isMax, info, p); };
    kn.run = poolKernel;
    k.add(std::move(kn));
    if (isMax) {
      Kernel sep = base("f32_maxpool2d_separable__avx2", "MaxPool");
      sep.requirements = {"avx2", "fma"};
      sep.supports = sepMaxSupports;
      sep.prepare = sepMaxPrepare;
      sep.run = sepMaxKernel;
      k.add(std::move(sep));
      Kernel plane = base("f32_maxpool2d_planes__avx512", "MaxPool");
      plane.requirements = {"avx512f"};
      plane.supports = sepMaxSupports;
      plane.prepare = planeMaxPrepare;
      plane.run = planeMaxKernel;
      k.add(std::move(plane));
    }

    Kernel g = base(isMax ? "f32_global_maxpool" : "f32_global_avgpool", isMax ? "GlobalMaxPool" : "GlobalAveragePool");
    g.supports = [](const ir::Node&, const std::vector<ir::TensorType>& t) {
      return !t.empty() && t[0].dtype == DataType::kF32 && rankOf(t, 0) >= 3;
    };
    g.prepare = [isMax](const PrepareInfo&, Prepared* p) { p->setParams(GlobalParams{isMax ? 1 : 0}); };
    g.run = globalKernel;
    Kernel g512 = g;
    k.add(std::move(g));
    if (!isMax) {
      g512.name = "f32_global_avgpool_f64x32__avx512";
      g512.requirements = {"avx512f"};
      g512.run = globalAvg512Kernel;
      k.add(std::move(g512));
    }
  }
}

}  // namespace anvil::runtime::nops
