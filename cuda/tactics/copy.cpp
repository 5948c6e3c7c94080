// anvil.Copy on the CUDA backend: the copies the builder's placement inserts where a value
// crosses between the host and the device. Both directions are one asynchronous copy on the
// step's stream; the runtime orders host steps after them (runtime/engine.cpp).
#include "cuda/tactics/tactic_util.h"
#include "cuda/tactics/tactics.h"

namespace anvil::cuda::tactics {

namespace {

void addCopy(runtime::Kernels& k, const char* name, const char* to, CopyKind kind) {
  runtime::Kernel c = cudaKernel(name, "Copy", "anvil");
  c.precision = DataType::kUndefined;  // moves bytes of any type
  c.supports = [to](const ir::Node& n, const std::vector<ir::TensorType>& types) {
    return n.attrs().getString("to", "") == to && !types.empty() && types[0].dtype != DataType::kString &&
           types[0].dtype != DataType::kUndefined;
  };
  c.run = [kind](const runtime::StepArgs& a) {
    const runtime::TensorView& x = a.in(0);
    runtime::TensorView& y = a.out(0);
    if (x.bytes() != y.bytes()) a.fail("copy of " + std::to_string(x.bytes()) + " bytes into " + std::to_string(y.bytes()));
    if (x.bytes()) runtimeOf(a).copyAsync(y.data, x.data, x.bytes(), kind, streamOf(a));
  };
  k.add(std::move(c));
}

}  // namespace

void addCopyKernels(runtime::Kernels& k) {
  addCopy(k, "copy_host_to_device", "cuda", CopyKind::kHostToDevice);
  addCopy(k, "copy_device_to_host", "cpu", CopyKind::kDeviceToHost);
}

}  // namespace anvil::cuda::tactics
