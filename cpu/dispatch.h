// Type dispatch for reference kernels: call a generic lambda with a value of the C++
// element type of a DataType. f16/bf16 map to ir::Half/ir::BFloat16, which convert
// through float, so one template body serves every type.
#pragma once

#include <cstdint>
#include <type_traits>

#include "anvil/error.h"
#include "ir/dtype.h"

namespace anvil::cpu {

template <typename T>
struct TypeTag {
  using type = T;
};

// Float types: f32, f64, f16, bf16.
template <typename F>
void dispatchFloat(ir::DataType t, F&& f) {
  using ir::DataType;
  switch (t) {
    case DataType::kF32: return f(TypeTag<float>{});
    case DataType::kF64: return f(TypeTag<double>{});
    case DataType::kF16: return f(TypeTag<ir::Half>{});
    case DataType::kBF16: return f(TypeTag<ir::BFloat16>{});
    default: ANVIL_THROW(ErrorCode::kUnsupported, "type ", ir::dtypeName(t), " is not a float type here");
  }
}

// Integer types (8..64 bit, signed and unsigned).
template <typename F>
void dispatchInt(ir::DataType t, F&& f) {
  using ir::DataType;
  switch (t) {
    case DataType::kI8: return f(TypeTag<int8_t>{});
    case DataType::kU8: return f(TypeTag<uint8_t>{});
    case DataType::kI16: return f(TypeTag<int16_t>{});
    case DataType::kU16: return f(TypeTag<uint16_t>{});
    case DataType::kI32: return f(TypeTag<int32_t>{});
    case DataType::kU32: return f(TypeTag<uint32_t>{});
    case DataType::kI64: return f(TypeTag<int64_t>{});
    case DataType::kU64: return f(TypeTag<uint64_t>{});
    default: ANVIL_THROW(ErrorCode::kUnsupported, "type ", ir::dtypeName(t), " is not an integer type here");
  }
}

// Every numeric type (floats and integers).
template <typename F>
void dispatchNumeric(ir::DataType t, F&& f) {
  if (ir::isFloat(t) && t != ir::DataType::kF8E4M3FN && t != ir::DataType::kF8E4M3FNUZ &&
      t != ir::DataType::kF8E5M2 && t != ir::DataType::kF8E5M2FNUZ && t != ir::DataType::kF4E2M1)
    return dispatchFloat(t, std::forward<F>(f));
  return dispatchInt(t, std::forward<F>(f));
}

// Numeric types plus bool.
template <typename F>
void dispatchAll(ir::DataType t, F&& f) {
  if (t == ir::DataType::kBool) return f(TypeTag<bool>{});
  return dispatchNumeric(t, std::forward<F>(f));
}

// Arithmetic in the "compute type": float for f16/bf16, the type itself otherwise.
template <typename T>
using ComputeT = std::conditional_t<std::is_same_v<T, ir::Half> || std::is_same_v<T, ir::BFloat16>, float, T>;

}  // namespace anvil::cpu
