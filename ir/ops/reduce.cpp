// Schemas and shape inference of the reduce op family.
#include "ir/op_schema.h"
#include "ir/ops/families.h"
#include "ir/ops/infer_util.h"

namespace anvil::ir::ops {

void registerReduceOps(OpRegistry& r) {
  (void)r;
}

}  // namespace anvil::ir::ops
