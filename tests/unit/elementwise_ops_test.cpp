// The elementwise family beyond the ONNX node tests: symbolic-dim inference, shape-value
// propagation and build-time folds, odd broadcast shapes, integer semantics (wrapping,
// truncating Div, Python/C Mod, integer Pow), Cast to strings / 4-bit / f8, error
// messages that name the node, and the importers' upgrades of old opsets.
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
TensorType tt(DataType dt, std::vector<Dim> dims) { return {dt, Shape(std::move(dims))}; }

using anvil::testing::In;
using anvil::testing::oneNode;

TensorType inferOne(const std::string& op, const std::vector<TensorType>& ins, const Attributes& attrs = {}) {
  std::vector<In> decl;
  for (size_t i = 0; i < ins.size(); ++i) decl.push_back({"x" + std::to_string(i), ins[i], std::nullopt});
  return oneNode(op, decl, attrs)->outputs()[0]->type();
}

Attributes attrs(std::initializer_list<std::pair<const char*, Attribute::Storage>> kv) {
  Attributes a;
  for (const auto& [k, v] : kv) a.set(k, v);
  return a;
}

template <typename T>
Tensor mk(DataType dt, std::vector<int64_t> dims, std::vector<T> v) {
  return Tensor::fromVector<T>(dt, std::move(dims), v);
}
Tensor f32(std::vector<int64_t> dims, std::vector<float> v) { return mk<float>(DataType::kF32, dims, v); }
Tensor i32(std::vector<int64_t> dims, std::vector<int32_t> v) { return mk<int32_t>(DataType::kI32, dims, v); }
Tensor i64(std::vector<int64_t> dims, std::vector<int64_t> v) { return mk<int64_t>(DataType::kI64, dims, v); }
Tensor u8(std::vector<int64_t> dims, std::vector<uint8_t> v) { return mk<uint8_t>(DataType::kU8, dims, v); }
Tensor boolean(std::vector<int64_t> dims, std::vector<uint8_t> v) { return mk<uint8_t>(DataType::kBool, dims, v); }
Tensor strings(std::vector<int64_t> dims, std::vector<std::string> v) {
  return mk<std::string>(DataType::kString, dims, v);
}

// Runs one node with every input fed at run time.
Tensor run(const std::string& op, const std::vector<Tensor>& ins, const Attributes& a = {}) {
  std::vector<In> decl;
  std::map<std::string, Tensor> feed;
  for (size_t i = 0; i < ins.size(); ++i) {
    std::string name = "x" + std::to_string(i);
    if (!ins[i].defined()) {
      decl.push_back({"", {}, std::nullopt});
      continue;
    }
    decl.push_back({name, ins[i].type(), std::nullopt});
    feed[name] = ins[i];
  }
  auto g = oneNode(op, decl, a);
  return Interpreter::run(*g, feed)[0];
}

std::vector<double> values(const Tensor& t) {
  std::vector<double> v;
  for (int64_t i = 0; i < t.numel(); ++i) v.push_back(t.getDouble(i));
  return v;
}

void expectNear(const Tensor& t, const std::vector<double>& want, double tol = 1e-6) {
  ASSERT_EQ(t.numel(), int64_t(want.size())) << t.summary();
  for (size_t i = 0; i < want.size(); ++i) {
    double g = t.getDouble(int64_t(i));
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(g)) << "element " << i << " is " << g;
    } else if (std::isinf(want[i])) {
      EXPECT_EQ(g, want[i]) << "element " << i;
    } else {
      EXPECT_NEAR(g, want[i], tol * std::max(1.0, std::fabs(want[i]))) << "element " << i;
    }
  }
}

std::vector<std::string> strs(const Tensor& t) {
  std::vector<std::string> v;
  for (int64_t i = 0; i < t.numel(); ++i) v.push_back(t.str(i));
  return v;
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

// Runs a schema's inference directly, with chosen input data and symbolic shape values.
struct DirectInfer {
  Graph g;
  Node* node = nullptr;
  std::vector<TensorType> types;
  std::vector<std::optional<Tensor>> values;
  std::vector<std::optional<std::vector<Dim>>> shapeValues;

  DirectInfer(const std::string& op, std::vector<TensorType> ts, const Attributes& a = {}) : types(std::move(ts)) {
    std::vector<Value*> vs;
    for (size_t i = 0; i < types.size(); ++i) vs.push_back(g.addValue("x" + std::to_string(i), types[i]));
    node = g.addNode(op, "", "n0", vs, {"y"});
    node->attrs() = a;
    values.resize(types.size());
    shapeValues.resize(types.size());
  }
  InferContext run() {
    std::vector<const TensorType*> t;
    std::vector<const Tensor*> v;
    std::vector<const std::vector<Dim>*> s;
    for (size_t i = 0; i < types.size(); ++i) {
      t.push_back(&types[i]);
      v.push_back(values[i] ? &*values[i] : nullptr);
      s.push_back(shapeValues[i] ? &*shapeValues[i] : nullptr);
    }
    InferContext ctx(*node, t, v, s);
    node->schema()->infer(ctx);
    return ctx;
  }
};

}  // namespace

// ---------------------------------------------------------------- inference

TEST(ElementwiseInfer, BroadcastKeepsSymbolicDims) {
  EXPECT_EQ(inferOne("Add", {tt(DataType::kF32, {sym("N"), 3, 1}), tt(DataType::kF32, {4})}).str(), "f32[N,3,4]");
  EXPECT_EQ(inferOne("Greater", {tt(DataType::kI64, {sym("N"), 1}), tt(DataType::kI64, {1, 7})}).str(),
            "bool[N,7]");
  EXPECT_EQ(inferOne("Where", {tt(DataType::kBool, {sym("N"), 1}), tt(DataType::kF16, {1, 5}),
                               tt(DataType::kF16, {5})}).str(),
            "f16[N,5]");
  EXPECT_EQ(inferOne("Max", {tt(DataType::kF32, {13}), tt(DataType::kF32, {7, 1}), tt(DataType::kF32, {})}).str(),
            "f32[7,13]");
  EXPECT_EQ(inferOne("Relu", {tt(DataType::kF32, {sym("N"), 3, 224, 224})}).str(), "f32[N,3,224,224]");
  EXPECT_EQ(inferOne("IsNaN", {tt(DataType::kBF16, {sym("B"), 2})}).str(), "bool[B,2]");
  EXPECT_EQ(inferOne("Cast", {tt(DataType::kF32, {sym("N"), 7})}, attrs({{"to", int64_t(7)}})).str(), "i64[N,7]");
  EXPECT_EQ(inferOne("CastLike", {tt(DataType::kF32, {sym("N")}), tt(DataType::kF16, {})}).str(), "f16[N]");
  EXPECT_EQ(inferOne("Pow", {tt(DataType::kI32, {3}), tt(DataType::kF32, {1})}).str(), "i32[3]");
  EXPECT_EQ(inferOne("PRelu", {tt(DataType::kF32, {sym("N"), 4, 5}), tt(DataType::kF32, {4, 1})}).str(),
            "f32[N,4,5]");
}

TEST(ElementwiseInfer, ErrorsNameTheNode) {
  expectNodeError([] { inferOne("Add", {tt(DataType::kF32, {2}), tt(DataType::kI64, {2})}); }, "Add",
                  "one element type");
  expectNodeError([] { inferOne("Mul", {tt(DataType::kF32, {2, 3}), tt(DataType::kF32, {4})}); }, "Mul", "");
  expectNodeError([] { inferOne("Sqrt", {tt(DataType::kI64, {2})}); }, "Sqrt", "expected one of");
  expectNodeError([] { inferOne("And", {tt(DataType::kF32, {2}), tt(DataType::kF32, {2})}); }, "And", "bool");
  expectNodeError(
      [] { inferOne("Where", {tt(DataType::kF32, {2}), tt(DataType::kF32, {2}), tt(DataType::kF32, {2})}); },
      "Where", "bool");
  expectNodeError([] { inferOne("PRelu", {tt(DataType::kF32, {2, 4}), tt(DataType::kF32, {3})}); }, "PRelu",
                  "does not broadcast");
  expectNodeError([] { inferOne("Cast", {tt(DataType::kF32, {2})}, attrs({{"to", int64_t(99)}})); }, "Cast",
                  "'to' is 99");
  expectNodeError([] { inferOne("Cast", {tt(DataType::kF32, {2})}); }, "Cast", "to");
  expectNodeError([] { inferOne("Mod", {tt(DataType::kI32, {2}), tt(DataType::kI32, {2})}, attrs({{"fmod", int64_t(2)}})); },
                  "Mod", "fmod");
  expectNodeError([] { inferOne("Gelu", {tt(DataType::kF32, {2})}, attrs({{"approximate", std::string("fast")}})); },
                  "Gelu", "approximate");
  expectNodeError([] { inferOne("Clip", {tt(DataType::kF32, {2}), tt(DataType::kF32, {3})}); }, "Clip", "scalar");
}

TEST(ElementwiseInfer, CastCarriesShapeValuesBetweenIntegerTypes) {
  DirectInfer d("Cast", {tt(DataType::kI64, {3})}, attrs({{"to", int64_t(DataType::kI32)}}));
  d.shapeValues[0] = std::vector<Dim>{sym("N"), Dim(3), Dim(224)};
  InferContext c = d.run();
  ASSERT_TRUE(c.outputShapeValues()[0].has_value());
  EXPECT_EQ(Shape(*c.outputShapeValues()[0]).str(), "[N,3,224]");
  EXPECT_EQ(c.outputs()[0].str(), "i32[3]");

  DirectInfer f("Cast", {tt(DataType::kI64, {3})}, attrs({{"to", int64_t(DataType::kF32)}}));
  f.shapeValues[0] = std::vector<Dim>{sym("N"), Dim(3), Dim(224)};
  EXPECT_FALSE(f.run().outputShapeValues()[0].has_value());  // floats are not shape values
}

TEST(ElementwiseInfer, ArithmeticOnShapeValues) {
  DirectInfer d("Mul", {tt(DataType::kI64, {3}), tt(DataType::kI64, {3})});
  d.shapeValues[0] = std::vector<Dim>{sym("N"), Dim(3), Dim(5)};
  d.values[1] = i64({3}, {1, 2, 7});
  InferContext c = d.run();
  ASSERT_TRUE(c.outputShapeValues()[0].has_value());
  EXPECT_EQ(Shape(*c.outputShapeValues()[0]).str(), "[N,6,35]");

  DirectInfer s("Sub", {tt(DataType::kI64, {1}), tt(DataType::kI64, {})});
  s.shapeValues[0] = std::vector<Dim>{sym("N")};
  s.values[1] = Tensor::scalar<int64_t>(DataType::kI64, 1);
  InferContext cs = s.run();
  ASSERT_TRUE(cs.outputShapeValues()[0].has_value());
  EXPECT_TRUE((*cs.outputShapeValues()[0])[0].isUnknown());  // N - 1 is not a symbol we track
}

TEST(ElementwiseInfer, FoldsSmallKnownTensors) {
  DirectInfer d("Div", {tt(DataType::kI64, {4}), tt(DataType::kI64, {})});
  d.values[0] = i64({4}, {7, -7, 9, 0});
  d.values[1] = Tensor::scalar<int64_t>(DataType::kI64, 2);
  InferContext c = d.run();
  ASSERT_TRUE(c.outputValues()[0].has_value());
  EXPECT_EQ(c.outputValues()[0]->toInt64Vector(), (std::vector<int64_t>{3, -3, 4, 0}));

  DirectInfer w("Where", {tt(DataType::kBool, {2}), tt(DataType::kI64, {2}), tt(DataType::kI64, {1})});
  w.values[0] = boolean({2}, {1, 0});
  w.values[1] = i64({2}, {5, 6});
  w.values[2] = i64({1}, {-1});
  InferContext cw = w.run();
  ASSERT_TRUE(cw.outputValues()[0].has_value());
  EXPECT_EQ(cw.outputValues()[0]->toInt64Vector(), (std::vector<int64_t>{5, -1}));

  DirectInfer k("Cast", {tt(DataType::kF32, {2})}, attrs({{"to", int64_t(DataType::kI64)}}));
  k.values[0] = f32({2}, {2.9f, -2.9f});
  InferContext ck = k.run();
  ASSERT_TRUE(ck.outputValues()[0].has_value());
  EXPECT_EQ(ck.outputValues()[0]->toInt64Vector(), (std::vector<int64_t>{2, -2}));
}

// ---------------------------------------------------------------- kernels

TEST(ElementwiseKernels, OddBroadcastShapes) {
  // [7,1,13] + [1,5,1] -> [7,5,13], against a direct loop.
  std::vector<float> a(7 * 13), b(5);
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(i) * 0.5f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = float(i) * 100.f;
  Tensor y = run("Add", {f32({7, 1, 13}, a), f32({1, 5, 1}, b)});
  ASSERT_EQ(y.dims(), (std::vector<int64_t>{7, 5, 13}));
  for (int i = 0; i < 7; ++i)
    for (int j = 0; j < 5; ++j)
      for (int k = 0; k < 13; ++k)
        ASSERT_EQ(y.data<float>()[(i * 5 + j) * 13 + k], a[size_t(i * 13 + k)] + b[size_t(j)]);
  // Scalars and size-1 tensors.
  expectNear(run("Sub", {f32({}, {10}), f32({1, 3}, {1, 2, 3})}), {9, 8, 7});
  EXPECT_EQ(run("Mul", {f32({1}, {2}), f32({}, {3})}).dims(), (std::vector<int64_t>{1}));
  // Empty tensors broadcast to empty results.
  EXPECT_EQ(run("Add", {f32({0, 3}, {}), f32({3}, {1, 2, 3})}).dims(), (std::vector<int64_t>{0, 3}));
}

TEST(ElementwiseKernels, IntegerArithmetic) {
  EXPECT_EQ(run("Div", {i32({4}, {7, -7, 7, -7}), i32({4}, {2, 2, -2, -2})}).toInt64Vector(),
            (std::vector<int64_t>{3, -3, -3, 3}));
  const int32_t mn = std::numeric_limits<int32_t>::min();
  // Division by zero gives 0 (as numpy), INT_MIN / -1 wraps; neither traps.
  EXPECT_EQ(run("Div", {i32({2}, {5, mn}), i32({2}, {0, -1})}).toInt64Vector(), (std::vector<int64_t>{0, mn}));
  EXPECT_EQ(run("Add", {i32({1}, {std::numeric_limits<int32_t>::max()}), i32({1}, {1})}).toInt64Vector(),
            (std::vector<int64_t>{mn}));
  EXPECT_EQ(run("Mul", {u8({2}, {200, 16}), u8({2}, {2, 16})}).toInt64Vector(), (std::vector<int64_t>{144, 0}));
  EXPECT_EQ(run("Abs", {i32({2}, {mn, -3})}).toInt64Vector(), (std::vector<int64_t>{mn, 3}));
  EXPECT_EQ(run("Neg", {i64({2}, {5, -6})}).toInt64Vector(), (std::vector<int64_t>{-5, 6}));
  EXPECT_EQ(run("Sum", {i64({2}, {1, 2}), i64({1}, {10}), i64({2, 1}, {100, 200})}).toInt64Vector(),
            (std::vector<int64_t>{111, 112, 211, 212}));
}

TEST(ElementwiseKernels, ModPythonAndC) {
  Tensor a = i64({6}, {-4, 7, 5, 4, -7, 8}), b = i64({6}, {2, -3, 8, -2, 3, 5});
  EXPECT_EQ(run("Mod", {a, b}).toInt64Vector(), (std::vector<int64_t>{0, -2, 5, 0, 2, 3}));
  EXPECT_EQ(run("Mod", {a, b}, attrs({{"fmod", int64_t(1)}})).toInt64Vector(),
            (std::vector<int64_t>{0, 1, 5, 0, -1, 3}));
  EXPECT_EQ(run("Mod", {i64({1}, {5}), i64({1}, {0})}).toInt64Vector(), (std::vector<int64_t>{0}));
  expectNear(run("Mod", {f32({2}, {-4.5f, 7.5f}), f32({2}, {2.f, -2.f})}, attrs({{"fmod", int64_t(1)}})),
             {-0.5, 1.5});
}

TEST(ElementwiseKernels, PowMixedTypes) {
  EXPECT_EQ(run("Pow", {i64({4}, {2, 3, -2, 5}), i64({4}, {10, 0, 3, -1})}).toInt64Vector(),
            (std::vector<int64_t>{1024, 1, -8, 0}));
  // Integer base, float exponent: computed in double and truncated (numpy's astype).
  EXPECT_EQ(run("Pow", {i32({2}, {2, 3}), f32({2}, {0.5f, 2.f})}).toInt64Vector(), (std::vector<int64_t>{1, 9}));
  expectNear(run("Pow", {f32({2}, {2.f, 9.f}), i64({2}, {-1, 2})}), {0.5, 81});
}

TEST(ElementwiseKernels, BitOps) {
  Tensor x = u8({4}, {16, 4, 1, 255});
  EXPECT_EQ(run("BitShift", {x, u8({4}, {1, 2, 3, 8})}, attrs({{"direction", std::string("LEFT")}})).toInt64Vector(),
            (std::vector<int64_t>{32, 16, 8, 0}));
  EXPECT_EQ(run("BitShift", {x, u8({1}, {2})}, attrs({{"direction", std::string("RIGHT")}})).toInt64Vector(),
            (std::vector<int64_t>{4, 1, 0, 63}));
  expectNodeError([&] { run("BitShift", {x, x}, attrs({{"direction", std::string("UP")}})); }, "BitShift",
                  "direction");
  EXPECT_EQ(run("BitwiseNot", {mk<int8_t>(DataType::kI8, {2}, {5, -1})}).toInt64Vector(),
            (std::vector<int64_t>{-6, 0}));
  EXPECT_EQ(run("BitwiseXor", {i32({2}, {6, 6}), i32({1}, {3})}).toInt64Vector(), (std::vector<int64_t>{5, 5}));
}

TEST(ElementwiseKernels, RoundingAndClip) {
  expectNear(run("Round", {f32({7}, {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 2.4f, 2.6f})}), {0, 2, 2, 0, -2, 2, 3});
  // min > max gives max everywhere; NaN stays NaN; ints work.
  EXPECT_EQ(run("Clip", {i32({3}, {-9, 3, 9}), i32({}, {5}), i32({}, {2})}).toInt64Vector(),
            (std::vector<int64_t>{2, 2, 2}));
  expectNear(run("Clip", {f32({3}, {-9.f, NAN, 9.f}), f32({}, {-1.f})}), {-1, NAN, 9});
  expectNear(run("Clip", {f32({2}, {-9.f, 9.f}), Tensor(), f32({1}, {0.5f})}), {-9, 0.5});
}

TEST(ElementwiseKernels, VariadicNaNAndMean) {
  expectNear(run("Max", {f32({3}, {1, NAN, 3}), f32({1}, {2})}), {2, NAN, 3});
  expectNear(run("Min", {f32({3}, {1, 5, 3}), f32({1}, {2}), f32({3, 1}, {0, 10, 20})}),
             {0, 0, 0, 1, 2, 2, 1, 2, 2});
  expectNear(run("Mean", {f32({2}, {1, 2}), f32({2}, {3, 6}), f32({}, {2})}), {2, 10.0 / 3});
  EXPECT_EQ(run("Max", {i64({1}, {7})}).toInt64Vector(), (std::vector<int64_t>{7}));
}

TEST(ElementwiseKernels, ActivationsHandChecked) {
  expectNear(run("Gelu", {f32({3}, {1.f, -1.f, 0.f})}), {0.8413447, -0.1586553, 0}, 1e-6);
  expectNear(run("Gelu", {f32({2}, {1.f, -1.f})}, attrs({{"approximate", std::string("tanh")}})),
             {0.8411920, -0.1588080}, 1e-6);
  // Softplus and Sigmoid far out: no overflow, no NaN.
  expectNear(run("Softplus", {f32({3}, {100.f, -100.f, 0.f})}), {100, 0, std::log(2.0)});
  expectNear(run("Sigmoid", {f32({3}, {-100.f, 100.f, 0.f})}), {0, 1, 0.5});
  expectNear(run("HardSwish", {f32({4}, {-4.f, -1.f, 1.f, 4.f})}), {0, -1.0 / 3, 2.0 / 3, 4});
  expectNear(run("Shrink", {i32({5}, {-3, -1, 0, 1, 3})}, attrs({{"lambd", 1.5f}, {"bias", 1.f}})),
             {-2, 0, 0, 0, 2});
  expectNear(run("LeakyRelu", {f32({2}, {-2.f, 2.f})}, attrs({{"alpha", 0.5f}})), {-1, 2});
  expectNear(run("ThresholdedRelu", {f32({3}, {0.5f, 1.f, 2.f})}), {0, 0, 2});
  expectNear(run("PRelu", {f32({2, 3}, {-1, -2, -3, 1, 2, 3}), f32({3}, {0.1f, 0.2f, 0.3f})}),
             {-0.1, -0.4, -0.9, 1, 2, 3});
  EXPECT_EQ(run("Relu", {mk<int8_t>(DataType::kI8, {2}, {-5, 5})}).toInt64Vector(), (std::vector<int64_t>{0, 5}));
  Tensor h = run("Exp", {mk<Half>(DataType::kF16, {1}, {Half(1.0f)})});
  EXPECT_EQ(h.dtype(), DataType::kF16);
  EXPECT_NEAR(h.getDouble(0), std::exp(1.0), 2e-3);
}

TEST(ElementwiseKernels, LogicAndClassification) {
  Tensor inf = f32({4}, {INFINITY, -INFINITY, NAN, 1.f});
  EXPECT_EQ(values(run("IsInf", {inf}, attrs({{"detect_negative", int64_t(0)}}))), (std::vector<double>{1, 0, 0, 0}));
  EXPECT_EQ(values(run("IsNaN", {inf})), (std::vector<double>{0, 0, 1, 0}));
  EXPECT_EQ(values(run("Xor", {boolean({2}, {1, 1}), boolean({2, 1}, {0, 1})})), (std::vector<double>{1, 1, 0, 0}));
  EXPECT_EQ(values(run("Equal", {strings({2}, {"a", "b"}), strings({1}, {"b"})})), (std::vector<double>{0, 1}));
  EXPECT_EQ(values(run("GreaterOrEqual", {f32({3}, {1, 2, NAN}), f32({1}, {2})})), (std::vector<double>{0, 1, 0}));
  Tensor w = run("Where", {boolean({2}, {1, 0}), strings({2}, {"x", "y"}), strings({}, {"z"})});
  EXPECT_EQ(strs(w), (std::vector<std::string>{"x", "z"}));
}

TEST(ElementwiseKernels, CastNumbersToStrings) {
  Tensor s = run("Cast", {f32({12}, {1e-05f, 123456789.f, 0.1f, -0.0f, NAN, INFINITY, 1e16f, 2.5f, 0.0001f, 1.5e-7f,
                                     65504.f, 3.4e38f})},
                 attrs({{"to", int64_t(DataType::kString)}}));
  EXPECT_EQ(strs(s), (std::vector<std::string>{"1e-05", "123456790.0", "0.1", "-0.0", "nan", "inf", "1e+16", "2.5",
                                               "1e-04", "1.5e-07", "65504.0", "3.4e+38"}));
  Tensor d = run("Cast", {mk<double>(DataType::kF64, {2}, {1.0 / 3, 1e22})}, attrs({{"to", int64_t(8)}}));
  EXPECT_EQ(strs(d), (std::vector<std::string>{"0.3333333333333333", "1e+22"}));
  Tensor h = run("Cast", {mk<Half>(DataType::kF16, {2}, {Half(0.1f), Half(1.0f / 3)})}, attrs({{"to", int64_t(8)}}));
  EXPECT_EQ(strs(h), (std::vector<std::string>{"0.1", "0.3333"}));
  EXPECT_EQ(strs(run("Cast", {i64({2}, {-42, 7})}, attrs({{"to", int64_t(8)}}))),
            (std::vector<std::string>{"-42", "7"}));
  EXPECT_EQ(strs(run("Cast", {boolean({2}, {1, 0})}, attrs({{"to", int64_t(8)}}))),
            (std::vector<std::string>{"True", "False"}));
}

TEST(ElementwiseKernels, CastStringsToNumbers) {
  Tensor s = strings({5}, {"1.5", "NaN", "+INF", "-inf", "-7"});
  expectNear(run("Cast", {s}, attrs({{"to", int64_t(DataType::kF64)}})), {1.5, NAN, INFINITY, -INFINITY, -7});
  EXPECT_EQ(run("Cast", {strings({3}, {"123456789012", "-5", "7.9"})}, attrs({{"to", int64_t(7)}})).toInt64Vector(),
            (std::vector<int64_t>{123456789012, -5, 7}));
  expectNodeError([] { run("Cast", {strings({1}, {"abc"})}, attrs({{"to", int64_t(1)}})); }, "Cast", "abc");
}

TEST(ElementwiseKernels, CastIntegersAndBool) {
  // float -> integer truncates; out-of-range wraps as numpy does through int64.
  EXPECT_EQ(run("Cast", {f32({4}, {300.7f, -1.f, 2.9f, -2.9f})}, attrs({{"to", int64_t(DataType::kU8)}})).toInt64Vector(),
            (std::vector<int64_t>{44, 255, 2, 254}));
  EXPECT_EQ(values(run("Cast", {f32({3}, {0.f, NAN, -0.5f})}, attrs({{"to", int64_t(DataType::kBool)}}))),
            (std::vector<double>{0, 1, 1}));
  expectNear(run("Cast", {boolean({2}, {1, 0})}, attrs({{"to", int64_t(DataType::kBF16)}})), {1, 0});
  EXPECT_EQ(run("Cast", {i64({2}, {257, -1})}, attrs({{"to", int64_t(DataType::kI8)}})).toInt64Vector(),
            (std::vector<int64_t>{1, -1}));
}

TEST(ElementwiseKernels, CastPacked4BitAndF8) {
  // Clipped, rounded half to even, packed two per byte with the low nibble first.
  Tensor q = run("Cast", {f32({5}, {-9.f, 7.5f, 0.5f, 1.5f, -2.f})}, attrs({{"to", int64_t(DataType::kI4)}}));
  EXPECT_EQ(q.dtype(), DataType::kI4);
  EXPECT_EQ(values(q), (std::vector<double>{-8, 7, 0, 2, -2}));
  EXPECT_EQ(q.data<uint8_t>()[0], 0x78);  // -8 low, 7 high
  Tensor u = run("Cast", {q}, attrs({{"to", int64_t(DataType::kU4)}}));
  EXPECT_EQ(values(u), (std::vector<double>{0, 7, 0, 2, 0}));
  EXPECT_EQ(run("Cast", {u}, attrs({{"to", int64_t(DataType::kI64)}})).toInt64Vector(),
            (std::vector<int64_t>{0, 7, 0, 2, 0}));
  // Saturating casts clamp infinities to the largest finite value, non-saturating ones do not.
  Tensor inf = f32({2}, {INFINITY, -INFINITY});
  Tensor s = run("Cast", {inf}, attrs({{"to", int64_t(DataType::kF8E4M3FNUZ)}}));
  EXPECT_EQ(values(s), (std::vector<double>{240, -240}));
  Tensor n = run("Cast", {inf}, attrs({{"to", int64_t(DataType::kF8E4M3FNUZ)}, {"saturate", int64_t(0)}}));
  EXPECT_TRUE(std::isnan(n.getDouble(0)));
  expectNear(run("Cast", {s}, attrs({{"to", int64_t(DataType::kF32)}})), {240, -240});
}

TEST(ElementwiseKernels, RuntimeErrorsNameTheNode) {
  expectNodeError([] { run("Clip", {f32({2}, {1, 2}), f32({2}, {0, 1})}); }, "Clip", "scalar");
  // Kernels run on inputs that bypassed inference (constant folding) check types too.
  auto g = oneNode("Add", {{"a", tt(DataType::kF32, {2}), std::nullopt}, {"b", tt(DataType::kF32, {2}), std::nullopt}});
  Tensor a = f32({2}, {1, 2});
  Tensor b = i64({2}, {1, 2});
  expectNodeError([&] { Interpreter::runNode(*g->nodes()[0], {&a, &b}); }, "Add", "one element type");
  Tensor s = strings({1}, {"x"});
  expectNodeError([&] { Interpreter::runNode(*g->nodes()[0], {&s, &s}); }, "Add", "string");
}

// ---------------------------------------------------------------- importers

namespace {

onnx::ValueInfoProto vi(const std::string& name, int elem, std::vector<int64_t> dims) {
  onnx::ValueInfoProto v;
  v.set_name(name);
  auto* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(elem);
  for (int64_t d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
  return v;
}

struct OnnxNode {
  onnx::ModelProto m;
  onnx::NodeProto* node;
  onnx::GraphProto* g;
};

OnnxNode onnxModel(int opset, const std::string& op, const std::vector<std::string>& ins) {
  OnnxNode r;
  r.m.set_ir_version(3);
  auto* os = r.m.add_opset_import();
  os->set_domain("");
  os->set_version(opset);
  r.g = r.m.mutable_graph();
  r.g->set_name("g");
  r.node = r.g->add_node();
  r.node->set_op_type(op);
  r.node->set_name("n0");
  for (const auto& i : ins) r.node->add_input(i);
  r.node->add_output("y");
  return r;
}

void floatAttr(onnx::NodeProto* n, const std::string& name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
void intAttr(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

Model parse(const OnnxNode& r) { return anvil::parser::parseOnnxBytes(r.m.SerializeAsString(), "."); }

}  // namespace

TEST(ElementwiseImport, ClipAttributesBecomeInputs) {
  for (int elem : {onnx::TensorProto::FLOAT, onnx::TensorProto::FLOAT16}) {
    OnnxNode r = onnxModel(6, "Clip", {"x"});
    *r.g->add_input() = vi("x", elem, {4});
    *r.g->add_output() = vi("y", elem, {4});
    floatAttr(r.node, "min", -1.f);
    floatAttr(r.node, "max", 2.f);
    Model m = parse(r);
    const Node& n = *m.graph->nodes().back();
    ASSERT_EQ(n.op(), "Clip");
    ASSERT_EQ(n.numInputs(), 3u);
    EXPECT_EQ(n.input(1)->dtype(), DataType(elem));
    EXPECT_TRUE(n.attrs().empty());
    Tensor x(DataType(elem), {4});
    for (int i = 0; i < 4; ++i) x.setDouble(i, -3 + 2 * i);
    expectNear(Interpreter::run(*m.graph, {{"x", x}})[0], {-1, -1, 1, 2});
  }
  // Only a max: min stays absent.
  OnnxNode r = onnxModel(1, "Clip", {"x"});
  *r.g->add_input() = vi("x", onnx::TensorProto::FLOAT, {2});
  *r.g->add_output() = vi("y", onnx::TensorProto::FLOAT, {2});
  floatAttr(r.node, "max", 0.f);
  Model m = parse(r);
  expectNear(Interpreter::run(*m.graph, {{"x", f32({2}, {-5, 5})}})[0], {-5, 0});
}

TEST(ElementwiseImport, BinaryOpsBeforeOpset7AreUnsupported) {
  // Opset 6 binary ops used broadcast/axis attributes; they are reported, not guessed.
  OnnxNode r = onnxModel(6, "Mul", {"a", "b"});
  *r.g->add_input() = vi("a", onnx::TensorProto::FLOAT, {2, 3});
  *r.g->add_input() = vi("b", onnx::TensorProto::FLOAT, {2});
  *r.g->add_output() = vi("y", onnx::TensorProto::FLOAT, {2, 3});
  intAttr(r.node, "broadcast", 1);
  intAttr(r.node, "axis", 0);
  try {
    parse(r);
    ADD_FAILURE() << "expected kUnsupported";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("Mul 'n0'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("opsets 7 to 22"), std::string::npos) << e.what();
  }
}

TEST(ElementwiseImport, OldOpsetForms) {
  // Cast opset 1 names the type as a string; Relu opset 1 carries consumed_inputs.
  OnnxNode r = onnxModel(1, "Cast", {"x"});
  *r.g->add_input() = vi("x", onnx::TensorProto::FLOAT, {2});
  *r.g->add_output() = vi("y", onnx::TensorProto::INT32, {2});
  auto* a = r.node->add_attribute();
  a->set_name("to");
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s("INT32");
  Model m = parse(r);
  EXPECT_EQ(Interpreter::run(*m.graph, {{"x", f32({2}, {1.7f, -1.7f})}})[0].toInt64Vector(),
            (std::vector<int64_t>{1, -1}));

  OnnxNode r2 = onnxModel(1, "Relu", {"x"});
  *r2.g->add_input() = vi("x", onnx::TensorProto::FLOAT, {2});
  *r2.g->add_output() = vi("y", onnx::TensorProto::FLOAT, {2});
  auto* c = r2.node->add_attribute();
  c->set_name("consumed_inputs");
  c->set_type(onnx::AttributeProto::INTS);
  c->add_ints(0);
  Model m2 = parse(r2);
  EXPECT_TRUE(m2.graph->nodes()[0]->attrs().empty());
  expectNear(Interpreter::run(*m2.graph, {{"x", f32({2}, {-1, 1})}})[0], {0, 1});

  // Ops newer than the model's opset are reported, not guessed.
  OnnxNode r3 = onnxModel(17, "Gelu", {"x"});
  *r3.g->add_input() = vi("x", onnx::TensorProto::FLOAT, {2});
  *r3.g->add_output() = vi("y", onnx::TensorProto::FLOAT, {2});
  EXPECT_THROW(parse(r3), Error);
}
