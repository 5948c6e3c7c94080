// Schemas of the quantized ops of a Q/DQ import (passes/qdq_fusion.cpp). anvil.QLinearAdd:
// two integer tensors of one type (u8 or s8) and one shape, the model's grids as
// attributes (a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point), the
// sum on the output grid in the same type. Its arithmetic is onnxruntime's QLinearAdd
// (cpu/kernels/anvil_quant.cpp says which), which a Q/DQ model's DequantizeLinear ->
// Add -> QuantizeLinear runs as in onnxruntime's optimized session.
// anvil.QLinearGlobalAveragePool: one u8 or s8 tensor [N, C, spatial...], attributes
// x_scale, x_zero_point, y_scale, y_zero_point, the per-channel mean [N, C, 1...] on the
// output grid (onnxruntime's QLinearGlobalAveragePool arithmetic).
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

void inferQLinearGap(InferContext& c) {
  const DataType t = c.inputDtype(0);
  c.check(t == DataType::kU8 || t == DataType::kI8, "QLinearGlobalAveragePool takes uint8 or int8");
  for (const char* s : {"x_scale", "y_scale"}) {
    const float v = c.attrs().getFloat(s, 0.0f);
    c.check(v > 0.0f && std::isfinite(v), std::string("attribute ") + s + " must be a finite scale > 0");
  }
  const Shape& x = c.inputShape(0);
  if (!x.rankKnown()) {
    c.setOutput(0, t, Shape());
    return;
  }
  c.check(x.rank() >= 3, "QLinearGlobalAveragePool takes [N, C, spatial...]");
  std::vector<Dim> d(x.rank(), Dim(1));
  d[0] = x[0];
  d[1] = x[1];
  c.setOutput(0, t, Shape(d));
}

}  // namespace

void registerAnvilQuantOps(OpRegistry& r) {
  r.add({.name = "QLinearGlobalAveragePool", .domain = "anvil", .minInputs = 1, .maxInputs = 1,
         .infer = inferQLinearGap,
         .summary = "the per-channel mean of a quantized tensor on the grid of y_scale / y_zero_point, as "
                    "onnxruntime's QLinearGlobalAveragePool"});
  r.add({.name = "QLinearAdd", .domain = "anvil", .minInputs = 2, .maxInputs = 2, .infer = inferQLinearAdd,
         .summary = "adds two quantized tensors of one shape onto the grid of y_scale / y_zero_point, as "
                    "onnxruntime's QLinearAdd"});
}

}  // namespace anvil::ir::ops
