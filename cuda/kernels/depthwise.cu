// Device instantiation of cuda/kernels/depthwise.cuh for the device registry: the direct
// depthwise convolution, launched only through the runtime seam (cuda/depthwise.cpp).
#include <vector>

#include "cuda/depthwise.h"
#include "cuda/kernels/depthwise.cuh"
#include "cuda/kernels/faces.cuh"
#include "cuda/kernels/registry.h"

namespace anvil::cuda::kernels {

void addDepthwiseDeviceKernels(std::vector<KernelEntry>& out) {
  constexpr auto kKernel = &f32_depthwise_conv2d_direct<kDepthwiseBlock>;
  out.push_back(KernelEntry{depthwiseConv2dKernelName(), &deviceFace<kKernel>, nullptr, sizeof(PackOf<kKernel>)});
}

}  // namespace anvil::cuda::kernels
