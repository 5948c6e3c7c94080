// The i8_conv2d_pixels_* kernels: INT8 Conv / anvil.FusedConv for small spatial outputs
// (<= 784 output pixels: the 14x14 and 7x7 stages of the ResNets), with output PIXELS as the
// broadcast rows of the i8 MatMul tiles (int8_gemm.h, mr at a time) and output CHANNELS as
// their vector columns (nv * lanes at a time: 48 on AVX-512 VNNI). The i8_conv2d_u8s8
// kernels (native_int8.cpp) put channels on the rows and positions on the vectors, which
// wastes half the vector lanes at 7x7 (63 padded positions in 96 columns) and reuses
// registers poorly in the 1x1 form's 49-pixel tiles; here 49 pixels are 6 full panels + 1
// row, and 256..2048 channels fill the vectors.
//  - Numerics: those of the i8 Conv kernels, bit for bit: q_x = quantizeU8One(x, 1/s_x, z_x),
//    per-channel symmetric weights (quantizeWeights), exact int32 sums, then
//    y = float(acc - z_x * colsum[co]) * (s_x * s_w[co]), bias and the f32 epilogue row.
//  - Lowered u8 I/O: input 0, Z and output 0 may each be u8 with a per-tensor quantization on
//    the value (real = scale * (q - zp)): a u8 input is taken as its bytes (what quantizing
//    float(q - zp) * scale gives back), a u8 Z is dequantized to f32 before the f32 residual
//    add, a u8 output is quantizeU8One(y, 1 / s_y, z_y) of exactly the f32 result.
//  - prepare(): weights quantized per output channel, reordered to K = (kh, kw, channel)
//    with the channels padded to the family's group (4 u8 or 2 s16), packed as the MatMul
//    tiles' [KG][width] vectors; z_x * colsum and s_x * s_w per channel.
//  - run(), per image: (0) the input quantized into padded planes of 32-bit groups of
//    channels, the border z_x; (1) the pixel panels [KG][mr] gathered from them (the im2col,
//    no f32 pass; an unpadded 1x1 stride-1 Conv's planes are its quantized input, copied 8
//    words at a time); (2) items (chunk of pixel panels, range of channel blocks): each
//    channel block's weights stream over the chunk's panels into a per-task [pixels][width]
//    scratch, transposed into Y's NCHW rows with the epilogue. No allocation; each element
//    is one exact sum and one f32 epilogue: the bits depend on neither the thread count nor
//    the family.
//  - Speed (one thread, AVX-512 VNNI, resnet50's layers with warm caches, noisy shared box,
//    ms this kernel / i8_conv2d_u8s8): 3x3 512@7x7 0.33-0.37 / 0.40-0.47; 3x3 stride 2 512
//    14 -> 7 0.36-0.40 / 0.48-0.55; 1x1 2048 -> 512@7x7 0.16-0.19 / 0.18-0.21; 1x1 512 ->
//    2048@7x7 + Z 0.18-0.20 / 0.20-0.22; 3x3 256@14x14 0.33-0.37 / 0.31-0.36; 1x1 1024 ->
//    256@14x14 0.20-0.25 / 0.16-0.18 (the builder keeps the faster per layer). In the model,
//    weights cold, the gap widens: 3x3 512@7x7 0.51-0.63 / 1.08-1.15 ms; resnet50 --int8 at
//    one thread 23.3-24.4 -> 19.3-21.1 ms (this kernel in 18 of its 53 Convs).
#include <immintrin.h>

#include <algorithm>
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

// Output pixels above which the kernel declines (no time spent timing it where it loses):
// at 56x56 the i8_conv2d_u8s8 kernels' 48 positions per vector are full and this one ran at
// 0.4-0.7x their speed (3x3 64@56x56 0.56 vs 0.40 ms, 1x1 256 -> 64 0.44 vs 0.30 ms); at 28x28
// outputs it still wins the stride-2 layers (3x3 s2 128 56 -> 28 0.55 vs 0.74 ms).
constexpr int64_t kMaxPixels = 784;

// Trivially copyable and without padding bytes (the engine compares params byte for byte).
struct PixParams {
  I8Isa isa = I8Isa::kAvx2;
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
  int64_t N = 0;          // output channels
  int64_t CG = 0;         // channel groups of kg per tap (the last padded with zeros)
  int64_t KG = 0;         // groups per pixel: kH * kW * CG
  ConvAttrs conv;
  EpilogueParams epi;
  int32_t reserved = 0;
};
static_assert(sizeof(PixParams) == 12 * 4 + 3 * 8 + sizeof(ConvAttrs) + sizeof(EpilogueParams) + 4,
              "PixParams must have no padding bytes");

// ---------------------------------------------------------------------------------------
// Quantization parameters (the conditions of the i8 kernels, plus the lowered u8 values)

// Conv and FusedConv: int8_support.h's plain-INT8 2-D Conv conditions, at most kMaxPixels
// output pixels.
bool supportsConv(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  return supportsPlainInt8Conv2d(n, in, false, kMaxPixels);
}

bool supportsFusedConv(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  return supportsPlainInt8Conv2d(n, in, true, kMaxPixels);
}

// ---------------------------------------------------------------------------------------
// Work split and workspace

// As the i8 kernels: no task below 0.5 M multiply-adds' worth of work.
constexpr double kMinOpsPerTask = 5e5;

int tasksOf(const StepArgs& a, const PixParams& p, double ops) {
  const int byWork = int(std::max(1.0, std::min(1e6, ops / kMinOpsPerTask)));
  return std::max(1, std::min({p.tasks, a.executor ? a.executor->threads() : 1, byWork}));
}

// Pixel panels per tile item: at most 256 pixels (a 14x14 output in one chunk, so each
// channel block's weights are read once; its [pixels][width] scratch is 48 KB: 128 pixels
// measured 3-5% slower on resnet50's 14x14 layers, equal at 28x28) and ~256 KB of panels
// (they stay in L2 while each channel block streams over them), the chunks equal: 28x28's
// 98 panels went 32 + 32 + 32 + 2, two chunks per task on two threads, 64 panels against 34.
int64_t chunkBlocksOf(const I8Config& c, int64_t KG, int64_t blocks) {
  const int64_t byPixels = ceilDiv(256, c.mr), byBytes = (256 * 1024) / (KG * c.mr * 4);
  const int64_t most = std::clamp<int64_t>(std::min(byPixels, byBytes), 1, std::max<int64_t>(1, blocks));
  return ceilDiv(std::max<int64_t>(1, blocks), ceilDiv(std::max<int64_t>(1, blocks), most));
}

// An unpadded 1x1 Conv: its pixel (oh, ow) is input position (oh sH, ow sW), no planes.
bool pointwiseGeom(const Conv2dGeom& g) {
  return g.kH == 1 && g.kW == 1 && g.pt == 0 && g.pl == 0 && g.pb == 0 && g.pr == 0;
}

// One image's working set: the padded planes [CG][Hp][Wp] words (none in the 1x1 form),
// then its pixel panels [blocks][KG][mr]; per task a slot with a channel group's quantized
// bytes (stage 0) or words (the 1x1 form) or the tile scratch [chunk pixels][width] f32, its
// transpose [width][chunk pixels] (u8 output) and one dequantized row of Z (u8 Z) (stage 2).
struct Layout {
  int64_t Hp = 0, Wp = 0, P = 0, blocks = 0, chunkBlocks = 0;
  int64_t imageBytes = 0, panelsBytes = 0, slot = 0;
  int64_t total(int64_t tasks) const { return imageBytes + panelsBytes + tasks * slot; }
};

Layout layoutOf(const I8Config& c, const PixParams& p, const Conv2dGeom& g) {
  Layout l;
  l.Hp = g.pt + g.H + g.pb;
  l.Wp = g.pl + g.W + g.pr;
  l.P = g.OH * g.OW;
  l.blocks = ceilDiv(l.P, c.mr);
  l.chunkBlocks = chunkBlocksOf(c, p.KG, l.blocks);
  // 64 bytes of slack after the last plane for the panel gather's vector loads (no read
  // reaches the panels being written).
  l.imageBytes = pointwiseGeom(g) ? 0 : roundUp(p.CG * l.Hp * l.Wp * 4, 64) + 64;
  l.panelsBytes = roundUp(l.blocks * p.KG * c.mr * 4, 64);
  const int64_t width = int64_t(c.nv) * c.lanes, px = l.chunkBlocks * c.mr;
  l.slot = std::max(roundUp(int64_t(c.kg) * g.H * g.W, 64), 2 * roundUp(px * width * 4, 64) + roundUp(px * 4, 64));
  // The 1x1 form: a group's words for every panel row, strided also its kg channels' pixels
  // gathered (f32 at most).
  if (pointwiseGeom(g)) l.slot = std::max(l.slot, roundUp(l.blocks * c.mr * 4 + int64_t(c.kg) * l.P * 4, 64));
  return l;
}

// ---------------------------------------------------------------------------------------
// Prepare

void prepareConv(I8Isa isa, bool fused, const PrepareInfo& info, Prepared* out) {
  const I8Config& c = i8Config(isa);
  PixParams p;
  p.isa = isa;
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
  p.CG = ceilDiv(g.C, c.kg);
  p.KG = taps * p.CG;
  const I8Weights q = quantizeWeights(su.weights, p.N, K, K, 1, given);
  // K in the panels' order: (kh, kw, channel group, channel in group), zeros past C.
  const int64_t Kp = p.KG * c.kg;
  std::vector<int8_t> reordered(size_t(p.N * Kp), 0);
  for (int64_t f = 0; f < p.N; ++f)
    for (int64_t ch = 0; ch < g.C; ++ch)
      for (int64_t t = 0; t < taps; ++t)
        reordered[size_t(f * Kp + t * p.CG * c.kg + ch)] = q.q[size_t(f * K + ch * taps + t)];
  const int64_t width = int64_t(c.nv) * c.lanes;
  std::string packed(size_t(packedGroupWords(c, p.N, Kp, width, c.lanes)) * 4, '\0');
  packGroups(c, reinterpret_cast<const uint8_t*>(reordered.data()), p.N, Kp, Kp, true, width, c.lanes,
             reinterpret_cast<uint32_t*>(packed.data()));
  // Per channel, padded to 64 (the tiles read whole vectors).
  const int64_t padded = roundUp(p.N, 64);
  std::string zc, sc;  // the i8 kernels' operands, alpha = 1
  int8FeatureOperands(*info.node, p.zeroPoint, q.sums, q.scale, sx, 1.0f, padded, &zc, &sc);
  out->blobs = {std::move(packed), std::move(zc), std::move(sc)};
  out->packedInputs.push_back(1);
  out->workspaceBytes = uint64_t(layoutOf(c, p, g).total(p.tasks));
  out->setParams(p);
}

// ---------------------------------------------------------------------------------------
// Run

// Stage 0: channel groups [cg0, cg1) of one image as padded planes [CG][Hp][Wp] of 32-bit
// words (the family's group of kg channels: u8 quads or u16 pairs), the border holding z_x
// (0 in the padding channels past C, which meet zero weights). x: the image (f32 or u8
// planes); q: kg * H * W bytes. A group's kg planes are quantized in one call and combined
// row by row (a call per 14-pixel row and a word scatter across channels cost as much as
// the products of a 1x1 1024 -> 256 at 14x14).
void imagePlanes(const I8Config& c, const PixParams& p, const Conv2dGeom& g, const Layout& l, const void* x,
                 int64_t cg0, int64_t cg1, uint8_t* q, uint32_t* img) {
  const int bits = 32 / c.kg;
  const int64_t HW = g.H * g.W, plane = l.Hp * l.Wp;
  for (int64_t cg = cg0; cg < cg1; ++cg) {
    const int rows = int(std::min<int64_t>(c.kg, g.C - cg * c.kg));
    const uint8_t* src;
    if (p.inU8) {
      src = static_cast<const uint8_t*>(x) + cg * c.kg * HW;
    } else {
      quantizeU8For(c, static_cast<const float*>(x) + cg * c.kg * HW, rows * HW, p.invScale, p.zeroPoint, q);
      src = q;
    }
    uint32_t border = 0;
    for (int e = 0; e < rows; ++e) border |= uint32_t(p.zeroPoint) << (bits * e);
    uint32_t* out = img + cg * plane;
    std::fill(out, out + g.pt * l.Wp, border);
    std::fill(out + (g.pt + g.H) * l.Wp, out + plane, border);
    for (int64_t h = 0; h < g.H; ++h) {
      uint32_t* r = out + (g.pt + h) * l.Wp;
      std::fill(r, r + g.pl, border);
      std::fill(r + g.pl + g.W, r + l.Wp, border);
      // The row's words in vectors (the family's packer; a scalar loop over 14-pixel rows
      // took 3.4% of resnet50's INT8 run).
      rowWordsU8(c, src + h * g.W, HW, rows, g.W, r + g.pl);
    }
  }
}

// A strided 1x1 Conv's input pixels of channels [c0, c0 + rows): dst[r][p] = x[c0 + r][(p /
// OW) sH][(p % OW) sW] for the P output pixels, elements of elem bytes (u8 or f32). At sW = 2
// (the ResNets' downsamples) 16 bytes or 4 floats at a time, SSE2 (the scalar loop took half
// the products' time of 256 -> 512 at 56 -> 28), while the loads stay inside the row.
void subsample(const Conv2dGeom& g, const void* x, int64_t elem, int64_t c0, int rows, char* dst) {
  const auto* src = static_cast<const char*>(x);
  const __m128i low = _mm_set1_epi16(0xff);
  for (int r = 0; r < rows; ++r) {
    const char* plane = src + (c0 + r) * g.H * g.W * elem;
    char* d = dst + r * g.OH * g.OW * elem;
    for (int64_t oh = 0; oh < g.OH; ++oh, d += g.OW * elem) {
      const char* s = plane + oh * g.sH * g.W * elem;
      int64_t i = 0;
      if (elem == 1) {
        if (g.sW == 2)
          for (; 2 * (i + 16) <= g.W; i += 16) {
            const __m128i a = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * i)), low);
            const __m128i b = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * i + 16)), low);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), _mm_packus_epi16(a, b));
          }
        for (; i < g.OW; ++i) d[i] = s[i * g.sW];
      } else {
        const auto* sf = reinterpret_cast<const float*>(s);
        auto* df = reinterpret_cast<float*>(d);
        if (g.sW == 2)
          for (; 2 * (i + 4) <= g.W; i += 4)
            _mm_storeu_ps(df + i, _mm_shuffle_ps(_mm_loadu_ps(sf + 2 * i), _mm_loadu_ps(sf + 2 * i + 4),
                                                 _MM_SHUFFLE(2, 0, 2, 0)));
        for (; i < g.OW; ++i) df[i] = sf[i * g.sW];
      }
    }
  }
}

// Stage 1: channel groups [cg0, cg1) of the panel [KG][mr] of pixels [p0, p0 + R): group
// (tap, cg) of row r is the word of that tap's input pixel in plane cg (every tap is in
// bounds of the padded planes). Rows from R on repeat row 0 (the R-row tiles never read
// them). A full panel whose pixels are at most two runs of consecutive plane positions
// (stride-1 rows: 8 pixels of a 7- or 14-wide output) takes two vector loads and a blend per
// group instead of mr scalar moves (3x3 256@14x14: the gather was 8% of the layer). The
// loads may read up to mr words past a plane (the last one into the image region's slack;
// at cg1 into the head of a plane another task may be writing); the blend drops them.
// One tap's groups of a panel from n consecutive planes (s: the first plane's word at the
// tap's offset, dst: that group's mr words): two runs per group, the second from lane split.
__attribute__((target("avx2"))) void twoRuns8(const uint32_t* s, int64_t plane, int64_t n, int64_t a, int64_t b,
                                              int split, uint32_t* dst) {
  const __m256i second = _mm256_cmpgt_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(split - 1));
  for (int64_t i = 0; i < n; ++i, s += plane, dst += 8) {
    const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + a));
    const __m256i v2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + b));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_blendv_epi8(v1, v2, second));
  }
}

// The same for stride-2 runs (pixel r of a run at a + 2 r: 3x3 stride-2 layers, whose
// gather went word by word at 22% of the layer's time): 16 words loaded per run and their
// even words kept (vpmovqd). Reads at most one word past the last one used.
__attribute__((target("avx512f,avx2"))) void twoRuns8s2(const uint32_t* s, int64_t plane, int64_t n, int64_t a,
                                                        int64_t b, int split, uint32_t* dst) {
  const __m256i second = _mm256_cmpgt_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(split - 1));
  for (int64_t i = 0; i < n; ++i, s += plane, dst += 8) {
    const __m256i v1 = _mm512_maskz_cvtepi64_epi32(__mmask8(0xff), _mm512_loadu_si512(s + a));
    const __m256i v2 = _mm512_maskz_cvtepi64_epi32(__mmask8(0xff), _mm512_loadu_si512(s + b));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_blendv_epi8(v1, v2, second));
  }
}

void twoRuns4(const uint32_t* s, int64_t plane, int64_t n, int64_t a, int64_t b, int split, uint32_t* dst) {
  const __m128i second = _mm_cmpgt_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(split - 1));
  for (int64_t i = 0; i < n; ++i, s += plane, dst += 4) {
    const __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + a));
    const __m128i v2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + b));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_or_si128(_mm_and_si128(second, v2), _mm_andnot_si128(second, v1)));
  }
}

template <int MR>
void packPanel(const PixParams& p, const Conv2dGeom& g, const Layout& l, const uint32_t* img, int64_t p0, int64_t R,
               int64_t cg0, int64_t cg1, uint32_t* panel) {
  static const bool kAvx2 = runtime::hostHas("avx2"), kAvx512 = runtime::hostHas("avx512f");
  const int64_t plane = l.Hp * l.Wp;
  int64_t base[MR];
  for (int r = 0; r < MR; ++r) {
    const int64_t px = p0 + (r < R ? r : 0), oh = px / g.OW, ow = px % g.OW;
    base[r] = oh * g.sH * l.Wp + ow * g.sW;
  }
  // Runs of step q words: 1 (stride 1), or 2 (stride 2, the 8-row panels on AVX-512).
  const int64_t q = g.sW;
  if (R == MR && ((q == 1 && (MR == 4 || kAvx2)) || (q == 2 && MR == 8 && kAvx512))) {
    int split = 1;
    while (split < MR && base[split] == base[0] + q * split) ++split;
    bool runs = split == MR || base[split] >= q * split;
    for (int r = split + 1; r < MR; ++r) runs = runs && base[r] == base[split] + q * (r - split);
    if (runs) {
      const int64_t b = split == MR ? base[0] : base[split] - q * split;
      const auto fn = MR == 4 ? twoRuns4 : q == 2 ? twoRuns8s2 : twoRuns8;
      for (int64_t kh = 0; kh < g.kH; ++kh)
        for (int64_t kw = 0; kw < g.kW; ++kw)
          fn(img + kh * g.dH * l.Wp + kw * g.dW + cg0 * plane, plane, cg1 - cg0, base[0], b, split,
             panel + ((kh * g.kW + kw) * p.CG + cg0) * MR);
      return;
    }
  }
  for (int64_t kh = 0; kh < g.kH; ++kh)
    for (int64_t kw = 0; kw < g.kW; ++kw) {
      const uint32_t* s = img + kh * g.dH * l.Wp + kw * g.dW + cg0 * plane;
      uint32_t* dst = panel + ((kh * g.kW + kw) * p.CG + cg0) * MR;
      for (int64_t cg = cg0; cg < cg1; ++cg, s += plane, dst += MR)
        for (int r = 0; r < MR; ++r) dst[r] = s[base[r]];
    }
}

// dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols: the tiles' [pixels][channels]
// into Y's channel rows, 8 x 8 blocks in AVX2 registers where the host has AVX2 (a scalar
// strided copy cost ~40% of the products of a 1x1 128 -> 512 at 28x28), the edges scalar.
// An exact copy: the same bits on every path.
__attribute__((target("avx2"))) int64_t transposeAvx2(const float* src, int64_t lds, int64_t rows, int64_t cols,
                                                      float* dst, int64_t ldd) {
  const int64_t r8 = rows / 8 * 8, c8 = cols / 8 * 8;
  // Channels outer: a block of 8 channels fills 8 consecutive Y rows (one contiguous run
  // when the chunk is the whole image) before the next (pixels outer: 512 -> 2048 at 7x7
  // spent 13% of its time here, the stores spread over 48 rows).
  for (int64_t j = 0; j < c8; j += 8)
    for (int64_t i = 0; i < r8; i += 8) {
      const float* s = src + i * lds + j;
      __m256 r[8], t[8], u[8];
      for (int k = 0; k < 8; ++k) r[k] = _mm256_loadu_ps(s + k * lds);
      for (int k = 0; k < 8; k += 2) {
        t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
      }
      for (int k = 0; k < 8; k += 4) {
        u[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
        u[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xee);
        u[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
        u[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xee);
      }
      float* d = dst + j * ldd + i;
      for (int k = 0; k < 4; ++k) {
        _mm256_storeu_ps(d + k * ldd, _mm256_permute2f128_ps(u[k], u[k + 4], 0x20));
        _mm256_storeu_ps(d + (k + 4) * ldd, _mm256_permute2f128_ps(u[k], u[k + 4], 0x31));
      }
    }
  for (int64_t j = 0; j < c8; ++j)  // the last rows % 8 pixels of the full channel blocks
    for (int64_t i = r8; i < rows; ++i) dst[j * ldd + i] = src[i * lds + j];
  return c8;
}

void transposeTile(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  static const bool kAvx2 = runtime::hostHas("avx2");
  const int64_t done = kAvx2 ? transposeAvx2(src, lds, rows, cols, dst, ldd) : 0;
  for (int64_t j = done; j < cols; ++j)
    for (int64_t i = 0; i < rows; ++i) dst[j * ldd + i] = src[i * lds + j];
}

void runConv(const StepArgs& a) {
  const PixParams& p = a.paramsAs<PixParams>();
  const I8Config& c = i8Config(p.isa);
  const TensorView& X = a.in(0);
  TensorView& Y = a.out(0);
  if (X.rank != 4) a.fail("this kernel handles 2-D Conv (rank-4 X) only");
  if ((X.dtype == DataType::kU8) != (p.inU8 != 0) || (Y.dtype == DataType::kU8) != (p.outU8 != 0))
    a.fail("X or Y has another element type than prepared");
  Conv2dGeom g;
  if (!conv2dGeometry(p.conv, X.dims, p.N, &g) || ceilDiv(g.C, c.kg) != p.CG || g.kH * g.kW * p.CG != p.KG)
    a.fail("X does not fit the prepared weight and the Conv attributes");
  if (Y.rank != 4 || Y.dims[0] != g.N || Y.dims[1] != g.M || Y.dims[2] != g.OH || Y.dims[3] != g.OW)
    a.fail("the output extents differ from the Conv's");
  if (Y.numel() == 0) return;
  const Layout l = layoutOf(c, p, g);
  const int64_t P = l.P, Co = p.N, KG = p.KG, mr = c.mr;
  const int T = tasksOf(a, p, double(Y.numel()) * double(g.C * g.kH * g.kW));
  if (uint64_t(l.total(T)) > a.workspaceBytes)
    a.fail("the shapes need a larger workspace than prepared (outside the profile?)");
  char* ws = static_cast<char*>(a.workspace);
  auto* img = reinterpret_cast<uint32_t*>(ws);
  auto* panels = reinterpret_cast<uint32_t*>(ws + l.imageBytes);
  char* slots = ws + l.imageBytes + l.panelsBytes;

  const uint32_t* wp = a.blobs[0].as<uint32_t>();
  const int32_t* zc = a.blobs[1].as<int32_t>();
  const float* sc = a.blobs[2].as<float>();
  const float* bias = nullptr;
  if (a.hasInput(2)) {
    if (a.in(2).numel() != Co) a.fail("B must have one value per output channel");
    bias = a.in(2).as<float>();
  }
  const Epilogue epi = p.epi.get();
  const void* zres = nullptr;
  if (p.fused && epi.residual) {
    if (!a.hasInput(int(ir::linear::kResidualInput))) a.fail("has_residual is 1 but Z (input 3) is absent");
    const TensorView& z = a.in(int(ir::linear::kResidualInput));
    if (z.numel() != Y.numel()) a.fail("Z must have the output's shape");
    if ((z.dtype == DataType::kU8) != (p.zU8 != 0)) a.fail("Z has another element type than prepared");
    zres = z.data;
  }
  const EpilogueRow row = epilogueRow(epi);
  // Without an activation or residual a bias is one f32 add after the scale (the i8 Conv
  // tiles' store); else the f32 epilogue row with the bias as its row bias.
  const bool act = p.fused && (zres || epi.act != Activation::kNone);
  // A u8 output whose epilogue finishTile computes: the transposed rows' epilogue, Z and
  // requantizing store in one vector pass per row (the loop below takes three: the f32 row,
  // then the quantizer, after a scalar dequantization of a u8 Z; resnet50's 14x14 1x1
  // expansions with Z spent ~40% of their time there).
  RowFinish fin;
  const bool oneFinish = p.outU8 && (!act || finishRowHandles(int(epi.act)));
  if (oneFinish) {
    // (Without act the epilogue's activation is None: the bias alone, which the tiles leave out.)
    fin = rowFinishOf(epi, act || bias, p.zScale, p.zZero, p.outInv, p.outZero);
    fin.noNaN = tileFinishNoNaN(sc, Co, bias, bias ? Co : 0, p.zScale, p.outInv);
  }
  // The output channels go to the items as vectors of lanes channels (CV of them), so that
  // tasks get equal counts: in 48-channel blocks 256 channels split 144 + 112 between two
  // tasks (the last block holds 16), which ran resnet50's 14x14 layers ~1.7x faster on
  // two threads than on one.
  const int64_t width = int64_t(c.nv) * c.lanes, CV = ceilDiv(Co, int64_t(c.lanes));
  const int64_t chunks = ceilDiv(l.blocks, l.chunkBlocks);
  const bool pointwise = pointwiseGeom(g);
  // Fewer pixel chunks than twice the tasks: one channel range per task over every chunk
  // (channel ranges outermost in the items; the last chunk may be short), as few split
  // weight blocks as that takes (their 1- and 2-vector tiles run below the 3-vector one).
  const int64_t coChunks = chunks >= 2 * T ? 1 : std::min<int64_t>(CV, T);
  const int64_t items = chunks * coChunks;

  for (int64_t im = 0; im < g.N; ++im) {
    const void* x = p.inU8 ? static_cast<const void*>(X.as<uint8_t>() + im * g.C * g.H * g.W)
                           : static_cast<const void*>(X.as<float>() + im * g.C * g.H * g.W);
    // 0 and 1 in one region, each task for a range of channel groups: a panel's groups of
    // plane cg depend on that plane alone. (Two regions, the panels by ranges of panels,
    // read half the planes from the other core's cache: the panels took longer on two
    // threads than on one, 1x1 1024 -> 256 at 14x14 39 -> 53 us.)
    const int64_t n01 = std::min<int64_t>(T, p.CG);
    if (pointwise) {
      // An unpadded 1x1 Conv: pixel p is input position p at stride 1. A group's words for
      // all pixels (f32: quantized and combined in registers, whole rows; u8: the family's
      // row packer) into the task's slot, then mr words at a time into the panels; strided,
      // the group's input pixels gathered into the slot first (planes of the whole input
      // had packed 4x the pixels the stride-2 downsamples read). (Per panel straight
      // from X, each group read 32 B of four channel rows: 1x1 1024 -> 256 at 14x14 spent
      // 70% of the products' time; planes [CG][P] copied into panels afterwards, 25% of it.)
      const bool strided = g.sH != 1 || g.sW != 1;
      const int64_t HW = g.H * g.W, elem = p.inU8 ? 1 : 4, nw = l.blocks * mr;
      a.executor->parallelFor(n01, [&](int64_t t) {
        auto* words = reinterpret_cast<uint32_t*>(slots + t * l.slot);  // layoutOf: room for both
        char* gathered = slots + t * l.slot + nw * 4;
        for (int64_t cg = rangeBegin(p.CG, t, n01); cg < rangeBegin(p.CG, t + 1, n01); ++cg) {
          const int rows = int(std::min<int64_t>(c.kg, g.C - cg * c.kg));
          if (strided) subsample(g, x, elem, cg * c.kg, rows, gathered);
          if (p.inU8)
            rowWordsU8(c,
                       strided ? reinterpret_cast<const uint8_t*>(gathered)
                               : static_cast<const uint8_t*>(x) + cg * c.kg * HW,
                       strided ? P : HW, rows, P, words);
          else
            packPointwiseTile(c, strided ? reinterpret_cast<const float*>(gathered)
                                         : static_cast<const float*>(x) + cg * c.kg * HW,
                              rows, strided ? P : HW, p.invScale, p.zeroPoint, 0, P, P, words);
          std::fill(words + P, words + nw, 0u);
          uint32_t* d = panels + cg * mr;
          for (int64_t j = 0; j < nw; j += mr, d += KG * mr) {
            if (mr == 8)
              std::memcpy(d, words + j, 32);
            else
              std::memcpy(d, words + j, size_t(mr) * 4);
          }
        }
      });
    } else {
      // 0. The padded planes of the task's channel groups, 1. those groups of every panel.
      a.executor->parallelFor(n01, [&](int64_t t) {
        const int64_t cg0 = rangeBegin(p.CG, t, n01), cg1 = rangeBegin(p.CG, t + 1, n01);
        imagePlanes(c, p, g, l, x, cg0, cg1, reinterpret_cast<uint8_t*>(slots + t * l.slot), img);
        for (int64_t b = 0; b < l.blocks; ++b) {
          const int64_t R = std::min(mr, P - b * mr);
          if (mr == 8)
            packPanel<8>(p, g, l, img, b * mr, R, cg0, cg1, panels + b * KG * mr);
          else
            packPanel<4>(p, g, l, img, b * mr, R, cg0, cg1, panels + b * KG * mr);
        }
      });
    }
    // 2. Items (chunk of panels, range of channel blocks): each channel block's weights
    // stream over the chunk's panels; the [pixels][channels] results go to Y's rows.
    const int64_t n = std::min<int64_t>(T, items);
    a.executor->parallelFor(n, [&](int64_t t) {
      char* slot = slots + t * l.slot;
      auto* tmp = reinterpret_cast<float*>(slot);
      const int64_t px = l.chunkBlocks * mr;
      auto* rows = reinterpret_cast<float*>(slot + roundUp(px * width * 4, 64));
      auto* zrow = rows + roundUp(px * width, 16);
      for (int64_t it = rangeBegin(items, t, n); it < rangeBegin(items, t + 1, n); ++it) {
        const int64_t cc = it / chunks, ch = it % chunks;
        const int64_t b0 = ch * l.chunkBlocks, b1 = std::min(l.blocks, b0 + l.chunkBlocks);
        const int64_t p0 = b0 * mr, np = std::min(P, b1 * mr) - p0;
        // The chunk's vectors [v0, v1) in pieces within the weights' blocks: vectors [va, ve)
        // of block q (the block packed [KG][its width rounded up to lanes]).
        const int64_t v0 = rangeBegin(CV, cc, coChunks), v1 = rangeBegin(CV, cc + 1, coChunks);
        for (int64_t v = v0; v < v1;) {
          const int64_t q = v / c.nv, va = v % c.nv, ve = std::min<int64_t>(c.nv, v1 - q * c.nv);
          v = q * c.nv + ve;
          const int64_t n0 = q * width + va * c.lanes, cols = std::min((ve - va) * c.lanes, Co - n0);
          const int nvec = int(ve - va);
          const int64_t gStride = roundUp(std::min(width, Co - q * width), int64_t(c.lanes));
          const uint32_t* wb = wp + q * KG * width + va * c.lanes;
          // A whole block with one after it: its panels' tiles also fetch the next block's
          // weights (each tile a share of its rows), which stream from memory under these
          // products.
          const bool fetchNext = nvec == c.nv && (q + 1) * width < Co;
          for (int64_t b = b0; b < b1; ++b) {
            const int64_t R = std::min(mr, P - b * mr);
            if (const I8TileNext tn = fetchNext ? i8TileNext(p.isa, int(R), nvec) : nullptr)
              tn(KG, panels + b * KG * mr, wb, gStride, nullptr, zc + n0, sc + n0, nullptr, tmp + (b - b0) * mr * width,
                 width, int(cols), panelShare(wp + (q + 1) * KG * width, int(width), KG, b - b0, b1 - b0));
            else
              i8Tile(p.isa, false, int(R), nvec)(KG, panels + b * KG * mr, wb, gStride, nullptr, zc + n0, sc + n0,
                                                 nullptr, tmp + (b - b0) * mr * width, width, int(cols));
          }
          // Channel j's np pixels: a row of Y (f32 output) or of the task's rows (u8 output).
          float* yb = p.outU8 ? rows : Y.as<float>() + (im * Co + n0) * P + p0;
          const int64_t ldy = p.outU8 ? px : P;
          transposeTile(tmp, width, np, cols, yb, ldy);
          if (oneFinish) {
            const int64_t yo = (im * Co + n0) * P + p0;
            const bool zu8 = zres && p.zU8;
            finishTile(fin, yb, ldy, int(cols), np, fin.epilogue && bias ? bias + n0 : nullptr, 1, nullptr,
                       zres && !zu8 ? static_cast<const float*>(zres) + yo : nullptr,
                       zu8 ? static_cast<const uint8_t*>(zres) + yo : nullptr, P, Y.as<uint8_t>() + yo, nullptr, P);
            continue;
          }
          for (int64_t j = 0; j < cols; ++j) {
            const int64_t co = n0 + j, yo = (im * Co + co) * P + p0;
            float* y = yb + j * ldy;
            if (act) {
              const float* z = nullptr;
              if (zres && p.zU8) {
                const uint8_t* zq = static_cast<const uint8_t*>(zres) + yo;
                for (int64_t i = 0; i < np; ++i) zrow[i] = float(int32_t(zq[i]) - p.zZero) * p.zScale;
                z = zrow;
              } else if (zres) {
                z = static_cast<const float*>(zres) + yo;
              }
              row(epi, y, z, nullptr, bias ? bias[co] : 0.0f, np);
            } else if (bias) {
              // The same one add, in vectors: the epilogue row of no activation (the scalar
              // loop cost 1x1 s2 256 -> 512 with f32 output a quarter of its products' time).
              row(epi, y, nullptr, nullptr, bias[co], np);
            }
            if (p.outU8) quantizeU8For(c, y, np, p.outInv, p.outZero, Y.as<uint8_t>() + yo);
          }
        }
      }
    });
  }
}

// ---------------------------------------------------------------------------------------
// Registration

struct Variant {
  I8Isa isa;
  const char* tile;    // "8x48": register tile rows (pixels) x columns (channels)
  const char* suffix;  // "__avx512vnni"
  std::vector<std::string> requirements;
};

}  // namespace

}  // namespace anvil::cpu::tactics

namespace anvil::runtime {

void registerNativeInt8PixelsKernels(Kernels& k) {
  using namespace anvil::cpu::tactics;
  // The families and requirements of the i8_conv2d_u8s8 kernels (native_int8.cpp).
  const Variant variants[] = {
      {I8Isa::kAvx512Vnni, "8x48", "__avx512vnni", {"avx512f", "avx512bw", "avx512vnni"}},
      {I8Isa::kAvxVnni, "4x24", "__avxvnni", {"avx2", "fma", "avxvnni"}},
      {I8Isa::kAvx2, "4x16", "__avx2", {"avx2", "fma"}},
      {I8Isa::kPortable, "", "_portable", {}},
  };
  for (const Variant& v : variants) {
    const I8Isa isa = v.isa;
    for (bool fused : {false, true}) {
      Kernel kn;
      kn.name = std::string("i8_conv2d_pixels_u8s8") + (*v.tile ? std::string("_") + v.tile : std::string()) +
                (fused ? "_epilogue" : "") + v.suffix;
      kn.version = fused ? 2 : 1;  // 2: SiLU, Sigmoid and Tanh epilogues with vmath.h's new e^-x
      kn.op = fused ? "FusedConv" : "Conv";
      kn.domain = fused ? "anvil" : "";
      kn.precision = DataType::kI8;
      kn.requirements = v.requirements;
      kn.supports = fused ? supportsFusedConv : supportsConv;
      kn.prepare = [isa, fused](const PrepareInfo& i, Prepared* o) { prepareConv(isa, fused, i, o); };
      kn.run = runConv;
      k.add(std::move(kn));
    }
  }
}

}  // namespace anvil::runtime
