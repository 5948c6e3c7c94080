// Schema of anvil.QLinearAdd, the quantized Add of a Q/DQ import (passes/qdq_fusion.cpp):
// two integer tensors of one type (u8 or s8) and one shape, the model's grids as
// attributes (a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point), the
// sum on the output grid in the same type. Its arithmetic is onnxruntime's QLinearAdd
// (cpu/kernels/anvil_quant.cpp says which), which a Q/DQ model's DequantizeLinear ->
// Add -> QuantizeLinear runs as in onnxruntime's optimized session.
#include <cmath>

#include "ir/op_schema.h"

namespace anvil::ir::ops {

namespace {

void inferQLinearAdd(InferContext& c) {
  const DataType t = c.inputDtype(0);
  c.check(t == DataType::kU8 || t == DataType::kI8, "QLinearAdd takes uint8 or int8");
  c.check(c.inputDtype(1) == t, "QLinearAdd's inputs have one type");
  const Shape& a = c.inputShape(0);
  const Shape& b = c.inputShape(1);
  c.check(!a.rankKnown() || !b.rankKnown() || a == b, "QLinearAdd's inputs have one shape (no broadcast)");
  for (const char* s : {"a_scale", "b_scale", "y_scale"}) {
    const float v = c.attrs().getFloat(s, 0.0f);
    c.check(v > 0.0f && std::isfinite(v), std::string("attribute ") + s + " must be a finite scale > 0");
  }
  inferSameAsInput(c);
}

}  // namespace

void registerAnvilQuantOps(OpRegistry& r) {
  r.add({.name = "QLinearAdd", .domain = "anvil", .minInputs = 2, .maxInputs = 2, .infer = inferQLinearAdd,
         .summary = "adds two quantized tensors of one shape onto the grid of y_scale / y_zero_point, as "
                    "onnxruntime's QLinearAdd"});
}

}  // namespace anvil::ir::ops
