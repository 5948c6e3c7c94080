// The ring kernels of the mpc program: plain loops over uint64 (wrapping arithmetic is the
// ring's), shapes checked against the data so a malformed program fails with an error
// naming the step instead of reading out of bounds.
#include "runtime/mpc/ring_ops.h"

#include <cmath>

#include "anvil/error.h"

namespace anvil::mpc {

namespace {

std::string dimsStr(const Dims& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "x" : "") + std::to_string(d[i]);
  return s + "]";
}

void checkSize(const RingVec& v, const Dims& shape, const Step& step, const char* what) {
  ANVIL_CHECK(int64_t(v.size()) == numelOf(shape), ErrorCode::kInvalidEngine, "mpc step '", step.name, "': ", what,
              " holds ", v.size(), " elements, its shape ", dimsStr(shape), " needs ", numelOf(shape));
}

std::vector<int64_t> stridesOf(const Dims& shape) {
  std::vector<int64_t> st(shape.size(), 1);
  for (int64_t i = int64_t(shape.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * shape[i + 1];
  return st;
}

// For a numpy broadcast of `in` to `out`: the input strides per output axis (0 where broadcast).
std::vector<int64_t> broadcastStrides(const Dims& in, const Dims& out) {
  ANVIL_CHECK(in.size() <= out.size(), ErrorCode::kInvalidEngine, "broadcast of ", dimsStr(in), " to ", dimsStr(out));
  std::vector<int64_t> st(out.size(), 0);
  std::vector<int64_t> inSt = stridesOf(in);
  size_t off = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) {
    ANVIL_CHECK(in[i] == out[off + i] || in[i] == 1, ErrorCode::kInvalidEngine, "cannot broadcast ", dimsStr(in),
                " to ", dimsStr(out));
    st[off + i] = in[i] == 1 ? 0 : inSt[i];
  }
  return st;
}

template <typename F>
RingVec broadcastBinary(const RingVec& a, const Dims& aShape, const RingVec& b, const Dims& bShape, const Dims& outShape,
                        F f) {
  ANVIL_CHECK(int64_t(a.size()) == numelOf(aShape) && int64_t(b.size()) == numelOf(bShape), ErrorCode::kInvalidEngine,
              "broadcast operands do not match their shapes ", dimsStr(aShape), " ", dimsStr(bShape));
  std::vector<int64_t> sa = broadcastStrides(aShape, outShape), sb = broadcastStrides(bShape, outShape);
  const int64_t n = numelOf(outShape);
  const size_t r = outShape.size();
  RingVec out(n);
  std::vector<int64_t> idx(r, 0);
  int64_t ia = 0, ib = 0;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = f(a[ia], b[ib]);
    for (size_t k = r; k-- > 0;) {
      ++idx[k];
      ia += sa[k];
      ib += sb[k];
      if (idx[k] < outShape[k]) break;
      ia -= sa[k] * idx[k];
      ib -= sb[k] * idx[k];
      idx[k] = 0;
    }
  }
  return out;
}

}  // namespace

int64_t numelOf(const Dims& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Ring quantize(double x, double scale) {
  double q = std::round(x / scale);  // std::round: half away from zero
  ANVIL_CHECK(std::isfinite(q) && std::fabs(q) < 9.2e18, ErrorCode::kInvalidArgument, "input value ", x,
              " does not fit the ring at scale ", scale);
  return Ring(int64_t(q));
}

double dequantize(Ring v, double scale) { return double(int64_t(v)) * scale; }

Dims windowOutputShape(const ConvGeometry& g, const Dims& in, int64_t oc) {
  ANVIL_CHECK(in.size() == 4, ErrorCode::kInvalidEngine, "window op on a rank-", in.size(), " input (NCHW expected)");
  for (int k = 0; k < 2; ++k)
    ANVIL_CHECK(g.kernel[k] >= 1 && g.stride[k] >= 1 && g.dilation[k] >= 1, ErrorCode::kInvalidEngine,
                "window with kernel ", g.kernel[k], ", stride ", g.stride[k], ", dilation ", g.dilation[k]);
  Dims out = {in[0], oc, 0, 0};
  for (int k = 0; k < 2; ++k) {
    int64_t span = g.dilation[k] * (g.kernel[k] - 1) + 1;
    out[2 + k] = (in[2 + k] + g.pads[k] + g.pads[k + 2] - span) / g.stride[k] + 1;
  }
  return out;
}

RingVec applyBilinear(const Step& step, const RingVec& W, const RingVec& x, const Dims& xShape, const Dims& outShape) {
  checkSize(W, step.weightShape, step, "the weights");
  checkSize(x, xShape, step, "the input");
  if (step.kind == StepKind::kScale) {
    // x * W with W on the trailing axes: W's flat index is x's flat index mod |W|.
    const int64_t nw = int64_t(W.size());
    ANVIL_CHECK(nw > 0 && int64_t(x.size()) % nw == 0 && outShape == xShape, ErrorCode::kInvalidEngine,
                "mpc step '", step.name, "': scale weights ", dimsStr(step.weightShape), " do not tile the input ",
                dimsStr(xShape));
    RingVec out(x.size());
    for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] * W[i % nw];
    return out;
  }
  ANVIL_CHECK(step.kind == StepKind::kLinear, ErrorCode::kInternal, "applyBilinear on step '", step.name,
              "', which is not kLinear / kScale");
  if (step.linear == LinearKind::kMatMul) {
    ANVIL_CHECK(step.weightShape.size() == 2 && !xShape.empty() && xShape.back() == step.weightShape[0],
                ErrorCode::kInvalidEngine, "mpc step '", step.name, "': input ", dimsStr(xShape),
                " does not match weights ", dimsStr(step.weightShape));
    const int64_t K = step.weightShape[0], N = step.weightShape[1], M = int64_t(x.size()) / K;
    Dims expect = xShape;
    expect.back() = N;
    ANVIL_CHECK(outShape == expect, ErrorCode::kInvalidEngine, "mpc step '", step.name, "': output ",
                dimsStr(outShape), ", expected ", dimsStr(expect));
    RingVec out(M * N, 0);
    for (int64_t m = 0; m < M; ++m) {
      Ring* o = &out[m * N];
      for (int64_t k = 0; k < K; ++k) {
        const Ring a = x[m * K + k];
        const Ring* w = &W[k * N];
        for (int64_t n = 0; n < N; ++n) o[n] += a * w[n];
      }
    }
    return out;
  }
  const ConvGeometry& g = step.conv;
  ANVIL_CHECK(step.weightShape.size() == 4 && xShape.size() == 4 && g.group > 0, ErrorCode::kInvalidEngine,
              "mpc step '", step.name, "': conv needs NCHW input and [OC, IC/group, KH, KW] weights");
  const int64_t OC = step.weightShape[0], Cg = step.weightShape[1], KH = step.weightShape[2], KW = step.weightShape[3];
  const int64_t N = xShape[0], C = xShape[1], H = xShape[2], Wd = xShape[3];
  ANVIL_CHECK(C == Cg * g.group && OC % g.group == 0 && KH == g.kernel[0] && KW == g.kernel[1], ErrorCode::kInvalidEngine,
              "mpc step '", step.name, "': conv weights ", dimsStr(step.weightShape), " do not fit input ",
              dimsStr(xShape), " with group ", g.group);
  ANVIL_CHECK(outShape == windowOutputShape(g, xShape, OC), ErrorCode::kInvalidEngine, "mpc step '", step.name,
              "': conv output ", dimsStr(outShape), " does not follow from its geometry");
  const int64_t OH = outShape[2], OW = outShape[3], ocPerGroup = OC / g.group, P = OH * OW, K = Cg * KH * KW;
  RingVec out(N * OC * P, 0);
  // Per image and group: the patch of every output position (K values, zeros where the
  // window lies in the padding), then one dot product per (channel, position) with the
  // sum kept in registers.
  RingVec patches(P * K);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t grp = 0; grp < g.group; ++grp) {
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          Ring* patch = &patches[(oh * OW + ow) * K];
          for (int64_t c = 0; c < Cg; ++c) {
            const Ring* xc = &x[((n * C + grp * Cg + c) * H) * Wd];
            for (int64_t kh = 0; kh < KH; ++kh) {
              const int64_t ih = oh * g.stride[0] - g.pads[0] + kh * g.dilation[0];
              for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t iw = ow * g.stride[1] - g.pads[1] + kw * g.dilation[1];
                *patch++ = (ih >= 0 && ih < H && iw >= 0 && iw < Wd) ? xc[ih * Wd + iw] : 0;
              }
            }
          }
        }
      for (int64_t o = 0; o < ocPerGroup; ++o) {
        const int64_t oc = grp * ocPerGroup + o;
        Ring* dst = &out[(n * OC + oc) * P];
        const Ring* w = &W[oc * K];
        for (int64_t q = 0; q < P; ++q) {
          const Ring* patch = &patches[q * K];
          Ring s0 = 0, s1 = 0;
          int64_t k = 0;
          for (; k + 1 < K; k += 2) {
            s0 += w[k] * patch[k];
            s1 += w[k + 1] * patch[k + 1];
          }
          if (k < K) s0 += w[k] * patch[k];
          dst[q] = s0 + s1;
        }
      }
    }
  return out;
}

void addBias(const Step& step, RingVec& out, const Dims& outShape) {
  if (step.bias.empty()) return;
  checkSize(out, outShape, step, "the output");
  const int64_t nb = int64_t(step.bias.size());
  if (step.kind == StepKind::kLinear && step.linear == LinearKind::kConv) {
    ANVIL_CHECK(outShape.size() == 4 && outShape[1] == nb, ErrorCode::kInvalidEngine, "mpc step '", step.name,
                "': conv bias of ", nb, " for output ", dimsStr(outShape));
    const int64_t hw = outShape[2] * outShape[3], planes = int64_t(out.size()) / hw;
    for (int64_t pl = 0; pl < planes; ++pl) {
      const Ring b = step.bias[pl % nb];
      Ring* o = &out[pl * hw];
      for (int64_t i = 0; i < hw; ++i) o[i] += b;
    }
    return;
  }
  // kMatMul: [N] along the last axis; kScale: weightShape's trailing axes. Both tile.
  ANVIL_CHECK(int64_t(out.size()) % nb == 0, ErrorCode::kInvalidEngine, "mpc step '", step.name, "': bias of ", nb,
              " does not tile the output ", dimsStr(outShape));
  for (size_t row = 0; row < out.size(); row += size_t(nb))
    for (int64_t i = 0; i < nb; ++i) out[row + i] += step.bias[i];
}

uint8_t lutIndex(Ring v, int32_t shift) {
  if (shift == 0) return uint8_t(v);
  return uint8_t((v + (Ring(1) << (shift - 1))) >> shift);
}

RingVec applyLut(const Step& step, const RingVec& in) {
  ANVIL_CHECK(step.table.size() == 256, ErrorCode::kInvalidEngine, "mpc step '", step.name, "' has no 256-entry table");
  RingVec out(in.size());
  for (size_t i = 0; i < in.size(); ++i) out[i] = step.table[lutIndex(in[i], step.shift)];
  return out;
}

std::vector<std::vector<int64_t>> maxPoolWindows(const Step& step, const Dims& inShape, const Dims& outShape) {
  const ConvGeometry& g = step.conv;
  ANVIL_CHECK(inShape.size() == 4 && outShape == windowOutputShape(g, inShape, inShape[1]), ErrorCode::kInvalidEngine,
              "mpc step '", step.name, "': pooling output ", dimsStr(outShape), " does not follow from input ",
              dimsStr(inShape));
  const int64_t NC = inShape[0] * inShape[1], H = inShape[2], W = inShape[3], OH = outShape[2], OW = outShape[3];
  std::vector<std::vector<int64_t>> windows;
  windows.reserve(NC * OH * OW);
  for (int64_t nc = 0; nc < NC; ++nc)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        std::vector<int64_t> w;
        for (int64_t kh = 0; kh < g.kernel[0]; ++kh) {
          const int64_t ih = oh * g.stride[0] - g.pads[0] + kh * g.dilation[0];
          if (ih < 0 || ih >= H) continue;
          for (int64_t kw = 0; kw < g.kernel[1]; ++kw) {
            const int64_t iw = ow * g.stride[1] - g.pads[1] + kw * g.dilation[1];
            if (iw < 0 || iw >= W) continue;
            w.push_back((nc * H + ih) * W + iw);
          }
        }
        windows.push_back(std::move(w));
      }
  return windows;
}

Ring pairwiseMax(const Step& step, Ring a, Ring b) { return b + step.table[lutIndex(a - b, step.shift)]; }

RingVec applyMaxPool(const Step& step, const RingVec& in, const Dims& inShape, const Dims& outShape) {
  checkSize(in, inShape, step, "the input");
  ANVIL_CHECK(step.table.size() == 256, ErrorCode::kInvalidEngine, "mpc step '", step.name, "' has no 256-entry table");
  std::vector<std::vector<int64_t>> windows = maxPoolWindows(step, inShape, outShape);
  RingVec out(windows.size());
  RingVec level;
  for (size_t o = 0; o < windows.size(); ++o) {
    ANVIL_CHECK(!windows[o].empty(), ErrorCode::kInvalidEngine, "mpc step '", step.name,
                "': a pooling window lies wholly in the padding");
    level.clear();
    for (int64_t i : windows[o]) level.push_back(in[i]);
    while (level.size() > 1) {
      size_t next = 0;
      for (size_t i = 0; i + 1 < level.size(); i += 2) level[next++] = pairwiseMax(step, level[i], level[i + 1]);
      if (level.size() % 2) level[next++] = level.back();
      level.resize(next);
    }
    out[o] = level[0];
  }
  return out;
}

RingVec addBroadcast(const RingVec& a, const Dims& as, const RingVec& b, const Dims& bs, const Dims& os) {
  return broadcastBinary(a, as, b, bs, os, [](Ring x, Ring y) { return x + y; });
}
RingVec subBroadcast(const RingVec& a, const Dims& as, const RingVec& b, const Dims& bs, const Dims& os) {
  return broadcastBinary(a, as, b, bs, os, [](Ring x, Ring y) { return x - y; });
}
RingVec mulBroadcast(const RingVec& a, const Dims& as, const RingVec& b, const Dims& bs, const Dims& os) {
  return broadcastBinary(a, as, b, bs, os, [](Ring x, Ring y) { return x * y; });
}

RingVec matmulBatched(const RingVec& a, const Dims& as, const RingVec& b, const Dims& bs, const Dims& os) {
  ANVIL_CHECK(as.size() >= 2 && bs.size() >= 2 && os.size() >= 2 && int64_t(a.size()) == numelOf(as) &&
                  int64_t(b.size()) == numelOf(bs),
              ErrorCode::kInvalidEngine, "matmul of ", dimsStr(as), " and ", dimsStr(bs));
  const int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
  ANVIL_CHECK(bs[bs.size() - 2] == K && os[os.size() - 2] == M && os.back() == N, ErrorCode::kInvalidEngine,
              "matmul of ", dimsStr(as), " and ", dimsStr(bs), " into ", dimsStr(os));
  Dims batch(os.begin(), os.end() - 2), ab(as.begin(), as.end() - 2), bb(bs.begin(), bs.end() - 2);
  std::vector<int64_t> sa = broadcastStrides(ab, batch), sb = broadcastStrides(bb, batch);
  const int64_t nb = numelOf(batch);
  RingVec out(nb * M * N, 0);
  std::vector<int64_t> idx(batch.size(), 0);
  for (int64_t t = 0; t < nb; ++t) {
    int64_t oa = 0, ob = 0, rem = t;
    for (size_t k = batch.size(); k-- > 0;) {
      idx[k] = rem % batch[k];
      rem /= batch[k];
      oa += idx[k] * sa[k];
      ob += idx[k] * sb[k];
    }
    const Ring* pa = &a[oa * M * K];
    const Ring* pb = &b[ob * K * N];
    Ring* po = &out[t * M * N];
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k) {
        const Ring x = pa[m * K + k];
        for (int64_t n = 0; n < N; ++n) po[m * N + n] += x * pb[k * N + n];
      }
  }
  return out;
}

RingVec applyLocal(const Step& step, const std::vector<const RingVec*>& ins, const std::vector<Dims>& inShapes,
                   const Dims& outShape) {
  ANVIL_CHECK(!ins.empty() && ins.size() == inShapes.size(), ErrorCode::kInvalidEngine, "mpc step '", step.name,
              "' has no inputs");
  for (size_t i = 0; i < ins.size(); ++i) checkSize(*ins[i], inShapes[i], step, "an input");
  const RingVec& x = *ins[0];
  const Dims& xs = inShapes[0];
  switch (step.kind) {
    case StepKind::kAdd:
    case StepKind::kSub:
      ANVIL_CHECK(ins.size() == 2, ErrorCode::kInvalidEngine, "mpc step '", step.name, "' needs two inputs");
      return step.kind == StepKind::kAdd ? addBroadcast(x, xs, *ins[1], inShapes[1], outShape)
                                         : subBroadcast(x, xs, *ins[1], inShapes[1], outShape);
    case StepKind::kMulConst: {
      RingVec out(x.size());
      for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] * Ring(step.factor);
      return out;
    }
    case StepKind::kReshape:
      ANVIL_CHECK(numelOf(outShape) == int64_t(x.size()), ErrorCode::kInvalidEngine, "mpc step '", step.name,
                  "': reshape of ", dimsStr(xs), " to ", dimsStr(outShape));
      return x;
    case StepKind::kSumPool: {
      std::vector<std::vector<int64_t>> windows = maxPoolWindows(step, xs, outShape);
      RingVec out(windows.size(), 0);
      for (size_t o = 0; o < windows.size(); ++o)
        for (int64_t i : windows[o]) out[o] += x[i];
      return out;
    }
    case StepKind::kReduceSum: {
      Dims kept = xs;
      for (int64_t a : step.axes) {
        ANVIL_CHECK(a >= 0 && a < int64_t(xs.size()), ErrorCode::kInvalidEngine, "mpc step '", step.name,
                    "': reduce axis ", a, " of a rank-", xs.size(), " input");
        kept[a] = 1;
      }
      ANVIL_CHECK(numelOf(kept) == numelOf(outShape), ErrorCode::kInvalidEngine, "mpc step '", step.name,
                  "': reduce output ", dimsStr(outShape));
      std::vector<int64_t> st = broadcastStrides(kept, xs);
      RingVec out(numelOf(kept), 0);
      std::vector<int64_t> idx(xs.size(), 0);
      for (size_t i = 0; i < x.size(); ++i) {
        int64_t o = 0;
        for (size_t k = 0; k < xs.size(); ++k) o += idx[k] * st[k];
        out[o] += x[i];
        for (size_t k = xs.size(); k-- > 0;) {
          if (++idx[k] < xs[k]) break;
          idx[k] = 0;
        }
      }
      return out;
    }
    case StepKind::kTranspose: {
      const size_t r = xs.size();
      ANVIL_CHECK(step.perm.size() == r && outShape.size() == r, ErrorCode::kInvalidEngine, "mpc step '", step.name,
                  "': perm of rank ", step.perm.size(), " for a rank-", r, " input");
      std::vector<int64_t> st = stridesOf(xs), ost(r);
      for (size_t k = 0; k < r; ++k) {
        ANVIL_CHECK(step.perm[k] >= 0 && step.perm[k] < int64_t(r) && outShape[k] == xs[step.perm[k]],
                    ErrorCode::kInvalidEngine, "mpc step '", step.name, "': bad perm");
        ost[k] = st[step.perm[k]];
      }
      RingVec out(x.size());
      std::vector<int64_t> idx(r, 0);
      int64_t src = 0;
      for (size_t i = 0; i < out.size(); ++i) {
        out[i] = x[src];
        for (size_t k = r; k-- > 0;) {
          ++idx[k];
          src += ost[k];
          if (idx[k] < outShape[k]) break;
          src -= ost[k] * idx[k];
          idx[k] = 0;
        }
      }
      return out;
    }
    case StepKind::kConcat: {
      const int64_t ax = step.axis;
      ANVIL_CHECK(ax >= 0 && ax < int64_t(outShape.size()), ErrorCode::kInvalidEngine, "mpc step '", step.name,
                  "': concat axis ", ax);
      int64_t outer = 1, inner = 1;
      for (int64_t k = 0; k < ax; ++k) outer *= outShape[k];
      for (size_t k = ax + 1; k < outShape.size(); ++k) inner *= outShape[k];
      int64_t total = 0;
      for (const Dims& s : inShapes) {
        ANVIL_CHECK(s.size() == outShape.size(), ErrorCode::kInvalidEngine, "mpc step '", step.name, "': concat ranks");
        total += s[ax];
      }
      ANVIL_CHECK(total == outShape[ax], ErrorCode::kInvalidEngine, "mpc step '", step.name, "': concat extents");
      RingVec out(numelOf(outShape));
      int64_t off = 0;
      for (size_t i = 0; i < ins.size(); ++i) {
        const int64_t chunk = inShapes[i][ax] * inner;
        for (int64_t o = 0; o < outer; ++o)
          for (int64_t j = 0; j < chunk; ++j) out[o * outShape[ax] * inner + off + j] = (*ins[i])[o * chunk + j];
        off += chunk;
      }
      return out;
    }
    case StepKind::kSlice: {
      const size_t r = xs.size();
      ANVIL_CHECK(step.starts.size() == r && step.steps.size() == r && outShape.size() == r, ErrorCode::kInvalidEngine,
                  "mpc step '", step.name, "': slice needs starts and steps per axis");
      std::vector<int64_t> st = stridesOf(xs);
      for (size_t k = 0; k < r; ++k) {
        const int64_t last = step.starts[k] + (outShape[k] - 1) * step.steps[k];
        ANVIL_CHECK(outShape[k] == 0 || (step.starts[k] >= 0 && step.starts[k] < xs[k] && last >= 0 && last < xs[k]),
                    ErrorCode::kInvalidEngine, "mpc step '", step.name, "': slice leaves the input on axis ", k);
      }
      RingVec out(numelOf(outShape));
      std::vector<int64_t> idx(r, 0);
      for (size_t i = 0; i < out.size(); ++i) {
        int64_t src = 0;
        for (size_t k = 0; k < r; ++k) src += (step.starts[k] + idx[k] * step.steps[k]) * st[k];
        out[i] = x[src];
        for (size_t k = r; k-- > 0;) {
          if (++idx[k] < outShape[k]) break;
          idx[k] = 0;
        }
      }
      return out;
    }
    default:
      ANVIL_THROW(ErrorCode::kInternal, "applyLocal on step '", step.name, "', which is not a local step");
  }
}

}  // namespace anvil::mpc
