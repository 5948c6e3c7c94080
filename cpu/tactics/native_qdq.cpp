// The Q/DQ import's elementwise steps (passes/qdq_fusion.cpp leaves them between the INT8
// layers): QuantizeLinear and DequantizeLinear with one constant f32 scale and a u8 / s8
// zero point (per tensor), and anvil.QLinearAdd, with the reference kernels' bits
// (cpu/kernels/nn_quant.cpp, cpu/kernels/anvil_quant.cpp) and no allocation per run.
//   QuantizeLinear:   y = saturate(round_half_even(x / s) + z)   (a NaN gives 0, as the reference)
//   DequantizeLinear: y = (float(q) - z) * s
//   QLinearAdd:       y = saturate(round_half_even(fma(q_a, r_a, fma(q_b, r_b, k))))
// Measured on resnet18 with u8 activations (1 thread, --dumpProfile): the reference
// QuantizeLinear took 25 ms for the stem's 802816 values and the Q/DQ steps ~90 of the
// model's ~100 ms (the INT8 convolutions ~4 ms).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cpu/tactics/gemm_kernels.h"
#include "runtime/kernel.h"

namespace anvil::cpu::tactics {

namespace {

using runtime::Kernel;
using runtime::Kernels;
using runtime::PrepareInfo;
using runtime::Prepared;
using runtime::StepArgs;

// Trivially copyable without padding bytes (params are compared byte for byte).
struct QdqParams {
  float scale = 1.0f;
  int32_t zero = 0;
  int32_t lo = 0, hi = 255;  // the integer type's range
  int32_t tasks = 1;
  int32_t pad = 0;
};

struct QAddParams {
  float ra = 1.0f, rb = 1.0f, k = 0.0f;
  int32_t lo = 0, hi = 255;
  int32_t tasks = 1;
};

bool isQ8(DataType t) { return t == DataType::kU8 || t == DataType::kI8; }

// A constant per-tensor scale (f32, one value, > 0 finite) and zero point (u8 / s8, one
// value, or absent: u8 0) at inputs 1 and 2; the integer type.
bool perTensorGrid(const ir::Node& n, float* s, int32_t* z, DataType* t) {
  const ir::Value* sv = n.input(1);
  if (!sv || !sv->initializer() || sv->initializer()->dtype() != DataType::kF32 || sv->initializer()->numel() != 1)
    return false;
  *s = sv->initializer()->data<float>()[0];
  if (!(*s > 0.0f) || !std::isfinite(*s) || n.attrs().getInt("block_size", 0) != 0) return false;
  *z = 0;
  *t = DataType::kU8;
  if (const ir::Value* zv = n.input(2)) {
    if (!zv->initializer() || zv->initializer()->numel() != 1 || !isQ8(zv->initializer()->dtype())) return false;
    *t = zv->initializer()->dtype();
    *z = int32_t(zv->initializer()->getInt(0));
  }
  return true;
}

int64_t tasksFor(int64_t n, int threads) { return std::max<int64_t>(1, std::min<int64_t>(threads, n / 65536)); }

// Eight int32 already within T's range stored as T (the packs saturate nothing).
template <typename T>
__attribute__((target("avx2"))) inline void store8(T* y, __m256i q) {
  const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
  const __m128i b = std::is_same<T, uint8_t>::value ? _mm_packus_epi16(w, w) : _mm_packs_epi16(w, w);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(y), b);
}

// ---------------------------------------------------------------------------------------
// QuantizeLinear

bool supportsQuantize(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  float s;
  int32_t z;
  DataType t;
  if (in.empty() || in[0].dtype != DataType::kF32 || !perTensorGrid(n, &s, &z, &t)) return false;
  if (n.attrs().getInt("saturate", 1) == 0 || n.attrs().getInt("output_dtype", 0) != 0) return false;
  return n.output(0) && n.output(0)->dtype() == t;
}

template <typename T>
inline T quantizeOne(float x, const QdqParams& p) {
  const float v = x / p.scale;
  if (std::isnan(v)) return T(0);
  const double r = double(std::nearbyint(v)) + double(p.zero);
  return T(r < p.lo ? p.lo : r > p.hi ? p.hi : int32_t(r));
}

template <typename T>
void quantizeBase(const float* x, T* y, int64_t n, const QdqParams& p) {
  for (int64_t i = 0; i < n; ++i) y[i] = quantizeOne<T>(x[i], p);
}

// Eight at a time: the same division, rounding (half to even) and clamp; a NaN lane gives 0.
template <typename T>
__attribute__((target("avx2"))) void quantizeAvx2(const float* x, T* y, int64_t n, const QdqParams& p) {
  const __m256 s = _mm256_set1_ps(p.scale);
  // Clamping before the rounding is the same as after it: the bounds are integers.
  const __m256 lo = _mm256_set1_ps(float(p.lo - p.zero)), hi = _mm256_set1_ps(float(p.hi - p.zero));
  const __m256i z = _mm256_set1_epi32(p.zero);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i), s);
    const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    const __m256 c = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_round_ps(c, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)), z);
    q = _mm256_andnot_si256(_mm256_castps_si256(nan), q);
    store8<T>(y + i, q);
  }
  for (; i < n; ++i) y[i] = quantizeOne<T>(x[i], p);
}

void prepareQuantize(const PrepareInfo& info, Prepared* out) {
  QdqParams p;
  DataType t;
  ANVIL_CHECK(perTensorGrid(*info.node, &p.scale, &p.zero, &t), ErrorCode::kInternal, info.node->label(),
              ": not a per-tensor QuantizeLinear");
  p.lo = t == DataType::kU8 ? 0 : -128;
  p.hi = t == DataType::kU8 ? 255 : 127;
  p.tasks = std::max(1, info.threads);
  out->setParams(p);
}

template <typename T>
void runQuantizeT(const StepArgs& a, const QdqParams& p) {
  const int64_t n = a.in(0).numel();
  const float* x = a.in(0).as<const float>();
  T* y = a.out(0).as<T>();
  static const bool kAvx2 = runtime::hostHas("avx2");
  const int64_t T_ = std::min<int64_t>(p.tasks, tasksFor(n, a.executor->threads()));
  a.executor->parallelFor(T_, [&](int64_t t) {
    const int64_t b = rangeBegin(n, t, T_), e = rangeBegin(n, t + 1, T_);
    if (kAvx2)
      quantizeAvx2<T>(x + b, y + b, e - b, p);
    else
      quantizeBase<T>(x + b, y + b, e - b, p);
  });
}

void runQuantize(const StepArgs& a) {
  const QdqParams& p = a.paramsAs<QdqParams>();
  if (a.in(0).dtype != DataType::kF32 || a.out(0).numel() != a.in(0).numel()) a.fail("QuantizeLinear: f32 in, same count out");
  if (p.lo == 0)
    runQuantizeT<uint8_t>(a, p);
  else
    runQuantizeT<int8_t>(a, p);
}

// ---------------------------------------------------------------------------------------
// DequantizeLinear

// Eight stored integers as f32 (exact).
template <typename T>
__attribute__((target("avx2"))) inline __m256 widen(const T* s) {
  const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(s));
  return _mm256_cvtepi32_ps(std::is_same<T, uint8_t>::value ? _mm256_cvtepu8_epi32(v) : _mm256_cvtepi8_epi32(v));
}


bool supportsDequantize(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  float s;
  int32_t z;
  DataType t;
  if (in.empty() || !perTensorGrid(n, &s, &z, &t) || in[0].dtype != t) return false;
  return n.output(0) && n.output(0)->dtype() == DataType::kF32;
}

template <typename T>
void dequantizeBase(const T* q, float* y, int64_t n, float s, float z) {
  for (int64_t i = 0; i < n; ++i) y[i] = (float(q[i]) - z) * s;
}

template <typename T>
__attribute__((target("avx2"))) void dequantizeAvx2(const T* q, float* y, int64_t n, float s, float z) {
  const __m256 vs = _mm256_set1_ps(s), vz = _mm256_set1_ps(z);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_sub_ps(widen(q + i), vz), vs));
  }
  for (; i < n; ++i) y[i] = (float(q[i]) - z) * s;
}

void prepareDequantize(const PrepareInfo& info, Prepared* out) {
  QdqParams p;
  DataType t;
  ANVIL_CHECK(perTensorGrid(*info.node, &p.scale, &p.zero, &t), ErrorCode::kInternal, info.node->label(),
              ": not a per-tensor DequantizeLinear");
  p.lo = t == DataType::kU8 ? 0 : -128;
  p.tasks = std::max(1, info.threads);
  out->setParams(p);
}

template <typename T>
void runDequantizeT(const StepArgs& a, const QdqParams& p) {
  const int64_t n = a.in(0).numel();
  const T* q = a.in(0).as<const T>();
  float* y = a.out(0).as<float>();
  static const bool kAvx2 = runtime::hostHas("avx2");
  const int64_t T_ = std::min<int64_t>(p.tasks, tasksFor(n, a.executor->threads()));
  a.executor->parallelFor(T_, [&](int64_t t) {
    const int64_t b = rangeBegin(n, t, T_), e = rangeBegin(n, t + 1, T_);
    if (kAvx2)
      dequantizeAvx2<T>(q + b, y + b, e - b, p.scale, float(p.zero));
    else
      dequantizeBase<T>(q + b, y + b, e - b, p.scale, float(p.zero));
  });
}

void runDequantize(const StepArgs& a) {
  const QdqParams& p = a.paramsAs<QdqParams>();
  if (a.out(0).dtype != DataType::kF32 || a.out(0).numel() != a.in(0).numel()) a.fail("DequantizeLinear: f32 out, same count");
  if (p.lo == 0)
    runDequantizeT<uint8_t>(a, p);
  else
    runDequantizeT<int8_t>(a, p);
}

// ---------------------------------------------------------------------------------------
// anvil.QLinearAdd (the formula of cpu/kernels/anvil_quant.cpp)

bool supportsQAdd(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  return in.size() == 2 && isQ8(in[0].dtype) && in[1].dtype == in[0].dtype && in[0].shape == in[1].shape &&
         n.attrs().getFloat("y_scale", 0.0f) > 0.0f;
}

template <typename T>
void qaddBase(const T* a, const T* b, T* y, int64_t n, const QAddParams& p) {
  for (int64_t i = 0; i < n; ++i) {
    const float t = std::fmaf(float(a[i]), p.ra, std::fmaf(float(b[i]), p.rb, p.k));
    y[i] = T(std::clamp(int32_t(std::nearbyint(t)), p.lo, p.hi));
  }
}

template <typename T>
__attribute__((target("avx2,fma"))) void qaddAvx2(const T* a, const T* b, T* y, int64_t n, const QAddParams& p) {
  const __m256 ra = _mm256_set1_ps(p.ra), rb = _mm256_set1_ps(p.rb), k = _mm256_set1_ps(p.k);
  const __m256i lo = _mm256_set1_epi32(p.lo), hi = _mm256_set1_epi32(p.hi);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 t = _mm256_fmadd_ps(widen(a + i), ra, _mm256_fmadd_ps(widen(b + i), rb, k));
    const __m256i q = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(t), lo), hi);  // MXCSR: half to even
    store8<T>(y + i, q);
  }
  for (; i < n; ++i) {
    const float t = __builtin_fmaf(float(a[i]), p.ra, __builtin_fmaf(float(b[i]), p.rb, p.k));
    y[i] = T(std::clamp(int32_t(std::nearbyint(t)), p.lo, p.hi));
  }
}

void prepareQAdd(const PrepareInfo& info, Prepared* out) {
  const ir::Attributes& at = info.node->attrs();
  const float sa = at.getFloat("a_scale", 0.0f), sb = at.getFloat("b_scale", 0.0f), sy = at.getFloat("y_scale", 0.0f);
  ANVIL_CHECK(sa > 0.0f && sb > 0.0f && sy > 0.0f, ErrorCode::kInvalidModel, info.node->label(), ": scales must be > 0");
  QAddParams p;
  p.ra = sa / sy;
  p.rb = sb / sy;
  const float pa = p.ra * float(at.getInt("a_zero_point", 0)), pb = p.rb * float(at.getInt("b_zero_point", 0));
  p.k = float(at.getInt("y_zero_point", 0)) - (pa + pb);
  const bool u8 = info.maxTypes[0].dtype == DataType::kU8;
  p.lo = u8 ? 0 : -128;
  p.hi = u8 ? 255 : 127;
  p.tasks = std::max(1, info.threads);
  out->setParams(p);
}

template <typename T>
void runQAddT(const StepArgs& a, const QAddParams& p) {
  const int64_t n = a.out(0).numel();
  const T* x = a.in(0).as<const T>();
  const T* z = a.in(1).as<const T>();
  T* y = a.out(0).as<T>();
  static const bool kAvx2 = runtime::hostHas("avx2") && runtime::hostHas("fma");
  const int64_t T_ = std::min<int64_t>(p.tasks, tasksFor(n, a.executor->threads()));
  a.executor->parallelFor(T_, [&](int64_t t) {
    const int64_t b = rangeBegin(n, t, T_), e = rangeBegin(n, t + 1, T_);
    if (kAvx2)
      qaddAvx2<T>(x + b, z + b, y + b, e - b, p);
    else
      qaddBase<T>(x + b, z + b, y + b, e - b, p);
  });
}

void runQAdd(const StepArgs& a) {
  const QAddParams& p = a.paramsAs<QAddParams>();
  if (a.in(0).numel() != a.out(0).numel() || a.in(1).numel() != a.out(0).numel()) a.fail("QLinearAdd: one shape");
  if (p.lo == 0)
    runQAddT<uint8_t>(a, p);
  else
    runQAddT<int8_t>(a, p);
}

}  // namespace

}  // namespace anvil::cpu::tactics

namespace anvil::runtime {

void registerNativeQdqKernels(Kernels& k) {
  using namespace anvil::cpu::tactics;
  auto add = [&](const char* name, const char* op, const char* domain, SupportsFn s, PrepareFn pr, RunFn r) {
    Kernel kn;
    kn.name = name;
    kn.version = 1;
    kn.op = op;
    kn.domain = domain;
    kn.precision = DataType::kF32;
    kn.dynamicShapes = true;
    kn.supports = std::move(s);
    kn.prepare = std::move(pr);
    kn.run = std::move(r);
    k.add(std::move(kn));
  };
  add("qdq_quantize_per_tensor", "QuantizeLinear", "", supportsQuantize, prepareQuantize, runQuantize);
  add("qdq_dequantize_per_tensor", "DequantizeLinear", "", supportsDequantize, prepareDequantize, runDequantize);
  add("qdq_qlinear_add", "QLinearAdd", "anvil", supportsQAdd, prepareQAdd, runQAdd);
}

}  // namespace anvil::runtime
