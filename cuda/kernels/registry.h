// The registries of our kernels by name, one per face: the nvcc-built kernels of anvil_cuda
// (filled by each .cu) for the real runtime, the host-compiled ones of anvil_cuda_sim for the
// sim. A launch names its kernel ("f32_relu_gridstride_block256"); each runtime looks up the
// face it needs, so launchers in anvil_cuda never see the sim's code.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "cuda/runtime.h"

namespace anvil::cuda::kernels {

struct KernelEntry {
  std::string name;
  DeviceFace device = nullptr;  // set in the device registry
  SimFace sim = nullptr;        // set in the sim registry
  std::size_t argBytes = 0;     // sizeof its ArgPack
};

// anvil_cuda (runtime_cuda.cpp); nullptr when absent.
const KernelEntry* findDeviceKernel(std::string_view name);
void addActivationDeviceKernels(std::vector<KernelEntry>& out);  // activation.cu
void addSoftmaxDeviceKernels(std::vector<KernelEntry>& out);     // softmax.cu
void addGemmDeviceKernels(std::vector<KernelEntry>& out);        // gemm.cu (GEMM + conv)
void addAttentionDeviceKernels(std::vector<KernelEntry>& out);   // attention.cu
void addDepthwiseDeviceKernels(std::vector<KernelEntry>& out);   // depthwise.cu
void addElementwiseDeviceKernels(std::vector<KernelEntry>& out);  // elementwise.cu
void addNormPoolDeviceKernels(std::vector<KernelEntry>& out);    // normpool.cu
void addMovementDeviceKernels(std::vector<KernelEntry>& out);    // movement.cu
void addGemmTensorCoreDeviceKernels(std::vector<KernelEntry>& out);  // gemm_tc.cu (WMMA)
void addGemmI8TensorCoreDeviceKernels(std::vector<KernelEntry>& out);  // gemm_tc_i8.cu (s8 WMMA)

// anvil_cuda_sim (kernels/sim_kernels.cpp); nullptr when absent.
const KernelEntry* findSimKernel(std::string_view name);
void addElementwiseSimKernels(std::vector<KernelEntry>& out);  // sim_elementwise.cpp
void addNormMoveSimKernels(std::vector<KernelEntry>& out);  // sim_normmove.cpp
void addGemmTensorCoreSimKernels(std::vector<KernelEntry>& out);  // sim_gemm_tc.cpp

}  // namespace anvil::cuda::kernels
