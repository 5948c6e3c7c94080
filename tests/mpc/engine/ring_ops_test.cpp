// The ring kernels (runtime/mpc/ring_ops.h) against anvil's float reference kernels on odd
// shapes: small integers (negatives included) are exact in f32, so ring and float results
// must agree exactly once the ring is read as int64. The lookup and MaxPool semantics are
// checked on hand-made values (rounding, wrap, the tree's order).
#include <gtest/gtest.h>

#include <random>

#include "cpu/reference.h"
#include "ir/op_schema.h"
#include "runtime/mpc/ring_ops.h"

namespace anvil::mpc {
namespace {

using ir::Tensor;

RingVec randomRing(int64_t n, std::mt19937& rng, int lo = -9, int hi = 9) {
  std::uniform_int_distribution<int> d(lo, hi);
  RingVec v(n);
  for (Ring& x : v) x = Ring(int64_t(d(rng)));
  return v;
}

Tensor toFloat(const RingVec& v, const Dims& shape) {
  Tensor t(ir::DataType::kFloat, shape);
  for (size_t i = 0; i < v.size(); ++i) t.data<float>()[i] = float(int64_t(v[i]));
  return t;
}

// Runs one ONNX node on anvil's reference kernels; constant inputs become initializers.
Tensor reference(const std::string& op, const std::vector<Tensor>& ins, const ir::Attributes& attrs = {}) {
  ir::Graph g;
  std::vector<ir::Value*> vs;
  std::map<std::string, Tensor> feeds;
  for (size_t i = 0; i < ins.size(); ++i) {
    std::string name = "i" + std::to_string(i);
    if (ins[i].dtype() == ir::DataType::kInt64) {
      vs.push_back(g.addInitializer(name, ins[i]));
    } else {
      ir::Value* v = g.addValue(name, ins[i].type());
      g.addInput(v);
      vs.push_back(v);
      feeds[name] = ins[i];
    }
  }
  ir::Node* n = g.addNode(op, "", "n", vs, {"y"});
  n->attrs() = attrs;
  g.addOutput(n->output(0));
  ir::inferShapes(g);
  return cpu::Interpreter::run(g, feeds).at(0);
}

void expectSame(const RingVec& ring, const Tensor& ref) {
  ASSERT_EQ(int64_t(ring.size()), ref.numel());
  for (size_t i = 0; i < ring.size(); ++i)
    ASSERT_EQ(double(int64_t(ring[i])), ref.getDouble(int64_t(i))) << "element " << i;
}

ir::Attributes attrs(std::initializer_list<std::pair<std::string, std::vector<int64_t>>> ints, int64_t group = 0) {
  ir::Attributes a;
  for (const auto& [k, v] : ints) a.set(k, v);
  if (group) a.set("group", group);
  return a;
}

TEST(MpcRingOps, ConvWithGroupsStridesPadsDilationsMatchesTheFloatKernel) {
  std::mt19937 rng(1);
  struct Case {
    Dims x, w;
    ConvGeometry g;
  };
  std::vector<Case> cases;
  {
    Case c{{2, 6, 7, 5}, {9, 2, 3, 2}, {}};
    c.g.group = 3;
    c.g.stride[0] = 2;
    c.g.pads[0] = 1, c.g.pads[1] = 0, c.g.pads[2] = 2, c.g.pads[3] = 1;
    cases.push_back(c);
  }
  {
    Case c{{1, 3, 11, 13}, {5, 3, 3, 3}, {}};
    c.g.dilation[0] = 2, c.g.dilation[1] = 3;
    c.g.stride[1] = 3;
    c.g.pads[1] = c.g.pads[3] = 2;
    cases.push_back(c);
  }
  {
    Case c{{3, 4, 5, 5}, {4, 1, 3, 3}, {}};  // depthwise
    c.g.group = 4;
    c.g.pads[0] = c.g.pads[1] = c.g.pads[2] = c.g.pads[3] = 1;
    cases.push_back(c);
  }
  for (Case& c : cases) {
    c.g.kernel[0] = c.w[2];
    c.g.kernel[1] = c.w[3];
    Step s;
    s.kind = StepKind::kLinear;
    s.linear = LinearKind::kConv;
    s.weightShape = c.w;
    s.conv = c.g;
    s.bias = randomRing(c.w[0], rng);
    RingVec x = randomRing(numelOf(c.x), rng), W = randomRing(numelOf(c.w), rng);
    Dims out = windowOutputShape(c.g, c.x, c.w[0]);
    RingVec y = applyBilinear(s, W, x, c.x, out);
    addBias(s, y, out);
    Tensor ref = reference("Conv", {toFloat(x, c.x), toFloat(W, c.w), toFloat(s.bias, {c.w[0]})},
                           attrs({{"strides", {c.g.stride[0], c.g.stride[1]}},
                                  {"dilations", {c.g.dilation[0], c.g.dilation[1]}},
                                  {"pads", {c.g.pads[0], c.g.pads[1], c.g.pads[2], c.g.pads[3]}}},
                                 c.g.group));
    ASSERT_EQ(ref.dims(), out);
    expectSame(y, ref);
  }
}

TEST(MpcRingOps, LinearMatMulAndScaleMatchTheFloatKernels) {
  std::mt19937 rng(2);
  Step s;
  s.kind = StepKind::kLinear;
  s.weightShape = {5, 7};
  s.bias = randomRing(7, rng);
  RingVec x = randomRing(2 * 3 * 5, rng), W = randomRing(35, rng);
  RingVec y = applyBilinear(s, W, x, {2, 3, 5}, {2, 3, 7});
  addBias(s, y, {2, 3, 7});
  Tensor mm = reference("MatMul", {toFloat(x, {2, 3, 5}), toFloat(W, {5, 7})});
  expectSame(y, reference("Add", {mm, toFloat(s.bias, {7})}));
  // kScale: weights and bias on the trailing axes [3, 5].
  Step sc;
  sc.kind = StepKind::kScale;
  sc.weightShape = {3, 5};
  sc.bias = randomRing(15, rng);
  RingVec g = randomRing(15, rng);
  RingVec z = applyBilinear(sc, g, x, {2, 3, 5}, {2, 3, 5});
  addBias(sc, z, {2, 3, 5});
  Tensor prod = reference("Mul", {toFloat(x, {2, 3, 5}), toFloat(g, {3, 5})});
  expectSame(z, reference("Add", {prod, toFloat(sc.bias, {3, 5})}));
}

TEST(MpcRingOps, BroadcastProductsAndBatchedMatMulMatchTheFloatKernels) {
  std::mt19937 rng(3);
  const Dims as = {3, 1, 5}, bs = {4, 1}, os = {3, 4, 5};
  RingVec a = randomRing(15, rng), b = randomRing(4, rng);
  expectSame(addBroadcast(a, as, b, bs, os), reference("Add", {toFloat(a, as), toFloat(b, bs)}));
  expectSame(subBroadcast(a, as, b, bs, os), reference("Sub", {toFloat(a, as), toFloat(b, bs)}));
  expectSame(mulBroadcast(a, as, b, bs, os), reference("Mul", {toFloat(a, as), toFloat(b, bs)}));
  const Dims ms = {2, 1, 3, 4}, ns = {5, 4, 2}, mo = {2, 5, 3, 2};
  RingVec m = randomRing(24, rng), n = randomRing(40, rng);
  expectSame(matmulBatched(m, ms, n, ns, mo), reference("MatMul", {toFloat(m, ms), toFloat(n, ns)}));
  // Wraparound: products beyond 2^64 wrap exactly like uint64.
  RingVec big = {Ring(1) << 40}, big2 = {Ring(1) << 30};
  EXPECT_EQ(mulBroadcast(big, {1}, big2, {1}, {1})[0], Ring(0) + (Ring(1) << 40) * (Ring(1) << 30));
}

TEST(MpcRingOps, LocalStepsMatchTheFloatKernels) {
  std::mt19937 rng(4);
  const Dims xs = {2, 3, 5, 7};
  RingVec x = randomRing(numelOf(xs), rng);
  Tensor xf = toFloat(x, xs);
  // Sum pool = AveragePool (no padding) * window size.
  Step sp;
  sp.kind = StepKind::kSumPool;
  sp.conv.kernel[0] = 2, sp.conv.kernel[1] = 3;
  sp.conv.stride[0] = 2, sp.conv.stride[1] = 2;
  Dims po = windowOutputShape(sp.conv, xs, 3);
  RingVec pooled = applyLocal(sp, {&x}, {xs}, po);
  Tensor avg = reference("AveragePool", {xf}, attrs({{"kernel_shape", {2, 3}}, {"strides", {2, 2}}}));
  Tensor six = Tensor::fromVector<float>(ir::DataType::kFloat, {}, {6.0f});
  expectSame(pooled, reference("Mul", {avg, six}));
  // Transpose.
  Step tr;
  tr.kind = StepKind::kTranspose;
  tr.perm = {2, 0, 3, 1};
  expectSame(applyLocal(tr, {&x}, {xs}, {5, 2, 7, 3}), reference("Transpose", {xf}, attrs({{"perm", tr.perm}})));
  // Slice with a negative step and an offset start.
  Step sl;
  sl.kind = StepKind::kSlice;
  sl.starts = {1, 0, 4, 1};
  sl.steps = {1, 2, -2, 3};
  sl.ends = {2, 3, -1, 7};
  Tensor ref = reference("Slice", {xf, Tensor::fromVector<int64_t>(ir::DataType::kInt64, {4}, {1, 0, 4, 1}),
                                   Tensor::fromVector<int64_t>(ir::DataType::kInt64, {4}, {2, 3, -100, 7}),
                                   Tensor::fromVector<int64_t>(ir::DataType::kInt64, {4}, {0, 1, 2, 3}),
                                   Tensor::fromVector<int64_t>(ir::DataType::kInt64, {4}, {1, 2, -2, 3})});
  expectSame(applyLocal(sl, {&x}, {xs}, ref.dims()), ref);
  // Concat on axis 1 of three inputs.
  RingVec y = randomRing(2 * 1 * 5 * 7, rng), z = randomRing(2 * 4 * 5 * 7, rng);
  Step cc;
  cc.kind = StepKind::kConcat;
  cc.axis = 1;
  ir::Attributes ca;
  ca.set("axis", int64_t(1));
  expectSame(applyLocal(cc, {&x, &y, &z}, {xs, {2, 1, 5, 7}, {2, 4, 5, 7}}, {2, 8, 5, 7}),
             reference("Concat", {xf, toFloat(y, {2, 1, 5, 7}), toFloat(z, {2, 4, 5, 7})}, ca));
  // ReduceSum over axes 1 and 3 (keepdims).
  Step rs;
  rs.kind = StepKind::kReduceSum;
  rs.axes = {1, 3};
  expectSame(applyLocal(rs, {&x}, {xs}, {2, 1, 5, 1}),
             reference("ReduceSum", {xf, Tensor::fromVector<int64_t>(ir::DataType::kInt64, {2}, {1, 3})}));
  // kMulConst, kReshape, kAdd/kSub with broadcasting.
  Step mc;
  mc.kind = StepKind::kMulConst;
  mc.factor = -3;
  Tensor m3 = Tensor::fromVector<float>(ir::DataType::kFloat, {}, {-3.0f});
  expectSame(applyLocal(mc, {&x}, {xs}, xs), reference("Mul", {xf, m3}));
  Step re;
  re.kind = StepKind::kReshape;
  EXPECT_EQ(applyLocal(re, {&x}, {xs}, {6, 35}), x);
  EXPECT_THROW(applyLocal(re, {&x}, {xs}, {6, 36}), Error);
  RingVec w = randomRing(7, rng);
  Step ad;
  ad.kind = StepKind::kSub;
  expectSame(applyLocal(ad, {&x, &w}, {xs, {7}}, xs), reference("Sub", {xf, toFloat(w, {7})}));
}

TEST(MpcRingOps, LutIndexRoundsTruncatesAndWraps) {
  // shift 4: t = floor((v + 8) / 16) mod 256.
  EXPECT_EQ(lutIndex(8, 4), 1);
  EXPECT_EQ(lutIndex(7, 4), 0);
  EXPECT_EQ(lutIndex(Ring(-8), 4), 0);
  EXPECT_EQ(lutIndex(Ring(-9), 4), 255);  // -1
  EXPECT_EQ(lutIndex(Ring(-24), 4), 255);  // -24+8 = -16 -> -1
  EXPECT_EQ(lutIndex(Ring(-25), 4), 254);  // -2
  EXPECT_EQ(lutIndex(127 * 16 + 7, 4), 127);
  EXPECT_EQ(lutIndex(127 * 16 + 8, 4), 128);  // 128 wraps to int8 -128
  EXPECT_EQ(lutIndex(Ring(-128 * 16 - 9), 4), 127);  // -129 wraps to 127
  EXPECT_EQ(lutIndex(Ring(-1), 0), 255);
  EXPECT_EQ(lutIndex(300, 0), 44);
  // A large shift on a large negative value (arithmetic floor, low byte).
  const int64_t v = -(int64_t(5) << 50) - 1;
  EXPECT_EQ(lutIndex(Ring(v), 50), uint8_t(int8_t(-5)));
  EXPECT_EQ(lutIndex(Ring(int64_t(3) << 56), 56), 3);
  Step s;
  s.kind = StepKind::kLut;
  s.shift = 2;
  s.table.resize(256);
  for (int i = 0; i < 256; ++i) s.table[i] = Ring(int64_t(int8_t(i)) * 10);
  RingVec out = applyLut(s, {Ring(5), Ring(6), Ring(-6), Ring(-7), Ring(510)});
  // 5 -> (5+2)>>2 = 1; 6 -> 2; -6 -> floor(-4/4) = -1; -7 -> floor(-5/4) = -2; 510 -> 128 -> -128.
  EXPECT_EQ(out, (RingVec{10, 20, Ring(-10), Ring(-20), Ring(-1280)}));
}

Step reluPool(int32_t shift, int64_t kh, int64_t kw) {
  Step s;
  s.kind = StepKind::kMaxPool;
  s.shift = shift;
  s.conv.kernel[0] = kh, s.conv.kernel[1] = kw;
  s.conv.stride[0] = kh, s.conv.stride[1] = kw;
  s.table.resize(256);
  for (int i = 0; i < 256; ++i) s.table[i] = Ring(int8_t(i) > 0 ? int64_t(int8_t(i)) << shift : 0);
  return s;
}

TEST(MpcRingOps, MaxPoolFollowsTheTreeOrderAndRounding) {
  // Shift 0: the exact max, whatever the order, also for an odd window (3 elements).
  Step exact = reluPool(0, 1, 3);
  RingVec x = {Ring(-5), 7, 3, 2, Ring(-1), Ring(-4)};
  EXPECT_EQ(applyMaxPool(exact, x, {1, 1, 1, 6}, {1, 1, 1, 2}), (RingVec{7, 2}));
  // Shift 2: m = b + table[trunc(a - b)] with a the even element: (10, 0) gives
  // 0 + 4 * round(10 / 4) = 12, but (0, 10) gives 10 + 0 = 10.
  Step r = reluPool(2, 1, 2);
  EXPECT_EQ(applyMaxPool(r, {10, 0}, {1, 1, 1, 2}, {1, 1, 1, 1}), (RingVec{12}));
  EXPECT_EQ(applyMaxPool(r, {0, 10}, {1, 1, 1, 2}, {1, 1, 1, 1}), (RingVec{10}));
  EXPECT_EQ(pairwiseMax(r, 10, 0), 12u);
  // Five elements at shift 2: level 0 pairs (a0,a1),(a2,a3), a4 moves up; level 1 pairs
  // (m01, m23), a4 moves up; level 2 pairs (m0123, a4).
  Step five = reluPool(2, 1, 5);
  RingVec v = {1, 6, 0, 9, 13};
  Ring m01 = pairwiseMax(five, 1, 6), m23 = pairwiseMax(five, 0, 9);
  Ring want = pairwiseMax(five, pairwiseMax(five, m01, m23), 13);
  EXPECT_EQ(applyMaxPool(five, v, {1, 1, 1, 5}, {1, 1, 1, 1}), (RingVec{want}));
  // Windows skip padding: 3x3 windows, stride 1, pad 1 on a 2x2 input: 4 elements each.
  Step pad = reluPool(0, 3, 3);
  pad.conv.stride[0] = pad.conv.stride[1] = 1;
  pad.conv.pads[0] = pad.conv.pads[1] = pad.conv.pads[2] = pad.conv.pads[3] = 1;
  auto windows = maxPoolWindows(pad, {1, 1, 2, 2}, {1, 1, 2, 2});
  ASSERT_EQ(windows.size(), 4u);
  for (const auto& w : windows) EXPECT_EQ(w, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(applyMaxPool(pad, {Ring(-3), Ring(-8), Ring(-2), Ring(-9)}, {1, 1, 2, 2}, {1, 1, 2, 2}),
            (RingVec(4, Ring(-2))));
}

TEST(MpcRingOps, MalformedShapesAreErrorsNotCrashes) {
  Step s;
  s.kind = StepKind::kLinear;
  s.name = "fc";
  s.weightShape = {4, 2};
  RingVec W(8, 1), x(6, 1);
  EXPECT_THROW(applyBilinear(s, W, x, {2, 3}, {2, 2}), Error);
  EXPECT_THROW(applyBilinear(s, RingVec(7, 1), RingVec(8, 1), {2, 4}, {2, 2}), Error);
  Step t;
  t.kind = StepKind::kTranspose;
  t.perm = {0, 5};
  EXPECT_THROW(applyLocal(t, {&x}, {{2, 3}}, {3, 2}), Error);
  Step sl;
  sl.kind = StepKind::kSlice;
  sl.starts = {0, 2};
  sl.steps = {1, 1};
  sl.ends = {2, 5};
  EXPECT_THROW(applyLocal(sl, {&x}, {{2, 3}}, {2, 3}), Error);
}

}  // namespace
}  // namespace anvil::mpc
