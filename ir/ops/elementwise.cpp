// Schemas and shape inference of the elementwise family: arithmetic, math, comparisons,
// logic, bit ops, activations, Clip, Where and Cast.
//
// Besides types and shapes, inference folds small integer/float tensors whose data is
// known at build time (shape arithmetic: Shape -> Gather -> Mul -> Concat -> Reshape) and
// carries symbolic shape values through Cast and the four arithmetic ops, so that
// downstream shape inputs stay known.
#include <algorithm>
#include <cmath>
#include <functional>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>

#include "ir/op_schema.h"
#include "ir/ops/families.h"
#include "ir/ops/infer_util.h"

namespace anvil::ir::ops {

namespace {

// ---- element type sets ----------------------------------------------------------------

constexpr uint32_t bit(DataType t) { return 1u << int(t); }
constexpr uint32_t kFloatT = bit(DataType::kF32) | bit(DataType::kF64) | bit(DataType::kF16) | bit(DataType::kBF16);
constexpr uint32_t kSignedT = bit(DataType::kI8) | bit(DataType::kI16) | bit(DataType::kI32) | bit(DataType::kI64);
constexpr uint32_t kUnsignedT = bit(DataType::kU8) | bit(DataType::kU16) | bit(DataType::kU32) | bit(DataType::kU64);
constexpr uint32_t kIntT = kSignedT | kUnsignedT;
constexpr uint32_t kNumT = kFloatT | kIntT;
constexpr uint32_t kBoolT = bit(DataType::kBool);
constexpr uint32_t kStringT = bit(DataType::kString);
constexpr uint32_t kF8T = bit(DataType::kF8E4M3FN) | bit(DataType::kF8E4M3FNUZ) | bit(DataType::kF8E5M2) |
                          bit(DataType::kF8E5M2FNUZ);
constexpr uint32_t kCastT = kNumT | kBoolT | kStringT | kF8T | bit(DataType::kU4) | bit(DataType::kI4) |
                            bit(DataType::kF4E2M1);

std::string typeList(uint32_t mask) {
  std::string s;
  for (int t = 1; t <= kMaxDataType; ++t)
    if (mask & (1u << t)) s += std::string(s.empty() ? "" : ", ") + dtypeName(DataType(t));
  return s;
}

void checkType(const InferContext& c, size_t i, uint32_t mask) {
  DataType t = c.inputDtype(i);
  if (int(t) < 0 || int(t) > kMaxDataType || !(mask & bit(t)))
    c.fail("input " + std::to_string(i) + " is " + dtypeName(t) + ", expected one of " + typeList(mask));
}

// Every present input has input 0's element type.
void checkSameTypes(const InferContext& c, size_t first = 0) {
  DataType t0 = DataType::kUndefined;
  for (size_t i = first; i < c.numInputs(); ++i) {
    if (!c.hasInput(i)) continue;
    if (t0 == DataType::kUndefined) {
      t0 = c.inputDtype(i);
    } else if (c.inputDtype(i) != t0) {
      c.fail(std::string("inputs must have one element type, got ") + dtypeName(t0) + " and " +
             dtypeName(c.inputDtype(i)) + " (input " + std::to_string(i) + ")");
    }
  }
}

// ---- build-time folding of small known tensors ------------------------------------------

constexpr int64_t kMaxFoldElements = 4096;

bool foldable(DataType t) { return (kNumT | kBoolT) & bit(t); }

// Writes an integer value into element i with the target's modular (C++20) conversion.
void storeInt(Tensor& t, int64_t i, int64_t v) {
  switch (t.dtype()) {
    case DataType::kI8: t.data<int8_t>()[i] = int8_t(v); break;
    case DataType::kU8: t.data<uint8_t>()[i] = uint8_t(v); break;
    case DataType::kI16: t.data<int16_t>()[i] = int16_t(v); break;
    case DataType::kU16: t.data<uint16_t>()[i] = uint16_t(v); break;
    case DataType::kI32: t.data<int32_t>()[i] = int32_t(v); break;
    case DataType::kU32: t.data<uint32_t>()[i] = uint32_t(v); break;
    case DataType::kI64: t.data<int64_t>()[i] = v; break;
    case DataType::kU64: t.data<uint64_t>()[i] = uint64_t(v); break;
    case DataType::kBool: t.data<uint8_t>()[i] = v != 0; break;
    default: t.setDouble(i, double(v)); break;
  }
}

// A scalar of a fold: exact int64 for integer/bool tensors, double for floats.
struct Num {
  bool isInt;
  int64_t i;
  double d;
  double asDouble() const { return isInt ? double(i) : d; }
};

Num loadNum(const Tensor& t, int64_t i) {
  if (isFloat(t.dtype())) return {false, 0, t.getDouble(i)};
  return {true, t.getInt(i), 0.0};
}

void storeNum(Tensor& t, int64_t i, const Num& v) {
  if (isFloat(t.dtype())) {
    t.setDouble(i, v.asDouble());
  } else if (v.isInt) {
    storeInt(t, i, v.i);
  } else {
    double d = v.d;
    if (std::isnan(d)) d = 0;
    d = std::trunc(std::fmax(std::fmin(d, 9.2e18), -9.2e18));
    storeInt(t, i, int64_t(d));
  }
}

// Element offsets of `in` broadcast to `out` (both static extents).
int64_t bcastOffset(const std::vector<int64_t>& in, const std::vector<int64_t>& out, int64_t flat) {
  int64_t off = 0, stride = 1;
  for (size_t k = 0; k < out.size(); ++k) {
    size_t d = out.size() - 1 - k;
    int64_t pos = flat % out[d];
    flat /= out[d];
    if (k < in.size()) {
      int64_t e = in[in.size() - 1 - k];
      if (e != 1) off += pos * stride;
      stride *= e;
    }
  }
  return off;
}

using FoldFn = std::function<Num(const std::vector<Num>&)>;

// Folds when every present input is known, foldable and small; output dtype `out`.
void tryFold(InferContext& c, DataType out, const FoldFn& fn) {
  if (!foldable(out)) return;
  std::vector<const Tensor*> ins;
  std::vector<int64_t> dims;
  bool first = true;
  for (size_t i = 0; i < c.numInputs(); ++i) {
    if (!c.hasInput(i)) {
      ins.push_back(nullptr);
      continue;
    }
    const Tensor* t = c.inputValue(i);
    if (!t || !foldable(t->dtype()) || t->numel() > kMaxFoldElements) return;
    try {
      dims = first ? t->dims() : broadcastExtents(dims, t->dims());
    } catch (const Error&) {
      return;  // shape inference reports the mismatch
    }
    first = false;
    ins.push_back(t);
  }
  if (first || numelOf(dims) > kMaxFoldElements) return;
  Tensor o(out, dims);
  std::vector<Num> args(ins.size());
  for (int64_t k = 0; k < o.numel(); ++k) {
    for (size_t j = 0; j < ins.size(); ++j)
      args[j] = ins[j] ? loadNum(*ins[j], bcastOffset(ins[j]->dims(), dims, k)) : Num{true, 0, 0};
    storeNum(o, k, fn(args));
  }
  c.setOutputValue(0, std::move(o));
}

int64_t wrapAdd(int64_t a, int64_t b) { return int64_t(uint64_t(a) + uint64_t(b)); }
int64_t wrapSub(int64_t a, int64_t b) { return int64_t(uint64_t(a) - uint64_t(b)); }
int64_t wrapMul(int64_t a, int64_t b) { return int64_t(uint64_t(a) * uint64_t(b)); }

Num arith(char op, const Num& a, const Num& b) {
  if (a.isInt && b.isInt) {
    switch (op) {
      case '+': return {true, wrapAdd(a.i, b.i), 0};
      case '-': return {true, wrapSub(a.i, b.i), 0};
      case '*': return {true, wrapMul(a.i, b.i), 0};
      case '/':
        if (b.i == 0) return {true, 0, 0};
        if (b.i == -1) return {true, wrapSub(0, a.i), 0};
        return {true, a.i / b.i, 0};
      case '%': {  // Python semantics (sign of the divisor)
        if (b.i == 0 || b.i == -1) return {true, 0, 0};
        int64_t r = a.i % b.i;
        if (r != 0 && ((r < 0) != (b.i < 0))) r += b.i;
        return {true, r, 0};
      }
      case '<': return {true, a.i < b.i ? a.i : b.i, 0};  // min
      case '>': return {true, a.i > b.i ? a.i : b.i, 0};  // max
    }
  }
  double x = a.asDouble(), y = b.asDouble();
  switch (op) {
    case '+': return {false, 0, x + y};
    case '-': return {false, 0, x - y};
    case '*': return {false, 0, x * y};
    case '/': return {false, 0, x / y};
    case '%': return {false, 0, std::fmod(x, y)};
    case '<': return {false, 0, (std::isnan(x) || std::isnan(y)) ? NAN : std::fmin(x, y)};
    default: return {false, 0, (std::isnan(x) || std::isnan(y)) ? NAN : std::fmax(x, y)};
  }
}

int cmp(const Num& a, const Num& b) {  // -1, 0, 1; 2 when unordered (NaN)
  if (a.isInt && b.isInt) return a.i < b.i ? -1 : a.i > b.i ? 1 : 0;
  double x = a.asDouble(), y = b.asDouble();
  if (std::isnan(x) || std::isnan(y)) return 2;
  return x < y ? -1 : x > y ? 1 : 0;
}

Num boolNum(bool v) { return {true, v ? 1 : 0, 0}; }

// Symbolic shape values through + - * / of 0-D/1-D integer inputs: static with static
// computes, a symbol with the identity (x*1, x/1, x+0, x-0) stays, anything else is unknown.
void shapeValueArith(InferContext& c, char op) {
  if (!isInteger(c.inputDtype(0)) || c.inputDtype(0) != c.inputDtype(1)) return;
  if (!c.inputShapeValue(0) && !c.inputShapeValue(1)) return;
  auto a = knownDims(c, 0), b = knownDims(c, 1);
  if (!a || !b) return;
  if (a->size() != b->size() && a->size() != 1 && b->size() != 1) return;
  const size_t n = std::max(a->size(), b->size());
  std::vector<Dim> out;
  for (size_t k = 0; k < n; ++k) {
    const Dim& x = (*a)[a->size() == 1 ? 0 : k];
    const Dim& y = (*b)[b->size() == 1 ? 0 : k];
    if (x.isStatic() && y.isStatic()) {
      Num r = arith(op, {true, x.value(), 0}, {true, y.value(), 0});
      out.push_back(r.i >= 0 ? Dim(r.i) : Dim());
    } else if (!x.isStatic() && y.isStatic() &&
               ((op == '*' || op == '/') ? y.value() == 1 : y.value() == 0)) {
      out.push_back(x);
    } else if (x.isStatic() && !y.isStatic() && ((op == '*' && x.value() == 1) || (op == '+' && x.value() == 0))) {
      out.push_back(y);
    } else {
      out.emplace_back();
    }
  }
  c.setOutputShapeValue(0, std::move(out));
}

// ---- Cast --------------------------------------------------------------------------------

DataType castTarget(const InferContext& c, int64_t to) {
  if (to <= 0 || to > kMaxDataType || !(kCastT & bit(DataType(to))))
    c.fail("attribute 'to' is " + std::to_string(to) + ", expected an ONNX element type anvil can cast to (" +
           typeList(kCastT) + ")");
  return DataType(to);
}

void inferCastTo(InferContext& c, DataType to) {
  checkType(c, 0, kCastT);
  c.setOutput(0, to, c.inputShape(0));
  const DataType from = c.inputDtype(0);
  if (isInteger(from) && isInteger(to)) {
    if (const auto* sv = c.inputShapeValue(0)) c.setOutputShapeValue(0, *sv);
  }
  if (foldable(from) && foldable(to)) {
    tryFold(c, to, [&](const std::vector<Num>& a) {
      if (to == DataType::kBool) return boolNum(a[0].isInt ? a[0].i != 0 : a[0].d != 0);
      return a[0];
    });
  }
}

// ---- registration helpers ----------------------------------------------------------------

void unary(OpRegistry& r, const char* name, uint32_t types, const char* summary) {
  r.add({.name = name, .minInputs = 1, .maxInputs = 1, .traits = kTraitElementwise,
         .infer = [types](InferContext& c) {
           checkType(c, 0, types);
           inferSameAsInput(c);
         },
         .summary = summary});
}

// Unary with a fold (for the cheap ops shape arithmetic uses).
void unaryFold(OpRegistry& r, const char* name, uint32_t types, std::function<Num(const Num&)> f,
               const char* summary) {
  r.add({.name = name, .minInputs = 1, .maxInputs = 1, .traits = kTraitElementwise,
         .infer = [types, f](InferContext& c) {
           checkType(c, 0, types);
           inferSameAsInput(c);
           tryFold(c, c.inputDtype(0), [&](const std::vector<Num>& a) { return f(a[0]); });
         },
         .summary = summary});
}

// Binary with one element type for both inputs; `outBool` for comparisons and logic.
void binary(OpRegistry& r, const char* name, uint32_t types, uint32_t extra, bool outBool, FoldFn fold,
            char shapeOp, const char* summary) {
  r.add({.name = name, .minInputs = 2, .maxInputs = 2,
         .traits = kTraitElementwise | kTraitBroadcast | extra,
         .infer = [=](InferContext& c) {
           checkType(c, 0, types);
           checkSameTypes(c);
           DataType out = outBool ? DataType::kBool : c.inputDtype(0);
           inferBroadcast(c, out);
           if (fold) tryFold(c, out, fold);
           if (shapeOp) shapeValueArith(c, shapeOp);
         },
         .summary = summary});
}

// Variadic with broadcasting (Max, Min, Sum, Mean).
void variadic(OpRegistry& r, const char* name, uint32_t types, FoldFn fold, const char* summary) {
  r.add({.name = name, .minInputs = 1, .maxInputs = -1,
         .traits = kTraitElementwise | kTraitBroadcast | kTraitCommutative,
         .infer = [=](InferContext& c) {
           for (size_t i = 0; i < c.numInputs(); ++i) c.check(c.hasInput(i), "variadic inputs may not be omitted");
           checkType(c, 0, types);
           checkSameTypes(c);
           inferBroadcast(c, c.inputDtype(0));
           if (fold) tryFold(c, c.inputDtype(0), fold);
         },
         .summary = summary});
}

FoldFn reduceFold(char op) {
  return [op](const std::vector<Num>& a) {
    Num acc = a[0];
    for (size_t i = 1; i < a.size(); ++i) acc = arith(op, acc, a[i]);
    return acc;
  };
}

FoldFn arithFold(char op) {
  return [op](const std::vector<Num>& a) { return arith(op, a[0], a[1]); };
}

FoldFn cmpFold(bool lt, bool eq, bool gt) {
  return [=](const std::vector<Num>& a) {
    int k = cmp(a[0], a[1]);
    return boolNum((k < 0 && lt) || (k == 0 && eq) || (k == 1 && gt));
  };
}

}  // namespace

void registerElementwiseOps(OpRegistry& r) {
  // Arithmetic. Integer Div truncates toward zero; Mod follows the fmod attribute.
  binary(r, "Add", kNumT, kTraitCommutative, false, arithFold('+'), '+', "a + b");
  binary(r, "Sub", kNumT, 0, false, arithFold('-'), '-', "a - b");
  binary(r, "Mul", kNumT, kTraitCommutative, false, arithFold('*'), '*', "a * b");
  binary(r, "Div", kNumT, 0, false, arithFold('/'), '/', "a / b (integers truncate toward zero)");
  r.add({.name = "Mod", .minInputs = 2, .maxInputs = 2, .traits = kTraitElementwise | kTraitBroadcast,
         .infer = [](InferContext& c) {
           checkType(c, 0, kNumT);
           checkSameTypes(c);
           int64_t fmod = c.attrs().getInt("fmod", 0);
           c.check(fmod == 0 || fmod == 1, "attribute 'fmod' is " + std::to_string(fmod) + ", expected 0 or 1");
           inferBroadcast(c, c.inputDtype(0));
           if (fmod == 0 && isInteger(c.inputDtype(0))) tryFold(c, c.inputDtype(0), arithFold('%'));
         },
         .summary = "a mod b: sign of the divisor (fmod=0, integers) or C fmod (fmod=1)"});
  r.add({.name = "Pow", .minInputs = 2, .maxInputs = 2, .traits = kTraitElementwise | kTraitBroadcast,
         .infer = [](InferContext& c) {
           checkType(c, 0, kNumT);
           checkType(c, 1, kNumT);
           inferBroadcast(c, c.inputDtype(0));
         },
         .summary = "a ** b in a's type (b may have another type)"});
  r.add({.name = "PRelu", .minInputs = 2, .maxInputs = 2, .traits = kTraitElementwise | kTraitBroadcast,
         .infer = [](InferContext& c) {
           checkType(c, 0, kNumT);
           checkSameTypes(c);
           const Shape& x = c.inputShape(0);
           const Shape& s = c.inputShape(1);
           if (x.rankKnown() && s.rankKnown()) {
             c.check(s.rank() <= x.rank(), "slope of shape " + s.str() + " does not broadcast to X of shape " + x.str());
             for (size_t k = 0; k < s.rank(); ++k) {
               const Dim& sd = s[s.rank() - 1 - k];
               const Dim& xd = x[x.rank() - 1 - k];
               if (sd.isStatic() && sd.value() != 1 && xd.isStatic() && xd.value() != sd.value())
                 c.fail("slope of shape " + s.str() + " does not broadcast to X of shape " + x.str());
             }
           }
           inferSameAsInput(c);
         },
         .summary = "x < 0 ? slope * x : x (slope broadcast to x)"});

  // Comparisons and logic (bool results).
  binary(r, "Equal", kNumT | kBoolT | kStringT, kTraitCommutative, true, cmpFold(false, true, false), 0, "a == b");
  binary(r, "Greater", kNumT | kBoolT, 0, true, cmpFold(false, false, true), 0, "a > b");
  binary(r, "GreaterOrEqual", kNumT | kBoolT, 0, true, cmpFold(false, true, true), 0, "a >= b");
  binary(r, "Less", kNumT | kBoolT, 0, true, cmpFold(true, false, false), 0, "a < b");
  binary(r, "LessOrEqual", kNumT | kBoolT, 0, true, cmpFold(true, true, false), 0, "a <= b");
  binary(r, "And", kBoolT, kTraitCommutative, true,
         [](const std::vector<Num>& a) { return boolNum(a[0].i && a[1].i); }, 0, "a && b");
  binary(r, "Or", kBoolT, kTraitCommutative, true,
         [](const std::vector<Num>& a) { return boolNum(a[0].i || a[1].i); }, 0, "a || b");
  binary(r, "Xor", kBoolT, kTraitCommutative, true,
         [](const std::vector<Num>& a) { return boolNum((a[0].i != 0) != (a[1].i != 0)); }, 0, "a != b");
  unaryFold(r, "Not", kBoolT, [](const Num& a) { return boolNum(a.i == 0); }, "!x");
  // Bit ops.
  binary(r, "BitShift", kIntT, 0, false, nullptr, 0, "x << n or x >> n (direction attribute)");
  binary(r, "BitwiseAnd", kIntT | kBoolT, kTraitCommutative, false, nullptr, 0, "a & b");
  binary(r, "BitwiseOr", kIntT | kBoolT, kTraitCommutative, false, nullptr, 0, "a | b");
  binary(r, "BitwiseXor", kIntT | kBoolT, kTraitCommutative, false, nullptr, 0, "a ^ b");
  unary(r, "BitwiseNot", kIntT | kBoolT, "~x");

  // Variadic with broadcasting.
  variadic(r, "Max", kNumT, reduceFold('>'), "elementwise maximum (NaN propagates)");
  variadic(r, "Min", kNumT, reduceFold('<'), "elementwise minimum (NaN propagates)");
  variadic(r, "Sum", kNumT, reduceFold('+'), "elementwise sum");
  variadic(r, "Mean", kNumT, nullptr, "elementwise mean");

  // Sign-aware unary ops shape arithmetic may use.
  unaryFold(r, "Abs", kNumT, [](const Num& a) { return a.isInt ? Num{true, a.i < 0 ? wrapSub(0, a.i) : a.i, 0}
                                                              : Num{false, 0, std::fabs(a.d)}; }, "|x|");
  unaryFold(r, "Neg", kSignedT | kFloatT, [](const Num& a) { return a.isInt ? Num{true, wrapSub(0, a.i), 0}
                                                                          : Num{false, 0, -a.d}; }, "-x");
  unaryFold(r, "Sign", kNumT, [](const Num& a) {
    if (a.isInt) return Num{true, a.i > 0 ? 1 : a.i < 0 ? -1 : 0, 0};
    return Num{false, 0, std::isnan(a.d) ? a.d : a.d > 0 ? 1.0 : a.d < 0 ? -1.0 : 0.0};
  }, "-1, 0 or 1 by the sign of x (NaN stays NaN)");
  unaryFold(r, "Ceil", kFloatT, [](const Num& a) { return Num{false, 0, std::ceil(a.d)}; }, "ceil(x)");
  unaryFold(r, "Floor", kFloatT, [](const Num& a) { return Num{false, 0, std::floor(a.d)}; }, "floor(x)");
  unaryFold(r, "Round", kFloatT, [](const Num& a) { return Num{false, 0, std::nearbyint(a.d)}; },
            "round half to even");
  unaryFold(r, "Sqrt", kFloatT, [](const Num& a) { return Num{false, 0, std::sqrt(a.d)}; }, "sqrt(x)");
  unaryFold(r, "Relu", kNumT, [](const Num& a) {
    return a.isInt ? Num{true, a.i > 0 ? a.i : 0, 0} : Num{false, 0, a.d > 0 ? a.d : (std::isnan(a.d) ? a.d : 0.0)};
  }, "max(x, 0)");

  // Float math.
  unary(r, "Reciprocal", kFloatT, "1 / x");
  unary(r, "Exp", kFloatT, "exp(x)");
  unary(r, "Log", kFloatT, "ln(x)");
  unary(r, "Erf", kFloatT, "erf(x)");
  unary(r, "Sin", kFloatT, "sin(x)");
  unary(r, "Cos", kFloatT, "cos(x)");
  unary(r, "Tan", kFloatT, "tan(x)");
  unary(r, "Asin", kFloatT, "asin(x)");
  unary(r, "Acos", kFloatT, "acos(x)");
  unary(r, "Atan", kFloatT, "atan(x)");
  unary(r, "Sinh", kFloatT, "sinh(x)");
  unary(r, "Cosh", kFloatT, "cosh(x)");
  unary(r, "Tanh", kFloatT, "tanh(x)");
  unary(r, "Asinh", kFloatT, "asinh(x)");
  unary(r, "Acosh", kFloatT, "acosh(x)");
  unary(r, "Atanh", kFloatT, "atanh(x)");

  // Activations.
  unary(r, "Sigmoid", kFloatT, "1 / (1 + exp(-x))");
  unary(r, "HardSigmoid", kFloatT, "clamp(alpha * x + beta, 0, 1)");
  unary(r, "HardSwish", kFloatT, "x * clamp(x / 6 + 0.5, 0, 1)");
  unary(r, "Softplus", kFloatT, "ln(1 + exp(x))");
  unary(r, "Softsign", kFloatT, "x / (1 + |x|)");
  unary(r, "Mish", kFloatT, "x * tanh(softplus(x))");
  unary(r, "Elu", kFloatT, "x < 0 ? alpha * (exp(x) - 1) : x");
  unary(r, "Selu", kFloatT, "gamma * (x <= 0 ? alpha * (exp(x) - 1) : x)");
  unary(r, "Celu", kFloatT, "max(0, x) + min(0, alpha * (exp(x / alpha) - 1))");
  unary(r, "LeakyRelu", kFloatT | kSignedT, "x < 0 ? alpha * x : x");
  unary(r, "ThresholdedRelu", kFloatT, "x > alpha ? x : 0");
  unary(r, "Shrink", kNumT, "x < -lambd ? x + bias : x > lambd ? x - bias : 0");
  r.add({.name = "Gelu", .minInputs = 1, .maxInputs = 1, .traits = kTraitElementwise,
         .infer = [](InferContext& c) {
           checkType(c, 0, kFloatT);
           std::string a = c.attrs().getString("approximate", "none");
           c.check(a == "none" || a == "tanh", "attribute 'approximate' is '" + a + "', expected 'none' or 'tanh'");
           inferSameAsInput(c);
         },
         .summary = "x * Phi(x) (exact, or the tanh approximation)"});

  // Float classification.
  for (const char* name : {"IsNaN", "IsInf"}) {
    r.add({.name = name, .minInputs = 1, .maxInputs = 1, .traits = kTraitElementwise,
           .infer = [](InferContext& c) {
             checkType(c, 0, kFloatT | kF8T);
             c.setOutput(0, DataType::kBool, c.inputShape(0));
           },
           .summary = "x is NaN / x is +-inf (detect_negative, detect_positive)"});
  }

  r.add({.name = "Clip", .minInputs = 1, .maxInputs = 3, .traits = kTraitElementwise,
         .infer = [](InferContext& c) {
           checkType(c, 0, kNumT);
           checkSameTypes(c);
           for (size_t i = 1; i < c.numInputs(); ++i) {
             if (!c.hasInput(i)) continue;
             const Shape& s = c.inputShape(i);
             bool scalar = !s.rankKnown() || s.rank() == 0 ||
                           (s.rank() == 1 && (!s[0].isStatic() || s[0].value() == 1));
             c.check(scalar, std::string(i == 1 ? "min" : "max") + " must be a scalar, got shape " + s.str());
           }
           inferSameAsInput(c);
           tryFold(c, c.inputDtype(0), [&c](const std::vector<Num>& a) {
             Num v = a[0];
             if (c.hasInput(1) && cmp(v, a[1]) == -1) v = a[1];
             if (c.hasInput(2) && cmp(v, a[2]) == 1) v = a[2];
             return v;
           });
         },
         .summary = "min(max(x, min), max)"});

  r.add({.name = "Where", .minInputs = 3, .maxInputs = 3, .traits = kTraitElementwise | kTraitBroadcast,
         .infer = [](InferContext& c) {
           checkType(c, 0, kBoolT);
           checkSameTypes(c, 1);
           inferBroadcast(c, c.inputDtype(1));
           tryFold(c, c.inputDtype(1), [](const std::vector<Num>& a) { return a[0].i ? a[1] : a[2]; });
         },
         .summary = "cond ? x : y"});

  r.add({.name = "Cast", .minInputs = 1, .maxInputs = 1, .traits = kTraitElementwise,
         .infer = [](InferContext& c) { inferCastTo(c, castTarget(c, c.attrs().requireInt("to"))); },
         .summary = "converts to the element type 'to' (saturate: f8 overflow clamps)"});
  r.add({.name = "CastLike", .minInputs = 2, .maxInputs = 2, .traits = kTraitElementwise,
         .infer = [](InferContext& c) { inferCastTo(c, castTarget(c, int64_t(c.inputDtype(1)))); },
         .summary = "converts to the element type of the second input"});
}

}  // namespace anvil::ir::ops
