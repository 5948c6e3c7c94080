// Native CPU kernels (runtime/kernel.h) of the sequence family: anvil.Attention
// (native_sequence_attention.cpp), anvil.FusedElementwise (native_sequence_elementwise.cpp)
// and the recurrent layers (native_sequence_rnn.cpp); see cpu/tactics/native.cpp.
#include "cpu/tactics/native_sequence_util.h"

namespace anvil::runtime {

void registerNativeSequenceKernels(Kernels& k) {
  seq::registerAttentionKernels(k);
  seq::registerFusedElementwiseKernels(k);
  seq::registerRecurrentKernels(k);
}

}  // namespace anvil::runtime
