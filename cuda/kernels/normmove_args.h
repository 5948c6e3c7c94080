// The kernel parameters of the normalization, reduction, pooling and data-movement kernels
// (norm.cuh, pool.cuh, movement.cuh): plain C++17 structs with no CUDA header, so the host
// launchers (cuda/normpool.cpp, cuda/movement.cpp) pack exactly the types the kernels take.
#pragma once

#include <cstdint>

namespace anvil::cuda::kernels {

inline constexpr int kNormBlock = 256;        // threads of the row kernels (one block per row)
inline constexpr int kGridStrideBlock = 256;  // threads of the element-per-thread kernels
inline constexpr int kMaxMoveRank = 6;        // rank of the strided copy and the reductions
// LayerNorm rows up to this many columns take a warp each (f32_layernorm_row_warp), longer a block.
inline constexpr std::int64_t kWarpRowMaxCols = 1024;

// y[r, c] = (x[r, c] - mean_r) / sqrt(var_r + eps) * scale[p] + bias[p] over rows of `cols`
// contiguous floats, with p = (r % groups) * perGroup + c / spatial: LayerNorm has groups 1
// and spatial 1 (p = c); GroupNorm rows are (image, group) pairs of perGroup channels of
// `spatial` pixels each (InstanceNorm: perGroup 1). bias may be null.
struct LayerNormArgs {
  const float* x;
  const float* scale;
  const float* bias;
  float* y;
  std::int64_t rows, cols;
  std::int64_t groups, perGroup, spatial;
  float epsilon;
};

// LpNormalization of x viewed as [outer, n, inner] along n: y = x / ||x||_p (p 1 or 2), a zero
// vector staying zero.
struct LpNormArgs {
  const float* x;
  float* y;
  std::int64_t outer, n, inner;
};

// Inference BatchNormalization: y = (x - mean[c]) * a[c] + b[c] over x [n, channels, spatial]
// (a = scale / sqrt(var + eps), folded on the host).
struct ChannelAffineArgs {
  const float* x;
  const float* mean;
  const float* a;
  const float* b;
  float* y;
  std::int64_t count, channels, spatial;
};

// Softmax or log-softmax of x viewed as [outer, n, inner] along n.
struct SoftmaxAxisArgs {
  const float* x;
  float* y;
  std::int64_t outer, n, inner;
};

// A reduction: each output element o (row-major over `keptDims`) reduces the input elements
// at base(o) + sum_k redIndex_k * redStrides[k] (row-major over `redDims`), where base(o) =
// sum_k keptIndex_k * keptStrides[k]. Unused trailing dims have extent 1.
struct ReduceArgs {
  const float* x;
  float* y;
  std::int64_t outputs;  // product of keptDims
  std::int64_t count;    // product of redDims
  std::int32_t keptRank, redRank;
  std::int64_t keptDims[kMaxMoveRank], keptStrides[kMaxMoveRank];
  std::int64_t redDims[kMaxMoveRank], redStrides[kMaxMoveRank];
};

// ArgMax / ArgMin of x viewed as [outer, n, inner] along n: y [outer, inner] of int64.
struct ArgReduceArgs {
  const float* x;
  std::int64_t* y;
  std::int64_t outer, n, inner;
  std::int32_t selectLast;  // ties go to the last index instead of the first
};

// CumSum of x viewed as [outer, n, inner] along n (exclusive: each output leaves out its own
// element; reverse: from the end).
struct CumSumArgs {
  std::int64_t outer, n, inner;
  std::int32_t exclusive, reverse;
};

// 2-D pooling over NCHW planes; the output [planes, oh, ow] is dense.
struct Pool2dArgs {
  const float* x;
  float* y;
  std::int64_t planes, h, w, oh, ow;
  std::int32_t kh, kw, sh, sw, dh, dw, padTop, padLeft;
  std::int32_t countIncludePad;  // average: divide by kh * kw instead of the covered count
};

// dst[sum_k i_k * dstStrides[k]] = src[sum_k i_k * srcStrides[k]] for every index i of
// `dims` (row-major, `count` elements); strides in elements, src strides may be negative or 0.
struct StridedCopyArgs {
  std::int64_t count;
  std::int32_t rank;
  std::int64_t dims[kMaxMoveRank];
  std::int64_t srcStrides[kMaxMoveRank];
  std::int64_t dstStrides[kMaxMoveRank];
};

// A strided copy whose destination's innermost dim `a` (dstStrides[a] == 1) is not the
// source's innermost dim `b` (srcStrides[b] == 1): a transpose of the (b, a) plane, done in
// kTransposeTile x kTransposeTile tiles through shared memory so that both the reads (along b)
// and the writes (along a) are contiguous. The other dims index `batches` planes.
inline constexpr int kTransposeTile = 32;
inline constexpr int kTransposeRows = 8;  // block (32, 8): each thread moves 4 elements per tile
struct TiledTransposeArgs {
  std::int32_t rank, a, b;
  std::int64_t dims[kMaxMoveRank];
  std::int64_t srcStrides[kMaxMoveRank];
  std::int64_t dstStrides[kMaxMoveRank];
  std::int64_t batches, tilesA, tilesB;
};

// GatherElements: out[i] (row-major over `dims`, the indices' extents) = data at i's
// coordinates with the one along `axis` replaced by index[i] (negative counts from axisLen; out
// of range gives zero bytes).
struct GatherElementsArgs {
  std::int64_t count;
  std::int32_t rank, axis;
  std::int64_t axisLen;
  std::int64_t dims[kMaxMoveRank], dataStrides[kMaxMoveRank];
};

// GatherND / ScatterND: tuples of k int64 indices address slices of sliceSize contiguous
// elements of data [dims] (row-major strides), after `batchDims` leading batch dims
// (GatherND only; 0 for ScatterND). Element e of the gathered (or updates) tensor is slice
// element e % sliceSize of tuple e / sliceSize, whose batch is tuple / tuplesPerBatch.
struct IndexNDArgs {
  std::int64_t count;  // gathered or update elements
  std::int64_t sliceSize, tuplesPerBatch, batchStride;
  std::int32_t k, batchDims;
  std::int64_t dims[kMaxMoveRank], strides[kMaxMoveRank];
};

// Pad with mode edge (1), wrap (2) or reflect (3): output index o reads input index
// o - before per dim, mapped back into [0, inDims) as the mode says (the reference's rules).
enum PadMode : int { kPadEdge = 1, kPadWrap = 2, kPadReflect = 3 };
struct PadIndexArgs {
  std::int64_t count;
  std::int32_t rank, mode;
  std::int64_t outDims[kMaxMoveRank], inDims[kMaxMoveRank], before[kMaxMoveRank], inStrides[kMaxMoveRank];
};

// out[o, j, i] = data[o, idx[j], i] with data [outer, axisLen, inner] and idx of `indices`
// entries (negative ones count from the end; out-of-range ones give zero elements).
struct GatherArgs {
  std::int64_t outer, axisLen, indices, inner;
};

// Resize: per axis d the reference's source coordinate of output coordinate o, in double:
//   align_corners         o * (inLen - 1) / (outWidth - 1)   (0 when outWidth == 1)
//   asymmetric            o / scale
//   pytorch_half_pixel    (o + 0.5) / scale - 0.5             (0 when outLen == 1)
//   half_pixel_symmetric  shift + (o + 0.5) / scale - 0.5
//   tf_half_pixel_for_nn  (o + 0.5) / scale
//   half_pixel            (o + 0.5) / scale - 0.5
// with outWidth = scale * inLen, then nearest (one tap) or linear (two) taps clamped to the
// axis. Modes are the ResizeCoord / ResizeNearest values below.
enum ResizeCoord : int {
  kCoordHalfPixel = 0,
  kCoordAlignCorners = 1,
  kCoordAsymmetric = 2,
  kCoordPytorchHalfPixel = 3,
  kCoordHalfPixelSymmetric = 4,
  kCoordTfHalfPixelForNn = 5
};
enum ResizeNearest : int { kRoundPreferFloor = 0, kRoundPreferCeil = 1, kNearestFloor = 2, kNearestCeil = 3 };

struct ResizeArgs {
  std::int64_t count;  // output elements
  std::int32_t rank, coord, nearest, excludeOutside;
  std::int64_t inDims[kMaxMoveRank], outDims[kMaxMoveRank];
  double scale[kMaxMoveRank], outWidth[kMaxMoveRank], shift[kMaxMoveRank];
};

}  // namespace anvil::cuda::kernels
