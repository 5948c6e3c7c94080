// Building blocks for reference kernels: broadcasting index walks, unary maps, strides.
#pragma once

#include <vector>

#include "cpu/reference.h"
#include "ir/shape.h"

namespace anvil::cpu::kernels {

// Row-major strides of `dims`.
inline std::vector<int64_t> stridesOf(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (int64_t i = int64_t(dims.size()) - 2; i >= 0; --i) s[size_t(i)] = s[size_t(i) + 1] * dims[size_t(i) + 1];
  return s;
}

// For each output element of the broadcast of `in` to `out`, the index into `in`.
inline std::vector<int64_t> broadcastIndex(const std::vector<int64_t>& in, const std::vector<int64_t>& out) {
  const size_t r = out.size();
  std::vector<int64_t> inStrides(r, 0);
  auto s = stridesOf(in);
  for (size_t i = 0; i < in.size(); ++i) {
    size_t o = r - in.size() + i;
    inStrides[o] = in[i] == 1 ? 0 : s[i];
  }
  int64_t n = ir::numelOf(out);
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::vector<int64_t> pos(r, 0);
  int64_t off = 0;
  for (int64_t k = 0; k < n; ++k) {
    idx[size_t(k)] = off;
    for (int64_t d = int64_t(r) - 1; d >= 0; --d) {
      if (++pos[size_t(d)] < out[size_t(d)]) {
        off += inStrides[size_t(d)];
        break;
      }
      off -= inStrides[size_t(d)] * (out[size_t(d)] - 1);
      pos[size_t(d)] = 0;
    }
  }
  return idx;
}

// out[i] = f(in0[i]) with output dtype = `outType` (default: input's).
template <typename In, typename Out, typename F>
void unaryMap(KernelContext& ctx, F f, ir::DataType outType = ir::DataType::kUndefined) {
  const Tensor& a = ctx.input(0);
  Tensor& o = ctx.allocOutput(0, outType == ir::DataType::kUndefined ? a.dtype() : outType, a.dims());
  const In* x = a.data<In>();
  Out* y = o.data<Out>();
  for (int64_t i = 0; i < a.numel(); ++i) y[i] = f(x[i]);
}

// out = f(in0, in1) with numpy broadcasting.
template <typename In, typename Out, typename F>
void binaryBroadcast(KernelContext& ctx, F f, ir::DataType outType = ir::DataType::kUndefined) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  std::vector<int64_t> dims;
  try {
    dims = ir::broadcastExtents(a.dims(), b.dims());
  } catch (const Error& e) {
    ctx.fail(e.what());
  }
  Tensor& o = ctx.allocOutput(0, outType == ir::DataType::kUndefined ? a.dtype() : outType, dims);
  const In* x = a.data<In>();
  const In* y = b.data<In>();
  Out* z = o.data<Out>();
  const int64_t n = o.numel();
  if (a.dims() == dims && b.dims() == dims) {
    for (int64_t i = 0; i < n; ++i) z[i] = f(x[i], y[i]);
    return;
  }
  auto ia = broadcastIndex(a.dims(), dims);
  auto ib = broadcastIndex(b.dims(), dims);
  for (int64_t i = 0; i < n; ++i) z[i] = f(x[ia[size_t(i)]], y[ib[size_t(i)]]);
}

}  // namespace anvil::cpu::kernels
