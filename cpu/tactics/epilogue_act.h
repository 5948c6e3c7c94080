// The fused linear epilogue on one vector: (v + rowBias) [+ colBias] [+ z] act [+ z], eight
// lanes (AVX2 + FMA) or sixteen (AVX-512F). One definition for the epilogue rows of
// cpu/tactics/fused_linear.cpp (a pass over a finished block) and the GEMM tile kernels of
// cpu/tactics/gemm.cpp (in registers before the store), so that both give the same bits;
// the transcendental activations are cpu/tactics/vmath.h's, whose eight- and sixteen-lane
// forms agree bit for bit.
#pragma once

#include <immintrin.h>

#include "cpu/tactics/vmath.h"

namespace anvil::cpu::tactics::epi {

// The activations, numbered as ir::linear::Activation (checked in fused_linear.cpp).
enum Act : int {
  kNone = 0,
  kRelu = 1,
  kClip = 2,
  kSigmoid = 3,
  kTanh = 4,
  kLeakyRelu = 5,
  kHardSigmoid = 6,
  kHardSwish = 7,
  kSilu = 8,
  kGelu = 9,
  kGeluTanh = 10,
  kActs = 11,
};

// The ones that cost a polynomial: tile kernels spill their accumulators and loop over the
// rows for these rather than unroll a copy per row (code size; the spill is noise next to
// the polynomial).
constexpr bool transcendental(int a) {
  return a == kSigmoid || a == kTanh || a == kSilu || a == kGelu || a == kGeluTanh;
}

// p0, p1: Clip's bounds, LeakyRelu's alpha (p0), HardSigmoid's alpha and beta.
template <int A>
__attribute__((target("avx2,fma"), always_inline)) inline __m256 act8(__m256 v, __m256 p0, __m256 p1) {
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  // Relu and Clip as max / min with v second: the instruction returns its second operand
  // when either is NaN or both are zeros, so NaN and -0.0 pass as the compare-and-blend
  // form passed them (the same bits), in two uops less per vector than cmp + blendv
  // (2 + 2 on Zen 1's 128-bit halves): mobilenet_v2's ReLU6 tile epilogues.
  if constexpr (A == kRelu) {
    return _mm256_max_ps(zero, v);
  } else if constexpr (A == kClip) {
    return _mm256_min_ps(p1, _mm256_max_ps(p0, v));
  } else if constexpr (A == kLeakyRelu) {
    return _mm256_blendv_ps(v, _mm256_mul_ps(v, p0), _mm256_cmp_ps(v, zero, _CMP_LT_OQ));
  } else if constexpr (A == kHardSigmoid) {
    return _mm256_max_ps(_mm256_min_ps(_mm256_fmadd_ps(p0, v, p1), one), zero);  // fmin/fmax NaN rules
  } else if constexpr (A == kHardSwish) {
    const __m256 h = _mm256_fmadd_ps(v, _mm256_set1_ps(1.0f / 6.0f), _mm256_set1_ps(0.5f));
    return _mm256_mul_ps(v, _mm256_max_ps(_mm256_min_ps(h, one), zero));
  } else if constexpr (A == kSigmoid) {
    return vmath::keepNaN(vmath::sigmoid8(v), v);
  } else if constexpr (A == kSilu) {
    // NaN stays NaN by itself (v times a number; a signaling NaN comes out quiet), as GELU:
    // no keepNaN, 2 of 22 operations.
    return _mm256_mul_ps(v, vmath::sigmoid8(v));
  } else if constexpr (A == kTanh) {
    return vmath::keepNaN(vmath::tanh8(v), v);
  } else if constexpr (A == kGelu) {
    return vmath::gelu8(v);  // NaN stays NaN by itself
  } else if constexpr (A == kGeluTanh) {
    return vmath::keepNaN(vmath::geluTanh8(v), v);
  } else {
    static_assert(A == kNone);
    return v;
  }
}

// The same operations lane for lane on sixteen lanes (blends through masks).
template <int A>
__attribute__((target("avx512f"), always_inline)) inline __m512 act16(__m512 v, __m512 p0, __m512 p1) {
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
  if constexpr (A == kRelu) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), v, zero);
  } else if constexpr (A == kClip) {
    v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, p0, _CMP_LT_OQ), v, p0);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, p1, _CMP_GT_OQ), v, p1);
  } else if constexpr (A == kLeakyRelu) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), v, _mm512_mul_ps(v, p0));
  } else if constexpr (A == kHardSigmoid || A == kHardSwish) {
    // The full-mask forms of min and max (vminps/vmaxps, the AVX2 NaN rules): GCC 12's plain
    // ones start from an undefined vector and warn at -O2.
    const __mmask16 all = 0xffff;
    const __m512 h = A == kHardSigmoid ? _mm512_fmadd_ps(p0, v, p1)
                                       : _mm512_fmadd_ps(v, _mm512_set1_ps(1.0f / 6.0f), _mm512_set1_ps(0.5f));
    const __m512 lo = _mm512_mask_min_ps(h, all, h, one);
    const __m512 s = _mm512_mask_max_ps(lo, all, lo, zero);
    return A == kHardSigmoid ? s : _mm512_mul_ps(v, s);
  } else if constexpr (A == kSigmoid) {
    return vmath::keepNaN16(vmath::sigmoid16(v), v);
  } else if constexpr (A == kSilu) {
    return _mm512_mul_ps(v, vmath::sigmoid16(v));
  } else if constexpr (A == kTanh) {
    return vmath::keepNaN16(vmath::tanh16(v), v);
  } else if constexpr (A == kGelu) {
    return vmath::gelu16(v);
  } else if constexpr (A == kGeluTanh) {
    return vmath::keepNaN16(vmath::geluTanh16(v), v);
  } else {
    static_assert(A == kNone);
    return v;
  }
}

// The residual around the activation: added before it (addFirst) or after.
template <int A>
__attribute__((target("avx2,fma"), always_inline)) inline __m256 finish8(__m256 v, const __m256* z, bool addFirst,
                                                                         __m256 p0, __m256 p1) {
  if (z && addFirst) v = _mm256_add_ps(v, *z);
  v = act8<A>(v, p0, p1);
  if (z && !addFirst) v = _mm256_add_ps(v, *z);
  return v;
}

template <int A>
__attribute__((target("avx512f"), always_inline)) inline __m512 finish16(__m512 v, const __m512* z, bool addFirst,
                                                                         __m512 p0, __m512 p1) {
  if (z && addFirst) v = _mm512_add_ps(v, *z);
  v = act16<A>(v, p0, p1);
  if (z && !addFirst) v = _mm512_add_ps(v, *z);
  return v;
}

}  // namespace anvil::cpu::tactics::epi
