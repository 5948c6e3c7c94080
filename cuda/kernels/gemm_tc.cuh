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

// The mainloop over every (batch, tile row, tile column) this block owns, grid-stride in all
// three grid dimensions. One block of 4 warps owns a 64x64 tile of C. Per K stage of 16, every
// thread loads 8 elements of A and 8 of B (rounded to T) into registers while the warps
// multiply the other shared buffer; a warp's 32x32 sub-tile is 2 x 2 accumulator fragments.
// Shared rows are padded (+8 operands, +4 floats) to spread the fragment loads over the banks,
// which keeps every fragment pointer 256-bit aligned and every ldm a multiple of 16 bytes as
// WMMA requires. Out-of-range rows, columns and k are staged as zeros, so tails of any size run
// the same fragments. The epilogue goes through shared memory: the fragments' element-to-lane
// mapping is opaque, so each warp stores its accumulators to a 64x64 f32 tile and every thread
// then finishes 32 outputs with coalesced, bounds-checked stores. `P` is the problem, as
// simtGemmMainloop's (gemm.cuh) but with T operands:
//   aKContiguous() / bKContiguous(): whether consecutive k are adjacent in memory (uniform;
//     the staging order follows the contiguous direction so that a warp's loads coalesce);
//     kBAlongN: B is never k-contiguous (known at compile time);
//   batches(), m(), n(), k();
//   loadA(batch, m, k) -> T: A(m, k) rounded to T, or 0 outside [m(), k()];
//   column(batch, n) -> BColumn and loadB(column, k) -> T: B(k, n) or 0 outside (a column's
//     addressing is worked out once per tile);
//   store(batch, m, n, acc): the epilogue for an in-bounds output.
template <typename T, class P>
__device__ __forceinline__ void wmmaGemmMainloop(const P& p) {
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
  const bool aK = p.aKContiguous(), bK = !P::kBAlongN && p.bKContiguous();
  const std::int64_t tilesM = (p.m() + BM - 1) / BM;
  const std::int64_t tilesN = (p.n() + BN - 1) / BN;
  const std::int64_t kTiles = (p.k() + BK - 1) / BK;

  // Staged element r of this thread: tid + r * threads in the order of the operand's
  // contiguous direction, so that consecutive threads read consecutive addresses.
  auto aRowOf = [&](int e) { return aK ? e / BK : e % BM; };
  auto aKOf = [&](int e) { return aK ? e % BK : e / BM; };
  auto bColOf = [&](int e) { return bK ? e / BK : e % BN; };
  auto bKOf = [&](int e) { return bK ? e % BK : e / BN; };

  for (std::int64_t batch = blockIdx.z; batch < p.batches(); batch += gridDim.z) {
    for (std::int64_t tm = blockIdx.y; tm < tilesM; tm += gridDim.y) {
      for (std::int64_t tn = blockIdx.x; tn < tilesN; tn += gridDim.x) {
        const std::int64_t m0 = tm * BM, n0 = tn * BN;
        // Staged in n order, a thread's elements share one column (tid % BN): a problem that
        // always stages so (kBAlongN) keeps one, not kLoads copies of its addressing.
        static_assert(kGemmTcThreads % BN == 0, "one column per thread when staging along n");
        constexpr int kCols = P::kBAlongN ? 1 : kLoads;
        typename P::BColumn cols[kCols];
        ANVIL_UNROLL
        for (int r = 0; r < kCols; ++r) cols[r] = p.column(batch, n0 + bColOf(tid + r * kGemmTcThreads));
        T ra[kLoads], rb[kLoads];
        auto fetch = [&](std::int64_t k0) {
          ANVIL_UNROLL
          for (int r = 0; r < kLoads; ++r) {
            const int e = tid + r * kGemmTcThreads;
            ra[r] = p.loadA(batch, m0 + aRowOf(e), k0 + aKOf(e));
          }
          ANVIL_UNROLL
          for (int r = 0; r < kLoads; ++r) rb[r] = p.loadB(cols[kCols == 1 ? 0 : r], k0 + bKOf(tid + r * kGemmTcThreads));
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
          if (m < p.m() && n < p.n()) p.store(batch, m, n, cs[e / BN][e % BN]);
        }
        // cs is rewritten by the next tile's fragments (with no stage barrier when K is 0).
        __syncthreads();
      }
    }
  }
}

// ---- GEMM: C = clip(act(alpha * op(A) op(B) + bias[n] + beta * Z)), f32 A and C, T B ----

template <typename T>
struct GemmTcProblem {
  static constexpr bool kBAlongN = false;  // transB decides at run time
  GemmTcArgsOf<T> g;

  __device__ __forceinline__ bool aKContiguous() const { return g.transA == 0; }
  __device__ __forceinline__ bool bKContiguous() const { return g.transB != 0; }
  __device__ __forceinline__ std::int64_t batches() const { return g.batch; }
  __device__ __forceinline__ std::int64_t m() const { return g.m; }
  __device__ __forceinline__ std::int64_t n() const { return g.n; }
  __device__ __forceinline__ std::int64_t k() const { return g.k; }

  __device__ __forceinline__ T loadA(std::int64_t batch, std::int64_t m, std::int64_t k) const {
    if (m >= g.m || k >= g.k) return fromFloat<T>(0.0f);
    const float* a = g.a + batch * g.strideA;
    return fromFloat<T>(g.transA ? a[k * g.lda + m] : a[m * g.lda + k]);
  }

  struct BColumn {
    const T* p;  // element (k = 0, n) of this batch's B; null past N
  };
  __device__ __forceinline__ BColumn column(std::int64_t batch, std::int64_t n) const {
    if (n >= g.n) return BColumn{nullptr};
    return BColumn{g.b + batch * g.strideB + (g.transB ? n * g.ldb : n)};
  }
  __device__ __forceinline__ T loadB(const BColumn& col, std::int64_t k) const {
    if (col.p == nullptr || k >= g.k) return fromFloat<T>(0.0f);
    return g.transB ? col.p[k] : col.p[k * g.ldb];
  }

  __device__ __forceinline__ void store(std::int64_t batch, std::int64_t m, std::int64_t n,
                                        float acc) const {
    float v = g.alpha * acc;
    if (g.bias != nullptr) v += g.bias[n];
    if (g.z != nullptr) v += g.beta * g.z[batch * g.strideZ + m * g.ldz + n];
    g.c[batch * g.strideC + m * g.ldc + n] =
        applyEpilogueClip(applyEpilogueActivation(g.act, v, g.actAlpha, g.actBeta), g.clipLo, g.clipHi);
  }
};

// Launch with kGemmTcThreads threads in x; grid (N tiles, M tiles, batch), any of them may be
// smaller (the blocks stride).
template <typename T>
__global__ void __launch_bounds__(kGemmTcThreads) gemm_wmma(GemmTcArgsOf<T> args) {
  wmmaGemmMainloop<T>(GemmTcProblem<T>{args});
}

// ---- implicit-GEMM convolution: per group g, Y_g = W_g . im2col(X_g), as Conv2dProblem
// (conv.cuh) but with T weights and the im2col column rounded to T ----

template <typename T>
struct Conv2dTcProblem {
  static constexpr bool kBAlongN = true;
  Conv2dTcArgsOf<T> a;
  std::int64_t cg, kg;  // channels per group in and out
  std::int32_t rs, kdim;
  std::int64_t pixels, planeOut;

  __device__ __forceinline__ explicit Conv2dTcProblem(const Conv2dTcArgsOf<T>& args) : a(args) {
    cg = a.c / a.groups;
    kg = a.k / a.groups;
    rs = static_cast<std::int32_t>(a.r * a.s);
    kdim = static_cast<std::int32_t>(cg) * rs;
    planeOut = a.oh * a.ow;
    pixels = a.n * planeOut;
  }

  __device__ __forceinline__ bool aKContiguous() const { return true; }   // weight rows: (ci, ky, kx)
  __device__ __forceinline__ bool bKContiguous() const { return false; }  // neighbouring pixels
  __device__ __forceinline__ std::int64_t batches() const { return a.groups; }
  __device__ __forceinline__ std::int64_t m() const { return kg; }
  __device__ __forceinline__ std::int64_t n() const { return pixels; }
  __device__ __forceinline__ std::int64_t k() const { return kdim; }

  __device__ __forceinline__ T loadA(std::int64_t g, std::int64_t m, std::int64_t k) const {
    if (m >= kg || k >= kdim) return fromFloat<T>(0.0f);
    return a.weight[(g * kg + m) * kdim + k];
  }

  struct BColumn {
    const float* plane;  // channel g * cg of the pixel's image; null past the last pixel
    std::int32_t iy0, ix0;
  };
  __device__ __forceinline__ BColumn column(std::int64_t g, std::int64_t p) const {
    if (p >= pixels) return BColumn{nullptr, 0, 0};
    const std::int64_t img = p / planeOut;
    const std::int64_t q = p - img * planeOut;
    const std::int64_t oy = q / a.ow;
    const std::int64_t ox = q - oy * a.ow;
    return BColumn{a.x + (img * a.c + g * cg) * a.h * a.w,
                   static_cast<std::int32_t>(oy * a.strideH - a.padTop),
                   static_cast<std::int32_t>(ox * a.strideW - a.padLeft)};
  }
  __device__ __forceinline__ T loadB(const BColumn& col, std::int64_t k) const {
    if (col.plane == nullptr || k >= kdim) return fromFloat<T>(0.0f);
    const std::int32_t kk = static_cast<std::int32_t>(k);  // < 2^31: the launcher checks
    const std::int32_t ci = kk / rs;
    const std::int32_t t = kk - ci * rs;
    const std::int32_t ky = t / static_cast<std::int32_t>(a.s);
    const std::int32_t kx = t - ky * static_cast<std::int32_t>(a.s);
    // 32-bit window math: the padded extents stay below 2^31 (the launcher checks).
    const std::int32_t iy = col.iy0 + ky * a.dilationH;
    const std::int32_t ix = col.ix0 + kx * a.dilationW;
    if (iy < 0 || iy >= static_cast<std::int32_t>(a.h) || ix < 0 || ix >= static_cast<std::int32_t>(a.w)) {
      return fromFloat<T>(0.0f);
    }
    return fromFloat<T>(col.plane[(ci * a.h + iy) * a.w + ix]);
  }

  __device__ __forceinline__ void store(std::int64_t g, std::int64_t m, std::int64_t p,
                                        float acc) const {
    const std::int64_t co = g * kg + m;
    const std::int64_t img = p / planeOut;
    const std::int64_t q = p - img * planeOut;
    const std::int64_t at = (img * a.k + co) * planeOut + q;
    float v = acc;
    if (a.bias != nullptr) v += a.bias[co];
    if (a.z != nullptr) v += a.z[at];
    a.y[at] = applyEpilogueClip(applyEpilogueActivation(a.act, v, a.actAlpha, a.actBeta), a.clipLo, a.clipHi);
  }
};

// Launch with kGemmTcThreads threads in x; grid (pixel tiles, output-channel tiles per group,
// groups), any of them may be smaller (the blocks stride).
template <typename T>
__global__ void __launch_bounds__(kGemmTcThreads) conv2d_implicit_gemm_wmma(Conv2dTcArgsOf<T> args) {
  wmmaGemmMainloop<T>(Conv2dTcProblem<T>(args));
}

}  // namespace anvil::cuda::kernels
