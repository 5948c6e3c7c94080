// The SIMT GEMM and implicit-GEMM convolution (cuda/kernels/gemm.cuh, conv.cuh) run on the CPU
// through the sim runtime's stream, against double-precision loops: every M/N/K of
// {1, 7, 17, 63, 65, 130} in all four transpose forms, batches, padded and broadcast operands,
// every activation with and without bias and residual, the conv shapes of the zoo (1x1, 3x3,
// strided, dilated, 7x7 stem, depthwise, grouped, asymmetric pads); other tiles and grids give
// the same bits; bad descriptors are rejected.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/kernels/conv.cuh"
#include "cuda/kernels/gemm.cuh"
#include "cuda/arg_pack.h"
#include "cuda/kernels/linear_args.h"
#include "cuda/kernels/registry.h"
#include "cuda/linear.h"
#include "cuda/sim/sim.h"
#include "tests/cuda/linear_test_common.h"
#include "tests/cuda/runtime_test_common.h"

namespace anvil::cuda {
namespace {

using namespace testing;
namespace k = kernels;

// One stream per test, as an engine would use: the launches go through the queue.
class CudaSimLinear : public ::testing::Test {
 protected:
  void SetUp() override {
    rt_ = simRuntime();
    stream_ = rt_->createStream();
  }
  void TearDown() override { rt_->destroyStream(stream_); }
  std::unique_ptr<DeviceRuntime> rt_;
  Stream stream_;
};

TEST_F(CudaSimLinear, GemmShapesAndTransposes) {
  for (const GemmCase& g : gemmShapeCases()) checkGemmOn(*rt_, stream_, g);
}

TEST_F(CudaSimLinear, GemmEpiloguesBatchesAndStrides) {
  for (const GemmCase& g : gemmEpilogueCases()) checkGemmOn(*rt_, stream_, g);
}

TEST_F(CudaSimLinear, GemmF16AndBF16) {
  for (const GemmCase& g : gemmHalfCases()) {
    checkGemmOn<__half>(*rt_, stream_, g);
    checkGemmOn<__nv_bfloat16>(*rt_, stream_, g);
  }
}

TEST_F(CudaSimLinear, ConvShapes) {
  for (const ConvCase& c : convCases()) checkConvOn(*rt_, stream_, c);
}

TEST_F(CudaSimLinear, ConvEpilogues) {
  for (const ConvCase& c : convEpilogueCases()) checkConvOn(*rt_, stream_, c);
}

TEST_F(CudaSimLinear, DefaultStreamToo) {
  GemmCase g;
  g.m = 63, g.n = 65, g.k = 17, g.bias = true, g.act = Activation::kSilu;
  checkGemmOn(*rt_, Stream{}, g);
}

// ---- other tiles and grids: every output is one fmaf chain over k in order, so any tile and
// any grid (blocks striding over what they do not cover) gives the same bits ----

using SmallTile = k::SimtTile<16, 16, 4, 2, 2>;  // 64 threads, one staged element each
using TallTile = k::SimtTile<32, 64, 8, 2, 4>;   // 256 threads, A and B staged unevenly

template <bool TA, bool TB, class Tile>
std::vector<float> gemmDirect(const GemmCase& g, GemmOperands& ops, dim3 grid) {
  std::vector<float> c(ops.want.value.size(), 0.0f);
  const k::GemmArgs args{ops.a.data(), ops.b.data(), g.bias ? ops.bias.data() : nullptr,
                         g.z ? ops.z.data() : nullptr, c.data(), g.batch, g.m, g.n, g.k,
                         ops.lda, ops.ldb, ops.ldc, ops.ldc, ops.strideA, ops.strideB,
                         ops.strideC, ops.strideC, g.alpha, g.beta,
                         g.act ? static_cast<std::int32_t>(*g.act) : k::kNoActivation};
  sim::launch(grid, dim3(Tile::kThreads), 0, &k::gemm_simt<float, TA, TB, Tile>, args);
  return c;
}

template <bool TA, bool TB>
void checkGemmTilesAndGrids(GemmCase g) {
  g.transA = TA, g.transB = TB;
  SCOPED_TRACE(g.describe());
  auto rt = simRuntime();
  std::vector<float> viaRuntime;
  checkGemmOn(*rt, Stream{}, g, &viaRuntime);
  GemmOperands ops(g);
  // The runtime's result has its padding zeroed by checkGemmOn; so has a fresh 0-filled C.
  // One block for everything, some striding, more blocks than tiles (idle ones) in x and z.
  const std::vector<dim3> grids = {dim3(1, 1, 1), dim3(2, 3, 2), dim3(8, 5, 3)};
  for (const dim3& grid : grids) {
    SCOPED_TRACE("grid " + std::to_string(grid.x) + "," + std::to_string(grid.y) + "," +
                 std::to_string(grid.z));
    EXPECT_EQ((gemmDirect<TA, TB, k::GemmTile64x64>(g, ops, grid)), viaRuntime);
    EXPECT_EQ((gemmDirect<TA, TB, SmallTile>(g, ops, grid)), viaRuntime);
    EXPECT_EQ((gemmDirect<TA, TB, TallTile>(g, ops, grid)), viaRuntime);
  }
}

TEST(CudaSimLinearTiles, GemmAnyTileAnyGridSameBits) {
  GemmCase g;
  g.batch = 2, g.m = 70, g.n = 37, g.k = 21, g.bias = true, g.z = true;
  g.act = Activation::kGeluErf;
  checkGemmTilesAndGrids<false, false>(g);
  checkGemmTilesAndGrids<true, false>(g);
  checkGemmTilesAndGrids<false, true>(g);
  checkGemmTilesAndGrids<true, true>(g);
}

template <class Tile>
std::vector<float> convDirect(const ConvCase& cc, ConvOperands& ops, dim3 grid) {
  std::vector<float> y(ops.want.value.size(), 0.0f);
  const k::Conv2dArgs args{ops.x.data(),
                           ops.weight.data(),
                           cc.bias ? ops.bias.data() : nullptr,
                           cc.z ? ops.z.data() : nullptr,
                           y.data(),
                           cc.n,
                           cc.c,
                           cc.h,
                           cc.w,
                           cc.k,
                           cc.r,
                           cc.s,
                           ops.oh,
                           ops.ow,
                           static_cast<std::int32_t>(cc.strideH),
                           static_cast<std::int32_t>(cc.strideW),
                           static_cast<std::int32_t>(cc.padTop),
                           static_cast<std::int32_t>(cc.padLeft),
                           static_cast<std::int32_t>(cc.dilationH),
                           static_cast<std::int32_t>(cc.dilationW),
                           cc.groups,
                           cc.act ? static_cast<std::int32_t>(*cc.act) : k::kNoActivation};
  sim::launch(grid, dim3(Tile::kThreads), 0, &k::f32_conv2d_implicit_gemm<Tile>, args);
  return y;
}

TEST(CudaSimLinearTiles, ConvAnyTileAnyGridSameBits) {
  ConvCase grouped;
  grouped.n = 2, grouped.c = 6, grouped.k = 4, grouped.groups = 2, grouped.h = 7, grouped.w = 9;
  grouped.r = grouped.s = 3, grouped.strideW = 2, grouped.padTop = grouped.padLeft = 1;
  grouped.padBottom = grouped.padRight = 1, grouped.bias = true, grouped.z = true;
  grouped.act = Activation::kSigmoid;
  ConvCase dw;
  dw.n = 1, dw.c = dw.k = dw.groups = 5, dw.h = dw.w = 9, dw.r = dw.s = 5;
  dw.dilationH = dw.dilationW = 2, dw.padTop = dw.padLeft = dw.padBottom = dw.padRight = 4;
  for (const ConvCase& cc : {grouped, dw}) {
    SCOPED_TRACE(cc.describe());
    auto rt = simRuntime();
    std::vector<float> viaRuntime;
    checkConvOn(*rt, Stream{}, cc, &viaRuntime);
    ConvOperands ops(cc);
    for (const dim3& grid : {dim3(1, 1, 1), dim3(3, 1, 2), dim3(40, 2, 7)}) {
      EXPECT_EQ(convDirect<k::GemmTile64x64>(cc, ops, grid), viaRuntime);
      EXPECT_EQ(convDirect<SmallTile>(cc, ops, grid), viaRuntime);
      EXPECT_EQ(convDirect<TallTile>(cc, ops, grid), viaRuntime);
    }
  }
}

TEST(CudaSimLinearTiles, ParallelBlocksGiveTheSameBits) {
  GemmCase g;
  g.m = 130, g.n = 130, g.k = 65, g.bias = true;
  GemmOperands ops(g);
  const std::vector<float> serial =
      gemmDirect<false, false, k::GemmTile64x64>(g, ops, dim3(3, 3));
  const sim::Options saved = sim::options();
  sim::Options two = saved;
  two.workers = 2;
  sim::setOptions(two);
  const std::vector<float> parallel =
      gemmDirect<false, false, k::GemmTile64x64>(g, ops, dim3(3, 3));
  sim::setOptions(saved);
  EXPECT_EQ(serial, parallel);
}

// ---- names and argument checks ----

TEST(CudaSimLinearChecks, KernelNames) {
  EXPECT_EQ(gemmKernelName(false, false), "f32_gemm_simt_64x64x16_4x4_nn");
  EXPECT_EQ(gemmKernelName(true, false), "f32_gemm_simt_64x64x16_4x4_tn");
  EXPECT_EQ(gemmKernelName(false, true), "f32_gemm_simt_64x64x16_4x4_nt");
  EXPECT_EQ(gemmKernelName(false, true, DataType::kBF16), "bf16_gemm_simt_64x64x16_4x4_nt");
  EXPECT_EQ(gemmKernelName(false, false, DataType::kF16), "f16_gemm_simt_64x64x16_4x4_nn");
  EXPECT_EQ(conv2dKernelName(), "f32_conv2d_implicit_gemm_64x64x16_4x4");
}

// Registered under the launchers' names with the launchers' pack sizes (no GPU needed).
TEST(CudaSimLinearChecks, EveryKernelIsRegistered) {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const kernels::KernelEntry* e = kernels::findSimKernel(gemmKernelName(ta, tb));
      ASSERT_NE(e, nullptr) << gemmKernelName(ta, tb);
      EXPECT_EQ(e->argBytes, sizeof(ArgPack<kernels::GemmArgsOf<float>>));
    }
  }
  for (DataType t : {DataType::kF16, DataType::kBF16}) {
    for (bool tb : {false, true}) {
      const kernels::KernelEntry* e = kernels::findSimKernel(gemmKernelName(false, tb, t));
      ASSERT_NE(e, nullptr) << gemmKernelName(false, tb, t);
      EXPECT_EQ(e->argBytes, sizeof(ArgPack<kernels::GemmArgsOf<__half>>));
    }
    EXPECT_EQ(kernels::findSimKernel(gemmKernelName(true, false, t)), nullptr);
  }
  const kernels::KernelEntry* conv = kernels::findSimKernel(conv2dKernelName());
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(conv->argBytes, sizeof(ArgPack<kernels::Conv2dArgs>));
}

TEST(CudaSimLinearChecks, BadGemmDescriptorsAreRejected) {
  auto rt = simRuntime();
  float* buf = static_cast<float*>(rt->allocate(4096 * sizeof(float)));
  float* out = static_cast<float*>(rt->allocate(4096 * sizeof(float)));
  const GemmDesc good = GemmDesc::packed(2, 8, 9, 10, false, false, buf, buf + 1000, out);
  EXPECT_NO_THROW(launchGemm(*rt, Stream{}, good));
  auto bad = [&](auto edit, const std::string& fragment) {
    GemmDesc d = good;
    edit(d);
    expectError([&] { launchGemm(*rt, Stream{}, d); }, ErrorCode::kInvalidArgument, fragment);
  };
  const std::string name = "f32_gemm_simt_64x64x16_4x4_nn: ";
  bad([](GemmDesc& d) { d.m = -1; }, name + "m -1 is negative");
  bad([](GemmDesc& d) { d.lda = 9; }, name + "lda 9 is below A's 10 stored columns");
  bad([](GemmDesc& d) { d.ldb = 8; }, "ldb 8 is below B's 9");
  bad([](GemmDesc& d) { d.ldc = 3; }, "ldc 3 is below n = 9");
  bad([](GemmDesc& d) { d.strideC = 10; }, "strideC 10 makes the batches of C overlap");
  bad([](GemmDesc& d) { d.a = nullptr; }, "null A for k = 10");
  bad([](GemmDesc& d) { d.c = nullptr; }, "null output C");
  bad([&](GemmDesc& d) { d.c = buf + 1050; }, "output C overlaps input B");
  bad([&](GemmDesc& d) { d.z = out + 1; }, "C and Z overlap");
  bad([](GemmDesc& d) { d.activation = static_cast<Activation>(42); }, "unknown activation 42");
  bad([](GemmDesc& d) { d.strideA = -5; }, "strideA -5 is negative");
  bad([](GemmDesc& d) { d.batch = std::int64_t{1} << 40; }, "more than can be addressed");
  bad([](GemmDesc& d) { d.dtype = DataType::kI8; }, "launchGemm: unsupported element type i8");
  {
    GemmDesc d = good;
    d.dtype = DataType::kF16;
    d.transA = true;
    d.lda = d.m;
    expectError([&] { launchGemm(*rt, Stream{}, d); }, ErrorCode::kUnsupported,
                "f16_gemm_simt_64x64x16_4x4_tn: no such kernel; f16 GEMMs exist with A as used");
    d.transA = false;
    d.lda = d.k;
    EXPECT_NO_THROW(launchGemm(*rt, Stream{}, d));
  }
  // The sim runtime catches what the launcher cannot know: an operand past its allocation.
  GemmDesc past = good;
  past.b = buf + 4000;
  expectError([&] { launchGemm(*rt, Stream{}, past); }, ErrorCode::kInvalidArgument, "B");
  // Empty outputs launch nothing, even with null pointers; in-place Z is fine.
  GemmDesc empty;
  empty.m = 0, empty.n = 5, empty.k = 3;
  EXPECT_NO_THROW(launchGemm(*rt, Stream{}, empty));
  GemmDesc inPlace = good;
  inPlace.z = out;
  EXPECT_NO_THROW(launchGemm(*rt, Stream{}, inPlace));
  rt->synchronizeDevice();
  rt->free(buf);
  rt->free(out);
}

TEST(CudaSimLinearChecks, BadConvDescriptorsAreRejected) {
  auto rt = simRuntime();
  float* buf = static_cast<float*>(rt->allocate(4096 * sizeof(float)));
  float* out = static_cast<float*>(rt->allocate(4096 * sizeof(float)));
  ConvCase cc;
  cc.n = 2, cc.c = 4, cc.h = cc.w = 6, cc.k = 6, cc.r = cc.s = 3, cc.groups = 2;
  Conv2dDesc good = cc.desc();
  good.x = buf;
  good.weight = buf + 2000;
  good.y = out;
  EXPECT_NO_THROW(launchConv2d(*rt, Stream{}, good));
  auto bad = [&](auto edit, const std::string& fragment) {
    Conv2dDesc d = good;
    edit(d);
    expectError([&] { launchConv2d(*rt, Stream{}, d); }, ErrorCode::kInvalidArgument, fragment);
  };
  const std::string name = "f32_conv2d_implicit_gemm_64x64x16_4x4: ";
  bad([](Conv2dDesc& d) { d.groups = 3; }, name + "groups 3 does not divide input channels 4");
  bad([](Conv2dDesc& d) { d.strideH = 0; }, "strideH 0 is not positive");
  bad([](Conv2dDesc& d) { d.padLeft = -1; }, "padLeft -1 is negative");
  bad([](Conv2dDesc& d) { d.r = 9; }, "output -2 x 4 is empty");
  bad([](Conv2dDesc& d) { d.weight = nullptr; }, "null weight");
  bad([&](Conv2dDesc& d) { d.y = buf + 10; }, "output y overlaps input x");
  bad([&](Conv2dDesc& d) { d.z = out + 3; }, "y and z overlap");
  bad([](Conv2dDesc& d) { d.h = std::int64_t{1} << 32; }, "32-bit index math");
  Conv2dDesc inPlace = good;
  inPlace.z = out;
  EXPECT_NO_THROW(launchConv2d(*rt, Stream{}, inPlace));
  rt->synchronizeDevice();
  rt->free(buf);
  rt->free(out);
}

}  // namespace
}  // namespace anvil::cuda
