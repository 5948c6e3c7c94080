// The cleanup passes (noop elimination, constant folding, shape folding, CSE, transpose
// cancellation, dead code): IR text in -> expected IR text out, and the graph before and
// after run on the reference interpreter with the same random inputs must agree. Plus
// model-level checks on the exported BERT-like model when /tmp/anvil-models has it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <random>

#include "anvil/error.h"
#include "cpu/reference.h"
#include "ir/op_schema.h"
#include "ir/printer.h"
#include "ir/text_parser.h"
#include "ir/verifier.h"
#include "parser/onnx_parser.h"
#include "passes/passes.h"

using namespace anvil;
using namespace anvil::ir;
using PassFn = std::function<passes::PassResult(Graph&, const passes::PassContext&)>;

namespace {

Model parsed(const std::string& text) {
  Model m = parseIrText(text);
  inferShapes(*m.graph);
  verify(*m.graph);
  return m;
}

// Random inputs for every graph input, symbols replaced by `symbols` (default 3).
std::map<std::string, Tensor> randomInputs(const Graph& g, std::mt19937& rng,
                                           const std::map<std::string, int64_t>& symbols = {},
                                           int64_t intHigh = 3) {
  std::map<std::string, Tensor> in;
  for (const Value* v : g.inputs()) {
    if (v->isInitializer()) continue;
    std::vector<int64_t> dims;
    for (const Dim& d : v->shape().dims()) {
      auto it = symbols.find(d.symbolName());
      dims.push_back(d.isStatic() ? d.value() : it != symbols.end() ? it->second : 3);
    }
    Tensor t(v->dtype(), dims);
    std::uniform_real_distribution<double> real(-2, 2);
    std::uniform_int_distribution<int64_t> integer(0, intHigh - 1);
    for (int64_t i = 0; i < t.numel(); ++i)
      t.setDouble(i, isFloat(v->dtype()) ? real(rng) : double(integer(rng)));
    in[v->name()] = t;
  }
  return in;
}

void expectSameOutputs(const Graph& before, const Graph& after, const std::map<std::string, Tensor>& inputs,
                       double tol = 0) {
  auto a = cpu::Interpreter::run(before, inputs);
  auto b = cpu::Interpreter::run(after, inputs);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].dtype(), b[i].dtype()) << "output " << i;
    ASSERT_EQ(a[i].dims(), b[i].dims()) << "output " << i;
    if (tol == 0 && a[i].sameAs(b[i])) continue;
    for (int64_t k = 0; k < a[i].numel(); ++k)
      ASSERT_NEAR(a[i].getDouble(k), b[i].getDouble(k), tol * (1 + std::fabs(a[i].getDouble(k))))
          << "output " << i << " element " << k;
  }
}

// Runs `pass` on `input`, checks the printed result and that outputs are unchanged on
// random inputs (two draws, and for symbolic dims two extents).
passes::PassResult expectRewrite(const PassFn& pass, const std::string& input, const std::string& expected) {
  Model before = parsed(input);
  Model after = parsed(input);
  passes::PassResult r = pass(*after.graph, {});
  inferShapes(*after.graph);
  verify(*after.graph);
  EXPECT_EQ(printGraph(*after.graph), expected);
  std::mt19937 rng(7);
  for (int64_t n : {3, 5}) expectSameOutputs(*before.graph, *after.graph, randomInputs(*before.graph, rng, {{"N", n}}));
  return r;
}

// The pass must leave `input` as it is.
void expectUnchanged(const PassFn& pass, const std::string& input) {
  Model m = parsed(input);
  const std::string text = printGraph(*m.graph);
  pass(*m.graph, {});
  inferShapes(*m.graph);
  verify(*m.graph);
  EXPECT_EQ(printGraph(*m.graph), text);
}

size_t countOp(const Graph& g, const std::string& op) {
  size_t n = 0;
  for (const auto& node : g.nodes()) n += node->op() == op;
  return n;
}

// ---- noop elimination --------------------------------------------------------------

TEST(NoopElimination, RemovesIdentityCastReshapeAndFriends) {
  expectRewrite(passes::eliminateNoops,
                "graph @main(%x: f32[N,4], %z: f32[N,4]) -> (%y: f32[N,4]) {\n"
                "  %s = const i64[2] [0, 4]\n"
                "  %p = const i64[4] [0, 0, 0, 0]\n"
                "  %b = const i64[2] [0, 0]\n"
                "  %e = const i64[2] [9223372036854775807, 9223372036854775807]\n"
                "  %o = const i64[2] [1, 1]\n"
                "  %0 = Identity(%x) : f32[N,4]\n"
                "  %1 = Cast(%0) {to=1} : f32[N,4]\n"
                "  %2 = Reshape(%1, %s) : f32[N,4]\n"
                "  %3 = Pad(%2, %p) : f32[N,4]\n"
                "  %4 = Slice(%3, %b, %e) : f32[N,4]\n"
                "  %5 = Transpose(%4) {perm=[0, 1]} : f32[N,4]\n"
                "  %6 = Concat(%5) {axis=0} : f32[N,4]\n"
                "  %7 = Dropout(%6) : f32[N,4]\n"
                "  %8 = CastLike(%7, %z) : f32[N,4]\n"
                "  %9 = Expand(%8, %o) : f32[N,4]\n"
                "  %y = Relu(%9) : f32[N,4]\n"
                "}\n",
                "graph @main(%x: f32[N,4], %z: f32[N,4]) -> (%y: f32[N,4]) {\n"
                "  %y = Relu(%x) : f32[N,4]\n"
                "}\n");
}

TEST(NoopElimination, KeepsRealWork) {
  expectUnchanged(passes::eliminateNoops,
                  "graph @main(%x: f32[2,4], %i: i32[2,4]) -> (%y: f32[4,2], %c: f32[2,4], %r: f32[8], %s: f32[2,4],"
                  " %d: f32[2,4], %m: bool[2,4]) {\n"
                  "  %t = const bool[] [true]\n"
                  "  %s8 = const i64[1] [8]\n"
                  "  %b = const i64[1] [0]\n"
                  "  %e = const i64[1] [9223372036854775807]\n"
                  "  %st = const i64[1] [-1]\n"
                  "  %ax = const i64[1] [1]\n"
                  "  %y = Transpose(%x) {perm=[1, 0]} : f32[4,2]\n"
                  "  %c = Cast(%i) {to=1} : f32[2,4]\n"
                  "  %r = Reshape(%x, %s8) : f32[8]\n"
                  "  %s = Slice(%x, %b, %e, %ax, %st) : f32[2,4]\n"
                  "  %d, %m = Dropout(%x, none, %t) : f32[2,4], bool[2,4]\n"
                  "}\n");
}

TEST(NoopElimination, DropoutMaskBecomesConstantTrue) {
  expectRewrite(passes::eliminateNoops,
                "graph @main(%x: f32[2,3]) -> (%y: f32[2,3]) {\n"
                "  %0, %1 = Dropout(%x) : f32[2,3], bool[2,3]\n"
                "  %2 = Cast(%1) {to=1} : f32[2,3]\n"
                "  %y = Add(%0, %2) : f32[2,3]\n"
                "}\n",
                "graph @main(%x: f32[2,3]) -> (%y: f32[2,3]) {\n"
                "  %1_true = const bool[2,3] [true, true, true, true, true, true]\n"
                "  %0 = Cast(%1_true) {to=1} : f32[2,3]\n"
                "  %y = Add(%x, %0) : f32[2,3]\n"
                "}\n");
}

TEST(NoopElimination, GraphOutputKeepsItsNameThroughTheProducer) {
  // %y is a graph output: Relu is re-created to produce it, the Reshape goes.
  expectRewrite(passes::eliminateNoops,
                "graph @main(%x: f32[2,3]) -> (%y: f32[2,3]) {\n"
                "  %s = const i64[2] [2, 3]\n"
                "  %0 = Relu(%x) : f32[2,3]\n"
                "  %y = Reshape(%0, %s) : f32[2,3]\n"
                "}\n",
                "graph @main(%x: f32[2,3]) -> (%y: f32[2,3]) {\n"
                "  %y = Relu(%x) : f32[2,3]\n"
                "}\n");
}

TEST(NoopElimination, GraphOutputOfAnInputOrSharedValueStays) {
  // Removing these would make a graph input (or a value other nodes read) the output.
  expectUnchanged(passes::eliminateNoops,
                  "graph @main(%x: f32[2,3]) -> (%y: f32[2,3], %z: f32[2,3], %w: f32[2,3]) {\n"
                  "  %y = Identity(%x) : f32[2,3]\n"
                  "  %0 = Relu(%x) : f32[2,3]\n"
                  "  %z = Identity(%0) : f32[2,3]\n"
                  "  %w = Neg(%0) : f32[2,3]\n"
                  "}\n");
}

TEST(NoopElimination, GraphOutputFromAMultiOutputProducer) {
  // Split is re-created with %y as its first output; its second output gets a fresh name.
  expectRewrite(passes::eliminateNoops,
                "graph @main(%x: f32[4,2]) -> (%y: f32[2,2], %z: f32[2,2]) {\n"
                "  %0, %1 = Split(%x) {axis=0, num_outputs=2} : f32[2,2], f32[2,2]\n"
                "  %y = Identity(%0) : f32[2,2]\n"
                "  %z = Relu(%1) : f32[2,2]\n"
                "}\n",
                "graph @main(%x: f32[4,2]) -> (%y: f32[2,2], %z: f32[2,2]) {\n"
                "  %y, %0 = Split(%x) {axis=0, num_outputs=2} : f32[2,2], f32[2,2]\n"
                "  %z = Relu(%0) : f32[2,2]\n"
                "}\n");
}

// ---- constant folding --------------------------------------------------------------

TEST(ConstantFolding, FoldsChainsConstantsAndStaticShapes) {
  expectRewrite(passes::foldConstants,
                "graph @main(%x: f32[2,3]) -> (%y: f32[2,3]) {\n"
                "  %a = const f32[3] [1.0, 2.0, 3.0]\n"
                "  %0 = Constant() {value_float=2.0} : f32[]\n"
                "  %1 = Mul(%a, %0) : f32[3]\n"
                "  %2 = Shape(%x) : i64[2]\n"
                "  %3 = Size(%x) : i64[]\n"
                "  %4 = Cast(%3) {to=1} : f32[]\n"
                "  %5 = Add(%1, %4) : f32[3]\n"
                "  %6 = Reshape(%x, %2) : f32[2,3]\n"
                "  %y = Add(%6, %5) : f32[2,3]\n"
                "}\n",
                "graph @main(%x: f32[2,3]) -> (%y: f32[2,3]) {\n"
                "  %0 = const i64[2] [2, 3]\n"
                "  %1 = const f32[3] [8, 10, 12]\n"
                "  %2 = Reshape(%x, %0) : f32[2,3]\n"
                "  %y = Add(%2, %1) : f32[2,3]\n"
                "}\n");
}

TEST(ConstantFolding, LeavesRandomOverridableAndGraphOutputs) {
  // %w is an initializer that is also a graph input: a caller may override it.
  expectUnchanged(passes::foldConstants,
                  "graph @main(%x: f32[2], %w: f32[2]) -> (%y: f32[2], %c: f32[2], %r: f32[2]) {\n"
                  "  %w = const f32[2] [1.0, 2.0]\n"
                  "  %a = const f32[2] [3.0, 4.0]\n"
                  "  %0 = Neg(%w) : f32[2]\n"
                  "  %y = Add(%x, %0) : f32[2]\n"
                  "  %c = Neg(%a) : f32[2]\n"
                  "  %r = RandomNormal() {shape=[2]} : f32[2]\n"
                  "}\n");
}

const char* kPartlySymbolicShape =
    "graph @main(%x: f32[N,3,4]) -> (%y: f32[N,12]) {\n"
    "  %b = const i64[1] [0]\n"
    "  %e = const i64[1] [1]\n"
    "  %0 = Shape(%x) {start=1} : i64[2]\n"
    "  %1 = Shape(%x) : i64[3]\n"
    "  %2 = ReduceProd(%0) {keepdims=1} : i64[1]\n"
    "  %3 = Slice(%1, %b, %e) : i64[1]\n"
    "  %4 = Concat(%3, %2) {axis=0} : i64[2]\n"
    "  %y = Reshape(%x, %4) : f32[N,12]\n"
    "}\n";

TEST(ConstantFolding, KeepsValuesASubgraphReturnsDirectly) {
  // %0 is foldable, but the then-branch returns it as is; %2 folds.
  Model m = parsed(
      "graph @main(%c: bool[]) -> (%y: f32[2]) {\n"
      "  %a = const f32[2] [1, 2]\n"
      "  %0 = Neg(%a) : f32[2]\n"
      "  %1 = Relu(%a) : f32[2]\n"
      "  %y = If(%c) {\n"
      "    else_branch=graph @e() -> (%2: f32[2]) {\n"
      "      %2 = Add(%1, %0) : f32[2]\n"
      "    },\n"
      "    then_branch=graph @t() -> (%0: f32[2]) {\n"
      "    }\n"
      "  } : f32[2]\n"
      "}\n");
  Model ref = parsed(printGraph(*m.graph));
  passes::foldConstants(*m.graph, {});
  inferShapes(*m.graph);
  verify(*m.graph);
  EXPECT_EQ(countOp(*m.graph, "Neg"), 1u);
  EXPECT_EQ(countOp(*m.graph, "Relu"), 0u);
  for (bool c : {true, false}) {
    Tensor cond(DataType::kBool, {});
    cond.setDouble(0, c);
    expectSameOutputs(*ref.graph, *m.graph, {{"c", cond}});
  }
}

TEST(ConstantFolding, ShapeOfTheStaticDimsOfASymbolicInput) {
  // Shape(x)[1:] is [3, 4] whatever N is; Shape(x) itself is left to shape folding.
  expectRewrite(passes::foldConstants, kPartlySymbolicShape,
                "graph @main(%x: f32[N,3,4]) -> (%y: f32[N,12]) {\n"
                "  %b = const i64[1] [0]\n"
                "  %e = const i64[1] [1]\n"
                "  %0 = const i64[1] [12]\n"
                "  %1 = Shape(%x) : i64[3]\n"
                "  %2 = Slice(%1, %b, %e) : i64[1]\n"
                "  %3 = Concat(%2, %0) {axis=0} : i64[2]\n"
                "  %y = Reshape(%x, %3) : f32[N,12]\n"
                "}\n");
}

// ---- shape folding -------------------------------------------------------------------

passes::PassResult foldShapesThenDce(Graph& g, const passes::PassContext&) {
  passes::PassResult r = passes::foldShapeChains(g, {});
  passes::eliminateDeadCode(g, {});
  return r;
}

TEST(ShapeFolding, SymbolicReshapeTargetBecomesConstantWithCopy) {
  // Reshape(x, [N, 12]) with N = dim 0 of x: [0, 12] copies it.
  expectRewrite(foldShapesThenDce, kPartlySymbolicShape,
                "graph @main(%x: f32[N,3,4]) -> (%y: f32[N,12]) {\n"
                "  %y_shape = const i64[2] [0, 12]\n"
                "  %y = Reshape(%x, %y_shape) : f32[N,12]\n"
                "}\n");
}

TEST(ShapeFolding, BertStyleHeadSplitUsesMinusOne) {
  // [16, N, 64] -> [16, N*2, 32]: N*2 sits where x has N, so it cannot be copied; every
  // other element is static, so -1 recovers exactly 2*N.
  expectRewrite(foldShapesThenDce,
                "graph @main(%x: f32[16,N,64]) -> (%y: f32[16,?,32]) {\n"
                "  %i0 = const i64[] [0]\n"
                "  %i1 = const i64[] [1]\n"
                "  %two = const i64[] [2]\n"
                "  %ax = const i64[1] [0]\n"
                "  %c32 = const i64[1] [32]\n"
                "  %0 = Shape(%x) : i64[3]\n"
                "  %1 = Gather(%0, %i0) : i64[]\n"
                "  %2 = Gather(%0, %i1) : i64[]\n"
                "  %3 = Mul(%2, %two) : i64[]\n"
                "  %4 = Unsqueeze(%1, %ax) : i64[1]\n"
                "  %5 = Unsqueeze(%3, %ax) : i64[1]\n"
                "  %6 = Concat(%4, %5, %c32) {axis=0} : i64[3]\n"
                "  %y = Reshape(%x, %6) : f32[16,?,32]\n"
                "}\n",
                "graph @main(%x: f32[16,N,64]) -> (%y: f32[16,\"2*N\",32]) {\n"
                "  %y_shape = const i64[3] [16, -1, 32]\n"
                "  %y = Reshape(%x, %y_shape) : f32[16,\"2*N\",32]\n"
                "}\n");
}

TEST(ShapeFolding, ExpandAndBroadcastFillsLoseTheirShapeChains) {
  // Expand to [N, 4] of an [N, 1] input: N is x's own dim, so 1 keeps it. The zeros
  // tensor shaped like %e is a scalar 0 in Where, whose other operands span that shape.
  expectRewrite(foldShapesThenDce,
                "graph @main(%x: f32[N,1], %c: bool[N,4]) -> (%y: f32[N,4]) {\n"
                "  %i0 = const i64[1] [0]\n"
                "  %c4 = const i64[1] [4]\n"
                "  %0 = Shape(%x) : i64[2]\n"
                "  %1 = Gather(%0, %i0) : i64[1]\n"
                "  %2 = Concat(%1, %c4) {axis=0} : i64[2]\n"
                "  %e = Expand(%x, %2) : f32[N,4]\n"
                "  %3 = Shape(%e) : i64[2]\n"
                "  %z = ConstantOfShape(%3) : f32[N,4]\n"
                "  %y = Where(%c, %e, %z) : f32[N,4]\n"
                "}\n",
                "graph @main(%x: f32[N,1], %c: bool[N,4]) -> (%y: f32[N,4]) {\n"
                "  %e_shape = const i64[2] [1, 4]\n"
                "  %fill = const f32[] [0]\n"
                "  %0 = Expand(%x, %e_shape) : f32[N,4]\n"
                "  %y = Where(%c, %0, %fill) : f32[N,4]\n"
                "}\n");
}

TEST(ShapeFolding, AllowzeroNeverCopies) {
  // With allowzero=1 a 0 is a zero extent, so N is recovered by -1 instead.
  expectRewrite(foldShapesThenDce,
                "graph @main(%x: f32[N,12]) -> (%y: f32[N,3,4]) {\n"
                "  %i0 = const i64[1] [0]\n"
                "  %c = const i64[2] [3, 4]\n"
                "  %0 = Shape(%x) : i64[2]\n"
                "  %1 = Gather(%0, %i0) : i64[1]\n"
                "  %2 = Concat(%1, %c) {axis=0} : i64[3]\n"
                "  %y = Reshape(%x, %2) {allowzero=1} : f32[N,3,4]\n"
                "}\n",
                "graph @main(%x: f32[N,12]) -> (%y: f32[N,3,4]) {\n"
                "  %y_shape = const i64[3] [-1, 3, 4]\n"
                "  %y = Reshape(%x, %y_shape) {allowzero=1} : f32[N,3,4]\n"
                "}\n");
}

TEST(ShapeFolding, LeavesWhatItCannotProve) {
  // Two symbolic elements that are not x's own dims at their positions.
  expectUnchanged(foldShapesThenDce,
                  "graph @main(%x: f32[N,M], %s: f32[M,N]) -> (%y: f32[M,N]) {\n"
                  "  %0 = Shape(%s) : i64[2]\n"
                  "  %y = Reshape(%x, %0) : f32[M,N]\n"
                  "}\n");
}

// ---- CSE -----------------------------------------------------------------------------

TEST(Cse, MergesDuplicateNodesAndInitializers) {
  expectRewrite(passes::eliminateCommonSubexpressions,
                "graph @main(%x: f32[N,4]) -> (%y: f32[N,4], %z: f32[N,4]) {\n"
                "  %a = const i64[1] [1]\n"
                "  %b = const i64[1] [1]\n"
                "  %0 = Relu(%x) : f32[N,4]\n"
                "  %1 = Relu(%x) : f32[N,4]\n"
                "  %2 = ReduceSum(%0, %a) {keepdims=1} : f32[N,1]\n"
                "  %3 = ReduceSum(%1, %b) {keepdims=1} : f32[N,1]\n"
                "  %y = Sub(%0, %2) : f32[N,4]\n"
                "  %z = Sub(%1, %3) : f32[N,4]\n"
                "}\n",
                "graph @main(%x: f32[N,4]) -> (%y: f32[N,4], %z: f32[N,4]) {\n"
                "  %a = const i64[1] [1]\n"
                "  %0 = Relu(%x) : f32[N,4]\n"
                "  %1 = ReduceSum(%0, %a) {keepdims=1} : f32[N,1]\n"
                "  %y = Sub(%0, %1) : f32[N,4]\n"
                "  %z = Sub(%0, %1) : f32[N,4]\n"
                "}\n");
}

TEST(Cse, TheNodeProducingAGraphOutputSurvives) {
  expectRewrite(passes::eliminateCommonSubexpressions,
                "graph @main(%x: f32[2,4]) -> (%y: f32[2,4], %z: f32[2,4]) {\n"
                "  %0 = Relu(%x) : f32[2,4]\n"
                "  %y = Neg(%0) : f32[2,4]\n"
                "  %z = Relu(%x) : f32[2,4]\n"
                "}\n",
                "graph @main(%x: f32[2,4]) -> (%y: f32[2,4], %z: f32[2,4]) {\n"
                "  %z = Relu(%x) : f32[2,4]\n"
                "  %y = Neg(%z) : f32[2,4]\n"
                "}\n");
}

TEST(Cse, DifferentAttributesRandomAndTwoGraphOutputsStay) {
  expectUnchanged(passes::eliminateCommonSubexpressions,
                  "graph @main(%x: f32[2,4]) -> (%y: f32[2,4], %z: f32[2,4], %u: f32[2,4], %v: f32[2,4]) {\n"
                  "  %0 = LeakyRelu(%x) {alpha=0.100000001} : f32[2,4]\n"
                  "  %1 = LeakyRelu(%x) {alpha=0.200000003} : f32[2,4]\n"
                  "  %2 = RandomNormalLike(%x) : f32[2,4]\n"
                  "  %3 = RandomNormalLike(%x) : f32[2,4]\n"
                  "  %y = Add(%0, %2) : f32[2,4]\n"
                  "  %z = Add(%1, %3) : f32[2,4]\n"
                  "  %u = Relu(%x) : f32[2,4]\n"
                  "  %v = Relu(%x) : f32[2,4]\n"
                  "}\n");
}

// ---- transpose cancellation ------------------------------------------------------------

TEST(TransposeCancellation, InversePairsVanishAndChainsCompose) {
  expectRewrite(passes::cancelTransposes,
                "graph @main(%x: f32[2,3,4]) -> (%y: f32[2,3,4], %z: f32[4,2,3]) {\n"
                "  %0 = Transpose(%x) {perm=[2, 0, 1]} : f32[4,2,3]\n"
                "  %1 = Transpose(%0) {perm=[1, 2, 0]} : f32[2,3,4]\n"
                "  %y = Relu(%1) : f32[2,3,4]\n"
                "  %2 = Transpose(%x) {perm=[1, 0, 2]} : f32[3,2,4]\n"
                "  %z = Transpose(%2) {perm=[2, 1, 0]} : f32[4,2,3]\n"
                "}\n",
                "graph @main(%x: f32[2,3,4]) -> (%y: f32[2,3,4], %z: f32[4,2,3]) {\n"
                "  %y = Relu(%x) : f32[2,3,4]\n"
                "  %z = Transpose(%x) {perm=[2, 0, 1]} : f32[4,2,3]\n"
                "}\n");
}

TEST(TransposeCancellation, InversePairOnAGraphInputKeepsOneCopy) {
  expectRewrite(passes::cancelTransposes,
                "graph @main(%x: f32[2,3]) -> (%y: f32[2,3]) {\n"
                "  %0 = Transpose(%x) {perm=[1, 0]} : f32[3,2]\n"
                "  %y = Transpose(%0) {perm=[1, 0]} : f32[2,3]\n"
                "}\n",
                "graph @main(%x: f32[2,3]) -> (%y: f32[2,3]) {\n"
                "  %y = Transpose(%x) {perm=[0, 1]} : f32[2,3]\n"
                "}\n");
}

TEST(TransposeCancellation, UnitDimTransposeBecomesReshapeAndReshapesMerge) {
  expectRewrite(passes::cancelTransposes,
                "graph @main(%x: f32[N,1,8]) -> (%y: f32[N,8,1], %z: f32[N,2,4]) {\n"
                "  %s = const i64[2] [-1, 8]\n"
                "  %t = const i64[3] [0, 2, 4]\n"
                "  %y = Transpose(%x) {perm=[0, 2, 1]} : f32[N,8,1]\n"
                "  %0 = Reshape(%x, %s) : f32[N,8]\n"
                "  %z = Reshape(%0, %t) : f32[N,2,4]\n"
                "}\n",
                "graph @main(%x: f32[N,1,8]) -> (%y: f32[N,8,1], %z: f32[N,2,4]) {\n"
                "  %t = const i64[3] [0, 2, 4]\n"
                "  %y_shape = const i64[3] [0, 8, 1]\n"
                "  %z = Reshape(%x, %t) : f32[N,2,4]\n"
                "  %y = Reshape(%x, %y_shape) : f32[N,8,1]\n"
                "}\n");
}

TEST(TransposeCancellation, KeepsRealTransposesAndCopyingReshapes) {
  // The outer 0 copies dim 0 of the Unsqueeze result (1), not x's (N).
  expectUnchanged(passes::cancelTransposes,
                  "graph @main(%x: f32[N,12]) -> (%y: f32[12,N], %z: f32[1,?]) {\n"
                  "  %s = const i64[2] [0, -1]\n"
                  "  %a = const i64[1] [0]\n"
                  "  %y = Transpose(%x) {perm=[1, 0]} : f32[12,N]\n"
                  "  %0 = Unsqueeze(%x, %a) : f32[1,N,12]\n"
                  "  %z = Reshape(%0, %s) : f32[1,?]\n"
                  "}\n");
}

TEST(TransposeCancellation, CopiesOfTheSameDimMerge) {
  expectRewrite(passes::cancelTransposes,
                "graph @main(%x: f32[N,3,4]) -> (%z: f32[N,12]) {\n"
                "  %s = const i64[2] [0, 12]\n"
                "  %u = const i64[4] [0, 3, 2, 2]\n"
                "  %0 = Reshape(%x, %u) : f32[N,3,2,2]\n"
                "  %z = Reshape(%0, %s) : f32[N,12]\n"
                "}\n",
                "graph @main(%x: f32[N,3,4]) -> (%z: f32[N,12]) {\n"
                "  %s = const i64[2] [0, 12]\n"
                "  %z = Reshape(%x, %s) : f32[N,12]\n"
                "}\n");
}

// ---- dead code -------------------------------------------------------------------------

TEST(DeadCode, RemovesUnreadChainsKeepsSubgraphReads) {
  expectRewrite(passes::eliminateDeadCode,
                "graph @main(%x: f32[2], %c: bool[]) -> (%y: f32[2]) {\n"
                "  %0 = Relu(%x) : f32[2]\n"
                "  %1 = Neg(%0) : f32[2]\n"
                "  %2 = Exp(%x) : f32[2]\n"
                "  %y = If(%c) {\n"
                "    else_branch=graph @e() -> (%3: f32[2]) {\n"
                "      %3 = Abs(%2) : f32[2]\n"
                "    },\n"
                "    then_branch=graph @t() -> (%4: f32[2]) {\n"
                "      %4 = Abs(%x) : f32[2]\n"
                "    }\n"
                "  } : f32[2]\n"
                "}\n",
                "graph @main(%x: f32[2], %c: bool[]) -> (%y: f32[2]) {\n"
                "  %0 = Exp(%x) : f32[2]\n"
                "  %y = If(%c) {\n"
                "    else_branch=graph @e() -> (%1: f32[2]) {\n"
                "      %1 = Abs(%0) : f32[2]\n"
                "    },\n"
                "    then_branch=graph @t() -> (%2: f32[2]) {\n"
                "      %2 = Abs(%x) : f32[2]\n"
                "    }\n"
                "  } : f32[2]\n"
                "}\n");
}

// ---- the BERT-like model ---------------------------------------------------------------

std::string modelsDir() {
  const char* env = std::getenv("ANVIL_MODELS_DIR");
  return env ? env : "/tmp/anvil-models";
}

// input_ids in [0, vocab), attention_mask in {0, 1}, batch `n`.
std::map<std::string, Tensor> bertInputs(const Graph& g, int64_t n, std::mt19937& rng) {
  int64_t vocab = 2;
  for (const Value* v : g.initializers())
    if (v->name() == "tok.weight") vocab = v->initializer()->dim(0);
  std::map<std::string, Tensor> in = randomInputs(g, rng, {{"N", n}}, 2);
  Tensor& ids = in.at("input_ids");
  std::uniform_int_distribution<int64_t> tok(0, vocab - 1);
  for (int64_t i = 0; i < ids.numel(); ++i) ids.setDouble(i, double(tok(rng)));
  Tensor& mask = in.at("attention_mask");
  for (int64_t i = 0; i < mask.numel(); ++i) mask.setDouble(i, i % 16 < 12 ? 1 : 0);  // padded tails
  return in;
}

// Shape arithmetic left in the graph: Shape/Size/ConstantOfShape, and Unsqueeze/Concat/
// Gather/... nodes that compute integers (the embedding Gather reads f32 and is real work).
size_t shapeNodes(const Graph& g) {
  size_t n = 0;
  for (const auto& node : g.nodes()) {
    const std::string& op = node->op();
    if (op == "Shape" || op == "Size" || op == "ConstantOfShape") ++n;
    else if ((op == "Unsqueeze" || op == "Concat" || op == "Gather" || op == "Squeeze") &&
             isInteger(node->output(0)->dtype()))
      ++n;
  }
  return n;
}

class BertModel : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = modelsDir() + "/bert_tiny.onnx";
    if (!std::filesystem::exists(path_)) GTEST_SKIP() << path_ << " not found (tests/models/export_models.py)";
  }
  Model load(int64_t staticBatch) const {
    Model m = parser::parseOnnxFile(path_);
    if (staticBatch > 0) {
      for (Value* in : m.graph->inputs())
        if (!in->isInitializer()) in->setType({in->dtype(), Shape({staticBatch, in->shape()[1]})});
      inferShapes(*m.graph);
    }
    return m;
  }
  std::string path_;
};

TEST_F(BertModel, StaticBatchLeavesNoShapeChainsAtLevel2) {
  Model ref = load(2);
  ASSERT_GT(shapeNodes(*ref.graph), 50u);
  for (int level : {2, 3}) {
    Model m = load(2);
    passes::optimize(*m.graph, level);
    EXPECT_EQ(shapeNodes(*m.graph), 0u) << "level " << level << ":\n" << printGraph(*m.graph);
    EXPECT_EQ(countOp(*m.graph, "Reshape") + countOp(*m.graph, "Transpose") > 0, true);
    std::mt19937 rng(11);
    expectSameOutputs(*ref.graph, *m.graph, bertInputs(*ref.graph, 2, rng), 1e-4);
  }
}

TEST_F(BertModel, SymbolicBatchFoldsEveryShapeChain) {
  Model ref = load(0);
  ASSERT_TRUE(ref.graph->inputs()[0]->shape()[0].isSymbolic());
  Model m = load(0);
  passes::optimize(*m.graph, 2);
  // Every Reshape target is a constant, with 0 (copy N) or -1 (2*N) where N is involved.
  EXPECT_EQ(shapeNodes(*m.graph), 0u) << printGraph(*m.graph);
  for (const auto& n : m.graph->nodes()) {
    if (n->op() == "Reshape" || n->op() == "Expand") {
      EXPECT_TRUE(n->input(1)->isInitializer()) << n->label();
    }
  }
  for (int64_t batch : {1, 3}) {
    std::mt19937 rng(5);
    expectSameOutputs(*ref.graph, *m.graph, bertInputs(*ref.graph, batch, rng), 1e-4);
  }
}

TEST_F(BertModel, NodeCountsShrinkPerLevel) {
  size_t before = load(0).graph->nodes().size();
  size_t last = before;
  for (int level : {1, 2, 3}) {
    Model m = load(0);
    passes::optimize(*m.graph, level);
    const size_t now = m.graph->nodes().size();
    EXPECT_LE(now, last) << "level " << level;
    last = now;
  }
  EXPECT_LT(last, before / 2);
}

}  // namespace
