// The placement pass: IR text in -> IR text out under a given PassContext (target device,
// allowed precisions, per-layer overrides), outputs unchanged on the reference interpreter,
// and its place at every optimization level of the pipeline.
#include <gtest/gtest.h>

#include "cpu/reference.h"
#include "ir/op_schema.h"
#include "ir/printer.h"
#include "ir/text_parser.h"
#include "ir/verifier.h"
#include "passes/passes.h"

using namespace anvil;

namespace {

ir::Model parsed(const std::string& text) {
  ir::Model m = ir::parseIrText(text);
  ir::inferShapes(*m.graph);
  ir::verify(*m.graph);
  return m;
}

// Runs placement under `ctx` on `input`; checks the printed result, that the graph stays
// valid, and that it computes what it computed before.
passes::PassResult expectPlaced(const std::string& input, const passes::PassContext& ctx, const std::string& expected) {
  ir::Model before = parsed(input);
  ir::Model after = parsed(input);
  passes::PassResult r = passes::placeAndDefaultPrecision(*after.graph, ctx);
  ir::inferShapes(*after.graph);
  ir::verify(*after.graph);
  EXPECT_EQ(ir::printGraph(*after.graph), expected);
  std::map<std::string, ir::Tensor> in;
  for (const ir::Value* v : before.graph->inputs()) {
    ir::Tensor t(v->dtype(), v->shape().extents());
    for (int64_t i = 0; i < t.numel(); ++i) t.setDouble(i, v->dtype() == ir::DataType::kBool ? i % 2 : 0.25 * double(i % 7) - 0.5);
    in.emplace(v->name(), std::move(t));
  }
  auto a = cpu::Interpreter::run(*before.graph, in);
  auto b = cpu::Interpreter::run(*after.graph, in);
  EXPECT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) EXPECT_TRUE(a[i].sameAs(b[i])) << "output " << i;
  return r;
}

// A conv block with a shape computation beside it and a branch whose body computes.
const char* kModel =
    "graph @main(%x: f32[1,2,3,3], %c: bool[]) -> (%y: f32[1,2,3,3], %s: i64[4], %h: f16[1,2,3,3], %b: f32[18]) {\n"
    "  %w = const f32[2,2,1,1] [1, -1, 0.5, 2]\n"
    "  %shape = const i64[1] [18]\n"
    "  %0 = Conv(%x, %w) : f32[1,2,3,3]\n"
    "  %y = Relu(%0) : f32[1,2,3,3]\n"
    "  %s = Shape(%y) : i64[4]\n"
    "  %1 = Cast(%y) {to=10} : f16[1,2,3,3]\n"
    "  %h = Sigmoid(%1) : f16[1,2,3,3]\n"
    "  %2 = Reshape(%y, %shape) : f32[18]\n"
    "  %b = If(%c) {\n"
    "    else_branch=graph @else() -> (%2: f32[18]) {\n"
    "    },\n"
    "    then_branch=graph @then() -> (%3: f32[18]) {\n"
    "      %3 = Neg(%2) : f32[18]\n"
    "    }\n"
    "  } : f32[18]\n"
    "}\n";

TEST(Placement, CpuTargetDefaultsFloatComputeToF32) {
  // Conv, Relu and the branch's Neg compute in f32; Shape, Reshape and If compute
  // nothing; Cast and the f16 Sigmoid keep the types' word.
  passes::PassResult r = expectPlaced(kModel, {},
      "graph @main(%x: f32[1,2,3,3], %c: bool[]) -> (%y: f32[1,2,3,3], %s: i64[4], %h: f16[1,2,3,3], %b: f32[18]) {\n"
      "  %w = const f32[2,2,1,1] [1, -1, 0.5, 2]\n"
      "  %shape = const i64[1] [18]\n"
      "  %0 = Conv(%x, %w) @precision=f32 : f32[1,2,3,3]\n"
      "  %y = Relu(%0) @precision=f32 : f32[1,2,3,3]\n"
      "  %s = Shape(%y) : i64[4]\n"
      "  %1 = Cast(%y) {to=10} : f16[1,2,3,3]\n"
      "  %h = Sigmoid(%1) : f16[1,2,3,3]\n"
      "  %2 = Reshape(%y, %shape) : f32[18]\n"
      "  %b = If(%c) {\n"
      "    else_branch=graph @else() -> (%2: f32[18]) {\n"
      "    },\n"
      "    then_branch=graph @then() -> (%3: f32[18]) {\n"
      "      %3 = Neg(%2) @precision=f32 : f32[18]\n"
      "    }\n"
      "  } : f32[18]\n"
      "}\n");
  EXPECT_EQ(r.changed, 3);
  EXPECT_EQ(r.stats, "on cpu: 0 nodes and 0 values moved, 3 nodes set to f32");
}

TEST(Placement, CudaTargetPlacesEveryNodeAndValue) {
  passes::PassContext ctx;
  ctx.device = ir::Device::kCUDA;
  ctx.cudaComputeCapability = 90;
  ctx.precision.allowed = {ir::DataType::kF32, ir::DataType::kF16};  // the precision pass decides
  passes::PassResult r = expectPlaced(
      "graph @main(%x: f32[2]) -> (%y: f32[2]) {\n"
      "  %w = const f32[2] [1, 2]\n"
      "  %0 = Mul(%x, %w) : f32[2]\n"
      "  %y = Relu(%0) @precision=f16 : f32[2]\n"
      "}\n",
      ctx,
      "graph @main(%x: f32[2]{device=cuda}) -> (%y: f32[2]{device=cuda}) {\n"
      "  %w = const f32[2]{device=cuda} [1, 2]\n"
      "  %0 = Mul(%x, %w) @device=cuda : f32[2]{device=cuda}\n"
      "  %y = Relu(%0) @precision=f16 @device=cuda : f32[2]{device=cuda}\n"
      "}\n");
  EXPECT_EQ(r.changed, 2);
  EXPECT_EQ(r.stats, "on cuda: 2 nodes and 4 values moved, 0 nodes set to f32");
}

TEST(Placement, PlacedSubgraphsRoundTripThroughText) {
  ir::Model m = parsed(kModel);
  passes::PassContext ctx;
  ctx.device = ir::Device::kCUDA;
  passes::placeAndDefaultPrecision(*m.graph, ctx);
  const std::string text = ir::printGraph(*m.graph);
  // The branch body's nodes and the outer values it returns are placed too.
  EXPECT_NE(text.find("%3 = Neg(%2) @precision=f32 @device=cuda : f32[18]{device=cuda}"), std::string::npos) << text;
  EXPECT_NE(text.find("else_branch=graph @else() -> (%2: f32[18]{device=cuda})"), std::string::npos) << text;
  ir::Model back = ir::parseIrText(text);
  EXPECT_EQ(ir::printGraph(*back.graph), text);
  EXPECT_TRUE(ir::verifyErrors(*back.graph).empty());
}

TEST(Placement, KeepsSetPrecisionsAndLeavesOverridesToThePrecisionPass) {
  passes::PassContext ctx;
  ctx.precision.overrides["head"] = ir::DataType::kF16;
  expectPlaced(
      "graph @main(%x: f32[2]) -> (%y: f32[2], %z: f32[2]) {\n"
      "  %0 = Relu(%x) @precision=f16 : f32[2]\n"
      "  %y = Neg(%0) : f32[2] loc(\"head\")\n"
      "  %z = Abs(%0) : f32[2]\n"
      "}\n",
      ctx,
      "graph @main(%x: f32[2]) -> (%y: f32[2], %z: f32[2]) {\n"
      "  %0 = Relu(%x) @precision=f16 : f32[2]\n"
      "  %y = Neg(%0) : f32[2]\n"
      "  %z = Abs(%0) @precision=f32 : f32[2]\n"
      "}\n");
}

TEST(Placement, RunsAtEveryLevelWithTheOptionsContext) {
  for (int level : {0, 3}) {
    ir::Model m = parsed("graph @main(%x: f32[2]) -> (%y: f32[2]) {\n  %y = Relu(%x) : f32[2]\n}\n");
    passes::OptimizeOptions opts;
    opts.context.device = ir::Device::kCUDA;
    std::vector<std::string> log = passes::optimize(*m.graph, level, opts);
    ASSERT_FALSE(log.empty());
    EXPECT_EQ(log.back().rfind("placement: ", 0), 0u) << log.back();
    EXPECT_EQ(ir::printGraph(*m.graph),
              "graph @main(%x: f32[2]{device=cuda}) -> (%y: f32[2]{device=cuda}) {\n"
              "  %y = Relu(%x) @precision=f32 @device=cuda : f32[2]{device=cuda}\n"
              "}\n")
        << "level " << level;
  }
}

}  // namespace
