// Reference-kernel families; each registers the kernels of its ops. Mirrors ir/ops/.
#pragma once

namespace anvil::cpu {
class KernelRegistry;
namespace kernels {

void registerElementwiseKernels(KernelRegistry& r);
void registerReduceKernels(KernelRegistry& r);
void registerNnKernels(KernelRegistry& r);
void registerTensorKernels(KernelRegistry& r);
void registerControlKernels(KernelRegistry& r);
void registerAnvilKernels(KernelRegistry& r);

inline constexpr void (*kFamilies[])(KernelRegistry&) = {
    registerElementwiseKernels, registerReduceKernels, registerNnKernels,
    registerTensorKernels,      registerControlKernels, registerAnvilKernels,
};

}  // namespace kernels
}  // namespace anvil::cpu
