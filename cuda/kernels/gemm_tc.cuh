// The tensor-core GEMM of the CUDA backend: f32 activations and f16 / bf16 operands multiplied
// by WMMA 16x16x16 fragments with f32 accumulation, and the SIMT GEMM's fused epilogue.
// Compiled by nvcc (gemm_tc.cu, sm_70+) and by the host compiler for cuda/sim, where
// cuda/sim/wmma.h emulates the fragments.
#pragma once

#include <cstdint>

#include "cuda/kernels/compat.cuh"
#include "cuda/kernels/gemm.cuh"  // applyEpilogueActivation, applyEpilogueClip
#include "cuda/kernels/gemm_tc_args.h"

namespace anvil::cuda::kernels {

// One block of 4 warps owns a 64x64 tile of C. Per K stage of 16, every thread loads 8
// elements of A (f32, rounded to T) and 8 of B (T) into registers while the warps multiply
// the other shared buffer; a warp's 32x32 sub-tile is 2 x 2 accumulator fragments. Shared
// rows are padded (+8 operands, +4 floats) to spread the fragment loads over the banks, which
// keeps every fragment pointer 256-bit aligned and every ldm a multiple of 16 bytes as WMMA
// requires. Out-of-range rows, columns and k are staged as zeros, so tails of any size run
// the same fragments. The epilogue goes through shared memory: the fragments' element-to-lane
// mapping is opaque, so each warp stores its accumulators to a 64x64 f32 tile and every
// thread then finishes 32 outputs with coalesced, bounds-checked stores.
template <typename T>
__global__ void __launch_bounds__(kGemmTcThreads) gemm_wmma(GemmTcArgsOf<T> g) {
  namespace wmma = nvcuda::wmma;
  constexpr int BM = kGemmTcTileM, BN = kGemmTcTileN, BK = kGemmTcTileK;
  constexpr int kAStride = BK + 8, kBStride = BN + 8, kCStride = BN + 4;
  constexpr int kLoads = BM * BK / kGemmTcThreads;  // = BK * BN / kGemmTcThreads
  static_assert(BM * BK == BK * BN && BM * BK % kGemmTcThreads == 0, "even staging");
  static_assert(BM == 64 && BN == 64 && kGemmTcThreads == 128, "2 x 2 warps of 32 x 32");
  __shared__ __align__(32) T as[2][BM][kAStride];
  __shared__ __align__(32) T bs[2][BK][kBStride];
  __shared__ __align__(32) float cs[BM][kCStride];

  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / 32;
  const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;  // the warp's sub-tile in the block tile
  const bool transA = g.transA != 0, transB = g.transB != 0;
  const std::int64_t tilesM = (g.m + BM - 1) / BM;
  const std::int64_t tilesN = (g.n + BN - 1) / BN;
  const std::int64_t kTiles = (g.k + BK - 1) / BK;
  const T zero = fromFloat<T>(0.0f);

  // Staged element r of this thread: tid + r * threads in the order of the operand's
  // contiguous direction, so that consecutive threads read consecutive addresses.
  auto aRowOf = [&](int e) { return transA ? e % BM : e / BK; };
  auto aKOf = [&](int e) { return transA ? e / BM : e % BK; };
  auto bColOf = [&](int e) { return transB ? e / BK : e % BN; };
  auto bKOf = [&](int e) { return transB ? e % BK : e / BN; };

  for (std::int64_t batch = blockIdx.z; batch < g.batch; batch += gridDim.z) {
    const float* a = g.a + batch * g.strideA;
    const T* b = g.b + batch * g.strideB;
    for (std::int64_t tm = blockIdx.y; tm < tilesM; tm += gridDim.y) {
      for (std::int64_t tn = blockIdx.x; tn < tilesN; tn += gridDim.x) {
        const std::int64_t m0 = tm * BM, n0 = tn * BN;
        T ra[kLoads], rb[kLoads];
        auto fetch = [&](std::int64_t k0) {
          ANVIL_UNROLL
          for (int r = 0; r < kLoads; ++r) {
            const int e = tid + r * kGemmTcThreads;
            const std::int64_t m = m0 + aRowOf(e), k = k0 + aKOf(e);
            ra[r] = m < g.m && k < g.k ? fromFloat<T>(transA ? a[k * g.lda + m] : a[m * g.lda + k])
                                       : zero;
          }
          ANVIL_UNROLL
          for (int r = 0; r < kLoads; ++r) {
            const int e = tid + r * kGemmTcThreads;
            const std::int64_t n = n0 + bColOf(e), k = k0 + bKOf(e);
            rb[r] = n < g.n && k < g.k ? (transB ? b[n * g.ldb + k] : b[k * g.ldb + n]) : zero;
          }
        };
        auto stage = [&](int buf) {
          ANVIL_UNROLL
          for (int r = 0; r < kLoads; ++r) {
            const int e = tid + r * kGemmTcThreads;
            as[buf][aRowOf(e)][aKOf(e)] = ra[r];
            bs[buf][bKOf(e)][bColOf(e)] = rb[r];
          }
        };

        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
        ANVIL_UNROLL
        for (int i = 0; i < 2; ++i) {
          ANVIL_UNROLL
          for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
        }

        // Double buffering with one barrier per stage, as in simtGemmMainloop: stage t
        // multiplies buffer t & 1 while stage t + 1's loads are in flight, then writes them to
        // the other buffer, which nobody reads before the barrier.
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
          for (int kk = 0; kk < BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[2];
            ANVIL_UNROLL
            for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], &as[buf][wm + i * 16][kk], kAStride);
            ANVIL_UNROLL
            for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], &bs[buf][kk][wn + j * 16], kBStride);
            ANVIL_UNROLL
            for (int i = 0; i < 2; ++i) {
              ANVIL_UNROLL
              for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
            }
          }
          if (more) stage(buf ^ 1);
          __syncthreads();
        }

        ANVIL_UNROLL
        for (int i = 0; i < 2; ++i) {
          ANVIL_UNROLL
          for (int j = 0; j < 2; ++j) {
            wmma::store_matrix_sync(&cs[wm + i * 16][wn + j * 16], acc[i][j], kCStride,
                                    wmma::mem_row_major);
          }
        }
        __syncthreads();
        for (int e = tid; e < BM * BN; e += kGemmTcThreads) {
          const std::int64_t m = m0 + e / BN, n = n0 + e % BN;
          if (m >= g.m || n >= g.n) continue;
          float v = g.alpha * cs[e / BN][e % BN];
          if (g.bias != nullptr) v += g.bias[n];
          if (g.z != nullptr) v += g.beta * g.z[batch * g.strideZ + m * g.ldz + n];
          g.c[batch * g.strideC + m * g.ldc + n] =
              applyEpilogueClip(applyEpilogueActivation(g.act, v), g.clipLo, g.clipHi);
        }
        // cs is rewritten by the next tile's fragments (with no stage barrier when K is 0).
        __syncthreads();
      }
    }
  }
}

}  // namespace anvil::cuda::kernels
