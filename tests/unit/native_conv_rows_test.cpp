// The pixels-as-rows Conv kernels (cpu/tactics/native_conv_rows.cpp) against the reference
// kernel through the kernel contract (tests/unit/native_kernel_test_util.h): a one-node
// graph, supports(), prepare() (the filter packed; its raw input then replaced by NaNs),
// run() on views with the output between sentinel guards and a guarded workspace, with 1
// and 2 executor threads, which must agree bitwise. Shapes: P = 1, 7, 17, 49, 63 pixels,
// M = 1, 7, 17, 33, 64 channels, C = 1, 3, 17, filters 1x1 / 3x3 / 7x7 / 1x3, strides 1 and
// 2, dilation 2, symmetric / asymmetric / SAME_UPPER / SAME_LOWER / VALID pads, groups 2 and
// 4, batch 2, with and without bias, FusedConv with each activation and residual order.
// NativeConvRowsBench.DISABLED_Timing times them against the other Conv kernels on the
// ResNet layers, warm (one layer again and again) and cold (eight copies in turn, each
// filter from memory as in a model); ROWS_ONLY=<layer substring>, ROWS_KERNEL=<kernel
// substring> and ROWS_THREADS=1|2 narrow it.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>

#include <time.h>

#include "native_kernel_test_util.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeConvRowsKernels(Kernels& k);  // cpu/tactics/native_conv_rows.cpp
void registerNativeLinearKernels(Kernels& k);    // cpu/tactics/native_linear.cpp (timing baseline)
void registerNativeWinogradKernels(Kernels& k);  // cpu/tactics/native_winograd.cpp (timing baseline)
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

using namespace anvil::testing::nk;

// ---------------------------------------------------------------------------------------
// The cases

struct Spec {
  Dims x;             // N, C, H, W
  int64_t M = 8;      // output channels
  int64_t k = 3;      // filter side (kH = kW unless kw > 0)
  int64_t kw = 0;
  int64_t stride = 1, dilation = 1, group = 1;
  Dims pads;            // empty: none
  std::string autoPad;  // "" NOTSET
  bool bias = true;
};

ir::Attributes attrsOf(const Spec& s) {
  ir::Attributes at;
  const int64_t kw = s.kw ? s.kw : s.k;
  at.set("kernel_shape", Dims{s.k, kw});
  if (s.stride != 1) at.set("strides", Dims{s.stride, s.stride});
  if (s.dilation != 1) at.set("dilations", Dims{s.dilation, s.dilation});
  if (s.group != 1) at.set("group", s.group);
  if (!s.pads.empty()) at.set("pads", s.pads);
  if (!s.autoPad.empty()) at.set("auto_pad", s.autoPad);
  return at;
}

Dims wDims(const Spec& s) { return {s.M, s.x[1] / s.group, s.k, s.kw ? s.kw : s.k}; }

// Output extents (auto_pad SAME keeps ceil(in / stride)).
Dims outDims(const Spec& s) {
  const int64_t kw = s.kw ? s.kw : s.k;
  auto ext = [&](int64_t in, int64_t k, int64_t p0, int64_t p1) {
    if (s.autoPad == "SAME_UPPER" || s.autoPad == "SAME_LOWER") return (in + s.stride - 1) / s.stride;
    if (s.autoPad == "VALID") p0 = p1 = 0;
    return (in + p0 + p1 - ((k - 1) * s.dilation + 1)) / s.stride + 1;
  };
  const Dims p = s.pads.empty() ? Dims{0, 0, 0, 0} : s.pads;
  return {s.x[0], s.M, ext(s.x[2], s.k, p[0], p[2]), ext(s.x[3], kw, p[1], p[3])};
}

Case convCase(const std::string& name, const Spec& s) {
  std::vector<std::optional<Dims>> in = {s.x, wDims(s)};
  if (s.bias) in.push_back(Dims{s.M});
  return {"Conv_" + name, "Conv", "", in, {false, true, true}, attrsOf(s)};
}

std::string dimsName(const Dims& d) {
  std::string s;
  for (int64_t v : d) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
}

std::vector<Case> convCases() {
  std::vector<Case> c;
  // Pixel counts P = 1, 7, 17, 49, 63 (1x1 stride 1: one row of P pixels) against channel
  // counts M = 1, 7, 17, 33, 64 and C = 1, 3, 17.
  const Dims pixelShapes[] = {{1, 1}, {1, 7}, {1, 17}, {7, 7}, {7, 9}};
  for (const Dims& hw : pixelShapes)
    for (int64_t M : {1, 7, 17, 33, 64})
      for (int64_t C : {1, 3, 17}) {
        const Dims x{1, C, hw[0], hw[1]};
        Spec s{x, M, 1};
        s.bias = (M + C) % 2 == 1;
        c.push_back(convCase("pw_" + dimsName(x) + "_M" + std::to_string(M), s));
        Spec s3{x, M, 3};
        s3.pads = {1, 1, 1, 1};
        s3.bias = !s.bias;
        c.push_back(convCase("3x3p1_" + dimsName(x) + "_M" + std::to_string(M), s3));
      }
  // Strides, dilations, filters, pads.
  c.push_back(convCase("3x3_s2_p1", {{1, 17, 14, 13}, 33, 3, 0, 2, 1, 1, {1, 1, 1, 1}}));
  c.push_back(convCase("3x3_s2_p0", {{2, 3, 15, 16}, 17, 3, 0, 2, 1, 1, {}}));
  c.push_back(convCase("1x1_s2", {{1, 17, 13, 14}, 33, 1, 0, 2}));
  c.push_back(convCase("1x1_p1", {{1, 5, 6, 7}, 9, 1, 0, 1, 1, 1, {1, 0, 1, 2}}));
  c.push_back(convCase("7x7_s2_p3", {{1, 3, 30, 27}, 17, 7, 0, 2, 1, 1, {3, 3, 3, 3}}));
  c.push_back(convCase("3x3_d2_p2", {{1, 7, 12, 11}, 17, 3, 0, 1, 2, 1, {2, 2, 2, 2}}));
  c.push_back(convCase("3x3_d2_s2", {{1, 4, 17, 19}, 7, 3, 0, 2, 2, 1, {1, 2, 0, 1}}));
  c.push_back(convCase("1x3_asym", {{1, 6, 9, 10}, 7, 1, 3, 1, 1, 1, {0, 2, 1, 0}}));
  c.push_back(convCase("asym_0121", {{1, 4, 9, 14}, 6, 3, 0, 1, 1, 1, {0, 1, 2, 1}}));
  c.push_back(convCase("asym_2013", {{2, 3, 7, 5}, 4, 3, 0, 1, 1, 1, {2, 0, 1, 3}}));
  c.push_back(convCase("bigpad_3142", {{1, 5, 6, 9}, 8, 3, 0, 1, 1, 1, {3, 1, 4, 2}}));
  c.push_back(convCase("same_upper_s1", {{1, 5, 14, 17}, 7, 3, 0, 1, 1, 1, {}, "SAME_UPPER"}));
  c.push_back(convCase("same_upper_s2", {{1, 5, 13, 16}, 9, 3, 0, 2, 1, 1, {}, "SAME_UPPER", false}));
  c.push_back(convCase("same_lower_s2", {{2, 5, 9, 4}, 7, 3, 0, 2, 1, 1, {}, "SAME_LOWER"}));
  c.push_back(convCase("valid", {{1, 5, 17, 9}, 7, 3, 0, 1, 1, 1, {}, "VALID"}));
  // Groups (per group GEMMs; Cg > 1) and batch 2.
  c.push_back(convCase("g2_3x3", {{1, 6, 9, 8}, 10, 3, 0, 1, 1, 2, {1, 1, 1, 1}}));
  c.push_back(convCase("g4_1x1", {{2, 8, 7, 7}, 12, 1, 0, 1, 1, 4}));
  c.push_back(convCase("g4_3x3_s2", {{2, 68, 9, 9}, 36, 3, 0, 2, 1, 4, {1, 1, 1, 1}}));
  c.push_back(convCase("g2_M66", {{1, 34, 5, 6}, 66, 3, 0, 1, 1, 2, {0, 1, 1, 0}, "", false}));
  c.push_back(convCase("batch2_pw", {{2, 17, 9, 7}, 33, 1}));
  // Several K blocks (K = 300 * 9 = 2700), pixel blocks past mc (P = 900), many channels
  // (M = 530) and a C block past its cap (225 pixels x 600 channels: two channel blocks).
  c.push_back(convCase("K2700", {{1, 300, 7, 6}, 20, 3, 0, 1, 1, 1, {1, 1, 1, 1}}));
  c.push_back(convCase("P900", {{1, 3, 30, 30}, 40, 3, 0, 1, 1, 1, {1, 1, 1, 1}}));
  c.push_back(convCase("M530", {{1, 16, 7, 7}, 530, 1}));
  c.push_back(convCase("M600_P225", {{1, 2, 15, 15}, 600, 3, 0, 1, 1, 1, {1, 1, 1, 1}}));  // two channel blocks
  c.push_back(convCase("resnet_512x7x7", {{1, 512, 7, 7}, 512, 3, 0, 1, 1, 1, {1, 1, 1, 1}}));
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
      {"hardswish", "HardSwish", {}, 0}, {"silu", "Silu", {}, 0},
      {"gelu", "Gelu", {}, 0},      {"res_add_relu", "Relu", {}, 1},
      {"res_relu_add", "Relu", {}, 2}, {"res_only", "", {}, 1},
  };
  return e;
}

std::vector<Case> fusedCases() {
  std::vector<Case> c;
  struct S {
    const char* name;
    Spec s;
  };
  const S specs[] = {{"2x17x9x14_M19", {{2, 17, 9, 14}, 19, 3, 0, 1, 1, 1, {1, 1, 1, 1}}},
                     {"1x8x7x7_M70_s2_nobias", {{1, 8, 7, 7}, 70, 3, 0, 2, 1, 1, {0, 1, 2, 0}, "", false}},
                     {"1x16x7x7_M33_pw", {{1, 16, 7, 7}, 33, 1}},
                     {"2x8x5x6_M12_g2", {{2, 8, 5, 6}, 12, 3, 0, 1, 1, 2, {1, 1, 1, 1}}}};
  for (const Epi& e : epilogues())
    for (const S& sp : specs) {
      const Spec& s = sp.s;
      ir::Attributes at = attrsOf(s);
      if (*e.act) at.set("activation", std::string(e.act));
      if (!e.params.empty()) at.set("activation_params", e.params);
      std::vector<std::optional<Dims>> in = {s.x, wDims(s)};
      in.push_back(s.bias ? std::optional<Dims>(Dims{s.M}) : std::nullopt);
      std::vector<bool> constant = {false, true, true};
      if (e.residual) {
        at.set("has_residual", int64_t(1));
        at.set("residual_order", std::string(e.residual == 1 ? "add_then_activate" : "activate_then_add"));
        in.push_back(outDims(s));
        constant.push_back(false);
      }
      c.push_back({std::string("FusedConv_") + sp.name + "_" + e.name, "FusedConv", "anvil", in, constant, at});
    }
  return c;
}

const std::vector<Case>& allCases() {
  static const std::vector<Case> cases = [] {
    std::vector<Case> all;
    for (auto f : {convCases, fusedCases})
      for (Case& c : f()) all.push_back(std::move(c));
    return all;
  }();
  return cases;
}

// ---------------------------------------------------------------------------------------
// The parametrised test: every (kernel, case) pair the kernel supports

runtime::Kernels& registry() { return anvil::testing::nk::registryOf<&runtime::registerNativeConvRowsKernels>(); }

std::vector<const runtime::Kernel*> rowsKernels() {
  std::vector<const runtime::Kernel*> out;
  for (const runtime::Kernel* k : registry().all())
    if (k->device == Device::kCPU && k->name.find("conv2d_rows") != std::string::npos && k->nchwcBlock == 0)
      out.push_back(k);  // the blocked ones: native_conv_nchwc_test.cpp
  return out;
}

std::vector<Param> allParams() { return supportedPairs(rowsKernels(), allCases()); }

class NativeConvRows : public ::testing::TestWithParam<Param> {};

TEST_P(NativeConvRows, MatchesReferenceBitwiseAcrossThreads) {
  const Case& c = allCases()[GetParam().caseIndex];
  const runtime::Kernel* k = registry().find(Device::kCPU, c.op, c.domain, GetParam().kernel);
  ASSERT_NE(k, nullptr);
  if (const std::string why = skipReason(*k); !why.empty()) GTEST_SKIP() << why;
  const Built b = build(c, uint32_t(GetParam().caseIndex) * 7919u + 3);
  const Tensor want = reference(b);
  const PreparedKernel pk = prepare(*k, b, 2);
  EXPECT_EQ(pk.prepared.packedInputs, std::vector<int>{1}) << "the filter was not prepared";
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2}) {
    auto ex = runtime::makeCpuExecutor(threads);
    const RunResult r = runKernel(*k, pk, b, want.dims(), *ex);
    EXPECT_TRUE(r.guardsIntact) << "wrote outside the output (threads=" << threads << ")";
    EXPECT_TRUE(r.workspaceIntact) << "wrote past the workspace (threads=" << threads << ")";
    EXPECT_EQ(compare(r.out, want), "") << k->name << " on " << c.name << " threads=" << threads;
    outs.push_back(r.out);
  }
  EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4), 0) << "1 and 2 threads differ bitwise";
}

INSTANTIATE_TEST_SUITE_P(Native, NativeConvRows, ::testing::ValuesIn(allParams()),
                         [](const ::testing::TestParamInfo<Param>& p) {
                           return p.param.kernel + "__" + allCases()[p.param.caseIndex].name;
                         });

// ---------------------------------------------------------------------------------------
// Registration and declines

TEST(NativeConvRowsRegistration, Avx2AndAvx512ForConvAndFusedConv) {
  for (const auto& [op, domain] : std::vector<std::pair<std::string, std::string>>{{"Conv", ""}, {"FusedConv", "anvil"}}) {
    int avx2 = 0, avx512 = 0;
    for (const runtime::Kernel* k : rowsKernels()) {
      if (k->op != op || k->domain != domain) continue;
      EXPECT_EQ(k->precision, DataType::kF32) << k->name;
      ASSERT_TRUE(k->supports && k->prepare && k->run) << k->name;
      if (k->requirements == std::vector<std::string>{"avx2", "fma"}) ++avx2;
      if (std::find(k->requirements.begin(), k->requirements.end(), "avx512f") != k->requirements.end()) ++avx512;
    }
    EXPECT_EQ(avx2, 1) << op;
    EXPECT_EQ(avx512, 1) << op;
  }
}

TEST(NativeConvRowsRegistration, EveryKernelHasCases) {
  std::map<std::string, int> covered;
  for (const Param& p : allParams()) covered[allCases()[p.caseIndex].op + "/" + p.kernel]++;
  for (const runtime::Kernel* k : rowsKernels()) EXPECT_GE(covered[k->op + "/" + k->name], 30) << k->op << "/" << k->name;
}

TEST(NativeConvRowsSupports, DeclinesWhatItCannotRun) {
  auto supports = [](const runtime::Kernel* k, Dims w, ir::Attributes attrs, bool constW = true,
                     DataType dt = DataType::kF32, Dims x = {1, 4, 9, 9}) {
    ir::Graph g;
    const ir::TensorType xt{dt, ir::Shape::fromExtents(x)};
    const Tensor wt(dt, w);
    ir::Value* xv = g.addValue("x", xt);
    ir::Value* wv = constW ? g.addInitializer("w", wt) : g.addValue("w", wt.type());
    ir::Node* n = g.addNode("Conv", "", "n0", {xv, wv}, {"y"});
    n->attrs() = attrs;
    return k->supports(*n, {xt, wt.type()});
  };
  ir::Attributes none, g2, dw, badPad, s2d2;
  g2.set("group", int64_t(2));
  dw.set("group", int64_t(4));
  badPad.set("auto_pad", std::string("SIDEWAYS"));
  s2d2.set("strides", Dims{2, 2});
  s2d2.set("dilations", Dims{2, 2});
  int checked = 0;
  for (const runtime::Kernel* k : rowsKernels()) {
    if (k->op != "Conv") continue;
    EXPECT_TRUE(supports(k, {8, 4, 3, 3}, none)) << k->name;
    EXPECT_TRUE(supports(k, {8, 4, 1, 1}, none)) << k->name;
    EXPECT_TRUE(supports(k, {8, 2, 3, 3}, g2)) << k->name;
    EXPECT_TRUE(supports(k, {8, 4, 3, 3}, s2d2)) << k->name;
    EXPECT_FALSE(supports(k, {8, 4, 3, 3}, none, false)) << k->name << " took a run-time filter";
    EXPECT_FALSE(supports(k, {4, 1, 3, 3}, dw)) << k->name << " took a depthwise Conv";
    EXPECT_FALSE(supports(k, {8, 4, 3, 3}, badPad)) << k->name << " took auto_pad SIDEWAYS";
    EXPECT_FALSE(supports(k, {8, 3, 3, 3}, none)) << k->name << " took W with the wrong channel count";
    EXPECT_FALSE(supports(k, {8, 4, 3, 3}, none, true, DataType::kF16)) << k->name << " took f16";
    EXPECT_FALSE(supports(k, {8, 4, 3}, none)) << k->name << " took a 1-D filter";
    ++checked;
  }
  EXPECT_EQ(checked, 2);
}

// ---------------------------------------------------------------------------------------
// Timing (manual): the ResNet layers against every other Conv kernel that takes them.

struct Timing {
  double wallMs, minMs, cpuMinMs;  // median and best wall time, best thread CPU time
};

Timing medianMs(const std::function<void()>& f, int reps = 30) {
  f();
  std::vector<double> wall;
  double cpuMin = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = anvil::runtime::threadCpuMs();
    f();
    cpuMin = std::min(cpuMin, anvil::runtime::threadCpuMs() - c0);
    wall.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(wall.begin(), wall.end());
  return {wall[wall.size() / 2], wall[0], cpuMin};
}

runtime::Kernels& allConvRegistry() {
  static runtime::Kernels* k = [] {
    auto* r = new runtime::Kernels();
    runtime::registerNativeLinearKernels(*r);
    runtime::registerNativeWinogradKernels(*r);
    runtime::registerNativeConvRowsKernels(*r);
    return r;
  }();
  return *k;
}

TEST(NativeConvRowsBench, DISABLED_Timing) {
  struct L {
    const char* name;
    Spec s;
  };
  const L layers[] = {
      {"r18_conv1_7x7s2", {{1, 3, 224, 224}, 64, 7, 0, 2, 1, 1, {3, 3, 3, 3}}},
      {"r18_l2.0.conv1_s2", {{1, 64, 56, 56}, 128, 3, 0, 2, 1, 1, {1, 1, 1, 1}}},
      {"r18_l2.0.down", {{1, 64, 56, 56}, 128, 1, 0, 2}},
      {"r18_l2_3x3", {{1, 128, 28, 28}, 128, 3, 0, 1, 1, 1, {1, 1, 1, 1}}},
      {"r18_l3.0.conv1_s2", {{1, 128, 28, 28}, 256, 3, 0, 2, 1, 1, {1, 1, 1, 1}}},
      {"r18_l3.0.down", {{1, 128, 28, 28}, 256, 1, 0, 2}},
      {"r18_l3_3x3", {{1, 256, 14, 14}, 256, 3, 0, 1, 1, 1, {1, 1, 1, 1}}},
      {"r18_l4.0.conv1_s2", {{1, 256, 14, 14}, 512, 3, 0, 2, 1, 1, {1, 1, 1, 1}}},
      {"r18_l4.0.down", {{1, 256, 14, 14}, 512, 1, 0, 2}},
      {"r18_l4_3x3", {{1, 512, 7, 7}, 512, 3, 0, 1, 1, 1, {1, 1, 1, 1}}},
      {"r50_1x1_1024to256_14", {{1, 1024, 14, 14}, 256, 1}},
      {"r50_1x1_256to1024_14", {{1, 256, 14, 14}, 1024, 1}},
      {"r50_1x1_2048to512_7", {{1, 2048, 7, 7}, 512, 1}},
      {"r50_1x1_512to2048_7", {{1, 512, 7, 7}, 2048, 1}},
      {"r50_1x1_64to256_56", {{1, 64, 56, 56}, 256, 1}},
  };
  const char* only = std::getenv("ROWS_ONLY");
  for (const L& l : layers) {
    if (only && !std::strstr(l.name, only)) continue;
    const Case c = convCase(l.name, l.s);
    const Built b = build(c, 1);
    const Dims od = outDims(l.s);
    const double flops = 2.0 * double(od[1] * od[2] * od[3]) * double(l.s.x[1] / l.s.group * l.s.k * l.s.k);
    std::printf("%s (%.3f GFLOP)\n", l.name, flops * 1e-9);
    for (const runtime::Kernel* k : allConvRegistry().all()) {
      if (k->op != "Conv" || k->device != Device::kCPU || !k->run || k->name.find("__") == std::string::npos) continue;
      if (!runtime::hostHasAll(k->requirements) || !k->supports(*b.node, b.types())) continue;
      if (const char* kf = std::getenv("ROWS_KERNEL"); kf && !std::strstr(k->name.c_str(), kf)) continue;
      for (int threads : {1, 2}) {
        if (const char* tf = std::getenv("ROWS_THREADS"); tf && std::atoi(tf) != threads) continue;
        // Warm: one layer run again and again (its filter in L2/L3). Cold: eight copies of
        // the layer in turn, as in a model, where each layer's filter comes from memory.
        std::vector<std::unique_ptr<Built>> copies;
        std::vector<std::unique_ptr<PreparedKernel>> pks;
        std::vector<std::unique_ptr<Step>> steps;
        for (uint32_t i = 0; i < 8; ++i) {
          copies.push_back(std::make_unique<Built>(build(c, 1 + i)));
          pks.push_back(std::make_unique<PreparedKernel>(prepare(*k, *copies.back(), threads)));
          steps.push_back(std::make_unique<Step>(*k, *pks.back(), *copies.back(), od, true));
        }
        auto ex = runtime::makeCpuExecutor(threads);
        const Timing warm = medianMs([&] { steps[0]->run(*ex); });
        size_t next = 0;
        const Timing cold = medianMs([&] { steps[next++ % 8]->run(*ex); }, 40);
        std::printf("  %-36s t=%d warm %7.3f ms (min %7.3f, cpu %7.3f) cold %7.3f ms (min %7.3f, cpu %7.3f)\n",
                    k->name.c_str(), threads, warm.wallMs, warm.minMs, warm.cpuMinMs, cold.wallMs, cold.minMs,
                    cold.cpuMinMs);
      }
    }
  }
}

}  // namespace
