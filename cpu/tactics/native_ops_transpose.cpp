// Tiled transposes of 4-byte elements (f32, i32, u32): x32_transpose_tiled__avx512 and
// x32_transpose_tiled__avx2. A permutation, once unit axes are dropped and axes that stay
// adjacent are merged, is a batch of 2-D planes whenever the input's innermost axis does
// not stay innermost: NCHW -> NHWC (perm 0,2,3,1) is one [C, H*W] -> [H*W, C] plane per
// image, NHWC -> NCHW the reverse, a [B, S, D] -> [B, D, S] the same per batch. Planes are
// cut into strips of 16 columns (see kStripCols), strips into 16x16 (AVX-512) or 8x8
// (AVX2) register transposes with masked edges; threads take runs of strips.
// Measured (one thread, this shared 2-core Xeon VM with 2 MB L2 a core,
// NativeMovementTiming.DISABLED_Transpose, the tensor counted once): [1,96,56,56] perm
// (0,2,3,1), 1.2 MB, in 86-95 us hot (13-14 GB/s; 64-66 us best-of-30 in a bare loop,
// 18 GB/s) and 112-118 us with caches flushed, against 160-190 us for the strided copy
// (one element per output element along the long stride) and 45 us hot / 80 us cold for
// a memcpy of the same bytes; perm (0,3,1,2) 85-87 us against 265-640 us. convnext_tiny's
// 38 transposes (one thread, same run): 1.86-1.95 ms against 4.2-4.6 ms.
// Copies move bits (shuffles never touch NaN payloads): results equal the reference's.
#include <immintrin.h>

#include <cstring>

#include "cpu/tactics/native_ops_util.h"

// GCC 12 warns that the unspecified merge source (_mm512_undefined_ps) inside
// _mm512_unpack*/shuffle_* is or may be used uninitialized (the intrinsics fill every lane).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace anvil::runtime::nops {

namespace {

struct TileParams {
  int32_t rank = 0;
  int32_t perm[kMaxRank] = {};
};

// The transpose as planes: dst[c * dstRow + r] = src[r * srcRow + c] for r < rows,
// c < cols, per batch element (batch axes in output order, with their strides).
struct Planes {
  int64_t rows = 1, cols = 1, srcRow = 0, dstRow = 0;
  int nb = 0;
  int64_t bdims[kMaxRank] = {}, bsrc[kMaxRank] = {}, bdst[kMaxRank] = {};
  int64_t batch = 1;
};

// False when the permutation, merged, keeps the input's innermost axis innermost (or is
// the identity): a strided copy of contiguous runs serves those.
bool planesOf(int rank, const int64_t* inDims, const int32_t* perm, Planes* pl) {
  // Drop unit axes (renumbering the rest), then merge output neighbours that are input
  // neighbours too.
  int newIndex[kMaxRank];
  int64_t d[kMaxRank];
  int r = 0;
  for (int i = 0; i < rank; ++i) {
    newIndex[i] = inDims[i] == 1 ? -1 : r;
    if (inDims[i] != 1) d[r++] = inDims[i];
  }
  int p[kMaxRank];
  int pr = 0;
  for (int k = 0; k < rank; ++k)
    if (newIndex[perm[k]] >= 0) p[pr++] = newIndex[perm[k]];
  // Merge: group output axes k..k' with p consecutive; a group becomes one input axis.
  int64_t md[kMaxRank];
  int groupOf[kMaxRank];  // input axis (unmerged) -> its group's first input axis
  int mp[kMaxRank];
  int m = 0;
  for (int k = 0; k < pr; ++k) {
    if (k > 0 && p[k] == p[k - 1] + 1) {
      groupOf[p[k]] = -1;
      continue;
    }
    groupOf[p[k]] = p[k];
    mp[m++] = p[k];
  }
  // Merged input axes in input order: an axis starts a group or continues the previous one.
  int mergedIndex[kMaxRank];
  int mr = 0;
  for (int i = 0; i < r; ++i) {
    if (groupOf[i] >= 0) {
      mergedIndex[i] = mr;
      md[mr++] = d[i];
    } else {
      mergedIndex[i] = mr - 1;
      md[mr - 1] *= d[i];
    }
  }
  for (int k = 0; k < m; ++k) mp[k] = mergedIndex[mp[k]];
  if (mr < 2 || mp[mr - 1] == mr - 1) return false;
  int64_t in[kMaxRank], out[kMaxRank];
  int64_t acc = 1;
  for (int i = mr; i-- > 0;) {
    in[i] = acc;
    acc *= md[i];
  }
  acc = 1;
  for (int k = mr; k-- > 0;) {
    out[k] = acc;
    acc *= md[mp[k]];
  }
  const int q = mp[mr - 1];  // the input axis that becomes the output's innermost
  pl->rows = md[q];
  pl->srcRow = in[q];
  pl->cols = md[mr - 1];
  pl->nb = 0;
  pl->batch = 1;
  for (int k = 0; k < mr - 1; ++k) {
    if (mp[k] == mr - 1) {
      pl->dstRow = out[k];
      continue;
    }
    pl->bdims[pl->nb] = md[mp[k]];
    pl->bsrc[pl->nb] = in[mp[k]];
    pl->bdst[pl->nb] = out[k];
    pl->batch *= md[mp[k]];
    ++pl->nb;
  }
  return true;
}

// A block is a strip of up to kStripRows rows by kStripCols (16) columns, walked down its
// rows: each source line (16 floats) is read once, whole, and each of the 16 destination
// rows is written as one long sequential run. In convnext_tiny that order took its
// slowest transpose (the stem's NHWC -> NCHW, 1.2 MB) from 460 to 150-170 us and the
// others 10-20% down against 64x64 blocks (which write 256-byte pieces of 64-96
// destination rows at a time); in a bare loop, hot or cold, the two are within noise.
constexpr int64_t kStripCols = 16, kStripRows = 2048;

// ---- AVX-512: 16x16 ----------------------------------------------------------------

#define ANVIL_AVX512 __attribute__((target("avx512f"))) inline

// Transposes 16 rows of 16 lanes in place: v[i][j] -> v[j][i].
ANVIL_AVX512 void transpose16(__m512 (&v)[16]) {
  __m512 a[16], b[16];
  for (int i = 0; i < 16; i += 2) {
    a[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);      // per 128-bit lane L: r_i, r_i+1 at columns 4L, 4L+1
    a[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);  // columns 4L+2, 4L+3
  }
  // b[4g + m], lane L: column 4L + m of rows 4g..4g+3.
  for (int g = 0; g < 4; ++g) {
    const __m512d x0 = _mm512_castps_pd(a[4 * g]), x1 = _mm512_castps_pd(a[4 * g + 1]);
    const __m512d y0 = _mm512_castps_pd(a[4 * g + 2]), y1 = _mm512_castps_pd(a[4 * g + 3]);
    b[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(x0, y0));
    b[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(x0, y0));
    b[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(x1, y1));
    b[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(x1, y1));
  }
  // A 4x4 transpose of 128-bit lanes across b[m], b[4 + m], b[8 + m], b[12 + m]: output
  // row 4L + m is lane L of each.
  for (int m = 0; m < 4; ++m) {
    const __m512 c0 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0x44);
    const __m512 c1 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0xEE);
    const __m512 c2 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0x44);
    const __m512 c3 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0xEE);
    v[m] = _mm512_shuffle_f32x4(c0, c2, 0x88);
    v[4 + m] = _mm512_shuffle_f32x4(c0, c2, 0xDD);
    v[8 + m] = _mm512_shuffle_f32x4(c1, c3, 0x88);
    v[12 + m] = _mm512_shuffle_f32x4(c1, c3, 0xDD);
  }
}

// A full 16x16 tile with the 128-bit lane exchange done by the loads: register 4 * cb + r
// holds, lane L, row r + 4L at columns 4cb..4cb+3, so a 4x4 transpose inside each lane
// (eight unpacks per four registers) leaves whole output rows. Half the shuffles of
// transpose16 (they share one port; the inserts from memory do not): 9.5 against 14.2 us
// for a [384,196] plane in L2, 64 against 90 us for [96,3136].
ANVIL_AVX512 void fullTile16(const float* src, int64_t srcRow, float* dst, int64_t dstRow) {
  __m512 z[16];
  for (int cb = 0; cb < 4; ++cb)
    for (int r = 0; r < 4; ++r) {
      const float* p = src + r * srcRow + 4 * cb;
      __m512 v = _mm512_zextps128_ps512(_mm_loadu_ps(p));
      v = _mm512_insertf32x4(v, _mm_loadu_ps(p + 4 * srcRow), 1);
      v = _mm512_insertf32x4(v, _mm_loadu_ps(p + 8 * srcRow), 2);
      v = _mm512_insertf32x4(v, _mm_loadu_ps(p + 12 * srcRow), 3);
      z[r + 4 * cb] = v;
    }
  for (int cb = 0; cb < 4; ++cb) {
    const __m512* w = z + 4 * cb;
    const __m512d t0 = _mm512_castps_pd(_mm512_unpacklo_ps(w[0], w[1]));
    const __m512d t1 = _mm512_castps_pd(_mm512_unpackhi_ps(w[0], w[1]));
    const __m512d t2 = _mm512_castps_pd(_mm512_unpacklo_ps(w[2], w[3]));
    const __m512d t3 = _mm512_castps_pd(_mm512_unpackhi_ps(w[2], w[3]));
    float* d = dst + 4 * cb * dstRow;
    _mm512_storeu_ps(d, _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2)));
    _mm512_storeu_ps(d + dstRow, _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2)));
    _mm512_storeu_ps(d + 2 * dstRow, _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3)));
    _mm512_storeu_ps(d + 3 * dstRow, _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3)));
  }
}

// An edge tile (nr rows, nc columns, at most 16 each): masked loads and stores around
// transpose16; masked-off lanes are neither read nor written.
ANVIL_AVX512 void edgeTile16(const float* src, int64_t srcRow, float* dst, int64_t dstRow, int64_t nr, int64_t nc) {
  __m512 v[16];
  const __mmask16 cm = __mmask16((1u << nc) - 1), rm = __mmask16((1u << nr) - 1);
  for (int i = 0; i < 16; ++i) v[i] = i < nr ? _mm512_maskz_loadu_ps(cm, src + i * srcRow) : _mm512_setzero_ps();
  transpose16(v);
  for (int i = 0; i < nc; ++i) _mm512_mask_storeu_ps(dst + i * dstRow, rm, v[i]);
}

__attribute__((target("avx512f"))) void blockAvx512(const float* src, int64_t srcRow, float* dst, int64_t dstRow,
                                                   int64_t nr, int64_t nc) {
  for (int64_t r = 0; r < nr; r += 16) {
    if (nr - r >= 16 && nc == 16) fullTile16(src + r * srcRow, srcRow, dst + r, dstRow);
    else edgeTile16(src + r * srcRow, srcRow, dst + r, dstRow, std::min<int64_t>(16, nr - r), nc);
  }
}

// ---- AVX2: 8x8 -------------------------------------------------------------------------

#define ANVIL_AVX2 __attribute__((target("avx2"))) inline

ANVIL_AVX2 void transpose8(__m256 (&v)[8]) {
  __m256 a[8], b[8];
  for (int i = 0; i < 8; i += 2) {
    a[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
    a[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
  }
  // b[4g + m], lane L: column 4L + m of rows 4g..4g+3.
  for (int g = 0; g < 2; ++g) {
    const __m256d x0 = _mm256_castps_pd(a[4 * g]), x1 = _mm256_castps_pd(a[4 * g + 1]);
    const __m256d y0 = _mm256_castps_pd(a[4 * g + 2]), y1 = _mm256_castps_pd(a[4 * g + 3]);
    b[4 * g + 0] = _mm256_castpd_ps(_mm256_unpacklo_pd(x0, y0));
    b[4 * g + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(x0, y0));
    b[4 * g + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(x1, y1));
    b[4 * g + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(x1, y1));
  }
  for (int m = 0; m < 4; ++m) {
    v[m] = _mm256_permute2f128_ps(b[m], b[4 + m], 0x20);
    v[4 + m] = _mm256_permute2f128_ps(b[m], b[4 + m], 0x31);
  }
}

ANVIL_AVX2 __m256i firstLanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// A full 8x8 tile, the lane exchange again in the loads: register 4g + i holds row i
// (low lane) and row i + 4 (high lane) at columns 4g..4g+3 (77 against 97 us for [96,3136]).
ANVIL_AVX2 void fullTile8(const float* src, int64_t srcRow, float* dst, int64_t dstRow) {
  __m256 v[8];
  for (int g = 0; g < 2; ++g)
    for (int i = 0; i < 4; ++i) {
      const float* p = src + i * srcRow + 4 * g;
      v[4 * g + i] = _mm256_insertf128_ps(_mm256_zextps128_ps256(_mm_loadu_ps(p)), _mm_loadu_ps(p + 4 * srcRow), 1);
    }
  for (int g = 0; g < 2; ++g) {
    const __m256* w = v + 4 * g;
    const __m256d t0 = _mm256_castps_pd(_mm256_unpacklo_ps(w[0], w[1]));
    const __m256d t1 = _mm256_castps_pd(_mm256_unpackhi_ps(w[0], w[1]));
    const __m256d t2 = _mm256_castps_pd(_mm256_unpacklo_ps(w[2], w[3]));
    const __m256d t3 = _mm256_castps_pd(_mm256_unpackhi_ps(w[2], w[3]));
    float* d = dst + 4 * g * dstRow;
    _mm256_storeu_ps(d, _mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2)));
    _mm256_storeu_ps(d + dstRow, _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2)));
    _mm256_storeu_ps(d + 2 * dstRow, _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3)));
    _mm256_storeu_ps(d + 3 * dstRow, _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3)));
  }
}

ANVIL_AVX2 void edgeTile8(const float* src, int64_t srcRow, float* dst, int64_t dstRow, int64_t nr, int64_t nc) {
  __m256 v[8];
  const __m256i cm = firstLanes(nc), rm = firstLanes(nr);
  for (int i = 0; i < 8; ++i) v[i] = i < nr ? _mm256_maskload_ps(src + i * srcRow, cm) : _mm256_setzero_ps();
  transpose8(v);
  for (int i = 0; i < nc; ++i) _mm256_maskstore_ps(dst + i * dstRow, rm, v[i]);
}

// Two 8-column tiles side by side per 8 rows: the 64-byte source line is used whole.
__attribute__((target("avx2"))) void blockAvx2(const float* src, int64_t srcRow, float* dst, int64_t dstRow,
                                              int64_t nr, int64_t nc) {
  for (int64_t r = 0; r < nr; r += 8)
    for (int64_t c = 0; c < nc; c += 8) {
      const float* s = src + r * srcRow + c;
      float* d = dst + c * dstRow + r;
      if (nr - r >= 8 && nc - c >= 8) fullTile8(s, srcRow, d, dstRow);
      else edgeTile8(s, srcRow, d, dstRow, std::min<int64_t>(8, nr - r), std::min<int64_t>(8, nc - c));
    }
}

using BlockFn = void (*)(const float*, int64_t, float*, int64_t, int64_t, int64_t);

void stridesOf(const TensorView& v, int64_t* s) {
  int64_t acc = 1;
  for (int i = v.rank - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= v.dims[i];
  }
}

void runTiled(const StepArgs& a, BlockFn block) {
  const TileParams& p = a.paramsAs<TileParams>();
  const TensorView& x = a.in(0);
  const TensorView& y = a.out(0);
  if (x.numel() == 0) return;
  Planes pl;
  if (x.rank != p.rank) a.fail("input rank differs from the prepared permutation's");
  if (!planesOf(p.rank, x.dims, p.perm, &pl)) {
    // Extents other than the build's merge differently: the strided copy serves them.
    int64_t in[kMaxRank], st[kMaxRank];
    stridesOf(x, in);
    for (int d = 0; d < p.rank; ++d) st[d] = in[p.perm[d]];
    copyStrided(a.executor, elemBytes(x.dtype), p.rank, y.dims, st, x.data, y.data);
    return;
  }
  const float* src = x.as<const float>();
  float* dst = y.as<float>();
  const int64_t rowBlocks = (pl.rows + kStripRows - 1) / kStripRows;
  const int64_t colBlocks = (pl.cols + kStripCols - 1) / kStripCols;
  const int64_t units = pl.batch * rowBlocks * colBlocks;
  // About 64 KB a task at least.
  const int64_t grain =
      std::max<int64_t>(1, 16384 / std::max<int64_t>(1, std::min(pl.rows, kStripRows) * std::min(pl.cols, kStripCols)));
  // Within a plane, the axis with more blocks is the outer one, so that threads split it
  // into equal shares.
  const bool rowsOuter = rowBlocks >= colBlocks;
  parallelRange(a.executor, units, grain, [&](int64_t b, int64_t e) {
    for (int64_t u = b; u < e; ++u) {
      const int64_t inPlane = u % (rowBlocks * colBlocks);
      const int64_t ct = rowsOuter ? inPlane % colBlocks : inPlane / rowBlocks;
      const int64_t rt = rowsOuter ? inPlane / colBlocks : inPlane % rowBlocks;
      int64_t bi = u / (colBlocks * rowBlocks), so = 0, dof = 0;
      for (int k = pl.nb; k-- > 0;) {
        const int64_t i = bi % pl.bdims[k];
        bi /= pl.bdims[k];
        so += i * pl.bsrc[k];
        dof += i * pl.bdst[k];
      }
      const int64_t r0 = rt * kStripRows, c0 = ct * kStripCols;
      block(src + so + r0 * pl.srcRow + c0, pl.srcRow, dst + dof + c0 * pl.dstRow + r0, pl.dstRow,
            std::min(kStripRows, pl.rows - r0), std::min(kStripCols, pl.cols - c0));
    }
  });
}

void runAvx512(const StepArgs& a) { runTiled(a, blockAvx512); }
void runAvx2(const StepArgs& a) { runTiled(a, blockAvx2); }

std::vector<int32_t> permOf(const ir::Node& n, int r) {
  const std::vector<int64_t> perm = n.attrs().getInts("perm");
  std::vector<int32_t> p(size_t(std::max(r, 0)));
  for (int d = 0; d < r; ++d) p[size_t(d)] = perm.empty() ? r - 1 - d : int32_t(normAxis(perm[size_t(d)], r));
  return p;
}

}  // namespace

void registerTiledTranspose(Kernels& k) {
  for (bool avx512 : {true, false}) {
    Kernel kn;
    kn.name = avx512 ? "x32_transpose_tiled__avx512" : "x32_transpose_tiled__avx2";
    kn.version = 3;  // 2: full tiles exchange lanes in their loads; 3: column strips
    kn.op = "Transpose";
    kn.precision = DataType::kUndefined;  // moves 4-byte elements of any type
    kn.requirements = {avx512 ? "avx512f" : "avx2"};
    // Static extents whose permutation is a batch of planes: otherwise the strided copy
    // is as good (contiguous runs) and the builder need not time this one.
    kn.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& t) {
      if (t.empty() || !plainBytes(t[0].dtype) || elemBytes(t[0].dtype) != 4 || !t[0].shape.isStatic()) return false;
      const std::vector<int64_t> dims = t[0].shape.extents();
      const int r = int(dims.size());
      if (r > kMaxRank) return false;
      const std::vector<int32_t> perm = permOf(n, r);
      for (int d = 0; d < r; ++d)
        if (perm[size_t(d)] < 0 || perm[size_t(d)] >= r) return false;
      Planes pl;
      return planesOf(r, dims.data(), perm.data(), &pl);
    };
    kn.prepare = [](const PrepareInfo& info, Prepared* out) {
      const int r = rankOf(info.maxTypes, 0);
      TileParams p;
      p.rank = r;
      const std::vector<int32_t> perm = permOf(*info.node, r);
      for (int d = 0; d < r; ++d) p.perm[d] = perm[size_t(d)];
      out->setParams(p);
    };
    kn.run = avx512 ? runAvx512 : runAvx2;
    k.add(std::move(kn));
  }
}

}  // namespace anvil::runtime::nops
