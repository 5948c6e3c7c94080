// The ISA-independent body of the blocked spatial kernels (cpu/tactics/native_nchwc_spatial.cpp),
// written once over a vector type V of N = the block's lanes and included by that file inside
// one `#pragma GCC target` region per ISA (AVX2+FMA with N = 8, AVX-512 with N = 16). V
// provides T, N, load, store, zero, set1, fmadd, add, div, max (max(a, b): a > b ? a : b, b
// when either is NaN) and clamp. Not a header of its own: no include guard, nothing outside
// the including namespace. A pixel is one vector: its N channel lanes side by side.

// ---- Depthwise convolution -------------------------------------------------------------

// One output row of one channel block: rows[kh] is the input row ih = oh * S - pt + kh of the
// block's plane ([W][N]) or a row of zeros above and below the plane; w the block's filter
// [kh][kw][N], bias its lanes. Every output is the bias plus its taps in row-major order, one
// FMA each (taps that fall in the left or right padding skipped), clamped to [lo, hi].
// Output pixel ow is stored at y + ow * N in the blocked layout; where the row functions'
// SO (strided output) is set, at y + ow * PO: channels-last output, PO = C (anvil.ConvNhwc;
// the ring path only, unpaired). A compile-time choice: a run-time stride on the blocked
// rows cost their 14x14 and 7x7 layers ~10%.
struct DwRow {
  const float* const* rows;
  const float* w;
  float* y;
  int64_t W, OW, pl;
  int64_t PO = V::N;
};

// A pixel near the left or right edge (any filter, any stride): taps outside [0, W) skipped.
inline typename V::T dwEdgePixel(const DwRow& r, int64_t kh, int64_t kw, int64_t sw, int64_t ow, typename V::T bias) {
  constexpr int N = V::N;
  typename V::T acc = bias;
  const int64_t c0 = ow * sw - r.pl;
  for (int64_t i = 0; i < kh; ++i) {
    const float* row = r.rows[i];
    for (int64_t j = 0; j < kw; ++j) {
      const int64_t c = c0 + j;
      if (c < 0 || c >= r.W) continue;
      acc = V::fmadd(V::load(row + c * N), V::load(r.w + (i * kw + j) * N), acc);
    }
  }
  return acc;
}

// U pixels from ow whose windows lie inside the row: no bounds checks. Each input vector of a
// filter row is loaded once and feeds every accumulator whose window holds it (a filter row
// costs (U - 1) * S + K loads for U * K FMAs, not U * K loads), the filter row's taps in
// registers (the whole filter when Held). Output u still takes its taps in row-major order.
template <int K, int S, int U, bool Held, bool SO = false>
inline void dwStep(const DwRow& r, const typename V::T* wr, typename V::T bias, int64_t ow, typename V::T lo,
                   typename V::T hi) {
  using T = typename V::T;
  constexpr int N = V::N;
  constexpr int Cols = (U - 1) * S + K;
  T acc[U];
#pragma GCC unroll 16
  for (int u = 0; u < U; ++u) acc[u] = bias;
  const int64_t c0 = ow * S - r.pl;
#pragma GCC unroll 7
  for (int i = 0; i < K; ++i) {
    const float* row = r.rows[i] + c0 * N;
    T wk[K];
#pragma GCC unroll 7
    for (int j = 0; j < K; ++j) wk[j] = Held ? wr[i * K + j] : V::load(r.w + (i * K + j) * N);
#pragma GCC unroll 32
    for (int c = 0; c < Cols; ++c) {
      const T x = V::load(row + c * N);
#pragma GCC unroll 16
      for (int u = 0; u < U; ++u) {
        const int j = c - u * S;
        if (j >= 0 && j < K) acc[u] = V::fmadd(x, wk[j], acc[u]);
      }
    }
  }
#pragma GCC unroll 16
  for (int u = 0; u < U; ++u) V::store(r.y + (ow + u) * (SO ? r.PO : N), V::clamp(acc[u], lo, hi));
}

// The last n < U interior pixels from ow as one step of n accumulators: one pixel at a time
// each output is a chain of K * K dependent FMAs, latency-bound (a 7x7 image's seven pixels
// of a 5x5 filter ran at a quarter of the FMA rate that way). The held filter loaded again.
// Measured (NativeNchwcSpatialBench.DISABLED_Depthwise, Zen 4, 1 thread, min of 30, ms),
// AVX-512, one pixel at a time / this: 5x5 1152x7 0.077 / 0.048, 672x14 0.124 / 0.101,
// 672x14 s2 0.051 / 0.037; 7x7 768x7 0.082 / 0.036, 384x14 0.106 / 0.070, 192x28 0.163 /
// 0.139. Not taken: 3x3 (the single pixels' short chains overlap; 576x14 0.037 / 0.046) and
// AVX2's steps of 4 (1152x7 0.085 / 0.076 and 768x7 0.093 / 0.069, but 672x14 0.142 /
// 0.149 and 240x28 0.179 / 0.190).
template <int K, int S, int U, bool Held, bool SO = false>
inline void dwTail(const DwRow& r, typename V::T bias, int64_t ow, int64_t n, typename V::T lo, typename V::T hi) {
  typename V::T wr[Held ? K * K : 1];
  if constexpr (Held)
    for (int t = 0; t < K * K; ++t) wr[t] = V::load(r.w + t * V::N);
  if constexpr (U > 1)
    if (n != U) return dwTail<K, S, U - 1, Held, SO>(r, bias, ow, n, lo, hi);
  dwStep<K, S, U, Held, SO>(r, wr, bias, ow, lo, hi);
}

// A K x K, stride S row: the edge pixels one at a time, the interior U at a time and its
// remainder as one narrower step.
template <int K, int S, int U, bool SO = false>
void dwRowFast(const DwRow& r, typename V::T bias, typename V::T lo, typename V::T hi) {
  using T = typename V::T;
  constexpr int N = V::N;
  // Interior: ow * S - pl >= 0 and ow * S - pl + K - 1 < W.
  const int64_t first = std::min<int64_t>(r.OW, (r.pl + S - 1) / S);
  const int64_t num = r.W - K + r.pl;
  const int64_t last = num < 0 ? first : std::max(first, std::min<int64_t>(r.OW, num / S + 1));
  for (int64_t ow = 0; ow < first; ++ow) V::store(r.y + ow * (SO ? r.PO : N), V::clamp(dwEdgePixel(r, K, K, S, ow, bias), lo, hi));
  // Taps in registers where they fit beside the accumulators (AVX2 16 registers: 3x3;
  // AVX-512 32: 3x3 and 5x5); else each tap a load shared by the U FMAs.
  constexpr bool held = (N == 8 ? K * K + U <= 13 : K * K + U <= 28);
  T wr[held ? K * K : 1];
  if constexpr (held)
    for (int t = 0; t < K * K; ++t) wr[t] = V::load(r.w + t * N);
  int64_t ow = first;
  for (; ow + U <= last; ow += U) dwStep<K, S, U, held, SO>(r, wr, bias, ow, lo, hi);
  if constexpr (K >= 5 && N == 16) {
    if (ow < last) dwTail<K, S, U - 1, held, SO>(r, bias, ow, last - ow, lo, hi);
  } else {
    for (; ow < last; ++ow) dwStep<K, S, 1, held, SO>(r, wr, bias, ow, lo, hi);
  }
  for (ow = last; ow < r.OW; ++ow) V::store(r.y + ow * (SO ? r.PO : N), V::clamp(dwEdgePixel(r, K, K, S, ow, bias), lo, hi));
}

// Two output rows at stride 1 from K + 1 input rows (rows[0..K]): each input vector loaded
// once for both rows' accumulators (the whole filter held in registers). Output row o takes
// filter row kh = i - o of input row i: the same taps in the same order as dwStep.
template <int K, int U>
inline void dwStepPair(const DwRow& r, const typename V::T* wr, typename V::T bias, int64_t ow, float* y1,
                       typename V::T lo, typename V::T hi) {
  using T = typename V::T;
  constexpr int N = V::N;
  constexpr int Cols = U - 1 + K;
  T acc[2][U];
#pragma GCC unroll 16
  for (int u = 0; u < U; ++u) acc[0][u] = acc[1][u] = bias;
  const int64_t c0 = ow - r.pl;
#pragma GCC unroll 8
  for (int i = 0; i <= K; ++i) {
    const float* row = r.rows[i] + c0 * N;
#pragma GCC unroll 32
    for (int c = 0; c < Cols; ++c) {
      const T x = V::load(row + c * N);
#pragma GCC unroll 2
      for (int o = 0; o < 2; ++o) {
        const int kh = i - o;
        if (kh < 0 || kh >= K) continue;
#pragma GCC unroll 16
        for (int u = 0; u < U; ++u) {
          const int j = c - u;
          if (j >= 0 && j < K) acc[o][u] = V::fmadd(x, wr[kh * K + j], acc[o][u]);
        }
      }
    }
  }
#pragma GCC unroll 16
  for (int u = 0; u < U; ++u) {
    V::store(r.y + (ow + u) * N, V::clamp(acc[0][u], lo, hi));
    V::store(y1 + (ow + u) * N, V::clamp(acc[1][u], lo, hi));
  }
}

// Output rows r.y and y1 (the next), stride 1: edge pixels row by row, the interior in pairs.
template <int K, int U>
void dwRowPair(const DwRow& r, float* y1, typename V::T bias, typename V::T lo, typename V::T hi) {
  using T = typename V::T;
  constexpr int N = V::N;
  const int64_t first = std::min<int64_t>(r.OW, r.pl);
  const int64_t num = r.W - K + r.pl;
  const int64_t last = num < 0 ? first : std::max(first, std::min<int64_t>(r.OW, num + 1));
  const DwRow r1{r.rows + 1, r.w, y1, r.W, r.OW, r.pl};
  for (int64_t ow = 0; ow < first; ++ow) {
    V::store(r.y + ow * N, V::clamp(dwEdgePixel(r, K, K, 1, ow, bias), lo, hi));
    V::store(y1 + ow * N, V::clamp(dwEdgePixel(r1, K, K, 1, ow, bias), lo, hi));
  }
  T wr[K * K];
  for (int t = 0; t < K * K; ++t) wr[t] = V::load(r.w + t * N);
  int64_t ow = first;
  for (; ow + U <= last; ow += U) dwStepPair<K, U>(r, wr, bias, ow, y1, lo, hi);
  for (; ow < last; ++ow) dwStepPair<K, 1>(r, wr, bias, ow, y1, lo, hi);
  for (ow = last; ow < r.OW; ++ow) {
    V::store(r.y + ow * N, V::clamp(dwEdgePixel(r, K, K, 1, ow, bias), lo, hi));
    V::store(y1 + ow * N, V::clamp(dwEdgePixel(r1, K, K, 1, ow, bias), lo, hi));
  }
}

// AVX-512's 5x5 and 7x7 rows out of line: inlined into dwRows with their tails they made
// the 3x3 rows' code there slower (960x7 0.018 -> 0.021 ms, 576x14 0.038 -> 0.042; with
// AVX2's tails too, AVX2's 960x7 0.031 -> 0.044).
template <int K, int S, int U, bool SO = false>
__attribute__((noinline)) void dwRowFastOutOfLine(const DwRow& r, typename V::T bias, typename V::T lo,
                                                  typename V::T hi) {
  dwRowFast<K, S, U, SO>(r, bias, lo, hi);
}
template <int K, int S, int U, bool SO = false>
inline void dwRowWide(const DwRow& r, typename V::T bias, typename V::T lo, typename V::T hi) {
  if constexpr (V::N == 16) dwRowFastOutOfLine<K, S, U, SO>(r, bias, lo, hi);
  else dwRowFast<K, S, U, SO>(r, bias, lo, hi);
}

// Any filter and strides: every pixel through the edge path.
template <bool SO = false>
inline void dwRowGeneric(const DwRow& r, int64_t kh, int64_t kw, int64_t sw, typename V::T bias, typename V::T lo,
                         typename V::T hi) {
  constexpr int N = V::N;
  for (int64_t ow = 0; ow < r.OW; ++ow)
    V::store(r.y + ow * (SO ? r.PO : N), V::clamp(dwEdgePixel(r, kh, kw, sw, ow, bias), lo, hi));
}

// The filter and stride's unrolled row function (fastDw: kh * 10 + stride, 0 for none).
inline int fastDw(const Conv2dGeom& g) {
  return g.kH != g.kW || g.sH != g.sW || g.dH != 1 || g.dW != 1 ? 0
         : (g.kH == 3 || g.kH == 5 || g.kH == 7) && (g.sH == 1 || g.sH == 2) ? int(g.kH * 10 + g.sH)
                                                                            : 0;
}

// One output row of one channel block, in place or from the ring.
template <bool SO = false>
inline void dwRowAny(const DwRow& row, int fast, const Conv2dGeom& g, typename V::T bias, typename V::T lo,
                     typename V::T hi) {
  constexpr int U = V::N == 8 ? 4 : 8;
  switch (fast) {
    case 31: dwRowFast<3, 1, U, SO>(row, bias, lo, hi); break;
    case 32: dwRowFast<3, 2, U, SO>(row, bias, lo, hi); break;
    case 51: dwRowWide<5, 1, U, SO>(row, bias, lo, hi); break;
    case 52: dwRowWide<5, 2, U, SO>(row, bias, lo, hi); break;
    case 71: dwRowWide<7, 1, U, SO>(row, bias, lo, hi); break;
    case 72: dwRowWide<7, 2, U, SO>(row, bias, lo, hi); break;
    default: dwRowGeneric<SO>(row, g.kH, g.kW, g.sW, bias, lo, hi);
  }
}

// dwRowAny in place from scalar arguments (nchwc_depthwise.h's blockedDwRow): callable from
// code compiled for any ISA (vector arguments would cross the target boundary).
inline void dwRowInPlace(const Conv2dGeom& g, const float* const* rows, const float* w, const float* bias, float* y,
                         float lo, float hi) {
  const DwRow row{rows, w, y, g.W, g.OW, g.pl};
  dwRowAny(row, fastDw(g), g, V::load(bias), V::set1(lo), V::set1(hi));
}

// Two output rows y0, y1 (the next) of a 3x3 stride-1 depthwise from rows[0..3], as dwRows
// pairs them (AVX-512): the same bits as two dwRowInPlace calls.
inline void dwRowPairInPlace(const Conv2dGeom& g, const float* const* rows, const float* w, const float* bias,
                             float* y0, float* y1, float lo, float hi) {
  constexpr int U = V::N == 8 ? 4 : 8;
  const DwRow row{rows, w, y0, g.W, g.OW, g.pl};
  dwRowPair<3, U>(row, y1, V::load(bias), V::set1(lo), V::set1(hi));
}

// The padded input row ih of a plane in task's ring (slot ih % kRingSlots, tagged), or the
// zero row above and below the plane: column c of the row at (c + pl) * N, the padding zero
// (the slots were cleared when the task started).
// ps: the source's pixel stride (N blocked, C channels-last).
inline const float* ringRow(const DwJob& j, DwRing& ring, const float* x, int64_t key, int64_t ih, int64_t ps = V::N) {
  constexpr int N = V::N;
  const Conv2dGeom& g = j.g;
  if (ih < 0 || ih >= g.H) return j.zero;
  const int s = int(ih % kRingSlots);
  float* slot = ring.slots + s * j.slotWidth * N;
  if (ring.tags[s] == key + ih) return slot;
  ring.tags[s] = key + ih;
  const float* src = x + ih * g.W * ps;
  float* dst = slot + g.pl * N;
  const int64_t n = std::min(g.W, j.slotWidth - g.pl);
  for (int64_t c = 0; c < n; ++c) V::store(dst + c * N, V::load(src + c * ps));
  return slot;
}

// Rows [r0, r1) of the N * Cb * OH output rows, task t.
void dwRows(const DwJob& j, int64_t r0, int64_t r1, int64_t t) {
  using T = typename V::T;
  constexpr int N = V::N;
  constexpr int U = N == 8 ? 4 : 8;
  const Conv2dGeom& g = j.g;
  const int64_t Cb = nchwc::channelBlocks(g.C, N), KK = g.kH * g.kW;
  const T lo = V::set1(j.lo), hi = V::set1(j.hi);
  const int fast = fastDw(g);
  DwRing ring;
  if (j.ring) {
    ring.slots = j.ring + t * j.ringFloats;
    std::memset(ring.slots, 0, size_t(j.ringFloats) * sizeof(float));
    for (int64_t& tag : ring.tags) tag = -1;
  }
  const float* rows[kMaxDwRows];
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t oh = r % g.OH, plane = r / g.OH, cb = plane % Cb;
    const float* x = j.x + plane * g.H * g.W * N;
    // 3x3 stride 1 in place (wide rows), AVX-512: two output rows a pass when both are this
    // task's (1 thread, min of 50, ms, one / two rows: 192x28 0.033 / 0.028; 144x56 0.118 /
    // 0.118 and 32x112 0.099 / 0.101, bound by memory there).
    const bool pair = N == 16 && fast == 31 && !j.ring && oh + 1 < g.OH && r + 1 < r1;
    for (int64_t i = 0; i < g.kH + (pair ? 1 : 0); ++i) {
      const int64_t ih = oh * g.sH - g.pt + i;
      if (j.ring) rows[i] = ringRow(j, ring, x, plane * g.H, ih);
      else rows[i] = ih >= 0 && ih < g.H ? x + ih * g.W * N : j.zero;
    }
    float* y = j.y + r * g.OW * N;
    if (pair) {
      const DwRow row{rows, j.w + cb * KK * N, y, g.W, g.OW, g.pl};
      dwRowPair<3, U>(row, y + g.OW * N, V::load(j.bias + cb * N), lo, hi);
      for (int k = 0; k < 2; ++k, ++r, y += g.OW * N) {
        if (j.epilogue) j.row(j.epi, y, j.z ? j.z + r * g.OW * N : nullptr, nullptr, 0.0f, g.OW * N);
        if (cb == Cb - 1) nchwc::zeroPadLanes(y, g.OW, N, g.C % N);
      }
      --r;
      continue;
    }
    // In the ring every window lies inside its padded row: no edge pixels.
    const DwRow row = j.ring ? DwRow{rows, j.w + cb * KK * N, y, j.slotWidth, g.OW, 0}
                             : DwRow{rows, j.w + cb * KK * N, y, g.W, g.OW, g.pl};
    dwRowAny(row, fast, g, V::load(j.bias + cb * N), lo, hi);
    if (j.epilogue) j.row(j.epi, y, j.z ? j.z + r * g.OW * N : nullptr, nullptr, 0.0f, g.OW * N);
    if (cb == Cb - 1) nchwc::zeroPadLanes(y, g.OW, N, g.C % N);
  }
}

// Output rows [r0, r1) of the N * OH rows of a channels-last depthwise convolution (anvil.ConvNhwc:
// X [N, H, W, C], Y [N, OH, OW, C], C a multiple of N), channel blocks [cb0, cb1), task t: a
// row of one channel block reads its input rows through the ring (gathered from pixels C
// floats apart) and stores its pixels C floats apart. A task's rows go in bands of
// j.bandRows, each band's channel blocks in turn, so that the band's input rows (all
// channels) stay in L2 while each block reads its lines of them.
void dwRowsNhwc(const DwJob& j, int64_t r0, int64_t r1, int64_t cb0, int64_t cb1, int64_t t) {
  constexpr int N = V::N;
  const Conv2dGeom& g = j.g;
  const int64_t C = g.C, Cb = C / N, KK = g.kH * g.kW;
  const typename V::T lo = V::set1(j.lo), hi = V::set1(j.hi);
  const int fast = fastDw(g);
  DwRing ring;
  ring.slots = j.ring + t * j.ringFloats;
  std::memset(ring.slots, 0, size_t(j.ringFloats) * sizeof(float));
  for (int64_t& tag : ring.tags) tag = -1;
  const float* rows[kMaxDwRows];
  for (int64_t b0 = r0; b0 < r1;) {
    const int64_t n = b0 / g.OH, b1 = std::min({r1, b0 + j.bandRows, (n + 1) * g.OH});
    const float* x = j.x + n * g.H * g.W * C;
    for (int64_t cb = cb0; cb < cb1; ++cb)
      for (int64_t r = b0; r < b1; ++r) {
        const int64_t oh = r - n * g.OH, top = oh * g.sH - g.pt;
        for (int64_t i = 0; i < g.kH; ++i)
          rows[i] = ringRow(j, ring, x + cb * N, (n * Cb + cb) * g.H, top + i, C);
        DwRow row{rows, j.w + cb * KK * N, j.y + r * g.OW * C + cb * N, j.slotWidth, g.OW, 0};
        row.PO = C;
        dwRowAny<true>(row, fast, g, V::load(j.bias + cb * N), lo, hi);
      }
    b0 = b1;
  }
}

// ---- Pooling -----------------------------------------------------------------------------

// One output row of one channel block (the semantics of the plain pooling kernels, lane by
// lane: padding contributes nothing, max keeps the first of equal values and its NaN, an
// empty window gives -inf for max and 0 for average; sums in row-major window order).
template <bool Max, int KW>
void poolRow(const PoolJob& j, const float* x, float* y, int64_t oh) {
  using T = typename V::T;
  constexpr int N = V::N;
  const PoolGeom& g = j.g;
  const int64_t kw = KW > 0 ? KW : g.kw;
  int64_t k0, k1;
  windowRows(g, oh, &k0, &k1);
  const int64_t h0 = oh * g.sh - g.pt;
  // Interior columns [lo, hi): the whole window row inside the input.
  int64_t lo = g.OW, hi = g.OW;
  if (k1 > k0) {
    lo = std::min<int64_t>(g.OW, (g.pl + g.sw - 1) / g.sw);
    const int64_t num = g.W - 1 - (kw - 1) * g.dw + g.pl;
    hi = num < 0 ? lo : std::max(lo, std::min<int64_t>(g.OW, num / g.sw + 1));
  }
  const float fullDiv = float(g.kh * kw);
  const T divIn = V::set1(j.includePad ? fullDiv : float((k1 - k0) * kw));
  for (int64_t ow = lo; ow < hi; ++ow) {
    const float* s = x + ((h0 + k0 * g.dh) * g.W + ow * g.sw - g.pl) * N;
    T acc = Max ? V::load(s) : V::zero();
    for (int64_t i = k0; i < k1; ++i, s += g.dh * g.W * N)
#pragma GCC unroll 7
      for (int64_t jj = 0; jj < kw; ++jj) {
        if (Max && i == k0 && jj == 0) continue;
        const T v = V::load(s + jj * g.dw * N);
        acc = Max ? V::max(v, acc) : V::add(acc, v);
      }
    V::store(y + ow * N, Max ? acc : V::div(acc, divIn));
  }
  for (int64_t ow = 0; ow < g.OW; ++ow) {
    if (ow == lo) ow = hi;
    if (ow >= g.OW) break;
    const int64_t w0 = ow * g.sw - g.pl;
    int64_t j0 = w0 >= 0 ? 0 : (-w0 + g.dw - 1) / g.dw;
    int64_t j1 = w0 + (kw - 1) * g.dw < g.W ? kw : (g.W - 1 - w0) / g.dw + 1;
    if (g.W - 1 - w0 < 0) j1 = 0;
    if (j1 < j0) j1 = j0;
    T acc = Max ? V::set1(-INFINITY) : V::zero();
    bool any = false;
    for (int64_t i = k0; i < k1; ++i)
      for (int64_t jj = j0; jj < j1; ++jj) {
        const T v = V::load(x + ((h0 + i * g.dh) * g.W + w0 + jj * g.dw) * N);
        acc = !Max ? V::add(acc, v) : any ? V::max(v, acc) : v;
        any = true;
      }
    if (!Max) {
      const float div = j.includePad ? fullDiv : float((k1 - k0) * (j1 - j0));
      acc = div > 0.f ? V::div(acc, V::set1(div)) : V::zero();
    }
    V::store(y + ow * N, acc);
  }
}

template <bool Max, int KW>
void poolRowsOf(const PoolJob& j, int64_t r0, int64_t r1) {
  constexpr int N = V::N;
  const PoolGeom& g = j.g;
  const int64_t Cb = nchwc::channelBlocks(j.C, N);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t oh = r % g.OH, plane = r / g.OH;
    float* y = j.y + r * g.OW * N;
    poolRow<Max, KW>(j, j.x + plane * g.H * g.W * N, y, oh);
    if (plane % Cb == Cb - 1) nchwc::zeroPadLanes(y, g.OW, N, j.C % N);
  }
}

// Rows [r0, r1) of the N * Cb * OH output rows; window widths 2 and 3 at dilation 1 unrolled.
void poolRows(const PoolJob& j, int64_t r0, int64_t r1) {
  const bool unit = j.g.dw == 1;
  if (j.max) {
    if (unit && j.g.kw == 3) poolRowsOf<true, 3>(j, r0, r1);
    else if (unit && j.g.kw == 2) poolRowsOf<true, 2>(j, r0, r1);
    else poolRowsOf<true, 0>(j, r0, r1);
  } else {
    if (unit && j.g.kw == 3) poolRowsOf<false, 3>(j, r0, r1);
    else if (unit && j.g.kw == 2) poolRowsOf<false, 2>(j, r0, r1);
    else poolRowsOf<false, 0>(j, r0, r1);
  }
}
