// The 1x1 GEMV convolution kernels over tiny images (cpu/tactics/native_conv_small.cpp:
// f32_conv1x1_gemv__avx2 for Conv, f32_conv1x1_gemv_epilogue__avx2 for anvil.FusedConv)
// against the reference kernel, through the kernel contract: a one-node graph, supports(),
// prepare() (the constant filter is packed; its raw input is then replaced by NaNs to prove
// run() reads only the blob), run() on an output between sentinel guards with 1 and 2
// executor threads, which must agree bitwise. Shapes: pixels 1..4 (1x1, 1x2, 2x1, 1x3, 2x2,
// 1x4), batches 1..3, K in {1, 7, 17, 63, 96, 1152}, M around the 16-output panels
// {1, 4, 7, 16, 17, 63, 1152}, with and without bias; every activation and residual order.
// NativeConvSmallBench.DISABLED_Timing measures against the im2col/GEMM kernels of the
// linear family on efficientnet_b0's squeeze-and-excite convs.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <random>

#include "cpu/reference.h"
#include "native_kernel_test_util.h"
#include "op_test_util.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeWinogradKernels(Kernels& k);  // cpu/tactics/native_winograd.cpp (registers the GEMV)
void registerNativeLinearKernels(Kernels& k);    // cpu/tactics/native_linear.cpp (timing baseline)
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

using Dims = std::vector<int64_t>;

struct Case {
  std::string name;  // [A-Za-z0-9_]
  bool fused = false;
  std::vector<std::optional<Dims>> inputs;  // X, W, B, Z; nullopt: omitted
  ir::Attributes attrs;
};

std::string dimsName(const Dims& d) {
  std::string s;
  for (int64_t v : d) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
}

Case convCase(const Dims& x, int64_t M, bool bias = true, bool fused = false) {
  Case c;
  c.fused = fused;
  c.name = std::string(fused ? "FusedConv_" : "Conv_") + dimsName(x) + "_M" + std::to_string(M) + (bias ? "" : "_nobias");
  c.inputs = {x, Dims{M, x[1], 1, 1}};
  c.inputs.push_back(bias ? std::optional<Dims>(Dims{M}) : std::nullopt);
  c.attrs.set("kernel_shape", Dims{1, 1});
  return c;
}

struct Epi {
  const char* name;
  const char* act;
  std::vector<float> params;
  int residual;  // 0 none, 1 add_then_activate, 2 activate_then_add
};
const std::vector<Epi>& epilogues() {
  static const std::vector<Epi> e = {
      {"none", "", {}, 0},          {"relu", "Relu", {}, 0},
      {"clip", "Clip", {-0.5f, 0.75f}, 0}, {"sigmoid", "Sigmoid", {}, 0},
      {"tanh", "Tanh", {}, 0},      {"leaky", "LeakyRelu", {0.1f}, 0},
      {"hardsigmoid", "HardSigmoid", {0.2f, 0.5f}, 0}, {"hardswish", "HardSwish", {}, 0},
      {"silu", "Silu", {}, 0},      {"gelu", "Gelu", {}, 0},
      {"gelutanh", "GeluTanh", {}, 0}, {"res_add_relu", "Relu", {}, 1},
      {"res_relu_add", "Relu", {}, 2}, {"res_only", "", {}, 1},
      {"res_silu_add", "Silu", {}, 2},
  };
  return e;
}

const std::vector<Case>& allCases() {
  static const std::vector<Case> cases = [] {
    std::vector<Case> c;
    const Dims pixels[] = {{1, 1}, {1, 2}, {2, 1}, {1, 3}, {2, 2}, {1, 4}};
    for (const Dims& hw : pixels)
      for (int64_t K : {1, 7, 17, 63})
        for (int64_t M : {1, 7, 16, 17, 63}) c.push_back(convCase({1, K, hw[0], hw[1]}, M, (K + M) % 2 == 0));
    // efficientnet_b0's squeeze-and-excite shapes, batches 2 and 3
    c.push_back(convCase({1, 1152, 1, 1}, 48));
    c.push_back(convCase({2, 48, 1, 1}, 1152));
    c.push_back(convCase({3, 96, 1, 1}, 4, false));
    c.push_back(convCase({3, 4, 2, 2}, 96));
    // big enough for two tasks (the kernel splits only from 1M multiply-adds per task)
    c.push_back(convCase({2, 1031, 1, 1}, 1047));
    c.push_back(convCase({1, 700, 2, 2}, 801, false));
    for (const Epi& e : epilogues())
      for (const Dims& x : {Dims{2, 17, 1, 1}, Dims{1, 63, 1, 3}, Dims{3, 7, 2, 2}})
        for (int64_t M : {7, 40}) {
          Case d = convCase(x, M, true, true);
          d.name += std::string("_") + e.name;
          if (*e.act) d.attrs.set("activation", std::string(e.act));
          if (!e.params.empty()) d.attrs.set("activation_params", e.params);
          if (e.residual) {
            d.attrs.set("has_residual", int64_t(1));
            d.attrs.set("residual_order", std::string(e.residual == 1 ? "add_then_activate" : "activate_then_add"));
            d.inputs.push_back(Dims{x[0], M, x[2], x[3]});
          }
          c.push_back(std::move(d));
        }
    return c;
  }();
  return cases;
}

// ---------------------------------------------------------------------------------------
// One node, its reference output, and the kernel run through the contract

struct Built {
  std::unique_ptr<ir::Graph> graph;
  const ir::Node* node = nullptr;
  std::vector<Tensor> tensors;  // undefined where omitted
  std::vector<ir::TensorType> types() const {
    std::vector<ir::TensorType> t;
    for (const Tensor& x : tensors) t.push_back(x.defined() ? x.type() : ir::TensorType{});
    return t;
  }
};

// X and Z graph inputs, W and B initializers (optionally W a graph input: constW false).
Built build(const Case& c, uint32_t seed, bool constW = true) {
  Built b;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  auto g = std::make_unique<ir::Graph>();
  std::vector<ir::Value*> vs;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (!c.inputs[i]) {
      b.tensors.emplace_back();
      vs.push_back(nullptr);
      continue;
    }
    Tensor t(DataType::kF32, *c.inputs[i]);
    for (int64_t j = 0; j < t.numel(); ++j) t.data<float>()[j] = dist(rng);
    const std::string name = "in" + std::to_string(i);
    const bool constant = (i == 1 && constW) || i == 2;
    ir::Value* v = constant ? g->addInitializer(name, t) : g->addValue(name, t.type());
    if (!constant) g->addInput(v);
    vs.push_back(v);
    b.tensors.push_back(std::move(t));
  }
  ir::Node* n = g->addNode(c.fused ? "FusedConv" : "Conv", c.fused ? "anvil" : "", "n0", vs, {"y0"});
  n->attrs() = c.attrs;
  g->addOutput(n->output(0));
  ir::inferShapes(*g);
  b.node = n;
  b.graph = std::move(g);
  return b;
}

Tensor reference(const Built& b) {
  std::vector<const Tensor*> in;
  for (const Tensor& t : b.tensors) in.push_back(t.defined() ? &t : nullptr);
  return cpu::Interpreter::runNode(*b.node, in)[0];
}

// 64-byte aligned copies of prepared bytes (the engine stores params and blobs so).
struct Aligned {
  void* p = nullptr;
  explicit Aligned(const std::string& s) {
    p = std::aligned_alloc(64, ((std::max<size_t>(1, s.size()) + 63) / 64) * 64);
    std::memcpy(p, s.data(), s.size());
  }
  ~Aligned() { std::free(p); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
};

struct PreparedKernel {
  runtime::Prepared prepared;
  std::unique_ptr<Aligned> params;
  std::vector<std::unique_ptr<Aligned>> blobs;
  std::vector<runtime::Blob> views;
};

PreparedKernel prepare(const runtime::Kernel& k, const Built& b, int threads) {
  PreparedKernel pk;
  runtime::PrepareInfo info;
  info.node = b.node;
  info.minTypes = info.optTypes = info.maxTypes = b.types();
  info.maxOutputTypes = {b.node->output(0)->type()};
  for (size_t i = 0; i < b.tensors.size(); ++i) {
    const ir::Value* v = b.node->input(i);
    info.constants.push_back(v ? v->initializer() : nullptr);
  }
  info.threads = threads;
  k.prepare(info, &pk.prepared);
  pk.params = std::make_unique<Aligned>(pk.prepared.params);
  for (const std::string& s : pk.prepared.blobs) {
    pk.blobs.push_back(std::make_unique<Aligned>(s));
    pk.views.push_back({pk.blobs.back()->p, s.size()});
  }
  return pk;
}

runtime::TensorView viewOf(const Tensor& t) {
  runtime::TensorView v;
  if (!t.defined()) return v;
  v.data = const_cast<void*>(t.raw());
  v.dtype = t.dtype();
  v.setExtents(t.dims());
  return v;
}

constexpr uint32_t kSentinel = 0x7fa5a5a5u;  // a NaN no kernel produces
constexpr int64_t kGuard = 67;

struct RunResult {
  std::vector<float> out;
  bool guardsIntact = true;
};

// A step ready to run: packed inputs handed over as NaNs, the output between guards.
class Step {
 public:
  Step(const runtime::Kernel& k, const PreparedKernel& pk, const Built& b, const Dims& outDims)
      : k_(k), poisoned_(b.tensors.size()) {
    for (size_t i = 0; i < b.tensors.size(); ++i) {
      const auto& packedIn = pk.prepared.packedInputs;
      if (std::find(packedIn.begin(), packedIn.end(), int(i)) != packedIn.end()) {
        poisoned_[i] = Tensor(DataType::kF32, b.tensors[i].dims());
        std::fill(poisoned_[i].data<float>(), poisoned_[i].data<float>() + poisoned_[i].numel(),
                  std::numeric_limits<float>::quiet_NaN());
        in_.push_back(viewOf(poisoned_[i]));
      } else {
        in_.push_back(viewOf(b.tensors[i]));
      }
    }
    n_ = ir::numelOf(outDims);
    buf_.assign(size_t(n_ + 2 * kGuard), kSentinel);
    out_.data = buf_.data() + kGuard;
    out_.dtype = DataType::kF32;
    out_.setExtents(outDims);
    ws_ = std::make_unique<Aligned>(std::string(size_t(pk.prepared.workspaceBytes), '\0'));  // 64-byte aligned
    a_.node = b.node;
    a_.inputs = in_.data();
    a_.numInputs = int(in_.size());
    a_.outputs = &out_;
    a_.numOutputs = 1;
    a_.params = {pk.params->p, pk.prepared.params.size()};
    a_.blobs = pk.views.data();
    a_.numBlobs = int(pk.views.size());
    a_.workspace = ws_->p;
    a_.workspaceBytes = pk.prepared.workspaceBytes;
  }
  void run(runtime::Executor& ex) {
    a_.executor = &ex;
    k_.run(a_);
  }
  RunResult result() const {
    RunResult r;
    r.out.assign(buf_.size() - 2 * kGuard, 0.0f);
    std::memcpy(r.out.data(), buf_.data() + kGuard, size_t(n_) * sizeof(float));
    for (int64_t i = 0; i < kGuard; ++i)
      if (buf_[size_t(i)] != kSentinel || buf_[buf_.size() - 1 - size_t(i)] != kSentinel) r.guardsIntact = false;
    return r;
  }

 private:
  const runtime::Kernel& k_;
  std::vector<Tensor> poisoned_;
  std::vector<runtime::TensorView> in_;
  int64_t n_ = 0;
  std::vector<uint32_t> buf_;
  std::unique_ptr<Aligned> ws_;
  runtime::TensorView out_;
  runtime::StepArgs a_;
};

// Tolerance: max |got - want| <= 3e-5 * max |want|. The kernel sums the same K products as
// the reference in another order (FMA, for one pixel two partial sums), and its sigmoid /
// SiLU use the shared vectorized exp of the linear epilogue (relative error ~1e-7); measured
// here: under 1e-6 of the output range. An indexing mistake gives an error of order 1.
constexpr double kTolerance = 3e-5;

double relError(const std::vector<float>& got, const Tensor& want) {
  double maxRef = 0, maxErr = 0;
  for (int64_t i = 0; i < want.numel(); ++i) maxRef = std::max(maxRef, std::fabs(double(want.data<float>()[i])));
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double e = std::fabs(double(got[size_t(i)]) - want.data<float>()[i]);
    if (!(e <= maxErr)) maxErr = std::isnan(e) ? INFINITY : e;
  }
  return maxErr / std::max(maxRef, 1e-6);
}

runtime::Kernels& registry() { return anvil::testing::nk::registryOf<&runtime::registerNativeWinogradKernels>(); }

std::vector<const runtime::Kernel*> gemvKernels() {
  std::vector<const runtime::Kernel*> out;
  for (const runtime::Kernel* k : registry().all())
    if (k->device == Device::kCPU && k->name.find("conv1x1_gemv") != std::string::npos && k->nchwcBlock == 0)
      out.push_back(k);  // the blocked one-pixel forms: native_conv_small_blocked_test.cpp
  return out;
}

struct Param {
  std::string kernel;
  size_t caseIndex;
};
void PrintTo(const Param& p, std::ostream* os) { *os << p.kernel << " on " << allCases()[p.caseIndex].name; }

std::vector<Param> allParams() {
  std::vector<Param> out;
  for (size_t i = 0; i < allCases().size(); ++i) {
    const Case& c = allCases()[i];
    const Built b = build(c, 1);
    for (const runtime::Kernel* k : gemvKernels())
      if (k->op == b.node->op() && k->supports(*b.node, b.types())) out.push_back({k->name, i});
  }
  return out;
}

class NativeConvSmall : public ::testing::TestWithParam<Param> {};

TEST_P(NativeConvSmall, MatchesReferenceBitwiseAcrossThreads) {
  const Case& c = allCases()[GetParam().caseIndex];
  const runtime::Kernel* k = registry().find(Device::kCPU, c.fused ? "FusedConv" : "Conv", c.fused ? "anvil" : "",
                                             GetParam().kernel);
  ASSERT_NE(k, nullptr);
  if (!runtime::hostHasAll(k->requirements))
    GTEST_SKIP() << "skipped: this CPU lacks " << runtime::firstMissing(k->requirements);
  const Built b = build(c, uint32_t(GetParam().caseIndex) * 7919u + 3);
  const Tensor want = reference(b);
  const PreparedKernel pk = prepare(*k, b, 2);
  EXPECT_EQ(pk.prepared.packedInputs, std::vector<int>{1}) << "the constant filter was not packed";
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2}) {
    auto ex = runtime::makeCpuExecutor(threads);
    Step step(*k, pk, b, want.dims());
    step.run(*ex);
    const RunResult r = step.result();
    EXPECT_TRUE(r.guardsIntact) << "wrote outside the output (threads=" << threads << ")";
    EXPECT_LE(relError(r.out, want), kTolerance) << k->name << " on " << c.name << " threads=" << threads;
    outs.push_back(r.out);
  }
  EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4), 0) << "1 and 2 threads differ bitwise";
}

INSTANTIATE_TEST_SUITE_P(Native, NativeConvSmall, ::testing::ValuesIn(allParams()),
                         [](const ::testing::TestParamInfo<Param>& p) {
                           return p.param.kernel + "__" + allCases()[p.param.caseIndex].name;
                         });

TEST(NativeConvSmallRegistration, BothOpsAvx2AndCovered) {
  std::map<std::string, int> covered;
  for (const Param& p : allParams()) covered[p.kernel]++;
  ASSERT_EQ(gemvKernels().size(), 2u);
  for (const runtime::Kernel* k : gemvKernels()) {
    EXPECT_EQ(k->precision, DataType::kF32) << k->name;
    EXPECT_EQ(k->requirements, (std::vector<std::string>{"avx2", "fma"})) << k->name;
    EXPECT_GE(covered[k->name], 30) << k->name << " is barely exercised";
  }
  EXPECT_EQ(registry().find(Device::kCPU, "Conv", "", "f32_conv1x1_gemv__avx2")->op, "Conv");
  EXPECT_EQ(registry().find(Device::kCPU, "FusedConv", "anvil", "f32_conv1x1_gemv_epilogue__avx2")->op, "FusedConv");
}

TEST(NativeConvSmallSupports, DeclinesWhatItCannotRun) {
  const runtime::Kernel* k = registry().find(Device::kCPU, "Conv", "", "f32_conv1x1_gemv__avx2");
  ASSERT_NE(k, nullptr);
  auto supports = [&](const Dims& x, const Dims& w, ir::Attributes at, bool constW = true,
                      DataType dt = DataType::kF32) {
    ir::Graph g;  // no shape inference: it would reject the bad attributes before supports() sees them
    const ir::TensorType xt{dt, ir::Shape::fromExtents(x)};
    const Tensor wt(dt, w);
    ir::Value* xv = g.addValue("x", xt);
    ir::Value* wv = constW ? g.addInitializer("w", wt) : g.addValue("w", wt.type());
    ir::Node* n = g.addNode("Conv", "", "n0", {xv, wv}, {"y"});
    n->attrs() = at;
    return k->supports(*n, {xt, wt.type()});
  };
  ir::Attributes none, s2, pad1, g2, d2, same;
  s2.set("strides", Dims{2, 2});
  pad1.set("pads", Dims{0, 1, 0, 1});
  g2.set("group", int64_t(2));
  d2.set("dilations", Dims{2, 2});
  same.set("auto_pad", std::string("SAME_UPPER"));
  EXPECT_TRUE(supports({1, 8, 1, 1}, {5, 8, 1, 1}, none));
  EXPECT_TRUE(supports({4, 8, 2, 2}, {5, 8, 1, 1}, none));
  EXPECT_TRUE(supports({1, 8, 1, 4}, {5, 8, 1, 1}, same));
  EXPECT_FALSE(supports({1, 8, 1, 5}, {5, 8, 1, 1}, none)) << "took 5 pixels";
  EXPECT_FALSE(supports({1, 8, 3, 3}, {5, 8, 1, 1}, none)) << "took 9 pixels";
  EXPECT_FALSE(supports({1, 8, 3, 3}, {5, 8, 3, 3}, none)) << "took a 3x3 filter";
  EXPECT_FALSE(supports({1, 8, 2, 2}, {5, 8, 1, 1}, s2)) << "took stride 2";
  EXPECT_FALSE(supports({1, 8, 1, 1}, {5, 8, 1, 1}, pad1)) << "took padding";
  EXPECT_FALSE(supports({1, 8, 1, 1}, {6, 4, 1, 1}, g2)) << "took 2 groups";
  EXPECT_FALSE(supports({1, 8, 1, 1}, {5, 8, 1, 1}, d2)) << "took dilation 2";
  EXPECT_FALSE(supports({1, 8, 1, 1}, {5, 8, 1, 1}, none, false)) << "took a runtime filter";
  EXPECT_FALSE(supports({1, 8, 1, 1}, {5, 8, 1, 1}, none, true, DataType::kF16)) << "took f16";
  EXPECT_FALSE(supports({1, 8, 1}, {5, 8, 1}, none)) << "took a 1-D Conv";
}

// Prepared at batch 3 (the profile's max), run at batch 1 and 3; preparing twice gives the
// same bytes; the packed filter is padded to whole 16-output panels.
TEST(NativeConvSmallRun, SmallerBatchThanPreparedAndDeterministicPrepare) {
  const runtime::Kernel* k = registry().find(Device::kCPU, "FusedConv", "anvil", "f32_conv1x1_gemv_epilogue__avx2");
  ASSERT_NE(k, nullptr);
  if (!runtime::hostHasAll(k->requirements)) GTEST_SKIP() << "skipped: this CPU lacks avx2/fma";
  Case big = convCase({3, 37, 1, 1}, 21, true, true), small = convCase({1, 37, 1, 1}, 21, true, true);
  for (Case* c : {&big, &small}) c->attrs.set("activation", std::string("Silu"));
  const Built bb = build(big, 21);
  Built bs = build(small, 22);
  bs.tensors[1] = bb.tensors[1];
  bs.tensors[2] = bb.tensors[2];
  const PreparedKernel pk = prepare(*k, bb, 2), pk2 = prepare(*k, bb, 2);
  EXPECT_EQ(pk.prepared.params, pk2.prepared.params);
  EXPECT_EQ(pk.prepared.blobs, pk2.prepared.blobs);
  ASSERT_EQ(pk.prepared.blobs.size(), 1u);
  EXPECT_EQ(pk.prepared.blobs[0].size(), size_t(2 * 16 * 37 * 4)) << "M padded to two 16-output panels x K";
  for (const Built* b : {static_cast<const Built*>(&bs), &bb}) {
    const Tensor want = reference(*b);
    auto ex = runtime::makeCpuExecutor(3);
    Step step(*k, pk, *b, want.dims());
    step.run(*ex);
    const RunResult r = step.result();
    EXPECT_TRUE(r.guardsIntact);
    EXPECT_LE(relError(r.out, want), kTolerance);
  }
}

// ---------------------------------------------------------------------------------------
// Timing (run with --gtest_also_run_disabled_tests): efficientnet_b0's squeeze-and-excite
// convs (C -> C/24 with Silu, C/24 -> C with Sigmoid) at one thread, median of 200 runs,
// against the linear family's Conv kernels.

double medianMs(Step& step, runtime::Executor& ex, int reps = 200) {
  step.run(ex);
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step.run(ex);
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

runtime::Kernels& linearRegistry() {
  static runtime::Kernels* k = [] {
    auto* r = new runtime::Kernels();
    runtime::registerNativeLinearKernels(*r);
    return r;
  }();
  return *k;
}

TEST(NativeConvSmallBench, DISABLED_Timing) {
  const int64_t layers[][3] = {{96, 4, 1}, {4, 96, 0}, {240, 10, 1}, {10, 240, 0}, {672, 28, 1},
                               {28, 672, 0}, {1152, 48, 1}, {48, 1152, 0}};
  for (const auto& l : layers) {
    Case c = convCase({1, l[0], 1, 1}, l[1], true, true);
    c.attrs.set("activation", std::string(l[2] ? "Silu" : "Sigmoid"));
    const Built b = build(c, 1);
    const Tensor want = reference(b);
    std::vector<const runtime::Kernel*> ks;
    for (const runtime::Kernel* k : linearRegistry().all())
      if (k->op == "FusedConv") ks.push_back(k);
    for (const runtime::Kernel* k : gemvKernels())
      if (k->op == "FusedConv") ks.push_back(k);
    for (const runtime::Kernel* k : ks) {
      if (!runtime::hostHasAll(k->requirements) || !k->supports(*b.node, b.types())) continue;
      const PreparedKernel pk = prepare(*k, b, 1);
      auto ex = runtime::makeCpuExecutor(1);
      Step step(*k, pk, b, want.dims());
      const double ms = medianMs(step, *ex);
      std::printf("%5lld -> %-5lld %-44s %9.5f ms  rel error %.1e\n", (long long)l[0], (long long)l[1],
                  k->name.c_str(), ms, relError(step.result().out, want));
    }
  }
}

}  // namespace
