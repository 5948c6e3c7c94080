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

// The blocks of a conv step's work grid for T tasks. Items are (unit, pixel block, channel
// block) -- with cMajor (unit, channel block, pixel block) -- units being images x groups;
// pixel block b of pBlocks holds the mr-pixel tiles rangeBegin(tilesP, b, pBlocks) ..
// (P pixels in all, the last tile short), channel block b the nr-channel panels
// rangeBegin(panelsM, b, cBlocks) .., and task t the items rangeBegin(items, t, tasks) ..
// (tasks = min(T, items)). `minP` / `minC`: the blocks cache blocking asks for at least.
struct ConvGrid {
  int64_t pBlocks = 1, cBlocks = 1;
};

// The largest task's work (pixels x panels) under `g`.
inline int64_t convGridMaxTask(int T, int64_t units, int64_t P, int mr, int64_t panelsM, bool cMajor, ConvGrid g) {
  const int64_t tilesP = (P + mr - 1) / mr, items = units * g.pBlocks * g.cBlocks, n = std::min<int64_t>(T, items);
  auto pixAt = [&](int64_t b) { return std::min(P, tilesP * b / g.pBlocks * mr); };
  auto panAt = [&](int64_t b) { return panelsM * b / g.cBlocks; };
  // The work of items [0, it).
  auto before = [&](int64_t it) {
    if (!cMajor) {
      const int64_t r = it / g.cBlocks, rem = it % g.cBlocks, u = r / g.pBlocks, pb = r % g.pBlocks;
      return u * P * panelsM + pixAt(pb) * panelsM + (pixAt(pb + 1) - pixAt(pb)) * panAt(rem);
    }
    const int64_t r = it / g.pBlocks, rem = it % g.pBlocks, u = r / g.cBlocks, cb = r % g.cBlocks;
    return u * P * panelsM + panAt(cb) * P + (panAt(cb + 1) - panAt(cb)) * pixAt(rem);
  };
  int64_t most = 0;
  for (int64_t t = 0; t < n; ++t) most = std::max(most, before(items * (t + 1) / n) - before(items * t / n));
  return most;
}

// The grid for T tasks: first the rule the kernels grew with (channel blocks and pixel blocks
// raised in turn from the minimums until the tasks divide the items or each has four; with
// cMajor at least T channel blocks), kept unless another grid of at most max(8 T, its items)
// items gives the largest task 2% less work. That rule balanced items, not work: mobilenet_v2's
// 14x14 576 -> 96 projections (3 panels of 32, 14 tiles of 14 pixels) went to two channel
// blocks of 1 and 2 panels, one task doing twice the other's work; 2 pixel blocks of 7 tiles
// split it evenly.
inline ConvGrid convGridSearch(int T, int64_t units, int64_t P, int mr, int64_t panelsM, int64_t minP, int64_t minC,
                               bool cMajor) {
  const int64_t tilesP = (P + mr - 1) / mr;
  ConvGrid g{std::max<int64_t>(1, std::min(tilesP, minP)), std::max<int64_t>(1, std::min(panelsM, minC))};
  if (T <= 1) return g;
  while (true) {
    const int64_t items = units * g.pBlocks * g.cBlocks;
    if (items >= T && (items % T == 0 || items >= 4 * T)) break;
    if (g.cBlocks < panelsM && (g.cBlocks <= g.pBlocks || g.pBlocks == tilesP))
      ++g.cBlocks;
    else if (g.pBlocks < tilesP)
      ++g.pBlocks;
    else
      break;
  }
  if (cMajor) g.cBlocks = std::min<int64_t>(panelsM, std::max<int64_t>(g.cBlocks, T));
  const int64_t old = convGridMaxTask(T, units, P, mr, panelsM, cMajor, g);
  // Already an even split (the largest task does its share, rounded up): nothing to gain.
  const int64_t tasks = std::min<int64_t>(T, units * g.pBlocks * g.cBlocks), total = units * P * panelsM;
  if (old * tasks <= total + tasks - 1) return g;
  const int64_t cap = std::max<int64_t>(8 * int64_t(T), units * g.pBlocks * g.cBlocks);
  ConvGrid best = g;
  int64_t bestCost = old, bestItems = INT64_MAX;
  const int64_t c0 = cMajor ? std::min<int64_t>(panelsM, std::max<int64_t>(minC, T)) : std::max<int64_t>(1, minC);
  for (int64_t cb = std::min(panelsM, c0); cb <= panelsM && units * cb <= cap; ++cb)
    for (int64_t pb = std::max<int64_t>(1, std::min(tilesP, minP)); pb <= tilesP && units * pb * cb <= cap; ++pb) {
      const int64_t cost = convGridMaxTask(T, units, P, mr, panelsM, cMajor, ConvGrid{pb, cb});
      const int64_t items = units * pb * cb;
      if (cost * 50 < old * 49 && (cost < bestCost || (cost == bestCost && items < bestItems))) {
        best = ConvGrid{pb, cb};
        bestCost = cost;
        bestItems = items;
      }
    }
  return best;
}

// convGridSearch, remembered per thread (a direct-mapped table; a collision only searches
// again): a run asks for the same grids step after step, and the search costs up to ~1.4 us
// at two tasks (a 14x14 step's percent or two) and ~50 us at sixteen; a hit ~10 ns.
inline ConvGrid convGrid(int T, int64_t units, int64_t P, int mr, int64_t panelsM, int64_t minP, int64_t minC,
                         bool cMajor) {
  if (T <= 1) return convGridSearch(T, units, P, mr, panelsM, minP, minC, cMajor);
  struct Entry {
    int64_t key[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    ConvGrid grid;
  };
  thread_local Entry cache[256];  // 20 KB a thread; efficientnet_b0 has ~50 such steps
  const int64_t key[8] = {T, units, P, mr, panelsM, minP, minC, cMajor ? 1 : 0};
  uint64_t h = 1469598103934665603ull;
  for (int64_t k : key) h = (h ^ uint64_t(k)) * 1099511628211ull;
  Entry& e = cache[(h >> 32) % 256];
  if (std::equal(key, key + 8, e.key)) return e.grid;
  e.grid = convGridSearch(T, units, P, mr, panelsM, minP, minC, cMajor);
  std::copy(key, key + 8, e.key);
  return e.grid;
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
