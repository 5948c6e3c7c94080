// The timed split of a step's work into tasks (cpu/tactics/task_split.h): the native f32
// linear kernels that offer it (pixels-as-rows Conv, row-major and NCHW8c/16c; the im2col
// Conv, Gemm and MatMul of native_linear.cpp; the 1x1 GEMV Conv) name the splits {1, 2} to
// time for a 2-thread step in the window and none outside it or with one thread. They, and
// the kernels that name none but honour a split (Winograd, plain and NCHW8c/16c; the
// depthwise convs, plain and NCHW8c/16c), prepared with PrepareInfo::tasks = 1 or 2 run
// exactly that many tasks on a 2-thread executor (where their own rule, the flops threshold
// or a task per thread, runs one or two), and every split computes what the reference kernel
// does, bitwise equal to the others (output guards and workspace tail checked as in the op
// tests).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cpu/tactics/task_split.h"
#include "native_kernel_test_util.h"
#include "nchwc_test_util.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeConvRowsKernels(Kernels& k);  // cpu/tactics/native_conv_rows.cpp
void registerNativeLinearKernels(Kernels& k);    // cpu/tactics/native_linear.cpp
void registerNativeWinogradKernels(Kernels& k);  // cpu/tactics/native_winograd.cpp (registers the GEMV, depthwise)
void registerNativeNchwcSpatialKernels(Kernels& k);  // cpu/tactics/native_nchwc_spatial.cpp (blocked depthwise)
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

using namespace anvil::testing::nk;

runtime::Kernels& registry() {
  return anvil::testing::nk::registryOf<&runtime::registerNativeConvRowsKernels, &runtime::registerNativeLinearKernels,
                                        &runtime::registerNativeWinogradKernels,
                                        &runtime::registerNativeNchwcSpatialKernels>();
}

// Counts the tasks of the kernel's parallel regions, running them on a real executor.
class CountingExecutor final : public runtime::Executor {
 public:
  explicit CountingExecutor(runtime::Executor& inner) : inner_(inner) {}
  int threads() const override { return inner_.threads(); }
  void parallelFor(int64_t n, runtime::FunctionRef<void(int64_t)> fn) override {
    maxTasks = std::max(maxTasks, n);
    inner_.parallelFor(n, fn);
  }
  int64_t maxTasks = 0;

 private:
  runtime::Executor& inner_;
};

ir::Attributes pointwise() {
  ir::Attributes at;
  at.set("kernel_shape", Dims{1, 1});
  return at;
}

ir::Attributes spatial(int64_t k, int64_t stride, int64_t pad, int64_t group) {
  ir::Attributes at;
  at.set("kernel_shape", Dims{k, k});
  at.set("strides", Dims{stride, stride});
  at.set("pads", Dims{pad, pad, pad, pad});
  at.set("group", group);
  return at;
}

// A step per kernel, in the window at 2 threads (1e5 <= flops < 4e6) where the kernel
// `offers` splits (Winograd and the depthwise convs name none: task_split.h says why);
// `block`: its activations NCHW<b>c; `untimed`: the tasks its own rule runs at 2 threads (the
// flops threshold, 5e5 per task: one; Winograd and the depthwise convs: one per thread);
// `tolerance` against the reference (Winograd's transformed sums: native_winograd_test.cpp).
struct SplitCase {
  std::string kernel;
  Case c;
  int block = 0;
  bool offers = true;
  int untimed = 1;
  double tolerance = 3e-5;
};

const std::vector<SplitCase>& splitCases() {
  // 2 * 96 * 4*4 * 64 = 196608 flops; over a 2x2 image (the GEMV) 2 * 112 * 4 * 96 = 86016
  // is below the window, so its case has 240 outputs and 192 inputs: 368640.
  const Case conv{"pw_64x4x4_M96", "Conv", "", {Dims{1, 64, 4, 4}, Dims{96, 64, 1, 1}, Dims{96}}, {false, true, true},
                  pointwise()};
  // The im2col Conv spreads column panels of 16 pixels: 64 pixels, 2 * 48 * 64 * 32 flops.
  const Case pixels{"pw_32x8x8_M48", "Conv", "", {Dims{1, 32, 8, 8}, Dims{48, 32, 1, 1}, Dims{48}}, {false, true, true},
                    pointwise()};
  const Case small{"pw_192x2x2_M240", "Conv", "", {Dims{1, 192, 2, 2}, Dims{240, 192, 1, 1}, Dims{240}},
                   {false, true, true}, pointwise()};
  ir::Attributes transB;
  transB.set("transB", int64_t(1));
  const Case gemm{"gemm_3x256_N300", "Gemm", "", {Dims{3, 256}, Dims{300, 256}, Dims{300}}, {false, true, true}, transB};
  const Case matmul{"matmul_5x100_N250", "MatMul", "", {Dims{5, 100}, Dims{100, 250}}, {false, true}, {}};
  // Depthwise: 24 planes (39 blocked rows); 5x5 stride 2: 20 planes (24 blocked rows).
  const Case dw3{"dw3_24x13x11", "Conv", "", {Dims{1, 24, 13, 11}, Dims{24, 1, 3, 3}, Dims{24}}, {false, true, true},
                 spatial(3, 1, 1, 24)};
  const Case dw5{"dw5s2_20x15x17", "Conv", "", {Dims{1, 20, 15, 17}, Dims{20, 1, 5, 5}, Dims{20}}, {false, true, true},
                 spatial(5, 2, 2, 20)};
  // Winograd: 6 tiles of 4x4, 4 blocks of 64 output channels (the plain kernel's work items).
  const Case wino{"wino_16x9x7_M200", "Conv", "", {Dims{1, 16, 9, 7}, Dims{200, 16, 3, 3}, Dims{200}},
                  {false, true, true}, spatial(3, 1, 1, 1)};
  // The blocked Winograd kernels split one tile block by output channels when every task
  // has a panel (wino above: 7 panels of 32, or 13 of 16), else by points (16 output
  // channels: one panel); two images whose U exceeds 1 MiB (36 x 16 x 512 floats) go
  // through the channel split block by block. (winoNarrow: 0.2 MFLOP, one task by the
  // threshold unless asked for two.)
  const Case winoNarrow{"wino_16x9x7_M16", "Conv", "", {Dims{1, 16, 9, 7}, Dims{16, 16, 3, 3}, Dims{16}},
                        {false, true, true}, spatial(3, 1, 1, 1)};
  const Case winoWide{"wino_2x16x9x7_M512", "Conv", "", {Dims{2, 16, 9, 7}, Dims{512, 16, 3, 3}, Dims{512}},
                      {false, true, true}, spatial(3, 1, 1, 1)};
  // A 3x3 pad-1 Conv of a 1x1 image (resnet18_s32's layer4): 1 live tap of 9, so 2 * 512 *
  // 512 = 0.5 MFLOP run by the blocked kernels (their filter keeps the live tap), 4.7 MFLOP
  // nominal: their splits count the live taps, as run() does (else none are timed and run()
  // keeps one task).
  const Case live1{"c3x3_512x1x1_M512", "Conv", "", {Dims{1, 512, 1, 1}, Dims{512, 512, 3, 3}, Dims{512}},
                   {false, true, true}, spatial(3, 1, 1, 1)};
  // mobilenet_v2's 14x14 projections in small: 3 panels of 32 output channels over 14 tiles
  // of 14 pixels, which convGrid splits by pixels (two channel blocks would be 1 and 2 panels);
  // 3.6 MFLOP: two tasks by the threshold.
  const Case proj{"pw_96x14x14_M96", "Conv", "", {Dims{1, 96, 14, 14}, Dims{96, 96, 1, 1}, Dims{96}},
                  {false, true, true}, pointwise()};
  static const std::vector<SplitCase> cases = {
      {"f32_conv2d_rows_14x32__avx512", proj, 0, true, 2},
      {"f32_conv2d_rows_nchw16c_14x32__avx512", proj, 16, true, 2},
      {"f32_conv2d_rows_nchw8c_6x16__avx2", live1, 8}, {"f32_conv2d_rows_nchw16c_14x32__avx512", live1, 16},
      {"f32_conv2d_rows_6x16__avx2", conv},      {"f32_conv2d_rows_nchw8c_6x16__avx2", conv, 8},
      {"f32_conv2d_rows_14x32__avx512", conv},   {"f32_conv2d_rows_nchw16c_14x32__avx512", conv, 16},
      {"f32_conv2d_prepacked_6x16__avx2", pixels}, {"f32_conv1x1_gemv__avx2", small},
      {"f32_gemm_prepacked_6x16__avx2", gemm},   {"f32_gemm_prepacked_6x16__avx2", matmul},
      {"f32_dwconv2d_3x3_rows__avx2", dw3, 0, false, 2},
      {"f32_dwconv2d_5x5_rows__avx2", dw5, 0, false, 2},
      {"f32_dwconv2d_3x3_rows__avx512", dw3, 0, false, 2},
      {"f32_dwconv2d_nchw8c__avx2", dw3, 8, false, 2},
      {"f32_dwconv2d_nchw8c__avx2", dw5, 8, false, 2},
      {"f32_dwconv2d_nchw16c__avx512", dw3, 16, false, 2},
      {"f32_conv2d_winograd_f4x3", wino, 0, false, 2, 2e-4},
      {"f32_conv2d_winograd_f4x3__avx2", wino, 0, false, 2, 2e-4},
      {"f32_conv2d_winograd_f4x3__avx512", wino, 0, false, 2, 2e-4},
      {"f32_conv2d_winograd_nchw8c_f4x3__avx2", wino, 8, false, 2, 2e-4},
      {"f32_conv2d_winograd_nchw16c_f4x3__avx512", wino, 16, false, 2, 2e-4},
      {"f32_conv2d_winograd_nchw8c_f4x3__avx2", winoNarrow, 8, false, 1, 2e-4},
      {"f32_conv2d_winograd_nchw16c_f4x3__avx512", winoNarrow, 16, false, 1, 2e-4},
      {"f32_conv2d_winograd_nchw16c_f2x3__avx512", winoNarrow, 16, false, 1, 2e-4},
      {"f32_conv2d_winograd_nchw8c_f4x3__avx2", winoWide, 8, false, 2, 2e-4},
      {"f32_conv2d_winograd_nchw16c_f4x3__avx512", winoWide, 16, false, 2, 2e-4},
      {"f32_conv2d_winograd_nchw16c_f2x3__avx512", wino, 16, false, 2, 2e-4}};
  return cases;
}

runtime::PrepareInfo infoOf(const Built& b, int threads) {
  runtime::PrepareInfo info;
  info.node = b.node;
  info.minTypes = info.optTypes = info.maxTypes = b.types();
  info.threads = threads;
  return info;
}

class NativeTaskSplit : public ::testing::TestWithParam<size_t> {};

TEST_P(NativeTaskSplit, EachSplitRunsItsTasksAndMatchesTheReference) {
  const SplitCase& sc = splitCases()[GetParam()];
  const runtime::Kernel* k = registry().find(Device::kCPU, sc.c.op, sc.c.domain, sc.kernel);
  ASSERT_NE(k, nullptr) << sc.kernel;
  if (const std::string why = skipReason(*k); !why.empty()) GTEST_SKIP() << why;
  const Built b = build(sc.c, 17u + uint32_t(GetParam()));
  if (sc.block) {
    b.node->input(0)->setLayout(ir::Layout::nchwc(sc.block));
    b.node->output(0)->setLayout(ir::Layout::nchwc(sc.block));
  }
  ASSERT_TRUE(k->supports(*b.node, b.types())) << sc.kernel << " on " << sc.c.name;
  if (sc.offers) {
    ASSERT_TRUE(k->taskSplits) << sc.kernel;
    EXPECT_EQ(k->taskSplits(infoOf(b, 2)), (std::vector<int>{1, 2}));
    EXPECT_EQ(k->taskSplits(infoOf(b, 1)), std::vector<int>{}) << "one thread: nothing to split";
    EXPECT_EQ(k->taskSplits(infoOf(b, 4)), (std::vector<int>{1, 2, 4}));
  } else {
    EXPECT_FALSE(k->taskSplits) << sc.kernel << " names splits: task_split.h says why it did not";
  }

  const Tensor want = reference(b);
  auto pool = runtime::makeCpuExecutor(2);
  std::vector<std::vector<float>> outs;
  for (int tasks : {0, 1, 2}) {
    const PreparedKernel pk = prepare(*k, b, 2, {}, tasks);
    CountingExecutor ex(*pool);
    std::vector<float> out;
    bool guards = true, workspace = true;
    if (sc.block) {
      const std::vector<Handover> how = {Handover::kBlocked, Handover::kNaN, Handover::kRowMajor};
      BlockedStep step(*k, pk, b, how, want.dims(), sc.block);
      step.run(ex);
      const BlockedResult r = step.result();
      out = r.out, guards = r.guardsIntact && r.paddingZero, workspace = r.workspaceIntact;
    } else {
      const RunResult r = runKernel(*k, pk, b, want.dims(), ex);
      out = r.out, guards = r.guardsIntact, workspace = r.workspaceIntact;
    }
    // 0: the kernel's own rule (`untimed`); else the split asked for. (A one-task run may
    // skip the executor.)
    EXPECT_EQ(std::max<int64_t>(1, ex.maxTasks), tasks == 0 ? sc.untimed : tasks)
        << sc.kernel << " prepared with tasks=" << tasks;
    EXPECT_TRUE(guards) << "wrote outside the output (tasks=" << tasks << ")";
    EXPECT_TRUE(workspace) << "wrote past the workspace (tasks=" << tasks << ")";
    EXPECT_EQ(compare(out, want, sc.tolerance), "") << sc.kernel << " tasks=" << tasks;
    outs.push_back(out);
  }
  for (size_t i = 1; i < outs.size(); ++i)
    EXPECT_EQ(std::memcmp(outs[0].data(), outs[i].data(), outs[0].size() * sizeof(float)), 0)
        << "the splits differ bitwise";
}

INSTANTIATE_TEST_SUITE_P(Native, NativeTaskSplit, ::testing::Range<size_t>(0, splitCases().size()),
                         [](const ::testing::TestParamInfo<size_t>& p) {
                           const SplitCase& sc = splitCases()[p.param];
                           return sc.kernel + "__" + sc.c.name;
                         });

// The window: below 1e5 flops one task, from threads x 2e6 every thread, both untimed.
TEST(NativeTaskSplitWindow, OnlyBetweenClearlyTinyAndClearlyLarge) {
  using cpu::tactics::splitsToTime;
  EXPECT_EQ(splitsToTime(0.99e5, 2), std::vector<int>{});
  EXPECT_EQ(splitsToTime(1e5, 2), (std::vector<int>{1, 2}));
  EXPECT_EQ(splitsToTime(3.99e6, 2), (std::vector<int>{1, 2}));
  EXPECT_EQ(splitsToTime(4e6, 2), std::vector<int>{});
  EXPECT_EQ(splitsToTime(1e7, 8), (std::vector<int>{1, 2, 4, 8}));
  EXPECT_EQ(splitsToTime(1e7, 6), (std::vector<int>{1, 2, 4, 6}));
  EXPECT_EQ(splitsToTime(1e6, 1), std::vector<int>{});
  EXPECT_EQ(splitsToTime(1e6, 2, 1), std::vector<int>{}) << "one work item: nothing to split";
  EXPECT_EQ(splitsToTime(1e6, 8, 3), (std::vector<int>{1, 2}));
  // A large Conv (resnet's 3x3 at 56x56: 231 MFLOP) and a tiny one name no splits.
  const Case big{"big", "Conv", "", {Dims{1, 64, 56, 56}, Dims{64, 64, 3, 3}}, {false, true}, [] {
                   ir::Attributes at;
                   at.set("kernel_shape", Dims{3, 3});
                   at.set("pads", Dims{1, 1, 1, 1});
                   return at;
                 }()};
  const Case tiny{"tiny", "Conv", "", {Dims{1, 8, 3, 3}, Dims{8, 8, 1, 1}}, {false, true}, pointwise()};
  const runtime::Kernel* k = registry().find(Device::kCPU, "Conv", "", "f32_conv2d_rows_6x16__avx2");
  ASSERT_NE(k, nullptr);
  for (const Case& c : {big, tiny}) {
    const Built b = build(c, 5);
    EXPECT_EQ(k->taskSplits(infoOf(b, 2)), std::vector<int>{}) << c.name;
  }
}

// convGrid (task_split.h): the largest task's work as the items enumerate it, the grid's
// blocks within their limits, never more work for the largest task than the rule of equal
// item counts, and an even split where one exists.
int64_t enumeratedMaxTask(int T, int64_t units, int64_t P, int mr, int64_t panelsM, bool cMajor,
                          cpu::tactics::ConvGrid g) {
  using cpu::tactics::rangeBegin;
  const int64_t tilesP = (P + mr - 1) / mr, items = units * g.pBlocks * g.cBlocks, n = std::min<int64_t>(T, items);
  int64_t most = 0;
  for (int64_t t = 0; t < n; ++t) {
    int64_t work = 0;
    for (int64_t it = rangeBegin(items, t, n); it < rangeBegin(items, t + 1, n); ++it) {
      const int64_t cb = cMajor ? (it / g.pBlocks) % g.cBlocks : it % g.cBlocks;
      const int64_t pb = cMajor ? it % g.pBlocks : (it / g.cBlocks) % g.pBlocks;
      const int64_t pix = std::min(P, rangeBegin(tilesP, pb + 1, g.pBlocks) * mr) -
                          std::min(P, rangeBegin(tilesP, pb, g.pBlocks) * mr);
      work += pix * (rangeBegin(panelsM, cb + 1, g.cBlocks) - rangeBegin(panelsM, cb, g.cBlocks));
    }
    most = std::max(most, work);
  }
  return most;
}

TEST(NativeConvGrid, MaxTaskIsTheEnumeratedOne) {
  for (int T : {2, 3, 4})
    for (int64_t units : {1, 2, 3})
      for (int64_t P : {1, 13, 49, 196})
        for (int64_t panels : {1, 3, 5})
          for (bool cMajor : {false, true})
            for (int64_t pb = 1; pb <= 5; ++pb)
              for (int64_t cb = 1; cb <= panels; ++cb) {
                const int64_t tilesP = (P + 13) / 14;
                if (pb > tilesP) continue;
                const cpu::tactics::ConvGrid g{pb, cb};
                EXPECT_EQ(cpu::tactics::convGridMaxTask(T, units, P, 14, panels, cMajor, g),
                          enumeratedMaxTask(T, units, P, 14, panels, cMajor, g))
                    << "T " << T << " units " << units << " P " << P << " panels " << panels << " grid " << pb << "x"
                    << cb << " cMajor " << cMajor;
              }
}

TEST(NativeConvGrid, BalancesWorkNotItems) {
  using cpu::tactics::convGrid;
  using cpu::tactics::convGridMaxTask;
  // mobilenet_v2's 14x14 576 -> 96 on two tasks: 196 x 3 pixel-panels, 294 each.
  const cpu::tactics::ConvGrid g = convGrid(2, 1, 196, 14, 3, 1, 1, false);
  EXPECT_EQ(convGridMaxTask(2, 1, 196, 14, 3, false, g), 294) << g.pBlocks << "x" << g.cBlocks;
  EXPECT_EQ(g.pBlocks * g.cBlocks, 2) << "the fewest items that split it evenly";
  // One task: the cache blocking's minimums as they are.
  const cpu::tactics::ConvGrid one = convGrid(1, 1, 784, 6, 8, 11, 2, false);
  EXPECT_EQ(one.pBlocks, 11);
  EXPECT_EQ(one.cBlocks, 2);
  for (int T : {2, 3, 4, 8})
    for (int64_t units : {1, 2})
      for (int mr : {6, 14})
        for (int64_t P : {7, 49, 196, 784})
          for (int64_t panels : {1, 2, 3, 5, 12})
            for (int64_t minP : {1, 3, 11})
              for (int64_t minC : {1, 2})
                for (bool cMajor : {false, true}) {
                  if (cMajor && panels < T) continue;  // the kernels go channel-major only with >= T panels
                  const int64_t tilesP = (P + mr - 1) / mr;
                  const cpu::tactics::ConvGrid got = convGrid(T, units, P, mr, panels, minP, minC, cMajor);
                  // The rule of equal item counts, as the kernels had it.
                  cpu::tactics::ConvGrid old{std::min(tilesP, minP), std::min(panels, minC)};
                  while (true) {
                    const int64_t items = units * old.pBlocks * old.cBlocks;
                    if (items >= T && (items % T == 0 || items >= 4 * T)) break;
                    if (old.cBlocks < panels && (old.cBlocks <= old.pBlocks || old.pBlocks == tilesP))
                      ++old.cBlocks;
                    else if (old.pBlocks < tilesP)
                      ++old.pBlocks;
                    else
                      break;
                  }
                  if (cMajor) old.cBlocks = std::max<int64_t>(old.cBlocks, T);
                  const std::string at = "T " + std::to_string(T) + " units " + std::to_string(units) + " mr " +
                                         std::to_string(mr) + " P " + std::to_string(P) + " panels " +
                                         std::to_string(panels) + " min " + std::to_string(minP) + "x" +
                                         std::to_string(minC) + (cMajor ? " cMajor" : "");
                  EXPECT_GE(got.pBlocks, std::min(tilesP, minP)) << at;
                  EXPECT_LE(got.pBlocks, tilesP) << at;
                  EXPECT_GE(got.cBlocks, std::min(panels, cMajor ? std::max<int64_t>(minC, T) : minC)) << at;
                  EXPECT_LE(got.cBlocks, panels) << at;
                  const int64_t work = convGridMaxTask(T, units, P, mr, panels, cMajor, got);
                  EXPECT_LE(work, convGridMaxTask(T, units, P, mr, panels, cMajor, old)) << at;
                  // Where whole pixel tiles split evenly over the tasks (no minimum in the way),
                  // the largest task does its share and no more.
                  if (!cMajor && units == 1 && minP == 1 && minC == 1 && P % mr == 0 && tilesP % T == 0) {
                    EXPECT_EQ(work * T, P * panels) << at;
                  }
                }
}

// The per-thread table in front of the search: every key, asked twice in a row and again
// after ~1000 others (collisions in its 256 slots included), gives the search's grid.
TEST(NativeConvGrid, RememberedGridsAreTheSearchedOnes) {
  using cpu::tactics::ConvGrid;
  std::vector<std::vector<int64_t>> keys;
  for (int T : {2, 3, 4})
    for (int64_t units : {1, 2})
      for (int64_t P : {7, 49, 196, 784})
        for (int64_t panels : {1, 3, 5, 12})
          for (int64_t minP : {1, 3})
            for (int64_t minC : {1, 2})
              for (int cMajor : {0, 1})
                if (!cMajor || panels >= T) keys.push_back({T, units, P, panels, minP, minC, cMajor});
  ASSERT_GT(keys.size(), 512u);
  for (int round = 0; round < 2; ++round)
    for (const auto& k : keys) {
      const ConvGrid want = cpu::tactics::convGridSearch(int(k[0]), k[1], k[2], 14, k[3], k[4], k[5], k[6] != 0);
      for (int again = 0; again < 2; ++again) {
        const ConvGrid got = cpu::tactics::convGrid(int(k[0]), k[1], k[2], 14, k[3], k[4], k[5], k[6] != 0);
        EXPECT_EQ(got.pBlocks, want.pBlocks);
        EXPECT_EQ(got.cBlocks, want.cBlocks);
      }
    }
}

}  // namespace
