// Reference kernels of the control op family: If, Loop and Scan run their bodies through
// KernelContext::runSubgraph (outer-scope values resolve through the caller). The other
// ops of the family live in control_*.cpp and register from here.
#include <algorithm>
#include <cstring>
#include <optional>

#include "cpu/dispatch.h"
#include "cpu/kernels/families.h"
#include "cpu/kernels/util.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

void registerControlRnnKernels(KernelRegistry& r);     // control_rnn.cpp
void registerControlSignalKernels(KernelRegistry& r);  // control_signal.cpp
void registerControlMiscKernels(KernelRegistry& r);    // control_misc.cpp

namespace {

std::string str(int64_t v) { return std::to_string(v); }

// Copies `t` into output i (so planned output memory is honoured).
void emitOutput(KernelContext& ctx, size_t i, const Tensor& t) {
  Tensor& o = ctx.allocOutput(i, t.dtype(), t.dims());
  if (t.dtype() == DataType::kString) {
    for (int64_t k = 0; k < t.numel(); ++k) o.data<std::string>()[k] = t.str(k);
  } else if (t.nbytes() > 0) {
    std::memcpy(o.mutableRaw(), t.raw(), t.nbytes());
  }
}

// Copies `n` elements of `src` starting at element `srcOff` into `dst` at `dstOff`.
void copyElems(Tensor& dst, int64_t dstOff, const Tensor& src, int64_t srcOff, int64_t n) {
  if (n <= 0) return;
  if (src.dtype() == DataType::kString) {
    for (int64_t k = 0; k < n; ++k) dst.data<std::string>()[dstOff + k] = src.str(srcOff + k);
    return;
  }
  const size_t es = ir::storageBytes(src.dtype(), 1);
  std::memcpy(static_cast<char*>(dst.mutableRaw()) + size_t(dstOff) * es,
              static_cast<const char*>(src.raw()) + size_t(srcOff) * es, size_t(n) * es);
}

// Stacks equally shaped tensors along a new axis `axis` (0 <= axis <= rank).
Tensor stack(const KernelContext& ctx, const std::vector<Tensor>& parts, int64_t axis, DataType dt,
             const std::vector<int64_t>& emptyDims, const char* what) {
  std::vector<int64_t> elem = parts.empty() ? emptyDims : parts[0].dims();
  for (size_t i = 1; i < parts.size(); ++i)
    ctx.check(parts[i].dims() == elem && parts[i].dtype() == parts[0].dtype(),
              std::string(what) + " changes shape between iterations (" + parts[0].summary() + " then " +
                  parts[i].summary() + "), so it cannot be stacked");
  if (!parts.empty()) dt = parts[0].dtype();
  ctx.check(axis >= 0 && axis <= int64_t(elem.size()), std::string(what) + ": axis out of range");
  std::vector<int64_t> dims = elem;
  dims.insert(dims.begin() + axis, int64_t(parts.size()));
  Tensor out(dt, dims);
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= elem[size_t(i)];
  for (size_t i = size_t(axis); i < elem.size(); ++i) inner *= elem[i];
  const int64_t n = int64_t(parts.size());
  for (int64_t p = 0; p < n; ++p)
    for (int64_t o = 0; o < outer; ++o) copyElems(out, (o * n + p) * inner, parts[size_t(p)], o * inner, inner);
  return out;
}

// Slice `index` of `t` along `axis` (the axis removed).
Tensor sliceAt(const Tensor& t, int64_t axis, int64_t index) {
  std::vector<int64_t> dims = t.dims();
  const int64_t len = dims[size_t(axis)];
  dims.erase(dims.begin() + axis);
  Tensor out(t.dtype(), dims);
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= t.dim(size_t(i));
  for (size_t i = size_t(axis) + 1; i < t.rank(); ++i) inner *= t.dim(i);
  for (int64_t o = 0; o < outer; ++o) copyElems(out, o * inner, t, (o * len + index) * inner, inner);
  return out;
}

bool truthOf(const KernelContext& ctx, const Tensor& t, const char* what) {
  ctx.check(t.numel() == 1, std::string(what) + " must have one element, got " + t.summary());
  return t.getInt(0) != 0;
}

// Extents for an empty stacked output: the inferred element dims (unknown ones as 0).
std::vector<int64_t> inferredElemDims(const ir::Value* v, size_t skipAxis) {
  std::vector<int64_t> d;
  if (!v || !v->shape().rankKnown()) return {0};
  for (size_t i = 0; i < v->shape().rank(); ++i) {
    if (i == skipAxis) continue;
    const ir::Dim& x = v->shape()[i];
    d.push_back(x.isStatic() ? x.value() : 0);
  }
  return d;
}

void ifKernel(KernelContext& ctx) {
  const bool c = truthOf(ctx, ctx.input(0), "cond");
  const ir::Graph* g = ctx.attrs().getGraph(c ? "then_branch" : "else_branch");
  ctx.check(g != nullptr, c ? "then_branch is missing" : "else_branch is missing");
  std::vector<Tensor> outs = ctx.runSubgraph(*g, {});
  ctx.check(outs.size() >= ctx.numOutputs(), "the branch made " + str(int64_t(outs.size())) + " outputs, expected " +
                                                 str(int64_t(ctx.numOutputs())));
  for (size_t i = 0; i < ctx.numOutputs(); ++i) emitOutput(ctx, i, outs[i]);
}

void loopKernel(KernelContext& ctx) {
  const ir::Graph* body = ctx.attrs().getGraph("body");
  ctx.check(body != nullptr, "attribute 'body' is missing");
  const size_t n = ctx.numInputs() >= 2 ? ctx.numInputs() - 2 : 0;
  ctx.check(body->inputs().size() == n + 2, "body takes " + str(int64_t(body->inputs().size())) + " inputs, expected " +
                                                str(int64_t(n + 2)));
  ctx.check(body->outputs().size() >= n + 1, "body makes too few outputs");
  const size_t k = body->outputs().size() - 1 - n;
  std::optional<int64_t> tripCount;
  if (ctx.hasInput(0)) {
    ctx.check(ctx.input(0).numel() == 1, "M must have one element");
    tripCount = ctx.input(0).getInt(0);
  }
  bool cond = ctx.hasInput(1) ? truthOf(ctx, ctx.input(1), "cond") : true;
  std::vector<Tensor> carried;
  for (size_t i = 0; i < n; ++i) carried.push_back(ctx.input(2 + i));
  std::vector<std::vector<Tensor>> scans(k);
  int64_t it = 0;
  while (cond && (!tripCount || it < *tripCount)) {
    std::vector<Tensor> ins;
    ins.push_back(Tensor::scalar<int64_t>(DataType::kI64, it));
    ins.push_back(Tensor::scalar<bool>(DataType::kBool, cond));
    ins.insert(ins.end(), carried.begin(), carried.end());
    std::vector<Tensor> outs = ctx.runSubgraph(*body, ins);
    cond = truthOf(ctx, outs[0], "the body's condition output");
    for (size_t i = 0; i < n; ++i) carried[i] = std::move(outs[1 + i]);
    for (size_t j = 0; j < k; ++j) scans[j].push_back(std::move(outs[1 + n + j]));
    ++it;
  }
  for (size_t i = 0; i < ctx.numOutputs(); ++i) {
    if (!ctx.outputWanted(i)) continue;
    if (i < n) {
      emitOutput(ctx, i, carried[i]);
      continue;
    }
    const ir::Value* bv = body->outputs()[1 + i];
    Tensor st = stack(ctx, scans[i - n], 0, bv->dtype(), inferredElemDims(bv, size_t(-1)), "scan output");
    emitOutput(ctx, i, st);
  }
}

void scanKernel(KernelContext& ctx) {
  const ir::Attributes& a = ctx.attrs();
  const ir::Graph* body = a.getGraph("body");
  ctx.check(body != nullptr, "attribute 'body' is missing");
  const int64_t m = a.requireInt("num_scan_inputs");
  const size_t n = ctx.numInputs() - size_t(m);
  ctx.check(body->inputs().size() == ctx.numInputs(), "body takes " + str(int64_t(body->inputs().size())) +
                                                          " inputs, expected " + str(int64_t(ctx.numInputs())));
  ctx.check(body->outputs().size() >= n, "body makes too few outputs");
  const size_t k = body->outputs().size() - n;
  auto inAxes = a.getInts("scan_input_axes", std::vector<int64_t>(size_t(m), 0));
  auto inDirs = a.getInts("scan_input_directions", std::vector<int64_t>(size_t(m), 0));
  auto outAxes = a.getInts("scan_output_axes", std::vector<int64_t>(k, 0));
  auto outDirs = a.getInts("scan_output_directions", std::vector<int64_t>(k, 0));
  ctx.check(int64_t(inAxes.size()) == m && int64_t(inDirs.size()) == m && outAxes.size() == k && outDirs.size() == k,
            "scan axes/directions attributes have the wrong length");
  std::vector<Tensor> states;
  for (size_t i = 0; i < n; ++i) states.push_back(ctx.input(i));
  int64_t len = -1;
  std::vector<int64_t> axes(static_cast<size_t>(m), 0);
  for (size_t j = 0; j < size_t(m); ++j) {
    const Tensor& x = ctx.input(n + j);
    const int64_t r = int64_t(x.rank());
    int64_t ax = inAxes[j];
    ctx.check(ax >= -r && ax < r, "scan_input_axes entry " + str(ax) + " is out of range for rank " + str(r));
    axes[j] = ax < 0 ? ax + r : ax;
    const int64_t l = x.dim(size_t(axes[j]));
    ctx.check(len < 0 || l == len, "scan inputs disagree on the sequence length");
    len = l;
  }
  std::vector<std::vector<Tensor>> scans(k);
  for (int64_t t = 0; t < len; ++t) {
    std::vector<Tensor> ins = states;
    for (size_t j = 0; j < size_t(m); ++j)
      ins.push_back(sliceAt(ctx.input(n + j), axes[j], inDirs[j] ? len - 1 - t : t));
    std::vector<Tensor> outs = ctx.runSubgraph(*body, ins);
    for (size_t i = 0; i < n; ++i) states[i] = std::move(outs[i]);
    for (size_t j = 0; j < k; ++j) scans[j].push_back(std::move(outs[n + j]));
  }
  for (size_t i = 0; i < ctx.numOutputs(); ++i) {
    if (!ctx.outputWanted(i)) continue;
    if (i < n) {
      emitOutput(ctx, i, states[i]);
      continue;
    }
    const size_t j = i - n;
    std::vector<Tensor>& parts = scans[j];
    if (outDirs[j]) std::reverse(parts.begin(), parts.end());
    const ir::Value* bv = body->outputs()[i];
    const int64_t r = int64_t(parts.empty() ? inferredElemDims(bv, size_t(-1)).size() : parts[0].rank()) + 1;
    int64_t ax = outAxes[j];
    ctx.check(ax >= -r && ax < r, "scan_output_axes entry " + str(ax) + " is out of range for rank " + str(r));
    if (ax < 0) ax += r;
    emitOutput(ctx, i, stack(ctx, parts, ax, bv->dtype(), inferredElemDims(bv, size_t(-1)), "scan output"));
  }
}

}  // namespace

void registerControlKernels(KernelRegistry& r) {
  r.add("If", ifKernel);
  r.add("Loop", loopKernel);
  r.add("Scan", scanKernel);
  registerControlRnnKernels(r);
  registerControlSignalKernels(r);
  registerControlMiscKernels(r);
}

}  // namespace anvil::cpu::kernels
