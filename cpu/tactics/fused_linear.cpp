// Fast CPU tactics for anvil.FusedConv / FusedGemm / FusedMatMul (ir/ops/anvil_linear.h).
// One per f32 tactic of the ONNX op, named after it plus "_epilogue", with its ISA:
//  - the im2col and depthwise Conv tactics (cpu/tactics/conv.cpp) run the epilogue (bias,
//    residual Add, activation) through their hook on each output block as soon as the
//    packed GEMM (or the depthwise plane) has finished it, while it is in cache;
//  - every other tactic (GEMM/MatMul, and any registered later) is wrapped: it computes
//    straight into the fused node's output, and the epilogue (with FusedMatMul's bias)
//    then runs over the output in place, in parallel row blocks.
// The epilogue rows use AVX2 for the piecewise-linear activations and Sigmoid/Silu
// (a vector exp), scalar code for Tanh and GELU.
//
// Against the unfused chain (the op's tactic, then Add and Relu nodes on the reference
// kernels) this saves two full passes over the output and two output allocations; see
// FusedTacticsBench in tests/unit/passes_linear_test.cpp for the measured ratio.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/tactics.h"
#include "cpu/tactics/gemm_kernels.h"
#include "ir/op_schema.h"
#include "ir/ops/anvil_linear.h"

namespace anvil::cpu::tactics {

namespace {

using ir::linear::Activation;
using ir::linear::Epilogue;

// ---------------------------------------------------------------------------------------
// The epilogue over a row: y[j] = epilogue(y[j] + rowBias + bias[j]) with residual z[j]
// (rowBias: a conv's per-channel bias; bias: a MatMul's per-column bias, may be null).

// Scalar form, the reference kernel's formulas (f32 compute).
void rowScalar(const Epilogue& e, float* y, const float* z, const float* bias, float rowBias, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    float v = y[j] + rowBias;
    if (bias) v += bias[j];
    if (z && e.addFirst) v += z[j];
    v = ir::linear::activate<float>(e, v);
    if (z && !e.addFirst) v += z[j];
    y[j] = v;
  }
}

// exp(x) for 8 floats: range reduction by ln 2 and a degree-6 polynomial (Cephes expf),
// about 1 ulp; inputs are clamped to the finite range.
__attribute__((target("avx2,fma"))) inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i pow2 = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(pow2));
}

// Whether the AVX2 row handles this activation (the others go through rowScalar).
bool vectorized(Activation a) {
  return a == Activation::kNone || a == Activation::kRelu || a == Activation::kClip || a == Activation::kLeakyRelu ||
         a == Activation::kHardSigmoid || a == Activation::kHardSwish || a == Activation::kSigmoid ||
         a == Activation::kSilu;
}

template <Activation A>
__attribute__((target("avx2,fma"))) inline __m256 act8(__m256 v, __m256 p0, __m256 p1) {
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  if constexpr (A == Activation::kRelu) {
    // x < 0 ? 0 : x, NaN kept (max_ps returns its second operand when one is NaN).
    return _mm256_blendv_ps(v, zero, _mm256_cmp_ps(v, zero, _CMP_LT_OQ));
  } else if constexpr (A == Activation::kClip) {
    v = _mm256_blendv_ps(v, p0, _mm256_cmp_ps(v, p0, _CMP_LT_OQ));
    return _mm256_blendv_ps(v, p1, _mm256_cmp_ps(v, p1, _CMP_GT_OQ));
  } else if constexpr (A == Activation::kLeakyRelu) {
    return _mm256_blendv_ps(v, _mm256_mul_ps(v, p0), _mm256_cmp_ps(v, zero, _CMP_LT_OQ));
  } else if constexpr (A == Activation::kHardSigmoid) {
    return _mm256_max_ps(_mm256_min_ps(_mm256_fmadd_ps(p0, v, p1), one), zero);  // fmin/fmax NaN rules
  } else if constexpr (A == Activation::kHardSwish) {
    const __m256 h = _mm256_fmadd_ps(v, _mm256_set1_ps(1.0f / 6.0f), _mm256_set1_ps(0.5f));
    return _mm256_mul_ps(v, _mm256_max_ps(_mm256_min_ps(h, one), zero));
  } else if constexpr (A == Activation::kSigmoid || A == Activation::kSilu) {
    const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, v))));
    return A == Activation::kSilu ? _mm256_mul_ps(v, s) : s;
  } else {
    return v;
  }
}

template <Activation A>
__attribute__((target("avx2,fma"))) void rowAvx2(const Epilogue& e, float* y, const float* z, const float* bias,
                                                 float rowBias, int64_t n) {
  const __m256 p0 = _mm256_set1_ps(e.p0), p1 = _mm256_set1_ps(e.p1), rb = _mm256_set1_ps(rowBias);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 v = _mm256_add_ps(_mm256_loadu_ps(y + j), rb);
    if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + j));
    if (z && e.addFirst) v = _mm256_add_ps(v, _mm256_loadu_ps(z + j));
    v = act8<A>(v, p0, p1);
    if (z && !e.addFirst) v = _mm256_add_ps(v, _mm256_loadu_ps(z + j));
    _mm256_storeu_ps(y + j, v);
  }
  if (j < n) rowScalar(e, y + j, z ? z + j : nullptr, bias ? bias + j : nullptr, rowBias, n - j);
}

using RowFn = void (*)(const Epilogue&, float*, const float*, const float*, float, int64_t);

RowFn rowFunction(const Epilogue& e) {
  if (!cpuHas("avx2") || !cpuHas("fma") || !vectorized(e.act)) return rowScalar;
  switch (e.act) {
    case Activation::kNone: return rowAvx2<Activation::kNone>;
    case Activation::kRelu: return rowAvx2<Activation::kRelu>;
    case Activation::kClip: return rowAvx2<Activation::kClip>;
    case Activation::kLeakyRelu: return rowAvx2<Activation::kLeakyRelu>;
    case Activation::kHardSigmoid: return rowAvx2<Activation::kHardSigmoid>;
    case Activation::kHardSwish: return rowAvx2<Activation::kHardSwish>;
    case Activation::kSigmoid: return rowAvx2<Activation::kSigmoid>;
    case Activation::kSilu: return rowAvx2<Activation::kSilu>;
    default: return rowScalar;
  }
}

// ---------------------------------------------------------------------------------------
// The wrapper

// Static output dims of the fused node for these inputs (the op's own inference).
std::vector<int64_t> outputDims(const KernelContext& ctx) {
  std::vector<ir::TensorType> types(ctx.numInputs());
  std::vector<const ir::TensorType*> tp(ctx.numInputs(), nullptr);
  for (size_t i = 0; i < ctx.numInputs(); ++i)
    if (ctx.hasInput(i)) {
      types[i] = ctx.input(i).type();
      tp[i] = &types[i];
    }
  const ir::OpSchema* s = ctx.node().schema();
  ctx.check(s != nullptr, "op is not in the op table");
  ir::InferContext ic(ctx.node(), tp, std::vector<const Tensor*>(tp.size(), nullptr),
                      std::vector<const std::vector<ir::Dim>*>(tp.size(), nullptr));
  s->infer(ic);
  const ir::Shape& out = ic.outputs()[0].shape;
  ctx.check(out.isStatic(), "output shape " + out.str() + " is not static");
  return out.extents();
}

void runFused(KernelContext& ctx, const Tactic& inner, size_t nInner, bool matmulBias) {
  Epilogue e;
  const std::string err = ir::linear::readEpilogue(ctx.attrs(), &e);
  if (!err.empty()) ctx.fail(err);
  const std::vector<int64_t> dims = outputDims(ctx);
  Tensor& out = ctx.allocOutput(0, DataType::kF32, dims);
  const int64_t total = out.numel();
  // The wrapped tactic writes its result straight into our output.
  std::vector<const Tensor*> in;
  for (size_t i = 0; i < nInner; ++i) in.push_back(ctx.hasInput(i) ? &ctx.input(i) : nullptr);
  KernelContext ic(ctx.node(), in, [&ctx](const ir::Graph&, const std::vector<Tensor>&) -> std::vector<Tensor> {
    ctx.fail("a linear op has no subgraph");
  });
  float* yp = out.data<float>();
  ic.setOutputSlots({{yp, size_t(total) * sizeof(float), true}});
  inner.run(ic);
  const Tensor& r = ic.outputs()[0];
  ctx.check(r.dims() == dims && r.dtype() == DataType::kF32,
            "the wrapped tactic " + inner.name + " produced " + r.summary());
  if (r.raw() != yp && total > 0) std::memcpy(yp, r.raw(), size_t(total) * sizeof(float));

  const int64_t last = dims.empty() ? 1 : dims.back();
  const float* bias = nullptr;
  std::vector<float> biasRow;
  if (matmulBias && ctx.hasInput(2)) {
    const Tensor& b = ctx.input(2);
    ctx.check(b.dtype() == DataType::kF32 && b.rank() == 1 && (b.numel() == last || b.numel() == 1),
              "bias must be f32[" + std::to_string(last) + "], got " + b.summary());
    if (b.numel() == last) {
      bias = b.data<float>();
    } else {
      biasRow.assign(size_t(last), b.data<float>()[0]);
      bias = biasRow.data();
    }
  }
  const float* zp = nullptr;
  if (e.residual) {
    const Tensor& z = ctx.input(ir::linear::kResidualInput);
    ctx.check(z.dtype() == DataType::kF32 && z.dims() == dims,
              "Z must be f32 of the output's shape " + out.summary() + ", got " + z.summary());
    zp = z.data<float>();
  }
  if (!bias && !zp && e.act == Activation::kNone) return;
  if (total == 0 || last == 0) return;
  const RowFn row = rowFunction(e);
  const int64_t rows = total / last;
  // Blocks of whole rows, about 16K floats each.
  const int64_t rowsPerTask = std::max<int64_t>(1, 16384 / last);
  const int64_t tasks = (rows + rowsPerTask - 1) / rowsPerTask;
  parallelFor(tasks, [&](int64_t t) {
    const int64_t r0 = t * rowsPerTask, r1 = std::min(rows, r0 + rowsPerTask);
    if (bias) {
      for (int64_t i = r0; i < r1; ++i) row(e, yp + i * last, zp ? zp + i * last : nullptr, bias, 0.0f, last);
    } else {  // contiguous: one call for the whole block
      row(e, yp + r0 * last, zp ? zp + r0 * last : nullptr, nullptr, 0.0f, (r1 - r0) * last);
    }
  });
}

// FusedConv through a conv tactic with an epilogue hook (gemm_kernels.h): the epilogue
// (bias, residual, activation) runs on each output block as soon as it is computed, while
// it is still in cache, instead of in a second pass over the output.

void runFusedConvHooked(KernelContext& ctx, const std::function<void(KernelContext&, const ConvEpilogue&)>& conv) {
  Epilogue e;
  const std::string err = ir::linear::readEpilogue(ctx.attrs(), &e);
  if (!err.empty()) ctx.fail(err);
  const std::vector<int64_t> dims = outputDims(ctx);
  ctx.check(dims.size() == 4, "this tactic handles 2-D Conv only");
  const int64_t M = dims[1], P = dims[2] * dims[3];
  const float* bias = nullptr;
  if (ctx.hasInput(2)) {
    const Tensor& b = ctx.input(2);
    ctx.check(b.dtype() == DataType::kF32 && b.numel() == M, "B must be f32[" + std::to_string(M) + "]");
    bias = b.data<float>();
  }
  const float* zp = nullptr;
  if (e.residual) {
    const Tensor& z = ctx.input(ir::linear::kResidualInput);
    ctx.check(z.dtype() == DataType::kF32 && z.dims() == dims, "Z must be f32 of the output's shape, got " + z.summary());
    zp = z.data<float>();
  }
  const RowFn row = rowFunction(e);
  conv(ctx, [&](int64_t n, int64_t m0, int64_t rows, int64_t p0, int64_t cols, float* y, int64_t ldy) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t m = m0 + r;
      row(e, y + r * ldy, zp ? zp + (n * M + m) * P + p0 : nullptr, nullptr, bias ? bias[m] : 0.0f, cols);
    }
  });
  const Tensor& out = ctx.outputs()[0];
  ctx.check(out.dims() == dims, "the conv produced " + out.summary() + ", expected " + ir::Shape::fromExtents(dims).str());
}

// The conv tactics with an epilogue hook, by name; others are wrapped (runFused).
std::function<void(KernelContext&, const ConvEpilogue&)> hookedConv(const std::string& name) {
  if (name == "f32_conv2d_im2col_gemm__avx2")
    return [](KernelContext& c, const ConvEpilogue& ep) { runConv2dIm2colEpilogue(c, PackedKernel::kAvx2_6x16, ep); };
  if (name == "f32_conv2d_im2col_gemm__avx512")
    return [](KernelContext& c, const ConvEpilogue& ep) { runConv2dIm2colEpilogue(c, PackedKernel::kAvx512_14x32, ep); };
  if (name == "f32_dwconv2d_direct_8w__avx2") return runDepthwiseEpilogue;
  return nullptr;
}

bool epilogueSupported(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  Epilogue e;
  if (!ir::linear::readEpilogue(n.attrs(), &e).empty()) return false;
  const size_t zi = ir::linear::kResidualInput;
  const bool hasZ = zi < in.size() && in[zi].dtype != DataType::kUndefined;
  if (hasZ != e.residual) return false;
  if (hasZ && in[zi].dtype != DataType::kF32) return false;
  return true;
}

}  // namespace

void registerFusedLinearTactics(TacticRegistry& r) {
  struct Base {
    const char* op;
    const char* fused;
    size_t nInner;
    bool matmulBias;
  };
  const Base bases[] = {{"Conv", "FusedConv", 3, false}, {"Gemm", "FusedGemm", 3, false}, {"MatMul", "FusedMatMul", 2, true}};
  for (const Tactic* t : r.all()) {
    if (!t->domain.empty()) continue;
    for (const Base& b : bases) {
      if (t->op != b.op) continue;
      const size_t nInner = b.nInner;
      const bool matmulBias = b.matmulBias;
      auto innerSupports = t->supports;
      Tactic f;
      f.name = t->name + "_epilogue";
      f.op = b.fused;
      f.domain = "anvil";
      f.isa = t->isa;
      f.supports = [innerSupports, nInner, matmulBias](const ir::Node& n, const std::vector<ir::TensorType>& in) {
        if (!epilogueSupported(n, in)) return false;
        std::vector<ir::TensorType> base(in.begin(), in.begin() + std::min(in.size(), nInner));
        if (matmulBias && in.size() > 2 && in[2].dtype != DataType::kUndefined && in[2].dtype != DataType::kF32)
          return false;
        return innerSupports(n, base);
      };
      if (auto hooked = std::string(b.op) == "Conv" ? hookedConv(t->name) : nullptr)
        f.run = [hooked](KernelContext& ctx) { runFusedConvHooked(ctx, hooked); };
      else
        f.run = [t, nInner, matmulBias](KernelContext& ctx) { runFused(ctx, *t, nInner, matmulBias); };
      r.add(std::move(f));
    }
  }
}

}  // namespace anvil::cpu::tactics
