// The k x k depthwise convolutions, k = 3, 5 or 7 (Conv / anvil.FusedConv with group == C,
// W [C, 1, k, k], stride 1 or 2 on both axes, dilation 1, any padding; f32 NCHW), in an
// AVX2+FMA and an AVX-512 build of one body (cpu/tactics/native_dwconv_body.h). Three ways
// through a plane, chosen by shape (each choice below records what it measured):
//  - the row ring: output rows from zero-padded input rows copied once into a small per-task
//    ring (at stride 2 split into their even and odd columns), several output rows per pass
//    sharing their loads, the loads memory operands of the FMAs;
//  - direct planes: the same sums straight from the input with masked loads at the row edges
//    (stride 2: the even and odd lanes of two loads), no copies;
//  - channel blocks (AVX-512, 8 or fewer output columns): 16 channels at a time with the
//    channels in the lanes, so 7-wide rows leave no lanes idle.
// Every output is the bias plus its k*k products in row-major order, one FMA each, in every
// path and ISA. Relu and Clip are clamps on the way out of the registers; other epilogues
// (activation, residual) run over each finished plane while it is in cache. Planes (or
// channel blocks) are split over tasks in fixed ranges: bitwise equal for any thread count.
// No allocation in run().
#include "cpu/tactics/native_dwconv.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "cpu/tactics/native_linear_conv.h"
#include "cpu/tactics/native_linear_epilogue.h"
#include "cpu/tactics/task_split.h"
#include "ir/ops/anvil_linear.h"

namespace anvil::cpu::tactics {

namespace {

using ir::linear::Activation;
using ir::linear::Epilogue;
using runtime::Kernel;
using runtime::PrepareInfo;
using runtime::Prepared;
using runtime::StepArgs;
using runtime::TensorView;

enum class DwIsa : int32_t { kAvx2 = 0, kAvx512 = 1 };

struct DwParams {
  ConvAttrs conv;
  int64_t slotFloats = 0;  // per task: the row ring, the zero row, the staging row
  int32_t tasks = 1, packed = 0, fused = 0, act = 0, residual = 0, addFirst = 1;
  float p0 = 0.0f, p1 = 0.0f;
  int32_t isa = 0, reserved = 0;
  Epilogue epilogue() const {
    Epilogue e;
    e.act = Activation(act);
    e.p0 = p0;
    e.p1 = p1;
    e.residual = residual != 0;
    e.addFirst = addFirst != 0;
    return e;
  }
};
static_assert(sizeof(DwParams) == 96 + 8 + 6 * 4 + 8 + 8, "DwParams must have no padding bytes");

// Ring slots per task: a power of two >= the input rows of a pass (S * (R - 1) + K <= 10).
constexpr int kRing = 16;

// One task's padded rows of the plane being computed (see ringRow in the body).
struct Ring {
  const float* x = nullptr;  // the plane
  int64_t H = 0, W = 0, pt = 0, pl = 0;
  int64_t width = 0;  // floats per slot
  int64_t half = 0;   // stride 2: the odd columns start here in a slot
  bool split = false;
  float* rows = nullptr;         // kRing slots
  const float* zero = nullptr;   // a slot of zeros (rows above and below the plane)
  float* stage = nullptr;        // stride 2: the padded row before it is split
  float lo = -INFINITY, hi = INFINITY;  // the clamp of a fused Relu or Clip
  int64_t tags[kRing] = {};
};

// Slot widths. Stride 1: the padded row (L = pl + W + pr floats) and 16 floats of slack:
// a step reads up to 16 lanes past its last output, index <= OW - 1 + 15 + K - 1 < L + 16.
// Stride 2: each half holds ceil(L / 2) columns plus 16 + 3 of slack (the last vector's
// lanes past OW, and kw / 2 <= 3).
int64_t slotWidth(const Conv2dGeom& g) {
  const int64_t L = g.pl + g.W + g.pr;
  if (g.sW == 1) return roundUp(L + 16, 16);
  return 2 * roundUp((L + 1) / 2 + 16 + 4, 16);
}
// Channel blocks (AVX-512, OW <= 8): the padded planes of 16 channels, [Hp][Wp][16].
int64_t blockFloats(const Conv2dGeom& g) { return ((g.OH - 1) * g.sH + g.kH) * ((g.OW - 1) * g.sW + g.kW) * 16; }
bool useBlocks(DwIsa isa, const Conv2dGeom& g) { return isa == DwIsa::kAvx512 && g.OW <= 8; }
int64_t ringFloats(const Conv2dGeom& g) { return (kRing + 2) * slotWidth(g); }
int64_t slotFloatsFor(const Conv2dGeom& g) { return std::max(ringFloats(g), g.OW <= 8 ? blockFloats(g) : 0); }

// A plane function: one output plane of OH x OW from the ring's plane.
using PlaneFn = void (*)(Ring& ring, const float* wc, float biasC, float* y, int64_t OH, int64_t OW);

// ---- AVX2 + FMA ------------------------------------------------------------------------

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {

struct V8 {
  using T = __m256;
  static constexpr int N = 8;
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static void storeN(float* p, T v, int n) {
    alignas(32) static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    _mm256_maskstore_ps(p, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m + 8 - n)), v);
  }
  static void copyN(float* d, const float* s, int n) {
    for (int i = 0; i < n; ++i) d[i] = s[i];
  }
  // The lanes of a load from column c that fall inside [0, W), as vmaskmovps wants them
  // (lanes outside are not read, so a load may start before or run past the row).
  using M = __m256i;
  static M maskFor(int64_t c, int64_t W) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int32_t lo = int32_t(std::clamp<int64_t>(-c, 0, 8)), hi = int32_t(std::clamp<int64_t>(W - c, 0, 8));
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(lo), lane),
                               _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), lane));
  }
  static T maskLoad(const float* p, M m) { return _mm256_maskload_ps(p, m); }
  // max_ps / min_ps return their second operand when one is NaN: NaN passes, as the
  // epilogue's Relu and Clip.
  static T clamp(T v, T lo, T hi) { return _mm256_min_ps(hi, _mm256_max_ps(lo, v)); }
  static T set1(float v) { return _mm256_set1_ps(v); }
  static T bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static T zero() { return _mm256_setzero_ps(); }
  static T fmadd(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T even(T a, T b) {
    const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
  }
  static T odd(T a, T b) {
    const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
  }
};

#include "cpu/tactics/native_dwconv_body.h"

// 16 registers: the 3x3 weights stay in 9 of them next to 2 x 2 accumulators (the 5x5 and
// 7x7 weights a filter row at a time). Direct planes at stride 2 (8 planes in cache, us,
// ring / direct: 3x3 112->56 24.5 / 25.7 min, 27 / 27 median; 56->28 9.7 / 9.3; 5x5 14->7
// 2.2 / 1.9), the ring at stride 1 (3x3 28 wide: 3.7 / 5.3: vmaskmovps edges cost more than
// AVX-512's masked loads).
template <int K>
PlaneFn pick(int64_t stride, int64_t) {
  if (stride == 2) return dwPlaneDirect<V8, K, 1, 2, 2>;
  return dwPlane<V8, K, 2, 2, 1>;
}

}  // namespace avx2
#pragma GCC pop_options

// ---- AVX-512 -----------------------------------------------------------------------------

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx2,fma")
namespace avx512 {

struct V16 {
  using T = __m512;
  static constexpr int N = 16;
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static void storeN(float* p, T v, int n) { _mm512_mask_storeu_ps(p, __mmask16((1u << n) - 1), v); }
  static void copyN(float* d, const float* s, int n) {
    const __mmask16 m = __mmask16((1u << n) - 1);
    _mm512_mask_storeu_ps(d, m, _mm512_maskz_loadu_ps(m, s));
  }
  // The lanes of a load from column c that fall inside [0, W) (only those are read).
  using M = __mmask16;
  static M maskFor(int64_t c, int64_t W) {
    const int64_t lo = std::max<int64_t>(0, -c), hi = std::min<int64_t>(N, W - c);
    return hi <= lo ? M(0) : M(((1u << hi) - 1) & ~((1u << lo) - 1));
  }
  static T maskLoad(const float* p, M m) { return _mm512_maskz_loadu_ps(m, p); }
  // The zero-masked forms with every lane set: the same vmaxps / vminps, but GCC 12 reports
  // the _mm512_undefined_ps() inside the plain ones as "may be used uninitialized" once they
  // inline into the larger planes (a false positive).
  static T clamp(T v, T lo, T hi) {
    return _mm512_maskz_min_ps(__mmask16(0xffff), hi, _mm512_maskz_max_ps(__mmask16(0xffff), lo, v));
  }
  static T set1(float v) { return _mm512_set1_ps(v); }
  static T bcast(const float* p) { return _mm512_set1_ps(*p); }
  static T zero() { return _mm512_setzero_ps(); }
  static T fmadd(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T even(T a, T b) {
    const __m512i i = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    return _mm512_permutex2var_ps(a, i, b);
  }
  static T odd(T a, T b) {
    const __m512i i = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    return _mm512_permutex2var_ps(a, i, b);
  }
};

// Rows of 8 or fewer outputs (7x7 planes) would leave half of each 16-lane register idle:
// they take 8-lane registers (with AVX-512's 32 of them and masked stores).
struct V8 {
  using T = __m256;
  static constexpr int N = 8;
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static void storeN(float* p, T v, int n) { _mm256_mask_storeu_ps(p, __mmask8((1u << n) - 1), v); }
  static void copyN(float* d, const float* s, int n) {
    const __mmask8 m = __mmask8((1u << n) - 1);
    _mm256_mask_storeu_ps(d, m, _mm256_maskz_loadu_ps(m, s));
  }
  using M = __mmask8;
  static M maskFor(int64_t c, int64_t W) {
    const int64_t lo = std::max<int64_t>(0, -c), hi = std::min<int64_t>(N, W - c);
    return hi <= lo ? M(0) : M(((1u << hi) - 1) & ~((1u << lo) - 1));
  }
  static T maskLoad(const float* p, M m) { return _mm256_maskz_loadu_ps(m, p); }
  static T clamp(T v, T lo, T hi) { return _mm256_min_ps(hi, _mm256_max_ps(lo, v)); }
  static T set1(float v) { return _mm256_set1_ps(v); }
  static T bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static T zero() { return _mm256_setzero_ps(); }
  static T fmadd(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T even(T a, T b) {
    const __m256i i = _mm256_set_epi32(14, 12, 10, 8, 6, 4, 2, 0);
    return _mm256_permutex2var_ps(a, i, b);
  }
  static T odd(T a, T b) {
    const __m256i i = _mm256_set_epi32(15, 13, 11, 9, 7, 5, 3, 1);
    return _mm256_permutex2var_ps(a, i, b);
  }
};

#include "cpu/tactics/native_dwconv_body.h"

// Ring or direct planes, by what measured faster (NativePoolDwBench.DISABLED_Depthwise,
// 8 channels in cache, 1 thread, min of 300, us, ring / direct): stride 2 always direct
// (3x3 112->56: 22 / 18; 56->28: 8.0 / 5.4); rows of 8 or fewer direct (3x3 7x7: 0.6 / 0.4);
// stride 1 direct for 3x3 up to 28 wide (28: 2.8 / 2.7, 14: 1.0 / 0.9) and the ring
// above (3x3 56: 9.0 / 9.6, 112: 27 / 29; 5x5 28: 7.2 / 8.0; 7x7 56: 30 / 39, 28: 7.5 /
// 9.1): its loads fold into the FMAs, where the direct plane's edge steps use masked loads.
template <int K>
PlaneFn pick(int64_t stride, int64_t OW) {
  if (OW <= 8) return stride == 1 ? dwPlaneDirect<V8, K, 4, 1, 1> : dwPlaneDirect<V8, K, 2, 1, 2>;
  if (stride == 2) return dwPlaneDirect<V16, K, 2, 2, 2>;
  if (K == 3 && OW <= 28) return dwPlaneDirect<V16, K, 4, 2, 1>;
  return dwPlane<V16, K, 4, 2, 1>;
}

// Planes of 8 or fewer output columns (7x7), 16 channels at a time with the channels in the
// lanes: their padded input planes gathered into T ([Hp][Wp][16], zero where padding, set
// once per run), every tap one FMA with a full register, the outputs scattered back. A 7-wide
// row leaves no lanes idle and a plane costs no per-row setup. Measured (NativePoolDwBench,
// 1 thread, min of 100, us, planes / blocks): 1152x7x7 5x5 103 / 56, 672x14x14 5x5 stride 2
// 161 / 54, 960x7x7 3x3 43 / 27, 768x7x7 7x7 109 / 71. At 14 columns the gathers and
// scatters cost more than the 2 idle lanes of 16 (384x14x14 3x3: 41 / 44; 7x7: 103 / 118).
template <int K, int S>
void dwBlock(const float* x, int nc, const Conv2dGeom& g, const float* wc, const float* biasC, float* y, float* T,
             float loC, float hiC) {
  const int64_t HW = g.H * g.W, P = g.OH * g.OW, Hp = (g.OH - 1) * S + K, Wp = (g.OW - 1) * S + K;
  const __mmask16 m = nc >= 16 ? __mmask16(0xffff) : __mmask16((1u << nc) - 1);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i xi = _mm512_mullo_epi32(lane, _mm512_set1_epi32(int32_t(HW)));
  const __m512i yi = _mm512_mullo_epi32(lane, _mm512_set1_epi32(int32_t(P)));
  const __m512i wi = _mm512_mullo_epi32(lane, _mm512_set1_epi32(K * K));
  const __m512 zero = _mm512_setzero_ps();
  __m512 w[K * K];
  for (int t = 0; t < K * K; ++t) w[t] = _mm512_mask_i32gather_ps(zero, m, wi, wc + t, 4);
  const __m512 bias = biasC ? _mm512_maskz_loadu_ps(m, biasC) : zero;
  const __m512 lo = _mm512_set1_ps(loC), hi = _mm512_set1_ps(hiC);
  for (int64_t ih = std::max<int64_t>(0, -g.pt); ih < g.H && ih + g.pt < Hp; ++ih)
    for (int64_t iw = std::max<int64_t>(0, -g.pl); iw < g.W && iw + g.pl < Wp; ++iw)
      _mm512_storeu_ps(T + ((ih + g.pt) * Wp + iw + g.pl) * 16, _mm512_mask_i32gather_ps(zero, m, xi, x + ih * g.W + iw, 4));
  for (int64_t oh = 0; oh < g.OH; ++oh)
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      const float* t0 = T + (oh * S * Wp + ow * S) * 16;
      __m512 acc = bias;
#pragma GCC unroll 7
      for (int kh = 0; kh < K; ++kh)
#pragma GCC unroll 7
        for (int kw = 0; kw < K; ++kw) acc = _mm512_fmadd_ps(w[kh * K + kw], _mm512_loadu_ps(t0 + (kh * Wp + kw) * 16), acc);
      acc = _mm512_maskz_min_ps(__mmask16(0xffff), hi, _mm512_maskz_max_ps(__mmask16(0xffff), lo, acc));
      _mm512_mask_i32scatter_ps(y + oh * g.OW + ow, m, yi, acc, 4);
    }
}

using BlockFn = void (*)(const float*, int, const Conv2dGeom&, const float*, const float*, float*, float*, float, float);

BlockFn pickBlock(int64_t K, int64_t S) {
  if (S == 1) return K == 3 ? dwBlock<3, 1> : K == 5 ? dwBlock<5, 1> : dwBlock<7, 1>;
  return K == 3 ? dwBlock<3, 2> : K == 5 ? dwBlock<5, 2> : dwBlock<7, 2>;
}

}  // namespace avx512
#pragma GCC pop_options

PlaneFn pickPlane(DwIsa isa, int64_t K, int64_t stride, int64_t OW) {
  if (isa == DwIsa::kAvx512) return K == 3 ? avx512::pick<3>(stride, OW) : K == 5 ? avx512::pick<5>(stride, OW) : avx512::pick<7>(stride, OW);
  return K == 3 ? avx2::pick<3>(stride, OW) : K == 5 ? avx2::pick<5>(stride, OW) : avx2::pick<7>(stride, OW);
}

bool isF32(const ir::TensorType& t) { return t.dtype == DataType::kF32; }
bool absent(const std::vector<ir::TensorType>& in, size_t i) {
  return i >= in.size() || in[i].dtype == DataType::kUndefined;
}

// K: the filter side this kernel serves (kernel_shape may be absent: then W says it).
bool dwAttrs(const ir::Node& n, int64_t K, ConvAttrs* a) {
  const ir::Attributes& at = n.attrs();
  const std::vector<int64_t> ks = at.getInts("kernel_shape", {K, K});
  if (ks.size() != 2 || ks[0] != K || ks[1] != K) return false;
  const std::vector<int64_t> s = at.getInts("strides", {1, 1}), d = at.getInts("dilations", {1, 1});
  if (s.size() != 2 || s[0] != s[1] || (s[0] != 1 && s[0] != 2)) return false;
  if (d != std::vector<int64_t>{1, 1}) return false;
  a->group = at.getInt("group", 1);
  a->kH = a->kW = K;
  a->sH = a->sW = s[0];
  return decodeConvPads(at, a);
}

bool supportsDw(int64_t K, const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !isF32(in[0]) || !isF32(in[1])) return false;
  const ir::Shape& x = in[0].shape;
  const ir::Shape& w = in[1].shape;
  if (!x.rankKnown() || x.rank() != 4 || !w.rankKnown() || w.rank() != 4 || !w.isStatic() || !x[1].isStatic())
    return false;
  ConvAttrs a;
  if (!dwAttrs(n, K, &a)) return false;
  const int64_t C = x[1].value();
  if (a.group != C || w[0].value() != C || w[1].value() != 1 || w[2].value() != K || w[3].value() != K) return false;
  if (!absent(in, 2) && (!isF32(in[2]) || !in[2].shape.rankKnown() || in[2].shape.rank() != 1)) return false;
  return true;
}

bool supportsFusedDw(int64_t K, const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (!supportsDw(K, n, in)) return false;
  return fusedEpilogueSupported(n, in);
}

void prepareDw(int64_t K, bool fused, DwIsa isa, const PrepareInfo& info, Prepared* out) {
  DwParams p;
  p.isa = int32_t(isa);
  const ir::Node& n = *info.node;
  ANVIL_CHECK(dwAttrs(n, K, &p.conv), ErrorCode::kInvalidModel, n.label(), ": not a ", K, "x", K,
              " depthwise Conv this kernel handles");
  p.tasks = preparedSlots(info);
  if (fused) {
    const Epilogue e = readFusedEpilogue(n);
    p.fused = 1;
    p.act = int32_t(e.act);
    p.p0 = e.p0;
    p.p1 = e.p1;
    p.residual = e.residual;
    p.addFirst = e.addFirst;
  }
  ANVIL_CHECK(info.maxTypes.size() > 1 && info.maxTypes[0].shape.isStatic(), ErrorCode::kInternal, n.label(),
              ": X has no static extents at the profile's max shapes");
  const std::vector<int64_t> xd = info.maxTypes[0].shape.extents();
  Conv2dGeom g;
  ANVIL_CHECK(conv2dGeometry(p.conv, xd.data(), xd[1], &g), ErrorCode::kInvalidModel, n.label(), ": X ",
              info.maxTypes[0].str(), " does not fit the Conv attributes");
  p.slotFloats = slotFloatsFor(g);
  if (const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr) {
    p.packed = 1;  // the filter as it is, [C][K*K]
    out->blobs.emplace_back(static_cast<const char*>(w->raw()), size_t(w->numel()) * sizeof(float));
    out->packedInputs.push_back(1);
  }
  out->workspaceBytes = uint64_t(p.tasks * p.slotFloats) * sizeof(float);
  out->setParams(p);
}

void runDw(const StepArgs& a) {
  const DwParams& p = a.paramsAs<DwParams>();
  const TensorView &X = a.in(0), &W = a.in(1);
  TensorView& Y = a.out(0);
  if (X.rank != 4) a.fail("this kernel handles 2-D Conv (rank-4 X) only");
  Conv2dGeom g;
  if (!conv2dGeometry(p.conv, X.dims, X.dims[1], &g) || g.C != p.conv.group) a.fail("X does not fit the Conv attributes");
  if (!p.packed && (W.rank != 4 || W.dims[0] != g.C || W.dims[1] != 1 || W.dims[2] != g.kH || W.dims[3] != g.kW))
    a.fail("W must be [C, 1, k, k]");
  if (Y.rank != 4 || Y.dims[0] != g.N || Y.dims[1] != g.C || Y.dims[2] != g.OH || Y.dims[3] != g.OW)
    a.fail("the output extents differ from the Conv's");
  if (Y.numel() == 0) return;
  if (ringFloats(g) > p.slotFloats) a.fail("the input is wider than prepared (outside the profile?)");
  const int T = std::max(1, std::min(p.tasks, a.executor->threads()));
  if (uint64_t(T * p.slotFloats) * sizeof(float) > a.workspaceBytes) a.fail("the workspace is smaller than prepared");
  const float* bias = nullptr;
  if (a.hasInput(2)) {
    if (a.in(2).numel() != g.C) a.fail("B must have one value per channel");
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
  // Relu and Clip without a residual are clamps on the way out of the registers; anything
  // else runs over each finished plane.
  float lo = -INFINITY, hi = INFINITY;
  bool epilogue = p.fused && (zp || epi.act != Activation::kNone);
  if (epilogue && !zp && epi.act == Activation::kRelu) {
    lo = 0.0f;
    epilogue = false;
  } else if (epilogue && !zp && epi.act == Activation::kClip) {
    lo = epi.p0;
    hi = epi.p1;
    epilogue = false;
  }
  const EpilogueRow row = epilogueRow(epi);
  const float* wp = p.packed ? a.blobs[0].as<float>() : W.as<float>();
  const float* xp = X.as<float>();
  float* yp = Y.as<float>();
  const int64_t planes = g.N * g.C, n = std::min<int64_t>(T, planes), P = g.OH * g.OW;
  float* ws = static_cast<float*>(a.workspace);
  if (useBlocks(DwIsa(p.isa), g) && blockFloats(g) <= p.slotFloats) {  // else planes (a run unlike the profile)
    const int64_t cb = (g.C + 15) / 16, units = g.N * cb, nb = std::min<int64_t>(T, units);
    const avx512::BlockFn block = avx512::pickBlock(g.kH, g.sH);
    a.executor->parallelFor(nb, [&](int64_t t) {
      float* buf = ws + t * p.slotFloats;
      std::memset(buf, 0, size_t(blockFloats(g)) * sizeof(float));  // the padding stays zero
      for (int64_t u = rangeBegin(units, t, nb); u < rangeBegin(units, t + 1, nb); ++u) {
        const int64_t n0 = u / cb, c0 = (u % cb) * 16, nc = std::min<int64_t>(16, g.C - c0);
        const int64_t pl0 = n0 * g.C + c0;
        block(xp + pl0 * g.H * g.W, int(nc), g, wp + c0 * g.kH * g.kW, bias ? bias + c0 : nullptr, yp + pl0 * P, buf, lo,
              hi);
        if (epilogue)
          for (int64_t c = 0; c < nc; ++c)
            row(epi, yp + (pl0 + c) * P, zp ? zp + (pl0 + c) * P : nullptr, nullptr, 0.0f, P);
      }
    });
    return;
  }
  const PlaneFn plane = pickPlane(DwIsa(p.isa), g.kH, g.sH, g.OW);
  a.executor->parallelFor(n, [&](int64_t t) {
    float* slot = ws + t * p.slotFloats;
    Ring ring;
    ring.H = g.H;
    ring.W = g.W;
    ring.pt = g.pt;
    ring.pl = g.pl;
    ring.width = slotWidth(g);
    ring.split = g.sW == 2;
    ring.half = ring.split ? ring.width / 2 : 0;
    ring.rows = slot;
    ring.stage = slot + (kRing + 1) * ring.width;
    ring.zero = slot + kRing * ring.width;
    ring.lo = lo;
    ring.hi = hi;
    // Every slot's pads, the zero row and the stage's pads stay zero for the whole run.
    std::memset(slot, 0, size_t((kRing + 2) * ring.width) * sizeof(float));
    const int64_t KK = g.kH * g.kW;
    for (int64_t pl = rangeBegin(planes, t, n); pl < rangeBegin(planes, t + 1, n); ++pl) {
      const int64_t c = pl % g.C;
      ring.x = xp + pl * g.H * g.W;
      plane(ring, wp + c * KK, bias ? bias[c] : 0.0f, yp + pl * P, g.OH, g.OW);
      if (epilogue) row(epi, yp + pl * P, zp ? zp + pl * P : nullptr, nullptr, 0.0f, P);
    }
  });
}

Kernel makeKernel(int64_t K, bool fused, DwIsa isa) {
  Kernel k;
  const std::string side = std::to_string(K) + "x" + std::to_string(K);
  k.name = "f32_dwconv2d_" + side + (fused ? "_rows_epilogue" : "_rows") + (isa == DwIsa::kAvx512 ? "__avx512" : "__avx2");
  // 2: stride 2 reads split rows, 4 rows a pass (the sums' order is unchanged); 3: SiLU, Sigmoid and Tanh
  // epilogues with vmath.h's new e^-x
  k.version = fused ? 3 : 2;
  k.op = fused ? "FusedConv" : "Conv";
  k.domain = fused ? "anvil" : "";
  k.precision = DataType::kF32;
  k.requirements = {"avx2", "fma"};
  if (isa == DwIsa::kAvx512) k.requirements = {"avx512f", "avx512vl", "avx2", "fma"};
  if (fused)
    k.supports = [K](const ir::Node& n, const std::vector<ir::TensorType>& in) { return supportsFusedDw(K, n, in); };
  else
    k.supports = [K](const ir::Node& n, const std::vector<ir::TensorType>& in) { return supportsDw(K, n, in); };
  k.prepare = [K, fused, isa](const PrepareInfo& i, Prepared* o) { prepareDw(K, fused, isa, i, o); };
  k.run = runDw;
  return k;
}

}  // namespace

void registerDwConvKernels(runtime::Kernels& k) {
  for (DwIsa isa : {DwIsa::kAvx2, DwIsa::kAvx512})
    for (int64_t K : {3, 5, 7}) {
      k.add(makeKernel(K, false, isa));
      k.add(makeKernel(K, true, isa));
    }
}

}  // namespace anvil::cpu::tactics
