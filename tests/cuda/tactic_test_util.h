// The harness the CUDA tactic tests share: runs one registry kernel (device kCUDA) on one IR
// node through the contract of runtime/kernel.h on the simulated device runtime — prepare()
// on the host, inputs and prepared blobs uploaded to sim device memory (inputs the kernel
// packed are uploaded as NaN: run() must read its blobs), params as host bytes, a device
// workspace, per-context state from open() (closed after the run), outputs read back after
// the stream drains — and compares with the reference
// interpreter's kernel for the same node.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <algorithm>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cpu/reference.h"
#include "cuda/runtime.h"
#include "ir/graph.h"
#include "ir/op_schema.h"
#include "runtime/executor.h"
#include "runtime/kernel.h"

namespace anvil::cuda::testing {

// The CUDA kernel `name` of the registry for `node`'s op, or a test failure.
inline const runtime::Kernel* cudaKernel(const ir::Node& node, const std::string& name) {
  const runtime::Kernel* k = runtime::Kernels::instance().find(Device::kCUDA, node.op(), node.domain(), name);
  EXPECT_NE(k, nullptr) << "no CUDA kernel '" << name << "' for " << node.label();
  return k;
}

// The CUDA kernels of the registry whose supports() accept `node` at its inputs' types:
// those a cross-build may choose (gpuOnly library tactics only with `gpuOnly`).
inline std::vector<const runtime::Kernel*> supportingKernels(const ir::Node& node, bool gpuOnly = false) {
  std::vector<ir::TensorType> types;
  for (const ir::Value* v : node.inputs()) types.push_back(v ? v->type() : ir::TensorType{});
  std::vector<const runtime::Kernel*> out;
  for (const runtime::Kernel* k : runtime::Kernels::instance().forNode(Device::kCUDA, node))
    if ((gpuOnly || !k->gpuOnly) && (!k->supports || k->supports(node, types))) out.push_back(k);
  return out;
}

// Runs `kernel` on `node` with `inputs` (one per node input, undefined where omitted;
// constants are the node's initializers and are taken from the graph) on `rt`, and
// returns the node's outputs. Extents come from the node's inferred output types.
inline std::vector<ir::Tensor> runOnDevice(const runtime::Kernel& kernel, const ir::Node& node,
                                           const std::vector<ir::Tensor>& inputs, DeviceRuntime& rt) {
  std::vector<ir::TensorType> types;
  runtime::PrepareInfo info;
  info.node = &node;
  for (size_t i = 0; i < node.numInputs(); ++i) {
    const ir::Value* v = node.input(i);
    types.push_back(v ? v->type() : ir::TensorType{});
    info.constants.push_back(v && v->isInitializer() ? v->initializer() : nullptr);
  }
  info.minTypes = info.optTypes = info.maxTypes = types;
  for (const ir::Value* v : node.outputs()) info.maxOutputTypes.push_back(v->type());
  if (kernel.supports && !kernel.supports(node, types))
    ADD_FAILURE() << kernel.name << " does not support " << node.label();
  runtime::Prepared prepared;
  if (kernel.prepare) kernel.prepare(info, &prepared);

  std::vector<void*> owned;
  auto upload = [&](const void* src, size_t bytes) -> void* {
    if (bytes == 0) return nullptr;
    void* p = rt.allocate(bytes);
    owned.push_back(p);
    rt.copy(p, src, bytes, CopyKind::kHostToDevice);
    return p;
  };
  std::vector<runtime::TensorView> ins(node.numInputs()), outs(node.numOutputs());
  for (size_t i = 0; i < node.numInputs(); ++i) {
    const ir::Value* v = node.input(i);
    if (!v) continue;
    const ir::Tensor& t = v->isInitializer() ? *v->initializer() : inputs.at(i);
    runtime::TensorView& tv = ins[i];
    tv.dtype = t.dtype();
    tv.setExtents(t.dims());
    const bool packed = std::find(prepared.packedInputs.begin(), prepared.packedInputs.end(), int(i)) !=
                        prepared.packedInputs.end();
    if (packed && t.dtype() == DataType::kF32) {
      std::vector<float> nan(size_t(t.numel()), std::numeric_limits<float>::quiet_NaN());
      tv.data = upload(nan.data(), nan.size() * sizeof(float));
    } else {
      tv.data = upload(t.raw(), t.nbytes());
    }
  }
  std::vector<ir::Tensor> results;
  for (size_t k = 0; k < node.numOutputs(); ++k) {
    const ir::Value* v = node.output(k);
    results.emplace_back(v->dtype(), v->shape().extents());
    runtime::TensorView& tv = outs[k];
    tv.dtype = v->dtype();
    tv.setExtents(v->shape().extents());
    if (tv.bytes()) {
      tv.data = rt.allocate(tv.bytes());
      owned.push_back(tv.data);
    }
  }
  std::vector<runtime::Blob> blobs;
  for (const std::string& b : prepared.blobs) blobs.push_back({upload(b.data(), b.size()), b.size()});
  // Params are host bytes, 64-byte aligned as in an engine.
  std::unique_ptr<void, decltype(&std::free)> params(
      std::aligned_alloc(64, (prepared.params.size() + 64) / 64 * 64), &std::free);
  std::memcpy(params.get(), prepared.params.data(), prepared.params.size());
  void* workspace = prepared.workspaceBytes ? rt.allocate(prepared.workspaceBytes) : nullptr;
  if (workspace) owned.push_back(workspace);

  // Per-context state, as a context makes it (open() sees the host blobs).
  std::vector<runtime::Blob> hostBlobs;
  for (const std::string& b : prepared.blobs) hostBlobs.push_back({b.data(), b.size()});
  runtime::OpenArgs oa;
  oa.node = &node;
  oa.params = {params.get(), prepared.params.size()};
  oa.blobs = hostBlobs.data();
  oa.numBlobs = int(hostBlobs.size());
  oa.device = &rt;
  void* state = kernel.open ? kernel.open(oa) : nullptr;

  std::unique_ptr<runtime::Executor> exec = runtime::makeCpuExecutor(1);
  const Stream stream = rt.createStream();
  runtime::StepArgs a;
  a.node = &node;
  a.inputs = ins.data();
  a.numInputs = int(ins.size());
  a.outputs = outs.data();
  a.numOutputs = int(outs.size());
  a.params = {params.get(), prepared.params.size()};
  a.blobs = blobs.data();
  a.numBlobs = int(blobs.size());
  a.workspace = workspace;
  a.workspaceBytes = prepared.workspaceBytes;
  a.executor = exec.get();
  a.device = &rt;
  a.stream = stream.id;
  a.state = state;
  kernel.run(a);
  rt.synchronize(stream);
  rt.destroyStream(stream);
  if (state && kernel.close) kernel.close(state, &rt);
  for (size_t k = 0; k < outs.size(); ++k)
    if (outs[k].bytes()) rt.copy(results[k].mutableRaw(), outs[k].data, outs[k].bytes(), CopyKind::kDeviceToHost);
  for (void* p : owned) rt.free(p);
  return results;
}

// The reference interpreter's outputs for `node` on `inputs` (constants from the graph).
inline std::vector<ir::Tensor> runReference(const ir::Node& node, const std::vector<ir::Tensor>& inputs) {
  std::vector<const ir::Tensor*> in;
  for (size_t i = 0; i < node.numInputs(); ++i) {
    const ir::Value* v = node.input(i);
    in.push_back(!v ? nullptr : v->isInitializer() ? v->initializer() : &inputs.at(i));
  }
  return cpu::Interpreter::runNode(node, in);
}

// |got - want| <= atol + rtol * |want| elementwise (NaN matches NaN), over any float or
// integer dtype; reports the first bad element.
inline void expectClose(const ir::Tensor& got, const ir::Tensor& want, double atol, double rtol,
                        const std::string& what) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.dims(), want.dims()) << what;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double g = got.getDouble(i), w = want.getDouble(i);
    if (std::isnan(w) && std::isnan(g)) continue;
    if (!(std::fabs(g - w) <= atol + rtol * std::fabs(w))) {
      ADD_FAILURE() << what << ": element " << i << " is " << g << ", want " << w;
      return;
    }
  }
}

// Seeded uniform values in [lo, hi) for float tensors, small integers for integer ones.
inline ir::Tensor randomTensor(DataType dtype, const std::vector<int64_t>& dims, uint32_t seed, double lo = -1,
                               double hi = 1) {
  ir::Tensor t(dtype, dims);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.setDouble(i, ir::isFloat(dtype) ? d(rng) : std::floor(d(rng)));
  return t;
}

}  // namespace anvil::cuda::testing
