// The FP16 and BF16 linear kernels (cpu/tactics/native_half.cpp: MatMul, Gemm, Conv and the
// fused anvil ops on nodes of precision kF16 / kBF16) through the kernel contract (the
// shared harness: one-node graph, supports, prepare, run between guards, 1 and 2 threads
// bitwise equal), each against
//  - its exact emulation: f16, the f32 native kernel of the same family on the weights
//    pre-rounded to half, bitwise; bf16, the reference on bf16-rounded weights and
//    activations within the f32 tolerance, and every pair of bf16 families (vdpbf16ps and
//    its emulation on the AVX2 and AVX-512 f32 kernels) bitwise equal (where the CPU has them);
//  - the f32 reference on the original data within the half-precision error (sanity).
// Shapes: M 1..63 (and the small-M 2..4), K 1..300 (odd K: a padded bf16 pair), N 1..100;
// Conv Cin 1/3/13, Cout 1/5/17, 1x1/3x3/5x5, pads, strides 2, dilations 2, batch 2;
// Gemm transposes/alpha/beta/C; epilogues (relu, gelu, silu, residual). FP16 limits:
// 65504, subnormals, +-0 weights; |w| >= 65520 refused. NativeHalfBench.DISABLED_Timing
// (--gtest_also_run_disabled_tests) times the kernels against the f32 ones.
#include <gtest/gtest.h>

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cpu/reference.h"
#include "native_kernel_test_util.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeLinearKernels(Kernels& k);  // cpu/tactics/native_linear.cpp
void registerNativeHalfKernels(Kernels& k);    // cpu/tactics/native_half.cpp
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

using namespace anvil::testing::nk;

runtime::Kernels& registry() {
  return anvil::testing::nk::registryOf<&runtime::registerNativeLinearKernels, &runtime::registerNativeHalfKernels>();
}

std::vector<const runtime::Kernel*> halfKernels() {
  std::vector<const runtime::Kernel*> out;
  for (const runtime::Kernel* k : registry().all())
    if (k->precision == DataType::kF16 || k->precision == DataType::kBF16) out.push_back(k);
  return out;
}

// ---------------------------------------------------------------------------------------
// Rounding as the spec defines it (independent of the kernels' code)

__attribute__((target("f16c"))) float roundF16(float x) {
  return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
float roundBF16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if (std::isnan(x)) return x;
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  float y;
  std::memcpy(&y, &u, 4);
  return y;
}

void roundTensor(Tensor& t, bool bf16) {
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = bf16 ? roundBF16(p[i]) : roundF16(p[i]);
}

// The case's graph and data with the weights (input 1) rounded, and for bf16 input 0 too.
Built roundedBuild(const Case& c, uint32_t seed, bool bf16) {
  Built b = build(c, seed);
  roundTensor(b.tensors[1], bf16);
  if (const ir::Tensor* init = b.node->input(1)->initializer()) {
    Tensor* w = const_cast<Tensor*>(init);
    if (w->raw() != b.tensors[1].raw()) roundTensor(*w, bf16);
  }
  if (bf16) roundTensor(b.tensors[0], true);
  return b;
}

// max |got - want| / max |want|.
double relError(const std::vector<float>& got, const Tensor& want) {
  double maxRef = 1e-30, maxErr = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    maxRef = std::max(maxRef, std::fabs(double(want.data<float>()[i])));
    const double e = std::fabs(double(got[size_t(i)]) - want.data<float>()[i]);
    maxErr = std::isnan(e) ? INFINITY : std::max(maxErr, e);
  }
  return maxErr / maxRef;
}

// ---------------------------------------------------------------------------------------
// The cases

ir::Attributes convAttrs(Dims k, Dims strides, Dims dilations, Dims pads) {
  ir::Attributes at;
  at.set("kernel_shape", k);
  if (!strides.empty()) at.set("strides", strides);
  if (!dilations.empty()) at.set("dilations", dilations);
  if (!pads.empty()) at.set("pads", pads);
  return at;
}

void setEpilogue(ir::Attributes& at, const char* act, int residual) {
  if (*act) at.set("activation", std::string(act));
  if (residual) {
    at.set("has_residual", int64_t(1));
    at.set("residual_order", std::string(residual == 1 ? "add_then_activate" : "activate_then_add"));
  }
}

std::vector<Case> allCases() {
  std::vector<Case> c;
  auto mm = [&](Dims a, Dims b, const std::string& name) {
    c.push_back({"MatMul_" + name, "MatMul", "", {a, b}, {false, true}, {}});
  };
  for (int64_t m : {1, 7, 17, 63})
    for (int64_t k : {1, 3, 17, 63, 300})
      for (int64_t n : {1, 7, 17, 33, 100})
        mm({m, k}, {k, n}, std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n));
  for (int64_t m : {2, 3, 4})  // the small-M kernels, several panels per call
    for (int64_t k : {17, 300}) mm({m, k}, {k, 100}, std::to_string(m) + "x" + std::to_string(k) + "x100");
  mm({130, 513}, {513, 70}, "130x513x70");  // several M blocks, three K blocks
  mm({2, 7, 17}, {17, 33}, "batchA_2x7x17x33");
  mm({2, 7, 17}, {1, 17, 33}, "batchB1_2x7x17x33");
  mm({7, 17}, {17}, "vecB_7x17");
  mm({17}, {17, 9}, "vecA_17x9");

  auto gemm = [&](const std::string& name, Dims a, Dims b, std::optional<Dims> cIn, int tA, int tB, float alpha,
                  float beta) {
    ir::Attributes at;
    if (tA) at.set("transA", int64_t(1));
    if (tB) at.set("transB", int64_t(1));
    if (alpha != 1.0f) at.set("alpha", alpha);
    if (beta != 1.0f) at.set("beta", beta);
    std::vector<std::optional<Dims>> in = {a, b};
    if (cIn) in.push_back(cIn);
    c.push_back({"Gemm_" + name, "Gemm", "", in, {false, true, true}, at});
  };
  gemm("7x17x33_CN", {7, 17}, {17, 33}, Dims{33}, 0, 0, 1.0f, 1.0f);
  gemm("17x63x33_tB_CMN_alpha", {17, 63}, {33, 63}, Dims{17, 33}, 0, 1, 0.5f, 2.0f);
  gemm("63x300x7_tA_tB", {300, 63}, {7, 300}, std::nullopt, 1, 1, 1.0f, 1.0f);
  gemm("1x300x100_C1", {1, 300}, {300, 100}, Dims{1}, 0, 0, 1.0f, 0.5f);
  gemm("3x64x40_tB", {3, 64}, {40, 64}, Dims{40}, 0, 1, 1.0f, 1.0f);
  gemm("2x301x17_tA_alpha", {301, 2}, {301, 17}, Dims{17}, 1, 0, 0.5f, 1.0f);  // few rows, strided A, odd K

  // Conv: every (Cin, Cout, kernel) with pads k/2, and by turns stride 2, dilation 2, batch 2.
  int idx = 0;
  for (int64_t ci : {1, 3, 13})
    for (int64_t co : {1, 5, 17})
      for (int64_t k : {1, 3, 5}) {
        const int v = idx++ % 4;
        const int64_t n = v == 3 ? 2 : 1, pad = k / 2;
        Dims strides = v == 1 ? Dims{2, 2} : Dims{}, dil = v == 2 ? Dims{2, 2} : Dims{};
        const int64_t pp = v == 2 ? 2 * pad : pad;
        const bool bias = v != 0;
        std::vector<std::optional<Dims>> in = {Dims{n, ci, 11, 13}, Dims{co, ci, k, k}};
        if (bias) in.push_back(Dims{co});
        c.push_back({"Conv_" + std::to_string(ci) + "to" + std::to_string(co) + "_k" + std::to_string(k) + "_v" +
                         std::to_string(v),
                     "Conv", "", in, {false, true, true}, convAttrs({k, k}, strides, dil, {pp, pp, pp, pp})});
      }
  c.push_back({"Conv_asym_pads", "Conv", "", {Dims{1, 3, 8, 9}, Dims{5, 3, 3, 2}, Dims{5}}, {false, true, true},
               convAttrs({3, 2}, {1, 2}, {}, {0, 1, 2, 1})});
  c.push_back({"Conv_K_blocks_3x3_40to9", "Conv", "", {Dims{1, 40, 9, 10}, Dims{9, 40, 3, 3}, Dims{9}},
               {false, true, true}, convAttrs({3, 3}, {}, {}, {1, 1, 1, 1})});

  // Fused epilogues.
  auto fused = [&](const std::string& name, const std::string& op, std::vector<std::optional<Dims>> in,
                   ir::Attributes at, const char* act, int residual, const Dims& out) {
    setEpilogue(at, act, residual);
    std::vector<bool> constant = {false, true, true, false};
    if (residual) {
      while (in.size() < 3) in.push_back(std::nullopt);
      in.push_back(out);
    }
    c.push_back({"Fused" + op + "_" + name, "Fused" + op, "anvil", in, constant, at});
  };
  for (auto [act, res, tag] : {std::tuple{"Relu", 0, "relu"}, std::tuple{"Gelu", 0, "gelu"},
                               std::tuple{"Relu", 1, "res_add_relu"}, std::tuple{"Silu", 2, "res_silu_add"}}) {
    const std::string t = tag;
    fused("7x17x33_biasN_" + t, "MatMul", {Dims{7, 17}, Dims{17, 33}, Dims{33}}, {}, act, res, {7, 33});
    fused("2x63x100_nobias_" + t, "MatMul", {Dims{2, 63}, Dims{63, 100}}, {}, act, res, {2, 100});
    ir::Attributes g;
    g.set("transB", int64_t(1));
    fused("17x63x33_tB_C_" + t, "Gemm", {Dims{17, 63}, Dims{33, 63}, Dims{33}}, g, act, res, {17, 33});
    fused("3x3_13to17_" + t, "Conv", {Dims{2, 13, 9, 10}, Dims{17, 13, 3, 3}, Dims{17}},
          convAttrs({3, 3}, {}, {}, {1, 1, 1, 1}), act, res, {2, 17, 9, 10});
    // 1x1 over 323 pixels: the f16 kernels apply the epilogue in the register tiles.
    fused("1x1_13to17_big_" + t, "Conv", {Dims{1, 13, 17, 19}, Dims{17, 13, 1, 1}, Dims{17}},
          convAttrs({1, 1}, {}, {}, {}), act, res, {1, 17, 17, 19});
  }
  return c;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> c = allCases();
  return c;
}

// (kernel, case) pairs; the precision is set on the node before supports().
std::vector<Param> allParams() {
  std::vector<Param> out;
  for (size_t i = 0; i < cases().size(); ++i) {
    const Case& c = cases()[i];
    Built b = build(c, 1);
    for (const runtime::Kernel* k : halfKernels()) {
      if (k->op != c.op || k->domain != c.domain) continue;
      const_cast<ir::Node*>(b.node)->setPrecision(k->precision);
      if (k->supports(*b.node, b.types())) out.push_back({k->name, i, c.name});
    }
  }
  return out;
}

std::string replacePrefix(const std::string& name, const std::string& from, const std::string& to) {
  return name.compare(0, from.size(), from) == 0 ? to + name.substr(from.size()) : name;
}

// Runs k on b (prepared for 2 threads) with 1 and 2 threads: guards, workspace, bitwise
// equality across thread counts; returns the 1-thread output.
std::vector<float> runChecked(const runtime::Kernel& k, const Built& b, const Dims& outDims) {
  const PreparedKernel pk = prepare(k, b, 2);
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2}) {
    auto ex = runtime::makeCpuExecutor(threads);
    const RunResult r = runKernel(k, pk, b, outDims, *ex);
    EXPECT_TRUE(r.guardsIntact) << k.name << " wrote outside the output (threads=" << threads << ")";
    EXPECT_TRUE(r.workspaceIntact) << k.name << " wrote past the workspace (threads=" << threads << ")";
    outs.push_back(r.out);
  }
  EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4), 0)
      << k.name << ": 1 and 2 threads differ bitwise";
  return outs[0];
}

class NativeHalf : public ::testing::TestWithParam<Param> {};

TEST_P(NativeHalf, MatchesEmulationAndReference) {
  const Case& c = cases()[GetParam().caseIndex];
  const runtime::Kernel* k = registry().find(Device::kCPU, c.op, c.domain, GetParam().kernel);
  ASSERT_NE(k, nullptr);
  const bool bf16 = k->precision == DataType::kBF16;
  if (!runtime::hostHasAll(k->requirements))
    GTEST_SKIP() << (bf16 && runtime::hostHas("avx512f") ? "skipped: no AVX-512 BF16" : "skipped: no AVX-512");
  const uint32_t seed = uint32_t(GetParam().caseIndex) * 7919u + 1;
  Built b = build(c, seed);
  const_cast<ir::Node*>(b.node)->setPrecision(k->precision);
  const Tensor want = reference(b);
  const PreparedKernel pk = prepare(*k, b, 2);
  EXPECT_EQ(pk.prepared.packedInputs, std::vector<int>{1}) << "the constant weight was not prepared";
  const std::vector<float> got = runChecked(*k, b, want.dims());

  const Built rb = roundedBuild(c, seed, bf16);
  const Tensor emulated = reference(rb);
  EXPECT_EQ(compare(got, emulated), "") << k->name << " against the reference on rounded data";
  // Sanity against f32 on the original data: half rounding of the weights (2^-11 relative)
  // and for bf16 of both operands (2^-8 each) over sums of up to 300 terms.
  EXPECT_LE(relError(got, want), bf16 ? 3e-2 : 3e-3) << k->name;

  if (!bf16) {  // the f32 kernel of the same family on the rounded weights: the same bits
    const runtime::Kernel* f32 = registry().find(Device::kCPU, c.op, c.domain, replacePrefix(k->name, "f16_", "f32_"));
    ASSERT_NE(f32, nullptr) << replacePrefix(k->name, "f16_", "f32_");
    const PreparedKernel pf = prepare(*f32, rb, 2);
    auto ex = runtime::makeCpuExecutor(1);
    const RunResult r = runKernel(*f32, pf, rb, want.dims(), *ex);
    EXPECT_EQ(std::memcmp(r.out.data(), got.data(), got.size() * 4), 0)
        << k->name << " differs bitwise from " << f32->name << " on half-rounded weights";
  } else {  // every bf16 family of the op (vdpbf16ps and the two emulations): the same bits
    for (const runtime::Kernel* o : halfKernels()) {
      if (o == k || o->op != c.op || o->domain != c.domain || o->precision != DataType::kBF16 ||
          !runtime::hostHasAll(o->requirements))
        continue;
      const std::vector<float> other = runChecked(*o, b, want.dims());
      EXPECT_EQ(std::memcmp(other.data(), got.data(), got.size() * 4), 0)
          << k->name << " differs bitwise from " << o->name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Native, NativeHalf, ::testing::ValuesIn(allParams()),
                         [](const ::testing::TestParamInfo<Param>& i) {
                           return i.param.kernel + "__" + i.param.caseName;
                         });

TEST(NativeHalfKernels, EveryOpPrecisionAndIsaRegistered) {
  auto endsWith = [](const std::string& s, const std::string& t) {
    return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
  };
  const std::vector<std::pair<std::string, std::string>> families = {
      {"f16_", "__avx2"}, {"f16_", "__avx512"}, {"bf16_", "__avx2"}, {"bf16_", "__avx512"}, {"bf16_", "__avx512bf16"}};
  for (const auto& [prec, isa] : families)
    for (const char* op : {"MatMul", "Gemm", "Conv", "FusedMatMul", "FusedGemm", "FusedConv"}) {
      int n = 0;
      for (const runtime::Kernel* k : halfKernels())
        if (k->op == op && k->name.rfind(prec, 0) == 0 && endsWith(k->name, isa)) {
          ++n;
          EXPECT_EQ(k->precision, prec == "f16_" ? DataType::kF16 : DataType::kBF16) << k->name;
        }
      EXPECT_EQ(n, 1) << prec << isa << " " << op;
    }
}

// Nodes of another precision, variable weights and grouped Conv are not served.
TEST(NativeHalfKernels, SupportsOnlyTheirPrecisionAndConstantWeights) {
  const Case constB{"mm", "MatMul", "", {Dims{3, 5}, Dims{5, 4}}, {false, true}, {}};
  const Case varB{"mm", "MatMul", "", {Dims{3, 5}, Dims{5, 4}}, {false, false}, {}};
  ir::Attributes g2 = convAttrs({3, 3}, {}, {}, {1, 1, 1, 1});
  g2.set("group", int64_t(2));
  const Case grouped{"conv", "Conv", "", {Dims{1, 4, 5, 5}, Dims{4, 2, 3, 3}}, {false, true}, g2};
  for (const runtime::Kernel* k : halfKernels()) {
    if (k->op == "MatMul") {
      Built b = build(constB, 1);
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " on an f32 node";
      const_cast<ir::Node*>(b.node)->setPrecision(k->precision == DataType::kF16 ? DataType::kBF16 : DataType::kF16);
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " on a node of the other precision";
      const_cast<ir::Node*>(b.node)->setPrecision(k->precision);
      EXPECT_TRUE(k->supports(*b.node, b.types())) << k->name;
      Built v = build(varB, 1);
      const_cast<ir::Node*>(v.node)->setPrecision(k->precision);
      EXPECT_FALSE(k->supports(*v.node, v.types())) << k->name << " with a variable B";
    }
    if (k->op == "Conv") {
      Built b = build(grouped, 1);
      const_cast<ir::Node*>(b.node)->setPrecision(k->precision);
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " on a grouped Conv";
    }
  }
}

// Weights at the FP16 limits: 65504 (the largest half), values that round to it, half
// subnormals, f32 denormals (to 0), +0 and -0: the f16 kernels equal the f32 ones on the
// rounded weights bitwise; |w| >= 65520 (rounds to inf) is refused naming the node.
TEST(NativeHalfKernels, Fp16Limits) {
  const Case c{"limits", "MatMul", "", {Dims{5, 8}, Dims{8, 9}}, {false, true}, {}};
  const float special[] = {65504.0f, -65504.0f, 65519.0f, 6e-8f, -3e-6f, 1e-40f, 0.0f, -0.0f, 1e-4f, 2.0f};
  for (const runtime::Kernel* k : halfKernels()) {
    if (k->op != "MatMul" || k->precision != DataType::kF16) continue;
    if (!runtime::hostHasAll(k->requirements)) continue;
    Built b = build(c, 3);
    Tensor* w = const_cast<Tensor*>(b.node->input(1)->initializer());
    for (int64_t i = 0; i < w->numel(); ++i) w->data<float>()[i] = special[i % 10] * (i % 3 == 0 ? 1.0f : 1e-4f);
    b.tensors[1] = *w;
    const_cast<ir::Node*>(b.node)->setPrecision(DataType::kF16);
    ASSERT_TRUE(k->supports(*b.node, b.types()));
    const std::vector<float> got = runChecked(*k, b, {5, 9});
    Built r = build(c, 3);
    Tensor* rw = const_cast<Tensor*>(r.node->input(1)->initializer());
    for (int64_t i = 0; i < rw->numel(); ++i) rw->data<float>()[i] = roundF16(w->data<float>()[i]);
    r.tensors[1] = *rw;
    EXPECT_EQ(roundF16(65519.0f), 65504.0f);
    EXPECT_EQ(roundF16(6e-8f), 5.9604645e-08f);  // the smallest half subnormal
    const runtime::Kernel* f32 = registry().find(Device::kCPU, "MatMul", "", replacePrefix(k->name, "f16_", "f32_"));
    ASSERT_NE(f32, nullptr);
    auto ex = runtime::makeCpuExecutor(1);
    const RunResult want = runKernel(*f32, prepare(*f32, r, 1), r, {5, 9}, *ex);
    EXPECT_EQ(std::memcmp(want.out.data(), got.data(), got.size() * 4), 0) << k->name;
    // Out of range: refused.
    w->data<float>()[7] = 65520.0f;
    try {
      prepare(*k, b, 1);
      ADD_FAILURE() << k->name << " accepted a weight of 65520";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(b.node->label()), std::string::npos) << e.what();
    }
  }
}

// ---------------------------------------------------------------------------------------
// Timing: --gtest_also_run_disabled_tests --gtest_filter='NativeHalfBench.*'

// One kernel's step ready to time: iters runs per sample.
struct Timed {
  const runtime::Kernel* k;
  Built b;
  PreparedKernel pk;
  std::unique_ptr<Step> step;
  int iters = 1;
  std::vector<double> ms;
};

double sampleMs(Timed& t, runtime::Executor& ex) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < t.iters; ++i) t.step->run(ex);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / t.iters;
}

TEST(NativeHalfBench, DISABLED_Timing) {
  const int threads = std::getenv("ANVIL_BENCH_THREADS") ? std::atoi(std::getenv("ANVIL_BENCH_THREADS")) : 1;
  struct Shape {
    const char* name;
    Case c;
    Dims out;
    double flops, weightBytesF32;
  };
  ir::Attributes tB;
  tB.set("transB", int64_t(1));
  const std::vector<Shape> shapes = {
      {"MatMul 1x768x3072", {"a", "MatMul", "", {Dims{1, 768}, Dims{768, 3072}}, {false, true}, {}}, {1, 3072},
       2.0 * 768 * 3072, 4.0 * 768 * 3072},
      {"MatMul 1x3072x768", {"b", "MatMul", "", {Dims{1, 3072}, Dims{3072, 768}}, {false, true}, {}}, {1, 768},
       2.0 * 768 * 3072, 4.0 * 768 * 3072},
      {"Gemm 1x2048x1000 tB", {"c", "Gemm", "", {Dims{1, 2048}, Dims{1000, 2048}, Dims{1000}}, {false, true, true}, tB},
       {1, 1000}, 2.0 * 2048 * 1000, 4.0 * 2048 * 1000},
      {"MatMul 197x384x1536", {"d", "MatMul", "", {Dims{197, 384}, Dims{384, 1536}}, {false, true}, {}}, {197, 1536},
       2.0 * 197 * 384 * 1536, 4.0 * 384 * 1536},
      {"MatMul 196x256x1024", {"e", "MatMul", "", {Dims{196, 256}, Dims{256, 1024}}, {false, true}, {}}, {196, 1024},
       2.0 * 196 * 256 * 1024, 4.0 * 256 * 1024},
      {"Conv 3x3 64->64 56x56",
       {"f", "Conv", "", {Dims{1, 64, 56, 56}, Dims{64, 64, 3, 3}, Dims{64}}, {false, true, true},
        convAttrs({3, 3}, {}, {}, {1, 1, 1, 1})},
       {1, 64, 56, 56}, 2.0 * 64 * 64 * 9 * 56 * 56, 4.0 * 64 * 64 * 9},
  };
  // The machine is shared and noisy: the kernels of a shape are sampled in turns (11
  // rounds) and each reports its median and best sample.
  auto ex = runtime::makeCpuExecutor(threads);
  for (const Shape& s : shapes) {
    std::vector<std::unique_ptr<Timed>> ts;
    for (const runtime::Kernel* k : registry().all()) {
      if (k->op != s.c.op || k->domain != "" || !runtime::hostHasAll(k->requirements)) continue;
      if (k->name.find("prepacked") == std::string::npos || k->name.find("4x8") != std::string::npos) continue;
      auto t = std::make_unique<Timed>();
      t->k = k;
      t->b = build(s.c, 5);
      const_cast<ir::Node*>(t->b.node)->setPrecision(k->precision);
      if (!k->supports(*t->b.node, t->b.types())) continue;
      t->pk = prepare(*k, t->b, threads);
      t->step = std::make_unique<Step>(*k, t->pk, t->b, s.out, true);
      while (sampleMs(*t, *ex) * t->iters < 20.0) t->iters *= 2;
      ts.push_back(std::move(t));
    }
    for (int round = 0; round < 11; ++round)
      for (auto& t : ts) t->ms.push_back(sampleMs(*t, *ex));
    for (auto& t : ts) {
      std::sort(t->ms.begin(), t->ms.end());
      const double med = t->ms[t->ms.size() / 2], best = t->ms.front();
      const double wBytes = s.weightBytesF32 * (t->k->precision == DataType::kF32 ? 1.0 : 0.5);
      std::printf("%-22s %-42s median %8.4f ms (best %8.4f) %6.1f GFLOP/s %5.1f GB/s weights\n", s.name,
                  t->k->name.c_str(), med, best, s.flops / med * 1e-6, wBytes / med * 1e-6);
    }
  }
}

}  // namespace
