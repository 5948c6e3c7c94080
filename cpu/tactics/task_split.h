// How the native f32 kernels of Conv/Gemm/MatMul split one step's work into tasks for the
// executor's threads: into the number of tasks the builder timed as the fastest
// (PrepareInfo::tasks, kept in the kernel's params) where it timed them, else by a rule.
// Timed splits are offered by the linear kernels (native_linear.cpp, native_conv_rows.cpp
// and its blocked .inc, native_conv_small.cpp) whose rule is a flops threshold, by Winograd
// (native_winograd.cpp, the blocked one in native_conv_rows_nchwc.inc) and by the depthwise
// convs (native_dwconv.cpp, native_nchwc_spatial.cpp), whose rule is a task per thread (the
// blocked Winograd: the threshold). The f16/bf16 kernels (native_half.cpp) use the threshold
// alone.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/tactics/native_linear_conv.h"
#include "runtime/kernel.h"

namespace anvil::cpu::tactics {

// At least this many flops per task: below it, waking a worker (a few microseconds when it
// spins, tens when it sleeps, more on a loaded machine) costs more than the work it takes.
// 0.5 MFLOP (a few microseconds of work): against 2 MFLOP, mobilenet_v3_small at 2 threads
// 1.70-1.74 -> 1.57-1.63 ms, squeezenet1_1 2% faster (the workers spin between steps).
constexpr double kMinFlopsPerTask = 5e5;

// Where one constant is the wrong tool, the builder times the splits: a step of at least
// kTimedSplitMinFlops and under threads x kTimedSplitMaxFlopsPerThread at the profile's opt
// shapes. Whether a second task pays there depends on the layer (a 1x1 Conv over a 2x2
// image with 960 channels reads 1.2 MB of filter per task, a depthwise-sized one reads
// little), so no threshold fits every model: lowering kMinFlopsPerTask to 1.5e5 made
// efficientnet_b0_s32 faster at 2 threads (0.86x its latency) and mobilenet_v3_small slower
// (1.03-1.11x). Outside the window the threshold decides: below it one task is clearly
// cheaper, above it every thread clearly pays, and timing would only cost build time.
constexpr double kTimedSplitMinFlops = 1e5;
constexpr double kTimedSplitMaxFlopsPerThread = 2e6;

// The window of a kernel family whose flops take another time than a GEMM's.
struct SplitWindow {
  double minFlops = kTimedSplitMinFlops;
  double maxFlopsPerThread = kTimedSplitMaxFlopsPerThread;
};
// The depthwise convs (native_dwconv.cpp, native_nchwc_spatial.cpp): a few loads and stores
// per 9 or 25 FMAs, so a flop takes longer than in a GEMM and their steps are tiny (under
// 0.2 MFLOP in the 32x32 models), timed in microseconds: every step under threads x 0.25
// MFLOP is timed, larger ones (2 threads: 0.7 MFLOP and up) run a task per thread, as all of
// them did before. Timed with the window open at both ends (AVX2, NCHW8c, 2 threads), the
// steps of 10-60 kFLOP kept one task in 21 of 22 (mobilenet_v2_s32, efficientnet_b0_s32),
// those of 96-192 kFLOP one task in 9 of 11, and every step of mobilenet_v3_small (224x224,
// 0.7-2.4 MFLOP) two tasks.
constexpr SplitWindow kDepthwiseSplitWindow{0.0, 2.5e5};

// Tasks of a run: `fixed` > 0 (the builder's timed choice), else one per minFlopsPerTask of
// `flops`; at most the prepared workspace slots and the executor's threads.
inline int stepTasks(int slots, int fixed, const runtime::Executor* ex, double flops,
                     double minFlopsPerTask = kMinFlopsPerTask) {
  const int byWork = fixed > 0 ? fixed : int(std::max(1.0, std::min(1e6, flops / minFlopsPerTask)));
  return std::max(1, std::min({slots, ex ? ex->threads() : 1, byWork}));
}

// The splits the builder times for a step of `flops` run with `threads` threads: one task,
// then 2, 4, ... tasks and all threads, at most `items` (the work items the kernel can
// spread); none (the threshold decides) outside the window or where no second task fits.
inline std::vector<int> splitsToTime(double flops, int threads, int64_t items = INT64_MAX,
                                     SplitWindow window = {}) {
  std::vector<int> s;
  if (threads < 2 || items < 2 || flops < window.minFlops || flops >= threads * window.maxFlopsPerThread) return s;
  for (int t = 1; t < threads && t < items; t *= 2) s.push_back(t);
  if (threads <= items) s.push_back(threads);
  return s;
}

// Workspace slots to prepare: the timed split where the builder gave one, else a task per thread.
inline int preparedSlots(const runtime::PrepareInfo& info) {
  const int threads = std::max(1, info.threads);
  return info.tasks > 0 ? std::min(info.tasks, threads) : threads;
}

// The flops of a Winograd F(4x4, 3x3) step: its 36 GEMMs over the 4x4 output tiles (a 1x1
// image costs a whole tile's, not the 9 products per output a direct Conv counts).
inline double winogradFlops(const Conv2dGeom& g) {
  return 2.0 * 36.0 * double(g.N * ceilDiv(g.OH, 4) * ceilDiv(g.OW, 4)) * double(g.M * g.C);
}

// The splits to time for a 2-D Conv with attributes `a` at the profile's opt shapes (none
// where they are not static); `items(g)`: the work items the kernel can spread.
// `flops(g)`, where given: the step's work as the kernel counts it (else the direct Conv's).
template <typename Items>
std::vector<int> convSplitsToTime(const ConvAttrs& a, const runtime::PrepareInfo& info, Items items,
                                  SplitWindow window = {}, double (*flops)(const Conv2dGeom&) = nullptr) {
  if (info.optTypes.size() < 2 || !info.optTypes[0].shape.isStatic() || !info.optTypes[1].shape.isStatic()) return {};
  const std::vector<int64_t> x = info.optTypes[0].shape.extents(), w = info.optTypes[1].shape.extents();
  Conv2dGeom g;
  if (x.size() != 4 || w.size() != 4 || !conv2dGeometry(a, x.data(), w[0], &g)) return {};
  const double f = flops ? flops(g) : 2.0 * double(g.N * g.M * g.OH * g.OW) * double(g.Cg * g.kH * g.kW);
  return splitsToTime(f, info.threads, items(g), window);
}

}  // namespace anvil::cpu::tactics
