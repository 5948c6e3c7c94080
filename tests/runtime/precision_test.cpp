// Precision selection: the histogram and calibrators, the calibration cache, the condition
// estimates on hand-computed layers (codegen/calibration.h), and the precision pass
// (passes/precision.h): overrides, quantization of INT8 inputs, and the automatic choice
// keeping a badly conditioned layer high while the others go low.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "anvil/anvil.hpp"
#include "codegen/calibration.h"
#include "cpu/reference.h"
#include "ir/ops/anvil_linear.h"
#include "ir/op_schema.h"
#include "passes/passes.h"
#include "passes/precision.h"

namespace {

using anvil::codegen::Calibrator;
using anvil::codegen::Histogram;
using anvil::ir::DataType;
using anvil::ir::Graph;
using anvil::ir::Node;
using anvil::ir::Shape;
using anvil::ir::Tensor;
using anvil::ir::Value;
namespace codegen = anvil::codegen;
namespace passes = anvil::passes;

TEST(Calibration, HistogramKeepsCountsWhenItGrows) {
  Histogram h;
  std::vector<float> a = {0.5f, -0.25f, 0.0f, 1.0f};
  h.add(a.data(), int64_t(a.size()));
  std::vector<float> b = {10.0f, -3.0f, std::nanf(""), INFINITY};
  h.add(b.data(), int64_t(b.size()));
  EXPECT_EQ(h.count(), 6u);
  EXPECT_EQ(h.nonFinite(), 2u);
  EXPECT_EQ(h.min(), -3.0f);
  EXPECT_EQ(h.max(), 10.0f);
  double total = 0;
  for (double c : h.bins()) total += c;
  EXPECT_NEAR(total, 6.0, 1e-9);
  EXPECT_GE(h.binWidth() * Histogram::kBins, 10.0);
}

TEST(Calibration, MinMaxIsTheObservedRangeWithZero) {
  Histogram h;
  std::vector<float> x = {0.5f, 2.0f, 1.5f};
  h.add(x.data(), 3);
  const auto r = codegen::calibrate(h, Calibrator::kMinMax);
  EXPECT_EQ(r.lo, 0.5f);  // clipped() keeps the observed min; quantizationU8 adds 0
  EXPECT_EQ(r.hi, 2.0f);
  const anvil::ir::Quantization q = passes::quantizationU8(r);
  EXPECT_FLOAT_EQ(q.scale.data<float>()[0], 2.0f / 255.0f);
  EXPECT_EQ(q.zeroPoint.data<uint8_t>()[0], 0);
}

TEST(Calibration, QuantizationU8RepresentsZeroExactly) {
  const anvil::ir::Quantization q = passes::quantizationU8({-1.0f, 3.0f});
  const float s = q.scale.data<float>()[0];
  const int zp = q.zeroPoint.data<uint8_t>()[0];
  EXPECT_FLOAT_EQ(s, 4.0f / 255.0f);
  EXPECT_EQ(zp, 64);  // round(1 / (4/255)) = round(63.75)
  const auto empty = passes::quantizationU8({0.0f, 0.0f});
  EXPECT_EQ(empty.scale.data<float>()[0], 1.0f);
}

TEST(Calibration, PercentileAndEntropyClipOutliers) {
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(200000);
  for (float& v : x) v = d(rng);
  x[0] = 100.0f;  // a few far outliers
  x[1] = -80.0f;
  x[2] = 95.0f;
  Histogram h;
  h.add(x.data(), int64_t(x.size()));
  const auto mm = codegen::calibrate(h, Calibrator::kMinMax);
  EXPECT_EQ(mm.hi, 100.0f);
  EXPECT_EQ(mm.lo, -80.0f);
  // 99.99% of |x| of a standard normal lies below ~3.9; the outliers are 3 in 200000.
  const auto p = codegen::calibrate(h, Calibrator::kPercentile, 99.99);
  EXPECT_GT(p.hi, 3.0f);
  EXPECT_LT(p.hi, 5.0f);
  EXPECT_EQ(p.lo, -p.hi);
  const auto e = codegen::calibrate(h, Calibrator::kEntropy);
  EXPECT_GT(e.hi, 1.5f);
  EXPECT_LT(e.hi, 20.0f);  // far below the outliers
  EXPECT_EQ(e.lo, -e.hi);
}

TEST(Calibration, EntropyOfNonNegativeDataUsesItsWholeRange) {
  // Uniform on [0, 4]: nothing to clip, the threshold stays near the top.
  std::vector<float> x(100000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 4.0f * float(i) / float(x.size());
  Histogram h;
  h.add(x.data(), int64_t(x.size()));
  const auto e = codegen::calibrate(h, Calibrator::kEntropy);
  EXPECT_EQ(e.lo, 0.0f);
  EXPECT_GT(e.hi, 3.5f);
  EXPECT_LE(e.hi, 4.0f);
}

TEST(Calibration, CacheRoundTripsAndReadsTensorRtCaches) {
  passes::CalibrationData d;
  d.method = "entropy";
  d.ranges["conv1 out"] = {-1.5f, 2.25f};
  d.ranges["/layer1/Relu_output_0"] = {0.0f, 6.0f};
  const std::string text = codegen::writeCalibrationCache(d);
  EXPECT_EQ(text.rfind("anvil-calibration-1 entropy\n", 0), 0u);
  const passes::CalibrationData back = codegen::readCalibrationCache(text);
  EXPECT_EQ(back.method, "entropy");
  ASSERT_EQ(back.ranges.size(), 2u);
  EXPECT_EQ(back.ranges.at("conv1 out").lo, -1.5f);
  EXPECT_EQ(back.ranges.at("conv1 out").hi, 2.25f);
  EXPECT_EQ(back.ranges.at("/layer1/Relu_output_0").hi, 6.0f);
  // TensorRT: "name: <scale as hex bits>", symmetric int8 (amax = 127 * scale).
  const passes::CalibrationData trt = codegen::readCalibrationCache("TRT-8601-EntropyCalibration2\ninput: 3c010204\n");
  float s;
  const uint32_t bits = 0x3c010204u;
  std::memcpy(&s, &bits, 4);
  EXPECT_FLOAT_EQ(trt.ranges.at("input").hi, 127.0f * s);
  EXPECT_FLOAT_EQ(trt.ranges.at("input").lo, -127.0f * s);
  for (const char* bad : {"", "not a cache\n", "anvil-calibration-1 minmax\nx: 3f800000 00000000\n",
                          "anvil-calibration-1 minmax\nx: 7f800000 7f800000\n",
                          "anvil-calibration-1 minmax\nx 00000000 3f800000\n", "anvil-calibration-1 minmax\nx: zz yy\n"})
    EXPECT_THROW(codegen::readCalibrationCache(bad), anvil::Error) << bad;
}

TEST(Calibration, ActivationConditions) {
  using anvil::ir::linear::Activation;
  anvil::ir::linear::Epilogue e;
  EXPECT_EQ(anvil::ir::linear::activationCondition(e, -3.0), 1.0);
  e.act = Activation::kRelu;
  EXPECT_EQ(anvil::ir::linear::activationCondition(e, 2.0), 1.0);
  EXPECT_EQ(anvil::ir::linear::activationCondition(e, -2.0), 0.0);
  e.act = Activation::kSigmoid;  // |v (1 - sigmoid(v))|
  EXPECT_NEAR(anvil::ir::linear::activationCondition(e, 2.0), 2.0 * (1.0 - 1.0 / (1.0 + std::exp(-2.0))), 1e-12);
  e.act = Activation::kTanh;  // |v (1 - t^2) / t|, 1 at 0
  EXPECT_NEAR(anvil::ir::linear::activationCondition(e, 0.5), 0.5 * (1 - std::tanh(0.5) * std::tanh(0.5)) / std::tanh(0.5), 1e-12);
  EXPECT_EQ(anvil::ir::linear::activationCondition(e, 0.0), 1.0);
  e.act = Activation::kClip;
  e.p0 = 0.0f;
  e.p1 = 6.0f;
  EXPECT_EQ(anvil::ir::linear::activationCondition(e, 7.0), 0.0);
  EXPECT_EQ(anvil::ir::linear::activationCondition(e, 3.0), 1.0);
  EXPECT_EQ(anvil::ir::linear::activationSlope(e, 3.0), 1.0);
  EXPECT_EQ(anvil::ir::linear::activationValue(e, 7.0), 6.0);
}

// The INT8 kernels' adaptive test computes kappa_phi exactly only where its cheap bound
// would flag a component: the bound must hold everywhere (else a component is missed), and
// stay close (else the shortcut saves nothing). Every activation over a fine grid of
// [-60, 60], the points near 0, the kinks, and where the GELU cdf underflows.
TEST(Calibration, ActivationConditionBounds) {
  using anvil::ir::linear::Activation;
  namespace L = anvil::ir::linear;
  std::vector<double> vs = {0.0, 1e-300, -1e-300, 1e-13, -1e-13, 1e-9, -1e-9, -3.0, 3.0, -2.9999, 2.9999,
                            -36.9, -37.0, -37.5, -38.5, -40.0, -1e6, 1e6};
  for (double v = -60.0; v <= 60.0; v += 1.0 / 64) vs.push_back(v);
  for (int a = int(Activation::kNone); a <= int(Activation::kGeluTanh); ++a) {
    L::Epilogue e;
    e.act = Activation(a);
    e.p0 = a == int(Activation::kClip) ? -1.0f : 0.2f;
    e.p1 = a == int(Activation::kClip) ? 6.0f : 0.5f;
    for (double v : vs) {
      const double exact = L::activationCondition(e, v), bound = L::activationConditionBound(e, v);
      EXPECT_GE(bound, exact) << "activation " << a << " at " << v;
      const bool bounded = e.act == Activation::kTanh || e.act == Activation::kSigmoid || e.act == Activation::kSilu ||
                           e.act == Activation::kGelu || e.act == Activation::kGeluTanh;
      if (!bounded) {
        EXPECT_EQ(bound, exact) << "activation " << a << " at " << v;  // exact where cheap
      } else if (v >= -30 && v <= 30) {
        EXPECT_LE(bound, 1.5 * (1.0 + std::fabs(v) + v * v)) << "activation " << a << " at " << v;
      }
    }
  }
  L::Epilogue t;  // tight where the activation saturates, so few components need the exact test
  t.act = Activation::kTanh;
  EXPECT_LE(L::activationConditionBound(t, 3.0), 0.15);
  t.act = Activation::kSigmoid;
  EXPECT_LE(L::activationConditionBound(t, 4.0), 0.31);
  t.act = Activation::kSilu;
  EXPECT_LE(L::activationConditionBound(t, -4.0), 3.01);
}

// The calibration run takes a linear layer's output from v, its linear part's output, with
// cpu::fusedLinearEpilogue instead of a second full pass: the bits of the fused node's own
// reference kernel for every activation, the residual before or after it, FusedMatMul's bias
// (in v) and FusedConv's (in the Conv).
TEST(Calibration, OutputFromTheLinearPartKeepsTheBits) {
  using anvil::ir::linear::Activation;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  auto random = [&](std::vector<int64_t> dims) {
    Tensor t(DataType::kF32, dims);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
    return t;
  };
  int checked = 0;
  for (const char* op : {"FusedMatMul", "FusedConv"}) {
    const bool conv = std::string(op) == "FusedConv";
    const std::vector<int64_t> xd = conv ? std::vector<int64_t>{2, 3, 5, 6} : std::vector<int64_t>{5, 7};
    const std::vector<int64_t> wd = conv ? std::vector<int64_t>{4, 3, 3, 3} : std::vector<int64_t>{7, 9};
    const std::vector<int64_t> yd = conv ? std::vector<int64_t>{2, 4, 3, 4} : std::vector<int64_t>{5, 9};
    const Tensor x = random(xd), w = random(wd), b = random({conv ? 4 : 9}), z = random(yd);
    for (Activation act : {Activation::kNone, Activation::kRelu, Activation::kClip, Activation::kSigmoid,
                           Activation::kTanh, Activation::kSilu, Activation::kGelu, Activation::kHardSwish})
      for (int residual : {0, 1, 2}) {  // none, added before the activation, after it
        anvil::ir::linear::Epilogue e;
        e.act = act;
        if (act == Activation::kClip) e.p0 = -0.5f, e.p1 = 1.0f;
        e.residual = residual != 0;
        e.addFirst = residual != 2;
        Graph g;
        std::vector<Value*> ins = {g.addValue("x", {DataType::kF32, Shape::fromExtents(xd)}),
                                   g.addValue("w", {DataType::kF32, Shape::fromExtents(wd)}),
                                   g.addValue("b", {DataType::kF32, Shape::fromExtents({conv ? 4 : 9})})};
        if (e.residual) ins.push_back(g.addValue("z", {DataType::kF32, Shape::fromExtents(yd)}));
        Node* n = g.addNode(op, "anvil", "fused", ins, {"y"});
        anvil::ir::linear::writeEpilogue(e, &n->attrs());
        Node* lin = g.addNode(op, "anvil", "linear", {ins[0], ins[1], ins[2]}, {"v"});
        anvil::ir::linear::writeEpilogue(anvil::ir::linear::Epilogue{}, &lin->attrs());
        std::vector<const Tensor*> in = {&x, &w, &b};
        if (e.residual) in.push_back(&z);
        const Tensor want = anvil::cpu::Interpreter::runNode(*n, in)[0];
        const Tensor v = anvil::cpu::Interpreter::runNode(*lin, {&x, &w, &b})[0];
        const Tensor got = anvil::cpu::fusedLinearEpilogue(*n, v, e.residual ? &z : nullptr);
        ASSERT_EQ(got.dims(), want.dims());
        ASSERT_EQ(std::memcmp(got.data<float>(), want.data<float>(), size_t(want.numel()) * sizeof(float)), 0)
            << op << " activation " << int(act) << " residual " << residual;
        ++checked;
      }
  }
  EXPECT_EQ(checked, 2 * 8 * 3);
}

// The condition samples are bounded: a layer keeps ~1M values over its channels however
// many components the calibration data has (here 3M rows of one channel: kept every other
// one once 2M were held), its maximum and count exact, its quantiles those of the sample.
// x[M,2] -> Gemm(W = [1, -1]^T) -> y: row i has x = [1, t_i], v = 1 - t_i, |W||x| = 1 + t_i,
// kappa = (1 + t) / (1 - t), t chosen for kappa_i = 1 + 99 i / (M - 1), uniform on [1, 100].
TEST(Calibration, ConditionSamplesStayBounded) {
  constexpr int64_t M = 3 << 20;
  Graph g;
  Value* x = g.addValue("x", {DataType::kF32, Shape::fromExtents({M, 2})});
  g.addInput(x);
  Value* w = g.addInitializer("w", Tensor::fromVector<float>(DataType::kF32, {2, 1}, {1, -1}));
  Node* n = g.addNode("Gemm", "", "fc", {x, w}, {"y"});
  g.addOutput(n->output(0));
  anvil::ir::inferShapes(g);
  Tensor xs(DataType::kF32, {M, 2});
  for (int64_t i = 0; i < M; ++i) {
    const double k = 1.0 + 99.0 * double(i) / double(M - 1);
    xs.data<float>()[2 * i] = 1.0f;
    xs.data<float>()[2 * i + 1] = float((k - 1.0) / (k + 1.0));
  }
  std::map<std::string, Tensor> batch;
  batch.emplace("x", std::move(xs));
  codegen::CalibrationOptions o;
  o.calibrator = Calibrator::kMinMax;
  const passes::CalibrationData d = codegen::runCalibration(g, {batch}, o);
  ASSERT_TRUE(d.condition.count("fc"));
  const passes::ConditionStats& c = d.condition.at("fc");
  EXPECT_EQ(c.components, M);
  EXPECT_GE(c.sampled, int64_t(1) << 20);
  EXPECT_LT(c.sampled, int64_t(2) << 20);
  EXPECT_NEAR(c.max, 100.0, 1e-3);
  EXPECT_NEAR(c.median, 50.5, 0.05);
  EXPECT_NEAR(c.p99, 99.01, 0.05);
  ASSERT_EQ(c.channelP99.size(), 1u);
  EXPECT_NEAR(c.channelP99[0], 99.01, 0.05);
}

// x[1,2] -> Gemm(W, b) -> y: the condition estimate by hand.
//   W^T rows: [1, -1] and [2, 1]; b = [0, 1]; x = [1, 1]
//   v = [0, 4]; |W||x| + |b| = [2, 4]: kappa = [cap (v = 0, numerator > 0), 1]
TEST(Calibration, ConditionOfAHandComputedGemm) {
  Graph g;
  Value* x = g.addValue("x", {DataType::kF32, Shape::fromExtents({1, 2})});
  g.addInput(x);
  Value* w = g.addInitializer("w", Tensor::fromVector<float>(DataType::kF32, {2, 2}, {1, 2, -1, 1}));  // [K, N]
  Value* b = g.addInitializer("b", Tensor::fromVector<float>(DataType::kF32, {2}, {0, 1}));
  Node* n = g.addNode("Gemm", "", "fc", {x, w, b}, {"y"});
  g.addOutput(n->output(0));
  anvil::ir::inferShapes(g);
  ASSERT_TRUE(passes::isPrecisionCandidate(*n));
  std::map<std::string, Tensor> batch;
  batch.emplace("x", Tensor::fromVector<float>(DataType::kF32, {1, 2}, {1, 1}));
  codegen::CalibrationOptions o;
  o.calibrator = Calibrator::kMinMax;
  const passes::CalibrationData d = codegen::runCalibration(g, {batch}, o);
  ASSERT_TRUE(d.condition.count("fc"));
  const passes::ConditionStats& c = d.condition.at("fc");
  EXPECT_EQ(c.components, 2);
  EXPECT_EQ(c.max, passes::kConditionCap);
  ASSERT_EQ(c.channelP99.size(), 2u);
  EXPECT_EQ(c.channelP99[0], float(passes::kConditionCap));
  EXPECT_FLOAT_EQ(c.channelP99[1], 1.0f);
  // Normwise: ||(2, 4)|| / ||(0, 4)|| = sqrt(20) / 4.
  EXPECT_NEAR(c.normwise, std::sqrt(20.0) / 4.0, 1e-9);
  EXPECT_EQ(d.ranges.at("x").lo, 1.0f);
  EXPECT_EQ(d.ranges.at("y").hi, 4.0f);
}

// Three Gemm layers; fc2 is badly conditioned (its outputs cancel). With INT8 allowed and
// a tolerance the well-conditioned layers meet, fc2 must stay high, the others go low.
struct Mlp {
  Graph g;
  Node *fc1, *fc2, *fc3;
  Mlp() {
    Value* x = g.addValue("x", {DataType::kF32, Shape::fromExtents({1, 4})});
    g.addInput(x);
    auto gemm = [&](const std::string& name, Value* in) {
      Value* w = g.addInitializer(name + "_w", Tensor(DataType::kF32, {4, 4}));
      return g.addNode("Gemm", "", name, {in, w}, {name + "_y"});
    };
    fc1 = gemm("fc1", x);
    fc2 = gemm("fc2", fc1->output(0));
    fc3 = gemm("fc3", fc2->output(0));
    g.addOutput(fc3->output(0));
    anvil::ir::inferShapes(g);
  }
};

// The least precise precision --precision=auto left the builder for a node.
DataType floorOf(const Node* n) {
  const auto c = n->tacticParams().getInts(passes::kPrecisionChoicesAttr);
  return c.empty() ? n->precision() : DataType(c.front());
}

passes::CalibrationData calibrationFor(const Mlp& m) {
  passes::CalibrationData d;
  for (const char* v : {"x", "fc1_y", "fc2_y", "fc3_y"}) d.ranges[v] = {-2.0f, 2.0f};
  auto cond = [](double normwise) {
    passes::ConditionStats s;
    s.normwise = normwise;
    s.median = normwise;
    s.p99 = 10 * normwise;
    s.max = 100 * normwise;
    return s;
  };
  d.condition["fc1"] = cond(1.0);
  d.condition["fc2"] = cond(5000.0);
  d.condition["fc3"] = cond(2.0);
  (void)m;
  return d;
}

// --precision=auto over `allowed` at a relative `tolerance`, with the calibration `cal`.
passes::PassContext automaticContext(const passes::CalibrationData& cal, std::vector<DataType> allowed,
                                     double tolerance) {
  passes::PassContext ctx;
  ctx.precision.allowed = std::move(allowed);
  ctx.precision.automatic = true;
  ctx.precision.tolerance = tolerance;
  ctx.calibration = &cal;
  return ctx;
}

TEST(PrecisionPass, AutomaticKeepsTheBadlyConditionedLayerHigh) {
  Mlp m;
  const passes::CalibrationData cal = calibrationFor(m);
  // int8 on fc1 and fc3: sqrt(1 + 4) / 255 = 0.0088
  passes::PassContext ctx = automaticContext(cal, {DataType::kF32, DataType::kI8}, 0.02);
  passes::assignPrecisions(m.g, ctx);
  EXPECT_EQ(floorOf(m.fc1), DataType::kI8);
  EXPECT_EQ(floorOf(m.fc2), DataType::kF32);
  EXPECT_EQ(floorOf(m.fc3), DataType::kI8);
  // The builder may pick any precision at or above the floor (the fastest kernel).
  EXPECT_EQ(m.fc1->tacticParams().getInts(passes::kPrecisionChoicesAttr),
            (std::vector<int64_t>{int64_t(DataType::kI8), int64_t(DataType::kF32)}));
  EXPECT_EQ(m.fc1->precision(), DataType::kUndefined);
  EXPECT_EQ(m.fc2->tacticParams().getString(passes::kPrecisionReasonAttr, ""), "budget");
  EXPECT_EQ(m.fc1->tacticParams().getString(passes::kPrecisionReasonAttr, ""), "cost");
  EXPECT_FLOAT_EQ(m.fc1->tacticParams().getFloat(passes::kPredictedErrorAttr, -1), float(1.0 / 255.0));
  EXPECT_FLOAT_EQ(m.fc2->tacticParams().getFloat("kappa_p99", -1), 50000.0f);
  // The INT8 layers' inputs carry u8 quantization from their ranges.
  ASSERT_TRUE(m.fc1->input(0)->quantization());
  EXPECT_FLOAT_EQ(m.fc1->input(0)->quantization()->scale.data<float>()[0], 4.0f / 255.0f);
  EXPECT_EQ(m.fc1->input(0)->quantization()->zeroPoint.data<uint8_t>()[0], 128);
}

TEST(PrecisionPass, AutomaticClimbsTheLadderThroughHalfPrecision) {
  Mlp m;
  const passes::CalibrationData cal = calibrationFor(m);
  // fc2 in f16: 5000 * 2^-11 = 2.4: still too much -> f32
  passes::PassContext ctx = automaticContext(cal, {DataType::kF32, DataType::kI8, DataType::kF16}, 0.02);
  passes::assignPrecisions(m.g, ctx);
  EXPECT_EQ(floorOf(m.fc2), DataType::kF32);
  ctx.precision.tolerance = 3.0;  // now f16 suffices for fc2 (and int8 for the rest)
  Mlp m2;
  passes::assignPrecisions(m2.g, ctx);
  // int8 predicts 5000/255 = 19.6 > 3, f16 5000 * 2^-11 = 2.44 <= 3.
  EXPECT_EQ(floorOf(m2.fc2), DataType::kF16);
  EXPECT_EQ(floorOf(m2.fc1), DataType::kI8);
  // A top-1 budget is not a relative error: every layer starts at its cheapest precision.
  Mlp m3;
  ctx.precision.tolerance = 0.02;
  ctx.precision.top1 = true;
  passes::assignPrecisions(m3.g, ctx);
  EXPECT_EQ(floorOf(m3.fc2), DataType::kI8);
}

// A layer --precision=auto's verification raised (PrecisionConfig::promoted) gets the new
// rung as a floor, as the pass's own choices do: the builder may keep a more precise kernel
// where it is faster (on digits_mlp_illcond, fc2 raised to FP16 ran 44 us against 42 us for
// the whole model in FP32 when FP16 was forced).
TEST(PrecisionPass, RaisedLayersTakeTheirRungAsAFloor) {
  Mlp m;
  const passes::CalibrationData cal = calibrationFor(m);
  passes::PassContext ctx = automaticContext(cal, {DataType::kF32, DataType::kI8, DataType::kF16}, 0.005);
  ctx.precision.top1 = true;
  ctx.precision.promoted["fc2"] = DataType::kF16;
  passes::assignPrecisions(m.g, ctx);
  EXPECT_EQ(m.fc2->precision(), DataType::kUndefined);
  EXPECT_EQ(m.fc2->tacticParams().getInts(passes::kPrecisionChoicesAttr),
            (std::vector<int64_t>{int64_t(DataType::kF16), int64_t(DataType::kF32)}));
  EXPECT_EQ(m.fc2->tacticParams().getString(passes::kPrecisionReasonAttr, ""), "budget");
  EXPECT_FLOAT_EQ(m.fc2->tacticParams().getFloat(passes::kPredictedErrorAttr, -1), float(5000.0 / 2048.0));
  EXPECT_EQ(floorOf(m.fc1), DataType::kI8);

  // From BF16 the ladder runs through the allowed FP16 to FP32; a raise to FP32 is FP32.
  Mlp m2;
  ctx.precision.allowed = {DataType::kF32, DataType::kI8, DataType::kBF16, DataType::kF16};
  ctx.precision.promoted = {{"fc2", DataType::kBF16}, {"fc3", DataType::kF32}};
  passes::assignPrecisions(m2.g, ctx);
  EXPECT_EQ(m2.fc2->tacticParams().getInts(passes::kPrecisionChoicesAttr),
            (std::vector<int64_t>{int64_t(DataType::kBF16), int64_t(DataType::kF16), int64_t(DataType::kF32)}));
  EXPECT_EQ(m2.fc3->precision(), DataType::kF32);
  EXPECT_FALSE(m2.fc3->tacticParams().find(passes::kPrecisionChoicesAttr));
  EXPECT_EQ(m2.fc3->tacticParams().getString(passes::kPrecisionReasonAttr, ""), "budget");
}

TEST(PrecisionPass, UserOverridesWinAndNamesAreChecked) {
  Mlp m;
  const passes::CalibrationData cal = calibrationFor(m);
  passes::PassContext ctx = automaticContext(cal, {DataType::kF32, DataType::kI8}, 0.02);
  ctx.precision.overrides["fc2"] = DataType::kI8;  // the user insists
  ctx.precision.overrides["fc3"] = DataType::kF32;
  passes::assignPrecisions(m.g, ctx);
  EXPECT_EQ(m.fc2->precision(), DataType::kI8);
  EXPECT_EQ(m.fc2->tacticParams().getString(passes::kPrecisionReasonAttr, ""), "user");
  EXPECT_EQ(m.fc3->precision(), DataType::kF32);
  EXPECT_EQ(floorOf(m.fc1), DataType::kI8);

  Mlp bad;
  ctx.precision.overrides = {{"nope", DataType::kF16}};
  EXPECT_THROW(passes::assignPrecisions(bad.g, ctx), anvil::Error);
  ctx.precision.overrides = {{"*", DataType::kF16}};
  Mlp star;
  passes::assignPrecisions(star.g, ctx);
  for (Node* n : {star.fc1, star.fc2, star.fc3}) EXPECT_EQ(n->precision(), DataType::kF16);
}

TEST(PrecisionPass, Int8WithoutARangeFailsUnderObey) {
  Mlp m;
  passes::CalibrationData cal;  // no ranges
  passes::PassContext ctx;
  ctx.precision.overrides["fc1"] = DataType::kI8;
  ctx.precision.constraints = passes::PrecisionConfig::Constraints::kObey;
  ctx.calibration = &cal;
  EXPECT_THROW(passes::assignPrecisions(m.g, ctx), anvil::Error);
  ctx.precision.constraints = passes::PrecisionConfig::Constraints::kPrefer;
  passes::assignPrecisions(m.g, ctx);  // prefer: the layer stays free (f32)
  EXPECT_NE(m.fc1->precision(), DataType::kI8);
}

}  // namespace

namespace {

TEST(PrecisionPass, ChannelsAboveTheThresholdComputeInFp32AndAdaptiveParamsReachInt8Layers) {
  Mlp m;
  passes::CalibrationData cal = calibrationFor(m);
  // fc2's channels 1 and 3 are badly conditioned: p99 2000 -> 2000/255 = 7.8 > 1.
  cal.condition["fc2"].channelP99 = {3.0f, 2000.0f, 10.0f, 2000.0f};
  cal.condition["fc1"].channelP99 = {3.0f, 3.0f, 3.0f, 3.0f};
  passes::PassContext ctx;
  ctx.precision.allowed = {DataType::kF32, DataType::kI8};
  ctx.precision.overrides = {{"fc1", DataType::kI8}, {"fc2", DataType::kI8}, {"fc3", DataType::kF32}};
  ctx.precision.componentThreshold = 1.0;
  ctx.precision.adaptiveTau = 0.5;
  ctx.precision.adaptiveTest = "both";
  ctx.calibration = &cal;
  passes::assignPrecisions(m.g, ctx);
  EXPECT_EQ(m.fc2->tacticParams().getInts("fp32_channels"), (std::vector<int64_t>{1, 3}));
  EXPECT_FALSE(m.fc1->tacticParams().find("fp32_channels"));
  for (Node* n : {m.fc1, m.fc2}) {
    EXPECT_FLOAT_EQ(n->tacticParams().getFloat("adaptive_tau", 0), 0.5f) << n->name();
    EXPECT_EQ(n->tacticParams().getString("adaptive_test", ""), "both");
  }
  EXPECT_FALSE(m.fc3->tacticParams().find("adaptive_tau"));  // f32: nothing to recompute
}

}  // namespace

namespace {

TEST(PrecisionPass, AModelsOwnGridIsKept) {
  // fc1's input carries the grid a Q/DQ model gave it; calibration's range does not replace it.
  Mlp m;
  m.fc1->input(0)->setQuantization(passes::quantizationU8({-1.0f, 1.0f}));
  const passes::CalibrationData cal = calibrationFor(m);  // says [-2, 2] for x
  passes::PassContext ctx;
  ctx.precision.allowed = {DataType::kF32, DataType::kI8};
  ctx.calibration = &cal;
  passes::assignPrecisions(m.g, ctx);
  EXPECT_FLOAT_EQ(m.fc1->input(0)->quantization()->scale.data<float>()[0], 2.0f / 255.0f);
  EXPECT_FLOAT_EQ(m.fc2->input(0)->quantization()->scale.data<float>()[0], 4.0f / 255.0f);
}

}  // namespace
