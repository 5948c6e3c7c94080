// Calibration: runs the optimized f32 graph on the user's samples (--calibData) with the
// reference kernels, and gathers what precision selection needs: the range of every
// activation (by a calibrator: min-max, entropy or percentile over a histogram of |x|) and
// the condition estimates of every linear layer (passes/precision.h). Ranges round-trip
// through a calibration cache file (--calib).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/ops/anvil_linear.h"
#include "passes/precision.h"

namespace anvil::codegen {

enum class Calibrator { kMinMax, kEntropy, kPercentile };
const char* calibratorName(Calibrator c);              // "minmax", "entropy", "percentile"
bool parseCalibrator(const std::string& s, Calibrator* c);

// Streaming statistics of one tensor over many batches: min, max, and a histogram of |x|
// with kBins equal bins over [0, absMax] (re-binned, by overlap, when a batch raises
// absMax). Non-finite elements are counted apart and otherwise ignored.
class Histogram {
 public:
  static constexpr int kBins = 2048;
  void add(const float* x, int64_t n);
  float min() const { return count_ ? min_ : 0.0f; }
  float max() const { return count_ ? max_ : 0.0f; }
  uint64_t count() const { return count_; }
  uint64_t nonFinite() const { return nonFinite_; }
  double binWidth() const { return width_; }  // 0 until a nonzero element was seen
  const std::vector<double>& bins() const { return bins_; }

 private:
  std::vector<double> bins_ = std::vector<double>(kBins, 0.0);
  float min_ = 0.0f, max_ = 0.0f;
  double width_ = 0.0;
  uint64_t count_ = 0, nonFinite_ = 0;
};

// The range a calibrator keeps (lo <= hi). kEntropy chooses the |x| threshold whose
// quantized histogram (128 levels per side for signed data, 256 for non-negative) is
// closest to the observed one in Kullback-Leibler divergence; kPercentile the threshold
// below which `percentile`% of the |x| lie. Both then clip min and max to the threshold.
passes::ValueRange calibrate(const Histogram& h, Calibrator c, double percentile = 99.99);

// Calibration cache (--calib): a header line "anvil-calibration-1 <method>" and one line per
// value, "<name>: <lo> <hi>", the floats as 8 hex digits of their bits. A TensorRT cache
// (header "TRT-...", lines "<name>: <scale>") reads as symmetric ranges [-127 s, 127 s].
std::string writeCalibrationCache(const passes::CalibrationData& d);
passes::CalibrationData readCalibrationCache(const std::string& text);  // kInvalidArgument on a bad file

// Samples for calibration: one .npy per graph input in `dir`, named as --saveOutputs names
// files (the input name with [^A-Za-z0-9._-] replaced by '_'), samples stacked along axis
// 0; split into batches of the profile's opt shape (the last, partial batch is dropped).
std::vector<std::map<std::string, ir::Tensor>> loadCalibrationBatches(
    const std::string& dir, const std::vector<std::pair<std::string, ir::DataType>>& inputs,
    const std::map<std::string, std::vector<int64_t>>& optShapes);
// The graph's non-constant inputs.
std::vector<std::pair<std::string, ir::DataType>> graphInputs(const ir::Graph& g);
// --precision=auto keeps the last batches for verifying the output error: a quarter of
// them (at least one) when there are two or more, else none (the one batch serves both).
int heldOutBatches(int batches);

struct CalibrationOptions {
  Calibrator calibrator = Calibrator::kPercentile;
  double percentile = 99.99;
  bool conditions = true;  // also the condition estimates of the linear layers
};

// Runs the graph on every batch (reference kernels) and gathers ranges (of every named
// non-constant f32 value) and condition estimates.
passes::CalibrationData runCalibration(const ir::Graph& g, const std::vector<std::map<std::string, ir::Tensor>>& batches,
                                       const CalibrationOptions& options);

}  // namespace anvil::codegen
