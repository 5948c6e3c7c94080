// A dense tensor with concrete extents: initializer data in the IR and the values the
// reference kernels compute. Storage is shared and may point into a mapped file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "anvil/error.h"
#include "ir/dtype.h"
#include "ir/shape.h"

namespace anvil::ir {

class Tensor {
 public:
  Tensor() = default;
  // Allocates zero-filled storage (strings: empty strings).
  Tensor(DataType dtype, std::vector<int64_t> dims);
  // Wraps memory owned by `holder` (an mmap, a buffer of the loader) without copying.
  static Tensor view(DataType dtype, std::vector<int64_t> dims, std::shared_ptr<const void> holder,
                     const void* data);
  // Writable view of caller-owned memory (an arena slot); the caller keeps it alive.
  static Tensor wrapMutable(DataType dtype, std::vector<int64_t> dims, void* data);
  template <typename T>
  static Tensor scalar(DataType dtype, T v) {
    Tensor t(dtype, {});
    *t.data<T>() = v;
    return t;
  }
  template <typename T>
  static Tensor fromVector(DataType dtype, std::vector<int64_t> dims, const std::vector<T>& v) {
    Tensor t(dtype, std::move(dims));
    ANVIL_CHECK(int64_t(v.size()) == t.numel(), ErrorCode::kInternal, "fromVector: size mismatch");
    for (size_t i = 0; i < v.size(); ++i) t.data<T>()[i] = v[i];
    return t;
  }

  bool defined() const { return dtype_ != DataType::kUndefined; }
  DataType dtype() const { return dtype_; }
  const std::vector<int64_t>& dims() const { return dims_; }
  size_t rank() const { return dims_.size(); }
  int64_t dim(size_t i) const { return dims_[i]; }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return storageBytes(dtype_, numel_); }
  TensorType type() const { return {dtype_, Shape::fromExtents(dims_)}; }

  const void* raw() const { return data_; }
  void* mutableRaw();  // copies shared read-only storage first (copy on write)
  template <typename T>
  const T* data() const { return static_cast<const T*>(data_); }
  template <typename T>
  T* data() { return static_cast<T*>(mutableRaw()); }

  // Same storage, new extents (numel must match).
  Tensor reshaped(std::vector<int64_t> dims) const;
  // Deep copy.
  Tensor clone() const;
  // Reads element i of any numeric type as double / int64 (for index and shape inputs).
  double getDouble(int64_t i) const;
  int64_t getInt(int64_t i) const;
  std::vector<int64_t> toInt64Vector() const;
  // Writes element i converting from double (rounding to the element type).
  void setDouble(int64_t i, double v);
  // Strings (dtype kString) are stored as std::string objects.
  const std::string& str(int64_t i) const { return data<std::string>()[i]; }

  // Bitwise equality of dtype, dims and data.
  bool sameAs(const Tensor& o) const;
  std::string summary() const;  // "f32[2,3]"

 private:
  DataType dtype_ = DataType::kUndefined;
  std::vector<int64_t> dims_;
  int64_t numel_ = 0;
  std::shared_ptr<const void> holder_;  // keeps storage alive
  const void* data_ = nullptr;
  bool owned_ = false;  // storage was allocated by this tensor family and may be written
};

int64_t numelOf(const std::vector<int64_t>& dims);

}  // namespace anvil::ir
