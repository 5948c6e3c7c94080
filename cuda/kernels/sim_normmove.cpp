// The sim registry's share of norm.cuh, pool.cuh and movement.cuh: the same list as
// normpool.cu and movement.cu (normmove_instances.cuh), compiled by the host compiler.
#include <vector>

#include "cuda/kernels/faces.cuh"
#include "cuda/kernels/normmove_instances.cuh"
#include "cuda/kernels/registry.h"

namespace anvil::cuda::kernels {
namespace {
struct AddSim {
  std::vector<KernelEntry>& out;
  template <auto K>
  void entry(std::string name) {
    out.push_back(KernelEntry{std::move(name), nullptr, &simFace<K>, sizeof(PackOf<K>)});
  }
};
}  // namespace

void addNormMoveSimKernels(std::vector<KernelEntry>& out) {
  AddSim add{out};
  listNormPoolKernels(add);
  listMovementKernels(add);
}

}  // namespace anvil::cuda::kernels
