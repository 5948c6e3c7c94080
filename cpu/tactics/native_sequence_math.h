// Vector math shared by the native sequence kernels (AVX2 + FMA, 8 lanes; AVX-512F, 16
// lanes, the same formulas lane for lane): e^x, the logistic sigmoid and tanh, accurate to
// a few ulp (not bitwise std::exp). Callers are compiled for their ISA through the target
// attribute and dispatched by requirements.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace anvil::runtime::seq {

// e^x for 8 lanes: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial (relative
// error about 2 ulp), 2^n through the exponent bits. x is clamped so that 2^n stays a
// normal float: e^x saturates at about 2.2e38 above; below -87.3 (and at -inf) it is 0,
// and NaN stays NaN (a softmax row that is all -inf gives NaN, as std::exp's does).
__attribute__((target("avx2,fma"))) inline __m256 exp8(__m256 in) {
  const __m256 x = _mm256_min_ps(_mm256_max_ps(in, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln2 = 0.693359375 - 2.12194440e-4
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  const __m256 under = _mm256_cmp_ps(in, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
  const __m256 nan = _mm256_cmp_ps(in, in, _CMP_UNORD_Q);
  return _mm256_blendv_ps(_mm256_andnot_ps(under, y), in, nan);
}

__attribute__((target("avx2,fma"))) inline __m256 sigmoid8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

// tanh x = sign(x) (1 - e) / (1 + e), e = e^(-2|x|): no overflow, absolute error ~1e-7.
__attribute__((target("avx2,fma"))) inline __m256 tanh8(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 ax = _mm256_andnot_ps(sign, x);
  const __m256 e = exp8(_mm256_mul_ps(ax, _mm256_set1_ps(-2.0f)));
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 t = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
  return _mm256_or_ps(t, _mm256_and_ps(sign, x));
}

#define ANVIL_AVX512 __attribute__((target("avx512f")))

// exp8's formula on 16 lanes. (The full-mask forms of max, min, roundscale, cvt and
// shift: GCC 12's plain forms start from an undefined vector and warn at -O2.)
ANVIL_AVX512 inline __m512 exp16(__m512 in) {
  const __mmask16 all = 0xffff;
  const __m512 lo = _mm512_set1_ps(-87.3f), hi = _mm512_set1_ps(88.3f);
  __m512 x = _mm512_mask_max_ps(in, all, in, lo);
  x = _mm512_mask_min_ps(x, all, x, hi);
  const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
  const __m512 n = _mm512_mask_roundscale_ps(t, all, t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i bits = _mm512_add_epi32(_mm512_mask_cvtps_epi32(_mm512_setzero_si512(), all, n), _mm512_set1_epi32(127));
  const __m512i e = _mm512_mask_slli_epi32(bits, all, bits, 23);
  const __m512 y = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
  const __mmask16 under = _mm512_cmp_ps_mask(in, lo, _CMP_LT_OQ);
  const __mmask16 nan = _mm512_cmp_ps_mask(in, in, _CMP_UNORD_Q);
  return _mm512_mask_mov_ps(_mm512_maskz_mov_ps(__mmask16(~under), y), nan, in);
}

ANVIL_AVX512 inline __m512 sigmoid16(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

ANVIL_AVX512 inline __m512 tanh16(__m512 x) {
  const __m512i sign = _mm512_set1_epi32(int32_t(0x80000000u));
  const __m512 e = exp16(_mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(-2.0f)));
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 t = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
  return _mm512_castsi512_ps(
      _mm512_or_si512(_mm512_castps_si512(t), _mm512_and_si512(sign, _mm512_castps_si512(x))));
}

}  // namespace anvil::runtime::seq
