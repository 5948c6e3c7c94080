// Reference kernels of the nn op family, registered per sub-family: convolutions
// (nn_conv.cpp), matrix products (nn_matmul.cpp), pools and ROI ops (nn_pool.cpp),
// (de)quantization (nn_quant.cpp).
#include "cpu/kernels/families.h"
#include "cpu/kernels/nn_util.h"

namespace anvil::cpu::kernels {

void registerNnKernels(KernelRegistry& r) {
  nn::registerConvKernels(r);
  nn::registerMatMulKernels(r);
  nn::registerPoolKernels(r);
  nn::registerQuantKernels(r);
}

}  // namespace anvil::cpu::kernels
