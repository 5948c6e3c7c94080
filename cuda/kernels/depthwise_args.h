// The parameters of the direct depthwise convolution (depthwise.cuh): a plain struct with no
// CUDA header, so the host launcher (cuda/depthwise.cpp) packs exactly the type the kernel
// takes.
#pragma once

#include <cstdint>

namespace anvil::cuda::kernels {

inline constexpr int kDepthwiseBlock = 256;
inline constexpr std::int64_t kMaxDepthwiseGrid = 1 << 16;

// x: [n, c, h, w]; weight: [c, 1, r, s]; bias: [c] or null; z: like y or null (z == y allowed:
// each element is read and written by the same thread); y: [n, c, oh, ow]. padTop and
// padLeft place the window. clip after the activation as in GemmArgsOf. Checked by the
// launcher.
struct DepthwiseConv2dArgs {
  const float* x;
  const float* weight;
  const float* bias;
  const float* z;
  float* y;
  std::int64_t n, c, h, w;
  std::int64_t r, s, oh, ow;
  std::int64_t strideH, strideW, padTop, padLeft, dilationH, dilationW;
  std::int32_t act;
  float clipLo, clipHi;
  float actAlpha = 0.0f, actBeta = 0.0f;  // as GemmArgsOf's
};

}  // namespace anvil::cuda::kernels
