// Helpers shared by the tensor family's reference kernels (cpu/kernels/tensor*.cpp):
// type-agnostic element copies (strings and packed 4-bit types included), index-map
// "take", axis and index checks. Movement ops are written as "output element i comes
// from input element idx[i]", which keeps them obviously correct for every dtype.
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include "cpu/kernels/util.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels::tensor {

// Copies one element between buffers of the same dtype.
class ElemCopy {
 public:
  explicit ElemCopy(DataType t) : dt_(t) {
    if (t == DataType::kString) kind_ = kString;
    else if (ir::bitWidth(t) == 4) kind_ = kNibble;
    else {
      kind_ = kBytes;
      size_ = ir::storageBytes(t, 1);
    }
  }
  void operator()(void* dst, int64_t di, const void* src, int64_t si) const {
    switch (kind_) {
      case kString: static_cast<std::string*>(dst)[di] = static_cast<const std::string*>(src)[si]; return;
      case kNibble: {
        const uint8_t v = (static_cast<const uint8_t*>(src)[si / 2] >> ((si & 1) * 4)) & 0xF;
        uint8_t& b = static_cast<uint8_t*>(dst)[di / 2];
        const int sh = int(di & 1) * 4;
        b = uint8_t((b & ~(0xF << sh)) | (v << sh));
        return;
      }
      case kBytes:
        switch (size_) {
          case 1: static_cast<uint8_t*>(dst)[di] = static_cast<const uint8_t*>(src)[si]; return;
          case 2: static_cast<uint16_t*>(dst)[di] = static_cast<const uint16_t*>(src)[si]; return;
          case 4: static_cast<uint32_t*>(dst)[di] = static_cast<const uint32_t*>(src)[si]; return;
          case 8: static_cast<uint64_t*>(dst)[di] = static_cast<const uint64_t*>(src)[si]; return;
          default:
            std::memcpy(static_cast<char*>(dst) + size_t(di) * size_, static_cast<const char*>(src) + size_t(si) * size_,
                        size_);
        }
    }
  }
  DataType dtype() const { return dt_; }

 private:
  enum Kind { kBytes, kString, kNibble };
  DataType dt_;
  Kind kind_ = kBytes;
  size_t size_ = 0;
};

// out[i] = src[idx[i]]; idx[i] < 0 takes fill[0] (if given) or leaves the zero element.
inline Tensor take(const Tensor& src, std::vector<int64_t> dims, const std::vector<int64_t>& idx,
                   const Tensor* fill = nullptr) {
  Tensor out(src.dtype(), std::move(dims));
  ANVIL_CHECK(int64_t(idx.size()) == out.numel(), ErrorCode::kInternal, "take: index map size mismatch");
  ElemCopy cp(src.dtype());
  void* d = out.mutableRaw();
  const void* s = src.raw();
  for (size_t i = 0; i < idx.size(); ++i) {
    if (idx[i] >= 0) cp(d, int64_t(i), s, idx[i]);
    else if (fill) cp(d, int64_t(i), fill->raw(), 0);
  }
  return out;
}

// Visits every multi-index of `dims` in row-major order: f(linear, pos).
template <typename F>
void forEachIndex(const std::vector<int64_t>& dims, F f) {
  const int64_t n = ir::numelOf(dims);
  std::vector<int64_t> pos(dims.size(), 0);
  for (int64_t k = 0; k < n; ++k) {
    f(k, pos);
    for (int64_t d = int64_t(dims.size()) - 1; d >= 0; --d) {
      if (++pos[size_t(d)] < dims[size_t(d)]) break;
      pos[size_t(d)] = 0;
    }
  }
}

inline int64_t normAxis(const KernelContext& ctx, int64_t axis, int64_t rank, const char* what = "axis") {
  if (axis < -rank || axis >= rank)
    ctx.fail(std::string(what) + " " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

// An index into an extent, negative counting from the end; checked.
inline int64_t normIndex(const KernelContext& ctx, int64_t i, int64_t extent) {
  if (i < -extent || i >= extent)
    ctx.fail("index " + std::to_string(i) + " is out of range for extent " + std::to_string(extent));
  return i < 0 ? i + extent : i;
}

inline std::string dimsStr(const std::vector<int64_t>& v) { return ir::Shape::fromExtents(v).str(); }

// Registration of the family's kernel files (called from tensor.cpp).
void registerTensorIndexKernels(KernelRegistry& r);   // tensor_index.cpp
void registerTensorResizeKernels(KernelRegistry& r);  // tensor_resize.cpp

}  // namespace anvil::cpu::kernels::tensor
