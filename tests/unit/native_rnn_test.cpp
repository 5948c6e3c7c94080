// The recurrent kernels (cpu/tactics/native_sequence_rnn.cpp: f32_{lstm,gru,rnn}_packed_*)
// on the shapes their batch-1 paths care about: odd hidden sizes around the vector and
// chunk widths (1, 7, 17, 64, 65), input sizes, seq 1/7/50, batch 1 and 3, every direction,
// sequence_lens and initial states; against the reference (cpu/kernels/control_rnn.cpp, in
// double) through the kernel contract, outputs between sentinel guards, a NaN workspace,
// packed inputs handed over as null, 1 and 2 executor threads bitwise equal. Also: a row
// alone (the fused LSTM row step) gives the same bits as in a batch of 3 (the GEMM path).
// NativeRnnBench.DISABLED_Layers times the kernels (--gtest_also_run_disabled_tests).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cpu/reference.h"
#include "ir/graph.h"
#include "ir/op_schema.h"
#include "runtime/executor.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeSequenceKernels(Kernels& k);  // cpu/tactics/native_sequence.cpp
}

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

using Dims = std::vector<int64_t>;

const runtime::Kernels& family() {
  static runtime::Kernels* k = [] {
    auto* r = new runtime::Kernels;
    runtime::registerNativeSequenceKernels(*r);
    return r;
  }();
  return *k;
}

// The kernels: f32 with a polynomial exp and a Newton-refined reciprocal (a few ulp) over up
// to 50 steps of a contractive recurrence, against double: errors measured below 1e-6 of the
// output scale; 1e-5 leaves room without hiding a wrong gate or step (those are O(0.1)).
constexpr double kTol = 1e-5;

struct Spec {
  std::string op = "LSTM";  // GRU, RNN
  int64_t S = 1, B = 1, I = 1, H = 1;
  std::string direction = "forward";
  bool initial = false, lens = false, linearBeforeReset = false;
  int64_t layout = 0;
  int64_t len0 = -1;  // with lens: batch row 0's length (default S)
  std::string name() const {
    return op + "_S" + std::to_string(S) + "_B" + std::to_string(B) + "_I" + std::to_string(I) + "_H" +
           std::to_string(H) + "_" + direction + (initial ? "_init" : "") + (lens ? "_lens" : "") +
           (linearBeforeReset ? "_lbr" : "") + (layout ? "_layout1" : "") +
           (lens && len0 >= 0 ? "_len0_" + std::to_string(len0) : "");
  }
};

Tensor uniform(const Dims& dims, std::mt19937& rng, double range) {
  Tensor t(DataType::kF32, dims);
  std::uniform_real_distribution<double> u(-range, range);
  for (int64_t i = 0; i < t.numel(); ++i) t.setDouble(i, u(rng));
  return t;
}

// One node with its tensors (weights as initializers).
struct Built {
  std::unique_ptr<ir::Graph> graph = std::make_unique<ir::Graph>();
  ir::Node* node = nullptr;
  std::vector<Tensor> data;             // per input, undefined where omitted
  std::vector<const Tensor*> inputs;    // null where omitted
  std::vector<ir::TensorType> types;
};

// x: the X tensor to use (batch rows picked by the caller), else random.
Built build(const Spec& s, uint32_t seed, const Tensor* x = nullptr, const Tensor* h0 = nullptr,
            const Tensor* c0 = nullptr) {
  std::mt19937 rng(seed), rngW(seed + 1);  // weights apart: the same for any batch
  const int64_t D = s.direction == "bidirectional" ? 2 : 1;
  const int64_t G = s.op == "LSTM" ? 4 : s.op == "GRU" ? 3 : 1;
  const double wr = 1.0 / std::sqrt(double(std::max<int64_t>(s.H, 4)));  // like a trained layer's
  const Dims xd = s.layout == 0 ? Dims{s.S, s.B, s.I} : Dims{s.B, s.S, s.I};
  const Dims state = s.layout == 0 ? Dims{D, s.B, s.H} : Dims{s.B, D, s.H};
  Built b;
  b.data.push_back(x ? *x : uniform(xd, rng, 1.0));
  b.data.push_back(uniform({D, G * s.H, s.I}, rngW, wr));
  b.data.push_back(uniform({D, G * s.H, s.H}, rngW, wr));
  b.data.push_back(uniform({D, 2 * G * s.H}, rngW, 0.5));
  Tensor lens;
  if (s.lens) {
    lens = Tensor(DataType::kI32, {s.B});
    for (int64_t i = 0; i < s.B; ++i) lens.data<int32_t>()[i] = int32_t(i == 0 ? (s.len0 >= 0 ? s.len0 : s.S) : (s.S * i) / (s.B + 1));
  }
  b.data.push_back(lens);
  b.data.push_back(h0 ? *h0 : s.initial ? uniform(state, rng, 1.0) : Tensor());
  if (s.op == "LSTM") b.data.push_back(c0 ? *c0 : s.initial ? uniform(state, rng, 1.0) : Tensor());
  std::vector<ir::Value*> vals;
  for (size_t i = 0; i < b.data.size(); ++i) {
    if (!b.data[i].defined()) {
      vals.push_back(nullptr);
      b.types.push_back({});
      continue;
    }
    const std::string name = "in" + std::to_string(i);
    const bool constant = i >= 1 && i <= 3;
    ir::Value* v = constant ? b.graph->addInitializer(name, b.data[i]) : b.graph->addValue(name, b.data[i].type());
    if (!constant) b.graph->addInput(v);
    vals.push_back(v);
    b.types.push_back(b.data[i].type());
  }
  std::vector<std::string> outs = {"y", "yh"};
  if (s.op == "LSTM") outs.push_back("yc");
  b.node = b.graph->addNode(s.op, "", "n0", vals, outs);
  b.node->attrs().set("hidden_size", s.H);
  if (s.direction != "forward") b.node->attrs().set("direction", s.direction);
  if (s.linearBeforeReset) b.node->attrs().set("linear_before_reset", int64_t(1));
  if (s.layout) b.node->attrs().set("layout", s.layout);
  for (ir::Value* o : b.node->outputs()) b.graph->addOutput(o);
  ir::inferShapes(*b.graph);
  for (size_t i = 0; i < vals.size(); ++i) b.inputs.push_back(vals[i] ? &b.data[i] : nullptr);
  return b;
}

struct Aligned {
  std::unique_ptr<void, void (*)(void*)> p{nullptr, std::free};
  explicit Aligned(size_t n, unsigned char fill = 0) {
    const size_t bytes = std::max<size_t>(64, (n + 63) / 64 * 64);
    p.reset(std::aligned_alloc(64, bytes));
    std::memset(p.get(), fill, bytes);
  }
};

struct Prepared {
  runtime::Prepared prepared;
  std::unique_ptr<Aligned> params;
  std::vector<std::unique_ptr<Aligned>> blobs;
  std::vector<runtime::Blob> views;
};

Prepared prepare(const runtime::Kernel& k, const Built& b, int threads) {
  Prepared s;
  runtime::PrepareInfo info;
  info.node = b.node;
  info.minTypes = info.optTypes = info.maxTypes = b.types;
  for (const ir::Value* o : b.node->outputs()) info.maxOutputTypes.push_back(o->type());
  for (const ir::Value* v : b.node->inputs()) info.constants.push_back(v && v->isInitializer() ? v->initializer() : nullptr);
  info.threads = threads;
  k.prepare(info, &s.prepared);
  s.params = std::make_unique<Aligned>(s.prepared.params.size());
  std::memcpy(s.params->p.get(), s.prepared.params.data(), s.prepared.params.size());
  for (const std::string& blob : s.prepared.blobs) {
    s.blobs.push_back(std::make_unique<Aligned>(blob.size()));
    std::memcpy(s.blobs.back()->p.get(), blob.data(), blob.size());
    s.views.push_back({s.blobs.back()->p.get(), blob.size()});
  }
  return s;
}

constexpr uint32_t kSentinel = 0x7fa5a5a5u;  // a NaN no kernel produces
constexpr int64_t kGuard = 29;

// The kernel run through the contract: packed inputs as null, outputs between guards, the
// workspace NaN garbage.
class Step {
 public:
  Step(const runtime::Kernel& k, const Prepared& s, const Built& b, const std::vector<Tensor>& shapes,
       runtime::Executor& ex)
      : k_(k), shapes_(shapes), ins_(b.inputs.size()), outs_(shapes.size()), bufs_(shapes.size()),
        ws_(s.prepared.workspaceBytes, 0xff) {
    for (size_t i = 0; i < b.inputs.size(); ++i) {
      if (!b.inputs[i]) continue;
      ins_[i].dtype = b.inputs[i]->dtype();
      ins_[i].setExtents(b.inputs[i]->dims());
      const auto& packed = s.prepared.packedInputs;
      ins_[i].data = std::count(packed.begin(), packed.end(), int(i)) ? nullptr : const_cast<void*>(b.inputs[i]->raw());
    }
    for (size_t o = 0; o < shapes.size(); ++o) {
      bufs_[o].assign(size_t(shapes[o].numel() + 2 * kGuard), kSentinel);
      outs_[o].dtype = DataType::kF32;
      outs_[o].setExtents(shapes[o].dims());
      outs_[o].data = bufs_[o].data() + kGuard;
    }
    a_.node = b.node;
    a_.inputs = ins_.data();
    a_.numInputs = int(ins_.size());
    a_.outputs = outs_.data();
    a_.numOutputs = int(outs_.size());
    a_.params = {s.params->p.get(), s.prepared.params.size()};
    a_.blobs = s.views.data();
    a_.numBlobs = int(s.views.size());
    a_.workspace = ws_.p.get();
    a_.workspaceBytes = s.prepared.workspaceBytes;
    a_.executor = &ex;
  }
  void run() { k_.run(a_); }
  bool guardsIntact() const {
    for (const auto& buf : bufs_)
      for (int64_t g = 0; g < kGuard; ++g)
        if (buf[size_t(g)] != kSentinel || buf[buf.size() - 1 - size_t(g)] != kSentinel) return false;
    return true;
  }
  std::vector<Tensor> outputs() const {
    std::vector<Tensor> out;
    for (size_t o = 0; o < shapes_.size(); ++o) {
      out.emplace_back(DataType::kF32, shapes_[o].dims());
      std::memcpy(out.back().mutableRaw(), bufs_[o].data() + kGuard, shapes_[o].nbytes());
    }
    return out;
  }

 private:
  const runtime::Kernel& k_;
  std::vector<Tensor> shapes_;
  std::vector<runtime::TensorView> ins_, outs_;
  std::vector<std::vector<uint32_t>> bufs_;
  Aligned ws_;
  runtime::StepArgs a_;
};

// max |got - want| / max(range, magnitude of want), or a message.
std::string compare(const Tensor& got, const Tensor& want, double tol) {
  if (got.dims() != want.dims()) return "shape " + got.summary() + ", expected " + want.summary();
  const float* g = got.data<float>();
  const float* w = want.data<float>();
  double lo = INFINITY, hi = -INFINITY;
  for (int64_t i = 0; i < want.numel(); ++i) lo = std::min(lo, double(w[i])), hi = std::max(hi, double(w[i]));
  const double scale = std::max({hi - lo, std::fabs(lo), std::fabs(hi), 1e-12});
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double e = std::fabs(double(g[i]) - w[i]) / scale;
    if (!(e <= tol)) {
      char msg[160];
      std::snprintf(msg, sizeof msg, "element %lld: got %.9g, want %.9g, error %.3g of the scale %.3g", (long long)i,
                    g[i], w[i], e, scale);
      return msg;
    }
  }
  return "";
}

std::vector<const runtime::Kernel*> kernelsFor(const std::string& op) {
  std::vector<const runtime::Kernel*> out;
  for (const runtime::Kernel* k : family().all())
    if (k->op == op) out.push_back(k);
  return out;
}

bool skipUnlessHostRuns(const runtime::Kernel& k, std::string* why) {
  if (runtime::hostHasAll(k.requirements)) return false;
  *why = runtime::firstMissing(k.requirements) == "avx512f" ? "skipped: no AVX-512"
                                                             : "skipped: host lacks " + runtime::firstMissing(k.requirements);
  return true;
}

// ---- cases ----------------------------------------------------------------------------

std::vector<Spec> allSpecs() {
  std::vector<Spec> out;
  int k = 0;
  // LSTM: every hidden size x seq x batch x direction; input sizes, initial states and
  // sequence_lens rotate so that each meets every direction and batch.
  for (int64_t H : {1, 7, 17, 64, 65})
    for (int64_t S : {1, 7, 50})
      for (int64_t B : {1, 3})
        for (const char* dir : {"forward", "reverse", "bidirectional"}) {
          Spec s;
          s.S = S, s.B = B, s.H = H, s.direction = dir;
          s.I = (k % 3 == 0) ? 1 : (k % 3 == 1) ? 5 : 33;
          s.initial = (k & 1) != 0;
          s.lens = (k & 2) != 0;
          s.layout = (k % 7 == 3) ? 1 : 0;
          ++k;
          out.push_back(s);
        }
  // GRU (both linear_before_reset) and RNN on the sizes the batch-1 GEMM blocks split.
  for (const char* op : {"GRU", "RNN"})
    for (int64_t H : {17, 65})
      for (int64_t B : {1, 3})
        for (const char* dir : {"forward", "bidirectional"}) {
          Spec s;
          s.op = op, s.S = 7, s.B = B, s.I = 9, s.H = H, s.direction = dir;
          s.initial = (k & 1) != 0;
          s.lens = (k & 2) != 0;
          s.linearBeforeReset = std::string(op) == "GRU" && (k & 4) != 0;
          ++k;
          out.push_back(s);
        }
  // One recurrence with a projection worth a second task (sequence x input x gates >= 2^17
  // multiply-adds, more than 8 steps): at 2 threads the projection runs in blocks of 8 steps
  // on the second task while the recurrence consumes them (runCell's pipelined path); a
  // length that ends inside a block, reverse directions (blocks from the end), layout 1,
  // lengths of 9 (two blocks) and 8 (one block: not pipelined), and each cell.
  for (const char* op : {"LSTM", "GRU", "RNN"})
    for (const char* dir : {"forward", "reverse"}) {
      Spec s;
      s.op = op, s.S = 50, s.B = 1, s.I = 64, s.H = std::string(op) == "LSTM" ? 64 : 65, s.direction = dir;
      out.push_back(s);
      s.lens = true, s.len0 = 43, s.initial = true, s.layout = std::string(dir) == "reverse" ? 1 : 0;
      out.push_back(s);
    }
  for (int64_t len0 : {8, 9}) {
    Spec s;
    s.S = 12, s.B = 1, s.I = 96, s.H = 40, s.lens = true, s.len0 = len0, s.direction = "reverse";
    out.push_back(s);
  }
  return out;
}

struct Param {
  std::string kernel;
  Spec spec;
};
void PrintTo(const Param& p, std::ostream* os) { *os << p.kernel << " on " << p.spec.name(); }

std::vector<Param> allParams() {
  std::vector<Param> out;
  for (const Spec& s : allSpecs()) {
    const Built b = build(s, 1);
    for (const runtime::Kernel* k : kernelsFor(s.op))
      if (k->supports(*b.node, b.types)) out.push_back({k->name, s});
  }
  return out;
}

class NativeRnn : public ::testing::TestWithParam<Param> {};

TEST_P(NativeRnn, MatchesReferenceGuardedAndThreadInvariant) {
  const Spec& s = GetParam().spec;
  const runtime::Kernel* k = family().find(Device::kCPU, s.op, "", GetParam().kernel);
  ASSERT_NE(k, nullptr);
  std::string why;
  if (skipUnlessHostRuns(*k, &why)) GTEST_SKIP() << why;
  const Built b = build(s, uint32_t(std::hash<std::string>{}(s.name())));
  const std::vector<Tensor> want = cpu::Interpreter::runNode(*b.node, b.inputs);
  const Prepared p = prepare(*k, b, 2);
  std::vector<std::vector<Tensor>> got;
  for (int threads : {1, 2}) {
    auto ex = runtime::makeCpuExecutor(threads);
    Step step(*k, p, b, want, *ex);
    step.run();
    EXPECT_TRUE(step.guardsIntact()) << "wrote outside an output, " << threads << " thread(s)";
    got.push_back(step.outputs());
  }
  for (size_t o = 0; o < want.size(); ++o) {
    EXPECT_EQ(compare(got[0][o], want[o], kTol), "") << "output " << o;
    EXPECT_TRUE(got[1][o].sameAs(got[0][o])) << "output " << o << ": 2 threads differ from 1";
  }
}

INSTANTIATE_TEST_SUITE_P(Native, NativeRnn, ::testing::ValuesIn(allParams()),
                         [](const ::testing::TestParamInfo<Param>& p) {
                           return p.param.kernel + "__" + p.param.spec.name();
                         });

// Batch row 1 of a batch of 3 (one task, three rows: the GEMM path) against the same row
// alone (one row: the fused LSTM row step): the kernel promises the same bits.
TEST(NativeRnn, FusedRowMatchesTheBatchedPathBitwise) {
  for (const runtime::Kernel* k : kernelsFor("LSTM")) {
    std::string why;
    if (skipUnlessHostRuns(*k, &why)) continue;
    for (int64_t H : {7, 17, 64, 65}) {
      Spec s3;
      s3.S = 9, s3.B = 3, s3.I = 6, s3.H = H, s3.initial = true;
      const Built b3 = build(s3, 7);
      const std::vector<Tensor> want3 = cpu::Interpreter::runNode(*b3.node, b3.inputs);
      auto one = runtime::makeCpuExecutor(1);
      const Prepared p3 = prepare(*k, b3, 1);
      Step step3(*k, p3, b3, want3, *one);
      step3.run();
      const std::vector<Tensor> got3 = step3.outputs();
      // Row 1 of X, h0, c0 as a batch of one.
      auto row = [](const Tensor& t, int64_t axis) {
        Dims d = t.dims();
        const int64_t outer = axis == 0 ? 1 : d[0], inner = t.numel() / (outer * d[axis]);
        d[axis] = 1;
        Tensor r(DataType::kF32, d);
        for (int64_t o = 0; o < outer; ++o)
          std::memcpy(r.data<float>() + o * inner, t.data<float>() + (o * 3 + 1) * inner, size_t(inner) * sizeof(float));
        return r;
      };
      const Tensor x1 = row(b3.data[0], 1), h1 = row(b3.data[5], 1), c1 = row(b3.data[6], 1);
      Spec s1 = s3;
      s1.B = 1;
      const Built b1 = build(s1, 7, &x1, &h1, &c1);  // same seed: the same weights
      const std::vector<Tensor> want1 = cpu::Interpreter::runNode(*b1.node, b1.inputs);
      const Prepared p1 = prepare(*k, b1, 1);
      Step step1(*k, p1, b1, want1, *one);
      step1.run();
      const std::vector<Tensor> got1 = step1.outputs();
      for (size_t o = 0; o < got1.size(); ++o) {
        const int64_t axis = o == 0 ? 2 : 1;  // Y [S, D, B, H]; Y_h, Y_c [D, B, H]
        const Dims d = got3[o].dims();
        int64_t outer = 1;
        for (int64_t a = 0; a < axis; ++a) outer *= d[size_t(a)];
        const int64_t inner = s3.H;
        for (int64_t i = 0; i < outer; ++i)
          EXPECT_EQ(std::memcmp(got1[o].data<float>() + i * inner, got3[o].data<float>() + (i * 3 + 1) * inner,
                                size_t(inner) * sizeof(float)),
                    0)
              << k->name << " H " << H << " output " << o << " slice " << i;
      }
    }
  }
}

// ---- anvil.LSTMStack --------------------------------------------------------------------
// The stack kernels (f32_lstm_stack_*) against the reference (cpu/kernels/anvil_sequence.cpp:
// the reference LSTM per layer), 1, 2 and 3 executor threads bitwise equal, and bitwise
// equal to the LSTM kernel of the same ISA run layer by layer (what the fusion promises).
// Batch 1 with more than one block of 8 steps at 2 threads takes the streamed path (the
// layers overlapping on two tasks); batch 3, a single block or 1 thread the layer-by-layer
// path.

struct StackSpec {
  int64_t S = 1, B = 1, I = 1;
  std::vector<int64_t> H;
  bool initial = false, bias = true;
  std::string name() const {
    std::string n = "S" + std::to_string(S) + "_B" + std::to_string(B) + "_I" + std::to_string(I) + "_H";
    for (int64_t h : H) n += std::to_string(h) + "x";
    n.pop_back();
    return n + (initial ? "_init" : "") + (bias ? "" : "_nobias");
  }
};

// The stack node over random weights; layers[l] the LSTM node of layer l alone (its X a
// graph input to be fed the previous layer's Y), with the same tensors.
struct BuiltStack {
  Built stack;
  std::vector<Built> layers;
};

BuiltStack buildStack(const StackSpec& s, uint32_t seed) {
  std::mt19937 rng(seed);
  BuiltStack out;
  Built& b = out.stack;
  const int64_t L = int64_t(s.H.size());
  b.data.push_back(uniform({s.S, s.B, s.I}, rng, 1.0));
  int64_t I = s.I;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t H = s.H[size_t(l)];
    const double wr = 1.0 / std::sqrt(double(std::max<int64_t>(H, 4)));
    b.data.push_back(uniform({1, 4 * H, I}, rng, wr));
    b.data.push_back(uniform({1, 4 * H, H}, rng, wr));
    b.data.push_back(s.bias ? uniform({1, 8 * H}, rng, 0.5) : Tensor());
    b.data.push_back(s.initial ? uniform({1, s.B, H}, rng, 1.0) : Tensor());
    b.data.push_back(s.initial ? uniform({1, s.B, H}, rng, 1.0) : Tensor());
    I = H;
  }
  auto addInputs = [](Built& t, const std::vector<Tensor>& data, const std::vector<bool>& constant) {
    std::vector<ir::Value*> vals;
    for (size_t i = 0; i < data.size(); ++i) {
      if (!data[i].defined()) {
        vals.push_back(nullptr);
        t.types.push_back({});
        continue;
      }
      const std::string name = "in" + std::to_string(i);
      ir::Value* v = constant[i] ? t.graph->addInitializer(name, data[i]) : t.graph->addValue(name, data[i].type());
      if (!constant[i]) t.graph->addInput(v);
      vals.push_back(v);
      t.types.push_back(data[i].type());
    }
    return vals;
  };
  std::vector<bool> constant(b.data.size(), false);
  for (size_t i = 1; i < b.data.size(); ++i) constant[i] = (i - 1) % 5 < 3;
  const std::vector<ir::Value*> vals = addInputs(b, b.data, constant);
  std::vector<std::string> outs = {"y"};
  std::vector<int64_t> hidden;
  for (int64_t l = 0; l < L; ++l) {
    outs.push_back("yh" + std::to_string(l));
    outs.push_back("yc" + std::to_string(l));
  }
  b.node = b.graph->addNode("LSTMStack", "anvil", "stack", vals, outs);
  b.node->attrs().set("layers", L);
  b.node->attrs().set("hidden_sizes", s.H);
  for (ir::Value* o : b.node->outputs()) b.graph->addOutput(o);
  ir::inferShapes(*b.graph);
  for (size_t i = 0; i < vals.size(); ++i) b.inputs.push_back(vals[i] ? &b.data[i] : nullptr);
  // Layer l alone: X (set per run), W, R, B, no sequence_lens, initial_h, initial_c.
  I = s.I;
  for (int64_t l = 0; l < L; ++l) {
    Built t;
    const size_t base = size_t(1 + 5 * l);
    t.data = {Tensor(DataType::kF32, {s.S, s.B, I}), b.data[base], b.data[base + 1], b.data[base + 2], Tensor(),
              b.data[base + 3], b.data[base + 4]};
    const std::vector<ir::Value*> lv = addInputs(t, t.data, {false, true, true, true, false, false, false});
    t.node = t.graph->addNode("LSTM", "", "layer" + std::to_string(l), lv, {"y", "yh", "yc"});
    t.node->attrs().set("hidden_size", s.H[size_t(l)]);
    for (ir::Value* o : t.node->outputs()) t.graph->addOutput(o);
    ir::inferShapes(*t.graph);
    out.layers.push_back(std::move(t));
    I = s.H[size_t(l)];
  }
  for (Built& t : out.layers)
    for (size_t i = 0; i < t.data.size(); ++i) t.inputs.push_back(t.node->input(i) ? &t.data[i] : nullptr);
  return out;
}

std::vector<StackSpec> stackSpecs() {
  std::vector<StackSpec> out;
  auto add = [&](int64_t S, int64_t B, int64_t I, std::vector<int64_t> H, bool initial, bool bias = true) {
    StackSpec s;
    s.S = S, s.B = B, s.I = I, s.H = std::move(H), s.initial = initial, s.bias = bias;
    out.push_back(s);
  };
  add(50, 1, 64, {64, 64}, false);            // models-bench/lstm_h64_s50: streamed
  add(17, 1, 5, {7, 33, 16}, true);           // three layers, odd sizes, a tail block of 1
  add(9, 1, 1, {1, 65}, true, false);         // two blocks, the second of one step, no bias
  add(50, 1, 3, {17, 8, 40, 9}, false);       // four layers on two tasks
  add(8, 1, 6, {16, 16}, true);               // one block: layer by layer
  add(1, 1, 4, {5, 3}, false);                // one step
  add(7, 3, 9, {17, 8}, true);                // batch 3: layer by layer
  add(12, 2, 64, {64, 24}, false);            // batch 2 (the fused row step, per row)
  return out;
}

void PrintTo(const StackSpec& s, std::ostream* os) { *os << s.name(); }

class NativeLstmStack : public ::testing::TestWithParam<StackSpec> {};

TEST_P(NativeLstmStack, MatchesReferenceAndTheLayersBitwise) {
  const StackSpec& s = GetParam();
  BuiltStack bs = buildStack(s, uint32_t(std::hash<std::string>{}(s.name())));
  const Built& b = bs.stack;
  const std::vector<Tensor> want = cpu::Interpreter::runNode(*b.node, b.inputs);
  int ran = 0;
  for (const runtime::Kernel* k : kernelsFor("LSTMStack")) {
    std::string why;
    if (skipUnlessHostRuns(*k, &why)) {
      std::printf("%s: %s\n", k->name.c_str(), why.c_str());
      continue;
    }
    ASSERT_TRUE(k->supports(*b.node, b.types)) << k->name;
    const Prepared p = prepare(*k, b, 2);
    std::vector<std::vector<Tensor>> got;
    for (int threads : {1, 2, 3}) {
      auto ex = runtime::makeCpuExecutor(threads);
      Step step(*k, p, b, want, *ex);
      for (int rep = 0; rep < 3; ++rep) step.run();  // the counters reset every run
      EXPECT_TRUE(step.guardsIntact()) << k->name << ": wrote outside an output, " << threads << " thread(s)";
      got.push_back(step.outputs());
    }
    for (size_t o = 0; o < want.size(); ++o) {
      EXPECT_EQ(compare(got[0][o], want[o], kTol), "") << k->name << " output " << o;
      EXPECT_TRUE(got[1][o].sameAs(got[0][o])) << k->name << " output " << o << ": 2 threads differ from 1";
      EXPECT_TRUE(got[2][o].sameAs(got[0][o])) << k->name << " output " << o << ": 3 threads differ from 1";
    }
    // The LSTM kernel of the same ISA, layer by layer (1 thread), each layer fed the last one's Y.
    const std::string suffix = k->name.substr(std::string("f32_lstm_stack").size());
    const runtime::Kernel* lk = family().find(Device::kCPU, "LSTM", "", "f32_lstm" + suffix);
    ASSERT_NE(lk, nullptr) << "f32_lstm" << suffix;
    auto one = runtime::makeCpuExecutor(1);
    Tensor x = b.data[0];
    for (size_t l = 0; l < bs.layers.size(); ++l) {
      Built& layer = bs.layers[l];
      layer.data[0] = x;
      layer.inputs[0] = &layer.data[0];
      const std::vector<Tensor> lw = cpu::Interpreter::runNode(*layer.node, layer.inputs);
      const Prepared lp = prepare(*lk, layer, 1);
      Step step(*lk, lp, layer, lw, *one);
      step.run();
      const std::vector<Tensor> lg = step.outputs();
      for (size_t o = 1; o < 3; ++o)
        EXPECT_TRUE(got[1][1 + 2 * l + (o - 1)].sameAs(lg[o])) << k->name << " layer " << l << " state " << o;
      if (l + 1 == bs.layers.size()) {
        EXPECT_TRUE(got[1][0].sameAs(lg[0])) << k->name << " Y";
      }
      x = lg[0].reshaped({s.S, s.B, s.H[l]});
    }
    ++ran;
  }
  EXPECT_GE(ran, 1);
}

INSTANTIATE_TEST_SUITE_P(Native, NativeLstmStack, ::testing::ValuesIn(stackSpecs()),
                         [](const ::testing::TestParamInfo<StackSpec>& p) { return p.param.name(); });

// ---- timing -----------------------------------------------------------------------------

// The 5th percentile of single calls: what a call costs when it has the core (the dev box
// is shared; averages there measure the neighbours).
double p5Us(Step& step, int reps = 2000) {
  std::vector<double> us;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step.run();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 20];
}

TEST(NativeRnnBench, DISABLED_Layers) {
  std::vector<Spec> specs;
  Spec lstm;  // a layer of models-bench/lstm_h64_s50 (2 such layers)
  lstm.S = 50, lstm.B = 1, lstm.I = 64, lstm.H = 64;
  specs.push_back(lstm);
  Spec zoo = lstm;  // the zoo's lstm model: S 10, B 2, I 16, H 32
  zoo.S = 10, zoo.B = 2, zoo.I = 16, zoo.H = 32;
  specs.push_back(zoo);
  for (int64_t B : {2, 3, 4, 8}) {
    Spec batched = lstm;
    batched.B = B;
    specs.push_back(batched);
  }
  for (const char* op : {"GRU", "RNN"}) {
    Spec g = lstm;
    g.op = op;
    specs.push_back(g);
  }
  for (const Spec& s : specs) {
    const Built b = build(s, 3);
    const std::vector<Tensor> shapes = cpu::Interpreter::runNode(*b.node, b.inputs);
    for (const runtime::Kernel* k : kernelsFor(s.op)) {
      if (!runtime::hostHasAll(k->requirements)) continue;
      for (int threads : {1, 2}) {
        auto ex = runtime::makeCpuExecutor(threads);
        const Prepared p = prepare(*k, b, threads);
        Step step(*k, p, b, shapes, *ex);
        step.run();
        std::printf("[ timing ] %-40s %-28s %d thread(s) %8.2f us\n", s.name().c_str(), k->name.c_str(), threads,
                    p5Us(step));
      }
    }
  }
}

}  // namespace
