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
// `outputs` (optional) receives the outputs of the last run, read back to the host.
double timeCudaCandidate(const runtime::Kernel& kernel, const runtime::Prepared& prepared, const ir::Node& node,
                         const std::vector<ir::Tensor>& inputs, const std::vector<ir::TensorType>& outputTypes,
                         cuda::DeviceRuntime& rt, runtime::Executor& exec, int iterations,
                         std::vector<ir::Tensor>* outputs = nullptr);

// Whether a candidate's f32 outputs agree with the reference candidate's: the largest
// difference within `tolerance` of the reference's largest magnitude (other dtypes: equal).
// The builder drops a GPU candidate that disagrees with our own kernel (a library or JIT
// tactic computing something else must never win by speed).
bool outputsAgree(const std::vector<ir::Tensor>& got, const std::vector<ir::Tensor>& want, double tolerance);

}  // namespace anvil::codegen
