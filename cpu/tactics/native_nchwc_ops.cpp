// Kernels of the blocked layout NCHW<b>c (cpu/tactics/nchwc.h) other than the dense
// convolutions: anvil.Reorder, elementwise ops, GlobalAveragePool, Concat.
#include "cpu/tactics/nchwc.h"
#include "runtime/kernel.h"

namespace anvil::runtime {

void registerNativeNchwcOpKernels(Kernels& k) { (void)k; }

}  // namespace anvil::runtime
