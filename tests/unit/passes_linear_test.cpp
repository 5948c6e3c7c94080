// The linear-layer passes (batchnorm-folding, pad-folding, matmul-add-to-gemm,
// linear-epilogue-fusion) and the fused ops they make (anvil.FusedConv / FusedGemm /
// FusedMatMul): IR text in -> expected IR text out, the graph run on the reference
// interpreter before and after with the same random inputs, the cases each pass must
// decline, the fused ops' inference and reference kernels, and every fused tactic against
// the reference kernel on odd shapes with guarded output slots.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>

#include "cpu/reference.h"
#include "ir/op_schema.h"
#include "ir/ops/anvil_linear.h"
#include "ir/printer.h"
#include "ir/text_parser.h"
#include "ir/verifier.h"
#include "passes/passes.h"

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

using Dims = std::vector<int64_t>;
using PassFn = std::function<passes::PassResult(ir::Graph&, const passes::PassContext&)>;

// Random tensors for weights and inputs: uniform in [lo, hi).
Tensor randomTensor(DataType t, const Dims& dims, uint32_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  Tensor x(t, dims);
  for (int64_t i = 0; i < x.numel(); ++i) x.setDouble(i, d(rng));
  return x;
}

const ir::PrintOptions kByRef{.inlineLimit = 0};

std::string print(const ir::Graph& g) { return ir::printGraph(g, kByRef); }

// Concrete inputs for every graph input (symbolic dims become 2).
std::map<std::string, Tensor> randomInputs(const ir::Graph& g, uint32_t seed) {
  std::map<std::string, Tensor> in;
  for (const ir::Value* v : g.inputs()) {
    if (v->isInitializer()) continue;
    Dims dims;
    for (const ir::Dim& d : v->shape().dims()) dims.push_back(d.isStatic() ? d.value() : 2);
    in[v->name()] = randomTensor(v->dtype(), dims, seed++);
  }
  return in;
}

// max |a - b| <= tol * max(1, max |b|) over every output.
void expectClose(const std::vector<Tensor>& got, const std::vector<Tensor>& want, double tol = 2e-5) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < got.size(); ++k) {
    ASSERT_EQ(got[k].dims(), want[k].dims()) << "output " << k;
    ASSERT_EQ(got[k].dtype(), want[k].dtype()) << "output " << k;
    double scale = 1, err = 0;
    for (int64_t i = 0; i < want[k].numel(); ++i) scale = std::max(scale, std::fabs(want[k].getDouble(i)));
    for (int64_t i = 0; i < want[k].numel(); ++i) {
      const double e = std::fabs(got[k].getDouble(i) - want[k].getDouble(i));
      err = std::isnan(e) ? INFINITY : std::max(err, e);
    }
    EXPECT_LE(err, tol * scale) << "output " << k;
  }
}

// Parses `text`, runs `pass`, checks the printed result against `expected` (when not
// empty), the verifier, graph-output names, and the outputs before and after on the
// reference interpreter. Returns the pass result.
passes::PassResult checkPass(const PassFn& pass, const std::string& text, const std::string& expected,
                             const ir::WeightMap& weights, double tol = 2e-5) {
  ir::Model before = ir::parseIrText(text, weights);
  ir::inferShapes(*before.graph);
  ir::Model after = ir::parseIrText(text, weights);
  ir::inferShapes(*after.graph);
  std::vector<std::string> outNames;
  for (const ir::Value* v : after.graph->outputs()) outNames.push_back(v->name());
  passes::PassResult r = pass(*after.graph, {});
  ir::inferShapes(*after.graph);
  EXPECT_NO_THROW(ir::verify(*after.graph)) << print(*after.graph);
  if (!expected.empty()) {
    EXPECT_EQ(print(*after.graph), expected);
  }
  for (size_t i = 0; i < outNames.size(); ++i) EXPECT_EQ(after.graph->outputs()[i]->name(), outNames[i]);
  const auto in = randomInputs(*before.graph, 7);
  expectClose(cpu::Interpreter::run(*after.graph, in), cpu::Interpreter::run(*before.graph, in), tol);
  return r;
}

// A pass that must leave the graph as it was.
void checkDeclines(const PassFn& pass, const std::string& text, const ir::WeightMap& weights) {
  ir::Model m = ir::parseIrText(text, weights);
  ir::inferShapes(*m.graph);
  m.graph->removeUnusedValues();  // the pattern driver sweeps unread constants
  const std::string before = print(*m.graph);
  const passes::PassResult r = pass(*m.graph, {});
  ir::inferShapes(*m.graph);
  EXPECT_EQ(r.changed, 0);
  EXPECT_EQ(print(*m.graph), before);
}

ir::WeightMap bnWeights(int64_t c, uint32_t seed) {
  return {{"s", randomTensor(DataType::kF32, {c}, seed, 0.5, 1.5)},
          {"b", randomTensor(DataType::kF32, {c}, seed + 1)},
          {"m", randomTensor(DataType::kF32, {c}, seed + 2)},
          {"v", randomTensor(DataType::kF32, {c}, seed + 3, 0.5, 1.5)}};
}

const char* kBnConsts =
    "  %s = const f32[4] @s\n"
    "  %b = const f32[4] @b\n"
    "  %m = const f32[4] @m\n"
    "  %v = const f32[4] @v\n";

// ---------------------------------------------------------------------------------------
// batchnorm-folding

TEST(BatchNormFolding, ConvBiasBn) {
  ir::WeightMap w = bnWeights(4, 10);
  w["w"] = randomTensor(DataType::kF32, {4, 3, 3, 3}, 1);
  w["cb"] = randomTensor(DataType::kF32, {4}, 2);
  const std::string in = std::string("graph @main(%x: f32[N,3,6,6]) -> (%y: f32[N,4,6,6]) {\n") +
                         "  %w = const f32[4,3,3,3] @w\n  %cb = const f32[4] @cb\n" + kBnConsts +
                         "  %0 = Conv(%x, %w, %cb) {pads=[1, 1, 1, 1]}\n"
                         "  %y = BatchNormalization(%0, %s, %b, %m, %v) {epsilon=0.001}\n"
                         "}\n";
  auto r = checkPass(passes::foldBatchNorm, in,
                     "graph @main(%x: f32[N,3,6,6]) -> (%y: f32[N,4,6,6]) {\n"
                     "  %w_bn = const f32[4,3,3,3] @w_bn\n"
                     "  %w_bn_bias = const f32[4] @w_bn_bias\n"
                     "  %y = Conv(%x, %w_bn, %w_bn_bias) {pads=[1, 1, 1, 1]} : f32[N,4,6,6]\n"
                     "}\n",
                     w);
  EXPECT_EQ(r.changed, 1);
  EXPECT_EQ(r.stats, "bn-into-linear=1");
}

TEST(BatchNormFolding, ConvWithoutBiasFeedingRelu) {
  ir::WeightMap w = bnWeights(4, 20);
  w["w"] = randomTensor(DataType::kF32, {4, 2, 1, 1}, 3);
  const std::string in = std::string("graph @main(%x: f32[2,2,5,5]) -> (%y: f32[2,4,5,5]) {\n") +
                         "  %w = const f32[4,2,1,1] @w\n" + kBnConsts +
                         "  %0 = Conv(%x, %w)\n"
                         "  %1 = BatchNormalization(%0, %s, %b, %m, %v)\n"
                         "  %y = Relu(%1)\n"
                         "}\n";
  checkPass(passes::foldBatchNorm, in,
            "graph @main(%x: f32[2,2,5,5]) -> (%y: f32[2,4,5,5]) {\n"
            "  %w_bn = const f32[4,2,1,1] @w_bn\n"
            "  %w_bn_bias = const f32[4] @w_bn_bias\n"
            "  %0 = Conv(%x, %w_bn, %w_bn_bias) : f32[2,4,5,5]\n"
            "  %y = Relu(%0) : f32[2,4,5,5]\n"
            "}\n",
            w);
}

TEST(BatchNormFolding, GroupedConvTranspose) {
  ir::WeightMap w = bnWeights(4, 30);
  w["w"] = randomTensor(DataType::kF32, {4, 2, 3, 3}, 4);  // C=4, group 2 -> M = 2*2
  w["cb"] = randomTensor(DataType::kF32, {4}, 5);
  const std::string in = std::string("graph @main(%x: f32[1,4,5,5]) -> (%y: f32[1,4,11,11]) {\n") +
                         "  %w = const f32[4,2,3,3] @w\n  %cb = const f32[4] @cb\n" + kBnConsts +
                         "  %0 = ConvTranspose(%x, %w, %cb) {group=2, strides=[2, 2]}\n"
                         "  %y = BatchNormalization(%0, %s, %b, %m, %v)\n"
                         "}\n";
  auto r = checkPass(passes::foldBatchNorm, in, "", w);
  EXPECT_EQ(r.changed, 1);
}

TEST(BatchNormFolding, GemmTransBWithRowBias) {
  ir::WeightMap w = bnWeights(4, 40);
  w["w"] = randomTensor(DataType::kF32, {4, 6}, 6);
  w["c"] = randomTensor(DataType::kF32, {1, 4}, 7);
  const std::string in = std::string("graph @main(%x: f32[3,6]) -> (%y: f32[3,4]) {\n") +
                         "  %w = const f32[4,6] @w\n  %c = const f32[1,4] @c\n" + kBnConsts +
                         "  %0 = Gemm(%x, %w, %c) {beta=0.5, transB=1}\n"
                         "  %y = BatchNormalization(%0, %s, %b, %m, %v)\n"
                         "}\n";
  checkPass(passes::foldBatchNorm, in,
            "graph @main(%x: f32[3,6]) -> (%y: f32[3,4]) {\n"
            "  %w_bn = const f32[4,6] @w_bn\n"
            "  %w_bn_bias = const f32[4] @w_bn_bias\n"
            "  %y = Gemm(%x, %w_bn, %w_bn_bias) {beta=1.0, transB=1} : f32[3,4]\n"
            "}\n",
            w);
}

TEST(BatchNormFolding, Declines) {
  ir::WeightMap w = bnWeights(4, 50);
  w["w"] = randomTensor(DataType::kF32, {4, 3, 1, 1}, 8);
  auto graph = [](const std::string& body, const std::string& extraIn = "") {
    return "graph @main(%x: f32[1,3,4,4]" + extraIn + ") -> (%y: f32[1,4,4,4]) {\n  %w = const f32[4,3,1,1] @w\n" +
           kBnConsts + body + "}\n";
  };
  // The conv output is read twice.
  checkDeclines(passes::foldBatchNorm,
                graph("  %0 = Conv(%x, %w)\n  %1 = BatchNormalization(%0, %s, %b, %m, %v)\n  %y = Add(%0, %1)\n"), w);
  // Training mode.
  checkDeclines(passes::foldBatchNorm,
                graph("  %0 = Conv(%x, %w)\n  %y = BatchNormalization(%0, %s, %b, %m, %v) {training_mode=1}\n"), w);
  // A parameter is not constant.
  checkDeclines(passes::foldBatchNorm,
                graph("  %0 = Conv(%x, %w)\n  %y = BatchNormalization(%0, %sc, %b, %m, %v)\n", ", %sc: f32[4]"), w);
  // The weights are not constant.
  checkDeclines(passes::foldBatchNorm,
                graph("  %0 = Conv(%x, %ww)\n  %y = BatchNormalization(%0, %s, %b, %m, %v)\n", ", %ww: f32[4,3,1,1]"),
                w);
  // Not after a linear op.
  checkDeclines(passes::foldBatchNorm,
                "graph @main(%x: f32[1,4,4,4]) -> (%y: f32[1,4,4,4]) {\n" + std::string(kBnConsts) +
                    "  %0 = Relu(%x)\n  %y = BatchNormalization(%0, %s, %b, %m, %v)\n}\n",
                w);
}

size_t countOps(const ir::Graph& g, const std::string& op) {
  size_t n = 0;
  for (const auto& node : g.nodes()) n += node->op() == op;
  return n;
}

TEST(BatchNormFolding, PerColumnScaleIntoMatMul) {
  ir::WeightMap w;
  w["w"] = randomTensor(DataType::kF32, {6, 5}, 60);
  w["b"] = randomTensor(DataType::kF32, {5}, 61);
  w["c"] = randomTensor(DataType::kF32, {1, 1, 5}, 62, 0.1, 2.0);
  // MatMul + bias (on the left) + per-column scale (on the left): one MatMul + Add left.
  auto r = checkPass(passes::foldBatchNorm,
                     "graph @main(%x: f32[N,3,6]) -> (%y: f32[N,3,5]) {\n"
                     "  %w = const f32[6,5] @w\n  %b = const f32[5] @b\n  %c = const f32[1,1,5] @c\n"
                     "  %0 = MatMul(%x, %w)\n  %1 = Add(%b, %0)\n  %y = Mul(%c, %1)\n}\n",
                     "", w);
  EXPECT_EQ(r.stats, "scale-into-matmul=1");
  // Without a bias, the scale on the right.
  r = checkPass(passes::foldBatchNorm,
                "graph @main(%x: f32[N,3,6]) -> (%y: f32[N,3,5]) {\n"
                "  %w = const f32[6,5] @w\n  %c = const f32[1,1,5] @c\n"
                "  %0 = MatMul(%x, %w)\n  %y = Mul(%0, %c)\n}\n",
                "graph @main(%x: f32[N,3,6]) -> (%y: f32[N,3,5]) {\n"
                "  %w_scaled = const f32[6,5] @w_scaled\n"
                "  %y = MatMul(%x, %w_scaled) : f32[N,3,5]\n"
                "}\n",
                w);
  EXPECT_EQ(r.changed, 1);
}

TEST(BatchNormFolding, ScaleDeclines) {
  ir::WeightMap w;
  w["w"] = randomTensor(DataType::kF32, {6, 5}, 63);
  w["c3"] = randomTensor(DataType::kF32, {3, 1}, 64);
  w["c5"] = randomTensor(DataType::kF32, {5}, 65);
  auto graph = [](const std::string& body, const std::string& extraIn = "") {
    return "graph @main(%x: f32[2,3,6]" + extraIn + ") -> (%y: f32[2,3,5]) {\n  %w = const f32[6,5] @w\n" +
           "  %c3 = const f32[3,1] @c3\n  %c5 = const f32[5] @c5\n" + body + "}\n";
  };
  // A scale per row, not per column.
  checkDeclines(passes::foldBatchNorm, graph("  %0 = MatMul(%x, %w)\n  %y = Mul(%0, %c3)\n"), w);
  // The MatMul result is read twice.
  checkDeclines(passes::foldBatchNorm, graph("  %0 = MatMul(%x, %w)\n  %1 = Mul(%0, %c5)\n  %y = Add(%0, %1)\n"), w);
  // Computed weights or scale.
  checkDeclines(passes::foldBatchNorm, graph("  %0 = MatMul(%x, %ww)\n  %y = Mul(%0, %c5)\n", ", %ww: f32[6,5]"), w);
  checkDeclines(passes::foldBatchNorm, graph("  %0 = MatMul(%x, %w)\n  %y = Mul(%0, %s)\n", ", %s: f32[5]"), w);
}

// ---------------------------------------------------------------------------------------
// transpose-cancellation: channels-last regions (sinking, anvil.ConvNhwc)

// Two ConvNeXt-style blocks on a channels-last input: depthwise Conv between Transposes,
// channels-last work (here a Mul and a Sigmoid), a Transpose back, the layer scale and the
// residual Add. Everything runs channels-last: one Transpose is left, producing the output.
TEST(TransposeSinking, ConvNextBlocksKeepOneTranspose) {
  ir::WeightMap w;
  for (int i = 1; i <= 2; ++i) {
    w["w" + std::to_string(i)] = randomTensor(DataType::kF32, {4, 1, 3, 3}, 70 + i);
    w["b" + std::to_string(i)] = randomTensor(DataType::kF32, {4}, 80 + i);
    w["g" + std::to_string(i)] = randomTensor(DataType::kF32, {4, 1, 1}, 90 + i);
  }
  w["s"] = randomTensor(DataType::kF32, {4}, 99);
  const std::string text =
      "graph @main(%x: f32[N,6,5,4]) -> (%y: f32[N,4,6,5]) {\n"
      "  %w1 = const f32[4,1,3,3] @w1\n  %b1 = const f32[4] @b1\n  %g1 = const f32[4,1,1] @g1\n"
      "  %w2 = const f32[4,1,3,3] @w2\n  %b2 = const f32[4] @b2\n  %g2 = const f32[4,1,1] @g2\n"
      "  %s = const f32[4] @s\n"
      "  %0 = Transpose(%x) {perm=[0, 3, 1, 2]}\n"
      "  %1 = Conv(%0, %w1, %b1) {group=4, kernel_shape=[3, 3], pads=[1, 1, 1, 1]}\n"
      "  %2 = Transpose(%1) {perm=[0, 2, 3, 1]}\n"
      "  %3 = Mul(%2, %s)\n"
      "  %4 = Transpose(%3) {perm=[0, 3, 1, 2]}\n"
      "  %5 = Mul(%g1, %4)\n"
      "  %6 = Add(%5, %0)\n"
      "  %7 = Conv(%6, %w2, %b2) {group=4, kernel_shape=[3, 3], pads=[1, 1, 1, 1]}\n"
      "  %8 = Transpose(%7) {perm=[0, 2, 3, 1]}\n"
      "  %9 = Sigmoid(%8)\n"
      "  %10 = Transpose(%9) {perm=[0, 3, 1, 2]}\n"
      "  %11 = Mul(%g2, %10)\n"
      "  %y = Add(%11, %6)\n"
      "}\n";
  ir::Model m = ir::parseIrText(text, w);
  ir::inferShapes(*m.graph);
  const auto r = checkPass(passes::cancelTransposes, text, "", w, 0.0);
  EXPECT_EQ(r.stats, "depthwise-channels-last=2, transpose-pair=2, transpose-sinking=2") << r.stats;
  passes::cancelTransposes(*m.graph, {});
  ir::inferShapes(*m.graph);
  EXPECT_EQ(countOps(*m.graph, "Transpose"), 1u) << print(*m.graph);
  EXPECT_EQ(countOps(*m.graph, "ConvNhwc"), 2u);
  EXPECT_EQ(countOps(*m.graph, "Conv"), 0u);
  EXPECT_EQ(m.graph->outputs()[0]->producer()->op(), "Transpose");
}

// A depthwise Conv on a channels-first input read only by a channels-last Transpose: the
// Transpose moves in front of an anvil.ConvNhwc (one Transpose either way).
TEST(TransposeSinking, DepthwiseConvBeforeAChannelsLastTranspose) {
  ir::WeightMap w;
  w["w"] = randomTensor(DataType::kF32, {3, 1, 5, 5}, 101);
  const std::string text =
      "graph @main(%x: f32[2,3,7,6]) -> (%y: f32[2,4,3,3]) {\n"
      "  %w = const f32[3,1,5,5] @w\n"
      "  %0 = Conv(%x, %w) {group=3, kernel_shape=[5, 5], strides=[2, 2], pads=[2, 1, 2, 1]}\n"
      "  %y = Transpose(%0) {perm=[0, 2, 3, 1]}\n"
      "}\n";
  const auto r = checkPass(passes::cancelTransposes, text, "", w, 0.0);
  EXPECT_EQ(r.stats, "depthwise-channels-last=1");
}

// For a CUDA build the depthwise Conv stays a Conv (ConvNhwc has CPU kernels only).
TEST(TransposeSinking, CudaBuildsKeepTheConv) {
  ir::WeightMap w;
  w["w"] = randomTensor(DataType::kF32, {3, 1, 3, 3}, 104);
  ir::Model m = ir::parseIrText(
      "graph @main(%x: f32[1,3,6,6]) -> (%y: f32[1,6,6,3]) {\n  %w = const f32[3,1,3,3] @w\n"
      "  %0 = Conv(%x, %w) {group=3, pads=[1, 1, 1, 1]}\n  %y = Transpose(%0) {perm=[0, 2, 3, 1]}\n}\n",
      w);
  ir::inferShapes(*m.graph);
  passes::PassContext cuda;
  cuda.device = ir::Device::kCUDA;
  EXPECT_EQ(passes::cancelTransposes(*m.graph, cuda).changed, 0);
  EXPECT_EQ(countOps(*m.graph, "Conv"), 1u);
  EXPECT_EQ(passes::cancelTransposes(*m.graph, {}).changed, 1);
  EXPECT_EQ(countOps(*m.graph, "ConvNhwc"), 1u);
}

TEST(TransposeSinking, Declines) {
  ir::WeightMap w;
  w["c"] = randomTensor(DataType::kF32, {4}, 102);
  w["wg"] = randomTensor(DataType::kF32, {4, 2, 3, 3}, 103);
  // Nothing to cancel against: the Transpose stays above the Add and the Relu.
  checkDeclines(passes::cancelTransposes,
                "graph @main(%x: f32[1,4,5,6]) -> (%y: f32[1,5,6,4]) {\n  %c = const f32[4] @c\n"
                "  %0 = Transpose(%x) {perm=[0, 2, 3, 1]}\n  %1 = Add(%0, %c)\n  %y = Relu(%1)\n}\n",
                w);
  // The other operand is computed and has no inverse Transpose.
  checkDeclines(passes::cancelTransposes,
                "graph @main(%x: f32[1,4,5,6], %z: f32[1,5,6,4]) -> (%y: f32[1,4,5,6]) {\n"
                "  %0 = Transpose(%z) {perm=[0, 3, 1, 2]}\n  %y = Add(%0, %x)\n}\n",
                w);
  // Broadcasting would grow the tensor that moves (the Transpose of the small operand
  // would become one of the Add's larger result).
  checkDeclines(passes::cancelTransposes,
                "graph @main(%x: f32[1,1,5,6], %z: f32[1,4,6,5]) -> (%y: f32[1,4,5,6]) {\n"
                "  %0 = Transpose(%x) {perm=[0, 1, 3, 2]}\n  %1 = Add(%0, %z)\n"
                "  %y = Transpose(%1) {perm=[0, 1, 3, 2]}\n}\n",
                w);
  // A grouped (not depthwise) Conv stays channels-first.
  checkDeclines(passes::cancelTransposes,
                "graph @main(%x: f32[1,4,5,6]) -> (%y: f32[1,5,6,4]) {\n  %wg = const f32[4,2,3,3] @wg\n"
                "  %0 = Conv(%x, %wg) {group=2, pads=[1, 1, 1, 1]}\n  %y = Transpose(%0) {perm=[0, 2, 3, 1]}\n}\n",
                w);
}

// ---------------------------------------------------------------------------------------
// pad-folding

TEST(PadFolding, SpatialZeroPadIntoConvPads) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF32, {2, 3, 3, 3}, 11)}};
  const std::string in =
      "graph @main(%x: f32[1,3,5,6]) -> (%y: f32[1,2,9,12]) {\n"
      "  %w = const f32[2,3,3,3] @w\n"
      "  %p = const i64[8] [0, 0, 1, 2, 0, 0, 3, 4]\n"
      "  %0 = Pad(%x, %p)\n"
      "  %y = Conv(%0, %w) {pads=[1, 1, 1, 1]}\n"
      "}\n";
  auto r = checkPass(passes::foldPadIntoConv, in,
                     "graph @main(%x: f32[1,3,5,6]) -> (%y: f32[1,2,9,12]) {\n"
                     "  %w = const f32[2,3,3,3] @w\n"
                     "  %y = Conv(%x, %w) {pads=[2, 3, 4, 5]} : f32[1,2,9,12]\n"
                     "}\n",
                     w);
  EXPECT_EQ(r.changed, 1);
}

TEST(PadFolding, AxesInputZeroValueAndValidConv) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF32, {2, 3, 2, 2}, 12)}};
  const std::string in =
      "graph @main(%x: f32[2,3,4,4]) -> (%y: f32[2,2,5,4]) {\n"
      "  %w = const f32[2,3,2,2] @w\n"
      "  %p = const i64[4] [1, 0, 1, 1]\n"
      "  %a = const i64[2] [-2, 3]\n"
      "  %z = const f32[] [0]\n"
      "  %0 = Pad(%x, %p, %z, %a)\n"
      "  %y = Conv(%0, %w) {auto_pad=\"VALID\"}\n"
      "}\n";
  checkPass(passes::foldPadIntoConv, in,
            "graph @main(%x: f32[2,3,4,4]) -> (%y: f32[2,2,5,4]) {\n"
            "  %w = const f32[2,3,2,2] @w\n"
            "  %y = Conv(%x, %w) {pads=[1, 0, 1, 1]} : f32[2,2,5,4]\n"
            "}\n",
            w);
}

TEST(PadFolding, Declines) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF32, {2, 3, 3, 3}, 13)}};
  auto graph = [](const std::string& pads, const std::string& padAttrs, const std::string& rest = "",
                  const std::string& convAttrs = "") {
    return "graph @main(%x: f32[1,3,6,6]) -> (%y) {\n  %w = const f32[2,3,3,3] @w\n  %p = const i64[8] " + pads +
           "\n  %c = const f32[] [1]\n  %0 = Pad(%x, %p" + rest + ")" + padAttrs + "\n  %y = Conv(%0, %w)" + convAttrs +
           "\n}\n";
  };
  checkDeclines(passes::foldPadIntoConv, graph("[0, 0, 1, 1, 0, 0, 1, 1]", " {mode=\"reflect\"}"), w);
  checkDeclines(passes::foldPadIntoConv, graph("[0, 0, 1, 1, 0, 0, 1, 1]", "", ", %c"), w);  // value 1
  checkDeclines(passes::foldPadIntoConv, graph("[1, 0, 1, 1, 0, 0, 1, 1]", ""), w);          // pads N
  checkDeclines(passes::foldPadIntoConv, graph("[0, 0, -1, 1, 0, 0, 1, 1]", ""), w);         // crops
  checkDeclines(passes::foldPadIntoConv, graph("[0, 0, 1, 1, 0, 0, 1, 1]", "", "", " {auto_pad=\"SAME_UPPER\"}"),
                w);
  // The padded tensor is read twice.
  checkDeclines(passes::foldPadIntoConv,
                "graph @main(%x: f32[1,3,6,6]) -> (%y, %0) {\n  %w = const f32[2,3,3,3] @w\n"
                "  %p = const i64[8] [0, 0, 1, 1, 0, 0, 1, 1]\n  %0 = Pad(%x, %p)\n  %y = Conv(%0, %w)\n}\n",
                w);
}

// ---------------------------------------------------------------------------------------
// matmul-add-to-gemm

TEST(MatMulAddToGemm, RowBias) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF32, {8, 5}, 14)}, {"c", randomTensor(DataType::kF32, {5}, 15)}};
  auto r = checkPass(passes::fuseMatMulAdd,
                     "graph @main(%x: f32[N,8]) -> (%y: f32[N,5]) {\n"
                     "  %w = const f32[8,5] @w\n  %c = const f32[5] @c\n"
                     "  %0 = MatMul(%x, %w)\n  %y = Add(%0, %c)\n}\n",
                     "graph @main(%x: f32[N,8]) -> (%y: f32[N,5]) {\n"
                     "  %w = const f32[8,5] @w\n"
                     "  %c = const f32[5] @c\n"
                     "  %y = Gemm(%x, %w, %c) : f32[N,5]\n"
                     "}\n",
                     w);
  EXPECT_EQ(r.changed, 1);
}

TEST(MatMulAddToGemm, BiasOnTheLeftAndColumnBias) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF32, {8, 5}, 16)}, {"c", randomTensor(DataType::kF32, {4, 1}, 17)}};
  checkPass(passes::fuseMatMulAdd,
            "graph @main(%x: f32[4,8]) -> (%y: f32[4,5]) {\n"
            "  %w = const f32[8,5] @w\n  %c = const f32[4,1] @c\n"
            "  %0 = MatMul(%x, %w)\n  %y = Add(%c, %0)\n}\n",
            "graph @main(%x: f32[4,8]) -> (%y: f32[4,5]) {\n"
            "  %w = const f32[8,5] @w\n"
            "  %c = const f32[4,1] @c\n"
            "  %y = Gemm(%x, %w, %c) : f32[4,5]\n"
            "}\n",
            w);
}

TEST(MatMulAddToGemm, Declines) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF32, {8, 5}, 18)},
                  {"c", randomTensor(DataType::kF32, {5}, 19)},
                  {"c3", randomTensor(DataType::kF32, {2, 4, 5}, 20)},
                  {"c2", randomTensor(DataType::kF32, {2, 5}, 21)}};
  const std::string consts = "  %w = const f32[8,5] @w\n  %c = const f32[5] @c\n  %c3 = const f32[2,4,5] @c3\n"
                             "  %c2 = const f32[2,5] @c2\n";
  // Batched A.
  checkDeclines(passes::fuseMatMulAdd,
                "graph @main(%x: f32[2,4,8]) -> (%y) {\n" + consts + "  %0 = MatMul(%x, %w)\n  %y = Add(%0, %c)\n}\n", w);
  // The bias grows the result.
  checkDeclines(passes::fuseMatMulAdd,
                "graph @main(%x: f32[4,8]) -> (%y) {\n" + consts + "  %0 = MatMul(%x, %w)\n  %y = Add(%0, %c3)\n}\n", w);
  // [2,5] bias against M = 4 would not even broadcast; against symbolic M it is unprovable.
  checkDeclines(passes::fuseMatMulAdd,
                "graph @main(%x: f32[N,8]) -> (%y) {\n" + consts + "  %0 = MatMul(%x, %w)\n  %y = Add(%0, %c2)\n}\n", w);
  // Not a constant bias.
  checkDeclines(passes::fuseMatMulAdd,
                "graph @main(%x: f32[4,8], %d: f32[5]) -> (%y) {\n" + consts +
                    "  %0 = MatMul(%x, %w)\n  %y = Add(%0, %d)\n}\n",
                w);
  // The product is read twice.
  checkDeclines(passes::fuseMatMulAdd,
                "graph @main(%x: f32[4,8]) -> (%y, %0) {\n" + consts + "  %0 = MatMul(%x, %w)\n  %y = Add(%0, %c)\n}\n",
                w);
}

// ---------------------------------------------------------------------------------------
// linear-epilogue-fusion

TEST(LinearEpilogueFusion, ResNetBlockAddThenRelu) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF32, {4, 4, 3, 3}, 22)}, {"cb", randomTensor(DataType::kF32, {4}, 23)}};
  auto r = checkPass(passes::fuseLinearEpilogues,
                     "graph @main(%x: f32[N,4,5,5]) -> (%y: f32[N,4,5,5]) {\n"
                     "  %w = const f32[4,4,3,3] @w\n  %cb = const f32[4] @cb\n"
                     "  %0 = Conv(%x, %w, %cb) {pads=[1, 1, 1, 1]}\n"
                     "  %1 = Add(%0, %x)\n"
                     "  %y = Relu(%1)\n"
                     "}\n",
                     "graph @main(%x: f32[N,4,5,5]) -> (%y: f32[N,4,5,5]) {\n"
                     "  %w = const f32[4,4,3,3] @w\n"
                     "  %cb = const f32[4] @cb\n"
                     "  %y = anvil.FusedConv(%x, %w, %cb, %x) {activation=\"Relu\", has_residual=1, pads=[1, 1, 1, 1], "
                     "residual_order=\"add_then_activate\"} : f32[N,4,5,5]\n"
                     "}\n",
                     w);
  EXPECT_EQ(r.changed, 1);
  EXPECT_EQ(r.stats, "epilogue-Conv=1");
}

TEST(LinearEpilogueFusion, ReluThenResidualAndResidualFromAnotherBranch) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF32, {4, 3, 1, 1}, 24)},
                  {"w2", randomTensor(DataType::kF32, {4, 3, 1, 1}, 25)}};
  checkPass(passes::fuseLinearEpilogues,
            "graph @main(%x: f32[2,3,4,4]) -> (%y: f32[2,4,4,4]) {\n"
            "  %w = const f32[4,3,1,1] @w\n  %w2 = const f32[4,3,1,1] @w2\n"
            "  %0 = Conv(%x, %w)\n"
            "  %1 = Relu(%0)\n"
            "  %2 = Conv(%x, %w2)\n"
            "  %y = Add(%2, %1)\n"
            "}\n",
            "graph @main(%x: f32[2,3,4,4]) -> (%y: f32[2,4,4,4]) {\n"
            "  %w = const f32[4,3,1,1] @w\n"
            "  %w2 = const f32[4,3,1,1] @w2\n"
            // The first conv is visited first: it takes the ReLU and then the Add, with the
            // other branch's conv as Z.
            "  %0 = Conv(%x, %w2) : f32[2,4,4,4]\n"
            "  %y = anvil.FusedConv(%x, %w, none, %0) {activation=\"Relu\", has_residual=1, "
            "residual_order=\"activate_then_add\"} : f32[2,4,4,4]\n"
            "}\n",
            w);
}

TEST(LinearEpilogueFusion, ActivateThenAdd) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF32, {4, 3, 1, 1}, 26)}};
  checkPass(passes::fuseLinearEpilogues,
            "graph @main(%x: f32[2,3,4,4], %z: f32[2,4,4,4]) -> (%y: f32[2,4,4,4]) {\n"
            "  %w = const f32[4,3,1,1] @w\n"
            "  %0 = Conv(%x, %w)\n  %1 = Sigmoid(%0)\n  %y = Add(%z, %1)\n"
            "}\n",
            "graph @main(%x: f32[2,3,4,4], %z: f32[2,4,4,4]) -> (%y: f32[2,4,4,4]) {\n"
            "  %w = const f32[4,3,1,1] @w\n"
            "  %y = anvil.FusedConv(%x, %w, none, %z) {activation=\"Sigmoid\", has_residual=1, "
            "residual_order=\"activate_then_add\"} : f32[2,4,4,4]\n"
            "}\n",
            w);
}

TEST(LinearEpilogueFusion, BiasAddThenRelu6) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF32, {4, 1, 3, 3}, 27)},
                  {"cb", randomTensor(DataType::kF32, {4}, 28)},
                  {"bb", randomTensor(DataType::kF32, {1, 4, 1, 1}, 29)}};
  checkPass(passes::fuseLinearEpilogues,
            "graph @main(%x: f32[1,4,7,7]) -> (%y: f32[1,4,7,7]) {\n"
            "  %w = const f32[4,1,3,3] @w\n  %cb = const f32[4] @cb\n  %bb = const f32[1,4,1,1] @bb\n"
            "  %lo = const f32[] [0]\n  %hi = const f32[] [6]\n"
            "  %0 = Conv(%x, %w, %cb) {group=4, pads=[1, 1, 1, 1]}\n"
            "  %1 = Add(%bb, %0)\n"
            "  %y = Clip(%1, %lo, %hi)\n"
            "}\n",
            "graph @main(%x: f32[1,4,7,7]) -> (%y: f32[1,4,7,7]) {\n"
            "  %w = const f32[4,1,3,3] @w\n"
            "  %w_bias = const f32[4] @w_bias\n"
            "  %y = anvil.FusedConv(%x, %w, %w_bias) {activation=\"Clip\", activation_params=[0.0, 6.0], group=4, "
            "pads=[1, 1, 1, 1]} : f32[1,4,7,7]\n"
            "}\n",
            w);
}

TEST(LinearEpilogueFusion, SiluBothOperandOrders) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF32, {3, 2, 3, 3}, 30)}};
  for (const char* mul : {"Mul(%0, %1)", "Mul(%1, %0)"}) {
    checkPass(passes::fuseLinearEpilogues,
              "graph @main(%x: f32[1,2,6,6]) -> (%y: f32[1,3,4,4]) {\n"
              "  %w = const f32[3,2,3,3] @w\n"
              "  %0 = Conv(%x, %w)\n  %1 = Sigmoid(%0)\n  %y = " +
                  std::string(mul) + "\n}\n",
              "graph @main(%x: f32[1,2,6,6]) -> (%y: f32[1,3,4,4]) {\n"
              "  %w = const f32[3,2,3,3] @w\n"
              "  %y = anvil.FusedConv(%x, %w) {activation=\"Silu\"} : f32[1,3,4,4]\n"
              "}\n",
              w);
  }
}

TEST(LinearEpilogueFusion, GemmBiasAndGeluTanh) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF32, {6, 5}, 31)},
                  {"c", randomTensor(DataType::kF32, {5}, 32)},
                  {"bb", randomTensor(DataType::kF32, {1, 5}, 33)}};
  checkPass(passes::fuseLinearEpilogues,
            "graph @main(%x: f32[N,6]) -> (%y: f32[N,5]) {\n"
            "  %w = const f32[6,5] @w\n  %c = const f32[5] @c\n  %bb = const f32[1,5] @bb\n"
            "  %0 = Gemm(%x, %w, %c) {alpha=0.5, beta=2.}\n"
            "  %1 = Add(%0, %bb)\n"
            "  %y = Gelu(%1) {approximate=\"tanh\"}\n"
            "}\n",
            "graph @main(%x: f32[N,6]) -> (%y: f32[N,5]) {\n"
            "  %w = const f32[6,5] @w\n"
            "  %w_bias = const f32[5] @w_bias\n"
            "  %y = anvil.FusedGemm(%x, %w, %w_bias) {activation=\"GeluTanh\", alpha=0.5, beta=1.0} : f32[N,5]\n"
            "}\n",
            w);
}

TEST(LinearEpilogueFusion, BatchedMatMulBiasAndRelu) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF32, {8, 4}, 34)}, {"c", randomTensor(DataType::kF32, {4}, 35)}};
  checkPass(passes::fuseLinearEpilogues,
            "graph @main(%x: f32[N,3,8]) -> (%y: f32[N,3,4]) {\n"
            "  %w = const f32[8,4] @w\n  %c = const f32[4] @c\n"
            "  %0 = MatMul(%x, %w)\n  %1 = Add(%0, %c)\n  %y = Relu(%1)\n"
            "}\n",
            "graph @main(%x: f32[N,3,8]) -> (%y: f32[N,3,4]) {\n"
            "  %w = const f32[8,4] @w\n"
            "  %w_bias = const f32[4] @w_bias\n"
            "  %y = anvil.FusedMatMul(%x, %w, %w_bias) {activation=\"Relu\"} : f32[N,3,4]\n"
            "}\n",
            w);
  // A bias alone still makes a FusedMatMul (one node instead of two), with no epilogue.
  checkPass(passes::fuseLinearEpilogues,
            "graph @main(%x: f32[N,3,8]) -> (%y: f32[N,3,4]) {\n"
            "  %w = const f32[8,4] @w\n  %c = const f32[4] @c\n"
            "  %0 = MatMul(%x, %w)\n  %y = Add(%c, %0)\n"
            "}\n",
            "graph @main(%x: f32[N,3,8]) -> (%y: f32[N,3,4]) {\n"
            "  %w = const f32[8,4] @w\n"
            "  %w_bias = const f32[4] @w_bias\n"
            "  %y = anvil.FusedMatMul(%x, %w, %w_bias) : f32[N,3,4]\n"
            "}\n",
            w);
}

// The fused node is the linear layer with its epilogue: it keeps the layer's precision,
// device and tactic parameters (a Q/DQ model's INT8 and its input grid live on the Conv),
// not those of the Relu it absorbed. Likewise MatMul + Add -> Gemm keeps the MatMul's.
TEST(LinearEpilogueFusion, FusedNodeKeepsTheLinearLayersPrecisionAndTacticParams) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF32, {4, 3, 1, 1}, 41)},
                  {"mw", randomTensor(DataType::kF32, {4, 6}, 42)},
                  {"mb", randomTensor(DataType::kF32, {6}, 43)}};
  ir::Model m = ir::parseIrText("graph @main(%x: f32[1,3,5,5], %a: f32[3,4]) -> (%y: f32[1,4,5,5], %z: f32[3,6]) {\n"
                                "  %w = const f32[4,3,1,1] @w\n"
                                "  %0 = Conv(%x, %w)\n"
                                "  %y = Relu(%0)\n"
                                "  %mw = const f32[4,6] @mw\n"
                                "  %mb = const f32[6] @mb\n"
                                "  %1 = MatMul(%a, %mw)\n"
                                "  %z = Add(%1, %mb)\n"
                                "}\n",
                                w);
  ir::inferShapes(*m.graph);
  for (const auto& n : m.graph->nodes()) {
    if (n->op() != "Conv" && n->op() != "MatMul") continue;
    n->setPrecision(DataType::kI8);
    n->tacticParams().set("input_scale", 0.125f);
  }
  EXPECT_EQ(passes::fuseMatMulAdd(*m.graph, {}).changed, 1);        // MatMul + Add -> Gemm
  EXPECT_EQ(passes::fuseLinearEpilogues(*m.graph, {}).changed, 1);  // Conv + Relu -> FusedConv
  int seen = 0;
  for (const auto& n : m.graph->nodes()) {
    if (n->op() != "FusedConv" && n->op() != "Gemm") continue;
    ++seen;
    EXPECT_EQ(n->precision(), DataType::kI8) << n->op();
    EXPECT_EQ(n->tacticParams().getFloat("input_scale", 0.0f), 0.125f) << n->op();
  }
  EXPECT_EQ(seen, 2) << print(*m.graph);
}

TEST(LinearEpilogueFusion, ConvBiasAddAloneBecomesConvBias) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF32, {4, 3, 1, 1}, 36)}, {"bb", randomTensor(DataType::kF32, {4, 1, 1}, 37)}};
  checkPass(passes::fuseLinearEpilogues,
            "graph @main(%x: f32[1,3,4,4]) -> (%y: f32[1,4,4,4]) {\n"
            "  %w = const f32[4,3,1,1] @w\n  %bb = const f32[4,1,1] @bb\n"
            "  %0 = Conv(%x, %w)\n  %y = Add(%0, %bb)\n"
            "}\n",
            "graph @main(%x: f32[1,3,4,4]) -> (%y: f32[1,4,4,4]) {\n"
            "  %w = const f32[4,3,1,1] @w\n"
            "  %w_bias = const f32[4] @w_bias\n"
            "  %y = Conv(%x, %w, %w_bias) : f32[1,4,4,4]\n"
            "}\n",
            w);
}

// Every activation, in both residual orders and without a residual, on each linear op.
TEST(LinearEpilogueFusion, EveryActivationMatchesTheUnfusedGraph) {
  const std::vector<std::string> acts = {
      "Relu(%1)",          "Sigmoid(%1)",
      "Tanh(%1)",          "LeakyRelu(%1) {alpha=0.125}",
      "HardSigmoid(%1) {alpha=0.3, beta=0.4}", "HardSwish(%1)",
      "Gelu(%1)",          "Gelu(%1) {approximate=\"tanh\"}",
      "Clip(%1, %lo)",     "Clip(%1, none, %hi)",
      "Clip(%1, %lo, %hi)"};
  ir::WeightMap w{{"wc", randomTensor(DataType::kF32, {5, 3, 3, 3}, 38)},
                  {"wg", randomTensor(DataType::kF32, {7, 5}, 39)},
                  {"wm", randomTensor(DataType::kF32, {7, 5}, 40)}};
  const std::string consts = "  %wc = const f32[5,3,3,3] @wc\n  %wg = const f32[7,5] @wg\n  %wm = const f32[7,5] @wm\n"
                             "  %lo = const f32[] [-0.25]\n  %hi = const f32[] [0.5]\n";
  struct Lin {
    std::string in, node, out;
  };
  const std::vector<Lin> lins = {{"%x: f32[2,3,6,6], %z: f32[2,5,4,4]", "Conv(%x, %wc)", "f32[2,5,4,4]"},
                                 {"%x: f32[4,7], %z: f32[4,5]", "Gemm(%x, %wg)", "f32[4,5]"},
                                 {"%x: f32[2,4,7], %z: f32[2,4,5]", "MatMul(%x, %wm)", "f32[2,4,5]"}};
  for (const Lin& lin : lins)
    for (const std::string& act : acts)
      for (int order = 0; order < 3; ++order) {
        auto actOn = [&](const std::string& v) {
          std::string a = act;
          return a.replace(a.find("%1"), 2, v);
        };
        std::string body = "  %0 = " + lin.node + "\n";
        if (order == 0) body += "  %1 = Add(%0, %z)\n  %y = " + actOn("%1") + "\n";  // act(y + z)
        if (order == 1) body += "  %2 = " + actOn("%0") + "\n  %y = Add(%2, %z)\n";  // act(y) + z
        if (order == 2) body += "  %y = " + actOn("%0") + "\n";
        const std::string text = "graph @main(" + lin.in + ") -> (%y: " + lin.out + ") {\n" + consts + body + "}\n";
        SCOPED_TRACE(text);
        auto r = checkPass(passes::fuseLinearEpilogues, text, "", w, 1e-5);
        EXPECT_EQ(r.changed, 1);
        ir::Model m = ir::parseIrText(text, w);
        ir::inferShapes(*m.graph);
        passes::fuseLinearEpilogues(*m.graph, {});
        ASSERT_EQ(m.graph->nodes().size(), 1u) << print(*m.graph);
        EXPECT_EQ(m.graph->nodes()[0]->domain(), "anvil");
      }
}

TEST(LinearEpilogueFusion, Declines) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF32, {4, 3, 1, 1}, 41)}, {"c", randomTensor(DataType::kF32, {4}, 42)}};
  const std::string consts = "  %w = const f32[4,3,1,1] @w\n  %c = const f32[4] @c\n";
  // The conv output is a graph output, or read twice.
  checkDeclines(passes::fuseLinearEpilogues,
                "graph @main(%x: f32[1,3,4,4]) -> (%y, %0) {\n" + consts + "  %0 = Conv(%x, %w)\n  %y = Relu(%0)\n}\n", w);
  checkDeclines(passes::fuseLinearEpilogues,
                "graph @main(%x: f32[1,3,4,4]) -> (%y) {\n" + consts +
                    "  %0 = Conv(%x, %w)\n  %1 = Relu(%0)\n  %y = Add(%0, %1)\n}\n",
                w);
  // A residual that broadcasts ([4] is along W here, and is not the output's shape).
  checkDeclines(passes::fuseLinearEpilogues,
                "graph @main(%x: f32[1,3,4,4], %z: f32[4]) -> (%y) {\n" + consts + "  %0 = Conv(%x, %w)\n  %y = Add(%0, %z)\n}\n",
                w);
  // A constant [4] is not a per-channel bias of a conv (it runs along W).
  checkDeclines(passes::fuseLinearEpilogues,
                "graph @main(%x: f32[1,3,4,4]) -> (%y) {\n" + consts + "  %0 = Conv(%x, %w)\n  %y = Add(%0, %c)\n}\n", w);
  // Unknown dims: the residual's shape cannot be proven equal.
  checkDeclines(passes::fuseLinearEpilogues,
                "graph @main(%x: f32[1,3,?,4], %z: f32[1,4,?,4]) -> (%y) {\n" + consts +
                    "  %0 = Conv(%x, %w)\n  %y = Add(%0, %z)\n}\n",
                w);
  // Sigmoid and Mul of something else: not Silu.
  checkDeclines(passes::fuseLinearEpilogues,
                "graph @main(%x: f32[1,3,4,4], %q: f32[1,4,4,4]) -> (%y) {\n" + consts +
                    "  %0 = Conv(%x, %w)\n  %1 = Sigmoid(%0)\n  %2 = Mul(%0, %q)\n  %y = Add(%1, %2)\n}\n",
                w);
  // MatMul with a 1-D operand.
  checkDeclines(passes::fuseLinearEpilogues,
                "graph @main(%x: f32[3]) -> (%y) {\n  %m = const f32[3,4] @m\n  %0 = MatMul(%x, %m)\n  %y = Relu(%0)\n}\n",
                {{"m", randomTensor(DataType::kF32, {3, 4}, 43)}});
}

TEST(LinearEpilogueFusion, HalfPrecisionChainsRoundLikeTheUnfusedNodes) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF16, {4, 3, 3, 3}, 44)}};
  auto r = checkPass(passes::fuseLinearEpilogues,
                     "graph @main(%x: f16[1,3,5,5], %z: f16[1,4,3,3]) -> (%y: f16[1,4,3,3]) {\n"
                     "  %w = const f16[4,3,3,3] @w\n"
                     "  %0 = Conv(%x, %w)\n  %1 = Add(%0, %z)\n  %y = Relu(%1)\n}\n",
                     "", w, 0.0);
  EXPECT_EQ(r.changed, 1);
}

// A small ResNet-style network through the whole pipeline at level 3: every Conv ends up
// a FusedConv carrying its BatchNorm, ReLU and residual Add.
TEST(LinearPipeline, ResNetStyleBlocksFuseCompletely) {
  ir::WeightMap w;
  std::string body, consts;
  uint32_t seed = 100;
  auto convBn = [&](const std::string& name, const std::string& x, int64_t cin, int64_t cout, int64_t k,
                    const std::string& attrs) {
    w[name + "_w"] = randomTensor(DataType::kF32, {cout, cin, k, k}, seed++);
    for (const char* p : {"_s", "_b", "_m", "_v"})
      w[name + p] = randomTensor(DataType::kF32, {cout}, seed++, p[1] == 's' || p[1] == 'v' ? 0.5 : -1.0, 1.5);
    consts += "  %" + name + "_w = const f32[" + std::to_string(cout) + "," + std::to_string(cin) + "," +
              std::to_string(k) + "," + std::to_string(k) + "] @" + name + "_w\n";
    for (const char* p : {"_s", "_b", "_m", "_v"})
      consts += "  %" + name + p + " = const f32[" + std::to_string(cout) + "] @" + name + p + "\n";
    body += "  %" + name + "_c = Conv(%" + x + ", %" + name + "_w)" + attrs + "\n";
    body += "  %" + name + " = BatchNormalization(%" + name + "_c, %" + name + "_s, %" + name + "_b, %" + name +
            "_m, %" + name + "_v)\n";
  };
  convBn("stem", "x", 3, 8, 3, " {pads=[1, 1, 1, 1]}");
  body += "  %r0 = Relu(%stem)\n";
  // Identity block.
  convBn("a1", "r0", 8, 8, 3, " {pads=[1, 1, 1, 1]}");
  body += "  %a1r = Relu(%a1)\n";
  convBn("a2", "a1r", 8, 8, 3, " {pads=[1, 1, 1, 1]}");
  body += "  %a3 = Add(%a2, %r0)\n  %r1 = Relu(%a3)\n";
  // Downsampling block: both branches are convs.
  convBn("b1", "r1", 8, 16, 3, " {pads=[1, 1, 1, 1], strides=[2, 2]}");
  body += "  %b1r = Relu(%b1)\n";
  convBn("b2", "b1r", 16, 16, 3, " {pads=[1, 1, 1, 1]}");
  convBn("ds", "r1", 8, 16, 1, " {strides=[2, 2]}");
  body += "  %b3 = Add(%b2, %ds)\n  %y = Relu(%b3)\n";
  const std::string text = "graph @main(%x: f32[N,3,8,8]) -> (%y: f32[N,16,4,4]) {\n" + consts + body + "}\n";
  ir::Model before = ir::parseIrText(text, w);
  ir::inferShapes(*before.graph);
  ir::Model after = ir::parseIrText(text, w);
  ir::inferShapes(*after.graph);
  passes::optimize(*after.graph, 3);
  // The downsampling 1x1 conv keeps only its BatchNorm (a plain Conv with bias): the
  // block's Add and ReLU went into the other branch's FusedConv.
  int fused = 0, plain = 0;
  for (const auto& n : after.graph->nodes()) {
    EXPECT_TRUE(n->op() == "FusedConv" || n->op() == "Conv") << print(*after.graph);
    fused += n->op() == "FusedConv";
    plain += n->op() == "Conv";
  }
  EXPECT_EQ(fused, 5);
  EXPECT_EQ(plain, 1);
  int withResidual = 0;
  for (const auto& n : after.graph->nodes()) withResidual += n->attrs().getInt("has_residual", 0);
  EXPECT_EQ(withResidual, 2);
  const auto in = randomInputs(*before.graph, 3);
  expectClose(cpu::Interpreter::run(*after.graph, in), cpu::Interpreter::run(*before.graph, in), 1e-4);
}

// ---------------------------------------------------------------------------------------
// The fused ops: inference and reference kernels

ir::Model fusedGraph(const std::string& node, const std::string& ins, const ir::WeightMap& w = {}) {
  return ir::parseIrText("graph @main(" + ins + ") -> (%y) {\n  %y = " + node + "\n}\n", w);
}

TEST(FusedLinearOps, InferenceChecksTheEpilogue) {
  auto infer = [](const std::string& node, const std::string& ins) {
    ir::Model m = fusedGraph(node, ins);
    ir::inferShapes(*m.graph);
    return m.graph->outputs()[0]->type().str();
  };
  EXPECT_EQ(infer("anvil.FusedConv(%x, %w, none, %z) {activation=\"Relu\", has_residual=1, pads=[1, 1, 1, 1]}",
                  "%x: f32[N,3,5,5], %w: f32[4,3,3,3], %z: f32[N,4,5,5]"),
            "f32[N,4,5,5]");
  EXPECT_EQ(infer("anvil.FusedGemm(%a, %b) {transB=1}", "%a: f32[M,3], %b: f32[6,3]"), "f32[M,6]");
  EXPECT_EQ(infer("anvil.FusedMatMul(%a, %b, %c) {activation=\"Silu\"}", "%a: f32[2,M,3], %b: f32[3,6], %c: f32[6]"),
            "f32[2,M,6]");
  auto fails = [&](const std::string& node, const std::string& ins, const std::string& what) {
    try {
      infer(node, ins);
      ADD_FAILURE() << "expected an error about " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  fails("anvil.FusedConv(%x, %w) {activation=\"Swish\"}", "%x: f32[1,3,5,5], %w: f32[4,3,3,3]",
        "unknown activation 'Swish'");
  fails("anvil.FusedConv(%x, %w) {activation=\"Clip\"}", "%x: f32[1,3,5,5], %w: f32[4,3,3,3]",
        "takes 2 activation_params");
  fails("anvil.FusedConv(%x, %w) {has_residual=1}", "%x: f32[1,3,5,5], %w: f32[4,3,3,3]", "needs the residual input");
  fails("anvil.FusedConv(%x, %w, none, %z) {has_residual=1}", "%x: f32[1,3,5,5], %w: f32[4,3,3,3], %z: f32[1,4,2,3]",
        "must have the output's shape");
  fails("anvil.FusedConv(%x, %w, none, %z) {has_residual=1, residual_order=\"later\"}",
        "%x: f32[1,3,5,5], %w: f32[4,3,3,3], %z: f32[1,4,3,3]", "residual_order");
  fails("anvil.FusedMatMul(%a, %b, %c)", "%a: f32[2,3], %b: f32[3,6], %c: f32[5]", "does not match the output's last dim");
  fails("anvil.FusedGemm(%a, %b)", "%a: i32[2,3], %b: i32[3,6]", "float types");
  fails("anvil.FusedConv(%x, %w)", "%x: f32[1,3,5,5], %w: f32[4,2,3,3]", "input channels");
}

TEST(FusedLinearOps, ReferenceKernelHandChecked) {
  // Gemm [1,2] x [2,3] = [[1*1+2*0, 1*-1+2*2, 1*2+2*-3]] = [[1, 3, -4]]; + C [0.5, -2, 1]
  // = [1.5, 1, -3]; + Z [-1, 0.5, 10] first = [0.5, 1.5, 7]; Relu = [0.5, 1.5, 7].
  ir::Model m = ir::parseIrText(
      "graph @main(%a: f32[1,2], %z: f32[1,3]) -> (%y) {\n"
      "  %b = const f32[2,3] [1, -1, 2, 0, 2, -3]\n  %c = const f32[3] [0.5, -2, 1]\n"
      "  %y = anvil.FusedGemm(%a, %b, %c, %z) {activation=\"Relu\", has_residual=1}\n}\n");
  ir::inferShapes(*m.graph);
  auto out = cpu::Interpreter::run(*m.graph, {{"a", Tensor::fromVector<float>(DataType::kF32, {1, 2}, {1, 2})},
                                              {"z", Tensor::fromVector<float>(DataType::kF32, {1, 3}, {-1, 0.5f, 10})}});
  ASSERT_EQ(out[0].numel(), 3);
  EXPECT_FLOAT_EQ(out[0].data<float>()[0], 0.5f);
  EXPECT_FLOAT_EQ(out[0].data<float>()[1], 1.5f);
  EXPECT_FLOAT_EQ(out[0].data<float>()[2], 7.0f);
  // Activate first: Relu([1.5, 1, -3]) + Z = [0.5, 1.5, 10].
  m.graph->nodes()[0]->attrs().set("residual_order", std::string("activate_then_add"));
  out = cpu::Interpreter::run(*m.graph, {{"a", Tensor::fromVector<float>(DataType::kF32, {1, 2}, {1, 2})},
                                         {"z", Tensor::fromVector<float>(DataType::kF32, {1, 3}, {-1, 0.5f, 10})}});
  EXPECT_FLOAT_EQ(out[0].data<float>()[0], 0.5f);
  EXPECT_FLOAT_EQ(out[0].data<float>()[1], 1.5f);
  EXPECT_FLOAT_EQ(out[0].data<float>()[2], 10.0f);
}

TEST(FusedLinearOps, F64ChainMatchesTheUnfusedNodes) {
  ir::WeightMap w{{"w", randomTensor(DataType::kF64, {8, 3}, 45)}, {"c", randomTensor(DataType::kF64, {3}, 46)}};
  auto r = checkPass(passes::fuseLinearEpilogues,
                     "graph @main(%x: f64[2,5,8], %z: f64[2,5,3]) -> (%y: f64[2,5,3]) {\n"
                     "  %w = const f64[8,3] @w\n  %c = const f64[3] @c\n"
                     "  %0 = MatMul(%x, %w)\n  %1 = Add(%0, %c)\n  %2 = Tanh(%1)\n  %y = Add(%2, %z)\n}\n",
                     "", w, 1e-12);
  EXPECT_EQ(r.changed, 1);
}

// The fused ops' native kernels are tested against these reference kernels in
// tests/unit/native_linear_test.cpp.

}  // namespace
