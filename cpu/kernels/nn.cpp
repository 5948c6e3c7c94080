// Reference kernels of the nn op family.
#include "cpu/dispatch.h"
#include "cpu/kernels/families.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

void registerNnKernels(KernelRegistry& r) {
  (void)r;
}

}  // namespace anvil::cpu::kernels
