// Importers of the reduce op family. Older opsets are upgraded to the newest form:
// Reduce* axes attribute -> input, TopK k attribute -> input, Softmax/LogSoftmax/Hardmax
// (< 13, "coerce to 2-D at axis") -> Flatten + per-axis op + Reshape, BatchNormalization
// (< 14) -> training_mode, GroupNormalization (< 21, per-group scale) -> per-channel form.
#include <algorithm>
#include <cmath>

#include "ir/op_schema.h"
#include "parser/importer.h"

namespace anvil::parser::importers {

namespace {

using ir::DataType;
using ir::Tensor;

// A value name not yet used in the graph (or an enclosing one), derived from `base`.
std::string freshName(ImportContext& ctx, const std::string& base) {
  std::string name = base;
  for (int i = 1; ctx.graph().lookup(name); ++i) name = base + "_" + std::to_string(i);
  return name;
}

bool wanted(const ImportContext& ctx, size_t i) { return i < ctx.outputs().size() && !ctx.outputs()[i].empty(); }

void requireOps(ImportContext& ctx, std::initializer_list<const char*> ops, const char* why) {
  for (const char* op : ops)
    if (!ir::OpRegistry::instance().find(op)) ctx.fail(std::string(why) + " needs op " + op + ", not available");
}

// Reduce* before the axes-input form: the ints attribute becomes input 1.
void importReduceAttrAxes(ImportContext& ctx) {
  ctx.moveIntsAttrToInput("axes", 1);
  ctx.emitAsIs();
}

// Softmax/LogSoftmax/Hardmax before opset 13: the input is coerced to 2-D
// [prod(d0..axis-1), prod(daxis..)] and the op runs over the second dim. Same as the
// per-axis form when axis is the last dim; otherwise Flatten -> op(axis=-1) -> Reshape.
void importSoftmaxCoerced(ImportContext& ctx) {
  const int64_t axis = ctx.attrs().getInt("axis", 1);
  ir::Value* x = ctx.input(0);
  if (!x) ctx.fail("input 0 is required", false);
  const ir::Shape& s = x->shape();
  if (axis == -1) {  // the last axis whatever the rank: already the per-axis form
    ctx.emitAsIs();
    return;
  }
  if (x->dtype() != DataType::kUndefined && s.rankKnown()) {
    const int64_t rank = int64_t(s.rank());
    if (axis < -rank || axis >= std::max<int64_t>(rank, 1))
      ctx.fail("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank), false);
    const int64_t a = axis < 0 ? axis + rank : axis;
    if (a == rank - 1) {
      ir::Attributes at = ctx.attrs();
      at.set("axis", int64_t(-1));
      ctx.emit(ctx.op(), {x}, at, ctx.outputs());
      return;
    }
  }
  requireOps(ctx, {"Flatten", "Shape", "Reshape"}, "opset < 13 Softmax/LogSoftmax/Hardmax on a non-final axis");
  const std::string& out = ctx.outputs().at(0);
  ir::Attributes fa;
  fa.set("axis", axis);
  std::string flat = freshName(ctx, out + "__2d");
  ctx.emit("Flatten", {x}, fa, {flat});
  ir::Attributes oa;
  oa.set("axis", int64_t(-1));
  std::string y2 = freshName(ctx, out + "__2d_out");
  ctx.emit(ctx.op(), {ctx.graph().findValue(flat)}, oa, {y2});
  std::string shp = freshName(ctx, out + "__shape");
  ctx.emit("Shape", {x}, {}, {shp});
  ctx.emit("Reshape", {ctx.graph().findValue(y2), ctx.graph().findValue(shp)}, {}, {out});
}

// TopK opset 1: k attribute -> K input.
void importTopK1(ImportContext& ctx) {
  const int64_t k = ctx.attrs().requireInt("k");
  ctx.attrs().erase("k");
  ctx.inputs().resize(1);
  ctx.inputs().push_back(ctx.addConstant("k", Tensor::fromVector<int64_t>(DataType::kI64, {1}, {k})));
  ctx.emitAsIs();
}

// BatchNormalization before 14: training is implied by the optional outputs (is_test = 0
// before 7); spatial = 0 (per-activation statistics) is folded into Mul/Add when the
// parameters are initializers.
void importBatchNormOld(ImportContext& ctx) {
  ir::Attributes& at = ctx.attrs();
  const bool isTest = at.getInt("is_test", 0) != 0;
  const bool spatial = at.getInt("spatial", 1) != 0;
  at.erase("consumed_inputs");
  at.erase("is_test");
  at.erase("spatial");
  if (wanted(ctx, 3) || wanted(ctx, 4))
    ctx.fail("saved_mean / saved_var outputs (training, opset < 14) are not supported");
  const bool stats = wanted(ctx, 1) || wanted(ctx, 2);
  const bool training = ctx.opset() < 7 ? !isTest : stats;
  std::vector<std::string> outs(ctx.outputs().begin(), ctx.outputs().begin() + std::min<size_t>(3, ctx.outputs().size()));
  while (outs.size() > 1 && outs.back().empty()) outs.pop_back();
  if (!spatial) {
    // Per-activation parameters [C, D1, ...]: y = x * a + b with a = scale / sqrt(var + eps),
    // b = B - mean * a, broadcast over N.
    if (training) ctx.fail("BatchNormalization with spatial = 0 in training mode is not supported");
    const Tensor* p[4];
    for (size_t i = 0; i < 4; ++i) {
      ir::Value* v = ctx.input(i + 1);
      p[i] = v ? v->initializer() : nullptr;
      if (!p[i]) ctx.fail("BatchNormalization with spatial = 0 needs initializer parameters");
      if (!ir::isFloat(p[i]->dtype()) || p[i]->numel() != p[0]->numel())
        ctx.fail("BatchNormalization parameters must be float tensors of one shape", false);
    }
    if (outs.size() > 1) ctx.fail("BatchNormalization with spatial = 0 has only output Y here");
    requireOps(ctx, {"Mul", "Add"}, "BatchNormalization with spatial = 0");
    const double eps = at.getFloat("epsilon", 1e-5f);
    // Parameters keep their rank [C, D1, ...]; a leading 1 makes them broadcast over N.
    std::vector<int64_t> dims = p[0]->dims();
    dims.insert(dims.begin(), 1);
    Tensor a(p[0]->dtype(), dims), b(p[0]->dtype(), dims);
    for (int64_t i = 0; i < p[0]->numel(); ++i) {
      double ai = p[0]->getDouble(i) / std::sqrt(p[3]->getDouble(i) + eps);
      a.setDouble(i, ai);
      b.setDouble(i, p[1]->getDouble(i) - p[2]->getDouble(i) * ai);
    }
    ir::Value* av = ctx.addConstant("scale_folded", std::move(a));
    ir::Value* bv = ctx.addConstant("bias_folded", std::move(b));
    std::string mul = freshName(ctx, outs[0] + "__scaled");
    ctx.emit("Mul", {ctx.input(0), av}, {}, {mul});
    ctx.emit("Add", {ctx.graph().findValue(mul), bv}, {}, {outs[0]});
    return;
  }
  at.set("training_mode", int64_t(training ? 1 : 0));
  ctx.emit("BatchNormalization", ctx.inputs(), at, outs);
}

// InstanceNormalization opset 1: drop consumed_inputs.
void importInstanceNorm1(ImportContext& ctx) {
  ctx.attrs().erase("consumed_inputs");
  ctx.emitAsIs();
}

// GroupNormalization 18..20: scale and bias are per group. With initializer parameters
// and a known channel count they are repeated per channel; otherwise the input is
// viewed as [N, G, rest] (one channel per group, same statistics) around the op.
void importGroupNorm18(ImportContext& ctx) {
  const int64_t g = ctx.attrs().requireInt("num_groups");
  if (g < 1) ctx.fail("num_groups must be >= 1", false);
  ir::Value* x = ctx.input(0);
  ir::Value* scale = ctx.input(1);
  ir::Value* bias = ctx.input(2);
  if (!x || !scale || !bias) ctx.fail("X, scale and bias are required", false);
  ir::Attributes at = ctx.attrs();
  at.set("stash_type", int64_t(1));
  const ir::Shape& s = x->shape();
  const bool cKnown = x->dtype() != DataType::kUndefined && s.rankKnown() && s.rank() >= 2 && s[1].isStatic();
  if (cKnown && s[1].value() == g) {  // one channel per group: the forms agree
    ctx.emit("GroupNormalization", {x, scale, bias}, at, ctx.outputs());
    return;
  }
  if (cKnown && scale->initializer() && bias->initializer()) {
    const int64_t c = s[1].value();
    if (c % g != 0) ctx.fail("channels must be divisible by num_groups", false);
    auto repeat = [&](const Tensor& t, const char* suffix) {
      if (t.numel() != g) ctx.fail(std::string(suffix) + " must have num_groups elements", false);
      Tensor r(t.dtype(), {c});
      for (int64_t i = 0; i < c; ++i) r.setDouble(i, t.getDouble(i / (c / g)));
      return ctx.addConstant(suffix, std::move(r));
    };
    ir::Value* sc = repeat(*scale->initializer(), "scale_per_channel");
    ir::Value* bc = repeat(*bias->initializer(), "bias_per_channel");
    ctx.emit("GroupNormalization", {x, sc, bc}, at, ctx.outputs());
    return;
  }
  requireOps(ctx, {"Shape", "Reshape"}, "opset 18 GroupNormalization with per-group scale");
  const std::string& out = ctx.outputs().at(0);
  ir::Value* viewShape =
      ctx.addConstant("group_view", Tensor::fromVector<int64_t>(DataType::kI64, {3}, {0, g, -1}));
  std::string xg = freshName(ctx, out + "__grouped");
  ctx.emit("Reshape", {x, viewShape}, {}, {xg});
  std::string yg = freshName(ctx, out + "__grouped_out");
  ctx.emit("GroupNormalization", {ctx.graph().findValue(xg), scale, bias}, at, {yg});
  std::string shp = freshName(ctx, out + "__shape");
  ctx.emit("Shape", {x}, {}, {shp});
  ctx.emit("Reshape", {ctx.graph().findValue(yg), ctx.graph().findValue(shp)}, {}, {out});
}

}  // namespace

void registerReduceImporters(ImporterRegistry& r) {
  // ReduceSum took axes as an input from opset 13, the others from 18.
  r.add({"ReduceSum", "", 1, 12, importReduceAttrAxes});
  r.generic("ReduceSum", 13);
  for (const char* op : {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}) {
    r.add({op, "", 1, 17, importReduceAttrAxes});
    r.generic(op, 18);
  }
  // select_last_index (12) defaults to the old behaviour; negative axes (11) are a superset.
  r.generic("ArgMax", 1);
  r.generic("ArgMin", 1);
  for (const char* op : {"Softmax", "LogSoftmax", "Hardmax"}) {
    r.add({op, "", 1, 12, importSoftmaxCoerced});
    r.generic(op, 13);
  }
  r.generic("CumSum", 11);
  r.add({"TopK", "", 1, 9, importTopK1});
  r.generic("TopK", 10);  // 10: K input; 11 added largest/sorted whose defaults are 10's behaviour
  r.add({"BatchNormalization", "", 1, 13, importBatchNormOld});
  r.generic("BatchNormalization", 14);
  r.generic("LayerNormalization", 17);
  r.add({"InstanceNormalization", "", 1, 5, importInstanceNorm1});
  r.generic("InstanceNormalization", 6);
  r.add({"GroupNormalization", "", 18, 20, importGroupNorm18});
  r.generic("GroupNormalization", 21);
  r.generic("LRN", 1);
  r.generic("MeanVarianceNormalization", 9);
  r.generic("LpNormalization", 1);
  r.generic("Einsum", 12);
  r.generic("Det", 11);
  r.generic("SoftmaxCrossEntropyLoss", 12);
  r.generic("NegativeLogLikelihoodLoss", 12);
}

}  // namespace anvil::parser::importers
