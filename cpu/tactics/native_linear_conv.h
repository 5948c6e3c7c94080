// The 2-D Conv pieces of the native linear kernels (implemented in cpu/tactics/conv.cpp):
// the geometry of one convolution, the implicit-im2col packer that feeds the A-stationary
// GEMM driver (gemm_kernels.h) straight from the input, and the direct depthwise plane.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cpu/tactics/gemm_kernels.h"
#include "ir/graph.h"

namespace anvil::cpu::tactics {

// Conv attributes decoded at prepare time (trivially copyable; part of a kernel's params).
struct ConvAttrs {
  int64_t group = 1, kH = 1, kW = 1, sH = 1, sW = 1, dH = 1, dW = 1;
  int64_t pads[4] = {0, 0, 0, 0};  // top, left, bottom, right (auto_pad NOTSET)
  int32_t autoPad = 0;             // 0 NOTSET, 1 VALID, 2 SAME_UPPER, 3 SAME_LOWER
  int32_t reserved = 0;            // no padding bytes: params are compared byte for byte
};

// Reads auto_pad and (for NOTSET) the four non-negative pads of a Conv into a; false for an
// unknown auto_pad or malformed pads. Every native Conv kernel decodes its padding here.
inline bool decodeConvPads(const ir::Attributes& at, ConvAttrs* a) {
  const std::string ap = at.getString("auto_pad", "NOTSET");
  if (ap == "NOTSET" || ap.empty()) {
    a->autoPad = 0;
    const std::vector<int64_t> p = at.getInts("pads", {0, 0, 0, 0});
    if (p.size() != 4) return false;
    for (int i = 0; i < 4; ++i) {
      if (p[size_t(i)] < 0) return false;
      a->pads[i] = p[size_t(i)];
    }
  } else if (ap == "VALID") {
    a->autoPad = 1;
  } else if (ap == "SAME_UPPER") {
    a->autoPad = 2;
  } else if (ap == "SAME_LOWER") {
    a->autoPad = 3;
  } else {
    return false;
  }
  return true;
}

// One 2-D convolution's geometry with auto_pad resolved.
struct Conv2dGeom {
  int64_t N, C, H, W;      // input
  int64_t M, G, Cg, Mg;    // output channels, groups, per group
  int64_t kH, kW, sH, sW, dH, dW;
  int64_t pt, pl, pb, pr;  // pads: top, left, bottom, right
  int64_t OH, OW;
};

// The geometry for input extents x[0..3] and M output channels; false when they do not
// fit the attributes (channels not divisible by the groups, kernel larger than the
// padded input).
bool conv2dGeometry(const ConvAttrs& a, const int64_t* x, int64_t M, Conv2dGeom* g);

// The implicit column matrix of one (image, group): row k = (ci, kh, kw), column
// j = (oh, ow), value x[ci, oh*sH - pt + kh*dH, ow*sW - pl + kw*dW] or 0 in the padding.
class Im2colPacker final : public BPacker {
 public:
  // x: the group's first input channel; [xLo, xHi): all of X (bounds for unmasked loads).
  Im2colPacker(const float* x, const Conv2dGeom& g, const float* xLo, const float* xHi)
      : x_(x), g_(g), xLo_(xLo), xHi_(xHi) {}
  void pack(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst, float* scratch) const override;
  // Scratch floats one pack() call needs for blocks up to kc x nc.
  static int64_t scratchFloats(int64_t kc, int64_t nc, int nr);

 private:
  const float* x_;
  Conv2dGeom g_;
  const float *xLo_, *xHi_;
};

// Depthwise (Cg == 1) output plane of channel m: y[OH x OW] = w[kH x kW] (*) x + bias, x the
// channel's input plane. `padded` holds depthwisePaddedFloats(g) floats. Needs avx2 + fma.
int64_t depthwisePaddedFloats(const Conv2dGeom& g);
void depthwisePlaneAvx2(const float* x, const float* w, float bias, float* y, const Conv2dGeom& g, float* padded);

}  // namespace anvil::cpu::tactics
