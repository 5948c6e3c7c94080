// Reference kernels of the anvil-domain elementwise ops.
#include "cpu/dispatch.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

void registerAnvilElementwiseKernels(KernelRegistry& r) { (void)r; }

}  // namespace anvil::cpu::kernels
