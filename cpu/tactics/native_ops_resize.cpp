// Native Resize (f32) over the last two axes -- the upsampling of FPNs, YOLO necks and
// segmentation heads: nearest (every nearest_mode) and linear (bilinear), every coordinate
// transformation mode but tf_crop_and_resize, constant scales or sizes (with
// keep_aspect_ratio_policy and axes), exclude_outside. Cubic, antialias, cropping and
// computed scales stay with the reference kernel (cpu/kernels/tensor_resize.cpp).
//  - Each axis maps output coordinates to at most two input taps the way the reference
//    does (source coordinate in double, clamped indices, weights rounded once to f32),
//    into tables in the workspace, once per run.
//  - Nearest: an output row gathers its source row through the column table (every column
//    doubled: each input vector stored twice); a row whose source row is the previous
//    row's copies that output row.
//  - Linear: separable, as the reference's nested sum (columns first): the two source rows
//    an output row blends are interpolated along the columns once into a task's row
//    buffers and reused by the following output rows that read the same source rows.
//  - Threads take contiguous ranges of (plane, output row); each output element is
//    computed the same way whatever the split: bitwise equal for any thread count.
// Linear results differ from the reference (double sums) by rounding only: within ~1e-7
// relative (a tap of weight 0 is dropped as the reference drops it: no 0 x inf).
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "cpu/tactics/native_ops_util.h"

namespace anvil::runtime::nops {

namespace {

enum class Ctm : int32_t { kHalfPixel, kPytorchHalfPixel, kAlignCorners, kAsymmetric, kHalfPixelSymmetric, kTfHalfPixelNN };
enum class Nearest : int32_t { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil };

struct ResizeParams {
  int32_t linear = 0;  // else nearest
  Ctm ctm = Ctm::kHalfPixel;
  Nearest nearest = Nearest::kRoundPreferFloor;
  int32_t excludeOutside = 0;
  int32_t policy = 0;  // sizes only: 0 stretch, 1 not_larger, 2 not_smaller
  int32_t avx2 = 0;
  int32_t rank = 0;
  int32_t numAxes = 0;       // entries of scales / sizes
  int32_t axes[kMaxRank] = {};  // the axes those entries are for
  int32_t maxOH = 0, maxOW = 0;
};

bool parseCtm(const std::string& s, Ctm* c) {
  if (s == "half_pixel") *c = Ctm::kHalfPixel;
  else if (s == "pytorch_half_pixel") *c = Ctm::kPytorchHalfPixel;
  else if (s == "align_corners") *c = Ctm::kAlignCorners;
  else if (s == "asymmetric") *c = Ctm::kAsymmetric;
  else if (s == "half_pixel_symmetric") *c = Ctm::kHalfPixelSymmetric;
  else if (s == "tf_half_pixel_for_nn") *c = Ctm::kTfHalfPixelNN;
  else return false;
  return true;
}

bool parseNearest(const std::string& s, Nearest* n) {
  if (s == "round_prefer_floor") *n = Nearest::kRoundPreferFloor;
  else if (s == "round_prefer_ceil") *n = Nearest::kRoundPreferCeil;
  else if (s == "floor") *n = Nearest::kFloor;
  else if (s == "ceil") *n = Nearest::kCeil;
  else return false;
  return true;
}

// Decodes the attributes; false where the reference kernel must serve the node.
bool readParams(const ir::Node& n, int rank, ResizeParams* p) {
  const ir::Attributes& a = n.attrs();
  const std::string mode = a.getString("mode", "nearest");
  if (mode != "nearest" && mode != "linear") return false;
  p->linear = mode == "linear";
  if (p->linear && a.getInt("antialias", 0) != 0) return false;
  if (!parseCtm(a.getString("coordinate_transformation_mode", "half_pixel"), &p->ctm)) return false;
  if (!parseNearest(a.getString("nearest_mode", "round_prefer_floor"), &p->nearest)) return false;
  p->excludeOutside = a.getInt("exclude_outside", 0) != 0;
  const std::string policy = a.getString("keep_aspect_ratio_policy", "stretch");
  if (policy == "stretch") p->policy = 0;
  else if (policy == "not_larger") p->policy = 1;
  else if (policy == "not_smaller") p->policy = 2;
  else return false;
  if (rank < 2 || rank > kMaxRank) return false;
  p->rank = rank;
  if (a.has("axes")) {
    const std::vector<int64_t> axes = a.getInts("axes");
    if (axes.empty() || axes.size() > size_t(rank)) return false;
    p->numAxes = int32_t(axes.size());
    for (size_t i = 0; i < axes.size(); ++i) {
      const int64_t ax = normAxis(axes[i], rank);
      if (ax < 0 || ax >= rank) return false;
      p->axes[i] = int32_t(ax);
    }
  } else {
    p->numAxes = rank;
    for (int i = 0; i < rank; ++i) p->axes[i] = i;
  }
  return true;
}

// Per-axis scales and output extents from scales (f32) or sizes (i64), as the reference
// computes them; false on values it rejects.
bool axisScales(const ResizeParams& p, const int64_t* in, const float* scales, const int64_t* sizes, double* scale,
                int64_t* out) {
  for (int d = 0; d < p.rank; ++d) scale[d] = 1.0, out[d] = in[d];
  if (scales) {
    for (int i = 0; i < p.numAxes; ++i) {
      const double s = scales[i];
      if (!(s > 0)) return false;
      scale[p.axes[i]] = s;
      out[p.axes[i]] = int64_t(std::floor(s * double(in[p.axes[i]])));
    }
    return true;
  }
  for (int i = 0; i < p.numAxes; ++i) {
    const int ax = p.axes[i];
    if (sizes[i] < 0 || in[ax] == 0) return false;
    scale[ax] = double(sizes[i]) / double(in[ax]);
    out[ax] = sizes[i];
  }
  if (p.policy != 0) {
    double s = scale[p.axes[0]];
    for (int i = 0; i < p.numAxes; ++i) s = p.policy == 1 ? std::min(s, scale[p.axes[i]]) : std::max(s, scale[p.axes[i]]);
    for (int i = 0; i < p.numAxes; ++i) {
      scale[p.axes[i]] = s;
      out[p.axes[i]] = int64_t(s * double(in[p.axes[i]]) + 0.5);
    }
  }
  return true;
}

// Only the last two axes may change: every other one keeps its extent and maps onto itself.
bool outerUnchanged(const ResizeParams& p, const int64_t* in, const double* scale, const int64_t* out) {
  for (int d = 0; d + 2 < p.rank; ++d)
    if (out[d] != in[d] || (scale[d] != 1.0 && in[d] != 1)) return false;
  return true;
}

// Two taps of one output coordinate: indices into the input axis and f32 weights (w1 = 0:
// one tap).
struct Taps {
  int32_t i0, i1;
  float w0, w1;
};

// The taps of output coordinate x of an axis of L inputs and O outputs, as the reference's
// mapAxis computes them (nearest, and linear without antialias).
Taps tapsOf(const ResizeParams& p, int64_t L, int64_t O, double scale, int64_t x) {
  const double outWidth = scale * double(L), xd = double(x);
  double xo = 0;
  switch (p.ctm) {
    case Ctm::kAlignCorners: xo = outWidth == 1 ? 0.0 : xd * double(L - 1) / (outWidth - 1); break;
    case Ctm::kAsymmetric: xo = xd / scale; break;
    case Ctm::kPytorchHalfPixel: xo = O > 1 ? (xd + 0.5) / scale - 0.5 : 0.0; break;
    case Ctm::kHalfPixelSymmetric: {
      const double adjustment = double(O) / outWidth, center = double(L) / 2;
      xo = center * (1 - adjustment) + (xd + 0.5) / scale - 0.5;
      break;
    }
    case Ctm::kTfHalfPixelNN: xo = (xd + 0.5) / scale; break;
    case Ctm::kHalfPixel: xo = (xd + 0.5) / scale - 0.5; break;
  }
  const double fl = std::floor(xo);
  const bool integral = fl == xo;
  const double ratio = integral ? 1.0 : xo - fl;
  const int64_t left = integral ? int64_t(fl) - 1 : int64_t(fl);
  auto clampIndex = [&](int64_t i) { return int32_t(std::clamp<int64_t>(i, 0, L - 1)); };
  if (!p.linear) {
    bool right = true;
    if (!integral) {
      switch (p.nearest) {
        case Nearest::kRoundPreferFloor: right = ratio > 0.5; break;
        case Nearest::kRoundPreferCeil: right = ratio >= 0.5; break;
        case Nearest::kFloor: right = false; break;
        case Nearest::kCeil: right = true; break;
      }
    }
    const int32_t i = clampIndex(left + (right ? 1 : 0));
    return {i, i, 1.0f, 0.0f};
  }
  double w0 = 1 - ratio, w1 = ratio;
  if (p.excludeOutside) {
    if (left < 0 || left >= L) w0 = 0;
    if (left + 1 < 0 || left + 1 >= L) w1 = 0;
    const double sum = w0 + w1;
    if (sum != 0) w0 /= sum, w1 /= sum;
  }
  // A tap of weight 0 is dropped (the reference skips it): the other one alone.
  if (w0 == 0) return {clampIndex(left + 1), clampIndex(left + 1), float(w1), 0.0f};
  if (w1 == 0) return {clampIndex(left), clampIndex(left), float(w0), 0.0f};
  return {clampIndex(left), clampIndex(left + 1), float(w0), float(w1)};
}

// The column taps as arrays (contiguous vector loads of indices and weights).
struct Columns {
  int32_t *i0, *i1;
  float *w0, *w1;
};

// Workspace: the row taps, the column arrays, then per task two rows of maxOW floats.
int64_t padded(int64_t n) { return (n + 15) / 16 * 16; }
int64_t tableBytes(int64_t OH, int64_t OW) {
  return padded(OH) * int64_t(sizeof(Taps)) + 4 * padded(OW) * int64_t(sizeof(float));
}
int64_t rowBufferFloats(int64_t OW) { return 2 * padded(OW); }

// h[x] = w0[x] src[i0[x]] + w1[x] src[i1[x]] over one output row.
void interpolateRow(const float* src, const Columns& c, int64_t OW, float* h) {
  for (int64_t x = 0; x < OW; ++x) h[x] = c.w0[x] * src[c.i0[x]] + (c.w1[x] != 0.0f ? c.w1[x] * src[c.i1[x]] : 0.0f);
}
void gatherRow(const float* src, const Columns& c, int64_t OW, float* y) {
  for (int64_t x = 0; x < OW; ++x) y[x] = src[c.i0[x]];
}

// The same with AVX2 gathers over 8 outputs.
__attribute__((target("avx2,fma"))) void interpolateRowAvx2(const float* src, const Columns& c, int64_t OW, float* h) {
  int64_t x = 0;
  for (; x + 8 <= OW; x += 8) {
    const __m256i i0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.i0 + x));
    const __m256i i1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.i1 + x));
    const __m256 v0 = _mm256_i32gather_ps(src, i0, 4), v1 = _mm256_i32gather_ps(src, i1, 4);
    // w0 v0 + w1 v1: the product w1 v1 (0 where w1 is: a dropped tap), then one fused
    // multiply-add.
    const __m256 w1 = _mm256_loadu_ps(c.w1 + x);
    const __m256 p1 = _mm256_and_ps(_mm256_mul_ps(w1, v1), _mm256_cmp_ps(w1, _mm256_setzero_ps(), _CMP_NEQ_UQ));
    _mm256_storeu_ps(h + x, _mm256_fmadd_ps(_mm256_loadu_ps(c.w0 + x), v0, p1));
  }
  for (; x < OW; ++x) h[x] = std::fma(c.w0[x], src[c.i0[x]], c.w1[x] != 0.0f ? c.w1[x] * src[c.i1[x]] : 0.0f);
}
__attribute__((target("avx2,fma"))) void gatherRowAvx2(const float* src, const Columns& c, int64_t OW, float* y) {
  int64_t x = 0;
  for (; x + 8 <= OW; x += 8) {
    const __m256i i0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.i0 + x));
    _mm256_storeu_ps(y + x, _mm256_i32gather_ps(src, i0, 4));
  }
  for (; x < OW; ++x) y[x] = src[c.i0[x]];
}
// Nearest with every column doubled (i0[x] = x / 2, OW = 2 W: the x2 upsampling of FPN
// and YOLO necks under asymmetric / floor or half_pixel): each input vector twice.
__attribute__((target("avx2,fma"))) void doubleRowAvx2(const float* src, const Columns&, int64_t OW, float* y) {
  const int64_t W = OW / 2;
  int64_t i = 0;
  for (; i + 8 <= W; i += 8) {
    const __m256 v = _mm256_loadu_ps(src + i);
    const __m256 lo = _mm256_unpacklo_ps(v, v), hi = _mm256_unpackhi_ps(v, v);  // per 128-bit lane
    _mm256_storeu_ps(y + 2 * i, _mm256_permute2f128_ps(lo, hi, 0x20));
    _mm256_storeu_ps(y + 2 * i + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
  }
  for (; i < W; ++i) y[2 * i] = y[2 * i + 1] = src[i];
}
void doubleRow(const float* src, const Columns&, int64_t OW, float* y) {
  for (int64_t i = 0; i < OW / 2; ++i) y[2 * i] = y[2 * i + 1] = src[i];
}
// y = wa a + wb b (the portable loop rounds both products, these fuse the first).
__attribute__((target("avx2,fma"))) void blendRowAvx2(const float* a, float wa, const float* b, float wb, int64_t n,
                                                      float* y) {
  const __m256 va = _mm256_set1_ps(wa), vb = _mm256_set1_ps(wb);
  int64_t x = 0;
  for (; x + 8 <= n; x += 8)
    _mm256_storeu_ps(y + x, _mm256_fmadd_ps(va, _mm256_loadu_ps(a + x), _mm256_mul_ps(vb, _mm256_loadu_ps(b + x))));
  for (; x < n; ++x) y[x] = std::fma(wa, a[x], wb * b[x]);
}
void blendRow(const float* a, float wa, const float* b, float wb, int64_t n, float* y) {
  for (int64_t x = 0; x < n; ++x) y[x] = wa * a[x] + wb * b[x];
}

void resizeKernel(const StepArgs& a) {
  const ResizeParams& p = a.paramsAs<ResizeParams>();
  const TensorView& X = a.in(0);
  const TensorView& Y = a.out(0);
  if (X.rank != p.rank || Y.rank != p.rank) a.fail("X and Y must have the prepared rank");
  const bool hasScales = a.hasInput(2) && a.in(2).numel() > 0;
  const bool hasSizes = a.hasInput(3) && a.in(3).numel() > 0;
  if (hasScales == hasSizes) a.fail("takes exactly one of scales and sizes");
  if ((hasScales ? a.in(2).numel() : a.in(3).numel()) != p.numAxes) a.fail("scales / sizes must have one entry per axis");
  double scale[kMaxRank];
  int64_t out[kMaxRank];
  if (!axisScales(p, X.dims, hasScales ? a.in(2).as<const float>() : nullptr, hasSizes ? a.in(3).as<const int64_t>() : nullptr,
                  scale, out))
    a.fail("scales must be > 0 and sizes >= 0, of non-empty axes");
  if (!outerUnchanged(p, X.dims, scale, out)) a.fail("this kernel resizes the last two axes only");
  for (int d = 0; d < p.rank; ++d)
    if (Y.dims[d] != out[d]) a.fail("Y's extents differ from the scales' / sizes'");
  const int64_t H = X.dims[p.rank - 2], W = X.dims[p.rank - 1];
  const int64_t OH = out[p.rank - 2], OW = out[p.rank - 1];
  if (Y.numel() == 0) return;
  if (OH > p.maxOH || OW > p.maxOW) a.fail("the output is larger than the profile's (outside the profile?)");
  int64_t planes = 1;
  for (int d = 0; d + 2 < p.rank; ++d) planes *= X.dims[d];

  auto* ty = static_cast<Taps*>(a.workspace);
  Columns tx;
  tx.i0 = reinterpret_cast<int32_t*>(ty + padded(p.maxOH));
  tx.i1 = tx.i0 + padded(p.maxOW);
  tx.w0 = reinterpret_cast<float*>(tx.i1 + padded(p.maxOW));
  tx.w1 = tx.w0 + padded(p.maxOW);
  for (int64_t y = 0; y < OH; ++y) ty[y] = tapsOf(p, H, OH, scale[p.rank - 2], y);
  bool doubled = !p.linear && OW == 2 * W;
  for (int64_t x = 0; x < OW; ++x) {
    const Taps t = tapsOf(p, W, OW, scale[p.rank - 1], x);
    tx.i0[x] = t.i0, tx.i1[x] = t.i1, tx.w0[x] = t.w0, tx.w1[x] = t.w1;
    doubled = doubled && t.i0 == x / 2;
  }
  float* rows = reinterpret_cast<float*>(static_cast<char*>(a.workspace) + tableBytes(p.maxOH, p.maxOW));
  const int64_t rowFloats = rowBufferFloats(p.maxOW);
  const int64_t slots = int64_t((a.workspaceBytes - uint64_t(tableBytes(p.maxOH, p.maxOW))) / sizeof(float)) / rowFloats;
  if (slots < 1) a.fail("the workspace is smaller than prepared");

  const float* xp = X.as<const float>();
  float* yp = Y.as<float>();
  const auto interp = p.avx2 ? interpolateRowAvx2 : interpolateRow;
  const auto gather = doubled ? (p.avx2 ? doubleRowAvx2 : doubleRow) : p.avx2 ? gatherRowAvx2 : gatherRow;
  const auto blend = p.avx2 ? blendRowAvx2 : blendRow;
  const int64_t items = planes * OH;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, OW));  // ~16K outputs a task at least
  const int64_t tasks = std::min<int64_t>({slots, a.executor ? a.executor->threads() : 1, (items + grain - 1) / grain});
  auto body = [&](int64_t task) {
    const int64_t b = items * task / tasks, e = items * (task + 1) / tasks;
    float* buf[2] = {rows + task * rowFloats, rows + task * rowFloats + rowFloats / 2};
    int64_t held[2] = {-1, -1};  // (plane * H + source row) each buffer holds
    for (int64_t it = b; it < e; ++it) {
      const int64_t plane = it / OH, oy = it % OH;
      const float* src = xp + plane * H * W;
      float* yrow = yp + it * OW;
      const Taps& t = ty[oy];
      if (!p.linear) {
        if (oy > 0 && it > b && ty[oy - 1].i0 == t.i0) std::memcpy(yrow, yrow - OW, size_t(OW) * sizeof(float));
        else gather(src + int64_t(t.i0) * W, tx, OW, yrow);
        continue;
      }
      // The source rows t.i0 and t.i1 interpolated along the columns, from the buffers if
      // they hold them (the previous output row read the same rows, or one of them).
      const bool two = t.w1 != 0.0f;
      const int64_t k0 = plane * H + t.i0, k1 = plane * H + t.i1;
      auto find = [&](int64_t key) { return held[0] == key ? 0 : held[1] == key ? 1 : -1; };
      int s0 = find(k0);
      if (s0 < 0) {
        s0 = two && find(k1) == 0 ? 1 : 0;
        interp(src + int64_t(t.i0) * W, tx, OW, buf[s0]);
        held[s0] = k0;
      }
      int s1 = s0;
      if (two && (s1 = find(k1)) < 0) {
        s1 = 1 - s0;
        interp(src + int64_t(t.i1) * W, tx, OW, buf[s1]);
        held[s1] = k1;
      }
      const float* r[2] = {buf[s0], buf[s1]};
      if (t.w1 == 0.0f && t.w0 == 1.0f) std::memcpy(yrow, r[0], size_t(OW) * sizeof(float));
      else blend(r[0], t.w0, r[1], t.w1, OW, yrow);
    }
  };
  if (tasks <= 1) body(0);
  else a.executor->parallelFor(tasks, body);
}

// The constant scales (input 2) or sizes (input 3) of a node, if they are initializers.
bool constantScales(const ir::Node& n, std::vector<float>* scales, std::vector<int64_t>* sizes) {
  const ir::Value* s = n.input(2);
  const ir::Value* z = n.input(3);
  const bool hasS = s && s->initializer() && s->initializer()->numel() > 0;
  const bool hasZ = z && z->initializer() && z->initializer()->numel() > 0;
  if (hasS == hasZ) return false;
  if ((s && !s->initializer() && !s->name().empty()) || (z && !z->initializer() && !z->name().empty())) return false;
  if (hasS) {
    const ir::Tensor& t = *s->initializer();
    if (t.dtype() != DataType::kF32) return false;
    scales->assign(t.data<float>(), t.data<float>() + t.numel());
  } else {
    const ir::Tensor& t = *z->initializer();
    if (t.dtype() != DataType::kI64) return false;
    *sizes = t.toInt64Vector();
  }
  return true;
}

bool resizeSupports(const ir::Node& n, const std::vector<ir::TensorType>& t) {
  if (t.empty() || t[0].dtype != DataType::kF32 || !t[0].shape.isStatic()) return false;
  const int rank = rankOf(t, 0);
  ResizeParams p;
  if (!readParams(n, rank, &p)) return false;
  std::vector<float> scales;
  std::vector<int64_t> sizes;
  if (!constantScales(n, &scales, &sizes)) return false;
  if (int64_t(scales.empty() ? sizes.size() : scales.size()) != p.numAxes) return false;
  const std::vector<int64_t> in = t[0].shape.extents();
  double scale[kMaxRank];
  int64_t out[kMaxRank];
  if (!axisScales(p, in.data(), scales.empty() ? nullptr : scales.data(), sizes.empty() ? nullptr : sizes.data(), scale,
                  out))
    return false;
  if (!outerUnchanged(p, in.data(), scale, out)) return false;
  // Table indices are int32.
  return in[size_t(rank) - 2] * in[size_t(rank) - 1] < (int64_t(1) << 31) && out[rank - 2] < (int64_t(1) << 31) &&
         out[rank - 1] < (int64_t(1) << 31);
}

void resizePrepare(bool avx2, const PrepareInfo& info, Prepared* out) {
  ResizeParams p;
  const int rank = int(info.maxTypes[0].shape.rank());
  ANVIL_CHECK(readParams(*info.node, rank, &p), ErrorCode::kInternal, info.node->label(), ": attributes not served");
  p.avx2 = avx2;
  const ir::Shape& y = info.maxOutputTypes.at(0).shape;
  ANVIL_CHECK(y.isStatic() && int(y.rank()) == rank, ErrorCode::kInternal, info.node->label(),
              ": output extents unknown at the max shapes");
  p.maxOH = int32_t(y[rank - 2].value());
  p.maxOW = int32_t(y[rank - 1].value());
  const int64_t tasks = std::max(1, info.threads);
  out->workspaceBytes =
      uint64_t(tableBytes(p.maxOH, p.maxOW) + tasks * rowBufferFloats(p.maxOW) * int64_t(sizeof(float)));
  out->setParams(p);
}

}  // namespace

void registerResize(Kernels& k) {
  for (bool avx2 : {false, true}) {
    Kernel r;
    r.name = avx2 ? "f32_resize_2d__avx2" : "f32_resize_2d";
    r.version = 1;
    r.op = "Resize";
    r.precision = DataType::kF32;
    if (avx2) r.requirements = {"avx2", "fma"};
    r.supports = resizeSupports;
    r.prepare = [avx2](const PrepareInfo& info, Prepared* out) { resizePrepare(avx2, info, out); };
    r.run = resizeKernel;
    k.add(std::move(r));
  }
}

}  // namespace anvil::runtime::nops
