// Reference kernels of (de)quantization: QuantizeLinear and DequantizeLinear (per tensor,
// per axis and blocked; integer, 4-bit and float8 types) and DynamicQuantizeLinear.
// Arithmetic is in float, rounding half to even, as the ONNX reference does.
#include <cmath>

#include "cpu/kernels/nn_util.h"

namespace anvil::cpu::kernels::nn {

namespace {

bool isF8(DataType t) {
  return t == DataType::kF8E4M3FN || t == DataType::kF8E4M3FNUZ || t == DataType::kF8E5M2 ||
         t == DataType::kF8E5M2FNUZ;
}

// Maps an element of x to the index of its scale / zero point.
struct QuantIndex {
  enum class Mode { kTensor, kAxis, kBlock } mode = Mode::kTensor;
  int64_t axisLen = 1, inner = 1, block = 0, blocks = 1;

  int64_t operator()(int64_t i) const {
    if (mode == Mode::kTensor) return 0;
    const int64_t a = (i / inner) % axisLen;
    if (mode == Mode::kAxis) return a;
    const int64_t outer = i / (inner * axisLen), in = i % inner;
    return (outer * blocks + a / block) * inner + in;
  }
};

QuantIndex quantIndex(const KernelContext& ctx, const Tensor& x, const Tensor& scale, size_t zpIdx) {
  QuantIndex q;
  const int64_t block = ctx.attrs().getInt("block_size", 0);
  ctx.check(block >= 0, "block_size must be >= 0");
  if (ctx.hasInput(zpIdx))
    ctx.check(ctx.input(zpIdx).dims() == scale.dims() ||
                  (ctx.input(zpIdx).numel() == 1 && scale.numel() == 1),
              "zero point " + ctx.input(zpIdx).summary() + " must have the shape of the scale " + scale.summary());
  if (scale.numel() == 1 && (scale.rank() <= 1 || block == 0)) return q;
  const int64_t rank = int64_t(x.rank());
  int64_t axis = ctx.attrs().getInt("axis", 1);
  ctx.check(axis >= -rank && axis < rank, "axis " + std::to_string(axis) + " is out of range for rank " +
                                              std::to_string(rank));
  if (axis < 0) axis += rank;
  q.axisLen = x.dim(size_t(axis));
  for (int64_t i = axis + 1; i < rank; ++i) q.inner *= x.dim(size_t(i));
  if (block == 0) {
    ctx.check(scale.rank() == 1 && scale.dim(0) == q.axisLen,
              "per-axis scale must be [" + std::to_string(q.axisLen) + "], got " + scale.summary());
    q.mode = QuantIndex::Mode::kAxis;
    return q;
  }
  q.mode = QuantIndex::Mode::kBlock;
  q.block = block;
  q.blocks = ir::nn::ceilDiv(q.axisLen, block);
  bool ok = scale.rank() == x.rank();
  for (int64_t i = 0; ok && i < rank; ++i)
    ok = scale.dim(size_t(i)) == (i == axis ? q.blocks : x.dim(size_t(i)));
  ctx.check(ok, "blocked scale " + scale.summary() + " does not fit x " + x.summary() + " with block_size " +
                    std::to_string(block));
  return q;
}

std::vector<float> floatsOf(const Tensor& t) {
  std::vector<float> v(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[size_t(i)] = float(t.getDouble(i));
  return v;
}

void quantizeKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  ctx.check(ir::isFloat(scale.dtype()) && !isF8(scale.dtype()), "y_scale must be f32, f16 or bf16");
  DataType outType = DataType::kU8;
  if (int64_t od = ctx.attrs().getInt("output_dtype", 0); od != 0) outType = DataType(od);
  if (ctx.hasInput(2)) outType = ctx.input(2).dtype();
  const bool saturate = ctx.attrs().getInt("saturate", 1) != 0;
  const QuantIndex qi = quantIndex(ctx, x, scale, 2);
  const std::vector<float> sc = floatsOf(scale);
  std::vector<float> zp(sc.size(), 0.0f);
  if (ctx.hasInput(2)) zp = floatsOf(ctx.input(2));
  Tensor& out = ctx.allocOutput(0, outType, x.dims());
  if (isF8(outType)) {
    uint8_t* y = out.data<uint8_t>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int64_t k = qi(i);
      y[i] = ir::floatToF8(float(x.getDouble(i)) / sc[size_t(k)] + zp[size_t(k)], outType, saturate);
    }
    return;
  }
  int64_t lo, hi;
  intRange(outType, &lo, &hi);
  ctx.check(hi > lo && outType != DataType::kI32, std::string("cannot quantize to ") + ir::dtypeName(outType));
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t k = qi(i);
    const float v = float(x.getDouble(i)) / sc[size_t(k)];
    setIntElement(out, i, roundSaturate(double(std::nearbyint(v)) + double(zp[size_t(k)]), lo, hi));
  }
}

void dequantizeKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  ctx.check(ir::isFloat(scale.dtype()) && !isF8(scale.dtype()), "x_scale must be f32, f16 or bf16");
  if (ctx.hasInput(2))
    ctx.check(ctx.input(2).dtype() == x.dtype(), "x_zero_point must have the type of x");
  const QuantIndex qi = quantIndex(ctx, x, scale, 2);
  const std::vector<float> sc = floatsOf(scale);
  std::vector<float> zp(sc.size(), 0.0f);
  if (ctx.hasInput(2)) zp = floatsOf(ctx.input(2));
  Tensor& out = ctx.allocOutput(0, scale.dtype(), x.dims());
  const bool wide = x.dtype() == DataType::kI32;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t k = qi(i);
    // i32 data is exact only in integer arithmetic before the scale.
    const float d = wide ? float(x.getInt(i) - int64_t(zp[size_t(k)])) : float(x.getDouble(i)) - zp[size_t(k)];
    out.setDouble(i, double(d * sc[size_t(k)]));
  }
}

void dynamicQuantizeKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ctx.check(x.dtype() == DataType::kF32, "x must be f32");
  const float* xp = x.data<float>();
  float mx = 0.0f, mn = 0.0f;
  for (int64_t i = 0; i < x.numel(); ++i) {
    mx = std::max(mx, xp[i]);
    mn = std::min(mn, xp[i]);
  }
  const float scale = (mx == mn ? 1.0f : (mx - mn)) / 255.0f;
  const float zpf = std::clamp(0.0f - mn / scale, 0.0f, 255.0f);
  const float zp = std::nearbyint(zpf);
  Tensor& y = ctx.allocOutput(0, DataType::kU8, x.dims());
  uint8_t* yp = y.data<uint8_t>();
  for (int64_t i = 0; i < x.numel(); ++i)
    yp[i] = uint8_t(roundSaturate(double(std::nearbyint(xp[i] / scale)) + double(zp), 0, 255));
  ctx.allocOutput(1, DataType::kF32, {}).data<float>()[0] = scale;
  ctx.allocOutput(2, DataType::kU8, {}).data<uint8_t>()[0] = uint8_t(zp);
}

}  // namespace

void registerQuantKernels(KernelRegistry& r) {
  r.add("QuantizeLinear", quantizeKernel);
  r.add("DequantizeLinear", dequantizeKernel);
  r.add("DynamicQuantizeLinear", dynamicQuantizeKernel);
}

}  // namespace anvil::cpu::kernels::nn
