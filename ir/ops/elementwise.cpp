// Schemas and shape inference of the elementwise family: arithmetic, math, comparisons,
// logic, activations, Cast.
#include "ir/op_schema.h"
#include "ir/ops/families.h"
#include "ir/ops/infer_util.h"

namespace anvil::ir::ops {

namespace {
void unary(OpRegistry& r, const char* name, const char* summary) {
  r.add({.name = name, .minInputs = 1, .maxInputs = 1, .traits = kTraitElementwise,
         .infer = inferSameAsInput, .summary = summary});
}
void binary(OpRegistry& r, const char* name, uint32_t extra, const char* summary) {
  r.add({.name = name, .minInputs = 2, .maxInputs = 2,
         .traits = kTraitElementwise | kTraitBroadcast | extra,
         .infer = [](InferContext& c) { inferBroadcast(c, c.inputDtype(0)); }, .summary = summary});
}
}  // namespace

void registerElementwiseOps(OpRegistry& r) {
  binary(r, "Add", kTraitCommutative, "a + b");
  unary(r, "Relu", "max(x, 0)");
}

}  // namespace anvil::ir::ops
