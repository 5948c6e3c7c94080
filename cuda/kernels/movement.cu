// Device instantiations of cuda/kernels/movement.cuh (the list in normmove_instances.cuh):
// strided copy, fill and gather for elements of 1, 2, 4 and 8 bytes.
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

void addMovementDeviceKernels(std::vector<KernelEntry>& out) {
  AddDevice add{out};
  listMovementKernels(add);
}

}  // namespace anvil::cuda::kernels
