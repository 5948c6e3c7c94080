// Shared pieces of the nn reference kernels: a plain GEMM whose inner loop runs over
// contiguous memory, im2col/col2im for N-d windows, element conversion and rounding.
#pragma once

#include <algorithm>
#include <cmath>
#include <climits>
#include <type_traits>
#include <cstdint>
#include <string>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/reference.h"
#include "ir/ops/nn_util.h"

namespace anvil::cpu::kernels::nn {

// The nn kernel families (cpu/kernels/nn_*.cpp), registered from nn.cpp.
void registerConvKernels(KernelRegistry& r);
void registerMatMulKernels(KernelRegistry& r);
void registerPoolKernels(KernelRegistry& r);
void registerQuantKernels(KernelRegistry& r);

// c[0..n) += a * b[0..n), in fixed blocks of 8 so that -O2 vectorizes it (restrict on
// parameters is what lets GCC assume c and b do not overlap).
template <typename A>
inline void axpy(A* __restrict c, const A* __restrict b, A a, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) c[i + j] += a * b[i + j];
  for (; i < n; ++i) c[i] += a * b[i];
}

// gemmAccumulate for float in AVX2 vectors with the same bits (nn_gemm.cpp); false (nothing
// done) where the CPU lacks AVX2.
bool gemmAccumulateF32Avx2(int64_t M, int64_t N, int64_t K, const float* a, int64_t ars, int64_t acs,
                           const float* b, int64_t ldb, float* c, int64_t ldc);

// c[m][n] += sum_k a(m,k) * b[k][n] with a(m,k) = a[m*ars + k*acs], b and c row-major with
// leading dims ldb/ldc; each element summed k ascending, the product and the sum rounded at
// every step. Blocked over n and k so that a block of b stays in cache while every row of a
// passes over it (about 2x over the unblocked loop for resnet18 shapes); float on AVX2 CPUs
// in register tiles (the same bits).
template <typename A>
void gemmAccumulate(int64_t M, int64_t N, int64_t K, const A* a, int64_t ars, int64_t acs, const A* b, int64_t ldb,
                    A* c, int64_t ldc) {
  if constexpr (std::is_same_v<A, float>) {
    if (gemmAccumulateF32Avx2(M, N, K, a, ars, acs, b, ldb, c, ldc)) return;
  }
  constexpr int64_t kNBlock = 512, kKBlock = 256;
  for (int64_t n0 = 0; n0 < N; n0 += kNBlock) {
    const int64_t nn = std::min(kNBlock, N - n0);
    for (int64_t k0 = 0; k0 < K; k0 += kKBlock) {
      const int64_t k1 = std::min(K, k0 + kKBlock);
      for (int64_t m = 0; m < M; ++m)
        for (int64_t k = k0; k < k1; ++k) axpy(c + m * ldc + n0, b + k * ldb + n0, a[m * ars + k * acs], nn);
    }
  }
}

// The geometry of a forward window op over N-d spatial dims (Conv, DeformConv, Col2Im).
struct ConvGeom {
  size_t r = 0;                                     // spatial rank
  std::vector<int64_t> in, k, s, d, pb, pe, out;    // per spatial dim
  int64_t inSize = 1, kSize = 1, outSize = 1;       // products

  // Resolves the window from attributes for input extents `in` and kernel `kernel`;
  // fails through ctx on invalid attributes.
  static ConvGeom make(const KernelContext& ctx, const std::vector<int64_t>& in, const std::vector<int64_t>& kernel,
                       bool ceilMode = false) {
    ConvGeom g;
    g.r = in.size();
    ir::nn::Window w;
    std::string err = ir::nn::readWindow(ctx.attrs(), g.r, kernel, &w);
    if (!err.empty()) ctx.fail(err);
    if (w.kernel.empty()) ctx.fail("kernel_shape is required");
    g.in = in;
    g.k = w.kernel;
    g.s = w.strides;
    g.d = w.dilations;
    for (size_t i = 0; i < g.r; ++i) {
      ir::nn::WindowDim o;
      err = ir::nn::forwardDim(in[i], g.k[i], g.s[i], g.d[i], w.pads[i], w.pads[i + g.r], w.autoPad,
                               ceilMode && w.ceilMode, &o);
      if (!err.empty()) ctx.fail("spatial dim " + std::to_string(i) + ": " + err);
      g.pb.push_back(o.padBegin);
      g.pe.push_back(o.padEnd);
      g.out.push_back(o.out);
      g.inSize *= in[i];
      g.kSize *= g.k[i];
      g.outSize *= o.out;
    }
    return g;
  }

  // 1x1 window, unit strides, no padding: the column matrix is the input itself.
  bool isPointwise() const {
    for (size_t i = 0; i < r; ++i)
      if (k[i] != 1 || s[i] != 1 || pb[i] != 0 || pe[i] != 0) return false;
    return true;
  }

  // Multi-index of kernel element kidx.
  std::vector<int64_t> kernelIndex(int64_t kidx) const {
    std::vector<int64_t> kk(r);
    for (size_t i = r; i-- > 0;) {
      kk[i] = kidx % k[i];
      kidx /= k[i];
    }
    return kk;
  }
};

// Calls f(rowOffset, valid, lastPos0) for each row of output positions along all but the
// last spatial dim: `rowOffset` is the input offset of that row (dims 0..r-2) for kernel
// element kk, `valid` whether it lies inside the input, `o` the flat output row index.
template <typename F>
void forEachOutputRow(const ConvGeom& g, const std::vector<int64_t>& kk, F f) {
  const size_t r = g.r;
  if (g.outSize == 0) return;
  std::vector<int64_t> inStride(r, 1);
  for (size_t i = r - 1; i-- > 0;) inStride[i] = inStride[i + 1] * g.in[i + 1];
  const int64_t rows = g.outSize / g.out[r - 1];
  std::vector<int64_t> oo(r, 0);
  for (int64_t o = 0; o < rows; ++o) {
    bool valid = true;
    int64_t off = 0;
    for (size_t i = 0; i + 1 < r; ++i) {
      int64_t p = oo[i] * g.s[i] - g.pb[i] + kk[i] * g.d[i];
      if (p < 0 || p >= g.in[i]) valid = false;
      off += p * inStride[i];
    }
    f(o, off, valid);
    for (size_t i = r - 1; i-- > 0;) {
      if (++oo[i] < g.out[i]) break;
      oo[i] = 0;
    }
  }
}

// Range [lo, hi) of output positions along the last dim whose input position
// o*s - pb + kk*d lies inside [0, in).
inline void validRange(int64_t in, int64_t out, int64_t s, int64_t start, int64_t* lo, int64_t* hi) {
  // start + o*s >= 0  ->  o >= ceil(-start / s)
  *lo = start >= 0 ? 0 : ir::nn::ceilDiv(-start, s);
  // start + o*s < in  ->  o <= floor((in - 1 - start) / s)
  *hi = in - 1 - start < 0 ? 0 : ir::nn::floorDiv(in - 1 - start, s) + 1;
  *lo = std::min(*lo, out);
  *hi = std::max(std::min(*hi, out), *lo);
}

// col[(c*kSize + kidx) * outSize + p] = x[c][window position], 0 in the padding.
template <typename A>
void im2col(const ConvGeom& g, const A* x, int64_t channels, A* col) {
  const size_t last = g.r - 1;
  const int64_t outL = g.out[last], inL = g.in[last], sL = g.s[last];
  for (int64_t kidx = 0; kidx < g.kSize; ++kidx) {
    const std::vector<int64_t> kk = g.kernelIndex(kidx);
    const int64_t start = kk[last] * g.d[last] - g.pb[last];
    int64_t lo, hi;
    validRange(inL, outL, sL, start, &lo, &hi);
    for (int64_t c = 0; c < channels; ++c) {
      const A* src = x + c * g.inSize;
      A* dst = col + (c * g.kSize + kidx) * g.outSize;
      forEachOutputRow(g, kk, [&](int64_t o, int64_t off, bool valid) {
        A* drow = dst + o * outL;
        if (!valid) {
          for (int64_t j = 0; j < outL; ++j) drow[j] = A(0);
          return;
        }
        // Index arithmetic, not a pointer to src + off + start: that may point before src.
        const int64_t base = off + start;
        for (int64_t j = 0; j < lo; ++j) drow[j] = A(0);
        for (int64_t j = lo; j < hi; ++j) drow[j] = src[base + j * sL];
        for (int64_t j = hi; j < outL; ++j) drow[j] = A(0);
      });
    }
  }
}

// The adjoint of im2col: y[c][window position] += col[(c*kSize + kidx) * outSize + p].
// Here g.in is the image (the ConvTranspose output / Col2Im image) and g.out the columns.
template <typename A>
void col2im(const ConvGeom& g, const A* col, int64_t channels, A* y) {
  const size_t last = g.r - 1;
  const int64_t outL = g.out[last], inL = g.in[last], sL = g.s[last];
  for (int64_t kidx = 0; kidx < g.kSize; ++kidx) {
    const std::vector<int64_t> kk = g.kernelIndex(kidx);
    const int64_t start = kk[last] * g.d[last] - g.pb[last];
    int64_t lo, hi;
    validRange(inL, outL, sL, start, &lo, &hi);
    for (int64_t c = 0; c < channels; ++c) {
      A* dst = y + c * g.inSize;
      const A* src = col + (c * g.kSize + kidx) * g.outSize;
      forEachOutputRow(g, kk, [&](int64_t o, int64_t off, bool valid) {
        if (!valid) return;
        const A* srow = src + o * outL;
        const int64_t base = off + start;
        for (int64_t j = lo; j < hi; ++j) dst[base + j * sL] += srow[j];
      });
    }
  }
}

// Elements of a tensor converted to A (ints through int64, floats through double/float).
template <typename A>
std::vector<A> toVector(const Tensor& t) {
  std::vector<A> v(size_t(t.numel()));
  if constexpr (std::is_floating_point_v<A>) {
    if (t.dtype() == DataType::kF32) {
      const float* p = t.data<float>();
      for (size_t i = 0; i < v.size(); ++i) v[i] = A(p[i]);
      return v;
    }
    for (size_t i = 0; i < v.size(); ++i) v[i] = A(t.getDouble(int64_t(i)));
  } else {
    for (size_t i = 0; i < v.size(); ++i) v[i] = A(t.getInt(int64_t(i)));
  }
  return v;
}

// Round half to even (the rounding of ONNX quantization), saturating to [lo, hi].
inline int64_t roundSaturate(double v, int64_t lo, int64_t hi) {
  if (std::isnan(v)) return lo < 0 ? 0 : lo;
  double r = std::nearbyint(v);
  if (r < double(lo)) return lo;
  if (r > double(hi)) return hi;
  return int64_t(r);
}

// Integer range of a quantized integer type.
inline void intRange(DataType t, int64_t* lo, int64_t* hi) {
  switch (t) {
    case DataType::kU8: *lo = 0; *hi = 255; return;
    case DataType::kI8: *lo = -128; *hi = 127; return;
    case DataType::kU16: *lo = 0; *hi = 65535; return;
    case DataType::kI16: *lo = -32768; *hi = 32767; return;
    case DataType::kU4: *lo = 0; *hi = 15; return;
    case DataType::kI4: *lo = -8; *hi = 7; return;
    case DataType::kI32: *lo = INT32_MIN; *hi = INT32_MAX; return;
    default: *lo = 0; *hi = 0; return;
  }
}

// Writes an integer element of a (possibly 4-bit packed) integer tensor.
inline void setIntElement(Tensor& t, int64_t i, int64_t v) {
  switch (t.dtype()) {
    case DataType::kU8: t.data<uint8_t>()[i] = uint8_t(v); return;
    case DataType::kI8: t.data<int8_t>()[i] = int8_t(v); return;
    case DataType::kU16: t.data<uint16_t>()[i] = uint16_t(v); return;
    case DataType::kI16: t.data<int16_t>()[i] = int16_t(v); return;
    case DataType::kI32: t.data<int32_t>()[i] = int32_t(v); return;
    case DataType::kU4: case DataType::kI4: {
      uint8_t* p = t.data<uint8_t>() + i / 2;
      const int shift = int(i & 1) * 4;
      *p = uint8_t((*p & ~(0xF << shift)) | ((uint8_t(v) & 0xF) << shift));
      return;
    }
    default: t.setDouble(i, double(v)); return;
  }
}

}  // namespace anvil::cpu::kernels::nn
