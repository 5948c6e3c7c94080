// The epilogue of the native fused linear kernels (anvil.FusedConv / FusedGemm /
// FusedMatMul, ir/ops/anvil_linear.h) over one row of a finished output block: bias,
// residual Add and activation in one pass while the block is in cache. AVX2 for every
// activation (the transcendental ones through cpu/tactics/vmath.h, the formulas of the
// f32_unary_poly kernels and their stated accuracy), scalar reference formulas on CPUs
// without AVX2. (GELU in scalar libm cost convnext_tiny 4.5 ms of a 6.3 ms FusedMatMul.)
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "cpu/tactics/epilogue_act.h"
#include "cpu/tactics/native_linear_epilogue.h"
#include "runtime/kernel.h"

namespace anvil::cpu::tactics {

namespace {

using ir::linear::Activation;
using ir::linear::Epilogue;

static_assert(int(Activation::kNone) == epi::kNone && int(Activation::kRelu) == epi::kRelu &&
                  int(Activation::kClip) == epi::kClip && int(Activation::kSigmoid) == epi::kSigmoid &&
                  int(Activation::kTanh) == epi::kTanh && int(Activation::kLeakyRelu) == epi::kLeakyRelu &&
                  int(Activation::kHardSigmoid) == epi::kHardSigmoid &&
                  int(Activation::kHardSwish) == epi::kHardSwish && int(Activation::kSilu) == epi::kSilu &&
                  int(Activation::kGelu) == epi::kGelu && int(Activation::kGeluTanh) == epi::kGeluTanh,
              "epi::Act numbers the activations as ir::linear::Activation");

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

// The tail (n % 8 elements) goes through the same lanes under a mask, so an element's bits
// never depend on where a block of the output ends (block widths follow the task count).
template <Activation A>
__attribute__((target("avx2,fma"))) void rowAvx2(const Epilogue& e, float* y, const float* z, const float* bias,
                                                 float rowBias, int64_t n) {
  const __m256 p0 = _mm256_set1_ps(e.p0), p1 = _mm256_set1_ps(e.p1), rb = _mm256_set1_ps(rowBias);
  const __m256 zero = _mm256_setzero_ps();
  int64_t j = 0;
  if constexpr (A == Activation::kSilu || A == Activation::kSigmoid) {
    // Four vectors in lockstep (vmath::sigmoidLockstep8): act8's operations, the same bits.
    // efficientnet_b0's SiLU epilogues were a quarter of its time.
    constexpr int N = 4;
    for (; j + 8 * N <= n; j += 8 * N) {
      __m256 v[N], s[N], zv[N];
#pragma GCC unroll 4
      for (int k = 0; k < N; ++k) {
        v[k] = _mm256_add_ps(_mm256_loadu_ps(y + j + 8 * k), rb);
        if (bias) v[k] = _mm256_add_ps(v[k], _mm256_loadu_ps(bias + j + 8 * k));
        zv[k] = z ? _mm256_loadu_ps(z + j + 8 * k) : zero;
        if (z && e.addFirst) v[k] = _mm256_add_ps(v[k], zv[k]);
        s[k] = v[k];
      }
      vmath::sigmoidLockstep8<N>(s);
#pragma GCC unroll 4
      for (int k = 0; k < N; ++k) {
        __m256 r = A == Activation::kSilu ? _mm256_mul_ps(v[k], s[k]) : vmath::keepNaN(s[k], v[k]);
        if (z && !e.addFirst) r = _mm256_add_ps(r, zv[k]);
        _mm256_storeu_ps(y + j + 8 * k, r);
      }
    }
  }
  for (; j + 8 <= n; j += 8) {
    __m256 v = _mm256_add_ps(_mm256_loadu_ps(y + j), rb);
    if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + j));
    const __m256 zv = z ? _mm256_loadu_ps(z + j) : zero;
    _mm256_storeu_ps(y + j, epi::finish8<int(A)>(v, z ? &zv : nullptr, e.addFirst, p0, p1));
  }
  if (j < n) {
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(n - j)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 v = _mm256_add_ps(_mm256_maskload_ps(y + j, mask), rb);
    if (bias) v = _mm256_add_ps(v, _mm256_maskload_ps(bias + j, mask));
    const __m256 zv = z ? _mm256_maskload_ps(z + j, mask) : zero;
    _mm256_maskstore_ps(y + j, mask, epi::finish8<int(A)>(v, z ? &zv : nullptr, e.addFirst, p0, p1));
  }
}


// Sixteen lanes for the transcendental activations, where a row's cost is the polynomial
// (GELU on a 3136 x 384 block: 1.8 ms with eight lanes). The same formulas lane for lane
// as the eight-lane row (cpu/tactics/vmath.h), so the same bits.
template <Activation A>
__attribute__((target("avx512f"))) void rowAvx512(const Epilogue& e, float* y, const float* z, const float* bias,
                                                  float rowBias, int64_t n) {
  const __m512 rb = _mm512_set1_ps(rowBias), zero = _mm512_setzero_ps();
  const __m512 p0 = _mm512_set1_ps(e.p0), p1 = _mm512_set1_ps(e.p1);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m512 v = _mm512_add_ps(_mm512_loadu_ps(y + j), rb);
    if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + j));
    const __m512 zv = z ? _mm512_loadu_ps(z + j) : zero;
    _mm512_storeu_ps(y + j, epi::finish16<int(A)>(v, z ? &zv : nullptr, e.addFirst, p0, p1));
  }
  if (j < n) {
    const __mmask16 m = __mmask16((1u << (n - j)) - 1);
    __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + j), rb);
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + j));
    const __m512 zv = z ? _mm512_maskz_loadu_ps(m, z + j) : zero;
    _mm512_mask_storeu_ps(y + j, m, epi::finish16<int(A)>(v, z ? &zv : nullptr, e.addFirst, p0, p1));
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
