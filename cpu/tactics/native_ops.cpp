// Native CPU kernels (runtime/kernel.h) of the op family that is neither linear nor a
// sequence: elementwise, pooling, normalization and data movement (see
// cpu/tactics/native.cpp). Each family lives in cpu/tactics/native_ops_<family>.cpp.
#include "cpu/tactics/native_ops_util.h"

namespace anvil::runtime {

void registerNativeOpKernels(Kernels& k) {
  nops::registerElementwise(k);
  nops::registerPool(k);
  nops::registerNorm(k);
  nops::registerMovement(k);
  nops::registerApprox(k);
  nops::registerResize(k);
  nops::registerRearrange(k);
  nops::registerSelect(k);
}

}  // namespace anvil::runtime
