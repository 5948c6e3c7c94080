// Reference kernels of the tensor family that index with data: Gather, GatherElements,
// GatherND, ScatterElements, ScatterND, OneHot, NonZero, Compress, ReverseSequence, Unique.
// Every index read from a tensor is range-checked (negative indices count from the end
// where ONNX allows them).
#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "cpu/dispatch.h"
#include "cpu/kernels/tensor_common.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels::tensor {

namespace {

std::vector<int64_t> indicesOf(const KernelContext& ctx, size_t i) {
  const Tensor& t = ctx.input(i);
  if (!ir::isInteger(t.dtype())) ctx.fail("indices must be an integer tensor, got " + t.summary());
  return t.toInt64Vector();
}

int64_t prod(const std::vector<int64_t>& d, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to; ++i) p *= d[i];
  return p;
}

void gather(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = int64_t(x.rank());
  if (r == 0) ctx.fail("data must have rank >= 1");
  const int64_t axis = normAxis(ctx, ctx.attrs().getInt("axis", 0), r);
  std::vector<int64_t> ind = indicesOf(ctx, 1);
  const int64_t D = x.dim(size_t(axis));
  const int64_t outer = prod(x.dims(), 0, size_t(axis)), inner = prod(x.dims(), size_t(axis) + 1, size_t(r));
  for (int64_t& k : ind) k = normIndex(ctx, k, D);
  std::vector<int64_t> dims(x.dims().begin(), x.dims().begin() + axis);
  const auto& idims = ctx.input(1).dims();
  dims.insert(dims.end(), idims.begin(), idims.end());
  dims.insert(dims.end(), x.dims().begin() + axis + 1, x.dims().end());
  std::vector<int64_t> idx;
  idx.reserve(size_t(ir::numelOf(dims)));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k : ind)
      for (int64_t j = 0; j < inner; ++j) idx.push_back((o * D + k) * inner + j);
  ctx.setOutput(0, take(x, dims, idx));
}

void gatherElements(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& it = ctx.input(1);
  const int64_t r = int64_t(x.rank());
  if (int64_t(it.rank()) != r) ctx.fail("data " + x.summary() + " and indices " + it.summary() + " differ in rank");
  const int64_t axis = normAxis(ctx, ctx.attrs().getInt("axis", 0), r);
  for (int64_t d = 0; d < r; ++d)
    if (d != axis && it.dim(size_t(d)) > x.dim(size_t(d)))
      ctx.fail("indices " + it.summary() + " exceed data " + x.summary() + " outside the axis");
  std::vector<int64_t> ind = indicesOf(ctx, 1);
  auto stride = stridesOf(x.dims());
  std::vector<int64_t> idx(ind.size());
  forEachIndex(it.dims(), [&](int64_t k, const std::vector<int64_t>& pos) {
    int64_t off = 0;
    for (size_t d = 0; d < pos.size(); ++d)
      off += (int64_t(d) == axis ? normIndex(ctx, ind[size_t(k)], x.dim(d)) : pos[d]) * stride[d];
    idx[size_t(k)] = off;
  });
  ctx.setOutput(0, take(x, it.dims(), idx));
}

void gatherND(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& it = ctx.input(1);
  const int64_t b = ctx.attrs().getInt("batch_dims", 0);
  const int64_t r = int64_t(x.rank()), q = int64_t(it.rank());
  if (r < 1 || q < 1) ctx.fail("data and indices must have rank >= 1");
  if (b < 0 || b >= std::min(r, q)) ctx.fail("batch_dims " + std::to_string(b) + " must be less than both ranks");
  for (int64_t d = 0; d < b; ++d)
    if (x.dim(size_t(d)) != it.dim(size_t(d))) ctx.fail("batch dims of data and indices differ");
  const int64_t k = it.dim(size_t(q - 1));
  if (k < 1 || k > r - b) ctx.fail("indices' last dim " + std::to_string(k) + " must be in [1, " + std::to_string(r - b) + "]");
  std::vector<int64_t> ind = indicesOf(ctx, 1);
  std::vector<int64_t> dims(it.dims().begin(), it.dims().end() - 1);
  dims.insert(dims.end(), x.dims().begin() + b + k, x.dims().end());
  const int64_t batches = prod(x.dims(), 0, size_t(b));
  const int64_t batchStride = prod(x.dims(), size_t(b), size_t(r));
  const int64_t sliceSize = prod(x.dims(), size_t(b + k), size_t(r));
  const int64_t tuplesPerBatch = prod(it.dims(), size_t(b), size_t(q - 1));
  auto stride = stridesOf(x.dims());
  std::vector<int64_t> idx;
  idx.reserve(size_t(ir::numelOf(dims)));
  for (int64_t bi = 0; bi < batches; ++bi)
    for (int64_t t = 0; t < tuplesPerBatch; ++t) {
      int64_t off = bi * batchStride;
      const int64_t* tup = &ind[size_t((bi * tuplesPerBatch + t) * k)];
      for (int64_t j = 0; j < k; ++j) off += normIndex(ctx, tup[j], x.dim(size_t(b + j))) * stride[size_t(b + j)];
      for (int64_t s = 0; s < sliceSize; ++s) idx.push_back(off + s);
    }
  ctx.setOutput(0, take(x, dims, idx));
}

// Applies `reduction` of updates[ui] into out[oi] for every (oi, ui) pair, in order.
void scatterApply(KernelContext& ctx, Tensor& out, const Tensor& upd,
                  const std::vector<std::pair<int64_t, int64_t>>& pairs) {
  const std::string red = ctx.attrs().getString("reduction", "none");
  if (red == "none") {
    ElemCopy cp(out.dtype());
    void* o = out.mutableRaw();
    for (auto [oi, ui] : pairs) cp(o, oi, upd.raw(), ui);
    return;
  }
  if (red != "add" && red != "mul" && red != "max" && red != "min")
    ctx.fail("reduction must be none, add, mul, max or min, got '" + red + "'");
  auto run = [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = ComputeT<T>;
    T* o = out.data<T>();
    const T* u = upd.data<T>();
    for (auto [oi, ui] : pairs) {
      const C a = C(o[oi]), b = C(u[ui]);
      C v;
      if (red == "add") v = C(a + b);
      else if (red == "mul") v = C(a * b);
      else if (red == "max") v = std::max(a, b);
      else v = std::min(a, b);
      o[oi] = T(v);
    }
  };
  if (out.dtype() == DataType::kBool) {
    // Boolean add is logical or, mul logical and (as numpy does for bool arrays).
    uint8_t* o = out.data<uint8_t>();
    const uint8_t* u = upd.data<uint8_t>();
    for (auto [oi, ui] : pairs) {
      if (red == "add" || red == "max") o[oi] = o[oi] || u[ui];
      else o[oi] = o[oi] && u[ui];
    }
    return;
  }
  dispatchNumeric(out.dtype(), run);
}

void scatterElements(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& it = ctx.input(1);
  const Tensor& upd = ctx.input(2);
  const int64_t r = int64_t(x.rank());
  if (int64_t(it.rank()) != r) ctx.fail("data " + x.summary() + " and indices " + it.summary() + " differ in rank");
  if (upd.dims() != it.dims()) ctx.fail("updates " + upd.summary() + " must have the indices' shape " + it.summary());
  if (upd.dtype() != x.dtype()) ctx.fail("updates must have the data's type");
  const int64_t axis = normAxis(ctx, ctx.attrs().getInt("axis", 0), r);
  for (int64_t d = 0; d < r; ++d)
    if (d != axis && it.dim(size_t(d)) > x.dim(size_t(d)))
      ctx.fail("indices " + it.summary() + " exceed data " + x.summary() + " outside the axis");
  std::vector<int64_t> ind = indicesOf(ctx, 1);
  auto stride = stridesOf(x.dims());
  std::vector<std::pair<int64_t, int64_t>> pairs(ind.size());
  forEachIndex(it.dims(), [&](int64_t k, const std::vector<int64_t>& pos) {
    int64_t off = 0;
    for (size_t d = 0; d < pos.size(); ++d)
      off += (int64_t(d) == axis ? normIndex(ctx, ind[size_t(k)], x.dim(d)) : pos[d]) * stride[d];
    pairs[size_t(k)] = {off, k};
  });
  Tensor out = x.clone();
  scatterApply(ctx, out, upd, pairs);
  ctx.setOutput(0, std::move(out));
}

void scatterND(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& it = ctx.input(1);
  const Tensor& upd = ctx.input(2);
  const int64_t r = int64_t(x.rank()), q = int64_t(it.rank());
  if (q < 1) ctx.fail("indices must have rank >= 1");
  const int64_t k = it.dim(size_t(q - 1));
  if (k < 0 || k > r) ctx.fail("indices' last dim " + std::to_string(k) + " exceeds the data rank " + std::to_string(r));
  std::vector<int64_t> want(it.dims().begin(), it.dims().end() - 1);
  want.insert(want.end(), x.dims().begin() + k, x.dims().end());
  if (upd.dims() != want) ctx.fail("updates " + upd.summary() + " must have shape " + dimsStr(want));
  if (upd.dtype() != x.dtype()) ctx.fail("updates must have the data's type");
  std::vector<int64_t> ind = indicesOf(ctx, 1);
  const int64_t tuples = prod(it.dims(), 0, size_t(q - 1));
  const int64_t sliceSize = prod(x.dims(), size_t(k), size_t(r));
  auto stride = stridesOf(x.dims());
  std::vector<std::pair<int64_t, int64_t>> pairs;
  pairs.reserve(size_t(tuples * sliceSize));
  for (int64_t t = 0; t < tuples; ++t) {
    int64_t off = 0;
    for (int64_t j = 0; j < k; ++j) off += normIndex(ctx, ind[size_t(t * k + j)], x.dim(size_t(j))) * stride[size_t(j)];
    for (int64_t s = 0; s < sliceSize; ++s) pairs.emplace_back(off + s, t * sliceSize + s);
  }
  Tensor out = x.clone();
  scatterApply(ctx, out, upd, pairs);
  ctx.setOutput(0, std::move(out));
}

void oneHot(KernelContext& ctx) {
  const Tensor& ind = ctx.input(0);
  const Tensor& dep = ctx.input(1);
  const Tensor& vals = ctx.input(2);
  if (dep.numel() != 1 || dep.dtype() == DataType::kString) ctx.fail("depth must be a numeric scalar");
  if (vals.rank() != 1 || vals.numel() != 2) ctx.fail("values must be [off, on], got " + vals.summary());
  if (ind.dtype() == DataType::kString) ctx.fail("indices must be numeric");
  const double dd = dep.getDouble(0);
  if (!(dd >= 1 && dd < 1e12)) ctx.fail("depth must be >= 1, got " + std::to_string(dd));
  const int64_t depth = int64_t(dd);
  const int64_t r = int64_t(ind.rank()) + 1;
  int64_t axis = ctx.attrs().getInt("axis", -1);
  axis = normAxis(ctx, axis, r);
  std::vector<int64_t> dims = ind.dims();
  dims.insert(dims.begin() + axis, depth);
  const int64_t outer = prod(ind.dims(), 0, size_t(axis)), inner = prod(ind.dims(), size_t(axis), ind.rank());
  std::vector<int64_t> idx(size_t(ir::numelOf(dims)));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t d = 0; d < depth; ++d)
      for (int64_t j = 0; j < inner; ++j) {
        const double raw = ind.getDouble(o * inner + j);
        int64_t v = std::isfinite(raw) && std::abs(raw) < 1e15 ? int64_t(raw) : depth;  // out of range: all off
        if (v < 0) v += depth;
        idx[size_t((o * depth + d) * inner + j)] = v == d ? 1 : 0;
      }
  ctx.setOutput(0, take(vals, dims, idx));
}

bool isNonZero(const Tensor& t, int64_t i) {
  if (t.dtype() == DataType::kString) return !t.str(i).empty();
  return t.getDouble(i) != 0;
}

void nonZero(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<std::vector<int64_t>> coords;
  forEachIndex(x.dims(), [&](int64_t k, const std::vector<int64_t>& pos) {
    if (isNonZero(x, k)) coords.push_back(pos);
  });
  const int64_t r = int64_t(x.rank()), n = int64_t(coords.size());
  Tensor& y = ctx.allocOutput(0, DataType::kI64, {r, n});
  int64_t* p = y.data<int64_t>();
  for (int64_t d = 0; d < r; ++d)
    for (int64_t i = 0; i < n; ++i) p[d * n + i] = coords[size_t(i)][size_t(d)];
}

void compress(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& c = ctx.input(1);
  if (c.rank() != 1) ctx.fail("condition must be 1-D, got " + c.summary());
  const bool hasAxis = ctx.attrs().has("axis");
  const int64_t axis = hasAxis ? normAxis(ctx, ctx.attrs().getInt("axis", 0), int64_t(x.rank())) : 0;
  const std::vector<int64_t> dims0 = hasAxis ? x.dims() : std::vector<int64_t>{x.numel()};
  const int64_t D = dims0[size_t(axis)];
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < c.numel(); ++i) {
    if (c.getDouble(i) == 0) continue;
    if (i >= D) ctx.fail("condition selects index " + std::to_string(i) + " beyond the extent " + std::to_string(D));
    keep.push_back(i);
  }
  const int64_t outer = prod(dims0, 0, size_t(axis)), inner = prod(dims0, size_t(axis) + 1, dims0.size());
  std::vector<int64_t> dims = dims0;
  dims[size_t(axis)] = int64_t(keep.size());
  std::vector<int64_t> idx;
  idx.reserve(size_t(ir::numelOf(dims)));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k : keep)
      for (int64_t j = 0; j < inner; ++j) idx.push_back((o * D + k) * inner + j);
  ctx.setOutput(0, take(x, dims, idx));
}

void reverseSequence(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) ctx.fail("input must have rank >= 2");
  const int64_t ba = ctx.attrs().getInt("batch_axis", 1), ta = ctx.attrs().getInt("time_axis", 0);
  if (!((ba == 0 && ta == 1) || (ba == 1 && ta == 0))) ctx.fail("batch_axis and time_axis must be 0 and 1");
  std::vector<int64_t> lens = indicesOf(ctx, 1);
  const int64_t B = x.dim(size_t(ba)), T = x.dim(size_t(ta));
  if (int64_t(lens.size()) != B) ctx.fail("sequence_lens has " + std::to_string(lens.size()) + " entries for batch " +
                                          std::to_string(B));
  for (int64_t l : lens)
    if (l < 0 || l > T) ctx.fail("sequence length " + std::to_string(l) + " is out of range [0, " + std::to_string(T) + "]");
  auto stride = stridesOf(x.dims());
  std::vector<int64_t> idx(size_t(x.numel()));
  forEachIndex(x.dims(), [&](int64_t k, const std::vector<int64_t>& pos) {
    const int64_t b = pos[size_t(ba)], t = pos[size_t(ta)];
    const int64_t src = t < lens[size_t(b)] ? lens[size_t(b)] - 1 - t : t;
    idx[size_t(k)] = k + (src - t) * stride[size_t(ta)];
  });
  ctx.setOutput(0, take(x, x.dims(), idx));
}

// Three-way comparison of two elements of one tensor.
std::function<int(int64_t, int64_t)> elemCompare(const KernelContext& ctx, const Tensor& x) {
  if (x.dtype() == DataType::kString)
    return [&x](int64_t a, int64_t b) { return x.str(a).compare(x.str(b)) < 0 ? -1 : (x.str(a) == x.str(b) ? 0 : 1); };
  std::function<int(int64_t, int64_t)> f;
  auto make = [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = ComputeT<T>;
    const T* p = x.data<T>();
    f = [p](int64_t a, int64_t b) {
      const C u = C(p[a]), v = C(p[b]);
      return u < v ? -1 : (v < u ? 1 : 0);
    };
  };
  try {
    dispatchAll(x.dtype(), make);
  } catch (const Error&) {
    ctx.fail(std::string("type ") + ir::dtypeName(x.dtype()) + " is not supported");
  }
  return f;
}

void unique(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const bool sorted = ctx.attrs().getInt("sorted", 1) != 0;
  const bool hasAxis = ctx.attrs().has("axis");
  const std::vector<int64_t> dims0 = hasAxis ? x.dims() : std::vector<int64_t>{x.numel()};
  const int64_t axis = hasAxis ? normAxis(ctx, ctx.attrs().getInt("axis", 0), int64_t(x.rank())) : 0;
  const int64_t D = dims0[size_t(axis)];
  const int64_t outer = prod(dims0, 0, size_t(axis)), inner = prod(dims0, size_t(axis) + 1, dims0.size());
  auto elem = elemCompare(ctx, x);
  // Slices along the axis compare lexicographically, in row-major order of the other dims.
  auto cmpSlice = [&](int64_t a, int64_t b) {
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < inner; ++j) {
        int c = elem((o * D + a) * inner + j, (o * D + b) * inner + j);
        if (c) return c;
      }
    return 0;
  };
  std::vector<int64_t> order(static_cast<size_t>(D));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cmpSlice(a, b) < 0; });
  // Groups of equal slices, in sorted order; first = first occurrence (stable sort).
  std::vector<int64_t> first, count, groupOf(static_cast<size_t>(D));
  for (size_t i = 0; i < order.size(); ++i) {
    if (i == 0 || cmpSlice(order[i - 1], order[i]) != 0) {
      first.push_back(order[i]);
      count.push_back(0);
    }
    groupOf[size_t(order[i])] = int64_t(first.size()) - 1;
    ++count.back();
  }
  const int64_t U = int64_t(first.size());
  std::vector<int64_t> outPos(static_cast<size_t>(U));  // group -> output position
  std::iota(outPos.begin(), outPos.end(), 0);
  if (!sorted) {
    std::vector<int64_t> g(static_cast<size_t>(U));
    std::iota(g.begin(), g.end(), 0);
    std::sort(g.begin(), g.end(), [&](int64_t a, int64_t b) { return first[size_t(a)] < first[size_t(b)]; });
    for (int64_t p = 0; p < U; ++p) outPos[size_t(g[size_t(p)])] = p;
  }
  std::vector<int64_t> ufirst(static_cast<size_t>(U)), ucount(static_cast<size_t>(U));
  for (int64_t g = 0; g < U; ++g) {
    ufirst[size_t(outPos[size_t(g)])] = first[size_t(g)];
    ucount[size_t(outPos[size_t(g)])] = count[size_t(g)];
  }
  std::vector<int64_t> dims = dims0;
  dims[size_t(axis)] = U;
  std::vector<int64_t> idx;
  idx.reserve(size_t(ir::numelOf(dims)));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k : ufirst)
      for (int64_t j = 0; j < inner; ++j) idx.push_back((o * D + k) * inner + j);
  ctx.setOutput(0, take(x, dims, idx));
  std::vector<int64_t> inverse(static_cast<size_t>(D));
  for (int64_t i = 0; i < D; ++i) inverse[size_t(i)] = outPos[size_t(groupOf[size_t(i)])];
  if (ctx.numOutputs() > 1) ctx.setOutput(1, Tensor::fromVector<int64_t>(DataType::kI64, {U}, ufirst));
  if (ctx.numOutputs() > 2) ctx.setOutput(2, Tensor::fromVector<int64_t>(DataType::kI64, {D}, inverse));
  if (ctx.numOutputs() > 3) ctx.setOutput(3, Tensor::fromVector<int64_t>(DataType::kI64, {U}, ucount));
}

}  // namespace

void registerTensorIndexKernels(KernelRegistry& r) {
  r.add("Gather", gather);
  r.add("GatherElements", gatherElements);
  r.add("GatherND", gatherND);
  r.add("ScatterElements", scatterElements);
  r.add("ScatterND", scatterND);
  r.add("OneHot", oneHot);
  r.add("NonZero", nonZero);
  r.add("Compress", compress);
  r.add("ReverseSequence", reverseSequence);
  r.add("Unique", unique);
}

}  // namespace anvil::cpu::kernels::tensor
