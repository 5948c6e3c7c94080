// The BF16 GEMM engine of cpu/tactics/gemm_bf16.h: the vdpbf16ps micro-kernel, the
// emulation through the f32 micro-kernels (operands rounded, each pair's K order swapped),
// the rounding packers (weights at prepare, activations per task) and the B-stationary
// (MatMul/Gemm) and A-stationary (Conv) drivers, scratch from the caller's workspace,
// threads from the caller's executor.
#include "cpu/tactics/gemm_bf16.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

namespace anvil::cpu::tactics {

namespace {

// ---------------------------------------------------------------------------------------
// Rounding, eight floats at a time: the rounded value's f32 bits (the bf16 in the high
// half), exactly bf16Bits (ties to even, NaN kept quiet).

__attribute__((target("avx2"), always_inline)) inline __m256i roundBits8(__m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
  const __m256i quiet = _mm256_or_si256(u, _mm256_set1_epi32(0x00400000));
  r = _mm256_blendv_epi8(r, quiet, _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)));
  return _mm256_and_si256(r, _mm256_set1_epi32(int32_t(0xffff0000u)));
}

__attribute__((target("avx2"), always_inline)) inline __m256 load8(const float* p, float alpha) {
  const __m256 v = _mm256_loadu_ps(p);
  return alpha == 1.0f ? v : _mm256_mul_ps(v, _mm256_set1_ps(alpha));
}

// The A rows [i0, i0 + rows) x [k0, k0 + kc) * alpha, rounded, into dst (row stride w):
// for the emulation, floats in the swapped pair order (w = kc rounded up to even, per pair
// the odd k, then the even one; a zero for the odd k past kc) ...
__attribute__((target("avx2"))) void roundRowsSwapped(StridedMatrix A, int64_t i0, int64_t rows, int64_t k0,
                                                      int64_t kc, float alpha, float* dst, int64_t w) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = A.p + (i0 + r) * A.rs + k0 * A.cs;
    float* d = dst + r * w;
    int64_t k = 0;
    if (A.cs == 1)
      for (; k + 8 <= kc; k += 8)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k),
                            _mm256_shuffle_epi32(roundBits8(load8(src + k, alpha)), 0xB1));
    for (; k < w; k += 2) {
      const float e = src[k * A.cs], o = k + 1 < kc ? src[(k + 1) * A.cs] : 0.0f;
      d[k] = bf16Round(alpha == 1.0f ? o : alpha * o);
      d[k + 1] = bf16Round(alpha == 1.0f ? e : alpha * e);
    }
  }
}

// ... or K pairs (w = kc / 2 rounded up).
__attribute__((target("avx2"))) void pairRows(StridedMatrix A, int64_t i0, int64_t rows, int64_t k0, int64_t kc,
                                              float alpha, uint32_t* dst, int64_t w) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = A.p + (i0 + r) * A.rs + k0 * A.cs;
    uint32_t* d = dst + r * w;
    int64_t k = 0;
    if (A.cs == 1) {
      // 16 floats -> 8 pairs: the bf16s to the low halves, packed to words (the two
      // sources interleave by 128-bit lane; the permute restores the order).
      for (; k + 16 <= kc; k += 16) {
        const __m256i lo = _mm256_srli_epi32(roundBits8(load8(src + k, alpha)), 16);
        const __m256i hi = _mm256_srli_epi32(roundBits8(load8(src + k + 8, alpha)), 16);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k / 2),
                            _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8));
      }
    }
    for (; k < kc; k += 2) {
      const float e = src[k * A.cs], o = k + 1 < kc ? src[(k + 1) * A.cs] : 0.0f;
      d[k / 2] = alpha == 1.0f ? bf16Pair(e, o) : bf16Pair(alpha * e, alpha * o);
    }
  }
}

// The emulation's B panels: pairs [kp x nr] (a prepared weight) widened to floats
// [2kp x nr], per pair the odd k's row, then the even k's.
__attribute__((target("avx2"))) void widenPairsSwapped(const uint32_t* src, int64_t kp, int nr, float* d) {
  const __m256i hiMask = _mm256_set1_epi32(int32_t(0xffff0000u));
  for (int64_t p = 0; p < kp; ++p, src += nr, d += 2 * nr)
    for (int j = 0; j < nr; j += 8) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + j));
      _mm256_store_si256(reinterpret_cast<__m256i*>(d + j), _mm256_and_si256(w, hiMask));
      _mm256_store_si256(reinterpret_cast<__m256i*>(d + nr + j), _mm256_slli_epi32(w, 16));
    }
}

// An f32 panel [kc x nr] (from a BPacker) rounded, in the swapped pair order [2kp x nr].
__attribute__((target("avx2"))) void roundPanelSwapped(const float* f, int64_t kc, int nr, float* d) {
  for (int64_t k = 0; k < kc; k += 2, d += 2 * nr) {
    const float* e = f + k * nr;
    for (int j = 0; j < nr; j += 8) {
      const __m256i ro = k + 1 < kc ? roundBits8(_mm256_loadu_ps(e + nr + j)) : _mm256_setzero_si256();
      _mm256_store_si256(reinterpret_cast<__m256i*>(d + j), ro);
      _mm256_store_si256(reinterpret_cast<__m256i*>(d + nr + j), roundBits8(_mm256_loadu_ps(e + j)));
    }
  }
}

// The vdpbf16ps family's panels (nr 32), sixteen floats at a time (the 3x3 Conv 64 -> 64
// at 56x56 rounds every im2col element once per 64 output channels: with eight floats at a
// time that cost about a fifth of the layer).
// The shifts below are the zero-masked forms with every lane kept (the same instruction):
// GCC 12's plain _mm512_s{l,r}li_epi32 pass an undefined vector through and warn.
__attribute__((target("avx512f"), always_inline)) inline __m512i roundBits16(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_maskz_srli_epi32(0xffff, u, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  // NaN: quieted instead (the rounding add could carry it into inf or the sign).
  return _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), u, _mm512_set1_epi32(0x00400000));
}

// The emulation's AVX-512 panels (nr 32): roundPanelSwapped sixteen floats at a time.
__attribute__((target("avx512f"))) void roundPanelSwapped32(const float* f, int64_t kc, float* d) {
  const __m512i hiMask = _mm512_set1_epi32(int32_t(0xffff0000u));
  for (int64_t k = 0; k < kc; k += 2, d += 64) {
    const float* e = f + k * 32;
#pragma GCC unroll 2
    for (int j = 0; j < 32; j += 16) {
      const __m512i ro = k + 1 < kc ? _mm512_and_si512(roundBits16(_mm512_loadu_ps(e + 32 + j)), hiMask)
                                    : _mm512_setzero_si512();
      _mm512_store_si512(d + j, ro);
      _mm512_store_si512(d + 32 + j, _mm512_and_si512(roundBits16(_mm512_loadu_ps(e + j)), hiMask));
    }
  }
}

__attribute__((target("avx512f"))) void pairPanel32(const float* f, int64_t kc, uint32_t* d) {
  const __m512i hiMask = _mm512_set1_epi32(int32_t(0xffff0000u));
  for (int64_t k = 0; k < kc; k += 2) {
    const float* e = f + k * 32;
    const bool odd = k + 1 < kc;
#pragma GCC unroll 2
    for (int j = 0; j < 32; j += 16) {
      const __m512i re = _mm512_maskz_srli_epi32(0xffff, roundBits16(_mm512_loadu_ps(e + j)), 16);
      const __m512i ro = odd ? roundBits16(_mm512_loadu_ps(e + 32 + j)) : _mm512_setzero_si512();
      // (ro & hiMask) | re
      _mm512_storeu_si512(d + j, _mm512_ternarylogic_epi32(ro, hiMask, re, 0xEA));
    }
    d += 32;
  }
}

// ---------------------------------------------------------------------------------------
// Micro-kernels

template <int MR, int R>
__attribute__((target("avx512f,avx512bf16"))) void ukBf16Avx512_x32(int64_t kp, const void* av,
                                                                    const uint32_t* __restrict b, float* c,
                                                                    int64_t ldc, int ncols, bool acc) {
  const int32_t* a = static_cast<const int32_t*>(av);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16), _MM_HINT_T0);
  }
  __m512 c0[R], c1[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kp; ++k) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b), b1 = (__m512bh)_mm512_loadu_si512(b + 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512bh x = (__m512bh)_mm512_set1_epi32(a[r]);
      c0[r] = _mm512_dpbf16_ps(c0[r], x, b0);
      c1[r] = _mm512_dpbf16_ps(c1[r], x, b1);
    }
    a += MR;
    b += 32;
  }
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

// The emulation for a few rows (M <= 4: batch-1 layers, bound by streaming the weights)
// straight from the prepared pairs: widening every panel for one row tile would double the
// work per weight byte (1x768x3072, AVX2: 15 GB/s of weights against 26-28 this way). Per
// pair the odd k's FMA, then the even k's, as the f32 kernels on the widened panels.
template <int MR, int R>
__attribute__((target("avx2,fma"))) void ukBf16FewAvx2_x16(int64_t kp, const void* av, const uint32_t* __restrict b,
                                                           float* c, int64_t ldc, int ncols, bool acc) {
  const float* a = static_cast<const float*>(av);
  const __m256i hiMask = _mm256_set1_epi32(int32_t(0xffff0000u));
  __m256 c0[R], c1[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kp; ++k) {
    const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 8));
    const __m256 o0 = _mm256_castsi256_ps(_mm256_and_si256(w0, hiMask));
    const __m256 o1 = _mm256_castsi256_ps(_mm256_and_si256(w1, hiMask));
    const __m256 e0 = _mm256_castsi256_ps(_mm256_slli_epi32(w0, 16));
    const __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256 xo = _mm256_broadcast_ss(a + r), xe = _mm256_broadcast_ss(a + MR + r);
      c0[r] = _mm256_fmadd_ps(xe, e0, _mm256_fmadd_ps(xo, o0, c0[r]));
      c1[r] = _mm256_fmadd_ps(xe, e1, _mm256_fmadd_ps(xo, o1, c1[r]));
    }
    a += 2 * MR;
    b += 16;
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mk0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(ncols), lane);
  const __m256i mk1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(ncols - 8), lane);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    if (acc) {
      c0[r] = _mm256_add_ps(_mm256_maskload_ps(cr, mk0), c0[r]);
      c1[r] = _mm256_add_ps(_mm256_maskload_ps(cr + 8, mk1), c1[r]);
    }
    _mm256_maskstore_ps(cr, mk0, c0[r]);
    _mm256_maskstore_ps(cr + 8, mk1, c1[r]);
  }
}

template <int MR, int R>
__attribute__((target("avx512f"))) void ukBf16FewAvx512_x32(int64_t kp, const void* av, const uint32_t* __restrict b,
                                                            float* c, int64_t ldc, int ncols, bool acc) {
  const float* a = static_cast<const float*>(av);
  const __m512i hiMask = _mm512_set1_epi32(int32_t(0xffff0000u));
  __m512 c0[R], c1[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kp; ++k) {
    const __m512i w0 = _mm512_loadu_si512(b), w1 = _mm512_loadu_si512(b + 16);
    const __m512 o0 = _mm512_castsi512_ps(_mm512_and_si512(w0, hiMask));
    const __m512 o1 = _mm512_castsi512_ps(_mm512_and_si512(w1, hiMask));
    const __m512 e0 = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, w0, 16));
    const __m512 e1 = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, w1, 16));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 xo = _mm512_set1_ps(a[r]), xe = _mm512_set1_ps(a[MR + r]);
      c0[r] = _mm512_fmadd_ps(xe, e0, _mm512_fmadd_ps(xo, o0, c0[r]));
      c1[r] = _mm512_fmadd_ps(xe, e1, _mm512_fmadd_ps(xo, o1, c1[r]));
    }
    a += 2 * MR;
    b += 32;
  }
  const __mmask16 m0 = ncols >= 16 ? __mmask16(0xffff) : __mmask16((1u << ncols) - 1);
  const __mmask16 m1 = ncols >= 32 ? __mmask16(0xffff) : ncols <= 16 ? __mmask16(0) : __mmask16((1u << (ncols - 16)) - 1);
#pragma GCC unroll 4
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

template <int MR, int... Rs>
constexpr std::array<Bf16Kernel, kBf16FewRows> fewAvx2Table(std::integer_sequence<int, Rs...>) {
  return {&ukBf16FewAvx2_x16<MR, Rs + 1>...};
}
template <int MR, int... Rs>
constexpr std::array<Bf16Kernel, kBf16FewRows> fewAvx512Table(std::integer_sequence<int, Rs...>) {
  return {&ukBf16FewAvx512_x32<MR, Rs + 1>...};
}

template <int MR, int... Rs>
constexpr std::array<Bf16Kernel, MR> avx512Bf16Table(std::integer_sequence<int, Rs...>) {
  return {&ukBf16Avx512_x32<MR, Rs + 1>...};
}

// The 4-byte units of one row of an A panel block of kc k.
int64_t aRowUnits(const Bf16Config& c, int64_t kc) { return ceilDiv(kc, 2) * c.aUnits; }

}  // namespace

// mc and nc as the f32 families of the same tiles (gemm.cpp): the A block in L2, the B
// panels (half the bytes of f32 ones per k) through L1.
const Bf16Config& bf16Config(Bf16Isa isa) {
  static const auto k512 = avx512Bf16Table<14>(std::make_integer_sequence<int, 14>{});
  static const Bf16Config kCfg512{14, 32, 224, 512, 1, GemmIsa::kAvx512_14x32, k512.data()};
  static const auto few2 = fewAvx2Table<6>(std::make_integer_sequence<int, kBf16FewRows>{});
  static const auto few512 = fewAvx512Table<14>(std::make_integer_sequence<int, kBf16FewRows>{});
  static const Bf16Config kCfg2{6, 16, 72, 512, 2, GemmIsa::kAvx2_6x16, nullptr, few2.data()};
  static const Bf16Config kCfg512e{14, 32, 224, 512, 2, GemmIsa::kAvx512_14x32, nullptr, few512.data()};
  switch (isa) {
    case Bf16Isa::kAvx512Bf16_14x32: return kCfg512;
    case Bf16Isa::kAvx512Emu_14x32: return kCfg512e;
    default: return kCfg2;
  }
}

void packBf16B(const Bf16Config& c, int64_t K, int64_t N, StridedMatrix B, uint32_t* dst) {
  const int nr = c.nr;
  const int64_t nPad = roundUp(N, nr);
  for (int64_t pc = 0, kb = bf16KBlock(K); pc < K; pc += kb) {
    const int64_t kc = std::min(kb, K - pc), kp = ceilDiv(kc, 2);
    for (int64_t q = 0; q * nr < N; ++q) {
      uint32_t* d = dst + (pc / 2) * nPad + q * kp * nr;
      for (int64_t i = 0; i < kp; ++i)
        for (int j = 0; j < nr; ++j) {
          const int64_t col = q * nr + j, k = pc + 2 * i;
          const float e = col < N ? B.at(k, col) : 0.0f;
          const float o = col < N && 2 * i + 1 < kc ? B.at(k + 1, col) : 0.0f;
          d[i * nr + j] = bf16Pair(e, o);
        }
    }
  }
}

void packBf16APairs(const Bf16Config& c, int64_t M, int64_t K, StridedMatrix A, uint32_t* dst) {
  const int mr = c.mr;
  const int64_t mPad = roundUp(M, mr);
  for (int64_t pc = 0, kb = bf16KBlock(K); pc < K; pc += kb) {
    const int64_t kc = std::min(kb, K - pc), kp = ceilDiv(kc, 2);
    for (int64_t i = 0; i * mr < M; ++i) {
      uint32_t* d = dst + (pc / 2) * mPad + i * mr * kp;
      for (int64_t p = 0; p < kp; ++p)
        for (int r = 0; r < mr; ++r) {
          const int64_t row = i * mr + r, k = pc + 2 * p;
          const float e = row < M ? A.at(row, k) : 0.0f;
          const float o = row < M && 2 * p + 1 < kc ? A.at(row, k + 1) : 0.0f;
          d[p * mr + r] = bf16Pair(e, o);
        }
    }
  }
}

void expandBf16APairs(const Bf16Config& c, const uint32_t* src, int64_t units, float* dst) {
  const int mr = c.mr;
  for (int64_t t = 0; t * mr < units; ++t)
    for (int r = 0; r < mr; ++r) {
      const uint32_t d = src[t * mr + r];
      dst[2 * t * mr + r] = bf16ToFloat(uint16_t(d >> 16));
      dst[2 * t * mr + mr + r] = bf16ToFloat(uint16_t(d));
    }
}

int64_t gemmBf16PackedBSlotFloats(const Bf16Config& c, int64_t K) {
  const int64_t u = aRowUnits(c, std::max<int64_t>(2, bf16KBlock(K)));
  // The A panels, the rounded rows, and for the emulation one widened B panel.
  return roundUp(roundUp(c.mc, c.mr) * u, 16) + roundUp(c.mc * u, 16) + (c.kernels ? 0 : roundUp(u * c.nr, 16));
}

void gemmBf16PackedB(const Bf16Config& c, int64_t M, int64_t N, int64_t K, float alpha, StridedMatrix A,
                     const uint32_t* Bp, float* C, int64_t ldc, runtime::Executor* ex, const TaskSlots& slots,
                     const BlockEpilogue* ep) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
    if (ep) (*ep)(0, M, 0, N, C, ldc);
    return;
  }
  const int mr = c.mr, nr = c.nr;
  const GemmConfig& packer = gemmConfig(c.packer);
  const int64_t panels = ceilDiv(N, nr), nPad = panels * nr;
  const int64_t T = std::max(1, slots.tasks);
  // Items as gemmPackedB's: M blocks (even tiles per block) x N ranges, about four per task.
  const int64_t tilesM = ceilDiv(M, mr), mBlocks = std::min(tilesM, ceilDiv(M, c.mc));
  const int64_t nSplit = T == 1 ? 1 : std::max<int64_t>(1, std::min(panels, ceilDiv(4 * T, mBlocks)));
  const int64_t items = mBlocks * nSplit, tasks = std::min(T, items);
  const int64_t kb = bf16KBlock(K), panelFloats = roundUp(roundUp(c.mc, mr) * aRowUnits(c, std::max<int64_t>(2, kb)), 16);
  const MicroKernel* f32 = gemmConfig(c.packer).kernels;
  auto task = [&](int64_t t) {
    float* ap = slots.slot(t);
    float* rows = ap + panelFloats;
    float* wide = rows + roundUp(c.mc * aRowUnits(c, std::max<int64_t>(2, kb)), 16);
    for (int64_t item = rangeBegin(items, t, tasks), end = rangeBegin(items, t + 1, tasks); item < end;) {
      const GemmItemRun run = gemmItemRun(item, end, nSplit, panels);  // A rounded and packed once a run
      item = run.next;
      const int64_t mb = run.mb, q0 = run.q0, q1 = run.q1;
      const int64_t ic = rangeBegin(tilesM, mb, mBlocks) * mr;
      const int64_t mc = std::min(M, rangeBegin(tilesM, mb + 1, mBlocks) * mr) - ic;
      if (q0 >= q1) continue;
      for (int64_t pc = 0; pc < K; pc += kb) {
        const int64_t kc = std::min(kb, K - pc), kp = ceilDiv(kc, 2), u = aRowUnits(c, kc);
        // Round this block of A into rows of u units, then lay the units out as panels
        // with the f32 packer (alpha 1: it only moves the 4-byte units).
        if (c.aUnits == 1)
          pairRows(A, ic, mc, pc, kc, alpha, reinterpret_cast<uint32_t*>(rows), u);
        else
          roundRowsSwapped(A, ic, mc, pc, kc, alpha, rows, u);
        packAPanels(packer, mc, u, {rows, u, 1}, 1.0f, 0, ceilDiv(mc, mr), ap);
        const uint32_t* bBlock = Bp + (pc / 2) * nPad;
        for (int64_t q = q0; q < q1; ++q) {
          const int ncols = int(std::min<int64_t>(nr, N - q * nr));
          float* cq = C + ic * ldc + q * nr;
          if (!c.kernels && mc <= kBf16FewRows) {  // the emulation for a few rows: pairs read directly
            c.few[mc - 1](kp, ap, bBlock + q * kp * nr, cq, ldc, ncols, pc > 0);
            continue;
          }
          if (!c.kernels) {  // the emulation: the f32 kernels over 2kp swapped-order k
            widenPairsSwapped(bBlock + q * kp * nr, kp, nr, wide);
            for (int64_t ip = 0; ip < mc; ip += mr) {
              const int r = int(std::min<int64_t>(mr, mc - ip));
              f32[r - 1](2 * kp, ap + ip * u, wide, cq + ip * ldc, ldc, ncols, pc > 0);
            }
            continue;
          }
          for (int64_t ip = 0; ip < mc; ip += mr) {
            const int r = int(std::min<int64_t>(mr, mc - ip));
            c.kernels[r - 1](kp, ap + ip * u, bBlock + q * kp * nr, cq + ip * ldc, ldc, ncols, pc > 0);
          }
        }
      }
      if (ep) (*ep)(ic, mc, q0 * nr, std::min(N, q1 * nr) - q0 * nr, C + ic * ldc + q0 * nr, ldc);
    }
  };
  if (ex && tasks > 1)
    ex->parallelFor(tasks, task);
  else
    for (int64_t t = 0; t < tasks; ++t) task(t);
}

// The packer's f32 block, the block in the kernel's form (pairs, or the emulation's
// rounded floats: up to 256 k), the packer's scratch.
void Bf16SwappedPacker::pack(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst, float* scratch) const {
  const int64_t real = std::min(kc, K_ - k0);  // kc, or kc - 1 in a last block over an odd K
  float* f = scratch;
  inner_.pack(k0, real, j0, nc, nr, f, scratch + roundUp(kc * roundUp(nc, nr), 16));
  for (int64_t q = 0; q * nr < nc; ++q) {
    if (nr == 32)
      roundPanelSwapped32(f + q * real * nr, real, dst + q * kc * nr);
    else
      roundPanelSwapped(f + q * real * nr, real, nr, dst + q * kc * nr);
  }
}

int64_t gemmBf16PackedASlotFloats(const Bf16Config& c, int64_t scratchFloats) {
  return 2 * roundUp(256 * c.nc, 16) + roundUp(scratchFloats, 16);
}

void gemmBf16PackedA(const Bf16Config& c, int64_t M, int64_t K, const void* Ap, const BPacker& B, int64_t j0,
                     int64_t j1, float* C, int64_t ldc, float* slot, const BlockEpilogue* ep) {
  if (M <= 0 || j1 <= j0) return;
  if (K <= 0) {
    for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc + j0, C + i * ldc + j1, 0.0f);
    if (ep) (*ep)(0, M, j0, j1 - j0, C + j0, ldc);
    return;
  }
  const int mr = c.mr, nr = c.nr;
  const int64_t mPad = roundUp(M, mr);
  float* fb = slot;
  float* pb = slot + roundUp(256 * c.nc, 16);
  float* scratch = slot + 2 * roundUp(256 * c.nc, 16);
  const MicroKernel* f32 = gemmConfig(c.packer).kernels;
  const auto* a = static_cast<const uint32_t*>(Ap);
  for (int64_t jc = j0; jc < j1; jc += c.nc) {
    const int64_t nc = std::min(c.nc, j1 - jc), panels = ceilDiv(nc, nr);
    for (int64_t pc = 0, kb = bf16KBlock(K); pc < K; pc += kb) {
      const int64_t kc = std::min(kb, K - pc), kp = ceilDiv(kc, 2);
      B.pack(pc, kc, jc, nc, nr, fb, scratch);
      const uint32_t* aBlock = a + (pc / 2) * mPad * c.aUnits;
      const int64_t u = kp * c.aUnits;  // 4-byte units per row (A) and column (B) of the block
      for (int64_t q = 0; q < panels; ++q) {
        if (c.kernels)
          pairPanel32(fb + q * kc * nr, kc, reinterpret_cast<uint32_t*>(pb) + q * u * nr);
        else if (nr == 32)
          roundPanelSwapped32(fb + q * kc * nr, kc, pb + q * u * nr);
        else
          roundPanelSwapped(fb + q * kc * nr, kc, nr, pb + q * u * nr);
      }
      for (int64_t q = 0; q < panels; ++q) {
        const int ncols = int(std::min<int64_t>(nr, nc - q * nr));
        for (int64_t ip = 0; ip < M; ip += mr) {
          const int r = int(std::min<int64_t>(mr, M - ip));
          float* cq = C + ip * ldc + jc + q * nr;
          if (c.kernels)
            c.kernels[r - 1](kp, aBlock + ip * u, reinterpret_cast<const uint32_t*>(pb) + q * u * nr, cq, ldc, ncols,
                             pc > 0);
          else
            f32[r - 1](2 * kp, reinterpret_cast<const float*>(aBlock + ip * u), pb + q * u * nr, cq, ldc, ncols,
                       pc > 0);
        }
      }
    }
    if (ep) (*ep)(0, M, jc, nc, C + jc, ldc);
  }
}

}  // namespace anvil::cpu::tactics
