// The INT8 tensor-core launchers' checks (cuda/linear_tc.h), shared by the sim tests
// (linear_tc_i8_sim_test.cpp) and the device tests (linear_device_test.cpp): a GEMM or conv case
// run on any DeviceRuntime against an integer reference, bit for bit where the output is the
// exact integer (scale 1) or the same f32 steps on it; on a GPU, where nvcc may contract the
// epilogue's multiply and add into an FMA, within a few f32 roundings.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cuda/linear_tc.h"
#include "tests/cuda/linear_test_common.h"

namespace anvil::cuda::testing {

// The CPU INT8 kernels' activation quantizer (cpu/tactics/int8_gemm.cpp, quantizeU8One).
inline std::int32_t quantU8(float x, float inv, std::int32_t zp) {
  float v = x * inv;
  if (std::isnan(v)) v = 0.0f;
  v = std::min(std::max(v, -512.0f), 512.0f);
  return std::clamp(static_cast<std::int32_t>(std::nearbyint(v)) + zp, 0, 255);
}

template <typename T>
Guarded<T> guarded(const std::vector<T>& v) {
  Guarded<T> g(v.size());
  std::copy(v.begin(), v.end(), g.data());
  return g;
}

// The per-feature offset (z_x - 128) * sum_k w of s8 rows of k.
inline std::vector<std::int32_t> offsetsOf(const std::vector<signed char>& w, std::int64_t features, std::int64_t k,
                                    std::int32_t zp) {
  std::vector<std::int32_t> off(static_cast<std::size_t>(features));
  for (std::int64_t f = 0; f < features; ++f) {
    std::int32_t s = 0;
    for (std::int64_t i = 0; i < k; ++i) s += w[static_cast<std::size_t>(f * k + i)];
    off[static_cast<std::size_t>(f)] = (zp - 128) * s;
  }
  return off;
}

// The kernel's epilogue on an exact integer, in its f32 steps; activations in double (their
// libm results differ from f32 by a few ulps, hence the tolerance at the comparison).
struct Epi {
  bool bias = false, z = false;
  float beta = 1.0f;
  std::optional<Activation> act;
  float clipLo = -INFINITY, clipHi = INFINITY;
};
inline double finish(const Epi& e, std::int64_t exact, float scale, float bias, float z) {
  float v = static_cast<float>(exact) * scale;
  if (e.bias) v += bias;
  if (e.z) v += e.beta * z;
  double r = e.act ? referenceActivation(*e.act, v) : v;
  if (r < e.clipLo) r = e.clipLo;
  if (r > e.clipHi) r = e.clipHi;
  return r;
}

// The comparison: bit-exact where no activation runs (integer sums, then the same f32 steps;
// on a GPU only without bias and Z), else within a few f32 ulps.
inline std::string compare(const std::vector<float>& got, const std::vector<double>& want, const Epi& e,
                           bool onDevice) {
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double tol = e.act || (onDevice && (e.bias || e.z)) ? 4e-6 * std::fabs(want[i]) + 1e-6 : 0.0;
    if (!(std::fabs(got[i] - want[i]) <= tol)) {
      return "element " + std::to_string(i) + ": got " + std::to_string(got[i]) + ", want " + std::to_string(want[i]);
    }
  }
  return "";
}

// ---- GEMM ----

struct I8GemmCase {
  std::int64_t batch = 1, m = 1, n = 1, k = 1;
  bool transA = false;
  std::int64_t pad = 0;
  // Quantization: exact (scale 1, integer inputs on and past the grid's ends) or real
  // (calibrated grid over [-1, 1], weight scales ~ max|w| / 127).
  bool exact = true;
  std::int32_t zp = 128;
  int weights = 0;  // 0 random s8 in [-127, 127]; 1 all +127; 2 all -127
  int inputs = 0;   // exact only: 0 random over the grid and past it; 1 all at the top; 2 all at the bottom
  Epi epi;
  std::string describe() const {
    return "gemm batch=" + std::to_string(batch) + " m=" + std::to_string(m) + " n=" + std::to_string(n) +
           " k=" + std::to_string(k) + (transA ? " At" : "") + " pad=" + std::to_string(pad) +
           (exact ? " exact" : " real") + " zp=" + std::to_string(zp) + " w=" + std::to_string(weights) +
           " x=" + std::to_string(inputs) + (epi.bias ? " bias" : "") + (epi.z ? " z" : "") +
           " act=" + actName(epi.act);
  }
};

inline void checkGemm(DeviceRuntime& rt, Stream stream, const I8GemmCase& g, bool onDevice = false) {
  SCOPED_TRACE(g.describe());
  const std::int64_t aRows = g.transA ? g.k : g.m, aCols = g.transA ? g.m : g.k;
  const std::int64_t lda = aCols + g.pad, ldb = g.k + g.pad, ldc = g.n + g.pad;
  const std::int64_t strideA = aRows * lda, strideC = g.m * ldc;
  std::mt19937 rng(static_cast<std::uint32_t>(g.m * 131 + g.n * 17 + g.k + g.zp));
  const float sx = g.exact ? 1.0f : 2.0f / 255.0f, inv = 1.0f / sx;
  std::vector<float> a(static_cast<std::size_t>(std::max<std::int64_t>(g.batch * strideA, 1)));
  for (float& v : a) {
    if (!g.exact) {
      v = std::uniform_real_distribution<float>(-1.1f, 1.1f)(rng);  // a little past the range
    } else if (g.inputs == 1) {
      v = static_cast<float>(255 - g.zp + 3);  // past the top: every q is 255
    } else if (g.inputs == 2) {
      v = static_cast<float>(-g.zp - 3);  // past the bottom: every q is 0
    } else {
      v = static_cast<float>(std::uniform_int_distribution<int>(-g.zp - 4, 255 - g.zp + 4)(rng));
    }
  }
  std::vector<signed char> b(static_cast<std::size_t>(std::max<std::int64_t>(g.n * ldb, 1)), 0);
  for (signed char& v : b) {
    v = static_cast<signed char>(g.weights == 1 ? 127 : g.weights == 2 ? -127
                                                                       : std::uniform_int_distribution<int>(-127, 127)(rng));
  }
  // Rows packed densely for the offsets (the kernel reads row n at n * ldb).
  std::vector<signed char> dense(static_cast<std::size_t>(g.n * g.k));
  for (std::int64_t j = 0; j < g.n; ++j)
    for (std::int64_t p = 0; p < g.k; ++p) dense[static_cast<std::size_t>(j * g.k + p)] = b[static_cast<std::size_t>(j * ldb + p)];
  const std::vector<std::int32_t> offset = offsetsOf(dense, g.n, g.k, g.zp);
  std::vector<float> scale(static_cast<std::size_t>(g.n)), bias(static_cast<std::size_t>(g.n));
  for (std::int64_t j = 0; j < g.n; ++j) {
    scale[static_cast<std::size_t>(j)] = g.exact ? 1.0f : sx * std::uniform_real_distribution<float>(0.001f, 0.01f)(rng);
    bias[static_cast<std::size_t>(j)] = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
  }
  std::vector<float> z(static_cast<std::size_t>(g.batch * strideC));
  for (float& v : z) v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);

  Guarded<float> ha = guarded(a), hscale = guarded(scale), hbias = guarded(bias), hz = guarded(z);
  Guarded<signed char> hb = guarded(b);
  Guarded<std::int32_t> hoff = guarded(offset);
  Guarded<float> hc(static_cast<std::size_t>(g.batch * strideC));
  for (std::size_t i = 0; i < hc.size(); ++i) hc.data()[i] = -99.0f;
  GuardedDeviceCopy<float> da(rt, ha), dscale(rt, hscale), dbias(rt, hbias), dz(rt, hz), dc(rt, hc);
  GuardedDeviceCopy<signed char> db(rt, hb);
  GuardedDeviceCopy<std::int32_t> doff(rt, hoff);

  GemmDesc d;
  d.dtype = DataType::kI8;
  d.batch = g.batch, d.m = g.m, d.n = g.n, d.k = g.k;
  d.transA = g.transA, d.transB = true;
  d.a = da.data(), d.lda = lda, d.strideA = strideA;
  d.b = db.data(), d.ldb = ldb, d.strideB = 0;  // one weight for every batch, as a layer's
  d.c = dc.data(), d.ldc = ldc, d.strideC = strideC;
  d.bias = g.epi.bias ? dbias.data() : nullptr;
  d.z = g.epi.z ? dz.data() : nullptr;
  d.ldz = ldc, d.strideZ = strideC;
  d.beta = g.epi.beta;
  d.activation = g.epi.act;
  d.clipLo = g.epi.clipLo, d.clipHi = g.epi.clipHi;
  Int8Quant q;
  q.scale = dscale.data(), q.offset = doff.data(), q.xInv = inv, q.xZero = g.zp;
  launchGemmInt8TensorCore(rt, stream, d, q);
  rt.synchronize(stream);
  dc.copyBack();

  std::vector<float> got;
  std::vector<double> want;
  for (std::int64_t bt = 0; bt < g.batch; ++bt) {
    for (std::int64_t i = 0; i < g.m; ++i) {
      for (std::int64_t j = 0; j < ldc; ++j) {
        const std::int64_t at = bt * strideC + i * ldc + j;
        if (j >= g.n) {
          EXPECT_EQ(hc.data()[at], -99.0f) << "padding element " << at << " written";
          continue;
        }
        std::int64_t exact = 0;
        for (std::int64_t p = 0; p < g.k; ++p) {
          const float x = a[static_cast<std::size_t>(bt * strideA + (g.transA ? p * lda + i : i * lda + p))];
          exact += std::int64_t{quantU8(x, inv, g.zp) - g.zp} * b[static_cast<std::size_t>(j * ldb + p)];
        }
        got.push_back(hc.data()[at]);
        want.push_back(finish(g.epi, exact, scale[static_cast<std::size_t>(j)], bias[static_cast<std::size_t>(j)],
                              z[static_cast<std::size_t>(at)]));
      }
    }
  }
  EXPECT_EQ(compare(got, want, g.epi, onDevice), "");
  for (const std::string& damage : {hc.guardDamage(), ha.guardDamage(), hb.guardDamage()}) EXPECT_EQ(damage, "");
}

// ---- convolution ----

struct I8ConvCase {
  std::int64_t n = 1, c = 3, h = 9, w = 9, k = 7, r = 3, s = 3;
  std::int64_t strideH = 1, strideW = 1, padTop = 0, padLeft = 0, padBottom = 0, padRight = 0;
  std::int64_t dilationH = 1, dilationW = 1, groups = 1;
  bool exact = true;
  std::int32_t zp = 128;
  Epi epi;
  std::string describe() const {
    std::string s0 = "conv n=" + std::to_string(n) + " c=" + std::to_string(c) + " " + std::to_string(h) + "x" +
                     std::to_string(w) + " k=" + std::to_string(k) + " " + std::to_string(r) + "x" + std::to_string(s) +
                     " stride " + std::to_string(strideH) + "," + std::to_string(strideW) + " pads " +
                     std::to_string(padTop) + "," + std::to_string(padLeft) + "," + std::to_string(padBottom) + "," +
                     std::to_string(padRight) + " dil " + std::to_string(dilationH) + "," + std::to_string(dilationW) +
                     " groups " + std::to_string(groups);
    return s0 + (exact ? " exact" : " real") + " zp=" + std::to_string(zp) + (epi.bias ? " bias" : "") +
           (epi.z ? " z" : "") + " act=" + actName(epi.act);
  }
};

inline void checkConv(DeviceRuntime& rt, Stream stream, const I8ConvCase& cc, bool onDevice = false) {
  SCOPED_TRACE(cc.describe());
  Conv2dDesc d;
  d.n = cc.n, d.c = cc.c, d.h = cc.h, d.w = cc.w, d.k = cc.k, d.r = cc.r, d.s = cc.s;
  d.strideH = cc.strideH, d.strideW = cc.strideW;
  d.padTop = cc.padTop, d.padLeft = cc.padLeft, d.padBottom = cc.padBottom, d.padRight = cc.padRight;
  d.dilationH = cc.dilationH, d.dilationW = cc.dilationW, d.groups = cc.groups;
  const std::int64_t oh = d.outH(), ow = d.outW(), cg = cc.c / cc.groups, kg = cc.k / cc.groups;
  const std::int64_t kdim = cg * cc.r * cc.s;
  std::mt19937 rng(static_cast<std::uint32_t>(cc.c * 31 + cc.k * 7 + cc.r + cc.zp));
  const float sx = cc.exact ? 1.0f : 2.0f / 255.0f, inv = 1.0f / sx;
  std::vector<float> x(static_cast<std::size_t>(cc.n * cc.c * cc.h * cc.w));
  for (float& v : x) {
    v = cc.exact ? static_cast<float>(std::uniform_int_distribution<int>(-cc.zp - 3, 255 - cc.zp + 3)(rng))
                 : std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
  }
  std::vector<signed char> wq(static_cast<std::size_t>(cc.k * kdim));
  for (signed char& v : wq) v = static_cast<signed char>(std::uniform_int_distribution<int>(-127, 127)(rng));
  wq[0] = 127, wq.back() = -127;
  const std::vector<std::int32_t> offset = offsetsOf(wq, cc.k, kdim, cc.zp);
  std::vector<float> scale(static_cast<std::size_t>(cc.k)), bias(static_cast<std::size_t>(cc.k));
  for (std::int64_t o = 0; o < cc.k; ++o) {
    scale[static_cast<std::size_t>(o)] = cc.exact ? 1.0f : sx * std::uniform_real_distribution<float>(0.001f, 0.01f)(rng);
    bias[static_cast<std::size_t>(o)] = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
  }
  const std::size_t ySize = static_cast<std::size_t>(cc.n * cc.k * oh * ow);
  std::vector<float> z(ySize);
  for (float& v : z) v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);

  Guarded<float> hx = guarded(x), hscale = guarded(scale), hbias = guarded(bias), hz = guarded(z), hy(ySize);
  Guarded<signed char> hw = guarded(wq);
  Guarded<std::int32_t> hoff = guarded(offset);
  GuardedDeviceCopy<float> dx(rt, hx), dscale(rt, hscale), dbias(rt, hbias), dz(rt, hz), dy(rt, hy);
  GuardedDeviceCopy<signed char> dw(rt, hw);
  GuardedDeviceCopy<std::int32_t> doff(rt, hoff);
  d.x = dx.data(), d.y = dy.data();
  d.bias = cc.epi.bias ? dbias.data() : nullptr;
  d.z = cc.epi.z ? dz.data() : nullptr;
  d.activation = cc.epi.act;
  d.clipLo = cc.epi.clipLo, d.clipHi = cc.epi.clipHi;
  Int8Quant q;
  q.scale = dscale.data(), q.offset = doff.data(), q.xInv = inv, q.xZero = cc.zp;
  launchConv2dInt8TensorCore(rt, stream, d, dw.data(), q);
  rt.synchronize(stream);
  dy.copyBack();

  std::vector<float> got(hy.data(), hy.data() + ySize);
  std::vector<double> want(ySize);
  for (std::int64_t img = 0; img < cc.n; ++img)
    for (std::int64_t o = 0; o < cc.k; ++o) {
      const std::int64_t g = o / kg;
      for (std::int64_t oy = 0; oy < oh; ++oy)
        for (std::int64_t ox = 0; ox < ow; ++ox) {
          std::int64_t exact = 0;
          for (std::int64_t ci = 0; ci < cg; ++ci)
            for (std::int64_t ky = 0; ky < cc.r; ++ky)
              for (std::int64_t kx = 0; kx < cc.s; ++kx) {
                const std::int64_t iy = oy * cc.strideH - cc.padTop + ky * cc.dilationH;
                const std::int64_t ix = ox * cc.strideW - cc.padLeft + kx * cc.dilationW;
                if (iy < 0 || iy >= cc.h || ix < 0 || ix >= cc.w) continue;  // (z_x - z_x) * w
                const float xv = x[static_cast<std::size_t>(((img * cc.c + g * cg + ci) * cc.h + iy) * cc.w + ix)];
                exact += std::int64_t{quantU8(xv, inv, cc.zp) - cc.zp} *
                         wq[static_cast<std::size_t>(o * kdim + (ci * cc.r + ky) * cc.s + kx)];
              }
          const std::size_t at = static_cast<std::size_t>(((img * cc.k + o) * oh + oy) * ow + ox);
          want[at] = finish(cc.epi, exact, scale[static_cast<std::size_t>(o)], bias[static_cast<std::size_t>(o)], z[at]);
        }
    }
  EXPECT_EQ(compare(got, want, cc.epi, onDevice), "");
  for (const std::string& damage : {hy.guardDamage(), hx.guardDamage(), hw.guardDamage()}) EXPECT_EQ(damage, "");
}

}  // namespace anvil::cuda::testing
