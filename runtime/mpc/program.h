// The fixed-point program of the two-party (mpc) and plaintext fixed-point (fixed) modes:
// what `anvil --onnx=m.onnx --mode=mpc` compiles a model into, what the server, public and
// fixed engines hold, and the exact arithmetic both executors follow (see docs/mpc.md).
//
// Every tensor is a dense row-major array of ring elements of Z_2^64 (uint64_t, read as
// two's complement int64) with a real scale: the tensor stands for int64(x) * scale. Scales,
// shapes, truncation shifts and lookup tables are public (they are in the public engine);
// only the weights and biases of kLinear / kScale steps are the server's secret. Shapes are
// static (the build's --shapes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace anvil::mpc {

using Ring = uint64_t;

enum class StepKind : int32_t {
  // out = quantize(client input): int64 round-half-away(x / scale) (no clamp; the
  // compiler picks the scale from calibration so the ring never overflows).
  kInput = 0,
  // out = W (*) in + bias, W and bias server-private ring constants (absent in the public
  // engine). `linear` says which bilinear map (*) is. out.scale = in.scale * weightScale;
  // bias is quantized at out.scale.
  kLinear = 1,
  // out = in * W elementwise with W broadcast along the trailing axes given by
  // `weightShape` (LayerNorm's gamma), plus bias: server-private, like kLinear.
  kScale = 2,
  // The secure lookup: t = floor((in + 2^(shift-1)) / 2^shift) (shift 0: t = in), then
  // idx = t mod 256 (uint8), out = table[idx] (int64 ring value at out.scale). The table
  // is public: table[idx] = round(f(int8(idx) * in.scale * 2^shift) / out.scale) for the
  // step's function f, int8(idx) read per `tableLow` below (the compiler saturates
  // entries beyond the calibrated index range at twice the calibrated output magnitude).
  // Values whose t leaves the table's range ([-128, 127] by default) wrap (the compiler
  // picks `shift` from calibration so they do not).
  kLut = 3,
  // Max over pooling windows through LUT comparisons: per window, the elements in
  // window order are reduced as a balanced pairwise tree, level by level; one pairwise
  // max is  m = b + table[trunc8(a - b)]  with trunc8 as in kLut (same shift), and the
  // table a ReLU back to in.scale. out.scale = in.scale. Window elements outside the
  // input (padding) are skipped. Tree order: the window's elements (kh-major, then kw)
  // form level 0; each level pairs elements (0,1), (2,3), ... with a the even and b the
  // odd one of a pair, and an odd last element moves up unchanged (ring_ops.h:
  // maxPoolWindows / pairwiseMax).
  kMaxPool = 4,
  // Local (no communication, exact) steps:
  kAdd = 5,        // out = in0 + in1 (same scale, numpy broadcasting)
  kSub = 6,        // out = in0 - in1
  kMulConst = 7,   // out = in * factor (integer), out.scale = in.scale / factor: the same real
                   // value on a finer grid (aligns scales before kAdd / kSub / kConcat)
  kSumPool = 8,    // AveragePool / GlobalAveragePool as window sums; out.scale = in.scale / count
  kReduceSum = 9,  // sum over `axes` (keepdims); ReduceMean: out.scale = in.scale / count
  kReshape = 10,   // Reshape / Flatten / Squeeze / Unsqueeze: the same elements (the compiler
                   // also lowers a product with a positive scalar constant to one: the same
                   // elements at a new out.scale)
  kTranspose = 11, // perm
  kConcat = 12,    // axis; equal scales
  kSlice = 13,     // starts/ends/steps per axis (normalized, static)
  // Shared x shared products (Beaver triples from the dealer): out.scale = in0.scale * in1.scale.
  kMul = 14,       // elementwise with numpy broadcasting
  kMatMul = 15,    // batched matrix product [.., M, K] x [.., K, N]
  // The client learns `in`: out (float) = int64(in) * in.scale. One per graph output.
  kOutput = 16,
};

enum class LinearKind : int32_t {
  kMatMul = 0,  // in [.., K] x W [K, N] (Gemm's transposes resolved at compile time)
  kConv = 1,    // NCHW in, W [OC, IC/group, KH, KW]
};

// The function a kLut step computes (the tables are built from these by the compiler;
// stored for the layer info and the dealer's checks).
enum class LutFunction : int32_t {
  kIdentity = 0,  // requantization only
  kRelu, kGelu, kSigmoid, kTanh, kSilu, kExp, kReciprocal, kRsqrt, kSquare, kLeakyRelu,
};

struct TensorDef {
  std::string name;  // the ONNX value it comes from ("" for a compiler temporary)
  std::vector<int64_t> shape;
  double scale = 1;  // real value = int64 element * scale (but see below)
  // Unnamed compiler temporaries between a linear layer scaled per output channel and the
  // linear layer that reads it (through a ReLU, MaxPool, Flatten: compile.h) hold channel c
  // at g_c times that value; the factors are folded into both layers' weights, so no
  // executor sees them and every step still computes exactly what this file says.
};

struct ConvGeometry {
  int64_t kernel[2] = {1, 1}, stride[2] = {1, 1}, dilation[2] = {1, 1};
  int64_t pads[4] = {0, 0, 0, 0};  // top, left, bottom, right
  int64_t group = 1;
};

struct Step {
  StepKind kind = StepKind::kInput;
  std::string name;            // the ONNX node (or graph input/output) it comes from
  std::vector<int32_t> inputs;  // tensor ids
  int32_t output = -1;          // tensor id
  // kLinear / kScale
  LinearKind linear = LinearKind::kMatMul;
  std::vector<int64_t> weightShape;
  double weightScale = 1;
  std::vector<Ring> weights;    // server-private: empty in the public engine
  std::vector<Ring> bias;       // server-private (out.scale), empty = no bias; kLinear
                                // kMatMul: [N] along the last axis, kConv: [OC] along
                                // axis 1, kScale: weightShape (the trailing axes)
  ConvGeometry conv;            // kConv, kMaxPool, kSumPool windows
  // kLut / kMaxPool
  int32_t shift = 0;
  LutFunction function = LutFunction::kIdentity;
  std::vector<Ring> table;      // 256 entries (kLut, kMaxPool)
  // kLut: the least truncated value t the table stands for: entry idx holds f at
  // t = ((idx - tableLow) mod 256) + tableLow. -128 (int8, the default) for a signed input;
  // -1 for one that is never negative (sums of exps, variances: t up to 254 indexes right);
  // -239 for exp after the row maximum is subtracted. Only the table's content depends on
  // it: every executor looks up table[t mod 256] regardless.
  int32_t tableLow = -128;
  // kMulConst
  int64_t factor = 1;
  // kReduceSum / kTranspose / kConcat / kSlice
  std::vector<int64_t> axes, perm, starts, ends, steps;
  int64_t axis = 0;
};

struct Program {
  std::vector<TensorDef> tensors;
  std::vector<Step> steps;       // in execution order
  std::vector<int32_t> inputs;   // tensor ids of kInput outputs, in graph input order
  std::vector<int32_t> outputs;  // tensor ids read by kOutput, in graph output order
  // 16 random bytes drawn at build: the server and public engines of one build share it;
  // offline material and peers of another build are refused by it.
  std::string programId;
  bool isPublic = false;         // weights and biases stripped
  // --exactTruncation: the secure run truncates every lookup index (kLut, kMaxPool with
  // shift > 0) exactly as this file says (round half up), so its outputs equal --mode=fixed
  // bit for bit, at the price of 2-3 rounds per lookup layer instead of one and more bytes
  // (dealer.h exactLookup, docs/mpc.md "Truncation"). Without it the two parties truncate
  // their own shares (one round, index off by one at most). The fixed executor ignores it.
  bool exactTruncation = false;
  // The channel's server key (libsodium crypto_kx): the public engine holds the public
  // key (the client authenticates the server with it), the server engine both.
  std::vector<uint8_t> serverPublicKey, serverSecretKey;
};

// Engine files of these modes (magic "ANVILMPC", a version, then the program); the server
// engine holds everything, the public engine (--savePublic) no weights, biases or secret key.
std::string serializeProgram(const Program& p);
Program deserializeProgram(const std::string& bytes);  // throws anvil::Error on bad input
Program publicCopy(const Program& p);
bool isMpcEngineFile(const std::string& path);

}  // namespace anvil::mpc
