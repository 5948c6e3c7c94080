// The sim registry's elementwise kernels: cuda/kernels/elementwise.cuh compiled by the host
// compiler against cuda/sim, under the names and instantiations of elementwise.cu.
#include <vector>

#include "cuda/kernels/elementwise.cuh"
#include "cuda/kernels/faces.cuh"
#include "cuda/kernels/registry.h"

namespace anvil::cuda::kernels {
namespace {

template <auto K>
void addEntry(std::vector<KernelEntry>& out, const char* name) {
  out.push_back(KernelEntry{name, nullptr, &simFace<K>, sizeof(PackOf<K>)});
}

}  // namespace

void addElementwiseSimKernels(std::vector<KernelEntry>& out) {
  addEntry<&elementwise_f32<true>>(out, kEwF32ContigKernel);
  addEntry<&elementwise_f32<false>>(out, kEwF32StridedKernel);
  addEntry<&elementwise_i64<true>>(out, kEwI64ContigKernel);
  addEntry<&elementwise_i64<false>>(out, kEwI64StridedKernel);
  addEntry<&elementwise_cast<true>>(out, kEwCastKernel);
}

}  // namespace anvil::cuda::kernels
