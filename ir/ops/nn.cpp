// Schemas and shape inference of the nn op family: convolutions, matrix products, pools,
// ROI ops and (de)quantization. Window geometry lives in nn_util.h, shared with the kernels.
#include <numeric>

#include "ir/op_schema.h"
#include "ir/ops/families.h"
#include "ir/ops/infer_util.h"
#include "ir/ops/nn_util.h"

namespace anvil::ir::ops {

namespace {

using nn::AutoPad;
using nn::Window;
using nn::WindowDim;

// Static extents of dims [from, rank) or nullopt when one of them is not static.
std::optional<std::vector<int64_t>> staticTail(const Shape& s, size_t from) {
  if (!s.rankKnown()) return std::nullopt;
  std::vector<int64_t> out;
  for (size_t i = from; i < s.rank(); ++i) {
    if (!s[i].isStatic()) return std::nullopt;
    out.push_back(s[i].value());
  }
  return out;
}

void requireFloat(const InferContext& c, size_t i, const char* what) {
  DataType t = c.inputDtype(i);
  c.check(t == DataType::kF32 || t == DataType::kF64 || t == DataType::kF16 || t == DataType::kBF16,
          std::string(what) + " must be f16, bf16, f32 or f64, got " + dtypeName(t));
}

void requireSameType(const InferContext& c, size_t i, size_t j) {
  if (!c.hasInput(i) || !c.hasInput(j)) return;
  c.check(c.inputDtype(i) == c.inputDtype(j), "inputs " + std::to_string(i) + " and " + std::to_string(j) +
                                                  " must have the same type, got " + dtypeName(c.inputDtype(i)) +
                                                  " and " + dtypeName(c.inputDtype(j)));
}

// Rank of an N,C,spatial... input; fails below `minRank`.
int64_t spatialRank(const InferContext& c, const Shape& s, size_t minRank = 3) {
  if (!s.rankKnown()) return -1;
  c.check(s.rank() >= minRank, "input must have rank >= " + std::to_string(minRank) + " (N, C, spatial...), got " +
                                   s.str());
  return int64_t(s.rank()) - 2;
}

Window readWindowOrFail(const InferContext& c, size_t rank, const std::vector<int64_t>& kernelFromW,
                        bool requireKernel) {
  Window w;
  std::string err = nn::readWindow(c.attrs(), rank, kernelFromW, &w);
  if (!err.empty()) c.fail(err);
  if (requireKernel && w.kernel.empty()) c.fail("kernel_shape is required");
  return w;
}

// Output spatial dims of a forward window; symbolic dims survive identity windows.
std::vector<Dim> forwardSpatial(const InferContext& c, const Shape& x, const Window& w) {
  std::vector<Dim> out;
  const size_t r = x.rank() - 2;
  for (size_t i = 0; i < r; ++i) {
    const Dim& in = x[2 + i];
    if (w.kernel.empty()) {
      out.emplace_back();
      continue;
    }
    const int64_t k = w.kernel[i], s = w.strides[i], d = w.dilations[i];
    if (in.isStatic()) {
      WindowDim o;
      std::string err = nn::forwardDim(in.value(), k, s, d, w.pads[i], w.pads[i + r], w.autoPad, w.ceilMode, &o);
      if (!err.empty()) c.fail("spatial dim " + std::to_string(i) + ": " + err);
      out.emplace_back(o.out);
      continue;
    }
    const bool same = w.autoPad == AutoPad::kSameUpper || w.autoPad == AutoPad::kSameLower;
    const bool noPads = w.autoPad == AutoPad::kValid || same || (w.pads[i] == 0 && w.pads[i + r] == 0);
    const bool identity = s == 1 && (same || ((k - 1) * d == 0 && noPads));
    out.push_back(identity ? in : Dim());
  }
  return out;
}

int64_t groupAttr(const InferContext& c) {
  int64_t g = c.attrs().getInt("group", 1);
  c.check(g >= 1, "group must be >= 1, got " + std::to_string(g));
  return g;
}

// Conv-like: X [N,C,...], W [M,C/group,k...]; returns output [N,M,spatial...].
Shape convShape(const InferContext& c, size_t xi, size_t wi) {
  const Shape& x = c.inputShape(xi);
  const Shape& wsh = c.inputShape(wi);
  int64_t r = spatialRank(c, x);
  if (r < 0 && wsh.rankKnown()) {
    c.check(wsh.rank() >= 3, "weights must have rank >= 3, got " + wsh.str());
    r = int64_t(wsh.rank()) - 2;
  }
  if (r < 0) return Shape::unknownRank();
  if (wsh.rankKnown())
    c.check(int64_t(wsh.rank()) == r + 2, "weights " + wsh.str() + " do not match the input rank of " + x.str());
  std::vector<int64_t> kW;
  if (auto k = staticTail(wsh, 2); k && wsh.rankKnown()) kW = *k;
  Window w = readWindowOrFail(c, size_t(r), kW, false);
  w.ceilMode = false;  // convolutions have no ceil_mode (the kernels ignore a stray one too)
  const int64_t group = groupAttr(c);
  Dim m;
  if (wsh.rankKnown()) {
    m = wsh[0];
    if (x.rankKnown() && x[1].isStatic() && wsh[1].isStatic())
      c.check(x[1].value() == wsh[1].value() * group,
              "input channels " + x[1].str() + " != weight channels " + wsh[1].str() + " x group " +
                  std::to_string(group));
    if (m.isStatic())
      c.check(m.value() % group == 0, "output channels " + m.str() + " are not divisible by group " +
                                          std::to_string(group));
  }
  if (!x.rankKnown()) return unknownDims(r + 2);
  std::vector<Dim> out{x[0], m};
  for (Dim& d : forwardSpatial(c, x, w)) out.push_back(d);
  return Shape(out);
}

void checkBias(const InferContext& c, size_t bi, const Dim& m) {
  if (!c.hasInput(bi)) return;
  const Shape& b = c.inputShape(bi);
  if (!b.rankKnown()) return;
  c.check(b.rank() == 1, "bias must be 1-D, got " + b.str());
  if (b[0].isStatic() && m.isStatic())
    c.check(b[0].value() == m.value(), "bias has " + b[0].str() + " values, expected " + m.str());
}

void inferConv(InferContext& c) {
  requireFloat(c, 0, "X");
  requireSameType(c, 0, 1);
  requireSameType(c, 0, 2);
  Shape s = convShape(c, 0, 1);
  if (s.rankKnown()) checkBias(c, 2, s[1]);
  c.setOutput(0, c.inputDtype(0), s);
}

void inferConvTranspose(InferContext& c) {
  requireFloat(c, 0, "X");
  requireSameType(c, 0, 1);
  requireSameType(c, 0, 2);
  const Shape& x = c.inputShape(0);
  const Shape& wsh = c.inputShape(1);
  int64_t r = spatialRank(c, x);
  if (r < 0 && wsh.rankKnown()) r = int64_t(wsh.rank()) - 2;
  if (r < 0) return c.setOutput(0, c.inputDtype(0), Shape::unknownRank());
  c.check(r >= 1, "input must have at least one spatial dim");
  if (wsh.rankKnown())
    c.check(int64_t(wsh.rank()) == r + 2, "weights " + wsh.str() + " do not match the input rank of " + x.str());
  std::vector<int64_t> kW;
  if (auto k = staticTail(wsh, 2); k && wsh.rankKnown()) kW = *k;
  Window w = readWindowOrFail(c, size_t(r), kW, false);
  const int64_t group = groupAttr(c);
  auto outPad = c.attrs().getInts("output_padding", std::vector<int64_t>(size_t(r), 0));
  c.check(int64_t(outPad.size()) == r, "output_padding must have " + std::to_string(r) + " values");
  for (size_t i = 0; i < size_t(r); ++i)
    c.check(outPad[i] >= 0 && (outPad[i] < w.strides[i] || outPad[i] < w.dilations[i]),
            "output_padding must be non-negative and smaller than the stride or the dilation");
  auto outShape = c.attrs().getInts("output_shape");
  if (!outShape.empty()) {
    c.check(int64_t(outShape.size()) == r || int64_t(outShape.size()) == r + 2,
            "output_shape must have " + std::to_string(r) + " (spatial) values");
    if (int64_t(outShape.size()) == r + 2) outShape.erase(outShape.begin(), outShape.begin() + 2);
  }
  Dim m;
  if (wsh.rankKnown()) {
    m = wsh[1].isStatic() ? Dim(wsh[1].value() * group) : Dim();
    if (x.rankKnown() && x[1].isStatic() && wsh[0].isStatic())
      c.check(x[1].value() == wsh[0].value(), "input channels " + x[1].str() + " != weight dim 0 " + wsh[0].str());
    if (wsh[0].isStatic())
      c.check(wsh[0].value() % group == 0, "weight dim 0 " + wsh[0].str() + " is not divisible by group");
  }
  checkBias(c, 2, m);
  if (!x.rankKnown()) return c.setOutput(0, c.inputDtype(0), unknownDims(r + 2));
  std::vector<Dim> out{x[0], m};
  for (size_t i = 0; i < size_t(r); ++i) {
    if (!outShape.empty()) {
      c.check(outShape[i] >= 0, "output_shape values must be non-negative");
      out.emplace_back(outShape[i]);
      continue;
    }
    if (w.kernel.empty() || !x[2 + i].isStatic()) {
      out.emplace_back();
      continue;
    }
    WindowDim o;
    nn::transposeDim(x[2 + i].value(), w.kernel[i], w.strides[i], w.dilations[i], outPad[i], w.pads[i],
                     w.pads[i + size_t(r)], w.autoPad, -1, &o);
    c.check(o.out > 0, "output spatial dim " + std::to_string(i) + " would be " + std::to_string(o.out));
    out.emplace_back(o.out);
  }
  c.setOutput(0, c.inputDtype(0), Shape(out));
}

bool isQuant8(DataType t) { return t == DataType::kU8 || t == DataType::kI8; }

void inferConvInteger(InferContext& c) {
  c.check(isQuant8(c.inputDtype(0)) && isQuant8(c.inputDtype(1)), "x and w must be u8 or i8");
  if (c.hasInput(2)) requireSameType(c, 0, 2);
  if (c.hasInput(3)) requireSameType(c, 1, 3);
  c.setOutput(0, DataType::kI32, convShape(c, 0, 1));
}

void inferQLinearConv(InferContext& c) {
  c.check(isQuant8(c.inputDtype(0)) && isQuant8(c.inputDtype(3)), "x and w must be u8 or i8");
  requireSameType(c, 0, 2);
  requireSameType(c, 3, 5);
  Shape s = convShape(c, 0, 3);
  if (c.hasInput(8)) {
    c.check(c.inputDtype(8) == DataType::kI32, "B must be i32");
    if (s.rankKnown()) checkBias(c, 8, s[1]);
  }
  DataType out = c.hasInput(7) ? c.inputDtype(7) : c.inputDtype(0);
  c.check(isQuant8(out), "y_zero_point must be u8 or i8");
  c.setOutput(0, out, s);
}

// numpy matmul of a and b (inputs ia, ib).
Shape matmulShape(const InferContext& c, size_t ia, size_t ib) {
  const Shape& a = c.inputShape(ia);
  const Shape& b = c.inputShape(ib);
  if (!a.rankKnown() || !b.rankKnown()) return Shape::unknownRank();
  c.check(a.rank() >= 1 && b.rank() >= 1, "MatMul operands must have rank >= 1, got " + a.str() + " and " + b.str());
  std::vector<Dim> ad = a.dims(), bd = b.dims();
  const bool aVec = ad.size() == 1, bVec = bd.size() == 1;
  if (aVec) ad.insert(ad.begin(), Dim(1));
  if (bVec) bd.push_back(Dim(1));
  const Dim& ka = ad[ad.size() - 1];
  const Dim& kb = bd[bd.size() - 2];
  if (ka.isStatic() && kb.isStatic())
    c.check(ka.value() == kb.value(), "inner dims differ: " + a.str() + " x " + b.str());
  Shape batch;
  try {
    batch = broadcastShapes(Shape(std::vector<Dim>(ad.begin(), ad.end() - 2)),
                            Shape(std::vector<Dim>(bd.begin(), bd.end() - 2)));
  } catch (const Error& e) {
    c.fail(std::string("batch dims do not broadcast: ") + e.what());
  }
  std::vector<Dim> out = batch.dims();
  if (!aVec) out.push_back(ad[ad.size() - 2]);
  if (!bVec) out.push_back(bd[bd.size() - 1]);
  return Shape(out);
}

void inferMatMul(InferContext& c) {
  requireSameType(c, 0, 1);
  DataType t = c.inputDtype(0);
  const bool ok = t == DataType::kF32 || t == DataType::kF64 || t == DataType::kF16 || t == DataType::kBF16 ||
                  (isInteger(t) && t != DataType::kU4 && t != DataType::kI4);
  c.check(ok, std::string("MatMul does not take ") + dtypeName(t));
  c.setOutput(0, t, matmulShape(c, 0, 1));
}

void inferMatMulInteger(InferContext& c) {
  c.check(isQuant8(c.inputDtype(0)) && isQuant8(c.inputDtype(1)), "A and B must be u8 or i8");
  if (c.hasInput(2)) requireSameType(c, 0, 2);
  if (c.hasInput(3)) requireSameType(c, 1, 3);
  c.setOutput(0, DataType::kI32, matmulShape(c, 0, 1));
}

void inferQLinearMatMul(InferContext& c) {
  c.check(isQuant8(c.inputDtype(0)) && isQuant8(c.inputDtype(3)), "a and b must be u8 or i8");
  requireSameType(c, 0, 2);
  requireSameType(c, 3, 5);
  DataType out = c.hasInput(7) ? c.inputDtype(7) : c.inputDtype(0);
  c.setOutput(0, out, matmulShape(c, 0, 3));
}

void inferGemm(InferContext& c) {
  requireSameType(c, 0, 1);
  requireSameType(c, 0, 2);
  const Shape& a = c.inputShape(0);
  const Shape& b = c.inputShape(1);
  const bool ta = c.attrs().getInt("transA", 0) != 0, tb = c.attrs().getInt("transB", 0) != 0;
  Dim m, n, ka, kb;
  if (a.rankKnown()) {
    c.check(a.rank() == 2, "A must be 2-D, got " + a.str());
    m = a[ta ? 1 : 0];
    ka = a[ta ? 0 : 1];
  }
  if (b.rankKnown()) {
    c.check(b.rank() == 2, "B must be 2-D, got " + b.str());
    kb = b[tb ? 1 : 0];
    n = b[tb ? 0 : 1];
  }
  if (ka.isStatic() && kb.isStatic())
    c.check(ka.value() == kb.value(), "inner dims differ: A " + a.str() + (ta ? "^T" : "") + " x B " + b.str() +
                                          (tb ? "^T" : ""));
  if (c.hasInput(2)) {
    const Shape& cs = c.inputShape(2);
    if (cs.rankKnown()) {
      c.check(cs.rank() <= 2, "C must have rank <= 2, got " + cs.str());
      const Dim* want[2] = {&m, &n};
      for (size_t i = 0; i < cs.rank(); ++i) {
        const Dim& cd = cs[i];
        const Dim& od = *want[2 - cs.rank() + i];
        if (cd.isStatic() && od.isStatic())
          c.check(cd.value() == 1 || cd.value() == od.value(),
                  "C " + cs.str() + " does not broadcast to [" + m.str() + "," + n.str() + "]");
      }
    }
  }
  c.setOutput(0, c.inputDtype(0), Shape(std::vector<Dim>{m, n}));
}

// Pools ------------------------------------------------------------------------------------

void inferPool(InferContext& c, bool allowInts) {
  DataType t = c.inputDtype(0);
  c.check(t == DataType::kF32 || t == DataType::kF64 || t == DataType::kF16 || t == DataType::kBF16 ||
              (allowInts && isQuant8(t)),
          std::string("pooling does not take ") + dtypeName(t));
  const Shape& x = c.inputShape(0);
  int64_t r = spatialRank(c, x);
  if (r < 0) {
    for (size_t i = 0; i < c.numOutputs(); ++i)
      c.setOutput(i, i == 0 ? t : DataType::kI64, Shape::unknownRank());
    return;
  }
  Window w = readWindowOrFail(c, size_t(r), {}, true);
  std::vector<Dim> out{x[0], x[1]};
  for (Dim& d : forwardSpatial(c, x, w)) out.push_back(d);
  c.setOutput(0, t, Shape(out));
  if (c.numOutputs() > 1) c.setOutput(1, DataType::kI64, Shape(out));
}

void inferGlobalPool(InferContext& c) {
  requireFloat(c, 0, "X");
  const Shape& x = c.inputShape(0);
  int64_t r = spatialRank(c, x);
  if (r < 0) return c.setOutput(0, c.inputDtype(0), Shape::unknownRank());
  std::vector<Dim> out{x[0], x[1]};
  for (int64_t i = 0; i < r; ++i) out.emplace_back(1);
  c.setOutput(0, c.inputDtype(0), Shape(out));
}

void inferMaxUnpool(InferContext& c) {
  requireFloat(c, 0, "X");
  c.check(c.inputDtype(1) == DataType::kI64, "I must be i64");
  const Shape& x = c.inputShape(0);
  if (c.hasInput(2)) {
    c.check(c.inputDtype(2) == DataType::kI64, "output_shape must be i64");
    if (auto d = knownDims(c, 2)) {
      if (x.rankKnown()) c.check(d->size() == x.rank(), "output_shape must have one value per input dim");
      return c.setOutput(0, c.inputDtype(0), Shape(*d));
    }
    const Shape& os = c.inputShape(2);
    if (os.rankKnown() && os.rank() == 1 && os[0].isStatic())
      return c.setOutput(0, c.inputDtype(0), unknownDims(os[0].value()));
    return c.setOutput(0, c.inputDtype(0), x.rankKnown() ? unknownDims(int64_t(x.rank())) : Shape::unknownRank());
  }
  int64_t r = spatialRank(c, x);
  if (r < 0) return c.setOutput(0, c.inputDtype(0), Shape::unknownRank());
  Window w = readWindowOrFail(c, size_t(r), {}, true);
  std::vector<Dim> out{x[0], x[1]};
  for (size_t i = 0; i < size_t(r); ++i) {
    if (!x[2 + i].isStatic()) {
      out.emplace_back();
      continue;
    }
    int64_t o = (x[2 + i].value() - 1) * w.strides[i] + w.kernel[i] - w.pads[i] - w.pads[i + size_t(r)];
    c.check(o > 0, "output spatial dim " + std::to_string(i) + " would be " + std::to_string(o));
    out.emplace_back(o);
  }
  c.setOutput(0, c.inputDtype(0), Shape(out));
}

void inferMaxRoiPool(InferContext& c) {
  requireFloat(c, 0, "X");
  requireSameType(c, 0, 1);
  auto pooled = c.attrs().getInts("pooled_shape");
  c.check(pooled.size() == 2 && pooled[0] > 0 && pooled[1] > 0, "pooled_shape must be two positive values");
  const Shape& x = c.inputShape(0);
  const Shape& rois = c.inputShape(1);
  if (x.rankKnown()) c.check(x.rank() == 4, "X must be 4-D, got " + x.str());
  if (rois.rankKnown()) {
    c.check(rois.rank() == 2, "rois must be 2-D [num_rois, 5], got " + rois.str());
    if (rois[1].isStatic()) c.check(rois[1].value() == 5, "rois must be [num_rois, 5], got " + rois.str());
  }
  c.setOutput(0, c.inputDtype(0),
              Shape(std::vector<Dim>{rois.rankKnown() ? rois[0] : Dim(), x.rankKnown() ? x[1] : Dim(),
                                     Dim(pooled[0]), Dim(pooled[1])}));
}

void inferRoiAlign(InferContext& c) {
  requireFloat(c, 0, "X");
  requireSameType(c, 0, 1);
  c.check(c.inputDtype(2) == DataType::kI64, "batch_indices must be i64");
  const int64_t oh = c.attrs().getInt("output_height", 1), ow = c.attrs().getInt("output_width", 1);
  c.check(oh > 0 && ow > 0, "output_height and output_width must be positive");
  const std::string mode = c.attrs().getString("mode", "avg");
  c.check(mode == "avg" || mode == "max", "mode must be 'avg' or 'max', got '" + mode + "'");
  const std::string ctm = c.attrs().getString("coordinate_transformation_mode", "half_pixel");
  c.check(ctm == "half_pixel" || ctm == "output_half_pixel",
          "coordinate_transformation_mode must be half_pixel or output_half_pixel, got '" + ctm + "'");
  c.check(c.attrs().getInt("sampling_ratio", 0) >= 0, "sampling_ratio must be >= 0");
  const Shape& x = c.inputShape(0);
  const Shape& rois = c.inputShape(1);
  const Shape& bi = c.inputShape(2);
  if (x.rankKnown()) c.check(x.rank() == 4, "X must be 4-D, got " + x.str());
  Dim n;
  if (rois.rankKnown()) {
    c.check(rois.rank() == 2, "rois must be 2-D [num_rois, 4], got " + rois.str());
    if (rois[1].isStatic()) c.check(rois[1].value() == 4, "rois must be [num_rois, 4], got " + rois.str());
    n = rois[0];
  }
  if (bi.rankKnown()) {
    c.check(bi.rank() == 1, "batch_indices must be 1-D, got " + bi.str());
    if (n.isStatic() && bi[0].isStatic())
      c.check(n.value() == bi[0].value(), "rois and batch_indices disagree on num_rois");
    if (!n.isStatic()) n = bi[0].isStatic() ? bi[0] : n;
  }
  c.setOutput(0, c.inputDtype(0), Shape(std::vector<Dim>{n, x.rankKnown() ? x[1] : Dim(), Dim(oh), Dim(ow)}));
}

void inferDeformConv(InferContext& c) {
  requireFloat(c, 0, "X");
  requireSameType(c, 0, 1);
  requireSameType(c, 0, 2);
  requireSameType(c, 0, 3);
  requireSameType(c, 0, 4);
  c.check(c.attrs().getInt("offset_group", 1) >= 1, "offset_group must be >= 1");
  Shape s = convShape(c, 0, 1);
  if (s.rankKnown()) {
    c.check(s.rank() == 4, "DeformConv supports 2-D inputs [N,C,H,W] only, got " + c.inputShape(0).str());
    checkBias(c, 3, s[1]);
    const Shape& off = c.inputShape(2);
    if (off.rankKnown()) {
      c.check(off.rank() == s.rank(), "offset must be [N, offset_group*2*kH*kW, oH, oW], got " + off.str());
      for (size_t i = 2; i < s.rank(); ++i) {
        // The offset tensor pins the output extent when inference cannot compute it.
        if (s[i].isStatic() && off[i].isStatic())
          c.check(s[i].value() == off[i].value(), "offset " + off.str() + " does not match the output " + s.str());
        else if (!s[i].isStatic() && off[i].isStatic())
          s[i] = off[i];
      }
    }
  }
  c.setOutput(0, c.inputDtype(0), s);
}

void inferCol2Im(InferContext& c) {
  const Shape& x = c.inputShape(0);
  c.check(c.inputDtype(1) == DataType::kI64 && c.inputDtype(2) == DataType::kI64,
          "image_shape and block_shape must be i64");
  if (x.rankKnown()) c.check(x.rank() == 3, "input must be [N, C*prod(block_shape), L], got " + x.str());
  auto image = knownInts(c, 1);
  auto block = knownInts(c, 2);
  int64_t r = -1;
  if (image) r = int64_t(image->size());
  else if (block) r = int64_t(block->size());
  else if (c.inputShape(1).rankKnown() && c.inputShape(1).rank() == 1 && c.inputShape(1)[0].isStatic())
    r = c.inputShape(1)[0].value();
  if (r < 0) return c.setOutput(0, c.inputDtype(0), Shape::unknownRank());
  if (image && block) c.check(image->size() == block->size(), "image_shape and block_shape differ in length");
  std::vector<Dim> out{x.rankKnown() ? x[0] : Dim(), Dim()};
  if (block) {
    int64_t prod = 1;
    for (int64_t b : *block) {
      c.check(b > 0, "block_shape values must be positive");
      prod *= b;
    }
    if (x.rankKnown() && x[1].isStatic()) {
      c.check(x[1].value() % prod == 0, "input dim 1 (" + x[1].str() + ") is not divisible by prod(block_shape)");
      out[1] = Dim(x[1].value() / prod);
    }
  }
  for (int64_t i = 0; i < r; ++i) out.push_back(image ? Dim((*image)[size_t(i)]) : Dim());
  if (image && block && x.rankKnown() && x[2].isStatic()) {
    Window w = readWindowOrFail(c, size_t(r), *block, true);
    int64_t blocks = 1;
    for (size_t i = 0; i < size_t(r); ++i) {
      WindowDim o;
      std::string err = nn::forwardDim((*image)[i], w.kernel[i], w.strides[i], w.dilations[i], w.pads[i],
                                       w.pads[i + size_t(r)], AutoPad::kNotSet, false, &o);
      if (!err.empty()) c.fail(err);
      blocks *= o.out;
    }
    c.check(blocks == x[2].value(), "input has " + x[2].str() + " blocks, image_shape and block_shape give " +
                                        std::to_string(blocks));
  }
  c.setOutput(0, c.inputDtype(0), Shape(out));
}

// Quantization -----------------------------------------------------------------------------

bool isQuantType(DataType t) {
  switch (t) {
    case DataType::kU8: case DataType::kI8: case DataType::kU16: case DataType::kI16: case DataType::kU4:
    case DataType::kI4: case DataType::kF8E4M3FN: case DataType::kF8E4M3FNUZ: case DataType::kF8E5M2:
    case DataType::kF8E5M2FNUZ:
      return true;
    default: return false;
  }
}

// Checks the scale (input si) against x for per-tensor, per-axis or blocked quantization.
void checkQuantParams(const InferContext& c, size_t si) {
  const Shape& x = c.inputShape(0);
  const Shape& s = c.inputShape(si);
  const int64_t block = c.attrs().getInt("block_size", 0);
  c.check(block >= 0, "block_size must be >= 0");
  if (!s.rankKnown() || !x.rankKnown()) return;
  if (c.hasInput(si + 1)) {
    const Shape& z = c.inputShape(si + 1);
    if (z.isStatic() && s.isStatic())
      c.check(z == s || (z.numel() == 1 && s.numel() == 1),
              "zero point " + z.str() + " must have the shape of the scale " + s.str());
  }
  const int64_t n = s.numel();
  if (s.rank() == 0 || n == 1) return;  // per tensor
  const int64_t axis = normalizeAxis(c.attrs().getInt("axis", 1), int64_t(x.rank()), c);
  if (block == 0) {
    c.check(s.rank() == 1, "per-axis scale must be 1-D, got " + s.str());
    if (s[0].isStatic() && x[size_t(axis)].isStatic())
      c.check(s[0].value() == x[size_t(axis)].value(),
              "scale has " + s[0].str() + " values, axis " + std::to_string(axis) + " of " + x.str() + " has " +
                  x[size_t(axis)].str());
    return;
  }
  c.check(s.rank() == x.rank(), "blocked scale " + s.str() + " must have the rank of x " + x.str());
  for (size_t i = 0; i < x.rank(); ++i) {
    if (!s[i].isStatic() || !x[i].isStatic()) continue;
    int64_t want = int64_t(i) == axis ? nn::ceilDiv(x[i].value(), block) : x[i].value();
    c.check(s[i].value() == want, "blocked scale " + s.str() + " does not fit x " + x.str() + " with block_size " +
                                      std::to_string(block));
  }
}

void inferQuantizeLinear(InferContext& c) {
  DataType xt = c.inputDtype(0);
  c.check(xt == DataType::kF32 || xt == DataType::kF16 || xt == DataType::kBF16 || xt == DataType::kI32 ||
              xt == DataType::kF64,
          std::string("x must be f32, f16, bf16 or i32, got ") + dtypeName(xt));
  requireFloat(c, 1, "y_scale");
  DataType out = DataType::kU8;
  const int64_t od = c.attrs().getInt("output_dtype", 0);
  if (od != 0) {
    c.check(isValidOnnxType(int32_t(od)) && isQuantType(DataType(od)), "output_dtype " + std::to_string(od) +
                                                                            " is not a quantized type");
    out = DataType(od);
  }
  if (c.hasInput(2)) {
    DataType z = c.inputDtype(2);
    c.check(od == 0 || DataType(od) == z, "output_dtype and y_zero_point's type differ");
    out = z;
  }
  c.check(isQuantType(out), std::string("cannot quantize to ") + dtypeName(out));
  checkQuantParams(c, 1);
  c.setOutput(0, out, c.inputShape(0));
}

void inferDequantizeLinear(InferContext& c) {
  DataType xt = c.inputDtype(0);
  c.check(isQuantType(xt) || xt == DataType::kI32, std::string("cannot dequantize ") + dtypeName(xt));
  requireFloat(c, 1, "x_scale");
  if (c.hasInput(2)) requireSameType(c, 0, 2);
  checkQuantParams(c, 1);
  c.setOutput(0, c.inputDtype(1), c.inputShape(0));
}

void inferDynamicQuantizeLinear(InferContext& c) {
  c.check(c.inputDtype(0) == DataType::kF32, std::string("x must be f32, got ") + dtypeName(c.inputDtype(0)));
  c.setOutput(0, DataType::kU8, c.inputShape(0));
  c.setOutput(1, DataType::kF32, Shape());
  c.setOutput(2, DataType::kU8, Shape());
}

}  // namespace

void registerNnOps(OpRegistry& r) {
  const uint32_t lin = kTraitLinear, qlin = kTraitLinear | kTraitQuantization;
  r.add({.name = "Conv", .minInputs = 2, .maxInputs = 3, .traits = lin, .infer = inferConv,
         .summary = "N-d convolution with groups, dilations, strides, pads and optional bias"});
  r.add({.name = "ConvTranspose", .minInputs = 2, .maxInputs = 3, .traits = lin, .infer = inferConvTranspose,
         .summary = "transposed (fractionally strided) convolution"});
  r.add({.name = "ConvInteger", .minInputs = 2, .maxInputs = 4, .traits = qlin, .infer = inferConvInteger,
         .summary = "integer convolution with zero points, i32 result"});
  r.add({.name = "QLinearConv", .minInputs = 8, .maxInputs = 9, .traits = qlin, .infer = inferQLinearConv,
         .summary = "quantized convolution: requantized to y_scale/y_zero_point"});
  r.add({.name = "DeformConv", .minInputs = 3, .maxInputs = 5, .traits = lin, .infer = inferDeformConv,
         .summary = "deformable 2-D convolution with learned offsets and optional mask"});
  r.add({.name = "MatMul", .minInputs = 2, .maxInputs = 2, .traits = lin, .infer = inferMatMul,
         .summary = "numpy matmul: batch broadcast, 1-D operands promoted and squeezed"});
  r.add({.name = "MatMulInteger", .minInputs = 2, .maxInputs = 4, .traits = qlin, .infer = inferMatMulInteger,
         .summary = "integer matmul with zero points, i32 result"});
  r.add({.name = "QLinearMatMul", .minInputs = 8, .maxInputs = 8, .traits = qlin, .infer = inferQLinearMatMul,
         .summary = "quantized matmul: requantized to y_scale/y_zero_point"});
  r.add({.name = "Gemm", .minInputs = 2, .maxInputs = 3, .traits = lin, .infer = inferGemm,
         .summary = "alpha * A' * B' + beta * C, C broadcast to [M,N]"});
  r.add({.name = "AveragePool", .minInputs = 1, .maxInputs = 1, .infer = [](InferContext& c) { inferPool(c, false); },
         .summary = "average over sliding windows"});
  r.add({.name = "MaxPool", .minInputs = 1, .maxInputs = 1, .minOutputs = 1, .maxOutputs = 2,
         .infer = [](InferContext& c) { inferPool(c, true); },
         .summary = "max over sliding windows, optional flat argmax indices"});
  r.add({.name = "LpPool", .minInputs = 1, .maxInputs = 1, .infer = [](InferContext& c) { inferPool(c, false); },
         .summary = "p-norm over sliding windows"});
  r.add({.name = "GlobalAveragePool", .minInputs = 1, .maxInputs = 1, .traits = kTraitReduction,
         .infer = inferGlobalPool, .summary = "mean over all spatial dims"});
  r.add({.name = "GlobalMaxPool", .minInputs = 1, .maxInputs = 1, .traits = kTraitReduction, .infer = inferGlobalPool,
         .summary = "max over all spatial dims"});
  r.add({.name = "GlobalLpPool", .minInputs = 1, .maxInputs = 1, .traits = kTraitReduction, .infer = inferGlobalPool,
         .summary = "p-norm over all spatial dims"});
  r.add({.name = "MaxUnpool", .minInputs = 2, .maxInputs = 3, .traits = kTraitMovement, .infer = inferMaxUnpool,
         .summary = "scatters values to MaxPool's indices, zeros elsewhere"});
  r.add({.name = "MaxRoiPool", .minInputs = 2, .maxInputs = 2, .infer = inferMaxRoiPool,
         .summary = "max pooling over regions of interest (Caffe/Fast R-CNN)"});
  r.add({.name = "RoiAlign", .minInputs = 3, .maxInputs = 3, .infer = inferRoiAlign,
         .summary = "bilinear-sampled avg/max pooling over regions of interest"});
  r.add({.name = "Col2Im", .minInputs = 3, .maxInputs = 3, .traits = kTraitMovement, .infer = inferCol2Im,
         .summary = "sums sliding-window columns back into an image"});
  r.add({.name = "QuantizeLinear", .minInputs = 2, .maxInputs = 3, .traits = kTraitQuantization,
         .infer = inferQuantizeLinear, .summary = "saturate(round(x / scale) + zero_point), per tensor/axis/block"});
  r.add({.name = "DequantizeLinear", .minInputs = 2, .maxInputs = 3, .traits = kTraitQuantization,
         .infer = inferDequantizeLinear, .summary = "(x - zero_point) * scale, per tensor/axis/block"});
  r.add({.name = "DynamicQuantizeLinear", .minInputs = 1, .maxInputs = 1, .minOutputs = 3, .maxOutputs = 3,
         .traits = kTraitQuantization, .infer = inferDynamicQuantizeLinear,
         .summary = "u8 quantization with scale and zero point computed from the data"});
}

}  // namespace anvil::ir::ops
