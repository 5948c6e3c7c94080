// The shared conditions of the INT8 kernel families (see int8_support.h).
#include "cpu/tactics/int8_support.h"

#include <cmath>
#include <vector>

namespace anvil::cpu::tactics {

bool perTensorQuant(const ir::Value* v, float* scale, int32_t* zp) {
  if (!v || !v->quantization() || !v->quantization()->perTensor()) return false;
  const ir::Quantization& q = *v->quantization();
  if (q.scale.dtype() != DataType::kF32 || q.scale.numel() != 1 || q.scale.rank() != 0) return false;
  const float s = q.scale.data<float>()[0];
  if (!(s > 0.0f) || !std::isfinite(s)) return false;
  int32_t z = 0;
  if (q.zeroPoint.defined()) {
    if (q.zeroPoint.dtype() != DataType::kU8 || q.zeroPoint.numel() != 1) return false;
    z = q.zeroPoint.data<uint8_t>()[0];
  }
  if (scale) *scale = s;
  if (zp) *zp = z;
  return true;
}

bool weightQuant(const ir::Node& n, int64_t featureAxis, int64_t N, const float** scales) {
  *scales = nullptr;
  const ir::Value* w = n.input(1);
  if (!w || !w->quantization()) return true;
  const ir::Quantization& q = *w->quantization();
  if (q.perTensor() || *q.axis != featureAxis) return false;
  if (q.scale.dtype() != DataType::kF32 || q.scale.rank() != 1 || q.scale.numel() != N) return false;
  for (int64_t i = 0; i < N; ++i)
    if (!(q.scale.data<float>()[i] > 0.0f) || !std::isfinite(q.scale.data<float>()[i])) return false;
  if (q.zeroPoint.defined()) {
    if (q.zeroPoint.dtype() != DataType::kI8 || q.zeroPoint.numel() != N) return false;
    for (int64_t i = 0; i < N; ++i)
      if (q.zeroPoint.data<int8_t>()[i] != 0) return false;
  }
  *scales = q.scale.data<float>();
  return true;
}

bool convAttrsOf(const ir::Node& n, const ir::Shape& w, ConvAttrs* a) {
  if (!w.rankKnown() || w.rank() != 4 || !w[2].isStatic() || !w[3].isStatic()) return false;
  const ir::Attributes& at = n.attrs();
  a->group = at.getInt("group", 1);
  a->kH = w[2].value();
  a->kW = w[3].value();
  const std::vector<int64_t> ks = at.getInts("kernel_shape", {a->kH, a->kW});
  if (ks.size() != 2 || ks[0] != a->kH || ks[1] != a->kW) return false;
  const std::vector<int64_t> s = at.getInts("strides", {1, 1}), d = at.getInts("dilations", {1, 1});
  if (s.size() != 2 || d.size() != 2 || s[0] <= 0 || s[1] <= 0 || d[0] <= 0 || d[1] <= 0) return false;
  a->sH = s[0], a->sW = s[1], a->dH = d[0], a->dW = d[1];
  return decodeConvPads(at, a);
}

}  // namespace anvil::cpu::tactics
