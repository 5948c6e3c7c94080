// The Graph API: use replacement, node removal, topological sort, users across
// subgraphs, dead value removal, name lookup through enclosing graphs; value and node
// metadata (layouts, quantization, devices, precision) and the verifier's checks of it.
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

// ---- metadata ------------------------------------------------------------------------

TEST_F(GraphApi, LayoutNamesReadBack) {
  struct Case {
    const char* name;
    const char* family;
    int32_t block;
  };
  const Case cases[] = {{"NCHW", "NCHW", 0},          {"NHWC", "NHWC", 0},
                        {"NCHW8c", "NCHWc", 8},       {"NCHW16c", "NCHWc", 16},
                        {"packed_gemm_b_16", "packed_gemm_b", 16}, {"NCDHW4c", "NCDHWc", 4},
                        {"my_format", "my_format", 0}, {"OIHW", "OIHW", 0}};
  for (const Case& c : cases) {
    std::optional<Layout> l = parseLayout(c.name);
    ASSERT_TRUE(l) << c.name;
    EXPECT_EQ(l->family(), c.family) << c.name;
    EXPECT_EQ(l->block(), c.block) << c.name;
    EXPECT_EQ(layoutName(*l), c.name);
    EXPECT_EQ(Layout::of(c.family, c.block), *l) << c.name;
  }
  EXPECT_EQ(parseLayout("plain"), Layout::plain());
  EXPECT_EQ(parseLayout(""), Layout::plain());
  EXPECT_EQ(layoutName(Layout()), "plain");
  EXPECT_TRUE(Layout::nchw().isRowMajor());
  EXPECT_FALSE(Layout::nchwc(8).isRowMajor());
  for (const char* bad : {"8c", "NCHW0c", "NCHW08c", "NCHW99999c", "x_0", "a__3", "_1", "NC-HW", "N CHW",
                          "NCHWc_8"})
    EXPECT_FALSE(parseLayout(bad)) << bad;
  // A family whose name would read back as another one cannot be made.
  EXPECT_THROW(Layout::of("foo_3"), Error);
  EXPECT_THROW(Layout::of("NCHWc_", 8), Error);
  EXPECT_THROW(Layout::of("", 8), Error);
  EXPECT_EQ(deviceName(Device::kCUDA), std::string("cuda"));
  EXPECT_EQ(parseDevice("cpu"), Device::kCPU);
  EXPECT_FALSE(parseDevice("gpu"));
}

TEST_F(GraphApi, MetadataDefaultsAndCopies) {
  Graph g;
  Value* x = g.addValue("x", {DataType::kF32, Shape({1, 8, 2, 2})});
  EXPECT_TRUE(x->hasDefaultMeta());
  Node* n = g.addNode("Relu", "", "r", {x}, {"y"});
  EXPECT_TRUE(n->hasDefaultMeta());
  EXPECT_EQ(n->precision(), DataType::kUndefined);

  x->setLayout(Layout::nchwc(8));
  x->setDevice(Device::kCUDA);
  x->setQuantization(Quantization{Tensor::scalar<float>(DataType::kF32, 0.5f), Tensor(), std::nullopt});
  EXPECT_FALSE(x->hasDefaultMeta());
  Value* y = n->output(0);
  EXPECT_FALSE(y->sameMeta(*x));
  y->copyMetaFrom(*x);
  EXPECT_TRUE(y->sameMeta(*x));
  EXPECT_EQ(y->layout(), Layout::nchwc(8));
  EXPECT_EQ(y->name(), "y");  // only metadata is copied

  n->setPrecision(DataType::kF16);
  n->setDevice(Device::kCUDA);
  n->tacticParams().set("tile", int64_t(8));
  Node* m = g.addNode("Relu", "", "r2", {y}, {"z"});
  m->copyMetaFrom(*n);
  EXPECT_EQ(m->precision(), DataType::kF16);
  EXPECT_EQ(m->device(), Device::kCUDA);
  EXPECT_EQ(m->tacticParams().getInt("tile", 0), 8);
  EXPECT_EQ(m->name(), "r2");

  Quantization a{Tensor::scalar<float>(DataType::kF32, 0.5f), Tensor::scalar<int8_t>(DataType::kI8, 1), std::nullopt};
  Quantization b = a;
  EXPECT_EQ(a, b);
  b.zeroPoint = Tensor::scalar<int8_t>(DataType::kI8, 2);
  EXPECT_NE(a, b);
  b = a;
  b.axis = 0;
  EXPECT_NE(a, b);
}

TEST_F(GraphApi, VerifierChecksMetadata) {
  Graph g;
  Value* x = g.addValue("x", {DataType::kI8, Shape({2, 3})});
  g.addInput(x);
  Node* n = g.addNode("Relu", "", "r", {x}, {"y"});
  n->output(0)->setType({DataType::kI8, Shape({2, 3})});
  g.addOutput(n->output(0));
  EXPECT_TRUE(verifyErrors(g).empty());

  auto only = [&](const std::string& fragment) {
    auto errors = verifyErrors(g);
    ASSERT_EQ(errors.size(), 1u) << (errors.empty() ? "no error" : errors[0]);
    EXPECT_NE(errors[0].find(fragment), std::string::npos) << errors[0];
  };
  x->setLayout(Layout::nchwc(8));
  only("value 'x': layout NCHW8c needs rank 4, the value is i8[2,3]");
  x->setLayout(Layout::packedGemmB(16));
  EXPECT_TRUE(verifyErrors(g).empty());

  Quantization q{Tensor::fromVector<float>(DataType::kF32, {3}, {1, 2, 3}),
                 Tensor::fromVector<int8_t>(DataType::kI8, {3}, {0, 0, 0}), int64_t(1)};
  n->output(0)->setQuantization(q);
  EXPECT_TRUE(verifyErrors(g).empty());
  q.axis = 0;
  n->output(0)->setQuantization(q);
  only("value 'y': quantization scale f32[3] does not match dim 0 of i8[2,3]");
  q.axis = 1;
  q.zeroPoint = Tensor::fromVector<uint8_t>(DataType::kU8, {3}, {0, 0, 0});
  n->output(0)->setQuantization(q);
  only("zero point is u8[3] but the value is i8[2,3]");
  n->output(0)->setQuantization(std::nullopt);

  n->setPrecision(DataType::kString);
  only("Relu 'r' (node #0): precision string is not a numeric type");
  n->setPrecision(DataType::kF32);
  n->tacticParams().set("body", std::make_shared<Graph>("b", &g));
  only("tactic parameter 'body' holds a graph");
}

// A value stored quantized (u8 with its grid, as the builder keeps activations between
// INT8 layers): ops and shape inference see its expressed f32 type, the value keeps u8.
TEST_F(GraphApi, LoweredValuesInferAsTheirExpressedType) {
  Graph g;
  Value* x = g.addValue("x", {DataType::kF32, Shape({1, 3, 5, 5})});
  g.addInput(x);
  Value* w = g.addInitializer("w", Tensor(DataType::kF32, {8, 3, 3, 3}));
  Value* w2 = g.addInitializer("w2", Tensor(DataType::kF32, {4, 8, 1, 1}));
  Node* c1 = g.addNode("Conv", "", "c1", {x, w}, {"y"});
  c1->attrs().set("pads", std::vector<int64_t>{1, 1, 1, 1});
  Node* r = g.addNode("Relu", "", "r", {c1->output(0)}, {"z"});
  Node* c2 = g.addNode("Conv", "", "c2", {r->output(0), w2}, {"out"});
  g.addOutput(c2->output(0));
  Value* y = c1->output(0);
  Value* z = r->output(0);
  inferShapes(g);
  EXPECT_EQ(y->type().str(), "f32[1,8,5,5]");
  EXPECT_FALSE(y->isLowered());

  const Quantization q{Tensor::scalar<float>(DataType::kF32, 0.1f), Tensor::scalar<uint8_t>(DataType::kU8, 3),
                       std::nullopt};
  y->setQuantization(q);
  EXPECT_FALSE(y->isLowered()) << "a float value with a grid is annotated, not lowered";
  y->setType({DataType::kU8, y->shape()});
  z->setType({DataType::kU8, z->shape()});  // no grid: a plain u8 value, not lowered
  EXPECT_TRUE(y->isLowered());
  EXPECT_FALSE(z->isLowered());
  EXPECT_EQ(y->expressedType().str(), "f32[1,8,5,5]");
  EXPECT_FALSE(w->isLowered());
  inferShapes(g);
  EXPECT_EQ(y->type().str(), "u8[1,8,5,5]") << "the producer's inference must keep the storage type";
  EXPECT_EQ(z->type().str(), "f32[1,8,5,5]") << "a reader sees the expressed type";
  EXPECT_EQ(c2->output(0)->type().str(), "f32[1,4,5,5]");
  EXPECT_TRUE(verifyErrors(g).empty());

  // A constant is never lowered (its quantization describes how kernels pack it).
  w->setQuantization(Quantization{Tensor::fromVector<float>(DataType::kF32, {8}, std::vector<float>(8, 0.5f)), Tensor(),
                                  int64_t(0)});
  w->type().dtype = DataType::kI8;
  EXPECT_FALSE(w->isLowered());
}

}  // namespace
