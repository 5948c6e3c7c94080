// The native linear kernels (cpu/tactics/native_linear.cpp: MatMul, Gemm, Conv and the
// fused anvil ops) against the reference kernels, through the kernel contract: a one-node
// graph, supports(), prepare() (weights as initializers are packed; their raw input is then
// replaced by NaNs to prove run() reads only the blob), run() on views with the output
// between sentinel guards and a guarded workspace, with 1 and 2 executor threads, which
// must agree bitwise. Shapes cover tile and K-block edges (M, N, K in 1, 7, 17, 63, 130;
// K at and around the K blocks 256), batches, Gemm transposes/alpha/beta/C broadcast,
// Conv pads/strides/dilations/groups/depthwise/1x1, each activation and residual order.
// NativeLinearGemm drives the GEMM engine directly: rows bitwise equal whatever the path
// (small-M, packed tile position, task count, transposed A) and the two A packers agree;
// the work split gives every task the same number of items.
// The benchmarks run with --gtest_also_run_disabled_tests: NativeLinearBench.DISABLED_Timing
// against the reference kernel, DISABLED_GemmVsPeak (the single-core FMA peak per ISA and
// each MatMul kernel's GFLOP/s against it; ANVIL_BENCH_THREADS=2 adds 2 threads) and
// DISABLED_GemmDriver (gemmPackedB alone as % of the FMA peak; ANVIL_BENCH_MNK=m,n,k;...,
// ANVIL_BENCH_COLD=MB streams the weights from memory, ANVIL_BENCH_THREADS, ANVIL_BENCH_ISA)
// and DISABLED_MicroKernel (one register tile on L1-resident operands).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <array>
#include <limits>
#include <optional>
#include <random>

#include <immintrin.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "cpu/reference.h"
#include "cpu/tactics/gemm_kernels.h"
#include "ir/ops/anvil_linear.h"
#include "native_kernel_test_util.h"
#include "op_test_util.h"
#include "runtime/clock.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeLinearKernels(Kernels& k);  // cpu/tactics/native_linear.cpp
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;
using anvil::testing::In;

namespace {

using namespace anvil::testing::nk;

// ---------------------------------------------------------------------------------------
// The cases

std::vector<Case> matmulCases() {
  std::vector<Case> c;
  auto mm = [&](const std::string& name, Dims a, Dims b, bool constB) {
    c.push_back({"MatMul_" + name + (constB ? "_constB" : "_varB"), "MatMul", "", {a, b}, {false, constB}, {}});
  };
  const int64_t sizes[] = {1, 7, 17, 63, 130};
  for (int64_t m : sizes)
    for (int64_t k : sizes)
      for (int64_t n : sizes) {
        const std::string s = std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n);
        mm(s, {m, k}, {k, n}, true);
        if (m == k || k == n) mm(s, {m, k}, {k, n}, false);
      }
  // K at, below and above the K blocks (256 for every family; 192 and 513 the old AVX-512 ones).
  for (int64_t k : {191, 192, 193, 255, 256, 257, 513}) {
    mm("17x" + std::to_string(k) + "x33", {17, k}, {k, 33}, true);
    mm("130x" + std::to_string(k) + "x7", {130, k}, {k, 7}, false);
  }
  mm("1x512x512", {1, 512}, {512, 512}, true);
  // The small-M path (M <= 4: A read in place, several B panels per call): every row count,
  // panel groups with a partial last group and a partial last panel (N = 1, 17, 100, 223,
  // 450), K below, at and past the K blocks.
  for (int64_t m : {2, 3, 4})
    for (int64_t k : {1, 9, 193, 257})
      for (int64_t n : {1, 17, 100, 223, 450}) {
        const std::string s = std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n);
        mm(s, {m, k}, {k, n}, true);
      }
  mm("batch2x1_small", {2, 1, 70}, {70, 97}, true);
  mm("200x64x1031", {200, 64}, {64, 1031}, true);
  mm("3x0x5", {3, 0}, {0, 5}, true);
  mm("0x5x3", {0, 5}, {5, 3}, true);
  for (bool cb : {true, false}) {
    mm("vec_mat", {13}, {13, 7}, cb);
    mm("mat_vec", {5, 13}, {13}, cb);
    mm("vec_vec", {13}, {13}, cb);
    mm("batch_vec", {3, 5, 13}, {13}, cb);
    mm("batchA_sharedB", {2, 3, 7, 13}, {13, 9}, cb);
    mm("batch_ones_B", {3, 6, 17}, {1, 1, 17, 18}, cb);
  }
  mm("sharedA_batchB", {7, 13}, {2, 13, 5}, false);
  mm("sharedA_batchB", {7, 13}, {2, 13, 5}, true);  // constant but batched: packed per run
  mm("batch_same", {4, 5, 11}, {4, 11, 6}, false);
  mm("batch_bcast_both", {2, 1, 7, 13}, {3, 13, 9}, false);
  mm("batch_bcast_4d", {1, 3, 5, 8}, {2, 1, 8, 17}, false);
  mm("batch_many_small", {24, 3, 5}, {24, 5, 4}, false);
  mm("attention_scores", {2, 4, 17, 16}, {2, 4, 16, 17}, false);
  return c;
}

std::vector<Case> gemmCases() {
  std::vector<Case> c;
  auto gemm = [&](const std::string& name, int64_t M, int64_t K, int64_t N, int tA, int tB, float alpha, float beta,
                  std::optional<Dims> C, bool constB = true) {
    const Dims a = tA ? Dims{K, M} : Dims{M, K}, b = tB ? Dims{N, K} : Dims{K, N};
    ir::Attributes at;
    if (tA) at.set("transA", int64_t(tA));
    if (tB) at.set("transB", int64_t(tB));
    if (alpha != 1.0f) at.set("alpha", alpha);
    if (beta != 1.0f) at.set("beta", beta);
    c.push_back({"Gemm_" + name + (constB ? "" : "_varB"), "Gemm", "", {a, b, C}, {false, constB, true}, at});
  };
  for (auto [M, K, N] : std::vector<std::array<int64_t, 3>>{{7, 13, 33}, {17, 63, 5}, {63, 257, 20}, {1, 1, 1}, {130, 17, 130}}) {
    const std::string s = std::to_string(M) + "x" + std::to_string(K) + "x" + std::to_string(N);
    for (int tA = 0; tA < 2; ++tA)
      for (int tB = 0; tB < 2; ++tB) {
        const std::string t = "_tA" + std::to_string(tA) + "tB" + std::to_string(tB);
        gemm(s + t + "_noC", M, K, N, tA, tB, 1.0f, 1.0f, std::nullopt);
        gemm(s + t + "_C_MN", M, K, N, tA, tB, 0.5f, 2.0f, Dims{M, N});
        gemm(s + t + "_C_N", M, K, N, tA, tB, 1.5f, -1.0f, Dims{N}, false);
      }
    gemm(s + "_C_1N", M, K, N, 1, 0, 1.0f, 0.25f, Dims{1, N});
    gemm(s + "_C_M1", M, K, N, 0, 1, -0.5f, 3.0f, Dims{M, 1});
    gemm(s + "_C_11", M, K, N, 1, 1, 2.0f, 0.5f, Dims{1, 1});
    gemm(s + "_C_scalar", M, K, N, 0, 0, 1.0f, 1.0f, Dims{});
    gemm(s + "_C_1", M, K, N, 0, 0, 1.0f, 2.0f, Dims{1});
  }
  gemm("K0_C", 5, 0, 7, 0, 0, 1.0f, 2.0f, Dims{5, 7});
  gemm("K0_noC", 5, 0, 7, 1, 1, 1.0f, 1.0f, std::nullopt);
  gemm("alpha0", 6, 9, 17, 0, 0, 0.0f, 1.0f, Dims{17});
  gemm("beta0", 6, 9, 17, 0, 1, 1.0f, 0.0f, Dims{6, 17});
  gemm("big_tA", 90, 200, 70, 1, 0, 1.0f, 1.0f, Dims{70});
  // Small M through Gemm: A transposed (read in place with a column stride) and alpha.
  for (int64_t m : {1, 3, 4}) {
    gemm("small_tA_" + std::to_string(m), m, 300, 230, 1, 0, 0.75f, 1.0f, Dims{230});
    gemm("small_tB_" + std::to_string(m), m, 40, 97, 0, 1, -2.0f, 0.5f, Dims{m, 97});
  }
  return c;
}

struct ConvSpec {
  Dims x, w;
  bool bias = true;
  int64_t group = 1;
  Dims strides, dilations, pads;
  std::string autoPad;
  bool constW = true;
};

ir::Attributes convAttrs(const ConvSpec& s) {
  ir::Attributes at;
  if (s.group != 1) at.set("group", s.group);
  if (!s.strides.empty()) at.set("strides", s.strides);
  if (!s.dilations.empty()) at.set("dilations", s.dilations);
  if (!s.pads.empty()) at.set("pads", s.pads);
  if (!s.autoPad.empty()) at.set("auto_pad", s.autoPad);
  at.set("kernel_shape", Dims{s.w[2], s.w[3]});
  return at;
}

std::vector<std::pair<std::string, ConvSpec>> convSpecs() {
  return {
      {"3x3_pad1", {{1, 3, 7, 9}, {5, 3, 3, 3}, true, 1, {}, {}, {1, 1, 1, 1}}},
      {"3x3_nobias", {{2, 3, 7, 9}, {5, 3, 3, 3}, false, 1, {}, {}, {1, 1, 1, 1}}},
      {"3x3_varW", {{2, 3, 7, 9}, {5, 3, 3, 3}, true, 1, {}, {}, {1, 1, 1, 1}, "", false}},
      {"1x1", {{2, 8, 5, 6}, {13, 8, 1, 1}, false}},
      {"1x1_wide", {{1, 17, 13, 11}, {63, 17, 1, 1}, true}},
      {"1x1_bias_stride2", {{1, 8, 9, 7}, {4, 8, 1, 1}, true, 1, {2, 2}}},
      {"1x1_pad", {{1, 5, 4, 3}, {3, 5, 1, 1}, true, 1, {}, {}, {1, 0, 0, 2}}},
      {"3x3_stride2", {{1, 4, 11, 13}, {6, 4, 3, 3}, true, 1, {2, 2}, {}, {1, 1, 1, 1}}},
      {"3x3_dilation2", {{1, 3, 12, 10}, {4, 3, 3, 3}, true, 1, {}, {2, 2}, {2, 2, 2, 2}}},
      {"asym_pads", {{1, 2, 8, 8}, {3, 2, 3, 2}, true, 1, {}, {}, {0, 1, 2, 3}}},
      {"asym_stride", {{1, 3, 9, 17}, {5, 3, 2, 3}, true, 1, {1, 3}, {2, 1}, {1, 0, 0, 1}}},
      {"7x7_stride2", {{1, 3, 23, 19}, {8, 3, 7, 7}, true, 1, {2, 2}, {}, {3, 3, 3, 3}}},
      {"groups3", {{2, 6, 9, 9}, {9, 2, 3, 3}, true, 3, {}, {}, {1, 1, 1, 1}}},
      {"groups2_stride2_nobias", {{3, 4, 10, 7}, {6, 2, 3, 3}, false, 2, {2, 2}, {}, {0, 1, 1, 0}}},
      {"wide_K", {{1, 32, 20, 20}, {40, 32, 3, 3}, true, 1, {}, {}, {1, 1, 1, 1}}},
      {"K_above_blocks", {{1, 63, 9, 10}, {17, 63, 3, 3}, true, 1, {}, {}, {1, 1, 1, 1}}},
      {"kernel_eq_input", {{1, 3, 5, 5}, {7, 3, 5, 5}, true}},
      {"same_upper_s2", {{1, 3, 10, 11}, {4, 3, 3, 3}, true, 1, {2, 2}, {}, {}, "SAME_UPPER"}},
      {"same_lower_even_k", {{1, 3, 10, 11}, {4, 3, 4, 4}, true, 1, {2, 1}, {}, {}, "SAME_LOWER"}},
      {"same_upper_dil", {{1, 2, 9, 9}, {3, 2, 3, 3}, false, 1, {}, {2, 2}, {}, "SAME_UPPER"}},
      {"valid", {{1, 3, 10, 11}, {4, 3, 3, 3}, true, 1, {}, {}, {}, "VALID"}},
      {"big_image", {{1, 7, 40, 41}, {17, 7, 3, 3}, true, 1, {}, {}, {1, 1, 1, 1}}},
      {"dw_3x3", {{1, 16, 10, 20}, {16, 1, 3, 3}, true, 16, {}, {}, {1, 1, 1, 1}}},
      {"dw_3x3_varW", {{1, 16, 10, 20}, {16, 1, 3, 3}, true, 16, {}, {}, {1, 1, 1, 1}, "", false}},
      {"dw_3x3_wide_row", {{1, 2, 6, 37}, {2, 1, 3, 3}, true, 2, {}, {}, {1, 1, 1, 1}}},
      {"dw_3x3_stride2", {{2, 8, 17, 35}, {8, 1, 3, 3}, true, 8, {2, 2}, {}, {1, 1, 1, 1}}},
      {"dw_stride2_nopad", {{1, 3, 16, 40}, {3, 1, 3, 3}, false, 3, {2, 2}}},
      {"dw_multiplier2", {{1, 4, 9, 11}, {8, 1, 3, 3}, true, 4, {}, {}, {1, 1, 1, 1}}},
      {"dw_5x5_s3_d2", {{1, 3, 29, 40}, {3, 1, 5, 5}, true, 3, {3, 3}, {2, 2}, {4, 4, 4, 4}}},
      {"dw_7x7_asym", {{1, 5, 19, 27}, {5, 1, 7, 7}, false, 5, {}, {}, {3, 2, 1, 4}}},
      {"dw_same_upper_s2", {{1, 6, 14, 33}, {6, 1, 3, 3}, true, 6, {2, 2}, {}, {}, "SAME_UPPER"}},
      {"dw_narrow_row", {{1, 3, 5, 6}, {3, 1, 3, 3}, true, 3, {}, {}, {1, 1, 1, 1}}},
  };
}

std::vector<Case> convCases() {
  std::vector<Case> c;
  for (const auto& [name, s] : convSpecs()) {
    std::vector<std::optional<Dims>> in = {s.x, s.w};
    if (s.bias) in.push_back(Dims{s.w[0]});
    c.push_back({"Conv_" + name, "Conv", "", in, {false, s.constW, true}, convAttrs(s)});
  }
  return c;
}

// The epilogues: every activation (with parameters where it takes them) and both residual
// orders.
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

void setEpilogue(const Epi& e, ir::Attributes& at) {
  if (*e.act) at.set("activation", std::string(e.act));
  if (!e.params.empty()) at.set("activation_params", e.params);
  if (e.residual) {
    at.set("has_residual", int64_t(1));
    at.set("residual_order", std::string(e.residual == 1 ? "add_then_activate" : "activate_then_add"));
  }
}

std::vector<Case> fusedCases() {
  std::vector<Case> c;
  auto add = [&](const std::string& name, const std::string& op, std::vector<std::optional<Dims>> in,
                 std::vector<bool> constant, ir::Attributes at, const Dims& out, const Epi& e) {
    setEpilogue(e, at);
    if (e.residual) {
      while (in.size() < 3) in.push_back(std::nullopt), constant.push_back(false);
      in.push_back(out);
      constant.resize(4, false);
    }
    c.push_back({op + "_" + name + "_" + e.name, op, "anvil", in, constant, at});
  };
  for (const Epi& e : epilogues()) {
    add("7x17x130_biasN", "FusedMatMul", {Dims{7, 17}, Dims{17, 130}, Dims{130}}, {false, true, true}, {}, {7, 130}, e);
    add("batch_2x63x7x17_bias1", "FusedMatMul", {Dims{2, 63, 7}, Dims{7, 17}, Dims{1}}, {false, true, true}, {},
        {2, 63, 17}, e);
    add("batchB_3x5x9x4_nobias", "FusedMatMul", {Dims{3, 5, 9}, Dims{3, 9, 4}}, {false, false}, {}, {3, 5, 4}, e);
    ir::Attributes g;
    g.set("transB", int64_t(1));
    g.set("alpha", 0.5f);
    add("17x63x33_tB_CN", "FusedGemm", {Dims{17, 63}, Dims{33, 63}, Dims{33}}, {false, true, true}, g, {17, 33}, e);
    add("1x130x7_noC", "FusedGemm", {Dims{1, 130}, Dims{130, 7}}, {false, true}, {}, {1, 7}, e);
    const ConvSpec s3{{2, 5, 9, 11}, {7, 5, 3, 3}, true, 1, {}, {}, {1, 1, 1, 1}};
    add("3x3_pad1", "FusedConv", {s3.x, s3.w, Dims{7}}, {false, true, true}, convAttrs(s3), {2, 7, 9, 11}, e);
    const ConvSpec s1{{1, 16, 7, 5}, {20, 16, 1, 1}, false};
    add("1x1_nobias", "FusedConv", {s1.x, s1.w}, {false, true}, convAttrs(s1), {1, 20, 7, 5}, e);
    const ConvSpec g2{{2, 4, 11, 13}, {6, 2, 3, 3}, true, 2, {2, 2}, {}, {1, 1, 1, 1}};
    add("3x3_s2_g2", "FusedConv", {g2.x, g2.w, Dims{6}}, {false, true, true}, convAttrs(g2), {2, 6, 6, 7}, e);
    const ConvSpec wide{{1, 32, 20, 21}, {40, 32, 3, 3}, false, 1, {}, {}, {1, 1, 1, 1}};
    add("wide_nobias", "FusedConv", {wide.x, wide.w}, {false, true}, convAttrs(wide), {1, 40, 20, 21}, e);
    ir::Attributes gt;
    gt.set("transA", int64_t(1));
    gt.set("beta", 0.5f);
    gt.set("alpha", 1.25f);
    add("33x257x20_tA_CMN_varB", "FusedGemm", {Dims{257, 33}, Dims{257, 20}, Dims{33, 20}}, {false, false, false}, gt,
        {33, 20}, e);
    const ConvSpec dw{{1, 6, 13, 21}, {6, 1, 3, 3}, true, 6, {2, 2}, {}, {1, 1, 1, 1}};
    add("dw_3x3_s2", "FusedConv", {dw.x, dw.w, Dims{6}}, {false, true, true}, convAttrs(dw), {1, 6, 7, 11}, e);
    // The register-tile epilogue of MatMul/Gemm (gemmPackedBFused) and, from 256 pixels, of
    // Conv (gemmPackedAFused) for every activation: M through many 14/8/6-row tiles with a
    // one-row tail (3137), N off the 16/32-column panels, K past one block (the last block
    // adds C in the tile kernel), a column bias, one value or none, Gemm's C as a row
    // (beta 1: in the tiles) and a 3x3 Conv through im2col.
    add("3137x9x45_biasN", "FusedMatMul", {Dims{3137, 9}, Dims{9, 45}, Dims{45}}, {false, true, true}, {}, {3137, 45},
        e);
    add("63x300x33_bias1", "FusedMatMul", {Dims{63, 300}, Dims{300, 33}, Dims{1}}, {false, true, true}, {}, {63, 33},
        e);
    add("17x257x100_nobias", "FusedMatMul", {Dims{17, 257}, Dims{257, 100}}, {false, true}, {}, {17, 100}, e);
    add("63x300x47_CN_beta1", "FusedGemm", {Dims{63, 300}, Dims{300, 47}, Dims{47}}, {false, true, true}, {}, {63, 47},
        e);
    const ConvSpec big{{1, 5, 17, 19}, {7, 5, 3, 3}, true, 1, {}, {}, {1, 1, 1, 1}};
    add("3x3_P323", "FusedConv", {big.x, big.w, Dims{7}}, {false, true, true}, convAttrs(big), {1, 7, 17, 19}, e);
    const ConvSpec pw{{1, 24, 17, 17}, {29, 24, 1, 1}, true};
    add("1x1_P289", "FusedConv", {pw.x, pw.w, Dims{29}}, {false, true, true}, convAttrs(pw), {1, 29, 17, 17}, e);
  }
  // 1x1 Convs, small images and (from 256 pixels) through gemmPackedAFused, the epilogue in
  // the register tiles: odd pixel counts (tails of the 32/16-column panels, of the panel
  // groups and of the nc blocks), K from 1 to one full block and past it (the last K block
  // adds to C in the tile kernel), M across tile heights, residual in both orders, Clip, Silu.
  struct Pw {
    int64_t K, M, H, W;
  };
  const Pw pws[] = {{1, 5, 1, 1},      {3, 17, 1, 7},     {16, 24, 1, 17},   {64, 29, 7, 9},    {24, 144, 9, 13},
                    {1, 5, 1, 257},    {3, 17, 1, 263},   {16, 24, 16, 17},  {64, 29, 17, 19},  {256, 15, 1, 301},
                    {64, 70, 1, 3141}, {300, 20, 1, 289}, {24, 144, 13, 21}};
  const char* pwEpis[] = {"none", "relu", "clip", "silu", "res_add_relu", "res_relu_add", "res_only", "res_silu_add"};
  for (const Pw& q : pws)
    for (const char* en : pwEpis)
      for (const Epi& e : epilogues())
        if (std::string(e.name) == en) {
          const ConvSpec s{{1, q.K, q.H, q.W}, {q.M, q.K, 1, 1}, true};
          add("1x1_K" + std::to_string(q.K) + "_M" + std::to_string(q.M) + "_P" + std::to_string(q.H * q.W),
              "FusedConv", {s.x, s.w, Dims{q.M}}, {false, true, true}, convAttrs(s), {1, q.M, q.H, q.W}, e);
        }
  return c;
}

const std::vector<Case>& allCases() {
  static const std::vector<Case> cases = [] {
    std::vector<Case> all;
    for (auto f : {matmulCases, gemmCases, convCases, fusedCases})
      for (Case& c : f()) all.push_back(std::move(c));
    return all;
  }();
  return cases;
}

// The shared harness: tests/unit/native_kernel_test_util.h.


// ---------------------------------------------------------------------------------------
// The parametrised test: every (native linear kernel, case) pair the kernel supports

// The family's kernels in a registry of their own (unit_tests does not link the runtime,
// whose Kernels::instance() gathers every backend).
runtime::Kernels& registry() { return anvil::testing::nk::registryOf<&runtime::registerNativeLinearKernels>(); }

bool isLinearKernel(const runtime::Kernel& k) {
  return k.name.rfind("f32_gemm_prepacked", 0) == 0 || k.name.rfind("f32_conv2d_prepacked", 0) == 0 ||
         k.name.rfind("f32_dwconv2d_direct", 0) == 0;
}

std::vector<const runtime::Kernel*> linearKernels() {
  std::vector<const runtime::Kernel*> out;
  for (const runtime::Kernel* k : registry().all())
    if (k->device == Device::kCPU && isLinearKernel(*k)) out.push_back(k);
  return out;
}

std::vector<Param> allParams() { return supportedPairs(linearKernels(), allCases()); }

class NativeLinear : public ::testing::TestWithParam<Param> {};

TEST_P(NativeLinear, MatchesReferenceBitwiseAcrossThreads) {
  const Case& c = allCases()[GetParam().caseIndex];
  const runtime::Kernel* k = registry().find(Device::kCPU, c.op, c.domain, GetParam().kernel);
  ASSERT_NE(k, nullptr);
  if (!runtime::hostHasAll(k->requirements))
    GTEST_SKIP() << "skipped: this CPU lacks " << runtime::firstMissing(k->requirements);
  const Built b = build(c, uint32_t(GetParam().caseIndex) * 7919u + 1);
  const Tensor want = reference(b);
  const PreparedKernel pk = prepare(*k, b, 2);
  // A constant weight is prepared (MatMul: when one B serves every batch).
  const bool matmul = c.op == "MatMul" || c.op == "FusedMatMul";
  if (c.constant.size() > 1 && c.constant[1] && (!matmul || c.inputs[1]->size() <= 2)) {
    EXPECT_EQ(pk.prepared.packedInputs, std::vector<int>{1}) << "the constant weight was not prepared";
  }
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2}) {
    auto ex = runtime::makeCpuExecutor(threads);
    const RunResult r = runKernel(*k, pk, b, want.dims(), *ex);
    EXPECT_TRUE(r.guardsIntact) << "wrote outside the output (threads=" << threads << ")";
    EXPECT_TRUE(r.workspaceIntact) << "wrote past the workspace (threads=" << threads << ")";
    EXPECT_EQ(compare(r.out, want), "") << k->name << " on " << c.name << " threads=" << threads;
    outs.push_back(r.out);
  }
  EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4), 0)
      << "1 and 2 threads differ bitwise";
}

INSTANTIATE_TEST_SUITE_P(Native, NativeLinear, ::testing::ValuesIn(allParams()),
                         [](const ::testing::TestParamInfo<Param>& p) {
                           return p.param.kernel + "__" + allCases()[p.param.caseIndex].name;
                         });

// ---------------------------------------------------------------------------------------
// Registration and declines

TEST(NativeLinearRegistration, EveryOpHasAPortableAndAnIsaKernel) {
  for (const auto& [op, domain] : std::vector<std::pair<std::string, std::string>>{
           {"MatMul", ""}, {"Gemm", ""}, {"Conv", ""}, {"FusedMatMul", "anvil"}, {"FusedGemm", "anvil"},
           {"FusedConv", "anvil"}}) {
    int portable = 0, avx2 = 0, avx512 = 0;
    for (const runtime::Kernel* k : linearKernels()) {
      if (k->op != op || k->domain != domain) continue;
      EXPECT_EQ(k->precision, DataType::kF32) << k->name;
      ASSERT_TRUE(k->prepare && k->run) << k->name;
      if (k->requirements.empty()) ++portable;
      if (k->requirements == std::vector<std::string>{"avx2", "fma"}) ++avx2;
      if (k->requirements == std::vector<std::string>{"avx512f"}) ++avx512;
    }
    EXPECT_EQ(portable, 1) << op;
    EXPECT_GE(avx2, 1) << op;
    EXPECT_EQ(avx512, 2) << op;  // 14x32 and the few-rows 8x32 the builder times against it
  }
}

// The few-rows AVX-512 family is an extra variant: new names at version 1, the 14x32 ones
// (and their packed layouts) unchanged at version 2; every Conv kernel one higher since
// gemmPackedAFused applies the epilogue in the register tiles (stale timings).
TEST(NativeLinearRegistration, SmallTileVariantsAreDistinct) {
  for (const char* name : {"f32_conv2d_prepacked_8x32__avx512", "f32_conv2d_prepacked_8x32_epilogue__avx512"}) {
    const bool fused = std::string(name).find("epilogue") != std::string::npos;
    const runtime::Kernel* k = registry().find(Device::kCPU, fused ? "FusedConv" : "Conv", fused ? "anvil" : "", name);
    ASSERT_NE(k, nullptr) << name;
    // fused: +1 since the epilogue's vmath.h activations, +1 since GELU as 2^-U and every
    // activation in the register tiles, +1 since expNarrow's degree-5 polynomial
    EXPECT_EQ(k->version, fused ? 5 : 2) << name;
    EXPECT_EQ(k->requirements, std::vector<std::string>{"avx512f"}) << name;
  }
  const runtime::Kernel* big = registry().find(Device::kCPU, "Conv", "", "f32_conv2d_prepacked_14x32__avx512");
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(big->version, 3);
  const auto& c = cpu::tactics::gemmConfig(cpu::tactics::GemmIsa::kAvx512_8x32);
  EXPECT_EQ(c.mr, 8);
  EXPECT_EQ(c.nr, 32);
  // Same K blocks as 14x32: the sums run in the same order.
  EXPECT_EQ(c.kc, cpu::tactics::gemmConfig(cpu::tactics::GemmIsa::kAvx512_14x32).kc);
}

TEST(NativeLinearRegistration, EveryKernelHasCases) {
  std::map<std::string, int> covered;
  for (const Param& p : allParams()) covered[allCases()[p.caseIndex].op + "/" + p.kernel]++;
  for (const runtime::Kernel* k : linearKernels())
    EXPECT_GE(covered[k->op + "/" + k->name], 8) << k->op << "/" << k->name << " is barely exercised";
}

TEST(NativeLinearSupports, DeclinesWhatItCannotRun) {
  auto supports = [](const runtime::Kernel* k, const std::string& op, std::vector<ir::TensorType> types,
                     ir::Attributes attrs = {}) {
    ir::Graph g;
    std::vector<ir::Value*> vals;
    for (size_t i = 0; i < types.size(); ++i) vals.push_back(g.addValue("i" + std::to_string(i), types[i]));
    ir::Node* n = g.addNode(op, "", "n", vals, {"y"});
    n->attrs() = attrs;
    return k->supports(*n, types);
  };
  const ir::TensorType f16m{DataType::kF16, ir::Shape{4, 4}}, f32m{DataType::kF32, ir::Shape{4, 4}};
  const ir::TensorType x1d{DataType::kF32, ir::Shape{1, 4, 9}}, w1d{DataType::kF32, ir::Shape{4, 4, 3}};
  const ir::TensorType x{DataType::kF32, ir::Shape{1, 4, 9, 9}}, w{DataType::kF32, ir::Shape{8, 4, 3, 3}};
  const ir::TensorType wdw{DataType::kF32, ir::Shape{4, 1, 3, 3}};
  ir::Attributes dwAttrs, badPad;
  dwAttrs.set("group", int64_t(4));
  badPad.set("auto_pad", std::string("SIDEWAYS"));
  for (const runtime::Kernel* k : linearKernels()) {
    if (k->domain != "") continue;
    if (k->op == "MatMul") {
      EXPECT_FALSE(supports(k, "MatMul", {f16m, f16m})) << k->name;
    }
    if (k->op == "Gemm") {
      EXPECT_FALSE(supports(k, "Gemm", {f32m, {DataType::kF64, ir::Shape{4, 4}}})) << k->name;
      EXPECT_FALSE(supports(k, "Gemm", {{DataType::kF32, ir::Shape{2, 4, 4}}, f32m})) << k->name;
    }
    if (k->op == "Conv") {
      EXPECT_FALSE(supports(k, "Conv", {x1d, w1d})) << k->name << " took a 1-D Conv";
      EXPECT_FALSE(supports(k, "Conv", {{DataType::kF16, x.shape}, {DataType::kF16, w.shape}})) << k->name;
      EXPECT_FALSE(supports(k, "Conv", {x, w}, badPad)) << k->name;
      EXPECT_TRUE(supports(k, "Conv", {x, wdw}, dwAttrs)) << k->name << " declined a depthwise Conv";
      if (k->name.find("dwconv") != std::string::npos) {
        EXPECT_FALSE(supports(k, "Conv", {x, w})) << k->name << " took a dense Conv";
      } else {
        EXPECT_TRUE(supports(k, "Conv", {x, w})) << k->name;
      }
    }
  }
}

// The workspace grows with the prepared thread count (one slot per task) and a packed
// weight leaves only the activation side in it.
TEST(NativeLinearPrepare, WorkspaceScalesWithThreadsAndPacking) {
  const runtime::Kernel* k = registry().find(Device::kCPU, "MatMul", "", "f32_gemm_prepacked_4x8");
  ASSERT_NE(k, nullptr);
  const Case constB{"c", "MatMul", "", {Dims{64, 300}, Dims{300, 40}}, {false, true}, {}};
  const Case varB{"v", "MatMul", "", {Dims{64, 300}, Dims{300, 40}}, {false, false}, {}};
  const Built bc = build(constB, 3), bv = build(varB, 3);
  const PreparedKernel p1 = prepare(*k, bc, 1), p4 = prepare(*k, bc, 4), pv = prepare(*k, bv, 1);
  EXPECT_EQ(p1.prepared.blobs.size(), 1u);
  EXPECT_EQ(p1.prepared.blobs[0].size(), size_t(300 * 40 * 4));  // 40 columns = 5 panels of 8
  EXPECT_EQ(p4.prepared.workspaceBytes, 4 * p1.prepared.workspaceBytes);
  EXPECT_TRUE(pv.prepared.blobs.empty());
  EXPECT_TRUE(pv.prepared.packedInputs.empty());
  EXPECT_GE(pv.prepared.workspaceBytes, p1.prepared.workspaceBytes + 300 * 40 * 4);
}

// Preparing twice gives the same bytes (the engine file is reproducible): params without
// padding garbage, blobs fully written.
TEST(NativeLinearPrepare, Deterministic) {
  for (const Case& c : {Case{"m", "MatMul", "", {Dims{9, 70}, Dims{70, 45}}, {false, true}, {}},
                        Case{"c", "Conv", "", {Dims{1, 6, 9, 9}, Dims{10, 3, 3, 3}, Dims{10}}, {false, true, true},
                             [] {
                               ir::Attributes a;
                               a.set("group", int64_t(2));
                               a.set("pads", Dims{1, 1, 1, 1});
                               return a;
                             }()}})
    for (const runtime::Kernel* k : linearKernels()) {
      const Built b = build(c, 5);
      if (k->op != c.op || !k->supports(*b.node, b.types())) continue;
      const PreparedKernel p1 = prepare(*k, b, 2), p2 = prepare(*k, b, 2);
      EXPECT_EQ(p1.prepared.params, p2.prepared.params) << k->name;
      EXPECT_EQ(p1.prepared.blobs, p2.prepared.blobs) << k->name;
    }
}

// One preparation serves every shape of the profile: prepared (weights, workspace) at the
// max shapes, run at smaller ones.
TEST(NativeLinearRun, SmallerShapesThanPrepared) {
  struct Pair {
    Case max, run;
  };
  ir::Attributes pads;
  pads.set("pads", Dims{1, 1, 1, 1});
  ir::Attributes fused = pads;
  fused.set("activation", std::string("Relu"));
  const std::vector<Pair> pairs = {
      {{"mm", "MatMul", "", {Dims{4, 130, 257}, Dims{257, 40}}, {false, true}, {}},
       {"mm", "MatMul", "", {Dims{1, 7, 257}, Dims{257, 40}}, {false, true}, {}}},
      {{"mmv", "MatMul", "", {Dims{2, 63, 33}, Dims{2, 33, 70}}, {false, false}, {}},
       {"mmv", "MatMul", "", {Dims{2, 17, 33}, Dims{2, 33, 7}}, {false, false}, {}}},
      {{"conv", "Conv", "", {Dims{2, 5, 30, 31}, Dims{7, 5, 3, 3}, Dims{7}}, {false, true, true}, pads},
       {"conv", "Conv", "", {Dims{1, 5, 9, 4}, Dims{7, 5, 3, 3}, Dims{7}}, {false, true, true}, pads}},
      {{"fconv", "FusedConv", "anvil", {Dims{2, 4, 20, 21}, Dims{4, 1, 3, 3}, Dims{4}}, {false, true, true},
        [&] {
          ir::Attributes a = fused;
          a.set("group", int64_t(4));
          return a;
        }()},
       {"fconv", "FusedConv", "anvil", {Dims{1, 4, 7, 9}, Dims{4, 1, 3, 3}, Dims{4}}, {false, true, true}, [&] {
          ir::Attributes a = fused;
          a.set("group", int64_t(4));
          return a;
        }()}},
  };
  int ran = 0;
  for (const Pair& pr : pairs)
    for (const runtime::Kernel* k : linearKernels()) {
      const Built big = build(pr.max, 11);
      Built small = build(pr.run, 12);
      for (size_t i = 0; i < pr.run.constant.size(); ++i)  // the weights the kernel prepared
        if (pr.run.constant[i]) small.tensors[i] = big.tensors[i];
      if (k->op != pr.max.op || k->domain != pr.max.domain || !runtime::hostHasAll(k->requirements) ||
          !k->supports(*big.node, big.types()) || !k->supports(*small.node, small.types()))
        continue;
      const PreparedKernel pk = prepare(*k, big, 2);
      const Tensor want = reference(small);
      auto ex = runtime::makeCpuExecutor(2);
      const RunResult r = runKernel(*k, pk, small, want.dims(), *ex);
      EXPECT_TRUE(r.guardsIntact && r.workspaceIntact) << k->name << " " << pr.run.name;
      EXPECT_EQ(compare(r.out, want), "") << k->name << " " << pr.run.name;
      ++ran;
    }
  EXPECT_GE(ran, 8);
}

// A run with more executor threads than prepared uses only the prepared task slots.
TEST(NativeLinearRun, MoreThreadsThanPreparedStayInTheWorkspace) {
  for (const char* name : {"f32_gemm_prepacked_4x8", "f32_gemm_prepacked_6x16__avx2"}) {
    const runtime::Kernel* k = registry().find(Device::kCPU, "MatMul", "", name);
    ASSERT_NE(k, nullptr);
    if (!runtime::hostHasAll(k->requirements)) continue;
    const Case c{"c", "MatMul", "", {Dims{130, 257}, Dims{257, 63}}, {false, false}, {}};
    const Built b = build(c, 9);
    const Tensor want = reference(b);
    const PreparedKernel pk = prepare(*k, b, 1);
    auto ex = runtime::makeCpuExecutor(3);
    const RunResult r = runKernel(*k, pk, b, want.dims(), *ex);
    EXPECT_TRUE(r.workspaceIntact && r.guardsIntact) << name;
    EXPECT_EQ(compare(r.out, want), "") << name;
  }
}


// The GEMM engine directly (cpu/tactics/gemm_kernels.h), for each family this CPU runs:
// a row computed by the small-M path (M <= gemvRows) or in any tile position of the packed
// path gives the same bits as the same row inside a larger product (each element sums its
// K blocks in order, whatever the path, the tile row or the task count), and the vector A
// packer equals the scalar one.
TEST(NativeLinearGemm, RowsAreBitwiseTheSameOnEveryPath) {
  using namespace cpu::tactics;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  int checked = 0;
  for (GemmIsa isa : {GemmIsa::kPortable4x8, GemmIsa::kAvx2_6x16, GemmIsa::kAvx512_14x32, GemmIsa::kAvx512_8x32}) {
    if (isa == GemmIsa::kAvx2_6x16 && !runtime::hostHasAll({"avx2", "fma"})) continue;
    if ((isa == GemmIsa::kAvx512_14x32 || isa == GemmIsa::kAvx512_8x32) && !runtime::hostHas("avx512f")) continue;
    const GemmConfig& c = gemmConfig(isa);
    for (int64_t K : {1L, 37L, c.kc, c.kc + 1, 2 * c.kc + 5})
      for (int64_t N : {1L, 13L, int64_t(c.nr), 7L * c.nr + 3}) {
        const int64_t M = 2 * c.mr + 3;
        std::vector<float> a(size_t(M * K)), b(size_t(K * N));
        for (float& v : a) v = dist(rng);
        for (float& v : b) v = dist(rng);
        std::vector<float> bp(size_t(packedBFloats(c, K, N)) + 16);
        float* bpa = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(bp.data()) + 63) & ~uintptr_t(63));
        packBPanels(c, K, N, {b.data(), N, 1}, 0, ceilDiv(N, c.nr), bpa);
        std::vector<float> slot(size_t(2 * gemmPackedBSlotFloats(c, K)) + 16);
        float* sa = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(slot.data()) + 63) & ~uintptr_t(63));
        const TaskSlots slots{sa, gemmPackedBSlotFloats(c, K), 2};
        auto ex = runtime::makeCpuExecutor(2);
        std::vector<float> full(size_t(M * N));
        gemmPackedB(c, M, N, K, 0.75f, {a.data(), K, 1}, bpa, full.data(), N, ex.get(), slots, nullptr);
        // Every row count the small-M path takes, and one more, at several row offsets.
        for (int64_t rows = 1; rows <= std::max(c.gemvRows, 1) + 1; ++rows)
          for (int64_t r0 : {int64_t(0), int64_t(1), M - rows}) {
            std::vector<float> part(size_t(rows * N), -7.0f);
            gemmPackedB(c, rows, N, K, 0.75f, {a.data() + r0 * K, K, 1}, bpa, part.data(), N, ex.get(), slots, nullptr);
            ASSERT_EQ(std::memcmp(part.data(), full.data() + r0 * N, part.size() * 4), 0)
                << "isa " << int(isa) << " rows " << r0 << "+" << rows << " of " << M << "x" << K << "x" << N;
            ++checked;
          }
        // Transposed A (column stride): the scalar packer and the in-place small-M reads.
        std::vector<float> at(size_t(K * M));
        for (int64_t i = 0; i < M; ++i)
          for (int64_t k = 0; k < K; ++k) at[size_t(k * M + i)] = a[size_t(i * K + k)];
        for (int64_t rows : {int64_t(1), int64_t(3), M}) {
          std::vector<float> part(size_t(rows * N));
          gemmPackedB(c, rows, N, K, 0.75f, {at.data(), 1, M}, bpa, part.data(), N, nullptr, slots, nullptr);
          ASSERT_EQ(std::memcmp(part.data(), full.data(), part.size() * 4), 0) << "transposed A, rows " << rows;
        }
        // Packed A panels (the Conv filter path) from the vector and the scalar packer.
        std::vector<float> p1(size_t(packedAFloats(c, M, K))), p2(p1.size());
        packAPanels(c, M, K, {a.data(), K, 1}, 0.75f, 0, ceilDiv(M, c.mr), p1.data());
        packAPanels(c, M, K, {at.data(), 1, M}, 0.75f, 0, ceilDiv(M, c.mr), p2.data());
        ASSERT_EQ(p1, p2) << "vector and scalar A packers differ";
      }
  }
  EXPECT_GT(checked, 100);
}

// gemmPackedB's work split and its results across task counts, for each family this CPU runs:
// the items (M blocks x N ranges) come in a count the tasks divide evenly wherever N has the
// panels for it (M = 197 on 2 tasks was 3 x 3 items, 5 against 4), with at least the four
// items per task they had before; and on odd shapes (M, N, K of 1, 7, 17, 63, 130, 197, 513,
// K past the K block) C is the same bits for 1, 2 and 3 tasks, within rounding of a double
// reference, with nothing written outside its rows (C has guard floats around and 5 spare
// columns per row).
TEST(NativeLinearGemm, WorkSplitIsEvenAndTaskCountsAgree) {
  using namespace cpu::tactics;
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  int checked = 0;
  for (GemmIsa isa : {GemmIsa::kPortable4x8, GemmIsa::kAvx2_6x16, GemmIsa::kAvx512_14x32, GemmIsa::kAvx512_8x32}) {
    if (isa == GemmIsa::kAvx2_6x16 && !runtime::hostHasAll({"avx2", "fma"})) continue;
    if ((isa == GemmIsa::kAvx512_14x32 || isa == GemmIsa::kAvx512_8x32) && !runtime::hostHas("avx512f")) continue;
    const GemmConfig& c = gemmConfig(isa);
    for (int64_t T : {2, 3, 4})
      for (int64_t M : {1, 7, 17, 63, 197, 513, 784})
        for (int64_t N : {1, 7, 17, 63, 384, 513, 1152}) {
          const GemmSplit s = gemmPackedBSplit(c, M, N, T);
          const int64_t panels = ceilDiv(N, c.nr), items = s.mBlocks * s.nSplit;
          ASSERT_GE(s.mBlocks, 1);
          ASSERT_LE(s.mBlocks, ceilDiv(M, c.mr));
          ASSERT_GE(s.nSplit, 1);
          ASSERT_LE(s.nSplit, panels);
          // A task's items as the driver runs them (gemmItemRun): each run in one M block, its
          // panels the union of its items' ranges, one run (one packing of that block of A)
          // per M block the task touches (four items of one block were four packings).
          const int64_t tasks = std::min(T, items);
          for (int64_t t = 0; t < tasks; ++t) {
            const int64_t end = rangeBegin(items, t + 1, tasks);
            std::vector<int64_t> blocks;
            for (int64_t it = rangeBegin(items, t, tasks); it < end;) {
              const GemmItemRun r = gemmItemRun(it, end, s.nSplit, panels);
              ASSERT_GT(r.next, it);
              ASSERT_LE(r.next, end);
              for (int64_t j = it; j < r.next; ++j) ASSERT_EQ(j / s.nSplit, r.mb);
              ASSERT_EQ(r.q0, panels * (it % s.nSplit) / s.nSplit);
              ASSERT_EQ(r.q1, panels * ((r.next - 1) % s.nSplit + 1) / s.nSplit);
              ASSERT_TRUE(blocks.empty() || blocks.back() < r.mb) << "two runs of one M block on task " << t;
              blocks.push_back(r.mb);
              it = r.next;
            }
          }
          if (M <= c.gemvRows) continue;
          const int64_t least = std::min(panels, ceilDiv(4 * T, s.mBlocks));
          EXPECT_GE(s.nSplit, least) << M << "x" << N << " on " << T;
          if (panels >= least + T - 1) {
            EXPECT_EQ(items % T, 0) << "isa " << int(isa) << " " << M << "x" << N << ": " << s.mBlocks << " x "
                                    << s.nSplit << " items on " << T << " tasks";
          }
        }
    constexpr float kSentinel = -12345.0f;
    constexpr int64_t kG = 37;
    for (int64_t M : {1, 7, 17, 63, 197, 513})
      for (int64_t N : {7, 17, 63, 130})
        for (int64_t K : {int64_t(1), int64_t(17), c.kc + 44}) {
          std::vector<float> a(size_t(M * K)), b(size_t(K * N));
          for (float& v : a) v = dist(rng);
          for (float& v : b) v = dist(rng);
          std::vector<float> bp(size_t(packedBFloats(c, K, N)) + 16);
          float* bpa = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(bp.data()) + 63) & ~uintptr_t(63));
          packBPanels(c, K, N, {b.data(), N, 1}, 0, ceilDiv(N, c.nr), bpa);
          const int64_t ldc = N + 5;
          std::vector<float> first;
          for (int T : {1, 2, 3}) {
            std::vector<float> slot(size_t(T * gemmPackedBSlotFloats(c, K)) + 16);
            float* sa = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(slot.data()) + 63) & ~uintptr_t(63));
            const TaskSlots slots{sa, gemmPackedBSlotFloats(c, K), T};
            auto ex = runtime::makeCpuExecutor(T);
            std::vector<float> cbuf(size_t(M * ldc + 2 * kG), kSentinel);
            float* cm = cbuf.data() + kG;
            gemmPackedB(c, M, N, K, 1.0f, {a.data(), K, 1}, bpa, cm, ldc, T == 1 ? nullptr : ex.get(), slots, nullptr);
            const std::string where = "isa " + std::to_string(int(isa)) + " " + std::to_string(M) + "x" +
                                      std::to_string(K) + "x" + std::to_string(N) + " on " + std::to_string(T);
            for (int64_t i = 0; i < kG; ++i)
              ASSERT_TRUE(cbuf[size_t(i)] == kSentinel && cbuf[cbuf.size() - 1 - size_t(i)] == kSentinel) << where;
            std::vector<float> got(size_t(M * N));
            for (int64_t i = 0; i < M; ++i) {
              for (int64_t j = N; j < ldc; ++j) ASSERT_EQ(cm[i * ldc + j], kSentinel) << where << " row " << i;
              std::copy(cm + i * ldc, cm + i * ldc + N, got.begin() + i * N);
            }
            if (T == 1) {
              for (int64_t i = 0; i < M; ++i)
                for (int64_t j = 0; j < N; ++j) {
                  double ref = 0, mag = 0;
                  for (int64_t k = 0; k < K; ++k) {
                    ref += double(a[size_t(i * K + k)]) * double(b[size_t(k * N + j)]);
                    mag += std::fabs(double(a[size_t(i * K + k)]) * double(b[size_t(k * N + j)]));
                  }
                  ASSERT_NEAR(got[size_t(i * N + j)], ref, 1e-5 * (1.0 + mag)) << where << " at " << i << "," << j;
                }
              first = got;
            } else {
              ASSERT_EQ(std::memcmp(got.data(), first.data(), got.size() * 4), 0) << where << ": not the 1-task bits";
            }
            ++checked;
          }
        }
  }
  EXPECT_GT(checked, 100);
}

// The vector families, each test once per family; the AVX-512 ones skip where absent.
class NativeLinearGemmFamily : public ::testing::TestWithParam<cpu::tactics::GemmIsa> {
 protected:
  void SetUp() override {
    using cpu::tactics::GemmIsa;
    if (GetParam() == GemmIsa::kAvx2_6x16 && !runtime::hostHasAll({"avx2", "fma"})) GTEST_SKIP() << "skipped: no AVX2";
    if (GetParam() != GemmIsa::kAvx2_6x16 && !runtime::hostHas("avx512f")) GTEST_SKIP() << "skipped: no AVX-512";
  }
};
INSTANTIATE_TEST_SUITE_P(Families, NativeLinearGemmFamily,
                         ::testing::Values(cpu::tactics::GemmIsa::kAvx2_6x16, cpu::tactics::GemmIsa::kAvx512_14x32,
                                           cpu::tactics::GemmIsa::kAvx512_8x32),
                         [](const auto& info) { return std::to_string(int(info.param)); });

// C[r][j] of one tile as the kernels compute it: one fmaf chain over k from zero, then added
// to C when accumulating. Bit-exact, so every comparison below is for equality.
static float tileRef(const float* a, int mr, const float* b, int nr, int64_t kc, int r, int j, float c, bool acc) {
  float s = 0.0f;
  for (int64_t k = 0; k < kc; ++k) s = std::fma(a[k * mr + r], b[k * nr + j], s);
  return acc ? c + s : s;
}

// The kernels that also prefetch the next B panel (gemmPackedB's first row tile of every
// panel): the plain kernels' bits for every row count, K (1 to past the K block), column
// edge and accumulate flag, with the panel ending right at an inaccessible page so that the
// prefetches past the last panel of a weight land there (a prefetch never faults).
TEST_P(NativeLinearGemmFamily, PrefetchingKernelsMatchThePlainOnesAndStayInBounds) {
  using namespace cpu::tactics;
  const GemmConfig& c = gemmConfig(GetParam());
  ASSERT_NE(c.kernelsNext, nullptr);
  const long page = sysconf(_SC_PAGESIZE);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  int checked = 0;
  for (int64_t kc : {int64_t(1), int64_t(7), int64_t(63), c.kc - 1, c.kc}) {
    const size_t bBytes = size_t(kc * c.nr) * 4, mapped = (bBytes + size_t(page) - 1) / size_t(page) * size_t(page);
    char* map = static_cast<char*>(mmap(nullptr, mapped + 2 * size_t(page), PROT_READ | PROT_WRITE,
                                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(map, MAP_FAILED);
    ASSERT_EQ(mprotect(map + mapped, 2 * size_t(page), PROT_NONE), 0);
    float* b = reinterpret_cast<float*>(map + mapped - bBytes);  // 64-byte aligned: bBytes is a multiple of 64
    for (int64_t i = 0; i < kc * c.nr; ++i) b[i] = dist(rng);
    std::vector<float> a(size_t(kc * c.mr));
    for (float& v : a) v = dist(rng);
    const int64_t ldc = c.nr + 5;
    for (int rows = 1; rows <= c.mr; ++rows)
      for (int ncols : {1, c.nr / 2 + 1, c.nr})
        for (bool acc : {false, true}) {
          std::vector<float> c0(size_t(c.mr * ldc)), c1;
          for (float& v : c0) v = dist(rng);
          c1 = c0;
          const std::vector<float> before = c0;
          c.kernels[rows - 1](kc, a.data(), b, c0.data(), ldc, ncols, acc);
          // The tile's share of the next panel: all of it, a third, or a row (past the last
          // panel: the inaccessible page).
          const int64_t share = std::array<int64_t, 3>{kc, std::max<int64_t>(1, kc / 3), 1}[size_t(rows % 3)];
          c.kernelsNext[rows - 1](kc, a.data(), b, c1.data(), ldc, ncols, acc,
                                  PanelPrefetch{b + (kc - share) * c.nr, share});
          ASSERT_EQ(c0, c1) << "rows " << rows << " kc " << kc << " ncols " << ncols << " acc " << acc;
          for (int r = 0; r < c.mr; ++r)
            for (int j = 0; j < ldc; ++j) {
              const size_t at = size_t(r * ldc + j);
              const float want = r < rows && j < ncols
                                     ? tileRef(a.data(), c.mr, b, c.nr, kc, r, j, before[at], acc)
                                     : before[at];  // outside the tile: untouched
              ASSERT_EQ(c1[at], want) << "rows " << rows << " kc " << kc << " (" << r << ", " << j << ")";
            }
          ++checked;
        }
    munmap(map, mapped + 2 * size_t(page));
  }
  EXPECT_EQ(checked, 5 * c.mr * 3 * 2);
}

// The row tiles of a panel split the next panel's kc rows between them (panelShare): in
// order, each row once, for any tile count (more tiles than rows too).
TEST(NativeLinearGemm, PanelSharesCoverTheNextPanelOnce) {
  using namespace cpu::tactics;
  const float* next = reinterpret_cast<const float*>(uintptr_t(1) << 20);
  for (int nr : {16, 32})
    for (int64_t kc : {1, 2, 7, 63, 192, 255, 256})
      for (int64_t tiles = 1; tiles <= 20; ++tiles) {
        int64_t row = 0;
        for (int64_t t = 0; t < tiles; ++t) {
          const PanelPrefetch s = panelShare(next, nr, kc, t, tiles);
          ASSERT_EQ(static_cast<const float*>(s.p), next + row * nr) << "kc " << kc << " tiles " << tiles << " tile " << t;
          ASSERT_GE(s.rows, 0);
          ASSERT_LE(s.rows, kc / tiles + 1);  // nearly even shares
          row += s.rows;
        }
        ASSERT_EQ(row, kc) << "kc " << kc << " tiles " << tiles;
      }
}

// A kernel's walk through its share, row (k * prefetchStep(rows, kc)) >> 32 at k step k:
// every row of the share and none past it, for every kc up to 300 and every share length,
// and longer loops (the INT8 kernels' K / 4 groups) up to 65536.
TEST(NativeLinearGemm, PrefetchStepVisitsEveryRowOfTheShare) {
  using namespace cpu::tactics;
  int64_t cases = 0;
  for (int64_t kc = 1; kc <= 65536; kc += kc < 300 ? 1 : kc < 2000 ? 61 : 9973)
    for (int64_t rows = 1; rows <= kc; rows += kc < 2000 ? 1 : 997) {
      const int64_t step = prefetchStep(rows, kc);
      int64_t last = -1;
      for (int64_t k = 0; k < kc; ++k) {
        const int64_t r = (k * step) >> 32;
        ASSERT_TRUE(r == last || r == last + 1) << "kc " << kc << " rows " << rows << " k " << k;  // no row skipped
        last = r;
      }
      ASSERT_EQ(last, rows - 1) << "kc " << kc << " rows " << rows;
      ++cases;
    }
  EXPECT_GT(cases, 45000);
}

// gemmPackedB at the blocking edges (M around the tile and the mc block, N around the
// panels, K around the K block, so that the prefetching first tile meets every panel,
// M block and K block boundary), 1 and 2 tasks, against the exact per-K-block fmaf sums,
// with C's row gaps and the rows around it guarded.
TEST_P(NativeLinearGemmFamily, PackedBAtBlockEdgesIsExact) {
  using namespace cpu::tactics;
  const GemmConfig& c = gemmConfig(GetParam());
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  auto ex = runtime::makeCpuExecutor(2);
  const float alpha = 0.75f, guard = -12345.0f;
  int checked = 0;
  for (int64_t K : {int64_t(17), c.kc - 1, c.kc + 1, 2 * c.kc + 3})
    for (int64_t N : {int64_t(c.nr - 1), int64_t(3 * c.nr + 5)})
      for (int64_t M : {int64_t(1), int64_t(c.mr + 1), c.mc - 1, c.mc + 1, 2 * c.mc + 3}) {
        std::vector<float> a(size_t(M * K)), b(size_t(K * N));
        for (float& v : a) v = dist(rng);
        for (float& v : b) v = dist(rng);
        std::vector<float> bp(size_t(packedBFloats(c, K, N)) + 16);
        float* bpa = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(bp.data()) + 63) & ~uintptr_t(63));
        packBPanels(c, K, N, {b.data(), N, 1}, 0, ceilDiv(N, c.nr), bpa);
        // The reference: K blocks of kBlockOf, each an fmaf chain from zero, added in order.
        const int64_t kb = kBlockOf(c, K), ldc = N + 3;
        std::vector<float> want(size_t((M + 2) * ldc), guard);
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            float acc = 0.0f;
            for (int64_t k0 = 0; k0 < K; k0 += kb) {
              float s = 0.0f;
              for (int64_t k = k0; k < std::min(K, k0 + kb); ++k) s = std::fma(alpha * a[size_t(i * K + k)], b[size_t(k * N + j)], s);
              acc = k0 == 0 ? s : acc + s;
            }
            want[size_t((i + 1) * ldc + j)] = acc;
          }
        for (int tasks : {1, 2}) {
          std::vector<float> slot(size_t(tasks * gemmPackedBSlotFloats(c, K)) + 16);
          float* sa = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(slot.data()) + 63) & ~uintptr_t(63));
          const TaskSlots slots{sa, gemmPackedBSlotFloats(c, K), tasks};
          std::vector<float> got(want.size(), guard);
          gemmPackedB(c, M, N, K, alpha, {a.data(), K, 1}, bpa, got.data() + ldc, ldc, ex.get(), slots, nullptr);
          ASSERT_EQ(got, want) << "M " << M << " N " << N << " K " << K << " tasks " << tasks;
          ++checked;
        }
      }
  EXPECT_EQ(checked, 4 * 2 * 5 * 2);
}

// ---------------------------------------------------------------------------------------
// Timing (run with --gtest_also_run_disabled_tests): median of 20 runs per kernel, against
// the reference kernel, with 1 and 2 executor threads.

// Median wall time and median CPU time of the calling thread (what a one-thread run costs
// even when the shared machine preempts it; with 2 threads only the wall time means much).
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

void bench(const Case& c, double flops) {
  const Built b = build(c, 1);
  const Tensor want = reference(b);
  std::printf("%s (%.4f GFLOP)\n", c.name.c_str(), flops * 1e-9);
  const Timing ref = medianMs([&] { reference(b); });
  std::printf("  %-40s     wall %8.3f ms %7.2f GFLOP/s | thread CPU %8.3f ms %7.2f GFLOP/s\n", "ref", ref.wallMs,
              flops / (ref.wallMs * 1e6), ref.cpuMs, flops / (ref.cpuMs * 1e6));
  for (const runtime::Kernel* k : linearKernels()) {
    if (k->op != c.op || !runtime::hostHasAll(k->requirements) || !k->supports(*b.node, b.types())) continue;
    for (int threads : {1, 2}) {
      const PreparedKernel pk = prepare(*k, b, threads);
      auto ex = runtime::makeCpuExecutor(threads);
      Step step(*k, pk, b, want.dims());
      const Timing t = medianMs([&] { step.run(*ex); });
      std::printf("  %-40s t=%d wall %8.3f ms %7.2f GFLOP/s", k->name.c_str(), threads, t.wallMs,
                  flops / (t.wallMs * 1e6));
      if (threads == 1) std::printf(" | thread CPU %8.3f ms %7.2f GFLOP/s", t.cpuMs, flops / (t.cpuMs * 1e6));
      std::printf("\n");
    }
  }
}

TEST(NativeLinearBench, DISABLED_Timing) {
  bench({"MatMul_1x512x512", "MatMul", "", {Dims{1, 512}, Dims{512, 512}}, {false, true}, {}}, 2.0 * 512 * 512);
  bench({"MatMul_256x512x512", "MatMul", "", {Dims{256, 512}, Dims{512, 512}}, {false, true}, {}},
        2.0 * 256 * 512 * 512);
  bench({"MatMul_784x1024x1024", "MatMul", "", {Dims{784, 1024}, Dims{1024, 1024}}, {false, true}, {}},
        2.0 * 784 * 1024 * 1024);
  ir::Attributes pads;
  pads.set("pads", Dims{1, 1, 1, 1});
  bench({"Conv_64x56x56_3x3", "Conv", "", {Dims{1, 64, 56, 56}, Dims{64, 64, 3, 3}, Dims{64}}, {false, true, true}, pads},
        2.0 * 64 * 56 * 56 * 64 * 9);
  // 1x1 Conv with few output channels (the few-rows 8x32 family's case): GEMM M x N x K =
  // 32 x 12544 x 16 (mobilenet_v2's first projection), 16 x 3136 x 96, 24 x 3136 x 144.
  bench({"Conv_1x1_16to32x112x112", "Conv", "", {Dims{1, 16, 112, 112}, Dims{32, 16, 1, 1}, Dims{32}}, {false, true, true}, {}},
        2.0 * 32 * 12544 * 16);
  bench({"Conv_1x1_16to32x112x112_nobias", "Conv", "", {Dims{1, 16, 112, 112}, Dims{32, 16, 1, 1}}, {false, true}, {}},
        2.0 * 32 * 12544 * 16);
  bench({"Conv_1x1_96to16x56x56", "Conv", "", {Dims{1, 96, 56, 56}, Dims{16, 96, 1, 1}, Dims{16}}, {false, true, true}, {}},
        2.0 * 16 * 3136 * 96);
  bench({"Conv_1x1_144to24x56x56", "Conv", "", {Dims{1, 144, 56, 56}, Dims{24, 144, 1, 1}, Dims{24}}, {false, true, true}, {}},
        2.0 * 24 * 3136 * 144);
  ir::Attributes dw = pads;
  dw.set("group", int64_t(144));
  bench({"Conv_dw_144x56x56_3x3", "Conv", "", {Dims{1, 144, 56, 56}, Dims{144, 1, 3, 3}, Dims{144}}, {false, true, true}, dw},
        2.0 * 144 * 56 * 56 * 9);
}


// GFLOP/s of a MatMul kernel with a constant B, best of `reps` (thread CPU time at 1
// thread, wall time otherwise).
double kernelGflops(const runtime::Kernel& k, const Case& c, double flops, int threads, int reps) {
  const Built b = build(c, 1);
  const PreparedKernel pk = prepare(k, b, threads);
  auto ex = runtime::makeCpuExecutor(threads);
  Dims out = c.inputs[0].value();
  out.back() = c.inputs[1]->back();
  Step step(k, pk, b, out, /*alignedOut=*/true);
  step.run(*ex);
  double best = 0;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = runtime::threadCpuMs();
    step.run(*ex);
    const double cpu = (runtime::threadCpuMs() - c0) * 1e-3;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, flops / (threads == 1 ? std::max(cpu, 1e-9) : wall) * 1e-9);
  }
  return best;
}

// The GEMM against the FMA peak (issue: >= 85% of it for M=N=K >= 512, one thread). The
// clock of the shared machine drifts by 10% within a minute, so the peak is measured again
// right before each kernel and the percentage is against that.
TEST(NativeLinearBench, DISABLED_GemmVsPeak) {
  const int64_t iters = 4000000;
  auto peak2 = [&] { return fmaPeakGflops(false, iters); };
  auto peak512 = [&] { return fmaPeakGflops(true, iters); };
  const bool has2 = runtime::hostHasAll({"avx2", "fma"}), has512 = runtime::hostHas("avx512f");
  std::printf("FMA peak, one core: AVX2 %.1f GFLOP/s, AVX-512 %.1f GFLOP/s\n", has2 ? peak2() : 0.0,
              has512 ? peak512() : 0.0);
  const char* env = std::getenv("ANVIL_BENCH_THREADS");
  const int maxThreads = env ? std::atoi(env) : 1;
  struct Shape { int64_t m, k, n; };
  for (const Shape s : {Shape{256, 256, 256}, Shape{512, 512, 512}, Shape{1024, 1024, 1024}, Shape{1, 768, 768},
                        Shape{8, 768, 768}, Shape{128, 768, 3072}})
    for (const runtime::Kernel* k : linearKernels()) {
      if (k->op != "MatMul" || !runtime::hostHasAll(k->requirements)) continue;
      const bool isa512 = !k->requirements.empty() && k->requirements[0] == "avx512f";
      const double peak = k->requirements.empty() ? 0 : isa512 ? peak512() : peak2();
      const Case c{"bench", "MatMul", "", {Dims{s.m, s.k}, Dims{s.k, s.n}}, {false, true}, {}};
      const double flops = 2.0 * double(s.m * s.k * s.n);
      const int reps = flops > 1e9 ? 5 : flops > 1e8 ? 20 : 200;
      for (int t = 1; t <= maxThreads; ++t) {
        const double g = kernelGflops(*k, c, flops, t, reps);
        std::printf("  %4lldx%4lldx%4lld %-36s t=%d %7.1f GFLOP/s", (long long)s.m, (long long)s.k, (long long)s.n,
                    k->name.c_str(), t, g);
        if (peak > 0) std::printf("  %5.1f%% of %d x peak (%.1f)", 100.0 * g / (peak * t), t, peak);
        std::printf("\n");
      }
    }
}

// One micro-kernel on operands resident in L1 (kc = ANVIL_BENCH_KC, default 64): the
// register tile's own ceiling, apart from the cache blocking around it.
TEST(NativeLinearBench, DISABLED_MicroKernel) {
  using namespace cpu::tactics;
  const int64_t kc = std::getenv("ANVIL_BENCH_KC") ? std::atol(std::getenv("ANVIL_BENCH_KC")) : 64;
  for (GemmIsa isa : {GemmIsa::kAvx2_6x16, GemmIsa::kAvx512_14x32, GemmIsa::kAvx512_8x32}) {
    if (isa != GemmIsa::kAvx2_6x16 && !runtime::hostHas("avx512f")) continue;
    const GemmConfig& c = gemmConfig(isa);
    std::vector<float> a(size_t(kc * c.mr) + 16, 0.5f), b(size_t(kc * c.nr) + 16, 0.25f), cm(size_t(c.mr * c.nr) + 16);
    auto align = [](float* p) { return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63)); };
    const int inner = int(2e7 / double(kc * c.mr * c.nr));
    const double g = bestGflops([&] {
      for (int i = 0; i < inner; ++i) c.kernels[c.mr - 1](kc, align(a.data()), align(b.data()), align(cm.data()), c.nr, c.nr, true);
    }, 2.0 * double(kc * c.mr * c.nr) * inner, 10);
    const int64_t iters = 2000000;
    const double peak = fmaPeakGflops(isa != GemmIsa::kAvx2_6x16, iters);
    std::printf("micro-kernel %dx%d kc=%ld: %6.1f GFLOP/s  %5.1f%% of peak %.1f\n", c.mr, c.nr, kc, g, 100.0 * g / peak, peak);
  }
}

// The driver alone (gemmPackedB on 64-byte aligned buffers, no epilogue): what the kernels
// above cost without the step around them, as a percentage of the FMA peak measured right
// before each shape (the shared machine's clock drifts). ANVIL_BENCH_MNK=m,n,k[;m,n,k...]
// picks the shapes (default: the squares of the target and the zoo's hot shapes),
// ANVIL_BENCH_THREADS=t runs t tasks on an executor (wall time then), and ANVIL_BENCH_COLD=MB
// cycles through as many copies of the packed B as fill that many MB, so that each call
// streams its weights from memory as the layers of a large model do (convnext_tiny's 112 MB
// against a 2 MB L2) instead of finding them in cache. ANVIL_BENCH_MC / ANVIL_BENCH_KCB
// replace the family's mc / kc (cache blocks) and ANVIL_BENCH_NOPF=1 runs the plain kernels
// instead of the ones fetching the next B panel, to weigh each against the measured default.
TEST(NativeLinearBench, DISABLED_GemmDriver) {
  using namespace cpu::tactics;
  const std::vector<BenchShape> shapes = benchShapes(
      {{512, 512, 512}, {1024, 1024, 1024}, {49, 3072, 768}, {49, 768, 3072}, {196, 1536, 384},
       {196, 384, 1536}, {3136, 24, 144}, {12544, 96, 16}, {1, 768, 768}, {8, 768, 768}});
  const double coldMb = std::getenv("ANVIL_BENCH_COLD") ? std::atof(std::getenv("ANVIL_BENCH_COLD")) : 0.0;
  const int threads = std::getenv("ANVIL_BENCH_THREADS") ? std::max(1, std::atoi(std::getenv("ANVIL_BENCH_THREADS"))) : 1;
  const char* only = std::getenv("ANVIL_BENCH_ISA");  // "avx2", "avx512" or "8x32": one family
  auto ex = runtime::makeCpuExecutor(threads);
  const int64_t iters = 2000000;
  auto align = [](float* p) { return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63)); };
  for (const BenchShape s : shapes)
    for (GemmIsa isa : {GemmIsa::kAvx2_6x16, GemmIsa::kAvx512_14x32, GemmIsa::kAvx512_8x32}) {
      if (isa != GemmIsa::kAvx2_6x16 && !runtime::hostHas("avx512f")) continue;
      const char* name = isa == GemmIsa::kAvx2_6x16 ? "avx2" : isa == GemmIsa::kAvx512_14x32 ? "avx512" : "8x32";
      if (only && std::strcmp(only, name) != 0) continue;
      GemmConfig c = gemmConfig(isa);
      if (const char* v = std::getenv("ANVIL_BENCH_MC")) c.mc = std::atol(v);
      if (const char* v = std::getenv("ANVIL_BENCH_KCB")) c.kc = std::atol(v);
      if (std::getenv("ANVIL_BENCH_NOPF")) c.kernelsNext = nullptr;
      const int64_t M = s.m, N = s.n, K = s.k;
      const int64_t bFloats = roundUp(packedBFloats(c, K, N), 16);
      // Small weights would need thousands of copies (and as many calls per timing): at most
      // 1e10 flops per timing, so a tall-skinny product's weights may stay in L2/L3.
      const double flops = 2.0 * double(M) * double(N) * double(K);
      const int copies = coldMb > 0 ? int(std::min(std::max(1.0, 1e10 / flops),
                                                   std::max<double>(1.0, std::ceil(coldMb * 1e6 / (4.0 * double(bFloats))))))
                                    : 1;
      std::vector<float> a(size_t(M * K) + 16, 0.5f), b(size_t(K * N), 0.25f);
      std::vector<float> bp(size_t(bFloats * copies) + 16), cm(size_t(M * N) + 16);
      std::vector<float> slot(size_t(threads * gemmPackedBSlotFloats(c, K)) + 16);
      float* bpa = align(bp.data());
      for (int i = 0; i < copies; ++i) packBPanels(c, K, N, {b.data(), N, 1}, 0, ceilDiv(N, c.nr), bpa + i * bFloats);
      const TaskSlots slots{align(slot.data()), gemmPackedBSlotFloats(c, K), threads};
      const int inner = std::max(copies, int(std::max(1.0, 2e8 / flops)));
      int next = 0;
      auto body = [&] {
        for (int i = 0; i < inner; ++i) {
          gemmPackedB(c, M, N, K, 1.0f, {align(a.data()), K, 1}, bpa + int64_t(next) * bFloats, align(cm.data()), N,
                      ex.get(), slots, nullptr);
          next = (next + 1) % copies;
        }
      };
      double g = 0;
      if (threads == 1) {
        g = bestGflops(body, flops * inner, 10);
      } else {
        for (int r = 0; r < 10; ++r) {
          const auto t0 = std::chrono::steady_clock::now();
          body();
          g = std::max(g, flops * inner / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1e-9);
        }
      }
      const double peak = fmaPeakGflops(isa != GemmIsa::kAvx2_6x16, iters);
      std::printf("gemmPackedB %-6s M=%-5ld N=%-5ld K=%-5ld t=%d", name, M, N, K, threads);
      if (coldMb > 0) std::printf(" cold (%.0f MB)", 4e-6 * double(bFloats) * copies);
      std::printf(": %6.1f GFLOP/s  %5.1f%% of %d x peak %.1f\n", g, 100.0 * g / (peak * threads), threads, peak);
      std::fflush(stdout);
    }
}

}  // namespace
