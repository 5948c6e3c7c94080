// The list of backends whose kernels the runtime can run: the CPU backend always, the CUDA
// backend where it was built (ANVIL_HAVE_CUDA_BACKEND: nvcc and Boost.Context were found).
#include "runtime/kernel.h"

namespace anvil::runtime {

Kernels& Kernels::instance() {
  static Kernels* k = [] {
    auto* r = new Kernels();
    registerCpuKernels(*r);
#ifdef ANVIL_HAVE_CUDA_BACKEND
    registerCudaKernels(*r);
#endif
    return r;
  }();
  return *k;
}

}  // namespace anvil::runtime
