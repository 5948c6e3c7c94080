// Device instantiation of cuda/kernels/softmax.cuh: f32_softmax_row_block<256>, one block per
// row, grid-stride over rows past the grid cap.
#include <algorithm>

#include "cuda/kernels/launch.h"
#include "cuda/kernels/softmax.cuh"

namespace anvil::cuda::kernels {

namespace {
constexpr std::int64_t kMaxSoftmaxGrid = 1 << 16;
}

cudaError_t launchSoftmaxRowsF32(const float* x, float* y, std::int64_t rows, std::int64_t cols,
                                 cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  const std::int64_t blocks = std::min(rows, kMaxSoftmaxGrid);
  f32_softmax_row_block<kSoftmaxBlock>
      <<<static_cast<unsigned>(blocks), kSoftmaxBlock, 0, stream>>>(x, y, rows, cols);
  return cudaGetLastError();
}

}  // namespace anvil::cuda::kernels
