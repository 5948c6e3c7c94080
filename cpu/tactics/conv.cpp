// The 2-D Conv pieces of cpu/tactics/native_linear_conv.h: geometry, the implicit-im2col
// packer (panels filled straight from the input, masked loads or gathers per segment) and
// the direct depthwise plane vectorised 8 outputs wide along the row.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/tactics/native_linear_conv.h"

namespace anvil::cpu::tactics {

namespace {

int64_t floorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t ceilDivSigned(int64_t a, int64_t b) { return -floorDiv(-a, b); }

struct Im2colSegment {
  int64_t panel, lane0, len, oh, ow0;
};

struct Im2colRow {  // what one k of the block needs
  const float* xc;  // input channel ci
  int64_t ihOff;    // kh*dH - pt
  int64_t offW;     // kw*dW - pl
  int64_t owLo, owHi;  // output columns whose input column is inside the image
};

Im2colRow im2colRow(const float* x, const Conv2dGeom& g, int64_t kk) {
  const int64_t khw = g.kH * g.kW, ci = kk / khw, kh = (kk % khw) / g.kW, kw = kk % g.kW;
  Im2colRow r;
  r.xc = x + ci * g.H * g.W;
  r.ihOff = kh * g.dH - g.pt;
  r.offW = kw * g.dW - g.pl;
  r.owLo = std::clamp<int64_t>(ceilDivSigned(-r.offW, g.sW), 0, g.OW);
  r.owHi = std::clamp<int64_t>(floorDiv(g.W - 1 - r.offW, g.sW) + 1, r.owLo, g.OW);
  return r;
}

// Lanes [a, b) of segment s that read inside the image for row r; false when none do. `base`
// is the address lane 0 of the panel would read (lane l reads base + l*sW); lanes outside
// [a, b) are never dereferenced.
bool segmentLanes(const Conv2dGeom& g, const Im2colRow& r, const Im2colSegment& s, int64_t& a, int64_t& b,
                  const float*& base) {
  const int64_t ih = s.oh * g.sH + r.ihOff;
  if (ih < 0 || ih >= g.H) return false;
  const int64_t owA = std::max(s.ow0, r.owLo), owB = std::min(s.ow0 + s.len, r.owHi);
  if (owA >= owB) return false;
  a = s.lane0 + owA - s.ow0;
  b = s.lane0 + owB - s.ow0;
  base = reinterpret_cast<const float*>(reinterpret_cast<intptr_t>(r.xc) +
                                        intptr_t(ih * g.W + r.offW + (s.ow0 - s.lane0) * g.sW) * intptr_t(sizeof(float)));
  return true;
}

// A full load blended under the mask where the 16 floats lie inside X: cheaper than a
// fault-suppressing masked load whose masked lanes cross into other lines.
__attribute__((target("avx512f"))) inline __m512 loadLanesAvx512(__m512 v, __mmask16 m, const float* p,
                                                                 const float* lo, const float* hi) {
  if (p >= lo && p + 16 <= hi) return _mm512_mask_mov_ps(v, m, _mm512_loadu_ps(p));
  return _mm512_mask_loadu_ps(v, m, p);
}

__attribute__((target("avx512f"))) void packIm2colAvx512(const Im2colRow* rows, const Conv2dGeom& g,
                                                         const Im2colSegment* segs, int64_t nSegs, int64_t kc,
                                                         int64_t panels, const float* xLo, const float* xHi,
                                                         float* dst) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i idx0 = _mm512_mullo_epi32(iota, _mm512_set1_epi32(int(g.sW)));
  const __m512i idx1 = _mm512_add_epi32(idx0, _mm512_set1_epi32(int(16 * g.sW)));
  for (int64_t k = 0; k < kc; ++k) {
    const Im2colRow& r = rows[k];
    size_t si = 0;
    for (int64_t q = 0; q < panels; ++q) {
      __m512 v0 = _mm512_setzero_ps(), v1 = _mm512_setzero_ps();
      for (; si < size_t(nSegs) && segs[si].panel == q; ++si) {
        int64_t a, b;
        const float* base;
        if (!segmentLanes(g, r, segs[si], a, b, base)) continue;
        const uint64_t bits = ((uint64_t(1) << b) - 1) & ~((uint64_t(1) << a) - 1);
        const __mmask16 m0 = __mmask16(bits), m1 = __mmask16(bits >> 16);
        if (g.sW == 1) {
          if (m0) v0 = loadLanesAvx512(v0, m0, base, xLo, xHi);
          if (m1) v1 = loadLanesAvx512(v1, m1, base + 16, xLo, xHi);
        } else {
          v0 = _mm512_mask_i32gather_ps(v0, m0, idx0, base, 4);
          v1 = _mm512_mask_i32gather_ps(v1, m1, idx1, base, 4);
        }
      }
      float* d = dst + (q * kc + k) * 32;
      _mm512_storeu_ps(d, v0);
      _mm512_storeu_ps(d + 16, v1);
    }
  }
}

// AVX2 has no cheap masked load (vmaskmovps stalls on AMD), so lanes are blended from a
// full load wherever the 8 floats lie inside X, and only X's first/last floats take the
// masked load.
__attribute__((target("avx2"))) inline __m256 loadLanesAvx2(__m256 v, const float* p, __m256i m, const float* lo,
                                                            const float* hi) {
  if (p >= lo && p + 8 <= hi) return _mm256_blendv_ps(v, _mm256_loadu_ps(p), _mm256_castsi256_ps(m));
  return _mm256_or_ps(v, _mm256_maskload_ps(p, m));  // masked lanes load +0.0
}

__attribute__((target("avx2"))) void packIm2colAvx2(const Im2colRow* rows, const Conv2dGeom& g,
                                                    const Im2colSegment* segs, int64_t nSegs, int64_t kc,
                                                    int64_t panels, const float* xLo, const float* xHi, float* dst) {
  const __m256i iota0 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), iota1 = _mm256_add_epi32(iota0, _mm256_set1_epi32(8));
  const __m256i idx0 = _mm256_mullo_epi32(iota0, _mm256_set1_epi32(int(g.sW)));
  const __m256i idx1 = _mm256_mullo_epi32(iota1, _mm256_set1_epi32(int(g.sW)));
  for (int64_t k = 0; k < kc; ++k) {
    const Im2colRow& r = rows[k];
    size_t si = 0;
    for (int64_t q = 0; q < panels; ++q) {
      __m256 v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps();
      for (; si < size_t(nSegs) && segs[si].panel == q; ++si) {
        int64_t a, b;
        const float* base;
        if (!segmentLanes(g, r, segs[si], a, b, base)) continue;
        const __m256i lo = _mm256_set1_epi32(int(a) - 1), hi = _mm256_set1_epi32(int(b));
        const __m256i m0 = _mm256_and_si256(_mm256_cmpgt_epi32(iota0, lo), _mm256_cmpgt_epi32(hi, iota0));
        const __m256i m1 = _mm256_and_si256(_mm256_cmpgt_epi32(iota1, lo), _mm256_cmpgt_epi32(hi, iota1));
        if (g.sW == 1) {
          if (a < 8) v0 = loadLanesAvx2(v0, base, m0, xLo, xHi);
          if (b > 8) v1 = loadLanesAvx2(v1, base + 8, m1, xLo, xHi);
        } else {
          v0 = _mm256_mask_i32gather_ps(v0, base, idx0, _mm256_castsi256_ps(m0), 4);
          v1 = _mm256_mask_i32gather_ps(v1, base, idx1, _mm256_castsi256_ps(m1), 4);
        }
      }
      float* d = dst + (q * kc + k) * 16;
      _mm256_storeu_ps(d, v0);
      _mm256_storeu_ps(d + 8, v1);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Depthwise: group == C, M = C * multiplier, one input channel per output channel.

// Eight outputs' input for one tap: stride 1, stride 2 (two loads, keep the even lanes) or
// any stride (S == 0, a gather).
template <int S>
__attribute__((target("avx2,fma"))) inline __m256 dwLoad(const float* p, __m256i gatherIdx) {
  if constexpr (S == 1) {
    return _mm256_loadu_ps(p);
  } else if constexpr (S == 2) {
    const __m256 even = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), _MM_SHUFFLE(3, 1, 2, 0)));
  } else {
    return _mm256_i32gather_ps(p, gatherIdx, 4);
  }
}

// 8*V outputs of one row from ow on; V independent accumulators hide the FMA latency.
template <int S, int V>
__attribute__((target("avx2,fma"))) inline void dwStep(const float* x, const float* w, float bias, float* yr,
                                                       int64_t ow, int64_t ih0, int64_t khLo, int64_t khHi,
                                                       const Conv2dGeom& g, __m256i gatherIdx) {
  const int64_t sW = S ? S : g.sW;
  __m256 acc[V];
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) acc[v] = _mm256_set1_ps(bias);
  for (int64_t kh = khLo; kh < khHi; ++kh) {
    const float* xr = x + (ih0 + kh * g.dH) * g.W + ow * sW - g.pl;
    const float* wr = w + kh * g.kW;
    for (int64_t kw = 0; kw < g.kW; ++kw) {
      const __m256 wv = _mm256_set1_ps(wr[kw]);
      const float* p = xr + kw * g.dW;
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[v] = _mm256_fmadd_ps(wv, dwLoad<S>(p + v * 8 * sW, gatherIdx), acc[v]);
    }
  }
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) _mm256_storeu_ps(yr + ow + 8 * v, acc[v]);
}

// One output plane. The input plane is first copied into a zero-padded scratch plane so
// that every output is an interior one: full vectors along the row, and the row's last
// vector overlaps the previous one instead of a scalar tail (same values, written twice).
template <int S>
__attribute__((target("avx2,fma"))) void dwPlane(const float* x, const float* w, float bias, float* y,
                                                    const Conv2dGeom& g, float* padded) {
  Conv2dGeom p = g;  // the geometry on the padded plane
  p.H = g.H + g.pt + g.pb;
  p.W = g.W + g.pl + g.pr + 16;  // slack: the stride-2 load reads one float past the last tap
  p.pt = p.pl = p.pb = p.pr = 0;
  for (int64_t r = 0; r < p.H; ++r) {
    float* pr = padded + r * p.W;
    const int64_t ih = r - g.pt;
    if (ih < 0 || ih >= g.H) {
      std::memset(pr, 0, size_t(p.W) * sizeof(float));
      continue;
    }
    std::memset(pr, 0, size_t(g.pl) * sizeof(float));
    std::memcpy(pr + g.pl, x + ih * g.W, size_t(g.W) * sizeof(float));
    std::memset(pr + g.pl + g.W, 0, size_t(p.W - g.pl - g.W) * sizeof(float));
  }
  const int64_t sW = S ? S : g.sW;
  const __m256i gatherIdx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(int(sW)));
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    float* yr = y + oh * g.OW;
    const int64_t ih0 = oh * g.sH;
    int64_t ow = 0;
    for (; ow + 32 <= g.OW; ow += 32) dwStep<S, 4>(padded, w, bias, yr, ow, ih0, 0, g.kH, p, gatherIdx);
    for (; ow + 8 <= g.OW; ow += 8) dwStep<S, 1>(padded, w, bias, yr, ow, ih0, 0, g.kH, p, gatherIdx);
    if (ow < g.OW && g.OW >= 8) {
      dwStep<S, 1>(padded, w, bias, yr, g.OW - 8, ih0, 0, g.kH, p, gatherIdx);
      continue;
    }
    for (; ow < g.OW; ++ow) {
      float acc = bias;
      for (int64_t kh = 0; kh < g.kH; ++kh)
        for (int64_t kw = 0; kw < g.kW; ++kw)
          acc = std::fma(w[kh * g.kW + kw], padded[(ih0 + kh * g.dH) * p.W + ow * sW + kw * g.dW], acc);
      yr[ow] = acc;
    }
  }
}

}  // namespace

bool conv2dGeometry(const ConvAttrs& a, const int64_t* x, int64_t M, Conv2dGeom* out) {
  Conv2dGeom g{};
  g.N = x[0], g.C = x[1], g.H = x[2], g.W = x[3];
  g.M = M, g.G = a.group, g.kH = a.kH, g.kW = a.kW;
  if (g.G < 1 || g.C % g.G != 0 || g.M % g.G != 0) return false;
  g.Cg = g.C / g.G, g.Mg = g.M / g.G;
  g.sH = a.sH, g.sW = a.sW, g.dH = a.dH, g.dW = a.dW;
  const int64_t ekH = (g.kH - 1) * g.dH + 1, ekW = (g.kW - 1) * g.dW + 1;
  if (a.autoPad == 0) {
    g.pt = a.pads[0], g.pl = a.pads[1], g.pb = a.pads[2], g.pr = a.pads[3];
  } else if (a.autoPad == 1) {
    g.pt = g.pl = g.pb = g.pr = 0;
  } else {
    auto same = [&](int64_t in, int64_t st, int64_t ek, int64_t& begin, int64_t& end) {
      const int64_t outExt = ceilDivSigned(in, st);
      const int64_t total = std::max<int64_t>(0, (outExt - 1) * st + ek - in);
      begin = a.autoPad == 2 ? total / 2 : total - total / 2;
      end = total - begin;
    };
    same(g.H, g.sH, ekH, g.pt, g.pb);
    same(g.W, g.sW, ekW, g.pl, g.pr);
  }
  if (g.H + g.pt + g.pb < ekH || g.W + g.pl + g.pr < ekW) return false;
  g.OH = (g.H + g.pt + g.pb - ekH) / g.sH + 1;
  g.OW = (g.W + g.pl + g.pr - ekW) / g.sW + 1;
  *out = g;
  return true;
}

int64_t Im2colPacker::scratchFloats(int64_t kc, int64_t nc, int nr) {
  const int64_t bytes = kc * int64_t(sizeof(Im2colRow)) + (nc + ceilDiv(nc, nr) + 2) * int64_t(sizeof(Im2colSegment));
  return ceilDiv(bytes, int64_t(sizeof(float)));
}

void Im2colPacker::pack(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst, float* scratch) const {
  const Conv2dGeom& g = g_;
  // Scratch: the kc rows' addressing, then the block's segments (one output row within one
  // panel each).
  auto* rows = reinterpret_cast<Im2colRow*>(scratch);
  for (int64_t k = 0; k < kc; ++k) rows[k] = im2colRow(x_, g, k0 + k);
  auto* segs = reinterpret_cast<Im2colSegment*>(rows + kc);
  int64_t nSegs = 0;
  for (int64_t j = 0, oh = j0 / g.OW, ow = j0 % g.OW; j < nc;) {
    const int64_t lane = j % nr, len = std::min({nr - lane, g.OW - ow, nc - j});
    segs[nSegs++] = {j / nr, lane, len, oh, ow};
    j += len;
    ow += len;
    if (ow == g.OW) ow = 0, ++oh;
  }
  const int64_t panels = ceilDiv(nc, nr);
  if (nr == 32) return packIm2colAvx512(rows, g, segs, nSegs, kc, panels, xLo_, xHi_, dst);
  if (nr == 16) return packIm2colAvx2(rows, g, segs, nSegs, kc, panels, xLo_, xHi_, dst);
  for (int64_t k = 0; k < kc; ++k) {  // any other panel width: scalar
    for (int64_t q = 0; q < panels; ++q) std::fill(dst + (q * kc + k) * nr, dst + (q * kc + k + 1) * nr, 0.0f);
    for (int64_t si = 0; si < nSegs; ++si) {
      const Im2colSegment& s = segs[si];
      int64_t a, b;
      const float* base;
      if (!segmentLanes(g, rows[k], s, a, b, base)) continue;
      float* d = dst + (s.panel * kc + k) * nr;
      for (int64_t l = a; l < b; ++l) d[l] = base[l * g.sW];
    }
  }
}

int64_t depthwisePaddedFloats(const Conv2dGeom& g) { return (g.H + g.pt + g.pb) * (g.W + g.pl + g.pr + 16); }

void depthwisePlaneAvx2(const float* x, const float* w, float bias, float* y, const Conv2dGeom& g, float* padded) {
  if (g.sW == 1)
    dwPlane<1>(x, w, bias, y, g, padded);
  else if (g.sW == 2)
    dwPlane<2>(x, w, bias, y, g, padded);
  else
    dwPlane<0>(x, w, bias, y, g, padded);
}

}  // namespace anvil::cpu::tactics
