// The epilogue of the native fused linear kernels (anvil.FusedConv / FusedGemm /
// FusedMatMul, ir/ops/anvil_linear.h) over one row of a finished output block: bias,
// residual Add and activation in one pass while the block is in cache. AVX2 for every
// activation (the transcendental ones through cpu/tactics/vmath.h, the formulas of the
// f32_unary_poly kernels and their stated accuracy), scalar reference formulas on CPUs
// without AVX2. (GELU in scalar libm cost convnext_tiny 4.5 ms of a 6.3 ms FusedMatMul.)
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "cpu/tactics/native_linear_epilogue.h"
#include "cpu/tactics/vmath.h"
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

// Whether the AVX2 row handles this activation (the others go through rowScalar).
bool vectorized(Activation a) {
  return a == Activation::kNone || a == Activation::kRelu || a == Activation::kClip || a == Activation::kLeakyRelu ||
         a == Activation::kHardSigmoid || a == Activation::kHardSwish || a == Activation::kSigmoid ||
         a == Activation::kSilu || a == Activation::kTanh || a == Activation::kGelu || a == Activation::kGeluTanh;
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
    const __m256 s = vmath::sigmoid8(v);
    return vmath::keepNaN(A == Activation::kSilu ? _mm256_mul_ps(v, s) : s, v);
  } else if constexpr (A == Activation::kTanh) {
    return vmath::keepNaN(vmath::tanh8(v), v);
  } else if constexpr (A == Activation::kGelu) {
    return vmath::keepNaN(vmath::gelu8(v), v);
  } else if constexpr (A == Activation::kGeluTanh) {
    return vmath::keepNaN(vmath::geluTanh8(v), v);
  } else {
    return v;
  }
}

template <Activation A>
__attribute__((target("avx2,fma"))) inline __m256 finish8(const Epilogue& e, __m256 v, __m256 z, __m256 p0, __m256 p1,
                                                          bool hasZ) {
  if (hasZ && e.addFirst) v = _mm256_add_ps(v, z);
  v = act8<A>(v, p0, p1);
  if (hasZ && !e.addFirst) v = _mm256_add_ps(v, z);
  return v;
}

// The tail (n % 8 elements) goes through the same lanes under a mask, so an element's bits
// never depend on where a block of the output ends (block widths follow the task count).
template <Activation A>
__attribute__((target("avx2,fma"))) void rowAvx2(const Epilogue& e, float* y, const float* z, const float* bias,
                                                 float rowBias, int64_t n) {
  const __m256 p0 = _mm256_set1_ps(e.p0), p1 = _mm256_set1_ps(e.p1), rb = _mm256_set1_ps(rowBias);
  const __m256 zero = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 v = _mm256_add_ps(_mm256_loadu_ps(y + j), rb);
    if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + j));
    _mm256_storeu_ps(y + j, finish8<A>(e, v, z ? _mm256_loadu_ps(z + j) : zero, p0, p1, z != nullptr));
  }
  if (j < n) {
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(n - j)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 v = _mm256_add_ps(_mm256_maskload_ps(y + j, mask), rb);
    if (bias) v = _mm256_add_ps(v, _mm256_maskload_ps(bias + j, mask));
    _mm256_maskstore_ps(y + j, mask, finish8<A>(e, v, z ? _mm256_maskload_ps(z + j, mask) : zero, p0, p1, z != nullptr));
  }
}


// Sixteen lanes for the transcendental activations, where a row's cost is the polynomial
// (GELU on a 3136 x 384 block: 1.8 ms with eight lanes). The same formulas lane for lane
// as the eight-lane row (cpu/tactics/vmath.h), so the same bits.
template <Activation A>
__attribute__((target("avx512f"))) inline __m512 act16(__m512 v) {
  if constexpr (A == Activation::kSigmoid || A == Activation::kSilu) {
    const __m512 s = vmath::sigmoid16(v);
    return vmath::keepNaN16(A == Activation::kSilu ? _mm512_mul_ps(v, s) : s, v);
  } else if constexpr (A == Activation::kTanh) {
    return vmath::keepNaN16(vmath::tanh16(v), v);
  } else if constexpr (A == Activation::kGelu) {
    return vmath::keepNaN16(vmath::gelu16(v), v);
  } else {
    static_assert(A == Activation::kGeluTanh);
    return vmath::keepNaN16(vmath::geluTanh16(v), v);
  }
}

template <Activation A>
__attribute__((target("avx512f"))) inline __m512 finish16(const Epilogue& e, __m512 v, __m512 z, bool hasZ) {
  if (hasZ && e.addFirst) v = _mm512_add_ps(v, z);
  v = act16<A>(v);
  if (hasZ && !e.addFirst) v = _mm512_add_ps(v, z);
  return v;
}

template <Activation A>
__attribute__((target("avx512f"))) void rowAvx512(const Epilogue& e, float* y, const float* z, const float* bias,
                                                  float rowBias, int64_t n) {
  const __m512 rb = _mm512_set1_ps(rowBias), zero = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m512 v = _mm512_add_ps(_mm512_loadu_ps(y + j), rb);
    if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + j));
    _mm512_storeu_ps(y + j, finish16<A>(e, v, z ? _mm512_loadu_ps(z + j) : zero, z != nullptr));
  }
  if (j < n) {
    const __mmask16 m = __mmask16((1u << (n - j)) - 1);
    __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + j), rb);
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + j));
    _mm512_mask_storeu_ps(y + j, m, finish16<A>(e, v, z ? _mm512_maskz_loadu_ps(m, z + j) : zero, z != nullptr));
  }
}

}  // namespace

bool fusedEpilogueSupported(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  Epilogue e;
  if (!ir::linear::readEpilogue(n.attrs(), &e).empty()) return false;
  const size_t zi = ir::linear::kResidualInput;
  const bool hasZ = zi < in.size() && in[zi].dtype != DataType::kUndefined;
  return hasZ == e.residual && (!hasZ || in[zi].dtype == DataType::kF32);
}

Epilogue readFusedEpilogue(const ir::Node& n) {
  Epilogue e;
  const std::string err = ir::linear::readEpilogue(n.attrs(), &e);
  ANVIL_CHECK(err.empty(), ErrorCode::kInvalidModel, n.label(), ": ", err);
  return e;
}

EpilogueRow epilogueRow(const Epilogue& e) {
  static const bool kAvx2 = runtime::hostHas("avx2") && runtime::hostHas("fma");
  static const bool kAvx512 = kAvx2 && runtime::hostHas("avx512f");
  if (!kAvx2 || !vectorized(e.act)) return rowScalar;
  if (kAvx512) switch (e.act) {
      case Activation::kSigmoid: return rowAvx512<Activation::kSigmoid>;
      case Activation::kSilu: return rowAvx512<Activation::kSilu>;
      case Activation::kTanh: return rowAvx512<Activation::kTanh>;
      case Activation::kGelu: return rowAvx512<Activation::kGelu>;
      case Activation::kGeluTanh: return rowAvx512<Activation::kGeluTanh>;
      default: break;
    }
  switch (e.act) {
    case Activation::kNone: return rowAvx2<Activation::kNone>;
    case Activation::kRelu: return rowAvx2<Activation::kRelu>;
    case Activation::kClip: return rowAvx2<Activation::kClip>;
    case Activation::kLeakyRelu: return rowAvx2<Activation::kLeakyRelu>;
    case Activation::kHardSigmoid: return rowAvx2<Activation::kHardSigmoid>;
    case Activation::kHardSwish: return rowAvx2<Activation::kHardSwish>;
    case Activation::kSigmoid: return rowAvx2<Activation::kSigmoid>;
    case Activation::kSilu: return rowAvx2<Activation::kSilu>;
    case Activation::kTanh: return rowAvx2<Activation::kTanh>;
    case Activation::kGelu: return rowAvx2<Activation::kGelu>;
    case Activation::kGeluTanh: return rowAvx2<Activation::kGeluTanh>;
    default: return rowScalar;
  }
}

GemmC gemmCOf(const runtime::StepArgs& a, int64_t M, int64_t N) {
  GemmC c;
  if (!a.hasInput(2)) return c;
  const runtime::TensorView& C = a.in(2);
  if (C.rank > 2) a.fail("C must have rank <= 2");
  const int64_t cM = C.rank == 2 ? C.dims[0] : 1, cN = C.rank >= 1 ? C.dims[C.rank - 1] : 1;
  if ((cM != 1 && cM != M) || (cN != 1 && cN != N)) a.fail("C does not broadcast to [M, N]");
  c.data = C.as<float>();
  c.rowStride = cM == 1 ? 0 : cN;
  c.colStride = cN == 1 ? 0 : 1;
  return c;
}

}  // namespace anvil::cpu::tactics
