// Schemas and shape inference of the control op family: control flow with subgraphs
// (If, Loop, Scan), recurrent layers (RNN, LSTM, GRU), signal processing (DFT, STFT,
// windows, MelWeightMatrix), sampling grids (AffineGrid, GridSample), NonMaxSuppression,
// random generators, TfIdfVectorizer and the string ops.
//
// Subgraph bodies are inferred in place: the inference of If/Loop/Scan sets the body
// inputs' types and runs ir::inferShapes(body). Loop-carried and Scan state values may
// change shape from one iteration to the next, so their body types are widened to a
// fixed point (dims that differ become unknown) before the outputs are typed.
#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>

#include "ir/op_schema.h"
#include "ir/ops/families.h"
#include "ir/ops/infer_util.h"

namespace anvil::ir::ops {

namespace {

std::string str(int64_t v) { return std::to_string(v); }

// Dims of a known 0-D/1-D integer input (data or symbolic shape value). Shape values may
// carry known negative integers as symbols spelled "-1"; those are not extents.
std::optional<std::vector<Dim>> dimsOfInput(const InferContext& ctx, size_t i) {
  if (!ctx.hasInput(i)) return std::nullopt;
  if (const Tensor* t = ctx.inputValue(i)) {
    if (!isInteger(t->dtype()) || t->rank() > 1) return std::nullopt;
    std::vector<Dim> d;
    for (int64_t k = 0; k < t->numel(); ++k) {
      int64_t v = t->getInt(k);
      d.push_back(v >= 0 ? Dim(v) : Dim::unknown());
    }
    return d;
  }
  if (const auto* sv = ctx.inputShapeValue(i)) {
    std::vector<Dim> d = *sv;
    for (Dim& x : d)
      if (x.isSymbolic() && !x.symbolName().empty() && x.symbolName()[0] == '-') x = Dim::unknown();
    return d;
  }
  return std::nullopt;
}

// A known scalar (or one-element) numeric input, else nullopt.
std::optional<double> knownScalar(const InferContext& ctx, size_t i) {
  if (!ctx.hasInput(i)) return std::nullopt;
  const Tensor* t = ctx.inputValue(i);
  if (!t || t->numel() != 1 || t->dtype() == DataType::kString) return std::nullopt;
  return t->getDouble(0);
}

// The least specific type that covers both (dims that differ become unknown).
TensorType mergeTypes(const TensorType& a, const TensorType& b) {
  TensorType t;
  t.dtype = a.dtype != DataType::kUndefined ? a.dtype : b.dtype;
  if (!a.shape.rankKnown() || !b.shape.rankKnown() || a.shape.rank() != b.shape.rank()) {
    t.shape = Shape::unknownRank();
    return t;
  }
  std::vector<Dim> d(a.shape.rank());
  for (size_t i = 0; i < d.size(); ++i) d[i] = a.shape[i] == b.shape[i] ? a.shape[i] : Dim::unknown();
  t.shape = Shape(d);
  return t;
}

// Forgets every inferred type inside `g` (node outputs, nested bodies included), so that a
// re-inference with wider input types cannot keep a stale, narrower type.
void forgetTypes(Graph& g) {
  for (const auto& n : g.nodes()) {
    for (Value* o : n->outputs()) o->setType({});
    for (const auto& [name, a] : n->attrs().all()) {
      if (a.kind() == Attribute::Kind::kGraph) {
        forgetTypes(*std::get<std::shared_ptr<Graph>>(a.value));
      } else if (a.kind() == Attribute::Kind::kGraphs) {
        for (const auto& sg : std::get<std::vector<std::shared_ptr<Graph>>>(a.value)) forgetTypes(*sg);
      }
    }
  }
}

// Sets the body's input types and infers it. Inference is idempotent, so bodies may be
// inferred again by later passes.
void inferBody(const InferContext& ctx, const char* attr, const std::vector<TensorType>& inputs, bool reset) {
  const Graph* body = ctx.attrs().getGraph(attr);
  ctx.check(body != nullptr, std::string("attribute '") + attr + "' (a graph) is required");
  Graph& g = const_cast<Graph&>(*body);
  ctx.check(g.inputs().size() == inputs.size(),
            std::string("body '") + attr + "' has " + str(int64_t(g.inputs().size())) + " inputs, expected " +
                str(int64_t(inputs.size())));
  if (reset) forgetTypes(g);
  for (size_t i = 0; i < inputs.size(); ++i) g.inputs()[i]->setType(inputs[i]);
  inferShapes(g);
  for (const Value* o : g.outputs())
    ctx.check(o->dtype() != DataType::kUndefined,
              std::string("body '") + attr + "' output '" + o->name() + "' has no known type");
}

const Graph& body(const InferContext& ctx, const char* attr) {
  const Graph* g = ctx.attrs().getGraph(attr);
  ctx.check(g != nullptr, std::string("attribute '") + attr + "' (a graph) is required");
  return *g;
}

// ---- control flow ------------------------------------------------------------------------

void inferIf(InferContext& ctx) {
  const TensorType& c = ctx.inputType(0);
  ctx.check(c.dtype == DataType::kBool, "cond must be bool, got " + c.str());
  const Graph& t = body(ctx, "then_branch");
  const Graph& e = body(ctx, "else_branch");
  ctx.check(t.outputs().size() == ctx.numOutputs() && e.outputs().size() == ctx.numOutputs(),
            "then_branch has " + str(int64_t(t.outputs().size())) + " outputs and else_branch " +
                str(int64_t(e.outputs().size())) + ", the node has " + str(int64_t(ctx.numOutputs())));
  std::optional<bool> known;
  if (const Tensor* v = ctx.inputValue(0); v && v->numel() == 1) known = v->getInt(0) != 0;
  if (known) {
    // Only the branch taken matters (the other may not even be valid for these shapes).
    inferBody(ctx, *known ? "then_branch" : "else_branch", {}, false);
    try {
      inferBody(ctx, *known ? "else_branch" : "then_branch", {}, false);  // typed where it can be
    } catch (const Error&) {
    }
    for (size_t i = 0; i < ctx.numOutputs(); ++i) ctx.setOutput(i, (*known ? t : e).outputs()[i]->type());
    return;
  }
  // A branch that fails inference (a Split that only fits the other branch's case, as in
  // function bodies that dispatch on rank) cannot be the one taken at run time without
  // its kernel failing too; its outputs are typed by the other branch.
  std::optional<Error> errThen, errElse;
  try {
    inferBody(ctx, "then_branch", {}, false);
  } catch (const Error& err) {
    errThen = err;
  }
  try {
    inferBody(ctx, "else_branch", {}, false);
  } catch (const Error& err) {
    errElse = err;
  }
  if (errThen && errElse) throw *errThen;
  for (size_t i = 0; i < ctx.numOutputs(); ++i) {
    const TensorType& a = t.outputs()[i]->type();
    const TensorType& b = e.outputs()[i]->type();
    if (errThen || errElse) {
      ctx.setOutput(i, errThen ? b : a);
      continue;
    }
    ctx.check(a.dtype == b.dtype, "output " + str(int64_t(i)) + " is " + a.str() + " in then_branch but " +
                                      b.str() + " in else_branch");
    ctx.setOutput(i, mergeTypes(a, b));
  }
}

// Iterates body inference until the carried types stop widening. `fixed` are the leading
// body inputs that never change (Loop's iteration number and condition); `carried` the
// initial types of the state inputs that the body's outputs [outOffset, outOffset+N) feed
// back; `rest` the per-iteration inputs after them (Scan slices).
std::vector<TensorType> inferCarried(const InferContext& ctx, const char* attr, const std::vector<TensorType>& fixed,
                                     std::vector<TensorType> carried, const std::vector<TensorType>& rest,
                                     size_t outOffset) {
  const Graph& g = body(ctx, attr);
  for (int round = 0;; ++round) {
    std::vector<TensorType> ins = fixed;
    ins.insert(ins.end(), carried.begin(), carried.end());
    ins.insert(ins.end(), rest.begin(), rest.end());
    inferBody(ctx, attr, ins, round > 0);
    ctx.check(g.outputs().size() >= outOffset + carried.size(),
              std::string("body '") + attr + "' has " + str(int64_t(g.outputs().size())) + " outputs, expected at least " +
                  str(int64_t(outOffset + carried.size())));
    bool changed = false;
    for (size_t i = 0; i < carried.size(); ++i) {
      const TensorType& out = g.outputs()[outOffset + i]->type();
      ctx.check(out.dtype == carried[i].dtype, "state " + str(int64_t(i)) + " enters the body as " +
                                                   carried[i].str() + " but leaves it as " + out.str());
      TensorType m = mergeTypes(carried[i], out);
      if (m != carried[i]) {
        carried[i] = round < 3 ? m : TensorType{m.dtype, Shape::unknownRank()};
        changed = true;
      }
    }
    if (!changed) return carried;
    ctx.check(round < 6, "the body's state types do not settle");
  }
}

void inferLoop(InferContext& ctx) {
  if (ctx.hasInput(0)) {
    const TensorType& m = ctx.inputType(0);
    ctx.check(m.dtype == DataType::kI64, "M (trip count) must be i64, got " + m.str());
  }
  if (ctx.hasInput(1)) {
    const TensorType& c = ctx.inputType(1);
    ctx.check(c.dtype == DataType::kBool, "cond must be bool, got " + c.str());
  }
  const size_t n = ctx.numInputs() >= 2 ? ctx.numInputs() - 2 : 0;
  std::vector<TensorType> carried;
  for (size_t i = 0; i < n; ++i) {
    ctx.check(ctx.hasInput(2 + i), "loop-carried input " + str(int64_t(i)) + " is absent");
    carried.push_back(ctx.inputType(2 + i));
  }
  const std::vector<TensorType> fixed = {TensorType{DataType::kI64, Shape()}, TensorType{DataType::kBool, Shape()}};
  carried = inferCarried(ctx, "body", fixed, carried, {}, 1);
  const Graph& g = body(ctx, "body");
  ctx.check(g.outputs().size() >= 1 + n, "body must output the condition and the loop-carried values");
  const TensorType& condOut = g.outputs()[0]->type();
  ctx.check(condOut.dtype == DataType::kBool, "body's first output (the condition) must be bool, got " + condOut.str());
  const size_t k = g.outputs().size() - 1 - n;
  ctx.check(ctx.numOutputs() <= n + k, "has " + str(int64_t(ctx.numOutputs())) + " outputs, the body makes " +
                                           str(int64_t(n)) + " loop-carried values and " + str(int64_t(k)) +
                                           " scan outputs");
  // The trip count is M when the body hands its condition through unchanged (a for loop)
  // and the loop starts with a true (or absent) condition.
  Dim trips = Dim::unknown();
  const Value* condIn = g.inputs()[1];
  const Value* co = g.outputs()[0];
  const bool passThrough = co == condIn || (co->producer() && co->producer()->op() == "Identity" &&
                                            co->producer()->numInputs() == 1 && co->producer()->input(0) == condIn);
  std::optional<bool> startCond = true;
  if (ctx.hasInput(1)) {
    const Tensor* c = ctx.inputValue(1);
    startCond = c && c->numel() == 1 ? std::optional<bool>(c->getInt(0) != 0) : std::nullopt;
  }
  if (startCond && !*startCond) {
    trips = Dim(0);
  } else if (startCond && passThrough && ctx.hasInput(0)) {
    if (auto m = dimsOfInput(ctx, 0); m && m->size() == 1) trips = (*m)[0];
  }
  for (size_t i = 0; i < ctx.numOutputs(); ++i) {
    if (i < n) {
      ctx.setOutput(i, trips == Dim(0) ? TensorType(ctx.inputType(2 + i)) : carried[i]);
      continue;
    }
    const TensorType& s = g.outputs()[1 + i]->type();
    Shape sh = Shape::unknownRank();
    if (s.shape.rankKnown()) {
      std::vector<Dim> d = {trips};
      d.insert(d.end(), s.shape.dims().begin(), s.shape.dims().end());
      sh = Shape(d);
    }
    ctx.setOutput(i, s.dtype, sh);
  }
}

// Scan (opset 9+): N state variables then M scan inputs.
void inferScan(InferContext& ctx) {
  const Attributes& a = ctx.attrs();
  const int64_t m = a.requireInt("num_scan_inputs");
  const int64_t total = int64_t(ctx.numInputs());
  ctx.check(m >= 1 && m <= total, "num_scan_inputs " + str(m) + " must be in [1, " + str(total) + "]");
  const size_t n = size_t(total - m);
  auto inAxes = a.getInts("scan_input_axes", std::vector<int64_t>(size_t(m), 0));
  auto inDirs = a.getInts("scan_input_directions", std::vector<int64_t>(size_t(m), 0));
  ctx.check(int64_t(inAxes.size()) == m && int64_t(inDirs.size()) == m,
            "scan_input_axes and scan_input_directions need num_scan_inputs entries");
  for (int64_t d : inDirs) ctx.check(d == 0 || d == 1, "scan directions must be 0 or 1");
  std::vector<TensorType> states, slices;
  for (size_t i = 0; i < n; ++i) {
    ctx.check(ctx.hasInput(i), "state input " + str(int64_t(i)) + " is absent");
    states.push_back(ctx.inputType(i));
  }
  Dim seqLen = Dim::unknown();
  bool seqSet = false;
  for (size_t j = 0; j < size_t(m); ++j) {
    ctx.check(ctx.hasInput(n + j), "scan input " + str(int64_t(j)) + " is absent");
    const TensorType& t = ctx.inputType(n + j);
    if (!t.shape.rankKnown()) {
      slices.push_back({t.dtype, Shape::unknownRank()});
      continue;
    }
    const int64_t r = int64_t(t.shape.rank());
    ctx.check(r >= 1, "scan input " + str(int64_t(j)) + " must have rank >= 1");
    const int64_t ax = normalizeAxis(inAxes[j], r, ctx);
    std::vector<Dim> d = t.shape.dims();
    const Dim len = d[size_t(ax)];
    if (!seqSet) {
      seqLen = len;
      seqSet = true;
    } else if (len.isStatic() && seqLen.isStatic()) {
      ctx.check(len == seqLen, "scan inputs disagree on the sequence length (" + seqLen.str() + " vs " + len.str() + ")");
    } else if (len != seqLen) {
      if (len.isStatic()) seqLen = len;
      else if (!seqLen.isStatic()) seqLen = Dim::unknown();
    }
    d.erase(d.begin() + ax);
    slices.push_back({t.dtype, Shape(d)});
  }
  states = inferCarried(ctx, "body", {}, states, slices, 0);
  const Graph& g = body(ctx, "body");
  const size_t k = g.outputs().size() - n;
  ctx.check(ctx.numOutputs() <= n + k, "has " + str(int64_t(ctx.numOutputs())) + " outputs, the body makes " +
                                           str(int64_t(n + k)));
  auto outAxes = a.getInts("scan_output_axes", std::vector<int64_t>(k, 0));
  auto outDirs = a.getInts("scan_output_directions", std::vector<int64_t>(k, 0));
  ctx.check(outAxes.size() == k && outDirs.size() == k,
            "scan_output_axes and scan_output_directions need one entry per scan output (" + str(int64_t(k)) + ")");
  for (int64_t d : outDirs) ctx.check(d == 0 || d == 1, "scan directions must be 0 or 1");
  for (size_t i = 0; i < ctx.numOutputs(); ++i) {
    if (i < n) {
      ctx.setOutput(i, states[i]);
      continue;
    }
    const TensorType& s = g.outputs()[i]->type();
    if (!s.shape.rankKnown()) {
      ctx.setOutput(i, s.dtype, Shape::unknownRank());
      continue;
    }
    const int64_t r = int64_t(s.shape.rank()) + 1;
    int64_t ax = outAxes[i - n];
    ctx.check(ax >= -r && ax < r, "scan_output_axes entry " + str(ax) + " is out of range for rank " + str(r));
    if (ax < 0) ax += r;
    std::vector<Dim> d = s.shape.dims();
    d.insert(d.begin() + ax, seqLen);
    ctx.setOutput(i, s.dtype, Shape(d));
  }
}

// ---- recurrent layers ------------------------------------------------------------------

// gates: 1 (RNN), 4 (LSTM), 3 (GRU). Y [seq, dirs, batch, hidden] (layout 1: [batch, seq,
// dirs, hidden]); Y_h and Y_c [dirs, batch, hidden] (layout 1: [batch, dirs, hidden]).
void inferRnn(InferContext& ctx, int64_t gates) {
  const Attributes& a = ctx.attrs();
  const TensorType& x = ctx.inputType(0);
  ctx.check(isFloat(x.dtype), "X must be a float tensor, got " + x.str());
  for (size_t i : {size_t(1), size_t(2)})
    ctx.check(ctx.inputDtype(i) == x.dtype, "W and R must have X's type " + std::string(dtypeName(x.dtype)));
  const std::string dir = a.getString("direction", "forward");
  ctx.check(dir == "forward" || dir == "reverse" || dir == "bidirectional",
            "direction must be forward, reverse or bidirectional, got '" + dir + "'");
  const int64_t dirs = dir == "bidirectional" ? 2 : 1;
  const int64_t layout = a.getInt("layout", 0);
  ctx.check(layout == 0 || layout == 1, "layout must be 0 or 1");
  if (x.shape.rankKnown()) ctx.check(x.shape.rank() == 3, "X must have rank 3, got " + x.str());
  const Shape& w = ctx.inputShape(1);
  if (w.rankKnown()) {
    ctx.check(w.rank() == 3, "W must have rank 3, got " + w.str());
    if (w[0].isStatic()) ctx.check(w[0].value() == dirs, "W has " + w[0].str() + " directions, expected " + str(dirs));
  }
  Dim hidden = Dim::unknown();
  if (a.has("hidden_size")) {
    int64_t h = a.getInt("hidden_size", 0);
    ctx.check(h > 0, "hidden_size must be positive");
    hidden = Dim(h);
  } else if (ctx.inputShape(2).rankKnown() && ctx.inputShape(2).rank() == 3) {
    hidden = ctx.inputShape(2)[2];
  }
  if (hidden.isStatic() && w.rankKnown() && w.rank() == 3 && w[1].isStatic())
    ctx.check(w[1].value() == gates * hidden.value(),
              "W has " + w[1].str() + " rows, expected " + str(gates) + " x hidden_size = " + str(gates * hidden.value()));
  Dim seq = Dim::unknown(), batch = Dim::unknown();
  if (x.shape.rankKnown()) {
    seq = x.shape[layout == 0 ? 0 : 1];
    batch = x.shape[layout == 0 ? 1 : 0];
  }
  if (ctx.numOutputs() > 0) {
    ctx.setOutput(0, x.dtype, layout == 0 ? Shape({seq, Dim(dirs), batch, hidden}) : Shape({batch, seq, Dim(dirs), hidden}));
  }
  for (size_t i = 1; i < ctx.numOutputs(); ++i)
    ctx.setOutput(i, x.dtype, layout == 0 ? Shape({Dim(dirs), batch, hidden}) : Shape({batch, Dim(dirs), hidden}));
}

// ---- signal processing ------------------------------------------------------------------

void inferDft(InferContext& ctx) {
  const TensorType& x = ctx.inputType(0);
  ctx.check(isFloat(x.dtype), "input must be a float tensor, got " + x.str());
  const bool onesided = ctx.attrs().getInt("onesided", 0) != 0;
  const bool inverse = ctx.attrs().getInt("inverse", 0) != 0;
  ctx.check(!(onesided && inverse), "onesided and inverse cannot both be set");
  if (!x.shape.rankKnown()) {
    ctx.setOutput(0, x.dtype, Shape::unknownRank());
    return;
  }
  const int64_t r = int64_t(x.shape.rank());
  ctx.check(r >= 2, "input must have rank >= 2 (signal dims then a last dim of 1 or 2)");
  const Dim& last = x.shape[size_t(r - 1)];
  if (last.isStatic()) {
    ctx.check(last.value() == 1 || last.value() == 2, "the last dim must be 1 (real) or 2 (complex)");
    ctx.check(!(onesided && last.value() == 2), "onesided output needs a real input (last dim 1)");
  }
  std::vector<Dim> d = x.shape.dims();
  d.back() = Dim(2);
  std::optional<int64_t> axis = -2;
  if (ctx.hasInput(2)) {
    auto v = knownScalar(ctx, 2);
    axis = v ? std::optional<int64_t>(int64_t(*v)) : std::nullopt;
  }
  if (!axis) {
    for (size_t i = 0; i + 1 < d.size(); ++i) d[i] = Dim::unknown();
    ctx.setOutput(0, x.dtype, Shape(d));
    return;
  }
  int64_t ax = *axis;
  ctx.check((ax >= -r && ax <= -2) || (ax >= 0 && ax <= r - 2),
            "axis " + str(ax) + " must be in [-" + str(r) + ", -2] or [0, " + str(r - 2) + "]");
  if (ax < 0) ax += r;
  Dim len = d[size_t(ax)];
  if (ctx.hasInput(1)) {
    auto v = knownScalar(ctx, 1);
    if (v) {
      ctx.check(*v >= 1, "dft_length must be positive");
      len = Dim(int64_t(*v));
    } else {
      len = Dim::unknown();
    }
  }
  if (onesided) len = len.isStatic() ? Dim(len.value() / 2 + 1) : Dim::unknown();
  d[size_t(ax)] = len;
  ctx.setOutput(0, x.dtype, Shape(d));
}

void inferStft(InferContext& ctx) {
  const TensorType& x = ctx.inputType(0);
  ctx.check(isFloat(x.dtype), "signal must be a float tensor, got " + x.str());
  if (x.shape.rankKnown()) ctx.check(x.shape.rank() == 3, "signal must be [batch, length, 1 or 2], got " + x.str());
  const bool onesided = ctx.attrs().getInt("onesided", 1) != 0;
  Dim batch, length, frameLen;
  if (x.shape.rankKnown()) {
    batch = x.shape[0];
    length = x.shape[1];
    if (x.shape[2].isStatic()) {
      ctx.check(x.shape[2].value() == 1 || x.shape[2].value() == 2, "signal's last dim must be 1 or 2");
      ctx.check(!(onesided && x.shape[2].value() == 2), "onesided output needs a real signal");
    }
  }
  if (ctx.hasInput(2)) {
    const Shape& w = ctx.inputShape(2);
    if (w.rankKnown()) {
      ctx.check(w.rank() == 1, "window must be 1-D");
      frameLen = w[0];
    }
  }
  if (ctx.hasInput(3)) {
    if (auto v = knownScalar(ctx, 3)) {
      Dim fl = Dim(int64_t(*v));
      if (frameLen.isStatic()) ctx.check(frameLen == fl, "frame_length disagrees with the window length");
      frameLen = fl;
    }
  } else if (!ctx.hasInput(2)) {
    frameLen = length;
  }
  Dim frames;
  auto step = knownScalar(ctx, 1);
  if (step) ctx.check(*step >= 1, "frame_step must be positive");
  if (step && length.isStatic() && frameLen.isStatic()) {
    ctx.check(frameLen.value() >= 1 && frameLen.value() <= length.value(),
              "frame_length " + frameLen.str() + " must be in [1, signal length " + length.str() + "]");
    frames = Dim((length.value() - frameLen.value()) / int64_t(*step) + 1);
  }
  Dim bins = frameLen.isStatic() ? Dim(onesided ? frameLen.value() / 2 + 1 : frameLen.value()) : Dim::unknown();
  ctx.setOutput(0, x.dtype, Shape({batch, frames, bins, Dim(2)}));
}

DataType outputDatatype(const InferContext& ctx, const char* attr, int64_t def) {
  const int64_t t = ctx.attrs().getInt(attr, def);
  ctx.check(t > 0 && t <= kMaxDataType && isValidOnnxType(int32_t(t)), std::string(attr) + " " + str(t) + " is not a data type");
  return DataType(int32_t(t));
}

void inferWindow(InferContext& ctx) {
  ctx.check(isInteger(ctx.inputDtype(0)), "size must be an integer scalar");
  const DataType dt = outputDatatype(ctx, "output_datatype", 1);
  ctx.check(dt != DataType::kString && dt != DataType::kBool, "output_datatype must be numeric");
  Dim n;
  if (auto v = knownScalar(ctx, 0)) {
    ctx.check(*v >= 0, "size must be >= 0");
    n = Dim(int64_t(*v));
  }
  ctx.setOutput(0, dt, Shape({n}));
}

void inferMel(InferContext& ctx) {
  const DataType dt = outputDatatype(ctx, "output_datatype", 1);
  Dim bins, mels;
  if (auto v = knownScalar(ctx, 1)) bins = Dim(int64_t(*v) / 2 + 1);
  if (auto v = knownScalar(ctx, 0)) {
    ctx.check(*v >= 1, "num_mel_bins must be positive");
    mels = Dim(int64_t(*v));
  }
  ctx.setOutput(0, dt, Shape({bins, mels}));
}

// ---- sampling grids ---------------------------------------------------------------------

void inferAffineGrid(InferContext& ctx) {
  const TensorType& theta = ctx.inputType(0);
  ctx.check(isFloat(theta.dtype), "theta must be a float tensor");
  int64_t spatial = -1;
  Dim n;
  if (theta.shape.rankKnown()) {
    ctx.check(theta.shape.rank() == 3, "theta must be [N, 2, 3] or [N, 3, 4], got " + theta.str());
    n = theta.shape[0];
    if (theta.shape[1].isStatic()) spatial = theta.shape[1].value();
    ctx.check(spatial < 0 || spatial == 2 || spatial == 3, "theta must be [N, 2, 3] or [N, 3, 4], got " + theta.str());
  }
  const Shape& size = ctx.inputShape(1);
  if (size.rankKnown() && size.rank() == 1 && size[0].isStatic()) {
    const int64_t s = size[0].value() - 2;
    ctx.check(s == 2 || s == 3, "size must have 4 or 5 elements");
    ctx.check(spatial < 0 || spatial == s, "theta and size disagree on 2-D vs 3-D");
    spatial = s;
  }
  if (spatial < 0) {
    ctx.setOutput(0, theta.dtype, Shape::unknownRank());
    return;
  }
  std::vector<Dim> d = {n};
  auto sv = dimsOfInput(ctx, 1);
  for (int64_t i = 0; i < spatial; ++i) d.push_back(sv && int64_t(sv->size()) == spatial + 2 ? (*sv)[size_t(2 + i)] : Dim());
  if (sv && int64_t(sv->size()) == spatial + 2 && !n.isStatic() && (*sv)[0].isStatic()) d[0] = (*sv)[0];
  d.push_back(Dim(spatial));
  ctx.setOutput(0, theta.dtype, Shape(d));
}

void inferGridSample(InferContext& ctx) {
  const TensorType& x = ctx.inputType(0);
  const TensorType& grid = ctx.inputType(1);
  ctx.check(isFloat(grid.dtype), "grid must be a float tensor");
  const std::string mode = ctx.attrs().getString("mode", "linear");
  ctx.check(mode == "linear" || mode == "nearest" || mode == "cubic", "mode must be linear, nearest or cubic");
  const std::string pad = ctx.attrs().getString("padding_mode", "zeros");
  ctx.check(pad == "zeros" || pad == "border" || pad == "reflection", "padding_mode must be zeros, border or reflection");
  if (!x.shape.rankKnown() || !grid.shape.rankKnown()) {
    ctx.setOutput(0, x.dtype, x.shape.rankKnown() ? unknownDims(int64_t(x.shape.rank())) : Shape::unknownRank());
    return;
  }
  const size_t r = x.shape.rank();
  ctx.check(r >= 3, "X must be [N, C, spatial...], got " + x.str());
  ctx.check(grid.shape.rank() == r, "grid must have X's rank " + str(int64_t(r)) + ", got " + grid.str());
  if (grid.shape[r - 1].isStatic())
    ctx.check(grid.shape[r - 1].value() == int64_t(r - 2), "grid's last dim must be " + str(int64_t(r - 2)));
  ctx.check(!(mode == "cubic" && r != 4), "cubic mode supports 4-D input only");
  std::vector<Dim> d = {x.shape[0], x.shape[1]};
  if (!d[0].isStatic() && grid.shape[0].isStatic()) d[0] = grid.shape[0];
  for (size_t i = 1; i + 1 < r; ++i) d.push_back(grid.shape[i]);
  ctx.setOutput(0, x.dtype, Shape(d));
}

// ---- NonMaxSuppression ------------------------------------------------------------------

void inferNms(InferContext& ctx) {
  const Shape& boxes = ctx.inputShape(0);
  const Shape& scores = ctx.inputShape(1);
  ctx.check(ctx.inputDtype(0) == DataType::kF32 && ctx.inputDtype(1) == DataType::kF32,
            "boxes and scores must be f32");
  if (boxes.rankKnown()) {
    ctx.check(boxes.rank() == 3, "boxes must be [batch, boxes, 4], got " + boxes.str());
    if (boxes[2].isStatic()) ctx.check(boxes[2].value() == 4, "boxes' last dim must be 4");
  }
  if (scores.rankKnown()) ctx.check(scores.rank() == 3, "scores must be [batch, classes, boxes], got " + scores.str());
  const int64_t cpb = ctx.attrs().getInt("center_point_box", 0);
  ctx.check(cpb == 0 || cpb == 1, "center_point_box must be 0 or 1");
  ctx.setOutput(0, DataType::kI64, Shape({Dim(), Dim(3)}));
}

// ---- random -----------------------------------------------------------------------------

void inferRandom(InferContext& ctx) {
  const DataType dt = outputDatatype(ctx, "dtype", 1);
  ctx.check(isFloat(dt), "dtype must be a float type");
  ctx.check(ctx.attrs().has("shape"), "attribute 'shape' is required");
  auto s = ctx.attrs().getInts("shape");
  for (int64_t v : s) ctx.check(v >= 0, "shape must not have negative dims");
  ctx.setOutput(0, dt, Shape::fromExtents(s));
}

void inferRandomLike(InferContext& ctx) {
  const TensorType& x = ctx.inputType(0);
  DataType dt = ctx.attrs().has("dtype") ? outputDatatype(ctx, "dtype", 1) : x.dtype;
  ctx.check(isFloat(dt), "the output type must be a float type, got " + std::string(dtypeName(dt)));
  ctx.setOutput(0, dt, x.shape);
}

void inferMultinomial(InferContext& ctx) {
  const TensorType& x = ctx.inputType(0);
  ctx.check(isFloat(x.dtype), "input must be a float tensor");
  const DataType dt = outputDatatype(ctx, "dtype", 6);
  ctx.check(dt == DataType::kI32 || dt == DataType::kI64, "dtype must be i32 or i64");
  const int64_t n = ctx.attrs().getInt("sample_size", 1);
  ctx.check(n >= 1, "sample_size must be positive");
  Dim batch;
  if (x.shape.rankKnown()) {
    ctx.check(x.shape.rank() == 2, "input must be [batch, classes], got " + x.str());
    batch = x.shape[0];
  }
  ctx.setOutput(0, dt, Shape({batch, Dim(n)}));
}

void inferBernoulli(InferContext& ctx) {
  const TensorType& x = ctx.inputType(0);
  ctx.check(isFloat(x.dtype), "input must be a float tensor");
  DataType dt = ctx.attrs().has("dtype") ? outputDatatype(ctx, "dtype", 1) : x.dtype;
  ctx.check(dt != DataType::kString, "dtype must be numeric or bool");
  ctx.setOutput(0, dt, x.shape);
}

// ---- text -------------------------------------------------------------------------------

void inferTfIdf(InferContext& ctx) {
  const TensorType& x = ctx.inputType(0);
  ctx.check(x.dtype == DataType::kString || x.dtype == DataType::kI32 || x.dtype == DataType::kI64,
            "X must be string, i32 or i64");
  const Attributes& a = ctx.attrs();
  const std::string mode = a.getString("mode", "");
  ctx.check(mode == "TF" || mode == "IDF" || mode == "TFIDF", "mode must be TF, IDF or TFIDF, got '" + mode + "'");
  auto idx = a.getInts("ngram_indexes");
  ctx.check(!idx.empty(), "ngram_indexes is required");
  int64_t size = 0;
  for (int64_t v : idx) {
    ctx.check(v >= 0, "ngram_indexes must be non-negative");
    size = std::max(size, v + 1);
  }
  if (!x.shape.rankKnown()) {
    ctx.setOutput(0, DataType::kF32, Shape::unknownRank());
    return;
  }
  ctx.check(x.shape.rank() <= 2, "X must be [C] or [B, C], got " + x.str());
  ctx.setOutput(0, DataType::kF32, x.shape.rank() == 2 ? Shape({x.shape[0], Dim(size)}) : Shape({Dim(size)}));
}

void inferStringNormalizer(InferContext& ctx) {
  const TensorType& x = ctx.inputType(0);
  ctx.check(x.dtype == DataType::kString, "X must be a string tensor");
  const std::string act = ctx.attrs().getString("case_change_action", "NONE");
  ctx.check(act == "NONE" || act == "LOWER" || act == "UPPER", "case_change_action must be NONE, LOWER or UPPER");
  if (!x.shape.rankKnown()) {
    ctx.setOutput(0, DataType::kString, Shape::unknownRank());
    return;
  }
  ctx.check(x.shape.rank() == 1 || x.shape.rank() == 2, "X must be [C] or [1, C], got " + x.str());
  if (x.shape.rank() == 2 && x.shape[0].isStatic()) ctx.check(x.shape[0].value() == 1, "X must be [C] or [1, C]");
  ctx.setOutput(0, DataType::kString, x.shape.rank() == 1 ? Shape({Dim()}) : Shape({Dim(1), Dim()}));
}

void inferStringSplit(InferContext& ctx) {
  const TensorType& x = ctx.inputType(0);
  ctx.check(x.dtype == DataType::kString, "X must be a string tensor");
  ctx.check(ctx.attrs().getInt("maxsplit", 1) >= 0 || !ctx.attrs().has("maxsplit"), "maxsplit must be >= 0");
  Shape sub = Shape::unknownRank();
  if (x.shape.rankKnown()) {
    std::vector<Dim> d = x.shape.dims();
    d.emplace_back();
    sub = Shape(d);
  }
  ctx.setOutput(0, DataType::kString, sub);
  if (ctx.numOutputs() > 1) ctx.setOutput(1, DataType::kI64, x.shape);
}

}  // namespace

void registerControlOps(OpRegistry& r) {
  r.add({.name = "If", .minInputs = 1, .maxInputs = 1, .minOutputs = 1, .maxOutputs = -1,
         .traits = kTraitControlFlow, .infer = inferIf, .summary = "runs then_branch or else_branch"});
  r.add({.name = "Loop", .minInputs = 2, .maxInputs = -1, .minOutputs = 1, .maxOutputs = -1,
         .traits = kTraitControlFlow, .infer = inferLoop,
         .summary = "runs body while i < M and cond; loop-carried values and stacked scan outputs"});
  r.add({.name = "Scan", .minInputs = 1, .maxInputs = -1, .minOutputs = 1, .maxOutputs = -1,
         .traits = kTraitControlFlow, .infer = inferScan,
         .summary = "runs body over slices of the scan inputs with state variables"});

  r.add({.name = "RNN", .minInputs = 3, .maxInputs = 6, .minOutputs = 0, .maxOutputs = 2,
         .infer = [](InferContext& c) { inferRnn(c, 1); }, .summary = "simple recurrent layer"});
  r.add({.name = "LSTM", .minInputs = 3, .maxInputs = 8, .minOutputs = 0, .maxOutputs = 3,
         .infer = [](InferContext& c) { inferRnn(c, 4); }, .summary = "long short-term memory layer"});
  r.add({.name = "GRU", .minInputs = 3, .maxInputs = 6, .minOutputs = 0, .maxOutputs = 2,
         .infer = [](InferContext& c) { inferRnn(c, 3); }, .summary = "gated recurrent unit layer"});

  r.add({.name = "DFT", .minInputs = 1, .maxInputs = 3, .infer = inferDft,
         .summary = "discrete Fourier transform along one axis"});
  r.add({.name = "STFT", .minInputs = 2, .maxInputs = 4, .infer = inferStft, .summary = "short-time Fourier transform"});
  for (const char* w : {"HannWindow", "HammingWindow", "BlackmanWindow"})
    r.add({.name = w, .minInputs = 1, .maxInputs = 1, .infer = inferWindow, .summary = "window function of a size"});
  r.add({.name = "MelWeightMatrix", .minInputs = 5, .maxInputs = 5, .infer = inferMel,
         .summary = "mel filter bank weights [dft_length/2+1, num_mel_bins]"});

  r.add({.name = "AffineGrid", .minInputs = 2, .maxInputs = 2, .infer = inferAffineGrid,
         .summary = "sampling grid from affine matrices"});
  r.add({.name = "GridSample", .minInputs = 2, .maxInputs = 2, .infer = inferGridSample,
         .summary = "samples X at grid locations"});
  r.add({.name = "NonMaxSuppression", .minInputs = 2, .maxInputs = 5, .infer = inferNms,
         .summary = "greedy box selection by score and IoU"});

  r.add({.name = "RandomNormal", .minInputs = 0, .maxInputs = 0, .traits = kTraitRandom, .infer = inferRandom,
         .summary = "normal samples of a given shape"});
  r.add({.name = "RandomUniform", .minInputs = 0, .maxInputs = 0, .traits = kTraitRandom, .infer = inferRandom,
         .summary = "uniform samples of a given shape"});
  r.add({.name = "RandomNormalLike", .minInputs = 1, .maxInputs = 1, .traits = kTraitRandom,
         .infer = inferRandomLike, .summary = "normal samples shaped like the input"});
  r.add({.name = "RandomUniformLike", .minInputs = 1, .maxInputs = 1, .traits = kTraitRandom,
         .infer = inferRandomLike, .summary = "uniform samples shaped like the input"});
  r.add({.name = "Multinomial", .minInputs = 1, .maxInputs = 1, .traits = kTraitRandom, .infer = inferMultinomial,
         .summary = "class samples from unnormalized log-probabilities"});
  r.add({.name = "Bernoulli", .minInputs = 1, .maxInputs = 1, .traits = kTraitRandom, .infer = inferBernoulli,
         .summary = "0/1 samples with the input's probabilities"});

  r.add({.name = "TfIdfVectorizer", .minInputs = 1, .maxInputs = 1, .infer = inferTfIdf,
         .summary = "n-gram counts (TF, IDF, TF-IDF) over a pool"});
  r.add({.name = "StringConcat", .minInputs = 2, .maxInputs = 2, .traits = kTraitElementwise | kTraitBroadcast,
         .infer = [](InferContext& c) {
           c.check(c.inputDtype(0) == DataType::kString && c.inputDtype(1) == DataType::kString,
                   "inputs must be string tensors");
           inferBroadcast(c, DataType::kString);
         },
         .summary = "elementwise string concatenation"});
  r.add({.name = "StringSplit", .minInputs = 1, .maxInputs = 1, .minOutputs = 1, .maxOutputs = 2,
         .infer = inferStringSplit, .summary = "splits strings, padded with empty strings"});
  r.add({.name = "StringNormalizer", .minInputs = 1, .maxInputs = 1, .infer = inferStringNormalizer,
         .summary = "removes stop words and changes case"});
  r.add({.name = "RegexFullMatch", .minInputs = 1, .maxInputs = 1, .traits = kTraitElementwise,
         .infer = [](InferContext& c) {
           c.check(c.inputDtype(0) == DataType::kString, "X must be a string tensor");
           c.check(c.attrs().has("pattern"), "attribute 'pattern' is required");
           c.setOutput(0, DataType::kBool, c.inputShape(0));
         },
         .summary = "whether each string fully matches a pattern"});
}

}  // namespace anvil::ir::ops
