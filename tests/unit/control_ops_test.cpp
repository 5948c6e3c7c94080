// The control family beyond the ONNX node tests: subgraph inference (branches of
// different shapes, loop-carried values that grow, symbolic scan lengths), Scan-8 with
// sequence_lens, recurrent layers checked by hand (bidirectional, peepholes, clip,
// input_forget, linear_before_reset, activation alpha/beta, sequence_lens, layout),
// signal ops, grids, NMS edge cases, seeded random ops, TfIdf IDF/TFIDF, string ops, and
// errors that name the node.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <numeric>

#include "tests/unit/op_test_util.h"
#include "cpu/reference.h"
#include "ir/op_schema.h"
#include "ir/verifier.h"
#include "parser/onnx_parser.h"

using anvil::Error;
using anvil::ErrorCode;
using namespace anvil::ir;
using anvil::cpu::Interpreter;

namespace {

Dim sym(const char* s) { return Dim::symbol(s); }
TensorType tt(DataType dt, std::vector<Dim> dims) { return {dt, Shape(std::move(dims))}; }
Tensor f32(std::vector<int64_t> dims, std::vector<float> v) { return Tensor::fromVector<float>(DataType::kF32, dims, v); }
Tensor i64(std::vector<int64_t> dims, std::vector<int64_t> v) {
  return Tensor::fromVector<int64_t>(DataType::kI64, dims, v);
}
Tensor i32(std::vector<int64_t> dims, std::vector<int32_t> v) {
  return Tensor::fromVector<int32_t>(DataType::kI32, dims, v);
}
Tensor strs(std::vector<int64_t> dims, std::vector<std::string> v) {
  return Tensor::fromVector<std::string>(DataType::kString, dims, v);
}
Tensor boolean(bool b) { return Tensor::scalar<bool>(DataType::kBool, b); }

Attributes attrs(std::initializer_list<std::pair<const char*, Attribute::Storage>> kv) {
  Attributes a;
  for (const auto& [k, v] : kv) a.set(k, v);
  return a;
}

using anvil::testing::In;
using anvil::testing::oneNode;

// Runs one node on concrete inputs (all fed at run time).
std::vector<Tensor> run(const std::string& op, const std::vector<std::pair<std::string, Tensor>>& ins,
                        const Attributes& a = {}, int nout = 1) {
  std::vector<In> decl;
  std::map<std::string, Tensor> feed;
  for (const auto& [name, t] : ins) {
    if (name.empty()) {
      decl.push_back({"", {}, std::nullopt});
      continue;
    }
    decl.push_back({name, t.type(), std::nullopt});
    feed[name] = t;
  }
  auto g = oneNode(op, decl, a, nout);
  return Interpreter::run(*g, feed);
}

std::vector<double> values(const Tensor& t) {
  std::vector<double> v;
  for (int64_t i = 0; i < t.numel(); ++i) v.push_back(t.getDouble(i));
  return v;
}

void expectNear(const Tensor& t, const std::vector<double>& want, double tol = 1e-5) {
  ASSERT_EQ(t.numel(), int64_t(want.size())) << t.summary();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(t.getDouble(int64_t(i)), want[i], tol) << "element " << i;
}

// Expects `fn` to throw an anvil::Error whose message contains every piece.
template <typename F>
void expectError(F fn, std::vector<std::string> pieces) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const auto& p : pieces) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

// ---- If ---------------------------------------------------------------------------------

// If(cond) with then = Identity(a) and else = Identity(b), a and b outer-scope values.
std::unique_ptr<Graph> ifGraph(const TensorType& ta, const TensorType& tb, std::optional<bool> knownCond = {}) {
  auto g = std::make_unique<Graph>();
  Value* c = knownCond ? g->addInitializer("c", boolean(*knownCond)) : g->addValue("c", tt(DataType::kBool, {}));
  if (!knownCond) g->addInput(c);
  Value* a = g->addValue("a", ta);
  Value* b = g->addValue("b", tb);
  g->addInput(a);
  g->addInput(b);
  auto thenG = std::make_shared<Graph>("then", g.get());
  thenG->addOutput(thenG->addNode("Identity", "", "t", {a}, {"ta"})->output(0));
  auto elseG = std::make_shared<Graph>("else", g.get());
  elseG->addOutput(elseG->addNode("Identity", "", "e", {b}, {"eb"})->output(0));
  Node* n = g->addNode("If", "", "if0", {c}, {"y"});
  n->attrs().set("then_branch", thenG);
  n->attrs().set("else_branch", elseG);
  g->addOutput(n->output(0));
  inferShapes(*g);
  return g;
}

TEST(ControlIf, BranchShapesMergeToUnknownDims) {
  auto g = ifGraph(tt(DataType::kF32, {sym("N"), 3}), tt(DataType::kF32, {sym("N"), 4}));
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[N,?]");
  auto g2 = ifGraph(tt(DataType::kF32, {2, 3}), tt(DataType::kF32, {6}));
  EXPECT_FALSE(g2->outputs()[0]->shape().rankKnown());
  auto out = Interpreter::run(*g, {{"c", boolean(false)}, {"a", f32({1, 3}, {1, 2, 3})}, {"b", f32({1, 4}, {4, 5, 6, 7})}});
  expectNear(out[0], {4, 5, 6, 7});
  out = Interpreter::run(*g, {{"c", boolean(true)}, {"a", f32({1, 3}, {1, 2, 3})}, {"b", f32({1, 4}, {4, 5, 6, 7})}});
  expectNear(out[0], {1, 2, 3});
}

TEST(ControlIf, KnownConditionTakesThatBranchsType) {
  auto g = ifGraph(tt(DataType::kF32, {2, 3}), tt(DataType::kF32, {6}), true);
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[2,3]");
}

TEST(ControlIf, BranchTypeMismatchNamesTheNode) {
  expectError([] { ifGraph(tt(DataType::kF32, {2}), tt(DataType::kI64, {2})); }, {"If 'if0'", "else_branch"});
}

// ---- Loop -------------------------------------------------------------------------------

// Loop(M, cond, s0) whose body adds the outer-scope `step` to s and also emits s as a scan
// output; optionally stops when s >= limit (outer scope) via Less.
std::unique_ptr<Graph> loopGraph(bool withM, bool withCondStop) {
  auto g = std::make_unique<Graph>();
  Value* m = g->addValue("M", tt(DataType::kI64, {}));
  Value* c = g->addValue("cond", tt(DataType::kBool, {}));
  Value* s0 = g->addValue("s0", tt(DataType::kF32, {1}));
  Value* step = g->addValue("step", tt(DataType::kF32, {1}));
  Value* limit = g->addValue("limit", tt(DataType::kF32, {1}));
  if (withM) g->addInput(m);
  for (Value* v : {c, s0, step, limit}) g->addInput(v);
  auto body = std::make_shared<Graph>("body", g.get());
  Value* it = body->addValue("i", {});
  Value* ci = body->addValue("ci", {});
  Value* si = body->addValue("si", {});
  for (Value* v : {it, ci, si}) body->addInput(v);
  Value* so = body->addNode("Add", "", "add", {si, step}, {"so"})->output(0);
  Value* co = withCondStop ? body->addNode("Less", "", "less", {so, limit}, {"co1"})->output(0) : ci;
  if (withCondStop) co = body->addNode("Squeeze", "", "sq", {co}, {"co"})->output(0);
  Value* scan = body->addNode("Identity", "", "id", {so}, {"scan"})->output(0);
  body->addOutput(co);
  body->addOutput(so);
  body->addOutput(scan);
  Node* n = g->addNode("Loop", "", "loop0", {withM ? m : nullptr, c, s0}, {"s_final", "s_all"});
  n->attrs().set("body", body);
  for (Value* o : n->outputs()) g->addOutput(o);
  inferShapes(*g);
  return g;
}

TEST(ControlLoop, CarriesStateStacksScanOutputsAndReadsOuterScope) {
  auto g = loopGraph(true, false);
  EXPECT_NO_THROW(verify(*g));
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[1]");
  EXPECT_EQ(g->outputs()[1]->type().str(), "f32[?,1]");
  auto out = Interpreter::run(*g, {{"M", Tensor::scalar<int64_t>(DataType::kI64, 4)},
                                   {"cond", boolean(true)},
                                   {"s0", f32({1}, {1})},
                                   {"step", f32({1}, {2})},
                                   {"limit", f32({1}, {0})}});
  expectNear(out[0], {9});
  EXPECT_EQ(out[1].dims(), (std::vector<int64_t>{4, 1}));
  expectNear(out[1], {3, 5, 7, 9});
}

TEST(ControlLoop, ZeroIterationsGiveInitialValuesAndEmptyScans) {
  auto g = loopGraph(true, false);
  auto out = Interpreter::run(*g, {{"M", Tensor::scalar<int64_t>(DataType::kI64, 0)},
                                   {"cond", boolean(true)},
                                   {"s0", f32({1}, {1})},
                                   {"step", f32({1}, {2})},
                                   {"limit", f32({1}, {0})}});
  expectNear(out[0], {1});
  EXPECT_EQ(out[1].dims(), (std::vector<int64_t>{0, 1}));
  out = Interpreter::run(*g, {{"M", Tensor::scalar<int64_t>(DataType::kI64, 5)},
                              {"cond", boolean(false)},
                              {"s0", f32({1}, {1})},
                              {"step", f32({1}, {2})},
                              {"limit", f32({1}, {0})}});
  expectNear(out[0], {1});
}

TEST(ControlLoop, WhileLoopWithoutTripCountStopsOnTheBodysCondition) {
  auto g = loopGraph(false, true);
  auto out = Interpreter::run(*g, {{"cond", boolean(true)},
                                   {"s0", f32({1}, {0})},
                                   {"step", f32({1}, {1.5f})},
                                   {"limit", f32({1}, {5})}});
  // 1.5, 3, 4.5 < 5 keep going; 6 stops (the iteration that made 6 still counts).
  expectNear(out[0], {6});
  expectNear(out[1], {1.5, 3, 4.5, 6});
}

TEST(ControlLoop, CarriedValueThatGrowsWidensToUnknownDims) {
  auto g = std::make_unique<Graph>();
  Value* m = g->addValue("M", tt(DataType::kI64, {}));
  Value* v0 = g->addValue("v0", tt(DataType::kF32, {2}));
  g->addInput(m);
  g->addInput(v0);
  Value* condTrue = g->addInitializer("t", boolean(true));
  auto body = std::make_shared<Graph>("body", g.get());
  Value* it = body->addValue("i", {});
  Value* ci = body->addValue("ci", {});
  Value* vi = body->addValue("vi", {});
  for (Value* v : {it, ci, vi}) body->addInput(v);
  Node* cat = body->addNode("Concat", "", "cat", {vi, vi}, {"vo"});
  cat->attrs().set("axis", int64_t(0));
  body->addOutput(ci);
  body->addOutput(cat->output(0));
  Node* n = g->addNode("Loop", "", "loop0", {m, condTrue, v0}, {"v"});
  n->attrs().set("body", body);
  g->addOutput(n->output(0));
  inferShapes(*g);
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[?]");
  EXPECT_EQ(cat->output(0)->type().str(), "f32[?]");
  auto out = Interpreter::run(*g, {{"M", Tensor::scalar<int64_t>(DataType::kI64, 3)}, {"v0", f32({2}, {1, 2})}});
  EXPECT_EQ(out[0].dims(), (std::vector<int64_t>{16}));
  inferShapes(*g);  // inference stays idempotent
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[?]");
}

TEST(ControlLoop, BodyWithWrongInputCountNamesTheNode) {
  auto g = std::make_unique<Graph>();
  Value* m = g->addValue("M", tt(DataType::kI64, {}));
  g->addInput(m);
  Value* condTrue = g->addInitializer("t", boolean(true));
  auto body = std::make_shared<Graph>("body", g.get());
  Value* it = body->addValue("i", {});
  body->addInput(it);
  body->addOutput(it);
  Node* n = g->addNode("Loop", "", "loopX", {m, condTrue}, {"v"});
  n->attrs().set("body", body);
  g->addOutput(n->output(0));
  expectError([&] { inferShapes(*g); }, {"Loop 'loopX'", "inputs"});
}

// ---- Scan -------------------------------------------------------------------------------

// Scan with one state s [C] and one scan input x whose sequence runs along `inAxis`;
// body: s' = s + x_t, scan output = s'.
std::unique_ptr<Graph> scanGraph(const TensorType& st, const TensorType& xt, Attributes extra) {
  auto g = std::make_unique<Graph>();
  Value* s0 = g->addValue("s0", st);
  Value* x = g->addValue("x", xt);
  g->addInput(s0);
  g->addInput(x);
  auto body = std::make_shared<Graph>("body", g.get());
  Value* si = body->addValue("si", {});
  Value* xi = body->addValue("xi", {});
  body->addInput(si);
  body->addInput(xi);
  Value* so = body->addNode("Add", "", "add", {si, xi}, {"so"})->output(0);
  Value* out = body->addNode("Identity", "", "id", {so}, {"out"})->output(0);
  body->addOutput(so);
  body->addOutput(out);
  Node* n = g->addNode("Scan", "", "scan0", {s0, x}, {"s", "ys"});
  n->attrs() = extra;
  n->attrs().set("body", body);
  n->attrs().set("num_scan_inputs", int64_t(1));
  for (Value* o : n->outputs()) g->addOutput(o);
  inferShapes(*g);
  return g;
}

TEST(ControlScan, SymbolicSequenceLengthAndOutputAxis) {
  auto g = scanGraph(tt(DataType::kF32, {2}), tt(DataType::kF32, {2, sym("T")}),
                     attrs({{"scan_input_axes", std::vector<int64_t>{1}}, {"scan_output_axes", std::vector<int64_t>{-1}}}));
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[2]");
  EXPECT_EQ(g->outputs()[1]->type().str(), "f32[2,T]");
}

TEST(ControlScan, ReverseInputAndOutputDirections) {
  // x = [[1,2,3],[10,20,30]] scanned along axis 1 backwards: s goes 3,5,6 / 30,50,60.
  auto g = scanGraph(tt(DataType::kF32, {2}), tt(DataType::kF32, {2, 3}),
                     attrs({{"scan_input_axes", std::vector<int64_t>{1}},
                            {"scan_input_directions", std::vector<int64_t>{1}},
                            {"scan_output_axes", std::vector<int64_t>{1}},
                            {"scan_output_directions", std::vector<int64_t>{1}}}));
  auto out = Interpreter::run(*g, {{"s0", f32({2}, {0, 0})}, {"x", f32({2, 3}, {1, 2, 3, 10, 20, 30})}});
  expectNear(out[0], {6, 60});
  // Output direction reversed: the last step's value comes first.
  EXPECT_EQ(out[1].dims(), (std::vector<int64_t>{2, 3}));
  expectNear(out[1], {6, 5, 3, 60, 50, 30});
}

TEST(ControlScan, ScanInputsMustAgreeOnLength) {
  auto g = std::make_unique<Graph>();
  Value* a = g->addValue("a", tt(DataType::kF32, {3}));
  Value* b = g->addValue("b", tt(DataType::kF32, {4}));
  g->addInput(a);
  g->addInput(b);
  auto body = std::make_shared<Graph>("body", g.get());
  Value* ai = body->addValue("ai", {});
  Value* bi = body->addValue("bi", {});
  body->addInput(ai);
  body->addInput(bi);
  body->addOutput(body->addNode("Add", "", "add", {ai, bi}, {"o"})->output(0));
  Node* n = g->addNode("Scan", "", "scanX", {a, b}, {"ys"});
  n->attrs().set("body", body);
  n->attrs().set("num_scan_inputs", int64_t(2));
  g->addOutput(n->output(0));
  expectError([&] { inferShapes(*g); }, {"Scan 'scanX'", "sequence length"});
}

// Scan-8 through the parser: batch 2, sequence 3, sequence_lens [3, 2]. The importer
// lowers it to a Loop over the batch around a Scan-9.
TEST(ControlScan, Opset8WithSequenceLensPadsShortRowsWithZeros) {
  onnx::ModelProto m;
  m.set_ir_version(4);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(8);
  auto* g = m.mutable_graph();
  g->set_name("g");
  auto vi = [](const std::string& name, int elem, std::vector<int64_t> dims) {
    onnx::ValueInfoProto v;
    v.set_name(name);
    auto* t = v.mutable_type()->mutable_tensor_type();
    t->set_elem_type(elem);
    for (int64_t d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
    return v;
  };
  *g->add_input() = vi("lens", onnx::TensorProto::INT32, {2});
  *g->add_input() = vi("init", onnx::TensorProto::FLOAT, {2, 1});
  *g->add_input() = vi("x", onnx::TensorProto::FLOAT, {2, 3, 1});
  *g->add_output() = vi("final", onnx::TensorProto::FLOAT, {2, 1});
  *g->add_output() = vi("ys", onnx::TensorProto::FLOAT, {2, 3, 1});
  auto* n = g->add_node();
  n->set_op_type("Scan");
  n->set_name("scan8");
  for (const char* i : {"lens", "init", "x"}) n->add_input(i);
  n->add_output("final");
  n->add_output("ys");
  auto* na = n->add_attribute();
  na->set_name("num_scan_inputs");
  na->set_type(onnx::AttributeProto::INT);
  na->set_i(1);
  auto* ba = n->add_attribute();
  ba->set_name("body");
  ba->set_type(onnx::AttributeProto::GRAPH);
  auto* b = ba->mutable_g();
  b->set_name("body");
  *b->add_input() = vi("s", onnx::TensorProto::FLOAT, {1});
  *b->add_input() = vi("xt", onnx::TensorProto::FLOAT, {1});
  *b->add_output() = vi("s2", onnx::TensorProto::FLOAT, {1});
  *b->add_output() = vi("y", onnx::TensorProto::FLOAT, {1});
  auto* add = b->add_node();
  add->set_op_type("Add");
  add->add_input("s");
  add->add_input("xt");
  add->add_output("s2");
  auto* id = b->add_node();
  id->set_op_type("Identity");
  id->add_input("s2");
  id->add_output("y");
  Model model = anvil::parser::parseOnnxBytes(m.SerializeAsString(), "");
  EXPECT_NO_THROW(verify(*model.graph));
  EXPECT_EQ(model.graph->outputs()[0]->type().str(), "f32[2,1]");
  auto out = Interpreter::run(*model.graph, {{"lens", i32({2}, {3, 2})},
                                             {"init", f32({2, 1}, {0, 100})},
                                             {"x", f32({2, 3, 1}, {1, 2, 3, 10, 20, 30})}});
  expectNear(out[0], {6, 130});
  EXPECT_EQ(out[1].dims(), (std::vector<int64_t>{2, 3, 1}));
  expectNear(out[1], {1, 3, 6, 110, 130, 0});
}

// ---- recurrent layers -------------------------------------------------------------------

TEST(ControlRnn, SymbolicInferenceForBothLayouts) {
  auto g = oneNode("LSTM",
                   {{"X", tt(DataType::kF32, {sym("T"), sym("N"), 16}), {}},
                    {"W", tt(DataType::kF32, {1, 128, 16}), {}},
                    {"R", tt(DataType::kF32, {1, 128, 32}), {}}},
                   attrs({{"hidden_size", int64_t(32)}}), 3);
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[T,1,N,32]");
  EXPECT_EQ(g->outputs()[1]->type().str(), "f32[1,N,32]");
  EXPECT_EQ(g->outputs()[2]->type().str(), "f32[1,N,32]");
  auto g2 = oneNode("GRU",
                    {{"X", tt(DataType::kF16, {sym("N"), sym("T"), 8}), {}},
                     {"W", tt(DataType::kF16, {2, 15, 8}), {}},
                     {"R", tt(DataType::kF16, {2, 15, 5}), {}}},
                    attrs({{"direction", std::string("bidirectional")}, {"layout", int64_t(1)}}), 2);
  EXPECT_EQ(g2->outputs()[0]->type().str(), "f16[N,T,2,5]");
  EXPECT_EQ(g2->outputs()[1]->type().str(), "f16[N,2,5]");
}

TEST(ControlRnn, BadAttributesAndShapesNameTheNode) {
  expectError(
      [] {
        oneNode("RNN",
                {{"X", tt(DataType::kF32, {2, 1, 3}), {}},
                 {"W", tt(DataType::kF32, {1, 4, 3}), {}},
                 {"R", tt(DataType::kF32, {1, 4, 4}), {}}},
                attrs({{"direction", std::string("sideways")}}));
      },
      {"RNN 'n0'", "direction"});
  expectError(
      [] {
        oneNode("LSTM",
                {{"X", tt(DataType::kF32, {2, 1, 3}), {}},
                 {"W", tt(DataType::kF32, {1, 12, 3}), {}},
                 {"R", tt(DataType::kF32, {1, 12, 3}), {}}},
                attrs({{"hidden_size", int64_t(4)}}));
      },
      {"LSTM 'n0'", "W has 12 rows"});
  // Shapes known only at run time: the kernel checks them.
  expectError(
      [] {
        run("GRU", {{"X", f32({1, 1, 2}, {1, 2})}, {"W", f32({1, 3, 3}, std::vector<float>(9, 0))},
                    {"R", f32({1, 3, 1}, {0, 0, 0})}});
      },
      {"GRU 'n0'", "W is f32[1,3,3], expected [1,3,2]"});
}

// Hidden size 1, input size 1: everything checks by hand.
TEST(ControlRnn, BidirectionalRnnWithBiasAndInitialState) {
  // Forward: w=0.5 r=0.25 wb=0.1 rb=0.2; reverse: w=-1 r=0.5 wb=0 rb=0.
  auto out = run("RNN",
                 {{"X", f32({2, 1, 1}, {1, 2})},
                  {"W", f32({2, 1, 1}, {0.5f, -1})},
                  {"R", f32({2, 1, 1}, {0.25f, 0.5f})},
                  {"B", f32({2, 2}, {0.1f, 0.2f, 0, 0})},
                  {"", {}},
                  {"h0", f32({2, 1, 1}, {0.3f, -0.2f})}},
                 attrs({{"direction", std::string("bidirectional")}, {"hidden_size", int64_t(1)}}), 2);
  const double f1 = std::tanh(0.5 * 1 + 0.25 * 0.3 + 0.3), f2 = std::tanh(0.5 * 2 + 0.25 * f1 + 0.3);
  const double r2 = std::tanh(-1 * 2 + 0.5 * -0.2), r1 = std::tanh(-1 * 1 + 0.5 * r2);
  // Y [seq, dirs, batch, hidden]: t0 = (f1, r1), t1 = (f2, r2).
  expectNear(out[0], {f1, r1, f2, r2});
  expectNear(out[1], {f2, r1});
}

TEST(ControlRnn, ActivationsTakeAlphaAndBetaInOrder) {
  // Affine(alpha=2, beta=1) then... a single function: h = 2 * (w x + r h) + 1.
  auto out = run("RNN", {{"X", f32({2, 1, 1}, {1, -1})}, {"W", f32({1, 1, 1}, {1})}, {"R", f32({1, 1, 1}, {0.5f})}},
                 attrs({{"hidden_size", int64_t(1)},
                        {"activations", std::vector<std::string>{"Affine"}},
                        {"activation_alpha", std::vector<float>{2}},
                        {"activation_beta", std::vector<float>{1}}}),
                 2);
  expectNear(out[0], {3, 2 * (-1 + 1.5) + 1});
  // LeakyRelu takes the first alpha; clip bounds the pre-activation first.
  out = run("RNN", {{"X", f32({1, 1, 1}, {-10})}, {"W", f32({1, 1, 1}, {1})}, {"R", f32({1, 1, 1}, {0})}},
            attrs({{"hidden_size", int64_t(1)},
                   {"activations", std::vector<std::string>{"LeakyRelu"}},
                   {"activation_alpha", std::vector<float>{0.5f}},
                   {"clip", 3.0f}}),
            2);
  expectNear(out[1], {-1.5});
  expectError(
      [] {
        run("RNN", {{"X", f32({1, 1, 1}, {1})}, {"W", f32({1, 1, 1}, {1})}, {"R", f32({1, 1, 1}, {0})}},
            attrs({{"hidden_size", int64_t(1)}, {"activations", std::vector<std::string>{"Swishy"}}}));
      },
      {"RNN 'n0'", "unknown activation 'Swishy'"});
}

// One LSTM step by the ONNX formulas, hidden size 1 (gates i, o, f, c; P = Pi, Po, Pf).
struct LstmStep {
  double h, c;
};
LstmStep lstmStep(double x, double h, double c, const double w[4], const double r[4], const double b[4],
                  const double p[3], bool inputForget, double clip) {
  auto cl = [&](double v) { return clip > 0 ? std::max(-clip, std::min(clip, v)) : v; };
  const double i = sigmoid(cl(w[0] * x + r[0] * h + b[0] + p[0] * c));
  const double f = inputForget ? 1 - i : sigmoid(cl(w[2] * x + r[2] * h + b[2] + p[2] * c));
  const double g = std::tanh(cl(w[3] * x + r[3] * h + b[3]));
  const double c2 = f * c + i * g;
  const double o = sigmoid(cl(w[1] * x + r[1] * h + b[1] + p[1] * c2));
  return {o * std::tanh(c2), c2};
}

TEST(ControlRnn, LstmPeepholesClipInputForgetAndSequenceLens) {
  const double w[4] = {0.5, -0.3, 0.8, 1.2}, r[4] = {0.1, 0.2, -0.4, 0.3}, b[4] = {0.05, -0.1, 0.2, 0.0};
  const double p[3] = {0.3, -0.2, 0.1};
  for (bool inputForget : {false, true}) {
    // Batch 2: row 0 runs 3 steps, row 1 only 1 (sequence_lens), so its later Y rows are 0.
    std::vector<float> xs = {1, -1, 2, 0.5f, -0.5f, 3};  // [seq 3, batch 2, 1]
    auto out = run("LSTM",
                   {{"X", f32({3, 2, 1}, xs)},
                    {"W", f32({1, 4, 1}, {0.5f, -0.3f, 0.8f, 1.2f})},
                    {"R", f32({1, 4, 1}, {0.1f, 0.2f, -0.4f, 0.3f})},
                    {"B", f32({1, 8}, {0.05f, -0.1f, 0.2f, 0, 0, 0, 0, 0})},
                    {"lens", i32({2}, {3, 1})},
                    {"h0", f32({1, 2, 1}, {0.1f, -0.1f})},
                    {"c0", f32({1, 2, 1}, {0.2f, 0.4f})},
                    {"P", f32({1, 3}, {0.3f, -0.2f, 0.1f})}},
                   attrs({{"hidden_size", int64_t(1)}, {"input_forget", int64_t(inputForget)}, {"clip", 1.0f}}), 3);
    LstmStep s0{0.1, 0.2}, s1{-0.1, 0.4};
    std::vector<double> y(6, 0.0);
    for (int t = 0; t < 3; ++t) {
      s0 = lstmStep(xs[size_t(2 * t)], s0.h, s0.c, w, r, b, p, inputForget, 1.0);
      y[size_t(2 * t)] = s0.h;
    }
    s1 = lstmStep(xs[1], s1.h, s1.c, w, r, b, p, inputForget, 1.0);
    y[1] = s1.h;
    expectNear(out[0], y);
    expectNear(out[1], {s0.h, s1.h});
    expectNear(out[2], {s0.c, s1.c});
  }
}

TEST(ControlRnn, GruLinearBeforeResetAndReverseDirection) {
  // Gates z, r, h; hidden size 1. Reverse: steps run t = 1 then t = 0.
  const double wz = 0.4, wr = -0.6, wh = 0.9, rz = 0.3, rr = 0.5, rh = -0.7;
  const double wbz = 0.1, wbr = 0, wbh = -0.2, rbz = 0, rbr = 0.1, rbh = 0.3;
  for (int64_t lbr : {0, 1}) {
    auto out = run("GRU",
                   {{"X", f32({2, 1, 1}, {1, -2})},
                    {"W", f32({1, 3, 1}, {0.4f, -0.6f, 0.9f})},
                    {"R", f32({1, 3, 1}, {0.3f, 0.5f, -0.7f})},
                    {"B", f32({1, 6}, {0.1f, 0, -0.2f, 0, 0.1f, 0.3f})}},
                   attrs({{"hidden_size", int64_t(1)}, {"direction", std::string("reverse")},
                          {"linear_before_reset", lbr}}),
                   2);
    double h = 0;
    std::vector<double> y(2);
    for (int t : {1, 0}) {
      const double x = t == 0 ? 1 : -2;
      const double z = sigmoid(wz * x + rz * h + wbz + rbz);
      const double r = sigmoid(wr * x + rr * h + wbr + rbr);
      const double hh = lbr ? std::tanh(wh * x + r * (rh * h + rbh) + wbh) : std::tanh(wh * x + rh * (r * h) + rbh + wbh);
      h = (1 - z) * hh + z * h;
      y[size_t(t)] = h;
    }
    expectNear(out[0], y);
    expectNear(out[1], {h});
  }
}

TEST(ControlRnn, LayoutOneMatchesLayoutZeroTransposed) {
  // Batch 2, seq 3, input 2, hidden 2, random-ish weights.
  std::vector<float> x(12), w(4), r(4);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i));
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.3f * std::cos(float(i));
  for (size_t i = 0; i < r.size(); ++i) r[i] = 0.2f * std::sin(float(i) + 1);
  std::vector<float> xt(12);  // [seq, batch, in] from [batch, seq, in]
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 3; ++t)
      for (int k = 0; k < 2; ++k) xt[size_t((t * 2 + b) * 2 + k)] = x[size_t((b * 3 + t) * 2 + k)];
  auto a = run("RNN", {{"X", f32({2, 3, 2}, x)}, {"W", f32({1, 2, 2}, {w[0], w[1], w[2], w[3]})},
                       {"R", f32({1, 2, 2}, {r[0], r[1], r[2], r[3]})}},
               attrs({{"layout", int64_t(1)}}), 2);
  auto b = run("RNN", {{"X", f32({3, 2, 2}, xt)}, {"W", f32({1, 2, 2}, {w[0], w[1], w[2], w[3]})},
                       {"R", f32({1, 2, 2}, {r[0], r[1], r[2], r[3]})}},
               {}, 2);
  EXPECT_EQ(a[0].dims(), (std::vector<int64_t>{2, 3, 1, 2}));
  EXPECT_EQ(a[1].dims(), (std::vector<int64_t>{2, 1, 2}));
  for (int bb = 0; bb < 2; ++bb)
    for (int t = 0; t < 3; ++t)
      for (int j = 0; j < 2; ++j)
        EXPECT_NEAR(a[0].getDouble((bb * 3 + t) * 2 + j), b[0].getDouble((t * 2 + bb) * 2 + j), 1e-6);
  expectNear(a[1], values(b[1]), 1e-6);
}

TEST(ControlRnn, BidirectionalLstmIsForwardPlusReverseOnOddShapes) {
  // seq 5, batch 3, input 13, hidden 7, sequence_lens [5, 1, 3]; weights from a fixed formula.
  const int64_t S = 5, B = 3, I = 13, H = 7;
  auto fill = [](int64_t n, double scale, double phase) {
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[size_t(i)] = float(scale * std::sin(0.37 * double(i) + phase));
    return v;
  };
  auto x = fill(S * B * I, 1.0, 0.1);
  auto w = fill(2 * 4 * H * I, 0.3, 0.2), r = fill(2 * 4 * H * H, 0.3, 0.3), b = fill(2 * 8 * H, 0.1, 0.4);
  auto h0 = fill(2 * B * H, 0.5, 0.5), c0 = fill(2 * B * H, 0.5, 0.6), p = fill(2 * 3 * H, 0.2, 0.7);
  auto half = [](const std::vector<float>& v, int d) {
    const size_t n = v.size() / 2;
    return std::vector<float>(v.begin() + long(d * n), v.begin() + long((d + 1) * n));
  };
  auto lstm = [&](const std::string& dir, int d) {
    const int64_t D = d < 0 ? 2 : 1;
    auto pick = [&](const std::vector<float>& v) { return d < 0 ? v : half(v, d); };
    return run("LSTM",
               {{"X", f32({S, B, I}, x)},
                {"W", f32({D, 4 * H, I}, pick(w))},
                {"R", f32({D, 4 * H, H}, pick(r))},
                {"B", f32({D, 8 * H}, pick(b))},
                {"lens", i32({B}, {5, 1, 3})},
                {"h0", f32({D, B, H}, pick(h0))},
                {"c0", f32({D, B, H}, pick(c0))},
                {"P", f32({D, 3 * H}, pick(p))}},
               attrs({{"hidden_size", H}, {"direction", dir}}), 3);
  };
  auto both = lstm("bidirectional", -1), fwd = lstm("forward", 0), rev = lstm("reverse", 1);
  for (int64_t t = 0; t < S; ++t)
    for (int64_t bb = 0; bb < B; ++bb)
      for (int64_t j = 0; j < H; ++j) {
        EXPECT_NEAR(both[0].getDouble(((t * 2 + 0) * B + bb) * H + j), fwd[0].getDouble((t * B + bb) * H + j), 1e-6);
        EXPECT_NEAR(both[0].getDouble(((t * 2 + 1) * B + bb) * H + j), rev[0].getDouble((t * B + bb) * H + j), 1e-6);
      }
  for (int k = 1; k < 3; ++k)
    for (int64_t i = 0; i < B * H; ++i) {
      EXPECT_NEAR(both[size_t(k)].getDouble(i), fwd[size_t(k)].getDouble(i), 1e-6);
      EXPECT_NEAR(both[size_t(k)].getDouble(B * H + i), rev[size_t(k)].getDouble(i), 1e-6);
    }
  // Row 1 (length 1): Y is zero after the first step in both directions.
  for (int64_t t = 1; t < S; ++t)
    for (int64_t j = 0; j < H; ++j) EXPECT_EQ(both[0].getDouble(((t * 2 + 1) * B + 1) * H + j), 0.0);
}

// ---- signal -----------------------------------------------------------------------------

TEST(ControlSignal, DftOfARealSignalOnesidedAndInverse) {
  // x = [1, 2, 3, 4]: X = [10, -2+2i, -2, -2-2i].
  auto out = run("DFT", {{"x", f32({1, 4, 1}, {1, 2, 3, 4})}});
  expectNear(out[0], {10, 0, -2, 2, -2, 0, -2, -2});
  out = run("DFT", {{"x", f32({1, 4, 1}, {1, 2, 3, 4})}}, attrs({{"onesided", int64_t(1)}}));
  EXPECT_EQ(out[0].dims(), (std::vector<int64_t>{1, 3, 2}));
  out = run("DFT", {{"x", f32({1, 4, 2}, {10, 0, -2, 2, -2, 0, -2, -2})}}, attrs({{"inverse", int64_t(1)}}));
  expectNear(out[0], {1, 0, 2, 0, 3, 0, 4, 0});
  // dft_length 8 zero-pads; along axis 0 of a [2, 1, 1] signal: X = [a+b, a-b].
  out = run("DFT", {{"x", f32({1, 2, 1}, {1, 1})}, {"len", Tensor::scalar<int64_t>(DataType::kI64, 8)}});
  EXPECT_EQ(out[0].dims(), (std::vector<int64_t>{1, 8, 2}));
  EXPECT_NEAR(out[0].getDouble(0), 2, 1e-6);
  out = run("DFT", {{"x", f32({2, 1, 1}, {3, 1})}, {"", {}}, {"axis", Tensor::scalar<int64_t>(DataType::kI64, 0)}});
  expectNear(out[0], {4, 0, 2, 0});
}

TEST(ControlSignal, DftInOtherFloatTypesRoundTrips) {
  for (DataType dt : {DataType::kF64, DataType::kF16, DataType::kBF16}) {
    Tensor x(dt, {1, 7, 1});
    for (int64_t i = 0; i < 7; ++i) x.setDouble(i, double(i % 3) - 1);
    auto fwd = run("DFT", {{"x", x}})[0];
    EXPECT_EQ(fwd.dtype(), dt);
    auto back = run("DFT", {{"x", fwd}}, attrs({{"inverse", int64_t(1)}}))[0];
    const double tol = dt == DataType::kF64 ? 1e-12 : dt == DataType::kF16 ? 1e-2 : 5e-2;
    for (int64_t i = 0; i < 7; ++i) {
      EXPECT_NEAR(back.getDouble(2 * i), x.getDouble(i), tol) << dtypeName(dt);
      EXPECT_NEAR(back.getDouble(2 * i + 1), 0, tol) << dtypeName(dt);
    }
  }
  expectError([] { run("DFT", {{"x", f32({1, 4, 1}, {1, 2, 3, 4})}}, attrs({{"inverse", int64_t(1)}, {"onesided", int64_t(1)}})); },
              {"DFT 'n0'", "onesided and inverse"});
}

TEST(ControlSignal, DftInferenceAndBadAxis) {
  auto g = oneNode("DFT",
                   {{"x", tt(DataType::kF32, {sym("N"), 16, 1}), {}},
                    {"len", {}, Tensor::scalar<int64_t>(DataType::kI64, 10)},
                    {"axis", {}, Tensor::scalar<int64_t>(DataType::kI64, 1)}},
                   attrs({{"onesided", int64_t(1)}}));
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[N,6,2]");
  expectError(
      [] {
        oneNode("DFT", {{"x", tt(DataType::kF32, {4, 16, 1}), {}}, {"", {}, {}},
                        {"axis", {}, Tensor::scalar<int64_t>(DataType::kI64, -1)}},
                {});
      },
      {"DFT 'n0'", "axis -1"});
}

TEST(ControlSignal, StftMatchesTheDirectFormula) {
  std::vector<float> sig(10);
  for (size_t i = 0; i < sig.size(); ++i) sig[i] = float(i % 3) - 0.5f * float(i);
  auto out = run("STFT", {{"x", f32({1, 10, 1}, sig)},
                          {"step", Tensor::scalar<int64_t>(DataType::kI64, 3)},
                          {"win", f32({4}, {0.5f, 1, 1, 0.5f})}});
  ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{1, 3, 3, 2}));
  const double w[4] = {0.5, 1, 1, 0.5};
  for (int f = 0; f < 3; ++f)
    for (int k = 0; k < 3; ++k) {
      double re = 0, im = 0;
      for (int m = 0; m < 4; ++m) {
        re += w[m] * sig[size_t(f * 3 + m)] * std::cos(2 * M_PI * k * m / 4);
        im -= w[m] * sig[size_t(f * 3 + m)] * std::sin(2 * M_PI * k * m / 4);
      }
      EXPECT_NEAR(out[0].getDouble((f * 3 + k) * 2), re, 1e-5);
      EXPECT_NEAR(out[0].getDouble((f * 3 + k) * 2 + 1), im, 1e-5);
    }
  auto g = oneNode("STFT", {{"x", tt(DataType::kF32, {sym("B"), 128, 1}), {}},
                            {"step", {}, Tensor::scalar<int64_t>(DataType::kI64, 8)},
                            {"", {}, {}},
                            {"len", {}, Tensor::scalar<int64_t>(DataType::kI64, 16)}},
                   {});
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[B,15,9,2]");
}

TEST(ControlSignal, WindowsPeriodicAndSymmetric) {
  auto size = [](int32_t n) { return Tensor::scalar<int32_t>(DataType::kI32, n); };
  expectNear(run("HannWindow", {{"n", size(4)}})[0], {0, 0.5, 1, 0.5});
  expectNear(run("HannWindow", {{"n", size(5)}}, attrs({{"periodic", int64_t(0)}}))[0], {0, 0.5, 1, 0.5, 0});
  auto h = run("HammingWindow", {{"n", size(2)}}, attrs({{"output_datatype", int64_t(11)}}))[0];
  EXPECT_EQ(h.dtype(), DataType::kF64);
  expectNear(h, {4.0 / 46.0, 1.0}, 1e-12);
  expectNear(run("BlackmanWindow", {{"n", size(1)}}, attrs({{"periodic", int64_t(0)}}))[0], {1});
  auto g = oneNode("BlackmanWindow", {{"n", {}, size(7)}}, {});
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[7]");
}

TEST(ControlSignal, MelWeightMatrixShape) {
  auto s = [](int32_t n) { return Tensor::scalar<int32_t>(DataType::kI32, n); };
  auto g = oneNode("MelWeightMatrix",
                   {{"mels", {}, s(8)}, {"dft", {}, s(64)}, {"rate", {}, s(8000)},
                    {"lo", {}, Tensor::scalar<float>(DataType::kF32, 0)},
                    {"hi", {}, Tensor::scalar<float>(DataType::kF32, 4000)}},
                   {});
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[33,8]");
  auto out = Interpreter::run(*g, {});
  for (int64_t j = 0; j < 8; ++j) {
    double col = 0;
    for (int64_t i = 0; i < 33; ++i) col += out[0].getDouble(i * 8 + j);
    EXPECT_GT(col, 0) << "mel filter " << j << " is empty";
  }
}

// ---- grids ------------------------------------------------------------------------------

TEST(ControlGrid, AffineGridIdentityIsTheBaseGrid) {
  auto out = run("AffineGrid", {{"theta", f32({1, 2, 3}, {1, 0, 0, 0, 1, 0})}, {"size", i64({4}, {1, 1, 2, 3})}},
                 attrs({{"align_corners", int64_t(1)}}));
  ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{1, 2, 3, 2}));
  expectNear(out[0], {-1, -1, 0, -1, 1, -1, -1, 1, 0, 1, 1, 1});
  out = run("AffineGrid", {{"theta", f32({1, 2, 3}, {2, 0, 0.5f, 0, 1, 0})}, {"size", i64({4}, {1, 1, 1, 2})}});
  // align_corners 0: x in {-0.5, 0.5}, y = 0 -> (2x + 0.5, y).
  expectNear(out[0], {-0.5, 0, 1.5, 0});
  auto g = oneNode("AffineGrid", {{"theta", tt(DataType::kF32, {sym("N"), 3, 4}), {}},
                                  {"size", tt(DataType::kI64, {5}), {}}},
                   {});
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[N,?,?,?,3]");
}

TEST(ControlGrid, GridSampleInferencePaddingAndErrors) {
  auto g = oneNode("GridSample", {{"X", tt(DataType::kF32, {sym("N"), 3, 32, 32}), {}},
                                  {"G", tt(DataType::kF32, {sym("N"), 7, 13, 2}), {}}},
                   {});
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[N,3,7,13]");
  // A 1x3 image sampled left of, at and right of it (align_corners 1: x = -1 is pixel 0).
  Tensor X = f32({1, 1, 1, 3}, {10, 20, 30});
  Tensor G = f32({1, 1, 3, 2}, {-2, 0, 0, 0, 2, 0});
  expectNear(run("GridSample", {{"X", X}, {"G", G}}, attrs({{"align_corners", int64_t(1)}, {"padding_mode", std::string("border")}}))[0],
             {10, 20, 30});
  // Reflection about the border pixels: x = -1 and x = 3 both reflect to pixel 1.
  expectNear(run("GridSample", {{"X", X}, {"G", G}},
                 attrs({{"align_corners", int64_t(1)}, {"padding_mode", std::string("reflection")}}))[0],
             {20, 20, 20});
  expectNear(run("GridSample", {{"X", X}, {"G", G}}, attrs({{"align_corners", int64_t(1)}}))[0], {0, 20, 0});
  expectError(
      [] {
        oneNode("GridSample", {{"X", tt(DataType::kF32, {1, 1, 2, 2, 2}), {}}, {"G", tt(DataType::kF32, {1, 2, 2, 2, 3}), {}}},
                attrs({{"mode", std::string("cubic")}}));
      },
      {"GridSample 'n0'", "cubic"});
  expectError(
      [] {
        oneNode("GridSample", {{"X", tt(DataType::kF32, {1, 1, 2, 2}), {}}, {"G", tt(DataType::kF32, {1, 2, 2, 3}), {}}}, {});
      },
      {"GridSample 'n0'", "last dim must be 2"});
}

// ---- NonMaxSuppression ------------------------------------------------------------------

TEST(ControlNms, EdgeCases) {
  Tensor boxes = f32({1, 3, 4}, {0, 0, 1, 1, 0, 0.1f, 1, 1.1f, 0, 5, 1, 6});
  Tensor scores = f32({1, 1, 3}, {0.9f, 0.8f, 0.3f});
  // No max_output_boxes_per_class: nothing is selected.
  auto out = run("NonMaxSuppression", {{"b", boxes}, {"s", scores}});
  EXPECT_EQ(out[0].dims(), (std::vector<int64_t>{0, 3}));
  // IoU threshold 0.5 suppresses box 1; no score threshold keeps box 2.
  out = run("NonMaxSuppression", {{"b", boxes}, {"s", scores}, {"m", i64({1}, {10})}, {"iou", f32({1}, {0.5f})}});
  expectNear(out[0], {0, 0, 0, 0, 0, 2});
  // Score threshold is strict.
  out = run("NonMaxSuppression", {{"b", boxes}, {"s", scores}, {"m", i64({1}, {10})}, {"iou", f32({1}, {0.5f})},
                                  {"st", f32({1}, {0.3f})}});
  expectNear(out[0], {0, 0, 0});
  expectError([&] { run("NonMaxSuppression", {{"b", boxes}, {"s", f32({1, 1, 2}, {1, 2})}, {"m", i64({1}, {1})}}); },
              {"NonMaxSuppression 'n0'", "do not match"});
}

// ---- random -----------------------------------------------------------------------------

TEST(ControlRandom, SeededGeneratorsAreDeterministicAndShaped) {
  const Attributes a = attrs({{"shape", std::vector<int64_t>{3, 5}}, {"seed", 7.0f}, {"low", -2.0f}, {"high", 3.0f}});
  auto u1 = run("RandomUniform", {}, a)[0];
  auto u2 = run("RandomUniform", {}, a)[0];
  EXPECT_TRUE(u1.sameAs(u2));
  EXPECT_EQ(u1.dims(), (std::vector<int64_t>{3, 5}));
  for (double v : values(u1)) {
    EXPECT_GE(v, -2);
    EXPECT_LT(v, 3);
  }
  auto n = run("RandomNormalLike", {{"x", i64({1000}, std::vector<int64_t>(1000, 0))}},
               attrs({{"dtype", int64_t(11)}, {"mean", 5.0f}, {"scale", 0.5f}, {"seed", 1.0f}}))[0];
  EXPECT_EQ(n.dtype(), DataType::kF64);
  auto v = values(n);
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
  EXPECT_NEAR(mean, 5, 0.1);
  EXPECT_TRUE(OpRegistry::instance().find("RandomNormal")->has(kTraitRandom));
  EXPECT_TRUE(OpRegistry::instance().find("Bernoulli")->has(kTraitRandom));
}

TEST(ControlRandom, MultinomialAndBernoulliExtremes) {
  auto m = run("Multinomial", {{"x", f32({2, 3}, {0, 100, 0, -100, -100, 0})}},
               attrs({{"sample_size", int64_t(4)}, {"seed", 3.0f}}))[0];
  EXPECT_EQ(m.dtype(), DataType::kI32);
  expectNear(m, {1, 1, 1, 1, 2, 2, 2, 2});
  auto b = run("Bernoulli", {{"p", f32({4}, {0, 1, 1, 0})}}, attrs({{"dtype", int64_t(9)}}))[0];
  EXPECT_EQ(b.dtype(), DataType::kBool);
  expectNear(b, {0, 1, 1, 0});
  expectError([] { run("Bernoulli", {{"p", f32({1}, {1.5f})}}); }, {"Bernoulli 'n0'", "[0, 1]"});
}

// ---- text -------------------------------------------------------------------------------

TEST(ControlText, TfIdfIdfAndTfidfWeights) {
  // Pool: unigrams {2, 3}, bigrams {(2,3), (3,2)}; columns 0..3; weights per column.
  Attributes a = attrs({{"min_gram_length", int64_t(1)}, {"max_gram_length", int64_t(2)},
                        {"max_skip_count", int64_t(0)}, {"ngram_counts", std::vector<int64_t>{0, 2}},
                        {"ngram_indexes", std::vector<int64_t>{0, 1, 2, 3}},
                        {"pool_int64s", std::vector<int64_t>{2, 3, 2, 3, 3, 2}},
                        {"weights", std::vector<float>{0.5f, 2, 3, 4}}});
  Tensor x = i64({2, 4}, {2, 3, 2, 3, 7, 7, 3, 7});
  a.set("mode", std::string("TF"));
  expectNear(run("TfIdfVectorizer", {{"x", x}}, a)[0], {2, 2, 2, 1, 0, 1, 0, 0});
  a.set("mode", std::string("IDF"));
  expectNear(run("TfIdfVectorizer", {{"x", x}}, a)[0], {0.5, 2, 3, 4, 0, 2, 0, 0});
  a.set("mode", std::string("TFIDF"));
  expectNear(run("TfIdfVectorizer", {{"x", x}}, a)[0], {1, 4, 6, 4, 0, 2, 0, 0});
  // The same over strings.
  Attributes s = attrs({{"min_gram_length", int64_t(1)}, {"max_gram_length", int64_t(1)},
                        {"mode", std::string("TF")}, {"ngram_counts", std::vector<int64_t>{0}},
                        {"ngram_indexes", std::vector<int64_t>{1, 0}},
                        {"pool_strings", std::vector<std::string>{"a", "b"}}});
  expectNear(run("TfIdfVectorizer", {{"x", strs({4}, {"a", "b", "b", "c"})}}, s)[0], {2, 1});
}

TEST(ControlText, StringOps) {
  auto sp = run("StringSplit", {{"x", strs({3}, {"  a b  c ", "", "x"})}}, attrs({{"maxsplit", int64_t(1)}}), 2);
  EXPECT_EQ(sp[0].dims(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(sp[0].str(0), "a");
  EXPECT_EQ(sp[0].str(1), "b  c ");
  expectNear(sp[1], {2, 0, 1});
  sp = run("StringSplit", {{"x", strs({2}, {"a,,b", ""})}}, attrs({{"delimiter", std::string(",")}}), 2);
  EXPECT_EQ(sp[0].dims(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(sp[0].str(1), "");
  expectNear(sp[1], {3, 1});
  auto cat = run("StringConcat", {{"a", strs({2, 1}, {"x", "y"})}, {"b", strs({2}, {"1", "2"})}})[0];
  EXPECT_EQ(cat.dims(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(cat.str(3), "y2");
  auto norm = run("StringNormalizer", {{"x", strs({1, 3}, {"Monday", "is", "MONDAY"})}},
                  attrs({{"stopwords", std::vector<std::string>{"monday"}}, {"case_change_action", std::string("UPPER")}}))[0];
  EXPECT_EQ(norm.dims(), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(norm.str(0), "IS");
  auto re = run("RegexFullMatch", {{"x", strs({3}, {"ab12", "ab", "12"})}}, attrs({{"pattern", std::string("[a-z]+\\d*")}}))[0];
  expectNear(re, {1, 1, 0});
  expectError([] { run("RegexFullMatch", {{"x", strs({1}, {"a"})}}, attrs({{"pattern", std::string("(")}})); },
              {"RegexFullMatch 'n0'", "not a valid regular expression"});
}

}  // namespace
