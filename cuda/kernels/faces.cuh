// The two faces of a kernel instantiation for the runtime seam (cuda/runtime.h): under nvcc
// deviceFace<&k> launches k through cudaLaunchKernel; under the host compiler simFace<&k> is
// the body each simulated thread runs. Include after the kernel's .cuh, in the .cu or the
// sim TU that instantiates it.
#pragma once

#include "cuda/arg_pack.h"
#include "cuda/kernels/compat.cuh"
#include "cuda/runtime.h"

namespace anvil::cuda::kernels {

#if defined(__CUDACC__)
template <auto K>
int deviceFace(const void* args, const LaunchShape& s, void* stream) {
  const PackOf<K>& pack = *static_cast<const PackOf<K>*>(args);
  const cudaError_t e = applyPack(
      [&](const auto&... xs) {
        // cudaLaunchKernel copies the values behind these pointers before it returns.
        void* params[] = {const_cast<void*>(static_cast<const void*>(&xs))..., nullptr};
        return cudaLaunchKernel(reinterpret_cast<const void*>(K),
                                dim3(s.grid.x, s.grid.y, s.grid.z),
                                dim3(s.block.x, s.block.y, s.block.z), params, s.sharedBytes,
                                static_cast<cudaStream_t>(stream));
      },
      pack);
  return static_cast<int>(e);
}
#else
template <auto K>
void simFace(const void* args) {
  applyPack(K, *static_cast<const PackOf<K>*>(args));
}
#endif

}  // namespace anvil::cuda::kernels
