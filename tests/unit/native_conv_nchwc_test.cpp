// The blocked (NCHW16c / NCHW8c) pixels-as-rows Conv kernels of cpu/tactics/native_conv_rows.cpp
// against the reference kernel: a one-node graph (tests/unit/native_kernel_test_util.h) whose
// X, Y and Z carry the blocked layout, the plain random input converted to blocked storage
// (padding lanes zero) and the kernel run through the contract on views of that storage
// with the output between sentinel guards and a guarded workspace (BlockedStep of
// tests/unit/nchwc_test_util.h), 1 and 2 executor threads (bitwise equal), the output
// converted back and compared with the reference on the plain tensors, and its padding lanes
// checked to be exactly zero. Shapes: C and M in {1, 3, 8,
// 13, 16, 24, 40, 64} (not multiples of the block included), batch 1 and 2, 1x1 / 7x7 /
// odd and even images, filters 1x1 / 3x3 / 5x5 / 7x7, strides 1 and 2, dilation 2, pads,
// several K blocks and pixel blocks, images smaller than the filter's reach (taps wholly in
// padding, whole K blocks of them), and FusedConv with each activation and residual order.
// NativeConvNchwcBench.DISABLED_Timing times them against the plain Conv kernels on the
// zoo's layers (NCHWC_ONLY=<layer substring>, NCHWC_THREADS=1|2 narrow it; NCHWC_ACT=Relu
// times FusedConv with that activation instead, NCHWC_COLD=1 eight copies of each layer in
// turn, each filter from memory). NativeConvNchwcBench.DISABLED_PointwiseVsPeak times the
// AVX2 nchw8c kernel alone on resnet50's and mobilenet_v2's 1x1 shapes as a percentage of
// the FMA peak.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>

#include "native_kernel_test_util.h"
#include "nchwc_test_util.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeConvRowsKernels(Kernels& k);  // cpu/tactics/native_conv_rows.cpp
void registerNativeLinearKernels(Kernels& k);    // cpu/tactics/native_linear.cpp (timing baseline)
void registerNativeWinogradKernels(Kernels& k);  // cpu/tactics/native_winograd.cpp (timing baseline)
void registerNativeConvStemKernels(Kernels& k);  // cpu/tactics/native_conv_stem.cpp (timing baseline)
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

using namespace anvil::testing::nk;

// ---------------------------------------------------------------------------------------
// The blocked layout on the node

// Marks the node's activations (X, Z, Y) NCHW<b>c, as the builder's layout selection would.
void setBlocked(const Built& b, int block) {
  const ir::Node& n = *b.node;
  n.input(0)->setLayout(ir::Layout::nchwc(block));
  if (n.inputs().size() > 3 && n.input(3)) n.input(3)->setLayout(ir::Layout::nchwc(block));
  n.output(0)->setLayout(ir::Layout::nchwc(block));
}

// How the step hands the inputs over: X and Z blocked, the filter (packed at prepare) as
// NaNs, the bias row-major.
const std::vector<Handover> kConvHandover = {Handover::kBlocked, Handover::kNaN, Handover::kRowMajor,
                                             Handover::kBlocked};

// ---------------------------------------------------------------------------------------
// The cases

struct Spec {
  Dims x;  // N, C, H, W
  int64_t M = 8;
  int64_t k = 3;
  int64_t stride = 1, dilation = 1;
  Dims pads;            // empty: none
  std::string autoPad;  // "" NOTSET
  bool bias = true;
};

ir::Attributes attrsOf(const Spec& s) {
  ir::Attributes at;
  at.set("kernel_shape", Dims{s.k, s.k});
  if (s.stride != 1) at.set("strides", Dims{s.stride, s.stride});
  if (s.dilation != 1) at.set("dilations", Dims{s.dilation, s.dilation});
  if (!s.pads.empty()) at.set("pads", s.pads);
  if (!s.autoPad.empty()) at.set("auto_pad", s.autoPad);
  return at;
}

Dims wDims(const Spec& s) { return {s.M, s.x[1], s.k, s.k}; }

Dims outDims(const Spec& s) {
  auto ext = [&](int64_t in, int64_t p0, int64_t p1) {
    if (s.autoPad == "SAME_UPPER" || s.autoPad == "SAME_LOWER") return (in + s.stride - 1) / s.stride;
    return (in + p0 + p1 - ((s.k - 1) * s.dilation + 1)) / s.stride + 1;
  };
  const Dims p = s.pads.empty() ? Dims{0, 0, 0, 0} : s.pads;
  return {s.x[0], s.M, ext(s.x[2], p[0], p[2]), ext(s.x[3], p[1], p[3])};
}

std::string dimsName(const Dims& d) {
  std::string s;
  for (int64_t v : d) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
}

Case convCase(const std::string& name, const Spec& s) {
  std::vector<std::optional<Dims>> in = {s.x, wDims(s)};
  if (s.bias) in.push_back(Dims{s.M});
  return {"Conv_" + name, "Conv", "", in, {false, true, true}, attrsOf(s)};
}

std::vector<Case> convCases() {
  std::vector<Case> c;
  const int64_t chans[] = {1, 3, 8, 13, 16, 24, 40, 64};
  // Every (C, M) pair through the direct 1x1 path and the packed 3x3 path, on images of
  // 7x7, 1x1 (squeeze-and-excitation), 5x8 and 9x6 pixels, batch 1 and 2.
  const Dims images[] = {{7, 7}, {1, 1}, {5, 8}, {9, 6}};
  int i = 0;
  for (int64_t C : chans)
    for (int64_t M : chans) {
      const Dims hw = images[size_t(i++) % 4];
      const Dims x{1 + (C + M) % 2, C, hw[0], hw[1]};
      Spec s{x, M, 1};
      s.bias = i % 3 != 0;
      c.push_back(convCase("pw_" + dimsName(x) + "_M" + std::to_string(M), s));
      Spec s3{x, M, 3, 1, 1, {1, 1, 1, 1}};
      s3.bias = !s.bias;
      c.push_back(convCase("3x3p1_" + dimsName(x) + "_M" + std::to_string(M), s3));
    }
  c.push_back(convCase("5x5_p2", {{1, 13, 9, 10}, 24, 5, 1, 1, {2, 2, 2, 2}}));
  c.push_back(convCase("5x5_s2_p2", {{2, 8, 11, 12}, 13, 5, 2, 1, {2, 2, 2, 2}}));
  c.push_back(convCase("stem_7x7_s2_p3", {{1, 3, 30, 27}, 24, 7, 2, 1, {3, 3, 3, 3}}));
  c.push_back(convCase("7x7_valid", {{2, 16, 7, 7}, 40, 7}));
  c.push_back(convCase("3x3_s2_p1", {{1, 24, 14, 13}, 40, 3, 2, 1, {1, 1, 1, 1}}));
  c.push_back(convCase("3x3_s2_p0", {{2, 3, 15, 16}, 13, 3, 2}));
  c.push_back(convCase("1x1_s2", {{1, 40, 13, 14}, 24, 1, 2}));
  c.push_back(convCase("1x1_p1", {{1, 13, 6, 7}, 8, 1, 1, 1, {1, 0, 1, 2}}));
  c.push_back(convCase("3x3_d2_p2", {{1, 13, 12, 11}, 24, 3, 1, 2, {2, 2, 2, 2}}));
  c.push_back(convCase("3x3_d2_s2", {{1, 8, 17, 19}, 13, 3, 2, 2, {1, 2, 0, 1}}));
  c.push_back(convCase("asym_0121", {{1, 16, 9, 14}, 24, 3, 1, 1, {0, 1, 2, 1}}));
  c.push_back(convCase("bigpad_3142", {{1, 5, 6, 9}, 8, 3, 1, 1, {3, 1, 4, 2}}));
  c.push_back(convCase("same_upper_s2", {{1, 13, 13, 16}, 40, 3, 2, 1, {}, "SAME_UPPER", false}));
  c.push_back(convCase("same_lower_s2", {{2, 5, 9, 4}, 24, 3, 2, 1, {}, "SAME_LOWER"}));
  // Several K blocks (C = 300: 19 channel blocks x 9 taps), pixel blocks past mc (P = 900,
  // direct and packed), many channels (M = 530) and a wide channel block (600).
  c.push_back(convCase("K_blocks_3x3", {{1, 300, 7, 6}, 20, 3, 1, 1, {1, 1, 1, 1}}));
  c.push_back(convCase("K_blocks_1x1", {{2, 600, 5, 3}, 40, 1}));
  c.push_back(convCase("K_blocks_3x3_s1_big", {{1, 600, 9, 10}, 40, 3, 1, 1, {1, 1, 1, 1}}));
  c.push_back(convCase("P900_3x3", {{1, 3, 30, 30}, 40, 3, 1, 1, {1, 1, 1, 1}}));
  c.push_back(convCase("P900_1x1", {{2, 24, 30, 30}, 40, 1}));
  c.push_back(convCase("M530", {{1, 16, 7, 7}, 530, 1}));
  // The direct 1x1 path past one pixel block (169 pixels, at most 144 per block on AVX2:
  // 84 + 85, the second in tiles of 6 and 5), two K blocks with the input's last channel
  // block partial (300 = 37 x 8 + 4) and a last panel of one block (M = 37): the first
  // panel's calls prefetch the next tile's X.
  c.push_back(convCase("P169_K_blocks_1x1", {{2, 300, 13, 13}, 37, 1}));
  // Winograd in tile blocks (V and M past 1 MiB: 2-3 blocks of 100 tiles), batch 2: each
  // task takes whole blocks.
  c.push_back(convCase("tile_blocks_3x3", {{2, 24, 40, 37}, 40, 3, 1, 1, {1, 1, 1, 1}}));
  // Tile blocks whose passes are split across the tasks (U past 1 MiB).
  c.push_back(convCase("tile_blocks_bigU", {{1, 96, 20, 37}, 96, 3, 1, 1, {1, 1, 1, 1}}));
  c.push_back(convCase("M600_P225", {{1, 2, 15, 15}, 600, 3, 1, 1, {1, 1, 1, 1}}));
  // Winograd's tiles in balanced panels: 16 tiles of F(4x4) (two panels of 8 rows at mr
  // 14, 6 + 6 + 4 at mr 6), 49 of F(2x2) (13 + 12 + 12 + 12 / nine of at most 6).
  c.push_back(convCase("tiles16_3x3", {{1, 40, 14, 14}, 24, 3, 1, 1, {1, 1, 1, 1}}));
  // Images smaller than the filter's reach, where whole taps (kh, kw) read only padding
  // for every pixel and the direct kernels skip their groups: 1x1, 2x2, 3x1 and 1x5
  // images, 3x3 / 5x5 / 7x7 filters, pads 1-3 (and asymmetric), strides 1 and 2,
  // dilation 2, channels off the blocks. With 49 taps over 8 channels the K blocks (25 + 24
  // groups at 8 lanes, 4 x 13 at 16) hold the one tap of a 1x1 image in one block: the
  // others are skipped whole, the LAST included (its epilogue still applies), and with
  // the tap at the end (pads 6, 6, 0, 0) the first blocks are skipped before any store.
  c.push_back(convCase("small_1x1_3x3_p1", {{1, 13, 1, 1}, 19, 3, 1, 1, {1, 1, 1, 1}}));
  c.push_back(convCase("small_2x2_3x3_p1", {{2, 21, 2, 2}, 8, 3, 1, 1, {1, 1, 1, 1}}));
  c.push_back(convCase("small_2x2_3x3_s2_p1", {{1, 24, 2, 2}, 13, 3, 2, 1, {1, 1, 1, 1}}));
  c.push_back(convCase("small_2x2_3x3_p3", {{1, 5, 2, 2}, 11, 3, 1, 1, {3, 3, 3, 3}}));
  c.push_back(convCase("small_2x2_7x7_p3", {{1, 11, 2, 2}, 9, 7, 1, 1, {3, 3, 3, 3}}));
  c.push_back(convCase("small_3x1_5x5_p2", {{1, 5, 3, 1}, 11, 5, 1, 1, {2, 2, 2, 2}}));
  c.push_back(convCase("small_3x1_3x3_s2_d2_p3", {{2, 12, 3, 1}, 7, 3, 2, 2, {3, 3, 3, 3}}));
  c.push_back(convCase("small_1x5_5x5_s2_p2", {{1, 17, 1, 5}, 16, 5, 2, 1, {2, 2, 2, 2}}));
  c.push_back(convCase("small_1x5_3x3_d2_p2", {{1, 9, 1, 5}, 10, 3, 1, 2, {2, 2, 2, 2}}));
  c.push_back(convCase("small_1x5_7x7_p3_0213", {{1, 3, 1, 5}, 24, 7, 1, 1, {3, 2, 3, 1}}));
  c.push_back(convCase("small_1x1_7x7_p3_skip_last_block", {{1, 8, 1, 1}, 24, 7, 1, 1, {3, 3, 3, 3}}));
  c.push_back(convCase("small_1x1_7x7_p6600_skip_first_blocks", {{2, 8, 1, 1}, 16, 7, 1, 1, {6, 6, 0, 0}}));
  c.push_back(convCase("small_1x1_7x7_p3_nobias", {{1, 16, 1, 1}, 8, 7, 1, 1, {3, 3, 3, 3}, "", false}));
  c.push_back(convCase("small_1x1_3x3_p1_K_blocks", {{1, 300, 1, 1}, 40, 3, 1, 1, {1, 1, 1, 1}}));
  c.push_back(convCase("small_2x2_3x3_s2_p1_K_blocks", {{1, 260, 2, 2}, 36, 3, 2, 1, {1, 1, 1, 1}}));
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
      {"res_sigmoid", "Sigmoid", {}, 1},
      // The tiles' own HardSwish / HardSigmoid (alpha, beta in the two parameters), around
      // a residual either way.
      {"hardsigmoid", "HardSigmoid", {0.3f, 0.4f}, 0}, {"res_hardswish_add", "HardSwish", {}, 2},
      {"res_add_hardsigmoid", "HardSigmoid", {0.25f, 0.5f}, 1},
  };
  return e;
}

std::vector<Case> fusedCases() {
  std::vector<Case> c;
  struct S {
    const char* name;
    Spec s;
  };
  const S specs[] = {{"2x13x9x14_M19_3x3", {{2, 13, 9, 14}, 19, 3, 1, 1, {1, 1, 1, 1}}},
                     {"1x8x7x7_M40_s2_nobias", {{1, 8, 7, 7}, 40, 3, 2, 1, {0, 1, 2, 0}, "", false}},
                     {"2x24x7x7_M13_pw", {{2, 24, 7, 7}, 13, 1}},
                     // 143 pixels in tiles of unequal rows (the residual's offsets follow
                     // them).
                     {"1x16x11x13_M24_pw", {{1, 16, 11, 13}, 24, 1}},
                     // Two pixel blocks (AVX2), two K blocks and a partial last channel
                     // block on the direct path, the residual's offsets across them.
                     {"1x300x13x13_M37_pw", {{1, 300, 13, 13}, 37, 1}},
                     {"1x40x1x1_M3_se", {{1, 40, 1, 1}, 3, 1}},
                     {"1x3x1x1_M64_se", {{1, 3, 1, 1}, 64, 1}},
                     {"1x40x7x7_M24_3x3", {{1, 40, 7, 7}, 24, 3, 1, 1, {1, 1, 1, 1}}},
                     {"2x16x5x6_M8_3x3_valid", {{2, 16, 5, 6}, 8, 3}},
                     // Taps wholly in padding skipped (the small_ cases above)
                     {"1x13x1x1_M19_7x7_p3", {{1, 13, 1, 1}, 19, 7, 1, 1, {3, 3, 3, 3}}},
                     {"2x20x2x2_M24_3x3_s2_p1", {{2, 20, 2, 2}, 24, 3, 2, 1, {1, 1, 1, 1}}},
                     {"1x9x1x5_M11_3x3_p1", {{1, 9, 1, 5}, 11, 3, 1, 1, {1, 1, 1, 1}, "", false}}};
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
// The parametrised test: every (blocked kernel, case) pair

runtime::Kernels& registry() { return anvil::testing::nk::registryOf<&runtime::registerNativeConvRowsKernels>(); }

// The blocked Conv / FusedConv kernels (anvil.FusedConvDw's, registered beside them, have
// their own test: native_conv_dw_fused_test.cpp).
std::vector<const runtime::Kernel*> blockedKernels() {
  std::vector<const runtime::Kernel*> out;
  for (const runtime::Kernel* k : registry().all())
    if (k->device == Device::kCPU && k->nchwcBlock > 0 && k->op != "FusedConvDw") out.push_back(k);
  return out;
}

// The pairs whose op matches and that the kernel supports once the case's values carry its block.
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

bool isWinograd(const runtime::Kernel& k) { return k.name.find("winograd") != std::string::npos; }

// The direct kernels as the other linear kernels (3e-5 of the output range, see
// native_kernel_test_util.h); Winograd F(4x4, 3x3) as the plain Winograd kernels (2e-4:
// its transforms amplify f32 rounding 10-50x, see native_winograd_test.cpp).
double tolerance(const runtime::Kernel& k) { return isWinograd(k) ? 2e-4 : 3e-5; }

std::string compareWithin(const std::vector<float>& got, const Tensor& want, double tol) {
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
  if (maxErr <= tol * std::max(maxRef, 1e-6)) return "";
  char msg[200];
  std::snprintf(msg, sizeof msg, "max error %.3g at flat index %lld (got %.9g, want %.9g), max |ref| %.3g", maxErr,
                (long long)worst, got[size_t(worst)], want.data<float>()[worst], maxRef);
  return msg;
}

class NativeConvNchwc : public ::testing::TestWithParam<Param> {};

TEST_P(NativeConvNchwc, MatchesReferenceBitwiseAcrossThreads) {
  const Case& c = allCases()[GetParam().caseIndex];
  const runtime::Kernel* k = registry().find(Device::kCPU, c.op, c.domain, GetParam().kernel);
  ASSERT_NE(k, nullptr);
  if (const std::string why = skipReason(*k); !why.empty()) GTEST_SKIP() << why;
  const Built b = build(c, uint32_t(GetParam().caseIndex) * 7919u + 5);
  const Tensor want = reference(b);
  setBlocked(b, k->nchwcBlock);
  const PreparedKernel pk = prepare(*k, b, 2);
  EXPECT_EQ(pk.prepared.packedInputs, std::vector<int>{1}) << "the filter was not prepared";
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2}) {
    auto ex = runtime::makeCpuExecutor(threads);
    BlockedStep step(*k, pk, b, kConvHandover, want.dims(), k->nchwcBlock);
    step.run(*ex);
    const BlockedResult r = step.result();
    EXPECT_TRUE(r.guardsIntact) << "wrote outside the output (threads=" << threads << ")";
    EXPECT_TRUE(r.workspaceIntact) << "wrote past the workspace (threads=" << threads << ")";
    EXPECT_TRUE(r.paddingZero) << "padding lanes not zero (threads=" << threads << ")";
    EXPECT_EQ(compareWithin(r.out, want, tolerance(*k)), "") << k->name << " on " << c.name << " threads=" << threads;
    outs.push_back(r.out);
  }
  EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4), 0) << "1 and 2 threads differ bitwise";
}

INSTANTIATE_TEST_SUITE_P(Native, NativeConvNchwc, ::testing::ValuesIn(allParams()),
                         [](const ::testing::TestParamInfo<Param>& p) {
                           return p.param.kernel + "__" + allCases()[p.param.caseIndex].name;
                         });

// ---------------------------------------------------------------------------------------
// Taps wholly in padding are skipped: their filter rows are never read

// The taps kh * kW + kw of the case that read padding for every output pixel of its image
// (none where auto_pad decides the pads).
std::vector<int64_t> deadTaps(const Case& c) {
  if (c.attrs.getString("auto_pad", "NOTSET") != "NOTSET") return {};
  const Dims x = *c.inputs[0], k = c.attrs.getInts("kernel_shape", {});
  const Dims st = c.attrs.getInts("strides", {1, 1}), dl = c.attrs.getInts("dilations", {1, 1});
  const Dims pd = c.attrs.getInts("pads", {0, 0, 0, 0});
  const int64_t OH = (x[2] + pd[0] + pd[2] - ((k[0] - 1) * dl[0] + 1)) / st[0] + 1;
  const int64_t OW = (x[3] + pd[1] + pd[3] - ((k[1] - 1) * dl[1] + 1)) / st[1] + 1;
  std::vector<int64_t> dead;
  for (int64_t kh = 0; kh < k[0]; ++kh)
    for (int64_t kw = 0; kw < k[1]; ++kw) {
      bool reads = false;
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t ih = oh * st[0] - pd[0] + kh * dl[0], iw = ow * st[1] - pd[1] + kw * dl[1];
          reads = reads || (ih >= 0 && ih < x[2] && iw >= 0 && iw < x[3]);
        }
      if (!reads) dead.push_back(kh * k[1] + kw);
    }
  return dead;
}

// The direct kernels on the cases with such taps (Winograd transforms the whole filter).
std::vector<Param> skipParams() {
  std::vector<Param> out;
  for (const Param& p : allParams())
    if (p.kernel.find("winograd") == std::string::npos && !deadTaps(allCases()[p.caseIndex]).empty()) out.push_back(p);
  return out;
}

class NativeConvNchwcSkip : public ::testing::TestWithParam<Param> {};

// The filter's weights at the dead taps NaN for the kernel and 0 for the reference: a
// kernel that multiplies them (by the padding's zeros) writes NaN. With the image fixed by
// the profile the prepared filter holds only the live taps (smaller); with the image not
// fixed (min extents unknown) it holds all, and the run skips the dead taps' groups per
// pixel block, whole K blocks of them included.
TEST_P(NativeConvNchwcSkip, NeverReadsTheFilterRowsOfTapsInPadding) {
  const Case& c = allCases()[GetParam().caseIndex];
  const runtime::Kernel* k = registry().find(Device::kCPU, c.op, c.domain, GetParam().kernel);
  ASSERT_NE(k, nullptr);
  if (const std::string why = skipReason(*k); !why.empty()) GTEST_SKIP() << why;
  Built b = build(c, uint32_t(GetParam().caseIndex) * 104729u + 3);
  const std::vector<int64_t> dead = deadTaps(c);
  const int64_t taps = b.tensors[1].dims()[2] * b.tensors[1].dims()[3];
  auto* w = const_cast<Tensor*>(b.node->input(1)->initializer());
  ASSERT_NE(w, nullptr);
  b.tensors[1] = b.tensors[1].clone();  // the reference's own copy (they share storage)
  for (int64_t i = 0; i < w->numel(); i += taps)
    for (int64_t t : dead) {
      w->data<float>()[i + t] = std::numeric_limits<float>::quiet_NaN();
      b.tensors[1].data<float>()[i + t] = 0.0f;
    }
  const Tensor want = reference(b);
  setBlocked(b, k->nchwcBlock);
  std::vector<ir::TensorType> dynamic = b.types();
  dynamic[0].shape = ir::Shape(std::vector<ir::Dim>{c.inputs[0]->at(0), c.inputs[0]->at(1), ir::Dim::unknown(),
                                                     ir::Dim::unknown()});
  const PreparedKernel fixed = prepare(*k, b, 2), full = prepare(*k, b, 2, dynamic);
  if (int64_t(dead.size()) < taps) {  // (no tap reading the image at all: the output is the bias, the filter kept)
    EXPECT_LT(fixed.prepared.blobs[0].size(), full.prepared.blobs[0].size()) << "the dead taps were packed";
  }
  for (const PreparedKernel* pk : {&fixed, &full})
    for (int threads : {1, 2}) {
      auto ex = runtime::makeCpuExecutor(threads);
      BlockedStep step(*k, *pk, b, kConvHandover, want.dims(), k->nchwcBlock);
      step.run(*ex);
      const BlockedResult r = step.result();
      const std::string how =
          std::string(pk == &fixed ? "live taps" : "all taps") + ", threads=" + std::to_string(threads);
      EXPECT_TRUE(r.guardsIntact && r.workspaceIntact && r.paddingZero) << how;
      EXPECT_EQ(compareWithin(r.out, want, tolerance(*k)), "") << k->name << " on " << c.name << ", " << how;
    }
}

INSTANTIATE_TEST_SUITE_P(Native, NativeConvNchwcSkip, ::testing::ValuesIn(skipParams()),
                         [](const ::testing::TestParamInfo<Param>& p) {
                           return p.param.kernel + "__" + allCases()[p.param.caseIndex].name;
                         });

// ---------------------------------------------------------------------------------------
// Registration and declines

TEST(NativeConvNchwcRegistration, BothBlocksForConvAndFusedConv) {
  std::map<std::string, int> seen;
  for (const runtime::Kernel* k : blockedKernels()) {
    ASSERT_TRUE(k->supports && k->prepare && k->run) << k->name;
    const bool avx512 = std::find(k->requirements.begin(), k->requirements.end(), "avx512f") != k->requirements.end();
    EXPECT_EQ(k->nchwcBlock, avx512 ? 16 : 8) << k->name;
    EXPECT_NE(k->name.find(avx512 ? "nchw16c" : "nchw8c"), std::string::npos) << k->name;
    const bool f2 = k->name.find("_f2x3") != std::string::npos, f4 = k->name.find("_f4x3") != std::string::npos;
    const bool half = k->name.find("_halftail") != std::string::npos;
    EXPECT_EQ(isWinograd(*k), f2 || f4) << k->name;
    seen[k->op + "/" + std::to_string(k->nchwcBlock) + (f4 ? "/f4x3" : f2 ? "/f2x3" : half ? "/rows-halftail" : "/rows")]++;
  }
  std::map<std::string, int> want;
  for (const char* op : {"Conv", "FusedConv"}) {
    for (const char* b : {"16", "8"})
      for (const char* f : {"/f4x3", "/f2x3", "/rows"}) want[std::string(op) + "/" + b + f] = 1;
    want[std::string(op) + "/16/rows-halftail"] = 1;  // AVX-512 only: 256-bit halves of an 8-lane tail
  }
  EXPECT_EQ(seen, want);
}

// The half-tail kernels (the last output block, of 1 to 8 channels, in 256-bit halves) serve
// exactly the layers with such a block, with the full kernel's bits: the builder times the
// two against each other (faster on Zen 4, slower on the Intel Xeon guest).
TEST(NativeConvNchwcHalfTail, OfferedForShortLastBlocksWithTheFullKernelsBits) {
  int compared = 0;
  for (const runtime::Kernel* k : blockedKernels()) {
    if (k->name.find("_halftail") == std::string::npos) continue;
    if (const std::string why = skipReason(*k); !why.empty()) GTEST_SKIP() << why;
    std::string fullName = k->name;
    fullName.erase(fullName.find("_halftail"), std::string("_halftail").size());
    const runtime::Kernel* full = registry().find(Device::kCPU, k->op, k->domain, fullName);
    ASSERT_NE(full, nullptr) << fullName;
    const std::vector<Case>& cases = allCases();
    for (size_t i = 0; i < cases.size(); ++i) {
      const Case& c = cases[i];
      if (c.op != k->op || c.domain != k->domain) continue;
      const Built b = build(c, uint32_t(i) * 31u + 1);
      setBlocked(b, 16);
      if (!full->supports(*b.node, b.types())) continue;
      const int64_t tail = (*c.inputs[1])[0] % 16;
      ASSERT_EQ(k->supports(*b.node, b.types()), tail >= 1 && tail <= 8) << k->name << " on " << c.name;
      if (!k->supports(*b.node, b.types())) continue;
      const Tensor want = reference(b);
      std::vector<float> out[2];
      for (int which = 0; which < 2; ++which) {
        const runtime::Kernel* kk = which ? k : full;
        const PreparedKernel pk = prepare(*kk, b, 1);
        auto ex = runtime::makeCpuExecutor(1);
        BlockedStep step(*kk, pk, b, kConvHandover, want.dims(), 16);
        step.run(*ex);
        out[which] = step.result().out;
      }
      ASSERT_EQ(out[0].size(), out[1].size());
      EXPECT_EQ(std::memcmp(out[0].data(), out[1].data(), out[0].size() * sizeof(float)), 0)
          << k->name << " and " << fullName << " differ on " << c.name;
      ++compared;
    }
  }
  EXPECT_GE(compared, 20);
}

TEST(NativeConvNchwcRegistration, EveryKernelHasCases) {
  std::map<std::string, int> covered;
  for (const Param& p : allParams()) covered[p.kernel]++;
  for (const runtime::Kernel* k : blockedKernels()) {
    const bool half = k->name.find("_halftail") != std::string::npos;  // outputs of 16n + 1..8 channels only
    EXPECT_GE(covered[k->name], half ? 10 : k->op == "Conv" ? 60 : 20) << k->name;
  }
}

TEST(NativeConvNchwcSupports, DeclinesWrongLayoutsAndGroups) {
  for (const runtime::Kernel* k : blockedKernels()) {
    if (k->op != "Conv") continue;
    const int B = k->nchwcBlock, other = B == 16 ? 8 : 16;
    // The half-tail kernels serve only outputs ending in a block of 1 to 8 channels.
    const int64_t M = k->name.find("_halftail") != std::string::npos ? 24 : 16;
    auto make = [&](int64_t group) {
      Spec s{{1, 16, 7, 7}, M, 3, 1, 1, {1, 1, 1, 1}};
      Case c = convCase("d", s);
      c.inputs[1] = Dims{M, 16 / group, 3, 3};
      if (group != 1) c.attrs.set("group", group);
      return build(c, 1);
    };
    {
      const Built b = make(1);
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took plain values";
      setBlocked(b, B);
      EXPECT_TRUE(k->supports(*b.node, b.types())) << k->name;
      b.node->output(0)->setLayout(ir::Layout::nchwc(other));
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took Y with the other block";
      setBlocked(b, B);
      b.node->input(1)->setLayout(ir::Layout::nchwc(B));
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took a blocked filter";
      b.node->input(1)->setLayout(ir::Layout::plain());
      b.node->input(0)->setLayout(ir::Layout::plain());
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took plain X";
    }
    {
      const Built b = make(2);
      setBlocked(b, B);
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took group 2";
    }
  }
}

TEST(NativeConvNchwcSupports, FusedDeclinesPlainResidual) {
  int checked = 0;
  for (const runtime::Kernel* k : blockedKernels()) {
    if (k->op != "FusedConv") continue;
    const Spec s{{1, 16, 7, 7}, 24, 3, 1, 1, {1, 1, 1, 1}};
    ir::Attributes at = attrsOf(s);
    at.set("activation", std::string("Relu"));
    at.set("has_residual", int64_t(1));
    const Case c{"FusedConv_res", "FusedConv", "anvil", {s.x, wDims(s), Dims{s.M}, outDims(s)}, {false, true, true, false}, at};
    const Built b = build(c, 1);
    setBlocked(b, k->nchwcBlock);
    EXPECT_TRUE(k->supports(*b.node, b.types())) << k->name;
    b.node->input(3)->setLayout(ir::Layout::plain());
    EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took a plain residual";
    ++checked;
  }
  EXPECT_EQ(checked, 7);  // 3 families x 2 blocks, and the AVX-512 half-tail rows kernel
}

// ---------------------------------------------------------------------------------------
// Timing (manual): the zoo's layers, each blocked kernel against every plain Conv kernel

// The summary compares best-of times: the shared 2-core machine's medians swing 2-3x with
// the neighbours' load (a plain kernel measured 2.4 and 6.5 ms in two runs).
struct Timing {
  double medMs, minMs;
};

Timing timeMs(const std::function<void()>& f, int reps) {
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

runtime::Kernels& allConvRegistry() {
  static runtime::Kernels* k = [] {
    auto* r = new runtime::Kernels();
    runtime::registerNativeLinearKernels(*r);
    runtime::registerNativeWinogradKernels(*r);
    runtime::registerNativeConvStemKernels(*r);
    runtime::registerNativeConvRowsKernels(*r);
    return r;
  }();
  return *k;
}

TEST(NativeConvNchwcBench, DISABLED_Timing) {
  struct L {
    const char* name;
    Spec s;
  };
  const L layers[] = {
      {"mv2_1x1_112_16to96", {{1, 16, 112, 112}, 96, 1}},
      {"mv2_1x1_56_24to144", {{1, 24, 56, 56}, 144, 1}},
      {"mv2_1x1_56_144to24", {{1, 144, 56, 56}, 24, 1}},
      {"mv2_1x1_28_32to192", {{1, 32, 28, 28}, 192, 1}},
      {"mv2_1x1_28_192to32", {{1, 192, 28, 28}, 32, 1}},
      {"mv2_1x1_14_64to384", {{1, 64, 14, 14}, 384, 1}},
      {"mv2_1x1_14_384to64", {{1, 384, 14, 14}, 64, 1}},
      {"mv2_1x1_14_96to576", {{1, 96, 14, 14}, 576, 1}},
      {"mv2_1x1_14_576to96", {{1, 576, 14, 14}, 96, 1}},
      {"mv2_1x1_7_160to960", {{1, 160, 7, 7}, 960, 1}},
      {"mv2_1x1_7_960to160", {{1, 960, 7, 7}, 160, 1}},
      {"mv2_1x1_7_320to1280", {{1, 320, 7, 7}, 1280, 1}},
      {"r18_3x3_56_64", {{1, 64, 56, 56}, 64, 3, 1, 1, {1, 1, 1, 1}}},
      {"r18_3x3s2_56_64to128", {{1, 64, 56, 56}, 128, 3, 2, 1, {1, 1, 1, 1}}},
      {"r18_1x1s2_56_64to128", {{1, 64, 56, 56}, 128, 1, 2}},
      {"r18_3x3_28_128", {{1, 128, 28, 28}, 128, 3, 1, 1, {1, 1, 1, 1}}},
      {"r18_3x3s2_28_128to256", {{1, 128, 28, 28}, 256, 3, 2, 1, {1, 1, 1, 1}}},
      {"r18_3x3_14_256", {{1, 256, 14, 14}, 256, 3, 1, 1, {1, 1, 1, 1}}},
      {"r18_3x3s2_14_256to512", {{1, 256, 14, 14}, 512, 3, 2, 1, {1, 1, 1, 1}}},
      {"r18_3x3_7_512", {{1, 512, 7, 7}, 512, 3, 1, 1, {1, 1, 1, 1}}},
      {"r18_stem_7x7s2_3to64", {{1, 3, 224, 224}, 64, 7, 2, 1, {3, 3, 3, 3}}},
      {"mv2_stem_3x3s2_3to32", {{1, 3, 224, 224}, 32, 3, 2, 1, {1, 1, 1, 1}}},
      {"sq_stem_3x3s2_3to64", {{1, 3, 224, 224}, 64, 3, 2}},
      {"sq_1x1_55_64to16", {{1, 64, 55, 55}, 16, 1}},
      {"sq_1x1_55_16to64", {{1, 16, 55, 55}, 64, 1}},
      {"sq_3x3_55_16to64", {{1, 16, 55, 55}, 64, 3, 1, 1, {1, 1, 1, 1}}},
      {"sq_1x1_27_128to32", {{1, 128, 27, 27}, 32, 1}},
      {"sq_1x1_27_32to128", {{1, 32, 27, 27}, 128, 1}},
      {"sq_3x3_27_32to128", {{1, 32, 27, 27}, 128, 3, 1, 1, {1, 1, 1, 1}}},
  };
  const char* only = std::getenv("NCHWC_ONLY");
  for (const L& l : layers) {
    if (only && !std::strstr(l.name, only)) continue;
    Case c = convCase(l.name, l.s);
    if (const char* act = std::getenv("NCHWC_ACT")) {  // FusedConv with this activation instead
      c.op = "FusedConv";
      c.domain = "anvil";
      c.attrs.set("activation", std::string(act));
      if (std::string(act) == "Clip") c.attrs.set("activation_params", std::vector<float>{0.0f, 6.0f});
    }
    const Dims od = outDims(l.s);
    const double flops = 2.0 * double(od[1] * od[2] * od[3]) * double(l.s.x[1] * l.s.k * l.s.k);
    const int reps = std::max(10, std::min(200, int(2e9 / flops)));
    for (int threads : {1, 2}) {
      if (const char* tf = std::getenv("NCHWC_THREADS"); tf && std::atoi(tf) != threads) continue;
      auto ex = runtime::makeCpuExecutor(threads);
      std::string best, best2;
      double bestMs = 1e30, best2Ms = 1e30;  // any plain kernel; the AVX2-only ones (the nchw8c peers)
      std::map<int, double> blocked;  // the best blocked kernel per block (rows or Winograd)
      for (const runtime::Kernel* k : allConvRegistry().all()) {
        if (k->op != c.op || k->device != Device::kCPU || !k->run || k->name.find("__") == std::string::npos) continue;
        if (!runtime::hostHasAll(k->requirements)) continue;
        // Warm: one layer again and again. NCHWC_COLD=1: eight copies in turn, each filter
        // from memory as in a model (the Winograd filters are 36 x C x M floats).
        const char* cold = std::getenv("NCHWC_COLD");
        const int copies = cold && *cold && *cold != '0' ? 8 : 1;
        std::vector<std::unique_ptr<Built>> bs;
        std::vector<std::unique_ptr<PreparedKernel>> pks;
        std::vector<std::unique_ptr<BlockedStep>> bsteps;
        std::vector<std::unique_ptr<Step>> steps;
        bool ok = true;
        for (int i = 0; i < copies && ok; ++i) {
          bs.push_back(std::make_unique<Built>(build(c, uint32_t(1 + i))));
          const Built& b = *bs.back();
          if (k->nchwcBlock) setBlocked(b, k->nchwcBlock);
          if (!(ok = k->supports(*b.node, b.types()))) break;
          pks.push_back(std::make_unique<PreparedKernel>(prepare(*k, b, threads)));
          if (k->nchwcBlock)
            bsteps.push_back(std::make_unique<BlockedStep>(*k, *pks.back(), b, kConvHandover, od, k->nchwcBlock,
                                                           Handover::kBlocked, true));
          else
            steps.push_back(std::make_unique<Step>(*k, *pks.back(), b, od, true));
        }
        if (!ok) continue;
        size_t next = 0;
        Timing t;
        if (k->nchwcBlock) {
          t = timeMs([&] { bsteps[next++ % bsteps.size()]->run(*ex); }, reps);
          if (!blocked.count(k->nchwcBlock) || t.minMs < blocked[k->nchwcBlock]) blocked[k->nchwcBlock] = t.minMs;
        } else {
          t = timeMs([&] { steps[next++ % steps.size()]->run(*ex); }, reps);
          if (t.minMs < bestMs) bestMs = t.minMs, best = k->name;
          const bool avx512 =
              std::find(k->requirements.begin(), k->requirements.end(), "avx512f") != k->requirements.end();
          if (!avx512 && t.minMs < best2Ms) best2Ms = t.minMs, best2 = k->name;
        }
        std::printf("  %-24s t=%d %-44s %8.3f ms (min %8.3f)\n", l.name, threads, k->name.c_str(), t.medMs, t.minMs);
      }
      std::printf("SUMMARY %-22s t=%d %.3f GFLOP | %-36s %7.3f | nchw16c %7.3f (%.2fx) | %-32s %7.3f | nchw8c "
                  "%7.3f (%.2fx)\n",
                  l.name, threads, flops * 1e-9, best.c_str(), bestMs, blocked[16], blocked[16] / bestMs, best2.c_str(),
                  best2Ms, blocked[8], blocked[8] / best2Ms);
      std::fflush(stdout);
    }
  }
}

// The blocked 1x1 Conv (f32_conv2d_rows_nchw8c_6x16__avx2, or NCHWC_KERNEL) on resnet50's
// and mobilenet_v2's pointwise shapes as a percentage of the single-core FMA peak,
// measured again before each shape (the shared machine's clock drifts). One thread, best
// of NCHWC_REPS (default 30) runs; NCHWC_COLD=1 cycles eight copies so that each filter
// and image come from memory as in a model; NCHWC_ONLY picks shapes by name.
TEST(NativeConvNchwcBench, DISABLED_PointwiseVsPeak) {
  struct L {
    const char* name;
    Spec s;
  };
  const L layers[] = {
      {"r50_1x1_56_64to256", {{1, 64, 56, 56}, 256, 1}},
      {"r50_1x1_56_256to64", {{1, 256, 56, 56}, 64, 1}},
      {"r50_1x1_56_256to128", {{1, 256, 56, 56}, 128, 1}},
      {"r50_1x1_28_128to512", {{1, 128, 28, 28}, 512, 1}},
      {"r50_1x1_28_512to256", {{1, 512, 28, 28}, 256, 1}},
      {"r50_1x1_14_1024to512", {{1, 1024, 14, 14}, 512, 1}},
      {"r50_1x1_14_256to1024", {{1, 256, 14, 14}, 1024, 1}},
      {"r50_1x1s2_14_1024to2048", {{1, 1024, 14, 14}, 2048, 1, 2}},
      {"r50_1x1_7_2048to512", {{1, 2048, 7, 7}, 512, 1}},
      {"mv2_1x1_112_16to96", {{1, 16, 112, 112}, 96, 1}},
      {"mv2_1x1_56_24to144", {{1, 24, 56, 56}, 144, 1}},
      {"mv2_1x1_56_144to24", {{1, 144, 56, 56}, 24, 1}},
      {"mv2_1x1_28_32to192", {{1, 32, 28, 28}, 192, 1}},
      {"mv2_1x1_14_96to576", {{1, 96, 14, 14}, 576, 1}},
  };
  const char* only = std::getenv("NCHWC_ONLY");
  const char* kname = std::getenv("NCHWC_KERNEL") ? std::getenv("NCHWC_KERNEL") : "f32_conv2d_rows_nchw8c_6x16__avx2";
  const runtime::Kernel* k = allConvRegistry().find(Device::kCPU, "Conv", "", kname);
  ASSERT_NE(k, nullptr) << kname;
  if (const std::string why = skipReason(*k); !why.empty()) GTEST_SKIP() << why;
  const char* cold = std::getenv("NCHWC_COLD");
  const int copies = cold && *cold && *cold != '0' ? 8 : 1;
  const int reps = std::getenv("NCHWC_REPS") ? std::max(1, std::atoi(std::getenv("NCHWC_REPS"))) : 30;
  auto ex = runtime::makeCpuExecutor(1);
  double sumMs = 0;
  for (const L& l : layers) {
    if (only && !std::strstr(l.name, only)) continue;
    const Case c = convCase(l.name, l.s);
    const Dims od = outDims(l.s);
    const double flops = 2.0 * double(od[1] * od[2] * od[3]) * double(l.s.x[1]);
    std::vector<std::unique_ptr<Built>> bs;
    std::vector<std::unique_ptr<PreparedKernel>> pks;
    std::vector<std::unique_ptr<BlockedStep>> steps;
    for (int i = 0; i < copies; ++i) {
      bs.push_back(std::make_unique<Built>(build(c, uint32_t(1 + i))));
      setBlocked(*bs.back(), k->nchwcBlock);
      ASSERT_TRUE(k->supports(*bs.back()->node, bs.back()->types())) << l.name;
      pks.push_back(std::make_unique<PreparedKernel>(prepare(*k, *bs.back(), 1)));
      steps.push_back(std::make_unique<BlockedStep>(*k, *pks.back(), *bs.back(), kConvHandover, od, k->nchwcBlock,
                                                    Handover::kBlocked, true));
    }
    const double peak = fmaPeakGflops(false, 2000000);
    size_t next = 0;
    const double g = bestGflops([&] { steps[next++ % steps.size()]->run(*ex); }, flops, reps);
    sumMs += flops / g * 1e-6;
    std::printf("%-26s %7.3f ms %6.1f GFLOP/s %5.1f%% of peak %.1f\n", l.name, flops / g * 1e-6, g, 100.0 * g / peak,
                peak);
    std::fflush(stdout);
  }
  std::printf("total %.3f ms\n", sumMs);
}

}  // namespace
