// The 3x3 convolution kernels (cpu/tactics/native_winograd.cpp: Winograd F(4x4, 3x3) for
// Conv / anvil.FusedConv; cpu/tactics/native_dwconv.cpp: the depthwise 3x3, 5x5, 7x7 row kernels)
// against the reference kernel, through the kernel contract: a
// one-node graph, supports(), prepare() (the constant filter is transformed; its raw input
// is then replaced by NaNs to prove run() reads only the blob), run() on views with the
// output between sentinel guards and a guarded workspace, with 1 and 2 executor threads,
// which must agree bitwise. Shapes: H, W in {1, 3, 4, 5, 7, 9, 14, 17, 56}, C and K in
// {1, 3, 8, 17, 64}, zero / one / asymmetric / SAME / VALID padding, batches 1 and 2, with
// and without bias, each activation and residual order; depthwise 3x3, 5x5 and 7x7 at strides
// 1 and 2.
// NativeWinogradBench.DISABLED_Timing measures against the im2col kernels on resnet18's
// 3x3 layers, DISABLED_DepthwiseTiming against the direct depthwise kernel on
// mobilenet_v2's and efficientnet_b0's (3x3 and 5x5).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <random>

#include <time.h>

#include "cpu/reference.h"
#include "native_kernel_test_util.h"
#include "op_test_util.h"
#include "runtime/clock.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeWinogradKernels(Kernels& k);  // cpu/tactics/native_winograd.cpp
void registerNativeLinearKernels(Kernels& k);    // cpu/tactics/native_linear.cpp (timing baseline)
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;
using anvil::testing::In;

namespace {

using namespace anvil::testing::nk;

// ---------------------------------------------------------------------------------------
// The cases

struct ConvSpec {
  Dims x;
  int64_t K;
  bool bias = true;
  Dims pads;            // empty: none
  std::string autoPad;  // "" NOTSET
};

ir::Attributes convAttrs(const ConvSpec& s) {
  ir::Attributes at;
  if (!s.pads.empty()) at.set("pads", s.pads);
  if (!s.autoPad.empty()) at.set("auto_pad", s.autoPad);
  at.set("kernel_shape", Dims{3, 3});
  return at;
}

std::string dimsName(const Dims& d) {
  std::string s;
  for (int64_t v : d) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
}

Case convCase(const std::string& name, const ConvSpec& s) {
  std::vector<std::optional<Dims>> in = {s.x, Dims{s.K, s.x[1], 3, 3}};
  if (s.bias) in.push_back(Dims{s.K});
  return {"Conv_" + name, "Conv", "", in, {false, true, true}, convAttrs(s)};
}

std::vector<Case> convCases() {
  std::vector<Case> c;
  const int64_t sizes[] = {1, 3, 4, 5, 7, 9, 14, 17, 56};
  // Every H with three widths (tails of the 4x4 tiles on both axes), padding 1.
  for (size_t i = 0; i < 9; ++i)
    for (size_t j : {i, (i + 3) % 9, (i + 7) % 9}) {
      const Dims x{1, 3, sizes[i], sizes[j]};
      c.push_back(convCase("pad1_" + dimsName(x), {x, 5, true, {1, 1, 1, 1}}));
    }
  // No padding where the image holds the filter.
  for (int64_t h : {3, 4, 5, 7, 9, 14, 17})
    for (int64_t w : {3, 5, 17}) {
      const Dims x{1, 2, h, w};
      c.push_back(convCase("pad0_" + dimsName(x), {x, 3, false, {}}));
    }
  // Every (C, K) pair: channel tails of the 16-wide panels and of the 64-channel blocks.
  for (int64_t ch : {1, 3, 8, 17, 64})
    for (int64_t k : {1, 3, 8, 17, 64}) {
      const Dims x{1, ch, 9, 7};
      c.push_back(convCase("ch_" + dimsName(x) + "_K" + std::to_string(k), {x, k, true, {1, 1, 1, 1}}));
    }
  c.push_back(convCase("K130_C17", {{1, 17, 14, 9}, 130, true, {1, 1, 1, 1}}));  // three K blocks, the last partial
  c.push_back(convCase("C300_K20", {{1, 300, 7, 6}, 20, true, {1, 1, 1, 1}}));   // the wide-C tile block
  // Asymmetric and large pads, auto_pad.
  c.push_back(convCase("asym_0121", {{1, 4, 9, 14}, 6, true, {0, 1, 2, 1}}));
  c.push_back(convCase("asym_2013", {{2, 3, 7, 5}, 4, true, {2, 0, 1, 3}}));
  c.push_back(convCase("asym_1000", {{1, 8, 17, 17}, 8, false, {1, 0, 0, 0}}));
  c.push_back(convCase("same_upper", {{1, 5, 14, 17}, 7, true, {}, "SAME_UPPER"}));
  c.push_back(convCase("same_lower", {{2, 5, 9, 4}, 7, false, {}, "SAME_LOWER"}));
  c.push_back(convCase("valid", {{1, 5, 17, 9}, 7, true, {}, "VALID"}));
  // Batch 2, more tiles than one block (C < 256: 24 tiles per block; C >= 256: 12).
  c.push_back(convCase("batch2_17x56", {{2, 8, 17, 56}, 17, true, {1, 1, 1, 1}}));
  c.push_back(convCase("batch2_256ch", {{2, 256, 9, 14}, 17, true, {1, 1, 1, 1}}));
  c.push_back(convCase("resnet_64x56x56", {{1, 64, 56, 56}, 64, true, {1, 1, 1, 1}}));
  return c;
}

// Depthwise k x k (group == C, W [C, 1, k, k]): strides 1 and 2, widths around the 8- and
// 16-output steps, odd heights (the last row of a stride-1 pair alone), pads.
Case dwCase(const std::string& name, const Dims& x, int64_t stride, Dims pads, bool bias = true,
            const std::string& autoPad = "", bool constW = true, int64_t k = 3) {
  ir::Attributes at;
  at.set("group", x[1]);
  at.set("kernel_shape", Dims{k, k});
  if (stride != 1) at.set("strides", Dims{stride, stride});
  if (!pads.empty()) at.set("pads", pads);
  if (!autoPad.empty()) at.set("auto_pad", autoPad);
  std::vector<std::optional<Dims>> in = {x, Dims{x[1], 1, k, k}};
  if (bias) in.push_back(Dims{x[1]});
  return {"Conv_dw" + (k == 3 ? std::string() : std::to_string(k)) + "_" + name, "Conv", "", in, {false, constW, true}, at};
}

std::vector<Case> dwCases() {
  std::vector<Case> c;
  const int64_t sizes[] = {1, 3, 4, 5, 7, 9, 14, 17, 56};
  for (int64_t k : {3, 5, 7}) {
    const int64_t h = k / 2;  // "same" padding
    for (int64_t stride : {1, 2})
      for (size_t i = 0; i < 9; ++i)
        for (size_t j : {i, (i + 4) % 9}) {
          const Dims x{1, 3, sizes[i], sizes[j]};
          c.push_back(dwCase("s" + std::to_string(stride) + "_pad" + std::to_string(h) + "_" + dimsName(x), x, stride,
                             {h, h, h, h}, true, "", true, k));
        }
    for (int64_t stride : {1, 2}) {
      const std::string s = "s" + std::to_string(stride) + "_";
      c.push_back(dwCase(s + "pad0_2x5x17x33", {2, 5, 17, 33}, stride, {}, false, "", true, k));
      c.push_back(dwCase(s + "asym_0121", {1, 8, 14, 25}, stride, {0, 1, 2, 1}, true, "", true, k));
      c.push_back(dwCase(s + "asym_2013", {1, 4, 9, 40}, stride, {2, 0, 1, 3}, true, "", true, k));
      c.push_back(dwCase(s + "same_upper", {1, 6, 15, 31}, stride, {}, true, "SAME_UPPER", true, k));
      c.push_back(dwCase(s + "same_lower", {1, 6, 16, 30}, stride, {}, true, "SAME_LOWER", true, k));
      c.push_back(dwCase(s + "valid", {1, 6, 15, 31}, stride, {}, true, "VALID", true, k));
      c.push_back(dwCase(s + "varW", {2, 17, 12, 23}, stride, {h, h, h, h}, true, "", false, k));
      c.push_back(dwCase(s + "mbv2_32x112", {1, 32, 112, 112}, stride, {h, h, h, h}, true, "", true, k));
    }
    // Pads wider than the filter's reach on one side (rows and columns of zeros only).
    c.push_back(dwCase("s1_bigpad_3142", {1, 5, 11, 19}, 1, {3, 1, 4, 2}, true, "", true, k));
    c.push_back(dwCase("s2_bigpad_4031", {1, 5, 10, 20}, 2, {4, 0, 3, 1}, true, "", true, k));
  }
  return c;
}

struct Epi {
  const char* name;
  const char* act;
  std::vector<float> params;
  int residual;  // 0 none, 1 add_then_activate, 2 activate_then_add
};
const std::vector<Epi>& epilogues() {
  static const std::vector<Epi> e = {
      {"none", "", {}, 0},          {"relu", "Relu", {}, 0},
      {"clip", "Clip", {-0.5f, 0.75f}, 0}, {"sigmoid", "Sigmoid", {}, 0},
      {"tanh", "Tanh", {}, 0},      {"leaky", "LeakyRelu", {0.1f}, 0},
      {"hardsigmoid", "HardSigmoid", {0.2f, 0.5f}, 0}, {"hardswish", "HardSwish", {}, 0},
      {"silu", "Silu", {}, 0},      {"gelu", "Gelu", {}, 0},
      {"gelutanh", "GeluTanh", {}, 0}, {"res_add_relu", "Relu", {}, 1},
      {"res_relu_add", "Relu", {}, 2}, {"res_only", "", {}, 1},
      {"res_silu_add", "Silu", {}, 2},
  };
  return e;
}

std::vector<Case> fusedCases() {
  std::vector<Case> c;
  struct S {
    const char* name;
    ConvSpec s;
  };
  const S specs[] = {{"2x17x9x14_K19", {{2, 17, 9, 14}, 19, true, {1, 1, 1, 1}}},
                     {"1x8x7x17_K70_asym", {{1, 8, 7, 17}, 70, false, {0, 1, 2, 0}}},
                     // 80 tiles in 3 blocks that end mid tile row: the epilogue's row segments
                     {"1x4x30x37_K9", {{1, 4, 30, 37}, 9, true, {1, 1, 1, 1}}}};
  for (const Epi& e : epilogues())
    for (const S& sp : specs) {
      const ConvSpec& s = sp.s;
      ir::Attributes at = convAttrs(s);
      if (*e.act) at.set("activation", std::string(e.act));
      if (!e.params.empty()) at.set("activation_params", e.params);
      std::vector<std::optional<Dims>> in = {s.x, Dims{s.K, s.x[1], 3, 3}};
      in.push_back(s.bias ? std::optional<Dims>(Dims{s.K}) : std::nullopt);
      std::vector<bool> constant = {false, true, true};
      if (e.residual) {
        at.set("has_residual", int64_t(1));
        at.set("residual_order", std::string(e.residual == 1 ? "add_then_activate" : "activate_then_add"));
        const int64_t pt = s.pads[0], pl = s.pads[1], pb = s.pads[2], pr = s.pads[3];
        in.push_back(Dims{s.x[0], s.K, s.x[2] + pt + pb - 2, s.x[3] + pl + pr - 2});
        constant.push_back(false);
      }
      c.push_back({std::string("FusedConv_") + sp.name + "_" + e.name, "FusedConv", "anvil", in, constant, at});
    }
  for (const Epi& e : epilogues())
    for (int64_t k : {3, 5, 7})
    for (int64_t stride : {1, 2}) {
      const int64_t h = k / 2;
      Case d = dwCase("", {2, 6, 13, 21}, stride, {h, h, h, h}, true, "", true, k);
      ir::Attributes& at = d.attrs;
      if (*e.act) at.set("activation", std::string(e.act));
      if (!e.params.empty()) at.set("activation_params", e.params);
      if (e.residual) {
        at.set("has_residual", int64_t(1));
        at.set("residual_order", std::string(e.residual == 1 ? "add_then_activate" : "activate_then_add"));
        d.inputs.push_back(stride == 1 ? Dims{2, 6, 13, 21} : Dims{2, 6, 7, 11});
        d.constant.push_back(false);
      }
      c.push_back({"FusedConv_dw" + (k == 3 ? std::string() : std::to_string(k)) + "_s" + std::to_string(stride) +
                       "_2x6x13x21_" + e.name,
                   "FusedConv", "anvil", d.inputs, d.constant, at});
    }
  return c;
}

const std::vector<Case>& allCases() {
  static const std::vector<Case> cases = [] {
    std::vector<Case> all;
    for (auto f : {convCases, dwCases, fusedCases})
      for (Case& c : f()) all.push_back(std::move(c));
    return all;
  }();
  return cases;
}

// The shared harness (Built, build, reference, prepare, Step): tests/unit/native_kernel_test_util.h.

// Tolerance: max |got - want| <= 2e-4 * max |want|. Winograd F(4x4, 3x3) sums the same
// products in a transformed basis: the input transform's weights reach 5, the output's 8
// and the filter's go down to 1/24, so the f32 rounding of the transformed values is
// amplified about 10-50x over a direct sum (measured on these cases: up to 4e-5 of the
// output range; on resnet18's layer shapes ~1e-5, see the timing printout). 2e-4 leaves
// a margin and still catches any indexing mistake (an error of order 1).
// The depthwise kernel sums its 9 products directly (FMA, another order than the
// reference): 3e-5 as for the linear kernels.
constexpr double kTolerance = 2e-4, kDirectTolerance = 3e-5;

double relError(const std::vector<float>& got, const Tensor& want, int64_t* worst = nullptr) {
  double maxRef = 0, maxErr = 0;
  for (int64_t i = 0; i < want.numel(); ++i) maxRef = std::max(maxRef, std::fabs(double(want.data<float>()[i])));
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double e = std::fabs(double(got[size_t(i)]) - want.data<float>()[i]);
    if (!(e <= maxErr)) {
      maxErr = std::isnan(e) ? INFINITY : e;
      if (worst) *worst = i;
    }
  }
  return maxErr / std::max(maxRef, 1e-6);
}

std::string compareWithin(const std::vector<float>& got, const Tensor& want, double tolerance = kTolerance) {
  int64_t worst = 0;
  const double rel = relError(got, want, &worst);
  if (rel <= tolerance) return "";
  char msg[200];
  std::snprintf(msg, sizeof msg, "relative error %.3g at flat index %lld (got %.9g, want %.9g)", rel,
                (long long)worst, got[size_t(worst)], want.data<float>()[worst]);
  return msg;
}

// ---------------------------------------------------------------------------------------
// The parametrised test: every (3x3 kernel, case) pair the kernel supports

// The family's kernels in a registry of their own (unit_tests does not link the runtime).
runtime::Kernels& registry() { return anvil::testing::nk::registryOf<&runtime::registerNativeWinogradKernels>(); }

std::vector<const runtime::Kernel*> winogradKernels() {
  std::vector<const runtime::Kernel*> out;
  for (const runtime::Kernel* k : registry().all())
    if (k->device == Device::kCPU) out.push_back(k);
  return out;
}

std::vector<Param> allParams() { return supportedPairs(winogradKernels(), allCases()); }

class NativeWinograd : public ::testing::TestWithParam<Param> {};

TEST_P(NativeWinograd, MatchesReferenceBitwiseAcrossThreads) {
  const Case& c = allCases()[GetParam().caseIndex];
  const runtime::Kernel* k = registry().find(Device::kCPU, c.op, c.domain, GetParam().kernel);
  ASSERT_NE(k, nullptr);
  if (const std::string why = skipReason(*k); !why.empty()) GTEST_SKIP() << why;
  const Built b = build(c, uint32_t(GetParam().caseIndex) * 7919u + 1);
  const Tensor want = reference(b);
  const PreparedKernel pk = prepare(*k, b, 2);
  if (c.constant[1]) {
    EXPECT_EQ(pk.prepared.packedInputs, std::vector<int>{1}) << "the constant filter was not prepared";
  }
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2}) {
    auto ex = runtime::makeCpuExecutor(threads);
    const RunResult r = runKernel(*k, pk, b, want.dims(), *ex);
    EXPECT_TRUE(r.guardsIntact) << "wrote outside the output (threads=" << threads << ")";
    EXPECT_TRUE(r.workspaceIntact) << "wrote past the workspace (threads=" << threads << ")";
    const double tol = k->name.find("dwconv") != std::string::npos ? kDirectTolerance : kTolerance;
    EXPECT_EQ(compareWithin(r.out, want, tol), "") << k->name << " on " << c.name << " threads=" << threads;
    outs.push_back(r.out);
  }
  EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4), 0) << "1 and 2 threads differ bitwise";
}

INSTANTIATE_TEST_SUITE_P(Native, NativeWinograd, ::testing::ValuesIn(allParams()),
                         [](const ::testing::TestParamInfo<Param>& p) {
                           return p.param.kernel + "__" + allCases()[p.param.caseIndex].name;
                         });

// ---------------------------------------------------------------------------------------
// Registration, declines, preparation

TEST(NativeWinogradRegistration, PortableAvx2AndAvx512ForConvAndFusedConv) {
  for (const auto& [op, domain] : std::vector<std::pair<std::string, std::string>>{{"Conv", ""}, {"FusedConv", "anvil"}}) {
    int portable = 0, avx2 = 0, avx512 = 0;
    for (const runtime::Kernel* k : winogradKernels()) {
      if (k->op != op || k->domain != domain || k->name.find("winograd") == std::string::npos) continue;
      EXPECT_EQ(k->precision, DataType::kF32) << k->name;
      ASSERT_TRUE(k->supports && k->prepare && k->run) << k->name;
      if (k->requirements.empty()) ++portable;
      if (k->requirements == std::vector<std::string>{"avx2", "fma"}) ++avx2;
      if (std::find(k->requirements.begin(), k->requirements.end(), "avx512f") != k->requirements.end()) ++avx512;
    }
    EXPECT_EQ(portable, 1) << op;
    EXPECT_EQ(avx2, 1) << op;
    EXPECT_EQ(avx512, 1) << op;
  }
}

TEST(NativeWinogradRegistration, EveryKernelHasCases) {
  std::map<std::string, int> covered;
  for (const Param& p : allParams()) covered[allCases()[p.caseIndex].op + "/" + p.kernel]++;
  for (const runtime::Kernel* k : winogradKernels()) {
    if (k->name.find("gemv") != std::string::npos) continue;  // tests/unit/native_conv_small_test.cpp
    EXPECT_GE(covered[k->op + "/" + k->name], 30) << k->op << "/" << k->name << " is barely exercised";
  }
}

TEST(NativeWinogradSupports, DeclinesWhatItCannotRun) {
  // A Conv over X [1, 4, 9, 9] with an initializer filter of extents w, or a runtime one.
  auto supports = [](const runtime::Kernel* k, Dims w, ir::Attributes attrs, bool constW = true,
                     DataType dt = DataType::kF32, Dims x = {1, 4, 9, 9}) {
    ir::Graph g;  // no shape inference: it would reject the bad attributes before supports() sees them
    const ir::TensorType xt{dt, ir::Shape::fromExtents(x)};
    const Tensor wt(dt, w);
    ir::Value* xv = g.addValue("x", xt);
    ir::Value* wv = constW ? g.addInitializer("w", wt) : g.addValue("w", wt.type());
    ir::Node* n = g.addNode("Conv", "", "n0", {xv, wv}, {"y"});
    n->attrs() = attrs;
    return k->supports(*n, {xt, wt.type()});
  };
  ir::Attributes none, s2, d2, g2, badPad, pad1;
  s2.set("strides", Dims{2, 2});
  d2.set("dilations", Dims{2, 2});
  g2.set("group", int64_t(2));
  badPad.set("auto_pad", std::string("SIDEWAYS"));
  pad1.set("pads", Dims{1, 1, 1, 1});
  int checked = 0;
  ir::Attributes dw = pad1, dwS2 = pad1, dwS3 = pad1, dwD2 = pad1;
  dw.set("group", int64_t(4));
  dwS2.set("group", int64_t(4));
  dwS2.set("strides", Dims{2, 2});
  dwS3.set("group", int64_t(4));
  dwS3.set("strides", Dims{3, 3});
  dwD2.set("group", int64_t(4));
  dwD2.set("dilations", Dims{2, 2});
  ir::Attributes dwS12 = dw;
  dwS12.set("strides", Dims{1, 2});
  int checkedDw = 0;
  for (const runtime::Kernel* k : winogradKernels()) {
    if (k->op != "Conv" || k->name.find("dwconv") == std::string::npos) continue;
    const int64_t K = k->name.find("7x7") != std::string::npos   ? 7
                      : k->name.find("5x5") != std::string::npos ? 5
                                                                 : 3;
    const int64_t other = K == 3 ? 5 : 3;
    // kernel_shape set to the filter's (the attribute wins over W's extents when present)
    auto ks = [](ir::Attributes a, int64_t s) {
      a.set("kernel_shape", Dims{s, s});
      return a;
    };
    EXPECT_TRUE(supports(k, {4, 1, K, K}, dw)) << k->name;
    EXPECT_TRUE(supports(k, {4, 1, K, K}, ks(dw, K))) << k->name;
    EXPECT_TRUE(supports(k, {4, 1, K, K}, dwS2)) << k->name;
    EXPECT_TRUE(supports(k, {4, 1, K, K}, dw, false)) << k->name << " declined a runtime filter";
    EXPECT_FALSE(supports(k, {4, 1, K, K}, dwS3)) << k->name << " took stride 3";
    EXPECT_FALSE(supports(k, {4, 1, K, K}, dwS12)) << k->name << " took strides 1, 2";
    EXPECT_FALSE(supports(k, {4, 1, K, K}, dwD2)) << k->name << " took dilation 2";
    EXPECT_FALSE(supports(k, {8, 1, K, K}, dw)) << k->name << " took a channel multiplier of 2";
    EXPECT_FALSE(supports(k, {4, 1, other, other}, dw)) << k->name << " took a " << other << "x" << other << " filter";
    EXPECT_FALSE(supports(k, {4, 1, other, other}, ks(dw, other))) << k->name << " took kernel_shape " << other;
    EXPECT_FALSE(supports(k, {4, 1, 9, 9}, dw)) << k->name << " took a 9x9 filter";
    EXPECT_FALSE(supports(k, {4, 1, K, other}, dw)) << k->name << " took a non-square filter";
    EXPECT_FALSE(supports(k, {8, 4, K, K}, pad1)) << k->name << " took a dense Conv";
    EXPECT_FALSE(supports(k, {8, 2, K, K}, g2)) << k->name << " took a grouped Conv";
    EXPECT_FALSE(supports(k, {4, 1, K, K}, dw, true, DataType::kF16)) << k->name << " took f16";
    ++checkedDw;
  }
  EXPECT_EQ(checkedDw, 6);  // 3x3, 5x5, 7x7; AVX2 and AVX-512
  for (const runtime::Kernel* k : winogradKernels()) {
    if (k->op != "Conv" || k->name.find("winograd") == std::string::npos) continue;
    EXPECT_FALSE(supports(k, {4, 1, 3, 3}, dw)) << k->name << " took a depthwise Conv";
    EXPECT_TRUE(supports(k, {8, 4, 3, 3}, pad1)) << k->name;
    EXPECT_TRUE(supports(k, {8, 4, 3, 3}, none)) << k->name;
    EXPECT_FALSE(supports(k, {8, 4, 3, 3}, s2)) << k->name << " took stride 2";
    EXPECT_FALSE(supports(k, {8, 4, 3, 3}, d2)) << k->name << " took dilation 2";
    EXPECT_FALSE(supports(k, {8, 2, 3, 3}, g2)) << k->name << " took 2 groups";
    EXPECT_FALSE(supports(k, {8, 4, 3, 3}, badPad)) << k->name;
    EXPECT_FALSE(supports(k, {8, 4, 5, 5}, none)) << k->name << " took a 5x5 filter";
    EXPECT_FALSE(supports(k, {8, 4, 1, 1}, none)) << k->name << " took a 1x1 filter";
    EXPECT_FALSE(supports(k, {8, 4, 3, 3}, none, false)) << k->name << " took a runtime filter";
    EXPECT_FALSE(supports(k, {8, 4, 3, 3}, none, true, DataType::kF16)) << k->name << " took f16";
    EXPECT_FALSE(supports(k, {8, 4, 3}, none, true, DataType::kF32, {1, 4, 9})) << k->name << " took a 1-D Conv";
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

// Preparing twice gives the same bytes; the workspace grows with the prepared threads.
TEST(NativeWinogradPrepare, DeterministicAndWorkspaceScalesWithThreads) {
  const Case c = convCase("p", {{1, 17, 9, 9}, 20, true, {1, 1, 1, 1}});
  const Built b = build(c, 5);
  for (const runtime::Kernel* k : winogradKernels()) {
    if (k->op != "Conv" || k->name.find("winograd") == std::string::npos) continue;
    const PreparedKernel p1 = prepare(*k, b, 2), p2 = prepare(*k, b, 2), p4 = prepare(*k, b, 4);
    EXPECT_EQ(p1.prepared.params, p2.prepared.params) << k->name;
    EXPECT_EQ(p1.prepared.blobs, p2.prepared.blobs) << k->name;
    ASSERT_EQ(p1.prepared.blobs.size(), 1u);
    EXPECT_EQ(p1.prepared.blobs[0].size(), size_t(36 * 32 * 17 * 4)) << "36 positions x K padded to 32 x C";
    EXPECT_EQ(p4.prepared.workspaceBytes, 2 * p1.prepared.workspaceBytes) << k->name;
  }
}

// One preparation serves every shape of the profile: prepared at the max shapes, run at
// smaller ones; more executor threads than prepared stay inside the workspace.
TEST(NativeWinogradRun, SmallerShapesAndMoreThreadsThanPrepared) {
  const Case big = convCase("big", {{2, 8, 30, 31}, 9, true, {1, 1, 1, 1}});
  const Case small = convCase("small", {{1, 8, 5, 13}, 9, true, {1, 1, 1, 1}});
  int ran = 0;
  for (const runtime::Kernel* k : winogradKernels()) {
    if (k->op != "Conv" || k->name.find("winograd") == std::string::npos || !runtime::hostHasAll(k->requirements))
      continue;
    const Built bb = build(big, 11);
    Built bs = build(small, 12);
    bs.tensors[1] = bb.tensors[1];
    bs.tensors[2] = bb.tensors[2];
    const PreparedKernel pk = prepare(*k, bb, 1);
    for (const Built* b : {static_cast<const Built*>(&bs), &bb}) {
      const Tensor want = reference(*b);
      auto ex = runtime::makeCpuExecutor(3);
      const RunResult r = runKernel(*k, pk, *b, want.dims(), *ex);
      EXPECT_TRUE(r.guardsIntact && r.workspaceIntact) << k->name;
      EXPECT_EQ(compareWithin(r.out, want), "") << k->name;
      ++ran;
    }
  }
  EXPECT_GE(ran, 2);
}

// The depthwise kernel's row ring is sized at the max width; narrower runs fit, and the
// parameters are the same bytes on every preparation.
TEST(NativeWinogradRun, DepthwiseSmallerShapesThanPrepared) {
  for (int64_t K : {3, 5, 7})
  for (int64_t stride : {1, 2}) {
    const int64_t h = K / 2;
    const Case big = dwCase("big", {2, 8, 30, 61}, stride, {h, h, h, h}, true, "", true, K);
    const Case small = dwCase("small", {1, 8, 5, 13}, stride, {h, h, h, h}, true, "", true, K);
    const std::string name = "f32_dwconv2d_" + std::to_string(K) + "x" + std::to_string(K) + "_rows__avx2";
    const runtime::Kernel* k = registry().find(Device::kCPU, "Conv", "", name);
    ASSERT_NE(k, nullptr);
    if (!runtime::hostHasAll(k->requirements)) GTEST_SKIP() << "skipped: this CPU lacks avx2/fma";
    const Built bb = build(big, 11);
    Built bs = build(small, 12);
    bs.tensors[1] = bb.tensors[1];
    bs.tensors[2] = bb.tensors[2];
    const PreparedKernel pk = prepare(*k, bb, 1), pk2 = prepare(*k, bb, 1);
    EXPECT_EQ(pk.prepared.params, pk2.prepared.params);
    EXPECT_EQ(pk.prepared.blobs, pk2.prepared.blobs);
    const Tensor want = reference(bs);
    auto ex = runtime::makeCpuExecutor(3);
    const RunResult r = runKernel(*k, pk, bs, want.dims(), *ex);
    EXPECT_TRUE(r.guardsIntact && r.workspaceIntact) << name << " stride " << stride;
    EXPECT_EQ(compareWithin(r.out, want, kDirectTolerance), "") << name << " stride " << stride;
  }
}

// ---------------------------------------------------------------------------------------
// Timing (run with --gtest_also_run_disabled_tests): resnet18's 3x3 stride-1 layers at one
// thread, median of 20 runs, against the im2col kernels of the linear family; also the
// error against the reference kernel on random data at these shapes.

struct Timing {
  double wallMs, cpuMs;
};

Timing medianMs(const std::function<void()>& f, int reps = 20) {
  f();
  std::vector<double> wall, cpu;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = runtime::threadCpuMs();
    f();
    cpu.push_back(runtime::threadCpuMs() - c0);
    wall.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  return {wall[wall.size() / 2], cpu[cpu.size() / 2]};
}

runtime::Kernels& linearRegistry() {
  static runtime::Kernels* k = [] {
    auto* r = new runtime::Kernels();
    runtime::registerNativeLinearKernels(*r);
    return r;
  }();
  return *k;
}

TEST(NativeWinogradBench, DISABLED_Timing) {
  const int64_t layers[][2] = {{64, 56}, {128, 28}, {256, 14}, {512, 7}};
  for (const auto& l : layers) {
    const int64_t C = l[0], S = l[1];
    const Case c = convCase("resnet18_" + std::to_string(C) + "x" + std::to_string(S), {{1, C, S, S}, C, true, {1, 1, 1, 1}});
    const Built b = build(c, 1);
    const Tensor want = reference(b);
    const double flops = 2.0 * C * C * 9 * S * S;
    std::printf("%s (%.3f GFLOP direct)\n", c.name.c_str(), flops * 1e-9);
    std::vector<const runtime::Kernel*> ks;
    for (const runtime::Kernel* k : linearRegistry().all())
      if (k->op == "Conv" && k->domain.empty() && k->name.rfind("f32_conv2d_prepacked", 0) == 0) ks.push_back(k);
    for (const runtime::Kernel* k : winogradKernels())
      if (k->op == "Conv") ks.push_back(k);
    for (const runtime::Kernel* k : ks) {
      if (!runtime::hostHasAll(k->requirements) || !k->supports(*b.node, b.types())) continue;
      for (int threads : {1, 2}) {
        const PreparedKernel pk = prepare(*k, b, threads);
        auto ex = runtime::makeCpuExecutor(threads);
        Step step(*k, pk, b, want.dims());
        const Timing t = medianMs([&] { step.run(*ex); });
        std::printf("  %-40s t=%d wall %8.3f ms (%6.1f direct-GFLOP/s)", k->name.c_str(), threads, t.wallMs,
                    flops / (t.wallMs * 1e6));
        if (threads == 1) std::printf(" | thread CPU %8.3f ms | rel error %.2e", t.cpuMs, relError(step.result().out, want));
        std::printf("\n");
      }
    }
  }
}

// Depthwise 3x3 layers of mobilenet_v2 and efficientnet_b0 (channels x input side,
// stride), as FusedConv with Clip(0, 6) (what the fusion pass makes of conv+BN+ReLU6),
// against the direct depthwise kernel of the linear family.
TEST(NativeWinogradBench, DISABLED_DepthwiseTiming) {
  // channels, input side, stride, filter side
  const int64_t layers[][4] = {{32, 112, 1, 3},  {96, 112, 2, 3},  {144, 56, 1, 3}, {144, 56, 2, 3}, {192, 28, 1, 3},
                               {192, 28, 2, 3},  {384, 14, 1, 3},  {576, 14, 1, 3}, {576, 14, 2, 3}, {960, 7, 1, 3},
                               {240, 28, 2, 3},  {1152, 7, 1, 3},  {144, 56, 2, 5}, {240, 28, 1, 5}, {480, 14, 1, 5},
                               {672, 14, 1, 5},  {672, 14, 2, 5},  {1152, 7, 1, 5}};
  std::printf("%-22s %-44s %10s %10s\n", "layer", "kernel", "ms (t=1)", "thread CPU");
  for (const auto& l : layers) {
    const int64_t h = l[3] / 2;
    Case c = dwCase("", {1, l[0], l[1], l[1]}, l[2], {h, h, h, h}, true, "", true, l[3]);
    c.op = "FusedConv";
    c.domain = "anvil";
    c.attrs.set("activation", std::string("Clip"));
    c.attrs.set("activation_params", std::vector<float>{0.0f, 6.0f});
    const Built b = build(c, 1);
    const Tensor want = reference(b);
    const std::string name = std::to_string(l[0]) + "x" + std::to_string(l[1]) + "x" + std::to_string(l[1]) + " s" +
                             std::to_string(l[2]) + " k" + std::to_string(l[3]);
    std::vector<const runtime::Kernel*> ks;
    for (const runtime::Kernel* k : linearRegistry().all())
      if (k->op == "FusedConv" && k->name.find("dwconv") != std::string::npos) ks.push_back(k);
    for (const runtime::Kernel* k : winogradKernels())
      if (k->op == "FusedConv" && k->name.find("dwconv") != std::string::npos) ks.push_back(k);
    for (const runtime::Kernel* k : ks) {
      if (!runtime::hostHasAll(k->requirements) || !k->supports(*b.node, b.types())) continue;
      const PreparedKernel pk = prepare(*k, b, 1);
      auto ex = runtime::makeCpuExecutor(1);
      Step step(*k, pk, b, want.dims());
      const Timing t = medianMs([&] { step.run(*ex); }, 50);
      std::printf("%-22s %-44s %10.4f %10.4f  rel error %.1e\n", name.c_str(), k->name.c_str(), t.wallMs, t.cpuMs,
                  relError(step.result().out, want));
    }
  }
}

}  // namespace

namespace {

// Winograd declines images of at most 6 tiles whose transformed filter exceeds 4 MB
// (resnet's 512-channel 7x7 layers stream U from memory in a model) and keeps the rest.
TEST(NativeWinogradSupport, DeclinesOneSubBlockImagesWithALargeFilter) {
  const Case big = convCase("r18_layer4", {{1, 512, 7, 7}, 512, true, {1, 1, 1, 1}});
  const Case mid = convCase("r18_layer3", {{1, 256, 14, 14}, 256, true, {1, 1, 1, 1}});
  const Case small = convCase("small_7x7", {{1, 64, 7, 7}, 64, true, {1, 1, 1, 1}});
  const Built b = build(big, 1), m = build(mid, 1), s = build(small, 1);
  for (const runtime::Kernel* k : winogradKernels()) {
    if (k->name.find("winograd") == std::string::npos || k->op != "Conv") continue;
    EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name;
    EXPECT_TRUE(k->supports(*m.node, m.types())) << k->name;
    EXPECT_TRUE(k->supports(*s.node, s.types())) << k->name;
  }
}

}  // namespace
