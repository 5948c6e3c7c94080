// One k step of the f32 register tiles (C[R x NR] += A column * B row), shared by the GEMM
// engine's micro-kernels (gemm.cpp) and the rows Conv kernels (native_conv_rows.cpp): R
// broadcasts of A (consecutive floats at a) times one B row of NR floats at b, each
// accumulator taking one FMA. B rows are f32 or, for the FP16 weights, IEEE half widened by
// vcvtph2ps, which is exact: the f16 kernels do the f32 kernels' FMAs on the same values in
// the same order. Include only from files compiled for x86-64.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace anvil::cpu::tactics {

// A B row segment as f32 (B panels are 64-byte aligned).
__attribute__((target("avx2"), always_inline)) inline __m256 loadB8(const float* p) { return _mm256_load_ps(p); }
__attribute__((target("avx2,f16c"), always_inline)) inline __m256 loadB8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
__attribute__((target("avx512f"), always_inline)) inline __m512 loadB16(const float* p) { return _mm512_load_ps(p); }
__attribute__((target("avx512f"), always_inline)) inline __m512 loadB16(const uint16_t* p) {
  // The masked form: GCC 12's _mm512_cvtph_ps passes an undefined vector that -Wall flags.
  return _mm512_maskz_cvtph_ps(__mmask16(0xffff), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// The AVX2 6x16 family's step: two 8-float halves of the B row.
template <int R, typename TB = float>
__attribute__((target("avx2,fma,f16c"), always_inline)) inline void stepAvx2_x16(__m256 (&c0)[R], __m256 (&c1)[R],
                                                                                const float* a, const TB* b) {
  const __m256 b0 = loadB8(b), b1 = loadB8(b + 8);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const __m256 av = _mm256_broadcast_ss(a + r);
    c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
    c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
  }
}

// The AVX-512 14x32 / 8x32 families' step: two 16-float halves of the B row.
template <int R, typename TB = float>
__attribute__((target("avx512f"), always_inline)) inline void stepAvx512_x32(__m512 (&c0)[R], __m512 (&c1)[R],
                                                                            const float* a, const TB* b) {
  const __m512 b0 = loadB16(b), b1 = loadB16(b + 16);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const __m512 av = _mm512_set1_ps(a[r]);
    c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
    c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
  }
}

}  // namespace anvil::cpu::tactics
