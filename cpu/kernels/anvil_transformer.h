// The layout of one anvil.Attention run, shared by the reference kernel
// (cpu/kernels/anvil_transformer.cpp) and the fast tactic (cpu/tactics/attention.cpp):
// checks the inputs against the op's contract (ir/ops/anvil_transformer.cpp), resolves the
// numpy broadcast of the batch dims and of the mask, and allocates the output.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cpu/reference.h"

namespace anvil::cpu::kernels {

enum class AttentionMask { kNone, kAdd, kFillTrue, kFillFalse };

struct AttentionPlan {
  AttentionMask kind = AttentionMask::kNone;
  double scale = 1.0, fill = 0.0;
  int64_t batches = 1;                // product of the broadcast batch dims
  int64_t sq = 0, d = 0, sk = 0, dv = 0;
  // Per flat batch index: element offset of that batch's Q [sq,d], K [sk,d], V [sk,dv]
  // matrices, and of the mask's [sq,sk] view; mask element (b, i, j) is at
  // maskBase[b] + i * maskStepI + j * maskStepJ.
  std::vector<int64_t> qOff, kOff, vOff, maskBase;
  int64_t maskStepI = 0, maskStepJ = 0;
  const Tensor* mask = nullptr;
  Tensor* out = nullptr;  // [batch..., sq, dv], allocated
};

// Validates ctx's inputs and attributes (failing with a message naming the node) and
// allocates output 0.
AttentionPlan planAttention(KernelContext& ctx);

}  // namespace anvil::cpu::kernels
