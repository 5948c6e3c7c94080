// Element types of tensors, their sizes and names, and conversions for the 16-bit and
// 8-bit floating formats that have no C++ type on every compiler.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "anvil/dtype.h"

namespace anvil::ir {

// Values match ONNX TensorProto.DataType so conversion is a range check.
using DataType = ::anvil::DataType;  // include/anvil/dtype.h
using ::anvil::kMaxDataType;

// Bits per element (4 for the packed 4-bit types, 0 for strings/undefined).
int bitWidth(DataType t);
// Bytes needed to store n elements (packed types round up).
size_t storageBytes(DataType t, int64_t n);
// Short lower-case name used by the IR text form: f32, f16, bf16, i64, bool, ...
const char* dtypeName(DataType t);
// Inverse of dtypeName; returns kUndefined for an unknown name.
DataType dtypeFromName(std::string_view name);
bool isFloat(DataType t);      // f16, bf16, f32, f64 and the f8/f4 formats
bool isInteger(DataType t);    // signed and unsigned integers (not bool)
bool isSigned(DataType t);
bool isValidOnnxType(int32_t onnxType);

// Scalar conversions between float and the narrow float formats (round to nearest even).
uint16_t floatToHalf(float f);
float halfToFloat(uint16_t h);
uint16_t floatToBFloat16(float f);
float bfloat16ToFloat(uint16_t b);
// FP8 formats as ONNX defines them; `saturate` clamps out-of-range values to the max.
uint8_t floatToF8(float f, DataType t, bool saturate);
float f8ToFloat(uint8_t v, DataType t);
uint8_t floatToF4E2M1(float f);
float f4E2M1ToFloat(uint8_t nibble);

// Typed 16-bit wrappers so kernels can template over them.
struct Half {
  uint16_t bits = 0;
  Half() = default;
  explicit Half(float f) : bits(floatToHalf(f)) {}
  operator float() const { return halfToFloat(bits); }
};
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  explicit BFloat16(float f) : bits(floatToBFloat16(f)) {}
  operator float() const { return bfloat16ToFloat(bits); }
};

}  // namespace anvil::ir
