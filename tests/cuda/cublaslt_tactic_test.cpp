// The cuBLASLt tactics: registered gpuOnly for the four GEMM ops, four heuristic ranks each;
// supports() takes exactly the problems cuBLASLt runs as ONNX does (constant 2-D weight,
// static f32, bias [N], ReLU) and refuses the rest; without a GPU opening one fails with a
// clear error (the builder never offers them there); with a GPU each runs against the reference.
#include "cuda/device.h"
#include "cuda/tactics/tactics.h"
#include "tactic_test_util.h"

namespace anvil::cuda::testing {
namespace {

struct Node {
  std::unique_ptr<ir::Graph> g;
  ir::Node* n = nullptr;
  std::vector<ir::Tensor> inputs;  // per node input (runtime ones; constants from the graph)
};

// op(A[a] x W[w] (+ bias[n])) with W constant; attrs for the fused epilogue or Gemm.
Node gemmNode(const std::string& op, const std::string& domain, const std::vector<int64_t>& a,
              const std::vector<int64_t>& w, bool bias, bool constWeight, const ir::Attributes& attrs) {
  Node r;
  r.g = std::make_unique<ir::Graph>();
  ir::Tensor at = randomTensor(DataType::kF32, a, 1), wt = randomTensor(DataType::kF32, w, 2);
  ir::Value* av = r.g->addValue("a", at.type());
  r.g->addInput(av);
  ir::Value* wv = constWeight ? r.g->addInitializer("w", wt) : r.g->addValue("w", wt.type());
  if (!constWeight) r.g->addInput(wv);
  std::vector<ir::Value*> ins = {av, wv};
  r.inputs = {at, wt};
  if (bias) {
    const int64_t n = attrs.getInt("transB", 0) ? w[0] : w[1];
    ir::Tensor bt = randomTensor(DataType::kF32, {n}, 3);
    ins.push_back(r.g->addInitializer("bias", bt));
    r.inputs.push_back(bt);
  }
  r.n = r.g->addNode(op, domain, "n0", ins, {"y"});
  r.n->attrs() = attrs;
  r.g->addOutput(r.n->output(0));
  ir::inferShapes(*r.g);
  return r;
}

std::vector<ir::TensorType> typesOf(const ir::Node& n) {
  std::vector<ir::TensorType> t;
  for (const ir::Value* v : n.inputs()) t.push_back(v ? v->type() : ir::TensorType{});
  return t;
}

ir::Attributes epilogue(const std::string& act) {
  ir::Attributes a;
  a.set("activation", act);
  a.set("activation_params", std::vector<float>{});
  a.set("has_residual", int64_t(0));
  return a;
}

TEST(CudaCublasLtTactic, RegisteredGpuOnlyForEveryGemmOp) {
  for (const auto& [op, domain] : std::vector<std::pair<std::string, std::string>>{
           {"MatMul", ""}, {"FusedMatMul", "anvil"}, {"Gemm", ""}, {"FusedGemm", "anvil"}})
    for (int i = 0; i < 4; ++i) {
      const runtime::Kernel* k =
          runtime::Kernels::instance().find(Device::kCUDA, op, domain, "cublaslt_heuristic_" + std::to_string(i));
      ASSERT_NE(k, nullptr) << op << " " << i;
      EXPECT_TRUE(k->gpuOnly);
      EXPECT_TRUE(k->open && k->close && k->prepare);
    }
}

TEST(CudaCublasLtTactic, ServesExactlyWhatItComputesAsOnnxDoes) {
  auto yes = [](const Node& r) { return tactics::cublasLtServes(*r.n, typesOf(*r.n)); };
  EXPECT_TRUE(yes(gemmNode("MatMul", "", {2, 3, 8}, {8, 5}, false, true, {})));
  EXPECT_TRUE(yes(gemmNode("FusedMatMul", "anvil", {7, 8}, {8, 5}, true, true, epilogue("Relu"))));
  EXPECT_TRUE(yes(gemmNode("FusedMatMul", "anvil", {7, 8}, {8, 5}, true, true, epilogue(""))));
  ir::Attributes tb;
  tb.set("transB", int64_t(1));
  EXPECT_TRUE(yes(gemmNode("Gemm", "", {4, 8}, {5, 8}, true, true, tb)));
  // cuBLASLt's GELU is the tanh form; ONNX's Gelu is erf: refused.
  EXPECT_FALSE(yes(gemmNode("FusedMatMul", "anvil", {7, 8}, {8, 5}, true, true, epilogue("Gelu"))));
  EXPECT_FALSE(yes(gemmNode("MatMul", "", {7, 8}, {8, 5}, false, false, {})));  // runtime weights
  ir::Attributes ta;
  ta.set("transA", int64_t(1));
  EXPECT_FALSE(yes(gemmNode("Gemm", "", {8, 4}, {8, 5}, false, true, ta)));
  ir::Attributes beta;
  beta.set("beta", 0.5f);
  EXPECT_FALSE(yes(gemmNode("Gemm", "", {4, 8}, {8, 5}, true, true, beta)));
}

TEST(CudaCublasLtTactic, OpensOnlyOnAGpuAndMatchesTheReferenceThere) {
  Node r = gemmNode("FusedMatMul", "anvil", {3, 7, 33}, {33, 17}, true, true, epilogue("Relu"));
  const runtime::Kernel* k = runtime::Kernels::instance().find(Device::kCUDA, "FusedMatMul", "anvil",
                                                                "cublaslt_heuristic_0");
  ASSERT_NE(k, nullptr);
  if (deviceCount() == 0) {
    auto rt = simRuntime();
    try {
      runOnDevice(*k, *r.n, r.inputs, *rt);
      ADD_FAILURE() << "a cuBLASLt step opened without a GPU";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cuBLASLt"), std::string::npos) << e.what();
    }
    GTEST_SKIP() << "skipped the numeric check: no GPU";
  }
  auto rt = cudaRuntime(0);
  expectClose(runOnDevice(*k, *r.n, r.inputs, *rt)[0], runReference(*r.n, r.inputs)[0], 1e-4, 1e-4, "cuBLASLt");
}

}  // namespace
}  // namespace anvil::cuda::testing
