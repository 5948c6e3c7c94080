// elementwise-fusion: IR text in -> pass -> IR text out with outputs compared (bitwise:
// the program computes what the unfused reference kernels compute, step by step), the
// grouping rules (convex groups, shared values, graph outputs, subgraph captures), and the
// anvil.FusedElementwise op (every program op against its ONNX kernel, broadcasting,
// program errors).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "anvil/error.h"
#include "fusion_test_util.h"
#include "ir/ops/anvil_elementwise.h"

using namespace anvil;
using fusiontest::expectUnchanged;
using fusiontest::runPass;

namespace {

// SiLU then a residual add (a two-input Sum) then Relu: x is read twice inside the group,
// one input all the same.
TEST(ElementwiseFusion, SiluResidualRelu) {
  auto r = runPass(R"(graph @main(%x: f32[2,3,5], %z: f32[2,3,5]) -> (%y: f32[2,3,5]) {
  %0 = Sigmoid(%x)
  %1 = Mul(%x, %0)
  %2 = Sum(%1, %z)
  %y = Relu(%2)
}
)",
                   passes::fuseElementwiseChains);
  EXPECT_EQ(r.changed, 4);
  EXPECT_EQ(r.printed,
            "graph @main(%x: f32[2,3,5], %z: f32[2,3,5]) -> (%y: f32[2,3,5]) {\n"
            "  %y = anvil.FusedElementwise(%x, %z) {program=[\"Sigmoid 0\", \"Mul 0 2\", \"Add 3 1\", \"Relu 4\"]} : "
            "f32[2,3,5]\n"
            "}\n");
  EXPECT_EQ(r.error, 0.0);
}

// Constants broadcast along the last axis; Clip with constant bounds; attributes carried.
TEST(ElementwiseFusion, BroadcastConstantsClipAndAttributes) {
  auto r = runPass(R"(graph @main(%x: f32[4,3]) -> (%y: f32[4,3]) {
  %s = const f32[3] [0.5, -2, 3]
  %b = const f32[1,3] [0.25, 0, -1]
  %lo = const f32[] [-1]
  %hi = const f32[] [1.5]
  %0 = Mul(%x, %s)
  %1 = Add(%b, %0)
  %2 = LeakyRelu(%1) {alpha=0.125}
  %3 = Clip(%2, %lo, %hi)
  %y = HardSigmoid(%3) {alpha=0.25}
}
)",
                   passes::fuseElementwiseChains);
  EXPECT_EQ(r.changed, 5);
  EXPECT_EQ(r.printed,
            "graph @main(%x: f32[4,3]) -> (%y: f32[4,3]) {\n"
            "  %s = const f32[3] [0.5, -2, 3]\n"
            "  %b = const f32[1,3] [0.25, 0, -1]\n"
            "  %lo = const f32[] [-1]\n"
            "  %hi = const f32[] [1.5]\n"
            "  %y = anvil.FusedElementwise(%x, %s, %b, %lo, %hi) {program=[\"Mul 0 1\", \"Add 2 5\", "
            "\"LeakyRelu 6 alpha=0.125\", \"Clip 7 3 4\", \"HardSigmoid 8 alpha=0.25 beta=0.5\"]} : f32[4,3]\n"
            "}\n");
  EXPECT_EQ(r.error, 0.0);
}

// Broadcasting between activations (SE-style scale: [N,C,H,W] * [N,C,1,1]) and Clip
// without a lower bound.
TEST(ElementwiseFusion, BroadcastActivationsAndOmittedClipBound) {
  auto r = runPass(R"(graph @main(%x: f32[2,3,4,5], %s: f32[2,3,1,1]) -> (%y: f32[2,3,4,5]) {
  %hi = const f32[] [0.75]
  %0 = Sigmoid(%s)
  %1 = Mul(%x, %0)
  %y = Clip(%1, none, %hi)
}
)",
                   passes::fuseElementwiseChains);
  EXPECT_EQ(r.changed, 3);
  EXPECT_NE(r.printed.find("%y = anvil.FusedElementwise(%s, %x, %hi) {program=[\"Sigmoid 0\", \"Mul 1 3\", "
                           "\"Clip 4 _ 2\"]} : f32[2,3,4,5]"),
            std::string::npos)
      << r.printed;
  EXPECT_EQ(r.error, 0.0);
}

// A value read inside and outside the group stays a group boundary; the outside reader
// (Log) makes its own group with nothing, so it stays alone.
TEST(ElementwiseFusion, SharedValueIsABoundary) {
  auto r = runPass(R"(graph @main(%x: f32[6]) -> (%y: f32[6], %w: f32[6]) {
  %0 = Exp(%x)
  %1 = Neg(%0)
  %2 = Add(%0, %1)
  %y = Tanh(%2)
  %w = Log(%0)
}
)",
                   passes::fuseElementwiseChains);
  EXPECT_EQ(r.changed, 3);
  EXPECT_EQ(r.printed,
            "graph @main(%x: f32[6]) -> (%y: f32[6], %w: f32[6]) {\n"
            "  %0 = Exp(%x) : f32[6]\n"
            "  %w = Log(%0) : f32[6]\n"
            "  %y = anvil.FusedElementwise(%0) {program=[\"Neg 0\", \"Add 0 1\", \"Tanh 2\"]} : f32[6]\n"
            "}\n");
  EXPECT_EQ(r.error, 0.0);
}

// A diamond whose fork is read only inside the group is absorbed whole.
TEST(ElementwiseFusion, DiamondIsAbsorbed) {
  auto r = runPass(R"(graph @main(%x: f32[2,5]) -> (%y: f32[2,5]) {
  %0 = Abs(%x)
  %1 = Sqrt(%0)
  %2 = Exp(%0)
  %y = Div(%1, %2)
}
)",
                   passes::fuseElementwiseChains);
  EXPECT_EQ(r.changed, 4);
  EXPECT_NE(r.printed.find("{program=[\"Abs 0\", \"Sqrt 1\", \"Exp 1\", \"Div 2 3\"]}"), std::string::npos)
      << r.printed;
  EXPECT_EQ(r.error, 0.0);
}

// An intermediate that is a graph output ends the group there.
TEST(ElementwiseFusion, GraphOutputIntermediateStays) {
  auto r = runPass(R"(graph @main(%x: f32[5]) -> (%t: f32[5], %y: f32[5]) {
  %0 = Relu(%x)
  %t = Sigmoid(%0)
  %1 = Mul(%t, %t)
  %y = Neg(%1)
}
)",
                   passes::fuseElementwiseChains);
  EXPECT_EQ(r.changed, 4);
  EXPECT_EQ(r.printed,
            "graph @main(%x: f32[5]) -> (%t: f32[5], %y: f32[5]) {\n"
            "  %t = anvil.FusedElementwise(%x) {program=[\"Relu 0\", \"Sigmoid 1\"]} : f32[5]\n"
            "  %y = anvil.FusedElementwise(%t) {program=[\"Mul 0 0\", \"Neg 1\"]} : f32[5]\n"
            "}\n");
  EXPECT_EQ(r.error, 0.0);
}

// Symbolic batch: ranks are known and the kernel broadcasts at run time.
TEST(ElementwiseFusion, SymbolicDims) {
  ir::Model m = fusiontest::parseTyped(R"(graph @main(%x: f32[N,4]) -> (%y: f32[N,4]) {
  %c = const f32[4] [1, 2, 3, 4]
  %0 = Add(%x, %c)
  %y = Tanh(%0)
}
)");
  EXPECT_EQ(passes::fuseElementwiseChains(*m.graph, {}).changed, 2);
  ir::inferShapes(*m.graph);
  ir::verify(*m.graph);
  EXPECT_EQ(ir::printGraph(*m.graph),
            "graph @main(%x: f32[N,4]) -> (%y: f32[N,4]) {\n"
            "  %c = const f32[4] [1, 2, 3, 4]\n"
            "  %y = anvil.FusedElementwise(%x, %c) {program=[\"Add 0 1\", \"Tanh 2\"]} : f32[N,4]\n"
            "}\n");
}

TEST(ElementwiseFusion, Declines) {
  // A single op.
  expectUnchanged("graph @main(%x: f32[5]) -> (%y: f32[5]) {\n  %y = Relu(%x)\n}\n", passes::fuseElementwiseChains);
  // f64 and integer chains.
  expectUnchanged("graph @main(%x: f64[5]) -> (%y: f64[5]) {\n  %0 = Relu(%x)\n  %y = Neg(%0)\n}\n",
                  passes::fuseElementwiseChains);
  expectUnchanged("graph @main(%x: i32[5]) -> (%y: i32[5]) {\n  %0 = Abs(%x)\n  %y = Neg(%0)\n}\n",
                  passes::fuseElementwiseChains);
  // Max of three inputs; an unknown attribute; ops the program does not know.
  expectUnchanged(R"(graph @main(%x: f32[5], %z: f32[5]) -> (%y: f32[5]) {
  %0 = Max(%x, %z, %x)
  %y = Neg(%0)
}
)",
                  passes::fuseElementwiseChains);
  expectUnchanged(R"(graph @main(%x: f32[5]) -> (%y: f32[5]) {
  %0 = Relu(%x) {frobnicate=1}
  %y = Neg(%0)
}
)",
                  passes::fuseElementwiseChains);
  expectUnchanged(R"(graph @main(%x: f32[5]) -> (%y: f32[5]) {
  %0 = Atan(%x)
  %y = Softmax(%0)
}
)",
                  passes::fuseElementwiseChains);
}

// A lone op that no native kernel serves by itself (PRelu, Max, Elu, ...) becomes a
// one-instruction program: its kernel is vectorized, the reference kernel is not. A lone
// op with its own native kernel (Relu in Declines above) stays.
TEST(ElementwiseFusion, LoneOpsWithoutANativeKernelBecomePrograms) {
  auto prelu = runPass(R"(graph @main(%x: f32[2,3,5]) -> (%y: f32[2,3,5]) {
  %s = const f32[3,1] [0.25, -0.5, 2]
  %y = PRelu(%x, %s)
}
)",
                       passes::fuseElementwiseChains);
  EXPECT_EQ(prelu.changed, 1);
  EXPECT_NE(prelu.printed.find("anvil.FusedElementwise(%x, %s) {program=[\"PRelu 0 1\"]}"), std::string::npos)
      << prelu.printed;
  EXPECT_EQ(prelu.error, 0.0);
  for (const char* op : {"Elu", "Selu", "Celu", "Mish", "Softsign", "Sign", "Round", "Sin", "Cos", "ThresholdedRelu"}) {
    auto r = runPass(std::string("graph @main(%x: f32[7,3]) -> (%y: f32[7,3]) {\n  %y = ") + op + "(%x)\n}\n",
                     passes::fuseElementwiseChains);
    EXPECT_EQ(r.changed, 1) << op;
    EXPECT_NE(r.printed.find(std::string("program=[\"") + op + " 0"), std::string::npos) << r.printed;
    EXPECT_EQ(r.error, 0.0) << op;
  }
  for (const char* op : {"Max", "Min", "Sum"}) {
    auto r = runPass(std::string("graph @main(%x: f32[4,5], %z: f32[5]) -> (%y: f32[4,5]) {\n  %y = ") + op +
                         "(%x, %z)\n}\n",
                     passes::fuseElementwiseChains);
    EXPECT_EQ(r.changed, 1) << op;
    EXPECT_EQ(r.error, 0.0) << op;
  }
}

// A value read by an If branch stays computed.
TEST(ElementwiseFusion, SubgraphCaptureStays) {
  auto r = runPass(R"(graph @main(%c: bool[], %x: f32[5]) -> (%y: f32[5], %z: f32[5]) {
  %0 = Relu(%x)
  %y = Neg(%0)
  %z = If(%c) {
    else_branch=graph @else() -> (%0) {
    },
    then_branch=graph @then() -> (%1: f32[5]) {
      %1 = Exp(%0) : f32[5]
    }
  }
}
)",
                   passes::fuseElementwiseChains);
  EXPECT_EQ(r.changed, 0);
  EXPECT_EQ(r.error, 0.0);
}

// ---- the anvil.FusedElementwise op: every program op against its ONNX kernel ------------

struct OpCase {
  const char* onnx;     // the ONNX node as IR text: %y = ...(%a[, %b])
  const char* program;  // the same as one instruction over registers a=0, b=1
};

TEST(FusedElementwiseOp, EveryOpMatchesItsOnnxKernelBitwise) {
  const OpCase cases[] = {
      {"Add(%a, %b)", "Add 0 1"},
      {"Sub(%a, %b)", "Sub 0 1"},
      {"Mul(%a, %b)", "Mul 0 1"},
      {"Div(%a, %b)", "Div 0 1"},
      {"Pow(%a, %b)", "Pow 0 1"},
      {"Max(%a, %b)", "Max 0 1"},
      {"Min(%a, %b)", "Min 0 1"},
      {"PRelu(%a, %b)", "PRelu 0 1"},
      {"Abs(%a)", "Abs 0"},
      {"Neg(%a)", "Neg 0"},
      {"Exp(%a)", "Exp 0"},
      {"Log(%a)", "Log 0"},
      {"Sqrt(%a)", "Sqrt 0"},
      {"Reciprocal(%a)", "Reciprocal 0"},
      {"Sigmoid(%a)", "Sigmoid 0"},
      {"Tanh(%a)", "Tanh 0"},
      {"Relu(%a)", "Relu 0"},
      {"Erf(%a)", "Erf 0"},
      {"Floor(%a)", "Floor 0"},
      {"Ceil(%a)", "Ceil 0"},
      {"Round(%a)", "Round 0"},
      {"Sin(%a)", "Sin 0"},
      {"Cos(%a)", "Cos 0"},
      {"Softplus(%a)", "Softplus 0"},
      {"Softsign(%a)", "Softsign 0"},
      {"Sign(%a)", "Sign 0"},
      {"HardSwish(%a)", "HardSwish 0"},
      {"Mish(%a)", "Mish 0"},
      {"LeakyRelu(%a) {alpha=0.3}", "LeakyRelu 0 alpha=0.3"},
      {"Elu(%a) {alpha=0.7}", "Elu 0 alpha=0.7"},
      {"Selu(%a)", "Selu 0"},
      {"Celu(%a) {alpha=1.3}", "Celu 0 alpha=1.3"},
      {"HardSigmoid(%a) {alpha=0.3, beta=0.4}", "HardSigmoid 0 alpha=0.3 beta=0.4"},
      {"ThresholdedRelu(%a) {alpha=0.2}", "ThresholdedRelu 0 alpha=0.2"},
      {"Gelu(%a)", "Gelu 0"},
      {"Gelu(%a) {approximate=\"tanh\"}", "Gelu 0 approximate=tanh"},
      {"Clip(%a, %lo, %hi)", "Clip 0 1 2"},
  };
  for (const OpCase& c : cases) {
    SCOPED_TRACE(c.onnx);
    // [3,1,7] op [5,1] broadcasts both ways (odd sizes); PRelu's slope only to x.
    const bool prelu = std::string(c.onnx).rfind("PRelu", 0) == 0;
    const std::string bShape = prelu ? "[1,7]" : "[5,1]";
    const std::string head = "graph @main(%a: f32[3,1,7], %b: f32" + bShape +
                             ") -> (%y) {\n  %lo = const f32[] [-0.5]\n  %hi = const f32[] [0.75]\n";
    ir::Model onnx = fusiontest::parseTyped(head + "  %y = " + c.onnx + "\n}\n");
    // The fused node reads exactly the ONNX node's inputs, in order.
    const std::string onnxText = c.onnx;
    const std::string args = onnxText.substr(onnxText.find('(') + 1, onnxText.find(')') - onnxText.find('(') - 1);
    ir::Model fused = fusiontest::parseTyped(head + "  %y = anvil.FusedElementwise(" + args + ") {program=[\"" +
                                             c.program + "\"]}\n}\n");
    EXPECT_EQ(onnx.graph->outputs()[0]->type(), fused.graph->outputs()[0]->type());
    for (unsigned seed = 0; seed < 2; ++seed) {
      auto in = fusiontest::randomInputs(*onnx.graph, 99 + seed, 3.0);
      auto want = cpu::Interpreter::run(*onnx.graph, in);
      auto got = cpu::Interpreter::run(*fused.graph, in);
      ASSERT_EQ(got[0].dims(), want[0].dims());
      for (int64_t i = 0; i < want[0].numel(); ++i) {
        const float w = want[0].data<float>()[i], g = got[0].data<float>()[i];
        if (std::isnan(w)) EXPECT_TRUE(std::isnan(g)) << i;
        else EXPECT_EQ(g, w) << "element " << i;
      }
    }
  }
}

// The native kernel of the fused node (f32_fused_elementwise_chunked) is tested against
// the reference kernel in tests/unit/native_sequence_test.cpp.

// The fused node (reference kernel) against the unfused chain on the reference
// kernels over [8,64,56,56]: an arithmetic chain (scale, shift, residual, clip: memory
// bound) and SiLU + residual (exp bound). --gtest_also_run_disabled_tests.
TEST(FusedElementwiseOp, DISABLED_Timing) {
  const char* chains[] = {
      R"(graph @main(%x: f32[8,64,56,56], %z: f32[8,64,56,56]) -> (%y: f32[8,64,56,56]) {
  %s = const f32[] [0.5]
  %b = const f32[] [0.25]
  %lo = const f32[] [0]
  %hi = const f32[] [6]
  %0 = Mul(%x, %s)
  %1 = Add(%0, %b)
  %2 = Add(%1, %z)
  %y = Clip(%2, %lo, %hi)
}
)",
      R"(graph @main(%x: f32[8,64,56,56], %z: f32[8,64,56,56]) -> (%y: f32[8,64,56,56]) {
  %0 = Sigmoid(%x)
  %1 = Mul(%x, %0)
  %y = Add(%1, %z)
}
)"};
  for (const char* text : chains) {
    ir::Model before = fusiontest::parseTyped(text), after = fusiontest::parseTyped(text);
    passes::fuseElementwiseChains(*after.graph, {});
    ir::inferShapes(*after.graph);
    auto in = fusiontest::randomInputs(*before.graph, 5);
    auto time = [](auto&& f) {
      f();
      std::vector<double> ms;
      for (int i = 0; i < 5; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        f();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(ms.begin(), ms.end());
      return ms[2];
    };
    const double unfused = time([&] { cpu::Interpreter::run(*before.graph, in); });
    const double fusedRef = time([&] { cpu::Interpreter::run(*after.graph, in); });
    const ir::Node& fused = *after.graph->nodes().back();
    // The native kernel's times: NativeSequenceBench.DISABLED_Timing (native_sequence_test.cpp).
    std::printf("[ timing ] %s: unfused reference chain %.2f ms, fused reference %.2f ms\n",
                fused.attrs().getStrings("program")[0].c_str(), unfused, fusedRef);
  }
}

TEST(FusedElementwiseOp, ProgramTextRoundTrips) {
  ir::ew::Program p;
  const std::vector<std::string> text = {"Mul 0 1", "Clip 2 _ 1", "Selu 3 alpha=1.5 gamma=2", "Gelu 4 approximate=tanh",
                                         "Add 5 0"};
  ASSERT_EQ(ir::ew::parseProgram(text, 2, &p), "");
  EXPECT_EQ(ir::ew::formatProgram(p), text);
  EXPECT_EQ(p.numRegisters(), 7);
}

TEST(FusedElementwiseOp, BadProgramsNameTheInstruction) {
  auto expectError = [](const std::string& program, const std::string& what) {
    const std::string list = program.rfind("strings", 0) == 0 ? program : "[" + program + "]";
    const std::string text =
        "graph @main(%a: f32[3]) -> (%y) {\n  %y = anvil.FusedElementwise(%a) {program=" + list + "}\n}\n";
    try {
      fusiontest::parseTyped(text);
      ADD_FAILURE() << "no error for " << program;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expectError("\"Relu 1\"", "instruction 0 'Relu 1': operand '1' is not a register defined before");
  expectError("\"Relu 0\", \"Frob 1\"", "instruction 1 'Frob 1': unknown op 'Frob'");
  expectError("\"Add 0\"", "expected 2 operands");
  expectError("\"Relu _\"", "may not be omitted");
  expectError("\"LeakyRelu 0 beta=1\"", "unknown attribute 'beta'");
  expectError("\"Gelu 0 approximate=fast\"", "approximate must be none or tanh");
  expectError("strings[]", "program is empty");
}

TEST(FusedElementwiseOp, InputsMustShareAFloatType) {
  try {
    fusiontest::parseTyped(
        "graph @main(%a: f32[3], %b: f64[3]) -> (%y) {\n  %y = anvil.FusedElementwise(%a, %b) {program=[\"Add 0 1\"]}\n}\n");
    ADD_FAILURE() << "mixed types accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input 1 is f64"), std::string::npos) << e.what();
  }
}

}  // namespace
