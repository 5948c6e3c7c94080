// The precision pass: per-layer overrides (--layerPrecisions), the u8 quantization of the
// activations the INT8 kernels read (from calibrated ranges), and, with --precision=auto,
// a precision per linear layer from its condition estimate. Decisions are IR metadata
// (Node::precision, Value::quantization, tactic params for the report); the builder then
// offers each node the kernels of its precision, or of every allowed precision where the
// node is left free, and keeps the fastest.
#include "passes/precision.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "anvil/anvil.hpp"
#include "ir/ops/anvil_linear.h"
#include "passes/passes.h"

namespace anvil::passes {

double unitRoundoff(ir::DataType p) {
  switch (p) {
    case ir::DataType::kF32: return std::ldexp(1.0, -24);
    case ir::DataType::kF16: return std::ldexp(1.0, -11);
    case ir::DataType::kBF16: return std::ldexp(1.0, -8);
    case ir::DataType::kI8: return 1.0 / 255.0;
    default: return 0.0;
  }
}

bool isPrecisionCandidate(const ir::Node& n) {
  static const std::set<std::string> kOnnx = {"Conv", "Gemm", "MatMul"};
  static const std::set<std::string> kAnvil = {"FusedConv", "FusedGemm", "FusedMatMul"};
  const bool op = n.domain().empty() ? kOnnx.count(n.op()) > 0 : n.domain() == "anvil" && kAnvil.count(n.op()) > 0;
  if (!op || n.numInputs() < 2 || !n.input(0) || !n.input(1)) return false;
  return n.input(1)->isInitializer() && n.input(0)->dtype() == ir::DataType::kF32 &&
         n.input(1)->dtype() == ir::DataType::kF32;
}

ir::Quantization quantizationU8(ValueRange r) {
  const double lo = std::min(0.0, double(r.lo)), hi = std::max(0.0, double(r.hi));
  double scale = (hi - lo) / 255.0;
  if (!(scale > 0) || !std::isfinite(scale)) scale = 1.0;
  const double zp = std::clamp(std::nearbyint(-lo / scale), 0.0, 255.0);
  ir::Quantization q;
  q.scale = ir::Tensor::scalar(ir::DataType::kF32, float(scale));
  q.zeroPoint = ir::Tensor::scalar(ir::DataType::kU8, uint8_t(zp));
  return q;
}

namespace {

// Precisions from cheapest to most precise (the order --precision=auto promotes along).
constexpr ir::DataType kByCost[] = {ir::DataType::kI8, ir::DataType::kBF16, ir::DataType::kF16, ir::DataType::kF32};

std::string precisionFlagName(ir::DataType t) {
  switch (t) {
    case ir::DataType::kF32: return "fp32";
    case ir::DataType::kF16: return "fp16";
    case ir::DataType::kBF16: return "bf16";
    case ir::DataType::kI8: return "int8";
    default: return ir::dtypeName(t);
  }
}

void setReason(ir::Node& n, const std::string& reason) { n.tacticParams().set(kPrecisionReasonAttr, reason); }

}  // namespace

PassResult assignPrecisions(ir::Graph& g, const PassContext& ctx) {
  const PrecisionConfig& pc = ctx.precision;
  const CalibrationData* cal = ctx.calibration;
  const bool obey = pc.constraints == PrecisionConfig::Constraints::kObey;
  PassResult r;
  int forced = 0, quantized = 0, automatic = 0, promoted = 0;

  std::set<std::string> names;
  for (const auto& n : g.nodes()) names.insert(n->name());
  std::map<std::string, ir::DataType> overrides = pc.overrides;
  for (const auto& [name, t] : pc.promoted) overrides[name] = t;
  for (const auto& [name, t] : overrides) {
    ANVIL_CHECK(name == "*" || names.count(name), ErrorCode::kInvalidArgument, "--layerPrecisions names no layer '",
                name, "' (the names are the layers --dumpLayerInfo prints)");
    ANVIL_CHECK(unitRoundoff(t) > 0, ErrorCode::kInvalidArgument, "--layerPrecisions: layer '", name,
                "' asks for ", ir::dtypeName(t), ", not one of fp32, fp16, bf16, int8");
  }

  // The predicted relative error the layer adds to its output at precision t.
  auto predicted = [&](const ir::Node& n, ir::DataType t) {
    if (!cal) return -1.0;
    auto it = cal->condition.find(n.name());
    return it == cal->condition.end() ? -1.0 : it->second.normwise * unitRoundoff(t);
  };
  const ValueRange* range = nullptr;
  auto inputRange = [&](const ir::Node& n) -> const ValueRange* {
    if (!cal || !n.input(0)) return nullptr;
    auto it = cal->ranges.find(n.input(0)->name());
    return it == cal->ranges.end() ? nullptr : &it->second;
  };
  // Quantizes input 0 of an INT8 candidate (the kernels read its u8 parameters).
  // A grid the value already has (a Q/DQ model's, which its own layers must keep) stays.
  auto quantize = [&](ir::Node& n) {
    ir::Value* x = n.input(0);
    if (x->quantization() && x->quantization()->perTensor()) return true;
    if (!(range = inputRange(n))) return false;
    x->setQuantization(quantizationU8(*range));
    ++quantized;
    return true;
  };

  // Every condition estimate is recorded on its node for the report.
  if (cal)
    for (const auto& np : g.nodes())
      if (auto it = cal->condition.find(np->name()); it != cal->condition.end()) {
        np->tacticParams().set("kappa_median", float(it->second.median));
        np->tacticParams().set("kappa_p99", float(it->second.p99));
        np->tacticParams().set("kappa_max", float(it->second.max));
        np->tacticParams().set("kappa_normwise", float(it->second.normwise));
      }

  // The user's word: --layerPrecisions ("*" = every linear layer; f32 for any node).
  std::vector<ir::Node*> free;
  for (const auto& np : g.nodes()) {
    ir::Node& n = *np;
    auto it = overrides.find(n.name());
    if (it == overrides.end() && isPrecisionCandidate(n)) it = overrides.find("*");
    if (it == overrides.end()) {
      // A layer a Q/DQ model quantized keeps its INT8 (reason "model").
      if (isPrecisionCandidate(n) && n.tacticParams().getString(kPrecisionReasonAttr, "") != "model")
        free.push_back(&n);
      continue;
    }
    const ir::DataType t = it->second;
    if (t != ir::DataType::kF32 && !isPrecisionCandidate(n)) {
      ANVIL_CHECK(!obey, ErrorCode::kUnsupported, "--layerPrecisions: layer '", n.name(), "' (", n.op(),
                  ") has no ", precisionFlagName(t),
                  " kernels (only Conv, Gemm and MatMul with constant weights do); --precisionConstraints=prefer "
                  "runs it in fp32");
      continue;
    }
    if (t == ir::DataType::kI8 && !quantize(n)) {
      ANVIL_CHECK(!obey, ErrorCode::kInvalidArgument, "--layerPrecisions: layer '", n.name(),
                  "' is int8 but its input '", n.input(0)->name(),
                  "' has no calibrated range (give --calibData=DIR or --calib=FILE)");
      free.push_back(&n);
      continue;
    }
    const bool raised = pc.promoted.count(n.name()) > 0;
    if (raised && t != ir::DataType::kF32 && t != ir::DataType::kI8 && isPrecisionCandidate(n)) {
      // Raised by --precision=auto's verification: t is a floor, like the pass's own
      // choices below, not a demand: a more precise kernel that runs faster may take the
      // layer (on a small GEMM the FP16 kernel's conversions can cost more than FP32).
      std::vector<int64_t> ok;
      bool past = false;
      for (ir::DataType u : kByCost) {
        past |= u == t;
        if (past && (u == t || u == ir::DataType::kF32 || pc.allows(u))) ok.push_back(int64_t(u));
      }
      n.tacticParams().set(kPrecisionChoicesAttr, ok);
    } else {
      n.setPrecision(t);
    }
    setReason(n, raised ? "budget" : "user");
    if (raised) n.tacticParams().set(kPredictedErrorAttr, float(predicted(n, t)));
    ++forced;
  }

  // Layers the user left free: with int8 allowed, their inputs are quantized so that the
  // builder can time the INT8 kernels against the others.
  if (pc.allows(ir::DataType::kI8))
    for (ir::Node* n : free) quantize(*n);

  // --precision=auto: start every free layer at its cheapest allowed precision and promote,
  // one step at a time, the layer with the largest predicted error until the predicted
  // output error meets the tolerance. A layer's predicted error is its normwise condition
  // times the precision's unit roundoff; the layers' perturbations are independent
  // roundings, so they add in quadrature. (The componentwise p99 bounds the worst
  // components and is reported; as a sum it predicts 100-1000x the measured error of
  // INT8 CNNs, which would keep every layer in f32.) Layers without a condition estimate
  // stay free for the builder.
  if (pc.automatic) {
    struct Choice {
      ir::Node* node;
      double kappa;
      std::vector<ir::DataType> ladder;  // allowed precisions for it, cheapest first
      size_t at = 0;
      double error() const { return kappa * unitRoundoff(ladder[at]); }
    };
    std::vector<Choice> choices;
    for (ir::Node* n : free) {
      if (!cal) break;
      auto it = cal->condition.find(n->name());
      if (it == cal->condition.end()) continue;
      Choice c{n, it->second.normwise, {}};
      for (ir::DataType t : kByCost)
        if (t == ir::DataType::kF32 || (pc.allows(t) && (t != ir::DataType::kI8 || n->input(0)->quantization())))
          c.ladder.push_back(t);
      choices.push_back(std::move(c));
    }
    auto total = [&] {
      double s = 0;
      for (const Choice& c : choices) s += c.error() * c.error();
      return std::sqrt(s);
    };
    std::vector<bool> raised(choices.size(), false);
    while (!choices.empty() && !pc.top1 && total() > pc.tolerance) {
      size_t worst = choices.size();
      for (size_t i = 0; i < choices.size(); ++i)
        if (choices[i].at + 1 < choices[i].ladder.size() &&
            (worst == choices.size() || choices[i].error() > choices[worst].error()))
          worst = i;
      if (worst == choices.size()) break;  // every layer is already at f32
      ++choices[worst].at;
      raised[worst] = true;
      ++promoted;
    }
    // The layer may take its chosen rung or any more precise one: the builder times them and
    // keeps the fastest (an FP16 convolution can be slower than the FP32 one).
    for (size_t i = 0; i < choices.size(); ++i) {
      Choice& c = choices[i];
      std::vector<int64_t> ok;
      for (size_t k = c.at; k < c.ladder.size(); ++k) ok.push_back(int64_t(c.ladder[k]));
      c.node->tacticParams().set(kPrecisionChoicesAttr, ok);
      setReason(*c.node, raised[i] ? "budget" : "cost");
      c.node->tacticParams().set(kPredictedErrorAttr, float(c.error()));
      ++automatic;
    }
  }

  // INT8 layers, per output component: at build time the channels whose calibrated p99 of
  // kappa_v * kappa_phi predicts more than the threshold at the INT8 step compute in f32
  // (kernel param fp32_channels); at run time the adaptive test (adaptive_tau/_test).
  int split = 0, adaptive = 0;
  for (const auto& np : g.nodes()) {
    ir::Node& n = *np;
    const bool int8 = n.precision() == ir::DataType::kI8 ||
                      (n.precision() == ir::DataType::kUndefined && pc.allows(ir::DataType::kI8));
    if (!int8 || !isPrecisionCandidate(n) || !n.input(0)->quantization()) continue;
    if (pc.componentThreshold > 0 && cal)
      if (auto it = cal->condition.find(n.name()); it != cal->condition.end()) {
        std::vector<int64_t> channels;
        const std::vector<float>& p99 = it->second.channelP99;
        for (size_t c = 0; c < p99.size(); ++c)
          if (double(p99[c]) * unitRoundoff(ir::DataType::kI8) > pc.componentThreshold) channels.push_back(int64_t(c));
        if (!channels.empty()) {
          n.tacticParams().set("fp32_channels", channels);
          ++split;
        }
      }
    if (pc.adaptiveTau > 0) {
      n.tacticParams().set("adaptive_tau", float(pc.adaptiveTau));
      n.tacticParams().set("adaptive_test", pc.adaptiveTest);
      ++adaptive;
    }
  }

  r.changed = forced + quantized + automatic + split + adaptive;
  r.stats = std::to_string(forced) + " layers set by the user, " + std::to_string(automatic) +
            " chosen from condition estimates (" + std::to_string(promoted) + " promotions), " +
            std::to_string(quantized) + " activations quantized to u8, " + std::to_string(split) +
            " INT8 layers with FP32 channels, " + std::to_string(adaptive) + " adaptive";
  return r;
}

}  // namespace anvil::passes
