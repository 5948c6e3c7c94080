// Kernels of the blocked layout NCHW<b>c (cpu/tactics/nchwc.h) over spatial windows:
// depthwise convolution (Conv, anvil.FusedConv; channels-last anvil.ConvNhwc with the
// same rows, and a portable kernel for it) and 2-D MaxPool / AveragePool, b = 8 (AVX2)
// and b = 16 (AVX-512), one body (native_nchwc_spatial_body.h) per ISA. A pixel's b channels
// are one vector, so every tap is one FMA (or max, add) on full vectors whatever the width of
// the row, and no lanes idle at 7x7 or 14x14. Work is split over the N * Cb * OH output rows
// in fixed ranges; each row is computed the same way by whichever task gets it: bitwise equal
// for any thread count. No allocation in run().
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/tactics/native_linear_conv.h"
#include "cpu/tactics/native_linear_epilogue.h"
#include "cpu/tactics/nchwc.h"
#include "cpu/tactics/nchwc_depthwise.h"
#include "cpu/tactics/task_split.h"
#include "ir/ops/anvil_linear.h"
#include "ir/ops/nn_util.h"
#include "runtime/kernel.h"

namespace anvil::cpu::tactics {
namespace {

using ir::linear::Activation;
using ir::linear::Epilogue;
using runtime::Kernel;
using runtime::PrepareInfo;
using runtime::Prepared;
using runtime::StepArgs;
using runtime::TensorView;

constexpr int64_t kMaxDwRows = 64;  // the tallest depthwise filter served (a row pointer each)

// What the rows of one depthwise run share.
struct DwJob {
  Conv2dGeom g;
  const float *x, *w, *bias, *z, *zero;
  float* y;
  float lo, hi;  // the clamp of a fused Relu / Clip without residual
  bool epilogue;
  Epilogue epi;
  EpilogueRow row;
  // The row ring (see ringRow): per task ringFloats floats from ring, slotWidth pixels a
  // slot; null: rows read in place, edge pixels apart.
  float* ring;
  int64_t ringFloats, slotWidth;
  int64_t bandRows;  // anvil.ConvNhwc: output rows per band (dwRowsNhwc)
};

constexpr int kRingSlots = 8;  // >= the filter rows of the fast paths (7)
struct DwRing {
  float* slots = nullptr;
  int64_t tags[kRingSlots];
};

// The window of one pooling run (auto_pad resolved for its extents).
struct PoolGeom {
  int64_t H, W, OH, OW, pt, pl, kh, kw, sh, sw, dh, dw;
};

struct PoolJob {
  PoolGeom g;
  int64_t C;
  const float* x;
  float* y;
  bool max, includePad;
};

// Kernel rows [k0, k1) of output row oh that fall inside the input.
inline void windowRows(const PoolGeom& g, int64_t oh, int64_t* k0, int64_t* k1) {
  const int64_t h0 = oh * g.sh - g.pt;
  *k0 = h0 >= 0 ? 0 : (-h0 + g.dh - 1) / g.dh;
  *k1 = h0 + (g.kh - 1) * g.dh < g.H ? g.kh : (g.H - 1 - h0) / g.dh + 1;
  if (g.H - 1 - h0 < 0) *k1 = 0;
  if (*k1 < *k0) *k1 = *k0;
}

using DwRowsFn = void (*)(const DwJob&, int64_t, int64_t, int64_t);
using PoolRowsFn = void (*)(const PoolJob&, int64_t, int64_t);

// ---- AVX2 + FMA: NCHW8c --------------------------------------------------------------------

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {

struct V {
  using T = __m256;
  static constexpr int N = 8;
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static T zero() { return _mm256_setzero_ps(); }
  static T set1(float v) { return _mm256_set1_ps(v); }
  static T fmadd(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T div(T a, T b) { return _mm256_div_ps(a, b); }
  static T max(T a, T b) { return _mm256_max_ps(a, b); }
  // NaN passes (max_ps / min_ps return the second operand when one is NaN), as the
  // epilogue's Relu and Clip.
  static T clamp(T v, T lo, T hi) { return _mm256_min_ps(hi, _mm256_max_ps(lo, v)); }
};

#include "cpu/tactics/native_nchwc_spatial_body.h"

}  // namespace avx2
#pragma GCC pop_options

// ---- AVX-512: NCHW16c ----------------------------------------------------------------------

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
namespace avx512 {

// The zero-masked forms with every lane set: the same vmaxps / vminps, but GCC 12 reports
// the _mm512_undefined_ps() inside the plain ones as "may be used uninitialized" once they
// inline into larger loops (a false positive).
struct V {
  using T = __m512;
  static constexpr int N = 16;
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static T zero() { return _mm512_setzero_ps(); }
  static T set1(float v) { return _mm512_set1_ps(v); }
  static T fmadd(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T div(T a, T b) { return _mm512_div_ps(a, b); }
  static T max(T a, T b) { return _mm512_maskz_max_ps(__mmask16(0xffff), a, b); }
  static T clamp(T v, T lo, T hi) {
    return _mm512_maskz_min_ps(__mmask16(0xffff), hi, _mm512_maskz_max_ps(__mmask16(0xffff), lo, v));
  }
};

#include "cpu/tactics/native_nchwc_spatial_body.h"

}  // namespace avx512
#pragma GCC pop_options

bool isF32(const ir::TensorType& t) { return t.dtype == DataType::kF32; }
bool present(const std::vector<ir::TensorType>& in, size_t i) {
  return i < in.size() && in[i].dtype != DataType::kUndefined;
}
// A constant, row-major input (filters, biases stay plain in a blocked node).
bool plainConstant(const ir::Node& n, size_t i) {
  const ir::Value* v = i < n.numInputs() ? n.input(i) : nullptr;
  return v && v->initializer() && nchwc::blockOf(v) == 0;
}
bool staticRank4(const ir::TensorType& t) {
  if (!t.shape.rankKnown() || t.shape.rank() != 4) return false;
  return t.shape[1].isStatic();
}

// ---- Depthwise convolution ---------------------------------------------------------------

struct DwParams {
  ConvAttrs conv;
  int64_t C = 0;
  int64_t zeroFloats = 0;  // the zero row: the widest input or padded row of the profile
  int64_t ringFloats = 0;  // a task's row ring at the profile's widest (0: no ring)
  EpilogueParams epi;
  int32_t fused = 0, block = 8, tasks = 1;
};
static_assert(sizeof(DwParams) == 96 + 24 + 20 + 12, "DwParams must have no padding bytes");

// The filters and strides with unrolled rows (dwRowFast).
bool fastFilter(const Conv2dGeom& g) {
  return g.kH == g.kW && g.sH == g.sW && g.dH == 1 && g.dW == 1 && (g.kH == 3 || g.kH == 5 || g.kH == 7) &&
         (g.sH == 1 || g.sH == 2);
}

bool dwAttrs(const ir::Node& n, const ir::Shape& w, ConvAttrs* a) {
  const ir::Attributes& at = n.attrs();
  const std::vector<int64_t> ks = at.getInts("kernel_shape", {w[2].value(), w[3].value()});
  if (ks.size() != 2 || ks[0] != w[2].value() || ks[1] != w[3].value() || ks[0] > kMaxDwRows) return false;
  const std::vector<int64_t> s = at.getInts("strides", {1, 1}), d = at.getInts("dilations", {1, 1});
  if (s.size() != 2 || s[0] < 1 || s[1] < 1) return false;
  if (d != std::vector<int64_t>{1, 1}) return false;  // dilated depthwise: the plain kernels
  a->group = at.getInt("group", 1);
  a->kH = ks[0];
  a->kW = ks[1];
  a->sH = s[0];
  a->sW = s[1];
  return decodeConvPads(at, a);
}

bool supportsDw(int block, bool fused, const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !isF32(in[0]) || !isF32(in[1]) || !staticRank4(in[0])) return false;
  if (nchwc::blockOf(n.input(0)) != block || n.numOutputs() < 1 || nchwc::blockOf(n.output(0)) != block) return false;
  const ir::Shape& w = in[1].shape;
  if (!plainConstant(n, 1) || !w.rankKnown() || w.rank() != 4 || !w.isStatic()) return false;
  ConvAttrs a;
  if (!dwAttrs(n, w, &a)) return false;
  const int64_t C = in[0].shape[1].value();
  if (a.group != C || w[0].value() != C || w[1].value() != 1) return false;
  if (present(in, 2) && (!isF32(in[2]) || !plainConstant(n, 2) || in[2].shape.numel() != C)) return false;
  if (!fused) return true;
  if (!fusedEpilogueSupported(n, in)) return false;
  const size_t z = ir::linear::kResidualInput;
  return !present(in, z) || nchwc::blockOf(n.input(z)) == block;
}

// The constant filter [C][1][kh][kw] as [ceil(C/lanes)][kh][kw][lanes] and the bias as
// [ceil(C/lanes)][lanes], zero in padding lanes, into out with p and the workspace of its
// zero row and task rings. kind names the kernel in the error.
void packDepthwise(const PrepareInfo& info, const DwParams& p, int64_t lanes, const char* kind, Prepared* out) {
  const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr;
  ANVIL_CHECK(w, ErrorCode::kInvalidModel, info.node->label(), ": the ", kind,
              " depthwise kernel needs a constant filter");
  const ir::Tensor* b = info.constants.size() > 2 ? info.constants[2] : nullptr;
  const int64_t C = p.C, padded = nchwc::channelBlocks(C, int(lanes)) * lanes, KK = p.conv.kH * p.conv.kW;
  std::vector<float> wp(size_t(padded * KK), 0.0f), bp(size_t(padded), 0.0f);
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t t = 0; t < KK; ++t) wp[size_t(((c / lanes) * KK + t) * lanes + c % lanes)] = w->data<float>()[c * KK + t];
    if (b) bp[size_t(c)] = b->data<float>()[c];
  }
  out->blobs.emplace_back(reinterpret_cast<const char*>(wp.data()), wp.size() * sizeof(float));
  out->blobs.emplace_back(reinterpret_cast<const char*>(bp.data()), bp.size() * sizeof(float));
  out->packedInputs.push_back(1);
  if (b) out->packedInputs.push_back(2);
  out->workspaceBytes = uint64_t(p.zeroFloats + p.tasks * p.ringFloats) * sizeof(float);
  out->setParams(p);
}

void prepareDw(int block, bool fused, const PrepareInfo& info, Prepared* out) {
  const ir::Node& n = *info.node;
  DwParams p;
  p.block = block;
  p.fused = fused ? 1 : 0;
  p.tasks = preparedSlots(info);
  ANVIL_CHECK(info.maxTypes.size() > 1 && info.maxTypes[0].shape.isStatic() && info.maxTypes[1].shape.isStatic(),
              ErrorCode::kInternal, n.label(), ": X and W need static extents at the profile's max shapes");
  ANVIL_CHECK(dwAttrs(n, info.maxTypes[1].shape, &p.conv), ErrorCode::kInvalidModel, n.label(),
              ": not a depthwise Conv this kernel handles");
  if (fused) p.epi = EpilogueParams::of(readFusedEpilogue(n));
  const std::vector<int64_t> xd = info.maxTypes[0].shape.extents();
  p.C = xd[1];
  Conv2dGeom g;
  ANVIL_CHECK(conv2dGeometry(p.conv, xd.data(), p.C, &g), ErrorCode::kInvalidModel, n.label(), ": X ",
              info.maxTypes[0].str(), " does not fit the Conv attributes");
  const int64_t slot = (g.OW - 1) * g.sW + g.kW;
  p.zeroFloats = std::max(g.W, slot) * block;
  if (fastFilter(g)) p.ringFloats = kRingSlots * slot * block;
  packDepthwise(info, p, block, "blocked", out);
}

void runDw(const StepArgs& a) {
  const DwParams& p = a.paramsAs<DwParams>();
  const TensorView& X = a.in(0);
  TensorView& Y = a.out(0);
  DwJob j{};
  if (X.rank != 4 || X.dims[1] != p.C) a.fail("X must be [N, C, H, W] with the prepared channels");
  if (!conv2dGeometry(p.conv, X.dims, p.C, &j.g)) a.fail("X does not fit the Conv attributes");
  const Conv2dGeom& g = j.g;
  if (Y.rank != 4 || Y.dims[0] != g.N || Y.dims[1] != g.C || Y.dims[2] != g.OH || Y.dims[3] != g.OW)
    a.fail("the output extents differ from the Conv's");
  if (Y.numel() == 0) return;
  if (g.W * p.block > p.zeroFloats || uint64_t(p.zeroFloats + p.tasks * p.ringFloats) * sizeof(float) > a.workspaceBytes)
    a.fail("the input is wider than prepared (outside the profile?)");
  const int64_t units = g.N * nchwc::channelBlocks(g.C, p.block) * g.OH;
  const int64_t T = std::min<int64_t>({units, std::max(1, a.executor->threads()), p.tasks});
  j.x = X.as<float>();
  j.y = Y.as<float>();
  j.w = a.blobs[0].as<float>();
  j.bias = a.blobs[1].as<float>();
  float* zero = static_cast<float*>(a.workspace);
  // Rows of padded copies where the edge pixels would be many: narrow rows (their edge
  // pixels go one at a time with bounds checks on each tap otherwise), and 7x7 filters.
  // Measured (1 thread, AVX-512 / AVX2, min of 50, ms, in place / ring): 3x3 192x28 0.029 /
  // 0.032, 144x56 0.117 / 0.130, 32x112 0.096 / 0.118; 5x5 672x14 0.119 / 0.106, 1152x7 0.067
  // / 0.055; 7x7 96x56 0.24 / 0.20 (AVX2 0.47 / 0.40), 384x14 0.107 / 0.072.
  // AVX-512's 3x3 rows stay in place however narrow (stride 1: two output rows a pass, which
  // the ring does not do): on the Intel Xeon guest (NativeNchwcSpatialBench.DISABLED_Depthwise,
  // medians, us, ring / in place) 384x14 20.0 / 15.6, 576x14 30.5 / 23.3, 960x7 15.3 / 13.9,
  // and in mobilenet_v2 its stride-2 28 -> 14 and 14 -> 7 layers 16.6 / 11.5 and 13.9 / 11.8
  // (Zen 4 not measured at these widths; AVX2 there within noise, kept on the ring).
  const int64_t slot = (g.OW - 1) * g.sW + g.kW;
  const bool narrowRing = (g.kW >= 7 || g.OW < 8 * g.kW) && !(p.block == 16 && g.kW == 3);
  const bool ring = fastFilter(g) && narrowRing && slot * p.block <= p.zeroFloats &&
                    kRingSlots * slot * p.block <= p.ringFloats;
  std::memset(zero, 0, size_t((ring ? slot : g.W) * p.block) * sizeof(float));
  j.zero = zero;
  if (ring) {
    j.ring = zero + p.zeroFloats;
    j.slotWidth = slot;
    j.ringFloats = kRingSlots * slot * p.block;
  }
  j.epi = p.epi.get();
  if (p.fused && j.epi.residual) {
    const size_t zi = ir::linear::kResidualInput;
    if (!a.hasInput(int(zi))) a.fail("has_residual is 1 but Z (input 3) is absent");
    const TensorView& z = a.in(int(zi));
    if (z.rank != 4 || !std::equal(z.dims, z.dims + 4, Y.dims)) a.fail("Z must have the output's shape");
    j.z = z.as<float>();
  }
  // Relu and Clip without a residual are clamps on the way out of the registers; any other
  // epilogue runs over each finished row (blocked Y and Z rows line up float for float).
  j.lo = -INFINITY;
  j.hi = INFINITY;
  if (p.fused && !j.z) j.epilogue = dwEpiloguePass(j.epi, &j.lo, &j.hi);
  else j.epilogue = p.fused;
  j.row = epilogueRow(j.epi);
  const DwRowsFn rows = p.block == 16 ? avx512::dwRows : avx2::dwRows;
  a.executor->parallelFor(T, [&](int64_t t) { rows(j, rangeBegin(units, t, T), rangeBegin(units, t + 1, T), t); });
}

}  // namespace

void blockedDwRow(int block, const Conv2dGeom& g, const float* const* rows, const float* w, const float* bias,
                  float* y, float lo, float hi) {
  if (block == 16) avx512::dwRowInPlace(g, rows, w, bias, y, lo, hi);
  else avx2::dwRowInPlace(g, rows, w, bias, y, lo, hi);
}

bool blockedDwRowPairs(int block, const Conv2dGeom& g) { return block == 16 && avx512::fastDw(g) == 31; }

void blockedDwRowPair(int block, const Conv2dGeom& g, const float* const* rows, const float* w, const float* bias,
                      float* y0, float* y1, float lo, float hi) {
  if (block == 16) avx512::dwRowPairInPlace(g, rows, w, bias, y0, y1, lo, hi);
  else avx2::dwRowPairInPlace(g, rows, w, bias, y0, y1, lo, hi);
}

namespace {

Kernel makeDw(int block, bool fused) {
  Kernel k;
  k.name = std::string("f32_dwconv2d_nchw") + std::to_string(block) + "c" + (fused ? "_epilogue" : "") +
           (block == 16 ? "__avx512" : "__avx2");
  // 2: SiLU, Sigmoid and Tanh epilogues with vmath.h's new e^-x; 3 (2 unfused): AVX-512's narrow
  // 3x3 rows in place, not through the ring (an edge pixel skips its padding taps instead of
  // adding zero products: a -0.0 sum may come out -0.0 instead of +0.0).
  k.version = fused ? 3 : 2;
  k.op = fused ? "FusedConv" : "Conv";
  k.domain = fused ? "anvil" : "";
  k.precision = DataType::kF32;
  k.requirements = block == 16 ? std::vector<std::string>{"avx512f", "avx2", "fma"}
                               : std::vector<std::string>{"avx2", "fma"};
  k.nchwcBlock = block;
  k.supports = [block, fused](const ir::Node& n, const std::vector<ir::TensorType>& in) {
    return supportsDw(block, fused, n, in);
  };
  k.prepare = [block, fused](const PrepareInfo& i, Prepared* o) { prepareDw(block, fused, i, o); };
  k.run = runDw;
  return k;
}

// ---- Channels-last depthwise convolution (anvil.ConvNhwc) ---------------------------------

constexpr int64_t kNhwcBandBytes = int64_t(512) << 10;

// X [N, H, W, C] as the Conv geometry's [N, C, H, W] extents.
bool nhwcGeometry(const ConvAttrs& a, const int64_t* xd, Conv2dGeom* g) {
  const int64_t d[4] = {xd[0], xd[3], xd[1], xd[2]};
  return conv2dGeometry(a, d, xd[3], g);
}

// The depthwise ConvNhwc this family serves: f32, C a multiple of the block (0: any C, the
// portable kernel), multiplier 1, a constant filter and bias; the blocked families only the
// unrolled filters (3x3, 5x5, 7x7 at stride 1 or 2), read through the ring.
bool supportsNhwcDw(int block, const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !isF32(in[0]) || !isF32(in[1]) || !in[0].shape.rankKnown() || in[0].shape.rank() != 4 ||
      !in[0].shape[3].isStatic())
    return false;
  if (nchwc::blockOf(n.input(0)) != 0 || n.numOutputs() < 1 || nchwc::blockOf(n.output(0)) != 0) return false;
  const ir::Shape& w = in[1].shape;
  if (!plainConstant(n, 1) || !w.rankKnown() || w.rank() != 4 || !w.isStatic()) return false;
  ConvAttrs a;
  if (!dwAttrs(n, w, &a) || a.autoPad != 0) return false;
  const int64_t C = in[0].shape[3].value();
  if (a.group != C || w[0].value() != C || w[1].value() != 1) return false;
  if (present(in, 2) && (!isF32(in[2]) || !plainConstant(n, 2) || in[2].shape.numel() != C)) return false;
  if (block == 0) return true;
  const Conv2dGeom probe{1, C, 64, 64, C, C, 1, 1, a.kH, a.kW, a.sH, a.sW, 1, 1, 0, 0, 0, 0, 1, 1};
  return C % block == 0 && fastFilter(probe);
}

void prepareNhwcDw(int block, const PrepareInfo& info, Prepared* out) {
  const ir::Node& n = *info.node;
  DwParams p;
  p.block = block;
  p.tasks = preparedSlots(info);
  ANVIL_CHECK(info.maxTypes.size() > 1 && info.maxTypes[0].shape.isStatic() && info.maxTypes[1].shape.isStatic(),
              ErrorCode::kInternal, n.label(), ": X and W need static extents at the profile's max shapes");
  ANVIL_CHECK(dwAttrs(n, info.maxTypes[1].shape, &p.conv), ErrorCode::kInvalidModel, n.label(),
              ": not a depthwise Conv this kernel handles");
  const std::vector<int64_t> xd = info.maxTypes[0].shape.extents();
  p.C = xd[3];
  Conv2dGeom g;
  ANVIL_CHECK(nhwcGeometry(p.conv, xd.data(), &g), ErrorCode::kInvalidModel, n.label(), ": X ",
              info.maxTypes[0].str(), " does not fit the Conv attributes");
  const int64_t lanes = block == 0 ? p.C : block;  // the portable kernel: one accumulator row of C
  const int64_t slot = (g.OW - 1) * g.sW + g.kW;
  p.zeroFloats = block == 0 ? 0 : std::max(g.W, slot) * block;
  p.ringFloats = block == 0 ? lanes : kRingSlots * slot * block;
  // Blocked: the filter as [C/b][kh][kw][b]. Portable: [kh][kw][C], one group of C lanes.
  packDepthwise(info, p, lanes, "channels-last", out);
}

// The portable rows [r0, r1) of the N * OH output rows: every output pixel the bias plus its
// taps in row-major order (padding taps skipped), over all C channels at once, acc a row of
// C floats.
void nhwcDwRowsPortable(const DwJob& j, int64_t r0, int64_t r1, float* acc) {
  const Conv2dGeom& g = j.g;
  const int64_t C = g.C;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t oh = r % g.OH, n = r / g.OH;
    const float* x = j.x + n * g.H * g.W * C;
    float* y = j.y + r * g.OW * C;
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      for (int64_t c = 0; c < C; ++c) acc[c] = j.bias[c];
      for (int64_t i = 0; i < g.kH; ++i) {
        const int64_t ih = oh * g.sH - g.pt + i * g.dH;
        if (ih < 0 || ih >= g.H) continue;
        for (int64_t k = 0; k < g.kW; ++k) {
          const int64_t iw = ow * g.sW - g.pl + k * g.dW;
          if (iw < 0 || iw >= g.W) continue;
          const float* xp = x + (ih * g.W + iw) * C;
          const float* wp = j.w + (i * g.kW + k) * C;
          for (int64_t c = 0; c < C; ++c) acc[c] += xp[c] * wp[c];
        }
      }
      std::memcpy(y + ow * C, acc, size_t(C) * sizeof(float));
    }
  }
}

void runNhwcDw(const StepArgs& a) {
  const DwParams& p = a.paramsAs<DwParams>();
  const TensorView& X = a.in(0);
  TensorView& Y = a.out(0);
  DwJob j{};
  if (X.rank != 4 || X.dims[3] != p.C) a.fail("X must be [N, H, W, C] with the prepared channels");
  if (!nhwcGeometry(p.conv, X.dims, &j.g)) a.fail("X does not fit the Conv attributes");
  const Conv2dGeom& g = j.g;
  if (Y.rank != 4 || Y.dims[0] != g.N || Y.dims[1] != g.OH || Y.dims[2] != g.OW || Y.dims[3] != g.C)
    a.fail("the output extents differ from the Conv's");
  if (Y.numel() == 0) return;
  j.x = X.as<float>();
  j.y = Y.as<float>();
  j.w = a.blobs[0].as<float>();
  j.bias = a.blobs[1].as<float>();
  j.lo = -INFINITY;
  j.hi = INFINITY;
  float* ws = static_cast<float*>(a.workspace);
  if (uint64_t(p.zeroFloats + p.tasks * p.ringFloats) * sizeof(float) > a.workspaceBytes)
    a.fail("the workspace is smaller than prepared");
  if (p.block == 0) {
    const int64_t units = g.N * g.OH;
    const int64_t T = std::min<int64_t>({units, std::max(1, a.executor->threads()), p.tasks});
    a.executor->parallelFor(T, [&](int64_t t) {
      nhwcDwRowsPortable(j, rangeBegin(units, t, T), rangeBegin(units, t + 1, T), ws + t * p.ringFloats);
    });
    return;
  }
  const int64_t slot = (g.OW - 1) * g.sW + g.kW;
  if (g.W * p.block > p.zeroFloats || kRingSlots * slot * p.block > p.ringFloats)
    a.fail("the input is wider than prepared (outside the profile?)");
  std::memset(ws, 0, size_t(slot * p.block) * sizeof(float));
  j.zero = ws;
  j.ring = ws + p.zeroFloats;
  j.slotWidth = slot;
  j.ringFloats = kRingSlots * slot * p.block;
  // Bands whose input rows take at most kNhwcBandBytes.
  const int64_t rowBytes = g.W * g.C * int64_t(sizeof(float));
  const int64_t inRows = std::max<int64_t>(g.kH, kNhwcBandBytes / std::max<int64_t>(1, rowBytes));
  j.bandRows = std::clamp<int64_t>((inRows - g.kH) / g.sH + 1, 1, g.OH);
  // Tasks take whole rows where each gets at least two filters' height of them: the next
  // layer's rows (the LayerNorm's pixels, the MatMul's rows) are then written by the core
  // that reads them (convnext_tiny at two threads, 56x56 and 28x28: split by channel blocks
  // its LayerNorms and MatMuls ran 3-6% slower). On smaller images a task's band would
  // gather kh - 1 more input rows per channel block than it computes (a 14x14 image: 13 for
  // 7 at two tasks), so they split the channel blocks, each task every row of its blocks.
  using NhwcRowsFn = void (*)(const DwJob&, int64_t, int64_t, int64_t, int64_t, int64_t);
  const NhwcRowsFn rows = p.block == 16 ? avx512::dwRowsNhwc : avx2::dwRowsNhwc;
  const int64_t Cb = g.C / p.block, threads = std::min<int64_t>(std::max(1, a.executor->threads()), p.tasks);
  const bool byRows = g.N * g.OH >= threads * 2 * g.kH || Cb < threads;
  const int64_t units = byRows ? g.N * g.OH : Cb;
  const int64_t T = std::min<int64_t>(units, threads);
  a.executor->parallelFor(T, [&](int64_t t) {
    const int64_t u0 = rangeBegin(units, t, T), u1 = rangeBegin(units, t + 1, T);
    if (byRows) rows(j, u0, u1, 0, Cb, t);
    else rows(j, 0, g.N * g.OH, u0, u1, t);
  });
}

Kernel makeNhwcDw(int block) {
  Kernel k;
  k.name = block == 0    ? std::string("f32_dwconv2d_nhwc")
           : block == 16 ? std::string("f32_dwconv2d_nhwc16__avx512")
                         : std::string("f32_dwconv2d_nhwc8__avx2");
  k.version = 1;
  k.op = "ConvNhwc";
  k.domain = "anvil";
  k.precision = DataType::kF32;
  if (block == 16) k.requirements = {"avx512f", "avx2", "fma"};
  if (block == 8) k.requirements = {"avx2", "fma"};
  k.supports = [block](const ir::Node& n, const std::vector<ir::TensorType>& in) {
    return supportsNhwcDw(block, n, in);
  };
  k.prepare = [block](const PrepareInfo& i, Prepared* o) { prepareNhwcDw(block, i, o); };
  k.run = runNhwcDw;
  return k;
}

// ---- Pooling -------------------------------------------------------------------------------

struct PoolParams {
  int32_t max = 0, includePad = 0, autoPad = 0, block = 8;
  int64_t k[2] = {}, s[2] = {}, d[2] = {}, pads[4] = {};
};
static_assert(sizeof(PoolParams) == 16 + 80, "PoolParams must have no padding bytes");

// The pad before the window along one dim for the run's extents (auto_pad resolved as
// ir::nn::forwardDim does).
int64_t padBegin(const PoolParams& p, int i, int64_t in, int64_t out) {
  const auto ap = ir::nn::AutoPad(p.autoPad);
  if (ap == ir::nn::AutoPad::kSameUpper || ap == ir::nn::AutoPad::kSameLower) {
    const int64_t dk = (p.k[i] - 1) * p.d[i] + 1;
    const int64_t total = std::max<int64_t>(0, (out - 1) * p.s[i] + dk - in);
    return ap == ir::nn::AutoPad::kSameUpper ? total / 2 : total - total / 2;
  }
  return ap == ir::nn::AutoPad::kValid ? 0 : p.pads[i];
}

bool supportsPool(int block, bool isMax, const ir::Node& n, const std::vector<ir::TensorType>& t) {
  if (t.empty() || !isF32(t[0]) || !staticRank4(t[0])) return false;
  if (nchwc::blockOf(n.input(0)) != block || n.numOutputs() < 1 || nchwc::blockOf(n.output(0)) != block) return false;
  // Indices (MaxPool output 1): not blocked, the plain kernels serve them.
  if (n.numOutputs() > 1 && n.output(1) && !n.output(1)->name().empty()) return false;
  ir::nn::Window w;
  if (!ir::nn::readWindow(n.attrs(), 2, {}, &w).empty() || w.kernel.size() != 2) return false;
  return isMax || n.attrs().getInt("count_include_pad", 0) == 0 || n.attrs().getInt("count_include_pad", 0) == 1;
}

void preparePool(int block, bool isMax, const PrepareInfo& info, Prepared* out) {
  ir::nn::Window w;
  const std::string err = ir::nn::readWindow(info.node->attrs(), 2, {}, &w);
  ANVIL_CHECK(err.empty(), ErrorCode::kInvalidArgument, info.node->label(), ": ", err);
  PoolParams p;
  p.max = isMax ? 1 : 0;
  p.block = block;
  p.includePad = info.node->attrs().getInt("count_include_pad", 0) != 0 ? 1 : 0;
  p.autoPad = int32_t(w.autoPad);
  for (int i = 0; i < 2; ++i) {
    p.k[i] = w.kernel[size_t(i)];
    p.s[i] = w.strides[size_t(i)];
    p.d[i] = w.dilations[size_t(i)];
  }
  for (int i = 0; i < 4; ++i) p.pads[i] = w.pads[size_t(i)];
  out->setParams(p);
}

void runPool(const StepArgs& a) {
  const PoolParams& p = a.paramsAs<PoolParams>();
  const TensorView& X = a.in(0);
  const TensorView& Y = a.out(0);
  if (X.rank != 4 || Y.rank != 4 || Y.dims[0] != X.dims[0] || Y.dims[1] != X.dims[1])
    a.fail("X and Y must be [N, C, H, W] with the same N and C");
  if (Y.numel() == 0) return;
  PoolJob j{};
  PoolGeom& g = j.g;
  g.H = X.dims[2];
  g.W = X.dims[3];
  g.OH = Y.dims[2];
  g.OW = Y.dims[3];
  g.pt = padBegin(p, 0, g.H, g.OH);
  g.pl = padBegin(p, 1, g.W, g.OW);
  g.kh = p.k[0];
  g.kw = p.k[1];
  g.sh = p.s[0];
  g.sw = p.s[1];
  g.dh = p.d[0];
  g.dw = p.d[1];
  j.C = X.dims[1];
  j.x = X.as<float>();
  j.y = Y.as<float>();
  j.max = p.max != 0;
  j.includePad = p.includePad != 0;
  const PoolRowsFn rows = p.block == 16 ? avx512::poolRows : avx2::poolRows;
  const int64_t units = X.dims[0] * nchwc::channelBlocks(j.C, p.block) * g.OH;
  const int64_t T = std::min<int64_t>(units, std::max(1, a.executor->threads()));
  a.executor->parallelFor(T, [&](int64_t t) { rows(j, rangeBegin(units, t, T), rangeBegin(units, t + 1, T)); });
}

Kernel makePool(int block, bool isMax) {
  Kernel k;
  k.name = std::string(isMax ? "f32_maxpool2d_nchw" : "f32_avgpool2d_nchw") + std::to_string(block) + "c" +
           (block == 16 ? "__avx512" : "__avx2");
  k.version = 1;
  k.op = isMax ? "MaxPool" : "AveragePool";
  k.precision = DataType::kF32;
  k.requirements = block == 16 ? std::vector<std::string>{"avx512f", "avx2", "fma"}
                               : std::vector<std::string>{"avx2", "fma"};
  k.nchwcBlock = block;
  k.supports = [block, isMax](const ir::Node& n, const std::vector<ir::TensorType>& t) {
    return supportsPool(block, isMax, n, t);
  };
  k.prepare = [block, isMax](const PrepareInfo& i, Prepared* o) { preparePool(block, isMax, i, o); };
  k.run = runPool;
  return k;
}

}  // namespace
}  // namespace anvil::cpu::tactics

namespace anvil::runtime {

void registerNativeNchwcSpatialKernels(Kernels& k) {
  using namespace anvil::cpu::tactics;
  k.add(makeNhwcDw(0));
  for (int block : {8, 16}) {
    k.add(makeNhwcDw(block));
    for (bool fused : {false, true}) k.add(makeDw(block, fused));
    for (bool isMax : {true, false}) k.add(makePool(block, isMax));
  }
}

}  // namespace anvil::runtime
