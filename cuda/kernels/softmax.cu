// Device instantiation of cuda/kernels/softmax.cuh: f32_softmax_row_block<256>, one block per
// row, grid-stride over rows past the grid cap.
#include "cuda/device.h"
#include "cuda/kernels/faces.cuh"
#include "cuda/kernels/launch.h"
#include "cuda/kernels/registry.h"
#include "cuda/kernels/softmax.cuh"

namespace anvil::cuda::kernels {

cudaError_t launchSoftmaxRowsF32(const float* x, float* y, std::int64_t rows, std::int64_t cols,
                                 cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  f32_softmax_row_block<kSoftmaxBlock>
      <<<softmaxGrid(rows), kSoftmaxBlock, 0, stream>>>(x, y, rows, cols);
  return cudaGetLastError();
}

void addSoftmaxDeviceKernels(std::vector<KernelEntry>& out) {
  constexpr auto kKernel = &f32_softmax_row_block<kSoftmaxBlock>;
  out.push_back(KernelEntry{softmaxRowsKernelName(DataType::kF32), &deviceFace<kKernel>, nullptr,
                            sizeof(PackOf<kKernel>)});
}

}  // namespace anvil::cuda::kernels
