// The native anvil.Attention kernels (cpu/tactics/native_sequence_attention.cpp: the tiled
// f32_attention_tiled_* and the row-at-a-time f32_attention_rows*) against the reference
// kernel (cpu/kernels/anvil_transformer.cpp) through the kernel contract, on odd shapes:
// Sq, Sk in {1, 7, 17, 63, 197} and beyond a chunk (600), head sizes 8, 17, 64 (and value
// widths 1, 65, 130), 1, 3 and 12 heads, batch 2, every mask kind and mask broadcast, the
// plain and the packed (qkv_packed=1, bshd and sbhd) forms. Outputs sit between sentinel
// guards (tests/unit/native_kernel_test_util.h); results must be bitwise equal for 1 and 2
// threads. NativeAttentionBench.DISABLED_Timing times the kernels on transformer layers
// (--gtest_also_run_disabled_tests; ANVIL_BENCH_KERNEL / ANVIL_BENCH_CASE: part of a kernel
// name / case title to time only those).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/op_schema.h"
#include "native_kernel_test_util.h"
#include "runtime/executor.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeSequenceKernels(Kernels& k);  // cpu/tactics/native_sequence.cpp
}

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;
namespace nk = anvil::testing::nk;

namespace {

using Dims = std::vector<int64_t>;

std::vector<const runtime::Kernel*> attentionKernels() {
  static runtime::Kernels* k = [] {
    auto* r = new runtime::Kernels;
    runtime::registerNativeSequenceKernels(*r);
    return r;
  }();
  std::vector<const runtime::Kernel*> out;
  for (const runtime::Kernel* x : k->all())
    if (x->op == "Attention") out.push_back(x);
  return out;
}

struct Case {
  std::string name;
  std::vector<Tensor> inputs;  // undefined: omitted
  ir::Attributes attrs;
};

Tensor randomTensor(DataType dt, const Dims& dims, std::mt19937& rng) {
  Tensor t(dt, dims);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (dt == DataType::kBool) t.data<bool>()[i] = (rng() % 4) != 0;  // mostly true: few rows fully masked
    else t.setDouble(i, u(rng));
  }
  return t;
}

nk::Built build(const Case& c) {
  nk::Built b;
  auto g = std::make_unique<ir::Graph>();
  std::vector<ir::Value*> vs;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    b.tensors.push_back(c.inputs[i]);
    if (!c.inputs[i].defined()) {
      vs.push_back(nullptr);
      continue;
    }
    ir::Value* v = g->addValue("in" + std::to_string(i), c.inputs[i].type());
    g->addInput(v);
    vs.push_back(v);
  }
  ir::Node* n = g->addNode("Attention", "anvil", "attn", vs, {"y0"});
  n->attrs() = c.attrs;
  g->addOutput(n->output(0));
  ir::inferShapes(*g);
  b.graph = std::move(g);
  b.node = n;
  return b;
}

// The mask kinds in turn, each with one of the broadcast shapes of the scores
// [batch..., Sq, Sk] (right-aligned).
struct MaskSpec {
  std::string kind;  // none, add, fill_true, fill_false
  Dims dims;
};

MaskSpec maskFor(int i, int64_t b, int64_t h, int64_t sq, int64_t sk) {
  static const char* kinds[] = {"none", "add", "fill_true", "fill_false", "add"};
  const std::string kind = kinds[i % 5];
  switch ((i / 5) % 5) {
    case 0: return {kind, {b, 1, 1, sk}};  // a key-padding mask
    case 1: return {kind, {b, h, sq, sk}};
    case 2: return {kind, {b, 1, sq, 1}};  // per query row
    case 3: return {kind, {sq, sk}};
    default: return {kind, {sk}};
  }
}

void addMask(Case& c, const MaskSpec& m, std::mt19937& rng, float fill = -1e4f) {
  if (m.kind == "none") return;
  c.inputs.push_back(randomTensor(m.kind == "add" ? DataType::kF32 : DataType::kBool, m.dims, rng));
  c.attrs.set("mask_kind", m.kind);
  if (m.kind != "add") c.attrs.set("mask_fill", fill);
  std::string d;
  for (int64_t x : m.dims) d += "x" + std::to_string(x);
  c.name += "_" + m.kind + d;
}

std::vector<Case> makeCases() {
  std::vector<Case> cs;
  std::mt19937 rng(11);
  auto plain = [&](const std::string& tag, Dims q, Dims k, Dims v, const MaskSpec& m, float fill = -1e4f) {
    Case c;
    c.name = "plain_" + tag;
    c.inputs = {randomTensor(DataType::kF32, q, rng), randomTensor(DataType::kF32, k, rng),
                randomTensor(DataType::kF32, v, rng)};
    c.attrs.set("scale", 0.3f);
    addMask(c, m, rng, fill);
    cs.push_back(std::move(c));
  };
  // Batch 2; (Sq, Sk) around the tiles (6 rows, 16/64-key chunks, 24-row blocks) with head
  // sizes 8, 17, 64 and 1, 3, 12 heads in turn, every mask kind and broadcast in turn.
  const std::vector<std::pair<int64_t, int64_t>> seqs = {{1, 1},   {7, 7},   {17, 17}, {63, 63},  {197, 197},
                                                         {1, 197}, {197, 1}, {7, 63},  {63, 17},  {17, 197},
                                                         {25, 7},  {48, 65}, {6, 16},  {197, 63}, {63, 197}};
  int i = 0;
  for (auto [sq, sk] : seqs)
    for (int variant = 0; variant < 2; ++variant, ++i) {
      const int64_t d = std::vector<int64_t>{8, 17, 64}[i % 3];
      int64_t h = std::vector<int64_t>{1, 3, 12}[(i / 3) % 3];
      if (sq * sk > 10000) h = std::min<int64_t>(h, 3);  // keep the reference quick
      const MaskSpec m = variant == 0 ? MaskSpec{"none", {}} : maskFor(i, 2, h, sq, sk);
      const std::string tag = "sq" + std::to_string(sq) + "_sk" + std::to_string(sk) + "_d" + std::to_string(d) +
                              "_h" + std::to_string(h);
      plain(tag, {2, h, sq, d}, {2, h, sk, d}, {2, h, sk, d}, m);
    }
  // Value widths other than the head size: 1, 65, 130 (column tiles and their tails).
  plain("dv1", {2, 3, 17, 8}, {2, 3, 63, 8}, {2, 3, 63, 1}, {"add", {2, 1, 1, 63}});
  plain("dv65", {2, 1, 30, 17}, {2, 1, 33, 17}, {2, 1, 33, 65}, {"fill_true", {30, 33}});
  plain("dv130", {1, 2, 13, 64}, {1, 2, 70, 64}, {1, 2, 70, 130}, {"none", {}});
  plain("d1", {2, 2, 9, 1}, {2, 2, 21, 1}, {2, 2, 21, 5}, {"none", {}});
  plain("d130", {1, 1, 7, 130}, {1, 1, 40, 130}, {1, 1, 40, 16}, {"add", {1, 1, 7, 40}});
  // Many keys (several V chunks, a long softmax row).
  plain("sk600", {1, 2, 5, 24}, {1, 2, 600, 24}, {1, 2, 600, 24}, {"add", {1, 1, 1, 600}});
  // Batch broadcasting, rank 2 and 3, cross attention.
  plain("rank2", {5, 7}, {11, 7}, {11, 13}, {"add", {5, 11}});
  plain("bcast_batch", {2, 3, 7, 5}, {1, 3, 11, 5}, {2, 1, 11, 4}, {"fill_true", {7, 11}});
  plain("bcast_k", {4, 30, 16}, {1, 20, 16}, {1, 20, 16}, {"none", {}});
  plain("mask_inf", {2, 7, 9}, {2, 5, 9}, {2, 5, 9}, {"fill_false", {2, 7, 5}},
        -std::numeric_limits<float>::infinity());  // rows may be all -inf: NaN, as the reference
  plain("bert_tiny", {8, 16, 16}, {8, 16, 16}, {8, 16, 16}, {"add", {8, 1, 16}});
  plain("empty_batch", {0, 3, 4}, {1, 5, 4}, {1, 5, 4}, {"none", {}});
  plain("Sk0", {2, 3, 4}, {2, 0, 4}, {2, 0, 6}, {"none", {}});
  // The packed form: heads read in place from [B, S, 3HD] / [S, B, 3HD].
  auto packed = [&](const std::string& layout, int64_t b, int64_t s, int64_t h, int64_t d, const MaskSpec& m) {
    Case c;
    c.name = "packed_" + layout + "_b" + std::to_string(b) + "_s" + std::to_string(s) + "_h" + std::to_string(h) +
             "_d" + std::to_string(d);
    c.inputs = {randomTensor(DataType::kF32, layout == "bshd" ? Dims{b, s, 3 * h * d} : Dims{s, b, 3 * h * d}, rng)};
    c.attrs.set("qkv_packed", int64_t(1));
    c.attrs.set("layout", layout);
    c.attrs.set("num_heads", h);
    c.attrs.set("head_size", d);
    c.attrs.set("scale", 0.125f);
    addMask(c, m, rng);
    cs.push_back(std::move(c));
  };
  int j = 0;
  for (const char* layout : {"bshd", "sbhd"})
    for (int64_t s : {1, 7, 17, 63, 197}) {
      const int64_t d = std::vector<int64_t>{8, 17, 64}[j % 3];
      const int64_t h = s == 197 ? 3 : std::vector<int64_t>{1, 3, 12}[(j / 2) % 3];
      packed(layout, 2, s, h, d, j % 2 ? maskFor(j, 2, h, s, s) : MaskSpec{"none", {}});
      ++j;
    }
  packed("bshd", 1, 197, 3, 64, {"none", {}});  // vit_small's layer
  packed("bshd", 2, 16, 4, 16, {"add", {2, 1, 1, 16}});  // bert_tiny's layer
  packed("sbhd", 0, 5, 2, 8, {"none", {}});  // empty batch
  return cs;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> c = makeCases();
  return c;
}

// max |got - want| <= tol * scale over finite elements, scale = max(range, max |want|);
// NaN and infinities at the same places. The kernels and the reference sum up to 600
// products in f32 in other orders (FMA, the vector exp within a few ulp, 1 / sum applied
// once): errors measured below 1e-6 of the scale; an indexing mistake is O(0.1).
std::string compare(const std::vector<float>& got, const Tensor& want, double tol = 1e-5) {
  const float* w = want.data<float>();
  double lo = INFINITY, hi = -INFINITY;
  for (int64_t i = 0; i < want.numel(); ++i)
    if (std::isfinite(w[i])) {
      lo = std::min(lo, double(w[i]));
      hi = std::max(hi, double(w[i]));
    }
  const double scale = std::isfinite(hi - lo) ? std::max({hi - lo, std::fabs(lo), std::fabs(hi), 1e-12}) : 1.0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const float g = got[size_t(i)];
    char msg[200];
    if (!std::isfinite(w[i])) {
      if (std::isnan(w[i]) ? !std::isnan(g) : g != w[i]) {
        std::snprintf(msg, sizeof msg, "element %lld: got %.9g, want %.9g", (long long)i, g, w[i]);
        return msg;
      }
      continue;
    }
    const double e = std::fabs(double(g) - w[i]) / scale;
    if (!(e <= tol)) {
      std::snprintf(msg, sizeof msg, "element %lld: got %.9g, want %.9g, error %.3g of the scale %.3g", (long long)i,
                    g, w[i], e, scale);
      return msg;
    }
  }
  return "";
}

bool bitwiseEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

struct Param {
  std::string kernel;
  size_t caseIndex;
};
void PrintTo(const Param& p, std::ostream* os) { *os << p.kernel << " on " << cases()[p.caseIndex].name; }

std::vector<Param> params() {
  std::vector<Param> out;
  for (size_t i = 0; i < cases().size(); ++i) {
    const nk::Built b = build(cases()[i]);
    for (const runtime::Kernel* k : attentionKernels())
      if (k->supports(*b.node, b.types())) out.push_back({k->name, i});
  }
  return out;
}

const runtime::Kernel& kernelNamed(const std::string& name) {
  for (const runtime::Kernel* k : attentionKernels())
    if (k->name == name) return *k;
  throw std::runtime_error("no kernel " + name);
}

bool skipIfMissing(const runtime::Kernel& k) {
  return !runtime::hostHasAll(k.requirements);
}

class NativeAttention : public ::testing::TestWithParam<Param> {};

TEST_P(NativeAttention, MatchesReferenceGuardedAndThreadInvariant) {
  const Case& c = cases()[GetParam().caseIndex];
  const runtime::Kernel& k = kernelNamed(GetParam().kernel);
  if (skipIfMissing(k)) {
    if (runtime::firstMissing(k.requirements) == "avx512f") GTEST_SKIP() << "skipped: no AVX-512";
    GTEST_SKIP() << "skipped: host lacks " << runtime::firstMissing(k.requirements);
  }
  const nk::Built b = build(c);
  const Tensor want = nk::reference(b);
  const nk::PreparedKernel pk = nk::prepare(k, b, 2);
  std::vector<nk::RunResult> runs;
  for (int threads : {1, 2}) {
    auto ex = runtime::makeCpuExecutor(threads);
    runs.push_back(nk::runKernel(k, pk, b, want.dims(), *ex));
    EXPECT_TRUE(runs.back().guardsIntact) << "wrote outside the output, " << threads << " thread(s)";
    EXPECT_TRUE(runs.back().workspaceIntact) << "wrote past the workspace, " << threads << " thread(s)";
  }
  EXPECT_EQ(compare(runs[0].out, want), "");
  EXPECT_TRUE(bitwiseEqual(runs[0].out, runs[1].out)) << "2 threads differ from 1";
}

INSTANTIATE_TEST_SUITE_P(Native, NativeAttention, ::testing::ValuesIn(params()),
                         [](const ::testing::TestParamInfo<Param>& p) {
                           return p.param.kernel + "__" + cases()[p.param.caseIndex].name;
                         });

// Every kernel serves the cases (a supports() that declines would pass the test above
// vacuously), and the tiled kernels split the largest over 2 threads.
TEST(NativeAttentionRegistration, TiledKernelsServeEveryCase) {
  std::map<std::string, size_t> covered;
  for (const Param& p : params()) covered[p.kernel]++;
  for (const char* n : {"f32_attention_tiled_6x64__avx512", "f32_attention_tiled_6x16__avx2",
                        "f32_attention_rows__avx2", "f32_attention_rows"})
    EXPECT_EQ(covered[n], cases().size()) << n;
}

// The tiled kernels decline more keys than their per-thread score block is sized for.
TEST(NativeAttentionRegistration, TiledKernelsDeclineVeryLongKeys) {
  std::mt19937 rng(3);
  Case c;
  c.inputs = {randomTensor(DataType::kF32, {1, 2, 4}, rng), randomTensor(DataType::kF32, {1, 40000, 4}, rng),
              randomTensor(DataType::kF32, {1, 40000, 4}, rng)};
  const nk::Built b = build(c);
  for (const runtime::Kernel* k : attentionKernels())
    EXPECT_EQ(k->supports(*b.node, b.types()), k->name.find("tiled") == std::string::npos) << k->name;
}

// Forwards to a CPU executor and remembers the largest region it was asked to run.
class CountingExecutor : public runtime::Executor {
 public:
  explicit CountingExecutor(int threads) : inner_(runtime::makeCpuExecutor(threads)) {}
  int threads() const override { return inner_->threads(); }
  void parallelFor(int64_t n, runtime::FunctionRef<void(int64_t)> fn) override {
    maxTasks = std::max(maxTasks, n);
    inner_->parallelFor(n, fn);
  }
  int64_t maxTasks = 0;

 private:
  std::unique_ptr<runtime::Executor> inner_;
};

TEST(NativeAttentionRegistration, TiledKernelsSplitWork) {
  for (const char* name : {"f32_attention_tiled_6x64__avx512", "f32_attention_tiled_6x16__avx2"}) {
    const runtime::Kernel& k = kernelNamed(name);
    if (skipIfMissing(k)) continue;
    for (const char* cn : {"packed_bshd_b1_s197_h3_d64", "plain_sk600"}) {
      const Case* c = nullptr;
      for (const Case& x : cases())
        if (x.name.rfind(cn, 0) == 0) c = &x;
      ASSERT_NE(c, nullptr) << cn;
      const nk::Built b = build(*c);
      const Tensor want = nk::reference(b);
      CountingExecutor ex(2);
      const nk::RunResult r = nk::runKernel(k, nk::prepare(k, b, 2), b, want.dims(), ex);
      EXPECT_EQ(compare(r.out, want), "") << name << " on " << c->name;
      EXPECT_GE(ex.maxTasks, 2) << name << " on " << c->name;
    }
  }
}

// Prepared for the profile's largest shapes (Sk 63), run on smaller ones (Sk 7): the
// extents come from the views at run time, the workspace was sized for the largest.
TEST(NativeAttention, RunsSmallerShapesThanPreparedFor) {
  std::mt19937 rng(5);
  auto pair = [&](int64_t s) {
    Case c;
    c.name = "s" + std::to_string(s);
    c.inputs = {randomTensor(DataType::kF32, {2, s, 3 * 3 * 17}, rng),
                randomTensor(DataType::kF32, {2, 1, 1, s}, rng)};
    c.attrs.set("qkv_packed", int64_t(1));
    c.attrs.set("num_heads", int64_t(3));
    c.attrs.set("head_size", int64_t(17));
    c.attrs.set("mask_kind", std::string("add"));
    return c;
  };
  const nk::Built small = build(pair(7)), large = build(pair(63));
  const Tensor want = nk::reference(small);
  for (const runtime::Kernel* k : attentionKernels()) {
    if (skipIfMissing(*k)) continue;
    SCOPED_TRACE(k->name);
    nk::PreparedKernel pk;
    runtime::PrepareInfo info;
    info.node = small.node;
    info.minTypes = info.optTypes = small.types();
    info.maxTypes = large.types();
    info.maxOutputTypes = {large.node->output(0)->type()};
    info.constants = {nullptr, nullptr};
    info.threads = 2;
    k->prepare(info, &pk.prepared);
    pk.params = std::make_unique<nk::Aligned>(pk.prepared.params.size());
    std::memcpy(pk.params->p, pk.prepared.params.data(), pk.prepared.params.size());
    auto ex = runtime::makeCpuExecutor(2);
    const nk::RunResult r = nk::runKernel(*k, pk, small, want.dims(), *ex);
    EXPECT_TRUE(r.guardsIntact);
    EXPECT_EQ(compare(r.out, want), "");
  }
}

// ---- timing -----------------------------------------------------------------------------

struct Timing {
  double median, min;
};

Timing timeMs(const std::function<void()>& f, int reps = 21) {
  f();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[0]};
}

void bench(const Case& c, const std::string& title) {
  const char* which = std::getenv("ANVIL_BENCH_CASE");  // a substring of the titles to time
  if (which && title.find(which) == std::string::npos) return;
  std::printf("[ timing ] %s\n", title.c_str());
  const nk::Built b = build(c);
  const Tensor want = nk::reference(b);
  const char* only = std::getenv("ANVIL_BENCH_KERNEL");  // a substring of the names to time
  for (const runtime::Kernel* k : attentionKernels()) {
    if (skipIfMissing(*k) || (only && k->name.find(only) == std::string::npos)) continue;
    for (int threads : {1, 2}) {
      auto ex = runtime::makeCpuExecutor(threads);
      const nk::PreparedKernel pk = nk::prepare(*k, b, threads);
      nk::Step step(*k, pk, b, want.dims(), true);
      const Timing ms = timeMs([&] { step.run(*ex); }, only ? 501 : 21);
      std::printf("[ timing ]   %-34s %d thread(s) %.4f ms (min %.4f)\n", k->name.c_str(), threads, ms.median, ms.min);
    }
  }
}

TEST(NativeAttentionBench, DISABLED_Timing) {
  std::mt19937 rng(1);
  auto packedCase = [&](int64_t b, int64_t s, int64_t h, int64_t d, bool mask) {
    Case c;
    c.inputs = {randomTensor(DataType::kF32, {b, s, 3 * h * d}, rng)};
    c.attrs.set("qkv_packed", int64_t(1));
    c.attrs.set("num_heads", h);
    c.attrs.set("head_size", d);
    c.attrs.set("scale", 0.125f);
    if (mask) {
      c.inputs.push_back(randomTensor(DataType::kF32, {b, 1, 1, s}, rng));
      c.attrs.set("mask_kind", std::string("add"));
    }
    return c;
  };
  bench(packedCase(1, 197, 3, 64, false), "vit_small layer: packed [1,197,3x192], 3 heads of 64");
  bench(packedCase(1, 128, 12, 64, false), "BERT-base layer: packed [1,128,3x768], 12 heads of 64");
  bench(packedCase(2, 16, 4, 16, true), "bert_tiny layer: packed [2,16,3x64], 4 heads of 16, additive mask");
  Case plain;
  plain.inputs = {randomTensor(DataType::kF32, {12, 128, 64}, rng), randomTensor(DataType::kF32, {12, 128, 64}, rng),
                  randomTensor(DataType::kF32, {12, 128, 64}, rng)};
  bench(plain, "plain [12,128,64] no mask");
}

}  // namespace
