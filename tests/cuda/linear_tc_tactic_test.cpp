// The tensor-core linear tactics (cuda/tactics/linear_tc.cpp) on the sim against the reference
// interpreter: MatMul / Gemm / Conv and their fused forms with constant weights in f16 and
// bf16, odd M, N, K (tails of every tile), transposes, batch broadcasting, conv windows and
// groups, every epilogue form, and the nodes they refuse.
//
// Two checks per case. (1) Tight: with A and B already rounded to the precision, the kernel's
// only difference from the reference is the f32 summation order, so 1e-4 (abs and rel) holds.
// (2) Honest: on the unrounded operands, each product a*b is off by at most (2u + u^2)|a||b|
// (u = 2^-11 for f16, 2^-8 for bf16; the rounded products are exact in f32), so the sum is off
// by at most 2.0001u * sum_k |a_k||b_k| <= 2.0001u * K * max|a| * max|b|, times |alpha| and
// the epilogue activation's Lipschitz bound (1.13 for Gelu and GeluTanh, 1.1 for Silu, 1.5 for
// HardSwish, 1 otherwise; lipschitzOf), plus the tight check's 1e-4.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "tactic_test_util.h"

namespace anvil::cuda::testing {
namespace {

struct Arg {
  ir::Tensor t;
  bool constant = false;
};
Arg runtimeArg(const std::vector<int64_t>& dims, uint32_t seed) { return {randomTensor(DataType::kF32, dims, seed), false}; }
Arg constArg(const std::vector<int64_t>& dims, uint32_t seed) { return {randomTensor(DataType::kF32, dims, seed), true}; }
const std::optional<Arg> kOmitted = std::nullopt;

std::string tcName(DataType prec) { return prec == DataType::kF16 ? "f16_gemm_wmma_64x64x16" : "bf16_gemm_wmma_64x64x16"; }

// x rounded to the precision and back, as the kernel stages it.
ir::Tensor rounded(const ir::Tensor& x, DataType prec) {
  ir::Tensor t = x;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float v = float(t.getDouble(i));
    t.setDouble(i, prec == DataType::kF16 ? __half2float(__float2half_rn(v))
                                          : __bfloat162float(__float2bfloat16_rn(v)));
  }
  return t;
}

std::unique_ptr<ir::Graph> makeNode(const std::string& op, const std::string& domain,
                                    const std::vector<std::optional<Arg>>& args, const ir::Attributes& attrs,
                                    DataType prec) {
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
  n->setPrecision(prec);
  g->addOutput(n->output(0));
  ir::inferShapes(*g);
  return g;
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

// K of the case: A's last dim, or its first when Gemm's transA.
int64_t reductionOf(const std::string& op, const std::vector<std::optional<Arg>>& args, const ir::Attributes& at) {
  const std::vector<int64_t>& a = args[0]->t.dims();
  if (op.find("Conv") != std::string::npos) return args[1]->t.numel() / args[1]->t.dims()[0];  // c/g * r * s
  if (op.find("Gemm") != std::string::npos && at.getInt("transA", 0) != 0) return a[0];
  return a.back();
}

// The header comment's Lipschitz bound of the node's activation.
double lipschitzOf(const ir::Attributes& at) { return at.getString("activation", "") == "HardSwish" ? 1.5 : 1.2; }

void expectMatches(const std::string& op, const std::string& domain, std::vector<std::optional<Arg>> args,
                   const ir::Attributes& at, DataType prec, const std::string& what) {
  SCOPED_TRACE(op + " " + ir::dtypeName(prec) + " " + what);
  const std::string name = tcName(prec);
  auto rt = simRuntime();
  {  // (1) operands already of the precision
    std::vector<std::optional<Arg>> r = args;
    r[0]->t = rounded(r[0]->t, prec);
    r[1]->t = rounded(r[1]->t, prec);
    auto g = makeNode(op, domain, r, at, prec);
    const ir::Node& n = *g->nodes()[0];
    ASSERT_TRUE(offered(n, name)) << name << " does not support " << n.label();
    const auto got = runOnDevice(*cudaKernel(n, name), n, inputsOf(r), *rt);
    expectClose(got[0], runReference(n, inputsOf(r))[0], 1e-4, 1e-4, what + " (rounded operands)");
  }
  // (2) f32 operands: the bound of the header comment (values in [-1, 1)).
  auto g = makeNode(op, domain, args, at, prec);
  const ir::Node& n = *g->nodes()[0];
  const double u = prec == DataType::kF16 ? 1.0 / 2048 : 1.0 / 256;
  const double alpha = std::fabs(at.getFloat("alpha", 1.0f));
  const double atol = lipschitzOf(at) * alpha * 2.0001 * u * double(reductionOf(op, args, at)) + 1e-4;
  const auto got = runOnDevice(*cudaKernel(n, name), n, inputsOf(args), *rt);
  expectClose(got[0], runReference(n, inputsOf(args))[0], atol, 1e-4, what + " (f32 operands)");
}

void expectRefused(const std::string& op, const std::string& domain, const std::vector<std::optional<Arg>>& args,
                   const ir::Attributes& at, DataType prec, const std::string& what) {
  auto g = makeNode(op, domain, args, at, prec);
  for (DataType p : {DataType::kF16, DataType::kBF16})
    EXPECT_FALSE(offered(*g->nodes()[0], tcName(p))) << op << " " << what << " should be refused by " << tcName(p);
}

ir::Attributes attrs(std::initializer_list<std::pair<const char*, ir::Attribute::Storage>> kv) {
  ir::Attributes a;
  for (const auto& [k, v] : kv) a.set(k, v);
  return a;
}

const DataType kPrecisions[] = {DataType::kF16, DataType::kBF16};

TEST(CudaTensorCoreTactic, MatMulOddShapes) {
  const int64_t shapes[][3] = {{1, 1, 1},   {7, 17, 33},  {17, 33, 7},   {33, 100, 17},
                               {100, 7, 100}, {1, 100, 33}, {65, 70, 40}, {33, 1, 64}};
  uint32_t seed = 1;
  for (DataType prec : kPrecisions)
    for (const auto& s : shapes) {
      const int64_t M = s[0], N = s[1], K = s[2];
      expectMatches("MatMul", "", {runtimeArg({M, K}, seed++), constArg({K, N}, seed++)}, {}, prec,
                    "M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K));
    }
}

TEST(CudaTensorCoreTactic, MatMulBroadcasting) {
  uint32_t seed = 50;
  for (DataType prec : kPrecisions) {
    expectMatches("MatMul", "", {runtimeArg({2, 3, 7, 17}, seed++), constArg({17, 33}, seed++)}, {}, prec,
                  "A [2,3,7,17] x B [17,33]");
    expectMatches("MatMul", "", {runtimeArg({2, 5, 17}, seed++), constArg({1, 17, 9}, seed++)}, {}, prec,
                  "A [2,5,17] x B [1,17,9]");
    expectMatches("MatMul", "", {runtimeArg({17}, seed++), constArg({17, 33}, seed++)}, {}, prec, "A vector");
    expectMatches("MatMul", "", {runtimeArg({5, 17}, seed++), constArg({17}, seed++)}, {}, prec, "B vector");
    expectMatches("MatMul", "", {runtimeArg({3, 1, 7}, seed++), constArg({1, 1, 7, 5}, seed++)}, {}, prec,
                  "B of higher rank with unit batch");
  }
}

TEST(CudaTensorCoreTactic, GemmForms) {
  const int64_t M = 17, N = 33, K = 7;
  uint32_t seed = 100;
  for (DataType prec : kPrecisions)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const std::string t = std::string("transA=") + char('0' + ta) + " transB=" + char('0' + tb);
        auto at = attrs({{"transA", int64_t(ta)}, {"transB", int64_t(tb)}, {"alpha", 1.5f}, {"beta", 0.75f}});
        const Arg A = runtimeArg(ta ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K}, seed++);
        const Arg B = constArg(tb ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N}, seed++);
        expectMatches("Gemm", "", {A, B}, at, prec, t + " no C");
        expectMatches("Gemm", "", {A, B, constArg({1, N}, seed++)}, at, prec, t + " C [1, N] folded with beta");
        expectMatches("Gemm", "", {A, B, runtimeArg({M, N}, seed++)}, at, prec, t + " C [M, N]");
        expectMatches("Gemm", "", {A, B, constArg({1}, seed++)}, at, prec, t + " scalar C");
        auto unit = attrs({{"transA", int64_t(ta)}, {"transB", int64_t(tb)}});
        expectMatches("Gemm", "", {A, B, runtimeArg({N}, seed++)}, unit, prec, t + " C [N] as the bias");
      }
  // Tails in all three dims at once, K past two stages.
  expectMatches("Gemm", "", {runtimeArg({100, 70}, 7), constArg({33, 70}, 8), constArg({33}, 9)},
                attrs({{"transB", int64_t(1)}}), DataType::kF16, "M=100 N=33 K=70, transB");
}

TEST(CudaTensorCoreTactic, FusedEpilogues) {
  const int64_t M = 7, N = 17, K = 33;
  uint32_t seed = 200;
  for (DataType prec : kPrecisions)
    for (const char* act : {"", "Relu", "Sigmoid", "Tanh", "Gelu", "Silu"}) {
      auto at = attrs({});
      if (*act) at.set("activation", std::string(act));
      const std::string a = std::string("act '") + act + "'";
      expectMatches("FusedMatMul", "anvil", {runtimeArg({2, M, K}, seed++), constArg({K, N}, seed++), constArg({N}, seed++)},
                    at, prec, a + " + bias");
      expectMatches("FusedGemm", "anvil", {runtimeArg({M, K}, seed++), constArg({N, K}, seed++), constArg({N}, seed++)},
                    [&] { auto g = at; g.set("transB", int64_t(1)); return g; }(), prec, a + " Gemm");
      at.set("has_residual", int64_t(1));
      expectMatches("FusedMatMul", "anvil",
                    {runtimeArg({2, M, K}, seed++), constArg({K, N}, seed++), kOmitted, runtimeArg({2, M, N}, seed++)},
                    at, prec, a + " with residual");
      expectMatches("FusedGemm", "anvil",
                    {runtimeArg({M, K}, seed++), constArg({K, N}, seed++), constArg({N}, seed++), runtimeArg({M, N}, seed++)},
                    at, prec, a + " Gemm with bias and residual");
    }
  for (DataType prec : kPrecisions) {
    expectMatches("FusedMatMul", "anvil", {runtimeArg({M, K}, 1), constArg({K, N}, 2), constArg({1}, 3)},
                  attrs({{"activation", std::string("Clip")}, {"activation_params", std::vector<float>{-0.5f, 0.25f}}}),
                  prec, "Clip -0.5..0.25, a folded [1] bias");
    expectMatches("FusedGemm", "anvil", {runtimeArg({M, K}, 4), constArg({K, N}, 5), kOmitted, runtimeArg({M, N}, 6)},
                  attrs({{"has_residual", int64_t(1)}, {"residual_order", std::string("activate_then_add")}}), prec,
                  "residual, activate_then_add without activation");
  }
  // The epilogue-only activations (mobilenet_v3's HardSwish / HardSigmoid, LeakyRelu, GeluTanh).
  for (DataType prec : kPrecisions)
    for (const auto& [act, params] : {std::pair<const char*, std::vector<float>>{"LeakyRelu", {0.15f}},
                                      {"HardSigmoid", {0.2f, 0.45f}}, {"HardSwish", {}}, {"GeluTanh", {}}}) {
      auto at = attrs({{"activation", std::string(act)}});
      if (!params.empty()) at.set("activation_params", params);
      expectMatches("FusedMatMul", "anvil", {runtimeArg({M, K}, seed++), constArg({K, N}, seed++), constArg({N}, seed++)},
                    at, prec, std::string(act) + " + bias");
    }
}

TEST(CudaTensorCoreTactic, EmptyAndOne) {
  for (DataType prec : kPrecisions) {
    expectMatches("MatMul", "", {runtimeArg({0, 9}, 1), constArg({9, 5}, 2)}, {}, prec, "M = 0");
    expectMatches("FusedMatMul", "anvil", {runtimeArg({3, 0}, 3), constArg({0, 5}, 4), constArg({5}, 5)},
                  attrs({{"activation", std::string("Sigmoid")}}), prec, "K = 0: the epilogue of the bias");
  }
}

std::string convName(DataType prec) {
  return prec == DataType::kF16 ? "f16_conv2d_implicit_gemm_wmma_64x64x16" : "bf16_conv2d_implicit_gemm_wmma_64x64x16";
}

void expectConvMatches(std::vector<std::optional<Arg>> args, const ir::Attributes& at, DataType prec,
                       const std::string& what, const std::string& op = "Conv") {
  // expectMatches with the conv kernel: the same two checks.
  SCOPED_TRACE(op + " " + ir::dtypeName(prec) + " " + what);
  const std::string name = convName(prec);
  auto rt = simRuntime();
  std::vector<std::optional<Arg>> r = args;
  r[0]->t = rounded(r[0]->t, prec);
  r[1]->t = rounded(r[1]->t, prec);
  const std::string domain = op == "Conv" ? "" : "anvil";
  auto g1 = makeNode(op, domain, r, at, prec);
  const ir::Node& n1 = *g1->nodes()[0];
  ASSERT_TRUE(offered(n1, name)) << name << " does not support " << n1.label();
  expectClose(runOnDevice(*cudaKernel(n1, name), n1, inputsOf(r), *rt)[0], runReference(n1, inputsOf(r))[0], 1e-4,
              1e-4, what + " (rounded operands)");
  auto g2 = makeNode(op, domain, args, at, prec);
  const ir::Node& n2 = *g2->nodes()[0];
  const double u = prec == DataType::kF16 ? 1.0 / 2048 : 1.0 / 256;
  const double atol = lipschitzOf(at) * 2.0001 * u * double(reductionOf(op, args, at)) + 1e-4;
  expectClose(runOnDevice(*cudaKernel(n2, name), n2, inputsOf(args), *rt)[0], runReference(n2, inputsOf(args))[0],
              atol, 1e-4, what + " (f32 operands)");
}

TEST(CudaTensorCoreTactic, ConvWindows) {
  uint32_t seed = 300;
  for (DataType prec : kPrecisions) {
    expectConvMatches({runtimeArg({1, 3, 9, 7}, seed++), constArg({17, 3, 3, 3}, seed++)},
                      attrs({{"pads", std::vector<int64_t>{1, 1, 1, 1}}}), prec, "3x3 pad 1, c=3 k=17");
    expectConvMatches({runtimeArg({2, 7, 6, 5}, seed++), constArg({33, 7, 1, 1}, seed++), constArg({33}, seed++)},
                      {}, prec, "1x1 with bias, 2 images");
    expectConvMatches({runtimeArg({1, 5, 11, 10}, seed++), constArg({7, 5, 3, 2}, seed++)},
                      attrs({{"strides", std::vector<int64_t>{2, 3}}, {"pads", std::vector<int64_t>{1, 0, 2, 1}}}), prec,
                      "3x2 strided, asymmetric pads");
    expectConvMatches({runtimeArg({1, 4, 9, 9}, seed++), constArg({6, 2, 3, 3}, seed++), constArg({6}, seed++)},
                      attrs({{"group", int64_t(2)}, {"dilations", std::vector<int64_t>{2, 2}},
                             {"auto_pad", std::string("SAME_UPPER")}}),
                      prec, "groups 2, dilated, SAME_UPPER");
    expectConvMatches({runtimeArg({1, 16, 9, 8}, seed++), constArg({65, 16, 1, 1}, seed++), constArg({65}, seed++),
                       runtimeArg({1, 65, 9, 8}, seed++)},
                      attrs({{"activation", std::string("Relu")}, {"has_residual", int64_t(1)}}), prec,
                      "FusedConv bias + residual + Relu, k=65 (two tiles of channels, 72 pixels)", "FusedConv");
    expectConvMatches({runtimeArg({1, 3, 5, 5}, seed++), constArg({4, 3, 3, 3}, seed++)},
                      attrs({{"activation", std::string("Clip")}, {"activation_params", std::vector<float>{0.0f, 0.5f}},
                             {"pads", std::vector<int64_t>{1, 1, 1, 1}}}),
                      prec, "FusedConv Clip 0..0.5", "FusedConv");
    expectConvMatches({runtimeArg({1, 3, 5, 5}, seed++), constArg({4, 3, 3, 3}, seed++), constArg({4}, seed++)},
                      attrs({{"activation", std::string("HardSwish")}, {"pads", std::vector<int64_t>{1, 1, 1, 1}}}),
                      prec, "FusedConv HardSwish", "FusedConv");
    expectConvMatches({runtimeArg({1, 3, 5, 5}, seed++), constArg({4, 3, 3, 3}, seed++)},
                      attrs({{"activation", std::string("HardSigmoid")},
                             {"activation_params", std::vector<float>{0.1667f, 0.5f}}}),
                      prec, "FusedConv HardSigmoid", "FusedConv");
  }
}

TEST(CudaTensorCoreTactic, RefusesWhatItCannotRun) {
  const int64_t M = 5, N = 6, K = 7;
  for (DataType prec : kPrecisions) {
    expectRefused("MatMul", "", {runtimeArg({M, K}, 1), runtimeArg({K, N}, 2)}, {}, prec, "runtime B");
    expectRefused("MatMul", "", {runtimeArg({2, M, K}, 1), constArg({2, K, N}, 2)}, {}, prec, "a batch of weights");
    expectRefused("Gemm", "", {runtimeArg({M, K}, 1), runtimeArg({K, N}, 2)}, {}, prec, "runtime B");
    expectRefused("FusedGemm", "anvil", {runtimeArg({M, K}, 1), constArg({K, N}, 2), kOmitted, runtimeArg({M, N}, 3)},
                  attrs({{"activation", std::string("Relu")}, {"has_residual", int64_t(1)},
                         {"residual_order", std::string("activate_then_add")}}),
                  prec, "Relu then residual");
  }
  for (DataType prec : kPrecisions) {
    auto dw = makeNode("Conv", "", {runtimeArg({1, 8, 5, 5}, 1), constArg({8, 1, 3, 3}, 2)},
                       attrs({{"group", int64_t(8)}}), prec);
    EXPECT_FALSE(offered(*dw->nodes()[0], convName(prec))) << "depthwise";
    auto rw = makeNode("Conv", "", {runtimeArg({1, 3, 5, 5}, 1), runtimeArg({4, 3, 3, 3}, 2)}, {}, prec);
    EXPECT_FALSE(offered(*rw->nodes()[0], convName(prec))) << "runtime weights";
    auto c3 = makeNode("Conv", "", {runtimeArg({1, 3, 5, 5, 5}, 1), constArg({4, 3, 3, 3, 3}, 2)}, {}, prec);
    EXPECT_FALSE(offered(*c3->nodes()[0], convName(prec))) << "3-D conv";
  }
  // An f32 node (no precision, or kF32) keeps the SIMT kernels: no tensor-core candidate.
  for (DataType prec : {DataType::kUndefined, DataType::kF32})
    expectRefused("MatMul", "", {runtimeArg({M, K}, 1), constArg({K, N}, 2)}, {}, prec, "f32 node");
  // And each precision only its own kernel.
  auto g = makeNode("MatMul", "", {runtimeArg({M, K}, 1), constArg({K, N}, 2)}, {}, DataType::kBF16);
  EXPECT_FALSE(offered(*g->nodes()[0], tcName(DataType::kF16)));
  EXPECT_TRUE(offered(*g->nodes()[0], tcName(DataType::kBF16)));
}

}  // namespace
}  // namespace anvil::cuda::testing
