// The sim registry: our kernel templates compiled by the host compiler against cuda/sim,
// under the same names and with the same instantiations as the nvcc-built registry
// (activation.cu, softmax.cu, gemm.cu), so a launch by name runs the same code on either runtime.
#include <vector>

#include "cuda/device.h"
#include "cuda/attention.h"
#include "cuda/kernels/activation.cuh"
#include "cuda/kernels/attention.cuh"
#include "cuda/depthwise.h"
#include "cuda/kernels/depthwise.cuh"
#include "cuda/kernels/conv.cuh"
#include "cuda/kernels/faces.cuh"
#include "cuda/kernels/gemm.cuh"
#include "cuda/kernels/launch.h"
#include "cuda/kernels/registry.h"
#include "cuda/kernels/softmax.cuh"
#include "cuda/linear.h"

namespace anvil::cuda::kernels {
namespace {

template <typename T, Activation A>
void addActivation(std::vector<KernelEntry>& out) {
  constexpr auto kKernel = &activation_gridstride<T, A>;
  const DataType dtype = std::is_same_v<T, float> ? DataType::kF32 : DataType::kF16;
  out.push_back(KernelEntry{activationKernelName(A, dtype), nullptr, &simFace<kKernel>,
                            sizeof(PackOf<kKernel>)});
}

template <typename T>
void addActivations(std::vector<KernelEntry>& out) {
  addActivation<T, Activation::kRelu>(out);
  addActivation<T, Activation::kSigmoid>(out);
  addActivation<T, Activation::kTanh>(out);
  addActivation<T, Activation::kGeluErf>(out);
  addActivation<T, Activation::kSilu>(out);
}

template <typename T, bool TransA, bool TransB>
void addGemm(std::vector<KernelEntry>& out, DataType dtype) {
  constexpr auto kKernel = &gemm_simt<T, TransA, TransB, GemmTile64x64>;
  out.push_back(KernelEntry{gemmKernelName(TransA, TransB, dtype), nullptr, &simFace<kKernel>,
                            sizeof(PackOf<kKernel>)});
}

}  // namespace

const KernelEntry* findSimKernel(std::string_view name) {
  static const std::vector<KernelEntry> table = [] {
    std::vector<KernelEntry> t;
    addActivations<float>(t);
    addActivations<__half>(t);
    constexpr auto kSoftmax = &f32_softmax_row_block<kSoftmaxBlock>;
    t.push_back(KernelEntry{softmaxRowsKernelName(DataType::kF32), nullptr, &simFace<kSoftmax>,
                            sizeof(PackOf<kSoftmax>)});
    addGemm<float, false, false>(t, DataType::kF32);
    addGemm<float, false, true>(t, DataType::kF32);
    addGemm<float, true, false>(t, DataType::kF32);
    addGemm<float, true, true>(t, DataType::kF32);
    addGemm<__half, false, false>(t, DataType::kF16);
    addGemm<__half, false, true>(t, DataType::kF16);
    addGemm<__nv_bfloat16, false, false>(t, DataType::kBF16);
    addGemm<__nv_bfloat16, false, true>(t, DataType::kBF16);
    constexpr auto kConv = &f32_conv2d_implicit_gemm<GemmTile64x64>;
    t.push_back(
        KernelEntry{conv2dKernelName(), nullptr, &simFace<kConv>, sizeof(PackOf<kConv>)});
    constexpr auto kAttention = &f32_attention_flash<kAttentionMaxHead>;
    t.push_back(KernelEntry{attentionKernelName(), nullptr, &simFace<kAttention>, sizeof(PackOf<kAttention>)});
    constexpr auto kDepthwise = &f32_depthwise_conv2d_direct<kDepthwiseBlock>;
    t.push_back(KernelEntry{depthwiseConv2dKernelName(), nullptr, &simFace<kDepthwise>, sizeof(PackOf<kDepthwise>)});
    addElementwiseSimKernels(t);
    addNormMoveSimKernels(t);
    addGemmTensorCoreSimKernels(t);
    return t;
  }();
  for (const KernelEntry& e : table) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

}  // namespace anvil::cuda::kernels
