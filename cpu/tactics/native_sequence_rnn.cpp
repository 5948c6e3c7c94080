// Native kernels of the ONNX recurrent layers (f32): LSTM, GRU and RNN, each as
// f32_<cell>_packed_4x32__avx512, f32_<cell>_packed_4x16__avx2 and the portable
// f32_<cell>_packed_4x16. Default activations only (LSTM sigmoid/tanh/tanh, GRU
// sigmoid/tanh, RNN tanh), no clip, no peepholes, no input_forget: anything else is
// declined and the reference kernel (cpu/kernels/control_rnn.cpp, in double) serves it.
// Every direction, both layouts, sequence_lens, initial states, GRU's
// linear_before_reset, and any subset of the outputs. Also anvil.LSTMStack
// (f32_lstm_stack_packed_*: stacked forward LSTM layers, overlapped at batch 1; see the
// section at the end).
//
// Prepare packs W and R transposed, gate-major with each gate's H columns padded to Hp (a
// multiple of 8, 16 for GRU and RNN so that every GEMM is whole 16-column panels):
// Wt[d] is [I][G*Hp] (stored as the GEMM engine's packed B), Rt[d] is [H][G*Hp] (GRU:
// [H][2*Hp] for z and r, and [H][Hp] for the hidden gate, which needs the reset gate
// first), so a row of gates is one contiguous run and a gate's units are whole vectors; the
// biases Wb + Rb are summed once (GRU's hidden-gate Rb stays apart, inside the reset
// product). At run the input projection of all time steps is one GEMM per direction on the
// engine (cpu/tactics/gemm_kernels.h: X[S*B, I] x Wt, the bias added per finished block)
// into the workspace; then each (direction, batch row) runs its recurrence: per step gates
// = XW[t] + h x Rt, then the gate math. An LSTM run of one or two rows takes the fused row
// step (lstmRow*: the gates stay in registers, 8 accumulator chains per chunk of units,
// reading its own copy of Rt regrouped by chunk, Rc; on AVX2 the gate math of a chunk in
// lockstep, gatesLockstep8), larger runs the small GEMM (gemmAcc*) and the cell over the
// gates in memory; both give the same bits. Alternate steps accumulate over k backwards,
// so that the part of Rt read last (still in L1) is read first. The recurrences are
// independent and spread over the executor's threads; a single one (batch 1, one
// direction) with a second thread overlaps the projection instead (in blocks of steps on
// the other task, see runCell). Each output element is computed by one task in a fixed
// order, so the bits do not depend on the thread count.
//
// Measured (NativeRnnBench.DISABLED_Layers, 5th percentile of single calls, one thread,
// shared 2-core Xeon VM with AVX-512), one layer of models-bench/lstm_h64_s50 (S 50, B 1,
// I 64, H 64): 33 us avx512 (v1: ~65 us) / 61 us avx2 / 330 us portable; per layer ~16 us
// is the h x Rt GEMV (64 KB of Rt per step: bound by L1 loads, ~330 ns a step), ~6 us the
// cell (latency of exp -> reciprocal -> c -> tanh), ~9 us the projection (~90% of the FMA
// peak). The zoo's lstm model (2 layers, S 10, B 2, I 16, H 32): 9 us vs 13 (v1); GRU S 50,
// B 1, H 64: 26 us vs 34.
// On Zen 1 (AVX2 on 128-bit halves, 32 KB L1d: Rt of H 64 streams from L2 every step), the
// whole lstm_h64_s50 model through anvil_bench_runtime, old and new engines alternating:
// 1 thread 285 -> 253 us, 2 threads 285 -> 182 us (Rc, the lockstep gates, the pipelined
// projection). Per layer at 1 thread: ~50 us projection (~80% of the FMA peak), ~52 us the
// h x Rc GEMVs alone, ~25 us what the cell adds on top of them.
// On the Xeon guest with AMX (48 KB L1d, 2 MB L2; standalone copies of lstmChunkAvx512, 50
// steps of H 64, one thread): the GEMV is bound by its 512-bit loads, which that core serves
// at ~4.3 a ns from L1 and ~2.4 from L2 (FMAs alone: 7.3 a ns), not by the FMAs: 348 ns a
// step alone, 283 with a 32 KB stand-in for Rc that stays in L1 (64 KB of Rc against 48 KB
// of L1: the alternate-direction order leaves ~16 KB a step to L2); the cell adds 75-90 ns.
// Not kept: each step's k order against its chunk order (a step starting on the h its
// previous step finished first: no change); each chunk's cell spread over the next chunk's
// k loop (software-pipelined: 440 -> 423 ns a step); chunks of 16 or 64 units (no better).
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstring>
#include <string>

#include "cpu/tactics/gemm_kernels.h"
#include "cpu/tactics/native_sequence_util.h"
#include "cpu/tactics/native_sequence_math.h"

namespace anvil::runtime::seq {

namespace {

constexpr int kMR = 4;    // rows per micro-kernel call
constexpr int kNR = 16;   // columns per micro-kernel step (two AVX2 vectors)
// Runs of at most this many rows take the fused LSTM row step, one row at a time (each
// streams Rt once per step; the GEMM path streams it once for all rows of the run). At S 50,
// H 64, AVX-512, one thread: batch 3 88 us GEMM vs 95 fused, batch 8 213 vs 239.
constexpr int64_t kFusedRows = 2;

enum class Cell : int32_t { kRnn, kLstm, kGru };

struct RnnParams {
  Cell cell = Cell::kLstm;
  int32_t dirs = 1;      // 1 or 2
  int32_t reverse = 0;   // direction "reverse" (a single backward direction)
  int32_t layout = 0;    // 0: X [S, B, I]; 1: X [B, S, I]
  int32_t linearBeforeReset = 0;  // GRU
  int32_t gates = 4;     // 1, 4 or 3
  int64_t H = 0, Hp = 0, Gp = 0, I = 0;
  int64_t Rp = 0;        // columns of Rt: Gp, or 2 * Hp for GRU (z and r only)
  cpu::tactics::GemmIsa gemmIsa = cpu::tactics::GemmIsa::kPortable4x8;  // the input projection's
  int32_t tasks = 1;     // the executor threads prepared for (projection scratch slots)
  int64_t wtFloats = 0;  // one direction's packed Wt
  int64_t slotFloats = 0;
};

// ---- GEMM: C[m][0..Gp) += A[m][0..K) x Bp[K][Gp], rows m < MR ---------------------------
// Each element accumulates over k in order from its value in C: the result of an element
// does not depend on MR or on which other rows share the call.

template <int MR>
void gemmAccPortable(int64_t K, const float* A, int64_t lda, const float* Bp, int64_t N, float* C, int64_t ldc,
                     bool rev) {
  for (int64_t n0 = 0; n0 < N; n0 += kNR) {
    float acc[MR][kNR];
    for (int m = 0; m < MR; ++m)
      for (int j = 0; j < kNR; ++j) acc[m][j] = C[m * ldc + n0 + j];
    for (int64_t i = 0; i < K; ++i) {
      const int64_t k = rev ? K - 1 - i : i;
      const float* b = Bp + k * N + n0;
      for (int m = 0; m < MR; ++m) {
        const float a = A[m * lda + k];
        for (int j = 0; j < kNR; ++j) acc[m][j] += a * b[j];
      }
    }
    for (int m = 0; m < MR; ++m)
      for (int j = 0; j < kNR; ++j) C[m * ldc + n0 + j] = acc[m][j];
  }
}

// MR rows x NV vectors of 8 columns: MR * NV independent accumulator chains. One row (the
// batch-1 recurrence) takes 8 vectors, so that the FMA latency hides behind 8 chains
// instead of 2.
template <int MR, int NV>
__attribute__((target("avx2,fma"))) inline void gemmBlockAvx2(int64_t K, const float* A, int64_t lda, const float* Bp,
                                                              int64_t N, float* C, int64_t ldc, bool rev) {
  __m256 acc[MR][NV];
  #pragma GCC unroll 16
  for (int m = 0; m < MR; ++m)
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[m][v] = _mm256_loadu_ps(C + m * ldc + 8 * v);
  for (int64_t i = 0; i < K; ++i) {
    const int64_t k = rev ? K - 1 - i : i;
    __m256 b[NV];
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) b[v] = _mm256_loadu_ps(Bp + k * N + 8 * v);
    #pragma GCC unroll 16
    for (int m = 0; m < MR; ++m) {
      const __m256 a = _mm256_broadcast_ss(A + m * lda + k);
      #pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[m][v] = _mm256_fmadd_ps(a, b[v], acc[m][v]);
    }
  }
  #pragma GCC unroll 16
  for (int m = 0; m < MR; ++m)
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) _mm256_storeu_ps(C + m * ldc + 8 * v, acc[m][v]);
}

template <int MR>
__attribute__((target("avx2,fma"))) void gemmAccAvx2(int64_t K, const float* A, int64_t lda, const float* Bp,
                                                     int64_t N, float* C, int64_t ldc, bool rev) {
  constexpr int NV = MR == 1 ? 8 : MR == 2 ? 4 : 2;
  int64_t n0 = 0;
  for (; n0 + 8 * NV <= N; n0 += 8 * NV) gemmBlockAvx2<MR, NV>(K, A, lda, Bp + n0, N, C + n0, ldc, rev);
  for (; n0 < N; n0 += kNR) gemmBlockAvx2<MR, 2>(K, A, lda, Bp + n0, N, C + n0, ldc, rev);
}

// ---- the gate functions: native_sequence_math.h's polynomial for e^x; the division
// replaced by an approximate reciprocal and one Newton step (AVX-512: 14-bit start, within
// 1 ulp; AVX2: 12-bit start, within 2 ulp).

__attribute__((target("avx2,fma"))) inline __m256 recip8(__m256 d) {
  const __m256 r = _mm256_rcp_ps(d);
  return _mm256_fmadd_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(1.0f)), r);
}

__attribute__((target("avx2,fma"))) inline __m256 gateSigmoid8(__m256 x) {
  return recip8(_mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

__attribute__((target("avx2,fma"))) inline __m256 gateTanh8(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
  const __m256 e = exp8(_mm256_mul_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(-2.0f)));
  const __m256 t = _mm256_mul_ps(_mm256_sub_ps(one, e), recip8(_mm256_add_ps(one, e)));
  return _mm256_or_ps(t, _mm256_and_ps(sign, x));
}

// The gates of N vectors at once: sigmoid of v[0..NS), tanh of v[NS..N), each vector with
// exactly gateSigmoid8's / gateTanh8's operations (exp8, recip8: the same bits), but every
// step done for all N before the next. A gate function is a chain of ~25 dependent
// operations; one at a time, the cell of 16 units (i, o, f, c~ of two vectors, then
// tanh c) is several such chains in a row, each longer than the reorder window lets the
// core overlap, so it ran at its latency: 64 units took ~750 ns on Zen 1 against ~540 in
// lockstep (50 steps of H 64, fused row: ~90 -> ~77 us).
template <int N, int NS>
__attribute__((target("avx2,fma"), always_inline)) inline void gatesLockstep8(__m256* v) {
  const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f), lo = _mm256_set1_ps(-87.3f);
  __m256 in[N], x[N], n[N], r[N], p[N];
  // exp8's argument: -v (sigmoid) or -2|v| (tanh).
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i)
    in[i] = i < NS ? _mm256_sub_ps(_mm256_setzero_ps(), v[i])
                   : _mm256_mul_ps(_mm256_andnot_ps(sign, v[i]), _mm256_set1_ps(-2.0f));
  // exp8, step by step.
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) x[i] = _mm256_min_ps(_mm256_max_ps(in[i], lo), _mm256_set1_ps(88.3f));
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i)
    n[i] = _mm256_round_ps(_mm256_mul_ps(x[i], _mm256_set1_ps(1.44269504088896341f)),
                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) r[i] = _mm256_fnmadd_ps(n[i], _mm256_set1_ps(0.693359375f), x[i]);
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) r[i] = _mm256_fnmadd_ps(n[i], _mm256_set1_ps(-2.12194440e-4f), r[i]);
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i)
    p[i] = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500e-4f), r[i], _mm256_set1_ps(1.3981999507e-3f));
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) p[i] = _mm256_fmadd_ps(p[i], r[i], _mm256_set1_ps(8.3334519073e-3f));
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) p[i] = _mm256_fmadd_ps(p[i], r[i], _mm256_set1_ps(4.1665795894e-2f));
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) p[i] = _mm256_fmadd_ps(p[i], r[i], _mm256_set1_ps(1.6666665459e-1f));
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) p[i] = _mm256_fmadd_ps(p[i], r[i], _mm256_set1_ps(5.0000001201e-1f));
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) p[i] = _mm256_fmadd_ps(p[i], _mm256_mul_ps(r[i], r[i]), _mm256_add_ps(r[i], one));
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) {
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n[i]), _mm256_set1_epi32(127)), 23);
    const __m256 y = _mm256_mul_ps(p[i], _mm256_castsi256_ps(e));
    const __m256 under = _mm256_cmp_ps(in[i], lo, _CMP_LT_OQ);
    const __m256 nan = _mm256_cmp_ps(in[i], in[i], _CMP_UNORD_Q);
    p[i] = _mm256_blendv_ps(_mm256_andnot_ps(under, y), in[i], nan);  // e
  }
  // 1 / (1 + e), or sign(v) (1 - e) / (1 + e).
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) {
    const __m256 q = recip8(_mm256_add_ps(one, p[i]));
    v[i] = i < NS ? q : _mm256_or_ps(_mm256_mul_ps(_mm256_sub_ps(one, p[i]), q), _mm256_and_ps(sign, v[i]));
  }
}

ANVIL_AVX512 inline __m512 recip16(__m512 d) {
  const __m512 r = _mm512_mask_rcp14_ps(d, __mmask16(0xffff), d);
  return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f)), r);
}

// e^x as exp16's polynomial, 2^n applied by scalef: 15 instructions instead of 23 (the
// cell is bound by its vector ALU ops: 7.7 -> 6.4 us for 50 steps of 64 units). x is
// clamped to [-86.5, 80]: e^x stays a normal float and so does its reciprocal in the
// sigmoid (no denormal assists); the clamps are far beyond where the gates saturate in f32.
// NaN stays NaN (max/min return their second operand on NaN). The full-mask forms: GCC
// 12's plain ones start from an undefined vector and warn at -O2.
ANVIL_AVX512 inline __m512 gateExp16(__m512 x) {
  const __mmask16 all = 0xffff;
  const __m512 lo = _mm512_set1_ps(-86.5f), hi = _mm512_set1_ps(80.0f);
  x = _mm512_mask_max_ps(x, all, lo, x);
  x = _mm512_mask_min_ps(x, all, hi, x);
  const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
  const __m512 n = _mm512_mask_roundscale_ps(t, all, t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_mask_scalef_ps(p, all, p, n);
}

ANVIL_AVX512 inline __m512 gateSigmoid16(__m512 x) {
  return recip16(_mm512_add_ps(_mm512_set1_ps(1.0f), gateExp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

// tanh x = (1 - e) / (1 + e), e = e^(-2x): with the clamp e stays finite, so no sign
// juggling; near 0 the absolute error is ~1e-7, as with the |x| form.
ANVIL_AVX512 inline __m512 gateTanh16(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 e = gateExp16(_mm512_mul_ps(x, _mm512_set1_ps(-2.0f)));
  return _mm512_mul_ps(_mm512_sub_ps(one, e), recip16(_mm512_add_ps(one, e)));
}

// ---- gate math over one row of Hp units (Hp a multiple of 8) ------------------------------

inline float sigmoidf(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// LSTM: gates [i | o | f | c~], each Hp wide; updates c and h.
void lstmCellPortable(const float* g, int64_t Hp, float* c, float* h) {
  for (int64_t j = 0; j < Hp; ++j) {
    const float i = sigmoidf(g[j]), o = sigmoidf(g[Hp + j]), f = sigmoidf(g[2 * Hp + j]);
    const float cand = std::tanh(g[3 * Hp + j]);
    c[j] = f * c[j] + i * cand;
    h[j] = o * std::tanh(c[j]);
  }
}

// RNN: h = tanh(g).
void rnnCellPortable(const float* g, int64_t Hp, float*, float* h) {
  for (int64_t j = 0; j < Hp; ++j) h[j] = std::tanh(g[j]);
}

// GRU, first half: z and r (the first 2 * Hp gates) through the sigmoid, in place; rh =
// r * h (the reset product, for linear_before_reset = 0).
void gruGatesPortable(float* g, int64_t Hp, const float* h, float* rh) {
  for (int64_t j = 0; j < 2 * Hp; ++j) g[j] = sigmoidf(g[j]);
  for (int64_t j = 0; j < Hp; ++j) rh[j] = g[Hp + j] * h[j];
}

// GRU, second half: hh = tanh(xh + term) (term = Rh (r h) + Rbh) or, linear before reset,
// tanh(xh + r term) (term = Rh h + Rbh); h = (1 - z) hh + z h.
void gruOutPortable(const float* g, int64_t Hp, const float* term, bool lbr, float* h) {
  for (int64_t j = 0; j < Hp; ++j) {
    const float z = g[j], r = g[Hp + j];
    const float hh = std::tanh(g[2 * Hp + j] + (lbr ? r * term[j] : term[j]));
    h[j] = (1.0f - z) * hh + z * h[j];
  }
}

// The cell of V vectors of units from gates acc [i | o | f | c~] x V (in registers): c and h.
template <int V>
__attribute__((target("avx2,fma"), always_inline)) inline void lstmCellVectorsAvx2(__m256* acc, float* c, float* h) {
  gatesLockstep8<4 * V, 3 * V>(acc);
  __m256 cn[V];
#pragma GCC unroll 16
  for (int v = 0; v < V; ++v) {
    cn[v] = _mm256_fmadd_ps(acc[2 * V + v], _mm256_loadu_ps(c + 8 * v), _mm256_mul_ps(acc[v], acc[3 * V + v]));
    _mm256_storeu_ps(c + 8 * v, cn[v]);
  }
  gatesLockstep8<V, 0>(cn);
#pragma GCC unroll 16
  for (int v = 0; v < V; ++v) _mm256_storeu_ps(h + 8 * v, _mm256_mul_ps(acc[V + v], cn[v]));
}

template <int V>
__attribute__((target("avx2,fma"), always_inline)) inline void lstmCellChunkAvx2(const float* g, int64_t Hp, float* c,
                                                                                float* h) {
  __m256 acc[4 * V];
#pragma GCC unroll 16
  for (int q = 0; q < 4; ++q)
#pragma GCC unroll 16
    for (int v = 0; v < V; ++v) acc[q * V + v] = _mm256_loadu_ps(g + q * Hp + 8 * v);
  lstmCellVectorsAvx2<V>(acc, c, h);
}

__attribute__((target("avx2,fma"))) void lstmCellAvx2(const float* g, int64_t Hp, float* c, float* h) {
  int64_t j = 0;
  for (; j + 16 <= Hp; j += 16) lstmCellChunkAvx2<2>(g + j, Hp, c + j, h + j);
  if (j < Hp) lstmCellChunkAvx2<1>(g + j, Hp, c + j, h + j);
}

__attribute__((target("avx2,fma"))) void rnnCellAvx2(const float* g, int64_t Hp, float*, float* h) {
  for (int64_t j = 0; j < Hp; j += 8) _mm256_storeu_ps(h + j, gateTanh8(_mm256_loadu_ps(g + j)));
}

__attribute__((target("avx2,fma"))) void gruGatesAvx2(float* g, int64_t Hp, const float* h, float* rh) {
  for (int64_t j = 0; j < 2 * Hp; j += 8) _mm256_storeu_ps(g + j, gateSigmoid8(_mm256_loadu_ps(g + j)));
  for (int64_t j = 0; j < Hp; j += 8)
    _mm256_storeu_ps(rh + j, _mm256_mul_ps(_mm256_loadu_ps(g + Hp + j), _mm256_loadu_ps(h + j)));
}

__attribute__((target("avx2,fma"))) void gruOutAvx2(const float* g, int64_t Hp, const float* term, bool lbr,
                                                    float* h) {
  const __m256 one = _mm256_set1_ps(1.0f);
  for (int64_t j = 0; j < Hp; j += 8) {
    const __m256 z = _mm256_loadu_ps(g + j), r = _mm256_loadu_ps(g + Hp + j), t = _mm256_loadu_ps(term + j);
    const __m256 x = _mm256_add_ps(_mm256_loadu_ps(g + 2 * Hp + j), lbr ? _mm256_mul_ps(r, t) : t);
    const __m256 hh = gateTanh8(x);
    _mm256_storeu_ps(h + j, _mm256_fmadd_ps(z, _mm256_loadu_ps(h + j), _mm256_mul_ps(_mm256_sub_ps(one, z), hh)));
  }
}

// ---- one LSTM step of one row, fused ---------------------------------------------------
// gates = xw + h x Rt, then the cell, with the gates in registers (never stored). Per
// column the same FMAs in the same k order as gemmAcc followed by lstmCell: the same bits,
// so which of the two paths serves a row is free to choose. Units go in chunks (AVX2: 16
// units = 4 gates x 2 vectors, 8 chains; AVX-512: 32 units, 8 chains); h is read whole
// by every chunk, so the new h goes to another buffer (hOut). `rev` runs k (and the
// chunks) backwards: alternate steps do, so that the end of Rt just streamed, still in L1,
// is read first (Rt of H 64 is 64 KB, more than L1 holds; 25% faster per step measured).

template <int V>
__attribute__((target("avx2,fma"))) inline void lstmChunkAvx2(int64_t K, const float* h, const float* rc, int64_t Hp,
                                                              const float* xw, bool rev, float* c, float* hOut) {
  constexpr int64_t W = 8 * V;  // the chunk's units; its rows of Rc are [4][W]
  __m256 acc[4 * V];            // [gate][vector]
  #pragma GCC unroll 16
  for (int g = 0; g < 4; ++g)
    #pragma GCC unroll 16
    for (int v = 0; v < V; ++v) acc[g * V + v] = _mm256_loadu_ps(xw + g * Hp + 8 * v);
  const int64_t step = rev ? -4 * W : 4 * W;
  const float* r = rc + (rev ? K - 1 : 0) * 4 * W;
  const float* hk = h + (rev ? K - 1 : 0);
  const int64_t hstep = rev ? -1 : 1;
  for (int64_t i = 0; i < K; ++i, hk += hstep, r += step) {
    const __m256 a = _mm256_broadcast_ss(hk);
#pragma GCC unroll 16
    for (int g = 0; g < 4 * V; ++g) acc[g] = _mm256_fmadd_ps(a, _mm256_loadu_ps(r + 8 * g), acc[g]);
  }
  lstmCellVectorsAvx2<V>(acc, c, hOut);
}

// rc: one direction's Rc for chunks of 16 units (see packRowChunks).
__attribute__((target("avx2,fma"))) void lstmRowAvx2(int64_t K, const float* h, const float* rc, int64_t Hp,
                                                     const float* xw, bool rev, float* c, float* hOut) {
  constexpr int64_t CW = 16;
  const int64_t chunks = (Hp + CW - 1) / CW;
  for (int64_t q = 0; q < chunks; ++q) {
    const int64_t j = (rev ? chunks - 1 - q : q) * CW;
    const float* r = rc + j * 4 * K;
    if (Hp - j >= 16) lstmChunkAvx2<2>(K, h, r, Hp, xw + j, rev, c + j, hOut + j);
    else lstmChunkAvx2<1>(K, h, r, Hp, xw + j, rev, c + j, hOut + j);
  }
}

// ---- AVX-512F: the same GEMM (32 columns per step, a 16-column tail) and gate math on
// 16 lanes; LSTM's Hp (a multiple of 8) ends in a masked half vector.

template <int MR, int NV>
ANVIL_AVX512 inline void gemmBlockAvx512(int64_t K, const float* A, int64_t lda, const float* Bp, int64_t N, float* C,
                                         int64_t ldc, bool rev) {
  __m512 acc[MR][NV];
  #pragma GCC unroll 16
  for (int m = 0; m < MR; ++m)
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[m][v] = _mm512_loadu_ps(C + m * ldc + 16 * v);
  for (int64_t i = 0; i < K; ++i) {
    const int64_t k = rev ? K - 1 - i : i;
    __m512 b[NV];
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_ps(Bp + k * N + 16 * v);
    #pragma GCC unroll 16
    for (int m = 0; m < MR; ++m) {
      const __m512 a = _mm512_set1_ps(A[m * lda + k]);
      #pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[m][v] = _mm512_fmadd_ps(a, b[v], acc[m][v]);
    }
  }
  #pragma GCC unroll 16
  for (int m = 0; m < MR; ++m)
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(C + m * ldc + 16 * v, acc[m][v]);
}

template <int MR>
ANVIL_AVX512 void gemmAccAvx512(int64_t K, const float* A, int64_t lda, const float* Bp, int64_t N, float* C,
                               int64_t ldc, bool rev) {
  constexpr int NV = MR == 1 ? 8 : 4;  // 8 to 16 chains; B 8: 4 rows x 4 vectors measured 2x faster than x 2
  int64_t n0 = 0;
  for (; n0 + 16 * NV <= N; n0 += 16 * NV) gemmBlockAvx512<MR, NV>(K, A, lda, Bp + n0, N, C + n0, ldc, rev);
  for (; n0 + 32 <= N; n0 += 32) gemmBlockAvx512<MR, 2>(K, A, lda, Bp + n0, N, C + n0, ldc, rev);
  for (; n0 < N; n0 += 16) gemmBlockAvx512<MR, 1>(K, A, lda, Bp + n0, N, C + n0, ldc, rev);
}

// Lanes j..j+16 of an Hp-long row, Hp a multiple of 8.
ANVIL_AVX512 inline __mmask16 laneMask(int64_t Hp, int64_t j) { return Hp - j >= 16 ? __mmask16(0xffff) : __mmask16(0xff); }

ANVIL_AVX512 void lstmCellAvx512(const float* g, int64_t Hp, float* c, float* h) {
  for (int64_t j = 0; j < Hp; j += 16) {
    const __mmask16 k = laneMask(Hp, j);
    const __m512 i = gateSigmoid16(_mm512_maskz_loadu_ps(k, g + j)), o = gateSigmoid16(_mm512_maskz_loadu_ps(k, g + Hp + j));
    const __m512 f = gateSigmoid16(_mm512_maskz_loadu_ps(k, g + 2 * Hp + j));
    const __m512 cand = gateTanh16(_mm512_maskz_loadu_ps(k, g + 3 * Hp + j));
    const __m512 cn = _mm512_fmadd_ps(f, _mm512_maskz_loadu_ps(k, c + j), _mm512_mul_ps(i, cand));
    _mm512_mask_storeu_ps(c + j, k, cn);
    _mm512_mask_storeu_ps(h + j, k, _mm512_mul_ps(o, gateTanh16(cn)));
  }
}

ANVIL_AVX512 void rnnCellAvx512(const float* g, int64_t Hp, float*, float* h) {
  for (int64_t j = 0; j < Hp; j += 16) {
    const __mmask16 k = laneMask(Hp, j);
    _mm512_mask_storeu_ps(h + j, k, gateTanh16(_mm512_maskz_loadu_ps(k, g + j)));
  }
}

ANVIL_AVX512 void gruGatesAvx512(float* g, int64_t Hp, const float* h, float* rh) {
  for (int64_t j = 0; j < 2 * Hp; j += 16) {
    const __mmask16 k = laneMask(2 * Hp, j);
    _mm512_mask_storeu_ps(g + j, k, gateSigmoid16(_mm512_maskz_loadu_ps(k, g + j)));
  }
  for (int64_t j = 0; j < Hp; j += 16) {
    const __mmask16 k = laneMask(Hp, j);
    _mm512_mask_storeu_ps(rh + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + Hp + j), _mm512_maskz_loadu_ps(k, h + j)));
  }
}

ANVIL_AVX512 void gruOutAvx512(const float* g, int64_t Hp, const float* term, bool lbr, float* h) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t j = 0; j < Hp; j += 16) {
    const __mmask16 k = laneMask(Hp, j);
    const __m512 z = _mm512_maskz_loadu_ps(k, g + j), r = _mm512_maskz_loadu_ps(k, g + Hp + j);
    const __m512 t = _mm512_maskz_loadu_ps(k, term + j);
    const __m512 x = _mm512_add_ps(_mm512_maskz_loadu_ps(k, g + 2 * Hp + j), lbr ? _mm512_mul_ps(r, t) : t);
    const __m512 hh = gateTanh16(x);
    _mm512_mask_storeu_ps(h + j, k,
                          _mm512_fmadd_ps(z, _mm512_maskz_loadu_ps(k, h + j), _mm512_mul_ps(_mm512_sub_ps(one, z), hh)));
  }
}

// V vectors of 16 units per gate; with Tail the last one holds 8 (Hp is a multiple of 8).
template <int V, bool Tail>
ANVIL_AVX512 inline void lstmChunkAvx512(int64_t K, const float* h, const float* rc, int64_t Hp, const float* xw,
                                         bool rev, float* c, float* hOut) {
  constexpr int64_t W = 16 * V - (Tail ? 8 : 0);  // the chunk's units; its rows of Rc are [4][W]
  auto mask = [](int v) { return Tail && v == V - 1 ? __mmask16(0xff) : __mmask16(0xffff); };
  __m512 acc[4][V];
  #pragma GCC unroll 16
  for (int g = 0; g < 4; ++g)
    #pragma GCC unroll 16
    for (int v = 0; v < V; ++v) acc[g][v] = _mm512_maskz_loadu_ps(mask(v), xw + g * Hp + 16 * v);
  const int64_t step = rev ? -4 * W : 4 * W;
  const float* r = rc + (rev ? K - 1 : 0) * 4 * W;
  const float* hk = h + (rev ? K - 1 : 0);
  const int64_t hstep = rev ? -1 : 1;
  for (int64_t i = 0; i < K; ++i, hk += hstep, r += step) {
    const __m512 a = _mm512_set1_ps(*hk);
#pragma GCC unroll 16
    for (int g = 0; g < 4; ++g)
#pragma GCC unroll 16
      for (int v = 0; v < V; ++v) {
        const float* rv = r + g * W + 16 * v;
        const __m512 b = Tail && v == V - 1 ? _mm512_maskz_loadu_ps(mask(v), rv) : _mm512_loadu_ps(rv);
        acc[g][v] = _mm512_fmadd_ps(a, b, acc[g][v]);
      }
  }
  for (int v = 0; v < V; ++v) {
    const __mmask16 m = mask(v);
    const __m512 i = gateSigmoid16(acc[0][v]), o = gateSigmoid16(acc[1][v]), f = gateSigmoid16(acc[2][v]);
    const __m512 cand = gateTanh16(acc[3][v]);
    const __m512 cn = _mm512_fmadd_ps(f, _mm512_maskz_loadu_ps(m, c + 16 * v), _mm512_mul_ps(i, cand));
    _mm512_mask_storeu_ps(c + 16 * v, m, cn);
    _mm512_mask_storeu_ps(hOut + 16 * v, m, _mm512_mul_ps(o, gateTanh16(cn)));
  }
}

// Chunks of 32 units (8 chains): the cell of one chunk overlaps the next chunk's GEMV
// (5% faster per step than one chunk of 64 at H 64). rc: one direction's Rc for chunks of
// 32 units.
ANVIL_AVX512 void lstmRowAvx512(int64_t K, const float* h, const float* rc, int64_t Hp, const float* xw, bool rev,
                                float* c, float* hOut) {
  constexpr int64_t CW = 32;
  const int64_t chunks = (Hp + CW - 1) / CW;
  using Chunk = void (*)(int64_t, const float*, const float*, int64_t, const float*, bool, float*, float*);
  // [vectors - 1][tail]
  static constexpr Chunk kChunks[2][2] = {{lstmChunkAvx512<1, false>, lstmChunkAvx512<1, true>},
                                          {lstmChunkAvx512<2, false>, lstmChunkAvx512<2, true>}};
  for (int64_t q = 0; q < chunks; ++q) {
    const int64_t j = (rev ? chunks - 1 - q : q) * CW, n = std::min<int64_t>(CW, Hp - j);
    kChunks[(n + 15) / 16 - 1][n % 16 != 0](K, h, rc + j * 4 * K, Hp, xw + j, rev, c + j, hOut + j);
  }
}

// ---- the projection's epilogue: C[rows][cols] += bias[cols] (GCC's -O2 cost model leaves
// the plain loop scalar: 5 us of a 37 us layer at S 50, H 64).

void addBiasPortable(const float* bias, int64_t rows, int64_t cols, float* c, int64_t ldc) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) c[i * ldc + j] += bias[j];
}

__attribute__((target("avx2,fma"))) void addBiasAvx2(const float* bias, int64_t rows, int64_t cols, float* c,
                                                     int64_t ldc) {
  for (int64_t i = 0; i < rows; ++i) {
    float* ci = c + i * ldc;
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) _mm256_storeu_ps(ci + j, _mm256_add_ps(_mm256_loadu_ps(ci + j), _mm256_loadu_ps(bias + j)));
    for (; j < cols; ++j) ci[j] += bias[j];
  }
}

ANVIL_AVX512 void addBiasAvx512(const float* bias, int64_t rows, int64_t cols, float* c, int64_t ldc) {
  for (int64_t i = 0; i < rows; ++i) {
    float* ci = c + i * ldc;
    for (int64_t j = 0; j < cols; j += 16) {
      const __mmask16 m = cols - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (cols - j)) - 1);
      _mm512_mask_storeu_ps(ci + j, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, ci + j), _mm512_maskz_loadu_ps(m, bias + j)));
    }
  }
}

struct Isa {
  void (*gemm[kMR + 1])(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, bool);
  void (*lstmCell)(const float*, int64_t, float*, float*);
  void (*rnnCell)(const float*, int64_t, float*, float*);
  void (*gruGates)(float*, int64_t, const float*, float*);
  void (*gruOut)(const float*, int64_t, const float*, bool, float*);
  // One fused LSTM step of one row (null: the GEMM and lstmCell serve every row), and the
  // units per chunk of the Rc it reads.
  void (*lstmRow)(int64_t, const float*, const float*, int64_t, const float*, bool, float*, float*);
  int64_t rowChunk;
  void (*addBias)(const float*, int64_t, int64_t, float*, int64_t);
};

constexpr Isa kPortable = {{nullptr, gemmAccPortable<1>, gemmAccPortable<2>, gemmAccPortable<3>, gemmAccPortable<4>},
                           lstmCellPortable, rnnCellPortable, gruGatesPortable, gruOutPortable, nullptr, 0, addBiasPortable};
constexpr Isa kAvx2 = {{nullptr, gemmAccAvx2<1>, gemmAccAvx2<2>, gemmAccAvx2<3>, gemmAccAvx2<4>},
                       lstmCellAvx2, rnnCellAvx2, gruGatesAvx2, gruOutAvx2, lstmRowAvx2, 16, addBiasAvx2};
constexpr Isa kAvx512 = {{nullptr, gemmAccAvx512<1>, gemmAccAvx512<2>, gemmAccAvx512<3>, gemmAccAvx512<4>},
                         lstmCellAvx512, rnnCellAvx512, gruGatesAvx512, gruOutAvx512, lstmRowAvx512, 32, addBiasAvx512};

// C rows [0, M) += A x Bp (Bp: [K][N]), in blocks of kMR rows; k descending where rev.
void gemmAcc(const Isa& isa, int64_t M, int64_t K, const float* A, int64_t lda, const float* Bp, int64_t N, float* C,
             int64_t ldc, bool rev = false) {
  for (int64_t m = 0; m < M; m += kMR) {
    const int mr = int(std::min<int64_t>(kMR, M - m));
    isa.gemm[mr](K, A + m * lda, lda, Bp, N, C + m * ldc, ldc, rev);
  }
}

// ---- supports / prepare ---------------------------------------------------------------

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

int directionsOf(const std::string& dir) {
  return dir == "bidirectional" ? 2 : dir == "forward" || dir == "reverse" ? 1 : 0;
}

int gatesOf(Cell c) { return c == Cell::kRnn ? 1 : c == Cell::kLstm ? 4 : 3; }

bool isConstant(const ir::Node& n, size_t i) {
  return i < n.numInputs() && n.inputs()[i] && n.inputs()[i]->isInitializer();
}

bool present(const std::vector<ir::TensorType>& in, size_t i) {
  return i < in.size() && in[i].dtype != DataType::kUndefined;
}

bool supportsCell(Cell cell, const ir::Node& n, const std::vector<ir::TensorType>& in) {
  const ir::Attributes& a = n.attrs();
  const int D = directionsOf(a.getString("direction", "forward"));
  if (D == 0 || a.has("clip") || a.getInt("input_forget", 0) != 0) return false;
  const int64_t layout = a.getInt("layout", 0);
  if (layout != 0 && layout != 1) return false;
  // Default activations, also when spelled out (per direction, or once for both).
  static const std::vector<std::string> kRnn = {"tanh"}, kLstm = {"sigmoid", "tanh", "tanh"}, kGru = {"sigmoid", "tanh"};
  const std::vector<std::string>& defaults = cell == Cell::kRnn ? kRnn : cell == Cell::kLstm ? kLstm : kGru;
  const std::vector<std::string> acts = a.getStrings("activations", {});
  if (!acts.empty()) {
    if (acts.size() != defaults.size() * size_t(D) && acts.size() != defaults.size()) return false;
    for (size_t i = 0; i < acts.size(); ++i)
      if (lower(acts[i]) != defaults[i % defaults.size()]) return false;
  }
  // Inputs: X W R B sequence_lens initial_h (LSTM: initial_c P).
  const size_t maxInputs = cell == Cell::kLstm ? 7 : 6;  // LSTM's P (input 7) is declined
  if (in.size() < 3 || !allStatic(in)) return false;
  for (size_t i = maxInputs; i < in.size(); ++i)
    if (present(in, i)) return false;
  for (size_t i : {0, 1, 2, 3, 5, 6})
    if (present(in, i) && (in[i].dtype != DataType::kF32)) return false;
  if (present(in, 4) && in[4].dtype != DataType::kI32) return false;
  // W, R and B are packed at build time.
  if (!isConstant(n, 1) || !isConstant(n, 2) || (present(in, 3) && !isConstant(n, 3))) return false;
  const ir::Shape &x = in[0].shape, &w = in[1].shape, &r = in[2].shape;
  if (x.rank() != 3 || w.rank() != 3 || r.rank() != 3) return false;
  const int64_t G = gatesOf(cell), H = r[2].value(), I = x[2].value();
  if (H <= 0 || (a.has("hidden_size") && a.getInt("hidden_size", 0) != H)) return false;
  if (w[0].value() != D || w[1].value() != G * H || w[2].value() != I) return false;
  if (r[0].value() != D || r[1].value() != G * H) return false;
  if (present(in, 3) && (in[3].shape.rank() != 2 || in[3].shape[0].value() != D || in[3].shape[1].value() != 2 * G * H))
    return false;
  return true;
}

std::string floatsBlob(int64_t n) { return std::string(size_t(n) * sizeof(float), '\0'); }

// The pipelined projection (one recurrence, two or more threads: see runCell) hands out
// blocks of this many time steps.
constexpr int64_t kPipeSteps = 8;

// Workspace pieces, in order, for S steps and B batch rows; state row u = d * B + b.
struct Work {
  float *xw, *h, *h2, *c, *gates, *rh, *term;  // h2: the fused LSTM row's second h buffer
  float* slots;  // the projection GEMM's per-task scratch, p.tasks x p.slotFloats
  int64_t* lens;
  // The pipelined projection: the next block to claim, and per block 1 once its rows of xw
  // are written (read and written through std::atomic_ref).
  int32_t *pipeNext, *pipeDone;
};

Work carve(Carver& cv, const RnnParams& p, int64_t S, int64_t B) {
  Work w;
  const int64_t rows = p.dirs * B;
  w.xw = cv.take<float>(p.dirs * S * B * p.Gp);
  w.h = cv.take<float>(rows * p.Hp);
  w.h2 = cv.take<float>(p.cell == Cell::kLstm ? rows * p.Hp : 0);
  w.c = cv.take<float>(p.cell == Cell::kLstm ? rows * p.Hp : 0);
  w.gates = cv.take<float>(rows * p.Gp);
  w.rh = cv.take<float>(p.cell == Cell::kGru ? rows * p.Hp : 0);
  w.term = cv.take<float>(p.cell == Cell::kGru ? rows * p.Hp : 0);
  w.slots = cv.take<float>(p.tasks * p.slotFloats);
  w.lens = cv.take<int64_t>(B);
  w.pipeNext = cv.take<int32_t>(1);
  w.pipeDone = cv.take<int32_t>((S + kPipeSteps - 1) / kPipeSteps);
  return w;
}

// Rt of one direction ([H][Gp], LSTM) regrouped for the fused row step: per chunk of cw
// units (the last one narrower where Hp is not a multiple), [H][4][w] with the chunk's w
// units of each gate side by side, so that a chunk streams one contiguous run of 64 * w
// bytes per k instead of four runs a row of Rt apart (the hardware prefetcher follows the
// one; on Zen 1, where Rt of H 64 comes from L2 every step, 50 steps of H 64 went from
// ~128 to ~90 us). The chunk of units j.. starts at j * 4 * H.
void packRowChunks(const float* rt, int64_t H, int64_t Hp, int64_t cw, float* rc) {
  const int64_t Gp = 4 * Hp;
  for (int64_t j = 0; j < Hp; j += cw) {
    const int64_t w = std::min(cw, Hp - j);
    float* chunk = rc + j * 4 * H;
    for (int64_t k = 0; k < H; ++k)
      for (int64_t g = 0; g < 4; ++g)
        std::memcpy(chunk + (k * 4 + g) * w, rt + k * Gp + g * Hp + j, size_t(w) * sizeof(float));
  }
}

// Blobs: 0 Wt [D][I][Gp] as the GEMM engine's packed B (p.wtFloats per direction), 1 Rt
// [D][H][Rp], 2 bias [D][Gp] (Wb + Rb; GRU's hidden gate: Wb only); for LSTM with a fused
// row step 3 Rc [D][H * Gp] (packRowChunks); for GRU 3 Rh^t [D][H][Hp], 4 Rbh [D][Hp].
void prepareCell(Cell cell, cpu::tactics::GemmIsa gemmIsa, int64_t rowChunk, const PrepareInfo& info, Prepared* out) {
  namespace ct = cpu::tactics;
  const ir::Node& n = *info.node;
  const ir::Attributes& a = n.attrs();
  RnnParams p;
  p.cell = cell;
  const std::string dir = a.getString("direction", "forward");
  p.dirs = directionsOf(dir);
  p.reverse = dir == "reverse";
  p.layout = int32_t(a.getInt("layout", 0));
  p.linearBeforeReset = cell == Cell::kGru && a.getInt("linear_before_reset", 0) != 0;
  p.gates = gatesOf(cell);
  const ir::Tensor* W = info.constants[1];
  const ir::Tensor* R = info.constants[2];
  const ir::Tensor* Bias = info.constants.size() > 3 ? info.constants[3] : nullptr;
  ANVIL_CHECK(W && R && p.dirs > 0, ErrorCode::kInternal, n.label(), ": the native ", n.op(),
              " needs constant W and R (supports() should have declined)");
  p.H = R->dim(2);
  p.I = W->dim(2);
  p.Hp = roundUp(p.H, cell == Cell::kLstm ? 8 : 16);  // whole 16-column panels per GEMM
  p.Gp = p.gates * p.Hp;
  p.Rp = cell == Cell::kGru ? 2 * p.Hp : p.Gp;
  const ct::GemmConfig& gc = ct::gemmConfig(gemmIsa);
  p.gemmIsa = gemmIsa;
  p.tasks = std::max(1, info.threads);
  p.wtFloats = ct::packedBFloats(gc, p.I, p.Gp);
  p.slotFloats = roundUp(ct::gemmPackedBSlotFloats(gc, p.I), 16);
  out->setParams(p);
  const int64_t D = p.dirs, H = p.H, I = p.I, Hp = p.Hp, Gp = p.Gp, G = p.gates, Rp = p.Rp;
  auto col = [&](int64_t row) { return (row / H) * Hp + row % H; };  // gate g, unit j -> packed column
  std::string wt = floatsBlob(D * I * Gp), rt = floatsBlob(D * H * Rp), bias = floatsBlob(D * Gp);
  std::string rht = floatsBlob(cell == Cell::kGru ? D * H * Hp : 0), rbh = floatsBlob(cell == Cell::kGru ? D * Hp : 0);
  float* wp = reinterpret_cast<float*>(wt.data());
  float* rp = reinterpret_cast<float*>(rt.data());
  float* bp = reinterpret_cast<float*>(bias.data());
  float* rhp = reinterpret_cast<float*>(rht.data());
  float* rbhp = reinterpret_cast<float*>(rbh.data());
  const float* w = W->data<float>();
  const float* r = R->data<float>();
  for (int64_t d = 0; d < D; ++d)
    for (int64_t row = 0; row < G * H; ++row) {
      const bool gruHidden = cell == Cell::kGru && row >= 2 * H;
      for (int64_t k = 0; k < I; ++k) wp[(d * I + k) * Gp + col(row)] = w[(d * G * H + row) * I + k];
      for (int64_t k = 0; k < H; ++k) {
        const float v = r[(d * G * H + row) * H + k];
        if (gruHidden) rhp[(d * H + k) * Hp + row - 2 * H] = v;
        else rp[(d * H + k) * Rp + col(row)] = v;
      }
      if (Bias) {
        const float* b = Bias->data<float>() + d * 2 * G * H;
        bp[d * Gp + col(row)] = gruHidden ? b[row] : b[row] + b[G * H + row];
        if (gruHidden) rbhp[d * Hp + row - 2 * H] = b[G * H + row];
      }
    }
  // The input projection runs on the GEMM engine: Wt as its packed B, per direction.
  std::string wtPacked = floatsBlob(D * p.wtFloats);
  for (int64_t d = 0; d < D; ++d)
    ct::packBPanels(gc, I, Gp, {wp + d * I * Gp, Gp, 1}, 0, ct::ceilDiv(Gp, gc.nr),
                    reinterpret_cast<float*>(wtPacked.data()) + d * p.wtFloats);
  // The fused LSTM row step's Rc, where the ISA has one (its rowChunk; runCell knows it too).
  const bool withRc = cell == Cell::kLstm && rowChunk > 0;
  std::string rc = floatsBlob(withRc ? D * H * Gp : 0);
  for (int64_t d = 0; d < D && withRc; ++d)
    packRowChunks(rp + d * H * Gp, H, Hp, rowChunk, reinterpret_cast<float*>(rc.data()) + d * H * Gp);
  out->blobs = {std::move(wtPacked), std::move(rt), std::move(bias)};
  if (withRc) out->blobs.push_back(std::move(rc));
  if (cell == Cell::kGru) {
    out->blobs.push_back(std::move(rht));
    out->blobs.push_back(std::move(rbh));
  }
  out->packedInputs = {1, 2};
  if (Bias) out->packedInputs.push_back(3);
  // The longest sequence and the largest batch of the profile.
  const ir::Shape& x = info.maxTypes[0].shape;
  const int64_t S = x[p.layout == 0 ? 0 : 1].value(), B = x[p.layout == 0 ? 1 : 0].value();
  Carver cv;
  carve(cv, p, S, B);
  out->workspaceBytes = cv.used();
}

// ---- run --------------------------------------------------------------------------------

template <const Isa& isa>
void runCell(const StepArgs& a) {
  const RnnParams& p = a.paramsAs<RnnParams>();
  const TensorView& X = a.in(0);
  const int64_t D = p.dirs, H = p.H, Hp = p.Hp, Gp = p.Gp, I = p.I;
  if (X.rank != 3 || X.dims[2] != I) a.fail("X does not match the packed W");
  const int64_t S = X.dims[p.layout == 0 ? 0 : 1], B = X.dims[p.layout == 0 ? 1 : 0];
  Carver cv(a.workspace);
  const Work w = carve(cv, p, S, B);
  if (cv.used() > a.workspaceBytes) a.fail("X is larger than the profile the step was built for");
  const float* wt = a.blobs[0].as<float>();
  const float* rt = a.blobs[1].as<float>();
  const float* bias = a.blobs[2].as<float>();
  const float* rht = p.cell == Cell::kGru ? a.blobs[3].as<float>() : nullptr;
  const float* rbh = p.cell == Cell::kGru ? a.blobs[4].as<float>() : nullptr;
  const float* rcAll = p.cell == Cell::kLstm && isa.rowChunk > 0 ? a.blobs[3].as<float>() : nullptr;
  const float* x = X.as<float>();
  for (int64_t b = 0; b < B; ++b) {
    w.lens[b] = a.hasInput(4) ? a.in(4).as<int32_t>()[b] : S;
    if (w.lens[b] < 0 || w.lens[b] > S) a.fail("sequence_lens[" + std::to_string(b) + "] is outside [0, S]");
  }
  const bool lay0 = p.layout == 0;
  auto stateIdx = [&](int64_t d, int64_t b) { return lay0 ? (d * B + b) * H : (b * D + d) * H; };
  auto xRow = [&](int64_t t, int64_t b) { return lay0 ? t * B + b : b * S + t; };
  auto yIdx = [&](int64_t t, int64_t d, int64_t b) {
    return lay0 ? ((t * D + d) * B + b) * H : ((b * S + t) * D + d) * H;
  };
  const float* h0 = a.hasInput(5) ? a.in(5).as<float>() : nullptr;
  const float* c0 = p.cell == Cell::kLstm && a.hasInput(6) ? a.in(6).as<float>() : nullptr;
  auto output = [&](int i) { return a.numOutputs > i && a.out(i).present() ? a.out(i).as<float>() : nullptr; };
  float* Y = output(0);
  float* Yh = output(1);
  float* Yc = p.cell == Cell::kLstm ? output(2) : nullptr;
  // States padded to Hp with zeros (the padding lanes stay 0: their gates are 0).
  for (int64_t d = 0; d < D; ++d)
    for (int64_t b = 0; b < B; ++b) {
      float* h = w.h + (d * B + b) * Hp;
      std::fill(h, h + Hp, 0.0f);
      if (h0) std::memcpy(h, h0 + stateIdx(d, b), size_t(H) * sizeof(float));
      if (p.cell == Cell::kLstm) {
        float* c = w.c + (d * B + b) * Hp;
        std::fill(c, c + Hp, 0.0f);
        if (c0) std::memcpy(c, c0 + stateIdx(d, b), size_t(H) * sizeof(float));
      }
    }
  Executor& ex = *a.executor;
  namespace ct = cpu::tactics;
  const ct::GemmConfig& gc = ct::gemmConfig(p.gemmIsa);
  // Input projection: XW[d] = X x Wt[d] + bias[d] for rows [r0, r1) of X, on the GEMM engine
  // (each element's bits independent of the rows and tasks of the call), the bias added per
  // finished block.
  const int64_t M = S * B;
  auto project = [&](int64_t d, int64_t r0, int64_t r1, Executor* on, const ct::TaskSlots& slots) {
    const float* bd = bias + d * Gp;
    auto addBias = [bd](int64_t, int64_t rows, int64_t j0, int64_t cols, float* c, int64_t ldc) {
      isa.addBias(bd + j0, rows, cols, c, ldc);
    };
    const ct::BlockEpilogue ep(addBias);
    ct::gemmPackedB(gc, r1 - r0, Gp, I, 1.0f, {x + r0 * I, I, 1}, wt + d * p.wtFloats, w.xw + (d * M + r0) * Gp, Gp,
                    on, slots, &ep);
  };
  const int64_t units = D * B;
  // One recurrence (batch 1, one direction) and a second thread: the projection runs in
  // blocks of kPipeSteps time steps, in the order the recurrence consumes them, on the other
  // task while the recurrence runs, instead of before it (the recurrence cannot use a second
  // thread: each step needs the last). A block is claimed by whichever task gets to it
  // first: the recurrence computes it itself when the other task has not started (or runs
  // after it, as in a nested region), so nothing waits on a task that does not run. S 50,
  // I 64, H 64, AVX2 (Zen 1), 2 threads: 127 -> ~100 us per layer (the projection ~35 us
  // when split over both threads ahead of the recurrence, ~50 on one).
  const int64_t len0 = B == 1 ? w.lens[0] : 0;
  const bool pipelined = units == 1 && len0 > kPipeSteps && std::min<int64_t>(p.tasks, ex.threads()) >= 2 &&
                         double(len0) * double(I) * double(Gp) >= double(kMinTaskWork);
  const bool reverse0 = p.reverse != 0;
  const int64_t pipeBlocks = pipelined ? (len0 + kPipeSteps - 1) / kPipeSteps : 0;
  // Block i: recurrence steps [i * kPipeSteps, ...) = time steps [t0, t1) (B is 1: row = t).
  auto projectBlock = [&](int64_t i, int64_t slot) {
    const int64_t s0 = i * kPipeSteps, s1 = std::min(len0, s0 + kPipeSteps);
    const int64_t t0 = reverse0 ? len0 - s1 : s0, t1 = reverse0 ? len0 - s0 : s1;
    project(0, t0, t1, nullptr, {w.slots + slot * p.slotFloats, p.slotFloats, 1});
    std::atomic_ref<int32_t>(w.pipeDone[i]).store(1, std::memory_order_release);
  };
  auto claim = [&] { return int64_t(std::atomic_ref<int32_t>(*w.pipeNext).fetch_add(1, std::memory_order_relaxed)); };
  // Before recurrence step s: its block written, by the other task or here.
  auto awaitStep = [&](int64_t s) {
    if (!pipelined) return;
    const int64_t i = s / kPipeSteps;
    while (std::atomic_ref<int32_t>(w.pipeDone[i]).load(std::memory_order_acquire) == 0) {
      if (std::atomic_ref<int32_t>(*w.pipeNext).load(std::memory_order_relaxed) <= i) {
        const int64_t c = claim();
        if (c < pipeBlocks) projectBlock(c, 0);
      } else {
        _mm_pause();
      }
    }
  };
  if (pipelined) {
    *w.pipeNext = 0;
    std::fill_n(w.pipeDone, pipeBlocks, 0);
  } else if (M > 0) {
    // Split only from 4x the usual work per task on AVX-512: there the projection of S 50,
    // I 64, H 64 (0.8M FMAs, ~9 us) took longer on 2 tasks than on one (the second thread's
    // wake-up and A packing per task outweigh half the FMAs); on AVX2 (Zen 1, ~50 us) two
    // tasks took ~35.
    const double perTask = p.gemmIsa == ct::GemmIsa::kAvx512_14x32 ? 4 : 1;
    const int T = int(
        taskCount(std::min<int64_t>(p.tasks, ex.threads()), double(D * M) * double(I + 1) * double(Gp) / perTask));
    const ct::TaskSlots slots{w.slots, p.slotFloats, T};
    for (int64_t d = 0; d < D; ++d) project(d, 0, M, T > 1 ? &ex : nullptr, slots);
  }
  // The recurrences: units u = d * B + b, split into contiguous runs, one per task; pipelined,
  // task 0 runs the recurrence and task 1 the projection.
  const int64_t tasks =
      pipelined ? 2
                : taskCount(std::min<int64_t>(units, ex.threads()), double(units) * double(S) * double(H) * double(p.Rp + p.Hp));
  if (units > 0)
    ex.parallelFor(tasks, [&](int64_t task) {
      if (pipelined && task == 1) {
        for (int64_t c = claim(); c < pipeBlocks; c = claim()) projectBlock(c, 1);
        return;
      }
      const int64_t recTasks = pipelined ? 1 : tasks;
      const int64_t u0 = units * task / recTasks, u1 = units * (task + 1) / recTasks;
      for (int64_t g0 = u0; g0 < u1;) {
        // A run of units of one direction: state rows g0..g1.
        const int64_t d = g0 / B, g1 = std::min(u1, (d + 1) * B), rows = g1 - g0;
        const bool reverse = p.reverse || d == 1;
        const float* r = rt + d * H * p.Rp;
        const float* xw = w.xw + d * M * Gp;
        auto active = [&](int64_t u, int64_t s) { return s < w.lens[u - d * B]; };
        auto timeOf = [&](int64_t u, int64_t s) { return reverse ? w.lens[u - d * B] - 1 - s : s; };
        int64_t steps = 0;
        for (int64_t u = g0; u < g1; ++u) steps = std::max(steps, w.lens[u - d * B]);
        // Alternate steps run k backwards (see lstmRowAvx2): rev = s & 1, on every path.
        if (rcAll && rows <= kFusedRows) {  // an LSTM on an ISA with the fused row step
          const float* rc = rcAll + d * H * Gp;
          for (int64_t u = g0; u < g1; ++u) {
            const int64_t b = u - d * B;
            float *h = w.h + u * Hp, *hNext = w.h2 + u * Hp;
            for (int64_t s = 0; s < w.lens[b]; ++s) {
              awaitStep(s);
              const int64_t t = timeOf(u, s);
              isa.lstmRow(H, h, rc, Hp, xw + xRow(t, b) * Gp, (s & 1) != 0, w.c + u * Hp, hNext);
              if (Y) std::memcpy(Y + yIdx(t, d, b), hNext, size_t(H) * sizeof(float));
              std::swap(h, hNext);
            }
            if (h != w.h + u * Hp) std::memcpy(w.h + u * Hp, h, size_t(Hp) * sizeof(float));
          }
          steps = 0;
        }
        for (int64_t s = 0; s < steps; ++s) {
          const bool rev = (s & 1) != 0;
          awaitStep(s);
          for (int64_t u = g0; u < g1; ++u)
            if (active(u, s))
              std::memcpy(w.gates + u * Gp, xw + xRow(timeOf(u, s), u - d * B) * Gp, size_t(Gp) * sizeof(float));
          // Rows whose sequence has ended ride along in the GEMMs; their state is not updated.
          gemmAcc(isa, rows, H, w.h + g0 * Hp, Hp, r, p.Rp, w.gates + g0 * Gp, Gp, rev);
          if (p.cell == Cell::kGru) {
            for (int64_t u = g0; u < g1; ++u) {
              if (!active(u, s)) continue;
              isa.gruGates(w.gates + u * Gp, Hp, w.h + u * Hp, w.rh + u * Hp);
              std::memcpy(w.term + u * Hp, rbh + d * Hp, size_t(Hp) * sizeof(float));
            }
            const float* hin = p.linearBeforeReset ? w.h : w.rh;
            gemmAcc(isa, rows, H, hin + g0 * Hp, Hp, rht + d * H * Hp, Hp, w.term + g0 * Hp, Hp, rev);
          }
          for (int64_t u = g0; u < g1; ++u) {
            if (!active(u, s)) continue;
            float* h = w.h + u * Hp;
            const float* g = w.gates + u * Gp;
            if (p.cell == Cell::kLstm) isa.lstmCell(g, Hp, w.c + u * Hp, h);
            else if (p.cell == Cell::kRnn) isa.rnnCell(g, Hp, nullptr, h);
            else isa.gruOut(g, Hp, w.term + u * Hp, p.linearBeforeReset != 0, h);
            if (Y) std::memcpy(Y + yIdx(timeOf(u, s), d, u - d * B), h, size_t(H) * sizeof(float));
          }
        }
        for (int64_t u = g0; u < g1; ++u) {
          const int64_t b = u - d * B;
          if (Y)  // steps past the row's length are zeros
            for (int64_t t = w.lens[b]; t < S; ++t) std::fill_n(Y + yIdx(t, d, b), H, 0.0f);
          if (Yh) std::memcpy(Yh + stateIdx(d, b), w.h + u * Hp, size_t(H) * sizeof(float));
          if (Yc) std::memcpy(Yc + stateIdx(d, b), w.c + u * Hp, size_t(H) * sizeof(float));
        }
        g0 = g1;
      }
    });
}

// ---- anvil.LSTMStack ----------------------------------------------------------------------
// A stack of L forward LSTM layers (ir/ops/anvil_sequence.cpp). Prepare packs every layer
// as prepareCell packs an LSTM (the blobs one layer after the other). Run: with batch 1, a
// fused row step on the ISA, two or more threads and more than 8 steps, the
// layers overlap (runStackStreamed); otherwise each layer runs as its own LSTM would
// (runCell on a view of the stack's arguments), the intermediate sequences in the
// workspace. Either way each layer computes its elements in the same order as runCell, so
// the stack gives the bits of the separate LSTM nodes it replaced.
// Measured (anvil_bench_runtime --latency, models-bench/lstm_h64_s50: 2 layers, S 50, I 64,
// H 64; 2-vCPU Zen 4 guest, the two vCPUs near): 2 threads 66 us as two LSTM nodes (each
// with its projection pipelined on the second task), 54-55 us streamed in pieces of 8 steps
// with the next layer's task projecting them, 52-53 us in pieces of 4 with the hand-off
// below. Per task (steady_clock inside the run): layer 0 alone runs its 50 steps in ~30 us,
// beside layer 1 in ~46: the two recurrences stream 64 KB of Rc each per step, and the two
// vCPUs share what they stream it through.

constexpr int kMaxStackLayers = 8;

struct StackParams {
  int32_t layers = 0;
  int32_t blobBase[kMaxStackLayers] = {};   // layer l's first blob
  int32_t blobCount[kMaxStackLayers] = {};
  uint64_t workOffset[kMaxStackLayers] = {};  // layer l's runCell workspace
  uint64_t workBytes[kMaxStackLayers] = {};
  uint64_t seqOffset[kMaxStackLayers] = {};   // layer l's hidden sequence [S][B][H_l], l < L - 1
  uint64_t syncOffset = 0;                    // the streamed run's counters
  RnnParams layer[kMaxStackLayers];
};

// The streamed run's shared state (the workspace at syncOffset): counters, each on its own
// cache line (the next layer to claim; per layer the steps whose h is written, read by the
// next layer's projection, the next projection piece to claim, and whether the layer's
// task is waiting), then per layer one done flag per piece of kStreamPiece steps.
struct alignas(64) StackCounter {
  int32_t value;
};
constexpr int64_t kStackSyncCounters = 1 + 3 * kMaxStackLayers;
constexpr int64_t kStreamPiece = 4;
uint64_t stackSyncBytes(int64_t S) {
  return kStackSyncCounters * sizeof(StackCounter) +
         uint64_t(kMaxStackLayers) * uint64_t((S + kStreamPiece - 1) / kStreamPiece) * sizeof(int32_t);
}

bool supportsStack(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  const int64_t L = n.attrs().getInt("layers", 0);
  const std::vector<int64_t> hs = n.attrs().getInts("hidden_sizes");
  if (L < 2 || L > kMaxStackLayers || int64_t(hs.size()) != L || int64_t(in.size()) > 1 + 5 * L) return false;
  if (!present(in, 0) || !allStatic(in)) return false;
  for (size_t i = 0; i < in.size(); ++i)
    if (present(in, i) && in[i].dtype != DataType::kF32) return false;
  const ir::Shape& x = in[0].shape;
  if (x.rank() != 3) return false;
  int64_t I = x[2].value();
  for (int64_t l = 0; l < L; ++l) {
    const size_t base = size_t(1 + 5 * l);
    if (!isConstant(n, base) || !isConstant(n, base + 1) || (present(in, base + 2) && !isConstant(n, base + 2)))
      return false;
    const ir::Shape &w = in[base].shape, &r = in[base + 1].shape;
    const int64_t H = hs[size_t(l)];
    if (w.rank() != 3 || r.rank() != 3 || w[0].value() != 1 || w[1].value() != 4 * H || w[2].value() != I) return false;
    if (r[0].value() != 1 || r[1].value() != 4 * H || r[2].value() != H) return false;
    I = H;
  }
  return true;
}

void prepareStack(cpu::tactics::GemmIsa gemmIsa, int64_t rowChunk, const PrepareInfo& info, Prepared* out) {
  const ir::Node& n = *info.node;
  const int64_t L = n.attrs().getInt("layers", 0);
  ANVIL_CHECK(L >= 2 && L <= kMaxStackLayers, ErrorCode::kInternal, n.label(), ": unsupported layer count");
  StackParams sp;
  sp.layers = int32_t(L);
  const ir::Shape& x = info.maxTypes[0].shape;
  const int64_t S = x[0].value(), B = x[1].value();
  int64_t I = x[2].value();
  uint64_t used = 0;
  auto take = [&](uint64_t bytes) {
    const uint64_t at = used;
    used += (bytes + 63) / 64 * 64;
    return at;
  };
  for (int64_t l = 0; l < L; ++l) {
    const size_t base = size_t(1 + 5 * l);
    PrepareInfo li;
    li.node = info.node;  // no direction / layout attributes: forward, layout 0
    li.threads = info.threads;
    li.tasks = info.tasks;
    li.constants = {nullptr, info.constants[base], info.constants[base + 1],
                    base + 2 < info.constants.size() ? info.constants[base + 2] : nullptr};
    li.maxTypes = {ir::TensorType{DataType::kF32, ir::Shape({ir::Dim(S), ir::Dim(B), ir::Dim(I)})}};
    Prepared pl;
    prepareCell(Cell::kLstm, gemmIsa, rowChunk, li, &pl);
    std::memcpy(&sp.layer[l], pl.params.data(), sizeof(RnnParams));
    sp.blobBase[l] = int32_t(out->blobs.size());
    sp.blobCount[l] = int32_t(pl.blobs.size());
    for (std::string& b : pl.blobs) out->blobs.push_back(std::move(b));
    sp.workBytes[l] = pl.workspaceBytes;
    sp.workOffset[l] = take(pl.workspaceBytes);
    I = sp.layer[l].H;
  }
  for (int64_t l = 0; l + 1 < L; ++l) sp.seqOffset[l] = take(uint64_t(S * B * sp.layer[l].H) * sizeof(float));
  sp.syncOffset = take(stackSyncBytes(S));
  out->setParams(sp);
  for (int64_t l = 0; l < L; ++l) {
    const int base = int(1 + 5 * l);
    out->packedInputs.push_back(base);
    out->packedInputs.push_back(base + 1);
    if (base + 2 < int(info.constants.size()) && info.constants[size_t(base + 2)]) out->packedInputs.push_back(base + 2);
  }
  out->workspaceBytes = used;
}

// The streamed run (batch 1, forward, an ISA with the fused row step, two or more tasks):
// tasks claim layers in order and run their recurrences; layer l's input projection runs in
// pieces of kStreamPiece steps, each once layer l - 1 has finished those steps. A piece is
// projected by whoever gets to it first: layer l's task when it needs it; the task of layer
// l - 1 right after finishing those steps, but only while layer l's task is busy (so the
// projections fall to whichever of the two would otherwise wait: with one task per layer
// and layer l + 1 doing its own, its task runs 8 steps of projection plus recurrence for
// layer l's 8 steps of recurrence, falling behind; with layer l doing them all, the
// reverse); and any task waiting (for its layer's next piece, or with no layer left), so
// layer 0's projection runs ahead on the second task while layer 0's recurrence starts.
// Nothing waits on a task that has not started: a layer is claimed only by a running task,
// a piece only once its input exists, and every wait is on a lower layer or a claimed
// piece; one task alone runs the layers one after the other.
template <const Isa& isa>
void runStackStreamed(const StepArgs& a, const StackParams& sp, int64_t S, int64_t tasks) {
  namespace ct = cpu::tactics;
  const int64_t L = sp.layers;
  char* ws = static_cast<char*>(a.workspace);
  StackCounter* sync = reinterpret_cast<StackCounter*>(ws + sp.syncOffset);
  const int64_t pieces = (S + kStreamPiece - 1) / kStreamPiece;
  int32_t* pieceFlags = reinterpret_cast<int32_t*>(sync + kStackSyncCounters);
  auto counter = [&](int64_t i) { return std::atomic_ref<int32_t>(sync[i].value); };
  auto layerNext = [&] { return counter(0); };
  auto done = [&](int64_t l) { return counter(1 + l); };
  auto pieceNext = [&](int64_t l) { return counter(1 + kMaxStackLayers + l); };
  auto waiting = [&](int64_t l) { return counter(1 + 2 * kMaxStackLayers + l); };
  auto pieceDone = [&](int64_t l, int64_t i) { return std::atomic_ref<int32_t>(pieceFlags[l * pieces + i]); };
  Work work[kMaxStackLayers];
  for (int64_t l = 0; l < L; ++l) {
    Carver cv(ws + sp.workOffset[l]);
    work[l] = carve(cv, sp.layer[l], S, 1);
    std::fill_n(pieceFlags + l * pieces, pieces, 0);
    done(l).store(0, std::memory_order_relaxed);
    pieceNext(l).store(0, std::memory_order_relaxed);
    waiting(l).store(0, std::memory_order_relaxed);
  }
  layerNext().store(0, std::memory_order_relaxed);
  const float* x0 = a.in(0).as<float>();
  auto input = [&](int64_t l) {
    return l == 0 ? x0 : reinterpret_cast<const float*>(ws + sp.seqOffset[l - 1]);
  };
  auto output = [&](int i) { return a.numOutputs > i && a.out(i).present() ? a.out(i).as<float>() : nullptr; };
  auto pieceEnd = [&](int64_t i) { return std::min(S, (i + 1) * kStreamPiece); };
  auto inputReady = [&](int64_t l, int64_t i) {
    return l == 0 || done(l - 1).load(std::memory_order_acquire) >= pieceEnd(i);
  };
  // Projects piece i of layer l on task `slot`'s scratch: XW rows [i * kStreamPiece, end).
  auto project = [&](int64_t l, int64_t i, int64_t slot) {
    const RnnParams& p = sp.layer[l];
    const ct::GemmConfig& gc = ct::gemmConfig(p.gemmIsa);
    const float* bd = a.blobs[sp.blobBase[l] + 2].as<float>();
    auto addBias = [bd](int64_t, int64_t rows, int64_t j0, int64_t cols, float* c, int64_t ldc) {
      isa.addBias(bd + j0, rows, cols, c, ldc);
    };
    const ct::BlockEpilogue ep(addBias);
    const int64_t r0 = i * kStreamPiece, r1 = pieceEnd(i);
    ct::gemmPackedB(gc, r1 - r0, p.Gp, p.I, 1.0f, {input(l) + r0 * p.I, p.I, 1}, a.blobs[sp.blobBase[l]].as<float>(),
                    work[l].xw + r0 * p.Gp, p.Gp, nullptr, {work[l].slots + slot * p.slotFloats, p.slotFloats, 1}, &ep);
    pieceDone(l, i).store(1, std::memory_order_release);
  };
  // Claims and projects the next piece of layer l if its input is ready; whether it did.
  auto tryProject = [&](int64_t l, int64_t slot) {
    int32_t i = pieceNext(l).load(std::memory_order_relaxed);
    if (i >= pieces || !inputReady(l, i)) return false;
    if (!pieceNext(l).compare_exchange_strong(i, i + 1, std::memory_order_relaxed)) return false;
    project(l, i, slot);
    return true;
  };
  // One ready piece of any layer but `except`; whether it projected one.
  auto help = [&](int64_t except, int64_t slot) {
    for (int64_t l = 0; l < L; ++l)
      if (l != except && tryProject(l, slot)) return true;
    return false;
  };
  auto allClaimed = [&] {
    for (int64_t l = 0; l < L; ++l)
      if (pieceNext(l).load(std::memory_order_relaxed) < pieces) return false;
    return true;
  };
  auto runLayer = [&](int64_t l, int64_t slot) {
    const RnnParams& p = sp.layer[l];
    const Work& w = work[l];
    const int64_t H = p.H, Hp = p.Hp, Gp = p.Gp;
    const float* rc = a.blobs[sp.blobBase[l] + 3].as<float>();
    const int hIn = int(4 + 5 * l), cIn = int(5 + 5 * l);  // initial_h_l, initial_c_l
    float* h = w.h;
    float* hNext = w.h2;
    std::fill(h, h + Hp, 0.0f);
    std::fill(w.c, w.c + Hp, 0.0f);
    if (a.hasInput(hIn)) std::memcpy(h, a.in(hIn).as<float>(), size_t(H) * sizeof(float));
    if (a.hasInput(cIn)) std::memcpy(w.c, a.in(cIn).as<float>(), size_t(H) * sizeof(float));
    float* Y = l + 1 == L ? output(0) : reinterpret_cast<float*>(ws + sp.seqOffset[l]);
    for (int64_t s = 0; s < S; ++s) {
      const int64_t i = s / kStreamPiece;
      if (pieceDone(l, i).load(std::memory_order_acquire) == 0) {
        waiting(l).store(1, std::memory_order_relaxed);
        while (pieceDone(l, i).load(std::memory_order_acquire) == 0)
          if (!tryProject(l, slot) && !help(l, slot)) _mm_pause();
        waiting(l).store(0, std::memory_order_relaxed);
      }
      isa.lstmRow(H, h, rc, Hp, w.xw + s * Gp, (s & 1) != 0, w.c, hNext);
      if (Y) std::memcpy(Y + s * H, hNext, size_t(H) * sizeof(float));
      std::swap(h, hNext);
      done(l).store(int32_t(s + 1), std::memory_order_release);
      // A piece of the next layer's input complete: project it here while that layer's task is busy.
      if (l + 1 < L && ((s + 1) % kStreamPiece == 0 || s + 1 == S) &&
          waiting(l + 1).load(std::memory_order_relaxed) == 0)
        tryProject(l + 1, slot);
    }
    if (float* Yh = output(int(1 + 2 * l))) std::memcpy(Yh, h, size_t(H) * sizeof(float));
    if (float* Yc = output(int(2 + 2 * l))) std::memcpy(Yc, w.c, size_t(H) * sizeof(float));
  };
  a.executor->parallelFor(tasks, [&](int64_t task) {
    for (int64_t l = layerNext().fetch_add(1, std::memory_order_relaxed); l < L;
         l = layerNext().fetch_add(1, std::memory_order_relaxed))
      runLayer(l, task);
    while (!allClaimed())
      if (!help(-1, task)) _mm_pause();
  });
}

template <const Isa& isa>
void runStack(const StepArgs& a) {
  const StackParams& sp = a.paramsAs<StackParams>();
  const int64_t L = sp.layers;
  const TensorView& X = a.in(0);
  if (X.rank != 3 || X.dims[2] != sp.layer[0].I) a.fail("X does not match the packed W of layer 0");
  const int64_t S = X.dims[0], B = X.dims[1];
  char* ws = static_cast<char*>(a.workspace);
  {
    const uint64_t need = sp.syncOffset + stackSyncBytes(S);
    for (int64_t l = 0; l < L; ++l) {
      Carver cv;
      carve(cv, sp.layer[l], S, B);
      if (cv.used() > sp.workBytes[l]) a.fail("X is larger than the profile the step was built for");
    }
    if (need > a.workspaceBytes) a.fail("the workspace is smaller than the step was built for");
  }
  Executor& ex = *a.executor;
  const int64_t tasks = std::min<int64_t>({L, sp.layer[0].tasks, ex.threads()});
  if (B == 1 && isa.lstmRow && tasks >= 2 && S > 2 * kStreamPiece) {
    runStackStreamed<isa>(a, sp, S, tasks);
    return;
  }
  // Layer by layer, each as its LSTM node would run.
  for (int64_t l = 0; l < L; ++l) {
    const RnnParams& p = sp.layer[l];
    TensorView ins[7];
    ins[0] = X;
    if (l > 0) {
      ins[0].data = ws + sp.seqOffset[l - 1];
      ins[0].dims[2] = sp.layer[l - 1].H;
    }
    const int hIn = int(4 + 5 * l), cIn = int(5 + 5 * l);
    if (a.hasInput(hIn)) ins[5] = a.in(hIn);
    if (a.hasInput(cIn)) ins[6] = a.in(cIn);
    TensorView outs[3];
    if (l + 1 == L) {
      outs[0] = a.out(0);
    } else {
      outs[0].data = ws + sp.seqOffset[l];
      outs[0].dtype = DataType::kF32;
      outs[0].rank = 4;
      outs[0].dims[0] = S;
      outs[0].dims[1] = 1;
      outs[0].dims[2] = B;
      outs[0].dims[3] = p.H;
    }
    for (int k = 0; k < 2; ++k)
      if (a.numOutputs > 1 + 2 * l + k) outs[1 + k] = a.out(int(1 + 2 * l + k));
    StepArgs la = a;
    la.inputs = ins;
    la.numInputs = 7;
    la.outputs = outs;
    la.numOutputs = 3;
    la.params = Blob{&p, sizeof(RnnParams)};
    la.blobs = a.blobs + sp.blobBase[l];
    la.numBlobs = sp.blobCount[l];
    la.workspace = ws + sp.workOffset[l];
    la.workspaceBytes = sp.workBytes[l];
    runCell<isa>(la);
  }
}

template <cpu::tactics::GemmIsa G, const Isa& isa>
void prepareStackFn(const PrepareInfo& info, Prepared* out) {
  prepareStack(G, isa.rowChunk, info, out);
}

template <Cell C>
bool supportsFn(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  return supportsCell(C, n, in);
}
template <Cell C, cpu::tactics::GemmIsa G, const Isa& isa>
void prepareFn(const PrepareInfo& info, Prepared* out) {
  prepareCell(C, G, isa.rowChunk, info, out);
}

}  // namespace

void registerRecurrentKernels(Kernels& k) {
  using cpu::tactics::GemmIsa;
  struct Variant {
    const char* suffix;
    std::vector<std::string> requirements;
    RunFn run;
    PrepareFn prepare[3];  // LSTM, GRU, RNN
  };
  const Variant variants[] = {
      {"_packed_4x32__avx512",
       {"avx512f"},
       runCell<kAvx512>,
       {prepareFn<Cell::kLstm, GemmIsa::kAvx512_14x32, kAvx512>, prepareFn<Cell::kGru, GemmIsa::kAvx512_14x32, kAvx512>,
        prepareFn<Cell::kRnn, GemmIsa::kAvx512_14x32, kAvx512>}},
      {"_packed_4x16__avx2",
       {"avx2", "fma"},
       runCell<kAvx2>,
       {prepareFn<Cell::kLstm, GemmIsa::kAvx2_6x16, kAvx2>, prepareFn<Cell::kGru, GemmIsa::kAvx2_6x16, kAvx2>,
        prepareFn<Cell::kRnn, GemmIsa::kAvx2_6x16, kAvx2>}},
      {"_packed_4x16",
       {},
       runCell<kPortable>,
       {prepareFn<Cell::kLstm, GemmIsa::kPortable4x8, kPortable>, prepareFn<Cell::kGru, GemmIsa::kPortable4x8, kPortable>,
        prepareFn<Cell::kRnn, GemmIsa::kPortable4x8, kPortable>}}};
  struct Op {
    const char *op, *name;
    SupportsFn supports;
  };
  const Op ops[] = {{"LSTM", "lstm", supportsFn<Cell::kLstm>},
                    {"GRU", "gru", supportsFn<Cell::kGru>},
                    {"RNN", "rnn", supportsFn<Cell::kRnn>}};
  for (int o = 0; o < 3; ++o)
    for (const Variant& v : variants) {
      Kernel kn;
      kn.name = std::string("f32_") + ops[o].name + v.suffix;
      // 2: the input projection on the GEMM engine (bias added last), alternate steps
      // with k backwards, the fused LSTM row step. 3: LSTM's Rc blob for the fused row.
      // 4: RnnParams without the chunk width 3 stored (it comes with the ISA).
      kn.version = 4;
      kn.op = ops[o].op;
      kn.domain = "";
      kn.precision = DataType::kF32;
      kn.requirements = v.requirements;
      kn.supports = ops[o].supports;
      kn.prepare = v.prepare[o];
      kn.run = v.run;
      k.add(std::move(kn));
    }
  // anvil.LSTMStack: f32_lstm_stack_packed_4x32__avx512, ..._4x16__avx2, ..._4x16.
  const PrepareFn stackPrepare[3] = {prepareStackFn<GemmIsa::kAvx512_14x32, kAvx512>,
                                     prepareStackFn<GemmIsa::kAvx2_6x16, kAvx2>,
                                     prepareStackFn<GemmIsa::kPortable4x8, kPortable>};
  const RunFn stackRun[3] = {runStack<kAvx512>, runStack<kAvx2>, runStack<kPortable>};
  for (int v = 0; v < 3; ++v) {
    Kernel kn;
    kn.name = std::string("f32_lstm_stack") + variants[v].suffix;
    kn.version = 1;
    kn.op = "LSTMStack";
    kn.domain = "anvil";
    kn.precision = DataType::kF32;
    kn.requirements = variants[v].requirements;
    kn.supports = supportsStack;
    kn.prepare = stackPrepare[v];
    kn.run = stackRun[v];
    k.add(std::move(kn));
  }
}

}  // namespace anvil::runtime::seq
