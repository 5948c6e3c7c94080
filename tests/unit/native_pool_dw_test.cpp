// Timing of the depthwise convolution kernels (cpu/tactics/native_dwconv.cpp) and the pooling
// kernels (cpu/tactics/native_ops_pool.cpp) on the zoo models' layer shapes, and the pooling
// kernels' fast paths against the reference kernel: odd shapes, strides, pads, ceil_mode,
// dilations, NaN, 1 and 2 threads bitwise equal, guarded outputs. The depthwise kernels'
// correctness cases are in native_winograd_test.cpp (they share its registry).
// Run the timings with --gtest_also_run_disabled_tests --gtest_filter='NativePoolDwBench.*'.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "cpu/reference.h"
#include "native_kernel_test_util.h"
#include "op_test_util.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeWinogradKernels(Kernels& k);  // cpu/tactics/native_winograd.cpp (with the depthwise family)
void registerNativeLinearKernels(Kernels& k);    // cpu/tactics/native_linear.cpp (the direct depthwise kernel)
void registerNativeOpKernels(Kernels& k);        // cpu/tactics/native_ops.cpp (pooling)
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

using namespace anvil::testing::nk;

runtime::Kernels& registry() {
  return anvil::testing::nk::registryOf<&runtime::registerNativeWinogradKernels, &runtime::registerNativeLinearKernels,
                                        &runtime::registerNativeOpKernels>();
}

// Median and minimum of reps runs (the machine is shared: the minimum is the steadier figure).
std::pair<double, double> medianMinMs(const std::function<void()>& f, int reps) {
  f();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return {t[t.size() / 2], t[0]};
}

// Times every kernel of `op` whose name contains `family` and that supports the case.
void timeCase(const Case& c, const std::string& label, const std::string& family, int threads = 1) {
  const Built b = build(c, 1);
  const Tensor want = reference(b);
  for (const runtime::Kernel* k : registry().all()) {
    if (k->op != c.op || k->domain != c.domain || k->name.find(family) == std::string::npos) continue;
    if (!runtime::hostHasAll(k->requirements) || !k->supports(*b.node, b.types())) continue;
    const PreparedKernel pk = prepare(*k, b, threads);
    auto ex = runtime::makeCpuExecutor(threads);
    Step step(*k, pk, b, want.dims(), true);
    const int reps = std::getenv("DW_REPS") ? std::atoi(std::getenv("DW_REPS")) : 30;
    const auto [med, min] = medianMinMs([&] { step.run(*ex); }, reps);
    std::printf("%-26s %-44s t=%d median %8.4f ms min %8.4f ms  %s\n", label.c_str(), k->name.c_str(), threads, med, min,
                compare(step.result().out, want).empty() ? "ok" : "MISMATCH");
  }
}

// ---------------------------------------------------------------------------------------
// MaxPool: every native MaxPool kernel against the reference, exactly (max picks one of its
// inputs; a zero's sign may differ, which == ignores), NaN where the reference has one.

struct PoolSpec {
  Dims x, k, s, pads;
  int64_t ceil = 0;
  std::string autoPad;
  int nan = 0;  // 1: NaNs and infinities sprinkled over the input; 2: every input NaN
};

Case poolCase(const std::string& name, const PoolSpec& p) {
  ir::Attributes at;
  at.set("kernel_shape", p.k);
  if (!p.s.empty()) at.set("strides", p.s);
  if (!p.pads.empty()) at.set("pads", p.pads);
  if (p.ceil) at.set("ceil_mode", p.ceil);
  if (!p.autoPad.empty()) at.set("auto_pad", p.autoPad);
  return {"MaxPool_" + name, "MaxPool", "", {p.x}, {false}, at};
}

struct PoolCase {
  Case c;
  int nan;
};

std::vector<PoolCase> poolCases() {
  std::vector<PoolCase> out;
  auto add = [&](const std::string& name, const PoolSpec& p) { out.push_back({poolCase(name, p), p.nan}); };
  // resnet18's and squeezenet1_1's layers
  add("resnet18", {{1, 64, 112, 112}, {3, 3}, {2, 2}, {1, 1, 1, 1}});
  add("squeezenet_111", {{1, 64, 111, 111}, {3, 3}, {2, 2}, {}, 1});
  add("squeezenet_55", {{1, 128, 55, 55}, {3, 3}, {2, 2}, {}, 1});
  add("squeezenet_27", {{1, 256, 27, 27}, {3, 3}, {2, 2}, {}, 1});
  // Odd extents around the 8- and 16-lane steps, every stride pair, pads, ceil_mode.
  int i = 0;
  for (int64_t h : {1, 2, 7, 17, 63})
    for (int64_t w : {1, 3, 8, 17, 63}) {
      const int64_t sh = 1 + (i & 1), sw = 1 + ((i >> 1) & 1), ceil = (i >> 2) & 1;
      const int64_t pad = (i % 3 == 0) ? 0 : 1;
      const Dims k = {std::min<int64_t>(3, h + 2 * pad), std::min<int64_t>(3, w + 2 * pad)};
      const std::string n = std::to_string(h) + "x" + std::to_string(w) + "_s" + std::to_string(sh) +
                            std::to_string(sw) + "_p" + std::to_string(pad) + "_c" + std::to_string(ceil);
      add(n, {{1, 3, h, w}, k, {sh, sw}, {pad, pad, pad, pad}, ceil});
      ++i;
    }
  add("k2_s2", {{2, 3, 17, 18}, {2, 2}, {2, 2}});
  add("k2_s2_ceil", {{2, 3, 17, 17}, {2, 2}, {2, 2}, {}, 1});
  add("k5_s1_pad2", {{1, 4, 20, 33}, {5, 5}, {1, 1}, {2, 2, 2, 2}});
  add("k5x2_s2x1_asym", {{1, 4, 20, 33}, {5, 2}, {2, 1}, {0, 1, 3, 0}, 1});
  add("k1x7_s1", {{1, 2, 9, 40}, {1, 7}, {1, 1}, {0, 3, 0, 3}});
  add("k1_s2", {{1, 2, 9, 40}, {1, 1}, {2, 2}});
  add("same_upper", {{1, 3, 16, 31}, {3, 3}, {2, 2}, {}, 0, "SAME_UPPER"});
  add("same_lower", {{1, 3, 15, 30}, {3, 3}, {2, 2}, {}, 0, "SAME_LOWER"});
  add("valid", {{1, 3, 15, 30}, {3, 3}, {2, 2}, {}, 0, "VALID"});
  add("asym_2011_ceil", {{2, 5, 13, 29}, {3, 3}, {2, 2}, {2, 0, 1, 1}, 1});
  add("nan_scattered", {{2, 3, 19, 37}, {3, 3}, {2, 2}, {1, 1, 1, 1}, 0, "", 1});
  add("nan_scattered_s1", {{1, 3, 19, 37}, {3, 3}, {1, 1}, {1, 1, 1, 1}, 1, "", 1});
  add("nan_all", {{1, 2, 9, 9}, {3, 3}, {2, 2}, {1, 1, 1, 1}, 0, "", 2});
  return out;
}

const std::vector<PoolCase>& allPoolCases() {
  static const std::vector<PoolCase> c = poolCases();
  return c;
}

std::vector<Param> poolParams() {
  std::vector<const runtime::Kernel*> ks;
  for (const runtime::Kernel* k : registry().all())
    if (k->op == "MaxPool" && k->device == Device::kCPU) ks.push_back(k);
  std::vector<Case> cases;
  for (const PoolCase& p : allPoolCases()) cases.push_back(p.c);
  return supportedPairs(ks, cases);
}

Built buildPool(const PoolCase& pc, uint32_t seed) {
  Built b = build(pc.c, seed);
  float* x = b.tensors[0].data<float>();
  const int64_t n = b.tensors[0].numel();
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) {
    if (pc.nan == 2) x[i] = nan;
    if (pc.nan == 1 && i % 7 == 3) x[i] = nan;
    if (pc.nan == 1 && i % 11 == 5) x[i] = -inf;
    if (pc.nan == 1 && i % 13 == 6) x[i] = inf;
  }
  // Ties: a few runs of equal values.
  for (int64_t i = 0; i + 1 < n; i += 29) x[i + 1] = x[i];
  return b;
}

class NativeMaxPool : public ::testing::TestWithParam<Param> {};

TEST_P(NativeMaxPool, MatchesReferenceExactlyAndAcrossThreads) {
  const PoolCase& pc = allPoolCases()[GetParam().caseIndex];
  const runtime::Kernel* k = registry().find(Device::kCPU, "MaxPool", "", GetParam().kernel);
  ASSERT_NE(k, nullptr);
  if (const std::string why = skipReason(*k); !why.empty()) GTEST_SKIP() << why;
  const Built b = buildPool(pc, uint32_t(GetParam().caseIndex) * 31u + 5);
  const Tensor want = reference(b);
  const PreparedKernel pk = prepare(*k, b, 2);
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2}) {
    auto ex = runtime::makeCpuExecutor(threads);
    const RunResult r = runKernel(*k, pk, b, want.dims(), *ex);
    EXPECT_TRUE(r.guardsIntact) << "wrote outside the output (threads=" << threads << ")";
    EXPECT_TRUE(r.workspaceIntact) << "wrote past the workspace (threads=" << threads << ")";
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < want.numel(); ++i) {
      const float g = r.out[size_t(i)], w = want.data<float>()[i];
      if (!(g == w || (std::isnan(g) && std::isnan(w)))) {
        if (first < 0) first = i;
        ++bad;
      }
    }
    EXPECT_EQ(bad, 0) << k->name << " on " << pc.c.name << " threads=" << threads << ": first at " << first << " got "
                      << (first >= 0 ? r.out[size_t(first)] : 0.f) << " want "
                      << (first >= 0 ? want.data<float>()[first] : 0.f);
    outs.push_back(r.out);
  }
  EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4), 0) << "1 and 2 threads differ bitwise";
}

INSTANTIATE_TEST_SUITE_P(Native, NativeMaxPool, ::testing::ValuesIn(poolParams()),
                         [](const ::testing::TestParamInfo<Param>& p) {
                           return p.param.kernel + "__" + allPoolCases()[p.param.caseIndex].c.name;
                         });

TEST(NativeMaxPoolSupports, SeparableDeclinesDilationsAndWideStrides) {
  const runtime::Kernel* k = registry().find(Device::kCPU, "MaxPool", "", "f32_maxpool2d_separable__avx2");
  ASSERT_NE(k, nullptr);
  auto supports = [&](const PoolSpec& p, ir::Attributes extra = {}) {
    Case c = poolCase("x", p);
    for (const auto& [name, v] : extra.all()) c.attrs.set(name, v.value);
    const Built b = build(c, 1);
    return k->supports(*b.node, b.types());
  };
  EXPECT_TRUE(supports({{1, 2, 9, 9}, {3, 3}, {2, 2}, {1, 1, 1, 1}}));
  EXPECT_TRUE(supports({{1, 2, 9, 9}, {3, 3}, {1, 2}, {}}));
  EXPECT_FALSE(supports({{1, 2, 9, 9}, {3, 3}, {3, 3}, {}})) << "took stride 3";
  ir::Attributes d2;
  d2.set("dilations", Dims{2, 2});
  EXPECT_FALSE(supports({{1, 2, 9, 9}, {3, 3}, {1, 1}, {}}, d2)) << "took dilation 2";
}

// A run on smaller extents than prepared (the workspace fits) and on larger ones (the
// generic rows take over) gives the reference's values.
TEST(NativeMaxPoolRun, OtherExtentsThanPrepared) {
  const runtime::Kernel* k = registry().find(Device::kCPU, "MaxPool", "", "f32_maxpool2d_separable__avx2");
  ASSERT_NE(k, nullptr);
  if (!runtime::hostHasAll(k->requirements)) GTEST_SKIP() << "skipped: this CPU lacks avx2";
  const PoolCase mid{poolCase("mid", {{1, 3, 20, 40}, {3, 3}, {2, 2}, {1, 1, 1, 1}}), 0};
  const PoolCase small{poolCase("small", {{1, 3, 7, 9}, {3, 3}, {2, 2}, {1, 1, 1, 1}}), 0};
  const PoolCase big{poolCase("big", {{1, 3, 30, 90}, {3, 3}, {2, 2}, {1, 1, 1, 1}}), 0};
  const Built bm = buildPool(mid, 3);
  const PreparedKernel pk = prepare(*k, bm, 2);
  for (const PoolCase* pc : {&small, &big}) {
    const Built b = buildPool(*pc, 4);
    const Tensor want = reference(b);
    auto ex = runtime::makeCpuExecutor(2);
    const RunResult r = runKernel(*k, pk, b, want.dims(), *ex);
    EXPECT_TRUE(r.guardsIntact && r.workspaceIntact) << pc->c.name;
    EXPECT_EQ(std::memcmp(r.out.data(), want.data<float>(), r.out.size() * 4), 0) << pc->c.name;
  }
}

// GlobalAveragePool in 32 double partial sums: within a float rounding of the exact mean
// (computed here in long double), 1 and 2 threads bitwise equal, guards intact.
TEST(NativeGlobalAvgPool, Avx512MatchesTheExactMean) {
  const runtime::Kernel* k =
      registry().find(Device::kCPU, "GlobalAveragePool", "", "f32_global_avgpool_f64x32__avx512");
  ASSERT_NE(k, nullptr);
  if (!runtime::hostHasAll(k->requirements)) GTEST_SKIP() << "skipped: no AVX-512";
  for (const Dims& x : {Dims{2, 7, 13, 13}, Dims{1, 3, 1, 1}, Dims{1, 5, 7}, Dims{2, 63, 7, 7}, Dims{1, 32, 112, 112},
                        Dims{1, 4, 3, 11}, Dims{1, 2, 33, 1}}) {
    const Case c{"gap", "GlobalAveragePool", "", {x}, {false}, {}};
    Built b = build(c, 5);
    float* xv = b.tensors[0].data<float>();
    for (int64_t i = 0; i < b.tensors[0].numel(); ++i) xv[i] = xv[i] * 3.0f + 0.25f;  // a nonzero mean
    const Tensor want = reference(b);
    const PreparedKernel pk = prepare(*k, b, 2);
    const int64_t planes = x[0] * x[1], n = b.tensors[0].numel() / planes;
    std::vector<std::vector<float>> outs;
    for (int threads : {1, 2}) {
      auto ex = runtime::makeCpuExecutor(threads);
      const RunResult r = runKernel(*k, pk, b, want.dims(), *ex);
      EXPECT_TRUE(r.guardsIntact && r.workspaceIntact);
      for (int64_t p = 0; p < planes; ++p) {
        long double exact = 0;
        for (int64_t i = 0; i < n; ++i) exact += xv[p * n + i];
        exact /= n;
        EXPECT_NEAR(double(r.out[size_t(p)]), double(exact), std::fabs(double(exact)) * 1.2e-7 + 1e-30)
            << "plane " << p << " of " << x.size() << "-d input, n = " << n;
      }
      outs.push_back(r.out);
    }
    EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4), 0) << "1 and 2 threads differ bitwise";
  }
}

TEST(NativePoolDwBench, DISABLED_GlobalAveragePool) {
  for (const Dims& x : {Dims{1, 32, 112, 112}, Dims{1, 96, 56, 56}, Dims{1, 1152, 7, 7}}) {
    const Case c{"gap", "GlobalAveragePool", "", {x}, {false}, {}};
    timeCase(c, "GAP " + std::to_string(x[1]) + "x" + std::to_string(x[2]), "global_avgpool");
  }
}

TEST(NativePoolDwBench, DISABLED_MaxPool) {
  for (const PoolCase& pc : allPoolCases()) {
    if (pc.c.name.find("resnet18") == std::string::npos && pc.c.name.find("squeezenet") == std::string::npos) continue;
    for (int threads : {1, 2}) timeCase(pc.c, pc.c.name, "maxpool", threads);
  }
}

// ---------------------------------------------------------------------------------------
// Depthwise planes of 8 or fewer output columns: the AVX-512 kernels take 16 channels at a
// time (channel tails, batches, every filter side and stride, fused epilogues with a
// residual); the other depthwise cases are in native_winograd_test.cpp.

std::vector<Case> smallPlaneDwCases() {
  std::vector<Case> out;
  for (int64_t k : {3, 5, 7})
    for (int64_t stride : {1, 2})
      for (int64_t c : {1, 16, 17, 40}) {
        const int64_t side = stride == 1 ? 7 : 14, h = k / 2;
        const Dims x{2, c, side, side - 1};
        ir::Attributes at;
        at.set("group", c);
        at.set("kernel_shape", Dims{k, k});
        at.set("strides", Dims{stride, stride});
        at.set("pads", Dims{h, h - 1, h, h});
        const std::string n = "k" + std::to_string(k) + "_s" + std::to_string(stride) + "_c" + std::to_string(c);
        out.push_back({"Conv_dwsmall_" + n, "Conv", "", {x, Dims{c, 1, k, k}, Dims{c}}, {false, true, true}, at});
        // FusedConv: SiLU, then the residual added (the epilogue runs per plane after the block).
        ir::Attributes fa = at;
        fa.set("activation", std::string(c % 2 ? "Silu" : "Clip"));
        if (c % 2 == 0) fa.set("activation_params", std::vector<float>{-0.5f, 0.5f});
        std::vector<std::optional<Dims>> in = {x, Dims{c, 1, k, k}, Dims{c}};
        std::vector<bool> constant = {false, true, true};
        if (c != 16) {
          const int64_t oh = (side + 2 * h - k) / stride + 1, ow = (side - 1 + 2 * h - 1 - k) / stride + 1;
          fa.set("has_residual", int64_t(1));
          fa.set("residual_order", std::string("activate_then_add"));
          in.push_back(Dims{2, c, oh, ow});
          constant.push_back(false);
        }
        out.push_back({"FusedConv_dwsmall_" + n, "FusedConv", "anvil", in, constant, fa});
      }
  return out;
}

const std::vector<Case>& allSmallDwCases() {
  static const std::vector<Case> c = smallPlaneDwCases();
  return c;
}

std::vector<Param> smallDwParams() {
  std::vector<const runtime::Kernel*> ks;
  for (const runtime::Kernel* k : registry().all())
    if (k->name.find("dwconv2d_") != std::string::npos && k->name.find("_rows") != std::string::npos) ks.push_back(k);
  return supportedPairs(ks, allSmallDwCases());
}

class NativeDwSmallPlanes : public ::testing::TestWithParam<Param> {};

TEST_P(NativeDwSmallPlanes, MatchesReferenceBitwiseAcrossThreads) {
  const Case& c = allSmallDwCases()[GetParam().caseIndex];
  const runtime::Kernel* k = registry().find(Device::kCPU, c.op, c.domain, GetParam().kernel);
  ASSERT_NE(k, nullptr);
  if (const std::string why = skipReason(*k); !why.empty()) GTEST_SKIP() << why;
  const Built b = build(c, uint32_t(GetParam().caseIndex) * 131u + 7);
  const Tensor want = reference(b);
  const PreparedKernel pk = prepare(*k, b, 2);
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

INSTANTIATE_TEST_SUITE_P(Native, NativeDwSmallPlanes, ::testing::ValuesIn(smallDwParams()),
                         [](const ::testing::TestParamInfo<Param>& p) {
                           return p.param.kernel + "__" + allSmallDwCases()[p.param.caseIndex].name;
                         });

// The AVX-512 kernels on smaller extents than prepared (the channel blocks when their
// buffer fits the prepared workspace, the planes otherwise).
TEST(NativeDwSmallPlanes, SmallerShapesThanPrepared) {
  for (int64_t k : {3, 5, 7})
    for (int64_t stride : {1, 2})
      for (const Dims& big : {Dims{2, 20, 30, 61}, Dims{1, 20, 16, 16}}) {
        const std::string name = "f32_dwconv2d_" + std::to_string(k) + "x" + std::to_string(k) + "_rows__avx512";
        const runtime::Kernel* kn = registry().find(Device::kCPU, "Conv", "", name);
        ASSERT_NE(kn, nullptr);
        if (!runtime::hostHasAll(kn->requirements)) GTEST_SKIP() << "skipped: no AVX-512";
        auto mk = [&](const Dims& x) {
          ir::Attributes at;
          at.set("group", x[1]);
          at.set("kernel_shape", Dims{k, k});
          at.set("strides", Dims{stride, stride});
          at.set("pads", Dims{k / 2, k / 2, k / 2, k / 2});
          return Case{"dw", "Conv", "", {x, Dims{x[1], 1, k, k}, Dims{x[1]}}, {false, true, true}, at};
        };
        const Built bb = build(mk(big), 21);
        for (const Dims& small : {Dims{1, 20, 5, 13}, Dims{2, 20, 9, 7}, Dims{1, 20, 3, 3}}) {
          Built bs = build(mk(small), 22);
          bs.tensors[1] = bb.tensors[1];
          bs.tensors[2] = bb.tensors[2];
          const PreparedKernel pk = prepare(*kn, bb, 2);
          const Tensor want = reference(bs);
          auto ex = runtime::makeCpuExecutor(2);
          const RunResult r = runKernel(*kn, pk, bs, want.dims(), *ex);
          EXPECT_TRUE(r.guardsIntact && r.workspaceIntact) << name << " stride " << stride;
          EXPECT_EQ(compare(r.out, want), "") << name << " stride " << stride << " small " << small[2] << "x" << small[3];
        }
      }
}

// ---------------------------------------------------------------------------------------
// Depthwise timing: channels, input side, stride, filter side, activation (as the fusion
// pass leaves them: FusedConv with the model's activation).

TEST(NativePoolDwBench, DISABLED_Depthwise) {
  struct L {
    const char* model;
    int64_t c, side, stride, k;
    const char* act;
  };
  const L layers[] = {
      {"mbv2", 32, 112, 1, 3, "Clip"},     {"mbv2", 96, 112, 2, 3, "Clip"},    {"mbv2", 144, 56, 1, 3, "Clip"},
      {"mbv2", 144, 56, 2, 3, "Clip"},     {"mbv2", 192, 28, 1, 3, "Clip"},    {"mbv2", 384, 14, 1, 3, "Clip"},
      {"mbv2", 960, 7, 1, 3, "Clip"},      {"effb0", 240, 28, 1, 5, "Silu"}, {"effb0", 672, 14, 2, 5, "Silu"},
      {"effb0", 1152, 7, 1, 5, "Silu"}, {"convnext", 96, 56, 1, 7, ""},     {"convnext", 192, 28, 1, 7, ""},
      {"convnext", 384, 14, 1, 7, ""},     {"convnext", 768, 7, 1, 7, ""},
  };
  const char* only = std::getenv("DW_ONLY");  // a model name: time its layers only
  for (const L& l : layers) {
    if (only && std::string(only) != l.model) continue;
    const int64_t h = l.k / 2;
    const int64_t channels = std::getenv("DW_CHANNELS") ? std::atoll(std::getenv("DW_CHANNELS")) : l.c;  // e.g. 8: in cache
    ir::Attributes at;
    at.set("group", channels);
    at.set("kernel_shape", Dims{l.k, l.k});
    at.set("strides", Dims{l.stride, l.stride});
    at.set("pads", Dims{h, h, h, h});
    const char* act = std::getenv("DW_ACT") ? std::getenv("DW_ACT") : l.act;  // "" (none), Silu, ...
    if (*act) at.set("activation", std::string(act));
    if (std::string(act) == "Clip") at.set("activation_params", std::vector<float>{0.0f, 6.0f});
    const Case c{"dw", "FusedConv", "anvil", {Dims{1, channels, l.side, l.side}, Dims{channels, 1, l.k, l.k}, Dims{channels}},
                 {false, true, true}, at};
    const std::string label = std::string(l.model) + " " + std::to_string(channels) + "x" + std::to_string(l.side) + " s" +
                              std::to_string(l.stride) + " k" + std::to_string(l.k);
    timeCase(c, label, "dwconv");
  }
}

}  // namespace
