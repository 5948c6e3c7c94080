// defaultKernels(): the protocol's and the dealer's ring kernels bound to runtime/mpc/ring_ops
// (the fixed executor's own kernels, so secure and fixed runs agree bit for bit).
#include "anvil/error.h"
#include "runtime/mpc/dealer.h"
#include "runtime/mpc/ring_ops.h"

namespace anvil::mpc {
namespace {

const Dims& shapeOf(const Program& p, int32_t id) { return p.tensors.at(size_t(id)).shape; }

std::vector<Ring> linear(const Program& p, const Step& s, const std::vector<Ring>& w, const std::vector<Ring>& bias,
                         const std::vector<Ring>& x) {
  const Dims& os = shapeOf(p, s.output);
  RingVec out = applyBilinear(s, w, x, shapeOf(p, s.inputs.at(0)), os);
  if (&bias == &s.bias) {
    addBias(s, out, os);
  } else if (!bias.empty()) {
    Step withBias;  // addBias reads the step's bias and layout fields only
    withBias.kind = s.kind;
    withBias.linear = s.linear;
    withBias.weightShape = s.weightShape;
    withBias.bias = bias;
    addBias(withBias, out, os);
  }
  return out;
}

std::vector<Ring> product(const Program& p, const Step& s, const std::vector<Ring>& x, const std::vector<Ring>& y) {
  const Dims &xs = shapeOf(p, s.inputs.at(0)), &ys = shapeOf(p, s.inputs.at(1)), &os = shapeOf(p, s.output);
  if (s.kind == StepKind::kMul) return mulBroadcast(x, xs, y, ys, os);
  ANVIL_CHECK(s.kind == StepKind::kMatMul, ErrorCode::kInternal, "mpc: step '", s.name, "' is not a shared product");
  return matmulBatched(x, xs, y, ys, os);
}

std::vector<Ring> local(const Program& p, const Step& s, const std::vector<const std::vector<Ring>*>& in) {
  std::vector<Dims> shapes;
  for (int32_t id : s.inputs) shapes.push_back(shapeOf(p, id));
  return applyLocal(s, in, shapes, shapeOf(p, s.output));
}

}  // namespace

const RingKernels& defaultKernels() {
  static const RingKernels k{linear, product, local};
  return k;
}

}  // namespace anvil::mpc
