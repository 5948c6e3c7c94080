// Native data-movement kernels, for any element type of whole bytes: Transpose, Slice,
// Expand (one strided copy each), Concat, Split, Gather (row copies), and the shape and
// constant producers Shape, ConstantOfShape and Constant. Copies move bytes, so results
// equal the reference kernels' (cpu/kernels/tensor*.cpp) exactly; bad indices fail the
// step as the reference does.
#include <cstring>

#include "cpu/tactics/native_ops_util.h"

// GCC 12's -O2 vectorizes a loop only when no scalar remainder is left (its "very cheap"
// cost model); the loops here run over arbitrary extents, so this file asks for the
// dynamic model (per-element IEEE operations: results do not change).
#pragma GCC optimize("vect-cost-model=dynamic")

namespace anvil::runtime::nops {

void registerTiledTranspose(Kernels& k);  // native_ops_transpose.cpp: 4-byte planes, AVX2 / AVX-512

void copyStrided(Executor* ex, size_t elem, int rank, const int64_t* dims, const int64_t* strides, const void* src,
                 void* dst) {
  BroadcastPlan<1> p;
  p.numel = 1;
  p.rank = 0;
  for (int i = 0; i < rank; ++i) {
    p.numel *= dims[i];
    if (dims[i] == 1) continue;
    if (p.rank > 0 && p.strides[0][p.rank - 1] == strides[i] * dims[i]) {
      p.dims[p.rank - 1] *= dims[i];
      p.strides[0][p.rank - 1] = strides[i];
    } else {
      p.dims[p.rank] = dims[i];
      p.strides[0][p.rank] = strides[i];
      ++p.rank;
    }
  }
  if (p.numel <= 0) return;
  if (p.rank == 0) {
    p.rank = 1;
    p.dims[0] = 1;
    p.strides[0][0] = 1;
  }
  const char* in = static_cast<const char*>(src);
  char* out = static_cast<char*>(dst);
  const int64_t grain = std::max<int64_t>(1, int64_t(65536 / elem));
  parallelRange(ex, p.numel, grain, [&](int64_t b, int64_t e) {
    p.forRuns(b, e, [&](int64_t o, const int64_t* off, int64_t len, const int64_t* st) {
      const int64_t s = st[0];
      if (s == 1) {
        std::memcpy(out + o * int64_t(elem), in + off[0] * int64_t(elem), size_t(len) * elem);
        return;
      }
      auto gather = [&](auto tag) {
        using T = decltype(tag);
        const T* __restrict from = reinterpret_cast<const T*>(in) + off[0];
        T* __restrict to = reinterpret_cast<T*>(out) + o;
        for (int64_t i = 0; i < len; ++i) to[i] = from[i * s];
      };
      switch (elem) {
        case 1: return gather(uint8_t());
        case 2: return gather(uint16_t());
        case 4: return gather(uint32_t());
        case 8: return gather(uint64_t());
        default:
          for (int64_t i = 0; i < len; ++i)
            std::memcpy(out + (o + i) * int64_t(elem), in + (off[0] + i * s) * int64_t(elem), elem);
      }
    });
  });
}

namespace {

// Row-major element strides of a view.
void stridesOf(const TensorView& v, int64_t* s) {
  int64_t acc = 1;
  for (int i = v.rank - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= v.dims[i];
  }
}

bool isIndexType(DataType t) { return t == DataType::kI32 || t == DataType::kI64; }

// Output i when its extents are known only now (rank -1 in the plan: the op's values
// decide them): the runtime's allocator gives it memory. Static outputs pass through.
const TensorView& outputWith(const StepArgs& a, int i, DataType dtype, const int64_t* dims, int rank) {
  if (a.out(i).rank >= 0) return a.out(i);
  if (!a.dynamic) a.fail("output extents are known only at run time but the runtime gave no allocator");
  a.dynamic->allocate(i, dtype, dims, rank);
  return a.out(i);
}

// ---- Transpose ---------------------------------------------------------------------

struct TransposeParams {
  int32_t rank = 0;
  int32_t perm[kMaxRank] = {};
};

void transposeKernel(const StepArgs& a) {
  const TransposeParams& p = a.paramsAs<TransposeParams>();
  const TensorView& x = a.in(0);
  int64_t in[kMaxRank], st[kMaxRank];
  stridesOf(x, in);
  for (int d = 0; d < p.rank; ++d) st[d] = in[p.perm[d]];
  copyStrided(a.executor, elemBytes(x.dtype), p.rank, a.out(0).dims, st, x.data, a.out(0).data);
}

// ---- Slice -------------------------------------------------------------------------

void sliceKernel(const StepArgs& a) {
  const TensorView& x = a.in(0);
  const int r = x.rank;
  int64_t start[kMaxRank] = {}, step[kMaxRank], in[kMaxRank], st[kMaxRank];
  bool sliced[kMaxRank] = {};
  int64_t len[kMaxRank];
  for (int d = 0; d < r; ++d) {
    step[d] = 1;
    len[d] = x.dims[d];
  }
  stridesOf(x, in);
  const int64_t n = a.in(1).numel();
  if (a.in(2).numel() != n || (a.hasInput(3) && a.in(3).numel() != n) || (a.hasInput(4) && a.in(4).numel() != n))
    a.fail("starts, ends, axes and steps differ in length");
  for (int64_t i = 0; i < n; ++i) {
    const int64_t axis = normAxis(a.hasInput(3) ? intAt(a.in(3), i) : i, r);
    const int64_t stp = a.hasInput(4) ? intAt(a.in(4), i) : 1;
    if (axis < 0 || axis >= r || stp == 0) a.fail("bad axes or steps");
    const int64_t dim = x.dims[axis];
    int64_t s = intAt(a.in(1), i), e = intAt(a.in(2), i);
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (stp > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
    } else {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
    }
    if (sliced[axis]) a.fail("axes repeat an axis");
    len[axis] = std::max<int64_t>(0, stp > 0 ? (e - s + stp - 1) / stp : (s - e - stp - 1) / (-stp));
    start[axis] = s;
    step[axis] = stp;
    sliced[axis] = true;
  }
  const TensorView& y = outputWith(a, 0, x.dtype, len, r);
  // A planned extent must be what these starts and ends select (it is unless the values
  // changed under a fixed plan): never read outside the input.
  if (y.rank != r) a.fail("output rank differs from the input's");
  for (int d = 0; d < r; ++d)
    if (y.dims[d] != len[d]) a.fail("starts/ends select other extents than the planned output's");
  int64_t off = 0;
  for (int d = 0; d < r; ++d) {
    if (y.dims[d] > 0) off += start[d] * in[d];
    st[d] = step[d] * in[d];
  }
  const size_t e = elemBytes(x.dtype);
  copyStrided(a.executor, e, r, y.dims, st, static_cast<const char*>(x.data) + off * int64_t(e), y.data);
}

// ---- Expand ------------------------------------------------------------------------

void expandKernel(const StepArgs& a) {
  const TensorView& x = a.in(0);
  const TensorView& shape = a.in(1);
  // The numpy broadcast of X's extents and the shape's values.
  const int64_t sn = shape.numel();
  const int r = int(std::max<int64_t>(x.rank, sn));
  if (r > kMaxRank) a.fail("shape has too many dims");
  int64_t dims[kMaxRank] = {};
  for (int d = 0; d < r; ++d) {
    const int xi = d - (r - x.rank), si = d - (r - int(sn));
    const int64_t xe = xi >= 0 ? x.dims[xi] : 1, se = si >= 0 ? intAt(shape, si) : 1;
    if (xe != se && xe != 1 && se != 1) a.fail("input does not broadcast to the shape");
    dims[d] = xe == 1 ? se : xe;
  }
  const TensorView& y = outputWith(a, 0, x.dtype, dims, r);
  if (y.rank != r) a.fail("output rank differs from the broadcast's");
  for (int d = 0; d < r; ++d)
    if (y.dims[d] != dims[d]) a.fail("shape values select other extents than the planned output's");
  int64_t in[kMaxRank], st[kMaxRank] = {};
  stridesOf(x, in);
  for (int j = 0; j < x.rank; ++j) st[y.rank - x.rank + j] = x.dims[j] == 1 ? 0 : in[j];
  copyStrided(a.executor, elemBytes(x.dtype), y.rank, y.dims, st, x.data, y.data);
}

// ---- Concat, Split -------------------------------------------------------------------

struct AxisParams {
  int32_t axis = 0;
};

void concatKernel(const StepArgs& a) {
  const int axis = a.paramsAs<AxisParams>().axis;
  const TensorView& y = a.out(0);
  const int64_t e = int64_t(elemBytes(y.dtype));
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= y.dims[d];
  for (int d = axis + 1; d < y.rank; ++d) inner *= y.dims[d];
  const int64_t outRow = y.dims[axis] * inner * e;
  char* out = y.as<char>();
  parallelRange(a.executor, outer, std::max<int64_t>(1, 65536 / std::max<int64_t>(outRow, 1)), [&](int64_t b, int64_t en) {
    int64_t offset = 0;
    for (int i = 0; i < a.numInputs; ++i) {
      const TensorView& t = a.in(i);
      const int64_t row = t.dims[axis] * inner * e;
      const char* src = t.as<const char>();
      for (int64_t o = b; o < en && row > 0; ++o)
        if (out + o * outRow + offset != src + o * row)  // else in place (runtime/memory_planner.cpp)
          std::memcpy(out + o * outRow + offset, src + o * row, size_t(row));
      offset += row;
    }
  });
}

void splitKernel(const StepArgs& a) {
  const int axis = a.paramsAs<AxisParams>().axis;
  const TensorView& x = a.in(0);
  const int64_t e = int64_t(elemBytes(x.dtype));
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= x.dims[d];
  for (int d = axis + 1; d < x.rank; ++d) inner *= x.dims[d];
  // Part lengths as the reference decides them (an unused output has no view, but its
  // part still takes its place): the split input, or equal parts with a shorter last.
  const int n = a.numOutputs;
  const int64_t total = x.dims[axis];
  if (a.hasInput(1) && a.in(1).numel() != n) a.fail("split has another length than the outputs");
  const int64_t chunk = n > 0 ? (total + n - 1) / n : 0;
  auto lenOf = [&](int i) {
    if (a.hasInput(1)) return a.in(1).as<const int64_t>()[i];
    return i + 1 < n ? chunk : total - chunk * (n - 1);
  };
  int64_t sum = 0;
  for (int i = 0; i < n; ++i) {
    const int64_t len = lenOf(i);
    const TensorView& t = a.out(i);
    if (len < 0 || (t.present() && t.rank == x.rank && t.dims[axis] != len)) a.fail("split lengths differ from the plan");
    sum += len;
  }
  if (sum != total) a.fail("split lengths do not add up to the axis");
  const int64_t inRow = total * inner * e;
  const char* in = x.as<const char>();
  parallelRange(a.executor, outer, std::max<int64_t>(1, 65536 / std::max<int64_t>(inRow, 1)), [&](int64_t b, int64_t en) {
    int64_t offset = 0;
    for (int i = 0; i < n; ++i) {
      const TensorView& t = a.out(i);
      const int64_t row = lenOf(i) * inner * e;
      char* dst = t.present() && t.rank == x.rank ? t.as<char>() : nullptr;  // null: an unused output
      for (int64_t o = b; o < en && row > 0 && dst; ++o) std::memcpy(dst + o * row, in + o * inRow + offset, size_t(row));
      offset += row;
    }
  });
}

// ---- Gather --------------------------------------------------------------------------

void gatherKernel(const StepArgs& a) {
  const int axis = a.paramsAs<AxisParams>().axis;
  const TensorView& x = a.in(0);
  const TensorView& ind = a.in(1);
  const int64_t e = int64_t(elemBytes(x.dtype));
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= x.dims[d];
  for (int d = axis + 1; d < x.rank; ++d) inner *= x.dims[d];
  const int64_t D = x.dims[axis], n = ind.numel(), row = inner * e;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = intAt(ind, i);
    if (k < -D || k >= D) a.fail("index out of range of the gathered axis");
  }
  const char* in = x.as<const char>();
  char* out = a.out(0).as<char>();
  parallelRange(a.executor, outer * n, std::max<int64_t>(1, 65536 / std::max<int64_t>(row, 1)), [&](int64_t b, int64_t en) {
    for (int64_t t = b; t < en; ++t) {
      const int64_t o = t / n;
      int64_t k = intAt(ind, t % n);
      if (k < 0) k += D;
      std::memcpy(out + t * row, in + (o * D + k) * row, size_t(row));
    }
  });
}

// ---- Shape, ConstantOfShape, Constant ------------------------------------------------

struct ShapeParams {
  int32_t start = 0, end = 0;
};

void shapeKernel(const StepArgs& a) {
  const ShapeParams& p = a.paramsAs<ShapeParams>();
  int64_t* y = a.out(0).as<int64_t>();
  for (int i = p.start; i < p.end; ++i) y[i - p.start] = a.in(0).dims[i];
}

struct FillParams {
  int32_t bytes = 4;
  DataType dtype = DataType::kF32;
  unsigned char value[8] = {};
};

void fillKernel(const StepArgs& a) {
  const FillParams& p = a.paramsAs<FillParams>();
  const TensorView& shape = a.in(0);
  const int64_t r = shape.numel();
  if (r > kMaxRank) a.fail("shape has too many dims");
  int64_t dims[kMaxRank];
  for (int64_t d = 0; d < r; ++d) {
    dims[d] = intAt(shape, d);
    if (dims[d] < 0) a.fail("shape has a negative extent");
  }
  const TensorView& out = outputWith(a, 0, p.dtype, dims, int(r));
  const int64_t n = out.numel();
  char* y = out.as<char>();
  bool zero = true;
  for (int i = 0; i < p.bytes; ++i) zero = zero && p.value[i] == 0;
  if (zero) {
    std::memset(y, 0, size_t(n) * size_t(p.bytes));
    return;
  }
  for (int64_t i = 0; i < n; ++i) std::memcpy(y + i * p.bytes, p.value, size_t(p.bytes));
}

void constantKernel(const StepArgs& a) {
  if (a.numBlobs < 1 || a.blobs[0].bytes != a.out(0).bytes()) a.fail("prepared constant does not match the output");
  std::memcpy(a.out(0).data, a.blobs[0].data, a.blobs[0].bytes);
}

// The value of a Constant node as bytes, or false when it is not a plain numeric tensor.
bool constantBytes(const ir::Node& n, std::string* out) {
  const ir::Attributes& at = n.attrs();
  if (const ir::Tensor* v = at.getTensor("value")) {
    if (!plainBytes(v->dtype())) return false;
    if (out) out->assign(static_cast<const char*>(v->raw()), v->nbytes());
    return true;
  }
  if (at.has("value_float") || at.has("value_floats")) {
    const std::vector<float> f = at.has("value_float") ? std::vector<float>{at.getFloat("value_float", 0)}
                                                       : at.getFloats("value_floats");
    if (out) out->assign(reinterpret_cast<const char*>(f.data()), f.size() * sizeof(float));
    return true;
  }
  if (at.has("value_int") || at.has("value_ints")) {
    const std::vector<int64_t> v = at.has("value_int") ? std::vector<int64_t>{at.getInt("value_int", 0)}
                                                       : at.getInts("value_ints");
    if (out) out->assign(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(int64_t));
    return true;
  }
  return false;
}

}  // namespace

void registerMovement(Kernels& k) {
  Kernel tr = byteKernel("x_transpose_strided", "Transpose");
  tr.supports = [](const ir::Node&, const std::vector<ir::TensorType>& t) { return movable(t); };
  tr.prepare = [](const PrepareInfo& info, Prepared* out) {
    const int r = rankOf(info.maxTypes, 0);
    TransposeParams p;
    p.rank = r;
    const std::vector<int64_t> perm = info.node->attrs().getInts("perm");
    for (int d = 0; d < r; ++d)
      p.perm[d] = perm.empty() ? r - 1 - d : int32_t(normAxis(perm[size_t(d)], r));
    out->setParams(p);
  };
  tr.run = transposeKernel;
  k.add(std::move(tr));
  registerTiledTranspose(k);

  Kernel sl = byteKernel("x_slice_strided", "Slice");
  sl.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& t) {
    if (!movable(t) || t.size() < 3) return false;
    for (size_t i = 1; i < t.size() && i < 5; ++i) {
      if (hasType(t, i) && !isIndexType(t[i].dtype)) return false;
      if (!kServeComputedShapeInputs && computedInput(n, i)) return false;
    }
    return true;
  };
  sl.run = sliceKernel;
  sl.dynamicShapes = true;  // extents from the starts/ends values: allocated through StepArgs::dynamic
  k.add(std::move(sl));

  Kernel ex = byteKernel("x_expand_strided", "Expand");
  ex.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& t) {
    return movable(t) && (kServeComputedShapeInputs || !computedInput(n, 1));
  };
  ex.run = expandKernel;
  ex.dynamicShapes = true;
  k.add(std::move(ex));

  auto axisPrepare = [](const PrepareInfo& info, Prepared* out) {
    const int r = rankOf(info.maxTypes, 0);
    out->setParams(AxisParams{int32_t(normAxis(info.node->attrs().getInt("axis", 0), r))});
  };
  auto axisOk = [](const ir::Node& n, const std::vector<ir::TensorType>& t) {
    const int r = rankOf(t, 0);
    const int64_t axis = normAxis(n.attrs().getInt("axis", 0), r);
    return movable(t) && r >= 1 && axis >= 0 && axis < r;
  };

  Kernel cc = byteKernel("x_concat_rows", "Concat");
  cc.supports = [axisOk](const ir::Node& n, const std::vector<ir::TensorType>& t) {
    if (!axisOk(n, t)) return false;
    for (const ir::TensorType& i : t)
      if (i.dtype != t[0].dtype || !i.shape.rankKnown() || i.shape.rank() != t[0].shape.rank()) return false;
    return true;
  };
  cc.prepare = axisPrepare;
  cc.run = concatKernel;
  k.add(std::move(cc));

  Kernel sp = byteKernel("x_split_rows", "Split");
  sp.supports = [axisOk](const ir::Node& n, const std::vector<ir::TensorType>& t) {
    return axisOk(n, t) && (!hasType(t, 1) || t[1].dtype == DataType::kI64) && !n.attrs().has("split");
  };
  sp.prepare = axisPrepare;
  sp.run = splitKernel;
  k.add(std::move(sp));

  Kernel ga = byteKernel("x_gather_rows", "Gather");
  ga.supports = [axisOk](const ir::Node& n, const std::vector<ir::TensorType>& t) {
    return t.size() == 2 && axisOk(n, t) && isIndexType(t[1].dtype) && rankOf(t, 1) >= 0;
  };
  ga.prepare = axisPrepare;
  ga.run = gatherKernel;
  k.add(std::move(ga));

  Kernel sh = byteKernel("i64_shape", "Shape");
  sh.supports = [](const ir::Node&, const std::vector<ir::TensorType>& t) { return !t.empty() && rankOf(t, 0) >= 0; };
  sh.prepare = [](const PrepareInfo& info, Prepared* out) {
    const int64_t r = rankOf(info.maxTypes, 0);
    auto clampAxis = [&](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + r : v, 0, r); };
    const ir::Attributes& at = info.node->attrs();
    const int64_t s = clampAxis(at.getInt("start", 0));
    const int64_t e = at.has("end") ? clampAxis(at.getInt("end", r)) : r;
    out->setParams(ShapeParams{int32_t(s), int32_t(std::max(s, e))});
  };
  sh.run = shapeKernel;
  k.add(std::move(sh));

  Kernel cs = byteKernel("x_constant_of_shape_fill", "ConstantOfShape");
  cs.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& t) {
    if (t.empty() || t[0].dtype != DataType::kI64) return false;
    if (!kServeComputedShapeInputs && computedInput(n, 0)) return false;
    const ir::Tensor* v = n.attrs().getTensor("value");
    return !v || (v->numel() == 1 && plainBytes(v->dtype()) && elemBytes(v->dtype()) <= 8);
  };
  cs.prepare = [](const PrepareInfo& info, Prepared* out) {
    FillParams p;
    if (const ir::Tensor* v = info.node->attrs().getTensor("value")) {
      p.bytes = int32_t(elemBytes(v->dtype()));
      p.dtype = v->dtype();
      std::memcpy(p.value, v->raw(), size_t(p.bytes));
    }
    out->setParams(p);
  };
  cs.run = fillKernel;
  cs.dynamicShapes = true;
  k.add(std::move(cs));

  Kernel co = byteKernel("x_constant_copy", "Constant");
  co.supports = [](const ir::Node& n, const std::vector<ir::TensorType>&) { return constantBytes(n, nullptr); };
  co.prepare = [](const PrepareInfo& info, Prepared* out) {
    std::string bytes;
    constantBytes(*info.node, &bytes);
    out->blobs.push_back(std::move(bytes));
  };
  co.run = constantKernel;
  k.add(std::move(co));
}

}  // namespace anvil::runtime::nops
