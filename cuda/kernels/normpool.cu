// Device instantiations of cuda/kernels/norm.cuh and pool.cuh (the list in
// normmove_instances.cuh): LayerNorm, the softmax forms, the reductions, the 2-D pools.
#include <vector>

#include "cuda/kernels/faces.cuh"
#include "cuda/kernels/normmove_instances.cuh"
#include "cuda/kernels/registry.h"

namespace anvil::cuda::kernels {
namespace {
struct AddDevice {
  std::vector<KernelEntry>& out;
  template <auto K>
  void entry(std::string name) {
    out.push_back(KernelEntry{std::move(name), &deviceFace<K>, nullptr, sizeof(PackOf<K>)});
  }
};
}  // namespace

void addNormPoolDeviceKernels(std::vector<KernelEntry>& out) {
  AddDevice add{out};
  listNormPoolKernels(add);
}

}  // namespace anvil::cuda::kernels
