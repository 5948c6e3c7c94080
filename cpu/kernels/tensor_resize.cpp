// Reference Resize (nearest / linear / cubic, every coordinate transformation mode,
// antialias, exclude_outside, extrapolation, axes, keep_aspect_ratio_policy).
//
// Separable, as ONNX's reference defines it: per axis and output coordinate we compute
// the source coordinate x_ori, then a list of (input index, weight) taps; an output
// element is the nested weighted sum over axes (outermost axis last), where an axis whose
// coordinate falls outside the ROI (tf_crop_and_resize) yields extrapolation_value.
// Taps whose weight is exactly 0 are skipped. Indices outside the input clamp to the edge.
#include <algorithm>
#include <cmath>
#include <functional>

#include "cpu/dispatch.h"
#include "cpu/kernels/tensor_common.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels::tensor {

namespace {

struct Tap {
  int64_t index;
  double weight;
};
struct AxisMap {
  std::vector<std::vector<Tap>> taps;  // per output coordinate
  std::vector<bool> extrapolate;       // per output coordinate
};

double cubicCoeff(double x, double A) {
  x = std::abs(x);
  const double x2 = x * x, x3 = x2 * x;
  if (x <= 1) return (A + 2) * x3 - (A + 3) * x2 + 1;
  if (x < 2) return A * x3 - 5 * A * x2 + 8 * A * x - 4 * A;
  return 0.0;
}

struct ResizeParams {
  std::string mode, ctm, nearestMode;
  double cubicA;
  bool excludeOutside, antialias;
};

AxisMap mapAxis(const KernelContext& ctx, const ResizeParams& p, int64_t L, int64_t O, double scale, double roiStart,
                double roiEnd) {
  AxisMap m;
  m.taps.resize(size_t(O));
  m.extrapolate.assign(size_t(O), false);
  const double outWidth = scale * double(L);  // as the reference: scale * length, not the rounded size
  for (int64_t x = 0; x < O; ++x) {
    double xo;
    const double xd = double(x);
    if (p.ctm == "align_corners") {
      xo = outWidth == 1 ? 0.0 : xd * double(L - 1) / (outWidth - 1);
    } else if (p.ctm == "asymmetric") {
      xo = xd / scale;
    } else if (p.ctm == "tf_crop_and_resize") {
      xo = outWidth == 1 ? (roiEnd - roiStart) * double(L - 1) / 2 : xd * (roiEnd - roiStart) * double(L - 1) / (outWidth - 1);
      xo += roiStart * double(L - 1);
      if (xo < 0 || xo > double(L - 1)) {
        m.extrapolate[size_t(x)] = true;
        continue;
      }
    } else if (p.ctm == "pytorch_half_pixel") {
      xo = O > 1 ? (xd + 0.5) / scale - 0.5 : 0.0;
    } else if (p.ctm == "half_pixel_symmetric") {
      const double adjustment = double(O) / outWidth;
      const double center = double(L) / 2;
      xo = center * (1 - adjustment) + (xd + 0.5) / scale - 0.5;
    } else if (p.ctm == "tf_half_pixel_for_nn") {  // opset 11-12 only
      xo = (xd + 0.5) / scale;
    } else if (p.ctm == "half_pixel") {
      xo = (xd + 0.5) / scale - 0.5;
    } else {
      ctx.fail("unknown coordinate_transformation_mode '" + p.ctm + "'");
    }
    // The left neighbour is the pixel strictly left of xo (ratio in (0, 1]).
    const double fl = std::floor(xo);
    const bool integral = fl == xo;
    const double ratio = integral ? 1.0 : xo - fl;
    const int64_t left = integral ? int64_t(fl) - 1 : int64_t(fl);
    std::vector<Tap> taps;
    if (p.mode == "nearest") {
      bool right;
      if (integral) right = true;
      else if (p.nearestMode == "round_prefer_floor") right = ratio > 0.5;
      else if (p.nearestMode == "round_prefer_ceil") right = ratio >= 0.5;
      else if (p.nearestMode == "floor") right = false;
      else if (p.nearestMode == "ceil") right = true;
      else ctx.fail("unknown nearest_mode '" + p.nearestMode + "'");
      taps.push_back({left + (right ? 1 : 0), 1.0});
    } else if (p.mode == "linear") {
      if (p.antialias) {
        const double s = std::min(scale, 1.0);
        const int64_t start = int64_t(std::floor(-1 / s)) + 1;
        const int64_t n = 2 - 2 * start;
        double sum = 0;
        for (int64_t i = start; i < start + n; ++i) {
          double w = std::clamp(1 - std::abs((double(i) - ratio) * s), 0.0, 1.0);
          taps.push_back({left + i, w});
          sum += w;
        }
        for (Tap& t : taps) t.weight /= sum;
      } else {
        taps.push_back({left, 1 - ratio});
        taps.push_back({left + 1, ratio});
      }
    } else if (p.mode == "cubic") {
      const double A = p.cubicA;
      if (p.antialias) {
        const double s = std::min(scale, 1.0);
        const int64_t iStart = int64_t(std::floor(-2 / s)) + 1, iEnd = 2 - iStart;
        double sum = 0;
        for (int64_t i = iStart; i < iEnd; ++i) {
          double w = cubicCoeff(s * (double(i) - ratio), A);
          taps.push_back({left + i, w});
          sum += w;
        }
        for (Tap& t : taps) t.weight /= sum;
      } else {
        const double r = ratio;
        taps.push_back({left - 1, ((A * (r + 1) - 5 * A) * (r + 1) + 8 * A) * (r + 1) - 4 * A});
        taps.push_back({left, ((A + 2) * r - (A + 3)) * r * r + 1});
        taps.push_back({left + 1, ((A + 2) * (1 - r) - (A + 3)) * (1 - r) * (1 - r) + 1});
        taps.push_back({left + 2, ((A * ((1 - r) + 1) - 5 * A) * ((1 - r) + 1) + 8 * A) * ((1 - r) + 1) - 4 * A});
      }
    } else {
      ctx.fail("mode must be nearest, linear or cubic, got '" + p.mode + "'");
    }
    if (p.excludeOutside) {
      double sum = 0;
      for (Tap& t : taps) {
        if (t.index < 0 || t.index >= L) t.weight = 0;
        sum += t.weight;
      }
      if (sum != 0)
        for (Tap& t : taps) t.weight /= sum;
    }
    auto& out = m.taps[size_t(x)];
    for (const Tap& t : taps)
      if (t.weight != 0) out.push_back({std::clamp<int64_t>(t.index, 0, L - 1), t.weight});
  }
  return m;
}

std::vector<double> floatsOf(const Tensor& t) {
  std::vector<double> v(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[size_t(i)] = t.getDouble(i);
  return v;
}

void resize(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const ir::Attributes& a = ctx.attrs();
  const int64_t r = int64_t(x.rank());
  ResizeParams p;
  p.mode = a.getString("mode", "nearest");
  p.ctm = a.getString("coordinate_transformation_mode", "half_pixel");
  p.nearestMode = a.getString("nearest_mode", "round_prefer_floor");
  p.cubicA = a.getFloat("cubic_coeff_a", -0.75f);
  p.excludeOutside = a.getInt("exclude_outside", 0) != 0;
  p.antialias = a.getInt("antialias", 0) != 0 && p.mode != "nearest";
  const std::string policy = a.getString("keep_aspect_ratio_policy", "stretch");
  const double extrapolation = a.getFloat("extrapolation_value", 0.0f);

  std::vector<int64_t> axes;
  if (a.has("axes")) {
    for (int64_t ax : a.getInts("axes")) axes.push_back(normAxis(ctx, ax, r));
  } else {
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  }
  const size_t n = axes.size();
  const bool hasScales = ctx.hasInput(2) && ctx.input(2).numel() > 0;
  const bool hasSizes = ctx.hasInput(3) && ctx.input(3).numel() > 0;
  if (hasScales == hasSizes) ctx.fail("takes exactly one of scales and sizes");

  std::vector<double> scale(size_t(r), 1.0);
  std::vector<int64_t> outDims = x.dims();
  if (hasScales) {
    std::vector<double> s = floatsOf(ctx.input(2));
    if (s.size() != n) ctx.fail("scales has " + std::to_string(s.size()) + " entries for " + std::to_string(n) + " axes");
    for (size_t i = 0; i < n; ++i) {
      if (!(s[i] > 0)) ctx.fail("scales must be > 0");
      scale[size_t(axes[i])] = s[i];
      outDims[size_t(axes[i])] = int64_t(std::floor(s[i] * double(x.dim(size_t(axes[i])))));
    }
  } else {
    const Tensor& st = ctx.input(3);
    if (!ir::isInteger(st.dtype())) ctx.fail("sizes must be i64");
    std::vector<int64_t> sz = st.toInt64Vector();
    if (sz.size() != n) ctx.fail("sizes has " + std::to_string(sz.size()) + " entries for " + std::to_string(n) + " axes");
    for (size_t i = 0; i < n; ++i) {
      if (sz[i] < 0) ctx.fail("sizes must be >= 0");
      if (x.dim(size_t(axes[i])) == 0) ctx.fail("cannot resize an empty axis");
      scale[size_t(axes[i])] = double(sz[i]) / double(x.dim(size_t(axes[i])));
      outDims[size_t(axes[i])] = sz[i];
    }
    if (policy != "stretch") {
      if (policy != "not_larger" && policy != "not_smaller") ctx.fail("unknown keep_aspect_ratio_policy '" + policy + "'");
      double s = scale[size_t(axes[0])];
      for (int64_t ax : axes) s = policy == "not_larger" ? std::min(s, scale[size_t(ax)]) : std::max(s, scale[size_t(ax)]);
      for (int64_t ax : axes) {
        scale[size_t(ax)] = s;
        outDims[size_t(ax)] = int64_t(s * double(x.dim(size_t(ax))) + 0.5);
      }
    }
  }
  std::vector<double> roiStart(size_t(r), 0.0), roiEnd(size_t(r), 1.0);
  if (p.ctm == "tf_crop_and_resize" && ctx.hasInput(1) && ctx.input(1).numel() > 0) {
    std::vector<double> roi = floatsOf(ctx.input(1));
    if (roi.size() == 2 * n) {
      for (size_t i = 0; i < n; ++i) {
        roiStart[size_t(axes[i])] = roi[i];
        roiEnd[size_t(axes[i])] = roi[n + i];
      }
    } else if (roi.size() == 2 * size_t(r)) {
      for (size_t i = 0; i < size_t(r); ++i) {
        roiStart[i] = roi[i];
        roiEnd[i] = roi[size_t(r) + i];
      }
    } else {
      ctx.fail("roi has " + std::to_string(roi.size()) + " entries, expected " + std::to_string(2 * n));
    }
  }
  std::vector<AxisMap> maps;
  for (int64_t d = 0; d < r; ++d) {
    const int64_t L = x.dim(size_t(d)), O = outDims[size_t(d)];
    if (L == 0 && O > 0) ctx.fail("cannot resize an empty axis");
    maps.push_back(L == 0 ? AxisMap{} : mapAxis(ctx, p, L, O, scale[size_t(d)], roiStart[size_t(d)], roiEnd[size_t(d)]));
  }
  auto stride = stridesOf(x.dims());
  dispatchNumeric(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = ComputeT<T>;
    const T* px = x.data<T>();
    Tensor& y = ctx.allocOutput(0, x.dtype(), outDims);
    T* py = y.data<T>();
    const std::vector<int64_t>* pos = nullptr;
    // Nested weighted sum over axes d.. for the output position `pos`.
    std::function<double(size_t, int64_t)> value = [&](size_t d, int64_t off) -> double {
      if (d == size_t(r)) return double(C(px[off]));
      const AxisMap& m = maps[d];
      const int64_t o = (*pos)[d];
      if (m.extrapolate[size_t(o)]) return extrapolation;
      double acc = 0;
      for (const Tap& t : m.taps[size_t(o)]) acc += t.weight * value(d + 1, off + t.index * stride[d]);
      return acc;
    };
    forEachIndex(outDims, [&](int64_t k, const std::vector<int64_t>& ps) {
      pos = &ps;
      py[k] = T(C(value(0, 0)));
    });
  });
}

}  // namespace

void registerTensorResizeKernels(KernelRegistry& r) { r.add("Resize", resize); }

}  // namespace anvil::cpu::kernels::tensor
