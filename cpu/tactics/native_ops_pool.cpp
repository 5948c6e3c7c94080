// Native pooling kernels on NCHW f32: MaxPool and AveragePool over 2-d windows (strides,
// dilations, explicit or automatic pads, ceil_mode, count_include_pad) and
// GlobalAveragePool / GlobalMaxPool. Semantics of cpu/kernels/nn_pool.cpp: padding never
// contributes a value; with count_include_pad the divisor is the whole window (positions
// past the end that ceil_mode adds included, as the ONNX reference); max keeps the first
// of equal values and an empty window gives -inf.
#include <cmath>
#include <limits>

#include "cpu/tactics/native_ops_util.h"
#include "ir/ops/nn_util.h"

// GCC 12's -O2 vectorizes a loop only when no scalar remainder is left (its "very cheap"
// cost model); the loops here run over arbitrary extents, so this file asks for the
// dynamic model (per-element IEEE operations: results do not change).
#pragma GCC optimize("vect-cost-model=dynamic")

namespace anvil::runtime::nops {

namespace {

struct PoolParams {
  int32_t max = 0;  // 1: MaxPool, 0: AveragePool
  int32_t includePad = 0;
  int32_t autoPad = 0;  // ir::nn::AutoPad
  int64_t k[2] = {}, s[2] = {}, d[2] = {}, pads[4] = {};
};

// Pad before the window along one dim for the run's input extent (auto_pad is resolved
// from it, as ir::nn::forwardDim does).
int64_t padBegin(const PoolParams& p, int i, int64_t in, int64_t out) {
  const auto ap = ir::nn::AutoPad(p.autoPad);
  if (ap == ir::nn::AutoPad::kSameUpper || ap == ir::nn::AutoPad::kSameLower) {
    const int64_t dk = (p.k[i] - 1) * p.d[i] + 1;
    const int64_t total = std::max<int64_t>(0, (out - 1) * p.s[i] + dk - in);
    return ap == ir::nn::AutoPad::kSameUpper ? total / 2 : total - total / 2;
  }
  if (ap == ir::nn::AutoPad::kValid) return 0;
  return p.pads[i];
}

void poolKernel(const StepArgs& a) {
  const PoolParams& p = a.paramsAs<PoolParams>();
  const TensorView& x = a.in(0);
  const TensorView& y = a.out(0);
  const int64_t planes = x.dims[0] * x.dims[1];
  const int64_t H = x.dims[2], W = x.dims[3], OH = y.dims[2], OW = y.dims[3];
  const int64_t pt = padBegin(p, 0, H, OH), pl = padBegin(p, 1, W, OW);
  const int64_t kh = p.k[0], kw = p.k[1], sh = p.s[0], sw = p.s[1], dh = p.d[0], dw = p.d[1];
  const float* xp = x.as<const float>();
  float* yp = y.as<float>();
  const bool isMax = p.max != 0;
  const float fullDiv = float(kh * kw);
  parallelRange(a.executor, planes * OH, 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t plane = r / OH, oh = r % OH;
      const float* src = xp + plane * H * W;
      float* dst = yp + plane * OH * OW + oh * OW;
      // Rows of the window inside the input: kernel rows [k0, k1).
      const int64_t h0 = oh * sh - pt;
      int64_t k0 = h0 >= 0 ? 0 : (-h0 + dh - 1) / dh;
      int64_t k1 = h0 + (kh - 1) * dh < H ? kh : (H - 1 - h0) / dh + 1;
      if (H - 1 - h0 < 0) k1 = 0;
      if (k1 < k0) k1 = k0;
      // Interior columns [lo, hi) (whole window inside the input): the window loops run
      // outside the column loop, which vectorizes; each output still sees its window in
      // row-major order, so results equal the element-wise path (and the reference).
      int64_t lo = OW, hi = OW;
      if (k1 > k0) {
        lo = std::min<int64_t>(OW, (pl + sw - 1) / sw);
        const int64_t num = W - 1 - (kw - 1) * dw + pl;
        hi = num < 0 ? lo : std::max(lo, std::min<int64_t>(OW, num / sw + 1));
      }
      const int64_t n = hi - lo;
      if (n > 0) {
        float* __restrict d = dst + lo;
        const int64_t c0 = lo * sw - pl;  // input column of output lo, window column 0
        if (isMax) {
          const float* first = src + (h0 + k0 * dh) * W + c0;
          for (int64_t o = 0; o < n; ++o) d[o] = first[o * sw];
          for (int64_t i = k0; i < k1; ++i)
            for (int64_t j = (i == k0 ? 1 : 0); j < kw; ++j) {
              const float* __restrict s0 = src + (h0 + i * dh) * W + c0 + j * dw;
              for (int64_t o = 0; o < n; ++o) {
                const float v = s0[o * sw];
                d[o] = v > d[o] ? v : d[o];
              }
            }
        } else {
          for (int64_t o = 0; o < n; ++o) d[o] = 0.f;
          for (int64_t i = k0; i < k1; ++i)
            for (int64_t j = 0; j < kw; ++j) {
              const float* __restrict s0 = src + (h0 + i * dh) * W + c0 + j * dw;
              for (int64_t o = 0; o < n; ++o) d[o] += s0[o * sw];
            }
          const float div = p.includePad ? fullDiv : float((k1 - k0) * kw);
          for (int64_t o = 0; o < n; ++o) d[o] = d[o] / div;
        }
      }
      for (int64_t ow = 0; ow < OW; ++ow) {
        if (ow == lo) ow = hi;
        if (ow >= OW) break;
        const int64_t w0 = ow * sw - pl;
        int64_t j0 = w0 >= 0 ? 0 : (-w0 + dw - 1) / dw;
        int64_t j1 = w0 + (kw - 1) * dw < W ? kw : (W - 1 - w0) / dw + 1;
        if (W - 1 - w0 < 0) j1 = 0;
        if (j1 < j0) j1 = j0;
        if (isMax) {
          float best = -std::numeric_limits<float>::infinity();
          bool any = false;
          for (int64_t i = k0; i < k1; ++i) {
            const int64_t row = (h0 + i * dh) * W + w0;  // an index: w0 may be negative
            for (int64_t j = j0; j < j1; ++j) {
              const float v = src[row + j * dw];
              if (!any || v > best) best = v;
              any = true;
            }
          }
          dst[ow] = best;
        } else {
          float sum = 0.f;
          for (int64_t i = k0; i < k1; ++i) {
            const int64_t row = (h0 + i * dh) * W + w0;
            for (int64_t j = j0; j < j1; ++j) sum += src[row + j * dw];
          }
          const int64_t cnt = (k1 - k0) * (j1 - j0);
          const float div = p.includePad ? fullDiv : float(cnt);
          dst[ow] = div > 0.f ? sum / div : 0.f;
        }
      }
    }
  });
}

bool poolSupports(bool isMax, const ir::Node& n, const std::vector<ir::TensorType>& t) {
  if (t.empty() || t[0].dtype != DataType::kF32 || rankOf(t, 0) != 4) return false;
  if (isMax && outputUsed(n, 1)) return false;  // Indices: the reference serves them
  ir::nn::Window w;
  if (!ir::nn::readWindow(n.attrs(), 2, {}, &w).empty() || w.kernel.size() != 2) return false;
  return true;
}

void poolPrepare(bool isMax, const PrepareInfo& info, Prepared* out) {
  ir::nn::Window w;
  const std::string err = ir::nn::readWindow(info.node->attrs(), 2, {}, &w);
  ANVIL_CHECK(err.empty(), ErrorCode::kInvalidArgument, info.node->label(), ": ", err);
  PoolParams p;
  p.max = isMax ? 1 : 0;
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

// ---- global pools ----------------------------------------------------------------------

struct GlobalParams {
  int32_t max = 0;
};

void globalKernel(const StepArgs& a) {
  const TensorView& x = a.in(0);
  const int64_t planes = x.dims[0] * x.dims[1];
  int64_t size = 1;
  for (int i = 2; i < x.rank; ++i) size *= x.dims[i];
  const float* xp = x.as<const float>();
  float* yp = a.out(0).as<float>();
  const bool isMax = a.paramsAs<GlobalParams>().max != 0;
  parallelRange(a.executor, planes, std::max<int64_t>(1, 4096 / std::max<int64_t>(size, 1)), [&](int64_t b, int64_t e) {
    for (int64_t pl = b; pl < e; ++pl) {
      const float* __restrict v = xp + pl * size;
      if (isMax) {
        // NaN wins, as the reference.
        float acc = -std::numeric_limits<float>::infinity();
        for (int64_t i = 0; i < size; ++i) acc = (v[i] > acc || std::isnan(v[i])) ? v[i] : acc;
        yp[pl] = acc;
        continue;
      }
      // Eight partial sums in double (a fixed order, so vectorized and independent of
      // threads). The reference sums left to right in float, whose error grows with the
      // plane (up to n * 2^-24 of the magnitude); this sum is exact to ~1e-16 before the
      // final rounding, so the two differ by the reference's rounding (see the test).
      double part[8] = {};
      int64_t i = 0;
      for (; i + 8 <= size; i += 8)
        for (int j = 0; j < 8; ++j) part[j] += double(v[i + j]);
      double sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
      for (; i < size; ++i) sum += double(v[i]);
      yp[pl] = size > 0 ? float(sum / double(size)) : 0.f;
    }
  });
}

Kernel base(const std::string& name, const std::string& op) {
  Kernel k;
  k.name = name;
  k.version = 1;
  k.op = op;
  k.precision = DataType::kF32;
  return k;
}

}  // namespace

void registerPool(Kernels& k) {
  for (bool isMax : {true, false}) {
    Kernel kn = base(isMax ? "f32_maxpool2d_nchw" : "f32_avgpool2d_nchw", isMax ? "MaxPool" : "AveragePool");
    kn.supports = [isMax](const ir::Node& n, const std::vector<ir::TensorType>& t) { return poolSupports(isMax, n, t); };
    kn.prepare = [isMax](const PrepareInfo& info, Prepared* p) { poolPrepare(isMax, info, p); };
    kn.run = poolKernel;
    k.add(std::move(kn));

    Kernel g = base(isMax ? "f32_global_maxpool" : "f32_global_avgpool", isMax ? "GlobalMaxPool" : "GlobalAveragePool");
    g.supports = [](const ir::Node&, const std::vector<ir::TensorType>& t) {
      return !t.empty() && t[0].dtype == DataType::kF32 && rankOf(t, 0) >= 3;
    };
    g.prepare = [isMax](const PrepareInfo&, Prepared* p) { p->setParams(GlobalParams{isMax ? 1 : 0}); };
    g.run = globalKernel;
    k.add(std::move(g));
  }
}

}  // namespace anvil::runtime::nops
