// The native sequence-family kernels (cpu/tactics/native_sequence*.cpp: anvil.Attention,
// anvil.FusedElementwise, LSTM) against the reference kernels, through the kernel contract
// (runtime/kernel.h): supports, prepare (params, packed blobs, workspace), then run on
// views with 1 and 2 executor threads. Outputs sit between sentinel guards, the workspace
// starts as NaN garbage, and packed constant inputs are handed to run() as null pointers
// (the kernel must read its blobs). Results must be bitwise equal across thread counts and
// match the reference within a tolerance given per op (bitwise for FusedElementwise).
// NativeSequenceBench.DISABLED_Timing times the kernels against the reference
// (--gtest_also_run_disabled_tests).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "cpu/reference.h"
#include "cpu/tactics/native_sequence_util.h"
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

// The family's kernels alone, in a registry of their own (duplicates would throw here).
const runtime::Kernels& family() {
  static runtime::Kernels* k = [] {
    auto* r = new runtime::Kernels;
    runtime::registerNativeSequenceKernels(*r);
    return r;
  }();
  return *k;
}

std::vector<const runtime::Kernel*> kernelsFor(const std::string& op) {
  std::vector<const runtime::Kernel*> out;
  for (const runtime::Kernel* k : family().all())
    if (k->op == op) out.push_back(k);
  return out;
}

// ---- cases ------------------------------------------------------------------------------

struct Input {
  Tensor data;            // undefined: omitted
  bool constant = false;  // an initializer (weights)
};

struct Case {
  std::string name, op, domain;
  std::vector<Input> inputs;
  ir::Attributes attrs;
  std::vector<bool> outputs = {true};  // which outputs are wanted
  double tolerance = 0;                // max |got - ref| / range(ref); 0: bitwise
};

Tensor randomTensor(DataType dt, const Dims& dims, std::mt19937& rng, double range = 1.0) {
  Tensor t(dt, dims);
  std::uniform_real_distribution<double> u(-range, range);
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (dt == DataType::kBool) t.data<bool>()[i] = (rng() & 1) != 0;
    else t.setDouble(i, u(rng));
  }
  return t;
}

// Attention: f32 accumulation of D <= 64 products and Sk <= 63 weighted rows in another
// order than the reference (FMA, split accumulators): a few ulp of the output range.
constexpr double kAttentionTol = 1e-5;
// LSTM: the reference runs in double; the kernel in f32 with a polynomial exp (about 2
// ulp) through up to 50 steps of a contractive recurrence: errors measured below 1e-6 of
// the output scale; 1e-5 leaves room without hiding a wrong gate or step (those are O(0.1)).
constexpr double kLstmTol = 1e-5;

std::vector<Case> attentionCases() {
  std::vector<Case> cs;
  std::mt19937 rng(7);
  auto add = [&](std::string name, Dims q, Dims k, Dims v, std::string kind, Dims mask, float fill = 0) {
    Case c;
    c.name = "Attention_" + name + "_" + kind;
    c.op = "Attention";
    c.domain = "anvil";
    c.tolerance = kAttentionTol;
    c.inputs = {{randomTensor(DataType::kF32, q, rng)}, {randomTensor(DataType::kF32, k, rng)},
                {randomTensor(DataType::kF32, v, rng)}};
    if (kind != "none")
      c.inputs.push_back({randomTensor(kind == "add" ? DataType::kF32 : DataType::kBool, mask, rng)});
    c.attrs.set("scale", 0.3f);
    if (kind != "none") c.attrs.set("mask_kind", kind);
    if (fill != 0) c.attrs.set("mask_fill", fill);
    cs.push_back(std::move(c));
  };
  // Self-attention over seq 1, 7, 17, 63 with 1, 2, 4 heads; head sizes around the
  // vector width (64, 13, 16), each mask kind.
  const char* kinds[] = {"none", "add", "fill_true", "fill_false"};
  int ki = 0;
  for (int64_t s : {1, 7, 17, 63})
    for (int64_t heads : {1, 2, 4}) {
      const int64_t d = heads == 1 ? 64 : heads == 2 ? 13 : 16;
      const std::string kind = kinds[ki++ % 4];
      const Dims mask = kind == "add" ? Dims{2, 1, 1, s} : kind == "fill_true" ? Dims{s, s} : Dims{heads, 1, s};
      add("s" + std::to_string(s) + "_h" + std::to_string(heads), {2, heads, s, d}, {2, heads, s, d},
          {2, heads, s, d}, kind, mask, kind == "fill_true" ? -1e4f : 0.0f);
      add("s" + std::to_string(s) + "_h" + std::to_string(heads) + "_nomask", {1, heads, s, d}, {1, heads, s, d},
          {1, heads, s, d}, "none", {});
    }
  // Cross attention and batch broadcasting (the older tactic's cases).
  add("1x1x3", {1, 1, 3}, {1, 1, 3}, {1, 1, 1}, "none", {});
  add("rank2", {5, 7}, {11, 7}, {11, 13}, "add", {5, 11});
  add("cross", {2, 3, 7, 17}, {2, 3, 11, 17}, {2, 3, 11, 9}, "add", {2, 1, 1, 11});
  add("bcast_batch", {2, 3, 7, 5}, {1, 3, 11, 5}, {2, 1, 11, 4}, "fill_true", {7, 11}, -1e4f);
  add("mask_per_row", {3, 4, 13, 8}, {3, 4, 5, 8}, {3, 4, 5, 8}, "fill_false", {3, 1, 13, 1}, -1e4f);
  add("mask_inf", {2, 7, 9}, {2, 5, 9}, {2, 5, 9}, "fill_false", {2, 7, 5});  // -inf fill: rows may be NaN
  add("bert_tiny", {8, 16, 16}, {8, 16, 16}, {8, 16, 16}, "add", {8, 1, 16});
  add("empty_batch", {0, 3, 4}, {1, 5, 4}, {1, 5, 4}, "none", {});
  add("Sk0", {2, 3, 4}, {2, 0, 4}, {2, 0, 6}, "none", {});
  add("Sk_gt_threads_rows", {1, 1, 63, 64}, {1, 1, 17, 64}, {1, 1, 17, 33}, "none", {});
  // The packed form (qkv_packed=1): heads read in place from [B, S, 3HD] / [S, B, 3HD] with
  // the projection's row stride, the output written into [B, S, HD] / [S, B, HD]; seq 1,
  // 7, 17, 63, head sizes around the vector width, every mask kind and broadcast.
  auto packed = [&](std::string layout, int64_t b, int64_t s, int64_t h, int64_t d, std::string kind, Dims mask) {
    Case c;
    c.name = "Attention_packed_" + layout + "_b" + std::to_string(b) + "_s" + std::to_string(s) + "_h" +
             std::to_string(h) + "_d" + std::to_string(d) + "_" + kind;
    c.op = "Attention";
    c.domain = "anvil";
    c.tolerance = kAttentionTol;
    const Dims x = layout == "bshd" ? Dims{b, s, 3 * h * d} : Dims{s, b, 3 * h * d};
    c.inputs = {{randomTensor(DataType::kF32, x, rng)}};
    if (kind != "none")
      c.inputs.push_back({randomTensor(kind == "add" ? DataType::kF32 : DataType::kBool, mask, rng)});
    c.attrs.set("qkv_packed", int64_t(1));
    c.attrs.set("layout", layout);
    c.attrs.set("num_heads", h);
    c.attrs.set("head_size", d);
    c.attrs.set("scale", 0.3f);
    if (kind != "none") c.attrs.set("mask_kind", kind);
    if (kind == "fill_true" || kind == "fill_false") c.attrs.set("mask_fill", -1e4f);
    cs.push_back(std::move(c));
  };
  for (const char* layout : {"bshd", "sbhd"}) {
    packed(layout, 1, 1, 1, 8, "none", {});
    packed(layout, 2, 7, 3, 13, "add", {2, 1, 1, 7});
    packed(layout, 3, 17, 2, 16, "fill_true", {17, 17});
    packed(layout, 2, 63, 4, 16, "fill_false", {2, 4, 63, 1});
    packed(layout, 1, 63, 1, 64, "add", {1, 1, 63, 63});
    packed(layout, 2, 16, 4, 16, "add", {2, 4, 1, 16});  // bert_tiny's layer at batch 2
    packed(layout, 3, 9, 2, 33, "none", {});
  }
  packed("sbhd", 0, 5, 2, 8, "none", {});  // empty batch
  return cs;
}

std::vector<Case> fusedElementwiseCases() {
  std::vector<Case> cs;
  std::mt19937 rng(3);
  auto add = [&](std::string name, std::vector<Dims> ins, std::vector<std::string> program) {
    Case c;
    c.name = "FusedElementwise_" + name;
    c.op = "FusedElementwise";
    c.domain = "anvil";
    c.tolerance = 0;  // bitwise: every element goes through the reference's formula
    for (const Dims& d : ins) c.inputs.push_back({randomTensor(DataType::kF32, d, rng, 3.0)});
    c.attrs.set("program", program);
    cs.push_back(std::move(c));
  };
  // Every op of the program language, around the chunk (511, 512, 513, 1025 elements),
  // each input mode (same shape, one element, broadcast on inner and outer axes).
  const std::vector<std::string> all = {
      "Add 0 1", "Sub 4 2", "Mul 5 3", "Div 6 1", "Pow 0 7", "Max 8 0", "Min 9 2", "PRelu 10 3", "Clip 11 _ 3",
      "Abs 12", "Neg 13", "Exp 14", "Log 15", "Sqrt 16", "Reciprocal 17", "Sigmoid 18", "Tanh 19", "Relu 20",
      "Erf 21", "Floor 22", "Ceil 23", "Round 24", "Sin 25", "Cos 26", "Softplus 27", "Softsign 28", "Sign 29",
      "HardSwish 30", "Mish 31", "LeakyRelu 32 alpha=0.2", "Elu 33", "Selu 34", "Celu 35", "HardSigmoid 36",
      "ThresholdedRelu 37", "Gelu 38", "Gelu 39 approximate=tanh", "Add 40 0"};
  add("all_511", {{511}, {511}, {1}, {1}}, all);
  add("all_512", {{512}, {1}, {512}, {1}}, all);
  add("all_513_bcast", {{3, 171}, {171}, {3, 1}, {1, 1}}, all);
  add("all_1025_bcast", {{5, 1, 205}, {5, 1, 1}, {1, 205}, {205}}, all);
  add("len4_same", {{2, 3, 4}, {2, 3, 4}, {2, 3, 4}, {2, 3, 4}}, {"Mul 0 1", "Add 4 2", "Relu 5", "Sub 6 3"});
  add("empty", {{0, 3}, {3}, {1}, {1}}, {"Add 0 1"});
  // Chains of 1, 2, 3, 5 and 9 instructions with broadcasting, odd sizes and tails.
  add("len1_scalar", {{7, 17}, {1}}, {"Mul 0 1"});
  add("len2_row_bcast", {{63, 17}, {17}}, {"Add 0 1", "Relu 2"});
  add("len3_silu_residual", {{2, 7, 63}, {2, 7, 63}}, {"Sigmoid 0", "Mul 0 2", "Add 3 1"});
  add("len5_outer_bcast", {{1, 7, 1}, {5, 1, 33}, {1}}, {"Mul 0 1", "Add 3 2", "Clip 4 2 _", "Tanh 5", "Sub 6 0"});
  add("len9_4d", {{2, 3, 17, 11}, {3, 1, 1}, {1, 1, 11}, {1}},
      {"Sub 0 1", "Div 4 2", "Mul 5 3", "Add 6 1", "Gelu 7", "Exp 8", "Log 9", "Max 10 0", "Min 11 3"});
  add("big_1M", {{4, 64, 63, 65}, {64, 1, 1}}, {"Mul 0 1", "Add 2 0", "HardSwish 3"});
  return cs;
}

struct LstmSpec {
  int64_t S, B, I, H;
  std::string direction = "forward";
  bool initial = false, lens = false;
  int64_t layout = 0;
  std::vector<bool> outputs = {true, true, true};  // Y, Y_h, Y_c (LSTM only)
  bool bias = true;
  std::string op = "LSTM";  // or GRU, RNN
  bool linearBeforeReset = false;  // GRU
};

Case lstmCase(const LstmSpec& s, std::mt19937& rng) {
  const int64_t D = s.direction == "bidirectional" ? 2 : 1;
  const bool lstm = s.op == "LSTM";
  const int64_t G = lstm ? 4 : s.op == "GRU" ? 3 : 1;
  Case c;
  c.op = s.op;
  c.name = s.op + "_S" + std::to_string(s.S) + "_B" + std::to_string(s.B) + "_I" + std::to_string(s.I) + "_H" +
           std::to_string(s.H) + "_" + s.direction + (s.initial ? "_init" : "") + (s.lens ? "_lens" : "") +
           (s.layout ? "_layout1" : "") + (s.bias ? "" : "_nobias");
  c.outputs = s.outputs;
  if (!lstm) c.outputs.resize(std::min<size_t>(c.outputs.size(), 2));
  std::string outs;
  for (bool w : c.outputs) outs += w ? "1" : "0";
  if (outs != "111" && outs != "11") c.name += "_out" + outs;
  if (s.linearBeforeReset) c.name += "_lbr";
  c.tolerance = kLstmTol;
  // Weights like a trained layer's (|w| ~ 1/sqrt(H)) so the gates are not saturated.
  const double wr = 1.0 / std::sqrt(double(std::max<int64_t>(s.H, 4)));
  const Dims x = s.layout == 0 ? Dims{s.S, s.B, s.I} : Dims{s.B, s.S, s.I};
  const Dims state = s.layout == 0 ? Dims{D, s.B, s.H} : Dims{s.B, D, s.H};
  c.inputs.push_back({randomTensor(DataType::kF32, x, rng)});
  c.inputs.push_back({randomTensor(DataType::kF32, {D, G * s.H, s.I}, rng, wr), true});
  c.inputs.push_back({randomTensor(DataType::kF32, {D, G * s.H, s.H}, rng, wr), true});
  c.inputs.push_back({s.bias ? randomTensor(DataType::kF32, {D, 2 * G * s.H}, rng, 0.5) : Tensor(), true});
  Tensor lens;
  if (s.lens) {
    lens = Tensor(DataType::kI32, {s.B});
    for (int64_t b = 0; b < s.B; ++b) lens.data<int32_t>()[b] = int32_t(b == 0 ? s.S : (s.S * b) / (s.B + 1));
  }
  c.inputs.push_back({lens});
  c.inputs.push_back({s.initial ? randomTensor(DataType::kF32, state, rng) : Tensor()});
  if (lstm) c.inputs.push_back({s.initial ? randomTensor(DataType::kF32, state, rng) : Tensor()});
  c.attrs.set("hidden_size", s.H);
  if (s.linearBeforeReset) c.attrs.set("linear_before_reset", int64_t(1));
  if (s.direction != "forward") c.attrs.set("direction", s.direction);
  if (s.layout) c.attrs.set("layout", s.layout);
  return c;
}

std::vector<Case> recurrentCases() {
  std::vector<Case> cs;
  std::mt19937 rng(5);
  int k = 0;
  for (int64_t S : {1, 7, 50})
    for (int64_t B : {1, 3})
      for (int64_t H : {1, 7, 64})
        for (const char* dir : {"forward", "reverse", "bidirectional"}) {
          // Initial states and sequence_lens alternate so that every combination of
          // them meets every direction.
          LstmSpec s{S, B, H == 64 ? 32 : 5, H, dir};
          s.initial = (k & 1) != 0;
          s.lens = (k & 2) != 0;
          ++k;
          cs.push_back(lstmCase(s, rng));
        }
  // Layout 1, omitted outputs, no bias, zero-length rows, input wider than a block.
  LstmSpec l1{7, 3, 6, 7, "bidirectional", true, true, 1};
  cs.push_back(lstmCase(l1, rng));
  LstmSpec onlyY{7, 3, 5, 9, "reverse", true, false, 0, {true}};
  cs.push_back(lstmCase(onlyY, rng));
  LstmSpec onlyH{7, 2, 5, 9, "bidirectional", false, true, 0, {false, true, false}};
  cs.push_back(lstmCase(onlyH, rng));
  LstmSpec noBias{17, 4, 3, 17, "forward", true, true};
  noBias.bias = false;
  cs.push_back(lstmCase(noBias, rng));
  LstmSpec wide{9, 5, 67, 33, "bidirectional", false, true};
  cs.push_back(lstmCase(wide, rng));
  LstmSpec zoo{50, 8, 32, 64, "forward"};  // the brief's lstm layer shape, batch 8
  cs.push_back(lstmCase(zoo, rng));
  // GRU (both linear_before_reset) and RNN: every direction, seq 1/7/50, batch 1/3,
  // hidden 1/7/64 (fewer combinations: the driver is the LSTM's).
  int j = 0;
  for (const char* op : {"GRU", "RNN"})
    for (int64_t S : {1, 7, 50})
      for (int64_t H : {1, 7, 64})
        for (const char* dir : {"forward", "reverse", "bidirectional"}) {
          LstmSpec s{S, j % 2 ? 3 : 1, H == 64 ? 32 : 5, H, dir};
          s.op = op;
          s.initial = (j & 2) != 0;
          s.lens = (j & 4) != 0;
          s.linearBeforeReset = std::string(op) == "GRU" && (j & 1) != 0;
          ++j;
          cs.push_back(lstmCase(s, rng));
        }
  for (const char* op : {"GRU", "RNN"}) {
    LstmSpec l1{7, 3, 6, 17, "bidirectional", true, true, 1};
    l1.op = op;
    cs.push_back(lstmCase(l1, rng));
    LstmSpec onlyH{9, 5, 67, 33, "reverse", false, true, 0, {false, true}};
    onlyH.op = op;
    onlyH.linearBeforeReset = true;
    cs.push_back(lstmCase(onlyH, rng));
    LstmSpec noBias{17, 4, 3, 9, "forward", true, false};
    noBias.op = op;
    noBias.bias = false;
    cs.push_back(lstmCase(noBias, rng));
  }
  return cs;
}

const std::vector<Case>& allCases() {
  static const std::vector<Case> cases = [] {
    std::vector<Case> all;
    for (auto f : {attentionCases, fusedElementwiseCases, recurrentCases})
      for (Case& c : f()) all.push_back(std::move(c));
    return all;
  }();
  return cases;
}

// ---- one node, the reference, and a guarded native run ----------------------------------

struct Built {
  std::unique_ptr<ir::Graph> graph = std::make_unique<ir::Graph>();
  ir::Node* node = nullptr;
  std::vector<const Tensor*> inputs;     // null where omitted
  std::vector<ir::TensorType> types;     // kUndefined where omitted
};

Built build(const Case& c) {
  Built b;
  std::vector<ir::Value*> vals;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const Input& in = c.inputs[i];
    if (!in.data.defined()) {
      vals.push_back(nullptr);
      b.types.push_back({});
      continue;
    }
    const std::string name = "in" + std::to_string(i);
    ir::Value* v = in.constant ? b.graph->addInitializer(name, in.data) : b.graph->addValue(name, in.data.type());
    if (!in.constant) b.graph->addInput(v);
    vals.push_back(v);
    b.types.push_back(in.data.type());
  }
  std::vector<std::string> outs;
  for (size_t k = 0; k < c.outputs.size(); ++k) outs.push_back(c.outputs[k] ? "y" + std::to_string(k) : "");
  b.node = b.graph->addNode(c.op, c.domain, "n0", vals, outs);
  b.node->attrs() = c.attrs;
  for (ir::Value* o : b.node->outputs())
    if (!o->name().empty()) b.graph->addOutput(o);
  ir::inferShapes(*b.graph);
  for (size_t i = 0; i < vals.size(); ++i)
    b.inputs.push_back(!vals[i] ? nullptr : vals[i]->isInitializer() ? vals[i]->initializer() : &c.inputs[i].data);
  return b;
}

std::vector<Tensor> reference(const Built& b) { return cpu::Interpreter::runNode(*b.node, b.inputs); }

// 64-byte aligned heap bytes for params, blobs and the workspace.
struct Aligned {
  std::unique_ptr<void, void (*)(void*)> p{nullptr, std::free};
  size_t bytes = 0;
  explicit Aligned(size_t n, unsigned char fill = 0) : bytes(n) {
    p.reset(std::aligned_alloc(64, std::max<size_t>(64, (n + 63) / 64 * 64)));
    std::memset(p.get(), fill, std::max<size_t>(64, (n + 63) / 64 * 64));
  }
};

struct PreparedStep {
  runtime::Prepared prepared;
  std::unique_ptr<Aligned> params;
  std::vector<std::unique_ptr<Aligned>> blobs;
  std::vector<runtime::Blob> blobViews;
};

// Prepares kernel `k` for node b (the profile's min/opt/max all at b's types, unless
// `maxCase` gives larger max types) with `threads` threads.
PreparedStep prepare(const runtime::Kernel& k, const Built& b, int threads, const Built* maxCase = nullptr) {
  PreparedStep s;
  runtime::PrepareInfo info;
  info.node = b.node;
  info.minTypes = info.optTypes = b.types;
  info.maxTypes = maxCase ? maxCase->types : b.types;
  for (const ir::Value* o : (maxCase ? maxCase : &b)->node->outputs()) info.maxOutputTypes.push_back(o->type());
  for (const ir::Value* v : b.node->inputs()) info.constants.push_back(v && v->isInitializer() ? v->initializer() : nullptr);
  info.threads = threads;
  if (k.prepare) k.prepare(info, &s.prepared);
  s.params = std::make_unique<Aligned>(s.prepared.params.size());
  std::memcpy(s.params->p.get(), s.prepared.params.data(), s.prepared.params.size());
  for (const std::string& blob : s.prepared.blobs) {
    s.blobs.push_back(std::make_unique<Aligned>(blob.size()));
    std::memcpy(s.blobs.back()->p.get(), blob.data(), blob.size());
    s.blobViews.push_back({s.blobs.back()->p.get(), blob.size()});
  }
  return s;
}

constexpr uint32_t kSentinel = 0x7fa5a5a5u;  // a NaN no kernel produces
constexpr int64_t kGuard = 37;

struct NativeRun {
  std::vector<Tensor> outputs;  // undefined where not wanted
  bool guardsIntact = true;
};

// A step ready to run: input views (packed constants as null pointers), guarded output
// buffers, a workspace of NaN garbage (the kernel must not rely on zeros).
class GuardedStep {
 public:
  GuardedStep(const runtime::Kernel& k, const PreparedStep& s, const Built& b, const std::vector<Tensor>& want,
              runtime::Executor& ex)
      : k_(k), want_(want), ins_(b.inputs.size()), outs_(b.node->numOutputs()), bufs_(outs_.size()),
        ws_(s.prepared.workspaceBytes, 0xff) {
    for (size_t i = 0; i < b.inputs.size(); ++i) {
      if (!b.inputs[i]) continue;
      const Tensor& t = *b.inputs[i];
      ins_[i].dtype = t.dtype();
      ins_[i].setExtents(t.dims());
      const bool packed = std::count(s.prepared.packedInputs.begin(), s.prepared.packedInputs.end(), int(i)) != 0;
      ins_[i].data = packed ? nullptr : const_cast<void*>(t.raw());
    }
    for (size_t o = 0; o < outs_.size(); ++o) {
      if (b.node->output(o)->name().empty() || o >= want.size() || !want[o].defined()) continue;
      bufs_[o].assign(size_t(want[o].numel() + 2 * kGuard), kSentinel);
      outs_[o].dtype = want[o].dtype();
      outs_[o].setExtents(want[o].dims());
      outs_[o].data = bufs_[o].data() + kGuard;
    }
    a_.node = b.node;
    a_.inputs = ins_.data();
    a_.numInputs = int(ins_.size());
    a_.outputs = outs_.data();
    a_.numOutputs = int(outs_.size());
    a_.params = {s.params->p.get(), s.prepared.params.size()};
    a_.blobs = s.blobViews.data();
    a_.numBlobs = int(s.blobViews.size());
    a_.workspace = ws_.p.get();
    a_.workspaceBytes = s.prepared.workspaceBytes;
    a_.executor = &ex;
  }
  void run() { k_.run(a_); }
  NativeRun result() const {
    NativeRun r;
    r.outputs.resize(outs_.size());
    for (size_t o = 0; o < outs_.size(); ++o) {
      if (!outs_[o].present()) continue;
      const std::vector<uint32_t>& buf = bufs_[o];
      for (int64_t g = 0; g < kGuard; ++g)
        if (buf[size_t(g)] != kSentinel || buf[buf.size() - 1 - size_t(g)] != kSentinel) r.guardsIntact = false;
      r.outputs[o] = Tensor(want_[o].dtype(), want_[o].dims());
      if (want_[o].numel()) std::memcpy(r.outputs[o].mutableRaw(), buf.data() + kGuard, want_[o].nbytes());
    }
    return r;
  }

 private:
  const runtime::Kernel& k_;
  const std::vector<Tensor>& want_;
  std::vector<runtime::TensorView> ins_, outs_;
  std::vector<std::vector<uint32_t>> bufs_;
  Aligned ws_;
  runtime::StepArgs a_;
};

NativeRun runNative(const runtime::Kernel& k, const PreparedStep& s, const Built& b, const std::vector<Tensor>& want,
                    runtime::Executor& ex) {
  GuardedStep step(k, s, b, want, ex);
  step.run();
  return step.result();
}

// max |got - want| / scale over finite elements, scale = the larger of want's range and
// magnitude (a one-element output has no range); NaN and infinities must sit at the same
// places. Returns a message or "".
std::string compare(const Tensor& got, const Tensor& want, double tol) {
  if (got.dims() != want.dims()) return "shape " + got.summary() + ", expected " + want.summary();
  const float* g = got.data<float>();
  const float* w = want.data<float>();
  double lo = INFINITY, hi = -INFINITY;
  for (int64_t i = 0; i < want.numel(); ++i)
    if (std::isfinite(w[i])) {
      lo = std::min(lo, double(w[i]));
      hi = std::max(hi, double(w[i]));
    }
  const double range =
      std::isfinite(hi - lo) ? std::max({hi - lo, std::fabs(lo), std::fabs(hi), 1e-12}) : 1.0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    char msg[200];
    if (tol == 0 || !std::isfinite(w[i])) {
      const bool same = std::isnan(w[i]) ? std::isnan(g[i]) : g[i] == w[i];
      if (!same) {
        std::snprintf(msg, sizeof msg, "element %lld: got %.9g, want %.9g (bitwise expected)", (long long)i, g[i], w[i]);
        return msg;
      }
      continue;
    }
    const double e = std::fabs(double(g[i]) - w[i]) / range;
    if (!(e <= tol)) {
      std::snprintf(msg, sizeof msg, "element %lld: got %.9g, want %.9g, error %.3g of the scale %.3g", (long long)i,
                    g[i], w[i], e, range);
      return msg;
    }
  }
  return "";
}

// ---- the parametrised test --------------------------------------------------------------

struct Param {
  std::string kernel;
  size_t caseIndex;
};
void PrintTo(const Param& p, std::ostream* os) { *os << p.kernel << " on " << allCases()[p.caseIndex].name; }

std::vector<Param> allParams() {
  std::vector<Param> out;
  for (size_t i = 0; i < allCases().size(); ++i) {
    const Case& c = allCases()[i];
    const Built b = build(c);
    for (const runtime::Kernel* k : kernelsFor(c.op))
      if (k->supports(*b.node, b.types)) out.push_back({k->name, i});
  }
  return out;
}

const runtime::Kernel& kernelNamed(const Case& c, const std::string& name) {
  const runtime::Kernel* k = family().find(Device::kCPU, c.op, c.domain, name);
  if (!k) throw std::runtime_error("no kernel " + name);
  return *k;
}

class NativeSequence : public ::testing::TestWithParam<Param> {};

TEST_P(NativeSequence, MatchesReferenceGuardedAndThreadInvariant) {
  const Case& c = allCases()[GetParam().caseIndex];
  const runtime::Kernel& k = kernelNamed(c, GetParam().kernel);
  if (!runtime::hostHasAll(k.requirements)) {
    if (runtime::firstMissing(k.requirements) == "avx512f") GTEST_SKIP() << "skipped: no AVX-512";
    GTEST_SKIP() << "skipped: host lacks " << runtime::firstMissing(k.requirements);
  }
  const Built b = build(c);
  const std::vector<Tensor> want = reference(b);
  const PreparedStep s = prepare(k, b, 2);
  std::vector<NativeRun> runs;
  for (int threads : {1, 2}) {
    runs.push_back(runNative(k, s, b, want, *runtime::makeCpuExecutor(threads)));
    EXPECT_TRUE(runs.back().guardsIntact) << "wrote outside an output, " << threads << " thread(s)";
  }
  for (size_t o = 0; o < want.size(); ++o) {
    if (!runs[0].outputs[o].defined()) continue;
    EXPECT_EQ(compare(runs[0].outputs[o], want[o], c.tolerance), "") << "output " << o;
    EXPECT_TRUE(runs[1].outputs[o].sameAs(runs[0].outputs[o])) << "output " << o << ": 2 threads differ from 1";
  }
}

INSTANTIATE_TEST_SUITE_P(Native, NativeSequence, ::testing::ValuesIn(allParams()),
                         [](const ::testing::TestParamInfo<Param>& p) {
                           return p.param.kernel + "__" + allCases()[p.param.caseIndex].name;
                         });

// Every kernel of the family serves enough of the cases (a supports() that declines too
// much would pass the test above vacuously).
TEST(NativeSequenceRegistration, EveryKernelHasCases) {
  std::map<std::string, int> covered;
  for (const Param& p : allParams()) covered[p.kernel]++;
  const std::vector<std::string> names = {
      "f32_attention_rows__avx2", "f32_attention_rows", "f32_fused_elementwise_chunked",
      "f32_lstm_packed_4x32__avx512", "f32_lstm_packed_4x16__avx2", "f32_lstm_packed_4x16",
      "f32_gru_packed_4x32__avx512", "f32_gru_packed_4x16__avx2", "f32_gru_packed_4x16",
      "f32_rnn_packed_4x32__avx512", "f32_rnn_packed_4x16__avx2", "f32_rnn_packed_4x16"};
  for (const std::string& n : names) EXPECT_GE(covered[n], 10) << n;
  for (const runtime::Kernel* k : family().all()) {
    EXPECT_EQ(k->precision, DataType::kF32) << k->name;
    EXPECT_EQ(k->name.rfind("f32_", 0), 0u) << k->name;
    const bool avx2 = k->name.find("__avx2") != std::string::npos;
    const bool avx512 = k->name.find("__avx512") != std::string::npos;
    EXPECT_EQ(avx2 || avx512, !k->requirements.empty()) << k->name << ": the name spells the ISA it requires";
    if (avx512) {
      EXPECT_EQ(k->requirements, std::vector<std::string>{"avx512f"}) << k->name;
    }
    if (avx2) {
      EXPECT_EQ(k->requirements, (std::vector<std::string>{"avx2", "fma"})) << k->name;
    }
  }
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

// The thread-invariance check above means something only where the work is split: every
// kernel splits its largest case over 2 threads.
TEST(NativeSequenceRegistration, EveryKernelSplitsItsLargestCase) {
  for (const runtime::Kernel* k : family().all()) {
    if (!runtime::hostHasAll(k->requirements)) continue;
    // The stack's cases are in native_rnn_test.cpp (NativeLstmStack: its streamed run on two
    // tasks against the LSTM kernels layer by layer).
    if (k->op == "LSTMStack") continue;
    const Case* largest = nullptr;
    int64_t most = -1;
    for (const Case& c : allCases()) {
      if (c.op != k->op) continue;
      int64_t numel = 0;
      for (const Input& in : c.inputs) numel += in.data.defined() ? in.data.numel() : 0;
      if (numel > most && k->supports(*build(c).node, build(c).types)) {
        most = numel;
        largest = &c;
      }
    }
    ASSERT_NE(largest, nullptr) << k->name;
    const Built b = build(*largest);
    const std::vector<Tensor> want = reference(b);
    CountingExecutor ex(2);
    runNative(*k, prepare(*k, b, 2), b, want, ex);
    EXPECT_GE(ex.maxTasks, 2) << k->name << " on " << largest->name;
  }
}

// The whole CPU registry (reference, older tactics, every native family) registers each
// name once: the older Attention and FusedElementwise tactics are gone.
TEST(NativeSequenceRegistration, NoDuplicateNamesInTheCpuRegistry) {
  runtime::Kernels cpuKernels;
  ASSERT_NO_THROW(runtime::registerCpuKernels(cpuKernels));
  const std::vector<const runtime::Kernel*> all = cpuKernels.all();
  for (const char* op : {"Attention", "FusedElementwise"}) {
    std::vector<std::string> names;
    for (const runtime::Kernel* k : all)
      if (k->op == op) names.push_back(k->name);
    std::sort(names.begin(), names.end());
    EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end()) << op;
    EXPECT_NE(std::find(names.begin(), names.end(), "ref"), names.end()) << op;
  }
}

// anvil.FusedElementwise's tasks: a short program splits by its elements (the plain
// elementwise ops' grain), a long one by its element-instructions; never more than `most`,
// never none. convnext_tiny's 14x14x384 residual step (3 instructions) ran in one task at two
// threads.
TEST(NativeSequenceTasks, ElementwiseSplitsShortProgramsByElements) {
  namespace seq = anvil::runtime::seq;
  EXPECT_EQ(seq::elementwiseTasks(2, 14 * 14 * 384, 3), 2);
  EXPECT_EQ(seq::elementwiseTasks(2, 7 * 7 * 768, 3), 2);
  EXPECT_EQ(seq::elementwiseTasks(2, 7 * 7 * 768, 1), 2);
  EXPECT_EQ(seq::elementwiseTasks(2, seq::kElementwiseGrain - 1, 3), 1);
  EXPECT_EQ(seq::elementwiseTasks(8, 4 * seq::kElementwiseGrain, 2), 4);
  // A long program: by its work (kMinTaskWork element-instructions a task).
  EXPECT_EQ(seq::elementwiseTasks(16, seq::kElementwiseGrain, 40), 16384 * 40 / seq::kMinTaskWork);
  EXPECT_EQ(seq::elementwiseTasks(4, 0, 3), 1);
  EXPECT_EQ(seq::elementwiseTasks(1, 1 << 20, 3), 1);
}

// Prepared for the profile's largest shapes, run on smaller ones (extents come from the
// views at run time; the workspace was sized for the max).
TEST(NativeSequence, RunsSmallerShapesThanPreparedFor) {
  std::mt19937 rng(21);
  struct Pair {
    Case small, large;
  };
  std::vector<Pair> pairs;
  pairs.push_back({lstmCase({7, 2, 5, 9, "bidirectional", true, true}, rng),
                   lstmCase({50, 6, 5, 9, "bidirectional", true, true}, rng)});
  pairs.push_back({lstmCase({3, 1, 5, 9, "reverse", false, false, 1}, rng),
                   lstmCase({20, 4, 5, 9, "reverse", false, false, 1}, rng)});
  LstmSpec gruSmall{5, 2, 5, 9, "bidirectional", true, true}, gruLarge{30, 7, 5, 9, "bidirectional", true, true};
  gruSmall.op = gruLarge.op = "GRU";
  pairs.push_back({lstmCase(gruSmall, rng), lstmCase(gruLarge, rng)});
  // Same weights in both cases: the kernel packs the small case's constants.
  for (Pair& p : pairs)
    for (size_t i = 1; i <= 3; ++i) p.large.inputs[i] = p.small.inputs[i];
  const auto attn = attentionCases();
  auto findCase = [&](const std::vector<Case>& v, const std::string& n) {
    for (const Case& c : v)
      if (c.name == n) return c;
    throw std::runtime_error("no case " + n);
  };
  pairs.push_back({findCase(attn, "Attention_s7_h2_nomask_none"), findCase(attn, "Attention_s63_h2_nomask_none")});
  const auto ew = fusedElementwiseCases();
  pairs.push_back({findCase(ew, "FusedElementwise_len2_row_bcast"), findCase(ew, "FusedElementwise_len2_row_bcast")});
  pairs.back().large.inputs[0].data = Tensor(DataType::kF32, {200, 17});
  for (const Pair& p : pairs) {
    const Built small = build(p.small), large = build(p.large);
    const std::vector<Tensor> want = reference(small);
    for (const runtime::Kernel* k : kernelsFor(p.small.op)) {
      if (!runtime::hostHasAll(k->requirements)) continue;
      SCOPED_TRACE(k->name + " on " + p.small.name);
      ASSERT_TRUE(k->supports(*large.node, large.types));
      const PreparedStep s = prepare(*k, small, 2, &large);
      const PreparedStep tight = prepare(*k, small, 2);
      EXPECT_GE(s.prepared.workspaceBytes, tight.prepared.workspaceBytes);
      const NativeRun r = runNative(*k, s, small, want, *runtime::makeCpuExecutor(2));
      EXPECT_TRUE(r.guardsIntact);
      for (size_t o = 0; o < want.size(); ++o)
        if (r.outputs[o].defined()) {
          EXPECT_EQ(compare(r.outputs[o], want[o], p.small.tolerance), "") << o;
        }
    }
  }
}

// What each kernel declines (the reference serves it).
TEST(NativeSequence, DeclinesWhatItDoesNotImplement) {
  std::mt19937 rng(9);
  auto declined = [](const Case& c) {
    const Built b = build(c);
    for (const runtime::Kernel* k : kernelsFor(c.op))
      if (k->supports(*b.node, b.types)) return false;
    return true;
  };
  // LSTM: custom activations, clip, peepholes, input_forget, runtime weights, f64.
  const LstmSpec base{5, 2, 3, 4, "forward", true, true};
  EXPECT_FALSE(declined(lstmCase(base, rng)));
  Case acts = lstmCase(base, rng);
  acts.attrs.set("activations", std::vector<std::string>{"Sigmoid", "Relu", "Tanh"});
  EXPECT_TRUE(declined(acts));
  Case defaultActs = lstmCase(base, rng);
  defaultActs.attrs.set("activations", std::vector<std::string>{"sigmoid", "TANH", "Tanh"});
  EXPECT_FALSE(declined(defaultActs)) << "the default activations spelled out are still the defaults";
  LstmSpec gruBase = base;
  gruBase.op = "GRU";
  EXPECT_FALSE(declined(lstmCase(gruBase, rng)));
  Case gruActs = lstmCase(gruBase, rng);
  gruActs.attrs.set("activations", std::vector<std::string>{"Sigmoid", "Relu"});
  EXPECT_TRUE(declined(gruActs));
  Case clip = lstmCase(base, rng);
  clip.attrs.set("clip", 3.0f);
  EXPECT_TRUE(declined(clip));
  Case forget = lstmCase(base, rng);
  forget.attrs.set("input_forget", int64_t(1));
  EXPECT_TRUE(declined(forget));
  Case peep = lstmCase(base, rng);
  peep.inputs.push_back({randomTensor(DataType::kF32, {1, 12}, rng), true});
  EXPECT_TRUE(declined(peep));
  Case runtimeW = lstmCase(base, rng);
  runtimeW.inputs[1].constant = false;
  EXPECT_TRUE(declined(runtimeW));
  Case f64 = lstmCase(base, rng);
  for (Input& in : f64.inputs)
    if (in.data.defined() && in.data.dtype() == DataType::kF32) {
      Tensor t(DataType::kF64, in.data.dims());
      for (int64_t i = 0; i < t.numel(); ++i) t.setDouble(i, in.data.getDouble(i));
      in.data = t;
    }
  EXPECT_TRUE(declined(f64));
  // Attention: f64.
  Case a64 = attentionCases()[0];
  for (Input& in : a64.inputs) {
    Tensor t(DataType::kF64, in.data.dims());
    in.data = t;
  }
  EXPECT_TRUE(declined(a64));
  // FusedElementwise: longer than the POD program holds, more inputs than it plans.
  std::vector<std::string> longChain = {"Neg 0"};
  for (int i = 0; i < 70; ++i) longChain.push_back("Neg " + std::to_string(i + 1));
  Case longEw = fusedElementwiseCases()[6];
  longEw.attrs.set("program", longChain);
  EXPECT_TRUE(declined(longEw));
  Case manyInputs = fusedElementwiseCases()[6];
  std::vector<std::string> sum = {"Add 0 1"};
  for (int i = 2; i < 20; ++i) {
    manyInputs.inputs.push_back({randomTensor(DataType::kF32, {1}, rng)});
    sum.push_back("Add " + std::to_string(18 + i) + " " + std::to_string(i));
  }
  manyInputs.attrs.set("program", sum);
  EXPECT_TRUE(declined(manyInputs));
}

// ---- timing -----------------------------------------------------------------------------

double medianMs(const std::function<void()>& f, int reps = 15) {
  f();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void bench(const std::vector<Case>& layers, const std::string& title) {
  std::printf("[ timing ] %s\n", title.c_str());
  std::vector<Built> built;
  for (const Case& c : layers) built.push_back(build(c));
  const double ref = medianMs([&] {
    for (const Built& b : built) reference(b);
  });
  std::printf("[ timing ]   reference %.3f ms\n", ref);
  for (const runtime::Kernel* k : kernelsFor(layers[0].op)) {
    if (!runtime::hostHasAll(k->requirements)) continue;
    for (int threads : {1, 2}) {
      auto ex = runtime::makeCpuExecutor(threads);
      std::vector<PreparedStep> steps;
      std::vector<std::vector<Tensor>> shapes;
      std::vector<std::unique_ptr<GuardedStep>> ready;
      for (const Built& b : built) {
        steps.push_back(prepare(*k, b, threads));
        shapes.push_back(reference(b));
      }
      for (size_t i = 0; i < built.size(); ++i)
        ready.push_back(std::make_unique<GuardedStep>(*k, steps[i], built[i], shapes[i], *ex));
      const double ms = medianMs([&] {
        for (auto& step : ready) step->run();
      });
      std::printf("[ timing ]   %-32s %d thread(s) %.3f ms (%.1fx)\n", k->name.c_str(), threads, ms, ref / ms);
    }
  }
}

TEST(NativeSequenceBench, DISABLED_Timing) {
  std::mt19937 rng(1);
  // The zoo's lstm model (tests/models/export_models.py): 2 layers, input 16, hidden 32,
  // 10 steps, batch 2; and the brief's larger one: hidden 64, 50 steps.
  bench({lstmCase({10, 2, 16, 32, "forward"}, rng), lstmCase({10, 2, 32, 32, "forward"}, rng)},
        "LSTM zoo model: 2 layers, S 10, B 2, I 16, H 32");
  bench({lstmCase({50, 1, 32, 64, "forward"}, rng), lstmCase({50, 1, 64, 64, "forward"}, rng)},
        "LSTM 2 layers, S 50, B 1, I 32, H 64");
  bench({lstmCase({50, 8, 32, 64, "bidirectional"}, rng)}, "LSTM bidirectional, S 50, B 8, I 32, H 64");
  LstmSpec gru{50, 1, 32, 64, "forward"};
  gru.op = "GRU";
  bench({lstmCase(gru, rng)}, "GRU S 50, B 1, I 32, H 64");
  Case attn = attentionCases()[0];
  {
    std::mt19937 r2(2);
    attn.inputs = {{randomTensor(DataType::kF32, {12, 128, 64}, r2)}, {randomTensor(DataType::kF32, {12, 128, 64}, r2)},
                   {randomTensor(DataType::kF32, {12, 128, 64}, r2)}};
    attn.attrs = {};
  }
  bench({attn}, "Attention [12,128,64] no mask");
  {
    // The same heads read in place from a BERT-base-like packed projection [1, 128, 3*768].
    std::mt19937 r3(3);
    Case packed = attn;
    packed.inputs = {{randomTensor(DataType::kF32, {1, 128, 3 * 768}, r3)}};
    packed.attrs.set("qkv_packed", int64_t(1));
    packed.attrs.set("num_heads", int64_t(12));
    packed.attrs.set("head_size", int64_t(64));
    bench({packed}, "Attention packed bshd [1,128,3x768], 12 heads of 64, no mask");
  }
  Case ew = fusedElementwiseCases()[0];
  ew.inputs = {{randomTensor(DataType::kF32, {8, 64, 56, 56}, rng)}, {randomTensor(DataType::kF32, {8, 64, 56, 56}, rng)}};
  ew.attrs.set("program", std::vector<std::string>{"Sigmoid 0", "Mul 0 2", "Add 3 1"});
  bench({ew}, "FusedElementwise SiLU + residual [8,64,56,56]");
  Case arith = ew;
  arith.inputs.push_back({randomTensor(DataType::kF32, {1}, rng)});
  arith.attrs.set("program", std::vector<std::string>{"Mul 0 2", "Add 3 2", "Add 4 1", "Clip 5 2 _", "Min 6 0"});
  bench({arith}, "FusedElementwise scale, shift, residual, clip, min [8,64,56,56]");
}

}  // namespace
