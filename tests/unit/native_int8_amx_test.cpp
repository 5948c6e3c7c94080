// The AMX kernels (cpu/tactics/native_int8_amx.cpp): i8_conv2d_amx_* (INT8 Conv /
// anvil.FusedConv) and i8_gemm_amx_* (MatMul / Gemm / FusedMatMul / FusedGemm; their own
// section below). Each case is a one-node graph set to DataType::kI8 with input 0's per-tensor
// quantization, run through the kernel contract (weights handed over as NaNs after prepare,
// output between sentinel guards, a guarded workspace) on 1 and 2 executor threads, where
// the host has AMX-INT8 (skipped elsewhere). Checked: the same bits on both thread counts;
// the same bits as the i8_conv2d_u8s8 kernels (native_int8.cpp) on the same quantization;
// the f32 reference within native_int8_test's quantization error bound; the lowered u8 I/O
// against the f32-I/O run; the "amxint8" requirement and ANVIL_MAX_ISA=avx512 hiding it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <array>
#include <optional>
#include <random>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "cpu/tactics/int8_gemm.h"
#include "ir/ops/anvil_linear.h"
#include "native_int8_conv_test_util.h"
#include "native_kernel_test_util.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeInt8Kernels(Kernels& k);        // cpu/tactics/native_int8.cpp
void registerNativeInt8AmxKernels(Kernels& k);     // cpu/tactics/native_int8_amx.cpp
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;
using anvil::cpu::tactics::quantizeU8One;

namespace {

using namespace anvil::testing::nk;
using namespace anvil::testing::i8conv;

runtime::Kernels& registry() {
  return anvil::testing::nk::registryOf<&runtime::registerNativeInt8Kernels, &runtime::registerNativeInt8AmxKernels>();
}

// The AMX kernel for an op.
const runtime::Kernel* amxKernel(const std::string& op) {
  for (const runtime::Kernel* k : registry().all())
    if (k->op == op && k->name.rfind("i8_conv2d_amx", 0) == 0) return k;
  return nullptr;
}

// An i8_conv2d_u8s8 kernel of the op this host runs (the one to agree with bit for bit).
const runtime::Kernel* existingKernel(const std::string& op) {
  for (const runtime::Kernel* k : registry().all())
    if (k->op == op && k->name.rfind("i8_conv2d_u8s8", 0) == 0 && runtime::hostHasAll(k->requirements)) return k;
  return nullptr;
}

// ---------------------------------------------------------------------------------------
// Cases


std::vector<PCase> allCases() {
  std::vector<PCase> c;
  for (int64_t hw : {7, 14})
    for (int64_t ci : {17, 64, 512})
      for (int64_t co : {1, 7, 48, 50, 512}) {
        const std::string s = std::to_string(hw) + "x" + std::to_string(hw) + "_ci" + std::to_string(ci) + "_co" +
                              std::to_string(co);
        c.push_back({"3x3_p1_" + s, {1, ci, hw, hw}, {co, ci, 3, 3}, co != 7, {}, {}, {1, 1, 1, 1}});
      }
  c.push_back({"1x1_7x7_64to50", {1, 64, 7, 7}, {50, 64, 1, 1}, true, {}, {}, {}});
  c.push_back({"1x1_7x7_256to130_nobias", {1, 256, 7, 7}, {130, 256, 1, 1}, false, {}, {}, {}});
  c.push_back({"1x1_7x7_13to17", {1, 13, 7, 7}, {17, 13, 1, 1}, true, {}, {}, {}});
  c.push_back({"1x1_s2_14to7", {1, 64, 14, 14}, {96, 64, 1, 1}, true, {2, 2}, {}, {}});
  c.push_back({"1x1_pad", {1, 5, 4, 3}, {7, 5, 1, 1}, false, {}, {}, {1, 0, 0, 2}});
  c.push_back({"3x3_s2_14to7", {1, 64, 14, 14}, {50, 64, 3, 3}, true, {2, 2}, {}, {1, 1, 1, 1}});
  c.push_back({"3x3_s2_15to8_c17", {1, 17, 15, 15}, {63, 17, 3, 3}, true, {2, 2}, {}, {1, 1, 1, 1}});
  c.push_back({"3x3_d2_p2", {1, 13, 12, 13}, {17, 13, 3, 3}, true, {}, {2, 2}, {2, 2, 2, 2}});
  c.push_back({"3x3_s3_d2_asym", {1, 6, 17, 16}, {5, 6, 3, 3}, true, {3, 3}, {2, 2}, {2, 1, 2, 2}});
  c.push_back({"5x5_p2_b2", {2, 7, 9, 10}, {6, 7, 5, 5}, true, {}, {}, {2, 2, 2, 2}});
  c.push_back({"3x3_p1_b2_7x7", {2, 64, 7, 7}, {50, 64, 3, 3}, true, {}, {}, {1, 1, 1, 1}});
  c.push_back({"1x1_b2_7x7", {2, 33, 7, 7}, {63, 33, 1, 1}, true, {}, {}, {}});
  c.push_back({"1x1_1x1_image", {1, 9, 1, 1}, {17, 9, 1, 1}, true, {}, {}, {}});
  c.push_back({"3x3_28x28", {1, 16, 28, 28}, {20, 16, 3, 3}, true, {}, {}, {1, 1, 1, 1}});
  c.push_back({"3x3_specials", {1, 13, 9, 11}, {17, 13, 3, 3}, true, {}, {}, {1, 1, 1, 1}, nullptr, false, true});
  c.push_back({"1x1_specials", {1, 13, 9, 11}, {17, 13, 1, 1}, true, {}, {}, {}, nullptr, false, true});
  c.push_back(
      {"3x3_s2_specials", {1, 13, 9, 11}, {17, 13, 3, 3}, false, {2, 2}, {}, {1, 1, 1, 1}, nullptr, false, true});
  // FusedConv: ReLU + Z (ResNet's bottleneck end), ReLU alone, Z then ReLU after, and a
  // vector-polynomial activation.
  c.push_back({"fused_1x1_relu_z", {1, 64, 7, 7}, {96, 64, 1, 1}, true, {}, {}, {}, "Relu", true});
  c.push_back({"fused_3x3_relu_z_b2", {2, 17, 7, 7}, {50, 17, 3, 3}, true, {}, {}, {1, 1, 1, 1}, "Relu", true});
  c.push_back({"fused_3x3_relu", {1, 64, 14, 14}, {48, 64, 3, 3}, true, {}, {}, {1, 1, 1, 1}, "Relu", false});
  c.push_back({"fused_3x3_s2_relu", {1, 32, 14, 14}, {40, 32, 3, 3}, false, {2, 2}, {}, {1, 1, 1, 1}, "Relu", false});
  c.push_back({"fused_1x1_z_only", {1, 20, 7, 7}, {30, 20, 1, 1}, true, {}, {}, {}, "", true});
  // Larger outputs (no pixel cap here), the stem, K tails and wide channel counts.
  c.push_back({"1x1_56x56_64to63", {1, 64, 56, 56}, {63, 64, 1, 1}, true, {}, {}, {}});
  c.push_back({"1x1_17x17_65to130", {1, 65, 17, 17}, {130, 65, 1, 1}, true, {}, {}, {}});
  c.push_back({"3x3_p1_30x30_c7", {1, 7, 30, 30}, {17, 7, 3, 3}, true, {}, {}, {1, 1, 1, 1}});
  c.push_back({"7x7_s2_stem", {1, 3, 64, 62}, {64, 3, 7, 7}, true, {2, 2}, {}, {3, 3, 3, 3}});
  c.push_back({"3x3_d2_28x28", {2, 20, 28, 28}, {33, 20, 3, 3}, false, {}, {2, 2}, {2, 2, 2, 2}});
  c.push_back({"3x3_s2_1", {1, 1, 3, 3}, {1, 1, 3, 3}, true, {2, 2}, {}, {1, 1, 1, 1}});
  c.push_back({"fused_3x3_relu_z_56", {1, 16, 56, 56}, {20, 16, 3, 3}, true, {}, {}, {1, 1, 1, 1}, "Relu", true});
  c.push_back({"fused_3x3_sigmoid", {1, 13, 7, 7}, {17, 13, 3, 3}, true, {}, {}, {1, 1, 1, 1}, "Sigmoid", false});
  return c;
}

const std::vector<PCase>& cases() {
  static const std::vector<PCase> c = allCases();
  return c;
}

const Expected& expected(size_t index) {
  static std::map<size_t, Expected> cache;
  auto it = cache.find(index);
  if (it != cache.end()) return it->second;
  const PCase& pc = cases()[index];
  return cache.emplace(index, computeExpected(pc, index, existingKernel(fusedCase(pc) ? "FusedConv" : "Conv")))
      .first->second;
}

// ---------------------------------------------------------------------------------------
// The parametrised test: every case on every family, 1 and 2 threads

class NativeInt8Amx : public ::testing::TestWithParam<size_t> {};

TEST_P(NativeInt8Amx, MatchesExistingKernelBitwiseAndReferenceWithinBound) {
  const PCase& pc = cases()[GetParam()];
  const runtime::Kernel* k = amxKernel(fusedCase(pc) ? "FusedConv" : "Conv");
  ASSERT_NE(k, nullptr) << "no AMX kernel";
  if (!runtime::hostHasAll(k->requirements)) GTEST_SKIP() << "skipped: no AMX";
  const Built b = buildCase(pc, uint32_t(GetParam()) * 7919u + 3);
  const std::vector<float> got = asFloats(runBoth(*k, b));
  const Expected& e = expected(GetParam());
  ASSERT_EQ(got.size(), size_t(e.ref.numel()));
  // (a) the i8_conv2d_u8s8 kernel on the same quantization: the same bits.
  ASSERT_FALSE(e.existing.empty()) << "no i8_conv2d_u8s8 kernel runs here";
  size_t diff = 0, first = 0;
  const std::vector<float> ex = asFloats(e.existing);
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &ex[i], 4) != 0 && diff++ == 0) first = i;
  EXPECT_EQ(diff, 0u) << k->name << " vs " << e.existingName << ": first at " << first << " got " << got[first]
                      << " want " << ex[first];
  // (b) the f32 reference within the quantization error bound (finite inputs).
  if (pc.specials) return;
  double maxRef = 0;
  for (int64_t i = 0; i < e.ref.numel(); ++i) maxRef = std::max(maxRef, double(std::fabs(e.ref.data<float>()[i])));
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(double(got[i]) - e.ref.data<float>()[i]);
    ASSERT_LE(err, e.bound[i] + 1e-5 * std::max(maxRef, 1.0))
        << k->name << " at " << i << ": got " << got[i] << " f32 " << e.ref.data<float>()[i];
  }
}

INSTANTIATE_TEST_SUITE_P(Native, NativeInt8Amx, ::testing::Range(size_t(0), cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& p) { return cases()[p.param].name; });

// ---------------------------------------------------------------------------------------
// Lowered u8 I/O: every combination of {u8 input, u8 Z, u8 output} against the f32-I/O run
// fed float(q - zp) * scale, bit for bit (the output through quantizeU8One(y, 1 / s_y, z_y)).

TEST(NativeInt8AmxLowered, MatchesTheF32RunThroughTheIdentities) {
  const std::vector<PCase> lcases = {
      {"fused_3x3_relu_z", {1, 17, 7, 7}, {50, 17, 3, 3}, true, {}, {}, {1, 1, 1, 1}, "Relu", true},
      {"fused_1x1_z_only_b2", {2, 64, 7, 7}, {63, 64, 1, 1}, false, {}, {}, {}, "", true},
      {"conv_3x3_s2", {1, 13, 14, 14}, {17, 13, 3, 3}, true, {2, 2}, {}, {1, 1, 1, 1}},
      {"fused_1x1_sigmoid", {1, 20, 7, 7}, {30, 20, 1, 1}, true, {}, {}, {}, "Sigmoid", false},
      {"fused_1x1_relu_z_28", {1, 64, 28, 28}, {40, 64, 1, 1}, true, {}, {}, {}, "Relu", true},
      {"conv_3x3_30x30", {1, 8, 30, 30}, {20, 8, 3, 3}, true, {}, {}, {1, 1, 1, 1}},
  };
  int ran = 0;
  for (const runtime::Kernel* k : registry().all()) {
    if (k->name.rfind("i8_conv2d_amx", 0) != 0) continue;
    if (!runtime::hostHasAll(k->requirements)) GTEST_SKIP() << "skipped: no AMX";
    for (const PCase& pc : lcases) {
      if ((k->op == "FusedConv") != fusedCase(pc)) continue;
      for (int combo = 1; combo < 8; ++combo) {
        const Lowered low{(combo & 1) != 0, (combo & 2) != 0 && pc.residual, (combo & 4) != 0};
        if ((combo & 2) && !pc.residual) continue;
        SCOPED_TRACE(k->name + " " + pc.name + " in=" + std::to_string(low.in) + " z=" + std::to_string(low.z) +
                     " out=" + std::to_string(low.out));
        const Built lb = buildCase(pc, 77, low);
        // The f32 twin: the same weights and bias, the lowered inputs dequantized.
        Built fb = buildCase(pc, 77);
        auto dequant = [](const Tensor& q, QuantU8 qu, Tensor* f) {
          for (int64_t i = 0; i < q.numel(); ++i)
            f->data<float>()[i] = float(int32_t(q.data<uint8_t>()[i]) - qu.zp) * qu.scale;
        };
        if (low.in) dequant(lb.tensors[0], kQx, &fb.tensors[0]);
        else ASSERT_EQ(std::memcmp(fb.tensors[0].raw(), lb.tensors[0].raw(), lb.tensors[0].nbytes()), 0);
        if (pc.residual) {
          if (low.z) dequant(lb.tensors[3], kQz, &fb.tensors[3]);
          else ASSERT_EQ(std::memcmp(fb.tensors[3].raw(), lb.tensors[3].raw(), lb.tensors[3].nbytes()), 0);
        }
        // The weight initializers were drawn from the same seed: the same values.
        ASSERT_EQ(std::memcmp(fb.node->input(1)->initializer()->raw(), lb.node->input(1)->initializer()->raw(),
                              lb.tensors[1].nbytes()),
                  0);
        const std::vector<float> want = asFloats(runBoth(*k, fb));
        const std::vector<uint8_t> got = runBoth(*k, lb);
        if (low.out) {
          ASSERT_EQ(got.size(), want.size());
          size_t bad = 0;
          for (size_t i = 0; i < want.size(); ++i)
            if (got[i] != quantizeU8One(want[i], 1.0f / kQy.scale, kQy.zp)) ++bad;
          EXPECT_EQ(bad, 0u);
        } else {
          ASSERT_EQ(got.size(), want.size() * 4);
          EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size()), 0);
        }
        ++ran;
      }
    }
  }
  EXPECT_GT(ran, 0);
}

// ---------------------------------------------------------------------------------------
// What it declines

TEST(NativeInt8AmxSupports, DeclinesWhatItCannotRun) {
  const runtime::Kernel* k = amxKernel("Conv");
  const runtime::Kernel* kf = amxKernel("FusedConv");
  ASSERT_NE(k, nullptr);
  ASSERT_NE(kf, nullptr);
  const PCase base{"c", {1, 8, 7, 7}, {16, 8, 3, 3}, true, {}, {}, {1, 1, 1, 1}};
  {
    Built b = buildCase(base, 1);
    EXPECT_TRUE(k->supports(*b.node, b.types()));
    const_cast<ir::Node*>(b.node)->tacticParams().set("fp32_channels", Dims{1});
    EXPECT_FALSE(k->supports(*b.node, b.types())) << "fp32_channels";
  }
  {
    Built b = buildCase(base, 1);
    const_cast<ir::Node*>(b.node)->tacticParams().set("adaptive_tau", 0.5f);
    EXPECT_FALSE(k->supports(*b.node, b.types())) << "adaptive_tau";
  }
  {
    Built b = buildCase(base, 1);
    const_cast<ir::Node*>(b.node)->setPrecision(DataType::kF32);
    EXPECT_FALSE(k->supports(*b.node, b.types())) << "f32 node";
  }
  {
    Built b = buildCase(base, 1);
    b.node->input(0)->setQuantization(std::nullopt);
    EXPECT_FALSE(k->supports(*b.node, b.types())) << "no input quantization";
  }
  {
    Built b = buildCase({"big", {1, 8, 56, 56}, {16, 8, 3, 3}, true, {}, {}, {1, 1, 1, 1}}, 1);
    EXPECT_TRUE(k->supports(*b.node, b.types())) << "56x56 (no pixel cap)";
  }
  {
    Built b = buildCase(base, 1, Lowered{false, false, true});
    EXPECT_TRUE(k->supports(*b.node, b.types())) << "u8 output";
    b.node->output(0)->setQuantization(std::nullopt);
    EXPECT_FALSE(k->supports(*b.node, b.types())) << "u8 output without a quantization";
  }
  {
    const PCase fz{"fz", {1, 8, 7, 7}, {16, 8, 1, 1}, true, {}, {}, {}, "Relu", true};
    Built b = buildCase(fz, 1, Lowered{false, true, false});
    EXPECT_TRUE(kf->supports(*b.node, b.types())) << "u8 Z";
    b.node->input(3)->setQuantization(std::nullopt);
    EXPECT_FALSE(kf->supports(*b.node, b.types())) << "u8 Z without a quantization";
  }
}

// ---------------------------------------------------------------------------------------
// MatMul / Gemm / FusedMatMul / FusedGemm (i8_gemm_amx_*): bitwise against the host's
// i8_gemm_u8s8 kernel on the same quantization (f32 and lowered u8 I/O), 1 and 2 threads,
// and near the f32 reference (a loose sanity bound: the exact bound is native_int8_test's,
// which the u8s8 kernels meet and these match bit for bit).

struct MCase {
  Case c;
  bool lowX = false, lowZ = false, lowY = false;
};

ir::Attributes gemmAttrs(int tA, int tB, float alpha, float beta) {
  ir::Attributes at;
  if (tA) at.set("transA", int64_t(tA));
  if (tB) at.set("transB", int64_t(tB));
  if (alpha != 1.0f) at.set("alpha", alpha);
  if (beta != 1.0f) at.set("beta", beta);
  return at;
}

std::vector<MCase> matmulCases() {
  std::vector<MCase> c;
  auto add = [&](std::string name, std::string op, std::string domain, std::vector<std::optional<Dims>> in,
                 std::vector<bool> constant, ir::Attributes at) {
    c.push_back({{std::move(name), std::move(op), std::move(domain), std::move(in), std::move(constant), at}});
  };
  for (int64_t m : {1, 7, 17, 63, 65, 130})
    for (int64_t k : {1, 17, 63, 65, 130})
      for (int64_t n : {1, 7, 17, 65, 130}) {
        const std::string s = std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n);
        add("MatMul_" + s, "MatMul", "", {Dims{m, k}, Dims{k, n}}, {false, true}, {});
      }
  add("MatMul_batch_2x3x7x13", "MatMul", "", {Dims{2, 3, 7, 13}, Dims{13, 9}}, {false, true}, {});
  add("MatMul_vec_13", "MatMul", "", {Dims{13}, Dims{13, 40}}, {false, true}, {});
  add("MatMul_128x768x200", "MatMul", "", {Dims{128, 768}, Dims{768, 200}}, {false, true}, {});
  add("MatMul_33x300x100", "MatMul", "", {Dims{33, 300}, Dims{300, 100}}, {false, true}, {});
  for (int tA = 0; tA < 2; ++tA)
    for (int tB = 0; tB < 2; ++tB)
      for (auto [M, K, N] : std::vector<std::array<int64_t, 3>>{{7, 13, 33}, {17, 63, 5}, {65, 130, 17}}) {
        const std::string s = std::to_string(M) + "x" + std::to_string(K) + "x" + std::to_string(N) + "_tA" +
                              std::to_string(tA) + "tB" + std::to_string(tB);
        const Dims a = tA ? Dims{K, M} : Dims{M, K}, b = tB ? Dims{N, K} : Dims{K, N};
        add("Gemm_" + s + "_noC", "Gemm", "", {a, b}, {false, true}, gemmAttrs(tA, tB, 1.0f, 1.0f));
        add("Gemm_" + s + "_C_MN", "Gemm", "", {a, b, Dims{M, N}}, {false, true, true}, gemmAttrs(tA, tB, 0.5f, 2.0f));
        add("Gemm_" + s + "_C_N", "Gemm", "", {a, b, Dims{N}}, {false, true, false}, gemmAttrs(tA, tB, 1.5f, -1.0f));
        add("Gemm_" + s + "_C_N_bias", "Gemm", "", {a, b, Dims{N}}, {false, true, true}, gemmAttrs(tA, tB, 1.5f, 1.0f));
        add("Gemm_" + s + "_C_M1", "Gemm", "", {a, b, Dims{M, 1}}, {false, true, true}, gemmAttrs(tA, tB, 1.0f, 0.5f));
      }
  struct E {
    const char* name;
    const char* act;
    std::vector<float> params;
    int residual;  // 0 none, 1 add_then_activate, 2 activate_then_add
  };
  const E epis[] = {{"none", "", {}, 0},          {"relu", "Relu", {}, 0},          {"clip", "Clip", {-0.5f, 0.75f}, 0},
                    {"gelu", "Gelu", {}, 0},        {"sigmoid", "Sigmoid", {}, 0},  {"res_add_relu", "Relu", {}, 1},
                    {"res_relu_add", "Relu", {}, 2}, {"res_only", "", {}, 1},        {"res_gelu", "Gelu", {}, 1}};
  for (const E& e : epis) {
    auto fused = [&](std::string name, std::string op, std::vector<std::optional<Dims>> in, std::vector<bool> constant,
                     ir::Attributes at, const Dims& out) {
      if (*e.act) at.set("activation", std::string(e.act));
      if (!e.params.empty()) at.set("activation_params", e.params);
      if (e.residual) {
        at.set("has_residual", int64_t(1));
        at.set("residual_order", std::string(e.residual == 1 ? "add_then_activate" : "activate_then_add"));
        while (in.size() < 3) in.push_back(std::nullopt), constant.push_back(false);
        in.push_back(out);
        constant.resize(4, false);
      }
      add(op + "_" + name + "_" + e.name, op, "anvil", in, constant, at);
    };
    fused("7x17x130_biasN", "FusedMatMul", {Dims{7, 17}, Dims{17, 130}, Dims{130}}, {false, true, true}, {}, {7, 130});
    fused("batch_2x63x7x17_bias1", "FusedMatMul", {Dims{2, 63, 7}, Dims{7, 17}, Dims{1}}, {false, true, true}, {},
          {2, 63, 17});
    fused("65x130x33_nobias", "FusedMatMul", {Dims{65, 130}, Dims{130, 33}}, {false, true}, {}, {65, 33});
    fused("17x63x33_tB_CN", "FusedGemm", {Dims{17, 63}, Dims{33, 63}, Dims{33}}, {false, true, true},
          gemmAttrs(0, 1, 0.5f, 1.0f), {17, 33});
  }
  // bert-like: 128 x 768 x 768 with bias and GELU; lowered u8 combinations.
  c.push_back({{"FusedMatMul_128x768x768_gelu", "FusedMatMul", "anvil", {Dims{128, 768}, Dims{768, 768}, Dims{768}},
                {false, true, true}, [] {
                  ir::Attributes at;
                  at.set("activation", std::string("Gelu"));
                  return at;
                }()}});
  for (int combo = 1; combo < 8; ++combo) {
    ir::Attributes at;
    at.set("activation", std::string("Relu"));
    at.set("has_residual", int64_t(1));
    MCase mc{{"FusedMatMul_low" + std::to_string(combo), "FusedMatMul", "anvil",
              {Dims{33, 130}, Dims{130, 40}, Dims{40}, Dims{33, 40}}, {false, true, true, false}, at}};
    mc.lowX = combo & 1, mc.lowZ = (combo & 2) != 0, mc.lowY = (combo & 4) != 0;
    c.push_back(mc);
    MCase g{{"MatMul_low" + std::to_string(combo), "MatMul", "", {Dims{17, 65}, Dims{65, 7}}, {false, true}, {}}};
    g.lowX = combo & 1, g.lowY = (combo & 4) != 0;
    if (combo & 2) continue;
    c.push_back(g);
  }
  return c;
}

const std::vector<MCase>& mcases() {
  static const std::vector<MCase> c = matmulCases();
  return c;
}

// The one-node graph with input 0 calibrated on [-1, 1]; lowered values retyped to u8 with
// u8 data drawn from the same seed.
Built buildMatMul(const MCase& mc, uint32_t seed) {
  Built b = build(mc.c, seed);
  ir::Node* n = const_cast<ir::Node*>(b.node);
  n->setPrecision(DataType::kI8);
  n->input(0)->setQuantization(quantOf(kQx));
  std::mt19937 r(seed + 17);
  std::uniform_int_distribution<int> byte(0, 255);
  auto lower = [&](size_t i, QuantU8 q) {
    Tensor t(DataType::kU8, b.tensors[i].dims());
    for (int64_t j = 0; j < t.numel(); ++j) t.data<uint8_t>()[j] = uint8_t(byte(r));
    b.tensors[i] = std::move(t);
    n->input(i)->type().dtype = DataType::kU8;
    n->input(i)->setQuantization(quantOf(q));
  };
  if (mc.lowX) lower(0, kQx);
  if (mc.lowZ) lower(3, kQz);
  if (mc.lowY) {
    n->output(0)->type().dtype = DataType::kU8;
    n->output(0)->setQuantization(quantOf(kQy));
  }
  return b;
}

const runtime::Kernel* amxGemm(const std::string& op) {
  for (const runtime::Kernel* k : registry().all())
    if (k->op == op && k->name.rfind("i8_gemm_amx", 0) == 0) return k;
  return nullptr;
}
const runtime::Kernel* existingGemm(const std::string& op) {
  for (const runtime::Kernel* k : registry().all())
    if (k->op == op && k->name.rfind("i8_gemm_u8s8", 0) == 0 && runtime::hostHasAll(k->requirements)) return k;
  return nullptr;
}

class NativeInt8AmxGemm : public ::testing::TestWithParam<size_t> {};

TEST_P(NativeInt8AmxGemm, MatchesExistingKernelBitwise) {
  const MCase& mc = mcases()[GetParam()];
  const runtime::Kernel* k = amxGemm(mc.c.op);
  ASSERT_NE(k, nullptr) << "no AMX kernel for " << mc.c.op;
  if (!runtime::hostHasAll(k->requirements)) GTEST_SKIP() << "skipped: no AMX";
  const runtime::Kernel* e = existingGemm(mc.c.op);
  ASSERT_NE(e, nullptr);
  const Built b = buildMatMul(mc, uint32_t(GetParam()) * 131u + 5);
  const std::vector<uint8_t> got = runBoth(*k, b), want = runBoth(*e, b);
  ASSERT_EQ(got.size(), want.size());
  size_t diff = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i] && diff++ == 0) first = i;
  EXPECT_EQ(diff, 0u) << k->name << " vs " << e->name << ": first differing byte " << first;
  if (mc.lowX || mc.lowZ || mc.lowY) return;
  // Near the f32 reference: |y - ref| within 3% of the output's range plus 0.02 (the inputs'
  // quantization steps are 1/127 of |w| and 2/255 of x; a sanity check, not the bound).
  const Tensor ref = reference(b);
  const std::vector<float> y = asFloats(got);
  double maxRef = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) maxRef = std::max(maxRef, double(std::fabs(ref.data<float>()[i])));
  const int64_t K = mc.c.op == "Gemm" && mc.c.attrs.getInt("transB", 0) ? (*mc.c.inputs[1])[1] : (*mc.c.inputs[1])[0];
  const double tol = 0.03 * maxRef + 0.02 * std::sqrt(double(K)) + 0.02;
  for (size_t i = 0; i < y.size(); ++i)
    ASSERT_LE(std::fabs(double(y[i]) - ref.data<float>()[i]), tol) << k->name << " at " << i;
}

INSTANTIATE_TEST_SUITE_P(Native, NativeInt8AmxGemm, ::testing::Range(size_t(0), mcases().size()),
                         [](const ::testing::TestParamInfo<size_t>& p) { return mcases()[p.param].c.name; });

TEST(NativeInt8AmxGemmSupports, DeclinesWhatItCannotRun) {
  const runtime::Kernel* k = amxGemm("MatMul");
  ASSERT_NE(k, nullptr);
  const MCase base{{"m", "MatMul", "", {Dims{7, 17}, Dims{17, 9}}, {false, true}, {}}};
  {
    Built b = buildMatMul(base, 1);
    EXPECT_TRUE(k->supports(*b.node, b.types()));
    const_cast<ir::Node*>(b.node)->tacticParams().set("fp32_channels", Dims{1});
    EXPECT_FALSE(k->supports(*b.node, b.types())) << "fp32_channels";
  }
  {
    Built b = buildMatMul(base, 1);
    const_cast<ir::Node*>(b.node)->tacticParams().set("adaptive_test", int64_t(1));
    EXPECT_FALSE(k->supports(*b.node, b.types())) << "adaptive_test";
  }
  {
    Built b = buildMatMul(base, 1);
    const_cast<ir::Node*>(b.node)->setPrecision(DataType::kF32);
    EXPECT_FALSE(k->supports(*b.node, b.types())) << "f32 node";
  }
  {
    const MCase varB{{"v", "MatMul", "", {Dims{7, 17}, Dims{17, 9}}, {false, false}, {}}};
    Built b = buildMatMul(varB, 1);
    EXPECT_FALSE(k->supports(*b.node, b.types())) << "variable B";
  }
}

// ---------------------------------------------------------------------------------------
// The requirement

TEST(NativeInt8AmxRequirement, NamesAmxInt8AndAvx512HidesIt) {
  const runtime::Kernel* k = amxKernel("Conv");
  ASSERT_NE(k, nullptr);
  EXPECT_NE(std::find(k->requirements.begin(), k->requirements.end(), "amxint8"), k->requirements.end());
  // hostCpuIsa (the timing cache's key) names it exactly where it is usable.
  EXPECT_EQ(runtime::hostCpuIsa().find("+amxint8") != std::string::npos, runtime::hostHas("amxint8"));
}

// Run in a child process by the next test (ANVIL_MAX_ISA is read once per process): exits
// 0 when the cap keeps AVX-512 as the CPU has it and hides AMX.
TEST(NativeInt8AmxRequirement, DISABLED_ProbeUnderTheCap) {
  const bool avx512 = runtime::hostHas("avx512f") == bool(__builtin_cpu_supports("avx512f"));
  std::exit(runtime::hostHas("amxint8") ? 1 : avx512 ? 0 : 2);
}

TEST(NativeInt8AmxRequirement, Avx512CapHidesIt) {
  char exe[4096] = {};
  const ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  ASSERT_GT(len, 0);
  const std::string cmd = std::string("ANVIL_MAX_ISA=avx512 '") + exe +
                          "' --gtest_also_run_disabled_tests "
                          "--gtest_filter=NativeInt8AmxRequirement.DISABLED_ProbeUnderTheCap >/dev/null 2>&1";
  const int st = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << "1: AMX visible under ANVIL_MAX_ISA=avx512; 2: AVX-512 hidden";
}

}  // namespace
