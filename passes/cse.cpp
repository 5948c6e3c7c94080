// cse: merge nodes with the same op, attributes and inputs.
#include "passes/pattern.h"
#include "passes/pipeline.h"

namespace anvil::passes {

PassResult eliminateCommonSubexpressions(ir::Graph& g) {
  (void)g;
  return {};
}

}  // namespace anvil::passes
