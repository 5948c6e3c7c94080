// The cuDNN convolution tactics: registered gpuOnly for Conv and anvil.FusedConv, three
// heuristic ranks each; supports() takes what cudnnConvolutionBiasActivationForward computes
// as ONNX does (constant weights, static f32, symmetric pads, ReLU or no activation, a
// residual added before it) and refuses the rest; without a GPU opening one fails clearly;
// with a GPU each runs against the reference.
#include "cuda/device.h"
#include "cuda/tactics/tactics.h"
#include "tactic_test_util.h"

namespace anvil::cuda::testing {
namespace {

struct ConvNode {
  std::unique_ptr<ir::Graph> g;
  ir::Node* n = nullptr;
  std::vector<ir::Tensor> inputs;
};

// x[1,c,9,9] conv w[k,c/g,3,3] (+ bias, + residual Z) with `attrs`.
ConvNode convNode(const std::string& op, int64_t c, int64_t k, int64_t group, bool bias, bool residual,
                  bool constWeight, const ir::Attributes& attrs) {
  ConvNode r;
  r.g = std::make_unique<ir::Graph>();
  ir::Tensor x = randomTensor(DataType::kF32, {1, c, 9, 9}, 1), w = randomTensor(DataType::kF32, {k, c / group, 3, 3}, 2);
  ir::Value* xv = r.g->addValue("x", x.type());
  r.g->addInput(xv);
  ir::Value* wv = constWeight ? r.g->addInitializer("w", w) : r.g->addValue("w", w.type());
  if (!constWeight) r.g->addInput(wv);
  std::vector<ir::Value*> ins = {xv, wv};
  r.inputs = {x, w};
  ir::Value* bv = nullptr;
  if (bias || residual) {
    ir::Tensor b = randomTensor(DataType::kF32, {k}, 3);
    bv = r.g->addInitializer("b", b);
    r.inputs.push_back(b);
  }
  ins.push_back(bias || residual ? bv : nullptr);
  if (residual) {
    ir::Tensor z = randomTensor(DataType::kF32, {1, k, 9, 9}, 4);
    ir::Value* zv = r.g->addValue("z", z.type());
    r.g->addInput(zv);
    ins.push_back(zv);
    r.inputs.push_back(z);
  }
  r.n = r.g->addNode(op, op == "Conv" ? "" : "anvil", "n0", ins, {"y"});
  r.n->attrs() = attrs;
  r.n->attrs().set("group", group);
  r.g->addOutput(r.n->output(0));
  ir::inferShapes(*r.g);
  return r;
}

ir::Attributes pads(int64_t top, int64_t left, int64_t bottom, int64_t right) {
  ir::Attributes a;
  a.set("pads", std::vector<int64_t>{top, left, bottom, right});
  return a;
}

ir::Attributes fused(const std::string& act, bool residual) {
  ir::Attributes a = pads(1, 1, 1, 1);
  a.set("activation", act);
  a.set("activation_params", std::vector<float>{});
  a.set("has_residual", int64_t(residual));
  if (residual) a.set("residual_order", std::string("add_then_activate"));
  return a;
}

std::vector<ir::TensorType> typesOf(const ir::Node& n) {
  std::vector<ir::TensorType> t;
  for (const ir::Value* v : n.inputs()) t.push_back(v ? v->type() : ir::TensorType{});
  return t;
}

TEST(CudaCudnnTactic, RegisteredGpuOnlyForConvAndFusedConv) {
  for (const auto& [op, domain] : std::vector<std::pair<std::string, std::string>>{{"Conv", ""}, {"FusedConv", "anvil"}})
    for (int i = 0; i < 3; ++i) {
      const runtime::Kernel* k =
          runtime::Kernels::instance().find(Device::kCUDA, op, domain, "cudnn_heuristic_" + std::to_string(i));
      ASSERT_NE(k, nullptr) << op << " " << i;
      EXPECT_TRUE(k->gpuOnly);
    }
}

TEST(CudaCudnnTactic, ServesExactlyWhatItComputesAsOnnxDoes) {
  auto yes = [](const ConvNode& r) { return tactics::cudnnServes(*r.n, typesOf(*r.n)); };
  EXPECT_TRUE(yes(convNode("Conv", 4, 6, 1, true, false, true, pads(1, 1, 1, 1))));
  EXPECT_TRUE(yes(convNode("Conv", 4, 6, 2, false, false, true, pads(0, 0, 0, 0))));  // groups, no bias
  EXPECT_TRUE(yes(convNode("FusedConv", 4, 4, 1, true, true, true, fused("Relu", true))));
  EXPECT_TRUE(yes(convNode("FusedConv", 4, 4, 1, true, false, true, fused("", false))));
  EXPECT_FALSE(yes(convNode("Conv", 4, 6, 1, true, false, true, pads(1, 1, 0, 0))));  // asymmetric pads
  EXPECT_FALSE(yes(convNode("FusedConv", 4, 4, 1, true, false, true, fused("Sigmoid", false))));
  EXPECT_FALSE(yes(convNode("Conv", 4, 6, 1, true, false, false, pads(1, 1, 1, 1))));  // runtime weights
}

TEST(CudaCudnnTactic, OpensOnlyOnAGpuAndMatchesTheReferenceThere) {
  ConvNode r = convNode("FusedConv", 4, 8, 2, true, true, true, fused("Relu", true));
  const runtime::Kernel* k = runtime::Kernels::instance().find(Device::kCUDA, "FusedConv", "anvil", "cudnn_heuristic_0");
  ASSERT_NE(k, nullptr);
  if (deviceCount() == 0) {
    auto rt = simRuntime();
    try {
      runOnDevice(*k, *r.n, r.inputs, *rt);
      ADD_FAILURE() << "a cuDNN step opened without a GPU";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cuDNN"), std::string::npos) << e.what();
    }
    GTEST_SKIP() << "skipped the numeric check: no GPU";
  }
  auto rt = cudaRuntime(0);
  expectClose(runOnDevice(*k, *r.n, r.inputs, *rt)[0], runReference(*r.n, r.inputs)[0], 1e-4, 1e-4, "cuDNN");
}

}  // namespace
}  // namespace anvil::cuda::testing
