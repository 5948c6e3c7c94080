// 2-D pooling over NCHW f32 planes: MaxPool and AveragePool, one thread per output element,
// the window walked row-major over the input positions it covers (padding never contributes a
// value), so sums are added in the reference's order. Global pools run as reductions
// (norm.cuh). Compiled by nvcc (cuda/kernels/normpool.cu) and by the host compiler against
// cuda/sim (cuda/kernels/sim_normmove.cpp).
#pragma once

#include <cmath>
#include <cstdint>

#include "cuda/kernels/compat.cuh"
#include "cuda/kernels/normmove_args.h"

namespace anvil::cuda::kernels {

// kMax: the largest covered value (-inf for a window entirely in padding); otherwise the sum of
// the covered values over their count, or over kh * kw with countIncludePad (0 for an empty
// window), as the reference.
template <bool kMax>
__global__ void __launch_bounds__(kGridStrideBlock) f32_pool2d_gridstride(Pool2dArgs a) {
  const std::int64_t total = a.planes * a.oh * a.ow;
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += step) {
    const std::int64_t ox = t % a.ow;
    const std::int64_t r = t / a.ow;
    const std::int64_t oy = r % a.oh;
    const std::int64_t p = r / a.oh;
    const float* plane = a.x + p * a.h * a.w;
    const std::int64_t y0 = oy * a.sh - a.padTop, x0 = ox * a.sw - a.padLeft;
    float acc = kMax ? -INFINITY : 0.0f;
    bool any = false;
    int covered = 0;
    for (int ky = 0; ky < a.kh; ++ky) {
      const std::int64_t iy = y0 + static_cast<std::int64_t>(ky) * a.dh;
      if (iy < 0 || iy >= a.h) continue;
      for (int kx = 0; kx < a.kw; ++kx) {
        const std::int64_t ix = x0 + static_cast<std::int64_t>(kx) * a.dw;
        if (ix < 0 || ix >= a.w) continue;
        const float v = plane[iy * a.w + ix];
        if (kMax) {
          if (!any || v > acc) acc = v;
          any = true;
        } else {
          acc += v;
          ++covered;
        }
      }
    }
    if (!kMax) {
      const int div = a.countIncludePad ? a.kh * a.kw : covered;
      acc = div > 0 ? acc / static_cast<float>(div) : 0.0f;
    }
    a.y[t] = acc;
  }
}

}  // namespace anvil::cuda::kernels
