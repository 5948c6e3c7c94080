// The mpc compiler: ONNX -> the fixed-point Program of program.h, calibrated while it is
// built (each step runs on the calibration batches through the fixed executor as soon as
// it exists, so every lookup table's shift is chosen on the quantized upstream values).
//
// Fixed-point format (docs/mpc.md):
//  - every scale is a power of two (times 1/count after a sum pool or a mean), so scales of
//    two activations differ by a power of two and kMulConst aligns them exactly;
//  - inputs at 2^ceil(log2(max|x| / 2^15)) over the calibration data (16-bit inputs);
//  - weights per tensor at 2^ceil(log2(max|W| / 2^15)) (|Wq| in [2^14, 2^15]); biases at the
//    layer's output scale (in.scale * weightScale);
//  - every nonlinearity reads an 8-bit index: shift d is the least one for which the
//    calibration maximum |v| rounds into [-127, 127] (t = floor((v + 2^(d-1)) / 2^d));
//  - table outputs at 2^ceil(log2(max|f| / 2^15)) over the indices calibration reached
//    (~2^15 steps), entries beyond saturating at 2^16;
//  - an operand too wide for what reads it (a product or a scale alignment that could pass
//    2^60 / 2^48) first goes through an identity table (requantization to 8 bits);
//  - Softmax subtracts the row maximum (a kMaxPool over the row) before its exp table.
// Weights at 2^15 rather than 2^12: the error is the 8-bit activations' either way (top-1
// vs float on the digits test splits: mlp 99.8% / 99.6%, cnn 100% / 100%, transformer
// 99.6% / 99.4%) and 2^15 still leaves >= 11 bits of ring headroom on all three.
// The ring never wraps on calibration data; the report gives the largest magnitude seen and
// a static worst-case bound per run (see CompileReport). Inputs beyond the calibration
// range can wrap a table index (t leaves [-128, 127]): calibrate on representative data.
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
