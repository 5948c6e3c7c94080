// The i8_conv2d_amx_* kernels: INT8 Conv / anvil.FusedConv on the AMX tile unit (TDPBSUD:
// 16x16 int32 += 16x64 s8 . 64x16 u8 in one instruction, ~10x the MACs per cycle of the
// AVX-512 VNNI tiles). Output CHANNELS are the tile rows (the s8 weights are the A operand,
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
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "cpu/tactics/int8_gemm.h"
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
bool rank4(const ir::TensorType& t) { return t.shape.rankKnown() && t.shape.rank() == 4; }

// ---------------------------------------------------------------------------------------
// Quantization parameters (the i8 kernels' conditions)

// A value's per-tensor quantization: an f32 rank-0 scale > 0 (finite) and a u8 zero point
// (absent: 0) with one value; rank0Zero asks a rank-0 one (a lowered value's contract).
bool perTensorQuant(const ir::Value* v, bool rank0Zero, float* scale, int32_t* zp) {
  if (!v || !v->quantization() || !v->quantization()->perTensor()) return false;
  const ir::Quantization& q = *v->quantization();
  if (q.scale.dtype() != DataType::kF32 || q.scale.numel() != 1 || q.scale.rank() != 0) return false;
  const float s = q.scale.data<float>()[0];
  if (!(s > 0.0f) || !std::isfinite(s)) return false;
  int32_t z = 0;
  if (q.zeroPoint.defined()) {
    if (q.zeroPoint.dtype() != DataType::kU8 || q.zeroPoint.numel() != 1) return false;
    if (rank0Zero && q.zeroPoint.rank() != 0) return false;
    z = q.zeroPoint.data<uint8_t>()[0];
  }
  if (scale) *scale = s;
  if (zp) *zp = z;
  return true;
}

// The weight's own per-output-channel quantization (a Q/DQ import): f32 scales > 0 along
// axis 0, zero points absent or s8 zeros; *scales null when it carries none.
bool weightQuant(const ir::Node& n, int64_t N, const float** scales) {
  *scales = nullptr;
  const ir::Value* w = n.input(1);
  if (!w || !w->quantization()) return true;
  const ir::Quantization& q = *w->quantization();
  if (q.perTensor() || *q.axis != 0) return false;
  if (q.scale.dtype() != DataType::kF32 || q.scale.rank() != 1 || q.scale.numel() != N) return false;
  for (int64_t i = 0; i < N; ++i)
    if (!(q.scale.data<float>()[i] > 0.0f) || !std::isfinite(q.scale.data<float>()[i])) return false;
  if (q.zeroPoint.defined()) {
    if (q.zeroPoint.dtype() != DataType::kI8 || q.zeroPoint.numel() != N) return false;
    for (int64_t i = 0; i < N; ++i)
      if (q.zeroPoint.data<int8_t>()[i] != 0) return false;
  }
  *scales = q.scale.data<float>();
  return true;
}

bool convAttrsOf(const ir::Node& n, const ir::Shape& w, ConvAttrs* a) {
  if (!w.rankKnown() || w.rank() != 4 || !w[2].isStatic() || !w[3].isStatic()) return false;
  const ir::Attributes& at = n.attrs();
  a->group = at.getInt("group", 1);
  a->kH = w[2].value();
  a->kW = w[3].value();
  const std::vector<int64_t> ks = at.getInts("kernel_shape", {a->kH, a->kW});
  if (ks.size() != 2 || ks[0] != a->kH || ks[1] != a->kW) return false;
  const std::vector<int64_t> s = at.getInts("strides", {1, 1}), d = at.getInts("dilations", {1, 1});
  if (s.size() != 2 || d.size() != 2 || s[0] <= 0 || s[1] <= 0 || d[0] <= 0 || d[1] <= 0) return false;
  a->sH = s[0], a->sW = s[1], a->dH = d[0], a->dW = d[1];
  return decodeConvPads(at, a);
}

// Conv and FusedConv: a 2-D single-group Conv the precision pass set to INT8, static
// extents, a constant f32 weight with K = C * kH * kW in [1, kI8MaxK], input 0 f32 or
// lowered u8 with its per-tensor quantization, output f32 or lowered u8; plain INT8 only.
bool supportsConv(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (n.precision() != DataType::kI8 || in.size() < 2 || !rank4(in[0]) || !rank4(in[1])) return false;
  if (!in[0].shape.isStatic() || !in[1].shape.isStatic()) return false;
  if (!absent(in, 2) && (!isF32(in[2]) || !in[2].shape.rankKnown() || in[2].shape.rank() != 1)) return false;
  const ir::Attributes& tp = n.tacticParams();
  if (tp.has("fp32_channels") || tp.has("adaptive_tau") || tp.has("adaptive_test")) return false;
  if (!perTensorQuant(n.input(0), false, nullptr, nullptr) || !n.input(1) || !n.input(1)->isInitializer() ||
      !isF32(in[1]))
    return false;
  if (in[0].dtype == DataType::kU8) {
    if (!perTensorQuant(n.input(0), true, nullptr, nullptr)) return false;
  } else if (!isF32(in[0])) {
    return false;
  }
  const ir::Value* y = n.output(0);
  if (!y) return false;
  if (y->dtype() == DataType::kU8) {
    if (!perTensorQuant(y, true, nullptr, nullptr)) return false;
  } else if (y->dtype() != DataType::kF32) {
    return false;
  }
  ConvAttrs a;
  if (!convAttrsOf(n, in[1].shape, &a) || a.group != 1) return false;
  const std::vector<int64_t> xd = in[0].shape.extents(), wd = in[1].shape.extents();
  const int64_t K = wd[1] * wd[2] * wd[3];
  if (K < 1 || K > kI8MaxK || wd[0] < 1) return false;
  Conv2dGeom g;
  if (!conv2dGeometry(a, xd.data(), wd[0], &g) || g.C != wd[1]) return false;
  const float* s;
  return weightQuant(n, wd[0], &s);
}

bool supportsFusedConv(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (!supportsConv(n, in)) return false;
  Epilogue e;
  if (!ir::linear::readEpilogue(n.attrs(), &e).empty()) return false;
  const size_t zi = ir::linear::kResidualInput;
  const bool hasZ = !absent(in, zi);
  if (hasZ != e.residual) return false;
  if (!hasZ || isF32(in[zi])) return true;
  return in[zi].dtype == DataType::kU8 && perTensorQuant(n.input(zi), true, nullptr, nullptr);
}

// ---------------------------------------------------------------------------------------
// Work split and workspace

constexpr int64_t kTile = 16;       // rows and int32 columns of every tile
constexpr int64_t kTileWords = 256;  // 16 x 64 bytes
constexpr double kMinOpsPerTask = 5e5;

int tasksOf(const StepArgs& a, const AmxParams& p, double ops) {
  const int byWork = int(std::max(1.0, std::min(1e6, ops / kMinOpsPerTask)));
  return std::max(1, std::min({p.tasks, a.executor ? a.executor->threads() : 1, byWork}));
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

std::vector<int64_t> staticExtents(const PrepareInfo& info, size_t i, const char* what) {
  ANVIL_CHECK(i < info.maxTypes.size() && info.maxTypes[i].shape.isStatic(), ErrorCode::kInternal,
              info.node->label(), ": ", what, " has no static extents at the profile's max shapes");
  return info.maxTypes[i].shape.extents();
}

void prepareConv(bool fused, const PrepareInfo& info, Prepared* out) {
  const ir::Node& n = *info.node;
  AmxParams p;
  p.tasks = std::max(1, info.threads);
  if (fused) {
    p.fused = 1;
    p.epi = EpilogueParams::of(readFusedEpilogue(n));
  }
  float sx;
  ANVIL_CHECK(perTensorQuant(n.input(0), false, &sx, &p.zeroPoint), ErrorCode::kInvalidModel, n.label(),
              ": input 0 has no per-tensor u8 quantization");
  p.invScale = 1.0f / sx;
  p.inU8 = info.maxTypes[0].dtype == DataType::kU8;
  const size_t zi = ir::linear::kResidualInput;
  if (fused && p.epi.residual && zi < info.maxTypes.size() && info.maxTypes[zi].dtype == DataType::kU8) {
    p.zU8 = 1;
    ANVIL_CHECK(perTensorQuant(n.input(zi), true, &p.zScale, &p.zZero), ErrorCode::kInvalidModel, n.label(),
                ": Z is u8 without a per-tensor quantization");
  }
  if (n.output(0)->dtype() == DataType::kU8) {
    p.outU8 = 1;
    float sy;
    ANVIL_CHECK(perTensorQuant(n.output(0), true, &sy, &p.outZero), ErrorCode::kInvalidModel, n.label(),
                ": the u8 output has no per-tensor quantization");
    p.outInv = 1.0f / sy;
  }
  ANVIL_CHECK(convAttrsOf(n, info.maxTypes[1].shape, &p.conv) && p.conv.group == 1, ErrorCode::kInvalidModel,
              n.label(), ": not a 2-D single-group Conv");
  const std::vector<int64_t> xd = staticExtents(info, 0, "X"), wd = staticExtents(info, 1, "W");
  Conv2dGeom g;
  ANVIL_CHECK(conv2dGeometry(p.conv, xd.data(), wd[0], &g) && wd[1] == g.C, ErrorCode::kInvalidModel, n.label(),
              ": X ", info.maxTypes[0].str(), " and W ", info.maxTypes[1].str(), " do not fit the Conv attributes");
  const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr;
  ANVIL_CHECK(w && w->dtype() == DataType::kF32, ErrorCode::kInternal, n.label(),
              ": the INT8 Conv needs a constant f32 weight (input 1)");
  const float* given;
  ANVIL_CHECK(weightQuant(n, g.M, &given), ErrorCode::kInvalidModel, n.label(),
              ": the weight's quantization is not per output channel with zero offsets");
  const int64_t taps = g.kH * g.kW, K = g.C * taps;
  p.N = g.M;
  p.CG = ceilDiv(g.C, 4);
  p.KG = taps * p.CG;
  p.KT = ceilDiv(p.KG, kTile);
  const I8Weights q = quantizeWeights(w->data<float>(), p.N, K, K, 1, given);
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
  std::string zc(size_t(padded) * 4, '\0'), sc(size_t(padded) * 4, '\0');
  for (int64_t f = 0; f < p.N; ++f) {
    const int32_t z = p.zeroPoint * q.sums[size_t(f)];
    const float s = sx * q.scale[size_t(f)];  // the i8 kernels' (s_x * s_w) * alpha, alpha = 1
    std::memcpy(zc.data() + f * 4, &z, 4);
    std::memcpy(sc.data() + f * 4, &s, 4);
  }
  out->blobs = {std::move(packed), std::move(zc), std::move(sc)};
  out->packedInputs.push_back(1);
  out->workspaceBytes = uint64_t(layoutOf(p, g).total(p.tasks));
  out->setParams(p);
}

// ---------------------------------------------------------------------------------------
// Run

const I8Config& quadConfig() { return i8Config(I8Isa::kAvx512Vnni); }  // u8 quads (kg 4)

// Stage 1: the B panel [KT * 16 groups][16 pixels] of pixels [p0, p0 + R) from the padded
// planes; group (tap, cg) of pixel r is its tap's input word in plane cg. Lanes from R on
// repeat pixel p0 (their columns are dropped); groups past KG are zeros (zero weights).
// At stride 1 the 16 pixels are a few runs of consecutive plane words (a run per output
// row they touch): one masked load per run; else (or over 4 runs) one vpgatherdd.
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
          const float bv = s.bias[co];
          for (int64_t i = 0; i < np; ++i) y[i] = y[i] + bv;
        }
        if (p.outU8) quantizeU8For(quadConfig(), y, np, p.outInv, p.outZero, s.Y->as<uint8_t>() + yo);
      }
    }
  }
  _tile_release();
}

void runConv(const StepArgs& a) {
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
  const int T = tasksOf(a, p, double(Y.numel()) * double(g.C * g.kH * g.kW));
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
  s.finish.epilogue = true;
  s.finish.act = int(s.epi.act);
  s.finish.p0 = s.epi.p0;
  s.finish.p1 = s.epi.p1;
  s.finish.addFirst = s.epi.addFirst;
  s.finish.zScale = p.zScale;
  s.finish.zZero = p.zZero;
  s.finish.yInv = p.outInv;
  s.finish.yZero = p.outZero;
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

}  // namespace

}  // namespace anvil::cpu::tactics

namespace anvil::runtime {

void registerNativeInt8AmxKernels(Kernels& k) {
  using namespace anvil::cpu::tactics;
  for (bool fused : {false, true}) {
    Kernel kn;
    kn.name = std::string("i8_conv2d_amx_16x32") + (fused ? "_epilogue" : "") + "__amxint8";
    kn.version = 1;
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
