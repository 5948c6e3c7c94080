// The INT8 tensor-core launchers (cuda/linear_tc.h: launchGemmInt8TensorCore,
// launchConv2dInt8TensorCore) on the sim runtime's stream against integer references:
//  - exact sums: with scale 1 the output before the epilogue is float(sum (q - z_x) * w), which
//    the kernel must reproduce bit for bit (M, N, K tails 1, 7, 17, 63, 65, K off multiples of
//    16; activations at and past the grid's ends, so the clamps saturate; weights at +-127; a
//    long K whose sums pass 2^24 and only an exact s32 sum rounds to the same float);
//  - dequantized epilogues: real-valued inputs on a calibrated grid, per-feature scales, bias,
//    Z (beta), every activation and clip, against the same f32 steps on the exact integer;
//  - convolutions: strides, asymmetric padding (a padding tap is the quantized 0.0: a zero
//    point far from 128 makes a wrong pad value show), dilation, groups, rectangular kernels;
//  - guards around every buffer, and bad descriptors refused before anything runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "anvil/error.h"
#include "cuda/linear_tc.h"
#include "cuda/sim/sim.h"
#include "tests/cuda/linear_i8_test_common.h"
#include "tests/cuda/linear_test_common.h"
#include "tests/cuda/runtime_test_common.h"

namespace anvil::cuda {
namespace {

using namespace testing;

class CudaSimI8Tc : public ::testing::Test {
 protected:
  void SetUp() override {
    rt_ = simRuntime();
    stream_ = rt_->createStream();
  }
  void TearDown() override { rt_->destroyStream(stream_); }
  std::unique_ptr<DeviceRuntime> rt_;
  Stream stream_;
};

TEST_F(CudaSimI8Tc, GemmExactSumsOnOddShapes) {
  const std::int64_t mn[] = {1, 7, 17, 63, 65};
  const std::int64_t ks[] = {1, 7, 17, 33, 63, 130};
  int i = 0;
  for (std::int64_t m : mn)
    for (std::int64_t n : mn)
      for (std::int64_t k : ks) {
        if ((m * 7 + n * 3 + k) % 3 != 0 && !(m == 65 || n == 65 || k == 130)) continue;  // a third of the inner grid
        I8GemmCase g;
        g.m = m, g.n = n, g.k = k;
        g.transA = ++i % 4 == 0;
        g.zp = i % 3 == 0 ? 128 : i % 3 == 1 ? 3 : 250;
        checkGemm(*rt_, stream_, g);
      }
}

TEST_F(CudaSimI8Tc, GemmSaturatesAtTheGridsEnds) {
  // Every q at 255 (or 0) against every weight at +127 (or -127), zero points at both ends of
  // the grid: the largest sums of either sign. K = 1031 makes them pass 2^24 (255 * 127 * 1031
  // = 33.4e6), where only the exact integer rounds to the float the reference computes.
  for (int inputs : {1, 2})
    for (int weights : {1, 2})
      for (std::int32_t zp : {0, 255, 77}) {
        I8GemmCase g;
        g.m = 3, g.n = 5, g.k = 1031;
        g.inputs = inputs, g.weights = weights, g.zp = zp;
        checkGemm(*rt_, stream_, g);
      }
}

TEST_F(CudaSimI8Tc, GemmEpiloguesBatchesAndStrides) {
  std::vector<std::optional<Activation>> acts = {std::nullopt};
  for (Activation a : kAllActivations) acts.push_back(a);
  int i = 0;
  for (const auto& act : acts) {
    I8GemmCase g;
    g.batch = 1 + i % 3, g.m = 17 + i, g.n = 33 - i, g.k = 47 + 3 * i;
    g.pad = i % 2 ? 3 : 0;
    g.transA = i % 3 == 1;
    g.exact = false;
    g.zp = 100 + 10 * i;
    g.epi.bias = i % 4 != 3;
    g.epi.z = i % 2 == 0;
    g.epi.beta = i % 4 == 2 ? 0.5f : 1.0f;
    g.epi.act = act;
    if (i == 2) g.epi.clipLo = -0.25f, g.epi.clipHi = 0.5f;
    ++i;
    checkGemm(*rt_, stream_, g);
  }
}

TEST_F(CudaSimI8Tc, GemmBadDescriptorsAreRejected) {
  void* buf = rt_->allocate(8192);
  char* base = static_cast<char*>(buf);
  GemmDesc d = GemmDesc::packed(1, 4, 4, 4, false, true, base, base + 1024, base + 2048, DataType::kI8);
  Int8Quant q;
  q.scale = reinterpret_cast<const float*>(base + 4096);
  q.offset = reinterpret_cast<const std::int32_t*>(base + 5120);
  q.xInv = 10.0f, q.xZero = 128;
  rt_->memsetAsync(buf, 0, 8192, stream_);
  EXPECT_NO_THROW(launchGemmInt8TensorCore(*rt_, stream_, d, q));
  rt_->synchronize(stream_);
  auto expectBad = [&](GemmDesc bd, Int8Quant bq, const char* what) {
    try {
      launchGemmInt8TensorCore(*rt_, stream_, bd, bq);
      ADD_FAILURE() << what << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("i8_gemm_wmma"), std::string::npos) << e.what();
    }
  };
  GemmDesc notT = d;
  notT.transB = false;
  expectBad(notT, q, "B not as feature rows");
  GemmDesc f16 = d;
  f16.dtype = DataType::kF16;
  expectBad(f16, q, "f16 operands");
  GemmDesc alpha = d;
  alpha.alpha = 2.0f;
  expectBad(alpha, q, "alpha != 1");
  GemmDesc longK = d;
  longK.k = kInt8TensorCoreMaxK + 1, longK.lda = longK.k, longK.ldb = longK.k, longK.m = 1, longK.n = 1;
  longK.a = rt_->allocate(size_t(longK.k) * 4);
  longK.b = rt_->allocate(size_t(longK.k));
  expectBad(longK, q, "k beyond exact sums");
  rt_->free(const_cast<void*>(longK.a));
  rt_->free(const_cast<void*>(longK.b));
  Int8Quant noScale = q;
  noScale.scale = nullptr;
  expectBad(d, noScale, "null scale");
  Int8Quant badZero = q;
  badZero.xZero = 256;
  expectBad(d, badZero, "zero point off the grid");
  Int8Quant badInv = q;
  badInv.xInv = 0.0f;
  expectBad(d, badInv, "zero 1 / scale");
  Int8Quant scaleOverC = q;
  scaleOverC.scale = reinterpret_cast<const float*>(base + 2048 + 8);
  expectBad(d, scaleOverC, "C over the scales");
  GemmDesc ldb = d;
  ldb.ldb = 3;
  expectBad(ldb, q, "ldb below k");
  EXPECT_THROW(launchGemmTensorCore(*rt_, stream_, d), Error);  // the f16 / bf16 launcher refuses i8
  rt_->free(buf);
}

TEST_F(CudaSimI8Tc, ConvExactSumsOnOddGeometries) {
  std::vector<I8ConvCase> cases;
  {
    I8ConvCase c;  // 1x1, 1 channel, 1 output channel: every tail at 1
    c.c = 1, c.k = 1, c.r = 1, c.s = 1, c.h = 1, c.w = 1;
    cases.push_back(c);
  }
  {
    I8ConvCase c;  // 3x3 pad 1 (every border tap a padding one), zero point 5
    c.c = 3, c.k = 17, c.padTop = c.padLeft = c.padBottom = c.padRight = 1, c.zp = 5;
    cases.push_back(c);
  }
  {
    I8ConvCase c;  // stride 2, asymmetric pads, zero point 250
    c.n = 2, c.c = 7, c.h = 11, c.w = 10, c.k = 7, c.strideH = c.strideW = 2;
    c.padTop = 2, c.padLeft = 0, c.padBottom = 1, c.padRight = 3, c.zp = 250;
    cases.push_back(c);
  }
  {
    I8ConvCase c;  // 5x5 dilation 2, K = 17 * 25 = 425 (not a multiple of 16)
    c.c = 17, c.h = 12, c.w = 13, c.k = 63, c.r = 5, c.s = 5, c.dilationH = c.dilationW = 2;
    c.padTop = c.padBottom = 4, c.padLeft = c.padRight = 3, c.zp = 77;
    cases.push_back(c);
  }
  {
    I8ConvCase c;  // groups 3, rectangular 3x1, stride (1, 2), 65 output channels over 5 groups
    c.n = 2, c.c = 15, c.k = 65, c.groups = 5, c.r = 3, c.s = 1, c.strideW = 2, c.padTop = 1, c.padBottom = 1;
    cases.push_back(c);
  }
  {
    I8ConvCase c;  // depthwise-like: groups = channels = output channels
    c.c = 7, c.k = 7, c.groups = 7, c.padTop = c.padLeft = c.padBottom = c.padRight = 1, c.zp = 0;
    cases.push_back(c);
  }
  {
    I8ConvCase c;  // 7x7 stride 2 pad 3 with more pixels than one tile (n * oh * ow = 2 * 8 * 8)
    c.n = 2, c.c = 3, c.h = 15, c.w = 16, c.k = 17, c.r = 7, c.s = 7, c.strideH = c.strideW = 2;
    c.padTop = c.padLeft = c.padBottom = c.padRight = 3, c.zp = 200;
    cases.push_back(c);
  }
  for (const I8ConvCase& c : cases) checkConv(*rt_, stream_, c);
}

TEST_F(CudaSimI8Tc, ConvEpilogues) {
  std::vector<std::optional<Activation>> acts = {std::nullopt};
  for (Activation a : kAllActivations) acts.push_back(a);
  int i = 0;
  for (const auto& act : acts) {
    I8ConvCase c;
    c.n = 1 + i % 2, c.c = 4 + i, c.h = 6, c.w = 7, c.k = 9 + 2 * i;
    c.padTop = c.padLeft = i % 2, c.padBottom = c.padRight = 1;
    c.groups = i % 3 == 2 && c.c % 2 == 0 && c.k % 2 == 0 ? 2 : 1;
    c.exact = false;
    c.zp = 90 + 9 * i;
    c.epi.bias = i % 3 != 1;
    c.epi.z = i % 2 == 1;
    c.epi.act = act;
    if (i == 3) c.epi.clipLo = 0.0f, c.epi.clipHi = 0.75f;
    ++i;
    checkConv(*rt_, stream_, c);
  }
}

TEST_F(CudaSimI8Tc, ConvBadDescriptorsAreRejected) {
  void* buf = rt_->allocate(8192);
  char* base = static_cast<char*>(buf);
  rt_->memsetAsync(buf, 0, 8192, stream_);
  Conv2dDesc d;
  d.n = 1, d.c = 2, d.h = 4, d.w = 4, d.k = 2, d.r = 3, d.s = 3;
  d.x = reinterpret_cast<const float*>(base), d.y = reinterpret_cast<float*>(base + 1024);
  const void* w = base + 2048;
  Int8Quant q;
  q.scale = reinterpret_cast<const float*>(base + 4096);
  q.offset = reinterpret_cast<const std::int32_t*>(base + 5120);
  q.xInv = 1.0f, q.xZero = 3;
  EXPECT_NO_THROW(launchConv2dInt8TensorCore(*rt_, stream_, d, w, q));
  rt_->synchronize(stream_);
  auto expectBad = [&](Conv2dDesc bd, const void* bw, Int8Quant bq, const char* what) {
    try {
      launchConv2dInt8TensorCore(*rt_, stream_, bd, bw, bq);
      ADD_FAILURE() << what << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("i8_conv2d_implicit_gemm_wmma"), std::string::npos) << e.what();
    }
  };
  Int8Quant noOffset = q;
  noOffset.offset = nullptr;
  expectBad(d, w, noOffset, "null offset");
  expectBad(d, nullptr, q, "null weight");
  Int8Quant offsetOverY = q;
  offsetOverY.offset = reinterpret_cast<const std::int32_t*>(base + 1024 + 4);
  expectBad(d, w, offsetOverY, "y over the offsets");
  Conv2dDesc groups = d;
  groups.groups = 3;
  expectBad(groups, w, q, "groups not dividing channels");
  Conv2dDesc overlap = d;
  overlap.y = reinterpret_cast<float*>(base + 2048);
  expectBad(overlap, w, q, "y over the weights");
  EXPECT_THROW(launchConv2dTensorCore(*rt_, stream_, d, w, DataType::kI8), Error);
  rt_->free(buf);
}

// Blocks run in parallel on two sim workers (each with its own shared memory and fragment
// memo): still the exact integers.
TEST_F(CudaSimI8Tc, ParallelBlocksGiveTheExactSums) {
  const sim::Options saved = sim::options();
  sim::Options two = saved;
  two.workers = 2;
  sim::setOptions(two);
  I8GemmCase g;
  g.m = 130, g.n = 130, g.k = 70, g.zp = 31;
  checkGemm(*rt_, stream_, g);
  I8ConvCase c;
  c.n = 2, c.c = 6, c.h = 11, c.w = 12, c.k = 70, c.groups = 2, c.zp = 201;
  c.padTop = c.padLeft = c.padBottom = c.padRight = 1;
  checkConv(*rt_, stream_, c);
  sim::setOptions(saved);
}

}  // namespace
}  // namespace anvil::cuda
