// The sim registry's tensor-core GEMMs: cuda/kernels/gemm_tc.cuh and gemm_tc_i8.cuh compiled by
// the host compiler against cuda/sim (its wmma emulation), under the names and instantiations
// of gemm_tc.cu and gemm_tc_i8.cu.
#include <vector>

#include "cuda/kernels/faces.cuh"
#include "cuda/kernels/gemm_tc.cuh"
#include "cuda/kernels/gemm_tc_i8.cuh"
#include "cuda/kernels/registry.h"

namespace anvil::cuda::kernels {

void addGemmTensorCoreSimKernels(std::vector<KernelEntry>& out) {
  constexpr auto kF16 = &gemm_wmma<__half>;
  constexpr auto kBF16 = &gemm_wmma<__nv_bfloat16>;
  out.push_back(KernelEntry{kGemmTcF16Kernel, nullptr, &simFace<kF16>, sizeof(PackOf<kF16>)});
  out.push_back(KernelEntry{kGemmTcBF16Kernel, nullptr, &simFace<kBF16>, sizeof(PackOf<kBF16>)});
  constexpr auto kConvF16 = &conv2d_implicit_gemm_wmma<__half>;
  constexpr auto kConvBF16 = &conv2d_implicit_gemm_wmma<__nv_bfloat16>;
  out.push_back(KernelEntry{kConv2dTcF16Kernel, nullptr, &simFace<kConvF16>, sizeof(PackOf<kConvF16>)});
  out.push_back(KernelEntry{kConv2dTcBF16Kernel, nullptr, &simFace<kConvBF16>, sizeof(PackOf<kConvBF16>)});
  constexpr auto kGemmI8 = &wmma_i8<GemmI8Problem>;
  constexpr auto kConvI8 = &wmma_i8<Conv2dI8Problem>;
  out.push_back(KernelEntry{kGemmTcI8Kernel, nullptr, &simFace<kGemmI8>, sizeof(PackOf<kGemmI8>)});
  out.push_back(KernelEntry{kConv2dTcI8Kernel, nullptr, &simFace<kConvI8>, sizeof(PackOf<kConvI8>)});
}

}  // namespace anvil::cuda::kernels
