// Device instantiations of cuda/kernels/gemm_tc.cuh for the device registry: the WMMA GEMM
// and the implicit-GEMM convolution, with f16 and bf16 operands. Launched only through the runtime seam (cuda/linear_tc.cpp).
#include <vector>

#include "cuda/kernels/faces.cuh"
#include "cuda/kernels/gemm_tc.cuh"
#include "cuda/kernels/registry.h"

namespace anvil::cuda::kernels {

void addGemmTensorCoreDeviceKernels(std::vector<KernelEntry>& out) {
  constexpr auto kF16 = &gemm_wmma<__half>;
  constexpr auto kBF16 = &gemm_wmma<__nv_bfloat16>;
  out.push_back(KernelEntry{kGemmTcF16Kernel, &deviceFace<kF16>, nullptr, sizeof(PackOf<kF16>)});
  out.push_back(KernelEntry{kGemmTcBF16Kernel, &deviceFace<kBF16>, nullptr, sizeof(PackOf<kBF16>)});
  constexpr auto kConvF16 = &conv2d_implicit_gemm_wmma<__half>;
  constexpr auto kConvBF16 = &conv2d_implicit_gemm_wmma<__nv_bfloat16>;
  out.push_back(KernelEntry{kConv2dTcF16Kernel, &deviceFace<kConvF16>, nullptr, sizeof(PackOf<kConvF16>)});
  out.push_back(KernelEntry{kConv2dTcBF16Kernel, &deviceFace<kConvBF16>, nullptr, sizeof(PackOf<kConvBF16>)});
}

}  // namespace anvil::cuda::kernels
