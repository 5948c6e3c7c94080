// Schemas of the anvil-domain elementwise ops.
#include "ir/op_schema.h"
#include "ir/ops/infer_util.h"

namespace anvil::ir::ops {

void registerAnvilElementwiseOps(OpRegistry& r) { (void)r; }

}  // namespace anvil::ir::ops
