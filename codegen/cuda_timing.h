// Timing a CUDA candidate of the builder: the prepared kernel runs on device buffers of a
// DeviceRuntime between events (cudaEventElapsedTime on a GPU; host time in the sim, which
// only the tests use), like the CPU candidates' median of several runs.
#pragma once

#include <vector>

#include "cuda/runtime.h"
#include "ir/graph.h"
#include "runtime/executor.h"
#include "runtime/kernel.h"

namespace anvil::codegen {

// Median milliseconds of one run of `kernel` with `prepared` on `node`: `inputs` (per node
// input and outer-scope value, undefined where absent) are uploaded once, outputs of
// `outputTypes` allocated, blobs uploaded, params kept on the host.
double timeCudaCandidate(const runtime::Kernel& kernel, const runtime::Prepared& prepared, const ir::Node& node,
                         const std::vector<ir::Tensor>& inputs, const std::vector<ir::TensorType>& outputTypes,
                         cuda::DeviceRuntime& rt, runtime::Executor& exec, int iterations);

}  // namespace anvil::codegen
