// The verifier: valid graphs pass, and each defect class is reported naming the node.
#include <gtest/gtest.h>

#include "anvil/error.h"
#include "ir/op_schema.h"
#include "ir/text_parser.h"
#include "ir/verifier.h"

using namespace anvil;
using namespace anvil::ir;

namespace {

// Test-only ops (TestSplit3, TestIf, TestOpt, ...) are deliberately left out of the op
// table: it is global to the test binary, and registry_test requires every op in it to
// have a reference kernel. They parse and print as unknown ops (no schema), and the
// verifier is told to tolerate unknown ops wherever they appear.
const VerifyOptions kUnknownOpsOk{.allowUnknownOps = true};

class Verifier : public ::testing::Test {
 protected:
  void SetUp() override {
    x = g.addValue("x", {DataType::kF32, Shape{2}});
    g.addInput(x);
  }

  // The one defect reported, which must contain every fragment.
  void expectDefect(const std::vector<std::string>& fragments, const VerifyOptions& opt = {}) {
    std::vector<std::string> errors = verifyErrors(g, opt);
    ASSERT_EQ(errors.size(), 1u) << ::testing::PrintToString(errors);
    for (const std::string& f : fragments)
      EXPECT_NE(errors[0].find(f), std::string::npos) << "want '" << f << "' in: " << errors[0];
    try {
      verify(g, opt);
      ADD_FAILURE() << "verify did not throw";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
      EXPECT_NE(std::string(e.what()).find(errors[0]), std::string::npos) << e.what();
    }
  }

  Graph g{"main"};
  Value* x = nullptr;
};

TEST_F(Verifier, AcceptsValidGraphs) {
  Value* w = g.addInitializer("w", Tensor(DataType::kF32, {2}));
  Node* a = g.addNode("Add", "", "add", {x, w}, {"a"});
  Node* r = g.addNode("Relu", "", "relu", {a->output(0)}, {"y"});
  g.addOutput(r->output(0));
  g.addOutput(x);  // an input may be an output
  EXPECT_NO_THROW(verify(g));

  Model m = parseIrText(
      "graph @main(%c: bool[], %x: f32[2], %d: f32[2]) -> (%y) {\n"
      "  %d = const f32[2] [1, 2]\n"  // an input with a default
      "  %0, %1, %2 = TestSplit3(%x)\n"
      "  %3 = TestOpt(%0, none, %d)\n"
      "  %y = TestIf(%c) {\n"
      "    else_branch=graph @e() -> (%4) {\n"
      "      %4 = Add(%3, %1)\n"
      "      %5 = TestIf(%c) {\n"
      "        then_branch=graph @deep() -> (%6) {\n"
      "          %6 = Add(%4, %x)\n"  // two levels out
      "        }\n"
      "      }\n"
      "    },\n"
      "    then_branch=graph @t() -> (%2) {\n"
      "    }\n"
      "  }\n"
      "}\n");
  EXPECT_NO_THROW(verify(*m.graph, kUnknownOpsOk));
  EXPECT_EQ(verifyErrors(*m.graph).size(), 4u);  // TestSplit3, TestOpt and two TestIf are unknown
}

TEST_F(Verifier, UseBeforeDefinitionOutOfOrder) {
  Node* c = g.addNode("Relu", "", "consumer", {x}, {"b"});
  Node* p = g.addNode("Relu", "", "producer", {x}, {"a"});
  c->setInput(0, p->output(0));
  g.addOutput(c->output(0));
  expectDefect({"graph 'main'", "Relu 'consumer' (node #0)", "input 0 'a' is used before it is defined by",
                "Relu 'producer' (node #1)", "not in topological order"});
  g.topoSort();
  EXPECT_NO_THROW(verify(g));
}

TEST_F(Verifier, UndefinedValue) {
  Value* ghost = g.addValue("ghost");  // neither input, initializer nor node output
  g.addNode("Relu", "", "r", {ghost}, {"y"});
  expectDefect({"Relu 'r' (node #0)", "input 0 'ghost' is not defined"});
}

TEST_F(Verifier, ValueDefinedTwice) {
  Node* r = g.addNode("Relu", "", "r", {x}, {"y"});
  g.addInput(r->output(0));  // a node output that is also a graph input
  expectDefect({"value 'y' is defined twice", "graph input #1", "output 0 of Relu 'r' (node #0)"});
}

TEST_F(Verifier, InitializerThatIsAlsoANodeOutput) {
  Node* r = g.addNode("Relu", "", "r", {x}, {"y"});
  r->output(0)->setInitializer(Tensor(DataType::kF32, {2}));
  expectDefect({"value 'y' is defined twice", "an initializer", "output 0 of Relu 'r'"});
}

TEST_F(Verifier, ArityOutsideTheSchema) {
  g.addNode("Add", "", "lonely", {x}, {"y"});
  expectDefect({"Add 'lonely' (node #0)", "has 1 inputs, expected 2"});
}

TEST_F(Verifier, TooManyOutputs) {
  g.addNode("Relu", "", "r", {x}, {"a", "b"});
  expectDefect({"Relu 'r'", "has 2 outputs, expected 1"});
}

TEST_F(Verifier, RequiredInputOmitted) {
  g.addNode("Add", "", "a", {x, nullptr}, {"y"});
  expectDefect({"Add 'a'", "required input 1 is omitted"});
}

// Uses whichever registered op has optional inputs, so it follows the op table as it grows.
TEST_F(Verifier, OptionalInputsMayBeOmittedButNotExceeded) {
  const OpSchema* opt = nullptr;
  for (const OpSchema* s : OpRegistry::instance().all())
    if ((s->maxInputs < 0 || s->maxInputs > s->minInputs) && s->minOutputs <= 1 && (s->maxOutputs < 0 || s->maxOutputs >= 1)) {
      opt = s;
      break;
    }
  if (!opt) GTEST_SKIP() << "no registered op has optional inputs yet";
  std::vector<Value*> inputs(size_t(opt->minInputs), x);
  inputs.push_back(nullptr);  // the first optional input, omitted
  g.addNode(opt->name, opt->domain, "o", inputs, {"y"});
  EXPECT_TRUE(verifyErrors(g).empty()) << opt->name << ": " << ::testing::PrintToString(verifyErrors(g));
  if (opt->maxInputs < 0) return;  // variadic: no upper bound to exceed
  g.addNode(opt->name, opt->domain, "many", std::vector<Value*>(size_t(opt->maxInputs) + 1, x), {"z"});
  const std::string range = std::to_string(opt->minInputs) + ".." + std::to_string(opt->maxInputs);
  expectDefect({"'many' (node #1)", "has " + std::to_string(opt->maxInputs + 1) + " inputs, expected " + range});
}

TEST_F(Verifier, UnknownOp) {
  g.addNode("NoSuchOp", "", "n", {x}, {"y"});
  expectDefect({"NoSuchOp 'n' (node #0)", "op 'NoSuchOp' is not in the op table"});
  EXPECT_TRUE(verifyErrors(g, {.allowUnknownOps = true}).empty());
  Graph h("h");
  h.addNode("Thing", "com.example", "t", {}, {"y"});
  EXPECT_NE(verifyErrors(h).at(0).find("op 'com.example.Thing' is not in the op table"), std::string::npos);
}

TEST_F(Verifier, GraphOutputNotDefined) {
  g.addOutput(g.addValue("nowhere"));
  expectDefect({"graph 'main'", "graph output #0 'nowhere' is not defined"});
}

TEST_F(Verifier, NullGraphOutput) {
  g.addOutput(nullptr);
  expectDefect({"graph output #0 is null"});
}

TEST_F(Verifier, Cycle) {
  Node* a = g.addNode("Relu", "", "a", {x}, {"va"});
  Node* b = g.addNode("Relu", "", "b", {a->output(0)}, {"vb"});
  a->setInput(0, b->output(0));
  std::vector<std::string> errors = verifyErrors(g);
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].find("cycle: Relu 'a' (node #0) -> Relu 'b' (node #1) -> Relu 'a' (node #0)"),
            std::string::npos)
      << errors[0];
  EXPECT_THROW(verify(g), Error);
}

TEST_F(Verifier, SelfLoop) {
  Node* a = g.addNode("Relu", "", "a", {x}, {"va"});
  a->setInput(0, a->output(0));
  std::vector<std::string> errors = verifyErrors(g);
  ASSERT_EQ(errors.size(), 2u) << ::testing::PrintToString(errors);
  EXPECT_NE(errors[0].find("cycle: Relu 'a' (node #0) -> Relu 'a' (node #0)"), std::string::npos);
  EXPECT_NE(errors[1].find("input 0 'va' is an output of the same node"), std::string::npos);
}

TEST_F(Verifier, ValueOfAnUnrelatedGraph) {
  Graph other("other");
  Value* foreign = other.addValue("foreign", {});
  other.addInput(foreign);
  g.addNode("Relu", "", "r", {foreign}, {"y"});
  expectDefect({"Relu 'r'", "input 0 'foreign' belongs to graph 'other', which is not visible here"});
}

TEST_F(Verifier, GraphInputOwnedElsewhere) {
  Graph other("other");
  g.addInput(other.addValue("stray", {}));
  expectDefect({"graph input 'stray' belongs to graph 'other'"});
}

TEST_F(Verifier, SubgraphsAreVerifiedRecursively) {
  Node* n = g.addNode("TestIf", "", "if0", {x}, {"y"});
  auto body = std::make_shared<Graph>("then", &g);
  body->addNode("Add", "", "inner", {x}, {"z"});  // arity defect inside the subgraph
  body->addOutput(body->findValue("z"));
  n->attrs().set("then_branch", body);
  expectDefect({"graph 'main': TestIf 'if0' (node #0), attribute 'then_branch': graph 'then'",
                "Add 'inner' (node #0)", "has 1 inputs, expected 2"}, kUnknownOpsOk);
}

TEST_F(Verifier, SubgraphReadsOuterValueDefinedLater) {
  Node* n = g.addNode("TestIf", "", "if0", {x}, {"y"});
  Node* later = g.addNode("Relu", "", "later", {x}, {"late"});
  auto body = std::make_shared<Graph>("then", &g);
  Node* r = body->addNode("Relu", "", "inner", {later->output(0)}, {"z"});
  body->addOutput(r->output(0));
  n->attrs().set("then_branch", body);
  std::vector<std::string> errors = verifyErrors(g, kUnknownOpsOk);
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].find("Relu 'inner' (node #0): input 0 'late' belongs to enclosing graph 'main' but is "
                           "not defined there before the node that owns this subgraph"),
            std::string::npos)
      << ::testing::PrintToString(errors);
  g.topoSort();  // topoSort counts subgraph reads as dependencies
  EXPECT_NO_THROW(verify(g, kUnknownOpsOk));
}

TEST_F(Verifier, SubgraphReadsItsOwnersOutput) {
  Node* n = g.addNode("TestIf", "", "if0", {x}, {"y"});
  auto body = std::make_shared<Graph>("then", &g);
  Node* r = body->addNode("Relu", "", "inner", {n->output(0)}, {"z"});
  body->addOutput(r->output(0));
  n->attrs().set("then_branch", body);
  std::vector<std::string> errors = verifyErrors(g, kUnknownOpsOk);
  ASSERT_EQ(errors.size(), 2u) << ::testing::PrintToString(errors);
  EXPECT_NE(errors[0].find("cycle: TestIf 'if0' (node #0) -> TestIf 'if0' (node #0)"), std::string::npos);
  EXPECT_NE(errors[1].find("input 0 'y' belongs to enclosing graph 'main'"), std::string::npos);
}

TEST_F(Verifier, SubgraphReadsASiblingSubgraphsValue) {
  Node* n = g.addNode("TestIf", "", "if0", {x}, {"y"});
  auto a = std::make_shared<Graph>("a", &g);
  Node* ra = a->addNode("Relu", "", "ra", {x}, {"za"});
  a->addOutput(ra->output(0));
  auto b = std::make_shared<Graph>("b", &g);
  Node* rb = b->addNode("Relu", "", "rb", {ra->output(0)}, {"zb"});
  b->addOutput(rb->output(0));
  n->attrs().set("else_branch", a);
  n->attrs().set("then_branch", b);
  expectDefect({"attribute 'then_branch': graph 'b'", "Relu 'rb'", "input 0 'za' belongs to graph 'a', which is not visible here"}, kUnknownOpsOk);
}

TEST_F(Verifier, SubgraphWithWrongParent) {
  Node* n = g.addNode("TestIf", "", "if0", {x}, {"y"});
  auto body = std::make_shared<Graph>("orphan", nullptr);
  Value* in = body->addValue("in", {});
  body->addInput(in);
  body->addOutput(in);
  n->attrs().set("then_branch", body);
  expectDefect({"TestIf 'if0' (node #0), attribute 'then_branch'",
                "subgraph 'orphan' has parent <none>, expected the enclosing graph 'main'"}, kUnknownOpsOk);
}

TEST_F(Verifier, NullSubgraph) {
  Node* n = g.addNode("TestIf", "", "if0", {x}, {"y"});
  n->attrs().set("then_branch", std::shared_ptr<Graph>());
  expectDefect({"attribute 'then_branch'", "holds a null graph"}, kUnknownOpsOk);
}

TEST_F(Verifier, ReportsEveryDefect) {
  g.addNode("NoSuchOp", "", "u", {x}, {"a"});
  g.addNode("Add", "", "short", {x}, {"b"});
  g.addOutput(g.addValue("nowhere"));
  EXPECT_EQ(verifyErrors(g).size(), 3u);
  try {
    verify(g);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("verify: 3 defect(s)"), std::string::npos) << e.what();
  }
}

}  // namespace
