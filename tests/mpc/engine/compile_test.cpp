// The mpc compiler (runtime/mpc/compile.h) end to end: the repo's trained digits models
// compiled at batch 16 and 1 and run by the fixed executor against the float model (anvil's
// reference interpreter on the same prepared graph), a model of every other lowering
// (written here with onnx's protobuf), and the errors of what is not lowered.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "cpu/reference.h"
#include "runtime/mpc/compile.h"
#include "runtime/mpc/fixed.h"
#include "tools/npy.h"

namespace anvil::mpc {
namespace {

using ir::Tensor;
const std::string kModels = std::string(ANVIL_SOURCE_DIR) + "/tests/models/precision/";

// Rows [b*B, (b+1)*B) of a stacked sample tensor, as f32 of `shape`.
Tensor batchOf(const Tensor& all, int64_t b, const std::vector<int64_t>& shape) {
  Tensor t(ir::DataType::kFloat, shape);
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = float(all.getDouble(b * n + i));
  return t;
}

int64_t argmax(const Tensor& t, int64_t row, int64_t C) {
  int64_t best = 0;
  for (int64_t k = 1; k < C; ++k)
    if (t.getDouble(row * C + k) > t.getDouble(row * C + best)) best = k;
  return best;
}

// The secure run's truncation (tools/mpc protocol): each party shifts its own share, so a
// table reads floor(v / 2^d) plus one with probability (v mod 2^d) / 2^d (stochastic
// rounding) where the fixed mode reads round-half-up: within one of it. This runs a program
// in the clear with that rounding, to measure what the difference does to the outputs.
std::vector<RingVec> runStochastic(const Program& p, const Tensor& x, std::mt19937_64& rng) {
  std::vector<RingVec> values(p.tensors.size());
  const TensorDef& in = p.tensors[p.inputs[0]];
  for (int64_t k = 0; k < x.numel(); ++k) values[p.inputs[0]].push_back(quantize(x.getDouble(k), in.scale));
  auto index = [&](Ring v, int32_t d) -> uint8_t {
    if (d == 0) return uint8_t(v);
    const Ring frac = v & ((Ring(1) << d) - 1);
    return uint8_t((int64_t(v) >> d) + ((rng() & ((Ring(1) << d) - 1)) < frac ? 1 : 0));
  };
  for (const Step& s : p.steps) {
    if (s.kind == StepKind::kLut) {
      RingVec out;
      for (Ring v : values[s.inputs[0]]) out.push_back(s.table[index(v, s.shift)]);
      values[s.output] = std::move(out);
    } else if (s.kind == StepKind::kMaxPool) {
      const RingVec& xin = values[s.inputs[0]];
      RingVec out;
      for (const auto& w : maxPoolWindows(s, p.tensors[s.inputs[0]].shape, p.tensors[s.output].shape)) {
        RingVec level;
        for (int64_t i : w) level.push_back(xin[i]);
        while (level.size() > 1) {
          RingVec next;
          for (size_t i = 0; i + 1 < level.size(); i += 2)
            next.push_back(level[i + 1] + s.table[index(level[i] - level[i + 1], s.shift)]);
          if (level.size() % 2) next.push_back(level.back());
          level = next;
        }
        out.push_back(level[0]);
      }
      values[s.output] = std::move(out);
    } else {
      executeStep(p, s, values);
    }
  }
  std::vector<RingVec> outs;
  for (int32_t id : p.outputs) outs.push_back(values[id]);
  return outs;
}

struct Agreement {
  double top1 = 0, accuracyFixed = 0, accuracyFloat = 0;
  std::vector<Tensor> fixedOutputs;
  int64_t wrapped = 0, lookups = 0;  // table inputs outside the table's range on the test split
  int64_t maxIndex = 0;
  double stochasticTop1 = 0;  // top-1 of the stochastic-rounding run equal to the fixed run's
};

// Counts kLut inputs whose truncated value leaves the table's 256 values (they wrap).
struct WrapCounter : StepObserver {
  int64_t wrapped = 0, lookups = 0, maxIndex = 0;
  void onStep(const Program& p, size_t i, const std::vector<RingVec>& values) override {
    const Step& s = p.steps[i];
    if (s.kind != StepKind::kLut) return;
    for (Ring v : values[s.inputs[0]]) {
      const int64_t t = s.shift ? (int64_t(v) + (int64_t(1) << (s.shift - 1))) >> s.shift : int64_t(v);
      wrapped += t < s.tableLow || t > s.tableLow + 255;
      maxIndex = std::max(maxIndex, t < 0 ? -t : t);
      ++lookups;
    }
  }
};

// The whole test split through the fixed executor and the float reference.
Agreement onTestSplit(const std::string& model, const Program& p, const std::vector<int64_t>& shape) {
  ir::Model ref = prepareModel(kModels + model + "/model.onnx", {{"input", shape}});
  Tensor x = tools::readNpy(kModels + model + "/test/input.npy");
  Tensor labels = tools::readNpy(kModels + model + "/test/labels.npy");
  const int64_t B = shape[0], batches = x.dim(0) / B;
  int64_t agree = 0, okFixed = 0, okFloat = 0, rows = 0, stochasticSame = 0;
  std::mt19937_64 rng(42);
  Agreement a;
  for (int64_t b = 0; b < batches; ++b) {
    Tensor in = batchOf(x, b, shape);
    WrapCounter wraps;
    std::vector<Tensor> f = runFixed(p, {in}, &wraps);
    a.wrapped += wraps.wrapped;
    a.lookups += wraps.lookups;
    a.maxIndex = std::max(a.maxIndex, wraps.maxIndex);
    std::vector<Tensor> r = cpu::Interpreter::run(*ref.graph, {{"input", in}});
    const int64_t C = r[0].dims().back();
    for (int64_t row = 0; row < B; ++row, ++rows) {
      int64_t af = argmax(f[0], row, C), ar = argmax(r[0], row, C), y = labels.getInt(b * B + row);
      agree += af == ar;
      okFixed += af == y;
      okFloat += ar == y;
    }
    a.fixedOutputs.push_back(f[0]);
    std::vector<RingVec> st = runStochastic(p, in, rng);
    for (int64_t row = 0; row < B; ++row) {
      const int64_t C = r[0].dims().back();
      int64_t as = 0;
      for (int64_t k = 1; k < C; ++k)
        if (int64_t(st[0][row * C + k]) > int64_t(st[0][row * C + as])) as = k;
      stochasticSame += as == argmax(f[0], row, C);
    }
  }
  a.top1 = double(agree) / double(rows);
  a.stochasticTop1 = double(stochasticSame) / double(rows);
  std::cout << model << ": stochastic-rounding run's top-1 equal to fixed on " << a.stochasticTop1 << " of " << rows
            << " rows\n";
  a.accuracyFixed = double(okFixed) / double(rows);
  a.accuracyFloat = double(okFloat) / double(rows);
  return a;
}

Program compileDigits(const std::string& model, const std::vector<int64_t>& shape, CompileReport* r) {
  CompileOptions o;
  o.shapes = {{"input", shape}};
  o.calibDir = kModels + model + "/calib";
  return compileProgram(kModels + model + "/model.onnx", o, r);
}

void checkReport(const CompileReport& r) {
  for (const LutReport& l : r.luts) {
    EXPECT_LE(l.calibrationMaxIndex, 127) << l.name;
    EXPECT_GE(l.calibrationMaxIndex, 32) << l.name << ": the shift wastes more than two bits";
  }
  EXPECT_LT(r.maxAbsSeenLog2, 62);
  EXPECT_LT(r.worstCaseBoundLog2, 63);
}

TEST(MpcCompile, DigitsMlpAgreesWithTheFloatModel) {
  CompileReport r;
  Program p = compileDigits("digits_mlp", {16, 64}, &r);
  EXPECT_EQ(r.stepsByKind["linear"], 3);
  EXPECT_EQ(r.stepsByKind["lut"], 2);
  checkReport(r);
  EXPECT_EQ(p.programId.size(), 16u);
  EXPECT_EQ(p.serverPublicKey.size(), 32u);
  EXPECT_EQ(p.serverSecretKey.size(), 32u);
  Agreement a = onTestSplit("digits_mlp", p, {16, 64});
  std::cout << "digits_mlp batch 16: top-1 agreement " << a.top1 << ", accuracy fixed " << a.accuracyFixed
            << " float " << a.accuracyFloat << ", wrapped lookups " << a.wrapped << " of " << a.lookups
            << " (max |index| " << a.maxIndex << "), held-out calibration agreement " << r.top1Agreement
            << " relative error " << r.relativeError << "\n";
  EXPECT_GE(a.top1, 0.99);
  EXPECT_GE(a.stochasticTop1, 0.98);  // the secure run's rounding moves few decisions
  EXPECT_EQ(a.wrapped, 0);
  EXPECT_GE(r.top1Agreement, 0.99);
  EXPECT_LT(r.relativeError, 0.05);
}

TEST(MpcCompile, DigitsCnnAgreesWithTheFloatModelAtBatch16And1) {
  CompileReport r;
  Program p = compileDigits("digits_cnn", {16, 1, 8, 8}, &r);
  EXPECT_EQ(r.stepsByKind["linear"], 4);
  EXPECT_EQ(r.stepsByKind["lut"], 3);
  EXPECT_EQ(r.stepsByKind["maxpool"], 2);
  checkReport(r);
  // Through the file and back: the same outputs.
  Program q = deserializeProgram(serializeProgram(p));
  Agreement a = onTestSplit("digits_cnn", q, {16, 1, 8, 8});
  EXPECT_EQ(a.wrapped, 0);
  std::cout << "digits_cnn batch 16: top-1 agreement " << a.top1 << ", accuracy fixed " << a.accuracyFixed
            << " float " << a.accuracyFloat << ", wrapped lookups " << a.wrapped << " of " << a.lookups
            << " (max |index| " << a.maxIndex << "), relative error (held-out calibration) " << r.relativeError << "\n";
  EXPECT_GE(a.top1, 0.99);
  EXPECT_GE(a.stochasticTop1, 0.98);  // the secure run's rounding moves few decisions
  // Batch 1 (the graph's fixed batch 64 overridden): the same calibration samples give the
  // same tables, so every row equals the batch-16 engine's bit for bit.
  CompileReport r1;
  Program p1 = compileDigits("digits_cnn", {1, 1, 8, 8}, &r1);
  ASSERT_EQ(r1.luts.size(), r.luts.size());
  for (size_t i = 0; i < r.luts.size(); ++i) EXPECT_EQ(r1.luts[i].shift, r.luts[i].shift);
  Tensor x = tools::readNpy(kModels + "digits_cnn/test/input.npy");
  for (int64_t row : {0, 5, 17, 40}) {
    std::vector<Tensor> one = runFixed(p1, {batchOf(x, row, {1, 1, 8, 8})});
    const Tensor& batch = a.fixedOutputs[row / 16];
    for (int64_t k = 0; k < 10; ++k)
      ASSERT_EQ(one[0].data<float>()[k], batch.data<float>()[(row % 16) * 10 + k]) << "row " << row;
  }
}

TEST(MpcCompile, DigitsTransformerAgreesWithTheFloatModel) {
  // Attention (kMatMul of activations, Softmax with its row maximum, exp and reciprocal
  // tables), two LayerNormalizations per layer (rsqrt table), residual adds, a batch of 64
  // baked into the Reshape targets (rewritten for batch 16).
  CompileReport r;
  Program p = compileDigits("digits_transformer", {16, 8, 8}, &r);
  EXPECT_EQ(r.stepsByKind["matmul"], 4);
  EXPECT_EQ(r.stepsByKind["maxpool"], 2);  // one row maximum per softmax
  int exp = 0, reciprocal = 0, rsqrt = 0;
  for (const LutReport& l : r.luts) {
    exp += l.function == LutFunction::kExp;
    reciprocal += l.function == LutFunction::kReciprocal;
    rsqrt += l.function == LutFunction::kRsqrt;
  }
  EXPECT_EQ(exp, 2);
  EXPECT_EQ(reciprocal, 2);
  EXPECT_EQ(rsqrt, 4);
  // One-sided tables: exp after the maximum reads t <= 16, sums and variances t >= -1.
  for (const Step& s : p.steps) {
    if (s.kind != StepKind::kLut) continue;
    int want = -128;
    if (s.function == LutFunction::kExp) want = -239;
    if (s.function == LutFunction::kReciprocal || s.function == LutFunction::kRsqrt) want = -1;
    if (s.function != LutFunction::kIdentity) {
      EXPECT_EQ(s.tableLow, want) << s.name;
    }
  }
  checkReport(r);
  Agreement a = onTestSplit("digits_transformer", p, {16, 8, 8});
  std::cout << "digits_transformer batch 16: top-1 agreement " << a.top1 << ", accuracy fixed " << a.accuracyFixed
            << " float " << a.accuracyFloat << ", wrapped lookups " << a.wrapped << " of " << a.lookups
            << " (max |index| " << a.maxIndex << "), relative error (held-out calibration) " << r.relativeError << "\n";
  EXPECT_GE(a.top1, 0.99);
  EXPECT_GE(a.stochasticTop1, 0.98);  // the secure run's rounding moves few decisions
  EXPECT_LE(a.wrapped, a.lookups / 100000);  // at most 1e-5 of the lookups (measured: 0 of 3.5M)
  EXPECT_LT(r.relativeError, 0.06);
}

// ---- a model of the other lowerings, written with onnx's protobuf

onnx::ValueInfoProto valueInfo(const std::string& name, const std::vector<int64_t>& dims) {
  onnx::ValueInfoProto v;
  v.set_name(name);
  auto* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
  return v;
}

class ModelWriter {
 public:
  ModelWriter() {
    m_.set_ir_version(8);
    auto* op = m_.add_opset_import();
    op->set_domain("");
    op->set_version(17);
    g_ = m_.mutable_graph();
    g_->set_name("g");
  }
  onnx::GraphProto* graph() { return g_; }
  void init(const std::string& name, const std::vector<int64_t>& dims, std::mt19937& rng, float lo, float hi) {
    auto* w = g_->add_initializer();
    w->set_name(name);
    w->set_data_type(onnx::TensorProto::FLOAT);
    int64_t n = 1;
    for (int64_t d : dims) w->add_dims(d), n *= d;
    std::uniform_real_distribution<float> u(lo, hi);
    for (int64_t i = 0; i < n; ++i) w->add_float_data(u(rng));
  }
  void ints(const std::string& name, const std::vector<int64_t>& v) {
    auto* w = g_->add_initializer();
    w->set_name(name);
    w->set_data_type(onnx::TensorProto::INT64);
    w->add_dims(int64_t(v.size()));
    for (int64_t x : v) w->add_int64_data(x);
  }
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& in, const std::string& out) {
    auto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(out + "_node");
    for (const auto& i : in) n->add_input(i);
    n->add_output(out);
    return n;
  }
  static void attr(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  std::string save(const std::string& path) {
    std::ofstream(path, std::ios::binary) << m_.SerializeAsString();
    return path;
  }

 private:
  onnx::ModelProto m_;
  onnx::GraphProto* g_;
};

std::string writeCalibration(const std::string& dir, const std::vector<int64_t>& shape, uint32_t seed) {
  std::filesystem::create_directories(dir);
  Tensor t(ir::DataType::kFloat, shape);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  tools::writeNpy(dir + "/x.npy", t);
  return dir;
}

TEST(MpcCompile, EveryOtherLoweringAgreesWithTheFloatModel) {
  std::mt19937 rng(7);
  ModelWriter w;
  auto* g = w.graph();
  *g->add_input() = valueInfo("x", {4, 3, 6, 6});
  *g->add_output() = valueInfo("y", {4, 5});
  w.init("w1", {4, 3, 3, 3}, rng, -0.5f, 0.5f);
  w.init("b1", {4}, rng, -0.2f, 0.2f);
  auto* conv = w.node("Conv", {"x", "w1", "b1"}, "c1");
  ModelWriter::attr(conv, "pads", std::vector<int64_t>{1, 1, 1, 1});
  w.init("chscale", {4, 1, 1}, rng, 0.5f, 2.0f);
  w.node("Mul", {"c1", "chscale"}, "c1s");  // folded into the conv's weights
  w.node("Sigmoid", {"c1s"}, "s1");
  auto* ap = w.node("AveragePool", {"s1"}, "p1");
  ModelWriter::attr(ap, "kernel_shape", std::vector<int64_t>{2, 2});
  ModelWriter::attr(ap, "strides", std::vector<int64_t>{2, 2});
  w.node("Tanh", {"p1"}, "t1");
  auto* lr = w.node("LeakyRelu", {"c1s"}, "l1");
  (void)lr;
  auto* mp = w.node("MaxPool", {"l1"}, "m1");
  ModelWriter::attr(mp, "kernel_shape", std::vector<int64_t>{3, 3});
  ModelWriter::attr(mp, "strides", std::vector<int64_t>{2, 2});
  ModelWriter::attr(mp, "pads", std::vector<int64_t>{1, 1, 0, 0});
  w.node("Add", {"t1", "m1"}, "a1");  // two activations at different scales
  w.node("Mul", {"a1", "t1"}, "q1");  // shared x shared
  w.node("Sub", {"q1", "m1"}, "d1");
  auto* tr = w.node("Transpose", {"d1"}, "tr");
  ModelWriter::attr(tr, "perm", std::vector<int64_t>{0, 2, 3, 1});  // [4,3,3,4]
  w.ints("s0", {0});
  w.ints("s2", {2});
  w.ints("s4", {4});
  w.ints("ax3", {3});
  w.node("Slice", {"tr", "s0", "s2", "ax3"}, "lo");
  w.node("Slice", {"tr", "s2", "s4", "ax3"}, "hi");
  w.node("Relu", {"hi"}, "hir");
  auto* cat = w.node("Concat", {"hir", "lo"}, "cat");
  ModelWriter::attr(cat, "axis", int64_t(-1));
  w.init("gamma", {4}, rng, -2.0f, 2.0f);
  w.node("Mul", {"cat", "gamma"}, "sc");  // kScale
  w.init("beta", {3, 1}, rng, -1.0f, 1.0f);
  w.node("Add", {"sc", "beta"}, "scb");  // kScale with a bias over axes [3, 4]
  auto* rm = w.node("ReduceMean", {"scb"}, "mean");
  ModelWriter::attr(rm, "axes", std::vector<int64_t>{1, 2});
  ModelWriter::attr(rm, "keepdims", int64_t(0));  // [4, 4]
  w.init("h1", {4, 6}, rng, -1.0f, 1.0f);
  w.node("MatMul", {"mean", "h1"}, "mm");
  w.node("Gelu", {"mm"}, "ge");  // opset 17 has no Gelu op: the exporter's erf form follows instead
  g->mutable_node()->RemoveLast();
  w.init("sqrt2", {}, rng, 1.4142135f, 1.4142135f);
  w.init("one", {}, rng, 1.0f, 1.0f);
  w.init("half", {}, rng, 0.5f, 0.5f);
  w.node("Div", {"mm", "sqrt2"}, "g0");
  w.node("Erf", {"g0"}, "g1");
  w.node("Add", {"g1", "one"}, "g2");
  w.node("Mul", {"mm", "g2"}, "g3");
  w.node("Mul", {"g3", "half"}, "ge");
  w.node("Sigmoid", {"ge"}, "sg");
  w.node("Mul", {"ge", "sg"}, "silu");  // one Silu table
  w.init("wg", {5, 6}, rng, -1.0f, 1.0f);
  w.init("bg", {5}, rng, -0.5f, 0.5f);
  auto* gemm = w.node("Gemm", {"silu", "wg", "bg"}, "y");
  ModelWriter::attr(gemm, "transB", int64_t(1));
  const std::string dir = ::testing::TempDir() + "/mpc_ops";
  std::filesystem::create_directories(dir);
  const std::string path = w.save(dir + "/ops.onnx");
  CompileOptions o;
  o.calibDir = writeCalibration(dir + "/calib", {512, 3, 6, 6}, 11);
  o.verbose = true;
  CompileReport r;
  Program p = compileProgram(path, o, &r);
  for (const std::string& line : r.log) std::cout << line << "\n";
  for (const char* kind : {"linear", "lut", "maxpool", "sumpool", "add", "sub", "mul", "mulconst", "transpose",
                           "slice", "concat", "scale", "reducesum", "reshape"})
    EXPECT_GE(r.stepsByKind[kind], 1) << kind;
  EXPECT_EQ(r.stepsByKind["linear"], 3);  // the channel Mul folded into the conv
  EXPECT_EQ(r.stepsByKind["scale"], 2);
  int gelu = 0, silu = 0;
  for (const LutReport& l : r.luts) {
    gelu += l.function == LutFunction::kGelu;
    silu += l.function == LutFunction::kSilu;
  }
  EXPECT_EQ(gelu, 1);
  EXPECT_EQ(silu, 1);
  checkReport(r);
  std::cout << "ops model: relative error " << r.relativeError << " on " << r.evaluationBatches << " held-out batches\n";
  EXPECT_LT(r.relativeError, 0.1);
  // Independently of the report: one fresh batch against the float reference.
  ir::Model ref = prepareModel(path, {});
  Tensor x = tools::readNpy(writeCalibration(dir + "/fresh", {4, 3, 6, 6}, 99) + "/x.npy");
  Tensor f = runFixed(p, {x})[0], fl = cpu::Interpreter::run(*ref.graph, {{"x", x}})[0];
  double err = 0, norm = 0;
  for (int64_t i = 0; i < fl.numel(); ++i) {
    err += std::pow(f.getDouble(i) - fl.getDouble(i), 2);
    norm += std::pow(fl.getDouble(i), 2);
  }
  EXPECT_LT(std::sqrt(err / norm), 0.1);
}

TEST(MpcCompile, GemmTransposesGlobalPoolAndShapeOpsAgreeWithTheFloatModel) {
  std::mt19937 rng(5);
  ModelWriter w;
  auto* g = w.graph();
  *g->add_input() = valueInfo("x", {2, 3, 5, 5});
  *g->add_output() = valueInfo("y", {2, 4});
  w.init("w1", {3, 3, 1, 1}, rng, -1.0f, 1.0f);
  w.node("Conv", {"x", "w1"}, "c");
  w.node("Relu", {"c"}, "r");
  w.node("GlobalAveragePool", {"r"}, "gap");  // [2,3,1,1]
  w.node("Flatten", {"gap"}, "f");            // [2,3]
  auto* t = w.node("Transpose", {"f"}, "ft");  // [3,2]
  ModelWriter::attr(t, "perm", std::vector<int64_t>{1, 0});
  w.init("B", {4, 3}, rng, -1.0f, 1.0f);
  w.init("C", {1, 4}, rng, -1.0f, 1.0f);
  auto* gemm = w.node("Gemm", {"ft", "B", "C"}, "gm");
  ModelWriter::attr(gemm, "transA", int64_t(1));
  ModelWriter::attr(gemm, "transB", int64_t(1));
  auto* alpha = gemm->add_attribute();
  alpha->set_name("alpha");
  alpha->set_type(onnx::AttributeProto::FLOAT);
  alpha->set_f(0.5f);
  auto* beta = gemm->add_attribute();
  beta->set_name("beta");
  beta->set_type(onnx::AttributeProto::FLOAT);
  beta->set_f(2.0f);
  w.ints("ax", {1});
  w.node("Unsqueeze", {"gm", "ax"}, "u");  // [2,1,4]
  w.node("Squeeze", {"u", "ax"}, "y");
  const std::string dir = ::testing::TempDir() + "/mpc_gemm";
  std::filesystem::create_directories(dir);
  const std::string path = w.save(dir + "/gemm.onnx");
  CompileOptions o;
  o.calibDir = writeCalibration(dir + "/calib", {256, 3, 5, 5}, 13);
  CompileReport r;
  Program p = compileProgram(path, o, &r);
  EXPECT_EQ(r.stepsByKind["sumpool"], 1);
  EXPECT_EQ(r.stepsByKind["transpose"], 2);  // the graph's and transA's
  EXPECT_EQ(r.stepsByKind["linear"], 2);
  std::cout << "gemm model: relative error " << r.relativeError << "\n";
  EXPECT_LT(r.relativeError, 0.02);
}

TEST(MpcCompile, ScalarProductsChangeOnlyTheScale) {
  // x * 0.3 is the same ring elements at 0.3 times the scale (no table, no weights); adding
  // or concatenating it with a power-of-two-scaled value then needs one rescaling table.
  ModelWriter w;
  auto* g = w.graph();
  *g->add_input() = valueInfo("x", {4, 6});
  *g->add_output() = valueInfo("y", {4, 12});
  std::mt19937 rng(3);
  w.node("Tanh", {"x"}, "t");
  w.init("k", {}, rng, 0.3f, 0.3f);
  w.node("Mul", {"t", "k"}, "u");
  w.init("two", {}, rng, 2.0f, 2.0f);
  w.node("Div", {"u", "two"}, "v");
  w.node("Add", {"v", "t"}, "s");
  auto* cat = w.node("Concat", {"s", "v"}, "y");
  ModelWriter::attr(cat, "axis", int64_t(1));
  const std::string dir = ::testing::TempDir() + "/mpc_scalar";
  std::filesystem::create_directories(dir);
  const std::string path = w.save(dir + "/scalar.onnx");
  CompileOptions o;
  o.calibDir = writeCalibration(dir + "/calib", {256, 6}, 21);
  CompileReport r;
  Program p = compileProgram(path, o, &r);
  EXPECT_EQ(r.stepsByKind["scale"], 0);
  int rescale = 0;
  for (const LutReport& l : r.luts) rescale += l.name.find("/rescale") != std::string::npos;
  EXPECT_EQ(rescale, 2);  // v for the Add, and v again for the Concat (s is on the grid)
  double vScale = 0, tScale = 0;
  for (const TensorDef& t : p.tensors) {
    if (t.name == "v") vScale = t.scale;
    if (t.name == "t") tScale = t.scale;
  }
  EXPECT_NEAR(vScale / tScale, 0.15, 1e-7);  // 0.3f / 2
  std::cout << "scalar model: relative error " << r.relativeError << "\n";
  EXPECT_LT(r.relativeError, 0.02);
}

TEST(MpcCompile, UnsupportedNodesAndMissingDataAreNamed) {
  ModelWriter w;
  auto* g = w.graph();
  *g->add_input() = valueInfo("x", {2, 5});
  *g->add_output() = valueInfo("y", {2, 5});
  w.node("Relu", {"x"}, "r");
  w.node("Hardmax", {"r"}, "y");
  const std::string dir = ::testing::TempDir() + "/mpc_unsupported";
  std::filesystem::create_directories(dir);
  const std::string path = w.save(dir + "/hardmax.onnx");
  CompileOptions o;
  o.calibDir = writeCalibration(dir + "/calib", {8, 5}, 3);
  try {
    compileProgram(path, o);
    ADD_FAILURE() << "Hardmax compiled";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("y_node"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Hardmax"), std::string::npos) << e.what();
  }
  // No calibration data, samples of the wrong shape, fewer samples than a batch.
  CompileOptions none;
  EXPECT_THROW(compileProgram(path, none), Error);
  CompileOptions wrong;
  wrong.calibDir = writeCalibration(dir + "/wrong", {8, 4}, 3);
  EXPECT_THROW(compileProgram(path, wrong), Error);
  CompileOptions few;
  few.calibDir = writeCalibration(dir + "/few", {1, 5}, 3);
  EXPECT_THROW(compileProgram(path, few), Error);
  // --shapes naming no input.
  CompileOptions bad = o;
  bad.shapes = {{"nope", {2, 5}}};
  EXPECT_THROW(compileProgram(path, bad), Error);
}

}  // namespace
}  // namespace anvil::mpc
