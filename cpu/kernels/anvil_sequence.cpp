// Reference kernel of anvil.LSTMStack (ir/ops/anvil_sequence.cpp): the reference LSTM
// (cpu/kernels/control_rnn.cpp, in double) once per layer on a one-node graph made here,
// each layer reading the last one's Y without its directions axis, exactly the chain the
// fusion replaced.
#include <cstring>

#include "cpu/kernels/families.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

namespace {

void lstmStackKernel(KernelContext& ctx) {
  const int64_t L = ctx.attrs().getInt("layers", 0);
  ctx.check(L >= 2 && int64_t(ctx.numInputs()) <= 1 + 5 * L && int64_t(ctx.numOutputs()) == 1 + 2 * L,
            "inputs and outputs do not match attribute layers");
  const RefKernel* lstm = KernelRegistry::instance().find("LSTM");
  ctx.check(lstm != nullptr, "no reference LSTM kernel");
  const std::vector<int64_t> hs = ctx.attrs().getInts("hidden_sizes");
  Tensor x = ctx.input(0);
  ctx.check(x.rank() == 3, "X must have rank 3");
  for (int64_t l = 0; l < L; ++l) {
    ir::Graph g("lstm_stack_layer");
    const size_t base = size_t(1 + 5 * l);
    // LSTM inputs X, W, R, B, sequence_lens (absent), initial_h, initial_c.
    const size_t from[7] = {0, base, base + 1, base + 2, 0, base + 3, base + 4};
    std::vector<ir::Value*> ins(7, nullptr);
    std::vector<const Tensor*> tensors(7, nullptr);
    for (size_t i = 0; i < 7; ++i) {
      if (i == 4) continue;
      const Tensor* t = i == 0 ? &x : ctx.hasInput(from[i]) ? &ctx.input(from[i]) : nullptr;
      if (!t) continue;
      ins[i] = g.addValue("in" + std::to_string(i), t->type());
      tensors[i] = t;
    }
    ir::Node* n = g.addNode("LSTM", "", ctx.node().name() + "/layer" + std::to_string(l), ins, {"y", "y_h", "y_c"});
    n->attrs().set("hidden_size", hs.at(size_t(l)));
    KernelContext layer(*n, tensors, nullptr);
    (*lstm)(layer);
    const Tensor& y = layer.outputs()[0];
    for (int k = 0; k < 2; ++k) {
      const size_t o = size_t(1 + 2 * l + k);
      if (!ctx.outputWanted(o)) continue;
      const Tensor& s = layer.outputs()[size_t(1 + k)];
      Tensor& out = ctx.allocOutput(o, s.dtype(), s.dims());
      std::memcpy(out.data<float>(), s.data<float>(), s.nbytes());
    }
    if (l + 1 == L) {
      Tensor& out = ctx.allocOutput(0, y.dtype(), y.dims());
      std::memcpy(out.data<float>(), y.data<float>(), y.nbytes());
    } else {
      x = y.reshaped({y.dim(0), y.dim(2), y.dim(3)});
    }
  }
}

}  // namespace

void registerAnvilSequenceKernels(KernelRegistry& r) { r.add("LSTMStack", "anvil", lstmStackKernel); }

}  // namespace anvil::cpu::kernels
