// Reference kernels of the reduce op family.
#include "cpu/dispatch.h"
#include "cpu/kernels/families.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

void registerReduceKernels(KernelRegistry& r) {
  (void)r;
}

}  // namespace anvil::cpu::kernels
