// The checked launchers of cuda/linear.h: every descriptor field is validated here, before
// anything is queued, and the launch is packed for the runtime seam with the device ranges
// each operand spans (which the sim runtime checks against its allocations).
#include "cuda/linear.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "anvil/error.h"
#include "cuda/arg_pack.h"
#include "cuda/linear_args_of.h"
#include "cuda/kernels/launch.h"
#include "cuda/kernels/linear_args.h"

namespace anvil::cuda {
namespace {

using kernels::Conv2dArgs;
using kernels::GemmArgsOf;

constexpr std::int64_t kMaxElements = std::int64_t{1} << 40;  // 4 TiB of floats: a typo, not a tensor
constexpr unsigned kMaxGridYZ = 65535;
constexpr std::int64_t kMaxGridX = 0x7fffffff;

std::int32_t activationCode(const std::optional<Activation>& act, const std::string& name) {
  if (!act) return -1;  // kernels::kNoActivation
  if (static_cast<int>(*act) >= kEpilogueActivationCount) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": unknown activation ",
                static_cast<int>(*act));
  }
  return static_cast<std::int32_t>(*act);
}

// Elements spanned by `batch` matrices of rows x cols with row stride ld and batch stride
// `stride` (0 when any count is 0); kInvalidArgument when that cannot be addressed.
std::int64_t span(const std::string& name, const char* what, std::int64_t batch,
                  std::int64_t rows, std::int64_t cols, std::int64_t ld, std::int64_t stride) {
  if (batch == 0 || rows == 0 || cols == 0) return 0;
  const __int128 e = static_cast<__int128>(batch - 1) * stride +
                     static_cast<__int128>(rows - 1) * ld + cols;
  if (e > kMaxElements) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ", what, " spans ",
                static_cast<long double>(e), " elements, more than can be addressed");
  }
  return static_cast<std::int64_t>(e);
}

// Whether pn and qn elements of `bytes` each at p and q share memory.
bool overlap(const void* p, std::int64_t pn, const void* q, std::int64_t qn,
             std::size_t bytes = 4) {
  if (p == nullptr || q == nullptr || pn == 0 || qn == 0) return false;
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  const auto b = reinterpret_cast<std::uintptr_t>(q);
  return a < b + static_cast<std::uintptr_t>(qn) * bytes &&
         b < a + static_cast<std::uintptr_t>(pn) * bytes;
}

std::size_t elementBytes(DataType t) { return t == DataType::kF32 ? 4 : 2; }

template <typename T>
GemmArgsOf<T> gemmArgs(const GemmDesc& d, std::int32_t act) {
  GemmArgsOf<T> a{};
  a.a = static_cast<const T*>(d.a);
  a.b = static_cast<const T*>(d.b);
  a.bias = static_cast<const T*>(d.bias);
  a.z = static_cast<const T*>(d.z);
  a.c = static_cast<T*>(d.c);
  setGemmShapeAndEpilogue(&a, d, act);
  return a;
}

void requireNonNegative(const std::string& name, const char* what, std::int64_t v) {
  if (v < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ", what, " ", v, " is negative");
}

template <typename Pack>
void launchPacked(DeviceRuntime& runtime, Stream stream, const std::string& name,
                  const Pack& pack, const LaunchShape& shape, const DeviceRange* ranges,
                  std::size_t rangeCount) {
  KernelLaunch k;
  k.name = name.c_str();
  k.args = &pack;
  k.argBytes = sizeof pack;
  k.ranges = ranges;
  k.rangeCount = rangeCount;
  runtime.launch(k, shape, stream);
}

// (tiles of N, tiles of M, batches) capped at CUDA's grid limits; the kernels stride past them.
LaunchShape tileGrid(std::int64_t n, std::int64_t m, std::int64_t batches) {
  const std::int64_t tilesN = (n + kernels::kGemmTileN - 1) / kernels::kGemmTileN;
  const std::int64_t tilesM = (m + kernels::kGemmTileM - 1) / kernels::kGemmTileM;
  LaunchShape s;
  s.grid = Dim3{static_cast<unsigned>(std::min(tilesN, kMaxGridX)),
                static_cast<unsigned>(std::min<std::int64_t>(tilesM, kMaxGridYZ)),
                static_cast<unsigned>(std::min<std::int64_t>(batches, kMaxGridYZ))};
  s.block = Dim3{static_cast<unsigned>(kernels::kGemmThreads)};
  return s;
}

std::string tileName() {
  return ::anvil::detail::concat(kernels::kGemmTileM, "x", kernels::kGemmTileN, "x",
                                 kernels::kGemmTileK, "_", kernels::kGemmThreadM, "x",
                                 kernels::kGemmThreadN);
}

}  // namespace

GemmDesc GemmDesc::packed(std::int64_t batch, std::int64_t m, std::int64_t n, std::int64_t k,
                          bool transA, bool transB, const void* a, const void* b, void* c,
                          DataType dtype) {
  GemmDesc d;
  d.dtype = dtype;
  d.batch = batch;
  d.m = m;
  d.n = n;
  d.k = k;
  d.transA = transA;
  d.transB = transB;
  d.a = a;
  d.lda = transA ? m : k;
  d.strideA = m * k;
  d.b = b;
  d.ldb = transB ? k : n;
  d.strideB = k * n;
  d.c = c;
  d.ldc = n;
  d.strideC = m * n;
  d.ldz = n;
  d.strideZ = m * n;
  return d;
}

std::int64_t Conv2dDesc::outH() const {
  return (h + padTop + padBottom - dilationH * (r - 1) - 1) / strideH + 1;
}
std::int64_t Conv2dDesc::outW() const {
  return (w + padLeft + padRight - dilationW * (s - 1) - 1) / strideW + 1;
}

std::string gemmKernelName(bool transA, bool transB, DataType dtype) {
  return ::anvil::detail::concat(dtypeName(dtype), "_gemm_simt_", tileName(), "_", transA ? "t" : "n",
                                 transB ? "t" : "n");
}

std::string conv2dKernelName() {
  return ::anvil::detail::concat("f32_conv2d_implicit_gemm_", tileName());
}

void launchGemm(DeviceRuntime& runtime, Stream stream, const GemmDesc& d) {
  if (d.dtype != DataType::kF32 && d.dtype != DataType::kF16 && d.dtype != DataType::kBF16) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "launchGemm: unsupported element type ",
                dtypeName(d.dtype), " (", static_cast<int>(d.dtype),
                "); expected f32, f16 or bf16");
  }
  // Names built once per variant: a launch allocates nothing (run() of a CUDA step calls this).
  static const std::string names[3][2][2] = {
      {{gemmKernelName(false, false, DataType::kF32), gemmKernelName(false, true, DataType::kF32)},
       {gemmKernelName(true, false, DataType::kF32), gemmKernelName(true, true, DataType::kF32)}},
      {{gemmKernelName(false, false, DataType::kF16), gemmKernelName(false, true, DataType::kF16)},
       {gemmKernelName(true, false, DataType::kF16), gemmKernelName(true, true, DataType::kF16)}},
      {{gemmKernelName(false, false, DataType::kBF16), gemmKernelName(false, true, DataType::kBF16)},
       {gemmKernelName(true, false, DataType::kBF16), gemmKernelName(true, true, DataType::kBF16)}}};
  const std::string& name =
      names[d.dtype == DataType::kF32 ? 0 : d.dtype == DataType::kF16 ? 1 : 2][d.transA][d.transB];
  if (d.dtype != DataType::kF32 && d.transA) {
    ANVIL_THROW(ErrorCode::kUnsupported, name, ": no such kernel; ", dtypeName(d.dtype),
                " GEMMs exist with A as used (nn, nt) only: transpose A first");
  }
  const std::size_t es = elementBytes(d.dtype);
  requireNonNegative(name, "batch", d.batch);
  requireNonNegative(name, "m", d.m);
  requireNonNegative(name, "n", d.n);
  requireNonNegative(name, "k", d.k);
  const std::int32_t act = activationCode(d.activation, name);
  if (d.batch == 0 || d.m == 0 || d.n == 0) return;
  for (const auto& [what, v] : {std::pair{"lda", d.lda}, {"ldb", d.ldb}, {"ldc", d.ldc},
                                {"ldz", d.ldz}, {"strideA", d.strideA}, {"strideB", d.strideB},
                                {"strideC", d.strideC}, {"strideZ", d.strideZ}}) {
    requireNonNegative(name, what, v);
  }
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
                  " stored columns (", aRows, " x ", aCols, d.transA ? ", transposed)" : ")");
    }
    if (d.ldb < bCols) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ldb ", d.ldb, " is below B's ", bCols,
                  " stored columns (", bRows, " x ", bCols, d.transB ? ", transposed)" : ")");
    }
    aSpan = span(name, "A", d.batch, aRows, aCols, d.lda, d.strideA);
    bSpan = span(name, "B", d.batch, bRows, bCols, d.ldb, d.strideB);
  }
  if (d.ldc < d.n) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ldc ", d.ldc, " is below n = ", d.n);
  }
  if (d.batch > 1 && d.strideC < (d.m - 1) * d.ldc + d.n) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": strideC ", d.strideC,
                " makes the batches of C overlap (each spans ", (d.m - 1) * d.ldc + d.n,
                " elements)");
  }
  const std::int64_t cSpan = span(name, "C", d.batch, d.m, d.n, d.ldc, d.strideC);
  std::int64_t zSpan = 0;
  if (d.z != nullptr) {
    if (d.ldz < d.n) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ldz ", d.ldz, " is below n = ", d.n);
    }
    zSpan = span(name, "Z", d.batch, d.m, d.n, d.ldz, d.strideZ);
    const bool inPlace = d.z == d.c && d.ldz == d.ldc && d.strideZ == d.strideC;
    if (!inPlace && overlap(d.c, cSpan, d.z, zSpan, es)) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name,
                  ": C and Z overlap; they must be the same matrices (in place) or disjoint");
    }
  }
  for (const auto& [what, p, n] : {std::tuple{"A", d.a, aSpan}, {"B", d.b, bSpan},
                                   {"bias", d.bias, d.bias ? d.n : 0}}) {
    if (overlap(d.c, cSpan, p, n, es)) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": output C overlaps input ", what);
    }
  }

  DeviceRange ranges[5];
  std::size_t count = 0;
  auto add = [&](const void* p, std::int64_t elements, const char* what) {
    if (p != nullptr && elements > 0) {
      ranges[count++] = DeviceRange{p, static_cast<std::size_t>(elements) * es, what};
    }
  };
  add(d.a, aSpan, "A");
  add(d.b, bSpan, "B");
  add(d.bias, d.n, "bias");
  add(d.z, zSpan, "Z");
  add(d.c, cSpan, "C");
  const LaunchShape shape = tileGrid(d.n, d.m, d.batch);
  switch (d.dtype) {
    case DataType::kF16:
      launchPacked(runtime, stream, name, packArgs<GemmArgsOf<__half>>(gemmArgs<__half>(d, act)),
                   shape, ranges, count);
      break;
    case DataType::kBF16:
      launchPacked(runtime, stream, name,
                   packArgs<GemmArgsOf<__nv_bfloat16>>(gemmArgs<__nv_bfloat16>(d, act)), shape,
                   ranges, count);
      break;
    default:
      launchPacked(runtime, stream, name, packArgs<GemmArgsOf<float>>(gemmArgs<float>(d, act)),
                   shape, ranges, count);
      break;
  }
}

void launchConv2d(DeviceRuntime& runtime, Stream stream, const Conv2dDesc& d) {
  static const std::string name = conv2dKernelName();  // once: a launch allocates nothing
  for (const auto& [what, v] : {std::pair{"batch n", d.n}, {"channels c", d.c}, {"height h", d.h},
                                {"width w", d.w}, {"output channels k", d.k},
                                {"padTop", d.padTop}, {"padLeft", d.padLeft},
                                {"padBottom", d.padBottom}, {"padRight", d.padRight}}) {
    requireNonNegative(name, what, v);
  }
  for (const auto& [what, v] : {std::pair{"kernel height r", d.r}, {"kernel width s", d.s},
                                {"strideH", d.strideH}, {"strideW", d.strideW},
                                {"dilationH", d.dilationH}, {"dilationW", d.dilationW},
                                {"groups", d.groups}}) {
    if (v < 1) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ", what, " ", v, " is not positive");
  }
  const std::int32_t act = activationCode(d.activation, name);
  if (d.c % d.groups != 0 || d.k % d.groups != 0) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": groups ", d.groups,
                " does not divide input channels ", d.c, " and output channels ", d.k);
  }
  // 32-bit index math in the kernel: window origins, strides, pads and the reduction length.
  constexpr std::int64_t kMax32 = 0x7fffffff;
  if (d.h + d.padTop + d.padBottom > kMax32 || d.w + d.padLeft + d.padRight > kMax32 ||
      d.strideH > kMax32 || d.strideW > kMax32 || d.dilationH > kMax32 ||
      d.dilationW > kMax32 || d.r > kMax32 || d.s > kMax32 ||
      (d.c / std::max<std::int64_t>(d.groups, 1)) * d.r > kMax32 / std::max<std::int64_t>(d.s, 1)) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name,
                ": sizes beyond 32-bit index math (padded extent, stride, dilation, or "
                "c / groups * r * s must stay below 2^31)");
  }
  if (d.n == 0 || d.k == 0) return;
  const std::int64_t oh = d.outH(), ow = d.outW();
  if (oh < 1 || ow < 1) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": output ", oh, " x ", ow,
                " is empty: the dilated ", d.r, " x ", d.s, " window does not fit the padded ",
                d.h, " x ", d.w, " input");
  }
  if (d.x == nullptr || d.weight == nullptr || d.y == nullptr) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null ",
                d.x == nullptr ? "input x" : d.weight == nullptr ? "weight" : "output y");
  }
  const std::int64_t xSpan = span(name, "x", 1, d.n * d.c, d.h * d.w, d.h * d.w, 0);
  const std::int64_t kdim = d.c / d.groups * d.r * d.s;
  const std::int64_t wSpan = span(name, "weight", 1, d.k, kdim, kdim, 0);
  const std::int64_t ySpan = span(name, "y", 1, d.n * d.k, oh * ow, oh * ow, 0);
  if (d.z != nullptr && d.z != d.y && overlap(d.y, ySpan, d.z, ySpan)) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name,
                ": y and z overlap; they must be the same tensor (in place) or disjoint");
  }
  for (const auto& [what, p, n] : {std::tuple{"x", d.x, xSpan}, {"weight", d.weight, wSpan},
                                   {"bias", d.bias, d.bias ? d.k : 0}}) {
    if (overlap(d.y, ySpan, p, n)) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": output y overlaps input ", what);
    }
  }

  DeviceRange ranges[5];
  std::size_t count = 0;
  auto add = [&](const void* p, std::int64_t elements, const char* what) {
    if (p != nullptr && elements > 0) {
      ranges[count++] = DeviceRange{p, static_cast<std::size_t>(elements) * 4, what};
    }
  };
  add(d.x, xSpan, "x");
  add(d.weight, wSpan, "weight");
  add(d.bias, d.k, "bias");
  add(d.z, ySpan, "z");
  add(d.y, ySpan, "y");
  const Conv2dArgs args = conv2dArgs(d, d.weight, act, oh, ow);
  launchPacked(runtime, stream, name, packArgs<Conv2dArgs>(args),
               tileGrid(d.n * oh * ow, d.k / d.groups, d.groups), ranges, count);
}

}  // namespace anvil::cuda
