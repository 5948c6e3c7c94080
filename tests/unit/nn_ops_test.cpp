// The nn family beyond the ONNX node tests: symbolic-dim inference (a batch N stays N),
// odd shapes checked against naive direct loops written here (Conv and ConvTranspose in
// 1-D/2-D/3-D with groups, dilations, strides and asymmetric pads; batch-broadcast MatMul),
// narrow and integer types, errors that name the node, hand-checked numbers for ops
// without node tests (MaxRoiPool, GlobalLpPool, per-channel ConvInteger, blocked and 4-bit
// quantization, MaxPool storage_order) and the importers' upgrades of old opsets.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include "tests/unit/op_test_util.h"
#include "cpu/reference.h"
#include "ir/op_schema.h"
#include "parser/onnx_parser.h"

using anvil::Error;
using namespace anvil::ir;
using anvil::cpu::Interpreter;

namespace {

Dim sym(const char* s) { return Dim::symbol(s); }
TensorType tt(DataType dt, std::vector<Dim> dims) { return {dt, Shape(std::move(dims))}; }

using anvil::testing::In;
using anvil::testing::oneNode;

// Output types after inference of one node over inputs of the given types.
std::vector<std::string> infer(const std::string& op, const std::vector<TensorType>& types, const Attributes& a = {},
                               int nout = 1) {
  std::vector<In> ins;
  for (size_t i = 0; i < types.size(); ++i) ins.push_back({"x" + std::to_string(i), types[i], std::nullopt});
  auto g = oneNode(op, ins, a, nout);
  std::vector<std::string> out;
  for (const Value* v : g->outputs()) out.push_back(v->type().str());
  return out;
}

Tensor f32(std::vector<int64_t> dims, std::vector<float> v) { return Tensor::fromVector<float>(DataType::kF32, dims, v); }
Tensor i64(std::vector<int64_t> dims, std::vector<int64_t> v) {
  return Tensor::fromVector<int64_t>(DataType::kI64, dims, v);
}
template <typename T>
Tensor typed(DataType dt, std::vector<int64_t> dims, std::vector<T> v) {
  return Tensor::fromVector<T>(dt, dims, v);
}

// Runs one node on concrete inputs; names in `constIns` become initializers.
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
using Ints = std::vector<int64_t>;

std::vector<double> values(const Tensor& t) {
  std::vector<double> v;
  for (int64_t i = 0; i < t.numel(); ++i) v.push_back(t.getDouble(i));
  return v;
}

void expectNear(const Tensor& t, const std::vector<double>& want, double tol = 1e-4) {
  ASSERT_EQ(t.numel(), int64_t(want.size())) << t.summary();
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(t.getDouble(int64_t(i)), want[i], tol * std::max(1.0, std::fabs(want[i]))) << "element " << i;
}

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

std::vector<float> randomVec(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

int64_t prod(const Ints& d) {
  int64_t p = 1;
  for (int64_t x : d) p *= x;
  return p;
}

// Visits every multi-index of `dims` in row-major order.
void forEachIndex(const Ints& dims, const std::function<void(const Ints&)>& f) {
  Ints idx(dims.size(), 0);
  for (int64_t n = 0, total = prod(dims); n < total; ++n) {
    f(idx);
    for (size_t i = dims.size(); i-- > 0;) {
      if (++idx[i] < dims[i]) break;
      idx[i] = 0;
    }
  }
}

int64_t flat(const Ints& dims, const Ints& idx) {
  int64_t o = 0;
  for (size_t i = 0; i < dims.size(); ++i) o = o * dims[i] + idx[i];
  return o;
}

struct ConvCase {
  Ints x, w;  // [N,C,spatial...], [M,C/group,k...]
  Ints strides, pads, dilations;
  int64_t group;
};

// Direct convolution by definition, in double.
std::vector<double> naiveConv(const ConvCase& c, const std::vector<float>& x, const std::vector<float>& w,
                              const std::vector<float>& b, Ints* outDims) {
  const size_t r = c.x.size() - 2;
  const int64_t M = c.w[0], cg = c.w[1], mg = M / c.group;
  Ints out{c.x[0], M};
  for (size_t i = 0; i < r; ++i)
    out.push_back((c.x[2 + i] + c.pads[i] + c.pads[i + r] - (c.w[2 + i] - 1) * c.dilations[i] - 1) / c.strides[i] + 1);
  *outDims = out;
  std::vector<double> y(size_t(prod(out)), 0.0);
  Ints kdims(c.w.begin() + 2, c.w.end());
  forEachIndex(out, [&](const Ints& o) {
    const int64_t n = o[0], m = o[1], g = m / mg;
    double acc = b.empty() ? 0.0 : b[size_t(m)];
    for (int64_t cl = 0; cl < cg; ++cl)
      forEachIndex(kdims, [&](const Ints& k) {
        Ints xi{n, g * cg + cl};
        for (size_t i = 0; i < r; ++i) {
          int64_t p = o[2 + i] * c.strides[i] - c.pads[i] + k[i] * c.dilations[i];
          if (p < 0 || p >= c.x[2 + i]) return;
          xi.push_back(p);
        }
        Ints wi{m, cl};
        wi.insert(wi.end(), k.begin(), k.end());
        acc += double(x[size_t(flat(c.x, xi))]) * double(w[size_t(flat(c.w, wi))]);
      });
    y[size_t(flat(out, o))] = acc;
  });
  return y;
}

// Transposed convolution by definition (scatter), in double. W is [C, M/group, k...].
std::vector<double> naiveConvTranspose(const ConvCase& c, const Ints& outPad, const std::vector<float>& x,
                                       const std::vector<float>& w, Ints* outDims) {
  const size_t r = c.x.size() - 2;
  const int64_t C = c.x[1], cg = C / c.group, mg = c.w[1];
  Ints out{c.x[0], mg * c.group};
  for (size_t i = 0; i < r; ++i)
    out.push_back(c.strides[i] * (c.x[2 + i] - 1) + outPad[i] + (c.w[2 + i] - 1) * c.dilations[i] + 1 - c.pads[i] -
                  c.pads[i + r]);
  *outDims = out;
  std::vector<double> y(size_t(prod(out)), 0.0);
  Ints kdims(c.w.begin() + 2, c.w.end());
  forEachIndex(c.x, [&](const Ints& xi) {
    const int64_t n = xi[0], ch = xi[1], g = ch / cg;
    const double xv = x[size_t(flat(c.x, xi))];
    for (int64_t ml = 0; ml < mg; ++ml)
      forEachIndex(kdims, [&](const Ints& k) {
        Ints oi{n, g * mg + ml};
        for (size_t i = 0; i < r; ++i) {
          int64_t p = xi[2 + i] * c.strides[i] - c.pads[i] + k[i] * c.dilations[i];
          if (p < 0 || p >= out[2 + i]) return;
          oi.push_back(p);
        }
        Ints wi{ch, ml};
        wi.insert(wi.end(), k.begin(), k.end());
        y[size_t(flat(out, oi))] += xv * double(w[size_t(flat(c.w, wi))]);
      });
  });
  return y;
}

// --- ONNX model building for importer tests ---

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

void intAttr(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
void floatAttr(onnx::NodeProto* n, const std::string& name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
void intsAttr(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

}  // namespace

// ---------------------------------------------------------------- inference

TEST(NnInfer, ConvKeepsSymbolicBatch) {
  auto a = attrs({{"strides", Ints{2, 2}}, {"pads", Ints{3, 3, 3, 3}}});
  EXPECT_EQ(infer("Conv", {tt(DataType::kF32, {sym("N"), 3, 224, 224}), tt(DataType::kF32, {64, 3, 7, 7})}, a)[0],
            "f32[N,64,112,112]");
  // kernel_shape from W, bias, dilations, asymmetric pads.
  EXPECT_EQ(infer("Conv", {tt(DataType::kF64, {sym("B"), 4, 13}), tt(DataType::kF64, {6, 2, 3}),
                           tt(DataType::kF64, {6})},
                  attrs({{"dilations", Ints{2}}, {"pads", Ints{1, 0}}, {"group", int64_t(2)}}))[0],
            "f64[B,6,10]");
}

TEST(NnInfer, ConvSymbolicSpatial) {
  // SAME with stride 1 keeps a symbolic extent; a strided window cannot.
  EXPECT_EQ(infer("Conv", {tt(DataType::kF32, {sym("N"), 3, sym("H"), 7}), tt(DataType::kF32, {5, 3, 3, 3})},
                  attrs({{"auto_pad", std::string("SAME_UPPER")}}))[0],
            "f32[N,5,H,7]");
  EXPECT_EQ(infer("Conv", {tt(DataType::kF32, {sym("N"), 3, sym("H"), 7}), tt(DataType::kF32, {5, 3, 1, 1})})[0],
            "f32[N,5,H,7]");
  EXPECT_EQ(infer("Conv", {tt(DataType::kF32, {sym("N"), 3, sym("H"), 7}), tt(DataType::kF32, {5, 3, 3, 3})},
                  attrs({{"strides", Ints{2, 2}}, {"auto_pad", std::string("SAME_LOWER")}}))[0],
            "f32[N,5,?,4]");
  EXPECT_EQ(infer("Conv", {tt(DataType::kF32, {sym("N"), 3, 7, 7}), tt(DataType::kF32, {5, 3, 3, 3})},
                  attrs({{"auto_pad", std::string("VALID")}, {"strides", Ints{2, 2}}}))[0],
            "f32[N,5,3,3]");
}

TEST(NnInfer, MatMulNumpySemantics) {
  EXPECT_EQ(infer("MatMul", {tt(DataType::kF32, {sym("N"), 16, 64}), tt(DataType::kF32, {64, 128})})[0],
            "f32[N,16,128]");
  EXPECT_EQ(infer("MatMul", {tt(DataType::kF32, {7}), tt(DataType::kF32, {7, 5})})[0], "f32[5]");
  EXPECT_EQ(infer("MatMul", {tt(DataType::kF32, {sym("B"), 3, 7}), tt(DataType::kF32, {7})})[0], "f32[B,3]");
  EXPECT_EQ(infer("MatMul", {tt(DataType::kF32, {7}), tt(DataType::kF32, {7})})[0], "f32[]");
  EXPECT_EQ(infer("MatMul", {tt(DataType::kF16, {2, 1, 3, 5}), tt(DataType::kF16, {4, 5, 7})})[0], "f16[2,4,3,7]");
  EXPECT_EQ(infer("MatMulInteger", {tt(DataType::kU8, {sym("N"), 3, 4}), tt(DataType::kI8, {4, 2})})[0],
            "i32[N,3,2]");
}

TEST(NnInfer, GemmAndPools) {
  EXPECT_EQ(infer("Gemm", {tt(DataType::kF32, {64, sym("M")}), tt(DataType::kF32, {10, 64}), tt(DataType::kF32, {10})},
                  attrs({{"transA", int64_t(1)}, {"transB", int64_t(1)}}))[0],
            "f32[M,10]");
  EXPECT_EQ(infer("MaxPool", {tt(DataType::kF32, {sym("N"), 64, 112, 112})},
                  attrs({{"kernel_shape", Ints{3, 3}}, {"strides", Ints{2, 2}}, {"pads", Ints{1, 1, 1, 1}}}), 2),
            (std::vector<std::string>{"f32[N,64,56,56]", "i64[N,64,56,56]"}));
  // ceil_mode: 5 with k=2,s=2 gives 3; 4 + end pad 1 would give 3, but the last window
  // would start in the end padding, so it is dropped.
  EXPECT_EQ(infer("AveragePool", {tt(DataType::kF32, {1, 1, 5, 4})},
                  attrs({{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}, {"ceil_mode", int64_t(1)},
                         {"pads", Ints{0, 0, 0, 1}}}))[0],
            "f32[1,1,3,2]");
  EXPECT_EQ(infer("GlobalAveragePool", {tt(DataType::kF32, {sym("N"), 7, sym("H"), sym("W")})})[0],
            "f32[N,7,1,1]");
  EXPECT_EQ(infer("GlobalLpPool", {tt(DataType::kF16, {sym("N"), 7, 3})})[0], "f16[N,7,1]");
}

TEST(NnInfer, ConvTransposeShapes) {
  // out = s*(in-1) + output_padding + (k-1)*d + 1 - pads
  EXPECT_EQ(infer("ConvTranspose", {tt(DataType::kF32, {sym("N"), 1, 3, 3}), tt(DataType::kF32, {1, 2, 3, 3})},
                  attrs({{"strides", Ints{3, 2}}, {"output_padding", Ints{1, 1}}}))[0],
            "f32[N,2,10,8]");
  EXPECT_EQ(infer("ConvTranspose", {tt(DataType::kF32, {1, 4, 3, 3}), tt(DataType::kF32, {4, 3, 3, 3})},
                  attrs({{"group", int64_t(2)}, {"output_shape", Ints{10, 8}}, {"strides", Ints{3, 2}}}))[0],
            "f32[1,6,10,8]");
  EXPECT_EQ(infer("ConvTranspose", {tt(DataType::kF32, {1, 1, 5}), tt(DataType::kF32, {1, 1, 3})},
                  attrs({{"strides", Ints{2}}, {"auto_pad", std::string("SAME_UPPER")}}))[0],
            "f32[1,1,10]");
}

TEST(NnInfer, QuantTypes) {
  EXPECT_EQ(infer("QuantizeLinear", {tt(DataType::kF32, {sym("N"), 3}), tt(DataType::kF32, {})})[0], "u8[N,3]");
  EXPECT_EQ(infer("QuantizeLinear", {tt(DataType::kF32, {sym("N"), 3}), tt(DataType::kF32, {3}),
                                     tt(DataType::kI4, {3})})[0],
            "i4[N,3]");
  EXPECT_EQ(infer("QuantizeLinear", {tt(DataType::kF16, {2, 3}), tt(DataType::kF16, {})},
                  attrs({{"output_dtype", int64_t(DataType::kF8E4M3FN)}}))[0],
            "f8e4m3fn[2,3]");
  EXPECT_EQ(infer("DequantizeLinear", {tt(DataType::kI8, {sym("N"), 4}), tt(DataType::kBF16, {})})[0], "bf16[N,4]");
  EXPECT_EQ(infer("DynamicQuantizeLinear", {tt(DataType::kF32, {sym("N"), 4})}, {}, 3),
            (std::vector<std::string>{"u8[N,4]", "f32[]", "u8[]"}));
  EXPECT_EQ(infer("QLinearMatMul", {tt(DataType::kU8, {sym("N"), 2, 4}), tt(DataType::kF32, {}),
                                    tt(DataType::kU8, {}), tt(DataType::kU8, {4, 3}), tt(DataType::kF32, {}),
                                    tt(DataType::kU8, {}), tt(DataType::kF32, {}), tt(DataType::kI8, {})})[0],
            "i8[N,2,3]");
}

TEST(NnInfer, RoiAndCol2Im) {
  EXPECT_EQ(infer("RoiAlign", {tt(DataType::kF32, {sym("N"), 8, 10, 10}), tt(DataType::kF32, {sym("R"), 4}),
                               tt(DataType::kI64, {sym("R")})},
                  attrs({{"output_height", int64_t(3)}, {"output_width", int64_t(2)}}))[0],
            "f32[R,8,3,2]");
  EXPECT_EQ(infer("MaxRoiPool", {tt(DataType::kF32, {1, 8, 10, 10}), tt(DataType::kF32, {5, 5})},
                  attrs({{"pooled_shape", Ints{2, 3}}}))[0],
            "f32[5,8,2,3]");
  auto g = oneNode("Col2Im",
                   {{"x", tt(DataType::kF32, {sym("N"), 12, 6}), std::nullopt},
                    {"image", {}, i64({2}, {3, 4})},
                    {"block", {}, i64({2}, {2, 2})}},
                   {});
  EXPECT_EQ(g->outputs()[0]->type().str(), "f32[N,3,3,4]");
}

// ---------------------------------------------------------------- errors

TEST(NnErrors, ShapeMismatchesNameTheNode) {
  expectNodeError([] { infer("Conv", {tt(DataType::kF32, {1, 3, 5, 5}), tt(DataType::kF32, {2, 4, 3, 3})}); },
                  "Conv", "channels");
  expectNodeError([] { infer("MatMul", {tt(DataType::kF32, {2, 3}), tt(DataType::kF32, {4, 5})}); }, "MatMul",
                  "inner dims");
  expectNodeError(
      [] { infer("Gemm", {tt(DataType::kF32, {2, 3}), tt(DataType::kF32, {3, 5}), tt(DataType::kF32, {3})}); },
      "Gemm", "does not broadcast");
  expectNodeError([] {
    infer("MaxPool", {tt(DataType::kF32, {1, 1, 4, 4})},
          attrs({{"kernel_shape", Ints{2, 2}}, {"auto_pad", std::string("SAME")}}));
  }, "MaxPool", "auto_pad");
  expectNodeError([] { infer("AveragePool", {tt(DataType::kF32, {1, 1, 4, 4})}); }, "AveragePool",
                  "kernel_shape is required");
  expectNodeError([] {
    infer("AveragePool", {tt(DataType::kF32, {1, 1, 4, 4})}, attrs({{"kernel_shape", Ints{7, 1}}}));
  }, "AveragePool", "larger than the padded input");
  expectNodeError([] {
    infer("QuantizeLinear", {tt(DataType::kF32, {2, 3}), tt(DataType::kF32, {3})}, attrs({{"axis", int64_t(5)}}));
  }, "QuantizeLinear", "axis");
  expectNodeError([] {
    infer("DequantizeLinear", {tt(DataType::kU8, {2, 3}), tt(DataType::kF32, {4})}, attrs({{"axis", int64_t(1)}}));
  }, "DequantizeLinear", "scale");
  expectNodeError([] { infer("Conv", {tt(DataType::kF32, {1, 3}), tt(DataType::kF32, {2, 3})}); }, "Conv",
                  "rank");
}

TEST(NnErrors, RuntimeChecksNameTheNode) {
  expectNodeError([] {
    run("RoiAlign", {{"x", f32({1, 1, 2, 2}, {1, 2, 3, 4})}, {"rois", f32({1, 4}, {0, 0, 1, 1})},
                     {"b", i64({1}, {3})}});
  }, "RoiAlign", "batch index 3");
  expectNodeError([] {
    run("MaxUnpool", {{"x", f32({1, 1, 1, 1}, {5})}, {"i", i64({1, 1, 1, 1}, {9})}},
        attrs({{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}}));
  }, "MaxUnpool", "index 9");
  expectNodeError([] {
    run("MaxRoiPool", {{"x", f32({1, 1, 2, 2}, {1, 2, 3, 4})}, {"rois", f32({1, 5}, {2, 0, 0, 1, 1})}},
        attrs({{"pooled_shape", Ints{1, 1}}}));
  }, "MaxRoiPool", "batch index");
}

// ---------------------------------------------------------------- numbers vs naive loops

TEST(NnConv, MatchesDirectConvolutionOnOddShapes) {
  const std::vector<ConvCase> cases = {
      {{2, 3, 13}, {5, 3, 3}, {2}, {1, 2}, {1}, 1},
      {{1, 4, 7, 5}, {6, 2, 3, 2}, {1, 2}, {2, 0, 1, 1}, {2, 1}, 2},
      {{1, 6, 7, 7}, {6, 1, 3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, 6},  // depthwise
      {{1, 2, 5, 4, 3}, {3, 2, 2, 3, 1}, {1, 1, 2}, {0, 1, 0, 1, 0, 1}, {2, 1, 1}, 1},
      {{1, 5, 1, 1}, {7, 5, 1, 1}, {1, 1}, {0, 0, 0, 0}, {1, 1}, 1},  // pointwise
      {{3, 2, 11, 1}, {4, 2, 5, 1}, {3, 1}, {0, 3, 0, 0}, {1, 1}, 1},
  };
  unsigned seed = 1;
  for (const ConvCase& c : cases) {
    auto x = randomVec(prod(c.x), seed++), w = randomVec(prod(c.w), seed++), b = randomVec(c.w[0], seed++);
    Ints outDims;
    auto want = naiveConv(c, x, w, b, &outDims);
    auto a = attrs({{"strides", c.strides}, {"pads", c.pads}, {"dilations", c.dilations}, {"group", c.group}});
    auto got = run("Conv", {{"x", f32(c.x, x)}, {"w", f32(c.w, w)}, {"b", f32({c.w[0]}, b)}}, a, 1, {"w", "b"});
    EXPECT_EQ(got[0].dims(), outDims);
    expectNear(got[0], want);
    // f64 and f16 run the same loops.
    std::vector<double> xd(x.begin(), x.end()), wd(w.begin(), w.end());
    auto gotD = run("Conv", {{"x", typed<double>(DataType::kF64, c.x, xd)}, {"w", typed<double>(DataType::kF64, c.w, wd)}},
                    a);
    expectNear(gotD[0], naiveConv(c, x, w, {}, &outDims), 1e-9);
  }
}

TEST(NnConv, HalfAccumulatesInFloat) {
  std::vector<Half> x, w;
  for (int i = 0; i < 64; ++i) x.emplace_back(1.0f + 1.0f / 1024);  // sum of 64 of these is not exact in f16 steps
  for (int i = 0; i < 64; ++i) w.emplace_back(1.0f);
  auto got = run("Conv", {{"x", typed<Half>(DataType::kF16, {1, 64, 1}, x)}, {"w", typed<Half>(DataType::kF16, {1, 64, 1}, w)}});
  EXPECT_EQ(got[0].dtype(), DataType::kF16);
  EXPECT_NEAR(got[0].getDouble(0), 64.0625, 1e-3);
}

TEST(NnConv, ConvTransposeMatchesScatter) {
  struct TCase {
    ConvCase c;
    Ints outPad;
  };
  const std::vector<TCase> cases = {
      {{{1, 2, 5}, {2, 3, 3}, {2}, {1, 0}, {1}, 1}, {1}},
      {{{2, 4, 3, 4}, {4, 2, 3, 2}, {2, 3}, {1, 0, 0, 2}, {1, 2}, 2}, {1, 0}},
      {{{1, 1, 2, 3, 2}, {1, 2, 2, 2, 3}, {1, 2, 1}, {0, 0, 0, 0, 1, 1}, {2, 1, 1}, 1}, {0, 1, 0}},
  };
  unsigned seed = 40;
  for (const TCase& t : cases) {
    auto x = randomVec(prod(t.c.x), seed++), w = randomVec(prod(t.c.w), seed++);
    Ints outDims;
    auto want = naiveConvTranspose(t.c, t.outPad, x, w, &outDims);
    auto a = attrs({{"strides", t.c.strides}, {"pads", t.c.pads}, {"dilations", t.c.dilations}, {"group", t.c.group},
                    {"output_padding", t.outPad}});
    auto got = run("ConvTranspose", {{"x", f32(t.c.x, x)}, {"w", f32(t.c.w, w)}}, a);
    EXPECT_EQ(got[0].dims(), outDims);
    expectNear(got[0], want);
  }
}

TEST(NnConv, ConvTransposeSameCropsUpperOrLower) {
  // x = [1,2], w = [1,1,1], stride 2: the full output is [1,1,3,2,2]; SAME wants 4 values.
  auto run1 = [](const char* pad) {
    return run("ConvTranspose", {{"x", f32({1, 1, 2}, {1, 2})}, {"w", f32({1, 1, 3}, {1, 1, 1})}},
               attrs({{"strides", Ints{2}}, {"auto_pad", std::string(pad)}}))[0];
  };
  expectNear(run1("SAME_UPPER"), {1, 1, 3, 2});
  expectNear(run1("SAME_LOWER"), {1, 3, 2, 2});
  // output_shape one larger than the natural extent: total padding -1 split with floor
  // division as the ONNX reference does (begin 0, end -1): a zero at the end.
  auto big = run("ConvTranspose", {{"x", f32({1, 1, 2}, {1, 2})}, {"w", f32({1, 1, 3}, {1, 1, 1})}},
                 attrs({{"strides", Ints{2}}, {"output_shape", Ints{6}}}));
  expectNear(big[0], {1, 1, 3, 2, 2, 0});
}

TEST(NnConv, DeformConvWithZeroOffsetsIsConv) {
  ConvCase c{{1, 4, 6, 5}, {4, 2, 3, 3}, {1, 2}, {1, 1, 0, 1}, {1, 1}, 2};
  auto x = randomVec(prod(c.x), 7), w = randomVec(prod(c.w), 8);
  Ints outDims;
  auto want = naiveConv(c, x, w, {}, &outDims);
  std::vector<float> off(size_t(2 * 9 * outDims[2] * outDims[3]), 0.0f);
  auto a = attrs({{"strides", c.strides}, {"pads", c.pads}, {"group", c.group}});
  auto got = run("DeformConv", {{"x", f32(c.x, x)}, {"w", f32(c.w, w)}, {"o", f32({1, 18, outDims[2], outDims[3]}, off)}},
                 a);
  expectNear(got[0], want);
  // A whole-pixel offset of +1 in h (channel 0: dh, channel 1: dw) samples one row lower;
  // the last row then samples below the image and reads zeros.
  std::vector<float> x1 = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  auto one = run("DeformConv", {{"x", f32({1, 1, 3, 3}, x1)}, {"w", f32({1, 1, 1, 1}, {2})},
                                {"o", f32({1, 2, 3, 3}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})}},
                 {});
  expectNear(one[0], {8, 10, 12, 14, 16, 18, 0, 0, 0});
}

TEST(NnConv, Col2ImCountsOverlaps) {
  // Col2Im of all-ones columns counts how many 2x2 blocks (stride 1) cover each pixel.
  auto got = run("Col2Im", {{"x", f32({1, 4, 6}, std::vector<float>(24, 1.0f))}, {"i", i64({2}, {3, 4})},
                            {"b", i64({2}, {2, 2})}},
                 {}, 1, {"i", "b"});
  EXPECT_EQ(got[0].dims(), (Ints{1, 1, 3, 4}));
  expectNear(got[0], {1, 2, 2, 1, 2, 4, 4, 2, 1, 2, 2, 1});
}

TEST(NnConv, ConvIntegerPerChannelZeroPoint) {
  // x - 2 = [1,2,3]; w rows - [1, 0] = [[1,1,1],[2,0,255]]
  auto got = run("ConvInteger", {{"x", typed<uint8_t>(DataType::kU8, {1, 1, 3}, {3, 4, 5})},
                                 {"w", typed<uint8_t>(DataType::kU8, {2, 1, 3}, {2, 2, 2, 2, 0, 255})},
                                 {"xz", typed<uint8_t>(DataType::kU8, {}, {2})},
                                 {"wz", typed<uint8_t>(DataType::kU8, {2}, {1, 0})}});
  EXPECT_EQ(got[0].dtype(), DataType::kI32);
  EXPECT_EQ(values(got[0]), (std::vector<double>{6, 2 * 1 + 0 * 2 + 255 * 3}));
}

TEST(NnConv, QLinearConvPerChannelRequantizes) {
  // acc = [10, -4]; y = round(acc * 0.5 * ws / 1) + 3 with ws = [1, 0.25]: [8, 3 + round(-0.5) = 3]
  auto got = run("QLinearConv", {{"x", typed<uint8_t>(DataType::kU8, {1, 1, 1}, {12})},
                                 {"xs", f32({}, {0.5f})},
                                 {"xz", typed<uint8_t>(DataType::kU8, {}, {2})},
                                 {"w", typed<int8_t>(DataType::kI8, {2, 1, 1}, {1, -1})},
                                 {"ws", f32({2}, {1.0f, 0.25f})},
                                 {"wz", typed<int8_t>(DataType::kI8, {2}, {0, 0})},
                                 {"ys", f32({}, {1.0f})},
                                 {"yz", typed<uint8_t>(DataType::kU8, {}, {3})},
                                 {"b", typed<int32_t>(DataType::kI32, {2}, {0, 6})}});
  EXPECT_EQ(values(got[0]), (std::vector<double>{8, 3}));
}

TEST(NnMatMul, BatchBroadcastMatchesNaive) {
  const Ints ad{2, 1, 3, 5}, bd{4, 5, 7};
  auto a = randomVec(prod(ad), 3), b = randomVec(prod(bd), 4);
  auto got = run("MatMul", {{"a", f32(ad, a)}, {"b", f32(bd, b)}});
  ASSERT_EQ(got[0].dims(), (Ints{2, 4, 3, 7}));
  std::vector<double> want;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int m = 0; m < 3; ++m)
        for (int n = 0; n < 7; ++n) {
          double s = 0;
          for (int k = 0; k < 5; ++k) s += double(a[size_t((i * 3 + m) * 5 + k)]) * b[size_t((j * 5 + k) * 7 + n)];
          want.push_back(s);
        }
  expectNear(got[0], want);
}

TEST(NnMatMul, VectorsAndIntegers) {
  auto dot = run("MatMul", {{"a", f32({3}, {1, 2, 3})}, {"b", f32({3}, {4, 5, 6})}});
  EXPECT_EQ(dot[0].rank(), 0u);
  expectNear(dot[0], {32});
  auto mv = run("MatMul", {{"a", f32({2, 3}, {1, 0, 0, 0, 1, 0})}, {"b", f32({3}, {4, 5, 6})}});
  EXPECT_EQ(mv[0].dims(), (Ints{2}));
  expectNear(mv[0], {4, 5});
  auto ints = run("MatMul", {{"a", typed<int64_t>(DataType::kI64, {1, 2}, {3, -4})},
                             {"b", typed<int64_t>(DataType::kI64, {2, 1}, {5, 6})}});
  EXPECT_EQ(values(ints[0]), (std::vector<double>{-9}));
  // Per-row a zero point and per-column b zero point.
  auto mi = run("MatMulInteger", {{"a", typed<uint8_t>(DataType::kU8, {2, 2}, {1, 2, 3, 4})},
                                  {"b", typed<int8_t>(DataType::kI8, {2, 2}, {1, 0, 0, 1})},
                                  {"az", typed<uint8_t>(DataType::kU8, {2}, {1, 2})},
                                  {"bz", typed<int8_t>(DataType::kI8, {2}, {0, 1})}});
  // a - az = [[0,1],[1,2]]; b - bz = [[1,-1],[0,0]]
  EXPECT_EQ(values(mi[0]), (std::vector<double>{0, 0, 1, -1}));
}

TEST(NnMatMul, GemmAttributesAndBroadcastC) {
  // A^T: [[1,2],[3,4]]^T; B^T; alpha 2, beta 0.5, C [1,2] broadcast over rows.
  auto got = run("Gemm", {{"a", f32({2, 2}, {1, 3, 2, 4})}, {"b", f32({2, 2}, {1, 0, 1, 1})}, {"c", f32({1, 2}, {2, 4})}},
                 attrs({{"transA", int64_t(1)}, {"transB", int64_t(1)}, {"alpha", 2.0f}, {"beta", 0.5f}}));
  // A' = [[1,2],[3,4]], B' = [[1,1],[0,1]] -> A'B' = [[1,3],[3,7]]
  expectNear(got[0], {2 + 1, 6 + 2, 6 + 1, 14 + 2});
  auto noC = run("Gemm", {{"a", f32({1, 3}, {1, 2, 3})}, {"b", f32({3, 1}, {1, 1, 1})}});
  expectNear(noC[0], {6});
}

// ---------------------------------------------------------------- pools

TEST(NnPool, MaxPoolIndicesBothStorageOrders) {
  // 1x1x2x3 input, 2x2 window stride 1: outputs [1,1,1,2].
  Tensor x = f32({1, 1, 2, 3}, {1, 9, 2, 8, 3, 7});
  auto row = run("MaxPool", {{"x", x}}, attrs({{"kernel_shape", Ints{2, 2}}}), 2);
  expectNear(row[0], {9, 9});
  EXPECT_EQ(values(row[1]), (std::vector<double>{1, 1}));
  auto col = run("MaxPool", {{"x", x}}, attrs({{"kernel_shape", Ints{2, 2}}, {"storage_order", int64_t(1)}}), 2);
  EXPECT_EQ(values(col[1]), (std::vector<double>{2, 2}));  // h + w*H = 0 + 1*2
  // The flat index includes the batch and channel offset.
  auto two = run("MaxPool", {{"x", f32({2, 1, 1, 2}, {1, 2, 4, 3})}}, attrs({{"kernel_shape", Ints{1, 2}}}), 2);
  EXPECT_EQ(values(two[1]), (std::vector<double>{1, 2}));
}

TEST(NnPool, MaxUnpoolInvertsMaxPoolIndices) {
  Tensor x = f32({1, 1, 4, 4}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
  auto a = attrs({{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}});
  auto pooled = run("MaxPool", {{"x", x}}, a, 2);
  auto un = run("MaxUnpool", {{"y", pooled[0]}, {"i", pooled[1]}}, a);
  expectNear(un[0], {0, 0, 0, 0, 0, 6, 0, 8, 0, 0, 0, 0, 0, 14, 0, 16});
}

TEST(NnPool, AverageAndLpPoolOddShapes) {
  // 1-D, length 7, k=3, s=2, pads 1/1: windows [-1,1], [1,3], [3,5], [5,7]
  Tensor x = f32({1, 1, 7}, {1, 2, 3, 4, 5, 6, 7});
  auto avg = run("AveragePool", {{"x", x}}, attrs({{"kernel_shape", Ints{3}}, {"strides", Ints{2}}, {"pads", Ints{1, 1}}}));
  expectNear(avg[0], {1.5, 3, 5, 6.5});
  auto inc = run("AveragePool", {{"x", x}}, attrs({{"kernel_shape", Ints{3}}, {"strides", Ints{2}}, {"pads", Ints{1, 1}},
                                                    {"count_include_pad", int64_t(1)}}));
  expectNear(inc[0], {1, 3, 5, 13.0 / 3});
  auto lp = run("LpPool", {{"x", f32({1, 1, 3}, {3, -4, 0})}}, attrs({{"kernel_shape", Ints{2}}, {"p", int64_t(1)}}));
  expectNear(lp[0], {7, 4});
  auto glp = run("GlobalLpPool", {{"x", f32({1, 2, 2}, {3, 4, 1, 0})}});
  expectNear(glp[0], {5, 1});
  auto gmax = run("GlobalMaxPool", {{"x", f32({1, 1, 2, 2}, {-3, -1, -2, -5})}});
  expectNear(gmax[0], {-1});
  auto u8 = run("MaxPool", {{"x", typed<uint8_t>(DataType::kU8, {1, 1, 3}, {7, 200, 1})}},
                attrs({{"kernel_shape", Ints{2}}}));
  EXPECT_EQ(values(u8[0]), (std::vector<double>{200, 200}));
}

TEST(NnPool, MaxRoiPoolHandChecked) {
  // 4x4 plane 0..15; roi (x1,y1,x2,y2) = (0,0,3,3) -> 4x4 region, pooled 2x2: quadrant maxima.
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[size_t(i)] = float(i);
  auto got = run("MaxRoiPool", {{"x", f32({1, 1, 4, 4}, v)}, {"r", f32({2, 5}, {0, 0, 0, 3, 3, 0, 2, 2, 3, 3})}},
                 attrs({{"pooled_shape", Ints{2, 2}}}));
  // second roi: x 2..3, y 2..3 -> 2x2 region, one pixel per bin
  expectNear(got[0], {5, 7, 13, 15, 10, 11, 14, 15});
  // spatial_scale 0.5 halves the coordinates (rounded): (0,0,6,6) -> (0,0,3,3)
  auto scaled = run("MaxRoiPool", {{"x", f32({1, 1, 4, 4}, v)}, {"r", f32({1, 5}, {0, 0, 0, 6, 6})}},
                    attrs({{"pooled_shape", Ints{1, 1}}, {"spatial_scale", 0.5f}}));
  expectNear(scaled[0], {15});
}

TEST(NnPool, RoiAlignTransformationModes) {
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[size_t(i)] = float(i);
  // One sample at the bin centre: output_half_pixel samples (1,1)+(0.5,0.5) in a 2x2 ROI.
  auto a = attrs({{"output_height", int64_t(1)}, {"output_width", int64_t(1)}, {"sampling_ratio", int64_t(1)},
                  {"coordinate_transformation_mode", std::string("output_half_pixel")}});
  auto got = run("RoiAlign", {{"x", f32({1, 1, 4, 4}, v)}, {"r", f32({1, 4}, {1, 1, 3, 3})}, {"b", i64({1}, {0})}}, a);
  expectNear(got[0], {2 * 4 + 2});  // centre (2,2)
  a.set("coordinate_transformation_mode", std::string("half_pixel"));
  got = run("RoiAlign", {{"x", f32({1, 1, 4, 4}, v)}, {"r", f32({1, 4}, {1, 1, 3, 3})}, {"b", i64({1}, {0})}}, a);
  expectNear(got[0], {1.5 * 4 + 1.5});  // centre shifted by -0.5
}

TEST(NnPool, RoiAlignBadAndMalformedRois) {
  std::vector<float> v(16, 1.0f);
  expectNodeError([&] {
    run("RoiAlign", {{"x", f32({1, 1, 4, 4}, v)}, {"r", f32({1, 4}, {0, NAN, 1, 1})}, {"b", i64({1}, {0})}});
  }, "RoiAlign", "non-finite");
  expectNodeError([&] {
    run("RoiAlign", {{"x", f32({1, 1, 4, 4}, v)}, {"r", f32({1, 4}, {0, 0, 1e30f, 1e30f})}, {"b", i64({1}, {0})}});
  }, "RoiAlign", "samples");
  // half_pixel keeps an inverted ROI as is: it samples nothing and gives 0.
  auto got = run("RoiAlign", {{"x", f32({1, 1, 4, 4}, v)}, {"r", f32({1, 4}, {3, 3, 1, 1})}, {"b", i64({1}, {0})}});
  expectNear(got[0], {0});
}

// ---------------------------------------------------------------- quantization

TEST(NnQuant, PerAxisBlockedAndFourBit) {
  // Per axis 0 with i8 zero points, rounding half to even and saturation.
  auto q = run("QuantizeLinear", {{"x", f32({2, 3}, {2.5f, 3.5f, 1000, -1, -2, 0.5f})}, {"s", f32({2}, {1, 0.5f})},
                                  {"z", typed<int8_t>(DataType::kI8, {2}, {0, 1})}},
               attrs({{"axis", int64_t(0)}}));
  EXPECT_EQ(q[0].dtype(), DataType::kI8);
  EXPECT_EQ(values(q[0]), (std::vector<double>{2, 4, 127, -1, -3, 2}));
  // Blocked along axis 1, block 2, 3 columns -> 2 blocks (the last one short).
  auto dq = run("DequantizeLinear", {{"x", typed<uint8_t>(DataType::kU8, {1, 3}, {10, 20, 30})},
                                     {"s", f32({1, 2}, {0.5f, 2.0f})},
                                     {"z", typed<uint8_t>(DataType::kU8, {1, 2}, {0, 10})}},
                attrs({{"axis", int64_t(1)}, {"block_size", int64_t(2)}}));
  expectNear(dq[0], {5, 10, 40});
  // 4-bit: packed two per byte, clamped to [-8, 7].
  auto q4 = run("QuantizeLinear", {{"x", f32({3}, {-20, 3, 6})}, {"s", f32({}, {1})}, {"z", typed<uint8_t>(DataType::kI4, {}, {0})}});
  EXPECT_EQ(q4[0].dtype(), DataType::kI4);
  EXPECT_EQ(values(q4[0]), (std::vector<double>{-8, 3, 6}));
  auto back = run("DequantizeLinear", {{"x", q4[0]}, {"s", f32({}, {2})}});
  expectNear(back[0], {-16, 6, 12});
}

TEST(NnQuant, Float8SaturateAndDynamic) {
  auto sat = run("QuantizeLinear", {{"x", f32({2}, {1000, -1000})}, {"s", f32({}, {1})}},
                 attrs({{"output_dtype", int64_t(DataType::kF8E4M3FN)}}));
  expectNear(sat[0], {448, -448});
  auto nosat = run("QuantizeLinear", {{"x", f32({1}, {1000})}, {"s", f32({}, {1})}},
                   attrs({{"output_dtype", int64_t(DataType::kF8E4M3FN)}, {"saturate", int64_t(0)}}));
  EXPECT_TRUE(std::isnan(nosat[0].getDouble(0)));
  // DynamicQuantizeLinear: range [-1, 2] -> scale 3/255, zero point round(255/3) = 85.
  auto dyn = run("DynamicQuantizeLinear", {{"x", f32({3}, {-1, 0, 2})}}, {}, 3);
  EXPECT_NEAR(dyn[1].getDouble(0), 3.0 / 255, 1e-7);
  EXPECT_EQ(values(dyn[2]), (std::vector<double>{85}));
  EXPECT_EQ(values(dyn[0]), (std::vector<double>{0, 85, 255}));
  // All zeros: scale 1/255, zero point 0.
  auto zero = run("DynamicQuantizeLinear", {{"x", f32({2}, {0, 0})}}, {}, 3);
  EXPECT_EQ(values(zero[0]), (std::vector<double>{0, 0}));
}

// ---------------------------------------------------------------- importers

TEST(NnImport, LpPoolOpset1FloatP) {
  auto m = onnxModel(1, "LpPool");
  *m.g->add_input() = vi("x", onnx::TensorProto::FLOAT, {-1, 1, 3});
  *m.g->add_output() = vi("y", onnx::TensorProto::FLOAT, {-2});
  m.node->add_input("x");
  m.node->add_output("y");
  intsAttr(m.node, "kernel_shape", {2});
  floatAttr(m.node, "p", 1.0f);
  auto model = anvil::parser::parseOnnxBytes(m.m.SerializeAsString(), "");
  EXPECT_EQ(model.graph->outputs()[0]->type().str(), "f32[N,1,2]");
  auto out = Interpreter::run(*model.graph, {{"x", f32({1, 1, 3}, {1, -2, 3})}});
  expectNear(out[0], {3, 5});
}

TEST(NnImport, GemmOpset6BroadcastAttr) {
  auto m = onnxModel(6, "Gemm");
  *m.g->add_input() = vi("a", onnx::TensorProto::FLOAT, {2, 2});
  *m.g->add_input() = vi("b", onnx::TensorProto::FLOAT, {2, 2});
  *m.g->add_input() = vi("c", onnx::TensorProto::FLOAT, {2});
  *m.g->add_output() = vi("y", onnx::TensorProto::FLOAT, {-2});
  for (const char* n : {"a", "b", "c"}) m.node->add_input(n);
  m.node->add_output("y");
  intAttr(m.node, "broadcast", 1);
  auto model = anvil::parser::parseOnnxBytes(m.m.SerializeAsString(), "");
  EXPECT_FALSE(model.graph->nodes()[0]->attrs().has("broadcast"));
  auto out = Interpreter::run(*model.graph, {{"a", f32({2, 2}, {1, 0, 0, 1})}, {"b", f32({2, 2}, {1, 2, 3, 4})},
                                             {"c", f32({2}, {10, 20})}});
  expectNear(out[0], {11, 22, 13, 24});
}

TEST(NnImport, RoiAlignOpset10UsesOutputHalfPixel) {
  auto m = onnxModel(10, "RoiAlign");
  *m.g->add_input() = vi("x", onnx::TensorProto::FLOAT, {1, 1, 4, 4});
  *m.g->add_input() = vi("r", onnx::TensorProto::FLOAT, {1, 4});
  *m.g->add_input() = vi("b", onnx::TensorProto::INT64, {1});
  *m.g->add_output() = vi("y", onnx::TensorProto::FLOAT, {-2});
  for (const char* n : {"x", "r", "b"}) m.node->add_input(n);
  m.node->add_output("y");
  auto model = anvil::parser::parseOnnxBytes(m.m.SerializeAsString(), "");
  EXPECT_EQ(model.graph->nodes()[0]->attrs().getString("coordinate_transformation_mode", ""), "output_half_pixel");
  EXPECT_EQ(model.graph->outputs()[0]->type().str(), "f32[1,1,1,1]");
}

#include "cpu/kernels/nn_util.h"

namespace {

// The reference GEMM's float path (AVX2 register tiles where the CPU has them) sums every
// element as the portable loop does: k ascending, product and sum rounded at each step. The
// same bits as that loop written out here, on shapes with row and column tails, several k
// blocks (256), strided and transposed A, padded leading dimensions, a nonzero C, and
// signed zeros.
TEST(NnReferenceGemm, FloatPathKeepsThePortableBits) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  int checked = 0;
  for (int64_t M : {1, 3, 4, 5, 9})
    for (int64_t N : {1, 15, 16, 17, 40, 300})
      for (int64_t K : {1, 7, 256, 300, 613})
        for (bool transA : {false, true}) {
          const int64_t ldb = N + 3, ldc = N + 5;
          const int64_t ars = transA ? 1 : K, acs = transA ? M : 1;
          std::vector<float> a(size_t(M * K)), b(size_t(K * ldb)), c(size_t(M * ldc));
          for (float& x : a) x = u(rng);
          for (float& x : b) x = u(rng) * 3.0f;
          for (float& x : c) x = u(rng);
          if (K == 7) {  // signed zeros: -0 + (-0) * b stays -0 only if a's -0 is kept as is
            for (float& x : a) x = (rng() & 1) ? -0.0f : 0.0f;
            for (float& x : c) x = -0.0f;
          }
          std::vector<float> want = c;
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n) {
              float s = want[size_t(m * ldc + n)];
              for (int64_t k = 0; k < K; ++k) {
                const float p = a[size_t(m * ars + k * acs)] * b[size_t(k * ldb + n)];
                s = s + p;
              }
              want[size_t(m * ldc + n)] = s;
            }
          anvil::cpu::kernels::nn::gemmAccumulate<float>(M, N, K, a.data(), ars, acs, b.data(), ldb, c.data(), ldc);
          ASSERT_EQ(std::memcmp(c.data(), want.data(), c.size() * sizeof(float)), 0)
              << M << "x" << N << "x" << K << (transA ? " transposed A" : "");
          ++checked;
        }
  EXPECT_EQ(checked, 5 * 6 * 5 * 2);
}

}  // namespace
