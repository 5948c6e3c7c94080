// The ISA-independent body of the depthwise convolution (cpu/tactics/native_dwconv.cpp), written
// once over a vector type V and included by that file inside one `#pragma GCC target` region
// per ISA (AVX2+FMA, AVX-512): every function here takes that region's target. V provides
// T (the register), N (lanes), load/store/storeN (the first n lanes)/copyN/set1/bcast/zero/
// fmadd/clamp, even/odd (lanes 0, 2, .. and 1, 3, .. of two registers side by side), and for
// the direct planes M (a load mask), maskFor (the lanes of a load inside the row), maskLoad.
// Not a header of its own: no include guard, nothing outside the including namespace.

// The padded input row ih of the plane: copied once into ring slot ih % kRing (tagged with
// ih), or the shared zero row above and below the plane. Stride 1 keeps the padded row
// [pl zeros, x row, zeros] as is; stride 2 keeps it split into its even and odd columns
// (E[m] = P[2m] in the first half of the slot, O[m] = P[2m + 1] in the second), so each tap
// reads consecutive floats: output ow, tap kw reads P[2 ow + kw] = (kw even ? E : O)[ow + kw / 2].
template <class V>
inline const float* ringRow(Ring& ring, int64_t ih) {
  using T = typename V::T;
  constexpr int N = V::N;
  if (ih < 0 || ih >= ring.H) return ring.zero;
  const int s = int(ih & (kRing - 1));
  float* r = ring.rows + s * ring.width;
  if (ring.tags[s] == ih) return r;
  ring.tags[s] = ih;
  // The pads of slots and stage were zeroed once per run (runDw); only the row moves.
  float* dst = ring.split ? ring.stage : r;
  const float* src = ring.x + ih * ring.W;
  float* d = dst + ring.pl;
  const int64_t W = ring.W;
  int64_t j = 0;
  for (; j + N <= W; j += N) V::store(d + j, V::load(src + j));
  if (j < W) V::copyN(d + j, src + j, int(W - j));
  if (ring.split)
    for (int64_t m = 0; m < ring.half; m += N) {
      const T a = V::load(dst + 2 * m), b = V::load(dst + 2 * m + N);
      V::store(r + m, V::even(a, b));
      V::store(r + ring.half + m, V::odd(a, b));
    }
  return r;
}

// R output rows (y[0..R)), U vectors from column ow, the last vector's first `last` lanes
// stored, each clamped to [lo, hi] on the way (Relu, Clip; -inf, inf for neither). Input
// row i of r[] feeds output row o with filter row kh = i - S * o; every accumulator takes
// the bias, then its K*K taps in row-major order (one FMA each), so the sum's order is the
// same for every R, U and ISA.
template <class V, int K, int R, int U, int S>
inline void dwStep(const float* const* r, int64_t half, const typename V::T* w, const float* wc, typename V::T bias,
                   int64_t ow, float* const* y, int last, typename V::T lo, typename V::T hi) {
  using T = typename V::T;
  constexpr int N = V::N;
  T acc[R][U];
#pragma GCC unroll 4
  for (int o = 0; o < R; ++o)
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) acc[o][u] = bias;
  // Filter row by filter row: its K weights in registers (3x3: all nine, held across the
  // plane), every input vector a memory operand of its FMA (one load per FMA, the least
  // this loop order allows; sharing a loaded vector across the R rows instead makes the
  // compiler spill or re-broadcast the weights).
#pragma GCC unroll 7
  for (int kh = 0; kh < K; ++kh) {
    T wk[K];
#pragma GCC unroll 7
    for (int kw = 0; kw < K; ++kw) wk[kw] = K <= 3 ? w[kh * K + kw] : V::bcast(wc + kh * K + kw);
#pragma GCC unroll 4
    for (int o = 0; o < R; ++o) {
      const int i = S * o + kh;
#pragma GCC unroll 7
      for (int kw = 0; kw < K; ++kw) {
        const float* src = S == 1 ? r[i] + ow + kw : r[i] + ((kw & 1) ? half : 0) + ow + kw / 2;
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) acc[o][u] = V::fmadd(wk[kw], V::load(src + u * N), acc[o][u]);
      }
    }
  }
#pragma GCC unroll 4
  for (int o = 0; o < R; ++o)
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) {
      const T v = V::clamp(acc[o][u], lo, hi);
      if (u == U - 1 && last < N) V::storeN(y[o] + ow + u * N, v, last);
      else V::store(y[o] + ow + u * N, v);
    }
}

// One pass: R output rows across the whole width.
template <class V, int K, int R, int U, int S>
inline void dwPass(const float* const* r, int64_t half, const typename V::T* w, const float* wc, typename V::T bias,
                   float* const* y, int64_t OW, typename V::T lo, typename V::T hi) {
  constexpr int N = V::N;
  int64_t ow = 0;
  for (; ow + U * N <= OW; ow += U * N) dwStep<V, K, R, U, S>(r, half, w, wc, bias, ow, y, N, lo, hi);
  for (; ow + N <= OW; ow += N) dwStep<V, K, R, 1, S>(r, half, w, wc, bias, ow, y, N, lo, hi);
  if (ow < OW) dwStep<V, K, R, 1, S>(r, half, w, wc, bias, ow, y, int(OW - ow), lo, hi);
}

// One output plane (bias included; the caller runs the epilogue over it), R rows a pass,
// U vectors a step. The 3x3 weights are broadcast once per plane and stay in registers;
// larger filters broadcast a filter row's weights per step (7x7, 8 planes of 56x56 in cache,
// 1 thread, AVX-512: 37 us with all 49 as broadcast vectors on the stack, 30 us by rows).
template <class V, int K, int R, int U, int S>
void dwPlane(Ring& ring, const float* wc, float biasC, float* y, int64_t OH, int64_t OW) {
  using T = typename V::T;
  T w[K * K];
  for (int i = 0; i < K * K; ++i) w[i] = V::set1(wc[i]);
  const T bias = V::set1(biasC), lo = V::set1(ring.lo), hi = V::set1(ring.hi);
  for (int k = 0; k < kRing; ++k) ring.tags[k] = -1;
  constexpr int In = S * (R - 1) + K;
  static_assert(In <= kRing, "the ring must hold every input row of a pass");
  for (int64_t oh = 0; oh < OH; oh += R) {
    const int64_t ih = oh * S - ring.pt;
    const int rows = int(std::min<int64_t>(R, OH - oh));
    const float* r[In];
    for (int i = 0; i < In; ++i) r[i] = (i < S * (rows - 1) + K) ? ringRow<V>(ring, ih + i) : ring.zero;
    float* yr[R];
    for (int o = 0; o < R; ++o) yr[o] = y + (oh + std::min(o, rows - 1)) * OW;
    if (rows == R) dwPass<V, K, R, U, S>(r, ring.half, w, wc, bias, yr, OW, lo, hi);
    else if (rows == 1) dwPass<V, K, 1, U, S>(r, ring.half, w, wc, bias, yr, OW, lo, hi);
    else if constexpr (R > 2) {
      if (rows == 2) dwPass<V, K, 2, U, S>(r, ring.half, w, wc, bias, yr, OW, lo, hi);
      else if constexpr (R > 3) dwPass<V, K, 3, U, S>(r, ring.half, w, wc, bias, yr, OW, lo, hi);  // R == 4
    }
  }
}

// ---- Direct planes (masked loads) ----------------------------------------------------
//
// The same sums straight from the input plane, no row ring: a tap's load that would cross
// the left or right edge of the row is a masked load (zeros outside [0, W), which never
// fault), rows above and below the plane read ring.zero, and at stride 2 taps kw and kw + 1
// are the even and odd lanes of the same two loads. For small planes (14x14, 28x28) the
// ring's per-row copies and bookkeeping cost as much as the FMAs; here a plane costs its
// loads and FMAs only.

// Load l of a row in a step of U vectors starts at column c0 + dwStart(l): stride 1,
// l = u * K + kw at u * N + kw; stride 2, l = (u * P + kw / 2) * 2 + half at
// 2 u N + kw + half N (P = (K + 1) / 2 pairs per vector).
template <int N, int K, int S>
constexpr int64_t dwStart(int l) {
  constexpr int P = (K + 1) / 2;
  if constexpr (S == 1) return (l / K) * N + l % K;
  else return 2 * (l / (2 * P)) * N + 2 * ((l / 2) % P) + (l % 2) * N;
}
template <int K, int U, int S>
constexpr int dwLoads() { return S == 1 ? U * K : U * ((K + 1) / 2) * 2; }

template <class V, int K, int U, int S>
inline void dwMasks(int64_t c0, int64_t W, typename V::M* m) {
  constexpr int L = dwLoads<K, U, S>();
#pragma GCC unroll 16
  for (int l = 0; l < L; ++l) m[l] = V::maskFor(c0 + dwStart<V::N, K, S>(l), W);
}

// The edge steps' load masks depend on the column block only: computed on a plane's first
// pass, reused by the others (up to 8 edge steps a pass; more are recomputed each time).
template <class V>
struct DwMaskCache {
  typename V::M m[8][16];
  bool filled = false;
};

template <class V, int K, int R, int U, int S, bool Masked>
inline void dwStepDirect(const float* const* r, int64_t c0, const typename V::T* w, const float* wc,
                         typename V::T bias, int64_t ow, float* const* y, int last, typename V::T lo,
                         typename V::T hi, const typename V::M* m) {
  using T = typename V::T;
  constexpr int N = V::N;
  constexpr int P = (K + 1) / 2;
  auto ld = [&](const float* row, int l) -> T {
    if constexpr (Masked) return V::maskLoad(row + c0 + dwStart<N, K, S>(l), m[l]);
    else return V::load(row + c0 + dwStart<N, K, S>(l));
  };
  T acc[R][U];
#pragma GCC unroll 4
  for (int o = 0; o < R; ++o)
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) acc[o][u] = bias;
#pragma GCC unroll 7
  for (int kh = 0; kh < K; ++kh) {
    T wk[K];
#pragma GCC unroll 7
    for (int kw = 0; kw < K; ++kw) wk[kw] = K <= 3 ? w[kh * K + kw] : V::bcast(wc + kh * K + kw);
#pragma GCC unroll 4
    for (int o = 0; o < R; ++o) {
      const float* row = r[S * o + kh];
      if constexpr (S == 1) {
#pragma GCC unroll 7
        for (int kw = 0; kw < K; ++kw)
#pragma GCC unroll 4
          for (int u = 0; u < U; ++u) acc[o][u] = V::fmadd(wk[kw], ld(row, u * K + kw), acc[o][u]);
      } else {
#pragma GCC unroll 4
        for (int kw = 0; kw < K; kw += 2)
#pragma GCC unroll 4
          for (int u = 0; u < U; ++u) {
            const int l = (u * P + kw / 2) * 2;
            const T a = ld(row, l), b = ld(row, l + 1);
            acc[o][u] = V::fmadd(wk[kw], V::even(a, b), acc[o][u]);
            if (kw + 1 < K) acc[o][u] = V::fmadd(wk[kw + 1], V::odd(a, b), acc[o][u]);
          }
      }
    }
  }
#pragma GCC unroll 4
  for (int o = 0; o < R; ++o)
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) {
      const T v = V::clamp(acc[o][u], lo, hi);
      if (u == U - 1 && last < N) V::storeN(y[o] + ow + u * N, v, last);
      else V::store(y[o] + ow + u * N, v);
    }
}

template <class V, int K, int R, int U, int S>
inline void dwPassDirect(const float* const* r, int64_t W, int64_t pl, const typename V::T* w, const float* wc,
                         typename V::T bias, float* const* y, int64_t OW, typename V::T lo, typename V::T hi,
                         DwMaskCache<V>& mc) {
  using M = typename V::M;
  constexpr int N = V::N;
  // Columns a step of u vectors reads: [S * ow - pl, S * (ow + u * N - 1) - pl + K - 1 (+ 1 at
  // stride 2, the odd load's last lane)]; inside [0, W): plain loads.
  auto inside = [&](int64_t ow, int u) {
    return S * ow - pl >= 0 && S * (ow + u * N - 1) - pl + K - 1 + (S - 1) < W;
  };
  int edge = 0;
  M local[16];
  auto masks = [&](int64_t c0, auto fill) -> const M* {
    M* m = edge < 8 ? mc.m[edge] : local;
    if (edge >= 8 || !mc.filled) fill(c0, m);
    ++edge;
    return m;
  };
  int64_t ow = 0;
  // U vectors while U are left, or more than U - 1 from an edge step on (the last vector
  // partial: 28 columns at stride 2 are one masked step of 2 x 16, not two masked steps;
  // 144x56x56 3x3 stride 2, 1 thread: 96 -> 85 us). Not from an inside step: 96x112x112 3x3
  // stride 2 went 214 -> 270 us when its inside single step became part of a masked pair.
  for (; ow + U * N <= OW || (ow + (U - 1) * N < OW && !inside(ow, 1)); ow += U * N) {
    const int64_t c0 = S * ow - pl;
    const int last = int(std::min<int64_t>(N, OW - ow - (U - 1) * N));
    if (inside(ow, U)) {
      dwStepDirect<V, K, R, U, S, false>(r, c0, w, wc, bias, ow, y, last, lo, hi, nullptr);
    } else {
      const M* m = masks(c0, [&](int64_t c, M* o) { dwMasks<V, K, U, S>(c, W, o); });
      dwStepDirect<V, K, R, U, S, true>(r, c0, w, wc, bias, ow, y, last, lo, hi, m);
    }
  }
  for (; ow < OW; ow += N) {
    const int64_t c0 = S * ow - pl;
    const int last = int(std::min<int64_t>(N, OW - ow));
    if (inside(ow, 1)) {
      dwStepDirect<V, K, R, 1, S, false>(r, c0, w, wc, bias, ow, y, last, lo, hi, nullptr);
    } else {
      const M* m = masks(c0, [&](int64_t c, M* o) { dwMasks<V, K, 1, S>(c, W, o); });
      dwStepDirect<V, K, R, 1, S, true>(r, c0, w, wc, bias, ow, y, last, lo, hi, m);
    }
  }
  mc.filled = true;
}

template <class V, int K, int R, int U, int S>
void dwPlaneDirect(Ring& ring, const float* wc, float biasC, float* y, int64_t OH, int64_t OW) {
  using T = typename V::T;
  T w[K * K];
  for (int i = 0; i < K * K; ++i) w[i] = V::set1(wc[i]);
  const T bias = V::set1(biasC), lo = V::set1(ring.lo), hi = V::set1(ring.hi);
  constexpr int In = S * (R - 1) + K;
  static_assert(dwLoads<K, U, S>() <= 16, "DwMaskCache holds 16 masks a step");
  DwMaskCache<V> mc;
  for (int64_t oh = 0; oh < OH; oh += R) {
    const int64_t ih = oh * S - ring.pt;
    const int rows = int(std::min<int64_t>(R, OH - oh));
    const float* r[In];
    for (int i = 0; i < In; ++i) r[i] = (ih + i >= 0 && ih + i < ring.H) ? ring.x + (ih + i) * ring.W : ring.zero;
    float* yr[R];
    for (int o = 0; o < R; ++o) yr[o] = y + (oh + std::min(o, rows - 1)) * OW;
    const int64_t W = ring.W, pl = ring.pl;
    if (rows == R) dwPassDirect<V, K, R, U, S>(r, W, pl, w, wc, bias, yr, OW, lo, hi, mc);
    else if (rows == 1) dwPassDirect<V, K, 1, U, S>(r, W, pl, w, wc, bias, yr, OW, lo, hi, mc);
    else if constexpr (R > 2) {
      if (rows == 2) dwPassDirect<V, K, 2, U, S>(r, W, pl, w, wc, bias, yr, OW, lo, hi, mc);
      else if constexpr (R > 3) dwPassDirect<V, K, 3, U, S>(r, W, pl, w, wc, bias, yr, OW, lo, hi, mc);
    }
  }
}
