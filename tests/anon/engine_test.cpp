// The bucketed engine: bucket specs, the padding (outputs of a padded request equal the
// same request run at its own shape, bit for bit, and a standard engine built for that
// shape), sequence buckets, a model that mixes positions refused, the ladder, the
// anon.engine container and its corruption.
#include <gtest/gtest.h>

#include <random>

#include "anvil/error.h"
#include "runtime/anon/bucket_engine.h"

namespace anvil::anon {
namespace {

const std::string kModels = ANVIL_ANON_MODELS;

ir::Tensor randomInput(const Dims& dims, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n;
  ir::Tensor t(DataType::kF32, dims);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = n(rng);
  return t;
}

AnonBuildOptions quick() {
  AnonBuildOptions o;
  o.timingRuns = 20;
  return o;
}

const AnonEngine& cnnEngine() {
  static const AnonEngine e = AnonEngine::build(kModels + "/anon_cnn.onnx",
                                                parseShapeBuckets("input:1x1x32x32,8x1x32x32"), quick());
  return e;
}

TEST(AnonEngine, ParsesBucketSpecs) {
  BucketSpec b = parseShapeBuckets("input:1x1x8x8,8x1x8x8");
  ASSERT_EQ(b.inputs, std::vector<std::string>{"input"});
  ASSERT_EQ(b.shapes.size(), 2u);
  EXPECT_EQ(b.shapes[1][0], (Dims{8, 1, 8, 8}));
  b = parseShapeBuckets("a:1x4,2x8,b:1x3,2x3");
  EXPECT_EQ(b.inputs, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(b.shapes[1][1], (Dims{2, 3}));
  for (const char* bad : {"", "1x2", "input:1x0", "input:8x1,1x1", "input:1x2,1x2", "a:1,2,b:1", "a:1x2,1x2x3",
                          "input:axb", "a:1,a:2"})
    EXPECT_THROW(parseShapeBuckets(bad), Error) << bad;
}

TEST(AnonEngine, FindsTheSmallestBucketAndRefusesAboveTheTop) {
  const BucketSpec b = parseShapeBuckets("x:1x4x8,4x16x8");
  EXPECT_EQ(findBucket(b, {{"x", {1, 4, 8}}}), 0);
  EXPECT_EQ(findBucket(b, {{"x", {1, 5, 8}}}), 1);
  EXPECT_EQ(findBucket(b, {{"x", {2, 1, 8}}}), 1);
  EXPECT_EQ(findBucket(b, {{"x", {4, 16, 8}}}), 1);
  EXPECT_EQ(findBucket(b, {{"x", {5, 16, 8}}}), -1);
  EXPECT_EQ(findBucket(b, {{"x", {1, 17, 8}}}), -1);
  EXPECT_THROW(findBucket(b, {{"x", {1, 4, 7}}}), Error);  // a fixed dim must match
  EXPECT_THROW(findBucket(b, {{"x", {1, 4}}}), Error);
  EXPECT_THROW(findBucket(b, {{"y", {1, 4, 8}}}), Error);
  // Two inputs: a bucket must hold both.
  const BucketSpec two = parseShapeBuckets("ids:1x8,4x32,mask:1x8,4x32");
  EXPECT_EQ(findBucket(two, {{"ids", {1, 8}}, {"mask", {1, 8}}}), 0);
  EXPECT_EQ(findBucket(two, {{"ids", {1, 8}}, {"mask", {2, 8}}}), 1);
  EXPECT_EQ(findBucket(two, {{"ids", {4, 32}}, {"mask", {4, 33}}}), -1);
  EXPECT_THROW(findBucket(two, {{"ids", {1, 8}}}), Error);
}

TEST(AnonEngine, PaddedOutputsEqualTheUnpaddedRunExactly) {
  const AnonEngine& e = cnnEngine();
  AnonRunner runner(e);
  for (int64_t batch : {1, 2, 3, 5, 7, 8}) {
    const Tensors req = {{"input", randomInput({batch, 1, 32, 32}, uint32_t(batch))}};
    const int bucket = findBucket(e.header().buckets, {{"input", {batch, 1, 32, 32}}});
    EXPECT_EQ(bucket, batch == 1 ? 0 : 1);
    const Tensors padded = runner.run(req, bucket), own = runner.run(req, -1);
    ASSERT_EQ(padded.size(), 1u);
    EXPECT_EQ(padded[0].first, "logits");
    EXPECT_EQ(padded[0].second.dims(), (Dims{batch, 10}));
    EXPECT_TRUE(padded[0].second.sameAs(own[0].second)) << "batch " << batch;
  }
  // Against a standard engine built for exactly that shape (its own tactics): same values
  // within float rounding.
  BuilderConfig cfg;
  cfg.inputShapes["input"] = {3, 1, 32, 32};
  std::string bytes;
  ASSERT_TRUE(Builder::buildFromOnnx(kModels + "/anon_cnn.onnx", cfg, &bytes));
  std::shared_ptr<Engine> std3;
  ASSERT_TRUE(Engine::fromBytes(bytes, &std3));
  std::unique_ptr<ExecutionContext> ctx;
  ASSERT_TRUE(std3->createContext(&ctx));
  ir::Tensor x = randomInput({3, 1, 32, 32}, 99);
  ASSERT_TRUE(ctx->setTensorAddress("input", x.mutableRaw()));
  ASSERT_TRUE(ctx->run());
  const float* ref = static_cast<const float*>(ctx->outputData("logits"));
  const Tensors padded = runner.run({{"input", x}}, 1);
  for (int i = 0; i < 30; ++i) EXPECT_NEAR(padded[0].second.data<float>()[i], ref[i], 1e-5f) << i;
  EXPECT_EQ(e.header().paddingMaxAbsDiff, (std::vector<double>{0, 0}));
}

TEST(AnonEngine, SequenceBucketsPadTwoDims) {
  const AnonEngine e = AnonEngine::build(kModels + "/anon_seq.onnx", parseShapeBuckets("x:1x4x8,4x16x8"), quick());
  AnonRunner runner(e);
  const Tensors req = {{"x", randomInput({3, 11, 8}, 5)}};
  const Tensors padded = runner.run(req, 1), own = runner.run(req, -1);
  EXPECT_EQ(padded[0].second.dims(), (Dims{3, 11, 4}));
  EXPECT_TRUE(padded[0].second.sameAs(own[0].second));
}

TEST(AnonEngine, RefusesBucketsAlongADimTheModelMixes) {
  try {
    AnonEngine::build(kModels + "/anon_mix.onnx", parseShapeBuckets("x:1x4x8,1x16x8"), quick());
    FAIL() << "softmax over the padded sequence was accepted";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("zero padding changes the outputs"), std::string::npos) << err.what();
  }
  // Along the batch the same model is fine.
  EXPECT_NO_THROW(AnonEngine::build(kModels + "/anon_mix.onnx", parseShapeBuckets("x:1x4x8,4x4x8"), quick()));
}

TEST(AnonEngine, LadderCoversEachBucketsP99WithTheMargin) {
  const AnonHeader& h = cnnEngine().header();
  ASSERT_EQ(h.timings.size(), 2u);
  EXPECT_GE(h.ladderMs[0], h.ladder.floorMs);
  for (size_t k = 0; k < h.timings.size(); ++k) {
    EXPECT_GT(h.timings[k].runs, 0);
    EXPECT_LE(h.timings[k].medianMs, h.timings[k].p99Ms);
    EXPECT_GE(h.ladderMs[size_t(h.bucketRung[k])], h.timings[k].p99Ms * (1 + h.ladder.margin));
  }
  // A synthetic header: rungs geometric from the first need, each bucket on the first rung
  // that covers it.
  AnonHeader s;
  s.ladder = {0.25, 2.0, 1.0};
  s.timings = {{100, 1, 2, 3}, {100, 3, 4, 5}, {100, 10, 12, 20}};
  deriveLadder(&s);
  EXPECT_EQ(s.ladderMs, (std::vector<double>{2.5, 5, 10, 20}));
  EXPECT_EQ(s.bucketRung, (std::vector<int>{0, 1, 3}));  // needs 2.5, 5, 15
  // rungMs: the first rung at or above, then geometric past the top.
  const AnonEngine& e = cnnEngine();
  EXPECT_EQ(e.rungMs(0), e.header().ladderMs[0]);
  EXPECT_EQ(e.rungMs(e.header().ladderMs.back() * 1.5), e.header().ladderMs.back() * e.header().ladder.ratio);
}

TEST(AnonEngine, ContainerRoundTripsAndRefusesCorruption) {
  const AnonEngine& e = cnnEngine();
  const std::string bytes = e.serialize();
  const AnonEngine back = AnonEngine::fromBytes(bytes);
  EXPECT_EQ(back.header().ladderMs, e.header().ladderMs);
  EXPECT_EQ(back.header().buckets.shapes, e.header().buckets.shapes);
  EXPECT_EQ(back.engineBytes(), e.engineBytes());
  EXPECT_EQ(back.header().timings[1].p99Ms, e.header().timings[1].p99Ms);
  EXPECT_THROW(AnonEngine::fromBytes(bytes.substr(0, 10)), Error);
  EXPECT_THROW(AnonEngine::fromBytes(bytes.substr(0, bytes.size() - 1)), Error);
  EXPECT_THROW(AnonEngine::fromBytes(bytes + "x"), Error);
  std::string badMagic = bytes;
  badMagic[0] = 'X';
  EXPECT_THROW(AnonEngine::fromBytes(badMagic), Error);
  std::string badJson = bytes;
  badJson[24] = '#';  // first byte of the JSON header
  EXPECT_THROW(AnonEngine::fromBytes(badJson), Error);
  std::string badEngine = bytes;
  badEngine[bytes.size() - 100] ^= 0x5a;
  EXPECT_THROW(AnonEngine::fromBytes(badEngine), Error);
  EXPECT_THROW(AnonEngine::fromBytes(e.engineBytes()), Error);  // a standard engine is not an anon engine
}

TEST(AnonEngine, CopyCornerPadsAndSlices) {
  std::vector<int32_t> src = {1, 2, 3, 4, 5, 6};  // 2x3
  std::vector<int32_t> dst(12, 0);                // 3x4
  copyCorner(reinterpret_cast<uint8_t*>(src.data()), {2, 3}, reinterpret_cast<uint8_t*>(dst.data()), {3, 4}, 4);
  EXPECT_EQ(dst, (std::vector<int32_t>{1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0, 0}));
  std::vector<int32_t> back(6, 0);
  copyCorner(reinterpret_cast<uint8_t*>(dst.data()), {3, 4}, reinterpret_cast<uint8_t*>(back.data()), {2, 3}, 4);
  EXPECT_EQ(back, src);
}

}  // namespace
}  // namespace anvil::anon
