// The pass list and the driver that runs it, re-inferring shapes after each pass.
#include "passes/pipeline.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "ir/op_schema.h"
#include "ir/printer.h"
#include "ir/verifier.h"

namespace anvil::passes {

PassResult eliminateNoops(ir::Graph& g);  // passes/noop_elimination.cpp
PassResult foldConstants(ir::Graph& g);  // passes/constant_folding.cpp
PassResult foldShapeChains(ir::Graph& g);  // passes/shape_folding.cpp
PassResult eliminateDeadCode(ir::Graph& g);  // passes/dead_code.cpp
PassResult eliminateCommonSubexpressions(ir::Graph& g);  // passes/cse.cpp
PassResult cancelTransposes(ir::Graph& g);  // passes/transpose_cancellation.cpp
PassResult foldBatchNorm(ir::Graph& g);  // passes/batchnorm_folding.cpp
PassResult foldPadIntoConv(ir::Graph& g);  // passes/pad_folding.cpp
PassResult fuseMatMulAdd(ir::Graph& g);  // passes/matmul_add_to_gemm.cpp
PassResult fuseLayerNorm(ir::Graph& g);  // passes/layernorm_fusion.cpp
PassResult fuseGelu(ir::Graph& g);  // passes/gelu_fusion.cpp
PassResult fuseSoftmax(ir::Graph& g);  // passes/softmax_fusion.cpp
PassResult fuseAttention(ir::Graph& g);  // passes/attention_fusion.cpp
PassResult fuseLinearEpilogues(ir::Graph& g);  // passes/linear_epilogue_fusion.cpp
PassResult fuseElementwiseChains(ir::Graph& g);  // passes/elementwise_fusion.cpp

const std::vector<Pass>& pipeline() {
  static const std::vector<Pass> passes = {
      {"noop-elimination", "remove Identity, inference Dropout, no-op Cast and Reshape", 1, eliminateNoops},
      {"constant-folding", "evaluate nodes whose inputs are all constant with the reference kernels", 1, foldConstants},
      {"shape-folding", "fold Shape->Gather->Unsqueeze->Concat->Reshape chains when shapes are known or symbolic-but-equal", 2, foldShapeChains},
      {"dead-code", "remove nodes whose outputs nobody reads", 1, eliminateDeadCode},
      {"cse", "merge nodes with the same op, attributes and inputs", 2, eliminateCommonSubexpressions},
      {"transpose-cancellation", "cancel inverse Transpose pairs and merge Reshape chains", 2, cancelTransposes},
      {"batchnorm-folding", "fold BatchNormalization into the preceding Conv/Gemm", 2, foldBatchNorm},
      {"pad-folding", "fold a constant zero Pad into the following Conv's pads", 2, foldPadIntoConv},
      {"matmul-add-to-gemm", "rewrite 2-D MatMul + bias Add as Gemm", 2, fuseMatMulAdd},
      {"layernorm-fusion", "fuse the decomposed LayerNormalization exporters emit", 3, fuseLayerNorm},
      {"gelu-fusion", "fuse the erf and tanh forms of GELU", 3, fuseGelu},
      {"softmax-fusion", "fuse exp / reduce-sum / div into Softmax", 3, fuseSoftmax},
      {"attention-fusion", "fuse Q.K^T, scale, mask, softmax, .V into one Attention node", 3, fuseAttention},
      {"linear-epilogue-fusion", "fuse Conv/Gemm/MatMul + bias + activation + residual Add", 3, fuseLinearEpilogues},
      {"elementwise-fusion", "fuse chains of elementwise ops into one FusedElementwise node", 3, fuseElementwiseChains},
      {"dead-code-final", "remove what the fusions left unread", 1, eliminateDeadCode},
  };
  return passes;
}

std::vector<std::string> optimize(ir::Graph& graph, int level, const OptimizeOptions& options) {
  std::vector<std::string> log;
  int step = 0;
  auto dump = [&](const std::string& name) {
    if (options.dumpDir.empty()) return;
    std::filesystem::create_directories(options.dumpDir);
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%02d_", step++);
    std::ofstream f(std::filesystem::path(options.dumpDir) / (prefix + name + ".ir"));
    f << ir::printGraph(graph);
  };
  dump("input");
  for (const Pass& p : pipeline()) {
    if (level < p.minLevel) continue;
    const size_t before = graph.nodes().size();
    PassResult r = p.run(graph);
    ir::inferShapes(graph);
    if (options.verify) {
      try {
        ir::verify(graph);
      } catch (const Error& e) {
        ANVIL_THROW(ErrorCode::kInternal, "pass '", p.name, "' left an invalid graph: ", e.what());
      }
    }
    dump(p.name);
    log.push_back(p.name + ": " + std::to_string(before) + " -> " + std::to_string(graph.nodes().size()) +
                  " nodes, " + std::to_string(r.changed) + " changed" + (r.stats.empty() ? "" : ", " + r.stats));
  }
  return log;
}

}  // namespace anvil::passes
