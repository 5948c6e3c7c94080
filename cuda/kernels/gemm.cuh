// The tiled SIMT FP32 GEMM of the CUDA backend: one block-tile mainloop (shared-memory
// tiles, register-prefetched double buffering, a TM x TN register tile per thread) that the
// GEMM and the implicit-GEMM convolution (conv.cuh) instantiate with their own operand
// loaders and fused epilogues. Compiled by nvcc (gemm.cu) and by the host compiler for cuda/sim.
#pragma once

#include <cstdint>

#include "cuda/kernels/activation.cuh"
#include "cuda/kernels/compat.cuh"
#include "cuda/kernels/linear_args.h"
#include "cuda/types.h"

namespace anvil::cuda::kernels {

// The epilogue's activation is a kernel argument, not a template parameter: the branch is
// uniform across the grid and runs once per output element after a K-long loop, so it costs
// nothing measurable and saves 6x the instantiations (nvcc time is the scarce thing here).
// kNoActivation, or static_cast<std::int32_t>(Activation).
inline constexpr std::int32_t kNoActivation = -1;

// alpha, beta: the parameters of LeakyRelu (alpha) and HardSigmoid (alpha, beta), with the
// reference's formulas and float operation order (ir/ops/anvil_linear.h activate()).
__device__ __forceinline__ float applyEpilogueActivation(std::int32_t act, float v, float alpha, float beta) {
  switch (act) {
    case static_cast<std::int32_t>(Activation::kRelu):
      return ActivationOp<Activation::kRelu>::apply(v);
    case static_cast<std::int32_t>(Activation::kSigmoid):
      return ActivationOp<Activation::kSigmoid>::apply(v);
    case static_cast<std::int32_t>(Activation::kTanh):
      return ActivationOp<Activation::kTanh>::apply(v);
    case static_cast<std::int32_t>(Activation::kGeluErf):
      return ActivationOp<Activation::kGeluErf>::apply(v);
    case static_cast<std::int32_t>(Activation::kSilu):
      return ActivationOp<Activation::kSilu>::apply(v);
    case static_cast<std::int32_t>(Activation::kLeakyRelu):
      return v < 0.0f ? alpha * v : v;  // NaN stays NaN
    case static_cast<std::int32_t>(Activation::kHardSigmoid):
      return fmaxf(0.0f, fminf(1.0f, alpha * v + beta));
    case static_cast<std::int32_t>(Activation::kHardSwish):
      return v * fmaxf(0.0f, fminf(1.0f, v / 6.0f + 0.5f));
    case static_cast<std::int32_t>(Activation::kGeluTanh): {
      const float k = 0.79788456080286535588f;  // sqrt(2 / pi)
      return 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
    }
    default:
      return v;
  }
}

// The epilogue's clip after the activation, with ONNX Clip's comparisons (NaN stays NaN; the
// default infinite bounds leave every value as it is).
__device__ __forceinline__ float applyEpilogueClip(float v, float lo, float hi) {
  if (v < lo) v = lo;
  if (v > hi) v = hi;
  return v;
}

// A block tile of BM x BN outputs stepping BK along K; each thread owns TM x TN outputs at
// rows ty + i * (BM / TM) and columns tx + j * (BN / TN). The strided (not contiguous) register
// tile makes a warp's shared-memory reads conflict-free: 16 consecutive tx read 16 consecutive
// words of a B row and the two ty of a warp read two broadcast words of an A row.
template <int BM_, int BN_, int BK_, int TM_, int TN_>
struct SimtTile {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
  static constexpr int kThreadsM = BM / TM;
  static constexpr int kThreadsN = BN / TN;
  static constexpr int kThreads = kThreadsM * kThreadsN;
  static constexpr int kALoads = BM * BK / kThreads;  // A elements each thread stages per step
  static constexpr int kBLoads = BK * BN / kThreads;
  static_assert(BM % TM == 0 && BN % TN == 0, "the register tile divides the block tile");
  static_assert(BM * BK % kThreads == 0 && BK * BN % kThreads == 0,
                "every thread stages the same number of A and B elements");
};

// The registered tile: 64x64x16 with 4x4 per thread, 256 threads, 16.6 KiB of shared memory
// (two buffers of A and B, each row padded by one word). The classic SIMT shape: 16 FMAs per
// 8 shared loads per thread and k step. 8x8 per thread (128x128 tiles) halves the shared
// traffic per FMA but quarters the block count, which the zoo's linear layers (a few hundred
// rows, N and K up to 3072) cannot fill a large GPU with; a later variant for big GEMMs. Not
// yet timed on a GPU.
using GemmTile64x64 = SimtTile<64, 64, 16, 4, 4>;

// The mainloop over every (batch, tile row, tile column) this block owns; grid-stride in all
// three grid dimensions, so any grid covers any problem. `P` is the problem:
//   kAKContiguous / kBKContiguous: whether consecutive k are adjacent in memory (the staging
//     order follows the contiguous direction so that a warp's global loads coalesce);
//   batches(), m(), n(), k();
//   loadA(batch, m, k): A(m, k) or 0 outside [m(), k()];
//   column(batch, n) -> BColumn and loadB(column, k): B(k, n) or 0 outside (the column's
//     addressing, e.g. im2col's pixel decomposition, is worked out once per tile);
//   store(batch, m, n, acc): the epilogue for an in-bounds output.
// Each output is one thread's fmaf chain over k in increasing order from 0: bitwise the same
// for every grid and every tile.
template <class Tile, class P>
__device__ __forceinline__ void simtGemmMainloop(const P& p) {
  constexpr int BM = Tile::BM, BN = Tile::BN, BK = Tile::BK, TM = Tile::TM, TN = Tile::TN;
  // +1 word per row: the k-contiguous staging order writes down a column of the tile, and an
  // unpadded 64-word row would put all 16 of those writes in one bank.
  __shared__ float as[2][BK][BM + 1];
  __shared__ float bs[2][BK][BN + 1];

  const int tid = static_cast<int>(threadIdx.x);
  const int tx = tid % Tile::kThreadsN;
  const int ty = tid / Tile::kThreadsN;
  const std::int64_t tilesM = (p.m() + BM - 1) / BM;
  const std::int64_t tilesN = (p.n() + BN - 1) / BN;
  const std::int64_t kTiles = (p.k() + BK - 1) / BK;

  // Where this thread's staged elements sit in the tile: fixed for the whole K loop.
  int aRow[Tile::kALoads], aK[Tile::kALoads], bCol[Tile::kBLoads], bK[Tile::kBLoads];
  ANVIL_UNROLL
  for (int r = 0; r < Tile::kALoads; ++r) {
    const int e = tid + r * Tile::kThreads;
    aRow[r] = P::kAKContiguous ? e / BK : e % BM;
    aK[r] = P::kAKContiguous ? e % BK : e / BM;
  }
  ANVIL_UNROLL
  for (int r = 0; r < Tile::kBLoads; ++r) {
    const int e = tid + r * Tile::kThreads;
    bCol[r] = P::kBKContiguous ? e / BK : e % BN;
    bK[r] = P::kBKContiguous ? e % BK : e / BN;
  }

  for (std::int64_t batch = blockIdx.z; batch < p.batches(); batch += gridDim.z) {
    for (std::int64_t tm = blockIdx.y; tm < tilesM; tm += gridDim.y) {
      for (std::int64_t tn = blockIdx.x; tn < tilesN; tn += gridDim.x) {
        const std::int64_t m0 = tm * BM, n0 = tn * BN;
        typename P::BColumn cols[Tile::kBLoads];
        ANVIL_UNROLL
        for (int r = 0; r < Tile::kBLoads; ++r) cols[r] = p.column(batch, n0 + bCol[r]);

        float ra[Tile::kALoads], rb[Tile::kBLoads];
        auto fetch = [&](std::int64_t k0) {
          ANVIL_UNROLL
          for (int r = 0; r < Tile::kALoads; ++r) ra[r] = p.loadA(batch, m0 + aRow[r], k0 + aK[r]);
          ANVIL_UNROLL
          for (int r = 0; r < Tile::kBLoads; ++r) rb[r] = p.loadB(cols[r], k0 + bK[r]);
        };
        auto stage = [&](int buf) {
          ANVIL_UNROLL
          for (int r = 0; r < Tile::kALoads; ++r) as[buf][aK[r]][aRow[r]] = ra[r];
          ANVIL_UNROLL
          for (int r = 0; r < Tile::kBLoads; ++r) bs[buf][bK[r]][bCol[r]] = rb[r];
        };

        float acc[TM][TN];
        ANVIL_UNROLL
        for (int i = 0; i < TM; ++i) {
          ANVIL_UNROLL
          for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;
        }

        // Double buffering with one barrier per k step: step t computes from buffer t & 1
        // while the global loads of step t + 1 are in flight in registers, then stages them
        // into the other buffer, which nobody reads until after the barrier. The barrier at
        // the end of the last step also guards buffer 0 against the next tile's prologue.
        if (kTiles > 0) {
          fetch(0);
          stage(0);
          __syncthreads();
        }
        for (std::int64_t t = 0; t < kTiles; ++t) {
          const int buf = static_cast<int>(t & 1);
          const bool more = t + 1 < kTiles;
          if (more) fetch((t + 1) * BK);
          ANVIL_UNROLL
          for (int kk = 0; kk < BK; ++kk) {
            float a[TM], b[TN];
            ANVIL_UNROLL
            for (int i = 0; i < TM; ++i) a[i] = as[buf][kk][ty + i * Tile::kThreadsM];
            ANVIL_UNROLL
            for (int j = 0; j < TN; ++j) b[j] = bs[buf][kk][tx + j * Tile::kThreadsN];
            ANVIL_UNROLL
            for (int i = 0; i < TM; ++i) {
              ANVIL_UNROLL
              for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
            }
          }
          if (more) stage(buf ^ 1);
          __syncthreads();
        }

        ANVIL_UNROLL
        for (int i = 0; i < TM; ++i) {
          const std::int64_t m = m0 + ty + i * Tile::kThreadsM;
          if (m >= p.m()) continue;
          ANVIL_UNROLL
          for (int j = 0; j < TN; ++j) {
            const std::int64_t n = n0 + tx + j * Tile::kThreadsN;
            if (n < p.n()) p.store(batch, m, n, acc[i][j]);
          }
        }
      }
    }
  }
}

// ---- GEMM: C = act(alpha * op(A) op(B) + bias[n] + beta * Z), batched, f32 or f16/bf16 ----

template <typename T, bool TransA, bool TransB>
struct GemmProblem {
  static constexpr bool kAKContiguous = !TransA;
  static constexpr bool kBKContiguous = TransB;
  GemmArgsOf<T> g;

  __device__ __forceinline__ std::int64_t batches() const { return g.batch; }
  __device__ __forceinline__ std::int64_t m() const { return g.m; }
  __device__ __forceinline__ std::int64_t n() const { return g.n; }
  __device__ __forceinline__ std::int64_t k() const { return g.k; }

  __device__ __forceinline__ float loadA(std::int64_t batch, std::int64_t m,
                                         std::int64_t k) const {
    if (m >= g.m || k >= g.k) return 0.0f;
    const T* a = g.a + batch * g.strideA;
    return toFloat(TransA ? a[k * g.lda + m] : a[m * g.lda + k]);
  }

  struct BColumn {
    const T* p;  // element (k = 0, n) of this batch's B; null past N
  };
  __device__ __forceinline__ BColumn column(std::int64_t batch, std::int64_t n) const {
    if (n >= g.n) return BColumn{nullptr};
    return BColumn{g.b + batch * g.strideB + (TransB ? n * g.ldb : n)};
  }
  __device__ __forceinline__ float loadB(const BColumn& col, std::int64_t k) const {
    if (col.p == nullptr || k >= g.k) return 0.0f;
    return toFloat(TransB ? col.p[k] : col.p[k * g.ldb]);
  }

  __device__ __forceinline__ void store(std::int64_t batch, std::int64_t m, std::int64_t n,
                                        float acc) const {
    float v = g.alpha * acc;
    if (g.bias != nullptr) v += toFloat(g.bias[n]);
    if (g.z != nullptr) v += g.beta * toFloat(g.z[batch * g.strideZ + m * g.ldz + n]);
    g.c[batch * g.strideC + m * g.ldc + n] = fromFloat<T>(applyEpilogueClip(applyEpilogueActivation(g.act, v, g.actAlpha, g.actBeta), g.clipLo, g.clipHi));
  }
};

// Launch with Tile::kThreads threads in x; grid (N tiles, M tiles, batch), any of them may be
// smaller (the blocks stride). T: float, or __half / __nv_bfloat16 inputs and outputs with f32
// accumulation ("f16_gemm_simt_..."): the SIMT path for half types, which the sim can run,
// until tensor-core (mma) kernels come with a sim fallback.
template <typename T, bool TransA, bool TransB, class Tile>
__global__ void __launch_bounds__(Tile::kThreads) gemm_simt(GemmArgsOf<T> args) {
  simtGemmMainloop<Tile>(GemmProblem<T, TransA, TransB>{args});
}

}  // namespace anvil::cuda::kernels
