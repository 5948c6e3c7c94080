// Native elementwise kernels: binary arithmetic, comparisons and logic with numpy
// broadcasting, Where, the f32 unary math and activations (Clip included), Not and Cast.
// Numerics follow the reference kernels (cpu/kernels/elementwise*.cpp) formula for
// formula, in the same compute type, so results are bitwise equal to them; inner loops
// run over contiguous or broadcast runs that GCC vectorizes where the math allows.
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "cpu/tactics/native_ops_util.h"
#include "cpu/tactics/native_sequence_util.h"

// GCC 12's -O2 vectorizes a loop only when no scalar remainder is left (its "very cheap"
// cost model); the loops here run over arbitrary extents, so this file asks for the
// dynamic model (per-element IEEE operations: results do not change).
#pragma GCC optimize("vect-cost-model=dynamic")

namespace anvil::runtime::nops {

namespace {

// Elements per task: below this a thread costs more than it saves (anvil.FusedElementwise
// splits short programs by the same grain).
constexpr int64_t kGrain = seq::kElementwiseGrain;

// ---- binary --------------------------------------------------------------------------

enum class Bin : int32_t { kAdd, kSub, kMul, kDiv, kPow, kEqual, kGreater, kLess, kGreaterEq, kLessEq, kAnd, kOr, kXor };

struct BinParams {
  Bin op;
};

template <typename O, typename T, typename F>
inline void binaryRun(O* __restrict z, const T* __restrict x, int64_t sx, const T* __restrict y, int64_t sy, int64_t n,
                      F f) {
  if (sx == 1 && sy == 1) {
    for (int64_t i = 0; i < n; ++i) z[i] = f(x[i], y[i]);
  } else if (sx == 0 && sy == 1) {
    const T s = x[0];
    for (int64_t i = 0; i < n; ++i) z[i] = f(s, y[i]);
  } else if (sx == 1 && sy == 0) {
    const T s = y[0];
    for (int64_t i = 0; i < n; ++i) z[i] = f(x[i], s);
  } else {
    for (int64_t i = 0; i < n; ++i) z[i] = f(x[i * sx], y[i * sy]);
  }
}

template <typename T, typename O, typename F>
void broadcastBinary(const StepArgs& a, F f) {
  const TensorView* ins[2] = {&a.in(0), &a.in(1)};
  BroadcastPlan<2> p;
  if (!p.make(a.out(0), ins)) a.fail("inputs do not broadcast to the output's extents");
  const T* x = a.in(0).as<const T>();
  const T* y = a.in(1).as<const T>();
  O* z = a.out(0).as<O>();
  parallelRange(a.executor, p.numel, kGrain, [&](int64_t b, int64_t e) {
    p.forRuns(b, e, [&](int64_t o, const int64_t* off, int64_t len, const int64_t* st) {
      binaryRun(z + o, x + off[0], st[0], y + off[1], st[1], len, f);
    });
  });
}

// Integer + - * wrap (numpy), done in the unsigned type; Div truncates, x/0 = 0.
template <typename T>
using U = std::make_unsigned_t<T>;

template <typename T>
void arithmetic(const StepArgs& a, Bin op) {
  if constexpr (std::is_floating_point_v<T>) {
    switch (op) {
      case Bin::kAdd: return broadcastBinary<T, T>(a, [](T x, T y) { return T(x + y); });
      case Bin::kSub: return broadcastBinary<T, T>(a, [](T x, T y) { return T(x - y); });
      case Bin::kMul: return broadcastBinary<T, T>(a, [](T x, T y) { return T(x * y); });
      case Bin::kDiv: return broadcastBinary<T, T>(a, [](T x, T y) { return T(x / y); });
      case Bin::kPow:
        // The reference computes pow in double; x*x is that value rounded once as well.
        return broadcastBinary<T, T>(a, [](T x, T y) { return y == T(2) ? T(x * x) : T(std::pow(double(x), double(y))); });
      default: break;
    }
  } else {
    switch (op) {
      case Bin::kAdd: return broadcastBinary<T, T>(a, [](T x, T y) { return T(U<T>(x) + U<T>(y)); });
      case Bin::kSub: return broadcastBinary<T, T>(a, [](T x, T y) { return T(U<T>(x) - U<T>(y)); });
      case Bin::kMul: return broadcastBinary<T, T>(a, [](T x, T y) { return T(U<T>(x) * U<T>(y)); });
      case Bin::kDiv:
        return broadcastBinary<T, T>(a, [](T x, T y) {
          if (y == 0) return T(0);
          if (y == T(-1)) return T(U<T>(0) - U<T>(x));  // INT_MIN / -1 would trap
          return T(x / y);
        });
      default: break;
    }
  }
  a.fail("unsupported arithmetic op");
}

template <typename T>
void comparison(const StepArgs& a, Bin op) {
  switch (op) {
    case Bin::kEqual: return broadcastBinary<T, bool>(a, [](T x, T y) { return x == y; });
    case Bin::kGreater: return broadcastBinary<T, bool>(a, [](T x, T y) { return x > y; });
    case Bin::kLess: return broadcastBinary<T, bool>(a, [](T x, T y) { return x < y; });
    case Bin::kGreaterEq: return broadcastBinary<T, bool>(a, [](T x, T y) { return x >= y; });
    case Bin::kLessEq: return broadcastBinary<T, bool>(a, [](T x, T y) { return x <= y; });
    default: a.fail("unsupported comparison");
  }
}

void logical(const StepArgs& a, Bin op) {
  switch (op) {
    case Bin::kAnd: return broadcastBinary<bool, bool>(a, [](bool x, bool y) { return x && y; });
    case Bin::kOr: return broadcastBinary<bool, bool>(a, [](bool x, bool y) { return x || y; });
    case Bin::kXor: return broadcastBinary<bool, bool>(a, [](bool x, bool y) { return x != y; });
    default: a.fail("unsupported logical op");
  }
}

bool isArith(Bin op) { return op <= Bin::kPow; }
bool isCompare(Bin op) { return op >= Bin::kEqual && op <= Bin::kLessEq; }

void binaryKernel(const StepArgs& a) {
  const Bin op = a.paramsAs<BinParams>().op;
  const DataType t = a.in(0).dtype;
  if (isArith(op)) {
    switch (t) {
      case DataType::kF32: return arithmetic<float>(a, op);
      case DataType::kI32: return arithmetic<int32_t>(a, op);
      case DataType::kI64: return arithmetic<int64_t>(a, op);
      default: break;
    }
  } else if (isCompare(op)) {
    switch (t) {
      case DataType::kF32: return comparison<float>(a, op);
      case DataType::kI32: return comparison<int32_t>(a, op);
      case DataType::kI64: return comparison<int64_t>(a, op);
      case DataType::kBool: return comparison<bool>(a, op);
      default: break;
    }
  } else if (t == DataType::kBool) {
    return logical(a, op);
  }
  a.fail("unsupported element type");
}

bool binarySupports(Bin op, const std::vector<ir::TensorType>& t) {
  if (t.size() != 2 || !hasType(t, 0) || t[0].dtype != t[1].dtype) return false;
  if (rankOf(t, 0) < 0 || rankOf(t, 1) < 0) return false;
  const DataType d = t[0].dtype;
  if (op == Bin::kPow) return d == DataType::kF32;
  if (isArith(op)) return d == DataType::kF32 || d == DataType::kI32 || d == DataType::kI64;
  if (isCompare(op))
    return d == DataType::kF32 || d == DataType::kI32 || d == DataType::kI64 || (d == DataType::kBool && op == Bin::kEqual);
  return d == DataType::kBool;
}

// ---- Where ---------------------------------------------------------------------------

template <typename T>
void whereTyped(const StepArgs& a) {
  const TensorView* ins[3] = {&a.in(0), &a.in(1), &a.in(2)};
  BroadcastPlan<3> p;
  if (!p.make(a.out(0), ins)) a.fail("inputs do not broadcast to the output's extents");
  const bool* c = a.in(0).as<const bool>();
  const T* x = a.in(1).as<const T>();
  const T* y = a.in(2).as<const T>();
  T* z = a.out(0).as<T>();
  parallelRange(a.executor, p.numel, kGrain, [&](int64_t b, int64_t e) {
    p.forRuns(b, e, [&](int64_t o, const int64_t* off, int64_t len, const int64_t* st) {
      const bool* __restrict cc = c + off[0];
      const T* __restrict xx = x + off[1];
      const T* __restrict yy = y + off[2];
      T* __restrict zz = z + o;
      if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
        for (int64_t i = 0; i < len; ++i) zz[i] = cc[i] ? xx[i] : yy[i];
      } else {
        for (int64_t i = 0; i < len; ++i) zz[i] = cc[i * st[0]] ? xx[i * st[1]] : yy[i * st[2]];
      }
    });
  });
}

void whereKernel(const StepArgs& a) {
  // Where copies elements: only their size matters.
  switch (elemBytes(a.in(1).dtype)) {
    case 1: return whereTyped<uint8_t>(a);
    case 2: return whereTyped<uint16_t>(a);
    case 4: return whereTyped<uint32_t>(a);
    case 8: return whereTyped<uint64_t>(a);
    default: a.fail("unsupported element type");
  }
}

bool whereSupports(const std::vector<ir::TensorType>& t) {
  if (t.size() != 3 || t[0].dtype != DataType::kBool || !plainBytes(t[1].dtype) || t[1].dtype != t[2].dtype) return false;
  const size_t e = elemBytes(t[1].dtype);
  return (e == 1 || e == 2 || e == 4 || e == 8) && rankOf(t, 0) >= 0 && rankOf(t, 1) >= 0 && rankOf(t, 2) >= 0;
}

// ---- unary f32 -----------------------------------------------------------------------

enum class Un : int32_t {
  kRelu, kSigmoid, kTanh, kErf, kSqrt, kExp, kLog, kNeg, kAbs, kReciprocal, kHardSwish, kHardSigmoid, kLeakyRelu,
  kGelu, kGeluTanh, kSoftplus, kClip, kFloor, kCeil
};

struct UnParams {
  Un op;
  float alpha = 0, beta = 0;
};

template <typename F>
void mapF32(const StepArgs& a, F f) {
  const float* x = a.in(0).as<const float>();
  float* y = a.out(0).as<float>();
  parallelRange(a.executor, a.out(0).numel(), kGrain, [&](int64_t b, int64_t e) {
    const float* __restrict xx = x;
    float* __restrict yy = y;
    for (int64_t i = b; i < e; ++i) yy[i] = f(xx[i]);
  });
}

float sigmoidF(float x) {
  if (x >= 0.f) return 1.f / (1.f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.f + e);
}

void unaryKernel(const StepArgs& a) {
  const UnParams& p = a.paramsAs<UnParams>();
  if (a.in(0).numel() != a.out(0).numel()) a.fail("input and output differ in size");
  const float alpha = p.alpha, beta = p.beta;
  switch (p.op) {
    case Un::kRelu: return mapF32(a, [](float x) { return x < 0.f ? 0.f : x; });
    case Un::kSigmoid: return mapF32(a, sigmoidF);
    case Un::kTanh: return mapF32(a, [](float x) { return std::tanh(x); });
    case Un::kErf: return mapF32(a, [](float x) { return std::erf(x); });
    case Un::kSqrt: return mapF32(a, [](float x) { return std::sqrt(x); });
    case Un::kExp: return mapF32(a, [](float x) { return std::exp(x); });
    case Un::kLog: return mapF32(a, [](float x) { return std::log(x); });
    case Un::kNeg: return mapF32(a, [](float x) { return -x; });
    case Un::kAbs: return mapF32(a, [](float x) { return std::fabs(x); });
    case Un::kReciprocal: return mapF32(a, [](float x) { return 1.f / x; });
    case Un::kFloor: return mapF32(a, [](float x) { return std::floor(x); });
    case Un::kCeil: return mapF32(a, [](float x) { return std::ceil(x); });
    case Un::kHardSwish: return mapF32(a, [](float x) { return x * std::fmax(0.f, std::fmin(1.f, x / 6.f + 0.5f)); });
    case Un::kHardSigmoid:
      return mapF32(a, [=](float x) { return std::fmax(0.f, std::fmin(1.f, alpha * x + beta)); });
    case Un::kLeakyRelu: return mapF32(a, [=](float x) { return seq::negativeSelect(x, alpha * x); });
    case Un::kGelu:
      return mapF32(a, [](float x) { return 0.5f * x * (1.f + std::erf(x * 0.70710678118654752440f)); });
    case Un::kGeluTanh:
      return mapF32(a, [](float x) {
        const float k = 0.79788456080286535588f;  // sqrt(2 / pi)
        return 0.5f * x * (1.f + std::tanh(k * (x + 0.044715f * x * x * x)));
      });
    case Un::kSoftplus:
      return mapF32(a, [](float x) { return x > 0.f ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); });
    case Un::kClip: {
      // Bounds may be computed values: read them at run time. An absent bound never clips;
      // NaN compares false and stays, and min > max gives max (as the reference).
      const bool hasLo = a.hasInput(1), hasHi = a.hasInput(2);
      const float lo = hasLo ? a.in(1).as<const float>()[0] : 0.f;
      const float hi = hasHi ? a.in(2).as<const float>()[0] : 0.f;
      if (hasLo && hasHi) return mapF32(a, [=](float x) {
          float c = x < lo ? lo : x;
          return c > hi ? hi : c;
        });
      if (hasLo) return mapF32(a, [=](float x) { return x < lo ? lo : x; });
      if (hasHi) return mapF32(a, [=](float x) { return x > hi ? hi : x; });
      return mapF32(a, [](float x) { return x; });
    }
  }
  a.fail("unsupported unary op");
}

bool unarySupports(Un op, const ir::Node& n, const std::vector<ir::TensorType>& t) {
  if (t.empty() || t[0].dtype != DataType::kF32) return false;
  if (op == Un::kClip) {
    if (n.attrs().has("min") || n.attrs().has("max")) return false;  // opset < 11 form
    for (size_t i = 1; i < t.size() && i < 3; ++i)
      if (hasType(t, i) && (t[i].dtype != DataType::kF32 || t[i].shape.numel() != 1)) return false;
  }
  if (op == Un::kGelu) {
    const std::string ap = n.attrs().getString("approximate", "none");
    if (ap != "none" && ap != "tanh") return false;
  }
  return true;
}

void notKernel(const StepArgs& a) {
  const bool* x = a.in(0).as<const bool>();
  bool* y = a.out(0).as<bool>();
  parallelRange(a.executor, a.out(0).numel(), kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = !x[i];
  });
}

// ---- Cast ----------------------------------------------------------------------------

// A double to an integer type as the reference converts: truncated, NaN -> 0, saturated
// to int64 (uint64 keeps its upper half) and then wrapped to T.
template <typename T>
T doubleToInt(double v) {
  if (std::isnan(v)) return T(0);
  v = std::trunc(v);
  if constexpr (std::is_same_v<T, uint64_t>) {
    if (v >= 9223372036854775808.0) return v >= 18446744073709551616.0 ? ~uint64_t(0) : uint64_t(v);
  }
  if (v >= 9223372036854775807.0) return T(INT64_MAX);
  if (v <= -9223372036854775808.0) return T(INT64_MIN);
  return T(int64_t(v));
}

template <typename S, typename D>
inline D convert(S x) {
  constexpr bool intS = std::is_integral_v<S> && !std::is_same_v<S, bool>;
  constexpr bool intD = std::is_integral_v<D> && !std::is_same_v<D, bool>;
  if constexpr (std::is_same_v<D, bool>) {
    return x != S(0);  // NaN is true, as numpy
  } else if constexpr (std::is_same_v<S, bool>) {
    return D(x ? 1 : 0);
  } else if constexpr (intD) {
    if constexpr (intS) return D(x);  // modular
    else return doubleToInt<D>(double(x));
  } else if constexpr (std::is_same_v<D, double>) {
    return double(x);
  } else {
    return D(float(x));
  }
}

struct CastParams {
  DataType from, to;
};

template <typename S, typename D>
void castTyped(const StepArgs& a) {
  const S* x = a.in(0).as<const S>();
  D* y = a.out(0).as<D>();
  parallelRange(a.executor, a.out(0).numel(), kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = convert<S, D>(x[i]);
  });
}

template <typename S>
void castFrom(const StepArgs& a, DataType to) {
  switch (to) {
    case DataType::kBool: return castTyped<S, bool>(a);
    case DataType::kU8: return castTyped<S, uint8_t>(a);
    case DataType::kI8: return castTyped<S, int8_t>(a);
    case DataType::kI32: return castTyped<S, int32_t>(a);
    case DataType::kI64: return castTyped<S, int64_t>(a);
    case DataType::kF32: return castTyped<S, float>(a);
    case DataType::kF64: return castTyped<S, double>(a);
    default: a.fail("unsupported cast target");
  }
}

void castKernel(const StepArgs& a) {
  const CastParams& p = a.paramsAs<CastParams>();
  if (p.from == p.to) {
    std::memcpy(a.out(0).data, a.in(0).data, a.out(0).bytes());
    return;
  }
  switch (p.from) {
    case DataType::kBool: return castFrom<bool>(a, p.to);
    case DataType::kU8: return castFrom<uint8_t>(a, p.to);
    case DataType::kI8: return castFrom<int8_t>(a, p.to);
    case DataType::kI32: return castFrom<int32_t>(a, p.to);
    case DataType::kI64: return castFrom<int64_t>(a, p.to);
    case DataType::kF32: return castFrom<float>(a, p.to);
    case DataType::kF64: return castFrom<double>(a, p.to);
    default: a.fail("unsupported cast source");
  }
}

bool castable(DataType t) {
  switch (t) {
    case DataType::kBool: case DataType::kU8: case DataType::kI8: case DataType::kI32: case DataType::kI64:
    case DataType::kF32: case DataType::kF64:
      return true;
    default:
      return false;
  }
}

Kernel base(const std::string& name, const std::string& op, DataType precision) {
  Kernel k;
  k.name = name;
  k.version = 1;
  k.op = op;
  k.domain = "";
  k.precision = precision;
  return k;
}

}  // namespace

void registerElementwise(Kernels& k) {
  const std::pair<const char*, Bin> bins[] = {
      {"Add", Bin::kAdd},         {"Sub", Bin::kSub},         {"Mul", Bin::kMul},      {"Div", Bin::kDiv},
      {"Pow", Bin::kPow},         {"Equal", Bin::kEqual},     {"Greater", Bin::kGreater}, {"Less", Bin::kLess},
      {"GreaterOrEqual", Bin::kGreaterEq}, {"LessOrEqual", Bin::kLessEq}, {"And", Bin::kAnd}, {"Or", Bin::kOr},
      {"Xor", Bin::kXor}};
  for (const auto& [op, b] : bins) {
    // One kernel per op serves f32 and the integer types: the name says it broadcasts.
    Kernel kn = base("x_binary_broadcast", op, DataType::kUndefined);
    const Bin which = b;
    kn.supports = [which](const ir::Node&, const std::vector<ir::TensorType>& t) { return binarySupports(which, t); };
    kn.prepare = [which](const PrepareInfo&, Prepared* p) { p->setParams(BinParams{which}); };
    kn.run = binaryKernel;
    k.add(std::move(kn));
  }

  Kernel w = base("x_where_broadcast", "Where", DataType::kUndefined);
  w.supports = [](const ir::Node&, const std::vector<ir::TensorType>& t) { return whereSupports(t); };
  w.run = whereKernel;
  k.add(std::move(w));

  const std::pair<const char*, Un> uns[] = {
      {"Relu", Un::kRelu},       {"Sigmoid", Un::kSigmoid},   {"Tanh", Un::kTanh},   {"Erf", Un::kErf},
      {"Sqrt", Un::kSqrt},       {"Exp", Un::kExp},           {"Log", Un::kLog},     {"Neg", Un::kNeg},
      {"Abs", Un::kAbs},         {"Reciprocal", Un::kReciprocal}, {"HardSwish", Un::kHardSwish},
      {"HardSigmoid", Un::kHardSigmoid}, {"LeakyRelu", Un::kLeakyRelu}, {"Gelu", Un::kGelu},
      {"Softplus", Un::kSoftplus}, {"Clip", Un::kClip},       {"Floor", Un::kFloor}, {"Ceil", Un::kCeil}};
  for (const auto& [op, u] : uns) {
    Kernel kn = base("f32_unary", op, DataType::kF32);
    const Un which = u;
    kn.supports = [which](const ir::Node& n, const std::vector<ir::TensorType>& t) { return unarySupports(which, n, t); };
    kn.prepare = [which](const PrepareInfo& info, Prepared* p) {
      const ir::Attributes& at = info.node->attrs();
      UnParams up{which};
      if (which == Un::kHardSigmoid) {
        up.alpha = at.getFloat("alpha", 0.2f);
        up.beta = at.getFloat("beta", 0.5f);
      } else if (which == Un::kLeakyRelu) {
        up.alpha = at.getFloat("alpha", 0.01f);
      } else if (which == Un::kGelu && at.getString("approximate", "none") == "tanh") {
        up.op = Un::kGeluTanh;
      }
      p->setParams(up);
    };
    kn.run = unaryKernel;
    k.add(std::move(kn));
  }

  Kernel nt = base("b8_not", "Not", DataType::kUndefined);
  nt.supports = [](const ir::Node&, const std::vector<ir::TensorType>& t) {
    return !t.empty() && t[0].dtype == DataType::kBool;
  };
  nt.run = notKernel;
  k.add(std::move(nt));

  Kernel c = base("x_cast", "Cast", DataType::kUndefined);
  c.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& t) {
    return !t.empty() && castable(t[0].dtype) && n.attrs().has("to") && castable(DataType(n.attrs().getInt("to", 0)));
  };
  c.prepare = [](const PrepareInfo& info, Prepared* p) {
    p->setParams(CastParams{info.maxTypes[0].dtype, DataType(info.node->attrs().getInt("to", 0))});
  };
  c.run = castKernel;
  k.add(std::move(c));
}

}  // namespace anvil::runtime::nops
