// The epilogue row of the native linear kernels (implemented in cpu/tactics/fused_linear.cpp).
#pragma once

#include <cstdint>

#include "ir/ops/anvil_linear.h"

namespace anvil::cpu::tactics {

// y[j] = epilogue(y[j] + rowBias + bias[j]) with residual z[j] (z, bias may be null):
// rowBias is a conv's per-channel bias, bias a MatMul's per-column bias.
using EpilogueRow = void (*)(const ir::linear::Epilogue& e, float* y, const float* z, const float* bias,
                             float rowBias, int64_t n);
// The fastest row for this activation on this CPU.
EpilogueRow epilogueRow(const ir::linear::Epilogue& e);

}  // namespace anvil::cpu::tactics
