// Vector forms (AVX2 + FMA, eight lanes) of the polynomial activations shared by the
// unary kernels (cpu/tactics/native_ops_approx.cpp, which also holds the scalar forms and
// states their accuracy) and the fused linear epilogue (cpu/tactics/fused_linear.cpp):
// one set of formulas, so an activation fused into a GEMM and the same activation as its
// own step give the same bits. Accuracy (tests/unit/vmath_range_test.cpp, every 257th float):
// tanh and erf within 3e-7 absolute, Gelu within 3e-7 of max(1, |y|). Callers compile
// these through the target attribute and dispatch on avx2 + fma. Divisions stay where they
// are (sigmoid, tanh, erf): a reciprocal from an integer seed and three Newton steps (7
// operations, the same bits on both widths) measured slower than vdivps on the dev box
// (sigmoid16 over 3136 x 96 floats: 0.124 against 0.104 ms).
#pragma once

#include <immintrin.h>

namespace anvil::cpu::vmath {

// Gelu(x) = x Phi(x) with Phi(-a) = q(a) = 2^-U(a), a = |x|: U(a) = 1 + a (c1 + a (c2 + ...
// + a c6)) fits -log2 Phi(-a) on [0, kGeluCut] (a weighted minimax fit: the error of x Phi
// may be 3e-7 of max(1, |y|), so U's error may grow as a q(a) shrinks), and 2^-U as 2^-n
// times 2^r, n = round(U), r = n - U in [-1/2, 1/2], by a degree-5 minimax polynomial
// (relative error 7e-8). Past the cut, q = 0: x Phi(-5.75) is 2.6e-8. Phi is then q for
// x < 0 and 1 - q otherwise. No division, no branch, no erf: 22 operations (AVX2; 23 with
// AVX-512's mask moves) against the erf form's 45 and a vdivps. Over 3136 x 384 floats on
// the dev box (one thread, in and out of memory): gelu16 0.38 ms against 1.05 with erf,
// gelu8 0.56 against 1.45. Over every 257th float the worst error is 0.48 of the bound (at
// x = 1.34, where y rounds at 1.2e-7 an ulp; the erf form: 0.47); simulated, the relative
// error stays under 4e-7 for |x| < 0.01.
// The scalar form (cpu/tactics/native_ops_approx.cpp) uses the same constants;
// scripts/fit_gelu.py derives them and simulates the float32 evaluation.
inline constexpr float kGeluU[6] = {1.15114272f, 0.458935916f, 0.0532028489f, -0.00794921722f, 0.000729592110f,
                                    -2.85472161e-05f};
inline constexpr float kExp2P[5] = {0.693146586f, 0.240221664f, 0.0555104725f, 0.00967495237f, 0.00132029818f};
inline constexpr float kGeluCut = 5.75f;

#define ANVIL_VMATH_AVX2 __attribute__((target("avx2,fma"))) inline

ANVIL_VMATH_AVX2 __m256 splat(float v) { return _mm256_set1_ps(v); }

// The range reduction of x, clamped to [ln(FLT_MIN), hi], to x = n ln2 + r: returns r, n in
// *n (as a float) and, where sum is given, n + 1.5 * 2^23, whose low bits are n as an
// integer. Neg: the reduction of -x from x, the negation folded into the clamp and the FMAs
// (each rounds the same exact value, so the same bits as passing -x; NaN clamps to the same
// bound), one operation less for sigmoid's e^-x.
template <bool Neg = false>
ANVIL_VMATH_AVX2 __m256 expReduce8(__m256 x, float hi, __m256* n, __m256* sum = nullptr) {
  if constexpr (Neg)
    x = _mm256_max_ps(_mm256_min_ps(x, splat(87.33654475f)), splat(-hi));
  else
    x = _mm256_min_ps(_mm256_max_ps(x, splat(-87.33654475f)), splat(hi));
  const __m256 magic = splat(12582912.f);  // 1.5 * 2^23: adding it rounds to an integer
  const __m256 m = _mm256_fmadd_ps(x, splat(Neg ? -1.44269504088896341f : 1.44269504088896341f), magic);
  if (sum) *sum = m;
  *n = _mm256_sub_ps(m, magic);
  // ln2 in two parts: n * hi is exact.
  const __m256 r = Neg ? _mm256_fnmsub_ps(*n, splat(0.693359375f), x) : _mm256_fnmadd_ps(*n, splat(0.693359375f), x);
  return _mm256_fnmadd_ps(*n, splat(-2.12194440e-4f), r);
}

// e^r's polynomial (Cephes) after expReduce8: returns the polynomial, n in *n. expCore8's.
ANVIL_VMATH_AVX2 __m256 expReduced8(__m256 x, float hi, __m256* n) {
  const __m256 r = expReduce8(x, hi, n);
  __m256 p = splat(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, splat(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, splat(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, splat(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, splat(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, splat(5.0000001201e-1f));
  return _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, splat(1.f)));
}

// e^x for x clamped to [ln(FLT_MIN), 88.72]; 2^n applied as two factors so that n = 128
// stays finite. NaN handling is the caller's.
ANVIL_VMATH_AVX2 __m256 expCore8(__m256 x) {
  __m256 n;
  const __m256 p = expReduced8(x, 88.72283935546875f, &n);
  const __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

// e^x for x clamped to [ln(FLT_MIN), 88], for the callers that add 1 to it (sigmoid's 1 +
// e^-x, tanh's e^2|x| + 1): expReduce8's range reduction (Neg: e^-x) with a shorter
// polynomial, kExpNarrowP's degree-5 fit of e^r on [-ln2/2, ln2/2] (a minimax fit, relative
// error 7e-8 against the Cephes form's 1e-8: 5 FMAs for 7 operations, then its coefficients
// moved by a few hundred ulp at most by a search for the least float32 error of sigmoid and
// SiLU over 2.6 million arguments in [-87, 20]), and 2^n added to p's
// exponent field as an integer (n << 23 from the rounding sum's bits: n + 1.5 * 2^23 has n
// in its low 9 bits, the rest shifted out) rather than multiplied: 17 operations, 9 of them
// FMA-class, against 20 and 11 (Zen 1 runs the FMA-class ones on two pipes, each ymm
// operation as two 128-bit halves). Exact where the result is normal; where it is not (e^x
// under 2^-126: n = -126 and p < 1) the field wraps into a wrong value under 2^-125, which
// 1 + e^x rounds away all the same. (The unused top: n <= 127 and p < 1.42 stay finite.)
// Over every float with |x| < 90, sigmoid within 9.3e-8 absolute and 3.54 ulp where it is
// normal (x > -87.3), SiLU x sigmoid(x) within 3.88 ulp (the Cephes form: 8.9e-8, 3.19 and
// 3.57 ulp); onnxruntime's (1.20) rational sigmoid is within 1.4e-7 absolute and not
// relatively accurate at all below -17.5 (it clamps). The tests hold sigmoid to 4 ulp and
// SiLU to 4.5 over every 257th float (tests/unit/vmath_range_test.cpp).
inline constexpr float kExpNarrowP[5] = {0.99999994f, 0.499991477f, 0.166670233f, 0.0418974049f, 0.00832712464f};

template <bool Neg = false>
ANVIL_VMATH_AVX2 __m256 expNarrow8(__m256 x) {
  __m256 n, sum;
  const __m256 r = expReduce8<Neg>(x, 88.f, &n, &sum);
  __m256 p = splat(kExpNarrowP[4]);
  p = _mm256_fmadd_ps(p, r, splat(kExpNarrowP[3]));
  p = _mm256_fmadd_ps(p, r, splat(kExpNarrowP[2]));
  p = _mm256_fmadd_ps(p, r, splat(kExpNarrowP[1]));
  p = _mm256_fmadd_ps(p, r, splat(kExpNarrowP[0]));
  p = _mm256_fmadd_ps(p, r, splat(1.f));
  return _mm256_castsi256_ps(
      _mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_castps_si256(sum), 23)));
}

ANVIL_VMATH_AVX2 __m256 signOf(__m256 x) { return _mm256_and_ps(x, splat(-0.f)); }
ANVIL_VMATH_AVX2 __m256 absOf(__m256 x) { return _mm256_andnot_ps(splat(-0.f), x); }

// 1 / (1 + e^-x): 19 operations (Zen 1, the SiLU epilogue over efficientnet_b0's blocks: 25
// with the plain reduction of -x and 2^n from a cvtps, 21 with the Cephes polynomial).
ANVIL_VMATH_AVX2 __m256 sigmoid8(__m256 x) {
  return _mm256_div_ps(splat(1.f), _mm256_add_ps(splat(1.f), expNarrow8<true>(x)));
}

// sigmoid8 on N vectors at once, in place: the same operations (the same bits), each step
// done for all N before the next. One sigmoid is a chain of ~20 dependent operations; one
// vector after another, a loop runs near the chain's latency on Zen 1 (its FP scheduler
// fills with one chain's waiting operations), four interleaved chains near the pipes'
// throughput: SiLU over 4096 floats in L1, 1.27 -> 1.03 ns a float (N 2: 1.17, N 8: 1.11).
template <int N>
ANVIL_VMATH_AVX2 __attribute__((always_inline)) void sigmoidLockstep8(__m256* v) {
  const __m256 magic = splat(12582912.f);
  __m256 x[N], sum[N], n[N], r[N], p[N];
  // expReduce8<true>(v, 88): the reduction of -v.
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) x[i] = _mm256_max_ps(_mm256_min_ps(v[i], splat(87.33654475f)), splat(-88.f));
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) sum[i] = _mm256_fmadd_ps(x[i], splat(-1.44269504088896341f), magic);
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) n[i] = _mm256_sub_ps(sum[i], magic);
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) r[i] = _mm256_fnmsub_ps(n[i], splat(0.693359375f), x[i]);
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) r[i] = _mm256_fnmadd_ps(n[i], splat(-2.12194440e-4f), r[i]);
  // expNarrow8's polynomial and exponent.
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) p[i] = _mm256_fmadd_ps(splat(kExpNarrowP[4]), r[i], splat(kExpNarrowP[3]));
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) p[i] = _mm256_fmadd_ps(p[i], r[i], splat(kExpNarrowP[2]));
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) p[i] = _mm256_fmadd_ps(p[i], r[i], splat(kExpNarrowP[1]));
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) p[i] = _mm256_fmadd_ps(p[i], r[i], splat(kExpNarrowP[0]));
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) p[i] = _mm256_fmadd_ps(p[i], r[i], splat(1.f));
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i)
    p[i] = _mm256_castsi256_ps(
        _mm256_add_epi32(_mm256_castps_si256(p[i]), _mm256_slli_epi32(_mm256_castps_si256(sum[i]), 23)));
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) v[i] = _mm256_div_ps(splat(1.f), _mm256_add_ps(splat(1.f), p[i]));
}

// Near 0 an odd polynomial keeps the relative accuracy (|x| < 0.625); beyond,
// sign(x) (1 - 2 / (e^2|x| + 1)).
ANVIL_VMATH_AVX2 __m256 tanh8(__m256 x) {
  const __m256 ax = absOf(x), z = _mm256_mul_ps(x, x);
  __m256 q = splat(-5.70498872745e-3f);
  q = _mm256_fmadd_ps(q, z, splat(2.06390887954e-2f));
  q = _mm256_fmadd_ps(q, z, splat(-5.37397155531e-2f));
  q = _mm256_fmadd_ps(q, z, splat(1.33314422036e-1f));
  q = _mm256_fmadd_ps(q, z, splat(-3.33332819422e-1f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(q, z), x, x);
  const __m256 e = expNarrow8(_mm256_add_ps(ax, ax));
  const __m256 big = _mm256_or_ps(
      _mm256_sub_ps(splat(1.f), _mm256_div_ps(splat(2.f), _mm256_add_ps(e, splat(1.f)))), signOf(x));
  return _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, splat(0.625f), _CMP_LT_OQ));
}

// erfc(|x|) = t exp(-x^2 + P(t)), t = 1 / (1 + |x| / 2) (fractional error under 1.2e-7);
// below 0.5, where 1 - erfc cancels, the odd Taylor series to x^13. The Erf op's only
// (Gelu has its own form above; the graph fuses the erf-GELU pattern into Gelu).
ANVIL_VMATH_AVX2 __m256 erf8(__m256 x) {
  const __m256 ax = absOf(x);
  const __m256 t = _mm256_div_ps(splat(1.f), _mm256_fmadd_ps(splat(0.5f), ax, splat(1.f)));
  __m256 p = splat(0.17087277f);
  p = _mm256_fmadd_ps(p, t, splat(-0.82215223f));
  p = _mm256_fmadd_ps(p, t, splat(1.48851587f));
  p = _mm256_fmadd_ps(p, t, splat(-1.13520398f));
  p = _mm256_fmadd_ps(p, t, splat(0.27886807f));
  p = _mm256_fmadd_ps(p, t, splat(-0.18628806f));
  p = _mm256_fmadd_ps(p, t, splat(0.09678418f));
  p = _mm256_fmadd_ps(p, t, splat(0.37409196f));
  p = _mm256_fmadd_ps(p, t, splat(1.00002368f));
  p = _mm256_fmadd_ps(p, t, splat(-1.26551223f));
  const __m256 erfc = _mm256_mul_ps(t, expCore8(_mm256_fnmadd_ps(ax, ax, p)));
  const __m256 big = _mm256_or_ps(_mm256_sub_ps(splat(1.f), erfc), signOf(x));
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 q = splat(0.00012055332981789664f);
  q = _mm256_fmadd_ps(q, z, splat(-0.00085483270234508565f));
  q = _mm256_fmadd_ps(q, z, splat(0.0052239776254421878f));
  q = _mm256_fmadd_ps(q, z, splat(-0.026866170645131252f));
  q = _mm256_fmadd_ps(q, z, splat(0.11283791670955126f));
  q = _mm256_fmadd_ps(q, z, splat(-0.37612638903183752f));
  q = _mm256_fmadd_ps(q, z, splat(1.1283791670955126f));
  const __m256 small = _mm256_mul_ps(x, q);
  return _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, splat(0.5f), _CMP_LT_OQ));
}

// x Phi(x), kGeluU above. Past the cut (and for NaN) the polynomials' values are garbage that
// the mask clears. NaN in, NaN out without keepNaN (x times 0 or 1; a signaling NaN comes
// out quiet), which callers skip: 2 of 24 operations.
ANVIL_VMATH_AVX2 __m256 gelu8(__m256 x) {
  const __m256 a = absOf(x), one = splat(1.f), magic = splat(12582912.f);  // 1.5 * 2^23
  __m256 u = splat(kGeluU[5]);
  u = _mm256_fmadd_ps(u, a, splat(kGeluU[4]));
  u = _mm256_fmadd_ps(u, a, splat(kGeluU[3]));
  u = _mm256_fmadd_ps(u, a, splat(kGeluU[2]));
  u = _mm256_fmadd_ps(u, a, splat(kGeluU[1]));
  u = _mm256_fmadd_ps(u, a, splat(kGeluU[0]));
  u = _mm256_fmadd_ps(u, a, one);
  const __m256 t = _mm256_add_ps(u, magic);  // its low bits hold n = round(u)
  const __m256 r = _mm256_sub_ps(_mm256_sub_ps(t, magic), u);
  __m256 p = splat(kExp2P[4]);
  p = _mm256_fmadd_ps(p, r, splat(kExp2P[3]));
  p = _mm256_fmadd_ps(p, r, splat(kExp2P[2]));
  p = _mm256_fmadd_ps(p, r, splat(kExp2P[1]));
  p = _mm256_fmadd_ps(p, r, splat(kExp2P[0]));
  p = _mm256_fmadd_ps(p, r, one);
  // p 2^-n: n (1..27 below the cut) off p's exponent; t << 23 is n << 23.
  const __m256i scaled = _mm256_sub_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_castps_si256(t), 23));
  const __m256 q = _mm256_and_ps(_mm256_castsi256_ps(scaled), _mm256_cmp_ps(a, splat(kGeluCut), _CMP_LT_OQ));
  return _mm256_mul_ps(x, _mm256_blendv_ps(_mm256_sub_ps(one, q), q, x));  // by x's sign bit
}

// 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).
ANVIL_VMATH_AVX2 __m256 geluTanh8(__m256 x) {
  const __m256 inner = _mm256_mul_ps(splat(0.79788456080286535588f),
                                     _mm256_fmadd_ps(_mm256_mul_ps(splat(0.044715f), _mm256_mul_ps(x, x)), x, x));
  return _mm256_mul_ps(_mm256_mul_ps(splat(0.5f), x), _mm256_add_ps(splat(1.f), tanh8(inner)));
}

// NaN in, NaN out (the clamps inside would turn it into a number).
ANVIL_VMATH_AVX2 __m256 keepNaN(__m256 y, __m256 x) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q)); }

#undef ANVIL_VMATH_AVX2

// ---- AVX-512F: the same formulas lane for lane on sixteen lanes (bitwise the AVX2 results:
// the same operations in the same order, FMAs included). The full-mask forms of max, min,
// cvt and shift: GCC 12's plain forms start from an undefined vector and warn at -O2.

#define ANVIL_VMATH_AVX512 __attribute__((target("avx512f"))) inline

ANVIL_VMATH_AVX512 __m512 splat16(float v) { return _mm512_set1_ps(v); }

// expReduce8 and expReduced8 on sixteen lanes.
template <bool Neg = false>
ANVIL_VMATH_AVX512 __m512 expReduce16(__m512 x, float hi, __m512* n, __m512* sum = nullptr) {
  const __mmask16 all = 0xffff;
  if constexpr (Neg) {
    x = _mm512_mask_min_ps(x, all, x, splat16(87.33654475f));
    x = _mm512_mask_max_ps(x, all, x, splat16(-hi));
  } else {
    x = _mm512_mask_max_ps(x, all, x, splat16(-87.33654475f));
    x = _mm512_mask_min_ps(x, all, x, splat16(hi));
  }
  const __m512 magic = splat16(12582912.f);
  const __m512 m = _mm512_fmadd_ps(x, splat16(Neg ? -1.44269504088896341f : 1.44269504088896341f), magic);
  if (sum) *sum = m;
  *n = _mm512_sub_ps(m, magic);
  const __m512 r =
      Neg ? _mm512_fnmsub_ps(*n, splat16(0.693359375f), x) : _mm512_fnmadd_ps(*n, splat16(0.693359375f), x);
  return _mm512_fnmadd_ps(*n, splat16(-2.12194440e-4f), r);
}

ANVIL_VMATH_AVX512 __m512 expReduced16(__m512 x, float hi, __m512* n) {
  const __m512 r = expReduce16(x, hi, n);
  __m512 p = splat16(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, splat16(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, splat16(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, splat16(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, splat16(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, splat16(5.0000001201e-1f));
  return _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, splat16(1.f)));
}

ANVIL_VMATH_AVX512 __m512 expCore16(__m512 x) {
  const __mmask16 all = 0xffff;
  __m512 n;
  const __m512 p = expReduced16(x, 88.72283935546875f, &n);
  const __m512i ni = _mm512_mask_cvtps_epi32(_mm512_setzero_si512(), all, n);
  const __m512i n1 = _mm512_mask_srai_epi32(ni, all, ni, 1), n2 = _mm512_sub_epi32(ni, n1);
  const __m512i bias = _mm512_set1_epi32(127);
  const __m512i e1 = _mm512_add_epi32(n1, bias), e2 = _mm512_add_epi32(n2, bias);
  const __m512 s1 = _mm512_castsi512_ps(_mm512_mask_slli_epi32(e1, all, e1, 23));
  const __m512 s2 = _mm512_castsi512_ps(_mm512_mask_slli_epi32(e2, all, e2, 23));
  return _mm512_mul_ps(_mm512_mul_ps(p, s1), s2);
}

template <bool Neg = false>
ANVIL_VMATH_AVX512 __m512 expNarrow16(__m512 x) {
  const __mmask16 all = 0xffff;
  __m512 n, sum;
  const __m512 r = expReduce16<Neg>(x, 88.f, &n, &sum);
  __m512 p = splat16(kExpNarrowP[4]);
  p = _mm512_fmadd_ps(p, r, splat16(kExpNarrowP[3]));
  p = _mm512_fmadd_ps(p, r, splat16(kExpNarrowP[2]));
  p = _mm512_fmadd_ps(p, r, splat16(kExpNarrowP[1]));
  p = _mm512_fmadd_ps(p, r, splat16(kExpNarrowP[0]));
  p = _mm512_fmadd_ps(p, r, splat16(1.f));
  const __m512i s = _mm512_castps_si512(sum);
  return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), _mm512_mask_slli_epi32(s, all, s, 23)));
}

ANVIL_VMATH_AVX512 __m512 signOf16(__m512 x) {
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(int32_t(0x80000000u))));
}
ANVIL_VMATH_AVX512 __m512 absOf16(__m512 x) {
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
}
ANVIL_VMATH_AVX512 __m512 orBits16(__m512 a, __m512 b) {
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)));
}

ANVIL_VMATH_AVX512 __m512 sigmoid16(__m512 x) {
  return _mm512_div_ps(splat16(1.f), _mm512_add_ps(splat16(1.f), expNarrow16<true>(x)));
}

ANVIL_VMATH_AVX512 __m512 tanh16(__m512 x) {
  const __m512 ax = absOf16(x), z = _mm512_mul_ps(x, x);
  __m512 q = splat16(-5.70498872745e-3f);
  q = _mm512_fmadd_ps(q, z, splat16(2.06390887954e-2f));
  q = _mm512_fmadd_ps(q, z, splat16(-5.37397155531e-2f));
  q = _mm512_fmadd_ps(q, z, splat16(1.33314422036e-1f));
  q = _mm512_fmadd_ps(q, z, splat16(-3.33332819422e-1f));
  const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(q, z), x, x);
  const __m512 e = expNarrow16(_mm512_add_ps(ax, ax));
  const __m512 big =
      orBits16(_mm512_sub_ps(splat16(1.f), _mm512_div_ps(splat16(2.f), _mm512_add_ps(e, splat16(1.f)))), signOf16(x));
  return _mm512_mask_mov_ps(big, _mm512_cmp_ps_mask(ax, splat16(0.625f), _CMP_LT_OQ), small);
}

ANVIL_VMATH_AVX512 __m512 erf16(__m512 x) {
  const __m512 ax = absOf16(x);
  const __m512 t = _mm512_div_ps(splat16(1.f), _mm512_fmadd_ps(splat16(0.5f), ax, splat16(1.f)));
  __m512 p = splat16(0.17087277f);
  p = _mm512_fmadd_ps(p, t, splat16(-0.82215223f));
  p = _mm512_fmadd_ps(p, t, splat16(1.48851587f));
  p = _mm512_fmadd_ps(p, t, splat16(-1.13520398f));
  p = _mm512_fmadd_ps(p, t, splat16(0.27886807f));
  p = _mm512_fmadd_ps(p, t, splat16(-0.18628806f));
  p = _mm512_fmadd_ps(p, t, splat16(0.09678418f));
  p = _mm512_fmadd_ps(p, t, splat16(0.37409196f));
  p = _mm512_fmadd_ps(p, t, splat16(1.00002368f));
  p = _mm512_fmadd_ps(p, t, splat16(-1.26551223f));
  const __m512 erfc = _mm512_mul_ps(t, expCore16(_mm512_fnmadd_ps(ax, ax, p)));
  const __m512 big = orBits16(_mm512_sub_ps(splat16(1.f), erfc), signOf16(x));
  const __m512 z = _mm512_mul_ps(x, x);
  __m512 q = splat16(0.00012055332981789664f);
  q = _mm512_fmadd_ps(q, z, splat16(-0.00085483270234508565f));
  q = _mm512_fmadd_ps(q, z, splat16(0.0052239776254421878f));
  q = _mm512_fmadd_ps(q, z, splat16(-0.026866170645131252f));
  q = _mm512_fmadd_ps(q, z, splat16(0.11283791670955126f));
  q = _mm512_fmadd_ps(q, z, splat16(-0.37612638903183752f));
  q = _mm512_fmadd_ps(q, z, splat16(1.1283791670955126f));
  const __m512 small = _mm512_mul_ps(x, q);
  return _mm512_mask_mov_ps(big, _mm512_cmp_ps_mask(ax, splat16(0.5f), _CMP_LT_OQ), small);
}

ANVIL_VMATH_AVX512 __m512 gelu16(__m512 x) {
  const __mmask16 all = 0xffff;
  const __m512 a = absOf16(x), one = splat16(1.f), magic = splat16(12582912.f);
  __m512 u = splat16(kGeluU[5]);
  u = _mm512_fmadd_ps(u, a, splat16(kGeluU[4]));
  u = _mm512_fmadd_ps(u, a, splat16(kGeluU[3]));
  u = _mm512_fmadd_ps(u, a, splat16(kGeluU[2]));
  u = _mm512_fmadd_ps(u, a, splat16(kGeluU[1]));
  u = _mm512_fmadd_ps(u, a, splat16(kGeluU[0]));
  u = _mm512_fmadd_ps(u, a, one);
  const __m512 t = _mm512_add_ps(u, magic);
  const __m512 r = _mm512_sub_ps(_mm512_sub_ps(t, magic), u);
  __m512 p = splat16(kExp2P[4]);
  p = _mm512_fmadd_ps(p, r, splat16(kExp2P[3]));
  p = _mm512_fmadd_ps(p, r, splat16(kExp2P[2]));
  p = _mm512_fmadd_ps(p, r, splat16(kExp2P[1]));
  p = _mm512_fmadd_ps(p, r, splat16(kExp2P[0]));
  p = _mm512_fmadd_ps(p, r, one);
  const __m512i ti = _mm512_castps_si512(t);
  const __m512i scaled = _mm512_sub_epi32(_mm512_castps_si512(p), _mm512_mask_slli_epi32(ti, all, ti, 23));
  const __m512 q = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a, splat16(kGeluCut), _CMP_LT_OQ), _mm512_castsi512_ps(scaled));
  const __mmask16 neg = _mm512_cmplt_epi32_mask(_mm512_castps_si512(x), _mm512_setzero_si512());  // the sign bit
  return _mm512_mul_ps(x, _mm512_mask_mov_ps(_mm512_sub_ps(one, q), neg, q));
}

ANVIL_VMATH_AVX512 __m512 geluTanh16(__m512 x) {
  const __m512 inner = _mm512_mul_ps(splat16(0.79788456080286535588f),
                                     _mm512_fmadd_ps(_mm512_mul_ps(splat16(0.044715f), _mm512_mul_ps(x, x)), x, x));
  return _mm512_mul_ps(_mm512_mul_ps(splat16(0.5f), x), _mm512_add_ps(splat16(1.f), tanh16(inner)));
}

ANVIL_VMATH_AVX512 __m512 keepNaN16(__m512 y, __m512 x) {
  return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

#undef ANVIL_VMATH_AVX512

}  // namespace anvil::cpu::vmath
