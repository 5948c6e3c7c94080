// The checked launcher of cuda/depthwise.h: validates the descriptor, packs the kernel's
// DepthwiseConv2dArgs and passes the sim the device range of each operand.
#include "cuda/depthwise.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "anvil/error.h"
#include "cuda/arg_pack.h"
#include "cuda/kernels/depthwise_args.h"

namespace anvil::cuda {
namespace {

constexpr std::int64_t kMaxElements = std::int64_t{1} << 40;

bool overlap(const void* p, std::int64_t pn, const void* q, std::int64_t qn) {
  if (p == nullptr || q == nullptr || pn == 0 || qn == 0) return false;
  const auto a = reinterpret_cast<std::uintptr_t>(p), b = reinterpret_cast<std::uintptr_t>(q);
  return a < b + static_cast<std::uintptr_t>(qn) * 4 && b < a + static_cast<std::uintptr_t>(pn) * 4;
}

}  // namespace

std::string depthwiseConv2dKernelName() {
  return ::anvil::detail::concat("f32_depthwise_conv2d_direct_block", kernels::kDepthwiseBlock);
}

void launchDepthwiseConv2d(DeviceRuntime& runtime, Stream stream, const Conv2dDesc& d) {
  static const std::string name = depthwiseConv2dKernelName();
  for (const auto& [what, v] : {std::pair{"batch n", d.n}, {"channels c", d.c}, {"height h", d.h},
                                {"width w", d.w}, {"padTop", d.padTop}, {"padLeft", d.padLeft},
                                {"padBottom", d.padBottom}, {"padRight", d.padRight}})
    if (v < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ", what, " ", v, " is negative");
  for (const auto& [what, v] : {std::pair{"kernel height r", d.r}, {"kernel width s", d.s},
                                {"strideH", d.strideH}, {"strideW", d.strideW},
                                {"dilationH", d.dilationH}, {"dilationW", d.dilationW}})
    if (v < 1) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ", what, " ", v, " is not positive");
  if (d.groups != d.c || d.k != d.c)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": a depthwise layer has groups = channels = output channels, got groups ",
                d.groups, ", c ", d.c, ", k ", d.k);
  if (d.activation && static_cast<int>(*d.activation) >= kEpilogueActivationCount)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": unknown activation ", static_cast<int>(*d.activation));
  if (d.n == 0 || d.c == 0) return;
  const std::int64_t oh = d.outH(), ow = d.outW();
  if (oh < 1 || ow < 1)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": output ", oh, " x ", ow, " is empty: the dilated ", d.r, " x ", d.s,
                " window does not fit the padded ", d.h, " x ", d.w, " input");
  const __int128 xElems = static_cast<__int128>(d.n) * d.c * d.h * d.w;
  const __int128 yElems = static_cast<__int128>(d.n) * d.c * oh * ow;
  const __int128 wElems = static_cast<__int128>(d.c) * d.r * d.s;
  if (xElems > kMaxElements || yElems > kMaxElements || wElems > kMaxElements)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": tensors beyond ", kMaxElements, " elements");
  if (d.x == nullptr || d.weight == nullptr || d.y == nullptr)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null ",
                d.x == nullptr ? "input x" : d.weight == nullptr ? "weight" : "output y");
  const auto xSpan = static_cast<std::int64_t>(xElems), ySpan = static_cast<std::int64_t>(yElems),
             wSpan = static_cast<std::int64_t>(wElems);
  if (d.z != nullptr && d.z != d.y && overlap(d.y, ySpan, d.z, ySpan))
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": y and z overlap; they must be the same tensor (in place) or disjoint");
  if (overlap(d.y, ySpan, d.x, xSpan) || overlap(d.y, ySpan, d.weight, wSpan) ||
      overlap(d.y, ySpan, d.bias, d.bias ? d.c : 0))
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": output y overlaps an input");

  DeviceRange ranges[5];
  std::size_t count = 0;
  auto add = [&](const void* p, std::int64_t elements, const char* what) {
    if (p != nullptr && elements > 0) ranges[count++] = DeviceRange{p, static_cast<std::size_t>(elements) * 4, what};
  };
  add(d.x, xSpan, "x");
  add(d.weight, wSpan, "weight");
  add(d.bias, d.c, "bias");
  add(d.z, ySpan, "z");
  add(d.y, ySpan, "y");
  kernels::DepthwiseConv2dArgs a{};
  a.x = d.x, a.weight = d.weight, a.bias = d.bias, a.z = d.z, a.y = d.y;
  a.n = d.n, a.c = d.c, a.h = d.h, a.w = d.w, a.r = d.r, a.s = d.s, a.oh = oh, a.ow = ow;
  a.strideH = d.strideH, a.strideW = d.strideW, a.padTop = d.padTop, a.padLeft = d.padLeft;
  a.dilationH = d.dilationH, a.dilationW = d.dilationW;
  a.act = d.activation ? static_cast<std::int32_t>(*d.activation) : -1;
  a.clipLo = d.clipLo, a.clipHi = d.clipHi;
  a.actAlpha = d.actAlpha, a.actBeta = d.actBeta;

  const std::int64_t blocks = (ySpan + kernels::kDepthwiseBlock - 1) / kernels::kDepthwiseBlock;
  LaunchShape shape;
  shape.grid = Dim3{static_cast<unsigned>(std::min(blocks, kernels::kMaxDepthwiseGrid))};
  shape.block = Dim3{static_cast<unsigned>(kernels::kDepthwiseBlock)};
  const auto pack = packArgs<kernels::DepthwiseConv2dArgs>(a);
  KernelLaunch k;
  k.name = name.c_str();
  k.args = &pack;
  k.argBytes = sizeof pack;
  k.ranges = ranges;
  k.rangeCount = count;
  runtime.launch(k, shape, stream);
}

}  // namespace anvil::cuda
