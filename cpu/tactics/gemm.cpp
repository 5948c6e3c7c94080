// The f32 GEMM engine of cpu/tactics/gemm_kernels.h: micro-kernels (portable 4x8, AVX2
// 6x16, AVX-512 14x32 and 8x32) and the small-M kernels, panel packers, the B-stationary and
// A-stationary drivers (all
// scratch from the caller's workspace, threads from the caller's executor), and the older
// tactics' thread pool.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>

#include "cpu/tactics/epilogue_act.h"
#include "anvil/error.h"
#include "cpu/tactics/gemm_kernels.h"
#include "cpu/tactics/gemm_tile_steps.h"
#include "runtime/executor.h"

namespace anvil::cpu::tactics {

// ---------------------------------------------------------------------------------------
// Packing

namespace {

// 8x8 transpose in registers: v[r] = row r (8 floats) becomes v[c] = column c.
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

// One A panel from row-contiguous rows (src = &A(i, k0), rows lda apart, `rows` <= MR of
// them valid): d[k * MR + r] = alpha * A(i + r, k0 + k), zeros for r >= rows. Eight k at a
// time through 8x8 transposes (the scalar loop's one strided store per element cost about
// 20% of an AVX-512 GEMM on the dev box); the same products as the scalar packer, so the
// same bits.
template <int MR>
__attribute__((target("avx2"))) void packAPanelRowsAvx(const float* src, int64_t lda, int rows, int64_t kc,
                                                       float alpha, float* d) {
  constexpr int G = (MR + 7) / 8;
  const __m256i tailMask =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(MR - (G - 1) * 8), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256 va = _mm256_set1_ps(alpha);
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    const bool last = k + 8 == kc;
    // Group by group (16 ymm registers: one 8x8 block at a time), the last group first:
    // its 8-float stores run MR % 8 - 8 floats into the next k's slot, which the earlier
    // groups' stores then overwrite; only the panel's last k needs the masked store.
#pragma GCC unroll 2
    for (int g = G - 1; g >= 0; --g) {
      __m256 v[8];
      #pragma GCC unroll 8
      for (int r = 0; r < 8; ++r) {
        const int row = g * 8 + r;
        v[r] = row < rows ? _mm256_loadu_ps(src + row * lda + k) : _mm256_setzero_ps();
        if (alpha != 1.0f) v[r] = _mm256_mul_ps(v[r], va);
      }
      transpose8x8(v);
      #pragma GCC unroll 8
      for (int kk = 0; kk < 8; ++kk) {
        float* dk = d + (k + kk) * MR + g * 8;
        if (g + 1 < G || MR % 8 == 0 || kk < 7 || !last)
          _mm256_storeu_ps(dk, v[kk]);
        else
          _mm256_maskstore_ps(dk, tailMask, v[kk]);
      }
    }
  }
  for (; k < kc; ++k)
    #pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) d[k * MR + r] = r < rows ? (alpha == 1.0f ? src[r * lda + k] : alpha * src[r * lda + k]) : 0.0f;
}

// A[i0:i0+mc, k0:k0+kc] * alpha as panels of mr rows: panel p holds mr floats per k.
void packA(StridedMatrix A, int64_t i0, int64_t mc, int64_t k0, int64_t kc, int mr, float alpha, float* dst) {
  // Row-contiguous A with an AVX2 family's tile height: the vector packer (AVX2 is present
  // wherever the AVX2 and AVX-512 families run).
  if (A.cs == 1 && (mr == 6 || mr == 8 || mr == 14)) {
    for (int64_t ip = 0; ip < mc; ip += mr) {
      const int rows = int(std::min<int64_t>(mr, mc - ip));
      const float* src = A.p + (i0 + ip) * A.rs + k0;
      if (mr == 6)
        packAPanelRowsAvx<6>(src, A.rs, rows, kc, alpha, dst + ip * kc);
      else if (mr == 8)
        packAPanelRowsAvx<8>(src, A.rs, rows, kc, alpha, dst + ip * kc);
      else
        packAPanelRowsAvx<14>(src, A.rs, rows, kc, alpha, dst + ip * kc);
    }
    return;
  }
  for (int64_t ip = 0; ip < mc; ip += mr) {
    const int rows = int(std::min<int64_t>(mr, mc - ip));
    float* d = dst + ip * kc;
    for (int r = 0; r < rows; ++r) {
      const float* src = A.p + (i0 + ip + r) * A.rs + k0 * A.cs;
      const int64_t cs = A.cs;
      if (alpha == 1.0f)
        for (int64_t k = 0; k < kc; ++k) d[k * mr + r] = src[k * cs];
      else
        for (int64_t k = 0; k < kc; ++k) d[k * mr + r] = alpha * src[k * cs];
    }
    for (int r = rows; r < mr; ++r)
      for (int64_t k = 0; k < kc; ++k) d[k * mr + r] = 0.0f;
  }
}

void zeroRows(int64_t M, int64_t N, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
}

}  // namespace

namespace {

// kc rows of NR contiguous floats, rows rs apart, into a panel: a fixed-size copy the
// compiler turns into vector moves (a memcpy of run-time size is a library call per row,
// which for the short K of 1x1 Convs was a visible part of the packing).
template <int NR>
void copyPanelRows(const float* src, int64_t rs, int64_t kc, float* d) {
  for (int64_t k = 0; k < kc; ++k) std::memcpy(d + k * NR, src + k * rs, sizeof(float) * NR);
}

}  // namespace

void packBBlock(StridedMatrix B, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst) {
  for (int64_t q = 0; q * nr < nc; ++q) {
    const int64_t jq = j0 + q * nr;
    const int cols = int(std::min<int64_t>(nr, nc - q * nr));
    float* d = dst + q * kc * nr;
    if (B.cs == 1 && cols == nr && (nr == 8 || nr == 16 || nr == 32)) {
      const float* src = B.p + k0 * B.rs + jq;
      if (nr == 32)
        copyPanelRows<32>(src, B.rs, kc, d);
      else if (nr == 16)
        copyPanelRows<16>(src, B.rs, kc, d);
      else
        copyPanelRows<8>(src, B.rs, kc, d);
    } else if (B.cs == 1) {
      for (int64_t k = 0; k < kc; ++k) {
        std::memcpy(d + k * nr, B.p + (k0 + k) * B.rs + jq, size_t(cols) * 4);
        for (int c = cols; c < nr; ++c) d[k * nr + c] = 0.0f;
      }
    } else {
      for (int c = 0; c < cols; ++c) {
        const float* src = B.p + k0 * B.rs + (jq + c) * B.cs;
        for (int64_t k = 0; k < kc; ++k) d[k * nr + c] = src[k * B.rs];
      }
      for (int64_t k = 0; k < kc; ++k)
        for (int c = cols; c < nr; ++c) d[k * nr + c] = 0.0f;
    }
  }
}

void packBPanels(const GemmConfig& c, int64_t K, int64_t N, StridedMatrix B, int64_t q0, int64_t q1, float* dst) {
  const int64_t nPad = roundUp(N, c.nr);
  q1 = std::min(q1, ceilDiv(N, c.nr));
  if (q0 >= q1) return;
  for (int64_t pc = 0, kb = kBlockOf(c, K); pc < K; pc += kb) {
    const int64_t kc = std::min(kb, K - pc);
    packBBlock(B, pc, kc, q0 * c.nr, std::min(N, q1 * c.nr) - q0 * c.nr, c.nr, dst + pc * nPad + q0 * kc * c.nr);
  }
}

void packAPanels(const GemmConfig& c, int64_t M, int64_t K, StridedMatrix A, float alpha, int64_t i0, int64_t i1,
                 float* dst) {
  const int64_t mPad = roundUp(M, c.mr);
  i1 = std::min(i1, ceilDiv(M, c.mr));
  if (i0 >= i1) return;
  for (int64_t pc = 0, kb = kBlockOf(c, K); pc < K; pc += kb) {
    const int64_t kc = std::min(kb, K - pc);
    packA(A, i0 * c.mr, std::min(M, i1 * c.mr) - i0 * c.mr, pc, kc, c.mr, alpha, dst + pc * mPad + i0 * c.mr * kc);
  }
}

// ---------------------------------------------------------------------------------------
// Micro-kernels: C[R x ncols] (+)= Apanel[kc x MR] (first R rows) * Bpanel[kc x NR].
// R is a template parameter so row edges cost nothing; column edges go through masks or
// a tile on the stack. Each element sums its k in order, whatever R and the lane.

namespace {

typedef float V4 __attribute__((vector_size(16)));

template <int MR, int R>
void ukPortable_x8(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc,
                   int ncols, bool acc) {
  V4 c0[R], c1[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = V4{};
  for (int64_t k = 0; k < kc; ++k) {
    V4 b0, b1;
    std::memcpy(&b0, b, sizeof b0);
    std::memcpy(&b1, b + 4, sizeof b1);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      c0[r] += a[r] * b0;
      c1[r] += a[r] * b1;
    }
    a += MR;
    b += 8;
  }
  for (int r = 0; r < R; ++r) {
    float tile[8];
    std::memcpy(tile, &c0[r], sizeof c0[r]);
    std::memcpy(tile + 4, &c1[r], sizeof c1[r]);
    float* cr = c + r * ldc;
    for (int j = 0; j < ncols; ++j) cr[j] = acc ? cr[j] + tile[j] : tile[j];
  }
}

// The next B panel (the same k rows, kc * NR elements on: the panels of a prepacked weight
// are contiguous) into L2 while the current panel's tiles run. The weights of a large model
// come from memory (convnext_tiny: 112 MB, bert_base4 113 MB against 2 MB of L2) and the
// hardware prefetchers stop at every 4 KiB page of a 32 KiB panel; fetched while the current
// panel's tiles run, the stream overlaps the FMAs. NativeLinearBench.DISABLED_GemmDriver on the
// AVX-512 dev box, one thread, AVX-512 / AVX2 GFLOP/s without -> with, two rounds: weights
// cycled through 200 MB (ANVIL_BENCH_COLD=200) MxKxN 49x768x3072 102-106 -> 119-125 / 75 ->
// 90-91, 196x1536x384 148 -> 164 / 90-93 -> 101-107, 8x768x768 30-31 -> 41-47 / 29-30 ->
// 41-42; warm (L3) 49x3072x768 151-160 -> 175-176 / 96-98 -> 106-112, 1024^3 161-172 ->
// 171-176 / 97-104 -> 104-107.
// Every row tile of the panel fetches its own share of the next panel (PanelPrefetch: rows
// [i * kc / tiles, (i + 1) * kc / tiles) for tile i), spread evenly over its k loop. Fetched
// all by the first tile (two lines a k step), the next panel's 512 lines came from memory
// at the rate its k loop asked for them (~30 GB/s) rather than at the ~14 GB/s one core
// reads here: on the AMX Xeon that tile took 2.2x a plain tile's cycles with the weights
// cold (1.55x warm). Shared by the tiles (same host, DISABLED_GemmDriver, AVX-512, cold):
// MxKxN 128x768x3072 152 -> 183 GFLOP/s, 128x3072x768 155 -> 189, 128x768x2304 148 -> 183
// (warm within noise); bert_base4 at one thread 51 -> 43 ms (AVX2 kernels 73 -> 67.5), two
// threads 26 -> 23; convnext_tiny 66 -> 61 ms.
template <int NR, typename TB>
__attribute__((always_inline)) inline void prefetchRow(const TB* row) {
  const char* p = reinterpret_cast<const char*>(row);
  _mm_prefetch(p, _MM_HINT_T1);
  if constexpr (NR * sizeof(TB) > 64) _mm_prefetch(p + 64, _MM_HINT_T1);
}

// The k loop of the AVX2 tile (f32 or f16 weights), with or without its share of the next
// panel's prefetch (PanelPrefetch): the plain and the epilogue kernels share it. Four k steps
// a trip, one row of the share fetched a trip (trip t: row (t * step) >> 32) where the share
// has at most a row per trip (four row tiles or more a panel), else one a k step. A 6x16 k
// step is 20 vector uops; the loop's own scalar uops (one k a trip: ~4, ~9 with a prefetch
// every step) held the tile at 90-94% of the FMA peak in the driver (AVX2 view of the
// AVX-512 Xeon) against 95-98% this way.
template <int MR, int R, bool PF, typename TB = float>
__attribute__((target("avx2,fma,f16c"), always_inline)) inline void accumulateAvx2(__m256 (&c0)[R], __m256 (&c1)[R],
                                                                                  int64_t kc, const float* a,
                                                                                  const TB* b, PanelPrefetch pf = {}) {
  const int64_t trips = kc / 4;
  if (PF && pf.rows > trips) {  // few row tiles: a row every k step
    const TB* pfRow = static_cast<const TB*>(pf.p);
    const int64_t step = prefetchStep(pf.rows, kc);
    for (int64_t k = 0, pos = 0; k < kc; ++k, pos += step) {
      prefetchRow<16>(pfRow + (pos >> 32) * 16);
      stepAvx2_x16<R, TB>(c0, c1, a, b);
      a += MR;
      b += 16;
    }
    return;
  }
  const TB* pfRow = static_cast<const TB*>(pf.p);
  const int64_t step = PF ? prefetchStep(pf.rows, trips) : 0;
  for (int64_t t = 0, pos = 0; t < trips; ++t) {
    if constexpr (PF) {
      prefetchRow<16>(pfRow + (pos >> 32) * 16);
      pos += step;
    }
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) stepAvx2_x16<R, TB>(c0, c1, a + u * MR, b + u * 16);
    a += 4 * MR;
    b += 4 * 16;
  }
  for (int64_t k = trips * 4; k < kc; ++k) {
    stepAvx2_x16<R, TB>(c0, c1, a, b);
    a += MR;
    b += 16;
  }
}

// PF: the variant that also fetches its share of the next panel (ukAvx2Next_x16).
template <int MR, int R, typename TB, bool PF>
__attribute__((target("avx2,fma,f16c"), always_inline)) inline void tileAvx2_x16(int64_t kc, const float* __restrict a,
                                                                                const TB* __restrict b, float* c,
                                                                                int64_t ldc, int ncols, bool acc,
                                                                                PanelPrefetch pf) {
  // C's rows are read (acc) or written only after the k loop: fetch them now, as the AVX-512
  // kernel does. Once C outgrows L2 (on a 512 KiB-L2 EPYC, the 66 rows x 3072 of a BERT
  // FFN block) each tile otherwise waits on L3 at its end. NativeLinearBench.DISABLED_GemmDriver-
  // style A/B on that EPYC (Zen 1, one thread, in one process, 9 interleaved rounds, % of the
  // FMA peak measured before each): 128x768x3072 (MxKxN) 88.5 -> 92.5%, 197x384x1536 90.8 ->
  // 94.3%, 512^3 91.9 -> 94.3%, 1024^3 91.5 -> 93.2%.
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
  __m256 c0[R], c1[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm256_setzero_ps();
  accumulateAvx2<MR, R, PF, TB>(c0, c1, kc, a, b, pf);
  if (ncols == 16) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      float* cr = c + r * ldc;
      if (acc) {
        c0[r] = _mm256_add_ps(_mm256_loadu_ps(cr), c0[r]);
        c1[r] = _mm256_add_ps(_mm256_loadu_ps(cr + 8), c1[r]);
      }
      _mm256_storeu_ps(cr, c0[r]);
      _mm256_storeu_ps(cr + 8, c1[r]);
    }
    return;
  }
  alignas(32) float tile[R][16];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    _mm256_store_ps(tile[r], c0[r]);
    _mm256_store_ps(tile[r] + 8, c1[r]);
  }
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    for (int j = 0; j < ncols; ++j) cr[j] = acc ? cr[j] + tile[r][j] : tile[r][j];
  }
}

// The k loop of the AVX-512 tile (f32 or f16 weights), with or without its share of the next
// panel's prefetch (PanelPrefetch): the plain and the epilogue kernels share it. One k per trip:
// two per trip measured no faster and, at R = 14, left GCC one register short (28
// accumulators + 2 x 2 B vectors), adding moves to the FMA ports.
template <int MR, int R, bool PF, typename TB = float>
__attribute__((target("avx512f"), always_inline)) inline void accumulateAvx512(__m512 (&c0)[R], __m512 (&c1)[R],
                                                                              int64_t kc, const float* a,
                                                                              const TB* b, PanelPrefetch pf = {}) {
  const TB* pfRow = static_cast<const TB*>(pf.p);
  const int64_t step = PF ? prefetchStep(pf.rows, kc) : 0;  // k step k fetches row (k * step) >> 32
  for (int64_t k = 0, pos = 0; k < kc; ++k, pos += step) {
    if constexpr (PF) prefetchRow<32>(pfRow + (pos >> 32) * 32);
    stepAvx512_x32<R, TB>(c0, c1, a, b);
    a += MR;
    b += 32;
  }
}

template <int MR, int R, typename TB, bool PF>
__attribute__((target("avx512f"), always_inline)) inline void tileAvx512_x32(int64_t kc, const float* __restrict a,
                                                                            const TB* __restrict b, float* c,
                                                                            int64_t ldc, int ncols, bool acc,
                                                                            PanelPrefetch pf) {
  // The C rows are needed only after the loop: start fetching them now (one line per 16
  // columns) so that the read-modify-write at the end does not wait on L2.
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16), _MM_HINT_T0);
  }
  __m512 c0[R], c1[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  accumulateAvx512<MR, R, PF, TB>(c0, c1, kc, a, b, pf);
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

// The micro-kernels (MicroKernel / MicroKernelF16) and, f32 only, the ones that also fetch
// their share of the next panel (MicroKernelNext).
template <int MR, int R, typename TB = float>
__attribute__((target("avx2,fma,f16c"))) void ukAvx2_x16(int64_t kc, const float* __restrict a, const TB* __restrict b,
                                                         float* c, int64_t ldc, int ncols, bool acc) {
  tileAvx2_x16<MR, R, TB, false>(kc, a, b, c, ldc, ncols, acc, {});
}
template <int MR, int R>
__attribute__((target("avx2,fma,f16c"))) void ukAvx2Next_x16(int64_t kc, const float* __restrict a,
                                                             const float* __restrict b, float* c, int64_t ldc,
                                                             int ncols, bool acc, PanelPrefetch pf) {
  tileAvx2_x16<MR, R, float, true>(kc, a, b, c, ldc, ncols, acc, pf);
}
template <int MR, int R, typename TB = float>
__attribute__((target("avx512f"))) void ukAvx512_x32(int64_t kc, const float* __restrict a,
                                                     const TB* __restrict b, float* c, int64_t ldc, int ncols,
                                                     bool acc) {
  tileAvx512_x32<MR, R, TB, false>(kc, a, b, c, ldc, ncols, acc, {});
}
template <int MR, int R>
__attribute__((target("avx512f"))) void ukAvx512Next_x32(int64_t kc, const float* __restrict a,
                                                         const float* __restrict b, float* c, int64_t ldc, int ncols,
                                                         bool acc, PanelPrefetch pf) {
  tileAvx512_x32<MR, R, float, true>(kc, a, b, c, ldc, ncols, acc, pf);
}

// The micro-kernel with TileEpilogue applied in registers (acc: C added first, for the last
// of several K blocks): C rows c + r * ldc, residual rows z + r * ldc, rowBias[r] (or
// e.rowBias), colBias[j]. Lane for lane the operations of epilogueRow (epilogue_act.h):
// (acc + rowBias) [+ colBias] [+ z] act [+ z].
// pf: also fetch this tile's share of the next B panel into L2 along the k loop, as the
// MicroKernelNext kernels do for a prepacked weight streamed from memory (pf.rows 0: none;
// prefetches never fault).
using EpiKernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int ncols, bool acc,
                           const TileEpilogue& e, const float* rowBias, const float* colBias, const float* z,
                           PanelPrefetch pf);

// One 16-lane vector of a finished tile row: v = acc (+ C), then the epilogue.
template <int A>
__attribute__((target("avx512f"), always_inline)) inline __m512 epi16(__m512 v, __m512 rb, const float* cb,
                                                                      const float* z, __mmask16 m, const TileEpilogue& e,
                                                                      __m512 p0, __m512 p1) {
  v = _mm512_add_ps(v, rb);
  if (cb) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, cb));
  const __m512 zv = z ? _mm512_maskz_loadu_ps(m, z) : _mm512_setzero_ps();
  return epi::finish16<A>(v, z ? &zv : nullptr, e.addFirst, p0, p1);
}

template <int MR, int R, int A>
__attribute__((target("avx512f"))) void ukAvx512Epi_x32(int64_t kc, const float* __restrict a,
                                                        const float* __restrict b, float* c, int64_t ldc, int ncols,
                                                        bool acc, const TileEpilogue& e, const float* rowBias,
                                                        const float* colBias, const float* z, PanelPrefetch pf) {
  // The residual rows (and C's, for the last of several K blocks) are needed only after
  // the loop: start fetching them now.
  if (acc) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16), _MM_HINT_T0);
    }
  }
  if (z) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(z + r * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(z + r * ldc + 16), _MM_HINT_T0);
    }
  }
  __m512 c0[R], c1[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  if (pf.rows > 0)
    accumulateAvx512<MR, R, true>(c0, c1, kc, a, b, pf);
  else
    accumulateAvx512<MR, R, false>(c0, c1, kc, a, b);
  const __mmask16 m0 = ncols >= 16 ? __mmask16(0xffff) : __mmask16((1u << ncols) - 1);
  const __mmask16 m1 = ncols >= 32 ? __mmask16(0xffff) : ncols <= 16 ? __mmask16(0) : __mmask16((1u << (ncols - 16)) - 1);
  const __m512 p0 = _mm512_set1_ps(e.p0), p1 = _mm512_set1_ps(e.p1);
  const float* cb1 = colBias ? colBias + 16 : nullptr;
  if constexpr (epi::transcendental(A)) {
    // Spilled, then one row at a time: one copy of the polynomial instead of 2R.
    alignas(64) float tile[R][32];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      float* cr = c + r * ldc;
      if (acc) {
        c0[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cr), c0[r]);
        c1[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cr + 16), c1[r]);
      }
      _mm512_store_ps(tile[r], c0[r]);
      _mm512_store_ps(tile[r] + 16, c1[r]);
    }
#pragma GCC unroll 1
    for (int r = 0; r < R; ++r) {
      float* cr = c + r * ldc;
      const __m512 rb = _mm512_set1_ps(rowBias ? rowBias[r] : e.rowBias);
      const float* zr = z ? z + r * ldc : nullptr;
      _mm512_mask_storeu_ps(cr, m0, epi16<A>(_mm512_load_ps(tile[r]), rb, colBias, zr, m0, e, p0, p1));
      _mm512_mask_storeu_ps(cr + 16, m1,
                            epi16<A>(_mm512_load_ps(tile[r] + 16), rb, cb1, zr ? zr + 16 : nullptr, m1, e, p0, p1));
    }
    return;
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    const __m512 rb = _mm512_set1_ps(rowBias ? rowBias[r] : e.rowBias);
    const float* zr = z ? z + r * ldc : nullptr;
    if (acc) {
      c0[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cr), c0[r]);
      c1[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cr + 16), c1[r]);
    }
    _mm512_mask_storeu_ps(cr, m0, epi16<A>(c0[r], rb, colBias, zr, m0, e, p0, p1));
    _mm512_mask_storeu_ps(cr + 16, m1, epi16<A>(c1[r], rb, cb1, zr ? zr + 16 : nullptr, m1, e, p0, p1));
  }
}

template <int A>
__attribute__((target("avx2,fma"), always_inline)) inline __m256 epi8(__m256 v, __m256 rb, const float* cb,
                                                                      const float* z, __m256i m, bool full,
                                                                      const TileEpilogue& e, __m256 p0, __m256 p1) {
  v = _mm256_add_ps(v, rb);
  if (cb) v = _mm256_add_ps(v, full ? _mm256_loadu_ps(cb) : _mm256_maskload_ps(cb, m));
  const __m256 zv = !z ? _mm256_setzero_ps() : full ? _mm256_loadu_ps(z) : _mm256_maskload_ps(z, m);
  return epi::finish8<A>(v, z ? &zv : nullptr, e.addFirst, p0, p1);
}

// A tile row's 16 columns, the first `ncols` of them when not full (masks mk0, mk1).
__attribute__((target("avx2"), always_inline)) inline void storeRow16(float* cr, bool full, __m256i mk0, __m256i mk1,
                                                                      __m256 v0, __m256 v1) {
  if (full) {
    _mm256_storeu_ps(cr, v0);
    _mm256_storeu_ps(cr + 8, v1);
  } else {
    _mm256_maskstore_ps(cr, mk0, v0);
    _mm256_maskstore_ps(cr + 8, mk1, v1);
  }
}

template <int MR, int R, int A>
__attribute__((target("avx2,fma,f16c"))) void ukAvx2Epi_x16(int64_t kc, const float* __restrict a,
                                                       const float* __restrict b, float* c, int64_t ldc, int ncols,
                                                       bool acc, const TileEpilogue& e, const float* rowBias,
                                                       const float* colBias, const float* z, PanelPrefetch pf) {
  if (acc) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
  }
  if (z) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(z + r * ldc), _MM_HINT_T0);
  }
  __m256 c0[R], c1[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm256_setzero_ps();
  if (pf.rows > 0)
    accumulateAvx2<MR, R, true>(c0, c1, kc, a, b, pf);
  else
    accumulateAvx2<MR, R, false>(c0, c1, kc, a, b);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mk0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(ncols), lane);
  const __m256i mk1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(ncols - 8), lane);
  const bool full = ncols == 16;
  const __m256 p0 = _mm256_set1_ps(e.p0), p1 = _mm256_set1_ps(e.p1);
  const float* cb1 = colBias ? colBias + 8 : nullptr;
  if constexpr (epi::transcendental(A)) {
    alignas(32) float tile[R][16];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      float* cr = c + r * ldc;
      if (acc) {
        c0[r] = _mm256_add_ps(full ? _mm256_loadu_ps(cr) : _mm256_maskload_ps(cr, mk0), c0[r]);
        c1[r] = _mm256_add_ps(full ? _mm256_loadu_ps(cr + 8) : _mm256_maskload_ps(cr + 8, mk1), c1[r]);
      }
      _mm256_store_ps(tile[r], c0[r]);
      _mm256_store_ps(tile[r] + 8, c1[r]);
    }
#pragma GCC unroll 1
    for (int r = 0; r < R; ++r) {
      const __m256 rb = _mm256_set1_ps(rowBias ? rowBias[r] : e.rowBias);
      const float* zr = z ? z + r * ldc : nullptr;
      storeRow16(c + r * ldc, full, mk0, mk1, epi8<A>(_mm256_load_ps(tile[r]), rb, colBias, zr, mk0, full, e, p0, p1),
            epi8<A>(_mm256_load_ps(tile[r] + 8), rb, cb1, zr ? zr + 8 : nullptr, mk1, full, e, p0, p1));
    }
    return;
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    const __m256 rb = _mm256_set1_ps(rowBias ? rowBias[r] : e.rowBias);
    const float* zr = z ? z + r * ldc : nullptr;
    if (acc) {
      c0[r] = _mm256_add_ps(full ? _mm256_loadu_ps(cr) : _mm256_maskload_ps(cr, mk0), c0[r]);
      c1[r] = _mm256_add_ps(full ? _mm256_loadu_ps(cr + 8) : _mm256_maskload_ps(cr + 8, mk1), c1[r]);
    }
    storeRow16(cr, full, mk0, mk1, epi8<A>(c0[r], rb, colBias, zr, mk0, full, e, p0, p1),
          epi8<A>(c1[r], rb, cb1, zr ? zr + 8 : nullptr, mk1, full, e, p0, p1));
  }
}

// Tables [A * MR + R - 1], A = TileEpilogue::Act.
template <int MR, int A, int... Rs>
constexpr std::array<EpiKernel, MR> avx512EpiRow(std::integer_sequence<int, Rs...>) {
  return {&ukAvx512Epi_x32<MR, Rs + 1, A>...};
}
template <int MR, int A, int... Rs>
constexpr std::array<EpiKernel, MR> avx2EpiRow(std::integer_sequence<int, Rs...>) {
  return {&ukAvx2Epi_x16<MR, Rs + 1, A>...};
}
template <int MR, bool Avx512, int... As>
std::array<EpiKernel, TileEpilogue::kActs * MR> epiTable(std::integer_sequence<int, As...>) {
  static_assert(sizeof...(As) == TileEpilogue::kActs && int(TileEpilogue::kActs) == epi::kActs &&
                    int(TileEpilogue::kGelu) == epi::kGelu && int(TileEpilogue::kSilu) == epi::kSilu,
                "TileEpilogue::Act numbers the activations as epi::Act");
  std::array<EpiKernel, TileEpilogue::kActs * MR> t{};
  const auto seq = std::make_integer_sequence<int, MR>{};
  std::array<EpiKernel, MR> rows[TileEpilogue::kActs];
  if constexpr (Avx512)
    ((rows[As] = avx512EpiRow<MR, As>(seq)), ...);
  else
    ((rows[As] = avx2EpiRow<MR, As>(seq)), ...);
  for (int a = 0; a < TileEpilogue::kActs; ++a)
    for (int r = 0; r < MR; ++r) t[size_t(a * MR + r)] = rows[a][size_t(r)];
  return t;
}

// The EpiKernel table of a family, or null (the portable family has none).
const EpiKernel* epiKernels(const GemmConfig& c) {
  constexpr auto acts = std::make_integer_sequence<int, TileEpilogue::kActs>{};
  static const auto k14 = epiTable<14, true>(acts);
  static const auto k8 = epiTable<8, true>(acts);
  static const auto k6 = epiTable<6, false>(acts);
  if (c.nr == 32 && c.mr == 14) return k14.data();
  if (c.nr == 32 && c.mr == 8) return k8.data();
  if (c.nr == 16 && c.mr == 6) return k6.data();
  return nullptr;
}

// Small-M kernels (GemvKernel). The A element is scaled exactly as packA scales it.
template <int R, int P, typename TB = float>
__attribute__((target("avx2,fma,f16c"))) void gemvAvx2(int64_t kc, const float* a, int64_t ars, int64_t acs,
                                                       float alpha, const TB* b, int64_t panelStride, float* c,
                                                       int64_t ldc, int lastCols, bool acc) {
  __m256 cv[R][P][2];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) cv[r][p][0] = cv[r][p][1] = _mm256_setzero_ps();
  const bool scale = alpha != 1.0f;
  for (int64_t k = 0; k < kc; ++k) {
    __m256 bv[P][2];
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) {
      bv[p][0] = loadB8(b + p * panelStride + k * 16);
      bv[p][1] = loadB8(b + p * panelStride + k * 16 + 8);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      float x = a[r * ars + k * acs];
      if (scale) x = alpha * x;
      const __m256 av = _mm256_set1_ps(x);
#pragma GCC unroll 8
      for (int p = 0; p < P; ++p) {
        cv[r][p][0] = _mm256_fmadd_ps(av, bv[p][0], cv[r][p][0]);
        cv[r][p][1] = _mm256_fmadd_ps(av, bv[p][1], cv[r][p][1]);
      }
    }
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p) {
    const int cols = p + 1 < P ? 16 : lastCols;
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      float* cr = c + r * ldc + p * 16;
      if (cols == 16) {
        if (acc) {
          cv[r][p][0] = _mm256_add_ps(_mm256_loadu_ps(cr), cv[r][p][0]);
          cv[r][p][1] = _mm256_add_ps(_mm256_loadu_ps(cr + 8), cv[r][p][1]);
        }
        _mm256_storeu_ps(cr, cv[r][p][0]);
        _mm256_storeu_ps(cr + 8, cv[r][p][1]);
      } else {
        if (acc) {
          cv[r][p][0] = _mm256_add_ps(_mm256_maskload_ps(cr, m0), cv[r][p][0]);
          cv[r][p][1] = _mm256_add_ps(_mm256_maskload_ps(cr + 8, m1), cv[r][p][1]);
        }
        _mm256_maskstore_ps(cr, m0, cv[r][p][0]);
        _mm256_maskstore_ps(cr + 8, m1, cv[r][p][1]);
      }
    }
  }
}

template <int R, int P, typename TB = float>
__attribute__((target("avx512f"))) void gemvAvx512(int64_t kc, const float* a, int64_t ars, int64_t acs, float alpha,
                                                   const TB* b, int64_t panelStride, float* c, int64_t ldc,
                                                   int lastCols, bool acc) {
  __m512 cv[R][P][2];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) cv[r][p][0] = cv[r][p][1] = _mm512_setzero_ps();
  const bool scale = alpha != 1.0f;
  for (int64_t k = 0; k < kc; ++k) {
    __m512 bv[P][2];
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) {
      bv[p][0] = loadB16(b + p * panelStride + k * 32);
      bv[p][1] = loadB16(b + p * panelStride + k * 32 + 16);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      float x = a[r * ars + k * acs];
      if (scale) x = alpha * x;
      const __m512 av = _mm512_set1_ps(x);
#pragma GCC unroll 8
      for (int p = 0; p < P; ++p) {
        cv[r][p][0] = _mm512_fmadd_ps(av, bv[p][0], cv[r][p][0]);
        cv[r][p][1] = _mm512_fmadd_ps(av, bv[p][1], cv[r][p][1]);
      }
    }
  }
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p) {
    const int cols = p + 1 < P ? 32 : lastCols;
    const __mmask16 m0 = cols >= 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32 ? __mmask16(0xffff) : cols <= 16 ? __mmask16(0) : __mmask16((1u << (cols - 16)) - 1);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      float* cr = c + r * ldc + p * 32;
      if (acc) {
        cv[r][p][0] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cr), cv[r][p][0]);
        cv[r][p][1] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cr + 16), cv[r][p][1]);
      }
      _mm512_mask_storeu_ps(cr, m0, cv[r][p][0]);
      _mm512_mask_storeu_ps(cr + 16, m1, cv[r][p][1]);
    }
  }
}

// gemv[(R-1) * kGemvMaxPanels + (P-1)] for R = 1..4, P = 1..kGemvMaxPanels.
// TB: the B panels' element type (float, or uint16_t for f16); G: the kernel pointer type.
template <int R, typename TB, typename G, int... Ps>
constexpr std::array<G, kGemvMaxPanels> gemvRowAvx2(std::integer_sequence<int, Ps...>) {
  return {&gemvAvx2<R, Ps + 1, TB>...};
}
template <int R, typename TB, typename G, int... Ps>
constexpr std::array<G, kGemvMaxPanels> gemvRowAvx512(std::integer_sequence<int, Ps...>) {
  return {&gemvAvx512<R, Ps + 1, TB>...};
}
template <int R, typename TB, typename G>
constexpr auto gemvRow(bool avx512) {
  return avx512 ? gemvRowAvx512<R, TB, G>(std::make_integer_sequence<int, kGemvMaxPanels>{})
                : gemvRowAvx2<R, TB, G>(std::make_integer_sequence<int, kGemvMaxPanels>{});
}
template <typename TB = float, typename G = GemvKernel>
std::array<G, 4 * kGemvMaxPanels> gemvTable(bool avx512) {
  std::array<G, 4 * kGemvMaxPanels> t{};
  const std::array<G, kGemvMaxPanels> rows[4] = {gemvRow<1, TB, G>(avx512), gemvRow<2, TB, G>(avx512),
                                                 gemvRow<3, TB, G>(avx512), gemvRow<4, TB, G>(avx512)};
  for (int r = 0; r < 4; ++r)
    for (int p = 0; p < kGemvMaxPanels; ++p) t[size_t(r * kGemvMaxPanels + p)] = rows[r][size_t(p)];
  return t;
}

template <int MR, int... Rs>
constexpr std::array<MicroKernel, MR> portableTable(std::integer_sequence<int, Rs...>) {
  return {&ukPortable_x8<MR, Rs + 1>...};
}
template <int MR, typename TB = float, typename K = MicroKernel, int... Rs>
constexpr std::array<K, MR> avx2Table(std::integer_sequence<int, Rs...>) {
  return {&ukAvx2_x16<MR, Rs + 1, TB>...};
}
template <int MR, typename TB = float, typename K = MicroKernel, int... Rs>
constexpr std::array<K, MR> avx512Table(std::integer_sequence<int, Rs...>) {
  return {&ukAvx512_x32<MR, Rs + 1, TB>...};
}
template <int MR, int... Rs>
constexpr std::array<MicroKernelNext, MR> avx2NextTable(std::integer_sequence<int, Rs...>) {
  return {&ukAvx2Next_x16<MR, Rs + 1>...};
}
template <int MR, int... Rs>
constexpr std::array<MicroKernelNext, MR> avx512NextTable(std::integer_sequence<int, Rs...>) {
  return {&ukAvx512Next_x32<MR, Rs + 1>...};
}

}  // namespace

// Cache blocking (floats): an A block (mc x kc) stays in L2 while the B micro-panels
// (kc x nr) pass through L1. On a Zen 5 class EPYC (48 KiB L1d, 1 MiB L2) MatMul
// 256x512x512 moved by under 5% over kc 128..384 and mc 4..24 panels; nc 512 was 5-10%
// better than 1024 for the ResNet 3x3 Conv. mc is a multiple of mr.
// AVX-512 (measured on the AVX-512 dev box, a Xeon with 48 KiB L1d and 2 MiB L2, one
// thread, NativeLinearBench.DISABLED_GemmDriver): kc 256 (a 32 KiB B micro-panel plus a
// 14 KiB A micro-panel: just inside L1) beat 192 by 3-5% at M=N=K 512 and 1024 (fewer
// read-modify-writes of C per element: 512 = 2 blocks instead of 3); 224 and 288 were no
// better. mc 224 (an A block of 224 KiB in L2, half the reloads of B from L3 once B
// outgrows L2) beat 112 by 3-5% at 1024^3; 336 and 448 no better. With K or N at 1024 (B
// past L2) the rate drops about 5% against 512; neither splitting N into 256/512-column
// items nor prefetching the next B panel into L2 while a panel's tiles run recovered it.
const GemmConfig& gemmConfig(GemmIsa isa) {
  static const auto kPortable = portableTable<4>(std::make_integer_sequence<int, 4>{});
  static const auto kAvx2 = avx2Table<6>(std::make_integer_sequence<int, 6>{});
  static const auto kAvx512 = avx512Table<14>(std::make_integer_sequence<int, 14>{});
  static const auto kAvx512x8 = avx512Table<8>(std::make_integer_sequence<int, 8>{});
  // The same with the next panel's prefetch (GemmConfig::kernelsNext).
  static const auto kAvx2Pf = avx2NextTable<6>(std::make_integer_sequence<int, 6>{});
  static const auto kAvx512Pf = avx512NextTable<14>(std::make_integer_sequence<int, 14>{});
  static const auto kAvx512x8Pf = avx512NextTable<8>(std::make_integer_sequence<int, 8>{});
  static const auto kGemvAvx2 = gemvTable(false);
  static const auto kGemvAvx512 = gemvTable(true);
  // The same kernels over f16 B panels (gemmPackedBHalf).
  using H = uint16_t;
  static const auto kAvx2H = avx2Table<6, H, MicroKernelF16>(std::make_integer_sequence<int, 6>{});
  static const auto kAvx512H = avx512Table<14, H, MicroKernelF16>(std::make_integer_sequence<int, 14>{});
  static const auto kAvx512x8H = avx512Table<8, H, MicroKernelF16>(std::make_integer_sequence<int, 8>{});
  static const auto kGemvAvx2H = gemvTable<H, GemvKernelF16>(false);
  static const auto kGemvAvx512H = gemvTable<H, GemvKernelF16>(true);
  static const GemmConfig kCfgPortable{4, 8, 64, 256, 256, kPortable.data()};
  // Small M: P panels per call so that R x P x 2 accumulators reach 12 where registers
  // allow (FMA latency 4 x 2 ports wants at least 8 chains in flight). On the dev box (Xeon,
  // 48 KiB L1d, 2 MiB L2), one thread: 1x100x100 45 GFLOP/s (AVX2) / 59 (AVX-512) against
  // 19 / 15 through packed A; 1x256x256 37 / 70 against 25 / 30; 1x768x768 is bound by
  // streaming its 2.4 MB of weights from L3 (27 against 22 GFLOP/s).
  static const GemmConfig kCfgAvx2{6,  16, 72, 256, 512, kAvx2.data(), 4, {6, 3, 2, 1}, kGemvAvx2.data(),
                                   kAvx2H.data(), kGemvAvx2H.data(), kAvx2Pf.data()};
  static const GemmConfig kCfgAvx512{14, 32, 224, 256, 512, kAvx512.data(), 4, {6, 3, 2, 2}, kGemvAvx512.data(),
                                     kAvx512H.data(), kGemvAvx512H.data(), kAvx512Pf.data()};
  // 8x32: 16 accumulators still cover the FMA latency (4 cycles x 2 ports); same kc as
  // 14x32 so that K blocks, and with them the sums' order, match the 14x32 family.
  static const GemmConfig kCfgAvx512x8{8, 32, 224, 256, 512, kAvx512x8.data(), 4, {6, 3, 2, 2}, kGemvAvx512.data(),
                                       kAvx512x8H.data(), kGemvAvx512H.data(), kAvx512x8Pf.data()};
  switch (isa) {
    case GemmIsa::kAvx2_6x16: return kCfgAvx2;
    case GemmIsa::kAvx512_8x32: return kCfgAvx512x8;
    case GemmIsa::kAvx512_14x32: return kCfgAvx512;
    default: return kCfgPortable;
  }
}

// ---------------------------------------------------------------------------------------
// Drivers

GemmSplit gemmPackedBSplit(const GemmConfig& c, int64_t M, int64_t N, int64_t tasks) {
  const int64_t T = std::max<int64_t>(1, tasks), panels = ceilDiv(N, c.nr);
  // The M blocks split the mr-row tiles evenly (no short last block) and, with several
  // tasks, N is split too until there are about four items per task, so that contiguous
  // ranges of items give every task nearly the same work. One task: whole rows of C per
  // item, A packed once.
  GemmSplit s;
  s.mBlocks = std::min(ceilDiv(M, c.mr), ceilDiv(M, c.mc));
  if (T == 1) return s;
  // Small M (one block, no A packing): one even panel range per task, each as wide as
  // possible for the several-panel kernels.
  if (M <= c.gemvRows) {
    s.nSplit = std::min(panels, T);
    return s;
  }
  s.nSplit = std::max<int64_t>(1, std::min(panels, ceilDiv(4 * T, s.mBlocks)));
  // Then up to a count of items the tasks divide evenly, where N has the panels for it: the
  // items are of nearly one size, so 9 on 2 tasks (M = 197: 3 M blocks x 3 N ranges) left
  // one task 5 items against 4, idle for the last 10% of the product. 3 x 4 is 6 against 6:
  // the critical path (each task's thread CPU time, tasks run in turn on the Zen 1 EPYC,
  // medians of 5 interleaved rounds) 197x384x1152 (MxKxN) 85.6 -> 91.9% of twice the FMA
  // peak, 197x1536x384 82.9 -> 88.5%, 784x128x512 84.5 -> 86.6%.
  for (int64_t n = s.nSplit; n <= std::min(panels, s.nSplit + T - 1); ++n)
    if (s.mBlocks * n % T == 0) {
      s.nSplit = n;
      break;
    }
  return s;
}

int64_t gemmPackedBSlotFloats(const GemmConfig& c, int64_t K) {
  return roundUp(roundUp(c.mc, c.mr) * std::max<int64_t>(1, std::min(c.kc, K)), 16);
}

namespace {

// n halves (a multiple of 8) to floats.
__attribute__((target("avx2,f16c"))) void widenHalf(const uint16_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; i += 8)
    _mm256_store_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
}

// The kernels of a family for B panels of element type TB.
template <typename TB>
auto microKernels(const GemmConfig& c) {
  if constexpr (std::is_same_v<TB, float>) return c.kernels;
  else return c.kernelsF16;
}
template <typename TB>
auto gemvKernels(const GemmConfig& c) {
  if constexpr (std::is_same_v<TB, float>) return c.gemv;
  else return c.gemvF16;
}

template <typename TB>
void gemmPackedBImpl(const GemmConfig& c, int64_t M, int64_t N, int64_t K, float alpha, StridedMatrix A, const TB* Bp,
                     float* C, int64_t ldc, runtime::Executor* ex, const TaskSlots& slots, const BlockEpilogue* ep,
                     const TileEpilogue* te = nullptr) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    zeroRows(M, N, C, ldc);
    if (ep) (*ep)(0, M, 0, N, C, ldc);
    return;
  }
  const int mr = c.mr, nr = c.nr;
  const int64_t panels = ceilDiv(N, nr), nPad = panels * nr;
  const int64_t T = std::max(1, slots.tasks);
  const int64_t tilesM = ceilDiv(M, mr);
  const GemmSplit split = gemmPackedBSplit(c, M, N, T);
  const int64_t mBlocks = split.mBlocks, nSplit = split.nSplit;
  const int64_t items = mBlocks * nSplit, tasks = std::min(T, items);
  const auto kernels = microKernels<TB>(c);
  const auto gemv = gemvKernels<TB>(c);
  // With a tile epilogue (f32 B only), the last K block's tiles apply it before their store.
  const EpiKernel* epiK = te ? epiKernels(c) + te->act * c.mr : nullptr;
  // Per item the A block (mc x kc) stays in L2 and B's panels stream past it from the
  // prepacked weight. Against the BLIS order (a kc x nc block of B kept in L2 across the M
  // blocks) this measured 96 vs 88 GFLOP/s (AVX2) and 143 vs 134 (AVX-512) on MatMul
  // 784x1024x1024 and within 5% on 256x512x512, one thread, on the dev box (Xeon, AVX-512).
  auto task = [&](int64_t t) {
    float* ap = slots.slot(t);
    for (int64_t item = rangeBegin(items, t, tasks), end = rangeBegin(items, t + 1, tasks); item < end;) {
      const GemmItemRun run = gemmItemRun(item, end, nSplit, panels);  // A packed once a run
      item = run.next;
      const int64_t mb = run.mb, q0 = run.q0, q1 = run.q1;
      const int64_t ic = rangeBegin(tilesM, mb, mBlocks) * mr;
      const int64_t mc = std::min(M, rangeBegin(tilesM, mb + 1, mBlocks) * mr) - ic;
      if (q0 >= q1) continue;
      if (mc <= c.gemvRows) {  // small M: A in place, B streamed once, P panels at a time
        const int R = int(mc), P = c.gemvPanels[R - 1];
        for (int64_t pc = 0, kb = kBlockOf(c, K); pc < K; pc += kb) {
          const int64_t kc = std::min(kb, K - pc);
          const TB* bBlock = Bp + pc * nPad;
          const float* a = A.p + ic * A.rs + pc * A.cs;
          for (int64_t q = q0; q < q1; q += P) {
            const int np = int(std::min<int64_t>(P, q1 - q));
            const int lastCols = int(std::min<int64_t>(nr, N - (q + np - 1) * nr));
            gemv[(R - 1) * kGemvMaxPanels + (np - 1)](kc, a, A.rs, A.cs, alpha, bBlock + q * kc * nr, kc * nr,
                                                      C + ic * ldc + q * nr, ldc, lastCols, pc > 0);
          }
        }
        if (ep) (*ep)(ic, mc, q0 * nr, std::min(N, q1 * nr) - q0 * nr, C + ic * ldc + q0 * nr, ldc);
        continue;
      }
      for (int64_t pc = 0, kb = kBlockOf(c, K); pc < K; pc += kb) {
        const int64_t kc = std::min(kb, K - pc);
        packA(A, ic, mc, pc, kc, mr, alpha, ap);
        const TB* bBlock = Bp + pc * nPad;
        for (int64_t q = q0; q < q1; ++q) {
          const int ncols = int(std::min<int64_t>(nr, N - q * nr));
          const TB* bq = bBlock + q * kc * nr;
          float* cq = C + ic * ldc + q * nr;
          if constexpr (!std::is_same_v<TB, float>) {
            // f16 panels under several row tiles: widened once into the task's buffer and
            // run by the f32 kernels (the same values, so the same bits) rather than
            // converted again by every tile.
            if (mc > mr) {
              float* wide = ap + gemmPackedBSlotFloats(c, K);
              widenHalf(bq, kc * nr, wide);
              for (int64_t ip = 0; ip < mc; ip += mr) {
                const int rows = int(std::min<int64_t>(mr, mc - ip));
                c.kernels[rows - 1](kc, ap + ip * kc, wide, cq + ip * ldc, ldc, ncols, pc > 0);
              }
              continue;
            }
          }
          if constexpr (std::is_same_v<TB, float>) {
            // Each row tile of the panel also fetches its share of the next panel into L2
            // (PanelPrefetch): one fetch per weight byte, spread over the panel's FMAs. After
            // the item's last panel, the next K block's first one (the panel after it in
            // memory belongs to another task's range when N is split); after the last K
            // block's, none.
            const int64_t nT = ceilDiv(mc, int64_t(mr));
            const int64_t kcNext = q + 1 < q1 ? kc : std::min(kb, K - pc - kc);
            const float* next = q + 1 < q1 ? bq + kc * nr : Bp + (pc + kc) * nPad + q0 * kcNext * nr;
            auto share = [&](int64_t i) { return kcNext > 0 ? panelShare(next, nr, kcNext, i, nT) : PanelPrefetch{}; };
            if (epiK && pc + kc >= K) {
              const float* cb = te->colBias ? te->colBias + q * nr : nullptr;
              for (int64_t ip = 0, i = 0; ip < mc; ip += mr, ++i) {
                const int rows = int(std::min<int64_t>(mr, mc - ip));
                const int64_t off = (ic + ip) * ldc + q * nr;
                epiK[rows - 1](kc, ap + ip * kc, bq, cq + ip * ldc, ldc, ncols, pc > 0, *te,
                               te->bias ? te->bias + ic + ip : nullptr, cb, te->z ? te->z + off : nullptr, share(i));
              }
              continue;
            }
            if (c.kernelsNext && kcNext > 0) {
              for (int64_t ip = 0, i = 0; ip < mc; ip += mr, ++i) {
                const int rows = int(std::min<int64_t>(mr, mc - ip));
                c.kernelsNext[rows - 1](kc, ap + ip * kc, bq, cq + ip * ldc, ldc, ncols, pc > 0, share(i));
              }
              continue;
            }
          }
          for (int64_t ip = 0; ip < mc; ip += mr) {
            const int rows = int(std::min<int64_t>(mr, mc - ip));
            kernels[rows - 1](kc, ap + ip * kc, bq, cq + ip * ldc, ldc, ncols, pc > 0);
          }
        }
      }
      if (ep && !epiK) (*ep)(ic, mc, q0 * nr, std::min(N, q1 * nr) - q0 * nr, C + ic * ldc + q0 * nr, ldc);
    }
  };
  if (ex && tasks > 1)
    ex->parallelFor(tasks, task);
  else
    for (int64_t t = 0; t < tasks; ++t) task(t);
}

}  // namespace

void gemmPackedB(const GemmConfig& c, int64_t M, int64_t N, int64_t K, float alpha, StridedMatrix A, const float* Bp,
                 float* C, int64_t ldc, runtime::Executor* ex, const TaskSlots& slots, const BlockEpilogue* ep) {
  gemmPackedBImpl<float>(c, M, N, K, alpha, A, Bp, C, ldc, ex, slots, ep);
}

void gemmPackedBFused(const GemmConfig& c, int64_t M, int64_t N, int64_t K, float alpha, StridedMatrix A,
                      const float* Bp, float* C, int64_t ldc, runtime::Executor* ex, const TaskSlots& slots,
                      const BlockEpilogue* ep, const TileEpilogue& e) {
  ANVIL_CHECK(epiKernels(c) != nullptr && e.act >= 0 && e.act < TileEpilogue::kActs, ErrorCode::kInternal,
              "gemmPackedBFused: a vector family and an activation of TileEpilogue::Act, got act ", e.act);
  gemmPackedBImpl<float>(c, M, N, K, alpha, A, Bp, C, ldc, ex, slots, ep, &e);
}

int64_t gemmPackedBHalfSlotFloats(const GemmConfig& c, int64_t K) {
  return gemmPackedBSlotFloats(c, K) + roundUp(std::max<int64_t>(1, std::min(c.kc, K)) * c.nr, 16);
}

void gemmPackedBHalf(const GemmConfig& c, int64_t M, int64_t N, int64_t K, float alpha, StridedMatrix A,
                     const uint16_t* Bp, float* C, int64_t ldc, runtime::Executor* ex, const TaskSlots& slots,
                     const BlockEpilogue* ep) {
  gemmPackedBImpl<uint16_t>(c, M, N, K, alpha, A, Bp, C, ldc, ex, slots, ep);
}

bool gemmPackedAFusedSupports(const GemmConfig& c) { return epiKernels(c) != nullptr; }

void gemmPackedAFused(const GemmConfig& c, int64_t M, int64_t K, const float* Ap, const BPacker& B, int64_t j0,
                      int64_t j1, float* C, int64_t ldc, float* slot, const TileEpilogue& e, int64_t kBlock) {
  if (M <= 0 || j1 <= j0 || K <= 0) return;
  const int64_t kb = kBlock > 0 ? kBlock : kBlockOf(c, K);
  const EpiKernel* epiK = epiKernels(c) + e.act * c.mr;
  const int mr = c.mr, nr = c.nr;
  const int64_t mPad = roundUp(M, mr);
  float* bp = slot;
  float* scratch = slot + roundUp(c.kc * c.nc, 16);
  for (int64_t jc = j0; jc < j1; jc += c.nc) {
    const int64_t nc = std::min(c.nc, j1 - jc), panels = ceilDiv(nc, nr);
    for (int64_t pc = 0; pc < K; pc += kb) {
      const int64_t kc = std::min(kb, K - pc);
      B.pack(pc, kc, jc, nc, nr, bp, scratch);
      const float* aBlock = Ap + pc * mPad;
      if (pc + kc < K) {  // not the last K block: as gemmPackedA
        for (int64_t q = 0; q < panels; ++q) {
          const int ncols = int(std::min<int64_t>(nr, nc - q * nr));
          for (int64_t ip = 0; ip < M; ip += mr) {
            const int rows = int(std::min<int64_t>(mr, M - ip));
            c.kernels[rows - 1](kc, aBlock + ip * kc, bp + q * kc * nr, C + ip * ldc + jc + q * nr, ldc, ncols,
                                pc > 0);
          }
        }
        continue;
      }
      // The last K block: row block by row block, each sweeping the block's panels, the
      // epilogue in registers; C and the residual stream along rows (mr streams the
      // prefetchers follow) rather than touching all M rows per panel. Against panel by
      // panel (each panel's tiles down all M rows, the panel kept in L1), one layer alone,
      // same kernel, median ms: 64 -> 256 @56x56 + residual 0.76-0.79 vs 0.82-0.85,
      // 256 -> 64 @56x56 0.78-0.82 vs 0.79-0.83, 16 -> 96 @112x112 0.34-0.36 vs 0.36-0.38.
      // The sweep re-reads its panels from L2 once per row block: at most `budget` bytes of
      // them per sweep (groups of panels), less for the AVX2 tile, whose 6 rows do half
      // the flops per B byte of the AVX-512 14-row one. AVX2, 256 -> 64 @56x56 and
      // 512 -> 128 @28x28: 1.23-1.29 / 1.06-1.09 ms sweeping all 16 panels, 1.19-1.22 /
      // 1.00-1.05 with 32 KiB; AVX-512 within noise between 64 KiB, 128 KiB and all panels
      // (64 -> 256 @56x56 0.81-0.85 ms).
      const int64_t budget = nr >= 32 ? 128 * 1024 : 32 * 1024;
      const int64_t group = std::max<int64_t>(1, budget / (kc * nr * int64_t(sizeof(float))));
      for (int64_t g0 = 0; g0 < panels; g0 += group) {
        const int64_t g1 = std::min(panels, g0 + group);
        for (int64_t ip = 0; ip < M; ip += mr) {
          const int rows = int(std::min<int64_t>(mr, M - ip));
          const float* a = aBlock + ip * kc;
          const float* bias = e.bias ? e.bias + ip : nullptr;
          for (int64_t q = g0; q < g1; ++q) {
            const int ncols = int(std::min<int64_t>(nr, nc - q * nr));
            const int64_t off = ip * ldc + jc + q * nr;
            epiK[rows - 1](kc, a, bp + q * kc * nr, C + off, ldc, ncols, pc > 0, e, bias,
                           e.colBias ? e.colBias + jc + q * nr : nullptr, e.z ? e.z + off : nullptr, {});
          }
        }
      }
    }
  }
}

int64_t gemmPackedASlotFloats(const GemmConfig& c, int64_t scratchFloats) {
  return roundUp(c.kc * c.nc, 16) + roundUp(scratchFloats, 16);
}

void gemmPackedA(const GemmConfig& c, int64_t M, int64_t K, const float* Ap, const BPacker& B, int64_t j0, int64_t j1,
                 float* C, int64_t ldc, float* slot, const BlockEpilogue* ep, int64_t kBlock) {
  if (M <= 0 || j1 <= j0) return;
  const int64_t kb = kBlock > 0 ? kBlock : kBlockOf(c, K);
  if (K <= 0) {
    for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc + j0, C + i * ldc + j1, 0.0f);
    if (ep) (*ep)(0, M, j0, j1 - j0, C + j0, ldc);
    return;
  }
  const int mr = c.mr, nr = c.nr;
  const int64_t mPad = roundUp(M, mr);
  float* bp = slot;
  float* scratch = slot + roundUp(c.kc * c.nc, 16);
  for (int64_t jc = j0; jc < j1; jc += c.nc) {
    const int64_t nc = std::min(c.nc, j1 - jc), panels = ceilDiv(nc, nr);
    for (int64_t pc = 0; pc < K; pc += kb) {
      const int64_t kc = std::min(kb, K - pc);
      B.pack(pc, kc, jc, nc, nr, bp, scratch);
      const float* aBlock = Ap + pc * mPad;
      for (int64_t q = 0; q < panels; ++q) {
        const int ncols = int(std::min<int64_t>(nr, nc - q * nr));
        const float* bq = bp + q * kc * nr;
        float* cq = C + jc + q * nr;
        for (int64_t ip = 0; ip < M; ip += mr) {
          const int rows = int(std::min<int64_t>(mr, M - ip));
          c.kernels[rows - 1](kc, aBlock + ip * kc, bq, cq + ip * ldc, ldc, ncols, pc > 0);
        }
      }
    }
    if (ep) (*ep)(0, M, jc, nc, C + jc, ldc);
  }
}

}  // namespace anvil::cpu::tactics
