// Scaled dot-product attention, f32, flash style: one pass over K and V in tiles of 32 keys
// staged in shared memory, with an online softmax (a running maximum and sum per query row),
// so the Sq x Sk scores never reach memory. Compiled by nvcc (attention.cu) and by the host
// compiler against cuda/sim for tests.
#pragma once

#include <cmath>
#include <cstdint>

#include "cuda/kernels/attention_args.h"
#include "cuda/kernels/compat.cuh"
#include "cuda/kernels/reduce.cuh"

namespace anvil::cuda::kernels {

// Launch with blockDim.x == kAttentionThreads, attentionSharedFloats(d, dv) floats of dynamic
// shared memory, any grid: blocks stride over query tiles (x) and batch-heads (y). d and dv
// are at most kMaxHead (a template parameter so that the accumulators' count is a constant
// and the kernel a template, defined once per face). A row whose scores are all -inf (fully masked) gives NaN,
// as the reference's softmax does; sk == 0 gives zeros.
template <int kMaxHead>
__global__ void __launch_bounds__(kAttentionThreads) f32_attention_flash(AttentionArgs p) {
  constexpr int kColsPerLane = kMaxHead / 32;
  ANVIL_EXTERN_SHARED(float, smem);
  const std::int64_t d = p.d, dv = p.dv, kPitch = p.d + 1;
  float* qs = smem;
  float* ks = qs + kAttentionBlockQ * d;
  float* vs = ks + kAttentionBlockK * kPitch;
  float* ps = vs + kAttentionBlockK * dv;
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  float* myP = ps + warp * kAttentionBlockK;
  const std::int64_t qTiles = (p.sq + kAttentionBlockQ - 1) / kAttentionBlockQ;
  const std::int64_t batchHeads = p.outer * p.heads;

  for (std::int64_t z = blockIdx.y; z < batchHeads; z += gridDim.y) {
    const std::int64_t b = z / p.heads, h = z % p.heads;
    const float* q = p.q + b * p.qB + h * p.qH;
    const float* k = p.k + b * p.kB + h * p.kH;
    const float* v = p.v + b * p.vB + h * p.vH;
    float* y = p.y + b * p.yB + h * p.yH;
    const std::int64_t maskBase = b * p.maskB + h * p.maskH;

    for (std::int64_t tile = blockIdx.x; tile < qTiles; tile += gridDim.x) {
      const std::int64_t i0 = tile * kAttentionBlockQ;
      __syncthreads();  // the previous tile's last reads of qs, ks and vs are done
      for (std::int64_t e = threadIdx.x; e < kAttentionBlockQ * d; e += kAttentionThreads) {
        const std::int64_t r = e / d, t = e % d;
        qs[e] = i0 + r < p.sq ? q[(i0 + r) * p.qS + t] : 0.0f;
      }
      float m[kAttentionRowsPerWarp], l[kAttentionRowsPerWarp];
      float acc[kAttentionRowsPerWarp][kColsPerLane];
      ANVIL_UNROLL
      for (int rr = 0; rr < kAttentionRowsPerWarp; ++rr) {
        m[rr] = -INFINITY;
        l[rr] = 0.0f;
        ANVIL_UNROLL
        for (int c = 0; c < kColsPerLane; ++c) acc[rr][c] = 0.0f;
      }

      for (std::int64_t j0 = 0; j0 < p.sk; j0 += kAttentionBlockK) {
        __syncthreads();  // qs staged; the previous key tile fully read
        for (std::int64_t e = threadIdx.x; e < kAttentionBlockK * d; e += kAttentionThreads) {
          const std::int64_t r = e / d, t = e % d;
          ks[r * kPitch + t] = j0 + r < p.sk ? k[(j0 + r) * p.kS + t] : 0.0f;
        }
        for (std::int64_t e = threadIdx.x; e < kAttentionBlockK * dv; e += kAttentionThreads) {
          const std::int64_t r = e / dv, t = e % dv;
          vs[e] = j0 + r < p.sk ? v[(j0 + r) * p.vS + t] : 0.0f;
        }
        __syncthreads();
        const std::int64_t j = j0 + lane;
        const std::int64_t keys = p.sk - j0 < kAttentionBlockK ? p.sk - j0 : kAttentionBlockK;

        ANVIL_UNROLL
        for (int rr = 0; rr < kAttentionRowsPerWarp; ++rr) {
          const int row = warp * kAttentionRowsPerWarp + rr;
          const std::int64_t i = i0 + row;
          // Rows past sq run along (the warp stays converged for its shuffles) but read no
          // mask and store nothing.
          const bool live = j < p.sk && i < p.sq;
          float s = -INFINITY;
          if (live) {
            const float* qr = qs + row * d;
            const float* kr = ks + lane * kPitch;
            float dot = 0.0f;
            for (std::int64_t t = 0; t < d; ++t) dot = fmaf(qr[t], kr[t], dot);
            s = dot * p.scale;
            if (p.maskKind != kAttentionMaskNone) {
              const std::int64_t mo = maskBase + i * p.maskI + j * p.maskJ;
              if (p.maskKind == kAttentionMaskAdd) {
                s = s + static_cast<const float*>(p.mask)[mo];
              } else {
                const bool set = static_cast<const unsigned char*>(p.mask)[mo] != 0;
                if (set == (p.maskKind == kAttentionMaskFillTrue)) s = p.fill;
              }
            }
          }
          const float mNew = fmaxf(m[rr], warpAllReduce(s, MaxOp{}));
          // While every score so far is -inf there is nothing to rescale and nothing to add
          // (exp(-inf - -inf) would be NaN); the row stays at l = 0 until a finite score.
          const bool empty = mNew == -INFINITY;
          const float correction = empty ? 1.0f : expf(m[rr] - mNew);
          const float pj = live && !empty ? expf(s - mNew) : 0.0f;
          l[rr] = l[rr] * correction + pj;
          m[rr] = mNew;
          myP[lane] = pj;
          __syncwarp();
          ANVIL_UNROLL
          for (int c = 0; c < kColsPerLane; ++c) {
            const std::int64_t t = lane + 32 * c;
            if (t < dv) {
              float a = acc[rr][c] * correction;
              for (std::int64_t jj = 0; jj < keys; ++jj) a = fmaf(myP[jj], vs[jj * dv + t], a);
              acc[rr][c] = a;
            }
          }
          __syncwarp();  // myP is rewritten for the next row
        }
      }

      ANVIL_UNROLL
      for (int rr = 0; rr < kAttentionRowsPerWarp; ++rr) {
        const float sum = warpAllReduce(l[rr], SumOp{});
        const std::int64_t i = i0 + warp * kAttentionRowsPerWarp + rr;
        if (i < p.sq) {
          ANVIL_UNROLL
          for (int c = 0; c < kColsPerLane; ++c) {
            const std::int64_t t = lane + 32 * c;
            if (t < dv) y[i * p.yS + t] = p.sk == 0 ? 0.0f : acc[rr][c] / sum;
          }
        }
      }
    }
  }
}

}  // namespace anvil::cuda::kernels
