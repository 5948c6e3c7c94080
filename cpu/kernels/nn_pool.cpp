// Reference kernels of the pooling ops: AveragePool, MaxPool (with Indices), LpPool, the
// global pools, MaxUnpool, MaxRoiPool and RoiAlign. Windows are walked per output element
// over the input positions they cover; padding never contributes a value.
#include <cmath>
#include <limits>

#include "cpu/kernels/nn_util.h"
#include "cpu/kernels/util.h"

namespace anvil::cpu::kernels::nn {

namespace {

enum class PoolKind { kAvg, kMax, kLp };

// For each spatial dim and output index: the input positions of the window that lie inside
// the input, and how many window positions there are in all (the count_include_pad divisor).
struct PoolWindows {
  std::vector<std::vector<std::vector<int64_t>>> pos;  // [dim][out] -> input positions
  std::vector<std::vector<int64_t>> padded;            // [dim][out] -> window positions
};

PoolWindows poolWindows(const ConvGeom& g) {
  PoolWindows w;
  w.pos.resize(g.r);
  w.padded.resize(g.r);
  for (size_t i = 0; i < g.r; ++i) {
    for (int64_t o = 0; o < g.out[i]; ++o) {
      std::vector<int64_t> p;
      int64_t padded = 0;
      const int64_t start = o * g.s[i] - g.pb[i];
      for (int64_t j = 0; j < g.k[i]; ++j) {
        const int64_t x = start + j * g.d[i];
        if (x >= 0 && x < g.in[i]) p.push_back(x);
        // As the ONNX reference: with ceil_mode, window positions past the end padding
        // count as padding too (onnxruntime and PyTorch leave them out).
        ++padded;
      }
      w.pos[i].push_back(std::move(p));
      w.padded[i].push_back(padded);
    }
  }
  return w;
}

// Calls f(spatialOffset, rowMajorIndex...) for every input position of the window at output
// multi-index oo; returns the number of positions visited.
template <typename F>
int64_t forEachInWindow(const ConvGeom& g, const PoolWindows& w, const std::vector<int64_t>& oo,
                        const std::vector<int64_t>& inStride, const std::vector<int64_t>& colStride, F f) {
  const size_t r = g.r;
  std::vector<const std::vector<int64_t>*> lists(r);
  int64_t total = 1;
  for (size_t i = 0; i < r; ++i) {
    lists[i] = &w.pos[i][size_t(oo[i])];
    total *= int64_t(lists[i]->size());
  }
  if (total == 0) return 0;
  std::vector<size_t> it(r, 0);
  for (int64_t n = 0; n < total; ++n) {
    int64_t off = 0, colOff = 0;
    for (size_t i = 0; i < r; ++i) {
      const int64_t x = (*lists[i])[it[i]];
      off += x * inStride[i];
      colOff += x * colStride[i];
    }
    f(off, colOff);
    for (size_t i = r; i-- > 0;) {
      if (++it[i] < lists[i]->size()) break;
      it[i] = 0;
    }
  }
  return total;
}

void poolKernel(KernelContext& ctx, PoolKind kind) {
  const Tensor& x = ctx.input(0);
  ctx.check(x.rank() >= 3, "X must be [N, C, spatial...], got " + x.summary());
  const size_t r = x.rank() - 2;
  ConvGeom g = ConvGeom::make(ctx, std::vector<int64_t>(x.dims().begin() + 2, x.dims().end()), {}, true);
  const bool includePad = ctx.attrs().getInt("count_include_pad", 0) != 0;
  const int64_t p = ctx.attrs().getInt("p", 2);
  ctx.check(kind != PoolKind::kLp || p >= 1, "p must be >= 1");
  const int storageOrder = int(ctx.attrs().getInt("storage_order", 0));
  ctx.check(storageOrder == 0 || storageOrder == 1, "storage_order must be 0 or 1");
  const int64_t planes = x.dim(0) * x.dim(1);
  std::vector<int64_t> outDims{x.dim(0), x.dim(1)};
  for (int64_t o : g.out) outDims.push_back(o);
  PoolWindows win = poolWindows(g);
  std::vector<int64_t> inStride(r, 1), colStride(r, 1);
  for (size_t i = r - 1; i-- > 0;) inStride[i] = inStride[i + 1] * g.in[i + 1];
  for (size_t i = 1; i < r; ++i) colStride[i] = colStride[i - 1] * g.in[i - 1];
  const bool wantIndices = kind == PoolKind::kMax && ctx.numOutputs() > 1 && ctx.outputWanted(1);
  int64_t* idxOut = wantIndices ? ctx.allocOutput(1, DataType::kI64, outDims).data<int64_t>() : nullptr;

  auto run = [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    Tensor& out = ctx.allocOutput(0, x.dtype(), outDims);
    const T* xp = x.data<T>();
    T* yp = out.data<T>();
    std::vector<int64_t> oo(r, 0);
    for (int64_t o = 0; o < g.outSize; ++o) {
      int64_t padCount = 1;
      for (size_t i = 0; i < r; ++i) padCount *= win.padded[i][size_t(oo[i])];
      for (int64_t pl = 0; pl < planes; ++pl) {
        const T* plane = xp + pl * g.inSize;
        const int64_t yi = pl * g.outSize + o;
        if (kind == PoolKind::kMax) {
          A best = -std::numeric_limits<A>::infinity();
          int64_t bestRow = -1, bestCol = -1;
          bool any = false;
          forEachInWindow(g, win, oo, inStride, colStride, [&](int64_t off, int64_t colOff) {
            const A v = A(plane[off]);
            if (!any || v > best) {
              best = v;
              bestRow = off;
              bestCol = colOff;
              any = true;
            }
          });
          if constexpr (std::is_integral_v<T>) {
            yp[yi] = any ? T(best) : std::numeric_limits<T>::lowest();
          } else {
            yp[yi] = T(best);
          }
          if (idxOut) idxOut[yi] = any ? pl * g.inSize + (storageOrder ? bestCol : bestRow) : -1;
        } else {
          A sum = 0;
          const int64_t n = forEachInWindow(g, win, oo, inStride, colStride, [&](int64_t off, int64_t) {
            const A v = A(plane[off]);
            sum += kind == PoolKind::kAvg ? v : A(std::pow(std::fabs(v), A(p)));
          });
          if (kind == PoolKind::kAvg) {
            const int64_t div = includePad ? padCount : n;
            yp[yi] = T(div > 0 ? sum / A(div) : A(0));
          } else {
            yp[yi] = T(std::pow(sum, A(1) / A(p)));
          }
        }
      }
      for (size_t i = r; i-- > 0;) {
        if (++oo[i] < g.out[i]) break;
        oo[i] = 0;
      }
    }
  };
  if (kind == PoolKind::kMax && x.dtype() == DataType::kU8) return run(TypeTag<uint8_t>{});
  if (kind == PoolKind::kMax && x.dtype() == DataType::kI8) return run(TypeTag<int8_t>{});
  dispatchFloat(x.dtype(), run);
}

void globalPoolKernel(KernelContext& ctx, PoolKind kind) {
  const Tensor& x = ctx.input(0);
  ctx.check(x.rank() >= 3, "X must be [N, C, spatial...], got " + x.summary());
  const int64_t p = ctx.attrs().getInt("p", 2);
  ctx.check(kind != PoolKind::kLp || p >= 1, "p must be >= 1");
  std::vector<int64_t> outDims{x.dim(0), x.dim(1)};
  int64_t size = 1;
  for (size_t i = 2; i < x.rank(); ++i) {
    outDims.push_back(1);
    size *= x.dim(i);
  }
  const int64_t planes = x.dim(0) * x.dim(1);
  dispatchFloat(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    Tensor& out = ctx.allocOutput(0, x.dtype(), outDims);
    const T* xp = x.data<T>();
    T* yp = out.data<T>();
    for (int64_t pl = 0; pl < planes; ++pl) {
      const T* plane = xp + pl * size;
      A acc = kind == PoolKind::kMax ? -std::numeric_limits<A>::infinity() : A(0);
      for (int64_t i = 0; i < size; ++i) {
        const A v = A(plane[i]);
        if (kind == PoolKind::kMax) acc = (v > acc || std::isnan(v)) ? v : acc;
        else if (kind == PoolKind::kAvg) acc += v;
        else acc += A(std::pow(std::fabs(v), A(p)));
      }
      if (kind == PoolKind::kAvg) acc = size > 0 ? acc / A(size) : A(0);
      if (kind == PoolKind::kLp) acc = A(std::pow(acc, A(1) / A(p)));
      yp[pl] = T(acc);
    }
  });
}

void maxUnpoolKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& ind = ctx.input(1);
  ctx.check(x.rank() >= 3, "X must be [N, C, spatial...], got " + x.summary());
  ctx.check(ind.dtype() == DataType::kI64 && ind.dims() == x.dims(), "I must be i64 with the shape of X");
  const size_t r = x.rank() - 2;
  ir::nn::Window w;
  std::string err = ir::nn::readWindow(ctx.attrs(), r, {}, &w);
  if (!err.empty()) ctx.fail(err);
  ctx.check(!w.kernel.empty(), "kernel_shape is required");
  // Indices address the tensor MaxPool saw, of the shape these attributes imply; an
  // explicit output_shape places that tensor at the origin of a larger zero tensor.
  std::vector<int64_t> inferred{x.dim(0), x.dim(1)};
  for (size_t i = 0; i < r; ++i) {
    const int64_t o = (x.dim(2 + i) - 1) * w.strides[i] + w.kernel[i] - w.pads[i] - w.pads[i + r];
    ctx.check(o > 0, "output spatial dim " + std::to_string(i) + " would be " + std::to_string(o));
    inferred.push_back(o);
  }
  std::vector<int64_t> outDims = inferred;
  if (ctx.hasInput(2)) {
    outDims = ctx.input(2).toInt64Vector();
    ctx.check(outDims.size() == x.rank(), "output_shape must have " + std::to_string(x.rank()) + " values");
    for (size_t i = 0; i < outDims.size(); ++i)
      ctx.check(outDims[i] >= inferred[i], "output_shape " + ir::Shape::fromExtents(outDims).str() +
                                               " is smaller than the unpooled shape " +
                                               ir::Shape::fromExtents(inferred).str());
  }
  const int64_t total = ir::numelOf(inferred);
  const auto inStrides = stridesOf(inferred), outStrides = stridesOf(outDims);
  dispatchFloat(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& out = ctx.allocOutput(0, x.dtype(), outDims);
    const T* xp = x.data<T>();
    const int64_t* ip = ind.data<int64_t>();
    T* yp = out.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      int64_t k = ip[i];
      ctx.check(k >= 0 && k < total, "index " + std::to_string(k) + " is outside the unpooled tensor of " +
                                         std::to_string(total) + " elements");
      int64_t o = 0;
      for (size_t d = 0; d < inferred.size(); ++d) {
        o += (k / inStrides[d]) * outStrides[d];
        k %= inStrides[d];
      }
      yp[o] = xp[i];
    }
  });
}

void maxRoiPoolKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& rois = ctx.input(1);
  ctx.check(x.rank() == 4, "X must be [N,C,H,W], got " + x.summary());
  ctx.check(rois.rank() == 2 && rois.dim(1) == 5, "rois must be [num_rois, 5], got " + rois.summary());
  auto pooled = ctx.attrs().getInts("pooled_shape");
  ctx.check(pooled.size() == 2 && pooled[0] > 0 && pooled[1] > 0, "pooled_shape must be two positive values");
  const double scale = ctx.attrs().getFloat("spatial_scale", 1.0f);
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), R = rois.dim(0);
  const int64_t PH = pooled[0], PW = pooled[1];
  dispatchFloat(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    Tensor& out = ctx.allocOutput(0, x.dtype(), {R, C, PH, PW});
    const T* xp = x.data<T>();
    T* yp = out.data<T>();
    for (int64_t n = 0; n < R; ++n) {
      const int64_t b = int64_t(rois.getDouble(n * 5));
      ctx.check(b >= 0 && b < N, "roi " + std::to_string(n) + " has batch index " + std::to_string(b) +
                                     " outside [0, " + std::to_string(N) + ")");
      for (int k = 1; k < 5; ++k)
        ctx.check(std::isfinite(rois.getDouble(n * 5 + k) * scale) && std::fabs(rois.getDouble(n * 5 + k) * scale) < 1e15,
                  "roi " + std::to_string(n) + " has a non-finite or huge coordinate");
      const int64_t x1 = int64_t(std::round(rois.getDouble(n * 5 + 1) * scale));
      const int64_t y1 = int64_t(std::round(rois.getDouble(n * 5 + 2) * scale));
      const int64_t x2 = int64_t(std::round(rois.getDouble(n * 5 + 3) * scale));
      const int64_t y2 = int64_t(std::round(rois.getDouble(n * 5 + 4) * scale));
      const double binH = double(std::max<int64_t>(y2 - y1 + 1, 1)) / double(PH);
      const double binW = double(std::max<int64_t>(x2 - x1 + 1, 1)) / double(PW);
      for (int64_t c = 0; c < C; ++c) {
        const T* plane = xp + (b * C + c) * H * W;
        for (int64_t ph = 0; ph < PH; ++ph)
          for (int64_t pw = 0; pw < PW; ++pw) {
            const int64_t hs = std::clamp<int64_t>(int64_t(std::floor(double(ph) * binH)) + y1, 0, H);
            const int64_t he = std::clamp<int64_t>(int64_t(std::ceil(double(ph + 1) * binH)) + y1, 0, H);
            const int64_t ws = std::clamp<int64_t>(int64_t(std::floor(double(pw) * binW)) + x1, 0, W);
            const int64_t we = std::clamp<int64_t>(int64_t(std::ceil(double(pw + 1) * binW)) + x1, 0, W);
            A best = 0;
            bool any = false;
            for (int64_t h = hs; h < he; ++h)
              for (int64_t w = ws; w < we; ++w) {
                const A v = A(plane[h * W + w]);
                if (!any || v > best) best = v;
                any = true;
              }
            yp[((n * C + c) * PH + ph) * PW + pw] = T(any ? best : A(0));
          }
      }
    }
  });
}

void roiAlignKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& rois = ctx.input(1);
  const Tensor& bidx = ctx.input(2);
  ctx.check(x.rank() == 4, "X must be [N,C,H,W], got " + x.summary());
  ctx.check(rois.rank() == 2 && rois.dim(1) == 4, "rois must be [num_rois, 4], got " + rois.summary());
  ctx.check(bidx.rank() == 1 && bidx.dim(0) == rois.dim(0), "batch_indices must be [num_rois]");
  const std::string mode = ctx.attrs().getString("mode", "avg");
  ctx.check(mode == "avg" || mode == "max", "mode must be 'avg' or 'max'");
  const std::string ctm = ctx.attrs().getString("coordinate_transformation_mode", "half_pixel");
  ctx.check(ctm == "half_pixel" || ctm == "output_half_pixel",
            "coordinate_transformation_mode must be half_pixel or output_half_pixel");
  const bool halfPixel = ctm == "half_pixel", isMax = mode == "max";
  const int64_t PH = ctx.attrs().getInt("output_height", 1), PW = ctx.attrs().getInt("output_width", 1);
  ctx.check(PH > 0 && PW > 0, "output_height and output_width must be positive");
  const int64_t ratio = ctx.attrs().getInt("sampling_ratio", 0);
  ctx.check(ratio >= 0, "sampling_ratio must be >= 0");
  const double scale = ctx.attrs().getFloat("spatial_scale", 1.0f);
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), R = rois.dim(0);

  struct Sample {
    int64_t p1, p2, p3, p4;
    double w1, w2, w3, w4;
  };
  dispatchFloat(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& out = ctx.allocOutput(0, x.dtype(), {R, C, PH, PW});
    const T* xp = x.data<T>();
    T* yp = out.data<T>();
    for (int64_t n = 0; n < R; ++n) {
      const int64_t b = bidx.getInt(n);
      ctx.check(b >= 0 && b < N, "batch index " + std::to_string(b) + " outside [0, " + std::to_string(N) + ")");
      const double off = halfPixel ? 0.5 : 0.0;
      const double sw = rois.getDouble(n * 4) * scale - off, sh = rois.getDouble(n * 4 + 1) * scale - off;
      const double ew = rois.getDouble(n * 4 + 2) * scale - off, eh = rois.getDouble(n * 4 + 3) * scale - off;
      double rw = ew - sw, rh = eh - sh;
      if (!halfPixel) {  // malformed ROIs become 1x1
        rw = std::max(rw, 1.0);
        rh = std::max(rh, 1.0);
      }
      ctx.check(std::isfinite(rw) && std::isfinite(rh) && std::isfinite(sw) && std::isfinite(sh),
                "roi " + std::to_string(n) + " has a non-finite coordinate");
      const double binH = rh / double(PH), binW = rw / double(PW);
      // A negative extent (half_pixel keeps malformed ROIs) samples nothing: the bin is 0.
      const double gridH = ratio > 0 ? double(ratio) : std::max(0.0, std::ceil(rh / double(PH)));
      const double gridW = ratio > 0 ? double(ratio) : std::max(0.0, std::ceil(rw / double(PW)));
      // An adaptive grid grows with the ROI; refuse ROIs that would need absurd sample counts.
      ctx.check(gridH * gridW * double(PH) * double(PW) <= double(1 << 26),
                "roi " + std::to_string(n) + " needs more than 2^26 samples (is it far larger than the image?)");
      const int64_t gh = H > 0 && W > 0 ? int64_t(gridH) : 0, gw = H > 0 && W > 0 ? int64_t(gridW) : 0;
      const double count = double(std::max<int64_t>(gh * gw, 1));
      // Bilinear sample positions and weights, shared by all channels.
      std::vector<Sample> samples;
      for (int64_t ph = 0; ph < PH; ++ph)
        for (int64_t pw = 0; pw < PW; ++pw)
          for (int64_t iy = 0; iy < gh; ++iy) {
            const double yy = sh + double(ph) * binH + (double(iy) + 0.5) * binH / double(gh);
            for (int64_t ix = 0; ix < gw; ++ix) {
              double xx = sw + double(pw) * binW + (double(ix) + 0.5) * binW / double(gw);
              double y = yy;
              if (y < -1.0 || y > double(H) || xx < -1.0 || xx > double(W)) {
                samples.push_back({0, 0, 0, 0, 0, 0, 0, 0});
                continue;
              }
              y = std::max(y, 0.0);
              xx = std::max(xx, 0.0);
              int64_t yl = int64_t(y), xl = int64_t(xx), yh, xh;
              if (yl >= H - 1) {
                yh = yl = H - 1;
                y = double(yl);
              } else {
                yh = yl + 1;
              }
              if (xl >= W - 1) {
                xh = xl = W - 1;
                xx = double(xl);
              } else {
                xh = xl + 1;
              }
              const double ly = y - double(yl), lx = xx - double(xl), hy = 1 - ly, hx = 1 - lx;
              samples.push_back({yl * W + xl, yl * W + xh, yh * W + xl, yh * W + xh, hy * hx, hy * lx, ly * hx,
                                 ly * lx});
            }
          }
      const int64_t per = gh * gw;
      for (int64_t c = 0; c < C; ++c) {
        const T* plane = xp + (b * C + c) * H * W;
        for (int64_t bin = 0; bin < PH * PW; ++bin) {
          double acc = 0;
          bool any = false;
          for (int64_t k = 0; k < per; ++k) {
            const Sample& s = samples[size_t(bin * per + k)];
            const double v1 = s.w1 * double(plane[s.p1]), v2 = s.w2 * double(plane[s.p2]);
            const double v3 = s.w3 * double(plane[s.p3]), v4 = s.w4 * double(plane[s.p4]);
            if (isMax) {
              // As onnxruntime: the max over samples of the largest weighted corner.
              const double v = std::max(std::max(v1, v2), std::max(v3, v4));
              acc = any ? std::max(acc, v) : v;
              any = true;
            } else {
              acc += v1 + v2 + v3 + v4;
            }
          }
          if (!isMax) acc /= count;
          yp[(n * C + c) * PH * PW + bin] = T(acc);
        }
      }
    }
  });
}

}  // namespace

void registerPoolKernels(KernelRegistry& r) {
  r.add("AveragePool", [](KernelContext& c) { poolKernel(c, PoolKind::kAvg); });
  r.add("MaxPool", [](KernelContext& c) { poolKernel(c, PoolKind::kMax); });
  r.add("LpPool", [](KernelContext& c) { poolKernel(c, PoolKind::kLp); });
  r.add("GlobalAveragePool", [](KernelContext& c) { globalPoolKernel(c, PoolKind::kAvg); });
  r.add("GlobalMaxPool", [](KernelContext& c) { globalPoolKernel(c, PoolKind::kMax); });
  r.add("GlobalLpPool", [](KernelContext& c) { globalPoolKernel(c, PoolKind::kLp); });
  r.add("MaxUnpool", maxUnpoolKernel);
  r.add("MaxRoiPool", maxRoiPoolKernel);
  r.add("RoiAlign", roiAlignKernel);
}

}  // namespace anvil::cpu::kernels::nn
