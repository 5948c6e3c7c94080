// The CUDA tactics of data movement, for any dtype of 1, 2, 4 or 8 bytes per element (kernels
// in cuda/kernels/movement.cuh, launchers in cuda/movement.h): Transpose, Concat, Split,
// Slice, Gather, GatherElements, GatherND, ScatterND, Pad (constant, edge, wrap, reflect), Expand, Tile, DepthToSpace,
// SpaceToDepth, Resize (nearest; linear for f32). Most are one strided copy per input or
// output (constant Pad: a fill and a copy), shaped at run() from the tensors' extents; params
// hold the attributes and the constant inputs (Slice starts/ends/axes/steps, Pad pads and
// value, Tile repeats, Resize scales or sizes).
#include <algorithm>
#include <cstring>
#include <limits>

#include "cuda/kernels/normmove_args.h"
#include "cuda/movement.h"
#include "cuda/tactics/tactic_util.h"
#include "cuda/tactics/tactics.h"

namespace anvil::cuda::tactics {

namespace {

using runtime::StepArgs;
using Types = std::vector<ir::TensorType>;
constexpr int kR = runtime::kMaxRank;

// Bytes per element of a type the movement kernels carry, or 0 (strings, sub-byte types).
int elementBytes(DataType t) {
  if (t == DataType::kString || t == DataType::kUndefined) return 0;
  const size_t eight = ir::storageBytes(t, 8);
  if (eight % 8 != 0) return 0;
  const int b = int(eight / 8);
  return b == 1 || b == 2 || b == 4 || b == 8 ? b : 0;
}

bool movable(const ir::TensorType& t) {
  return elementBytes(t.dtype) != 0 && t.shape.rankKnown() && t.shape.rank() <= size_t(kMaxCopyRank);
}

int normAxis(int64_t axis, int64_t rank) { return int(axis < 0 ? axis + rank : axis); }
bool axisInRange(int64_t axis, int64_t rank) { return axis >= -rank && axis < rank; }

void denseStrides(const runtime::TensorView& t, int64_t* s) {
  int64_t v = 1;
  for (int i = t.rank - 1; i >= 0; --i) {
    s[i] = v;
    v *= t.dims[i];
  }
}

runtime::Kernel movementKernel(const char* name, const char* op) {
  runtime::Kernel c = cudaKernel(name, op);
  c.precision = DataType::kUndefined;  // moves bytes of any type
  return c;
}

char* byteAt(void* p, int64_t elements, int bytes) { return static_cast<char*>(p) + elements * bytes; }
const char* byteAt(const void* p, int64_t elements, int bytes) {
  return static_cast<const char*>(p) + elements * bytes;
}

// ---- Transpose ------------------------------------------------------------------------

struct TransposeParams {
  int32_t rank;
  int32_t perm[kR];
};

void addTranspose(runtime::Kernels& k) {
  runtime::Kernel c = movementKernel("transpose_strided_copy", "Transpose");
  c.supports = [](const ir::Node& n, const Types& t) {
    if (t.empty() || !movable(t[0])) return false;
    const int64_t r = int64_t(t[0].shape.rank());
    if (!n.attrs().has("perm")) return true;
    const std::vector<int64_t> perm = n.attrs().getInts("perm");
    if (int64_t(perm.size()) != r) return false;
    std::vector<bool> seen(size_t(r), false);
    for (int64_t p : perm) {
      if (!axisInRange(p, r) || seen[size_t(normAxis(p, r))]) return false;
      seen[size_t(normAxis(p, r))] = true;
    }
    return true;
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    const int r = int(info.minTypes[0].shape.rank());
    TransposeParams q{};
    q.rank = r;
    const std::vector<int64_t> perm = info.node->attrs().getInts("perm");
    for (int i = 0; i < r; ++i) q.perm[i] = perm.empty() ? r - 1 - i : normAxis(perm[size_t(i)], r);
    p->setParams(q);
  };
  c.run = [](const StepArgs& a) {
    const TransposeParams& q = a.paramsAs<TransposeParams>();
    const runtime::TensorView& x = a.in(0);
    runtime::TensorView& y = a.out(0);
    if (x.rank != q.rank) a.fail("Transpose: input rank differs from the engine's");
    int64_t xs[kR];
    denseStrides(x, xs);
    StridedCopyDesc d;
    d.elementBytes = elementBytes(x.dtype);
    d.src = x.data;
    d.dst = y.data;
    d.rank = y.rank;
    denseStrides(y, d.dstStrides);
    for (int i = 0; i < y.rank; ++i) {
      d.dims[i] = y.dims[i];
      d.srcStrides[i] = xs[q.perm[i]];
    }
    launchStridedCopy(runtimeOf(a), streamOf(a), d);
  };
  k.add(std::move(c));
}

// ---- Concat, Split --------------------------------------------------------------------

struct AxisParams {
  int64_t axis;
};

// Copies `part` into (Concat) or out of (Split) `whole` at `offset` along `axis`.
void copyPart(const StepArgs& a, const runtime::TensorView& whole, const runtime::TensorView& part, int axis,
              int64_t offset, bool intoWhole) {
  if (part.numel() == 0) return;
  StridedCopyDesc d;
  d.elementBytes = elementBytes(whole.dtype);
  d.rank = part.rank;
  int64_t ws[kR], ps[kR];
  denseStrides(whole, ws);
  denseStrides(part, ps);
  for (int i = 0; i < part.rank; ++i) d.dims[i] = part.dims[i];
  const void* wholeAt = byteAt(static_cast<const void*>(whole.data), offset * ws[axis], d.elementBytes);
  if (intoWhole) {
    d.src = part.data;
    d.dst = const_cast<void*>(wholeAt);
    std::copy(ps, ps + part.rank, d.srcStrides);
    std::copy(ws, ws + part.rank, d.dstStrides);
  } else {
    d.src = wholeAt;
    d.dst = part.data;
    std::copy(ws, ws + part.rank, d.srcStrides);
    std::copy(ps, ps + part.rank, d.dstStrides);
  }
  launchStridedCopy(runtimeOf(a), streamOf(a), d);
}

void addConcat(runtime::Kernels& k) {
  runtime::Kernel c = movementKernel("concat_strided_copy", "Concat");
  c.supports = [](const ir::Node& n, const Types& t) {
    if (t.empty() || !movable(t[0]) || t[0].shape.rank() < 1) return false;
    for (const ir::TensorType& u : t)
      if (u.dtype != t[0].dtype || !u.shape.rankKnown() || u.shape.rank() != t[0].shape.rank()) return false;
    return axisInRange(n.attrs().getInt("axis", 0), int64_t(t[0].shape.rank()));
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    p->setParams(AxisParams{info.node->attrs().getInt("axis", 0)});
  };
  c.run = [](const StepArgs& a) {
    const runtime::TensorView& y = a.out(0);
    const int axis = normAxis(a.paramsAs<AxisParams>().axis, y.rank);
    int64_t offset = 0;
    for (int i = 0; i < a.numInputs; ++i) {
      copyPart(a, y, a.in(i), axis, offset, true);
      offset += a.in(i).dims[axis];
    }
    if (offset != y.dims[axis]) a.fail("Concat: the inputs do not add up to the output along the axis");
  };
  k.add(std::move(c));
}

void addSplit(runtime::Kernels& k) {
  runtime::Kernel c = movementKernel("split_strided_copy", "Split");
  c.supports = [](const ir::Node& n, const Types& t) {
    if (t.empty() || !movable(t[0]) || t[0].shape.rank() < 1) return false;
    if (n.numInputs() > 1 && n.input(1) != nullptr && !n.input(1)->isInitializer()) return false;
    return axisInRange(n.attrs().getInt("axis", 0), int64_t(t[0].shape.rank()));
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    p->setParams(AxisParams{info.node->attrs().getInt("axis", 0)});
  };
  c.run = [](const StepArgs& a) {
    const runtime::TensorView& x = a.in(0);
    const int axis = normAxis(a.paramsAs<AxisParams>().axis, x.rank);
    int64_t offset = 0;
    // The output extents (from shape inference: split sizes or equal chunks) place each piece.
    for (int i = 0; i < a.numOutputs; ++i) {
      const runtime::TensorView& y = a.out(i);
      if (y.present() && y.data) copyPart(a, x, y, axis, offset, false);
      offset += y.dims[axis];
    }
    if (offset != x.dims[axis]) a.fail("Split: the outputs do not add up to the input along the axis");
  };
  k.add(std::move(c));
}

// ---- Slice ----------------------------------------------------------------------------

struct SliceParams {
  int32_t n;  // entries of starts/ends/axes/steps
  int64_t starts[kR], ends[kR], axes[kR], steps[kR];
};

bool constInts(const ir::Node& n, size_t i, std::vector<int64_t>* v) {
  const ir::Value* x = n.input(i);
  if (x == nullptr) return true;
  if (!x->isInitializer()) return false;
  *v = x->initializer()->toInt64Vector();
  return true;
}

void addSlice(runtime::Kernels& k) {
  runtime::Kernel c = movementKernel("slice_strided_copy", "Slice");
  c.supports = [](const ir::Node& n, const Types& t) {
    if (t.empty() || !movable(t[0])) return false;
    const int64_t r = int64_t(t[0].shape.rank());
    std::vector<int64_t> starts, ends, axes, steps;
    if (n.input(1) == nullptr || n.input(2) == nullptr) return false;
    if (!constInts(n, 1, &starts) || !constInts(n, 2, &ends) || !constInts(n, 3, &axes) || !constInts(n, 4, &steps))
      return false;
    const size_t m = starts.size();
    if (ends.size() != m || m > size_t(r) || (n.input(3) && axes.size() != m) || (n.input(4) && steps.size() != m))
      return false;
    std::vector<bool> seen(size_t(r), false);
    for (size_t i = 0; i < m; ++i) {
      const int64_t ax = n.input(3) ? axes[i] : int64_t(i);
      if (!axisInRange(ax, r) || seen[size_t(normAxis(ax, r))]) return false;
      seen[size_t(normAxis(ax, r))] = true;
      if (n.input(4) && (steps[i] == 0 || steps[i] == std::numeric_limits<int64_t>::min())) return false;
    }
    return true;
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    const ir::Node& n = *info.node;
    const int64_t r = int64_t(info.minTypes[0].shape.rank());
    std::vector<int64_t> starts, ends, axes, steps;
    constInts(n, 1, &starts);
    constInts(n, 2, &ends);
    constInts(n, 3, &axes);
    constInts(n, 4, &steps);
    SliceParams q{};
    q.n = int32_t(starts.size());
    for (size_t i = 0; i < starts.size(); ++i) {
      q.starts[i] = starts[i];
      q.ends[i] = ends[i];
      q.axes[i] = normAxis(n.input(3) ? axes[i] : int64_t(i), r);
      q.steps[i] = n.input(4) ? steps[i] : 1;
    }
    p->setParams(q);
  };
  c.run = [](const StepArgs& a) {
    const SliceParams& q = a.paramsAs<SliceParams>();
    const runtime::TensorView& x = a.in(0);
    runtime::TensorView& y = a.out(0);
    if (y.numel() == 0) return;
    int64_t xs[kR], start[kR], step[kR];
    denseStrides(x, xs);
    for (int i = 0; i < x.rank; ++i) start[i] = 0, step[i] = 1;
    // The reference's clamping: [0, dim] for positive steps, [-1, dim - 1] for negative ones.
    for (int i = 0; i < q.n; ++i) {
      const int ax = int(q.axes[i]);
      const int64_t dim = x.dims[ax];
      int64_t s = q.starts[i];
      if (s < 0) s += dim;
      s = q.steps[i] > 0 ? std::clamp<int64_t>(s, 0, dim) : std::clamp<int64_t>(s, 0, dim - 1);
      start[ax] = s;
      step[ax] = q.steps[i];
    }
    StridedCopyDesc d;
    d.elementBytes = elementBytes(x.dtype);
    d.rank = y.rank;
    denseStrides(y, d.dstStrides);
    int64_t origin = 0;
    for (int i = 0; i < y.rank; ++i) {
      d.dims[i] = y.dims[i];
      // A single element along a dim never steps (and a huge step times the stride would overflow).
      d.srcStrides[i] = y.dims[i] == 1 ? 0 : step[i] * xs[i];
      origin += start[i] * xs[i];
    }
    d.src = byteAt(static_cast<const void*>(x.data), origin, d.elementBytes);
    d.dst = y.data;
    launchStridedCopy(runtimeOf(a), streamOf(a), d);
  };
  k.add(std::move(c));
}

// ---- Gather ---------------------------------------------------------------------------

void addGather(runtime::Kernels& k) {
  runtime::Kernel c = movementKernel("gather_gridstride", "Gather");
  c.supports = [](const ir::Node& n, const Types& t) {
    if (t.size() < 2 || !movable(t[0]) || t[0].shape.rank() < 1) return false;
    if (t[1].dtype != DataType::kI64 && t[1].dtype != DataType::kI32) return false;
    return axisInRange(n.attrs().getInt("axis", 0), int64_t(t[0].shape.rank()));
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    p->setParams(AxisParams{info.node->attrs().getInt("axis", 0)});
  };
  c.run = [](const StepArgs& a) {
    const runtime::TensorView& x = a.in(0);
    const int axis = normAxis(a.paramsAs<AxisParams>().axis, x.rank);
    GatherDesc d;
    d.elementBytes = elementBytes(x.dtype);
    d.index64 = a.in(1).dtype == DataType::kI64;
    d.data = x.data;
    d.index = a.in(1).data;
    d.out = a.out(0).data;
    d.outer = 1;
    d.inner = 1;
    for (int i = 0; i < axis; ++i) d.outer *= x.dims[i];
    for (int i = axis + 1; i < x.rank; ++i) d.inner *= x.dims[i];
    d.axisLen = x.dims[axis];
    d.indices = a.in(1).numel();
    launchGather(runtimeOf(a), streamOf(a), d);
  };
  k.add(std::move(c));
}

// ---- GatherElements -----------------------------------------------------------------------

void addGatherElements(runtime::Kernels& k) {
  runtime::Kernel c = movementKernel("gather_elements_gridstride", "GatherElements");
  c.supports = [](const ir::Node& n, const Types& t) {
    if (t.size() < 2 || !movable(t[0]) || t[0].shape.rank() < 1) return false;
    if (t[1].dtype != DataType::kI64 && t[1].dtype != DataType::kI32) return false;
    if (!t[1].shape.rankKnown() || t[1].shape.rank() != t[0].shape.rank()) return false;
    return axisInRange(n.attrs().getInt("axis", 0), int64_t(t[0].shape.rank()));
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    p->setParams(AxisParams{info.node->attrs().getInt("axis", 0)});
  };
  c.run = [](const StepArgs& a) {
    const runtime::TensorView& x = a.in(0);
    const runtime::TensorView& ix = a.in(1);
    GatherElementsDesc d;
    d.elementBytes = elementBytes(x.dtype);
    d.index64 = ix.dtype == DataType::kI64;
    d.data = x.data;
    d.index = ix.data;
    d.out = a.out(0).data;
    d.rank = x.rank;
    d.axis = normAxis(a.paramsAs<AxisParams>().axis, x.rank);
    for (int i = 0; i < x.rank; ++i) {
      d.dataDims[i] = x.dims[i];
      d.indexDims[i] = ix.dims[i];
      if (i != d.axis && ix.dims[i] > x.dims[i]) a.fail("GatherElements: indices exceed the data outside the axis");
    }
    launchGatherElements(runtimeOf(a), streamOf(a), d);
  };
  k.add(std::move(c));
}

// ---- GatherND, ScatterND --------------------------------------------------------------------

struct IndexNDParams {
  int64_t batchDims;
};

void addGatherScatterND(runtime::Kernels& k, bool scatter) {
  runtime::Kernel c =
      movementKernel(scatter ? "scatter_nd_copy_scatter" : "gather_nd_gridstride", scatter ? "ScatterND" : "GatherND");
  c.supports = [scatter](const ir::Node& n, const Types& t) {
    if (t.size() < (scatter ? 3u : 2u) || !movable(t[0]) || t[0].shape.rank() < 1) return false;
    if (t[1].dtype != DataType::kI64 || !t[1].shape.rankKnown()) return false;
    const size_t q = t[1].shape.rank();
    if (q < 1 || q > size_t(kMaxCopyRank)) return false;
    const int64_t b = scatter ? 0 : n.attrs().getInt("batch_dims", 0);
    if (b < 0 || b >= int64_t(std::min(q, t[0].shape.rank()))) return false;
    // The tuple length decides the shapes: it must be known at build.
    const ir::Dim& k = t[1].shape[q - 1];
    if (!k.isStatic() || k.value() < 1 || k.value() > int64_t(t[0].shape.rank()) - b) return false;
    if (scatter) {
      if (t[2].dtype != t[0].dtype) return false;
      if (n.attrs().getString("reduction", "none") != "none") return false;
    }
    return true;
  };
  c.prepare = [scatter](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    p->setParams(IndexNDParams{scatter ? 0 : info.node->attrs().getInt("batch_dims", 0)});
  };
  c.run = [scatter](const StepArgs& a) {
    const runtime::TensorView& x = a.in(0);
    const runtime::TensorView& ix = a.in(1);
    IndexNDDesc d;
    d.elementBytes = elementBytes(x.dtype);
    d.data = x.data;
    d.index = ix.as<int64_t>();
    d.out = a.out(0).data;
    d.dataRank = x.rank;
    d.indexRank = ix.rank;
    d.batchDims = int(a.paramsAs<IndexNDParams>().batchDims);
    for (int i = 0; i < x.rank; ++i) d.dataDims[i] = x.dims[i];
    for (int i = 0; i < ix.rank; ++i) d.indexDims[i] = ix.dims[i];
    if (scatter) {
      d.updates = a.in(2).data;
      launchScatterND(runtimeOf(a), streamOf(a), d);
    } else {
      launchGatherND(runtimeOf(a), streamOf(a), d);
    }
  };
  k.add(std::move(c));
}

// ---- Pad --------------------------------------------------------------------------------

struct PadParams {
  int32_t n;  // entries of axes (pads holds 2n)
  int64_t axes[kR];
  int64_t pads[2 * kR];  // begins then ends
  uint64_t valueBits;    // the constant's bytes
  int32_t mode;          // 0 constant, else kernels::PadMode
};

int padModeOf(const std::string& m) {
  if (m == "constant") return 0;
  if (m == "edge") return kernels::kPadEdge;
  if (m == "wrap") return kernels::kPadWrap;
  if (m == "reflect") return kernels::kPadReflect;
  return -1;
}

// Constant mode: a fill of the output and a strided copy of the input into it. Edge, wrap
// and reflect: every output element reads its mapped input element (pad_index kernel).
void addPad(runtime::Kernels& k, const char* name, bool constantMode) {
  runtime::Kernel c = movementKernel(name, "Pad");
  c.supports = [constantMode](const ir::Node& n, const Types& t) {
    if (t.size() < 2 || !movable(t[0])) return false;
    const int mode = padModeOf(n.attrs().getString("mode", "constant"));
    if (mode < 0 || (mode == 0) != constantMode) return false;
    const int64_t r = int64_t(t[0].shape.rank());
    std::vector<int64_t> pads, axes;
    if (n.input(1) == nullptr || !constInts(n, 1, &pads) || !constInts(n, 3, &axes)) return false;
    if (n.input(2) != nullptr) {
      if (!n.input(2)->isInitializer() || n.input(2)->initializer()->numel() != 1 ||
          n.input(2)->initializer()->dtype() != t[0].dtype)
        return false;
    }
    const size_t m = n.input(3) ? axes.size() : size_t(r);
    if (pads.size() != 2 * m || m > size_t(r)) return false;
    std::vector<bool> seen(size_t(r), false);
    for (size_t i = 0; i < m; ++i) {
      const int64_t ax = n.input(3) ? axes[i] : int64_t(i);
      if (!axisInRange(ax, r) || seen[size_t(normAxis(ax, r))]) return false;
      seen[size_t(normAxis(ax, r))] = true;
    }
    return true;
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    const ir::Node& n = *info.node;
    const int64_t r = int64_t(info.minTypes[0].shape.rank());
    std::vector<int64_t> pads, axes;
    constInts(n, 1, &pads);
    constInts(n, 3, &axes);
    PadParams q{};
    q.n = int32_t(pads.size() / 2);
    for (int i = 0; i < q.n; ++i) {
      q.axes[i] = normAxis(n.input(3) ? axes[size_t(i)] : i, r);
      q.pads[i] = pads[size_t(i)];
      q.pads[q.n + i] = pads[size_t(q.n + i)];
    }
    if (n.input(2) != nullptr) {
      const ir::Tensor& v = *n.input(2)->initializer();
      std::memcpy(&q.valueBits, v.raw(), std::min<size_t>(v.nbytes(), sizeof q.valueBits));
    }
    q.mode = padModeOf(n.attrs().getString("mode", "constant"));
    p->setParams(q);
  };
  c.run = [](const StepArgs& a) {
    const PadParams& q = a.paramsAs<PadParams>();
    const runtime::TensorView& x = a.in(0);
    runtime::TensorView& y = a.out(0);
    if (y.numel() == 0) return;
    const int bytes = elementBytes(x.dtype);
    if (q.mode != 0) {
      PadIndexDesc d;
      d.elementBytes = bytes;
      d.mode = q.mode;
      d.x = x.data;
      d.y = y.data;
      d.rank = x.rank;
      for (int i = 0; i < x.rank; ++i) {
        d.inDims[i] = x.dims[i];
        d.outDims[i] = y.dims[i];
        if (x.dims[i] == 0) a.fail("Pad: edge, wrap and reflect cannot pad an empty axis");
      }
      for (int i = 0; i < q.n; ++i) d.before[q.axes[i]] = q.pads[i];
      launchPadIndex(runtimeOf(a), streamOf(a), d);
      return;
    }
    launchFill(runtimeOf(a), streamOf(a), bytes, y.data, y.numel(), q.valueBits);
    int64_t begin[kR] = {};
    for (int i = 0; i < q.n; ++i) begin[q.axes[i]] = q.pads[i];
    // The part of X that lands inside Y (negative pads crop): per dim the output range
    // [lo, hi) reads input index o - begin.
    StridedCopyDesc d;
    d.elementBytes = bytes;
    d.rank = y.rank;
    int64_t xs[kR];
    denseStrides(x, xs);
    denseStrides(y, d.dstStrides);
    int64_t srcOrigin = 0, dstOrigin = 0;
    for (int i = 0; i < y.rank; ++i) {
      const int64_t lo = std::max<int64_t>(0, begin[i]);
      const int64_t hi = std::min<int64_t>(y.dims[i], begin[i] + x.dims[i]);
      d.dims[i] = std::max<int64_t>(0, hi - lo);
      d.srcStrides[i] = xs[i];
      srcOrigin += (lo - begin[i]) * xs[i];
      dstOrigin += lo * d.dstStrides[i];
    }
    bool empty = false;
    for (int i = 0; i < y.rank; ++i) empty = empty || d.dims[i] == 0;
    if (empty || x.numel() == 0) return;
    d.src = byteAt(static_cast<const void*>(x.data), srcOrigin, bytes);
    d.dst = byteAt(y.data, dstOrigin, bytes);
    launchStridedCopy(runtimeOf(a), streamOf(a), d);
  };
  k.add(std::move(c));
}

// ---- Expand ---------------------------------------------------------------------------

void addExpand(runtime::Kernels& k) {
  runtime::Kernel c = movementKernel("expand_strided_copy", "Expand");
  c.supports = [](const ir::Node& n, const Types& t) {
    if (t.empty() || !movable(t[0])) return false;
    // The output's rank must be known at build (its extents are read from the tensor at run).
    const ir::Shape& out = n.output(0)->type().shape;
    return out.rankKnown() && out.rank() <= size_t(kMaxCopyRank) && out.rank() >= t[0].shape.rank();
  };
  c.run = [](const StepArgs& a) {
    const runtime::TensorView& x = a.in(0);
    runtime::TensorView& y = a.out(0);
    if (y.rank < x.rank) a.fail("Expand: the output has a lower rank than the input");
    int64_t xs[kR];
    denseStrides(x, xs);
    StridedCopyDesc d;
    d.elementBytes = elementBytes(x.dtype);
    d.src = x.data;
    d.dst = y.data;
    d.rank = y.rank;
    denseStrides(y, d.dstStrides);
    // Right-aligned broadcast: a dim of 1 (or a missing leading one) repeats with stride 0.
    const int lead = y.rank - x.rank;
    for (int i = 0; i < y.rank; ++i) {
      d.dims[i] = y.dims[i];
      const int xi = i - lead;
      if (xi < 0 || x.dims[xi] == 1) {
        d.srcStrides[i] = 0;
      } else {
        if (x.dims[xi] != y.dims[i]) a.fail("Expand: an input dim neither matches the output nor is 1");
        d.srcStrides[i] = xs[xi];
      }
    }
    if (y.numel() == 0) return;
    launchStridedCopy(runtimeOf(a), streamOf(a), d);
  };
  k.add(std::move(c));
}

// ---- Tile -----------------------------------------------------------------------------

struct TileParams {
  int32_t rank;
  int64_t repeats[kMaxCopyRank];
};

void addTile(runtime::Kernels& k) {
  runtime::Kernel c = movementKernel("tile_strided_copy", "Tile");
  c.supports = [](const ir::Node& n, const Types& t) {
    std::vector<int64_t> rep;
    if (t.size() < 2 || !movable(t[0]) || n.input(1) == nullptr || !constInts(n, 1, &rep)) return false;
    if (rep.size() != t[0].shape.rank()) return false;
    // Each repeated dim becomes a (repeat, extent) pair of the copy: at most kMaxCopyRank dims.
    size_t dims = rep.size();
    for (int64_t r : rep) {
      if (r < 0) return false;
      dims += r != 1;
    }
    return dims <= size_t(kMaxCopyRank);
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    std::vector<int64_t> rep;
    constInts(*info.node, 1, &rep);
    TileParams q{};
    q.rank = int32_t(rep.size());
    for (size_t i = 0; i < rep.size(); ++i) q.repeats[i] = rep[i];
    p->setParams(q);
  };
  c.run = [](const StepArgs& a) {
    const TileParams& q = a.paramsAs<TileParams>();
    const runtime::TensorView& x = a.in(0);
    runtime::TensorView& y = a.out(0);
    if (y.numel() == 0) return;
    if (x.rank != q.rank) a.fail("Tile: input rank differs from the engine's");
    int64_t xs[kR], ys[kR];
    denseStrides(x, xs);
    denseStrides(y, ys);
    // Output index j * extent + i along each dim: a repeat dim (source stride 0) over the extent.
    StridedCopyDesc d;
    d.elementBytes = elementBytes(x.dtype);
    d.src = x.data;
    d.dst = y.data;
    int r = 0;
    for (int i = 0; i < x.rank; ++i) {
      if (q.repeats[i] != 1) {
        d.dims[r] = q.repeats[i];
        d.srcStrides[r] = 0;
        d.dstStrides[r] = x.dims[i] * ys[i];
        ++r;
      }
      d.dims[r] = x.dims[i];
      d.srcStrides[r] = xs[i];
      d.dstStrides[r] = ys[i];
      ++r;
    }
    d.rank = r;
    launchStridedCopy(runtimeOf(a), streamOf(a), d);
  };
  k.add(std::move(c));
}

// ---- DepthToSpace, SpaceToDepth ---------------------------------------------------------

struct BlockParams {
  int64_t block;
  int32_t crd;  // DepthToSpace mode CRD (else DCR)
};

// Both as one 6-D strided copy: the output viewed with its block offsets split out.
void addDepthSpace(runtime::Kernels& k, const char* name, const char* op, bool toSpace) {
  runtime::Kernel c = movementKernel(name, op);
  c.supports = [toSpace](const ir::Node& n, const Types& t) {
    if (t.empty() || !movable(t[0]) || t[0].shape.rank() != 4) return false;
    const int64_t b = n.attrs().getInt("blocksize", 0);
    const std::string mode = n.attrs().getString("mode", "DCR");
    return b >= 1 && b <= (int64_t(1) << 20) && (!toSpace || mode == "DCR" || mode == "CRD");
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    const ir::Attributes& at = info.node->attrs();
    p->setParams(BlockParams{at.getInt("blocksize", 1), at.getString("mode", "DCR") == "CRD" ? 1 : 0});
  };
  c.run = [toSpace](const StepArgs& a) {
    const BlockParams& q = a.paramsAs<BlockParams>();
    const runtime::TensorView& x = a.in(0);
    runtime::TensorView& y = a.out(0);
    if (y.numel() == 0) return;
    const int64_t b = q.block, N = x.dims[0], C = x.dims[1], H = x.dims[2], W = x.dims[3];
    StridedCopyDesc d;
    d.elementBytes = elementBytes(x.dtype);
    d.src = x.data;
    d.dst = y.data;
    d.rank = 6;
    if (toSpace) {
      if (C % (b * b) != 0) a.fail("DepthToSpace: the channels are not divisible by blocksize^2");
      const int64_t Co = C / (b * b);
      // y [N, Co, H, b(i), W, b(j)] reads channel (i * b + j) * Co + co (DCR) or co * b * b + i * b + j (CRD).
      const int64_t dims[6] = {N, Co, H, b, W, b};
      const int64_t dcr[6] = {C * H * W, H * W, W, b * Co * H * W, 1, Co * H * W};
      const int64_t crd[6] = {C * H * W, b * b * H * W, W, b * H * W, 1, H * W};
      std::copy(dims, dims + 6, d.dims);
      std::copy(q.crd ? crd : dcr, (q.crd ? crd : dcr) + 6, d.srcStrides);
    } else {
      if (H % b != 0 || W % b != 0) a.fail("SpaceToDepth: the spatial dims are not divisible by the blocksize");
      // y [N, b(i), b(j), C, H / b, W / b] reads x[n, c, ho * b + i, wo * b + j].
      const int64_t dims[6] = {N, b, b, C, H / b, W / b};
      const int64_t strides[6] = {C * H * W, W, 1, H * W, b * W, b};
      std::copy(dims, dims + 6, d.dims);
      std::copy(strides, strides + 6, d.srcStrides);
    }
    int64_t v = 1;
    for (int i = 5; i >= 0; --i) {
      d.dstStrides[i] = v;
      v *= d.dims[i];
    }
    launchStridedCopy(runtimeOf(a), streamOf(a), d);
  };
  k.add(std::move(c));
}

// ---- Resize ---------------------------------------------------------------------------

struct ResizeParams {
  int32_t linear, coord, nearest, excludeOutside;
  int32_t useSizes;  // values are sizes (else scales)
  int32_t n;         // entries of axes / values
  int64_t axes[kMaxCopyRank];
  double values[kMaxCopyRank];
};

int coordOf(const std::string& s) {
  if (s == "half_pixel") return kernels::kCoordHalfPixel;
  if (s == "align_corners") return kernels::kCoordAlignCorners;
  if (s == "asymmetric") return kernels::kCoordAsymmetric;
  if (s == "pytorch_half_pixel") return kernels::kCoordPytorchHalfPixel;
  if (s == "half_pixel_symmetric") return kernels::kCoordHalfPixelSymmetric;
  if (s == "tf_half_pixel_for_nn") return kernels::kCoordTfHalfPixelForNn;
  return -1;  // tf_crop_and_resize (roi, extrapolation) and unknown modes
}
int nearestOf(const std::string& s) {
  if (s == "round_prefer_floor") return kernels::kRoundPreferFloor;
  if (s == "round_prefer_ceil") return kernels::kRoundPreferCeil;
  if (s == "floor") return kernels::kNearestFloor;
  if (s == "ceil") return kernels::kNearestCeil;
  return -1;
}

// The constant, non-empty scales (input 2) or sizes (input 3); false when neither or both.
bool resizeTargets(const ir::Node& n, bool* useSizes, std::vector<double>* values) {
  auto given = [&](size_t i) {
    return n.input(i) != nullptr && (!n.input(i)->isInitializer() || n.input(i)->initializer()->numel() > 0);
  };
  const bool scales = given(2), sizes = given(3);
  if (scales == sizes) return false;
  const ir::Value* v = n.input(sizes ? 3 : 2);
  if (!v->isInitializer()) return false;
  const ir::Tensor& t = *v->initializer();
  if (sizes ? !ir::isInteger(t.dtype()) : !ir::isFloat(t.dtype())) return false;
  values->clear();
  for (int64_t i = 0; i < t.numel(); ++i) values->push_back(t.getDouble(i));
  *useSizes = sizes;
  return true;
}

void addResize(runtime::Kernels& k) {
  runtime::Kernel c = movementKernel("resize_nearest_linear_gridstride", "Resize");
  c.supports = [](const ir::Node& n, const Types& t) {
    if (t.empty() || !movable(t[0])) return false;
    const ir::Attributes& at = n.attrs();
    const std::string mode = at.getString("mode", "nearest");
    if (mode != "nearest" && !(mode == "linear" && t[0].dtype == DataType::kF32)) return false;
    if (coordOf(at.getString("coordinate_transformation_mode", "half_pixel")) < 0) return false;
    if (nearestOf(at.getString("nearest_mode", "round_prefer_floor")) < 0) return false;
    if (mode == "linear" && at.getInt("antialias", 0) != 0) return false;
    // exclude_outside can leave a nearest pixel with no tap (a zero); not served.
    if (mode == "nearest" && at.getInt("exclude_outside", 0) != 0) return false;
    bool useSizes = false;
    std::vector<double> values;
    if (!resizeTargets(n, &useSizes, &values)) return false;
    if (useSizes && at.getString("keep_aspect_ratio_policy", "stretch") != "stretch") return false;
    const int64_t r = int64_t(t[0].shape.rank());
    std::vector<int64_t> axes = at.getInts("axes");
    if (!at.has("axes"))
      for (int64_t i = 0; i < r; ++i) axes.push_back(i);
    if (values.size() != axes.size()) return false;
    std::vector<bool> seen(size_t(r), false);
    for (size_t i = 0; i < axes.size(); ++i) {
      if (!axisInRange(axes[i], r) || seen[size_t(normAxis(axes[i], r))]) return false;
      seen[size_t(normAxis(axes[i], r))] = true;
      if (useSizes ? values[i] < 0 : !(values[i] > 0)) return false;
    }
    return true;
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    const ir::Node& n = *info.node;
    const ir::Attributes& at = n.attrs();
    const int64_t r = int64_t(info.minTypes[0].shape.rank());
    ResizeParams q{};
    q.linear = at.getString("mode", "nearest") == "linear" ? 1 : 0;
    q.coord = coordOf(at.getString("coordinate_transformation_mode", "half_pixel"));
    q.nearest = nearestOf(at.getString("nearest_mode", "round_prefer_floor"));
    q.excludeOutside = at.getInt("exclude_outside", 0) != 0 ? 1 : 0;
    bool useSizes = false;
    std::vector<double> values;
    resizeTargets(n, &useSizes, &values);
    q.useSizes = useSizes ? 1 : 0;
    std::vector<int64_t> axes = at.getInts("axes");
    if (!at.has("axes"))
      for (int64_t i = 0; i < r; ++i) axes.push_back(i);
    q.n = int32_t(axes.size());
    for (size_t i = 0; i < axes.size(); ++i) {
      q.axes[i] = normAxis(axes[i], r);
      q.values[i] = values[i];
    }
    p->setParams(q);
  };
  c.run = [](const StepArgs& a) {
    const ResizeParams& q = a.paramsAs<ResizeParams>();
    const runtime::TensorView& x = a.in(0);
    runtime::TensorView& y = a.out(0);
    ResizeDesc d;
    d.elementBytes = elementBytes(x.dtype);
    d.linear = q.linear != 0;
    d.x = x.data;
    d.y = y.data;
    d.rank = x.rank;
    d.coord = q.coord;
    d.nearest = q.nearest;
    d.excludeOutside = q.excludeOutside != 0;
    for (int i = 0; i < x.rank; ++i) {
      d.inDims[i] = x.dims[i];
      d.outDims[i] = y.dims[i];
      d.scale[i] = 1.0;
    }
    for (int i = 0; i < q.n; ++i) {
      const int ax = int(q.axes[i]);
      // As the reference: a size's scale is size / length (in double).
      d.scale[ax] = q.useSizes ? (x.dims[ax] ? q.values[i] / double(x.dims[ax]) : 1.0) : q.values[i];
    }
    launchResize(runtimeOf(a), streamOf(a), d);
  };
  k.add(std::move(c));
}

}  // namespace

void addMovementKernels(runtime::Kernels& k) {
  addTranspose(k);
  addConcat(k);
  addSplit(k);
  addSlice(k);
  addGather(k);
  addGatherElements(k);
  addGatherScatterND(k, false);
  addGatherScatterND(k, true);
  addPad(k, "pad_constant_fill_copy", true);
  addPad(k, "pad_edge_wrap_reflect_index", false);
  addExpand(k);
  addTile(k);
  addDepthSpace(k, "depth_to_space_strided_copy", "DepthToSpace", true);
  addDepthSpace(k, "space_to_depth_strided_copy", "SpaceToDepth", false);
  addResize(k);
}

}  // namespace anvil::cuda::tactics
