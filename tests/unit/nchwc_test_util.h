// The blocked-layout (NCHW<b>c, cpu/tactics/nchwc.h) helpers the blocked kernels' op tests
// share: plain [N, C, H, W] <-> [N][ceil(C/b)][H][W][b] storage (padding lanes zero), the
// padding-lane check, and BlockedStep, which runs a kernel through the contract on inputs
// handed over blocked, row-major or as NaNs (packed at prepare), with its output between
// sentinel guards and a guarded workspace (the harness of native_kernel_test_util.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/tactics/nchwc.h"
#include "native_kernel_test_util.h"
#include "runtime/kernel.h"

namespace anvil::testing::nk {

// Plain [N, C, H, W] to [N][ceil(C/b)][H][W][b], padding lanes zero.
inline std::vector<float> toBlocked(const float* x, const Dims& d, int b) {
  const int64_t N = d[0], C = d[1], HW = d[2] * d[3], CB = cpu::nchwc::channelBlocks(C, b);
  std::vector<float> out(size_t(cpu::nchwc::storageFloats(N, C, d[2], d[3], b)), 0.0f);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t p = 0; p < HW; ++p) out[size_t(((n * CB + c / b) * HW + p) * b + c % b)] = x[(n * C + c) * HW + p];
  return out;
}
inline std::vector<float> toBlocked(const Tensor& t, int b) { return toBlocked(t.data<float>(), t.dims(), b); }

// Blocked storage of logical dims d back to plain [N, C, H, W].
inline std::vector<float> fromBlocked(const float* y, const Dims& d, int b) {
  const int64_t N = d[0], C = d[1], HW = d[2] * d[3], CB = cpu::nchwc::channelBlocks(C, b);
  std::vector<float> out(size_t(N * C * HW));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t p = 0; p < HW; ++p) out[size_t((n * C + c) * HW + p)] = y[((n * CB + c / b) * HW + p) * b + c % b];
  return out;
}

// Whether every padding lane of blocked y is +0.0f (bit pattern 0, so -0.0f fails).
inline bool paddingLanesZero(const float* y, const Dims& d, int b) {
  const int64_t N = d[0], C = d[1], HW = d[2] * d[3], CB = cpu::nchwc::channelBlocks(C, b);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t p = 0; p < HW; ++p)
      for (int64_t c = C; c < CB * b; ++c) {
        uint32_t bits;
        std::memcpy(&bits, y + ((n * CB + CB - 1) * HW + p) * b + c % b, 4);
        if (bits != 0) return false;
      }
  return true;
}

// How a BlockedStep hands an input to run().
enum class Handover {
  kRowMajor,  // a copy of the plain tensor
  kBlocked,   // converted to NCHW<b>c storage, padding lanes zero
  kNaN,       // NaNs: the kernel packed it at prepare, so run() must read its blob instead
};

// kNaN where the kernel listed input i as packed at prepare, else `otherwise`.
inline Handover packedOr(const PreparedKernel& pk, size_t i, Handover otherwise) {
  const auto& packed = pk.prepared.packedInputs;
  return std::find(packed.begin(), packed.end(), int(i)) != packed.end() ? Handover::kNaN : otherwise;
}

struct BlockedResult {
  std::vector<float> out;      // the output converted to plain [N, C, H, W]
  std::vector<float> storage;  // the output's storage as the kernel wrote it
  bool paddingZero = true, guardsIntact = true, workspaceIntact = true;
};

// A step ready to run: each input handed over as `how` says (missing entries: row-major; an
// undefined input stays an empty view), the output of logical dims outDims in NCHW<block>c
// storage (out = kBlocked) or row-major (kRowMajor) between sentinel guards, a workspace with
// a sentinel tail.
class BlockedStep {
 public:
  // alignedOut: the output starts on a 64-byte boundary (as in an engine's arena; the timing
  // runs use it), else at an odd offset (the correctness runs: no kernel may assume it).
  BlockedStep(const runtime::Kernel& k, const PreparedKernel& pk, const Built& b, const std::vector<Handover>& how,
              const Dims& outDims, int block, Handover out = Handover::kBlocked, bool alignedOut = false)
      : k_(k), block_(out == Handover::kBlocked ? block : 0), outDims_(outDims), store_(b.tensors.size()),
        in_(b.tensors.size()), ws_(size_t(pk.prepared.workspaceBytes)) {
    for (size_t i = 0; i < b.tensors.size(); ++i) {
      const Tensor& t = b.tensors[i];
      if (!t.defined()) continue;
      const Handover h = i < how.size() ? how[i] : Handover::kRowMajor;
      if (h == Handover::kBlocked) store_[i] = toBlocked(t, block);
      else if (h == Handover::kNaN) store_[i].assign(size_t(t.numel()), std::numeric_limits<float>::quiet_NaN());
      else store_[i].assign(t.data<float>(), t.data<float>() + t.numel());
      in_[i].data = store_[i].data();
      in_[i].dtype = DataType::kF32;
      in_[i].setExtents(t.dims());
    }
    n_ = block_ ? cpu::nchwc::storageFloats(outDims[0], outDims[1], outDims[2], outDims[3], block_)
                : ir::numelOf(outDims);
    buf_.assign(size_t(n_ + 2 * kGuard + 16), kSentinel);
    if (alignedOut)
      while (reinterpret_cast<uintptr_t>(buf_.data() + off_) % 64 != 0) ++off_;
    out_.data = buf_.data() + off_;
    out_.dtype = DataType::kF32;
    out_.setExtents(outDims);
    a_.node = b.node;
    a_.inputs = in_.data();
    a_.numInputs = int(in_.size());
    a_.outputs = &out_;
    a_.numOutputs = 1;
    a_.params = {pk.params->p, pk.prepared.params.size()};
    a_.blobs = pk.views.data();
    a_.numBlobs = int(pk.views.size());
    a_.workspace = ws_.p;
    a_.workspaceBytes = pk.prepared.workspaceBytes;
  }

  // Hands input i over as the buffer at p (e.g. another step's output, outputData()).
  void handOverView(size_t i, float* p) { in_[i].data = p; }
  float* outputData() { return reinterpret_cast<float*>(out_.data); }

  // Hands input i over as `storage` instead (e.g. another kernel's blocked output).
  void handOver(size_t i, const std::vector<float>& storage) {
    store_[i] = storage;
    in_[i].data = store_[i].data();
  }

  void run(runtime::Executor& ex) {
    a_.executor = &ex;
    k_.run(a_);
  }

  BlockedResult result() const {
    BlockedResult r;
    const float* y = reinterpret_cast<const float*>(buf_.data() + off_);
    r.storage.assign(y, y + n_);
    r.out = block_ ? fromBlocked(y, outDims_, block_) : r.storage;
    r.paddingZero = !block_ || paddingLanesZero(y, outDims_, block_);
    for (size_t i = 0; i < buf_.size(); ++i)
      if ((int64_t(i) < off_ || int64_t(i) >= off_ + n_) && buf_[i] != kSentinel) r.guardsIntact = false;
    r.workspaceIntact = ws_.tailIntact();
    return r;
  }

 private:
  const runtime::Kernel& k_;
  int block_;  // the output's; 0: row-major
  Dims outDims_;
  std::vector<std::vector<float>> store_;
  std::vector<runtime::TensorView> in_;
  int64_t n_ = 0, off_ = kGuard;
  std::vector<uint32_t> buf_;
  runtime::TensorView out_;
  Aligned ws_;
  runtime::StepArgs a_;
};

}  // namespace anvil::testing::nk
