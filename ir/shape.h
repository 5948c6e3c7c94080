// Shapes with symbolic dimensions: a dim is a known extent, a named symbol (a batch `N`
// stays `N` through inference), or unknown.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/dtype.h"

namespace anvil::ir {

class Dim {
 public:
  Dim() = default;  // unknown
  Dim(int64_t v) : value_(v) {}  // NOLINT: implicit from an extent is the common case
  static Dim symbol(std::string name) {
    Dim d;
    d.symbol_ = std::move(name);
    return d;
  }
  static Dim unknown() { return Dim(); }

  bool isStatic() const { return value_ >= 0; }
  bool isSymbolic() const { return value_ < 0 && !symbol_.empty(); }
  bool isUnknown() const { return value_ < 0 && symbol_.empty(); }
  int64_t value() const { return value_; }  // -1 unless static
  const std::string& symbolName() const { return symbol_; }
  std::string str() const;  // "7", "N" or "?"

  bool operator==(const Dim& o) const { return value_ == o.value_ && symbol_ == o.symbol_; }
  bool operator!=(const Dim& o) const { return !(*this == o); }

 private:
  int64_t value_ = -1;
  std::string symbol_;
};

class Shape {
 public:
  Shape() = default;  // rank 0 (a scalar)
  Shape(std::vector<Dim> dims) : dims_(std::move(dims)) {}  // NOLINT
  Shape(std::initializer_list<int64_t> dims) { for (int64_t d : dims) dims_.emplace_back(d); }
  static Shape fromExtents(const std::vector<int64_t>& ext) {
    Shape s;
    for (int64_t d : ext) s.dims_.emplace_back(d);
    return s;
  }
  static Shape unknownRank() {
    Shape s;
    s.rankKnown_ = false;
    return s;
  }

  bool rankKnown() const { return rankKnown_; }
  size_t rank() const { return dims_.size(); }
  const Dim& operator[](size_t i) const { return dims_[i]; }
  Dim& operator[](size_t i) { return dims_[i]; }
  const std::vector<Dim>& dims() const { return dims_; }
  std::vector<Dim>& dims() { return dims_; }
  bool isStatic() const;                 // rank known and every dim static
  std::vector<int64_t> extents() const;  // requires isStatic()
  int64_t numel() const;                 // -1 unless static
  std::string str() const;               // "[N,3,224,224]", "[?]" ... "[*]" for unknown rank
  // Whether concrete extents fit this shape: unknown rank, or the same rank with every
  // static dim equal (symbolic and unknown dims take any extent).
  bool admits(const std::vector<int64_t>& extents) const;

  bool operator==(const Shape& o) const { return rankKnown_ == o.rankKnown_ && dims_ == o.dims_; }
  bool operator!=(const Shape& o) const { return !(*this == o); }

 private:
  std::vector<Dim> dims_;
  bool rankKnown_ = true;
};

struct TensorType {
  DataType dtype = DataType::kUndefined;
  Shape shape = Shape::unknownRank();
  std::string str() const;  // "f32[N,3]"
  bool operator==(const TensorType& o) const { return dtype == o.dtype && shape == o.shape; }
  bool operator!=(const TensorType& o) const { return !(*this == o); }
};

// Multidirectional (numpy) broadcast of two shapes; throws kShapeMismatch when
// two static extents disagree and neither is 1. Symbolic dims: N with 1 is N, N with N
// is N, N with M is unknown.
Shape broadcastShapes(const Shape& a, const Shape& b);
std::vector<int64_t> broadcastExtents(const std::vector<int64_t>& a, const std::vector<int64_t>& b);

}  // namespace anvil::ir
