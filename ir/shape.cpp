// Dim/Shape printing and numpy broadcasting over symbolic shapes.
#include "ir/shape.h"

#include <algorithm>

#include "anvil/error.h"

namespace anvil::ir {

std::string Dim::str() const {
  if (isStatic()) return std::to_string(value_);
  if (isSymbolic()) return symbol_;
  return "?";
}

bool Shape::isStatic() const {
  if (!rankKnown_) return false;
  return std::all_of(dims_.begin(), dims_.end(), [](const Dim& d) { return d.isStatic(); });
}

std::vector<int64_t> Shape::extents() const {
  ANVIL_CHECK(isStatic(), ErrorCode::kInternal, "extents() of non-static shape ", str());
  std::vector<int64_t> e;
  for (const Dim& d : dims_) e.push_back(d.value());
  return e;
}

int64_t Shape::numel() const {
  if (!isStatic()) return -1;
  int64_t n = 1;
  for (const Dim& d : dims_) n *= d.value();
  return n;
}

std::string Shape::str() const {
  if (!rankKnown_) return "[*]";
  std::string s = "[";
  for (size_t i = 0; i < dims_.size(); ++i) {
    if (i) s += ",";
    s += dims_[i].str();
  }
  return s + "]";
}

bool Shape::admits(const std::vector<int64_t>& extents) const {
  if (!rankKnown_) return true;
  if (dims_.size() != extents.size()) return false;
  for (size_t i = 0; i < extents.size(); ++i)
    if (dims_[i].isStatic() && dims_[i].value() != extents[i]) return false;
  return true;
}

std::string TensorType::str() const { return std::string(dtypeName(dtype)) + shape.str(); }

Shape broadcastShapes(const Shape& a, const Shape& b) {
  if (!a.rankKnown() || !b.rankKnown()) return Shape::unknownRank();
  const size_t r = std::max(a.rank(), b.rank());
  std::vector<Dim> out(r);
  for (size_t i = 0; i < r; ++i) {
    const Dim one(1);
    const Dim& x = i < r - a.rank() ? one : a[i - (r - a.rank())];
    const Dim& y = i < r - b.rank() ? one : b[i - (r - b.rank())];
    if (x.isStatic() && y.isStatic()) {
      if (x.value() != y.value() && x.value() != 1 && y.value() != 1)
        ANVIL_THROW(ErrorCode::kShapeMismatch, "cannot broadcast ", a.str(), " with ", b.str());
      out[i] = x.value() == 1 ? y : x;
    } else if (x.isStatic() && x.value() == 1) {
      out[i] = y;
    } else if (y.isStatic() && y.value() == 1) {
      out[i] = x;
    } else if (x == y) {
      out[i] = x;
    } else if (x.isStatic()) {
      out[i] = x;  // the other dim must equal x (or be 1), so x it is
    } else if (y.isStatic()) {
      out[i] = y;
    } else {
      out[i] = Dim::unknown();
    }
  }
  return Shape(out);
}

std::vector<int64_t> broadcastExtents(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  return broadcastShapes(Shape::fromExtents(a), Shape::fromExtents(b)).extents();
}

}  // namespace anvil::ir
