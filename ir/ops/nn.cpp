// Schemas and shape inference of the nn op family.
#include "ir/op_schema.h"
#include "ir/ops/families.h"
#include "ir/ops/infer_util.h"

namespace anvil::ir::ops {

void registerNnOps(OpRegistry& r) {
  (void)r;
}

}  // namespace anvil::ir::ops
