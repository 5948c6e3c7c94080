// Native CPU kernels (runtime/kernel.h) of one family; see cpu/tactics/native.cpp.
#include "runtime/kernel.h"

namespace anvil::runtime {

void registerNativeWinogradKernels(Kernels& k) { (void)k; }

}  // namespace anvil::runtime
