// Device instantiations of cuda/kernels/gemm.cuh and conv.cuh for the device registry: the
// 64x64x16 / 4x4 SIMT tile, the GEMM in its four transpose forms and the implicit-GEMM
// convolution. Launched only through the runtime seam (cuda/linear.cpp).
#include <vector>

#include "cuda/kernels/conv.cuh"
#include "cuda/kernels/faces.cuh"
#include "cuda/kernels/gemm.cuh"
#include "cuda/kernels/launch.h"
#include "cuda/kernels/registry.h"
#include "cuda/linear.h"

namespace anvil::cuda::kernels {
namespace {

static_assert(GemmTile64x64::BM == kGemmTileM && GemmTile64x64::BN == kGemmTileN &&
                  GemmTile64x64::BK == kGemmTileK && GemmTile64x64::TM == kGemmThreadM &&
                  GemmTile64x64::TN == kGemmThreadN && GemmTile64x64::kThreads == kGemmThreads,
              "launch.h spells the registered tile");

template <typename T, bool TransA, bool TransB>
void addGemm(std::vector<KernelEntry>& out, DataType dtype) {
  constexpr auto kKernel = &gemm_simt<T, TransA, TransB, GemmTile64x64>;
  out.push_back(KernelEntry{gemmKernelName(TransA, TransB, dtype), &deviceFace<kKernel>, nullptr,
                            sizeof(PackOf<kKernel>)});
}

}  // namespace

void addGemmDeviceKernels(std::vector<KernelEntry>& out) {
  addGemm<float, false, false>(out, DataType::kF32);
  addGemm<float, false, true>(out, DataType::kF32);
  addGemm<float, true, false>(out, DataType::kF32);
  addGemm<float, true, true>(out, DataType::kF32);
  // Half types as activations x weights (nn) and x weights^T or Q K^T (nt) only: each form
  // costs nvcc time for every architecture, and the launcher says which exist.
  addGemm<__half, false, false>(out, DataType::kF16);
  addGemm<__half, false, true>(out, DataType::kF16);
  addGemm<__nv_bfloat16, false, false>(out, DataType::kBF16);
  addGemm<__nv_bfloat16, false, true>(out, DataType::kBF16);
  constexpr auto kConv = &f32_conv2d_implicit_gemm<GemmTile64x64>;
  out.push_back(KernelEntry{conv2dKernelName(), &deviceFace<kConv>, nullptr, sizeof(PackOf<kConv>)});
}

}  // namespace anvil::cuda::kernels
