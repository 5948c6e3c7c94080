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
void addNormPoolKernels(runtime::Kernels& k);  // normpool.cpp: Layer/Batch/Instance/GroupNorm, softmax, Reduce*, ArgMax/Min, pools
void addMovementKernels(runtime::Kernels& k);  // movement.cpp: Transpose, Concat, Split, Slice, Gather, Pad, Expand, Tile, ...

void addCublasLtKernels(runtime::Kernels& k);  // cublaslt.cpp: GEMMs through cuBLASLt (gpuOnly)
// Whether the cuBLASLt tactics can run a node at these (static) input types.
bool cublasLtServes(const ir::Node& n, const std::vector<ir::TensorType>& types);
void addCudnnKernels(runtime::Kernels& k);  // cudnn.cpp: Conv through cuDNN (gpuOnly)
bool cudnnServes(const ir::Node& n, const std::vector<ir::TensorType>& types);
// linear_tc.cpp: f16 / bf16 MatMul, Gemm and their fused forms on tensor cores (WMMA). After
// the f32 families, so that an f32 node keeps the SIMT kernels as its first choice.
void addTensorCoreKernels(runtime::Kernels& k);
// linear_tc_i8.cpp: INT8 MatMul, Gemm, Conv and their fused forms on s8 tensor cores (WMMA),
// quantized as the CPU INT8 kernels quantize.
void addInt8TensorCoreKernels(runtime::Kernels& k);
void addJitKernels(runtime::Kernels& k);  // elementwise_jit.cpp: FusedElementwise compiled with NVRTC (gpuOnly)

}  // namespace anvil::cuda::tactics
