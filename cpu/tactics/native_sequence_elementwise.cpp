// Native kernel of anvil.FusedElementwise (f32): f32_fused_elementwise_chunked. The
// program (ir/ops/anvil_elementwise.h) is parsed once at prepare into a fixed-size POD
// (chains longer than kMaxInstr or with more than kMaxInputs inputs are declined: the
// reference serves them). run() walks the output in chunks of kChunk consecutive
// elements; a register is a chunk-long array: an input of the output's shape is read in
// place, a one-element input points at a chunk filled once per task, a broadcast input
// is gathered per chunk, and each instruction's result goes to its own chunk of the
// task's workspace slot (the last one straight into the output). Each instruction is one
// tight loop over the chunk with its op fixed at compile time (a table of loops, one per
// op). Every element goes through the reference's formula in the same order, so the
// result is bitwise the reference kernel's (cpu/kernels/anvil_elementwise.cpp) for any
// chunking and thread count.
// Measured (NativeSequenceBench.DISABLED_Timing, SiLU + residual on [8,64,56,56], one
// thread, shared 2-core VM): 21-27 ms vs 52-65 ms for the fused reference kernel.
#include <algorithm>
#include <array>
#include <string>
#include <utility>

#include "cpu/tactics/native_sequence_util.h"
#include "ir/ops/anvil_elementwise.h"

namespace anvil::runtime::seq {

namespace {

namespace ew = ir::ew;

constexpr int kMaxInputs = 16;
constexpr int kMaxInstr = 64;
constexpr int64_t kChunk = 512;

struct EwParams {
  int32_t numInputs = 0, numInstr = 0;
  ew::Instr code[kMaxInstr];
  int32_t numRegisters() const { return numInputs + numInstr; }
};
static_assert(std::is_trivially_copyable_v<EwParams>);

enum class Mode { kSame, kScalar, kBroadcast };

struct InputPlan {
  const float* p = nullptr;
  Mode mode = Mode::kSame;
  int64_t steps[kMaxRank] = {};  // per output axis, for kBroadcast (0 where broadcast)
};

struct Plan {
  int rank = 0;
  int64_t out[kMaxRank] = {};
  InputPlan in[kMaxInputs];
};

// Fills dst[0..n) with broadcast input `in`'s elements at flat output indices [i0, i0 + n).
void gather(const InputPlan& in, const Plan& P, int64_t i0, int64_t n, float* dst) {
  const int r = P.rank;
  int64_t pos[kMaxRank];
  int64_t off = 0, rest = i0;
  for (int d = r; d-- > 0;) {
    pos[d] = rest % P.out[d];
    rest /= P.out[d];
    off += pos[d] * in.steps[d];
  }
  for (int64_t k = 0; k < n; ++k) {
    dst[k] = in.p[off];
    for (int d = r; d-- > 0;) {
      if (++pos[d] < P.out[d]) {
        off += in.steps[d];
        break;
      }
      off -= in.steps[d] * (P.out[d] - 1);
      pos[d] = 0;
    }
  }
}

// dst[k] = op(a[k], b[k], c[k]) over a chunk, for one op known at compile time: the
// evaluator's switch folds away and the loop body is that op's formula alone.
template <ew::Op OP>
void loop(const ew::Instr& ins, const float* a, const float* b, const float* c, float* dst, int64_t n) {
  ew::Instr fixed = ins;
  fixed.op = OP;
  if constexpr (OP == ew::Op::kAdd || OP == ew::Op::kSub || OP == ew::Op::kMul || OP == ew::Op::kDiv ||
                OP == ew::Op::kMax || OP == ew::Op::kMin || OP == ew::Op::kPow || OP == ew::Op::kPRelu) {
    for (int64_t k = 0; k < n; ++k) dst[k] = ew::evalInstr<float>(fixed, a[k], b[k], 0.0f, true, false);
  } else if constexpr (OP == ew::Op::kClip) {
    const bool hasB = b != nullptr, hasC = c != nullptr;
    for (int64_t k = 0; k < n; ++k)
      dst[k] = ew::evalInstr<float>(fixed, a[k], hasB ? b[k] : 0.0f, hasC ? c[k] : 0.0f, hasB, hasC);
  } else {
    for (int64_t k = 0; k < n; ++k) dst[k] = ew::evalInstr<float>(fixed, a[k], 0.0f, 0.0f, false, false);
  }
}

using LoopFn = void (*)(const ew::Instr&, const float*, const float*, const float*, float*, int64_t);

template <size_t... I>
constexpr std::array<LoopFn, sizeof...(I)> loopTable(std::index_sequence<I...>) {
  return {loop<ew::Op(I)>...};
}

constexpr auto kLoops = loopTable(std::make_index_sequence<size_t(ew::Op::kCount)>());

// Bytes of one task's registers: a chunk per input and per instruction.
size_t slotBytes(int registers) { return alignUp(size_t(registers) * kChunk * sizeof(float)); }

bool parse(const ir::Node& n, int inputs, ew::Program* p) {
  return ew::parseProgram(n.attrs().getStrings("program", {}), inputs, p).empty();
}

bool supports(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.empty() || in.size() > size_t(kMaxInputs)) return false;
  for (const ir::TensorType& t : in)
    if (t.dtype != DataType::kF32 || !t.shape.rankKnown() || t.shape.rank() > size_t(kMaxRank)) return false;
  ew::Program p;
  return parse(n, int(in.size()), &p) && p.code.size() <= size_t(kMaxInstr);
}

void prepare(const PrepareInfo& info, Prepared* out) {
  const ir::Node& n = *info.node;
  ew::Program prog;
  const std::string err = ew::parseProgram(n.attrs().getStrings("program", {}), int(n.numInputs()), &prog);
  ANVIL_CHECK(err.empty(), ErrorCode::kInvalidModel, n.label(), ": attribute 'program': ", err);
  ANVIL_CHECK(prog.code.size() <= size_t(kMaxInstr) && n.numInputs() <= size_t(kMaxInputs), ErrorCode::kInternal,
              n.label(), ": f32_fused_elementwise_chunked was chosen for a program it declines");
  EwParams p;
  p.numInputs = int32_t(n.numInputs());
  p.numInstr = int32_t(prog.code.size());
  for (size_t i = 0; i < prog.code.size(); ++i) p.code[i] = prog.code[i];
  out->setParams(p);
  out->workspaceBytes = uint64_t(std::max(1, info.threads)) * slotBytes(p.numRegisters());
}

void run(const StepArgs& a) {
  const EwParams& p = a.paramsAs<EwParams>();
  const TensorView& y = a.out(0);
  const int64_t total = y.numel();
  if (total == 0) return;
  Plan P;
  P.rank = y.rank;
  for (int d = 0; d < y.rank; ++d) P.out[d] = y.dims[d];
  for (int k = 0; k < p.numInputs; ++k) {
    const TensorView& t = a.in(k);
    InputPlan& ip = P.in[k];
    ip.p = t.as<float>();
    bool same = t.rank == y.rank;
    for (int d = 0; same && d < t.rank; ++d) same = t.dims[d] == y.dims[d];
    if (same) {
      ip.mode = Mode::kSame;
    } else if (t.numel() == 1) {
      ip.mode = Mode::kScalar;
    } else {
      ip.mode = Mode::kBroadcast;
      int64_t stride = 1;
      for (int j = t.rank; j-- > 0;) {
        ip.steps[y.rank - t.rank + j] = t.dims[j] == 1 ? 0 : stride;
        stride *= t.dims[j];
      }
    }
  }
  const size_t slot = slotBytes(p.numRegisters());
  const int64_t slots = std::min<int64_t>(a.executor->threads(), int64_t(a.workspaceBytes / slot));
  if (slots < 1) a.fail("anvil.FusedElementwise: workspace too small");
  float* yp = y.as<float>();
  const int64_t chunks = (total + kChunk - 1) / kChunk;
  const int64_t tasks = taskCount(std::min(chunks, slots), double(total) * double(p.numInstr));
  char* ws = static_cast<char*>(a.workspace);
  a.executor->parallelFor(tasks, [&](int64_t t) {
    float* buf = reinterpret_cast<float*>(ws + size_t(t) * slot);
    auto own = [&](int r) { return buf + int64_t(r) * kChunk; };
    const float* reg[kMaxInputs + kMaxInstr];
    for (int k = 0; k < p.numInputs; ++k)
      if (P.in[k].mode == Mode::kScalar) std::fill(own(k), own(k) + kChunk, P.in[k].p[0]);
    for (int64_t c = chunks * t / tasks, c1 = chunks * (t + 1) / tasks; c < c1; ++c) {
      const int64_t i0 = c * kChunk, len = std::min(kChunk, total - i0);
      for (int k = 0; k < p.numInputs; ++k) {
        switch (P.in[k].mode) {
          case Mode::kSame: reg[k] = P.in[k].p + i0; break;
          case Mode::kScalar: reg[k] = own(k); break;
          case Mode::kBroadcast:
            gather(P.in[k], P, i0, len, own(k));
            reg[k] = own(k);
            break;
        }
      }
      for (int q = 0; q < p.numInstr; ++q) {
        const ew::Instr& in = p.code[q];
        float* dst = q + 1 == p.numInstr ? yp + i0 : own(p.numInputs + q);
        kLoops[size_t(in.op)](in, reg[in.a], in.b >= 0 ? reg[in.b] : nullptr, in.c >= 0 ? reg[in.c] : nullptr, dst,
                              len);
        reg[p.numInputs + q] = dst;
      }
    }
  });
}

}  // namespace

void registerFusedElementwiseKernels(Kernels& k) {
  Kernel kn;
  kn.name = "f32_fused_elementwise_chunked";
  kn.version = 1;
  kn.op = "FusedElementwise";
  kn.domain = "anvil";
  kn.precision = DataType::kF32;
  kn.supports = supports;
  kn.prepare = prepare;
  kn.run = run;
  k.add(std::move(kn));
}

}  // namespace anvil::runtime::seq
