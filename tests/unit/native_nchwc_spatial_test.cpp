// The blocked NCHW<b>c spatial kernels (cpu/tactics/native_nchwc_spatial.cpp: depthwise Conv /
// anvil.FusedConv, MaxPool, AveragePool) against the reference kernel on plain tensors: the
// plain random input blocked, the kernel run through the contract (BlockedStep of
// tests/unit/nchwc_test_util.h: guarded output and workspace, packed constants handed over
// as NaNs), its output unblocked and compared; the output's padding lanes exactly zero; 1
// and 2 threads bitwise equal. Channel counts off the
// block, batch 2, odd extents, strides, pads, ceil_mode, count_include_pad, activations and
// residuals. The timings against the plain kernels on the zoo's shapes:
// --gtest_also_run_disabled_tests --gtest_filter='NativeNchwcSpatialBench.*'.
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

#include "cpu/tactics/nchwc.h"
#include "native_kernel_test_util.h"
#include "nchwc_test_util.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeNchwcSpatialKernels(Kernels& k);  // the kernels under test
void registerNativeWinogradKernels(Kernels& k);      // the plain depthwise kernels (timings)
void registerNativeOpKernels(Kernels& k);            // the plain pooling kernels (timings)
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

using namespace anvil::testing::nk;

runtime::Kernels& blockedRegistry() {
  static runtime::Kernels* k = [] {
    auto* r = new runtime::Kernels();
    runtime::registerNativeNchwcSpatialKernels(*r);
    return r;
  }();
  return *k;
}

runtime::Kernels& plainRegistry() {
  static runtime::Kernels* k = [] {
    auto* r = new runtime::Kernels();
    runtime::registerNativeWinogradKernels(*r);
    runtime::registerNativeOpKernels(*r);
    return r;
  }();
  return *k;
}

// The blocked inputs of a node: X (input 0) and, for FusedConv, Z (input 3).
bool isBlockedInput(const Case& c, size_t i) { return i == 0 || (c.op == "FusedConv" && i == 3); }

// How the step hands the inputs over: the blocked ones blocked, packed constants as NaNs,
// the rest row-major.
std::vector<Handover> handover(const Case& c, const PreparedKernel& pk, size_t inputs) {
  std::vector<Handover> how;
  for (size_t i = 0; i < inputs; ++i)
    how.push_back(isBlockedInput(c, i) ? Handover::kBlocked : packedOr(pk, i, Handover::kRowMajor));
  return how;
}

// The case built with its activation values in NCHW<block>c.
Built buildBlocked(const Case& c, int block, uint32_t seed) {
  Built b = build(c, seed);
  for (size_t i = 0; i < b.tensors.size(); ++i)
    if (b.tensors[i].defined() && isBlockedInput(c, i))
      const_cast<ir::Value*>(b.node->input(i))->setLayout(ir::Layout::nchwc(block));
  const_cast<ir::Value*>(b.node->output(0))->setLayout(ir::Layout::nchwc(block));
  return b;
}

// Every kernel of `op` for this block that supports the case, run and checked. Max pooling
// compares exactly; the others within the harness's tolerance. Returns the kernels run.
int checkCase(const Case& c, int block, bool exact) {
  const Built b = buildBlocked(c, block, 7);
  const Tensor want = reference(b);
  int ran = 0;
  for (const runtime::Kernel* k : blockedRegistry().all()) {
    if (k->op != c.op || k->domain != c.domain || k->nchwcBlock != block) continue;
    if (!k->supports(*b.node, b.types())) {
      ADD_FAILURE() << k->name << " refuses " << c.name;
      continue;
    }
    std::vector<float> first;
    for (int threads : {1, 2}) {
      SCOPED_TRACE(k->name + " on " + c.name + " threads " + std::to_string(threads));
      const PreparedKernel pk = prepare(*k, b, threads);
      auto ex = runtime::makeCpuExecutor(threads);
      BlockedStep step(*k, pk, b, handover(c, pk, b.tensors.size()), want.dims(), block);
      step.run(*ex);
      const BlockedResult r = step.result();
      EXPECT_TRUE(r.guardsIntact && r.workspaceIntact) << "wrote outside its output or workspace";
      EXPECT_TRUE(r.paddingZero) << "padding lanes not zero";
      const std::vector<float>& got = r.out;
      if (exact) {
        int64_t bad = -1;
        for (int64_t i = 0; i < want.numel() && bad < 0; ++i) {
          const float g = got[size_t(i)], w = want.data<float>()[i];
          if (!(g == w || (std::isnan(g) && std::isnan(w)))) bad = i;
        }
        EXPECT_EQ(bad, -1) << "got " << got[size_t(std::max<int64_t>(bad, 0))] << " want "
                           << want.data<float>()[std::max<int64_t>(bad, 0)];
      } else {
        const std::string err = compare(got, want);
        EXPECT_TRUE(err.empty()) << err;
      }
      const std::vector<float>& raw = r.storage;
      if (threads == 1) first = raw;
      else EXPECT_EQ(0, std::memcmp(first.data(), raw.data(), raw.size() * sizeof(float))) << "1 vs 2 threads differ";
    }
    ++ran;
  }
  return ran;
}

bool skipBlock(int block) { return block == 16 ? !runtime::hostHas("avx512f") : !runtime::hostHasAll({"avx2", "fma"}); }

// ---------------------------------------------------------------------------------------
// Depthwise cases

struct DwSpec {
  Dims x;  // N, C, H, W
  int64_t kh, kw, sh, sw;
  Dims pads;            // empty: none
  std::string autoPad;  // "" NOTSET
  bool bias = true;
};

Case dwCase(const DwSpec& s, bool fused, const char* act, const std::vector<float>& params, int residual,
            const std::string& tag) {
  ir::Attributes at;
  const int64_t C = s.x[1];
  at.set("group", C);
  at.set("kernel_shape", Dims{s.kh, s.kw});
  at.set("strides", Dims{s.sh, s.sw});
  if (!s.pads.empty()) at.set("pads", s.pads);
  if (!s.autoPad.empty()) at.set("auto_pad", s.autoPad);
  std::vector<std::optional<Dims>> in = {s.x, Dims{C, 1, s.kh, s.kw}};
  std::vector<bool> constant = {false, true, true};
  in.push_back(s.bias ? std::optional<Dims>(Dims{C}) : std::nullopt);
  std::string name = "dw_" + tag;
  if (!fused) return {name, "Conv", "", in, constant, at};
  if (*act) at.set("activation", std::string(act));
  if (!params.empty()) at.set("activation_params", params);
  if (residual) {
    at.set("has_residual", int64_t(1));
    at.set("residual_order", std::string(residual == 1 ? "add_then_activate" : "activate_then_add"));
    // Z has the output's extents: infer them from a plain build.
    const Built pb = build({name, "Conv", "", in, constant, at}, 1);
    in.push_back(pb.node->output(0)->type().shape.extents());
    constant.push_back(false);
  }
  return {name, "FusedConv", "anvil", in, constant, at};
}

std::vector<DwSpec> dwSpecs() {
  std::vector<DwSpec> out;
  const int64_t channels[] = {1, 3, 8, 13, 16, 24, 40};
  const Dims sides[] = {{1, 1}, {7, 7}, {17, 13}, {6, 20}, {13, 34}};
  const std::pair<int64_t, int64_t> filters[] = {{3, 3}, {5, 5}, {7, 7}, {1, 1}, {2, 2}, {4, 4}, {6, 6}, {3, 5}};
  int i = 0;
  for (const auto& [kh, kw] : filters)
    for (const Dims& hw : sides)
      for (int64_t s : {1, 2}) {
        const int64_t C = channels[size_t(i % 7)], N = 1 + (i % 3 == 0);
        Dims pads;
        switch (i % 4) {
          case 0: pads = {kh / 2, kw / 2, kh / 2, kw / 2}; break;
          case 1: pads = {}; break;
          case 2: pads = {0, 1, 2, 1}; break;
          default: pads = {kh / 2 + 1, kw / 2, kh / 2, kw / 2 + 1}; break;
        }
        ++i;
        if (hw[0] + (pads.empty() ? 0 : pads[0] + pads[2]) < kh || hw[1] + (pads.empty() ? 0 : pads[1] + pads[3]) < kw)
          continue;
        out.push_back({{N, C, hw[0], hw[1]}, kh, kw, s, s, pads, "", i % 5 != 0});
      }
  // Stride 3, unequal strides, automatic pads.
  out.push_back({{2, 13, 17, 13}, 3, 3, 3, 3, {1, 1, 1, 1}, ""});
  out.push_back({{1, 24, 17, 13}, 3, 3, 1, 2, {1, 1, 1, 1}, ""});
  out.push_back({{1, 13, 16, 30}, 5, 5, 2, 2, {}, "SAME_UPPER"});
  out.push_back({{2, 40, 15, 31}, 3, 3, 2, 2, {}, "SAME_LOWER"});
  out.push_back({{1, 3, 15, 31}, 7, 7, 1, 1, {}, "VALID"});
  // Wide rows: several register blocks and tails.
  out.push_back({{1, 16, 9, 61}, 3, 3, 1, 1, {1, 1, 1, 1}, ""});
  out.push_back({{1, 24, 9, 61}, 5, 5, 2, 2, {2, 2, 2, 2}, ""});
  out.push_back({{1, 8, 9, 61}, 7, 7, 1, 1, {3, 3, 3, 3}, ""});
  // Every remainder of the 5x5 and 7x7 rows' interior after AVX-512's steps of 8 pixels
  // (1..7), in padded row copies (narrow rows) and in place (wide rows, 5x5 stride 1).
  for (int64_t k : {5, 7})
    for (int64_t s : {1, 2})
      for (int64_t ow = 9; ow <= 15; ++ow)
        out.push_back({{1, 24, 3, (ow - 1) * s + 1}, k, k, s, s, {k / 2, k / 2, k / 2, k / 2}, ""});
  for (int64_t ow = 41; ow <= 47; ++ow) out.push_back({{1, 16, 2, ow}, 5, 5, 1, 1, {2, 2, 2, 2}, ""});
  return out;
}

std::string dwTag(const DwSpec& s, size_t i) {
  return std::to_string(i) + "_" + std::to_string(s.x[0]) + "x" + std::to_string(s.x[1]) + "x" + std::to_string(s.x[2]) +
         "x" + std::to_string(s.x[3]) + "_k" + std::to_string(s.kh) + "x" + std::to_string(s.kw) + "_s" +
         std::to_string(s.sh) + std::to_string(s.sw);
}

void dwConvTest(int block) {
  const std::vector<DwSpec> specs = dwSpecs();
  for (size_t i = 0; i < specs.size(); ++i)
    EXPECT_EQ(1, checkCase(dwCase(specs[i], false, "", {}, 0, dwTag(specs[i], i)), block, false));
}

struct Epi {
  const char* name;
  const char* act;
  std::vector<float> params;
  int residual;  // 0 none, 1 add_then_activate, 2 activate_then_add
};

void dwFusedTest(int block) {
  const Epi epis[] = {
      {"none", "", {}, 0},           {"relu", "Relu", {}, 0},           {"clip06", "Clip", {0.0f, 6.0f}, 0},
      {"clip_pos", "Clip", {0.25f, 0.75f}, 0}, {"sigmoid", "Sigmoid", {}, 0}, {"hardsigmoid", "HardSigmoid", {0.2f, 0.5f}, 0},
      {"hardswish", "HardSwish", {}, 0}, {"silu", "Silu", {}, 0},        {"gelu", "Gelu", {}, 0},
      {"res_add_relu", "Relu", {}, 1},  {"res_relu_add", "Relu", {}, 2}, {"res_only", "", {}, 1},
      {"res_silu_add", "Silu", {}, 2},
  };
  const DwSpec specs[] = {
      {{2, 13, 17, 13}, 3, 3, 1, 1, {1, 1, 1, 1}, ""}, {{1, 40, 14, 14}, 3, 3, 2, 2, {0, 0, 1, 1}, ""},
      {{1, 24, 7, 7}, 5, 5, 1, 1, {2, 2, 2, 2}, ""},   {{2, 3, 17, 13}, 5, 5, 2, 2, {2, 2, 2, 2}, ""},
      {{1, 16, 13, 22}, 7, 7, 1, 1, {3, 3, 3, 3}, ""}, {{1, 8, 1, 1}, 3, 3, 1, 1, {1, 1, 1, 1}, ""},
      {{1, 13, 9, 9}, 2, 4, 1, 2, {1, 0, 1, 2}, "", false},
  };
  size_t i = 0;
  for (const Epi& e : epis)
    for (const DwSpec& s : specs) {
      const std::string tag = dwTag(s, i++) + "_" + e.name;
      EXPECT_EQ(1, checkCase(dwCase(s, true, e.act, e.params, e.residual, tag), block, false));
    }
}

TEST(NativeNchwcSpatial, DepthwiseConv8) {
  if (skipBlock(8)) GTEST_SKIP() << "skipped: no AVX2";
  dwConvTest(8);
}
TEST(NativeNchwcSpatial, DepthwiseConv16) {
  if (skipBlock(16)) GTEST_SKIP() << "skipped: no AVX-512";
  dwConvTest(16);
}
TEST(NativeNchwcSpatial, DepthwiseFusedConv8) {
  if (skipBlock(8)) GTEST_SKIP() << "skipped: no AVX2";
  dwFusedTest(8);
}
TEST(NativeNchwcSpatial, DepthwiseFusedConv16) {
  if (skipBlock(16)) GTEST_SKIP() << "skipped: no AVX-512";
  dwFusedTest(16);
}

// What the depthwise kernels refuse: dilation, a non-depthwise group, a plain X or Y, a
// block other than theirs, a filter computed at run time.
TEST(NativeNchwcSpatial, DepthwiseRefuses) {
  auto supported = [](const Case& c, int block, int layoutBlock, bool outBlocked = true) {
    Built b = build(c, 1);
    if (layoutBlock) const_cast<ir::Value*>(b.node->input(0))->setLayout(ir::Layout::nchwc(layoutBlock));
    if (layoutBlock && outBlocked) const_cast<ir::Value*>(b.node->output(0))->setLayout(ir::Layout::nchwc(layoutBlock));
    int n = 0;
    for (const runtime::Kernel* k : blockedRegistry().all())
      if (k->op == c.op && k->nchwcBlock == block && k->supports(*b.node, b.types())) ++n;
    return n;
  };
  const DwSpec s{{1, 13, 9, 9}, 3, 3, 1, 1, {1, 1, 1, 1}, ""};
  Case ok = dwCase(s, false, "", {}, 0, "ok");
  EXPECT_EQ(1, supported(ok, 8, 8));
  EXPECT_EQ(0, supported(ok, 8, 0));
  EXPECT_EQ(0, supported(ok, 16, 8));
  EXPECT_EQ(0, supported(ok, 8, 8, false));
  Case dil = ok;
  dil.attrs.set("dilations", Dims{2, 2});
  EXPECT_EQ(0, supported(dil, 8, 8));
  Case dyn = ok;
  dyn.constant[1] = false;
  EXPECT_EQ(0, supported(dyn, 8, 8));
  Case grouped = ok;
  grouped.attrs.set("group", int64_t(1));
  grouped.inputs[1] = Dims{13, 13, 3, 3};
  EXPECT_EQ(0, supported(grouped, 8, 8));
}

// ---------------------------------------------------------------------------------------
// Pooling cases

struct PoolSpec {
  Dims x, k, s, pads, d;
  int64_t ceil = 0, includePad = 0;
  std::string autoPad;
};

Case poolCase(bool isMax, const PoolSpec& p, const std::string& tag) {
  ir::Attributes at;
  at.set("kernel_shape", p.k);
  if (!p.s.empty()) at.set("strides", p.s);
  if (!p.pads.empty()) at.set("pads", p.pads);
  if (!p.d.empty()) at.set("dilations", p.d);
  if (p.ceil) at.set("ceil_mode", p.ceil);
  if (!isMax && p.includePad) at.set("count_include_pad", p.includePad);
  if (!p.autoPad.empty()) at.set("auto_pad", p.autoPad);
  const std::string op = isMax ? "MaxPool" : "AveragePool";
  return {op + "_" + tag, op, "", {p.x}, {false}, at};
}

std::vector<PoolSpec> poolSpecs(bool isMax) {
  std::vector<PoolSpec> out;
  const int64_t channels[] = {1, 3, 8, 13, 16, 24, 40};
  const Dims sides[] = {{1, 1}, {7, 7}, {17, 13}, {8, 6}, {27, 27}};
  int i = 0;
  for (int64_t k = 1; k <= 7; ++k)
    for (const Dims& hw : sides)
      for (int64_t s : {1, 2}) {
        const int64_t C = channels[size_t(i % 7)], N = 1 + (i % 3 == 0), pad = std::min<int64_t>(k - 1, i % 3);
        Dims pads = {pad, pad, pad, pad};
        if (i % 5 == 4) pads = {0, std::min<int64_t>(k - 1, 1), std::min<int64_t>(k - 1, 2), 0};
        const int64_t ceil = (i >> 1) & 1, inc = (i >> 2) & 1;
        ++i;
        if (hw[0] + pads[0] + pads[2] < k || hw[1] + pads[1] + pads[3] < k) continue;
        out.push_back({{N, C, hw[0], hw[1]}, {k, k}, {s, s}, pads, {}, ceil, inc, ""});
      }
  // The zoo's pools: resnet 3x3 s2 pad 1, squeezenet 3x3 s2 ceil_mode, 2x2 s2.
  out.push_back({{1, 24, 20, 20}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {}, 0, 0, ""});
  out.push_back({{2, 40, 27, 27}, {3, 3}, {2, 2}, {}, {}, 1, 0, ""});
  out.push_back({{1, 13, 18, 17}, {2, 2}, {2, 2}, {}, {}, 0, 0, ""});
  out.push_back({{1, 13, 17, 17}, {2, 2}, {2, 2}, {}, {}, 1, 1, ""});
  // Unequal windows and strides, stride 3, automatic pads.
  out.push_back({{1, 24, 17, 13}, {2, 3}, {1, 2}, {1, 0, 0, 1}, {}, 1, 1, ""});
  out.push_back({{2, 3, 17, 13}, {3, 3}, {3, 3}, {1, 1, 1, 1}, {}, 1, 0, ""});
  out.push_back({{1, 13, 16, 30}, {3, 3}, {2, 2}, {}, {}, 0, 1, "SAME_UPPER"});
  out.push_back({{1, 40, 15, 31}, {4, 4}, {2, 2}, {}, {}, 0, 0, "SAME_LOWER"});
  out.push_back({{1, 8, 15, 31}, {3, 3}, {2, 2}, {}, {}, 1, 0, "VALID"});
  if (isMax) {  // dilations
    out.push_back({{1, 13, 17, 13}, {3, 3}, {1, 1}, {2, 2, 2, 2}, {2, 2}, 0, 0, ""});
    out.push_back({{2, 24, 17, 19}, {3, 2}, {2, 2}, {1, 1, 1, 1}, {2, 3}, 1, 0, ""});
  }
  return out;
}

void poolTest(bool isMax, int block) {
  const std::vector<PoolSpec> specs = poolSpecs(isMax);
  for (size_t i = 0; i < specs.size(); ++i) {
    const PoolSpec& s = specs[i];
    const std::string tag = std::to_string(i) + "_" + std::to_string(s.x[1]) + "x" + std::to_string(s.x[2]) + "x" +
                            std::to_string(s.x[3]) + "_k" + std::to_string(s.k[0]) + "_s" + std::to_string(s.s[0]) +
                            "_c" + std::to_string(s.ceil) + "_i" + std::to_string(s.includePad);
    EXPECT_EQ(1, checkCase(poolCase(isMax, s, tag), block, isMax));
  }
}

TEST(NativeNchwcSpatial, MaxPool8) {
  if (skipBlock(8)) GTEST_SKIP() << "skipped: no AVX2";
  poolTest(true, 8);
}
TEST(NativeNchwcSpatial, MaxPool16) {
  if (skipBlock(16)) GTEST_SKIP() << "skipped: no AVX-512";
  poolTest(true, 16);
}
TEST(NativeNchwcSpatial, AveragePool8) {
  if (skipBlock(8)) GTEST_SKIP() << "skipped: no AVX2";
  poolTest(false, 8);
}
TEST(NativeNchwcSpatial, AveragePool16) {
  if (skipBlock(16)) GTEST_SKIP() << "skipped: no AVX-512";
  poolTest(false, 16);
}

// MaxPool with an Indices output is refused (the plain kernels serve it).
TEST(NativeNchwcSpatial, MaxPoolWithIndicesRefused) {
  auto g = std::make_unique<ir::Graph>();
  ir::Value* x = g->addValue("x", ir::TensorType{DataType::kF32, ir::Shape{1, 8, 9, 9}});
  g->addInput(x);
  ir::Node* n = g->addNode("MaxPool", "", "n0", {x}, {"y0", "i0"});
  n->attrs().set("kernel_shape", Dims{3, 3});
  g->addOutput(n->output(0));
  g->addOutput(n->output(1));
  ir::inferShapes(*g);
  x->setLayout(ir::Layout::nchwc(8));
  n->output(0)->setLayout(ir::Layout::nchwc(8));
  for (const runtime::Kernel* k : blockedRegistry().all())
    if (k->op == "MaxPool") {
      EXPECT_FALSE(k->supports(*n, {x->type()})) << k->name;
    }
}

// ---------------------------------------------------------------------------------------
// Timings: blocked against the plain kernels on the zoo's layer shapes (1 thread, output
// 64-byte aligned; median and min of DW_REPS runs).

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

void timeBoth(const Case& c, const std::string& label, const std::string& plainFamily) {
  const int reps = std::getenv("DW_REPS") ? std::atoi(std::getenv("DW_REPS")) : 30;
  const int threads = std::getenv("DW_THREADS") ? std::atoi(std::getenv("DW_THREADS")) : 1;
  auto ex = runtime::makeCpuExecutor(threads);
  {
    const Built b = build(c, 1);
    const Tensor want = reference(b);
    for (const runtime::Kernel* k : plainRegistry().all()) {
      if (k->op != c.op || k->domain != c.domain || k->name.find(plainFamily) == std::string::npos) continue;
      if (!runtime::hostHasAll(k->requirements) || (k->supports && !k->supports(*b.node, b.types()))) continue;
      const PreparedKernel pk = prepare(*k, b, threads);
      Step step(*k, pk, b, want.dims(), true);
      const auto [med, min] = medianMinMs([&] { step.run(*ex); }, reps);
      std::printf("%-24s %-42s median %8.4f ms min %8.4f ms\n", label.c_str(), k->name.c_str(), med, min);
    }
  }
  for (int block : {8, 16}) {
    if (skipBlock(block)) continue;
    const Built b = buildBlocked(c, block, 1);
    const Tensor want = reference(b);
    for (const runtime::Kernel* k : blockedRegistry().all()) {
      if (k->op != c.op || k->domain != c.domain || k->nchwcBlock != block || !k->supports(*b.node, b.types())) continue;
      const PreparedKernel pk = prepare(*k, b, threads);
      BlockedStep step(*k, pk, b, handover(c, pk, b.tensors.size()), want.dims(), block, Handover::kBlocked,
                       true);
      const auto [med, min] = medianMinMs([&] { step.run(*ex); }, reps);
      std::printf("%-24s %-42s median %8.4f ms min %8.4f ms\n", label.c_str(), k->name.c_str(), med, min);
    }
  }
}

TEST(NativeNchwcSpatialBench, DISABLED_Depthwise) {
  struct L {
    const char* model;
    int64_t c, side, stride, k;
    const char* act;
  };
  const L layers[] = {
      {"mbv2", 32, 112, 1, 3, "Clip"},   {"mbv2", 96, 112, 2, 3, "Clip"},  {"mbv2", 144, 56, 1, 3, "Clip"},
      {"mbv2", 144, 56, 2, 3, "Clip"},   {"mbv2", 192, 28, 1, 3, "Clip"},  {"mbv2", 384, 14, 1, 3, "Clip"},
      {"mbv2", 576, 14, 1, 3, "Clip"},   {"mbv2", 960, 7, 1, 3, "Clip"},   {"effb0", 240, 28, 1, 5, "Silu"},
      {"effb0", 480, 14, 1, 5, "Silu"},  {"effb0", 672, 14, 1, 5, "Silu"}, {"effb0", 672, 14, 2, 5, "Silu"},
      {"effb0", 1152, 7, 1, 5, "Silu"},  {"convnext", 96, 56, 1, 7, ""},   {"convnext", 192, 28, 1, 7, ""},
      {"convnext", 384, 14, 1, 7, ""},   {"convnext", 768, 7, 1, 7, ""},   {"mbv3", 96, 28, 2, 5, "HardSwish"},
      {"mbv3", 240, 14, 1, 5, "HardSwish"}, {"mbv3", 576, 7, 1, 5, "HardSwish"},
  };
  const char* only = std::getenv("DW_ONLY");
  for (const L& l : layers) {
    if (only && std::string(only) != l.model) continue;
    const int64_t h = l.k / 2;
    ir::Attributes at;
    at.set("group", l.c);
    at.set("kernel_shape", Dims{l.k, l.k});
    at.set("strides", Dims{l.stride, l.stride});
    at.set("pads", Dims{h, h, h, h});
    if (*l.act) at.set("activation", std::string(l.act));
    if (std::string(l.act) == "Clip") at.set("activation_params", std::vector<float>{0.0f, 6.0f});
    const Case c{"dw", "FusedConv", "anvil", {Dims{1, l.c, l.side, l.side}, Dims{l.c, 1, l.k, l.k}, Dims{l.c}},
                 {false, true, true}, at};
    timeBoth(c, std::string(l.model) + " " + std::to_string(l.c) + "x" + std::to_string(l.side) + " s" +
                    std::to_string(l.stride) + " k" + std::to_string(l.k),
             "dwconv");
  }
}

TEST(NativeNchwcSpatialBench, DISABLED_Pool) {
  struct L {
    const char* label;
    PoolSpec s;
  };
  const L layers[] = {
      {"resnet 64x112 3x3s2", {{1, 64, 112, 112}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {}, 0, 0, ""}},
      {"squeeze 64x111 ceil", {{1, 64, 111, 111}, {3, 3}, {2, 2}, {}, {}, 1, 0, ""}},
      {"squeeze 128x55 ceil", {{1, 128, 55, 55}, {3, 3}, {2, 2}, {}, {}, 1, 0, ""}},
      {"squeeze 256x27 ceil", {{1, 256, 27, 27}, {3, 3}, {2, 2}, {}, {}, 1, 0, ""}},
      {"2x2s2 64x56", {{1, 64, 56, 56}, {2, 2}, {2, 2}, {}, {}, 0, 0, ""}},
  };
  for (const L& l : layers) {
    timeBoth(poolCase(true, l.s, "t"), std::string("max ") + l.label, "maxpool");
    timeBoth(poolCase(false, l.s, "t"), std::string("avg ") + l.label, "avgpool");
  }
}

}  // namespace
