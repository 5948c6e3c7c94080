// What the normalization/pooling and movement tactic tests share: a one-node graph over
// runtime inputs and initializers, and a check that a named CUDA kernel supports it and
// matches the reference interpreter on the simulated runtime.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cuda/device.h"
#include "tactic_test_util.h"

namespace anvil::cuda::testing {

// One input of the node: a runtime input with a value (name set, tensor given), an
// initializer (constant = true), or omitted (name "").
struct Arg {
  std::string name;
  ir::Tensor value;
  bool constant = false;
};
inline Arg input(const std::string& name, ir::Tensor t) { return {name, std::move(t), false}; }
inline Arg constant(const std::string& name, ir::Tensor t) { return {name, std::move(t), true}; }
inline Arg omitted() { return {}; }
inline ir::Tensor ints(const std::vector<int64_t>& v) {
  return ir::Tensor::fromVector<int64_t>(DataType::kI64, {int64_t(v.size())}, v);
}

struct OneNode {
  std::unique_ptr<ir::Graph> graph;
  std::vector<ir::Tensor> inputs;  // one per node input (placeholders for constants/omitted)
  const ir::Node& node() const { return *graph->nodes()[0]; }
};

inline OneNode oneNode(const std::string& op, const std::vector<Arg>& args, const ir::Attributes& attrs = {},
                       int outputs = 1) {
  OneNode o;
  o.graph = std::make_unique<ir::Graph>();
  std::vector<ir::Value*> vs;
  for (const Arg& a : args) {
    o.inputs.push_back(a.value);
    if (a.name.empty()) {
      vs.push_back(nullptr);
      continue;
    }
    ir::Value* v = a.constant ? o.graph->addInitializer(a.name, a.value)
                              : o.graph->addValue(a.name, {a.value.dtype(), ir::Shape::fromExtents(a.value.dims())});
    if (!a.constant) o.graph->addInput(v);
    vs.push_back(v);
  }
  std::vector<std::string> outs;
  for (int k = 0; k < outputs; ++k) outs.push_back("y" + std::to_string(k));
  ir::Node* n = o.graph->addNode(op, "", "n0", vs, outs);
  n->attrs() = attrs;
  for (ir::Value* v : n->outputs()) o.graph->addOutput(v);
  ir::inferShapes(*o.graph);
  return o;
}

// expectClose, with equal infinities (a max over nothing is -inf) counted as a match.
inline void expectSame(const ir::Tensor& got, const ir::Tensor& want, double atol, double rtol,
                       const std::string& what) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.dims(), want.dims()) << what;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double g = got.getDouble(i), w = want.getDouble(i);
    if (g == w || (std::isnan(w) && std::isnan(g))) continue;
    if (!(std::fabs(g - w) <= atol + rtol * std::fabs(w))) {
      ADD_FAILURE() << what << ": element " << i << " is " << g << ", want " << w;
      return;
    }
  }
}

inline bool supportedBy(const ir::Node& n, const std::string& kernel) {
  for (const runtime::Kernel* k : supportingKernels(n))
    if (k->name == kernel) return true;
  return false;
}

// The kernel supports the node and matches the reference on its inputs, on the sim runtime
// and, where a GPU is present, on the real one too (same bounds: the math functions of the
// device differ from the host's by a few ulps, far inside them).
inline void expectMatches(const OneNode& o, const std::string& kernel, double atol, double rtol,
                          const std::string& what) {
  const ir::Node& n = o.node();
  ASSERT_TRUE(supportedBy(n, kernel)) << kernel << " refuses " << what;
  auto rt = simRuntime();
  const std::vector<ir::Tensor> got = runOnDevice(*cudaKernel(n, kernel), n, o.inputs, *rt);
  const std::vector<ir::Tensor> want = runReference(n, o.inputs);
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    expectSame(got[i], want[i], atol, rtol, what + " output " + std::to_string(i));
  if (deviceCount() > 0) {
    auto gpu = cudaRuntime(0);
    const std::vector<ir::Tensor> onGpu = runOnDevice(*cudaKernel(n, kernel), n, o.inputs, *gpu);
    for (size_t i = 0; i < onGpu.size(); ++i)
      expectSame(onGpu[i], want[i], atol, rtol, what + " on the GPU, output " + std::to_string(i));
  }
}

}  // namespace anvil::cuda::testing
