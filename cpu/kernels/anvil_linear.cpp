// Reference kernels of the anvil-domain linear ops.
#include "cpu/dispatch.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

void registerAnvilLinearKernels(KernelRegistry& r) { (void)r; }

}  // namespace anvil::cpu::kernels
