// The SIMT GEMM and implicit-GEMM convolution, and the INT8 tensor-core ones, on a GPU through
// the real runtime: the same cases and reference loops as the sim tests (linear_test_common.h,
// linear_i8_test_common.h), skipped with "no CUDA device" where there is none. The device's expf/erfcf/tanhf are within a few ulp of
// the host's, well inside the 1e-5 relative part of the bound.
#include <gtest/gtest.h>

#include <memory>

#include "cuda/device.h"
#include "cuda/arg_pack.h"
#include "cuda/kernels/linear_args.h"
#include "cuda/kernels/gemm_tc_args.h"
#include "cuda/kernels/registry.h"
#include "cuda/linear.h"
#include "tests/cuda/linear_i8_test_common.h"
#include "tests/cuda/linear_test_common.h"

namespace anvil::cuda {
namespace {

using namespace testing;

std::unique_ptr<DeviceRuntime> gpuRuntime() {
  return deviceCount() == 0 ? nullptr : cudaRuntime(0);
}

#define GPU_RUNTIME_OR_SKIP(rt) \
  auto rt = gpuRuntime();       \
  if (!rt) GTEST_SKIP() << "no CUDA device"

TEST(CudaDeviceLinear, KernelNames) {
  EXPECT_EQ(gemmKernelName(true, true), "f32_gemm_simt_64x64x16_4x4_tt");
  EXPECT_EQ(conv2dKernelName(), "f32_conv2d_implicit_gemm_64x64x16_4x4");
}

// Registered under the launchers' names with the launchers' pack sizes (no GPU needed).
TEST(CudaDeviceLinear, EveryKernelIsRegistered) {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const kernels::KernelEntry* e = kernels::findDeviceKernel(gemmKernelName(ta, tb));
      ASSERT_NE(e, nullptr) << gemmKernelName(ta, tb);
      EXPECT_EQ(e->argBytes, sizeof(ArgPack<kernels::GemmArgsOf<float>>));
    }
  }
  for (DataType t : {DataType::kF16, DataType::kBF16}) {
    for (bool tb : {false, true}) {
      const kernels::KernelEntry* e = kernels::findDeviceKernel(gemmKernelName(false, tb, t));
      ASSERT_NE(e, nullptr) << gemmKernelName(false, tb, t);
      EXPECT_EQ(e->argBytes, sizeof(ArgPack<kernels::GemmArgsOf<__half>>));
    }
    EXPECT_EQ(kernels::findDeviceKernel(gemmKernelName(true, false, t)), nullptr);
  }
  const kernels::KernelEntry* conv = kernels::findDeviceKernel(conv2dKernelName());
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(conv->argBytes, sizeof(ArgPack<kernels::Conv2dArgs>));
}

// The INT8 tensor-core kernels are registered under the launchers' names with their pack sizes.
TEST(CudaDeviceLinear, Int8TensorCoreKernelsAreRegistered) {
  const kernels::KernelEntry* gemm = kernels::findDeviceKernel(gemmTensorCoreKernelName(DataType::kI8));
  ASSERT_NE(gemm, nullptr);
  EXPECT_EQ(gemm->argBytes, sizeof(ArgPack<kernels::GemmI8Args>));
  const kernels::KernelEntry* conv = kernels::findDeviceKernel(conv2dTensorCoreKernelName(DataType::kI8));
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(conv->argBytes, sizeof(ArgPack<kernels::Conv2dI8Args>));
}

// The INT8 tensor cores on a GPU: exact integer sums (odd shapes, saturation), the epilogues,
// and convolutions with padding taps, against the same integer references as the sim.
TEST(CudaDeviceLinear, Int8TensorCores) {
  GPU_RUNTIME_OR_SKIP(rt);
  const Stream s = rt->createStream();
  for (std::int64_t m : {1, 17, 130})
    for (std::int64_t k : {7, 33, 1031}) {
      I8GemmCase g;
      g.m = m, g.n = 150 - m, g.k = k, g.zp = int(k % 200);
      checkGemm(*rt, s, g, true);
      g.inputs = 1, g.weights = 1;
      checkGemm(*rt, s, g, true);
    }
  int i = 0;
  for (Activation a : kAllActivations) {
    I8GemmCase g;
    g.batch = 2, g.m = 65, g.n = 70, g.k = 100, g.exact = false, g.zp = 10 + 20 * i++;
    g.epi.bias = true, g.epi.z = i % 2 == 0, g.epi.act = a;
    checkGemm(*rt, s, g, true);
  }
  I8ConvCase c;
  c.n = 2, c.c = 17, c.h = 14, c.w = 13, c.k = 65, c.r = 3, c.s = 3, c.zp = 9;
  c.padTop = c.padLeft = c.padBottom = c.padRight = 1;
  checkConv(*rt, s, c, true);
  c.groups = 5, c.c = 15, c.strideH = c.strideW = 2, c.exact = false, c.epi.bias = true, c.epi.act = Activation::kRelu;
  checkConv(*rt, s, c, true);
  rt->destroyStream(s);
}

TEST(CudaDeviceLinear, GemmShapesAndTransposes) {
  GPU_RUNTIME_OR_SKIP(rt);
  const Stream s = rt->createStream();
  for (const GemmCase& g : gemmShapeCases()) checkGemmOn(*rt, s, g);
  rt->destroyStream(s);
}

TEST(CudaDeviceLinear, GemmEpiloguesBatchesAndStrides) {
  GPU_RUNTIME_OR_SKIP(rt);
  const Stream s = rt->createStream();
  for (const GemmCase& g : gemmEpilogueCases()) checkGemmOn(*rt, s, g);
  rt->destroyStream(s);
}

TEST(CudaDeviceLinear, GemmF16AndBF16) {
  GPU_RUNTIME_OR_SKIP(rt);
  for (const GemmCase& g : gemmHalfCases()) {
    checkGemmOn<__half>(*rt, Stream{}, g);
    checkGemmOn<__nv_bfloat16>(*rt, Stream{}, g);
  }
}

TEST(CudaDeviceLinear, GemmLarge) {
  // Past the grid's one-wave size and through many k steps.
  GPU_RUNTIME_OR_SKIP(rt);
  GemmCase g;
  g.batch = 2, g.m = 1000, g.n = 777, g.k = 513, g.bias = true, g.z = true;
  g.act = Activation::kGeluErf;
  checkGemmOn(*rt, Stream{}, g);
}

TEST(CudaDeviceLinear, ConvShapes) {
  GPU_RUNTIME_OR_SKIP(rt);
  const Stream s = rt->createStream();
  for (const ConvCase& c : convCases()) checkConvOn(*rt, s, c);
  for (const ConvCase& c : convEpilogueCases()) checkConvOn(*rt, s, c);
  rt->destroyStream(s);
}

TEST(CudaDeviceLinear, ConvResNetLayer) {
  GPU_RUNTIME_OR_SKIP(rt);
  ConvCase c;
  c.n = 2, c.c = 64, c.h = c.w = 56, c.k = 64, c.r = c.s = 3;
  c.padTop = c.padLeft = c.padBottom = c.padRight = 1;
  c.bias = true, c.z = true, c.zInPlace = true, c.act = Activation::kRelu;
  checkConvOn(*rt, Stream{}, c);
}

}  // namespace
}  // namespace anvil::cuda
