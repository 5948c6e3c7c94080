// f32 approximations of the transcendental activations: Exp, Sigmoid, Tanh, Erf and Gelu
// (both forms). The exact kernels (f32_unary) call libm per element at the reference's
// speed; these evaluate branch-free polynomials: a portable scalar build and an AVX2+FMA
// build, eight lanes at a time, picked by the builder's timing. (GCC 12 does not
// if-convert the clamps and selects of the scalar code, so the AVX2 one is intrinsics.)
// Accuracy against a double-precision evaluation, checked over every 257th float bit
// pattern (tests/unit/vmath_range_test.cpp): exp within 3 ulp where the result is normal
// and within 2^-126 where it is not (Cephes polynomial after a two-part ln2 reduction);
// sigmoid, tanh and erf within 3e-7 absolute (sigmoid also within 4 ulp where it is normal:
// cpu/tactics/vmath.h's expNarrow8); Gelu within 3e-7 of max(1, |y|) (x Phi(x) with
// Phi's tail as 2^-polynomial, no erf: see cpu/tactics/vmath.h).
#include <immintrin.h>

#include <bit>
#include <cmath>
#include <limits>

#include "cpu/tactics/native_ops_util.h"
#include "cpu/tactics/vmath.h"

namespace anvil::runtime::nops {

namespace {

#define ANVIL_AI inline __attribute__((always_inline))

enum class Fn : int32_t { kExp, kSigmoid, kTanh, kErf, kGelu, kGeluTanh };

struct ApproxParams {
  Fn fn;
};

// e^x for x in [ln(FLT_MIN) = -87.3365, 88.72] (clamped: below, e^x is under the least normal float, and
// staying normal keeps denormal arithmetic, ~100x slower, out of every caller; above, it
// overflows); NaN stays NaN. 2^n is applied as two factors 2^(n/2) 2^(n-n/2) so that the
// top binade (n = 128) comes out right.
ANVIL_AI float expCore(float x) {
  x = std::min(std::max(x, -87.33654475f), 88.72283935546875f);
  const float t = x * 1.44269504088896341f + 12582912.f;  // 1.5 * 2^23: rounds to an integer
  const float n = t - 12582912.f;
  float r = x - n * 0.693359375f;  // ln2 in two parts: n * hi is exact
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const int32_t ni = int32_t(n), n1 = ni >> 1, n2 = ni - n1;
  return p * std::bit_cast<float>((n1 + 127) << 23) * std::bit_cast<float>((n2 + 127) << 23);
}

ANVIL_AI float expApprox(float x) {
  const float y = expCore(x);
  // Past the clamp: overflow to inf and underflow to 0 as libm does (between, results
  // under 2^-126 are within 2^-126 of libm's denormals).
  return x > 88.72283935546875f ? std::numeric_limits<float>::infinity() : (x < -103.972084f ? 0.f : y);
}

ANVIL_AI float sigmoidApprox(float x) { return 1.f / (1.f + expCore(-x)); }

ANVIL_AI float tanhApprox(float x) {
  const float ax = std::fabs(x);
  const float z = x * x;
  // Near 0 an odd polynomial keeps the relative accuracy (Cephes tanhf, |x| < 0.625).
  const float small =
      ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
       3.33332819422e-1f) * z * x + x;
  const float big = std::copysign(1.f - 2.f / (expCore(2.f * ax) + 1.f), x);
  return ax < 0.625f ? small : big;
}

ANVIL_AI float erfApprox(float x) {
  // erfc(|x|) = t exp(-x^2 + P(t)), t = 1 / (1 + |x| / 2): a Chebyshev fit with fractional
  // error below 1.2e-7 everywhere.
  const float ax = std::fabs(x);
  const float t = 1.f / (1.f + 0.5f * ax);
  const float p =
      -1.26551223f +
      t * (1.00002368f +
           t * (0.37409196f +
                t * (0.09678418f +
                     t * (-0.18628806f +
                          t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
  const float erfc = t * expCore(p - ax * ax);
  // Below 0.5, 1 - erfc cancels: the odd Taylor series (to x^13, truncation under 1e-9
  // there) keeps the relative accuracy near 0.
  const float z = x * x;
  const float small = x * (1.1283791670955126f +
                           z * (-0.37612638903183752f +
                                z * (0.11283791670955126f +
                                     z * (-0.026866170645131252f +
                                          z * (0.0052239776254421878f +
                                               z * (-0.00085483270234508565f + z * 0.00012055332981789664f))))));
  return ax < 0.5f ? small : std::copysign(1.f - erfc, x);
}

// x Phi(x) with Phi(-|x|) = 2^-U(|x|) (cpu/tactics/vmath.h states the fit and its error).
ANVIL_AI float geluApprox(float x) {
  using cpu::vmath::kExp2P;
  using cpu::vmath::kGeluU;
  const float a = std::fabs(x);
  const float u = (((((kGeluU[5] * a + kGeluU[4]) * a + kGeluU[3]) * a + kGeluU[2]) * a + kGeluU[1]) * a + kGeluU[0]) * a + 1.f;
  const float t = u + 12582912.f;  // 1.5 * 2^23: its low bits hold n = round(u)
  const float r = (t - 12582912.f) - u;
  const float p = ((((kExp2P[4] * r + kExp2P[3]) * r + kExp2P[2]) * r + kExp2P[1]) * r + kExp2P[0]) * r + 1.f;
  const float q = a < cpu::vmath::kGeluCut ? std::bit_cast<float>(std::bit_cast<uint32_t>(p) - (std::bit_cast<uint32_t>(t) << 23)) : 0.f;
  return x * (std::signbit(x) ? q : 1.f - q);
}

ANVIL_AI float geluTanhApprox(float x) {
  return 0.5f * x * (1.f + tanhApprox(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
}

template <typename F>
ANVIL_AI void mapRange(const float* __restrict x, float* __restrict y, int64_t b, int64_t e, F f) {
  for (int64_t i = b; i < e; ++i) y[i] = f(x[i]);
}

ANVIL_AI void applyRange(Fn fn, const float* x, float* y, int64_t b, int64_t e) {
  switch (fn) {
    case Fn::kExp: return mapRange(x, y, b, e, [](float v) { return expApprox(v); });
    case Fn::kSigmoid: return mapRange(x, y, b, e, [](float v) { return sigmoidApprox(v); });
    case Fn::kTanh: return mapRange(x, y, b, e, [](float v) { return tanhApprox(v); });
    case Fn::kErf: return mapRange(x, y, b, e, [](float v) { return erfApprox(v); });
    case Fn::kGelu: return mapRange(x, y, b, e, [](float v) { return geluApprox(v); });
    case Fn::kGeluTanh: return mapRange(x, y, b, e, [](float v) { return geluTanhApprox(v); });
  }
}

void rangePortable(Fn fn, const float* x, float* y, int64_t b, int64_t e) { applyRange(fn, x, y, b, e); }

// ---- AVX2 + FMA: the same formulas on eight lanes ----

#define ANVIL_AVX2 __attribute__((target("avx2,fma"))) inline

using cpu::vmath::erf8;
using cpu::vmath::expCore8;
using cpu::vmath::gelu8;
using cpu::vmath::geluTanh8;
using cpu::vmath::keepNaN;
using cpu::vmath::sigmoid8;
using cpu::vmath::splat;
using cpu::vmath::tanh8;

ANVIL_AVX2 __m256 apply8(Fn fn, __m256 x) {
  __m256 y;
  switch (fn) {
    case Fn::kExp: {
      y = expCore8(x);
      y = _mm256_blendv_ps(y, splat(std::numeric_limits<float>::infinity()),
                           _mm256_cmp_ps(x, splat(88.72283935546875f), _CMP_GT_OQ));
      y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, splat(-103.972084f), _CMP_LT_OQ));
      break;
    }
    case Fn::kSigmoid: y = sigmoid8(x); break;
    case Fn::kTanh: y = tanh8(x); break;
    case Fn::kErf: y = erf8(x); break;
    case Fn::kGelu: return gelu8(x);  // NaN stays NaN by itself (no keepNaN: see vmath.h)
    case Fn::kGeluTanh: y = geluTanh8(x); break;
    default: y = x;
  }
  return keepNaN(y, x);
}

__attribute__((target("avx2,fma"))) void rangeAvx2(Fn fn, const float* x, float* y, int64_t b, int64_t e) {
  int64_t i = b;
  for (; i + 8 <= e; i += 8) _mm256_storeu_ps(y + i, apply8(fn, _mm256_loadu_ps(x + i)));
  if (i < e) {
    // The tail goes through the same lanes, so a result never depends on where a
    // thread's range ends.
    alignas(32) float in[8] = {}, out[8];
    for (int64_t j = i; j < e; ++j) in[j - i] = x[j];
    _mm256_store_ps(out, apply8(fn, _mm256_load_ps(in)));
    for (int64_t j = i; j < e; ++j) y[j] = out[j - i];
  }
}

template <bool kAvx2>
void approxKernel(const StepArgs& a) {
  const Fn fn = a.paramsAs<ApproxParams>().fn;
  if (a.in(0).numel() != a.out(0).numel()) a.fail("input and output differ in size");
  const float* x = a.in(0).as<const float>();
  float* y = a.out(0).as<float>();
  parallelRange(a.executor, a.out(0).numel(), 8192, [&](int64_t b, int64_t e) {
    if constexpr (kAvx2) rangeAvx2(fn, x, y, b, e);
    else rangePortable(fn, x, y, b, e);
  });
}

}  // namespace

void registerApprox(Kernels& k) {
  const std::pair<const char*, Fn> ops[] = {
      {"Exp", Fn::kExp}, {"Sigmoid", Fn::kSigmoid}, {"Tanh", Fn::kTanh}, {"Erf", Fn::kErf}, {"Gelu", Fn::kGelu}};
  for (bool avx2 : {false, true})
    for (const auto& [op, f] : ops) {
      Kernel kn;
      kn.name = avx2 ? "f32_unary_poly__avx2" : "f32_unary_poly";
      kn.version = 4;  // 2: exp clamps at ln(FLT_MIN), erf takes its odd series below 0.5; 3: Gelu as 2^-U, sigmoid (below -88) and tanh through expNarrow; 4: expNarrow's degree-5 polynomial (sigmoid, tanh)
      kn.op = op;
      kn.precision = DataType::kF32;
      if (avx2) kn.requirements = {"avx2", "fma"};
      kn.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& t) {
        if (t.empty() || t[0].dtype != DataType::kF32) return false;
        const std::string ap = n.attrs().getString("approximate", "none");
        return ap == "none" || ap == "tanh";
      };
      const Fn fn = f;
      kn.prepare = [fn](const PrepareInfo& info, Prepared* p) {
        const bool tanhForm = fn == Fn::kGelu && info.node->attrs().getString("approximate", "none") == "tanh";
        p->setParams(ApproxParams{tanhForm ? Fn::kGeluTanh : fn});
      };
      kn.run = avx2 ? approxKernel<true> : approxKernel<false>;
      k.add(std::move(kn));
    }
}

}  // namespace anvil::runtime::nops
