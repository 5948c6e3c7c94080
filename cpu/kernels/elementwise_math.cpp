// Reference kernels of the elementwise family's unary ops: float math, rounding,
// activations (with their attributes), sign-aware ops on all numeric types, Not,
// BitwiseNot, IsNaN and IsInf. f16/bf16 compute in float and round once.
#include <cmath>
#include <string>

#include "cpu/dispatch.h"
#include "cpu/kernels/elementwise_util.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels::ew {

namespace {

// y = f(x) over the float types, f taking and returning the compute type.
template <typename F>
void floatMap(KernelContext& ctx, F f) {
  dispatchFloat(ctx.input(0).dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = ComputeT<T>;
    unaryMap<T, T>(ctx, [&](T x) { return T(C(f(C(x)))); });
  });
}

template <typename F>
RefKernel floatUnary(F f) {
  return [f](KernelContext& ctx) { floatMap(ctx, f); };
}

// y = f(x) over every numeric type; f sees T's compute type and returns it.
template <typename F>
void numericMap(KernelContext& ctx, F f) {
  dispatchNumeric(ctx.input(0).dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = ComputeT<T>;
    unaryMap<T, T>(ctx, [&](T x) { return T(f(C(x))); });
  });
}

template <typename C>
C softplus(C x) {
  // ln(1 + e^x) without overflow for large x.
  return x > C(0) ? C(x + std::log1p(std::exp(-x))) : C(std::log1p(std::exp(x)));
}

template <typename C>
C sigmoid(C x) {
  if (x >= C(0)) return C(1) / (C(1) + std::exp(-x));
  C e = std::exp(x);
  return e / (C(1) + e);
}

// IsNaN / IsInf over the float types and the f8 formats.
template <typename F>
void classify(KernelContext& ctx, F pred) {
  const Tensor& x = ctx.input(0);
  const DataType t = x.dtype();
  if (t == DataType::kF8E4M3FN || t == DataType::kF8E4M3FNUZ || t == DataType::kF8E5M2 ||
      t == DataType::kF8E5M2FNUZ) {
    unaryMap<uint8_t, bool>(ctx, [&](uint8_t v) { return pred(double(ir::f8ToFloat(v, t))); }, DataType::kBool);
    return;
  }
  dispatchFloat(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    unaryMap<T, bool>(ctx, [&](T v) { return pred(double(ComputeT<T>(v))); }, DataType::kBool);
  });
}

}  // namespace

void registerMath(KernelRegistry& r) {
  // Sign-aware ops over all numeric types.
  r.add("Abs", [](KernelContext& ctx) {
    dispatchNumeric(ctx.input(0).dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      using C = ComputeT<T>;
      unaryMap<T, T>(ctx, [](T x) {
        if constexpr (std::is_unsigned_v<T>) return x;
        else if constexpr (std::is_integral_v<T>) return x < 0 ? negW(x) : x;
        else return T(C(std::fabs(C(x))));
      });
    });
  });
  r.add("Neg", [](KernelContext& ctx) {
    dispatchNumeric(ctx.input(0).dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      unaryMap<T, T>(ctx, [](T x) { return negW(x); });
    });
  });
  r.add("Sign", [](KernelContext& ctx) {
    numericMap(ctx, [](auto x) {
      using C = decltype(x);
      if constexpr (std::is_floating_point_v<C>) {
        if (std::isnan(x)) return x;
      }
      return x > C(0) ? C(1) : (x < C(0) ? C(-1) : C(0));
    });
  });
  r.add("Relu", [](KernelContext& ctx) {
    numericMap(ctx, [](auto x) {
      using C = decltype(x);
      return x < C(0) ? C(0) : x;  // NaN stays NaN
    });
  });
  r.add("LeakyRelu", [](KernelContext& ctx) {
    const double alpha = ctx.attrs().getFloat("alpha", 0.01f);
    numericMap(ctx, [alpha](auto x) {
      using C = decltype(x);
      if constexpr (std::is_integral_v<C>) return x < C(0) ? doubleToInt<C>(alpha * double(x)) : x;
      else return x < C(0) ? C(C(alpha) * x) : x;
    });
  });
  r.add("Shrink", [](KernelContext& ctx) {
    const double bias = ctx.attrs().getFloat("bias", 0.0f);
    const double lambd = ctx.attrs().getFloat("lambd", 0.5f);
    numericMap(ctx, [=](auto x) {
      using C = decltype(x);
      const double v = double(x);
      double y = v < -lambd ? v + bias : (v > lambd ? v - bias : 0.0);
      if constexpr (std::is_integral_v<C>) return doubleToInt<C>(y);
      else return C(y);
    });
  });

  // Float math.
  r.add("Reciprocal", floatUnary([](auto x) { return decltype(x)(1) / x; }));
  r.add("Sqrt", floatUnary([](auto x) { return std::sqrt(x); }));
  r.add("Exp", floatUnary([](auto x) { return std::exp(x); }));
  r.add("Log", floatUnary([](auto x) { return std::log(x); }));
  r.add("Erf", floatUnary([](auto x) { return std::erf(x); }));
  r.add("Sin", floatUnary([](auto x) { return std::sin(x); }));
  r.add("Cos", floatUnary([](auto x) { return std::cos(x); }));
  r.add("Tan", floatUnary([](auto x) { return std::tan(x); }));
  r.add("Asin", floatUnary([](auto x) { return std::asin(x); }));
  r.add("Acos", floatUnary([](auto x) { return std::acos(x); }));
  r.add("Atan", floatUnary([](auto x) { return std::atan(x); }));
  r.add("Sinh", floatUnary([](auto x) { return std::sinh(x); }));
  r.add("Cosh", floatUnary([](auto x) { return std::cosh(x); }));
  r.add("Tanh", floatUnary([](auto x) { return std::tanh(x); }));
  r.add("Asinh", floatUnary([](auto x) { return std::asinh(x); }));
  r.add("Acosh", floatUnary([](auto x) { return std::acosh(x); }));
  r.add("Atanh", floatUnary([](auto x) { return std::atanh(x); }));
  r.add("Ceil", floatUnary([](auto x) { return std::ceil(x); }));
  r.add("Floor", floatUnary([](auto x) { return std::floor(x); }));
  // nearbyint rounds half to even in the default rounding mode, as ONNX Round requires.
  r.add("Round", floatUnary([](auto x) { return std::nearbyint(x); }));

  // Activations.
  r.add("Sigmoid", floatUnary([](auto x) { return sigmoid(x); }));
  r.add("Softplus", floatUnary([](auto x) { return softplus(x); }));
  r.add("Softsign", floatUnary([](auto x) { return x / (decltype(x)(1) + std::fabs(x)); }));
  r.add("Mish", floatUnary([](auto x) { return x * std::tanh(softplus(x)); }));
  r.add("HardSwish", floatUnary([](auto x) {
    using C = decltype(x);
    return x * std::fmax(C(0), std::fmin(C(1), x / C(6) + C(0.5)));
  }));
  r.add("HardSigmoid", [](KernelContext& ctx) {
    const double alpha = ctx.attrs().getFloat("alpha", 0.2f), beta = ctx.attrs().getFloat("beta", 0.5f);
    floatMap(ctx, [=](auto x) {
      using C = decltype(x);
      return std::fmax(C(0), std::fmin(C(1), C(alpha) * x + C(beta)));
    });
  });
  r.add("Elu", [](KernelContext& ctx) {
    const double alpha = ctx.attrs().getFloat("alpha", 1.0f);
    floatMap(ctx, [=](auto x) {
      using C = decltype(x);
      return x < C(0) ? C(C(alpha) * std::expm1(x)) : x;
    });
  });
  r.add("Selu", [](KernelContext& ctx) {
    const double alpha = ctx.attrs().getFloat("alpha", 1.67326319217681884765625f);
    const double gamma = ctx.attrs().getFloat("gamma", 1.05070102214813232421875f);
    floatMap(ctx, [=](auto x) {
      using C = decltype(x);
      return x > C(0) ? C(C(gamma) * x) : C(C(gamma) * C(alpha) * std::expm1(x));
    });
  });
  r.add("Celu", [](KernelContext& ctx) {
    const double alpha = ctx.attrs().getFloat("alpha", 1.0f);
    ctx.check(alpha != 0, "attribute 'alpha' must not be 0");
    floatMap(ctx, [=](auto x) {
      using C = decltype(x);
      return C(std::fmax(C(0), x) + std::fmin(C(0), C(C(alpha) * std::expm1(x / C(alpha)))));
    });
  });
  r.add("ThresholdedRelu", [](KernelContext& ctx) {
    const double alpha = ctx.attrs().getFloat("alpha", 1.0f);
    floatMap(ctx, [=](auto x) {
      using C = decltype(x);
      return x > C(alpha) ? x : C(0);
    });
  });
  r.add("Gelu", [](KernelContext& ctx) {
    const std::string approx = ctx.attrs().getString("approximate", "none");
    ctx.check(approx == "none" || approx == "tanh", "attribute 'approximate' must be 'none' or 'tanh'");
    if (approx == "tanh") {
      floatMap(ctx, [](auto x) {
        using C = decltype(x);
        const C k = C(0.79788456080286535588);  // sqrt(2 / pi)
        return C(C(0.5) * x * (C(1) + std::tanh(k * (x + C(0.044715) * x * x * x))));
      });
    } else {
      floatMap(ctx, [](auto x) {
        using C = decltype(x);
        return C(C(0.5) * x * (C(1) + std::erf(x * C(0.70710678118654752440))));
      });
    }
  });

  // Logic and bits.
  r.add("Not", [](KernelContext& ctx) {
    ctx.check(ctx.input(0).dtype() == DataType::kBool, "input must be bool");
    unaryMap<bool, bool>(ctx, [](bool x) { return !x; });
  });
  r.add("BitwiseNot", [](KernelContext& ctx) {
    const DataType t = ctx.input(0).dtype();
    if (t == DataType::kBool) return unaryMap<bool, bool>(ctx, [](bool x) { return !x; });
    dispatchInt(t, [&](auto tag) {
      using T = typename decltype(tag)::type;
      unaryMap<T, T>(ctx, [](T x) { return T(~x); });
    });
  });

  r.add("IsNaN", [](KernelContext& ctx) { classify(ctx, [](double v) { return std::isnan(v); }); });
  r.add("IsInf", [](KernelContext& ctx) {
    const bool neg = ctx.attrs().getInt("detect_negative", 1) != 0;
    const bool pos = ctx.attrs().getInt("detect_positive", 1) != 0;
    classify(ctx, [=](double v) { return std::isinf(v) && ((v > 0 && pos) || (v < 0 && neg)); });
  });
}

}  // namespace anvil::cpu::kernels::ew
