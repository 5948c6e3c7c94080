// The two-party protocol on hand-built programs, both parties on two threads over
// makeLocalPair: each step kind against the plain ring evaluation (exact, or within the
// documented LUT bound), communication (2 bytes per lookup, one round per nonlinear layer),
// the uniformity of what each party receives, and the refusals (reused or foreign material,
// runs out of step, a peer that aborts or vanishes).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>

#include "tests/mpc/protocol_test_util.h"

namespace anvil::mpc::testing {
namespace {

std::vector<Ring> reconstructRing(const ir::Tensor& f, double scale) {
  std::vector<Ring> v(size_t(f.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = Ring(int64_t(std::llround(double(f.data<float>()[i]) / scale)));
  return v;
}

// The outputs of a run as ring values (output scales are chosen so floats hold them exactly).
std::vector<Ring> outputRing(const Program& p, const TwoPartyRun& r, size_t k = 0) {
  return reconstructRing(r.client.outputs.at(k), p.tensors[size_t(p.outputs.at(k))].scale);
}

void expectOk(const TwoPartyRun& r) {
  ASSERT_FALSE(r.clientError) << "client: " << errorText(r.clientError);
  ASSERT_FALSE(r.serverError) << "server: " << errorText(r.serverError);
}

RunPayloads material(const Program& p, int64_t run = 0, const std::string& set = "") {
  return generateRun(p, set.empty() ? newSetId() : set, run);
}

// Runs the program securely and in plain; expects identical outputs.
void expectExact(const Program& p, const std::vector<ir::Tensor>& inputs) {
  TwoPartyRun r = runBoth(p, material(p), inputs);
  expectOk(r);
  const std::vector<ir::Tensor> fixed = runFixed(p, inputs);
  ASSERT_EQ(fixed.size(), r.client.outputs.size());
  for (size_t k = 0; k < fixed.size(); ++k) ASSERT_TRUE(fixed[k].sameAs(r.client.outputs[k])) << "output " << k;
  auto plain = plainRun(p, inputs);
  for (size_t k = 0; k < p.outputs.size(); ++k) {
    std::vector<Ring> got = outputRing(p, r, k);
    const std::vector<Ring>& want = plain[size_t(p.outputs[k])];
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(int64_t(got[i]), int64_t(want[i])) << "output " << k << " element " << i;
  }
}

TEST(MpcLocalTransport, DeliversInOrderAndCounts) {
  auto [a, b] = makeLocalPair(2000);
  const uint8_t x[3] = {1, 2, 3};
  a->send(MessageType::kHello, x, 3);
  a->send(MessageType::kLayer, x, 2);
  EXPECT_EQ(b->receive(MessageType::kHello, 3), std::vector<uint8_t>(x, x + 3));
  EXPECT_EQ(b->receive(MessageType::kLayer), std::vector<uint8_t>(x, x + 2));
  EXPECT_EQ(a->stats().payloadBytesSent, 5u);
  EXPECT_EQ(a->stats().messagesSent, 2u);
  EXPECT_EQ(b->stats().payloadBytesReceived, 5u);
  EXPECT_GT(b->stats().wireBytesReceived, 5u);
}

TEST(MpcLocalTransport, WrongTagOrSizeIsAnError) {
  auto [a, b] = makeLocalPair(2000);
  const uint8_t x[4] = {};
  a->send(MessageType::kLayer, x, 4);
  EXPECT_THROW(
      {
        try {
          b->receive(MessageType::kHello);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("expected a hello message"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
  a->send(MessageType::kLayer, x, 4);
  EXPECT_THROW(b->receive(MessageType::kLayer, 8), Error);
}

TEST(MpcLocalTransport, TimeoutAbortAndClose) {
  {
    auto [a, b] = makeLocalPair(100);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_THROW(b->receive(MessageType::kLayer), Error);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  }
  {
    auto [a, b] = makeLocalPair(5000);
    a->abort("disk full");
    try {
      b->receive(MessageType::kLayer);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("disk full"), std::string::npos) << e.what();
    }
  }
  {
    auto [a, b] = makeLocalPair(5000);
    std::thread t([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      a.reset();  // vanishes while b waits
    });
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_THROW(b->receive(MessageType::kLayer), Error);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
    t.join();
  }
}

TEST(MpcProtocol, MatMulLayersExact) {
  ProgramBuilder b;
  int32_t x = b.input({3, 5});
  int32_t y = b.matmul(x, 7);
  int32_t z = b.matmul(y, 4, false);
  b.output(z);
  expectExact(b.p, {randomInput({3, 5}, 1)});
}

TEST(MpcProtocol, ConvWithGroupsStridePadDilationExact) {
  ProgramBuilder b;
  int32_t x = b.input({2, 4, 7, 6});
  ConvGeometry g;
  g.kernel[0] = 3, g.kernel[1] = 2;
  g.stride[0] = 2, g.stride[1] = 1;
  g.pads[0] = 1, g.pads[1] = 0, g.pads[2] = 2, g.pads[3] = 1;
  g.group = 2;
  int32_t c = b.conv(x, 6, g);
  ConvGeometry g2;
  g2.kernel[0] = g2.kernel[1] = 3;
  g2.dilation[0] = g2.dilation[1] = 2;
  g2.pads[0] = g2.pads[1] = g2.pads[2] = g2.pads[3] = 2;
  int32_t d = b.conv(c, 5, g2);
  b.output(d);
  expectExact(b.p, {randomInput({2, 4, 7, 6}, 2)});
}

TEST(MpcProtocol, ScaleAndLocalStepsExact) {
  ProgramBuilder b;
  int32_t x = b.input({2, 3, 4});
  int32_t y = b.input({3, 4});
  int32_t s = b.scale(x, {3, 4});  // LayerNorm's gamma/beta on the trailing axes
  int32_t add = b.binary(StepKind::kAdd, s, y, {2, 3, 4});
  int32_t sub = b.binary(StepKind::kSub, add, x, {2, 3, 4});
  Step mc;
  mc.kind = StepKind::kMulConst;
  mc.factor = -3;
  int32_t m = b.unary(mc, sub, {2, 3, 4});
  Step tr;
  tr.kind = StepKind::kTranspose;
  tr.perm = {2, 0, 1};
  int32_t t = b.unary(tr, m, {4, 2, 3});
  Step rs;
  rs.kind = StepKind::kReshape;
  int32_t r = b.unary(rs, t, {8, 3});
  int32_t fc = b.matmul(r, 2);
  b.output(fc);
  b.output(t);
  expectExact(b.p, {randomInput({2, 3, 4}, 3), randomInput({3, 4}, 4)});
}

// The other local steps: pooling sums, reductions, concatenation (of a linear output and a
// LUT output: shares of different origins), slices; then a linear layer on the result.
TEST(MpcProtocol, PoolReduceConcatSliceExact) {
  ProgramBuilder b;
  int32_t x = b.input({2, 3, 5, 5});
  Step sp;
  sp.kind = StepKind::kSumPool;
  sp.conv.kernel[0] = sp.conv.kernel[1] = 3;
  sp.conv.stride[0] = sp.conv.stride[1] = 2;
  sp.conv.pads[0] = sp.conv.pads[1] = sp.conv.pads[2] = sp.conv.pads[3] = 1;
  int32_t pooled = b.unary(sp, x, {2, 3, 3, 3});
  Step rs;
  rs.kind = StepKind::kReduceSum;
  rs.axes = {2};
  int32_t reduced = b.unary(rs, pooled, {2, 3, 1, 3});
  Step flat;
  flat.kind = StepKind::kReshape;
  int32_t r2 = b.unary(flat, reduced, {2, 9});
  int32_t h = b.matmul(r2, 4);
  int32_t a = b.lut(h, 5, randomTable(7));
  Step cat;
  cat.kind = StepKind::kConcat;
  cat.axis = 1;
  int32_t joined = b.step(cat, {h, a}, {2, 8});
  Step sl;
  sl.kind = StepKind::kSlice;
  sl.starts = {0, 1};
  sl.ends = {2, 8};
  sl.steps = {1, 2};
  sl.axes = {0, 1};
  int32_t sliced = b.unary(sl, joined, {2, 4});
  int32_t o = b.matmul(sliced, 3);
  b.output(o);
  b.output(reduced);
  // The LUT (and so what follows it) may round differently: its index is fixed within one;
  // the outputs before it are exact, those after it are compared through its actual values.
  std::vector<ir::Tensor> in = {randomInput({2, 3, 5, 5}, 18)};
  TwoPartyRun r = runBoth(b.p, material(b.p), in);
  expectOk(r);
  auto plain = plainRun(b.p, in);
  const std::vector<Ring> gotReduced = outputRing(b.p, r, 1);
  for (size_t i = 0; i < gotReduced.size(); ++i) ASSERT_EQ(gotReduced[i], plain[size_t(reduced)][i]) << i;
  // Shift 0 makes the LUT exact: then the whole chain is.
  b.p.steps[size_t(std::find_if(b.p.steps.begin(), b.p.steps.end(), [](const Step& s) { return s.kind == StepKind::kLut; }) -
                   b.p.steps.begin())]
      .shift = 0;
  expectExact(b.p, in);
}

// A kLut's secure index is floor(v / 2^d) or floor(v / 2^d) + 1 (the carry of the shares'
// low bits), never anything else, so within one of the fixed index; exact for shift 0 and
// for multiples of 2^d; and unbiased: the mean of (index - v / 2^d) is about 0 (adding
// 2^(d-1) before the local shifts would give a mean of -1/2). The identity table returns
// the index.
TEST(MpcProtocol, LutIndexIsFloorOrCeilAndUnbiased) {
  for (int shift : {0, 1, 4, 13, 40, 56}) {
    ProgramBuilder b;
    const int64_t n = 8192;
    int32_t x = b.input({2, 64}, 1.0 / 64);
    int32_t h = b.matmul(x, n / 2);  // the LUT input is a linear layer's output: both shares random
    if (shift >= 40) {
      Step mc;  // spread the values over the whole ring around the truncation point
      mc.kind = StepKind::kMulConst;
      mc.factor = int64_t(1) << (shift - 16);
      h = b.unary(mc, h, {2, n / 2});
    }
    int32_t l = b.lut(h, shift, identityTable());
    b.output(l);
    b.p.tensors[size_t(l)].scale = 1.0;
    std::vector<ir::Tensor> in = {randomInput({2, 64}, uint64_t(shift) + 7)};
    TwoPartyRun r = runBoth(b.p, material(b.p), in);
    expectOk(r);
    auto plain = plainRun(b.p, in);
    std::vector<Ring> got = outputRing(b.p, r);
    int64_t up = 0, differsFromFixed = 0;
    double meanError = 0;
    for (int64_t i = 0; i < n; ++i) {
      const Ring v = plain[size_t(h)][size_t(i)];
      const int8_t lo = int8_t(floorIndex(v, shift)), hi = int8_t(uint8_t(lo + 1));
      const int8_t have = int8_t(uint8_t(got[size_t(i)]));
      const int8_t fixed = int8_t(plainIndex(v, shift));
      const bool multiple = shift == 0 || (v & ((Ring(1) << shift) - 1)) == 0;
      ASSERT_TRUE(have == lo || (!multiple && have == hi))
          << "shift " << shift << " element " << i << ": secure index " << int(have) << ", floor " << int(lo);
      ASSERT_LE(std::abs(int(int8_t(uint8_t(have - fixed)))), 1);
      up += have == hi;
      differsFromFixed += have != fixed;
      if (shift > 0) meanError += double(have == hi) - std::ldexp(double(v & ((Ring(1) << shift) - 1)), -shift);
    }
    if (shift == 0) {
      EXPECT_EQ(up, 0);
    }
    if (shift >= 4) {
      EXPECT_GT(up, n / 8) << "shift " << shift;  // both cases happen
      EXPECT_LT(std::fabs(meanError / double(n)), 0.03) << "shift " << shift << ": biased";
      EXPECT_LT(differsFromFixed, n / 2) << "shift " << shift;
    }
  }
}

// Through a nonlinear table the output is table[floor(v / 2^d)] or table[floor(v / 2^d) + 1].
TEST(MpcProtocol, LutOutputIsTableOfFloorOrCeil) {
  ProgramBuilder b;
  const int64_t n = 2048;
  int32_t x = b.input({4, 16}, 1.0 / 64);
  int32_t h = b.matmul(x, n / 4);
  const std::vector<Ring> table = randomTable(99);
  const int shift = 9;
  int32_t l = b.lut(h, shift, table);
  b.output(l);
  b.p.tensors[size_t(l)].scale = 1.0;
  std::vector<ir::Tensor> in = {randomInput({4, 16}, 5)};
  TwoPartyRun r = runBoth(b.p, material(b.p), in);
  expectOk(r);
  auto plain = plainRun(b.p, in);
  std::vector<Ring> got = outputRing(b.p, r);
  int64_t sameAsFixed = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const uint8_t t = floorIndex(plain[size_t(h)][i], shift);
    ASSERT_TRUE(got[i] == table[t] || got[i] == table[uint8_t(t + 1)]) << "element " << i;
    sameAsFixed += got[i] == plain[size_t(l)][i];
  }
  EXPECT_GT(sameAsFixed, int64_t(got.size()) / 2);  // a deviation from fixed is the exception
}

TEST(MpcProtocol, MaxPoolExactWithoutTruncation) {
  // Differences inside int8 and shift 0: every comparison is exact.
  ProgramBuilder b;
  int32_t x = b.input({2, 3, 5, 7}, 1.0);
  ConvGeometry g;
  g.kernel[0] = 3, g.kernel[1] = 2;
  g.stride[0] = 2, g.stride[1] = 2;
  g.pads[0] = 1, g.pads[1] = 1, g.pads[2] = 1, g.pads[3] = 0;
  int32_t m = b.maxPool(x, 0, g);
  b.output(m);
  b.p.tensors[size_t(m)].scale = 1.0;
  ir::Tensor in = randomInput({2, 3, 5, 7}, 6, -60, 60);
  for (int64_t i = 0; i < in.numel(); ++i) in.data<float>()[i] = std::round(in.data<float>()[i]);
  TwoPartyRun r = runBoth(b.p, material(b.p), {in});
  expectOk(r);
  auto plain = plainRun(b.p, {in});
  std::vector<Ring> got = outputRing(b.p, r);
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(int64_t(got[i]), int64_t(plain[size_t(m)][i])) << i;
  }
  // 3x2 windows (up to 6 elements): 3 levels, one round each.
  ASSERT_EQ(r.client.stats.layers.at(0).kind, StepKind::kMaxPool);
  EXPECT_EQ(r.client.stats.layers[0].rounds, 3);
  EXPECT_DOUBLE_EQ(r.client.stats.lutBytesPerActivation, 2.0);
}

TEST(MpcProtocol, MaxPoolWithTruncationWithinBound) {
  // With shift d a comparison's index may be one less (an error of 2^d), and a level's
  // inputs carry the errors of the level below: after two levels |secure - fixed| <= 3 * 2^d.
  ProgramBuilder b;
  const int shift = 3;
  int32_t x = b.input({1, 4, 6, 6}, 1.0);
  ConvGeometry g;
  g.kernel[0] = g.kernel[1] = 2;
  g.stride[0] = g.stride[1] = 2;
  int32_t m = b.maxPool(x, shift, g);
  b.output(m);
  b.p.tensors[size_t(m)].scale = 1.0;
  ir::Tensor in = randomInput({1, 4, 6, 6}, 7, -500, 500);
  for (int64_t i = 0; i < in.numel(); ++i) in.data<float>()[i] = std::round(in.data<float>()[i]);
  TwoPartyRun r = runBoth(b.p, material(b.p), {in});
  expectOk(r);
  auto plain = plainRun(b.p, {in});
  std::vector<Ring> got = outputRing(b.p, r);
  for (size_t i = 0; i < got.size(); ++i) {
    const int64_t d = int64_t(plain[size_t(m)][i]) - int64_t(got[i]);
    EXPECT_LE(std::abs(d), 3 * (1 << shift)) << i;
  }
}

TEST(MpcProtocol, SharedProductsExact) {
  ProgramBuilder b;
  int32_t x = b.input({2, 3, 4});
  int32_t y = b.input({4});
  int32_t w = b.input({2, 4, 5});
  int32_t mul = b.binary(StepKind::kMul, x, y, {2, 3, 4});  // broadcast along the leading axes
  int32_t mm = b.binary(StepKind::kMatMul, mul, w, {2, 3, 5});
  b.output(mm);
  b.output(mul);
  expectExact(b.p, {randomInput({2, 3, 4}, 8), randomInput({4}, 9), randomInput({2, 4, 5}, 10)});
}

// An MLP-like chain: Linear -> LUT -> Linear -> LUT -> Linear; outputs within the LUT
// bound, one round per nonlinear layer, 2 bytes per lookup, exact message accounting.
TEST(MpcProtocol, RoundsAndBytesOfAChain) {
  ProgramBuilder b;
  const int64_t B = 4, D0 = 16, D1 = 32, D2 = 24, D3 = 10;
  int32_t x = b.input({B, D0}, 1.0 / 64);
  int32_t h1 = b.matmul(x, D1);
  int32_t a1 = b.lut(h1, 8, randomTable(1));
  int32_t h2 = b.matmul(a1, D2);
  int32_t a2 = b.lut(h2, 12, randomTable(2));
  int32_t o = b.matmul(a2, D3);
  b.output(o);
  std::vector<ir::Tensor> in = {randomInput({B, D0}, 11)};
  TwoPartyRun r = runBoth(b.p, material(b.p), in);
  expectOk(r);
  const ProtocolStats& cs = r.client.stats;
  EXPECT_EQ(cs.nonlinearLayers, 2);
  // one round per LUT layer plus the trailing F of the last linear layer (answered by the outputs)
  EXPECT_EQ(cs.rounds, 3);
  EXPECT_EQ(cs.lookups, B * (D1 + D2));
  EXPECT_EQ(cs.lutBytes, uint64_t(2 * B * (D1 + D2)));
  EXPECT_DOUBLE_EQ(cs.lutBytesPerActivation, 2.0);
  for (const LayerStats& l : cs.layers)
    if (l.kind == StepKind::kLut) {
      EXPECT_EQ(l.rounds, 1) << l.name;
      EXPECT_EQ(l.bytesSent, uint64_t(l.lookups)) << l.name;
      EXPECT_EQ(l.bytesReceived, uint64_t(l.lookups)) << l.name;
    }
  // client -> server: hello, F of each linear layer (8 bytes per input element), the LUT bytes.
  const uint64_t F = 8 * B * (D0 + D1 + D2);
  const uint64_t helloBytes = 4 + b.p.programId.size() + 4 + 16 + 8;
  EXPECT_EQ(cs.payloadBytesSent, helloBytes + F + uint64_t(B * (D1 + D2)));
  // server -> client: hello, E (8 bytes per weight), the LUT bytes, the output shares.
  const uint64_t E = 8 * (D0 * D1 + D1 * D2 + D2 * D3);
  EXPECT_EQ(cs.payloadBytesReceived, helloBytes + E + uint64_t(B * (D1 + D2)) + 8 * B * D3);
  EXPECT_EQ(r.server.stats.payloadBytesReceived, cs.payloadBytesSent);
}

// What each party receives at the lookups is uniform whatever the input: two very different
// inputs (constant ones included) give byte streams that pass chi-square, while the plain
// LUT indices of the same inputs fail it by far (the test can fail).
TEST(MpcProtocol, ReceivedLutBytesAreUniform) {
  ProgramBuilder b;
  const int64_t n = 32 * 1024;
  int32_t x = b.input({n}, 1.0 / 16);
  int32_t l1 = b.lut(x, 2, randomTable(3));
  b.output(l1);
  std::map<std::string, std::vector<uint8_t>> seen;
  auto observer = [&](const std::string& who) {
    return [&seen, who](size_t, const std::string& part, const uint8_t* d, size_t size) {
      if (part == "lut") seen[who].insert(seen[who].end(), d, d + size);
    };
  };
  ir::Tensor zeros(DataType::kF32, {n});
  ir::Tensor ramp(DataType::kF32, {n});
  for (int64_t i = 0; i < n; ++i) ramp.data<float>()[i] = float(i % 97) / 8;
  std::vector<std::vector<uint8_t>> serverGot, clientGot;
  for (const ir::Tensor* in : {&zeros, &ramp}) {
    seen.clear();
    ProtocolOptions co, so;
    co.observer = observer("client");
    so.observer = observer("server");
    TwoPartyRun r = runBoth(b.p, material(b.p), {*in}, co, so);
    expectOk(r);
    ASSERT_EQ(seen["server"].size(), size_t(n));
    ASSERT_EQ(seen["client"].size(), size_t(n));
    EXPECT_LT(chiSquareUniform(seen["server"]), kChi255);
    EXPECT_LT(chiSquareUniform(seen["client"]), kChi255);
    serverGot.push_back(seen["server"]);
    clientGot.push_back(seen["client"]);
    std::vector<uint8_t> plainIdx;
    const auto plain = plainRun(b.p, {*in});
    for (Ring v : plain[size_t(x)]) plainIdx.push_back(plainIndex(v, 2));
    EXPECT_GT(chiSquareUniform(plainIdx), 100 * kChi255);
  }
  EXPECT_LT(chiSquareTwoSample(serverGot[0], serverGot[1]), kChi255);
  EXPECT_LT(chiSquareTwoSample(clientGot[0], clientGot[1]), kChi255);
}

Program smallProgram(const std::string& id = "test-program-0001") {
  ProgramBuilder b;
  b.p.programId = id;
  int32_t x = b.input({2, 8});
  int32_t h = b.matmul(x, 8);
  int32_t a = b.lut(h, 6, randomTable(4));
  int32_t o = b.matmul(a, 3);
  b.output(o);
  return b.p;
}

void expectBothFail(const TwoPartyRun& r, const std::string& clientWords, const std::string& serverWords) {
  ASSERT_TRUE(r.clientError) << "the client did not fail";
  ASSERT_TRUE(r.serverError) << "the server did not fail";
  EXPECT_NE(errorText(r.clientError).find(clientWords), std::string::npos) << errorText(r.clientError);
  EXPECT_NE(errorText(r.serverError).find(serverWords), std::string::npos) << errorText(r.serverError);
}

TEST(MpcProtocol, ReusedMaterialIsRefused) {
  Program p = smallProgram();
  const std::string set = newSetId();
  RunPayloads m0 = material(p, 0, set), m1 = material(p, 1, set);
  std::vector<ir::Tensor> in = {randomInput({2, 8}, 12)};
  expectOk(runBoth(p, m0, in));
  // The same client payload again (the server has run 1): refused before any message.
  TwoPartyRun r = runBoth(p, m1, in, {}, {}, 5000, &m0.client, nullptr);
  expectBothFail(r, "already used", "already used");
  // The same server payload again.
  RunPayloads m2 = material(p, 2, set);
  TwoPartyRun r2 = runBoth(p, m2, in, {}, {}, 5000, nullptr, &m0.server);
  expectBothFail(r2, "already used", "already used");
}

TEST(MpcProtocol, MaterialOfAnotherProgramIsRefused) {
  Program p = smallProgram("program-A-000001");
  Program q = smallProgram("program-B-000002");
  RunPayloads mine = material(p), other = material(q);
  std::vector<ir::Tensor> in = {randomInput({2, 8}, 13)};
  TwoPartyRun r = runBoth(p, mine, in, {}, {}, 5000, &other.client, nullptr);
  expectBothFail(r, "another engine build", "another engine build");
  // The server's payload given to the client: refused too.
  RunPayloads fresh = material(p);
  TwoPartyRun r2 = runBoth(p, fresh, in, {}, {}, 5000, &fresh.server, nullptr);
  expectBothFail(r2, "expected the client's", "expected the client's");
  // A truncated payload.
  RunPayloads fresh2 = material(p);
  std::vector<uint8_t> cut(fresh2.server.begin(), fresh2.server.end() - 100);
  TwoPartyRun r3 = runBoth(p, fresh2, in, {}, {}, 5000, nullptr, &cut);
  expectBothFail(r3, "truncated", "truncated");
}

TEST(MpcProtocol, RunsOutOfStepAreRefused) {
  Program p = smallProgram();
  const std::string set = newSetId();
  RunPayloads m0 = material(p, 0, set), m1 = material(p, 1, set);
  std::vector<ir::Tensor> in = {randomInput({2, 8}, 14)};
  TwoPartyRun r = runBoth(p, m0, in, {}, {}, 5000, nullptr, &m1.server);
  expectBothFail(r, "out of step", "out of step");
  // Material of two different dealer runs with equal indices.
  RunPayloads a = material(p, 3), c = material(p, 3);
  TwoPartyRun r2 = runBoth(p, a, in, {}, {}, 5000, nullptr, &c.server);
  expectBothFail(r2, "material set differs", "material set differs");
}

// A Transport that forwards to another and fails after a number of sends: the party using it
// aborts (or vanishes) mid-run.
class FailingTransport : public Transport {
 public:
  FailingTransport(std::unique_ptr<Transport> inner, int sendsBeforeFailure, bool vanish)
      : inner_(std::move(inner)), left_(sendsBeforeFailure), vanish_(vanish) {}
  void send(MessageType type, const void* data, size_t size) override {
    if (left_-- == 0) {
      if (vanish_) inner_.reset();  // closes without a word
      ANVIL_THROW(ErrorCode::kRuntimeError, "injected failure");
    }
    inner_->send(type, data, size);
  }
  std::vector<uint8_t> receive(MessageType type, size_t n) override {
    ANVIL_CHECK(inner_, ErrorCode::kRuntimeError, "closed");
    return inner_->receive(type, n);
  }
  void abort(const std::string& why) override {
    if (inner_) inner_->abort(why);
  }
  TransportStats stats() const override { return inner_ ? inner_->stats() : TransportStats{}; }

 private:
  std::unique_ptr<Transport> inner_;
  int left_;
  bool vanish_;
};

TEST(MpcProtocol, PeerFailingMidRunMakesTheOtherFail) {
  Program p = smallProgram();
  const Program pub = publicCopy(p);
  std::vector<ir::Tensor> in = {randomInput({2, 8}, 15)};
  for (bool vanish : {false, true})
    for (int serverSends : {0, 1, 2, 3}) {  // hello, E, the LUT round, the outputs
      RunPayloads m = material(p);
      auto [c, s] = makeLocalPair(5000);
      FailingTransport failing(std::move(s), serverSends, vanish);
      std::exception_ptr serverError, clientError;
      std::thread t([&] {
        try {
          runServer(p, m.server, failing);
        } catch (...) {
          serverError = std::current_exception();
        }
      });
      const auto t0 = std::chrono::steady_clock::now();
      try {
        runClient(pub, m.client, *c, in);
      } catch (...) {
        clientError = std::current_exception();
      }
      t.join();
      ASSERT_TRUE(serverError);
      ASSERT_TRUE(clientError) << "the client finished although the server failed after " << serverSends << " sends";
      EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3)) << "the client waited for its timeout";
      if (!vanish) {
        EXPECT_NE(errorText(clientError).find("injected failure"), std::string::npos) << errorText(clientError);
      }
    }
}

// A Transport that alters the n-th message this side sends (its size or its tag): the
// peer must refuse it, and both sides fail with a message naming what was expected.
class TamperingTransport : public Transport {
 public:
  enum class How { kDropLastByte, kExtraByte, kWrongTag };
  TamperingTransport(std::unique_ptr<Transport> inner, int which, How how)
      : inner_(std::move(inner)), left_(which), how_(how) {}
  void send(MessageType type, const void* data, size_t size) override {
    if (left_-- != 0) return inner_->send(type, data, size);
    std::vector<uint8_t> b(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
    if (how_ == How::kDropLastByte && !b.empty()) b.pop_back();
    if (how_ == How::kExtraByte) b.push_back(0);
    if (how_ == How::kWrongTag) type = type == MessageType::kLayer ? MessageType::kOutputShare : MessageType::kLayer;
    inner_->send(type, b.data(), b.size());
  }
  std::vector<uint8_t> receive(MessageType type, size_t n) override { return inner_->receive(type, n); }
  void abort(const std::string& why) override { inner_->abort(why); }
  TransportStats stats() const override { return inner_->stats(); }

 private:
  std::unique_ptr<Transport> inner_;
  int left_;
  How how_;
};

TEST(MpcProtocol, MalformedMessagesAbortBothSides) {
  Program p = smallProgram();
  const Program pub = publicCopy(p);
  std::vector<ir::Tensor> in = {randomInput({2, 8}, 17)};
  using How = TamperingTransport::How;
  // The client's sends: hello, [F | LUT bytes], [F of the last layer], done. The server's:
  // hello, E, LUT bytes, outputs.
  for (bool tamperClient : {true, false})
    for (int which : {0, 1, 2})
      for (How how : {How::kDropLastByte, How::kExtraByte, How::kWrongTag}) {
        RunPayloads m = material(p);
        auto [c, s] = makeLocalPair(5000);
        std::unique_ptr<Transport> client = std::move(c), server = std::move(s);
        if (tamperClient) client = std::make_unique<TamperingTransport>(std::move(client), which, how);
        else server = std::make_unique<TamperingTransport>(std::move(server), which, how);
        std::exception_ptr serverError, clientError;
        std::thread t([&] {
          try {
            runServer(p, m.server, *server);
          } catch (...) {
            serverError = std::current_exception();
          }
        });
        try {
          runClient(pub, m.client, *client, in);
        } catch (...) {
          clientError = std::current_exception();
        }
        t.join();
        const std::string what = std::string(tamperClient ? "client" : "server") + " message " +
                                 std::to_string(which) + " tampered (" + std::to_string(int(how)) + ")";
        ASSERT_TRUE(clientError) << what;
        ASSERT_TRUE(serverError) << what;
        const std::string victim = errorText(tamperClient ? serverError : clientError);
        EXPECT_TRUE(victim.find("expected") != std::string::npos || victim.find("needs") != std::string::npos ||
                    victim.find("more than") != std::string::npos || victim.find("malformed") != std::string::npos)
            << what << ": " << victim;
      }
}

// A hello whose length fields lie (a huge program id length) is refused, not allocated.
TEST(MpcProtocol, MalformedHelloIsRefused) {
  Program p = smallProgram();
  RunPayloads m = material(p);
  auto [c, s] = makeLocalPair(5000);
  std::vector<uint8_t> bogus = {0xf0, 0xff, 0xff, 0xff, 'x'};
  s->send(MessageType::kHello, bogus.data(), bogus.size());
  try {
    runClient(publicCopy(p), m.client, *c, {randomInput({2, 8}, 19)});
    FAIL() << "a malformed hello was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("malformed hello"), std::string::npos) << e.what();
  }
  // and the peer is told
  s->receive(MessageType::kHello);  // the client's own hello came first
  try {
    s->receive(MessageType::kLayer);
    FAIL() << "the peer was not told";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("malformed hello"), std::string::npos) << e.what();
  }
}

TEST(MpcProtocol, SilentPeerTimesOut) {
  Program p = smallProgram();
  RunPayloads m = material(p);
  auto [c, s] = makeLocalPair(300);
  const Program pub = publicCopy(p);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(runClient(pub, m.client, *c, {randomInput({2, 8}, 16)}), Error);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
}

TEST(MpcDealer, ClientPayloadIsASeedAndServerHoldsTheTables) {
  Program p = smallProgram();
  RunPayloads m = material(p);
  // header + 32-byte seed only
  EXPECT_LT(m.client.size(), 128u);
  // c1 of both linear layers (16 + 6 ring values) and the tables (16 lookups x 256 entries)
  EXPECT_GE(m.server.size(), 8u * (16 + 6 + 16 * 256));
  EXPECT_LT(m.server.size(), 8u * (16 + 6 + 16 * 256) + 128);
  EXPECT_EQ(payloadSizes(p).client, m.client.size());
  EXPECT_EQ(payloadSizes(p).server, m.server.size());
  RunHeader h = readRunHeader(m.server);
  EXPECT_EQ(h.party, 1);
  EXPECT_EQ(h.programId, p.programId);
  // the shifted table shares reconstruct a rotation of the public table
  ClientMaterial cm = expandClientMaterial(p, m.client);
  ServerMaterial sm = expandServerMaterial(p, m.server);
  const size_t lutStep = 2;
  ASSERT_EQ(p.steps[lutStep].kind, StepKind::kLut);
  for (int64_t l = 0; l < 16; ++l) {
    const uint8_t sigma = uint8_t(cm.steps[lutStep].sigma[size_t(l)] + sm.steps[lutStep].sigma[size_t(l)]);
    for (int j = 0; j < 256; ++j) {
      Ring t = ClientMaterial::tableShare(cm.steps[lutStep].tableKey, l, uint8_t(j)) + sm.tableShare(lutStep, l, uint8_t(j));
      ASSERT_EQ(t, p.steps[lutStep].table[uint8_t(j - sigma)]);
    }
  }
}

}  // namespace
}  // namespace anvil::mpc::testing
