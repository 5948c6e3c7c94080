// The Graph API: use replacement, node removal, topological sort, users across
// subgraphs, dead value removal, name lookup through enclosing graphs.
#include <gtest/gtest.h>

#include <algorithm>

#include "anvil/error.h"
#include "ir/graph.h"
#include "ir/op_schema.h"
#include "ir/printer.h"
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

class GraphApi : public ::testing::Test {};

std::vector<std::string> opOrder(const Graph& g) {
  std::vector<std::string> out;
  for (const auto& n : g.nodes()) out.push_back(n->name());
  return out;
}

bool contains(const std::vector<Node*>& v, const Node* n) { return std::find(v.begin(), v.end(), n) != v.end(); }

TEST_F(GraphApi, ReplaceAllUsesRewritesInputsOutputsAndSubgraphs) {
  Model m = parseIrText(
      "graph @main(%c: bool[], %x: f32[2]) -> (%y, %0) {\n"
      "  %0 = Relu(%x)\n"
      "  %1 = Relu(%x)\n"
      "  %y = Add(%0, %0)\n"
      "  %2 = TestIf(%c) {\n"
      "    then_branch=graph @t() -> (%3) {\n"
      "      %3 = Add(%0, %x)\n"
      "    }\n"
      "  }\n"
      "}\n");
  Graph& g = *m.graph;
  Value* from = g.findValue("0");
  Value* to = g.findValue("1");
  g.replaceAllUses(from, to);
  EXPECT_EQ(printGraph(g),
            "graph @main(%c: bool[], %x: f32[2]) -> (%y, %1) {\n"
            "  %0 = Relu(%x)\n"
            "  %1 = Relu(%x)\n"
            "  %y = Add(%1, %1)\n"
            "  %2 = TestIf(%c) {\n"
            "    then_branch=graph @t() -> (%3) {\n"
            "      %3 = Add(%1, %x)\n"
            "    }\n"
            "  }\n"
            "}\n");
  EXPECT_TRUE(g.users(from).empty());
  EXPECT_EQ(g.users(to).size(), 2u);
}

TEST_F(GraphApi, RemoveNodeThenRemoveUnusedValues) {
  Graph g("main");
  Value* x = g.addValue("x", {});
  g.addInput(x);
  Node* dead = g.addNode("Relu", "", "dead", {x}, {"d"});
  Node* live = g.addNode("Relu", "", "live", {x}, {"l"});
  g.addOutput(live->output(0));
  Value* d = dead->output(0);
  g.removeNode(dead);
  EXPECT_EQ(opOrder(g), std::vector<std::string>{"live"});
  EXPECT_EQ(d->producer(), nullptr);  // kept, without producer, until the sweep
  EXPECT_EQ(g.findValue("d"), d);
  g.removeUnusedValues();
  EXPECT_EQ(g.findValue("d"), nullptr);
  EXPECT_NE(g.findValue("l"), nullptr);
  EXPECT_NE(g.findValue("x"), nullptr);
  EXPECT_NO_THROW(verify(g, kUnknownOpsOk));
  // The name is free again.
  EXPECT_NO_THROW(g.addValue("d", {}));
}

TEST_F(GraphApi, RemoveUnusedValuesKeepsInitializersUsedOnlyFromSubgraphs) {
  Model m = parseIrText(
      "graph @main(%c: bool[]) -> (%y) {\n"
      "  %w = const f32[1] [1]\n"
      "  %unused = const f32[1] [2]\n"
      "  %y = TestIf(%c) {\n"
      "    then_branch=graph @t() -> (%0) {\n"
      "      %0 = Relu(%w)\n"
      "    }\n"
      "  }\n"
      "}\n");
  Graph& g = *m.graph;
  g.addValue("stray", {});
  g.removeUnusedValues();
  EXPECT_NE(g.findValue("w"), nullptr);
  EXPECT_EQ(g.findValue("stray"), nullptr);
  // An initializer nothing reads is dead too.
  EXPECT_EQ(g.findValue("unused"), nullptr);
  EXPECT_NO_THROW(verify(g, kUnknownOpsOk));
}

TEST_F(GraphApi, TopoSortIsStableAndFollowsSubgraphReads) {
  Graph g("main");
  Value* x = g.addValue("x", {});
  g.addInput(x);
  Node* c = g.addNode("Relu", "", "c", {x}, {"vc"});
  g.addNode("Relu", "", "indep", {x}, {"vi"});
  Node* ifn = g.addNode("TestIf", "", "if", {x}, {"vif"});
  Node* a = g.addNode("Relu", "", "a", {x}, {"va"});
  Node* b = g.addNode("Relu", "", "b", {a->output(0)}, {"vb"});
  c->setInput(0, b->output(0));  // c reads b, which reads a: both later
  auto body = std::make_shared<Graph>("t", &g);
  Node* inner = body->addNode("Relu", "", "inner", {c->output(0)}, {"vin"});  // if reads c from inside
  body->addOutput(inner->output(0));
  ifn->attrs().set("then_branch", body);
  g.addOutput(ifn->output(0));
  EXPECT_FALSE(verifyErrors(g).empty());
  g.topoSort();
  EXPECT_EQ(opOrder(g), (std::vector<std::string>{"a", "b", "c", "indep", "if"}));
  EXPECT_NO_THROW(verify(g, kUnknownOpsOk));
  g.topoSort();  // already sorted: unchanged
  EXPECT_EQ(opOrder(g), (std::vector<std::string>{"a", "b", "c", "indep", "if"}));
}

TEST_F(GraphApi, TopoSortReportsACycle) {
  Graph g("main");
  Value* x = g.addValue("x", {});
  g.addInput(x);
  Node* a = g.addNode("Relu", "", "a", {x}, {"va"});
  Node* b = g.addNode("Relu", "", "b", {a->output(0)}, {"vb"});
  a->setInput(0, b->output(0));
  try {
    g.topoSort();
    FAIL() << "no error for a cycle";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
    EXPECT_NE(std::string(e.what()).find("cycle"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Relu '"), std::string::npos) << e.what();
  }
}

TEST_F(GraphApi, UsersAcrossSubgraphs) {
  Model m = parseIrText(
      "graph @main(%c: bool[], %x: f32[2]) -> (%y) {\n"
      "  %0 = Relu(%x)\n"
      "  %y = TestIf(%c) {\n"
      "    then_branch=graph @t() -> (%2) {\n"
      "      %1 = Relu(%0)\n"
      "      %2 = TestIf(%c) {\n"
      "        then_branch=graph @deep() -> (%3) {\n"
      "          %3 = Add(%1, %x)\n"
      "        }\n"
      "      }\n"
      "    }\n"
      "  }\n"
      "}\n");
  const Graph& g = *m.graph;
  const Node* relu = g.nodes()[0].get();
  const Node* ifn = g.nodes()[1].get();
  std::vector<Node*> xUsers = g.users(g.findValue("x"));
  EXPECT_EQ(xUsers.size(), 2u);  // Relu directly, If through its nested body
  EXPECT_TRUE(contains(xUsers, relu));
  EXPECT_TRUE(contains(xUsers, ifn));
  std::vector<Node*> zeroUsers = g.users(relu->output(0));
  ASSERT_EQ(zeroUsers.size(), 1u);
  EXPECT_EQ(zeroUsers[0], ifn);
  // Inside the body, the inner If uses %1 through its own body.
  const Graph* body = ifn->attrs().getGraph("then_branch");
  std::vector<Node*> inner = body->users(body->findValue("1"));
  ASSERT_EQ(inner.size(), 1u);
  EXPECT_EQ(inner[0]->op(), "TestIf");
  EXPECT_EQ(g.subgraphs().size(), 2u);
}

TEST_F(GraphApi, LookupSeesEnclosingGraphsAndNamesAreUnique) {
  Graph g("main");
  Value* x = g.addValue("x", {});
  auto sub = std::make_shared<Graph>("sub", &g);
  Value* y = sub->addValue("y", {});
  EXPECT_EQ(sub->lookup("x"), x);
  EXPECT_EQ(sub->lookup("y"), y);
  EXPECT_EQ(sub->findValue("x"), nullptr);
  EXPECT_EQ(g.lookup("y"), nullptr);
  EXPECT_THROW(g.addValue("x", {}), Error);
  EXPECT_EQ(x->owner(), &g);
  EXPECT_EQ(y->owner(), sub.get());
}

TEST_F(GraphApi, AddNodeAttachesSchemasAndNormalizesDomain) {
  Graph g("main");
  Value* x = g.addValue("x", {});
  Node* r = g.addNode("Relu", "ai.onnx", "r", {x}, {"y"});
  EXPECT_EQ(r->domain(), "");
  ASSERT_NE(r->schema(), nullptr);
  EXPECT_EQ(r->schema()->name, "Relu");
  EXPECT_EQ(r->output(0)->producer(), r);
  EXPECT_EQ(r->owner(), &g);
  Node* u = g.addNode("Unknown", "", "u", {x}, {"z"});
  EXPECT_EQ(u->schema(), nullptr);
  EXPECT_EQ(u->label(), "Unknown 'u'");
}

// A subgraph may return an outer value directly (`-> (%w)` with no node reading it).
// Graph::removeUnusedValues only counts reads by subgraph *nodes*, so it frees such a
// value while the subgraph still points at it. Disabled until graph.cpp counts subgraph
// outputs as uses (users() and topoSort() have the same blind spot).
TEST_F(GraphApi, RemoveUnusedValuesKeepsValuesReturnedBySubgraphs) {
  Model m = parseIrText(
      "graph @main(%c: bool[]) -> (%y) {\n"
      "  %w = const f32[1] [1]\n"
      "  %y = TestIf(%c) {\n"
      "    then_branch=graph @t() -> (%w: f32[1]) {\n"
      "    }\n"
      "  }\n"
      "}\n");
  Graph& g = *m.graph;
  EXPECT_EQ(g.users(g.findValue("w")).size(), 1u);
  g.removeUnusedValues();
  ASSERT_NE(g.findValue("w"), nullptr);
  EXPECT_NO_THROW(verify(g, kUnknownOpsOk));
}

}  // namespace
