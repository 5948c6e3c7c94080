// Schemas of the anvil-domain transformer ops.
#include "ir/op_schema.h"
#include "ir/ops/infer_util.h"

namespace anvil::ir::ops {

void registerAnvilTransformerOps(OpRegistry& r) { (void)r; }

}  // namespace anvil::ir::ops
