// Reference kernels of the anvil-domain transformer ops.
#include "cpu/dispatch.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

void registerAnvilTransformerKernels(KernelRegistry& r) { (void)r; }

}  // namespace anvil::cpu::kernels
