// Precision selection: what calibration measured (activation ranges, condition estimates)
// and the pass that turns it, with the user's flags, into per-node compute precisions and
// per-value quantization parameters (passes/precision.cpp).
//
// The condition estimate of a linear layer v = Wx + b followed by an activation phi, per
// output component i (a channel at one pixel, a feature of one row) and calibration sample:
//   kappa_v,i   = (sum_j |w_ij| |x_j| + |b_i|) / |v_i|
//   kappa_phi,i = |v_i phi'(v_i)| / |phi(v_i)|
// and computing the layer with unit roundoff (or relative quantization step) u perturbs the
// output component by about kappa_v,i * kappa_phi,i * u, relatively. The statistics below
// are of the product over every component and sample.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/ops/anvil_linear.h"
#include "passes/pass_context.h"
#include "passes/pipeline.h"

namespace anvil::passes {

// The range of a value's elements calibration chose (lo <= hi; the u8 grid made from it
// always includes 0, see quantizationU8).
struct ValueRange {
  float lo = 0.0f, hi = 0.0f;
};

// kappa_v * kappa_phi of a linear node's output components, over the calibration samples.
struct ConditionStats {
  double median = 0, p99 = 0, max = 0;  // capped at kConditionCap (|v_i| = 0 gives the cap)
  int64_t components = 0;               // components x samples measured
  int64_t sampled = 0;                  // of them, the values the quantiles come from (a bounded sample)
  // The normwise figure the automatic choice predicts with: ||phi'(v) (|W||x| + |b|)|| /
  // ||phi(v)|| over all components and samples (2-norms): the layer's output perturbation
  // per unit roundoff relative to its output, where the few components with v near 0 that
  // dominate p99 weigh by their size.
  double normwise = 0;
  std::vector<float> channelP99;        // per output channel (Conv: C, MatMul/Gemm: N)
};
inline constexpr double kConditionCap = ir::linear::kConditionCap;

// A linear node's inputs and output on the first calibration batch (f32, as the reference
// kernels computed them): the builder runs the chosen reduced-precision kernel on them to
// measure the layer's own error.
struct LayerSample {
  std::vector<ir::Tensor> inputs;  // per node input (undefined where absent)
  ir::Tensor output;
};

struct CalibrationData {
  std::string method;                             // "minmax", "entropy", "percentile", "cache"
  int batches = 0;                                // calibration batches run
  std::map<std::string, ValueRange> ranges;       // per value name
  std::map<std::string, ConditionStats> condition;  // per node name (linear nodes)
  std::map<std::string, LayerSample> samples;       // per node name (linear nodes)
};

// The unit roundoff (or relative quantization step) of a compute precision: 2^-24 for f32,
// 2^-11 for f16, 2^-8 for bf16, 1/255 for int8 (one step of a u8 range); 0 for others.
double unitRoundoff(ir::DataType precision);

// Whether a node is a linear layer that the reduced-precision kernels can serve: Conv,
// Gemm, MatMul or their anvil.Fused* forms, with constant weights (input 1) and an f32
// activation input 0. The precision pass and calibration's condition estimates use it.
bool isPrecisionCandidate(const ir::Node& n);

// Asymmetric u8 quantization of a calibrated range: scale = (hi - lo) / 255 (1 when the
// range is empty), zero point = round(-lo / scale), so that 0.0 is exactly representable.
ir::Quantization quantizationU8(ValueRange r);

// How each node's precision was decided (for --dumpLayerInfo and --precisionReport).
inline constexpr const char* kPrecisionReasonAttr = "precision_reason";  // tactic param: user|budget|cost
// --precision=auto: the precisions accurate enough for a layer (ints: DataType, the least
// precise first); the builder times their kernels and keeps the fastest.
inline constexpr const char* kPrecisionChoicesAttr = "precision_choices";
// The predicted relative output error of the chosen precision, as a tactic param (float).
inline constexpr const char* kPredictedErrorAttr = "predicted_error";
// The layer's measured relative output error, ||y - y_f32|| / ||y_f32||, of its kernel on
// the first calibration batch's f32 inputs (float tactic param).
inline constexpr const char* kMeasuredErrorAttr = "measured_error";

}  // namespace anvil::passes
