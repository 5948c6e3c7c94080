// The polynomial activations (cpu/tactics/native_ops_approx.cpp: f32_unary_poly and its
// AVX2 build) over the whole float range: every 257th bit pattern (16.7 million values,
// every exponent and both signs, NaNs and infinities included) against a double-precision
// evaluation, with the maximum error each function states in that file's header.
// Also the fused linear epilogue rows that apply the same formulas (cpu/tactics/vmath.h),
// and vmath's folded forms (e^-x reduced from x, 2^n from the rounding sum's bits added to
// the exponent field) bit for bit against the plain ones they replace.
#include <gtest/gtest.h>
#include <immintrin.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "cpu/tactics/native_linear_epilogue.h"
#include "cpu/tactics/vmath.h"
#include "ir/graph.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeOpKernels(Kernels& k);
}

namespace {

using anvil::DataType;
using namespace anvil::runtime;

struct Case {
  const char* op;
  const char* approximate;  // Gelu's attribute, or ""
};

double reference(const std::string& op, const std::string& approx, double x) {
  if (op == "Exp") return std::exp(x);
  if (op == "Sigmoid") return 1.0 / (1.0 + std::exp(-x));
  if (op == "Tanh") return std::tanh(x);
  if (op == "Erf") return std::erf(x);
  if (approx == "tanh") return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}

// The allowed error of one result, as the file's header states it.
double allowed(const std::string& op, double ref) {
  if (op == "Exp") {
    if (std::fabs(ref) < double(std::numeric_limits<float>::min())) return std::ldexp(1.0, -126);  // denormal results
    return 3.0 * std::ldexp(1.0, std::ilogb(float(ref)) - 23);                                     // 3 ulp
  }
  if (op == "Gelu") return 3e-7 * std::max(1.0, std::fabs(ref));
  return 3e-7;
}

// Sigmoid's relative bound where its value is normal (cpu/tactics/vmath.h's expNarrow8).
constexpr double kSigmoidUlp = 4.0;

class PolyRange : public ::testing::TestWithParam<std::tuple<Case, bool>> {};

// Every 257th float bit pattern (16.7 million values, every exponent and both signs).
std::vector<float> everyFloat() {
  const int64_t n = int64_t((uint64_t(1) << 32) / 257);
  std::vector<float> in(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) in[size_t(i)] = std::bit_cast<float>(uint32_t(uint64_t(i) * 257));
  return in;
}

// Runs the f32_unary_poly kernel (AVX2 build or portable) of `op` over `in`.
std::vector<float> runPoly(const Case& c, bool avx2, const std::vector<float>& in) {
  Kernels registry;
  registerNativeOpKernels(registry);
  const Kernel* k = registry.find(anvil::Device::kCPU, c.op, "", avx2 ? "f32_unary_poly__avx2" : "f32_unary_poly");
  EXPECT_NE(k, nullptr) << c.op;
  if (!k) return {};
  const int64_t n = int64_t(in.size());
  anvil::ir::Graph g;
  auto* x = g.addValue("x", {DataType::kF32, anvil::ir::Shape({n})});
  g.addInput(x);
  anvil::ir::Node* node = g.addNode(c.op, "", "probe", {x}, {"y"});
  if (*c.approximate) node->attrs().set("approximate", std::string(c.approximate));
  const anvil::ir::TensorType t{DataType::kF32, anvil::ir::Shape({n})};
  EXPECT_TRUE(!k->supports || k->supports(*node, {t}));
  PrepareInfo info;
  info.node = node;
  info.minTypes = info.optTypes = info.maxTypes = {t};
  info.maxOutputTypes = {t};
  info.constants = {nullptr};
  Prepared prepared;
  if (k->prepare) k->prepare(info, &prepared);
  std::vector<uint8_t> params(prepared.params.begin(), prepared.params.end());
  params.resize(std::max<size_t>(params.size(), 64));

  std::vector<float> out(in.size());
  auto exec = makeCpuExecutor(2);
  TensorView vi, vo;
  vi.data = const_cast<float*>(in.data());
  vi.dtype = vo.dtype = DataType::kF32;
  vi.setExtents({n});
  vo.data = out.data();
  vo.setExtents({n});
  StepArgs a;
  a.node = node;
  a.inputs = &vi;
  a.numInputs = 1;
  a.outputs = &vo;
  a.numOutputs = 1;
  a.params = {params.data(), prepared.params.size()};
  a.executor = exec.get();
  k->run(a);
  return out;
}

TEST_P(PolyRange, WithinStatedErrorOverAllFloats) {
  const auto [c, avx2] = GetParam();
  if (avx2 && !hostHasAll({"avx2", "fma"})) GTEST_SKIP() << "skipped: no AVX2/FMA";
  const std::vector<float> in = everyFloat();
  const std::vector<float> out = runPoly(c, avx2, in);
  ASSERT_EQ(out.size(), in.size());
  const int64_t n = int64_t(in.size());

  double worst = 0, worstX = 0, worstUlp = 0, worstUlpX = 0;
  int64_t bad = 0, badUlp = 0, nanMismatch = 0;
  const std::string op = c.op, approx = c.approximate;
  for (int64_t i = 0; i < n; ++i) {
    const float xi = in[size_t(i)], yi = out[size_t(i)];
    const double ref = reference(op, approx, double(xi));
    if (std::isnan(ref) || std::isnan(yi)) {
      nanMismatch += std::isnan(ref) != std::isnan(yi);
      continue;
    }
    if (std::isinf(ref) || std::fabs(ref) > double(std::numeric_limits<float>::max())) {
      bad += !(std::isinf(yi) && std::signbit(yi) == std::signbit(ref));
      continue;
    }
    const double err = std::fabs(double(yi) - ref);
    const double tol = allowed(op, ref);
    if (err > tol) ++bad;
    if (err / tol > worst) {
      worst = err / tol;
      worstX = xi;
    }
    // Sigmoid is also relatively accurate where it is normal (e^x's relative error carries
    // into its tail, SiLU's x sigmoid(x) with it): within kSigmoidUlp ulp.
    if (op == "Sigmoid" && ref >= double(std::numeric_limits<float>::min())) {
      const double ulps = err / std::ldexp(1.0, std::ilogb(float(ref)) - 23);
      badUlp += ulps > kSigmoidUlp;
      if (ulps > worstUlp) {
        worstUlp = ulps;
        worstUlpX = xi;
      }
    }
  }
  if (op == "Sigmoid")
    std::printf("  %-7s %-4s %-8s worst error %.2f ulp (at x = %.9g) where normal\n", c.op, c.approximate,
                avx2 ? "avx2" : "portable", worstUlp, worstUlpX);
  EXPECT_EQ(badUlp, 0) << "worst " << worstUlp << " ulp at x = " << worstUlpX;
  std::printf("  %-7s %-4s %-8s worst error %.3f of the stated bound (at x = %.9g), %lld values\n", c.op,
              c.approximate, avx2 ? "avx2" : "portable", worst, worstX, (long long)n);
  EXPECT_EQ(nanMismatch, 0) << "NaN in must be NaN out, and only then";
  EXPECT_EQ(bad, 0) << "worst " << worst << " of the bound at x = " << worstX;
}

const Case kCases[] = {{"Exp", ""}, {"Sigmoid", ""}, {"Tanh", ""}, {"Erf", ""}, {"Gelu", "none"}, {"Gelu", "tanh"}};

// The fused linear kernels' epilogue (cpu/tactics/fused_linear.cpp) applies the same
// polynomials (cpu/tactics/vmath.h) with eight or, where the CPU has AVX-512, sixteen lanes
// and a masked tail: over every 257th float, in rows of 1..37 values (every tail length of
// both widths), its results must equal the AVX2 unary kernel's, so an activation gives the
// same values fused or standing alone and whatever the row split.
TEST(EpilogueRow, SameValuesAsTheUnaryKernelOverAllFloats) {
  if (!hostHasAll({"avx2", "fma"})) GTEST_SKIP() << "skipped: no AVX2/FMA";
  using anvil::ir::linear::Activation;
  const std::pair<Case, Activation> acts[] = {{{"Sigmoid", ""}, Activation::kSigmoid},
                                              {{"Tanh", ""}, Activation::kTanh},
                                              {{"Gelu", "none"}, Activation::kGelu},
                                              {{"Gelu", "tanh"}, Activation::kGeluTanh}};
  const std::vector<float> in = everyFloat();
  for (const auto& [c, act] : acts) {
    const std::vector<float> want = runPoly(c, true, in);
    ASSERT_EQ(want.size(), in.size());
    anvil::ir::linear::Epilogue e;
    e.act = act;
    const auto row = anvil::cpu::tactics::epilogueRow(e);
    std::vector<float> got = in;
    for (size_t i = 0, len = 1; i < got.size(); i += len, len = len % 37 + 1)
      row(e, got.data() + i, nullptr, nullptr, 0.0f, int64_t(std::min(len, got.size() - i)));
    int64_t differ = 0;
    size_t first = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      // x + 0 turns -0 into +0 before the activation: compare values, NaN with NaN.
      const bool same = std::isnan(want[i]) ? std::isnan(got[i]) : got[i] == want[i];
      if (!same && differ++ == 0) first = i;
    }
    EXPECT_EQ(differ, 0) << c.op << " " << c.approximate << ": first at x = " << in[first] << ": " << got[first]
                         << " vs " << want[first];
  }
}

// SiLU in the epilogue is x times the Sigmoid kernel's value, rounded, as an unfused Sigmoid
// then Mul gives it: the same values over every 257th float, NaN for NaN (the epilogue keeps
// NaN through the product, without keepNaN), and within kSigmoidUlp + 1/2 ulp of x sigmoid(x)
// where sigmoid is normal.
TEST(EpilogueRow, SiluIsXTimesTheSigmoidKernelOverAllFloats) {
  if (!hostHasAll({"avx2", "fma"})) GTEST_SKIP() << "skipped: no AVX2/FMA";
  const std::vector<float> in = everyFloat();
  const std::vector<float> sig = runPoly({"Sigmoid", ""}, true, in);
  ASSERT_EQ(sig.size(), in.size());
  anvil::ir::linear::Epilogue e;
  e.act = anvil::ir::linear::Activation::kSilu;
  const auto row = anvil::cpu::tactics::epilogueRow(e);
  std::vector<float> got = in;
  for (size_t i = 0, len = 1; i < got.size(); i += len, len = len % 37 + 1)
    row(e, got.data() + i, nullptr, nullptr, 0.0f, int64_t(std::min(len, got.size() - i)));
  int64_t differ = 0, bad = 0;
  size_t first = 0;
  double worst = 0, worstX = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const float want = in[i] * sig[i];
    const bool same = std::isnan(want) ? std::isnan(got[i]) : got[i] == want;
    if (!same && differ++ == 0) first = i;
    const double x = in[i], s = 1.0 / (1.0 + std::exp(-x)), ref = x * s;
    if (std::isnan(ref) || std::isinf(ref) || s < double(std::numeric_limits<float>::min()) ||
        std::fabs(ref) < double(std::numeric_limits<float>::min()))
      continue;
    const double ulps = std::fabs(double(got[i]) - ref) / std::ldexp(1.0, std::ilogb(float(ref)) - 23);
    bad += ulps > kSigmoidUlp + 0.5;
    if (ulps > worst) {
      worst = ulps;
      worstX = x;
    }
  }
  std::printf("  Silu    epilogue worst error %.2f ulp (at x = %.9g) where sigmoid is normal\n", worst, worstX);
  EXPECT_EQ(differ, 0) << "first at x = " << in[first] << ": " << got[first] << " vs " << in[first] * sig[first];
  EXPECT_EQ(bad, 0) << "worst " << worst << " ulp at x = " << worstX;
}

INSTANTIATE_TEST_SUITE_P(AllFloats, PolyRange, ::testing::Combine(::testing::ValuesIn(kCases), ::testing::Bool()),
                         [](const auto& info) {
                           const Case& c = std::get<0>(info.param);
                           return std::string(c.op) + (*c.approximate ? std::string("_") + c.approximate : "") +
                                  (std::get<1>(info.param) ? "_avx2" : "_portable");
                         });

}  // namespace

namespace {

namespace vm = anvil::cpu::vmath;

// The plain forms: e^x as the polynomial times 2^n (n from a cvtps, the scale a multiply),
// sigmoid from e^(0 - x).
__attribute__((target("avx2,fma"))) __m256 expNarrowPlain8(__m256 x) {
  __m256 n;
  const __m256 r = vm::expReduce8(x, 88.f, &n);
  __m256 p = _mm256_set1_ps(vm::kExpNarrowP[4]);
  for (int k = 3; k >= 0; --k) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(vm::kExpNarrowP[k]));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(e, 23)));
}

__attribute__((target("avx2,fma"))) void foldedAndPlain8(const float* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i), neg = _mm256_sub_ps(_mm256_setzero_ps(), v);
    _mm256_storeu_ps(out + 0 * n + i, vm::expNarrow8(v));
    _mm256_storeu_ps(out + 1 * n + i, expNarrowPlain8(v));
    _mm256_storeu_ps(out + 2 * n + i, vm::expNarrow8<true>(v));
    _mm256_storeu_ps(out + 3 * n + i, expNarrowPlain8(neg));
    _mm256_storeu_ps(out + 4 * n + i, vm::sigmoid8(v));
    _mm256_storeu_ps(out + 5 * n + i,
                     _mm256_div_ps(_mm256_set1_ps(1.f), _mm256_add_ps(_mm256_set1_ps(1.f), expNarrowPlain8(neg))));
  }
}

__attribute__((target("avx512f"))) void folded16(const float* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    _mm512_storeu_ps(out + 0 * n + i, vm::expNarrow16(v));
    _mm512_storeu_ps(out + 1 * n + i, vm::expNarrow16<true>(v));
    _mm512_storeu_ps(out + 2 * n + i, vm::sigmoid16(v));
  }
}

TEST(VmathFolded, SameBitsAsThePlainFormsOverAllFloats) {
  if (!hostHasAll({"avx2", "fma"})) GTEST_SKIP() << "skipped: no AVX2/FMA";
  std::vector<float> in = everyFloat();
  in.resize(in.size() / 16 * 16);
  const int64_t n = int64_t(in.size());
  std::vector<float> out(size_t(6 * n)), out16(size_t(3 * n));
  foldedAndPlain8(in.data(), n, out.data());
  const bool avx512 = hostHas("avx512f");
  if (avx512) folded16(in.data(), n, out16.data());
  const char* what[3] = {"expNarrow8", "expNarrow8<Neg>", "sigmoid8"};
  for (int k = 0; k < 3; ++k) {
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t got = std::bit_cast<uint32_t>(out[size_t(2 * k * n + i)]);
      const uint32_t want = std::bit_cast<uint32_t>(out[size_t((2 * k + 1) * n + i)]);
      const bool eq16 = !avx512 || std::bit_cast<uint32_t>(out16[size_t(k * n + i)]) == got;
      // expNarrow adds n to the exponent field: exact for normal results; below 2^-126 it
      // may differ from the multiply but stays under 2^-125, which 1 + e^x rounds away
      // (sigmoid's rows: the same bits everywhere).
      const float wantF = std::bit_cast<float>(want), gotF = std::bit_cast<float>(got);
      const bool tiny = k < 2 && wantF < std::numeric_limits<float>::min() && gotF >= 0.0f &&
                        gotF < std::ldexp(1.0f, -125);
      if ((got != want && !tiny) || !eq16) {
        if (first < 0) first = i;
        ++bad;
      }
    }
    EXPECT_EQ(bad, 0) << what[k] << ": first at x = " << (first >= 0 ? in[size_t(first)] : 0.0f) << " (got "
                      << (first >= 0 ? out[size_t(2 * k * n + first)] : 0.0f) << ", plain "
                      << (first >= 0 ? out[size_t((2 * k + 1) * n + first)] : 0.0f) << ")";
  }
}

}  // namespace
