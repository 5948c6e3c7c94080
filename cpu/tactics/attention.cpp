// Fast CPU tactic for anvil.Attention (f32): f32_attention_rows__avx2. One task per block
// of query rows (parallelFor); per row the scores are AVX2/FMA dot products against the
// K rows, then scale, mask and a max-subtracted softmax, and the output row is accumulated
// as FMA axpys of the V rows weighted by the probabilities — the [Sq, Sk] score matrix of
// the unfused graph never exists, only one row of it per thread. Layout and checks come
// from planAttention (cpu/kernels/anvil_transformer.h), shared with the reference kernel.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/kernels/anvil_transformer.h"
#include "cpu/tactics.h"
#include "cpu/tactics/gemm_kernels.h"

namespace anvil::cpu::tactics {

namespace {

using kernels::AttentionMask;
using kernels::AttentionPlan;

__attribute__((target("avx2,fma"))) inline float dot(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 16 <= n; t += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + t), _mm256_loadu_ps(b + t), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + t + 8), _mm256_loadu_ps(b + t + 8), acc1);
  }
  for (; t + 8 <= n; t += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + t), _mm256_loadu_ps(b + t), acc0);
  acc0 = _mm256_add_ps(acc0, acc1);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  float r = _mm_cvtss_f32(s);
  for (; t < n; ++t) r += a[t] * b[t];
  return r;
}

// y[0..n) += w * x[0..n)
__attribute__((target("avx2,fma"))) inline void axpy(float w, const float* x, float* y, int64_t n) {
  const __m256 wv = _mm256_set1_ps(w);
  int64_t t = 0;
  for (; t + 8 <= n; t += 8) _mm256_storeu_ps(y + t, _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t), _mm256_loadu_ps(y + t)));
  for (; t < n; ++t) y[t] += w * x[t];
}

__attribute__((target("avx2,fma"))) void attentionRows(const AttentionPlan& p, const float* q, const float* k,
                                                        const float* v, float* y, int64_t row0, int64_t row1) {
  std::vector<float> s(static_cast<size_t>(p.sk), 0.0f);
  const float scale = float(p.scale), fill = float(p.fill);
  const float* maskF = p.mask && p.kind == AttentionMask::kAdd ? p.mask->data<float>() : nullptr;
  const bool* maskB = p.mask && p.kind != AttentionMask::kAdd ? p.mask->data<bool>() : nullptr;
  const bool fillOn = p.kind == AttentionMask::kFillTrue;
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t b = row / p.sq, i = row % p.sq;
    const float* qr = q + p.qOff[size_t(b)] + i * p.d;
    const float* kb = k + p.kOff[size_t(b)];
    const int64_t mrow = p.mask ? p.maskBase[size_t(b)] + i * p.maskStepI : 0;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < p.sk; ++j) {
      float x = dot(qr, kb + j * p.d, p.d) * scale;
      if (maskF) x += maskF[mrow + j * p.maskStepJ];
      else if (maskB && maskB[mrow + j * p.maskStepJ] == fillOn) x = fill;
      s[size_t(j)] = x;
      if (j == 0 || x > m) m = x;
    }
    float sum = 0;
    for (int64_t j = 0; j < p.sk; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - m));
    float* yr = y + row * p.dv;
    std::fill(yr, yr + p.dv, 0.0f);
    const float* vb = v + p.vOff[size_t(b)];
    for (int64_t j = 0; j < p.sk; ++j) axpy(s[size_t(j)] / sum, vb + j * p.dv, yr, p.dv);
  }
}

void runAttention(KernelContext& ctx) {
  const AttentionPlan p = kernels::planAttention(ctx);
  ctx.check(ctx.input(0).dtype() == DataType::kF32, "f32_attention_rows__avx2 takes f32");
  const int64_t rows = p.batches * p.sq;
  if (rows == 0 || p.dv == 0) return;
  const float* q = ctx.input(0).data<float>();
  const float* k = ctx.input(1).data<float>();
  const float* v = ctx.input(2).data<float>();
  float* y = p.out->data<float>();
  // Enough tasks to balance the threads, each a few rows so that the K/V block of its
  // batch stays in cache between rows.
  const int64_t tasks = std::min<int64_t>(rows, std::max(1, numThreads()) * 4);
  parallelFor(tasks, [&](int64_t t) { attentionRows(p, q, k, v, y, rows * t / tasks, rows * (t + 1) / tasks); });
}

bool supportsAttention(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.size() < 3 || !cpuHas("fma")) return false;
  for (size_t i = 0; i < 3; ++i)
    if (in[i].dtype != DataType::kF32) return false;
  const std::string kind = n.attrs().getString("mask_kind", "none");
  if (in.size() > 3 && in[3].dtype != DataType::kUndefined)
    return (kind == "add" && in[3].dtype == DataType::kF32) ||
           ((kind == "fill_true" || kind == "fill_false") && in[3].dtype == DataType::kBool);
  return kind == "none";
}

}  // namespace

void registerAttentionTactics(TacticRegistry& r) {
  Tactic t;
  t.name = "f32_attention_rows__avx2";
  t.op = "Attention";
  t.domain = "anvil";
  t.isa = "avx2";
  t.supports = supportsAttention;
  t.run = runAttention;
  r.add(std::move(t));
}

}  // namespace anvil::cpu::tactics
