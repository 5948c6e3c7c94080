// Device instantiations of cuda/kernels/activation.cuh: 5 activations x {f32, f16}, 256
// threads per block, a grid capped so each thread handles several elements on big tensors.
#include <algorithm>

#include "cuda/kernels/activation.cuh"
#include "cuda/kernels/launch.h"

namespace anvil::cuda::kernels {
namespace {

constexpr std::int64_t kMaxActivationGrid = 1 << 16;

template <typename T, Activation A>
cudaError_t launchTyped(const void* x, void* y, std::int64_t n, cudaStream_t stream) {
  const std::int64_t blocks =
      std::min<std::int64_t>((n + kActivationBlock - 1) / kActivationBlock, kMaxActivationGrid);
  activation_gridstride<T, A><<<static_cast<unsigned>(blocks), kActivationBlock, 0, stream>>>(
      static_cast<const T*>(x), static_cast<T*>(y), n);
  return cudaGetLastError();
}

template <typename T>
cudaError_t dispatch(Activation act, const void* x, void* y, std::int64_t n, cudaStream_t stream) {
  switch (act) {
    case Activation::kRelu:
      return launchTyped<T, Activation::kRelu>(x, y, n, stream);
    case Activation::kSigmoid:
      return launchTyped<T, Activation::kSigmoid>(x, y, n, stream);
    case Activation::kTanh:
      return launchTyped<T, Activation::kTanh>(x, y, n, stream);
    case Activation::kGeluErf:
      return launchTyped<T, Activation::kGeluErf>(x, y, n, stream);
    case Activation::kSilu:
      return launchTyped<T, Activation::kSilu>(x, y, n, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t launchActivation(Activation act, DataType dtype, const void* x, void* y,
                             std::int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  return dtype == DataType::kF32 ? dispatch<float>(act, x, y, n, stream)
                                 : dispatch<__half>(act, x, y, n, stream);
}

}  // namespace anvil::cuda::kernels
