// The linear kernels' parameters from their descriptors, shared by the SIMT launchers
// (cuda/linear.cpp) and the tensor-core ones (cuda/linear_tc.cpp): the convolutions' whole
// args (they differ only in the weights' type), the GEMMs' shape, strides and epilogue
// (their args differ in operand types and the tensor-core kernel's transpose flags).
#pragma once

#include <cstdint>

#include "cuda/kernels/linear_args.h"
#include "cuda/linear.h"

namespace anvil::cuda {

// `weight` as the kernel reads it; `act` the epilogue's activation code (-1: none); oh, ow
// the output extents the launcher checked.
template <typename W>
kernels::Conv2dArgsOf<W> conv2dArgs(const Conv2dDesc& d, const W* weight, std::int32_t act, std::int64_t oh,
                                    std::int64_t ow) {
  kernels::Conv2dArgsOf<W> a{};
  a.x = d.x;
  a.weight = weight;
  a.bias = d.bias;
  a.z = d.z;
  a.y = d.y;
  a.n = d.n, a.c = d.c, a.h = d.h, a.w = d.w;
  a.k = d.k, a.r = d.r, a.s = d.s;
  a.oh = oh, a.ow = ow;
  a.strideH = static_cast<std::int32_t>(d.strideH);
  a.strideW = static_cast<std::int32_t>(d.strideW);
  a.padTop = static_cast<std::int32_t>(d.padTop);
  a.padLeft = static_cast<std::int32_t>(d.padLeft);
  a.dilationH = static_cast<std::int32_t>(d.dilationH);
  a.dilationW = static_cast<std::int32_t>(d.dilationW);
  a.groups = d.groups;
  a.act = act;
  a.clipLo = d.clipLo, a.clipHi = d.clipHi;
  a.actAlpha = d.actAlpha, a.actBeta = d.actBeta;
  return a;
}

// Every GemmArgsOf / GemmTcArgsOf field but the five operand pointers (and the tensor-core
// kernel's transA / transB).
template <typename Args>
void setGemmShapeAndEpilogue(Args* a, const GemmDesc& d, std::int32_t act) {
  a->batch = d.batch, a->m = d.m, a->n = d.n, a->k = d.k;
  a->lda = d.lda, a->ldb = d.ldb, a->ldc = d.ldc, a->ldz = d.ldz;
  a->strideA = d.strideA, a->strideB = d.strideB, a->strideC = d.strideC, a->strideZ = d.strideZ;
  a->alpha = d.alpha, a->beta = d.beta;
  a->act = act;
  a->clipLo = d.clipLo, a->clipHi = d.clipHi;
  a->actAlpha = d.actAlpha, a->actBeta = d.actBeta;
}

}  // namespace anvil::cuda
