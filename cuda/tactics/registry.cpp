// Registers every CUDA tactic family with the runtime's kernel registry (called once by
// runtime::Kernels::instance() where the CUDA backend is built).
#include "cuda/tactics/tactics.h"

namespace anvil::runtime {

void registerCudaKernels(Kernels& k) {
  cuda::tactics::addCopyKernels(k);
  cuda::tactics::addLinearKernels(k);
  cuda::tactics::addAttentionKernels(k);
  cuda::tactics::addElementwiseKernels(k);
  cuda::tactics::addNormPoolKernels(k);
  cuda::tactics::addMovementKernels(k);
  cuda::tactics::addTensorCoreKernels(k);
  cuda::tactics::addInt8TensorCoreKernels(k);
  cuda::tactics::addCublasLtKernels(k);  // gpuOnly: timed against our kernels where a GPU is
  cuda::tactics::addCudnnKernels(k);     // gpuOnly too
  cuda::tactics::addJitKernels(k);
}

}  // namespace anvil::runtime
