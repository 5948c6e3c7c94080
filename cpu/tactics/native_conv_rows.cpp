// Native 2-D Conv kernels with the output PIXELS as the GEMM rows: per (image, group)
// Y^T[P x Mg] = im2col(X)^T[P x K] * W^T[K x Mg], the filter packed once at build time as B
// panels of output channels (the micro-kernel's vector columns), the im2col rows packed per
// task as A panels of mr pixels, and a transposing epilogue that writes the NCHW output
// (bias, activation and residual fused). For layers with few pixels and many channels
// (ResNet's 7x7 and 14x14 stages, 1x1 convs with 1024-2048 channels) this keeps every lane
// busy where the channel-row kernels (native_linear.cpp) spend a 32-wide column panel on 17
// pixels and stream the whole filter once per pixel panel.
// The same GEMM on the blocked layout NCHW16c / NCHW8c (the tile stores whole output
// channel blocks) and a blocked Winograd F(4x4, 3x3) on the blocked tiles live in
// native_conv_rows_nchwc.inc, included at the end of this file's kernels.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "cpu/tactics/epilogue_act.h"
#include "cpu/tactics/gemm_kernels.h"
#include "cpu/tactics/gemm_tile_steps.h"
#include "cpu/tactics/native_linear_conv.h"
#include "cpu/tactics/native_linear_epilogue.h"
#include "cpu/tactics/nchwc.h"
#include "cpu/tactics/nchwc_depthwise.h"
#include "cpu/tactics/task_split.h"
#include "ir/ops/anvil_linear.h"
#include "runtime/kernel.h"

namespace anvil::cpu::tactics {

namespace {

using ir::linear::Activation;
using ir::linear::Epilogue;
using runtime::Kernel;
using runtime::Kernels;
using runtime::PrepareInfo;
using runtime::Prepared;
using runtime::StepArgs;
using runtime::TensorView;

// Everything run() needs besides the views; trivially copyable, no padding bytes.
struct RowsParams {
  GemmIsa isa = GemmIsa::kAvx2_6x16;
  int32_t tasks = 1;  // workspace slots: the most tasks a run may use
  int32_t fused = 0;  // 1: anvil.FusedConv (epilogue below)
  int32_t liveTaps = 0;  // blocked rows: the filter holds only these taps (their list: blob 1); 0: all
  int64_t wM = 0, wK = 0;  // the packed filter: per group Mg channels x K
  int64_t mcPix = 0;       // pixels per block (a multiple of mr): the workspace's A and C blocks
  int64_t ncChan = 0;      // channels per block (a multiple of nr)
  ConvAttrs conv;
  EpilogueParams epi;
  int32_t fixedTasks = 0;  // > 0: every run splits into this many tasks (the builder timed it)
};
static_assert(sizeof(EpilogueParams) == 20 && sizeof(RowsParams) == 16 + 32 + sizeof(ConvAttrs) + 20 + 4,
              "RowsParams must have no padding bytes");

bool isF32(const ir::TensorType& t) { return t.dtype == DataType::kF32; }
bool absent(const std::vector<ir::TensorType>& in, size_t i) {
  return i >= in.size() || in[i].dtype == DataType::kUndefined;
}

// The Conv attributes against the filter extents w; false when not a 2-D Conv.
bool rowsConvAttrs(const ir::Node& n, const ir::Shape& w, ConvAttrs* a) {
  if (!w.rankKnown() || w.rank() != 4 || !w[2].isStatic() || !w[3].isStatic()) return false;
  const ir::Attributes& at = n.attrs();
  a->group = at.getInt("group", 1);
  a->kH = w[2].value();
  a->kW = w[3].value();
  const std::vector<int64_t> ks = at.getInts("kernel_shape", {a->kH, a->kW});
  if (ks.size() != 2 || ks[0] != a->kH || ks[1] != a->kW) return false;
  const std::vector<int64_t> s = at.getInts("strides", {1, 1}), d = at.getInts("dilations", {1, 1});
  if (s.size() != 2 || d.size() != 2 || s[0] <= 0 || s[1] <= 0 || d[0] <= 0 || d[1] <= 0) return false;
  a->sH = s[0], a->sW = s[1], a->dH = d[0], a->dW = d[1];
  if (!decodeConvPads(at, a)) return false;
  return a->group >= 1;
}

// X f32 [N, C, H, W] with static C, W an f32 initializer [M, C/group, kH, kW], B f32 [M]
// when given; not depthwise (one input channel per group: the direct kernels serve it).
bool supportsRows(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !isF32(in[0]) || !isF32(in[1])) return false;
  const ir::Shape& x = in[0].shape;
  const ir::Shape& w = in[1].shape;
  if (!x.rankKnown() || x.rank() != 4 || !x[1].isStatic()) return false;
  ConvAttrs a;
  if (!rowsConvAttrs(n, w, &a)) return false;
  if (!w[0].isStatic() || !w[1].isStatic()) return false;
  const int64_t C = x[1].value(), Cg = w[1].value();
  if (Cg * a.group != C || w[0].value() % a.group != 0) return false;
  if (Cg == 1 && a.group > 1) return false;
  const ir::Value* wv = n.input(1);
  if (!wv || !wv->initializer()) return false;
  if (!absent(in, 2) && (!isF32(in[2]) || !in[2].shape.rankKnown() || in[2].shape.rank() != 1)) return false;
  return true;
}

bool supportsFusedRows(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (!supportsRows(n, in)) return false;
  return fusedEpilogueSupported(n, in);
}

// ---------------------------------------------------------------------------------------
// The A side: im2col rows as panels of mr pixels

int64_t floorDivS(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// What every k of the filter needs from the pixel block, per segment (a run of pixels of
// one output row inside one panel), computed once per block: the offset of the panel's
// lane 0 input for kh = kw = 0 from the channel plane's start (lane l reads
// + l*sW + kh*dH*W + kw*dW), the lanes whose input column lies inside the image per kw,
// all lanes or none per kh (the input row inside the image), and the segment's panel.
// Per k a segment is then two table reads and an add: the per-k lane arithmetic it
// replaced (clamps and divisions per segment and k) cost resnet18's stride-2 3x3 64->128
// 44% of its GEMM time.
struct SegTables {
  int64_t* base;      // [segs]
  int32_t* panel;     // [segs]
  uint16_t* colMask;  // [segs * kW]
  uint16_t* rowMask;  // [segs * kH]
  int64_t segs;
};

// Segments of a block of n pixels: each ends at a panel end, a row end or the block's end,
// so there are at most n / mr + n + 2 of them (n / mr + 2 with rows of at least mr pixels).
int64_t maxSegments(int64_t n, int mr) { return n + n / mr + 2; }

int64_t segTableFloats(int64_t mcPix, int mr, int64_t kH, int64_t kW) {
  const int64_t s = maxSegments(mcPix, mr);
  return ceilDiv(s * int64_t(sizeof(int64_t) + sizeof(int32_t)) + s * (kW + kH) * int64_t(sizeof(uint16_t)) + 16,
                 int64_t(sizeof(float)));
}

SegTables segmentTables(const Conv2dGeom& g, int64_t p0, int64_t n, int mr, float* scratch) {
  const int64_t maxS = maxSegments(n, mr);
  SegTables t;
  t.base = reinterpret_cast<int64_t*>(scratch);
  t.panel = reinterpret_cast<int32_t*>(t.base + maxS);
  t.colMask = reinterpret_cast<uint16_t*>(t.panel + maxS);
  t.rowMask = t.colMask + maxS * g.kW;
  t.segs = 0;
  for (int64_t j = 0, oh = p0 / g.OW, ow = p0 % g.OW; j < n;) {
    const int64_t lane = j % mr, len = std::min({int64_t(mr) - lane, g.OW - ow, n - j});
    const int64_t si = t.segs++;
    t.base[si] = (oh * g.sH - g.pt) * g.W + (ow - lane) * g.sW - g.pl;
    t.panel[si] = int32_t(j / mr);
    for (int64_t kh = 0; kh < g.kH; ++kh) {
      const int64_t ih = oh * g.sH - g.pt + kh * g.dH;
      t.rowMask[si * g.kH + kh] = ih >= 0 && ih < g.H ? 0xffff : 0;
    }
    for (int64_t kw = 0; kw < g.kW; ++kw) {
      const int64_t offW = kw * g.dW - g.pl;
      const int64_t owLo = std::clamp<int64_t>(-floorDivS(offW, g.sW), 0, g.OW);  // ceil(-offW / sW)
      const int64_t owHi = std::clamp<int64_t>(floorDivS(g.W - 1 - offW, g.sW) + 1, owLo, g.OW);
      const int64_t owA = std::max(ow, owLo), owB = std::min(ow + len, owHi);
      uint32_t m = 0;
      if (owA < owB) {
        const int64_t a = lane + owA - ow, b = lane + owB - ow;
        m = ((1u << b) - 1) & ~((1u << a) - 1);
      }
      t.colMask[si * g.kW + kw] = uint16_t(m);
    }
    j += len;
    ow += len;
    if (ow == g.OW) ow = 0, ++oh;
  }
  return t;
}

// p + n floats, computed as an address (p + n may lie outside X: only masked lanes read).
inline const float* offsetFloats(const float* p, int64_t n) {
  return reinterpret_cast<const float*>(reinterpret_cast<intptr_t>(p) + intptr_t(n) * intptr_t(sizeof(float)));
}

// Bit l of m to bit 2l (the lanes' inputs at the even floats of a stride-2 window).
inline uint32_t spreadBits(uint32_t m) {
  m = (m | (m << 8)) & 0x00ff00ffu;
  m = (m | (m << 4)) & 0x0f0f0f0fu;
  m = (m | (m << 2)) & 0x33333333u;
  return (m | (m << 1)) & 0x55555555u;
}

// Steps (ci, kh, kw) through k = k0, k0 + 1, ...
struct KCursor {
  int64_t ci, kh, kw;
  KCursor(const Conv2dGeom& g, int64_t k0) {
    const int64_t khw = g.kH * g.kW;
    ci = k0 / khw;
    kh = (k0 % khw) / g.kW;
    kw = k0 % g.kW;
  }
  void next(const Conv2dGeom& g) {
    if (++kw == g.kW) {
      kw = 0;
      if (++kh == g.kH) kh = 0, ++ci;
    }
  }
};

// Packs the [kc x pixels] block at K offset k0 as A panels (panel i at dst + i*kc*MR, k
// holding MR pixel values, zeros in the padding and past the block). One vector per (k,
// panel), filled segment by segment with masked loads (stride 1), two masked loads and a
// permute (stride 2: a gather cost the 7x7 stride-2 stem ~40% of its time) or a gather.
template <int MR>
__attribute__((target("avx512f"))) void packPixelsAvx512(const float* x, const Conv2dGeom& g, const SegTables& t,
                                                         int64_t k0, int64_t kc, float* dst) {
  static_assert(MR <= 16);
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i idx = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(int(g.sW)));
  const __mmask16 store = __mmask16((1u << MR) - 1);
  const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const int64_t plane = g.H * g.W, rowStep = g.dH * g.W;
  KCursor kk(g, k0);
  for (int64_t k = 0; k < kc; ++k, kk.next(g)) {
    const float* xc = x + kk.ci * plane;
    const int64_t off = kk.kh * rowStep + kk.kw * g.dW;
    const uint16_t* col = t.colMask + kk.kw;
    const uint16_t* row = t.rowMask + kk.kh;
    __m512 v = _mm512_setzero_ps();
    int32_t panel = t.panel[0];
    for (int64_t si = 0; si < t.segs; ++si) {
      if (t.panel[si] != panel) {
        _mm512_mask_storeu_ps(dst + (panel * kc + k) * MR, store, v);
        v = _mm512_setzero_ps();
        panel = t.panel[si];
      }
      const uint32_t m = col[si * g.kW] & row[si * g.kH];
      if (!m) continue;
      const float* base = offsetFloats(xc, t.base[si] + off);
      if (g.sW == 1) {
        v = _mm512_mask_loadu_ps(v, __mmask16(m), base);
      } else if (g.sW == 2) {
        const uint32_t win = spreadBits(m);
        const __m512 lo = _mm512_maskz_loadu_ps(__mmask16(win), base);
        const __m512 hi = _mm512_maskz_loadu_ps(__mmask16(win >> 16), offsetFloats(base, 16));
        v = _mm512_mask_mov_ps(v, __mmask16(m), _mm512_permutex2var_ps(lo, evens, hi));
      } else {
        v = _mm512_mask_i32gather_ps(v, __mmask16(m), idx, base, 4);
      }
    }
    _mm512_mask_storeu_ps(dst + (panel * kc + k) * MR, store, v);
  }
}

template <int MR>
__attribute__((target("avx2,fma"))) void packPixelsAvx2(const float* x, const Conv2dGeom& g, const SegTables& t,
                                                        int64_t k0, int64_t kc, float* dst) {
  static_assert(MR <= 8);
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i laneBits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i idx = _mm256_mullo_epi32(lanes, _mm256_set1_epi32(int(g.sW)));
  const __m256i store = _mm256_cmpgt_epi32(_mm256_set1_epi32(MR), lanes);
  const __m256i even = _mm256_setr_epi32(-1, 0, -1, 0, -1, 0, -1, 0);
  const __m256i dupLo = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3), dupHi = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
  const int64_t plane = g.H * g.W, rowStep = g.dH * g.W;
  KCursor kk(g, k0);
  for (int64_t k = 0; k < kc; ++k, kk.next(g)) {
    const float* xc = x + kk.ci * plane;
    const int64_t off = kk.kh * rowStep + kk.kw * g.dW;
    const uint16_t* col = t.colMask + kk.kw;
    const uint16_t* row = t.rowMask + kk.kh;
    __m256 v = _mm256_setzero_ps();
    int32_t panel = t.panel[0];
    for (int64_t si = 0; si < t.segs; ++si) {
      if (t.panel[si] != panel) {
        _mm256_maskstore_ps(dst + (panel * kc + k) * MR, store, v);
        v = _mm256_setzero_ps();
        panel = t.panel[si];
      }
      const uint32_t bits = col[si * g.kW] & row[si * g.kH];
      if (!bits) continue;
      const float* base = offsetFloats(xc, t.base[si] + off);
      const __m256i m = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(int(bits)), laneBits), laneBits);
      if (g.sW == 1) {
        v = _mm256_blendv_ps(v, _mm256_maskload_ps(base, m), _mm256_castsi256_ps(m));
      } else if (g.sW == 2) {  // 16 floats from base, the lanes' inputs at the even ones
        const __m256i mLo = _mm256_and_si256(even, _mm256_permutevar8x32_epi32(m, dupLo));
        const __m256i mHi = _mm256_and_si256(even, _mm256_permutevar8x32_epi32(m, dupHi));
        const __m256 lo = _mm256_maskload_ps(base, mLo), hi = _mm256_maskload_ps(offsetFloats(base, 8), mHi);
        // [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6], then the 64-bit pairs in order 0, 2, 1, 3
        const __m256 e = _mm256_castpd_ps(
            _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xD8));
        v = _mm256_blendv_ps(v, e, _mm256_castsi256_ps(m));
      } else {
        v = _mm256_mask_i32gather_ps(v, base, idx, _mm256_castsi256_ps(m), 4);
      }
    }
    _mm256_maskstore_ps(dst + (panel * kc + k) * MR, store, v);
  }
}

void packPixels(int mr, const float* x, const Conv2dGeom& g, const SegTables& t, int64_t k0, int64_t kc, float* dst) {
  switch (mr) {
    case 14: return packPixelsAvx512<14>(x, g, t, k0, kc, dst);
    case 8: return packPixelsAvx512<8>(x, g, t, k0, kc, dst);
    default: return packPixelsAvx2<6>(x, g, t, k0, kc, dst);
  }
}

// ---------------------------------------------------------------------------------------
// Micro-kernels: the GEMM engine's register tiles (gemm.cpp: C[R x ncols] (+)= A panel *
// B panel, each element summing its k in order) plus an L2 prefetch of the NEXT filter
// panel spread over the k loop. The filter is read once per image (9.4 MB for ResNet's
// 512-channel 3x3), so in a model it comes from memory: with the plain kernels the first
// pixel panel of each channel panel stalled on it (resnet18 layer4 3x3, one thread, eight
// layer copies in turn: 2.30-2.40 ms against 1.46-1.54 ms with the filter warm; prefetching
// each next panel in one burst before its first call: 2.15-2.21 cold but 1.76 warm).
// pfK k steps of the call prefetch pfPerK lines each, from pf on. The AVX2 kernel runs four k
// steps a trip (as the GEMM tile, gemm.cpp: one a trip spent ~4 scalar uops on 20 vector
// ones): vit_small's 16x16 stride-16 patch Conv on the AVX2 kernels 0.59-0.64 -> 0.57-0.59 ms.

template <int MR, int R>
__attribute__((target("avx512f"))) void rowsUkAvx512(int64_t kc, const float* __restrict a, const float* __restrict b,
                                                     float* c, int64_t ldc, int ncols, bool acc, const char* pf,
                                                     int64_t pfK, int pfPerK) {
  __m512 c0[R], c1[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  int64_t k = 0;
  if (pfPerK == 2) {
    for (; k < pfK; ++k, pf += 128) {
      _mm_prefetch(pf, _MM_HINT_T1);
      _mm_prefetch(pf + 64, _MM_HINT_T1);
      stepAvx512_x32<R>(c0, c1, a + k * MR, b + k * 32);
    }
  } else {
    for (; k < pfK; ++k, pf += 64) {
      _mm_prefetch(pf, _MM_HINT_T1);
      stepAvx512_x32<R>(c0, c1, a + k * MR, b + k * 32);
    }
  }
  for (; k < kc; ++k) stepAvx512_x32<R>(c0, c1, a + k * MR, b + k * 32);
  const __mmask16 m0 = ncols >= 16 ? __mmask16(0xffff) : __mmask16((1u << ncols) - 1);
  const __mmask16 m1 = ncols >= 32 ? __mmask16(0xffff) : ncols <= 16 ? __mmask16(0) : __mmask16((1u << (ncols - 16)) - 1);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    if (acc) {
      c0[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cr), c0[r]);
      c1[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cr + 16), c1[r]);
    }
    _mm512_mask_storeu_ps(cr, m0, c0[r]);
    _mm512_mask_storeu_ps(cr + 16, m1, c1[r]);
  }
}

template <int MR, int R>
__attribute__((target("avx2,fma,f16c"))) void rowsUkAvx2(int64_t kc, const float* __restrict a, const float* __restrict b,
                                                    float* c, int64_t ldc, int ncols, bool acc, const char* pf,
                                                    int64_t pfK, int pfPerK) {
  __m256 c0[R], c1[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm256_setzero_ps();
  int64_t k = 0;
  if (pfPerK == 2) {
    for (; k < pfK; ++k, pf += 128) {
      _mm_prefetch(pf, _MM_HINT_T1);
      _mm_prefetch(pf + 64, _MM_HINT_T1);
      stepAvx2_x16<R>(c0, c1, a + k * MR, b + k * 16);
    }
  } else {
    for (; k + 4 <= pfK; k += 4, pf += 256) {
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) {
        _mm_prefetch(pf + 64 * u, _MM_HINT_T1);
        stepAvx2_x16<R>(c0, c1, a + (k + u) * MR, b + (k + u) * 16);
      }
    }
    for (; k < pfK; ++k, pf += 64) {
      _mm_prefetch(pf, _MM_HINT_T1);
      stepAvx2_x16<R>(c0, c1, a + k * MR, b + k * 16);
    }
  }
  for (; k + 4 <= kc; k += 4) {
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) stepAvx2_x16<R>(c0, c1, a + (k + u) * MR, b + (k + u) * 16);
  }
  for (; k < kc; ++k) stepAvx2_x16<R>(c0, c1, a + k * MR, b + k * 16);
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(ncols), lanes);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(ncols - 8), lanes);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    if (ncols == 16) {
      if (acc) {
        c0[r] = _mm256_add_ps(_mm256_loadu_ps(cr), c0[r]);
        c1[r] = _mm256_add_ps(_mm256_loadu_ps(cr + 8), c1[r]);
      }
      _mm256_storeu_ps(cr, c0[r]);
      _mm256_storeu_ps(cr + 8, c1[r]);
    } else {
      if (acc) {
        c0[r] = _mm256_add_ps(_mm256_maskload_ps(cr, m0), c0[r]);
        c1[r] = _mm256_add_ps(_mm256_maskload_ps(cr + 8, m1), c1[r]);
      }
      _mm256_maskstore_ps(cr, m0, c0[r]);
      _mm256_maskstore_ps(cr + 8, m1, c1[r]);
    }
  }
}

using RowsKernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int ncols, bool acc,
                            const char* pf, int64_t pfK, int pfPerK);

template <int... Rs>
constexpr std::array<RowsKernel, sizeof...(Rs)> avx512Kernels(std::integer_sequence<int, Rs...>) {
  return {&rowsUkAvx512<sizeof...(Rs), Rs + 1>...};
}
template <int... Rs>
constexpr std::array<RowsKernel, sizeof...(Rs)> avx2Kernels(std::integer_sequence<int, Rs...>) {
  return {&rowsUkAvx2<sizeof...(Rs), Rs + 1>...};
}

// kernels[R-1] computes R rows of the isa's tile.
const RowsKernel* rowsKernels(GemmIsa isa) {
  static const auto k512 = avx512Kernels(std::make_integer_sequence<int, 14>{});
  static const auto k2 = avx2Kernels(std::make_integer_sequence<int, 6>{});
  return isa == GemmIsa::kAvx512_14x32 ? k512.data() : k2.data();
}

// ---------------------------------------------------------------------------------------
// The transposing store: C block [rows pixels x cols channels] (row stride ldc) into
// y[m * P + i] (channel m's pixels contiguous), 8x8 blocks through registers.

__attribute__((target("avx2"), always_inline)) inline void transpose8(__m256 (&v)[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    v[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

// Channels [m, m + W) of the block, W = 8 or 16, all pixels; bias[m..] added (b may be null).
template <int W>
__attribute__((target("avx2"))) inline void storeChannels(const float* c, int64_t ldc, int64_t rows, int64_t m,
                                                          const float* b, float* y, int64_t P) {
  constexpr int H = W / 8;
  __m256 bv[H][8];
  for (int h = 0; h < H; ++h)
    for (int r = 0; r < 8; ++r) bv[h][r] = _mm256_set1_ps(b ? b[m + h * 8 + r] : 0.0f);
  int64_t i = 0;
  for (; i + 8 <= rows; i += 8) {
#pragma GCC unroll 2
    for (int h = 0; h < H; ++h) {
      __m256 v[8];
      for (int r = 0; r < 8; ++r) v[r] = _mm256_loadu_ps(c + (i + r) * ldc + m + h * 8);
      transpose8(v);
      for (int r = 0; r < 8; ++r) {
        if (b) v[r] = _mm256_add_ps(v[r], bv[h][r]);
        _mm256_storeu_ps(y + (m + h * 8 + r) * P + i, v[r]);
      }
    }
  }
  for (; i < rows; ++i)
    for (int r = 0; r < W; ++r) y[(m + r) * P + i] = b ? c[i * ldc + m + r] + b[m + r] : c[i * ldc + m + r];
}

// The C block [rows pixels x cols channels] (row stride ldc) into y[m * P + i] (channel m's
// pixels contiguous), plus bias[m] where b is given, through 8x8 register transposes, 16
// channels at a time (whole 64-byte lines of C); `done(m, n)` runs on channels [m, m + n)
// as soon as they are stored, while they are in L1.
template <typename Done>
__attribute__((target("avx2"))) void storeTransposed(const float* c, int64_t ldc, int64_t rows, int64_t cols,
                                                     const float* b, float* y, int64_t P, const Done& done) {
  int64_t m = 0;
  for (; m + 16 <= cols; m += 16) {
    storeChannels<16>(c, ldc, rows, m, b, y, P);
    done(m, 16);
  }
  if (m + 8 <= cols) {
    storeChannels<8>(c, ldc, rows, m, b, y, P);
    done(m, 8);
    m += 8;
  }
  if (m < cols) {
    for (int64_t mm = m; mm < cols; ++mm)
      for (int64_t i = 0; i < rows; ++i) y[mm * P + i] = b ? c[i * ldc + mm] + b[mm] : c[i * ldc + mm];
    done(m, cols - m);
  }
}

// ---------------------------------------------------------------------------------------
// Blocking and the workspace

// Cache blocks. Per work item (image, group, pixel block, channel block) the A block (up to
// mcPix pixels x kc, packed once per K block) stays in L2 while the filter's kc x nr
// micro-panels stream through L1 (each reused over the block's pixel panels), and the C
// block (mcPix x ncChan) collects all of K before the transposing store. Measured on the
// AVX-512 dev box, one thread (NativeConvRowsBench.DISABLED_Timing, best of 30): mcPix 112,
// 224 and 448 were within noise on resnet18's 3x3 layers and 1x1 256->1024 at 14x14;
// channel blocks as wide as the C block allows win, since every channel block packs the
// A block again: resnet18 layer4 3x3 1.38-1.43 ms with all 512 channels in one block
// against 1.50-1.58 (256) and 1.77-1.89 (128); 1x1 512->2048 at 7x7 0.61-0.65 (1024)
// against 0.67-0.68 (512). So: all of a group's channels while the C block stays within
// 512 KiB of L2. The reverse order (a kc x nc filter block resident in L2, pixel blocks
// streaming past it) differs from this one only where P > mcPix (one pixel block covers
// the 14x14 and 7x7 layers this family is for); there each pixel block streams the filter
// again, and halving that count (mcPix 448 against 224 on resnet18's 28x28 3x3 layer, a
// 0.6 MB filter) measured within noise, so the filter side is not the bottleneck there.
struct Blocking {
  int64_t mcPix, ncChan;
};

constexpr int64_t kMaxCBlockFloats = 128 * 1024;

Blocking blockingOf(const GemmConfig& c, int64_t P, int64_t Mg) {
  Blocking b;
  b.mcPix = std::min(roundUp(c.mc, c.mr), roundUp(P, c.mr));
  const int64_t fit = std::max<int64_t>(4 * c.nr, kMaxCBlockFloats / b.mcPix / c.nr * c.nr);
  b.ncChan = std::min(fit, roundUp(Mg, c.nr));
  return b;
}

int64_t slotFloats(const GemmConfig& c, const Blocking& b, const Conv2dGeom& g) {
  const int64_t K = g.Cg * g.kH * g.kW;
  const int64_t kc = std::max<int64_t>(1, kBlockOf(c, K));
  return roundUp(b.mcPix * kc, 16) + roundUp(b.mcPix * b.ncChan, 16) + roundUp(segTableFloats(b.mcPix, c.mr, g.kH, g.kW), 16);
}

// ---------------------------------------------------------------------------------------
// prepare / run

void prepareRows(GemmIsa isa, bool fused, const PrepareInfo& info, Prepared* out) {
  RowsParams p;
  p.isa = isa;
  p.tasks = preparedSlots(info);
  p.fixedTasks = info.tasks;
  if (fused) {
    p.fused = 1;
    p.epi = EpilogueParams::of(readFusedEpilogue(*info.node));
  }
  ANVIL_CHECK(rowsConvAttrs(*info.node, info.maxTypes[1].shape, &p.conv), ErrorCode::kInvalidModel,
              info.node->label(), ": not a 2-D Conv this kernel handles");
  const GemmConfig& c = gemmConfig(isa);
  ANVIL_CHECK(info.maxTypes[0].shape.isStatic() && info.maxTypes[1].shape.isStatic(), ErrorCode::kInternal,
              info.node->label(), ": X and W need static extents at the profile's max shapes");
  const std::vector<int64_t> xd = info.maxTypes[0].shape.extents(), wd = info.maxTypes[1].shape.extents();
  Conv2dGeom g;
  ANVIL_CHECK(conv2dGeometry(p.conv, xd.data(), wd[0], &g) && wd[1] == g.Cg, ErrorCode::kInvalidModel,
              info.node->label(), ": X ", info.maxTypes[0].str(), " and W ", info.maxTypes[1].str(),
              " do not fit the Conv attributes");
  const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr;
  ANVIL_CHECK(w != nullptr, ErrorCode::kInternal, info.node->label(), ": the filter must be an initializer");
  const int64_t K = g.Cg * g.kH * g.kW;
  p.wM = g.Mg;
  p.wK = K;
  const Blocking b = blockingOf(c, g.OH * g.OW, g.Mg);
  p.mcPix = b.mcPix;
  p.ncChan = b.ncChan;
  // Per group W^T [K x Mg] (element (k, m) = W[m][k]) as B panels of nr channels.
  const int64_t per = packedBFloats(c, K, g.Mg);
  std::string blob(size_t(g.G * per) * sizeof(float), '\0');
  auto* dst = reinterpret_cast<float*>(blob.data());
  for (int64_t grp = 0; grp < g.G; ++grp)
    packBPanels(c, K, g.Mg, {w->data<float>() + grp * g.Mg * K, 1, K}, 0, ceilDiv(g.Mg, c.nr), dst + grp * per);
  out->blobs.push_back(std::move(blob));
  out->packedInputs.push_back(1);
  out->workspaceBytes = uint64_t(p.tasks * slotFloats(c, b, g)) * sizeof(float);
  out->setParams(p);
}

void runRows(const StepArgs& a) {
  const RowsParams& p = a.paramsAs<RowsParams>();
  const GemmConfig& c = gemmConfig(p.isa);
  const TensorView& X = a.in(0);
  TensorView& Y = a.out(0);
  if (X.rank != 4) a.fail("this kernel handles 2-D Conv (rank-4 X) only");
  Conv2dGeom g;
  if (!conv2dGeometry(p.conv, X.dims, p.wM * p.conv.group, &g)) a.fail("X does not fit the Conv attributes");
  const int64_t K = g.Cg * g.kH * g.kW, P = g.OH * g.OW;
  if (K != p.wK) a.fail("X's channels differ from the prepared filter's");
  if (Y.rank != 4 || Y.dims[0] != g.N || Y.dims[1] != g.M || Y.dims[2] != g.OH || Y.dims[3] != g.OW)
    a.fail("the output extents differ from the Conv's");
  if (Y.numel() == 0) return;
  const float* bias = nullptr;
  if (a.hasInput(2)) {
    if (a.in(2).numel() != g.M) a.fail("B must have one value per output channel");
    bias = a.in(2).as<float>();
  }
  const float* zp = nullptr;
  if (p.fused && p.epi.residual) {
    if (!a.hasInput(int(ir::linear::kResidualInput))) a.fail("has_residual is 1 but Z (input 3) is absent");
    const TensorView& z = a.in(int(ir::linear::kResidualInput));
    if (z.numel() != Y.numel()) a.fail("Z must have the output's shape");
    zp = z.as<float>();
  }
  const Epilogue epi = p.epi.get();
  const EpilogueRow row = epilogueRow(epi);
  const bool act = p.fused && (zp || epi.act != Activation::kNone);

  const Blocking blk{p.mcPix, p.ncChan};
  const int64_t slot = slotFloats(c, blk, g);
  const int T = stepTasks(p.tasks, p.fixedTasks, a.executor, 2.0 * double(Y.numel()) * double(K));
  if (uint64_t(T * slot) * sizeof(float) > a.workspaceBytes)
    a.fail("the shapes need a larger workspace than prepared (outside the profile?)");
  float* ws = static_cast<float*>(a.workspace);

  // The 1x1 stride-1 unpadded Conv reads each channel's plane as one row of P pixels.
  Conv2dGeom gp = g;
  if (g.kH == 1 && g.kW == 1 && g.sH == 1 && g.sW == 1 && g.pt == 0 && g.pl == 0 && g.pb == 0 && g.pr == 0) {
    gp.H = 1, gp.W = g.H * g.W, gp.OH = 1, gp.OW = P;
  }

  // Work items: (image, group, pixel block, channel block). Pixel blocks split the mr-pixel
  // tiles evenly, channel blocks the nr-channel panels; with several tasks the blocks are
  // split further until the tasks get about the same work (convGrid, task_split.h).
  const int mr = c.mr, nr = c.nr;
  const int64_t tilesP = ceilDiv(P, mr), panelsM = ceilDiv(g.Mg, nr);
  const int64_t units = g.N * g.G;
  const ConvGrid grid = convGrid(T, units, P, mr, panelsM, ceilDiv(P, blk.mcPix), ceilDiv(g.Mg, blk.ncChan), false);
  const int64_t pBlocks = grid.pBlocks, cBlocks = grid.cBlocks;
  const int64_t items = units * pBlocks * cBlocks, n = std::min<int64_t>(T, items);
  const int64_t perGroup = packedBFloats(c, K, g.Mg), nPad = roundUp(g.Mg, nr), kb = kBlockOf(c, K);
  const float* wp = a.blobs[0].as<float>();
  const float* xp = X.as<float>();
  float* yp = Y.as<float>();
  const int64_t kcMax = std::max<int64_t>(1, kb);
  const RowsKernel* uk = rowsKernels(p.isa);
  a.executor->parallelFor(n, [&](int64_t t) {
    float* aBuf = ws + t * slot;
    float* cBuf = aBuf + roundUp(blk.mcPix * kcMax, 16);
    float* segScratch = cBuf + roundUp(blk.mcPix * blk.ncChan, 16);
    for (int64_t it = rangeBegin(items, t, n); it < rangeBegin(items, t + 1, n); ++it) {
      const int64_t cb = it % cBlocks, pb = (it / cBlocks) % pBlocks, u = it / (cBlocks * pBlocks);
      const int64_t img = u / g.G, grp = u % g.G;
      const int64_t p0 = rangeBegin(tilesP, pb, pBlocks) * mr, p1 = std::min(P, rangeBegin(tilesP, pb + 1, pBlocks) * mr);
      const int64_t q0 = rangeBegin(panelsM, cb, cBlocks), q1 = rangeBegin(panelsM, cb + 1, cBlocks);
      if (p0 >= p1 || q0 >= q1) continue;
      const int64_t pix = p1 - p0, m0 = q0 * nr, ldc = (q1 - q0) * nr;
      const float* xg = xp + (img * g.C + grp * g.Cg) * g.H * g.W;
      const float* wg = wp + grp * perGroup;
      const SegTables segs = segmentTables(gp, p0, pix, mr, segScratch);
      // Channel m of the block: y[(img, grp * Mg + m0 + m)][p0 .. p1).
      const int64_t ch0 = img * g.M + grp * g.Mg + m0;
      float* yb = yp + ch0 * P + p0;
      const float* bb = bias ? bias + grp * g.Mg + m0 : nullptr;
      for (int64_t pc = 0; pc < K; pc += kb) {
        const int64_t kc = std::min(kb, K - pc);
        packPixels(mr, xg, gp, segs, pc, kc, aBuf);
        const float* bBlock = wg + pc * nPad;
        // The filter panel after q (the next K block's first one after the last): its
        // lines prefetched into L2 over the k steps of this panel's calls.
        const int64_t kbNext = std::min(kb, K - pc - kb);
        const int64_t pixPanels = ceilDiv(pix, mr);
        for (int64_t q = q0; q < q1; ++q) {
          const int ncols = int(std::min<int64_t>(nr, g.Mg - q * nr));
          const float* bq = bBlock + q * kc * nr;
          const float* next = q + 1 < q1 ? bq + kc * nr : kbNext > 0 ? wg + (pc + kb) * nPad + q0 * kbNext * nr : nullptr;
          const int64_t nextLines = next ? (q + 1 < q1 ? kc : kbNext) * nr * 4 / 64 : 0;
          const int pfPerK = nextLines > pixPanels * kc ? 2 : 1;
          const char* pf = reinterpret_cast<const char*>(next);
          int64_t pfLeft = nextLines;
          float* cq = cBuf + (q - q0) * nr;
          // Last K block: the Y lines this panel's transposed store will write, fetched
          // while its kernels run; a burst of cold stores after them stalled (1x1 64->256
          // at 56x56, eight layer copies in turn: 2.27 ms without, 1.16-1.44 with).
          const bool last = pc + kb >= K;
          const int64_t yLinesPerRow = pix / 16 + 1, yLines = last ? ncols * yLinesPerRow : 0;
          const int64_t yPerCall = ceilDiv(yLines, pixPanels);
          int64_t yNext = 0;
          for (int64_t ip = 0; ip < pix; ip += mr) {
            const int rows = int(std::min<int64_t>(mr, pix - ip));
            for (const int64_t yEnd = std::min(yLines, yNext + yPerCall); yNext < yEnd; ++yNext) {
              const int64_t r = (q - q0) * nr + yNext / yLinesPerRow, j = std::min(pix - 1, (yNext % yLinesPerRow) * 16);
              _mm_prefetch(reinterpret_cast<const char*>(yb + r * P + j), _MM_HINT_T0);
            }
            const int64_t pfK = std::min(kc, ceilDiv(pfLeft, pfPerK));
            uk[rows - 1](kc, aBuf + ip * kc, bq, cq + ip * ldc, ldc, ncols, pc > 0, pf, pfK, pfPerK);
            pf += pfK * pfPerK * 64;
            pfLeft = std::max<int64_t>(0, pfLeft - pfK * pfPerK);
          }
          // After the last K block each channel panel goes out at once: its stores (cold
          // lines of Y) drain under the next panel's FMAs. Transposing the whole block at
          // the end stalled on them: 1x1 64->256 at 56x56 spent twice its GEMM time there.
          if (last) {
            const int64_t mq = (q - q0) * nr;
            storeTransposed(cq, ldc, pix, ncols, bb ? bb + mq : nullptr, yb + mq * P, P, [&](int64_t m, int64_t n) {
              if (!act) return;
              for (int64_t r = mq + m; r < mq + m + n; ++r)
                row(epi, yb + r * P, zp ? zp + (ch0 + r) * P + p0 : nullptr, nullptr, 0.0f, pix);
            });
          }
        }
      }
    }
  });
}

// The splits the builder times (task_split.h): Conv attributes as this family reads them.
std::vector<int> rowsTaskSplits(const PrepareInfo& info) {
  ConvAttrs a;
  if (info.maxTypes.size() < 2 || !rowsConvAttrs(*info.node, info.maxTypes[1].shape, &a)) return {};
  // Items: (image, group, pixel tile, channel panel) at the smallest tiles (6x16).
  return convSplitsToTime(a, info, [](const Conv2dGeom& g) { return g.N * g.G * ceilDiv(g.OH * g.OW, 6) * ceilDiv(g.Mg, 16); });
}

Kernel makeKernel(std::string name, bool fused, GemmIsa isa, std::vector<std::string> req) {
  Kernel k;
  k.name = std::move(name);
  k.version = fused ? 2 : 1;  // 2: SiLU, Sigmoid and Tanh epilogues with vmath.h's new e^-x
  k.op = fused ? "FusedConv" : "Conv";
  k.domain = fused ? "anvil" : "";
  k.precision = DataType::kF32;
  k.requirements = std::move(req);
  k.supports = fused ? supportsFusedRows : supportsRows;
  k.prepare = [isa, fused](const PrepareInfo& i, Prepared* o) { prepareRows(isa, fused, i, o); };
  k.run = runRows;
  k.taskSplits = rowsTaskSplits;
  return k;
}

#include "cpu/tactics/native_conv_rows_nchwc.inc"
#include "cpu/tactics/native_conv_dw_fused.inc"

}  // namespace

}  // namespace anvil::cpu::tactics

namespace anvil::runtime {

// Conv with the pixels as the GEMM rows: the AVX-512 14x32 and AVX2 6x16 micro-kernels
// (the transposing store is AVX2 in both), and their blocked variants for NCHW16c (14x32)
// and NCHW8c (6x16) activations; for NCHW16c outputs ending in a block of 1-8 channels also
// the half-tail variants (that block in 256-bit halves), timed against the full ones.
void registerNativeConvRowsKernels(Kernels& k) {
  using namespace anvil::cpu::tactics;
  for (bool fused : {false, true}) {
    const std::string epi = fused ? "_epilogue" : "";
    k.add(makeKernel("f32_conv2d_rows_14x32" + epi + "__avx512", fused, GemmIsa::kAvx512_14x32,
                     {"avx512f", "avx2", "fma"}));
    k.add(makeKernel("f32_conv2d_rows_6x16" + epi + "__avx2", fused, GemmIsa::kAvx2_6x16, {"avx2", "fma"}));
    k.add(makeBlockedKernel("f32_conv2d_rows_nchw16c_14x32" + epi + "__avx512", fused, GemmIsa::kAvx512_14x32,
                            {"avx512f", "avx2", "fma"}));
    k.add(makeBlockedKernel("f32_conv2d_rows_nchw16c_14x32_halftail" + epi + "__avx512", fused,
                            GemmIsa::kAvx512_14x32, {"avx512f", "avx2", "fma"}, true));
    k.add(makeBlockedKernel("f32_conv2d_rows_nchw8c_6x16" + epi + "__avx2", fused, GemmIsa::kAvx2_6x16,
                            {"avx2", "fma"}));
    for (int m : {4, 2}) {
      const std::string f = "_f" + std::to_string(m) + "x3";
      k.add(makeWinoKernel("f32_conv2d_winograd_nchw16c" + f + epi + "__avx512", m, fused, GemmIsa::kAvx512_14x32,
                           {"avx512f", "avx2", "fma"}));
      k.add(makeWinoKernel("f32_conv2d_winograd_nchw8c" + f + epi + "__avx2", m, fused, GemmIsa::kAvx2_6x16,
                           {"avx2", "fma"}));
    }
  }
  k.add(makeConvDwKernel("f32_conv_dw_nchw16c_14x32__avx512", GemmIsa::kAvx512_14x32, {"avx512f", "avx2", "fma"}));
  k.add(makeConvDwKernel("f32_conv_dw_nchw16c_14x32_halftail__avx512", GemmIsa::kAvx512_14x32,
                         {"avx512f", "avx2", "fma"}, true));
  k.add(makeConvDwKernel("f32_conv_dw_nchw8c_6x16__avx2", GemmIsa::kAvx2_6x16, {"avx2", "fma"}));
}

}  // namespace anvil::runtime
