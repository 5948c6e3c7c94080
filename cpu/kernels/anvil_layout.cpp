// Reference kernels of anvil.Reorder and anvil.Copy. The reference interpreter holds logical tensors only
// (it never sees a storage layout), so a Reorder is the identity there; the runtime offers
// this kernel no blocked value (runtime/kernel.h: Kernel::nchwcBlock), the native Reorder
// kernels of cpu/tactics/native_nchwc_ops.cpp move the bytes.
#include "cpu/kernels/families.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

namespace {

void reorderKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ctx.check(x.dtype() == DataType::kF32 && x.rank() == 4, "Reorder takes a rank-4 float32 tensor");
  ctx.setOutput(0, x);
}

// anvil.Copy moves a tensor between devices; the interpreter has one memory.
void copyKernel(KernelContext& ctx) { ctx.setOutput(0, ctx.input(0)); }

}  // namespace

void registerAnvilLayoutKernels(KernelRegistry& r) {
  r.add("Reorder", "anvil", reorderKernel);
  r.add("Copy", "anvil", copyKernel);
}

}  // namespace anvil::cpu::kernels
