// Schemas of the copies the builder inserts: anvil.Reorder, a copy of a tensor from one
// storage layout to another (row-major and the blocked NCHW<b>c of cpu/tactics/nchwc.h) at
// the boundaries of blocked regions, and anvil.Copy, a copy between devices (attribute
// `to`: "cuda" or "cpu") where a value's producer and reader run on different devices. The
// logical shape and type never change.
#include "ir/layout.h"
#include "ir/op_schema.h"

namespace anvil::ir::ops {

namespace {

void inferReorder(InferContext& c) {
  const std::string to = c.attrs().getString("to", "");
  const auto l = parseLayout(to);
  c.check(l.has_value(), "attribute 'to' must name a layout, got '" + to + "'");
  c.check(l->isPlain() || (l->family() == "NCHWc" && (l->block() == 8 || l->block() == 16)),
          "attribute 'to' must be plain, NCHW8c or NCHW16c, got '" + to + "'");
  c.check(c.inputDtype(0) == DataType::kF32, "Reorder takes float32");
  const Shape& s = c.inputShape(0);
  c.check(!s.rankKnown() || s.rank() == 4, "Reorder takes a rank-4 [N, C, H, W] tensor");
  inferSameAsInput(c);
}

void inferCopy(InferContext& c) {
  const std::string to = c.attrs().getString("to", "");
  c.check(to == "cuda" || to == "cpu", "attribute 'to' must be cuda or cpu, got '" + to + "'");
  inferSameAsInput(c);
  // The same data on another device: known values and shape values pass through, so shapes
  // computed from them (Expand, ConstantOfShape, Reshape downstream) stay static.
  if (const Tensor* t = c.inputValue(0)) c.setOutputValue(0, *t);
  if (const auto* sv = c.inputShapeValue(0)) c.setOutputShapeValue(0, *sv);
}

}  // namespace

void registerAnvilLayoutOps(OpRegistry& r) {
  r.add({.name = "Reorder", .domain = "anvil", .minInputs = 1, .maxInputs = 1, .infer = inferReorder,
         .summary = "copies a rank-4 tensor into the storage layout of attribute 'to' (plain, NCHW8c, NCHW16c)"});
  r.add({.name = "Copy", .domain = "anvil", .minInputs = 1, .maxInputs = 1, .infer = inferCopy,
         .summary = "copies a tensor to the device of attribute 'to' (cuda, cpu)"});
}

}  // namespace anvil::ir::ops
