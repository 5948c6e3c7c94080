// The NVRTC-compiled FusedElementwise kernel (f32_fused_eltwise_nvrtc, gpuOnly) in engines: a
// cross-build, or a build timed on the simulator, never takes it; the fused node keeps the
// interpreting kernel (f32_fused_eltwise_program16_block256) and such an engine runs.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "anvil/anvil.hpp"

namespace fs = std::filesystem;

namespace anvil {
namespace {

// x[3,5] -> Sigmoid -> Mul(x, .) -> Add(., x) -> y: a chain the elementwise fusion makes one
// anvil.FusedElementwise node.
std::string writeSiluModel() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("silu");
  auto value = [](onnx::ValueInfoProto* v, const char* name) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    t->mutable_shape()->add_dim()->set_dim_value(3);
    t->mutable_shape()->add_dim()->set_dim_value(5);
  };
  value(g->add_input(), "x");
  value(g->add_output(), "y");
  auto node = [&](const char* op, std::vector<std::string> in, const char* out) {
    auto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(out);
    for (auto& i : in) n->add_input(i);
    n->add_output(out);
  };
  node("Sigmoid", {"x"}, "s");
  node("Mul", {"x", "s"}, "m");
  node("Add", {"m", "x"}, "y");
  const fs::path p = fs::temp_directory_path() / "anvil_elementwise_jit_silu.onnx";
  std::ofstream f(p, std::ios::binary);
  m.SerializeToOstream(&f);
  return p.string();
}

TEST(CudaElementwiseJitEngine, CrossBuildsKeepTheInterpretingKernel) {
  const std::string model = writeSiluModel();
  for (bool onSimulator : {false, true}) {
    SCOPED_TRACE(onSimulator ? "timed on the simulator" : "cross-build");
    BuilderConfig cfg;
    cfg.device = Device::kCUDA;
    cfg.computeCapability = 90;
    cfg.timeOnSimulator = onSimulator;
    std::string bytes;
    BuildReport report;
    Status s = Builder::buildFromOnnx(model, cfg, &bytes, &report);
    ASSERT_TRUE(s.isOk()) << s.message();
    std::shared_ptr<Engine> e;
    s = Engine::fromBytes(std::move(bytes), &e);
    ASSERT_TRUE(s.isOk()) << s.message();
    int fused = 0;
    for (const LayerInfo& l : e->layers()) {
      if (l.type.find("FusedElementwise") == std::string::npos) continue;
      ++fused;
      EXPECT_EQ(l.device, "cuda") << l.name;
      EXPECT_EQ(l.tactic, "f32_fused_eltwise_program16_block256") << l.name;
    }
    EXPECT_EQ(fused, 1);

    std::unique_ptr<ExecutionContext> ctx;
    ContextOptions o;
    o.simulate = true;
    ASSERT_TRUE(e->createContext(&ctx, o).isOk());
    std::vector<float> x(15), y(15, -7);
    for (int i = 0; i < 15; ++i) x[size_t(i)] = float(i - 7) / 4;
    ASSERT_TRUE(ctx->setTensorAddress("x", x.data()).isOk());
    ASSERT_TRUE(ctx->setTensorAddress("y", y.data()).isOk());
    s = ctx->run();
    ASSERT_TRUE(s.isOk()) << s.message();
    for (int i = 0; i < 15; ++i) {
      const float v = x[size_t(i)];
      EXPECT_NEAR(y[size_t(i)], v / (1 + std::exp(-v)) + v, 1e-5) << i;
    }
  }
}

}  // namespace
}  // namespace anvil
