// Reference kernels of the elementwise family.
#include <algorithm>

#include "cpu/dispatch.h"
#include "cpu/kernels/families.h"
#include "cpu/kernels/util.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

void registerElementwiseKernels(KernelRegistry& r) {
  r.add("Add", [](KernelContext& ctx) {
    const Tensor& a = ctx.input(0);
    dispatchNumeric(a.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      using C = ComputeT<T>;
      binaryBroadcast<T, T>(ctx, [](T x, T y) { return T(C(x) + C(y)); });
    });
  });
  r.add("Relu", [](KernelContext& ctx) {
    dispatchNumeric(ctx.input(0).dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      using C = ComputeT<T>;
      unaryMap<T, T>(ctx, [](T x) { return C(x) > C(0) ? x : T(C(0)); });
    });
  });
}

}  // namespace anvil::cpu::kernels
