// The reduce family beyond the ONNX node tests: symbolic-dim inference, odd shapes,
// narrow and integer types, empty reductions, error messages that name the node,
// hand-checked numbers for ops without node tests (LpNormalization, GroupNormalization
// opset 18, ...), and the importers' upgrades of old opsets.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <limits>

#include "tests/unit/op_test_util.h"
#include "cpu/reference.h"
#include "ir/op_schema.h"
#include "parser/onnx_parser.h"

using anvil::Error;
using anvil::ErrorCode;
using namespace anvil::ir;
using anvil::cpu::Interpreter;

namespace {

Dim sym(const char* s) { return Dim::symbol(s); }

using anvil::testing::In;
using anvil::testing::oneNode;

TensorType tt(DataType dt, std::vector<Dim> dims) { return {dt, Shape(std::move(dims))}; }

Tensor f32(std::vector<int64_t> dims, std::vector<float> v) { return Tensor::fromVector<float>(DataType::kF32, dims, v); }
Tensor i64(std::vector<int64_t> dims, std::vector<int64_t> v) {
  return Tensor::fromVector<int64_t>(DataType::kI64, dims, v);
}

// Runs one node on concrete inputs (all graph inputs, except initializers given as such).
std::vector<Tensor> run(const std::string& op, const std::vector<std::pair<std::string, Tensor>>& ins,
                        const Attributes& attrs = {}, int nout = 1, const std::vector<std::string>& constIns = {}) {
  std::vector<In> decl;
  std::map<std::string, Tensor> feed;
  for (const auto& [name, t] : ins) {
    if (name.empty()) {
      decl.push_back({"", {}, std::nullopt});
      continue;
    }
    bool isConst = std::find(constIns.begin(), constIns.end(), name) != constIns.end();
    decl.push_back({name, t.type(), isConst ? std::optional<Tensor>(t) : std::nullopt});
    if (!isConst) feed[name] = t;
  }
  auto g = oneNode(op, decl, attrs, nout);
  return Interpreter::run(*g, feed);
}

Attributes attrs(std::initializer_list<std::pair<const char*, Attribute::Storage>> kv) {
  Attributes a;
  for (const auto& [k, v] : kv) a.set(k, v);
  return a;
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

// Expects `fn` to throw an anvil::Error whose message names node n0 of `op`.
template <typename F>
void expectNodeError(F fn, const std::string& op, const std::string& fragment) {
  try {
    fn();
    ADD_FAILURE() << "expected an error mentioning '" << fragment << "'";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(op + " 'n0'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
  }
}

// --- ONNX model building for importer tests ---

// dims {-2}: no shape at all (graph outputs whose shape inference decides).
onnx::ValueInfoProto vi(const std::string& name, int elem, std::vector<int64_t> dims) {
  onnx::ValueInfoProto v;
  v.set_name(name);
  auto* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(elem);
  if (dims == std::vector<int64_t>{-2}) return v;
  for (int64_t d : dims) {
    if (d < 0) t->mutable_shape()->add_dim()->set_dim_param("N");
    else t->mutable_shape()->add_dim()->set_dim_value(d);
  }
  return v;
}

struct OnnxNode {
  onnx::ModelProto m;
  onnx::NodeProto* node;
  onnx::GraphProto* g;
};

OnnxNode onnxModel(int opset, const std::string& op) {
  OnnxNode r;
  r.m.set_ir_version(8);
  auto* os = r.m.add_opset_import();
  os->set_domain("");
  os->set_version(opset);
  r.g = r.m.mutable_graph();
  r.g->set_name("g");
  r.node = r.g->add_node();
  r.node->set_op_type(op);
  r.node->set_name("n0");
  return r;
}

void addInit(onnx::GraphProto* g, const std::string& name, std::vector<int64_t> dims, std::vector<float> v) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  for (float x : v) t->add_float_data(x);
}

void intAttr(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

void intsAttr(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

bool haveOps(std::initializer_list<const char*> ops) {
  for (const char* op : ops)
    if (!OpRegistry::instance().find(op)) return false;
  return true;
}

}  // namespace

// ---------------------------------------------------------------- inference

TEST(ReduceInfer, KeepsSymbolicDims) {
  TensorType x = tt(DataType::kF32, {sym("N"), 3, 224, 224});
  auto g = oneNode("ReduceMean", {{"x", x, {}}, {"axes", {}, i64({1}, {1})}}, {});
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[N,1,224,224]");
  g = oneNode("ReduceSum", {{"x", x, {}}, {"axes", {}, i64({2}, {-1, 1})}}, attrs({{"keepdims", int64_t(0)}}));
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[N,224]");
  g = oneNode("ReduceMax", {{"x", x, {}}}, attrs({{"keepdims", int64_t(0)}}));  // no axes: all
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[]");
  g = oneNode("ReduceL2", {{"x", x, {}}}, attrs({{"noop_with_empty_axes", int64_t(1)}}));
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[N,3,224,224]");
  // Axes only known at run time: keepdims keeps the rank.
  g = oneNode("ReduceProd", {{"x", x, {}}, {"axes", tt(DataType::kI64, {1}), {}}}, {});
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[?,?,?,?]");
  g = oneNode("ReduceProd", {{"x", x, {}}, {"axes", tt(DataType::kI64, {1}), {}}}, attrs({{"keepdims", int64_t(0)}}));
  EXPECT_FALSE(g->outputs()[0]->type().shape.rankKnown());
}

TEST(ReduceInfer, OtherOpsKeepSymbolicDims) {
  auto g = oneNode("ArgMax", {{"x", tt(DataType::kF16, {sym("N"), 7, 13}), {}}},
                   attrs({{"axis", int64_t(1)}, {"keepdims", int64_t(0)}}));
  EXPECT_EQ(g->outputs()[0]->type().str(), "i64[N,13]");
  g = oneNode("TopK", {{"x", tt(DataType::kF32, {sym("N"), 13}), {}}, {"k", {}, i64({1}, {5})}}, {}, 2);
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[N,5]");
  EXPECT_EQ(g->outputs()[1]->type().str(), "i64[N,5]");
  g = oneNode("LayerNormalization",
              {{"x", tt(DataType::kF16, {sym("N"), sym("S"), 768}), {}}, {"s", tt(DataType::kF16, {768}), {}}}, {}, 3);
  EXPECT_EQ(g->outputs()[0]->type().str(), "f16[N,S,768]");
  EXPECT_EQ(g->outputs()[1]->type().str(), "f32[N,S,1]");  // stash_type f32
  EXPECT_EQ(g->outputs()[2]->type().str(), "f32[N,S,1]");
  TensorType c3 = tt(DataType::kF32, {3});
  g = oneNode("BatchNormalization",
              {{"x", tt(DataType::kF32, {sym("N"), 3, sym("H"), sym("W")}), {}}, {"s", c3, {}}, {"b", c3, {}},
               {"m", c3, {}}, {"v", c3, {}}},
              attrs({{"training_mode", int64_t(1)}}), 3);
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[N,3,H,W]");
  EXPECT_EQ(g->outputs()[2]->type().str(), "f32[3]");
  g = oneNode("Einsum",
              {{"a", tt(DataType::kF32, {sym("N"), 2, 3}), {}}, {"b", tt(DataType::kF32, {sym("N"), 3, 5}), {}}},
              attrs({{"equation", std::string("bij,bjk->bik")}}));
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[N,2,5]");
  g = oneNode("Einsum", {{"a", tt(DataType::kF64, {sym("N"), 4, 4}), {}}}, attrs({{"equation", std::string("...ii->...i")}}));
  EXPECT_EQ(g->outputs()[0]->type().str(), "f64[N,4]");
  g = oneNode("Einsum", {{"a", tt(DataType::kF32, {2, 3}), {}}, {"b", tt(DataType::kF32, {3, 7}), {}}},
              attrs({{"equation", std::string("ij,jk")}}));  // implicit: "ik"
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[2,7]");
  g = oneNode("Det", {{"x", tt(DataType::kF32, {sym("N"), 3, 3}), {}}}, {});
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[N]");
  g = oneNode("SoftmaxCrossEntropyLoss",
              {{"x", tt(DataType::kF32, {sym("N"), 5, 7}), {}}, {"t", tt(DataType::kI64, {sym("N"), 7}), {}}},
              attrs({{"reduction", std::string("none")}}), 2);
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[N,7]");
  EXPECT_EQ(g->outputs()[1]->type().str(), "f32[N,5,7]");
  g = oneNode("NegativeLogLikelihoodLoss",
              {{"x", tt(DataType::kF32, {sym("N"), 5}), {}}, {"t", tt(DataType::kI32, {sym("N")}), {}}}, {});
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[]");
  g = oneNode("Softmax", {{"x", tt(DataType::kBF16, {sym("B"), 12, sym("S"), sym("S")}), {}}}, {});
  EXPECT_EQ(g->outputs()[0]->type().str(), "bf16[B,12,S,S]");
}

TEST(ReduceInfer, ErrorsNameTheNode) {
  TensorType x = tt(DataType::kF32, {2, 3});
  expectNodeError([&] { oneNode("ReduceSum", {{"x", x, {}}, {"a", {}, i64({1}, {2})}}, {}); }, "ReduceSum",
                  "out of range");
  expectNodeError([&] { oneNode("ReduceSum", {{"x", x, {}}, {"a", {}, i64({2}, {1, -1})}}, {}); }, "ReduceSum",
                  "repeated");
  expectNodeError([&] { oneNode("Softmax", {{"x", x, {}}}, attrs({{"axis", int64_t(-3)}})); }, "Softmax",
                  "out of range");
  expectNodeError([&] { oneNode("Softmax", {{"x", tt(DataType::kI32, {2}), {}}}, {}); }, "Softmax", "float");
  expectNodeError([&] { oneNode("TopK", {{"x", x, {}}, {"k", {}, i64({1}, {4})}}, {}, 2); }, "TopK", "exceeds");
  expectNodeError([&] { oneNode("Einsum", {{"x", x, {}}}, attrs({{"equation", std::string("ij,jk->ik")}})); },
                  "Einsum", "operands");
  expectNodeError([&] { oneNode("Einsum", {{"x", x, {}}}, attrs({{"equation", std::string("i1->i")}})); }, "Einsum",
                  "equation");
  expectNodeError(
      [&] {
        oneNode("Einsum", {{"a", x, {}}, {"b", x, {}}}, attrs({{"equation", std::string("ij,jk->ik")}}));
      },
      "Einsum", "disagree");
  expectNodeError(
      [&] {
        TensorType c = tt(DataType::kF32, {6});
        oneNode("GroupNormalization", {{"x", tt(DataType::kF32, {1, 6, 2}), {}}, {"s", c, {}}, {"b", c, {}}},
                attrs({{"num_groups", int64_t(4)}}));
      },
      "GroupNormalization", "divisible");
  expectNodeError([&] { oneNode("LpNormalization", {{"x", x, {}}}, attrs({{"p", int64_t(3)}})); }, "LpNormalization",
                  "p must be");
  expectNodeError([&] { oneNode("Det", {{"x", tt(DataType::kF32, {2, 3, 4}), {}}}, {}); }, "Det", "square");
  expectNodeError(
      [&] {
        oneNode("NegativeLogLikelihoodLoss", {{"x", x, {}}, {"t", tt(DataType::kI64, {2}), {}}},
                attrs({{"reduction", std::string("avg")}}));
      },
      "NegativeLogLikelihoodLoss", "reduction");
  expectNodeError(
      [&] {
        oneNode("SoftmaxCrossEntropyLoss", {{"x", tt(DataType::kF32, {2, 3, 4}), {}}, {"t", tt(DataType::kI64, {2, 5}), {}}},
                {});
      },
      "SoftmaxCrossEntropyLoss", "target dim 1");
  TensorType c4 = tt(DataType::kF32, {4});
  expectNodeError(
      [&] {
        oneNode("BatchNormalization",
                {{"x", tt(DataType::kF32, {1, 3, 2}), {}}, {"s", c4, {}}, {"b", c4, {}}, {"m", c4, {}}, {"v", c4, {}}}, {});
      },
      "BatchNormalization", "scale length");
}

TEST(ReduceRun, RuntimeErrorsNameTheNode) {
  // Axes arrive at run time: the kernel checks them.
  expectNodeError([&] { run("ReduceSum", {{"x", f32({2, 3}, {1, 2, 3, 4, 5, 6})}, {"a", i64({1}, {5})}}); },
                  "ReduceSum", "out of range");
  expectNodeError(
      [&] {
        run("NegativeLogLikelihoodLoss", {{"x", f32({2, 3}, {1, 2, 3, 4, 5, 6})}, {"t", i64({2}, {0, 3})}});
      },
      "NegativeLogLikelihoodLoss", "out of range");
  expectNodeError([&] { run("TopK", {{"x", f32({3}, {1, 2, 3})}, {"k", i64({1}, {-1})}}, {}, 2); }, "TopK", "K = -1");
}

// ---------------------------------------------------------------- reductions

TEST(ReduceRun, IntegerSumOnOddShape) {
  Tensor x(DataType::kI32, {7, 13});
  for (int i = 0; i < 91; ++i) x.data<int32_t>()[i] = i * 3 - 100;
  auto out = run("ReduceSum", {{"x", x}, {"a", i64({1}, {0})}}, attrs({{"keepdims", int64_t(0)}}), 1, {"a"});
  ASSERT_EQ(out[0].dtype(), DataType::kI32);
  ASSERT_EQ(out[0].dims(), std::vector<int64_t>{13});
  for (int c = 0; c < 13; ++c) {
    int32_t want = 0;
    for (int r = 0; r < 7; ++r) want += (r * 13 + c) * 3 - 100;
    EXPECT_EQ(out[0].data<int32_t>()[c], want);
  }
}

TEST(ReduceRun, BoolMaxMin) {
  Tensor x(DataType::kBool, {2, 3});
  uint8_t v[] = {0, 1, 0, 1, 1, 1};
  for (int i = 0; i < 6; ++i) x.data<uint8_t>()[i] = v[i];
  auto mx = run("ReduceMax", {{"x", x}, {"a", i64({1}, {1})}}, {}, 1, {"a"});
  auto mn = run("ReduceMin", {{"x", x}, {"a", i64({1}, {1})}}, {}, 1, {"a"});
  EXPECT_EQ(values(mx[0]), (std::vector<double>{1, 1}));
  EXPECT_EQ(values(mn[0]), (std::vector<double>{0, 1}));
}

TEST(ReduceRun, HalfMeanAndStableLogSumExp) {
  Tensor h(DataType::kF16, {1, 7});
  for (int i = 0; i < 7; ++i) h.data<Half>()[i] = Half(float(i) + 0.5f);
  auto m = run("ReduceMean", {{"x", h}});
  ASSERT_EQ(m[0].dtype(), DataType::kF16);
  expectNear(m[0], {3.5}, 1e-3);
  auto l = run("ReduceLogSumExp", {{"x", f32({2}, {1000, 1000})}});
  expectNear(l[0], {1000 + std::log(2.0)}, 1e-3);
  Tensor b(DataType::kBF16, {3});
  for (int i = 0; i < 3; ++i) b.data<BFloat16>()[i] = BFloat16(float(i + 1));
  expectNear(run("ReduceSumSquare", {{"x", b}})[0], {14}, 1e-2);
  Tensor d = Tensor::fromVector<double>(DataType::kF64, {2, 2}, {1, -2, 3, -4});
  expectNear(run("ReduceL1", {{"x", d}})[0], {10}, 1e-12);
  expectNear(run("ReduceL2", {{"x", d}})[0], {std::sqrt(30.0)}, 1e-12);
  Tensor pos = Tensor::fromVector<double>(DataType::kF64, {2, 2}, {1, 2, 3, 4});
  expectNear(run("ReduceLogSum", {{"x", pos}, {"a", i64({1}, {0})}}, {}, 1, {"a"})[0], {std::log(4.0), std::log(6.0)},
             1e-12);
}

TEST(ReduceRun, EmptyReductionsGiveIdentity) {
  Tensor e(DataType::kF32, {0, 3});
  auto axes0 = i64({1}, {0});
  auto r = [&](const char* op) { return run(op, {{"x", e}, {"a", axes0}}, {}, 1, {"a"})[0]; };
  EXPECT_EQ(r("ReduceSum").dims(), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(values(r("ReduceSum")), (std::vector<double>{0, 0, 0}));
  EXPECT_EQ(values(r("ReduceProd")), (std::vector<double>{1, 1, 1}));
  EXPECT_TRUE(std::isinf(r("ReduceMin").getDouble(0)) && r("ReduceMin").getDouble(0) > 0);
  EXPECT_TRUE(std::isinf(r("ReduceMax").getDouble(0)) && r("ReduceMax").getDouble(0) < 0);
  EXPECT_TRUE(std::isinf(r("ReduceLogSum").getDouble(0)));
  EXPECT_TRUE(std::isinf(r("ReduceLogSumExp").getDouble(0)));
  EXPECT_EQ(r("ReduceL2").getDouble(0), 0.0);
  Tensor ei(DataType::kI32, {3, 0});
  auto mx = run("ReduceMax", {{"x", ei}, {"a", i64({1}, {1})}}, attrs({{"keepdims", int64_t(0)}}), 1, {"a"});
  EXPECT_EQ(mx[0].data<int32_t>()[2], std::numeric_limits<int32_t>::lowest());
}

TEST(ReduceRun, NoopWithEmptyAxesAndDynamicAxes) {
  Tensor x = f32({2, 2}, {1, 2, 3, 4});
  auto same = run("ReduceSum", {{"x", x}, {"a", i64({0}, {})}}, attrs({{"noop_with_empty_axes", int64_t(1)}}));
  EXPECT_EQ(values(same[0]), (std::vector<double>{1, 2, 3, 4}));
  auto all = run("ReduceSum", {{"x", x}, {"a", i64({0}, {})}});
  EXPECT_EQ(values(all[0]), (std::vector<double>{10}));
  auto cols = run("ReduceMin", {{"x", x}, {"a", i64({1}, {-2})}}, attrs({{"keepdims", int64_t(0)}}));  // runtime axes
  EXPECT_EQ(values(cols[0]), (std::vector<double>{1, 2}));
}

// ---------------------------------------------------------------- arg, softmax, cumsum, topk

TEST(ReduceRun, ArgMaxTiesAndSelectLast) {
  Tensor d = Tensor::fromVector<double>(DataType::kF64, {2, 3}, {5, 1, 5, 2, 2, 0});
  auto first = run("ArgMax", {{"x", d}}, attrs({{"axis", int64_t(1)}}));
  EXPECT_EQ(values(first[0]), (std::vector<double>{0, 0}));
  auto last = run("ArgMax", {{"x", d}}, attrs({{"axis", int64_t(1)}, {"select_last_index", int64_t(1)}}));
  EXPECT_EQ(values(last[0]), (std::vector<double>{2, 1}));
  Tensor u(DataType::kU8, {4});
  uint8_t uv[] = {9, 3, 3, 200};
  for (int i = 0; i < 4; ++i) u.data<uint8_t>()[i] = uv[i];
  EXPECT_EQ(values(run("ArgMin", {{"x", u}}, attrs({{"keepdims", int64_t(0)}}))[0]), (std::vector<double>{1}));
}

TEST(ReduceRun, SoftmaxFamily) {
  Tensor x = f32({2, 3}, {1, 2, 3, 0, 0, 0});
  auto s = run("Softmax", {{"x", x}});
  double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  expectNear(s[0], {std::exp(1.0) / z, std::exp(2.0) / z, std::exp(3.0) / z, 1 / 3.0, 1 / 3.0, 1 / 3.0});
  auto ls = run("LogSoftmax", {{"x", x}}, attrs({{"axis", int64_t(0)}}));
  double l0 = std::log(std::exp(1.0) + 1);
  expectNear(ls[0], {1 - l0, 2 - std::log(std::exp(2.0) + 1), 3 - std::log(std::exp(3.0) + 1), -l0,
                     -std::log(std::exp(2.0) + 1), -std::log(std::exp(3.0) + 1)});
  auto h = run("Hardmax", {{"x", x}});  // ties: first
  EXPECT_EQ(values(h[0]), (std::vector<double>{0, 0, 1, 1, 0, 0}));
  Tensor b(DataType::kBF16, {2});
  b.data<BFloat16>()[0] = BFloat16(0.f);
  b.data<BFloat16>()[1] = BFloat16(0.f);
  expectNear(run("Softmax", {{"x", b}})[0], {0.5, 0.5}, 1e-2);
}

TEST(ReduceRun, CumSumVariants) {
  Tensor x = i64({4}, {1, 2, 3, 4});
  Tensor ax = Tensor::fromVector<int32_t>(DataType::kI32, {}, {0});
  auto plain = run("CumSum", {{"x", x}, {"a", ax}});
  EXPECT_EQ(values(plain[0]), (std::vector<double>{1, 3, 6, 10}));
  auto rex = run("CumSum", {{"x", x}, {"a", ax}}, attrs({{"exclusive", int64_t(1)}, {"reverse", int64_t(1)}}));
  EXPECT_EQ(values(rex[0]), (std::vector<double>{9, 7, 4, 0}));
  Tensor h(DataType::kF16, {2, 2});
  for (int i = 0; i < 4; ++i) h.data<Half>()[i] = Half(float(i));
  auto col = run("CumSum", {{"x", h}, {"a", i64({1}, {-2})}});
  expectNear(col[0], {0, 1, 2, 4}, 1e-3);
}

TEST(ReduceRun, TopKTiesLowerIndexFirst) {
  Tensor x = f32({5, 2}, {3, 1, 7, 1, 3, 0, 7, 5, 3, 1});
  auto big = run("TopK", {{"x", x}, {"k", i64({1}, {3})}}, attrs({{"axis", int64_t(0)}}), 2);
  EXPECT_EQ(values(big[0]), (std::vector<double>{7, 5, 7, 1, 3, 1}));
  EXPECT_EQ(values(big[1]), (std::vector<double>{1, 3, 3, 0, 0, 1}));
  auto small = run("TopK", {{"x", x}, {"k", i64({1}, {2})}}, attrs({{"axis", int64_t(0)}, {"largest", int64_t(0)}}), 2);
  EXPECT_EQ(values(small[0]), (std::vector<double>{3, 0, 3, 1}));
  EXPECT_EQ(values(small[1]), (std::vector<double>{0, 2, 2, 0}));
  Tensor iv = Tensor::fromVector<int32_t>(DataType::kI32, {1, 7}, {4, 4, 9, -1, 4, 9, 0});
  auto ik = run("TopK", {{"x", iv}, {"k", i64({1}, {4})}}, {}, 2);
  EXPECT_EQ(values(ik[0]), (std::vector<double>{9, 9, 4, 4}));
  EXPECT_EQ(values(ik[1]), (std::vector<double>{2, 5, 0, 1}));
}

// ---------------------------------------------------------------- normalizations

TEST(ReduceRun, LpNormalization) {
  Tensor x = f32({2, 2}, {3, 4, 0, 0});
  expectNear(run("LpNormalization", {{"x", x}})[0], {0.6, 0.8, 0, 0});
  expectNear(run("LpNormalization", {{"x", x}}, attrs({{"p", int64_t(1)}}))[0], {3 / 7.0, 4 / 7.0, 0, 0});
  expectNear(run("LpNormalization", {{"x", x}}, attrs({{"axis", int64_t(0)}, {"p", int64_t(1)}}))[0], {1, 1, 0, 0});
}

TEST(ReduceRun, GroupNormalizationPerChannelScale) {
  // Two groups of two channels; one element per channel.
  Tensor x = f32({1, 4, 1}, {1, 3, 5, 9});
  Tensor s = f32({4}, {1, 2, 3, 4}), b = f32({4}, {0, 0, 0, 1});
  auto y = run("GroupNormalization", {{"x", x}, {"s", s}, {"b", b}},
               attrs({{"num_groups", int64_t(2)}, {"epsilon", 0.0f}}));
  expectNear(y[0], {-1, 2, -3, 5});
}

TEST(ReduceRun, LayerNormHalfWithStatsNoBias) {
  Tensor x(DataType::kF16, {2, 2});
  float xv[] = {1, 3, -2, 2};
  for (int i = 0; i < 4; ++i) x.data<Half>()[i] = Half(xv[i]);
  Tensor s(DataType::kF16, {2});
  s.data<Half>()[0] = Half(1.f);
  s.data<Half>()[1] = Half(2.f);
  auto out = run("LayerNormalization", {{"x", x}, {"s", s}}, attrs({{"epsilon", 0.0f}}), 3);
  expectNear(out[0], {-1, 2, -1, 2}, 1e-3);
  ASSERT_EQ(out[1].dtype(), DataType::kF32);
  EXPECT_EQ(out[1].dims(), (std::vector<int64_t>{2, 1}));
  expectNear(out[1], {2, 0});
  expectNear(out[2], {1, 0.5});
}

TEST(ReduceRun, BatchNormInferenceAndTraining) {
  Tensor x = f32({2, 1, 2}, {1, 3, 5, 7});
  Tensor one = f32({1}, {1}), zero = f32({1}, {0}), m = f32({1}, {2}), v = f32({1}, {4});
  auto inf = run("BatchNormalization", {{"x", x}, {"s", one}, {"b", zero}, {"m", m}, {"v", v}},
                 attrs({{"epsilon", 0.0f}}));
  expectNear(inf[0], {-0.5, 0.5, 1.5, 2.5});
  auto tr = run("BatchNormalization", {{"x", x}, {"s", one}, {"b", zero}, {"m", m}, {"v", v}},
                attrs({{"epsilon", 0.0f}, {"training_mode", int64_t(1)}, {"momentum", 0.5f}}), 3);
  // Batch mean 4, population variance 5.
  const double r5 = std::sqrt(5.0);
  expectNear(tr[0], {-3 / r5, -1 / r5, 1 / r5, 3 / r5});
  expectNear(tr[1], {3});    // 2 * 0.5 + 4 * 0.5
  expectNear(tr[2], {4.5});  // 4 * 0.5 + 5 * 0.5
}

TEST(ReduceRun, MvnCustomAxes) {
  Tensor x = f32({2, 2}, {1, 3, 10, 10});
  auto y = run("MeanVarianceNormalization", {{"x", x}}, attrs({{"axes", std::vector<int64_t>{1}}}));
  expectNear(y[0], {-1, 1, 0, 0}, 1e-6);
}

// ---------------------------------------------------------------- einsum, det, losses

TEST(ReduceRun, EinsumDiagonalsEllipsisAndInts) {
  Tensor a = f32({3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  expectNear(run("Einsum", {{"a", a}}, attrs({{"equation", std::string("ii->i")}}))[0], {1, 5, 9});
  expectNear(run("Einsum", {{"a", a}}, attrs({{"equation", std::string("ii")}}))[0], {15});
  expectNear(run("Einsum", {{"a", a}}, attrs({{"equation", std::string("ij->")}}))[0], {45});
  expectNear(run("Einsum", {{"a", a}}, attrs({{"equation", std::string("ji")}}))[0], {1, 4, 7, 2, 5, 8, 3, 6, 9});
  // Ellipsis broadcast: [2,1,2,3] x [3,3,1]: batch dims (2,1) and (3) broadcast to (2,3).
  Tensor p(DataType::kF32, {2, 1, 2, 3}), q(DataType::kF32, {3, 3, 1});
  for (int i = 0; i < 12; ++i) p.data<float>()[i] = float(i % 5) - 1;
  for (int i = 0; i < 9; ++i) q.data<float>()[i] = float(i) * 0.5f;
  auto r = run("Einsum", {{"p", p}, {"q", q}}, attrs({{"equation", std::string("...ij,...jk->...ik")}}));
  ASSERT_EQ(r[0].dims(), (std::vector<int64_t>{2, 3, 2, 1}));
  for (int b0 = 0; b0 < 2; ++b0)
    for (int b1 = 0; b1 < 3; ++b1)
      for (int i = 0; i < 2; ++i) {
        double want = 0;
        for (int j = 0; j < 3; ++j) want += p.data<float>()[b0 * 6 + i * 3 + j] * q.data<float>()[b1 * 3 + j];
        EXPECT_NEAR(r[0].data<float>()[(b0 * 3 + b1) * 2 + i], want, 1e-5);
      }
  Tensor ia = Tensor::fromVector<int32_t>(DataType::kI32, {2, 2}, {1, 2, 3, 4});
  auto ir = run("Einsum", {{"a", ia}, {"b", ia}}, attrs({{"equation", std::string("ij,jk")}}));
  EXPECT_EQ(values(ir[0]), (std::vector<double>{7, 10, 15, 22}));
  // Three operands with a repeated label inside one: sum_i A[i,i] * v[i] * w[i].
  Tensor v = f32({3}, {1, 1, 2}), w = f32({3}, {2, 1, 1});
  expectNear(run("Einsum", {{"a", a}, {"v", v}, {"w", w}}, attrs({{"equation", std::string("ii,i,i->")}}))[0],
             {1 * 2 + 5 + 9 * 2});
}

TEST(ReduceRun, Det) {
  Tensor x = f32({3, 2, 2}, {1, 2, 3, 4, 2, 0, 0, 3, 1, 2, 2, 4});
  expectNear(run("Det", {{"x", x}})[0], {-2, 6, 0});
  Tensor y = Tensor::fromVector<double>(DataType::kF64, {3, 3}, {0, 2, 1, 1, 0, 0, 3, 1, 1});
  expectNear(run("Det", {{"x", y}})[0], {-1}, 1e-12);
}

TEST(ReduceRun, LossesWeightsAndIgnoreIndex) {
  // log-probabilities [N=2, C=3]
  Tensor lp = f32({2, 3}, {-1, -2, -3, -4, -5, -6});
  Tensor t = i64({2}, {2, 0});
  Tensor w = f32({3}, {1, 2, 3});
  expectNear(run("NegativeLogLikelihoodLoss", {{"x", lp}, {"t", t}})[0], {3.5});
  expectNear(run("NegativeLogLikelihoodLoss", {{"x", lp}, {"t", t}, {"w", w}})[0], {(9 + 4) / 4.0});
  expectNear(run("NegativeLogLikelihoodLoss", {{"x", lp}, {"t", t}}, attrs({{"reduction", std::string("sum")}}))[0],
             {7});
  auto ig = run("NegativeLogLikelihoodLoss", {{"x", lp}, {"t", t}, {"w", w}},
                attrs({{"ignore_index", int64_t(0)}, {"reduction", std::string("none")}}));
  expectNear(ig[0], {9, 0});
  auto ig2 = run("NegativeLogLikelihoodLoss", {{"x", lp}, {"t", t}}, attrs({{"ignore_index", int64_t(2)}}));
  expectNear(ig2[0], {4});  // mean over the one non-ignored target
  // SCE with uniform scores: loss log(3) each, log_prob all -log(3).
  Tensor s = f32({2, 3}, {0, 0, 0, 1, 1, 1});
  auto sce = run("SoftmaxCrossEntropyLoss", {{"x", s}, {"t", t}}, {}, 2);
  expectNear(sce[0], {std::log(3.0)});
  expectNear(sce[1], std::vector<double>(6, -std::log(3.0)));
}

// ---------------------------------------------------------------- importers

TEST(ReduceImport, OldReduceMovesAxesAttribute) {
  auto m = onnxModel(11, "ReduceMean");
  *m.g->add_input() = vi("x", onnx::TensorProto::FLOAT, {-1, 2, 3});
  *m.g->add_output() = vi("y", onnx::TensorProto::FLOAT, {-2});
  m.node->add_input("x");
  m.node->add_output("y");
  intsAttr(m.node, "axes", {-1});
  intAttr(m.node, "keepdims", 0);
  auto model = anvil::parser::parseOnnxBytes(m.m.SerializeAsString(), "");
  EXPECT_EQ(model.graph->outputs()[0]->type().str(), "f32[N,2]");
  auto out = Interpreter::run(*model.graph, {{"x", f32({1, 2, 3}, {1, 2, 3, 4, 5, 6})}});
  expectNear(out[0], {2, 5});
}

TEST(ReduceImport, TopKOpset1KAttribute) {
  auto m = onnxModel(9, "TopK");
  *m.g->add_input() = vi("x", onnx::TensorProto::FLOAT, {4});
  *m.g->add_output() = vi("v", onnx::TensorProto::FLOAT, {-2});
  *m.g->add_output() = vi("i", onnx::TensorProto::INT64, {-2});
  m.node->add_input("x");
  m.node->add_output("v");
  m.node->add_output("i");
  intAttr(m.node, "k", 2);
  auto model = anvil::parser::parseOnnxBytes(m.m.SerializeAsString(), "");
  auto out = Interpreter::run(*model.graph, {{"x", f32({4}, {1, 8, 2, 8})}});
  expectNear(out[0], {8, 8});
  EXPECT_EQ(values(out[1]), (std::vector<double>{1, 3}));
}

TEST(ReduceImport, OldSoftmaxOnLastAxisIsPerAxis) {
  auto m = onnxModel(11, "Softmax");
  *m.g->add_input() = vi("x", onnx::TensorProto::FLOAT, {-1, 3});
  *m.g->add_output() = vi("y", onnx::TensorProto::FLOAT, {-2});
  m.node->add_input("x");
  m.node->add_output("y");  // default axis 1 == last axis of a 2-D input
  auto model = anvil::parser::parseOnnxBytes(m.m.SerializeAsString(), "");
  ASSERT_EQ(model.graph->nodes().size(), 1u);
  EXPECT_EQ(model.graph->nodes()[0]->attrs().getInt("axis", 0), -1);
  auto out = Interpreter::run(*model.graph, {{"x", f32({1, 3}, {0, 0, 0})}});
  expectNear(out[0], {1 / 3.0, 1 / 3.0, 1 / 3.0});
}

TEST(ReduceImport, OldSoftmaxCoercesTo2D) {
  if (!haveOps({"Flatten", "Shape", "Reshape"})) GTEST_SKIP() << "Flatten/Shape/Reshape are not in the op table yet";
  auto m = onnxModel(11, "LogSoftmax");
  *m.g->add_input() = vi("x", onnx::TensorProto::FLOAT, {2, 2, 2});
  *m.g->add_output() = vi("y", onnx::TensorProto::FLOAT, {-2});
  m.node->add_input("x");
  m.node->add_output("y");  // axis 1 on rank 3: over the last 4 elements of each batch row
  auto model = anvil::parser::parseOnnxBytes(m.m.SerializeAsString(), "");
  EXPECT_EQ(model.graph->outputs()[0]->type().str(), "f32[2,2,2]");
  auto out = Interpreter::run(*model.graph, {{"x", f32({2, 2, 2}, {0, 0, 0, 0, 1, 1, 1, 1})}});
  expectNear(out[0], std::vector<double>(8, -std::log(4.0)));
}

TEST(ReduceImport, GroupNormOpset18PerGroupScale) {
  // Initializer scale/bias and a known channel count: repeated per channel.
  auto m = onnxModel(18, "GroupNormalization");
  *m.g->add_input() = vi("x", onnx::TensorProto::FLOAT, {1, 4, 1});
  *m.g->add_output() = vi("y", onnx::TensorProto::FLOAT, {-2});
  addInit(m.g, "s", {2}, {1, 3});
  addInit(m.g, "b", {2}, {0, 1});
  for (const char* n : {"x", "s", "b"}) m.node->add_input(n);
  m.node->add_output("y");
  intAttr(m.node, "num_groups", 2);
  auto* eps = m.node->add_attribute();
  eps->set_name("epsilon");
  eps->set_type(onnx::AttributeProto::FLOAT);
  eps->set_f(0.0f);
  auto model = anvil::parser::parseOnnxBytes(m.m.SerializeAsString(), "");
  Tensor x = f32({1, 4, 1}, {1, 3, 5, 9});
  expectNear(Interpreter::run(*model.graph, {{"x", x}})[0], {-1, 1, -2, 4});
  // Scale and bias as graph inputs: the [N, G, rest] view.
  if (!haveOps({"Shape", "Reshape"})) GTEST_SKIP() << "Shape/Reshape are not in the op table yet";
  m.g->clear_initializer();
  *m.g->add_input() = vi("s", onnx::TensorProto::FLOAT, {2});
  *m.g->add_input() = vi("b", onnx::TensorProto::FLOAT, {2});
  model = anvil::parser::parseOnnxBytes(m.m.SerializeAsString(), "");
  auto out = Interpreter::run(*model.graph, {{"x", x}, {"s", f32({2}, {1, 3})}, {"b", f32({2}, {0, 1})}});
  expectNear(out[0], {-1, 1, -2, 4});
}

TEST(ReduceImport, BatchNormOpset9InferenceAndSpatial0) {
  auto m = onnxModel(9, "BatchNormalization");
  *m.g->add_input() = vi("x", onnx::TensorProto::FLOAT, {-1, 2});
  *m.g->add_output() = vi("y", onnx::TensorProto::FLOAT, {-2});
  addInit(m.g, "s", {2}, {1, 2});
  addInit(m.g, "b", {2}, {0, 1});
  addInit(m.g, "m", {2}, {1, 1});
  addInit(m.g, "v", {2}, {4, 1});
  for (const char* n : {"x", "s", "b", "m", "v"}) m.node->add_input(n);
  m.node->add_output("y");
  auto model = anvil::parser::parseOnnxBytes(m.m.SerializeAsString(), "");
  EXPECT_EQ(model.graph->nodes()[0]->attrs().getInt("training_mode", -1), 0);
  expectNear(Interpreter::run(*model.graph, {{"x", f32({1, 2}, {5, 3})}})[0], {2, 5}, 1e-4);
  if (!haveOps({"Mul", "Add"})) GTEST_SKIP() << "Mul/Add are not in the op table yet";
  // Opset 6 with spatial = 0: per-activation parameters [C, D] folded into Mul/Add.
  auto m6 = onnxModel(6, "BatchNormalization");
  *m6.g->add_input() = vi("x", onnx::TensorProto::FLOAT, {-1, 1, 2});
  *m6.g->add_output() = vi("y", onnx::TensorProto::FLOAT, {-2});
  addInit(m6.g, "s", {1, 2}, {1, 2});
  addInit(m6.g, "b", {1, 2}, {0, 1});
  addInit(m6.g, "m", {1, 2}, {1, 1});
  addInit(m6.g, "v", {1, 2}, {4, 1});
  for (const char* n : {"x", "s", "b", "m", "v"}) m6.node->add_input(n);
  m6.node->add_output("y");
  intAttr(m6.node, "spatial", 0);
  intAttr(m6.node, "is_test", 1);
  model = anvil::parser::parseOnnxBytes(m6.m.SerializeAsString(), "");
  expectNear(Interpreter::run(*model.graph, {{"x", f32({1, 1, 2}, {5, 3})}})[0], {2, 5}, 1e-4);
}
