// The checked launchers of cuda/linear_tc.h: descriptors are validated as launchGemm's and
// launchConv2d's are (with 2-byte f16 / bf16 or 1-byte s8 weights, and an INT8 launch's
// quantization), then packed for the runtime seam with each operand's device range.
#include "cuda/linear_tc.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <utility>

#include "anvil/error.h"
#include "cuda/arg_pack.h"
#include "cuda/linear_args_of.h"
#include "cuda/kernels/gemm_tc_args.h"

namespace anvil::cuda {
namespace {

using kernels::GemmTcArgsOf;

constexpr std::int64_t kMaxElements = std::int64_t{1} << 40;
constexpr std::int64_t kMaxGridYZ = 65535;
constexpr std::int64_t kMaxGridX = 0x7fffffff;

// Elements spanned by `batch` matrices of rows x cols, row stride ld, batch stride `stride`.
std::int64_t span(const char* name, const char* what, std::int64_t batch, std::int64_t rows,
                  std::int64_t cols, std::int64_t ld, std::int64_t stride) {
  if (batch == 0 || rows == 0 || cols == 0) return 0;
  const __int128 e = static_cast<__int128>(batch - 1) * stride +
                     static_cast<__int128>(rows - 1) * ld + cols;
  if (e > kMaxElements) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ", what, " spans ",
                static_cast<long double>(e), " elements, more than can be addressed");
  }
  return static_cast<std::int64_t>(e);
}

// Whether [p, p + pBytes) and [q, q + qBytes) share memory.
bool overlap(const void* p, std::int64_t pBytes, const void* q, std::int64_t qBytes) {
  if (p == nullptr || q == nullptr || pBytes == 0 || qBytes == 0) return false;
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  const auto b = reinterpret_cast<std::uintptr_t>(q);
  return a < b + static_cast<std::uintptr_t>(qBytes) && b < a + static_cast<std::uintptr_t>(pBytes);
}

// (N tiles, M tiles, batches), capped; the blocks stride.
LaunchShape gemmShape(const GemmDesc& d) {
  LaunchShape s;
  const std::int64_t tilesN = (d.n + kernels::kGemmTcTileN - 1) / kernels::kGemmTcTileN;
  const std::int64_t tilesM = (d.m + kernels::kGemmTcTileM - 1) / kernels::kGemmTcTileM;
  s.grid = Dim3{static_cast<unsigned>(std::min(tilesN, kMaxGridX)),
                static_cast<unsigned>(std::min(tilesM, kMaxGridYZ)),
                static_cast<unsigned>(std::min(d.batch, kMaxGridYZ))};
  s.block = Dim3{static_cast<unsigned>(kernels::kGemmTcThreads)};
  return s;
}

template <typename T>
void launchTyped(DeviceRuntime& runtime, Stream stream, const char* name, const GemmDesc& d,
                 std::int32_t act, const DeviceRange* ranges, std::size_t count) {
  GemmTcArgsOf<T> args{};
  args.a = static_cast<const float*>(d.a);
  args.b = static_cast<const T*>(d.b);
  args.bias = static_cast<const float*>(d.bias);
  args.z = static_cast<const float*>(d.z);
  args.c = static_cast<float*>(d.c);
  setGemmShapeAndEpilogue(&args, d, act);
  args.transA = d.transA ? 1 : 0;
  args.transB = d.transB ? 1 : 0;
  const auto pack = packArgs<GemmTcArgsOf<T>>(args);
  const LaunchShape s = gemmShape(d);
  KernelLaunch k;
  k.name = name;
  k.args = &pack;
  k.argBytes = sizeof pack;
  k.ranges = ranges;
  k.rangeCount = count;
  runtime.launch(k, s, stream);
}

}  // namespace

const char* gemmTensorCoreKernelName(DataType operandType) {
  switch (operandType) {
    case DataType::kF16: return kernels::kGemmTcF16Kernel;
    case DataType::kBF16: return kernels::kGemmTcBF16Kernel;
    case DataType::kI8: return kernels::kGemmTcI8Kernel;
    default:
      ANVIL_THROW(ErrorCode::kInvalidArgument, "gemmTensorCoreKernelName: operand type ",
                  dtypeName(operandType), "; expected f16, bf16 or i8");
  }
}

namespace {

// What a checked GEMM launch passes on: the epilogue's activation code and each operand's
// device range (A, B, bias, Z, C, and the INT8 scale and offset).
struct CheckedGemm {
  std::int32_t act = -1;  // kernels::kNoActivation
  DeviceRange ranges[7];
  std::size_t count = 0;
};

// launchGemm's checks for a tensor-core GEMM whose B elements take bBytes each (kInvalidArgument
// naming the kernel and the field); false when C is empty and nothing is to be launched.
bool checkGemmTc(const char* name, const GemmDesc& d, std::int64_t bBytes, CheckedGemm* out) {
  for (const auto& [what, v] : {std::pair{"batch", d.batch}, {"m", d.m}, {"n", d.n}, {"k", d.k},
                                {"lda", d.lda}, {"ldb", d.ldb}, {"ldc", d.ldc}, {"ldz", d.ldz},
                                {"strideA", d.strideA}, {"strideB", d.strideB},
                                {"strideC", d.strideC}, {"strideZ", d.strideZ}}) {
    if (v < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ", what, " ", v, " is negative");
  }
  if (d.activation) {
    if (static_cast<int>(*d.activation) >= kEpilogueActivationCount) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": unknown activation ",
                  static_cast<int>(*d.activation));
    }
    out->act = static_cast<std::int32_t>(*d.activation);
  }
  if (d.batch == 0 || d.m == 0 || d.n == 0) return false;
  if (d.c == nullptr) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null output C");
  const std::int64_t aRows = d.transA ? d.k : d.m, aCols = d.transA ? d.m : d.k;
  const std::int64_t bRows = d.transB ? d.n : d.k, bCols = d.transB ? d.k : d.n;
  std::int64_t aSpan = 0, bSpan = 0;
  if (d.k > 0) {
    if (d.a == nullptr || d.b == nullptr) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null ", d.a == nullptr ? "A" : "B",
                  " for k = ", d.k);
    }
    if (d.lda < aCols) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": lda ", d.lda, " is below A's ", aCols,
                  " stored columns");
    }
    if (d.ldb < bCols) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ldb ", d.ldb, " is below B's ", bCols,
                  " stored columns");
    }
    aSpan = span(name, "A", d.batch, aRows, aCols, d.lda, d.strideA);
    bSpan = span(name, "B", d.batch, bRows, bCols, d.ldb, d.strideB);
  }
  if (d.ldc < d.n) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ldc ", d.ldc, " is below n = ", d.n);
  }
  if (d.batch > 1 && d.strideC < (d.m - 1) * d.ldc + d.n) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": strideC ", d.strideC,
                " makes the batches of C overlap");
  }
  const std::int64_t cSpan = span(name, "C", d.batch, d.m, d.n, d.ldc, d.strideC);
  std::int64_t zSpan = 0;
  if (d.z != nullptr) {
    if (d.ldz < d.n) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ldz ", d.ldz, " is below n = ", d.n);
    }
    zSpan = span(name, "Z", d.batch, d.m, d.n, d.ldz, d.strideZ);
    const bool inPlace = d.z == d.c && d.ldz == d.ldc && d.strideZ == d.strideC;
    if (!inPlace && overlap(d.c, cSpan * 4, d.z, zSpan * 4)) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name,
                  ": C and Z overlap; they must be the same matrices (in place) or disjoint");
    }
  }
  for (const auto& [what, p, bytes] : {std::tuple{"A", d.a, aSpan * 4}, {"B", d.b, bSpan * bBytes},
                                       {"bias", d.bias, d.bias ? d.n * 4 : 0}}) {
    if (overlap(d.c, cSpan * 4, p, bytes)) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": output C overlaps input ", what);
    }
  }
  for (const auto& [p, bytes, what] : {std::tuple{d.a, aSpan * 4, "A"}, {d.b, bSpan * bBytes, "B"},
                                       {d.bias, d.n * 4, "bias"}, {d.z, zSpan * 4, "Z"},
                                       {static_cast<const void*>(d.c), cSpan * 4, "C"}}) {
    if (p != nullptr && bytes > 0) out->ranges[out->count++] = DeviceRange{p, static_cast<std::size_t>(bytes), what};
  }
  return true;
}

}  // namespace

void launchGemmTensorCore(DeviceRuntime& runtime, Stream stream, const GemmDesc& d) {
  const char* name = gemmTensorCoreKernelName(d.dtype);
  ANVIL_CHECK(d.dtype != DataType::kI8, ErrorCode::kInvalidArgument, name,
              ": an INT8 GEMM needs its quantization (launchGemmInt8TensorCore)");
  CheckedGemm c;
  if (!checkGemmTc(name, d, 2, &c)) return;
  if (d.dtype == DataType::kF16) {
    launchTyped<__half>(runtime, stream, name, d, c.act, c.ranges, c.count);
  } else {
    launchTyped<__nv_bfloat16>(runtime, stream, name, d, c.act, c.ranges, c.count);
  }
}

const char* conv2dTensorCoreKernelName(DataType operandType) {
  switch (operandType) {
    case DataType::kF16: return kernels::kConv2dTcF16Kernel;
    case DataType::kBF16: return kernels::kConv2dTcBF16Kernel;
    case DataType::kI8: return kernels::kConv2dTcI8Kernel;
    default:
      ANVIL_THROW(ErrorCode::kInvalidArgument, "conv2dTensorCoreKernelName: operand type ",
                  dtypeName(operandType), "; expected f16, bf16 or i8");
  }
}

namespace {

// (pixel tiles, output-channel tiles per group, groups), capped; the blocks stride.
LaunchShape convShape(const Conv2dDesc& d, std::int64_t oh, std::int64_t ow) {
  const std::int64_t pixels = d.n * oh * ow, kg = d.k / d.groups;
  LaunchShape s;
  s.grid = Dim3{static_cast<unsigned>(std::min((pixels + kernels::kGemmTcTileN - 1) / kernels::kGemmTcTileN, kMaxGridX)),
                static_cast<unsigned>(std::min((kg + kernels::kGemmTcTileM - 1) / kernels::kGemmTcTileM, kMaxGridYZ)),
                static_cast<unsigned>(std::min(d.groups, kMaxGridYZ))};
  s.block = Dim3{static_cast<unsigned>(kernels::kGemmTcThreads)};
  return s;
}

template <typename T>
void launchConvTyped(DeviceRuntime& runtime, Stream stream, const char* name, const Conv2dDesc& d,
                     const void* weight, std::int32_t act, std::int64_t oh, std::int64_t ow,
                     const DeviceRange* ranges, std::size_t count) {
  const kernels::Conv2dTcArgsOf<T> args = conv2dArgs(d, static_cast<const T*>(weight), act, oh, ow);
  const auto pack = packArgs<kernels::Conv2dTcArgsOf<T>>(args);
  const LaunchShape s = convShape(d, oh, ow);
  KernelLaunch k;
  k.name = name;
  k.args = &pack;
  k.argBytes = sizeof pack;
  k.ranges = ranges;
  k.rangeCount = count;
  runtime.launch(k, s, stream);
}

}  // namespace

namespace {

// What a checked conv launch passes on: the activation code, the output extents and each
// operand's device range (x, weight, bias, z, y, and the INT8 scale and offset).
struct CheckedConv {
  std::int32_t act = -1;  // kernels::kNoActivation
  std::int64_t oh = 0, ow = 0;
  DeviceRange ranges[7];
  std::size_t count = 0;
};

// launchConv2d's checks with weights of wBytes per element; false when the output is empty.
bool checkConvTc(const char* name, const Conv2dDesc& d, const void* weight, std::int64_t wBytes, CheckedConv* out) {
  for (const auto& [what, v] : {std::pair{"batch n", d.n}, {"channels c", d.c}, {"height h", d.h},
                                {"width w", d.w}, {"output channels k", d.k},
                                {"padTop", d.padTop}, {"padLeft", d.padLeft},
                                {"padBottom", d.padBottom}, {"padRight", d.padRight}}) {
    if (v < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ", what, " ", v, " is negative");
  }
  for (const auto& [what, v] : {std::pair{"kernel height r", d.r}, {"kernel width s", d.s},
                                {"strideH", d.strideH}, {"strideW", d.strideW},
                                {"dilationH", d.dilationH}, {"dilationW", d.dilationW},
                                {"groups", d.groups}}) {
    if (v < 1) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ", what, " ", v, " is not positive");
  }
  if (d.activation) {
    if (static_cast<int>(*d.activation) >= kEpilogueActivationCount) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": unknown activation ",
                  static_cast<int>(*d.activation));
    }
    out->act = static_cast<std::int32_t>(*d.activation);
  }
  if (d.c % d.groups != 0 || d.k % d.groups != 0) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": groups ", d.groups,
                " does not divide input channels ", d.c, " and output channels ", d.k);
  }
  // 32-bit index math in the kernel: window origins and offsets, and the reduction length.
  constexpr std::int64_t kMax32 = 0x7fffffff;
  if (d.h + d.padTop + d.padBottom > kMax32 || d.w + d.padLeft + d.padRight > kMax32 ||
      d.strideH > kMax32 || d.strideW > kMax32 || d.dilationH * d.r > kMax32 ||
      d.dilationW * d.s > kMax32 || (d.c / d.groups) * d.r > kMax32 / d.s) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name,
                ": sizes beyond 32-bit index math (padded extent, stride, dilated window, or "
                "c / groups * r * s must stay below 2^31)");
  }
  if (d.n == 0 || d.k == 0) return false;
  const std::int64_t oh = d.outH(), ow = d.outW();
  if (oh < 1 || ow < 1) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": output ", oh, " x ", ow,
                " is empty: the dilated window does not fit the padded input");
  }
  if (d.x == nullptr || weight == nullptr || d.y == nullptr) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null ",
                d.x == nullptr ? "input x" : weight == nullptr ? "weight" : "output y");
  }
  const std::int64_t xSpan = span(name, "x", 1, d.n * d.c, d.h * d.w, d.h * d.w, 0);
  const std::int64_t kdim = d.c / d.groups * d.r * d.s;
  const std::int64_t wSpan = span(name, "weight", 1, d.k, kdim, kdim, 0);
  const std::int64_t ySpan = span(name, "y", 1, d.n * d.k, oh * ow, oh * ow, 0);
  if (d.z != nullptr && d.z != d.y && overlap(d.y, ySpan * 4, d.z, ySpan * 4)) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name,
                ": y and z overlap; they must be the same tensor (in place) or disjoint");
  }
  for (const auto& [what, p, bytes] : {std::tuple{"x", static_cast<const void*>(d.x), xSpan * 4},
                                       {"weight", weight, wSpan * wBytes},
                                       {"bias", static_cast<const void*>(d.bias), d.bias ? d.k * 4 : 0}}) {
    if (overlap(d.y, ySpan * 4, p, bytes)) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": output y overlaps input ", what);
    }
  }
  for (const auto& [p, bytes, what] :
       {std::tuple{static_cast<const void*>(d.x), xSpan * 4, "x"}, {weight, wSpan * wBytes, "weight"},
        {static_cast<const void*>(d.bias), d.k * 4, "bias"}, {static_cast<const void*>(d.z), ySpan * 4, "z"},
        {static_cast<const void*>(d.y), ySpan * 4, "y"}}) {
    if (p != nullptr && bytes > 0) out->ranges[out->count++] = DeviceRange{p, static_cast<std::size_t>(bytes), what};
  }
  out->oh = oh;
  out->ow = ow;
  return true;
}

// The INT8 quantization's own checks, and its scale and offset ranges (`features` each).
void checkInt8Quant(const char* name, const Int8Quant& q, std::int64_t features, std::int64_t k,
                    DeviceRange* ranges, std::size_t* count) {
  if (q.scale == nullptr || q.offset == nullptr) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null ", q.scale == nullptr ? "scale" : "offset");
  }
  if (!(q.xInv > 0.0f) || !std::isfinite(q.xInv)) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": xInv ", q.xInv, " is not a positive finite 1 / scale");
  }
  if (q.xZero < 0 || q.xZero > 255) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": zero point ", q.xZero, " is off the u8 grid");
  }
  // |sum (q - 128) w| and |offset| stay below 2^31 (the CPU kernels' bound, kI8MaxK).
  if (k > kInt8TensorCoreMaxK) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": k ", k, " is above ", kInt8TensorCoreMaxK,
                ", beyond exact s32 sums");
  }
  // The output's range is the last one the shape checks recorded.
  const DeviceRange& out = ranges[*count - 1];
  for (const auto& [what, p] : {std::pair<const char*, const void*>{"scale", q.scale}, {"offset", q.offset}}) {
    if (overlap(out.ptr, static_cast<std::int64_t>(out.bytes), p, features * 4)) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": the output overlaps the ", what, " array");
    }
  }
  ranges[(*count)++] = DeviceRange{q.scale, static_cast<std::size_t>(features) * 4, "scale"};
  ranges[(*count)++] = DeviceRange{q.offset, static_cast<std::size_t>(features) * 4, "offset"};
}

kernels::I8QuantArgs quantArgs(const Int8Quant& q) {
  return kernels::I8QuantArgs{q.scale, q.offset, q.xInv, q.xZero};
}

void launchPacked(DeviceRuntime& runtime, Stream stream, const char* name, const void* pack, std::size_t bytes,
                  const LaunchShape& s, const DeviceRange* ranges, std::size_t count) {
  KernelLaunch k;
  k.name = name;
  k.args = pack;
  k.argBytes = bytes;
  k.ranges = ranges;
  k.rangeCount = count;
  runtime.launch(k, s, stream);
}

}  // namespace

void launchConv2dTensorCore(DeviceRuntime& runtime, Stream stream, const Conv2dDesc& d,
                            const void* weight, DataType operandType) {
  const char* name = conv2dTensorCoreKernelName(operandType);
  ANVIL_CHECK(operandType != DataType::kI8, ErrorCode::kInvalidArgument, name,
              ": an INT8 conv needs its quantization (launchConv2dInt8TensorCore)");
  CheckedConv c;
  if (!checkConvTc(name, d, weight, 2, &c)) return;
  if (operandType == DataType::kF16) {
    launchConvTyped<__half>(runtime, stream, name, d, weight, c.act, c.oh, c.ow, c.ranges, c.count);
  } else {
    launchConvTyped<__nv_bfloat16>(runtime, stream, name, d, weight, c.act, c.oh, c.ow, c.ranges, c.count);
  }
}

void launchGemmInt8TensorCore(DeviceRuntime& runtime, Stream stream, const GemmDesc& d, const Int8Quant& q) {
  const char* name = kernels::kGemmTcI8Kernel;
  ANVIL_CHECK(d.dtype == DataType::kI8 && d.transB, ErrorCode::kInvalidArgument, name,
              ": B must be s8 (dtype i8) with its features as rows (transB)");
  ANVIL_CHECK(d.alpha == 1.0f, ErrorCode::kInvalidArgument, name, ": alpha ", d.alpha,
              " must be 1 (fold it into the scale)");
  CheckedGemm c;
  if (!checkGemmTc(name, d, 1, &c)) return;
  checkInt8Quant(name, q, d.n, d.k, c.ranges, &c.count);
  kernels::GemmI8Args args{};
  args.a = static_cast<const float*>(d.a);
  args.b = static_cast<const signed char*>(d.b);
  args.bias = static_cast<const float*>(d.bias);
  args.z = static_cast<const float*>(d.z);
  args.c = static_cast<float*>(d.c);
  setGemmShapeAndEpilogue(&args, d, c.act);
  args.transA = d.transA ? 1 : 0;
  args.q = quantArgs(q);
  const auto pack = packArgs<kernels::GemmI8Args>(args);
  launchPacked(runtime, stream, name, &pack, sizeof pack, gemmShape(d), c.ranges, c.count);
}

void launchConv2dInt8TensorCore(DeviceRuntime& runtime, Stream stream, const Conv2dDesc& d, const void* weight,
                                const Int8Quant& q) {
  const char* name = kernels::kConv2dTcI8Kernel;
  CheckedConv c;
  if (!checkConvTc(name, d, weight, 1, &c)) return;
  checkInt8Quant(name, q, d.k, d.c / d.groups * d.r * d.s, c.ranges, &c.count);
  kernels::Conv2dI8Args args{};
  args.conv = conv2dArgs(d, static_cast<const signed char*>(weight), c.act, c.oh, c.ow);
  args.q = quantArgs(q);
  const auto pack = packArgs<kernels::Conv2dI8Args>(args);
  launchPacked(runtime, stream, name, &pack, sizeof pack, convShape(d, c.oh, c.ow), c.ranges, c.count);
}

}  // namespace anvil::cuda
