// Device instantiations of cuda/kernels/activation.cuh: 5 activations x {f32, f16}, 256
// threads per block, a grid capped so each thread handles several elements on big tensors.
#include "cuda/device.h"
#include "cuda/kernels/activation.cuh"
#include "cuda/kernels/faces.cuh"
#include "cuda/kernels/launch.h"
#include "cuda/kernels/registry.h"

namespace anvil::cuda::kernels {
namespace {

template <typename T, Activation A>
cudaError_t launchTyped(const void* x, void* y, std::int64_t n, cudaStream_t stream) {
  activation_gridstride<T, A><<<activationGrid(n), kActivationBlock, 0, stream>>>(
      static_cast<const T*>(x), static_cast<T*>(y), n);
  return cudaGetLastError();
}

template <typename T, Activation A>
void addEntry(std::vector<KernelEntry>& out) {
  constexpr auto kKernel = &activation_gridstride<T, A>;
  out.push_back(KernelEntry{activationKernelName(A, std::is_same<T, float>::value
                                                        ? DataType::kF32
                                                        : DataType::kF16),
                            &deviceFace<kKernel>, nullptr, sizeof(PackOf<kKernel>)});
}

template <typename T>
void addTyped(std::vector<KernelEntry>& out) {
  addEntry<T, Activation::kRelu>(out);
  addEntry<T, Activation::kSigmoid>(out);
  addEntry<T, Activation::kTanh>(out);
  addEntry<T, Activation::kGeluErf>(out);
  addEntry<T, Activation::kSilu>(out);
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
    default:  // the fused-epilogue-only activations have no standalone kernel
      break;
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

void addActivationDeviceKernels(std::vector<KernelEntry>& out) {
  addTyped<float>(out);
  addTyped<__half>(out);
}

}  // namespace anvil::cuda::kernels
