// The CUDA linear tactics (cuda/tactics/linear.cpp) on the sim against the reference
// interpreter: Gemm in its transpose forms and C broadcasts, MatMul batch broadcasting and
// vector operands, Conv windows (strides, pads, dilations, auto_pad, groups, depthwise), the
// fused epilogues, and the forms supports() refuses.
#include "cuda/types.h"
#include "tactic_test_util.h"

namespace anvil::cuda::testing {
namespace {

struct Arg {
  ir::Tensor t;
  bool constant = false;
};
Arg runtimeArg(const std::vector<int64_t>& dims, uint32_t seed, double range = 1) {
  return {randomTensor(DataType::kF32, dims, seed, -range, range), false};
}
Arg constArg(const std::vector<int64_t>& dims, uint32_t seed, double range = 1) {
  return {randomTensor(DataType::kF32, dims, seed, -range, range), true};
}
const std::optional<Arg> kOmitted = std::nullopt;

std::unique_ptr<ir::Graph> makeNode(const std::string& op, const std::string& domain,
                                    const std::vector<std::optional<Arg>>& args, const ir::Attributes& attrs) {
  auto g = std::make_unique<ir::Graph>();
  std::vector<ir::Value*> vs;
  for (size_t i = 0; i < args.size(); ++i) {
    if (!args[i]) {
      vs.push_back(nullptr);
      continue;
    }
    const std::string name = "x" + std::to_string(i);
    const ir::Tensor& t = args[i]->t;
    ir::Value* v = args[i]->constant ? g->addInitializer(name, t)
                                     : g->addValue(name, {t.dtype(), ir::Shape::fromExtents(t.dims())});
    if (!args[i]->constant) g->addInput(v);
    vs.push_back(v);
  }
  ir::Node* n = g->addNode(op, domain, "n0", vs, {"y"});
  n->attrs() = attrs;
  g->addOutput(n->output(0));
  ir::inferShapes(*g);
  return g;
}

std::string gemmName() { return "f32_gemm_simt_64x64x16_4x4"; }
std::string convName() { return "f32_conv2d_implicit_gemm_64x64x16_4x4"; }
std::string depthwiseName() { return "f32_depthwise_conv2d_direct_block256"; }

bool offered(const ir::Node& n, const std::string& name) {
  for (const runtime::Kernel* k : supportingKernels(n))
    if (k->name == name) return true;
  return false;
}

// Runs `op` on the sim through kernel `name` and compares with the reference.
void expectMatches(const std::string& op, const std::string& domain, const std::vector<std::optional<Arg>>& args,
                   const ir::Attributes& attrs, const std::string& name, const std::string& what) {
  SCOPED_TRACE(op + " " + what);
  auto g = makeNode(op, domain, args, attrs);
  const ir::Node& n = *g->nodes()[0];
  ASSERT_TRUE(offered(n, name)) << name << " does not support " << n.label();
  std::vector<ir::Tensor> inputs;
  for (const auto& a : args) inputs.push_back(a ? a->t : ir::Tensor());
  auto rt = simRuntime();
  const auto got = runOnDevice(*cudaKernel(n, name), n, inputs, *rt);
  const auto want = runReference(n, inputs);
  expectClose(got[0], want[0], 2e-5, 1e-4, what);
}

void expectRefused(const std::string& op, const std::string& domain, const std::vector<std::optional<Arg>>& args,
                   const ir::Attributes& attrs, const std::string& name, const std::string& what) {
  auto g = makeNode(op, domain, args, attrs);
  EXPECT_FALSE(offered(*g->nodes()[0], name)) << op << " " << what << " should be refused";
}

ir::Attributes attrs(std::initializer_list<std::pair<const char*, ir::Attribute::Storage>> kv) {
  ir::Attributes a;
  for (const auto& [k, v] : kv) a.set(k, v);
  return a;
}

// ---- Gemm ----

TEST(CudaLinearTactic, GemmTransposesAndCForms) {
  const int64_t M = 7, N = 17, K = 13;
  uint32_t seed = 1;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const std::vector<int64_t> ad = ta ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K};
      const std::vector<int64_t> bd = tb ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N};
      const std::string form = std::string("transA=") + char('0' + ta) + " transB=" + char('0' + tb);
      auto at = attrs({{"transA", int64_t(ta)}, {"transB", int64_t(tb)}, {"alpha", 0.5f}, {"beta", 1.0f}});
      expectMatches("Gemm", "", {runtimeArg(ad, seed++), runtimeArg(bd, seed++)}, at, gemmName(), form + " no C");
      expectMatches("Gemm", "", {runtimeArg(ad, seed++), constArg(bd, seed++), runtimeArg({N}, seed++)}, at,
                    gemmName(), form + " C [N]");
      auto at2 = attrs({{"transA", int64_t(ta)}, {"transB", int64_t(tb)}, {"alpha", 1.5f}, {"beta", -2.0f}});
      expectMatches("Gemm", "", {runtimeArg(ad, seed++), constArg(bd, seed++), constArg({1, N}, seed++)}, at2,
                    gemmName(), form + " const C [1, N] beta -2");
      expectMatches("Gemm", "", {runtimeArg(ad, seed++), constArg(bd, seed++), runtimeArg({M, N}, seed++)}, at2,
                    gemmName(), form + " C [M, N] beta -2");
    }
  auto at = attrs({{"beta", 0.25f}});
  expectMatches("Gemm", "", {runtimeArg({M, K}, 50), constArg({K, N}, 51), constArg({1}, 52)}, at, gemmName(),
                "const scalar C [1]");
  expectMatches("Gemm", "", {runtimeArg({M, K}, 53), constArg({K, N}, 54), constArg({}, 55)}, at, gemmName(),
                "const rank-0 C");
  expectMatches("Gemm", "", {runtimeArg({1, 1}, 56), runtimeArg({1, 1}, 57)}, {}, gemmName(), "1x1x1");
  expectMatches("Gemm", "", {runtimeArg({65, 3}, 58), runtimeArg({3, 70}, 59), runtimeArg({70}, 60)}, {}, gemmName(),
                "past one tile");
  expectMatches("Gemm", "", {runtimeArg({0, 4}, 64), runtimeArg({4, 5}, 65), runtimeArg({5}, 66)}, {}, gemmName(),
                "M = 0");
  // K = 0: C alone.
  expectMatches("Gemm", "", {runtimeArg({4, 0}, 61), runtimeArg({0, 5}, 62), runtimeArg({4, 5}, 63)}, {},
                gemmName(), "K = 0");
}

TEST(CudaLinearTactic, GemmRefusesWhatTheEpilogueCannotReach) {
  const int64_t M = 5, N = 6, K = 3;
  expectRefused("Gemm", "", {runtimeArg({M, K}, 1), runtimeArg({K, N}, 2), runtimeArg({M, 1}, 3)}, {}, gemmName(),
                "C [M, 1]");
  expectRefused("Gemm", "", {runtimeArg({M, K}, 1), runtimeArg({K, N}, 2), runtimeArg({N}, 3)},
                attrs({{"beta", 2.0f}}), gemmName(), "runtime C [N] with beta 2");
  ir::Tensor a = randomTensor(DataType::kF64, {M, K}, 1), b = randomTensor(DataType::kF64, {K, N}, 2);
  expectRefused("Gemm", "", {Arg{a, false}, Arg{b, false}}, {}, gemmName(), "f64");
}

TEST(CudaLinearTactic, FusedGemmEpilogues) {
  const int64_t M = 9, N = 11, K = 6;
  uint32_t seed = 100;
  for (const char* act : {"", "Relu", "Sigmoid", "Tanh", "Gelu", "Silu"}) {
    auto at = attrs({{"transB", int64_t(1)}, {"alpha", 1.0f}, {"beta", 1.0f}});
    if (*act) at.set("activation", std::string(act));
    expectMatches("FusedGemm", "anvil", {runtimeArg({M, K}, seed++), constArg({N, K}, seed++), constArg({N}, seed++)},
                  at, gemmName(), std::string("act '") + act + "'");
    at.set("has_residual", int64_t(1));
    at.set("residual_order", std::string("add_then_activate"));
    expectMatches("FusedGemm", "anvil",
                  {runtimeArg({M, K}, seed++), constArg({N, K}, seed++), constArg({N}, seed++),
                   runtimeArg({M, N}, seed++)},
                  at, gemmName(), std::string("act '") + act + "' with residual");
  }
  // Z after no activation is the same as before it.
  expectMatches("FusedGemm", "anvil",
                {runtimeArg({M, K}, 1), runtimeArg({K, N}, 2), kOmitted, runtimeArg({M, N}, 3)},
                attrs({{"has_residual", int64_t(1)}, {"residual_order", std::string("activate_then_add")}}), gemmName(),
                "residual, activate_then_add without activation");
  // C [M, N] and Z both need the kernel's Z: refused, as are the epilogue forms it lacks.
  expectRefused("FusedGemm", "anvil",
                {runtimeArg({M, K}, 1), runtimeArg({K, N}, 2), runtimeArg({M, N}, 3), runtimeArg({M, N}, 4)},
                attrs({{"has_residual", int64_t(1)}}), gemmName(), "C [M, N] with residual");
  expectMatches("FusedGemm", "anvil", {runtimeArg({M, K}, 1, 3), runtimeArg({K, N}, 2, 3), runtimeArg({N}, 3)},
                attrs({{"activation", std::string("Clip")}, {"activation_params", std::vector<float>{0.0f, 6.0f}}}),
                gemmName(), "Clip 0..6");
  expectMatches("FusedGemm", "anvil",
                {runtimeArg({M, K}, 4), runtimeArg({K, N}, 5), kOmitted, runtimeArg({M, N}, 6)},
                attrs({{"activation", std::string("Clip")},
                       {"activation_params", std::vector<float>{-0.5f, 0.25f}},
                       {"has_residual", int64_t(1)}}),
                gemmName(), "Clip -0.5..0.25 after the residual");
  expectRefused("FusedGemm", "anvil", {runtimeArg({M, K}, 1), runtimeArg({K, N}, 2), kOmitted, runtimeArg({M, N}, 3)},
                attrs({{"activation", std::string("Relu")},
                       {"has_residual", int64_t(1)},
                       {"residual_order", std::string("activate_then_add")}}),
                gemmName(), "Relu then residual");
}

// ---- MatMul ----

TEST(CudaLinearTactic, MatMulBatchBroadcasting) {
  struct Case {
    std::vector<int64_t> a, b;
    bool constB;
  };
  const std::vector<Case> cases = {
      {{7, 13}, {13, 17}, false},          {{2, 3, 5, 9}, {9, 4}, true},     {{5, 9}, {3, 9, 4}, false},
      {{2, 1, 5, 9}, {1, 3, 9, 4}, false}, {{4, 1, 5, 6}, {3, 6, 2}, false}, {{3, 2, 5, 6}, {3, 1, 6, 2}, false},
      {{3, 9}, {9}, false},                {{9}, {2, 9, 4}, false},          {{9}, {9}, false},
      {{2, 3, 4}, {2, 4, 5}, false},       {{1, 7, 3}, {3, 1}, true},        {{2, 0, 3}, {3, 4}, false},
  };
  uint32_t seed = 200;
  for (const Case& c : cases) {
    const std::string what = ir::Shape::fromExtents(c.a).str() + " x " + ir::Shape::fromExtents(c.b).str();
    expectMatches("MatMul", "", {runtimeArg(c.a, seed++), Arg{randomTensor(DataType::kF32, c.b, seed++), c.constB}},
                  {}, gemmName(), what);
  }
}

TEST(CudaLinearTactic, FusedMatMulEpilogues) {
  uint32_t seed = 300;
  // BERT's projections: [B, S, K] x constant [K, N] + bias, then Gelu or the residual.
  expectMatches("FusedMatMul", "anvil", {runtimeArg({2, 16, 64}, seed++), constArg({64, 96}, seed++), constArg({96}, seed++)},
                {}, gemmName(), "QKV projection");
  expectMatches("FusedMatMul", "anvil", {runtimeArg({2, 5, 24}, seed++), constArg({24, 40}, seed++), constArg({40}, seed++)},
                attrs({{"activation", std::string("Gelu")}}), gemmName(), "Gelu");
  expectMatches("FusedMatMul", "anvil",
                {runtimeArg({2, 5, 24}, seed++), constArg({24, 8}, seed++), constArg({8}, seed++),
                 runtimeArg({2, 5, 8}, seed++)},
                attrs({{"has_residual", int64_t(1)}, {"residual_order", std::string("add_then_activate")}}), gemmName(),
                "residual");
  expectMatches("FusedMatMul", "anvil",
                {runtimeArg({3, 7, 5}, seed++), runtimeArg({3, 5, 6}, seed++), constArg({1}, seed++),
                 runtimeArg({3, 7, 6}, seed++)},
                attrs({{"activation", std::string("Silu")}, {"has_residual", int64_t(1)}}), gemmName(),
                "batched, one-value bias, residual, Silu");
  expectMatches("FusedMatMul", "anvil", {runtimeArg({2, 1, 4, 3}, seed++), runtimeArg({1, 2, 3, 5}, seed++), kOmitted},
                attrs({{"activation", std::string("Tanh")}}), gemmName(), "outer loop, no bias, Tanh");
  expectRefused("FusedMatMul", "anvil", {runtimeArg({2, 5}, 1), runtimeArg({5, 6}, 2), runtimeArg({1}, 3)}, {},
                gemmName(), "runtime one-value bias");
}

// ---- Conv ----

TEST(CudaLinearTactic, ConvWindows) {
  struct Case {
    std::vector<int64_t> x, w;
    ir::Attributes a;
    bool bias;
    const char* what;
  };
  const std::vector<Case> cases = {
      {{1, 3, 5, 7}, {4, 3, 1, 1}, {}, true, "1x1"},
      {{2, 3, 7, 6}, {5, 3, 3, 3}, attrs({{"pads", std::vector<int64_t>{1, 1, 1, 1}}}), true, "3x3 p1"},
      {{1, 4, 9, 8}, {3, 4, 3, 3}, attrs({{"strides", std::vector<int64_t>{2, 2}}}), false, "3x3 s2"},
      {{1, 2, 9, 9}, {3, 2, 3, 3}, attrs({{"dilations", std::vector<int64_t>{2, 2}}, {"pads", std::vector<int64_t>{2, 2, 2, 2}}}),
       true, "3x3 d2 p2"},
      {{1, 3, 6, 7}, {2, 3, 2, 3}, attrs({{"pads", std::vector<int64_t>{0, 1, 2, 0}}, {"strides", std::vector<int64_t>{1, 2}}}),
       true, "2x3 asymmetric pads, strides 1x2"},
      {{2, 4, 5, 5}, {6, 2, 3, 3}, attrs({{"group", int64_t(2)}, {"pads", std::vector<int64_t>{1, 1, 1, 1}}}), true,
       "groups 2"},
      {{1, 6, 7, 7}, {6, 1, 3, 3}, attrs({{"group", int64_t(6)}, {"pads", std::vector<int64_t>{1, 1, 1, 1}}}), true,
       "depthwise 3x3"},
      {{1, 5, 8, 8}, {5, 1, 5, 5},
       attrs({{"group", int64_t(5)}, {"pads", std::vector<int64_t>{2, 2, 2, 2}}, {"strides", std::vector<int64_t>{2, 2}}}),
       false, "depthwise 5x5 s2"},
      {{1, 3, 7, 6}, {4, 3, 3, 3}, attrs({{"auto_pad", std::string("SAME_UPPER")}, {"strides", std::vector<int64_t>{2, 2}}}),
       true, "SAME_UPPER s2"},
      {{1, 3, 6, 6}, {4, 3, 2, 2}, attrs({{"auto_pad", std::string("SAME_LOWER")}}), true, "SAME_LOWER"},
      {{1, 3, 6, 6}, {4, 3, 3, 3}, attrs({{"auto_pad", std::string("VALID")}}), true, "VALID"},
  };
  uint32_t seed = 400;
  for (const Case& c : cases) {
    const int64_t k = c.w[0];
    std::vector<std::optional<Arg>> args = {runtimeArg(c.x, seed++), constArg(c.w, seed++)};
    if (c.bias) args.push_back(constArg({k}, seed++));
    const bool depthwise = c.x[1] > 1 && c.w[1] == 1 && c.w[0] == c.x[1] && c.a.getInt("group", 1) == c.x[1];
    expectMatches("Conv", "", args, c.a, depthwise ? depthwiseName() : convName(), c.what);
    // Exactly one CUDA kernel per conv: the direct depthwise one or the implicit GEMM.
    auto g = makeNode("Conv", "", args, c.a);
    EXPECT_EQ(supportingKernels(*g->nodes()[0]).size(), 1u) << c.what;
  }
  // Empty batches launch nothing.
  expectMatches("Conv", "", {runtimeArg({0, 3, 5, 5}, 1), constArg({4, 3, 3, 3}, 2), constArg({4}, 3)}, {}, convName(),
                "N = 0");
  // Runtime weights work as well.
  expectMatches("Conv", "", {runtimeArg({1, 2, 4, 4}, 1), runtimeArg({3, 2, 3, 3}, 2), runtimeArg({3}, 3)}, {},
                convName(), "runtime weights");
}

TEST(CudaLinearTactic, FusedConvEpilogues) {
  uint32_t seed = 500;
  for (const char* act : {"", "Relu", "Sigmoid", "Tanh", "Gelu", "Silu"}) {
    ir::Attributes at = attrs({{"pads", std::vector<int64_t>{1, 1, 1, 1}}});
    if (*act) at.set("activation", std::string(act));
    expectMatches("FusedConv", "anvil", {runtimeArg({1, 3, 5, 6}, seed++), constArg({4, 3, 3, 3}, seed++), constArg({4}, seed++)},
                  at, convName(), std::string("act '") + act + "'");
    at.set("has_residual", int64_t(1));
    at.set("group", int64_t(1));
    expectMatches("FusedConv", "anvil",
                  {runtimeArg({1, 3, 5, 6}, seed++), constArg({4, 3, 3, 3}, seed++), constArg({4}, seed++),
                   runtimeArg({1, 4, 5, 6}, seed++)},
                  at, convName(), std::string("act '") + act + "' with residual");
  }
  // mobilenet's depthwise and pointwise Relu6 (Clip 0..6), efficientnet's depthwise Silu.
  expectMatches("FusedConv", "anvil", {runtimeArg({1, 6, 7, 7}, 4, 3), constArg({6, 1, 3, 3}, 5, 3), constArg({6}, 6)},
                attrs({{"group", int64_t(6)},
                       {"pads", std::vector<int64_t>{1, 1, 1, 1}},
                       {"strides", std::vector<int64_t>{2, 2}},
                       {"activation", std::string("Clip")},
                       {"activation_params", std::vector<float>{0.0f, 6.0f}}}),
                depthwiseName(), "depthwise s2 Relu6");
  expectMatches("FusedConv", "anvil", {runtimeArg({1, 5, 3, 4}, 7, 3), constArg({7, 5, 1, 1}, 8, 3)},
                attrs({{"activation", std::string("Clip")}, {"activation_params", std::vector<float>{0.0f, 6.0f}}}),
                convName(), "pointwise Relu6, no bias");
  // Depthwise with Silu, as efficientnet's blocks have it.
  expectMatches("FusedConv", "anvil", {runtimeArg({1, 8, 7, 7}, 1), constArg({8, 1, 5, 5}, 2), constArg({8}, 3)},
                attrs({{"group", int64_t(8)}, {"pads", std::vector<int64_t>{2, 2, 2, 2}}, {"activation", std::string("Silu")}}),
                depthwiseName(), "depthwise Silu");
}

TEST(CudaLinearTactic, DepthwiseConvDirect) {
  struct Case {
    std::vector<int64_t> x;
    int64_t r, s;
    ir::Attributes a;
    const char* what;
  };
  const std::vector<Case> cases = {
      {{2, 3, 7, 9}, 3, 3, attrs({{"pads", std::vector<int64_t>{1, 1, 1, 1}}}), "3x3 p1, N 2"},
      {{1, 5, 9, 8}, 3, 2, attrs({{"pads", std::vector<int64_t>{0, 1, 2, 0}}, {"strides", std::vector<int64_t>{2, 1}}}),
       "3x2 asymmetric pads, strides 2x1"},
      {{1, 4, 11, 10}, 3, 3, attrs({{"dilations", std::vector<int64_t>{2, 3}}, {"pads", std::vector<int64_t>{2, 3, 2, 3}}}),
       "dilations 2x3"},
      {{1, 7, 6, 5}, 5, 5, attrs({{"auto_pad", std::string("SAME_UPPER")}, {"strides", std::vector<int64_t>{2, 2}}}),
       "5x5 SAME_UPPER s2"},
      {{1, 2, 1, 1}, 1, 1, {}, "1x1 pixel"},
  };
  uint32_t seed = 600;
  for (const Case& c : cases) {
    ir::Attributes a = c.a;
    a.set("group", c.x[1]);
    const std::vector<int64_t> w = {c.x[1], 1, c.r, c.s};
    expectMatches("Conv", "", {runtimeArg(c.x, seed++), constArg(w, seed++), constArg({c.x[1]}, seed++)}, a,
                  depthwiseName(), c.what);
    expectMatches("Conv", "", {runtimeArg(c.x, seed++), runtimeArg(w, seed++)}, a, depthwiseName(),
                  std::string(c.what) + ", runtime weights, no bias");
    auto g = makeNode("Conv", "", {runtimeArg(c.x, 1), constArg(w, 2)}, a);  // the output's extents for Z
    a.set("activation", std::string("Relu"));
    a.set("has_residual", int64_t(1));
    const std::vector<int64_t> y = g->nodes()[0]->output(0)->shape().extents();
    expectMatches("FusedConv", "anvil",
                  {runtimeArg(c.x, seed++), constArg(w, seed++), constArg({c.x[1]}, seed++), runtimeArg(y, seed++)}, a,
                  depthwiseName(), std::string(c.what) + ", residual, Relu");
  }
  // Channel multiplier 2 and a single channel stay on the implicit GEMM.
  expectMatches("Conv", "", {runtimeArg({1, 3, 5, 5}, 1), constArg({6, 1, 3, 3}, 2)}, attrs({{"group", int64_t(3)}}),
                convName(), "multiplier 2");
  expectMatches("Conv", "", {runtimeArg({1, 1, 5, 5}, 3), constArg({1, 1, 3, 3}, 4)}, {}, convName(), "one channel");
  expectRefused("Conv", "", {runtimeArg({1, 3, 5, 5}, 1), constArg({6, 1, 3, 3}, 2)}, attrs({{"group", int64_t(3)}}),
                depthwiseName(), "multiplier 2");
  expectMatches("Conv", "", {runtimeArg({0, 3, 5, 5}, 1), constArg({3, 1, 3, 3}, 2)}, attrs({{"group", int64_t(3)}}),
                depthwiseName(), "N = 0");
}

TEST(CudaLinearTactic, ConvRefusals) {
  expectRefused("Conv", "", {runtimeArg({1, 3, 9}, 1), constArg({4, 3, 3}, 2)}, {}, convName(), "1-D");
  expectRefused("Conv", "", {runtimeArg({1, 2, 4, 4, 4}, 1), constArg({3, 2, 3, 3, 3}, 2)}, {}, convName(), "3-D");
  expectRefused("FusedConv", "anvil",
                {runtimeArg({1, 3, 5, 5}, 1), constArg({4, 3, 3, 3}, 2), kOmitted, runtimeArg({1, 4, 3, 3}, 3)},
                attrs({{"activation", std::string("Gelu")}, {"has_residual", int64_t(1)},
                       {"residual_order", std::string("activate_then_add")}}),
                convName(), "Gelu then residual");
}

// ---- The parameterised and piecewise activations (mobilenet_v3's HardSwish / HardSigmoid) ----

// LeakyRelu [alpha], HardSigmoid [alpha, beta], HardSwish and GeluTanh in every SIMT family's
// epilogue: Gemm, MatMul, implicit-GEMM Conv and the direct depthwise Conv. Inputs of range 2
// put the pre-activations across HardSwish's and HardSigmoid's kinks and both flat parts.
ir::Attributes withActivation(ir::Attributes a, const char* act) {
  a.set("activation", std::string(act));
  if (std::string(act) == "LeakyRelu") a.set("activation_params", std::vector<float>{0.15f});
  if (std::string(act) == "HardSigmoid") a.set("activation_params", std::vector<float>{0.2f, 0.45f});
  return a;
}

TEST(CudaLinearTactic, EpilogueOnlyActivations) {
  static_assert(kActivationCount == 5, "the standalone activation kernels stay the five they were");
  uint32_t seed = 700;
  for (const char* act : {"LeakyRelu", "HardSigmoid", "HardSwish", "GeluTanh"}) {
    const std::string what = std::string("act ") + act;
    expectMatches("FusedGemm", "anvil", {runtimeArg({9, 6}, seed++, 2), constArg({11, 6}, seed++, 2), constArg({11}, seed++)},
                  withActivation(attrs({{"transB", int64_t(1)}}), act), gemmName(), what);
    expectMatches("FusedGemm", "anvil",
                  {runtimeArg({7, 5}, seed++, 2), runtimeArg({5, 3}, seed++, 2), kOmitted, runtimeArg({7, 3}, seed++)},
                  withActivation(attrs({{"has_residual", int64_t(1)}}), act), gemmName(), what + " after the residual");
    expectMatches("FusedMatMul", "anvil",
                  {runtimeArg({2, 5, 7}, seed++, 2), constArg({7, 9}, seed++, 2), constArg({9}, seed++)},
                  withActivation({}, act), gemmName(), what);
    expectMatches("FusedConv", "anvil",
                  {runtimeArg({1, 3, 5, 6}, seed++, 2), constArg({4, 3, 3, 3}, seed++, 2), constArg({4}, seed++)},
                  withActivation(attrs({{"pads", std::vector<int64_t>{1, 1, 1, 1}}}), act), convName(), what);
    expectMatches("FusedConv", "anvil",
                  {runtimeArg({1, 6, 7, 7}, seed++, 2), constArg({6, 1, 3, 3}, seed++, 2), constArg({6}, seed++)},
                  withActivation(attrs({{"group", int64_t(6)}, {"pads", std::vector<int64_t>{1, 1, 1, 1}}}), act),
                  depthwiseName(), what + ", depthwise");
  }
}

}  // namespace
}  // namespace anvil::cuda::testing
