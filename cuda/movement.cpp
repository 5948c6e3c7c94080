// The checked launchers of cuda/movement.h: arguments are validated, shapes simplified and
// kernel arguments packed here (host C++, no CUDA header); each launch names its kernel and
// the device ranges it touches (checked by the sim).
#include "cuda/movement.h"

#include <algorithm>
#include <array>

#include "anvil/error.h"
#include "cuda/arg_pack.h"
#include "cuda/kernels/normmove_args.h"

namespace anvil::cuda {
namespace {

constexpr std::int64_t kMaxGrid = 1 << 16;  // blocks stride past it

unsigned elementGrid(std::int64_t n) {
  return static_cast<unsigned>(std::min((n + kernels::kGridStrideBlock - 1) / kernels::kGridStrideBlock, kMaxGrid));
}

const char* elementName(int bytes) {
  switch (bytes) {
    case 1:
      return "u8";
    case 2:
      return "u16";
    case 4:
      return "u32";
    case 8:
      return "u64";
    default:
      break;
  }
  ANVIL_THROW(ErrorCode::kInvalidArgument, "CUDA data movement: element size ", bytes,
              " bytes is not one of 1, 2, 4, 8");
}

template <typename Pack>
void launchPacked(DeviceRuntime& runtime, Stream stream, const std::string& name, const Pack& pack, unsigned grid,
                  const DeviceRange* ranges, std::size_t rangeCount) {
  KernelLaunch k;
  k.name = name.c_str();
  k.args = &pack;
  k.argBytes = sizeof pack;
  k.ranges = ranges;
  k.rangeCount = rangeCount;
  runtime.launch(k, LaunchShape{Dim3{grid}, Dim3{256}, 0}, stream);
}

// [first, last] element offsets reached by indices of dims with these strides.
void reach(int rank, const std::int64_t* dims, const std::int64_t* strides, std::int64_t* lo, std::int64_t* hi) {
  *lo = *hi = 0;
  for (int d = 0; d < rank; ++d) {
    const std::int64_t span = (dims[d] - 1) * strides[d];
    if (span < 0)
      *lo += span;
    else
      *hi += span;
  }
}

template <typename T>
void launchByElement(DeviceRuntime& runtime, Stream stream, const std::string& name, int bytes, const void* src,
                     void* dst, const kernels::StridedCopyArgs& a, const DeviceRange (&ranges)[2]) {
  (void)bytes;
  launchPacked(runtime, stream, name,
               packArgs<const T*, T*, kernels::StridedCopyArgs>(static_cast<const T*>(src), static_cast<T*>(dst), a),
               elementGrid(a.count), ranges, 2);
}

template <typename T>
void launchTiled(DeviceRuntime& runtime, Stream stream, const std::string& name, const void* src, void* dst,
                 const kernels::TiledTransposeArgs& t, const LaunchShape& shape, const DeviceRange (&ranges)[2]) {
  const auto pack =
      packArgs<const T*, T*, kernels::TiledTransposeArgs>(static_cast<const T*>(src), static_cast<T*>(dst), t);
  KernelLaunch k;
  k.name = name.c_str();
  k.args = &pack;
  k.argBytes = sizeof pack;
  k.ranges = ranges;
  k.rangeCount = 2;
  runtime.launch(k, shape, stream);
}

}  // namespace

namespace {
int elementIndex(int bytes) {
  switch (bytes) {
    case 1:
      return 0;
    case 2:
      return 1;
    case 4:
      return 2;
    case 8:
      return 3;
    default:
      break;
  }
  (void)elementName(bytes);  // throws, naming the size
  return 0;
}

// One name per element size, built once (run() must not allocate).
using Names = std::array<std::string, 4>;
Names namesBySize(const char* op) {
  Names n;
  const int sizes[4] = {1, 2, 4, 8};
  for (int i = 0; i < 4; ++i)
    n[size_t(i)] =
        ::anvil::detail::concat(elementName(sizes[i]), "_", op, "_gridstride_block", kernels::kGridStrideBlock);
  return n;
}
}  // namespace

const std::string& stridedCopyKernelName(int elementBytes) {
  static const Names names = namesBySize("strided_copy");
  return names[size_t(elementIndex(elementBytes))];
}
const std::string& tiledTransposeKernelName(int elementBytes) {
  static const Names names = [] {
    Names n;
    const int sizes[4] = {1, 2, 4, 8};
    for (int i = 0; i < 4; ++i)
      n[size_t(i)] = ::anvil::detail::concat(elementName(sizes[i]), "_transpose_tiled", kernels::kTransposeTile, "x",
                                             kernels::kTransposeTile, "_block", kernels::kTransposeTile, "x",
                                             kernels::kTransposeRows);
    return n;
  }();
  return names[size_t(elementIndex(elementBytes))];
}
const std::string& fillKernelName(int elementBytes) {
  static const Names names = namesBySize("fill");
  return names[size_t(elementIndex(elementBytes))];
}
const std::string& padIndexKernelName(int elementBytes) {
  static const Names names = namesBySize("pad_index");
  return names[size_t(elementIndex(elementBytes))];
}
const std::string& gatherKernelName(int elementBytes, bool index64) {
  static const Names i32 = namesBySize("gather_i32"), i64 = namesBySize("gather_i64");
  return (index64 ? i64 : i32)[size_t(elementIndex(elementBytes))];
}
const std::string& gatherElementsKernelName(int elementBytes, bool index64) {
  static const Names i32 = namesBySize("gather_elements_i32"), i64 = namesBySize("gather_elements_i64");
  return (index64 ? i64 : i32)[size_t(elementIndex(elementBytes))];
}
const std::string& gatherNDKernelName(int elementBytes) {
  static const Names names = namesBySize("gather_nd");
  return names[size_t(elementIndex(elementBytes))];
}
const std::string& scatterNDKernelName(int elementBytes) {
  static const Names names = namesBySize("scatter_nd");
  return names[size_t(elementIndex(elementBytes))];
}
const std::string& resizeKernelName(int elementBytes, bool linear) {
  static const Names nearest = namesBySize("resize_nearest");
  static const std::string linearName =
      ::anvil::detail::concat("f32_resize_linear_gridstride_block", kernels::kGridStrideBlock);
  return linear ? linearName : nearest[size_t(elementIndex(elementBytes))];
}

void launchStridedCopy(DeviceRuntime& runtime, Stream stream, const StridedCopyDesc& d) {
  const std::string& name = stridedCopyKernelName(d.elementBytes);
  if (d.rank < 0 || d.rank > 12)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": rank ", d.rank, " is outside [0, 12]");
  kernels::StridedCopyArgs a{};
  a.count = 1;
  for (int k = 0; k < d.rank; ++k) {
    if (d.dims[k] < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": dim ", k, " is negative");
    a.count *= d.dims[k];
  }
  if (a.count == 0) return;
  // Drop unit dims; merge a dim into the next inner one when both strides continue it.
  int r = 0;
  for (int k = 0; k < d.rank; ++k) {
    if (d.dims[k] == 1) continue;
    if (r > 0 && a.srcStrides[r - 1] == d.srcStrides[k] * d.dims[k] &&
        a.dstStrides[r - 1] == d.dstStrides[k] * d.dims[k]) {
      a.dims[r - 1] *= d.dims[k];
      a.srcStrides[r - 1] = d.srcStrides[k];
      a.dstStrides[r - 1] = d.dstStrides[k];
      continue;
    }
    if (r == kernels::kMaxMoveRank)
      ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": more than ", kernels::kMaxMoveRank,
                  " dims remain after merging contiguous ones");
    a.dims[r] = d.dims[k];
    a.srcStrides[r] = d.srcStrides[k];
    a.dstStrides[r] = d.dstStrides[k];
    ++r;
  }
  a.rank = r;
  if (d.src == nullptr || d.dst == nullptr)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null ", d.src == nullptr ? "source" : "destination", " pointer");
  std::int64_t slo, shi, dlo, dhi;
  reach(r, a.dims, a.srcStrides, &slo, &shi);
  reach(r, a.dims, a.dstStrides, &dlo, &dhi);
  if (dlo < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": destination strides must not be negative");
  const std::int64_t e = d.elementBytes;
  const DeviceRange ranges[2] = {
      {static_cast<const char*>(d.src) + slo * e, static_cast<std::size_t>((shi - slo + 1) * e), "source"},
      {d.dst, static_cast<std::size_t>((dhi + 1) * e), "destination"}};
  // The destination's innermost dim `ia` is contiguous there but not in the source, which is
  // contiguous along another dim `ib`: tile the (ib, ia) plane.
  int ia = -1, ib = -1;
  for (int k = 0; k < r; ++k) {
    if (a.dstStrides[k] == 1) ia = k;
    if (a.srcStrides[k] == 1) ib = k;
  }
  if (ia >= 0 && ib >= 0 && ia != ib) {
    kernels::TiledTransposeArgs t{};
    t.rank = r;
    t.a = ia;
    t.b = ib;
    t.batches = 1;
    for (int k = 0; k < r; ++k) {
      t.dims[k] = a.dims[k];
      t.srcStrides[k] = a.srcStrides[k];
      t.dstStrides[k] = a.dstStrides[k];
      if (k != ia && k != ib) t.batches *= a.dims[k];
    }
    constexpr std::int64_t kTile = kernels::kTransposeTile;
    t.tilesA = (a.dims[ia] + kTile - 1) / kTile;
    t.tilesB = (a.dims[ib] + kTile - 1) / kTile;
    const std::string& tiled = tiledTransposeKernelName(d.elementBytes);
    const LaunchShape shape{Dim3{static_cast<unsigned>(std::min(t.batches * t.tilesA * t.tilesB, kMaxGrid))},
                            Dim3{unsigned(kernels::kTransposeTile), unsigned(kernels::kTransposeRows)}, 0};
    switch (d.elementBytes) {
      case 1:
        return launchTiled<std::uint8_t>(runtime, stream, tiled, d.src, d.dst, t, shape, ranges);
      case 2:
        return launchTiled<std::uint16_t>(runtime, stream, tiled, d.src, d.dst, t, shape, ranges);
      case 4:
        return launchTiled<std::uint32_t>(runtime, stream, tiled, d.src, d.dst, t, shape, ranges);
      default:
        return launchTiled<std::uint64_t>(runtime, stream, tiled, d.src, d.dst, t, shape, ranges);
    }
  }
  switch (d.elementBytes) {
    case 1:
      return launchByElement<std::uint8_t>(runtime, stream, name, 1, d.src, d.dst, a, ranges);
    case 2:
      return launchByElement<std::uint16_t>(runtime, stream, name, 2, d.src, d.dst, a, ranges);
    case 4:
      return launchByElement<std::uint32_t>(runtime, stream, name, 4, d.src, d.dst, a, ranges);
    default:
      return launchByElement<std::uint64_t>(runtime, stream, name, 8, d.src, d.dst, a, ranges);
  }
}

void launchFill(DeviceRuntime& runtime, Stream stream, int elementBytes, void* dst, std::int64_t n,
                std::uint64_t bits) {
  const std::string& name = fillKernelName(elementBytes);
  if (n < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": count ", n, " is negative");
  if (n == 0) return;
  if (dst == nullptr) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null destination pointer");
  const DeviceRange ranges[1] = {{dst, static_cast<std::size_t>(n * elementBytes), "destination"}};
  switch (elementBytes) {
    case 1:
      return launchPacked(runtime, stream, name,
                          packArgs<std::uint8_t*, std::int64_t, std::uint8_t>(dst, n, std::uint8_t(bits)),
                          elementGrid(n), ranges, 1);
    case 2:
      return launchPacked(runtime, stream, name,
                          packArgs<std::uint16_t*, std::int64_t, std::uint16_t>(dst, n, std::uint16_t(bits)),
                          elementGrid(n), ranges, 1);
    case 4:
      return launchPacked(runtime, stream, name,
                          packArgs<std::uint32_t*, std::int64_t, std::uint32_t>(dst, n, std::uint32_t(bits)),
                          elementGrid(n), ranges, 1);
    default:
      return launchPacked(runtime, stream, name, packArgs<std::uint64_t*, std::int64_t, std::uint64_t>(dst, n, bits),
                          elementGrid(n), ranges, 1);
  }
}

namespace {
template <typename T, typename I>
void gatherAs(DeviceRuntime& runtime, Stream stream, const std::string& name, const GatherDesc& d,
              const kernels::GatherArgs& a, std::int64_t total, const DeviceRange (&ranges)[3]) {
  launchPacked(runtime, stream, name,
               packArgs<const T*, const I*, T*, kernels::GatherArgs>(
                   static_cast<const T*>(d.data), static_cast<const I*>(d.index), static_cast<T*>(d.out), a),
               elementGrid(total), ranges, d.outer * d.axisLen * d.inner != 0 ? 3 : 2);
}
template <typename T>
void gatherBy(DeviceRuntime& runtime, Stream stream, const std::string& name, const GatherDesc& d,
              const kernels::GatherArgs& a, std::int64_t total, const DeviceRange (&ranges)[3]) {
  if (d.index64)
    gatherAs<T, std::int64_t>(runtime, stream, name, d, a, total, ranges);
  else
    gatherAs<T, std::int32_t>(runtime, stream, name, d, a, total, ranges);
}
}  // namespace

void launchGather(DeviceRuntime& runtime, Stream stream, const GatherDesc& d) {
  const std::string& name = gatherKernelName(d.elementBytes, d.index64);
  if (d.outer < 0 || d.axisLen < 0 || d.indices < 0 || d.inner < 0)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": a negative extent");
  const std::int64_t total = d.outer * d.indices * d.inner;
  if (total == 0) return;
  if (d.index == nullptr || d.out == nullptr || (d.data == nullptr && d.axisLen > 0))
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null pointer");
  const std::int64_t e = d.elementBytes;
  const DeviceRange ranges[3] = {{d.out, static_cast<std::size_t>(total * e), "output"},
                                 {d.index, static_cast<std::size_t>(d.indices * (d.index64 ? 8 : 4)), "indices"},
                                 {d.data, static_cast<std::size_t>(d.outer * d.axisLen * d.inner * e), "data"}};
  const kernels::GatherArgs a{d.outer, d.axisLen, d.indices, d.inner};
  switch (d.elementBytes) {
    case 1:
      return gatherBy<std::uint8_t>(runtime, stream, name, d, a, total, ranges);
    case 2:
      return gatherBy<std::uint16_t>(runtime, stream, name, d, a, total, ranges);
    case 4:
      return gatherBy<std::uint32_t>(runtime, stream, name, d, a, total, ranges);
    default:
      return gatherBy<std::uint64_t>(runtime, stream, name, d, a, total, ranges);
  }
}

namespace {
template <typename T, typename I>
void gatherElementsAs(DeviceRuntime& runtime, Stream stream, const std::string& name, const GatherElementsDesc& d,
                      const kernels::GatherElementsArgs& a, const DeviceRange (&ranges)[3], std::size_t rangeCount) {
  launchPacked(runtime, stream, name,
               packArgs<const T*, const I*, T*, kernels::GatherElementsArgs>(d.data, d.index, d.out, a),
               elementGrid(a.count), ranges, rangeCount);
}
template <typename T>
void gatherElementsBy(DeviceRuntime& runtime, Stream stream, const std::string& name, const GatherElementsDesc& d,
                      const kernels::GatherElementsArgs& a, const DeviceRange (&ranges)[3], std::size_t rangeCount) {
  if (d.index64)
    gatherElementsAs<T, std::int64_t>(runtime, stream, name, d, a, ranges, rangeCount);
  else
    gatherElementsAs<T, std::int32_t>(runtime, stream, name, d, a, ranges, rangeCount);
}
}  // namespace

void launchGatherElements(DeviceRuntime& runtime, Stream stream, const GatherElementsDesc& d) {
  const std::string& name = gatherElementsKernelName(d.elementBytes, d.index64);
  if (d.rank < 1 || d.rank > kMaxCopyRank || d.axis < 0 || d.axis >= d.rank)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": rank ", d.rank, " or axis ", d.axis, " out of range");
  kernels::GatherElementsArgs a{};
  a.rank = d.rank;
  a.axis = d.axis;
  a.axisLen = d.dataDims[d.axis];
  a.count = 1;
  std::int64_t dataCount = 1;
  for (int k = d.rank - 1; k >= 0; --k) {
    if (d.dataDims[k] < 0 || d.indexDims[k] < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": a negative extent");
    if (k != d.axis && d.indexDims[k] > d.dataDims[k])
      ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": indices exceed the data outside the axis (dim ", k, ")");
    a.dims[k] = d.indexDims[k];
    a.dataStrides[k] = dataCount;
    dataCount *= d.dataDims[k];
    a.count *= d.indexDims[k];
  }
  if (a.count == 0) return;
  if (d.index == nullptr || d.out == nullptr || (d.data == nullptr && dataCount > 0))
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null pointer");
  const std::int64_t e = d.elementBytes;
  const DeviceRange ranges[3] = {{d.out, static_cast<std::size_t>(a.count * e), "output"},
                                 {d.index, static_cast<std::size_t>(a.count * (d.index64 ? 8 : 4)), "indices"},
                                 {d.data, static_cast<std::size_t>(dataCount * e), "data"}};
  const std::size_t rangeCount = dataCount > 0 ? 3 : 2;
  switch (d.elementBytes) {
    case 1:
      return gatherElementsBy<std::uint8_t>(runtime, stream, name, d, a, ranges, rangeCount);
    case 2:
      return gatherElementsBy<std::uint16_t>(runtime, stream, name, d, a, ranges, rangeCount);
    case 4:
      return gatherElementsBy<std::uint32_t>(runtime, stream, name, d, a, ranges, rangeCount);
    default:
      return gatherElementsBy<std::uint64_t>(runtime, stream, name, d, a, ranges, rangeCount);
  }
}

namespace {
// The shared shape checks of GatherND and ScatterND: the kernel arguments, and the element
// count of data.
kernels::IndexNDArgs indexNDArgs(const std::string& name, const IndexNDDesc& d, std::int64_t* dataCount) {
  const int r = d.dataRank, q = d.indexRank, b = d.batchDims;
  if (r < 1 || r > kMaxCopyRank || q < 1 || q > kMaxCopyRank || b < 0 || b >= std::min(r, q))
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ranks ", r, " and ", q, " with batch_dims ", b, " out of range");
  const std::int64_t k = d.indexDims[q - 1];
  if (k < 1 || k > r - b) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": tuples of ", k, " indices for rank ", r);
  kernels::IndexNDArgs a{};
  a.k = static_cast<std::int32_t>(k);
  a.batchDims = b;
  std::int64_t stride = 1;
  for (int i = r - 1; i >= 0; --i) {
    if (d.dataDims[i] < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": a negative extent");
    a.dims[i] = d.dataDims[i];
    a.strides[i] = stride;
    stride *= d.dataDims[i];
  }
  *dataCount = stride;
  a.sliceSize = 1;
  for (int i = b + int(k); i < r; ++i) a.sliceSize *= d.dataDims[i];
  a.batchStride = 1;
  for (int i = b; i < r; ++i) a.batchStride *= d.dataDims[i];
  a.tuplesPerBatch = 1;
  for (int i = b; i < q - 1; ++i) a.tuplesPerBatch *= d.indexDims[i];
  std::int64_t tuples = a.tuplesPerBatch;
  for (int i = 0; i < b; ++i) {
    if (d.indexDims[i] != d.dataDims[i]) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": batch dims differ");
    tuples *= d.indexDims[i];
  }
  a.count = tuples * a.sliceSize;
  return a;
}
}  // namespace

void launchGatherND(DeviceRuntime& runtime, Stream stream, const IndexNDDesc& d) {
  const std::string& name = gatherNDKernelName(d.elementBytes);
  std::int64_t dataCount = 0;
  const kernels::IndexNDArgs a = indexNDArgs(name, d, &dataCount);
  if (a.count == 0) return;
  if (d.index == nullptr || d.out == nullptr || d.data == nullptr)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null pointer");
  const std::int64_t e = d.elementBytes;
  const DeviceRange ranges[3] = {{d.out, static_cast<std::size_t>(a.count * e), "output"},
                                 {d.index, static_cast<std::size_t>(a.count / a.sliceSize * a.k * 8), "indices"},
                                 {d.data, static_cast<std::size_t>(dataCount * e), "data"}};
  const unsigned grid = elementGrid(a.count);
  switch (d.elementBytes) {
    case 1:
      return launchPacked(runtime, stream, name,
                          packArgs<const std::uint8_t*, const std::int64_t*, std::uint8_t*, kernels::IndexNDArgs>(
                              d.data, d.index, d.out, a),
                          grid, ranges, 3);
    case 2:
      return launchPacked(runtime, stream, name,
                          packArgs<const std::uint16_t*, const std::int64_t*, std::uint16_t*, kernels::IndexNDArgs>(
                              d.data, d.index, d.out, a),
                          grid, ranges, 3);
    case 4:
      return launchPacked(runtime, stream, name,
                          packArgs<const std::uint32_t*, const std::int64_t*, std::uint32_t*, kernels::IndexNDArgs>(
                              d.data, d.index, d.out, a),
                          grid, ranges, 3);
    default:
      return launchPacked(runtime, stream, name,
                          packArgs<const std::uint64_t*, const std::int64_t*, std::uint64_t*, kernels::IndexNDArgs>(
                              d.data, d.index, d.out, a),
                          grid, ranges, 3);
  }
}

void launchScatterND(DeviceRuntime& runtime, Stream stream, const IndexNDDesc& d) {
  const std::string& name = scatterNDKernelName(d.elementBytes);
  if (d.batchDims != 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ScatterND has no batch dims");
  std::int64_t dataCount = 0;
  const kernels::IndexNDArgs a = indexNDArgs(name, d, &dataCount);
  const std::int64_t e = d.elementBytes;
  if (dataCount == 0) return;
  if (d.out == nullptr || d.data == nullptr) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null pointer");
  if (d.out != d.data)
    runtime.copyAsync(d.out, d.data, static_cast<std::size_t>(dataCount * e), CopyKind::kDeviceToDevice, stream);
  if (a.count == 0) return;
  if (d.index == nullptr || d.updates == nullptr) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null pointer");
  const DeviceRange ranges[3] = {{d.out, static_cast<std::size_t>(dataCount * e), "output"},
                                 {d.index, static_cast<std::size_t>(a.count / a.sliceSize * a.k * 8), "indices"},
                                 {d.updates, static_cast<std::size_t>(a.count * e), "updates"}};
  const unsigned grid = elementGrid(a.count);
  switch (d.elementBytes) {
    case 1:
      return launchPacked(runtime, stream, name,
                          packArgs<const std::int64_t*, const std::uint8_t*, std::uint8_t*, kernels::IndexNDArgs>(
                              d.index, d.updates, d.out, a),
                          grid, ranges, 3);
    case 2:
      return launchPacked(runtime, stream, name,
                          packArgs<const std::int64_t*, const std::uint16_t*, std::uint16_t*, kernels::IndexNDArgs>(
                              d.index, d.updates, d.out, a),
                          grid, ranges, 3);
    case 4:
      return launchPacked(runtime, stream, name,
                          packArgs<const std::int64_t*, const std::uint32_t*, std::uint32_t*, kernels::IndexNDArgs>(
                              d.index, d.updates, d.out, a),
                          grid, ranges, 3);
    default:
      return launchPacked(runtime, stream, name,
                          packArgs<const std::int64_t*, const std::uint64_t*, std::uint64_t*, kernels::IndexNDArgs>(
                              d.index, d.updates, d.out, a),
                          grid, ranges, 3);
  }
}

void launchPadIndex(DeviceRuntime& runtime, Stream stream, const PadIndexDesc& d) {
  const std::string& name = padIndexKernelName(d.elementBytes);
  if (d.rank < 0 || d.rank > kMaxCopyRank)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": rank ", d.rank, " is outside [0, ", kMaxCopyRank, "]");
  if (d.mode < kernels::kPadEdge || d.mode > kernels::kPadReflect)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": unknown mode ", d.mode);
  kernels::PadIndexArgs a{};
  a.rank = d.rank;
  a.mode = d.mode;
  a.count = 1;
  std::int64_t inCount = 1;
  for (int k = d.rank - 1; k >= 0; --k) {
    if (d.inDims[k] < 0 || d.outDims[k] < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": a negative extent");
    a.inDims[k] = d.inDims[k];
    a.outDims[k] = d.outDims[k];
    a.before[k] = d.before[k];
    a.inStrides[k] = inCount;
    inCount *= d.inDims[k];
    a.count *= d.outDims[k];
  }
  if (a.count == 0) return;
  if (inCount == 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": cannot pad an empty axis by its contents");
  if (d.x == nullptr || d.y == nullptr) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null pointer");
  const DeviceRange ranges[2] = {{d.y, static_cast<std::size_t>(a.count * d.elementBytes), "output"},
                                 {d.x, static_cast<std::size_t>(inCount * d.elementBytes), "input"}};
  const unsigned grid = elementGrid(a.count);
  switch (d.elementBytes) {
    case 1:
      return launchPacked(runtime, stream, name,
                          packArgs<const std::uint8_t*, std::uint8_t*, kernels::PadIndexArgs>(d.x, d.y, a), grid,
                          ranges, 2);
    case 2:
      return launchPacked(runtime, stream, name,
                          packArgs<const std::uint16_t*, std::uint16_t*, kernels::PadIndexArgs>(d.x, d.y, a), grid,
                          ranges, 2);
    case 4:
      return launchPacked(runtime, stream, name,
                          packArgs<const std::uint32_t*, std::uint32_t*, kernels::PadIndexArgs>(d.x, d.y, a), grid,
                          ranges, 2);
    default:
      return launchPacked(runtime, stream, name,
                          packArgs<const std::uint64_t*, std::uint64_t*, kernels::PadIndexArgs>(d.x, d.y, a), grid,
                          ranges, 2);
  }
}

void launchResize(DeviceRuntime& runtime, Stream stream, const ResizeDesc& d) {
  const std::string& name = resizeKernelName(d.elementBytes, d.linear);
  if (d.linear && d.elementBytes != 4) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": linear serves f32 only");
  if (d.rank < 0 || d.rank > kMaxCopyRank)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": rank ", d.rank, " is outside [0, ", kMaxCopyRank, "]");
  kernels::ResizeArgs a{};
  a.rank = d.rank;
  a.coord = d.coord;
  a.nearest = d.nearest;
  a.excludeOutside = d.excludeOutside ? 1 : 0;
  a.count = 1;
  std::int64_t inCount = 1;
  for (int k = 0; k < d.rank; ++k) {
    if (d.inDims[k] < 0 || d.outDims[k] < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": a negative extent");
    if (!(d.scale[k] > 0)) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": scale of axis ", k, " is not positive");
    a.inDims[k] = d.inDims[k];
    a.outDims[k] = d.outDims[k];
    a.scale[k] = d.scale[k];
    a.outWidth[k] = d.scale[k] * double(d.inDims[k]);
    // half_pixel_symmetric's shift, computed as the reference does.
    const double adjustment = double(d.outDims[k]) / a.outWidth[k];
    a.shift[k] = double(d.inDims[k]) / 2 * (1 - adjustment);
    a.count *= d.outDims[k];
    inCount *= d.inDims[k];
  }
  if (a.count == 0) return;
  if (inCount == 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": cannot resize an empty axis");
  if (d.x == nullptr || d.y == nullptr) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null pointer");
  const DeviceRange ranges[2] = {{d.y, static_cast<std::size_t>(a.count * d.elementBytes), "output"},
                                 {d.x, static_cast<std::size_t>(inCount * d.elementBytes), "input"}};
  const unsigned grid = elementGrid(a.count);
  if (d.linear) {
    launchPacked(runtime, stream, name,
                 packArgs<const float*, float*, kernels::ResizeArgs>(static_cast<const float*>(d.x),
                                                                     static_cast<float*>(d.y), a),
                 grid, ranges, 2);
    return;
  }
  switch (d.elementBytes) {
    case 1:
      return launchPacked(runtime, stream, name,
                          packArgs<const std::uint8_t*, std::uint8_t*, kernels::ResizeArgs>(d.x, d.y, a), grid, ranges,
                          2);
    case 2:
      return launchPacked(runtime, stream, name,
                          packArgs<const std::uint16_t*, std::uint16_t*, kernels::ResizeArgs>(d.x, d.y, a), grid,
                          ranges, 2);
    case 4:
      return launchPacked(runtime, stream, name,
                          packArgs<const std::uint32_t*, std::uint32_t*, kernels::ResizeArgs>(d.x, d.y, a), grid,
                          ranges, 2);
    default:
      return launchPacked(runtime, stream, name,
                          packArgs<const std::uint64_t*, std::uint64_t*, kernels::ResizeArgs>(d.x, d.y, a), grid,
                          ranges, 2);
  }
}

}  // namespace anvil::cuda
