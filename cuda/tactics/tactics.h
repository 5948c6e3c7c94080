// The CUDA backend's tactics: runtime::Kernel entries (device kCUDA) that serve IR nodes by
// enqueueing our kernels (cuda/kernels) on the step's DeviceRuntime and stream. The same
// contract as the CPU tactics (runtime/kernel.h): supports() and prepare() run at build on
// the host (no GPU needed: prepare only decodes attributes and packs weights into host
// blobs, which the context uploads once); run() only enqueues, on device pointers.
//
// Each family registers itself from its own file; registry.cpp calls them all.
#pragma once

#include "runtime/kernel.h"

namespace anvil::cuda::tactics {

void addCopyKernels(runtime::Kernels& k);  // copy.cpp: anvil.Copy host <-> device
void addLinearKernels(runtime::Kernels& k);     // linear.cpp: Conv, Gemm, MatMul and their fused forms
void addAttentionKernels(runtime::Kernels& k);  // attention.cpp: anvil.Attention
void addElementwiseKernels(runtime::Kernels& k);  // elementwise.cpp: unary, binary, Where, Expand, Cast, FusedElementwise
void addJitKernels(runtime::Kernels& k);  // elementwise_jit.cpp: FusedElementwise compiled with NVRTC (gpuOnly)

}  // namespace anvil::cuda::tactics
