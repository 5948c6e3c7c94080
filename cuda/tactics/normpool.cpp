// The CUDA tactics of the normalizations, softmax forms, reductions and pools, f32 (kernels in
// cuda/kernels/norm.cuh and pool.cuh, launchers in cuda/normpool.h): LayerNormalization,
// BatchNormalization (inference), InstanceNormalization, GroupNormalization, LpNormalization, Softmax,
// LogSoftmax, the ten Reduce* ops, ArgMax, ArgMin, CumSum (f32, i32, i64), MaxPool, AveragePool (1-D, 2-D),
// GlobalAveragePool, GlobalMaxPool. Extents are read from the tensors at run(); params hold
// attributes (and constant axes) only; BatchNorm folds its constant statistics into blobs.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cuda/normpool.h"
#include "cuda/tactics/tactic_util.h"
#include "cuda/tactics/tactics.h"

namespace anvil::cuda::tactics {

namespace {

using runtime::StepArgs;
using Types = std::vector<ir::TensorType>;

bool isF32(const ir::TensorType& t) { return t.dtype == DataType::kF32 && t.shape.rankKnown(); }

int normAxis(int64_t axis, int64_t rank) { return int(axis < 0 ? axis + rank : axis); }
bool axisInRange(int64_t axis, int64_t rank) { return axis >= -rank && axis < rank; }

// Dense row-major element count of dims [from, to).
int64_t prodOf(const runtime::TensorView& t, int from, int to) {
  int64_t p = 1;
  for (int i = from; i < to; ++i) p *= t.dims[i];
  return p;
}

// ---- LayerNormalization --------------------------------------------------------------

struct LayerNormParams {
  int64_t axis;
  float epsilon;
  int32_t hasBias;
};

// Scale and bias must be the trailing dims of X from `axis` (leading 1s allowed): one value per
// column of the normalized row; other broadcasts (per row, scalar) are refused.
bool rowParam(const ir::TensorType& p, const ir::TensorType& x, int axis) {
  if (!isF32(p)) return false;
  const size_t rx = x.shape.rank(), rp = p.shape.rank();
  if (rp > rx) return false;
  for (size_t i = 0; i < rp; ++i) {
    const ir::Dim& pd = p.shape[rp - 1 - i];
    const size_t xi = rx - 1 - i;
    if (int(xi) < axis) {
      if (!(pd.isStatic() && pd.value() == 1)) return false;
    } else if (!(pd == x.shape[xi])) {
      return false;
    }
  }
  // Every normalized dim must be covered (a shorter param would broadcast over columns).
  return rp >= rx - size_t(axis) || x.shape.rank() == 0;
}

void addLayerNorm(runtime::Kernels& k) {
  runtime::Kernel c = cudaKernel("f32_layernorm_rows", "LayerNormalization");
  c.supports = [](const ir::Node& n, const Types& t) {
    if (t.size() < 2 || n.numOutputs() != 1 || !isF32(t[0]) || t[0].shape.rank() < 1) return false;
    const int64_t rank = int64_t(t[0].shape.rank());
    const int64_t axis = n.attrs().getInt("axis", -1);
    if (!axisInRange(axis, rank)) return false;
    const int a = normAxis(axis, rank);
    if (!rowParam(t[1], t[0], a)) return false;
    return t.size() < 3 || t[2].dtype == DataType::kUndefined || rowParam(t[2], t[0], a);
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    const ir::Node& n = *info.node;
    LayerNormParams q{n.attrs().getInt("axis", -1), n.attrs().getFloat("epsilon", 1e-5f),
                      n.input(2) != nullptr ? 1 : 0};
    p->setParams(q);
  };
  c.run = [](const StepArgs& a) {
    const LayerNormParams& q = a.paramsAs<LayerNormParams>();
    const runtime::TensorView& x = a.in(0);
    const int axis = normAxis(q.axis, x.rank);
    const int64_t rows = prodOf(x, 0, axis), cols = prodOf(x, axis, x.rank);
    if (a.in(1).numel() != cols) a.fail("LayerNormalization: Scale must hold one value per normalized column");
    const float* bias = q.hasBias && a.hasInput(2) ? a.in(2).as<float>() : nullptr;
    if (bias && a.in(2).numel() != cols) a.fail("LayerNormalization: B must hold one value per normalized column");
    launchLayerNorm(runtimeOf(a), streamOf(a), x.as<float>(), a.in(1).as<float>(), bias, a.out(0).as<float>(), rows,
                    cols, q.epsilon);
  };
  k.add(std::move(c));
}

// ---- InstanceNormalization, GroupNormalization --------------------------------------

struct GroupNormParams {
  int64_t groups;  // 0: one per channel (InstanceNormalization)
  float epsilon;
};

void addGroupNorm(runtime::Kernels& k, const char* op, bool instance) {
  runtime::Kernel c = cudaKernel(instance ? "f32_instancenorm_rows" : "f32_groupnorm_rows", op);
  c.supports = [instance](const ir::Node& n, const Types& t) {
    if (t.size() != 3 || n.numOutputs() != 1 || !isF32(t[0]) || !isF32(t[1]) || !isF32(t[2])) return false;
    if (t[0].shape.rank() < 2) return false;
    if (instance) return true;
    const int64_t g = n.attrs().getInt("num_groups", 0);
    const ir::Dim& ch = t[0].shape[1];
    return g >= 1 && (!ch.isStatic() || ch.value() % g == 0);
  };
  c.prepare = [instance](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    const ir::Attributes& at = info.node->attrs();
    p->setParams(GroupNormParams{instance ? 0 : at.getInt("num_groups", 1), at.getFloat("epsilon", 1e-5f)});
  };
  c.run = [op](const StepArgs& a) {
    const GroupNormParams& q = a.paramsAs<GroupNormParams>();
    const runtime::TensorView& x = a.in(0);
    const int64_t channels = x.dims[1];
    if (a.in(1).numel() != channels || a.in(2).numel() != channels)
      a.fail(std::string(op) + ": scale and bias must hold one value per channel");
    const int64_t groups = q.groups ? q.groups : channels;
    if (groups < 1 || (channels && channels % groups != 0))
      a.fail(std::string(op) + ": num_groups must divide the channels");
    launchGroupNorm(runtimeOf(a), streamOf(a), x.as<float>(), a.in(1).as<float>(), a.in(2).as<float>(),
                    a.out(0).as<float>(), x.dims[0], channels, groups ? groups : 1, prodOf(x, 2, x.rank), q.epsilon);
  };
  k.add(std::move(c));
}

// ---- LpNormalization ---------------------------------------------------------------------

struct LpParams {
  int64_t axis;
  int32_t p;
};

void addLpNorm(runtime::Kernels& k) {
  runtime::Kernel c = cudaKernel("f32_lpnorm_any_axis", "LpNormalization");
  c.supports = [](const ir::Node& n, const Types& t) {
    if (t.empty() || !isF32(t[0]) || t[0].shape.rank() < 1) return false;
    const int64_t p = n.attrs().getInt("p", 2);
    return (p == 1 || p == 2) && axisInRange(n.attrs().getInt("axis", -1), int64_t(t[0].shape.rank()));
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    const ir::Attributes& at = info.node->attrs();
    p->setParams(LpParams{at.getInt("axis", -1), int32_t(at.getInt("p", 2))});
  };
  c.run = [](const StepArgs& a) {
    const LpParams& q = a.paramsAs<LpParams>();
    const runtime::TensorView& x = a.in(0);
    const int axis = normAxis(q.axis, x.rank);
    launchLpNorm(runtimeOf(a), streamOf(a), q.p, x.as<float>(), a.out(0).as<float>(), prodOf(x, 0, axis), x.dims[axis],
                 prodOf(x, axis + 1, x.rank));
  };
  k.add(std::move(c));
}

// ---- BatchNormalization (inference) -------------------------------------------------

// scale, B, input_mean and input_var constant: folded at prepare into three f32 blobs
// (mean, scale / sqrt(var + eps) computed in double as the reference, B).
void addBatchNorm(runtime::Kernels& k) {
  runtime::Kernel c = cudaKernel("f32_batchnorm_folded", "BatchNormalization");
  c.supports = [](const ir::Node& n, const Types& t) {
    if (t.size() != 5 || n.numOutputs() != 1 || !isF32(t[0]) || t[0].shape.rank() < 2) return false;
    if (n.attrs().getInt("training_mode", 0) != 0) return false;
    const ir::Dim& ch = t[0].shape[1];
    for (size_t i = 1; i < 5; ++i) {
      const ir::Value* v = n.input(i);
      if (v == nullptr || !v->isInitializer() || !ir::isFloat(v->initializer()->dtype())) return false;
      if (!ch.isStatic() || v->initializer()->numel() != ch.value()) return false;
    }
    return true;
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    const ir::Node& n = *info.node;
    const double eps = n.attrs().getFloat("epsilon", 1e-5f);
    const ir::Tensor& scale = *info.constants[1];
    const ir::Tensor& bias = *info.constants[2];
    const ir::Tensor& mean = *info.constants[3];
    const ir::Tensor& var = *info.constants[4];
    const int64_t ch = scale.numel();
    const size_t count = static_cast<size_t>(ch);
    std::vector<float> m(count), a(count), b(count);
    for (int64_t i = 0; i < ch; ++i) {
      m[size_t(i)] = float(mean.getDouble(i));
      a[size_t(i)] = float(scale.getDouble(i) / std::sqrt(var.getDouble(i) + eps));
      b[size_t(i)] = float(bias.getDouble(i));
    }
    for (const std::vector<float>* v : {&m, &a, &b})
      p->blobs.emplace_back(reinterpret_cast<const char*>(v->data()), v->size() * sizeof(float));
    p->packedInputs = {1, 2, 3, 4};
  };
  c.run = [](const StepArgs& a) {
    const runtime::TensorView& x = a.in(0);
    if (a.numBlobs != 3) a.fail("BatchNormalization: the folded parameters are missing");
    launchBatchNorm(runtimeOf(a), streamOf(a), x.as<float>(), a.blobs[0].as<float>(), a.blobs[1].as<float>(),
                    a.blobs[2].as<float>(), a.out(0).as<float>(), x.dims[0], x.dims[1], prodOf(x, 2, x.rank));
  };
  k.add(std::move(c));
}

// ---- Softmax, LogSoftmax -------------------------------------------------------------

struct AxisParams {
  int64_t axis;
};

// Any axis: the launcher runs a block per row where the axis is innermost (inner == 1: the
// seed's f32_softmax_row_block256, or f32_log_softmax_row_block256) and a thread per column
// otherwise (f32_[log_]softmax_axis_gridstride_block256).
void addSoftmax(runtime::Kernels& k, const char* name, const char* op, bool log) {
  runtime::Kernel c = cudaKernel(name, op);
  c.supports = [](const ir::Node& n, const Types& t) {
    if (t.empty() || !isF32(t[0]) || t[0].shape.rank() < 1) return false;
    return axisInRange(n.attrs().getInt("axis", -1), int64_t(t[0].shape.rank()));
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    p->setParams(AxisParams{info.node->attrs().getInt("axis", -1)});
  };
  c.run = [log](const StepArgs& a) {
    const runtime::TensorView& x = a.in(0);
    const int axis = normAxis(a.paramsAs<AxisParams>().axis, x.rank);
    launchSoftmaxAxis(runtimeOf(a), streamOf(a), log, x.as<float>(), a.out(0).as<float>(), prodOf(x, 0, axis),
                      x.dims[axis], prodOf(x, axis + 1, x.rank));
  };
  k.add(std::move(c));
}

// ---- Reduce{Sum,Mean,Max,Min,Prod,L1,L2,SumSquare,LogSum,LogSumExp} -------------------

struct ReduceParams {
  int32_t numAxes;  // -1: every axis (axes absent or empty); -2: identity (empty with noop)
  int64_t axes[runtime::kMaxRank];
};

void addReduce(runtime::Kernels& k, const char* name, const char* op, ReduceKind kind) {
  runtime::Kernel c = cudaKernel(name, op);
  c.supports = [](const ir::Node& n, const Types& t) {
    if (t.empty() || !isF32(t[0]) || t[0].shape.rank() > size_t(runtime::kMaxRank)) return false;
    if (n.numInputs() < 2 || n.input(1) == nullptr) return true;
    const ir::Value* axes = n.input(1);
    if (!axes->isInitializer()) return false;  // axes computed at run time: the CPU serves it
    const std::vector<int64_t> v = axes->initializer()->toInt64Vector();
    const int64_t rank = int64_t(t[0].shape.rank());
    std::vector<bool> seen(size_t(rank), false);
    for (int64_t ax : v) {
      if (!axisInRange(ax, rank) || seen[size_t(normAxis(ax, rank))]) return false;
      seen[size_t(normAxis(ax, rank))] = true;
    }
    return true;
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    const ir::Node& n = *info.node;
    ReduceParams q{};
    std::vector<int64_t> axes;
    if (n.input(1) != nullptr) axes = n.input(1)->initializer()->toInt64Vector();
    q.numAxes = int32_t(axes.size());
    if (axes.empty()) q.numAxes = n.attrs().getInt("noop_with_empty_axes", 0) != 0 ? -2 : -1;
    for (size_t i = 0; i < axes.size(); ++i) q.axes[i] = axes[i];
    p->setParams(q);
  };
  c.run = [kind](const StepArgs& a) {
    const ReduceParams& q = a.paramsAs<ReduceParams>();
    const runtime::TensorView& x = a.in(0);
    runtime::TensorView& y = a.out(0);
    if (q.numAxes == -2) {  // the input unchanged, as the reference
      if (x.bytes() != y.bytes()) a.fail("Reduce with no axes and noop_with_empty_axes: output size differs");
      if (x.bytes()) runtimeOf(a).copyAsync(y.data, x.data, x.bytes(), CopyKind::kDeviceToDevice, streamOf(a));
      return;
    }
    uint32_t mask = q.numAxes == -1 ? (1u << x.rank) - 1u : 0u;
    for (int i = 0; i < q.numAxes; ++i) mask |= 1u << normAxis(q.axes[i], x.rank);
    launchReduce(runtimeOf(a), streamOf(a), kind, x.as<float>(), y.as<float>(), x.rank, x.dims, mask);
  };
  k.add(std::move(c));
}

// ---- ArgMax, ArgMin ---------------------------------------------------------------------

struct ArgParams {
  int64_t axis;
  int32_t selectLast;
};

void addArgReduce(runtime::Kernels& k, const char* name, const char* op, bool max) {
  runtime::Kernel c = cudaKernel(name, op);
  c.supports = [](const ir::Node& n, const Types& t) {
    if (t.empty() || !isF32(t[0]) || t[0].shape.rank() < 1) return false;
    const int64_t rank = int64_t(t[0].shape.rank());
    const int64_t axis = n.attrs().getInt("axis", 0);
    if (!axisInRange(axis, rank)) return false;
    // An empty axis is an error in the reference; a kernel cannot report it.
    const ir::Dim& d = t[0].shape[size_t(normAxis(axis, rank))];
    return d.isStatic() && d.value() > 0;
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    const ir::Attributes& at = info.node->attrs();
    p->setParams(ArgParams{at.getInt("axis", 0), at.getInt("select_last_index", 0) != 0 ? 1 : 0});
  };
  c.run = [max](const StepArgs& a) {
    const ArgParams& q = a.paramsAs<ArgParams>();
    const runtime::TensorView& x = a.in(0);
    const int axis = normAxis(q.axis, x.rank);
    launchArgReduce(runtimeOf(a), streamOf(a), max, x.as<float>(), a.out(0).as<int64_t>(), prodOf(x, 0, axis),
                    x.dims[axis], prodOf(x, axis + 1, x.rank), q.selectLast != 0);
  };
  k.add(std::move(c));
}

// ---- CumSum ------------------------------------------------------------------------------

struct CumSumParams {
  int64_t axis;
  int32_t exclusive, reverse;
};

void addCumSum(runtime::Kernels& k) {
  runtime::Kernel c = cudaKernel("cumsum_column_scan", "CumSum");
  c.precision = DataType::kUndefined;  // f32, i32 and i64, each in its own type
  c.supports = [](const ir::Node& n, const Types& t) {
    if (t.size() < 2 || !t[0].shape.rankKnown() || t[0].shape.rank() < 1) return false;
    if (t[0].dtype != DataType::kF32 && t[0].dtype != DataType::kI32 && t[0].dtype != DataType::kI64) return false;
    const ir::Value* ax = n.input(1);
    if (ax == nullptr || !ax->isInitializer() || ax->initializer()->numel() != 1) return false;
    return axisInRange(ax->initializer()->getInt(0), int64_t(t[0].shape.rank()));
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    const ir::Node& n = *info.node;
    p->setParams(CumSumParams{n.input(1)->initializer()->getInt(0), n.attrs().getInt("exclusive", 0) != 0 ? 1 : 0,
                              n.attrs().getInt("reverse", 0) != 0 ? 1 : 0});
  };
  c.run = [](const StepArgs& a) {
    const CumSumParams& q = a.paramsAs<CumSumParams>();
    const runtime::TensorView& x = a.in(0);
    const int axis = normAxis(q.axis, x.rank);
    launchCumSum(runtimeOf(a), streamOf(a), x.dtype, x.data, a.out(0).data, prodOf(x, 0, axis), x.dims[axis],
                 prodOf(x, axis + 1, x.rank), q.exclusive != 0, q.reverse != 0);
  };
  k.add(std::move(c));
}

// ---- GlobalAveragePool, GlobalMaxPool -------------------------------------------------

void addGlobalPool(runtime::Kernels& k, const char* name, const char* op, ReduceKind kind) {
  runtime::Kernel c = cudaKernel(name, op);
  c.supports = [](const ir::Node&, const Types& t) {
    if (t.empty() || !isF32(t[0])) return false;
    const size_t r = t[0].shape.rank();
    if (r < 3 || r > size_t(runtime::kMaxRank)) return false;
    // An empty spatial extent averages to 0 in the reference but to NaN as a mean: refused.
    for (size_t i = 2; i < r; ++i)
      if (!t[0].shape[i].isStatic() || t[0].shape[i].value() == 0) return false;
    return true;
  };
  c.run = [kind](const StepArgs& a) {
    const runtime::TensorView& x = a.in(0);
    const uint32_t mask = ((1u << x.rank) - 1u) & ~3u;
    launchReduce(runtimeOf(a), streamOf(a), kind, x.as<float>(), a.out(0).as<float>(), x.rank, x.dims, mask);
  };
  k.add(std::move(c));
}

// ---- MaxPool, AveragePool (1-D and 2-D) -------------------------------------------------------

struct PoolParams {
  int32_t kernel[2], strides[2], dilations[2], pads[4];
  int32_t autoPad;  // 0 explicit pads, 1 VALID, 2 SAME_UPPER, 3 SAME_LOWER
  int32_t countIncludePad;
};

int autoPadOf(const std::string& s) {
  if (s == "NOTSET") return 0;
  if (s == "VALID") return 1;
  if (s == "SAME_UPPER") return 2;
  if (s == "SAME_LOWER") return 3;
  return -1;
}

bool intsFit(const std::vector<int64_t>& v, size_t n, int64_t lo) {
  if (v.size() != n) return false;
  for (int64_t x : v)
    if (x < lo || x > (1 << 20)) return false;
  return true;
}

void addPool(runtime::Kernels& k, const char* name, const char* op, bool max) {
  runtime::Kernel c = cudaKernel(name, op);
  c.supports = [max](const ir::Node& n, const Types& t) {
    // 2-D windows, and 1-D ones as 2-D with a unit height.
    if (t.empty() || !isF32(t[0]) || n.numOutputs() != 1) return false;
    const size_t r = t[0].shape.rank();
    if (r != 3 && r != 4) return false;
    const size_t sr = r - 2;
    const ir::Attributes& at = n.attrs();
    if (autoPadOf(at.getString("auto_pad", "NOTSET")) < 0) return false;
    if (!intsFit(at.getInts("kernel_shape"), sr, 1)) return false;
    if (at.has("strides") && !intsFit(at.getInts("strides"), sr, 1)) return false;
    if (at.has("dilations") && !intsFit(at.getInts("dilations"), sr, 1)) return false;
    if (at.has("pads") && !intsFit(at.getInts("pads"), 2 * sr, 0)) return false;
    if (max && at.getInt("storage_order", 0) != 0) return false;
    return true;
  };
  c.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* p) {
    const ir::Attributes& at = info.node->attrs();
    PoolParams q{};
    std::vector<int64_t> ks = at.getInts("kernel_shape");
    std::vector<int64_t> st = at.getInts("strides", std::vector<int64_t>(ks.size(), 1));
    std::vector<int64_t> dl = at.getInts("dilations", std::vector<int64_t>(ks.size(), 1));
    std::vector<int64_t> pd = at.getInts("pads", std::vector<int64_t>(2 * ks.size(), 0));
    if (ks.size() == 1) {  // 1-D: a window of height 1 over a unit H
      ks.insert(ks.begin(), 1);
      st.insert(st.begin(), 1);
      dl.insert(dl.begin(), 1);
      pd = {0, pd[0], 0, pd[1]};
    }
    for (int i = 0; i < 2; ++i) {
      q.kernel[i] = int32_t(ks[size_t(i)]);
      q.strides[i] = int32_t(st[size_t(i)]);
      q.dilations[i] = int32_t(dl[size_t(i)]);
    }
    for (int i = 0; i < 4; ++i) q.pads[i] = int32_t(pd[size_t(i)]);
    q.autoPad = autoPadOf(at.getString("auto_pad", "NOTSET"));
    q.countIncludePad = at.getInt("count_include_pad", 0) != 0 ? 1 : 0;
    p->setParams(q);
  };
  c.run = [max](const StepArgs& a) {
    const PoolParams& q = a.paramsAs<PoolParams>();
    const runtime::TensorView& x = a.in(0);
    const runtime::TensorView& y = a.out(0);
    Pool2dDesc d;
    d.max = max;
    d.x = x.as<float>();
    d.y = y.as<float>();
    d.n = x.dims[0];
    d.c = x.dims[1];
    const bool oneD = x.rank == 3;
    d.h = oneD ? 1 : x.dims[2];
    d.w = x.dims[x.rank - 1];
    d.oh = oneD ? 1 : y.dims[2];
    d.ow = y.dims[y.rank - 1];
    d.kh = q.kernel[0];
    d.kw = q.kernel[1];
    d.sh = q.strides[0];
    d.sw = q.strides[1];
    d.dh = q.dilations[0];
    d.dw = q.dilations[1];
    d.countIncludePad = q.countIncludePad != 0;
    int begin[2] = {q.pads[0], q.pads[1]};
    if (q.autoPad == 1) begin[0] = begin[1] = 0;
    if (q.autoPad >= 2) {  // SAME: out = ceil(in / stride), the odd pad at the end (UPPER) or begin
      const int64_t in[2] = {d.h, d.w};
      for (int i = 0; i < 2; ++i) {
        const int64_t out = (in[i] + q.strides[i] - 1) / q.strides[i];
        const int64_t dk = int64_t(q.kernel[i] - 1) * q.dilations[i] + 1;
        const int64_t total = std::max<int64_t>(0, (out - 1) * q.strides[i] + dk - in[i]);
        begin[i] = int(q.autoPad == 2 ? total / 2 : total - total / 2);
      }
    }
    d.padTop = begin[0];
    d.padLeft = begin[1];
    launchPool2d(runtimeOf(a), streamOf(a), d);
  };
  k.add(std::move(c));
}

}  // namespace

void addNormPoolKernels(runtime::Kernels& k) {
  addLayerNorm(k);
  addBatchNorm(k);
  addLpNorm(k);
  addGroupNorm(k, "InstanceNormalization", true);
  addGroupNorm(k, "GroupNormalization", false);
  addSoftmax(k, "f32_softmax_any_axis", "Softmax", false);
  addSoftmax(k, "f32_log_softmax_any_axis", "LogSoftmax", true);
  addReduce(k, "f32_reduce_sum", "ReduceSum", ReduceKind::kSum);
  addReduce(k, "f32_reduce_mean", "ReduceMean", ReduceKind::kMean);
  addReduce(k, "f32_reduce_max", "ReduceMax", ReduceKind::kMax);
  addReduce(k, "f32_reduce_min", "ReduceMin", ReduceKind::kMin);
  addReduce(k, "f32_reduce_prod", "ReduceProd", ReduceKind::kProd);
  addReduce(k, "f32_reduce_l1", "ReduceL1", ReduceKind::kL1);
  addReduce(k, "f32_reduce_l2", "ReduceL2", ReduceKind::kL2);
  addReduce(k, "f32_reduce_sum_square", "ReduceSumSquare", ReduceKind::kSumSquare);
  addReduce(k, "f32_reduce_log_sum", "ReduceLogSum", ReduceKind::kLogSum);
  addReduce(k, "f32_reduce_log_sum_exp", "ReduceLogSumExp", ReduceKind::kLogSumExp);
  addCumSum(k);
  addArgReduce(k, "f32_argmax_gridstride", "ArgMax", true);
  addArgReduce(k, "f32_argmin_gridstride", "ArgMin", false);
  addGlobalPool(k, "f32_global_average_pool", "GlobalAveragePool", ReduceKind::kMean);
  addGlobalPool(k, "f32_global_max_pool", "GlobalMaxPool", ReduceKind::kMax);
  addPool(k, "f32_maxpool2d_gridstride256", "MaxPool", true);
  addPool(k, "f32_avgpool2d_gridstride256", "AveragePool", false);
}

}  // namespace anvil::cuda::tactics
