// The blocked-output few-input-channel Conv kernels of cpu/tactics/native_conv_stem.cpp
// (f32_conv2d_fewc_nchw16c_* / nchw8c_*: input image row-major, output NCHW<b>c) against the
// reference kernel: a one-node graph (tests/unit/native_kernel_test_util.h) whose output
// carries the blocked layout, the plain random input handed over as is, the kernel run
// through the contract with the blocked output between sentinel guards and a guarded
// workspace (BlockedStep of tests/unit/nchwc_test_util.h), 1 and 2 executor threads (bitwise
// equal), the output converted back and compared with the reference, its padding lanes
// checked to be exactly zero. Shapes: C in
// {1, 3, 4}, M in {1, 8, 13, 16, 24, 32, 64, 70}, 3x3 s2 p1 / 7x7 s2 p3 / 3x3 s2 p0 / 1x1,
// odd images (17x19, 1x1) and one 224x224, batch 1 and 2, FusedConv with each activation.
// NativeConvStemNchwcBench.DISABLED_Timing times the zoo's stems against the row-major stem
// kernel plus the Reorder of its output the blocked form saves.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "native_kernel_test_util.h"
#include "nchwc_test_util.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeConvStemKernels(Kernels& k);  // cpu/tactics/native_conv_stem.cpp
void registerNativeNchwcOpKernels(Kernels& k);   // cpu/tactics/native_nchwc_ops.cpp (timing: Reorder)
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

using namespace anvil::testing::nk;

// The blocked layout on the node

// Marks the node's output NCHW<b>c, its input image row-major, as the builder's layout
// selection does for a stem whose input is a graph input.
void setBlocked(const Built& b, int block) { b.node->output(0)->setLayout(ir::Layout::nchwc(block)); }

// How the step hands the inputs over: X row-major, the filter (packed at prepare) as NaNs,
// the bias row-major, a residual Z blocked.
const std::vector<Handover> kStemHandover = {Handover::kRowMajor, Handover::kNaN, Handover::kRowMajor,
                                             Handover::kBlocked};

// ---------------------------------------------------------------------------------------
// The cases

struct Spec {
  Dims x;  // N, C, H, W
  int64_t M, k, stride, pad;
  bool bias = true;
};

std::string dimsName(const Dims& d) {
  std::string s;
  for (int64_t v : d) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
}

ir::Attributes attrsOf(const Spec& s) {
  ir::Attributes at;
  at.set("kernel_shape", Dims{s.k, s.k});
  if (s.stride != 1) at.set("strides", Dims{s.stride, s.stride});
  if (s.pad != 0) at.set("pads", Dims{s.pad, s.pad, s.pad, s.pad});
  return at;
}

std::string specName(const Spec& s) {
  return dimsName(s.x) + "_M" + std::to_string(s.M) + "_k" + std::to_string(s.k) + "s" + std::to_string(s.stride) +
         "p" + std::to_string(s.pad) + (s.bias ? "" : "_nobias");
}

Case convCase(const Spec& s) {
  std::vector<std::optional<Dims>> in = {s.x, Dims{s.M, s.x[1], s.k, s.k}};
  if (s.bias) in.push_back(Dims{s.M});
  return {"Conv_" + specName(s), "Conv", "", in, {false, true, true}, attrsOf(s)};
}

struct Geo {
  int64_t k, stride, pad;
};
constexpr Geo kGeos[] = {{3, 2, 1}, {7, 2, 3}, {3, 2, 0}, {1, 1, 0}};

std::vector<Case> convCases() {
  std::vector<Case> c;
  const Dims images[] = {{17, 19}, {1, 1}, {9, 14}, {12, 7}};
  int i = 0;
  for (int64_t C : {1, 3, 4})
    for (int64_t M : {1, 8, 13, 16, 24, 32, 64, 70}) {
      const Geo& g = kGeos[size_t(i) % 4];
      const Dims hw = images[size_t(i / 4 + i) % 4];
      Spec s{{1 + i % 2, C, hw[0], hw[1]}, M, g.k, g.stride, g.pad, i % 5 != 3};
      if (hw[0] == 1 && g.pad == 0 && g.k > 1) s.pad = (g.k - 1) / 2;  // a 1x1 image needs the padding
      c.push_back(convCase(s));
      ++i;
    }
  // Every geometry at the zoo's channel counts on 17x19, and one full 224x224 stem.
  for (const Geo& g : kGeos)
    for (int64_t M : {16, 32, 64}) c.push_back(convCase({{2, 3, 17, 19}, M, g.k, g.stride, g.pad}));
  c.push_back(convCase({{1, 3, 224, 224}, 32, 3, 2, 1}));
  return c;
}

struct Epi {
  const char* name;
  const char* act;
  std::vector<float> params;
};

std::vector<Case> fusedCases() {
  const Epi epis[] = {{"none", "", {}},          {"relu", "Relu", {}},         {"clip06", "Clip", {0.0f, 6.0f}},
                      {"clip_pos", "Clip", {0.25f, 0.75f}}, {"hardswish", "HardSwish", {}}, {"silu", "Silu", {}}};
  const Spec specs[] = {{{2, 3, 17, 19}, 16, 3, 2, 1},  {{1, 3, 17, 19}, 32, 3, 2, 1},
                        {{2, 3, 19, 17}, 64, 7, 2, 3},  {{1, 3, 13, 11}, 13, 3, 2, 0},
                        {{1, 4, 9, 9}, 70, 1, 1, 0},    {{2, 1, 1, 1}, 24, 3, 2, 1, false}};
  std::vector<Case> c;
  for (const Epi& e : epis)
    for (const Spec& s : specs) {
      ir::Attributes at = attrsOf(s);
      if (*e.act) at.set("activation", std::string(e.act));
      if (!e.params.empty()) at.set("activation_params", e.params);
      std::vector<std::optional<Dims>> in = {s.x, Dims{s.M, s.x[1], s.k, s.k}};
      in.push_back(s.bias ? std::optional<Dims>(Dims{s.M}) : std::nullopt);
      c.push_back({std::string("FusedConv_") + specName(s) + "_" + e.name, "FusedConv", "anvil", in,
                   {false, true, true}, at});
    }
  return c;
}

const std::vector<Case>& allCases() {
  static const std::vector<Case> cases = [] {
    std::vector<Case> all = convCases();
    for (Case& c : fusedCases()) all.push_back(std::move(c));
    return all;
  }();
  return cases;
}

// ---------------------------------------------------------------------------------------
// The parametrised test: every (blocked kernel, case) pair

runtime::Kernels& registry() { return anvil::testing::nk::registryOf<&runtime::registerNativeConvStemKernels>(); }

std::vector<const runtime::Kernel*> blockedKernels() {
  std::vector<const runtime::Kernel*> out;
  for (const runtime::Kernel* k : registry().all())
    if (k->nchwcBlock > 0) out.push_back(k);
  return out;
}

std::vector<Param> allParams() {
  std::vector<Param> out;
  const std::vector<Case>& cases = allCases();
  for (size_t i = 0; i < cases.size(); ++i)
    for (const runtime::Kernel* k : blockedKernels()) {
      if (k->op != cases[i].op || k->domain != cases[i].domain) continue;
      const Built b = build(cases[i], 1);
      setBlocked(b, k->nchwcBlock);
      if (k->supports(*b.node, b.types())) out.push_back({k->name, i, cases[i].name});
    }
  return out;
}

// As the row-major stem kernels (native_conv_stem_test.cpp): 3e-5 of the output range.
constexpr double kTolerance = 3e-5;

std::string compareWithin(const std::vector<float>& got, const Tensor& want) {
  double maxRef = 0, maxErr = 0;
  int64_t worst = 0;
  for (int64_t i = 0; i < want.numel(); ++i) maxRef = std::max(maxRef, std::fabs(double(want.data<float>()[i])));
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double e = std::fabs(double(got[size_t(i)]) - want.data<float>()[i]);
    if (!(e <= maxErr)) {
      maxErr = std::isnan(e) ? INFINITY : e;
      worst = i;
    }
  }
  if (maxErr <= kTolerance * std::max(maxRef, 1e-6)) return "";
  char msg[200];
  std::snprintf(msg, sizeof msg, "max error %.3g at flat index %lld (got %.9g, want %.9g), max |ref| %.3g", maxErr,
                (long long)worst, got[size_t(worst)], want.data<float>()[worst], maxRef);
  return msg;
}

class NativeConvStemNchwc : public ::testing::TestWithParam<Param> {};

TEST_P(NativeConvStemNchwc, MatchesReferenceBitwiseAcrossThreads) {
  const Case& c = allCases()[GetParam().caseIndex];
  const runtime::Kernel* k = registry().find(Device::kCPU, c.op, c.domain, GetParam().kernel);
  ASSERT_NE(k, nullptr);
  if (const std::string why = skipReason(*k); !why.empty()) GTEST_SKIP() << why;
  const Built b = build(c, uint32_t(GetParam().caseIndex) * 7919u + 11);
  const Tensor want = reference(b);
  setBlocked(b, k->nchwcBlock);
  const PreparedKernel pk = prepare(*k, b, 2);
  EXPECT_EQ(pk.prepared.packedInputs, std::vector<int>{1}) << "the filter was not prepared";
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2}) {
    auto ex = runtime::makeCpuExecutor(threads);
    BlockedStep step(*k, pk, b, kStemHandover, want.dims(), k->nchwcBlock);
    step.run(*ex);
    const BlockedResult r = step.result();
    EXPECT_TRUE(r.guardsIntact) << "wrote outside the output (threads=" << threads << ")";
    EXPECT_TRUE(r.workspaceIntact) << "wrote past the workspace (threads=" << threads << ")";
    EXPECT_TRUE(r.paddingZero) << "padding lanes not zero (threads=" << threads << ")";
    EXPECT_EQ(compareWithin(r.out, want), "") << k->name << " on " << c.name << " threads=" << threads;
    outs.push_back(r.out);
  }
  EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4), 0) << "1 and 2 threads differ bitwise";
}

INSTANTIATE_TEST_SUITE_P(Native, NativeConvStemNchwc, ::testing::ValuesIn(allParams()),
                         [](const ::testing::TestParamInfo<Param>& p) {
                           return p.param.kernel + "__" + allCases()[p.param.caseIndex].name;
                         });

// ---------------------------------------------------------------------------------------
// Registration and declines

// Every case is served by every blocked kernel of its op (5 forms: 3 AVX-512, 2 AVX2).
TEST(NativeConvStemNchwcSupport, CoversEveryCase) {
  EXPECT_EQ(allParams().size(), 5 * allCases().size());
  for (const runtime::Kernel* k : blockedKernels()) {
    EXPECT_TRUE(k->nchwcPlainInput) << k->name;
    EXPECT_EQ(k->nchwcBlock, k->name.find("nchw16c") != std::string::npos ? 16 : 8) << k->name;
  }
}

TEST(NativeConvStemNchwcSupport, DeclinesOtherLayoutsAndResidual) {
  const Case c = convCase({{1, 3, 17, 19}, 16, 3, 2, 1});
  for (const runtime::Kernel* k : blockedKernels()) {
    if (k->op != "Conv") continue;
    {  // row-major output
      const Built b = build(c, 1);
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name;
    }
    {  // the other block
      const Built b = build(c, 1);
      setBlocked(b, k->nchwcBlock == 16 ? 8 : 16);
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name;
    }
    {  // a blocked input
      const Built b = build(c, 1);
      setBlocked(b, k->nchwcBlock);
      b.node->input(0)->setLayout(ir::Layout::nchwc(k->nchwcBlock));
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name;
    }
    {  // five input channels
      const Built b = build(convCase({{1, 5, 17, 19}, 16, 3, 2, 1}), 1);
      setBlocked(b, k->nchwcBlock);
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name;
    }
  }
  // A residual input.
  ir::Attributes at = attrsOf({{1, 3, 17, 19}, 16, 3, 2, 1});
  at.set("has_residual", int64_t(1));
  const Case r{"res", "FusedConv", "anvil", {Dims{1, 3, 17, 19}, Dims{16, 3, 3, 3}, Dims{16}, Dims{1, 16, 9, 10}},
               {false, true, true, false}, at};
  for (const runtime::Kernel* k : blockedKernels()) {
    if (k->op != "FusedConv") continue;
    const Built b = build(r, 1);
    setBlocked(b, k->nchwcBlock);
    b.node->input(3)->setLayout(ir::Layout::nchwc(k->nchwcBlock));
    EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name;
  }
}

// ---------------------------------------------------------------------------------------
// Timing (not asserted): the zoo's stems, 1 thread, min of reps.

double minMs(const std::function<void()>& f, int reps) {
  f();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

runtime::Kernels& opsRegistry() {
  static runtime::Kernels* k = [] {
    auto* r = new runtime::Kernels();
    runtime::registerNativeNchwcOpKernels(*r);
    return r;
  }();
  return *k;
}

TEST(NativeConvStemNchwcBench, DISABLED_Timing) {
  struct Stem {
    const char* name;
    Spec s;
    const char* act;  // FusedConv with this activation ("": Conv)
    std::vector<float> params;
  };
  const Stem stems[] = {{"resnet 7x7 s2 p3 ->64", {{1, 3, 224, 224}, 64, 7, 2, 3}, "", {}},
                        {"mobilenet_v2/effnet 3x3 s2 p1 ->32", {{1, 3, 224, 224}, 32, 3, 2, 1}, "", {}},
                        {"mobilenet_v3 3x3 s2 p1 ->16", {{1, 3, 224, 224}, 16, 3, 2, 1}, "", {}},
                        {"squeezenet 3x3 s2 p0 ->64", {{1, 3, 224, 224}, 64, 3, 2, 0}, "", {}},
                        {"resnet + Relu", {{1, 3, 224, 224}, 64, 7, 2, 3}, "Relu", {}},
                        {"mobilenet_v2 + Clip 0..6", {{1, 3, 224, 224}, 32, 3, 2, 1}, "Clip", {0.0f, 6.0f}},
                        {"efficientnet + Silu", {{1, 3, 224, 224}, 32, 3, 2, 1}, "Silu", {}},
                        {"mobilenet_v3 + HardSwish", {{1, 3, 224, 224}, 16, 3, 2, 1}, "HardSwish", {}},
                        {"squeezenet + Relu", {{1, 3, 224, 224}, 64, 3, 2, 0}, "Relu", {}}};
  const int reps = 40;
  auto ex = runtime::makeCpuExecutor(1);
  for (const Stem& st : stems) {
    Case c = convCase(st.s);
    if (*st.act) {
      c.op = "FusedConv";
      c.domain = "anvil";
      c.attrs.set("activation", std::string(st.act));
      if (!st.params.empty()) c.attrs.set("activation_params", st.params);
    }
    std::printf("%s\n", st.name);
    const Built plain = build(c, 1);
    const Tensor want = reference(plain);
    const Dims od = want.dims();
    // The Reorder of the plain output to NCHW16c / NCHW8c.
    double reorderMs[17] = {};
    for (int block : {16, 8}) {
      ir::Attributes toB;
      toB.set("to", "NCHW" + std::to_string(block) + "c");
      const Built rb = build({"r", "Reorder", "anvil", {od}, {false}, toB}, 3);
      rb.node->output(0)->setLayout(ir::Layout::nchwc(block));
      for (const runtime::Kernel* k : opsRegistry().all()) {
        if (k->op != "Reorder" || k->nchwcBlock != block || !runtime::hostHasAll(k->requirements)) continue;
        if (!k->supports(*rb.node, rb.types())) continue;
        const PreparedKernel pk = prepare(*k, rb, 1);
        BlockedStep step(*k, pk, rb, kStemHandover, od, block);
        reorderMs[block] = minMs([&] { step.run(*ex); }, reps);
        std::printf("  %-48s %7.3f ms\n", k->name.c_str(), reorderMs[block]);
      }
    }
    for (const runtime::Kernel* k : registry().all()) {
      if (k->op != c.op || !runtime::hostHasAll(k->requirements)) continue;
      const Built b = build(c, 1);
      if (k->nchwcBlock) setBlocked(b, k->nchwcBlock);
      if (!k->supports(*b.node, b.types())) continue;
      const PreparedKernel pk = prepare(*k, b, 1);
      double ms;
      if (k->nchwcBlock) {
        BlockedStep step(*k, pk, b, kStemHandover, od, k->nchwcBlock);
        ms = minMs([&] { step.run(*ex); }, reps);
        std::printf("  %-48s %7.3f ms\n", k->name.c_str(), ms);
      } else {
        Step step(*k, pk, b, od);
        ms = minMs([&] { step.run(*ex); }, reps);
        const int block = k->name.find("avx512") != std::string::npos ? 16 : 8;
        std::printf("  %-48s %7.3f ms  (+ reorder to %dc %7.3f ms)\n", k->name.c_str(), ms, block, ms + reorderMs[block]);
      }
    }
  }
}

}  // namespace
