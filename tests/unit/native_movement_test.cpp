// The data-movement and elementwise-chain fast paths against the reference kernels: the
// tiled transposes (cpu/tactics/native_ops_transpose.cpp) next to the strided copy, and
// anvil.FusedElementwise (cpu/tactics/native_sequence_elementwise.cpp) with broadcast
// inputs of every kind (per channel, row, column, scalar, on both sides, across chunk
// ends). Every kernel of the op that supports a case (and whose ISA the host has) runs
// through the contract on 1, 2 and 3 executor threads with its output between sentinel
// guards and a guarded workspace; outputs must equal the reference's byte for byte (the
// inputs carry NaNs with payloads, which copies and chains must keep) and agree across
// thread counts.
// NativeMovementTiming.DISABLED_* print per-kernel times on convnext_tiny's shapes.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cpu/reference.h"
#include "native_kernel_test_util.h"
#include "op_test_util.h"
#include "runtime/executor.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeOpKernels(Kernels& k);       // cpu/tactics/native_ops.cpp
void registerNativeSequenceKernels(Kernels& k);  // cpu/tactics/native_sequence.cpp
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;
using anvil::testing::In;

namespace {

using Dims = std::vector<int64_t>;
using anvil::testing::nk::Aligned;

const runtime::Kernels& registry() {
  return anvil::testing::nk::registryOf<&runtime::registerNativeOpKernels, &runtime::registerNativeSequenceKernels>();
}

std::vector<const runtime::Kernel*> kernelsOf(const std::string& op) {
  std::vector<const runtime::Kernel*> out;
  for (const runtime::Kernel* k : registry().all())
    if (k->op == op && k->name != "ref") out.push_back(k);
  return out;
}

// Random bytes for integers and bools (0/1); floats in [-3, 3] with every 13th a NaN whose
// payload a copy must keep and every 17th an infinity.
Tensor randomTensor(DataType t, const Dims& d, std::mt19937& rng) {
  Tensor x(t, d);
  std::uniform_real_distribution<float> u(-3.f, 3.f);
  for (int64_t i = 0; i < x.numel(); ++i) {
    switch (t) {
      case DataType::kF32: {
        float v = u(rng);
        if (i % 13 == 5) {
          const uint32_t bits = 0x7fc00000u | uint32_t(i & 0xffff);
          std::memcpy(&v, &bits, 4);
        }
        if (i % 17 == 9) v = (i & 1) ? INFINITY : -INFINITY;
        x.data<float>()[i] = v;
        break;
      }
      case DataType::kBool: x.data<bool>()[i] = (rng() & 1) != 0; break;
      default: {
        unsigned char* p = static_cast<unsigned char*>(x.mutableRaw()) + i * int64_t(x.nbytes() / size_t(x.numel()));
        for (size_t b = 0; b < x.nbytes() / size_t(x.numel()); ++b) p[b] = (unsigned char)(rng());
      }
    }
  }
  return x;
}

struct Node {
  std::unique_ptr<ir::Graph> graph;
  const ir::Node* node = nullptr;
  std::vector<Tensor> ins;
};

Node oneNode(const std::string& op, const std::string& domain, std::vector<Tensor> ins, const ir::Attributes& attrs) {
  Node n;
  n.graph = std::make_unique<ir::Graph>();
  std::vector<ir::Value*> vs;
  for (size_t i = 0; i < ins.size(); ++i) {
    ir::Value* v = n.graph->addValue("x" + std::to_string(i), ins[i].type());
    n.graph->addInput(v);
    vs.push_back(v);
  }
  ir::Node* node = n.graph->addNode(op, domain, "n0", vs, {"y0"});
  node->attrs() = attrs;
  n.graph->addOutput(node->output(0));
  ir::inferShapes(*n.graph);
  n.node = node;
  n.ins = std::move(ins);
  return n;
}

runtime::TensorView viewOf(const Tensor& t) {
  runtime::TensorView v;
  v.data = const_cast<void*>(t.raw());
  v.dtype = t.dtype();
  v.setExtents(t.dims());
  return v;
}

std::vector<ir::TensorType> typesOf(const std::vector<Tensor>& ins) {
  std::vector<ir::TensorType> t;
  for (const Tensor& x : ins) t.push_back(x.type());
  return t;
}

constexpr size_t kGuard = 67;
constexpr unsigned char kMark = 0xA5;

struct Result {
  std::vector<unsigned char> out;
  bool guardsIntact = true, workspaceIntact = true;
};

// A kernel prepared for `prepTypes` (the node's by default) and run on `runIns`.
class Runner {
 public:
  Runner(const runtime::Kernel& k, const ir::Node& node, const std::vector<ir::TensorType>& prepTypes, int threads)
      : k_(k), node_(node) {
    runtime::PrepareInfo info;
    info.node = &node;
    info.minTypes = info.optTypes = info.maxTypes = prepTypes;
    info.maxOutputTypes = {node.output(0)->type()};
    info.constants.assign(prepTypes.size(), nullptr);
    info.threads = threads;
    if (k.prepare) k.prepare(info, &prep_);
    params_ = std::make_unique<Aligned>(std::max<size_t>(1, prep_.params.size()));
    std::memcpy(params_->p, prep_.params.data(), prep_.params.size());
    ws_ = std::make_unique<Aligned>(size_t(prep_.workspaceBytes));
  }

  // usPerRun: the mean of `reps` further runs; with `evict`, it runs before each of them,
  // untimed (as in a model, where other layers' data pushed this one's out of cache).
  Result run(const std::vector<Tensor>& ins, const Dims& outDims, DataType outType, runtime::Executor& ex,
             double* usPerRun = nullptr, int reps = 0, void (*evict)() = nullptr) {
    std::vector<runtime::TensorView> in;
    for (const Tensor& t : ins) in.push_back(viewOf(t));
    const size_t bytes = ir::storageBytes(outType, ir::numelOf(outDims));
    std::vector<unsigned char> buf(bytes + 2 * kGuard, kMark);
    runtime::TensorView out;
    out.dtype = outType;
    out.setExtents(outDims);
    out.data = buf.data() + kGuard;  // odd offset: no kernel may assume alignment
    runtime::StepArgs a;
    a.node = &node_;
    a.inputs = in.data();
    a.numInputs = int(in.size());
    a.outputs = &out;
    a.numOutputs = 1;
    a.params = {params_->p, prep_.params.size()};
    a.workspace = ws_->p;
    a.workspaceBytes = size_t(prep_.workspaceBytes);
    a.executor = &ex;
    k_.run(a);
    if (usPerRun && !evict) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < reps; ++i) k_.run(a);
      *usPerRun = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / reps;
    } else if (usPerRun) {
      double total = 0;
      for (int i = 0; i < reps; ++i) {
        evict();
        const auto t0 = std::chrono::steady_clock::now();
        k_.run(a);
        total += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      }
      *usPerRun = total / reps;
    }
    Result r;
    for (size_t i = 0; i < kGuard; ++i)
      if (buf[i] != kMark || buf[buf.size() - 1 - i] != kMark) r.guardsIntact = false;
    r.workspaceIntact = ws_->tailIntact();
    r.out.assign(buf.begin() + kGuard, buf.end() - kGuard);
    return r;
  }

 private:
  const runtime::Kernel& k_;
  const ir::Node& node_;
  runtime::Prepared prep_;
  std::unique_ptr<Aligned> params_, ws_;
};

Tensor reference(const Node& n) {
  std::vector<const Tensor*> p;
  for (const Tensor& t : n.ins) p.push_back(&t);
  return cpu::Interpreter::runNode(*n.node, p)[0];
}

// Every supporting kernel of the node's op equals the reference byte for byte on 1, 2 and
// 3 threads; returns the names of those that ran.
std::vector<std::string> checkAll(const Node& n) {
  const Tensor want = reference(n);
  std::vector<std::string> ran;
  for (const runtime::Kernel* k : kernelsOf(n.node->op())) {
    if (k->domain != n.node->domain() || (k->supports && !k->supports(*n.node, typesOf(n.ins)))) continue;
    if (!runtime::hostHasAll(k->requirements)) {
      // Said once per kernel: an AVX2-only CI machine must show what it did not run.
      static std::set<std::string> said;
      if (said.insert(k->name).second)
        std::printf("[ skipped ] %s: %s\n", k->name.c_str(), anvil::testing::nk::skipReason(*k).c_str());
      continue;
    }
    SCOPED_TRACE(k->name);
    std::vector<unsigned char> first;
    for (int threads : {1, 2, 3}) {
      auto ex = runtime::makeCpuExecutor(threads);
      Runner r(*k, *n.node, typesOf(n.ins), threads);
      const Result got = r.run(n.ins, want.dims(), want.dtype(), *ex);
      EXPECT_TRUE(got.guardsIntact) << "wrote outside its output (" << threads << " threads)";
      EXPECT_TRUE(got.workspaceIntact) << "wrote outside its workspace (" << threads << " threads)";
      EXPECT_EQ(got.out.size(), want.nbytes());
      if (got.out.size() != want.nbytes()) continue;
      EXPECT_EQ(0, std::memcmp(got.out.data(), want.raw(), want.nbytes()))
          << "differs from the reference (" << threads << " threads)";
      if (threads == 1) first = got.out;
      else EXPECT_EQ(first, got.out) << "differs between 1 and " << threads << " threads";
    }
    ran.push_back(k->name);
  }
  return ran;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string dimsName(const Dims& d) {
  std::string s;
  for (int64_t v : d) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s.empty() ? "scalar" : s;
}

// ---------------------------------------------------------------------------------------
// Transpose

struct TransposeCase {
  Dims dims;
  Dims perm;  // empty: the default (reversed axes)
  DataType dtype = DataType::kF32;
  bool tiled = false;  // the tiled kernels must support it
};

void PrintTo(const TransposeCase& c, std::ostream* os) {
  *os << dimsName(c.dims) << " perm " << dimsName(c.perm) << " " << ir::dtypeName(c.dtype);
}

std::vector<TransposeCase> transposeCases() {
  std::vector<TransposeCase> cs;
  // Rank 2: edges below, at and above the 8 and 16 tiles and the 64 block.
  for (int64_t r : {1, 7, 8, 16, 17, 63, 65})
    for (int64_t c : {1, 7, 9, 16, 33, 64, 129})
      cs.push_back({{r, c}, {1, 0}, DataType::kF32, r > 1 && c > 1});
  // NCHW <-> NHWC (convnext's block ends), batches, odd planes.
  cs.push_back({{1, 96, 56, 56}, {0, 2, 3, 1}, DataType::kF32, true});
  cs.push_back({{1, 56, 56, 96}, {0, 3, 1, 2}, DataType::kF32, true});
  cs.push_back({{2, 17, 7, 9}, {0, 2, 3, 1}, DataType::kF32, true});
  cs.push_back({{3, 5, 11, 19}, {0, 3, 1, 2}, DataType::kF32, true});
  cs.push_back({{2, 3, 1, 1}, {0, 2, 3, 1}, DataType::kF32, false});  // merges to a copy
  cs.push_back({{1, 7, 1, 63}, {0, 2, 3, 1}, DataType::kF32, true});   // a unit axis dropped
  // Heads: [B,S,H,D] -> [B,H,S,D] keeps D innermost (strided copy only); K^T is a plane.
  cs.push_back({{2, 17, 3, 16}, {0, 2, 1, 3}, DataType::kF32, false});
  cs.push_back({{2, 17, 3, 16}, {0, 2, 3, 1}, DataType::kF32, true});
  cs.push_back({{1, 197, 6, 64}, {0, 2, 3, 1}, DataType::kF32, true});
  // Rank 3 and 5, several batch axes, default perm.
  cs.push_back({{7, 17, 5}, {2, 0, 1}, DataType::kF32, true});
  cs.push_back({{7, 17, 5}, {1, 2, 0}, DataType::kF32, true});
  cs.push_back({{7, 17, 5}, {}, DataType::kF32, true});
  cs.push_back({{3, 5, 7, 2, 9}, {4, 2, 0, 3, 1}, DataType::kF32, true});
  cs.push_back({{2, 3, 4, 5, 6}, {0, 1, 4, 2, 3}, DataType::kF32, true});
  cs.push_back({{2, 3, 4, 5, 6}, {1, 0, 3, 2, 4}, DataType::kF32, false});
  cs.push_back({{63, 1031}, {1, 0}, DataType::kF32, true});
  // Other element types: 4-byte integers take the tiled kernels, others the strided copy.
  cs.push_back({{3, 17, 33}, {0, 2, 1}, DataType::kI32, true});
  cs.push_back({{5, 17, 9}, {2, 1, 0}, DataType::kI64, false});
  cs.push_back({{5, 17, 9}, {1, 2, 0}, DataType::kU8, false});
  cs.push_back({{4, 9, 7}, {2, 0, 1}, DataType::kBool, false});
  return cs;
}

class NativeMovementTranspose : public ::testing::TestWithParam<TransposeCase> {};

TEST_P(NativeMovementTranspose, MatchesReferenceGuardedAndThreadInvariant) {
  const TransposeCase& c = GetParam();
  std::mt19937 rng(7);
  ir::Attributes at;
  if (!c.perm.empty()) at.set("perm", c.perm);
  const Node n = oneNode("Transpose", "", {randomTensor(c.dtype, c.dims, rng)}, at);
  const std::vector<std::string> ran = checkAll(n);
  EXPECT_TRUE(contains(ran, "x_transpose_strided"));
  const bool avx512 = runtime::hostHasAll({"avx512f"}), avx2 = runtime::hostHasAll({"avx2"});
  if (avx2) {
    EXPECT_EQ(contains(ran, "x32_transpose_tiled__avx2"), c.tiled);
  }
  if (avx512) {
    EXPECT_EQ(contains(ran, "x32_transpose_tiled__avx512"), c.tiled);
  }
}

INSTANTIATE_TEST_SUITE_P(Native, NativeMovementTranspose, ::testing::ValuesIn(transposeCases()),
                         [](const ::testing::TestParamInfo<TransposeCase>& i) {
                           std::string s = dimsName(i.param.dims) + "_perm" + dimsName(i.param.perm) + "_" +
                                           ir::dtypeName(i.param.dtype);
                           for (char& ch : s)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return s + "_" + std::to_string(i.index);
                         });

// Prepared for extents that form planes, run on extents that merge to a plain copy (unit
// H and W) and to other planes: the kernel plans from the views at run time.
TEST(NativeMovementTranspose, RunsOtherExtentsThanPreparedFor) {
  std::mt19937 rng(11);
  ir::Attributes at;
  at.set("perm", Dims{0, 2, 3, 1});
  const Node big = oneNode("Transpose", "", {randomTensor(DataType::kF32, {2, 8, 9, 10}, rng)}, at);
  for (const Dims& d : {Dims{2, 8, 1, 1}, Dims{1, 8, 3, 1}, Dims{2, 5, 3, 7}}) {
    const Node small = oneNode("Transpose", "", {randomTensor(DataType::kF32, d, rng)}, at);
    const Tensor want = reference(small);
    for (const runtime::Kernel* k : kernelsOf("Transpose")) {
      if (!runtime::hostHasAll(k->requirements) || (k->supports && !k->supports(*big.node, typesOf(big.ins)))) continue;
      SCOPED_TRACE(k->name + " on " + dimsName(d));
      auto ex = runtime::makeCpuExecutor(2);
      Runner r(*k, *big.node, typesOf(big.ins), 2);
      const Result got = r.run(small.ins, want.dims(), want.dtype(), *ex);
      EXPECT_TRUE(got.guardsIntact);
      EXPECT_EQ(0, std::memcmp(got.out.data(), want.raw(), want.nbytes()));
    }
  }
}

// ---------------------------------------------------------------------------------------
// anvil.FusedElementwise with broadcast inputs

struct ChainCase {
  std::string name;
  std::vector<Dims> ins;
  std::vector<std::string> program;
};

void PrintTo(const ChainCase& c, std::ostream* os) { *os << c.name; }

std::vector<ChainCase> chainCases() {
  const std::vector<std::string> scaleResidual = {"Mul 0 1", "Add 3 2"};  // x * gamma + r
  std::vector<ChainCase> cs;
  // convnext's layer scale: per-channel gamma [C,1,1] over [1,C,H,W], planes around the chunk.
  cs.push_back({"layer_scale_convnext", {{1, 96, 56, 56}, {96, 1, 1}, {1, 96, 56, 56}}, scaleResidual});
  cs.push_back({"layer_scale_plane_7", {{2, 5, 7, 1}, {5, 1, 1}, {2, 5, 7, 1}}, scaleResidual});
  cs.push_back({"layer_scale_plane_511", {{1, 3, 511}, {3, 1}, {1, 3, 511}}, scaleResidual});
  cs.push_back({"layer_scale_plane_513", {{2, 3, 513}, {3, 1}, {2, 3, 513}}, scaleResidual});
  // SE gate [N,C,1,1] over [N,C,H,W], and the gate on the left.
  cs.push_back({"se_gate", {{2, 17, 9, 7}, {2, 17, 1, 1}}, {"Sigmoid 1", "Mul 0 2"}});
  cs.push_back({"se_gate_left", {{1, 63, 1, 1}, {1, 63, 17, 3}}, {"Mul 0 1", "Relu 2"}});
  // Uniform registers: a gate's Sigmoid where chunks lie inside a plane (evaluated once a
  // chunk), scalar-only subexpressions, a last instruction over uniform operands only
  // (the output filled), chunks straddling planes of 600.
  cs.push_back({"se_gate_plane_1600", {{1, 8, 40, 40}, {1, 8, 1, 1}}, {"Sigmoid 1", "Mul 0 2"}});
  cs.push_back({"scalar_subexpression", {{1}, {1}, {7, 300}}, {"Add 0 1", "Exp 3", "Mul 2 4", "Sub 5 3"}});
  cs.push_back({"uniform_last", {{5, 600}, {5, 1}}, {"Sigmoid 1", "Mul 2 2"}});
  cs.push_back({"uniform_clip_bounds", {{3, 700}, {1}, {3, 1}}, {"Neg 1", "Clip 0 3 2"}});
  // Row vectors (bias over the last axis), narrower and wider than a chunk.
  cs.push_back({"row_17", {{63, 17}, {17}}, {"Add 0 1", "Relu 2"}});
  cs.push_back({"row_700", {{5, 700}, {700}, {1}}, {"Add 0 1", "Mul 3 2"}});
  cs.push_back({"row_384_vit", {{1, 197, 384}, {384}, {1, 197, 384}}, {"Mul 0 1", "Add 3 2"}});
  // Columns, outer products, both sides broadcast, middle axes.
  cs.push_back({"column", {{63, 17}, {63, 1}}, {"Sub 0 1", "Abs 2"}});
  cs.push_back({"outer", {{7, 1}, {1, 129}}, {"Mul 0 1", "Max 2 0"}});
  cs.push_back({"both_sides", {{3, 1, 200}, {1, 5, 1}, {1}}, {"Add 0 1", "Min 3 2", "Div 4 1"}});
  cs.push_back({"middle_axis", {{4, 7, 33, 5}, {7, 1, 5}, {4, 1, 33, 1}}, {"Mul 0 1", "Sub 3 2", "Clip 4 1 _"}});
  cs.push_back({"scalar_and_channel", {{1}, {2, 8, 1}, {2, 8, 65}}, {"Mul 2 0", "Add 3 1", "Neg 4"}});
  cs.push_back({"rank5", {{2, 3, 1, 4, 5}, {1, 3, 7, 1, 5}}, {"Add 0 1", "Sqrt 2"}});
  cs.push_back({"one_element", {{1, 1}, {1}}, {"Mul 0 1"}});
  // NaNs through Max/Min/Relu/Clip keep the reference's choices.
  cs.push_back({"nan_select", {{9, 70}, {70}, {9, 1}}, {"Max 0 1", "Min 3 2", "Relu 4", "PRelu 5 1"}});
  return cs;
}

class NativeMovementChain : public ::testing::TestWithParam<ChainCase> {};

TEST_P(NativeMovementChain, MatchesReferenceGuardedAndThreadInvariant) {
  const ChainCase& c = GetParam();
  std::mt19937 rng(5);
  std::vector<Tensor> ins;
  for (const Dims& d : c.ins) ins.push_back(randomTensor(DataType::kF32, d, rng));
  ir::Attributes at;
  at.set("program", c.program);
  const Node n = oneNode("FusedElementwise", "anvil", std::move(ins), at);
  const std::vector<std::string> ran = checkAll(n);
  EXPECT_TRUE(contains(ran, "f32_fused_elementwise_chunked"));
  if (runtime::hostHasAll({"avx2", "fma"})) {
    EXPECT_TRUE(contains(ran, "f32_fused_elementwise_chunked__avx2"));
  }
}

INSTANTIATE_TEST_SUITE_P(Native, NativeMovementChain, ::testing::ValuesIn(chainCases()),
                         [](const ::testing::TestParamInfo<ChainCase>& i) { return i.param.name; });

// ---------------------------------------------------------------------------------------
// Timing (disabled: run by hand with --gtest_also_run_disabled_tests)

// Writes 16 MB: more than this machine's L2 (2 MB a core), so a step's data comes from L3.
void evictCaches() {
  static std::vector<char> junk(size_t(16) << 20);
  static char v = 0;
  std::memset(junk.data(), ++v, junk.size());
}

void timeAll(const Node& n, const std::string& what, double mbytes) {
  const Tensor want = reference(n);
  for (int threads : {1, 2}) {
    auto ex = runtime::makeCpuExecutor(threads);
    for (const runtime::Kernel* k : kernelsOf(n.node->op())) {
      if (k->domain != n.node->domain() || (k->supports && !k->supports(*n.node, typesOf(n.ins)))) continue;
      if (!runtime::hostHasAll(k->requirements)) continue;
      Runner r(*k, *n.node, typesOf(n.ins), threads);
      double best = 1e30, cold = 1e30;
      for (int rep = 0; rep < 5; ++rep) {
        double us = 0;
        r.run(n.ins, want.dims(), want.dtype(), *ex, &us, 20);
        best = std::min(best, us);
        r.run(n.ins, want.dims(), want.dtype(), *ex, &us, 5, evictCaches);
        cold = std::min(cold, us);
      }
      std::printf("%-40s %d thr  %-38s %7.1f us %5.1f GB/s  cold %7.1f us %5.1f GB/s\n", what.c_str(), threads,
                  k->name.c_str(), best, mbytes * 1e-3 / (best * 1e-6), cold, mbytes * 1e-3 / (cold * 1e-6));
    }
  }
}

TEST(NativeMovementTiming, DISABLED_Transpose) {
  std::mt19937 rng(1);
  struct T {
    Dims d, perm;
  };
  for (const T& t : {T{{1, 96, 56, 56}, {0, 2, 3, 1}}, T{{1, 56, 56, 96}, {0, 3, 1, 2}},
                     T{{1, 192, 28, 28}, {0, 2, 3, 1}}, T{{1, 28, 28, 192}, {0, 3, 1, 2}},
                     T{{1, 384, 14, 14}, {0, 2, 3, 1}}, T{{1, 14, 14, 384}, {0, 3, 1, 2}},
                     T{{1, 768, 7, 7}, {0, 2, 3, 1}}, T{{1, 7, 7, 768}, {0, 3, 1, 2}}}) {
    ir::Attributes at;
    at.set("perm", t.perm);
    const Node n = oneNode("Transpose", "", {randomTensor(DataType::kF32, t.d, rng)}, at);
    // Bytes moved: read once, written once.
    timeAll(n, "Transpose " + dimsName(t.d) + " perm " + dimsName(t.perm),
            2.0 * double(ir::numelOf(t.d)) * 4 / 1e6);
  }
}

TEST(NativeMovementTiming, DISABLED_Chain) {
  std::mt19937 rng(1);
  for (const ChainCase& c :
       {ChainCase{"layer scale + residual [1,96,56,56]", {{1, 96, 56, 56}, {96, 1, 1}, {1, 96, 56, 56}},
                  {"Mul 0 1", "Add 3 2"}},
        ChainCase{"layer scale + residual [1,384,14,14]", {{1, 384, 14, 14}, {384, 1, 1}, {1, 384, 14, 14}},
                  {"Mul 0 1", "Add 3 2"}},
        ChainCase{"SE gate [1,96,56,56]", {{1, 96, 56, 56}, {1, 96, 1, 1}}, {"Sigmoid 1", "Mul 0 2"}},
        ChainCase{"bias + residual [1,197,384]", {{1, 197, 384}, {384}, {1, 197, 384}}, {"Add 0 1", "Add 3 2"}}}) {
    std::vector<Tensor> ins;
    double bytes = 0;
    for (const Dims& d : c.ins) {
      ins.push_back(randomTensor(DataType::kF32, d, rng));
      bytes += double(ir::numelOf(d)) * 4;
    }
    bytes += double(ir::numelOf(c.ins[0].size() >= c.ins[1].size() ? c.ins[0] : c.ins[1])) * 4;
    ir::Attributes at;
    at.set("program", c.program);
    const Node n = oneNode("FusedElementwise", "anvil", std::move(ins), at);
    timeAll(n, c.name, bytes / 1e6);
  }
}

}  // namespace
