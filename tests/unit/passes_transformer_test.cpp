// The transformer fusions (layernorm-, gelu-, softmax-, attention-fusion): IR text in ->
// pass -> IR text out, outputs before and after compared on the reference interpreter,
// the forms they must decline; and the anvil.Attention op (schema errors, reference
// kernel against a plain double-precision attention on odd shapes).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>

#include "anvil/error.h"
#include "fusion_test_util.h"

using namespace anvil;
using fusiontest::expectUnchanged;
using fusiontest::runPass;

namespace {

// ---- layernorm-fusion ------------------------------------------------------------------

// torch.nn.LayerNorm exported at opset 13.
const char* kTorchLayerNorm = R"(graph @main(%x: f32[2,4,8]) -> (%y: f32[2,4,8]) {
  %axes = const i64[1] [-1]
  %two = const f32[] [2]
  %eps = const f32[] [9.99999975e-06]
  %gamma = const f32[8] [1, 2, 3, 4, 0.5, 0.25, -1, 1.5]
  %beta = const f32[8] [0, 0.1, 0.2, 0.3, -0.4, 0.5, 0.6, 0.7]
  %0 = ReduceMean(%x, %axes)
  %1 = Sub(%x, %0)
  %2 = Pow(%1, %two)
  %3 = ReduceMean(%2, %axes)
  %4 = Add(%3, %eps)
  %5 = Sqrt(%4)
  %6 = Div(%1, %5)
  %7 = Mul(%6, %gamma)
  %y = Add(%7, %beta)
}
)";

TEST(LayerNormFusion, TorchForm) {
  auto r = runPass(kTorchLayerNorm, passes::fuseLayerNorm);
  EXPECT_EQ(r.changed, 1);
  EXPECT_EQ(r.printed,
            "graph @main(%x: f32[2,4,8]) -> (%y: f32[2,4,8]) {\n"
            "  %gamma = const f32[8] [1, 2, 3, 4, 0.5, 0.25, -1, 1.5]\n"
            "  %beta = const f32[8] [0, 0.100000001, 0.200000003, 0.300000012, -0.400000006, 0.5, 0.600000024, 0.699999988]\n"
            "  %y = LayerNormalization(%x, %gamma, %beta) {axis=-1, epsilon=9.99999975e-06} : f32[2,4,8]\n"
            "}\n");
  EXPECT_LT(r.error, 1e-5);
}

// Mul(d, d), Reciprocal(Sqrt), gamma and beta first, two trailing axes, gamma broadcast
// along one of them (expanded to the normalized shape).
TEST(LayerNormFusion, VariantsOverTwoAxes) {
  auto r = runPass(R"(graph @main(%x: f32[3,4,5]) -> (%y: f32[3,4,5]) {
  %axes = const i64[2] [-1, 1]
  %eps = const f32[1] [0.001]
  %gamma = const f32[4,1] [1, 2, 3, 4]
  %beta = const f32[5] [0.5, 0.25, 0, -0.25, -0.5]
  %0 = ReduceMean(%x, %axes)
  %1 = Sub(%x, %0)
  %2 = Mul(%1, %1)
  %3 = ReduceMean(%2, %axes)
  %4 = Add(%eps, %3)
  %5 = Sqrt(%4)
  %6 = Reciprocal(%5)
  %7 = Mul(%1, %6)
  %8 = Mul(%gamma, %7)
  %y = Add(%beta, %8)
}
)",
                   passes::fuseLayerNorm);
  EXPECT_EQ(r.changed, 1);
  EXPECT_EQ(r.printed,
            "graph @main(%x: f32[3,4,5]) -> (%y: f32[3,4,5]) {\n"
            "  %layernorm_scale = const f32[4,5] @layernorm_scale\n"
            "  %layernorm_bias = const f32[4,5] @layernorm_bias\n"
            "  %y = LayerNormalization(%x, %layernorm_scale, %layernorm_bias) {axis=-2, epsilon=0.00100000005} : "
            "f32[3,4,5]\n"
            "}\n");
  EXPECT_EQ(r.printed.find("ReduceMean"), std::string::npos) << r.printed;
  EXPECT_LT(r.error, 1e-5);
}

// No affine part; Pow(var + eps, -0.5) as TF writes rsqrt: a ones Scale is added.
TEST(LayerNormFusion, WithoutAffineAndRsqrtAsPow) {
  auto r = runPass(R"(graph @main(%x: f32[2,6]) -> (%y: f32[2,6]) {
  %axes = const i64[1] [1]
  %eps = const f32[] [1e-05]
  %half = const f32[] [-0.5]
  %0 = ReduceMean(%x, %axes)
  %1 = Sub(%x, %0)
  %2 = Mul(%1, %1)
  %3 = ReduceMean(%2, %axes)
  %4 = Add(%3, %eps)
  %5 = Pow(%4, %half)
  %y = Mul(%1, %5)
}
)",
                   passes::fuseLayerNorm);
  EXPECT_EQ(r.changed, 1);
  EXPECT_EQ(r.printed,
            "graph @main(%x: f32[2,6]) -> (%y: f32[2,6]) {\n"
            "  %layernorm_scale = const f32[6] [1, 1, 1, 1, 1, 1]\n"
            "  %y = LayerNormalization(%x, %layernorm_scale) {axis=-1, epsilon=9.99999975e-06} : f32[2,6]\n"
            "}\n");
  EXPECT_LT(r.error, 1e-5);
}

TEST(LayerNormFusion, DeclinesNonTrailingAxesAndSharedIntermediates) {
  // Normalizing over axis 1 of a rank-3 tensor is not a LayerNormalization.
  std::string notTrailing = kTorchLayerNorm;
  notTrailing.replace(notTrailing.find("[-1]"), 4, "[1]");
  expectUnchanged(notTrailing, passes::fuseLayerNorm);
  // The centered value is also a graph output.
  expectUnchanged(R"(graph @main(%x: f32[2,6]) -> (%y: f32[2,6], %1: f32[2,6]) {
  %axes = const i64[1] [-1]
  %eps = const f32[] [1e-05]
  %0 = ReduceMean(%x, %axes)
  %1 = Sub(%x, %0)
  %2 = Mul(%1, %1)
  %3 = ReduceMean(%2, %axes)
  %4 = Add(%3, %eps)
  %5 = Sqrt(%4)
  %y = Div(%1, %5)
}
)",
                  passes::fuseLayerNorm);
  // The two reductions disagree.
  expectUnchanged(R"(graph @main(%x: f32[2,3,6]) -> (%y: f32[2,3,6]) {
  %a1 = const i64[1] [-1]
  %a2 = const i64[2] [-2, -1]
  %eps = const f32[] [1e-05]
  %0 = ReduceMean(%x, %a1)
  %1 = Sub(%x, %0)
  %2 = Mul(%1, %1)
  %3 = ReduceMean(%2, %a2)
  %4 = Add(%3, %eps)
  %5 = Sqrt(%4)
  %y = Div(%1, %5)
}
)",
                  passes::fuseLayerNorm);
  // epsilon is a graph input (a caller could override it): not a constant.
  expectUnchanged(R"(graph @main(%x: f32[2,6], %eps: f32[]) -> (%y: f32[2,6]) {
  %axes = const i64[1] [-1]
  %0 = ReduceMean(%x, %axes)
  %1 = Sub(%x, %0)
  %2 = Mul(%1, %1)
  %3 = ReduceMean(%2, %axes)
  %4 = Add(%3, %eps)
  %5 = Sqrt(%4)
  %y = Div(%1, %5)
}
)",
                  passes::fuseLayerNorm);
}

// gamma that is not a constant stays a Mul after the fused node.
TEST(LayerNormFusion, RuntimeGammaStaysOutside) {
  auto r = runPass(R"(graph @main(%x: f32[2,6], %g: f32[6]) -> (%y: f32[2,6]) {
  %axes = const i64[1] [-1]
  %eps = const f32[] [1e-05]
  %0 = ReduceMean(%x, %axes)
  %1 = Sub(%x, %0)
  %2 = Mul(%1, %1)
  %3 = ReduceMean(%2, %axes)
  %4 = Add(%3, %eps)
  %5 = Sqrt(%4)
  %6 = Div(%1, %5)
  %y = Mul(%6, %g)
}
)",
                   passes::fuseLayerNorm);
  EXPECT_EQ(r.changed, 1);
  EXPECT_NE(r.printed.find("LayerNormalization(%x, "), std::string::npos) << r.printed;
  EXPECT_NE(r.printed.find("%y = Mul(%0, %g)"), std::string::npos) << r.printed;
  EXPECT_LT(r.error, 1e-5);
}

// ---- gelu-fusion -------------------------------------------------------------------------

// F.gelu as torch exports it: Div by sqrt(2), Erf, +1, *x, *0.5.
TEST(GeluFusion, TorchErfForm) {
  auto r = runPass(R"(graph @main(%x: f32[3,7]) -> (%y: f32[3,7]) {
  %s2 = const f32[] [1.41421354]
  %one = const f32[] [1]
  %half = const f32[] [0.5]
  %0 = Div(%x, %s2)
  %1 = Erf(%0)
  %2 = Add(%1, %one)
  %3 = Mul(%x, %2)
  %y = Mul(%3, %half)
}
)",
                   passes::fuseGelu);
  EXPECT_EQ(r.changed, 1);
  EXPECT_EQ(r.printed,
            "graph @main(%x: f32[3,7]) -> (%y: f32[3,7]) {\n"
            "  %y = Gelu(%x) {approximate=\"none\"} : f32[3,7]\n"
            "}\n");
  EXPECT_LT(r.error, 1e-6);
}

// Mul by 1/sqrt(2); the 0.5 applied to x first; operands commuted.
TEST(GeluFusion, ErfFormHalfFirst) {
  auto r = runPass(R"(graph @main(%x: f32[5]) -> (%y: f32[5]) {
  %r2 = const f32[] [0.707106769]
  %one = const f32[] [1]
  %half = const f32[] [0.5]
  %0 = Mul(%r2, %x)
  %1 = Erf(%0)
  %2 = Add(%one, %1)
  %3 = Mul(%half, %x)
  %y = Mul(%2, %3)
}
)",
                   passes::fuseGelu);
  EXPECT_EQ(r.changed, 1);
  EXPECT_NE(r.printed.find("%y = Gelu(%x) {approximate=\"none\"}"), std::string::npos) << r.printed;
  EXPECT_LT(r.error, 1e-6);
}

// 0.5 * (1 + erf) first, then times x.
TEST(GeluFusion, ErfFormHalfOnSum) {
  auto r = runPass(R"(graph @main(%x: f32[2,3]) -> (%y: f32[2,3]) {
  %s2 = const f32[] [1.41421354]
  %one = const f32[] [1]
  %half = const f32[] [0.5]
  %0 = Div(%x, %s2)
  %1 = Erf(%0)
  %2 = Add(%1, %one)
  %3 = Mul(%2, %half)
  %y = Mul(%3, %x)
}
)",
                   passes::fuseGelu);
  EXPECT_EQ(r.changed, 1);
  EXPECT_NE(r.printed.find("%y = Gelu(%x) {approximate=\"none\"}"), std::string::npos) << r.printed;
  EXPECT_LT(r.error, 1e-6);
}

// F.gelu(approximate='tanh') as torch exports it (x^3 as Mul(x, Mul(x, x))).
TEST(GeluFusion, TorchTanhForm) {
  auto r = runPass(R"(graph @main(%x: f32[4,6]) -> (%y: f32[4,6]) {
  %c = const f32[] [0.0447149985]
  %k = const f32[] [0.797884583]
  %one = const f32[] [1]
  %half = const f32[] [0.5]
  %0 = Mul(%x, %x)
  %1 = Mul(%x, %0)
  %2 = Mul(%c, %1)
  %3 = Add(%x, %2)
  %4 = Mul(%k, %3)
  %5 = Tanh(%4)
  %6 = Add(%one, %5)
  %7 = Mul(%x, %6)
  %y = Mul(%half, %7)
}
)",
                   passes::fuseGelu);
  EXPECT_EQ(r.changed, 1);
  EXPECT_EQ(r.printed,
            "graph @main(%x: f32[4,6]) -> (%y: f32[4,6]) {\n"
            "  %y = Gelu(%x) {approximate=\"tanh\"} : f32[4,6]\n"
            "}\n");
  EXPECT_LT(r.error, 1e-6);
}

// HF "gelu_new": 0.5 * x first, Pow(x, 3).
TEST(GeluFusion, HuggingFaceTanhForm) {
  auto r = runPass(R"(graph @main(%x: f32[2,9]) -> (%y: f32[2,9]) {
  %half = const f32[] [0.5]
  %three = const f32[] [3]
  %c = const f32[] [0.0447149985]
  %k = const f32[] [0.797884583]
  %one = const f32[] [1]
  %0 = Mul(%x, %half)
  %1 = Pow(%x, %three)
  %2 = Mul(%1, %c)
  %3 = Add(%x, %2)
  %4 = Mul(%3, %k)
  %5 = Tanh(%4)
  %6 = Add(%5, %one)
  %y = Mul(%0, %6)
}
)",
                   passes::fuseGelu);
  EXPECT_EQ(r.changed, 1);
  EXPECT_NE(r.printed.find("%y = Gelu(%x) {approximate=\"tanh\"}"), std::string::npos) << r.printed;
  EXPECT_LT(r.error, 1e-6);
}

// ONNX's own Gelu function body (the *_expanded backend tests): Sum instead of Add, the
// 0.5 on x first, sqrt(2/pi) rounded differently.
TEST(GeluFusion, OnnxFunctionBodies) {
  auto erf = runPass(R"(graph @main(%x: f32[3]) -> (%y: f32[3]) {
  %half = const f32[] [0.5]
  %one = const f32[] [1]
  %s2 = const f32[] [1.41421354]
  %0 = Div(%x, %s2)
  %1 = Erf(%0)
  %2 = Sum(%one, %1)
  %3 = Mul(%half, %x)
  %y = Mul(%3, %2)
}
)",
                     passes::fuseGelu);
  EXPECT_EQ(erf.changed, 1);
  EXPECT_NE(erf.printed.find("%y = Gelu(%x) {approximate=\"none\"}"), std::string::npos) << erf.printed;
  EXPECT_LT(erf.error, 1e-6);
  auto tanh = runPass(R"(graph @main(%x: f32[3]) -> (%y: f32[3]) {
  %half = const f32[] [0.5]
  %one = const f32[] [1]
  %c = const f32[] [0.0447149985]
  %k = const f32[] [0.797884524]
  %three = const f32[] [3]
  %0 = Pow(%x, %three)
  %1 = Mul(%c, %0)
  %2 = Sum(%x, %1)
  %3 = Mul(%k, %2)
  %4 = Tanh(%3)
  %5 = Sum(%one, %4)
  %6 = Mul(%half, %x)
  %y = Mul(%6, %5)
}
)",
                      passes::fuseGelu);
  EXPECT_EQ(tanh.changed, 1);
  EXPECT_NE(tanh.printed.find("%y = Gelu(%x) {approximate=\"tanh\"}"), std::string::npos) << tanh.printed;
  EXPECT_LT(tanh.error, 1e-6);
}

TEST(GeluFusion, DeclinesWrongConstantsAndSharedValues) {
  // Div by 1.5 is not GELU.
  expectUnchanged(R"(graph @main(%x: f32[5]) -> (%y: f32[5]) {
  %s2 = const f32[] [1.5]
  %one = const f32[] [1]
  %half = const f32[] [0.5]
  %0 = Div(%x, %s2)
  %1 = Erf(%0)
  %2 = Add(%1, %one)
  %3 = Mul(%x, %2)
  %y = Mul(%3, %half)
}
)",
                  passes::fuseGelu);
  // The erf is also read elsewhere.
  expectUnchanged(R"(graph @main(%x: f32[5]) -> (%y: f32[5], %1: f32[5]) {
  %s2 = const f32[] [1.41421354]
  %one = const f32[] [1]
  %half = const f32[] [0.5]
  %0 = Div(%x, %s2)
  %1 = Erf(%0)
  %2 = Add(%1, %one)
  %3 = Mul(%x, %2)
  %y = Mul(%3, %half)
}
)",
                  passes::fuseGelu);
  // Multiplied by another value than the erf's argument.
  expectUnchanged(R"(graph @main(%x: f32[5], %z: f32[5]) -> (%y: f32[5]) {
  %s2 = const f32[] [1.41421354]
  %one = const f32[] [1]
  %half = const f32[] [0.5]
  %0 = Div(%x, %s2)
  %1 = Erf(%0)
  %2 = Add(%1, %one)
  %3 = Mul(%z, %2)
  %y = Mul(%3, %half)
}
)",
                  passes::fuseGelu);
  // A [1,1] constant lifts x [5] to rank 2: not a GELU of x.
  expectUnchanged(R"(graph @main(%x: f32[5]) -> (%y: f32[1,5]) {
  %s2 = const f32[] [1.41421354]
  %one = const f32[] [1]
  %half = const f32[1,1] [0.5]
  %0 = Div(%x, %s2)
  %1 = Erf(%0)
  %2 = Add(%1, %one)
  %3 = Mul(%x, %2)
  %y = Mul(%3, %half)
}
)",
                  passes::fuseGelu);
}

// ---- softmax-fusion ----------------------------------------------------------------------

TEST(SoftmaxFusion, MaxSubtractedForm) {
  auto r = runPass(R"(graph @main(%x: f32[2,3,5]) -> (%y: f32[2,3,5]) {
  %axes = const i64[1] [-1]
  %0 = ReduceMax(%x, %axes) {keepdims=1}
  %1 = Sub(%x, %0)
  %2 = Exp(%1)
  %3 = ReduceSum(%2, %axes) {keepdims=1}
  %y = Div(%2, %3)
}
)",
                   passes::fuseSoftmax);
  EXPECT_EQ(r.changed, 1);
  EXPECT_EQ(r.printed,
            "graph @main(%x: f32[2,3,5]) -> (%y: f32[2,3,5]) {\n"
            "  %y = Softmax(%x) {axis=2} : f32[2,3,5]\n"
            "}\n");
  EXPECT_LT(r.error, 1e-6);
}

TEST(SoftmaxFusion, ReciprocalFormOverMiddleAxis) {
  auto r = runPass(R"(graph @main(%x: f32[2,7,3]) -> (%y: f32[2,7,3]) {
  %axes = const i64[1] [1]
  %0 = ReduceMax(%x, %axes)
  %1 = Sub(%x, %0)
  %2 = Exp(%1)
  %3 = ReduceSum(%2, %axes)
  %4 = Reciprocal(%3)
  %y = Mul(%4, %2)
}
)",
                   passes::fuseSoftmax, 3, 30.0);
  EXPECT_EQ(r.changed, 1);
  EXPECT_NE(r.printed.find("%y = Softmax(%x) {axis=1}"), std::string::npos) << r.printed;
  EXPECT_LT(r.error, 1e-6);
}

TEST(SoftmaxFusion, DeclinesPlainFormAndMismatchedAxes) {
  // Without the max subtracted (overflows where Softmax does not): documented decline.
  expectUnchanged(R"(graph @main(%x: f32[2,5]) -> (%y: f32[2,5]) {
  %axes = const i64[1] [-1]
  %0 = Exp(%x)
  %1 = ReduceSum(%0, %axes)
  %y = Div(%0, %1)
}
)",
                  passes::fuseSoftmax);
  expectUnchanged(R"(graph @main(%x: f32[4,5]) -> (%y: f32[4,5]) {
  %a0 = const i64[1] [0]
  %a1 = const i64[1] [1]
  %0 = ReduceMax(%x, %a0)
  %1 = Sub(%x, %0)
  %2 = Exp(%1)
  %3 = ReduceSum(%2, %a1)
  %y = Div(%2, %3)
}
)",
                  passes::fuseSoftmax);
  // The max over two axes is not a one-axis softmax.
  expectUnchanged(R"(graph @main(%x: f32[4,5]) -> (%y: f32[4,5]) {
  %a = const i64[2] [0, 1]
  %0 = ReduceMax(%x, %a)
  %1 = Sub(%x, %0)
  %2 = Exp(%1)
  %3 = ReduceSum(%2, %a)
  %y = Div(%2, %3)
}
)",
                  passes::fuseSoftmax);
  // exp is also returned.
  expectUnchanged(R"(graph @main(%x: f32[4,5]) -> (%y: f32[4,5], %2: f32[4,5]) {
  %a = const i64[1] [1]
  %0 = ReduceMax(%x, %a)
  %1 = Sub(%x, %0)
  %2 = Exp(%1)
  %3 = ReduceSum(%2, %a)
  %y = Div(%2, %3)
}
)",
                  passes::fuseSoftmax);
}

// ---- attention-fusion --------------------------------------------------------------------

// torch.nn.MultiheadAttention (opset 17): q, k, v [N*h, S, d] (k as [S, N*h, d] before its
// Transpose [1,2,0]), q / sqrt(d), scores * 1, additive key-padding mask [N*h, 1, S].
const char* kTorchMha = R"(graph @main(%q: f32[4,5,8], %kr: f32[5,4,8], %v: f32[4,5,8], %mask: f32[4,1,5]) -> (%y: f32[4,5,8]) {
  %c = const f32[] [2.82842708]
  %one = const f32[] [1]
  %0 = Div(%q, %c)
  %1 = Transpose(%kr) {perm=[1, 2, 0]}
  %2 = MatMul(%0, %1)
  %3 = Mul(%2, %one)
  %4 = Add(%3, %mask)
  %5 = Softmax(%4) {axis=-1}
  %y = MatMul(%5, %v)
}
)";

TEST(AttentionFusion, TorchMultiheadAttention) {
  auto r = runPass(kTorchMha, passes::fuseAttention);
  EXPECT_EQ(r.changed, 1);
  EXPECT_EQ(r.printed,
            "graph @main(%q: f32[4,5,8], %kr: f32[5,4,8], %v: f32[4,5,8], %mask: f32[4,1,5]) -> (%y: f32[4,5,8]) {\n"
            "  %0 = Transpose(%kr) {perm=[1, 0, 2]} : f32[4,5,8]\n"
            "  %y = anvil.Attention(%q, %0, %v, %mask) {mask_kind=\"add\", scale=0.353553385} : f32[4,5,8]\n"
            "}\n");
  EXPECT_LT(r.error, 1e-5);
}

// HF BERT: 4-D [N, h, S, d], k through Transpose [0,2,3,1] of [N, S, h, d], scores / sqrt(d),
// extended mask [N, 1, 1, S].
TEST(AttentionFusion, HuggingFaceBert) {
  auto r = runPass(R"(graph @main(%q: f32[2,2,5,8], %k: f32[2,5,2,8], %v: f32[2,2,5,4], %m: f32[2,1,1,5]) -> (%y: f32[2,2,5,4]) {
  %c = const f32[] [2.82842708]
  %0 = Transpose(%k) {perm=[0, 2, 3, 1]}
  %1 = MatMul(%q, %0)
  %2 = Div(%1, %c)
  %3 = Add(%2, %m)
  %4 = Softmax(%3) {axis=3}
  %y = MatMul(%4, %v)
}
)",
                   passes::fuseAttention);
  EXPECT_EQ(r.changed, 1);
  EXPECT_NE(r.printed.find("%0 = Transpose(%k) {perm=[0, 2, 1, 3]} : f32[2,2,5,8]"), std::string::npos) << r.printed;
  EXPECT_NE(r.printed.find("%y = anvil.Attention(%q, %0, %v, %m) {mask_kind=\"add\", scale=0.353553385}"),
            std::string::npos)
      << r.printed;
  EXPECT_LT(r.error, 1e-5);
}

// Where(mask, -inf, scores): fill where true; K^T given directly (a Transpose is added);
// the mask broadcasts over batch and heads.
TEST(AttentionFusion, WhereMaskFillTrue) {
  auto r = runPass(R"(graph @main(%q: f32[2,3,4,6], %kt: f32[2,3,6,5], %v: f32[2,3,5,7], %m: bool[4,5]) -> (%y: f32[2,3,4,7]) {
  %ninf = const f32[] [-inf]
  %c = const f32[] [0.5]
  %0 = MatMul(%q, %kt)
  %1 = Mul(%c, %0)
  %2 = Where(%m, %ninf, %1)
  %3 = Softmax(%2) {axis=-1}
  %y = MatMul(%3, %v)
}
)",
                   passes::fuseAttention);
  EXPECT_EQ(r.changed, 1);
  EXPECT_EQ(r.printed,
            "graph @main(%q: f32[2,3,4,6], %kt: f32[2,3,6,5], %v: f32[2,3,5,7], %m: bool[4,5]) -> (%y: f32[2,3,4,7]) {\n"
            "  %0 = Transpose(%kt) {perm=[0, 1, 3, 2]} : f32[2,3,5,6]\n"
            "  %y = anvil.Attention(%q, %0, %v, %m) {mask_fill=-inf, mask_kind=\"fill_true\", scale=0.5} : f32[2,3,4,7]\n"
            "}\n");
  // Random masks may hide a whole row: both graphs then give NaN at the same places.
  EXPECT_LT(r.error, 1e-5);
}

// Where(mask, scores, -1e9): fill where false; no scale; Transpose [0,2,1] cancels to K itself.
TEST(AttentionFusion, WhereMaskFillFalseAndTransposeDropped) {
  auto r = runPass(R"(graph @main(%q: f32[3,4,6], %k: f32[3,5,6], %v: f32[3,5,2], %m: bool[3,1,5]) -> (%y: f32[3,4,2]) {
  %big = const f32[] [-1e+09]
  %0 = Transpose(%k) {perm=[0, 2, 1]}
  %1 = MatMul(%q, %0)
  %2 = Where(%m, %1, %big)
  %3 = Softmax(%2) {axis=2}
  %y = MatMul(%3, %v)
}
)",
                   passes::fuseAttention);
  EXPECT_EQ(r.changed, 1);
  EXPECT_EQ(r.printed,
            "graph @main(%q: f32[3,4,6], %k: f32[3,5,6], %v: f32[3,5,2], %m: bool[3,1,5]) -> (%y: f32[3,4,2]) {\n"
            "  %y = anvil.Attention(%q, %k, %v, %m) {mask_fill=-1e+09, mask_kind=\"fill_false\", scale=1.0} : f32[3,4,2]\n"
            "}\n");
  EXPECT_LT(r.error, 1e-5);
}

// No mask; scales on both Q and K^T (as torch 2's SDPA export writes sqrt(scale) twice).
TEST(AttentionFusion, ScalesOnBothSidesNoMask) {
  auto r = runPass(R"(graph @main(%q: f32[2,4,8], %k: f32[2,6,8], %v: f32[2,6,8]) -> (%y: f32[2,4,8]) {
  %s = const f32[] [0.594603539]
  %0 = Mul(%q, %s)
  %1 = Transpose(%k) {perm=[0, 2, 1]}
  %2 = Mul(%1, %s)
  %3 = MatMul(%0, %2)
  %4 = Softmax(%3) {axis=-1}
  %y = MatMul(%4, %v)
}
)",
                   passes::fuseAttention);
  EXPECT_EQ(r.changed, 1);
  EXPECT_EQ(r.printed,
            "graph @main(%q: f32[2,4,8], %k: f32[2,6,8], %v: f32[2,6,8]) -> (%y: f32[2,4,8]) {\n"
            "  %y = anvil.Attention(%q, %k, %v) {scale=0.353553355} : f32[2,4,8]\n"
            "}\n");
  EXPECT_LT(r.error, 1e-5);
}

TEST(AttentionFusion, Declines) {
  // The attention weights are also returned.
  expectUnchanged(R"(graph @main(%q: f32[2,4,8], %k: f32[2,6,8], %v: f32[2,6,8]) -> (%y: f32[2,4,8], %2: f32[2,4,6]) {
  %0 = Transpose(%k) {perm=[0, 2, 1]}
  %1 = MatMul(%q, %0)
  %2 = Softmax(%1) {axis=-1}
  %y = MatMul(%2, %v)
}
)",
                  passes::fuseAttention);
  // Softmax over the query axis.
  expectUnchanged(R"(graph @main(%q: f32[2,4,8], %k: f32[2,6,8], %v: f32[2,4,8]) -> (%y: f32[2,6,8]) {
  %0 = Transpose(%k) {perm=[0, 2, 1]}
  %1 = MatMul(%q, %0)
  %2 = Softmax(%1) {axis=1}
  %3 = Transpose(%2) {perm=[0, 2, 1]}
  %y = MatMul(%3, %v)
}
)",
                  passes::fuseAttention);
  // Scale after the mask (it would scale the mask too).
  expectUnchanged(R"(graph @main(%q: f32[2,4,8], %k: f32[2,6,8], %v: f32[2,6,8], %m: f32[2,1,6]) -> (%y: f32[2,4,8]) {
  %c = const f32[] [0.25]
  %0 = Transpose(%k) {perm=[0, 2, 1]}
  %1 = MatMul(%q, %0)
  %2 = Add(%1, %m)
  %3 = Mul(%2, %c)
  %4 = Softmax(%3) {axis=-1}
  %y = MatMul(%4, %v)
}
)",
                  passes::fuseAttention);
  // A mask that enlarges the scores ([2,4,6] -> [3,2,4,6]).
  expectUnchanged(R"(graph @main(%q: f32[2,4,8], %k: f32[2,6,8], %v: f32[2,6,8], %m: f32[3,1,1,6]) -> (%y: f32[3,2,4,8]) {
  %0 = Transpose(%k) {perm=[0, 2, 1]}
  %1 = MatMul(%q, %0)
  %2 = Add(%1, %m)
  %3 = Softmax(%2) {axis=-1}
  %y = MatMul(%3, %v)
}
)",
                  passes::fuseAttention);
  // f64 is left to the unfused ops.
  expectUnchanged(R"(graph @main(%q: f64[2,4,8], %k: f64[2,6,8], %v: f64[2,6,8]) -> (%y: f64[2,4,8]) {
  %0 = Transpose(%k) {perm=[0, 2, 1]}
  %1 = MatMul(%q, %0)
  %2 = Softmax(%1) {axis=-1}
  %y = MatMul(%2, %v)
}
)",
                  passes::fuseAttention);
}

// ---- the anvil.Attention op ------------------------------------------------------------

// Plain double-precision attention with broadcasting batch dims and an optional mask.
ir::Tensor naiveAttention(const ir::Tensor& q, const ir::Tensor& k, const ir::Tensor& v, const ir::Tensor* mask,
                          const std::string& kind, double scale, double fill) {
  const size_t r = q.rank();
  const int64_t sq = q.dim(r - 2), d = q.dim(r - 1), sk = k.dim(r - 2), dv = v.dim(r - 1);
  std::vector<int64_t> batch;
  for (size_t i = 0; i + 2 < r; ++i) batch.push_back(std::max({q.dim(i), k.dim(i), v.dim(i)}));
  std::vector<int64_t> outDims = batch;
  outDims.push_back(sq);
  outDims.push_back(dv);
  ir::Tensor out(q.dtype(), outDims);
  auto at = [](const ir::Tensor& t, const std::vector<int64_t>& idx) {  // broadcast read
    int64_t off = 0;
    const size_t tr = t.rank();
    for (size_t i = 0; i < tr; ++i) {
      const int64_t x = idx[idx.size() - tr + i];
      off = off * t.dim(i) + (t.dim(i) == 1 ? 0 : x);
    }
    return t.getDouble(off);
  };
  const int64_t nb = ir::numelOf(batch);
  std::vector<int64_t> bi(batch.size(), 0);
  for (int64_t b = 0; b < nb; ++b) {
    for (int64_t i = 0; i < sq; ++i) {
      std::vector<double> s(static_cast<size_t>(sk), 0.0);
      for (int64_t j = 0; j < sk; ++j) {
        double dot = 0;
        for (int64_t t = 0; t < d; ++t) {
          auto qi = bi, ki = bi;
          qi.insert(qi.end(), {i, t});
          ki.insert(ki.end(), {j, t});
          dot += at(q, qi) * at(k, ki);
        }
        double x = dot * scale;
        if (mask) {
          auto mi = bi;
          mi.insert(mi.end(), {i, j});
          const double mv = at(*mask, mi);
          if (kind == "add") x += mv;
          else if ((mv != 0) == (kind == "fill_true")) x = fill;
        }
        s[size_t(j)] = x;
      }
      const double m = *std::max_element(s.begin(), s.end());
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - m));
      for (int64_t t = 0; t < dv; ++t) {
        double acc = 0;
        for (int64_t j = 0; j < sk; ++j) {
          auto vi = bi;
          vi.insert(vi.end(), {j, t});
          acc += s[size_t(j)] / sum * at(v, vi);
        }
        out.setDouble((b * sq + i) * dv + t, acc);
      }
    }
    for (size_t a = batch.size(); a-- > 0;) {
      if (++bi[a] < batch[a]) break;
      bi[a] = 0;
    }
  }
  return out;
}

ir::Tensor randomTensor(ir::DataType t, std::vector<int64_t> dims, std::mt19937& rng) {
  ir::Tensor x(t, std::move(dims));
  std::uniform_real_distribution<double> u(-1.5, 1.5);
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (t == ir::DataType::kBool) x.data<bool>()[i] = rng() % 4 != 0;
    else x.setDouble(i, u(rng));
  }
  return x;
}

struct AttnCase {
  std::vector<int64_t> q, k, v, mask;
  std::string kind;
};

TEST(AttentionOp, ReferenceKernelMatchesPlainAttention) {
  const AttnCase cases[] = {
      {{1, 1, 3}, {1, 1, 3}, {1, 1, 1}, {}, "none"},                     // one key
      {{5, 7}, {11, 7}, {11, 13}, {5, 11}, "add"},                       // rank 2, odd sizes
      {{2, 3, 7, 5}, {2, 3, 11, 5}, {2, 3, 11, 13}, {2, 1, 1, 11}, "add"},
      {{2, 3, 7, 5}, {1, 3, 11, 5}, {2, 1, 11, 4}, {7, 11}, "fill_true"},  // batch broadcast
      {{3, 4, 13, 8}, {3, 4, 5, 8}, {3, 4, 5, 8}, {3, 1, 13, 1}, "fill_false"},
  };
  std::mt19937 rng(7);
  for (const AttnCase& c : cases) {
    SCOPED_TRACE(c.kind + " q rank " + std::to_string(c.q.size()));
    ir::Graph g;
    auto input = [&](const char* name, ir::DataType t, const std::vector<int64_t>& dims) {
      ir::Value* v = g.addValue(name, {t, ir::Shape::fromExtents(dims)});
      g.addInput(v);
      return v;
    };
    std::vector<ir::Value*> ins = {input("q", ir::DataType::kF32, c.q), input("k", ir::DataType::kF32, c.k),
                                   input("v", ir::DataType::kF32, c.v)};
    const bool hasMask = c.kind != "none";
    const ir::DataType mt = c.kind == "add" ? ir::DataType::kF32 : ir::DataType::kBool;
    if (hasMask) ins.push_back(input("m", mt, c.mask));
    ir::Node* n = g.addNode("Attention", "anvil", "attn", ins, {"y"});
    n->attrs().set("scale", 0.3f);
    if (hasMask) n->attrs().set("mask_kind", c.kind);
    if (hasMask && c.kind != "add") n->attrs().set("mask_fill", -1e4f);
    g.addOutput(n->output(0));
    ir::inferShapes(g);
    ir::verify(g);
    std::map<std::string, ir::Tensor> data = {{"q", randomTensor(ir::DataType::kF32, c.q, rng)},
                                              {"k", randomTensor(ir::DataType::kF32, c.k, rng)},
                                              {"v", randomTensor(ir::DataType::kF32, c.v, rng)}};
    if (hasMask) data.emplace("m", randomTensor(mt, c.mask, rng));
    auto out = cpu::Interpreter::run(g, data);
    ir::Tensor want = naiveAttention(data.at("q"), data.at("k"), data.at("v"), hasMask ? &data.at("m") : nullptr,
                                     c.kind, 0.3f, -1e4f);
    ASSERT_EQ(out[0].dims(), want.dims());
    EXPECT_LT(fusiontest::relError(out[0], want), 1e-5);
  }
}

// ---- attention-fusion: the packed QKV fold ----------------------------------------------

// torch.nn.MultiheadAttention as exported (opset 17) from the packed projection on: x is the
// in-projection's output [S=5, N, 3E=24] (E = 8, H = 2 heads of D = 4), Q/K/V sliced off
// it, split into heads ([S, N*H, D], K straight to K^T), merged back to [S*N, E].
std::string torchPackedMha(const std::string& n, const std::string& maskDims) {
  return "graph @main(%x: f32[5," + n + ",24], %mask: f32[" + maskDims + R"(]) -> (%out) {
  %s0 = const i64[1] [0]
  %s1 = const i64[1] [8]
  %s2 = const i64[1] [16]
  %s3 = const i64[1] [24]
  %ax = const i64[1] [-1]
  %shp = const i64[3] [5, -1, 4]
  %oshp = const i64[2] [-1, 8]
  %c = const f32[] [2]
  %one = const f32[] [1]
  %q0 = Slice(%x, %s0, %s1, %ax)
  %k0 = Slice(%x, %s1, %s2, %ax)
  %v0 = Slice(%x, %s2, %s3, %ax)
  %q1 = Reshape(%q0, %shp)
  %q = Transpose(%q1) {perm=[1, 0, 2]}
  %k1 = Reshape(%k0, %shp)
  %v1 = Reshape(%v0, %shp)
  %v = Transpose(%v1) {perm=[1, 0, 2]}
  %qs = Div(%q, %c)
  %kt = Transpose(%k1) {perm=[1, 2, 0]}
  %sc = MatMul(%qs, %kt)
  %sm = Mul(%sc, %one)
  %sa = Add(%sm, %mask)
  %p = Softmax(%sa) {axis=-1}
  %y = MatMul(%p, %v)
  %z = Transpose(%y) {perm=[1, 0, 2]}
  %out = Reshape(%z, %oshp)
}
)";
}

TEST(AttentionFusion, TorchPackedQkvFoldsSplitAndMerge) {
  auto r = runPass(torchPackedMha("2", "4,1,5"), passes::fuseAttention);
  EXPECT_EQ(r.changed, 2);  // the attention, then the fold
  // The mask varies over N*H: split into [N, H, 1, S] (a view).
  EXPECT_EQ(r.printed,
            "graph @main(%x: f32[5,2,24], %mask: f32[4,1,5]) -> (%out: f32[10,8]) {\n"
            "  %oshp = const i64[2] [-1, 8]\n"
            "  %\"attention/Attention/mask_shape\" = const i64[4] [-1, 2, 1, 5]\n"
            "  %0 = Reshape(%mask, %\"attention/Attention/mask_shape\") : f32[2,2,1,5]\n"
            "  %1 = anvil.Attention(%x, %0) {head_size=4, layout=\"sbhd\", mask_kind=\"add\", num_heads=2, "
            "qkv_packed=1, scale=0.5} : f32[5,2,8]\n"
            "  %out = Reshape(%1, %oshp) : f32[10,8]\n"
            "}\n");
  EXPECT_LT(r.error, 1e-5);
  // A mask shared by every batch and head is read as it is.
  auto shared = runPass(torchPackedMha("3", "1,5,5"), passes::fuseAttention);
  EXPECT_EQ(shared.changed, 2);
  EXPECT_NE(shared.printed.find("= anvil.Attention(%x, %mask) {head_size=4, layout=\"sbhd\""), std::string::npos)
      << shared.printed;
  EXPECT_EQ(shared.printed.find("Reshape(%mask"), std::string::npos) << shared.printed;
  EXPECT_LT(shared.error, 1e-5);
}

// The builder runs the passes on the declared shapes: a symbolic batch N folds the same.
TEST(AttentionFusion, TorchPackedQkvSymbolicBatch) {
  for (const char* mask : {"1,1,5", "\"2*N\",1,5"}) {
    SCOPED_TRACE(mask);
    ir::Model m = fusiontest::parseTyped(torchPackedMha("N", mask));
    EXPECT_EQ(passes::fuseAttention(*m.graph, {}).changed, 2);
    ir::inferShapes(*m.graph);
    ir::verify(*m.graph);
    const std::string text = ir::printGraph(*m.graph);
    EXPECT_NE(text.find("qkv_packed=1, scale=0.5} : f32[5,N,8]"), std::string::npos) << text;
    EXPECT_NE(text.find("%out = Reshape(%"), std::string::npos) << text;
    EXPECT_EQ(text.find("Slice"), std::string::npos) << text;
    EXPECT_EQ(text.find("Transpose"), std::string::npos) << text;
    EXPECT_EQ(m.graph->outputs()[0]->type().str(), "f32[5*N,8]");
    // A mask over N*H heads is split to [N, H, 1, S]; a shared one is read as it is.
    EXPECT_EQ(text.find("Reshape(%mask") != std::string::npos, mask[0] == '"') << text;
  }
}

// A whole torch MultiheadAttention block as exported: hidden states h [N, S=5, E=8] swapped
// to [S, N, E] for the in-projection (MatMul + bias Add, as attention-fusion sees it before
// linear-epilogue-fusion), the packed attention, the out-projection on [S*N, E] rows, and
// swapped back for the residual Add.
std::string constList(int64_t n, double scale, int seed) {
  std::string out = "[";
  for (int64_t i = 0; i < n; ++i) out += (i ? ", " : "") + std::to_string(scale * std::sin(double(i * 7 + seed)));
  return out + "]";
}

std::string torchMhaBlock(const std::string& n) {
  std::string t = torchPackedMha(n, "1,1,5");
  t.replace(t.find("%x: f32[5," + n + ",24]"), ("%x: f32[5," + n + ",24]").size(), "%h: f32[" + n + ",5,8]");
  t.replace(t.find("-> (%out)"), 9, "-> (%r)");
  const std::string consts = "  %w = const f32[8,24] " + constList(192, 0.5, 1) + "\n  %bias = const f32[24] " +
                             constList(24, 0.2, 2) + "\n  %wo = const f32[8,8] " + constList(64, 0.5, 3) +
                             "\n  %bo = const f32[8] " + constList(8, 0.2, 4) +
                             "\n  %bshp = const i64[3] [5, -1, 8]\n"
                             "  %ht = Transpose(%h) {perm=[1, 0, 2]}\n  %pm = MatMul(%ht, %w)\n  %x = Add(%bias, %pm)\n";
  t.insert(t.find("  %q0 = Slice"), consts);
  t.replace(t.find("%out = Reshape(%z, %oshp)"), 25,
            "%m2 = Reshape(%z, %oshp)\n  %g = Gemm(%m2, %wo, %bo) {transB=1}\n  %g3 = Reshape(%g, %bshp)\n"
            "  %t = Transpose(%g3) {perm=[1, 0, 2]}\n  %r = Add(%h, %t)");
  return t;
}

TEST(AttentionFusion, TorchBlockLosesTheLayoutSwaps) {
  auto r = runPass(torchMhaBlock("2"), passes::fuseAttention);
  EXPECT_EQ(r.changed, 3);  // the attention, the fold, the layout
  const std::string& t = r.printed;
  EXPECT_EQ(t.find("Transpose"), std::string::npos) << t;
  EXPECT_NE(t.find("= MatMul(%h, %w) : f32[2,5,24]"), std::string::npos) << t;
  EXPECT_NE(t.find("layout=\"bshd\", mask_kind=\"add\", num_heads=2, qkv_packed=1, scale=0.5} : f32[2,5,8]"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("const i64[3] [2, -1, 8]"), std::string::npos) << t;  // N static: [N, -1, E]
  EXPECT_NE(t.find("%r = Add(%h, %"), std::string::npos) << t;
  EXPECT_LT(r.error, 1e-5);
  // Symbolic N: the back-reshape spells S instead.
  ir::Model m = fusiontest::parseTyped(torchMhaBlock("N"));
  EXPECT_EQ(passes::fuseAttention(*m.graph, {}).changed, 3);
  ir::inferShapes(*m.graph);
  ir::verify(*m.graph);
  const std::string sym = ir::printGraph(*m.graph);
  EXPECT_EQ(sym.find("Transpose"), std::string::npos) << sym;
  EXPECT_NE(sym.find("const i64[3] [-1, 5, 8]"), std::string::npos) << sym;
  EXPECT_NE(sym.find("qkv_packed=1, scale=0.5} : f32[N,5,8]"), std::string::npos) << sym;
  // The swapped hidden states also read elsewhere: only the fold happens.
  std::string shared = torchMhaBlock("2");
  shared.replace(shared.find("-> (%r)"), 7, "-> (%r, %ht)");
  auto s2 = runPass(shared, passes::fuseAttention);
  EXPECT_EQ(s2.changed, 2);
  EXPECT_NE(s2.printed.find("layout=\"sbhd\""), std::string::npos) << s2.printed;
  EXPECT_LT(s2.error, 1e-5);
}

// What the fold must leave alone (the plain anvil.Attention stays, still exact).
TEST(AttentionFusion, PackedFoldDeclines) {
  auto plainOnly = [](const std::string& text) {
    auto r = runPass(text, passes::fuseAttention);
    EXPECT_EQ(r.changed, 1) << r.printed;
    EXPECT_EQ(r.printed.find("qkv_packed"), std::string::npos) << r.printed;
    EXPECT_LT(r.error, 1e-5);
  };
  const std::string base = torchPackedMha("2", "4,1,5");
  auto edit = [&](const std::string& from, const std::string& to) {
    std::string t = base;
    const size_t at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return t.replace(at, from.size(), to);
  };
  // Q and K sliced in the other order.
  plainOnly(edit("%q0 = Slice(%x, %s0, %s1, %ax)\n  %k0 = Slice(%x, %s1, %s2, %ax)",
                 "%q0 = Slice(%x, %s1, %s2, %ax)\n  %k0 = Slice(%x, %s0, %s1, %ax)"));
  // The merged heads are also a graph output.
  plainOnly(edit("-> (%out)", "-> (%out, %z)"));
  // A merge Reshape that copies a dim (0) of the [S, N*H, D] input.
  plainOnly(edit("%oshp = const i64[2] [-1, 8]", "%oshp = const i64[3] [0, 0, 4]"));
  // V read from another projection.
  plainOnly(edit("%v0 = Slice(%x, %s2, %s3, %ax)", "%v0 = Slice(%x, %s1, %s2, %ax)"));
}

// The packed form against the plain one on the same data: Q, K, V cut out of QKV by hand.
TEST(AttentionOp, PackedFormMatchesPlainForm) {
  struct PackedCase {
    std::string layout, kind;
    int64_t b, s, h, d;
    std::vector<int64_t> mask;
  };
  const PackedCase cases[] = {
      {"bshd", "none", 2, 7, 3, 5, {}},          {"sbhd", "add", 3, 5, 2, 4, {3, 2, 1, 5}},
      {"bshd", "fill_true", 1, 17, 4, 8, {17, 17}}, {"sbhd", "fill_false", 2, 1, 1, 3, {2, 1, 1, 1}},
      {"sbhd", "add", 2, 6, 3, 2, {3, 6, 1}},
  };
  std::mt19937 rng(11);
  for (const PackedCase& c : cases) {
    SCOPED_TRACE(c.layout + " " + c.kind + " S=" + std::to_string(c.s));
    const bool bshd = c.layout == "bshd";
    const int64_t e = c.h * c.d;
    const std::vector<int64_t> xd = bshd ? std::vector<int64_t>{c.b, c.s, 3 * e} : std::vector<int64_t>{c.s, c.b, 3 * e};
    ir::Graph g;
    ir::Value* xv = g.addValue("x", {ir::DataType::kF32, ir::Shape::fromExtents(xd)});
    g.addInput(xv);
    std::vector<ir::Value*> ins = {xv};
    const bool hasMask = c.kind != "none";
    const ir::DataType mt = c.kind == "add" ? ir::DataType::kF32 : ir::DataType::kBool;
    if (hasMask) {
      ins.push_back(g.addValue("m", {mt, ir::Shape::fromExtents(c.mask)}));
      g.addInput(ins.back());
    }
    ir::Node* n = g.addNode("Attention", "anvil", "attn", ins, {"y"});
    n->attrs().set("qkv_packed", int64_t(1));
    n->attrs().set("layout", c.layout);
    n->attrs().set("num_heads", c.h);
    n->attrs().set("head_size", c.d);
    n->attrs().set("scale", 0.4f);
    if (hasMask) n->attrs().set("mask_kind", c.kind);
    if (hasMask && c.kind != "add") n->attrs().set("mask_fill", -1e4f);
    g.addOutput(n->output(0));
    ir::inferShapes(g);
    ir::verify(g);
    const std::vector<int64_t> yd = {xd[0], xd[1], e};
    EXPECT_EQ(n->output(0)->shape(), ir::Shape::fromExtents(yd));
    std::map<std::string, ir::Tensor> data = {{"x", randomTensor(ir::DataType::kF32, xd, rng)}};
    if (hasMask) data.emplace("m", randomTensor(mt, c.mask, rng));
    auto out = cpu::Interpreter::run(g, data);
    // Q, K, V [B, H, S, D] by hand, the plain attention, and the merge by hand.
    const ir::Tensor& x = data.at("x");
    auto xat = [&](int64_t b, int64_t s) { return bshd ? (b * c.s + s) * 3 * e : (s * c.b + b) * 3 * e; };
    std::vector<ir::Tensor> qkv;
    for (int64_t part = 0; part < 3; ++part) {
      ir::Tensor t(ir::DataType::kF32, {c.b, c.h, c.s, c.d});
      for (int64_t b = 0; b < c.b; ++b)
        for (int64_t hh = 0; hh < c.h; ++hh)
          for (int64_t s = 0; s < c.s; ++s)
            for (int64_t t2 = 0; t2 < c.d; ++t2)
              t.setDouble(((b * c.h + hh) * c.s + s) * c.d + t2, x.getDouble(xat(b, s) + part * e + hh * c.d + t2));
      qkv.push_back(std::move(t));
    }
    ir::Tensor plain = naiveAttention(qkv[0], qkv[1], qkv[2], hasMask ? &data.at("m") : nullptr, c.kind, 0.4f, -1e4f);
    ir::Tensor want(ir::DataType::kF32, yd);
    for (int64_t b = 0; b < c.b; ++b)
      for (int64_t hh = 0; hh < c.h; ++hh)
        for (int64_t s = 0; s < c.s; ++s)
          for (int64_t t2 = 0; t2 < c.d; ++t2)
            want.setDouble((bshd ? (b * c.s + s) : (s * c.b + b)) * e + hh * c.d + t2,
                           plain.getDouble(((b * c.h + hh) * c.s + s) * c.d + t2));
    ASSERT_EQ(out[0].dims(), want.dims());
    EXPECT_LT(fusiontest::relError(out[0], want), 1e-5);
  }
}

// The native anvil.Attention kernels are tested against the reference kernel in
// tests/unit/native_sequence_test.cpp.

// The fused node against the unfused chain it replaces (MatMul tactics not involved: both
// on their reference kernels): BERT-base-like head shapes.
// --gtest_also_run_disabled_tests to print the times.
TEST(AttentionOp, DISABLED_Timing) {
  const std::string text = R"(graph @main(%q: f32[12,128,64], %k: f32[12,128,64], %v: f32[12,128,64], %m: f32[12,1,128]) -> (%y: f32[12,128,64]) {
  %c = const f32[] [8]
  %0 = Div(%q, %c)
  %1 = Transpose(%k) {perm=[0, 2, 1]}
  %2 = MatMul(%0, %1)
  %3 = Add(%2, %m)
  %4 = Softmax(%3) {axis=-1}
  %y = MatMul(%4, %v)
}
)";
  ir::Model before = fusiontest::parseTyped(text), after = fusiontest::parseTyped(text);
  passes::fuseAttention(*after.graph, {});
  ir::inferShapes(*after.graph);
  auto in = fusiontest::randomInputs(*before.graph, 5);
  auto time = [](auto&& f) {
    f();
    std::vector<double> ms;
    for (int i = 0; i < 5; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      f();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[2];
  };
  const double unfused = time([&] { cpu::Interpreter::run(*before.graph, in); });
  const double fusedRef = time([&] { cpu::Interpreter::run(*after.graph, in); });
  // The native kernels' times: NativeSequenceBench.DISABLED_Timing (native_sequence_test.cpp).
  std::printf("[ timing ] unfused reference chain %.3f ms, fused reference %.3f ms (%.1fx)\n", unfused, fusedRef,
              unfused / fusedRef);
}

TEST(AttentionOp, InferenceNamesWhatIsWrong) {
  auto expectError = [](const std::string& text, const std::string& what) {
    try {
      fusiontest::parseTyped(text);
      ADD_FAILURE() << "no error for " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expectError(R"(graph @main(%q: f32[2,4,8], %k: f32[2,6,7], %v: f32[2,6,8]) -> (%y) {
  %y = anvil.Attention(%q, %k, %v)
})",
              "head size D");
  expectError(R"(graph @main(%q: f32[2,4,8], %k: f32[2,6,8], %v: f32[2,5,8]) -> (%y) {
  %y = anvil.Attention(%q, %k, %v)
})",
              "sequence length Sk");
  expectError(R"(graph @main(%q: f32[2,4,8], %k: f32[2,6,8], %v: f32[2,6,8], %m: f32[2,4,6]) -> (%y) {
  %y = anvil.Attention(%q, %k, %v, %m)
})",
              "needs mask_kind");
  expectError(R"(graph @main(%q: f32[2,4,8], %k: f32[2,6,8], %v: f32[2,6,8], %m: f32[2,4,6]) -> (%y) {
  %y = anvil.Attention(%q, %k, %v, %m) {mask_kind="fill_true"}
})",
              "must be bool");
  expectError(R"(graph @main(%q: f32[2,4,8], %k: f32[2,6,8], %v: f32[2,6,8], %m: f32[2,5,6]) -> (%y) {
  %y = anvil.Attention(%q, %k, %v, %m) {mask_kind="add"}
})",
              "does not broadcast");
  expectError(R"(graph @main(%q: i32[2,4,8], %k: i32[2,6,8], %v: i32[2,6,8]) -> (%y) {
  %y = anvil.Attention(%q, %k, %v)
})",
              "float type");
  expectError(R"(graph @main(%x: f32[2,4,24]) -> (%y) {
  %y = anvil.Attention(%x) {qkv_packed=1, num_heads=2, head_size=3}
})",
              "3 * num_heads * head_size = 18");
  expectError(R"(graph @main(%x: f32[2,4,24]) -> (%y) {
  %y = anvil.Attention(%x) {qkv_packed=1, num_heads=2, head_size=4, layout="bhsd"}
})",
              "layout must be bshd or sbhd");
  expectError(R"(graph @main(%x: f32[2,4,24], %m: f32[2,3,4,4]) -> (%y) {
  %y = anvil.Attention(%x, %m) {qkv_packed=1, num_heads=2, head_size=4, mask_kind="add"}
})",
              "does not broadcast");
  expectError(R"(graph @main(%x: f32[2,4,24]) -> (%y) {
  %y = anvil.Attention(%x) {qkv_packed=1, num_heads=2}
})",
              "head_size > 0");
  expectError(R"(graph @main(%x: f32[2,4,24]) -> (%y) {
  %y = anvil.Attention(%x)
})",
              "Q, K and V are inputs 0-2");
}

// Symbolic batch: inference keeps N.
TEST(AttentionOp, SymbolicBatch) {
  ir::Model m = fusiontest::parseTyped(R"(graph @main(%q: f32[N,4,8], %k: f32[N,6,8], %v: f32[N,6,3]) -> (%y) {
  %y = anvil.Attention(%q, %k, %v)
})");
  EXPECT_EQ(m.graph->outputs()[0]->type().str(), "f32[N,4,3]");
}

}  // namespace
