// See cuda_timing.h.
#include "codegen/cuda_timing.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace anvil::codegen {

namespace {

// Device allocations freed on every path out (a candidate may throw while timing).
struct DeviceBuffers {
  cuda::DeviceRuntime& rt;
  std::vector<void*> owned;
  explicit DeviceBuffers(cuda::DeviceRuntime& r) : rt(r) {}
  ~DeviceBuffers() {
    for (void* p : owned) rt.free(p);
  }
  void* allocate(size_t bytes) {
    if (!bytes) return nullptr;
    owned.push_back(rt.allocate(bytes));
    return owned.back();
  }
  void* upload(const void* src, size_t bytes) {
    void* p = allocate(bytes);
    if (p) rt.copy(p, src, bytes, cuda::CopyKind::kHostToDevice);
    return p;
  }
};

}  // namespace

double timeCudaCandidate(const runtime::Kernel& kernel, const runtime::Prepared& prepared, const ir::Node& node,
                         const std::vector<ir::Tensor>& inputs, const std::vector<ir::TensorType>& outputTypes,
                         cuda::DeviceRuntime& rt, runtime::Executor& exec, int iterations,
                         std::vector<ir::Tensor>* outputs) {
  DeviceBuffers mem(rt);
  std::vector<runtime::TensorView> ins(inputs.size()), outs(outputTypes.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!inputs[k].defined()) continue;
    ins[k].dtype = inputs[k].dtype();
    ins[k].setExtents(inputs[k].dims());
    ins[k].data = mem.upload(inputs[k].raw(), inputs[k].nbytes());
  }
  for (size_t k = 0; k < outputTypes.size(); ++k) {
    if (outputTypes[k].dtype == DataType::kUndefined) continue;
    outs[k].dtype = outputTypes[k].dtype;
    outs[k].setExtents(outputTypes[k].shape.extents());
    outs[k].data = mem.allocate(outs[k].bytes());
  }
  std::vector<runtime::Blob> blobs;
  for (const std::string& b : prepared.blobs) blobs.push_back({mem.upload(b.data(), b.size()), b.size()});
  std::unique_ptr<void, decltype(&std::free)> params(std::aligned_alloc(64, (prepared.params.size() + 64) / 64 * 64),
                                                      &std::free);
  std::memcpy(params.get(), prepared.params.data(), prepared.params.size());
  void* workspace = mem.allocate(prepared.workspaceBytes);

  // Per-context state (a loaded module, a library handle), as a context makes it.
  runtime::OpenArgs oa;
  oa.node = &node;
  std::vector<runtime::Blob> hostBlobs;
  for (const std::string& b : prepared.blobs) hostBlobs.push_back({b.data(), b.size()});
  oa.params = {params.get(), prepared.params.size()};
  oa.blobs = hostBlobs.data();
  oa.numBlobs = int(hostBlobs.size());
  oa.device = &rt;
  void* state = kernel.open ? kernel.open(oa) : nullptr;
  struct Closer {
    const runtime::Kernel& k;
    void* s;
    cuda::DeviceRuntime& rt;
    ~Closer() {
      if (s && k.close) k.close(s, &rt);
    }
  } closer{kernel, state, rt};
  const cuda::Stream stream = rt.createStream();
  const cuda::Event start = rt.createEvent(), end = rt.createEvent();
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
  a.executor = &exec;
  a.device = &rt;
  a.stream = stream.id;
  a.state = state;
  std::vector<double> times;
  try {
    kernel.run(a);  // warm-up: module loading, caches
    for (int i = 0; i < std::max(iterations, 1); ++i) {
      rt.record(start, stream);
      kernel.run(a);
      rt.record(end, stream);
      rt.synchronize(end);
      times.push_back(rt.elapsedMs(start, end));
    }
  } catch (...) {
    try {
      rt.destroyStream(stream);
    } catch (...) {
    }
    rt.destroyEvent(start);
    rt.destroyEvent(end);
    throw;
  }
  rt.destroyStream(stream);
  rt.destroyEvent(start);
  rt.destroyEvent(end);
  if (outputs) {
    outputs->clear();
    for (size_t k = 0; k < outputTypes.size(); ++k) {
      if (outputTypes[k].dtype == DataType::kUndefined) {
        outputs->emplace_back();
        continue;
      }
      ir::Tensor t(outputTypes[k].dtype, outputTypes[k].shape.extents());
      if (t.nbytes()) rt.copy(t.mutableRaw(), outs[k].data, t.nbytes(), cuda::CopyKind::kDeviceToHost);
      outputs->push_back(std::move(t));
    }
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

bool outputsAgree(const std::vector<ir::Tensor>& got, const std::vector<ir::Tensor>& want, double tolerance) {
  if (got.size() != want.size()) return false;
  for (size_t k = 0; k < got.size(); ++k) {
    const ir::Tensor& g = got[k];
    const ir::Tensor& w = want[k];
    if (g.defined() != w.defined() || (g.defined() && (g.dtype() != w.dtype() || g.dims() != w.dims()))) return false;
    if (!g.defined()) continue;
    if (g.dtype() != DataType::kF32) {
      if (std::memcmp(g.raw(), w.raw(), g.nbytes()) != 0) return false;
      continue;
    }
    double scale = 0, diff = 0;
    for (int64_t i = 0; i < w.numel(); ++i) {
      const double a = g.data<float>()[i], b = w.data<float>()[i];
      if (std::isnan(a) != std::isnan(b)) return false;
      if (std::isnan(b)) continue;
      scale = std::max(scale, std::fabs(b));
      diff = std::max(diff, std::fabs(a - b));
    }
    if (diff > tolerance * std::max(scale, 1e-30)) return false;
  }
  return true;
}

}  // namespace anvil::codegen
