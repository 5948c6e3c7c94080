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

template <bool TransA, bool TransB>
void addGemm(std::vector<KernelEntry>& out) {
  constexpr auto kKernel = &f32_gemm_simt<TransA, TransB, GemmTile64x64>;
  out.push_back(KernelEntry{gemmKernelName(TransA, TransB), &deviceFace<kKernel>, nullptr,
                            sizeof(PackOf<kKernel>)});
}

}  // namespace

void addGemmDeviceKernels(std::vector<KernelEntry>& out) {
  addGemm<false, false>(out);
  addGemm<false, true>(out);
  addGemm<true, false>(out);
  addGemm<true, true>(out);
  constexpr auto kConv = &f32_conv2d_implicit_gemm<GemmTile64x64>;
  out.push_back(KernelEntry{conv2dKernelName(), &deviceFace<kConv>, nullptr, sizeof(PackOf<kConv>)});
}

}  // namespace anvil::cuda::kernels
