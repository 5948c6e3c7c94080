// The blocked-layout kernels of cpu/tactics/native_nchwc_ops.cpp (anvil.Reorder, Add / Sub /
// Mul / Div, the unary activations, GlobalAveragePool / GlobalMaxPool, Concat) against the
// reference kernel. The shared harness (native_kernel_test_util.h) builds the one-node graph,
// its seeded inputs and the reference output on plain tensors; this file sets the NCHW<b>c
// layout on the node's values and BlockedStep (nchwc_test_util.h) converts the inputs to
// blocked storage (padding lanes zero), runs the kernel on the padded buffers with the output
// between sentinel guards, and converts back; this file compares, checks that the output's
// padding lanes are exactly +0.0, and that 1 and 2 executor threads agree bitwise. Channels {1, 3, 8, 13, 16, 24, 40},
// batches 1 and 2, planes 1x1, 7x7 and odd / even others.
// NativeNchwcOps.ReorderTiming prints the Reorder's bandwidth (not asserted);
// NativeNchwcOps.DISABLED_GapTiming times the blocked GlobalAveragePool against the plain one.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cpu/tactics/nchwc.h"
#include "native_kernel_test_util.h"
#include "nchwc_test_util.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeNchwcOpKernels(Kernels& k);  // cpu/tactics/native_nchwc_ops.cpp
namespace nops {
void registerPool(Kernels& k);         // cpu/tactics/native_ops_pool.cpp (timing baselines)
void registerElementwise(Kernels& k);  // cpu/tactics/native_ops_elementwise.cpp
}
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

using namespace anvil::testing::nk;

runtime::Kernels& registry() {
  return anvil::testing::nk::registryOf<&runtime::registerNativeNchwcOpKernels, &runtime::nops::registerPool,
                                        &runtime::nops::registerElementwise>();
}

const runtime::Kernel* kernelNamed(const std::string& op, const std::string& domain, int block,
                                   const std::string& family) {
  const std::string name = family + "_nchw" + std::to_string(block) + "c__" + (block == 16 ? "avx512" : "avx2");
  return registry().find(Device::kCPU, op, domain, name);
}

// Runs kernel k, prepared for `threads`, on the built node: each input handed over as `how`
// says, or as given[i] where that is not empty (another kernel's output); the output of
// logical dims outDims blocked or row-major (out).
BlockedResult runBlocked(const runtime::Kernel& k, const Built& b, const std::vector<Handover>& how,
                         const Dims& outDims, int block, Handover out, int threads,
                         const std::vector<std::vector<float>>& given = {}) {
  const PreparedKernel pk = prepare(k, b, threads);
  BlockedStep step(k, pk, b, how, outDims, block, out);
  for (size_t i = 0; i < given.size(); ++i)
    if (!given[i].empty()) step.handOver(i, given[i]);
  auto ex = runtime::makeCpuExecutor(threads);
  step.run(*ex);
  return step.result();
}

bool skipFor(int block) { return !runtime::hostHasAll(block == 16 ? std::vector<std::string>{"avx512f"} : std::vector<std::string>{"avx2", "fma"}); }
#define SKIP_IF_LACKING(block)                                                        \
  if (skipFor(block)) {                                                               \
    if ((block) == 16) GTEST_SKIP() << "skipped: no AVX-512";                         \
    GTEST_SKIP() << "skipped: no AVX2";                                               \
  }

// A blocked node: every non-constant rank-4 input and the output get NCHW<b>c; runs the
// kernel with 1 and 2 threads and checks it against the reference.
// exactMean (GlobalAveragePool): the input gets a nonzero mean and the output must be within
// 1.2e-7 relative of the exact mean (the bound native_pool_dw_test holds the plain kernels to;
// the reference's left-to-right float sum is further off than that).
void checkBlocked(const Case& c, int block, const std::string& family, bool expectSupported = true,
                  bool exactMean = false) {
  Built b = build(c, 7);
  if (exactMean) {
    float* xv = b.tensors[0].data<float>();
    for (int64_t i = 0; i < b.tensors[0].numel(); ++i) xv[i] = xv[i] * 3.0f + 0.25f;
  }
  const runtime::Kernel* k = kernelNamed(c.op, c.domain, block, family);
  ASSERT_NE(k, nullptr) << family << " " << c.op;
  ir::Node* node = const_cast<ir::Node*>(b.node);
  for (size_t i = 0; i < node->numInputs(); ++i) {
    ir::Value* v = node->input(i);
    if (v && !v->isInitializer() && b.tensors[i].rank() == 4) v->setLayout(ir::Layout::nchwc(block));
  }
  node->output(0)->setLayout(ir::Layout::nchwc(block));
  const bool ok = k->supports(*b.node, b.types());
  ASSERT_EQ(ok, expectSupported) << k->name << " on " << c.name;
  if (!ok) return;
  const Tensor want = reference(b);
  std::vector<Handover> how;
  for (size_t i = 0; i < b.tensors.size(); ++i) {
    const ir::Value* v = node->input(i);
    how.push_back(v && cpu::nchwc::blockOf(v) == block ? Handover::kBlocked : Handover::kRowMajor);
  }
  const Dims od = want.dims();
  const int64_t floats = cpu::nchwc::storageFloats(od[0], od[1], od[2], od[3], block);
  const BlockedResult r1 = runBlocked(*k, b, how, od, block, Handover::kBlocked, 1);
  const BlockedResult r2 = runBlocked(*k, b, how, od, block, Handover::kBlocked, 2);
  EXPECT_TRUE(r1.guardsIntact && r1.workspaceIntact && r2.guardsIntact && r2.workspaceIntact)
      << k->name << " on " << c.name << ": wrote outside its output";
  EXPECT_EQ(std::memcmp(r1.storage.data(), r2.storage.data(), size_t(floats) * 4), 0)
      << k->name << " on " << c.name << ": 1 and 2 threads differ";
  EXPECT_TRUE(r1.paddingZero) << k->name << " on " << c.name << ": padding lanes not zero";
  const std::vector<float>& got = r1.out;
  if (!exactMean) {
    EXPECT_EQ(compare(got, want), "") << k->name << " on " << c.name;
    return;
  }
  const int64_t planes = od[0] * od[1], n = b.tensors[0].numel() / planes;
  const float* xv = b.tensors[0].data<float>();
  for (int64_t p = 0; p < planes; ++p) {
    long double exact = 0;
    for (int64_t i = 0; i < n; ++i) exact += xv[p * n + i];
    exact /= n;
    ASSERT_NEAR(double(got[size_t(p)]), double(exact), std::fabs(double(exact)) * 1.2e-7 + 1e-30)
        << k->name << " on " << c.name << ", plane " << p;
  }
}

std::string shapeName(const Dims& d) {
  std::string s;
  for (int64_t e : d) s += (s.empty() ? "" : "x") + std::to_string(e);
  return s;
}

const int64_t kChannels[] = {1, 3, 8, 13, 16, 24, 40};
const Dims kPlanes[] = {{1, 1}, {7, 7}, {4, 6}, {5, 3}, {17, 2}};

// ---- Reorder -------------------------------------------------------------------------------

class NativeNchwcOps : public ::testing::TestWithParam<int> {};

TEST_P(NativeNchwcOps, ReorderBothWaysAndRoundTrip) {
  const int block = GetParam();
  SKIP_IF_LACKING(block);
  const runtime::Kernel* k = kernelNamed("Reorder", "anvil", block, "x32_reorder");
  ASSERT_NE(k, nullptr);
  const std::string blockedName = "NCHW" + std::to_string(block) + "c";
  std::vector<Dims> shapes;
  for (int64_t n : {1, 2})
    for (int64_t c : kChannels)
      for (const Dims& p : kPlanes) shapes.push_back({n, c, p[0], p[1]});
  shapes.push_back({1, 40, 35, 37});  // several strips of tiles, a column tail
  shapes.push_back({1, 3, 64, 80});   // the stem's form: a partial block only
  for (const Dims& d : shapes) {
    ir::Attributes toB, toP;
    toB.set("to", blockedName);
    toP.set("to", std::string("plain"));
    // plain -> blocked
    Built b = build({"r", "Reorder", "anvil", {d}, {false}, toB}, 3);
    const_cast<ir::Node*>(b.node)->output(0)->setLayout(ir::Layout::nchwc(block));
    ASSERT_TRUE(k->supports(*b.node, b.types())) << shapeName(d);
    const int64_t floats = cpu::nchwc::storageFloats(d[0], d[1], d[2], d[3], block);
    const BlockedResult r1 = runBlocked(*k, b, {Handover::kRowMajor}, d, block, Handover::kBlocked, 1);
    const BlockedResult r2 = runBlocked(*k, b, {Handover::kRowMajor}, d, block, Handover::kBlocked, 2);
    const std::vector<float> expect = toBlocked(b.tensors[0].data<float>(), d, block);
    EXPECT_TRUE(r1.guardsIntact && r1.workspaceIntact && r2.guardsIntact && r2.workspaceIntact) << shapeName(d);
    EXPECT_EQ(std::memcmp(r1.storage.data(), expect.data(), size_t(floats) * 4), 0) << "to blocked " << shapeName(d);
    EXPECT_EQ(std::memcmp(r2.storage.data(), expect.data(), size_t(floats) * 4), 0) << "to blocked, 2 threads " << shapeName(d);
    // blocked -> plain, from the kernel's own output: the round trip gives the input back.
    Built p = build({"r", "Reorder", "anvil", {d}, {false}, toP}, 3);
    const_cast<ir::Node*>(p.node)->input(0)->setLayout(ir::Layout::nchwc(block));
    ASSERT_TRUE(k->supports(*p.node, p.types())) << shapeName(d);
    const int64_t plainFloats = d[0] * d[1] * d[2] * d[3];
    for (int threads : {1, 2}) {
      const BlockedResult back =
          runBlocked(*k, p, {Handover::kRowMajor}, d, block, Handover::kRowMajor, threads, {r1.storage});
      EXPECT_TRUE(back.guardsIntact && back.workspaceIntact) << shapeName(d);
      EXPECT_EQ(std::memcmp(back.storage.data(), b.tensors[0].data<float>(), size_t(plainFloats) * 4), 0)
          << "round trip " << shapeName(d) << " threads " << threads;
    }
  }
}

TEST_P(NativeNchwcOps, ReorderRefusesOtherLayouts) {
  const int block = GetParam();
  const runtime::Kernel* k = kernelNamed("Reorder", "anvil", block, "x32_reorder");
  ASSERT_NE(k, nullptr);
  const int other = block == 16 ? 8 : 16;
  ir::Attributes to;
  to.set("to", "NCHW" + std::to_string(other) + "c");
  Built b = build({"r", "Reorder", "anvil", {Dims{1, 8, 3, 3}}, {false}, to}, 3);
  const_cast<ir::Node*>(b.node)->output(0)->setLayout(ir::Layout::nchwc(other));
  EXPECT_FALSE(k->supports(*b.node, b.types()));
  // plain -> plain (an unblocked output) is not this kernel's either.
  ir::Attributes toP;
  toP.set("to", std::string("plain"));
  Built p = build({"r", "Reorder", "anvil", {Dims{1, 8, 3, 3}}, {false}, toP}, 3);
  EXPECT_FALSE(k->supports(*p.node, p.types()));
}

// ---- elementwise ---------------------------------------------------------------------------

TEST_P(NativeNchwcOps, BinaryForms) {
  const int block = GetParam();
  SKIP_IF_LACKING(block);
  for (const char* op : {"Add", "Sub", "Mul", "Div"})
    for (int64_t n : {1, 2})
      for (int64_t c : kChannels)
        for (const Dims& p : kPlanes) {
          const Dims full{n, c, p[0], p[1]}, chan{n, c, 1, 1};
          const std::string s = std::string(op) + "_" + shapeName(full);
          checkBlocked({s + "_full", op, "", {full, full}, {false, false}}, block, "f32_binary");
          checkBlocked({s + "_se", op, "", {full, chan}, {false, false}}, block, "f32_binary");
          checkBlocked({s + "_se_first", op, "", {chan, full}, {false, false}}, block, "f32_binary");
          checkBlocked({s + "_const_chan", op, "", {full, Dims{1, c, 1, 1}}, {false, true}}, block, "f32_binary");
          checkBlocked({s + "_const_chan3", op, "", {Dims{c, 1, 1}, full}, {true, false}}, block, "f32_binary");
          checkBlocked({s + "_const_scalar", op, "", {full, Dims{}}, {false, true}}, block, "f32_binary");
          checkBlocked({s + "_const_one", op, "", {Dims{1}, full}, {true, false}}, block, "f32_binary");
          if (n == 2) checkBlocked({s + "_se_n1", op, "", {full, Dims{1, c, 1, 1}}, {false, false}}, block, "f32_binary");
        }
}

TEST_P(NativeNchwcOps, BinaryRefusesOtherBroadcasts) {
  const int block = GetParam();
  const Dims full{1, 13, 5, 4};
  // A rank-1 [C] constant broadcasts along W, a [1, 1, H, W] value along channels.
  checkBlocked({"w", "Add", "", {full, Dims{4}}, {false, true}}, block, "f32_binary", false);
  checkBlocked({"hw", "Mul", "", {full, Dims{1, 1, 5, 4}}, {false, false}}, block, "f32_binary", false);
  checkBlocked({"hwc", "Mul", "", {full, Dims{1, 13, 5, 4}}, {false, true}}, block, "f32_binary", false);
}

TEST_P(NativeNchwcOps, Unary) {
  const int block = GetParam();
  SKIP_IF_LACKING(block);
  ir::Attributes hs;
  hs.set("alpha", 0.3f);
  hs.set("beta", 0.4f);
  const std::vector<std::pair<std::string, ir::Attributes>> ops = {
      {"Relu", {}}, {"Sigmoid", {}}, {"Tanh", {}}, {"HardSigmoid", {}}, {"HardSigmoid", hs}, {"HardSwish", {}}};
  for (int64_t n : {1, 2})
    for (int64_t c : kChannels)
      for (const Dims& p : kPlanes) {
        const Dims full{n, c, p[0], p[1]};
        for (const auto& [op, at] : ops) checkBlocked({op + "_" + shapeName(full), op, "", {full}, {false}, at}, block, "f32_unary");
        // Clip: both bounds, either, none (the bounds are random constants in [-1, 1]).
        checkBlocked({"Clip2_" + shapeName(full), "Clip", "", {full, Dims{}, Dims{}}, {false, true, true}}, block, "f32_unary");
        checkBlocked({"ClipLo_" + shapeName(full), "Clip", "", {full, Dims{}}, {false, true}}, block, "f32_unary");
        checkBlocked({"ClipHi_" + shapeName(full), "Clip", "", {full, std::nullopt, Dims{1}}, {false, false, true}}, block,
                     "f32_unary");
        checkBlocked({"Clip0_" + shapeName(full), "Clip", "", {full}, {false}}, block, "f32_unary");
      }
}

// ---- global pools, Concat ------------------------------------------------------------------

TEST_P(NativeNchwcOps, GlobalPools) {
  const int block = GetParam();
  SKIP_IF_LACKING(block);
  std::vector<Dims> planes(std::begin(kPlanes), std::end(kPlanes));
  planes.push_back({56, 56});
  planes.push_back({14, 14});
  for (const char* op : {"GlobalAveragePool", "GlobalMaxPool"})
    for (int64_t n : {1, 2})
      for (int64_t c : kChannels)
        for (const Dims& p : planes) {
          const Dims full{n, c, p[0], p[1]};
          checkBlocked({std::string(op) + "_" + shapeName(full), op, "", {full}, {false}}, block,
                       op[6] == 'A' ? "f32_global_avgpool" : "f32_global_maxpool", true, op[6] == 'A');
        }
}

TEST_P(NativeNchwcOps, Concat) {
  const int block = GetParam();
  SKIP_IF_LACKING(block);
  const int64_t b = block;
  for (int64_t n : {1, 2})
    for (const Dims& p : kPlanes)
      for (int64_t axis : {1, -3}) {
        ir::Attributes at;
        at.set("axis", axis);
        const std::vector<std::vector<int64_t>> splits = {{13}, {b, 3}, {b, 2 * b, 1}, {3 * b, b}, {b, 40}};
        for (const auto& cs : splits) {
          Case c{"concat", "Concat", "", {}, {}, at};
          for (int64_t ch : cs) {
            c.inputs.push_back(Dims{n, ch, p[0], p[1]});
            c.constant.push_back(false);
            c.name += "_" + std::to_string(ch);
          }
          checkBlocked(c, block, "x32_concat");
        }
        // A first input that ends inside a block cannot copy whole blocks.
        checkBlocked({"concat_partial", "Concat", "", {Dims{n, 3, p[0], p[1]}, Dims{n, b, p[0], p[1]}}, {false, false}, at},
                     block, "x32_concat", false);
      }
}

// supports() reads extents from the types it is given (a profile's), not from the graph,
// whose values may carry a symbolic batch.
TEST_P(NativeNchwcOps, SupportsWithSymbolicGraphExtents) {
  const int block = GetParam();
  const Dims x{2, 13, 5, 4};
  ir::Attributes axis;
  axis.set("axis", int64_t(1));
  const std::vector<std::pair<Case, std::string>> cases = {
      {{"add", "Add", "", {x, Dims{2, 13, 1, 1}}, {false, false}}, "f32_binary"},
      {{"mul", "Mul", "", {x, Dims{1, 13, 1, 1}}, {false, true}}, "f32_binary"},
      {{"relu", "Relu", "", {x}, {false}}, "f32_unary"},
      {{"gap", "GlobalAveragePool", "", {x}, {false}}, "f32_global_avgpool"},
      {{"cat", "Concat", "", {Dims{2, int64_t(block), 5, 4}, x}, {false, false}, axis}, "x32_concat"}};
  for (const auto& [c, family] : cases) {
    Built b = build(c, 1);
    ir::Node* node = const_cast<ir::Node*>(b.node);
    for (size_t i = 0; i < node->numInputs(); ++i)
      if (!node->input(i)->isInitializer()) node->input(i)->setLayout(ir::Layout::nchwc(block));
    ir::Value* y = node->output(0);
    y->setLayout(ir::Layout::nchwc(block));
    ir::TensorType t = y->type();
    t.shape[0] = ir::Dim::symbol("N");
    y->setType(t);
    const runtime::Kernel* k = kernelNamed(c.op, "", block, family);
    ASSERT_NE(k, nullptr);
    EXPECT_TRUE(k->supports(*b.node, b.types())) << k->name;
  }
}

// ---- timing (printed, not asserted) -----------------------------------------------------------

double bestSeconds(const std::function<void()>& f, int reps) {
  double best = 1e9;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// A ready step: the kernel on a built node, buffers allocated once.
struct Timed {
  std::vector<std::vector<float>> owned;  // the blocked inputs (the caller's may be temporaries)
  PreparedKernel pk;
  std::vector<runtime::TensorView> in;
  std::vector<float> out;
  runtime::TensorView ov;
  runtime::StepArgs a;
  std::unique_ptr<runtime::Executor> ex;
  Timed(const runtime::Kernel& k, const Built& b, const std::vector<std::vector<float>>& inputs, int64_t outFloats,
        int threads = 1)
      : owned(inputs), pk(prepare(k, b, threads)), out(size_t(outFloats)), ex(runtime::makeCpuExecutor(threads)) {
    for (size_t i = 0; i < b.tensors.size(); ++i) {
      runtime::TensorView v = viewOf(b.tensors[i]);
      if (!owned[i].empty()) v.data = owned[i].data();
      in.push_back(v);
    }
    ov.data = out.data();
    ov.dtype = DataType::kF32;
    ov.setExtents(b.node->output(0)->type().shape.extents());
    a.node = b.node;
    a.inputs = in.data();
    a.numInputs = int(in.size());
    a.outputs = &ov;
    a.numOutputs = 1;
    a.params = {pk.params->p, pk.prepared.params.size()};
    a.blobs = pk.views.data();
    a.numBlobs = int(pk.views.size());
    a.executor = ex.get();
  }
};

TEST_P(NativeNchwcOps, ReorderTiming) {
  const int block = GetParam();
  SKIP_IF_LACKING(block);
  const runtime::Kernel* k = kernelNamed("Reorder", "anvil", block, "x32_reorder");
  for (const Dims& d : {Dims{1, 96, 56, 56}, Dims{1, 1280, 7, 7}})
    for (int threads : {1, 2}) {
      ir::Attributes toB, toP;
      toB.set("to", "NCHW" + std::to_string(block) + "c");
      toP.set("to", std::string("plain"));
      Built b = build({"r", "Reorder", "anvil", {d}, {false}, toB}, 3);
      const_cast<ir::Node*>(b.node)->output(0)->setLayout(ir::Layout::nchwc(block));
      const int64_t floats = cpu::nchwc::storageFloats(d[0], d[1], d[2], d[3], block);
      Timed t(*k, b, {{}}, floats, threads);
      const double s = bestSeconds([&] { k->run(t.a); }, 200);
      Built p = build({"r", "Reorder", "anvil", {d}, {false}, toP}, 3);
      const_cast<ir::Node*>(p.node)->input(0)->setLayout(ir::Layout::nchwc(block));
      Timed tp(*k, p, {t.out}, d[0] * d[1] * d[2] * d[3], threads);
      const double sp = bestSeconds([&] { k->run(tp.a); }, 200);
      const double bytes = 2.0 * 4 * double(d[0] * d[1] * d[2] * d[3]);  // read + write, once each
      // The bound: a memcpy of the same bytes (one thread), in the same run.
      std::vector<float> copy(size_t(d[0] * d[1] * d[2] * d[3]));
      const double sm = bestSeconds([&] { std::memcpy(copy.data(), b.tensors[0].raw(), copy.size() * 4); }, 200);
      std::printf("[ timing ] %s %s, %d thread(s): to blocked %.1f us (%.1f GB/s), to plain %.1f us (%.1f GB/s), "
                  "memcpy %.1f us (%.1f GB/s); best of 200\n",
                  k->name.c_str(), shapeName(d).c_str(), threads, s * 1e6, bytes / s * 1e-9, sp * 1e6,
                  bytes / sp * 1e-9, sm * 1e6, bytes / sm * 1e-9);
    }
}

TEST_P(NativeNchwcOps, DISABLED_GapTiming) {
  const int block = GetParam();
  SKIP_IF_LACKING(block);
  const runtime::Kernel* k = kernelNamed("GlobalAveragePool", "", block, "f32_global_avgpool");
  for (const Dims& d : {Dims{1, 1280, 7, 7}, Dims{1, 576, 14, 14}, Dims{1, 64, 56, 56}}) {
    Built b = build({"g", "GlobalAveragePool", "", {d}, {false}}, 3);
    ir::Node* node = const_cast<ir::Node*>(b.node);
    double plain[2] = {0, 0};
    int i = 0;
    for (const char* name : {"f32_global_avgpool", "f32_global_avgpool_f64x32__avx512"}) {
      const runtime::Kernel* pk = registry().find(Device::kCPU, "GlobalAveragePool", "", name);
      if (!pk || !runtime::hostHasAll(pk->requirements)) continue;
      Timed t(*pk, b, {{}}, d[0] * d[1]);
      plain[i++] = bestSeconds([&] { pk->run(t.a); }, 300);
    }
    node->input(0)->setLayout(ir::Layout::nchwc(block));
    node->output(0)->setLayout(ir::Layout::nchwc(block));
    Timed t(*k, b, {toBlocked(b.tensors[0].data<float>(), d, block)},
            cpu::nchwc::storageFloats(d[0], d[1], 1, 1, block));
    const double s = bestSeconds([&] { k->run(t.a); }, 300);
    std::printf("[ timing ] GAP %s: %s %.2f us, f32_global_avgpool %.2f us, f64x32__avx512 %.2f us\n",
                shapeName(d).c_str(), k->name.c_str(), s * 1e6, plain[0] * 1e6, plain[1] * 1e6);
  }
}

// Blocked elementwise kernels against the row-major ones on the same logical tensors.
TEST_P(NativeNchwcOps, DISABLED_EltwiseTiming) {
  const int block = GetParam();
  SKIP_IF_LACKING(block);
  struct T {
    const char* op;
    Dims a, b;
    const char* plain;
  };
  const T cases[] = {{"Mul", {1, 576, 14, 14}, {1, 576, 1, 1}, "x_binary_broadcast"},
                     {"Add", {1, 96, 56, 56}, {1, 96, 56, 56}, "x_binary_broadcast"},
                     {"HardSwish", {1, 96, 56, 56}, {}, "f32_unary"},
                     {"Sigmoid", {1, 96, 56, 56}, {}, "f32_unary"}};
  for (const T& t : cases) {
    const bool binary = !t.b.empty();
    Case c{"e", t.op, "", {t.a}, {false}, {}};
    if (binary) {
      c.inputs.push_back(t.b);
      c.constant.push_back(false);
    }
    Built b = build(c, 3);
    const runtime::Kernel* pk = registry().find(Device::kCPU, t.op, "", t.plain);
    ASSERT_NE(pk, nullptr);
    const Dims& od = t.a;
    Timed tp(*pk, b, std::vector<std::vector<float>>(b.tensors.size()), od[0] * od[1] * od[2] * od[3]);
    const double sp = bestSeconds([&] { pk->run(tp.a); }, 200);
    ir::Node* node = const_cast<ir::Node*>(b.node);
    std::vector<std::vector<float>> ins;
    for (size_t i = 0; i < b.tensors.size(); ++i) {
      node->input(i)->setLayout(ir::Layout::nchwc(block));
      ins.push_back(toBlocked(b.tensors[i].data<float>(), b.tensors[i].dims(), block));
    }
    node->output(0)->setLayout(ir::Layout::nchwc(block));
    const runtime::Kernel* k = kernelNamed(t.op, "", block, binary ? "f32_binary" : "f32_unary");
    ASSERT_TRUE(k->supports(*b.node, b.types()));
    Timed tb(*k, b, ins, cpu::nchwc::storageFloats(od[0], od[1], od[2], od[3], block));
    const double sb = bestSeconds([&] { k->run(tb.a); }, 200);
    std::printf("[ timing ] %s %s%s%s: %s %.2f us, %s %.2f us\n", t.op, shapeName(t.a).c_str(), binary ? " x " : "",
                shapeName(t.b).c_str(), k->name.c_str(), sb * 1e6, t.plain, sp * 1e6);
  }
}

INSTANTIATE_TEST_SUITE_P(Blocks, NativeNchwcOps, ::testing::Values(8, 16),
                         [](const ::testing::TestParamInfo<int>& i) { return "b" + std::to_string(i.param); });

}  // namespace
