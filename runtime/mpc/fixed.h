// The plaintext fixed-point executor (`--mode=fixed`): runs a server engine's program on
// the ring exactly as program.h defines each step, in the clear. It is the reference the
// secure run must reproduce, and the compiler calibrates through it step by step.
#pragma once

#include <vector>

#include "ir/tensor.h"
#include "runtime/mpc/program.h"
#include "runtime/mpc/ring_ops.h"

namespace anvil::mpc {

// Called after every step with the plaintext values so far (values[t] for tensor t;
// empty where not computed yet).
class StepObserver {
 public:
  virtual ~StepObserver() = default;
  virtual void onStep(const Program& program, size_t stepIndex, const std::vector<RingVec>& values) = 0;
};

// Runs one step on plaintext ring values: reads values[in] and writes values[step.output].
// kInput and kOutput do nothing here (runFixed quantizes and dequantizes).
void executeStep(const Program& program, const Step& step, std::vector<RingVec>& values);

// Quantizes `floatInputs` (graph input order, shapes as the program's inputs), runs every
// step, and returns the outputs as f32 tensors (int64 * scale). A public engine (no
// weights) is refused.
std::vector<ir::Tensor> runFixed(const Program& program, const std::vector<ir::Tensor>& floatInputs,
                                 StepObserver* observer = nullptr);
// The same, returning the outputs' ring values (what the secure run reconstructs).
std::vector<RingVec> runFixedRing(const Program& program, const std::vector<ir::Tensor>& floatInputs,
                                  StepObserver* observer = nullptr);

}  // namespace anvil::mpc
