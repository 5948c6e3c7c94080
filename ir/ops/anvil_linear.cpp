// Schemas of the anvil-domain linear ops.
#include "ir/op_schema.h"
#include "ir/ops/infer_util.h"

namespace anvil::ir::ops {

void registerAnvilLinearOps(OpRegistry& r) { (void)r; }

}  // namespace anvil::ir::ops
