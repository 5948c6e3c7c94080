// Reference kernels of the control op family.
#include "cpu/dispatch.h"
#include "cpu/kernels/families.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

void registerControlKernels(KernelRegistry& r) {
  (void)r;
}

}  // namespace anvil::cpu::kernels
