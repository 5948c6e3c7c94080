// The INT8 kernels on the AMX tile unit: i8_conv2d_amx_* (Conv / anvil.FusedConv) and
// i8_gemm_amx_* (MatMul / Gemm / anvil.FusedMatMul / FusedGemm with constant B; see the
// MatMul section). One TDPBSUD / TDPBUSD is 16x16 int32 += 16x64 bytes . 64x16 bytes
// (16384 MACs, ~12 cycles: ~10x the MACs per cycle of the AVX-512 VNNI tiles).
// Conv: Output CHANNELS are the tile rows (the s8 weights are the A operand,
// 16 channels x 64 bytes of K), output PIXELS its columns (the u8 activations the B
// operand in the VNNI-4 layout: 16 K-groups of 4 channels x 16 pixels), so a C tile is 16
// channels x 16 consecutive pixels of Y's NCHW rows: no transposition.
//  - Numerics: those of the i8 Conv kernels (native_int8.cpp, int8_gemm.h), bit for bit:
//    q_x = quantizeU8One(x, 1/s_x, z_x), per-channel symmetric weights (quantizeWeights),
//    exact int32 sums (K padded with zero weights: whatever activation meets them adds 0),
//    y = float(acc - z_x * colsum[co]) * (s_x * s_w[co]), then bias and the f32 epilogue row
//    as the pixels kernel does (native_int8_conv_pixels.cpp). Lowered u8 input / Z / output
//    per the contract in native_int8.cpp's header.
//  - prepare(): weights quantized per output channel, reordered to K = (tap, channel group
//    of 4, channel), padded to whole 64-byte tiles, packed [channel block][K tile][16][64 B].
//  - run(), per image: (0) the input quantized into planes of 32-bit channel quads (the
//    padded image: quantizePhases / packPhasesU8 at stride 1; an unpadded 1x1 stride-1
//    Conv: packPointwiseTile, whose planes are the B operand as they are); (1) otherwise
//    the pixel panels [K groups][16 pixels] gathered from the planes (whole runs of a row
//    in one masked load at stride 1, vpgatherdd else); (2) items (chunk of pixel blocks,
//    range of channel-block pairs): 2 weight x 2 pixel tiles -> 4 accumulators, stored,
//    dequantized into Y's rows, then the epilogue over the chunk. Tile config loaded at the
//    start of every task and released at its end (the executor's threads are reused).
//  - Speed (one thread, resnet50 --int8 in the model, this kernel / the VNNI kernel the
//    builder picked under ANVIL_MAX_ISA=avx512, ms, 3 runs on a noisy shared box): 3x3 64
//    at 56x56 0.23-0.29 / 0.42-0.48; 1x1 256 -> 64 at 56x56 0.16-0.21 / 0.29-0.30; 1x1 64
//    -> 256 + Z at 56x56 0.40-0.46 / 0.46-0.50; 3x3 128 at 28x28 0.15-0.20 / 0.40-0.45; 3x3
//    256 at 14x14 0.14-0.22 / 0.43-0.57; 3x3 512 at 7x7 0.19-0.32 / 0.55-0.58; 1x1 512 ->
//    2048 + Z at 7x7 0.13-0.20 / 0.40-0.46; the 7x7 stem 0.73-0.94 / 0.89-1.01. Whole model
//    20.5-21.3 -> 9.9-10.9 ms (f32 43.7-47.7). perf: ~37% of the model in the tile loop
//    (bound by the B tiles' loads from L2), ~32% in finishTile's epilogue and u8 store.
#include <immintrin.h>

#include <algorithm>
#include <limits>
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

// Trivially copyable and without padding bytes (the engine compares params byte for byte).
struct AmxParams {
  int32_t tasks = 1;
  int32_t fused = 0;
  float invScale = 1.0f;  // 1 / s_x
  int32_t zeroPoint = 0;  // z_x
  int32_t inU8 = 0;       // input 0 lowered to u8
  int32_t zU8 = 0;        // Z lowered to u8
  float zScale = 1.0f;    // its s and zp
  int32_t zZero = 0;
  int32_t outU8 = 0;      // output 0 lowered to u8
  float outInv = 1.0f;    // its 1 / s and zp
  int32_t outZero = 0;
  int32_t reserved0 = 0;
  int64_t N = 0;   // output channels
  int64_t CG = 0;  // channel quads per tap (the last padded with zeros)
  int64_t KG = 0;  // K groups per pixel: kH * kW * CG
  int64_t KT = 0;  // K tiles of 16 groups: ceil(KG / 16)
  ConvAttrs conv;
  EpilogueParams epi;
  int32_t reserved = 0;
};
static_assert(sizeof(AmxParams) == 12 * 4 + 4 * 8 + sizeof(ConvAttrs) + sizeof(EpilogueParams) + 4,
              "AmxParams must have no padding bytes");

bool isF32(const ir::TensorType& t) { return t.dtype == DataType::kF32; }
bool absent(const std::vector<ir::TensorType>& in, size_t i) {
  return i >= in.size() || in[i].dtype == DataType::kUndefined;
}

// ---------------------------------------------------------------------------------------
// Quantization parameters (the i8 kernels' conditions)

// Conv and FusedConv: int8_support.h's plain-INT8 2-D Conv conditions, any output size.
bool supportsConv(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  return supportsPlainInt8Conv2d(n, in, false, std::numeric_limits<int64_t>::max());
}

bool supportsFusedConv(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  return supportsPlainInt8Conv2d(n, in, true, std::numeric_limits<int64_t>::max());
}

// ---------------------------------------------------------------------------------------
// Work split and workspace

constexpr int64_t kTile = 16;       // rows and int32 columns of every tile
constexpr int64_t kTileWords = 256;  // 16 x 64 bytes
constexpr double kMinOpsPerTask = 5e5;

int tasksOf(const StepArgs& a, int32_t tasks, double ops) {
  const int byWork = int(std::max(1.0, std::min(1e6, ops / kMinOpsPerTask)));
  return std::max(1, std::min({tasks, a.executor ? a.executor->threads() : 1, byWork}));
}

bool pointwiseOf(const Conv2dGeom& g) {
  return g.kH == 1 && g.kW == 1 && g.sH == 1 && g.sW == 1 && g.pt == 0 && g.pl == 0 && g.pb == 0 && g.pr == 0;
}

// One image's working set: the planes (padded [CG][Hp][Wp] words; the pointwise form
// [KT * 16][pw] with pw = P rounded up to 16, read as the B tiles directly), the pixel
// panels [blocks][KT * 16][16] words (not for the pointwise form), then per task a slot:
// stage 0's quantized channel quad (4 * H * W bytes) or stage 2's accumulators [32][32]
// int32, the u8 output's rows [32][chunk pixels] f32 and a dequantized row of a u8 Z.
struct Layout {
  int64_t Hp = 0, Wp = 0, P = 0, pw = 0, blocks = 0, chunkBlocks = 0;
  int64_t imageBytes = 0, panelsBytes = 0, slot = 0;
  bool pointwise = false;
  int64_t total(int64_t tasks) const { return imageBytes + panelsBytes + tasks * slot; }
};

Layout layoutOf(const AmxParams& p, const Conv2dGeom& g) {
  Layout l;
  l.pointwise = pointwiseOf(g);
  l.Hp = g.pt + g.H + g.pb;
  l.Wp = g.pl + g.W + g.pr;
  l.P = g.OH * g.OW;
  l.pw = roundUp(l.P, kTile);
  l.blocks = ceilDiv(l.P, kTile);
  // ~512 KB of panels per chunk (they stay in L2 while each channel pair streams over them),
  // at most 512 pixels (the u8 output's rows), an even number of blocks (pairs).
  const int64_t byBytes = (512 * 1024) / (p.KT * kTileWords * 4);
  l.chunkBlocks = std::clamp<int64_t>(byBytes / 2 * 2, 2, 32);
  if (l.pointwise)
    l.imageBytes = roundUp(p.KT * kTile * l.pw * 4, 64) + 64;
  else
    l.imageBytes = roundUp(p.CG * l.Hp * l.Wp * 4, 64) + 64;
  l.panelsBytes = l.pointwise ? 0 : roundUp(l.blocks * p.KT * kTileWords * 4, 64);
  const int64_t px = l.chunkBlocks * kTile;
  const int64_t stage2 = 32 * 32 * 4 + roundUp(32 * px * 4, 64) + roundUp(px * 4, 64);
  l.slot = std::max(roundUp(4 * g.H * g.W + 64, 64) + roundUp((g.W + 8) * 4, 64), stage2);
  return l;
}

// ---------------------------------------------------------------------------------------
// Prepare

void prepareConv(bool fused, const PrepareInfo& info, Prepared* out) {
  AmxParams p;
  p.tasks = std::max(1, info.threads);
  const Int8ConvSetup su = readInt8ConvSetup(info, fused);
  p.fused = fused ? 1 : 0;
  p.epi = su.epi;
  p.invScale = su.invScale;
  p.zeroPoint = su.zeroPoint;
  p.inU8 = su.inU8;
  p.zU8 = su.zU8;
  p.zScale = su.zScale;
  p.zZero = su.zZero;
  p.outU8 = su.outU8;
  p.outInv = su.outInv;
  p.outZero = su.outZero;
  p.conv = su.conv;
  const Conv2dGeom& g = su.g;
  const float* given = su.givenScales;
  const float sx = su.scale;
  const int64_t taps = g.kH * g.kW, K = g.C * taps;
  p.N = g.M;
  p.CG = ceilDiv(g.C, 4);
  p.KG = taps * p.CG;
  p.KT = ceilDiv(p.KG, kTile);
  const I8Weights q = quantizeWeights(su.weights, p.N, K, K, 1, given);
  // [channel block][K tile][16 channels][16 groups x 4 bytes]: the A tiles; group
  // (tap, cg) holds channels 4 cg .. 4 cg + 3 of that tap; zeros past C, K and N. Channel
  // blocks rounded up to pairs (the 2 x 2 tile plan).
  const int64_t coBlocks = roundUp(ceilDiv(p.N, kTile), 2);
  std::string packed(size_t(coBlocks * p.KT * kTileWords * 4), '\0');
  auto* pk = reinterpret_cast<int8_t*>(packed.data());
  for (int64_t f = 0; f < p.N; ++f)
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t ch = 0; ch < g.C; ++ch) {
        const int64_t grp = t * p.CG + ch / 4, kt = grp / kTile, j = grp % kTile;
        pk[((f / kTile * p.KT + kt) * kTile + f % kTile) * 64 + j * 4 + ch % 4] = q.q[size_t(f * K + ch * taps + t)];
      }
  const int64_t padded = coBlocks * kTile;
  std::string zc, sc;  // the i8 kernels' operands, alpha = 1
  int8FeatureOperands(*info.node, p.zeroPoint, q.sums, q.scale, sx, 1.0f, padded, &zc, &sc);
  out->blobs = {std::move(packed), std::move(zc), std::move(sc)};
  out->packedInputs.push_back(1);
  out->workspaceBytes = uint64_t(layoutOf(p, g).total(p.tasks));
  out->setParams(p);
}

// ---------------------------------------------------------------------------------------
// Run

const I8Config& quadConfig() { return i8Config(I8Isa::kAvx512Vnni); }  // u8 quads (kg 4)

// The tile unit and the kernel's leave to use it (asked once per process by hostHas): an
// engine loaded on a host without them must fail the step, not fault on a tile instruction.
void checkAmx(const StepArgs& a) {
  static const bool ok = runtime::hostHas("amxint8");
  if (!ok) a.fail("this kernel needs AMX-INT8 (CPUID and the OS's XTILEDATA permission), which this host lacks");
}

// Stage 1: the B panel [KT * 16 groups][16 pixels] of pixels [p0, p0 + R) from the padded
// planes; group (tap, cg) of pixel r is its tap's input word in plane cg. Lanes from R on
// repeat pixel p0 (their columns are dropped); groups past KG are zeros (zero weights).
// At stride 1 the 16 pixels are a few runs of consecutive plane words (a run per output
// row they touch): one masked load per run; else (or over 4 runs) one vpgatherdd. (Planes
// split by stride phase, quantizePhases at the Conv's strides, would make every stride's
// rows runs, but quantizing into phases cost more than the gathers save: resnet50's 1x1
// stride-2 256 -> 512 at 28x28 0.37-0.41 -> 0.79-0.93 ms, 3x3 stride-2 128 0.20-0.24 ->
// 0.46 ms, the 7x7 stem unchanged at 0.86-0.94.)
__attribute__((target("avx512f,avx512bw"))) void packPanel(const AmxParams& p, const Conv2dGeom& g,
                                                           const Layout& l, const uint32_t* img, int64_t p0,
                                                           int64_t R, uint32_t* dst) {
  const int64_t plane = l.Hp * l.Wp;
  alignas(64) int32_t base[kTile];
  for (int r = 0; r < kTile; ++r) {
    const int64_t px = p0 + (r < R ? r : 0), oh = px / g.OW, ow = px % g.OW;
    base[r] = int32_t(oh * g.sH * l.Wp + ow * g.sW);
  }
  int runs = 0;
  int64_t off[kTile];
  __mmask16 mask[kTile];
  for (int r = 0; r < kTile && runs <= 4;) {
    int e = r + 1;
    while (e < kTile && base[e] == base[e - 1] + 1) ++e;
    off[runs] = int64_t(base[r]) - r;
    mask[runs] = __mmask16(((1u << e) - 1) & ~((1u << r) - 1));
    ++runs;
    r = e;
  }
  const __m512i idx = _mm512_load_si512(base);
  for (int64_t kh = 0; kh < g.kH; ++kh)
    for (int64_t kw = 0; kw < g.kW; ++kw) {
      const uint32_t* s = img + kh * g.dH * l.Wp + kw * g.dW;
      for (int64_t cg = 0; cg < p.CG; ++cg, s += plane, dst += kTile) {
        __m512i v;
        if (runs <= 4) {
          v = _mm512_setzero_si512();
          for (int i = 0; i < runs; ++i) v = _mm512_mask_loadu_epi32(v, mask[i], s + off[i]);
        } else {
          v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), __mmask16(0xffff), idx, s, 4);
        }
        _mm512_storeu_si512(dst, v);
      }
    }
  const int64_t rest = p.KT * kTile - p.KG;
  if (rest > 0) std::memset(dst, 0, size_t(rest * kTile * 4));
}

// The AMX tile configuration (palette 1): tiles 0-3 the 16 x 16 int32 accumulators, 4-5
// the weights (16 channels x 64 bytes), 6-7 the pixels (16 groups x 16 words).
struct alignas(64) TileConfig {
  uint8_t palette = 1, startRow = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

const TileConfig& tileConfig() {
  static const TileConfig c = [] {
    TileConfig t;
    for (int i = 0; i < 8; ++i) t.colsb[i] = 64, t.rows[i] = 16;
    return t;
  }();
  return c;
}

// What one item needs (stage 2).
struct Stage2 {
  const AmxParams* p;
  const Conv2dGeom* g;
  const Layout* l;
  const uint32_t* b;  // the B operand: the panels, or the pointwise planes
  int64_t bBlock;      // words from one pixel block's tiles to the next
  int64_t bTile;       // words from one K tile to the next
  int64_t bStride;     // bytes between a B tile's rows
  const int8_t* w;     // packed weights
  const int32_t* zc;
  const float* sc;
  const float* bias;
  const void* zres;
  bool act;
  bool fast;  // act, and finishTile computes it: one pass from the rows into Y
  RowFinish finish;
  Epilogue epi;
  EpilogueRow row;
  TensorView* Y;
  int64_t im, chunks, pairChunks, pairs;
};

// Items [i0, i1) of one task: tile config loaded at its start, released at its end.
__attribute__((target("amx-tile,amx-int8,avx512f,avx512bw"))) void runItems(const Stage2& s, int64_t i0,
                                                                             int64_t i1, char* slot) {
  const AmxParams& p = *s.p;
  const Layout& l = *s.l;
  const int64_t P = l.P, Co = p.N, KT = p.KT;
  const int64_t px = l.chunkBlocks * kTile;
  auto* acc = reinterpret_cast<int32_t*>(slot);  // [32 channels][32 pixels]
  auto* rows = reinterpret_cast<float*>(slot + 32 * 32 * 4);
  auto* zrow = reinterpret_cast<float*>(slot + 32 * 32 * 4 + roundUp(32 * px * 4, 64));
  _tile_loadconfig(&tileConfig());
  for (int64_t it = i0; it < i1; ++it) {
    const int64_t ch = it / s.pairChunks, cc = it % s.pairChunks;
    const int64_t b0 = ch * l.chunkBlocks, b1 = std::min(l.blocks, b0 + l.chunkBlocks);
    const int64_t p0 = b0 * kTile, np = std::min(P, b1 * kTile) - p0;
    const int64_t q0 = rangeBegin(s.pairs, cc, s.pairChunks), q1 = rangeBegin(s.pairs, cc + 1, s.pairChunks);
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t n0 = q * 32, cols = std::min<int64_t>(32, Co - n0);
      const int8_t* wa = s.w + (2 * q) * KT * kTileWords * 4;
      const int8_t* wb = wa + KT * kTileWords * 4;
      // Channel j's np pixels: a row of the task's rows (u8 output, or an epilogue that
      // finishTile computes: it joins the store into Y) or of Y itself.
      const bool viaRows = p.outU8 || s.fast;
      float* yb = viaRows ? rows : s.Y->as<float>() + (s.im * Co + n0) * P + p0;
      const int64_t ldy = viaRows ? px : P;
      for (int64_t b = b0; b < b1; b += 2) {
        const bool two = b + 1 < b1;
        const uint32_t* ba = s.b + b * s.bBlock;
        const uint32_t* bb = two ? ba + s.bBlock : ba;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int64_t kt = 0; kt < KT; ++kt) {
          _tile_loadd(4, wa + kt * kTileWords * 4, 64);
          _tile_loadd(5, wb + kt * kTileWords * 4, 64);
          _tile_loadd(6, ba + kt * s.bTile, s.bStride);
          _tile_loadd(7, bb + kt * s.bTile, s.bStride);
          _tile_dpbsud(0, 4, 6);
          _tile_dpbsud(1, 4, 7);
          _tile_dpbsud(2, 5, 6);
          _tile_dpbsud(3, 5, 7);
        }
        _tile_stored(0, acc, 128);
        _tile_stored(1, acc + 16, 128);
        _tile_stored(2, acc + 16 * 32, 128);
        _tile_stored(3, acc + 16 * 32 + 16, 128);
        // Dequantize: y = float(acc - z_x colsum) * (s_x s_w), the i8 tiles' formula.
        const int64_t off = (b - b0) * kTile, n = std::min<int64_t>(two ? 32 : 16, P - b * kTile);
        const __mmask16 m0 = __mmask16(n >= 16 ? 0xffff : (1u << n) - 1);
        const __mmask16 m1 = __mmask16(n >= 32 ? 0xffff : n > 16 ? (1u << (n - 16)) - 1 : 0);
        for (int64_t j = 0; j < cols; ++j) {
          const __m512i z = _mm512_set1_epi32(s.zc[n0 + j]);
          const __m512 sc = _mm512_set1_ps(s.sc[n0 + j]);
          const int32_t* a = acc + j * 32;
          float* y = yb + j * ldy + off;
          _mm512_mask_storeu_ps(
              y, m0,
              _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xffff, _mm512_sub_epi32(_mm512_loadu_si512(a), z)), sc));
          if (m1)
            _mm512_mask_storeu_ps(
                y + 16, m1,
                _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xffff, _mm512_sub_epi32(_mm512_loadu_si512(a + 16), z)),
                              sc));
        }
      }
      if (s.fast) {
        const int64_t off = (s.im * Co + n0) * P + p0;
        const bool zu8 = s.zres && p.zU8;
        finishTile(s.finish, yb, ldy, int(cols), np, s.bias ? s.bias + n0 : nullptr, 1, nullptr,
                   s.zres && !zu8 ? static_cast<const float*>(s.zres) + off : nullptr,
                   zu8 ? static_cast<const uint8_t*>(s.zres) + off : nullptr, P,
                   p.outU8 ? s.Y->as<uint8_t>() + off : nullptr, p.outU8 ? nullptr : s.Y->as<float>() + off, P);
        continue;
      }
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t co = n0 + j, yo = (s.im * Co + co) * P + p0;
        float* y = yb + j * ldy;
        if (s.act) {
          const float* z = nullptr;
          if (s.zres && p.zU8) {
            const uint8_t* zq = static_cast<const uint8_t*>(s.zres) + yo;
            for (int64_t i = 0; i < np; ++i) zrow[i] = float(int32_t(zq[i]) - p.zZero) * p.zScale;
            z = zrow;
          } else if (s.zres) {
            z = static_cast<const float*>(s.zres) + yo;
          }
          s.row(s.epi, y, z, nullptr, s.bias ? s.bias[co] : 0.0f, np);
        } else if (s.bias) {
          s.row(s.epi, y, nullptr, nullptr, s.bias[co], np);  // one add, in vectors (no activation)
        }
        if (p.outU8) quantizeU8For(quadConfig(), y, np, p.outInv, p.outZero, s.Y->as<uint8_t>() + yo);
      }
    }
  }
  _tile_release();
}

void runConv(const StepArgs& a) {
  checkAmx(a);
  const AmxParams& p = a.paramsAs<AmxParams>();
  const I8Config& c = quadConfig();
  const TensorView& X = a.in(0);
  TensorView& Y = a.out(0);
  if (X.rank != 4) a.fail("this kernel handles 2-D Conv (rank-4 X) only");
  if ((X.dtype == DataType::kU8) != (p.inU8 != 0) || (Y.dtype == DataType::kU8) != (p.outU8 != 0))
    a.fail("X or Y has another element type than prepared");
  Conv2dGeom g;
  if (!conv2dGeometry(p.conv, X.dims, p.N, &g) || ceilDiv(g.C, 4) != p.CG || g.kH * g.kW * p.CG != p.KG)
    a.fail("X does not fit the prepared weight and the Conv attributes");
  if (Y.rank != 4 || Y.dims[0] != g.N || Y.dims[1] != g.M || Y.dims[2] != g.OH || Y.dims[3] != g.OW)
    a.fail("the output extents differ from the Conv's");
  if (Y.numel() == 0) return;
  const Layout l = layoutOf(p, g);
  const int64_t P = l.P, Co = p.N, KT = p.KT;
  const int T = tasksOf(a, p.tasks, double(Y.numel()) * double(g.C * g.kH * g.kW));
  if (uint64_t(l.total(T)) > a.workspaceBytes)
    a.fail("the shapes need a larger workspace than prepared (outside the profile?)");
  char* ws = static_cast<char*>(a.workspace);
  auto* img = reinterpret_cast<uint32_t*>(ws);
  auto* panels = reinterpret_cast<uint32_t*>(ws + l.imageBytes);
  char* slots = ws + l.imageBytes + l.panelsBytes;

  Stage2 s;
  s.p = &p;
  s.g = &g;
  s.l = &l;
  s.w = a.blobs[0].as<int8_t>();
  s.zc = a.blobs[1].as<int32_t>();
  s.sc = a.blobs[2].as<float>();
  s.bias = nullptr;
  if (a.hasInput(2)) {
    if (a.in(2).numel() != Co) a.fail("B must have one value per output channel");
    s.bias = a.in(2).as<float>();
  }
  s.epi = p.epi.get();
  s.zres = nullptr;
  if (p.fused && s.epi.residual) {
    if (!a.hasInput(int(ir::linear::kResidualInput))) a.fail("has_residual is 1 but Z (input 3) is absent");
    const TensorView& z = a.in(int(ir::linear::kResidualInput));
    if (z.numel() != Y.numel()) a.fail("Z must have the output's shape");
    if ((z.dtype == DataType::kU8) != (p.zU8 != 0)) a.fail("Z has another element type than prepared");
    s.zres = z.data;
  }
  s.row = epilogueRow(s.epi);
  // Without an activation or residual a bias is one f32 add after the scale (the i8 Conv
  // tiles' store); else the f32 epilogue row with the bias as its row bias.
  s.act = p.fused && (s.zres || s.epi.act != Activation::kNone);
  // The u8s8 kernels' one-pass finish (VNNI, 1x1 64 -> 256 at 56x56 with Z and ReLU in
  // resnet50: the row, the Z dequantization and the quantizer one after the other cost
  // more than the products).
  s.fast = s.act && finishRowHandles(int(s.epi.act));
  s.finish = rowFinishOf(s.epi, true, p.zScale, p.zZero, p.outInv, p.outZero);
  s.Y = &Y;
  if (l.pointwise) {
    s.b = img, s.bBlock = kTile, s.bTile = kTile * l.pw, s.bStride = l.pw * 4;
  } else {
    s.b = panels, s.bBlock = KT * kTileWords, s.bTile = kTileWords, s.bStride = 64;
  }
  s.chunks = ceilDiv(l.blocks, l.chunkBlocks);
  s.pairs = ceilDiv(Co, 32);
  s.pairChunks = s.chunks >= 2 * T ? 1 : std::min(s.pairs, ceilDiv(2 * T, s.chunks));
  const int64_t items = s.chunks * s.pairChunks;

  for (int64_t im = 0; im < g.N; ++im) {
    s.im = im;
    const int64_t HW = g.H * g.W;
    const void* x = p.inU8 ? static_cast<const void*>(X.as<uint8_t>() + im * g.C * HW)
                           : static_cast<const void*>(X.as<float>() + im * g.C * HW);
    // 0. The planes: ranges of channel quads.
    {
      const int64_t n = std::min<int64_t>(T, p.CG);
      a.executor->parallelFor(n, [&](int64_t t) {
        const int64_t cg0 = rangeBegin(p.CG, t, n), cg1 = rangeBegin(p.CG, t + 1, n);
        const int64_t c0 = cg0 * 4, c1 = std::min(g.C, cg1 * 4);
        if (l.pointwise) {
          if (p.inU8)
            packPointwiseTileU8(c, static_cast<const uint8_t*>(x) + c0 * P, c1 - c0, P, p.zeroPoint, 0, P, l.pw,
                                img + cg0 * l.pw);
          else
            packPointwiseTile(c, static_cast<const float*>(x) + c0 * P, c1 - c0, P, p.invScale, p.zeroPoint, 0, P,
                              l.pw, img + cg0 * l.pw);
        } else {
          auto* scratch = reinterpret_cast<uint32_t*>(slots + t * l.slot);
          if (p.inU8)
            packPhasesU8(c, static_cast<const uint8_t*>(x) + c0 * HW, c1 - c0, g.H, g.W, g.pt, g.pb, g.pl, g.pr, 1,
                         1, p.zeroPoint, img + cg0 * l.Hp * l.Wp, scratch);
          else
            quantizePhases(c, static_cast<const float*>(x) + c0 * HW, c1 - c0, g.H, g.W, g.pt, g.pb, g.pl, g.pr, 1,
                           1, p.invScale, p.zeroPoint, img + cg0 * l.Hp * l.Wp, scratch);
        }
      });
      // The pointwise planes past CG (K tiles' padding) meet zero weights: zeros keep the
      // reads defined.
      if (l.pointwise && im == 0 && KT * kTile > p.CG)
        std::memset(img + p.CG * l.pw, 0, size_t((KT * kTile - p.CG) * l.pw * 4));
    }
    // 1. The pixel panels: ranges of blocks.
    if (!l.pointwise) {
      const int64_t n = std::min<int64_t>(T, l.blocks);
      a.executor->parallelFor(n, [&](int64_t t) {
        for (int64_t b = rangeBegin(l.blocks, t, n); b < rangeBegin(l.blocks, t + 1, n); ++b)
          packPanel(p, g, l, img, b * kTile, std::min(kTile, P - b * kTile), panels + b * KT * kTileWords);
      });
    }
    // 2. Items (chunk of pixel blocks, range of channel pairs).
    const int64_t n = std::min<int64_t>(T, items);
    a.executor->parallelFor(n, [&](int64_t t) {
      runItems(s, rangeBegin(items, t, n), rangeBegin(items, t + 1, n), slots + t * l.slot);
    });
  }
}

// ---------------------------------------------------------------------------------------
// MatMul / Gemm / FusedMatMul / FusedGemm: u8 activation rows as the A tiles (16 rows x 64
// bytes of K), the s8 weights as the B tiles (16 K-groups x 16 columns x 4 bytes), TDPBUSD.
// The conditions, numerics and epilogue of native_int8.cpp's MatMul kernels (plain INT8).
// Speed (one thread, bert_base4 --int8 in the model, ms, this / i8_gemm_u8s8 VNNI, 3 runs):
// 128x768x2304 + bias 0.29-0.38 / 0.83-0.91; 128x768x768 Gemm 0.21-0.26 / 0.34-0.35;
// 128x768x3072 + bias + GELU 0.91-1.05 / 1.57-1.64 (the GELU row is most of it); 128x3072
// x768 + bias + Z 0.33-0.42 / 1.08-1.16. Whole model 17.4-18.0 -> 8.8-9.9 ms (f32 63-67).

enum class MmOp : int32_t { kMatMul, kGemm };

struct MmParams {
  MmOp op = MmOp::kMatMul;
  int32_t tasks = 1;
  int32_t fused = 0;
  float invScale = 1.0f;  // 1 / s_x
  int32_t zeroPoint = 0;  // z_x
  int32_t transA = 0, transB = 0;
  float alpha = 1.0f, beta = 1.0f;
  int32_t inU8 = 0, zU8 = 0, outU8 = 0;
  float zScale = 1.0f;
  int32_t zZero = 0;
  float outInv = 1.0f;
  int32_t outZero = 0;
  int64_t K = 0, N = 0, KT = 0;  // KT: K tiles of 64 bytes
  EpilogueParams epi;
  int32_t reserved = 0;
};
static_assert(sizeof(MmParams) == 16 * 4 + 3 * 8 + sizeof(EpilogueParams) + 4, "MmParams must have no padding bytes");

bool rankIs(const ir::TensorType& t, size_t lo, size_t hi) {
  return t.shape.rankKnown() && t.shape.rank() >= lo && t.shape.rank() <= hi;
}
int64_t staticDim(const ir::Shape& s, size_t i) { return s[i].isStatic() ? s[i].value() : -1; }

// native_int8.cpp's conditions (int8_support.h) without the f32 components (declined here).
bool mmCommon(const ir::Node& n, const std::vector<ir::TensorType>& in, int64_t K, int64_t N, int64_t axis) {
  return !int8MixedParams(n) && int8LinearSupports(n, in, K, N, axis);
}

bool supportsMatMul(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !rankIs(in[0], 1, runtime::kMaxRank) || !rankIs(in[1], 2, 2)) return false;
  return mmCommon(n, in, staticDim(in[1].shape, 0), staticDim(in[1].shape, 1), 1);
}
bool supportsFusedMatMul(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (!supportsMatMul(n, in) || !int8FusedEpilogueSupports(n, in)) return false;
  return absent(in, 2) || (isF32(in[2]) && rankIs(in[2], 1, 1));
}
bool supportsGemm(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !rankIs(in[0], 2, 2) || !rankIs(in[1], 2, 2)) return false;
  if (!absent(in, 2) && (!isF32(in[2]) || !rankIs(in[2], 0, 2))) return false;
  const bool tB = n.attrs().getInt("transB", 0) != 0;
  return mmCommon(n, in, staticDim(in[1].shape, tB ? 1 : 0), staticDim(in[1].shape, tB ? 0 : 1), tB ? 0 : 1);
}
bool supportsFusedGemm(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  return supportsGemm(n, in) && int8FusedEpilogueSupports(n, in);
}

// Shared: the quantized A rows [roundUp(M, 32)][KT * 64] bytes; per task the accumulators
// [32][32] int32, their f32 [32][32] and a u8 Z's row.
struct MmLayout {
  int64_t rowsBytes = 0, slot = 0;
  int64_t total(int64_t tasks) const { return rowsBytes + tasks * slot; }
};
MmLayout mmLayout(const MmParams& p, int64_t M) {
  MmLayout l;
  l.rowsBytes = roundUp(roundUp(M, 32) * p.KT * 64, 64);
  l.slot = 2 * 32 * 32 * 4 + 64 * 4;
  return l;
}

void prepareMatMul(MmOp op, bool fused, const PrepareInfo& info, Prepared* out) {
  const ir::Node& n = *info.node;
  MmParams p;
  p.op = op;
  p.tasks = std::max(1, info.threads);
  if (fused) {
    p.fused = 1;
    p.epi = EpilogueParams::of(readFusedEpilogue(n));
  }
  float sx;
  ANVIL_CHECK(perTensorQuant(n.input(0), &sx, &p.zeroPoint), ErrorCode::kInvalidModel, n.label(),
              ": input 0 has no per-tensor u8 quantization");
  p.invScale = 1.0f / sx;
  const std::vector<int64_t> ad = staticExtents(info, 0, "A"), bd = staticExtents(info, 1, "B");
  int64_t M;
  if (op == MmOp::kGemm) {
    const ir::Attributes& at = n.attrs();
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
    ANVIL_CHECK(ad.back() == p.K, ErrorCode::kInvalidModel, n.label(), ": MatMul operands do not match");
    M = 1;
    for (size_t i = 0; i + 1 < ad.size(); ++i) M *= ad[i];
  }
  p.KT = ceilDiv(p.K, 64);
  p.inU8 = info.maxTypes[0].dtype == DataType::kU8;
  const size_t zi = ir::linear::kResidualInput;
  if (fused && p.epi.residual && zi < info.maxTypes.size() && info.maxTypes[zi].dtype == DataType::kU8) {
    p.zU8 = 1;
    ANVIL_CHECK(perTensorQuant(n.input(zi), &p.zScale, &p.zZero), ErrorCode::kInvalidModel, n.label(),
                ": Z is u8 without a per-tensor quantization");
  }
  if (n.output(0)->dtype() == DataType::kU8) {
    p.outU8 = 1;
    float sy;
    ANVIL_CHECK(perTensorQuant(n.output(0), &sy, &p.outZero), ErrorCode::kInvalidModel, n.label(),
                ": the u8 output has no per-tensor quantization");
    p.outInv = 1.0f / sy;
  }
  const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr;
  ANVIL_CHECK(w && w->dtype() == DataType::kF32, ErrorCode::kInternal, n.label(),
              ": the INT8 kernels need a constant f32 weight (input 1)");
  const bool tB = p.transB != 0;
  const float* given;
  ANVIL_CHECK(weightQuant(n, tB ? 0 : 1, p.N, &given), ErrorCode::kInvalidModel, n.label(),
              ": the weight's quantization is not per output feature with zero offsets");
  // Feature f, value k: B[k][f] (ks = N), transposed B[f][k] (fs = K).
  const I8Weights q = quantizeWeights(w->data<float>(), p.N, p.K, tB ? p.K : 1, tB ? 1 : p.N, given);
  // [column block (pairs)][K tile][16 groups][16 columns][4 bytes]: the B tiles; zeros past
  // K and N.
  const int64_t nBlocks = roundUp(ceilDiv(p.N, kTile), 2);
  std::string packed(size_t(nBlocks * p.KT * kTileWords * 4), '\0');
  auto* pk = reinterpret_cast<int8_t*>(packed.data());
  for (int64_t f = 0; f < p.N; ++f)
    for (int64_t k = 0; k < p.K; ++k)
      pk[((f / kTile * p.KT + k / 64) * kTile + (k % 64) / 4) * 64 + (f % kTile) * 4 + k % 4] =
          q.q[size_t(f * p.K + k)];
  const int64_t padded = nBlocks * kTile;
  std::string zc, sc;
  int8FeatureOperands(n, p.zeroPoint, q.sums, q.scale, sx, p.alpha, padded, &zc, &sc);
  out->blobs = {std::move(packed), std::move(zc), std::move(sc)};
  out->packedInputs.push_back(1);
  out->workspaceBytes = uint64_t(mmLayout(p, M).total(p.tasks));
  out->setParams(p);
}

// What the tiles' items need.
struct MmRun {
  const MmParams* p;
  int64_t M, N, Kp;
  const uint8_t* rows;
  const int8_t* w;
  const int32_t* zc;
  const float* sc;
  const float* bias;  // FusedMatMul: per column
  float rowBias;      // FusedMatMul: one value
  const float* cp;    // Gemm's C, broadcast
  int64_t rsC, csC;
  const float* zf;
  const uint8_t* zq;
  float* yf;
  uint8_t* yq;
  bool matmulEpi, act, fast;
  RowFinish finish;
  Epilogue epi;
  EpilogueRow row;
  int64_t pairs, mPairs, mChunks;
};

__attribute__((target("amx-tile,amx-int8,avx512f,avx512bw"))) void mmItems(const MmRun& s, int64_t i0, int64_t i1,
                                                                            char* slot) {
  const MmParams& p = *s.p;
  const int64_t N = s.N, KT = p.KT;
  auto* acc = reinterpret_cast<int32_t*>(slot);
  auto* tmp = reinterpret_cast<float*>(slot + 32 * 32 * 4);
  auto* zbuf = tmp + 32 * 32;
  _tile_loadconfig(&tileConfig());
  for (int64_t it = i0; it < i1; ++it) {
    const int64_t mc = it / s.pairs, q = it % s.pairs;
    const int64_t n0 = q * 32, cols = std::min<int64_t>(32, N - n0);
    const int8_t* wa = s.w + (2 * q) * KT * kTileWords * 4;
    const int8_t* wb = wa + KT * kTileWords * 4;
    const __m512i z0 = _mm512_loadu_si512(s.zc + n0), z1 = _mm512_loadu_si512(s.zc + n0 + 16);
    const __m512 c0 = _mm512_loadu_ps(s.sc + n0), c1 = _mm512_loadu_ps(s.sc + n0 + 16);
    for (int64_t mp = rangeBegin(s.mPairs, mc, s.mChunks); mp < rangeBegin(s.mPairs, mc + 1, s.mChunks); ++mp) {
      const int64_t m0 = mp * 32, R = std::min<int64_t>(32, s.M - m0);
      const uint8_t* ra = s.rows + m0 * s.Kp;
      const uint8_t* rb = ra + 16 * s.Kp;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t kt = 0; kt < KT; ++kt) {
        _tile_loadd(4, ra + kt * 64, s.Kp);
        _tile_loadd(5, rb + kt * 64, s.Kp);
        _tile_loadd(6, wa + kt * kTileWords * 4, 64);
        _tile_loadd(7, wb + kt * kTileWords * 4, 64);
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
      }
      _tile_stored(0, acc, 128);
      _tile_stored(1, acc + 16, 128);
      _tile_stored(2, acc + 16 * 32, 128);
      _tile_stored(3, acc + 16 * 32 + 16, 128);
      // y = float(acc - z_x colsum) * (s_x s_w alpha), per column: the i8 tiles' formula.
      for (int64_t r = 0; r < R; ++r) {
        const int32_t* a = acc + r * 32;
        float* y = tmp + r * 32;
        _mm512_storeu_ps(y, _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xffff, _mm512_sub_epi32(_mm512_loadu_si512(a), z0)), c0));
        _mm512_storeu_ps(y + 16, _mm512_mul_ps(
                                     _mm512_maskz_cvtepi32_ps(0xffff, _mm512_sub_epi32(_mm512_loadu_si512(a + 16), z1)), c1));
      }
      if (s.cp)
        for (int64_t r = 0; r < R; ++r) {
          float* yr = tmp + r * 32;
          const float* cr = s.cp + (m0 + r) * s.rsC + n0 * s.csC;
          for (int64_t j = 0; j < cols; ++j) yr[j] += p.beta * cr[j * s.csC];
        }
      const int64_t off = m0 * N + n0;
      if (s.fast) {  // one pass: the rows' epilogue and the store (f32 or requantized u8)
        finishTile(s.finish, tmp, 32, int(R), cols, s.matmulEpi ? &s.rowBias : nullptr, 0,
                   s.matmulEpi && s.bias ? s.bias + n0 : nullptr, s.zf ? s.zf + off : nullptr,
                   s.zq ? s.zq + off : nullptr, N, s.yq ? s.yq + off : nullptr, s.yq ? nullptr : s.yf + off, N);
        continue;
      }
      for (int64_t r = 0; r < R; ++r) {
        float* yr = tmp + r * 32;
        const float* z = s.zf ? s.zf + (m0 + r) * N + n0 : nullptr;
        if (s.zq) {
          const uint8_t* zr = s.zq + (m0 + r) * N + n0;
          for (int64_t j = 0; j < cols; ++j) zbuf[j] = float(int32_t(zr[j]) - p.zZero) * p.zScale;
          z = zbuf;
        }
        if (s.matmulEpi)
          s.row(s.epi, yr, z, s.bias ? s.bias + n0 : nullptr, s.rowBias, cols);
        else if (s.act)
          s.row(s.epi, yr, z, nullptr, 0.0f, cols);
        if (s.yq)
          quantizeU8For(quadConfig(), yr, cols, p.outInv, p.outZero, s.yq + (m0 + r) * N + n0);
        else
          std::memcpy(s.yf + (m0 + r) * N + n0, yr, size_t(cols) * 4);
      }
    }
  }
  _tile_release();
}

void runMatMul(const StepArgs& a) {
  checkAmx(a);
  const MmParams& p = a.paramsAs<MmParams>();
  const TensorView& A = a.in(0);
  TensorView& Y = a.out(0);
  const int64_t K = p.K, N = p.N;
  int64_t M;
  int64_t rsA = K, csA = 1;  // element (m, k) of A at m * rsA + k * csA
  if (p.op == MmOp::kGemm) {
    if (A.rank != 2) a.fail("Gemm operands must be 2-D");
    M = p.transA ? A.dims[1] : A.dims[0];
    if ((p.transA ? A.dims[0] : A.dims[1]) != K) a.fail("A differs from the prepared weight's K");
    if (p.transA) rsA = 1, csA = M;
  } else {
    if (A.rank < 1 || A.dims[A.rank - 1] != K) a.fail("A differs from the prepared weight's K");
    M = A.numel() / K;
  }
  if (Y.numel() != M * N) a.fail("the output extents differ from the product's");
  if ((A.dtype == DataType::kU8) != (p.inU8 != 0) || (Y.dtype == DataType::kU8) != (p.outU8 != 0))
    a.fail("A or Y has another element type than prepared");
  if (M == 0) return;
  const int T = tasksOf(a, p.tasks, double(M) * double(N) * double(K));
  const MmLayout l = mmLayout(p, M);
  if (uint64_t(l.total(T)) > a.workspaceBytes)
    a.fail("the shapes need a larger workspace than prepared (outside the profile?)");
  char* ws = static_cast<char*>(a.workspace);
  auto* rows = reinterpret_cast<uint8_t*>(ws);
  char* slots = ws + l.rowsBytes;
  const int64_t Kp = p.KT * 64, Mp = roundUp(M, 32);

  // 1. A quantized into rows of Kp bytes (zeros past K and in the rows past M), ranges of rows.
  {
    const int64_t blocks = Mp / 16, n = std::min<int64_t>(T, blocks);
    const float* ap = p.inU8 ? nullptr : A.as<float>();
    const uint8_t* aq = p.inU8 ? A.as<uint8_t>() : nullptr;
    a.executor->parallelFor(n, [&](int64_t t) {
      for (int64_t m = rangeBegin(blocks, t, n) * 16; m < rangeBegin(blocks, t + 1, n) * 16; ++m) {
        uint8_t* q = rows + m * Kp;
        if (m >= M) {
          std::memset(q, 0, size_t(Kp));
          continue;
        }
        if (aq && csA == 1)
          std::memcpy(q, aq + m * rsA, size_t(K));
        else if (aq)
          for (int64_t k = 0; k < K; ++k) q[k] = aq[m * rsA + k * csA];
        else if (csA == 1)
          quantizeU8For(quadConfig(), ap + m * rsA, K, p.invScale, p.zeroPoint, q);
        else
          for (int64_t k = 0; k < K; ++k) q[k] = quantizeU8One(ap[m * rsA + k * csA], p.invScale, p.zeroPoint);
        std::memset(q + K, 0, size_t(Kp - K));
      }
    });
  }

  MmRun s;
  s.p = &p;
  s.M = M, s.N = N, s.Kp = Kp;
  s.rows = rows;
  s.w = a.blobs[0].as<int8_t>();
  s.zc = a.blobs[1].as<int32_t>();
  s.sc = a.blobs[2].as<float>();
  s.epi = p.epi.get();
  s.row = epilogueRow(s.epi);
  const void* zres = nullptr;
  if (p.fused && s.epi.residual) {
    if (!a.hasInput(int(ir::linear::kResidualInput))) a.fail("has_residual is 1 but Z (input 3) is absent");
    const TensorView& z = a.in(int(ir::linear::kResidualInput));
    if (z.numel() != Y.numel()) a.fail("Z must have the output's shape");
    if ((z.dtype == DataType::kU8) != (p.zU8 != 0)) a.fail("Z has another element type than prepared");
    zres = z.data;
  }
  s.zf = p.zU8 ? nullptr : static_cast<const float*>(zres);
  s.zq = p.zU8 ? static_cast<const uint8_t*>(zres) : nullptr;
  s.yq = p.outU8 ? Y.as<uint8_t>() : nullptr;
  s.yf = p.outU8 ? nullptr : Y.as<float>();
  s.act = p.fused && (zres || s.epi.act != Activation::kNone);
  s.bias = nullptr;
  s.rowBias = 0.0f;
  if (p.op == MmOp::kMatMul && p.fused && a.hasInput(2)) {
    const TensorView& bv = a.in(2);
    if (bv.numel() == N) s.bias = bv.as<float>();
    else if (bv.numel() == 1) s.rowBias = bv.as<float>()[0];
    else a.fail("bias must have N values or one");
  }
  const GemmC gc = p.op == MmOp::kGemm ? gemmCOf(a, M, N) : GemmC{};
  s.cp = gc.data, s.rsC = gc.rowStride, s.csC = gc.colStride;
  // A column-bias C goes in as the epilogue's column bias (the vector pass or the one-pass
  // finish) instead of the strided scalar loop over every output; the same bits.
  const bool gemmBias = gemmCIsColumnBias(gc, p.beta);
  if (gemmBias) s.bias = s.cp, s.cp = nullptr;
  s.matmulEpi = (p.op == MmOp::kMatMul && p.fused && (s.bias || s.rowBias != 0.0f || s.act)) || gemmBias;
  const bool epilogue = s.matmulEpi || s.act;
  s.fast = !epilogue || finishRowHandles(int(s.epi.act));
  s.finish = rowFinishOf(s.epi, epilogue, p.zScale, p.zZero, p.outInv, p.outZero);
  // 2. Items (range of row pairs, pair of column blocks).
  s.pairs = ceilDiv(N, 32);
  s.mPairs = Mp / 32;
  s.mChunks = s.pairs >= 4 * T ? 1 : std::min(s.mPairs, ceilDiv(4 * T, s.pairs));
  const int64_t items = s.pairs * s.mChunks, n = std::min<int64_t>(T, items);
  a.executor->parallelFor(n, [&](int64_t t) {
    mmItems(s, rangeBegin(items, t, n), rangeBegin(items, t + 1, n), slots + t * l.slot);
  });
}

}  // namespace

}  // namespace anvil::cpu::tactics

namespace anvil::runtime {

void registerNativeInt8AmxKernels(Kernels& k) {
  using namespace anvil::cpu::tactics;
  struct Mm {
    const char* op;
    MmOp kind;
    bool fused;
    bool (*supports)(const ir::Node&, const std::vector<ir::TensorType>&);
  };
  const Mm mms[] = {{"MatMul", MmOp::kMatMul, false, supportsMatMul},
                    {"FusedMatMul", MmOp::kMatMul, true, supportsFusedMatMul},
                    {"Gemm", MmOp::kGemm, false, supportsGemm},
                    {"FusedGemm", MmOp::kGemm, true, supportsFusedGemm}};
  for (const Mm& m : mms) {
    Kernel kn;
    kn.name = std::string("i8_gemm_amx_32x32") + (m.fused ? "_epilogue" : "") + "__amxint8";
    kn.version = m.fused ? 2 : 1;  // 2: SiLU, Sigmoid and Tanh epilogues with vmath.h's new e^-x
    kn.op = m.op;
    kn.domain = m.fused ? "anvil" : "";
    kn.precision = DataType::kI8;
    kn.requirements = {"avx512f", "avx512bw", "amxint8"};
    kn.supports = m.supports;
    const MmOp kind = m.kind;
    const bool fused = m.fused;
    kn.prepare = [kind, fused](const PrepareInfo& i, Prepared* o) { prepareMatMul(kind, fused, i, o); };
    kn.run = runMatMul;
    k.add(std::move(kn));
  }
  for (bool fused : {false, true}) {
    Kernel kn;
    kn.name = std::string("i8_conv2d_amx_32x32") + (fused ? "_epilogue" : "") + "__amxint8";
    kn.version = fused ? 2 : 1;  // 2: SiLU, Sigmoid and Tanh epilogues with vmath.h's new e^-x
    kn.op = fused ? "FusedConv" : "Conv";
    kn.domain = fused ? "anvil" : "";
    kn.precision = DataType::kI8;
    kn.requirements = {"avx512f", "avx512bw", "amxint8"};
    kn.supports = fused ? supportsFusedConv : supportsConv;
    kn.prepare = [fused](const PrepareInfo& i, Prepared* o) { prepareConv(fused, i, o); };
    kn.run = runConv;
    k.add(std::move(kn));
  }
}

}  // namespace anvil::runtime
