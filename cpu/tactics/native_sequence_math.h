// Vector math shared by the native sequence kernels (AVX2 + FMA, 8 lanes): e^x, the
// logistic sigmoid and tanh, accurate to a few ulp (not bitwise std::exp). Callers are
// compiled for avx2,fma through the target attribute and dispatched by requirements.
#pragma once

#include <immintrin.h>

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

}  // namespace anvil::runtime::seq
