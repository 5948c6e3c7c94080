// Native CPU kernels (runtime/kernel.h) for convolutions over few input channels (C <= 4,
// one group, dilation 1, any kernel size, stride and padding; f32 NCHW): the "stem" of the
// CNNs (resnet's 7x7 stride-2 3 -> 64 at 224x224), where im2col builds a K = C kH kW
// column matrix (147 rows) for a GEMM with a short inner dimension.
//  - prepare(): the constant filter is stored as [K/B blocks][C][kH][kW][B] (B output
//    channels per block: 64 for AVX-512, 32 for AVX2), zero past K.
//  - run(): per work item (image, output row, channel block): the C kH input rows the output
//    row reads are copied with their zero padding into the task's workspace (so the
//    micro-kernel has no bounds checks), then the micro-kernel computes R output pixels x B
//    channels in registers (AVX-512: 6 or 7 x 4 zmm; AVX2: 3 x 4 ymm), each tap one load per
//    channel vector and one broadcast per pixel, the input read directly at the stride.
//    The row ([pixels][B]) is transposed 8x8 into the output's channel rows, then the bias
//    and epilogue are applied per channel row. Every output element is computed by one
//    item in a fixed order: bitwise equal for any thread count. No allocation in run().
// Measured (NativeConvStemBench.DISABLED_Timing, resnet's stem 3x224x224 -> 64x112x112,
// 1 thread, min of 30, shared machine): this kernel 1.81-2.08 ms (AVX2: 2.60-2.75), the
// im2col GEMM 2.14-2.39 ms. The micro-kernel alone takes ~1.69 ms (140 GFLOP/s); the rest
// is writing the 3.2 MB output across 64 channel planes (streaming stores were slower
// here: 2.6-2.8 ms). 7 pixels (28 accumulators, one spilled by GCC; 112 = 16 x 7 pixels
// without padding) measured 1.67-1.74 ms against 6 pixels' 1.71-1.77: both are registered,
// the builder keeps the faster on the machine at hand.
//  - Blocked output (f32_conv2d_fewc_nchw16c_* / nchw8c_*, Kernel::nchwcPlainInput): the
//    image stays row-major, the output is NCHW<b>c; the register tile [pixels][B] is B/b
//    whole blocks [pixels][b], stored straight into the block rows (no transpose), the bias
//    and Relu / Clip / HardSwish applied in registers, other activations by the epilogue row
//    over each block row (OW b contiguous floats), the padding lanes zeroed last. B = 64, 32
//    or 16 per call (6x64, 8x32, 14x16 on AVX-512; 3x32, 6x16 on AVX2): a narrow chunk wastes
//    no work on the 16- and 32-channel stems. Measured (NativeConvStemNchwcBench.DISABLED_Timing,
//    1 thread, min of 40, three runs), the best blocked form against the best row-major
//    kernel plus the x32 Reorder of its output to NCHW16c (in cache, optimistic):
//      resnet 7x7 s2 3->64 @224:     6x64 1.25-1.39 ms    vs 1.50-1.70 + 0.25-0.27 ms
//      mobilenet_v2 3x3 s2 3->32:    8x32 0.160-0.172     vs 0.342-0.363 + 0.10-0.12
//      mobilenet_v3 3x3 s2 3->16:    14x16 0.116-0.120    vs 0.270-0.299 + 0.033
//      squeezenet 3x3 s2 p0 3->64:   6x64 0.294-0.310     vs 0.63-0.71 + 0.24
//    with the models' activations (FusedConv): resnet Relu 1.29 vs 1.52 + 0.25, mobilenet_v2
//    Clip 0.173 vs 0.352 + 0.11, efficientnet Silu 0.311 vs 0.451 + 0.11, mobilenet_v3
//    HardSwish 0.135 vs 0.270 + 0.03, squeezenet Relu 0.298 vs 0.68 + 0.24. AVX2 (NCHW8c):
//    3x32 2.51-2.57 vs 2.33-2.45 + 0.24 (resnet), 0.27-0.29 vs 0.34-0.36 + 0.10 (3->32),
//    6x16 0.149-0.157 vs 0.27-0.29 + 0.03 (3->16), 3x32 0.52-0.53 vs 0.69-0.72 + 0.24.
//    Not registered: 12x32 (1.44 / 0.184 ms against 8x32's 1.40 / 0.170), 7x64 (as 6x64),
//    AVX2 4x24 (slower than 3x32 everywhere). The tile's tail goes through a stack copy:
//    storing a runtime-indexed accumulator made GCC keep them all in memory (12x32 2.25 ms,
//    AVX2 3x32 3.79 ms on resnet's stem).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "cpu/tactics/epilogue_act.h"
#include "cpu/tactics/gemm_kernels.h"
#include "cpu/tactics/native_linear_conv.h"
#include "cpu/tactics/native_linear_epilogue.h"
#include "cpu/tactics/nchwc.h"
#include "ir/ops/anvil_linear.h"
#include "runtime/kernel.h"

namespace anvil::cpu::tactics {

namespace {

using ir::linear::Activation;
using ir::linear::Epilogue;
using runtime::Kernel;
using runtime::Kernels;
using runtime::PrepareInfo;
using runtime::Prepared;
using runtime::StepArgs;
using runtime::TensorView;

constexpr int64_t kMaxC = 4;  // input channels the kernel takes (beyond, im2col's K is long enough)

// The row-major output forms, then the NCHW<b>c ones (input 0 row-major, output blocked).
enum class StemIsa : int32_t { kAvx2, kAvx512, kAvx512x7, kAvx2B8x3x32, kAvx512B16x6x64, kAvx512B16x8x32,
                               kAvx512B16x14x16, kAvx2B8x6x16 };
bool isAvx512(StemIsa isa) {
  return isa != StemIsa::kAvx2 && isa != StemIsa::kAvx2B8x3x32 && isa != StemIsa::kAvx2B8x6x16;
}
// The output's channel block (0: row-major output).
int nchwcOf(StemIsa isa) {
  if (isa == StemIsa::kAvx2B8x3x32 || isa == StemIsa::kAvx2B8x6x16) return 8;
  return int(isa) >= int(StemIsa::kAvx512B16x6x64) ? 16 : 0;
}
int64_t blockOf(StemIsa isa) {  // output channels per micro-kernel call
  switch (isa) {
    case StemIsa::kAvx512B16x8x32: return 32;
    case StemIsa::kAvx512B16x14x16: case StemIsa::kAvx2B8x6x16: return 16;
    default: return isAvx512(isa) ? 64 : 32;
  }
}
int64_t pixelsOf(StemIsa isa) {  // output pixels per micro-kernel call
  switch (isa) {
    case StemIsa::kAvx512x7: return 7;
    case StemIsa::kAvx512: case StemIsa::kAvx512B16x6x64: return 6;
    case StemIsa::kAvx512B16x8x32: return 8;
    case StemIsa::kAvx512B16x14x16: return 14;
    case StemIsa::kAvx2B8x6x16: return 6;
    default: return 3;
  }
}

// Everything run() needs besides the views; trivially copyable, no padding bytes.
struct StemParams {
  ConvAttrs conv;
  int64_t K = 0, C = 0;  // output and input channels (the prepared filter's)
  int64_t maxOW = 0;     // the widest output row the workspace holds
  int64_t maxW = 0;      // the widest input row (padded copy) the workspace holds
  int32_t tasks = 1;     // workspace slots
  int32_t fused = 0;     // anvil.FusedConv: the epilogue below applies
  int32_t act = 0;
  int32_t residual = 0, addFirst = 1;
  StemIsa isa = StemIsa::kAvx2;
  float p0 = 0.0f, p1 = 0.0f;
  Epilogue epilogue() const {
    Epilogue e;
    if (!fused) return e;
    e.act = Activation(act);
    e.p0 = p0;
    e.p1 = p1;
    e.residual = residual != 0;
    e.addFirst = addFirst != 0;
    return e;
  }
};
static_assert(sizeof(ConvAttrs) == 96 && sizeof(StemParams) == 96 + 32 + 6 * 4 + 8, "StemParams must have no padding bytes");

// Padded row width for output width OW: every micro-kernel call reads R whole pixels.
int64_t paddedOW(int64_t OW, int64_t R) { return roundUp(OW, R); }
int64_t rowWidth(const ConvAttrs& a, int64_t OW, int64_t R) { return (paddedOW(OW, R) - 1) * a.sW + a.kW; }
// Floats of one task's slot: the C kH padded input rows and the [OWp][B] output row (B = 0:
// none, the blocked forms store straight into the output).
int64_t slotFloats(const ConvAttrs& a, int64_t C, int64_t maxOW, int64_t B, int64_t R) {
  return roundUp(C * a.kH * rowWidth(a, maxOW, R), 16) + paddedOW(maxOW, R) * B;
}

// buf[(ox) * 64 + k] = sum over (c, kh, kw) of w[((c kH + kh) kW + kw) 64 + k] *
// rows[(c kH + kh) Wp + ox sW + kw], for ox in [0, OWp) (a multiple of 6).
template <int R>
__attribute__((target("avx512f"))) void rowAvx512(const float* rows, int64_t Wp, int64_t taps, int64_t kW, int64_t sW,
                                                 const float* w, int64_t OWp, float* buf) {
  for (int64_t ox = 0; ox < OWp; ox += R) {
    __m512 acc[R][4];
#pragma GCC unroll 7
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = _mm512_setzero_ps();
    for (int64_t t = 0; t < taps; ++t) {  // (c, kh): one padded input row
      const float* in = rows + t * Wp + ox * sW;
      const float* wt = w + t * kW * 64;
      for (int64_t kw = 0; kw < kW; ++kw, wt += 64) {
        const __m512 w0 = _mm512_load_ps(wt), w1 = _mm512_load_ps(wt + 16);
        const __m512 w2 = _mm512_load_ps(wt + 32), w3 = _mm512_load_ps(wt + 48);
#pragma GCC unroll 7
        for (int r = 0; r < R; ++r) {
          const __m512 b = _mm512_set1_ps(in[r * sW + kw]);
          acc[r][0] = _mm512_fmadd_ps(w0, b, acc[r][0]);
          acc[r][1] = _mm512_fmadd_ps(w1, b, acc[r][1]);
          acc[r][2] = _mm512_fmadd_ps(w2, b, acc[r][2]);
          acc[r][3] = _mm512_fmadd_ps(w3, b, acc[r][3]);
        }
      }
    }
#pragma GCC unroll 7
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) _mm512_storeu_ps(buf + (ox + r) * 64 + v * 16, acc[r][v]);
  }
}

// The same with 32 output channels (4 ymm) and 3 pixels: 12 accumulators + 4 weights.
__attribute__((target("avx2,fma"))) void rowAvx2(const float* rows, int64_t Wp, int64_t taps, int64_t kW, int64_t sW,
                                                 const float* w, int64_t OWp, float* buf) {
  for (int64_t ox = 0; ox < OWp; ox += 3) {
    __m256 acc[3][4];
#pragma GCC unroll 3
    for (int r = 0; r < 3; ++r) acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = _mm256_setzero_ps();
    for (int64_t t = 0; t < taps; ++t) {
      const float* in = rows + t * Wp + ox * sW;
      const float* wt = w + t * kW * 32;
      for (int64_t kw = 0; kw < kW; ++kw, wt += 32) {
        const __m256 w0 = _mm256_load_ps(wt), w1 = _mm256_load_ps(wt + 8);
        const __m256 w2 = _mm256_load_ps(wt + 16), w3 = _mm256_load_ps(wt + 24);
#pragma GCC unroll 3
        for (int r = 0; r < 3; ++r) {
          const __m256 b = _mm256_broadcast_ss(in + r * sW + kw);
          acc[r][0] = _mm256_fmadd_ps(w0, b, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps(w1, b, acc[r][1]);
          acc[r][2] = _mm256_fmadd_ps(w2, b, acc[r][2]);
          acc[r][3] = _mm256_fmadd_ps(w3, b, acc[r][3]);
        }
      }
    }
#pragma GCC unroll 3
    for (int r = 0; r < 3; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) _mm256_storeu_ps(buf + (ox + r) * 32 + v * 8, acc[r][v]);
  }
}

using RowFn = void (*)(const float*, int64_t, int64_t, int64_t, int64_t, const float*, int64_t, float*);
// The stride and filter width stay runtime values: the resnet stem's 7x7 stride 2 as
// compile-time constants measured slower (1.97 against 1.81 ms, 1 thread), and so did
// unrolling the kw loop.
RowFn rowFn(StemIsa isa) {
  return isa == StemIsa::kAvx512x7 ? rowAvx512<7> : isa == StemIsa::kAvx512 ? rowAvx512<6> : rowAvx2;
}

// ---------------------------------------------------------------------------------------
// Blocked output (NCHW<b>c): the [pixels][B] register tile is B/b whole blocks of
// [pixels][b], stored straight into the output's block rows (no transpose), with the bias
// and a Relu / Clip / HardSwish applied in registers.

struct BlockedRow {
  const float* rows;        // the C kH padded input rows, Wp apart
  int64_t Wp, taps, kW, sW;
  const float* w;           // [taps][kW][B] filter of this channel chunk
  int64_t OW;               // valid output pixels of the row
  const float* bias;        // B floats (zeros past the output channels)
  float lo, hi;             // clamp bounds after the bias (clamp: 0 none, 1 lo, 2 lo and hi,
                            // 3 HardSwish, epi::act16 / act8's operations)
  int clamp;
  float* y;                 // block row (ob, oy, 0) of the chunk's first block
  int64_t blockStride;      // floats between the chunk's consecutive blocks (OH OW b)
  int64_t nb;               // blocks of the chunk that exist in the output
};

template <int R, int NV>
__attribute__((target("avx512f"))) void rowAvx512Blocked(const BlockedRow& a) {
  constexpr int B = NV * 16;
  __m512 bias[NV];
  for (int v = 0; v < NV; ++v) bias[v] = _mm512_loadu_ps(a.bias + v * 16);
  const __m512 lo = _mm512_set1_ps(a.lo), hi = _mm512_set1_ps(a.hi);
  for (int64_t ox = 0; ox < a.OW; ox += R) {
    __m512 acc[R][NV];
#pragma GCC unroll 14
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
    for (int64_t t = 0; t < a.taps; ++t) {
      const float* in = a.rows + t * a.Wp + ox * a.sW;
      const float* wt = a.w + t * a.kW * B;
      for (int64_t kw = 0; kw < a.kW; ++kw, wt += B) {
        __m512 w[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) w[v] = _mm512_load_ps(wt + v * 16);
#pragma GCC unroll 14
        for (int r = 0; r < R; ++r) {
          const __m512 b = _mm512_set1_ps(in[r * a.sW + kw]);
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(w[v], b, acc[r][v]);
        }
      }
    }
#pragma GCC unroll 14
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        __m512 s = _mm512_add_ps(acc[r][v], bias[v]);
        // The zero-masked forms, every lane kept (GCC 12 warns on the plain ones' undefined
        // pass-through): NaN kept (the second operand).
        if (a.clamp == 1 || a.clamp == 2) s = _mm512_maskz_max_ps(0xffff, lo, s);
        if (a.clamp == 2) s = _mm512_maskz_min_ps(0xffff, hi, s);
        if (a.clamp == 3) s = epi::act16<epi::kHardSwish>(s, lo, hi);
        acc[r][v] = s;
      }
    const int64_t n = std::min<int64_t>(R, a.OW - ox);
    if (n == R && a.nb == NV) {
#pragma GCC unroll 14
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) _mm512_storeu_ps(a.y + v * a.blockStride + (ox + r) * 16, acc[r][v]);
    } else {  // the row's last pixels or the output's last chunk: through a tile on the stack
      // (constant register indices: a runtime-indexed acc would live in memory throughout)
      alignas(64) float tile[R][NV * 16];
#pragma GCC unroll 14
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) _mm512_store_ps(tile[r] + v * 16, acc[r][v]);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t v = 0; v < a.nb; ++v)
          std::memcpy(a.y + v * a.blockStride + (ox + r) * 16, tile[r] + v * 16, 16 * sizeof(float));
    }
  }
}

// The same on AVX2: R pixels x NV ymm (NV blocks of 8).
template <int R, int NV>
__attribute__((target("avx2,fma"))) void rowAvx2Blocked(const BlockedRow& a) {
  constexpr int B = NV * 8;
  __m256 bias[NV];
  for (int v = 0; v < NV; ++v) bias[v] = _mm256_loadu_ps(a.bias + v * 8);
  const __m256 lo = _mm256_set1_ps(a.lo), hi = _mm256_set1_ps(a.hi);
  for (int64_t ox = 0; ox < a.OW; ox += R) {
    __m256 acc[R][NV];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
    for (int64_t t = 0; t < a.taps; ++t) {
      const float* in = a.rows + t * a.Wp + ox * a.sW;
      const float* wt = a.w + t * a.kW * B;
      for (int64_t kw = 0; kw < a.kW; ++kw, wt += B) {
        __m256 w[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) w[v] = _mm256_load_ps(wt + v * 8);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          const __m256 b = _mm256_broadcast_ss(in + r * a.sW + kw);
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(w[v], b, acc[r][v]);
        }
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        __m256 s = _mm256_add_ps(acc[r][v], bias[v]);
        if (a.clamp == 1 || a.clamp == 2) s = _mm256_max_ps(lo, s);  // NaN kept (the second operand)
        if (a.clamp == 2) s = _mm256_min_ps(hi, s);
        if (a.clamp == 3) s = epi::act8<epi::kHardSwish>(s, lo, hi);
        acc[r][v] = s;
      }
    const int64_t n = std::min<int64_t>(R, a.OW - ox);
    if (n == R && a.nb == NV) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) _mm256_storeu_ps(a.y + v * a.blockStride + (ox + r) * 8, acc[r][v]);
    } else {  // through a tile on the stack, as above
      alignas(32) float tile[R][B];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) _mm256_store_ps(tile[r] + v * 8, acc[r][v]);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t v = 0; v < a.nb; ++v)
          std::memcpy(a.y + v * a.blockStride + (ox + r) * 8, tile[r] + v * 8, 8 * sizeof(float));
    }
  }
}

using BlockedRowFn = void (*)(const BlockedRow&);
BlockedRowFn blockedRowFn(StemIsa isa) {
  switch (isa) {
    case StemIsa::kAvx512B16x6x64: return rowAvx512Blocked<6, 4>;
    case StemIsa::kAvx512B16x8x32: return rowAvx512Blocked<8, 2>;
    case StemIsa::kAvx512B16x14x16: return rowAvx512Blocked<14, 1>;
    case StemIsa::kAvx2B8x6x16: return rowAvx2Blocked<6, 2>;
    default: return rowAvx2Blocked<3, 4>;
  }
}

// 8 rows of 8 floats transposed in registers.
__attribute__((target("avx2,fma"))) inline void transpose8x8(__m256* r) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// y[k * plane + ox] = buf[ox * B + k] for k < kn (kn <= B) and ox < OW: whole 8x8 blocks
// transposed in registers, the last OW % 8 pixels one by one.
__attribute__((target("avx2,fma"))) void scatterRow(const float* buf, int64_t B, int64_t kn, int64_t OW, float* y,
                                                    int64_t plane) {
  const int64_t full = OW / 8 * 8;
  for (int64_t kc = 0; kc < kn; kc += 8) {
    const int lanes = int(std::min<int64_t>(8, kn - kc));
    for (int64_t ox = 0; ox < full; ox += 8) {
      __m256 r[8];
#pragma GCC unroll 8
      for (int l = 0; l < 8; ++l) r[l] = _mm256_loadu_ps(buf + (ox + l) * B + kc);
      transpose8x8(r);
      for (int l = 0; l < lanes; ++l) _mm256_storeu_ps(y + (kc + l) * plane + ox, r[l]);
    }
    for (int l = 0; l < lanes; ++l)
      for (int64_t ox = full; ox < OW; ++ox) y[(kc + l) * plane + ox] = buf[ox * B + kc + l];
  }
}

// ---------------------------------------------------------------------------------------
// supports / prepare / run

bool isF32(const ir::TensorType& t) { return t.dtype == DataType::kF32; }
bool absent(const std::vector<ir::TensorType>& in, size_t i) {
  return i >= in.size() || in[i].dtype == DataType::kUndefined;
}

// Decodes the Conv attributes; false unless a 2-D, one-group, dilation-1 Conv.
bool stemAttrs(const ir::Node& n, const ir::Shape& w, ConvAttrs* a) {
  if (!w.rankKnown() || w.rank() != 4 || !w.isStatic()) return false;
  const ir::Attributes& at = n.attrs();
  if (at.getInt("group", 1) != 1) return false;
  a->group = 1;
  a->kH = w[2].value();
  a->kW = w[3].value();
  const std::vector<int64_t> ks = at.getInts("kernel_shape", {a->kH, a->kW});
  if (ks.size() != 2 || ks[0] != a->kH || ks[1] != a->kW) return false;
  const std::vector<int64_t> s = at.getInts("strides", {1, 1}), d = at.getInts("dilations", {1, 1});
  if (s.size() != 2 || s[0] < 1 || s[1] < 1 || d != std::vector<int64_t>{1, 1}) return false;
  a->sH = s[0];
  a->sW = s[1];
  return decodeConvPads(at, a);
}

// The filter must be an initializer with C <= 4, X f32 NCHW with static width (the
// workspace holds a row) and the filter's channel count, B (optional) f32 [K].
bool supportsStem(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !isF32(in[0]) || !isF32(in[1])) return false;
  const ir::Shape& x = in[0].shape;
  const ir::Shape& w = in[1].shape;
  if (!x.rankKnown() || x.rank() != 4 || !x[1].isStatic() || !x[3].isStatic()) return false;
  ConvAttrs a;
  if (!stemAttrs(n, w, &a)) return false;
  if (x[1].value() != w[1].value() || w[1].value() > kMaxC) return false;
  const ir::Value* wv = n.input(1);
  if (!wv || !wv->initializer()) return false;
  if (!absent(in, 2) && (!isF32(in[2]) || !in[2].shape.rankKnown() || in[2].shape.rank() != 1)) return false;
  return true;
}

bool supportsFusedStem(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (!supportsStem(n, in)) return false;
  return fusedEpilogueSupported(n, in);
}

// The blocked-output forms: input 0 row-major, output 0 NCHW<b>c with the kernel's block,
// no residual (Z would be blocked too; the stems have none).
bool supportsBlockedStem(int block, bool fused, const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (fused ? !supportsFusedStem(n, in) : !supportsStem(n, in)) return false;
  if (!absent(in, ir::linear::kResidualInput)) return false;
  if (n.outputs().empty() || nchwc::blockOf(n.input(0)) != 0 || nchwc::blockOf(n.output(0)) != block) return false;
  return true;
}

void prepareStem(StemIsa isa, bool fused, const PrepareInfo& info, Prepared* out) {
  StemParams p;
  p.isa = isa;
  p.tasks = std::max(1, info.threads);
  const ir::Node& n = *info.node;
  ANVIL_CHECK(info.maxTypes.size() > 1 && stemAttrs(n, info.maxTypes[1].shape, &p.conv), ErrorCode::kInvalidModel,
              n.label(), ": not a one-group, dilation-1 2-D Conv the few-channel kernel handles");
  const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr;
  ANVIL_CHECK(w != nullptr, ErrorCode::kInternal, n.label(), ": the few-channel Conv kernel needs a constant filter");
  if (fused) {
    const Epilogue e = readFusedEpilogue(n);
    p.fused = 1;
    p.act = int32_t(e.act);
    p.p0 = e.p0;
    p.p1 = e.p1;
    p.residual = e.residual;
    p.addFirst = e.addFirst;
  }
  const std::vector<int64_t> wd = w->dims();
  p.K = wd[0];
  p.C = wd[1];
  // The widest rows at the largest input extents.
  const ir::Shape& xs = info.maxTypes[0].shape;
  ANVIL_CHECK(xs.rankKnown() && xs.rank() == 4 && xs.isStatic(), ErrorCode::kInternal, n.label(),
              ": the few-channel Conv kernel needs the input's largest extents");
  int64_t xd[4];
  for (int i = 0; i < 4; ++i) xd[i] = xs[i].value();
  Conv2dGeom g;
  ANVIL_CHECK(conv2dGeometry(p.conv, xd, p.K, &g), ErrorCode::kInvalidModel, n.label(),
              ": the input does not fit the Conv attributes");
  p.maxOW = g.OW;
  p.maxW = g.W;
  const int64_t B = blockOf(isa), Kp = roundUp(p.K, B), taps = p.C * p.conv.kH * p.conv.kW;
  std::string blob(size_t(Kp * taps) * sizeof(float), '\0');
  auto* U = reinterpret_cast<float*>(blob.data());
  const float* src = w->data<float>();
  for (int64_t k = 0; k < p.K; ++k)
    for (int64_t t = 0; t < taps; ++t) U[(k / B * taps + t) * B + k % B] = src[k * taps + t];
  out->blobs.push_back(std::move(blob));
  out->packedInputs.push_back(1);
  const int64_t rowB = nchwcOf(isa) ? 0 : B;
  out->workspaceBytes = uint64_t(p.tasks * slotFloats(p.conv, p.C, p.maxOW, rowB, pixelsOf(isa))) * sizeof(float);
  out->setParams(p);
}

// The C kH input rows output row oy of image img reads, with their zero padding, Wp wide.
void fillRows(const Conv2dGeom& g, const float* xp, int64_t C, int64_t img, int64_t oy, int64_t Wp, float* rows) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t kh = 0; kh < g.kH; ++kh) {
      float* dst = rows + (c * g.kH + kh) * Wp;
      const int64_t iy = oy * g.sH - g.pt + kh;
      if (iy < 0 || iy >= g.H) {
        std::fill_n(dst, Wp, 0.0f);
        continue;
      }
      // The row between its padding: zeros written only where no input lands (zeroing the
      // whole row first wrote each row twice: ~2.5% of mobilenet_v3_small in `perf`).
      const int64_t j0 = std::min(g.pl, Wp), j1 = std::max(j0, std::min(g.pl + g.W, Wp));
      std::fill_n(dst, j0, 0.0f);
      if (j1 > j0) std::memcpy(dst + j0, xp + ((img * C + c) * g.H + iy) * g.W, size_t(j1 - j0) * sizeof(float));
      std::fill_n(dst + j1, Wp - j1, 0.0f);
    }
}

void runStemNchwc(const StepArgs& a);

void runStem(const StepArgs& a) {
  if (nchwcOf(a.paramsAs<StemParams>().isa) != 0) return runStemNchwc(a);
  const StemParams& p = a.paramsAs<StemParams>();
  const TensorView& X = a.in(0);
  TensorView& Y = a.out(0);
  if (X.rank != 4 || X.dims[1] != p.C) a.fail("X must be [N, C, H, W] with the filter's channel count");
  Conv2dGeom g;
  if (!conv2dGeometry(p.conv, X.dims, p.K, &g)) a.fail("X does not fit the Conv attributes");
  if (Y.rank != 4 || Y.dims[0] != g.N || Y.dims[1] != g.M || Y.dims[2] != g.OH || Y.dims[3] != g.OW)
    a.fail("the output extents differ from the Conv's");
  if (g.OW > p.maxOW) a.fail("the output is wider than prepared");
  if (Y.numel() == 0) return;
  const float* bias = nullptr;
  if (a.hasInput(2)) {
    if (a.in(2).numel() != p.K) a.fail("B must have one value per output channel");
    bias = a.in(2).as<float>();
  }
  const float* zp = nullptr;
  if (p.fused && p.residual) {
    if (!a.hasInput(int(ir::linear::kResidualInput))) a.fail("has_residual is 1 but Z (input 3) is absent");
    const TensorView& z = a.in(int(ir::linear::kResidualInput));
    if (z.numel() != Y.numel()) a.fail("Z must have the output's shape");
    zp = z.as<float>();
  }
  const Epilogue epi = p.epilogue();
  const EpilogueRow row = epilogueRow(epi);

  const int64_t B = blockOf(p.isa), R = pixelsOf(p.isa);
  const int T = std::max(1, std::min(p.tasks, a.executor->threads()));
  const int64_t slot = slotFloats(p.conv, p.C, p.maxOW, B, R);
  if (uint64_t(T * slot) * sizeof(float) > a.workspaceBytes) a.fail("the workspace is smaller than prepared");
  float* ws = static_cast<float*>(a.workspace);

  const int64_t C = p.C, K = p.K, kH = g.kH, kW = g.kW, taps = C * kH;
  const int64_t OWp = paddedOW(g.OW, R), Wp = rowWidth(p.conv, g.OW, R);
  const int64_t nKB = roundUp(K, B) / B, items = g.N * g.OH * nKB, n = std::min<int64_t>(T, items);
  const int64_t plane = g.OH * g.OW;
  const float* Wb = a.blobs[0].as<float>();
  const float* xp = X.as<float>();
  float* yp = Y.as<float>();
  const RowFn micro = rowFn(p.isa);

  a.executor->parallelFor(n, [&](int64_t task) {
    float* rows = ws + task * slot;
    float* buf = rows + roundUp(C * kH * rowWidth(p.conv, p.maxOW, R), 16);
    int64_t lastRow = -1;  // (image, output row) whose input rows `rows` holds
    for (int64_t it = rangeBegin(items, task, n); it < rangeBegin(items, task + 1, n); ++it) {
      const int64_t r = it / nKB, kb = it % nKB, img = r / g.OH, oy = r % g.OH;
      if (r != lastRow) {
        fillRows(g, xp, C, img, oy, Wp, rows);
        lastRow = r;
      }
      micro(rows, Wp, taps, kW, g.sW, Wb + kb * B * taps * kW, OWp, buf);
      const int64_t k0 = kb * B, kn = std::min(B, K - k0);
      float* y = yp + (img * K + k0) * plane + oy * g.OW;
      scatterRow(buf, B, kn, g.OW, y, plane);
      for (int64_t k = 0; k < kn; ++k) {
        const int64_t off = (img * K + k0 + k) * plane + oy * g.OW;
        row(epi, yp + off, zp ? zp + off : nullptr, nullptr, bias ? bias[k0 + k] : 0.0f, g.OW);
      }
    }
  });
}

// The blocked output: per work item (image, output row, channel chunk of B = NV b), the
// micro-kernel stores the chunk's NV block rows [OW][b] directly; an activation other than
// Relu / Clip then runs over each block row (OW b contiguous floats), and the padding lanes
// of the last block are zeroed after it.
void runStemNchwc(const StepArgs& a) {
  const StemParams& p = a.paramsAs<StemParams>();
  const TensorView& X = a.in(0);
  TensorView& Y = a.out(0);
  if (X.rank != 4 || X.dims[1] != p.C) a.fail("X must be [N, C, H, W] with the filter's channel count");
  Conv2dGeom g;
  if (!conv2dGeometry(p.conv, X.dims, p.K, &g)) a.fail("X does not fit the Conv attributes");
  if (Y.rank != 4 || Y.dims[0] != g.N || Y.dims[1] != g.M || Y.dims[2] != g.OH || Y.dims[3] != g.OW)
    a.fail("the output extents differ from the Conv's");
  if (g.OW > p.maxOW) a.fail("the output is wider than prepared");
  if (Y.numel() == 0) return;
  const float* bias = nullptr;
  if (a.hasInput(2)) {
    if (a.in(2).numel() != p.K) a.fail("B must have one value per output channel");
    bias = a.in(2).as<float>();
  }
  Epilogue epi = p.epilogue();
  float lo = 0.0f, hi = 0.0f;
  int clamp = 0;
  if (epi.act == Activation::kRelu) {
    clamp = 1;
  } else if (epi.act == Activation::kClip) {
    clamp = 2;
    lo = epi.p0;
    hi = epi.p1;
  } else if (epi.act == Activation::kHardSwish) {
    // mobilenet_v3's stem: in the tile, not a second pass over each stored block row
    // (NativeConvStemNchwcBench, 14x16: the pass cost ~15% of the Conv).
    clamp = 3;
  }
  const bool rowEpi = epi.act != Activation::kNone && clamp == 0;
  const EpilogueRow row = epilogueRow(epi);

  const int b = nchwcOf(p.isa);
  const int64_t B = blockOf(p.isa), R = pixelsOf(p.isa), NV = B / b;
  const int T = std::max(1, std::min(p.tasks, a.executor->threads()));
  const int64_t slot = slotFloats(p.conv, p.C, p.maxOW, 0, R);
  if (uint64_t(T * slot) * sizeof(float) > a.workspaceBytes) a.fail("the workspace is smaller than prepared");
  float* ws = static_cast<float*>(a.workspace);

  const int64_t C = p.C, K = p.K, kW = g.kW, taps = C * g.kH;
  const int64_t Wp = rowWidth(p.conv, g.OW, R);
  const int64_t MB = nchwc::channelBlocks(K, b), tailLanes = K % b;
  const int64_t nKB = roundUp(K, B) / B, items = g.N * g.OH * nKB, n = std::min<int64_t>(T, items);
  const int64_t plane = g.OH * g.OW;
  const float* Wb = a.blobs[0].as<float>();
  const float* xp = X.as<float>();
  float* yp = Y.as<float>();
  const BlockedRowFn micro = blockedRowFn(p.isa);

  a.executor->parallelFor(n, [&](int64_t task) {
    float* rows = ws + task * slot;
    alignas(64) float chunkBias[64];
    int64_t lastRow = -1;
    for (int64_t it = rangeBegin(items, task, n); it < rangeBegin(items, task + 1, n); ++it) {
      const int64_t r = it / nKB, kb = it % nKB, img = r / g.OH, oy = r % g.OH;
      if (r != lastRow) {
        fillRows(g, xp, C, img, oy, Wp, rows);
        lastRow = r;
      }
      const int64_t k0 = kb * B, kn = std::min(B, K - k0), ob0 = k0 / b, nb = std::min(NV, MB - ob0);
      for (int64_t k = 0; k < B; ++k) chunkBias[k] = bias && k < kn ? bias[k0 + k] : 0.0f;
      BlockedRow br;
      br.rows = rows;
      br.Wp = Wp;
      br.taps = taps;
      br.kW = kW;
      br.sW = g.sW;
      br.w = Wb + kb * B * taps * kW;
      br.OW = g.OW;
      br.bias = chunkBias;
      br.lo = lo;
      br.hi = hi;
      br.clamp = clamp;
      br.y = yp + ((img * MB + ob0) * plane + oy * g.OW) * b;
      br.blockStride = plane * b;
      br.nb = nb;
      micro(br);
      if (rowEpi)
        for (int64_t v = 0; v < nb; ++v) row(epi, br.y + v * br.blockStride, nullptr, nullptr, 0.0f, g.OW * b);
      if (tailLanes != 0 && ob0 + nb == MB) {  // the last block's padding lanes
        float* last = br.y + (nb - 1) * br.blockStride;
        for (int64_t ox = 0; ox < g.OW; ++ox) std::fill_n(last + ox * b + tailLanes, b - tailLanes, 0.0f);
      }
    }
  });
}

Kernel makeKernel(const char* name, bool fused, StemIsa isa) {
  Kernel k;
  k.name = name;
  k.version = fused ? 2 : 1;  // 2: SiLU, Sigmoid and Tanh epilogues with vmath.h's new e^-x
  k.op = fused ? "FusedConv" : "Conv";
  k.domain = fused ? "anvil" : "";
  k.precision = DataType::kF32;
  k.requirements = isAvx512(isa) ? std::vector<std::string>{"avx512f", "avx2", "fma"}  // the scatter is AVX2
                                            : std::vector<std::string>{"avx2", "fma"};
  k.supports = fused ? supportsFusedStem : supportsStem;
  if (const int block = nchwcOf(isa)) {
    k.nchwcBlock = block;
    k.nchwcPlainInput = true;
    k.requirements = block == 16 ? std::vector<std::string>{"avx512f"} : std::vector<std::string>{"avx2", "fma"};
    k.supports = [block, fused](const ir::Node& n, const std::vector<ir::TensorType>& in) {
      return supportsBlockedStem(block, fused, n, in);
    };
  }
  k.prepare = [isa, fused](const PrepareInfo& i, Prepared* o) { prepareStem(isa, fused, i, o); };
  k.run = runStem;
  return k;
}

}  // namespace

}  // namespace anvil::cpu::tactics

namespace anvil::runtime {

// Convolutions over at most 4 input channels (the CNN stems), direct.
void registerNativeConvStemKernels(Kernels& k) {
  using namespace anvil::cpu::tactics;
  k.add(makeKernel("f32_conv2d_fewc_6x64__avx512", false, StemIsa::kAvx512));
  k.add(makeKernel("f32_conv2d_fewc_6x64_epilogue__avx512", true, StemIsa::kAvx512));
  k.add(makeKernel("f32_conv2d_fewc_7x64__avx512", false, StemIsa::kAvx512x7));
  k.add(makeKernel("f32_conv2d_fewc_7x64_epilogue__avx512", true, StemIsa::kAvx512x7));
  k.add(makeKernel("f32_conv2d_fewc_3x32__avx2", false, StemIsa::kAvx2));
  k.add(makeKernel("f32_conv2d_fewc_3x32_epilogue__avx2", true, StemIsa::kAvx2));
  // Blocked output (NCHW<b>c), input 0 row-major.
  k.add(makeKernel("f32_conv2d_fewc_nchw16c_6x64__avx512", false, StemIsa::kAvx512B16x6x64));
  k.add(makeKernel("f32_conv2d_fewc_nchw16c_6x64_epilogue__avx512", true, StemIsa::kAvx512B16x6x64));
  k.add(makeKernel("f32_conv2d_fewc_nchw16c_8x32__avx512", false, StemIsa::kAvx512B16x8x32));
  k.add(makeKernel("f32_conv2d_fewc_nchw16c_8x32_epilogue__avx512", true, StemIsa::kAvx512B16x8x32));
  k.add(makeKernel("f32_conv2d_fewc_nchw16c_14x16__avx512", false, StemIsa::kAvx512B16x14x16));
  k.add(makeKernel("f32_conv2d_fewc_nchw16c_14x16_epilogue__avx512", true, StemIsa::kAvx512B16x14x16));
  k.add(makeKernel("f32_conv2d_fewc_nchw8c_3x32__avx2", false, StemIsa::kAvx2B8x3x32));
  k.add(makeKernel("f32_conv2d_fewc_nchw8c_3x32_epilogue__avx2", true, StemIsa::kAvx2B8x3x32));
  k.add(makeKernel("f32_conv2d_fewc_nchw8c_6x16__avx2", false, StemIsa::kAvx2B8x6x16));
  k.add(makeKernel("f32_conv2d_fewc_nchw8c_6x16_epilogue__avx2", true, StemIsa::kAvx2B8x6x16));
}

}  // namespace anvil::runtime
