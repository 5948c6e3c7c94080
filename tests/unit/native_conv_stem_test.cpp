// The few-input-channel direct Conv kernels (cpu/tactics/native_conv_stem.cpp) against the
// reference kernel through the kernel contract (tests/unit/native_kernel_test_util.h): a
// one-node graph, prepare() (the constant filter is packed; its raw input is then NaNs),
// run() with the output between sentinel guards and a guarded workspace, with 1 and 2
// executor threads, which must agree bitwise. Shapes: C in {1, 3, 4}, K in {1, 17, 64, 70}
// (channel tails of the 32/64-wide blocks), kernels 1x1 to 7x7 and non-square, strides 1,
// 2 and 3, symmetric / asymmetric / wide / SAME / VALID padding, output widths around the
// 3- and 6-pixel steps and the 8-pixel transposes, batch 2, every epilogue with residual.
// NativeConvStemBench.DISABLED_Timing times resnet's stem against the im2col kernel.
#include <gtest/gtest.h>

#include <chrono>
#include <algorithm>
#include <functional>
#include <vector>

#include <time.h>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "native_kernel_test_util.h"
#include "runtime/clock.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeConvStemKernels(Kernels& k);  // cpu/tactics/native_conv_stem.cpp
void registerNativeLinearKernels(Kernels& k);    // cpu/tactics/native_linear.cpp (timing baseline)
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::Tensor;

namespace {

using namespace anvil::testing::nk;

struct StemSpec {
  Dims x;
  int64_t K, kH, kW, stride;
  Dims pads;  // empty: none
  std::string autoPad;
  bool bias = true;
};

std::string dimsName(const Dims& d) {
  std::string s;
  for (int64_t v : d) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
}

ir::Attributes stemAttrs(const StemSpec& s) {
  ir::Attributes at;
  at.set("kernel_shape", Dims{s.kH, s.kW});
  if (s.stride != 1) at.set("strides", Dims{s.stride, s.stride});
  if (!s.pads.empty()) at.set("pads", s.pads);
  if (!s.autoPad.empty()) at.set("auto_pad", s.autoPad);
  return at;
}

Case stemCase(const std::string& name, const StemSpec& s) {
  std::vector<std::optional<Dims>> in = {s.x, Dims{s.K, s.x[1], s.kH, s.kW}};
  if (s.bias) in.push_back(Dims{s.K});
  return {"Conv_" + name, "Conv", "", in, {false, true, true}, stemAttrs(s)};
}

std::vector<Case> convCases() {
  std::vector<Case> c;
  for (int64_t ch : {1, 3, 4})
    for (int64_t k : {1, 17, 64, 70})
      for (int64_t stride : {1, 2}) {
        const Dims x{1, ch, 13, 19};
        c.push_back(stemCase("s" + std::to_string(stride) + "_" + dimsName(x) + "_K" + std::to_string(k),
                             {x, k, 7, 7, stride, {3, 3, 3, 3}}));
      }
  // Output widths 1..17 (tails of 3, 6 and 8 pixels), 3x3 and 5x5 filters, stride 3.
  for (int64_t w : {1, 2, 5, 7, 8, 9, 11, 16, 17})
    c.push_back(stemCase("w" + std::to_string(w), {{1, 3, 6, w}, 9, 3, 3, 1, {1, 1, 1, 1}}));
  c.push_back(stemCase("k5_s3", {{1, 2, 17, 23}, 33, 5, 5, 3, {2, 2, 2, 2}}));
  c.push_back(stemCase("k1", {{1, 4, 5, 9}, 8, 1, 1, 1, {}}));
  c.push_back(stemCase("k3x5", {{2, 3, 11, 10}, 20, 3, 5, 2, {1, 2, 0, 1}}));
  c.push_back(stemCase("nopad_nobias", {{1, 3, 15, 21}, 64, 7, 7, 2, {}, "", false}));
  c.push_back(stemCase("asym_wide", {{1, 1, 9, 9}, 5, 3, 3, 1, {4, 0, 1, 5}}));
  c.push_back(stemCase("same_upper", {{1, 3, 14, 17}, 7, 4, 4, 2, {}, "SAME_UPPER"}));
  c.push_back(stemCase("same_lower", {{2, 3, 9, 12}, 7, 4, 4, 2, {}, "SAME_LOWER"}));
  c.push_back(stemCase("valid", {{1, 4, 17, 9}, 7, 3, 3, 2, {}, "VALID"}));
  c.push_back(stemCase("resnet_stem_quarter", {{1, 3, 56, 57}, 64, 7, 7, 2, {3, 3, 3, 3}}));
  return c;
}

struct Epi {
  const char* name;
  const char* act;
  std::vector<float> params;
  int residual;  // 0 none, 1 add_then_activate, 2 activate_then_add
};

std::vector<Case> fusedCases() {
  const Epi epis[] = {{"none", "", {}, 0},         {"relu", "Relu", {}, 0},
                      {"clip", "Clip", {-0.5f, 0.75f}, 0}, {"silu", "Silu", {}, 0},
                      {"leaky", "LeakyRelu", {0.1f}, 0},  {"res_add_relu", "Relu", {}, 1},
                      {"res_relu_add", "Relu", {}, 2},    {"res_only", "", {}, 1}};
  std::vector<Case> c;
  for (const Epi& e : epis)
    for (int64_t k : {17, 64}) {
      const StemSpec s{{2, 3, 11, 21}, k, 7, 7, 2, {3, 3, 3, 3}};
      ir::Attributes at = stemAttrs(s);
      if (*e.act) at.set("activation", std::string(e.act));
      if (!e.params.empty()) at.set("activation_params", e.params);
      std::vector<std::optional<Dims>> in = {s.x, Dims{k, 3, 7, 7}, Dims{k}};
      std::vector<bool> constant = {false, true, true};
      if (e.residual) {
        at.set("has_residual", int64_t(1));
        at.set("residual_order", std::string(e.residual == 1 ? "add_then_activate" : "activate_then_add"));
        in.push_back(Dims{2, k, 6, 11});
        constant.push_back(false);
      }
      c.push_back({std::string("FusedConv_K") + std::to_string(k) + "_" + e.name, "FusedConv", "anvil", in, constant, at});
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

// The kernel sums the C kH kW products with FMAs in (c, kh, kw) order, the reference in
// its own: 3e-5 of the output range as for the other direct kernels.
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
  const double rel = maxErr / std::max(maxRef, 1e-6);
  if (rel <= kTolerance) return "";
  char msg[200];
  std::snprintf(msg, sizeof msg, "relative error %.3g at flat index %lld (got %.9g, want %.9g)", rel, (long long)worst,
                got[size_t(worst)], want.data<float>()[worst]);
  return msg;
}

runtime::Kernels& registry() { return anvil::testing::nk::registryOf<&runtime::registerNativeConvStemKernels>(); }

std::vector<Param> allParams() {
  std::vector<const runtime::Kernel*> ks;
  for (const runtime::Kernel* k : registry().all()) ks.push_back(k);
  return supportedPairs(ks, allCases());
}

class NativeConvStem : public ::testing::TestWithParam<Param> {};

TEST_P(NativeConvStem, MatchesReferenceBitwiseAcrossThreads) {
  const Case& c = allCases()[GetParam().caseIndex];
  const runtime::Kernel* k = registry().find(Device::kCPU, c.op, c.domain, GetParam().kernel);
  ASSERT_NE(k, nullptr);
  if (const std::string why = skipReason(*k); !why.empty()) GTEST_SKIP() << why;
  const Built b = build(c, uint32_t(GetParam().caseIndex) * 7919u + 3);
  const Tensor want = reference(b);
  const PreparedKernel pk = prepare(*k, b, 2);
  EXPECT_EQ(pk.prepared.packedInputs, std::vector<int>{1}) << "the constant filter was not prepared";
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2}) {
    auto ex = runtime::makeCpuExecutor(threads);
    const RunResult r = runKernel(*k, pk, b, want.dims(), *ex);
    EXPECT_TRUE(r.guardsIntact) << "wrote outside the output (threads=" << threads << ")";
    EXPECT_TRUE(r.workspaceIntact) << "wrote past the workspace (threads=" << threads << ")";
    EXPECT_EQ(compareWithin(r.out, want), "") << k->name << " on " << c.name << " threads=" << threads;
    outs.push_back(r.out);
  }
  EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4), 0) << "1 and 2 threads differ bitwise";
}

INSTANTIATE_TEST_SUITE_P(Native, NativeConvStem, ::testing::ValuesIn(allParams()),
                         [](const ::testing::TestParamInfo<Param>& p) {
                           return p.param.kernel + "__" + allCases()[p.param.caseIndex].name;
                         });

// Every case is supported by the 3 kernels of its op (C <= 4); more input channels are not.
TEST(NativeConvStemSupport, CoversTheCasesAndRejectsWideInputs) {
  EXPECT_EQ(allParams().size(), 3 * allCases().size());  // one AVX2 and two AVX-512 kernels per case
  const Case wide = stemCase("c5", {{1, 5, 9, 9}, 8, 3, 3, 1, {1, 1, 1, 1}});
  const Built b = build(wide, 1);
  for (const runtime::Kernel* k : registry().all()) EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name;
}

// Thread CPU and wall time, the minimum over reps runs (the machine is shared).
struct Timing {
  double wallMs, cpuMs;
};
Timing minMs(const std::function<void()>& f, int reps = 30) {
  f();
  Timing best{1e30, 1e30};
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = runtime::threadCpuMs();
    f();
    best.cpuMs = std::min(best.cpuMs, runtime::threadCpuMs() - c0);
    best.wallMs = std::min(best.wallMs, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

runtime::Kernels& linearRegistry() {
  static runtime::Kernels* k = [] {
    auto* r = new runtime::Kernels();
    runtime::registerNativeLinearKernels(*r);
    return r;
  }();
  return *k;
}

// resnet's stem (3x224x224 -> 64x112x112, 7x7 stride 2 pad 3) against the im2col kernels.
TEST(NativeConvStemBench, DISABLED_Timing) {
  const Case c = stemCase("resnet_stem", {{1, 3, 224, 224}, 64, 7, 7, 2, {3, 3, 3, 3}});
  const Built b = build(c, 1);
  const Tensor want = reference(b);
  const double flops = 2.0 * 64 * 147 * 112 * 112;
  std::vector<const runtime::Kernel*> ks;
  for (const runtime::Kernel* k : linearRegistry().all())
    if (k->op == "Conv" && k->domain.empty() && k->name.rfind("f32_conv2d_prepacked", 0) == 0) ks.push_back(k);
  for (const runtime::Kernel* k : registry().all())
    if (k->op == "Conv") ks.push_back(k);
  for (const runtime::Kernel* k : ks) {
    if (!runtime::hostHasAll(k->requirements) || !k->supports(*b.node, b.types())) continue;
    for (int threads : {1, 2}) {
      const PreparedKernel pk = prepare(*k, b, threads);
      auto ex = runtime::makeCpuExecutor(threads);
      Step step(*k, pk, b, want.dims());
      const Timing t = minMs([&] { step.run(*ex); });
      std::printf("  %-44s t=%d wall %7.3f ms (%6.1f GFLOP/s) thread CPU %7.3f ms\n", k->name.c_str(), threads,
                  t.wallMs, flops / (t.wallMs * 1e6), t.cpuMs);
    }
  }
}

}  // namespace
