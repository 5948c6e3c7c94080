// anvil.FusedConvDw's blocked kernels (cpu/tactics/native_conv_dw_fused.inc:
// f32_conv_dw_nchw16c_14x32__avx512, f32_conv_dw_nchw8c_6x16__avx2) on a one-node graph
// (tests/unit/native_kernel_test_util.h): against the reference kernel (the 1x1 Conv's
// reference, its epilogue, then the depthwise loops of cpu/kernels/anvil_linear.cpp), with
// the output between sentinel guards, a guarded workspace and the packed constants handed
// over as NaNs (BlockedStep); padding lanes exactly zero; 1 and 2 threads bitwise equal; and
// bit for bit the output of the two blocked nodes it replaces (the blocked 1x1 FusedConv,
// its output handed to the blocked depthwise FusedConv). Shapes: input channels off the
// block and past one K block, 1x1 outputs of one partial block and of a last block of <= 8
// channels (AVX-512's half-width tiles), rows narrower and wider than a tile, batch 2, 3x3 /
// 5x5 / 7x7 / 2x4 windows at strides 1 and 2 with even and uneven pads, a one-row image, and
// each pair of activations the models use (also those the tiles do not compute: SiLU,
// Sigmoid). Also: the schema's checks, the reference against the unfused reference chain,
// and what the kernels refuse.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cpu/tactics/nchwc.h"
#include "native_kernel_test_util.h"
#include "nchwc_test_util.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeConvRowsKernels(Kernels& k);      // the kernels under test and the blocked 1x1
void registerNativeNchwcSpatialKernels(Kernels& k);  // the blocked depthwise
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::Tensor;

namespace {

using namespace anvil::testing::nk;

runtime::Kernels& registry() {
  static runtime::Kernels* k = [] {
    auto* r = new runtime::Kernels();
    runtime::registerNativeConvRowsKernels(*r);
    runtime::registerNativeNchwcSpatialKernels(*r);
    return r;
  }();
  return *k;
}

bool skipBlock(int block) { return block == 16 ? !runtime::hostHas("avx512f") : !runtime::hostHasAll({"avx2", "fma"}); }

struct Spec {
  Dims x;  // N, C, H, W
  int64_t E, kh, kw, s;
  Dims pads;  // top, left, bottom, right
  bool bias = true, dwBias = true;
};

struct Act {
  const char* name;
  std::vector<float> params;
};

struct Pair {
  Act pw, dw;
};

void setAct(ir::Attributes& at, const std::string& prefix, const Act& a) {
  if (*a.name) at.set(prefix + "activation", std::string(a.name));
  if (!a.params.empty()) at.set(prefix + "activation_params", a.params);
}

Case fusedCase(const Spec& s, const Pair& p, const std::string& tag) {
  ir::Attributes at;
  setAct(at, "", p.pw);
  setAct(at, "dw_", p.dw);
  at.set("dw_kernel_shape", Dims{s.kh, s.kw});
  at.set("dw_strides", Dims{s.s, s.s});
  at.set("dw_pads", s.pads);
  const int64_t C = s.x[1], E = s.E;
  std::vector<std::optional<Dims>> in = {s.x, Dims{E, C, 1, 1}, std::nullopt, Dims{E, 1, s.kh, s.kw}, std::nullopt};
  if (s.bias) in[2] = Dims{E};
  if (s.dwBias) in[4] = Dims{E};
  return {"convdw_" + tag, "FusedConvDw", "anvil", in, {false, true, true, true, true}, at};
}

// The two nodes the fused one replaces, with the fused case's tensors: the 1x1 FusedConv
// and the depthwise FusedConv (its X filled in later).
Case pointwiseCase(const Spec& s, const Pair& p) {
  ir::Attributes at;
  setAct(at, "", p.pw);
  std::vector<std::optional<Dims>> in = {s.x, Dims{s.E, s.x[1], 1, 1}, std::nullopt};
  if (s.bias) in[2] = Dims{s.E};
  return {"pw", "FusedConv", "anvil", in, {false, true, true}, at};
}
Case depthwiseCase(const Spec& s, const Pair& p) {
  ir::Attributes at;
  setAct(at, "", p.dw);
  at.set("group", s.E);
  at.set("kernel_shape", Dims{s.kh, s.kw});
  at.set("strides", Dims{s.s, s.s});
  at.set("pads", s.pads);
  std::vector<std::optional<Dims>> in = {Dims{s.x[0], s.E, s.x[2], s.x[3]}, Dims{s.E, 1, s.kh, s.kw}, std::nullopt};
  if (s.dwBias) in[2] = Dims{s.E};
  return {"dw", "FusedConv", "anvil", in, {false, true, true}, at};
}

// b with X and Y in NCHW<block>c.
void setBlocked(const Built& b, int block) {
  const_cast<ir::Value*>(b.node->input(0))->setLayout(ir::Layout::nchwc(block));
  const_cast<ir::Value*>(b.node->output(0))->setLayout(ir::Layout::nchwc(block));
}

std::vector<Handover> handover(const PreparedKernel& pk, size_t inputs) {
  std::vector<Handover> how;
  for (size_t i = 0; i < inputs; ++i) how.push_back(i == 0 ? Handover::kBlocked : packedOr(pk, i, Handover::kRowMajor));
  return how;
}

const runtime::Kernel* blockedKernel(const std::string& op, int block, const ir::Node& n,
                                     const std::vector<ir::TensorType>& types) {
  for (const runtime::Kernel* k : registry().all())
    if (k->op == op && k->domain == "anvil" && k->nchwcBlock == block && k->supports(n, types)) return k;
  return nullptr;
}

// Input i of b set to t (the tensor, and the initializer that prepare packs).
void share(Built& b, size_t i, const Tensor& t) {
  b.tensors[i] = t;
  auto* v = const_cast<ir::Value*>(b.node->input(i));
  if (v->isInitializer()) v->setInitializer(t);
}

// The unfused blocked pair's output storage for the fused case's tensors.
std::vector<float> unfusedStorage(const Spec& s, const Pair& p, const Built& fused, int block, const Dims& outDims) {
  Built pw = build(pointwiseCase(s, p), 1);
  Built dw = build(depthwiseCase(s, p), 1);
  share(pw, 0, fused.tensors[0]);
  share(pw, 1, fused.tensors[1]);
  if (s.bias) share(pw, 2, fused.tensors[2]);
  share(dw, 1, fused.tensors[3]);
  if (s.dwBias) share(dw, 2, fused.tensors[4]);
  setBlocked(pw, block);
  setBlocked(dw, block);
  const runtime::Kernel* kp = blockedKernel("FusedConv", block, *pw.node, pw.types());
  const runtime::Kernel* kd = blockedKernel("FusedConv", block, *dw.node, dw.types());
  EXPECT_TRUE(kp && kd) << "no blocked kernel for the unfused pair";
  if (!kp || !kd) return {};
  // The blocked 1x1 Conv kernel (not the depthwise one, which refuses group 1).
  auto ex = runtime::makeCpuExecutor(1);
  const PreparedKernel pp = prepare(*kp, pw, 1);
  BlockedStep ps(*kp, pp, pw, handover(pp, pw.tensors.size()), {s.x[0], s.E, s.x[2], s.x[3]}, block);
  ps.run(*ex);
  const PreparedKernel pd = prepare(*kd, dw, 1);
  BlockedStep ds(*kd, pd, dw, handover(pd, dw.tensors.size()), outDims, block);
  ds.handOver(0, ps.result().storage);
  ds.run(*ex);
  return ds.result().storage;
}

void check(const Spec& s, const Pair& p, const std::string& tag, int block) {
  SCOPED_TRACE(tag);
  const Case c = fusedCase(s, p, tag);
  Built b = build(c, 7);
  setBlocked(b, block);
  const Tensor want = reference(b);
  // The block's kernels: the full one serves every case; the half-tail one (AVX-512) exactly
  // those whose last output block holds 1 to 8 channels.
  std::vector<const runtime::Kernel*> ks;
  for (const runtime::Kernel* cand : registry().all())
    if (cand->op == "FusedConvDw" && cand->nchwcBlock == block) ks.push_back(cand);
  ASSERT_FALSE(ks.empty());
  const std::vector<float> unfused = unfusedStorage(s, p, b, block, want.dims());
  for (const runtime::Kernel* k : ks) {
    const bool half = k->name.find("halftail") != std::string::npos;
    const bool tail = s.E % 16 >= 1 && s.E % 16 <= 8;
    const bool serves = k->supports(*b.node, b.types());
    ASSERT_EQ(serves, !half || tail) << k->name << " on " << c.name;
    if (!serves) continue;
    SCOPED_TRACE(k->name);
    std::vector<float> first;
    for (int threads : {1, 2}) {
      SCOPED_TRACE("threads " + std::to_string(threads));
      const PreparedKernel pk = prepare(*k, b, threads);
      auto ex = runtime::makeCpuExecutor(threads);
      BlockedStep step(*k, pk, b, handover(pk, b.tensors.size()), want.dims(), block);
      step.run(*ex);
      const BlockedResult r = step.result();
      EXPECT_TRUE(r.guardsIntact && r.workspaceIntact) << "wrote outside its output or workspace";
      EXPECT_TRUE(r.paddingZero) << "padding lanes not zero";
      const std::string err = compare(r.out, want);
      EXPECT_TRUE(err.empty()) << err;
      ASSERT_EQ(r.storage.size(), unfused.size());
      size_t bad = 0;
      while (bad < unfused.size() && std::memcmp(&r.storage[bad], &unfused[bad], sizeof(float)) == 0) ++bad;
      EXPECT_EQ(bad, unfused.size()) << "differs from the blocked 1x1 and depthwise nodes at storage float " << bad
                                     << ": " << (bad < unfused.size() ? r.storage[bad] : 0.0f) << " against "
                                     << (bad < unfused.size() ? unfused[bad] : 0.0f);
      if (threads == 1) first = r.storage;
      else EXPECT_EQ(0, std::memcmp(first.data(), r.storage.data(), first.size() * sizeof(float))) << "1 vs 2 threads";
    }
  }
}

std::vector<Spec> specs() {
  return {
      {{1, 16, 13, 12}, 40, 3, 3, 2, {1, 1, 1, 1}},           // mobilenet_v2's first expansion, small
      {{1, 24, 9, 30}, 96, 3, 3, 1, {1, 1, 1, 1}},            // C 1.5 AVX-512 blocks, rows of 2+ tiles
      {{2, 13, 7, 9}, 13, 5, 5, 2, {2, 2, 2, 2}, false},      // one partial block, no 1x1 bias, batch 2
      {{1, 300, 6, 7}, 24, 5, 5, 1, {2, 2, 2, 2}, true, false},  // two K blocks; last block of 8
      {{1, 8, 11, 17}, 72, 7, 7, 1, {3, 3, 3, 3}},            // 7x7
      {{1, 40, 10, 15}, 48, 2, 4, 2, {0, 1, 2, 1}},           // a generic window, uneven pads
      {{1, 16, 1, 37}, 32, 3, 3, 1, {1, 1, 1, 1}},            // a one-row image
      {{1, 5, 12, 8}, 144, 3, 3, 2, {0, 0, 1, 1}},            // mobilenet's asymmetric stride-2 pads
  };
}

std::vector<Pair> pairs() {
  return {
      {{"Clip", {0.0f, 6.0f}}, {"Clip", {0.0f, 6.0f}}},  // mobilenet_v2
      {{"Silu", {}}, {"Silu", {}}},                      // efficientnet_b0
      {{"HardSwish", {}}, {"", {}}},                     // mobilenet_v3
      {{"", {}}, {"Relu", {}}},
      {{"Sigmoid", {}}, {"HardSigmoid", {0.2f, 0.5f}}},
      {{"Relu", {}}, {"HardSwish", {}}},
  };
}

void fusedTest(int block) {
  const std::vector<Spec> ss = specs();
  const std::vector<Pair> ps = pairs();
  for (size_t i = 0; i < ss.size(); ++i)
    for (size_t j = 0; j < ps.size(); ++j) {
      // Every spec with the first two pairs, every pair on a few specs.
      if (j >= 2 && i % 3 != j % 3) continue;
      check(ss[i], ps[j], "s" + std::to_string(i) + "_p" + std::to_string(j), block);
    }
}

TEST(NativeConvDwFused, Blocked16) {
  if (skipBlock(16)) GTEST_SKIP() << "skipped: no AVX-512";
  fusedTest(16);
}
TEST(NativeConvDwFused, Blocked8) {
  if (skipBlock(8)) GTEST_SKIP() << "skipped: no AVX2";
  fusedTest(8);
}

// The reference against the unfused reference chain (FusedConv, then depthwise FusedConv).
TEST(NativeConvDwFused, ReferenceIsTheChain) {
  const Spec s{{2, 13, 9, 11}, 21, 3, 3, 2, {1, 0, 1, 2}};
  const Pair p{{"Clip", {0.0f, 6.0f}}, {"Silu", {}}};
  const Built b = build(fusedCase(s, p, "chain"), 3);
  const Tensor fused = reference(b);
  Built pw = build(pointwiseCase(s, p), 1);
  Built dw = build(depthwiseCase(s, p), 1);
  for (size_t i = 0; i < 3; ++i) share(pw, i, b.tensors[i]);
  share(dw, 0, reference(pw));
  share(dw, 1, b.tensors[3]);
  share(dw, 2, b.tensors[4]);
  const Tensor chain = reference(dw);
  ASSERT_EQ(fused.dims(), chain.dims());
  const std::vector<float> got(fused.data<float>(), fused.data<float>() + fused.numel());
  const std::string err = compare(got, chain, 1e-6);
  EXPECT_TRUE(err.empty()) << err;
}

// The schema's checks.
TEST(NativeConvDwFused, SchemaChecks) {
  const Spec s{{1, 8, 6, 6}, 16, 3, 3, 1, {1, 1, 1, 1}};
  const Pair p{{"Relu", {}}, {"", {}}};
  Case c = fusedCase(s, p, "schema");
  EXPECT_EQ(build(c, 1).node->output(0)->type().shape.extents(), (Dims{1, 16, 6, 6}));
  Case wrongK = c;
  wrongK.attrs.set("dw_kernel_shape", Dims{5, 5});
  EXPECT_ANY_THROW(build(wrongK, 1));
  Case noWindow = c;
  noWindow.attrs.erase("dw_kernel_shape");
  EXPECT_ANY_THROW(build(noWindow, 1));
  Case notOneByOne = c;
  notOneByOne.inputs[1] = Dims{16, 8, 3, 3};
  EXPECT_ANY_THROW(build(notOneByOne, 1));
  Case residual = c;
  residual.attrs.set("dw_has_residual", int64_t(1));
  EXPECT_ANY_THROW(build(residual, 1));
  Case tooLarge = c;
  tooLarge.attrs.set("dw_pads", Dims{0, 0, 0, 0});
  tooLarge.inputs[0] = Dims{1, 8, 2, 6};
  EXPECT_ANY_THROW(build(tooLarge, 1));
}

// What the kernels refuse: a plain X or Y, another block, a filter computed at run time.
TEST(NativeConvDwFused, Refuses) {
  const int block = runtime::hostHas("avx512f") ? 16 : 8;
  if (skipBlock(block)) GTEST_SKIP() << "skipped: no AVX2";
  const Spec s{{1, 8, 6, 6}, 16, 3, 3, 1, {1, 1, 1, 1}};
  const Pair p{{"Relu", {}}, {"", {}}};
  const Case c = fusedCase(s, p, "refuse");
  const runtime::Kernel* k = nullptr;  // the full kernel (the half-tail one refuses E = 16 too)
  for (const runtime::Kernel* cand : registry().all())
    if (cand->op == "FusedConvDw" && cand->nchwcBlock == block && cand->name.find("halftail") == std::string::npos)
      k = cand;
  ASSERT_NE(k, nullptr);
  Built plain = build(c, 1);
  EXPECT_FALSE(k->supports(*plain.node, plain.types()));
  Built other = build(c, 1);
  setBlocked(other, block == 16 ? 8 : 16);
  EXPECT_FALSE(k->supports(*other.node, other.types()));
  Case dynW = c;
  dynW.constant[3] = false;
  Built dyn = build(dynW, 1);
  setBlocked(dyn, block);
  EXPECT_FALSE(k->supports(*dyn.node, dyn.types()));
  Built ok = build(c, 1);
  setBlocked(ok, block);
  EXPECT_TRUE(k->supports(*ok.node, ok.types()));
}

// The fused step against the two blocked nodes it replaces on the zoo's pairs (one thread, or
// CONVDW_THREADS; CONVDW_COLD=1 streams 64 MB through the caches before each run, as the layers between
// them do in a model; CONVDW_ONLY=<name substring>): best and median of 30 runs.
TEST(NativeConvDwFusedBench, DISABLED_VsUnfused) {
  const int block = runtime::hostHas("avx512f") ? 16 : 8;
  if (skipBlock(block)) GTEST_SKIP() << "skipped: no AVX2";
  struct L {
    const char* name;
    Spec s;
    Pair p;
  };
  const Pair clip{{"Clip", {0.0f, 6.0f}}, {"Clip", {0.0f, 6.0f}}}, silu{{"Silu", {}}, {"Silu", {}}};
  const L layers[] = {
      {"mv2_112_16to96_s2", {{1, 16, 112, 112}, 96, 3, 3, 2, {0, 0, 1, 1}}, clip},
      {"mv2_56_24to144_s1", {{1, 24, 56, 56}, 144, 3, 3, 1, {1, 1, 1, 1}}, clip},
      {"mv2_56_24to144_s2", {{1, 24, 56, 56}, 144, 3, 3, 2, {0, 0, 1, 1}}, clip},
      {"mv2_28_32to192_s1", {{1, 32, 28, 28}, 192, 3, 3, 1, {1, 1, 1, 1}}, clip},
      {"eff_112_16to96_s2", {{1, 16, 112, 112}, 96, 3, 3, 2, {0, 0, 1, 1}}, silu},
      {"eff_56_24to144_s1", {{1, 24, 56, 56}, 144, 3, 3, 1, {1, 1, 1, 1}}, silu},
      {"eff_56_24to144_k5s2", {{1, 24, 56, 56}, 144, 5, 5, 2, {1, 1, 2, 2}}, silu},
      {"eff_28_40to240_k5s1", {{1, 40, 28, 28}, 240, 5, 5, 1, {2, 2, 2, 2}}, silu},
  };
  const char* only = std::getenv("CONVDW_ONLY");
  const bool cold = std::getenv("CONVDW_COLD") && *std::getenv("CONVDW_COLD") != '0';
  const int threads = std::getenv("CONVDW_THREADS") ? std::max(1, std::atoi(std::getenv("CONVDW_THREADS"))) : 1;
  std::vector<float> flush(cold ? size_t(16) << 20 : 0, 1.0f);
  auto ex = runtime::makeCpuExecutor(threads);
  auto timeMs = [&](const std::function<void()>& f) {
    std::vector<double> t;
    for (int i = 0; i < 31; ++i) {
      if (cold)
        for (size_t j = 0; j < flush.size(); j += 16) flush[j] += 1.0f;
      const auto t0 = std::chrono::steady_clock::now();
      f();
      if (i > 0) t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return std::make_pair(t[0], t[t.size() / 2]);
  };
  for (const L& l : layers) {
    if (only && !std::strstr(l.name, only)) continue;
    Built b = build(fusedCase(l.s, l.p, l.name), 7);
    setBlocked(b, block);
    const runtime::Kernel* k = nullptr;
    for (const runtime::Kernel* cand : registry().all())
      if (cand->op == "FusedConvDw" && cand->nchwcBlock == block) k = cand;
    ASSERT_TRUE(k && k->supports(*b.node, b.types()));
    const Dims od = b.node->output(0)->type().shape.extents();
    const PreparedKernel pk = prepare(*k, b, threads);
    BlockedStep fused(*k, pk, b, handover(pk, b.tensors.size()), od, block, Handover::kBlocked, true);
    Built pw = build(pointwiseCase(l.s, l.p), 1), dw = build(depthwiseCase(l.s, l.p), 1);
    setBlocked(pw, block);
    setBlocked(dw, block);
    const runtime::Kernel* kp = blockedKernel("FusedConv", block, *pw.node, pw.types());
    const runtime::Kernel* kd = blockedKernel("FusedConv", block, *dw.node, dw.types());
    ASSERT_TRUE(kp && kd);
    const PreparedKernel pp = prepare(*kp, pw, threads), pd = prepare(*kd, dw, threads);
    BlockedStep ps(*kp, pp, pw, handover(pp, pw.tensors.size()), {l.s.x[0], l.s.E, l.s.x[2], l.s.x[3]}, block,
                   Handover::kBlocked, true);
    BlockedStep ds(*kd, pd, dw, handover(pd, dw.tensors.size()), od, block, Handover::kBlocked, true);
    // The depthwise step reads the 1x1 step's output in place.
    ds.handOverView(0, ps.outputData());
    const auto f = timeMs([&] { fused.run(*ex); });
    const auto p1 = timeMs([&] { ps.run(*ex); });
    const auto d1 = timeMs([&] { ds.run(*ex); });
    const auto both = timeMs([&] {
      ps.run(*ex);
      ds.run(*ex);
    });
    std::printf("%-22s fused %.3f (med %.3f) | 1x1 %.3f + dw %.3f, chained %.3f (med %.3f) ms | %.2fx\n", l.name,
                f.first, f.second, p1.first, d1.first, both.first, both.second, f.first / both.first);
    std::fflush(stdout);
  }
}

}  // namespace
