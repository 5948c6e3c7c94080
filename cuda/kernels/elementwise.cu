// Device instantiations of cuda/kernels/elementwise.cuh: the f32 and i64 kernels (single
// instruction or program, contiguous or strided) and Cast (9 kernels; launched through the registry by
// cuda/elementwise.cpp).
#include <vector>

#include "cuda/kernels/elementwise.cuh"
#include "cuda/kernels/faces.cuh"
#include "cuda/kernels/registry.h"

namespace anvil::cuda::kernels {
namespace {

template <auto K>
void addEntry(std::vector<KernelEntry>& out, const char* name) {
  out.push_back(KernelEntry{name, &deviceFace<K>, nullptr, sizeof(PackOf<K>)});
}

}  // namespace

void addElementwiseDeviceKernels(std::vector<KernelEntry>& out) {
  addEntry<&elementwise_f32<true, true>>(out, kEwF32ContigSingleKernel);
  addEntry<&elementwise_f32<false, true>>(out, kEwF32StridedSingleKernel);
  addEntry<&elementwise_f32<true, false>>(out, kEwF32ContigKernel);
  addEntry<&elementwise_f32<false, false>>(out, kEwF32StridedKernel);
  addEntry<&elementwise_i64<true, true>>(out, kEwI64ContigSingleKernel);
  addEntry<&elementwise_i64<false, true>>(out, kEwI64StridedSingleKernel);
  addEntry<&elementwise_i64<true, false>>(out, kEwI64ContigKernel);
  addEntry<&elementwise_i64<false, false>>(out, kEwI64StridedKernel);
  addEntry<&elementwise_cast<true>>(out, kEwCastKernel);
}

}  // namespace anvil::cuda::kernels
