// The list of backends whose kernels the runtime can run. The CUDA backend adds its
// registration here when it lands.
#include "runtime/kernel.h"

namespace anvil::runtime {

Kernels& Kernels::instance() {
  static Kernels* k = [] {
    auto* r = new Kernels();
    registerCpuKernels(*r);
    return r;
  }();
  return *k;
}

}  // namespace anvil::runtime
