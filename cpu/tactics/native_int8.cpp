// The i8_* kernels (runtime/kernel.h) of nodes the precision pass set to DataType::kI8:
// MatMul, Gemm, Conv and anvil.FusedMatMul / FusedGemm / FusedConv with constant f32
// weights, on the engine of cpu/tactics/int8_gemm.h. The kernel quantizes an f32 input 0
// with the value's per-tensor quantization (scale, u8 zero point, from calibration),
// multiplies u8 x s8 exactly in int32 and dequantizes in the tile's store, then applies
// bias / Gemm C, activation and residual as the f32 kernels do (EpilogueRow of
// native_linear_epilogue.h).
//  - Lowered I/O (a chain of i8 kernels keeps its activations u8; see LoweredIo): input 0,
//    Z and output 0 may each be a u8 tensor with a per-tensor quantization on its value.
//    A u8 input is packed from its bytes (the bits of the f32 input float(q - z) * s), a
//    u8 Z dequantized (float(q - z) * s) into the f32 residual add, a u8 output requantized
//    (quantizeU8One) from the f32 the output would hold, in one pass per register tile
//    (finishTile) from a per-task scratch. Not with components in f32 (they read f32 I/O).
//  - prepare(): weights quantized per output feature (their own per-axis quantization when
//    the value carries one) and packed into 32-bit groups; z_x * colsum and s_x * s_w
//    (Gemm: times alpha) per feature; the workspace holds the quantized activations (A
//    panels; a Conv's image padded, blocked by 4 or 2 channels and split by stride phase,
//    or per-task tiles of a 1x1's channel rows).
//  - run(): no allocation; every output element is one exact integer sum and one f32
//    epilogue, so the bits do not depend on the thread count or the ISA.
//  - Families: AVX-512 VNNI, AVX-VNNI, AVX2, and a portable one with no ISA requirement
//    (plain C++ tiles; same bits), so every machine can run an INT8 node.
//  - Components in f32 (tactic params; see "Components in f32" below): fp32_channels (output
//    features always computed from the original f32 weights and input) and adaptive_tau /
//    adaptive_test (every component in INT8 plus sum |q_x - z_x| |q_w| from a second tile
//    pass; those whose condition number passes the test are recomputed in f32), their
//    results replacing the INT8 ones before bias and epilogue; counted in StepArgs::counters.
//    Measured (one thread, 8x48 VNNI, 5% of features / tau at the 95th percentile of kappa;
//    NativeInt8Bench.DISABLED_MixedCost; noisy shared box): 3x3 64 -> 64 at 56x56 INT8 0.33-0.37
//    ms, fp32_channels 0.82-0.88 ms, adaptive 1.76-2.0 ms (f32 Winograd 0.70); 1x1 256 -> 64
//    at 56x56 0.25 / 0.84-0.88 / 1.65-2.0 (f32 0.61-0.64); MatMul 128x768x768 0.19 / 0.42 /
//    0.89-1.0 (f32 0.70-0.74). Again on a Zen 4 (8x48 VNNI, plain kernels, after the row
//    filter's certain flags and bit masks): 3x3 0.58 / 1.07 / 1.94 (f32 Winograd 0.97), 1x1
//    0.33 / 0.75 / 1.43 (f32 1.0), MatMul 0.35 / 0.57 / 1.0 (f32 1.32); digits_cnn's 3x3 16 ->
//    32 at 8x8, batch 64: 0.18 / 0.45 / 0.76 (f32 0.43). The f32 sums of fp32_channels and
//    adaptive components use AVX2 + FMA where the host has it (as epilogueRow does): bits
//    per host, not per family.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>

#include "cpu/tactics/int8_gemm.h"
#include "cpu/tactics/int8_support.h"
#include "cpu/tactics/native_linear_conv.h"
#include "cpu/tactics/native_linear_epilogue.h"
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

enum class I8Op : int32_t { kMatMul, kGemm, kConv };

// Trivially copyable and without padding bytes (the engine compares params byte for byte).
struct I8Params {
  I8Op op = I8Op::kMatMul;
  I8Isa isa = I8Isa::kAvx2;
  int32_t tasks = 1;
  int32_t fused = 0;
  int32_t transA = 0, transB = 0;
  float alpha = 1.0f, beta = 1.0f;
  float invScale = 1.0f;  // 1 / s_x
  int32_t zeroPoint = 0;  // z_x
  int64_t K = 0, N = 0;   // the weight: K x N features (Conv: K = C * kH * kW, N = output channels)
  int64_t pixelTile = 0;  // 1x1 Conv: output pixels per tile (a multiple of 48 for one task, else of 16)
  ConvAttrs conv;
  EpilogueParams epi;
  int32_t direct = 0;  // Conv: 1 = the direct form (all but unpadded 1x1 stride-1 Convs)
  int32_t mixed = 0;     // 1: some components may be computed in f32 (blobs [3] to [5])
  int32_t adaptive = 0;  // 1: flags components at run time (blobs [6] to [8])
  int32_t test = 0;      // adaptive_test: 0 product, 1 ratio, 2 both
  float tau = 0.0f;      // adaptive_tau
  int32_t nStatic = 0;   // fp32_channels: how many
  int32_t lowered = 0;   // LoweredIo bits: which of input 0, Z and output 0 are u8 tensors
  float zScale = 1.0f;   // a u8 Z: s_z
  int32_t zZero = 0;     // a u8 Z: z_z
  float yInvScale = 1.0f;  // a u8 output: 1 / s_y
  int32_t yZero = 0;       // a u8 output: z_y
};
static_assert(sizeof(I8Params) == 10 * 4 + 3 * 8 + sizeof(ConvAttrs) + sizeof(EpilogueParams) + 4 + 10 * 4,
              "I8Params must have no padding bytes");

// Lowered values (a chain of i8 kernels keeps its activations quantized): a u8 tensor with
// a per-tensor quantization on its value, real = s * (q - z). Input 0 is read as it is (no
// quantize: the same q the f32 input's dequantized values give), Z dequantized to f32 (one
// multiply) before the f32 residual add, the output requantized (quantizeU8One) from the
// bits the f32 output would hold.
enum LoweredIo : int32_t { kLowX = 1, kLowZ = 2, kLowY = 4 };

bool isF32(const ir::TensorType& t) { return t.dtype == DataType::kF32; }
bool absent(const std::vector<ir::TensorType>& in, size_t i) {
  return i >= in.size() || in[i].dtype == DataType::kUndefined;
}
bool rankIs(const ir::TensorType& t, size_t lo, size_t hi) {
  return t.shape.rankKnown() && t.shape.rank() >= lo && t.shape.rank() <= hi;
}

// ---------------------------------------------------------------------------------------
// Quantization parameters

// s_x and z_x of input 0.
bool activationQuant(const ir::Node& n, float* scale, int32_t* zp) { return perTensorQuant(n.input(0), scale, zp); }

int64_t staticDim(const ir::Shape& s, size_t i) { return s[i].isStatic() ? s[i].value() : -1; }

// ---------------------------------------------------------------------------------------
// Components in f32: per-component precision (tactic param fp32_channels: output features
// always computed in f32) and adaptive precision (adaptive_tau, adaptive_test: components
// flagged at run time by their condition number). A flagged component's INT8 result is
// replaced, before bias and epilogue, by an f32 dot product of the original f32 weights and
// the original f32 input (fixed order: eight interleaved partial sums, then a fixed tree),
// so the bits depend neither on the thread count nor on the family.

// Blobs after the INT8 ones: [3] int32 per feature, its row in [5] (-1: none); [4] int32 per
// feature (padded to 64), 1 + its index in fp32_channels or 0, then that list; [5] f32 weights [rows][K] (K in the op's natural
// order: Conv (ci, kh, kw), MatMul k); adaptive: [6] |q_w| packed as [0], [7] int32 zeros
// and [8] f32 ones per feature (the tiles' zero-point and scale operands for sum |q_x - z_x|
// |q_w|), padded to 64 features like [1] and [2].
enum MixedBlob { kRowOf = 3, kStatic = 4, kWeightsF32 = 5, kAbsPacked = 6, kZeros = 7, kOnes = 8 };

// f32 dot product of K values: 32 lanes, lane i summing the products k = i (mod 32) in order
// while 32 remain, then 8 more at a time into lanes 0-7, the last K % 8 into lanes 0..,
// then a fixed tree; four independent vector sums hide the adds' latency (one 8-lane sum ran
// at a third of the speed). Baseline: 4-float generic vectors (an 8-float one went through
// the stack on SSE2); where the host has AVX2 (as epilogueRow picks its row by the host),
// 8-float vectors and FMA. Every family and thread count on a host takes the same path.
__attribute__((always_inline)) inline float finishDot(float (*s)[8], const float* a, const float* b, int64_t k,
                                                      int64_t K) {
  for (int i = 0; k + i < K; ++i) s[0][i] += a[k + i] * b[k + i];
  float t[8];
  for (int i = 0; i < 8; ++i) t[i] = (s[0][i] + s[1][i]) + (s[2][i] + s[3][i]);
  return ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
}

float dotBase(const float* a, const float* b, int64_t K) {
  using F4 = float __attribute__((vector_size(16)));
  F4 acc[8];
#pragma GCC unroll 8
  for (int q = 0; q < 8; ++q) acc[q] = F4{};
  int64_t k = 0;
  for (; k + 32 <= K; k += 32)
#pragma GCC unroll 8
    for (int q = 0; q < 8; ++q) {
      F4 x, y;
      std::memcpy(&x, a + k + 4 * q, 16);
      std::memcpy(&y, b + k + 4 * q, 16);
      acc[q] += x * y;
    }
  for (; k + 8 <= K; k += 8)
#pragma GCC unroll 2
    for (int q = 0; q < 2; ++q) {
      F4 x, y;
      std::memcpy(&x, a + k + 4 * q, 16);
      std::memcpy(&y, b + k + 4 * q, 16);
      acc[q] += x * y;
    }
  float s[4][8];
  std::memcpy(s, acc, sizeof(s));
  return finishDot(s, a, b, k, K);
}

__attribute__((target("avx2,fma"))) float dotAvx2(const float* a, const float* b, int64_t K) {
  using F8 = float __attribute__((vector_size(32)));
  F8 acc[4];
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) acc[q] = F8{};
  int64_t k = 0;
  for (; k + 32 <= K; k += 32)
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      F8 x, y;
      std::memcpy(&x, a + k + 8 * q, 32);
      std::memcpy(&y, b + k + 8 * q, 32);
      acc[q] += x * y;
    }
  for (; k + 8 <= K; k += 8) {
    F8 x, y;
    std::memcpy(&x, a + k, 32);
    std::memcpy(&y, b + k, 32);
    acc[0] += x * y;
  }
  // finishDot's operations in vectors (the tail into lanes 0.., t = (s0 + s1) + (s2 + s3)
  // lane by lane, then ((t0 + t4) + (t1 + t5)) + ((t2 + t6) + (t3 + t7))): the same bits,
  // without the stack round trip and the scalar tree (half of a 64-long dot's time).
  if (k < K) {
    float s0[8];
    std::memcpy(s0, &acc[0], 32);
    for (int i = 0; k + i < K; ++i) s0[i] += a[k + i] * b[k + i];
    std::memcpy(&acc[0], s0, 32);
  }
  const F8 t = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  const __m256 tv = reinterpret_cast<__m256>(t);
  const __m128 u = _mm_add_ps(_mm256_castps256_ps128(tv), _mm256_extractf128_ps(tv, 1));  // t_i + t_(i+4)
  const __m128 v = _mm_add_ps(u, _mm_shuffle_ps(u, u, 0xb1));                            // u0 + u1, u2 + u3
  return _mm_cvtss_f32(_mm_add_ss(v, _mm_movehl_ps(v, v)));
}

bool hostAvx2() {
  static const bool b = runtime::hostHas("avx2") && runtime::hostHas("fma");
  return b;
}

float dotF32(const float* a, const float* b, int64_t K) { return hostAvx2() ? dotAvx2(a, b, K) : dotBase(a, b, K); }

// One Conv component (output pixel (oh, ow), weights wr in (kh, kw, ci) order) from the
// channels-last image xt: every in-bounds tap's C products into the same 32 lanes (lane i:
// ci = i (mod 32) while 32 remain, then 8 at a time into lanes 0-7), the last C % 8 of each
// tap into one scalar sum, then the lanes' fixed tree plus that sum. One tree per component
// (a dotF32 per tap spent as long on its tree as on a 64-channel tap's products).
// NC components of one pixel at once (channels wr[0..NC)): the image's loads are shared
// and the NC sums are independent chains (a 16-channel image's component is one chain of
// 2 kH kW dependent FMAs); each component's operations and their order are those of a
// component alone (NC = 1), so its bits do not depend on its group.
template <typename V, int L, int NC>
__attribute__((always_inline)) inline void convDotImpl(const Conv2dGeom& g, const float* xt, int64_t oh, int64_t ow,
                                                       const float* const* wr, float* out) {
  constexpr int Q = 32 / L;  // vectors per 32 lanes
  V acc[NC][Q];
  float tail[NC];
#pragma GCC unroll 4
  for (int c = 0; c < NC; ++c) {
    tail[c] = 0.0f;
#pragma GCC unroll 8
    for (int q = 0; q < Q; ++q) acc[c][q] = V{};
  }
  const int64_t C = g.C;
  for (int64_t kh = 0; kh < g.kH; ++kh) {
    const int64_t ih = oh * g.sH - g.pt + kh * g.dH;
    if (ih < 0 || ih >= g.H) continue;  // padding: zero products
    for (int64_t kw = 0; kw < g.kW; ++kw) {
      const int64_t iw = ow * g.sW - g.pl + kw * g.dW;
      if (iw < 0 || iw >= g.W) continue;
      const float* a = xt + (ih * g.W + iw) * C;
      const int64_t tap = (kh * g.kW + kw) * C;
      int64_t k = 0;
      for (; k + 32 <= C; k += 32)
#pragma GCC unroll 8
        for (int q = 0; q < Q; ++q) {
          V x;
          std::memcpy(&x, a + k + L * q, sizeof(V));
#pragma GCC unroll 4
          for (int c = 0; c < NC; ++c) {
            V y;
            std::memcpy(&y, wr[c] + tap + k + L * q, sizeof(V));
            acc[c][q] += x * y;
          }
        }
      for (; k + 8 <= C; k += 8)
#pragma GCC unroll 2
        for (int q = 0; q < 8 / L; ++q) {
          V x;
          std::memcpy(&x, a + k + L * q, sizeof(V));
#pragma GCC unroll 4
          for (int c = 0; c < NC; ++c) {
            V y;
            std::memcpy(&y, wr[c] + tap + k + L * q, sizeof(V));
            acc[c][q] += x * y;
          }
        }
      for (; k < C; ++k)
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) tail[c] += a[k] * wr[c][tap + k];
    }
  }
#pragma GCC unroll 4
  for (int c = 0; c < NC; ++c) {
    float s[32];
    std::memcpy(s, acc[c], sizeof(s));
    float t[8];
    for (int i = 0; i < 8; ++i) t[i] = (s[i] + s[8 + i]) + (s[16 + i] + s[24 + i]);
    out[c] = (((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]))) + tail[c];
  }
}

// n components of pixel (oh, ow): out[i] from weights wr[i]; groups of four below 32
// channels (latency-bound chains), of two from 32 (the four vectors per component already
// hide the latency; the image's loads are shared).
template <typename V, int L>
__attribute__((always_inline)) inline void convDotsImpl(const Conv2dGeom& g, const float* xt, int64_t oh, int64_t ow,
                                                        const float* const* wr, int n, float* out) {
  int i = 0;
  if (g.C < 32)
    for (; i + 4 <= n; i += 4) convDotImpl<V, L, 4>(g, xt, oh, ow, wr + i, out + i);
  for (; i + 2 <= n; i += 2) convDotImpl<V, L, 2>(g, xt, oh, ow, wr + i, out + i);
  for (; i < n; ++i) convDotImpl<V, L, 1>(g, xt, oh, ow, wr + i, out + i);
}

void convDotsBase(const Conv2dGeom& g, const float* xt, int64_t oh, int64_t ow, const float* const* wr, int n,
                  float* out) {
  convDotsImpl<float __attribute__((vector_size(16))), 4>(g, xt, oh, ow, wr, n, out);
}
__attribute__((target("avx2,fma"))) void convDotsAvx2(const Conv2dGeom& g, const float* xt, int64_t oh, int64_t ow,
                                                      const float* const* wr, int n, float* out) {
  convDotsImpl<float __attribute__((vector_size(32))), 8>(g, xt, oh, ow, wr, n, out);
}

// fp32_channels of a MatMul/Gemm: out[r * ldo + c] = row a[r] . column w[c] (K values) for
// an RB x CB block. A component: 8 lanes (lane i: k = i (mod 8) while 8 remain), the last
// K % 8 into lanes 0.., then the fixed tree; a block's RB * CB sums are independent chains
// (one dotF32 per component ran at 2.3x the INT8 layer's time, 2x4 blocks at ~1.4x), and a
// component's operations do not depend on its block.
template <typename V, int L, int RB, int CB>
__attribute__((always_inline)) inline void blockDotsImpl(const float* const* a, const float* const* w, int64_t K,
                                                         float* out, int64_t ldo) {
  constexpr int Q = 8 / L;
  V acc[RB][CB][Q];
  for (int r = 0; r < RB; ++r)
    for (int c = 0; c < CB; ++c)
      for (int q = 0; q < Q; ++q) acc[r][c][q] = V{};
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    V x[RB][Q];
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r)
#pragma GCC unroll 2
      for (int q = 0; q < Q; ++q) std::memcpy(&x[r][q], a[r] + k + L * q, sizeof(V));
#pragma GCC unroll 4
    for (int c = 0; c < CB; ++c)
#pragma GCC unroll 2
      for (int q = 0; q < Q; ++q) {
        V y;
        std::memcpy(&y, w[c] + k + L * q, sizeof(V));
#pragma GCC unroll 4
        for (int r = 0; r < RB; ++r) acc[r][c][q] += x[r][q] * y;
      }
  }
  for (int r = 0; r < RB; ++r)
    for (int c = 0; c < CB; ++c) {
      float t[8];
      std::memcpy(t, acc[r][c], 32);
      for (int i = 0; k + i < K; ++i) t[i] += a[r][k + i] * w[c][k + i];
      out[r * ldo + c] = ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
    }
}

// Rows [0, rb) x columns [0, nc) in blocks: AVX2 2x4 where the host has it, else 1x4.
void blockDotsBase(const float* const* a, int rb, const float* const* w, int64_t nc, int64_t K, float* out,
                   int64_t ldo) {
  using F4 = float __attribute__((vector_size(16)));
  for (int r = 0; r < rb; ++r) {
    int64_t c = 0;
    for (; c + 4 <= nc; c += 4) blockDotsImpl<F4, 4, 1, 4>(a + r, w + c, K, out + r * ldo + c, ldo);
    for (; c < nc; ++c) blockDotsImpl<F4, 4, 1, 1>(a + r, w + c, K, out + r * ldo + c, ldo);
  }
}
__attribute__((target("avx2,fma"))) void blockDotsAvx2(const float* const* a, int rb, const float* const* w,
                                                       int64_t nc, int64_t K, float* out, int64_t ldo) {
  using F8 = float __attribute__((vector_size(32)));
  int64_t c = 0;
  for (; c + 4 <= nc; c += 4)
    if (rb == 2)
      blockDotsImpl<F8, 8, 2, 4>(a, w + c, K, out + c, ldo);
    else
      blockDotsImpl<F8, 8, 1, 4>(a, w + c, K, out + c, ldo);
  for (; c < nc; ++c)
    if (rb == 2)
      blockDotsImpl<F8, 8, 2, 1>(a, w + c, K, out + c, ldo);
    else
      blockDotsImpl<F8, 8, 1, 1>(a, w + c, K, out + c, ldo);
}

// The input channels-last, [N][H][W][C] f32, for the f32 components: each tap of a
// component is then one contiguous dot product over C (a per-component gather of its
// (ci, kh, kw) column cost as much as the products). Images x rows [u0, u1) of them.
void channelsLast(const Conv2dGeom& g, const float* x, int64_t u0, int64_t u1, float* xt) {
  // Blocks of 8 channels x 16 pixels: each pixel's 8 channels are one 32-byte write (channel
  // by channel over a row, the strided writes cost 3x).
  for (int64_t u = u0; u < u1; ++u) {
    const int64_t img = u / g.H, h = u % g.H;
    float* dst = xt + (img * g.H + h) * g.W * g.C;
    const float* src = x + (img * g.C * g.H + h) * g.W;
    const int64_t plane = g.H * g.W;
    for (int64_t c0 = 0; c0 < g.C; c0 += 8) {
      const int64_t nc = std::min<int64_t>(8, g.C - c0);
      for (int64_t w0 = 0; w0 < g.W; w0 += 16) {
        const int64_t nw = std::min<int64_t>(16, g.W - w0);
        for (int64_t w = 0; w < nw; ++w)
          for (int64_t ci = 0; ci < nc; ++ci) dst[(w0 + w) * g.C + c0 + ci] = src[(c0 + ci) * plane + w0 + w];
      }
    }
  }
}

int64_t channelsLastBytes(const Conv2dGeom& g) { return roundUp(g.N * g.H * g.W * g.C * 4, 64); }
// The fp32_channels read the input padded (zeros) as [N][C][Hp][Wp] f32, so every tap of
// every pixel is in bounds: no border path (border pixels one at a time, latency-bound,
// cost 10x the vectors on 56-wide rows). Slack past the end for the last block's lanes.
struct PaddedGeom {
  int64_t Hp, Wp, words;
};
PaddedGeom paddedGeom(const Conv2dGeom& g) {
  PaddedGeom q;
  q.Hp = g.pt + g.H + g.pb;
  q.Wp = g.pl + g.W + g.pr;
  q.words = g.N * g.C * q.Hp * q.Wp + 64 * g.sW + (g.kW - 1) * g.dW + 64;
  return q;
}

// The fp32_channels' f32 planes [N][nStatic][OH][OW] (convStatic).
int64_t staticPlanesBytes(const I8Params& p, const Conv2dGeom& g) {
  return roundUp(g.N * p.nStatic * g.OH * g.OW * 4, 64);
}

// The adaptive test's row filter (Mixed::maybeRow) on eight components per step, in float:
// the cheap bound of kappa_phi (ir::linear::conditionBoundOf's formulas, their 0.1% margins
// far above float's rounding) and both tests with a further factor kAdaptiveSafe on the
// side that must be larger, so that a component left out here is left out by the exact
// test in double too: the float products and quotients err by a few 2^-24, 1e-4 covers
// them. Where float could lose that guarantee (a right-hand side below 2^-100, where
// subnormal rounding is coarse, or infinite; any NaN) the component is left to the exact
// test. Measured (perf, flow_mlp at tau 0.1, Zen 4): the scalar double loop was ~30% of
// an adaptive layer's time.
using F8 = float __attribute__((vector_size(32)));
using I8x = int32_t __attribute__((vector_size(32)));
constexpr float kAdaptiveSafe = 1.0001f;
constexpr float kAdaptiveTiny = 0x1p-100f;

#define ANVIL_F8 __attribute__((target("avx2,fma"), always_inline)) inline
ANVIL_F8 F8 absF8(F8 v) { return (F8)((I8x)v & 0x7fffffff); }
ANVIL_F8 F8 splatF8(float x) { return F8{x, x, x, x, x, x, x, x}; }

template <Activation A>
ANVIL_F8 F8 conditionBoundF8(F8 v) {
  const F8 one = splatF8(1.0f), zero = splatF8(0.0f), av = absF8(v);
  if constexpr (A == Activation::kRelu) {
    return v > zero ? one : zero;
  } else if constexpr (A == Activation::kTanh) {
    return splatF8(1.001f) / (one + splatF8(2.0f / 3.0f) * v * v);
  } else if constexpr (A == Activation::kSigmoid) {
    return splatF8(1.001f) * (v > zero ? v / (one + v + splatF8(0.5f) * v * v) : av);
  } else if constexpr (A == Activation::kSilu) {
    const F8 below = av - one;
    return splatF8(1.001f) * (v > zero ? one + v / (one + v + splatF8(0.5f) * v * v) : (below > one ? below : one));
  } else {
    static_assert(A == Activation::kGelu, "the bounded activations");
    const F8 sq = splatF8(1.001f) * (v * v > one ? v * v : one);
    return v >= zero ? splatF8(1.5f) : v < splatF8(-37.0f) ? splatF8(float(ir::linear::kConditionCap)) : sq;
  }
}

// A lower bound of kappa_phi (ir::linear::activationCondition) for the row filter's certain
// flags, 0 where it has none; each times kConditionLowerMargin, far below float's rounding
// of it and of the exact form. Relu: exact. Tanh, x = 2|v|: x / sinh x >= 1 / (1 + x^2 / 6
// + 2.5 x^4 / 120) for x <= 6 (sinh's series past x^3 / 6 is at most 2.5 x^5 / 120 there),
// for |v| <= 3. Sigmoid: |v| (1 - s) >= |v| / 2 below 0 (1 - s > 1/2), v / (2 + v + 0.8
// v^2) on (0, 1] (e^v <= 1 + v + 0.8 v^2). SiLU: >= 1 from 0 up (v (1 - s) >= 0), 1 + v on
// (-1, 0) (1 - s < 1). GELU: >= 1 from 0 up, 1 - 1.293 |v| on [-1/2, 0) (pdf / cdf <=
// pdf(0) / cdf(-1/2) there). NativeInt8Adaptive.ConditionLowerBounds
// checks each against the exact form on a dense grid.
constexpr float kConditionLowerMargin = 0.999f;
template <Activation A>
ANVIL_F8 F8 conditionLowerF8(F8 v) {
  const F8 one = splatF8(1.0f), zero = splatF8(0.0f), av = absF8(v), m = splatF8(kConditionLowerMargin);
  if constexpr (A == Activation::kRelu) {
    return v > zero ? one : zero;
  } else if constexpr (A == Activation::kTanh) {
    const F8 v2 = v * v, lo = m / (one + splatF8(2.0f / 3.0f) * v2 + splatF8(1.0f / 3.0f) * v2 * v2);
    return av <= splatF8(3.0f) ? lo : zero;
  } else if constexpr (A == Activation::kSigmoid) {
    const F8 pos = m * v / (splatF8(2.0f) + v + splatF8(0.8f) * v * v);
    return v <= zero ? m * splatF8(0.5f) * av : v <= one ? pos : zero;
  } else if constexpr (A == Activation::kSilu) {
    return v >= zero ? m : v > -one ? m * (one + v) : zero;
  } else {
    static_assert(A == Activation::kGelu, "the bounded activations");
    return v >= zero ? m : v >= splatF8(-0.5f) ? m * (one - splatF8(1.293f) * av) : zero;
  }
}

template <Activation A>
__attribute__((target("avx2,fma"))) void conditionLowerRow(const float* v, int64_t n, float* lo) {
  for (int64_t i = 0; i + 8 <= n; i += 8) {
    F8 x;
    std::memcpy(&x, v + i, 32);
    const F8 r = conditionLowerF8<A>(x);
    std::memcpy(lo + i, &r, 32);
  }
}

// The row filter on eight components: the candidates' and the certain flags' movemasks.
struct FilterConsts {
  F8 t255, t, safe, tiny, big, zero, u255;
  bool product, ratio;
};
template <Activation A>
ANVIL_F8 void filterVec(const FilterConsts& k, F8 a, F8 v, F8 ns, F8 sc, int* candBits, int* sureBits) {
  const F8 b = conditionBoundF8<A>(a);
  I8x cand = (v == k.zero) | (a != a);  // a NaN argument: the exact test decides
  if (k.product) {
    const F8 lhs = ns * absF8(sc) * b * k.safe, rhs = k.t255 * absF8(v);
    cand |= ~(lhs <= rhs) | (rhs < k.tiny) | (rhs > k.big);
  }
  if (k.ratio) {
    const F8 rr = k.t * absF8(a);
    cand |= ~(b * k.safe <= rr) | (rr < k.tiny) | (rr > k.big);
  }
  // The argument's sign within the product's error (Mixed::flag), either test.
  const F8 sl = ns * absF8(sc), sr = k.u255 * absF8(a);
  cand |= ~(sl * k.safe <= sr) | (sr < k.tiny) | (sr > k.big);
  // With kappa_phi's lower bound past the same margin on the other side the exact test
  // flags the component for certain (no exact test; most candidates are flagged). rhs and
  // rr as above; a NaN or infinite argument still goes to the exact test (kappa_phi is NaN
  // there for some).
  const F8 lo = conditionLowerF8<A>(a);
  I8x sure = I8x{};
  if (k.product) {
    const F8 lhs = ns * absF8(sc) * lo, rhs = k.t255 * absF8(v);
    sure |= ((v == k.zero) & (lo > k.zero)) | ((lhs > rhs * k.safe) & (rhs >= k.tiny) & (rhs <= k.big));
  }
  if (k.ratio) {
    const F8 rr = k.t * absF8(a);
    sure |= (lo > rr * k.safe) & (rr >= k.tiny) & (rr <= k.big);
  }
  sure |= (sl > sr * k.safe) & (sr >= k.tiny) & (sr <= k.big);
  sure &= (absF8(a) <= k.big);
  *candBits = _mm256_movemask_ps(reinterpret_cast<__m256>(cand));
  *sureBits = _mm256_movemask_ps(reinterpret_cast<__m256>(sure));
}
ANVIL_F8 FilterConsts filterConsts(float tau, bool product, bool ratio) {
  return {splatF8(255.0f * tau), splatF8(tau), splatF8(kAdaptiveSafe), splatF8(kAdaptiveTiny), splatF8(3.4e38f),
          splatF8(0.0f), splatF8(255.0f), product, ratio};
}

// The activation's argument as the byte path forms it: v0, + beta C, + bias, + Z.
ANVIL_F8 F8 filterArg(F8 v, const float* c, bool hasBias, F8 bv, const float* z) {
  F8 a = v;
  if (c) {
    F8 cv;
    std::memcpy(&cv, c, 32);
    a += cv;
  }
  if (hasBias) a += bv;
  if (z) {
    F8 zv;
    std::memcpy(&zv, z, 32);
    a += zv;
  }
  return a;
}

// One row of components for filterBitsAvx2: n <= 64 of them, their INT8 values v0 and sums
// nsum, a scale each (scales) or one (scale); a Gemm's beta C gathered for the row (c; null:
// none), the bias (one per component, biasVec, or one for the row, bias; hasBias false: none)
// and the residual z (null: none) added in that order to form the activation's argument, as
// the byte path forms it.
struct FilterRow {
  const float* nsum = nullptr;
  const float* v0 = nullptr;
  const float* scales = nullptr;
  float scale = 1.0f;
  const float* c = nullptr;
  const float* biasVec = nullptr;
  float bias = 0.0f;
  bool hasBias = false;
  const float* z = nullptr;
  int64_t n = 0;
  // The argument of component j (the few exact tests): the same float adds.
  float arg(int64_t j) const {
    float a = v0[j];
    if (c) a += c[j];
    if (hasBias) a += biasVec ? biasVec[j] : bias;
    if (z) a += z[j];
    return a;
  }
};

// Eight components of a FilterRow from the given pointers (the row's or padded copies).
template <Activation A>
ANVIL_F8 void filterStep(const FilterConsts& k, const FilterRow& row, const float* v0, const float* ns0,
                         const float* sc0, const float* c0, const float* b0, const float* z0, int* cb, int* sb) {
  F8 v, ns, sc = splatF8(row.scale), bv = splatF8(row.bias);
  std::memcpy(&v, v0, 32);
  std::memcpy(&ns, ns0, 32);
  if (sc0) std::memcpy(&sc, sc0, 32);
  if (b0) std::memcpy(&bv, b0, 32);
  filterVec<A>(k, filterArg(v, c0, row.hasBias, bv, z0), v, ns, sc, cb, sb);
}

// The row filter over one row straight to bits, the argument formed in registers: *cand the
// candidates, *sure the certain ones. The row's tail as one more step over padded copies,
// its bits dropped.
template <Activation A>
__attribute__((target("avx2,fma"))) void filterBitsAvx2(const FilterRow& row, bool product, bool ratio, float tau,
                                                        uint64_t* cand, uint64_t* sure) {
  const FilterConsts k = filterConsts(tau, product, ratio);
  const int64_t n = row.n, n8 = n / 8 * 8;
  uint64_t c = 0, s = 0;
  for (int64_t i = 0; i < n8; i += 8) {
    int cb, sb;
    filterStep<A>(k, row, row.v0 + i, row.nsum + i, row.scales ? row.scales + i : nullptr, row.c ? row.c + i : nullptr,
                  row.biasVec ? row.biasVec + i : nullptr, row.z ? row.z + i : nullptr, &cb, &sb);
    c |= uint64_t(cb) << i;
    s |= uint64_t(sb) << i;
  }
  if (n8 < n) {
    const size_t m = size_t(n - n8) * sizeof(float);
    alignas(32) float vt[8] = {1, 1, 1, 1, 1, 1, 1, 1}, nt[8] = {}, st[8] = {1, 1, 1, 1, 1, 1, 1, 1}, ct[8] = {},
                      bt[8] = {}, zt[8] = {};
    std::memcpy(vt, row.v0 + n8, m);
    std::memcpy(nt, row.nsum + n8, m);
    if (row.scales) std::memcpy(st, row.scales + n8, m);
    if (row.c) std::memcpy(ct, row.c + n8, m);
    if (row.biasVec) std::memcpy(bt, row.biasVec + n8, m);
    if (row.z) std::memcpy(zt, row.z + n8, m);
    int cb, sb;
    filterStep<A>(k, row, vt, nt, row.scales ? st : nullptr, row.c ? ct : nullptr, row.biasVec ? bt : nullptr,
                  row.z ? zt : nullptr, &cb, &sb);
    const uint64_t keep = (uint64_t(1) << (n - n8)) - 1;
    c |= (uint64_t(cb) & keep) << n8;
    s |= (uint64_t(sb) & keep) << n8;
  }
  *cand = c;
  *sure = s;
}

// The product test without an activation on one component, in float (kappa_phi = 1):
// v0 = 0 or nsum |scale| > 255 tau |v0|. productMask8 is its eight-lane form.
inline bool productFlag(float nsum, float v0, float absScale, float t255) {
  return (v0 == 0.0f) | (nsum * absScale > t255 * std::fabs(v0));
}

// Components i..i+7 of the product test without an activation as a movemask (s1: |scale|
// where scales is null).
ANVIL_F8 int productMask8(const float* nsum, const float* v0, const float* scales, F8 s1, F8 t, int64_t i) {
  F8 v, ns, sc = s1;
  std::memcpy(&v, v0 + i, 32);
  std::memcpy(&ns, nsum + i, 32);
  if (scales) {
    std::memcpy(&sc, scales + i, 32);
    sc = absF8(sc);
  }
  const I8x flag = (v == splatF8(0.0f)) | (ns * sc > t * absF8(v));
  return _mm256_movemask_ps(reinterpret_cast<__m256>(flag));
}
// The product test without an activation on a row of n <= 64 components straight to bits
// (the tail in scalars: productFlag).
__attribute__((target("avx2,fma"))) uint64_t productBitsAvx2(const float* nsum, const float* v0, const float* scales,
                                                             float scale, float t255, int64_t n) {
  const F8 t = splatF8(t255), s1 = absF8(splatF8(scale));
  const int64_t n8 = n / 8 * 8;
  uint64_t bits = 0;
  for (int64_t i = 0; i < n8; i += 8) bits |= uint64_t(productMask8(nsum, v0, scales, s1, t, i)) << i;
  const float s = std::fabs(scale);
  for (int64_t i = n8; i < n; ++i)
    bits |= uint64_t(productFlag(nsum[i], v0[i], scales ? std::fabs(scales[i]) : s, t255)) << i;
  return bits;
}

// The flag bytes of a row (0, 1 = candidate, 2 = flagged for certain; n <= 64) as bits:
// returns the candidates (nonzero), *sure the certain ones. Eight bytes at a time, each
// byte's low bit gathered into the top byte by one multiplication.
inline uint64_t gatherBits(uint64_t w) { return ((w & 0x0101010101010101ULL) * 0x0102040810204080ULL) >> 56; }
inline uint64_t flagBits(const uint8_t* flags, int64_t n, uint64_t* sure) {
  uint64_t c = 0, s = 0;
  for (int64_t j8 = 0; j8 < n; j8 += 8) {
    uint64_t w = 0;
    std::memcpy(&w, flags + j8, size_t(std::min<int64_t>(8, n - j8)));
    c |= gatherBits(w | w >> 1) << j8;
    s |= gatherBits(w >> 1) << j8;
  }
  *sure = s;
  return c;
}
inline int64_t ctz64(uint64_t x) { return int64_t(__builtin_ctzll(x)); }

// Tests only (adaptiveBytePathForTest): the row filter through flag bytes, as without AVX2.
std::atomic<bool> gAdaptiveBytePath{false};

// The run-time view of the mixed blobs, and the adaptive test of one component: nsum =
// float(sum |q_x - z_x| |q_w|), v0 = the dequantized product (float(corrected) * scale),
// actIn = the activation's argument. kappa_v = nsum / |corrected| = nsum |scale| / |v0|
// (+inf at 0); u = 1 / 255.
struct Mixed {
  bool on = false, adaptive = false;
  int test = 0;
  float tau = 0.0f;
  Epilogue epi;
  const int32_t* rowOf = nullptr;
  const int32_t* isStatic = nullptr;
  const int32_t* staticList = nullptr;  // the fp32_channels
  int64_t nStatic = 0;
  const float* wf = nullptr;
  const uint32_t* absW = nullptr;
  const int32_t* zeros = nullptr;
  const float* ones = nullptr;
  int64_t K = 0;

  static Mixed of(const StepArgs& a, const I8Params& p) {
    Mixed m;
    if (!p.mixed) return m;
    if (a.numBlobs < (p.adaptive ? 9 : 6)) a.fail("the prepared blobs lack the f32 components' data");
    m.on = true;
    m.adaptive = p.adaptive != 0;
    m.test = p.test;
    m.tau = p.tau;
    m.epi = p.epi.get();
    m.rowOf = a.blobs[kRowOf].as<int32_t>();
    m.isStatic = a.blobs[kStatic].as<int32_t>();
    m.staticList = m.isStatic + roundUp(p.N, 64);
    m.nStatic = p.nStatic;
    m.wf = a.blobs[kWeightsF32].as<float>();
    if (m.adaptive) {
      m.absW = a.blobs[kAbsPacked].as<uint32_t>();
      m.zeros = a.blobs[kZeros].as<int32_t>();
      m.ones = a.blobs[kOnes].as<float>();
    }
    m.K = p.K;
    return m;
  }
  const float* weights(int64_t f) const { return wf + int64_t(rowOf[f]) * K; }
  // Without divisions (this runs for every component): product kappa_v kappa_phi u > tau
  // as nsum |scale| kappa_phi > 255 tau |v0|, ratio kappa_phi / |v| > tau as kappa_phi >
  // tau |v|. At v0 = 0 (kappa_v = +inf) the product test flags whenever kappa_phi > 0.
  // The product test without an activation, in f32 (kappa_phi = 1): one row of a tile.
  bool productOnly() const { return test == 0 && epi.act == Activation::kNone; }
  // flag()'s tests with kappa_phi's cheap upper bound (ir::linear::conditionBoundOf) over n
  // components of a row in double, one activation per loop: out[i] = 0 where flag() is false
  // for certain, 1 where it must decide (the exact kappa_phi is a transcendental in double:
  // ~29 ns a component, 0.46 of flow_mlp's 0.47 ms Tanh FusedGemms of 256 x 64 x 64 with tau
  // 0.1). The path of hosts without AVX2 (filterBits on the others). scales: one per
  // component, or null for `scale`. Relu's bound is its exact condition; the activations
  // without one (exact and cheap) leave every component to flag().
  void maybeRow(const float* nsum, const float* v0, const float* scales, float scale, const float* actIn, int64_t n,
                uint8_t* out) const {
    if (!ir::linear::withConditionBound(epi.act, [&](auto act) {
          maybeRowOf<decltype(act)::value>(nsum, v0, scales, scale, actIn, n, out);
        }))
      std::fill_n(out, n, uint8_t(1));
  }
  template <Activation Act>
  void maybeRowOf(const float* nsum, const float* v0, const float* scales, float scale, const float* actIn, int64_t n,
                  uint8_t* out) const {
    const double t255 = 255.0 * double(tau), t = double(tau);
    const bool product = test != 1, ratio = test != 0;
    for (int64_t i = 0; i < n; ++i) {
      const double b = ir::linear::conditionBoundOf<Act>(double(actIn[i]));
      const double s = std::fabs(double(scales ? scales[i] : scale));
      const bool p = product && double(nsum[i]) * s * b > t255 * std::fabs(double(v0[i]));
      const bool r = ratio && b > t * std::fabs(double(actIn[i]));
      const bool sign = signWithinError(nsum[i], s, actIn[i]);  // flag()'s first test
      out[i] = uint8_t((v0[i] == 0.0f) | p | r | sign | std::isnan(actIn[i]));  // NaN: the exact test decides
    }
  }
  // Where the host has AVX2: maybeRow's decisions for one row straight to bits, eight
  // components a step in float (filterBitsAvx2), also flagging for certain from a lower bound
  // of kappa_phi (*sure). false (nothing done) without AVX2, where the activation has no
  // bound, or under adaptiveBytePathForTest.
  static bool bitPath() { return hostAvx2() && !gAdaptiveBytePath.load(std::memory_order_relaxed); }
  bool filterBits(const FilterRow& row, uint64_t* cand, uint64_t* sure) const {
    if (!bitPath()) return false;
    return ir::linear::withConditionBound(epi.act, [&](auto act) {
      filterBitsAvx2<decltype(act)::value>(row, test != 1, test != 0, tau, cand, sure);
    });
  }
  // flagRow (scales null) or flagCols over n <= 64 components as bits where the host has
  // AVX2 (productBitsAvx2: the same float operations per component); false otherwise.
  bool productBits(const float* nsum, const float* v0, const float* scales, float scale, int64_t n,
                   uint64_t* bits) const {
    if (!bitPath()) return false;
    *bits = productBitsAvx2(nsum, v0, scales, scale, 255.0f * tau, n);
    return true;
  }
  // The product test without an activation as flag bytes (hosts without AVX2).
  void flagRow(const float* nsum, const float* v0, float scale, int64_t n, uint8_t* out) const {
    const float s = std::fabs(scale), t = 255.0f * tau;
    for (int64_t i = 0; i < n; ++i) out[i] = uint8_t(productFlag(nsum[i], v0[i], s, t));
  }
  void flagCols(const float* nsum, const float* v0, const float* scale, int64_t n, uint8_t* out) const {
    const float t = 255.0f * tau;
    for (int64_t i = 0; i < n; ++i) out[i] = uint8_t(productFlag(nsum[i], v0[i], std::fabs(scale[i]), t));
  }
  // Is the activation's argument's sign within the INT8 product's error bound (sum |q_x - z|
  // |q_w| steps of |scale|, u = 1/255 of it)? Then kappa_phi at the computed argument is no
  // estimate of kappa_phi at the true one (a Relu layer's negative components have kappa_phi
  // 0 and would never be flagged, at any tau). absScale: |scale| in double.
  static bool signWithinError(float nsum, double absScale, float actIn) {
    return double(nsum) * absScale > 255.0 * std::fabs(double(actIn));
  }
  // The exact test of one component (callers filter with maybeRow first).
  bool flag(float nsum, float v0, float scale, float actIn) const {
    // With an activation, first: the sign guard.
    if (epi.act != Activation::kNone && signWithinError(nsum, std::fabs(double(scale)), actIn)) return true;
    const double kphi = epi.act == Activation::kNone ? 1.0 : ir::linear::activationCondition(epi, actIn);
    if (test != 1) {
      const double lhs = double(nsum) * std::fabs(double(scale)) * kphi, rhs = 255.0 * double(tau) * std::fabs(double(v0));
      if (v0 == 0.0f ? kphi > 0.0 : lhs > rhs) return true;
    }
    return test != 0 && kphi > double(tau) * std::fabs(double(actIn));
  }
};

// fp32_channels, adaptive_tau and adaptive_test into p; the static feature list into *channels.
void readMixed(const PrepareInfo& info, I8Params* p, std::vector<int64_t>* channels) {
  const ir::Attributes& tp = info.node->tacticParams();
  *channels = tp.getInts("fp32_channels", {});
  std::sort(channels->begin(), channels->end());
  channels->erase(std::unique(channels->begin(), channels->end()), channels->end());
  for (int64_t f : *channels)
    ANVIL_CHECK(f >= 0 && f < p->N, ErrorCode::kInvalidModel, info.node->label(), ": fp32_channels names feature ",
                f, " of ", p->N);
  if (tp.has("adaptive_tau")) {
    p->tau = tp.getFloat("adaptive_tau", 0.0f);
    ANVIL_CHECK(p->tau > 0.0f && std::isfinite(p->tau), ErrorCode::kInvalidModel, info.node->label(),
                ": adaptive_tau must be a finite value > 0, got ", p->tau);
    const std::string t = tp.getString("adaptive_test", "product");
    ANVIL_CHECK(t == "product" || t == "ratio" || t == "both", ErrorCode::kInvalidModel, info.node->label(),
                ": adaptive_test must be product, ratio or both, got ", t);
    p->test = t == "product" ? 0 : t == "ratio" ? 1 : 2;
    p->adaptive = 1;
  }
  p->mixed = p->adaptive || !channels->empty();
  p->nStatic = int32_t(channels->size());
}

// Which I/O is lowered (u8) and the Z / output quantization, into p (after readFused and
// readMixed).
void readLowered(const PrepareInfo& info, I8Params* p) {
  const ir::Node& n = *info.node;
  if (!info.maxTypes.empty() && info.maxTypes[0].dtype == DataType::kU8) p->lowered |= kLowX;
  const size_t zi = ir::linear::kResidualInput;
  if (p->fused && p->epi.residual && zi < info.maxTypes.size() && info.maxTypes[zi].dtype == DataType::kU8) {
    float s;
    ANVIL_CHECK(perTensorQuant(n.input(zi), &s, &p->zZero), ErrorCode::kInvalidModel, n.label(),
                ": Z is u8 without a per-tensor quantization (f32 scale > 0, u8 zero point)");
    p->zScale = s;
    p->lowered |= kLowZ;
  }
  if (n.output(0) && n.output(0)->dtype() == DataType::kU8) {
    float s;
    ANVIL_CHECK(perTensorQuant(n.output(0), &s, &p->yZero), ErrorCode::kInvalidModel, n.label(),
                ": the output is u8 without a per-tensor quantization (f32 scale > 0, u8 zero point)");
    p->yInvScale = 1.0f / s;
    p->lowered |= kLowY;
  }
  ANVIL_CHECK(!(p->lowered && p->mixed), ErrorCode::kInvalidModel, n.label(),
              ": fp32_channels / adaptive_tau need f32 input and output, not u8");
}

// Whether a tile's outputs go through the per-task scratch and Finish (a u8 Z or output).
bool loweredOut(const I8Params& p) { return (p.lowered & (kLowZ | kLowY)) != 0; }

// A direct Conv with f32 output whose epilogue finishTile computes: its tiles already go
// through a scratch (positions are not pixels), so the epilogue joins that copy into Y
// instead of a second pass over Y (VNNI, one thread, DISABLED_LoweredIo, f32 I/O: the 7x7
// stride-2 stem 0.80-0.82 -> 0.69-0.72 ms, 3x3 512 at 7x7 0.45-0.46 -> 0.40-0.42; the 1x1
// tiles, which store in place, lost 5-10% the same way: they keep the second pass).
bool foldedFinish(const I8Params& p) {
  const Epilogue e = p.epi.get();
  return p.op == I8Op::kConv && p.direct && p.fused && !p.mixed && finishRowHandles(int(e.act)) &&
         (e.residual || e.act != Activation::kNone);
}

// The one-pass finish of a tile's rows (finishTile) for this node's lowered Z / output, or
// fast = false where its activation is not one finishTile computes (then EpilogueRow and
// the quantizer, one after the other). epilogue: whether the f32 kernel runs its row.
struct LoweredFinish {
  RowFinish f;
  bool fast = false;
};
LoweredFinish loweredFinish(const I8Params& p, bool epilogue) {
  LoweredFinish l;
  const Epilogue e = p.epi.get();
  l.f = rowFinishOf(e, epilogue, p.zScale, p.zZero, p.yInvScale, p.yZero);
  l.fast = !epilogue || finishRowHandles(int(e.act));
  return l;
}

// RowFinish::noNaN (tileFinishNoNaN) for a node without components in f32.
bool finishHasNoNaN(const I8Params& p, const float* sc, int64_t n, const float* bias, int64_t nb) {
  return !p.mixed && tileFinishNoNaN(sc, n, bias, nb, p.zScale, p.yInvScale);
}

// A u8 Z's values as the f32 residual: float(q - z) * s, one multiply.
void dequantizeU8(const uint8_t* q, int64_t n, float s, int32_t zp, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = float(int32_t(q[i]) - zp) * s;
}

// ---------------------------------------------------------------------------------------
// Work split and workspace

// As the f32 kernels: no task below 0.5 M multiply-adds' worth of work.
constexpr double kMinOpsPerTask = 5e5;

int tasksOf(const StepArgs& a, const I8Params& p, double ops) {
  const int byWork = int(std::max(1.0, std::min(1e6, ops / kMinOpsPerTask)));
  return std::max(1, std::min({p.tasks, a.executor ? a.executor->threads() : 1, byWork}));
}

// A workspace: one shared region then per-task slots, all in bytes and 64-byte multiples.
struct Layout {
  int64_t shared = 0, slot = 0;
  int64_t absShared = 0;  // adaptive: offset of the |q_x - z_x| copy in the shared region
  int64_t slotMixed = 0;  // mixed: offset in a slot of the N tile [mr][width] f32, then K f32 of input
  int64_t xtShared = 0;   // adaptive Conv: offset of the channels-last input in the shared region
  int64_t xsShared = 0;   // Conv with fp32_channels: offset of their f32 planes
  int64_t xpShared = 0;   // Conv with fp32_channels: offset of the padded f32 input
  int64_t slotLow = 0;    // loweredOut: offset in a slot of the f32 tile [mr][width], then width f32 of Z
  int64_t total(int64_t tasks) const { return shared + tasks * slot; }
};

char* workspace(const StepArgs& a, const Layout& l, int tasks) {
  if (uint64_t(l.total(tasks)) > a.workspaceBytes)
    a.fail("the shapes need a larger workspace than prepared (outside the profile?)");
  return static_cast<char*>(a.workspace);
}

// Mixed: per task the adaptive N tile ([mr][width] f32) and one gathered input row or
// column (K f32) after a slot's own bytes.
void addMixedSlot(const I8Config& c, const I8Params& p, int64_t width, Layout* l) {
  if (!p.mixed) return;
  l->slotMixed = l->slot;
  l->slot += roundUp(int64_t(c.mr) * width * 4, 64) + roundUp(std::max(p.K, width) * 4, 64);
}

// A u8 Z or output: per task the tile's f32 outputs and one row of Z in f32.
void addLoweredSlot(const I8Config& c, const I8Params& p, int64_t width, Layout* l) {
  if (!loweredOut(p) && !foldedFinish(p)) return;
  l->slotLow = l->slot;
  l->slot += roundUp(int64_t(c.mr) * width * 4, 64) + roundUp(width * 4, 64);
}

// MatMul/Gemm: A quantized into panels [M/mr][KG][mr] words (adaptive: then their
// |q_x - z_x| copy); per task the rows of one panel.
Layout matmulLayout(const I8Config& c, const I8Params& p, int64_t M, int64_t K) {
  Layout l;
  const int64_t KG = groupsOf(c, K);
  l.shared = roundUp(ceilDiv(M, c.mr) * KG * c.mr * 4, 64);
  if (p.adaptive) l.absShared = l.shared, l.shared *= 2;
  if (p.nStatic) l.xsShared = l.shared, l.shared += roundUp(M * p.nStatic * 4, 64);  // fp32_channels [M][nStatic]
  l.slot = roundUp(c.mr * roundUp(K, 4), 64);
  addMixedSlot(c, p, int64_t(c.nv) * c.lanes, &l);
  addLoweredSlot(c, p, int64_t(c.nv) * c.lanes, &l);
  return l;
}

// The 1x1 Conv: per task one tile [KG][pixelTile] words (adaptive: and its |q_x - z_x| copy).
Layout pointwiseLayout(const I8Config& c, const I8Params& p, const Conv2dGeom& g, int64_t K, int64_t pixelTile) {
  Layout l;
  if (p.adaptive) l.xtShared = 0, l.shared = channelsLastBytes(g);
  l.xsShared = l.shared, l.shared += staticPlanesBytes(p, g);
  if (p.nStatic) l.xpShared = l.shared, l.shared += roundUp(paddedGeom(g).words * 4, 64);
  l.slot = roundUp(groupsOf(c, K) * pixelTile * 4, 64) * (p.adaptive ? 2 : 1);
  addMixedSlot(c, p, int64_t(c.nv) * c.lanes, &l);
  addLoweredSlot(c, p, pixelTile, &l);  // a panel's rows over the whole pixel tile
  return l;
}

void readFused(const PrepareInfo& info, I8Params* p) {
  p->fused = 1;
  p->epi = EpilogueParams::of(readFusedEpilogue(*info.node));
}

// Z (input 3) of a fused node with has_residual: its data, f32 or u8 as prepared.
const void* residualData(const StepArgs& a, const I8Params& p) {
  if (!p.fused || !p.epi.residual) return nullptr;
  if (!a.hasInput(int(ir::linear::kResidualInput))) a.fail("has_residual is 1 but Z (input 3) is absent");
  const TensorView& z = a.in(int(ir::linear::kResidualInput));
  if (z.numel() != a.out(0).numel()) a.fail("Z must have the output's shape");
  if ((z.dtype == DataType::kU8) != ((p.lowered & kLowZ) != 0)) a.fail("Z's type differs from the prepared one");
  return z.data;
}
// An f32 Z, else null.
const float* residualOf(const StepArgs& a, const I8Params& p) {
  return p.lowered & kLowZ ? nullptr : static_cast<const float*>(residualData(a, p));
}
// A u8 Z, else null.
const uint8_t* residualU8(const StepArgs& a, const I8Params& p) {
  return p.lowered & kLowZ ? static_cast<const uint8_t*>(residualData(a, p)) : nullptr;
}

// Input 0 and output 0 have the prepared types.
void checkLoweredTypes(const StepArgs& a, const I8Params& p) {
  if ((a.in(0).dtype == DataType::kU8) != ((p.lowered & kLowX) != 0)) a.fail("input 0's type differs from the prepared one");
  if ((a.out(0).dtype == DataType::kU8) != ((p.lowered & kLowY) != 0)) a.fail("the output's type differs from the prepared one");
}

// Quantizes and packs the weight (feature f's value k at w[f * fs + k * ks]) into blobs:
// [0] the packed groups (MatMul: blocks of nv * lanes columns; Conv: panels of mr rows),
// [1] z_x * colsum and [2] s_x * s_w * alpha per feature, padded to 64 features.
void prepareWeights(const PrepareInfo& info, const I8Params& p, int64_t fs, int64_t ks, int64_t featureAxis,
                    float sx, float alpha, const std::vector<int64_t>& channels, Prepared* out) {
  const I8Config& c = i8Config(p.isa);
  const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr;
  ANVIL_CHECK(w && w->dtype() == DataType::kF32, ErrorCode::kInternal, info.node->label(),
              ": the INT8 kernels need a constant f32 weight (input 1)");
  const float* given;
  ANVIL_CHECK(weightQuant(*info.node, featureAxis, p.N, &given), ErrorCode::kInvalidModel, info.node->label(),
              ": the weight's quantization is not per output feature with zero offsets");
  const I8Weights q = quantizeWeights(w->data<float>(), p.N, p.K, fs, ks, given);
  const bool conv = p.op == I8Op::kConv;
  const int64_t block = conv ? c.mr : int64_t(c.nv) * c.lanes, tail = conv ? c.mr : c.lanes;
  // The direct Conv's K order: (channel group, kh, kw, channel in group), kg channels a
  // group (zeros past C), as its blocked image lays them out.
  std::vector<int8_t> reordered;
  const int8_t* qm = q.q.data();
  int64_t K = p.K;
  if (p.direct) {
    const int64_t C = w->dim(1), taps = w->dim(2) * w->dim(3), CG = ceilDiv(C, c.kg);
    K = CG * taps * c.kg;
    reordered.assign(size_t(p.N * K), 0);
    for (int64_t f = 0; f < p.N; ++f)
      for (int64_t ch = 0; ch < C; ++ch)
        for (int64_t t = 0; t < taps; ++t)
          reordered[size_t(f * K + ((ch / c.kg) * taps + t) * c.kg + ch % c.kg)] = q.q[size_t(f * p.K + ch * taps + t)];
    qm = reordered.data();
  }
  auto pack = [&](const int8_t* m) {
    std::string packed(size_t(packedGroupWords(c, p.N, K, block, tail)) * 4, '\0');
    packGroups(c, reinterpret_cast<const uint8_t*>(m), p.N, K, K, true, block, tail,
               reinterpret_cast<uint32_t*>(packed.data()));
    return packed;
  };
  std::string packed = pack(qm);
  const int64_t padded = roundUp(p.N, 64);
  std::string zc, sc;
  int8FeatureOperands(*info.node, p.zeroPoint, q.sums, q.scale, sx, alpha, padded, &zc, &sc);
  out->blobs = {std::move(packed), std::move(zc), std::move(sc)};
  out->packedInputs.push_back(1);
  if (!p.mixed) return;
  // The f32 components' blobs (see MixedBlob): adaptive keeps every feature's weights.
  std::vector<int32_t> rowOf(size_t(padded), -1), isStatic(size_t(padded), 0);
  for (size_t i = 0; i < channels.size(); ++i) {
    isStatic[size_t(channels[i])] = int32_t(i) + 1;
    isStatic.push_back(int32_t(channels[i]));
  }
  std::vector<float> wf;
  int32_t rows = 0;
  const int64_t C = conv ? w->dim(1) : p.K, taps = conv ? w->dim(2) * w->dim(3) : 1;
  for (int64_t f = 0; f < p.N; ++f) {
    if (!p.adaptive && !isStatic[size_t(f)]) continue;
    rowOf[size_t(f)] = rows++;
    // A Conv's in (kh, kw, ci) order, against its input copied channels-last (convFix).
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t ci = 0; ci < C; ++ci) wf.push_back(w->data<float>()[f * fs + (ci * taps + t) * ks]);
  }
  auto bytes = [](const auto& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(v[0]));
  };
  out->blobs.push_back(bytes(rowOf));
  out->blobs.push_back(bytes(isStatic));
  out->blobs.push_back(wf.empty() ? std::string(4, '\0') : bytes(wf));
  if (!p.adaptive) return;
  std::vector<int8_t> mag(qm, qm + p.N * K);
  for (int8_t& v : mag) v = int8_t(v < 0 ? -v : v);  // |q_w| <= 127
  out->blobs.push_back(pack(mag.data()));
  out->blobs.push_back(bytes(std::vector<int32_t>(size_t(padded), 0)));
  out->blobs.push_back(bytes(std::vector<float>(size_t(padded), 1.0f)));
}

// ---------------------------------------------------------------------------------------
// MatMul / Gemm

bool supportsMatMul(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !rankIs(in[0], 1, runtime::kMaxRank) || !rankIs(in[1], 2, 2)) return false;
  const int64_t K = staticDim(in[1].shape, 0), N = staticDim(in[1].shape, 1);
  return int8LinearSupports(n, in, K, N, 1);
}

bool supportsFusedMatMul(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (!supportsMatMul(n, in) || !int8FusedEpilogueSupports(n, in)) return false;
  return absent(in, 2) || (isF32(in[2]) && rankIs(in[2], 1, 1));
}

bool supportsGemm(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !rankIs(in[0], 2, 2) || !rankIs(in[1], 2, 2)) return false;
  if (!absent(in, 2) && (!isF32(in[2]) || !rankIs(in[2], 0, 2))) return false;
  const bool tB = n.attrs().getInt("transB", 0) != 0;
  const int64_t K = staticDim(in[1].shape, tB ? 1 : 0), N = staticDim(in[1].shape, tB ? 0 : 1);
  return int8LinearSupports(n, in, K, N, tB ? 0 : 1);
}

bool supportsFusedGemm(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  return supportsGemm(n, in) && int8FusedEpilogueSupports(n, in);
}

void prepareMatMul(I8Isa isa, I8Op op, bool fused, const PrepareInfo& info, Prepared* out) {
  I8Params p;
  p.op = op;
  p.isa = isa;
  p.tasks = std::max(1, info.threads);
  if (fused) readFused(info, &p);
  float sx;
  ANVIL_CHECK(activationQuant(*info.node, &sx, &p.zeroPoint), ErrorCode::kInvalidModel, info.node->label(),
              ": input 0 has no per-tensor u8 quantization");
  p.invScale = 1.0f / sx;
  const std::vector<int64_t> ad = staticExtents(info, 0, "A"), bd = staticExtents(info, 1, "B");
  int64_t M;
  if (op == I8Op::kGemm) {
    const ir::Attributes& at = info.node->attrs();
    p.transA = at.getInt("transA", 0) != 0;
    p.transB = at.getInt("transB", 0) != 0;
    p.alpha = at.getFloat("alpha", 1.0f);
    p.beta = at.getFloat("beta", 1.0f);
    p.K = p.transB ? bd[1] : bd[0];
    p.N = p.transB ? bd[0] : bd[1];
    M = p.transA ? ad[1] : ad[0];
  } else {
    p.K = bd[0];
    p.N = bd[1];
    ANVIL_CHECK(ad.back() == p.K, ErrorCode::kInvalidModel, info.node->label(), ": MatMul operands do not match");
    M = 1;
    for (size_t i = 0; i + 1 < ad.size(); ++i) M *= ad[i];
  }
  std::vector<int64_t> channels;
  readMixed(info, &p, &channels);
  readLowered(info, &p);
  // Feature f, value k: B[k][f] (ks = N), transposed B[f][k] (fs = K).
  const bool tB = p.transB != 0;
  prepareWeights(info, p, tB ? p.K : 1, tB ? 1 : p.N, tB ? 0 : 1, sx, p.alpha, channels, out);
  out->workspaceBytes = uint64_t(matmulLayout(i8Config(isa), p, M, p.K).total(p.tasks));
  out->setParams(p);
}

void runMatMul(const StepArgs& a) {
  const I8Params& p = a.paramsAs<I8Params>();
  const I8Config& c = i8Config(p.isa);
  const TensorView& A = a.in(0);
  TensorView& Y = a.out(0);
  const int64_t K = p.K, N = p.N;
  int64_t M;
  int64_t rsA = K, csA = 1;  // element (m, k) of A at m * rsA + k * csA
  if (p.op == I8Op::kGemm) {
    if (A.rank != 2) a.fail("Gemm operands must be 2-D");
    M = p.transA ? A.dims[1] : A.dims[0];
    if ((p.transA ? A.dims[0] : A.dims[1]) != K) a.fail("A differs from the prepared weight's K");
    if (p.transA) rsA = 1, csA = M;
  } else {
    if (A.rank < 1 || A.dims[A.rank - 1] != K) a.fail("A differs from the prepared weight's K");
    M = A.numel() / K;
  }
  if (Y.numel() != M * N) a.fail("the output extents differ from the product's");
  checkLoweredTypes(a, p);
  if (M == 0) return;
  const int T = tasksOf(a, p, double(M) * double(N) * double(K));
  const Layout l = matmulLayout(c, p, M, K);
  const Mixed mx = Mixed::of(a, p);
  if (a.counters && mx.on) a.counters[1].fetch_add(uint64_t(M * N), std::memory_order_relaxed);
  char* ws = workspace(a, l, T);
  auto* panels = reinterpret_cast<uint32_t*>(ws);
  auto* absPanels = reinterpret_cast<uint32_t*>(ws + l.absShared);
  const int64_t KG = groupsOf(c, K), panelWords = KG * c.mr, mPanels = ceilDiv(M, c.mr);
  const float* ap = A.as<float>();
  const uint8_t* aq = p.lowered & kLowX ? A.as<uint8_t>() : nullptr;  // a lowered A: its bytes as they are
  const float inv = p.invScale;
  const int32_t zp = p.zeroPoint;

  // 1. Quantize A into panels, a range of panels per task.
  {
    const int64_t n = std::min<int64_t>(T, mPanels);
    a.executor->parallelFor(n, [&](int64_t t) {
      uint8_t* rows = reinterpret_cast<uint8_t*>(ws + l.shared + t * l.slot);
      for (int64_t i = rangeBegin(mPanels, t, n); i < rangeBegin(mPanels, t + 1, n); ++i) {
        const int64_t m0 = i * c.mr, R = std::min<int64_t>(c.mr, M - m0);
        const int64_t ld = roundUp(K, 4);
        for (int64_t r = 0; r < R; ++r) {
          const float* src = ap + (m0 + r) * rsA;
          uint8_t* q = rows + r * ld;
          if (aq && csA == 1)
            std::memcpy(q, aq + (m0 + r) * rsA, size_t(K));
          else if (aq)
            for (int64_t k = 0; k < K; ++k) q[k] = aq[(m0 + r) * rsA + k * csA];
          else if (csA == 1)
            quantizeU8For(c, src, K, inv, zp, q);
          else
            for (int64_t k = 0; k < K; ++k) q[k] = quantizeU8One(src[k * csA], inv, zp);
          for (int64_t k = K; k < ld; ++k) q[k] = 0;
        }
        packRowPanel(c, rows, R, K, ld, panels + i * panelWords);
        if (mx.adaptive) absDeviationWords(c, panels + i * panelWords, panelWords, zp, absPanels + i * panelWords);
      }
    });
  }

  // 1b. fp32_channels: every row against the f32 columns, two rows at a time, before the tiles.
  const int64_t blockW = int64_t(c.nv) * c.lanes;
  auto* xsM = reinterpret_cast<float*>(ws + l.xsShared);
  if (mx.nStatic) {
    const int64_t pairs = ceilDiv(M, 2), n = std::min<int64_t>(T, pairs);
    a.executor->parallelFor(n, [&](int64_t t) {
      float* arow = reinterpret_cast<float*>(ws + l.shared + t * l.slot + l.slotMixed) + roundUp(int64_t(c.mr) * blockW, 16);
      const float* w[64];
      for (int64_t i = rangeBegin(pairs, t, n); i < rangeBegin(pairs, t + 1, n); ++i) {
        const int64_t m0 = 2 * i, rb = std::min<int64_t>(2, M - m0);
        for (int64_t r = 0; r < rb; ++r) {  // transposed A: one row at a time, gathered
          const float* rows[2];
          if (csA == 1) {
            rows[0] = ap + m0 * rsA;
            rows[1] = ap + (m0 + rb - 1) * rsA;
          } else {
            for (int64_t k = 0; k < K; ++k) arow[k] = ap[(m0 + r) * rsA + k * csA];
            rows[0] = arow;
          }
          const int rows2 = csA == 1 ? int(rb) : 1;
          for (int64_t s0 = 0; s0 < mx.nStatic; s0 += 64) {
            const int64_t ns = std::min<int64_t>(64, mx.nStatic - s0);
            for (int64_t s = 0; s < ns; ++s) w[s] = mx.weights(mx.staticList[s0 + s]);
            float* out = xsM + (m0 + (csA == 1 ? 0 : r)) * mx.nStatic + s0;
            if (hostAvx2())
              blockDotsAvx2(rows, rows2, w, ns, K, out, mx.nStatic);
            else
              blockDotsBase(rows, rows2, w, ns, K, out, mx.nStatic);
          }
          if (csA == 1) break;  // both rows done
        }
      }
    });
  }

  // 2. Tiles: items are (range of row panels, block of nv * lanes columns).
  const uint32_t* wp = a.blobs[0].as<uint32_t>();
  const int32_t* zc = a.blobs[1].as<int32_t>();
  const float* sc = a.blobs[2].as<float>();
  float* yp = Y.as<float>();
  const float* zp3 = residualOf(a, p);
  const uint8_t* zq = residualU8(a, p);
  uint8_t* yq = p.lowered & kLowY ? Y.as<uint8_t>() : nullptr;
  const bool low = loweredOut(p);
  const Epilogue epi = p.epi.get();
  const EpilogueRow row = epilogueRow(epi);
  const bool act = p.fused && (zp3 || zq || epi.act != Activation::kNone);
  // FusedMatMul: bias [N] (or one value) per column.
  const float* bias = nullptr;
  float rowBias = 0.0f;
  if (p.op == I8Op::kMatMul && p.fused && a.hasInput(2)) {
    const TensorView& bv = a.in(2);
    if (bv.numel() == N) bias = bv.as<float>();
    else if (bv.numel() == 1) rowBias = bv.as<float>()[0];
    else a.fail("bias must have N values or one");
  }
  // Gemm: beta * C, broadcast to [M, N].
  const GemmC gc = p.op == I8Op::kGemm ? gemmCOf(a, M, N) : GemmC{};
  const float* cp = gc.data;
  const int64_t rsC = gc.rowStride, csC = gc.colStride;
  // A column-bias C is added in the epilogue's vector pass (or the one-pass finish) instead
  // of a strided scalar loop over every output: the loop took half of a 64x64x256 FusedGemm
  // with Relu (15 us against 7 for the bare MatMul, AVX-512 VNNI).
  const bool gemmBias = gemmCIsColumnBias(gc, p.beta);
  if (gemmBias) bias = cp, cp = nullptr;
  const bool matmulEpi = (p.op == I8Op::kMatMul && p.fused && (bias || rowBias != 0.0f || act)) || gemmBias;
  LoweredFinish lf = loweredFinish(p, matmulEpi || act);
  lf.f.noNaN = !cp && std::isfinite(rowBias) && finishHasNoNaN(p, sc, N, bias, bias ? N : 0);
  const float beta = p.beta;
  const int64_t nBlocks = ceilDiv(N, blockW);
  int64_t mChunks = 1;
  if (nBlocks < 4 * T) mChunks = std::min(mPanels, ceilDiv(4 * T, nBlocks));
  const int64_t items = nBlocks * mChunks, n = std::min<int64_t>(T, items);
  a.executor->parallelFor(n, [&](int64_t t) {
    float* nbuf = reinterpret_cast<float*>(ws + l.shared + t * l.slot + l.slotMixed);
    float* arow = nbuf + roundUp(int64_t(c.mr) * blockW, 16);
    float* tmp = reinterpret_cast<float*>(ws + l.shared + t * l.slot + l.slotLow);  // loweredOut: the tile's f32
    float* zbuf = tmp + int64_t(c.mr) * blockW;                                        // and a row of Z in f32
    uint64_t recomputed = 0;
    for (int64_t it = rangeBegin(items, t, n); it < rangeBegin(items, t + 1, n); ++it) {
      const int64_t mc = it / nBlocks, nb = it % nBlocks;
      const int64_t n0 = nb * blockW, cols = std::min(blockW, N - n0);
      const int nvec = int(ceilDiv(cols, c.lanes));
      const int64_t gStride = roundUp(cols, c.lanes);
      const uint32_t* wb = wp + nb * KG * blockW;
      // The weight block the task's next item reads (blocks are contiguous; after the last
      // one, the first, for the next range of row panels): each row tile fetches its share.
      const uint32_t* wNext = nb + 1 < nBlocks ? wb + KG * blockW : wp;
      const int64_t i0 = rangeBegin(mPanels, mc, mChunks), i1 = rangeBegin(mPanels, mc + 1, mChunks);
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t m0 = i * c.mr, R = std::min<int64_t>(c.mr, M - m0);
        // A u8 Z or output: the tile into the task's scratch (L1), finished and stored row by row.
        float* y = low ? tmp : yp + m0 * N + n0;
        const int64_t ldy = low ? blockW : N;
        if (const I8TileNext tn = i8TileNext(p.isa, int(R), nvec))
          tn(KG, panels + i * panelWords, wb, gStride, nullptr, zc + n0, sc + n0, nullptr, y, ldy, int(cols),
             panelShare(wNext, int(blockW), KG, i - i0, i1 - i0));
        else
          i8Tile(p.isa, false, int(R), nvec)(KG, panels + i * panelWords, wb, gStride, nullptr, zc + n0, sc + n0, nullptr,
                                             y, ldy, int(cols));
        if (mx.on) {  // components in f32: replace their products before C, bias and epilogue
          if (mx.adaptive)
            i8Tile(p.isa, false, int(R), nvec)(KG, absPanels + i * panelWords, mx.absW + nb * KG * blockW, gStride,
                                               nullptr, mx.zeros + n0, mx.ones + n0, nullptr, nbuf, blockW, int(cols));
          const bool fast = mx.adaptive && mx.productOnly();
          const bool addBias = (p.op == I8Op::kMatMul && p.fused) || gemmBias;
          for (int64_t r = 0; r < R; ++r) {
            const int64_t m = m0 + r;
            float* yr = y + r * N;
            const float* xr = nullptr;  // the f32 row of A, gathered on first use
            alignas(8) uint8_t flags[64] = {};
            float actIn[64];  // the activation's argument (the byte path)
            float crow[64];   // beta C of this row's columns
            // Where the host has AVX2: the filter straight to bits, the argument formed in
            // registers (FilterRow).
            FilterRow fr;
            fr.nsum = nbuf + r * blockW;
            fr.v0 = yr;
            fr.scales = sc + n0;
            fr.hasBias = addBias;
            fr.biasVec = bias ? bias + n0 : nullptr;
            fr.bias = rowBias;
            fr.z = zp3 && epi.residual && epi.addFirst ? zp3 + m * N + n0 : nullptr;
            fr.n = cols;
            if (cp && mx.adaptive && !fast) {
              for (int64_t j = 0; j < cols; ++j) crow[j] = beta * cp[m * rsC + (n0 + j) * csC];
              fr.c = crow;
            }
            uint64_t cand = 0, sure = 0;
            const bool bits = mx.adaptive && (fast ? mx.productBits(fr.nsum, yr, sc + n0, 0.0f, cols, &cand)
                                                   : mx.filterBits(fr, &cand, &sure));
            if (!bits && fast) {
              mx.flagCols(nbuf + r * blockW, yr, sc + n0, cols, flags);
            } else if (!bits && mx.adaptive) {
              // The argument in the epilogue's order (C, bias, Z), one branch-free loop each.
              std::memcpy(actIn, yr, size_t(cols) * sizeof(float));
              if (cp)
                for (int64_t j = 0; j < cols; ++j) actIn[j] += crow[j];
              if (addBias && bias)
                for (int64_t j = 0; j < cols; ++j) actIn[j] += bias[n0 + j];
              else if (addBias)
                for (int64_t j = 0; j < cols; ++j) actIn[j] += rowBias;
              if (zp3 && epi.residual && epi.addFirst)
                for (int64_t j = 0; j < cols; ++j) actIn[j] += zp3[m * N + n0 + j];
              mx.maybeRow(nbuf + r * blockW, yr, sc + n0, 0.0f, actIn, cols, flags);
            }
            if (!bits) cand = flagBits(flags, cols, &sure);
            if (mx.nStatic)  // computed in 1b; never tested
              for (int64_t j = 0; j < cols; ++j)
                if (mx.isStatic[n0 + j]) {
                  yr[j] = p.alpha * xsM[m * mx.nStatic + mx.isStatic[n0 + j] - 1];
                  cand &= ~(uint64_t(1) << j);
                  ++recomputed;
                }
            // The candidates as bits (few, at random places: a byte loop mispredicted its
            // branches), then each one's exact test where it is not certain.
            for (; cand; cand &= cand - 1) {
              const int64_t j = ctz64(cand), f = n0 + j;
              if (!fast && !(sure >> j & 1) && !mx.flag(nbuf[r * blockW + j], yr[j], sc[f], bits ? fr.arg(j) : actIn[j]))
                continue;
              if (!xr) {
                if (csA == 1) {
                  xr = ap + m * rsA;
                } else {
                  for (int64_t k = 0; k < K; ++k) arow[k] = ap[m * rsA + k * csA];
                  xr = arow;
                }
              }
              yr[j] = p.alpha * dotF32(xr, mx.weights(f), K);
              ++recomputed;
            }
          }
        }
        if (low && lf.fast) {  // beta C, then one pass: the rows' epilogue and the store
          if (cp)
            for (int64_t r = 0; r < R; ++r) {
              float* yr = y + r * ldy;
              const float* cr = cp + (m0 + r) * rsC + n0 * csC;
              for (int64_t j = 0; j < cols; ++j) yr[j] += beta * cr[j * csC];
            }
          const int64_t off = m0 * N + n0;
          finishTile(lf.f, y, ldy, int(R), cols, matmulEpi ? &rowBias : nullptr, 0, matmulEpi && bias ? bias + n0 : nullptr,
                     zp3 ? zp3 + off : nullptr, zq ? zq + off : nullptr, N, yq ? yq + off : nullptr,
                     yq ? nullptr : yp + off, N);
          continue;
        }
        for (int64_t r = 0; r < R; ++r) {
          float* yr = y + r * ldy;
          const float* z = zp3 ? zp3 + (m0 + r) * N + n0 : nullptr;
          if (cp) {
            const float* cr = cp + (m0 + r) * rsC + n0 * csC;
            for (int64_t j = 0; j < cols; ++j) yr[j] += beta * cr[j * csC];
          }
          if (zq) {
            dequantizeU8(zq + (m0 + r) * N + n0, cols, p.zScale, p.zZero, zbuf);
            z = zbuf;
          }
          if (matmulEpi)
            row(epi, yr, z, bias ? bias + n0 : nullptr, rowBias, cols);
          else if (act)
            row(epi, yr, z, nullptr, 0.0f, cols);
          if (yq)
            quantizeU8For(c, yr, cols, p.yInvScale, p.yZero, yq + (m0 + r) * N + n0);
          else if (low)
            std::memcpy(yp + (m0 + r) * N + n0, yr, size_t(cols) * 4);
        }
      }
    }
    if (a.counters && recomputed) a.counters[0].fetch_add(recomputed, std::memory_order_relaxed);
  });
}

// ---------------------------------------------------------------------------------------
// Conv / FusedConv (2-D, one group)

bool supportsConv(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !rankIs(in[0], 4, 4) || !rankIs(in[1], 4, 4) || !in[1].shape.isStatic()) return false;
  if (!absent(in, 2) && (!isF32(in[2]) || !rankIs(in[2], 1, 1))) return false;
  ConvAttrs a;
  if (!convAttrsOf(n, in[1].shape, &a) || a.group != 1) return false;  // grouped/depthwise stay f32
  const ir::Shape& w = in[1].shape;
  return int8LinearSupports(n, in, w[1].value() * w[2].value() * w[3].value(), w[0].value(), 0);
}

bool supportsFusedConv(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  return supportsConv(n, in) && int8FusedEpilogueSupports(n, in);
}

// The direct form: per image the blocked padded image split by stride phase, [CG][sH * sW]
// [Hs][Ws] words (quantizePhases), and J = (OH - 1) * Ws + OW positions j = oh * Ws + ow
// (those with ow >= OW are computed and dropped).
struct DirectGeom {
  int64_t CG, Hs, Ws, J, imageWords;
};

DirectGeom directGeom(const I8Config& c, const Conv2dGeom& g) {
  DirectGeom d;
  d.CG = ceilDiv(g.C, c.kg);
  d.Hs = ceilDiv(g.pt + g.H + g.pb, g.sH);
  d.Ws = ceilDiv(g.pl + g.W + g.pr, g.sW);
  d.J = (g.OH - 1) * d.Ws + g.OW;
  d.imageWords = d.CG * g.sH * g.sW * d.Hs * d.Ws;
  return d;
}

// Positions per work item of the direct form (a multiple of every family's tile width).
constexpr int64_t kDirectChunk = 192;

// Shared: the word offset of each K group (channel group, kh, kw) in an image, computed per
// run from its extents, then the blocked images with a tile's worth of slack (the last
// positions' vectors read past the last valid word). Per task: a tile's outputs.
int64_t offsetTableBytes(const DirectGeom& d, const Conv2dGeom& g) { return roundUp(d.CG * g.kH * g.kW * 4, 64); }

Layout directLayout(const I8Config& c, const I8Params& p, const Conv2dGeom& g, const DirectGeom& d) {
  Layout l;
  const int64_t images = roundUp((g.N * d.imageWords + 64) * 4, 64);
  l.shared = offsetTableBytes(d, g) + images;
  if (p.adaptive) l.absShared = l.shared, l.shared += images;
  if (p.adaptive) l.xtShared = l.shared, l.shared += channelsLastBytes(g);
  l.xsShared = l.shared, l.shared += staticPlanesBytes(p, g);
  if (p.nStatic) l.xpShared = l.shared, l.shared += roundUp(paddedGeom(g).words * 4, 64);
  l.slot = roundUp(std::max<int64_t>(int64_t(c.mr) * c.nv * c.lanes, g.W + 8) * 4, 64);
  addMixedSlot(c, p, int64_t(c.nv) * c.lanes, &l);
  addLoweredSlot(c, p, kDirectChunk, &l);  // a panel's rows over a chunk of positions
  return l;
}

// Output pixels per 1x1 tile: its tile stays near 128 KB (L2), at most 480, a multiple of
// 48 (whole register tiles of every family). With several tasks the image's tiles come in
// a multiple of them, of equal width up to a vector (16 pixels): in 48-pixel multiples
// resnet50's 784-pixel layers split into 480 + 304 (K = 128) or 3 x 240 + 64 (K = 512)
// pixels and two tasks ran them 1.55-1.6x faster than one.
int64_t pixelTileOf(const I8Config& c, int64_t K, int64_t P, int tasks) {
  const int64_t bytesPerPixel = groupsOf(c, K) * 4;
  const int64_t most = std::clamp<int64_t>((128 * 1024 / bytesPerPixel) / 48 * 48, 48, 480);
  if (tasks <= 1) return std::min(most, roundUp(P, 48));
  const int64_t tiles = roundUp(ceilDiv(P, most), tasks);
  return std::min(most, roundUp(ceilDiv(P, tiles), 16));
}

void prepareConv(I8Isa isa, bool fused, const PrepareInfo& info, Prepared* out) {
  I8Params p;
  p.op = I8Op::kConv;
  p.isa = isa;
  p.tasks = std::max(1, info.threads);
  if (fused) readFused(info, &p);
  float sx;
  ANVIL_CHECK(activationQuant(*info.node, &sx, &p.zeroPoint), ErrorCode::kInvalidModel, info.node->label(),
              ": input 0 has no per-tensor u8 quantization");
  p.invScale = 1.0f / sx;
  ANVIL_CHECK(convAttrsOf(*info.node, info.maxTypes[1].shape, &p.conv) && p.conv.group == 1,
              ErrorCode::kInvalidModel, info.node->label(), ": not a 2-D single-group Conv");
  const std::vector<int64_t> xd = staticExtents(info, 0, "X"), wd = staticExtents(info, 1, "W");
  Conv2dGeom g;
  ANVIL_CHECK(conv2dGeometry(p.conv, xd.data(), wd[0], &g) && wd[1] == g.C, ErrorCode::kInvalidModel,
              info.node->label(), ": X ", info.maxTypes[0].str(), " and W ", info.maxTypes[1].str(),
              " do not fit the Conv attributes");
  const I8Config& c = i8Config(isa);
  p.K = g.C * g.kH * g.kW;
  p.N = g.M;
  // No im2col: against tiles packed from an im2col of the quantized image, on VNNI, 3x3
  // 64 -> 64 at 56x56 0.96 -> 0.49 ms, 3x3 stride 2 128 -> 128 at 28x28 0.31 -> 0.16 ms.
  // An unpadded 1x1 stride-1 Conv quantizes tiles of its channel rows instead (runConv).
  p.direct = !(g.kH == 1 && g.kW == 1 && g.sH == 1 && g.sW == 1 && g.pt == 0 && g.pl == 0 && g.pb == 0 && g.pr == 0);
  p.pixelTile = pixelTileOf(c, p.K, g.OH * g.OW, p.tasks);
  std::vector<int64_t> channels;
  readMixed(info, &p, &channels);
  readLowered(info, &p);
  prepareWeights(info, p, p.K, 1, 0, sx, 1.0f, channels, out);
  if (p.direct) {
    const DirectGeom d = directGeom(c, g);
    ANVIL_CHECK(d.imageWords < (int64_t(1) << 31), ErrorCode::kUnsupported, info.node->label(),
                ": the input is too large for the INT8 Conv's 32-bit offsets");
    out->workspaceBytes = uint64_t(directLayout(c, p, g, d).total(p.tasks));
  } else {
    out->workspaceBytes = uint64_t(pointwiseLayout(c, p, g, p.K, p.pixelTile).total(p.tasks));
  }
  out->setParams(p);
}

// A Conv's bias and fused epilogue. Without an activation or residual (act false) the
// tiles add the bias in their store; else apply() runs the f32 kernels' row on output rows
// [co0, co1) over pixels [p0, p0 + np) of image img, the bias as its rowBias.
struct ConvEpilogue {
  const float* bias;
  const float* zres;
  const uint8_t* zq;  // a u8 Z (then zres is null)
  ir::linear::Epilogue epi;
  EpilogueRow row;
  bool act;
  LoweredFinish low;
  void apply(float* yp, int64_t Co, int64_t P, int64_t img, int64_t co0, int64_t co1, int64_t p0, int64_t np) const {
    for (int64_t co = co0; co < co1; ++co)
      row(epi, yp + (img * Co + co) * P + p0, zres ? zres + (img * Co + co) * P + p0 : nullptr, nullptr,
          bias ? bias[co] : 0.0f, np);
  }
  // loweredOut: np outputs of channels [co0, co0 + R) at pixel p0 of image img, the
  // tile's f32 in buf (row r at + r * ldb; the bias added there unless act): the f32 row
  // of apply() and the store into Y (f32, or requantized to u8) in one pass (finishTile),
  // or where its activation is not one finishTile computes, row by row as below.
  void finish(const I8Config& c, const I8Params& p, float* buf, int64_t ldb, int64_t R, float* zbuf, void* y,
              int64_t Co, int64_t P, int64_t img, int64_t co0, int64_t p0, int64_t np) const {
    const int64_t off = (img * Co + co0) * P + p0;
    if (low.fast) {
      const bool u8 = p.lowered & kLowY;
      finishTile(low.f, buf, ldb, int(R), np, bias ? bias + co0 : nullptr, 1, nullptr, zres ? zres + off : nullptr,
                 zq ? zq + off : nullptr, P, u8 ? static_cast<uint8_t*>(y) + off : nullptr,
                 u8 ? nullptr : static_cast<float*>(y) + off, P);
      return;
    }
    for (int64_t r = 0; r < R; ++r) finishOne(c, p, buf + r * ldb, zbuf, y, Co, P, img, co0 + r, p0, np);
  }
  void finishOne(const I8Config& c, const I8Params& p, float* buf, float* zbuf, void* y, int64_t Co, int64_t P,
                 int64_t img, int64_t co, int64_t p0, int64_t np) const {
    const int64_t off = (img * Co + co) * P + p0;
    if (act) {
      const float* z = zres ? zres + off : nullptr;
      if (zq) {
        dequantizeU8(zq + off, np, p.zScale, p.zZero, zbuf);
        z = zbuf;
      }
      row(epi, buf, z, nullptr, bias ? bias[co] : 0.0f, np);
    }
    if (p.lowered & kLowY)
      quantizeU8For(c, buf, np, p.yInvScale, p.yZero, static_cast<uint8_t*>(y) + off);
    else
      std::memcpy(static_cast<float*>(y) + off, buf, size_t(np) * 4);
  }
};

ConvEpilogue convEpilogue(const StepArgs& a, const I8Params& p, int64_t M) {
  ConvEpilogue e;
  e.bias = nullptr;
  if (a.hasInput(2)) {
    if (a.in(2).numel() != M) a.fail("B must have one value per output channel");
    e.bias = a.in(2).as<float>();
  }
  e.zres = residualOf(a, p);
  e.zq = residualU8(a, p);
  e.epi = p.epi.get();
  e.row = epilogueRow(e.epi);
  // Mixed: the tiles leave the products bare (f32 components replace some) and the row
  // adds the bias: the same f32 add as the tiles' store.
  e.act = (p.fused && (e.zres || e.zq || e.epi.act != Activation::kNone)) || p.mixed;
  e.low = loweredFinish(p, e.act);
  e.low.f.noNaN = finishHasNoNaN(p, a.blobs[2].as<float>(), M, e.bias, e.bias ? M : 0);
  return e;
}


// Conv components in f32 for one tile's output: output channels [co0, co0 + R) over
// positions [j0, j0 + cols) of image img at buf[r * ldb + j - j0]; position j is pixel
// (j / Ws, j % Ws), valid when j % Ws < OW. nbuf: the adaptive N tile (stride ldn). xt: the
// input channels-last; a component sums its taps in (kh, kw) order, each a dotF32 over C.
// Returns the components recomputed.
// Channels [u0, u1) (image * C + ci) of the padded input.
void padInput(const Conv2dGeom& g, const PaddedGeom& q, const float* x, int64_t u0, int64_t u1, float* xp) {
  for (int64_t u = u0; u < u1; ++u) {
    float* dst = xp + u * q.Hp * q.Wp;
    std::fill(dst, dst + g.pt * q.Wp, 0.0f);
    for (int64_t h = 0; h < g.H; ++h) {
      float* row = dst + (g.pt + h) * q.Wp;
      std::fill(row, row + g.pl, 0.0f);
      std::memcpy(row + g.pl, x + (u * g.H + h) * g.W, size_t(g.W) * 4);
      std::fill(row + g.pl + g.W, row + q.Wp, 0.0f);
    }
    std::fill(dst + (g.pt + g.H) * q.Wp, dst + q.Hp * q.Wp, 0.0f);
  }
  if (u1 == g.N * g.C) std::fill(xp + g.N * g.C * q.Hp * q.Wp, xp + q.words, 0.0f);  // the slack
}

// One output row of an fp32_channels plane: out[ow] = sum over (ci, kh, kw) in that order of
// w x (x the padded image of one input), the pixels as the vector: blocks of kAcc vectors of
// L (independent sums: the adds' latency), then single vectors; at unit stride straight
// loads, else lanes gathered. A last partial vector computes a whole one and stores its
// valid lanes. Every pixel's sums are in the same order: the bits do not depend on the split.
template <typename V, int L, int kAcc, bool kUnit>
__attribute__((always_inline)) inline void staticRow(const Conv2dGeom& g, const PaddedGeom& q, const float* xp,
                                                     const float* wr, int64_t oh, float* out) {
  const int64_t C = g.C, kH = g.kH, kW = g.kW, dH = g.dH, dW = g.dW, sW = g.sW, Hp = q.Hp, Wp = q.Wp, OW = g.OW;
  const int64_t rowOff = oh * g.sH;
  auto vectors = [&](int64_t ow0, auto nAcc, int64_t valid) {
    constexpr int A = decltype(nAcc)::value;
    V acc[A];
#pragma GCC unroll 8
    for (int i = 0; i < A; ++i) acc[i] = V{};
    for (int64_t ci = 0; ci < C; ++ci)
      for (int64_t kh = 0; kh < kH; ++kh) {
        const float* xr = xp + (ci * Hp + rowOff + kh * dH) * Wp + ow0 * sW;
        const float* wk = wr + kh * kW * C + ci;
        for (int64_t kw = 0; kw < kW; ++kw) {
          const float w = wk[kw * C];
          const float* xk = xr + kw * dW;
#pragma GCC unroll 8
          for (int i = 0; i < A; ++i) {
            V xv;
            if (kUnit) {
              std::memcpy(&xv, xk + i * L, sizeof(V));
            } else {
#pragma GCC unroll 8
              for (int l = 0; l < L; ++l) xv[l] = xk[(i * L + l) * sW];
            }
            acc[i] += xv * w;
          }
        }
      }
    std::memcpy(out + ow0, acc, size_t(valid) * 4);
  };
  int64_t ow = 0;
  for (; ow + L * kAcc <= OW; ow += L * kAcc) vectors(ow, std::integral_constant<int, kAcc>{}, L * kAcc);
  for (; ow < OW; ow += L) vectors(ow, std::integral_constant<int, 1>{}, std::min<int64_t>(L, OW - ow));
}

using F4 = float __attribute__((vector_size(16)));
using F8 = float __attribute__((vector_size(32)));

void staticRowBase(const Conv2dGeom& g, const PaddedGeom& q, const float* xp, const float* wr, int64_t oh,
                   float* out) {
  if (g.sW == 1)
    staticRow<F4, 4, 6, true>(g, q, xp, wr, oh, out);
  else
    staticRow<F4, 4, 6, false>(g, q, xp, wr, oh, out);
}
// Where the host has AVX2 (as epilogueRow picks its row by the host): twice the lanes of the
// baseline. The same choice for every family and thread count on a host.
__attribute__((target("avx2,fma"))) void staticRowAvx2(const Conv2dGeom& g, const PaddedGeom& q, const float* xp,
                                                       const float* wr, int64_t oh, float* out) {
  if (g.sW == 1)
    staticRow<F8, 8, 6, true>(g, q, xp, wr, oh, out);
  else
    staticRow<F8, 8, 6, false>(g, q, xp, wr, oh, out);
}

// Output rows [u0, u1) (image, oh, static channel) of the fp32_channels' planes xs [N][nStatic]
// [OH][OW], a row at a time (per tile, 48-wide runs cost 5x more).
void convStatic(const Mixed& mx, const Conv2dGeom& g, const float* xp, int64_t u0, int64_t u1, float* xs) {
  static const bool kAvx2 = runtime::hostHas("avx2") && runtime::hostHas("fma");
  const PaddedGeom q = paddedGeom(g);
  for (int64_t u = u0; u < u1; ++u) {
    // u = (image, oh, static channel): the channels of one row reuse its input rows from L1.
    const int64_t s = u % mx.nStatic, oh = (u / mx.nStatic) % g.OH, img = u / (g.OH * mx.nStatic);
    const float* wr = mx.weights(mx.staticList[s]);
    (kAvx2 ? staticRowAvx2 : staticRowBase)(g, q, xp + img * g.C * q.Hp * q.Wp, wr, oh,
                                            xs + ((img * mx.nStatic + s) * g.OH + oh) * g.OW);
  }
}

// Pads the input, then runs convStatic over every row, a range per task.
void convStaticAll(const StepArgs& a, const Mixed& mx, const Conv2dGeom& g, int T, float* xp, float* xs) {
  if (!mx.nStatic) return;
  const PaddedGeom q = paddedGeom(g);
  const int64_t chans = g.N * g.C, nc = std::min<int64_t>(T, chans);
  const float* x = a.in(0).as<float>();
  a.executor->parallelFor(nc, [&](int64_t t) { padInput(g, q, x, rangeBegin(chans, t, nc), rangeBegin(chans, t + 1, nc), xp); });
  const int64_t rows = g.N * mx.nStatic * g.OH, n = std::min<int64_t>(T, rows);
  a.executor->parallelFor(n, [&](int64_t t) { convStatic(mx, g, xp, rangeBegin(rows, t, n), rangeBegin(rows, t + 1, n), xs); });
}

// y[i] = x[i] + b for i < n, four at a time (the loop as written stays scalar at -O2).
inline void addScalar(const float* x, int64_t n, float b, float* y) {
  using F4 = float __attribute__((vector_size(16)));
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    F4 v;
    std::memcpy(&v, x + i, 16);
    v += b;
    std::memcpy(y + i, &v, 16);
  }
  for (; i < n; ++i) y[i] = x[i] + b;
}

// Calls fn(pixel, count, position) for each run of valid pixels among positions [j0, j1)
// (positions: rows of Ws, the first OW of each a pixel).
template <class F>
void segmentsOf(int64_t Ws, int64_t OW, int64_t j0, int64_t j1, F&& fn) {
  for (int64_t oh = j0 / Ws; oh * Ws < j1; ++oh) {
    const int64_t b = std::max(j0, oh * Ws), e = std::min(j1, oh * Ws + OW);
    if (b < e) fn(oh * OW + (b - oh * Ws), e - b, b);
  }
}

uint64_t convFix(const Mixed& mx, const Conv2dGeom& g, const ConvEpilogue& ep, const float* xs, const float* xt,
                 const float* sc, int64_t Ws, float* buf, int64_t ldb, const float* nbuf, int64_t ldn, int64_t img,
                 int64_t co0, int64_t R, int64_t j0, int64_t cols) {
  uint64_t n = 0;
  const int64_t P = g.OH * g.OW;
  const bool addZ = ep.zres && mx.epi.residual && mx.epi.addFirst;
  // fp32_channels: copied from their f32 planes (convStatic).
  for (int64_t r = 0; r < R; ++r) {
    const int64_t co = co0 + r;
    if (!mx.isStatic[co]) continue;
    const float* plane = xs + (img * mx.nStatic + mx.isStatic[co] - 1) * P;
    for (int64_t jj = 0; jj < cols; ++jj) {
      const int64_t oh = (j0 + jj) / Ws, ow = (j0 + jj) % Ws;
      if (ow >= g.OW) continue;
      buf[r * ldb + jj] = plane[oh * g.OW + ow];
      ++n;
    }
  }
  if (!mx.adaptive) return n;
  // The product test without an activation (the common case) for the whole tile first, in a
  // loop over each row that vectorizes: flags[r][jj]; otherwise the row filter's candidates,
  // tested exactly below.
  const bool fast = mx.productOnly();
  alignas(8) uint8_t flags[8][64];
  float actIn[8][64];  // the activation's argument (the slow test)
  uint64_t cand[8], sure[8], any = 0, valid = 0;
  for (int64_t jj = 0, ow = j0 % Ws; jj < cols; ++jj, ow = ow + 1 == Ws ? 0 : ow + 1)
    if (ow < g.OW) valid |= uint64_t(1) << jj;
  // Where the host has AVX2: the filter's bits in one pass per row, the argument formed in
  // registers (and again, the same float adds, for the few exact tests); a residual added
  // first is gathered per row into the tile's positions (zeros past OW).
  float zrow[8][64];
  auto gatherZ = [&](int64_t r) -> const float* {
    if (!addZ) return nullptr;
    const float* zr = ep.zres + (img * g.M + co0 + r) * P;
    std::fill_n(zrow[r], cols, 0.0f);
    segmentsOf(Ws, g.OW, j0, j0 + cols, [&](int64_t px, int64_t cnt, int64_t jb) {
      std::memcpy(zrow[r] + (jb - j0), zr + px, size_t(cnt) * sizeof(float));
    });
    return zrow[r];
  };
  auto rowOf = [&](int64_t r) {
    FilterRow f;
    f.nsum = nbuf + r * ldn;
    f.v0 = buf + r * ldb;
    f.scale = sc[co0 + r];
    f.hasBias = ep.bias != nullptr;
    f.bias = ep.bias ? ep.bias[co0 + r] : 0.0f;
    f.z = gatherZ(r);
    f.n = cols;
    return f;
  };
  FilterRow frow[8];
  auto rowBits = [&](int64_t r) {
    if (fast) return mx.productBits(nbuf + r * ldn, buf + r * ldb, nullptr, sc[co0 + r], cols, &cand[r]);
    frow[r] = rowOf(r);
    return mx.filterBits(frow[r], &cand[r], &sure[r]);
  };
  const bool bits = R > 0 && rowBits(0);
  for (int64_t r = 0; r < R && bits; ++r) {
    const int64_t co = co0 + r;
    if (r > 0) rowBits(r);
    if (mx.nStatic && mx.isStatic[co]) cand[r] = 0;  // done above
    cand[r] &= valid;
    any |= cand[r];
  }
  for (int64_t r = 0; r < R && !bits; ++r) {
    const int64_t co = co0 + r;
    if (fast) {
      mx.flagRow(nbuf + r * ldn, buf + r * ldb, sc[co], cols, flags[r]);
    } else {
      // The argument in the epilogue's order (bias, then Z), branch-free loops.
      float* ar = actIn[r];
      const float* br = buf + r * ldb;
      if (ep.bias)
        addScalar(br, cols, ep.bias[co], ar);
      else
        std::memcpy(ar, br, size_t(cols) * sizeof(float));
      if (addZ) {
        const float* zr = ep.zres + (img * g.M + co) * P;
        segmentsOf(Ws, g.OW, j0, j0 + cols, [&](int64_t px, int64_t cnt, int64_t jb) {
          for (int64_t i = 0; i < cnt; ++i) ar[jb - j0 + i] += zr[px + i];
        });
      }
      mx.maybeRow(nbuf + r * ldn, br, nullptr, sc[co], ar, cols, flags[r]);
    }
    if (mx.nStatic && mx.isStatic[co]) std::fill_n(flags[r], cols, uint8_t(0));  // done above
  }
  const float* xi = xt + img * g.H * g.W * g.C;
  const auto dots = hostAvx2() ? convDotsAvx2 : convDotsBase;
  // Per row the candidates as bits, then the pixels with any (positions past OW hold none
  // that count: their flags are dropped here).
  for (int64_t r = 0; r < R && !bits; ++r) {
    cand[r] = flagBits(flags[r], cols, &sure[r]) & valid;
    any |= cand[r];
  }
  for (; any; any &= any - 1) {
    const int64_t jj = ctz64(any), oh = (j0 + jj) / Ws, ow = (j0 + jj) % Ws;
    int rows[8];  // the flagged rows of this pixel (R <= mr <= 8)
    const float* wr[8];
    int nf = 0;
    for (int64_t r = 0; r < R; ++r) {
      if (!(cand[r] >> jj & 1)) continue;
      if (!fast && !(sure[r] >> jj & 1)) {
        const float arg = bits ? frow[r].arg(jj) : actIn[r][jj];
        if (!mx.flag(nbuf[r * ldn + jj], buf[r * ldb + jj], sc[co0 + r], arg)) continue;
      }
      rows[nf] = int(r);
      wr[nf++] = mx.weights(co0 + r);
    }
    if (!nf) continue;
    // The flagged channels of this pixel, together (convDotImpl).
    float v[8];
    dots(g, xi, oh, ow, wr, nf, v);
    for (int i = 0; i < nf; ++i) buf[rows[i] * ldb + jj] = v[i];
    n += uint64_t(nf);
  }
  return n;
}

void runConvDirect(const StepArgs& a, const I8Params& p, const Conv2dGeom& g) {
  const I8Config& c = i8Config(p.isa);
  const DirectGeom d = directGeom(c, g);
  const int64_t P = g.OH * g.OW, Co = p.N, KG = d.CG * g.kH * g.kW;
  const int T = tasksOf(a, p, double(a.out(0).numel()) * double(p.K));
  const Layout l = directLayout(c, p, g, d);
  char* ws = workspace(a, l, T);
  const Mixed mx = Mixed::of(a, p);
  if (a.counters && mx.on) a.counters[1].fetch_add(uint64_t(a.out(0).numel()), std::memory_order_relaxed);
  if (d.imageWords >= (int64_t(1) << 31)) a.fail("the input is too large for the INT8 Conv's 32-bit offsets");
  auto* goff = reinterpret_cast<int32_t*>(ws);
  for (int64_t cg = 0, i = 0; cg < d.CG; ++cg)
    for (int64_t kh = 0; kh < g.kH; ++kh)
      for (int64_t kw = 0; kw < g.kW; ++kw) {
        const int64_t phase = cg * g.sH * g.sW + (kh * g.dH) % g.sH * g.sW + (kw * g.dW) % g.sW;
        goff[i++] = int32_t((phase * d.Hs + (kh * g.dH) / g.sH) * d.Ws + (kw * g.dW) / g.sW);
      }
  auto* xb = reinterpret_cast<uint32_t*>(ws + offsetTableBytes(d, g));
  auto* xa = reinterpret_cast<uint32_t*>(ws + l.absShared);  // adaptive: |q_x - z_x| images
  // 1. The blocked padded images: items (image, channel group, range of padded rows); the
  // rows split only where there are fewer (image, group) units than tasks (a stem's 3
  // channels are one group: one task quantized all of resnet50's 224x224 input).
  {
    const float* xp = a.in(0).as<float>();
    const uint8_t* xq = p.lowered & kLowX ? a.in(0).as<uint8_t>() : nullptr;
    const int64_t units = g.N * d.CG, rowsAll = phaseRows(g.H, g.pt, g.pb, g.sH);
    const int64_t parts = units >= T || mx.adaptive ? 1 : std::min<int64_t>(ceilDiv(T, units), rowsAll);
    const int64_t items = units * parts, n = std::min<int64_t>(T, items);
    a.executor->parallelFor(n, [&](int64_t t) {
      auto* scratch = reinterpret_cast<uint32_t*>(ws + l.shared + t * l.slot);
      for (int64_t it = rangeBegin(items, t, n); it < rangeBegin(items, t + 1, n); ++it) {
        const int64_t u = it / parts, part = it % parts, img = u / d.CG, cg = u % d.CG, c0 = cg * c.kg;
        const int64_t off = img * d.imageWords + cg * g.sH * g.sW * d.Hs * d.Ws;
        const int64_t r0 = rangeBegin(rowsAll, part, parts), r1 = rangeBegin(rowsAll, part + 1, parts);
        if (xq)
          packPhasesU8(c, xq + (img * g.C + c0) * g.H * g.W, std::min<int64_t>(c.kg, g.C - c0), g.H, g.W, g.pt, g.pb,
                       g.pl, g.pr, g.sH, g.sW, p.zeroPoint, xb + off, scratch, r0, r1);
        else
          quantizePhases(c, xp + (img * g.C + c0) * g.H * g.W, std::min<int64_t>(c.kg, g.C - c0), g.H, g.W, g.pt,
                         g.pb, g.pl, g.pr, g.sH, g.sW, p.invScale, p.zeroPoint, xb + off, scratch, r0, r1);
        // (The adaptive form's |q - z| words are of the whole block: its images are not split.)
        if (mx.adaptive) absDeviationWords(c, xb + off, g.sH * g.sW * d.Hs * d.Ws, p.zeroPoint, xa + off);
      }
    });
  }
  // 2. Items: (image, chunk of positions, range of output-channel panels).
  const uint32_t* wp = a.blobs[0].as<uint32_t>();
  const int32_t* zc = a.blobs[1].as<int32_t>();
  const float* sc = a.blobs[2].as<float>();
  float* yp = a.out(0).as<float>();
  const ConvEpilogue ep = convEpilogue(a, p, g.M);
  const bool low = loweredOut(p) || foldedFinish(p);
  const bool inPlace = d.Ws == g.OW && !low;  // positions are pixels: tiles store straight into Y
  // Chunks of kDirectChunk positions; with several tasks, a multiple of them, of equal width
  // up to a vector (bounds on vector boundaries): 28x28's 838 positions went 4 x 192 + 70, 3
  // chunks to one task and 2 to the other (576 positions against 262).
  const int64_t chunks = T == 1 ? ceilDiv(d.J, kDirectChunk) : roundUp(ceilDiv(d.J, kDirectChunk - c.lanes), T);
  auto bound = [&](int64_t k) {
    return T == 1 ? std::min(d.J, k * kDirectChunk)
                  : k >= chunks ? d.J : std::min(d.J, roundUp(rangeBegin(d.J, k, chunks), int64_t(c.lanes)));
  };
  const int64_t coPanels = ceilDiv(Co, c.mr), units = g.N * chunks;
  const int64_t coChunks = units >= 2 * T ? 1 : std::min(coPanels, ceilDiv(2 * T, units));
  const int64_t items = units * coChunks, n = std::min<int64_t>(T, items);
  const int64_t groupW = int64_t(c.nv) * c.lanes;
  const float* tb = ep.act ? nullptr : ep.bias;
  // Calls fn(p, count, j) for each run of valid pixels among positions [j0, j1).
  auto segments = [&](int64_t j0, int64_t j1, auto&& fn) { segmentsOf(d.Ws, g.OW, j0, j1, fn); };
  auto* xt = reinterpret_cast<float*>(ws + l.xtShared);
  if (mx.adaptive) {  // the input channels-last for the adaptive components, a range of rows per task
    const int64_t rows = g.N * g.H, nr = std::min<int64_t>(T, rows);
    a.executor->parallelFor(nr, [&](int64_t t) {
      channelsLast(g, a.in(0).as<float>(), rangeBegin(rows, t, nr), rangeBegin(rows, t + 1, nr), xt);
    });
  }
  auto* xs = reinterpret_cast<float*>(ws + l.xsShared);
  convStaticAll(a, mx, g, T, reinterpret_cast<float*>(ws + l.xpShared), xs);
  a.executor->parallelFor(n, [&](int64_t t) {
    auto* tmp = reinterpret_cast<float*>(ws + l.shared + t * l.slot);
    float* nbuf = reinterpret_cast<float*>(ws + l.shared + t * l.slot + l.slotMixed);
    float* ctile = reinterpret_cast<float*>(ws + l.shared + t * l.slot + l.slotLow);  // low: [mr][kDirectChunk]
    float* zbuf = ctile + int64_t(c.mr) * kDirectChunk;
    uint64_t recomputed = 0;
    for (int64_t it = rangeBegin(items, t, n); it < rangeBegin(items, t + 1, n); ++it) {
      // Channel chunks outer, as the 1x1 form's (a 14x14 image's 224 positions are chunks of
      // 192 and 32: position chunks outer gave one task 192 positions of every channel).
      const int64_t ch = it / units, u = it % units, img = u / chunks;
      const int64_t j0 = bound(u % chunks), j1 = bound(u % chunks + 1);
      const int64_t q0 = rangeBegin(coPanels, ch, coChunks), q1 = rangeBegin(coPanels, ch + 1, coChunks);
      if (q0 >= q1 || j0 >= j1) continue;
      const uint32_t* xi = xb + img * d.imageWords;
      if (low) {
        // Panel by panel: its tiles over the whole chunk of positions, then its rows finished
        // per run of valid pixels (runs of up to OW, not of a tile's width: the 4-row families
        // lost up to 20% on the short strided runs).
        for (int64_t q = q0; q < q1; ++q) {
          const int64_t co0 = q * c.mr, R = std::min<int64_t>(c.mr, Co - co0);
          for (int64_t j = j0; j < j1; j += groupW) {
            const int64_t cols = std::min(groupW, j1 - j);
            i8Tile(p.isa, true, int(R), int(ceilDiv(cols, c.lanes)), true)(KG, wp + q * KG * c.mr, xi + j, 0, goff,
                                                                           zc + co0, sc + co0,
                                                                           tb ? tb + co0 : nullptr, ctile + (j - j0),
                                                                           kDirectChunk, int(cols));
          }
          segments(j0, j1, [&](int64_t px, int64_t cnt, int64_t jb) {
            ep.finish(c, p, ctile + (jb - j0), kDirectChunk, R, zbuf, a.out(0).data, Co, P, img, co0, px, cnt);
          });
        }
        continue;
      }
      float* yi = yp + img * Co * P;
      for (int64_t j = j0; j < j1; j += groupW) {
        const int64_t cols = std::min(groupW, j1 - j);
        const int nvec = int(ceilDiv(cols, c.lanes));
        for (int64_t q = q0; q < q1; ++q) {
          const int64_t co0 = q * c.mr, R = std::min<int64_t>(c.mr, Co - co0);
          const I8Tile tile = i8Tile(p.isa, true, int(R), nvec, true);
          float* out = inPlace ? yi + co0 * P + j : tmp;
          const int64_t ldo = inPlace ? P : groupW;
          tile(KG, wp + q * KG * c.mr, xi + j, 0, goff, zc + co0, sc + co0, tb ? tb + co0 : nullptr, out, ldo, int(cols));
          if (mx.on) {
            if (mx.adaptive)
              tile(KG, mx.absW + q * KG * c.mr, xa + img * d.imageWords + j, 0, goff, mx.zeros + co0, mx.ones + co0,
                   nullptr, nbuf, groupW, int(cols));
            recomputed += convFix(mx, g, ep, xs, xt, sc, d.Ws, out, ldo, nbuf, groupW, img, co0, R, j, cols);
          }
          if (inPlace) continue;
          segments(j, j + cols, [&](int64_t px, int64_t cnt, int64_t jb) {
            for (int64_t r = 0; r < R; ++r)
              std::memcpy(yi + (co0 + r) * P + px, tmp + r * groupW + (jb - j), size_t(cnt) * 4);
          });
        }
      }
      if (ep.act) {  // a bias alone was added in the tiles
        const int64_t co1 = std::min(Co, q1 * c.mr);
        segments(j0, j1, [&](int64_t px, int64_t cnt, int64_t) { ep.apply(yp, Co, P, img, q0 * c.mr, co1, px, cnt); });
      }
    }
    if (a.counters && recomputed) a.counters[0].fetch_add(recomputed, std::memory_order_relaxed);
  });
}

void runConv(const StepArgs& a) {
  const I8Params& p = a.paramsAs<I8Params>();
  const I8Config& c = i8Config(p.isa);
  const TensorView& X = a.in(0);
  TensorView& Y = a.out(0);
  if (X.rank != 4) a.fail("this kernel handles 2-D Conv (rank-4 X) only");
  Conv2dGeom g;
  if (!conv2dGeometry(p.conv, X.dims, p.N, &g) || g.C * g.kH * g.kW != p.K)
    a.fail("X does not fit the prepared weight and the Conv attributes");
  if (Y.rank != 4 || Y.dims[0] != g.N || Y.dims[1] != g.M || Y.dims[2] != g.OH || Y.dims[3] != g.OW)
    a.fail("the output extents differ from the Conv's");
  checkLoweredTypes(a, p);
  if (Y.numel() == 0) return;
  if (p.direct) {
    runConvDirect(a, p, g);
    return;
  }
  // An unpadded 1x1 stride-1 Conv: items (image, pixel tile, range of output-channel
  // panels), each quantizing its tile straight from X (256 -> 64 at 56x56 on VNNI: 0.31-0.33
  // ms; its 3.2 MB input streams from L3 at ~20 GB/s, about as long as the integer products
  // take; at 28x28, in L2, 390 GOP/s). Here the direct form's 64 channel groups are 64
  // streams: 0.46 ms.
  const int64_t P = g.OH * g.OW, KG = groupsOf(c, p.K), Co = p.N, PT = p.pixelTile;
  const int T = tasksOf(a, p, double(Y.numel()) * double(p.K));
  const Layout l = pointwiseLayout(c, p, g, p.K, PT);
  char* ws = workspace(a, l, T);
  const Mixed mx = Mixed::of(a, p);
  if (a.counters && mx.on) a.counters[1].fetch_add(uint64_t(Y.numel()), std::memory_order_relaxed);
  const int64_t tileWords = groupsOf(c, p.K) * PT;
  auto* xt = reinterpret_cast<float*>(ws + l.xtShared);
  if (mx.adaptive) {  // the input channels-last for the adaptive components, a range of rows per task
    const int64_t rows = g.N * g.H, n = std::min<int64_t>(T, rows);
    a.executor->parallelFor(n, [&](int64_t t) {
      channelsLast(g, X.as<float>(), rangeBegin(rows, t, n), rangeBegin(rows, t + 1, n), xt);
    });
  }
  auto* xs = reinterpret_cast<float*>(ws + l.xsShared);
  convStaticAll(a, mx, g, T, reinterpret_cast<float*>(ws + l.xpShared), xs);
  const uint32_t* wp = a.blobs[0].as<uint32_t>();
  const int32_t* zc = a.blobs[1].as<int32_t>();
  const float* sc = a.blobs[2].as<float>();
  float* yp = Y.as<float>();
  const ConvEpilogue ep = convEpilogue(a, p, g.M);
  const float* tileBias = ep.act ? nullptr : ep.bias;  // a bias alone is added in the tiles
  const bool low = loweredOut(p) || foldedFinish(p);
  const uint8_t* xq = p.lowered & kLowX ? X.as<uint8_t>() : nullptr;
  uint8_t* yq8 = p.lowered & kLowY ? Y.as<uint8_t>() : nullptr;
  const int64_t tiles = ceilDiv(P, PT), coPanels = ceilDiv(Co, c.mr), units = g.N * tiles;
  const int64_t coChunks = units >= 2 * T ? 1 : std::min(coPanels, ceilDiv(2 * T, units));
  const int64_t items = units * coChunks, n = std::min<int64_t>(T, items);
  const int64_t groupW = int64_t(c.nv) * c.lanes;
  a.executor->parallelFor(n, [&](int64_t t) {
    auto* tile = reinterpret_cast<uint32_t*>(ws + l.shared + t * l.slot);
    uint32_t* absTile = tile + roundUp(tileWords, 16);
    float* nbuf = reinterpret_cast<float*>(ws + l.shared + t * l.slot + l.slotMixed);
    float* tmp = reinterpret_cast<float*>(ws + l.shared + t * l.slot + l.slotLow);
    float* zbuf = tmp + int64_t(c.mr) * PT;
    uint64_t recomputed = 0;
    // Channel chunks outer: with fewer pixel tiles than twice the tasks each task takes
    // whole chunks of output channels over every tile, whatever the tiles' widths.
    for (int64_t it = rangeBegin(items, t, n); it < rangeBegin(items, t + 1, n); ++it) {
      const int64_t ch = it / units, u = it % units, img = u / tiles, p0 = (u % tiles) * PT;
      const int64_t np = std::min(PT, P - p0), width = roundUp(np, 16);
      const int64_t q0 = rangeBegin(coPanels, ch, coChunks), q1 = rangeBegin(coPanels, ch + 1, coChunks);
      if (q0 >= q1) continue;
      if (xq)
        packPointwiseTileU8(c, xq + img * g.C * P, g.C, P, p.zeroPoint, p0, np, width, tile);
      else
        packPointwiseTile(c, X.as<float>() + img * g.C * P, g.C, P, p.invScale, p.zeroPoint, p0, np, width, tile);
      if (mx.adaptive) absDeviationWords(c, tile, KG * width, p.zeroPoint, absTile);
      if (low) {
        // A u8 Z or output: panel by panel, its tiles over the whole pixel tile into the task's
        // scratch, then its rows finished in one pass each (Z and Y as rows of np pixels: per
        // register tile, the rows' short strided runs cost the 4-row families up to 2x: AVX-VNNI
        // 4x24, 64 -> 256 at 56x56 with f32 Z and u8 output 1.29 -> 0.67 ms, f32 I/O 0.66).
        for (int64_t q = q0; q < q1; ++q) {
          const int64_t co0 = q * c.mr, R = std::min<int64_t>(c.mr, Co - co0);
          // A u8 output straight from the accumulators where the family has the fused tile
          // (i8FinishTile: resnet50's 1x1 layers at 56x56 and 28x28 on AVX-512 VNNI).
          if (yq8 && ep.low.fast && i8FinishTile(p.isa, ep.low.f, ep.zq != nullptr, ep.zres != nullptr, int(R), c.nv)) {
            const int64_t off = (img * Co + co0) * P + p0;
            for (int64_t j = 0; j < np; j += groupW) {
              const int64_t cols = std::min(groupW, np - j);
              i8FinishTile(p.isa, ep.low.f, ep.zq != nullptr, ep.zres != nullptr, int(R), int(ceilDiv(cols, c.lanes)))(
                  KG, wp + q * KG * c.mr, tile + j, width, zc + co0, sc + co0, ep.low.f, ep.bias ? ep.bias + co0 : nullptr,
                  ep.zq ? ep.zq + off + j : nullptr, P, yq8 + off + j, P, int(cols));
            }
            continue;
          }
          for (int64_t j = 0; j < np; j += groupW) {
            const int64_t cols = std::min(groupW, np - j);
            i8Tile(p.isa, true, int(R), int(ceilDiv(cols, c.lanes)))(KG, wp + q * KG * c.mr, tile + j, width, nullptr,
                                                                     zc + co0, sc + co0,
                                                                     tileBias ? tileBias + co0 : nullptr, tmp + j,
                                                                     width, int(cols));
          }
          ep.finish(c, p, tmp, width, R, zbuf, Y.data, Co, P, img, co0, p0, np);
        }
        continue;
      }
      float* yi = yp + img * Co * P + p0;
      for (int64_t j = 0; j < np; j += groupW) {
        const int64_t cols = std::min(groupW, np - j);
        const int nvec = int(ceilDiv(cols, c.lanes));
        for (int64_t q = q0; q < q1; ++q) {
          const int64_t co0 = q * c.mr, R = std::min<int64_t>(c.mr, Co - co0);
          i8Tile(p.isa, true, int(R), nvec)(KG, wp + q * KG * c.mr, tile + j, width, nullptr, zc + co0, sc + co0,
                                            tileBias ? tileBias + co0 : nullptr, yi + co0 * P + j, P, int(cols));
          if (mx.on) {
            if (mx.adaptive)
              i8Tile(p.isa, true, int(R), nvec)(KG, mx.absW + q * KG * c.mr, absTile + j, width, nullptr,
                                                mx.zeros + co0, mx.ones + co0, nullptr, nbuf, groupW, int(cols));
            recomputed += convFix(mx, g, ep, xs, xt, sc, g.OW, yi + co0 * P + j, P, nbuf, groupW, img, co0, R, p0 + j,
                                  cols);
          }
        }
      }
      if (ep.act) ep.apply(yp, Co, P, img, q0 * c.mr, std::min(Co, q1 * c.mr), p0, np);
    }
    if (a.counters && recomputed) a.counters[0].fetch_add(recomputed, std::memory_order_relaxed);
  });
}

// ---------------------------------------------------------------------------------------
// Registration

struct Variant {
  I8Isa isa;
  const char* tile;    // "8x48": register tile rows x columns
  const char* suffix;  // "__avx512vnni"
  std::vector<std::string> requirements;
};

Kernel makeKernel(std::string name, const char* op, const char* domain, const Variant& v,
                  runtime::SupportsFn supports, runtime::PrepareFn prepare, runtime::RunFn run) {
  Kernel k;
  k.name = std::move(name);
  // 2: the mixed-precision params and blobs (fp32_channels, adaptive_tau); 3: lowered (u8) I/O; 4: SiLU,
  // Sigmoid and Tanh epilogues with vmath.h's new e^-x
  k.version = 4;
  k.op = op;
  k.domain = domain;
  k.precision = DataType::kI8;
  k.requirements = v.requirements;
  k.supports = std::move(supports);
  k.prepare = std::move(prepare);
  k.run = std::move(run);
  return k;
}

}  // namespace

}  // namespace anvil::cpu::tactics

namespace anvil::runtime {

void registerNativeInt8Kernels(Kernels& k) {
  using namespace anvil::cpu::tactics;
  const Variant variants[] = {
      {I8Isa::kAvx512Vnni, "8x48", "__avx512vnni", {"avx512f", "avx512bw", "avx512vnni"}},
      {I8Isa::kAvxVnni, "4x24", "__avxvnni", {"avx2", "fma", "avxvnni"}},
      {I8Isa::kAvx2, "4x16", "__avx2", {"avx2", "fma"}},
      {I8Isa::kPortable, "", "_portable", {}},
  };
  for (const Variant& v : variants) {
    const I8Isa isa = v.isa;
    for (bool fused : {false, true}) {
      const std::string tail = (*v.tile ? std::string("_") + v.tile : std::string()) + (fused ? "_epilogue" : "") + v.suffix;
      k.add(makeKernel("i8_gemm_u8s8" + tail, fused ? "FusedMatMul" : "MatMul", fused ? "anvil" : "", v,
                       fused ? supportsFusedMatMul : supportsMatMul,
                       [isa, fused](const PrepareInfo& i, Prepared* o) { prepareMatMul(isa, I8Op::kMatMul, fused, i, o); },
                       runMatMul));
      k.add(makeKernel("i8_gemm_u8s8" + tail, fused ? "FusedGemm" : "Gemm", fused ? "anvil" : "", v,
                       fused ? supportsFusedGemm : supportsGemm,
                       [isa, fused](const PrepareInfo& i, Prepared* o) { prepareMatMul(isa, I8Op::kGemm, fused, i, o); },
                       runMatMul));
      k.add(makeKernel("i8_conv2d_u8s8" + tail, fused ? "FusedConv" : "Conv", fused ? "anvil" : "", v,
                       fused ? supportsFusedConv : supportsConv,
                       [isa, fused](const PrepareInfo& i, Prepared* o) { prepareConv(isa, fused, i, o); }, runConv));
    }
  }
}

}  // namespace anvil::runtime

namespace anvil::cpu::tactics {

// Test hook (tests/unit/native_int8_test.cpp): the adaptive test's row filter on n <= 64
// components whose activation argument is v0 + bias (FilterRow's adds; into arg[]): the bit
// path where the host has AVX2 unless `scalar`, else the byte path, into maybe[] (0 left out,
// 1 to be tested, 2 flagged for certain), and the exact test of each component into exact[];
// maybe must be nonzero wherever exact is.
void adaptiveRowFilterForTest(ir::linear::Activation act, int test, float tau, const float* nsum, const float* v0,
                              const float* scales, float scale, const float* bias, int64_t n, bool scalar, float* arg,
                              uint8_t* maybe, uint8_t* exact) {
  Mixed m;
  m.adaptive = true;
  m.test = test;
  m.tau = tau;
  m.epi.act = act;
  FilterRow fr;
  fr.nsum = nsum;
  fr.v0 = v0;
  fr.scales = scales;
  fr.scale = scale;
  fr.biasVec = bias;
  fr.hasBias = true;
  fr.n = n;
  for (int64_t i = 0; i < n; ++i) arg[i] = fr.arg(i);
  uint64_t cand = 0, sure = 0;
  if (!scalar && m.filterBits(fr, &cand, &sure)) {
    for (int64_t i = 0; i < n; ++i) maybe[i] = uint8_t((cand >> i & 1) ? 1 + (sure >> i & 1) : 0);
  } else {
    m.maybeRow(nsum, v0, scales, scale, arg, n, maybe);
  }
  for (int64_t i = 0; i < n; ++i) exact[i] = uint8_t(m.flag(nsum[i], v0[i], scales ? scales[i] : scale, arg[i]));
}

// Test hook: the row filter's lower bound of kappa_phi (conditionLowerF8) for n arguments
// (n a multiple of 8); false where the activation has none or the host lacks AVX2.
bool adaptiveConditionLowerForTest(ir::linear::Activation act, const float* v, int64_t n, float* lo) {
  if (!hostAvx2()) return false;
  return ir::linear::withConditionBound(act, [&](auto a) { conditionLowerRow<decltype(a)::value>(v, n, lo); });
}

// Test hook: true sends the adaptive row filter through flag bytes (maybeRow, flagRow,
// flagCols: the path of hosts without AVX2) instead of straight to bits.
void adaptiveBytePathForTest(bool on) { gAdaptiveBytePath.store(on); }

// Test hook: the product test without an activation (one scale, or one per component) on
// n <= 64 components into out[]: as bits (productBitsAvx2) where the host has AVX2 unless
// `scalar`, else as flag bytes (flagRow, flagCols).
void adaptiveProductFlagsForTest(float tau, const float* nsum, const float* v0, const float* scales, float scale,
                                 int64_t n, bool scalar, uint8_t* out) {
  Mixed m;
  m.adaptive = true;
  m.tau = tau;
  uint64_t bits = 0;
  if (!scalar && m.productBits(nsum, v0, scales, scale, n, &bits)) {
    for (int64_t i = 0; i < n; ++i) out[i] = uint8_t(bits >> i & 1);
  } else if (scales) {
    m.flagCols(nsum, v0, scales, n, out);
  } else {
    m.flagRow(nsum, v0, scale, n, out);
  }
}

}  // namespace anvil::cpu::tactics
