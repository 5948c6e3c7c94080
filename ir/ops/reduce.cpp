// Schemas and shape inference of the reduce op family: Reduce*, ArgMax/ArgMin, the
// softmax family, CumSum, TopK, the normalizations, Einsum, Det and the two losses.
// Every op here has the semantics of its newest opset (<= 22); parser/importers/reduce.cpp
// upgrades older forms.
#include <algorithm>
#include <map>

#include "ir/op_schema.h"
#include "ir/ops/families.h"
#include "ir/ops/infer_util.h"
#include "ir/ops/reduce_einsum.h"

namespace anvil::ir::ops {

namespace {

bool isFloatCompute(DataType t) {
  return t == DataType::kF32 || t == DataType::kF64 || t == DataType::kF16 || t == DataType::kBF16;
}

bool isNumeric(DataType t) { return isFloatCompute(t) || isInteger(t); }

void requireFloat(const InferContext& c, size_t i, const char* what) {
  DataType t = c.inputDtype(i);
  c.check(isFloatCompute(t), std::string(what) + " must be a float tensor (f32, f64, f16, bf16), got " +
                                 dtypeName(t));
}

void requireNumeric(const InferContext& c, size_t i, const char* what) {
  DataType t = c.inputDtype(i);
  c.check(isNumeric(t), std::string(what) + " must be a numeric tensor, got " + dtypeName(t));
}

void requireIndex(const InferContext& c, size_t i, const char* what) {
  DataType t = c.inputDtype(i);
  c.check(t == DataType::kI32 || t == DataType::kI64,
          std::string(what) + " must be an i32 or i64 tensor, got " + dtypeName(t));
}

// A static dim that must equal `want` when both are known.
void checkDim(const InferContext& c, const Dim& got, const Dim& want, const std::string& what) {
  if (got.isStatic() && want.isStatic() && got.value() != want.value())
    c.fail(what + " is " + std::to_string(got.value()) + ", expected " + std::to_string(want.value()));
}

// Rank-1 parameter of length `len` (BatchNorm scale, InstanceNorm B, ...).
void checkVector(const InferContext& c, size_t i, const Dim& len, const std::string& what) {
  if (!c.hasInput(i)) return;
  const Shape& s = c.inputShape(i);
  if (!s.rankKnown()) return;
  c.check(s.rank() == 1, what + " must be 1-D, got rank " + std::to_string(s.rank()));
  checkDim(c, s[0], len, what + " length");
}

// Normalizes and de-duplicates axes against `rank`.
std::vector<int64_t> normalizeAxes(const std::vector<int64_t>& axes, int64_t rank, const InferContext& c) {
  std::vector<int64_t> out;
  for (int64_t a : axes) {
    if (a < -rank || a >= rank)
      c.fail("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(rank));
    int64_t n = a < 0 ? a + rank : a;
    if (std::find(out.begin(), out.end(), n) != out.end()) c.fail("axis " + std::to_string(a) + " is repeated");
    out.push_back(n);
  }
  return out;
}

// Output shape of a reduction over `axes` (already normalized).
Shape reducedShape(const Shape& in, const std::vector<int64_t>& axes, bool keepdims) {
  std::vector<Dim> out;
  for (size_t i = 0; i < in.rank(); ++i) {
    bool reduced = std::find(axes.begin(), axes.end(), int64_t(i)) != axes.end();
    if (!reduced) out.push_back(in[i]);
    else if (keepdims) out.emplace_back(int64_t(1));
  }
  return Shape(out);
}

// ReduceSum (13) and the other Reduce* (18): data, optional axes input.
void inferReduce(InferContext& c, bool allowBool) {
  DataType dt = c.inputDtype(0);
  c.check(isNumeric(dt) || (allowBool && dt == DataType::kBool),
          std::string("data must be a numeric") + (allowBool ? " or bool" : "") + " tensor, got " + dtypeName(dt));
  const Shape& s = c.inputShape(0);
  const bool keep = c.attrs().getInt("keepdims", 1) != 0;
  const bool noop = c.attrs().getInt("noop_with_empty_axes", 0) != 0;
  std::optional<std::vector<int64_t>> axes;
  if (!c.hasInput(1)) {
    axes = std::vector<int64_t>{};
  } else {
    c.check(c.inputDtype(1) == DataType::kI64, std::string("axes must be an i64 tensor, got ") +
                                                    dtypeName(c.inputDtype(1)));
    const Shape& as = c.inputShape(1);
    c.check(!as.rankKnown() || as.rank() <= 1, "axes must be 1-D");
    axes = knownInts(c, 1);
    if (!axes && as.rankKnown() && as.rank() == 1 && as[0].isStatic() && as[0].value() == 0)
      axes = std::vector<int64_t>{};
  }
  if (!axes) {  // axes computed at run time: the rank survives only with keepdims
    c.setOutput(0, dt, keep && s.rankKnown() ? unknownDims(int64_t(s.rank())) : Shape::unknownRank());
    return;
  }
  if (axes->empty() && noop) {
    c.setOutput(0, dt, s);
    return;
  }
  if (!s.rankKnown()) {
    c.setOutput(0, dt, Shape::unknownRank());
    return;
  }
  const int64_t rank = int64_t(s.rank());
  std::vector<int64_t> ax;
  if (axes->empty()) {
    for (int64_t i = 0; i < rank; ++i) ax.push_back(i);
  } else {
    ax = normalizeAxes(*axes, rank, c);
  }
  c.setOutput(0, dt, reducedShape(s, ax, keep));
  // Shape arithmetic (numel = ReduceProd(Shape(x))) stays symbolic-aware: fold when static.
  const std::string& op = c.node().op();
  if ((op == "ReduceProd" || op == "ReduceSum") && rank == 1 && dt == DataType::kI64) {
    if (const auto* sv = c.inputShapeValue(0)) {
      int64_t acc = op == "ReduceProd" ? 1 : 0;
      bool ok = true;
      for (const Dim& d : *sv) {
        if (!d.isStatic()) ok = false;
        else acc = op == "ReduceProd" ? acc * d.value() : acc + d.value();
      }
      if (ok) {
        Tensor t = keep ? Tensor(DataType::kI64, {1}) : Tensor(DataType::kI64, {});
        *t.data<int64_t>() = acc;
        c.setOutputValue(0, t);
        c.setOutputShapeValue(0, {Dim(acc)});
      }
    }
  }
}

void inferArgReduce(InferContext& c) {
  requireNumeric(c, 0, "data");
  const Shape& s = c.inputShape(0);
  const bool keep = c.attrs().getInt("keepdims", 1) != 0;
  if (!s.rankKnown()) {
    c.setOutput(0, DataType::kI64, Shape::unknownRank());
    return;
  }
  const int64_t rank = int64_t(s.rank());
  c.check(rank >= 1, "data must have rank >= 1");
  int64_t axis = normalizeAxis(c.attrs().getInt("axis", 0), rank, c);
  c.setOutput(0, DataType::kI64, reducedShape(s, {axis}, keep));
}

// Softmax, LogSoftmax, Hardmax (13): per-axis, same type and shape.
void inferSoftmaxLike(InferContext& c) {
  requireFloat(c, 0, "input");
  const Shape& s = c.inputShape(0);
  if (s.rankKnown()) {
    c.check(s.rank() >= 1, "input must have rank >= 1");
    normalizeAxis(c.attrs().getInt("axis", -1), int64_t(s.rank()), c);
  }
  inferSameAsInput(c);
}

void inferCumSum(InferContext& c) {
  requireNumeric(c, 0, "x");
  requireIndex(c, 1, "axis");
  const Shape& s = c.inputShape(0);
  const Shape& as = c.inputShape(1);
  c.check(!as.rankKnown() || as.rank() == 0 || (as.rank() == 1 && !(as[0].isStatic() && as[0].value() != 1)),
          "axis must be a scalar");
  if (auto ax = knownInts(c, 1); ax && s.rankKnown()) {
    c.check(ax->size() == 1, "axis must hold one value");
    c.check(s.rank() >= 1, "x must have rank >= 1");
    normalizeAxis((*ax)[0], int64_t(s.rank()), c);
  }
  inferSameAsInput(c);
}

void inferTopK(InferContext& c) {
  requireNumeric(c, 0, "X");
  c.check(c.inputDtype(1) == DataType::kI64, std::string("K must be an i64 tensor, got ") +
                                                 dtypeName(c.inputDtype(1)));
  const Shape& s = c.inputShape(0);
  DataType dt = c.inputDtype(0);
  if (!s.rankKnown()) {
    c.setOutput(0, dt, Shape::unknownRank());
    if (c.numOutputs() > 1) c.setOutput(1, DataType::kI64, Shape::unknownRank());
    return;
  }
  c.check(s.rank() >= 1, "X must have rank >= 1");
  int64_t axis = normalizeAxis(c.attrs().getInt("axis", -1), int64_t(s.rank()), c);
  Shape out = s;
  out[size_t(axis)] = Dim();
  if (auto k = knownDims(c, 1)) {
    c.check(k->size() == 1, "K must hold exactly one value");
    Dim kd = (*k)[0];
    if (kd.isStatic()) {
      c.check(kd.value() >= 0, "K must be >= 0, got " + std::to_string(kd.value()));
      if (s[size_t(axis)].isStatic())
        c.check(kd.value() <= s[size_t(axis)].value(),
                "K = " + std::to_string(kd.value()) + " exceeds the axis extent " + s[size_t(axis)].str());
    }
    out[size_t(axis)] = kd;
  }
  c.setOutput(0, dt, out);
  if (c.numOutputs() > 1) c.setOutput(1, DataType::kI64, out);
}

// X is [N, C, ...]: returns C (or unknown when the rank is unknown).
Dim channelDim(const InferContext& c, const char* what, size_t minRank = 2) {
  const Shape& s = c.inputShape(0);
  if (!s.rankKnown()) return Dim();
  c.check(s.rank() >= minRank, std::string(what) + " must have rank >= " + std::to_string(minRank) + ", got " +
                                   std::to_string(s.rank()));
  return s[1];
}

void inferBatchNorm(InferContext& c) {
  requireFloat(c, 0, "X");
  Dim C = channelDim(c, "X");
  const char* names[] = {"X", "scale", "B", "input_mean", "input_var"};
  for (size_t i = 1; i < 5; ++i) {
    requireFloat(c, i, names[i]);
    checkVector(c, i, C, names[i]);
  }
  c.check(c.inputDtype(1) == c.inputDtype(2), "scale and B must have the same type");
  c.check(c.inputDtype(3) == c.inputDtype(4), "input_mean and input_var must have the same type");
  inferSameAsInput(c);
  Dim len = C;
  if (len.isUnknown() && c.inputShape(3).rankKnown() && c.inputShape(3).rank() == 1) len = c.inputShape(3)[0];
  for (size_t i = 1; i < c.numOutputs(); ++i) c.setOutput(i, c.inputDtype(3), Shape(std::vector<Dim>{len}));
}

void inferLayerNorm(InferContext& c) {
  requireFloat(c, 0, "X");
  requireFloat(c, 1, "Scale");
  if (c.hasInput(2)) requireFloat(c, 2, "B");
  int64_t stash = c.attrs().getInt("stash_type", 1);
  c.check(stash >= 0 && stash <= kMaxDataType && isFloatCompute(DataType(stash)),
          "stash_type must be a float type (1, 10, 11 or 16), got " + std::to_string(stash));
  const Shape& s = c.inputShape(0);
  inferSameAsInput(c);
  if (!s.rankKnown()) {
    for (size_t i = 1; i < c.numOutputs(); ++i) c.setOutput(i, DataType(stash), Shape::unknownRank());
    return;
  }
  const int64_t rank = int64_t(s.rank());
  c.check(rank >= 1, "X must have rank >= 1");
  int64_t axis = normalizeAxis(c.attrs().getInt("axis", -1), rank, c);
  for (size_t i = 1; i <= 2 && c.hasInput(i); ++i) {
    const Shape& ps = c.inputShape(i);
    if (!ps.rankKnown()) continue;
    c.check(int64_t(ps.rank()) <= rank, std::string(i == 1 ? "Scale" : "B") + " has a higher rank than X");
    for (size_t k = 0; k < ps.rank(); ++k) {
      const Dim& pd = ps[k];
      const Dim& xd = s[size_t(rank) - ps.rank() + k];
      if (pd.isStatic() && pd.value() != 1) checkDim(c, xd, pd, "X dim " + std::to_string(rank - ps.rank() + k));
    }
  }
  std::vector<Dim> stat;
  for (int64_t i = 0; i < rank; ++i) stat.push_back(i < axis ? s[size_t(i)] : Dim(1));
  for (size_t i = 1; i < c.numOutputs(); ++i) c.setOutput(i, DataType(stash), Shape(stat));
}

void inferInstanceNorm(InferContext& c) {
  requireFloat(c, 0, "input");
  requireFloat(c, 1, "scale");
  requireFloat(c, 2, "B");
  Dim C = channelDim(c, "input");
  checkVector(c, 1, C, "scale");
  checkVector(c, 2, C, "B");
  inferSameAsInput(c);
}

void inferGroupNorm(InferContext& c) {
  requireFloat(c, 0, "X");
  requireFloat(c, 1, "scale");
  requireFloat(c, 2, "bias");
  int64_t g = c.attrs().requireInt("num_groups");
  c.check(g >= 1, "num_groups must be >= 1, got " + std::to_string(g));
  Dim C = channelDim(c, "X");
  if (C.isStatic())
    c.check(C.value() % g == 0, "channels (" + std::to_string(C.value()) + ") must be divisible by num_groups (" +
                                    std::to_string(g) + ")");
  checkVector(c, 1, C, "scale");
  checkVector(c, 2, C, "bias");
  inferSameAsInput(c);
}

void inferLrn(InferContext& c) {
  requireFloat(c, 0, "X");
  channelDim(c, "X", 2);
  int64_t size = c.attrs().requireInt("size");
  c.check(size >= 1, "size must be >= 1, got " + std::to_string(size));
  inferSameAsInput(c);
}

void inferMvn(InferContext& c) {
  requireFloat(c, 0, "X");
  const Shape& s = c.inputShape(0);
  if (s.rankKnown()) normalizeAxes(c.attrs().getInts("axes", {0, 2, 3}), int64_t(s.rank()), c);
  inferSameAsInput(c);
}

void inferLpNorm(InferContext& c) {
  requireFloat(c, 0, "input");
  int64_t p = c.attrs().getInt("p", 2);
  c.check(p == 1 || p == 2, "p must be 1 or 2, got " + std::to_string(p));
  const Shape& s = c.inputShape(0);
  if (s.rankKnown()) {
    c.check(s.rank() >= 1, "input must have rank >= 1");
    normalizeAxis(c.attrs().getInt("axis", -1), int64_t(s.rank()), c);
  }
  inferSameAsInput(c);
}

void inferEinsum(InferContext& c) {
  DataType dt = c.inputDtype(0);
  c.check(isNumeric(dt), std::string("inputs must be numeric, got ") + dtypeName(dt));
  for (size_t i = 1; i < c.numInputs(); ++i)
    c.check(c.inputDtype(i) == dt, "all inputs must have the same type");
  einsum::Equation eq = einsum::parse(c.attrs().getString("equation", ""), c.node().label());
  c.check(eq.inputs.size() == c.numInputs(), "the equation has " + std::to_string(eq.inputs.size()) +
                                                 " operands but the node has " + std::to_string(c.numInputs()) +
                                                 " inputs");
  std::vector<int64_t> ranks;
  for (size_t i = 0; i < c.numInputs(); ++i) {
    const Shape& s = c.inputShape(i);
    if (!s.rankKnown()) {
      // Without the ellipsis rank the output rank is known only when nothing uses "...".
      if (!eq.output.hasEllipsis()) c.setOutput(0, dt, unknownDims(int64_t(eq.output.labels.size())));
      else c.setOutput(0, dt, Shape::unknownRank());
      return;
    }
    ranks.push_back(int64_t(s.rank()));
  }
  einsum::expandEllipsis(eq, ranks, c.node().label());
  // Each label's extent: equal across uses, except a 1 that broadcasts.
  std::map<int, Dim> ext;
  for (size_t i = 0; i < eq.inputs.size(); ++i) {
    const Shape& s = c.inputShape(i);
    for (size_t k = 0; k < eq.inputs[i].labels.size(); ++k) {
      int l = eq.inputs[i].labels[k];
      const Dim& d = s[k];
      auto it = ext.find(l);
      if (it == ext.end()) {
        ext[l] = d;
        continue;
      }
      Dim& cur = it->second;
      if (d.isStatic() && d.value() == 1) continue;
      if (cur.isStatic() && cur.value() == 1) {
        cur = d;
        continue;
      }
      if (cur.isStatic() && d.isStatic()) {
        if (cur.value() != d.value())
          c.fail("einsum label extents disagree: " + std::to_string(cur.value()) + " vs " + std::to_string(d.value()) +
                 " (operand " + std::to_string(i) + ", dim " + std::to_string(k) + ")");
      } else if (!cur.isStatic() && d.isStatic()) {
        cur = d;
      } else if (cur != d && !d.isStatic()) {
        // Two different symbols: keep the first (they must be equal at run time).
      }
    }
  }
  std::vector<Dim> out;
  for (int l : eq.output.labels) out.push_back(ext.count(l) ? ext[l] : Dim(1));
  c.setOutput(0, dt, Shape(out));
}

void inferDet(InferContext& c) {
  requireFloat(c, 0, "X");
  const Shape& s = c.inputShape(0);
  if (!s.rankKnown()) {
    c.setOutput(0, c.inputDtype(0), Shape::unknownRank());
    return;
  }
  c.check(s.rank() >= 2, "X must have rank >= 2 ([*, M, M])");
  const Dim& m = s[s.rank() - 2];
  const Dim& n = s[s.rank() - 1];
  if (m.isStatic() && n.isStatic())
    c.check(m.value() == n.value(), "the last two dims must be equal (square matrices), got " + m.str() + "x" + n.str());
  std::vector<Dim> out(s.dims().begin(), s.dims().end() - 2);
  c.setOutput(0, c.inputDtype(0), Shape(out));
}

// SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss share their inputs and output 0.
void inferLoss(InferContext& c, bool sce) {
  requireFloat(c, 0, sce ? "scores" : "input");
  requireIndex(c, 1, sce ? "labels" : "target");
  if (c.hasInput(2)) {
    requireFloat(c, 2, "weights");
    c.check(c.inputDtype(2) == c.inputDtype(0), "weights must have the type of the scores");
  }
  std::string red = c.attrs().getString("reduction", "mean");
  c.check(red == "none" || red == "sum" || red == "mean",
          "reduction must be 'none', 'sum' or 'mean', got '" + red + "'");
  const Shape& x = c.inputShape(0);
  const Shape& t = c.inputShape(1);
  DataType dt = c.inputDtype(0);
  if (x.rankKnown()) c.check(x.rank() >= 2, "the scores must be [N, C, d1, ...] (rank >= 2)");
  if (x.rankKnown() && t.rankKnown()) {
    c.check(t.rank() + 1 == x.rank(), "the target must be [N, d1, ...] (rank " + std::to_string(x.rank() - 1) +
                                          "), got rank " + std::to_string(t.rank()));
    checkDim(c, t[0], x[0], "target dim 0");
    for (size_t i = 1; i < t.rank(); ++i) checkDim(c, t[i], x[i + 1], "target dim " + std::to_string(i));
  }
  if (x.rankKnown()) checkVector(c, 2, x[1], "weights");
  if (red != "none") {
    c.setOutput(0, dt, Shape());
  } else if (t.rankKnown()) {
    std::vector<Dim> d = t.dims();
    // Prefer static extents from either side.
    if (x.rankKnown())
      for (size_t i = 0; i < d.size(); ++i) {
        const Dim& xd = x[i == 0 ? 0 : i + 1];
        if (!d[i].isStatic() && xd.isStatic()) d[i] = xd;
      }
    c.setOutput(0, dt, Shape(d));
  } else if (x.rankKnown()) {
    std::vector<Dim> d{x[0]};
    for (size_t i = 2; i < x.rank(); ++i) d.push_back(x[i]);
    c.setOutput(0, dt, Shape(d));
  } else {
    c.setOutput(0, dt, Shape::unknownRank());
  }
  if (sce && c.numOutputs() > 1) c.setOutput(1, c.inputType(0));
}

void reduceOp(OpRegistry& r, const char* name, bool allowBool, const char* summary) {
  r.add({.name = name, .minInputs = 1, .maxInputs = 2, .traits = kTraitReduction,
         .infer = [allowBool](InferContext& c) { inferReduce(c, allowBool); }, .summary = summary});
}

}  // namespace

void registerReduceOps(OpRegistry& r) {
  reduceOp(r, "ReduceSum", false, "sum over axes (input 1; none: all unless noop_with_empty_axes)");
  reduceOp(r, "ReduceMean", false, "mean over axes");
  reduceOp(r, "ReduceMax", true, "max over axes (empty: lowest value)");
  reduceOp(r, "ReduceMin", true, "min over axes (empty: highest value)");
  reduceOp(r, "ReduceProd", false, "product over axes (empty: 1)");
  reduceOp(r, "ReduceL1", false, "sum of |x| over axes");
  reduceOp(r, "ReduceL2", false, "sqrt of the sum of x^2 over axes");
  reduceOp(r, "ReduceLogSum", false, "log of the sum over axes");
  reduceOp(r, "ReduceLogSumExp", false, "log of the sum of exp(x) over axes");
  reduceOp(r, "ReduceSumSquare", false, "sum of x^2 over axes");
  r.add({.name = "ArgMax", .minInputs = 1, .maxInputs = 1, .traits = kTraitReduction, .infer = inferArgReduce,
         .summary = "index of the max along axis (ties: first, or last with select_last_index)"});
  r.add({.name = "ArgMin", .minInputs = 1, .maxInputs = 1, .traits = kTraitReduction, .infer = inferArgReduce,
         .summary = "index of the min along axis"});
  r.add({.name = "Softmax", .minInputs = 1, .maxInputs = 1, .infer = inferSoftmaxLike,
         .summary = "exp(x) / sum(exp(x)) along axis (default -1)"});
  r.add({.name = "LogSoftmax", .minInputs = 1, .maxInputs = 1, .infer = inferSoftmaxLike,
         .summary = "log(softmax(x)) along axis (default -1)"});
  r.add({.name = "Hardmax", .minInputs = 1, .maxInputs = 1, .infer = inferSoftmaxLike,
         .summary = "1 at the first max along axis, else 0"});
  r.add({.name = "CumSum", .minInputs = 2, .maxInputs = 2, .infer = inferCumSum,
         .summary = "cumulative sum along axis (input 1), exclusive/reverse"});
  r.add({.name = "TopK", .minInputs = 2, .maxInputs = 2, .minOutputs = 2, .maxOutputs = 2, .infer = inferTopK,
         .summary = "K largest/smallest along axis with their indices (ties: lower index first)"});
  r.add({.name = "BatchNormalization", .minInputs = 5, .maxInputs = 5, .minOutputs = 1, .maxOutputs = 3,
         .traits = kTraitNormalization, .infer = inferBatchNorm,
         .summary = "per-channel normalization (training_mode: batch stats, running mean/var outputs)"});
  r.add({.name = "LayerNormalization", .minInputs = 2, .maxInputs = 3, .minOutputs = 1, .maxOutputs = 3,
         .traits = kTraitNormalization, .infer = inferLayerNorm,
         .summary = "normalizes over dims [axis, rank); optional Mean and InvStdDev outputs"});
  r.add({.name = "InstanceNormalization", .minInputs = 3, .maxInputs = 3, .traits = kTraitNormalization,
         .infer = inferInstanceNorm, .summary = "per (n, c) normalization over spatial dims"});
  r.add({.name = "GroupNormalization", .minInputs = 3, .maxInputs = 3, .traits = kTraitNormalization,
         .infer = inferGroupNorm, .summary = "per (n, group) normalization; scale/bias per channel (opset 21)"});
  r.add({.name = "LRN", .minInputs = 1, .maxInputs = 1, .traits = kTraitNormalization, .infer = inferLrn,
         .summary = "local response normalization across channels"});
  r.add({.name = "MeanVarianceNormalization", .minInputs = 1, .maxInputs = 1, .traits = kTraitNormalization,
         .infer = inferMvn, .summary = "(x - mean) / (std + 1e-9) over axes (default [0, 2, 3])"});
  r.add({.name = "LpNormalization", .minInputs = 1, .maxInputs = 1, .traits = kTraitNormalization,
         .infer = inferLpNorm, .summary = "x / ||x||_p along axis (p 1 or 2)"});
  r.add({.name = "Einsum", .minInputs = 1, .maxInputs = -1, .infer = inferEinsum,
         .summary = "Einstein summation (ellipsis, diagonals, implicit output)"});
  r.add({.name = "Det", .minInputs = 1, .maxInputs = 1, .infer = inferDet,
         .summary = "determinant of [*, M, M] matrices"});
  r.add({.name = "SoftmaxCrossEntropyLoss", .minInputs = 2, .maxInputs = 3, .minOutputs = 1, .maxOutputs = 2,
         .infer = [](InferContext& c) { inferLoss(c, true); },
         .summary = "cross entropy of softmax(scores) and labels; optional log_prob output"});
  r.add({.name = "NegativeLogLikelihoodLoss", .minInputs = 2, .maxInputs = 3,
         .infer = [](InferContext& c) { inferLoss(c, false); },
         .summary = "-input[n, target[n, d...], d...] with weights, ignore_index, reduction"});
}

}  // namespace anvil::ir::ops
