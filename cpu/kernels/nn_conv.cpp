// Reference kernels of the convolution ops: Conv, ConvTranspose, ConvInteger, QLinearConv,
// DeformConv, Col2Im. All go through im2col/col2im and a plain GEMM (cpu/kernels/nn_util.h);
// floats accumulate in float (f64 in double), integer convolutions in i32.
#include <cmath>

#include "cpu/kernels/nn_util.h"

namespace anvil::cpu::kernels::nn {

namespace {

std::vector<int64_t> tailDims(const Tensor& t, size_t from) {
  return std::vector<int64_t>(t.dims().begin() + int64_t(from), t.dims().end());
}

struct ConvSetup {
  int64_t N = 0, C = 0, M = 0, group = 1;
  ConvGeom g;
  std::vector<int64_t> outDims;
};

// Checks X [N,C,...] against W [M,C/group,k...] and resolves the window.
ConvSetup convSetup(const KernelContext& ctx, const Tensor& x, const Tensor& w) {
  ctx.check(x.rank() >= 3, "X must be [N, C, spatial...], got " + x.summary());
  ctx.check(w.rank() == x.rank(), "W " + w.summary() + " does not match the rank of X " + x.summary());
  ConvSetup s;
  s.group = ctx.attrs().getInt("group", 1);
  ctx.check(s.group >= 1, "group must be >= 1");
  s.N = x.dim(0);
  s.C = x.dim(1);
  s.M = w.dim(0);
  ctx.check(s.C == w.dim(1) * s.group, "X has " + std::to_string(s.C) + " channels, W " + w.summary() +
                                           " with group " + std::to_string(s.group) + " expects " +
                                           std::to_string(w.dim(1) * s.group));
  ctx.check(s.M % s.group == 0, "output channels are not divisible by group");
  s.g = ConvGeom::make(ctx, tailDims(x, 2), tailDims(w, 2));
  s.outDims = {s.N, s.M};
  for (int64_t o : s.g.out) s.outDims.push_back(o);
  return s;
}

void checkBias(const KernelContext& ctx, size_t i, int64_t m) {
  if (!ctx.hasInput(i)) return;
  const Tensor& b = ctx.input(i);
  ctx.check(b.rank() == 1 && b.dim(0) == m, "bias must be [" + std::to_string(m) + "], got " + b.summary());
}

// y[n][m][p] += sum over the group's channels and the window of w * x. x is N*C*inSize,
// w is M*(C/group)*kSize, y is N*M*outSize.
template <typename A>
void convForward(const ConvSetup& s, const A* x, const A* w, A* y) {
  const ConvGeom& g = s.g;
  const int64_t cg = s.C / s.group, mg = s.M / s.group, K = cg * g.kSize;
  const bool direct = g.isPointwise();
  std::vector<A> col(direct ? 0 : size_t(K * g.outSize));
  for (int64_t n = 0; n < s.N; ++n) {
    for (int64_t gi = 0; gi < s.group; ++gi) {
      const A* xg = x + (n * s.C + gi * cg) * g.inSize;
      const A* cols = xg;
      if (!direct) {
        im2col(g, xg, cg, col.data());
        cols = col.data();
      }
      gemmAccumulate(mg, g.outSize, K, w + gi * mg * K, K, 1, cols, g.outSize, y + (n * s.M + gi * mg) * g.outSize,
                     g.outSize);
    }
  }
}

// Data of a float tensor as A, without a copy when the types agree.
template <typename T, typename A>
const A* asCompute(const Tensor& t, std::vector<A>& storage) {
  if constexpr (std::is_same_v<T, A>) {
    return t.data<A>();
  } else {
    storage.resize(size_t(t.numel()));
    const T* p = t.data<T>();
    for (size_t i = 0; i < storage.size(); ++i) storage[i] = A(p[i]);
    return storage.data();
  }
}

// Writes A results into a fresh output of type T (or computes in place when T == A).
template <typename T, typename A, typename F>
void withComputeOutput(KernelContext& ctx, DataType dt, const std::vector<int64_t>& dims, F compute) {
  Tensor& out = ctx.allocOutput(0, dt, dims);
  if constexpr (std::is_same_v<T, A>) {
    compute(out.data<A>());
  } else {
    std::vector<A> y(size_t(out.numel()), A(0));
    compute(y.data());
    T* o = out.data<T>();
    for (size_t i = 0; i < y.size(); ++i) o[i] = T(y[i]);
  }
}

void convKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  ctx.check(w.dtype() == x.dtype(), "X and W must have the same type");
  ConvSetup s = convSetup(ctx, x, w);
  checkBias(ctx, 2, s.M);
  dispatchFloat(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = ComputeT<T>;
    std::vector<A> xs, ws, bs;
    const A* xp = asCompute<T, A>(x, xs);
    const A* wp = asCompute<T, A>(w, ws);
    const A* bp = ctx.hasInput(2) ? asCompute<T, A>(ctx.input(2), bs) : nullptr;
    withComputeOutput<T, A>(ctx, x.dtype(), s.outDims, [&](A* y) {
      if (bp)
        for (int64_t n = 0; n < s.N; ++n)
          for (int64_t m = 0; m < s.M; ++m) {
            A* row = y + (n * s.M + m) * s.g.outSize;
            for (int64_t p = 0; p < s.g.outSize; ++p) row[p] = bp[m];
          }
      convForward(s, xp, wp, y);
    });
  });
}

void convTransposeKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  ctx.check(w.dtype() == x.dtype(), "X and W must have the same type");
  ctx.check(x.rank() >= 3, "X must be [N, C, spatial...], got " + x.summary());
  ctx.check(w.rank() == x.rank(), "W " + w.summary() + " does not match the rank of X " + x.summary());
  const size_t r = x.rank() - 2;
  const int64_t group = ctx.attrs().getInt("group", 1);
  ctx.check(group >= 1, "group must be >= 1");
  const int64_t N = x.dim(0), C = x.dim(1);
  ctx.check(w.dim(0) == C, "W dim 0 " + std::to_string(w.dim(0)) + " must equal the input channels " +
                               std::to_string(C));
  ctx.check(C % group == 0, "input channels are not divisible by group");
  const int64_t cg = C / group, mg = w.dim(1), M = mg * group;
  checkBias(ctx, 2, M);
  ir::nn::Window win;
  std::string err = ir::nn::readWindow(ctx.attrs(), r, tailDims(w, 2), &win);
  if (!err.empty()) ctx.fail(err);
  auto outPad = ctx.attrs().getInts("output_padding", std::vector<int64_t>(r, 0));
  ctx.check(outPad.size() == r, "output_padding must have " + std::to_string(r) + " values");
  auto outShape = ctx.attrs().getInts("output_shape");
  if (outShape.size() == r + 2) outShape.erase(outShape.begin(), outShape.begin() + 2);
  ctx.check(outShape.empty() || outShape.size() == r, "output_shape must have " + std::to_string(r) + " values");

  // The image is the ConvTranspose output; the column positions are the input positions.
  ConvGeom g;
  g.r = r;
  g.k = win.kernel;
  g.s = win.strides;
  g.d = win.dilations;
  g.out = tailDims(x, 2);
  std::vector<int64_t> outDims{N, M};
  for (size_t i = 0; i < r; ++i) {
    ir::nn::WindowDim o;
    ir::nn::transposeDim(g.out[i], g.k[i], g.s[i], g.d[i], outPad[i], win.pads[i], win.pads[i + r], win.autoPad,
                         outShape.empty() ? -1 : outShape[i], &o);
    ctx.check(o.out > 0, "output spatial dim " + std::to_string(i) + " would be " + std::to_string(o.out));
    g.in.push_back(o.out);
    g.pb.push_back(o.padBegin);
    g.pe.push_back(o.padEnd);
    outDims.push_back(o.out);
    g.inSize *= o.out;
    g.kSize *= g.k[i];
    g.outSize *= g.out[i];
  }
  dispatchFloat(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = ComputeT<T>;
    std::vector<A> xs, ws, bs;
    const A* xp = asCompute<T, A>(x, xs);
    const A* wp = asCompute<T, A>(w, ws);
    const A* bp = ctx.hasInput(2) ? asCompute<T, A>(ctx.input(2), bs) : nullptr;
    const int64_t rows = mg * g.kSize;
    std::vector<A> col(size_t(rows * g.outSize));
    withComputeOutput<T, A>(ctx, x.dtype(), outDims, [&](A* y) {
      for (int64_t n = 0; n < N; ++n)
        for (int64_t gi = 0; gi < group; ++gi) {
          std::fill(col.begin(), col.end(), A(0));
          // col[row][p] = sum_c W[c][row] * X[c][p] over the group's input channels.
          gemmAccumulate(rows, g.outSize, cg, wp + gi * cg * rows, 1, rows, xp + (n * C + gi * cg) * g.outSize,
                         g.outSize, col.data(), g.outSize);
          col2im(g, col.data(), mg, y + (n * M + gi * mg) * g.inSize);
        }
      if (bp)
        for (int64_t n = 0; n < N; ++n)
          for (int64_t m = 0; m < M; ++m) {
            A* row = y + (n * M + m) * g.inSize;
            for (int64_t p = 0; p < g.inSize; ++p) row[p] += bp[m];
          }
    });
  });
}

bool isQ8(DataType t) { return t == DataType::kU8 || t == DataType::kI8; }

// Zero point of input i: per tensor (one value) or per channel (`channels` values).
std::vector<int32_t> zeroPoints(const KernelContext& ctx, size_t i, int64_t channels, DataType want,
                                const char* what) {
  if (!ctx.hasInput(i)) return std::vector<int32_t>(size_t(channels), 0);
  const Tensor& z = ctx.input(i);
  ctx.check(z.dtype() == want, std::string(what) + " must have the type of its data (" + ir::dtypeName(want) + ")");
  ctx.check(z.numel() == 1 || (z.rank() == 1 && z.numel() == channels),
            std::string(what) + " must be a scalar or have " + std::to_string(channels) + " values, got " +
                z.summary());
  std::vector<int32_t> v(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) v[size_t(c)] = int32_t(z.getInt(z.numel() == 1 ? 0 : c));
  return v;
}

// Integer conv: (x - xzp) * (w - wzp[m]) accumulated in i32, plus an optional i32 bias.
std::vector<int32_t> integerConv(const KernelContext& ctx, const ConvSetup& s, const Tensor& x, const Tensor& w,
                                 size_t xzpIdx, size_t wzpIdx, const Tensor* bias) {
  ctx.check(isQ8(x.dtype()) && isQ8(w.dtype()), "x and w must be u8 or i8");
  auto xzp = zeroPoints(ctx, xzpIdx, 1, x.dtype(), "x_zero_point");
  auto wzp = zeroPoints(ctx, wzpIdx, s.M, w.dtype(), "w_zero_point");
  std::vector<int32_t> xs(size_t(x.numel())), ws(size_t(w.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) xs[size_t(i)] = int32_t(x.getInt(i)) - xzp[0];
  const int64_t per = w.numel() / std::max<int64_t>(s.M, 1);
  for (int64_t i = 0; i < w.numel(); ++i) ws[size_t(i)] = int32_t(w.getInt(i)) - wzp[size_t(i / per)];
  std::vector<int32_t> y(size_t(s.N * s.M * s.g.outSize), 0);
  if (bias) {
    ctx.check(bias->dtype() == DataType::kI32 && bias->rank() == 1 && bias->dim(0) == s.M,
              "B must be i32 [" + std::to_string(s.M) + "], got " + bias->summary());
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t m = 0; m < s.M; ++m)
        for (int64_t p = 0; p < s.g.outSize; ++p) y[size_t((n * s.M + m) * s.g.outSize + p)] = bias->data<int32_t>()[m];
  }
  convForward(s, xs.data(), ws.data(), y.data());
  return y;
}

void convIntegerKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  ConvSetup s = convSetup(ctx, x, w);
  std::vector<int32_t> y = integerConv(ctx, s, x, w, 2, 3, nullptr);
  Tensor& out = ctx.allocOutput(0, DataType::kI32, s.outDims);
  std::copy(y.begin(), y.end(), out.data<int32_t>());
}

// A scale input as floats: one value or `channels` values.
std::vector<float> scales(const KernelContext& ctx, size_t i, int64_t channels, const char* what) {
  const Tensor& t = ctx.input(i);
  ctx.check(ir::isFloat(t.dtype()), std::string(what) + " must be a float tensor");
  ctx.check(t.numel() == 1 || (t.rank() == 1 && t.numel() == channels),
            std::string(what) + " must be a scalar or have " + std::to_string(channels) + " values, got " + t.summary());
  std::vector<float> v(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) v[size_t(c)] = float(t.getDouble(t.numel() == 1 ? 0 : c));
  return v;
}

void qlinearConvKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(3);
  ConvSetup s = convSetup(ctx, x, w);
  const float xs = scales(ctx, 1, 1, "x_scale")[0];
  const std::vector<float> wsc = scales(ctx, 4, s.M, "w_scale");
  const float ys = scales(ctx, 6, 1, "y_scale")[0];
  const DataType outType = ctx.hasInput(7) ? ctx.input(7).dtype() : x.dtype();
  ctx.check(isQ8(outType), "y_zero_point must be u8 or i8");
  const int32_t yzp = zeroPoints(ctx, 7, 1, outType, "y_zero_point")[0];
  std::vector<int32_t> acc = integerConv(ctx, s, x, w, 2, 5, ctx.hasInput(8) ? &ctx.input(8) : nullptr);
  Tensor& out = ctx.allocOutput(0, outType, s.outDims);
  int64_t lo, hi;
  intRange(outType, &lo, &hi);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t m = 0; m < s.M; ++m) {
      const float mult = xs * wsc[size_t(m)] / ys;
      for (int64_t p = 0; p < s.g.outSize; ++p) {
        const int64_t i = (n * s.M + m) * s.g.outSize + p;
        // Round, then add the zero point (QuantizeLinear's order, as onnxruntime does).
        setIntElement(out, i, roundSaturate(std::nearbyint(double(float(acc[size_t(i)]) * mult)) + yzp, lo, hi));
      }
    }
}

// Bilinear sample of a [H,W] plane at (h, w); positions outside contribute zero.
template <typename A>
A bilinear(const A* plane, int64_t H, int64_t W, A h, A w) {
  if (!(h > A(-1)) || !(h < A(H)) || !(w > A(-1)) || !(w < A(W))) return A(0);
  const A hf = std::floor(h), wf = std::floor(w);
  const int64_t h0 = int64_t(hf), w0 = int64_t(wf), h1 = h0 + 1, w1 = w0 + 1;
  const A lh = h - hf, lw = w - wf, hh = A(1) - lh, hw = A(1) - lw;
  auto at = [&](int64_t y, int64_t x) { return (y >= 0 && y < H && x >= 0 && x < W) ? plane[y * W + x] : A(0); };
  return hh * hw * at(h0, w0) + hh * lw * at(h0, w1) + lh * hw * at(h1, w0) + lh * lw * at(h1, w1);
}

void deformConvKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const Tensor& off = ctx.input(2);
  ctx.check(w.dtype() == x.dtype() && off.dtype() == x.dtype(), "X, W and offset must have the same type");
  ctx.check(x.rank() == 4, "DeformConv supports 2-D inputs [N,C,H,W] only, got " + x.summary());
  ConvSetup s = convSetup(ctx, x, w);
  checkBias(ctx, 3, s.M);
  const int64_t og = ctx.attrs().getInt("offset_group", 1);
  ctx.check(og >= 1 && s.C % og == 0, "offset_group must be >= 1 and divide the input channels");
  const ConvGeom& g = s.g;
  const std::vector<int64_t> offDims{s.N, og * g.kSize * 2, g.out[0], g.out[1]};
  ctx.check(off.dims() == offDims, "offset must be " + ir::Shape::fromExtents(offDims).str() + ", got " +
                                       off.summary());
  const Tensor* mask = ctx.hasInput(4) ? &ctx.input(4) : nullptr;
  if (mask) {
    const std::vector<int64_t> maskDims{s.N, og * g.kSize, g.out[0], g.out[1]};
    ctx.check(mask->dtype() == x.dtype() && mask->dims() == maskDims,
              "mask must be " + ir::Shape::fromExtents(maskDims).str() + ", got " + mask->summary());
  }
  dispatchFloat(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = ComputeT<T>;
    std::vector<A> xs, ws, os, ms, bs;
    const A* xp = asCompute<T, A>(x, xs);
    const A* wp = asCompute<T, A>(w, ws);
    const A* op = asCompute<T, A>(off, os);
    const A* mp = mask ? asCompute<T, A>(*mask, ms) : nullptr;
    const A* bp = ctx.hasInput(3) ? asCompute<T, A>(ctx.input(3), bs) : nullptr;
    const int64_t H = g.in[0], W = g.in[1], OH = g.out[0], OW = g.out[1], P = g.outSize;
    const int64_t cg = s.C / s.group, mg = s.M / s.group, K = cg * g.kSize, cPerOg = s.C / og;
    std::vector<A> col(size_t(K * P));
    withComputeOutput<T, A>(ctx, x.dtype(), s.outDims, [&](A* y) {
      for (int64_t n = 0; n < s.N; ++n)
        for (int64_t gi = 0; gi < s.group; ++gi) {
          for (int64_t cl = 0; cl < cg; ++cl) {
            const int64_t c = gi * cg + cl, o = c / cPerOg;
            const A* plane = xp + (n * s.C + c) * H * W;
            for (int64_t kidx = 0; kidx < g.kSize; ++kidx) {
              const int64_t kh = kidx / g.k[1], kw = kidx % g.k[1];
              const A* offH = op + ((n * og + o) * g.kSize * 2 + kidx * 2) * P;
              const A* offW = offH + P;
              const A* mk = mp ? mp + ((n * og + o) * g.kSize + kidx) * P : nullptr;
              A* dst = col.data() + (cl * g.kSize + kidx) * P;
              for (int64_t oh = 0; oh < OH; ++oh)
                for (int64_t ow = 0; ow < OW; ++ow) {
                  const int64_t p = oh * OW + ow;
                  const A h = A(oh * g.s[0] - g.pb[0] + kh * g.d[0]) + offH[p];
                  const A ww = A(ow * g.s[1] - g.pb[1] + kw * g.d[1]) + offW[p];
                  A v = bilinear(plane, H, W, h, ww);
                  dst[p] = mk ? v * mk[p] : v;
                }
            }
          }
          gemmAccumulate(mg, P, K, wp + gi * mg * K, K, 1, col.data(), P, y + (n * s.M + gi * mg) * P, P);
        }
      if (bp)
        for (int64_t n = 0; n < s.N; ++n)
          for (int64_t m = 0; m < s.M; ++m)
            for (int64_t p = 0; p < P; ++p) y[(n * s.M + m) * P + p] += bp[m];
    });
  });
}

void col2imKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& imageT = ctx.input(1);
  const Tensor& blockT = ctx.input(2);
  ctx.check(x.rank() == 3, "input must be [N, C*prod(block_shape), L], got " + x.summary());
  ctx.check(imageT.rank() == 1 && blockT.rank() == 1 && imageT.numel() == blockT.numel() && imageT.numel() >= 1,
            "image_shape and block_shape must be 1-D of the same length");
  const std::vector<int64_t> image = imageT.toInt64Vector(), block = blockT.toInt64Vector();
  for (size_t i = 0; i < image.size(); ++i)
    ctx.check(image[i] > 0 && block[i] > 0, "image_shape and block_shape values must be positive");
  ConvGeom g = ConvGeom::make(ctx, image, block);
  ctx.check(x.dim(1) % g.kSize == 0, "input dim 1 (" + std::to_string(x.dim(1)) +
                                         ") is not divisible by prod(block_shape) " + std::to_string(g.kSize));
  ctx.check(x.dim(2) == g.outSize, "input has " + std::to_string(x.dim(2)) + " blocks, expected " +
                                       std::to_string(g.outSize));
  const int64_t N = x.dim(0), C = x.dim(1) / g.kSize;
  std::vector<int64_t> outDims{N, C};
  for (int64_t d : image) outDims.push_back(d);
  dispatchNumeric(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = ComputeT<T>;
    std::vector<A> xs;
    const A* xp = asCompute<T, A>(x, xs);
    withComputeOutput<T, A>(ctx, x.dtype(), outDims, [&](A* y) {
      for (int64_t n = 0; n < N; ++n) col2im(g, xp + n * C * g.kSize * g.outSize, C, y + n * C * g.inSize);
    });
  });
}

}  // namespace

void registerConvKernels(KernelRegistry& r) {
  r.add("Conv", convKernel);
  r.add("ConvTranspose", convTransposeKernel);
  r.add("ConvInteger", convIntegerKernel);
  r.add("QLinearConv", qlinearConvKernel);
  r.add("DeformConv", deformConvKernel);
  r.add("Col2Im", col2imKernel);
}

}  // namespace anvil::cpu::kernels::nn
