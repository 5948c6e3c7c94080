// The INT8 engine of cpu/tactics/int8_gemm.h: activation and weight quantization, the
// 32-bit group packers (weights at build time, activations and Conv images per run), and
// the register-tiled micro-kernels with the dequantizing store (AVX-512 VNNI, AVX-VNNI,
// AVX2 s16 pairs, and a portable plain C++ family with the same bits for CPUs without AVX2:
// its f32 store is one convert, multiply and add per value, never contracted into an FMA
// since this file is built for the baseline ISA).
// Speed (one thread, NativeInt8Bench.DISABLED_TilePeak / DISABLED_VsF32 on the shared
// AVX-512 VNNI dev box, whose FMA peak is 134 GFLOP/s AVX2, 249 AVX-512: 4x that is the
// u8 roof): the 8x48 VNNI tile 780-870 GOP/s on L1 operands; MatMul 128x768x768 790 GOP/s
// (3.8x the best f32 kernel next to it), 128x768x3072 770 (4.0x), 1x768x768 9x; 3x3 64 ->
// 64 at 56x56 600-670 (2.0x f32 Winograd, 4x f32 direct); 3x3 stride 2 128 -> 128 at 28x28
// 360 (2.0x); 1x1 256 -> 64 at 56x56 325 (2.2x; its 3.2 MB input streams from L3), at
// 28x28 410 (2.4x). AVX-VNNI 4x24: 1.2-2.3x. AVX2: vpmaddwd issues on two ports and each
// needs a vpaddd, so the exact s16 form tops out near 1.5x the FMA rate on this core
// (tile 166 GOP/s): MatMul 1.4-1.5x the f32 AVX2 kernels, 1x1 Conv 1.15-1.25x, 3x3 1.6x
// f32 direct but 0.6x f32 Winograd. AMD Zen1 (EPYC family 23 model 1, an AVX2-only CPU)
// issues vector integer multiplies on one pipe and FMAs on two, so vpmaddwd + vpaddd gives
// just the FMA's multiply-adds per cycle (NativeInt8Bench.DISABLED_Avx2MacRates: 1.0x;
// vpmaddubsw widened by a vpmaddwd 0.95x, MLAS's U8S8 form; vpmaddubsw widened by shifts
// 1.3x, but exact only where no product pair passes 32767). There the 4x16 tile runs at
// 0.95-1.0x the FMA's rate measured next to it (DISABLED_TilePeak 39-46 GOP/s of thread CPU
// time), MatMul 128x768x768 1.0x and 128x768x3072 1.1x the f32 AVX2 kernel (DISABLED_VsF32),
// so INT8 engines run near their FP32 latency (the builder keeps f32 where INT8 is slower).
#include "cpu/tactics/int8_gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>

namespace anvil::cpu::tactics {

// Tiles: VNNI 8 rows x 3 vectors (24 zmm accumulators, the 3 activation vectors in
// registers, the weight groups broadcast from memory by vpdpbusd itself); AVX2 4 x 2 (8
// accumulators, 2 vectors, a broadcast and the vpmaddwd products in the 16 ymm).
const I8Config& i8Config(I8Isa isa) {
  static const I8Config kAvx2{4, 8, 2, 2, I8Isa::kAvx2};
  static const I8Config kVnni512{8, 16, 4, 3, I8Isa::kAvx512Vnni};
  static const I8Config kAvxVnni{4, 8, 4, 3, I8Isa::kAvxVnni};
  static const I8Config kPortable{8, 8, 4, 2, I8Isa::kPortable};
  switch (isa) {
    case I8Isa::kAvx2: return kAvx2;
    case I8Isa::kAvx512Vnni: return kVnni512;
    case I8Isa::kAvxVnni: return kAvxVnni;
    case I8Isa::kPortable: return kPortable;
  }
  return kAvx2;
}

// ---------------------------------------------------------------------------------------
// Quantization

// The clamp before the conversion keeps cvtps in range (out of range it returns INT_MIN,
// which would clamp a huge positive input to 0); +-512 is past every u8 result.
uint8_t quantizeU8One(float x, float inv, int32_t zp) {
  float v = x * inv;
  if (std::isnan(v)) v = 0.0f;
  v = std::min(std::max(v, -512.0f), 512.0f);
  const int32_t r = int32_t(std::nearbyint(v)) + zp;  // the default rounding: half to even
  return uint8_t(std::clamp(r, 0, 255));
}

__attribute__((target("avx2"))) void quantizeU8(const float* x, int64_t n, float inv, int32_t zp, uint8_t* q) {
  const __m256 vinv = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-512.0f), hi = _mm256_set1_ps(512.0f);
  const __m256i z = _mm256_set1_epi32(zp);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256i r[4];
    for (int j = 0; j < 4; ++j) {
      __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * j), vinv);
      v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));  // NaN -> 0
      v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
      r[j] = _mm256_add_epi32(_mm256_cvtps_epi32(v), z);
    }
    // packs/packus work per 128-bit lane: dwords come out as r0a r1a r2a r3a | r0b r1b r2b r3b.
    const __m256i s = _mm256_packus_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), _mm256_permutevar8x32_epi32(s, order));
  }
  // The tail eight at a time through the same lanes (a scalar tail cost more than the
  // vector loop on 56-wide image rows).
  for (; i < n; i += 8) {
    const int64_t m = std::min<int64_t>(8, n - i);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(m)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 v = _mm256_mul_ps(_mm256_maskload_ps(x + i, mask), vinv);
    v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    const __m256i r = _mm256_add_epi32(_mm256_cvtps_epi32(v), z);
    const __m128i h = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    alignas(16) uint8_t b[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(b), _mm_packus_epi16(h, h));
    std::memcpy(q + i, b, size_t(m));
  }
}

void quantizeU8For(const I8Config& c, const float* x, int64_t n, float inv, int32_t zp, uint8_t* q) {
  if (c.isa != I8Isa::kPortable) {
    quantizeU8(x, n, inv, zp, q);
    return;
  }
  for (int64_t i = 0; i < n; ++i) q[i] = quantizeU8One(x[i], inv, zp);
}

namespace {
// |v - zp| per byte (u8 quads) or per 16-bit half (s16 pairs), eight words at a time.
__attribute__((target("avx2"))) int64_t absDeviationAvx2(const I8Config& c, const uint32_t* src, int64_t n,
                                                         int32_t zp, uint32_t* dst) {
  int64_t i = 0;
  const __m256i z8 = _mm256_set1_epi8(char(zp)), z16 = _mm256_set1_epi16(int16_t(zp));
  for (; i + 8 <= n; i += 8) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    const __m256i d = c.kg == 4 ? _mm256_sub_epi8(_mm256_max_epu8(v, z8), _mm256_min_epu8(v, z8))
                                : _mm256_abs_epi16(_mm256_sub_epi16(v, z16));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), d);
  }
  return i;
}
}  // namespace

void absDeviationWords(const I8Config& c, const uint32_t* src, int64_t n, int32_t zp, uint32_t* dst) {
  if (c.isa != I8Isa::kPortable) {  // the other families need AVX2
    const int64_t done = absDeviationAvx2(c, src, n, zp, dst);
    src += done, dst += done, n -= done;
  }
  const int bits = 32 / c.kg;
  const uint32_t mask = c.kg == 4 ? 0xffu : 0xffffu;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t w = 0;
    for (int e = 0; e < c.kg; ++e) {
      const int32_t v = int32_t((src[i] >> (bits * e)) & mask);
      w |= uint32_t(v > zp ? v - zp : zp - v) << (bits * e);
    }
    dst[i] = w;
  }
}

I8Weights quantizeWeights(const float* w, int64_t N, int64_t K, int64_t fs, int64_t ks, const float* givenScales) {
  I8Weights r;
  r.N = N;
  r.K = K;
  r.q.assign(size_t(N * K), 0);
  r.scale.assign(size_t(N), 1.0f);
  r.sums.assign(size_t(N), 0);
  for (int64_t f = 0; f < N; ++f) {
    float s;
    if (givenScales) {
      s = givenScales[f];
    } else {
      float m = 0.0f;
      for (int64_t k = 0; k < K; ++k) m = std::max(m, std::fabs(w[f * fs + k * ks]));
      s = m > 0.0f && std::isfinite(m) ? m / 127.0f : 1.0f;
    }
    r.scale[size_t(f)] = s;
    int32_t sum = 0;
    for (int64_t k = 0; k < K; ++k) {
      const float v = w[f * fs + k * ks] / s;
      const float c = std::isnan(v) ? 0.0f : std::min(std::max(std::nearbyint(v), -127.0f), 127.0f);
      r.q[size_t(f * K + k)] = int8_t(c);
      sum += int32_t(c);
    }
    r.sums[size_t(f)] = sum;
  }
  return r;
}

// ---------------------------------------------------------------------------------------
// Finishing a row

namespace {

// Rows r of n values: y + r * ldy (f32), the residual zf / zq + r * ldz, out yq / yf + r *
// ldo, rowBias rb[r * rbs] (rbs 0: one value for every row).
struct Rows {
  const float* y;
  int64_t ldy;
  int rows;
  int64_t n;
  const float* rb;
  int64_t rbs;
  const float* colBias;
  const float* zf;
  const uint8_t* zq;
  int64_t ldz;
  uint8_t* yq;
  float* yf;
  int64_t ldo;
};

// Relu: x < 0 ? 0 : x (NaN kept); Clip: x < p0 ? p0 : x, then > p1 ? p1 : x: the blends of
// fused_linear.cpp's act8. A partial vector under masks (no byte copies).
// The u8 store is quantizeU8One's with two steps fewer, the same bits: its clamp to -512
// is left out (below it, or at -inf, the conversion gives INT_MIN, which + zp < 0 clamps to
// 0 as -512 does), and with kNaN false (the caller's RowFinish::noNaN) so is the NaN test.
template <int kAct, bool kEpi, int kZ, bool kU8, bool kNaN>  // kZ: 0 none, 1 f32, 2 u8
__attribute__((target("avx512f,avx512bw,avx512vl"))) void finishRows16(const RowFinish& f, const Rows& w) {
  const __m512 zero = _mm512_setzero_ps(), p0 = _mm512_set1_ps(f.p0), p1 = _mm512_set1_ps(f.p1),
               zs = _mm512_set1_ps(f.zScale), inv = _mm512_set1_ps(f.yInv), hi = _mm512_set1_ps(512.0f);
  const __m512i zz = _mm512_set1_epi32(f.zZero), yz = _mm512_set1_epi32(f.yZero), q0 = _mm512_setzero_si512();
  const __mmask16 all = 0xffff;  // zero-masked forms, every lane kept (GCC 12's "may be used uninitialized")
  for (int r = 0; r < w.rows; ++r) {
    const float* y = w.y + r * w.ldy;
    const __m512 rb = _mm512_set1_ps(w.rb ? w.rb[r * w.rbs] : 0.0f);
    for (int64_t j = 0; j < w.n; j += 16) {
      const int64_t m = std::min<int64_t>(16, w.n - j);
      const __mmask16 k = __mmask16((1u << m) - 1);
      __m512 v = _mm512_maskz_loadu_ps(k, y + j);
      if (kEpi) {
        v = _mm512_add_ps(v, rb);
        if (w.colBias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, w.colBias + j));
        __m512 z = zero;
        if (kZ == 2) {
          const __m128i b = _mm_maskz_loadu_epi8(k, w.zq + r * w.ldz + j);
          z = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(all, _mm512_sub_epi32(_mm512_maskz_cvtepu8_epi32(all, b), zz)), zs);
          asm("" : "+v"(z));  // the product rounded on its own: never contracted with the add into an FMA
        } else if (kZ == 1) {
          z = _mm512_maskz_loadu_ps(k, w.zf + r * w.ldz + j);
        }
        if (kZ && f.addFirst) v = _mm512_add_ps(v, z);
        if (kAct == 1) v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), zero);
        if (kAct == 2) {
          v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, p0, _CMP_LT_OQ), p0);
          v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, p1, _CMP_GT_OQ), p1);
        }
        if (kZ && !f.addFirst) v = _mm512_add_ps(v, z);
      }
      if (!kU8) {
        _mm512_mask_storeu_ps(w.yf + r * w.ldo + j, k, v);
        continue;
      }
      __m512 s = _mm512_mul_ps(v, inv);
      if (kNaN) s = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(s, s, _CMP_ORD_Q), s);  // NaN -> 0
      s = _mm512_maskz_min_ps(all, s, hi);
      const __m512i q = _mm512_maskz_max_epi32(all, _mm512_add_epi32(_mm512_maskz_cvtps_epi32(all, s), yz), q0);
      _mm512_mask_cvtusepi32_storeu_epi8(w.yq + r * w.ldo + j, k, q);  // [0, 2^31) saturated to 255
    }
  }
}

template <int kAct, bool kEpi, int kZ, bool kU8, bool kNaN>
__attribute__((target("avx2,fma"))) void finishRows8(const RowFinish& f, const Rows& w) {
  const __m256 zero = _mm256_setzero_ps(), p0 = _mm256_set1_ps(f.p0), p1 = _mm256_set1_ps(f.p1),
               zs = _mm256_set1_ps(f.zScale), inv = _mm256_set1_ps(f.yInv), hi = _mm256_set1_ps(512.0f);
  const __m256i zz = _mm256_set1_epi32(f.zZero), yz = _mm256_set1_epi32(f.yZero),
                iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int r = 0; r < w.rows; ++r) {
    const float* y = w.y + r * w.ldy;
    const __m256 rb = _mm256_set1_ps(w.rb ? w.rb[r * w.rbs] : 0.0f);
    for (int64_t j = 0; j < w.n; j += 8) {
      const int64_t m = std::min<int64_t>(8, w.n - j);
      const __m256i k = _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(m)), iota);
      __m256 v = m == 8 ? _mm256_loadu_ps(y + j) : _mm256_maskload_ps(y + j, k);
      if (kEpi) {
        v = _mm256_add_ps(v, rb);
        if (w.colBias)
          v = _mm256_add_ps(v, m == 8 ? _mm256_loadu_ps(w.colBias + j) : _mm256_maskload_ps(w.colBias + j, k));
        __m256 z = zero;
        if (kZ == 2) {
          const uint8_t* zr = w.zq + r * w.ldz + j;
          int64_t b = 0;
          if (m == 8) std::memcpy(&b, zr, 8);
          else for (int64_t i = 0; i < m; ++i) b |= int64_t(zr[i]) << (8 * i);
          z = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(b)), zz)), zs);
          asm("" : "+v"(z));  // the product rounded on its own: never contracted with the add into an FMA
        } else if (kZ == 1) {
          const float* zr = w.zf + r * w.ldz + j;
          z = m == 8 ? _mm256_loadu_ps(zr) : _mm256_maskload_ps(zr, k);
        }
        if (kZ && f.addFirst) v = _mm256_add_ps(v, z);
        if (kAct == 1) v = _mm256_blendv_ps(v, zero, _mm256_cmp_ps(v, zero, _CMP_LT_OQ));
        if (kAct == 2) {
          v = _mm256_blendv_ps(v, p0, _mm256_cmp_ps(v, p0, _CMP_LT_OQ));
          v = _mm256_blendv_ps(v, p1, _mm256_cmp_ps(v, p1, _CMP_GT_OQ));
        }
        if (kZ && !f.addFirst) v = _mm256_add_ps(v, z);
      }
      if (!kU8) {
        float* o = w.yf + r * w.ldo + j;
        if (m == 8) _mm256_storeu_ps(o, v);
        else _mm256_maskstore_ps(o, k, v);
        continue;
      }
      __m256 s = _mm256_mul_ps(v, inv);
      if (kNaN) s = _mm256_and_ps(s, _mm256_cmp_ps(s, s, _CMP_ORD_Q));  // NaN -> 0
      s = _mm256_min_ps(s, hi);  // (no clamp to -512: see finishRows16)
      const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(s), yz);
      const __m128i h = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
      const uint64_t b = uint64_t(_mm_cvtsi128_si64(_mm_packus_epi16(h, h)));  // saturates to [0, 255]
      uint8_t* o = w.yq + r * w.ldo + j;
      if (m == 8) std::memcpy(o, &b, 8);
      else for (int64_t i = 0; i < m; ++i) o[i] = uint8_t(b >> (8 * i));
    }
  }
}

// The baseline: the row's scalar formulas and quantizeU8One.
void finishRowsScalar(const RowFinish& f, const Rows& w) {
  for (int r = 0; r < w.rows; ++r)
    for (int64_t j = 0; j < w.n; ++j) {
      float v = w.y[r * w.ldy + j];
      if (f.epilogue) {
        v = v + (w.rb ? w.rb[r * w.rbs] : 0.0f);
        if (w.colBias) v += w.colBias[j];
        const bool hasZ = w.zf || w.zq;
        const float z = w.zq ? float(int32_t(w.zq[r * w.ldz + j]) - f.zZero) * f.zScale : w.zf ? w.zf[r * w.ldz + j] : 0.0f;
        if (hasZ && f.addFirst) v += z;
        if (f.act == 1) v = v < 0.0f ? 0.0f : v;
        if (f.act == 2) {
          v = v < f.p0 ? f.p0 : v;
          v = v > f.p1 ? f.p1 : v;
        }
        if (hasZ && !f.addFirst) v += z;
      }
      if (w.yq) w.yq[r * w.ldo + j] = quantizeU8One(v, f.yInv, f.yZero);
      else w.yf[r * w.ldo + j] = v;
    }
}

using FinishFn = void (*)(const RowFinish&, const Rows&);

// Every (activation, epilogue, Z, u8, NaN) instance of a family, indexed
// (act * 12 + epi * 6 + z * 2 + u8) * 2 + nan.
template <template <int, bool, int, bool, bool> class F>
struct FinishTable {
  FinishFn t[72];
  FinishTable() {
    fill<0>();
    fill<1>();
    fill<2>();
  }
  template <int A>
  void fill() {
    fillE<A, false>();
    fillE<A, true>();
  }
  template <int A, bool E>
  void fillE() {
    fillZ<A, E, 0>();
    fillZ<A, E, 1>();
    fillZ<A, E, 2>();
  }
  template <int A, bool E, int Z>
  void fillZ() {
    const int i = (A * 12 + E * 6 + Z * 2) * 2;
    t[i + 0] = F<A, E, Z, false, false>::fn;
    t[i + 1] = F<A, E, Z, false, true>::fn;
    t[i + 2] = F<A, E, Z, true, false>::fn;
    t[i + 3] = F<A, E, Z, true, true>::fn;
  }
};
template <int A, bool E, int Z, bool U, bool N>
struct F16 {
  static constexpr FinishFn fn = finishRows16<A, E, Z, U, N>;
};
template <int A, bool E, int Z, bool U, bool N>
struct F8 {
  static constexpr FinishFn fn = finishRows8<A, E, Z, U, N>;
};

// The activation a finish applies (0: none): a Relu before a u8 store with zero point 0 and
// no Z after it changes no bits (every v below 0, -0 and NaN alike, gives 0 either way), so
// it is left out.
int finishAct(const RowFinish& f, bool hasZ, bool u8) {
  const bool reluFolds = f.act == 1 && u8 && f.yZero == 0 && (!hasZ || f.addFirst);
  return f.epilogue && !reluFolds ? f.act : 0;
}

// level: 0 scalar, 1 AVX2, 2 AVX-512 (the best the host has by default).
void finishRows(const RowFinish& f, const Rows& w, int level) {
  static const FinishTable<F16> k16;
  static const FinishTable<F8> k8;
  if (level <= 0) return finishRowsScalar(f, w);
  const int z = !f.epilogue ? 0 : w.zq ? 2 : w.zf ? 1 : 0;
  const int act = finishAct(f, z != 0, w.yq != nullptr);
  const int i = (act * 12 + int(f.epilogue) * 6 + z * 2 + int(w.yq != nullptr)) * 2 + int(!f.noNaN || z == 1);
  (level >= 2 ? k16.t : k8.t)[i](f, w);
}

int hostFinishLevel() {
  static const bool kAvx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  static const bool kAvx512 = kAvx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                              __builtin_cpu_supports("avx512vl");
  return kAvx512 ? 2 : kAvx2 ? 1 : 0;
}

}  // namespace

bool finishRowHandles(int activation) { return activation >= 0 && activation <= 2; }

bool tileFinishNoNaN(const float* sc, int64_t n, const float* bias, int64_t nb, float zScale, float yInv) {
  auto finite = [](const float* v, int64_t k) {
    for (int64_t i = 0; v && i < k; ++i)
      if (!std::isfinite(v[i])) return false;
    return true;
  };
  return std::isfinite(zScale) && std::isfinite(yInv) && finite(sc, n) && finite(bias, nb);
}

void finishTile(const RowFinish& f, const float* y, int64_t ldy, int rows, int64_t n, const float* rowBias,
                int64_t rowBiasStride, const float* colBias, const float* zf, const uint8_t* zq, int64_t ldz,
                uint8_t* yq, float* yf, int64_t ldo, int level) {
  finishRows(f, Rows{y, ldy, rows, n, rowBias, rowBiasStride, colBias, zf, zq, ldz, yq, yf, ldo},
             level < 0 ? hostFinishLevel() : std::min(level, hostFinishLevel()));
}

// ---------------------------------------------------------------------------------------
// Packing

namespace {

// Group g of a row: kg values from k = g * kg on (zeros past K), element i in byte i (u8/s8
// quads) or in 16-bit half i (s16 pairs: u8 zero-extended, s8 sign-extended).
inline uint32_t groupWord(const I8Config& c, const uint8_t* row, int64_t g, int64_t K, bool isSigned) {
  uint32_t w = 0;
  for (int i = 0; i < c.kg; ++i) {
    const int64_t k = g * c.kg + i;
    if (k >= K) break;
    if (c.kg == 4) {
      w |= uint32_t(row[k]) << (8 * i);
    } else {
      const int32_t v = isSigned ? int32_t(int8_t(row[k])) : int32_t(row[k]);
      w |= (uint32_t(v) & 0xffffu) << (16 * i);
    }
  }
  return w;
}

}  // namespace

int64_t packedGroupWords(const I8Config& c, int64_t rows, int64_t K, int64_t block, int64_t tailMultiple) {
  const int64_t KG = groupsOf(c, K);
  int64_t words = 0;
  for (int64_t b0 = 0; b0 < rows; b0 += block) words += KG * std::min(block, roundUp(rows - b0, tailMultiple));
  return words;
}

void packGroups(const I8Config& c, const uint8_t* q, int64_t rows, int64_t K, int64_t ld, bool isSigned,
                int64_t block, int64_t tailMultiple, uint32_t* dst) {
  const int64_t KG = groupsOf(c, K);
  for (int64_t b0 = 0; b0 < rows; b0 += block) {
    const int64_t width = std::min(block, roundUp(rows - b0, tailMultiple));
    for (int64_t r = 0; r < width; ++r) {
      if (b0 + r >= rows) {
        for (int64_t g = 0; g < KG; ++g) dst[g * width + r] = 0;
        continue;
      }
      const uint8_t* row = q + (b0 + r) * ld;
      for (int64_t g = 0; g < KG; ++g) dst[g * width + r] = groupWord(c, row, g, K, isSigned);
    }
    dst += KG * width;
  }
}

void packRowPanel(const I8Config& c, const uint8_t* q, int64_t R, int64_t K, int64_t ld, uint32_t* dst) {
  const int64_t KG = groupsOf(c, K), mr = c.mr;
  for (int64_t r = 0; r < mr; ++r) {
    uint32_t* out = dst + r;
    if (r >= R) {
      for (int64_t g = 0; g < KG; ++g) out[g * mr] = 0;
      continue;
    }
    const uint8_t* row = q + r * ld;
    if (c.kg == 4) {
      for (int64_t g = 0; g < KG; ++g) {
        uint32_t w;
        std::memcpy(&w, row + 4 * g, 4);
        out[g * mr] = w;
      }
    } else {
      for (int64_t g = 0; g < KG; ++g) out[g * mr] = uint32_t(row[2 * g]) | uint32_t(row[2 * g + 1]) << 16;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Convolution inputs

namespace {

// Words for positions [0, nOut) of up to kg channel rows (row i at src + i * rowStride,
// element i of a word), quantized in registers: positions from nValid on read nothing and
// hold zp (x = 0.0). The clamp to [-zp, 255 - zp] before the rounding gives the same q as
// clamping rint(x * inv) + zp to [0, 255] (the bounds are integers); NaN gives zp. Eight
// lanes (AVX2) or sixteen (the VNNI family: its 1x1 tiles packed as fast again), the same
// arithmetic per lane.
__attribute__((target("avx2"))) void rowWords8(const float* src, int64_t rowStride, int rows, int64_t nValid,
                                               int64_t nOut, float inv, int32_t zp, int shift, uint32_t* out) {
  const __m256 vinv = _mm256_set1_ps(inv), lo = _mm256_set1_ps(float(-zp)), hi = _mm256_set1_ps(float(255 - zp));
  const __m256i z = _mm256_set1_epi32(zp), iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t j = 0; j < nOut; j += 8) {
    const bool full = nValid - j >= 8;
    const __m256i load = _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(std::clamp<int64_t>(nValid - j, 0, 8))), iota);
    __m256i w = _mm256_setzero_si256();
    for (int i = 0; i < rows; ++i) {
      const float* r = src + i * rowStride + j;
      __m256 v = _mm256_mul_ps(full ? _mm256_loadu_ps(r) : _mm256_maskload_ps(r, load), vinv);
      v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
      v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
      const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), z);
      w = _mm256_or_si256(w, _mm256_sll_epi32(q, _mm_cvtsi32_si128(shift * i)));
    }
    if (nOut - j >= 8)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), w);
    else
      _mm256_maskstore_epi32(reinterpret_cast<int*>(out + j),
                             _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(nOut - j)), iota), w);
  }
}

__attribute__((target("avx512f,avx512bw"))) void rowWords16(const float* src, int64_t rowStride, int rows,
                                                            int64_t nValid, int64_t nOut, float inv, int32_t zp,
                                                            int shift, uint32_t* out) {
  const __m512 vinv = _mm512_set1_ps(inv), lo = _mm512_set1_ps(float(-zp)), hi = _mm512_set1_ps(float(255 - zp));
  const __m512i z = _mm512_set1_epi32(zp);
  for (int64_t j = 0; j < nOut; j += 16) {
    const __mmask16 load = __mmask16((1u << std::clamp<int64_t>(nValid - j, 0, 16)) - 1);
    __m512i w = _mm512_setzero_si512();
    for (int i = 0; i < rows; ++i) {
      __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(load, src + i * rowStride + j), vinv);
      // Zero-masked forms with every lane kept: GCC 12 warns that the plain intrinsics'
      // undefined pass-through "may be used uninitialized".
      const __mmask16 all = 0xffff;
      v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v);
      v = _mm512_maskz_min_ps(all, _mm512_maskz_max_ps(all, v, lo), hi);
      const __m512i q = _mm512_add_epi32(_mm512_maskz_cvtps_epi32(all, v), z);
      w = _mm512_or_si512(w, _mm512_maskz_sll_epi32(all, q, _mm_cvtsi32_si128(shift * i)));
    }
    _mm512_mask_storeu_epi32(out + j, __mmask16((1u << std::min<int64_t>(nOut - j, 16)) - 1), w);
  }
}

// The same words one position at a time in plain C++ (the portable family): the same
// multiply, clamp and round-half-to-even per value as the vector lanes.
void rowWordsPortable(const float* src, int64_t rowStride, int rows, int64_t nValid, int64_t nOut, float inv,
                      int32_t zp, int shift, uint32_t* out) {
  const float lo = float(-zp), hi = float(255 - zp);
  for (int64_t j = 0; j < nOut; ++j) {
    uint32_t w = 0;
    for (int i = 0; i < rows; ++i) {
      float v = j < nValid ? src[i * rowStride + j] * inv : 0.0f;
      if (std::isnan(v)) v = 0.0f;
      v = std::min(std::max(v, lo), hi);
      w |= uint32_t(int32_t(std::nearbyint(v)) + zp) << (shift * i);
    }
    out[j] = w;
  }
}

using RowWords = void (*)(const float*, int64_t, int, int64_t, int64_t, float, int32_t, int, uint32_t*);
RowWords rowWordsFor(const I8Config& c) {
  if (c.isa == I8Isa::kPortable) return rowWordsPortable;
  return c.lanes == 16 ? rowWords16 : rowWords8;
}

}  // namespace

void packPointwiseTile(const I8Config& c, const float* x, int64_t C, int64_t HW, float inv, int32_t zp, int64_t p0,
                       int64_t np, int64_t width, uint32_t* dst) {
  const RowWords rw = rowWordsFor(c);
  for (int64_t gi = 0; gi < groupsOf(c, C); ++gi)
    rw(x + gi * c.kg * HW + p0, HW, int(std::min<int64_t>(c.kg, C - gi * c.kg)), np, width, inv, zp, 32 / c.kg,
       dst + gi * width);
}

namespace {

// u8 twins of rowWords for a lowered input (its bytes already quantized): the same words
// with the bytes as they are, no multiply or rounding, a quarter of the bytes read.
// Positions from nValid on hold zp, as the f32 rows' (x = 0.0). AVX2: eight bytes a row
// zero-extended to eight lanes; AVX-512: sixteen; a partial vector's bytes through a
// buffer filled with zp.
__attribute__((target("avx2"))) void rowBytes8(const uint8_t* src, int64_t rowStride, int rows, int64_t nValid,
                                               int64_t nOut, int32_t zp, int shift, uint32_t* out) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t j = 0; j < nOut; j += 8) {
    const int64_t valid = std::clamp<int64_t>(nValid - j, 0, 8);
    __m256i w = _mm256_setzero_si256();
    for (int i = 0; i < rows; ++i) {
      const uint8_t* r = src + i * rowStride + j;
      __m128i b;
      if (valid == 8) {
        b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r));
      } else {
        alignas(16) uint8_t t[16];
        std::memset(t, zp, sizeof t);
        if (valid > 0) std::memcpy(t, r, size_t(valid));
        b = _mm_load_si128(reinterpret_cast<const __m128i*>(t));
      }
      w = _mm256_or_si256(w, _mm256_sll_epi32(_mm256_cvtepu8_epi32(b), _mm_cvtsi32_si128(shift * i)));
    }
    if (nOut - j >= 8)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), w);
    else
      _mm256_maskstore_epi32(reinterpret_cast<int*>(out + j),
                             _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(nOut - j)), iota), w);
  }
}

__attribute__((target("avx512f,avx512bw"))) void rowBytes16(const uint8_t* src, int64_t rowStride, int rows,
                                                            int64_t nValid, int64_t nOut, int32_t zp, int shift,
                                                            uint32_t* out) {
  const __mmask16 all = 0xffff;  // zero-masked forms, every lane kept (GCC 12's "may be used uninitialized")
  for (int64_t j = 0; j < nOut; j += 16) {
    const int64_t valid = std::clamp<int64_t>(nValid - j, 0, 16);
    __m512i w = _mm512_setzero_si512();
    for (int i = 0; i < rows; ++i) {
      const uint8_t* r = src + i * rowStride + j;
      __m128i b;
      if (valid == 16) {
        b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r));
      } else {
        alignas(16) uint8_t t[16];
        std::memset(t, zp, sizeof t);
        if (valid > 0) std::memcpy(t, r, size_t(valid));
        b = _mm_load_si128(reinterpret_cast<const __m128i*>(t));
      }
      w = _mm512_or_si512(w, _mm512_maskz_sll_epi32(all, _mm512_maskz_cvtepu8_epi32(all, b), _mm_cvtsi32_si128(shift * i)));
    }
    _mm512_mask_storeu_epi32(out + j, __mmask16((1u << std::min<int64_t>(nOut - j, 16)) - 1), w);
  }
}

// With AVX-512 VL (every VNNI CPU so far has it; checked at run time): the tail under a
// byte mask over zp (a 7-wide row of a 7x7 layer went through the byte copies above at
// 1.1x the f32 rows' time).
__attribute__((target("avx512f,avx512bw,avx512vl"))) void rowBytes16vl(const uint8_t* src, int64_t rowStride,
                                                                       int rows, int64_t nValid, int64_t nOut,
                                                                       int32_t zp, int shift, uint32_t* out) {
  const __mmask16 all = 0xffff;  // zero-masked forms, every lane kept (GCC 12's "may be used uninitialized")
  const __m128i z = _mm_set1_epi8(char(zp));
  for (int64_t j = 0; j < nOut; j += 16) {
    const __mmask16 load = __mmask16((1u << std::clamp<int64_t>(nValid - j, 0, 16)) - 1);
    __m512i w = _mm512_setzero_si512();
    for (int i = 0; i < rows; ++i) {
      const __m128i b = _mm_mask_loadu_epi8(z, load, src + i * rowStride + j);
      w = _mm512_or_si512(w, _mm512_maskz_sll_epi32(all, _mm512_maskz_cvtepu8_epi32(all, b), _mm_cvtsi32_si128(shift * i)));
    }
    _mm512_mask_storeu_epi32(out + j, __mmask16((1u << std::min<int64_t>(nOut - j, 16)) - 1), w);
  }
}

void rowBytesPortable(const uint8_t* src, int64_t rowStride, int rows, int64_t nValid, int64_t nOut, int32_t zp,
                      int shift, uint32_t* out) {
  for (int64_t j = 0; j < nOut; ++j) {
    uint32_t w = 0;
    for (int i = 0; i < rows; ++i) w |= uint32_t(j < nValid ? src[i * rowStride + j] : uint8_t(zp)) << (shift * i);
    out[j] = w;
  }
}

using RowBytes = void (*)(const uint8_t*, int64_t, int, int64_t, int64_t, int32_t, int, uint32_t*);
RowBytes rowBytesFor(const I8Config& c) {
  if (c.isa == I8Isa::kPortable) return rowBytesPortable;
  static const bool kVl = __builtin_cpu_supports("avx512vl");
  return c.lanes == 16 ? (kVl ? rowBytes16vl : rowBytes16) : rowBytes8;
}

}  // namespace

void rowWordsU8(const I8Config& c, const uint8_t* src, int64_t rowStride, int rows, int64_t n, uint32_t* out) {
  rowBytesFor(c)(src, rowStride, rows, n, n, 0, 32 / c.kg, out);
}

namespace {

// The padded, blocked, phase-split image of quantizePhases / packPhasesU8, padded rows [r0,
// r1) of each group; row(cg, rows, h, dst) writes the W words of image row h of channel
// group cg (rows channels). Padded row hp is sW segments of Ws words, one per column phase,
// at phase row (hp % sH, hp / sH): each written whole (the border, then the row's words dealt
// out by column phase), so rows own their words.
template <typename Row>
void phases(const I8Config& c, int64_t C, int64_t H, int64_t W, int64_t pt, int64_t pb, int64_t pl, int64_t pr,
            int64_t sH, int64_t sW, int32_t zp, uint32_t* dst, uint32_t* scratch, int64_t r0, int64_t r1,
            Row&& rowWords) {
  const int64_t CG = ceilDiv(C, c.kg), Hp = pt + H + pb, Wp = pl + W + pr;
  const int64_t Hs = ceilDiv(Hp, sH), Ws = ceilDiv(Wp, sW), plane = Hs * Ws, block = sH * sW * plane;
  if (r1 < 0 || r1 > Hs * sH) r1 = Hs * sH;
  uint32_t border = 0;
  for (int i = 0; i < c.kg; ++i) border |= uint32_t(zp) << (c.kg == 4 ? 8 * i : 16 * i);
  const bool unit = sH == 1 && sW == 1;
  for (int64_t cg = 0; cg < CG; ++cg) {
    const int rows = int(std::min<int64_t>(c.kg, C - cg * c.kg));
    uint32_t* out = dst + cg * block;
    for (int64_t hp = r0; hp < r1; ++hp) {
      uint32_t* seg = out + (hp % sH) * sW * plane + (hp / sH) * Ws;  // column phase 0's segment
      const int64_t h = hp - pt;
      if (h < 0 || h >= H) {
        for (int64_t ph = 0; ph < sW; ++ph) std::fill(seg + ph * plane, seg + ph * plane + Ws, border);
        continue;
      }
      if (unit) {  // the row's words in place between its borders
        std::fill(seg, seg + pl, border);
        std::fill(seg + pl + W, seg + Ws, border);
        rowWords(cg, rows, h, seg + pl);
        continue;
      }
      rowWords(cg, rows, h, scratch);
      for (int64_t ph = 0; ph < sW; ++ph) {
        // Column phase ph holds padded columns wp = j sW + ph; image column w = wp - pl.
        uint32_t* sp = seg + ph * plane;
        const int64_t j0 = std::min(Ws, pl > ph ? ceilDiv(pl - ph, sW) : int64_t(0));
        const int64_t j1 = std::clamp<int64_t>(pl + W - ph > 0 ? ceilDiv(pl + W - ph, sW) : 0, j0, Ws);
        std::fill(sp, sp + j0, border);
        const uint32_t* from = scratch + (j0 * sW + ph - pl);
        for (int64_t j = j0; j < j1; ++j, from += sW) sp[j] = *from;
        std::fill(sp + j1, sp + Ws, border);
      }
    }
  }
}

}  // namespace

void packPointwiseTileU8(const I8Config& c, const uint8_t* x, int64_t C, int64_t HW, int32_t zp, int64_t p0,
                         int64_t np, int64_t width, uint32_t* dst) {
  const RowBytes rb = rowBytesFor(c);
  for (int64_t gi = 0; gi < groupsOf(c, C); ++gi)
    rb(x + gi * c.kg * HW + p0, HW, int(std::min<int64_t>(c.kg, C - gi * c.kg)), np, width, zp, 32 / c.kg,
       dst + gi * width);
}

void quantizePhases(const I8Config& c, const float* x, int64_t C, int64_t H, int64_t W, int64_t pt, int64_t pb,
                    int64_t pl, int64_t pr, int64_t sH, int64_t sW, float inv, int32_t zp, uint32_t* dst,
                    uint32_t* scratch, int64_t r0, int64_t r1) {
  const RowWords rw = rowWordsFor(c);
  phases(c, C, H, W, pt, pb, pl, pr, sH, sW, zp, dst, scratch, r0, r1, [&](int64_t cg, int rows, int64_t h, uint32_t* row) {
    rw(x + (cg * c.kg * H + h) * W, H * W, rows, W, W, inv, zp, 32 / c.kg, row);
  });
}

void packPhasesU8(const I8Config& c, const uint8_t* x, int64_t C, int64_t H, int64_t W, int64_t pt, int64_t pb,
                  int64_t pl, int64_t pr, int64_t sH, int64_t sW, int32_t zp, uint32_t* dst, uint32_t* scratch,
                  int64_t r0, int64_t r1) {
  phases(c, C, H, W, pt, pb, pl, pr, sH, sW, zp, dst, scratch, r0, r1, [&](int64_t cg, int rows, int64_t h, uint32_t* row) {
    rowWordsU8(c, x + (cg * c.kg * H + h) * W, H * W, rows, W, row);
  });
}

// ---------------------------------------------------------------------------------------
// Micro-kernels

namespace {

// The share of the next column block's weights a MatMul tile fetches into L2 (PanelPrefetch:
// rows of kRowBytes, one a group step at most, spread evenly over the KG steps), as the f32
// GEMM's tiles do (gemm.cpp): every row tile of a weight block fetches its part of the next
// block while the block's tiles run, so the weights stream from memory under the products.
template <int kRowBytes, bool PF>
struct NextBlockRows {
  const char* p = nullptr;
  int64_t step = 0, pos = 0;
  NextBlockRows(PanelPrefetch pf, int64_t KG) {
    if constexpr (PF) {
      p = static_cast<const char*>(pf.p);
      step = prefetchStep(pf.rows, KG);
    }
  }
  __attribute__((always_inline)) void fetch() {
    if constexpr (PF) {
      const char* row = p + (pos >> 32) * kRowBytes;
#pragma GCC unroll 4
      for (int b = 0; b < kRowBytes; b += 64) _mm_prefetch(row + b, _MM_HINT_T1);
      pos += step;
    }
  }
};

struct Vnni512 {
  // The register tile's exact sums: acc[r][v] over the KG groups (the panel's R of 8 rows
  // broadcast, NV vectors read per group).
  // PF: also fetch pf's rows of the next column block (NV vectors of 16 words a row) into
  // L2, spread over the groups (NextBlockRows).
  template <int R, int NV, bool kConv, bool kTable, bool PF = false>
  __attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void products(
      int64_t KG, const uint32_t* bc, const uint32_t* vec, int64_t gStride, const int32_t* goff,
      __m512i (&acc)[R][NV], const int32_t* rowStart = nullptr, PanelPrefetch pf = {}) {
    constexpr int MR = 8;
    NextBlockRows<NV * 64, PF> next(pf, KG);
    // rowStart: row r's sums start at -rowStart[r] (the zero-point term z_x * colsum, so the
    // finish needs no subtraction: the same integer, exact either way).
    #pragma GCC unroll 24
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 24
      for (int v = 0; v < NV; ++v) acc[r][v] = rowStart ? _mm512_set1_epi32(-rowStart[r]) : _mm512_setzero_si512();
    for (int64_t g = 0; g < KG; ++g) {
      next.fetch();
      const uint32_t* vg = kTable ? vec + goff[g] : vec;
      __m512i x[NV];
#pragma GCC unroll 24
      for (int v = 0; v < NV; ++v) x[v] = _mm512_loadu_si512(vg + v * 16);
#pragma GCC unroll 24
      for (int r = 0; r < R; ++r) {
        const __m512i b = _mm512_set1_epi32(int32_t(bc[r]));
  #pragma GCC unroll 24
        for (int v = 0; v < NV; ++v)
          acc[r][v] = kConv ? _mm512_dpbusd_epi32(acc[r][v], x[v], b) : _mm512_dpbusd_epi32(acc[r][v], b, x[v]);
      }
      bc += MR;
      if (!kTable) vec += gStride;
    }
  }

  template <int R, int NV, bool kConv, bool kTable, bool PF>
  __attribute__((target("avx512f,avx512bw,avx512vnni"))) static void tile(
      int64_t KG, const uint32_t* bc, const uint32_t* vec, int64_t gStride, const int32_t* goff, const int32_t* zc,
      const float* sc, const float* bias, float* C, int64_t ldc, int cols, PanelPrefetch pf) {
    __m512i acc[R][NV];
    products<R, NV, kConv, kTable, PF>(KG, bc, vec, gStride, goff, acc, nullptr, pf);
    #pragma GCC unroll 24
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 24
      for (int v = 0; v < NV; ++v) {
        const int rem = cols - v * 16;
        if (rem <= 0) break;
        const __m512i z = kConv ? _mm512_set1_epi32(zc[r]) : _mm512_loadu_si512(zc + v * 16);
        const __m512 s = kConv ? _mm512_set1_ps(sc[r]) : _mm512_loadu_ps(sc + v * 16);
        // The zero-masked form of vcvtdq2ps (all lanes kept): GCC 12 warns that the plain
        // intrinsic's undefined pass-through "may be used uninitialized".
        __m512 y = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(__mmask16(0xffff), _mm512_sub_epi32(acc[r][v], z)), s);
        if (kConv && bias) y = _mm512_add_ps(y, _mm512_set1_ps(bias[r]));
        float* out = C + r * ldc + v * 16;
        if (rem >= 16)
          _mm512_storeu_ps(out, y);
        else
          _mm512_mask_storeu_ps(out, __mmask16((1u << rem) - 1), y);
      }
  }
};

__attribute__((target("avx2"))) inline __m256i tailMask8(int rem) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The dequantizing store of 8-lane accumulators (AVX2 and AVX-VNNI tiles).
template <int R, int NV, bool kConv>
__attribute__((target("avx2"), always_inline)) inline void store8(const __m256i (&acc)[R][NV], const int32_t* zc,
                                                                   const float* sc, const float* bias, float* C,
                                                                   int64_t ldc, int cols) {
  #pragma GCC unroll 24
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 24
    for (int v = 0; v < NV; ++v) {
      const int rem = cols - v * 8;
      if (rem <= 0) break;
      const __m256i z = kConv ? _mm256_set1_epi32(zc[r]) : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zc + v * 8));
      const __m256 s = kConv ? _mm256_set1_ps(sc[r]) : _mm256_loadu_ps(sc + v * 8);
      __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(acc[r][v], z)), s);
      if (kConv && bias) y = _mm256_add_ps(y, _mm256_set1_ps(bias[r]));
      float* out = C + r * ldc + v * 8;
      if (rem >= 8)
        _mm256_storeu_ps(out, y);
      else
        _mm256_maskstore_ps(out, tailMask8(rem), y);
    }
}

struct Avx2Pairs {
  template <int R, int NV, bool kConv, bool kTable, bool PF>
  __attribute__((target("avx2,fma"))) static void tile(
      int64_t KG, const uint32_t* bc, const uint32_t* vec, int64_t gStride, const int32_t* goff, const int32_t* zc,
      const float* sc, const float* bias, float* C, int64_t ldc, int cols, PanelPrefetch pf) {
    constexpr int MR = 4;
    NextBlockRows<NV * 32, PF> next(pf, KG);
    __m256i acc[R][NV];
    #pragma GCC unroll 24
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 24
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_si256();
    for (int64_t g = 0; g < KG; ++g) {
      next.fetch();
      const uint32_t* vg = kTable ? vec + goff[g] : vec;
      __m256i x[NV];
#pragma GCC unroll 24
      for (int v = 0; v < NV; ++v) x[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(vg + v * 8));
#pragma GCC unroll 24
      for (int r = 0; r < R; ++r) {
        const __m256i b = _mm256_set1_epi32(int32_t(bc[r]));
  #pragma GCC unroll 24
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_madd_epi16(x[v], b));
      }
      bc += MR;
      if (!kTable) vec += gStride;
    }
    store8<R, NV, kConv>(acc, zc, sc, bias, C, ldc, cols);
  }
};

struct AvxVnni {
  template <int R, int NV, bool kConv, bool kTable, bool PF>
  __attribute__((target("avx2,fma,avxvnni"))) static void tile(
      int64_t KG, const uint32_t* bc, const uint32_t* vec, int64_t gStride, const int32_t* goff, const int32_t* zc,
      const float* sc, const float* bias, float* C, int64_t ldc, int cols, PanelPrefetch pf) {
    constexpr int MR = 4;
    NextBlockRows<NV * 32, PF> next(pf, KG);
    __m256i acc[R][NV];
    #pragma GCC unroll 24
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 24
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_si256();
    for (int64_t g = 0; g < KG; ++g) {
      next.fetch();
      const uint32_t* vg = kTable ? vec + goff[g] : vec;
      __m256i x[NV];
#pragma GCC unroll 24
      for (int v = 0; v < NV; ++v) x[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(vg + v * 8));
#pragma GCC unroll 24
      for (int r = 0; r < R; ++r) {
        const __m256i b = _mm256_set1_epi32(int32_t(bc[r]));
  #pragma GCC unroll 24
        for (int v = 0; v < NV; ++v)
          acc[r][v] = kConv ? _mm256_dpbusd_avx_epi32(acc[r][v], x[v], b) : _mm256_dpbusd_avx_epi32(acc[r][v], b, x[v]);
      }
      bc += MR;
      if (!kTable) vec += gStride;
    }
    store8<R, NV, kConv>(acc, zc, sc, bias, C, ldc, cols);
  }
};

// Plain C++ for the baseline ISA (no 32-bit integer multiply before SSE4.1): the u8 and s8
// values as floats, products and sums in f32 over runs of up to 128 groups (512 values), then
// into the int32 sums. Exact: every product is an integer below 2^15 and every partial sum
// stays below 512 * 255 * 127 < 2^24, so the f32 arithmetic rounds nothing and the bits are
// the other families' (one thread, MatMul 128x768x768: 9.4 GOP/s with int32 lanes, which SSE2
// multiplies through pmuludq shuffles, 17.6 now; 3x3 64 -> 64 at 56x56 21 GOP/s; the f32
// baseline kernels run 29-34). The same dequantizing store as the vector tiles (one convert, multiply, add of
// the bias). Lanes past cols are summed (the operands are padded) but not stored.
struct Portable {
  template <int R, int NV, bool kConv, bool kTable>
  static void run(int64_t KG, const uint32_t* bc, const uint32_t* vec, int64_t gStride, const int32_t* goff,
                  const int32_t* zc, const float* sc, const float* bias, float* C, int64_t ldc, int cols) {
    constexpr int MR = 8, W = NV * 8;  // 8 rows: the columns' conversions serve twice the rows of 4
    constexpr int64_t kRun = 128;  // groups per exact f32 run
    int32_t acc[R][W] = {};
    for (int64_t g0 = 0; g0 < KG; g0 += kRun) {
      const int64_t g1 = std::min(KG, g0 + kRun);
      float fa[R][W] = {};
      for (int64_t g = g0; g < g1; ++g) {
        const uint32_t* vg = kTable ? vec + goff[g] : vec;
        float x[4][W];  // the columns' four values: u8 activations (Conv) or s8 weights
        for (int e = 0; e < 4; ++e)  // value by value over the columns: shifts, masks, converts in lanes
          for (int j = 0; j < W; ++j)
            x[e][j] = kConv ? float(int32_t((vg[j] >> (8 * e)) & 0xffu)) : float(int32_t(vg[j] << (24 - 8 * e)) >> 24);
        for (int r = 0; r < R; ++r) {
          const uint32_t b = bc[r];  // the row's four values: s8 weights (Conv) or u8 activations
          float w[4];
          for (int e = 0; e < 4; ++e)
            w[e] = kConv ? float(int32_t(b << (24 - 8 * e)) >> 24) : float(int32_t((b >> (8 * e)) & 0xffu));
          for (int j = 0; j < W; ++j) fa[r][j] += ((x[0][j] * w[0] + x[1][j] * w[1]) + x[2][j] * w[2]) + x[3][j] * w[3];
        }
        bc += MR;
        if (!kTable) vec += gStride;
      }
      for (int r = 0; r < R; ++r)
        for (int j = 0; j < W; ++j) acc[r][j] += int32_t(fa[r][j]);
    }
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < cols; ++j) {
        float y = float(acc[r][j] - (kConv ? zc[r] : zc[j]));
        y = y * (kConv ? sc[r] : sc[j]);
        if (kConv && bias) y = y + bias[r];
        C[r * ldc + j] = y;
      }
  }
};

// A vector family's table entries: its tile without the next block's prefetch (I8Tile), and
// the MatMul tile with it (I8TileNext).
template <typename F, int R, int NV, bool kConv, bool kTable>
void runTile(int64_t KG, const uint32_t* bc, const uint32_t* vec, int64_t gStride, const int32_t* goff,
             const int32_t* zc, const float* sc, const float* bias, float* C, int64_t ldc, int cols) {
  F::template tile<R, NV, kConv, kTable, false>(KG, bc, vec, gStride, goff, zc, sc, bias, C, ldc, cols, {});
}
template <typename F, int R, int NV>
void runTileNext(int64_t KG, const uint32_t* bc, const uint32_t* vec, int64_t gStride, const int32_t* goff,
                 const int32_t* zc, const float* sc, const float* bias, float* C, int64_t ldc, int cols,
                 PanelPrefetch pf) {
  F::template tile<R, NV, false, false, true>(KG, bc, vec, gStride, goff, zc, sc, bias, C, ldc, cols, pf);
}
template <typename F, int R, int NV, bool kConv, bool kTable>
constexpr I8Tile tileEntry() {
  if constexpr (std::is_same_v<F, Portable>)
    return &F::template run<R, NV, kConv, kTable>;
  else
    return &runTile<F, R, NV, kConv, kTable>;
}

constexpr int kMaxR = 8, kMaxNv = 3;
// Index: (variant, R - 1, NV - 1), variant 0 MatMul, 1 Conv, 2 Conv with a group table.
using TileTable = std::array<I8Tile, 3 * kMaxR * kMaxNv>;

template <typename F, int Var, int R, int... Vs>
void fillRow(TileTable& t, std::integer_sequence<int, Vs...>) {
  ((t[size_t(Var * kMaxR * kMaxNv + (R - 1) * kMaxNv + Vs)] = tileEntry<F, R, Vs + 1, Var != 0, Var == 2>()), ...);
}
template <typename F, int NV, int Var, int... Rs>
void fillRows(TileTable& t, std::integer_sequence<int, Rs...>) {
  (fillRow<F, Var, Rs + 1>(t, std::make_integer_sequence<int, NV>{}), ...);
}
template <typename F, int MR, int NV>
TileTable makeTable() {
  TileTable t{};
  fillRows<F, NV, 0>(t, std::make_integer_sequence<int, MR>{});
  fillRows<F, NV, 1>(t, std::make_integer_sequence<int, MR>{});
  fillRows<F, NV, 2>(t, std::make_integer_sequence<int, MR>{});
  return t;
}

// The MatMul tiles with the next block's prefetch (i8TileNext): [(R - 1) * kMaxNv + NV - 1].
template <typename F, int R, int... Vs>
void fillNextRow(std::array<I8TileNext, kMaxR * kMaxNv>& t, std::integer_sequence<int, Vs...>) {
  ((t[size_t((R - 1) * kMaxNv + Vs)] = &runTileNext<F, R, Vs + 1>), ...);
}
template <typename F, int NV, int... Rs>
std::array<I8TileNext, kMaxR * kMaxNv> makeNextTable(std::integer_sequence<int, Rs...>) {
  std::array<I8TileNext, kMaxR * kMaxNv> t{};
  (fillNextRow<F, Rs + 1>(t, std::make_integer_sequence<int, NV>{}), ...);
  return t;
}

}  // namespace

I8TileNext i8TileNext(I8Isa isa, int rows, int nvec) {
  static const auto kAvx2 = makeNextTable<Avx2Pairs, 2>(std::make_integer_sequence<int, 4>{});
  static const auto kVnni = makeNextTable<Vnni512, 3>(std::make_integer_sequence<int, 8>{});
  static const auto kAvxVnniT = makeNextTable<AvxVnni, 3>(std::make_integer_sequence<int, 4>{});
  const auto* t = isa == I8Isa::kAvx2         ? &kAvx2
                  : isa == I8Isa::kAvx512Vnni ? &kVnni
                  : isa == I8Isa::kAvxVnni    ? &kAvxVnniT
                                              : nullptr;
  return t ? (*t)[size_t((rows - 1) * kMaxNv + (nvec - 1))] : nullptr;
}

I8Tile i8Tile(I8Isa isa, bool conv, int rows, int nvec, bool table) {
  static const TileTable kAvx2 = makeTable<Avx2Pairs, 4, 2>();
  static const TileTable kVnni = makeTable<Vnni512, 8, 3>();
  static const TileTable kAvxVnniT = makeTable<AvxVnni, 4, 3>();
  static const TileTable kPortableT = makeTable<Portable, 8, 2>();
  const TileTable& t = isa == I8Isa::kAvx2         ? kAvx2
                       : isa == I8Isa::kAvx512Vnni ? kVnni
                       : isa == I8Isa::kAvxVnni    ? kAvxVnniT
                                                   : kPortableT;
  const int var = table ? 2 : conv ? 1 : 0;
  return t[size_t(var * kMaxR * kMaxNv + (rows - 1) * kMaxNv + (nvec - 1))];
}

// ---------------------------------------------------------------------------------------
// The Conv tile with the finish fused

namespace {

// Vnni512::tile<8, NV, conv> and finishRows16<A, true, Z ? 2 : 0, true, false> in one: each
// accumulator vector goes from the registers through the tile's dequantization and the
// finish's steps (the same operations in the same order: the same bits) to its u8 store,
// so the next tile's products overlap this one's epilogue and no f32 row is stored and
// read back. A: the activation after the Relu fold (0 None, 1 Relu, 2 Clip).
template <int NV, int A, bool Z>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void vnniFinish(
    int64_t KG, const uint32_t* bc, const uint32_t* vec, int64_t gStride, const int32_t* zc, const float* sc,
    const RowFinish& f, const float* rowBias, const uint8_t* zq, int64_t ldz, uint8_t* yq, int64_t ldo, int cols) {
  constexpr int R = 8;
  __m512i acc[R][NV];
  Vnni512::products<R, NV, true, false>(KG, bc, vec, gStride, nullptr, acc, zc);
  const __mmask16 all = 0xffff;
  const __m512 p0 = _mm512_set1_ps(f.p0), p1 = _mm512_set1_ps(f.p1), zs = _mm512_set1_ps(f.zScale),
               inv = _mm512_set1_ps(f.yInv), hi = _mm512_set1_ps(512.0f), zero = _mm512_setzero_ps();
  const __m512i zz = _mm512_set1_epi32(f.zZero), yz = _mm512_set1_epi32(f.yZero), q0 = _mm512_setzero_si512();
#pragma GCC unroll 24
  for (int r = 0; r < R; ++r) {
    const __m512 sr = _mm512_set1_ps(sc[r]), rb = _mm512_set1_ps(rowBias ? rowBias[r] : 0.0f);
#pragma GCC unroll 24
    for (int v = 0; v < NV; ++v) {
      const int rem = cols - v * 16;
      if (rem <= 0) break;
      const __mmask16 k = rem >= 16 ? all : __mmask16((1u << rem) - 1);
      __m512 y = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(all, acc[r][v]), sr);  // acc started at -zc[r]
      asm("" : "+v"(y));  // rounded on its own, as the stored tile value: never contracted into an FMA
      y = _mm512_add_ps(y, rb);
      __m512 zv = zero;
      if (Z) {
        const __m128i b = _mm_maskz_loadu_epi8(k, zq + r * ldz + v * 16);
        zv = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(all, _mm512_sub_epi32(_mm512_maskz_cvtepu8_epi32(all, b), zz)), zs);
        asm("" : "+v"(zv));
        if (f.addFirst) y = _mm512_add_ps(y, zv);
      }
      // max / min where finishRows compares and selects: they differ only in the sign of a
      // zero result (max(-0, 0) is +0), which neither the residual add (zv is never -0: a
      // positive scale times an integer's conversion) nor the quantizer can tell; no NaN here.
      // (The zero-masked forms, all lanes kept: GCC 12 warns of the plain ones' undefined
      // pass-through.)
      if (A == 1) y = _mm512_maskz_max_ps(all, y, zero);
      if (A == 2) y = _mm512_maskz_min_ps(all, _mm512_maskz_max_ps(all, y, p0), p1);
      if (Z && !f.addFirst) y = _mm512_add_ps(y, zv);
      const __m512 q = _mm512_maskz_min_ps(all, _mm512_mul_ps(y, inv), hi);
      const __m512i qi = _mm512_maskz_max_epi32(all, _mm512_add_epi32(_mm512_maskz_cvtps_epi32(all, q), yz), q0);
      _mm512_mask_cvtusepi32_storeu_epi8(yq + r * ldo + v * 16, k, qi);
    }
  }
}

template <int A, bool Z>
constexpr std::array<I8FinishTile, 3> vnniFinishRow() {
  return {&vnniFinish<1, A, Z>, &vnniFinish<2, A, Z>, &vnniFinish<3, A, Z>};
}

}  // namespace

I8FinishTile i8FinishTile(I8Isa isa, const RowFinish& f, bool zU8, bool zF32, int rows, int nvec) {
  static const bool kHost = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  if (isa != I8Isa::kAvx512Vnni || !kHost || rows != 8 || nvec < 1 || nvec > 3 || !f.noNaN || zF32) return nullptr;
  if (f.epilogue && !finishRowHandles(f.act)) return nullptr;
  const int act = finishAct(f, zU8, true);  // finishRows' activation, the Relu folded alike
  const bool z = f.epilogue && zU8;
  static const std::array<std::array<I8FinishTile, 3>, 6> kTable = {
      vnniFinishRow<0, false>(), vnniFinishRow<1, false>(), vnniFinishRow<2, false>(),
      vnniFinishRow<0, true>(),  vnniFinishRow<1, true>(),  vnniFinishRow<2, true>()};
  return kTable[size_t(int(z) * 3 + act)][size_t(nvec - 1)];
}

}  // namespace anvil::cpu::tactics
