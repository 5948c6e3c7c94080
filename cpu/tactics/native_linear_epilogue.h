// The epilogue row of the native linear kernels (implemented in cpu/tactics/fused_linear.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "ir/graph.h"
#include "ir/ops/anvil_linear.h"

namespace anvil::cpu::tactics {

// y[j] = epilogue(y[j] + rowBias + bias[j]) with residual z[j] (z, bias may be null):
// rowBias is a conv's per-channel bias, bias a MatMul's per-column bias.
using EpilogueRow = void (*)(const ir::linear::Epilogue& e, float* y, const float* z, const float* bias,
                             float rowBias, int64_t n);
// The fastest row for this activation on this CPU.
EpilogueRow epilogueRow(const ir::linear::Epilogue& e);

// Whether a fused linear node (anvil.FusedConv / FusedGemm / FusedMatMul) has valid epilogue
// attributes, with Z (input 3, f32) given exactly when has_residual is 1: the common part
// of every fused kernel's supports().
bool fusedEpilogueSupported(const ir::Node& n, const std::vector<ir::TensorType>& in);

}  // namespace anvil::cpu::tactics
