// lstm-stack-fusion (passes/lstm_stack_fusion.cpp) and the anvil.LSTMStack op: chains of
// forward LSTM layers joined through Squeeze(axis 1), as PyTorch exports nn.LSTM with
// num_layers > 1, become one node; the graph computes the same bits on the reference
// interpreter (its LSTMStack kernel runs the reference LSTM per layer); graph output names
// are kept; what the stack cannot express is declined.
#include <gtest/gtest.h>

#include <random>

#include "anvil/error.h"
#include "fusion_test_util.h"

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

struct Layer {
  int64_t H = 4;
  std::string direction = "forward";
  bool initial = false;        // initial_h / initial_c as graph inputs
  bool stateFromPrev = false;  // initial_h computed from the previous layer's Y_h
  bool lens = false;           // a sequence_lens input
  bool clip = false;
  int64_t squeezeAxis = 1;     // of the Squeeze feeding this layer (not the first)
};

struct Chain {
  int64_t S = 5, B = 2, I = 3;
  std::vector<Layer> layers;
  bool firstYIsOutput = false;   // the first layer's Y also a graph output
  bool lastYIsOutput = false;    // the last layer's Y a graph output (else Squeeze -> Transpose)
};

Tensor uniform(const std::vector<int64_t>& dims, std::mt19937& rng, double range) {
  Tensor t(DataType::kF32, dims);
  std::uniform_real_distribution<double> u(-range, range);
  for (int64_t i = 0; i < t.numel(); ++i) t.setDouble(i, u(rng));
  return t;
}

// The chain as an exporter writes it: X [S, B, I] -> LSTM -> Squeeze(axis) -> LSTM ...,
// every layer's Y_h and Y_c concatenated into h_n and c_n (graph outputs of their own where
// the hidden sizes differ).
std::unique_ptr<ir::Graph> makeChain(const Chain& c) {
  auto g = std::make_unique<ir::Graph>();
  std::mt19937 rng(5);
  ir::Value* x = g->addValue("X", {DataType::kF32, ir::Shape::fromExtents({c.S, c.B, c.I})});
  g->addInput(x);
  int64_t I = c.I;
  std::vector<ir::Value*> hs, cs;
  ir::Node* prev = nullptr;
  for (size_t l = 0; l < c.layers.size(); ++l) {
    const Layer& L = c.layers[l];
    const std::string p = "l" + std::to_string(l) + "_";
    if (prev) {
      ir::Value* axes = g->addInitializer(p + "axes", Tensor::fromVector<int64_t>(DataType::kI64, {1}, {L.squeezeAxis}));
      ir::Node* sq = g->addNode("Squeeze", "", p + "squeeze", {prev->output(0), axes}, {p + "x"});
      x = sq->output(0);
    }
    const int64_t D = L.direction == "bidirectional" ? 2 : 1;
    ir::Value* w = g->addInitializer(p + "W", uniform({D, 4 * L.H, I}, rng, 0.5));
    ir::Value* r = g->addInitializer(p + "R", uniform({D, 4 * L.H, L.H}, rng, 0.5));
    ir::Value* b = g->addInitializer(p + "B", uniform({D, 8 * L.H}, rng, 0.5));
    ir::Value* lens = nullptr;
    if (L.lens) {
      lens = g->addInitializer(p + "lens", Tensor::fromVector<int32_t>(DataType::kI32, {c.B}, std::vector<int32_t>(size_t(c.B), int32_t(c.S))));
    }
    ir::Value *h0 = nullptr, *c0 = nullptr;
    if (L.initial) {
      h0 = g->addValue(p + "h0", {DataType::kF32, ir::Shape::fromExtents({D, c.B, L.H})});
      c0 = g->addValue(p + "c0", {DataType::kF32, ir::Shape::fromExtents({D, c.B, L.H})});
      g->addInput(h0);
      g->addInput(c0);
    }
    if (L.stateFromPrev) {
      ir::Node* neg = g->addNode("Neg", "", p + "neg", {prev->output(1)}, {p + "h0"});
      h0 = neg->output(0);
    }
    ir::Node* n = g->addNode("LSTM", "", p + "lstm", {x, w, r, b, lens, h0, c0}, {p + "Y", p + "Yh", p + "Yc"});
    n->attrs().set("hidden_size", L.H);
    if (L.direction != "forward") n->attrs().set("direction", L.direction);
    if (L.clip) n->attrs().set("clip", 3.0f);
    hs.push_back(n->output(1));
    cs.push_back(n->output(2));
    prev = n;
    I = L.H * D;
  }
  if (c.firstYIsOutput) g->addOutput(g->findValue("l0_Y"));
  if (c.lastYIsOutput) {
    g->addOutput(prev->output(0));
  } else {
    ir::Value* axes = g->addInitializer("out_axes", Tensor::fromVector<int64_t>(DataType::kI64, {1}, {1}));
    ir::Node* sq = g->addNode("Squeeze", "", "out_squeeze", {prev->output(0), axes}, {"out_seq"});
    ir::Node* tr = g->addNode("Transpose", "", "out_transpose", {sq->output(0)}, {"output"});
    tr->attrs().set("perm", std::vector<int64_t>{1, 0, 2});
    g->addOutput(tr->output(0));
  }
  bool sameSizes = true;
  for (const Layer& L : c.layers) sameSizes = sameSizes && L.H == c.layers[0].H;
  if (sameSizes) {  // as PyTorch: h_n and c_n
    ir::Node* hn = g->addNode("Concat", "", "h_n", hs, {"h_n"});
    hn->attrs().set("axis", int64_t(0));
    ir::Node* cn = g->addNode("Concat", "", "c_n", cs, {"c_n"});
    cn->attrs().set("axis", int64_t(0));
    g->addOutput(hn->output(0));
    g->addOutput(cn->output(0));
  } else {  // every state a graph output of its own
    for (size_t l = 0; l < hs.size(); ++l) {
      g->addOutput(hs[l]);
      g->addOutput(cs[l]);
    }
  }
  ir::inferShapes(*g);
  ir::verify(*g);
  return g;
}

std::vector<std::string> ops(const ir::Graph& g) {
  std::vector<std::string> out;
  for (const auto& n : g.nodes()) out.push_back(n->domain().empty() ? n->op() : n->domain() + "." + n->op());
  return out;
}

std::vector<std::string> outputNames(const ir::Graph& g) {
  std::vector<std::string> out;
  for (const ir::Value* v : g.outputs()) out.push_back(v->name());
  return out;
}

// Fuses, checks the result verifies and computes the same bits; returns the fused graph.
std::unique_ptr<ir::Graph> fuseAndCompare(const Chain& c, int* changed) {
  auto before = makeChain(c);
  auto after = makeChain(c);
  *changed = passes::fuseLstmStacks(*after, {}).changed;
  ir::inferShapes(*after);
  ir::verify(*after);
  EXPECT_EQ(outputNames(*after), outputNames(*before));
  for (unsigned seed : {1u, 2u}) {
    const auto in = fusiontest::randomInputs(*before, seed, 1.0);
    const auto a = cpu::Interpreter::run(*after, in);
    const auto b = cpu::Interpreter::run(*before, in);
    EXPECT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) EXPECT_TRUE(a[i].sameAs(b[i])) << "output " << i;
  }
  return after;
}

const ir::Node* onlyStack(const ir::Graph& g) {
  const ir::Node* s = nullptr;
  for (const auto& n : g.nodes())
    if (n->op() == "LSTMStack") {
      EXPECT_EQ(s, nullptr) << "more than one stack";
      s = n.get();
    }
  return s;
}

TEST(LstmStackFusion, TwoLayersAsTorchExportsThem) {
  Chain c;
  c.layers = {Layer{.H = 4, .initial = true}, Layer{.H = 4, .initial = true}};
  int changed = 0;
  auto g = fuseAndCompare(c, &changed);
  EXPECT_EQ(changed, 1);
  EXPECT_EQ(ops(*g), (std::vector<std::string>{"anvil.LSTMStack", "Squeeze", "Transpose", "Concat", "Concat"}));
  const ir::Node* s = onlyStack(*g);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->attrs().getInt("layers", 0), 2);
  EXPECT_EQ(s->attrs().getInts("hidden_sizes"), (std::vector<int64_t>{4, 4}));
  EXPECT_EQ(s->numInputs(), 11u);
  EXPECT_EQ(s->numOutputs(), 5u);
  EXPECT_EQ(s->output(1)->name(), "l0_Yh");
  EXPECT_EQ(s->output(4)->name(), "l1_Yc");
  EXPECT_EQ(s->output(0)->shape(), ir::Shape::fromExtents({5, 1, 2, 4}));
}

TEST(LstmStackFusion, ThreeLayersBecomeOneStack) {
  Chain c;
  c.lastYIsOutput = true;
  c.layers = {Layer{.H = 3}, Layer{.H = 5, .initial = true}, Layer{.H = 2, .squeezeAxis = -3}};
  int changed = 0;
  auto g = fuseAndCompare(c, &changed);
  EXPECT_EQ(changed, 2);
  const ir::Node* s = onlyStack(*g);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->attrs().getInt("layers", 0), 3);
  EXPECT_EQ(s->attrs().getInts("hidden_sizes"), (std::vector<int64_t>{3, 5, 2}));
  EXPECT_EQ(s->numInputs(), 16u);
  EXPECT_EQ(s->output(0)->name(), "l2_Y");  // graph outputs keep their names
  EXPECT_EQ(s->output(3)->name(), "l1_Yh");
  EXPECT_EQ(s->output(6)->name(), "l2_Yc");
}

// What the stack cannot express stays two LSTM nodes (and the graph unchanged).
TEST(LstmStackFusion, DeclinesWhatTheStackCannotExpress) {
  std::vector<std::pair<std::string, Chain>> cases;
  auto two = [](Layer a, Layer b) {
    Chain c;
    c.layers = {a, b};
    return c;
  };
  cases.push_back({"second layer reverse", two(Layer{}, Layer{.direction = "reverse"})});
  cases.push_back({"first layer reverse", two(Layer{.direction = "reverse"}, Layer{})});
  cases.push_back({"sequence_lens", two(Layer{}, Layer{.lens = true})});
  cases.push_back({"clip", two(Layer{.clip = true}, Layer{})});
  cases.push_back({"initial state from the previous layer", two(Layer{}, Layer{.stateFromPrev = true})});
  Chain firstOut = two(Layer{}, Layer{});
  firstOut.firstYIsOutput = true;
  cases.push_back({"intermediate Y a graph output", firstOut});
  Chain axis0 = two(Layer{}, Layer{.squeezeAxis = 0});
  axis0.S = 1;
  cases.push_back({"Squeeze of another axis", axis0});
  for (const auto& [what, c] : cases) {
    auto g = makeChain(c);
    const std::vector<std::string> before = ops(*g);
    EXPECT_EQ(passes::fuseLstmStacks(*g, {}).changed, 0) << what;
    EXPECT_EQ(ops(*g), before) << what;
  }
}

// The op's schema checks its inputs against attribute layers and hidden_sizes.
TEST(LstmStackOp, SchemaChecksLayersAgainstInputs) {
  Chain c;
  c.layers = {Layer{.H = 4}, Layer{.H = 6}};
  int changed = 0;
  auto g = fuseAndCompare(c, &changed);
  ir::Node* s = nullptr;
  for (const auto& n : g->nodes())
    if (n->op() == "LSTMStack") s = n.get();
  ASSERT_NE(s, nullptr);
  s->attrs().set("hidden_sizes", std::vector<int64_t>{4, 7});
  EXPECT_THROW(ir::inferShapes(*g), Error);
  s->attrs().set("hidden_sizes", std::vector<int64_t>{4, 6});
  s->attrs().set("layers", int64_t(3));
  EXPECT_THROW(ir::inferShapes(*g), Error);
  s->attrs().set("layers", int64_t(2));
  EXPECT_NO_THROW(ir::inferShapes(*g));
}

}  // namespace
