// Tensor storage: zero-filled owned buffers, views over mapped memory, copy on write.
#include "ir/tensor.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace anvil::ir {

int64_t numelOf(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    ANVIL_CHECK(d >= 0, ErrorCode::kShapeMismatch, "negative extent ", d);
    ANVIL_CHECK(d == 0 || n <= (int64_t(1) << 42) / d, ErrorCode::kShapeMismatch, "tensor of ",
                dims.size(), " dims is too large");
    n *= d;
  }
  return n;
}

namespace {
std::shared_ptr<void> allocate(DataType dtype, int64_t n) {
  if (dtype == DataType::kString) {
    auto* p = new std::string[size_t(std::max<int64_t>(n, 1))];
    return std::shared_ptr<void>(p, [](void* q) { delete[] static_cast<std::string*>(q); });
  }
  // 64-byte aligned so SIMD tactics may use aligned loads; at least one line.
  size_t bytes = (storageBytes(dtype, n) + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  void* p = std::aligned_alloc(64, bytes);
  ANVIL_CHECK(p != nullptr, ErrorCode::kRuntimeError, "out of memory allocating ", bytes, " bytes");
  std::memset(p, 0, bytes);
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}
}  // namespace

Tensor::Tensor(DataType dtype, std::vector<int64_t> dims)
    : dtype_(dtype), dims_(std::move(dims)), numel_(numelOf(dims_)) {
  auto buf = allocate(dtype_, numel_);
  data_ = buf.get();
  holder_ = std::move(buf);
  owned_ = true;
}

Tensor Tensor::view(DataType dtype, std::vector<int64_t> dims, std::shared_ptr<const void> holder,
                    const void* data) {
  Tensor t;
  t.dtype_ = dtype;
  t.dims_ = std::move(dims);
  t.numel_ = numelOf(t.dims_);
  t.holder_ = std::move(holder);
  t.data_ = data;
  t.owned_ = false;
  return t;
}

Tensor Tensor::wrapMutable(DataType dtype, std::vector<int64_t> dims, void* data) {
  Tensor t = view(dtype, std::move(dims), nullptr, data);
  t.owned_ = true;
  return t;
}

void* Tensor::mutableRaw() {
  if (!owned_) {
    Tensor copy = clone();
    *this = std::move(copy);
  }
  return const_cast<void*>(data_);
}

Tensor Tensor::reshaped(std::vector<int64_t> dims) const {
  ANVIL_CHECK(numelOf(dims) == numel_, ErrorCode::kShapeMismatch, "cannot reshape ", summary(),
              " to ", Shape::fromExtents(dims).str());
  Tensor t = *this;
  t.dims_ = std::move(dims);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(dtype_, dims_);
  if (dtype_ == DataType::kString) {
    for (int64_t i = 0; i < numel_; ++i) t.data<std::string>()[i] = data<std::string>()[i];
  } else if (numel_ > 0) {
    std::memcpy(const_cast<void*>(t.data_), data_, nbytes());
  }
  return t;
}

double Tensor::getDouble(int64_t i) const {
  switch (dtype_) {
    case DataType::kF32: return data<float>()[i];
    case DataType::kF64: return data<double>()[i];
    case DataType::kF16: return halfToFloat(data<uint16_t>()[i]);
    case DataType::kBF16: return bfloat16ToFloat(data<uint16_t>()[i]);
    case DataType::kI8: return data<int8_t>()[i];
    case DataType::kU8: return data<uint8_t>()[i];
    case DataType::kI16: return data<int16_t>()[i];
    case DataType::kU16: return data<uint16_t>()[i];
    case DataType::kI32: return data<int32_t>()[i];
    case DataType::kU32: return data<uint32_t>()[i];
    case DataType::kI64: return double(data<int64_t>()[i]);
    case DataType::kU64: return double(data<uint64_t>()[i]);
    case DataType::kBool: return data<uint8_t>()[i] ? 1.0 : 0.0;
    case DataType::kF8E4M3FN: case DataType::kF8E4M3FNUZ: case DataType::kF8E5M2:
    case DataType::kF8E5M2FNUZ:
      return f8ToFloat(data<uint8_t>()[i], dtype_);
    case DataType::kU4: return (data<uint8_t>()[i / 2] >> ((i & 1) * 4)) & 0xF;
    case DataType::kI4: {
      int v = (data<uint8_t>()[i / 2] >> ((i & 1) * 4)) & 0xF;
      return v >= 8 ? v - 16 : v;
    }
    case DataType::kF4E2M1: return f4E2M1ToFloat(uint8_t(data<uint8_t>()[i / 2] >> ((i & 1) * 4)));
    default: ANVIL_THROW(ErrorCode::kUnsupported, "getDouble on ", dtypeName(dtype_));
  }
}

int64_t Tensor::getInt(int64_t i) const {
  switch (dtype_) {
    case DataType::kI64: return data<int64_t>()[i];
    case DataType::kI32: return data<int32_t>()[i];
    case DataType::kU64: return int64_t(data<uint64_t>()[i]);
    default: return int64_t(getDouble(i));
  }
}

std::vector<int64_t> Tensor::toInt64Vector() const {
  std::vector<int64_t> v(static_cast<size_t>(numel_));
  for (int64_t i = 0; i < numel_; ++i) v[size_t(i)] = getInt(i);
  return v;
}

void Tensor::setDouble(int64_t i, double v) {
  void* p = mutableRaw();
  switch (dtype_) {
    case DataType::kF32: static_cast<float*>(p)[i] = float(v); break;
    case DataType::kF64: static_cast<double*>(p)[i] = v; break;
    case DataType::kF16: static_cast<uint16_t*>(p)[i] = floatToHalf(float(v)); break;
    case DataType::kBF16: static_cast<uint16_t*>(p)[i] = floatToBFloat16(float(v)); break;
    case DataType::kI8: static_cast<int8_t*>(p)[i] = int8_t(v); break;
    case DataType::kU8: static_cast<uint8_t*>(p)[i] = uint8_t(v); break;
    case DataType::kI16: static_cast<int16_t*>(p)[i] = int16_t(v); break;
    case DataType::kU16: static_cast<uint16_t*>(p)[i] = uint16_t(v); break;
    case DataType::kI32: static_cast<int32_t*>(p)[i] = int32_t(v); break;
    case DataType::kU32: static_cast<uint32_t*>(p)[i] = uint32_t(v); break;
    case DataType::kI64: static_cast<int64_t*>(p)[i] = int64_t(v); break;
    case DataType::kU64: static_cast<uint64_t*>(p)[i] = uint64_t(v); break;
    case DataType::kBool: static_cast<uint8_t*>(p)[i] = v != 0; break;
    case DataType::kF8E4M3FN: case DataType::kF8E4M3FNUZ: case DataType::kF8E5M2:
    case DataType::kF8E5M2FNUZ:
      static_cast<uint8_t*>(p)[i] = floatToF8(float(v), dtype_, true);
      break;
    default: ANVIL_THROW(ErrorCode::kUnsupported, "setDouble on ", dtypeName(dtype_));
  }
}

bool Tensor::sameAs(const Tensor& o) const {
  if (dtype_ != o.dtype_ || dims_ != o.dims_) return false;
  if (dtype_ == DataType::kString) {
    for (int64_t i = 0; i < numel_; ++i)
      if (str(i) != o.str(i)) return false;
    return true;
  }
  return numel_ == 0 || std::memcmp(data_, o.data_, nbytes()) == 0;
}

std::string Tensor::summary() const { return type().str(); }

}  // namespace anvil::ir
