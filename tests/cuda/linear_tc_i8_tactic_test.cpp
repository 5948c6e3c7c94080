// The INT8 tensor-core tactics (cuda/tactics/linear_tc_i8.cpp) on the sim against the reference
// interpreter: MatMul / Gemm / Conv and their fused forms given the INT8 precision, with input 0
// on a per-tensor u8 grid and the weights on per-feature symmetric grids (power-of-two scales,
// each feature reaching +-127, so the tactic's quantization reproduces them exactly). Every
// value is then exact in both runs: the kernel's integer sums are exact and its one rounding is
// the dequantizing product, the reference sums the same products in f32, so 1e-5 relative (with
// a small absolute floor) holds, while a wrong feature axis, scale, zero point, transpose, folded
// alpha or bias shows as an O(1) error. Also the weights' own (Q/DQ) scales, and the nodes the
// tactics refuse.
#include "cuda/linear_tc.h"
#include "tactic_test_util.h"

namespace anvil::cuda::testing {
namespace {

constexpr const char* kGemm = "i8_gemm_wmma_64x64x16";
constexpr const char* kConv = "i8_conv2d_implicit_gemm_wmma_64x64x16";

struct Arg {
  ir::Tensor t;
  bool constant = false;
};
const std::optional<Arg> kOmitted = std::nullopt;

// s * (q - zp) for q uniform on [0, 255]: values on the input's grid (s a power of two).
Arg gridInput(const std::vector<int64_t>& dims, float s, int zp, uint32_t seed) {
  ir::Tensor t(DataType::kF32, dims);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> q(0, 255);
  for (int64_t i = 0; i < t.numel(); ++i) t.setDouble(i, double(s) * (q(rng) - zp));
  return {t, false};
}

// A weight whose feature f (index along `axis`) is 2^-(2 + f % 5) * q, q in [-127, 127] with
// +-127 present: max |w| / 127 is the power of two exactly, so quantizing gives q back.
Arg gridWeight(const std::vector<int64_t>& dims, int64_t axis, uint32_t seed, std::vector<float>* scales = nullptr) {
  ir::Tensor t(DataType::kF32, dims);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> q(-127, 127);
  int64_t inner = 1;
  for (size_t i = size_t(axis) + 1; i < dims.size(); ++i) inner *= dims[i];
  const int64_t features = dims[size_t(axis)];
  std::vector<bool> hasMax(size_t(features), false);
  auto featureOf = [&](int64_t i) { return (i / inner) % features; };
  auto scaleOf = [&](int64_t f) { return std::ldexp(1.0, -int(2 + f % 5)); };
  for (int64_t i = 0; i < t.numel(); ++i) {
    const int64_t f = featureOf(i);
    int v = q(rng);
    if (!hasMax[size_t(f)]) v = (f % 2) ? 127 : -127, hasMax[size_t(f)] = true;
    t.setDouble(i, scaleOf(f) * v);
  }
  if (scales) {
    scales->clear();
    for (int64_t f = 0; f < features; ++f) scales->push_back(float(scaleOf(f)));
  }
  return {t, true};
}

Arg runtimeF32(const std::vector<int64_t>& dims, uint32_t seed) { return {randomTensor(DataType::kF32, dims, seed), false}; }
Arg constF32(const std::vector<int64_t>& dims, uint32_t seed) { return {randomTensor(DataType::kF32, dims, seed), true}; }

struct Grid {
  float scale = 1.0f / 64;
  int zp = 100;
};

// The node with precision `prec` and input 0 on grid g (no quantization when g.scale is 0);
// `weightScales` (if any) become the weight's own per-axis quantization along `weightAxis`.
std::unique_ptr<ir::Graph> makeNode(const std::string& op, const std::string& domain,
                                    const std::vector<std::optional<Arg>>& args, const ir::Attributes& attrs,
                                    DataType prec, Grid g, const std::vector<float>* weightScales = nullptr,
                                    int64_t weightAxis = 0) {
  auto gr = std::make_unique<ir::Graph>();
  std::vector<ir::Value*> vs;
  for (size_t i = 0; i < args.size(); ++i) {
    if (!args[i]) {
      vs.push_back(nullptr);
      continue;
    }
    const std::string name = "x" + std::to_string(i);
    const ir::Tensor& t = args[i]->t;
    ir::Value* v = args[i]->constant ? gr->addInitializer(name, t)
                                     : gr->addValue(name, {t.dtype(), ir::Shape::fromExtents(t.dims())});
    if (!args[i]->constant) gr->addInput(v);
    vs.push_back(v);
  }
  if (g.scale > 0) {
    ir::Quantization q;
    q.scale = ir::Tensor::scalar(DataType::kF32, g.scale);
    q.zeroPoint = ir::Tensor::scalar(DataType::kU8, uint8_t(g.zp));
    vs[0]->setQuantization(q);
  }
  if (weightScales) {
    ir::Quantization q;
    q.scale = ir::Tensor(DataType::kF32, {int64_t(weightScales->size())});
    for (size_t i = 0; i < weightScales->size(); ++i) q.scale.setDouble(int64_t(i), (*weightScales)[i]);
    q.axis = weightAxis;
    vs[1]->setQuantization(q);
  }
  ir::Node* n = gr->addNode(op, domain, "n0", vs, {"y"});
  n->attrs() = attrs;
  n->setPrecision(prec);
  gr->addOutput(n->output(0));
  ir::inferShapes(*gr);
  return gr;
}

bool offered(const ir::Node& n, const std::string& name) {
  for (const runtime::Kernel* k : supportingKernels(n))
    if (k->name == name) return true;
  return false;
}

std::vector<ir::Tensor> inputsOf(const std::vector<std::optional<Arg>>& args) {
  std::vector<ir::Tensor> in;
  for (const auto& a : args) in.push_back(a ? a->t : ir::Tensor());
  return in;
}

void expectMatches(const std::string& op, const std::string& domain, const std::vector<std::optional<Arg>>& args,
                   const ir::Attributes& at, const std::string& what, Grid g = {},
                   const std::vector<float>* weightScales = nullptr, int64_t weightAxis = 0) {
  SCOPED_TRACE(op + " i8 " + what);
  const std::string name = op.find("Conv") != std::string::npos ? kConv : kGemm;
  auto rt = simRuntime();
  auto gr = makeNode(op, domain, args, at, DataType::kI8, g, weightScales, weightAxis);
  const ir::Node& n = *gr->nodes()[0];
  ASSERT_TRUE(offered(n, name)) << name << " does not support " << n.label();
  const auto got = runOnDevice(*cudaKernel(n, name), n, inputsOf(args), *rt);
  expectClose(got[0], runReference(n, inputsOf(args))[0], 1e-4, 1e-5, what);
}

ir::Attributes attrs(std::initializer_list<std::pair<const char*, ir::Attribute::Storage>> kv) {
  ir::Attributes a;
  for (const auto& [k, v] : kv) a.set(k, v);
  return a;
}

TEST(CudaInt8TensorCoreTactic, MatMulOddShapesAndGrids) {
  const int64_t shapes[][3] = {{1, 1, 1}, {7, 17, 33}, {17, 33, 7}, {63, 7, 100}, {65, 70, 40}, {1, 100, 17}};
  const Grid grids[] = {{1.0f / 64, 100}, {1.0f / 8, 0}, {1.0f / 256, 255}, {1.0f / 32, 128}};
  uint32_t seed = 1;
  int i = 0;
  for (const auto& s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    const Grid g = grids[i++ % 4];
    expectMatches("MatMul", "", {gridInput({M, K}, g.scale, g.zp, seed++), gridWeight({K, N}, 1, seed++)}, {},
                  "M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) +
                      " zp=" + std::to_string(g.zp),
                  g);
  }
  expectMatches("MatMul", "", {gridInput({2, 3, 7, 17}, 1.0f / 64, 100, 90), gridWeight({17, 33}, 1, 91)}, {},
                "A [2,3,7,17]");
  expectMatches("MatMul", "", {gridInput({2, 5, 17}, 1.0f / 64, 100, 92), gridWeight({1, 17, 9}, 2, 93)}, {},
                "B [1,17,9]");
  // A vector B is one feature: one scale for all of it.
  const Arg column = gridWeight({17, 1}, 1, 95);
  Arg vec{ir::Tensor(DataType::kF32, {17}), true};
  for (int64_t i = 0; i < 17; ++i) vec.t.setDouble(i, column.t.getDouble(i));
  expectMatches("MatMul", "", {gridInput({5, 17}, 1.0f / 64, 100, 94), vec}, {}, "B vector");
}

TEST(CudaInt8TensorCoreTactic, GemmForms) {
  const int64_t M = 17, N = 33, K = 7;
  uint32_t seed = 100;
  const Grid g;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const std::string t = std::string("transA=") + char('0' + ta) + " transB=" + char('0' + tb);
      auto at = attrs({{"transA", int64_t(ta)}, {"transB", int64_t(tb)}, {"alpha", 1.5f}, {"beta", 0.75f}});
      const Arg A = gridInput(ta ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K}, g.scale, g.zp, seed++);
      const Arg B = gridWeight(tb ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N}, tb ? 0 : 1, seed++);
      expectMatches("Gemm", "", {A, B}, at, t + " no C, alpha 1.5");
      expectMatches("Gemm", "", {A, B, constF32({1, N}, seed++)}, at, t + " C [1, N] folded with beta");
      expectMatches("Gemm", "", {A, B, runtimeF32({M, N}, seed++)}, at, t + " C [M, N]");
      expectMatches("Gemm", "", {A, B, runtimeF32({N}, seed++)}, attrs({{"transA", int64_t(ta)}, {"transB", int64_t(tb)}}),
                    t + " C [N] as the bias");
    }
  expectMatches("Gemm", "", {gridInput({100, 70}, g.scale, g.zp, 7), gridWeight({33, 70}, 0, 8), constF32({33}, 9)},
                attrs({{"transB", int64_t(1)}}), "M=100 N=33 K=70, transB");
}

TEST(CudaInt8TensorCoreTactic, FusedEpilogues) {
  const int64_t M = 7, N = 17, K = 33;
  uint32_t seed = 200;
  const Grid g;
  for (const char* act : {"", "Relu", "Sigmoid", "Tanh", "Gelu", "Silu"}) {
    auto at = attrs({});
    if (*act) at.set("activation", std::string(act));
    const std::string a = std::string("act '") + act + "'";
    expectMatches("FusedMatMul", "anvil",
                  {gridInput({2, M, K}, g.scale, g.zp, seed++), gridWeight({K, N}, 1, seed++), constF32({N}, seed++)}, at,
                  a + " + bias");
    at.set("has_residual", int64_t(1));
    expectMatches("FusedGemm", "anvil",
                  {gridInput({M, K}, g.scale, g.zp, seed++), gridWeight({K, N}, 1, seed++), constF32({N}, seed++),
                   runtimeF32({M, N}, seed++)},
                  at, a + " Gemm with bias and residual");
  }
  expectMatches("FusedMatMul", "anvil", {gridInput({M, K}, g.scale, g.zp, 1), gridWeight({K, N}, 1, 2), constF32({1}, 3)},
                attrs({{"activation", std::string("Clip")}, {"activation_params", std::vector<float>{-0.5f, 0.25f}}}),
                "Clip -0.5..0.25, a folded [1] bias");
}

TEST(CudaInt8TensorCoreTactic, ConvWindows) {
  uint32_t seed = 300;
  const Grid g{1.0f / 32, 7};  // a zero point far from 128: padding taps must stage it
  expectMatches("Conv", "", {gridInput({1, 3, 9, 7}, g.scale, g.zp, seed++), gridWeight({17, 3, 3, 3}, 0, seed++)},
                attrs({{"pads", std::vector<int64_t>{1, 1, 1, 1}}}), "3x3 pad 1, c=3 k=17", g);
  expectMatches("Conv", "",
                {gridInput({2, 7, 6, 5}, g.scale, g.zp, seed++), gridWeight({33, 7, 1, 1}, 0, seed++), constF32({33}, seed++)},
                {}, "1x1 with bias, 2 images", g);
  expectMatches("Conv", "", {gridInput({1, 5, 11, 10}, g.scale, g.zp, seed++), gridWeight({7, 5, 3, 2}, 0, seed++)},
                attrs({{"strides", std::vector<int64_t>{2, 3}}, {"pads", std::vector<int64_t>{1, 0, 2, 1}}}),
                "3x2 strided, asymmetric pads", g);
  expectMatches("Conv", "",
                {gridInput({1, 4, 9, 9}, g.scale, g.zp, seed++), gridWeight({6, 2, 3, 3}, 0, seed++), constF32({6}, seed++)},
                attrs({{"group", int64_t(2)}, {"dilations", std::vector<int64_t>{2, 2}}, {"auto_pad", std::string("SAME_UPPER")}}),
                "groups 2, dilated, SAME_UPPER", g);
  expectMatches("FusedConv", "anvil",
                {gridInput({1, 16, 9, 8}, g.scale, g.zp, seed++), gridWeight({65, 16, 1, 1}, 0, seed++),
                 constF32({65}, seed++), runtimeF32({1, 65, 9, 8}, seed++)},
                attrs({{"activation", std::string("Relu")}, {"has_residual", int64_t(1)}}),
                "FusedConv bias + residual + Relu, k=65", g);
}

TEST(CudaInt8TensorCoreTactic, TheWeightsOwnScales) {
  // A Q/DQ model's weight carries its scales (per output feature): the tactic uses them.
  std::vector<float> scales;
  const Arg w = gridWeight({17, 33}, 1, 7, &scales);
  expectMatches("MatMul", "", {gridInput({5, 17}, 1.0f / 64, 100, 8), w}, {}, "MatMul, scales along axis 1", {},
                &scales, 1);
  std::vector<float> convScales;
  const Arg cw = gridWeight({9, 3, 3, 3}, 0, 9, &convScales);
  expectMatches("Conv", "", {gridInput({1, 3, 6, 6}, 1.0f / 64, 100, 10), cw}, {}, "Conv, scales along axis 0", {},
                &convScales, 0);
  // Scales along the reduction axis are not per feature: refused.
  auto bad = makeNode("MatMul", "", {gridInput({5, 17}, 1.0f / 64, 100, 8), w}, {}, DataType::kI8, {}, &scales, 0);
  EXPECT_FALSE(offered(*bad->nodes()[0], kGemm)) << "scales along K";
}

TEST(CudaInt8TensorCoreTactic, RefusesWhatItCannotRun) {
  const int64_t M = 5, N = 6, K = 7;
  const Grid g;
  auto refused = [&](const std::string& op, const std::vector<std::optional<Arg>>& args, const ir::Attributes& at,
                     DataType prec, Grid grid, const std::string& what) {
    auto gr = makeNode(op, op.rfind("Fused", 0) == 0 ? "anvil" : "", args, at, prec, grid);
    const std::string name = op.find("Conv") != std::string::npos ? kConv : kGemm;
    EXPECT_FALSE(offered(*gr->nodes()[0], name)) << op << " " << what;
  };
  const Arg A = gridInput({M, K}, g.scale, g.zp, 1);
  const Arg B = gridWeight({K, N}, 1, 2);
  for (DataType prec : {DataType::kUndefined, DataType::kF32, DataType::kF16, DataType::kBF16})
    refused("MatMul", {A, B}, {}, prec, g, std::string("a ") + ir::dtypeName(prec) + " node");
  refused("MatMul", {A, B}, {}, DataType::kI8, Grid{0.0f, 0}, "no grid on input 0");
  refused("MatMul", {A, Arg{B.t, false}}, {}, DataType::kI8, g, "runtime B");
  refused("MatMul", {gridInput({2, M, K}, g.scale, g.zp, 3), gridWeight({2, K, N}, 2, 4)}, {}, DataType::kI8, g,
          "a batch of weights");
  refused("FusedGemm", {A, B, kOmitted, runtimeF32({M, N}, 3)},
          attrs({{"activation", std::string("Relu")}, {"has_residual", int64_t(1)},
                 {"residual_order", std::string("activate_then_add")}}),
          DataType::kI8, g, "Relu then residual");
  refused("Conv", {gridInput({1, 8, 5, 5}, g.scale, g.zp, 5), gridWeight({8, 1, 3, 3}, 0, 6)},
          attrs({{"group", int64_t(8)}}), DataType::kI8, g, "depthwise");
  refused("MatMul", {gridInput({1, kInt8TensorCoreMaxK + 1}, g.scale, g.zp, 7), gridWeight({kInt8TensorCoreMaxK + 1, 1}, 1, 8)}, {},
          DataType::kI8, g, "K beyond exact s32 sums");
  // The CPU's per-component f32 modes are not this kernel's.
  auto mixed = makeNode("MatMul", "", {A, B}, {}, DataType::kI8, g);
  mixed->nodes()[0]->tacticParams().set("fp32_channels", std::vector<int64_t>{1});
  EXPECT_FALSE(offered(*mixed->nodes()[0], kGemm)) << "fp32_channels";
}

}  // namespace
}  // namespace anvil::cuda::testing
