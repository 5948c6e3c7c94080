// The INT8 engine behind the i8_* kernels (cpu/tactics/native_int8.cpp): u8 activations
// times s8 weights accumulated exactly in int32, dequantized to f32 in the tile's store.
//  - Quantization (the numerics every i8 kernel and its test share): activations per
//    tensor, q_x = clamp(rint(x * (1/s_x)) + z_x, 0, 255) (round half to even, NaN -> z_x);
//    weights per output feature, symmetric, q_w in [-127, 127].
//  - Operands are laid out in 32-bit groups of K: 4 bytes (u8 or s8) for the VNNI kernels
//    (vpdpbusd) and the portable ones (plain C++, no ISA requirement), 2 s16 for the AVX2 kernels (vpmaddwd, exact: vpmaddubsw would saturate at
//    255 * 127 * 2 > 32767). One operand is broadcast a group at a time from a panel
//    [KG][mr] (mr rows), the other read as vectors from [KG][width] (lanes columns each).
//    The sums are exact integers, so every ISA and work split gives the same bits.
//  - Dequantization: y = float(acc - z_x * colsum[w]) * scale[w], w the weight's output
//    feature (a row for Conv, a column for MatMul/Gemm), scale = s_x * s_w precomputed.
//  - Lowered activations (already u8): the packers' u8 twins take the bytes as they are,
//    and finishTile ends a tile's rows with the f32 epilogue and the requantizing store.
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/tactics/gemm_kernels.h"

namespace anvil::cpu::tactics {

// Micro-kernel families. Stored in prepared params: never renumber.
enum class I8Isa : int32_t {
  kAvx2 = 0,        // avx2 + fma: s16 pairs, vpmaddwd + vpaddd
  kAvx512Vnni = 1,  // avx512f + avx512bw + avx512vnni: u8 quads, vpdpbusd zmm
  kAvxVnni = 2,     // avxvnni: u8 quads, vpdpbusd ymm (VEX)
  kPortable = 3,    // no ISA requirement: u8 quads, plain C++ loops the compiler may vectorize
};

struct I8Config {
  int mr;     // rows of a broadcast panel (the register tile's height)
  int lanes;  // int32 lanes of a vector (columns per vector)
  int kg;     // K values per 32-bit group: 4 (VNNI) or 2 (AVX2 s16 pairs)
  int nv;     // vectors per register tile (its width is nv * lanes columns)
  I8Isa isa;  // the family (picks the quantizers' code path)
};
const I8Config& i8Config(I8Isa isa);

inline int64_t groupsOf(const I8Config& c, int64_t K) { return ceilDiv(K, c.kg); }

// The largest K whose exact sums fit int32: 255 * 127 * K < 2^31.
inline constexpr int64_t kI8MaxK = 66000;

// ---------------------------------------------------------------------------------------
// Quantization

// One activation: clamp(rint(x * inv) + zp, 0, 255); NaN gives zp (the quantized 0.0).
uint8_t quantizeU8One(float x, float inv, int32_t zp);
// n activations with the same bits as quantizeU8One (AVX2; needs avx2).
void quantizeU8(const float* x, int64_t n, float inv, int32_t zp, uint8_t* q);
// The same for a family: the AVX2 loop, or quantizeU8One per value for kPortable.
void quantizeU8For(const I8Config& c, const float* x, int64_t n, float inv, int32_t zp, uint8_t* q);

// Adaptive precision's operand: every K value v of n packed activation words (u8 quads or
// s16 pairs, as packGroups / quantizePhases lay them out) replaced by |v - zp| (<= 255: the
// same word format), so a tile against |q_w| sums |q_x - z_x| * |q_w| exactly.
void absDeviationWords(const I8Config& c, const uint32_t* src, int64_t n, int32_t zp, uint32_t* dst);

// Symmetric per-output-feature weights: w is N features x K values, feature f's value k at
// w[f * fs + k * ks]. scales: given (a per-axis quantization of the weight) or derived as
// max |w| / 127 (0 -> 1). q[f * K + k] = clamp(rint(w / s[f]), -127, 127).
struct I8Weights {
  int64_t N = 0, K = 0;
  std::vector<int8_t> q;      // [N][K]
  std::vector<float> scale;   // [N]: s_w
  std::vector<int32_t> sums;  // [N]: sum_k q
};
I8Weights quantizeWeights(const float* w, int64_t N, int64_t K, int64_t fs, int64_t ks, const float* givenScales);

// ---------------------------------------------------------------------------------------
// Packing into 32-bit groups

// Rows [0, rows) of q (row r at q + r * ld, K values, signed: s8 else u8) as blocks of
// `block` rows: block b at dst + b * KG * block words, group g of row r at + g * block + r;
// the last block keeps width roundUp(rows - b0, tailMultiple). Zeros past K and past rows.
void packGroups(const I8Config& c, const uint8_t* q, int64_t rows, int64_t K, int64_t ld, bool isSigned,
                int64_t block, int64_t tailMultiple, uint32_t* dst);
// One panel of R <= mr activation rows (u8, row r at q + r * ld, zeros from K up to
// roundUp(K, 4)) as packGroups(rows = R, block = tail = mr) lays it out, word by word
// (packGroups goes element by element: half the time of a 128x768x768 MatMul).
void packRowPanel(const I8Config& c, const uint8_t* q, int64_t R, int64_t K, int64_t ld, uint32_t* dst);
// Words packGroups writes.
int64_t packedGroupWords(const I8Config& c, int64_t rows, int64_t K, int64_t block, int64_t tailMultiple);

// ---------------------------------------------------------------------------------------
// Tiles

// C[rows x cols] (row stride ldc) = dequantized (panel rows) . (nvec vectors): the panel
// bc [KG][mr] words (row r at + r), the vectors vec + g * gStride + v * lanes, or with a
// group table (i8Tile(..., true)) vec + goff[g] + v * lanes (gStride unused). Conv tiles
// (conv = true): bc holds s8 weights, vec u8 activations, zc/sc index rows; MatMul tiles:
// bc holds u8 activations, vec s8 weights, zc/sc index columns (read a whole vector: pad
// them to lanes). zc = z_x * colsum, sc = s_x * s_w. Columns past cols are not written.
// Conv tiles add bias[r] (or nothing: null) after the scale, one f32 add: the bits of the
// f32 kernels' bias-only epilogue row.
using I8Tile = void (*)(int64_t KG, const uint32_t* bc, const uint32_t* vec, int64_t gStride, const int32_t* goff,
                        const int32_t* zc, const float* sc, const float* bias, float* C, int64_t ldc, int cols);
I8Tile i8Tile(I8Isa isa, bool conv, int rows, int nvec, bool table = false);
// The MatMul tile (conv false, no table) that also fetches pf's rows of the next column block
// of weights (rows of the family's nv vectors) into L2 along its groups, as the f32 GEMM's
// tiles do (gemm.cpp, PanelPrefetch); the same bits. Null for the portable family.
using I8TileNext = void (*)(int64_t KG, const uint32_t* bc, const uint32_t* vec, int64_t gStride, const int32_t* goff,
                            const int32_t* zc, const float* sc, const float* bias, float* C, int64_t ldc, int cols,
                            PanelPrefetch pf);
I8TileNext i8TileNext(I8Isa isa, int rows, int nvec);

// ---------------------------------------------------------------------------------------
// Finishing an f32 tile row in one pass (lowered I/O)

// The f32 epilogue of native_linear_epilogue.h's EpilogueRow for the piecewise-linear
// activations, then the store: y[j] -> v = (y[j] + rowBias) (+ colBias[j]), + z[j] before
// or after the activation (None, Relu, or Clip to [p0, p1]), z from an f32 row or
// dequantized from u8 (float(q - zZero) * zScale); then stored as f32 or as
// quantizeU8One(v, yInv, yZero). Without `epilogue` only the store. The same f32 operations
// in the same order as the row and the quantizer, so the same bits, in one vector pass.
struct RowFinish {
  bool epilogue = false;
  int act = 0;  // 0 None, 1 Relu, 2 Clip
  float p0 = 0.0f, p1 = 0.0f;
  bool addFirst = true;
  float zScale = 1.0f;
  int32_t zZero = 0;
  float yInv = 1.0f;
  int32_t yZero = 0;
  // The caller's promise that no input value is NaN (the rows, the biases, zScale; an f32
  // Z is tested anyway): the vector paths then skip the quantizer's NaN test.
  bool noNaN = false;
};
// Whether finishTile computes this activation (ir::linear::Activation as int).
bool finishRowHandles(int activation);
// RowFinish::noNaN for the rows of INT8 tiles: their values float(acc - zc) * sc are no NaN
// with finite scales sc (n of them; acc - zc an exact integer, an overflow gives an
// infinity), so with finite biases (nb), Z scale and output 1 / scale no value the finish
// computes is NaN (one infinity at most, never two of opposite signs, never times 0).
bool tileFinishNoNaN(const float* sc, int64_t n, const float* bias, int64_t nb, float zScale, float yInv);
// Rows of n values, each: zf / zq the residual (null: none), exactly one of yq, yf. rows such rows: row r at y + r * ldy, its rowBias rowBias[r * rowBiasStride] (stride 0:
// one value; null: 0.0f), residual zf / zq + r * ldz, output yq / yf + r * ldo; one call
// for a register tile's rows. level: the code path, -1 the best the host has (AVX-512 BW/VL,
// else AVX2, else scalar), or at most 0 scalar / 1 AVX2 / 2 AVX-512 (the tests run each).
void finishTile(const RowFinish& f, const float* y, int64_t ldy, int rows, int64_t n, const float* rowBias,
                int64_t rowBiasStride, const float* colBias, const float* zf, const uint8_t* zq, int64_t ldz,
                uint8_t* yq, float* yf, int64_t ldo, int level = -1);

// A Conv tile (the rows of i8Tile(isa, true, rows, nvec)) whose accumulators go straight
// through finishTile's steps to u8 outputs, the same bits as the tile into an f32 scratch
// followed by finishTile(f, ..., rowBias (stride 1), no column bias, zq (ldz) or none, yq
// (ldo)): null where no such tile exists (AVX-512 VNNI hosts, 8 rows, f.noNaN, an
// activation finishTile computes, no f32 Z). Without f.epilogue rowBias is added as the
// tile's bias (one f32 add: the same u8 bits).
using I8FinishTile = void (*)(int64_t KG, const uint32_t* bc, const uint32_t* vec, int64_t gStride,
                              const int32_t* zc, const float* sc, const RowFinish& f, const float* rowBias,
                              const uint8_t* zq, int64_t ldz, uint8_t* yq, int64_t ldo, int cols);
I8FinishTile i8FinishTile(I8Isa isa, const RowFinish& f, bool zU8, bool zF32, int rows, int nvec);

// ---------------------------------------------------------------------------------------
// Convolution inputs

// An unpadded 1x1 stride-1 Conv's tile straight from the f32 image x (C x HW): columns
// [p0, p0 + np) of its C rows quantized and packed into dst [KG][width] words (columns past
// np hold zp).
void packPointwiseTile(const I8Config& c, const float* x, int64_t C, int64_t HW, float inv, int32_t zp, int64_t p0,
                       int64_t np, int64_t width, uint32_t* dst);
// The same words from a lowered (already u8) image: its bytes as they are, positions past
// np holding zp. Bit for bit packPointwiseTile of the dequantized image.
// One row of n positions of the family's 32-bit groups from `rows` (<= kg) channel rows
// of u8 (row i at src + i * rowStride): out[j] holds byte j of row i in element i (u8
// quads, or zero-extended s16 pairs), 0 in the elements past rows.
void rowWordsU8(const I8Config& c, const uint8_t* src, int64_t rowStride, int rows, int64_t n, uint32_t* out);
void packPointwiseTileU8(const I8Config& c, const uint8_t* x, int64_t C, int64_t HW, int32_t zp, int64_t p0,
                         int64_t np, int64_t width, uint32_t* dst);

// ---------------------------------------------------------------------------------------
// Convolution input without im2col: the quantized image, padded, blocked and split by phase

// One image x (C x H x W f32) quantized into [CG][sH * sW][Hs][Ws] words: CG = ceil(C / kg)
// groups of kg channels (element i of a word: channel cg * kg + i; 0 past C), and the
// padded image (Hp = pt + H + pb by Wp = pl + W + pr, the border holding zp) split into
// its sH x sW phases: padded pixel (hp, wp) lands in phase (hp % sH, wp % sW) at
// (hp / sH, wp / sW), Hs = ceil(Hp / sH), Ws = ceil(Wp / sW). Output pixel (oh, ow) of a
// Conv with these strides, at position j = oh * Ws + ow, reads tap (kh, kw) of group cg at
// word j + ((cg * sH * sW + (kh * dH) % sH * sW + (kw * dW) % sW) * Hs + (kh * dH) / sH) * Ws
// + (kw * dW) / sW: 16 consecutive j are one vector, for every tap and any stride.
// scratch: W + 8 words (used when a stride exceeds 1). [r0, r1) (r1 < 0: to the end): the
// padded rows hp of every group written, of the phaseRows(H, pt, pb, sH) there are; disjoint
// ranges write disjoint words, so tasks may split one image's rows.
void quantizePhases(const I8Config& c, const float* x, int64_t C, int64_t H, int64_t W, int64_t pt, int64_t pb,
                    int64_t pl, int64_t pr, int64_t sH, int64_t sW, float inv, int32_t zp, uint32_t* dst,
                    uint32_t* scratch, int64_t r0 = 0, int64_t r1 = -1);
// The same words from a lowered (already u8) image: its bytes as they are, the border zp.
void packPhasesU8(const I8Config& c, const uint8_t* x, int64_t C, int64_t H, int64_t W, int64_t pt, int64_t pb,
                  int64_t pl, int64_t pr, int64_t sH, int64_t sW, int32_t zp, uint32_t* dst, uint32_t* scratch,
                  int64_t r0 = 0, int64_t r1 = -1);
// Padded rows the phase split holds: ceil((pt + H + pb) / sH) sH (the last phase rows may
// lie past the padded image; they hold zp).
inline int64_t phaseRows(int64_t H, int64_t pt, int64_t pb, int64_t sH) { return (pt + H + pb + sH - 1) / sH * sH; }

}  // namespace anvil::cpu::tactics
