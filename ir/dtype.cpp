// Element type tables and the narrow-float conversions (all round to nearest even).
#include "ir/dtype.h"

#include <cmath>
#include <limits>

namespace anvil::ir {

namespace {
struct TypeRow {
  DataType type;
  const char* name;
  int bits;
};
constexpr TypeRow kTypes[] = {
    {DataType::kUndefined, "undefined", 0}, {DataType::kF32, "f32", 32},
    {DataType::kU8, "u8", 8},               {DataType::kI8, "i8", 8},
    {DataType::kU16, "u16", 16},            {DataType::kI16, "i16", 16},
    {DataType::kI32, "i32", 32},            {DataType::kI64, "i64", 64},
    {DataType::kString, "string", 0},       {DataType::kBool, "bool", 8},
    {DataType::kF16, "f16", 16},            {DataType::kF64, "f64", 64},
    {DataType::kU32, "u32", 32},            {DataType::kU64, "u64", 64},
    {DataType::kC64, "c64", 64},            {DataType::kC128, "c128", 128},
    {DataType::kBF16, "bf16", 16},          {DataType::kF8E4M3FN, "f8e4m3fn", 8},
    {DataType::kF8E4M3FNUZ, "f8e4m3fnuz", 8}, {DataType::kF8E5M2, "f8e5m2", 8},
    {DataType::kF8E5M2FNUZ, "f8e5m2fnuz", 8}, {DataType::kU4, "u4", 4},
    {DataType::kI4, "i4", 4},               {DataType::kF4E2M1, "f4e2m1", 4},
};
static_assert(sizeof(kTypes) / sizeof(kTypes[0]) == kMaxDataType + 1,
              "every DataType needs a row, in enum order");

uint32_t floatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float bitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Parameters of the small float formats.
struct SmallFloat {
  int mbits;
  int bias;
  bool hasInf;    // e5m2 only
  bool fnuz;      // NaN is 0x80, no negative zero
  double maxVal;  // largest finite value
  int signBit;    // position of the sign bit
  uint8_t nan;    // canonical NaN code (without sign)
};
SmallFloat smallFloat(DataType t) {
  switch (t) {
    case DataType::kF8E4M3FN: return {3, 7, false, false, 448.0, 7, 0x7F};
    case DataType::kF8E4M3FNUZ: return {3, 8, false, true, 240.0, 7, 0x80};
    case DataType::kF8E5M2: return {2, 15, true, false, 57344.0, 7, 0x7F};
    case DataType::kF8E5M2FNUZ: return {2, 16, false, true, 57344.0, 7, 0x80};
    default: return {1, 1, false, false, 6.0, 3, 0};  // f4e2m1: no NaN, no inf
  }
}

uint8_t encodeSmall(float f, DataType t, bool saturate) {
  const SmallFloat p = smallFloat(t);
  const bool neg = std::signbit(f);
  const uint8_t sign = (neg && !p.fnuz) ? uint8_t(1u << p.signBit) : 0;
  const bool isF4 = t == DataType::kF4E2M1;
  if (std::isnan(f)) return isF4 ? uint8_t(0x7) : p.nan;  // f4 has no NaN
  const uint8_t maxCode = [&] {
    double m = p.maxVal;
    int e = std::ilogb(m);
    int field = e + p.bias;
    int mant = int(std::ldexp(m, p.mbits - e)) - (1 << p.mbits);
    return uint8_t((field << p.mbits) | mant);
  }();
  auto overflow = [&]() -> uint8_t {
    if (saturate || isF4) return uint8_t((neg ? (1u << p.signBit) : 0) | maxCode);
    if (p.hasInf) return uint8_t(sign | 0x7C);
    return p.fnuz ? p.nan : uint8_t(sign | p.nan);
  };
  double a = std::fabs(double(f));
  if (std::isinf(f)) {
    if (p.fnuz && saturate) return p.nan;  // fnuz formats map inf to NaN even when saturating
    if (p.hasInf && !saturate) return uint8_t(sign | 0x7C);
    return overflow();
  }
  if (a == 0) return sign;
  const int minExp = 1 - p.bias;
  int e = std::max(std::ilogb(a), minExp);
  double quantum = std::ldexp(1.0, e - p.mbits);
  double r = std::nearbyint(a / quantum) * quantum;
  if (r > p.maxVal) return overflow();
  if (r == 0) return p.fnuz ? 0 : sign;
  int re = std::ilogb(r);
  uint8_t code;
  if (re < minExp) {
    code = uint8_t(std::ldexp(r, p.bias - 1 + p.mbits));
  } else {
    int mant = int(std::ldexp(r, p.mbits - re)) - (1 << p.mbits);
    code = uint8_t(((re + p.bias) << p.mbits) | mant);
  }
  return uint8_t((neg && !(p.fnuz && code == 0)) ? (code | (1u << p.signBit)) : code);
}

float decodeSmall(uint8_t v, DataType t) {
  const SmallFloat p = smallFloat(t);
  const int ebits = p.signBit - p.mbits;
  const bool neg = (v >> p.signBit) & 1;
  const uint8_t body = v & uint8_t((1u << p.signBit) - 1);
  if (t != DataType::kF4E2M1) {
    if (p.fnuz && v == 0x80) return std::numeric_limits<float>::quiet_NaN();
    if (!p.fnuz && !p.hasInf && body == 0x7F) return std::numeric_limits<float>::quiet_NaN();
    if (p.hasInf && (body >> p.mbits) == 0x1F) {
      if (body & 3) return std::numeric_limits<float>::quiet_NaN();
      return neg ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
    }
  }
  int field = body >> p.mbits;
  int mant = body & ((1 << p.mbits) - 1);
  (void)ebits;
  double val = field == 0 ? std::ldexp(double(mant), 1 - p.bias - p.mbits)
                          : std::ldexp(double(mant + (1 << p.mbits)), field - p.bias - p.mbits);
  return float(neg ? -val : val);
}
}  // namespace

int bitWidth(DataType t) {
  int i = int(t);
  return (i >= 0 && i <= kMaxDataType) ? kTypes[i].bits : 0;
}

size_t storageBytes(DataType t, int64_t n) {
  if (t == DataType::kString) return size_t(n) * sizeof(std::string);
  return size_t((n * bitWidth(t) + 7) / 8);
}

const char* dtypeName(DataType t) {
  int i = int(t);
  return (i >= 0 && i <= kMaxDataType) ? kTypes[i].name : "invalid";
}

DataType dtypeFromName(std::string_view name) {
  for (const auto& row : kTypes)
    if (name == row.name) return row.type;
  return DataType::kUndefined;
}

bool isFloat(DataType t) {
  switch (t) {
    case DataType::kF16: case DataType::kBF16: case DataType::kF32: case DataType::kF64:
    case DataType::kF8E4M3FN: case DataType::kF8E4M3FNUZ: case DataType::kF8E5M2:
    case DataType::kF8E5M2FNUZ: case DataType::kF4E2M1:
      return true;
    default:
      return false;
  }
}

bool isInteger(DataType t) {
  switch (t) {
    case DataType::kU8: case DataType::kI8: case DataType::kU16: case DataType::kI16:
    case DataType::kI32: case DataType::kI64: case DataType::kU32: case DataType::kU64:
    case DataType::kU4: case DataType::kI4:
      return true;
    default:
      return false;
  }
}

bool isSigned(DataType t) {
  switch (t) {
    case DataType::kI8: case DataType::kI16: case DataType::kI32: case DataType::kI64:
    case DataType::kI4:
      return true;
    default:
      return isFloat(t);
  }
}

bool isValidOnnxType(int32_t onnxType) { return onnxType >= 1 && onnxType <= kMaxDataType; }

uint16_t floatToHalf(float f) {
  uint32_t x = floatBits(f);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return uint16_t(sign | (x > 0x7f800000u ? 0x7e00 : 0x7c00));
  if (x >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // rounds to infinity
  if (x < 0x38800000u) {                                  // half subnormal or zero
    float scaled = bitsFloat(x) * 16777216.0f;           // units of 2^-24, exact
    return uint16_t(sign | uint16_t(std::nearbyint(scaled)));
  }
  x += 0xfffu + ((x >> 13) & 1u);
  x -= uint32_t(127 - 15) << 23;
  return uint16_t(sign | (x >> 13));
}

float halfToFloat(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t e = (h >> 10) & 0x1f;
  const uint32_t m = h & 0x3ff;
  if (e == 0) {
    float v = float(m) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  if (e == 31) return bitsFloat(sign | 0x7f800000u | (m << 13));
  return bitsFloat(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t floatToBFloat16(float f) {
  uint32_t x = floatBits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40);
  x += 0x7fffu + ((x >> 16) & 1u);
  return uint16_t(x >> 16);
}

float bfloat16ToFloat(uint16_t b) { return bitsFloat(uint32_t(b) << 16); }

uint8_t floatToF8(float f, DataType t, bool saturate) { return encodeSmall(f, t, saturate); }
float f8ToFloat(uint8_t v, DataType t) { return decodeSmall(v, t); }
uint8_t floatToF4E2M1(float f) { return encodeSmall(f, DataType::kF4E2M1, true); }
float f4E2M1ToFloat(uint8_t nibble) { return decodeSmall(nibble & 0xF, DataType::kF4E2M1); }

}  // namespace anvil::ir
