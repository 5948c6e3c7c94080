// One level of Strassen's algorithm over gemmPackedB (cpu/tactics/gemm_strassen.h).
#include "cpu/tactics/gemm_strassen.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "anvil/error.h"

namespace anvil::cpu::tactics {

namespace {

// A quadrant's contribution: C_q (=, +=, -=) the product's block.
enum class Upd : int { kCopy, kAdd, kSub };

struct Dest {
  int qr, qc;  // quadrant row / column (0 or 1)
  Upd mode;
  bool last;   // the quadrant's last contribution: the caller's epilogue follows
};

// The A operand of a product: X (+ or -) Y over quadrants (q = 2 * row + column; -1: none).
struct AOp {
  int x, y;
  bool sub;
};

// The B operand likewise: x (+ or -) y.
struct BOp {
  int x, y;
  bool sub;
};

// P1..P7 (gemm_strassen.h), quadrants 0 = (1,1), 1 = (1,2), 2 = (2,1), 3 = (2,2).
constexpr AOp kA[7] = {{0, 3, false}, {2, 3, false}, {0, -1, false}, {3, -1, false},
                       {0, 1, false}, {2, 0, true},  {1, 3, true}};
constexpr BOp kB[7] = {{0, 3, false}, {0, -1, false}, {1, 3, true}, {2, 0, true},
                       {3, -1, false}, {0, 1, false}, {2, 3, false}};

template <bool W512>
struct Vec;

// AVX-512: 16 lanes, masked tails.
template <>
struct Vec<true> {
  __attribute__((target("avx512f"))) static void update(float* d, const float* s, int64_t n, Upd m) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m512 v = _mm512_loadu_ps(s + i);
      __m512 r;
      switch (m) {
        case Upd::kCopy: r = v; break;
        case Upd::kAdd: r = _mm512_add_ps(_mm512_loadu_ps(d + i), v); break;
        default: r = _mm512_sub_ps(_mm512_loadu_ps(d + i), v); break;
      }
      _mm512_storeu_ps(d + i, r);
    }
    if (i < n) {
      const __mmask16 k = __mmask16((1u << (n - i)) - 1);
      const __m512 v = _mm512_maskz_loadu_ps(k, s + i);
      __m512 r;
      switch (m) {
        case Upd::kCopy: r = v; break;
        case Upd::kAdd: r = _mm512_add_ps(_mm512_maskz_loadu_ps(k, d + i), v); break;
        default: r = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, d + i), v); break;
      }
      _mm512_mask_storeu_ps(d + i, k, r);
    }
  }
  // d[0, n) = x[0, nx) (+|-) y[0, ny), zeros where neither reaches (x or y may be null).
  __attribute__((target("avx512f"))) static void combine(float* d, const float* x, int64_t nx, const float* y,
                                                         int64_t ny, bool sub, int64_t n) {
    if (!x) nx = 0;
    if (!y) ny = 0;
    for (int64_t i = 0; i < n; i += 16) {
      const int64_t w = std::min<int64_t>(16, n - i);
      const __mmask16 kw = __mmask16((1u << w) - 1);
      const int64_t ax = std::clamp<int64_t>(nx - i, 0, w), ay = std::clamp<int64_t>(ny - i, 0, w);
      const __m512 vx = _mm512_maskz_loadu_ps(__mmask16((1u << ax) - 1), ax ? x + i : d);
      const __m512 vy = _mm512_maskz_loadu_ps(__mmask16((1u << ay) - 1), ay ? y + i : d);
      _mm512_mask_storeu_ps(d + i, kw, sub ? _mm512_sub_ps(vx, vy) : _mm512_add_ps(vx, vy));
    }
  }
};

// AVX2: 8 lanes, scalar tails (one add or subtract per element either way: the same bits).
template <>
struct Vec<false> {
  __attribute__((target("avx2"))) static void update(float* d, const float* s, int64_t n, Upd m) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256 v = _mm256_loadu_ps(s + i);
      __m256 r;
      switch (m) {
        case Upd::kCopy: r = v; break;
        case Upd::kAdd: r = _mm256_add_ps(_mm256_loadu_ps(d + i), v); break;
        default: r = _mm256_sub_ps(_mm256_loadu_ps(d + i), v); break;
      }
      _mm256_storeu_ps(d + i, r);
    }
    for (; i < n; ++i) {
      switch (m) {
        case Upd::kCopy: d[i] = s[i]; break;
        case Upd::kAdd: d[i] = d[i] + s[i]; break;
        default: d[i] = d[i] - s[i]; break;
      }
    }
  }
  __attribute__((target("avx2"))) static void combine(float* d, const float* x, int64_t nx, const float* y, int64_t ny,
                                                      bool sub, int64_t n) {
    if (!x) nx = 0;
    if (!y) ny = 0;
    const int64_t both = std::min(nx, ny);
    int64_t i = 0;
    for (; i + 8 <= both; i += 8) {
      const __m256 vx = _mm256_loadu_ps(x + i), vy = _mm256_loadu_ps(y + i);
      _mm256_storeu_ps(d + i, sub ? _mm256_sub_ps(vx, vy) : _mm256_add_ps(vx, vy));
    }
    for (; i < n; ++i) {
      const float vx = i < nx ? x[i] : 0.0f, vy = i < ny ? y[i] : 0.0f;
      d[i] = sub ? vx - vy : vx + vy;
    }
  }
};

bool wide(const GemmConfig& c) { return c.nr == 32; }

void updateRow(bool w, float* d, const float* s, int64_t n, Upd m) {
  if (w)
    Vec<true>::update(d, s, n, m);
  else
    Vec<false>::update(d, s, n, m);
}
void combineRow(bool w, float* d, const float* x, int64_t nx, const float* y, int64_t ny, bool sub, int64_t n) {
  if (w)
    Vec<true>::combine(d, x, nx, y, ny, sub, n);
  else
    Vec<false>::combine(d, x, nx, y, ny, sub, n);
}

int64_t packedStride(const GemmConfig& c, const StrassenDims& d) { return roundUp(packedBFloats(c, d.Kh, d.Nh), 16); }

}  // namespace

StrassenDims StrassenDims::of(int64_t M, int64_t K, int64_t N) {
  StrassenDims d;
  d.M = M, d.K = K, d.N = N;
  d.Mh = (M + 1) / 2, d.Kh = (K + 1) / 2, d.Nh = (N + 1) / 2;
  d.Mb = M - d.Mh, d.Kb = K - d.Kh, d.Nb = N - d.Nh;
  return d;
}

int64_t strassenPackedBFloats(const GemmConfig& c, int64_t K, int64_t N) {
  return 7 * packedStride(c, StrassenDims::of(1, K, N));
}

void strassenPackB(const GemmConfig& c, int64_t K, int64_t N, StridedMatrix B, float* dst) {
  const StrassenDims d = StrassenDims::of(1, K, N);
  std::vector<float> op(size_t(std::max<int64_t>(1, d.Kh * d.Nh)));
  // Element (r, j) of quadrant q, zero past B's extents.
  auto at = [&](int q, int64_t r, int64_t j) -> float {
    const int64_t rr = r + (q >= 2 ? d.Kh : 0), jj = j + (q % 2 ? d.Nh : 0);
    return rr < K && jj < N ? B.at(rr, jj) : 0.0f;
  };
  for (int p = 0; p < 7; ++p) {
    const BOp& o = kB[p];
    for (int64_t r = 0; r < d.Kh; ++r)
      for (int64_t j = 0; j < d.Nh; ++j) {
        const float x = at(o.x, r, j);
        const float y = o.y >= 0 ? at(o.y, r, j) : 0.0f;
        op[size_t(r * d.Nh + j)] = o.y < 0 ? x : o.sub ? x - y : x + y;
      }
    packBPanels(c, d.Kh, d.Nh, {op.data(), d.Nh, 1}, 0, ceilDiv(d.Nh, c.nr), dst + p * packedStride(c, d));
  }
}

int64_t strassenSharedFloats(int64_t M, int64_t K, int64_t N) {
  const StrassenDims d = StrassenDims::of(M, K, N);
  return roundUp(d.Mh * roundUp(d.Nh, 16), 16) + roundUp(d.Mh * d.Kh, 16);
}

int64_t strassenSlotFloats(const GemmConfig& c, int64_t K) { return gemmPackedBSlotFloats(c, (K + 1) / 2); }

void gemmStrassen(const GemmConfig& c, int64_t M, int64_t N, int64_t K, float alpha, StridedMatrix A,
                  const float* Bp, float* C, int64_t ldc, float* shared, runtime::Executor* ex,
                  const TaskSlots& slots, const BlockEpilogue* finish) {
  ANVIL_CHECK(A.cs == 1 && (c.nr == 32 || c.nr == 16), ErrorCode::kInternal,
              "gemmStrassen: a row-major A and an AVX2 or AVX-512 family");
  if (M <= 0 || N <= 0) return;
  const StrassenDims d = StrassenDims::of(M, K, N);
  const bool w = wide(c);
  const int64_t ldt = roundUp(d.Nh, 16);
  float* T = shared;
  float* aop = shared + roundUp(d.Mh * ldt, 16);
  const int64_t bStride = packedStride(c, d);
  // Quadrant q of A: its first element, rows and columns present.
  auto aq = [&](int q, const float** p, int64_t* rows, int64_t* cols) {
    const int64_t r0 = q >= 2 ? d.Mh : 0, c0 = q % 2 ? d.Kh : 0;
    *p = A.p + r0 * A.rs + c0;
    *rows = q >= 2 ? d.Mb : d.Mh;
    *cols = q % 2 ? d.Kb : d.Kh;
  };
  // Rows [r0, r1) of the operands and products: a task's share. Each task runs the seven
  // products one after the other on its rows (one fork and join for the whole product; the
  // rows of T, of the A operand and of each C quadrant it touches are its own).
  auto rowsTask = [&](int64_t r0, int64_t r1, const TaskSlots& own) {
    const int64_t rows = r1 - r0;
    if (rows <= 0) return;
    // Product p's A operand for these rows: A11 (and A22 when no padding is needed) in
    // place, the others formed into aop (zero padded).
    auto operand = [&](int p) -> StridedMatrix {
      const AOp& o = kA[p];
      if (o.y < 0 && o.x == 0) return {A.p + r0 * A.rs, A.rs, 1};
      if (o.y < 0 && o.x == 3 && d.Mb == d.Mh && d.Kb == d.Kh) return {A.p + (d.Mh + r0) * A.rs + d.Kh, A.rs, 1};
      const float *xp, *yp = nullptr;
      int64_t xr, xc, yr = 0, yc = 0;
      aq(o.x, &xp, &xr, &xc);
      if (o.y >= 0) aq(o.y, &yp, &yr, &yc);
      for (int64_t r = r0; r < r1; ++r)
        combineRow(w, aop + r * d.Kh, r < xr ? xp + r * A.rs : nullptr, xc, r < yr && yp ? yp + r * A.rs : nullptr, yc,
                   o.sub, d.Kh);
      return {aop + r0 * d.Kh, d.Kh, 1};
    };
    // Product p into T's rows, each finished block then added into the quadrants `dests`.
    auto viaT = [&](int p, std::initializer_list<Dest> dests) {
      const StridedMatrix op = operand(p);
      // In chunks of rows (~16 KiB of the block): each chunk goes to every quadrant it
      // feeds, then through the caller's epilogue where that was the last contribution,
      // while the chunk is in L1 (a quadrant at a time, the block came from L2 each time).
      auto ep = [&](int64_t i0, int64_t rr0, int64_t j0, int64_t cols, float* t, int64_t ld) {
        i0 += r0;
        const int64_t chunk = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, cols));
        for (int64_t c0 = 0; c0 < rr0; c0 += chunk) {
          const int64_t cn = std::min(chunk, rr0 - c0);
          for (const Dest& ds : dests) {
            const int64_t rOff = ds.qr ? d.Mh : 0, rLim = ds.qr ? d.Mb : d.Mh;
            const int64_t cOff = ds.qc ? d.Nh : 0, cLim = ds.qc ? d.Nb : d.Nh;
            const int64_t rr = std::min(cn, rLim - (i0 + c0)), cc = std::min(cols, cLim - j0);
            if (rr <= 0 || cc <= 0) continue;
            float* cp = C + (rOff + i0 + c0) * ldc + cOff + j0;
            for (int64_t r = 0; r < rr; ++r) updateRow(w, cp + r * ldc, t + (c0 + r) * ld, cc, ds.mode);
            if (ds.last && finish) (*finish)(rOff + i0 + c0, rr, cOff + j0, cc, cp, ldc);
          }
        }
      };
      const BlockEpilogue epRef(ep);
      gemmPackedB(c, rows, d.Nh, d.Kh, alpha, op, Bp + p * bStride, T + r0 * ldt, ldt, nullptr, own, &epRef);
    };
    // P7 straight into C11 (always Mh x Nh), P6 into C22 where that quadrant is full size.
    gemmPackedB(c, rows, d.Nh, d.Kh, alpha, operand(6), Bp + 6 * bStride, C + r0 * ldc, ldc, nullptr, own, nullptr);
    if (d.Mb == d.Mh && d.Nb == d.Nh)
      gemmPackedB(c, rows, d.Nh, d.Kh, alpha, operand(5), Bp + 5 * bStride, C + (d.Mh + r0) * ldc + d.Nh, ldc, nullptr,
                  own, nullptr);
    else
      viaT(5, {{1, 1, Upd::kCopy, false}});
    viaT(2, {{0, 1, Upd::kCopy, false}, {1, 1, Upd::kAdd, false}});  // P3
    viaT(1, {{1, 0, Upd::kCopy, false}, {1, 1, Upd::kSub, false}});  // P2
    viaT(0, {{0, 0, Upd::kAdd, false}, {1, 1, Upd::kAdd, true}});    // P1
    viaT(3, {{0, 0, Upd::kAdd, false}, {1, 0, Upd::kAdd, true}});    // P4
    viaT(4, {{0, 0, Upd::kSub, true}, {0, 1, Upd::kAdd, true}});     // P5
  };
  // Tasks over the rows, evenly (at least 8 rows each).
  const int64_t n = ex ? std::min<int64_t>(slots.tasks, std::max<int64_t>(1, d.Mh / 8)) : 1;
  if (n > 1) {
    ex->parallelFor(n, [&](int64_t t) {
      rowsTask(rangeBegin(d.Mh, t, n), rangeBegin(d.Mh, t + 1, n), TaskSlots{slots.slot(t), slots.stride, 1});
    });
  } else {
    rowsTask(0, d.Mh, TaskSlots{slots.base, slots.stride, 1});
  }
}

}  // namespace anvil::cpu::tactics
