// The INT8 tensor-core tactics end to end: a small MLP (MatMul + bias + Relu, then Gemm with a
// transposed weight and a bias) and a small CNN (3x3 conv with padding and bias + Relu, then a
// 1x1 conv) calibrated on the same samples (--calibData) and cross-built for sm_90 with --int8
// put their linear layers on CUDA in INT8 with the WMMA tactic (untimed: the heuristic takes the
// lowest allowed precision); the simulated run is compared with the CPU INT8 engine of the same
// model and calibration (--int8 --layerPrecisions=*:int8) and with the f32 engine.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "anvil/anvil.hpp"
#include "tests/cuda/small_models.h"
#include "tests/onnx_writer.h"

namespace fs = std::filesystem;

namespace anvil {
namespace {

// x[4,33] -> MatMul -> Add -> Relu -> Gemm -> y[4,17] (tests/cuda/small_models.h).
std::string writeMlp() { return test::writeSmallMlp(4, "mlp_i8", "anvil_cuda_i8_mlp.onnx"); }

// x[2,3,9,9] -> Conv 3x3 (20 channels, pad 1) + bias -> Relu -> Conv 1x1 (6 channels) -> y[2,6,9,9].
std::string writeCnn() { return test::writeSmallCnn(2, 20, 6, "cnn_i8", "anvil_cuda_i8_cnn.onnx"); }

std::vector<float> samples(int64_t n, uint32_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  for (float& x : v) x = u(rng);
  return v;
}

// A directory holding x.npy: `count` batches of `dims` stacked on axis 0 (--calibData's format).
std::string writeCalibration(const char* name, std::vector<int64_t> dims, int count) {
  const fs::path dir = fs::temp_directory_path() / name;
  fs::create_directories(dir);
  int64_t per = 1;
  for (int64_t d : dims) per *= d;
  dims[0] *= count;
  std::string shape = "(";
  for (int64_t d : dims) shape += std::to_string(d) + ", ";
  shape += ")";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream f(dir / "x.npy", std::ios::binary);
  f.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = uint16_t(header.size());
  f.write(reinterpret_cast<const char*>(&len), 2);
  f << header;
  const std::vector<float> v = samples(per * count, 77);
  f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * 4));
  return dir.string();
}

std::vector<float> run(const Engine& e, bool simulate, const std::vector<float>& x, size_t outSize) {
  std::unique_ptr<ExecutionContext> ctx;
  ContextOptions o;
  o.simulate = simulate;
  Status s = e.createContext(&ctx, o);
  EXPECT_TRUE(s.isOk()) << s.message();
  if (!s.isOk()) return {};
  std::vector<float> in = x, y(outSize, -7);
  EXPECT_TRUE(ctx->setTensorAddress("x", in.data()).isOk());
  EXPECT_TRUE(ctx->setTensorAddress("y", y.data()).isOk());
  s = ctx->run();
  EXPECT_TRUE(s.isOk()) << s.message();
  return y;
}

double maxDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

// Builds the model three ways (CUDA --int8 cross-built for sm_90, CPU --int8, CPU f32) and
// checks the CUDA engine's layers and its simulated outputs on held-out inputs.
// `hiddenStep` bounds the output change one quantization step of every hidden activation of a
// row could make (see the comment at the check).
void checkInt8(const std::string& onnx, const char* calibName, const std::vector<int64_t>& xDims, size_t outSize,
               int wantLinear, double hiddenStep) {
  const std::string calib = writeCalibration(calibName, xDims, 8);
  BuilderConfig gpuCfg;
  gpuCfg.device = Device::kCUDA;
  gpuCfg.computeCapability = 90;
  gpuCfg.int8 = true;
  gpuCfg.calibrationData = calib;
  // The CPU builder times every allowed precision and keeps the fastest (f32 for layers this
  // small): INT8 asked per layer, so that its engine computes what the GPU's does.
  BuilderConfig cpuCfg;
  cpuCfg.int8 = true;
  cpuCfg.calibrationData = calib;
  cpuCfg.layerPrecisions["*"] = DataType::kI8;
  auto gpu = test::buildEngine(onnx, gpuCfg);
  auto cpuI8 = test::buildEngine(onnx, cpuCfg);
  auto cpuF32 = test::buildEngine(onnx, BuilderConfig{});
  ASSERT_TRUE(gpu && cpuI8 && cpuF32);
  int linear = 0;
  for (const LayerInfo& l : gpu->layers()) {
    const bool conv = l.type.find("Conv") != std::string::npos;
    if (!conv && l.type.find("MatMul") == std::string::npos && l.type.find("Gemm") == std::string::npos) continue;
    ++linear;
    EXPECT_EQ(l.device, "cuda") << l.name;
    EXPECT_EQ(l.precision, "i8") << l.name;
    EXPECT_EQ(l.tactic, conv ? "i8_conv2d_implicit_gemm_wmma_64x64x16" : "i8_gemm_wmma_64x64x16") << l.name;
    EXPECT_TRUE(l.untimed) << l.name;
  }
  EXPECT_EQ(linear, wantLinear);
  int cpuInt8 = 0;
  for (const LayerInfo& l : cpuI8->layers()) cpuInt8 += l.precision == "i8";
  EXPECT_EQ(cpuInt8, wantLinear) << "the CPU --int8 engine quantizes the same layers";

  int64_t per = 1;
  for (int64_t d : xDims) per *= d;
  for (uint32_t seed : {101u, 202u}) {
    const std::vector<float> x = samples(per, seed);
    const std::vector<float> y = run(*gpu, true, x, outSize), yI8 = run(*cpuI8, false, x, outSize),
                             yF32 = run(*cpuF32, false, x, outSize);
    ASSERT_EQ(y.size(), outSize);
    // Both devices quantize with the same grids and the same f32 steps (quantizer, exact
    // integer sums, float(sum - z * colsum) * (s_x * s_w), bias), so their outputs agree up to
    // f32 rounding differences in the hidden layer's epilogue (the CPU's vector epilogue may
    // contract or reorder an add): such a difference can move a hidden activation across a
    // rounding boundary of the next layer's grid, one step. The bound is one step of every
    // hidden activation of a row times the row's weights — hiddenStep, computed by the caller.
    const double gpuCpu = maxDiff(y, yI8), cpuErr = maxDiff(yI8, yF32), gpuErr = maxDiff(y, yF32);
    EXPECT_LE(gpuCpu, hiddenStep);
    // Against f32: the GPU's INT8 error is the CPU's, within the same bound.
    EXPECT_LE(gpuErr, cpuErr + hiddenStep);
    double scale = 0;
    for (float v : yF32) scale = std::max(scale, double(std::fabs(v)));
    std::printf("%s seed %u: max |cuda i8 - cpu i8| = %.3g, |cuda i8 - f32| = %.3g, |cpu i8 - f32| = %.3g (max |y| %.3g, "
                "bound %.3g)\n",
                calibName, seed, gpuCpu, gpuErr, cpuErr, scale, hiddenStep);
  }
}

TEST(CudaInt8Engine, MlpRunsOnInt8TensorCores) {
  // The hidden layer h (70 values per row) is at most 33 * 0.3 + 0.1 = 10; its grid step is at
  // most 10 / 255. One step on each of the 70 values, times |w2| < 0.3: 70 * 0.3 * 10 / 255.
  checkInt8(writeMlp(), "anvil_cuda_i8_mlp_calib", {4, 33}, 4 * 17, 2, 70 * 0.3 * 10.0 / 255);
}

TEST(CudaInt8Engine, ConvNetRunsOnInt8TensorCores) {
  // h = relu(conv1) is at most 27 * 0.3 + 0.1 = 8.2, grid step <= 8.2 / 255; conv2 reads 20
  // of them with |w2| < 0.3.
  checkInt8(writeCnn(), "anvil_cuda_i8_cnn_calib", {2, 3, 9, 9}, 2 * 6 * 9 * 9, 2, 20 * 0.3 * 8.2 / 255);
}

// --precision=auto on a cross-build: the builder verifies its choice by running the engine on
// held-out calibration batches, which for a CUDA engine with no GPU of its target here runs on
// the simulator. A loose tolerance keeps the layers at INT8 (the cheapest rung).
TEST(CudaInt8Engine, AutomaticPrecisionVerifiesOnTheSimulator) {
  BuilderConfig cfg;
  cfg.device = Device::kCUDA;
  cfg.computeCapability = 90;
  cfg.int8 = true;
  cfg.autoPrecision = true;
  cfg.accuracyTolerance = 0.5;
  cfg.calibrationData = writeCalibration("anvil_cuda_i8_cnn_auto", {2, 3, 9, 9}, 8);
  std::string bytes;
  BuildReport r;
  const Status s = Builder::buildFromOnnx(writeCnn(), cfg, &bytes, &r);
  ASSERT_TRUE(s.isOk()) << s.message();
  EXPECT_GE(r.verificationRounds, 1);
  EXPECT_GE(r.measuredError, 0.0);
  EXPECT_LE(r.measuredError, cfg.accuracyTolerance);
  std::printf("auto: verified error %.3g in %d round(s)\n", r.measuredError, r.verificationRounds);
  std::shared_ptr<Engine> e;
  ASSERT_TRUE(Engine::fromBytes(std::move(bytes), &e).isOk());
  int i8 = 0;
  for (const LayerInfo& l : e->layers())
    if (l.type.find("Conv") != std::string::npos) {
      EXPECT_EQ(l.device, "cuda") << l.name;
      i8 += l.precision == "i8" && l.tactic == "i8_conv2d_implicit_gemm_wmma_64x64x16";
    }
  EXPECT_EQ(i8, 2);
}

// A Q/DQ model (explicit quantization, as onnxruntime's quantizer writes it): x -> Q/DQ (u8,
// zero point 120) -> Conv with a DequantizeLinear'd s8 weight (per output channel scales) and
// s32 bias -> Q/DQ (u8, zero point 0: the Relu) -> Conv 1x1 (per-channel s8 weight) -> y. Its layers compute in INT8 by
// the model's word; the CUDA engine runs them on the INT8 tensor cores with the model's grids
// and weight scales.
std::string writeQdqCnn() {
  test::OnnxWriter w("cnn_qdq");
  onnx::GraphProto* g = w.graph();
  w.input("x", {2, 3, 9, 9});
  w.output("y", {2, 6, 9, 9});
  auto scalar = [&](const std::string& name, int type, double v) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    if (type == onnx::TensorProto::FLOAT) t->add_float_data(float(v));
    else t->add_int32_data(int(v));
  };
  // An s8 weight [k, c, r, s] with per-channel scales 2^-(5 + o % 3) and its DequantizeLinear.
  auto qweight = [&](const std::string& name, std::vector<int64_t> dims, uint32_t seed) {
    auto* t = g->add_initializer();
    t->set_name(name + "_q");
    t->set_data_type(onnx::TensorProto::INT8);
    int64_t n = 1;
    for (int64_t d : dims) t->add_dims(d), n *= d;
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> q(-127, 127);
    for (int64_t i = 0; i < n; ++i) t->add_int32_data(q(rng));
    auto* sc = g->add_initializer();
    sc->set_name(name + "_scale");
    sc->set_data_type(onnx::TensorProto::FLOAT);
    sc->add_dims(dims[0]);
    for (int64_t o = 0; o < dims[0]; ++o) sc->add_float_data(std::ldexp(1.0f, -int(5 + o % 3)));
    auto* zp = g->add_initializer();  // s8 zeros: an absent zero point would make the weights u8
    zp->set_name(name + "_zero");
    zp->set_data_type(onnx::TensorProto::INT8);
    zp->add_dims(dims[0]);
    for (int64_t o = 0; o < dims[0]; ++o) zp->add_int32_data(0);
    test::OnnxWriter::attr(w.node("DequantizeLinear", name + "_dq", {name + "_q", name + "_scale", name + "_zero"}, name),
                           "axis", 0);
  };
  scalar("sx", onnx::TensorProto::FLOAT, 1.0 / 128);
  scalar("zx", onnx::TensorProto::UINT8, 120);
  scalar("sh", onnx::TensorProto::FLOAT, 1.0 / 32);
  scalar("zh", onnx::TensorProto::UINT8, 0);
  qweight("w1", {20, 3, 3, 3}, 21);
  qweight("w2", {6, 20, 1, 1}, 22);
  {  // the bias as the quantizer writes it: s32 on the grid s_x * s_w[o]
    auto* b = g->add_initializer();
    b->set_name("b1_q");
    b->set_data_type(onnx::TensorProto::INT32);
    b->add_dims(20);
    auto* bs = g->add_initializer();
    bs->set_name("b1_scale");
    bs->set_data_type(onnx::TensorProto::FLOAT);
    bs->add_dims(20);
    std::mt19937 rng(23);
    for (int o = 0; o < 20; ++o) {
      b->add_int32_data(std::uniform_int_distribution<int>(-400, 400)(rng));
      bs->add_float_data(std::ldexp(1.0f, -int(5 + o % 3)) / 128);
    }
    test::OnnxWriter::attr(w.node("DequantizeLinear", "b1_dq", {"b1_q", "b1_scale"}, "b1"), "axis", 0);
  }
  w.node("QuantizeLinear", "qx", {"x", "sx", "zx"}, "xq");
  w.node("DequantizeLinear", "dqx", {"xq", "sx", "zx"}, "xd");
  test::OnnxWriter::attr(w.node("Conv", "conv1", {"xd", "w1", "b1"}, "h0"), "pads", std::vector<int64_t>{1, 1, 1, 1});
  // No Relu: the u8 grid of zero point 0 clamps negatives to 0, as onnxruntime's quantizer
  // folds a Relu into the following QuantizeLinear.
  w.node("QuantizeLinear", "qh", {"h0", "sh", "zh"}, "hq");
  w.node("DequantizeLinear", "dqh", {"hq", "sh", "zh"}, "hd");
  w.node("Conv", "conv2", {"hd", "w2"}, "y");
  return w.save("anvil_cuda_i8_cnn_qdq.onnx");
}

TEST(CudaInt8Engine, QdqModelRunsOnInt8TensorCores) {
  const std::string onnx = writeQdqCnn();
  BuilderConfig cfg;
  cfg.device = Device::kCUDA;
  cfg.computeCapability = 90;
  auto gpu = test::buildEngine(onnx, cfg);
  auto cpu = test::buildEngine(onnx, BuilderConfig{});
  ASSERT_TRUE(gpu && cpu);
  int convs = 0;
  for (const LayerInfo& l : gpu->layers()) {
    if (l.type.find("Conv") == std::string::npos) continue;
    ++convs;
    EXPECT_EQ(l.device, "cuda") << l.name;
    EXPECT_EQ(l.precision, "i8") << l.name;
    EXPECT_EQ(l.precisionReason, "model") << l.name;
    EXPECT_EQ(l.tactic, "i8_conv2d_implicit_gemm_wmma_64x64x16") << l.name;
  }
  EXPECT_EQ(convs, 2);
  for (uint32_t seed : {5u, 6u}) {
    const std::vector<float> x = samples(2 * 3 * 9 * 9, seed);
    const std::vector<float> y = run(*gpu, true, x, 2 * 6 * 9 * 9), want = run(*cpu, false, x, 2 * 6 * 9 * 9);
    // The model fixes every grid, and both devices compute its integers with the same f32
    // steps: at most a rounding of h onto its grid could differ, one step of sh = 1/32 on the
    // 20 inputs of conv2 times its largest weight (127 * 2^-5).
    const double bound = 20 * (1.0 / 32) * 127 * std::ldexp(1.0, -5);
    const double d = maxDiff(y, want);
    EXPECT_LE(d, bound);
    std::printf("Q/DQ CNN seed %u: max |cuda i8 - cpu i8| = %.3g (bound %.3g)\n", seed, d, bound);
  }
}

}  // namespace
}  // namespace anvil
