// What every pass is told about the build: the target (device, CPU ISA or CUDA compute
// capability), the precision configuration, calibration data and the thread count. Layout,
// precision and placement decisions read it, so they are ordinary passes with IR-text tests.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ir/dtype.h"
#include "ir/layout.h"

namespace anvil::passes {

// Calibration results (per-value ranges, condition estimates) gathered on the user's data;
// defined by the precision-selection work, opaque to everything else.
struct CalibrationData;

struct PrecisionConfig {
  // Precisions a compute node may run in; the automatic choice picks among these.
  std::vector<ir::DataType> allowed = {ir::DataType::kF32};
  // Per-layer overrides by node name (the user's word wins over the automatic choice).
  std::map<std::string, ir::DataType> overrides;
  // How the overrides bind (--precisionConstraints): kPrefer falls back to the allowed
  // precisions where no kernel serves the requested one; kObey fails the build.
  enum class Constraints { kPrefer, kObey };
  Constraints constraints = Constraints::kPrefer;
  // --precision=auto: each layer takes the cheapest allowed precision whose predicted
  // error (condition estimates x unit roundoff) keeps the model within `tolerance`.
  bool automatic = false;
  // Layers the verification of --precision=auto raised (after measuring the output error
  // on held-out samples): like overrides, but reported as "budget".
  std::map<std::string, ir::DataType> promoted;
  // The largest relative output error the reduced precisions may add (--accuracyTolerance).
  double tolerance = 1e-3;
  // The tolerance counts top-1 disagreements (--accuracyMetric=top1), not a relative error:
  // the prediction (a relative error) cannot be held against it, so every layer starts at
  // its cheapest precision and the measured verification raises what it must.
  bool top1 = false;
  // INT8 layers: output channels above this predicted error compute in f32 (0: off), and
  // the run-time adaptive test's threshold and kind (0: off).
  double componentThreshold = 0;
  double adaptiveTau = 0;
  std::string adaptiveTest = "product";

  bool allows(ir::DataType t) const {
    for (ir::DataType a : allowed)
      if (a == t) return true;
    return false;
  }
  // Only f32 allowed: there is no precision to choose for an f32 model.
  bool onlyF32() const { return allowed.size() == 1 && allowed[0] == ir::DataType::kF32; }
};

struct PassContext {
  ir::Device device = ir::Device::kCPU;
  // CPU target as engines store it ("x86-64+avx2+fma", runtime::hostCpuIsa()); "" = the
  // building machine's.
  std::string cpuIsa;
  // CUDA compute capability as major*10+minor (80, 90); 0 when the target is the CPU.
  int cudaComputeCapability = 0;
  PrecisionConfig precision;
  const CalibrationData* calibration = nullptr;  // null until calibration has run
  int threads = 0;  // intra-op threads the engine will run with (0: the default)
};

}  // namespace anvil::passes
