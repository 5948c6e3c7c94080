// pad-folding: fold a constant-mode, zero-valued Pad of the spatial dims into the Conv
// that reads it: the Pad node disappears and its amounts are added to the Conv's pads
// (TensorFlow-style exporters emit explicit Pad + VALID Conv).
//
// Declines unless: Pad mode is "constant" with a zero (or absent) constant_value; pads
// (and axes, when given) are constants; nothing is padded on N or C and nothing is
// cropped (negative pads); the Pad output is read only by this Conv, as its X; the Conv
// has explicit pads or auto_pad NOTSET/VALID (SAME_* depends on the input extent).
#include "passes/linear_rewrite.h"
#include "passes/pattern.h"
#include "passes/passes.h"

namespace anvil::passes {

namespace {

bool foldPad(ir::Graph& g, ir::Node& conv) {
  ir::Value* x = conv.input(0);
  ir::Node* pad = producerIs(x, "Pad");
  if (!pad || !hasSingleUse(g, x)) return false;
  if (pad->attrs().getString("mode", "constant") != "constant") return false;
  if (pad->input(2)) {
    double v;
    if (!linear::fixedScalar(g, pad->input(2), &v) || v != 0.0) return false;
  }
  const ir::Shape& xs = pad->input(0)->shape();
  if (!xs.rankKnown() || xs.rank() < 3) return false;
  const int64_t r = int64_t(xs.rank()), spatial = r - 2;
  const ir::Tensor* padsT = linear::fixedConstant(g, pad->input(1));
  if (!padsT) return false;
  std::vector<int64_t> axes;
  if (pad->input(3)) {
    const ir::Tensor* a = linear::fixedConstant(g, pad->input(3));
    if (!a) return false;
    for (int64_t v : a->toInt64Vector()) {
      if (v < -r || v >= r) return false;
      axes.push_back(v < 0 ? v + r : v);
    }
  } else {
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  }
  const std::vector<int64_t> pads = padsT->toInt64Vector();
  if (pads.size() != 2 * axes.size()) return false;
  // Per spatial dim: begin and end amounts added by the Pad.
  std::vector<int64_t> add(size_t(2 * spatial), 0);
  const size_t n = axes.size();
  for (size_t i = 0; i < n; ++i) {
    const int64_t b = pads[i], e = pads[i + n];
    if (b < 0 || e < 0) return false;
    if (axes[i] < 2) {
      if (b != 0 || e != 0) return false;
      continue;
    }
    add[size_t(axes[i] - 2)] += b;
    add[size_t(axes[i] - 2 + spatial)] += e;
  }
  const std::string autoPad = conv.attrs().getString("auto_pad", "NOTSET");
  std::vector<int64_t> convPads;
  if (autoPad == "VALID") {
    convPads.assign(size_t(2 * spatial), 0);
  } else if (autoPad == "NOTSET" || autoPad.empty()) {
    convPads = conv.attrs().getInts("pads", std::vector<int64_t>(size_t(2 * spatial), 0));
    if (int64_t(convPads.size()) != 2 * spatial) return false;
  } else {
    return false;
  }
  for (size_t i = 0; i < convPads.size(); ++i) convPads[i] += add[i];
  ir::Attributes attrs = conv.attrs();
  attrs.erase("auto_pad");
  attrs.set("pads", convPads);
  std::vector<ir::Value*> inputs = conv.inputs();
  inputs[0] = pad->input(0);
  linear::replaceChain(g, conv.output(0), {&conv, pad}, "Conv", "", conv.name(), inputs, attrs);
  return true;
}

}  // namespace

PassResult foldPadIntoConv(ir::Graph& g, const PassContext& /*ctx*/) {
  std::string stats;
  const int n = applyPatterns(g, {{"pad-into-conv", "Conv", "", foldPad}}, &stats);
  return {n, stats};
}

}  // namespace anvil::passes
