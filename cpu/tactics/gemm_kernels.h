// The f32 GEMM engine behind the native MatMul, Gemm and Conv kernels
// (cpu/tactics/native_linear.cpp): register-blocked micro-kernels (portable 4x8, AVX2 6x16,
// AVX-512 14x32 and, for few rows, 8x32) over packed panels, the packers that lay operands out as panels (once at
// build time for constant weights, per run into the workspace otherwise), and two
// allocation-free drivers: B-stationary (MatMul/Gemm: B packed, A packed per task, or for
// M <= 4 read in place by the small-M kernels; B may also be stored as IEEE half,
// gemmPackedBHalf, for the FP16 kernels of cpu/tactics/native_half.cpp) and A-stationary
// (Conv: the filter packed, the input packed per task, e.g. as implicit im2col). Threads come from the step's
// executor (runtime/executor.h).
// Speed (one thread, NativeLinearBench.DISABLED_GemmVsPeak on the shared AVX-512 dev box,
// whose FMA loop peaks at 115-130 GFLOP/s with AVX2 and 215-240 with AVX-512 as its clock
// drifts): M=N=K 512 at 94-96% (AVX2) and 81-86% (AVX-512) of the peak measured next to it
// (gemmPackedB alone, DISABLED_GemmDriver: AVX-512 up to 93%), 1024 at 84-96% and 74-83%.
// gemmPackedB alone (DISABLED_GemmDriver, same box, loaded: load average 4-5), % of the
// peak measured next to it: 512^3 93-94% (AVX2) and 80-83% (AVX-512), 1024^3 88-90% and
// 75-82%; the register tile alone on L1-resident operands (DISABLED_MicroKernel) 98-100%
// and 84-88% (the same 14x32 loop in a standalone program: 86-94%, depending on the load),
// so most of the AVX-512 shortfall is already in the 14x32 / 8x32 micro-kernels.
// Tried against that gap and measured no faster (A/B interleaved in one process or in a
// standalone copy of the driver's loops, medians of 5-7 rounds, load average 2-7): the rows of
// a block balanced across its tiles (49 as 13+12+12+12, 197 as 2 x 14 + 13 x 13; the same
// bits): 49x3072x768 81 -> 75% of peak, the 197-row ViT shapes within noise; B of step k+1
// loaded before step k's FMAs; 12x32, 8x48 and 6x64 tiles (alone on L1 data 85-91%, as 14x32);
// C kept in L2 across K blocks (N in chunks of 4 or 8 panels); C prefetched into L2 first and
// L1 late, as NTA, or not at all; mc 448 or all of M; kc 128, 192, 512. The standalone loops
// at 1024^3 with every B panel and C tile pinned in L1 still reached only 83% (512^3: 87%).
// Packing A per K block costs 3-4 points (the driver with packA skipped: 512^3 83 -> 87%,
// 1024^3 81 -> 84%, 196x1536x384 83 -> 85%), but neither an AVX-512 packer for the 14 rows
// (one 16x16 transpose per 16 k: 64 shuffles for 224 floats against 48 for 112) nor
// prefetching A's source rows 32-128 floats ahead (T0 or NTA), nor fetching the next A
// block into L2 a few lines per micro-kernel call during the current one, measured faster.
// The AVX2 tile's k loop four steps a trip, its next-panel prefetch once a trip (it was one
// k a trip with the prefetch address computed every step, ~9 scalar uops to 20 vector ones:
// the prefetching kernel ran 5-8% behind the plain one): gemmPackedB (DISABLED_GemmDriver,
// AVX2 on the AMX Xeon, % of the AVX2 peak measured next to it) 512^3 86-89 -> 93-95%,
// 197x192x768 (MxKxN) 86-90 -> 96-98%, 128x768x3072 84-89 -> 91-95%; weights cold
// (ANVIL_BENCH_COLD=200) 49x3072x768 103-107 -> 114 GFLOP/s; same engines, old and new
// library alternated (ANVIL_MAX_ISA=avx2, one thread, medians of 3): vit_small 9.2 -> 8.9 ms,
// bert_base4 65.2 -> 61.7; the same bits.
// On a Zen 1 EPYC (AVX2 on 128-bit halves, 32 KiB L1d, 512 KiB L2, 8 MiB L3 shared by its 2
// cores), one thread, in thread CPU time against the FMA loop's 43-47 GFLOP/s (load average
// 6-16 from other work, which wall-clock timing counts): the 6x16 tile alone on L1
// data 95-100% (kc 64 and 256), so the tile and the Intel-tuned blocking (kc 256, mc 72)
// suit it; gemmPackedB 512^3 92-93% and 1024^3 91% before its C-row prefetch, 93-94% after;
// 128x768x3072 (MxKxN) 88.5 -> 92.5%, whose 66 x 3072 C block outgrows L2. onnxruntime 1.32's
// MatMul there runs within +-3% of it on the BERT/ViT/ResNet shapes at one thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>

#include "runtime/executor.h"

namespace anvil::cpu::tactics {

// A strided matrix view: element (r, c) is p[r * rs + c * cs]. Transposes are strides.
struct StridedMatrix {
  const float* p = nullptr;
  int64_t rs = 0, cs = 0;
  float at(int64_t r, int64_t c) const { return p[r * rs + c * cs]; }
};

// Micro-kernel families; MR x NR is the register tile. The value is stored in prepared
// params: never renumber.
enum class GemmIsa : int32_t {
  kPortable4x8 = 0,   // GCC vector extensions (SSE on x86-64), any CPU
  kAvx2_6x16 = 1,     // needs avx2 + fma
  kAvx512_14x32 = 2,  // needs avx512f
  // Few rows (1x1 Conv with 16..32 output channels: M = 16 is one 8-row tile pair here
  // against a 14-row tile plus a 2-row one, whose 4 accumulator chains leave half the FMA
  // issue idle); a second AVX-512 family the builder times against kAvx512_14x32.
  kAvx512_8x32 = 3,  // needs avx512f
};

// C[R x ncols] (+)= Apanel[kc x MR] (first R rows) * Bpanel[kc x NR], row stride ldc.
using MicroKernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int ncols, bool acc);
// The share of the next B panel a row tile fetches into L2 along its k loop: `rows` k rows
// (NR elements each) from p, spread evenly over its kc steps (rows <= kc; 0: none).
struct PanelPrefetch {
  const void* p = nullptr;
  int64_t rows = 0;
};
// Tile `tile` of `tiles` row tiles over a panel fetches k rows [tile * kc / tiles,
// (tile + 1) * kc / tiles) of the next panel (which starts at nextPanel, nr elements a row):
// together the tiles fetch each of its kc rows once.
template <typename TB>
inline PanelPrefetch panelShare(const TB* nextPanel, int nr, int64_t kc, int64_t tile, int64_t tiles) {
  const int64_t r0 = tile * kc / tiles, r1 = (tile + 1) * kc / tiles;
  return {nextPanel + r0 * nr, r1 - r0};
}
// The kernels' step through their share: k step k (0 <= k < kc) fetches row (k * step) >> 32
// of it, which visits every row 0..rows-1 and no other (rows <= kc <= 65536).
inline int64_t prefetchStep(int64_t rows, int64_t kc) { return kc > 0 ? (rows << 32) / kc : 0; }
// MicroKernel that also runs PanelPrefetch (same bits).
using MicroKernelNext = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int ncols, bool acc,
                                 PanelPrefetch pf);

// The small-M kernel: C[R x cols] (+)= alpha * A[R x kc] * P consecutive panels of packed B
// (panel p at b + p * panelStride, row-major kc x NR), A read in place (element (r, k) at
// a[r * ars + k * acs]: no packing), cols = (P - 1) * NR + lastCols. Per element the same
// products in the same order as the micro-kernel on packed A, so the same bits.
using GemvKernel = void (*)(int64_t kc, const float* a, int64_t ars, int64_t acs, float alpha, const float* b,
                            int64_t panelStride, float* c, int64_t ldc, int lastCols, bool acc);

// The same kernels over B panels of IEEE half (FP16 weights: cpu/tactics/native_half.cpp),
// widened exactly by vcvtph2ps: the f32 kernel's FMAs on the same values in the same order.
using MicroKernelF16 = void (*)(int64_t kc, const float* a, const uint16_t* b, float* c, int64_t ldc, int ncols,
                                bool acc);
using GemvKernelF16 = void (*)(int64_t kc, const float* a, int64_t ars, int64_t acs, float alpha, const uint16_t* b,
                               int64_t panelStride, float* c, int64_t ldc, int lastCols, bool acc);

// Tiles and cache blocks of one family. kc fixes the K blocks, so it fixes the numerics;
// mc and nc only bound the per-task buffers (work splits below them change nothing).
struct GemmConfig {
  int mr, nr;
  int64_t mc, kc, nc;
  const MicroKernel* kernels;  // kernels[R-1] computes R rows
  // Small M (batch-1 MLPs and transformers): M <= gemvRows runs the GemvKernels, P panels
  // at a time so that R x P x (NR / lanes) accumulators hide the FMA latency;
  // gemv[(R-1) * kGemvMaxPanels + (P-1)]. gemvRows = 0: no such path.
  int gemvRows = 0;
  int gemvPanels[8] = {};  // P for R = 1..gemvRows
  const GemvKernel* gemv = nullptr;
  // The f16-B kernels (null for the portable family): the AVX2 ones also need f16c.
  const MicroKernelF16* kernelsF16 = nullptr;
  const GemvKernelF16* gemvF16 = nullptr;
  // kernels that also fetch a share of the next B panel into L2 (null: none), for the row
  // tiles of each panel of a prepacked weight, whose panels are contiguous.
  const MicroKernelNext* kernelsNext = nullptr;
};
inline constexpr int kGemvMaxPanels = 6;
const GemmConfig& gemmConfig(GemmIsa isa);

inline int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t roundUp(int64_t a, int64_t b) { return ceilDiv(a, b) * b; }

// The K block length for a product of depth K: blocks of at most c.kc that split K evenly
// (576 = 3 x 192 rather than 256 + 256 + 64: a short last block costs a read-modify-write
// of C for little work; AVX-512 3x3 Conv with 64 channels lost 3-5% that way). Fixes the
// packed layouts and the numerics together with K.
inline int64_t kBlockOf(const GemmConfig& c, int64_t K) { return K <= c.kc ? K : ceilDiv(K, ceilDiv(K, c.kc)); }

// Packed layouts. B [K x N]: K block p (rows k0..k0+kc, kc = kBlockOf(K) but for the last
// block) occupies k0 * Npad floats onwards
// (Npad = N rounded up to nr), panel q of it kc * nr floats at + q * kc * nr, row-major
// k then the nr columns (zeros past N). A [M x K] likewise: K block at k0 * Mpad, panel i
// (mr rows) at + i * kc * mr, each k holding mr row values (zeros past M).
inline int64_t packedBFloats(const GemmConfig& c, int64_t K, int64_t N) { return K * roundUp(N, c.nr); }
inline int64_t packedAFloats(const GemmConfig& c, int64_t M, int64_t K) { return K * roundUp(M, c.mr); }

// Panels [q0, q1) of B for every K block.
void packBPanels(const GemmConfig& c, int64_t K, int64_t N, StridedMatrix B, int64_t q0, int64_t q1, float* dst);
// Row panels [i0, i1) (in units of mr) of A * alpha for every K block.
void packAPanels(const GemmConfig& c, int64_t M, int64_t K, StridedMatrix A, float alpha, int64_t i0, int64_t i1,
                 float* dst);
// [kc x nc] block of B at (k0, j0) as panels of nr columns (panel q at dst + q * kc * nr).
void packBBlock(StridedMatrix B, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst);

// Runs on each finished block of C (all of K accumulated), while it is in cache: rows
// [i0, i0 + rows), columns [j0, j0 + cols), c = &C(i0, j0), row stride ldc. Blocks are
// disjoint; several tasks may run it at once. Never allocates (a FunctionRef).
using BlockEpilogue = runtime::FunctionRef<void(int64_t i0, int64_t rows, int64_t j0, int64_t cols, float* c, int64_t ldc)>;

// Per-task scratch carved from a kernel's workspace: task t owns floats [t*stride, (t+1)*stride).
struct TaskSlots {
  float* base = nullptr;
  int64_t stride = 0;  // floats, a multiple of 16 (64 bytes)
  int tasks = 1;
  float* slot(int64_t t) const { return base + t * stride; }
};

// How gemmPackedB splits C into work items for `tasks` tasks: mBlocks blocks of rows (each
// at most about c.mc rows, whole tiles) x nSplit ranges of B's panels, item i = (i / nSplit,
// i % nSplit), task t taking items [rangeBegin(items, t, tasks), rangeBegin(items, t + 1, tasks)).
struct GemmSplit {
  int64_t mBlocks = 1, nSplit = 1;
};
GemmSplit gemmPackedBSplit(const GemmConfig& c, int64_t M, int64_t N, int64_t tasks);

// A task's consecutive items [item, next) of one M block (next <= end, the task's last item
// + 1) as one range of panels [q0, q1): the task packs that block of A once for all of them,
// not once an item, and computes every element of C as the items would (the same bits). At
// two threads bert_base4's 128x3072x768 (four items a task) packed its 1.5 MB A four times
// a task: 2.50 -> 2.09 ms.
struct GemmItemRun {
  int64_t mb, q0, q1, next;
};
inline GemmItemRun gemmItemRun(int64_t item, int64_t end, int64_t nSplit, int64_t panels) {
  GemmItemRun r;
  r.mb = item / nSplit;
  r.next = std::min(end, (r.mb + 1) * nSplit);
  const int64_t js = item % nSplit;
  r.q0 = panels * js / nSplit;
  r.q1 = panels * (js + r.next - item) / nSplit;
  return r;
}

// Floats one task of gemmPackedB needs (its A block).
int64_t gemmPackedBSlotFloats(const GemmConfig& c, int64_t K);

// C[M,N] (row stride ldc) = alpha * A * B with B packed (packBPanels over all panels),
// then the epilogue on each finished block. Up to slots.tasks tasks on `ex` (null: serial).
// Every element of C is computed by one task in a fixed order: bitwise identical for any
// task count.
void gemmPackedB(const GemmConfig& c, int64_t M, int64_t N, int64_t K, float alpha, StridedMatrix A, const float* Bp,
                 float* C, int64_t ldc, runtime::Executor* ex, const TaskSlots& slots, const BlockEpilogue* ep);

// gemmPackedB over B panels stored as IEEE half (packBPanels' layout, 2 bytes an element):
// the same blocks, kernels and order as gemmPackedB on the widened values, so the same bits.
// Needs the family's kernelsF16 and gemmPackedBHalfSlotFloats per task (the A block plus a
// B panel widened to f32 for the blocks of several row tiles).
int64_t gemmPackedBHalfSlotFloats(const GemmConfig& c, int64_t K);
void gemmPackedBHalf(const GemmConfig& c, int64_t M, int64_t N, int64_t K, float alpha, StridedMatrix A,
                     const uint16_t* Bp, float* C, int64_t ldc, runtime::Executor* ex, const TaskSlots& slots,
                     const BlockEpilogue* ep);

// Packs the [kc x nc] block of B's columns j0.. at K offset k0 into panels of nr (panel q at
// dst + q * kc * nr, zeros past nc); scratch: the task's own spare floats (scratchFloats).
// Must not allocate; called concurrently by different tasks with different scratch.
class BPacker {
 public:
  virtual void pack(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst, float* scratch) const = 0;

 protected:
  ~BPacker() = default;
};

// B from a strided matrix (scratch unused).
class StridedBPacker final : public BPacker {
 public:
  explicit StridedBPacker(StridedMatrix b) : b_(b) {}
  void pack(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst, float*) const override {
    packBBlock(b_, k0, kc, j0, nc, nr, dst);
  }

 private:
  StridedMatrix b_;
};

// Floats one task of gemmPackedA needs for its B block (plus the packer's scratch).
int64_t gemmPackedASlotFloats(const GemmConfig& c, int64_t scratchFloats);

// One A-stationary product: C[M, N] (row stride ldc) = Ap * B, Ap packed (packAPanels),
// B produced by the packer for columns [j0, j1). Runs serially in the calling task;
// `slot` holds gemmPackedASlotFloats floats. The epilogue sees the block after all of K.
// kBlock > 0 (at most c.kc) replaces kBlockOf(c, K) as the K block length, for operands
// packed with other blocks (the BF16 emulation of cpu/tactics/gemm_bf16.h).
void gemmPackedA(const GemmConfig& c, int64_t M, int64_t K, const float* Ap, const BPacker& B, int64_t j0, int64_t j1,
                 float* C, int64_t ldc, float* slot, const BlockEpilogue* ep, int64_t kBlock = 0);

// The elementwise epilogue of a linear op's output applied in registers by gemmPackedAFused
// (Conv: rows = output channels, a bias per row) and gemmPackedBFused (MatMul / Gemm: a bias
// per column): y = (acc + rowBias) [+ colBias[column]] then, with z, the residual added before
// (addFirst) or after the activation. The same operations, in the same order and lanes'
// arithmetic, as epilogueRow (native_linear_epilogue.h; both apply
// cpu/tactics/epilogue_act.h), so the same bits.
struct TileEpilogue {
  // Numbered as ir::linear::Activation (and epi::Act).
  enum Act : int32_t {
    kNone = 0, kRelu = 1, kClip = 2, kSigmoid = 3, kTanh = 4, kLeakyRelu = 5, kHardSigmoid = 6, kHardSwish = 7,
    kSilu = 8, kGelu = 9, kGeluTanh = 10, kActs = 11
  };
  const float* bias = nullptr;     // one per row of C, null: rowBias for every row
  const float* colBias = nullptr;  // one per column of C (gemmPackedBFused only), or null
  const float* z = nullptr;        // residual, laid out like C (row stride ldc), or null
  int32_t act = kNone;
  float p0 = 0.0f, p1 = 0.0f;      // Clip's bounds, LeakyRelu's alpha, HardSigmoid's alpha and beta
  float rowBias = 0.0f;
  bool addFirst = true;
};

// Whether gemmPackedAFused has tile kernels for this family (the vector ones).
bool gemmPackedAFusedSupports(const GemmConfig& c);

// gemmPackedA with the epilogue applied to each register tile of the last K block before
// it is stored: C is written once more, the residual read once, no second pass over the
// finished block. The same K blocks and sums as gemmPackedA, so the same bits.
void gemmPackedAFused(const GemmConfig& c, int64_t M, int64_t K, const float* Ap, const BPacker& B, int64_t j0,
                      int64_t j1, float* C, int64_t ldc, float* slot, const TileEpilogue& e, int64_t kBlock = 0);

// gemmPackedB with the epilogue `e` applied to each register tile of the last K block before
// it is stored (e.bias, e.colBias and e.z index C's rows and columns from C itself): the
// same K blocks and sums as gemmPackedB, so the same bits as gemmPackedB with `ep`
// doing the same epilogue in a pass. `ep` still runs on the blocks of the small-M kernels
// (M <= c.gemvRows: a pass over at most four rows in cache). Needs gemmPackedAFusedSupports(c).
void gemmPackedBFused(const GemmConfig& c, int64_t M, int64_t N, int64_t K, float alpha, StridedMatrix A,
                      const float* Bp, float* C, int64_t ldc, runtime::Executor* ex, const TaskSlots& slots,
                      const BlockEpilogue* ep, const TileEpilogue& e);

// Splits [0, n) into `tasks` contiguous ranges: range t is [n*t/tasks, n*(t+1)/tasks).
inline int64_t rangeBegin(int64_t n, int64_t t, int64_t tasks) { return n * t / tasks; }

}  // namespace anvil::cpu::tactics
