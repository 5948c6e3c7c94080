// Reference kernels of the Q/DQ import's quantized ops (ir/ops/anvil_quant.cpp).
// anvil.QLinearAdd: onnxruntime's QLinearAdd
// as its x86 AVX2 and AVX-512 hosts run it (MLAS's default "float multiply" method), so
// that a Q/DQ model's quantized Adds give its integers:
//   r_a = s_a / s_y, r_b = s_b / s_y, k = float(z_y) - (r_a * z_a + r_b * z_b)    (f32)
//   y = saturate(round_half_even(fma(q_a, r_a, fma(q_b, r_b, k))))
// with q_a, q_b the stored integers (u8 or s8). Measured on resnet18 quantized with u8
// activations (tests/models/export_qdq.py): all 952,320 values of its 8 Adds as
// onnxruntime 1.32 computes them, where the spec's float path (dequantize, add, divide by
// s_y) differs in one. onnxruntime's SSE2-only hosts use another formula (a fixed-point
// one): there its results may differ by a step where a value lies within an ulp of a half.
// anvil.QLinearGlobalAveragePool: onnxruntime's (MLAS) integer form, per (n, c):
//   acc = sum(q) - z_x * HW (int32), y = saturate(round_half_even(float(acc) * m) + z_y),
//   m = s_x / (s_y * float(HW)) in f32,
// where the spec's path averages the dequantized values in f32 and divides by s_y.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/kernels/families.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

namespace {

struct QAddParams {
  float ra, rb, k;
  int32_t lo, hi;
};

template <typename T>
__attribute__((target("fma"))) void addFma(const T* a, const T* b, T* y, int64_t n, const QAddParams& p) {
  for (int64_t i = 0; i < n; ++i) {
    const float t = __builtin_fmaf(float(a[i]), p.ra, __builtin_fmaf(float(b[i]), p.rb, p.k));
    y[i] = T(std::clamp(int32_t(std::nearbyint(t)), p.lo, p.hi));
  }
}

template <typename T>
void addPortable(const T* a, const T* b, T* y, int64_t n, const QAddParams& p) {
  for (int64_t i = 0; i < n; ++i) {
    const float t = std::fmaf(float(a[i]), p.ra, std::fmaf(float(b[i]), p.rb, p.k));  // libm: exact fma
    y[i] = T(std::clamp(int32_t(std::nearbyint(t)), p.lo, p.hi));
  }
}

template <typename T>
void run(const Tensor& a, const Tensor& b, Tensor& y, const QAddParams& p) {
  static const bool fma = __builtin_cpu_supports("fma");
  if (fma)
    addFma(a.data<T>(), b.data<T>(), y.data<T>(), a.numel(), p);
  else
    addPortable(a.data<T>(), b.data<T>(), y.data<T>(), a.numel(), p);
}

void qlinearAddKernel(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  ctx.check(a.dtype() == b.dtype() && (a.dtype() == DataType::kU8 || a.dtype() == DataType::kI8),
            "QLinearAdd takes two uint8 or two int8 tensors");
  ctx.check(a.dims() == b.dims(), "QLinearAdd's inputs must have one shape");
  const ir::Attributes& at = ctx.attrs();
  const float sa = at.getFloat("a_scale", 0.0f), sb = at.getFloat("b_scale", 0.0f), sy = at.getFloat("y_scale", 0.0f);
  ctx.check(sa > 0.0f && sb > 0.0f && sy > 0.0f, "QLinearAdd's scales must be > 0");
  QAddParams p;
  p.ra = sa / sy;
  p.rb = sb / sy;
  const float za = float(at.getInt("a_zero_point", 0)), zb = float(at.getInt("b_zero_point", 0));
  const float pa = p.ra * za, pb = p.rb * zb;  // separate roundings (no contraction into an fma)
  p.k = float(at.getInt("y_zero_point", 0)) - (pa + pb);
  const bool u8 = a.dtype() == DataType::kU8;
  p.lo = u8 ? 0 : -128;
  p.hi = u8 ? 255 : 127;
  Tensor& y = ctx.allocOutput(0, a.dtype(), a.dims());
  if (u8)
    run<uint8_t>(a, b, y, p);
  else
    run<int8_t>(a, b, y, p);
}

template <typename T>
void gap(const T* x, T* y, int64_t planes, int64_t hw, int32_t zx, float m, int32_t zy, int32_t lo, int32_t hi) {
  for (int64_t p = 0; p < planes; ++p) {
    int64_t acc = -int64_t(zx) * hw;
    for (int64_t i = 0; i < hw; ++i) acc += x[p * hw + i];
    const float t = float(int32_t(acc)) * m;
    y[p] = T(std::clamp(int32_t(std::nearbyint(t)) + zy, lo, hi));
  }
}

void qlinearGapKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ctx.check((x.dtype() == DataType::kU8 || x.dtype() == DataType::kI8) && x.rank() >= 3,
            "QLinearGlobalAveragePool takes a uint8 or int8 [N, C, spatial...] tensor");
  const ir::Attributes& at = ctx.attrs();
  const float sx = at.getFloat("x_scale", 0.0f), sy = at.getFloat("y_scale", 0.0f);
  ctx.check(sx > 0.0f && sy > 0.0f, "QLinearGlobalAveragePool's scales must be > 0");
  int64_t hw = 1;
  for (size_t d = 2; d < x.rank(); ++d) hw *= x.dim(d);
  ctx.check(hw > 0 && hw < (int64_t(1) << 24), "QLinearGlobalAveragePool: the image must hold 1 .. 2^24 - 1 values");
  const float m = sx / (sy * float(hw));
  std::vector<int64_t> od(x.rank(), 1);
  od[0] = x.dim(0);
  od[1] = x.dim(1);
  Tensor& y = ctx.allocOutput(0, x.dtype(), od);
  const int32_t zx = int32_t(at.getInt("x_zero_point", 0)), zy = int32_t(at.getInt("y_zero_point", 0));
  if (x.dtype() == DataType::kU8)
    gap(x.data<uint8_t>(), y.data<uint8_t>(), x.dim(0) * x.dim(1), hw, zx, m, zy, 0, 255);
  else
    gap(x.data<int8_t>(), y.data<int8_t>(), x.dim(0) * x.dim(1), hw, zx, m, zy, -128, 127);
}

}  // namespace

void registerAnvilQuantKernels(KernelRegistry& r) {
  r.add("QLinearAdd", "anvil", qlinearAddKernel);
  r.add("QLinearGlobalAveragePool", "anvil", qlinearGapKernel);
}

}  // namespace anvil::cpu::kernels
