// Depthwise 2-D convolution (one filter per channel, groups == channels == output channels),
// f32 NCHW, direct: one thread per output element, grid-stride. The implicit-GEMM conv runs
// such a layer as a GEMM of M = 1 per group, using 1/64 of its tile; this kernel does the
// r * s multiply-adds of each output and nothing else, and is bound by reading x (neighbouring
// threads read neighbouring pixels, so the window rows coalesce and hit L1). Compiled by nvcc
// (depthwise.cu) and by the host compiler against cuda/sim for tests.
#pragma once

#include <cstdint>

#include "cuda/kernels/compat.cuh"
#include "cuda/kernels/depthwise_args.h"
#include "cuda/kernels/gemm.cuh"  // applyEpilogueActivation, applyEpilogueClip

namespace anvil::cuda::kernels {

// The same numerics as f32_conv2d_implicit_gemm on a depthwise layer: one fmaf chain over
// (ky, kx) in increasing order (taps in the padding add nothing), then bias, z, activation
// and clip in f32. Launch with blockDim.x == kBlock and any grid.
template <int kBlock>
__global__ void __launch_bounds__(kBlock) f32_depthwise_conv2d_direct(DepthwiseConv2dArgs a) {
  const std::int64_t total = a.n * a.c * a.oh * a.ow;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * kBlock;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * kBlock + threadIdx.x; i < total; i += step) {
    const std::int64_t ox = i % a.ow;
    std::int64_t t = i / a.ow;
    const std::int64_t oy = t % a.oh;
    t /= a.oh;  // image * c + channel
    const std::int64_t ch = t % a.c;
    const float* xp = a.x + t * a.h * a.w;
    const float* wp = a.weight + ch * a.r * a.s;
    const std::int64_t iy0 = oy * a.strideH - a.padTop, ix0 = ox * a.strideW - a.padLeft;
    float acc = 0.0f;
    for (std::int64_t ky = 0; ky < a.r; ++ky) {
      const std::int64_t iy = iy0 + ky * a.dilationH;
      if (iy < 0 || iy >= a.h) continue;
      const float* xr = xp + iy * a.w;
      for (std::int64_t kx = 0; kx < a.s; ++kx) {
        const std::int64_t ix = ix0 + kx * a.dilationW;
        if (ix >= 0 && ix < a.w) acc = fmaf(xr[ix], wp[ky * a.s + kx], acc);
      }
    }
    float v = acc;
    if (a.bias != nullptr) v += a.bias[ch];
    if (a.z != nullptr) v += a.z[i];
    a.y[i] = applyEpilogueClip(applyEpilogueActivation(a.act, v, a.actAlpha, a.actBeta), a.clipLo, a.clipHi);
  }
}

}  // namespace anvil::cuda::kernels
