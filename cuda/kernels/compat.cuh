// What a kernel .cuh includes first: the real CUDA headers under nvcc, the host SIMT shim
// (cuda/sim/sim.h) under a host compiler, and the few spellings that differ between them.
#pragma once

#include <cuda_bf16.h>  // host-compilable too: conversions work under g++

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>  // nvcuda::wmma (sm_70+)
// Dynamic shared memory, sized by the launch: `ANVIL_EXTERN_SHARED(float, smem);`
#define ANVIL_EXTERN_SHARED(type, name) extern __shared__ __align__(16) type name[]
#define ANVIL_UNROLL _Pragma("unroll")
#else
#include "cuda/sim/sim.h"
#include "cuda/sim/wmma.h"  // the wmma subset the tensor-core kernels use
#define ANVIL_EXTERN_SHARED(type, name) \
  type* name = static_cast<type*>(::anvil::cuda::sim::dynamicSharedMemory())
#define ANVIL_UNROLL
#endif

namespace anvil::cuda::kernels {

inline constexpr unsigned kFullWarpMask = 0xffffffffu;

// Kernels compute in f32 and store in the element type; both conversions exist on the host
// (cuda_fp16.h) and on the device.
__device__ __forceinline__ float toFloat(float x) { return x; }
__device__ __forceinline__ float toFloat(__half x) { return __half2float(x); }
__device__ __forceinline__ float toFloat(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T fromFloat(float x);
template <>
__device__ __forceinline__ float fromFloat<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __half fromFloat<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

}  // namespace anvil::cuda::kernels
