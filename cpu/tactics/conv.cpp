// Fast CPU tactics for 2-D f32 Conv: im2col + packed GEMM per (image, group), packing
// the column matrix straight from the input panel by panel, and a direct depthwise
// kernel vectorised 8 outputs wide along the row.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "cpu/tactics.h"
#include "cpu/tactics/gemm_kernels.h"

namespace anvil::cpu::tactics {

namespace {

int64_t floorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t ceilDiv(int64_t a, int64_t b) { return -floorDiv(-a, b); }

// One 2-D convolution's geometry with auto_pad resolved.
struct Conv2d {
  int64_t N, C, H, W;      // input
  int64_t M, G, Cg, Mg;    // output channels, groups, channels per group
  int64_t kH, kW, sH, sW, dH, dW;
  int64_t pt, pl, pb, pr;  // pads: top, left, bottom, right
  int64_t OH, OW;
};

Conv2d resolve(const KernelContext& ctx, const Tensor& x, const Tensor& w) {
  ctx.check(x.dtype() == DataType::kF32 && w.dtype() == DataType::kF32, "this tactic takes f32 X and W");
  ctx.check(x.rank() == 4 && w.rank() == 4, "this tactic handles 2-D Conv (rank-4 X and W) only");
  const ir::Attributes& at = ctx.attrs();
  Conv2d g{};
  g.N = x.dim(0), g.C = x.dim(1), g.H = x.dim(2), g.W = x.dim(3);
  g.M = w.dim(0), g.kH = w.dim(2), g.kW = w.dim(3);
  g.G = at.getInt("group", 1);
  ctx.check(g.G >= 1 && g.C % g.G == 0 && g.M % g.G == 0,
            "group " + std::to_string(g.G) + " must divide C=" + std::to_string(g.C) + " and M=" + std::to_string(g.M));
  g.Cg = g.C / g.G, g.Mg = g.M / g.G;
  ctx.check(w.dim(1) == g.Cg, "W has " + std::to_string(w.dim(1)) + " input channels per group, expected " +
                                  std::to_string(g.Cg));
  const std::vector<int64_t> ks = at.getInts("kernel_shape", {g.kH, g.kW});
  ctx.check(ks.size() == 2 && ks[0] == g.kH && ks[1] == g.kW, "kernel_shape disagrees with W");
  const std::vector<int64_t> s = at.getInts("strides", {1, 1}), d = at.getInts("dilations", {1, 1});
  ctx.check(s.size() == 2 && d.size() == 2 && s[0] > 0 && s[1] > 0 && d[0] > 0 && d[1] > 0,
            "strides and dilations must be 2 positive values");
  g.sH = s[0], g.sW = s[1], g.dH = d[0], g.dW = d[1];
  const std::string autoPad = at.getString("auto_pad", "NOTSET");
  const int64_t ekH = (g.kH - 1) * g.dH + 1, ekW = (g.kW - 1) * g.dW + 1;
  if (autoPad == "NOTSET" || autoPad.empty()) {
    const std::vector<int64_t> p = at.getInts("pads", {0, 0, 0, 0});
    ctx.check(p.size() == 4, "pads must have 4 values for a 2-D Conv");
    g.pt = p[0], g.pl = p[1], g.pb = p[2], g.pr = p[3];
    ctx.check(g.pt >= 0 && g.pl >= 0 && g.pb >= 0 && g.pr >= 0, "negative pads");
  } else if (autoPad == "VALID") {
    g.pt = g.pl = g.pb = g.pr = 0;
  } else if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
    auto same = [&](int64_t in, int64_t st, int64_t ek, int64_t& begin, int64_t& end) {
      const int64_t out = ceilDiv(in, st);
      const int64_t total = std::max<int64_t>(0, (out - 1) * st + ek - in);
      begin = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
      end = total - begin;
    };
    same(g.H, g.sH, ekH, g.pt, g.pb);
    same(g.W, g.sW, ekW, g.pl, g.pr);
  } else {
    ctx.fail("unknown auto_pad '" + autoPad + "'");
  }
  ctx.check(g.H + g.pt + g.pb >= ekH && g.W + g.pl + g.pr >= ekW, "the padded input is smaller than the kernel");
  g.OH = (g.H + g.pt + g.pb - ekH) / g.sH + 1;
  g.OW = (g.W + g.pl + g.pr - ekW) / g.sW + 1;
  return g;
}

const float* biasOf(const KernelContext& ctx, const Conv2d& g) {
  if (!ctx.hasInput(2)) return nullptr;
  const Tensor& b = ctx.input(2);
  ctx.check(b.dtype() == DataType::kF32 && b.numel() == g.M, "B must be f32[" + std::to_string(g.M) + "]");
  return b.data<float>();
}

// Packs the implicit column matrix of one (image, group): row k = (ci, kh, kw), column
// j = (oh, ow), value x[ci, oh*sH - pt + kh*dH, ow*sW - pl + kw*dW] or 0 in the padding.
class Im2colPacker final : public BPacker {
 public:
  Im2colPacker(const float* x, const Conv2d& g) : x_(x), g_(g) {}

  void pack(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst) const override {
    const Conv2d& g = g_;
    const int64_t khw = g.kH * g.kW;
    for (int64_t k = 0; k < kc; ++k) {
      const int64_t kk = k0 + k, ci = kk / khw, kh = (kk % khw) / g.kW, kw = kk % g.kW;
      const float* xc = x_ + ci * g.H * g.W;
      const int64_t offW = kw * g.dW - g.pl;
      // Output columns whose input column is inside the image: 0 <= ow*sW + offW < W.
      const int64_t owLo = std::clamp<int64_t>(ceilDiv(-offW, g.sW), 0, g.OW);
      const int64_t owHi = std::clamp<int64_t>(floorDiv(g.W - 1 - offW, g.sW) + 1, owLo, g.OW);
      float* panel = dst + k * nr;
      int lane = 0;
      auto advance = [&](int64_t m) {
        lane += int(m);
        if (lane == nr) {
          lane = 0;
          panel += kc * nr;
        }
      };
      auto zeros = [&](int64_t n) {
        while (n > 0) {
          const int64_t m = std::min<int64_t>(n, nr - lane);
          std::fill(panel + lane, panel + lane + m, 0.0f);
          n -= m;
          advance(m);
        }
      };
      auto copy = [&](const float* src, int64_t n) {
        const int64_t s = g.sW;
        while (n > 0) {
          const int64_t m = std::min<int64_t>(n, nr - lane);
          float* d = panel + lane;
          if (s == 1)
            for (int64_t i = 0; i < m; ++i) d[i] = src[i];
          else
            for (int64_t i = 0; i < m; ++i) d[i] = src[i * s];
          src += m * s;
          n -= m;
          advance(m);
        }
      };
      int64_t oh = j0 / g.OW, ow = j0 % g.OW;
      for (int64_t j = j0, end = j0 + nc; j < end; ++oh, ow = 0) {
        const int64_t owEnd = std::min(g.OW, ow + (end - j));
        j += owEnd - ow;
        const int64_t ih = oh * g.sH - g.pt + kh * g.dH;
        if (ih < 0 || ih >= g.H) {
          zeros(owEnd - ow);
          continue;
        }
        const int64_t a = std::clamp(owLo, ow, owEnd), b = std::clamp(owHi, a, owEnd);
        zeros(a - ow);
        copy(xc + ih * g.W + a * g.sW + offW, b - a);
        zeros(owEnd - b);
      }
      if (lane != 0) zeros(nr - lane);
    }
  }

 private:
  const float* x_;
  Conv2d g_;
};

void runConvIm2col(KernelContext& ctx, PackedKernel kernel) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const Conv2d g = resolve(ctx, x, w);
  const float* bias = biasOf(ctx, g);
  Tensor& y = ctx.allocOutput(0, DataType::kF32, {g.N, g.M, g.OH, g.OW});
  float* yp = y.data<float>();
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  const int64_t K = g.Cg * g.kH * g.kW, P = g.OH * g.OW;
  const bool pointwise = g.kH == 1 && g.kW == 1 && g.sH == 1 && g.sW == 1 && g.pt == 0 && g.pl == 0 &&
                         g.pb == 0 && g.pr == 0;
  auto unit = [&](int64_t u) {
    const int64_t n = u / g.G, grp = u % g.G;
    float* yg = yp + (n * g.M + grp * g.Mg) * P;
    if (bias)
      for (int64_t m = 0; m < g.Mg; ++m) std::fill(yg + m * P, yg + (m + 1) * P, bias[grp * g.Mg + m]);
    const float* xg = xp + (n * g.C + grp * g.Cg) * g.H * g.W;
    const StridedMatrix A{wp + grp * g.Mg * K, K, 1};
    if (pointwise)
      packedGemm(kernel, g.Mg, P, K, 1.0f, A, StridedBPacker({xg, P, 1}), yg, P, bias != nullptr);
    else
      packedGemm(kernel, g.Mg, P, K, 1.0f, A, Im2colPacker(xg, g), yg, P, bias != nullptr);
  };
  const int64_t units = g.N * g.G;
  // Many groups or images: one GEMM per task; otherwise each GEMM uses the threads.
  if (units >= 2 * numThreads())
    parallelFor(units, unit);
  else
    for (int64_t u = 0; u < units; ++u) unit(u);
}

// ---------------------------------------------------------------------------------------
// Depthwise: group == C, M = C * multiplier, one input channel per output channel.

// One output plane. Columns whose every tap is inside the row are computed 8 at a time;
// the left and right borders go through the scalar path with the same tap order.
__attribute__((target("avx2,fma"))) void dwPlaneAvx2(const float* x, const float* w, float bias, float* y,
                                                    const Conv2d& g) {
  const int64_t maxOffW = (g.kW - 1) * g.dW - g.pl;
  const int64_t extra = g.sW == 2 ? 1 : 0;  // the stride-2 load reads one float past the last tap
  const int64_t owVecLo = std::min(g.OW, ceilDiv(g.pl, g.sW));
  const __m256i gatherIdx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(int(g.sW)));
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    float* yr = y + oh * g.OW;
    const int64_t ih0 = oh * g.sH - g.pt;
    const int64_t khLo = std::clamp<int64_t>(ceilDiv(-ih0, g.dH), 0, g.kH);
    const int64_t khHi = std::clamp<int64_t>(floorDiv(g.H - 1 - ih0, g.dH) + 1, khLo, g.kH);
    auto scalar = [&](int64_t ow) {
      float acc = bias;
      for (int64_t kh = khLo; kh < khHi; ++kh) {
        const float* xr = x + (ih0 + kh * g.dH) * g.W;
        for (int64_t kw = 0; kw < g.kW; ++kw) {
          const int64_t iw = ow * g.sW - g.pl + kw * g.dW;
          if (iw >= 0 && iw < g.W) acc = std::fma(w[kh * g.kW + kw], xr[iw], acc);
        }
      }
      yr[ow] = acc;
    };
    int64_t ow = 0;
    for (; ow < owVecLo; ++ow) scalar(ow);
    for (; ow + 8 <= g.OW && (ow + 7) * g.sW + maxOffW + extra < g.W; ow += 8) {
      __m256 acc = _mm256_set1_ps(bias);
      for (int64_t kh = khLo; kh < khHi; ++kh) {
        const float* xr = x + (ih0 + kh * g.dH) * g.W + ow * g.sW - g.pl;
        const float* wr = w + kh * g.kW;
        for (int64_t kw = 0; kw < g.kW; ++kw) {
          const float* p = xr + kw * g.dW;
          __m256 xv;
          if (g.sW == 1) {
            xv = _mm256_loadu_ps(p);
          } else if (g.sW == 2) {
            const __m256 lo = _mm256_loadu_ps(p), hi = _mm256_loadu_ps(p + 8);
            const __m256 even = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));  // a0 a2 b0 b2 a4 a6 b4 b6
            xv = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), _MM_SHUFFLE(3, 1, 2, 0)));
          } else {
            xv = _mm256_i32gather_ps(p, gatherIdx, 4);
          }
          acc = _mm256_fmadd_ps(_mm256_set1_ps(wr[kw]), xv, acc);
        }
      }
      _mm256_storeu_ps(yr + ow, acc);
    }
    for (; ow < g.OW; ++ow) scalar(ow);
  }
}

void runDepthwise(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const Conv2d g = resolve(ctx, x, w);
  ctx.check(g.Cg == 1, "this tactic handles depthwise Conv (group == C) only");
  const float* bias = biasOf(ctx, g);
  Tensor& y = ctx.allocOutput(0, DataType::kF32, {g.N, g.M, g.OH, g.OW});
  float* yp = y.data<float>();
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  parallelFor(g.N * g.M, [&](int64_t t) {
    const int64_t n = t / g.M, m = t % g.M, c = m / g.Mg;
    dwPlaneAvx2(xp + (n * g.C + c) * g.H * g.W, wp + m * g.kH * g.kW, bias ? bias[m] : 0.0f,
                yp + t * g.OH * g.OW, g);
  });
}

// ---------------------------------------------------------------------------------------
// supports()

bool isF32(const ir::TensorType& t) { return t.dtype == DataType::kF32; }
bool rank4(const ir::TensorType& t) { return t.shape.rankKnown() && t.shape.rank() == 4; }

bool knownAutoPad(const ir::Node& n) {
  const std::string p = n.attrs().getString("auto_pad", "NOTSET");
  return p == "NOTSET" || p.empty() || p == "VALID" || p == "SAME_UPPER" || p == "SAME_LOWER";
}

bool supportsConv2d(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !isF32(in[0]) || !isF32(in[1]) || !rank4(in[0]) || !rank4(in[1])) return false;
  if (in.size() > 2 && in[2].dtype != DataType::kUndefined && !isF32(in[2])) return false;
  return knownAutoPad(n);
}

bool supportsDepthwise(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (!supportsConv2d(n, in) || !cpuHas("fma")) return false;
  const ir::Shape& x = in[0].shape;
  const ir::Shape& w = in[1].shape;
  const int64_t group = n.attrs().getInt("group", 1);
  // One input channel per group (W[:,1] == 1) and, where the channel count is known, group == C.
  return w[1].isStatic() && w[1].value() == 1 && (!x[1].isStatic() || x[1].value() == group);
}

}  // namespace

void registerConvTactics(TacticRegistry& r) {
  r.add({"f32_conv2d_im2col_gemm__avx2", "Conv", "", "avx2",
         [](const ir::Node& n, const std::vector<ir::TensorType>& in) { return cpuHas("fma") && supportsConv2d(n, in); },
         [](KernelContext& ctx) { runConvIm2col(ctx, PackedKernel::kAvx2_6x16); }});
  r.add({"f32_conv2d_im2col_gemm__avx512", "Conv", "", "avx512f", supportsConv2d,
         [](KernelContext& ctx) { runConvIm2col(ctx, PackedKernel::kAvx512_14x32); }});
  r.add({"f32_dwconv2d_direct_8w__avx2", "Conv", "", "avx2", supportsDepthwise, runDepthwise});
}

}  // namespace anvil::cpu::tactics
