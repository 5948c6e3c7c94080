// The tensor family beyond the ONNX node tests: symbolic shape-value propagation (the
// Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains of transformer exports with a
// dynamic batch N), exact inference on odd shapes, errors that name the node, hand-checked
// numbers for forms without node tests, and the importers' upgrades of old opsets.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <limits>

#include "cpu/reference.h"
#include "ir/op_schema.h"
#include "parser/onnx_parser.h"

using anvil::Error;
using namespace anvil::ir;
using anvil::cpu::Interpreter;

namespace {

Dim sym(const char* s) { return Dim::symbol(s); }
TensorType tt(DataType dt, std::vector<Dim> dims) { return {dt, Shape(std::move(dims))}; }
Tensor f32(std::vector<int64_t> dims, std::vector<float> v) { return Tensor::fromVector<float>(DataType::kF32, dims, v); }
Tensor i64(std::vector<int64_t> dims, std::vector<int64_t> v) {
  return Tensor::fromVector<int64_t>(DataType::kI64, dims, v);
}
Tensor iota(DataType dt, std::vector<int64_t> dims) {
  Tensor t(dt, dims);
  for (int64_t i = 0; i < t.numel(); ++i) t.setDouble(i, double(i));
  return t;
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

// A small graph builder: inputs, initializers and nodes by name.
struct G {
  std::unique_ptr<Graph> g = std::make_unique<Graph>();
  int count = 0;
  Value* input(const std::string& name, TensorType t) {
    Value* v = g->addValue(name, std::move(t));
    g->addInput(v);
    return v;
  }
  Value* init(const std::string& name, Tensor t) { return g->addInitializer(name, std::move(t)); }
  Value* ints(std::vector<int64_t> v) {
    return init("c" + std::to_string(count++), i64({int64_t(v.size())}, v));
  }
  Value* scalar(int64_t v) { return init("c" + std::to_string(count++), Tensor::scalar<int64_t>(DataType::kI64, v)); }
  Node* node(const std::string& op, std::vector<Value*> ins, Attributes a = {}, int nout = 1,
             const std::string& name = "") {
    std::vector<std::string> outs;
    const std::string base = name.empty() ? op + std::to_string(count++) : name;
    for (int k = 0; k < nout; ++k) outs.push_back(base + "_out" + std::to_string(k));
    Node* n = g->addNode(op, "", name.empty() ? base : name, ins, outs);
    n->attrs() = std::move(a);
    return n;
  }
  Value* op(const std::string& o, std::vector<Value*> ins, Attributes a = {}) {
    return node(o, std::move(ins), std::move(a))->output(0);
  }
  void out(Value* v) { g->addOutput(v); }
};

// One node named n0 over graph inputs / initializers; inference run.
std::unique_ptr<Graph> oneNode(const std::string& op, const std::vector<std::pair<std::string, TensorType>>& ins,
                               const std::vector<std::pair<std::string, Tensor>>& inits, Attributes a = {},
                               int nout = 1) {
  G b;
  std::vector<Value*> vs;
  for (const auto& [name, t] : ins) vs.push_back(name.empty() ? nullptr : b.input(name, t));
  for (const auto& [name, t] : inits) vs.push_back(name.empty() ? nullptr : b.init(name, t));
  Node* n = b.node(op, vs, std::move(a), nout, "n0");
  for (Value* o : n->outputs()) b.out(o);
  inferShapes(*b.g);
  return std::move(b.g);
}

// Runs one node (named n0) with every input fed at run time except `inits`.
std::vector<Tensor> run(const std::string& op, const std::vector<std::pair<std::string, Tensor>>& ins,
                        const std::vector<std::pair<std::string, Tensor>>& inits = {}, Attributes a = {}, int nout = 1) {
  std::vector<std::pair<std::string, TensorType>> decl;
  std::map<std::string, Tensor> feed;
  for (const auto& [name, t] : ins) {
    decl.push_back({name, t.type()});
    if (!name.empty()) feed[name] = t;
  }
  auto g = oneNode(op, decl, inits, std::move(a), nout);
  return Interpreter::run(*g, feed);
}

// Expects `fn` to throw an anvil::Error whose message names node n0 of `op` and says `fragment`.
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

std::string typeOf(const Graph& g, size_t out = 0) { return g.outputs()[out]->type().str(); }

}  // namespace

// ---------------------------------------------------------------- shape values

// The BERT-like export: view(N, S, heads, head_dim) built from Shape pieces of a dynamic batch.
TEST(TensorShapeValues, BertReshapeChainKeepsSymbolicBatch) {
  G b;
  Value* x = b.input("x", tt(DataType::kF32, {sym("N"), 16, 64}));
  Value* shape = b.op("Shape", {x});
  Value* n = b.op("Gather", {shape, b.scalar(0)}, attrs({{"axis", int64_t(0)}}));
  Value* s = b.op("Gather", {shape, b.scalar(1)});
  Value* target = b.op("Concat",
                       {b.op("Unsqueeze", {n, b.ints({0})}), b.op("Unsqueeze", {s, b.ints({0})}), b.ints({4}), b.ints({16})},
                       attrs({{"axis", int64_t(0)}}));
  Value* r = b.op("Reshape", {x, target});
  Value* t = b.op("Transpose", {r}, attrs({{"perm", std::vector<int64_t>{0, 2, 1, 3}}}));
  // And back: view(N, S, 64) with -1 for the last dim.
  Value* back = b.op("Concat", {b.op("Unsqueeze", {n, b.ints({0})}), b.ints({16}), b.ints({-1})},
                     attrs({{"axis", int64_t(0)}}));
  Value* r2 = b.op("Reshape", {b.op("Transpose", {t}, attrs({{"perm", std::vector<int64_t>{0, 2, 1, 3}}})), back});
  b.out(r);
  b.out(t);
  b.out(r2);
  inferShapes(*b.g);
  EXPECT_EQ(typeOf(*b.g, 0), "f32[N,16,4,16]");
  EXPECT_EQ(typeOf(*b.g, 1), "f32[N,4,16,16]");
  EXPECT_EQ(typeOf(*b.g, 2), "f32[N,16,64]");
  EXPECT_EQ(shape->type().str(), "i64[3]");
  EXPECT_EQ(n->type().str(), "i64[]");
  EXPECT_EQ(target->type().str(), "i64[4]");

  // It also runs, with N = 2, and the reference checks every output against the inference.
  auto outs = Interpreter::run(*b.g, {{"x", iota(DataType::kF32, {2, 16, 64})}});
  EXPECT_EQ(outs[0].dims(), (std::vector<int64_t>{2, 16, 4, 16}));
  EXPECT_EQ(outs[1].dims(), (std::vector<int64_t>{2, 4, 16, 16}));
  EXPECT_EQ(values(outs[2]), values(iota(DataType::kF32, {2, 16, 64})));
  EXPECT_EQ(outs[1].getDouble(1 * 16 * 16 + 2 * 16 + 3), double(2 * 64 + 1 * 16 + 3));  // [0,1,2,3] <- x[0,2,1*16+3]
}

// torch's MultiheadAttention: [S, N, E] -> [S, N*heads, d] -> [N*heads, S, d] and back.
TEST(TensorShapeValues, BatchTimesHeadsSurvivesAsProductSymbol) {
  G b;
  Value* x = b.input("x", tt(DataType::kF32, {16, sym("N"), 64}));
  Value* r = b.op("Reshape", {x, b.ints({16, -1, 16})});
  Value* t = b.op("Transpose", {r}, attrs({{"perm", std::vector<int64_t>{1, 0, 2}}}));
  Value* flat = b.op("Reshape", {b.op("Transpose", {t}, attrs({{"perm", std::vector<int64_t>{1, 0, 2}}})), b.ints({-1, 64})});
  Value* n = b.op("Gather", {b.op("Shape", {x}), b.scalar(1)});
  Value* back = b.op("Reshape", {flat, b.op("Concat", {b.ints({16}), b.op("Unsqueeze", {n, b.ints({0})}), b.ints({64})},
                                            attrs({{"axis", int64_t(0)}}))});
  b.out(r);
  b.out(t);
  b.out(flat);
  b.out(back);
  inferShapes(*b.g);
  EXPECT_EQ(typeOf(*b.g, 0), "f32[16,4*N,16]");
  EXPECT_EQ(typeOf(*b.g, 1), "f32[4*N,16,16]");
  EXPECT_EQ(typeOf(*b.g, 2), "f32[16*N,64]");
  EXPECT_EQ(typeOf(*b.g, 3), "f32[16,N,64]");
  auto outs = Interpreter::run(*b.g, {{"x", iota(DataType::kF32, {16, 3, 64})}});
  EXPECT_EQ(outs[1].dims(), (std::vector<int64_t>{12, 16, 16}));
  EXPECT_EQ(values(outs[3]), values(iota(DataType::kF32, {16, 3, 64})));
}

TEST(TensorShapeValues, StaticShapesFoldToKnownData) {
  G b;
  Value* x = b.input("x", tt(DataType::kF32, {2, 3, 5}));
  Value* shape = b.op("Shape", {x}, attrs({{"start", int64_t(1)}}));
  Value* cos = b.op("ConstantOfShape", {shape}, attrs({{"value", i64({1}, {7})}}));
  Value* size = b.op("Size", {x});
  b.out(cos);
  b.out(size);
  inferShapes(*b.g);
  EXPECT_EQ(shape->type().str(), "i64[2]");
  EXPECT_EQ(typeOf(*b.g, 0), "i64[3,5]");
  EXPECT_EQ(typeOf(*b.g, 1), "i64[]");
  // Range over a folded Size is exact.
  G c;
  Value* y = c.input("y", tt(DataType::kF32, {4, 6}));
  Value* rg = c.op("Range", {c.scalar(0), c.op("Size", {y}), c.scalar(5)});
  c.out(rg);
  inferShapes(*c.g);
  EXPECT_EQ(typeOf(*c.g), "i64[5]");
  auto outs = Interpreter::run(*c.g, {{"y", f32({4, 6}, std::vector<float>(24, 0))}});
  EXPECT_EQ(values(outs[0]), (std::vector<double>{0, 5, 10, 15, 20}));
}

TEST(TensorShapeValues, ShapeConsumersUseSymbolicDims) {
  G b;
  Value* x = b.input("x", tt(DataType::kF32, {sym("N"), 3, sym("S")}));
  Value* shape = b.op("Shape", {x});
  Value* cos = b.op("ConstantOfShape", {shape});
  Value* tail = b.op("Slice", {shape, b.ints({1}), b.ints({std::numeric_limits<int64_t>::max()})});
  Value* zeros = b.op("ConstantOfShape", {tail});
  Value* w = b.input("w", tt(DataType::kF32, {1, 3, 1}));
  Value* ex = b.op("Expand", {w, shape});
  Value* n = b.op("Gather", {shape, b.scalar(-1)});
  Value* rg = b.op("Range", {b.scalar(0), n, b.scalar(1)});
  Value* tiled = b.op("Tile", {w, b.op("Concat", {b.ints({2}), b.ints({1}), b.op("Unsqueeze", {n, b.ints({0})})},
                                      attrs({{"axis", int64_t(0)}}))});
  Value* sq = b.op("Squeeze", {b.op("Slice", {shape, b.ints({0}), b.ints({1})}), b.ints({0})});
  Value* pads = b.op("Pad", {x, b.ints({0, 1, 0, 0, 1, 0})});
  for (Value* v : {cos, zeros, ex, rg, tiled, sq, pads}) b.out(v);
  inferShapes(*b.g);
  EXPECT_EQ(typeOf(*b.g, 0), "f32[N,3,S]");
  EXPECT_EQ(typeOf(*b.g, 1), "f32[3,S]");
  EXPECT_EQ(typeOf(*b.g, 2), "f32[N,3,S]");
  EXPECT_EQ(typeOf(*b.g, 3), "i64[S]");
  EXPECT_EQ(typeOf(*b.g, 4), "f32[2,3,S]");
  EXPECT_EQ(typeOf(*b.g, 5), "i64[]");
  EXPECT_EQ(typeOf(*b.g, 6), "f32[N,5,S]");
  auto outs = Interpreter::run(*b.g, {{"x", iota(DataType::kF32, {2, 3, 4})}, {"w", f32({1, 3, 1}, {1, 2, 3})}});
  EXPECT_EQ(outs[3].dims(), (std::vector<int64_t>{4}));
  EXPECT_EQ(outs[4].dims(), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(values(outs[5]), (std::vector<double>{2}));
}

TEST(TensorShapeValues, SymbolicInferenceOfMovementOps) {
  auto x = tt(DataType::kF32, {sym("N"), 3, 7, 13});
  EXPECT_EQ(typeOf(*oneNode("Flatten", {{"x", x}}, {})), "f32[N,273]");
  EXPECT_EQ(typeOf(*oneNode("Flatten", {{"x", x}}, {}, attrs({{"axis", int64_t(2)}}))), "f32[3*N,91]");
  EXPECT_EQ(typeOf(*oneNode("Flatten", {{"x", x}}, {}, attrs({{"axis", int64_t(0)}}))), "f32[1,273*N]");
  EXPECT_EQ(typeOf(*oneNode("Transpose", {{"x", x}}, {})), "f32[13,7,3,N]");
  EXPECT_EQ(typeOf(*oneNode("Unsqueeze", {{"x", x}}, {{"a", i64({2}, {-1, 0})}})), "f32[1,N,3,7,13,1]");
  EXPECT_EQ(typeOf(*oneNode("Squeeze", {{"x", tt(DataType::kF32, {sym("N"), 1, 7})}}, {{"a", i64({1}, {1})}})),
            "f32[N,7]");
  // No axes and a symbolic dim: which dims go is unknown.
  EXPECT_EQ(typeOf(*oneNode("Squeeze", {{"x", tt(DataType::kF32, {sym("N"), 1, 7})}}, {})), "f32[*]");
  EXPECT_EQ(typeOf(*oneNode("Slice", {{"x", x}}, {{"s", i64({2}, {1, -1})}, {"e", i64({2}, {100, -100})},
                                                  {"a", i64({2}, {2, 3})}, {"st", i64({2}, {2, -3})}})),
            "f32[N,3,3,5]");
  auto split = oneNode("Split", {{"x", x}}, {}, attrs({{"axis", int64_t(3)}, {"num_outputs", int64_t(3)}}), 3);
  EXPECT_EQ(typeOf(*split, 0), "f32[N,3,7,5]");
  EXPECT_EQ(typeOf(*split, 2), "f32[N,3,7,3]");
  EXPECT_EQ(typeOf(*oneNode("Concat", {{"a", x}, {"b", tt(DataType::kF32, {sym("N"), 5, 7, 13})}}, {},
                            attrs({{"axis", int64_t(1)}}))),
            "f32[N,8,7,13]");
  EXPECT_EQ(typeOf(*oneNode("Gather", {{"x", x}, {"i", tt(DataType::kI64, {sym("K"), 2})}}, {},
                            attrs({{"axis", int64_t(2)}}))),
            "f32[N,3,K,2,13]");
  EXPECT_EQ(typeOf(*oneNode("GatherND", {{"x", x}, {"i", tt(DataType::kI64, {sym("N"), 5, 2})}}, {},
                            attrs({{"batch_dims", int64_t(1)}}))),
            "f32[N,5,13]");
  EXPECT_EQ(typeOf(*oneNode("DepthToSpace", {{"x", tt(DataType::kF32, {sym("N"), 12, 7, 5})}}, {},
                            attrs({{"blocksize", int64_t(2)}}))),
            "f32[N,3,14,10]");
  EXPECT_EQ(typeOf(*oneNode("SpaceToDepth", {{"x", tt(DataType::kF32, {sym("N"), 3, 14, 10})}}, {},
                            attrs({{"blocksize", int64_t(2)}}))),
            "f32[N,12,7,5]");
  EXPECT_EQ(typeOf(*oneNode("OneHot", {{"i", tt(DataType::kI64, {sym("N"), 7})}},
                            {{"d", Tensor::scalar<float>(DataType::kF32, 10.0f)}, {"v", f32({2}, {0, 1})}},
                            attrs({{"axis", int64_t(1)}}))),
            "f32[N,10,7]");
  EXPECT_EQ(typeOf(*oneNode("NonZero", {{"x", x}}, {})), "i64[4,?]");
  auto uq = oneNode("Unique", {{"x", tt(DataType::kF32, {sym("N"), 7})}}, {}, attrs({{"axis", int64_t(1)}}), 4);
  EXPECT_EQ(typeOf(*uq, 0), "f32[N,?]");
  EXPECT_EQ(typeOf(*uq, 2), "i64[7]");
  EXPECT_EQ(typeOf(*oneNode("Resize", {{"x", x}}, {{"", Tensor()}, {"s", f32({4}, {1, 1, 2, 0.5})}})),
            "f32[N,3,14,6]");
  EXPECT_EQ(typeOf(*oneNode("Resize", {{"x", x}}, {{"", Tensor()}, {"", Tensor()}, {"z", i64({2}, {20, 20})}},
                            attrs({{"axes", std::vector<int64_t>{2, 3}}, {"keep_aspect_ratio_policy", std::string("not_larger")}}))),
            "f32[N,3,11,20]");
  EXPECT_EQ(typeOf(*oneNode("CenterCropPad", {{"x", x}}, {{"s", i64({2}, {5, 20})}},
                            attrs({{"axes", std::vector<int64_t>{-2, -1}}}))),
            "f32[N,3,5,20]");
}

// ---------------------------------------------------------------- errors

TEST(TensorErrors, BadInputsNameTheNode) {
  auto x = tt(DataType::kF32, {2, 3});
  expectNodeError([&] { oneNode("Reshape", {{"x", x}}, {{"s", i64({2}, {4, 2})}}); }, "Reshape", "cannot reshape");
  expectNodeError([&] { oneNode("Reshape", {{"x", x}}, {{"s", i64({2}, {-1, -1})}}); }, "Reshape", "more than one -1");
  expectNodeError([&] { oneNode("Transpose", {{"x", x}}, {}, attrs({{"perm", std::vector<int64_t>{0, 0}}})); },
                  "Transpose", "repeats axis");
  expectNodeError([&] { oneNode("Concat", {{"a", x}, {"b", tt(DataType::kF32, {3, 3})}}, {}, attrs({{"axis", int64_t(1)}})); },
                  "Concat", "differs from the others");
  expectNodeError([&] { oneNode("Split", {{"x", x}}, {{"s", i64({2}, {1, 1})}}, attrs({{"axis", int64_t(1)}}), 2); },
                  "Split", "does not add up");
  expectNodeError([&] { oneNode("Unsqueeze", {{"x", x}}, {{"a", i64({2}, {1, 1})}}); }, "Unsqueeze", "appears twice");
  expectNodeError([&] { oneNode("Gather", {{"x", x}, {"i", tt(DataType::kI64, {})}}, {}, attrs({{"axis", int64_t(2)}})); },
                  "Gather", "out of range");
  expectNodeError([&] { oneNode("Slice", {{"x", x}}, {{"s", i64({1}, {0})}, {"e", i64({1}, {2})}, {"a", i64({1}, {0})},
                                                      {"t", i64({1}, {0})}}); },
                  "Slice", "steps must not be 0");
  expectNodeError([&] { oneNode("Expand", {{"x", x}}, {{"s", i64({2}, {4, 4})}}); }, "Expand", "cannot expand");
  expectNodeError([&] { oneNode("Pad", {{"x", x}}, {{"p", i64({3}, {1, 1, 1})}}); }, "Pad", "pads has 3 entries");
  expectNodeError([&] { oneNode("Resize", {{"x", x}}, {{"", Tensor()}, {"s", f32({2}, {1, 2})}},
                                attrs({{"mode", std::string("bicubic")}})); },
                  "Resize", "mode must be");
  expectNodeError([&] { oneNode("DepthToSpace", {{"x", tt(DataType::kF32, {1, 6, 2, 2})}}, {},
                                attrs({{"blocksize", int64_t(2)}})); },
                  "DepthToSpace", "not divisible");
  expectNodeError([&] { oneNode("Constant", {}, {}); }, "Constant", "exactly one");
}

TEST(TensorErrors, RuntimeIndexChecksNameTheNode) {
  expectNodeError([] { run("Gather", {{"x", f32({3}, {1, 2, 3})}, {"i", i64({1}, {3})}}); }, "Gather",
                  "out of range");
  expectNodeError([] { run("GatherElements", {{"x", f32({3}, {1, 2, 3})}, {"i", i64({1}, {-4})}}); }, "GatherElements",
                  "out of range");
  expectNodeError([] { run("ScatterND", {{"x", f32({3}, {1, 2, 3})}, {"i", i64({1, 1}, {5})}, {"u", f32({1}, {9})}}); },
                  "ScatterND", "out of range");
  expectNodeError([] { run("Reshape", {{"x", f32({3}, {1, 2, 3})}, {"s", i64({1}, {4})}}); }, "Reshape",
                  "cannot reshape");
  expectNodeError([] { run("ReverseSequence", {{"x", f32({2, 2}, {1, 2, 3, 4})}, {"l", i64({2}, {3, 1})}}); },
                  "ReverseSequence", "out of range");
}

// ---------------------------------------------------------------- numbers

TEST(TensorKernels, OddShapeTransposeAndSlice) {
  Tensor x = iota(DataType::kI32, {7, 1, 13});
  auto t = run("Transpose", {{"x", x}}, {}, attrs({{"perm", std::vector<int64_t>{2, 0, 1}}}))[0];
  ASSERT_EQ(t.dims(), (std::vector<int64_t>{13, 7, 1}));
  EXPECT_EQ(t.getDouble(5 * 7 + 3), double(3 * 13 + 5));
  auto s = run("Slice", {{"x", x}}, {{"s", i64({2}, {-1, 11})}, {"e", i64({2}, {-100, 2})}, {"a", i64({2}, {0, 2})},
                                     {"st", i64({2}, {-3, -4})}})[0];
  ASSERT_EQ(s.dims(), (std::vector<int64_t>{3, 1, 3}));  // rows 6,3,0; cols 11,7,3
  EXPECT_EQ(values(s), (std::vector<double>{89, 85, 81, 50, 46, 42, 11, 7, 3}));
}

TEST(TensorKernels, PadModesBeyondTheEdge) {
  Tensor x = f32({3}, {1, 2, 3});
  auto reflect = run("Pad", {{"x", x}}, {{"p", i64({2}, {4, 4})}}, attrs({{"mode", std::string("reflect")}}))[0];
  EXPECT_EQ(values(reflect), (std::vector<double>{1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3}));  // numpy 'reflect'
  auto edge = run("Pad", {{"x", x}}, {{"p", i64({2}, {2, -1})}}, attrs({{"mode", std::string("edge")}}))[0];
  EXPECT_EQ(values(edge), (std::vector<double>{1, 1, 1, 2}));
  auto wrap = run("Pad", {{"x", x}}, {{"p", i64({2}, {2, 3})}}, attrs({{"mode", std::string("wrap")}}))[0];
  EXPECT_EQ(values(wrap), (std::vector<double>{2, 3, 1, 2, 3, 1, 2, 3}));
  auto cst = run("Pad", {{"x", iota(DataType::kI8, {2, 2})}}, {{"p", i64({2}, {1, 1})}, {"c", Tensor::scalar<int8_t>(DataType::kI8, -5)},
                                                          {"a", i64({1}, {-1})}})[0];
  EXPECT_EQ(values(cst), (std::vector<double>{-5, 0, 1, -5, -5, 2, 3, -5}));
}

TEST(TensorKernels, UniqueAlongAnAxis) {
  Tensor x = f32({3, 4}, {1, 2, 1, 2, 3, 4, 3, 4, 1, 2, 1, 2});
  auto outs = run("Unique", {{"x", x}}, {}, attrs({{"axis", int64_t(1)}}), 4);
  ASSERT_EQ(outs[0].dims(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(values(outs[0]), (std::vector<double>{1, 2, 3, 4, 1, 2}));
  EXPECT_EQ(values(outs[1]), (std::vector<double>{0, 1}));
  EXPECT_EQ(values(outs[2]), (std::vector<double>{0, 1, 0, 1}));
  EXPECT_EQ(values(outs[3]), (std::vector<double>{2, 2}));
  auto unsorted = run("Unique", {{"x", i64({6}, {5, 1, 5, 3, 1, 9})}}, {}, attrs({{"sorted", int64_t(0)}}), 4);
  EXPECT_EQ(values(unsorted[0]), (std::vector<double>{5, 1, 3, 9}));
  EXPECT_EQ(values(unsorted[2]), (std::vector<double>{0, 1, 0, 2, 1, 3}));
}

TEST(TensorKernels, ResizeCubicOnOneAxisAndIntNearest) {
  // Values from ONNX's reference implementation (cubic, half_pixel, axes=[3], sizes [3]).
  Tensor x = f32({1, 1, 1, 7}, {0, 1, 4, 9, 16, 25, 36});
  auto y = run("Resize", {{"x", x}}, {{"", Tensor()}, {"", Tensor()}, {"z", i64({1}, {3})}},
               attrs({{"mode", std::string("cubic")}, {"axes", std::vector<int64_t>{3}}}))[0];
  expectNear(y, {0.35185185, 9.0, 29.462963}, 1e-5);
  Tensor u8 = Tensor::fromVector<uint8_t>(DataType::kU8, {1, 2}, {10, 200});
  auto z = run("Resize", {{"x", u8}}, {{"", Tensor()}, {"s", f32({2}, {1, 2})}},
               attrs({{"coordinate_transformation_mode", std::string("asymmetric")}}))[0];
  EXPECT_EQ(z.dtype(), DataType::kU8);
  EXPECT_EQ(values(z), (std::vector<double>{10, 10, 200, 200}));
}

TEST(TensorKernels, ScatterReductionsAndOneHot) {
  auto y = run("ScatterElements", {{"x", i64({4}, {1, 1, 1, 1})}, {"i", i64({3}, {1, 1, -1})}, {"u", i64({3}, {5, 7, 2})}},
               {}, attrs({{"reduction", std::string("mul")}}))[0];
  EXPECT_EQ(values(y), (std::vector<double>{1, 35, 1, 2}));
  auto oh = run("OneHot", {{"i", f32({3}, {1.7f, -1, 9})}},
                {{"d", Tensor::scalar<float>(DataType::kF32, 3.0f)}, {"v", i64({2}, {-1, 4})}})[0];
  EXPECT_EQ(values(oh), (std::vector<double>{-1, 4, -1, -1, -1, 4, -1, -1, -1}));
}

TEST(TensorKernels, SmallOpsWithoutNodeTests) {
  auto e = run("EyeLike", {{"x", f32({2, 3}, {0, 0, 0, 0, 0, 0})}}, {}, attrs({{"k", int64_t(-1)}, {"dtype", int64_t(9)}}))[0];
  EXPECT_EQ(e.dtype(), DataType::kBool);
  EXPECT_EQ(values(e), (std::vector<double>{0, 0, 0, 1, 0, 0}));
  auto tr = run("Trilu", {{"x", iota(DataType::kI64, {2, 2, 3})}}, {{"k", Tensor::scalar<int64_t>(DataType::kI64, 1)}},
                attrs({{"upper", int64_t(0)}}))[0];
  EXPECT_EQ(values(tr), (std::vector<double>{0, 1, 0, 3, 4, 5, 6, 7, 0, 9, 10, 11}));
  auto c = run("Compress", {{"x", iota(DataType::kF32, {2, 3})}, {"c", Tensor::fromVector<uint8_t>(DataType::kBool, {4}, {0, 1, 0, 1})}})[0];
  EXPECT_EQ(values(c), (std::vector<double>{1, 3}));
  auto strs = Tensor(DataType::kString, {2, 2});
  for (int i = 0; i < 4; ++i) strs.data<std::string>()[i] = std::string(1, char('a' + i));
  auto ts = run("Transpose", {{"s", strs}})[0];
  EXPECT_EQ(ts.str(1), "c");
  auto nz = run("NonZero", {{"s", strs}})[0];
  EXPECT_EQ(nz.dims(), (std::vector<int64_t>{2, 4}));
  auto d = run("Dropout", {{"x", f32({3}, {1, 2, 3})}}, {}, {}, 2);
  EXPECT_EQ(values(d[0]), (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(values(d[1]), (std::vector<double>{1, 1, 1}));
}

// ---------------------------------------------------------------- importers

namespace {

onnx::ValueInfoProto vi(const std::string& name, int elem, std::vector<int64_t> dims) {
  onnx::ValueInfoProto v;
  v.set_name(name);
  auto* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(elem);
  if (dims == std::vector<int64_t>{-2}) return v;  // no shape
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

// One node n0 (x -> y, f32) at a model opset.
OnnxNode onnxModel(int opset, const std::string& op, std::vector<int64_t> xdims) {
  OnnxNode r;
  r.m.set_ir_version(7);
  auto* os = r.m.add_opset_import();
  os->set_domain("");
  os->set_version(opset);
  r.g = r.m.mutable_graph();
  r.g->set_name("g");
  r.node = r.g->add_node();
  r.node->set_op_type(op);
  r.node->set_name("n0");
  r.node->add_input("x");
  r.node->add_output("y");
  *r.g->add_input() = vi("x", onnx::TensorProto::FLOAT, xdims);
  *r.g->add_output() = vi("y", onnx::TensorProto::FLOAT, {-2});
  return r;
}

void intsAttr(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
void floatAttr(onnx::NodeProto* n, const std::string& name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
void floatsAttr(onnx::NodeProto* n, const std::string& name, std::vector<float> v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOATS);
  for (float x : v) a->add_floats(x);
}
void stringAttr(onnx::NodeProto* n, const std::string& name, const std::string& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(v);
}

anvil::ir::Model parse(const OnnxNode& m) { return anvil::parser::parseOnnxBytes(m.m.SerializeAsString(), ""); }

}  // namespace

TEST(TensorImport, SliceOpset9AttributesBecomeInputs) {
  auto m = onnxModel(9, "Slice", {-1, 5});
  intsAttr(m.node, "starts", {1});
  intsAttr(m.node, "ends", {-1});
  intsAttr(m.node, "axes", {1});
  auto model = parse(m);
  EXPECT_EQ(typeOf(*model.graph), "f32[N,3]");
  auto out = Interpreter::run(*model.graph, {{"x", iota(DataType::kF32, {2, 5})}});
  EXPECT_EQ(values(out[0]), (std::vector<double>{1, 2, 3, 6, 7, 8}));
}

TEST(TensorImport, PadOpset2AndReshapeOpset4) {
  auto m = onnxModel(2, "Pad", {2});
  intsAttr(m.node, "pads", {1, 2});
  floatAttr(m.node, "value", 9.5f);
  auto model = parse(m);
  EXPECT_EQ(typeOf(*model.graph), "f32[5]");
  auto out = Interpreter::run(*model.graph, {{"x", f32({2}, {1, 2})}});
  EXPECT_EQ(values(out[0]), (std::vector<double>{9.5, 1, 2, 9.5, 9.5}));

  auto r = onnxModel(4, "Reshape", {-1, 2, 3});
  intsAttr(r.node, "shape", {0, -1});
  auto rm = parse(r);
  EXPECT_EQ(typeOf(*rm.graph), "f32[N,6]");
}

TEST(TensorImport, SqueezeOpset11AndConcatOpset3DefaultAxis) {
  auto m = onnxModel(11, "Squeeze", {-1, 1, 3});
  intsAttr(m.node, "axes", {-2});
  EXPECT_EQ(typeOf(*parse(m).graph), "f32[N,3]");

  auto c = onnxModel(3, "Concat", {2, 3});
  c.node->add_input("x");
  EXPECT_EQ(typeOf(*parse(c).graph), "f32[2,6]");  // axis defaults to 1 before opset 4
}

TEST(TensorImport, UpsampleAndResize10UseAsymmetricCoordinates) {
  auto m = onnxModel(7, "Upsample", {1, 1, 2, 2});
  floatsAttr(m.node, "scales", {1, 1, 2, 2});
  stringAttr(m.node, "mode", "linear");
  auto model = parse(m);
  EXPECT_EQ(typeOf(*model.graph), "f32[1,1,4,4]");
  auto out = Interpreter::run(*model.graph, {{"x", f32({1, 1, 2, 2}, {1, 2, 3, 4})}});
  expectNear(out[0], {1, 1.5, 2, 2, 2, 2.5, 3, 3, 3, 3.5, 4, 4, 3, 3.5, 4, 4});

  auto r = onnxModel(10, "Resize", {1, 1, 2, 2});
  r.node->add_input("scales");
  auto* s = r.g->add_initializer();
  s->set_name("scales");
  s->set_data_type(onnx::TensorProto::FLOAT);
  s->add_dims(4);
  for (float v : {1.0f, 1.0f, 1.5f, 1.5f}) s->add_float_data(v);
  auto rm = parse(r);
  EXPECT_EQ(typeOf(*rm.graph), "f32[1,1,3,3]");
  auto ro = Interpreter::run(*rm.graph, {{"x", f32({1, 1, 2, 2}, {1, 2, 3, 4})}});
  EXPECT_EQ(values(ro[0]), (std::vector<double>{1, 1, 2, 1, 1, 2, 3, 3, 4}));
}

TEST(TensorImport, DropoutOpset6DropsTrainingAttributes) {
  auto m = onnxModel(6, "Dropout", {3});
  floatAttr(m.node, "ratio", 0.3f);
  auto* a = m.node->add_attribute();
  a->set_name("is_test");
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(1);
  auto model = parse(m);
  auto out = Interpreter::run(*model.graph, {{"x", f32({3}, {1, 2, 3})}});
  EXPECT_EQ(values(out[0]), (std::vector<double>{1, 2, 3}));
}

TEST(TensorImport, SplitOpset2Attribute) {
  auto m = onnxModel(2, "Split", {5});
  m.node->add_output("y2");
  *m.g->add_output() = vi("y2", onnx::TensorProto::FLOAT, {-2});
  intsAttr(m.node, "split", {2, 3});
  auto model = parse(m);
  EXPECT_EQ(typeOf(*model.graph, 0), "f32[2]");
  EXPECT_EQ(typeOf(*model.graph, 1), "f32[3]");
}
