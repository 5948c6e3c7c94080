// Native CPU kernels (runtime/kernel.h) for 3x3 convolutions: Winograd F(4x4, 3x3) for
// Conv / anvil.FusedConv with 3x3 filters, stride 1, dilation 1, one group, any padding
// (f32, NCHW), with portable, AVX2+FMA and AVX-512 (wider GEMM micro-kernel) variants;
// the depthwise 3x3 and 5x5 kernels (native_dwconv.cpp) and the 1x1 GEMV over tiny images
// (native_conv_small.cpp) are registered here too.
//  - prepare(): the constant filter is transformed once, U = G g G^T (6x6 per output/input
//    channel pair, computed in double), and stored per tile position xi (36 of them) as
//    [K/P panels][C][P] so that the micro-kernel reads P output channels per input channel
//    with two aligned loads (P = 16; 32 for AVX-512); K is padded to P with zero rows.
//  - run(): per work item (image, block of 4x4 output tiles, block of output channels):
//    input transform V = B^T d B of the block's 6x6 input tiles (stride 4) into
//    [36][sub-block of 6 tiles][6][C], 36 GEMMs M[xi] = U[xi] V[xi] (6 tiles x P output
//    channels per micro-kernel call, which prefetches the next U panel into L2: in a model
//    the filter comes from memory), output transform A^T m A vectorized over 8 output
//    channels with the bias, then the epilogue (activation, residual) over the finished
//    output rows. Work items are fixed by the shape alone, each output element is written
//    by exactly one item with the same arithmetic: bitwise equal for any thread count.
//    Scratch (V and M of one item) lives in per-task workspace slots; no allocation.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "cpu/tactics/native_conv_small.h"
#include "cpu/tactics/native_dwconv.h"
#include "cpu/tactics/native_linear_conv.h"
#include "cpu/tactics/native_linear_epilogue.h"
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

constexpr int kTiles = 6;      // tiles per micro-kernel call (broadcast side)
constexpr int kPanel = 16;     // output channels per micro-kernel call (vector side; AVX-512: 32)
constexpr int64_t kKBlock = 64;  // output channels per work item (at most)

enum class WinoIsa : int32_t { kPortable, kAvx2, kAvx512 };
int panelOf(WinoIsa isa) { return isa == WinoIsa::kAvx512 ? 2 * kPanel : kPanel; }

// Everything run() needs besides the views; trivially copyable, no padding bytes.
struct WinoParams {
  ConvAttrs conv;
  int64_t K = 0, C = 0;  // output and input channels (the prepared filter's)
  int32_t tasks = 1;     // workspace slots
  int32_t fused = 0;     // anvil.FusedConv: the epilogue below applies
  int32_t act = 0;
  int32_t residual = 0, addFirst = 1;
  WinoIsa isa = WinoIsa::kPortable;
  float p0 = 0.0f, p1 = 0.0f;
  int32_t panel = kPanel;  // output channels per U panel (the micro-kernel's width)
  int32_t reserved = 0;
  Epilogue epilogue() const {
    Epilogue e;
    e.act = Activation(act);
    e.p0 = p0;
    e.p1 = p1;
    e.residual = residual != 0;
    e.addFirst = addFirst != 0;
    return e;
  }
};
static_assert(sizeof(ConvAttrs) == 96 && sizeof(WinoParams) == 96 + 16 + 6 * 4 + 8 + 8,
              "WinoParams must have no padding bytes");

int64_t paddedK(int64_t K, int64_t panel) { return roundUp(K, panel); }
// Tiles per work item: a multiple of 6. Each item streams U (36 K C floats) once, so
// blocks are as large as keeps V of one tile position (C x tiles floats, swept once per
// U panel) in L1/L2; the tiles are spread evenly over the blocks.
int64_t maxTileBlock(int64_t C) { return C >= 256 ? 24 : 36; }
int64_t tileBlock(int64_t C, int64_t tiles) {
  const int64_t blocks = ceilDiv(tiles, maxTileBlock(C));
  return roundUp(ceilDiv(tiles, blocks), kTiles);
}
int64_t kBlock(int64_t K, int64_t panel) { return std::min(kKBlock, paddedK(K, panel)); }

int64_t paddedC(int64_t C) { return roundUp(C, 8); }
int64_t vFloats(int64_t C) { return roundUp(36 * paddedC(C) * maxTileBlock(C), 16); }
// Floats of one task's slot: V [36][TB/6][6][Cp] and M [36][TB][KB].
int64_t slotFloats(int64_t C) { return vFloats(C) + roundUp(36 * maxTileBlock(C) * kKBlock, 16); }

// ---------------------------------------------------------------------------------------
// The transforms (F(4x4, 3x3), interpolation points 0, 1, -1, 2, -2, infinity)

// B^T d over 6 values of stride s (input transform, one dimension).
[[gnu::always_inline]] inline void inputTransform1d(const float* d, int64_t s, float* r, int64_t rs) {
  const float d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
  const float a = d4 - 4.0f * d2, b = d3 - 4.0f * d1;  // shared by rows 1, 2
  const float c = d4 - d2, e = 2.0f * (d3 - d1);       // shared by rows 3, 4
  r[0] = 4.0f * d0 - 5.0f * d2 + d4;
  r[rs] = a + b;
  r[2 * rs] = a - b;
  r[3 * rs] = c + e;
  r[4 * rs] = c - e;
  r[5 * rs] = 4.0f * d1 - 5.0f * d3 + d5;
}

// V = B^T d B of one 6x6 patch d (row stride ld) into v[36] (v[i * 6 + j]).
[[gnu::always_inline]] inline void inputTile(const float* d, int64_t ld, float* v) {
  float t[36];
  for (int j = 0; j < 6; ++j) inputTransform1d(d + j, ld, t + j, 6);
  for (int i = 0; i < 6; ++i) inputTransform1d(t + i * 6, 1, v + i * 6, 1);
}

// The input transform of tiles [t0, t1) of image img into V [36][subs][6][Cp] (Cp: C
// rounded up to 8); tile slots past t1 up to the sub-blocks' end are zeroed (their outputs
// are discarded, but they must stay finite and normal).
struct InputBlock {
  const float* x;  // the image's first channel
  int64_t C, Cp, H, W, pt, pl, tW;
  int64_t t0, t1, subs;
  float* V;
};

// Where value xi of tile slot t, channel c goes.
inline int64_t vIndex(const InputBlock& b, int xi, int64_t t, int64_t c) {
  return ((xi * b.subs + t / kTiles) * kTiles + t % kTiles) * b.Cp + c;
}

void inputBlockPortable(const InputBlock& b) {
  const int64_t n = b.t1 - b.t0, slots = b.subs * kTiles;
  for (int64_t t = 0; t < slots; ++t) {
    if (t >= n) {
      for (int xi = 0; xi < 36; ++xi) std::fill_n(b.V + vIndex(b, xi, t, 0), b.Cp, 0.0f);
      continue;
    }
    const int64_t tile = b.t0 + t, y0 = tile / b.tW * 4 - b.pt, x0 = tile % b.tW * 4 - b.pl;
    const bool inside = y0 >= 0 && x0 >= 0 && y0 + 6 <= b.H && x0 + 6 <= b.W;
    for (int64_t c = 0; c < b.C; ++c) {
      const float* xc = b.x + c * b.H * b.W;
      float v[36];
      if (inside) {
        inputTile(xc + y0 * b.W + x0, b.W, v);
      } else {  // a border tile: the patch with zeros outside the image
        float d[36];
        for (int64_t i = 0; i < 6; ++i)
          for (int64_t j = 0; j < 6; ++j) {
            const int64_t yy = y0 + i, xx = x0 + j;
            d[i * 6 + j] = yy >= 0 && yy < b.H && xx >= 0 && xx < b.W ? xc[yy * b.W + xx] : 0.0f;
          }
        inputTile(d, 6, v);
      }
      for (int xi = 0; xi < 36; ++xi) b.V[vIndex(b, xi, t, c)] = v[xi];
    }
  }
}

// 8 rows of 8 floats transposed in registers.
__attribute__((target("avx2,fma"))) inline void transpose8(__m256* r) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// B^T d over 6 vectors of stride s (8 channels at once).
__attribute__((target("avx2,fma"))) inline void inputTransform1d8(const __m256* d, int s, __m256* r, int rs) {
  const __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f), two = _mm256_set1_ps(2.0f);
  const __m256 d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
  const __m256 a = _mm256_fnmadd_ps(four, d2, d4), b = _mm256_fnmadd_ps(four, d1, d3);
  const __m256 c = _mm256_sub_ps(d4, d2), e = _mm256_mul_ps(two, _mm256_sub_ps(d3, d1));
  r[0] = _mm256_add_ps(_mm256_fnmadd_ps(five, d2, _mm256_mul_ps(four, d0)), d4);
  r[rs] = _mm256_add_ps(a, b);
  r[2 * rs] = _mm256_sub_ps(a, b);
  r[3 * rs] = _mm256_add_ps(c, e);
  r[4 * rs] = _mm256_sub_ps(c, e);
  r[5 * rs] = _mm256_add_ps(_mm256_fnmadd_ps(five, d3, _mm256_mul_ps(four, d1)), d5);
}

// 8 channels of a tile at once: the 6x6 patches of 8 channels are read row by row (8
// floats per channel), transposed so that a vector holds one pixel of 8 channels, and
// transformed; V then takes one vector store per tile position.
__attribute__((target("avx2,fma"))) void inputBlockAvx2(const InputBlock& b) {
  const int64_t n = b.t1 - b.t0, slots = b.subs * kTiles, plane = b.H * b.W;
  for (int64_t t = 0; t < slots; ++t) {
    if (t >= n) {
      for (int xi = 0; xi < 36; ++xi) std::fill_n(b.V + vIndex(b, xi, t, 0), b.Cp, 0.0f);
      continue;
    }
    const int64_t tile = b.t0 + t, y0 = tile / b.tW * 4 - b.pt, x0 = tile % b.tW * 4 - b.pl;
    // Whole 8-float row loads stay inside the image's rows.
    const bool inside = y0 >= 0 && x0 >= 0 && y0 + 6 <= b.H && x0 + 8 <= b.W;
    for (int64_t c0 = 0; c0 < b.C; c0 += 8) {
      const int lanes = int(std::min<int64_t>(8, b.C - c0));
      __m256 d[36], v[36];
#pragma GCC unroll 6
      for (int i = 0; i < 6; ++i) {
        __m256 r[8];
        const int64_t yy = y0 + i;
#pragma GCC unroll 8
        for (int l = 0; l < 8; ++l) {
          const float* xc = b.x + (c0 + l) * plane;
          if (l >= lanes || yy < 0 || yy >= b.H) {
            r[l] = _mm256_setzero_ps();
          } else if (inside) {
            r[l] = _mm256_loadu_ps(xc + yy * b.W + x0);
          } else {
            alignas(32) float row[8] = {};
            for (int64_t j = 0; j < 6; ++j)
              if (x0 + j >= 0 && x0 + j < b.W) row[j] = xc[yy * b.W + x0 + j];
            r[l] = _mm256_load_ps(row);
          }
        }
        transpose8(r);
#pragma GCC unroll 6
        for (int j = 0; j < 6; ++j) d[i * 6 + j] = r[j];
      }
      __m256 tmp[36];
#pragma GCC unroll 6
      for (int j = 0; j < 6; ++j) inputTransform1d8(d + j, 6, tmp + j, 6);
#pragma GCC unroll 6
      for (int i = 0; i < 6; ++i) inputTransform1d8(tmp + i * 6, 1, v + i * 6, 1);
#pragma GCC unroll 36
      for (int xi = 0; xi < 36; ++xi) _mm256_storeu_ps(b.V + vIndex(b, xi, t, c0), v[xi]);
    }
  }
}

// m[t * ldm + k] = sum_c u[c * 16 + k] * v[t * ldv + c] for 6 tiles t and 16 channels k.
// pf: C cache lines (64 bytes apart) to prefetch into L2 while computing, one per c: the
// next U panel, which otherwise streams from memory at the start of its first call.
void gemmPortable(const float* u, const float* v, int64_t ldv, int64_t C, float* m, int64_t ldm, const float*) {
  float acc[kTiles][kPanel] = {};
  for (int64_t c = 0; c < C; ++c) {
    const float* uc = u + c * kPanel;
    for (int t = 0; t < kTiles; ++t) {
      const float vt = v[t * ldv + c];
      for (int k = 0; k < kPanel; ++k) acc[t][k] += uc[k] * vt;
    }
  }
  for (int t = 0; t < kTiles; ++t) std::memcpy(m + t * ldm, acc[t], sizeof acc[t]);
}

__attribute__((target("avx2,fma"))) void gemmAvx2(const float* u, const float* v, int64_t ldv, int64_t C, float* m,
                                                    int64_t ldm, const float* pf) {
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
  __m256 a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
  const float *v0 = v, *v1 = v + ldv, *v2 = v + 2 * ldv, *v3 = v + 3 * ldv, *v4 = v + 4 * ldv, *v5 = v + 5 * ldv;
  for (int64_t c = 0; c < C; ++c, u += kPanel, pf += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T1);
    const __m256 u0 = _mm256_load_ps(u), u1 = _mm256_load_ps(u + 8);
    __m256 b = _mm256_broadcast_ss(v0 + c);
    a00 = _mm256_fmadd_ps(u0, b, a00), a01 = _mm256_fmadd_ps(u1, b, a01);
    b = _mm256_broadcast_ss(v1 + c);
    a10 = _mm256_fmadd_ps(u0, b, a10), a11 = _mm256_fmadd_ps(u1, b, a11);
    b = _mm256_broadcast_ss(v2 + c);
    a20 = _mm256_fmadd_ps(u0, b, a20), a21 = _mm256_fmadd_ps(u1, b, a21);
    b = _mm256_broadcast_ss(v3 + c);
    a30 = _mm256_fmadd_ps(u0, b, a30), a31 = _mm256_fmadd_ps(u1, b, a31);
    b = _mm256_broadcast_ss(v4 + c);
    a40 = _mm256_fmadd_ps(u0, b, a40), a41 = _mm256_fmadd_ps(u1, b, a41);
    b = _mm256_broadcast_ss(v5 + c);
    a50 = _mm256_fmadd_ps(u0, b, a50), a51 = _mm256_fmadd_ps(u1, b, a51);
  }
  _mm256_storeu_ps(m, a00), _mm256_storeu_ps(m + 8, a01), m += ldm;
  _mm256_storeu_ps(m, a10), _mm256_storeu_ps(m + 8, a11), m += ldm;
  _mm256_storeu_ps(m, a20), _mm256_storeu_ps(m + 8, a21), m += ldm;
  _mm256_storeu_ps(m, a30), _mm256_storeu_ps(m + 8, a31), m += ldm;
  _mm256_storeu_ps(m, a40), _mm256_storeu_ps(m + 8, a41), m += ldm;
  _mm256_storeu_ps(m, a50), _mm256_storeu_ps(m + 8, a51);
}

// The AVX-512 micro-kernel: 6 tiles x 32 output channels (U panels 32 wide).
__attribute__((target("avx512f"))) void gemmAvx512(const float* u, const float* v, int64_t ldv, int64_t C, float* m,
                                                  int64_t ldm, const float* pf) {
  __m512 acc[kTiles][2];
#pragma GCC unroll 6
  for (int t = 0; t < kTiles; ++t) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
  for (int64_t c = 0; c < C; ++c, u += 2 * kPanel, pf += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T1);
    const __m512 u0 = _mm512_load_ps(u), u1 = _mm512_load_ps(u + 16);
#pragma GCC unroll 6
    for (int t = 0; t < kTiles; ++t) {
      const __m512 b = _mm512_set1_ps(v[t * ldv + c]);
      acc[t][0] = _mm512_fmadd_ps(u0, b, acc[t][0]);
      acc[t][1] = _mm512_fmadd_ps(u1, b, acc[t][1]);
    }
  }
#pragma GCC unroll 6
  for (int t = 0; t < kTiles; ++t) {
    _mm512_storeu_ps(m + t * ldm, acc[t][0]);
    _mm512_storeu_ps(m + t * ldm + 16, acc[t][1]);
  }
}

// 8 output channels at once (GCC vector extension: ymm where compiled for AVX2, SSE pairs
// otherwise; the same operations in the same order either way).
typedef float f8 __attribute__((vector_size(32)));

[[gnu::always_inline]] inline void load8(f8* v, const float* p) { std::memcpy(v, p, sizeof *v); }

// A^T m over 6 vectors of stride s (output transform, one dimension).
[[gnu::always_inline]] inline void outputTransform1d(const f8* m, int s, f8* o, int os) {
  const f8 a = m[s] + m[2 * s], b = m[s] - m[2 * s];
  const f8 c = m[3 * s] + m[4 * s], d = m[3 * s] - m[4 * s];
  o[0] = m[0] + a + c;
  o[os] = b + 2.0f * d;
  o[2 * os] = a + 4.0f * c;
  o[3 * os] = b + 8.0f * d + m[5 * s];
}

// The output transform of tiles [t0, t1) for output channels [k0, k1) of image img, the
// bias added: y = A^T M A written into the tiles' in-bounds part.
struct OutputBlock {
  const float* M;  // [36][TB][KB]
  int64_t TB, KB;
  const float* bias;  // null: none
  float* y;           // the image's first output channel
  int64_t OH, OW, tW;
  int64_t t0, t1, k0, k1;
};

[[gnu::always_inline]] inline void outputBlockBody(const OutputBlock& b) {
  const int64_t plane = b.OH * b.OW;
  for (int64_t kc = b.k0; kc < b.k1; kc += 8) {
    const int lanes = int(std::min<int64_t>(8, b.k1 - kc));
    float bb[8] = {};
    if (b.bias) std::memcpy(bb, b.bias + kc, size_t(lanes) * sizeof(float));
    f8 bv;
    load8(&bv, bb);
    for (int64_t t = 0; t < b.t1 - b.t0; ++t) {
      f8 m[36], s[24], o[16];
      const float* mt = b.M + t * b.KB + (kc - b.k0);
#pragma GCC unroll 36
      for (int xi = 0; xi < 36; ++xi) load8(&m[xi], mt + xi * b.TB * b.KB);
#pragma GCC unroll 6
      for (int j = 0; j < 6; ++j) outputTransform1d(m + j, 6, s + j, 6);
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) outputTransform1d(s + r * 6, 1, o + r * 4, 1);
      float out[16][8];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) {
        const f8 v = o[i] + bv;
        std::memcpy(out[i], &v, sizeof v);
      }
      const int64_t tile = b.t0 + t, oy = tile / b.tW * 4, ox = tile % b.tW * 4;
      const int rows = int(std::min<int64_t>(4, b.OH - oy)), cols = int(std::min<int64_t>(4, b.OW - ox));
      for (int l = 0; l < lanes; ++l) {
        float* yk = b.y + (kc + l) * plane + oy * b.OW + ox;
        for (int r = 0; r < rows; ++r)
          for (int c = 0; c < cols; ++c) yk[r * b.OW + c] = out[r * 4 + c][l];
      }
    }
  }
}

void outputBlockPortable(const OutputBlock& b) { outputBlockBody(b); }
__attribute__((target("avx2,fma"))) void outputBlockAvx2(const OutputBlock& b) { outputBlockBody(b); }

struct IsaFns {
  void (*input)(const InputBlock&);
  void (*gemm)(const float*, const float*, int64_t, int64_t, float*, int64_t, const float*);
  void (*output)(const OutputBlock&);
};
IsaFns isaFns(WinoIsa isa) {
  if (isa == WinoIsa::kAvx2) return {inputBlockAvx2, gemmAvx2, outputBlockAvx2};
  if (isa == WinoIsa::kAvx512) return {inputBlockAvx2, gemmAvx512, outputBlockAvx2};
  return {inputBlockPortable, gemmPortable, outputBlockPortable};
}

// U = G g G^T of one 3x3 filter g (row-major) into u[36], in double, rounded once.
void filterTile(const float* g, float* u) {
  static const double G[6][3] = {{1.0 / 4, 0, 0},
                                 {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                 {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                 {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                 {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                 {0, 0, 1}};
  double t[6][3];
  for (int i = 0; i < 6; ++i)
    for (int k = 0; k < 3; ++k) t[i][k] = G[i][0] * g[0 * 3 + k] + G[i][1] * g[1 * 3 + k] + G[i][2] * g[2 * 3 + k];
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 6; ++j) u[i * 6 + j] = float(t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2]);
}

// ---------------------------------------------------------------------------------------
// supports / prepare / run

bool isF32(const ir::TensorType& t) { return t.dtype == DataType::kF32; }
bool absent(const std::vector<ir::TensorType>& in, size_t i) {
  return i >= in.size() || in[i].dtype == DataType::kUndefined;
}

// Decodes the Conv attributes; false unless a 2-D 3x3, stride 1, dilation 1, one-group Conv.
bool winogradAttrs(const ir::Node& n, const ir::Shape& w, ConvAttrs* a) {
  if (!w.rankKnown() || w.rank() != 4 || !w.isStatic()) return false;
  if (w[2].value() != 3 || w[3].value() != 3) return false;
  const ir::Attributes& at = n.attrs();
  if (at.getInt("group", 1) != 1) return false;
  const std::vector<int64_t> ks = at.getInts("kernel_shape", {3, 3});
  if (ks.size() != 2 || ks[0] != 3 || ks[1] != 3) return false;
  const std::vector<int64_t> s = at.getInts("strides", {1, 1}), d = at.getInts("dilations", {1, 1});
  if (s != std::vector<int64_t>{1, 1} || d != std::vector<int64_t>{1, 1}) return false;
  a->group = 1;
  a->kH = a->kW = 3;
  return decodeConvPads(at, a);
}

// The filter must be an initializer (transformed at build time), X f32 NCHW with the
// filter's channel count, B (optional) f32 [K].
bool supportsWinograd(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !isF32(in[0]) || !isF32(in[1])) return false;
  const ir::Shape& x = in[0].shape;
  const ir::Shape& w = in[1].shape;
  if (!x.rankKnown() || x.rank() != 4) return false;
  ConvAttrs a;
  if (!winogradAttrs(n, w, &a)) return false;
  if (!x[1].isStatic() || x[1].value() != w[1].value()) return false;
  const ir::Value* wv = n.input(1);
  if (!wv || !wv->initializer()) return false;
  if (!absent(in, 2) && (!isF32(in[2]) || !in[2].shape.rankKnown() || in[2].shape.rank() != 1)) return false;
  // Images of at most 6 tiles (one sub-block: each U value serves 6 tiles) with U larger
  // than L2 are declined: the builder times kernels alone, where U stays in cache, but in a
  // model U streams from memory at 36/9 times the direct filter's bytes. Measured in
  // resnet18 (AVX2, 1 thread) at 512 channels, 7x7: Winograd 3.3-7.3 ms, im2col rows
  // 3.0-3.1 ms, though Winograd timed faster alone.
  if (x.isStatic()) {
    int64_t xd[4];
    for (int i = 0; i < 4; ++i) xd[i] = x[i].value();
    Conv2dGeom g;
    const int64_t K = w[0].value(), C = w[1].value();
    const int64_t uBytes = 36 * roundUp(K, kPanel) * C * int64_t(sizeof(float));
    if (conv2dGeometry(a, xd, K, &g) && ceilDiv(g.OH, 4) * ceilDiv(g.OW, 4) <= kTiles && uBytes > (int64_t(4) << 20))
      return false;
  }
  return true;
}

bool supportsFusedWinograd(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (!supportsWinograd(n, in)) return false;
  return fusedEpilogueSupported(n, in);
}

void prepareWinograd(WinoIsa isa, bool fused, const PrepareInfo& info, Prepared* out) {
  WinoParams p;
  p.isa = isa;
  p.tasks = preparedSlots(info);
  const ir::Node& n = *info.node;
  ANVIL_CHECK(info.maxTypes.size() > 1 && winogradAttrs(n, info.maxTypes[1].shape, &p.conv), ErrorCode::kInvalidModel,
              n.label(), ": not a 3x3 stride-1 Conv the Winograd kernel handles");
  const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr;
  ANVIL_CHECK(w != nullptr, ErrorCode::kInternal, n.label(), ": the Winograd kernel needs a constant filter");
  if (fused) {
    const Epilogue e = readFusedEpilogue(n);
    p.fused = 1;
    p.act = int32_t(e.act);
    p.p0 = e.p0;
    p.p1 = e.p1;
    p.residual = e.residual;
    p.addFirst = e.addFirst;
  }
  const std::vector<int64_t> wd = w->dims();
  p.K = wd[0];
  p.C = wd[1];
  // U per tile position xi: [K/16 panels][C][16], zero rows past K.
  p.panel = panelOf(isa);
  const int64_t P = p.panel, Kp = paddedK(p.K, P), panels = Kp / P;
  std::string blob(size_t(36 * Kp * p.C) * sizeof(float), '\0');
  auto* U = reinterpret_cast<float*>(blob.data());
  const float* g = w->data<float>();
  for (int64_t k = 0; k < p.K; ++k)
    for (int64_t c = 0; c < p.C; ++c) {
      float u[36];
      filterTile(g + (k * p.C + c) * 9, u);
      for (int xi = 0; xi < 36; ++xi) U[((xi * panels + k / P) * p.C + c) * P + k % P] = u[xi];
    }
  out->blobs.push_back(std::move(blob));
  out->packedInputs.push_back(1);
  out->workspaceBytes = uint64_t(p.tasks * slotFloats(p.C)) * sizeof(float);
  out->setParams(p);
}

void runWinograd(const StepArgs& a) {
  const WinoParams& p = a.paramsAs<WinoParams>();
  const TensorView& X = a.in(0);
  TensorView& Y = a.out(0);
  if (X.rank != 4 || X.dims[1] != p.C) a.fail("X must be [N, C, H, W] with the filter's channel count");
  Conv2dGeom g;
  if (!conv2dGeometry(p.conv, X.dims, p.K, &g)) a.fail("X does not fit the Conv attributes");
  if (Y.rank != 4 || Y.dims[0] != g.N || Y.dims[1] != g.M || Y.dims[2] != g.OH || Y.dims[3] != g.OW)
    a.fail("the output extents differ from the Conv's");
  if (Y.numel() == 0) return;
  const float* bias = nullptr;
  if (a.hasInput(2)) {
    if (a.in(2).numel() != p.K) a.fail("B must have one value per output channel");
    bias = a.in(2).as<float>();
  }
  const float* zp = nullptr;
  if (p.fused && p.residual) {
    if (!a.hasInput(int(ir::linear::kResidualInput))) a.fail("has_residual is 1 but Z (input 3) is absent");
    const TensorView& z = a.in(int(ir::linear::kResidualInput));
    if (z.numel() != Y.numel()) a.fail("Z must have the output's shape");
    zp = z.as<float>();
  }
  const Epilogue epi = p.epilogue();
  const bool epilogue = p.fused && (zp || epi.act != Activation::kNone);
  const EpilogueRow row = epilogueRow(epi);
  const IsaFns fns = isaFns(p.isa);

  const int T = std::max(1, std::min(p.tasks, a.executor->threads()));
  const int64_t slot = slotFloats(p.C);
  if (uint64_t(T * slot) * sizeof(float) > a.workspaceBytes) a.fail("the workspace is smaller than prepared");
  float* ws = static_cast<float*>(a.workspace);

  const int64_t C = p.C, Cp = paddedC(C), K = p.K, P = p.panel, panels = paddedK(K, P) / P;
  const int64_t tH = ceilDiv(g.OH, 4), tW = ceilDiv(g.OW, 4), tiles = tH * tW;
  const int64_t TB = tileBlock(C, tiles), nTB = ceilDiv(tiles, TB);
  const int64_t KB = kBlock(K, P), nKB = ceilDiv(paddedK(K, P), KB);
  const int64_t items = g.N * nTB * nKB, n = std::min<int64_t>(T, items);
  const float* U = a.blobs[0].as<float>();
  const float* xp = X.as<float>();
  float* yp = Y.as<float>();
  const int64_t plane = g.OH * g.OW;

  a.executor->parallelFor(n, [&](int64_t task) {
    float* V = ws + task * slot;
    float* M = V + vFloats(C);
    int64_t lastBlock = -1;  // (image, tile block) whose transform V holds
    for (int64_t it = rangeBegin(items, task, n); it < rangeBegin(items, task + 1, n); ++it) {
      const int64_t block = it / nKB, kb = it % nKB, img = block / nTB, tb = block % nTB;
      const int64_t t0 = tb * TB, t1 = std::min(tiles, t0 + TB), subs = ceilDiv(t1 - t0, kTiles);
      if (block != lastBlock) {
        fns.input({xp + img * C * g.H * g.W, C, Cp, g.H, g.W, g.pt, g.pl, tW, t0, t1, subs, V});
        lastBlock = block;
      }
      const int64_t p0 = kb * KB / P, p1 = std::min(panels, (kb + 1) * KB / P);
      // The calls of panel (xi, pn) prefetch the next panel of the item into L2, C lines per
      // call (a panel has P / 16 lines per c); past its end they re-touch the current panel
      // (no branch). With one sub-block (at most 6 tiles) and P = 32 only the first half of
      // the next panel is prefetched. Measured in resnet50 (1 thread, AVX-512): layer2.x conv2 1.59-1.66 ->
      // 1.12-1.14 ms, layer3.x conv2 1.95-2.05 -> 1.48-1.70 ms; the filter comes from memory
      // there and the hardware prefetcher does not run ahead of a new panel.
      const int64_t linesPerPanel = C * P / 16;
      for (int xi = 0; xi < 36; ++xi)
        for (int64_t pn = p0; pn < p1; ++pn) {
          const float* u = U + (xi * panels + pn) * C * P;
          const bool last = xi == 35 && pn == p1 - 1;
          const float* next = pn + 1 < p1 ? u + C * P : U + ((xi + 1) * panels + p0) * C * P;
          for (int64_t s = 0; s < subs; ++s) {
            const float* pf = !last && (s + 1) * C <= linesPerPanel ? next + s * C * 16 : u;
            fns.gemm(u, V + (xi * subs + s) * kTiles * Cp, Cp, C, M + (xi * TB + s * kTiles) * KB + (pn - p0) * P, KB,
                     pf);
          }
        }
      const int64_t k0 = kb * KB, k1 = std::min(K, k0 + KB);
      float* yImg = yp + img * K * plane;
      fns.output({M, TB, KB, bias, yImg, g.OH, g.OW, tW, t0, t1, k0, k1});
      if (!epilogue) continue;
      // The epilogue over the block's output row segments.
      for (int64_t ty = t0 / tW; ty <= (t1 - 1) / tW; ++ty) {
        const int64_t xa = ty == t0 / tW ? t0 % tW : 0, xb = ty == (t1 - 1) / tW ? (t1 - 1) % tW + 1 : tW;
        const int64_t c0 = xa * 4, len = std::min(g.OW, xb * 4) - c0;
        for (int64_t k = k0; k < k1; ++k)
          for (int64_t r = ty * 4; r < std::min(g.OH, ty * 4 + 4); ++r) {
            const int64_t off = (img * K + k) * plane + r * g.OW + c0;
            row(epi, yp + off, zp ? zp + off : nullptr, nullptr, 0.0f, len);
          }
      }
    }
  });
}

Kernel makeKernel(const char* name, bool fused, WinoIsa isa) {
  Kernel k;
  k.name = name;
  k.version = fused ? 3 : 2;  // 3: SiLU, Sigmoid and Tanh epilogues with vmath.h's new e^-x
  k.op = fused ? "FusedConv" : "Conv";
  k.domain = fused ? "anvil" : "";
  k.precision = DataType::kF32;
  if (isa == WinoIsa::kAvx2) k.requirements = {"avx2", "fma"};
  if (isa == WinoIsa::kAvx512) k.requirements = {"avx512f", "avx2", "fma"};  // the transforms are AVX2
  k.supports = fused ? supportsFusedWinograd : supportsWinograd;
  k.prepare = [isa, fused](const PrepareInfo& i, Prepared* o) { prepareWinograd(isa, fused, i, o); };
  k.run = runWinograd;
  return k;
}

}  // namespace

}  // namespace anvil::cpu::tactics

namespace anvil::runtime {

// Small-filter convolutions: Winograd for dense 3x3 stride-1 ones, the row kernels for 3x3
// and 5x5 depthwise ones, the GEMV for 1x1 ones over at most 4 pixels.
void registerNativeWinogradKernels(Kernels& k) {
  using namespace anvil::cpu::tactics;
  k.add(makeKernel("f32_conv2d_winograd_f4x3", false, WinoIsa::kPortable));
  k.add(makeKernel("f32_conv2d_winograd_f4x3_epilogue", true, WinoIsa::kPortable));
  k.add(makeKernel("f32_conv2d_winograd_f4x3__avx2", false, WinoIsa::kAvx2));
  k.add(makeKernel("f32_conv2d_winograd_f4x3_epilogue__avx2", true, WinoIsa::kAvx2));
  k.add(makeKernel("f32_conv2d_winograd_f4x3__avx512", false, WinoIsa::kAvx512));
  k.add(makeKernel("f32_conv2d_winograd_f4x3_epilogue__avx512", true, WinoIsa::kAvx512));
  registerDwConvKernels(k);
  registerConvSmallKernels(k);
}

}  // namespace anvil::runtime
