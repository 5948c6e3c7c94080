// The plaintext fixed-point executor: the ring kernels of ring_ops.h in program order.
#include "runtime/mpc/fixed.h"

#include "anvil/error.h"

namespace anvil::mpc {

namespace {

const Dims& shapeOf(const Program& p, int32_t id) { return p.tensors.at(id).shape; }

std::vector<RingVec> runAll(const Program& p, const std::vector<ir::Tensor>& floatInputs, StepObserver* observer) {
  ANVIL_CHECK(!p.isPublic, ErrorCode::kInvalidArgument,
              "this is a public mpc engine (no weights): --mode=fixed needs the server engine");
  ANVIL_CHECK(floatInputs.size() == p.inputs.size(), ErrorCode::kInvalidArgument, "the mpc program takes ",
              p.inputs.size(), " inputs, got ", floatInputs.size());
  std::vector<RingVec> values(p.tensors.size());
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    const TensorDef& def = p.tensors.at(p.inputs[i]);
    const ir::Tensor& t = floatInputs[i];
    ANVIL_CHECK(t.dims() == def.shape, ErrorCode::kShapeMismatch, "input '", def.name, "' has shape ",
                t.type().shape.str(), ", the engine was built for ", ir::Shape::fromExtents(def.shape).str());
    ANVIL_CHECK(ir::isFloat(t.dtype()) || ir::isInteger(t.dtype()), ErrorCode::kInvalidArgument, "input '", def.name,
                "' is not numeric");
    RingVec& v = values[p.inputs[i]];
    v.resize(t.numel());
    for (int64_t k = 0; k < t.numel(); ++k) v[k] = quantize(t.getDouble(k), def.scale);
  }
  for (size_t s = 0; s < p.steps.size(); ++s) {
    executeStep(p, p.steps[s], values);
    if (observer) observer->onStep(p, s, values);
  }
  std::vector<RingVec> outs;
  for (int32_t id : p.outputs) outs.push_back(values.at(id));
  return outs;
}

}  // namespace

void executeStep(const Program& p, const Step& s, std::vector<RingVec>& values) {
  auto in = [&](size_t i) -> const RingVec& {
    ANVIL_CHECK(i < s.inputs.size(), ErrorCode::kInvalidEngine, "mpc step '", s.name, "' lacks input ", i);
    const RingVec& v = values.at(s.inputs[i]);
    ANVIL_CHECK(int64_t(v.size()) == numelOf(shapeOf(p, s.inputs[i])), ErrorCode::kInvalidEngine, "mpc step '",
                s.name, "' reads tensor ", s.inputs[i], " before it is computed");
    return v;
  };
  switch (s.kind) {
    case StepKind::kInput:
    case StepKind::kOutput:
      return;
    case StepKind::kLinear:
    case StepKind::kScale: {
      ANVIL_CHECK(!s.weights.empty(), ErrorCode::kInvalidArgument, "mpc step '", s.name,
                  "' has no weights (a public engine cannot run in plaintext)");
      RingVec out = applyBilinear(s, s.weights, in(0), shapeOf(p, s.inputs[0]), shapeOf(p, s.output));
      addBias(s, out, shapeOf(p, s.output));
      values[s.output] = std::move(out);
      return;
    }
    case StepKind::kLut:
      values[s.output] = applyLut(s, in(0));
      return;
    case StepKind::kMaxPool:
      values[s.output] = applyMaxPool(s, in(0), shapeOf(p, s.inputs[0]), shapeOf(p, s.output));
      return;
    case StepKind::kMul:
      values[s.output] = mulBroadcast(in(0), shapeOf(p, s.inputs[0]), in(1), shapeOf(p, s.inputs[1]), shapeOf(p, s.output));
      return;
    case StepKind::kMatMul:
      values[s.output] =
          matmulBatched(in(0), shapeOf(p, s.inputs[0]), in(1), shapeOf(p, s.inputs[1]), shapeOf(p, s.output));
      return;
    default: {
      std::vector<const RingVec*> ins;
      std::vector<Dims> shapes;
      for (size_t i = 0; i < s.inputs.size(); ++i) {
        ins.push_back(&in(i));
        shapes.push_back(shapeOf(p, s.inputs[i]));
      }
      values[s.output] = applyLocal(s, ins, shapes, shapeOf(p, s.output));
    }
  }
}

std::vector<RingVec> runFixedRing(const Program& p, const std::vector<ir::Tensor>& floatInputs, StepObserver* observer) {
  return runAll(p, floatInputs, observer);
}

std::vector<ir::Tensor> runFixed(const Program& p, const std::vector<ir::Tensor>& floatInputs, StepObserver* observer) {
  std::vector<RingVec> rings = runAll(p, floatInputs, observer);
  std::vector<ir::Tensor> outs;
  for (size_t i = 0; i < rings.size(); ++i) {
    const TensorDef& def = p.tensors.at(p.outputs[i]);
    ir::Tensor t(ir::DataType::kFloat, def.shape);
    float* d = t.data<float>();
    for (size_t k = 0; k < rings[i].size(); ++k) d[k] = float(dequantize(rings[i][k], def.scale));
    outs.push_back(std::move(t));
  }
  return outs;
}

}  // namespace anvil::mpc
