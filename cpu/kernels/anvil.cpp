// Reference kernels of the anvil op family.
#include "cpu/dispatch.h"
#include "cpu/kernels/families.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

void registerAnvilKernels(KernelRegistry& r) {
  (void)r;
}

}  // namespace anvil::cpu::kernels
