// The epilogue row of the native linear kernels (implemented in cpu/tactics/fused_linear.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "ir/graph.h"
#include "ir/ops/anvil_linear.h"
#include "runtime/kernel.h"

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

// The epilogue of a fused linear node, for prepare(): a bad attribute is a kInvalidModel
// error naming the node.
ir::linear::Epilogue readFusedEpilogue(const ir::Node& n);

// Gemm's C (input 2) as a view broadcast over [M, N]: element (i, j) at
// data[i * rowStride + j * colStride] (strides 0 along broadcast axes); data is null when C
// is absent. Fails the step when C has rank > 2 or does not broadcast. Shared by the f32,
// FP16/BF16 and INT8 Gemm kernels.
struct GemmC {
  const float* data = nullptr;
  int64_t rowStride = 0, colStride = 0;
};
GemmC gemmCOf(const runtime::StepArgs& a, int64_t M, int64_t N);
// Whether beta * C is the usual Gemm bias, one value per column added as it is (beta 1): a
// kernel may then add it as its epilogue's column bias, with the same bits as adding C
// first ((y + c) + 0 and (y + 0) + c agree for every y and c).
inline bool gemmCIsColumnBias(const GemmC& c, float beta) {
  return c.data && c.rowStride == 0 && c.colStride == 1 && beta == 1.0f;
}

// The epilogue as prepared params: ir::linear::Epilogue without its padding bytes (the
// params blob must hold the same bytes for the same build).
struct EpilogueParams {
  int32_t act = 0;
  float p0 = 0.0f, p1 = 0.0f;
  int32_t residual = 0, addFirst = 1;
  static EpilogueParams of(const ir::linear::Epilogue& e) {
    return {int32_t(e.act), e.p0, e.p1, e.residual ? 1 : 0, e.addFirst ? 1 : 0};
  }
  ir::linear::Epilogue get() const {
    ir::linear::Epilogue e;
    e.act = ir::linear::Activation(act);
    e.p0 = p0;
    e.p1 = p1;
    e.residual = residual != 0;
    e.addFirst = addFirst != 0;
    return e;
  }
};
static_assert(sizeof(EpilogueParams) == 20, "EpilogueParams must have no padding bytes");

}  // namespace anvil::cpu::tactics
