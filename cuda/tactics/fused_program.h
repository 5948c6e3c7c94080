// The decoding of an anvil.FusedElementwise node's `program` attribute into the instructions
// of the CUDA elementwise kernels (cuda/kernels/elementwise_args.h), shared by the tactic that
// interprets them (elementwise.cpp) and the one that compiles them with NVRTC
// (elementwise_jit.cpp), so both serve exactly the same programs with the same ops.
#pragma once

#include "cuda/kernels/elementwise_args.h"
#include "ir/graph.h"

namespace anvil::cuda::tactics {

struct FusedProgram {
  int numInputs = 0;  // registers 0..numInputs-1 are the node's inputs, in order
  int numInstrs = 0;  // instruction k writes register numInputs + k; the last is the output
  kernels::EwInstr code[kernels::kEwMaxInstrs];
};

// The node's program; false when it is malformed, longer than kEwMaxInstrs, reads more than
// kEwMaxInputs inputs (or an omitted one) or uses an op the kernels lack.
bool decodeFusedProgram(const ir::Node& n, FusedProgram* out);

}  // namespace anvil::cuda::tactics
