// Every pass of passes/, one line each (the file that defines it alongside), so the
// pipeline and the tests name them from one place. A pass rewrites the graph in place and
// receives the build's PassContext (passes/pass_context.h), whether it reads it or not.
#pragma once

#include "passes/pass_context.h"
#include "passes/pipeline.h"

namespace anvil::passes {

PassResult eliminateNoops(ir::Graph& g, const PassContext& ctx);  // noop_elimination.cpp
PassResult fuseQdq(ir::Graph& g, const PassContext& ctx);  // qdq_fusion.cpp
PassResult foldConstants(ir::Graph& g, const PassContext& ctx);  // constant_folding.cpp
PassResult foldShapeChains(ir::Graph& g, const PassContext& ctx);  // shape_folding.cpp
PassResult eliminateDeadCode(ir::Graph& g, const PassContext& ctx);  // dead_code.cpp
PassResult eliminateCommonSubexpressions(ir::Graph& g, const PassContext& ctx);  // cse.cpp
PassResult cancelTransposes(ir::Graph& g, const PassContext& ctx);  // transpose_cancellation.cpp
PassResult foldBatchNorm(ir::Graph& g, const PassContext& ctx);  // batchnorm_folding.cpp
PassResult foldPadIntoConv(ir::Graph& g, const PassContext& ctx);  // pad_folding.cpp
PassResult fuseMatMulAdd(ir::Graph& g, const PassContext& ctx);  // matmul_add_to_gemm.cpp
PassResult fuseLayerNorm(ir::Graph& g, const PassContext& ctx);  // layernorm_fusion.cpp
PassResult fuseGelu(ir::Graph& g, const PassContext& ctx);  // gelu_fusion.cpp
PassResult fuseSoftmax(ir::Graph& g, const PassContext& ctx);  // softmax_fusion.cpp
PassResult fuseLstmStacks(ir::Graph& g, const PassContext& ctx);  // lstm_stack_fusion.cpp
PassResult fuseAttention(ir::Graph& g, const PassContext& ctx);  // attention_fusion.cpp
PassResult fuseLinearEpilogues(ir::Graph& g, const PassContext& ctx);  // linear_epilogue_fusion.cpp
PassResult fuseElementwiseChains(ir::Graph& g, const PassContext& ctx);  // elementwise_fusion.cpp
PassResult placeAndDefaultPrecision(ir::Graph& g, const PassContext& ctx);  // placement.cpp
// Not in the optimization pipeline: the builder runs it after calibration (it reads
// ctx.calibration, gathered on the optimized graph).
PassResult assignPrecisions(ir::Graph& g, const PassContext& ctx);  // precision.cpp

}  // namespace anvil::passes
