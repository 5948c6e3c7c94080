// The i8_conv2d_pixels_* kernels (cpu/tactics/native_int8_conv_pixels.cpp): INT8 Conv /
// anvil.FusedConv with output pixels as the tile rows. Each case is a one-node graph set to
// DataType::kI8 with input 0's per-tensor quantization, run through the kernel contract
// (weights handed over as NaNs after prepare, output between sentinel guards, a guarded
// workspace) on 1 and 2 executor threads, per family the CPU has. Checked: the same bits on
// both thread counts; the same bits as the i8_conv2d_u8s8 kernels (native_int8.cpp) on the
// same quantization; the f32 reference kernel within the quantization error bound of
// native_int8_test (per element: sum over k of s_x |w| + s_w / 2 |x^|); and the lowered u8
// I/O (input 0, Z, output 0) against the f32-I/O run through the contract's identities.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "cpu/tactics/int8_gemm.h"
#include "ir/ops/anvil_linear.h"
#include "native_int8_conv_test_util.h"
#include "native_kernel_test_util.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeInt8Kernels(Kernels& k);        // cpu/tactics/native_int8.cpp
void registerNativeInt8PixelsKernels(Kernels& k);  // cpu/tactics/native_int8_conv_pixels.cpp
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;
using anvil::cpu::tactics::quantizeU8One;

namespace {

using namespace anvil::testing::nk;
using namespace anvil::testing::i8conv;

runtime::Kernels& registry() {
  return anvil::testing::nk::registryOf<&runtime::registerNativeInt8Kernels,
                                        &runtime::registerNativeInt8PixelsKernels>();
}

// The pixels kernel of a family ("__avx512vnni", ...) for an op.
const runtime::Kernel* pixelsKernel(const std::string& op, const std::string& suffix) {
  for (const runtime::Kernel* k : registry().all())
    if (k->op == op && k->name.rfind("i8_conv2d_pixels_u8s8", 0) == 0 && k->name.size() >= suffix.size() &&
        k->name.compare(k->name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return k;
  return nullptr;
}

// An i8_conv2d_u8s8 kernel of the op this host runs (the one to agree with bit for bit).
const runtime::Kernel* existingKernel(const std::string& op) {
  for (const runtime::Kernel* k : registry().all())
    if (k->op == op && k->name.rfind("i8_conv2d_u8s8", 0) == 0 && runtime::hostHasAll(k->requirements)) return k;
  return nullptr;
}

const std::vector<std::string>& families() {
  static const std::vector<std::string> f = {"__avx512vnni", "__avxvnni", "__avx2", "_portable"};
  return f;
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
  // Strides 2 and 3 over odd extents, a partial last channel group, two images.
  c.push_back({"1x1_s2x3_b2_c13", {2, 13, 15, 16}, {17, 13, 1, 1}, true, {2, 3}, {}, {}});
  c.push_back({"1x1_s2_wide", {1, 9, 5, 67}, {11, 9, 1, 1}, true, {2, 2}, {}, {}});
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

struct PP {
  size_t index;
  std::string family;
};
void PrintTo(const PP& p, std::ostream* os) { *os << cases()[p.index].name << p.family; }

class NativeInt8Pixels : public ::testing::TestWithParam<PP> {};

TEST_P(NativeInt8Pixels, MatchesExistingKernelBitwiseAndReferenceWithinBound) {
  const PCase& pc = cases()[GetParam().index];
  const runtime::Kernel* k = pixelsKernel(fusedCase(pc) ? "FusedConv" : "Conv", GetParam().family);
  ASSERT_NE(k, nullptr) << "no pixels kernel for " << GetParam().family;
  if (const std::string why = skipReason(*k); !why.empty()) GTEST_SKIP() << why;
  const Built b = buildCase(pc, uint32_t(GetParam().index) * 7919u + 3);
  const std::vector<float> got = asFloats(runBoth(*k, b));
  const Expected& e = expected(GetParam().index);
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

INSTANTIATE_TEST_SUITE_P(Native, NativeInt8Pixels, ::testing::ValuesIn([] {
                           std::vector<PP> p;
                           for (size_t i = 0; i < cases().size(); ++i)
                             for (const std::string& f : families()) p.push_back({i, f});
                           return p;
                         }()),
                         [](const ::testing::TestParamInfo<PP>& p) {
                           return cases()[p.param.index].name + p.param.family;
                         });

// ---------------------------------------------------------------------------------------
// Lowered u8 I/O: every combination of {u8 input, u8 Z, u8 output} against the f32-I/O run
// fed float(q - zp) * scale, bit for bit (the output through quantizeU8One(y, 1 / s_y, z_y)).

class NativeInt8PixelsLowered : public ::testing::TestWithParam<std::string> {};

TEST_P(NativeInt8PixelsLowered, MatchesTheF32RunThroughTheIdentities) {
  const std::vector<PCase> lcases = {
      {"fused_3x3_relu_z", {1, 17, 7, 7}, {50, 17, 3, 3}, true, {}, {}, {1, 1, 1, 1}, "Relu", true},
      {"fused_1x1_z_only_b2", {2, 64, 7, 7}, {63, 64, 1, 1}, false, {}, {}, {}, "", true},
      {"conv_3x3_s2", {1, 13, 14, 14}, {17, 13, 3, 3}, true, {2, 2}, {}, {1, 1, 1, 1}},
      {"fused_1x1_sigmoid", {1, 20, 7, 7}, {30, 20, 1, 1}, true, {}, {}, {}, "Sigmoid", false},
      {"conv_1x1_s2x3", {2, 13, 15, 16}, {17, 13, 1, 1}, true, {2, 3}, {}, {}},
      // Stride 2 over 67-wide rows: the 16-byte gathers and their tails.
      {"conv_1x1_s2_wide", {1, 9, 5, 67}, {11, 9, 1, 1}, true, {2, 2}, {}, {}},
  };
  int ran = 0;
  for (const runtime::Kernel* k : registry().all()) {
    if (k->name.rfind("i8_conv2d_pixels_u8s8", 0) != 0) continue;
    const std::string& f = GetParam();
    if (k->name.compare(k->name.size() - f.size(), f.size(), f) != 0) continue;
    if (const std::string why = skipReason(*k); !why.empty()) GTEST_SKIP() << why;
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

INSTANTIATE_TEST_SUITE_P(Native, NativeInt8PixelsLowered, ::testing::ValuesIn(families()),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           return p.param.substr(p.param.find_first_not_of('_'));
                         });

// ---------------------------------------------------------------------------------------
// What it declines

TEST(NativeInt8PixelsSupports, DeclinesWhatItCannotRun) {
  const runtime::Kernel* k = pixelsKernel("Conv", "_portable");
  const runtime::Kernel* kf = pixelsKernel("FusedConv", "_portable");
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
    Built b = buildCase({"big", {1, 8, 29, 28}, {16, 8, 3, 3}, true, {}, {}, {1, 1, 1, 1}}, 1);
    EXPECT_FALSE(k->supports(*b.node, b.types())) << "812 output pixels";
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

}  // namespace
