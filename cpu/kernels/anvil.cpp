// Reference kernels of anvil's own ops (domain "anvil"), one file per group (mirrors ir/ops/anvil*.cpp).
#include "cpu/kernels/families.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

void registerAnvilLinearKernels(KernelRegistry& r);       // cpu/kernels/anvil_linear.cpp
void registerAnvilTransformerKernels(KernelRegistry& r);  // cpu/kernels/anvil_transformer.cpp
void registerAnvilElementwiseKernels(KernelRegistry& r);  // cpu/kernels/anvil_elementwise.cpp
void registerAnvilLayoutKernels(KernelRegistry& r);       // cpu/kernels/anvil_layout.cpp
void registerAnvilQuantKernels(KernelRegistry& r);        // cpu/kernels/anvil_quant.cpp
void registerAnvilSequenceKernels(KernelRegistry& r);     // cpu/kernels/anvil_sequence.cpp

void registerAnvilKernels(KernelRegistry& r) {
  registerAnvilLinearKernels(r);
  registerAnvilTransformerKernels(r);
  registerAnvilElementwiseKernels(r);
  registerAnvilLayoutKernels(r);
  registerAnvilQuantKernels(r);
  registerAnvilSequenceKernels(r);
}

}  // namespace anvil::cpu::kernels
