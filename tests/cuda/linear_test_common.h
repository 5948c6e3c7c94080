// Shared by the sim and device tests of the linear layers (cuda/linear.h): GEMM and conv
// cases, double-precision reference loops with a per-element error bound, and one runner per
// op that copies guarded host buffers to a DeviceRuntime, launches through its stream, copies
// back and checks values and guards.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/linear.h"
#include "cuda/runtime.h"
#include "tests/cuda/cuda_test_util.h"

namespace anvil::cuda::testing {

inline std::string actName(const std::optional<Activation>& a) {
  return a ? activationName(*a) : "none";
}

// Reference values and bounds: f32 accumulation of k products errs by at most about
// k * 2^-24 of the sum of |products| (plus the epilogue's few roundings); the activations'
// slopes are below 1.2. The bound is 16x that, far below the O(1) error of a wrong index.
struct Expected {
  std::vector<double> value;
  std::vector<double> bound;
};

inline double activate(const std::optional<Activation>& a, double v) {
  return a ? referenceActivation(*a, v) : v;
}

inline std::string compareBounded(const float* got, const Expected& want) {
  for (std::size_t i = 0; i < want.value.size(); ++i) {
    const double g = got[i], w = want.value[i];
    if (!(std::fabs(g - w) <= 1e-5 * std::fabs(w) + want.bound[i])) {
      std::ostringstream os;
      os.precision(9);
      os << "element " << i << ": got " << g << ", want " << w << " (error "
         << std::fabs(g - w) << ", bound " << 1e-5 * std::fabs(w) + want.bound[i] << ")";
      return os.str();
    }
  }
  return "";
}

inline double accumulationBound(std::int64_t k, double absSum) {
  return 16.0 * 1.2 * (k + 4) * std::ldexp(1.0, -24) * absSum + 1e-30;
}

// The element types of the GEMM: conversions and the rounding of the one store (f32 has
// none beyond the accumulation bound).
template <typename T>
struct Element;
template <>
struct Element<float> {
  static float toFloat(float x) { return x; }
  static float fromFloat(float x) { return x; }
  static constexpr double rel = 0, abs = 0;
};
template <>
struct Element<__half> {
  static float toFloat(__half x) { return __half2float(x); }
  static __half fromFloat(float x) { return __float2half_rn(x); }
  static constexpr double rel = 1.0 / 2048, abs = 1.0 / (1 << 25);  // half an ulp
};
template <>
struct Element<__nv_bfloat16> {
  static float toFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
  static __nv_bfloat16 fromFloat(float x) { return __float2bfloat16_rn(x); }
  static constexpr double rel = 1.0 / 256, abs = 1e-38;
};
template <typename T>
float roundThrough(float x) {
  return Element<T>::toFloat(Element<T>::fromFloat(x));
}

// A device copy of a guarded host buffer, guards included (the sim checks every launch range
// against it, and the guards catch stray writes on a GPU).
template <typename T>
class GuardedDeviceCopy {
 public:
  GuardedDeviceCopy(DeviceRuntime& rt, Guarded<T>& host) : rt_(rt), host_(host) {
    bytes_ = host.all().size() * sizeof(T);
    base_ = static_cast<T*>(rt.allocate(bytes_));
    rt.copy(base_, host.all().data(), bytes_, CopyKind::kHostToDevice);
  }
  ~GuardedDeviceCopy() { rt_.free(base_); }
  GuardedDeviceCopy(const GuardedDeviceCopy&) = delete;
  GuardedDeviceCopy& operator=(const GuardedDeviceCopy&) = delete;
  T* data() { return base_ + Guarded<T>::kGuard; }
  void copyBack() { rt_.copy(host_.all().data(), base_, bytes_, CopyKind::kDeviceToHost); }

 private:
  DeviceRuntime& rt_;
  Guarded<T>& host_;
  T* base_ = nullptr;
  std::size_t bytes_ = 0;
};

// Guarded<T> holding v converted to T (element by element: GCC 12 mis-bounds the memcpy of
// Guarded's vector constructor once inlined here, a -Wstringop-overflow false positive).
template <typename T = float>
Guarded<T> guardedCopy(const std::vector<float>& v) {
  Guarded<T> g(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) g.data()[i] = Element<T>::fromFloat(v[i]);
  return g;
}

// ---- GEMM ----

struct GemmCase {
  std::int64_t batch = 1, m = 1, n = 1, k = 1;
  bool transA = false, transB = false;
  std::int64_t pad = 0;  // extra elements per stored row (ld = columns + pad)
  bool bias = false, z = false, zInPlace = false, broadcastB = false;
  float alpha = 1.0f, beta = 1.0f;
  std::optional<Activation> act;

  std::string describe() const {
    std::ostringstream os;
    os << "gemm batch=" << batch << " m=" << m << " n=" << n << " k=" << k
       << (transA ? " At" : "") << (transB ? " Bt" : "") << " pad=" << pad
       << (bias ? " bias" : "") << (z ? (zInPlace ? " z(in place)" : " z") : "")
       << (broadcastB ? " B broadcast" : "") << " alpha=" << alpha << " beta=" << beta
       << " act=" << actName(act);
    return os.str();
  }
};

// Host operands of a GEMM case and the descriptor over them (pointers filled by the runner).
struct GemmOperands {
  std::int64_t lda, ldb, ldc, strideA, strideB, strideC;
  std::vector<float> a, b, bias, z;
  Expected want;

  // `round` maps each input to the element type it is stored in, so the reference sees
  // exactly the values the kernel reads.
  explicit GemmOperands(const GemmCase& g, float (*round)(float) = nullptr) {
    const std::int64_t aRows = g.transA ? g.k : g.m, aCols = g.transA ? g.m : g.k;
    const std::int64_t bRows = g.transB ? g.n : g.k, bCols = g.transB ? g.k : g.n;
    lda = aCols + g.pad;
    ldb = bCols + g.pad;
    ldc = g.n + g.pad;
    strideA = aRows * lda;
    strideB = g.broadcastB ? 0 : bRows * ldb;
    strideC = g.m * ldc;
    const auto seed = static_cast<std::uint32_t>(g.m * 131 + g.n * 17 + g.k);
    a = makeInput<float>(std::max<std::int64_t>(g.batch * strideA, 1), seed, -1.0f, 1.0f);
    b = makeInput<float>(std::max<std::int64_t>(g.broadcastB ? bRows * ldb : g.batch * strideB, 1),
                         seed + 1, -1.0f, 1.0f);
    bias = makeInput<float>(g.n, seed + 2, -1.0f, 1.0f);
    z = makeInput<float>(g.batch * strideC, seed + 3, -1.0f, 1.0f);
    if (round != nullptr) {
      for (std::vector<float>* v : {&a, &b, &bias, &z}) {
        for (float& x : *v) x = round(x);
      }
    }

    want.value.assign(g.batch * strideC, 0.0);
    want.bound.assign(g.batch * strideC, 0.0);
    for (std::int64_t bt = 0; bt < g.batch; ++bt) {
      for (std::int64_t i = 0; i < g.m; ++i) {
        for (std::int64_t j = 0; j < g.n; ++j) {
          double s = 0, abs = 0;
          for (std::int64_t p = 0; p < g.k; ++p) {
            const double av = a[bt * strideA + (g.transA ? p * lda + i : i * lda + p)];
            const double bv = b[bt * strideB + (g.transB ? j * ldb + p : p * ldb + j)];
            s += av * bv;
            abs += std::fabs(av * bv);
          }
          double v = double(g.alpha) * s;
          abs *= std::fabs(g.alpha);
          if (g.bias) {
            v += bias[j];
            abs += std::fabs(bias[j]);
          }
          const std::int64_t at = bt * strideC + i * ldc + j;
          if (g.z) {
            v += double(g.beta) * z[at];
            abs += std::fabs(g.beta * z[at]);
          }
          want.value[at] = activate(g.act, v);
          want.bound[at] = accumulationBound(g.k, abs);
        }
      }
    }
  }
};

// Runs `g` on `rt` through `stream` with operands of type T; compares C and its guards, and
// hands back C as floats (padding zeroed) through `result`.
template <typename T = float>
void checkGemmOn(DeviceRuntime& rt, Stream stream, const GemmCase& g,
                 std::vector<float>* result = nullptr) {
  const DataType dtype = std::is_same_v<T, float>    ? DataType::kF32
                         : std::is_same_v<T, __half> ? DataType::kF16
                                                     : DataType::kBF16;
  SCOPED_TRACE(std::string(dtypeName(dtype)) + " " + g.describe());
  GemmOperands ops(g, std::is_same_v<T, float> ? nullptr : &roundThrough<T>);
  Guarded<T> a = guardedCopy<T>(ops.a), b = guardedCopy<T>(ops.b),
             bias = guardedCopy<T>(ops.bias), z = guardedCopy<T>(ops.z);
  Guarded<T> c = g.zInPlace ? guardedCopy<T>(ops.z) : Guarded<T>(ops.want.value.size());
  const Guarded<T> pristine = c;
  GuardedDeviceCopy<T> da(rt, a), db(rt, b), dbias(rt, bias), dz(rt, z), dc(rt, c);

  GemmDesc d;
  d.dtype = dtype;
  d.batch = g.batch;
  d.m = g.m;
  d.n = g.n;
  d.k = g.k;
  d.transA = g.transA;
  d.transB = g.transB;
  d.a = da.data();
  d.lda = ops.lda;
  d.strideA = ops.strideA;
  d.b = db.data();
  d.ldb = ops.ldb;
  d.strideB = ops.strideB;
  d.c = dc.data();
  d.ldc = ops.ldc;
  d.strideC = ops.strideC;
  d.bias = g.bias ? dbias.data() : nullptr;
  d.z = g.z ? (g.zInPlace ? dc.data() : dz.data()) : nullptr;
  d.ldz = ops.ldc;
  d.strideZ = ops.strideC;
  d.alpha = g.alpha;
  d.beta = g.beta;
  d.activation = g.act;
  launchGemm(rt, stream, d);
  rt.synchronize(stream);
  dc.copyBack();

  // Padding columns of C are not outputs: they must keep what was there (sentinels or Z).
  Expected want = ops.want;
  std::vector<float> got(c.size());
  for (std::size_t i = 0; i < c.size(); ++i) {
    got[i] = Element<T>::toFloat(c.data()[i]);
    want.bound[i] += Element<T>::rel * std::fabs(want.value[i]) + Element<T>::abs;
  }
  for (std::int64_t bt = 0; bt < g.batch; ++bt) {
    for (std::int64_t i = 0; i < g.m; ++i) {
      for (std::int64_t j = g.n; j < ops.ldc; ++j) {
        const std::int64_t at = bt * ops.strideC + i * ops.ldc + j;
        EXPECT_EQ(std::memcmp(&c.data()[at], &pristine.data()[at], sizeof(T)), 0)
            << "padding element " << at << " written";
        got[at] = 0.0f;
        want.value[at] = 0.0;
      }
    }
  }
  EXPECT_EQ(compareBounded(got.data(), want), "");
  EXPECT_EQ(c.guardDamage(), "");
  if (result != nullptr) *result = got;
}

// ---- conv ----

struct ConvCase {
  std::int64_t n = 1, c = 1, h = 1, w = 1, k = 1, r = 1, s = 1;
  std::int64_t strideH = 1, strideW = 1, padTop = 0, padLeft = 0, padBottom = 0, padRight = 0;
  std::int64_t dilationH = 1, dilationW = 1, groups = 1;
  bool bias = false, z = false, zInPlace = false;
  std::optional<Activation> act;

  Conv2dDesc desc() const {
    Conv2dDesc d;
    d.n = n, d.c = c, d.h = h, d.w = w, d.k = k, d.r = r, d.s = s;
    d.strideH = strideH, d.strideW = strideW;
    d.padTop = padTop, d.padLeft = padLeft, d.padBottom = padBottom, d.padRight = padRight;
    d.dilationH = dilationH, d.dilationW = dilationW, d.groups = groups;
    d.activation = act;
    return d;
  }
  std::string describe() const {
    std::ostringstream os;
    os << "conv n=" << n << " c=" << c << " " << h << "x" << w << " k=" << k << " " << r << "x"
       << s << " stride=" << strideH << "," << strideW << " pads=" << padTop << "," << padLeft
       << "," << padBottom << "," << padRight << " dilation=" << dilationH << "," << dilationW
       << " groups=" << groups << (bias ? " bias" : "")
       << (z ? (zInPlace ? " z(in place)" : " z") : "") << " act=" << actName(act);
    return os.str();
  }
};

struct ConvOperands {
  std::int64_t oh, ow;
  std::vector<float> x, weight, bias, z;
  Expected want;

  explicit ConvOperands(const ConvCase& cc) {
    const Conv2dDesc d = cc.desc();
    oh = d.outH();
    ow = d.outW();
    const std::int64_t cg = cc.c / cc.groups, kg = cc.k / cc.groups;
    const auto seed = static_cast<std::uint32_t>(cc.c * 1000 + cc.h * 10 + cc.r);
    x = makeInput<float>(cc.n * cc.c * cc.h * cc.w, seed, -1.0f, 1.0f);
    weight = makeInput<float>(cc.k * cg * cc.r * cc.s, seed + 1, -1.0f, 1.0f);
    bias = makeInput<float>(cc.k, seed + 2, -1.0f, 1.0f);
    const std::int64_t outSize = cc.n * cc.k * oh * ow;
    z = makeInput<float>(outSize, seed + 3, -1.0f, 1.0f);
    want.value.assign(outSize, 0.0);
    want.bound.assign(outSize, 0.0);
    for (std::int64_t img = 0; img < cc.n; ++img) {
      for (std::int64_t co = 0; co < cc.k; ++co) {
        const std::int64_t g = co / kg;
        for (std::int64_t oy = 0; oy < oh; ++oy) {
          for (std::int64_t ox = 0; ox < ow; ++ox) {
            double s = 0, abs = 0;
            for (std::int64_t ci = 0; ci < cg; ++ci) {
              for (std::int64_t ky = 0; ky < cc.r; ++ky) {
                for (std::int64_t kx = 0; kx < cc.s; ++kx) {
                  const std::int64_t iy = oy * cc.strideH - cc.padTop + ky * cc.dilationH;
                  const std::int64_t ix = ox * cc.strideW - cc.padLeft + kx * cc.dilationW;
                  if (iy < 0 || iy >= cc.h || ix < 0 || ix >= cc.w) continue;
                  const double xv = x[((img * cc.c + g * cg + ci) * cc.h + iy) * cc.w + ix];
                  const double wv = weight[((co * cg + ci) * cc.r + ky) * cc.s + kx];
                  s += xv * wv;
                  abs += std::fabs(xv * wv);
                }
              }
            }
            const std::int64_t at = ((img * cc.k + co) * oh + oy) * ow + ox;
            if (cc.bias) {
              s += bias[co];
              abs += std::fabs(bias[co]);
            }
            if (cc.z) {
              s += z[at];
              abs += std::fabs(z[at]);
            }
            want.value[at] = activate(cc.act, s);
            want.bound[at] = accumulationBound(cg * cc.r * cc.s, abs);
          }
        }
      }
    }
  }
};

inline void checkConvOn(DeviceRuntime& rt, Stream stream, const ConvCase& cc,
                        std::vector<float>* result = nullptr) {
  SCOPED_TRACE(cc.describe());
  ConvOperands ops(cc);
  Guarded<float> x = guardedCopy(ops.x), weight = guardedCopy(ops.weight),
                 bias = guardedCopy(ops.bias), z = guardedCopy(ops.z);
  Guarded<float> y = cc.zInPlace ? guardedCopy(ops.z) : Guarded<float>(ops.want.value.size());
  GuardedDeviceCopy<float> dx(rt, x), dw(rt, weight), dbias(rt, bias), dz(rt, z), dy(rt, y);
  Conv2dDesc d = cc.desc();
  d.x = dx.data();
  d.weight = dw.data();
  d.bias = cc.bias ? dbias.data() : nullptr;
  d.z = cc.z ? (cc.zInPlace ? dy.data() : dz.data()) : nullptr;
  d.y = dy.data();
  launchConv2d(rt, stream, d);
  rt.synchronize(stream);
  dy.copyBack();
  EXPECT_EQ(compareBounded(y.data(), ops.want), "");
  EXPECT_EQ(y.guardDamage(), "");
  if (result != nullptr) result->assign(y.data(), y.data() + y.size());
}

// Half-type GEMMs (nn and nt only): smaller than the f32 set, every activation once.
inline std::vector<GemmCase> gemmHalfCases() {
  std::vector<GemmCase> out;
  const std::int64_t sizes[] = {1, 17, 65, 130};
  for (bool tb : {false, true}) {
    for (std::int64_t m : sizes) {
      for (std::int64_t n : sizes) {
        for (std::int64_t k : sizes) {
          GemmCase g;
          g.m = m, g.n = n, g.k = k, g.transB = tb;
          out.push_back(g);
        }
      }
    }
  }
  for (Activation a : kAllActivations) {
    GemmCase g;
    g.batch = 3, g.m = 17, g.n = 65, g.k = 63, g.pad = 2, g.bias = true, g.z = true;
    g.transB = a == Activation::kTanh || a == Activation::kSilu;
    g.zInPlace = a == Activation::kSigmoid;
    g.act = a;
    out.push_back(g);
  }
  return out;
}

// The cases both test files run.
inline std::vector<GemmCase> gemmShapeCases() {
  std::vector<GemmCase> out;
  const std::int64_t sizes[] = {1, 7, 17, 63, 65, 130};
  for (int t = 0; t < 4; ++t) {
    for (std::int64_t m : sizes) {
      for (std::int64_t n : sizes) {
        for (std::int64_t k : sizes) {
          GemmCase g;
          g.m = m, g.n = n, g.k = k;
          g.transA = t & 1;
          g.transB = t & 2;
          out.push_back(g);
        }
      }
    }
  }
  return out;
}

inline std::vector<GemmCase> gemmEpilogueCases() {
  std::vector<GemmCase> out;
  std::vector<std::optional<Activation>> acts = {std::nullopt};
  for (Activation a : kAllActivations) acts.push_back(a);
  for (const auto& act : acts) {
    for (int e = 0; e < 4; ++e) {
      GemmCase g;
      g.batch = 3;
      g.m = 17, g.n = 65, g.k = 33;
      g.transA = e == 1, g.transB = e == 2;
      g.bias = e & 1;
      g.z = e & 2;
      g.zInPlace = e == 3;
      g.pad = e == 2 ? 3 : 0;
      g.alpha = e == 1 ? 0.5f : 1.0f;
      g.beta = e == 3 ? -2.0f : 1.0f;
      g.act = act;
      out.push_back(g);
    }
  }
  // Batched with every transpose, padded rows and a broadcast B (a MatMul against weights).
  for (int t = 0; t < 4; ++t) {
    GemmCase g;
    g.batch = 3, g.m = 65, g.n = 7, g.k = 130;
    g.transA = t & 1, g.transB = t & 2;
    g.pad = 5;
    g.broadcastB = t >= 2;
    g.bias = true;
    g.act = Activation::kRelu;
    out.push_back(g);
  }
  // k = 0: the epilogue alone.
  GemmCase empty;
  empty.m = 7, empty.n = 17, empty.k = 0, empty.bias = true, empty.z = true;
  empty.act = Activation::kTanh;
  out.push_back(empty);
  return out;
}

inline std::vector<ConvCase> convCases() {
  std::vector<ConvCase> out;
  auto add = [&](ConvCase c) { out.push_back(c); };
  for (std::int64_t ch : {3, 17}) {
    ConvCase c;
    c.n = 2, c.c = ch, c.h = 9, c.w = 11, c.k = 7;
    add(c);  // 1x1
    c.r = c.s = 3, c.padTop = c.padLeft = c.padBottom = c.padRight = 1;
    add(c);  // 3x3 p1
    c.strideH = c.strideW = 2;
    c.k = 65;
    add(c);  // 3x3 s2 p1, output channels past one tile
    c.strideH = c.strideW = 1, c.padTop = c.padLeft = c.padBottom = c.padRight = 0;
    c.r = c.s = 5, c.dilationH = c.dilationW = 2, c.h = 13, c.w = 12, c.k = 7;
    add(c);  // 5x5 dilation 2
    c.r = c.s = 7, c.dilationH = c.dilationW = 1, c.strideH = c.strideW = 2;
    c.padTop = c.padLeft = c.padBottom = c.padRight = 3, c.h = c.w = 15, c.k = 17;
    add(c);  // 7x7 s2 p3 (the ResNet stem)
    ConvCase dw;
    dw.n = 2, dw.c = dw.k = dw.groups = ch, dw.h = 10, dw.w = 9, dw.r = dw.s = 3;
    dw.padTop = dw.padLeft = dw.padBottom = dw.padRight = 1;
    add(dw);  // depthwise 3x3
    dw.strideH = dw.strideW = 2;
    add(dw);  // depthwise 3x3 s2
  }
  ConvCase asym;  // asymmetric pads, rectangular kernel and strides, channel multiplier 2
  asym.n = 1, asym.c = 4, asym.k = 8, asym.groups = 2, asym.h = 8, asym.w = 13;
  asym.r = 2, asym.s = 3, asym.strideH = 1, asym.strideW = 3;
  asym.padTop = 0, asym.padLeft = 2, asym.padBottom = 1, asym.padRight = 0;
  add(asym);
  ConvCase big;  // pixels past several tiles, k past one tile (65 = 64 + 1)
  big.n = 2, big.c = 5, big.h = big.w = 12, big.k = 65, big.r = big.s = 3;
  big.padTop = big.padLeft = big.padBottom = big.padRight = 1;
  add(big);
  return out;
}

inline std::vector<ConvCase> convEpilogueCases() {
  std::vector<ConvCase> out;
  std::vector<std::optional<Activation>> acts = {std::nullopt};
  for (Activation a : kAllActivations) acts.push_back(a);
  for (const auto& act : acts) {
    for (int e = 0; e < 4; ++e) {
      ConvCase c;
      c.n = 2, c.c = 6, c.h = 7, c.w = 6, c.k = 9, c.r = c.s = 3;
      c.padTop = c.padLeft = c.padBottom = c.padRight = 1;
      c.groups = e == 2 ? 3 : 1;
      c.bias = e & 1;
      c.z = e & 2;
      c.zInPlace = e == 3;
      c.act = act;
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace anvil::cuda::testing
