// Schemas of the anvil-domain elementwise ops: anvil.FusedElementwise, a chain of
// elementwise ops run as one pass over memory (its program: ir/ops/anvil_elementwise.h).
#include "ir/ops/anvil_elementwise.h"

#include "ir/op_schema.h"
#include "ir/ops/infer_util.h"

namespace anvil::ir::ops {

namespace {

bool isFloatType(DataType t) {
  return t == DataType::kF32 || t == DataType::kF64 || t == DataType::kF16 || t == DataType::kBF16;
}

// Inputs: one float type; output: that type, the numpy broadcast of every input's shape
// (which is the shape of the chain's last value: broadcasting composes).
void inferFusedElementwise(InferContext& c) {
  c.check(c.numInputs() >= 1, "needs at least one input");
  for (size_t i = 0; i < c.numInputs(); ++i) c.check(c.hasInput(i), "input " + std::to_string(i) + " may not be omitted");
  const DataType t = c.inputDtype(0);
  c.check(isFloatType(t), std::string("FusedElementwise takes float types, got ") + dtypeName(t));
  for (size_t i = 1; i < c.numInputs(); ++i)
    c.check(c.inputDtype(i) == t, std::string("every input must have input 0's type ") + dtypeName(t) + ", input " +
                                      std::to_string(i) + " is " + dtypeName(c.inputDtype(i)));
  ew::Program p;
  const std::string err = ew::parseProgram(c.attrs().getStrings("program"), int(c.numInputs()), &p);
  if (!err.empty()) c.fail("attribute 'program': " + err);
  inferBroadcast(c, t);
}

}  // namespace

void registerAnvilElementwiseOps(OpRegistry& r) {
  r.add({.name = "FusedElementwise", .domain = "anvil", .minInputs = 1, .maxInputs = -1,
         .traits = kTraitElementwise | kTraitBroadcast | kTraitFused, .infer = inferFusedElementwise,
         .summary = "a chain of elementwise ops (attribute 'program') evaluated per element in one pass"});
}

}  // namespace anvil::ir::ops
