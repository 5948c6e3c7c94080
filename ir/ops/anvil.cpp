// Schemas of anvil's own ops (domain "anvil"): the fused and lowered ops that passes make.
// One file per group so the groups can grow independently.
#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace anvil::ir::ops {

void registerAnvilLinearOps(OpRegistry& r);       // ir/ops/anvil_linear.cpp: fused Conv/Gemm/MatMul + epilogue
void registerAnvilTransformerOps(OpRegistry& r);  // ir/ops/anvil_transformer.cpp: LayerNorm/GELU/Attention forms
void registerAnvilElementwiseOps(OpRegistry& r);  // ir/ops/anvil_elementwise.cpp: fused elementwise chains
void registerAnvilLayoutOps(OpRegistry& r);       // ir/ops/anvil_layout.cpp: Reorder between storage layouts
void registerAnvilQuantOps(OpRegistry& r);        // ir/ops/anvil_quant.cpp: QLinearAdd of Q/DQ imports
void registerAnvilSequenceOps(OpRegistry& r);     // ir/ops/anvil_sequence.cpp: LSTMStack

void registerAnvilOps(OpRegistry& r) {
  registerAnvilLinearOps(r);
  registerAnvilTransformerOps(r);
  registerAnvilElementwiseOps(r);
  registerAnvilLayoutOps(r);
  registerAnvilQuantOps(r);
  registerAnvilSequenceOps(r);
}

}  // namespace anvil::ir::ops
