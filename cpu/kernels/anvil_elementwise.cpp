// Reference kernels of the anvil-domain elementwise ops: anvil.FusedElementwise interprets
// its program (ir/ops/anvil_elementwise.h) once per output element: the inputs' elements
// (numpy-broadcast) go into registers, each instruction computes one register in the
// compute type and rounds it to the element type, the last register is stored. One pass
// over memory, no temporary tensors.
#include <array>
#include <string>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/kernels/util.h"
#include "cpu/reference.h"
#include "ir/ops/anvil_elementwise.h"

namespace anvil::cpu::kernels {

namespace {

template <typename T>
void runProgram(KernelContext& ctx, const ir::ew::Program& p, const std::vector<int64_t>& out) {
  using C = ComputeT<T>;
  const size_t n = ctx.numInputs();
  Tensor& y = ctx.allocOutput(0, ctx.input(0).dtype(), out);
  const int64_t total = y.numel();
  if (total == 0) return;
  // Per input, its element step along each output axis (0 where broadcast).
  const size_t r = out.size();
  std::vector<std::vector<int64_t>> steps(n, std::vector<int64_t>(r, 0));
  std::vector<const T*> in(n);
  for (size_t k = 0; k < n; ++k) {
    const Tensor& t = ctx.input(k);
    in[k] = t.data<T>();
    const std::vector<int64_t> s = stridesOf(t.dims());
    for (size_t j = 0; j < t.rank(); ++j) steps[k][r - t.rank() + j] = t.dim(j) == 1 ? 0 : s[j];
  }
  std::vector<C> reg(size_t(p.numRegisters()));
  std::vector<int64_t> pos(r, 0), off(n, 0);
  T* yp = y.data<T>();
  for (int64_t i = 0; i < total; ++i) {
    for (size_t k = 0; k < n; ++k) reg[k] = C(in[k][off[k]]);
    for (size_t c = 0; c < p.code.size(); ++c) {
      const ir::ew::Instr& ins = p.code[c];
      const C a = reg[size_t(ins.a)];
      const C b = ins.b >= 0 ? reg[size_t(ins.b)] : C(0);
      const C z = ins.c >= 0 ? reg[size_t(ins.c)] : C(0);
      reg[n + c] = C(T(ir::ew::evalInstr<C>(ins, a, b, z, ins.b >= 0, ins.c >= 0)));
    }
    yp[i] = T(reg.back());
    // Next output index: bump the innermost axis, carrying into outer ones.
    for (int64_t d = int64_t(r) - 1; d >= 0; --d) {
      const size_t du = size_t(d);
      if (++pos[du] < out[du]) {
        for (size_t k = 0; k < n; ++k) off[k] += steps[k][du];
        break;
      }
      for (size_t k = 0; k < n; ++k) off[k] -= steps[k][du] * (out[du] - 1);
      pos[du] = 0;
    }
  }
}

void fusedElementwiseKernel(KernelContext& ctx) {
  const size_t n = ctx.numInputs();
  ctx.check(n >= 1, "needs at least one input");
  std::vector<int64_t> out;
  for (size_t k = 0; k < n; ++k) {
    const Tensor& t = ctx.input(k);
    ctx.check(t.dtype() == ctx.input(0).dtype(), "every input must have input 0's element type");
    try {
      out = k == 0 ? t.dims() : ir::broadcastExtents(out, t.dims());
    } catch (const Error& e) {
      ctx.fail(e.what());
    }
  }
  ir::ew::Program p;
  const std::string err = ir::ew::parseProgram(ctx.attrs().getStrings("program"), int(n), &p);
  if (!err.empty()) ctx.fail("attribute 'program': " + err);
  dispatchFloat(ctx.input(0).dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    runProgram<T>(ctx, p, out);
  });
}

}  // namespace

void registerAnvilElementwiseKernels(KernelRegistry& r) {
  r.add("FusedElementwise", "anvil", fusedElementwiseKernel);
}

}  // namespace anvil::cpu::kernels
