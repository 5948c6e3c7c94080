// Reference kernels of Cast and CastLike: every pair among the plain types (f32 f64 f16
// bf16, 8..64-bit ints, bool), the f8 formats (saturate attribute), f4e2m1, the packed
// 4-bit ints u4/i4 (two per byte, low nibble first) and strings.
//
// Narrow and exotic types go through float32 like the ONNX reference does (f8 and 4-bit
// targets are encoded from the value as float32; f8/f4 sources decode to float32; u4/i4
// sources decode to int32). Numbers format to strings as numpy's str() does.
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cpu/dispatch.h"
#include "cpu/kernels/elementwise_util.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels::ew {

namespace {

template <typename T>
constexpr bool kIsInt = std::is_integral_v<T> && !std::is_same_v<T, bool>;

bool isPlain(DataType t) {
  switch (t) {
    case DataType::kF32: case DataType::kF64: case DataType::kF16: case DataType::kBF16:
    case DataType::kI8: case DataType::kU8: case DataType::kI16: case DataType::kU16:
    case DataType::kI32: case DataType::kU32: case DataType::kI64: case DataType::kU64:
    case DataType::kBool:
      return true;
    default:
      return false;
  }
}
bool isF8(DataType t) {
  return t == DataType::kF8E4M3FN || t == DataType::kF8E4M3FNUZ || t == DataType::kF8E5M2 ||
         t == DataType::kF8E5M2FNUZ;
}
bool isInt4(DataType t) { return t == DataType::kU4 || t == DataType::kI4; }

// One element between plain types.
template <typename S, typename D>
D convert(S x) {
  using CS = ComputeT<S>;
  using CD = ComputeT<D>;
  if constexpr (std::is_same_v<D, bool>) {
    return CS(x) != CS(0);  // NaN is true, as in numpy
  } else if constexpr (std::is_same_v<S, bool>) {
    return D(CD(x ? 1 : 0));
  } else if constexpr (kIsInt<D>) {
    if constexpr (kIsInt<S>) return D(x);  // modular (C++20)
    else return doubleToInt<D>(double(CS(x)));
  } else if constexpr (std::is_same_v<D, double>) {
    return double(CS(x));
  } else if constexpr (std::is_same_v<CS, double> || kIsInt<S>) {
    return D(float(CS(x)));
  } else {
    return D(float(x));
  }
}

void castPlain(const Tensor& x, Tensor& y) {
  dispatchAll(x.dtype(), [&](auto stag) {
    using S = typename decltype(stag)::type;
    dispatchAll(y.dtype(), [&](auto dtag) {
      using D = typename decltype(dtag)::type;
      const S* in = x.data<S>();
      D* out = y.data<D>();
      for (int64_t i = 0; i < x.numel(); ++i) out[i] = convert<S, D>(in[i]);
    });
  });
}

// ---- numbers to strings (numpy's str of a scalar) ------------------------------------

// Shortest round-trip digits of v in scientific form ("d.ddde+XX") for the given type.
std::string shortestScientific(double v, DataType t) {
  char buf[64];
  if (t == DataType::kF64) {
    auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
    return std::string(buf, res.ptr);
  }
  if (t == DataType::kF32) {
    auto res = std::to_chars(buf, buf + sizeof buf, float(v), std::chars_format::scientific);
    return std::string(buf, res.ptr);
  }
  // f16 / bf16: the fewest digits that read back to the same value in the type.
  const float f = float(v);
  for (int p = 0; p < 10; ++p) {
    std::snprintf(buf, sizeof buf, "%.*e", p, double(f));
    float back = float(std::strtod(buf, nullptr));
    bool same = t == DataType::kF16 ? ir::floatToHalf(back) == ir::floatToHalf(f)
                                    : ir::floatToBFloat16(back) == ir::floatToBFloat16(f);
    if (same) return buf;
  }
  std::snprintf(buf, sizeof buf, "%.9e", double(f));
  return buf;
}

// numpy layout: positional for 1e-4 <= |v| < 1e16 (always with a fraction, "2.0"),
// scientific otherwise ("1e-05", "1.5e+16"); "nan", "inf", "-inf".
std::string formatFloat(double v, DataType t) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  std::string sign = std::signbit(v) ? "-" : "";
  if (v == 0) return sign + "0.0";
  std::string sci = shortestScientific(std::fabs(v), t);
  size_t e = sci.find('e');
  std::string mant = sci.substr(0, e);
  int exp = std::atoi(sci.c_str() + e + 1);
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  if (std::fabs(v) >= 1e-4 && std::fabs(v) < 1e16) {  // numpy compares the value itself
    std::string intPart, frac;
    if (exp >= 0) {
      for (int k = 0; k <= exp; ++k) intPart += size_t(k) < digits.size() ? digits[size_t(k)] : '0';
      frac = size_t(exp + 1) < digits.size() ? digits.substr(size_t(exp + 1)) : "0";
    } else {
      intPart = "0";
      frac = std::string(size_t(-exp - 1), '0') + digits;
    }
    return sign + intPart + "." + frac;
  }
  std::string out = sign + digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char eb[16];
  std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  return out + eb;
}

void toStrings(const Tensor& x, Tensor& y) {
  std::string* out = y.data<std::string>();
  const DataType t = x.dtype();
  if (t == DataType::kBool) {
    for (int64_t i = 0; i < x.numel(); ++i) out[i] = x.data<uint8_t>()[i] ? "True" : "False";
    return;
  }
  dispatchNumeric(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = x.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      if constexpr (kIsInt<T>) out[i] = std::to_string(in[i]);
      else out[i] = formatFloat(double(ComputeT<T>(in[i])), t);
    }
  });
}

// ---- strings to numbers ----------------------------------------------------------------

// Parses s as a number of type T; "NaN", "INF", "+INF", "-inf", "Infinity" all parse.
template <typename T>
T parseNumber(const KernelContext& ctx, const std::string& s) {
  const char* p = s.c_str();
  char* end = nullptr;
  auto bad = [&]() { ctx.fail("cannot convert the string '" + s + "' to a number"); };
  auto skipSpace = [&]() {
    while (end && *end == ' ') ++end;
    if (!end || end == p || *end != '\0') bad();
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (s == "True" || s == "true") return true;
    if (s == "False" || s == "false" || s.empty()) return false;
    double d = std::strtod(p, &end);
    skipSpace();
    return d != 0;
  } else if constexpr (kIsInt<T>) {
    if constexpr (std::is_unsigned_v<T>) {
      unsigned long long v = std::strtoull(p, &end, 10);
      if (end != p && *end == '\0' && s.find('-') == std::string::npos) return T(v);
    } else {
      long long v = std::strtoll(p, &end, 10);
      if (end != p && *end == '\0') return T(v);
    }
    double d = std::strtod(p, &end);
    skipSpace();
    return doubleToInt<T>(d);
  } else if constexpr (std::is_same_v<T, float>) {
    float f = std::strtof(p, &end);
    skipSpace();
    return f;
  } else {
    double d = std::strtod(p, &end);
    skipSpace();
    if constexpr (std::is_same_v<T, double>) return d;
    else return T(float(d));
  }
}

void fromStrings(const KernelContext& ctx, const Tensor& x, Tensor& y) {
  const std::string* in = x.data<std::string>();
  dispatchAll(y.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* out = y.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) out[i] = parseNumber<T>(ctx, in[i]);
  });
}

// ---- the general cast ------------------------------------------------------------------

void castInto(const KernelContext& ctx, const Tensor& x, Tensor& y, bool saturate) {
  const DataType from = x.dtype(), to = y.dtype();
  const int64_t n = x.numel();
  if (from == to) {  // copy into y's storage (it may be a planned arena slot)
    if (from == DataType::kString) {
      for (int64_t i = 0; i < n; ++i) y.data<std::string>()[i] = x.str(i);
    } else if (x.nbytes() > 0) {
      std::memcpy(y.mutableRaw(), x.raw(), x.nbytes());
    }
    return;
  }
  if (from == DataType::kString) {
    if (isPlain(to)) return fromStrings(ctx, x, y);
    Tensor tmp(DataType::kF32, x.dims());
    fromStrings(ctx, x, tmp);
    return castInto(ctx, tmp, y, saturate);
  }
  if (isF8(from) || from == DataType::kF4E2M1 || isInt4(from)) {
    Tensor tmp(isInt4(from) ? DataType::kI32 : DataType::kF32, x.dims());
    for (int64_t i = 0; i < n; ++i) {
      if (isInt4(from)) tmp.data<int32_t>()[i] = int32_t(x.getDouble(i));
      else tmp.data<float>()[i] = float(x.getDouble(i));
    }
    return castInto(ctx, tmp, y, saturate);
  }
  ctx.check(isPlain(from), std::string("cannot cast from ") + ir::dtypeName(from));
  if (to == DataType::kString) return toStrings(x, y);
  if (isPlain(to)) return castPlain(x, y);

  // Narrow targets: encode from the value as float32.
  Tensor f(DataType::kF32, x.dims());
  castPlain(x, f);
  const float* v = f.data<float>();
  uint8_t* out = static_cast<uint8_t*>(y.mutableRaw());
  if (isF8(to)) {
    // Saturating casts clamp infinities to the largest finite value in every f8 format
    // (the node tests and ONNX's reference agree; the spec's table says NaN for fnuz).
    for (int64_t i = 0; i < n; ++i) {
      float f = v[i];
      if (saturate && std::isinf(f)) f = std::copysign(FLT_MAX, f);
      out[i] = ir::floatToF8(f, to, saturate);
    }
  } else if (to == DataType::kF4E2M1) {
    for (int64_t i = 0; i < n; ++i) out[i / 2] |= uint8_t((ir::floatToF4E2M1(v[i]) & 0xF) << ((i & 1) * 4));
  } else if (isInt4(to)) {
    const float lo = to == DataType::kI4 ? -8.f : 0.f, hi = to == DataType::kI4 ? 7.f : 15.f;
    for (int64_t i = 0; i < n; ++i) {
      float c = std::isnan(v[i]) ? 0.f : std::fmin(std::fmax(v[i], lo), hi);
      int q = int(std::nearbyint(c));  // half to even, as numpy's rint
      out[i / 2] |= uint8_t((q & 0xF) << ((i & 1) * 4));
    }
  } else {
    ctx.fail(std::string("cannot cast to ") + ir::dtypeName(to));
  }
}

void castKernel(KernelContext& ctx, DataType to) {
  const Tensor& x = ctx.input(0);
  const bool saturate = ctx.attrs().getInt("saturate", 1) != 0;
  if (x.dtype() == to) {
    ctx.setOutput(0, x);
    return;
  }
  Tensor& y = ctx.allocOutput(0, to, x.dims());
  castInto(ctx, x, y, saturate);
}

}  // namespace

void registerCast(KernelRegistry& r) {
  r.add("Cast", [](KernelContext& ctx) {
    const int64_t to = ctx.attrs().requireInt("to");
    ctx.check(to > 0 && to <= ir::kMaxDataType && to != int64_t(DataType::kC64) && to != int64_t(DataType::kC128),
              "attribute 'to' is " + std::to_string(to) + ", not a type anvil can cast to");
    castKernel(ctx, DataType(to));
  });
  r.add("CastLike", [](KernelContext& ctx) { castKernel(ctx, ctx.input(1).dtype()); });
}

}  // namespace anvil::cpu::kernels::ew
