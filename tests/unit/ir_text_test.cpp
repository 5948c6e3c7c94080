// The IR text form: printer goldens, print/parse round trips for every attribute kind,
// type and graph shape, and the parser's errors on malformed text.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "anvil/error.h"
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

TensorType f32(std::vector<Dim> dims) { return {DataType::kF32, Shape(std::move(dims))}; }

// print(parse(text)) must give text back; returns the parsed model.
Model expectCanonical(const std::string& text, const WeightMap& weights = {}) {
  Model m = parseIrText(text, weights);
  EXPECT_EQ(printModel(m), text);
  return m;
}

// print(parse(print(g))) == print(g), with weights passed by reference; returns the copy.
Model roundTrip(const Graph& g, const PrintOptions& opt = {}) {
  WeightMap weights;
  const std::string text = printGraph(g, opt, &weights);
  Model m = parseIrText(text, weights);
  EXPECT_EQ(printGraph(*m.graph, opt), text);
  return m;
}

class IrText : public ::testing::Test {};

TEST_F(IrText, GoldenSmallGraph) {
  Graph g("main");
  Value* x = g.addValue("x", f32({Dim::symbol("N"), 3}));
  g.addInput(x);
  Value* w = g.addInitializer("w", Tensor::fromVector<float>(DataType::kF32, {3}, {0.5f, 1.0f, -2.0f}));
  g.addInitializer("big", Tensor(DataType::kF32, {4, 8}));
  Node* add = g.addNode("Add", "", "add0", {x, w}, {"sum"});
  add->output(0)->setType(f32({Dim::symbol("N"), 3}));
  Node* relu = g.addNode("Relu", "", "relu0", {add->output(0)}, {"y"});
  relu->output(0)->setType(f32({Dim::symbol("N"), 3}));
  g.addOutput(relu->output(0));

  WeightMap weights;
  EXPECT_EQ(printGraph(g, {}, &weights),
            "graph @main(%x: f32[N,3]) -> (%y: f32[N,3]) {\n"
            "  %w = const f32[3] [0.5, 1, -2]\n"
            "  %big = const f32[4,8] @big\n"
            "  %0 = Add(%x, %w) : f32[N,3]\n"
            "  %y = Relu(%0) : f32[N,3]\n"
            "}\n");
  ASSERT_EQ(weights.size(), 1u);
  EXPECT_TRUE(weights.at("big").sameAs(Tensor(DataType::kF32, {4, 8})));

  PrintOptions opt;
  opt.nodeNames = true;
  opt.inlineLimit = 2;
  EXPECT_EQ(printGraph(g, opt),
            "graph @main(%x: f32[N,3]) -> (%y: f32[N,3]) {\n"
            "  %w = const f32[3] @w\n"
            "  %big = const f32[4,8] @big\n"
            "  %0 = Add(%x, %w) : f32[N,3] loc(\"add0\")\n"
            "  %y = Relu(%0) : f32[N,3] loc(\"relu0\")\n"
            "}\n");
  Model back = roundTrip(g, opt);
  EXPECT_EQ(back.graph->nodes()[0]->name(), "add0");
  EXPECT_TRUE(verifyErrors(*back.graph).empty());
}

TEST_F(IrText, GoldenModelWithSubgraphsMultipleOutputsAndOmittedInputs) {
  const std::string text =
      "model {ir_version=9, opsets={\"\"=21, \"anvil\"=1}, producer_name=\"test\"}\n"
      "graph @main(%c: bool[], %x: f32[N,6]) -> (%y: f32[N,2], %z: f32[N,2]) {\n"
      "  %0, %1, %z = TestSplit3(%x) : f32[N,2], f32[N,2], f32[N,2]\n"
      "  %2 = TestOpt(%0, none, %1) : f32[N,2]\n"
      "  %y = TestIf(%c) {\n"
      "    else_branch=graph @else() -> (%3: f32[N,2]) {\n"
      "      %3 = Add(%2, %z) : f32[N,2]\n"
      "    },\n"
      "    then_branch=graph @then() -> (%2: f32[N,2]) {\n"
      "    }\n"
      "  } : f32[N,2]\n"
      "  %4 = anvil.TestFused(%y, %z) {alpha=0.5}\n"
      "}\n";
  Model m = expectCanonical(text);
  EXPECT_EQ(m.irVersion, 9);
  EXPECT_EQ(m.opsets.at(""), 21);
  EXPECT_EQ(m.opsets.at("anvil"), 1);
  EXPECT_EQ(m.producerName, "test");
  const Graph& g = *m.graph;
  EXPECT_TRUE(verifyErrors(g, kUnknownOpsOk).empty()) << ::testing::PrintToString(verifyErrors(g, kUnknownOpsOk));
  ASSERT_EQ(g.nodes().size(), 4u);
  EXPECT_EQ(g.nodes()[0]->numOutputs(), 3u);
  const Node& opt = *g.nodes()[1];
  ASSERT_EQ(opt.numInputs(), 3u);
  EXPECT_EQ(opt.input(1), nullptr);
  EXPECT_EQ(g.nodes()[3]->domain(), "anvil");
  EXPECT_EQ(g.nodes()[3]->op(), "TestFused");
  // The else branch reads the outer values themselves, not copies.
  const Graph* elseBranch = g.nodes()[2]->attrs().getGraph("else_branch");
  ASSERT_NE(elseBranch, nullptr);
  EXPECT_EQ(elseBranch->parent(), &g);
  EXPECT_EQ(elseBranch->nodes()[0]->input(0), opt.output(0));
  EXPECT_EQ(elseBranch->nodes()[0]->input(1), g.outputs()[1]);
  // The then branch returns an outer value directly.
  EXPECT_EQ(g.nodes()[2]->attrs().getGraph("then_branch")->outputs()[0], opt.output(0));
}

TEST_F(IrText, RoundTripsEveryAttributeKind) {
  Graph g("main");
  Value* x = g.addValue("x", f32({2}));
  g.addInput(x);
  Node* n = g.addNode("TestAttrs", "", "", {x}, {"y"});
  g.addOutput(n->output(0));
  g.docString = "the \"main\" graph";
  Attributes& a = n->attrs();
  a.set("i", int64_t(-3));
  a.set("i_max", std::numeric_limits<int64_t>::max());
  a.set("i_min", std::numeric_limits<int64_t>::min());
  a.set("f", 0.1f);
  a.set("f_whole", 1.0f);
  a.set("f_big", 1e8f);
  a.set("f_tiny", 1e-45f);  // a denormal
  a.set("f_negzero", -0.0f);
  a.set("f_inf", -std::numeric_limits<float>::infinity());
  a.set("f_nan", std::numeric_limits<float>::quiet_NaN());
  a.set("s", std::string("quote \" backslash \\ newline \n tab \t ctl \x01 utf8 \xc3\xa9"));
  a.set("s_empty", std::string());
  a.set("ints", std::vector<int64_t>{1, -2, 3});
  a.set("floats", std::vector<float>{1.5f, -0.25f, 3.4028235e38f, 2.0f});
  a.set("strings", std::vector<std::string>{"", "a b", "\"q\""});
  a.set("ints_empty", std::vector<int64_t>{});
  a.set("floats_empty", std::vector<float>{});
  a.set("strings_empty", std::vector<std::string>{});
  a.set("graphs_empty", std::vector<std::shared_ptr<Graph>>{});
  a.set("t_small", Tensor::fromVector<int64_t>(DataType::kI64, {2, 2}, {1, -2, 3, 4}));
  a.set("t_large", Tensor::fromVector<float>(DataType::kF32, {5, 5}, std::vector<float>(25, 0.75f)));
  a.set("t_scalar", Tensor::scalar<float>(DataType::kF32, 2.5f));
  a.set("t_undefined", Tensor());
  auto body = std::make_shared<Graph>("body", &g);
  Value* bx = body->addValue("bx", f32({2}));
  body->addInput(bx);
  Node* bn = body->addNode("Add", "", "", {bx, x}, {"by"});  // reads the outer %x
  body->docString = "body";
  body->addOutput(bn->output(0));
  a.set("g", body);
  std::vector<std::shared_ptr<Graph>> branches;
  for (int k = 0; k < 2; ++k) {
    auto b = std::make_shared<Graph>("branch" + std::to_string(k), &g);
    Node* r = b->addNode("Relu", "", "", {x}, {"r"});
    r->attrs().set("k", int64_t(k));
    b->addOutput(r->output(0));
    branches.push_back(b);
  }
  a.set("gs", branches);

  WeightMap weights;
  const std::string text = printGraph(g, {}, &weights);
  EXPECT_NE(text.find("f_whole=1.0,"), std::string::npos) << text;
  EXPECT_NE(text.find("f_nan=nan,"), std::string::npos) << text;
  EXPECT_NE(text.find("ints_empty=ints[],"), std::string::npos) << text;
  EXPECT_NE(text.find("t_large=tensor f32[5,5] @y.t_large"), std::string::npos) << text;
  EXPECT_NE(text.find("t_small=tensor i64[2,2] [1, -2, 3, 4]"), std::string::npos) << text;
  EXPECT_EQ(weights.count("y.t_large"), 1u);

  EXPECT_NE(text.find("graph @main(%x: f32[2]) -> (%y) doc=\"the \\\"main\\\" graph\" {"), std::string::npos) << text;
  Model m = roundTrip(g);
  EXPECT_EQ(m.graph->docString, g.docString);
  EXPECT_EQ(m.graph->nodes()[0]->attrs().getGraph("g")->docString, "body");
  const Attributes& b = m.graph->nodes()[0]->attrs();
  EXPECT_EQ(b.all().size(), a.all().size());
  EXPECT_EQ(b.getInt("i", 0), -3);
  EXPECT_EQ(b.getInt("i_max", 0), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(b.getInt("i_min", 0), std::numeric_limits<int64_t>::min());
  for (const char* name : {"f", "f_whole", "f_big", "f_tiny", "f_negzero", "f_inf"}) {
    float want = a.getFloat(name, 0), got = b.getFloat(name, 1);
    EXPECT_EQ(std::memcmp(&want, &got, sizeof want), 0) << name;  // bit for bit
  }
  EXPECT_TRUE(std::isnan(b.getFloat("f_nan", 0)));
  EXPECT_EQ(b.getString("s", ""), a.getString("s", "x"));
  EXPECT_EQ(b.find("s_empty")->kind(), Attribute::Kind::kString);
  EXPECT_EQ(b.getInts("ints"), a.getInts("ints"));
  EXPECT_EQ(b.getFloats("floats"), a.getFloats("floats"));
  EXPECT_EQ(b.getStrings("strings"), a.getStrings("strings"));
  EXPECT_EQ(b.find("ints_empty")->kind(), Attribute::Kind::kInts);
  EXPECT_EQ(b.find("floats_empty")->kind(), Attribute::Kind::kFloats);
  EXPECT_EQ(b.find("strings_empty")->kind(), Attribute::Kind::kStrings);
  EXPECT_EQ(b.find("graphs_empty")->kind(), Attribute::Kind::kGraphs);
  EXPECT_TRUE(b.getTensor("t_small")->sameAs(*a.getTensor("t_small")));
  EXPECT_TRUE(b.getTensor("t_large")->sameAs(*a.getTensor("t_large")));
  EXPECT_TRUE(b.getTensor("t_scalar")->sameAs(*a.getTensor("t_scalar")));
  EXPECT_FALSE(b.getTensor("t_undefined")->defined());
  const Graph* g2 = b.getGraph("g");
  ASSERT_NE(g2, nullptr);
  EXPECT_EQ(g2->nodes()[0]->input(1), m.graph->inputs()[0]);  // the outer %x
  const auto& gs = std::get<std::vector<std::shared_ptr<Graph>>>(b.find("gs")->value);
  ASSERT_EQ(gs.size(), 2u);
  EXPECT_EQ(gs[1]->nodes()[0]->attrs().getInt("k", 0), 1);
  EXPECT_TRUE(verifyErrors(*m.graph, kUnknownOpsOk).empty());
}

TEST_F(IrText, RoundTripsInitializersOfEveryElementType) {
  Graph g("main");
  auto init = [&g](const std::string& name, Tensor t) { g.addInitializer(name, std::move(t)); };
  init("f32", Tensor::fromVector<float>(DataType::kF32, {4}, {0.1f, -1e-40f, 3.4028235e38f, -0.0f}));
  init("f64", Tensor::fromVector<double>(DataType::kF64, {3}, {0.1, 1e-310, -1.7976931348623157e308}));
  Tensor f16(DataType::kF16, {4});
  Tensor bf16(DataType::kBF16, {4});
  const double narrow[] = {0.1, -65504, 5.96046448e-08, 1.0 / 3};
  for (int i = 0; i < 4; ++i) {
    f16.setDouble(i, narrow[i]);
    bf16.setDouble(i, narrow[i] * 1e10);
  }
  init("f16", f16);
  init("bf16", bf16);
  for (DataType t : {DataType::kF8E4M3FN, DataType::kF8E4M3FNUZ, DataType::kF8E5M2, DataType::kF8E5M2FNUZ}) {
    Tensor f8(t, {3});
    f8.setDouble(0, 0.3);
    f8.setDouble(1, -2.5);
    f8.setDouble(2, 100);
    init(dtypeName(t), f8);
  }
  init("i8", Tensor::fromVector<int8_t>(DataType::kI8, {2}, {-128, 127}));
  init("u8", Tensor::fromVector<uint8_t>(DataType::kU8, {2}, {0, 255}));
  init("i16", Tensor::fromVector<int16_t>(DataType::kI16, {2}, {-32768, 32767}));
  init("u16", Tensor::fromVector<uint16_t>(DataType::kU16, {2}, {0, 65535}));
  init("i32", Tensor::fromVector<int32_t>(DataType::kI32, {2}, {std::numeric_limits<int32_t>::min(), 7}));
  init("u32", Tensor::fromVector<uint32_t>(DataType::kU32, {2}, {0, 4294967295u}));
  init("i64", Tensor::fromVector<int64_t>(DataType::kI64, {2}, {std::numeric_limits<int64_t>::min(), 1}));
  init("u64", Tensor::fromVector<uint64_t>(DataType::kU64, {2}, {0, std::numeric_limits<uint64_t>::max()}));
  init("bool", Tensor::fromVector<uint8_t>(DataType::kBool, {3}, {1, 0, 1}));
  Tensor strings(DataType::kString, {2});
  strings.data<std::string>()[0] = "hello";
  strings.data<std::string>()[1] = "a \"b\"\n";
  init("string", strings);
  Tensor u4(DataType::kU4, {3}), i4(DataType::kI4, {3}), f4(DataType::kF4E2M1, {3});
  static_cast<uint8_t*>(u4.mutableRaw())[0] = 0xF1;  // 1, 15
  static_cast<uint8_t*>(u4.mutableRaw())[1] = 0x07;  // 7
  static_cast<uint8_t*>(i4.mutableRaw())[0] = 0x8F;  // -1, -8
  static_cast<uint8_t*>(i4.mutableRaw())[1] = 0x07;  // 7
  static_cast<uint8_t*>(f4.mutableRaw())[0] = 0x9F;  // -6, -0.5
  static_cast<uint8_t*>(f4.mutableRaw())[1] = 0x03;  // 1.5
  init("u4", u4);
  init("i4", i4);
  init("f4", f4);
  Tensor c64(DataType::kC64, {1});
  c64.data<float>()[0] = 1.5f;
  c64.data<float>()[1] = -2.0f;
  init("c64", c64);
  init("scalar", Tensor::scalar<int64_t>(DataType::kI64, 42));
  init("empty", Tensor(DataType::kF32, {0, 3}));

  Model m = roundTrip(g, {.inlineAll = true});
  for (const Value* v : g.initializers()) {
    const Value* back = m.graph->findValue(v->name());
    ASSERT_NE(back, nullptr) << v->name();
    ASSERT_TRUE(back->isInitializer()) << v->name();
    EXPECT_TRUE(back->initializer()->sameAs(*v->initializer())) << v->name();
  }
  // The same through references.
  Model byRef = roundTrip(g, {.inlineLimit = 0});
  for (const Value* v : g.initializers())
    EXPECT_TRUE(byRef.graph->findValue(v->name())->initializer()->sameAs(*v->initializer())) << v->name();
}

TEST_F(IrText, RoundTripsSymbolicAndUnknownTypes) {
  const std::string text =
      "graph @main(%x: f32[N,?,\"batch size\",3], %u, %r: i64[*], %s: ?[2,M], %k: f16[]) -> (%y: f32[N,?,\"batch size\",3]) {\n"
      "  %y = Relu(%x) : f32[N,?,\"batch size\",3]\n"
      "  %0, %1 = TestUntyped(%u) : ?, bf16[*]\n"
      "  %2 = TestUntyped(%r)\n"
      "}\n";
  Model m = parseIrText(text);
  EXPECT_EQ(printGraph(*m.graph), text);
  const Graph& g = *m.graph;
  const Shape& xs = g.inputs()[0]->shape();
  ASSERT_EQ(xs.rank(), 4u);
  EXPECT_EQ(xs[0], Dim::symbol("N"));
  EXPECT_TRUE(xs[1].isUnknown());
  EXPECT_EQ(xs[2], Dim::symbol("batch size"));
  EXPECT_EQ(xs[3], Dim(3));
  EXPECT_EQ(g.inputs()[1]->type(), TensorType{});
  EXPECT_FALSE(g.inputs()[2]->shape().rankKnown());
  EXPECT_EQ(g.inputs()[2]->dtype(), DataType::kI64);
  EXPECT_EQ(g.inputs()[3]->dtype(), DataType::kUndefined);
  EXPECT_EQ(g.inputs()[3]->shape().rank(), 2u);
  EXPECT_EQ(g.inputs()[4]->shape().rank(), 0u);
  EXPECT_TRUE(g.inputs()[4]->shape().rankKnown());
  EXPECT_EQ(g.outputs()[0]->type(), g.inputs()[0]->type());
}

TEST_F(IrText, NamesAreRenumberedAndQuotedDeterministically) {
  // Two graphs that differ only in their temporaries' names print the same.
  auto build = [](const std::string& tmp) {
    auto g = std::make_unique<Graph>("main");
    Value* x = g->addValue("onnx::input/0", f32({2}));
    g->addInput(x);
    Node* a = g->addNode("Relu", "", "", {x}, {tmp + "a"});
    Node* b = g->addNode("Relu", "", "", {a->output(0)}, {"7"});  // a digit name is numbered
    Node* c = g->addNode("Add", "", "", {a->output(0), b->output(0)}, {"out"});
    g->addOutput(b->output(0));
    g->addOutput(c->output(0));
    return g;
  };
  auto g1 = build("first_"), g2 = build("second/");
  const std::string text = printGraph(*g1);
  EXPECT_EQ(text, printGraph(*g2));
  EXPECT_EQ(text, printGraph(*g1));
  EXPECT_EQ(text,
            "graph @main(%\"onnx::input/0\": f32[2]) -> (%1, %out) {\n"
            "  %0 = Relu(%\"onnx::input/0\")\n"
            "  %1 = Relu(%0)\n"
            "  %out = Add(%0, %1)\n"
            "}\n");
  roundTrip(*g1);
  // keepAllNames keeps the temporaries' own names where legal.
  PrintOptions keep;
  keep.keepAllNames = true;
  EXPECT_NE(printGraph(*g1, keep).find("%first_a = Relu"), std::string::npos);
  roundTrip(*g1, keep);
}

TEST_F(IrText, SubgraphNamesNeverShadowEnclosingOnes) {
  Graph g("main");
  Value* c = g.addValue("c", {DataType::kBool, Shape()});
  g.addInput(c);
  Node* n = g.addNode("TestIf", "", "", {c}, {"y"});
  g.addOutput(n->output(0));
  for (const char* branch : {"then_branch", "else_branch"}) {
    auto b = std::make_shared<Graph>(branch, &g);
    Node* r = b->addNode("Relu", "", "", {c}, {"y"});  // same name as the outer output
    Node* inner = b->addNode("TestIf", "", "", {c}, {"z"});
    auto deeper = std::make_shared<Graph>("deeper", b.get());
    Node* d = deeper->addNode("Add", "", "", {r->output(0), c}, {"y"});
    deeper->addOutput(d->output(0));
    inner->attrs().set("then_branch", deeper);
    b->addOutput(inner->output(0));
    n->attrs().set(branch, b);
  }
  EXPECT_TRUE(verifyErrors(g, kUnknownOpsOk).empty()) << ::testing::PrintToString(verifyErrors(g, kUnknownOpsOk));
  const std::string text = printGraph(g);
  EXPECT_EQ(text,
            "graph @main(%c: bool[]) -> (%y) {\n"
            "  %y = TestIf(%c) {\n"
            "    else_branch=graph @else_branch() -> (%z) {\n"
            "      %0 = Relu(%c)\n"
            "      %z = TestIf(%c) {\n"
            "        then_branch=graph @deeper() -> (%1) {\n"
            "          %1 = Add(%0, %c)\n"
            "        }\n"
            "      }\n"
            "    },\n"
            "    then_branch=graph @then_branch() -> (%z) {\n"
            "      %2 = Relu(%c)\n"
            "      %z = TestIf(%c) {\n"
            "        then_branch=graph @deeper() -> (%3) {\n"
            "          %3 = Add(%2, %c)\n"
            "        }\n"
            "      }\n"
            "    }\n"
            "  }\n"
            "}\n");
  Model m = roundTrip(g);
  EXPECT_TRUE(verifyErrors(*m.graph, kUnknownOpsOk).empty());
}

TEST_F(IrText, InitializersInlineOrByReference) {
  Graph g("main");
  Value* x = g.addValue("x", f32({4}));
  g.addInput(x);
  Tensor small = Tensor::fromVector<float>(DataType::kF32, {4}, {1, 2, 3, 4});
  Tensor large(DataType::kF32, {17});
  for (int i = 0; i < 17; ++i) large.setDouble(i, i * 0.5);
  Value* s = g.addInitializer("s", small);
  g.addInitializer("l", large);
  // A graph input with a default (an initializer of the same name).
  Value* d = g.addValue("d", f32({4}));
  g.addInput(d);
  d->setInitializer(Tensor::fromVector<float>(DataType::kF32, {4}, {9, 8, 7, 6}));
  Node* n = g.addNode("Add", "", "", {x, s}, {"y"});
  g.addOutput(n->output(0));
  g.addOutput(d);

  WeightMap weights;
  const std::string text = printGraph(g, {}, &weights);
  EXPECT_EQ(text,
            "graph @main(%x: f32[4], %d: f32[4]) -> (%y, %d: f32[4]) {\n"
            "  %d = const f32[4] [9, 8, 7, 6]\n"
            "  %s = const f32[4] [1, 2, 3, 4]\n"
            "  %l = const f32[17] @l\n"
            "  %y = Add(%x, %s)\n"
            "}\n");
  EXPECT_EQ(weights.size(), 1u);
  Model m = parseIrText(text, weights);
  EXPECT_EQ(printGraph(*m.graph), text);
  const Value* d2 = m.graph->inputs()[1];
  EXPECT_TRUE(d2->isInitializer());
  EXPECT_EQ(m.graph->outputs()[1], d2);
  EXPECT_TRUE(m.graph->findValue("l")->initializer()->sameAs(large));
  EXPECT_TRUE(verifyErrors(*m.graph, kUnknownOpsOk).empty());

  // A default may be more specific than its input's declared type; both are kept.
  const std::string loose = "graph @main(%e: f32[?]) -> () {\n  %e = const f32[2] [1, 2]\n}\n";
  Model ml = parseIrText(loose);
  EXPECT_EQ(printGraph(*ml.graph), loose);
  EXPECT_TRUE(ml.graph->inputs()[0]->isInitializer());
  EXPECT_TRUE(ml.graph->inputs()[0]->shape()[0].isUnknown());
  EXPECT_THROW(parseIrText("graph @main(%e: i64[2]) -> () {\n  %e = const f32[2] [1, 2]\n}\n"), Error);

  PrintOptions all;
  all.inlineAll = true;
  EXPECT_NE(printGraph(g, all).find("%l = const f32[17] [0, 0.5, 1, 1.5,"), std::string::npos);
  roundTrip(g, all);

  // A resolver callback, and its failures.
  int calls = 0;
  WeightResolver resolve = [&](const std::string& name) -> std::optional<Tensor> {
    ++calls;
    if (name == "l") return large;
    return std::nullopt;
  };
  EXPECT_NO_THROW(parseIrText(text, &resolve));
  EXPECT_EQ(calls, 1);
  try {
    parseIrText(text);
    FAIL() << "expected an error without a resolver";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
    EXPECT_NE(std::string(e.what()).find("4:22: weight '@l' is given by reference but no weight resolver"),
              std::string::npos)
        << e.what();
  }
  WeightMap wrong{{"l", Tensor(DataType::kF32, {16})}};
  EXPECT_THROW(parseIrText(text, wrong), Error);
  EXPECT_THROW(parseIrText(text, WeightMap{}), Error);
}

TEST_F(IrText, ParsesCommentsAndHandWrittenForms) {
  Model m = parseIrText(
      "// a pass test input\n"
      "graph @main(%x: f32[2]) -> (%y) {  // trailing comment\n"
      "  %b = const bool[2] [true, 0]\n"
      "  %t = TestAttrs(%x) {fl=floats[1, 2], e=ints[3], \"odd name\"=[1.5, 2]}\n"
      "  %y = Relu(%t)\n"
      "}\n");
  const Node& n = *m.graph->nodes()[0];
  EXPECT_EQ(n.attrs().getFloats("fl"), (std::vector<float>{1, 2}));
  EXPECT_EQ(n.attrs().getInts("e"), (std::vector<int64_t>{3}));
  EXPECT_EQ(n.attrs().getFloats("odd name"), (std::vector<float>{1.5f, 2}));
  EXPECT_EQ(n.schema(), nullptr);  // unknown ops parse, without a schema
  const Tensor* b = m.graph->findValue("b")->initializer();
  EXPECT_EQ(b->data<uint8_t>()[0], 1);
  EXPECT_EQ(b->data<uint8_t>()[1], 0);
  EXPECT_EQ(m.graph->name(), "main");
  EXPECT_NE(printGraph(*m.graph).find("{e=[3], fl=[1.0, 2.0], \"odd name\"=[1.5, 2.0]}"), std::string::npos);
}

struct BadText {
  const char* text;
  const char* position;  // "line:col"
  const char* message;   // a fragment of what was expected
};

TEST_F(IrText, ParserErrorsNameLineColumnAndWhatWasExpected) {
  const BadText corpus[] = {
      {"graph @main(%x: f32[2]) -> (%y: f32[2]) {\n  %y = Relu(%z)\n}", "2:13", "use of undefined value '%z'"},
      {"graph @main(%x: f32[2] -> (%y) {}", "1:24", "expected ',' or ')' after a graph input, got '->'"},
      {"graph @main(%x: f33[2]) -> () {}", "1:17", "unknown element type 'f33'"},
      {"graph @main() -> () {\n  %0 = Foo() {s=\"abc}\n}", "2:17", "unterminated string"},
      {"graph @main(%x: f32[2]) -> () {\n  %x = Relu(%x)\n}", "2:3", "value '%x' is defined twice (first at 1:13)"},
      {"graph @main() -> () {\n  %0 = Foo()\n", "3:1", "expected '}' to close graph @main opened at 1:21"},
      {"graph @main() -> () {\n  %w = const f32[2] [1, 2, 3]\n}", "2:21", "expected 2 values for f32[2], got 3"},
      {"graph @main() -> () {\n  Foo() {s=\"a\\qb\"}\n}", "2:14", "unknown escape \\q"},
      {"graph @main() -> () {\n  Foo() {i=12abc}\n}", "2:12", "malformed number"},
      {"graph @main() -> () {\n  %0, %1 = Foo() : f32[2]\n}", "2:18", "expected 2 result type(s), one per result, got 1"},
      {"graph @main() -> () {\n  Foo() {a=[]}\n}", "2:12", "an empty list needs its kind"},
      {"graph @main() -> () { $ }", "1:23", "unexpected character \"$\""},
      {"graph @main() -> () {\n  Foo() {i=99999999999999999999}\n}", "2:12", "integer 99999999999999999999 is out of range"},
      {"graph @main() -> (%y) {}", "1:19", "graph output '%y' is not defined in graph @main"},
      {"graph @main() -> () {} extra", "1:24", "expected end of input after the graph, got 'extra'"},
      {"grph @main() -> () {}", "1:1", "expected a graph ('graph @name(...) -> (...) {'), got 'grph'"},
      {"graph @main() -> () {\n  %w = const f32[N] [1]\n}", "2:14", "needs a known element type and static shape"},
      {"graph @main() -> () {\n  %w = const u8[1] [300]\n}", "2:21", "value 300 is out of range for u8"},
      {"graph @main(%x: f32[-1]) -> () {}", "1:21", "a dim is an extent >= 0, a name or '?'"},
      {"graph @main() -> () {\n  Foo() {a=1, a=2}\n}", "2:15", "attribute 'a' is given twice"},
      {"graph @main(%x: f32[2]) -> () {\n  %0 = TestIf(%x) {g=graph @b(%x: f32[2]) -> () {}}\n}", "2:31",
       "value '%x' shadows a value of an enclosing graph"},
      {"graph @main() -> () {\n  %0 = Foo() : f32\n}", "3:1", "expected '[' after the element type 'f32'"},
      {"graph @main() -> () {\n  %0 = (%x)\n}", "2:8", "expected an op name or 'const'"},
      {"graph @main() -> () {\n  %0 Relu()\n}", "2:6", "expected ',' or '=' after a result, got 'Relu'"},
      {"model {ir_version=\"8\"}\ngraph @main() -> () {}", "1:19", "expected an integer, got string \"8\""},
      {"model {opset=1}\ngraph @main() -> () {}", "1:8", "unknown model field 'opset'"},
      {"graph @main() -> () {\n  Foo() {t=tensor f32[2] [1, \"a\"]}\n}", "2:30", "expected a number, got string \"a\""},
      {"graph @main() -> () {\n  Foo() {g=[graph @a() -> () {}, 1]}\n}", "2:12", "a list mixes graphs and other values"},
      {"graph @main() -> () {\n  Foo(%)\n}", "2:7", "expected a name after '%'"},
      {"", "1:1", "expected a graph"},
  };
  for (const BadText& bad : corpus) {
    try {
      parseIrText(bad.text);
      ADD_FAILURE() << "parsed without error:\n" << bad.text;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(e.code(), ErrorCode::kInvalidModel) << msg;
      EXPECT_NE(msg.find(std::string("ir text ") + bad.position + ": "), std::string::npos)
          << "want position " << bad.position << ", got: " << msg;
      EXPECT_NE(msg.find(bad.message), std::string::npos) << "want '" << bad.message << "', got: " << msg;
    }
  }
}

TEST_F(IrText, TruncatedAndMutatedTextNeverCrashes) {
  const std::string text =
      "model {ir_version=9, metadata={\"k\"=\"v\"}, opsets={\"\"=21}}\n"
      "graph @main(%c: bool[], %x: f32[N,6]) -> (%y: f32[N,2]) {\n"
      "  %w = const f32[2] [0.5, -1]\n"
      "  %0, %1, %2 = TestSplit3(%x) : f32[N,2], f32[N,2], f32[N,2]\n"
      "  %3 = TestOpt(%0, none, %w) {a=1, b=2.5, s=\"x\", l=[1, 2], t=tensor i64[2] [1, 2]} : f32[N,2]\n"
      "  %y = TestIf(%c) {\n"
      "    else_branch=graph @else() -> (%4: f32[N,2]) {\n"
      "      %4 = Add(%3, %1) : f32[N,2]\n"
      "    },\n"
      "    then_branch=graph @then() -> (%2: f32[N,2]) {\n"
      "    }\n"
      "  } : f32[N,2]\n"
      "}\n";
  ASSERT_NO_THROW(parseIrText(text));
  auto attempt = [](const std::string& s) {
    try {
      Model m = parseIrText(s);
      (void)printModel(m);
      (void)verifyErrors(*m.graph, kUnknownOpsOk);
    } catch (const Error&) {
      // A clear error is the expected outcome.
    }
  };
  for (size_t n = 0; n < text.size(); ++n) attempt(text.substr(0, n));
  const char replacements[] = {'\0', '"', '%', '@', '{', '}', '[', ']', '(', ')', ',', '=', ':', '-', '9', '?', '*', 'x', ' ', '\\'};
  for (size_t i = 0; i < text.size(); i += 3) {
    for (char r : replacements) {
      std::string s = text;
      s[i] = r;
      attempt(s);
    }
    std::string erased = text;
    erased.erase(i, 1);
    attempt(erased);
  }
}

// ---- metadata: layout, quantization, device per value; precision, device, tactic per node

TEST_F(IrText, MetadataRoundTripsEveryField) {
  const std::string text =
      "graph @main(%x: f32[1,8,4,4]{NCHW8c}, %s: f32[8]{device=cuda}) -> (%y: i8[1,8,4,4]{NCHW8c, device=cuda, "
      "scale=f32[] [0.5], zp=i8[] [3]}) {\n"
      "  %w = const i8[2,2]{packed_gemm_b_16, scale=f32[2] [0.25, 0.5], zp=i8[2] [0, -1], axis=1} [1, 2, 3, 4]\n"
      "  %0 = Relu(%x) @precision=f16 @device=cuda @tactic={tile=[8, 8], variant=\"avx2\"} : f32[1,8,4,4]{NCHW16c}\n"
      "  %1 = Foo(%0, %w) @precision=i8 : ?{NHWC}\n"
      "  %y = TestQuant(%1) : i8[1,8,4,4]{NCHW8c, device=cuda, scale=f32[] [0.5], zp=i8[] [3]}\n"
      "}\n";
  Model m = parseIrText(text);
  EXPECT_EQ(printGraph(*m.graph), text);
  EXPECT_TRUE(verifyErrors(*m.graph, kUnknownOpsOk).empty());
  const Graph& g = *m.graph;

  const Value* x = g.inputs()[0];
  EXPECT_EQ(x->layout(), Layout::nchwc(8));
  EXPECT_EQ(x->device(), Device::kCPU);
  EXPECT_FALSE(x->quantization());
  EXPECT_EQ(g.inputs()[1]->device(), Device::kCUDA);
  EXPECT_TRUE(g.inputs()[1]->layout().isPlain());

  const Value* w = g.findValue("w");
  EXPECT_EQ(w->layout(), Layout::packedGemmB(16));
  ASSERT_TRUE(w->quantization());
  EXPECT_EQ(w->quantization()->axis, std::optional<int64_t>(1));
  EXPECT_FALSE(w->quantization()->perTensor());
  EXPECT_TRUE(w->quantization()->scale.sameAs(Tensor::fromVector<float>(DataType::kF32, {2}, {0.25f, 0.5f})));
  EXPECT_TRUE(w->quantization()->zeroPoint.sameAs(Tensor::fromVector<int8_t>(DataType::kI8, {2}, {0, -1})));

  const Node& relu = *g.nodes()[0];
  EXPECT_EQ(relu.precision(), DataType::kF16);
  EXPECT_EQ(relu.device(), Device::kCUDA);
  EXPECT_EQ(relu.tacticParams().getInts("tile"), (std::vector<int64_t>{8, 8}));
  EXPECT_EQ(relu.tacticParams().getString("variant", ""), "avx2");
  EXPECT_TRUE(relu.attrs().empty());  // tactic parameters are not attributes
  EXPECT_EQ(relu.output(0)->layout(), Layout::nchwc(16));
  EXPECT_EQ(g.nodes()[1]->precision(), DataType::kI8);
  EXPECT_EQ(g.nodes()[1]->output(0)->layout(), Layout::nhwc());
  EXPECT_EQ(g.nodes()[1]->output(0)->dtype(), DataType::kUndefined);

  const Value* y = g.outputs()[0];
  ASSERT_TRUE(y->quantization());
  EXPECT_TRUE(y->quantization()->perTensor());
  EXPECT_EQ(y->quantization()->scale.getDouble(0), 0.5);
  EXPECT_EQ(y->quantization()->zeroPoint.getInt(0), 3);
  EXPECT_EQ(y->device(), Device::kCUDA);

  // Each field on its own, and in another order than the printer's: same graph.
  for (const std::string& one : {
           std::string("graph @main(%x: f32[1,2,3,4]{NHWC}) -> () {\n}\n"),
           std::string("graph @main(%x: f32[2]{device=cuda}) -> () {\n}\n"),
           std::string("graph @main(%x: u8[2]{scale=f32[] [0.125]}) -> () {\n}\n"),
           std::string("graph @main(%x: u8[2]{scale=f32[] [0.125], zp=u8[] [128]}) -> () {\n}\n"),
           std::string("graph @main(%x: u8[2]{scale=bf16[2] [1, 2], axis=0}) -> () {\n}\n"),
           std::string("graph @main(%x: f32[2]) -> () {\n  Foo(%x) @precision=bf16\n}\n"),
           std::string("graph @main(%x: f32[2]) -> () {\n  Foo(%x) @device=cuda\n}\n"),
           std::string("graph @main(%x: f32[2]) -> () {\n  Foo(%x) @tactic={k=1.5}\n}\n"),
       })
    EXPECT_EQ(printGraph(*parseIrText(one).graph), one);
  Model reordered = parseIrText(
      "graph @main(%x: f32[1,8,4,4]{device=cuda, NCHW8c}) -> () {\n"
      "  %w = const i8[2,2]{axis=1, zp=i8[2] [0, -1], scale=f32[2] [0.25, 0.5], packed_gemm_b_16} [1, 2, 3, 4]\n"
      "  Foo(%x) @tactic={a=1} @device=cuda @precision=f32\n"
      "}\n");
  EXPECT_EQ(printGraph(*reordered.graph),
            "graph @main(%x: f32[1,8,4,4]{NCHW8c, device=cuda}) -> () {\n"
            "  %w = const i8[2,2]{packed_gemm_b_16, scale=f32[2] [0.25, 0.5], zp=i8[2] [0, -1], axis=1} [1, 2, 3, 4]\n"
            "  Foo(%x) @precision=f32 @device=cuda @tactic={a=1}\n"
            "}\n");
  // The defaults print nothing, whether set explicitly or not.
  Model defaults = parseIrText(
      "graph @main(%x: f32[2]{plain, device=cpu}) -> () {\n  Foo(%x) @device=cpu\n}\n");
  EXPECT_EQ(printGraph(*defaults.graph), "graph @main(%x: f32[2]) -> () {\n  Foo(%x)\n}\n");
}

TEST_F(IrText, MetadataTensorsPrintByReferenceAndGraphOutputsAgree) {
  Graph g("main");
  Value* x = g.addValue("x", {DataType::kI8, Shape({2, 32})});
  g.addInput(x);
  Quantization q;
  q.scale = Tensor(DataType::kF32, {32});
  q.zeroPoint = Tensor(DataType::kI8, {32});
  for (int i = 0; i < 32; ++i) {
    q.scale.setDouble(i, 0.5 + i);
    q.zeroPoint.setDouble(i, i - 16);
  }
  q.axis = 1;
  x->setQuantization(q);
  Node* n = g.addNode("Relu", "", "", {x}, {"y"});
  n->output(0)->setType({DataType::kI8, Shape({2, 32})});
  n->output(0)->setQuantization(q);
  n->output(0)->setDevice(Device::kCUDA);
  g.addOutput(n->output(0));

  WeightMap weights;
  const std::string text = printGraph(g, {}, &weights);
  EXPECT_EQ(text,
            "graph @main(%x: i8[2,32]{scale=f32[32] @x.scale, zp=i8[32] @x.zp, axis=1}) -> (%y: i8[2,32]{device=cuda, "
            "scale=f32[32] @y.scale, zp=i8[32] @y.zp, axis=1}) {\n"
            "  %y = Relu(%x) : i8[2,32]{device=cuda, scale=f32[32] @y.scale, zp=i8[32] @y.zp, axis=1}\n"
            "}\n");
  ASSERT_EQ(weights.size(), 4u);
  EXPECT_TRUE(weights.at("x.scale").sameAs(q.scale));
  EXPECT_TRUE(weights.at("y.zp").sameAs(q.zeroPoint));
  Model back = roundTrip(g);
  EXPECT_EQ(*back.graph->outputs()[0]->quantization(), q);

  // The header may give an output's metadata the definition left out; when both give it
  // they must agree.
  Model fromHeader = parseIrText(
      "graph @main(%x: f32[2]) -> (%y: f32[2]{device=cuda}) {\n  %y = Relu(%x)\n}\n");
  EXPECT_EQ(fromHeader.graph->outputs()[0]->device(), Device::kCUDA);
  EXPECT_THROW(parseIrText("graph @main(%x: f32[2]) -> (%y: f32[2]{device=cuda}) {\n"
                           "  %y = Relu(%x) : f32[2]{scale=f32[] [1]}\n}\n"),
               Error);
}

TEST_F(IrText, MetadataParseErrorsNameLineColumn) {
  const BadText corpus[] = {
      {"graph @main(%x: f32[2]{NCHW8c}) -> () {}", "1:24", "layout NCHW8c needs rank 4, the value is f32[2]"},
      {"graph @main(%x: f32[1,2,3,4]{NCHWc}) -> () {}", "1:30", "layout NCHWc needs a block size"},
      {"graph @main(%x: f32[1,2,3,4]{NCHW_8}) -> () {}", "1:30", "layout family NCHW takes no block size"},
      {"graph @main(%x: f32[2]{x_0}) -> () {}", "1:24", "malformed layout name 'x_0'"},
      {"graph @main(%x: f32[1,2,3,4]{NCHW, NHWC}) -> () {}", "1:36", "value metadata gives two layouts"},
      {"graph @main(%x: f32[2]{device=tpu}) -> () {}", "1:31", "unknown device 'tpu', expected cpu or cuda"},
      {"graph @main(%x: f32[2]{colour=1}) -> () {}", "1:24", "unknown value field 'colour'"},
      {"graph @main(%x: f32[2]{device=cuda, device=cpu}) -> () {}", "1:37", "value field 'device' is given twice"},
      {"graph @main(%x: f32[2]{3}) -> () {}", "1:24", "expected a layout name or a field"},
      {"graph @main(%x: i8[2]{zp=i8[] [0]}) -> () {}", "1:23", "quantization needs a scale"},
      {"graph @main(%x: i8[2]{scale=f32[2] [1, 2]}) -> () {}", "1:23", "per-tensor quantization needs a scalar scale"},
      {"graph @main(%x: i8[2]{scale=f32[2] [1, 2], axis=1}) -> () {}", "1:23",
       "quantization axis 1 is out of range for i8[2]"},
      {"graph @main(%x: i8[2]{scale=f32[3] [1, 2, 3], axis=0}) -> () {}", "1:23", "does not match dim 0 of i8[2]"},
      {"graph @main(%x: i8[2]{scale=f32[] [-1]}) -> () {}", "1:23", "expected finite and > 0"},
      {"graph @main(%x: i8[2]{scale=i32[] [1]}) -> () {}", "1:23", "expected f32, f16 or bf16"},
      {"graph @main(%x: i8[2]{scale=f32[] [1], zp=u8[] [0]}) -> () {}", "1:23",
       "zero point is u8[] but the value is i8[2]"},
      {"graph @main(%x: i8[2]{scale=f32[N] [1]}) -> () {}", "1:29", "needs a known element type and static shape"},
      {"graph @main() -> () {\n  Foo() @prec=f16\n}", "2:9", "unknown node field '@prec'"},
      {"graph @main() -> () {\n  Foo() @precision=bool\n}", "2:20", "precision 'bool' is not a numeric type"},
      {"graph @main() -> () {\n  Foo() @precision=f33\n}", "2:20", "unknown precision 'f33'"},
      {"graph @main() -> () {\n  Foo() @device=cuda @device=cpu\n}", "2:22", "node field '@device' is given twice"},
      {"graph @main() -> () {\n  Foo() @device=3\n}", "2:17", "expected a device (cpu, cuda), got '3'"},
      {"graph @main() -> () {\n  Foo() @tactic=3\n}", "2:17", "expected '{' to open the tactic parameters"},
      {"graph @main() -> () {\n  Foo() @tactic={g=graph @a() -> () {}}\n}", "2:9", "tactic parameter 'g' holds a graph"},
      {"graph @main(%x: f32[2]) -> () {\n  %x = const f32[2]{device=cuda} [1, 2]\n}", "2:20",
       "belongs in the graph header, not on its default"},
      {"graph @main(%x: f32[2]) -> (%y: f32[2]) {\n  %y = Relu(%x) : f32[2]{device=cuda}\n}", "1:29",
       "is declared with no metadata but defined with {device=cuda}"},
  };
  for (const BadText& bad : corpus) {
    try {
      parseIrText(bad.text);
      ADD_FAILURE() << "parsed without error:\n" << bad.text;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(e.code(), ErrorCode::kInvalidModel) << msg;
      EXPECT_NE(msg.find(std::string("ir text ") + bad.position + ": "), std::string::npos)
          << "want position " << bad.position << ", got: " << msg;
      EXPECT_NE(msg.find(bad.message), std::string::npos) << "want '" << bad.message << "', got: " << msg;
    }
  }
}

TEST_F(IrText, MutatedMetadataTextNeverCrashes) {
  const std::string text =
      "graph @main(%x: f32[1,8,4,4]{NCHW8c}) -> (%y: i8[1,8,4,4]{NCHW8c, scale=f32[8] [1, 2, 3, 4, 5, 6, 7, 8], "
      "zp=i8[8] [0, 1, 2, 3, 4, 5, 6, 7], axis=1}) {\n"
      "  %0 = Relu(%x) @precision=f16 @device=cuda @tactic={t=[1, 2]} : f32[1,8,4,4]{NCHW16c, device=cuda}\n"
      "  %y = TestQuant(%0) : i8[1,8,4,4]{NCHW8c, scale=f32[8] [1, 2, 3, 4, 5, 6, 7, 8], "
      "zp=i8[8] [0, 1, 2, 3, 4, 5, 6, 7], axis=1}\n"
      "}\n";
  ASSERT_NO_THROW(parseIrText(text));
  auto attempt = [](const std::string& s) {
    try {
      Model m = parseIrText(s);
      (void)printModel(m);
      (void)verifyErrors(*m.graph, kUnknownOpsOk);
    } catch (const Error&) {
    }
  };
  for (size_t n = 0; n < text.size(); ++n) attempt(text.substr(0, n));
  const char replacements[] = {'{', '}', '[', ']', ',', '=', '@', '-', '0', '9', 'x', ' '};
  for (size_t i = 0; i < text.size(); i += 2) {
    for (char r : replacements) {
      std::string s = text;
      s[i] = r;
      attempt(s);
    }
  }
}

}  // namespace
