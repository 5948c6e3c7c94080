// The tensor-core tactics end to end: a small MLP (MatMul + bias + Relu, then Gemm with a
// transposed weight and a bias) and a small CNN (3x3 and 1x1 convs) cross-built for sm_90 with --fp16 / --bf16 places its linear
// layers on CUDA in that precision (the flag alone, or per layer: --layerPrecisions=*:f16) with the WMMA tactic, and the simulated run stays within
// the precision's rounding of the f32 CPU engine.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "anvil/anvil.hpp"
#include "tests/cuda/small_models.h"

namespace anvil {
namespace {

constexpr int64_t kBatch = 5, kIn = 33, kHidden = 70, kOut = 17;

std::string writeMlp() { return test::writeSmallMlp(kBatch, "mlp", "anvil_cuda_tc_mlp.onnx"); }

std::vector<float> run(const Engine& e, bool simulate) {
  std::unique_ptr<ExecutionContext> ctx;
  ContextOptions o;
  o.simulate = simulate;
  Status s = e.createContext(&ctx, o);
  EXPECT_TRUE(s.isOk()) << s.message();
  if (!s.isOk()) return {};
  std::vector<float> x(size_t(kBatch * kIn)), y(size_t(kBatch * kOut), -7);
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-1, 1);
  for (float& v : x) v = u(rng);
  EXPECT_TRUE(ctx->setTensorAddress("x", x.data()).isOk());
  EXPECT_TRUE(ctx->setTensorAddress("y", y.data()).isOk());
  s = ctx->run();
  EXPECT_TRUE(s.isOk()) << s.message();
  return y;
}

void checkPrecision(bool bf16) {
  const std::string prec = bf16 ? "bf16" : "f16";
  SCOPED_TRACE(prec);
  const std::string onnx = writeMlp();
  BuilderConfig cfg;
  cfg.device = Device::kCUDA;
  cfg.computeCapability = 90;
  cfg.fp16 = !bf16;
  cfg.bf16 = bf16;
  // The flag alone (--fp16 / --bf16): with no GPU to time on, the cross-build's heuristic
  // takes the lowest precision the layer may run in, i.e. the tensor-core tactic.
  // (--layerPrecisions asks it per layer: Fp16ConvsRunOnTensorCores.)
  auto gpu = test::buildEngine(onnx, cfg);
  auto cpu = test::buildEngine(onnx, BuilderConfig{});
  ASSERT_TRUE(gpu && cpu);
  int linear = 0;
  for (const LayerInfo& l : gpu->layers()) {
    if (l.type.find("MatMul") == std::string::npos && l.type.find("Gemm") == std::string::npos) continue;
    ++linear;
    EXPECT_EQ(l.device, "cuda") << l.name;
    EXPECT_EQ(l.precision, prec) << l.name;
    EXPECT_EQ(l.tactic, prec + "_gemm_wmma_64x64x16") << l.name;
  }
  EXPECT_EQ(linear, 2);
  const std::vector<float> y = run(*gpu, true), want = run(*cpu, false);
  ASSERT_EQ(y.size(), want.size());
  // Each layer's products are off by at most 2.0001u|a||b| (operands rounded to the
  // precision, u its unit roundoff): |x| < 1, |w1| < 0.3 over K = 33 bounds layer 1's error by
  // 2.0001u * 33 * 0.3; |h| < 33 * 0.3 + 0.1 = 10 and |w2| < 0.3 over K = 70 bound layer 2's by
  // 2.0001u * 70 * 10 * 0.3 plus layer 1's error carried through w2 (70 * 0.3 times it).
  const double u = bf16 ? 1.0 / 256 : 1.0 / 2048;
  const double e1 = 2.0001 * u * 33 * 0.3;
  const double tol = 2.0001 * u * 70 * 10 * 0.3 + 70 * 0.3 * e1 + 1e-4;
  double worst = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    EXPECT_NEAR(y[i], want[i], tol) << "y[" << i << "]";
    worst = std::max(worst, std::fabs(double(y[i]) - want[i]));
  }
  std::printf("%s MLP: max |sim - f32 cpu| = %.3g (bound %.3g)\n", prec.c_str(), worst, tol);
}

TEST(CudaTensorCoreEngine, Fp16BuildRunsLinearLayersOnTensorCores) { checkPrecision(false); }
TEST(CudaTensorCoreEngine, Bf16BuildRunsLinearLayersOnTensorCores) { checkPrecision(true); }

// x[2,3,9,9] -> Conv 3x3 (20 channels, pad 1) + bias -> Relu -> Conv 1x1 (6 channels) -> y[2,6,9,9].
std::string writeCnn() { return test::writeSmallCnn(2, 20, 6, "cnn", "anvil_cuda_tc_cnn.onnx"); }

TEST(CudaTensorCoreEngine, Fp16ConvsRunOnTensorCores) {
  const std::string onnx = writeCnn();
  BuilderConfig cfg;
  cfg.device = Device::kCUDA;
  cfg.computeCapability = 80;
  cfg.fp16 = true;
  cfg.layerPrecisions["*"] = DataType::kF16;
  auto gpu = test::buildEngine(onnx, cfg);
  auto cpu = test::buildEngine(onnx, BuilderConfig{});
  ASSERT_TRUE(gpu && cpu);
  int convs = 0;
  for (const LayerInfo& l : gpu->layers()) {
    if (l.type.find("Conv") == std::string::npos) continue;
    ++convs;
    EXPECT_EQ(l.device, "cuda") << l.name;
    EXPECT_EQ(l.precision, "f16") << l.name;
    EXPECT_EQ(l.tactic, "f16_conv2d_implicit_gemm_wmma_64x64x16") << l.name;
  }
  EXPECT_EQ(convs, 2);
  auto runOn = [](const Engine& e, bool simulate) {
    std::unique_ptr<ExecutionContext> ctx;
    ContextOptions o;
    o.simulate = simulate;
    EXPECT_TRUE(e.createContext(&ctx, o).isOk());
    std::vector<float> x(2 * 3 * 9 * 9), y(2 * 6 * 9 * 9, -7);
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> u(-1, 1);
    for (float& v : x) v = u(rng);
    EXPECT_TRUE(ctx->setTensorAddress("x", x.data()).isOk());
    EXPECT_TRUE(ctx->setTensorAddress("y", y.data()).isOk());
    const Status s = ctx->run();
    EXPECT_TRUE(s.isOk()) << s.message();
    return y;
  };
  const std::vector<float> y = runOn(*gpu, true), want = runOn(*cpu, false);
  // As checkPrecision's bound: conv1 sums K = 27 products of |x| < 1, |w1| < 0.3; |h| < 8.2;
  // conv2 sums K = 20 of |h| < 8.2, |w2| < 0.3, and carries conv1's error times 20 * 0.3.
  const double u = 1.0 / 2048, e1 = 2.0001 * u * 27 * 0.3;
  const double tol = 2.0001 * u * 20 * 8.2 * 0.3 + 20 * 0.3 * e1 + 1e-4;
  double worst = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    EXPECT_NEAR(y[i], want[i], tol) << "y[" << i << "]";
    worst = std::max(worst, std::fabs(double(y[i]) - want[i]));
  }
  std::printf("f16 CNN: max |sim - f32 cpu| = %.3g (bound %.3g)\n", worst, tol);
}

}  // namespace
}  // namespace anvil
