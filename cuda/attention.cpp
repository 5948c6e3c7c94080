// The checked launcher of cuda/attention.h: validates the descriptor, packs the kernel's
// AttentionArgs and passes the sim the device range each operand spans.
#include "cuda/attention.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "anvil/error.h"
#include "cuda/arg_pack.h"
#include "cuda/kernels/attention_args.h"

namespace anvil::cuda {
namespace {

constexpr std::int64_t kMaxElements = std::int64_t{1} << 40;
constexpr std::int64_t kMaxGridX = 0x7fffffff, kMaxGridY = 65535;

// Elements from the operand's base to one past its last addressed element (0 when empty).
std::int64_t span(const std::string& name, const char* what, const AttentionDesc& d, std::int64_t sB,
                  std::int64_t sH, std::int64_t rows, std::int64_t sS, std::int64_t cols) {
  for (std::int64_t s : {sB, sH, sS})
    if (s < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ", what, " has a negative stride ", s);
  if (d.outer == 0 || d.heads == 0 || rows == 0 || cols == 0) return 0;
  const __int128 e = static_cast<__int128>(d.outer - 1) * sB + static_cast<__int128>(d.heads - 1) * sH +
                     static_cast<__int128>(rows - 1) * sS + cols;
  if (e > kMaxElements)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ", what, " spans ", static_cast<long double>(e),
                " elements, more than can be addressed");
  return static_cast<std::int64_t>(e);
}

bool overlap(const void* p, std::size_t pn, const void* q, std::size_t qn) {
  if (p == nullptr || q == nullptr || pn == 0 || qn == 0) return false;
  const auto a = reinterpret_cast<std::uintptr_t>(p), b = reinterpret_cast<std::uintptr_t>(q);
  return a < b + qn && b < a + pn;
}

}  // namespace

std::string attentionKernelName() {
  return ::anvil::detail::concat("f32_attention_flash_q", kernels::kAttentionBlockQ, "_k", kernels::kAttentionBlockK,
                                 "_block", kernels::kAttentionThreads);
}

std::int64_t attentionMaxHead() { return kernels::kAttentionMaxHead; }

void launchAttention(DeviceRuntime& runtime, Stream stream, const AttentionDesc& d) {
  static const std::string name = attentionKernelName();  // no allocation per launch
  for (const auto& [what, v] : {std::pair{"outer", d.outer}, {"heads", d.heads}, {"sq", d.sq}, {"sk", d.sk}})
    if (v < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": ", what, " ", v, " is negative");
  for (const auto& [what, v] : {std::pair{"d", d.d}, {"dv", d.dv}})
    if (v < 1 || v > kernels::kAttentionMaxHead)
      ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": head size ", what, " = ", v, " is outside 1..",
                  kernels::kAttentionMaxHead);
  const int kind = static_cast<int>(d.maskKind);
  if (kind < 0 || kind > 3) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": unknown mask kind ", kind);
  const std::int64_t qSpan = span(name, "Q", d, d.qB, d.qH, d.sq, d.qS, d.d);
  const std::int64_t kSpan = span(name, "K", d, d.kB, d.kH, d.sk, d.kS, d.d);
  const std::int64_t vSpan = span(name, "V", d, d.vB, d.vH, d.sk, d.vS, d.dv);
  const std::int64_t ySpan = span(name, "Y", d, d.yB, d.yH, d.sq, d.yS, d.dv);
  if (ySpan == 0) return;
  if (d.sq > 1 && d.yS < d.dv)
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": Y's row stride ", d.yS, " is below dv ", d.dv);
  const std::size_t es = d.maskKind == AttentionMask::kAdd ? 4 : 1;
  std::int64_t maskSpan = 0;
  if (d.maskKind != AttentionMask::kNone && d.sk > 0) {
    for (std::int64_t s : {d.maskB, d.maskH, d.maskI, d.maskJ})
      if (s < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": the mask has a negative stride ", s);
    maskSpan = (d.outer - 1) * d.maskB + (d.heads - 1) * d.maskH + (d.sq - 1) * d.maskI + (d.sk - 1) * d.maskJ + 1;
    if (d.mask == nullptr) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null mask for mask kind ", kind);
  }
  const std::pair<const void*, std::int64_t> needed[] = {{d.q, qSpan}, {d.k, kSpan}, {d.v, vSpan}};
  for (const auto& [p, n] : needed)
    if (n > 0 && p == nullptr) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null Q, K or V pointer");
  if (d.y == nullptr) ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": null output pointer");
  const std::size_t yBytes = static_cast<std::size_t>(ySpan) * 4;
  if (overlap(d.y, yBytes, d.q, std::size_t(qSpan) * 4) || overlap(d.y, yBytes, d.k, std::size_t(kSpan) * 4) ||
      overlap(d.y, yBytes, d.v, std::size_t(vSpan) * 4) || overlap(d.y, yBytes, d.mask, std::size_t(maskSpan) * es))
    ANVIL_THROW(ErrorCode::kInvalidArgument, name, ": output Y overlaps an input");

  kernels::AttentionArgs a{};
  a.q = d.q;
  a.k = d.k;
  a.v = d.v;
  a.mask = d.mask;
  a.y = d.y;
  a.outer = d.outer;
  a.heads = d.heads;
  a.sq = d.sq;
  a.sk = d.sk;
  a.d = d.d;
  a.dv = d.dv;
  a.qB = d.qB, a.qH = d.qH, a.qS = d.qS;
  a.kB = d.kB, a.kH = d.kH, a.kS = d.kS;
  a.vB = d.vB, a.vH = d.vH, a.vS = d.vS;
  a.yB = d.yB, a.yH = d.yH, a.yS = d.yS;
  a.maskB = d.maskB, a.maskH = d.maskH, a.maskI = d.maskI, a.maskJ = d.maskJ;
  a.scale = d.scale;
  a.fill = d.fill;
  a.maskKind = kind;

  DeviceRange ranges[5];
  std::size_t count = 0;
  auto add = [&](const void* p, std::size_t bytes, const char* what) {
    if (p != nullptr && bytes > 0) ranges[count++] = DeviceRange{p, bytes, what};
  };
  add(d.q, std::size_t(qSpan) * 4, "Q");
  add(d.k, std::size_t(kSpan) * 4, "K");
  add(d.v, std::size_t(vSpan) * 4, "V");
  add(d.mask, std::size_t(maskSpan) * es, "mask");
  add(d.y, yBytes, "Y");

  const std::int64_t tiles = (d.sq + kernels::kAttentionBlockQ - 1) / kernels::kAttentionBlockQ;
  LaunchShape shape;
  shape.grid = Dim3{static_cast<unsigned>(std::min(tiles, kMaxGridX)),
                    static_cast<unsigned>(std::min(d.outer * d.heads, kMaxGridY))};
  shape.block = Dim3{static_cast<unsigned>(kernels::kAttentionThreads)};
  shape.sharedBytes = static_cast<std::size_t>(kernels::attentionSharedFloats(d.d, d.dv)) * sizeof(float);

  const auto pack = packArgs<kernels::AttentionArgs>(a);
  KernelLaunch k;
  k.name = name.c_str();
  k.args = &pack;
  k.argBytes = sizeof pack;
  k.ranges = ranges;
  k.rangeCount = count;
  runtime.launch(k, shape, stream);
}

}  // namespace anvil::cuda
