// Device instantiations of cuda/kernels/gemm_tc_i8.cuh for the device registry: the INT8 WMMA
// GEMM and implicit-GEMM convolution. Launched only through the runtime seam (cuda/linear_tc.cpp).
#include <vector>

#include "cuda/kernels/faces.cuh"
#include "cuda/kernels/gemm_tc_i8.cuh"
#include "cuda/kernels/registry.h"

namespace anvil::cuda::kernels {

void addGemmI8TensorCoreDeviceKernels(std::vector<KernelEntry>& out) {
  constexpr auto kGemm = &wmma_i8<GemmI8Problem>;
  constexpr auto kConv = &wmma_i8<Conv2dI8Problem>;
  out.push_back(KernelEntry{kGemmTcI8Kernel, &deviceFace<kGemm>, nullptr, sizeof(PackOf<kGemm>)});
  out.push_back(KernelEntry{kConv2dTcI8Kernel, &deviceFace<kConv>, nullptr, sizeof(PackOf<kConv>)});
}

}  // namespace anvil::cuda::kernels
