// The k x k depthwise convolutions, k = 3 or 5 (Conv / anvil.FusedConv with group == C,
// W [C, 1, k, k], stride 1 or 2 on both axes, dilation 1, any padding; f32 NCHW), AVX2+FMA.
// Per channel plane, output rows are computed from k zero-padded input rows kept in a
// small per-task ring (each input row is copied once, not the whole plane), the k*k
// weights broadcast once per plane (held in registers for 3x3; for 5x5 the compiler keeps
// what fits and folds the rest into the FMAs as memory operands); stride 1 computes two
// output rows per pass, sharing their input loads; stride 2 takes the even and odd lanes
// of two loads. The bias is the
// accumulators' start and the epilogue (activation, residual) runs over each finished
// plane while it is in cache. Planes are split over tasks in fixed ranges: bitwise equal for any
// thread count. No allocation in run().
#include "cpu/tactics/native_dwconv.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "cpu/tactics/native_linear_conv.h"
#include "cpu/tactics/native_linear_epilogue.h"
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

struct DwParams {
  ConvAttrs conv;
  int64_t slotFloats = 0;  // per task: the row ring and a zero row
  int32_t tasks = 1, packed = 0, fused = 0, act = 0, residual = 0, addFirst = 1;
  float p0 = 0.0f, p1 = 0.0f;
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
static_assert(sizeof(DwParams) == 96 + 8 + 6 * 4 + 8, "DwParams must have no padding bytes");

// Padded input rows kept per task: a power of two >= k + 1 (stride 1 reads k + 1 rows per
// pair of output rows, and the next pair must not evict a row still in use).
constexpr int ringRows(int64_t k) { return k <= 3 ? 4 : 8; }
constexpr int kMaxRing = 8;

// A padded row: pl zeros, the input row (L = pl + W + pr floats in all), zeros; 16 floats
// of slack for the vector loads: the furthest read of an output row of 8 or more is index
// 2 * OW + k - 2 <= L at stride 2 and OW + k - 2 < L at stride 1; a narrower row is computed
// 8 wide and reads up to k + 14 < L + 16.
int64_t paddedWidth(const Conv2dGeom& g) { return roundUp(g.pl + g.W + g.pr + 16, 16); }
int64_t slotFloatsFor(const Conv2dGeom& g) { return (ringRows(g.kH) + 1) * paddedWidth(g); }

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
  Epilogue e;
  if (!ir::linear::readEpilogue(n.attrs(), &e).empty()) return false;
  const bool hasZ = !absent(in, ir::linear::kResidualInput);
  return hasZ == e.residual && (!hasZ || isF32(in[ir::linear::kResidualInput]));
}

void prepareDw(int64_t K, bool fused, const PrepareInfo& info, Prepared* out) {
  DwParams p;
  const ir::Node& n = *info.node;
  ANVIL_CHECK(dwAttrs(n, K, &p.conv), ErrorCode::kInvalidModel, n.label(), ": not a ", K, "x", K,
              " depthwise Conv this kernel handles");
  p.tasks = std::max(1, info.threads);
  if (fused) {
    Epilogue e;
    const std::string err = ir::linear::readEpilogue(n.attrs(), &e);
    ANVIL_CHECK(err.empty(), ErrorCode::kInvalidModel, n.label(), ": ", err);
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

// The padded rows of one plane: input row ih copied once into ring slot ih % ring.
struct RowRing {
  const float* x;  // the plane
  const Conv2dGeom* g;
  float* rows;  // `ring` rows, then the zero row
  int64_t width;
  int ring;
  int64_t tags[kMaxRing];

  // Defined inside the AVX2 plane function's inlining: plain vector loops, no libc calls
  // (rows are short; the call overhead would dominate).
  __attribute__((target("avx2,fma"))) inline const float* row(int64_t ih) {
    if (ih < 0 || ih >= g->H) return rows + ring * width;
    const int s = int(ih & (ring - 1));
    float* r = rows + s * width;
    if (tags[s] != ih) {
      const __m256 zero = _mm256_setzero_ps();
      for (int64_t j = 0; j < width; j += 8) _mm256_storeu_ps(r + j, zero);
      const float* src = x + ih * g->W;
      float* dst = r + g->pl;
      int64_t j = 0;
      for (; j + 8 <= g->W; j += 8) _mm256_storeu_ps(dst + j, _mm256_loadu_ps(src + j));
      for (; j < g->W; ++j) dst[j] = src[j];
      tags[s] = ih;
    }
    return r;
  }
};

// Stride 1: R (1 or 2) output rows from R + K - 1 input rows r[], 8 * V outputs from ow.
template <int K, int R, int V>
__attribute__((target("avx2,fma"))) inline void stepS1(const float* const* r, const __m256* w, __m256 bias,
                                                       int64_t ow, float* const* y) {
  __m256 acc[R][V];
#pragma GCC unroll 4
  for (int o = 0; o < R; ++o)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[o][v] = bias;
#pragma GCC unroll 8
  for (int i = 0; i < R + K - 1; ++i)
#pragma GCC unroll 7
    for (int kw = 0; kw < K; ++kw)
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) {
        const __m256 x = _mm256_loadu_ps(r[i] + ow + 8 * v + kw);
        if (i < K) acc[0][v] = _mm256_fmadd_ps(w[i * K + kw], x, acc[0][v]);
        if (R == 2 && i >= 1) acc[R - 1][v] = _mm256_fmadd_ps(w[(i - 1) * K + kw], x, acc[R - 1][v]);
      }
#pragma GCC unroll 4
  for (int o = 0; o < R; ++o)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) _mm256_storeu_ps(y[o] + ow + 8 * v, acc[o][v]);
}

__attribute__((target("avx2,fma"))) inline __m256 evenLanes(__m256 a, __m256 b) {
  const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
}
__attribute__((target("avx2,fma"))) inline __m256 oddLanes(__m256 a, __m256 b) {
  const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
}

// Stride 2: one output row, 8 * V outputs from ow. Taps kw and kw + 1 (kw even) are the
// even and odd lanes of the same two loads at 2 * ow + kw.
template <int K, int V>
__attribute__((target("avx2,fma"))) inline void stepS2(const float* const* r, const __m256* w, __m256 bias,
                                                       int64_t ow, float* y) {
  __m256 acc[V];
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) acc[v] = bias;
#pragma GCC unroll 7
  for (int kh = 0; kh < K; ++kh)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      const float* p = r[kh] + 2 * (ow + 8 * v);
#pragma GCC unroll 7
      for (int kw = 0; kw < K; kw += 2) {
        const __m256 a = _mm256_loadu_ps(p + kw), b = _mm256_loadu_ps(p + kw + 8);
        acc[v] = _mm256_fmadd_ps(w[kh * K + kw], evenLanes(a, b), acc[v]);
        if (kw + 1 < K) acc[v] = _mm256_fmadd_ps(w[kh * K + kw + 1], oddLanes(a, b), acc[v]);
      }
    }
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) _mm256_storeu_ps(y + ow + 8 * v, acc[v]);
}

// One output plane of channel c (bias included; the caller runs the epilogue over it).
// Rows narrower than a vector are computed 8 wide into a scratch row (the padded input rows
// have the slack) and copied.
template <int K>
__attribute__((target("avx2,fma"))) void planeAvx2(RowRing& ring, const float* wc, float biasC, float* y,
                                                   const Conv2dGeom& g) {
  __m256 w[K * K];
  for (int i = 0; i < K * K; ++i) w[i] = _mm256_set1_ps(wc[i]);
  const __m256 bias = _mm256_set1_ps(biasC);
  const int64_t OW = g.OW;
  for (int k = 0; k < kMaxRing; ++k) ring.tags[k] = -1;
  alignas(32) float narrow[2][8];
  if (g.sH == 1) {
    for (int64_t oh = 0; oh < g.OH; oh += 2) {
      const int64_t ih = oh - g.pt;
      const float* r[K + 1];
      for (int i = 0; i < K + 1; ++i) r[i] = ring.row(ih + i);
      float* yr[2] = {y + oh * OW, y + (oh + 1) * OW};
      const bool two = oh + 1 < g.OH;
      if (OW < 8) {
        float* nr[2] = {narrow[0], narrow[1]};
        if (two) stepS1<K, 2, 1>(r, w, bias, 0, nr);
        else stepS1<K, 1, 1>(r, w, bias, 0, nr);
        for (int o = 0; o < (two ? 2 : 1); ++o)
          for (int64_t j = 0; j < OW; ++j) yr[o][j] = narrow[o][j];
        continue;
      }
      int64_t ow = 0;
      if (two) {
        for (; ow + 16 <= OW; ow += 16) stepS1<K, 2, 2>(r, w, bias, ow, yr);
        for (; ow + 8 <= OW; ow += 8) stepS1<K, 2, 1>(r, w, bias, ow, yr);
        if (ow < OW) stepS1<K, 2, 1>(r, w, bias, OW - 8, yr);  // overlaps: the same values again
      } else {
        for (; ow + 16 <= OW; ow += 16) stepS1<K, 1, 2>(r, w, bias, ow, yr);
        for (; ow + 8 <= OW; ow += 8) stepS1<K, 1, 1>(r, w, bias, ow, yr);
        if (ow < OW) stepS1<K, 1, 1>(r, w, bias, OW - 8, yr);
      }
    }
    return;
  }
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    const int64_t ih = oh * 2 - g.pt;
    const float* r[K];
    for (int i = 0; i < K; ++i) r[i] = ring.row(ih + i);
    float* yr = y + oh * OW;
    if (OW < 8) {
      stepS2<K, 1>(r, w, bias, 0, narrow[0]);
      for (int64_t j = 0; j < OW; ++j) yr[j] = narrow[0][j];
      continue;
    }
    int64_t ow = 0;
    for (; ow + 16 <= OW; ow += 16) stepS2<K, 2>(r, w, bias, ow, yr);
    for (; ow + 8 <= OW; ow += 8) stepS2<K, 1>(r, w, bias, ow, yr);
    if (ow < OW) stepS2<K, 1>(r, w, bias, OW - 8, yr);
  }
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
  if (slotFloatsFor(g) > p.slotFloats) a.fail("the input is wider than prepared (outside the profile?)");
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
  const bool epilogue = p.fused && (zp || epi.act != Activation::kNone);
  const EpilogueRow row = epilogueRow(epi);
  const float* wp = p.packed ? a.blobs[0].as<float>() : W.as<float>();
  const float* xp = X.as<float>();
  float* yp = Y.as<float>();
  const int64_t planes = g.N * g.C, n = std::min<int64_t>(T, planes), P = g.OH * g.OW;
  float* ws = static_cast<float*>(a.workspace);
  a.executor->parallelFor(n, [&](int64_t t) {
    float* slot = ws + t * p.slotFloats;
    RowRing ring{nullptr, &g, slot, paddedWidth(g), ringRows(g.kH), {}};
    std::memset(slot + ring.ring * ring.width, 0, size_t(ring.width) * sizeof(float));  // the zero row
    for (int64_t pl = rangeBegin(planes, t, n); pl < rangeBegin(planes, t + 1, n); ++pl) {
      const int64_t c = pl % g.C;
      ring.x = xp + pl * g.H * g.W;
      const int64_t KK = g.kH * g.kW;
      if (g.kH == 3) planeAvx2<3>(ring, wp + c * KK, bias ? bias[c] : 0.0f, yp + pl * P, g);
      else planeAvx2<5>(ring, wp + c * KK, bias ? bias[c] : 0.0f, yp + pl * P, g);
      if (epilogue) row(epi, yp + pl * P, zp ? zp + pl * P : nullptr, nullptr, 0.0f, P);
    }
  });
}

Kernel makeKernel(int64_t K, bool fused) {
  Kernel k;
  const std::string side = std::to_string(K) + "x" + std::to_string(K);
  k.name = "f32_dwconv2d_" + side + (fused ? "_rows_epilogue__avx2" : "_rows__avx2");
  k.version = 1;
  k.op = fused ? "FusedConv" : "Conv";
  k.domain = fused ? "anvil" : "";
  k.precision = DataType::kF32;
  k.requirements = {"avx2", "fma"};
  if (fused)
    k.supports = [K](const ir::Node& n, const std::vector<ir::TensorType>& in) { return supportsFusedDw(K, n, in); };
  else
    k.supports = [K](const ir::Node& n, const std::vector<ir::TensorType>& in) { return supportsDw(K, n, in); };
  k.prepare = [K, fused](const PrepareInfo& i, Prepared* o) { prepareDw(K, fused, i, o); };
  k.run = runDw;
  return k;
}

}  // namespace

void registerDwConvKernels(runtime::Kernels& k) {
  for (int64_t K : {3, 5}) {
    k.add(makeKernel(K, false));
    k.add(makeKernel(K, true));
  }
}

}  // namespace anvil::cpu::tactics
