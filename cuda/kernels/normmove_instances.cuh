// The one list of instantiations of norm.cuh, pool.cuh and movement.cuh, walked by the device
// registry (normpool.cu, movement.cu: deviceFace) and the sim registry (sim_normmove.cpp:
// simFace), so both register the same kernels under the same names. `add` provides
// `template <auto K> void entry(std::string name)`.
#pragma once

#include <cstdint>
#include <string>

#include "cuda/kernels/movement.cuh"
#include "cuda/kernels/norm.cuh"
#include "cuda/kernels/pool.cuh"
#include "cuda/movement.h"
#include "cuda/normpool.h"

namespace anvil::cuda::kernels {

template <int kOp, typename Add>
void listReduceKernels(Add& add) {
  add.template entry<&f32_reduce_block<kNormBlock, kOp>>(reduceKernelName(static_cast<ReduceKind>(kOp), true));
  add.template entry<&f32_reduce_thread<kOp>>(reduceKernelName(static_cast<ReduceKind>(kOp), false));
}

template <typename Add>
void listNormPoolKernels(Add& add) {
  add.template entry<&f32_layernorm_row_block<kNormBlock>>(layerNormKernelName(false));
  add.template entry<&f32_layernorm_row_warp<kNormBlock>>(layerNormKernelName(true));
  add.template entry<&batchnorm_gridstride<float>>(batchNormKernelName());
  add.template entry<&f32_lpnorm_row_block<kNormBlock, 1>>(lpNormKernelName(1, true));
  add.template entry<&f32_lpnorm_row_block<kNormBlock, 2>>(lpNormKernelName(2, true));
  add.template entry<&f32_lpnorm_axis_gridstride<1>>(lpNormKernelName(1, false));
  add.template entry<&f32_lpnorm_axis_gridstride<2>>(lpNormKernelName(2, false));
  add.template entry<&f32_log_softmax_row_block<kNormBlock>>(logSoftmaxRowsKernelName());
  add.template entry<&f32_softmax_axis_gridstride<false>>(softmaxAxisKernelName(false));
  add.template entry<&f32_softmax_axis_gridstride<true>>(softmaxAxisKernelName(true));
  listReduceKernels<kReduceSum>(add);
  listReduceKernels<kReduceMean>(add);
  listReduceKernels<kReduceMax>(add);
  listReduceKernels<kReduceMin>(add);
  listReduceKernels<kReduceProd>(add);
  listReduceKernels<kReduceL1>(add);
  listReduceKernels<kReduceL2>(add);
  listReduceKernels<kReduceSumSquare>(add);
  listReduceKernels<kReduceLogSum>(add);
  listReduceKernels<kReduceLogSumExp>(add);
  add.template entry<&cumsum_gridstride<float, float>>(cumSumKernelName(4, true));
  add.template entry<&cumsum_gridstride<std::int32_t, std::int64_t>>(cumSumKernelName(4, false));
  add.template entry<&cumsum_gridstride<std::int64_t, std::int64_t>>(cumSumKernelName(8, false));
  add.template entry<&f32_argreduce_gridstride<true>>(argReduceKernelName(true));
  add.template entry<&f32_argreduce_gridstride<false>>(argReduceKernelName(false));
  add.template entry<&f32_pool2d_gridstride<true>>(pool2dKernelName(true));
  add.template entry<&f32_pool2d_gridstride<false>>(pool2dKernelName(false));
}

template <typename T, typename Add>
void listMovementKernelsOf(Add& add) {
  const int bytes = static_cast<int>(sizeof(T));
  add.template entry<&strided_copy_gridstride<T>>(stridedCopyKernelName(bytes));
  add.template entry<&tiled_transpose<T>>(tiledTransposeKernelName(bytes));
  add.template entry<&fill_gridstride<T>>(fillKernelName(bytes));
  add.template entry<&pad_index_gridstride<T>>(padIndexKernelName(bytes));
  add.template entry<&gather_gridstride<T, std::int32_t>>(gatherKernelName(bytes, false));
  add.template entry<&gather_gridstride<T, std::int64_t>>(gatherKernelName(bytes, true));
  add.template entry<&gather_nd_gridstride<T>>(gatherNDKernelName(bytes));
  add.template entry<&scatter_nd_gridstride<T>>(scatterNDKernelName(bytes));
  add.template entry<&gather_elements_gridstride<T, std::int32_t>>(gatherElementsKernelName(bytes, false));
  add.template entry<&gather_elements_gridstride<T, std::int64_t>>(gatherElementsKernelName(bytes, true));
  add.template entry<&resize_nearest_gridstride<T>>(resizeKernelName(bytes, false));
}

template <typename Add>
void listMovementKernels(Add& add) {
  listMovementKernelsOf<std::uint8_t>(add);
  listMovementKernelsOf<std::uint16_t>(add);
  listMovementKernelsOf<std::uint32_t>(add);
  listMovementKernelsOf<std::uint64_t>(add);
  add.template entry<&resize_linear_gridstride<float>>(resizeKernelName(4, true));
}

}  // namespace anvil::cuda::kernels
