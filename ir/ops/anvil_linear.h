// The epilogue of anvil's fused linear ops (anvil.FusedConv, anvil.FusedGemm,
// anvil.FusedMatMul): what runs on the linear result y (bias already inside) before it is
// stored. Shared by the schemas (ir/ops/anvil_linear.cpp), the fusion pass
// (passes/linear_epilogue_fusion.cpp), the reference kernels (cpu/kernels/anvil_linear.cpp)
// and the fast tactics (cpu/tactics/fused_linear.cpp).
//
// Attributes, besides the linear op's own:
//   activation         string: "" (none), Relu, Clip, Sigmoid, Tanh, LeakyRelu, HardSigmoid,
//                      HardSwish, Silu (x * sigmoid(x)), Gelu (erf form), GeluTanh
//   activation_params  floats: Clip [min, max] (-inf/inf where absent), LeakyRelu [alpha],
//                      HardSigmoid [alpha, beta]; empty for the others
//   has_residual       int 0/1: input 3 (Z, the output's shape) is added
//   residual_order     string: "add_then_activate"  y = act(y + Z)   (ResNet: conv+BN, +x, ReLU)
//                              "activate_then_add"  y = act(y) + Z
// Each step rounds to the element type, exactly like the unfused chain of ONNX nodes.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "ir/graph.h"

namespace anvil::ir::linear {

enum class Activation { kNone, kRelu, kClip, kSigmoid, kTanh, kLeakyRelu, kHardSigmoid, kHardSwish, kSilu, kGelu, kGeluTanh };

inline constexpr size_t kResidualInput = 3;

struct Epilogue {
  Activation act = Activation::kNone;
  float p0 = 0.0f, p1 = 0.0f;  // activation parameters (see above)
  bool residual = false;
  bool addFirst = true;  // residual_order == add_then_activate
};

inline const char* activationName(Activation a) {
  switch (a) {
    case Activation::kNone: return "";
    case Activation::kRelu: return "Relu";
    case Activation::kClip: return "Clip";
    case Activation::kSigmoid: return "Sigmoid";
    case Activation::kTanh: return "Tanh";
    case Activation::kLeakyRelu: return "LeakyRelu";
    case Activation::kHardSigmoid: return "HardSigmoid";
    case Activation::kHardSwish: return "HardSwish";
    case Activation::kSilu: return "Silu";
    case Activation::kGelu: return "Gelu";
    case Activation::kGeluTanh: return "GeluTanh";
  }
  return "";
}

// Number of activation_params each activation takes.
inline size_t activationParamCount(Activation a) {
  switch (a) {
    case Activation::kClip: return 2;
    case Activation::kLeakyRelu: return 1;
    case Activation::kHardSigmoid: return 2;
    default: return 0;
  }
}

inline bool parseActivation(const std::string& s, Activation* out) {
  for (int i = 0; i <= int(Activation::kGeluTanh); ++i)
    if (s == activationName(Activation(i))) {
      *out = Activation(i);
      return true;
    }
  return false;
}

// Reads the epilogue attributes; returns "" or what is wrong with them. prefix: the
// attributes' names begin with it (anvil.FusedConvDw's depthwise epilogue: "dw_").
inline std::string readEpilogue(const Attributes& attrs, Epilogue* e, const std::string& prefix = "") {
  const std::string act = attrs.getString(prefix + "activation", "");
  if (!parseActivation(act, &e->act)) return "unknown " + prefix + "activation '" + act + "'";
  const std::vector<float> p = attrs.getFloats(prefix + "activation_params");
  if (p.size() != activationParamCount(e->act))
    return "activation '" + act + "' takes " + std::to_string(activationParamCount(e->act)) +
           " activation_params, got " + std::to_string(p.size());
  if (p.size() > 0) e->p0 = p[0];
  if (p.size() > 1) e->p1 = p[1];
  const int64_t hr = attrs.getInt(prefix + "has_residual", 0);
  if (hr != 0 && hr != 1) return "has_residual must be 0 or 1";
  e->residual = hr == 1;
  const std::string order = attrs.getString(prefix + "residual_order", "add_then_activate");
  if (order != "add_then_activate" && order != "activate_then_add")
    return "residual_order must be add_then_activate or activate_then_add, got '" + order + "'";
  e->addFirst = order == "add_then_activate";
  return "";
}

// Writes e into attrs (the inverse of readEpilogue; defaults are left out).
inline void writeEpilogue(const Epilogue& e, Attributes* attrs, const std::string& prefix = "") {
  attrs->erase(prefix + "activation");
  attrs->erase(prefix + "activation_params");
  attrs->erase(prefix + "has_residual");
  attrs->erase(prefix + "residual_order");
  if (e.act != Activation::kNone) {
    attrs->set(prefix + "activation", std::string(activationName(e.act)));
    std::vector<float> p;
    if (activationParamCount(e.act) > 0) p.push_back(e.p0);
    if (activationParamCount(e.act) > 1) p.push_back(e.p1);
    if (!p.empty()) attrs->set(prefix + "activation_params", p);
  }
  if (e.residual) {
    attrs->set(prefix + "has_residual", int64_t(1));
    attrs->set(prefix + "residual_order", std::string(e.addFirst ? "add_then_activate" : "activate_then_add"));
  }
}

// anvil.FusedConvDw (a 1x1 Conv and the depthwise Conv that reads its result, one node):
// inputs X [N, C, H, W], W [E, C, 1, 1], B [E] (optional), Wd [E, 1, kh, kw], Bd [E]
// (optional); the 1x1 Conv's epilogue in the usual attributes (activation only, no
// residual), the depthwise Conv's in dw_activation / dw_activation_params, its window in
// dw_kernel_shape, dw_strides and dw_pads (top, left, bottom, right; dilation 1).
inline constexpr size_t kDwFilterInput = 3, kDwBiasInput = 4;
struct DwWindow {
  int64_t kH = 0, kW = 0, sH = 1, sW = 1;
  int64_t pads[4] = {0, 0, 0, 0};
};
// Reads dw_kernel_shape / dw_strides / dw_pads; returns "" or what is wrong with them.
inline std::string readDwWindow(const Attributes& attrs, DwWindow* w) {
  const std::vector<int64_t> k = attrs.getInts("dw_kernel_shape"), s = attrs.getInts("dw_strides", {1, 1}),
                             p = attrs.getInts("dw_pads", {0, 0, 0, 0});
  if (k.size() != 2 || k[0] < 1 || k[1] < 1) return "dw_kernel_shape must be two positive extents";
  if (s.size() != 2 || s[0] < 1 || s[1] < 1) return "dw_strides must be two positive strides";
  if (p.size() != 4) return "dw_pads must hold four pads";
  for (int i = 0; i < 4; ++i) {
    if (p[size_t(i)] < 0) return "dw_pads must not be negative";
    w->pads[i] = p[size_t(i)];
  }
  w->kH = k[0], w->kW = k[1], w->sH = s[0], w->sW = s[1];
  return "";
}

// The activation in compute type C, with the formulas of the reference elementwise kernels.
template <typename C>
inline C activate(const Epilogue& e, C x) {
  switch (e.act) {
    case Activation::kNone: return x;
    case Activation::kRelu: return x < C(0) ? C(0) : x;  // NaN stays NaN
    case Activation::kClip: {
      C c = x;
      if (c < C(e.p0)) c = C(e.p0);
      if (c > C(e.p1)) c = C(e.p1);
      return c;
    }
    case Activation::kSigmoid:
      if (x >= C(0)) return C(1) / (C(1) + std::exp(-x));
      else {
        const C ex = std::exp(x);
        return ex / (C(1) + ex);
      }
    case Activation::kTanh: return std::tanh(x);
    case Activation::kLeakyRelu: return x < C(0) ? C(C(e.p0) * x) : x;
    case Activation::kHardSigmoid: return std::fmax(C(0), std::fmin(C(1), C(e.p0) * x + C(e.p1)));
    case Activation::kHardSwish: return x * std::fmax(C(0), std::fmin(C(1), x / C(6) + C(0.5)));
    case Activation::kSilu: {
      Epilogue s;
      s.act = Activation::kSigmoid;
      return x * activate(s, x);
    }
    case Activation::kGelu: return C(C(0.5) * x * (C(1) + std::erf(x * C(0.70710678118654752440))));
    case Activation::kGeluTanh: {
      const C k = C(0.79788456080286535588);  // sqrt(2 / pi)
      return C(C(0.5) * x * (C(1) + std::tanh(k * (x + C(0.044715) * x * x * x))));
    }
  }
  return x;
}

// ---- condition of the fused activation (precision selection) ----
// kappa_phi(v) = |v phi'(v)| / |phi(v)| (1 without an activation; 0 where the activation is
// flat, so an error in v does not reach the output), phi(v) and |phi'(v)|. Shared by
// calibration (codegen/calibration.cpp) and the INT8 kernels' adaptive test
// (cpu/tactics/native_int8.cpp). kConditionCap bounds kappa where phi(v) is 0.
inline constexpr double kConditionCap = 1e8;

inline double activationCondition(const Epilogue& e, double v) {
  using A = Activation;
  const double av = std::fabs(v);
  auto sigmoid = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  switch (e.act) {
    case A::kNone:
    case A::kLeakyRelu: return 1.0;  // v phi'(v) / phi(v) = 1 on both sides
    case A::kRelu: return v > 0 ? 1.0 : 0.0;
    case A::kClip: return v > e.p0 && v < e.p1 ? 1.0 : 0.0;
    case A::kSigmoid: return av * (1.0 - sigmoid(v));
    case A::kTanh: {
      if (av < 1e-12) return 1.0;
      const double t = std::tanh(v);
      return std::fabs(v * (1.0 - t * t) / t);
    }
    case A::kHardSigmoid: {
      const double y = e.p0 * v + e.p1;
      return y > 0 && y < 1 ? std::fabs(e.p0 * v / y) : 0.0;
    }
    case A::kHardSwish:
      if (v >= 3) return 1.0;
      if (v <= -3) return 0.0;
      return av < 1e-12 ? 1.0 : std::fabs((2 * v + 3) / (v + 3));
    case A::kSilu: return std::fabs(1.0 + v * (1.0 - sigmoid(v)));
    case A::kGelu:
    case A::kGeluTanh: {
      const double cdf = 0.5 * std::erfc(-v / std::sqrt(2.0));
      const double pdf = std::exp(-0.5 * v * v) / std::sqrt(2.0 * M_PI);
      return cdf > 0 ? std::fabs(1.0 + v * pdf / cdf) : kConditionCap;
    }
  }
  return 1.0;
}

// An upper bound of activationCondition(e, v) without a transcendental function, for the
// INT8 kernels' adaptive test: a component whose bound does not flag it is not flagged, and
// only the others pay for the exact condition (a Tanh layer's test took ~29 ns a component,
// 0.46 of a 256 x 64 x 64 FusedGemm's 0.47 ms, with exact conditions for all). Bounds, from
// sinh x >= x + x^3 / 6 and e^v >= 1 + v + v^2 / 2 (v >= 0): tanh 2v / sinh 2v <= 1 / (1 +
// 2v^2 / 3); sigmoid |v| (1 - s) <= v / (1 + v + v^2 / 2) above 0, |v| below; SiLU |1 + v (1 -
// s)| <= 1 + that above 0, max(1, |v| - 1) below (1 - s in (1/2, 1)); GELU |1 + v pdf / cdf|
// <= 1.5 for v >= 0 (v pdf(v) <= 0.242, cdf >= 1/2) and <= max(1, v^2) below (Gordon's
// inequality: cdf(v) > pdf(v) |v| / (1 + v^2)), the cap where cdf underflows; each with a
// margin for the double rounding of the exact form. The rest are exact and cheap.
// conditionBoundOf<A>: one activation's bound, for loops over many components.
template <Activation A>
inline double conditionBoundOf(double v) {
  const double av = std::fabs(v);
  if constexpr (A == Activation::kRelu) {
    return v > 0 ? 1.0 : 0.0;  // exact
  } else if constexpr (A == Activation::kTanh) {
    return 1.001 / (1.0 + (2.0 / 3.0) * v * v);
  } else if constexpr (A == Activation::kSigmoid) {
    return 1.001 * (v > 0 ? v / (1.0 + v + 0.5 * v * v) : av);
  } else if constexpr (A == Activation::kSilu) {
    return 1.001 * (v > 0 ? 1.0 + v / (1.0 + v + 0.5 * v * v) : std::max(1.0, av - 1.0));
  } else {
    static_assert(A == Activation::kGelu, "the bounded activations: Relu, Tanh, Sigmoid, Silu, Gelu (GeluTanh as Gelu)");
    return v >= 0 ? 1.5 : v < -37.0 ? kConditionCap : 1.001 * std::max(1.0, v * v);
  }
}

// Calls f(std::integral_constant<Activation, A>{}) with the conditionBoundOf form of `a` and
// returns true, or returns false where `a` has none (its exact condition is cheap).
template <class F>
inline bool withConditionBound(Activation a, F&& f) {
  using A = Activation;
  switch (a) {
    case A::kRelu: f(std::integral_constant<A, A::kRelu>{}); return true;
    case A::kTanh: f(std::integral_constant<A, A::kTanh>{}); return true;
    case A::kSigmoid: f(std::integral_constant<A, A::kSigmoid>{}); return true;
    case A::kSilu: f(std::integral_constant<A, A::kSilu>{}); return true;
    case A::kGelu:
    case A::kGeluTanh: f(std::integral_constant<A, A::kGelu>{}); return true;
    default: return false;
  }
}

inline double activationConditionBound(const Epilogue& e, double v) {
  double b = 0.0;
  if (withConditionBound(e.act, [&](auto act) { b = conditionBoundOf<decltype(act)::value>(v); })) return b;
  return activationCondition(e, v);
}

inline double activationValue(const Epilogue& e, double v) {
  using A = Activation;
  auto sigmoid = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  switch (e.act) {
    case A::kNone: return v;
    case A::kRelu: return v > 0 ? v : 0.0;
    case A::kLeakyRelu: return v > 0 ? v : e.p0 * v;
    case A::kClip: return std::clamp(v, double(e.p0), double(e.p1));
    case A::kSigmoid: return sigmoid(v);
    case A::kTanh: return std::tanh(v);
    case A::kHardSigmoid: return std::clamp(e.p0 * v + e.p1, 0.0, 1.0);
    case A::kHardSwish: return v * std::clamp(v + 3.0, 0.0, 6.0) / 6.0;
    case A::kSilu: return v * sigmoid(v);
    case A::kGelu:
    case A::kGeluTanh: return v * 0.5 * std::erfc(-v / std::sqrt(2.0));
  }
  return v;
}

inline double activationSlope(const Epilogue& e, double v) {
  using A = Activation;
  auto sigmoid = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  switch (e.act) {
    case A::kNone: return 1.0;
    case A::kRelu: return v > 0 ? 1.0 : 0.0;
    case A::kLeakyRelu: return v > 0 ? 1.0 : std::fabs(e.p0);
    case A::kClip: return v > e.p0 && v < e.p1 ? 1.0 : 0.0;
    case A::kSigmoid: return sigmoid(v) * (1.0 - sigmoid(v));
    case A::kTanh: return 1.0 - std::tanh(v) * std::tanh(v);
    case A::kHardSigmoid: {
      const double y = e.p0 * v + e.p1;
      return y > 0 && y < 1 ? std::fabs(e.p0) : 0.0;
    }
    case A::kHardSwish: return v >= 3 ? 1.0 : v <= -3 ? 0.0 : std::fabs((2 * v + 3) / 6.0);
    case A::kSilu: return std::fabs(sigmoid(v) * (1.0 + v * (1.0 - sigmoid(v))));
    case A::kGelu:
    case A::kGeluTanh:
      return std::fabs(0.5 * std::erfc(-v / std::sqrt(2.0)) + v * std::exp(-0.5 * v * v) / std::sqrt(2.0 * M_PI));
  }
  return 1.0;
}

}  // namespace anvil::ir::linear
