// The one element-type enum of anvil: the public API, the IR (ir::DataType) and the
// backends name types with it. Values match ONNX TensorProto.DataType, so conversion from
// a model or the C API is a range check.
#pragma once

#include <cstdint>

namespace anvil {

enum class DataType : int32_t {
  kUndefined = 0,
  kF32 = 1,
  kU8 = 2,
  kI8 = 3,
  kU16 = 4,
  kI16 = 5,
  kI32 = 6,
  kI64 = 7,
  kString = 8,
  kBool = 9,
  kF16 = 10,
  kF64 = 11,
  kU32 = 12,
  kU64 = 13,
  kC64 = 14,
  kC128 = 15,
  kBF16 = 16,
  kF8E4M3FN = 17,
  kF8E4M3FNUZ = 18,
  kF8E5M2 = 19,
  kF8E5M2FNUZ = 20,
  kU4 = 21,
  kI4 = 22,
  kF4E2M1 = 23,
  // The API's earlier spellings of the same values.
  kFloat = kF32,
  kUInt8 = kU8,
  kInt8 = kI8,
  kUInt16 = kU16,
  kInt16 = kI16,
  kInt32 = kI32,
  kInt64 = kI64,
  kHalf = kF16,
  kDouble = kF64,
  kUInt32 = kU32,
  kUInt64 = kU64,
  kBFloat16 = kBF16,
};
constexpr int kMaxDataType = 23;

}  // namespace anvil
