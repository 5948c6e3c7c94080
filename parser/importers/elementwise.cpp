// Importers of the elementwise family. The IR form is each op's newest opset; older
// forms are upgraded here:
// - opset 1 `consumed_inputs` (an optimization hint of the old in-place scheme) is dropped;
// - binary ops are imported from opset 7, where numpy broadcasting began; their older
//   forms (`broadcast`/`axis` attributes) are reported as unsupported for that opset;
// - Clip before opset 11 moves its min/max attributes into constant inputs;
// - Cast opset 1 names its target type as a string.
#include <cfloat>
#include <cmath>
#include <string>

#include "ir/graph.h"
#include "parser/importer.h"

namespace anvil::parser::importers {

namespace {

using ir::DataType;
using ir::Tensor;

void dropConsumedInputs(ImportContext& ctx) { ctx.attrs().erase("consumed_inputs"); }

// Unary ops: one importer from the first opset; opset 1's consumed_inputs is ignored.
void unaryOp(ImporterRegistry& r, const char* op, int since) {
  r.add({op, "", since, 22, [](ImportContext& ctx) {
           dropConsumedInputs(ctx);
           ctx.emitAsIs();
         }});
}

// A scalar of element type `t` holding v (clamped into an integer type's range).
Tensor scalarOf(DataType t, double v) {
  if (ir::isInteger(t)) {
    const int bits = ir::bitWidth(t);
    const double lo = ir::isSigned(t) ? -std::ldexp(1.0, bits - 1) : 0.0;
    const double hi = ir::isSigned(t) ? std::ldexp(1.0, bits - 1) - 1 : std::ldexp(1.0, bits) - 1;
    v = std::fmin(std::fmax(v, lo), bits == 64 ? std::nextafter(hi, 0.0) : hi);
  }
  Tensor s(t, {});
  s.setDouble(0, v);
  return s;
}

// Clip before opset 11: min/max attributes become scalar inputs of the input's type
// (a constant when the type is known here, else an f32 constant through CastLike).
void clipLegacy(ImportContext& ctx) {
  dropConsumedInputs(ctx);
  ir::Value* x = ctx.input(0);
  if (!x) ctx.fail("input 0 is required", false);
  const DataType t = x->dtype();
  auto bound = [&](const char* name, float def) -> ir::Value* {
    if (!ctx.attrs().has(name)) return nullptr;
    const float v = ctx.attrs().getFloat(name, def);
    if (t != DataType::kUndefined) return ctx.addConstant(name, scalarOf(t, v));
    ir::Value* f = ctx.addConstant(std::string(name) + "_f32", scalarOf(DataType::kF32, v));
    std::string out = f->name() + "_like";
    for (int i = 1; ctx.graph().lookup(out); ++i) out = f->name() + "_like" + std::to_string(i);
    return ctx.emit("CastLike", {f, x}, {}, {out})->output(0);
  };
  std::vector<ir::Value*> ins = {x, bound("min", -FLT_MAX), bound("max", FLT_MAX)};
  ctx.attrs().erase("min");
  ctx.attrs().erase("max");
  ctx.inputs() = ins;
  ctx.emitAsIs();
}

DataType typeFromName(const std::string& s) {
  static const std::pair<const char*, DataType> kNames[] = {
      {"FLOAT", DataType::kF32},   {"UINT8", DataType::kU8},     {"INT8", DataType::kI8},
      {"UINT16", DataType::kU16},  {"INT16", DataType::kI16},    {"INT32", DataType::kI32},
      {"INT64", DataType::kI64},   {"STRING", DataType::kString}, {"BOOL", DataType::kBool},
      {"FLOAT16", DataType::kF16}, {"DOUBLE", DataType::kF64},   {"UINT32", DataType::kU32},
      {"UINT64", DataType::kU64},  {"BFLOAT16", DataType::kBF16},
  };
  for (const auto& [name, t] : kNames)
    if (s == name) return t;
  return DataType::kUndefined;
}

void castV1(ImportContext& ctx) {
  const ir::Attribute* to = ctx.attrs().find("to");
  if (to && to->kind() == ir::Attribute::Kind::kString) {
    const std::string name = std::get<std::string>(to->value);
    DataType t = typeFromName(name);
    if (t == DataType::kUndefined) ctx.fail("attribute 'to' names an unknown type '" + name + "'", false);
    ctx.attrs().set("to", int64_t(t));
  }
  ctx.emitAsIs();
}

}  // namespace

void registerElementwiseImporters(ImporterRegistry& r) {
  // Binary arithmetic, comparisons and logic: numpy broadcasting from opset 7 on.
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor", "Equal", "Greater", "Less"})
    r.generic(op, 7);
  r.generic("GreaterOrEqual", 12);
  r.generic("LessOrEqual", 12);
  r.generic("Mod", 10);
  r.generic("BitShift", 11);
  for (const char* op : {"BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot"}) r.generic(op, 18);
  // PRelu before opset 7 allowed only a slope of one element or of X's shape, which
  // numpy's unidirectional broadcast covers.
  unaryOp(r, "PRelu", 1);

  // Variadic ops: before opset 8 inputs had one shape, a case of broadcasting.
  for (const char* op : {"Max", "Min", "Sum", "Mean"}) unaryOp(r, op, 1);

  for (const char* op : {"Abs", "Neg", "Ceil", "Floor", "Reciprocal", "Sqrt", "Exp", "Log", "Relu", "Sigmoid",
                         "Tanh", "Elu", "LeakyRelu", "Selu", "HardSigmoid", "Softplus", "Softsign", "Not"})
    unaryOp(r, op, 1);
  for (const char* op : {"Sin", "Cos", "Tan", "Asin", "Acos", "Atan"}) r.generic(op, 7);
  for (const char* op : {"Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Erf", "Sign", "Shrink", "IsNaN", "Where"})
    r.generic(op, 9);
  r.generic("IsInf", 10);
  r.generic("ThresholdedRelu", 10);
  r.generic("Round", 11);
  r.generic("Celu", 12);
  r.generic("HardSwish", 14);
  r.generic("Mish", 18);
  r.generic("Gelu", 20);

  r.add({"Clip", "", 1, 10, clipLegacy});
  r.generic("Clip", 11);

  r.add({"Cast", "", 1, 5, castV1});
  r.generic("Cast", 6);
  r.generic("CastLike", 15);
}

}  // namespace anvil::parser::importers
