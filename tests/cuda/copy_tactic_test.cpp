// anvil.Copy's CUDA tactics: bytes of every dtype go host -> device -> host unchanged
// through the simulated runtime; each direction serves only its `to`.
#include "tactic_test_util.h"

namespace anvil::cuda::testing {
namespace {

std::unique_ptr<ir::Graph> copyNode(DataType dtype, const std::vector<int64_t>& dims, const std::string& to) {
  auto g = std::make_unique<ir::Graph>();
  ir::Value* x = g->addValue("x", {dtype, ir::Shape::fromExtents(dims)});
  g->addInput(x);
  ir::Node* n = g->addNode("Copy", "anvil", "copy", {x}, {"y"});
  n->attrs().set("to", to);
  g->addOutput(n->output(0));
  ir::inferShapes(*g);
  return g;
}

// Runs one copy step by hand: its input and output live where the engine puts them.
void runCopy(const runtime::Kernel& k, const ir::Node& n, DeviceRuntime& rt, void* src, void* dst,
             const std::vector<int64_t>& dims, DataType t) {
  runtime::TensorView in, out;
  in.dtype = out.dtype = t;
  in.setExtents(dims);
  out.setExtents(dims);
  in.data = src;
  out.data = dst;
  auto exec = runtime::makeCpuExecutor(1);
  const Stream s = rt.createStream();
  runtime::StepArgs a;
  a.node = &n;
  a.inputs = &in;
  a.numInputs = 1;
  a.outputs = &out;
  a.numOutputs = 1;
  a.executor = exec.get();
  a.device = &rt;
  a.stream = s.id;
  k.run(a);
  rt.destroyStream(s);  // drains it
}

TEST(CudaCopyTactic, RoundTripsEveryDtype) {
  for (DataType t : {DataType::kF32, DataType::kF16, DataType::kI64, DataType::kU8, DataType::kBool}) {
    const std::vector<int64_t> dims = {3, 5, 7};
    const ir::Tensor x = randomTensor(t, dims, 7, 0, 2);
    auto up = copyNode(t, dims, "cuda");
    auto down = copyNode(t, dims, "cpu");
    const ir::Node& u = *up->nodes()[0];
    const ir::Node& d = *down->nodes()[0];
    ASSERT_EQ(supportingKernels(u).size(), 1u);
    EXPECT_EQ(supportingKernels(u)[0]->name, "copy_host_to_device");
    ASSERT_EQ(supportingKernels(d).size(), 1u);
    EXPECT_EQ(supportingKernels(d)[0]->name, "copy_device_to_host");
    auto rt = simRuntime();
    void* dev = rt->allocate(x.nbytes());
    ir::Tensor back(t, dims);
    runCopy(*supportingKernels(u)[0], u, *rt, const_cast<void*>(x.raw()), dev, dims, t);
    runCopy(*supportingKernels(d)[0], d, *rt, dev, back.mutableRaw(), dims, t);
    rt->free(dev);
    EXPECT_EQ(std::memcmp(back.raw(), x.raw(), x.nbytes()), 0) << ir::dtypeName(t);
  }
}

TEST(CudaCopyTactic, EmptyTensorsCopyNothing) {
  auto up = copyNode(DataType::kF32, {0, 4}, "cuda");
  const ir::Node& u = *up->nodes()[0];
  auto rt = simRuntime();
  auto y = runOnDevice(*cudaKernel(u, "copy_host_to_device"), u, {ir::Tensor(DataType::kF32, {0, 4})}, *rt);
  EXPECT_EQ(y[0].numel(), 0);
}

}  // namespace
}  // namespace anvil::cuda::testing
