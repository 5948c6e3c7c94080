// The host entry points of the kernel .cu files: launch on a stream, return the launch's
// cudaError_t. Arguments are already checked by cuda/device.cpp, which is what callers use.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/types.h"

namespace anvil::cuda::kernels {

// Threads per block of the device launchers; the names below spell it.
inline constexpr int kActivationBlock = 256;
inline constexpr int kSoftmaxBlock = 256;
// The registered SIMT GEMM / implicit-GEMM conv tile (gemm.cuh GemmTile64x64, checked there by
// static_assert); kernel names spell it: "f32_gemm_simt_64x64x16_4x4_nn".
inline constexpr int kGemmTileM = 64, kGemmTileN = 64, kGemmTileK = 16;
inline constexpr int kGemmThreadM = 4, kGemmThreadN = 4;
inline constexpr int kGemmThreads = (kGemmTileM / kGemmThreadM) * (kGemmTileN / kGemmThreadN);
// Grid caps: past them blocks stride (activation over elements, softmax over rows).
inline constexpr std::int64_t kMaxActivationGrid = 1 << 16;
inline constexpr std::int64_t kMaxSoftmaxGrid = 1 << 16;

// The launch shapes both runtimes use, so the sim runs exactly what the GPU runs.
inline unsigned activationGrid(std::int64_t n) {
  const std::int64_t blocks = (n + kActivationBlock - 1) / kActivationBlock;
  return static_cast<unsigned>(blocks < kMaxActivationGrid ? blocks : kMaxActivationGrid);
}
inline unsigned softmaxGrid(std::int64_t rows) {
  return static_cast<unsigned>(rows < kMaxSoftmaxGrid ? rows : kMaxSoftmaxGrid);
}

// x and y point at n elements of `dtype` (float or __half) in device memory.
cudaError_t launchActivation(Activation act, DataType dtype, const void* x, void* y,
                             std::int64_t n, cudaStream_t stream);

cudaError_t launchSoftmaxRowsF32(const float* x, float* y, std::int64_t rows, std::int64_t cols,
                                 cudaStream_t stream);

}  // namespace anvil::cuda::kernels
