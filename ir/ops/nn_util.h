// Sliding-window geometry of the nn family (Conv, ConvTranspose, pools, Col2Im ...),
// shared by shape inference (ir/ops/nn.cpp) and the reference kernels (cpu/kernels/nn*.cpp)
// so that the extents a kernel produces are the extents inference promised.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace anvil::ir::nn {

enum class AutoPad { kNotSet, kSameUpper, kSameLower, kValid };

// The window attributes of one node, defaults resolved for `rank` spatial dims.
struct Window {
  std::vector<int64_t> kernel;     // empty when neither kernel_shape nor the weights give it
  std::vector<int64_t> strides;    // rank
  std::vector<int64_t> dilations;  // rank
  std::vector<int64_t> pads;       // 2*rank: begins then ends
  AutoPad autoPad = AutoPad::kNotSet;
  bool ceilMode = false;
};

inline int64_t floorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
inline int64_t ceilDiv(int64_t a, int64_t b) { return -floorDiv(-a, b); }

// Reads kernel_shape/strides/dilations/pads/auto_pad/ceil_mode. `kernelFromWeights` (may be
// empty) is used when kernel_shape is absent. Returns "" or what is wrong.
inline std::string readWindow(const Attributes& a, size_t rank, const std::vector<int64_t>& kernelFromWeights,
                              Window* w, bool allowNegativePads = false) {
  const std::string r = std::to_string(rank);
  w->kernel = a.getInts("kernel_shape", kernelFromWeights);
  if (!w->kernel.empty() && w->kernel.size() != rank)
    return "kernel_shape has " + std::to_string(w->kernel.size()) + " values, expected " + r;
  if (!kernelFromWeights.empty() && a.has("kernel_shape") && w->kernel != kernelFromWeights)
    return "kernel_shape does not match the spatial dims of the weights";
  for (int64_t k : w->kernel)
    if (k <= 0) return "kernel_shape values must be positive";
  w->strides = a.getInts("strides", std::vector<int64_t>(rank, 1));
  if (w->strides.size() != rank) return "strides has " + std::to_string(w->strides.size()) + " values, expected " + r;
  for (int64_t s : w->strides)
    if (s <= 0) return "strides must be positive";
  w->dilations = a.getInts("dilations", std::vector<int64_t>(rank, 1));
  if (w->dilations.size() != rank)
    return "dilations has " + std::to_string(w->dilations.size()) + " values, expected " + r;
  for (int64_t d : w->dilations)
    if (d <= 0) return "dilations must be positive";
  w->pads = a.getInts("pads", std::vector<int64_t>(2 * rank, 0));
  if (w->pads.size() != 2 * rank)
    return "pads has " + std::to_string(w->pads.size()) + " values, expected " + std::to_string(2 * rank);
  if (!allowNegativePads)
    for (int64_t p : w->pads)
      if (p < 0) return "pads must be non-negative";
  const std::string ap = a.getString("auto_pad", "NOTSET");
  if (ap == "NOTSET" || ap.empty()) w->autoPad = AutoPad::kNotSet;
  else if (ap == "SAME_UPPER") w->autoPad = AutoPad::kSameUpper;
  else if (ap == "SAME_LOWER") w->autoPad = AutoPad::kSameLower;
  else if (ap == "VALID") w->autoPad = AutoPad::kValid;
  else return "auto_pad '" + ap + "' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID";
  if (w->autoPad != AutoPad::kNotSet) w->pads.assign(2 * rank, 0);
  w->ceilMode = a.getInt("ceil_mode", 0) != 0;
  return "";
}

// One spatial dim of a forward window (Conv, pools): resolves the pads for auto_pad and the
// output extent. Pool ceil mode drops a last window that would start in the end padding.
struct WindowDim {
  int64_t out = 0, padBegin = 0, padEnd = 0;
};
inline std::string forwardDim(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe, AutoPad ap,
                              bool ceilMode, WindowDim* o) {
  const int64_t dk = (k - 1) * d + 1;
  if (ap == AutoPad::kSameUpper || ap == AutoPad::kSameLower) {
    o->out = ceilDiv(in, s);
    int64_t total = std::max<int64_t>(0, (o->out - 1) * s + dk - in);
    int64_t small = total / 2, big = total - small;
    o->padBegin = ap == AutoPad::kSameUpper ? small : big;
    o->padEnd = ap == AutoPad::kSameUpper ? big : small;
    return "";
  }
  if (ap == AutoPad::kValid) pb = pe = 0;
  o->padBegin = pb;
  o->padEnd = pe;
  const int64_t span = in + pb + pe - dk;
  if (span < 0)
    return "the window (" + std::to_string(dk) + " with dilation) is larger than the padded input (" +
           std::to_string(in + pb + pe) + ")";
  if (ceilMode) {
    o->out = ceilDiv(span, s) + 1;
    if ((o->out - 1) * s >= in + pb) --o->out;
  } else {
    o->out = span / s + 1;
  }
  return "";
}

// One spatial dim of ConvTranspose: pads and output extent (output_shape, when given,
// decides the pads: SAME_UPPER puts the larger half at the end, anything else at the begin).
inline void transposeDim(int64_t in, int64_t k, int64_t s, int64_t d, int64_t outPad, int64_t pb, int64_t pe,
                         AutoPad ap, int64_t outputShape /* -1: none */, WindowDim* o) {
  const int64_t dk = (k - 1) * d + 1;
  const int64_t natural = s * (in - 1) + outPad + dk;
  if (outputShape < 0 && (ap == AutoPad::kSameUpper || ap == AutoPad::kSameLower)) outputShape = in * s;
  if (outputShape >= 0) {
    int64_t total = natural - outputShape;
    int64_t half = floorDiv(total, 2);
    if (ap == AutoPad::kSameUpper) {
      o->padBegin = half;
      o->padEnd = total - half;
    } else {
      o->padBegin = total - half;
      o->padEnd = half;
    }
    o->out = outputShape;
    return;
  }
  if (ap == AutoPad::kValid) pb = pe = 0;
  o->padBegin = pb;
  o->padEnd = pe;
  o->out = natural - pb - pe;
}

}  // namespace anvil::ir::nn
