// Fast CPU tactics for 2-D f32 Conv: im2col + packed GEMM per (image, group), packing
// the column matrix straight from the input panel by panel, and a direct depthwise
// kernel vectorised 8 outputs wide along the row.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/tactics.h"
#include "cpu/tactics/gemm_kernels.h"

namespace anvil::cpu::tactics {

namespace {

int64_t floorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t ceilDiv(int64_t a, int64_t b) { return -floorDiv(-a, b); }

// One 2-D convolution's geometry with auto_pad resolved.
struct Conv2d {
  int64_t N, C, H, W;      // input
  int64_t M, G, Cg, Mg;    // output channels, groups, channels per group
  int64_t kH, kW, sH, sW, dH, dW;
  int64_t pt, pl, pb, pr;  // pads: top, left, bottom, right
  int64_t OH, OW;
};

Conv2d resolve(const KernelContext& ctx, const Tensor& x, const Tensor& w) {
  ctx.check(x.dtype() == DataType::kF32 && w.dtype() == DataType::kF32, "this tactic takes f32 X and W");
  ctx.check(x.rank() == 4 && w.rank() == 4, "this tactic handles 2-D Conv (rank-4 X and W) only");
  const ir::Attributes& at = ctx.attrs();
  Conv2d g{};
  g.N = x.dim(0), g.C = x.dim(1), g.H = x.dim(2), g.W = x.dim(3);
  g.M = w.dim(0), g.kH = w.dim(2), g.kW = w.dim(3);
  g.G = at.getInt("group", 1);
  ctx.check(g.G >= 1 && g.C % g.G == 0 && g.M % g.G == 0,
            "group " + std::to_string(g.G) + " must divide C=" + std::to_string(g.C) + " and M=" + std::to_string(g.M));
  g.Cg = g.C / g.G, g.Mg = g.M / g.G;
  ctx.check(w.dim(1) == g.Cg, "W has " + std::to_string(w.dim(1)) + " input channels per group, expected " +
                                  std::to_string(g.Cg));
  const std::vector<int64_t> ks = at.getInts("kernel_shape", {g.kH, g.kW});
  ctx.check(ks.size() == 2 && ks[0] == g.kH && ks[1] == g.kW, "kernel_shape disagrees with W");
  const std::vector<int64_t> s = at.getInts("strides", {1, 1}), d = at.getInts("dilations", {1, 1});
  ctx.check(s.size() == 2 && d.size() == 2 && s[0] > 0 && s[1] > 0 && d[0] > 0 && d[1] > 0,
            "strides and dilations must be 2 positive values");
  g.sH = s[0], g.sW = s[1], g.dH = d[0], g.dW = d[1];
  const std::string autoPad = at.getString("auto_pad", "NOTSET");
  const int64_t ekH = (g.kH - 1) * g.dH + 1, ekW = (g.kW - 1) * g.dW + 1;
  if (autoPad == "NOTSET" || autoPad.empty()) {
    const std::vector<int64_t> p = at.getInts("pads", {0, 0, 0, 0});
    ctx.check(p.size() == 4, "pads must have 4 values for a 2-D Conv");
    g.pt = p[0], g.pl = p[1], g.pb = p[2], g.pr = p[3];
    ctx.check(g.pt >= 0 && g.pl >= 0 && g.pb >= 0 && g.pr >= 0, "negative pads");
  } else if (autoPad == "VALID") {
    g.pt = g.pl = g.pb = g.pr = 0;
  } else if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
    auto same = [&](int64_t in, int64_t st, int64_t ek, int64_t& begin, int64_t& end) {
      const int64_t out = ceilDiv(in, st);
      const int64_t total = std::max<int64_t>(0, (out - 1) * st + ek - in);
      begin = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
      end = total - begin;
    };
    same(g.H, g.sH, ekH, g.pt, g.pb);
    same(g.W, g.sW, ekW, g.pl, g.pr);
  } else {
    ctx.fail("unknown auto_pad '" + autoPad + "'");
  }
  ctx.check(g.H + g.pt + g.pb >= ekH && g.W + g.pl + g.pr >= ekW, "the padded input is smaller than the kernel");
  g.OH = (g.H + g.pt + g.pb - ekH) / g.sH + 1;
  g.OW = (g.W + g.pl + g.pr - ekW) / g.sW + 1;
  return g;
}

const float* biasOf(const KernelContext& ctx, const Conv2d& g) {
  if (!ctx.hasInput(2)) return nullptr;
  const Tensor& b = ctx.input(2);
  ctx.check(b.dtype() == DataType::kF32 && b.numel() == g.M, "B must be f32[" + std::to_string(g.M) + "]");
  return b.data<float>();
}

// The implicit column matrix of one (image, group): row k = (ci, kh, kw), column
// j = (oh, ow), value x[ci, oh*sH - pt + kh*dH, ow*sW - pl + kw*dW] or 0 in the padding.
// A block's columns are cut once into segments (one output row within one panel); each row
// k then fills a panel row with at most a few masked loads or gathers per segment, which
// keeps packing well below the cost of the 2*M flops each packed element feeds.
struct Im2colSegment {
  int64_t panel, lane0, len, oh, ow0;
};

struct Im2colRow {  // what one k of the block needs
  const float* xc;  // input channel ci
  int64_t ihOff;    // kh*dH - pt
  int64_t offW;     // kw*dW - pl
  int64_t owLo, owHi;  // output columns whose input column is inside the image
};

Im2colRow im2colRow(const float* x, const Conv2d& g, int64_t kk) {
  const int64_t khw = g.kH * g.kW, ci = kk / khw, kh = (kk % khw) / g.kW, kw = kk % g.kW;
  Im2colRow r;
  r.xc = x + ci * g.H * g.W;
  r.ihOff = kh * g.dH - g.pt;
  r.offW = kw * g.dW - g.pl;
  r.owLo = std::clamp<int64_t>(ceilDiv(-r.offW, g.sW), 0, g.OW);
  r.owHi = std::clamp<int64_t>(floorDiv(g.W - 1 - r.offW, g.sW) + 1, r.owLo, g.OW);
  return r;
}

// Lanes [a, b) of segment s that read inside the image for row r; false when none do. `base`
// is the address lane 0 of the panel would read (lane l reads base + l*sW); lanes outside
// [a, b) are never dereferenced.
bool segmentLanes(const Conv2d& g, const Im2colRow& r, const Im2colSegment& s, int64_t& a, int64_t& b,
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

__attribute__((target("avx512f"))) void packIm2colAvx512(const Im2colRow* rows, const Conv2d& g,
                                                         const std::vector<Im2colSegment>& segs, int64_t kc,
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
      for (; si < segs.size() && segs[si].panel == q; ++si) {
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

__attribute__((target("avx2"))) void packIm2colAvx2(const Im2colRow* rows, const Conv2d& g,
                                                    const std::vector<Im2colSegment>& segs, int64_t kc,
                                                    int64_t panels, const float* xLo, const float* xHi, float* dst) {
  const __m256i iota0 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), iota1 = _mm256_add_epi32(iota0, _mm256_set1_epi32(8));
  const __m256i idx0 = _mm256_mullo_epi32(iota0, _mm256_set1_epi32(int(g.sW)));
  const __m256i idx1 = _mm256_mullo_epi32(iota1, _mm256_set1_epi32(int(g.sW)));
  for (int64_t k = 0; k < kc; ++k) {
    const Im2colRow& r = rows[k];
    size_t si = 0;
    for (int64_t q = 0; q < panels; ++q) {
      __m256 v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps();
      for (; si < segs.size() && segs[si].panel == q; ++si) {
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

class Im2colPacker final : public BPacker {
 public:
  // x: the group's first input channel; [xLo, xHi): all of X (bounds for unmasked loads).
  Im2colPacker(const float* x, const Conv2d& g, const float* xLo, const float* xHi) : g_(g), xLo_(xLo), xHi_(xHi) {
    for (int64_t k = 0, K = g.Cg * g.kH * g.kW; k < K; ++k) rows_.push_back(im2colRow(x, g, k));
  }

  void pack(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst) const override {
    const Conv2d& g = g_;
    thread_local std::vector<Im2colSegment> segs;
    segs.clear();
    for (int64_t j = 0, oh = j0 / g.OW, ow = j0 % g.OW; j < nc;) {
      const int64_t lane = j % nr, len = std::min({nr - lane, g.OW - ow, nc - j});
      segs.push_back({j / nr, lane, len, oh, ow});
      j += len;
      ow += len;
      if (ow == g.OW) ow = 0, ++oh;
    }
    const int64_t panels = (nc + nr - 1) / nr;
    const Im2colRow* rows = rows_.data() + k0;
    if (nr == 32) return packIm2colAvx512(rows, g, segs, kc, panels, xLo_, xHi_, dst);
    if (nr == 16) return packIm2colAvx2(rows, g, segs, kc, panels, xLo_, xHi_, dst);
    for (int64_t k = 0; k < kc; ++k) {  // any other panel width: scalar
      for (int64_t q = 0; q < panels; ++q) std::fill(dst + (q * kc + k) * nr, dst + (q * kc + k + 1) * nr, 0.0f);
      for (const Im2colSegment& s : segs) {
        int64_t a, b;
        const float* base;
        if (!segmentLanes(g, rows[k], s, a, b, base)) continue;
        float* d = dst + (s.panel * kc + k) * nr;
        for (int64_t l = a; l < b; ++l) d[l] = base[l * g.sW];
      }
    }
  }

 private:
  Conv2d g_;
  const float *xLo_, *xHi_;
  std::vector<Im2colRow> rows_;
};

// With an epilogue, Y gets no bias prefill: the epilogue adds it (see gemm_kernels.h).
void runConvIm2col(KernelContext& ctx, PackedKernel kernel, const ConvEpilogue* ep = nullptr) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const Conv2d g = resolve(ctx, x, w);
  const float* bias = biasOf(ctx, g);
  Tensor& y = ctx.allocOutput(0, DataType::kF32, {g.N, g.M, g.OH, g.OW});
  float* yp = y.data<float>();
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  const int64_t K = g.Cg * g.kH * g.kW, P = g.OH * g.OW;
  const bool pointwise = g.kH == 1 && g.kW == 1 && g.sH == 1 && g.sW == 1 && g.pt == 0 && g.pl == 0 &&
                         g.pb == 0 && g.pr == 0;
  auto unit = [&](int64_t u) {
    const int64_t n = u / g.G, grp = u % g.G;
    float* yg = yp + (n * g.M + grp * g.Mg) * P;
    if (bias && !ep)
      for (int64_t m = 0; m < g.Mg; ++m) std::fill(yg + m * P, yg + (m + 1) * P, bias[grp * g.Mg + m]);
    const float* xg = xp + (n * g.C + grp * g.Cg) * g.H * g.W;
    const StridedMatrix A{wp + grp * g.Mg * K, K, 1};
    GemmEpilogue ge;
    if (ep)
      ge = [&](int64_t i0, int64_t rows, int64_t j0, int64_t cols, float* c, int64_t ldc) {
        (*ep)(n, grp * g.Mg + i0, rows, j0, cols, c, ldc);
      };
    const bool acc = bias != nullptr && !ep;
    if (pointwise)
      packedGemm(kernel, g.Mg, P, K, 1.0f, A, StridedBPacker({xg, P, 1}), yg, P, acc, ep ? &ge : nullptr);
    else
      packedGemm(kernel, g.Mg, P, K, 1.0f, A, Im2colPacker(xg, g, xp, xp + x.numel()), yg, P, acc,
                 ep ? &ge : nullptr);
  };
  const int64_t units = g.N * g.G;
  // Many groups or images: one GEMM per task; otherwise each GEMM uses the threads.
  if (units >= 2 * numThreads())
    parallelFor(units, unit);
  else
    for (int64_t u = 0; u < units; ++u) unit(u);
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
                                                       const Conv2d& g, __m256i gatherIdx) {
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
__attribute__((target("avx2,fma"))) void dwPlaneAvx2(const float* x, const float* w, float bias, float* y,
                                                    const Conv2d& g, float* padded) {
  Conv2d p = g;  // the geometry on the padded plane
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

void runDepthwiseWith(KernelContext& ctx, const ConvEpilogue* ep) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const Conv2d g = resolve(ctx, x, w);
  ctx.check(g.Cg == 1, "this tactic handles depthwise Conv (group == C) only");
  const float* bias = biasOf(ctx, g);
  Tensor& y = ctx.allocOutput(0, DataType::kF32, {g.N, g.M, g.OH, g.OW});
  float* yp = y.data<float>();
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  const int64_t paddedSize = (g.H + g.pt + g.pb) * (g.W + g.pl + g.pr + 16);
  parallelFor(g.N * g.M, [&](int64_t t) {
    thread_local std::vector<float> padded;
    if (int64_t(padded.size()) < paddedSize) padded.resize(size_t(paddedSize));
    const int64_t n = t / g.M, m = t % g.M, c = m / g.Mg;
    const float* xc = xp + (n * g.C + c) * g.H * g.W;
    const float* wm = wp + m * g.kH * g.kW;
    const float b = bias && !ep ? bias[m] : 0.0f;  // an epilogue adds the bias itself
    float* ym = yp + t * g.OH * g.OW;
    if (g.sW == 1)
      dwPlaneAvx2<1>(xc, wm, b, ym, g, padded.data());
    else if (g.sW == 2)
      dwPlaneAvx2<2>(xc, wm, b, ym, g, padded.data());
    else
      dwPlaneAvx2<0>(xc, wm, b, ym, g, padded.data());
    if (ep) (*ep)(n, m, 1, 0, g.OH * g.OW, ym, g.OH * g.OW);
  });
}

void runDepthwise(KernelContext& ctx) { runDepthwiseWith(ctx, nullptr); }

// ---------------------------------------------------------------------------------------
// supports()

bool isF32(const ir::TensorType& t) { return t.dtype == DataType::kF32; }
bool rank4(const ir::TensorType& t) { return t.shape.rankKnown() && t.shape.rank() == 4; }

bool knownAutoPad(const ir::Node& n) {
  const std::string p = n.attrs().getString("auto_pad", "NOTSET");
  return p == "NOTSET" || p.empty() || p == "VALID" || p == "SAME_UPPER" || p == "SAME_LOWER";
}

bool supportsConv2d(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !isF32(in[0]) || !isF32(in[1]) || !rank4(in[0]) || !rank4(in[1])) return false;
  if (in.size() > 2 && in[2].dtype != DataType::kUndefined && !isF32(in[2])) return false;
  return knownAutoPad(n);
}

bool supportsDepthwise(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (!supportsConv2d(n, in) || !cpuHas("fma")) return false;
  const ir::Shape& x = in[0].shape;
  const ir::Shape& w = in[1].shape;
  const int64_t group = n.attrs().getInt("group", 1);
  // One input channel per group (W[:,1] == 1) and, where the channel count is known, group == C.
  return w[1].isStatic() && w[1].value() == 1 && (!x[1].isStatic() || x[1].value() == group);
}

}  // namespace

void runConv2dIm2colEpilogue(KernelContext& ctx, PackedKernel kernel, const ConvEpilogue& epilogue) {
  runConvIm2col(ctx, kernel, &epilogue);
}

void runDepthwiseEpilogue(KernelContext& ctx, const ConvEpilogue& epilogue) { runDepthwiseWith(ctx, &epilogue); }

void registerConvTactics(TacticRegistry& r) {
  r.add({"f32_conv2d_im2col_gemm__avx2", "Conv", "", "avx2",
         [](const ir::Node& n, const std::vector<ir::TensorType>& in) { return cpuHas("fma") && supportsConv2d(n, in); },
         [](KernelContext& ctx) { runConvIm2col(ctx, PackedKernel::kAvx2_6x16); }});
  r.add({"f32_conv2d_im2col_gemm__avx512", "Conv", "", "avx512f", supportsConv2d,
         [](KernelContext& ctx) { runConvIm2col(ctx, PackedKernel::kAvx512_14x32); }});
  r.add({"f32_dwconv2d_direct_8w__avx2", "Conv", "", "avx2", supportsDepthwise, runDepthwise});
}

}  // namespace anvil::cpu::tactics
