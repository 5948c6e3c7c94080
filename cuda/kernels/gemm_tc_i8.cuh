// The INT8 tensor-core GEMM and implicit-GEMM convolution of the CUDA backend: f32
// activations quantized per tensor as they are staged, s8 weights per output feature, s8 x s8
// WMMA 16x16x16 fragments with exact s32 accumulation, and a fused epilogue that dequantizes
// (offset correction, per-feature scale) before the f32 one (bias, residual, activation,
// clip). Compiled by nvcc (gemm_tc_i8.cu) and by the host compiler for cuda/sim, where
// cuda/sim/wmma.h emulates the s8 fragments exactly.
#pragma once

#include <cstdint>

#include "cuda/kernels/compat.cuh"
#include "cuda/kernels/gemm.cuh"  // applyEpilogueActivation, applyEpilogueClip
#include "cuda/kernels/gemm_tc_args.h"

namespace anvil::cuda::kernels {

// One f32 activation on the u8 grid, shifted to s8 (q - 128): the CPU's quantizeU8One
// (cpu/tactics/int8_gemm.cpp) operation for operation, so both runtimes stage the same q.
__device__ __forceinline__ signed char quantizeI8Staged(float x, float inv, std::int32_t zp) {
  float v = x * inv;
  if (v != v) v = 0.0f;  // NaN -> the quantized 0.0
  v = fminf(fmaxf(v, -512.0f), 512.0f);
  std::int32_t r = static_cast<std::int32_t>(rintf(v)) + zp;  // half to even
  r = r < 0 ? 0 : r > 255 ? 255 : r;
  return static_cast<signed char>(r - 128);
}

// The dequantized f32 value of an exact sum for feature f (I8QuantArgs).
__device__ __forceinline__ float dequantizeI8(const I8QuantArgs& q, std::int64_t f, std::int32_t acc) {
  return static_cast<float>(acc - q.offset[f]) * q.scale[f];
}

// wmmaGemmMainloop (gemm_tc.cuh) for s8 operands: the same block tile (64x64, 4 warps of 2 x 2
// fragments), K stages of 16, register-prefetch double buffering, one barrier per stage, zeros
// staged outside M, N and K, the epilogue through a shared s32 tile. It differs in the shared
// layouts: WMMA wants 256-bit aligned fragment pointers, and a 16-column offset is only 16
// bytes in s8, so both operands are stored k-contiguous ([row][16] for A read row_major,
// [column][16] for B read col_major): every fragment then starts a multiple of 256 bytes in,
// and ldm = 16 bytes is the least WMMA allows for 8-bit types. `P` as wmmaGemmMainloop's, with
// loadA / loadB returning the staged s8 and store(batch, m, n, acc) taking the s32 sum.
template <class P>
__device__ __forceinline__ void wmmaI8Mainloop(const P& p) {
  namespace wmma = nvcuda::wmma;
  constexpr int BM = kGemmTcTileM, BN = kGemmTcTileN, BK = kGemmTcTileK, kCStride = BN + 4;
  constexpr int kLoads = BM * BK / kGemmTcThreads;  // = BK * BN / kGemmTcThreads
  static_assert(BM * BK == BK * BN && BM * BK % kGemmTcThreads == 0, "even staging");
  static_assert(BM == 64 && BN == 64 && BK == 16 && kGemmTcThreads == 128, "2 x 2 warps of 32 x 32");
  __shared__ __align__(32) signed char as[2][BM][BK];
  __shared__ __align__(32) signed char bs[2][BN][BK];
  __shared__ __align__(32) int cs[BM][kCStride];

  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / 32;
  const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
  const bool aK = p.aKContiguous(), bK = !P::kBAlongN && p.bKContiguous();
  const std::int64_t tilesM = (p.m() + BM - 1) / BM;
  const std::int64_t tilesN = (p.n() + BN - 1) / BN;
  const std::int64_t kTiles = (p.k() + BK - 1) / BK;

  auto aRowOf = [&](int e) { return aK ? e / BK : e % BM; };
  auto aKOf = [&](int e) { return aK ? e % BK : e / BM; };
  auto bColOf = [&](int e) { return bK ? e / BK : e % BN; };
  auto bKOf = [&](int e) { return bK ? e % BK : e / BN; };

  for (std::int64_t batch = blockIdx.z; batch < p.batches(); batch += gridDim.z) {
    for (std::int64_t tm = blockIdx.y; tm < tilesM; tm += gridDim.y) {
      for (std::int64_t tn = blockIdx.x; tn < tilesN; tn += gridDim.x) {
        const std::int64_t m0 = tm * BM, n0 = tn * BN;
        static_assert(kGemmTcThreads % BN == 0, "one column per thread when staging along n");
        constexpr int kCols = P::kBAlongN ? 1 : kLoads;
        typename P::BColumn cols[kCols];
        ANVIL_UNROLL
        for (int r = 0; r < kCols; ++r) cols[r] = p.column(batch, n0 + bColOf(tid + r * kGemmTcThreads));
        signed char ra[kLoads], rb[kLoads];
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
            bs[buf][bColOf(e)][bKOf(e)] = rb[r];
          }
        };

        wmma::fragment<wmma::accumulator, 16, 16, 16, int> acc[2][2];
        ANVIL_UNROLL
        for (int i = 0; i < 2; ++i) {
          ANVIL_UNROLL
          for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0);
        }
        if (kTiles > 0) {
          fetch(0);
          stage(0);
          __syncthreads();
        }
        for (std::int64_t t = 0; t < kTiles; ++t) {
          const int buf = static_cast<int>(t & 1);
          const bool more = t + 1 < kTiles;
          if (more) fetch((t + 1) * BK);
          wmma::fragment<wmma::matrix_a, 16, 16, 16, signed char, wmma::row_major> fa[2];
          wmma::fragment<wmma::matrix_b, 16, 16, 16, signed char, wmma::col_major> fb[2];
          ANVIL_UNROLL
          for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], &as[buf][wm + i * 16][0], BK);
          ANVIL_UNROLL
          for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], &bs[buf][wn + j * 16][0], BK);
          ANVIL_UNROLL
          for (int i = 0; i < 2; ++i) {
            ANVIL_UNROLL
            for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
          }
          if (more) stage(buf ^ 1);
          __syncthreads();
        }

        ANVIL_UNROLL
        for (int i = 0; i < 2; ++i) {
          ANVIL_UNROLL
          for (int j = 0; j < 2; ++j) {
            wmma::store_matrix_sync(&cs[wm + i * 16][wn + j * 16], acc[i][j], kCStride, wmma::mem_row_major);
          }
        }
        __syncthreads();
        for (int e = tid; e < BM * BN; e += kGemmTcThreads) {
          const std::int64_t m = m0 + e / BN, n = n0 + e % BN;
          if (m < p.m() && n < p.n()) p.store(batch, m, n, cs[e / BN][e % BN]);
        }
        __syncthreads();  // cs is rewritten by the next tile's fragments
      }
    }
  }
}

// ---- GEMM: C = clip(act(dequant(quant(op(A)) . B^T) + bias[n] + beta * Z)) ----

struct GemmI8Problem {
  using Args = GemmI8Args;
  static constexpr bool kBAlongN = false;  // B is k-contiguous, but transA decides A at run time
  GemmI8Args g;

  __device__ __forceinline__ explicit GemmI8Problem(const GemmI8Args& args) : g(args) {}

  __device__ __forceinline__ bool aKContiguous() const { return g.transA == 0; }
  __device__ __forceinline__ bool bKContiguous() const { return true; }
  __device__ __forceinline__ std::int64_t batches() const { return g.batch; }
  __device__ __forceinline__ std::int64_t m() const { return g.m; }
  __device__ __forceinline__ std::int64_t n() const { return g.n; }
  __device__ __forceinline__ std::int64_t k() const { return g.k; }

  // Outside M x K: 0, which adds nothing (the offset covers k < K only).
  __device__ __forceinline__ signed char loadA(std::int64_t batch, std::int64_t m, std::int64_t k) const {
    if (m >= g.m || k >= g.k) return 0;
    const float* a = g.a + batch * g.strideA;
    return quantizeI8Staged(g.transA ? a[k * g.lda + m] : a[m * g.lda + k], g.q.xInv, g.q.xZero);
  }

  struct BColumn {
    const signed char* p;  // feature n's row of this batch's B; null past N
  };
  __device__ __forceinline__ BColumn column(std::int64_t batch, std::int64_t n) const {
    if (n >= g.n) return BColumn{nullptr};
    return BColumn{g.b + batch * g.strideB + n * g.ldb};
  }
  __device__ __forceinline__ signed char loadB(const BColumn& col, std::int64_t k) const {
    if (col.p == nullptr || k >= g.k) return 0;
    return col.p[k];
  }

  __device__ __forceinline__ void store(std::int64_t batch, std::int64_t m, std::int64_t n, int acc) const {
    float v = dequantizeI8(g.q, n, acc);
    if (g.bias != nullptr) v += g.bias[n];
    if (g.z != nullptr) v += g.beta * g.z[batch * g.strideZ + m * g.ldz + n];
    g.c[batch * g.strideC + m * g.ldc + n] =
        applyEpilogueClip(applyEpilogueActivation(g.act, v, g.actAlpha, g.actBeta), g.clipLo, g.clipHi);
  }
};

// ---- implicit-GEMM convolution: per group g, Y_g = dequant(W_g . quant(im2col(X_g))) ----

struct Conv2dI8Problem {
  using Args = Conv2dI8Args;
  static constexpr bool kBAlongN = true;
  Conv2dArgsOf<signed char> a;
  I8QuantArgs q;
  std::int64_t cg, kg;  // channels per group in and out
  std::int32_t rs, kdim;
  std::int64_t pixels, planeOut;
  signed char padValue;  // a padding tap: the quantized 0.0, shifted

  __device__ __forceinline__ explicit Conv2dI8Problem(const Conv2dI8Args& args) : a(args.conv), q(args.q) {
    cg = a.c / a.groups;
    kg = a.k / a.groups;
    rs = static_cast<std::int32_t>(a.r * a.s);
    kdim = static_cast<std::int32_t>(cg) * rs;
    planeOut = a.oh * a.ow;
    pixels = a.n * planeOut;
    padValue = static_cast<signed char>(q.xZero - 128);
  }

  __device__ __forceinline__ bool aKContiguous() const { return true; }   // weight rows: (ci, ky, kx)
  __device__ __forceinline__ bool bKContiguous() const { return false; }  // neighbouring pixels
  __device__ __forceinline__ std::int64_t batches() const { return a.groups; }
  __device__ __forceinline__ std::int64_t m() const { return kg; }
  __device__ __forceinline__ std::int64_t n() const { return pixels; }
  __device__ __forceinline__ std::int64_t k() const { return kdim; }

  __device__ __forceinline__ signed char loadA(std::int64_t g, std::int64_t m, std::int64_t k) const {
    if (m >= kg || k >= kdim) return 0;
    return a.weight[(g * kg + m) * kdim + k];
  }

  struct BColumn {
    const float* plane;  // channel g * cg of the pixel's image; null past the last pixel
    std::int32_t iy0, ix0;
  };
  __device__ __forceinline__ BColumn column(std::int64_t g, std::int64_t p) const {
    if (p >= pixels) return BColumn{nullptr, 0, 0};
    const std::int64_t img = p / planeOut;
    const std::int64_t r = p - img * planeOut;
    const std::int64_t oy = r / a.ow;
    const std::int64_t ox = r - oy * a.ow;
    return BColumn{a.x + (img * a.c + g * cg) * a.h * a.w,
                   static_cast<std::int32_t>(oy * a.strideH - a.padTop),
                   static_cast<std::int32_t>(ox * a.strideW - a.padLeft)};
  }
  // Past the last pixel or K: 0 (no contribution). A tap in the padding is a real 0.0, which
  // the offset correction counts as every other tap: it stages the quantized zero.
  __device__ __forceinline__ signed char loadB(const BColumn& col, std::int64_t k) const {
    if (col.plane == nullptr || k >= kdim) return 0;
    const std::int32_t kk = static_cast<std::int32_t>(k);  // < 2^31: the launcher checks
    const std::int32_t ci = kk / rs;
    const std::int32_t t = kk - ci * rs;
    const std::int32_t ky = t / static_cast<std::int32_t>(a.s);
    const std::int32_t kx = t - ky * static_cast<std::int32_t>(a.s);
    const std::int32_t iy = col.iy0 + ky * a.dilationH;
    const std::int32_t ix = col.ix0 + kx * a.dilationW;
    if (iy < 0 || iy >= static_cast<std::int32_t>(a.h) || ix < 0 || ix >= static_cast<std::int32_t>(a.w)) {
      return padValue;
    }
    return quantizeI8Staged(col.plane[(ci * a.h + iy) * a.w + ix], q.xInv, q.xZero);
  }

  __device__ __forceinline__ void store(std::int64_t g, std::int64_t m, std::int64_t p, int acc) const {
    const std::int64_t co = g * kg + m;
    const std::int64_t img = p / planeOut;
    const std::int64_t r = p - img * planeOut;
    const std::int64_t at = (img * a.k + co) * planeOut + r;
    float v = dequantizeI8(q, co, acc);
    if (a.bias != nullptr) v += a.bias[co];
    if (a.z != nullptr) v += a.z[at];
    a.y[at] = applyEpilogueClip(applyEpilogueActivation(a.act, v, a.actAlpha, a.actBeta), a.clipLo, a.clipHi);
  }
};

// Launch with kGemmTcThreads threads in x. GemmI8Problem: grid (N tiles, M tiles, batch);
// Conv2dI8Problem: grid (pixel tiles, output-channel tiles per group, groups); any of them may
// be smaller (the blocks stride). A template over the problem, so that each face (nvcc's and
// the sim's) defines its own instances.
template <class P>
__global__ void __launch_bounds__(kGemmTcThreads) wmma_i8(typename P::Args args) {
  wmmaI8Mainloop(P(args));
}

}  // namespace anvil::cuda::kernels
