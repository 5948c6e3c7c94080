// gelu-fusion: fuse the erf and tanh forms of GELU.
#include "passes/pattern.h"
#include "passes/pipeline.h"

namespace anvil::passes {

PassResult fuseGelu(ir::Graph& g) {
  (void)g;
  return {};
}

}  // namespace anvil::passes
