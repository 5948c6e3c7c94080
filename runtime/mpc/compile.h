// The mpc compiler: ONNX -> the fixed-point Program of program.h, calibrated while it is
// built (each step runs on the calibration batches through the fixed executor as soon as
// it exists, so every lookup table's shift is chosen on the quantized upstream values).
//
// Fixed-point format (docs/mpc.md):
//  - scales are powers of two (times 1/count after a sum pool or a mean), so scales of two
//    activations differ by a power of two and kMulConst aligns them exactly; the
//    exceptions are a linear layer read only by a table and scalar products (below);
//  - inputs at 2^ceil(log2(max|x| / 2^15)) over the calibration data (16-bit inputs);
//  - weights per tensor at 2^ceil(log2(max|W| / 2^15)) (|Wq| in [2^14, 2^15]); biases at the
//    layer's output scale (in.scale * weightScale). A layer read only by a table then gets
//    a weight scale up to 2x finer that puts its calibration maximum near index 110 of 127
//    (one more bit at the nonlinearity than a power of two allows, a ~15% margin kept);
//  - every nonlinearity reads an 8-bit index: shift d is the least one for which the
//    calibration maximum |v| rounds into [-127, 127] (t = floor((v + 2^(d-1)) / 2^d));
//    one-sided inputs (sums of exps, variances, exp after the row maximum) read their 256
//    entries as [-1, 254] or [-239, 16] (Step::tableLow): twice the range before a wrap;
//  - table outputs at 2^ceil(log2(max|f| / 2^15)) over the indices calibration reached
//    (~2^15 steps), entries beyond saturating at 2^16;
//  - an operand too wide for what reads it (a product or a scale alignment that could pass
//    2^60 / 2^48) first goes through an identity table (requantization to 8 bits);
//  - a Mul / Div by a positive scalar constant is only a new scale on the same elements (a
//    kReshape); where such a scale meets a power-of-two one in an Add / Sub / Concat, an
//    identity table brings it back onto the grid;
//  - Softmax subtracts the row maximum (a kMaxPool over the row) before its exp table.
// Weights at 2^15 rather than 2^12: the error is the 8-bit activations' either way (top-1
// vs onnxruntime on the digits test splits, 2^15 / 2^12: mlp 100% / 100%, cnn 100% / 100%,
// transformer 99.8% / 99.6%) and 2^15 still leaves >= 10 bits of ring headroom on all three
// (static worst case 2^35.0, 2^35.6, 2^52.3).
// The ring never wraps on calibration data; the report gives the largest magnitude seen and
// a static worst-case bound per run (see CompileReport). Inputs far beyond the calibration
// range can wrap a table index (t leaves the table's 256 values): calibrate on
// representative data (none wraps on the digits test splits).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/mpc/program.h"

namespace anvil::mpc {

struct CompileOptions {
  std::map<std::string, std::vector<int64_t>> shapes;  // --shapes: the static input shapes
  std::string calibDir;                                 // --calibData: DIR/<input>.npy, samples on axis 0
  bool verbose = false;
  int inputBits = 15;      // inputs, weights and table outputs: magnitudes up to 2^bits
  int weightBits = 15;
  int tableBits = 15;
  // The first part of the calibration batches calibrates; the rest (the held-out part,
  // never seen by calibration) measures agreement with the float model.
  double calibrationFraction = 0.75;
};

struct LutReport {
  std::string name;
  StepKind kind;
  LutFunction function;
  int32_t shift;
  double inScale, outScale;
  int64_t calibrationMaxIndex;  // max |t| over the calibration data (<= 127)
};

struct CompileReport {
  std::map<std::string, int> stepsByKind;
  std::vector<LutReport> luts;
  double inputScale = 0;
  double maxAbsSeenLog2 = 0;     // log2 of the largest |int64| any tensor held on calibration
  double worstCaseBoundLog2 = 0; // log2 of the static bound (inputs at their calibration max)
  int calibrationBatches = 0, evaluationBatches = 0;
  int64_t evaluatedRows = 0;
  double top1Agreement = -1;     // fraction of rows whose argmax equals the float model's (-1: n/a)
  double relativeError = 0;      // ||fixed - float|| / ||float|| over the evaluation batches
  std::vector<std::string> log;
};

// Parses the model, fixes the input shapes to `shapes` (re-running shape inference; the
// batch of a model exported with a fixed batch can be changed when nothing in the graph
// depends on it) and runs the passes the lowering needs (constant and shape folding,
// BatchNorm into Conv, no-op removal, the ONNX-op fusions Gelu / LayerNormalization /
// Softmax). Also the float reference the compiler measures against.
ir::Model prepareModel(const std::string& onnxPath, const std::map<std::string, std::vector<int64_t>>& shapes);

// Builds the server program (weights, biases, a fresh program id and server key pair).
Program compileProgram(const std::string& onnxPath, const CompileOptions& options, CompileReport* report = nullptr);

const char* stepKindName(StepKind k);
const char* lutFunctionName(LutFunction f);

}  // namespace anvil::mpc
