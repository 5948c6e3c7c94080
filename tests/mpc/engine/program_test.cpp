// The mpc engine file (runtime/mpc/program.cpp): round trip, public copy, and refusal of
// every truncation, every flipped byte, foreign files and well-checksummed hostile content.
#include <gtest/gtest.h>
#include <sodium.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <random>

#include "anvil/error.h"
#include "runtime/mpc/fixed.h"
#include "runtime/mpc/program.h"

namespace anvil::mpc {
namespace {

// x[2,3] -> kLinear (3x2) -> kLut -> kOutput, with every field of a step set somewhere.
Program sampleProgram() {
  Program p;
  p.programId = std::string(16, '\0');
  for (int i = 0; i < 16; ++i) p.programId[i] = char(i * 7 + 1);
  p.serverPublicKey.assign(32, 0xAB);
  p.serverSecretKey.assign(32, 0xCD);
  p.tensors = {{"x", {2, 3}, 0.25}, {"h", {2, 2}, 0.125}, {"y", {2, 2}, 0.5}};
  Step in;
  in.kind = StepKind::kInput;
  in.name = "x";
  in.output = 0;
  Step lin;
  lin.kind = StepKind::kLinear;
  lin.name = "fc";
  lin.inputs = {0};
  lin.output = 1;
  lin.weightShape = {3, 2};
  lin.weightScale = 0.5;
  lin.weights = {1, 2, 3, Ring(-4), 5, 6};
  lin.bias = {7, Ring(-8)};
  lin.conv.pads[2] = 3;
  lin.conv.group = 1;
  lin.axes = {1};
  lin.perm = {1, 0};
  lin.starts = {0, 1};
  lin.ends = {2, 3};
  lin.steps = {1, -1};
  lin.axis = 1;
  lin.factor = 9;
  Step lut;
  lut.kind = StepKind::kLut;
  lut.name = "act";
  lut.inputs = {1};
  lut.output = 2;
  lut.shift = 3;
  lut.function = LutFunction::kRelu;
  lut.tableLow = -239;
  lut.table.resize(256);
  for (int i = 0; i < 256; ++i) lut.table[i] = Ring(int8_t(i) > 0 ? int8_t(i) : 0);
  Step out;
  out.kind = StepKind::kOutput;
  out.name = "y";
  out.inputs = {2};
  p.steps = {in, lin, lut, out};
  p.inputs = {0};
  p.outputs = {2};
  return p;
}

ErrorCode codeOf(const std::string& bytes) {
  try {
    deserializeProgram(bytes);
  } catch (const Error& e) {
    return e.code();
  } catch (...) {
    return ErrorCode::kInternal;
  }
  return ErrorCode::kOk;
}

// Replaces the checksum so that content checks, not the checksum, must catch an edit.
std::string resum(std::string bytes) {
  const size_t body = bytes.size() - 32;
  crypto_generichash(reinterpret_cast<unsigned char*>(&bytes[body]), 32,
                     reinterpret_cast<const unsigned char*>(bytes.data()), body, nullptr, 0);
  return bytes;
}

TEST(MpcProgramFile, RoundTripKeepsEveryField) {
  Program p = sampleProgram();
  std::string bytes = serializeProgram(p);
  Program q = deserializeProgram(bytes);
  EXPECT_EQ(serializeProgram(q), bytes);
  EXPECT_EQ(q.programId, p.programId);
  EXPECT_EQ(q.serverSecretKey, p.serverSecretKey);
  ASSERT_EQ(q.steps.size(), 4u);
  EXPECT_EQ(q.steps[1].weights, p.steps[1].weights);
  EXPECT_EQ(q.steps[1].bias, p.steps[1].bias);
  EXPECT_EQ(q.steps[1].steps, (std::vector<int64_t>{1, -1}));
  EXPECT_EQ(q.steps[1].conv.pads[2], 3);
  EXPECT_EQ(q.steps[1].factor, 9);
  EXPECT_EQ(q.steps[2].table, p.steps[2].table);
  EXPECT_EQ(q.steps[2].shift, 3);
  EXPECT_EQ(q.steps[2].tableLow, -239);
  EXPECT_EQ(q.tensors[1].scale, 0.125);
  EXPECT_EQ(q.outputs, p.outputs);
}

TEST(MpcProgramFile, EveryTruncationIsRefused) {
  std::string bytes = serializeProgram(sampleProgram());
  for (size_t n = 0; n < bytes.size(); ++n)
    ASSERT_EQ(codeOf(bytes.substr(0, n)), ErrorCode::kInvalidEngine) << "truncated to " << n;
  EXPECT_EQ(codeOf(bytes + "x"), ErrorCode::kInvalidEngine);
}

TEST(MpcProgramFile, EveryFlippedByteIsRefused) {
  std::string bytes = serializeProgram(sampleProgram());
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = char(bad[i] ^ 0x20);
    ASSERT_EQ(codeOf(bad), ErrorCode::kInvalidEngine) << "byte " << i;
  }
}

TEST(MpcProgramFile, HostileContentWithAValidChecksumIsRefused) {
  std::string bytes = serializeProgram(sampleProgram());
  // Past the header (20 bytes), the program id's length: claim 2^60 bytes.
  std::string huge = bytes;
  for (int i = 0; i < 8; ++i) huge[20 + i] = char(i == 7 ? 0x10 : 0);
  EXPECT_EQ(codeOf(resum(huge)), ErrorCode::kInvalidEngine);
  // A step reading a tensor that does not exist, a bad kind, a short table, a bad shift.
  auto edited = [](const std::function<void(Program&)>& f) {
    Program p = sampleProgram();
    f(p);
    return serializeProgram(p);
  };
  EXPECT_EQ(codeOf(edited([](Program& p) { p.steps[2].inputs = {7}; })), ErrorCode::kInvalidEngine);
  EXPECT_EQ(codeOf(edited([](Program& p) { p.steps[1].kind = StepKind(99); })), ErrorCode::kInvalidEngine);
  EXPECT_EQ(codeOf(edited([](Program& p) { p.steps[2].table.resize(255); })), ErrorCode::kInvalidEngine);
  EXPECT_EQ(codeOf(edited([](Program& p) { p.steps[2].shift = 60; })), ErrorCode::kInvalidEngine);
  EXPECT_EQ(codeOf(edited([](Program& p) { p.steps[1].weights.pop_back(); })), ErrorCode::kInvalidEngine);
  EXPECT_EQ(codeOf(edited([](Program& p) { p.programId = "short"; })), ErrorCode::kInvalidEngine);
  EXPECT_EQ(codeOf(edited([](Program& p) { p.tensors[0].shape = {-1, 3}; })), ErrorCode::kInvalidEngine);
  EXPECT_EQ(codeOf(edited([](Program& p) { p.tensors[0].shape = {int64_t(1) << 20, int64_t(1) << 20}; })),
            ErrorCode::kInvalidEngine);
  EXPECT_EQ(codeOf(edited([](Program& p) { p.steps[2].conv.stride[1] = 0; })), ErrorCode::kInvalidEngine);
  EXPECT_EQ(codeOf(edited([](Program& p) { p.steps[1].conv.group = 0; })), ErrorCode::kInvalidEngine);
  EXPECT_EQ(codeOf(edited([](Program& p) { p.steps[1].conv.pads[0] = -1; })), ErrorCode::kInvalidEngine);
  EXPECT_EQ(codeOf(edited([](Program& p) { p.steps[2].function = LutFunction(42); })), ErrorCode::kInvalidEngine);
  EXPECT_EQ(codeOf(edited([](Program& p) { p.outputs = {-1}; })), ErrorCode::kInvalidEngine);
  EXPECT_EQ(codeOf(edited([](Program& p) { p.steps[2].tableLow = 1; })), ErrorCode::kInvalidEngine);
  // A future format version.
  std::string v3 = bytes;
  v3[8] = 3;
  EXPECT_EQ(codeOf(resum(v3)), ErrorCode::kInvalidEngine);
}

TEST(MpcProgramFile, RandomEditsWithAValidChecksumAreRefusedOrRoundTrip) {
  // Content checks, not the checksum: random bytes of the payload rewritten and the
  // checksum recomputed. Each file either loads (and then serializes back to itself) or is
  // refused with kInvalidEngine; nothing crashes or throws anything else.
  const std::string bytes = serializeProgram(sampleProgram());
  std::mt19937 rng(17);
  int refused = 0, loaded = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bad = bytes;
    const int edits = 1 + int(rng() % 4);
    for (int e = 0; e < edits; ++e) bad[20 + rng() % (bytes.size() - 52)] = char(rng());
    bad = resum(bad);
    try {
      Program p = deserializeProgram(bad);
      EXPECT_EQ(serializeProgram(p), bad);
      ++loaded;
    } catch (const Error& e) {
      ASSERT_EQ(e.code(), ErrorCode::kInvalidEngine) << e.what();
      ++refused;
    }
  }
  EXPECT_GT(refused, 1000);
  EXPECT_GT(loaded, 0);  // edits of names, scales and weights load: the checksum guards those
}

TEST(MpcProgramFile, ForeignFilesAreRefused) {
  EXPECT_EQ(codeOf(""), ErrorCode::kInvalidEngine);
  EXPECT_EQ(codeOf("ANVL\x01\x00\x00\x00 a standard engine, not this"), ErrorCode::kInvalidEngine);
  EXPECT_EQ(codeOf(std::string(200, 'A')), ErrorCode::kInvalidEngine);
  const std::string dir = ::testing::TempDir();
  std::ofstream(dir + "/mpc_ok.engine", std::ios::binary) << serializeProgram(sampleProgram());
  std::ofstream(dir + "/other.engine", std::ios::binary) << "ANVL not an mpc engine";
  EXPECT_TRUE(isMpcEngineFile(dir + "/mpc_ok.engine"));
  EXPECT_FALSE(isMpcEngineFile(dir + "/other.engine"));
  EXPECT_FALSE(isMpcEngineFile(dir + "/missing.engine"));
}

TEST(MpcProgramFile, PublicCopyHoldsNoWeightsBiasesOrSecretKey) {
  Program p = sampleProgram();
  Program pub = deserializeProgram(serializeProgram(publicCopy(p)));
  EXPECT_TRUE(pub.isPublic);
  EXPECT_TRUE(pub.serverSecretKey.empty());
  EXPECT_EQ(pub.serverPublicKey, p.serverPublicKey);
  EXPECT_EQ(pub.programId, p.programId);
  for (const Step& s : pub.steps) {
    EXPECT_TRUE(s.weights.empty());
    EXPECT_TRUE(s.bias.empty());
  }
  EXPECT_EQ(pub.steps[1].weightShape, p.steps[1].weightShape);  // the dealer needs shapes
  EXPECT_EQ(pub.steps[2].table, p.steps[2].table);              // tables are public
  // The weights' bytes are nowhere in the public file.
  std::string bytes = serializeProgram(publicCopy(p));
  std::string secret(reinterpret_cast<const char*>(p.serverSecretKey.data()), 32);
  EXPECT_EQ(bytes.find(secret), std::string::npos);
  // A public engine cannot run in plaintext, and a "public" file with weights is refused.
  ir::Tensor x(ir::DataType::kFloat, {2, 3});
  try {
    runFixed(pub, {x});
    ADD_FAILURE() << "runFixed ran a public engine";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("public"), std::string::npos) << e.what();
  }
  Program forged = publicCopy(p);
  forged.steps[1].weights = p.steps[1].weights;
  EXPECT_EQ(codeOf(serializeProgram(forged)), ErrorCode::kInvalidEngine);
}

TEST(MpcFixed, QuantizesHalfAwayAndDequantizesOutputs) {
  // x (scale 0.5) -> kOutput: the output is round-half-away(x / 0.5) * 0.5.
  Program p;
  p.programId = std::string(16, 'i');
  p.tensors = {{"x", {4}, 0.5}};
  Step in;
  in.kind = StepKind::kInput;
  in.output = 0;
  Step out;
  out.kind = StepKind::kOutput;
  out.inputs = {0};
  p.steps = {in, out};
  p.inputs = {0};
  p.outputs = {0};
  ir::Tensor x = ir::Tensor::fromVector<float>(ir::DataType::kFloat, {4}, {1.25f, -1.25f, 0.74f, -3.0f});
  std::vector<RingVec> ring = runFixedRing(p, {x});
  EXPECT_EQ(ring[0], (RingVec{3, Ring(-3), 1, Ring(-6)}));
  std::vector<ir::Tensor> f = runFixed(p, {x});
  EXPECT_FLOAT_EQ(f[0].data<float>()[0], 1.5f);
  EXPECT_FLOAT_EQ(f[0].data<float>()[1], -1.5f);
  EXPECT_FLOAT_EQ(f[0].data<float>()[3], -3.0f);
  // A wrong input shape names the input.
  ir::Tensor bad(ir::DataType::kFloat, {5});
  EXPECT_THROW(runFixed(p, {bad}), Error);
}

}  // namespace
}  // namespace anvil::mpc
