// anvil.Attention's CUDA tactic (cuda/tactics/attention.cpp, the flash-style kernel of
// cuda/kernels/attention.cuh) on the sim against the reference interpreter: sequence lengths
// below, at and past the 8-row query tile and the 32-key tile (1, 7, 8, 33), several heads,
// head sizes past one column per lane, broadcast batches, every mask kind (fully masked rows
// included), and the packed QKV form in both layouts as BERT uses it.
#include "tactic_test_util.h"

namespace anvil::cuda::testing {
namespace {

struct Arg {
  ir::Tensor t;
  bool omitted = false;
};

std::unique_ptr<ir::Graph> attentionNode(const std::vector<Arg>& args, const ir::Attributes& attrs) {
  auto g = std::make_unique<ir::Graph>();
  std::vector<ir::Value*> vs;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].omitted) {
      vs.push_back(nullptr);
      continue;
    }
    const ir::Tensor& t = args[i].t;
    ir::Value* v = g->addValue("x" + std::to_string(i), {t.dtype(), ir::Shape::fromExtents(t.dims())});
    g->addInput(v);
    vs.push_back(v);
  }
  ir::Node* n = g->addNode("Attention", "anvil", "n0", vs, {"y"});
  n->attrs() = attrs;
  g->addOutput(n->output(0));
  ir::inferShapes(*g);
  return g;
}

const std::string kName = "f32_attention_flash_q8_k32_block128";

bool offered(const ir::Node& n) {
  for (const runtime::Kernel* k : supportingKernels(n))
    if (k->name == kName) return true;
  return false;
}

void expectMatches(const std::vector<Arg>& args, const ir::Attributes& attrs, const std::string& what) {
  SCOPED_TRACE(what);
  auto g = attentionNode(args, attrs);
  const ir::Node& n = *g->nodes()[0];
  ASSERT_TRUE(offered(n)) << kName << " does not support " << n.label();
  std::vector<ir::Tensor> inputs;
  for (const Arg& a : args) inputs.push_back(a.omitted ? ir::Tensor() : a.t);
  auto rt = simRuntime();
  const auto got = runOnDevice(*cudaKernel(n, kName), n, inputs, *rt);
  const auto want = runReference(n, inputs);
  expectClose(got[0], want[0], 1e-5, 1e-4, what);
}

ir::Tensor f32(const std::vector<int64_t>& dims, uint32_t seed, double lo = -1, double hi = 1) {
  return randomTensor(DataType::kF32, dims, seed, lo, hi);
}

// Bool mask with about a quarter of the entries set (seeded).
ir::Tensor boolMask(const std::vector<int64_t>& dims, uint32_t seed) {
  ir::Tensor t(DataType::kBool, dims);
  std::mt19937 rng(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<bool>()[i] = rng() % 4 == 0;
  return t;
}

ir::Attributes plainAttrs(float scale, const std::string& mask = "none") {
  ir::Attributes a;
  a.set("scale", scale);
  a.set("mask_kind", mask);
  return a;
}

TEST(CudaAttentionTactic, PlainFormSequenceLengths) {
  uint32_t seed = 1;
  for (int64_t sq : {1, 7, 8, 33})
    for (int64_t sk : {1, 7, 33}) {
      const int64_t b = 2, h = 3, d = 16, dv = 8;
      expectMatches({{f32({b, h, sq, d}, seed++)}, {f32({b, h, sk, d}, seed++)}, {f32({b, h, sk, dv}, seed++)}},
                    plainAttrs(0.25f), "sq " + std::to_string(sq) + " sk " + std::to_string(sk));
    }
}

TEST(CudaAttentionTactic, PlainFormRanksHeadSizesAndBroadcast) {
  // Rank 2 (one head), rank 3 (heads only), head sizes past 32 and up to 128.
  expectMatches({{f32({9, 40}, 1)}, {f32({12, 40}, 2)}, {f32({12, 72}, 3)}}, plainAttrs(0.3f), "rank 2, d 40, dv 72");
  expectMatches({{f32({4, 5, 128}, 4)}, {f32({4, 6, 128}, 5)}, {f32({4, 6, 128}, 6)}}, plainAttrs(0.1f),
                "rank 3, d = dv = 128");
  expectMatches({{f32({3, 7, 1}, 7)}, {f32({3, 2, 1}, 8)}, {f32({3, 2, 1}, 9)}}, plainAttrs(1.0f), "d = dv = 1");
  // K and V shared across batches or heads (stride 0), Q broadcast over heads.
  expectMatches({{f32({2, 3, 7, 8}, 10)}, {f32({1, 3, 9, 8}, 11)}, {f32({1, 3, 9, 8}, 12)}}, plainAttrs(0.5f),
                "K, V broadcast over batches");
  expectMatches({{f32({2, 1, 7, 8}, 13)}, {f32({2, 4, 9, 8}, 14)}, {f32({1, 1, 9, 5}, 15)}}, plainAttrs(0.5f),
                "Q over heads, V over both");
  // Large scores: the online softmax rescales as the running maximum grows across tiles.
  expectMatches({{f32({1, 2, 5, 8}, 16, -4, 4)}, {f32({1, 2, 70, 8}, 17, -4, 4)}, {f32({1, 2, 70, 8}, 18)}},
                plainAttrs(2.0f), "scores up to 128");
}

TEST(CudaAttentionTactic, PlainFormMasks) {
  const int64_t b = 2, h = 3, sq = 7, sk = 33, d = 8;
  uint32_t seed = 100;
  auto q = [&] { return Arg{f32({b, h, sq, d}, seed++)}; };
  auto kv = [&] { return Arg{f32({b, h, sk, d}, seed++)}; };
  expectMatches({q(), kv(), kv(), {f32({b, 1, 1, sk}, seed++, -3, 0)}}, plainAttrs(0.35f, "add"), "add [b,1,1,sk]");
  expectMatches({q(), kv(), kv(), {f32({sq, sk}, seed++, -3, 0)}}, plainAttrs(0.35f, "add"), "add [sq,sk]");
  expectMatches({q(), kv(), kv(), {f32({b, h, sq, sk}, seed++, -3, 0)}}, plainAttrs(0.35f, "add"), "add full");
  expectMatches({q(), kv(), kv(), {boolMask({b, 1, sq, sk}, seed++)}}, plainAttrs(0.35f, "fill_true"),
                "fill_true [b,1,sq,sk]");
  expectMatches({q(), kv(), kv(), {boolMask({sk}, seed++)}}, plainAttrs(0.35f, "fill_false"), "fill_false [sk]");
  // A fill mask that hides whole rows (NaN in both) and whole key tiles; a finite fill.
  ir::Tensor m(DataType::kBool, {sq, sk});
  for (int64_t i = 0; i < sq; ++i)
    for (int64_t j = 0; j < sk; ++j) m.data<bool>()[i * sk + j] = i == 2 || (i == 4 && j < 32) || (i == 5 && j >= 32);
  expectMatches({q(), kv(), kv(), {m}}, plainAttrs(0.35f, "fill_true"), "fully masked rows and tiles");
  ir::Attributes finite = plainAttrs(0.35f, "fill_true");
  finite.set("mask_fill", -1e4f);
  expectMatches({q(), kv(), kv(), {m}}, finite, "finite fill");
}

ir::Attributes packedAttrs(int64_t heads, int64_t headSize, const std::string& layout, const std::string& mask) {
  ir::Attributes a;
  a.set("qkv_packed", int64_t(1));
  a.set("num_heads", heads);
  a.set("head_size", headSize);
  a.set("layout", layout);
  a.set("mask_kind", mask);
  a.set("scale", 1.0f / std::sqrt(float(headSize)));
  return a;
}

TEST(CudaAttentionTactic, PackedFormAsBertUsesIt) {
  uint32_t seed = 200;
  const int64_t h = 4, d = 16;
  for (int64_t s : {1, 7, 16, 33}) {
    const int64_t b = 2;
    // bert_tiny: QKV [N, S, 192], additive mask [N, heads, 1, S] (here broadcast over heads).
    expectMatches({{f32({b, s, 3 * h * d}, seed++)}, {f32({b, 1, 1, s}, seed++, -10000, 0)}},
                  packedAttrs(h, d, "bshd", "add"), "bshd add, S " + std::to_string(s));
    expectMatches({{f32({s, b, 3 * h * d}, seed++)}}, packedAttrs(h, d, "sbhd", "none"),
                  "sbhd, S " + std::to_string(s));
  }
  expectMatches({{f32({3, 9, 3 * 2 * 48}, seed++)}, {boolMask({3, 2, 9, 9}, seed++)}},
                packedAttrs(2, 48, "bshd", "fill_false"), "bshd fill_false full mask, head 48");
}

TEST(CudaAttentionTactic, EmptyAndRefused) {
  // Sk = 0: the reference's sum over no keys is 0.
  expectMatches({{f32({2, 3, 4}, 1)}, {f32({2, 0, 4}, 2)}, {f32({2, 0, 5}, 3)}}, plainAttrs(1.0f), "sk = 0");
  expectMatches({{f32({2, 0, 4}, 1)}, {f32({2, 3, 4}, 2)}, {f32({2, 3, 5}, 3)}}, plainAttrs(1.0f), "sq = 0");
  // Head sizes past 128, rank 5, f16.
  EXPECT_FALSE(offered(*attentionNode({{f32({2, 3, 129}, 1)}, {f32({2, 3, 129}, 2)}, {f32({2, 3, 8}, 3)}},
                                      plainAttrs(1.0f))->nodes()[0]));
  EXPECT_FALSE(offered(*attentionNode({{f32({1, 1, 2, 3, 4}, 1)}, {f32({1, 1, 2, 3, 4}, 2)}, {f32({1, 1, 2, 3, 4}, 3)}},
                                      plainAttrs(1.0f))->nodes()[0]));
  const ir::Tensor h16 = randomTensor(DataType::kF16, {2, 3, 4}, 1);
  EXPECT_FALSE(offered(*attentionNode({{h16}, {h16}, {h16}}, plainAttrs(1.0f))->nodes()[0]));
  EXPECT_FALSE(offered(*attentionNode({{f32({1, 2, 3 * 2 * 130}, 1)}}, packedAttrs(2, 130, "bshd", "none"))->nodes()[0]));
}

}  // namespace
}  // namespace anvil::cuda::testing
