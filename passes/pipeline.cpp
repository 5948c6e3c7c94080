// The pass list and the driver that runs it, re-inferring shapes after each pass.
#include "passes/pipeline.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "ir/op_schema.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "passes/passes.h"

namespace anvil::passes {

const std::vector<Pass>& pipeline() {
  static const std::vector<Pass> passes = {
      {"noop-elimination", "remove Identity, inference Dropout, no-op Cast and Reshape", 1, eliminateNoops},
      {"qdq-fusion", "explicit quantization: fold weight DequantizeLinear, run Conv/Gemm/MatMul between Q/DQ in INT8", 1, fuseQdq},
      {"constant-folding", "evaluate nodes whose inputs are all constant with the reference kernels", 1, foldConstants},
      {"shape-folding", "fold Shape->Gather->Unsqueeze->Concat->Reshape chains when shapes are known or symbolic-but-equal", 2, foldShapeChains},
      {"dead-code", "remove nodes whose outputs nobody reads", 1, eliminateDeadCode},
      {"cse", "merge nodes with the same op, attributes and inputs", 2, eliminateCommonSubexpressions},
      {"transpose-cancellation", "cancel inverse Transpose pairs, sink Transposes through elementwise chains where they cancel, run depthwise Convs between channels-last Transposes as anvil.ConvNhwc, merge Reshape chains", 2, cancelTransposes},
      {"batchnorm-folding", "fold BatchNormalization into the preceding Conv/Gemm, a per-column constant Mul into the preceding MatMul", 2, foldBatchNorm},
      {"pad-folding", "fold a constant zero Pad into the following Conv's pads", 2, foldPadIntoConv},
      {"matmul-add-to-gemm", "rewrite 2-D MatMul + bias Add as Gemm", 2, fuseMatMulAdd},
      {"layernorm-fusion", "fuse the decomposed LayerNormalization exporters emit", 3, fuseLayerNorm},
      {"gelu-fusion", "fuse the erf and tanh forms of GELU", 3, fuseGelu},
      {"softmax-fusion", "fuse exp / reduce-sum / div into Softmax", 3, fuseSoftmax},
      {"attention-fusion", "fuse Q.K^T, scale, mask, softmax, .V into one Attention node", 3, fuseAttention},
      {"lstm-stack-fusion", "fuse LSTM -> Squeeze -> LSTM chains into one LSTMStack node whose layers overlap", 3, fuseLstmStacks},
      {"linear-epilogue-fusion", "fuse Conv/Gemm/MatMul + bias + activation + residual Add", 3, fuseLinearEpilogues},
      {"elementwise-fusion", "fuse chains of elementwise ops into one FusedElementwise node", 3, fuseElementwiseChains},
      {"dead-code-final", "remove what the fusions left unread", 1, eliminateDeadCode},
      // Decisions, not optimizations: every build places its nodes, whatever the level.
      {"placement", "place every node and value on the target device; default float nodes to f32 when only f32 is allowed", 0, placeAndDefaultPrecision},
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
    PassResult r = p.run(graph, options.context);
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
