// Native ConvTranspose (f32, 2-D): the decoders of segmentation nets, GAN generators and
// pose heads. Y = col2im(W^T X) + B per image and group, the product on the packed GEMM
// kernels (portable, AVX2, AVX-512 families):
//  - prepare(): the constant filter W [C, M/group, kH, kW] as the A operand of
//    cols[(m, kh, kw), pixel] = sum_c W[c, m, kh, kw] X[c, pixel], packed per block of
//    output channels (rows of a block: its channels x kH x kW).
//  - run(): work items are (image, group, channel block), each owned by one task: the
//    block's output planes start at the bias, then for each band of input rows (the cols
//    of a band within kColsFloats, in the task's workspace) the GEMM of the band's pixels
//    and the scatter-add of every (m, kh, kw) row into the output rows it reaches. Bands
//    and blocks depend on the shapes alone: the same sums in the same order for any
//    thread count.
// Any strides, dilations, pads, output_padding, output_shape, auto_pad and group; a bias
// read at run time. 1-D and 3-D ConvTranspose stay with the reference kernel.
#include <algorithm>
#include <cstring>
#include <string>

#include "cpu/tactics/gemm_kernels.h"
#include "cpu/tactics/task_split.h"
#include "ir/ops/nn_util.h"
#include "runtime/kernel.h"

// The scatter-add loops run over arbitrary extents (see native_ops_movement.cpp).
#pragma GCC optimize("vect-cost-model=dynamic")

namespace anvil::cpu::tactics {

namespace {

using runtime::Kernel;
using runtime::Kernels;
using runtime::PrepareInfo;
using runtime::Prepared;
using runtime::StepArgs;
using runtime::TensorView;

// The cols of one band: about 256 KiB (more where one input row needs more), so that the
// band's GEMM output is still in L2 when the scatter reads it.
constexpr int64_t kColsFloats = 64 * 1024;
// Rows of a channel block: the GEMM's M. At least this many (whole channels).
constexpr int64_t kBlockRows = 128;

struct CtParams {
  GemmIsa isa = GemmIsa::kPortable4x8;
  int32_t tasks = 1;  // workspace slots
  int64_t C = 0, Mg = 0, group = 1, kH = 1, kW = 1;
  int64_t sH = 1, sW = 1, dH = 1, dW = 1;
  int64_t outPadH = 0, outPadW = 0;
  int64_t padT = 0, padL = 0, padB = 0, padR = 0;  // as given (auto_pad NOTSET)
  int64_t outShapeH = -1, outShapeW = -1;          // output_shape, -1: none
  int32_t autoPad = 0;                             // ir::nn::AutoPad
  int32_t reserved = 0;
  int64_t blockChannels = 1;  // output channels of a block (the last one may be short)
  int64_t blockStride = 0;    // floats of one block's packed A (every block padded alike)
  int64_t colsFloats = 0;     // a task's band buffer: kColsFloats, or one input row's cols
};

// Output extent and leading pad of one spatial dim, as shape inference computes them.
ir::nn::WindowDim dimOf(const CtParams& p, bool h, int64_t in) {
  ir::nn::WindowDim o;
  ir::nn::transposeDim(in, h ? p.kH : p.kW, h ? p.sH : p.sW, h ? p.dH : p.dW, h ? p.outPadH : p.outPadW,
                       h ? p.padT : p.padL, h ? p.padB : p.padR, ir::nn::AutoPad(p.autoPad),
                       h ? p.outShapeH : p.outShapeW, &o);
  return o;
}

bool readAttrs(const ir::Node& n, const std::vector<int64_t>& wd, CtParams* p) {
  if (wd.size() != 4) return false;
  ir::nn::Window win;
  if (!ir::nn::readWindow(n.attrs(), 2, {wd[2], wd[3]}, &win).empty()) return false;
  p->group = n.attrs().getInt("group", 1);
  if (p->group < 1 || wd[0] % p->group != 0) return false;
  p->C = wd[0];
  p->Mg = wd[1];
  p->kH = win.kernel[0], p->kW = win.kernel[1];
  p->sH = win.strides[0], p->sW = win.strides[1];
  p->dH = win.dilations[0], p->dW = win.dilations[1];
  p->padT = win.pads[0], p->padL = win.pads[1], p->padB = win.pads[2], p->padR = win.pads[3];
  p->autoPad = int32_t(win.autoPad);
  const std::vector<int64_t> op = n.attrs().getInts("output_padding", {0, 0});
  if (op.size() != 2) return false;
  p->outPadH = op[0], p->outPadW = op[1];
  std::vector<int64_t> os = n.attrs().getInts("output_shape");
  if (os.size() == 4) os.erase(os.begin(), os.begin() + 2);
  if (!os.empty() && os.size() != 2) return false;
  if (os.size() == 2) p->outShapeH = os[0], p->outShapeW = os[1];
  return true;
}

bool supportsConvTranspose(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || in[0].dtype != DataType::kF32 || in[1].dtype != DataType::kF32) return false;
  if (!in[0].shape.rankKnown() || in[0].shape.rank() != 4 || !in[1].shape.isStatic()) return false;
  const ir::Value* w = n.input(1);
  if (!w || !w->initializer()) return false;
  if (in.size() > 2 && in[2].dtype != DataType::kUndefined &&
      (in[2].dtype != DataType::kF32 || !in[2].shape.rankKnown() || in[2].shape.rank() != 1))
    return false;
  CtParams p;
  if (!readAttrs(n, in[1].shape.extents(), &p)) return false;
  if (!in[0].shape[1].isStatic() || in[0].shape[1].value() != p.C) return false;
  return true;
}

// Floats of one task's slot: the GEMM's B block, then the cols of a band.
int64_t slotFloats(const GemmConfig& c, const CtParams& p) {
  return roundUp(gemmPackedASlotFloats(c, 0), 16) + roundUp(p.colsFloats, 16);
}
int64_t rowsOf(const CtParams& p) { return p.blockChannels * p.kH * p.kW; }

void prepareConvTranspose(GemmIsa isa, const PrepareInfo& info, Prepared* out) {
  const ir::Node& n = *info.node;
  const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr;
  ANVIL_CHECK(w != nullptr, ErrorCode::kInternal, n.label(), ": the filter must be an initializer");
  CtParams p;
  ANVIL_CHECK(readAttrs(n, w->dims(), &p), ErrorCode::kInvalidModel, n.label(), ": ConvTranspose attributes");
  p.isa = isa;
  p.tasks = preparedSlots(info);
  const GemmConfig& c = gemmConfig(isa);
  const int64_t khw = p.kH * p.kW, Cg = p.C / p.group;
  p.blockChannels = std::min(p.Mg, std::max<int64_t>(1, ceilDiv(kBlockRows, khw)));
  const int64_t blocks = ceilDiv(p.Mg, p.blockChannels), rows = rowsOf(p);
  p.blockStride = roundUp(packedAFloats(c, rows, Cg), 16);
  const ir::Shape& xs = info.maxTypes[0].shape;
  const int64_t maxW = xs.rankKnown() && xs.rank() == 4 && xs[3].isStatic() ? xs[3].value() : 0;
  p.colsFloats = std::max(kColsFloats, rows * maxW);
  // Per group and block: A[(m, kh, kw), c] = W[g Cg + c, m, kh, kw] (row stride 1 in W's
  // flattened [Cg, Mg kH kW], column stride Mg kH kW).
  std::string blob(size_t(p.group * blocks * p.blockStride) * sizeof(float), '\0');
  auto* dst = reinterpret_cast<float*>(blob.data());
  const float* wf = w->data<float>();
  const int64_t ldw = p.Mg * khw;
  for (int64_t g = 0; g < p.group; ++g)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t m0 = b * p.blockChannels, mb = std::min(p.blockChannels, p.Mg - m0);
      const StridedMatrix A{wf + g * Cg * ldw + m0 * khw, 1, ldw};
      packAPanels(c, mb * khw, Cg, A, 1.0f, 0, ceilDiv(mb * khw, c.mr), dst + (g * blocks + b) * p.blockStride);
    }
  out->blobs.push_back(std::move(blob));
  out->packedInputs.push_back(1);
  out->workspaceBytes = uint64_t(p.tasks * slotFloats(c, p)) * sizeof(float);
  out->setParams(p);
}

void runConvTranspose(const StepArgs& a) {
  const CtParams& p = a.paramsAs<CtParams>();
  const GemmConfig& c = gemmConfig(p.isa);
  const TensorView& X = a.in(0);
  TensorView& Y = a.out(0);
  if (X.rank != 4 || X.dims[1] != p.C) a.fail("X must be [N, C, H, W] with the filter's C");
  const int64_t N = X.dims[0], H = X.dims[2], W = X.dims[3], M = p.Mg * p.group, Cg = p.C / p.group;
  const ir::nn::WindowDim oh = dimOf(p, true, H), ow = dimOf(p, false, W);
  if (Y.rank != 4 || Y.dims[0] != N || Y.dims[1] != M || Y.dims[2] != oh.out || Y.dims[3] != ow.out)
    a.fail("Y's extents differ from the ConvTranspose's");
  if (Y.numel() == 0) return;
  const float* bias = nullptr;
  if (a.hasInput(2)) {
    if (a.in(2).numel() != M) a.fail("B must have one value per output channel");
    bias = a.in(2).as<const float>();
  }
  const int64_t OH = oh.out, OW = ow.out, pT = oh.padBegin, pL = ow.padBegin;
  const int64_t khw = p.kH * p.kW, rows = rowsOf(p), blocks = ceilDiv(p.Mg, p.blockChannels);
  // Input rows per band: the cols of a band hold rows x (band x W) floats.
  if (rows * W > p.colsFloats) a.fail("X is wider than the profile's (outside the profile?)");
  const int64_t band = std::clamp<int64_t>(p.colsFloats / (rows * std::max<int64_t>(W, 1)), 1, std::max<int64_t>(H, 1));
  const int64_t slot = slotFloats(c, p);
  const int T = std::max(1, std::min(p.tasks, a.executor ? a.executor->threads() : 1));
  if (uint64_t(T * slot) * sizeof(float) > a.workspaceBytes) a.fail("the workspace is smaller than prepared");
  float* ws = static_cast<float*>(a.workspace);
  const float* xp = X.as<const float>();
  const float* ap = a.blobs[0].as<float>();
  float* yp = Y.as<float>();
  const int64_t items = N * p.group * blocks, n = std::min<int64_t>(T, items);

  // For each kernel column kw, the input columns [wLo, wHi) whose output column
  // w sW - pL + kw dW lies in [0, OW).
  auto colRange = [&](int64_t kw, int64_t* lo, int64_t* hi) {
    const int64_t off = kw * p.dW - pL;  // ow = w sW + off
    *lo = std::max<int64_t>(0, ir::nn::ceilDiv(-off, p.sW));
    *hi = std::min<int64_t>(W, ir::nn::floorDiv(OW - 1 - off, p.sW) + 1);
  };
  auto body = [&](int64_t task) {
    float* bslot = ws + task * slot;
    float* cols = bslot + roundUp(gemmPackedASlotFloats(c, 0), 16);
    for (int64_t it = rangeBegin(items, task, n); it < rangeBegin(items, task + 1, n); ++it) {
      const int64_t img = it / (p.group * blocks), g = it / blocks % p.group, b = it % blocks;
      const int64_t m0 = b * p.blockChannels, mb = std::min(p.blockChannels, p.Mg - m0), r = mb * khw;
      float* yBlock = yp + (img * M + g * p.Mg + m0) * OH * OW;
      for (int64_t m = 0; m < mb; ++m)
        std::fill_n(yBlock + m * OH * OW, OH * OW, bias ? bias[g * p.Mg + m0 + m] : 0.0f);
      const float* xg = xp + (img * p.C + g * Cg) * H * W;
      const float* aBlock = ap + (g * blocks + b) * p.blockStride;
      for (int64_t h0 = 0; h0 < H; h0 += band) {
        const int64_t hb = std::min(band, H - h0), cw = hb * W;
        const StridedBPacker B(StridedMatrix{xg + h0 * W, H * W, 1});
        gemmPackedA(c, r, Cg, aBlock, B, 0, cw, cols, cw, bslot, nullptr);
        for (int64_t m = 0; m < mb; ++m)
          for (int64_t kh = 0; kh < p.kH; ++kh)
            for (int64_t kw = 0; kw < p.kW; ++kw) {
              const float* crow = cols + (m * khw + kh * p.kW + kw) * cw;
              int64_t wLo, wHi;
              colRange(kw, &wLo, &wHi);
              if (wLo >= wHi) continue;
              const int64_t off = kw * p.dW - pL;
              for (int64_t h = h0; h < h0 + hb; ++h) {
                const int64_t y = h * p.sH - pT + kh * p.dH;
                if (y < 0 || y >= OH) continue;
                float* __restrict yr = yBlock + (m * OH + y) * OW;
                const float* __restrict cr = crow + (h - h0) * W;
                if (p.sW == 1) {
                  for (int64_t w = wLo; w < wHi; ++w) yr[w + off] += cr[w];
                } else {
                  for (int64_t w = wLo; w < wHi; ++w) yr[w * p.sW + off] += cr[w];
                }
              }
            }
      }
    }
  };
  if (n <= 1) body(0);
  else a.executor->parallelFor(n, body);
}

Kernel makeKernel(const char* name, GemmIsa isa, std::vector<std::string> req) {
  Kernel k;
  k.name = name;
  k.version = 1;
  k.op = "ConvTranspose";
  k.precision = DataType::kF32;
  k.requirements = std::move(req);
  k.supports = supportsConvTranspose;
  k.prepare = [isa](const PrepareInfo& i, Prepared* o) { prepareConvTranspose(isa, i, o); };
  k.run = runConvTranspose;
  return k;
}

}  // namespace

}  // namespace anvil::cpu::tactics

namespace anvil::runtime {

void registerNativeConvTransposeKernels(Kernels& k) {
  using namespace anvil::cpu::tactics;
  k.add(makeKernel("f32_conv_transpose_gemm", GemmIsa::kPortable4x8, {}));
  k.add(makeKernel("f32_conv_transpose_gemm__avx2", GemmIsa::kAvx2_6x16, {"avx2", "fma"}));
  k.add(makeKernel("f32_conv_transpose_gemm__avx512", GemmIsa::kAvx512_14x32, {"avx512f", "avx2", "fma"}));
}

}  // namespace anvil::runtime
