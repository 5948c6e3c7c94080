// Helpers the CUDA tactics share: the step's runtime and stream, and the registration
// defaults of a CUDA kernel.
#pragma once

#include <string>
#include <utility>

#include "anvil/error.h"
#include "cuda/runtime.h"
#include "runtime/kernel.h"

namespace anvil::cuda::tactics {

// The DeviceRuntime a CUDA step enqueues on (the context's: real or simulated).
inline DeviceRuntime& runtimeOf(const runtime::StepArgs& a) {
  if (!a.device) a.fail("a CUDA kernel ran without a device runtime (a CPU context ran a CUDA step)");
  return *a.device;
}
inline Stream streamOf(const runtime::StepArgs& a) { return Stream{a.stream}; }

// A CUDA kernel entry with the defaults of the backend: device kCUDA, f32, runs on every
// architecture the library is compiled for (sm_80 and newer).
inline runtime::Kernel cudaKernel(std::string name, std::string op, std::string domain = "") {
  runtime::Kernel k;
  k.name = std::move(name);
  k.device = Device::kCUDA;
  k.op = std::move(op);
  k.domain = std::move(domain);
  k.precision = DataType::kF32;
  k.requirements = {"sm_80"};
  return k;
}

}  // namespace anvil::cuda::tactics
