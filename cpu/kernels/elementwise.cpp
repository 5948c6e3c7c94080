// Reference kernels of the elementwise family: binary arithmetic, comparisons, logic and
// bit ops, the variadic Max/Min/Sum/Mean, Where, Clip and PRelu. Unary math lives in
// elementwise_math.cpp, Cast in elementwise_cast.cpp.
//
// Integer semantics follow numpy (what the ONNX reference computes): + - * wrap, Div
// truncates toward zero, division or modulo by zero gives 0 (defined, never a trap).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "cpu/dispatch.h"
#include "cpu/kernels/elementwise_util.h"
#include "cpu/kernels/families.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

namespace ew {
namespace {

template <typename T>
constexpr bool kIsInt = std::is_integral_v<T> && !std::is_same_v<T, bool>;

template <typename T>
bool isNan(T x) {
  if constexpr (kIsInt<T> || std::is_same_v<T, bool>) return false;
  else return std::isnan(ComputeT<T>(x));
}

template <typename T>
T divT(T x, T y) {
  if constexpr (kIsInt<T>) {
    if (y == 0) return T(0);
    if constexpr (std::is_signed_v<T>) {
      if (y == T(-1)) return negW(x);  // INT_MIN / -1 would trap
    }
    return T(x / y);
  } else {
    return T(ComputeT<T>(x) / ComputeT<T>(y));
  }
}

template <typename T>
T modT(T x, T y, bool fmod) {
  if constexpr (kIsInt<T>) {
    if (y == 0) return T(0);
    if constexpr (std::is_signed_v<T>) {
      if (y == T(-1)) return T(0);
      T r = T(x % y);
      if (!fmod && r != 0 && ((r < 0) != (y < 0))) r = T(r + y);
      return r;
    } else {
      return T(x % y);
    }
  } else {
    // Floats always take C fmod (ONNX requires fmod=1 for them; the reference agrees).
    using C = ComputeT<T>;
    return T(C(std::fmod(C(x), C(y))));
  }
}

// Integer power by squaring, wrapping like numpy; negative exponents truncate 1/x^n.
template <typename T, typename E>
T ipow(T base, E e) {
  if constexpr (std::is_signed_v<E>) {
    if (e < 0) {
      if (base == T(1)) return T(1);
      if constexpr (std::is_signed_v<T>) {
        if (base == T(-1)) return (e % 2 == 0) ? T(1) : T(-1);
      }
      return T(0);
    }
  }
  T result = T(1);
  uint64_t n = uint64_t(e);
  while (n) {
    if (n & 1) result = mulW(result, base);
    base = mulW(base, base);
    n >>= 1;
  }
  return result;
}

template <typename T, typename E>
T powT(T x, E y) {
  if constexpr (kIsInt<T> && kIsInt<E>) {
    return ipow(x, y);
  } else {
    double v = std::pow(double(ComputeT<T>(x)), double(ComputeT<E>(y)));
    if constexpr (kIsInt<T>) return doubleToInt<T>(v);
    else return T(ComputeT<T>(v));
  }
}

// Both inputs of a binary op have one element type (inference checks it; this guards
// kernels run on inputs that bypassed inference).
void requireSameType(const KernelContext& ctx) {
  const DataType a = ctx.input(0).dtype(), b = ctx.input(1).dtype();
  ctx.check(a == b, std::string("inputs must have one element type, got ") + ir::dtypeName(a) + " and " +
                        ir::dtypeName(b));
}

// out = f(x, y) over numeric types with one type for both inputs and the output.
template <typename Op>
RefKernel sameTypeBinary(Op op) {
  return [op](KernelContext& ctx) {
    requireSameType(ctx);
    dispatchNumeric(ctx.input(0).dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      binaryMap<T, T, T>(ctx, ctx.input(0).dtype(), [&](T x, T y) { return op(x, y); });
    });
  };
}

// Comparisons: numeric, bool (and strings for Equal) in, bool out.
template <typename Op>
RefKernel comparison(Op op, bool strings) {
  return [op, strings](KernelContext& ctx) {
    requireSameType(ctx);
    const DataType t = ctx.input(0).dtype();
    if (t == DataType::kString) {
      ctx.check(strings, "string inputs are not supported by this op");
      binaryMap<std::string, std::string, bool>(ctx, DataType::kBool,
                                                [&](const std::string& x, const std::string& y) { return op(x, y); });
      return;
    }
    dispatchAll(t, [&](auto tag) {
      using T = typename decltype(tag)::type;
      using C = ComputeT<T>;
      binaryMap<T, T, bool>(ctx, DataType::kBool, [&](T x, T y) { return op(C(x), C(y)); });
    });
  };
}

template <typename Op>
RefKernel logical(Op op) {
  return [op](KernelContext& ctx) {
    ctx.check(ctx.input(0).dtype() == DataType::kBool && ctx.input(1).dtype() == DataType::kBool,
              "inputs must be bool");
    binaryMap<bool, bool, bool>(ctx, DataType::kBool, op);
  };
}

// Bitwise ops on integers and bool.
template <typename Op>
RefKernel bitwise(Op op) {
  return [op](KernelContext& ctx) {
    requireSameType(ctx);
    const DataType t = ctx.input(0).dtype();
    if (t == DataType::kBool) {
      binaryMap<bool, bool, bool>(ctx, t, [&](bool x, bool y) { return bool(op(uint8_t(x), uint8_t(y)) & 1); });
      return;
    }
    dispatchInt(t, [&](auto tag) {
      using T = typename decltype(tag)::type;
      binaryMap<T, T, T>(ctx, t, [&](T x, T y) { return T(op(x, y)); });
    });
  };
}

// Max/Min/Sum/Mean: a left fold of the broadcast inputs in the compute type.
template <typename Op>
void variadicFold(KernelContext& ctx, Op op, bool mean) {
  std::vector<const Tensor*> ins;
  for (size_t i = 0; i < ctx.numInputs(); ++i) ins.push_back(&ctx.input(i));
  std::vector<int64_t> dims = broadcastDims(ctx, ins);
  const DataType dt = ins[0]->dtype();
  for (const Tensor* t : ins) ctx.check(t->dtype() == dt, "inputs must have one element type");
  dispatchNumeric(dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = ComputeT<T>;
    Tensor& o = ctx.allocOutput(0, dt, dims);
    std::vector<C> acc(size_t(o.numel()));
    for (size_t k = 0; k < ins.size(); ++k) {
      const T* x = ins[k]->data<T>();
      forEachBroadcast<1>(dims, {&ins[k]->dims()}, [&](int64_t i, const std::array<int64_t, 1>& off) {
        acc[size_t(i)] = k == 0 ? C(x[off[0]]) : op(acc[size_t(i)], C(x[off[0]]));
      });
    }
    T* y = o.data<T>();
    for (int64_t i = 0; i < o.numel(); ++i) {
      C v = acc[size_t(i)];
      if (mean) {
        if constexpr (kIsInt<C>) v = divT(v, C(ins.size()));
        else v = C(v / C(ins.size()));
      }
      y[i] = T(v);
    }
  });
}

template <typename C>
C maxC(C a, C b) {
  if (isNan(a) || isNan(b)) return isNan(a) ? a : b;
  return a < b ? b : a;
}
template <typename C>
C minC(C a, C b) {
  if (isNan(a) || isNan(b)) return isNan(a) ? a : b;
  return b < a ? b : a;
}

// Where copies elements, so it dispatches on the element size alone (and strings).
void whereKernel(KernelContext& ctx) {
  const Tensor& c = ctx.input(0);
  const Tensor& x = ctx.input(1);
  const Tensor& y = ctx.input(2);
  ctx.check(c.dtype() == DataType::kBool, "condition must be bool");
  ctx.check(x.dtype() == y.dtype(), std::string("X and Y must have one element type, got ") +
                                        ir::dtypeName(x.dtype()) + " and " + ir::dtypeName(y.dtype()));
  const DataType t = x.dtype();
  std::vector<int64_t> dims = broadcastDims(ctx, {&c, &x, &y});
  Tensor& o = ctx.allocOutput(0, t, dims);
  const bool* cond = c.data<bool>();
  auto run = [&](auto* out, const auto* a, const auto* b) {
    forEachBroadcast<3>(dims, {&c.dims(), &x.dims(), &y.dims()}, [&](int64_t i, const std::array<int64_t, 3>& off) {
      out[i] = cond[off[0]] ? a[off[1]] : b[off[2]];
    });
  };
  if (t == DataType::kString) return run(o.data<std::string>(), x.data<std::string>(), y.data<std::string>());
  switch (ir::bitWidth(t)) {
    case 8: return run(o.data<uint8_t>(), x.data<uint8_t>(), y.data<uint8_t>());
    case 16: return run(o.data<uint16_t>(), x.data<uint16_t>(), y.data<uint16_t>());
    case 32: return run(o.data<uint32_t>(), x.data<uint32_t>(), y.data<uint32_t>());
    case 64: return run(o.data<uint64_t>(), x.data<uint64_t>(), y.data<uint64_t>());
    default: ctx.fail(std::string("element type ") + ir::dtypeName(t) + " is not supported");
  }
}

void clipKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  for (size_t i = 1; i < 3; ++i) {
    if (!ctx.hasInput(i)) continue;
    ctx.check(ctx.input(i).numel() == 1, std::string(i == 1 ? "min" : "max") + " must hold one element, got " +
                                             ctx.input(i).summary());
    ctx.check(ctx.input(i).dtype() == x.dtype(), "min and max must have the input's element type");
  }
  dispatchNumeric(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = ComputeT<T>;
    const bool hasLo = ctx.hasInput(1), hasHi = ctx.hasInput(2);
    const C lo = hasLo ? C(ctx.input(1).data<T>()[0]) : C(0);
    const C hi = hasHi ? C(ctx.input(2).data<T>()[0]) : C(0);
    unaryMap<T, T>(ctx, [&](T v) {
      C c = C(v);
      if (hasLo && c < lo) c = lo;  // NaN compares false and stays
      if (hasHi && c > hi) c = hi;  // min > max gives max, as ONNX specifies
      return T(c);
    });
  });
}

void preluKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& s = ctx.input(1);
  ctx.check(x.dtype() == s.dtype(), "slope must have X's element type");
  std::vector<int64_t> dims = broadcastDims(ctx, {&x, &s});
  ctx.check(dims == x.dims(), "slope " + s.summary() + " does not broadcast (unidirectionally) to X " + x.summary());
  dispatchNumeric(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = ComputeT<T>;
    binaryMap<T, T, T>(ctx, x.dtype(), [](T v, T a) {
      if constexpr (std::is_unsigned_v<T>) return v;
      else return C(v) < C(0) ? mulW(a, v) : v;
    });
  });
}

void powKernel(KernelContext& ctx) {
  const DataType bt = ctx.input(0).dtype();
  dispatchNumeric(bt, [&](auto btag) {
    using T = typename decltype(btag)::type;
    dispatchNumeric(ctx.input(1).dtype(), [&](auto etag) {
      using E = typename decltype(etag)::type;
      binaryMap<T, E, T>(ctx, bt, [](T x, E y) { return powT(x, y); });
    });
  });
}

void bitShiftKernel(KernelContext& ctx) {
  const std::string dir = ctx.attrs().getString("direction", "");
  ctx.check(dir == "LEFT" || dir == "RIGHT", "attribute 'direction' is '" + dir + "', expected LEFT or RIGHT");
  const bool left = dir == "LEFT";
  requireSameType(ctx);
  dispatchInt(ctx.input(0).dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using U = std::make_unsigned_t<T>;
    binaryMap<T, T, T>(ctx, ctx.input(0).dtype(), [left](T x, T n) {
      const uint64_t k = uint64_t(n);
      if (k >= sizeof(T) * 8) return T(0);
      return left ? T(U(U(x) << k)) : T(U(U(x) >> k));
    });
  });
}

}  // namespace

void registerArithmetic(KernelRegistry& r) {
  r.add("Add", sameTypeBinary([](auto x, auto y) { return addW(x, y); }));
  r.add("Sub", sameTypeBinary([](auto x, auto y) { return subW(x, y); }));
  r.add("Mul", sameTypeBinary([](auto x, auto y) { return mulW(x, y); }));
  r.add("Div", sameTypeBinary([](auto x, auto y) { return divT(x, y); }));
  r.add("Mod", [](KernelContext& ctx) {
    const int64_t fmod = ctx.attrs().getInt("fmod", 0);
    ctx.check(fmod == 0 || fmod == 1, "attribute 'fmod' must be 0 or 1");
    sameTypeBinary([fmod](auto x, auto y) { return modT(x, y, fmod == 1); })(ctx);
  });
  r.add("Pow", powKernel);
  r.add("PRelu", preluKernel);
  r.add("BitShift", bitShiftKernel);
  r.add("BitwiseAnd", bitwise([](auto x, auto y) { return x & y; }));
  r.add("BitwiseOr", bitwise([](auto x, auto y) { return x | y; }));
  r.add("BitwiseXor", bitwise([](auto x, auto y) { return x ^ y; }));

  r.add("Equal", comparison([](const auto& x, const auto& y) { return x == y; }, true));
  r.add("Greater", comparison([](const auto& x, const auto& y) { return x > y; }, false));
  r.add("GreaterOrEqual", comparison([](const auto& x, const auto& y) { return x >= y; }, false));
  r.add("Less", comparison([](const auto& x, const auto& y) { return x < y; }, false));
  r.add("LessOrEqual", comparison([](const auto& x, const auto& y) { return x <= y; }, false));
  r.add("And", logical([](bool x, bool y) { return x && y; }));
  r.add("Or", logical([](bool x, bool y) { return x || y; }));
  r.add("Xor", logical([](bool x, bool y) { return x != y; }));

  r.add("Max", [](KernelContext& ctx) { variadicFold(ctx, [](auto a, auto b) { return maxC(a, b); }, false); });
  r.add("Min", [](KernelContext& ctx) { variadicFold(ctx, [](auto a, auto b) { return minC(a, b); }, false); });
  r.add("Sum", [](KernelContext& ctx) { variadicFold(ctx, [](auto a, auto b) { return addW(a, b); }, false); });
  r.add("Mean", [](KernelContext& ctx) { variadicFold(ctx, [](auto a, auto b) { return addW(a, b); }, true); });

  r.add("Where", whereKernel);
  r.add("Clip", clipKernel);
}

}  // namespace ew

void registerElementwiseKernels(KernelRegistry& r) {
  ew::registerArithmetic(r);
  ew::registerMath(r);
  ew::registerCast(r);
}

}  // namespace anvil::cpu::kernels
