// The Q/DQ pass (passes/qdq_fusion.cpp): weight DequantizeLinear folds into an f32
// constant that remembers its quantization; a Conv / Gemm / MatMul between Q/DQ pairs reads
// the float input with its grid as metadata and computes in INT8; other Q/DQ pairs stay.
#include <gtest/gtest.h>

#include "ir/op_schema.h"
#include "ir/printer.h"
#include "passes/passes.h"
#include "passes/precision.h"

using namespace anvil;
using ir::DataType;
using ir::Shape;
using ir::Tensor;

namespace {

struct QdqNet {
  ir::Graph g;
  ir::Node *conv = nullptr, *add = nullptr, *gemm = nullptr;
  // x -Q/DQ(sx, zx)-> Conv(DQ(wq, sw)) -> c -Q/DQ-> Add(., c) -> Flatten -> Q/DQ -> Gemm(DQ(fq)) -> y
  QdqNet(DataType actType, int zx, bool perChannel, float gemmInScale = 0.05f, float gemmDqScale = 0.05f) {
    ir::Value* x = g.addValue("x", {DataType::kF32, Shape::fromExtents({1, 2, 3, 3})});
    g.addInput(x);
    auto zp = [&](int z) {
      return actType == DataType::kI8 ? Tensor::scalar<int8_t>(DataType::kI8, int8_t(z))
                                      : Tensor::scalar<uint8_t>(DataType::kU8, uint8_t(z));
    };
    auto qdq = [&](ir::Value* v, const std::string& n, float s, int z, float sDq) {
      ir::Value* sv = g.addInitializer(n + "_s", Tensor::scalar<float>(DataType::kF32, s));
      ir::Value* sd = g.addInitializer(n + "_sd", Tensor::scalar<float>(DataType::kF32, sDq));
      ir::Value* zv = g.addInitializer(n + "_z", zp(z));
      ir::Node* q = g.addNode("QuantizeLinear", "", n + "_q", {v, sv, zv}, {n + "_qv"});
      return g.addNode("DequantizeLinear", "", n + "_dq", {q->output(0), sd, zv}, {n + "_dqv"})->output(0);
    };
    ir::Value* xd = qdq(x, "x", 0.1f, zx, 0.1f);
    Tensor wq(DataType::kI8, {2, 2, 1, 1});
    for (int i = 0; i < 4; ++i) wq.data<int8_t>()[i] = int8_t(10 * i - 15);
    ir::Value* wqv = g.addInitializer("wq", wq);
    ir::Value* ws = perChannel ? g.addInitializer("ws", Tensor::fromVector<float>(DataType::kF32, {2}, {0.01f, 0.02f}))
                               : g.addInitializer("ws", Tensor::scalar<float>(DataType::kF32, 0.01f));
    ir::Value* wz = perChannel ? g.addInitializer("wz", Tensor(DataType::kI8, {2}))
                               : g.addInitializer("wz", Tensor::scalar<int8_t>(DataType::kI8, 0));
    ir::Node* wdq = g.addNode("DequantizeLinear", "", "w_dq", {wqv, ws, wz}, {"w"});
    if (perChannel) wdq->attrs().set("axis", int64_t(0));
    conv = g.addNode("Conv", "", "conv", {xd, wdq->output(0)}, {"c"});
    ir::Value* cd = qdq(conv->output(0), "c", 0.2f, zx, 0.2f);
    add = g.addNode("Add", "", "add", {cd, cd}, {"s"});
    ir::Node* flat = g.addNode("Flatten", "", "flat", {add->output(0)}, {"f"});
    ir::Value* fd = qdq(flat->output(0), "f", gemmInScale, zx, gemmDqScale);
    Tensor fq(DataType::kI8, {18, 4});
    for (int i = 0; i < 72; ++i) fq.data<int8_t>()[i] = int8_t(i % 11 - 5);
    ir::Value* fqv = g.addInitializer("fq", fq);
    ir::Value* fs = g.addInitializer("fs", Tensor::scalar<float>(DataType::kF32, 0.03f));
    ir::Value* fz = g.addInitializer("fz", Tensor::scalar<int8_t>(DataType::kI8, 0));
    ir::Node* fdq = g.addNode("DequantizeLinear", "", "f_wdq", {fqv, fs, fz}, {"fw"});
    gemm = g.addNode("Gemm", "", "gemm", {fd, fdq->output(0)}, {"y"});
    g.addOutput(gemm->output(0));
    ir::inferShapes(g);
  }
};

TEST(QdqFusion, LinearLayersComputeInInt8OnTheirInputsGrid) {
  QdqNet net(DataType::kI8, -3, true);
  const passes::PassResult r = passes::fuseQdq(net.g, {});
  EXPECT_EQ(r.stats,
            "2 weight DequantizeLinear folded, 2 linear layers in INT8 from their Q/DQ, 1 requantized as "
            "onnxruntime does, 0 QLinearAdd, 0 QLinearGlobalAveragePool, 0 Q/DQ pairs between INT8 layers "
            "absorbed");
  // The Conv reads x's DequantizeLinear (values on the grid), which carries the u8 form of
  // the s8 grid (zero point -3 + 128).
  EXPECT_EQ(net.conv->input(0)->name(), "x_dqv");
  EXPECT_EQ(net.conv->precision(), DataType::kI8);
  EXPECT_EQ(net.conv->tacticParams().getString(passes::kPrecisionReasonAttr, ""), "model");
  const auto& xq = net.conv->input(0)->quantization();
  ASSERT_TRUE(xq);
  EXPECT_EQ(xq->scale.data<float>()[0], 0.1f);
  EXPECT_EQ(xq->zeroPoint.dtype(), DataType::kU8);
  EXPECT_EQ(xq->zeroPoint.data<uint8_t>()[0], 125);
  // The weights: the dequantized f32 values, their per-channel scales kept (axis 0).
  const ir::Value* w = net.conv->input(1);
  ASSERT_TRUE(w->isInitializer());
  EXPECT_EQ(w->dtype(), DataType::kF32);
  EXPECT_FLOAT_EQ(w->initializer()->data<float>()[0], -15 * 0.01f);
  EXPECT_FLOAT_EQ(w->initializer()->data<float>()[3], 15 * 0.02f);
  ASSERT_TRUE(w->quantization() && w->quantization()->axis);
  EXPECT_EQ(*w->quantization()->axis, 0);
  EXPECT_EQ(w->quantization()->scale.data<float>()[1], 0.02f);
  // The Add keeps its Q/DQ (it rounds to the model's grid); the Gemm reads the Flatten
  // output, its per-tensor weight scale repeated along its output axis (1: no transB).
  EXPECT_EQ(net.add->input(0)->producer()->op(), "DequantizeLinear");
  EXPECT_EQ(net.gemm->input(0)->name(), "f_dqv");
  EXPECT_EQ(net.gemm->precision(), DataType::kI8);
  const auto& fw = net.gemm->input(1)->quantization();
  ASSERT_TRUE(fw && fw->axis);
  EXPECT_EQ(*fw->axis, 1);
  EXPECT_EQ(fw->scale.numel(), 4);
  EXPECT_EQ(fw->scale.data<float>()[3], 0.03f);
  // The Conv's output only a QuantizeLinear reads: onnxruntime's requantization (no bias:
  // zeros), the QuantizeLinear rounding steps (scale 1). The Gemm feeds the graph output.
  EXPECT_EQ(net.conv->tacticParams().getFloat("qdq_out_scale", 0.0f), 0.2f);
  EXPECT_EQ(net.conv->tacticParams().getInts("qdq_bias"), (std::vector<int64_t>{0, 0}));
  const ir::Node* cq = net.g.users(net.conv->output(0)).at(0);
  EXPECT_EQ(cq->op(), "QuantizeLinear");
  ASSERT_TRUE(cq->input(1)->isInitializer());
  EXPECT_EQ(cq->input(1)->initializer()->data<float>()[0], 1.0f);
  EXPECT_FALSE(net.gemm->tacticParams().has("qdq_out_scale"));
  // Every Q/DQ pair stays: the layers read the DequantizeLinear outputs.
  int q = 0, dq = 0;
  for (const auto& n : net.g.nodes()) {
    q += n->op() == "QuantizeLinear";
    dq += n->op() == "DequantizeLinear";
  }
  EXPECT_EQ(q, 3);
  EXPECT_EQ(dq, 3);
}

// x -Q/DQ-> Conv(DQ(w), DQ(int32 bias, scale bs)) -> Q -> DQ -> y: the bias joins the
// integer sum where its scale is s_x * s_w (onnxruntime's QLinearConv); on another grid the
// f32 bias stays (the spec's path).
struct BiasNet {
  ir::Graph g;
  ir::Node *conv = nullptr, *q = nullptr;
  BiasNet(float biasScaleFactor) {
    ir::Value* x = g.addValue("x", {DataType::kF32, Shape::fromExtents({1, 2, 3, 3})});
    g.addInput(x);
    auto f = [&](const std::string& n, float v) { return g.addInitializer(n, Tensor::scalar<float>(DataType::kF32, v)); };
    auto z8 = [&](const std::string& n, int v) { return g.addInitializer(n, Tensor::scalar<int8_t>(DataType::kI8, int8_t(v))); };
    ir::Node* xq = g.addNode("QuantizeLinear", "", "xq", {x, f("xs", 0.1f), z8("xz", 5)}, {"xqv"});
    ir::Node* xdq = g.addNode("DequantizeLinear", "", "xdq", {xq->output(0), f("xs2", 0.1f), z8("xz2", 5)}, {"xd"});
    Tensor wq(DataType::kI8, {2, 2, 1, 1});
    for (int i = 0; i < 4; ++i) wq.data<int8_t>()[i] = int8_t(7 * i - 9);
    ir::Node* wdq = g.addNode("DequantizeLinear", "", "wdq",
                              {g.addInitializer("wq", wq),
                               g.addInitializer("ws", Tensor::fromVector<float>(DataType::kF32, {2}, {0.01f, 0.03f})),
                               g.addInitializer("wz", Tensor(DataType::kI8, {2}))},
                              {"w"});
    wdq->attrs().set("axis", int64_t(0));
    const std::vector<float> bs = {0.1f * 0.01f * biasScaleFactor, 0.1f * 0.03f};
    ir::Node* bdq = g.addNode("DequantizeLinear", "", "bdq",
                              {g.addInitializer("bq", Tensor::fromVector<int32_t>(DataType::kI32, {2}, {-70001, 123457})),
                               g.addInitializer("bs", Tensor::fromVector<float>(DataType::kF32, {2}, bs)),
                               g.addInitializer("bz", Tensor(DataType::kI32, {2}))},
                              {"b"});
    bdq->attrs().set("axis", int64_t(0));
    conv = g.addNode("Conv", "", "conv", {xdq->output(0), wdq->output(0), bdq->output(0)}, {"c"});
    q = g.addNode("QuantizeLinear", "", "cq", {conv->output(0), f("cs", 0.25f), z8("cz", -4)}, {"cqv"});
    ir::Node* dq = g.addNode("DequantizeLinear", "", "cdq", {q->output(0), f("cs2", 0.25f), z8("cz2", -4)}, {"y"});
    g.addOutput(dq->output(0));
    ir::inferShapes(g);
  }
};

TEST(QdqFusion, Int32BiasJoinsTheIntegerSum) {
  BiasNet net(1.0f);
  passes::fuseQdq(net.g, {});
  EXPECT_EQ(net.conv->precision(), DataType::kI8);
  EXPECT_EQ(net.conv->input(2), nullptr);  // the f32 bias is gone
  EXPECT_EQ(net.conv->tacticParams().getInts("qdq_bias"), (std::vector<int64_t>{-70001, 123457}));
  EXPECT_EQ(net.conv->tacticParams().getFloat("qdq_out_scale", 0.0f), 0.25f);
  EXPECT_EQ(net.q->input(1)->initializer()->data<float>()[0], 1.0f);
  // The DequantizeLinear after it keeps the model's scale: y = 0.25 * (q + 4).
  EXPECT_EQ(net.g.users(net.q->output(0)).at(0)->input(1)->initializer()->data<float>()[0], 0.25f);
}

TEST(QdqFusion, BiasOnAnotherGridKeepsTheSpecsPath) {
  BiasNet net(1.5f);
  passes::fuseQdq(net.g, {});
  EXPECT_EQ(net.conv->precision(), DataType::kI8);
  ASSERT_NE(net.conv->input(2), nullptr);
  EXPECT_FLOAT_EQ(net.conv->input(2)->initializer()->data<float>()[1], 123457 * (0.1f * 0.03f));
  EXPECT_FALSE(net.conv->tacticParams().has("qdq_out_scale"));
  EXPECT_EQ(net.q->input(1)->initializer()->data<float>()[0], 0.25f);
}

TEST(QdqFusion, UnsignedGridsKeepTheirZeroPoint) {
  QdqNet net(DataType::kU8, 7, false);
  passes::fuseQdq(net.g, {});
  ASSERT_TRUE(net.conv->input(0)->quantization());
  EXPECT_EQ(net.conv->input(0)->quantization()->zeroPoint.data<uint8_t>()[0], 7);
  ASSERT_TRUE(net.conv->input(1)->quantization()->axis);  // per tensor -> per output channel
  EXPECT_EQ(net.conv->input(1)->quantization()->scale.numel(), 2);
}

TEST(QdqFusion, MismatchedPairsStay) {
  // The Gemm's Q and DQ disagree on the scale: not a round trip, nothing to fuse there.
  QdqNet net(DataType::kI8, 0, true, 0.05f, 0.07f);
  passes::fuseQdq(net.g, {});
  EXPECT_EQ(net.conv->precision(), DataType::kI8);
  EXPECT_EQ(net.gemm->precision(), DataType::kUndefined);
  EXPECT_EQ(net.gemm->input(0)->producer()->op(), "DequantizeLinear");
}

// a, b -Q/DQ-> Add -> Q -> DQ -> y on u8 grids: one anvil.QLinearAdd of the two quantized
// tensors with the three grids; on s8 grids the f32 Add between its Q/DQ pairs stays.
struct AddNet {
  ir::Graph g;
  ir::Node* add = nullptr;
  explicit AddNet(DataType t) {
    auto f = [&](const std::string& n, float v) { return g.addInitializer(n, Tensor::scalar<float>(DataType::kF32, v)); };
    auto z = [&](const std::string& n, int v) {
      return t == DataType::kU8 ? g.addInitializer(n, Tensor::scalar<uint8_t>(DataType::kU8, uint8_t(v)))
                                : g.addInitializer(n, Tensor::scalar<int8_t>(DataType::kI8, int8_t(v)));
    };
    auto qdq = [&](const std::string& n, float s, int zp) {
      ir::Value* x = g.addValue(n, {DataType::kF32, Shape::fromExtents({1, 4, 3})});
      g.addInput(x);
      ir::Node* q = g.addNode("QuantizeLinear", "", n + "_q", {x, f(n + "_s", s), z(n + "_z", zp)}, {n + "_qv"});
      return g.addNode("DequantizeLinear", "", n + "_dq", {q->output(0), f(n + "_s2", s), z(n + "_z2", zp)},
                       {n + "_d"})->output(0);
    };
    add = g.addNode("Add", "", "add", {qdq("a", 0.02f, 100), qdq("b", 0.03f, 90)}, {"s"});
    ir::Node* q = g.addNode("QuantizeLinear", "", "sq", {add->output(0), f("ss", 0.05f), z("sz", 7)}, {"sqv"});
    ir::Node* dq = g.addNode("DequantizeLinear", "", "sdq", {q->output(0), f("ss2", 0.05f), z("sz2", 7)}, {"y"});
    g.addOutput(dq->output(0));
    ir::inferShapes(g);
  }
};

TEST(QdqFusion, U8AddsBecomeQLinearAdd) {
  AddNet net(DataType::kU8);
  const passes::PassResult r = passes::fuseQdq(net.g, {});
  EXPECT_NE(r.stats.find("1 QLinearAdd"), std::string::npos) << r.stats;
  const ir::Node* qa = nullptr;
  int adds = 0;
  for (const auto& n : net.g.nodes()) {
    if (n->domain() == "anvil" && n->op() == "QLinearAdd") qa = n.get();
    adds += n->op() == "Add";
  }
  EXPECT_EQ(adds, 0);
  ASSERT_NE(qa, nullptr);
  EXPECT_EQ(qa->input(0)->name(), "a_qv");
  EXPECT_EQ(qa->input(1)->name(), "b_qv");
  EXPECT_EQ(qa->output(0)->name(), "sqv");  // the QuantizeLinear's output, read by the last DQ
  EXPECT_EQ(qa->attrs().getFloat("a_scale", 0), 0.02f);
  EXPECT_EQ(qa->attrs().getInt("b_zero_point", 0), 90);
  EXPECT_EQ(qa->attrs().getFloat("y_scale", 0), 0.05f);
  EXPECT_EQ(qa->attrs().getInt("y_zero_point", 0), 7);
  EXPECT_EQ(net.g.users(qa->output(0)).at(0)->op(), "DequantizeLinear");
}

TEST(QdqFusion, S8AddsKeepTheFloatPath) {
  AddNet net(DataType::kI8);
  passes::fuseQdq(net.g, {});
  int adds = 0, qadds = 0;
  for (const auto& n : net.g.nodes()) {
    adds += n->op() == "Add";
    qadds += n->op() == "QLinearAdd";
  }
  EXPECT_EQ(adds, 1);
  EXPECT_EQ(qadds, 0);
}

// x -Q/DQ-> conv1 -> Q -> DQ -> conv2 -> Q -> DQ -> y (s8 grids): conv2 reads conv1's
// output (the value in steps, grid (1, z + 128)) with qdq_x_scale = conv1's output scale;
// the pair between them goes, the last one stays (the graph output reads it).
TEST(QdqFusion, PairsBetweenInt8LayersBecomeChainLinks) {
  ir::Graph g;
  ir::Value* x = g.addValue("x", {DataType::kF32, Shape::fromExtents({1, 2, 3, 3})});
  g.addInput(x);
  auto f = [&](const std::string& n, float v) { return g.addInitializer(n, Tensor::scalar<float>(DataType::kF32, v)); };
  auto z8 = [&](const std::string& n, int v) { return g.addInitializer(n, Tensor::scalar<int8_t>(DataType::kI8, int8_t(v))); };
  auto qdq = [&](ir::Value* v, const std::string& n, float s, int z) {
    ir::Node* q = g.addNode("QuantizeLinear", "", n + "_q", {v, f(n + "_s", s), z8(n + "_z", z)}, {n + "_qv"});
    return g.addNode("DequantizeLinear", "", n + "_dq", {q->output(0), f(n + "_s2", s), z8(n + "_z2", z)}, {n + "_d"})
        ->output(0);
  };
  auto conv = [&](ir::Value* in, const std::string& n) {
    Tensor wq(DataType::kI8, {2, 2, 1, 1});
    for (int i = 0; i < 4; ++i) wq.data<int8_t>()[i] = int8_t(5 * i - 7);
    ir::Node* wdq = g.addNode("DequantizeLinear", "", n + "_wdq",
                              {g.addInitializer(n + "_wq", wq), f(n + "_ws", 0.01f), z8(n + "_wz", 0)}, {n + "_w"});
    return g.addNode("Conv", "", n, {in, wdq->output(0)}, {n + "_y"});
  };
  ir::Node* c1 = conv(qdq(x, "x", 0.1f, 3), "conv1");
  ir::Node* c2 = conv(qdq(c1->output(0), "c1", 0.07f, -9), "conv2");
  g.addOutput(qdq(c2->output(0), "c2", 0.05f, 2));
  ir::inferShapes(g);
  const passes::PassResult r = passes::fuseQdq(g, {});
  EXPECT_NE(r.stats.find("1 Q/DQ pairs between INT8 layers absorbed"), std::string::npos) << r.stats;
  EXPECT_EQ(c2->input(0), c1->output(0));
  EXPECT_EQ(c2->tacticParams().getFloat("qdq_x_scale", 0.0f), 0.07f);
  const auto& q1 = c1->output(0)->quantization();
  ASSERT_TRUE(q1);
  EXPECT_EQ(q1->scale.data<float>()[0], 1.0f);
  EXPECT_EQ(q1->zeroPoint.data<uint8_t>()[0], 128 - 9);
  EXPECT_FALSE(c1->tacticParams().has("qdq_x_scale"));
  int q = 0;
  for (const auto& n : g.nodes()) q += n->op() == "QuantizeLinear";
  EXPECT_EQ(q, 2);  // x's and the output's
}

// x -Q/DQ-> GlobalAveragePool -> Q -> DQ -> y: one anvil.QLinearGlobalAveragePool of the
// quantized tensor, on s8 grids as on u8 ones (onnxruntime's s8->u8 rewrite gives the same
// integers).
TEST(QdqFusion, GlobalAveragePoolBecomesQLinear) {
  for (DataType t : {DataType::kU8, DataType::kI8}) {
    ir::Graph g;
    ir::Value* x = g.addValue("x", {DataType::kF32, Shape::fromExtents({1, 3, 4, 5})});
    g.addInput(x);
    auto f = [&](const std::string& n, float v) { return g.addInitializer(n, Tensor::scalar<float>(DataType::kF32, v)); };
    auto z = [&](const std::string& n, int v) {
      return t == DataType::kU8 ? g.addInitializer(n, Tensor::scalar<uint8_t>(DataType::kU8, uint8_t(v)))
                                : g.addInitializer(n, Tensor::scalar<int8_t>(DataType::kI8, int8_t(v)));
    };
    ir::Node* q = g.addNode("QuantizeLinear", "", "xq", {x, f("xs", 0.1f), z("xz", 5)}, {"xqv"});
    ir::Node* dq = g.addNode("DequantizeLinear", "", "xdq", {q->output(0), f("xs2", 0.1f), z("xz2", 5)}, {"xd"});
    ir::Node* gap = g.addNode("GlobalAveragePool", "", "gap", {dq->output(0)}, {"p"});
    ir::Node* pq = g.addNode("QuantizeLinear", "", "pq", {gap->output(0), f("ps", 0.03f), z("pz", 9)}, {"pqv"});
    ir::Node* pdq = g.addNode("DequantizeLinear", "", "pdq", {pq->output(0), f("ps2", 0.03f), z("pz2", 9)}, {"y"});
    g.addOutput(pdq->output(0));
    ir::inferShapes(g);
    const passes::PassResult r = passes::fuseQdq(g, {});
    EXPECT_NE(r.stats.find("1 QLinearGlobalAveragePool"), std::string::npos) << r.stats;
    const ir::Node* qg = pdq->input(0)->producer();
    ASSERT_NE(qg, nullptr);
    EXPECT_EQ(qg->op(), "QLinearGlobalAveragePool");
    EXPECT_EQ(qg->input(0)->name(), "xqv");
    EXPECT_EQ(qg->attrs().getFloat("x_scale", 0), 0.1f);
    EXPECT_EQ(qg->attrs().getInt("x_zero_point", 0), 5);
    EXPECT_EQ(qg->attrs().getFloat("y_scale", 0), 0.03f);
    EXPECT_EQ(qg->attrs().getInt("y_zero_point", 0), 9);
    EXPECT_EQ(qg->output(0)->dtype(), t);
    for (const auto& n : g.nodes()) EXPECT_NE(n->op(), "GlobalAveragePool");
  }
}

}  // namespace
