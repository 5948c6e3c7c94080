// The op families; each registers its ops' schemas (arity, traits, inference).
// Adding a family: one function here and one entry in kFamilies.
#pragma once

namespace anvil::ir {
class OpRegistry;
namespace ops {

void registerElementwiseOps(OpRegistry& r);  // ir/ops/elementwise.cpp: math, logic, activations, Cast
void registerReduceOps(OpRegistry& r);       // ir/ops/reduce.cpp: Reduce*, ArgMax, Softmax, norms, Einsum
void registerNnOps(OpRegistry& r);           // ir/ops/nn.cpp: Conv, pools, Gemm, MatMul, quantization
void registerTensorOps(OpRegistry& r);       // ir/ops/tensor.cpp: shape and data movement
void registerControlOps(OpRegistry& r);      // ir/ops/control.cpp: If, Loop, Scan, RNNs, signal, misc
void registerAnvilOps(OpRegistry& r);        // ir/ops/anvil.cpp: anvil-domain fused/lowered ops

inline constexpr void (*kFamilies[])(OpRegistry&) = {
    registerElementwiseOps, registerReduceOps, registerNnOps,
    registerTensorOps,      registerControlOps, registerAnvilOps,
};

}  // namespace ops
}  // namespace anvil::ir
