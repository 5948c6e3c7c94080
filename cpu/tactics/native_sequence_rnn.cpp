// Native kernels of the ONNX LSTM (f32): f32_lstm_packed_4x16__avx2 and the portable
// f32_lstm_packed_4x16. Default activations (sigmoid, tanh, tanh) only, no clip, no
// peepholes, no input_forget: anything else is declined and the reference kernel
// (cpu/kernels/control_rnn.cpp, in double) serves it. Every direction, both layouts,
// sequence_lens, initial_h/initial_c and any subset of the outputs Y, Y_h, Y_c.
//
// Prepare packs W and R transposed, gate-major with each gate's H columns padded to Hp (a
// multiple of 8): Wt[d] is [I][4*Hp], Rt[d] is [H][4*Hp], so a row of gates is one
// contiguous 4*Hp run and a gate's units are whole vectors; the biases Wb + Rb are summed
// once. At run the input projection of all time steps is one GEMM per direction
// (X[S*B, I] x Wt + bias) into the workspace; then each (direction, batch row) runs its
// recurrence: per step gates = XW[t] + h x Rt (the same GEMM micro-kernel, accumulating),
// then the fused gate math. The (direction, batch row) recurrences are independent and
// are spread over the executor's threads; each output element is computed by one task in
// a fixed order (the GEMM accumulates over k in order, whatever the row blocking), so the
// bits do not depend on the thread count.
#include <immintrin.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <string>

#include "cpu/tactics/native_sequence.h"

namespace anvil::runtime::seq {

namespace {

constexpr int kMR = 4;    // rows per micro-kernel call
constexpr int kNR = 16;   // columns per micro-kernel step (two AVX2 vectors)
constexpr int64_t kProjRows = 32;  // rows of the input projection per task

struct LstmParams {
  int32_t dirs = 1;      // 1 or 2
  int32_t reverse = 0;   // direction "reverse" (a single backward direction)
  int32_t layout = 0;    // 0: X [S, B, I]; 1: X [B, S, I]
  int32_t hasBias = 0;
  int64_t H = 0, Hp = 0, Gp = 0, I = 0;
};

// ---- GEMM: C[m][0..Gp) += A[m][0..K) x Bp[K][Gp], rows m < MR ---------------------------
// Each element accumulates over k in order from its value in C: the result of an element
// does not depend on MR or on which other rows share the call.

template <int MR>
void gemmAccPortable(int64_t K, const float* A, int64_t lda, const float* Bp, int64_t N, float* C, int64_t ldc) {
  for (int64_t n0 = 0; n0 < N; n0 += kNR) {
    float acc[MR][kNR];
    for (int m = 0; m < MR; ++m)
      for (int j = 0; j < kNR; ++j) acc[m][j] = C[m * ldc + n0 + j];
    for (int64_t k = 0; k < K; ++k) {
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

template <int MR>
__attribute__((target("avx2,fma"))) void gemmAccAvx2(int64_t K, const float* A, int64_t lda, const float* Bp,
                                                     int64_t N, float* C, int64_t ldc) {
  for (int64_t n0 = 0; n0 < N; n0 += kNR) {
    __m256 acc[MR][2];
    for (int m = 0; m < MR; ++m) {
      acc[m][0] = _mm256_loadu_ps(C + m * ldc + n0);
      acc[m][1] = _mm256_loadu_ps(C + m * ldc + n0 + 8);
    }
    for (int64_t k = 0; k < K; ++k) {
      const __m256 b0 = _mm256_loadu_ps(Bp + k * N + n0), b1 = _mm256_loadu_ps(Bp + k * N + n0 + 8);
      for (int m = 0; m < MR; ++m) {
        const __m256 a = _mm256_broadcast_ss(A + m * lda + k);
        acc[m][0] = _mm256_fmadd_ps(a, b0, acc[m][0]);
        acc[m][1] = _mm256_fmadd_ps(a, b1, acc[m][1]);
      }
    }
    for (int m = 0; m < MR; ++m) {
      _mm256_storeu_ps(C + m * ldc + n0, acc[m][0]);
      _mm256_storeu_ps(C + m * ldc + n0 + 8, acc[m][1]);
    }
  }
}

// ---- gate math over one row: gates [i | o | f | c~] each Hp wide -------------------------

inline float sigmoidf(float x) { return 1.0f / (1.0f + std::exp(-x)); }

void cellPortable(const float* g, int64_t Hp, float* c, float* h) {
  for (int64_t j = 0; j < Hp; ++j) {
    const float i = sigmoidf(g[j]), o = sigmoidf(g[Hp + j]), f = sigmoidf(g[2 * Hp + j]);
    const float cand = std::tanh(g[3 * Hp + j]);
    c[j] = f * c[j] + i * cand;
    h[j] = o * std::tanh(c[j]);
  }
}

// e^x for 8 lanes: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial (relative
// error about 2 ulp), 2^n through the exponent bits. x is clamped so that 2^n stays a
// normal float: e^x saturates at about 2.2e38 above and 1.2e-38 below.
__attribute__((target("avx2,fma"))) inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln2 = 0.693359375 - 2.12194440e-4
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

__attribute__((target("avx2,fma"))) inline __m256 sigmoid8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

// tanh x = sign(x) (1 - e) / (1 + e), e = e^(-2|x|): no overflow, absolute error ~1e-7.
__attribute__((target("avx2,fma"))) inline __m256 tanh8(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 ax = _mm256_andnot_ps(sign, x);
  const __m256 e = exp8(_mm256_mul_ps(ax, _mm256_set1_ps(-2.0f)));
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 t = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
  return _mm256_or_ps(t, _mm256_and_ps(sign, x));
}

__attribute__((target("avx2,fma"))) void cellAvx2(const float* g, int64_t Hp, float* c, float* h) {
  for (int64_t j = 0; j < Hp; j += 8) {
    const __m256 i = sigmoid8(_mm256_loadu_ps(g + j)), o = sigmoid8(_mm256_loadu_ps(g + Hp + j));
    const __m256 f = sigmoid8(_mm256_loadu_ps(g + 2 * Hp + j)), cand = tanh8(_mm256_loadu_ps(g + 3 * Hp + j));
    const __m256 cn = _mm256_fmadd_ps(f, _mm256_loadu_ps(c + j), _mm256_mul_ps(i, cand));
    _mm256_storeu_ps(c + j, cn);
    _mm256_storeu_ps(h + j, _mm256_mul_ps(o, tanh8(cn)));
  }
}

struct Isa {
  void (*gemm[kMR + 1])(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t);
  void (*cell)(const float*, int64_t, float*, float*);
};

constexpr Isa kPortable = {{nullptr, gemmAccPortable<1>, gemmAccPortable<2>, gemmAccPortable<3>, gemmAccPortable<4>},
                           cellPortable};
constexpr Isa kAvx2 = {{nullptr, gemmAccAvx2<1>, gemmAccAvx2<2>, gemmAccAvx2<3>, gemmAccAvx2<4>}, cellAvx2};

// C rows [0, M) += A x Bp, in blocks of kMR rows.
void gemmAcc(const Isa& isa, int64_t M, int64_t K, const float* A, int64_t lda, const float* Bp, int64_t N, float* C,
             int64_t ldc) {
  for (int64_t m = 0; m < M; m += kMR) {
    const int mr = int(std::min<int64_t>(kMR, M - m));
    isa.gemm[mr](K, A + m * lda, lda, Bp, N, C + m * ldc, ldc);
  }
}

// ---- supports / prepare ---------------------------------------------------------------

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

int directionsOf(const std::string& dir) { return dir == "bidirectional" ? 2 : dir == "forward" || dir == "reverse" ? 1 : 0; }

bool isConstant(const ir::Node& n, size_t i) {
  return i < n.numInputs() && n.inputs()[i] && n.inputs()[i]->isInitializer();
}

bool present(const std::vector<ir::TensorType>& in, size_t i) {
  return i < in.size() && in[i].dtype != DataType::kUndefined;
}

bool supportsLstm(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  const ir::Attributes& a = n.attrs();
  const int D = directionsOf(a.getString("direction", "forward"));
  if (D == 0 || a.has("clip") || a.getInt("input_forget", 0) != 0) return false;
  const int64_t layout = a.getInt("layout", 0);
  if (layout != 0 && layout != 1) return false;
  const std::vector<std::string> acts = a.getStrings("activations", {});
  if (!acts.empty()) {
    static const char* kDefault[3] = {"sigmoid", "tanh", "tanh"};
    if (acts.size() != size_t(3 * D) && acts.size() != 3) return false;
    for (size_t i = 0; i < acts.size(); ++i)
      if (lower(acts[i]) != kDefault[i % 3]) return false;
  }
  if (in.size() < 3 || !allStatic(in) || present(in, 7)) return false;
  for (size_t i : {0, 1, 2, 3, 5, 6})
    if (present(in, i) && (in[i].dtype != DataType::kF32)) return false;
  if (present(in, 4) && in[4].dtype != DataType::kI32) return false;
  // W, R and B are packed at build time.
  if (!isConstant(n, 1) || !isConstant(n, 2) || (present(in, 3) && !isConstant(n, 3))) return false;
  const ir::Shape &x = in[0].shape, &w = in[1].shape, &r = in[2].shape;
  if (x.rank() != 3 || w.rank() != 3 || r.rank() != 3) return false;
  const int64_t H = r[2].value(), I = x[2].value();
  if (H <= 0 || (a.has("hidden_size") && a.getInt("hidden_size", 0) != H)) return false;
  if (w[0].value() != D || w[1].value() != 4 * H || w[2].value() != I) return false;
  if (r[0].value() != D || r[1].value() != 4 * H) return false;
  if (present(in, 3) && (in[3].shape.rank() != 2 || in[3].shape[0].value() != D || in[3].shape[1].value() != 8 * H))
    return false;
  return true;
}

std::string floatsBlob(int64_t n) { return std::string(size_t(n) * sizeof(float), '\0'); }

// Workspace pieces, in order, for S steps and B batch rows.
struct Work {
  float *xw, *h, *c, *gates;
  int64_t* lens;
};

Work carve(Carver& cv, const LstmParams& p, int64_t S, int64_t B) {
  Work w;
  w.xw = cv.take<float>(p.dirs * S * B * p.Gp);
  w.h = cv.take<float>(p.dirs * B * p.Hp);
  w.c = cv.take<float>(p.dirs * B * p.Hp);
  w.gates = cv.take<float>(p.dirs * B * p.Gp);
  w.lens = cv.take<int64_t>(B);
  return w;
}

void prepareLstm(const PrepareInfo& info, Prepared* out) {
  const ir::Node& n = *info.node;
  const ir::Attributes& a = n.attrs();
  LstmParams p;
  const std::string dir = a.getString("direction", "forward");
  p.dirs = directionsOf(dir);
  p.reverse = dir == "reverse";
  p.layout = int32_t(a.getInt("layout", 0));
  const ir::Tensor* W = info.constants[1];
  const ir::Tensor* R = info.constants[2];
  const ir::Tensor* Bias = info.constants.size() > 3 ? info.constants[3] : nullptr;
  ANVIL_CHECK(W && R && p.dirs > 0, ErrorCode::kInternal, n.label(),
              ": the native LSTM needs constant W and R (supports() should have declined)");
  p.hasBias = Bias != nullptr;
  p.H = R->dim(2);
  p.I = W->dim(2);
  p.Hp = roundUp(p.H, 8);
  p.Gp = 4 * p.Hp;
  out->setParams(p);
  const int64_t D = p.dirs, H = p.H, I = p.I, Hp = p.Hp, Gp = p.Gp;
  // Column of gate g, unit j in the packed layouts.
  auto col = [&](int64_t row) { return (row / H) * Hp + row % H; };
  std::string wt = floatsBlob(D * I * Gp), rt = floatsBlob(D * H * Gp), bias = floatsBlob(D * Gp);
  float* wp = reinterpret_cast<float*>(wt.data());
  float* rp = reinterpret_cast<float*>(rt.data());
  float* bp = reinterpret_cast<float*>(bias.data());
  const float* w = W->data<float>();
  const float* r = R->data<float>();
  for (int64_t d = 0; d < D; ++d)
    for (int64_t row = 0; row < 4 * H; ++row) {
      for (int64_t k = 0; k < I; ++k) wp[(d * I + k) * Gp + col(row)] = w[(d * 4 * H + row) * I + k];
      for (int64_t k = 0; k < H; ++k) rp[(d * H + k) * Gp + col(row)] = r[(d * 4 * H + row) * H + k];
      if (Bias) {
        const float* b = Bias->data<float>() + d * 8 * H;
        bp[d * Gp + col(row)] = b[row] + b[4 * H + row];
      }
    }
  out->blobs = {std::move(wt), std::move(rt), std::move(bias)};
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
void runLstm(const StepArgs& a) {
  const LstmParams& p = a.paramsAs<LstmParams>();
  const TensorView& X = a.in(0);
  const int64_t D = p.dirs, H = p.H, Hp = p.Hp, Gp = p.Gp, I = p.I;
  const int64_t S = X.dims[p.layout == 0 ? 0 : 1], B = X.dims[p.layout == 0 ? 1 : 0];
  if (X.rank != 3 || X.dims[2] != I) a.fail("LSTM: X does not match the packed W");
  Carver cv(a.workspace);
  const Work w = carve(cv, p, S, B);
  if (cv.used() > a.workspaceBytes) a.fail("LSTM: X is larger than the profile the step was built for");
  const float* wt = a.blobs[0].as<float>();
  const float* rt = a.blobs[1].as<float>();
  const float* bias = a.blobs[2].as<float>();
  const float* x = X.as<float>();
  for (int64_t b = 0; b < B; ++b) {
    w.lens[b] = a.hasInput(4) ? a.in(4).as<int32_t>()[b] : S;
    if (w.lens[b] < 0 || w.lens[b] > S) a.fail("LSTM: sequence_lens[" + std::to_string(b) + "] is outside [0, S]");
  }
  const bool lay0 = p.layout == 0;
  auto stateIdx = [&](int64_t d, int64_t b) { return lay0 ? (d * B + b) * H : (b * D + d) * H; };
  auto xRow = [&](int64_t t, int64_t b) { return lay0 ? t * B + b : b * S + t; };
  auto yIdx = [&](int64_t t, int64_t d, int64_t b) { return lay0 ? ((t * D + d) * B + b) * H : ((b * S + t) * D + d) * H; };
  const float* h0 = a.hasInput(5) ? a.in(5).as<float>() : nullptr;
  const float* c0 = a.hasInput(6) ? a.in(6).as<float>() : nullptr;
  float* Y = a.numOutputs > 0 && a.out(0).present() ? a.out(0).as<float>() : nullptr;
  float* Yh = a.numOutputs > 1 && a.out(1).present() ? a.out(1).as<float>() : nullptr;
  float* Yc = a.numOutputs > 2 && a.out(2).present() ? a.out(2).as<float>() : nullptr;
  // State row u = d * B + b, padded to Hp with zeros (the padding lanes stay 0).
  for (int64_t d = 0; d < D; ++d)
    for (int64_t b = 0; b < B; ++b) {
      float* h = w.h + (d * B + b) * Hp;
      float* c = w.c + (d * B + b) * Hp;
      std::fill(h, h + Hp, 0.0f);
      std::fill(c, c + Hp, 0.0f);
      if (h0) std::memcpy(h, h0 + stateIdx(d, b), size_t(H) * sizeof(float));
      if (c0) std::memcpy(c, c0 + stateIdx(d, b), size_t(H) * sizeof(float));
    }
  Executor& ex = *a.executor;
  // Input projection: XW[d] = X x Wt[d] + bias[d], all steps at once, in blocks of rows.
  const int64_t M = S * B, blocks = (M + kProjRows - 1) / kProjRows;
  if (M > 0)
    ex.parallelFor(D * blocks, [&](int64_t task) {
      const int64_t d = task / blocks, m0 = (task % blocks) * kProjRows, m1 = std::min(M, m0 + kProjRows);
      float* xw = w.xw + (d * M + m0) * Gp;
      for (int64_t m = m0; m < m1; ++m) std::memcpy(xw + (m - m0) * Gp, bias + d * Gp, size_t(Gp) * sizeof(float));
      gemmAcc(isa, m1 - m0, I, x + m0 * I, I, wt + d * I * Gp, Gp, xw, Gp);
    });
  // The recurrences: units u = d * B + b, split into contiguous runs, one per task.
  const int64_t units = D * B;
  const int64_t tasks = std::min<int64_t>(units, ex.threads());
  if (units > 0)
    ex.parallelFor(tasks, [&](int64_t task) {
      const int64_t u0 = units * task / tasks, u1 = units * (task + 1) / tasks;
      for (int64_t g0 = u0; g0 < u1;) {
        // A run of units of one direction: state rows g0..g1.
        const int64_t d = g0 / B, g1 = std::min(u1, (d + 1) * B);
        const bool reverse = p.reverse || d == 1;
        const float* r = rt + d * H * Gp;
        const float* xw = w.xw + d * M * Gp;
        int64_t steps = 0;
        for (int64_t u = g0; u < g1; ++u) steps = std::max(steps, w.lens[u - d * B]);
        for (int64_t s = 0; s < steps; ++s) {
          for (int64_t u = g0; u < g1; ++u) {
            const int64_t b = u - d * B, L = w.lens[b];
            if (s < L)
              std::memcpy(w.gates + u * Gp, xw + xRow(reverse ? L - 1 - s : s, b) * Gp, size_t(Gp) * sizeof(float));
          }
          gemmAcc(isa, g1 - g0, H, w.h + g0 * Hp, Hp, r, Gp, w.gates + g0 * Gp, Gp);
          for (int64_t u = g0; u < g1; ++u) {
            const int64_t b = u - d * B, L = w.lens[b];
            if (s >= L) continue;  // this row's sequence has ended: its state is final
            float* h = w.h + u * Hp;
            isa.cell(w.gates + u * Gp, Hp, w.c + u * Hp, h);
            if (Y) std::memcpy(Y + yIdx(reverse ? L - 1 - s : s, d, b), h, size_t(H) * sizeof(float));
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

}  // namespace

void registerRecurrentKernels(Kernels& k) {
  for (bool avx2 : {true, false}) {
    Kernel kn;
    kn.name = avx2 ? "f32_lstm_packed_4x16__avx2" : "f32_lstm_packed_4x16";
    kn.version = 1;
    kn.op = "LSTM";
    kn.domain = "";
    kn.precision = DataType::kF32;
    if (avx2) kn.requirements = {"avx2", "fma"};
    kn.supports = supportsLstm;
    kn.prepare = prepareLstm;
    kn.run = avx2 ? RunFn(runLstm<kAvx2>) : RunFn(runLstm<kPortable>);
    k.add(std::move(kn));
  }
}

}  // namespace anvil::runtime::seq
