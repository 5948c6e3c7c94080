// Reference kernels of the tensor op family: constants, reshapes, transposes, concat and
// split, slicing, expand/tile/pad, shape queries, Range, depth/space moves, Trilu, EyeLike,
// CenterCropPad. Gather/scatter-like ops live in tensor_index.cpp, Resize in
// tensor_resize.cpp.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>

#include "cpu/dispatch.h"
#include "cpu/kernels/families.h"
#include "cpu/kernels/tensor_common.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

namespace {

using namespace tensor;

std::vector<int64_t> intsOf(const KernelContext& ctx, size_t i) {
  const Tensor& t = ctx.input(i);
  if (!ir::isInteger(t.dtype())) ctx.fail("input " + std::to_string(i) + " must be an integer tensor");
  return t.toInt64Vector();
}

// ---- constants ---------------------------------------------------------------------

void constant(KernelContext& ctx) {
  const ir::Attributes& a = ctx.attrs();
  if (const Tensor* v = a.getTensor("value")) return ctx.setOutput(0, *v);
  if (const Tensor* s = a.getTensor("sparse_value")) return ctx.setOutput(0, *s);
  if (a.has("value_float")) return ctx.setOutput(0, Tensor::scalar<float>(DataType::kF32, a.getFloat("value_float", 0)));
  if (a.has("value_floats")) {
    auto v = a.getFloats("value_floats");
    return ctx.setOutput(0, Tensor::fromVector<float>(DataType::kF32, {int64_t(v.size())}, v));
  }
  if (a.has("value_int")) return ctx.setOutput(0, Tensor::scalar<int64_t>(DataType::kI64, a.getInt("value_int", 0)));
  if (a.has("value_ints")) {
    auto v = a.getInts("value_ints");
    return ctx.setOutput(0, Tensor::fromVector<int64_t>(DataType::kI64, {int64_t(v.size())}, v));
  }
  if (a.has("value_string")) {
    Tensor& t = ctx.allocOutput(0, DataType::kString, {});
    t.data<std::string>()[0] = a.getString("value_string", "");
    return;
  }
  if (a.has("value_strings")) {
    auto v = a.getStrings("value_strings");
    Tensor& t = ctx.allocOutput(0, DataType::kString, {int64_t(v.size())});
    for (size_t i = 0; i < v.size(); ++i) t.data<std::string>()[i] = v[i];
    return;
  }
  ctx.fail("no value attribute");
}

void constantOfShape(KernelContext& ctx) {
  std::vector<int64_t> dims = intsOf(ctx, 0);
  for (int64_t d : dims)
    if (d < 0) ctx.fail("shape " + dimsStr(dims) + " has a negative extent");
  const Tensor* v = ctx.attrs().getTensor("value");
  if (!v) {
    ctx.allocOutput(0, DataType::kF32, dims);
    return;
  }
  if (v->numel() != 1) ctx.fail("attribute value must hold exactly one element");
  std::vector<int64_t> idx(size_t(ir::numelOf(dims)), 0);
  ctx.setOutput(0, take(*v, dims, idx));
}

// ---- Identity, Dropout -------------------------------------------------------------

void identity(KernelContext& ctx) { ctx.setOutput(0, ctx.input(0)); }

void dropout(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  double ratio = 0.5;
  if (ctx.hasInput(1)) {
    const Tensor& r = ctx.input(1);
    if (r.numel() != 1) ctx.fail("ratio must be a scalar");
    ratio = r.getDouble(0);
  }
  bool training = false;
  if (ctx.hasInput(2)) {
    const Tensor& t = ctx.input(2);
    if (t.numel() != 1) ctx.fail("training_mode must be a scalar");
    training = t.getDouble(0) != 0;
  }
  const bool wantMask = ctx.numOutputs() > 1 && ctx.outputWanted(1);
  if (!training || ratio == 0) {
    ctx.setOutput(0, x);
    if (wantMask) {
      Tensor& m = ctx.allocOutput(1, DataType::kBool, x.dims());
      std::fill_n(m.data<uint8_t>(), size_t(m.numel()), uint8_t(1));
    }
    return;
  }
  if (!(ratio > 0 && ratio < 1)) ctx.fail("ratio must be in [0, 1), got " + std::to_string(ratio));
  // With a seed, draws follow numpy's RandomState(seed).uniform (MT19937, 53-bit doubles),
  // which is how ONNX's reference and its node tests define the mask.
  std::mt19937 gen;
  if (ctx.attrs().has("seed")) gen.seed(uint32_t(ctx.attrs().getInt("seed", 0)));
  else gen.seed(std::random_device{}());
  auto uniform = [&gen] {
    const uint32_t a = gen() >> 5, b = gen() >> 6;
    return (double(a) * 67108864.0 + double(b)) / 9007199254740992.0;
  };
  Tensor mask(DataType::kBool, x.dims());
  uint8_t* mk = mask.data<uint8_t>();
  for (int64_t i = 0; i < x.numel(); ++i) mk[i] = uniform() >= ratio;
  dispatchFloat(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = ComputeT<T>;
    Tensor& y = ctx.allocOutput(0, x.dtype(), x.dims());
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const C scale = C(1.0 / (1.0 - ratio));
    for (int64_t i = 0; i < x.numel(); ++i) py[i] = T(mk[i] ? C(px[i]) * scale : C(0));
  });
  if (wantMask) ctx.setOutput(1, mask);
}

// ---- Reshape, Flatten, Squeeze, Unsqueeze ------------------------------------------

void reshape(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> shape = intsOf(ctx, 1);
  const bool allowzero = ctx.attrs().getInt("allowzero", 0) != 0;
  int64_t inferAt = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    int64_t& d = shape[i];
    if (d == -1) {
      if (inferAt >= 0) ctx.fail("shape " + dimsStr(shape) + " has more than one -1");
      inferAt = int64_t(i);
      continue;
    }
    if (d < -1) ctx.fail("shape has an invalid extent " + std::to_string(d));
    if (d == 0 && !allowzero) {
      if (i >= x.rank()) ctx.fail("shape element " + std::to_string(i) + " is 0 but the input has rank " +
                                  std::to_string(x.rank()));
      d = x.dim(i);
    }
    known *= d;
  }
  if (inferAt >= 0) {
    if (known == 0 || x.numel() % known != 0)
      ctx.fail("cannot reshape " + x.summary() + " to " + dimsStr(intsOf(ctx, 1)));
    shape[size_t(inferAt)] = x.numel() / known;
  }
  if (ir::numelOf(shape) != x.numel()) ctx.fail("cannot reshape " + x.summary() + " to " + dimsStr(shape));
  ctx.setOutput(0, x.reshaped(shape));
}

void flatten(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = int64_t(x.rank());
  int64_t axis = ctx.attrs().getInt("axis", 1);
  if (axis < -r || axis > r) ctx.fail("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(r));
  if (axis < 0) axis += r;
  int64_t a = 1, b = 1;
  for (int64_t i = 0; i < r; ++i) (i < axis ? a : b) *= x.dim(size_t(i));
  ctx.setOutput(0, x.reshaped({a, b}));
}

void squeeze(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = int64_t(x.rank());
  std::set<int64_t> drop;
  if (ctx.hasInput(1)) {
    for (int64_t a : intsOf(ctx, 1)) {
      a = normAxis(ctx, a, r);
      if (x.dim(size_t(a)) != 1) ctx.fail("cannot squeeze axis " + std::to_string(a) + " of " + x.summary());
      drop.insert(a);
    }
  } else {
    for (int64_t i = 0; i < r; ++i)
      if (x.dim(size_t(i)) == 1) drop.insert(i);
  }
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < r; ++i)
    if (!drop.count(i)) dims.push_back(x.dim(size_t(i)));
  ctx.setOutput(0, x.reshaped(dims));
}

void unsqueeze(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> axes = intsOf(ctx, 1);
  const int64_t r = int64_t(x.rank() + axes.size());
  std::set<int64_t> ins;
  for (int64_t a : axes)
    if (!ins.insert(normAxis(ctx, a, r)).second) ctx.fail("axes repeat axis " + std::to_string(a));
  std::vector<int64_t> dims;
  size_t k = 0;
  for (int64_t i = 0; i < r; ++i) dims.push_back(ins.count(i) ? 1 : x.dim(k++));
  ctx.setOutput(0, x.reshaped(dims));
}

// ---- Transpose, Concat, Split, Slice -----------------------------------------------

void transpose(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = int64_t(x.rank());
  std::vector<int64_t> perm = ctx.attrs().getInts("perm");
  if (!ctx.attrs().has("perm"))
    for (int64_t i = r - 1; i >= 0; --i) perm.push_back(i);
  if (int64_t(perm.size()) != r) ctx.fail("perm " + dimsStr(perm) + " does not match rank " + std::to_string(r));
  std::vector<bool> seen(size_t(r), false);
  for (int64_t& p : perm) {
    p = normAxis(ctx, p, r, "perm entry");
    if (seen[size_t(p)]) ctx.fail("perm repeats axis " + std::to_string(p));
    seen[size_t(p)] = true;
  }
  auto inStride = stridesOf(x.dims());
  std::vector<int64_t> dims, st;
  for (int64_t p : perm) {
    dims.push_back(x.dim(size_t(p)));
    st.push_back(inStride[size_t(p)]);
  }
  std::vector<int64_t> idx(size_t(x.numel()));
  forEachIndex(dims, [&](int64_t k, const std::vector<int64_t>& pos) {
    int64_t off = 0;
    for (size_t d = 0; d < pos.size(); ++d) off += pos[d] * st[d];
    idx[size_t(k)] = off;
  });
  ctx.setOutput(0, take(x, dims, idx));
}

void concat(KernelContext& ctx) {
  const Tensor& first = ctx.input(0);
  const int64_t r = int64_t(first.rank());
  if (r == 0) ctx.fail("cannot concatenate scalars");
  const int64_t axis = normAxis(ctx, ctx.attrs().getInt("axis", 0), r);
  std::vector<int64_t> dims = first.dims();
  dims[size_t(axis)] = 0;
  for (size_t i = 0; i < ctx.numInputs(); ++i) {
    const Tensor& t = ctx.input(i);
    if (t.dtype() != first.dtype() || int64_t(t.rank()) != r) ctx.fail("input " + std::to_string(i) + " is " +
                                                                         t.summary() + ", incompatible with " + first.summary());
    for (int64_t d = 0; d < r; ++d)
      if (d != axis && t.dim(size_t(d)) != first.dim(size_t(d)))
        ctx.fail("input " + std::to_string(i) + " is " + t.summary() + ", which differs from " + first.summary() +
                 " outside axis " + std::to_string(axis));
    dims[size_t(axis)] += t.dim(size_t(axis));
  }
  Tensor& out = ctx.allocOutput(0, first.dtype(), dims);
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= dims[size_t(d)];
  int64_t inner = 1;
  for (int64_t d = axis + 1; d < r; ++d) inner *= dims[size_t(d)];
  const int64_t outRow = dims[size_t(axis)] * inner;
  ElemCopy cp(first.dtype());
  void* o = out.mutableRaw();
  int64_t offset = 0;
  for (size_t i = 0; i < ctx.numInputs(); ++i) {
    const Tensor& t = ctx.input(i);
    const int64_t row = t.dim(size_t(axis)) * inner;
    for (int64_t a = 0; a < outer; ++a)
      for (int64_t k = 0; k < row; ++k) cp(o, a * outRow + offset + k, t.raw(), a * row + k);
    offset += row;
  }
}

void split(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = int64_t(x.rank());
  if (r == 0) ctx.fail("cannot split a scalar");
  const int64_t axis = normAxis(ctx, ctx.attrs().getInt("axis", 0), r);
  const int64_t n = int64_t(ctx.numOutputs());
  const int64_t total = x.dim(size_t(axis));
  std::vector<int64_t> lens;
  if (ctx.hasInput(1)) {
    lens = intsOf(ctx, 1);
    int64_t sum = 0;
    for (int64_t l : lens) {
      if (l < 0) ctx.fail("split entries must be >= 0");
      sum += l;
    }
    if (int64_t(lens.size()) != n || sum != total)
      ctx.fail("split " + dimsStr(lens) + " does not cut extent " + std::to_string(total) + " into " + std::to_string(n) +
               " outputs");
  } else {
    const int64_t chunk = total % n == 0 ? total / n : total / n + 1;
    if (chunk * (n - 1) > total) ctx.fail("cannot split extent " + std::to_string(total) + " into " + std::to_string(n));
    for (int64_t i = 0; i < n; ++i) lens.push_back(i + 1 < n ? chunk : total - chunk * (n - 1));
  }
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.dim(size_t(d));
  for (int64_t d = axis + 1; d < r; ++d) inner *= x.dim(size_t(d));
  int64_t start = 0;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int64_t> dims = x.dims();
    dims[size_t(axis)] = lens[size_t(i)];
    std::vector<int64_t> idx;
    idx.reserve(size_t(ir::numelOf(dims)));
    for (int64_t a = 0; a < outer; ++a)
      for (int64_t k = 0; k < lens[size_t(i)] * inner; ++k) idx.push_back((a * total + start) * inner + k);
    start += lens[size_t(i)];
    if (ctx.outputWanted(size_t(i))) ctx.setOutput(size_t(i), take(x, dims, idx));
  }
}

void slice(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = int64_t(x.rank());
  std::vector<int64_t> starts = intsOf(ctx, 1), ends = intsOf(ctx, 2);
  const size_t n = starts.size();
  if (ends.size() != n) ctx.fail("starts and ends have different lengths");
  std::vector<int64_t> axes, steps(n, 1);
  if (ctx.hasInput(3)) {
    axes = intsOf(ctx, 3);
    if (axes.size() != n) ctx.fail("axes and starts have different lengths");
  } else {
    if (int64_t(n) > r) ctx.fail("more starts than input dims");
    for (size_t i = 0; i < n; ++i) axes.push_back(int64_t(i));
  }
  if (ctx.hasInput(4)) {
    steps = intsOf(ctx, 4);
    if (steps.size() != n) ctx.fail("steps and starts have different lengths");
  }
  std::vector<int64_t> st(size_t(r), 0), step(size_t(r), 1), dims = x.dims();
  std::vector<bool> seen(size_t(r), false);
  for (size_t i = 0; i < n; ++i) {
    const int64_t a = normAxis(ctx, axes[i], r);
    if (seen[size_t(a)]) ctx.fail("axes repeat axis " + std::to_string(a));
    seen[size_t(a)] = true;
    if (steps[i] == 0 || steps[i] == std::numeric_limits<int64_t>::min()) ctx.fail("steps must not be 0");
    const int64_t dim = x.dim(size_t(a));
    int64_t s = starts[i], e = ends[i];
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (steps[i] > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
    } else {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
    }
    const int64_t len = steps[i] > 0 ? (e - s + steps[i] - 1) / steps[i] : (s - e - steps[i] - 1) / (-steps[i]);
    dims[size_t(a)] = std::max<int64_t>(len, 0);
    st[size_t(a)] = s;
    step[size_t(a)] = steps[i];
  }
  auto stride = stridesOf(x.dims());
  std::vector<int64_t> idx(size_t(ir::numelOf(dims)));
  forEachIndex(dims, [&](int64_t k, const std::vector<int64_t>& pos) {
    int64_t off = 0;
    for (size_t d = 0; d < pos.size(); ++d) off += (st[d] + pos[d] * step[d]) * stride[d];
    idx[size_t(k)] = off;
  });
  ctx.setOutput(0, take(x, dims, idx));
}

// ---- Expand, Tile, Pad -------------------------------------------------------------

void expand(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> shape = intsOf(ctx, 1);
  std::vector<int64_t> dims;
  try {
    dims = ir::broadcastExtents(x.dims(), shape);
  } catch (const Error& e) {
    ctx.fail(e.what());
  }
  ctx.setOutput(0, take(x, dims, broadcastIndex(x.dims(), dims)));
}

void tile(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> rep = intsOf(ctx, 1);
  if (rep.size() != x.rank()) ctx.fail("repeats has " + std::to_string(rep.size()) + " entries for rank " +
                                       std::to_string(x.rank()));
  std::vector<int64_t> dims = x.dims();
  for (size_t i = 0; i < rep.size(); ++i) {
    if (rep[i] < 0) ctx.fail("repeats must be >= 0");
    dims[i] *= rep[i];
  }
  auto stride = stridesOf(x.dims());
  std::vector<int64_t> idx(size_t(ir::numelOf(dims)));
  forEachIndex(dims, [&](int64_t k, const std::vector<int64_t>& pos) {
    int64_t off = 0;
    for (size_t d = 0; d < pos.size(); ++d) off += (pos[d] % x.dim(d)) * stride[d];
    idx[size_t(k)] = off;
  });
  ctx.setOutput(0, take(x, dims, idx));
}

void pad(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = int64_t(x.rank());
  const std::string mode = ctx.attrs().getString("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap")
    ctx.fail("mode must be constant, reflect, edge or wrap, got '" + mode + "'");
  std::vector<int64_t> pads = intsOf(ctx, 1);
  std::vector<int64_t> axes;
  if (ctx.hasInput(3)) {
    for (int64_t a : intsOf(ctx, 3)) axes.push_back(normAxis(ctx, a, r));
  } else {
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  }
  const size_t n = axes.size();
  if (pads.size() != 2 * n) ctx.fail("pads has " + std::to_string(pads.size()) + " entries, expected " + std::to_string(2 * n));
  std::vector<int64_t> before(size_t(r), 0), dims = x.dims();
  for (size_t i = 0; i < n; ++i) {
    const size_t a = size_t(axes[i]);
    before[a] = pads[i];
    dims[a] += pads[i] + pads[i + n];
    if (dims[a] < 0) ctx.fail("pads " + dimsStr(pads) + " remove more than the extent of axis " + std::to_string(a));
  }
  // The fill value in the data's type (an importer may hand a value of another type).
  Tensor fill(x.dtype(), {});
  if (ctx.hasInput(2) && ctx.input(2).numel() > 0) {
    const Tensor& cv = ctx.input(2);
    if (cv.dtype() == x.dtype()) fill = take(cv, {}, {0});
    else if (x.dtype() != DataType::kString && cv.dtype() != DataType::kString) fill.setDouble(0, cv.getDouble(0));
    else ctx.fail("constant_value type does not match the data");
  }
  for (int64_t d = 0; d < r; ++d)
    if (x.dim(size_t(d)) == 0 && dims[size_t(d)] > 0 && mode != "constant")
      ctx.fail(mode + " padding of an empty axis");
  auto stride = stridesOf(x.dims());
  std::vector<int64_t> idx(size_t(ir::numelOf(dims)));
  forEachIndex(dims, [&](int64_t k, const std::vector<int64_t>& pos) {
    int64_t off = 0;
    for (size_t d = 0; d < pos.size(); ++d) {
      const int64_t n0 = x.dim(d);
      int64_t i = pos[d] - before[d];
      if (i < 0 || i >= n0) {
        if (mode == "constant") {
          off = -1;
          break;
        } else if (mode == "edge") {
          i = std::clamp<int64_t>(i, 0, n0 - 1);
        } else if (mode == "wrap") {
          i = ((i % n0) + n0) % n0;
        } else if (n0 == 1) {
          i = 0;
        } else {  // reflect, numpy-style (edge not repeated), any number of periods
          const int64_t period = 2 * (n0 - 1);
          i = ((i % period) + period) % period;
          if (i >= n0) i = period - i;
        }
      }
      off += i * stride[d];
    }
    idx[size_t(k)] = off;
  });
  ctx.setOutput(0, take(x, dims, idx, &fill));
}

// ---- Shape, Size, Range ------------------------------------------------------------

void shapeOp(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = int64_t(x.rank());
  auto clampAxis = [&](int64_t a) { return std::clamp<int64_t>(a < 0 ? a + r : a, 0, r); };
  const int64_t start = clampAxis(ctx.attrs().getInt("start", 0));
  const int64_t end = ctx.attrs().has("end") ? clampAxis(ctx.attrs().getInt("end", r)) : r;
  std::vector<int64_t> v;
  for (int64_t i = start; i < end; ++i) v.push_back(x.dim(size_t(i)));
  ctx.setOutput(0, Tensor::fromVector<int64_t>(DataType::kI64, {int64_t(v.size())}, v));
}

void size(KernelContext& ctx) { ctx.setOutput(0, Tensor::scalar<int64_t>(DataType::kI64, ctx.input(0).numel())); }

void range(KernelContext& ctx) {
  const Tensor& s = ctx.input(0);
  for (size_t i = 0; i < 3; ++i)
    if (ctx.input(i).numel() != 1 || ctx.input(i).dtype() != s.dtype())
      ctx.fail("start, limit and delta must be scalars of one type");
  dispatchNumeric(s.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T start = ctx.input(0).data<T>()[0], limit = ctx.input(1).data<T>()[0], delta = ctx.input(2).data<T>()[0];
    if (delta == T(0)) ctx.fail("delta must not be 0");
    const double count = std::ceil((double(limit) - double(start)) / double(delta));
    if (!(count < 1e12)) ctx.fail("range of " + std::to_string(count) + " elements is too large (or NaN)");
    const int64_t n = std::max<int64_t>(int64_t(count), 0);
    Tensor& y = ctx.allocOutput(0, s.dtype(), {n});
    T* py = y.data<T>();
    for (int64_t i = 0; i < n; ++i) py[i] = T(start + T(i) * delta);
  });
}

// ---- DepthToSpace, SpaceToDepth ----------------------------------------------------

void depthSpace(KernelContext& ctx, bool toSpace) {
  const Tensor& x = ctx.input(0);
  if (x.rank() != 4) ctx.fail("input must be 4-D, got " + x.summary());
  const int64_t b = ctx.attrs().requireInt("blocksize");
  if (b < 1 || b > (int64_t(1) << 20)) ctx.fail("blocksize must be in [1, 2^20]");
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  std::vector<int64_t> idx;
  std::vector<int64_t> dims;
  if (toSpace) {
    if (C % (b * b) != 0) ctx.fail("channels " + std::to_string(C) + " are not divisible by blocksize^2");
    const bool crd = ctx.attrs().getString("mode", "DCR") == "CRD";
    const int64_t Co = C / (b * b);
    dims = {N, Co, H * b, W * b};
    idx.resize(size_t(ir::numelOf(dims)));
    forEachIndex(dims, [&](int64_t k, const std::vector<int64_t>& p) {
      const int64_t h = p[2] / b, i = p[2] % b, w = p[3] / b, j = p[3] % b;
      const int64_t c = crd ? p[1] * b * b + i * b + j : (i * b + j) * Co + p[1];
      idx[size_t(k)] = ((p[0] * C + c) * H + h) * W + w;
    });
  } else {
    if (H % b != 0 || W % b != 0) ctx.fail("spatial dims of " + x.summary() + " are not divisible by the blocksize");
    dims = {N, C * b * b, H / b, W / b};
    idx.resize(size_t(ir::numelOf(dims)));
    forEachIndex(dims, [&](int64_t k, const std::vector<int64_t>& p) {
      const int64_t blk = p[1] / C, c = p[1] % C, i = blk / b, j = blk % b;
      idx[size_t(k)] = ((p[0] * C + c) * H + p[2] * b + i) * W + p[3] * b + j;
    });
  }
  ctx.setOutput(0, take(x, dims, idx));
}

// ---- Trilu, EyeLike, CenterCropPad -------------------------------------------------

void trilu(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) ctx.fail("input must have rank >= 2");
  int64_t k = 0;
  if (ctx.hasInput(1)) {
    if (ctx.input(1).numel() != 1) ctx.fail("k must be a scalar");
    k = ctx.input(1).getInt(0);
  }
  const bool upper = ctx.attrs().getInt("upper", 1) != 0;
  const int64_t R = x.dim(x.rank() - 2), C = x.dim(x.rank() - 1);
  std::vector<int64_t> idx(size_t(x.numel()));
  for (int64_t l = 0; l < x.numel(); ++l) {
    const int64_t i = (l / C) % R, j = l % C;
    idx[size_t(l)] = (upper ? j - i >= k : j - i <= k) ? l : -1;
  }
  ctx.setOutput(0, take(x, x.dims(), idx));
}

void eyeLike(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() != 2) ctx.fail("input must be 2-D, got " + x.summary());
  DataType dt = ctx.attrs().has("dtype") ? DataType(ctx.attrs().getInt("dtype", 1)) : x.dtype();
  const int64_t k = ctx.attrs().getInt("k", 0);
  Tensor& y = ctx.allocOutput(0, dt, x.dims());
  for (int64_t i = 0; i < x.dim(0); ++i) {
    const int64_t j = i + k;
    if (j >= 0 && j < x.dim(1)) y.setDouble(i * x.dim(1) + j, 1.0);
  }
}

void centerCropPad(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = int64_t(x.rank());
  std::vector<int64_t> shape = intsOf(ctx, 1);
  std::vector<int64_t> axes;
  if (ctx.attrs().has("axes")) {
    for (int64_t a : ctx.attrs().getInts("axes")) axes.push_back(normAxis(ctx, a, r));
  } else {
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  }
  if (shape.size() != axes.size()) ctx.fail("shape has " + std::to_string(shape.size()) + " entries for " +
                                            std::to_string(axes.size()) + " axes");
  std::vector<int64_t> dims = x.dims(), shift(size_t(r), 0);  // input index = output index + shift
  for (size_t i = 0; i < axes.size(); ++i) {
    const size_t a = size_t(axes[i]);
    if (shape[i] < 0) ctx.fail("shape entries must be >= 0");
    const int64_t d = x.dim(a);
    shift[a] = shape[i] < d ? (d - shape[i]) / 2 : -((shape[i] - d) / 2);
    dims[a] = shape[i];
  }
  auto stride = stridesOf(x.dims());
  std::vector<int64_t> idx(size_t(ir::numelOf(dims)));
  forEachIndex(dims, [&](int64_t k, const std::vector<int64_t>& pos) {
    int64_t off = 0;
    for (size_t d = 0; d < pos.size(); ++d) {
      const int64_t i = pos[d] + shift[d];
      if (i < 0 || i >= x.dim(d)) {
        off = -1;
        break;
      }
      off += i * stride[d];
    }
    idx[size_t(k)] = off;
  });
  ctx.setOutput(0, take(x, dims, idx));
}

}  // namespace

void registerTensorKernels(KernelRegistry& r) {
  r.add("Constant", constant);
  r.add("ConstantOfShape", constantOfShape);
  r.add("Identity", identity);
  r.add("Dropout", dropout);
  r.add("Reshape", reshape);
  r.add("Flatten", flatten);
  r.add("Squeeze", squeeze);
  r.add("Unsqueeze", unsqueeze);
  r.add("Transpose", transpose);
  r.add("Concat", concat);
  r.add("Split", split);
  r.add("Slice", slice);
  r.add("Expand", expand);
  r.add("Tile", tile);
  r.add("Pad", pad);
  r.add("Shape", shapeOp);
  r.add("Size", size);
  r.add("Range", range);
  r.add("DepthToSpace", [](KernelContext& c) { depthSpace(c, true); });
  r.add("SpaceToDepth", [](KernelContext& c) { depthSpace(c, false); });
  r.add("Trilu", trilu);
  r.add("EyeLike", eyeLike);
  r.add("CenterCropPad", centerCropPad);
  tensor::registerTensorIndexKernels(r);
  tensor::registerTensorResizeKernels(r);
}

}  // namespace anvil::cpu::kernels
