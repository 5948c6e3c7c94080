// The conditions every INT8 kernel family shares (native_int8.cpp, native_int8_conv_pixels.cpp,
// and any later family): reading a value's per-tensor u8 grid, a weight's own per-channel
// scales (a Q/DQ import), and a 2-D Conv's attributes. One definition, so that every
// family accepts exactly the same nodes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cpu/tactics/int8_gemm.h"
#include "cpu/tactics/native_linear_conv.h"
#include "cpu/tactics/native_linear_epilogue.h"
#include "ir/graph.h"
#include "runtime/kernel.h"

namespace anvil::cpu::tactics {

// A value's per-tensor quantization: an f32 rank-0 scale > 0 (finite) and a u8 zero point
// with one value (absent: 0). False for anything else (per axis, other types, no value).
bool perTensorQuant(const ir::Value* v, float* scale, int32_t* zp);

// A lowered (u8) value's grid: perTensorQuant, and the zero point, if any, of rank 0 (the
// contract of the values the builder's INT8 chains store).
bool loweredQuant(const ir::Value* v, float* scale, int32_t* zp);

// The weight's (input 1) own per-axis quantization along featureAxis: f32 scales > 0, one
// per feature (N), zero points absent or s8 zeros. False for one that does not fit;
// *scales stays null when the weight carries none.
bool weightQuant(const ir::Node& n, int64_t featureAxis, int64_t N, const float** scales);

// A 2-D Conv's attributes from the node and its weight's shape [M, C/group, kH, kW]
// (static kernel extents, positive strides and dilations, pads decoded).
bool convAttrsOf(const ir::Node& n, const ir::Shape& w, ConvAttrs* a);

// Components in f32 (tactic params fp32_channels, adaptive_tau, adaptive_test): such a
// node needs its input and output in f32 (the f32 recomputation reads and writes them).
bool int8MixedParams(const ir::Node& n);

// A Q/DQ import's requantization (passes/qdq_fusion.cpp, tactic params qdq_bias: the
// model's int32 bias per output feature, qdq_out_scale: the output grid's s_y): the node
// outputs float(acc + bias[f]) * ((s_x * s_w[f]) / s_y), onnxruntime's QLinearConv /
// QLinearMatMul / QGemm value before its rounding, in f32 with the same operations in the
// same order. Such a node has no f32 bias, activation, residual, alpha or f32 components;
// its output is f32 or lowered u8 on the grid of the steps (scale 1: round(value) + z).
// False where the params are malformed (N biases, s_y > 0 finite); on = false without them.
struct Int8ModelRequant {
  bool on = false;
  float outScale = 1.0f;
  std::vector<int32_t> bias;  // [N]
};
bool int8ModelRequant(const ir::Node& n, int64_t N, Int8ModelRequant* r);

// The tiles' per-feature operands of y = float(acc - zc[f]) * sc[f], as blobs of `padded`
// entries (zeros past N): zc = z_x * colsum[f] and sc = (s_x * s_w[f]) * alpha; with the
// node's requantization (int8ModelRequant) zc = z_x * colsum[f] - bias[f] (the bias joins
// the exact integer sum) and sc = (s_x * s_w[f]) / s_y. s_x is the tactic param
// qdq_x_scale where the node has one (a Q/DQ chain link: input 0 holds its producer's
// requantized value in steps, grid scale 1). Every INT8 family calls this.
void int8FeatureOperands(const ir::Node& n, int32_t zx, const std::vector<int32_t>& colsum,
                         const std::vector<float>& wScale, float sx, float alpha, int64_t padded, std::string* zc,
                         std::string* sc);

// The common part of an INT8 linear kernel's supports(): the node computes in INT8, input 0
// has its per-tensor quantization and is f32 or (for a node without f32 components) a
// lowered u8, the weight (input 1) is a constant f32 tensor with K (1..kI8MaxK: exact int32
// sums) and N features along featureAxis and its own quantization, if any, fits, and
// output 0 is f32 or (without f32 components) lowered u8.
bool int8LinearSupports(const ir::Node& n, const std::vector<ir::TensorType>& in, int64_t K, int64_t N,
                        int64_t featureAxis);

// The fused epilogue's checks (fusedEpilogueSupported) with a lowered Z (without f32
// components) taken as f32.
bool int8FusedEpilogueSupports(const ir::Node& n, const std::vector<ir::TensorType>& in);

// Conv (fused = false) and anvil.FusedConv served by a plain-INT8 2-D Conv kernel family
// (the pixels-as-rows and AMX ones): the node set to INT8 without f32 components
// (fp32_channels, adaptive_*), static rank-4 X and W, a constant f32 weight with its own
// per-channel quantization if any, K = C * kH * kW in [1, kI8MaxK], one group, X and Y f32
// or lowered u8, the epilogue readable with Z (if any) f32 or lowered u8, and at most
// maxPixels output pixels per image.
bool supportsPlainInt8Conv2d(const ir::Node& n, const std::vector<ir::TensorType>& in, bool fused, int64_t maxPixels);

// The extents of input i at the profile's max shapes, which must be static (kInternal
// naming `what` otherwise).
std::vector<int64_t> staticExtents(const runtime::PrepareInfo& info, size_t i, const char* what);

// What prepare() of a plain-INT8 2-D Conv family reads from its node (the conditions of
// supportsPlainInt8Conv2d, checked again with errors naming the node): input 0's grid and
// whether it is lowered, a lowered Z's and output's grids, the epilogue, the attributes and
// geometry at the max shapes, and the f32 weight with its own per-channel scales (or null).
struct Int8ConvSetup {
  float scale = 1.0f;     // s_x
  float invScale = 1.0f;  // 1 / s_x
  int32_t zeroPoint = 0;  // z_x
  bool inU8 = false;
  bool zU8 = false;  // Z lowered: its s and zp
  float zScale = 1.0f;
  int32_t zZero = 0;
  bool outU8 = false;  // output lowered: its 1 / s and zp
  float outInv = 1.0f;
  int32_t outZero = 0;
  EpilogueParams epi;  // fused only
  ConvAttrs conv;
  Conv2dGeom g;
  const float* weights = nullptr;      // [M][C][kH][kW]
  const float* givenScales = nullptr;  // the weight's own per-channel scales, if any
};
Int8ConvSetup readInt8ConvSetup(const runtime::PrepareInfo& info, bool fused);

// finishTile's parameters (int8_gemm.h) for a node's epilogue e, applied where `epilogue`,
// with its u8 Z's grid (zScale, zZero) and its u8 output's (yInv = 1 / s_y, yZero).
RowFinish rowFinishOf(const ir::linear::Epilogue& e, bool epilogue, float zScale, int32_t zZero, float yInv,
                      int32_t yZero);

}  // namespace anvil::cpu::tactics
