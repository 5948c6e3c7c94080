// The epilogue of the native fused linear kernels (anvil.FusedConv / FusedGemm /
// FusedMatMul, ir/ops/anvil_linear.h) over one row of a finished output block: bias,
// residual Add and activation in one pass while the block is in cache. AVX2 for the
// piecewise-linear activations and Sigmoid/Silu (a vector exp), scalar code for Tanh and
// GELU and on CPUs without AVX2.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "cpu/tactics/native_linear_epilogue.h"
#include "runtime/kernel.h"

namespace anvil::cpu::tactics {

namespace {

using ir::linear::Activation;
using ir::linear::Epilogue;

// ---------------------------------------------------------------------------------------
// The epilogue over a row: y[j] = epilogue(y[j] + rowBias + bias[j]) with residual z[j]
// (rowBias: a conv's per-channel bias; bias: a MatMul's per-column bias, may be null).

// Scalar form, the reference kernel's formulas (f32 compute).
void rowScalar(const Epilogue& e, float* y, const float* z, const float* bias, float rowBias, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    float v = y[j] + rowBias;
    if (bias) v += bias[j];
    if (z && e.addFirst) v += z[j];
    v = ir::linear::activate<float>(e, v);
    if (z && !e.addFirst) v += z[j];
    y[j] = v;
  }
}

// exp(x) for 8 floats: range reduction by ln 2 and a degree-6 polynomial (Cephes expf),
// about 1 ulp; inputs are clamped to the finite range.
__attribute__((target("avx2,fma"))) inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i pow2 = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(pow2));
}

// Whether the AVX2 row handles this activation (the others go through rowScalar).
bool vectorized(Activation a) {
  return a == Activation::kNone || a == Activation::kRelu || a == Activation::kClip || a == Activation::kLeakyRelu ||
         a == Activation::kHardSigmoid || a == Activation::kHardSwish || a == Activation::kSigmoid ||
         a == Activation::kSilu;
}

template <Activation A>
__attribute__((target("avx2,fma"))) inline __m256 act8(__m256 v, __m256 p0, __m256 p1) {
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  if constexpr (A == Activation::kRelu) {
    // x < 0 ? 0 : x, NaN kept (max_ps returns its second operand when one is NaN).
    return _mm256_blendv_ps(v, zero, _mm256_cmp_ps(v, zero, _CMP_LT_OQ));
  } else if constexpr (A == Activation::kClip) {
    v = _mm256_blendv_ps(v, p0, _mm256_cmp_ps(v, p0, _CMP_LT_OQ));
    return _mm256_blendv_ps(v, p1, _mm256_cmp_ps(v, p1, _CMP_GT_OQ));
  } else if constexpr (A == Activation::kLeakyRelu) {
    return _mm256_blendv_ps(v, _mm256_mul_ps(v, p0), _mm256_cmp_ps(v, zero, _CMP_LT_OQ));
  } else if constexpr (A == Activation::kHardSigmoid) {
    return _mm256_max_ps(_mm256_min_ps(_mm256_fmadd_ps(p0, v, p1), one), zero);  // fmin/fmax NaN rules
  } else if constexpr (A == Activation::kHardSwish) {
    const __m256 h = _mm256_fmadd_ps(v, _mm256_set1_ps(1.0f / 6.0f), _mm256_set1_ps(0.5f));
    return _mm256_mul_ps(v, _mm256_max_ps(_mm256_min_ps(h, one), zero));
  } else if constexpr (A == Activation::kSigmoid || A == Activation::kSilu) {
    const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, v))));
    return A == Activation::kSilu ? _mm256_mul_ps(v, s) : s;
  } else {
    return v;
  }
}

template <Activation A>
__attribute__((target("avx2,fma"))) void rowAvx2(const Epilogue& e, float* y, const float* z, const float* bias,
                                                 float rowBias, int64_t n) {
  const __m256 p0 = _mm256_set1_ps(e.p0), p1 = _mm256_set1_ps(e.p1), rb = _mm256_set1_ps(rowBias);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 v = _mm256_add_ps(_mm256_loadu_ps(y + j), rb);
    if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + j));
    if (z && e.addFirst) v = _mm256_add_ps(v, _mm256_loadu_ps(z + j));
    v = act8<A>(v, p0, p1);
    if (z && !e.addFirst) v = _mm256_add_ps(v, _mm256_loadu_ps(z + j));
    _mm256_storeu_ps(y + j, v);
  }
  if (j < n) rowScalar(e, y + j, z ? z + j : nullptr, bias ? bias + j : nullptr, rowBias, n - j);
}

}  // namespace

EpilogueRow epilogueRow(const Epilogue& e) {
  static const bool kAvx2 = runtime::hostHas("avx2") && runtime::hostHas("fma");
  if (!kAvx2 || !vectorized(e.act)) return rowScalar;
  switch (e.act) {
    case Activation::kNone: return rowAvx2<Activation::kNone>;
    case Activation::kRelu: return rowAvx2<Activation::kRelu>;
    case Activation::kClip: return rowAvx2<Activation::kClip>;
    case Activation::kLeakyRelu: return rowAvx2<Activation::kLeakyRelu>;
    case Activation::kHardSigmoid: return rowAvx2<Activation::kHardSigmoid>;
    case Activation::kHardSwish: return rowAvx2<Activation::kHardSwish>;
    case Activation::kSigmoid: return rowAvx2<Activation::kSigmoid>;
    case Activation::kSilu: return rowAvx2<Activation::kSilu>;
    default: return rowScalar;
  }
}

}  // namespace anvil::cpu::tactics
