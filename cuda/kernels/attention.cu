// Device instantiation of cuda/kernels/attention.cuh for the device registry: the f32
// flash-style attention, launched only through the runtime seam (cuda/attention.cpp).
#include <vector>

#include "cuda/attention.h"
#include "cuda/kernels/attention.cuh"
#include "cuda/kernels/faces.cuh"
#include "cuda/kernels/registry.h"

namespace anvil::cuda::kernels {

void addAttentionDeviceKernels(std::vector<KernelEntry>& out) {
  constexpr auto kKernel = &f32_attention_flash<kAttentionMaxHead>;
  out.push_back(KernelEntry{attentionKernelName(), &deviceFace<kKernel>, nullptr, sizeof(PackOf<kKernel>)});
}

}  // namespace anvil::cuda::kernels
