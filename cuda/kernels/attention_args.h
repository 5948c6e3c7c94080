// The parameters of the flash-style attention kernel (attention.cuh): a plain struct with no
// CUDA header, so the host launcher (cuda/attention.cpp) packs exactly the type the kernel
// takes.
#pragma once

#include <cstdint>

namespace anvil::cuda::kernels {

// A block of 4 warps owns 8 query rows (2 per warp) of one batch-head. Per key tile each lane
// scores one key against the warp's row (a dot product over D read from shared memory, no
// shuffles), the warp takes the tile's maximum with one butterfly, and each lane accumulates
// the output columns lane, lane + 32, ... (so D and Dv up to 128 keep 4 accumulators per row
// in registers). The per-lane partial sums of the softmax denominator are reduced once at
// the end.
inline constexpr int kAttentionWarps = 4;
inline constexpr int kAttentionThreads = kAttentionWarps * 32;
inline constexpr int kAttentionRowsPerWarp = 2;
inline constexpr int kAttentionBlockQ = kAttentionWarps * kAttentionRowsPerWarp;
inline constexpr int kAttentionBlockK = 32;  // one key per lane
inline constexpr int kAttentionMaxHead = 128;

// Dynamic shared memory of a launch: Q rows [BQ][d], K tile [BK][d + 1] (the pad puts the 32
// lanes' rows on 32 banks), V tile [BK][dv], each warp's tile probabilities [warps][BK].
inline std::int64_t attentionSharedFloats(std::int64_t d, std::int64_t dv) {
  return kAttentionBlockQ * d + kAttentionBlockK * (d + 1) + kAttentionBlockK * dv +
         kAttentionWarps * kAttentionBlockK;
}

// How the mask (if any) changes a score: added (f32 mask), or replaced by `fill` where the
// bool (1-byte) mask is true / false.
enum AttentionMaskKind : std::int32_t {
  kAttentionMaskNone = 0,
  kAttentionMaskAdd = 1,
  kAttentionMaskFillTrue = 2,
  kAttentionMaskFillFalse = 3,
};

// Y[z, i, :] = softmax_j(mask(scale * Q[z, i, :] . K[z, j, :])) . V[z, j, :] for every
// batch-head z = b * heads + h, query row i < sq and key row j < sk. Every operand is
// addressed by element strides over (b, h, row) with contiguous columns, so one kernel reads
// separate Q, K, V tensors (broadcast batches have stride 0) and the heads of a packed QKV
// projection in place, and writes Y in either head layout. The mask element of (b, h, i, j)
// is at mask[b * maskB + h * maskH + i * maskI + j * maskJ] (0 steps broadcast it).
struct AttentionArgs {
  const float* q;
  const float* k;
  const float* v;
  const void* mask;
  float* y;
  std::int64_t outer, heads;   // batches b and heads h; outer * heads blocks along grid y
  std::int64_t sq, sk, d, dv;  // query rows, key rows, head size of Q/K, of V and Y
  std::int64_t qB, qH, qS;
  std::int64_t kB, kH, kS;
  std::int64_t vB, vH, vS;
  std::int64_t yB, yH, yS;
  std::int64_t maskB, maskH, maskI, maskJ;
  float scale, fill;
  std::int32_t maskKind;  // AttentionMaskKind
};

}  // namespace anvil::cuda::kernels
