// Schemas and shape inference of the tensor op family: constants, shape manipulation,
// data movement, indexing (gather/scatter), padding and resizing.
//
// This family also owns symbolic shape-value propagation: Shape turns its input's dims
// (symbolic ones included) into a shape value; Gather/Slice/Concat/Unsqueeze/Squeeze/
// Identity/Reshape carry it along; Reshape/Expand/ConstantOfShape/Tile/Range/Pad/Resize
// read it back as exact output dims. Where every element is a known integer the value is
// also folded into a real (tiny) tensor, so downstream ops see known data.
//
// Shape values are lists of Dims. Known negative integers (a Reshape's -1 concatenated
// with Shape pieces) cannot be a Dim extent, so they travel as a symbol spelled "-1";
// intOf() reads them back. No real dimension symbol starts with '-'.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "ir/op_schema.h"
#include "ir/ops/families.h"
#include "ir/ops/infer_util.h"

namespace anvil::ir::ops {

namespace {

constexpr int64_t kMaxFold = 4096;  // largest integer tensor folded at build time

std::string str(int64_t v) { return std::to_string(v); }

std::string dimsStr(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + str(v[i]);
  return s + "]";
}

// ---- shape values ------------------------------------------------------------------

Dim dimOfInt(int64_t v) { return v >= 0 ? Dim(v) : Dim::symbol(str(v)); }

// The integer a shape-value element stands for, when known.
std::optional<int64_t> intOf(const Dim& d) {
  if (d.isStatic()) return d.value();
  if (!d.isSymbolic()) return std::nullopt;
  const std::string& s = d.symbolName();
  if (s.size() < 2 || s[0] != '-') return std::nullopt;
  for (size_t i = 1; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
  try {
    return std::stoll(s);
  } catch (...) {
    return std::nullopt;
  }
}

// A dim usable as an extent: static >= 0, a real symbol, else unknown.
Dim extentOf(const Dim& d) {
  if (auto v = intOf(d)) return *v >= 0 ? Dim(*v) : Dim::unknown();
  return d;
}

// Elements of a 0-D/1-D integer input: known data, else its symbolic shape value.
std::optional<std::vector<Dim>> shapeVal(const InferContext& ctx, size_t i) {
  if (!ctx.hasInput(i)) return std::nullopt;
  if (const Tensor* t = ctx.inputValue(i)) {
    if (!isInteger(t->dtype()) || t->rank() > 1 || t->numel() > kMaxFold) return std::nullopt;
    std::vector<Dim> d;
    for (int64_t k = 0; k < t->numel(); ++k) d.push_back(dimOfInt(t->getInt(k)));
    return d;
  }
  if (const auto* sv = ctx.inputShapeValue(i)) return *sv;
  return std::nullopt;
}

// Elements of an integer input when every one is known.
std::optional<std::vector<int64_t>> intsVal(const InferContext& ctx, size_t i) {
  if (!ctx.hasInput(i)) return std::nullopt;
  if (const Tensor* t = ctx.inputValue(i)) {
    if (!isInteger(t->dtype()) && t->dtype() != DataType::kBool) return std::nullopt;
    return t->toInt64Vector();
  }
  auto sv = shapeVal(ctx, i);
  if (!sv) return std::nullopt;
  std::vector<int64_t> v;
  for (const Dim& d : *sv) {
    auto x = intOf(d);
    if (!x) return std::nullopt;
    v.push_back(*x);
  }
  return v;
}

// A known scalar (or 1-element) input of any numeric type, as double.
std::optional<double> scalarVal(const InferContext& ctx, size_t i) {
  if (!ctx.hasInput(i)) return std::nullopt;
  if (const Tensor* t = ctx.inputValue(i)) {
    if (t->numel() != 1 || t->dtype() == DataType::kString) return std::nullopt;
    return t->getDouble(0);
  }
  auto v = intsVal(ctx, i);
  if (v && v->size() == 1) return double((*v)[0]);
  return std::nullopt;
}

void setIntElem(Tensor& t, int64_t k, int64_t v) {
  switch (t.dtype()) {
    case DataType::kI64: t.data<int64_t>()[k] = v; break;
    case DataType::kI32: t.data<int32_t>()[k] = int32_t(v); break;
    case DataType::kU64: t.data<uint64_t>()[k] = uint64_t(v); break;
    default: t.setDouble(k, double(v));
  }
}

// Publishes output `out` (a 0-D/1-D integer tensor) as a shape value and, when every
// element is known, as folded data.
void publish(InferContext& ctx, size_t out, const std::vector<Dim>& v, DataType dt, bool scalar) {
  if (!isInteger(dt)) return;
  if (scalar && v.size() != 1) return;
  bool all = true;
  for (const Dim& d : v) all &= intOf(d).has_value();
  if (all && int64_t(v.size()) <= kMaxFold) {
    Tensor t(dt, scalar ? std::vector<int64_t>{} : std::vector<int64_t>{int64_t(v.size())});
    for (size_t k = 0; k < v.size(); ++k) setIntElem(t, int64_t(k), *intOf(v[k]));
    ctx.setOutputValue(out, std::move(t));
  }
  // Published even when nothing is known, so a Concat of it keeps its other parts.
  ctx.setOutputShapeValue(out, v);
}

// Product of dims as (static coefficient, multiset of symbols); unknown if any dim is.
// A product that is neither static nor one symbol is spelled as a composite symbol,
// coefficient first and factors sorted ("4*N", "N*S"), and parsed back here, so that
// batch*heads style dims survive a reshape there and back.
struct SymProduct {
  int64_t coeff = 1;
  std::multiset<std::string> syms;
  bool unknown = false;
  void mul(const Dim& d) {
    if (d.isStatic()) {
      coeff *= d.value();
    } else if (d.isSymbolic() && !intOf(d)) {
      const std::string& s = d.symbolName();
      size_t start = 0;
      while (true) {
        size_t star = s.find('*', start);
        std::string tok = s.substr(start, star == std::string::npos ? std::string::npos : star - start);
        bool digits = !tok.empty() && std::all_of(tok.begin(), tok.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (digits && tok.size() < 18) coeff *= std::stoll(tok);
        else syms.insert(tok);
        if (star == std::string::npos) break;
        start = star + 1;
      }
    } else {
      unknown = true;
    }
  }
  Dim asDim() const {
    if (coeff == 0) return Dim(0);  // zero times anything finite
    if (unknown) return Dim::unknown();
    if (syms.empty()) return Dim(coeff);
    if (syms.size() == 1 && coeff == 1) return Dim::symbol(*syms.begin());
    std::string name = coeff == 1 ? "" : str(coeff);
    for (const auto& x : syms) name += (name.empty() ? "" : "*") + x;
    return Dim::symbol(name);
  }
};

SymProduct productOf(const std::vector<Dim>& dims, size_t from, size_t to) {
  SymProduct p;
  for (size_t i = from; i < to; ++i) p.mul(dims[i]);
  return p;
}

// a / b as a dim, when the symbols of b cancel against a's and the coefficients divide.
Dim divide(const SymProduct& a, const SymProduct& b) {
  if (a.unknown || b.unknown || b.coeff == 0) return Dim::unknown();
  std::multiset<std::string> rest = a.syms;
  for (const auto& s : b.syms) {
    auto it = rest.find(s);
    if (it == rest.end()) return Dim::unknown();
    rest.erase(it);
  }
  if (a.coeff % b.coeff != 0) return Dim::unknown();
  SymProduct q;
  q.coeff = a.coeff / b.coeff;
  q.syms = rest;
  return q.asDim();
}

// ---- Constant ----------------------------------------------------------------------

void inferConstant(InferContext& ctx) {
  const Attributes& a = ctx.attrs();
  int count = 0;
  for (const char* n : {"value", "sparse_value", "value_float", "value_floats", "value_int", "value_ints",
                        "value_string", "value_strings"})
    count += a.has(n);
  ctx.check(count == 1, "expects exactly one of the attributes value, sparse_value, value_float(s), "
                        "value_int(s), value_string(s); got " + str(count));
  Tensor t;
  if (const Tensor* v = a.getTensor("value")) t = *v;
  else if (const Tensor* s = a.getTensor("sparse_value")) t = *s;
  else if (a.has("value_float")) t = Tensor::scalar<float>(DataType::kF32, a.getFloat("value_float", 0));
  else if (a.has("value_floats")) {
    auto v = a.getFloats("value_floats");
    t = Tensor::fromVector<float>(DataType::kF32, {int64_t(v.size())}, v);
  } else if (a.has("value_int")) t = Tensor::scalar<int64_t>(DataType::kI64, a.getInt("value_int", 0));
  else if (a.has("value_ints")) {
    auto v = a.getInts("value_ints");
    t = Tensor::fromVector<int64_t>(DataType::kI64, {int64_t(v.size())}, v);
  } else if (a.has("value_string")) {
    t = Tensor(DataType::kString, {});
    t.data<std::string>()[0] = a.getString("value_string", "");
  } else {
    auto v = a.getStrings("value_strings");
    t = Tensor(DataType::kString, {int64_t(v.size())});
    for (size_t i = 0; i < v.size(); ++i) t.data<std::string>()[i] = v[i];
  }
  ctx.check(t.defined(), "the value attribute holds no tensor");
  ctx.setOutput(0, t.type());
  ctx.setOutputValue(0, t);
}

// Output dims from a shape input (ConstantOfShape, Expand's target): exact where known.
std::optional<Shape> shapeFromInput(InferContext& ctx, size_t i, bool allowUnknownRank = true) {
  if (auto sv = shapeVal(ctx, i)) {
    std::vector<Dim> dims;
    for (const Dim& d : *sv) {
      auto v = intOf(d);
      if (v && *v < 0) ctx.fail("shape input has a negative extent " + str(*v));
      dims.push_back(extentOf(d));
    }
    return Shape(dims);
  }
  const Shape& s = ctx.inputShape(i);
  if (s.rankKnown() && s.rank() == 1 && s[0].isStatic()) return unknownDims(s[0].value());
  if (allowUnknownRank) return Shape::unknownRank();
  return std::nullopt;
}

void inferConstantOfShape(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  ctx.check(isInteger(ctx.inputDtype(0)), "the shape input must be an integer tensor");
  ctx.check(!in.rankKnown() || in.rank() == 1, "the shape input must be 1-D, got " + in.str());
  DataType dt = DataType::kF32;
  const Tensor* value = ctx.attrs().getTensor("value");
  if (value) {
    ctx.check(value->numel() == 1, "attribute value must hold exactly one element");
    dt = value->dtype();
  }
  Shape out = *shapeFromInput(ctx, 0);
  ctx.setOutput(0, dt, out);
  // Tiny integer results are folded (ConstantOfShape -> Mul -> Where chains in exports).
  if (out.rank() <= 1 && out.isStatic() && out.numel() <= 64 && isInteger(dt)) {
    int64_t v = value ? value->getInt(0) : 0;
    std::vector<Dim> elems(size_t(out.numel()), dimOfInt(v));
    publish(ctx, 0, elems, dt, out.rank() == 0);
  }
}

// ---- Identity, Dropout -------------------------------------------------------------

void inferIdentity(InferContext& ctx) {
  ctx.setOutput(0, ctx.inputType(0));
  if (const Tensor* t = ctx.inputValue(0)) ctx.setOutputValue(0, *t);
  if (const auto* sv = ctx.inputShapeValue(0)) ctx.setOutputShapeValue(0, *sv);
}

void inferDropout(InferContext& ctx) {
  ctx.check(isFloat(ctx.inputDtype(0)), "input must be a float tensor, got " + std::string(dtypeName(ctx.inputDtype(0))));
  if (ctx.hasInput(1)) ctx.check(isFloat(ctx.inputDtype(1)), "ratio must be a float scalar");
  if (ctx.hasInput(2)) ctx.check(ctx.inputDtype(2) == DataType::kBool, "training_mode must be a bool scalar");
  if (auto r = scalarVal(ctx, 1)) ctx.check(*r >= 0 && *r < 1, "ratio must be in [0, 1), got " + std::to_string(*r));
  ctx.setOutput(0, ctx.inputType(0));
  if (ctx.numOutputs() > 1) ctx.setOutput(1, DataType::kBool, ctx.inputShape(0));
}

// ---- Reshape, Flatten, Squeeze, Unsqueeze ------------------------------------------

void inferReshape(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  ctx.check(ctx.inputDtype(1) == DataType::kI64, "the shape input must be i64");
  const bool allowzero = ctx.attrs().getInt("allowzero", 0) != 0;
  auto sv = shapeVal(ctx, 1);
  if (!sv) {
    const Shape& s = ctx.inputShape(1);
    ctx.setOutput(0, ctx.inputDtype(0),
                  s.rankKnown() && s.rank() == 1 && s[0].isStatic() ? unknownDims(s[0].value())
                                                                    : Shape::unknownRank());
    return;
  }
  std::vector<Dim> out;
  int inferAt = -1;
  bool hasZero = false;
  for (size_t i = 0; i < sv->size(); ++i) {
    const Dim& d = (*sv)[i];
    auto v = intOf(d);
    if (v && *v == -1) {
      ctx.check(inferAt < 0, "the shape has more than one -1");
      inferAt = int(i);
      out.emplace_back();
    } else if (v && *v < -1) {
      ctx.fail("the shape has an invalid extent " + str(*v));
    } else if (v && *v == 0 && !allowzero) {
      if (in.rankKnown()) {
        ctx.check(i < in.rank(), "shape element " + str(int64_t(i)) + " is 0 (copy) but the input " +
                                     in.str() + " has no such dim");
        out.push_back(in[i]);
      } else {
        out.emplace_back();
      }
    } else {
      hasZero |= v && *v == 0;
      out.push_back(extentOf(d));
    }
  }
  ctx.check(!(allowzero && hasZero && inferAt >= 0), "allowzero with both 0 and -1 in the shape is invalid");
  // With no -1, a single unknown entry is still fixed by the element count.
  bool solveUnknown = false;
  if (inferAt < 0) {
    int unknowns = 0;
    for (size_t i = 0; i < out.size(); ++i)
      if (out[i].isUnknown()) {
        ++unknowns;
        inferAt = int(i);
      }
    if (unknowns != 1) inferAt = -1;
    solveUnknown = inferAt >= 0;
  }
  if (in.rankKnown()) {
    SymProduct pin = productOf(in.dims(), 0, in.rank());
    if (inferAt >= 0) {
      SymProduct known;
      for (size_t i = 0; i < out.size(); ++i)
        if (int(i) != inferAt) known.mul(out[i]);
      if (!known.unknown && !pin.unknown && known.syms.empty() && pin.syms.empty()) {
        ctx.check(known.coeff != 0 ? pin.coeff % known.coeff == 0 : pin.coeff == 0 || solveUnknown,
                  "cannot reshape " + in.str() + " to " + Shape(out).str());
        if (known.coeff != 0) out[size_t(inferAt)] = Dim(pin.coeff / known.coeff);
        else if (!solveUnknown) out[size_t(inferAt)] = Dim(0);
      } else if (known.coeff != 0) {
        out[size_t(inferAt)] = divide(pin, known);
      }
    } else {
      SymProduct pout = productOf(out, 0, out.size());
      if (!pin.unknown && !pout.unknown && pin.syms.empty() && pout.syms.empty())
        ctx.check(pin.coeff == pout.coeff, "cannot reshape " + in.str() + " (" + str(pin.coeff) +
                                               " elements) to " + Shape(out).str());
    }
  }
  ctx.setOutput(0, ctx.inputDtype(0), Shape(out));
  // A 0-D/1-D shape value stays one through a reshape to 0-D/1-D.
  if (out.size() <= 1 && in.rankKnown() && in.rank() <= 1)
    if (auto v = shapeVal(ctx, 0); v && (!out.empty() || v->size() == 1))
      publish(ctx, 0, *v, ctx.inputDtype(0), out.empty());
}

void inferFlatten(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  if (!in.rankKnown()) {
    ctx.setOutput(0, ctx.inputDtype(0), unknownDims(2));
    return;
  }
  const int64_t r = int64_t(in.rank());
  int64_t axis = ctx.attrs().getInt("axis", 1);
  ctx.check(axis >= -r && axis <= r, "axis " + str(axis) + " is out of range for rank " + str(r));
  if (axis < 0) axis += r;
  Dim a = productOf(in.dims(), 0, size_t(axis)).asDim();
  Dim b = productOf(in.dims(), size_t(axis), size_t(r)).asDim();
  ctx.setOutput(0, ctx.inputDtype(0), Shape(std::vector<Dim>{a, b}));
}

// Normalizes axes against `rank`, checking range and duplicates.
std::vector<int64_t> normalizeAxes(const InferContext& ctx, std::vector<int64_t> axes, int64_t rank) {
  std::set<int64_t> seen;
  for (int64_t& a : axes) {
    ctx.check(a >= -rank && a < rank, "axis " + str(a) + " is out of range for rank " + str(rank));
    if (a < 0) a += rank;
    ctx.check(seen.insert(a).second, "axis " + str(a) + " appears twice");
  }
  return axes;
}

void inferSqueeze(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  const DataType dt = ctx.inputDtype(0);
  if (!in.rankKnown()) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return;
  }
  const int64_t r = int64_t(in.rank());
  std::vector<Dim> out;
  if (ctx.hasInput(1)) {
    auto axes = intsVal(ctx, 1);
    if (!axes) {
      ctx.setOutput(0, dt, Shape::unknownRank());
      return;
    }
    auto ax = normalizeAxes(ctx, *axes, r);
    std::set<int64_t> drop(ax.begin(), ax.end());
    for (int64_t i = 0; i < r; ++i) {
      if (drop.count(i)) {
        ctx.check(!in[size_t(i)].isStatic() || in[size_t(i)].value() == 1,
                  "cannot squeeze axis " + str(i) + " of " + in.str() + ": its extent is not 1");
        continue;
      }
      out.push_back(in[size_t(i)]);
    }
  } else {
    for (const Dim& d : in.dims()) {
      if (!d.isStatic()) {
        ctx.setOutput(0, dt, Shape::unknownRank());  // a symbolic dim may or may not be 1
        return;
      }
      if (d.value() != 1) out.push_back(d);
    }
  }
  ctx.setOutput(0, dt, Shape(out));
  if (r == 1 && out.empty())
    if (auto v = shapeVal(ctx, 0); v && v->size() == 1) publish(ctx, 0, *v, dt, true);
}

void inferUnsqueeze(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  const DataType dt = ctx.inputDtype(0);
  auto axes = intsVal(ctx, 1);
  if (!axes || !in.rankKnown()) {
    const Shape& as = ctx.inputShape(1);
    if (in.rankKnown() && as.rankKnown() && as.rank() == 1 && as[0].isStatic())
      ctx.setOutput(0, dt, unknownDims(int64_t(in.rank()) + as[0].value()));
    else
      ctx.setOutput(0, dt, Shape::unknownRank());
    return;
  }
  const int64_t r = int64_t(in.rank()) + int64_t(axes->size());
  auto ax = normalizeAxes(ctx, *axes, r);
  std::set<int64_t> ins(ax.begin(), ax.end());
  std::vector<Dim> out;
  size_t k = 0;
  for (int64_t i = 0; i < r; ++i) out.push_back(ins.count(i) ? Dim(1) : in[k++]);
  ctx.setOutput(0, dt, Shape(out));
  if (r == 1)
    if (auto v = shapeVal(ctx, 0); v && v->size() == 1) publish(ctx, 0, *v, dt, false);
}

// ---- Transpose, Concat, Split, Slice -----------------------------------------------

void inferTranspose(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  const DataType dt = ctx.inputDtype(0);
  if (!in.rankKnown()) {
    auto p = ctx.attrs().getInts("perm");
    ctx.setOutput(0, dt, p.empty() ? Shape::unknownRank() : unknownDims(int64_t(p.size())));
    return;
  }
  const int64_t r = int64_t(in.rank());
  std::vector<int64_t> perm = ctx.attrs().getInts("perm");
  if (!ctx.attrs().has("perm"))
    for (int64_t i = r - 1; i >= 0; --i) perm.push_back(i);
  ctx.check(int64_t(perm.size()) == r, "perm " + dimsStr(perm) + " does not match rank " + str(r));
  std::vector<bool> seen(size_t(r), false);
  std::vector<Dim> out;
  for (int64_t p : perm) {
    ctx.check(p >= -r && p < r, "perm " + dimsStr(perm) + " is not a permutation of " + str(r) + " axes");
    if (p < 0) p += r;
    ctx.check(!seen[size_t(p)], "perm " + dimsStr(perm) + " repeats axis " + str(p));
    seen[size_t(p)] = true;
    out.push_back(in[size_t(p)]);
  }
  ctx.setOutput(0, dt, Shape(out));
}

void inferConcat(InferContext& ctx) {
  ctx.check(ctx.numInputs() >= 1, "needs at least one input");
  const DataType dt = ctx.inputDtype(0);
  ctx.check(ctx.attrs().has("axis"), "attribute axis is required");
  int64_t axis = ctx.attrs().getInt("axis", 0);
  int64_t rank = -1;
  for (size_t i = 0; i < ctx.numInputs(); ++i) {
    ctx.check(ctx.inputDtype(i) == dt, "input " + str(int64_t(i)) + " is " + dtypeName(ctx.inputDtype(i)) +
                                           ", expected " + dtypeName(dt) + " like input 0");
    const Shape& s = ctx.inputShape(i);
    if (!s.rankKnown()) continue;
    ctx.check(rank < 0 || rank == int64_t(s.rank()), "inputs have different ranks");
    rank = int64_t(s.rank());
  }
  if (rank < 0) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return;
  }
  ctx.check(rank > 0, "cannot concatenate scalars");
  ctx.check(axis >= -rank && axis < rank, "axis " + str(axis) + " is out of range for rank " + str(rank));
  if (axis < 0) axis += rank;
  std::vector<Dim> out(static_cast<size_t>(rank));
  bool first = true;
  int64_t sum = 0;
  bool sumKnown = true;
  std::vector<Dim> symAxis;
  for (size_t i = 0; i < ctx.numInputs(); ++i) {
    const Shape& s = ctx.inputShape(i);
    if (!s.rankKnown()) {
      sumKnown = false;
      continue;
    }
    for (int64_t d = 0; d < rank; ++d) {
      const Dim& x = s[size_t(d)];
      if (d == axis) {
        if (x.isStatic()) sum += x.value();
        else if (x.isSymbolic()) symAxis.push_back(x);
        else sumKnown = false;
        continue;
      }
      Dim& o = out[size_t(d)];
      if (first) {
        o = x;
      } else if (o.isStatic() && x.isStatic()) {
        ctx.check(o.value() == x.value(), "input " + str(int64_t(i)) + " has shape " + s.str() +
                                              ", which differs from the others outside axis " + str(axis));
      } else if (x.isStatic()) {
        o = x;
      } else if (o != x && !o.isStatic()) {
        o = Dim::unknown();
      }
    }
    first = false;
  }
  if (sumKnown && symAxis.empty()) out[size_t(axis)] = Dim(sum);
  else if (sumKnown && symAxis.size() == 1 && sum == 0) out[size_t(axis)] = symAxis[0];
  else out[size_t(axis)] = Dim::unknown();
  ctx.setOutput(0, dt, Shape(out));
  if (rank == 1) {
    std::vector<Dim> all;
    for (size_t i = 0; i < ctx.numInputs(); ++i) {
      auto v = shapeVal(ctx, i);
      if (!v) return;
      all.insert(all.end(), v->begin(), v->end());
    }
    publish(ctx, 0, all, dt, false);
  }
}

void inferSplit(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  const DataType dt = ctx.inputDtype(0);
  const int64_t n = int64_t(ctx.numOutputs());
  if (ctx.attrs().has("num_outputs")) {
    ctx.check(!ctx.hasInput(1), "takes either the split input or the num_outputs attribute, not both");
    ctx.check(ctx.attrs().getInt("num_outputs", 0) == n, "num_outputs is " + str(ctx.attrs().getInt("num_outputs", 0)) +
                                                             " but the node has " + str(n) + " outputs");
  }
  if (!in.rankKnown()) {
    for (int64_t i = 0; i < n; ++i) ctx.setOutput(size_t(i), dt, Shape::unknownRank());
    return;
  }
  const int64_t r = int64_t(in.rank());
  const int64_t axis = normalizeAxis(ctx.attrs().getInt("axis", 0), r, ctx);
  ctx.check(r > 0, "cannot split a scalar");
  const Dim& d = in[size_t(axis)];
  std::vector<Dim> lens(static_cast<size_t>(n));
  if (ctx.hasInput(1)) {
    auto split = intsVal(ctx, 1);
    if (split) {
      ctx.check(int64_t(split->size()) == n, "split has " + str(int64_t(split->size())) + " entries for " + str(n) +
                                                 " outputs");
      int64_t sum = 0;
      for (size_t i = 0; i < split->size(); ++i) {
        ctx.check((*split)[i] >= 0, "split entries must be >= 0, got " + dimsStr(*split));
        sum += (*split)[i];
        lens[i] = Dim((*split)[i]);
      }
      if (d.isStatic())
        ctx.check(sum == d.value(), "split " + dimsStr(*split) + " does not add up to the extent " + str(d.value()) +
                                        " of axis " + str(axis));
    }
  } else if (d.isStatic()) {
    const int64_t total = d.value();
    const int64_t chunk = total % n == 0 ? total / n : total / n + 1;
    ctx.check(chunk * (n - 1) <= total, "cannot split extent " + str(total) + " into " + str(n) + " outputs");
    for (int64_t i = 0; i < n; ++i) lens[size_t(i)] = Dim(i + 1 < n ? chunk : total - chunk * (n - 1));
  } else if (n == 1) {
    lens[0] = d;
  }
  for (int64_t i = 0; i < n; ++i) {
    std::vector<Dim> o = in.dims();
    o[size_t(axis)] = lens[size_t(i)];
    ctx.setOutput(size_t(i), dt, Shape(o));
  }
}

// Clamped [start, end) with step along an extent, as the ONNX Slice spec defines it.
struct SliceRange {
  int64_t start, end, step, len;
};
SliceRange sliceRange(int64_t start, int64_t end, int64_t step, int64_t dim) {
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
  } else {
    start = std::clamp<int64_t>(start, 0, dim - 1);
    end = std::clamp<int64_t>(end, -1, dim - 1);
  }
  int64_t len = step > 0 ? (end - start + step - 1) / step : (start - end + (-step) - 1) / (-step);
  return {start, end, step, std::max<int64_t>(len, 0)};
}

void inferSlice(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  const DataType dt = ctx.inputDtype(0);
  if (!in.rankKnown()) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return;
  }
  const int64_t r = int64_t(in.rank());
  for (size_t i = 1; i < 5; ++i)
    if (ctx.hasInput(i))
      ctx.check(ctx.inputDtype(i) == DataType::kI64 || ctx.inputDtype(i) == DataType::kI32,
                "starts/ends/axes/steps must be i32 or i64");
  auto starts = intsVal(ctx, 1), ends = intsVal(ctx, 2);
  std::optional<std::vector<int64_t>> axes, steps;
  if (ctx.hasInput(3)) axes = intsVal(ctx, 3);
  if (ctx.hasInput(4)) steps = intsVal(ctx, 4);
  std::vector<Dim> out = in.dims();
  if ((ctx.hasInput(3) && !axes) || (!starts || !ends) || (ctx.hasInput(4) && !steps)) {
    if (ctx.hasInput(3) && axes) {
      for (int64_t a : normalizeAxes(ctx, *axes, r)) out[size_t(a)] = Dim::unknown();
    } else {
      out = unknownDims(r).dims();
    }
    ctx.setOutput(0, dt, Shape(out));
    return;
  }
  const size_t n = starts->size();
  ctx.check(ends->size() == n, "starts and ends have different lengths");
  std::vector<int64_t> ax;
  if (axes) {
    ctx.check(axes->size() == n, "axes and starts have different lengths");
    ax = normalizeAxes(ctx, *axes, r);
  } else {
    ctx.check(int64_t(n) <= r, "more starts than input dims");
    for (size_t i = 0; i < n; ++i) ax.push_back(int64_t(i));
  }
  std::vector<int64_t> st(n, 1);
  if (steps) {
    ctx.check(steps->size() == n, "steps and starts have different lengths");
    st = *steps;
  }
  std::vector<SliceRange> ranges(n);
  bool allStatic = true;
  for (size_t i = 0; i < n; ++i) {
    ctx.check(st[i] != 0 && st[i] != std::numeric_limits<int64_t>::min(), "steps must not be 0");
    const Dim& d = in[size_t(ax[i])];
    if (d.isStatic()) {
      ranges[i] = sliceRange((*starts)[i], (*ends)[i], st[i], d.value());
      out[size_t(ax[i])] = Dim(ranges[i].len);
    } else {
      allStatic = false;
      // [0:INT_MAX:1] and the like keep a symbolic extent.
      const bool whole = st[i] == 1 && (*starts)[i] == 0 && (*ends)[i] >= (int64_t(1) << 31);
      out[size_t(ax[i])] = whole ? d : Dim::unknown();
    }
  }
  ctx.setOutput(0, dt, Shape(out));
  if (r == 1 && allStatic) {
    if (auto v = shapeVal(ctx, 0); v && int64_t(v->size()) == in[0].value()) {
      std::vector<Dim> o;
      const SliceRange s = n == 1 ? ranges[0] : SliceRange{0, in[0].value(), 1, in[0].value()};
      for (int64_t k = 0, i = s.start; k < s.len; ++k, i += s.step) o.push_back((*v)[size_t(i)]);
      publish(ctx, 0, o, dt, false);
    }
  }
}

// ---- Gather family -----------------------------------------------------------------

void checkIndexType(const InferContext& ctx, size_t i) {
  DataType t = ctx.inputDtype(i);
  ctx.check(t == DataType::kI64 || t == DataType::kI32,
            "indices must be i32 or i64, got " + std::string(dtypeName(t)));
}

void inferGather(InferContext& ctx) {
  const Shape& data = ctx.inputShape(0);
  const Shape& idx = ctx.inputShape(1);
  const DataType dt = ctx.inputDtype(0);
  checkIndexType(ctx, 1);
  if (!data.rankKnown() || !idx.rankKnown()) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return;
  }
  const int64_t r = int64_t(data.rank());
  ctx.check(r >= 1, "data must have rank >= 1");
  const int64_t axis = normalizeAxis(ctx.attrs().getInt("axis", 0), r, ctx);
  std::vector<Dim> out(data.dims().begin(), data.dims().begin() + axis);
  out.insert(out.end(), idx.dims().begin(), idx.dims().end());
  out.insert(out.end(), data.dims().begin() + axis + 1, data.dims().end());
  ctx.setOutput(0, dt, Shape(out));
  if (r == 1 && idx.rank() <= 1) {
    auto v = shapeVal(ctx, 0);
    auto ind = intsVal(ctx, 1);
    if (v && ind) {
      std::vector<Dim> o;
      const int64_t n = int64_t(v->size());
      for (int64_t k : *ind) {
        ctx.check(k >= -n && k < n, "index " + str(k) + " is out of range for extent " + str(n));
        o.push_back((*v)[size_t(k < 0 ? k + n : k)]);
      }
      publish(ctx, 0, o, dt, idx.rank() == 0);
    }
  }
}

void inferGatherElements(InferContext& ctx) {
  const Shape& data = ctx.inputShape(0);
  const Shape& idx = ctx.inputShape(1);
  checkIndexType(ctx, 1);
  if (data.rankKnown() && idx.rankKnown()) {
    ctx.check(data.rank() == idx.rank(), "data " + data.str() + " and indices " + idx.str() + " differ in rank");
    normalizeAxis(ctx.attrs().getInt("axis", 0), int64_t(data.rank()), ctx);
  }
  ctx.setOutput(0, ctx.inputDtype(0), idx);
}

void inferGatherND(InferContext& ctx) {
  const Shape& data = ctx.inputShape(0);
  const Shape& idx = ctx.inputShape(1);
  const DataType dt = ctx.inputDtype(0);
  ctx.check(ctx.inputDtype(1) == DataType::kI64, "indices must be i64");
  const int64_t b = ctx.attrs().getInt("batch_dims", 0);
  ctx.check(b >= 0, "batch_dims must be >= 0");
  if (!data.rankKnown() || !idx.rankKnown()) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return;
  }
  const int64_t r = int64_t(data.rank()), q = int64_t(idx.rank());
  ctx.check(r >= 1 && q >= 1, "data and indices must have rank >= 1");
  ctx.check(b < std::min(r, q), "batch_dims " + str(b) + " must be less than both ranks");
  const Dim& last = idx[size_t(q - 1)];
  if (!last.isStatic()) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return;
  }
  ctx.check(last.value() >= 1 && last.value() <= r - b,
            "indices' last dim " + str(last.value()) + " must be in [1, " + str(r - b) + "]");
  std::vector<Dim> out(idx.dims().begin(), idx.dims().end() - 1);
  out.insert(out.end(), data.dims().begin() + b + last.value(), data.dims().end());
  ctx.setOutput(0, dt, Shape(out));
}

void checkReduction(const InferContext& ctx) {
  std::string red = ctx.attrs().getString("reduction", "none");
  ctx.check(red == "none" || red == "add" || red == "mul" || red == "max" || red == "min",
            "reduction must be none, add, mul, max or min, got '" + red + "'");
}

void inferScatterElements(InferContext& ctx) {
  checkIndexType(ctx, 1);
  checkReduction(ctx);
  const Shape& data = ctx.inputShape(0);
  const Shape& idx = ctx.inputShape(1);
  ctx.check(ctx.inputDtype(2) == ctx.inputDtype(0), "updates must have the data's type");
  if (data.rankKnown() && idx.rankKnown()) {
    ctx.check(data.rank() == idx.rank(), "data " + data.str() + " and indices " + idx.str() + " differ in rank");
    normalizeAxis(ctx.attrs().getInt("axis", 0), int64_t(data.rank()), ctx);
  }
  ctx.setOutput(0, ctx.inputType(0));
}

void inferScatterND(InferContext& ctx) {
  ctx.check(ctx.inputDtype(1) == DataType::kI64, "indices must be i64");
  checkReduction(ctx);
  ctx.check(ctx.inputDtype(2) == ctx.inputDtype(0), "updates must have the data's type");
  ctx.setOutput(0, ctx.inputType(0));
}

// ---- Expand, Tile, Pad -------------------------------------------------------------

void inferExpand(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  ctx.check(ctx.inputDtype(1) == DataType::kI64, "the shape input must be i64");
  Shape target = *shapeFromInput(ctx, 1);
  try {
    ctx.setOutput(0, ctx.inputDtype(0), broadcastShapes(in, target));
  } catch (const Error& e) {
    ctx.fail(std::string("cannot expand: ") + e.what());
  }
}

void inferTile(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  const DataType dt = ctx.inputDtype(0);
  ctx.check(ctx.inputDtype(1) == DataType::kI64, "repeats must be i64");
  if (!in.rankKnown()) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return;
  }
  auto rep = shapeVal(ctx, 1);
  std::vector<Dim> out(in.rank());
  if (rep) {
    ctx.check(rep->size() == in.rank(), "repeats has " + str(int64_t(rep->size())) + " entries for rank " +
                                            str(int64_t(in.rank())));
    for (size_t i = 0; i < in.rank(); ++i) {
      auto k = intOf((*rep)[i]);
      if (k) ctx.check(*k >= 0, "repeats must be >= 0, got " + str(*k));
      SymProduct p;
      p.mul(in[i]);
      p.mul(extentOf((*rep)[i]));
      out[i] = p.asDim();
    }
  }
  ctx.setOutput(0, dt, Shape(out));
}

void inferPad(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  const DataType dt = ctx.inputDtype(0);
  ctx.check(ctx.inputDtype(1) == DataType::kI64, "pads must be i64");
  const std::string mode = ctx.attrs().getString("mode", "constant");
  ctx.check(mode == "constant" || mode == "reflect" || mode == "edge" || mode == "wrap",
            "mode must be constant, reflect, edge or wrap, got '" + mode + "'");
  if (!in.rankKnown()) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return;
  }
  const int64_t r = int64_t(in.rank());
  std::vector<int64_t> axes;
  if (ctx.hasInput(3)) {
    auto a = intsVal(ctx, 3);
    if (!a) {
      ctx.setOutput(0, dt, unknownDims(r));
      return;
    }
    axes = normalizeAxes(ctx, *a, r);
  } else {
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  }
  auto pads = intsVal(ctx, 1);
  std::vector<Dim> out = in.dims();
  const size_t n = axes.size();
  if (!pads) {
    for (int64_t a : axes) out[size_t(a)] = Dim::unknown();
  } else {
    ctx.check(pads->size() == 2 * n, "pads has " + str(int64_t(pads->size())) + " entries, expected " +
                                         str(int64_t(2 * n)));
    for (size_t i = 0; i < n; ++i) {
      const int64_t p = (*pads)[i] + (*pads)[i + n];
      Dim& d = out[size_t(axes[i])];
      if (d.isStatic()) {
        ctx.check(d.value() + p >= 0, "pads " + dimsStr(*pads) + " remove more than the extent " + str(d.value()));
        d = Dim(d.value() + p);
      } else if ((*pads)[i] != 0 || (*pads)[i + n] != 0) {
        d = Dim::unknown();
      }
    }
  }
  ctx.setOutput(0, dt, Shape(out));
}

// ---- Shape, Size, Range ------------------------------------------------------------

void inferShape(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  if (!in.rankKnown()) {
    ctx.setOutput(0, DataType::kI64, unknownDims(1));
    return;
  }
  const int64_t r = int64_t(in.rank());
  auto clampAxis = [&](int64_t a) { return std::clamp<int64_t>(a < 0 ? a + r : a, 0, r); };
  const int64_t start = clampAxis(ctx.attrs().getInt("start", 0));
  const int64_t end = ctx.attrs().has("end") ? clampAxis(ctx.attrs().getInt("end", r)) : r;
  std::vector<Dim> v;
  for (int64_t i = start; i < end; ++i) v.push_back(in[size_t(i)]);
  ctx.setOutput(0, DataType::kI64, Shape{int64_t(v.size())});
  publish(ctx, 0, v, DataType::kI64, false);
}

void inferSize(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  ctx.setOutput(0, DataType::kI64, Shape());
  if (in.rankKnown()) {
    Dim n = productOf(in.dims(), 0, in.rank()).asDim();
    publish(ctx, 0, {n}, DataType::kI64, true);
  }
}

void inferRange(InferContext& ctx) {
  const DataType dt = ctx.inputDtype(0);
  ctx.check(dt == DataType::kF32 || dt == DataType::kF64 || dt == DataType::kI16 || dt == DataType::kI32 ||
                dt == DataType::kI64,
            "start must be f32, f64, i16, i32 or i64, got " + std::string(dtypeName(dt)));
  for (size_t i = 0; i < 3; ++i) {
    ctx.check(ctx.inputDtype(i) == dt, "start, limit and delta must have one type");
    const Shape& s = ctx.inputShape(i);
    ctx.check(!s.rankKnown() || s.rank() == 0 || (s.rank() == 1 && (!s[0].isStatic() || s[0].value() == 1)),
              "start, limit and delta must be scalars");
  }
  auto start = scalarVal(ctx, 0), limit = scalarVal(ctx, 1), delta = scalarVal(ctx, 2);
  if (delta) ctx.check(*delta != 0, "delta must not be 0");
  if (start && limit && delta) {
    const double count = std::ceil((*limit - *start) / *delta);
    ctx.check(count < 1e12, "range of " + std::to_string(count) + " elements is too large (or NaN)");
    const int64_t n = std::max<int64_t>(int64_t(count), 0);
    ctx.setOutput(0, dt, Shape{n});
    if (isInteger(dt) && n <= kMaxFold) {
      std::vector<Dim> v;
      for (int64_t i = 0; i < n; ++i) v.push_back(dimOfInt(int64_t(*start) + i * int64_t(*delta)));
      publish(ctx, 0, v, dt, false);
    }
    return;
  }
  // Range(0, N, 1) with a symbolic N has N elements.
  if (start && *start == 0 && delta && *delta == 1) {
    if (auto lv = shapeVal(ctx, 1); lv && lv->size() == 1) {
      ctx.setOutput(0, dt, Shape(std::vector<Dim>{extentOf((*lv)[0])}));
      return;
    }
  }
  ctx.setOutput(0, dt, unknownDims(1));
}

// ---- OneHot, NonZero ---------------------------------------------------------------

void inferOneHot(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  const Shape& vals = ctx.inputShape(2);
  ctx.check(!vals.rankKnown() || (vals.rank() == 1 && (!vals[0].isStatic() || vals[0].value() == 2)),
            "values must be a 1-D tensor of 2 elements [off, on], got " + vals.str());
  const DataType dt = ctx.inputDtype(2);
  if (!in.rankKnown()) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return;
  }
  const int64_t r = int64_t(in.rank()) + 1;
  int64_t axis = ctx.attrs().getInt("axis", -1);
  ctx.check(axis >= -r && axis < r, "axis " + str(axis) + " is out of range for output rank " + str(r));
  if (axis < 0) axis += r;
  Dim depth;
  if (auto d = scalarVal(ctx, 1)) {
    ctx.check(*d >= 1 && *d < 1e12, "depth must be >= 1, got " + std::to_string(*d));
    depth = Dim(int64_t(*d));
  }
  std::vector<Dim> out = in.dims();
  out.insert(out.begin() + axis, depth);
  ctx.setOutput(0, dt, Shape(out));
}

void inferNonZero(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  std::vector<Dim> out(2);
  if (in.rankKnown()) out[0] = Dim(int64_t(in.rank()));
  ctx.setOutput(0, DataType::kI64, Shape(out));
}

// ---- Resize ------------------------------------------------------------------------

void inferResize(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  const DataType dt = ctx.inputDtype(0);
  const Attributes& a = ctx.attrs();
  const std::string mode = a.getString("mode", "nearest");
  ctx.check(mode == "nearest" || mode == "linear" || mode == "cubic",
            "mode must be nearest, linear or cubic, got '" + mode + "'");
  const std::string ctm = a.getString("coordinate_transformation_mode", "half_pixel");
  ctx.check(ctm == "half_pixel" || ctm == "half_pixel_symmetric" || ctm == "pytorch_half_pixel" ||
                ctm == "align_corners" || ctm == "asymmetric" || ctm == "tf_crop_and_resize" ||
                ctm == "tf_half_pixel_for_nn",
            "unknown coordinate_transformation_mode '" + ctm + "'");
  const std::string nm = a.getString("nearest_mode", "round_prefer_floor");
  ctx.check(nm == "round_prefer_floor" || nm == "round_prefer_ceil" || nm == "floor" || nm == "ceil",
            "unknown nearest_mode '" + nm + "'");
  const std::string policy = a.getString("keep_aspect_ratio_policy", "stretch");
  ctx.check(policy == "stretch" || policy == "not_larger" || policy == "not_smaller",
            "keep_aspect_ratio_policy must be stretch, not_larger or not_smaller, got '" + policy + "'");
  if (!in.rankKnown()) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return;
  }
  const int64_t r = int64_t(in.rank());
  std::vector<int64_t> axes;
  if (a.has("axes")) axes = normalizeAxes(ctx, a.getInts("axes"), r);
  else
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  const size_t n = axes.size();
  std::vector<Dim> out = in.dims();
  // Empty scales/sizes tensors count as absent (opset 11 models pass "" or []). Where a
  // shape is not static we may not know which one is used: the kernel decides, and the
  // resized dims stay unknown.
  auto extentOf1D = [&](size_t i) -> int64_t {  // -1: absent or 0; -2: unknown
    if (!ctx.hasInput(i)) return -1;
    const Shape& s = ctx.inputShape(i);
    if (s.rankKnown() && s.rank() == 1 && s[0].isStatic()) return s[0].value() == 0 ? -1 : s[0].value();
    return -2;
  };
  const int64_t ns = extentOf1D(2), nz = extentOf1D(3);
  ctx.check(!(ns > 0 && nz > 0), "takes scales or sizes, not both");
  ctx.check(ns != -1 || nz != -1, "needs scales or sizes");
  if (ns == -2 && nz == -2) {
    for (int64_t ax : axes) out[size_t(ax)] = Dim::unknown();
    ctx.setOutput(0, dt, Shape(out));
    return;
  }
  const bool hasSizes = nz != -1 && ns <= 0;
  if (hasSizes) {
    ctx.check(ctx.inputDtype(3) == DataType::kI64, "sizes must be i64");
    auto sv = shapeVal(ctx, 3);
    if (!sv) {
      for (int64_t ax : axes) out[size_t(ax)] = Dim::unknown();
    } else {
      ctx.check(sv->size() == n, "sizes has " + str(int64_t(sv->size())) + " entries for " + str(int64_t(n)) + " axes");
      if (policy == "stretch") {
        for (size_t i = 0; i < n; ++i) {
          auto v = intOf((*sv)[i]);
          if (v) ctx.check(*v >= 0, "sizes must be >= 0");
          out[size_t(axes[i])] = extentOf((*sv)[i]);
        }
      } else {
        bool known = true;
        double scale = policy == "not_larger" ? 1e300 : -1e300;
        for (size_t i = 0; i < n; ++i) {
          auto v = intOf((*sv)[i]);
          const Dim& d = in[size_t(axes[i])];
          if (!v || !d.isStatic() || d.value() == 0) {
            known = false;
            break;
          }
          double s = double(*v) / double(d.value());
          scale = policy == "not_larger" ? std::min(scale, s) : std::max(scale, s);
        }
        for (size_t i = 0; i < n; ++i) {
          const Dim& d = in[size_t(axes[i])];
          out[size_t(axes[i])] = known ? Dim(int64_t(scale * double(d.value()) + 0.5)) : Dim::unknown();
        }
      }
    }
  } else {
    ctx.check(isFloat(ctx.inputDtype(2)), "scales must be a float tensor");
    const Tensor* t = ctx.inputValue(2);
    if (!t) {
      for (int64_t ax : axes) out[size_t(ax)] = Dim::unknown();
    } else {
      ctx.check(t->numel() == int64_t(n), "scales has " + str(t->numel()) + " entries for " + str(int64_t(n)) + " axes");
      for (size_t i = 0; i < n; ++i) {
        const double s = t->getDouble(int64_t(i));
        ctx.check(s > 0, "scales must be > 0");
        Dim& d = out[size_t(axes[i])];
        if (d.isStatic()) d = Dim(int64_t(std::floor(double(float(s)) * double(d.value()))));
        else if (s != 1.0) d = Dim::unknown();
      }
    }
  }
  ctx.setOutput(0, dt, Shape(out));
}

// ---- DepthToSpace, SpaceToDepth ----------------------------------------------------

void inferDepthToSpace(InferContext& ctx, bool toSpace) {
  const Shape& in = ctx.inputShape(0);
  const DataType dt = ctx.inputDtype(0);
  const int64_t b = ctx.attrs().requireInt("blocksize");
  ctx.check(b >= 1 && b <= (int64_t(1) << 20), "blocksize must be in [1, 2^20], got " + str(b));
  if (toSpace) {
    std::string mode = ctx.attrs().getString("mode", "DCR");
    ctx.check(mode == "DCR" || mode == "CRD", "mode must be DCR or CRD, got '" + mode + "'");
  }
  if (!in.rankKnown()) {
    ctx.setOutput(0, dt, unknownDims(4));
    return;
  }
  ctx.check(in.rank() == 4, "input must be 4-D [N,C,H,W], got " + in.str());
  std::vector<Dim> out = in.dims();
  auto scaleDim = [&](const Dim& d, bool mul, int64_t f) -> Dim {
    if (!d.isStatic()) return f == 1 ? d : Dim::unknown();
    if (mul) return Dim(d.value() * f);
    ctx.check(d.value() % f == 0, "extent " + str(d.value()) + " is not divisible by " + str(f));
    return Dim(d.value() / f);
  };
  out[1] = scaleDim(in[1], !toSpace, b * b);
  out[2] = scaleDim(in[2], toSpace, b);
  out[3] = scaleDim(in[3], toSpace, b);
  ctx.setOutput(0, dt, Shape(out));
}

// ---- Trilu, ReverseSequence, Compress, Unique, EyeLike, CenterCropPad ---------------

void inferTrilu(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  ctx.check(!in.rankKnown() || in.rank() >= 2, "input must have rank >= 2, got " + in.str());
  if (ctx.hasInput(1)) ctx.check(ctx.inputDtype(1) == DataType::kI64, "k must be an i64 scalar");
  ctx.setOutput(0, ctx.inputType(0));
}

void inferReverseSequence(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  ctx.check(ctx.inputDtype(1) == DataType::kI64, "sequence_lens must be i64");
  const int64_t ba = ctx.attrs().getInt("batch_axis", 1), ta = ctx.attrs().getInt("time_axis", 0);
  ctx.check((ba == 0 && ta == 1) || (ba == 1 && ta == 0), "batch_axis and time_axis must be 0 and 1 (in some order)");
  ctx.check(!in.rankKnown() || in.rank() >= 2, "input must have rank >= 2, got " + in.str());
  ctx.setOutput(0, ctx.inputType(0));
}

void inferCompress(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  const DataType dt = ctx.inputDtype(0);
  ctx.check(ctx.inputDtype(1) == DataType::kBool, "condition must be bool");
  Dim count;
  if (const Tensor* c = ctx.inputValue(1)) {
    int64_t k = 0;
    for (int64_t i = 0; i < c->numel(); ++i) k += c->getDouble(i) != 0;
    count = Dim(k);  // refined below only when the condition is not longer than the axis
  }
  if (!ctx.attrs().has("axis")) {
    ctx.setOutput(0, dt, Shape(std::vector<Dim>{in.isStatic() && ctx.inputValue(1) &&
                                                        ctx.inputValue(1)->numel() <= in.numel()
                                                    ? count
                                                    : Dim::unknown()}));
    return;
  }
  if (!in.rankKnown()) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return;
  }
  const int64_t axis = normalizeAxis(ctx.attrs().getInt("axis", 0), int64_t(in.rank()), ctx);
  std::vector<Dim> out = in.dims();
  const Dim& d = in[size_t(axis)];
  const bool exact = d.isStatic() && ctx.inputValue(1) && ctx.inputValue(1)->numel() <= d.value();
  out[size_t(axis)] = exact ? count : Dim::unknown();
  ctx.setOutput(0, dt, Shape(out));
}

void inferUnique(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  const DataType dt = ctx.inputDtype(0);
  Shape y = unknownDims(1);
  Dim inverse;
  if (ctx.attrs().has("axis")) {
    if (in.rankKnown()) {
      const int64_t axis = normalizeAxis(ctx.attrs().getInt("axis", 0), int64_t(in.rank()), ctx);
      std::vector<Dim> o = in.dims();
      inverse = o[size_t(axis)];
      o[size_t(axis)] = Dim::unknown();
      y = Shape(o);
    } else {
      y = Shape::unknownRank();
    }
  } else if (in.rankKnown()) {
    inverse = productOf(in.dims(), 0, in.rank()).asDim();
  }
  ctx.setOutput(0, dt, y);
  if (ctx.numOutputs() > 1) ctx.setOutput(1, DataType::kI64, unknownDims(1));
  if (ctx.numOutputs() > 2) ctx.setOutput(2, DataType::kI64, Shape(std::vector<Dim>{inverse}));
  if (ctx.numOutputs() > 3) ctx.setOutput(3, DataType::kI64, unknownDims(1));
}

void inferEyeLike(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  ctx.check(!in.rankKnown() || in.rank() == 2, "input must be 2-D, got " + in.str());
  DataType dt = ctx.inputDtype(0);
  if (ctx.attrs().has("dtype")) {
    int64_t t = ctx.attrs().getInt("dtype", 0);
    ctx.check(isValidOnnxType(int32_t(t)) && t != int64_t(DataType::kString) && t != 0,
              "dtype " + str(t) + " is not a valid numeric type");
    dt = DataType(t);
  }
  ctx.setOutput(0, dt, in.rankKnown() ? in : unknownDims(2));
}

void inferCenterCropPad(InferContext& ctx) {
  const Shape& in = ctx.inputShape(0);
  const DataType dt = ctx.inputDtype(0);
  ctx.check(isInteger(ctx.inputDtype(1)), "shape must be an integer tensor");
  if (!in.rankKnown()) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return;
  }
  const int64_t r = int64_t(in.rank());
  std::vector<int64_t> axes;
  if (ctx.attrs().has("axes")) axes = normalizeAxes(ctx, ctx.attrs().getInts("axes"), r);
  else
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  std::vector<Dim> out = in.dims();
  auto sv = shapeVal(ctx, 1);
  if (sv) ctx.check(sv->size() == axes.size(), "shape has " + str(int64_t(sv->size())) + " entries for " +
                                                   str(int64_t(axes.size())) + " axes");
  for (size_t i = 0; i < axes.size(); ++i) {
    Dim d = sv ? extentOf((*sv)[i]) : Dim::unknown();
    if (sv) {
      auto v = intOf((*sv)[i]);
      if (v) ctx.check(*v >= 0, "shape entries must be >= 0");
    }
    out[size_t(axes[i])] = d;
  }
  ctx.setOutput(0, dt, Shape(out));
}

}  // namespace

void registerTensorOps(OpRegistry& r) {
  constexpr uint32_t M = kTraitMovement;
  auto add = [&](const char* name, int minIn, int maxIn, int minOut, int maxOut, uint32_t traits, InferFn fn,
                 const char* summary) {
    r.add({.name = name, .minInputs = minIn, .maxInputs = maxIn, .minOutputs = minOut, .maxOutputs = maxOut,
           .traits = traits, .infer = std::move(fn), .summary = summary});
  };
  add("Constant", 0, 0, 1, 1, kTraitNone, inferConstant, "a tensor given by an attribute");
  add("ConstantOfShape", 1, 1, 1, 1, kTraitNone, inferConstantOfShape, "a tensor of a given shape filled with one value");
  add("Identity", 1, 1, 1, 1, kTraitNoop | M, inferIdentity, "y = x");
  add("Dropout", 1, 3, 1, 2, kTraitNoop | kTraitRandom, inferDropout,
      "identity at inference; random zeroing with scaling when training_mode is true");
  add("Reshape", 2, 2, 1, 1, M, inferReshape, "same data, new shape (0 copies a dim, -1 is inferred)");
  add("Flatten", 1, 1, 1, 1, M, inferFlatten, "reshape to 2-D around an axis");
  add("Squeeze", 1, 2, 1, 1, M, inferSqueeze, "remove extent-1 dims");
  add("Unsqueeze", 2, 2, 1, 1, M, inferUnsqueeze, "insert extent-1 dims");
  add("Transpose", 1, 1, 1, 1, M, inferTranspose, "permute dims");
  add("Concat", 1, -1, 1, 1, M, inferConcat, "join tensors along an axis");
  add("Split", 1, 2, 1, -1, M, inferSplit, "cut a tensor into pieces along an axis");
  add("Slice", 3, 5, 1, 1, M, inferSlice, "strided sub-range per axis");
  add("Gather", 2, 2, 1, 1, M, inferGather, "take slices along an axis by index");
  add("GatherElements", 2, 2, 1, 1, M, inferGatherElements, "take elements along an axis by an index tensor");
  add("GatherND", 2, 2, 1, 1, M, inferGatherND, "take slices by index tuples");
  add("ScatterElements", 3, 3, 1, 1, M, inferScatterElements, "write elements along an axis by an index tensor");
  add("ScatterND", 3, 3, 1, 1, M, inferScatterND, "write slices by index tuples");
  add("Expand", 2, 2, 1, 1, M | kTraitBroadcast, inferExpand, "broadcast to a shape");
  add("Tile", 2, 2, 1, 1, M, inferTile, "repeat along each axis");
  add("Pad", 2, 4, 1, 1, M, inferPad, "pad with a constant, reflection, edge or wrap");
  add("Shape", 1, 1, 1, 1, kTraitShapeOnly, inferShape, "the input's dims as i64");
  add("Size", 1, 1, 1, 1, kTraitShapeOnly, inferSize, "the input's element count as i64");
  add("Range", 3, 3, 1, 1, kTraitNone, inferRange, "start, start+delta, ... below limit");
  add("OneHot", 3, 3, 1, 1, kTraitNone, inferOneHot, "one-hot encoding along a new axis");
  add("NonZero", 1, 1, 1, 1, kTraitNone, inferNonZero, "indices of non-zero elements, [rank, count]");
  add("Resize", 1, 4, 1, 1, kTraitNone, inferResize, "nearest/linear/cubic resampling");
  add("DepthToSpace", 1, 1, 1, 1, M, [](InferContext& c) { inferDepthToSpace(c, true); },
      "move channel blocks into spatial blocks");
  add("SpaceToDepth", 1, 1, 1, 1, M, [](InferContext& c) { inferDepthToSpace(c, false); },
      "move spatial blocks into channels");
  add("Trilu", 1, 2, 1, 1, kTraitNone, inferTrilu, "upper or lower triangle of the last two dims");
  add("ReverseSequence", 2, 2, 1, 1, M, inferReverseSequence, "reverse each batch entry's first seq_len steps");
  add("Compress", 2, 2, 1, 1, M, inferCompress, "keep slices where a condition is true");
  add("Unique", 1, 1, 1, 4, kTraitNone, inferUnique, "unique elements or slices, with indices and counts");
  add("EyeLike", 1, 1, 1, 1, kTraitNone, inferEyeLike, "a 2-D identity-like matrix with a diagonal offset");
  add("CenterCropPad", 2, 2, 1, 1, M, inferCenterCropPad, "center crop or zero-pad to a shape");
}

}  // namespace anvil::ir::ops
