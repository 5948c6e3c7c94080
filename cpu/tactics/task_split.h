// How the native f32 linear kernels (native_linear.cpp, native_conv_rows.cpp and its
// blocked .inc, native_conv_small.cpp) split one step's work into tasks for the executor's
// threads: by a flops threshold, or into the number of tasks the builder timed as the
// fastest (PrepareInfo::tasks, kept in the kernel's params). The f16/bf16 kernels
// (native_half.cpp) use the threshold alone. Winograd (native_winograd.cpp, the blocked one
// in native_conv_rows_nchwc.inc) and the depthwise convs (native_dwconv.cpp,
// native_nchwc_spatial.cpp) honour a PrepareInfo::tasks but name no splits to time, and run
// a task per thread (the blocked Winograd: the threshold). Offered {1, 2} at 2 threads
// (depthwise: every step under 0.5 MFLOP; Winograd: 0.1-4 MFLOP counting its tiles' GEMMs),
// builds on this shared 2-core machine under the other sessions' load kept one task for most
// of them (17 of 17 depthwise steps of mobilenet_v2_s32, 14 of 16 of efficientnet_b0_s32, 5
// of 7 Winograd steps of resnet18_s32), and in the engines those steps then took longer than
// with a task per thread (their summed per-layer medians, 12 interleaved rounds, 2 threads,
// AVX2: 1.43x, 1.61x and 1.25x; mobilenet_v3_small's, whose choices did not change, 1.01x);
// a build at a quieter moment kept two tasks for 11 of efficientnet_b0_s32's first 12, as
// before. The timed choice follows the load of the build, not the engine's run, on steps
// of 10-60 us (presumably also the input, split over both cores' caches by the step before
// in the engine, and in one core's in the builder's runs of a kernel alone).
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
inline std::vector<int> splitsToTime(double flops, int threads, int64_t items = INT64_MAX) {
  std::vector<int> s;
  if (threads < 2 || items < 2 || flops < kTimedSplitMinFlops || flops >= threads * kTimedSplitMaxFlopsPerThread)
    return s;
  for (int t = 1; t < threads && t < items; t *= 2) s.push_back(t);
  if (threads <= items) s.push_back(threads);
  return s;
}

// Workspace slots to prepare: the timed split where the builder gave one, else a task per thread.
inline int preparedSlots(const runtime::PrepareInfo& info) {
  const int threads = std::max(1, info.threads);
  return info.tasks > 0 ? std::min(info.tasks, threads) : threads;
}

// The splits to time for a 2-D Conv with attributes `a` at the profile's opt shapes (none
// where they are not static); `items(g)`: the work items the kernel can spread.
template <typename Items>
std::vector<int> convSplitsToTime(const ConvAttrs& a, const runtime::PrepareInfo& info, Items items) {
  if (info.optTypes.size() < 2 || !info.optTypes[0].shape.isStatic() || !info.optTypes[1].shape.isStatic()) return {};
  const std::vector<int64_t> x = info.optTypes[0].shape.extents(), w = info.optTypes[1].shape.extents();
  Conv2dGeom g;
  if (x.size() != 4 || w.size() != 4 || !conv2dGeometry(a, x.data(), w[0], &g)) return {};
  return splitsToTime(2.0 * double(g.N * g.M * g.OH * g.OW) * double(g.Cg * g.kH * g.kW), info.threads, items(g));
}

}  // namespace anvil::cpu::tactics
