// The data-movement launchers of the CUDA backend (kernels in cuda/kernels/movement.cuh): by
// element size (1, 2, 4 or 8 bytes, any dtype), checked, on a DeviceRuntime + Stream,
// pointers in device memory. No CUDA header here; the kernel names are shared with the
// registries.
#pragma once

#include <cstdint>
#include <string>

#include "cuda/runtime.h"

namespace anvil::cuda {

inline constexpr int kMaxCopyRank = 6;

// The kernels' names (built once: launches in run() must not allocate).
const std::string& stridedCopyKernelName(int elementBytes);                   // "u32_strided_copy_gridstride_block256"
const std::string& tiledTransposeKernelName(int elementBytes);                // "u32_transpose_tiled32x32_block32x8"
const std::string& fillKernelName(int elementBytes);                          // "u32_fill_gridstride_block256"
const std::string& padIndexKernelName(int elementBytes);                      // "u32_pad_index_gridstride_block256"
const std::string& gatherKernelName(int elementBytes, bool index64);          // "u32_gather_i64_gridstride_block256"
const std::string& gatherElementsKernelName(int elementBytes, bool index64);  // "u32_gather_elements_i64_..."
const std::string& gatherNDKernelName(int elementBytes);                      // "u32_gather_nd_gridstride_block256"
const std::string& scatterNDKernelName(int elementBytes);                     // "u32_scatter_nd_gridstride_block256"
// "u8_resize_nearest_gridstride_block256"; linear: "f32_resize_linear_gridstride_block256"
const std::string& resizeKernelName(int elementBytes, bool linear);

// dst[sum_k i_k * dstStrides[k]] = src[sum_k i_k * srcStrides[k]] for every index i of dims
// (rank <= 12 on entry; unit dims are dropped and contiguous ones merged, and what remains must
// have at most kMaxCopyRank dims). Strides in elements; src strides may be negative or zero
// (src points at the element of index 0), dst ones must not alias two indices. src and dst
// must not overlap. A copy whose destination's innermost dim is not the source's innermost
// (a transpose of the two) runs as 32x32 tiles through shared memory.
struct StridedCopyDesc {
  int elementBytes = 4;
  const void* src = nullptr;
  void* dst = nullptr;
  int rank = 0;
  std::int64_t dims[12] = {};
  std::int64_t srcStrides[12] = {};
  std::int64_t dstStrides[12] = {};
};
void launchStridedCopy(DeviceRuntime& runtime, Stream stream, const StridedCopyDesc& d);

// dst[i] = the element whose bytes are the low elementBytes of `bits`, for i < n.
void launchFill(DeviceRuntime& runtime, Stream stream, int elementBytes, void* dst, std::int64_t n, std::uint64_t bits);

// Pad with mode edge / wrap / reflect (kernels::PadMode): y [outDims] reads x [inDims] at
// o - before per dim mapped into range; rank <= kMaxCopyRank, no empty input dim.
struct PadIndexDesc {
  int elementBytes = 4;
  int mode = 1;
  const void* x = nullptr;
  void* y = nullptr;
  int rank = 0;
  std::int64_t inDims[kMaxCopyRank] = {}, outDims[kMaxCopyRank] = {}, before[kMaxCopyRank] = {};
};
void launchPadIndex(DeviceRuntime& runtime, Stream stream, const PadIndexDesc& d);

// out [outer, indices, inner] = data [outer, axisLen, inner] gathered along the middle axis by
// `index` (int32 or int64, negative counts from the end, out of range gives zero bytes).
struct GatherDesc {
  int elementBytes = 4;
  bool index64 = true;
  const void* data = nullptr;
  const void* index = nullptr;
  void* out = nullptr;
  std::int64_t outer = 1, axisLen = 0, indices = 0, inner = 1;
};
void launchGather(DeviceRuntime& runtime, Stream stream, const GatherDesc& d);

// GatherElements: out (the extents of `index`, rank <= kMaxCopyRank) from data (dataDims)
// along `axis` by `index` (int32 or int64, negative counts from the end, out of range gives
// zero bytes).
struct GatherElementsDesc {
  int elementBytes = 4;
  bool index64 = true;
  const void* data = nullptr;
  const void* index = nullptr;
  void* out = nullptr;
  int rank = 0, axis = 0;
  std::int64_t dataDims[kMaxCopyRank] = {}, indexDims[kMaxCopyRank] = {};
};
void launchGatherElements(DeviceRuntime& runtime, Stream stream, const GatherElementsDesc& d);

// GatherND (batchDims) and ScatterND (reduction none; batchDims 0): data [dataDims] of rank
// <= kMaxCopyRank, int64 index [indexDims] whose last dim k holds the tuples. GatherND writes
// `out` (zero bytes for out-of-range tuples); ScatterND copies data into `out` and writes the
// updates (the shape indexDims[:-1] + dataDims[k:]) over it, skipping out-of-range tuples.
struct IndexNDDesc {
  int elementBytes = 4;
  const void* data = nullptr;
  const std::int64_t* index = nullptr;
  const void* updates = nullptr;  // ScatterND
  void* out = nullptr;
  int dataRank = 0, indexRank = 0, batchDims = 0;
  std::int64_t dataDims[kMaxCopyRank] = {}, indexDims[kMaxCopyRank] = {};
};
void launchGatherND(DeviceRuntime& runtime, Stream stream, const IndexNDDesc& d);
void launchScatterND(DeviceRuntime& runtime, Stream stream, const IndexNDDesc& d);

// Resize of a dense tensor of rank <= kMaxCopyRank, by the reference's rules (the kernel
// computes each axis's source coordinate and taps; see kernels::ResizeArgs in
// cuda/kernels/normmove_args.h). Nearest for any element size, linear for f32 only.
struct ResizeDesc {
  int elementBytes = 4;
  bool linear = false;
  const void* x = nullptr;
  void* y = nullptr;
  int rank = 0;
  std::int64_t inDims[kMaxCopyRank] = {}, outDims[kMaxCopyRank] = {};
  double scale[kMaxCopyRank] = {};  // per axis (1 for axes not resized)
  int coord = 0, nearest = 0;       // kernels::ResizeCoord, kernels::ResizeNearest
  bool excludeOutside = false;
};
void launchResize(DeviceRuntime& runtime, Stream stream, const ResizeDesc& d);

}  // namespace anvil::cuda
