// The checked launchers of cuda/normpool.h: arguments are validated and kernel arguments packed
// here (host C++, no CUDA header); each launch names its kernel and the device ranges it
// touches (checked by the sim).
#include "cuda/normpool.h"

#include <algorithm>
#include <vector>

#include "anvil/error.h"
#include "cuda/arg_pack.h"
#include "cuda/device.h"
#include "cuda/kernels/normmove_args.h"

namespace anvil::cuda {
namespace {

constexpr std::int64_t kMaxGrid = 1 << 16;  // blocks stride past it

unsigned rowGrid(std::int64_t rows) { return static_cast<unsigned>(std::min(rows, kMaxGrid)); }
unsigned elementGrid(std::int64_t n) {
  return static_cast<unsigned>(std::min((n + kernels::kGridStrideBlock - 1) / kernels::kGridStrideBlock, kMaxGrid));
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

void requireShape(const std::string& name, std::int64_t a, std::int64_t b) {
  if (a < 0 || b < 0)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": shape [", a, ", ", b, "] has a negative dimension");
  if (b != 0 && a > INT64_MAX / 8 / b)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": shape [", a, ", ", b, "] is too large to address");
}

void requirePointers(const std::string& name, const void* x, const void* y) {
  if (x == nullptr || y == nullptr)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null ", x == nullptr ? "input" : "output", " pointer");
}

const char* reduceName(ReduceKind k) {
  switch (k) {
    case ReduceKind::kSum:
      return "sum";
    case ReduceKind::kMean:
      return "mean";
    case ReduceKind::kMax:
      return "max";
    case ReduceKind::kMin:
      return "min";
    case ReduceKind::kProd:
      return "prod";
    case ReduceKind::kL1:
      return "l1";
    case ReduceKind::kL2:
      return "l2";
    case ReduceKind::kSumSquare:
      return "sum_square";
    case ReduceKind::kLogSum:
      return "log_sum";
    case ReduceKind::kLogSumExp:
      return "log_sum_exp";
  }
  return "?";
}

}  // namespace

// The names are built once (run() must not allocate): each function keeps its table.
const std::string& layerNormKernelName(bool warpPerRow) {
  static const std::string names[2] = {::anvil::detail::concat("f32_layernorm_row_block", kernels::kNormBlock),
                                       ::anvil::detail::concat("f32_layernorm_row_warp_block", kernels::kNormBlock)};
  return names[warpPerRow ? 1 : 0];
}
const std::string& batchNormKernelName() {
  static const std::string name = ::anvil::detail::concat("f32_batchnorm_gridstride_block", kernels::kGridStrideBlock);
  return name;
}
const std::string& lpNormKernelName(int p, bool rows) {
  static const std::string names[4] = {
      ::anvil::detail::concat("f32_lp1norm_axis_gridstride_block", kernels::kGridStrideBlock),
      ::anvil::detail::concat("f32_lp1norm_row_block", kernels::kNormBlock),
      ::anvil::detail::concat("f32_lp2norm_axis_gridstride_block", kernels::kGridStrideBlock),
      ::anvil::detail::concat("f32_lp2norm_row_block", kernels::kNormBlock)};
  if (p != 1 && p != 2) ANVIL_THROW(ErrorCode::kInvalidArgument, "launchLpNorm: p ", p, " is not 1 or 2");
  return names[(p - 1) * 2 + (rows ? 1 : 0)];
}
const std::string& logSoftmaxRowsKernelName() {
  static const std::string name = ::anvil::detail::concat("f32_log_softmax_row_block", kernels::kNormBlock);
  return name;
}
const std::string& softmaxAxisKernelName(bool log) {
  static const std::string names[2] = {
      ::anvil::detail::concat("f32_softmax_axis_gridstride_block", kernels::kGridStrideBlock),
      ::anvil::detail::concat("f32_log_softmax_axis_gridstride_block", kernels::kGridStrideBlock)};
  return names[log ? 1 : 0];
}
const std::string& reduceKernelName(ReduceKind kind, bool perBlock) {
  constexpr int kKinds = 10;
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (int k = 0; k < kKinds; ++k) {
      v.push_back(::anvil::detail::concat("f32_reduce_", reduceName(ReduceKind(k)), "_thread_block",
                                          kernels::kGridStrideBlock));
      v.push_back(::anvil::detail::concat("f32_reduce_", reduceName(ReduceKind(k)), "_row_block", kernels::kNormBlock));
    }
    return v;
  }();
  const int k = static_cast<int>(kind);
  if (k < 0 || k >= kKinds) ANVIL_THROW(ErrorCode::kInvalidArgument, "launchReduce: unknown reduction ", k);
  return names[size_t(2 * k + (perBlock ? 1 : 0))];
}
const std::string& pool2dKernelName(bool max) {
  static const std::string names[2] = {
      ::anvil::detail::concat("f32_avgpool2d_gridstride_block", kernels::kGridStrideBlock),
      ::anvil::detail::concat("f32_maxpool2d_gridstride_block", kernels::kGridStrideBlock)};
  return names[max ? 1 : 0];
}
const std::string& argReduceKernelName(bool max) {
  static const std::string names[2] = {
      ::anvil::detail::concat("f32_argmin_gridstride_block", kernels::kGridStrideBlock),
      ::anvil::detail::concat("f32_argmax_gridstride_block", kernels::kGridStrideBlock)};
  return names[max ? 1 : 0];
}
const std::string& cumSumKernelName(int elementBytes, bool isFloat) {
  static const std::string names[3] = {
      ::anvil::detail::concat("f32_cumsum_gridstride_block", kernels::kGridStrideBlock),
      ::anvil::detail::concat("i32_cumsum_gridstride_block", kernels::kGridStrideBlock),
      ::anvil::detail::concat("i64_cumsum_gridstride_block", kernels::kGridStrideBlock)};
  if (isFloat) return names[0];
  return names[elementBytes == 8 ? 2 : 1];
}

namespace {

// Both launchers: rows of `cols`, affine parameters of `paramCount` floats indexed as
// LayerNormArgs says.
void launchRowNorm(DeviceRuntime& runtime, Stream stream, const float* x, const float* scale, const float* bias,
                   float* y, std::int64_t rows, std::int64_t cols, std::int64_t groups, std::int64_t perGroup,
                   std::int64_t spatial, std::int64_t paramCount, float epsilon) {
  const bool warp = cols <= kernels::kWarpRowMaxCols;
  const std::string& name = layerNormKernelName(warp);
  requireShape(name, rows, cols);
  if (rows == 0 || cols == 0) return;
  requirePointers(name, x, y);
  if (scale == nullptr) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null scale pointer");
  const std::size_t bytes = static_cast<std::size_t>(rows * cols) * sizeof(float);
  const std::size_t paramBytes = static_cast<std::size_t>(paramCount) * sizeof(float);
  const DeviceRange ranges[4] = {
      {x, bytes, "input"}, {y, bytes, "output"}, {scale, paramBytes, "scale"}, {bias, bias ? paramBytes : 0, "bias"}};
  const kernels::LayerNormArgs args{x, scale, bias, y, rows, cols, groups, perGroup, spatial, epsilon};
  constexpr std::int64_t kRowsPerBlock = kernels::kNormBlock / 32;
  launchPacked(runtime, stream, name, packArgs<kernels::LayerNormArgs>(args),
               warp ? rowGrid((rows + kRowsPerBlock - 1) / kRowsPerBlock) : rowGrid(rows), ranges, bias ? 4 : 3);
}

}  // namespace

void launchLayerNorm(DeviceRuntime& runtime, Stream stream, const float* x, const float* scale, const float* bias,
                     float* y, std::int64_t rows, std::int64_t cols, float epsilon) {
  launchRowNorm(runtime, stream, x, scale, bias, y, rows, cols, 1, cols, 1, cols, epsilon);
}

void launchGroupNorm(DeviceRuntime& runtime, Stream stream, const float* x, const float* scale, const float* bias,
                     float* y, std::int64_t n, std::int64_t channels, std::int64_t groups, std::int64_t spatial,
                     float epsilon) {
  const std::string& name = layerNormKernelName(true);
  if (n < 0 || channels < 0 || spatial < 0 || groups < 1 || channels % groups != 0)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": GroupNorm of [", n, ", ", channels, ", ", spatial, "] in ",
                groups, " groups: the groups must divide the channels");
  if (bias == nullptr && n * channels * spatial != 0)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": GroupNorm needs a bias");
  const std::int64_t perGroup = channels / groups;
  launchRowNorm(runtime, stream, x, scale, bias, y, n * groups, perGroup * spatial, groups, perGroup, spatial, channels,
                epsilon);
}

void launchLpNorm(DeviceRuntime& runtime, Stream stream, int p, const float* x, float* y, std::int64_t outer,
                  std::int64_t n, std::int64_t inner) {
  const bool rows = inner == 1;
  const std::string& name = lpNormKernelName(p, rows);
  requireShape(name, outer, n);
  requireShape(name, outer * n, inner);
  if (outer == 0 || n == 0 || inner == 0) return;
  requirePointers(name, x, y);
  const std::size_t bytes = static_cast<std::size_t>(outer * n * inner) * sizeof(float);
  const DeviceRange ranges[2] = {{x, bytes, "input"}, {y, bytes, "output"}};
  const kernels::LpNormArgs args{x, y, outer, n, inner};
  launchPacked(runtime, stream, name, packArgs<kernels::LpNormArgs>(args),
               rows ? rowGrid(outer) : elementGrid(outer * inner), ranges, 2);
}

void launchBatchNorm(DeviceRuntime& runtime, Stream stream, const float* x, const float* mean, const float* a,
                     const float* b, float* y, std::int64_t n, std::int64_t channels, std::int64_t spatial) {
  const std::string& name = batchNormKernelName();
  requireShape(name, n, channels);
  requireShape(name, n * channels, spatial);
  const std::int64_t count = n * channels * spatial;
  if (count == 0) return;
  requirePointers(name, x, y);
  if (mean == nullptr || a == nullptr || b == nullptr)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null channel parameter pointer");
  const std::size_t bytes = static_cast<std::size_t>(count) * sizeof(float);
  const std::size_t paramBytes = static_cast<std::size_t>(channels) * sizeof(float);
  const DeviceRange ranges[5] = {{x, bytes, "input"},
                                 {y, bytes, "output"},
                                 {mean, paramBytes, "mean"},
                                 {a, paramBytes, "scale"},
                                 {b, paramBytes, "bias"}};
  const kernels::ChannelAffineArgs args{x, mean, a, b, y, count, channels, spatial};
  launchPacked(runtime, stream, name, packArgs<kernels::ChannelAffineArgs>(args), elementGrid(count), ranges, 5);
}

void launchSoftmaxAxis(DeviceRuntime& runtime, Stream stream, bool log, const float* x, float* y, std::int64_t outer,
                       std::int64_t n, std::int64_t inner) {
  if (inner == 1 && !log) return launchSoftmaxRows(runtime, stream, x, y, outer, n);
  const bool rows = inner == 1;
  const std::string& name = rows ? logSoftmaxRowsKernelName() : softmaxAxisKernelName(log);
  requireShape(name, outer, n);
  requireShape(name, outer * n, inner);
  if (outer == 0 || n == 0 || inner == 0) return;
  requirePointers(name, x, y);
  const std::size_t bytes = static_cast<std::size_t>(outer * n * inner) * sizeof(float);
  const DeviceRange ranges[2] = {{x, bytes, "input"}, {y, bytes, "output"}};
  const kernels::SoftmaxAxisArgs args{x, y, outer, n, inner};
  launchPacked(runtime, stream, name, packArgs<kernels::SoftmaxAxisArgs>(args),
               rows ? rowGrid(outer) : elementGrid(outer * inner), ranges, 2);
}

void launchReduce(DeviceRuntime& runtime, Stream stream, ReduceKind kind, const float* x, float* y, int rank,
                  const std::int64_t* dims, std::uint32_t reducedMask) {
  const std::string& blockName = reduceKernelName(kind, true);
  if (rank < 0 || rank > 12)
    ANVIL_THROW(ErrorCode::kInvalidArgument, blockName, ": rank ", rank, " is outside [0, 12]");
  std::int64_t total = 1;
  for (int d = 0; d < rank; ++d) {
    if (dims[d] < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, blockName, ": dim ", d, " is negative");
    total = dims[d] == 0 || total == 0 ? 0 : total * dims[d];
  }
  // Merge runs of adjacent dims of the same kind (kept or reduced) into one, dropping unit
  // dims, so that most reductions have one kept and one reduced dim.
  kernels::ReduceArgs a{};
  a.x = x;
  a.y = y;
  std::int64_t stride = 1;
  int lastKind = -1;  // 0 kept, 1 reduced
  std::int64_t keptDims[12], keptStrides[12], redDims[12], redStrides[12];
  int kept = 0, red = 0;
  for (int d = rank - 1; d >= 0; --d) {
    const std::int64_t e = dims[d];
    const int k = (reducedMask >> d) & 1u;
    if (e != 1) {
      std::int64_t* ds = k ? redDims : keptDims;
      std::int64_t* ss = k ? redStrides : keptStrides;
      int& cnt = k ? red : kept;
      if (k == lastKind && ss[cnt - 1] * ds[cnt - 1] == stride) {
        ds[cnt - 1] *= e;
      } else {
        ds[cnt] = e;
        ss[cnt] = stride;
        ++cnt;
      }
      lastKind = k;
    }
    stride *= e == 0 ? 1 : e;
  }
  if (kept > kernels::kMaxMoveRank || red > kernels::kMaxMoveRank)
    ANVIL_THROW(ErrorCode::kInvalidArgument, blockName, ": ", kept, " kept and ", red,
                " reduced dims after merging; at most ", kernels::kMaxMoveRank, " each");
  // Collected innermost first; the kernels index row-major (outermost first).
  a.keptRank = kept;
  a.redRank = red;
  a.outputs = 1;
  a.count = 1;
  for (int i = 0; i < kept; ++i) {
    a.keptDims[i] = keptDims[kept - 1 - i];
    a.keptStrides[i] = keptStrides[kept - 1 - i];
    a.outputs *= a.keptDims[i];
  }
  for (int i = 0; i < red; ++i) {
    a.redDims[i] = redDims[red - 1 - i];
    a.redStrides[i] = redStrides[red - 1 - i];
    a.count *= a.redDims[i];
  }
  if (a.outputs == 0) return;
  requirePointers(blockName, y, total ? x : y);
  // Long reductions (or few outputs) take a block per output; short ones a thread each.
  const bool perBlock = a.count >= 256 || (a.count >= 32 && a.outputs < 1024);
  const std::string& name = perBlock ? blockName : reduceKernelName(kind, false);
  const DeviceRange ranges[2] = {{y, static_cast<std::size_t>(a.outputs) * sizeof(float), "output"},
                                 {x, static_cast<std::size_t>(total) * sizeof(float), "input"}};
  launchPacked(runtime, stream, name, packArgs<kernels::ReduceArgs>(a),
               perBlock ? rowGrid(a.outputs) : elementGrid(a.outputs), ranges, total ? 2 : 1);
}

void launchArgReduce(DeviceRuntime& runtime, Stream stream, bool max, const float* x, std::int64_t* y,
                     std::int64_t outer, std::int64_t n, std::int64_t inner, bool selectLast) {
  const std::string& name = argReduceKernelName(max);
  requireShape(name, outer, n);
  requireShape(name, outer * n, inner);
  if (outer == 0 || inner == 0) return;
  requirePointers(name, n ? static_cast<const void*>(x) : y, y);
  const DeviceRange ranges[2] = {{y, static_cast<std::size_t>(outer * inner) * sizeof(std::int64_t), "output"},
                                 {x, static_cast<std::size_t>(outer * n * inner) * sizeof(float), "input"}};
  const kernels::ArgReduceArgs a{x, y, outer, n, inner, selectLast ? 1 : 0};
  launchPacked(runtime, stream, name, packArgs<kernels::ArgReduceArgs>(a), elementGrid(outer * inner), ranges,
               n ? 2 : 1);
}

void launchCumSum(DeviceRuntime& runtime, Stream stream, DataType dtype, const void* x, void* y, std::int64_t outer,
                  std::int64_t n, std::int64_t inner, bool exclusive, bool reverse) {
  if (dtype != DataType::kF32 && dtype != DataType::kI32 && dtype != DataType::kI64)
    ANVIL_THROW(ErrorCode::kInvalidArgument, "launchCumSum: element type ", dtypeName(dtype),
                " is not f32, i32 or i64");
  const int bytes = dtype == DataType::kI64 ? 8 : 4;
  const std::string& name = cumSumKernelName(bytes, dtype == DataType::kF32);
  requireShape(name, outer, n);
  requireShape(name, outer * n, inner);
  if (outer == 0 || n == 0 || inner == 0) return;
  requirePointers(name, x, y);
  const std::size_t size = static_cast<std::size_t>(outer * n * inner * bytes);
  const DeviceRange ranges[2] = {{x, size, "input"}, {y, size, "output"}};
  const kernels::CumSumArgs a{outer, n, inner, exclusive ? 1 : 0, reverse ? 1 : 0};
  const unsigned grid = elementGrid(outer * inner);
  if (dtype == DataType::kF32)
    return launchPacked(runtime, stream, name, packArgs<const float*, float*, kernels::CumSumArgs>(x, y, a), grid,
                        ranges, 2);
  if (dtype == DataType::kI32)
    return launchPacked(runtime, stream, name,
                        packArgs<const std::int32_t*, std::int32_t*, kernels::CumSumArgs>(x, y, a), grid, ranges, 2);
  launchPacked(runtime, stream, name, packArgs<const std::int64_t*, std::int64_t*, kernels::CumSumArgs>(x, y, a), grid,
               ranges, 2);
}

void launchPool2d(DeviceRuntime& runtime, Stream stream, const Pool2dDesc& d) {
  const std::string& name = pool2dKernelName(d.max);
  if (d.n < 0 || d.c < 0 || d.h < 0 || d.w < 0 || d.oh < 0 || d.ow < 0)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": a negative extent");
  if (d.kh < 1 || d.kw < 1 || d.sh < 1 || d.sw < 1 || d.dh < 1 || d.dw < 1)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": kernel, strides and dilations must be >= 1");
  const std::int64_t planes = d.n * d.c;
  if (planes == 0 || d.oh == 0 || d.ow == 0) return;
  requirePointers(name, d.x, d.y);
  const std::int64_t outN = planes * d.oh * d.ow;
  const DeviceRange ranges[2] = {{d.y, static_cast<std::size_t>(outN) * sizeof(float), "output"},
                                 {d.x, static_cast<std::size_t>(planes * d.h * d.w) * sizeof(float), "input"}};
  const kernels::Pool2dArgs a{d.x,  d.y,  planes, d.h,  d.w,  d.oh,     d.ow,      d.kh,
                              d.kw, d.sh, d.sw,   d.dh, d.dw, d.padTop, d.padLeft, d.countIncludePad ? 1 : 0};
  launchPacked(runtime, stream, name, packArgs<kernels::Pool2dArgs>(a), elementGrid(outN), ranges,
               d.h * d.w != 0 ? 2 : 1);
}

}  // namespace anvil::cuda
