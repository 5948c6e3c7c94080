// Implicit-GEMM 2-D convolution, NCHW f32, on the SIMT GEMM mainloop of gemm.cuh: per group
// g, Y_g[co, p] = act(W_g[co, :] . im2col(X_g)[:, p] + bias[co] + Z[co, p]) with p running over
// (image, oy, ox) of the whole batch and the im2col column gathered on the fly by the B loader
// (zero outside the padded input). Any kernel size, stride, padding, dilation and group count.
#pragma once

#include <cstdint>

#include "cuda/kernels/compat.cuh"
#include "cuda/kernels/gemm.cuh"

namespace anvil::cuda::kernels {

struct Conv2dProblem {
  static constexpr bool kAKContiguous = true;   // weight rows are contiguous in (ci, ky, kx)
  static constexpr bool kBKContiguous = false;  // neighbouring pixels are neighbours in x
  Conv2dArgs a;
  std::int64_t cg, kg;  // channels per group in and out
  std::int32_t rs, kdim;
  std::int64_t pixels, planeOut;

  __device__ __forceinline__ explicit Conv2dProblem(const Conv2dArgs& args) : a(args) {
    cg = a.c / a.groups;
    kg = a.k / a.groups;
    rs = static_cast<std::int32_t>(a.r * a.s);
    kdim = static_cast<std::int32_t>(cg) * rs;
    planeOut = a.oh * a.ow;
    pixels = a.n * planeOut;
  }

  __device__ __forceinline__ std::int64_t batches() const { return a.groups; }
  __device__ __forceinline__ std::int64_t m() const { return kg; }
  __device__ __forceinline__ std::int64_t n() const { return pixels; }
  __device__ __forceinline__ std::int64_t k() const { return kdim; }

  __device__ __forceinline__ float loadA(std::int64_t g, std::int64_t m, std::int64_t k) const {
    if (m >= kg || k >= kdim) return 0.0f;
    return a.weight[(g * kg + m) * kdim + k];
  }

  // One output pixel's window origin in its image's group-g channels, worked out once per tile.
  struct BColumn {
    const float* plane;  // channel g * cg of the pixel's image; null past the last pixel
    std::int32_t iy0, ix0;
  };
  __device__ __forceinline__ BColumn column(std::int64_t g, std::int64_t p) const {
    if (p >= pixels) return BColumn{nullptr, 0, 0};
    const std::int64_t img = p / planeOut;
    const std::int64_t q = p - img * planeOut;
    const std::int64_t oy = q / a.ow;
    const std::int64_t ox = q - oy * a.ow;
    return BColumn{a.x + (img * a.c + g * cg) * a.h * a.w,
                   static_cast<std::int32_t>(oy * a.strideH - a.padTop),
                   static_cast<std::int32_t>(ox * a.strideW - a.padLeft)};
  }
  __device__ __forceinline__ float loadB(const BColumn& col, std::int64_t k) const {
    if (col.plane == nullptr || k >= kdim) return 0.0f;
    // 32-bit index math: k < 2^31 (launcher check) and 64-bit division is many times slower
    // on a GPU.
    const std::int32_t kk = static_cast<std::int32_t>(k);
    const std::int32_t ci = kk / rs;
    const std::int32_t t = kk - ci * rs;
    const std::int32_t ky = t / static_cast<std::int32_t>(a.s);
    const std::int32_t kx = t - ky * static_cast<std::int32_t>(a.s);
    const std::int64_t iy = col.iy0 + ky * a.dilationH;
    const std::int64_t ix = col.ix0 + kx * a.dilationW;
    if (iy < 0 || iy >= a.h || ix < 0 || ix >= a.w) return 0.0f;
    return col.plane[(ci * a.h + iy) * a.w + ix];
  }

  __device__ __forceinline__ void store(std::int64_t g, std::int64_t m, std::int64_t p,
                                        float acc) const {
    const std::int64_t co = g * kg + m;
    const std::int64_t img = p / planeOut;
    const std::int64_t q = p - img * planeOut;
    const std::int64_t at = (img * a.k + co) * planeOut + q;
    float v = acc;
    if (a.bias != nullptr) v += a.bias[co];
    if (a.z != nullptr) v += a.z[at];
    a.y[at] = applyEpilogueClip(applyEpilogueActivation(a.act, v, a.actAlpha, a.actBeta), a.clipLo, a.clipHi);
  }
};

// Launch with Tile::kThreads threads in x; grid (pixel tiles, output-channel tiles per group,
// groups), any of them may be smaller (the blocks stride).
template <class Tile>
__global__ void __launch_bounds__(Tile::kThreads) f32_conv2d_implicit_gemm(Conv2dArgs args) {
  simtGemmMainloop<Tile>(Conv2dProblem(args));
}

}  // namespace anvil::cuda::kernels
