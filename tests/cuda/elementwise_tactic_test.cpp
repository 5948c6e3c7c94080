// The CUDA elementwise family (cuda/tactics/elementwise.cpp) on the simulated runtime against
// the reference interpreter: every unary, binary, comparison and logic op on every dtype it
// claims, odd sizes (1, 7, 1035) and broadcasting patterns (SE-style [N,C,H,W] x [N,C,1,1],
// [B,1,1,S] masks, scalars, rank mismatch, both sides broadcast, rank 6), NaN/inf inputs,
// Clip in every input form, Sum/Max/Min/Mean folds, Mod, bitwise ops, IsNaN/IsInf, Where, Expand, Identity, Cast between every
// served pair with its rounding and wrapping, anvil.FusedElementwise programs as the fusion
// pass builds them, empty tensors, and what supports() refuses. Where a GPU is present every
// case also runs on it through the real runtime (device math: a few ulp more tolerance).
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <limits>
#include <optional>

#include "cuda/device.h"
#include "cuda/elementwise.h"
#include "tactic_test_util.h"

namespace anvil::cuda::testing {
namespace {

// An input of the test node: a runtime tensor, a constant (initializer) or omitted.
struct Arg {
  std::optional<ir::Tensor> t;
  bool constant = false;
};
Arg in(ir::Tensor t) { return {std::move(t), false}; }
Arg constant(ir::Tensor t) { return {std::move(t), true}; }
Arg omitted() { return {}; }

std::unique_ptr<ir::Graph> nodeGraph(const std::string& op, const std::vector<Arg>& args, const ir::Attributes& attrs,
                                     const std::string& domain = "") {
  auto g = std::make_unique<ir::Graph>();
  std::vector<ir::Value*> vs;
  for (size_t i = 0; i < args.size(); ++i) {
    const Arg& a = args[i];
    if (!a.t) {
      vs.push_back(nullptr);
      continue;
    }
    const std::string name = "x" + std::to_string(i);
    ir::Value* v = a.constant ? g->addInitializer(name, *a.t) : g->addValue(name, a.t->type());
    if (!a.constant) g->addInput(v);
    vs.push_back(v);
  }
  ir::Node* n = g->addNode(op, domain, "n0", vs, {"y"});
  n->attrs() = attrs;
  g->addOutput(n->output(0));
  ir::inferShapes(*g);
  return g;
}

// The real runtime where a GPU is present, else null.
DeviceRuntime* gpuRuntime() {
  static const std::unique_ptr<DeviceRuntime> rt = deviceCount() > 0 ? cudaRuntime(0) : nullptr;
  return rt.get();
}

// Exact for integers and bool; floats equal (inf, -0 included), both NaN, or within
// atol + rtol * |want|.
void expectMatch(const ir::Tensor& got, const ir::Tensor& want, double atol, double rtol, const std::string& what) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.dims(), want.dims()) << what;
  const bool isFloat = ir::isFloat(want.dtype());
  for (int64_t i = 0; i < want.numel(); ++i) {
    if (!isFloat) {
      if (got.getInt(i) != want.getInt(i)) {
        ADD_FAILURE() << what << ": element " << i << " is " << got.getInt(i) << ", want " << want.getInt(i);
        return;
      }
      continue;
    }
    const double g = got.getDouble(i), w = want.getDouble(i);
    if (g == w || (std::isnan(g) && std::isnan(w))) continue;
    if (!(std::fabs(g - w) <= atol + rtol * std::fabs(w))) {
      ADD_FAILURE() << what << ": element " << i << " is " << g << ", want " << w;
      return;
    }
  }
}

std::string describe(const std::string& op, const std::vector<Arg>& args) {
  std::string s = op + "(";
  for (size_t i = 0; i < args.size(); ++i) {
    if (i) s += ", ";
    s += args[i].t ? (args[i].constant ? "const " : "") + args[i].t->summary() : "_";
  }
  return s + ")";
}

// The op on `args` is served by exactly the kernel `kernel` and matches the reference.
void check(const std::string& op, const std::vector<Arg>& args, const std::string& kernel,
           const ir::Attributes& attrs = {}, double atol = 1e-6, double rtol = 1e-6, const std::string& domain = "") {
  const std::string what = describe(op, args) + " via " + kernel;
  auto g = nodeGraph(op, args, attrs, domain);
  const ir::Node& node = *g->nodes()[0];
  std::vector<const runtime::Kernel*> ks = supportingKernels(node);
  // gpuOnly kernels (the NVRTC-compiled FusedElementwise) are never picked where the sim runs.
  std::erase_if(ks, [](const runtime::Kernel* k) { return k->gpuOnly; });
  ASSERT_EQ(ks.size(), 1u) << what << ": " << ks.size() << " CUDA kernels support it";
  ASSERT_EQ(ks[0]->name, kernel) << what;
  std::vector<ir::Tensor> inputs;
  for (const Arg& a : args) inputs.push_back(a.t ? *a.t : ir::Tensor());
  auto rt = simRuntime();
  const std::vector<ir::Tensor> got = runOnDevice(*ks[0], node, inputs, *rt);
  const std::vector<ir::Tensor> want = runReference(node, inputs);
  expectMatch(got[0], want[0], atol, rtol, what);
  if (DeviceRuntime* gpu = gpuRuntime()) {
    const bool exact = atol == 0 && rtol == 0;
    const std::vector<ir::Tensor> onGpu = runOnDevice(*ks[0], node, inputs, *gpu);
    expectMatch(onGpu[0], want[0], exact ? 0 : std::max(atol, 1e-6), exact ? 0 : std::max(rtol, 4e-6), what + " on the GPU");
  }
}

// No CUDA kernel serves the op on `args`.
void expectRefused(const std::string& op, const std::vector<Arg>& args, const ir::Attributes& attrs = {},
                   const std::string& domain = "") {
  auto g = nodeGraph(op, args, attrs, domain);
  EXPECT_TRUE(supportingKernels(*g->nodes()[0]).empty()) << describe(op, args) << " should be refused";
}

ir::Attributes attrs(std::initializer_list<std::pair<const char*, ir::Attribute::Storage>> kv) {
  ir::Attributes a;
  for (const auto& [k, v] : kv) a.set(k, v);
  return a;
}

// Random values in [lo, hi) with NaN, +inf, -inf, -0 and 0 in the first five elements of
// float tensors big enough to hold them.
ir::Tensor values(DataType t, const std::vector<int64_t>& dims, uint32_t seed, double lo = -4, double hi = 4,
                  bool specials = true) {
  ir::Tensor x = randomTensor(t, dims, seed, lo, hi);
  if (specials && ir::isFloat(t) && x.numel() >= 7) {
    const double s[] = {std::numeric_limits<double>::quiet_NaN(), INFINITY, -INFINITY, -0.0, 0.0};
    for (int i = 0; i < 5; ++i) x.setDouble(i, s[i]);
  }
  return x;
}

std::string name(const std::string& prefix, std::string op) {
  for (char& ch : op) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return prefix + "_" + op + "_eltwise_block256";
}

const std::vector<std::vector<int64_t>> kSizes = {{1}, {7}, {3, 345}};
const DataType kFloatTypes[] = {DataType::kF32, DataType::kF16, DataType::kBF16};

// Tolerances per float type: f32 math is the reference's to a few ulp; the half types
// round the same f32 result, so they differ by at most one of their ulps.
double rtolOf(DataType t) { return t == DataType::kF32 ? 2e-6 : t == DataType::kF16 ? 1e-3 : 8e-3; }

// ---- unary float ops -------------------------------------------------------------------

TEST(CudaElementwiseTactic, UnaryFloatOpsEveryTypeAndSize) {
  struct Case {
    const char* op;
    ir::Attributes attrs;
    double lo = -4, hi = 4;
  };
  const Case cases[] = {
      {"Relu", {}},        {"Abs", {}},          {"Neg", {}},         {"Sigmoid", {}, -20, 20},
      {"Tanh", {}},        {"Erf", {}},          {"Exp", {}, -10, 10}, {"Log", {}, 0, 10},
      {"Sqrt", {}, 0, 10}, {"Reciprocal", {}},   {"Floor", {}},       {"Ceil", {}},
      {"Round", {}},       {"Sin", {}},          {"Cos", {}},         {"Softplus", {}, -30, 30},
      {"Softsign", {}},    {"Sign", {}},         {"HardSwish", {}},   {"Mish", {}},
      {"LeakyRelu", {}},   {"LeakyRelu", attrs({{"alpha", 0.2f}})},
      {"Elu", {}},         {"Elu", attrs({{"alpha", 0.5f}})},
      {"Selu", {}},        {"Celu", attrs({{"alpha", 2.0f}})},
      {"HardSigmoid", {}}, {"HardSigmoid", attrs({{"alpha", 0.3f}, {"beta", 0.4f}})},
      {"ThresholdedRelu", attrs({{"alpha", 0.5f}})},
      {"Gelu", {}},        {"Gelu", attrs({{"approximate", std::string("tanh")}})},
  };
  for (const Case& c : cases) {
    for (DataType t : kFloatTypes) {
      for (const auto& dims : kSizes) {
        SCOPED_TRACE(std::string(c.op) + " " + ir::dtypeName(t));
        check(c.op, {in(values(t, dims, 11, c.lo, c.hi))}, name("f32", c.op), c.attrs,
              1e-6, rtolOf(t));
      }
    }
  }
}


// ---- binary float ops with broadcasting --------------------------------------------------

// [a-shape, b-shape] pairs: equal, SE gate, attention mask, scalar, rank mismatch, both sides
// broadcast, inner and middle broadcast, a long row, rank 6.
const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> kBroadcasts = {
    {{7}, {7}},
    {{2, 3, 5, 7}, {2, 3, 1, 1}},
    {{2, 4, 9, 9}, {2, 1, 1, 9}},
    {{3, 17}, {}},
    {{}, {3, 17}},
    {{1}, {5, 7}},
    {{5, 1}, {1, 7}},
    {{4, 1, 3}, {5, 1}},
    {{3, 345}, {345}},
    {{2, 1, 2, 1, 2, 3}, {1, 2, 1, 2, 1, 3}},
};

TEST(CudaElementwiseTactic, BinaryFloatOpsBroadcast) {
  const char* ops[] = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu"};
  for (const char* op : ops) {
    for (DataType t : {DataType::kF32, DataType::kF16}) {
      for (const auto& [da, db] : kBroadcasts) {
        // PRelu's slope broadcasts to X only, one way.
        if (std::string(op) == "PRelu" && ir::broadcastExtents(da, db) != da) continue;
        SCOPED_TRACE(std::string(op) + " " + ir::dtypeName(t));
        const double lo = std::string(op) == "Pow" ? 0 : -4;
        check(op, {in(values(t, da, 3, lo, 4)), in(values(t, db, 5, -3, 3))}, name("f32", op), {}, 1e-6, rtolOf(t));
      }
    }
  }
  // bf16 on one broadcast pattern; a constant operand (an initializer) as models have.
  check("Mul", {in(values(DataType::kBF16, {2, 3, 5, 7}, 1)), in(values(DataType::kBF16, {2, 3, 1, 1}, 2))},
        name("f32", "Mul"), {}, 1e-6, rtolOf(DataType::kBF16));
  check("Add", {in(values(DataType::kF32, {4, 33}, 1)), constant(values(DataType::kF32, {33}, 2))}, name("f32", "Add"));
  // Pow of negative bases: integer exponents are exact, others NaN, as in the reference.
  check("Pow", {in(ir::Tensor::fromVector<float>(DataType::kF32, {6}, {-2, -2, -8, 0, 0, 3})),
                in(ir::Tensor::fromVector<float>(DataType::kF32, {6}, {3, 0.5f, 1.0f / 3, 0, -1, -2}))},
        name("f32", "Pow"));
}

TEST(CudaElementwiseTactic, FloatComparisonsGiveBool) {
  for (const char* op : {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"}) {
    for (DataType t : {DataType::kF32, DataType::kF16}) {
      for (const auto& [da, db] : kBroadcasts) {
        SCOPED_TRACE(std::string(op) + " " + ir::dtypeName(t));
        // Small integers so that equal values occur; NaN and infinities in front.
        ir::Tensor a = values(t, da, 3, -3, 3), b = values(t, db, 5, -3, 3);
        for (int64_t i = 5; i < a.numel(); ++i) a.setDouble(i, std::floor(a.getDouble(i)));
        for (int64_t i = 5; i < b.numel(); ++i) b.setDouble(i, std::floor(b.getDouble(i)));
        check(op, {in(a), in(b)}, name("f32", op));
      }
    }
  }
}

// ---- integer and bool ops ----------------------------------------------------------------

// Integer values with the edges in front: 0, -1, 1, the type's min and max.
ir::Tensor ints(DataType t, const std::vector<int64_t>& dims, uint32_t seed) {
  const bool u = t == DataType::kU8;
  ir::Tensor x = randomTensor(t, dims, seed, u ? 0 : -60, u ? 250 : 60);
  if (x.numel() >= 8) {
    int64_t lo = 0, hi = 0;
    switch (t) {
      case DataType::kI8: lo = INT8_MIN, hi = INT8_MAX; break;
      case DataType::kU8: lo = 0, hi = UINT8_MAX; break;
      case DataType::kI32: lo = INT32_MIN, hi = INT32_MAX; break;
      default: lo = INT64_MIN, hi = INT64_MAX; break;
    }
    const int64_t edges[] = {0, u ? 2 : -1, 1, lo, hi};
    for (int i = 0; i < 5; ++i) {
      if (t == DataType::kI64) x.data<int64_t>()[i] = edges[i];
      else x.setDouble(i, double(edges[i]));
    }
  }
  return x;
}

const DataType kIntTypes[] = {DataType::kI8, DataType::kU8, DataType::kI32, DataType::kI64};

TEST(CudaElementwiseTactic, IntegerOpsWrapAndBroadcast) {
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"}) {
    for (DataType t : kIntTypes) {
      for (const auto& [da, db] : kBroadcasts) {
        SCOPED_TRACE(std::string(op) + " " + ir::dtypeName(t));
        check(op, {in(ints(t, da, 3)), in(ints(t, db, 4))}, name("int", op));
      }
      // Every edge against every edge (division by 0 and -1, min / -1, overflow).
      SCOPED_TRACE(std::string(op) + " edges " + ir::dtypeName(t));
      check(op, {in(ints(t, {8, 1}, 3)), in(ints(t, {8}, 3))}, name("int", op));
    }
  }
  for (const char* op : {"Relu", "Abs", "Neg"}) {
    for (DataType t : kIntTypes) {
      if (t == DataType::kU8 && std::string(op) == "Neg") continue;  // signed types only
      SCOPED_TRACE(std::string(op) + " " + ir::dtypeName(t));
      check(op, {in(ints(t, {3, 345}, 9))}, name("int", op));
    }
  }
  for (const char* op : {"Max", "Min", "Sum"}) {
    for (DataType t : kIntTypes) {
      SCOPED_TRACE(std::string(op) + " " + ir::dtypeName(t));
      check(op, {in(ints(t, {2, 3, 5, 7}, 1)), in(ints(t, {2, 3, 1, 1}, 2))}, name("int", op));
      // Folds of 3 and 5 inputs run the interpreter (a program of 2 and 4 instructions).
      check(op, {in(ints(t, {2, 3, 5, 7}, 1)), in(ints(t, {7}, 2)), in(ints(t, {3, 5, 1}, 3))}, name("int", op));
      check(op, {in(ints(t, {9}, 1)), in(ints(t, {9}, 2)), in(ints(t, {1}, 3)), in(ints(t, {9}, 4)), in(ints(t, {9}, 5))},
            name("int", op));
    }
  }
}

ir::Tensor bools(const std::vector<int64_t>& dims, uint32_t seed) { return randomTensor(DataType::kBool, dims, seed, 0, 2); }

TEST(CudaElementwiseTactic, BoolLogicAndComparisons) {
  for (const char* op : {"And", "Or", "Xor", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"}) {
    for (const auto& [da, db] : kBroadcasts) {
      SCOPED_TRACE(op);
      check(op, {in(bools(da, 3)), in(bools(db, 4))}, name("bool", op));
    }
  }
  for (const auto& dims : kSizes) check("Not", {in(bools(dims, 5))}, name("bool", "Not"));
}

// Mod, the bitwise ops, IsNaN / IsInf and Mean: served beyond the family's core list.
TEST(CudaElementwiseTactic, ModBitwiseClassifyAndMean) {
  for (DataType t : kIntTypes) {
    SCOPED_TRACE(ir::dtypeName(t));
    for (int64_t fmod : {0, 1}) {
      check("Mod", {in(ints(t, {8, 1}, 3)), in(ints(t, {8}, 3))}, name("int", "Mod"), attrs({{"fmod", fmod}}));
      check("Mod", {in(ints(t, {3, 345}, 5)), in(ints(t, {345}, 6))}, name("int", "Mod"), attrs({{"fmod", fmod}}));
    }
    for (const char* op : {"BitwiseAnd", "BitwiseOr", "BitwiseXor"}) {
      check(op, {in(ints(t, {8, 1}, 3)), in(ints(t, {8}, 3))}, name("int", op));
      check(op, {in(ints(t, {2, 3, 5, 7}, 1)), in(ints(t, {2, 3, 1, 1}, 2))}, name("int", op));
    }
    check("BitwiseNot", {in(ints(t, {3, 345}, 5))}, name("int", "BitwiseNot"));
  }
  for (const char* op : {"BitwiseAnd", "BitwiseOr", "BitwiseXor"})
    check(op, {in(bools({5, 1}, 1)), in(bools({7}, 2))}, name("bool", op));
  check("BitwiseNot", {in(bools({3, 345}, 1))}, name("bool", "BitwiseNot"));
  for (DataType t : kFloatTypes) {
    SCOPED_TRACE(ir::dtypeName(t));
    check("Mod", {in(values(t, {2, 3, 5, 7}, 1, -9, 9)), in(values(t, {2, 3, 1, 1}, 2, -3, 3))}, name("f32", "Mod"),
          attrs({{"fmod", int64_t(1)}}), 1e-6, rtolOf(t));
    check("IsNaN", {in(values(t, {3, 345}, 1))}, name("f32", "IsNaN"));
    check("IsInf", {in(values(t, {3, 345}, 1))}, name("f32", "IsInf"));
    check("IsInf", {in(values(t, {7}, 1))}, name("f32", "IsInf"), attrs({{"detect_negative", int64_t(0)}}));
    check("IsInf", {in(values(t, {7}, 1))}, name("f32", "IsInf"), attrs({{"detect_positive", int64_t(0)}}));
    check("Mean", {in(values(t, {7}, 1))}, name("f32", "Mean"), {}, 1e-6, rtolOf(t));
    check("Mean", {in(values(t, {2, 3, 5, 7}, 1)), in(values(t, {2, 3, 1, 1}, 2))}, name("f32", "Mean"), {}, 1e-6,
          rtolOf(t));
    check("Mean", {in(values(t, {3, 345}, 1)), in(values(t, {345}, 2)), in(values(t, {3, 1}, 3))}, name("f32", "Mean"), {},
          1e-6, rtolOf(t));
  }
  expectRefused("Mean", {in(ints(DataType::kI32, {7}, 1)), in(ints(DataType::kI32, {7}, 2))});
}

// ---- Clip, Sum/Max/Min, Where, Expand, Identity ------------------------------------------

TEST(CudaElementwiseTactic, ClipEveryInputForm) {
  for (DataType t : {DataType::kF32, DataType::kF16}) {
    const ir::Tensor x = values(t, {3, 345}, 7);
    auto s = [t](double v) {
      ir::Tensor c(t, {});
      c.setDouble(0, v);
      return c;
    };
    const std::string k = name("f32", "Clip");
    check("Clip", {in(x), constant(s(-1)), constant(s(2))}, k);
    check("Clip", {in(x), constant(s(-1))}, k);
    check("Clip", {in(x), omitted(), constant(s(0.5))}, k);
    check("Clip", {in(x)}, k);
    check("Clip", {in(x), constant(s(2)), constant(s(-1))}, k);  // min > max gives max
    check("Clip", {in(x), in(s(0)), in(s(6))}, k);                // min, max computed at run time
    ir::Tensor one(t, {1});
    one.setDouble(0, 0.25);
    check("Clip", {in(x), constant(one), omitted()}, k);  // a [1] bound
  }
}

TEST(CudaElementwiseTactic, VariadicFolds) {
  for (const char* op : {"Sum", "Max", "Min"}) {
    SCOPED_TRACE(op);
    const DataType t = DataType::kF32;
    check(op, {in(values(t, {7}, 1))}, name("f32", op));
    check(op, {in(values(t, {2, 3, 5, 7}, 1)), in(values(t, {2, 3, 1, 1}, 2))}, name("f32", op));
    check(op, {in(values(t, {2, 3, 5, 7}, 1)), in(values(t, {7}, 2)), in(values(t, {3, 1, 1}, 3))}, name("f32", op));
    std::vector<Arg> eight;
    for (uint32_t k = 0; k < 8; ++k) eight.push_back(in(values(DataType::kF16, {k % 2 ? 1 : 4, 7}, k)));
    check(op, eight, name("f32", op), {}, 1e-6, rtolOf(DataType::kF16));
    std::vector<Arg> nine;
    for (uint32_t k = 0; k < 9; ++k) nine.push_back(in(values(t, {7}, k)));
    expectRefused(op, nine);
  }
}

TEST(CudaElementwiseTactic, WhereEveryTypeWithMasks) {
  const DataType types[] = {DataType::kF32, DataType::kF16, DataType::kBF16, DataType::kI64,
                            DataType::kI32, DataType::kU8,  DataType::kI8,   DataType::kBool};
  for (DataType t : types) {
    SCOPED_TRACE(ir::dtypeName(t));
    auto v = [t](const std::vector<int64_t>& d, uint32_t seed) { return t == DataType::kBool ? bools(d, seed) : ir::isFloat(t) ? values(t, d, seed) : ints(t, d, seed); };
    const std::string k = name("any", "Where");
    check("Where", {in(bools({3, 345}, 1)), in(v({3, 345}, 2)), in(v({3, 345}, 3))}, k);
    // BERT's mask: a [B,1,1,S] condition picking a scalar fill or the scores [B,H,S,S].
    check("Where", {in(bools({2, 1, 1, 9}, 1)), constant(v({}, 2)), in(v({2, 4, 9, 9}, 3))}, k);
    check("Where", {in(bools({1}, 1)), in(v({5, 1}, 2)), in(v({7}, 3))}, k);
  }
}

TEST(CudaElementwiseTactic, ExpandBroadcastCopies) {
  auto shape = [](std::vector<int64_t> s) { return ir::Tensor::fromVector<int64_t>(DataType::kI64, {int64_t(s.size())}, s); };
  const std::string k = name("any", "Expand");
  for (DataType t : {DataType::kF32, DataType::kF16, DataType::kI64, DataType::kI32, DataType::kBool, DataType::kU8}) {
    SCOPED_TRACE(ir::dtypeName(t));
    auto v = [t](const std::vector<int64_t>& d) { return t == DataType::kBool ? bools(d, 3) : ir::isFloat(t) ? values(t, d, 3) : ints(t, d, 3); };
    check("Expand", {in(v({2, 1, 1, 9})), constant(shape({2, 1, 9, 9}))}, k);  // a mask to [B,1,S,S]
    check("Expand", {in(v({3, 1})), constant(shape({2, 1, 5}))}, k);           // rank grows, both ways
    check("Expand", {in(v({7})), constant(shape({1}))}, k);                    // nothing to do
    check("Expand", {in(v({})), constant(shape({3, 345}))}, k);                // a scalar fill
  }
}

// A computed shape: inference knows only the output's rank, the kernel takes the extents
// from the output view at run time (here: the node's output type set as the engine would).
TEST(CudaElementwiseTactic, ExpandWithAComputedShape) {
  const ir::Tensor x = ints(DataType::kI64, {2, 1, 1, 9}, 1);
  const ir::Tensor shape = ir::Tensor::fromVector<int64_t>(DataType::kI64, {4}, {2, 1, 9, 9});
  auto g = nodeGraph("Expand", {in(x), in(shape)}, {});
  ir::Node& n = *g->nodes()[0];
  ASSERT_EQ(n.output(0)->type().shape.rank(), 4u);
  const std::vector<const runtime::Kernel*> ks = supportingKernels(n);
  ASSERT_EQ(ks.size(), 1u);
  EXPECT_EQ(ks[0]->name, name("any", "Expand"));
  n.output(0)->setType({DataType::kI64, ir::Shape::fromExtents({2, 1, 9, 9})});
  auto rt = simRuntime();
  expectMatch(runOnDevice(*ks[0], n, {x, shape}, *rt)[0], runReference(n, {x, shape})[0], 0, 0, "Expand");
}

TEST(CudaElementwiseTactic, IdentityCopiesEveryType) {
  for (DataType t : {DataType::kF32, DataType::kF16, DataType::kI64, DataType::kBool, DataType::kF64}) {
    SCOPED_TRACE(ir::dtypeName(t));
    check("Identity", {in(randomTensor(t, {3, 7}, 1, 0, 5))}, name("any", "Identity"));
  }
}

// ---- Cast ----------------------------------------------------------------------------------

TEST(CudaElementwiseTactic, CastEveryServedPair) {
  const DataType types[] = {DataType::kF32, DataType::kF16, DataType::kBF16, DataType::kI8,
                            DataType::kU8,  DataType::kI32, DataType::kI64,  DataType::kBool};
  // Values that round, saturate or wrap somewhere: NaN and infinities, halves (truncation
  // toward zero), past the 8-bit, 16-bit-float and 32-bit ranges, 2^24 + 1 and 2^53 + 1.
  const double specials[] = {std::numeric_limits<double>::quiet_NaN(), INFINITY, -INFINITY, 0.0, -0.0, 2.5, -2.5,
                             0.7, -0.7, 127.9, -128.9, 255.5, 300.7, -300.7, 65504, 65520, 70000, 1e-8,
                             3e9, -3e9, 1e10, 1e19, -1e19, 16777217, 9007199254740993.0, 1.0, -1.0, 42};
  const int64_t count = int64_t(sizeof specials / sizeof specials[0]);
  for (DataType from : types) {
    ir::Tensor x(from, {count + 1000});
    for (int64_t i = 0; i < count; ++i) {
      if (from == DataType::kI64 && std::fabs(specials[i]) < 9.2e18 && !std::isnan(specials[i]))
        x.data<int64_t>()[i] = int64_t(specials[i]);
      else if (!ir::isFloat(from) && (std::isnan(specials[i]) || std::isinf(specials[i])))
        x.setDouble(i, 0);
      else if (from == DataType::kI64 || from == DataType::kI32 || from == DataType::kI8 || from == DataType::kU8)
        x.setDouble(i, 0);  // filled below: setDouble does not wrap
      else
        x.setDouble(i, specials[i]);
    }
    // Integer sources: their edges and a wrap-around pattern.
    if (!ir::isFloat(from) && from != DataType::kBool) {
      const ir::Tensor e = ints(from, {count}, 17);
      std::memcpy(x.mutableRaw(), e.raw(), e.nbytes());
      if (from == DataType::kI64) {
        x.data<int64_t>()[6] = 9007199254740993LL;
        x.data<int64_t>()[7] = 16777217;
        x.data<int64_t>()[8] = 70000;
        x.data<int64_t>()[9] = -129;
      }
      if (from == DataType::kI32) {
        x.data<int32_t>()[6] = 16777217;
        x.data<int32_t>()[7] = 70000;
        x.data<int32_t>()[8] = -129;
      }
    }
    const ir::Tensor tail = from == DataType::kBool ? bools({1000}, 3) : ir::isFloat(from) ? values(from, {1000}, 3, -300, 300) : ints(from, {1000}, 3);
    std::memcpy(static_cast<char*>(x.mutableRaw()) + ir::storageBytes(from, count), tail.raw(), tail.nbytes());
    for (DataType to : types) {
      SCOPED_TRACE(std::string(ir::dtypeName(from)) + " -> " + ir::dtypeName(to));
      check("Cast", {in(x)}, name("any", "Cast"), attrs({{"to", int64_t(to)}}), 0, 0);
    }
  }
  // Empty and rank-0 tensors.
  check("Cast", {in(ir::Tensor(DataType::kF32, {0, 3}))}, name("any", "Cast"), attrs({{"to", int64_t(DataType::kI64)}}));
  check("Cast", {in(ir::Tensor::scalar<float>(DataType::kF32, -7.9f))}, name("any", "Cast"),
        attrs({{"to", int64_t(DataType::kI32)}}));
}

// ---- anvil.FusedElementwise -------------------------------------------------------------

ir::Attributes program(std::vector<std::string> p) { return attrs({{"program", std::move(p)}}); }

void checkFused(const std::vector<Arg>& args, std::vector<std::string> prog, DataType t) {
  SCOPED_TRACE(prog.front() + "... " + ir::dtypeName(t));
  check("FusedElementwise", args, "f32_fused_eltwise_program16_block256", program(std::move(prog)), 1e-6, rtolOf(t),
        "anvil");
}

TEST(CudaElementwiseTactic, FusedProgramsAsThePassBuildsThem) {
  for (DataType t : kFloatTypes) {
    // SiLU, a residual add and a ReLU; the residual broadcast as an SE gate would be.
    checkFused({in(values(t, {2, 3, 5, 7}, 1)), in(values(t, {2, 3, 1, 1}, 2))},
               {"Sigmoid 0", "Mul 0 2", "Add 3 1", "Relu 4"}, t);
    // Scale, bias and a clip with runtime bounds: x, s, b, lo, hi.
    auto s = [t](double v) {
      ir::Tensor c(t, {});
      c.setDouble(0, v);
      return c;
    };
    checkFused({in(values(t, {4, 33}, 1)), in(values(t, {33}, 2)), in(values(t, {33}, 3)), constant(s(-0.5)),
                constant(s(1.5))},
               {"Mul 0 1", "Add 5 2", "Clip 6 3 4"}, t);
    checkFused({in(values(t, {7}, 1)), in(values(t, {7}, 2))}, {"Neg 0", "Add 2 1", "Tanh 3"}, t);
    checkFused({in(values(t, {3, 345}, 1))}, {"Abs 0", "Sqrt 1", "Exp 1", "Div 2 3"}, t);
    checkFused({in(values(t, {1}, 1))}, {"Gelu 0 approximate=tanh", "LeakyRelu 1 alpha=0.2"}, t);
    checkFused({in(values(t, {2, 4, 9, 9}, 1)), in(values(t, {2, 1, 1, 9}, 2))},
               {"Add 0 1", "HardSigmoid 2 alpha=0.3 beta=0.4", "Mul 3 0", "Clip 4 _ 1", "Gelu 5 approximate=none"}, t);
  }
  // Every op of the program language once, on two inputs.
  const char* every[] = {"Add 0 1", "Sub 0 1", "Mul 0 1", "Div 0 1", "Pow 0 1", "Max 0 1", "Min 0 1", "PRelu 0 1",
                         "Clip 0 1 _", "Abs 0", "Neg 0", "Exp 0", "Log 0", "Sqrt 0", "Reciprocal 0", "Sigmoid 0",
                         "Tanh 0", "Relu 0", "Erf 0", "Floor 0", "Ceil 0", "Round 0", "Sin 0", "Cos 0", "Softplus 0",
                         "Softsign 0", "Sign 0", "HardSwish 0", "Mish 0", "LeakyRelu 0 alpha=0.1", "Elu 0 alpha=0.7",
                         "Selu 0", "Celu 0 alpha=1.5", "HardSigmoid 0", "ThresholdedRelu 0 alpha=0.3",
                         "Gelu 0 approximate=none"};
  for (const char* p : every)
    checkFused({in(values(DataType::kF32, {3, 17}, 1)), in(values(DataType::kF32, {17}, 2, 0.5, 3))}, {p},
               DataType::kF32);
  // Sixteen instructions fit; seventeen do not.
  std::vector<std::string> longest;
  for (int k = 0; k < 16; ++k) longest.push_back("Add " + std::to_string(k) + " 0");
  checkFused({in(values(DataType::kF32, {7}, 1))}, longest, DataType::kF32);
  longest.push_back("Relu 16");
  expectRefused("FusedElementwise", {in(values(DataType::kF32, {7}, 1))}, program(longest), "anvil");
}

// ---- empty tensors, refusals, the launcher's checks ----------------------------------------

TEST(CudaElementwiseTactic, EmptyTensors) {
  check("Add", {in(ir::Tensor(DataType::kF32, {0, 3})), in(values(DataType::kF32, {3}, 1))}, name("f32", "Add"));
  check("Relu", {in(ir::Tensor(DataType::kF32, {0}))}, name("f32", "Relu"));
  check("Equal", {in(ir::Tensor(DataType::kI64, {2, 0})), in(ir::Tensor(DataType::kI64, {1}))}, name("int", "Equal"));
  check("Where", {in(ir::Tensor(DataType::kBool, {0})), in(values(DataType::kF32, {1}, 1)), in(values(DataType::kF32, {1}, 2))},
        name("any", "Where"));
}

TEST(CudaElementwiseTactic, RefusesWhatItDoesNotServe) {
  const ir::Tensor f64 = randomTensor(DataType::kF64, {7}, 1);
  expectRefused("Add", {in(f64), in(f64)});                                   // f64
  expectRefused("Relu", {in(f64)});
  expectRefused("LeakyRelu", {in(ints(DataType::kI64, {7}, 1))});            // float math on integers
  expectRefused("Pow", {in(ints(DataType::kI32, {7}, 1)), in(ints(DataType::kI32, {7}, 2))});
  expectRefused("Pow", {in(values(DataType::kF32, {7}, 1)), in(ints(DataType::kI64, {7}, 2))});  // mixed types
  expectRefused("Add", {in(randomTensor(DataType::kU16, {7}, 1)), in(randomTensor(DataType::kU16, {7}, 2))});
  expectRefused("Celu", {in(values(DataType::kF32, {7}, 1))}, attrs({{"alpha", 0.0f}}));
  const std::vector<int64_t> rank7 = {1, 2, 1, 2, 1, 2, 3};
  expectRefused("Add", {in(values(DataType::kF32, rank7, 1)), in(values(DataType::kF32, {3}, 2))});
  expectRefused("Cast", {in(values(DataType::kF32, {7}, 1))}, attrs({{"to", int64_t(DataType::kF64)}}));
  expectRefused("Cast", {in(values(DataType::kF32, {7}, 1))}, attrs({{"to", int64_t(DataType::kString)}}));
  expectRefused("FusedElementwise", {in(f64)}, program({"Relu 0"}), "anvil");
  std::vector<Arg> nine;
  std::vector<std::string> sum = {"Add 0 1"};
  for (uint32_t k = 0; k < 9; ++k) nine.push_back(in(values(DataType::kF32, {7}, k)));
  for (int k = 2; k < 9; ++k) sum.push_back("Add " + std::to_string(9 + k - 2) + " " + std::to_string(k));
  expectRefused("FusedElementwise", nine, program(sum), "anvil");
}

TEST(CudaElementwiseTactic, LauncherChecksItsArguments) {
  auto rt = simRuntime();
  const Stream s = rt->createStream();
  void* x = rt->allocate(64);
  void* y = rt->allocate(64);
  const int64_t d3[] = {3}, d5[] = {5}, d2x3[] = {2, 3};
  ElementwiseDesc d;
  d.numInputs = 1;
  d.in[0] = {x, DataType::kF32, 1, d3};
  d.out = {y, DataType::kF32, 1, d5};
  d.numInstrs = 1;
  d.code[0].op = kernels::EwOp::kRelu;
  d.code[0].a = 0;
  d.what = "Relu";
  EXPECT_THROW(launchElementwise(*rt, s, d), Error);  // 3 does not broadcast to 5
  d.out = {y, DataType::kF32, 1, d3};
  d.code[0].a = 1;
  EXPECT_THROW(launchElementwise(*rt, s, d), Error);  // reads an undefined register
  d.code[0].a = 0;
  d.in[0] = {x, DataType::kF32, 2, d2x3};
  EXPECT_THROW(launchElementwise(*rt, s, d), Error);  // input rank above the output's
  d.in[0] = {x, DataType::kF64, 1, d3};
  EXPECT_THROW(launchElementwise(*rt, s, d), Error);  // f64
  d.in[0] = {x, DataType::kF32, 1, d3};
  d.out = {static_cast<char*>(x) + 4, DataType::kF32, 1, d3};
  EXPECT_THROW(launchElementwise(*rt, s, d), Error);  // partial overlap
  d.out = {y, DataType::kF32, 1, d3};
  d.registers = EwRegisters::kI64;
  EXPECT_THROW(launchElementwise(*rt, s, d), Error);  // float storage in integer registers
  rt->destroyStream(s);
  rt->free(x);
  rt->free(y);
}

}  // namespace
}  // namespace anvil::cuda::testing
