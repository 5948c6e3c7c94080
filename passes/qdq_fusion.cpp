// Explicit quantization (Q/DQ models, as onnxruntime's quantizer and PyTorch export them),
// computed as onnxruntime's optimized session computes it where that session runs integer
// kernels (docs/int8.md, "Q/DQ models"):
//   1. DequantizeLinear of a constant integer tensor becomes an f32 constant that keeps the
//      quantization it came from (scale, zero point, axis) as value metadata;
//   2. a Conv, Gemm or MatMul reading DequantizeLinear(QuantizeLinear(x)) (one per-tensor
//      scale and zero point) and such a constant as its weights (int8, zero points 0) reads
//      the DequantizeLinear's output, computes in INT8 (node precision i8, reason "model")
//      with it quantized by the same parameters (an s8 zero point z becomes the u8 zero point
//      z + 128: the same grid and the same saturation), and the weights' scales per output
//      channel (a per-tensor scale is repeated along that axis), so that the INT8 kernels
//      reproduce the model's integers exactly;
//   3. such a layer read only by a QuantizeLinear takes onnxruntime's requantization (the
//      int32 bias in the integer sum, (s_x * s_w) / s_y, the QuantizeLinear rounding steps);
//   4. u8 Q(Add(DQ, DQ)) and Q(GlobalAveragePool(DQ)) become anvil.QLinearAdd and
//      anvil.QLinearGlobalAveragePool (onnxruntime's arithmetic for them);
//   5. a Q -> DQ pair between a layer of step 3 and INT8 readers only goes (an INT8 chain).
// Other Q/DQ pairs stay: they round to the grid exactly as the model says.
// Runs before constant folding, which would fold the weights' DequantizeLinear away.
#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_map>

#include "ir/op_schema.h"
#include "passes/graph_edit.h"
#include "passes/passes.h"
#include "passes/pattern.h"
#include "passes/precision.h"

namespace anvil::passes {

namespace {

bool isOnnx(const ir::Node& n, const char* op) { return n.domain().empty() && n.op() == op; }

// A constant of `g` (not overridable by a graph input).
const ir::Tensor* constantOf(const ir::Graph& g, const ir::Value* v) { return v ? trueConstantOf(g, v) : nullptr; }

// The output-feature axis of a linear node's weights (input 1), or -1.
int64_t weightAxis(const ir::Node& n, const ir::Tensor& w) {
  if (isOnnx(n, "Conv")) return 0;
  if (isOnnx(n, "Gemm")) return n.attrs().getInt("transB", 0) ? 0 : 1;
  if (isOnnx(n, "MatMul")) return w.rank() >= 2 ? int64_t(w.rank()) - 1 : -1;
  return -1;
}

// Step 1: DequantizeLinear(constant q, scale[, zero point]) -> f32 constant with metadata.
// The int32 tensors of folded DequantizeLinear (biases as onnxruntime's quantizer writes
// them), by the constant they became: the requantization adds these integers exactly.
using Int32Sources = std::unordered_map<const ir::Value*, ir::Tensor>;

int foldWeightDequantize(ir::Graph& g, Int32Sources* ints) {
  int folded = 0;
  std::vector<ir::Node*> dqs;
  for (const auto& n : g.nodes())
    if (isOnnx(*n, "DequantizeLinear")) dqs.push_back(n.get());
  for (ir::Node* dq : dqs) {
    const ir::Tensor* q = constantOf(g, dq->input(0));
    const ir::Tensor* s = constantOf(g, dq->input(1));
    const ir::Tensor* z = dq->numInputs() > 2 ? constantOf(g, dq->input(2)) : nullptr;
    if (!q || !s || (dq->numInputs() > 2 && dq->input(2) && !z)) continue;
    if (q->dtype() != ir::DataType::kI8 && q->dtype() != ir::DataType::kU8 && q->dtype() != ir::DataType::kI32) continue;
    if (s->dtype() != ir::DataType::kF32 || s->rank() > 1 || dq->attrs().getInt("block_size", 0) != 0) continue;
    if (isObservedOutput(g, dq->output(0))) continue;
    int64_t axis = -1;
    if (s->rank() == 1) {
      axis = dq->attrs().getInt("axis", 1);
      if (axis < 0) axis += int64_t(q->rank());
      if (axis < 0 || axis >= int64_t(q->rank()) || q->dim(size_t(axis)) != s->numel()) continue;
    }
    // Real value = scale * (q - zero point), per tensor or along `axis`.
    ir::Tensor w(ir::DataType::kF32, q->dims());
    int64_t inner = 1;
    if (axis >= 0)
      for (size_t d = size_t(axis) + 1; d < q->rank(); ++d) inner *= q->dim(d);
    const int64_t channels = axis >= 0 ? s->numel() : 1;
    for (int64_t i = 0; i < q->numel(); ++i) {
      const int64_t c = axis >= 0 ? (i / inner) % channels : 0;
      const double zp = z ? z->getDouble(c) : 0.0;
      w.data<float>()[i] = float(double(s->data<float>()[c]) * (q->getDouble(i) - zp));
    }
    ir::Quantization meta;
    meta.scale = *s;
    if (z) meta.zeroPoint = *z;
    if (axis >= 0) meta.axis = axis;
    ir::Value* out = dq->output(0);
    if (q->dtype() == ir::DataType::kI32) (*ints)[out] = *q;
    g.removeNode(dq);
    makeConstant(out, std::move(w));
    out->setQuantization(std::move(meta));
    ++folded;
  }
  return folded;
}

// The per-tensor (scale, zero point) of a QuantizeLinear or DequantizeLinear, or false.
bool perTensorParams(const ir::Graph& g, const ir::Node& n, float* scale, int* zp, ir::DataType* zpType) {
  const ir::Tensor* s = constantOf(g, n.input(1));
  if (!s || s->dtype() != ir::DataType::kF32 || s->numel() != 1) return false;
  *scale = s->data<float>()[0];
  *zp = 0;
  *zpType = ir::DataType::kU8;  // ONNX: an absent zero point means u8 0
  if (n.numInputs() > 2 && n.input(2)) {
    const ir::Tensor* z = constantOf(g, n.input(2));
    if (!z || z->numel() != 1) return false;
    *zpType = z->dtype();
    if (*zpType != ir::DataType::kU8 && *zpType != ir::DataType::kI8) return false;
    *zp = int(z->getInt(0));
  }
  return *scale > 0 && std::isfinite(*scale) && n.attrs().getInt("block_size", 0) == 0;
}

// Whether the weight constant carries int8 quantization with zero points 0 that the INT8
// kernels can take along `axis`; returns the per-axis metadata (a per-tensor scale
// repeated along the axis).
bool int8Weights(const ir::Value* w, int64_t axis, ir::Quantization* out) {
  if (!w || !w->isInitializer() || !w->quantization() || axis < 0) return false;
  const ir::Quantization& q = *w->quantization();
  if (q.zeroPoint.defined()) {
    if (q.zeroPoint.dtype() != ir::DataType::kI8) return false;
    for (int64_t i = 0; i < q.zeroPoint.numel(); ++i)
      if (q.zeroPoint.getInt(i) != 0) return false;
  } else {
    return false;  // an absent zero point is u8: the weights are unsigned
  }
  const ir::Tensor& t = *w->initializer();
  if (axis >= int64_t(t.rank())) return false;
  const int64_t channels = t.dim(size_t(axis));
  if (!q.perTensor() && (*q.axis != axis || q.scale.numel() != channels)) return false;
  ir::Quantization m;
  m.scale = ir::Tensor(ir::DataType::kF32, {channels});
  m.zeroPoint = ir::Tensor(ir::DataType::kI8, {channels});
  for (int64_t c = 0; c < channels; ++c) m.scale.data<float>()[c] = q.scale.data<float>()[q.perTensor() ? 0 : c];
  m.axis = axis;
  *out = std::move(m);
  return true;
}

// Step 2: linear nodes on DequantizeLinear(QuantizeLinear(x)) with int8 weights.
int fuseQuantizedInputs(ir::Graph& g) {
  int fused = 0;
  std::vector<ir::Node*> linear;
  for (const auto& n : g.nodes())
    if (isOnnx(*n, "Conv") || isOnnx(*n, "Gemm") || isOnnx(*n, "MatMul")) linear.push_back(n.get());
  for (ir::Node* n : linear) {
    if (n->numInputs() < 2 || !n->input(0) || !n->input(1) || n->precision() != ir::DataType::kUndefined) continue;
    if (isOnnx(*n, "Conv") && n->attrs().getInt("group", 1) != 1) continue;
    if (isOnnx(*n, "Gemm") && n->attrs().getInt("transA", 0) != 0) continue;
    ir::Node* dq = n->input(0)->producer();
    if (!dq || !isOnnx(*dq, "DequantizeLinear")) continue;
    ir::Node* q = dq->input(0) ? dq->input(0)->producer() : nullptr;
    if (!q || !isOnnx(*q, "QuantizeLinear") || !q->input(0) || q->input(0)->dtype() != ir::DataType::kF32) continue;
    float sq, sd;
    int zq, zd;
    ir::DataType tq, td;
    if (!perTensorParams(g, *q, &sq, &zq, &tq) || !perTensorParams(g, *dq, &sd, &zd, &td)) continue;
    if (sq != sd || zq != zd || tq != td) continue;
    if (q->numOutputs() != 1 || q->output(0)->dtype() != tq) continue;
    ir::Quantization wq;
    if (!int8Weights(n->input(1), weightAxis(*n, *n->input(1)->initializer()), &wq)) continue;
    // The node reads the DequantizeLinear's output, values on the grid that quantize back to
    // the model's integers whatever the rounding of the quantizer (reading Q's input would
    // quantize it again with the kernels' multiply by 1 / s, where QuantizeLinear divides:
    // a step apart where the quotient lands within an ulp of a half).
    ir::Value* x = dq->output(0);
    const int zpU8 = tq == ir::DataType::kI8 ? zq + 128 : zq;
    ir::Quantization xq;
    xq.scale = ir::Tensor::scalar(ir::DataType::kF32, sq);
    xq.zeroPoint = ir::Tensor::scalar(ir::DataType::kU8, uint8_t(zpU8));
    if (x->quantization() && *x->quantization() != xq) continue;  // two grids on one value
    x->setQuantization(xq);
    n->input(1)->setQuantization(wq);
    n->setInput(0, x);
    n->setPrecision(ir::DataType::kI8);
    n->tacticParams().set(kPrecisionReasonAttr, std::string("model"));
    ++fused;
  }
  // The Q/DQ nodes nobody reads any more.
  for (bool again = true; again;) {
    again = false;
    for (const auto& n : g.nodes())
      if ((isOnnx(*n, "DequantizeLinear") || isOnnx(*n, "QuantizeLinear")) && g.users(n->output(0)).empty() &&
          !isObservedOutput(g, n->output(0))) {
        g.removeNode(n.get());
        again = true;
        break;
      }
  }
  g.removeUnusedValues();
  return fused;
}

// Step 3: onnxruntime's requantization. A node fused in step 2 whose output only a
// QuantizeLinear reads (per tensor, s8 or u8) is what onnxruntime's optimized session runs
// as one QLinearConv / QLinearMatMul / QGemm: the model's int32 bias added to the exact
// integer sum, then q = saturate(round_half_even(float(acc + bias) * m[f]) + z_y) with
// m[f] = (s_x * s_w[f]) / s_y in f32, in that order. The float path the ONNX spec defines
// (the f32 bias added to the dequantized sum, then a division by s_y) lands within an ulp
// or two of that value, and a step apart where it is that near a half: 2 of 802816 values
// of resnet18's first convolution, which the next 19 layers spread to ~5% of the values
// and 2 steps of the logits. So the node takes the bias as integers (tactic param
// qdq_bias, its f32 input dropped) and s_y (qdq_out_scale) and outputs float(acc + bias)
// * m[f], the value in steps of s_y; the QuantizeLinear's scale becomes 1 (the division by
// 1 is exact), so it rounds and saturates as onnxruntime does. Only where the bias is the
// int32 DequantizeLinear the quantizer writes (zero points 0, scale s_x * s_w) and Gemm has
// alpha = beta = 1 (QGemm adds C unscaled).
int fuseRequantization(ir::Graph& g, const Int32Sources& ints) {
  int fused = 0;
  std::vector<ir::Node*> linear;
  for (const auto& n : g.nodes())
    if ((isOnnx(*n, "Conv") || isOnnx(*n, "Gemm") || isOnnx(*n, "MatMul")) && n->precision() == ir::DataType::kI8 &&
        n->tacticParams().getString(kPrecisionReasonAttr, "") == "model" && !n->tacticParams().has("qdq_out_scale"))
      linear.push_back(n.get());
  for (ir::Node* n : linear) {
    ir::Value* y = n->output(0);
    if (n->numOutputs() != 1 || isObservedOutput(g, y)) continue;
    const std::vector<ir::Node*> users = g.users(y);
    if (users.size() != 1 || !isOnnx(*users[0], "QuantizeLinear") || users[0]->input(0) != y) continue;
    ir::Node* q = users[0];
    float sy;
    int zy;
    ir::DataType ty;
    if (!perTensorParams(g, *q, &sy, &zy, &ty) || q->numOutputs() != 1) continue;
    if (isOnnx(*n, "Gemm") && (n->attrs().getFloat("alpha", 1.0f) != 1.0f || n->attrs().getFloat("beta", 1.0f) != 1.0f))
      continue;
    const auto& xq = n->input(0)->quantization();
    const auto& wq = n->input(1)->quantization();
    if (!xq || !wq || !wq->axis || wq->scale.rank() != 1) continue;
    const float sx = xq->scale.data<float>()[0];
    const int64_t N = wq->scale.numel();
    std::vector<int64_t> bias(size_t(N), 0);
    ir::Value* b = n->numInputs() > 2 ? n->input(2) : nullptr;
    if (b) {
      const auto it = ints.find(b);
      if (it == ints.end() || !b->quantization() || it->second.numel() != N) continue;
      if (it->second.rank() != 1 && !(isOnnx(*n, "Gemm") && it->second.rank() == 2 && it->second.dim(0) == 1)) continue;
      const ir::Quantization& bq = *b->quantization();
      bool ok = true;
      for (int64_t c = 0; c < N && ok; ++c) {
        // The scale the spec's float path dequantizes the bias with: s_x * s_w[c] (the
        // quantizer's f32 product); onnxruntime's fused kernels add the integers whatever it
        // is, so a bias on another grid keeps the spec's path.
        const float want = sx * wq->scale.data<float>()[c];
        const float have = bq.scale.data<float>()[bq.perTensor() ? 0 : c];
        const int64_t zp = bq.zeroPoint.defined() ? bq.zeroPoint.getInt(bq.perTensor() ? 0 : c) : 0;
        ok = zp == 0 && std::fabs(double(have) - double(want)) <= 1e-6 * double(want);
        bias[size_t(c)] = it->second.getInt(c);
      }
      if (!ok) continue;
    }
    n->tacticParams().set("qdq_bias", bias);
    n->tacticParams().set("qdq_out_scale", sy);
    if (b) n->setInput(2, nullptr);
    q->setInput(1, addConstant(g, q->input(1)->name() + "_steps", ir::Tensor::scalar<float>(ir::DataType::kF32, 1.0f)));
    ++fused;
  }
  g.removeUnusedValues();
  return fused;
}

// Step 4: Q(Add(DQ(a), DQ(b))) on u8 grids, per tensor, one shape -> anvil.QLinearAdd(a, b)
// with the three grids as attributes: onnxruntime's optimized session runs it as one
// QLinearAdd (its own f32 formula, cpu/kernels/anvil_quant.cpp), where the spec's path
// (dequantize, add, divide by s_y) rounds a value within an ulp of a half the other way:
// 1 of resnet18-u8's first Add's 200704 values. Only u8: onnxruntime's x86 builds run an
// int8 Add on the float path (its Q/DQ selectors take int8 activations only where the CPU
// multiplies int8 by int8 natively), which the Q/DQ pair around the f32 Add already is.
int fuseQLinearAdd(ir::Graph& g) {
  int fused = 0;
  std::vector<ir::Node*> adds;
  for (const auto& n : g.nodes())
    if (isOnnx(*n, "Add") && n->numInputs() == 2 && n->numOutputs() == 1) adds.push_back(n.get());
  for (ir::Node* add : adds) {
    ir::Value* y = add->output(0);
    if (isObservedOutput(g, y)) continue;
    const std::vector<ir::Node*> users = g.users(y);
    if (users.size() != 1 || !isOnnx(*users[0], "QuantizeLinear") || users[0]->input(0) != y) continue;
    ir::Node* q = users[0];
    ir::Node* dqs[2] = {add->input(0) ? add->input(0)->producer() : nullptr,
                        add->input(1) ? add->input(1)->producer() : nullptr};
    float s[3];
    int z[3];
    ir::DataType t[3];
    bool ok = perTensorParams(g, *q, &s[2], &z[2], &t[2]) && q->output(0)->dtype() == ir::DataType::kU8;
    for (int i = 0; i < 2 && ok; ++i)
      ok = dqs[i] && isOnnx(*dqs[i], "DequantizeLinear") && perTensorParams(g, *dqs[i], &s[i], &z[i], &t[i]) &&
           dqs[i]->input(0)->dtype() == ir::DataType::kU8 && t[i] == ir::DataType::kU8;
    if (!ok || t[2] != ir::DataType::kU8) continue;
    const ir::Shape& sa = dqs[0]->input(0)->shape();
    if (!sa.rankKnown() || !(sa == dqs[1]->input(0)->shape()) || !(sa == q->output(0)->shape())) continue;
    ir::Attributes at;
    const char* names[3] = {"a", "b", "y"};
    for (int i = 0; i < 3; ++i) {
      at.set(std::string(names[i]) + "_scale", s[i]);
      at.set(std::string(names[i]) + "_zero_point", int64_t(z[i]));
    }
    replaceNode(g, q, "QLinearAdd", "anvil", {dqs[0]->input(0), dqs[1]->input(0)}, at);
    g.removeNode(add);
    ++fused;
  }
  // The DequantizeLinear nodes only the Adds read.
  for (bool again = true; again;) {
    again = false;
    for (const auto& n : g.nodes())
      if (isOnnx(*n, "DequantizeLinear") && removeIfUnused(g, n.get())) {
        again = true;
        break;
      }
  }
  g.removeUnusedValues();
  return fused;
}

// Step 4b: Q(GlobalAveragePool(DQ(q))), per tensor, one integer type -> anvil.
// QLinearGlobalAveragePool(q): onnxruntime's optimized session runs it as one
// QLinearGlobalAveragePool (an int32 sum, times s_x / (s_y * HW); int8 grids too, through
// its s8->u8 rewrite, the same integers), where the spec's path averages in f32.
int fuseQLinearGap(ir::Graph& g) {
  int fused = 0;
  std::vector<ir::Node*> pools;
  for (const auto& n : g.nodes())
    if (isOnnx(*n, "GlobalAveragePool") && n->numInputs() == 1 && n->numOutputs() == 1) pools.push_back(n.get());
  for (ir::Node* gap : pools) {
    ir::Value* y = gap->output(0);
    if (isObservedOutput(g, y)) continue;
    const std::vector<ir::Node*> users = g.users(y);
    if (users.size() != 1 || !isOnnx(*users[0], "QuantizeLinear") || users[0]->input(0) != y) continue;
    ir::Node* q = users[0];
    ir::Node* dq = gap->input(0) ? gap->input(0)->producer() : nullptr;
    float sx, sy;
    int zx, zy;
    ir::DataType tx, ty;
    if (!dq || !isOnnx(*dq, "DequantizeLinear") || !perTensorParams(g, *dq, &sx, &zx, &tx) ||
        !perTensorParams(g, *q, &sy, &zy, &ty) || tx != ty || dq->input(0)->dtype() != tx ||
        q->output(0)->dtype() != ty)
      continue;
    const ir::Shape& xs = dq->input(0)->shape();
    if (!xs.rankKnown() || xs.rank() < 3) continue;
    ir::Attributes at;
    at.set("x_scale", sx);
    at.set("x_zero_point", int64_t(zx));
    at.set("y_scale", sy);
    at.set("y_zero_point", int64_t(zy));
    replaceNode(g, q, "QLinearGlobalAveragePool", "anvil", {dq->input(0)}, at);
    g.removeNode(gap);
    removeIfUnused(g, dq);
    ++fused;
  }
  g.removeUnusedValues();
  return fused;
}

// Step 5: INT8 chains. A requantized node (step 3) A -> QuantizeLinear(1, z) -> q ->
// DequantizeLinear(s_y, z) -> d where q feeds only that DequantizeLinear and d only INT8
// layers of step 2 (as input 0): those layers read A's output, the value in steps, with
// the grid (1, z) (so they quantize it to exactly q, and the builder may keep it u8 between
// the two: A then writes round(value) + z, onnxruntime's integer) and take s_y as tactic
// param qdq_x_scale, the scale their dequantization multiplies by. The pair goes.
int fuseChains(ir::Graph& g) {
  int linked = 0;
  std::vector<ir::Node*> producers;
  for (const auto& n : g.nodes())
    if (n->tacticParams().has("qdq_out_scale")) producers.push_back(n.get());
  for (ir::Node* a : producers) {
    ir::Value* y = a->output(0);
    const std::vector<ir::Node*> qs = g.users(y);
    if (qs.size() != 1 || !isOnnx(*qs[0], "QuantizeLinear") || isObservedOutput(g, qs[0]->output(0))) continue;
    ir::Node* q = qs[0];
    const std::vector<ir::Node*> dqs = g.users(q->output(0));
    if (dqs.size() != 1 || !isOnnx(*dqs[0], "DequantizeLinear") || isObservedOutput(g, dqs[0]->output(0))) continue;
    ir::Node* dq = dqs[0];
    float s1, sy;
    int z1, zy;
    ir::DataType t1, ty;
    if (!perTensorParams(g, *q, &s1, &z1, &t1) || !perTensorParams(g, *dq, &sy, &zy, &ty)) continue;
    if (s1 != 1.0f || z1 != zy || t1 != ty || !dq->output(0)->quantization()) continue;
    const std::vector<ir::Node*> readers = g.users(dq->output(0));
    bool ok = !readers.empty();
    for (ir::Node* r : readers)
      ok = ok && r->input(0) == dq->output(0) && r->precision() == ir::DataType::kI8 &&
           r->tacticParams().getString(kPrecisionReasonAttr, "") == "model" && !r->tacticParams().has("qdq_x_scale") &&
           std::count(r->inputs().begin(), r->inputs().end(), dq->output(0)) == 1;
    if (!ok) continue;
    ir::Quantization steps = *dq->output(0)->quantization();  // the u8 form of (s_y, z)
    steps.scale = ir::Tensor::scalar(ir::DataType::kF32, 1.0f);
    y->setQuantization(steps);
    for (ir::Node* r : readers) {
      r->setInput(0, y);
      r->tacticParams().set("qdq_x_scale", sy);
    }
    g.removeNode(dq);
    g.removeNode(q);
    ++linked;
  }
  g.removeUnusedValues();
  return linked;
}

}  // namespace

PassResult fuseQdq(ir::Graph& g, const PassContext& ctx) {
  (void)ctx;
  PassResult r;
  Int32Sources ints;
  const int folded = foldWeightDequantize(g, &ints);
  const int fused = fuseQuantizedInputs(g);
  const int requantized = fuseRequantization(g, ints);
  const int adds = fuseQLinearAdd(g);
  const int pools = fuseQLinearGap(g);
  const int links = fuseChains(g);
  r.changed = folded + fused + requantized + adds + pools + links;
  r.stats = std::to_string(folded) + " weight DequantizeLinear folded, " + std::to_string(fused) +
            " linear layers in INT8 from their Q/DQ, " + std::to_string(requantized) +
            " requantized as onnxruntime does, " + std::to_string(adds) + " QLinearAdd, " + std::to_string(pools) +
            " QLinearGlobalAveragePool, " + std::to_string(links) +
            " Q/DQ pairs between INT8 layers absorbed";
  return r;
}

}  // namespace anvil::passes
