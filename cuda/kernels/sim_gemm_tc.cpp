// The sim registry's tensor-core GEMMs: cuda/kernels/gemm_tc.cuh compiled by the host compiler
// against cuda/sim (its wmma emulation), under the names and instantiations of gemm_tc.cu.
#include <vector>

#include "cuda/kernels/faces.cuh"
#include "cuda/kernels/gemm_tc.cuh"
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
}

}  // namespace anvil::cuda::kernels
