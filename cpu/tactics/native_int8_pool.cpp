// i8_maxpool2d_u8_nchw: MaxPool 2-D over a lowered (u8, per-tensor quantized) NCHW input
// whose output carries the same quantization, so a chain of INT8 layers stays u8 through
// it (resnet's stem -> maxpool -> layer1). Quantization is monotonic (s > 0) and
// q(deq(q)) = q, so the max of the bytes is the bytes of the f32 MaxPool of the dequantized
// input quantized on that grid: bit for bit, with a quarter of the f32 kernel's traffic.
// Semantics of the f32 kernels (cpu/tactics/native_ops_pool.cpp): padding never
// contributes; a window with no input element (only with pads past the kernel) gives the
// grid's lowest code, 0 (the f32 kernels' -inf quantized). Strides, dilations, explicit or
// automatic pads, ceil_mode; no Indices output.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu/tactics/gemm_kernels.h"
#include "ir/ops/nn_util.h"
#include "runtime/kernel.h"

// GCC 12's -O2 vectorizes a loop only when no scalar remainder is left (its "very cheap"
// cost model); these loops run over arbitrary widths, so this file asks for the dynamic
// model (byte max: the results cannot change).
#pragma GCC optimize("vect-cost-model=dynamic")

namespace anvil::cpu::tactics {

namespace {

using runtime::Kernel;
using runtime::Kernels;
using runtime::PrepareInfo;
using runtime::Prepared;
using runtime::StepArgs;

// Trivially copyable without padding bytes (params are compared byte for byte).
struct U8PoolParams {
  int32_t autoPad = 0;  // ir::nn::AutoPad
  int32_t tasks = 1;
  int64_t k[2] = {}, s[2] = {}, d[2] = {}, pads[4] = {};
};
static_assert(sizeof(U8PoolParams) == 2 * 4 + 10 * 8, "U8PoolParams must have no padding bytes");

// A value's per-tensor quantization: f32 scale > 0, u8 zero point or none.
bool perTensorU8(const ir::Value* v) {
  if (!v || v->dtype() != DataType::kU8 || !v->quantization() || !v->quantization()->perTensor()) return false;
  const ir::Quantization& q = *v->quantization();
  if (q.scale.dtype() != DataType::kF32 || q.scale.numel() != 1 || !(q.scale.data<float>()[0] > 0.0f)) return false;
  return !q.zeroPoint.defined() || (q.zeroPoint.dtype() == DataType::kU8 && q.zeroPoint.numel() == 1);
}

bool supportsU8MaxPool(const ir::Node& n, const std::vector<ir::TensorType>& t) {
  if (t.empty() || t[0].dtype != DataType::kU8 || !t[0].shape.rankKnown() || t[0].shape.rank() != 4) return false;
  if (n.numOutputs() > 1 && n.output(1) && !n.output(1)->name().empty()) return false;  // Indices
  if (!perTensorU8(n.input(0)) || !perTensorU8(n.output(0))) return false;
  if (*n.input(0)->quantization() != *n.output(0)->quantization()) return false;  // the same grid
  ir::nn::Window w;
  return ir::nn::readWindow(n.attrs(), 2, {}, &w).empty() && w.kernel.size() == 2;
}

// Per task: one row of window maxima (W bytes, then slack).
int64_t rowBytes(int64_t W) { return roundUp(W + 64, 64); }  // slack for the AVX2 loads past the row

void prepareU8MaxPool(const PrepareInfo& info, Prepared* out) {
  ir::nn::Window w;
  const std::string err = ir::nn::readWindow(info.node->attrs(), 2, {}, &w);
  ANVIL_CHECK(err.empty(), ErrorCode::kInvalidArgument, info.node->label(), ": ", err);
  ANVIL_CHECK(w.kernel.size() == 2, ErrorCode::kInvalidArgument, info.node->label(),
              ": MaxPool needs a 2-D kernel_shape");
  ANVIL_CHECK(supportsU8MaxPool(*info.node, info.maxTypes), ErrorCode::kInvalidModel, info.node->label(),
              ": the u8 MaxPool needs input and output u8 with the same per-tensor quantization");
  U8PoolParams p;
  p.autoPad = int32_t(w.autoPad);
  p.tasks = std::max(1, info.threads);
  for (int i = 0; i < 2; ++i) {
    p.k[i] = w.kernel[size_t(i)];
    p.s[i] = w.strides[size_t(i)];
    p.d[i] = w.dilations[size_t(i)];
  }
  for (int i = 0; i < 4; ++i) p.pads[i] = w.pads[size_t(i)];
  ANVIL_CHECK(info.maxTypes[0].shape.isStatic(), ErrorCode::kInternal, info.node->label(),
              ": MaxPool has no static extents at the profile's max shapes");
  out->workspaceBytes = uint64_t(p.tasks * rowBytes(info.maxTypes[0].shape.extents()[3]));
  out->setParams(p);
}

// Pad before the window along dim i for this run's extents (auto_pad resolved from them).
int64_t padBefore(const U8PoolParams& p, int i, int64_t in, int64_t out) {
  const auto ap = ir::nn::AutoPad(p.autoPad);
  if (ap == ir::nn::AutoPad::kSameUpper || ap == ir::nn::AutoPad::kSameLower) {
    const int64_t total = std::max<int64_t>(0, (out - 1) * p.s[i] + (p.k[i] - 1) * p.d[i] + 1 - in);
    return ap == ir::nn::AutoPad::kSameUpper ? total / 2 : total - total / 2;
  }
  return ap == ir::nn::AutoPad::kValid ? 0 : p.pads[i];
}

// The kernel taps [t0, t1) along one dim of the window starting at input index b0 that lie
// inside [0, n).
void inside(int64_t b0, int64_t k, int64_t d, int64_t n, int64_t* t0, int64_t* t1) {
  *t0 = b0 >= 0 ? 0 : (-b0 + d - 1) / d;
  *t1 = n - 1 - b0 < 0 ? 0 : std::min(k, (n - 1 - b0) / d + 1);
  if (*t1 < *t0) *t1 = *t0;
}

struct Geom {
  int64_t H, W, OH, OW, pt, pl, kh, kw, sh, sw, dh, dw;
};

// One output row of one plane, separable: the max over the window's input rows first (a
// contiguous pass of W bytes per row: pmaxub), into vr; then each output column's max over
// its window's columns of vr. Interior columns (the whole window row inside the input) in
// loops that vectorize: stride 1 as kw contiguous passes, the 3-wide stride-2 window
// (resnet's stem pool) on byte pairs read as 16-bit lanes; the border columns one at a time.
// (resnet50's 64 x 112 x 112 stem pool, one thread, NativeInt8Pool.DISABLED_VsF32: a
// per-column window loop 1.03 ms, this row 0.21 ms, with the AVX2 stride-2 pairs 0.10 ms;
// the f32 kernels 0.19-0.22 ms separable / by planes, 0.39-0.60 generic.)
// The 3-wide stride-2 window maxima of outputs [0, n - n % 16): byte pairs as 16-bit lanes;
// the vectors read up to 2 bytes past the last window (vr's slack). Returns the count done.
__attribute__((target("avx2"))) int64_t max3Stride2Avx2(const uint8_t* c, uint8_t* d, int64_t n) {
  const __m256i ff = _mm256_set1_epi16(0xff);
  int64_t o = 0;
  for (; o + 16 <= n; o += 16) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 2 * o));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 2 * o + 2));
    const __m256i m =
        _mm256_max_epu16(_mm256_max_epu16(_mm256_and_si256(a, ff), _mm256_srli_epi16(a, 8)), _mm256_and_si256(b, ff));
    const __m256i pk = _mm256_permute4x64_epi64(_mm256_packus_epi16(m, m), 0x08);  // 64-bit lanes 0 and 2
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + o), _mm256_castsi256_si128(pk));
  }
  return o;
}

template <bool kAvx2>
__attribute__((always_inline)) inline void poolRowBody(const Geom& g, const uint8_t* src, uint8_t* dst, int64_t oh,
                                                       uint8_t* __restrict vr) {
  const int64_t h0 = oh * g.sh - g.pt;
  int64_t i0, i1;
  inside(h0, g.kh, g.dh, g.H, &i0, &i1);
  if (i0 == i1) {  // no input row in the window
    std::memset(dst, 0, size_t(g.OW));
    return;
  }
  const uint8_t* __restrict r0 = src + (h0 + i0 * g.dh) * g.W;
  if (i1 - i0 == 1) {
    std::memcpy(vr, r0, size_t(g.W));
  } else {
    const uint8_t* __restrict r1 = r0 + g.dh * g.W;
    for (int64_t x = 0; x < g.W; ++x) vr[x] = std::max(r0[x], r1[x]);
  }
  for (int64_t i = i0 + 2; i < i1; ++i) {
    const uint8_t* __restrict r = src + (h0 + i * g.dh) * g.W;
    for (int64_t x = 0; x < g.W; ++x) vr[x] = std::max(vr[x], r[x]);
  }
  // Interior: ow * sw - pl >= 0 and ow * sw - pl + (kw - 1) * dw <= W - 1.
  const int64_t lo = std::min(g.OW, (g.pl + g.sw - 1) / g.sw);
  const int64_t last = g.W - 1 - (g.kw - 1) * g.dw + g.pl;
  const int64_t hi = last < 0 ? lo : std::max(lo, std::min(g.OW, last / g.sw + 1));
  if (hi > lo) {
    uint8_t* __restrict d = dst + lo;
    const int64_t n = hi - lo;
    const uint8_t* c = vr + lo * g.sw - g.pl;  // window column 0 of output lo
    if (g.sw == 2 && g.dw == 1 && g.kw == 3) {
      // Output o: max of bytes 2o, 2o + 1 (the 16-bit lane o) and 2o + 2 (the low byte of lane o + 1).
      int64_t o = kAvx2 ? max3Stride2Avx2(c, d, n) : 0;
      for (; o < n; ++o) {
        uint16_t a, b;
        std::memcpy(&a, c + 2 * o, 2);
        std::memcpy(&b, c + 2 * o + 2, 1);
        b &= 0xff;
        const uint16_t m = std::max<uint16_t>(uint16_t(a & 0xff), uint16_t(a >> 8));
        d[o] = uint8_t(std::max(m, b));
      }
    } else if (g.sw == 1) {
      std::memcpy(d, c, size_t(n));
      for (int64_t j = 1; j < g.kw; ++j) {
        const uint8_t* __restrict cj = c + j * g.dw;
        for (int64_t o = 0; o < n; ++o) d[o] = std::max(d[o], cj[o]);
      }
    } else {
      for (int64_t o = 0; o < n; ++o) {
        uint8_t m = c[o * g.sw];
        for (int64_t j = 1; j < g.kw; ++j) m = std::max(m, c[o * g.sw + j * g.dw]);
        d[o] = m;
      }
    }
  }
  for (int64_t ow = 0; ow < g.OW; ++ow) {
    if (ow == lo && hi > lo) ow = hi;
    if (ow >= g.OW) break;
    const int64_t w0 = ow * g.sw - g.pl;
    int64_t j0, j1;
    inside(w0, g.kw, g.dw, g.W, &j0, &j1);
    uint8_t m = 0;
    for (int64_t j = j0; j < j1; ++j) m = std::max(m, vr[w0 + j * g.dw]);
    dst[ow] = m;
  }
}

// The same row built for AVX2 where the host has it (32-byte pmaxub; the same bytes).
void poolRowBase(const Geom& g, const uint8_t* src, uint8_t* dst, int64_t oh, uint8_t* vr) {
  poolRowBody<false>(g, src, dst, oh, vr);
}
__attribute__((target("avx2"))) void poolRowAvx2(const Geom& g, const uint8_t* src, uint8_t* dst, int64_t oh,
                                                 uint8_t* vr) {
  poolRowBody<true>(g, src, dst, oh, vr);
}

void runU8MaxPool(const StepArgs& a) {
  const U8PoolParams& p = a.paramsAs<U8PoolParams>();
  const runtime::TensorView& x = a.in(0);
  runtime::TensorView& y = a.out(0);
  if (x.rank != 4 || y.rank != 4 || x.dtype != DataType::kU8 || y.dtype != DataType::kU8)
    a.fail("the u8 MaxPool needs rank-4 u8 input and output");
  if (y.dims[0] != x.dims[0] || y.dims[1] != x.dims[1]) a.fail("the output's batch and channels differ from X's");
  Geom g;
  g.H = x.dims[2], g.W = x.dims[3], g.OH = y.dims[2], g.OW = y.dims[3];
  g.pt = padBefore(p, 0, g.H, g.OH), g.pl = padBefore(p, 1, g.W, g.OW);
  g.kh = p.k[0], g.kw = p.k[1], g.sh = p.s[0], g.sw = p.s[1], g.dh = p.d[0], g.dw = p.d[1];
  const int64_t rows = x.dims[0] * x.dims[1] * g.OH;
  if (rows == 0 || g.OW == 0) return;
  // About 64 KB of output rows' input per task at least (small pools run on one).
  const int64_t byWork = std::max<int64_t>(1, rows * g.OW * g.kh * g.kw / 65536);
  const int64_t T = std::min<int64_t>({int64_t(p.tasks), int64_t(a.executor->threads()), rows, byWork});
  if (uint64_t(T * rowBytes(g.W)) > a.workspaceBytes) a.fail("X is wider than prepared (outside the profile?)");
  const uint8_t* xp = x.as<const uint8_t>();
  uint8_t* yp = y.as<uint8_t>();
  static const bool kAvx2 = runtime::hostHas("avx2");
  const auto row = kAvx2 ? poolRowAvx2 : poolRowBase;
  a.executor->parallelFor(T, [&](int64_t t) {
    uint8_t* vr = static_cast<uint8_t*>(a.workspace) + t * rowBytes(g.W);
    for (int64_t r = rangeBegin(rows, t, T); r < rangeBegin(rows, t + 1, T); ++r) {
      const int64_t plane = r / g.OH, oh = r % g.OH;
      row(g, xp + plane * g.H * g.W, yp + plane * g.OH * g.OW + oh * g.OW, oh, vr);
    }
  });
}

}  // namespace

}  // namespace anvil::cpu::tactics

namespace anvil::runtime {

void registerNativeInt8PoolKernels(Kernels& k) {
  using namespace anvil::cpu::tactics;
  Kernel kn;
  kn.name = "i8_maxpool2d_u8_nchw";
  kn.version = 1;
  kn.op = "MaxPool";
  // The node keeps its f32 precision: the kernel serves it once a chain has lowered its
  // input and output to u8 (supports() declines f32 values).
  kn.precision = DataType::kF32;
  kn.supports = supportsU8MaxPool;
  kn.prepare = prepareU8MaxPool;
  kn.run = runU8MaxPool;
  k.add(std::move(kn));
}

}  // namespace anvil::runtime
