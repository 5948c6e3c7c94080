// The AVX-512 intrinsics emulated on an AVX2 host (scripts/avx512_emulated.sh): this file
// stands in front of the compiler's <immintrin.h> in that build only. The compiler's own
// intrinsics and types come first (AVX2, FMA and F16C run natively; __m512 stays the
// compiler's 64-byte vector type, which SIMDe adopts when it sees the compiler's AVX-512
// header); the AVX-512 function names then refer to SIMDe's portable versions (Debian's
// libsimde-dev), built from AVX2 halves. The script has turned every target("avx512...")
// into target("avx2,fma,f16c"), so no AVX-512 instruction is emitted and the kernels'
// AVX-512 paths run on this CPU.
#pragma once
#include_next <immintrin.h>

#define SIMDE_X86_AVX512F_ENABLE_NATIVE_ALIASES
#define SIMDE_X86_AVX512VL_ENABLE_NATIVE_ALIASES
#define SIMDE_X86_AVX512BW_ENABLE_NATIVE_ALIASES
#define SIMDE_X86_AVX512DQ_ENABLE_NATIVE_ALIASES
#define SIMDE_X86_AVX512CD_ENABLE_NATIVE_ALIASES
#define SIMDE_X86_AVX512VNNI_ENABLE_NATIVE_ALIASES
#define SIMDE_X86_AVX512BF16_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

// What SIMDe 0.7.4 lacks of the intrinsics anvil uses, element by element: masked loads
// and stores touch only the selected elements (the op tests' guard bytes see any stray
// access), and the reduction adds in the compiler's order (halves, then quarters, ...), so
// sums come out as the hardware's. rcp14 is the exact reciprocal (the hardware's is within
// 2^-14 of it): results that depend on rcp14's own bits differ from a real AVX-512 CPU's.
#include <cstdint>
#include <cstring>

#define ANVIL_EMU static inline __attribute__((always_inline))

namespace anvil_emu {
inline bool on(unsigned k, int i) { return (k >> i) & 1u; }
template <class V> V zero() { V v; std::memset(&v, 0, sizeof v); return v; }
// Lane i of n lanes of `bytes` each, copied from `from` to `to` where k selects it.
inline void lanes(void* to, const void* from, unsigned k, int n, int bytes = 4) {
  for (int i = 0; i < n; ++i)
    if (on(k, i)) std::memcpy(static_cast<char*>(to) + bytes * i, static_cast<const char*>(from) + bytes * i, size_t(bytes));
}
// Lane i of `v` from (gather) or to (scatter) base + idx[i] * scale, where k selects it.
inline void gather(void* v, const void* base, const void* idx, unsigned k, int scale) {
  int32_t ix[16];
  std::memcpy(ix, idx, 64);
  for (int i = 0; i < 16; ++i)
    if (on(k, i)) std::memcpy(static_cast<char*>(v) + 4 * i, static_cast<const char*>(base) + int64_t(ix[i]) * scale, 4);
}
// Lane i of N converted from From to To where k selects it, else zero (the maskz forms).
template <class To, class From, int N, class R, class A>
R convert(unsigned k, const A& a) {
  From x[N];
  To y[N];
  std::memcpy(x, &a, sizeof x);
  for (int i = 0; i < N; ++i) y[i] = on(k, i) ? To(x[i]) : To(0);
  R r = zero<R>();
  std::memcpy(&r, y, sizeof y);
  return r;
}
// Lane i (16 of 4 bytes) of `to` set to f(lane i of `from`, read as T) where k selects it.
template <class T, class F>
void map(void* to, const void* from, unsigned k, F f) {
  for (int i = 0; i < 16; ++i)
    if (on(k, i)) {
      T x;
      std::memcpy(&x, static_cast<const char*>(from) + 4 * i, 4);
      const auto y = f(x);
      static_assert(sizeof y == 4);
      std::memcpy(static_cast<char*>(to) + 4 * i, &y, 4);
    }
}
inline void scatter(void* base, const void* v, const void* idx, unsigned k, int scale) {
  int32_t ix[16];
  std::memcpy(ix, idx, 64);
  for (int i = 0; i < 16; ++i)
    if (on(k, i)) std::memcpy(static_cast<char*>(base) + int64_t(ix[i]) * scale, static_cast<const char*>(v) + 4 * i, 4);
}
}  // namespace anvil_emu

ANVIL_EMU __m512 anvil_emu_mm512_mask_loadu_ps(__m512 src, __mmask16 k, const void* p) {
  anvil_emu::lanes(&src, p, k, 16);
  return src;
}
ANVIL_EMU __m512 anvil_emu_mm512_maskz_loadu_ps(__mmask16 k, const void* p) {
  return anvil_emu_mm512_mask_loadu_ps(anvil_emu::zero<__m512>(), k, p);
}
ANVIL_EMU __m512i anvil_emu_mm512_mask_loadu_epi32(__m512i src, __mmask16 k, const void* p) {
  anvil_emu::lanes(&src, p, k, 16);
  return src;
}
ANVIL_EMU void anvil_emu_mm512_mask_storeu_ps(void* p, __mmask16 k, __m512 v) {
  anvil_emu::lanes(p, &v, k, 16);
}
ANVIL_EMU void anvil_emu_mm512_mask_storeu_epi32(void* p, __mmask16 k, __m512i v) {
  anvil_emu::lanes(p, &v, k, 16);
}
ANVIL_EMU __m256 anvil_emu_mm256_maskz_loadu_ps(__mmask8 k, const void* p) {
  __m256 r = _mm256_setzero_ps();
  anvil_emu::lanes(&r, p, k, 8);
  return r;
}
ANVIL_EMU void anvil_emu_mm256_mask_storeu_ps(void* p, __mmask8 k, __m256 v) {
  anvil_emu::lanes(p, &v, k, 8);
}
ANVIL_EMU __m128i anvil_emu_mm_mask_loadu_epi8(__m128i src, __mmask16 k, const void* p) {
  anvil_emu::lanes(&src, p, k, 16, 1);
  return src;
}
ANVIL_EMU __m128i anvil_emu_mm_maskz_loadu_epi8(__mmask16 k, const void* p) {
  return anvil_emu_mm_mask_loadu_epi8(_mm_setzero_si128(), k, p);
}
ANVIL_EMU void anvil_emu_mm512_mask_cvtepi32_storeu_epi8(void* p, __mmask16 k, __m512i v) {
  int32_t x[16];
  std::memcpy(x, &v, 64);
  for (int i = 0; i < 16; ++i)
    if (anvil_emu::on(k, i)) static_cast<int8_t*>(p)[i] = int8_t(x[i]);
}
ANVIL_EMU __mmask16 anvil_emu_mm512_cmplt_epi32_mask(__m512i a, __m512i b) {
  int32_t x[16], y[16];
  std::memcpy(x, &a, 64);
  std::memcpy(y, &b, 64);
  unsigned m = 0;
  for (int i = 0; i < 16; ++i) m |= unsigned(x[i] < y[i]) << i;
  return __mmask16(m);
}
ANVIL_EMU __m256 anvil_emu_mm512_cvtpd_ps(__m512d a) {
  return anvil_emu::convert<float, double, 8, __m256>(0xff, a);
}
ANVIL_EMU __m512d anvil_emu_mm512_maskz_cvtps_pd(__mmask8 k, __m256 a) {
  return anvil_emu::convert<double, float, 8, __m512d>(k, a);
}
ANVIL_EMU __m512d anvil_emu_mm512_cvtps_pd(__m256 a) { return anvil_emu_mm512_maskz_cvtps_pd(0xff, a); }
ANVIL_EMU __m512 anvil_emu_mm512_maskz_cvtph_ps(__mmask16 k, __m256i h) {
  __m512 r;
  const __m256 lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h)), hi = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
  std::memcpy(&r, &lo, 32);
  std::memcpy(reinterpret_cast<char*>(&r) + 32, &hi, 32);
  for (int i = 0; i < 16; ++i)
    if (!anvil_emu::on(k, i)) reinterpret_cast<float*>(&r)[i] = 0.0f;
  return r;
}
ANVIL_EMU __m512 anvil_emu_mm512_cvtph_ps(__m256i h) { return anvil_emu_mm512_maskz_cvtph_ps(0xffff, h); }
ANVIL_EMU __m512i anvil_emu_mm512_mask_cvtps_epi32(__m512i src, __mmask16 k, __m512 a) {
  // The current rounding mode (round to nearest even), as the instruction; out of range: INT_MIN.
  anvil_emu::map<float>(&src, &a, k, [](float x) { return int32_t(_mm_cvtsi128_si32(_mm_cvtps_epi32(_mm_set_ss(x)))); });
  return src;
}
ANVIL_EMU __m512i anvil_emu_mm512_maskz_cvtps_epi32(__mmask16 k, __m512 a) {
  return anvil_emu_mm512_mask_cvtps_epi32(anvil_emu::zero<__m512i>(), k, a);
}
ANVIL_EMU __m512 anvil_emu_mm512_maskz_cvtepi32_ps(__mmask16 k, __m512i a) {
  return anvil_emu::convert<float, int32_t, 16, __m512>(k, a);
}
ANVIL_EMU __m512i anvil_emu_mm512_maskz_cvtepu8_epi32(__mmask16 k, __m128i a) {
  return anvil_emu::convert<int32_t, uint8_t, 16, __m512i>(k, a);
}
ANVIL_EMU __m512i anvil_emu_mm512_mask_i32gather_epi32(__m512i src, __mmask16 k, __m512i idx, const void* base, int scale) {
  anvil_emu::gather(&src, base, &idx, k, scale);
  return src;
}
ANVIL_EMU __m512 anvil_emu_mm512_mask_i32gather_ps(__m512 src, __mmask16 k, __m512i idx, const void* base, int scale) {
  anvil_emu::gather(&src, base, &idx, k, scale);
  return src;
}
ANVIL_EMU void anvil_emu_mm512_mask_i32scatter_ps(void* base, __mmask16 k, __m512i idx, __m512 v, int scale) {
  anvil_emu::scatter(base, &v, &idx, k, scale);
}
ANVIL_EMU __m512 anvil_emu_mm512_mask_rcp14_ps(__m512 src, __mmask16 k, __m512 a) {
  anvil_emu::map<float>(&src, &a, k, [](float x) { return 1.0f / x; });
  return src;
}
ANVIL_EMU __m512i anvil_emu_mm512_mask_slli_epi32(__m512i src, __mmask16 k, __m512i a, unsigned n) {
  anvil_emu::map<uint32_t>(&src, &a, k, [n](uint32_t x) { return n > 31 ? 0u : x << n; });
  return src;
}
ANVIL_EMU __m512i anvil_emu_mm512_mask_srai_epi32(__m512i src, __mmask16 k, __m512i a, unsigned n) {
  anvil_emu::map<int32_t>(&src, &a, k, [n](int32_t x) { return x >> (n > 31 ? 31u : n); });
  return src;
}
ANVIL_EMU float anvil_emu_mm512_reduce_add_ps(__m512 a) {
  float x[16];
  std::memcpy(x, &a, 64);
  for (int w = 8; w >= 1; w /= 2)
    for (int i = 0; i < w; ++i) x[i] = x[i] + x[i + w];
  return x[0];
}
// vdpbf16ps as the SDM writes it (SIMDe adds the even pair's product first): per lane the
// odd pair's exact product added, then the even pair's, each sum rounded to nearest even;
// bf16 denormal inputs read as zero and denormal sums flushed to zero.
inline float anvil_emu_ftz(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0) u &= 0x80000000u;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float anvil_emu_bf16(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return anvil_emu_ftz(f);
}
ANVIL_EMU __m512 anvil_emu_mm512_dpbf16_ps(__m512 src, __m512bh a, __m512bh b) {
  float acc[16];
  uint16_t x[32], y[32];
  std::memcpy(acc, &src, 64);
  std::memcpy(x, &a, 64);
  std::memcpy(y, &b, 64);
  for (int i = 0; i < 16; ++i) {
    acc[i] = anvil_emu_ftz(acc[i] + anvil_emu_bf16(x[2 * i + 1]) * anvil_emu_bf16(y[2 * i + 1]));
    acc[i] = anvil_emu_ftz(acc[i] + anvil_emu_bf16(x[2 * i]) * anvil_emu_bf16(y[2 * i]));
  }
  std::memcpy(&src, acc, 64);
  return src;
}
ANVIL_EMU __m512 anvil_emu_mm512_undefined_ps() { return anvil_emu::zero<__m512>(); }
ANVIL_EMU __m512 anvil_emu_mm512_zextps128_ps512(__m128 a) {
  __m512 r = anvil_emu::zero<__m512>();
  std::memcpy(&r, &a, 16);
  return r;
}

#define _mm512_mask_loadu_ps anvil_emu_mm512_mask_loadu_ps
#define _mm512_maskz_loadu_ps anvil_emu_mm512_maskz_loadu_ps
#define _mm512_mask_loadu_epi32 anvil_emu_mm512_mask_loadu_epi32
#define _mm512_mask_storeu_ps anvil_emu_mm512_mask_storeu_ps
#define _mm512_mask_storeu_epi32 anvil_emu_mm512_mask_storeu_epi32
#define _mm256_maskz_loadu_ps anvil_emu_mm256_maskz_loadu_ps
#define _mm256_mask_storeu_ps anvil_emu_mm256_mask_storeu_ps
#define _mm_mask_loadu_epi8 anvil_emu_mm_mask_loadu_epi8
#define _mm_maskz_loadu_epi8 anvil_emu_mm_maskz_loadu_epi8
#define _mm512_mask_cvtepi32_storeu_epi8 anvil_emu_mm512_mask_cvtepi32_storeu_epi8
#define _mm512_cmplt_epi32_mask anvil_emu_mm512_cmplt_epi32_mask
#define _mm512_cvtpd_ps anvil_emu_mm512_cvtpd_ps
#define _mm512_cvtps_pd anvil_emu_mm512_cvtps_pd
#define _mm512_maskz_cvtps_pd anvil_emu_mm512_maskz_cvtps_pd
#define _mm512_cvtph_ps anvil_emu_mm512_cvtph_ps
#define _mm512_maskz_cvtph_ps anvil_emu_mm512_maskz_cvtph_ps
#define _mm512_mask_cvtps_epi32 anvil_emu_mm512_mask_cvtps_epi32
#define _mm512_maskz_cvtps_epi32 anvil_emu_mm512_maskz_cvtps_epi32
#define _mm512_maskz_cvtepi32_ps anvil_emu_mm512_maskz_cvtepi32_ps
#define _mm512_maskz_cvtepu8_epi32 anvil_emu_mm512_maskz_cvtepu8_epi32
#define _mm512_mask_i32gather_epi32 anvil_emu_mm512_mask_i32gather_epi32
#define _mm512_mask_i32gather_ps anvil_emu_mm512_mask_i32gather_ps
#define _mm512_mask_i32scatter_ps anvil_emu_mm512_mask_i32scatter_ps
#define _mm512_mask_rcp14_ps anvil_emu_mm512_mask_rcp14_ps
#define _mm512_mask_slli_epi32 anvil_emu_mm512_mask_slli_epi32
#define _mm512_mask_srai_epi32 anvil_emu_mm512_mask_srai_epi32
#define _mm512_reduce_add_ps anvil_emu_mm512_reduce_add_ps
#undef _mm512_dpbf16_ps
#define _mm512_dpbf16_ps anvil_emu_mm512_dpbf16_ps
#define _mm512_undefined_ps anvil_emu_mm512_undefined_ps
#define _mm512_zextps128_ps512 anvil_emu_mm512_zextps128_ps512

// SIMDe has these but declares no native-name alias for them (or anvil's own above replaces it).
#if !defined(_mm256_mask_i32gather_ps)
#define _mm256_mask_i32gather_ps simde_mm256_mask_i32gather_ps
#endif
#if !defined(_mm256_maskload_ps)
#define _mm256_maskload_ps simde_mm256_maskload_ps
#endif
#if !defined(_mm256_maskstore_epi32)
#define _mm256_maskstore_epi32 simde_mm256_maskstore_epi32
#endif
#if !defined(_mm256_maskstore_ps)
#define _mm256_maskstore_ps simde_mm256_maskstore_ps
#endif
#if !defined(_mm256_movemask_ps)
#define _mm256_movemask_ps simde_mm256_movemask_ps
#endif
#if !defined(_mm256_permute4x64_epi64)
#define _mm256_permute4x64_epi64 simde_mm256_permute4x64_epi64
#endif
#if !defined(_mm256_permutex2var_ps)
#define _mm256_permutex2var_ps simde_mm256_permutex2var_ps
#endif
#if !defined(_mm512_abs_ps)
#define _mm512_abs_ps simde_mm512_abs_ps
#endif
#if !defined(_mm512_add_epi32)
#define _mm512_add_epi32 simde_mm512_add_epi32
#endif
#if !defined(_mm512_add_pd)
#define _mm512_add_pd simde_mm512_add_pd
#endif
#if !defined(_mm512_add_ps)
#define _mm512_add_ps simde_mm512_add_ps
#endif
#if !defined(_mm512_and_si512)
#define _mm512_and_si512 simde_mm512_and_si512
#endif
#if !defined(_mm512_castpd256_pd512)
#define _mm512_castpd256_pd512 simde_mm512_castpd256_pd512
#endif
#if !defined(_mm512_castpd_ps)
#define _mm512_castpd_ps simde_mm512_castpd_ps
#endif
#if !defined(_mm512_castps128_ps512)
#define _mm512_castps128_ps512 simde_mm512_castps128_ps512
#endif
#if !defined(_mm512_castps512_ps128)
#define _mm512_castps512_ps128 simde_mm512_castps512_ps128
#endif
#if !defined(_mm512_castps_pd)
#define _mm512_castps_pd simde_mm512_castps_pd
#endif
#if !defined(_mm512_castps_si512)
#define _mm512_castps_si512 simde_mm512_castps_si512
#endif
#if !defined(_mm512_castsi512_ps)
#define _mm512_castsi512_ps simde_mm512_castsi512_ps
#endif
#if !defined(_mm512_cmp_ps_mask)
#define _mm512_cmp_ps_mask simde_mm512_cmp_ps_mask
#endif
#if !defined(_mm512_div_pd)
#define _mm512_div_pd simde_mm512_div_pd
#endif
#if !defined(_mm512_div_ps)
#define _mm512_div_ps simde_mm512_div_ps
#endif
#if !defined(_mm512_dpbf16_ps)
#define _mm512_dpbf16_ps simde_mm512_dpbf16_ps
#endif
#if !defined(_mm512_dpbusd_epi32)
#define _mm512_dpbusd_epi32 simde_mm512_dpbusd_epi32
#endif
#if !defined(_mm512_extractf32x4_ps)
#define _mm512_extractf32x4_ps simde_mm512_extractf32x4_ps
#endif
#if !defined(_mm512_fmadd_ps)
#define _mm512_fmadd_ps simde_mm512_fmadd_ps
#endif
#if !defined(_mm512_fnmadd_ps)
#define _mm512_fnmadd_ps simde_mm512_fnmadd_ps
#endif
#if !defined(_mm512_fnmsub_ps)
#define _mm512_fnmsub_ps simde_mm512_fnmsub_ps
#endif
#if !defined(_mm512_insertf32x4)
#define _mm512_insertf32x4 simde_mm512_insertf32x4
#endif
#if !defined(_mm512_insertf64x4)
#define _mm512_insertf64x4 simde_mm512_insertf64x4
#endif
#if !defined(_mm512_load_ps)
#define _mm512_load_ps simde_mm512_load_ps
#endif
#if !defined(_mm512_load_si512)
#define _mm512_load_si512 simde_mm512_load_si512
#endif
#if !defined(_mm512_loadu_ps)
#define _mm512_loadu_ps simde_mm512_loadu_ps
#endif
#if !defined(_mm512_loadu_si512)
#define _mm512_loadu_si512 simde_mm512_loadu_si512
#endif
#if !defined(_mm512_mask_blend_ps)
#define _mm512_mask_blend_ps simde_mm512_mask_blend_ps
#endif
#if !defined(_mm512_mask_extractf64x4_pd)
#define _mm512_mask_extractf64x4_pd simde_mm512_mask_extractf64x4_pd
#endif
#if !defined(_mm512_mask_max_ps)
#define _mm512_mask_max_ps simde_mm512_mask_max_ps
#endif
#if !defined(_mm512_mask_min_ps)
#define _mm512_mask_min_ps simde_mm512_mask_min_ps
#endif
#if !defined(_mm512_mask_mov_ps)
#define _mm512_mask_mov_ps simde_mm512_mask_mov_ps
#endif
#if !defined(_mm512_mask_or_epi32)
#define _mm512_mask_or_epi32 simde_mm512_mask_or_epi32
#endif
#if !defined(_mm512_mask_roundscale_ps)
#define _mm512_mask_roundscale_ps simde_mm512_mask_roundscale_ps
#endif
#if !defined(_mm512_mask_scalef_ps)
#define _mm512_mask_scalef_ps simde_mm512_mask_scalef_ps
#endif
#if !defined(_mm512_maskz_max_epi32)
#define _mm512_maskz_max_epi32 simde_mm512_maskz_max_epi32
#endif
#if !defined(_mm512_maskz_max_ps)
#define _mm512_maskz_max_ps simde_mm512_maskz_max_ps
#endif
#if !defined(_mm512_maskz_min_epi32)
#define _mm512_maskz_min_epi32 simde_mm512_maskz_min_epi32
#endif
#if !defined(_mm512_maskz_min_ps)
#define _mm512_maskz_min_ps simde_mm512_maskz_min_ps
#endif
#if !defined(_mm512_maskz_mov_ps)
#define _mm512_maskz_mov_ps simde_mm512_maskz_mov_ps
#endif
#if !defined(_mm512_maskz_scalef_ps)
#define _mm512_maskz_scalef_ps simde_mm512_maskz_scalef_ps
#endif
#if !defined(_mm512_maskz_set1_epi32)
#define _mm512_maskz_set1_epi32 simde_mm512_maskz_set1_epi32
#endif
#if !defined(_mm512_maskz_sll_epi32)
#define _mm512_maskz_sll_epi32 simde_mm512_maskz_sll_epi32
#endif
#if !defined(_mm512_max_ps)
#define _mm512_max_ps simde_mm512_max_ps
#endif
#if !defined(_mm512_min_ps)
#define _mm512_min_ps simde_mm512_min_ps
#endif
#if !defined(_mm512_mul_ps)
#define _mm512_mul_ps simde_mm512_mul_ps
#endif
#if !defined(_mm512_mullo_epi32)
#define _mm512_mullo_epi32 simde_mm512_mullo_epi32
#endif
#if !defined(_mm512_or_si512)
#define _mm512_or_si512 simde_mm512_or_si512
#endif
#if !defined(_mm512_permutex2var_ps)
#define _mm512_permutex2var_ps simde_mm512_permutex2var_ps
#endif
#if !defined(_mm512_set1_epi32)
#define _mm512_set1_epi32 simde_mm512_set1_epi32
#endif
#if !defined(_mm512_set1_pd)
#define _mm512_set1_pd simde_mm512_set1_pd
#endif
#if !defined(_mm512_set1_ps)
#define _mm512_set1_ps simde_mm512_set1_ps
#endif
#if !defined(_mm512_set_epi32)
#define _mm512_set_epi32 simde_mm512_set_epi32
#endif
#if !defined(_mm512_setr_epi32)
#define _mm512_setr_epi32 simde_mm512_setr_epi32
#endif
#if !defined(_mm512_setzero_pd)
#define _mm512_setzero_pd simde_mm512_setzero_pd
#endif
#if !defined(_mm512_setzero_ps)
#define _mm512_setzero_ps simde_mm512_setzero_ps
#endif
#if !defined(_mm512_setzero_si512)
#define _mm512_setzero_si512 simde_mm512_setzero_si512
#endif
#if !defined(_mm512_shuffle_f32x4)
#define _mm512_shuffle_f32x4 simde_mm512_shuffle_f32x4
#endif
#if !defined(_mm512_slli_epi32)
#define _mm512_slli_epi32 simde_mm512_slli_epi32
#endif
#if !defined(_mm512_srli_epi32)
#define _mm512_srli_epi32 simde_mm512_srli_epi32
#endif
#if !defined(_mm512_store_pd)
#define _mm512_store_pd simde_mm512_store_pd
#endif
#if !defined(_mm512_store_ps)
#define _mm512_store_ps simde_mm512_store_ps
#endif
#if !defined(_mm512_store_si512)
#define _mm512_store_si512 simde_mm512_store_si512
#endif
#if !defined(_mm512_storeu_ps)
#define _mm512_storeu_ps simde_mm512_storeu_ps
#endif
#if !defined(_mm512_storeu_si512)
#define _mm512_storeu_si512 simde_mm512_storeu_si512
#endif
#if !defined(_mm512_sub_epi32)
#define _mm512_sub_epi32 simde_mm512_sub_epi32
#endif
#if !defined(_mm512_sub_ps)
#define _mm512_sub_ps simde_mm512_sub_ps
#endif
#if !defined(_mm512_ternarylogic_epi32)
#define _mm512_ternarylogic_epi32 simde_mm512_ternarylogic_epi32
#endif
#if !defined(_mm512_test_epi32_mask)
#define _mm512_test_epi32_mask simde_mm512_test_epi32_mask
#endif
#if !defined(_mm512_unpackhi_pd)
#define _mm512_unpackhi_pd simde_mm512_unpackhi_pd
#endif
#if !defined(_mm512_unpackhi_ps)
#define _mm512_unpackhi_ps simde_mm512_unpackhi_ps
#endif
#if !defined(_mm512_unpacklo_pd)
#define _mm512_unpacklo_pd simde_mm512_unpacklo_pd
#endif
#if !defined(_mm512_unpacklo_ps)
#define _mm512_unpacklo_ps simde_mm512_unpacklo_ps
#endif
