// Reference kernels of the tensor op family.
#include "cpu/dispatch.h"
#include "cpu/kernels/families.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

void registerTensorKernels(KernelRegistry& r) {
  (void)r;
}

}  // namespace anvil::cpu::kernels
