// Native kernels of anvil.FusedElementwise (f32): f32_fused_elementwise_chunked and its
// AVX2 build f32_fused_elementwise_chunked__avx2. The program (ir/ops/anvil_elementwise.h)
// is parsed once at prepare into a fixed-size POD (chains longer than kMaxInstr or with
// more than kMaxInputs inputs are declined: the reference serves them). run() walks the
// output in chunks of kChunk consecutive elements; a register is a chunk-long array or,
// where uniform, one value for the whole chunk. An input of the output's shape is read in
// place; a one-element input is uniform; a broadcast input is read in place where the
// chunk is one contiguous run of it, uniform where the chunk lies inside one of its
// broadcast runs, and otherwise filled run by run (splat or copy). An instruction over
// uniform operands only is evaluated once per chunk; any other is one tight loop over
// the chunk with its op fixed at compile time (a table of loops, one per op), its result
// in its own chunk of the task's workspace slot (the last one straight into the output).
// Every element goes through the reference's formula in the same order, so the result is
// bitwise the reference kernel's (cpu/kernels/anvil_elementwise.cpp) for any chunking and
// thread count.
// Measured (NativeSequenceBench.DISABLED_Timing, SiLU + residual on [8,64,56,56], one
// thread, shared 2-core VM): 21-27 ms vs 52-65 ms for the fused reference kernel.
// convnext_tiny's layer scale + residual (x * gamma[96,1,1] + r over [1,96,56,56], one
// thread): 0.76-0.81 ms in the model when broadcast inputs were gathered element by
// element (an odometer step per element) and loops with a tail stayed scalar; 126-136 us
// now (NativeMovementTiming.DISABLED_Chain, 3.6 MB moved), and the model's chains went
// from 5.0 ms to 1.2 ms in all. An SE gate (Sigmoid of [1,96,1,1], times [1,96,56,56]):
// 1.6 ms (a Sigmoid per element) -> 0.19-0.37 ms (one per chunk inside a plane).
#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <utility>

#include "cpu/tactics/native_sequence_util.h"
#include "ir/ops/anvil_elementwise.h"

// GCC 12's -O2 vectorizes a loop only when no scalar remainder is left (its "very cheap"
// cost model); chunks end in arbitrary tails, so this file asks for the dynamic model
// (per-element IEEE operations: results do not change).
#pragma GCC optimize("vect-cost-model=dynamic")

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

// An input's walk along the output: output dims with unit extents dropped and neighbours
// merged where this input's steps allow (a [C,1,1] gate over [N,C,H,W] is [N,C,H*W] with
// steps [0,1,0]; a row vector is one run of step 1), so a chunk is a few runs.
struct InputPlan {
  const float* p = nullptr;
  Mode mode = Mode::kSame;
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t steps[kMaxRank] = {};
};

void planBroadcast(const TensorView& t, const TensorView& y, InputPlan* ip) {
  int64_t full[kMaxRank] = {};
  int64_t stride = 1;
  for (int j = t.rank; j-- > 0;) {
    full[y.rank - t.rank + j] = t.dims[j] == 1 ? 0 : stride;
    stride *= t.dims[j];
  }
  ip->rank = 0;
  for (int d = 0; d < y.rank; ++d) {
    if (y.dims[d] == 1) continue;
    if (ip->rank > 0 && ip->steps[ip->rank - 1] == full[d] * y.dims[d]) {
      ip->dims[ip->rank - 1] *= y.dims[d];
      ip->steps[ip->rank - 1] = full[d];
    } else {
      ip->dims[ip->rank] = y.dims[d];
      ip->steps[ip->rank] = full[d];
      ++ip->rank;
    }
  }
  if (ip->rank == 0) {
    ip->rank = 1;
    ip->dims[0] = 1;
    ip->steps[0] = 0;
  }
}

// Broadcast input `in`'s elements at flat output indices [i0, i0 + n): in place when they
// are one contiguous run of the input; null with *uniform set when they are one element
// (the chunk lies inside a run of step 0: a per-channel gate inside its plane); else
// filled into dst run by run (a splat where the input is constant along the run, a copy
// where it is contiguous).
const float* gather(const InputPlan& in, int64_t i0, int64_t n, float* dst, float* uniform) {
  const int r = in.rank;
  int64_t pos[kMaxRank];
  int64_t off = 0, rest = i0;
  for (int d = r; d-- > 0;) {
    pos[d] = rest % in.dims[d];
    rest /= in.dims[d];
    off += pos[d] * in.steps[d];
  }
  const int64_t inner = in.dims[r - 1], s = in.steps[r - 1];
  if (inner - pos[r - 1] >= n) {
    if (s == 1) return in.p + off;
    if (s == 0) {
      *uniform = in.p[off];
      return nullptr;
    }
  }
  for (int64_t k = 0; k < n;) {
    const int64_t len = std::min(inner - pos[r - 1], n - k);
    const float* from = in.p + off;
    float* to = dst + k;
    if (s == 0) {
      const float v = *from;
      for (int64_t i = 0; i < len; ++i) to[i] = v;
    } else if (s == 1) {
      std::memcpy(to, from, size_t(len) * sizeof(float));
    } else {
      for (int64_t i = 0; i < len; ++i) to[i] = from[i * s];
    }
    k += len;
    if (k >= n) break;
    // The next run starts at inner index 0 of the next outer position.
    off -= pos[r - 1] * s;
    pos[r - 1] = 0;
    for (int d = r - 1; d-- > 0;) {
      if (++pos[d] < in.dims[d]) {
        off += in.steps[d];
        break;
      }
      off -= in.steps[d] * (in.dims[d] - 1);
      pos[d] = 0;
    }
  }
  return dst;
}

// dst[k] = op(a[k], b[k], c[k]) over a chunk, for one op known at compile time: the
// evaluator's switch folds away and the loop body is that op's formula alone. Compiled
// twice: for the baseline ISA and for AVX2 (eight lanes; AVX2 without FMA, so no multiply
// and add are contracted and every element rounds as the reference's formula does).
// (Variants taking a uniform operand as one broadcast value instead of a filled chunk
// measured the same on convnext_tiny's layer scale, 124-128 us: the fill is not the cost.)
template <ew::Op OP>
__attribute__((always_inline)) inline void loopBody(const ew::Instr& ins, const float* __restrict a,
                                                    const float* __restrict b, const float* __restrict c,
                                                    float* __restrict dst, int64_t n) {
  ew::Instr fixed = ins;
  fixed.op = OP;
  if constexpr (OP == ew::Op::kAdd) {
    for (int64_t k = 0; k < n; ++k) dst[k] = a[k] + b[k];
  } else if constexpr (OP == ew::Op::kSub) {
    for (int64_t k = 0; k < n; ++k) dst[k] = a[k] - b[k];
  } else if constexpr (OP == ew::Op::kMul) {
    for (int64_t k = 0; k < n; ++k) dst[k] = a[k] * b[k];
  } else if constexpr (OP == ew::Op::kDiv) {
    for (int64_t k = 0; k < n; ++k) dst[k] = a[k] / b[k];
  } else if constexpr (OP == ew::Op::kPRelu || OP == ew::Op::kLeakyRelu) {
    const float alpha = float(double(ins.p0));
    for (int64_t k = 0; k < n; ++k) dst[k] = negativeSelect(a[k], (OP == ew::Op::kPRelu ? b[k] : alpha) * a[k]);
  } else if constexpr (OP == ew::Op::kMax || OP == ew::Op::kMin || OP == ew::Op::kPow) {
    for (int64_t k = 0; k < n; ++k) dst[k] = ew::evalInstr<float>(fixed, a[k], b[k], 0.0f, true, false);
  } else if constexpr (OP == ew::Op::kClip) {
    const bool hasB = b != nullptr, hasC = c != nullptr;
    for (int64_t k = 0; k < n; ++k)
      dst[k] = ew::evalInstr<float>(fixed, a[k], hasB ? b[k] : 0.0f, hasC ? c[k] : 0.0f, hasB, hasC);
  } else {
    for (int64_t k = 0; k < n; ++k) dst[k] = ew::evalInstr<float>(fixed, a[k], 0.0f, 0.0f, false, false);
  }
}

// flatten: the evaluator is too large for GCC to inline on its own, and a call per element
// keeps the loop scalar.
template <ew::Op OP>
__attribute__((flatten)) void loop(const ew::Instr& ins, const float* a, const float* b, const float* c, float* dst,
                                   int64_t n) {
  loopBody<OP>(ins, a, b, c, dst, n);
}

template <ew::Op OP>
__attribute__((target("avx2"), flatten)) void loopAvx2(const ew::Instr& ins, const float* a, const float* b,
                                                       const float* c, float* dst, int64_t n) {
  loopBody<OP>(ins, a, b, c, dst, n);
}

using LoopFn = void (*)(const ew::Instr&, const float*, const float*, const float*, float*, int64_t);

template <size_t... I>
constexpr std::array<LoopFn, sizeof...(I)> loopTable(std::index_sequence<I...>) {
  return {loop<ew::Op(I)>...};
}
template <size_t... I>
constexpr std::array<LoopFn, sizeof...(I)> loopTableAvx2(std::index_sequence<I...>) {
  return {loopAvx2<ew::Op(I)>...};
}

constexpr auto kLoops = loopTable(std::make_index_sequence<size_t(ew::Op::kCount)>());
constexpr auto kLoopsAvx2 = loopTableAvx2(std::make_index_sequence<size_t(ew::Op::kCount)>());

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

void runWith(const StepArgs& a, const LoopFn* loops) {
  const EwParams& p = a.paramsAs<EwParams>();
  const TensorView& y = a.out(0);
  const int64_t total = y.numel();
  if (total == 0) return;
  InputPlan in[kMaxInputs];
  for (int k = 0; k < p.numInputs; ++k) {
    const TensorView& t = a.in(k);
    InputPlan& ip = in[k];
    ip.p = t.as<float>();
    bool same = t.rank == y.rank;
    for (int d = 0; same && d < t.rank; ++d) same = t.dims[d] == y.dims[d];
    if (same) {
      ip.mode = Mode::kSame;
    } else if (t.numel() == 1) {
      ip.mode = Mode::kScalar;
    } else {
      ip.mode = Mode::kBroadcast;
      planBroadcast(t, y, &ip);
    }
  }
  const size_t slot = slotBytes(p.numRegisters());
  const int64_t slots = std::min<int64_t>(a.executor->threads(), int64_t(a.workspaceBytes / slot));
  if (slots < 1) a.fail("anvil.FusedElementwise: workspace too small");
  float* yp = y.as<float>();
  const int64_t chunks = (total + kChunk - 1) / kChunk;
  const int64_t tasks = elementwiseTasks(std::min(chunks, slots), total, p.numInstr);
  char* ws = static_cast<char*>(a.workspace);
  a.executor->parallelFor(tasks, [&](int64_t t) {
    float* buf = reinterpret_cast<float*>(ws + size_t(t) * slot);
    auto own = [&](int r) { return buf + int64_t(r) * kChunk; };
    // A register is a chunk (reg) or, where uniform, one value for the whole chunk (val):
    // an instruction over uniform operands only is evaluated once (the same formula, so
    // the same bits as per element: an SE gate's Sigmoid on [N,C,1,1] inside a plane), and
    // a uniform operand of any other instruction is filled into its chunk first.
    const float* reg[kMaxInputs + kMaxInstr];
    bool uniform[kMaxInputs + kMaxInstr];
    float val[kMaxInputs + kMaxInstr];
    for (int64_t c = chunks * t / tasks, c1 = chunks * (t + 1) / tasks; c < c1; ++c) {
      const int64_t i0 = c * kChunk, len = std::min(kChunk, total - i0);
      // A uniform register's values as a chunk, for the loops that take no splat.
      auto vec = [&](int r) {
        if (!uniform[r]) return reg[r];
        float* d = own(r);
        std::fill(d, d + len, val[r]);
        return static_cast<const float*>(d);
      };
      for (int k = 0; k < p.numInputs; ++k) {
        uniform[k] = false;
        switch (in[k].mode) {
          case Mode::kSame: reg[k] = in[k].p + i0; break;
          case Mode::kScalar:
            uniform[k] = true;
            val[k] = in[k].p[0];
            break;
          case Mode::kBroadcast:
            reg[k] = gather(in[k], i0, len, own(k), &val[k]);
            uniform[k] = reg[k] == nullptr;
            break;
        }
      }
      for (int q = 0; q < p.numInstr; ++q) {
        const ew::Instr& ins = p.code[q];
        const int r = p.numInputs + q;
        const bool last = q + 1 == p.numInstr;
        float* dst = last ? yp + i0 : own(r);
        const bool ua = uniform[ins.a], ub = ins.b < 0 || uniform[ins.b], uc = ins.c < 0 || uniform[ins.c];
        uniform[r] = false;
        if (ua && ub && uc) {
          val[r] = ew::evalInstr<float>(ins, val[ins.a], ins.b >= 0 ? val[ins.b] : 0.0f,
                                        ins.c >= 0 ? val[ins.c] : 0.0f, ins.b >= 0, ins.c >= 0);
          uniform[r] = !last;
          if (last) std::fill(dst, dst + len, val[r]);
          reg[r] = dst;
          continue;
        }
        loops[size_t(ins.op)](ins, vec(ins.a), ins.b >= 0 ? vec(ins.b) : nullptr, ins.c >= 0 ? vec(ins.c) : nullptr,
                              dst, len);
        reg[r] = dst;
      }
    }
  });
}

void run(const StepArgs& a) { runWith(a, kLoops.data()); }
void runAvx2(const StepArgs& a) { runWith(a, kLoopsAvx2.data()); }

}  // namespace

void registerFusedElementwiseKernels(Kernels& k) {
  for (bool avx2 : {false, true}) {
    Kernel kn;
    kn.name = avx2 ? "f32_fused_elementwise_chunked__avx2" : "f32_fused_elementwise_chunked";
    kn.version = 2;
    kn.op = "FusedElementwise";
    kn.domain = "anvil";
    kn.precision = DataType::kF32;
    // The family's convention for AVX2 kernels; this one uses no FMA (see loopAvx2).
    if (avx2) kn.requirements = {"avx2", "fma"};
    kn.supports = supports;
    kn.prepare = prepare;
    kn.run = avx2 ? runAvx2 : run;
    k.add(std::move(kn));
  }
}

}  // namespace anvil::runtime::seq
