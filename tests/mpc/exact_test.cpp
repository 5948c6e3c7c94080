// The exact truncation of the two-party protocol (Program::exactTruncation, dealer.h
// exactLookup): single lookups over every shift 1..56 at values chosen around the rounding
// points, MaxPool with a shift, and the digits MLP / CNN compiled with it, each against the
// fixed executor bit for bit; the rounds and bytes it costs; the uniformity of what each
// party receives; the engine file's flag (and version-1 files read without it).
#include <gtest/gtest.h>
#include <sodium.h>

#include <cstring>

#include "runtime/mpc/compile.h"
#include "tests/mpc/protocol_test_util.h"
#include "tools/npy.h"

namespace anvil::mpc::testing {
namespace {

const std::string kModels = std::string(ANVIL_SOURCE_DIR) + "/tests/models/precision/";

void expectOk(const TwoPartyRun& r) {
  ASSERT_FALSE(r.clientError) << "client: " << errorText(r.clientError);
  ASSERT_FALSE(r.serverError) << "server: " << errorText(r.serverError);
}

RunPayloads material(const Program& p, int64_t run = 0) { return generateRun(publicCopy(p), newSetId(), run); }

// Input tensors that quantize to exactly these ring values: v = hi * 2^32 + lo with hi the
// signed and lo the unsigned 32-bit half, both exact in doubles (scales 1 and 2^-32).
struct SplitInputs {
  ir::Tensor hi, lo;
};
SplitInputs splitRing(const std::vector<Ring>& v) {
  SplitInputs s{ir::Tensor(DataType::kF64, {1, int64_t(v.size())}), ir::Tensor(DataType::kF64, {1, int64_t(v.size())})};
  for (size_t i = 0; i < v.size(); ++i) {
    s.hi.data<double>()[i] = double(int64_t(v[i]) >> 32);
    s.lo.data<double>()[i] = std::ldexp(double(v[i] & 0xffffffffu), -32);
  }
  return s;
}

// A program whose lookup input is exactly `n` given ring values, shared at random (it is the
// output of an identity linear layer, so both shares are masked): v = I (hi * 2^32 + lo).
struct LutProgram {
  ProgramBuilder b;
  int32_t v = -1, out = -1;
};
LutProgram lutProgram(int64_t n, int shift, const std::vector<Ring>& table) {
  LutProgram l;
  ProgramBuilder& b = l.b;
  b.p.exactTruncation = true;
  const int32_t hi = b.input({1, n}, 1.0);
  const int32_t lo = b.input({1, n}, std::ldexp(1.0, -32));
  Step mc;
  mc.kind = StepKind::kMulConst;
  mc.factor = int64_t(1) << 32;
  const int32_t hiShifted = b.unary(mc, hi, {1, n}, std::ldexp(1.0, -32));
  const int32_t sum = b.binary(StepKind::kAdd, hiShifted, lo, {1, n});
  b.p.tensors[size_t(sum)].scale = std::ldexp(1.0, -32);
  l.v = b.matmul(sum, n, false);
  Step& lin = b.p.steps.back();
  std::fill(lin.weights.begin(), lin.weights.end(), 0);
  for (int64_t k = 0; k < n; ++k) lin.weights[size_t(k * n + k)] = 1;
  l.out = b.lut(l.v, shift, table);
  b.output(l.out);
  b.p.tensors[size_t(l.out)].scale = 1.0;
  return l;
}

// Values around shift d's rounding points: 0, +-1, multiples of 2^d and the half-way points
// next to them (with and without the table index wrapping), the int64 extremes, and random
// ring values.
std::vector<Ring> valuesAround(int d, int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t one = int64_t(1) << d, half = one / 2;
  std::vector<Ring> v = {0, 1, Ring(-1), Ring(half), Ring(half - 1), Ring(half + 1), Ring(-half), Ring(-half - 1),
                         Ring(-half + 1), Ring(INT64_MAX), Ring(INT64_MIN), Ring(INT64_MIN + 1)};
  const int64_t maxK = d >= 55 ? 127 : 300;  // k * 2^d stays inside int64
  while (int64_t(v.size()) < n * 3 / 4) {
    const int64_t k = int64_t(rng() % uint64_t(2 * maxK + 1)) - maxK;
    const int64_t offsets[] = {-half - 1, -half, -half + 1, -1, 0, 1, half - 1, half, half + 1};
    v.push_back(Ring(k) * Ring(one) + Ring(offsets[rng() % 9]));
  }
  while (int64_t(v.size()) < n) v.push_back(rng());
  return v;
}

TEST(MpcExactTruncation, LutEqualsFixedForEveryShift) {
  const int64_t n = 256;
  const std::vector<Ring> table = randomTable(7);
  int64_t wrong = 0;
  for (int d = 1; d <= 56; ++d) {
    LutProgram l = lutProgram(n, d, table);
    const std::vector<Ring> values = valuesAround(d, n, uint64_t(d));
    const SplitInputs in = splitRing(values);
    const std::vector<ir::Tensor> inputs = {in.hi, in.lo};
    const auto plain = plainRun(l.b.p, inputs);
    ASSERT_EQ(plain[size_t(l.v)], values) << "shift " << d << ": the test's input construction";
    TwoPartyRun r = runBoth(l.b.p, material(l.b.p), inputs);
    expectOk(r);
    const ir::Tensor fixed = runFixed(l.b.p, inputs).at(0);
    ASSERT_TRUE(fixed.sameAs(r.client.outputs.at(0))) << "shift " << d;
    for (int64_t i = 0; i < n; ++i) {
      const Ring want = table[plainIndex(values[size_t(i)], d)];
      const Ring got = Ring(int64_t(std::llround(r.client.outputs[0].data<float>()[i])));
      if (got != want) {
        ++wrong;
        ADD_FAILURE() << "shift " << d << " value " << int64_t(values[size_t(i)]) << ": got " << int64_t(got)
                      << ", table[round half up] " << int64_t(want);
      }
    }
    // Cost: 1 + K rounds (K = ceil(d / 8) <= 2) or 3; ceil((d + 8) / 8) bytes each way and a
    // bit per digit (the chain) or 2 bits per digit and one (the states).
    const ProtocolStats& s = r.client.stats;
    const LayerStats* lut = nullptr;
    for (const LayerStats& ls : s.layers)
      if (ls.kind == StepKind::kLut) lut = &ls;
    ASSERT_NE(lut, nullptr);
    const int rounds = d <= 16 ? 1 + (d + 7) / 8 : 3;
    EXPECT_EQ(exactRounds(d), rounds);
    EXPECT_EQ(lut->rounds, rounds) << "shift " << d;
    EXPECT_EQ(lut->lookups, n);
    const uint64_t bitsPerLookup = d <= 16 ? uint64_t(exactDigits(d)) : 2 * uint64_t(exactDigits(d)) + 1;
    const uint64_t oneWay = uint64_t(n) * uint64_t(exactOpenBytes(d)) + bitsPerLookup * uint64_t(n) / 8;
    EXPECT_EQ(lut->bytesSent, oneWay) << "shift " << d;
    EXPECT_EQ(lut->bytesReceived, oneWay) << "shift " << d;
    EXPECT_EQ(s.rounds, rounds) << "shift " << d;  // the linear layer's F rides along
    EXPECT_EQ(r.server.stats.rounds, s.rounds);
  }
  EXPECT_EQ(wrong, 0);
}

// The same program without the flag takes the one-round lookup, which is off by one on
// these values: the flag is what makes the difference.
TEST(MpcExactTruncation, DefaultModeDiffersOnTheSameValues) {
  const int d = 12;
  const std::vector<Ring> table = identityTable();
  LutProgram l = lutProgram(1024, d, table);
  l.b.p.exactTruncation = false;
  const std::vector<Ring> values = valuesAround(d, 1024, 3);
  const SplitInputs in = splitRing(values);
  TwoPartyRun r = runBoth(l.b.p, material(l.b.p), {in.hi, in.lo});
  expectOk(r);
  const ir::Tensor fixed = runFixed(l.b.p, {in.hi, in.lo}).at(0);
  int64_t differ = 0;
  for (int64_t i = 0; i < fixed.numel(); ++i) differ += fixed.data<float>()[i] != r.client.outputs[0].data<float>()[i];
  EXPECT_GT(differ, 0);
  EXPECT_EQ(r.client.stats.rounds, 1);
}

TEST(MpcExactTruncation, MaxPoolWithShiftEqualsFixed) {
  for (int shift : {3, 11, 20}) {
    ProgramBuilder b;
    b.p.exactTruncation = true;
    int32_t x = b.input({2, 4, 6, 7}, 1.0);
    // a conv in front: the pool's input is shared at random
    ConvGeometry one;
    int32_t h = b.conv(x, 4, one);
    ConvGeometry g;
    g.kernel[0] = 3, g.kernel[1] = 2;
    g.stride[0] = g.stride[1] = 2;
    g.pads[0] = 1, g.pads[3] = 1;
    int32_t m = b.maxPool(h, shift, g);
    b.output(m);
    b.p.tensors[size_t(m)].scale = 1.0;
    const float range = float(int64_t(1) << (shift + 4)) / 200;
    ir::Tensor in = randomInput({2, 4, 6, 7}, uint64_t(shift), -range, range);
    for (int64_t i = 0; i < in.numel(); ++i) in.data<float>()[i] = std::round(in.data<float>()[i]);
    TwoPartyRun r = runBoth(b.p, material(b.p), {in});
    expectOk(r);
    const ir::Tensor fixed = runFixed(b.p, {in}).at(0);
    ASSERT_TRUE(fixed.sameAs(r.client.outputs.at(0))) << "shift " << shift;
    const auto plain = plainRun(b.p, {in});
    const Ring mask = (Ring(1) << shift) - 1;
    int64_t inexact = 0;  // comparisons whose difference is not a multiple of 2^d: rounding matters
    for (const Ring v : plain[size_t(h)]) inexact += (v & mask) != 0;
    EXPECT_GT(inexact, 0);
    // 3x2 windows: 3 levels of exactRounds(d) rounds
    const LayerStats& pool = r.client.stats.layers.back().kind == StepKind::kMaxPool ? r.client.stats.layers.back()
                                                                                     : r.client.stats.layers.at(1);
    ASSERT_EQ(pool.kind, StepKind::kMaxPool);
    EXPECT_EQ(pool.rounds, 3 * exactRounds(shift));
  }
}

// What each party receives at the lookups (the opened bytes of m, then the masked borrow
// bits or states) is uniform whatever the input: zero inputs and random ones alike, for the
// chain (shift 10) and the states (shift 20).
TEST(MpcExactTruncation, ReceivedLookupBytesAreUniform) {
  const int64_t n = 2048;
  for (int d : {10, 20})
    for (bool zero : {true, false}) {
      LutProgram l = lutProgram(n, d, identityTable());
      std::vector<Ring> values = valuesAround(d, n, 5);
      if (zero) std::fill(values.begin(), values.end(), 0);
      const SplitInputs in = splitRing(values);
      std::vector<std::vector<uint8_t>> parts[2];  // each "lut" part in order: m, then the bit rounds
      auto observer = [&](int party) {
        return [&, party](size_t, const std::string& part, const uint8_t* data, size_t size) {
          if (part == "lut") parts[party].emplace_back(data, data + size);
        };
      };
      ProtocolOptions co, so;
      co.observer = observer(0);
      so.observer = observer(1);
      TwoPartyRun r = runBoth(l.b.p, material(l.b.p), {in.hi, in.lo}, co, so);
      expectOk(r);
      for (int party : {0, 1}) {
        ASSERT_EQ(int(parts[party].size()), exactRounds(d));
        ASSERT_EQ(parts[party][0].size(), size_t(n * exactOpenBytes(d)));
        EXPECT_LT(chiSquareUniform(parts[party][0]), kChi255) << "party " << party << " shift " << d
                                                               << (zero ? " zero input" : "");
        int64_t ones = 0, total = 0;
        for (size_t k = 1; k < parts[party].size(); ++k)
          for (uint8_t byte : parts[party][k]) {
            ones += __builtin_popcount(byte);
            total += 8;
          }
        EXPECT_GT(total, 0);
        EXPECT_LT(std::fabs(double(ones) - double(total) / 2), 5 * std::sqrt(double(total) / 4))
            << "party " << party << " shift " << d << (zero ? " zero input" : "");
      }
    }
}

TEST(MpcExactTruncation, EngineFileKeepsTheFlagAndReadsVersion1) {
  LutProgram l = lutProgram(4, 5, identityTable());
  l.b.p.programId = std::string(16, 'x');
  Program p = l.b.p;
  EXPECT_TRUE(deserializeProgram(serializeProgram(p)).exactTruncation);
  EXPECT_TRUE(deserializeProgram(serializeProgram(publicCopy(p))).exactTruncation);
  p.exactTruncation = false;
  const std::string v2 = serializeProgram(p);
  EXPECT_FALSE(deserializeProgram(v2).exactTruncation);
  // A version-1 file: no flag byte after the public flag (header: magic, u32 version, u64
  // payload length; payload: the program id (u64 length + 16 bytes), the public flag).
  std::string v1 = v2.substr(0, v2.size() - 32);
  const size_t flagAt = 8 + 4 + 8 + 8 + 16 + 1;
  ASSERT_EQ(v1[flagAt], '\0');
  v1.erase(flagAt, 1);
  const uint32_t version = 1;
  std::memcpy(v1.data() + 8, &version, 4);
  const uint64_t payload = v1.size() - 20;
  std::memcpy(v1.data() + 12, &payload, 8);
  unsigned char sum[32];
  crypto_generichash(sum, sizeof sum, reinterpret_cast<const unsigned char*>(v1.data()), v1.size(), nullptr, 0);
  v1.append(reinterpret_cast<const char*>(sum), sizeof sum);
  Program old = deserializeProgram(v1);
  EXPECT_FALSE(old.exactTruncation);
  EXPECT_EQ(old.steps.size(), p.steps.size());
  // the exact flag's byte in a version-2 file is read, not skipped
  p.exactTruncation = true;
  const std::string exact = serializeProgram(p);
  ASSERT_EQ(exact[flagAt], '\1');
  // a flag byte other than 0 or 1 is a corrupt file (checksum recomputed)
  std::string two = exact.substr(0, exact.size() - 32);
  two[flagAt] = 2;
  crypto_generichash(sum, sizeof sum, reinterpret_cast<const unsigned char*>(two.data()), two.size(), nullptr, 0);
  two.append(reinterpret_cast<const char*>(sum), sizeof sum);
  try {
    deserializeProgram(two);
    ADD_FAILURE() << "a flag byte of 2 was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidEngine);
    EXPECT_NE(std::string(e.what()).find("exact truncation"), std::string::npos) << e.what();
  }
  // an unknown version is refused
  std::string v9 = v2;
  const uint32_t nine = 9;
  std::memcpy(v9.data() + 8, &nine, 4);
  EXPECT_THROW(deserializeProgram(v9), Error);
}

// ---- the digits models ------------------------------------------------------------------

// Compiles the model with exactTruncation, runs `batches` test batches securely: every
// output bit-identical to the fixed executor's. Prints the cost next to the default mode's.
void runModelExact(const char* model, std::vector<int64_t> rowShape, int64_t batch, int64_t batches) {
  CompileOptions o;
  rowShape.insert(rowShape.begin(), batch);
  o.shapes["input"] = rowShape;
  o.calibDir = kModels + model + "/calib";
  Program server = compileProgram(kModels + model + "/model.onnx", o);
  server.exactTruncation = true;
  int64_t truncating = 0;
  for (const Step& s : server.steps) truncating += exactLookup(server, s);
  EXPECT_GT(truncating, 0) << model << ": no lookup truncates, nothing to test";
  const ir::Tensor test = tools::readNpy(kModels + model + "/test/input.npy");
  for (int64_t b = 0; b < batches; ++b) {
    std::vector<ir::Tensor> in = {rows(test, b * batch, batch)};
    TwoPartyRun r = runBoth(server, material(server, b), in);
    expectOk(r);
    const ir::Tensor fixed = runFixed(server, in).at(0);
    ASSERT_TRUE(fixed.sameAs(r.client.outputs.at(0))) << model << " batch " << b;
    if (b == 0) {
      Program plain = server;
      plain.exactTruncation = false;
      TwoPartyRun d = runBoth(plain, material(plain, b), in);
      expectOk(d);
      const PayloadSizes se = payloadSizes(server), sd = payloadSizes(plain);
      for (int exact : {0, 1}) {
        const ProtocolStats& s = exact ? r.client.stats : d.client.stats;
        const PayloadSizes& sz = exact ? se : sd;
        std::printf("[ %s batch %lld %s ] online %.2f ms, rounds %lld, sent %llu B, received %llu B, lookups %lld, "
                    "%.3f B per lookup, offline server %llu B\n",
                    model, (long long)batch, exact ? "exact  " : "default", s.onlineMs, (long long)s.rounds,
                    (unsigned long long)s.bytesSent, (unsigned long long)s.bytesReceived, (long long)s.lookups,
                    s.lutBytesPerActivation, (unsigned long long)sz.server);
      }
      EXPECT_GT(r.client.stats.rounds, d.client.stats.rounds);
      EXPECT_GT(r.client.stats.lutBytesPerActivation, 2.0);
    }
  }
}

TEST(MpcExactTruncation, DigitsMlpEqualsFixed) { runModelExact("digits_mlp", {64}, 16, 6); }
TEST(MpcExactTruncation, DigitsCnnEqualsFixed) { runModelExact("digits_cnn", {1, 8, 8}, 16, 3); }
TEST(MpcExactTruncation, DigitsCnnBatch1EqualsFixed) { runModelExact("digits_cnn", {1, 8, 8}, 1, 4); }
TEST(MpcExactTruncation, DigitsMlpBatch1EqualsFixed) { runModelExact("digits_mlp", {64}, 1, 4); }
// Softmax, LayerNorm and Beaver products between the lookups: exact as well.
TEST(MpcExactTruncation, DigitsTransformerEqualsFixed) { runModelExact("digits_transformer", {8, 8}, 4, 2); }

}  // namespace
}  // namespace anvil::mpc::testing
