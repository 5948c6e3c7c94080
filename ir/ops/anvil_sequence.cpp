// Schema of anvil.LSTMStack: a stack of L >= 2 forward LSTM layers, each reading the
// previous one's hidden sequence, as one node (passes/lstm_stack_fusion.cpp makes it from
// LSTM -> Squeeze(axis 1) -> LSTM chains, the form PyTorch exports nn.LSTM(num_layers=L)
// in). One node lets a runtime overlap the layers: layer l + 1 can run step t as soon as
// layer l has produced h_t, which two separate nodes (run one after the other) cannot.
//
//   anvil.LSTMStack(X, W_0, R_0, B_0, initial_h_0, initial_c_0, ..., W_{L-1}, ..., initial_c_{L-1})
//     -> (Y, Y_h_0, Y_c_0, ..., Y_h_{L-1}, Y_c_{L-1})
//   layers        int L >= 2 (the node has up to 1 + 5L inputs and 1 + 2L outputs)
//   hidden_sizes  ints, H_l per layer
// X [S, B, I] (ONNX LSTM layout 0 without the directions axis); layer l's inputs are those
// of an ONNX LSTM with one direction: W_l [1, 4 H_l, I_l], R_l [1, 4 H_l, H_l], B_l
// [1, 8 H_l] (optional), initial_h_l / initial_c_l [1, B, H_l] (optional, trailing ones
// may be left off), I_0 = I and I_l = H_{l-1}. Layer l is ONNX LSTM(X_l, W_l, R_l, B_l, -,
// initial_h_l, initial_c_l) with direction forward, layout 0, the default activations, no
// clip, no peepholes, no input_forget and no sequence_lens; X_0 = X and X_{l+1} =
// Squeeze(Y_l, axis 1). Y is the last layer's Y [S, 1, B, H_{L-1}]; Y_h_l and Y_c_l
// [1, B, H_l] are layer l's.
#include "ir/op_schema.h"
#include "ir/ops/infer_util.h"

namespace anvil::ir::ops {

namespace {

void inferLstmStack(InferContext& c) {
  const int64_t L = c.attrs().getInt("layers", 0);
  c.check(L >= 2, "layers must be at least 2, got " + std::to_string(L));
  const std::vector<int64_t> hs = c.attrs().getInts("hidden_sizes");
  c.check(int64_t(hs.size()) == L, "hidden_sizes must have one entry per layer");
  c.check(int64_t(c.numInputs()) <= 1 + 5 * L, "LSTMStack of " + std::to_string(L) + " layers takes at most " +
                                                   std::to_string(1 + 5 * L) + " inputs, got " +
                                                   std::to_string(c.numInputs()));
  c.check(int64_t(c.numOutputs()) == 1 + 2 * L, "LSTMStack of " + std::to_string(L) + " layers has " +
                                                    std::to_string(1 + 2 * L) + " outputs, got " +
                                                    std::to_string(c.numOutputs()));
  const TensorType& x = c.inputType(0);
  c.check(x.dtype == DataType::kF32, "X must be float32, got " + x.str());
  Dim seq = Dim::unknown(), batch = Dim::unknown();
  Dim in = Dim::unknown();
  if (x.shape.rankKnown()) {
    c.check(x.shape.rank() == 3, "X must have rank 3 [S, B, I], got " + x.str());
    seq = x.shape[0];
    batch = x.shape[1];
    in = x.shape[2];
  }
  auto checkDims = [&](size_t input, const std::vector<int64_t>& want, const std::string& what) {
    if (!c.hasInput(input)) return;
    c.check(c.inputDtype(input) == DataType::kF32, what + " must be float32");
    const Shape& s = c.inputShape(input);
    if (!s.rankKnown()) return;
    c.check(s.rank() == want.size(), what + " has shape " + s.str());
    for (size_t i = 0; i < want.size(); ++i)
      if (want[i] >= 0 && s[i].isStatic())
        c.check(s[i].value() == want[i], what + " has shape " + s.str() + ", dim " + std::to_string(i) +
                                             " should be " + std::to_string(want[i]));
  };
  for (int64_t l = 0; l < L; ++l) {
    const int64_t H = hs[size_t(l)];
    c.check(H > 0, "hidden_sizes must be positive");
    const size_t base = size_t(1 + 5 * l);
    const std::string layer = "layer " + std::to_string(l) + "'s ";
    c.check(c.hasInput(base) && c.hasInput(base + 1), layer + "W and R are required");
    const int64_t I = l == 0 ? (in.isStatic() ? in.value() : -1) : hs[size_t(l - 1)];
    checkDims(base, {1, 4 * H, I}, layer + "W");
    checkDims(base + 1, {1, 4 * H, H}, layer + "R");
    checkDims(base + 2, {1, 8 * H}, layer + "B");
    checkDims(base + 3, {1, -1, H}, layer + "initial_h");
    checkDims(base + 4, {1, -1, H}, layer + "initial_c");
    c.setOutput(size_t(1 + 2 * l), DataType::kF32, Shape({Dim(1), batch, Dim(H)}));
    c.setOutput(size_t(2 + 2 * l), DataType::kF32, Shape({Dim(1), batch, Dim(H)}));
  }
  c.setOutput(0, DataType::kF32, Shape({seq, Dim(1), batch, Dim(hs.back())}));
}

}  // namespace

void registerAnvilSequenceOps(OpRegistry& r) {
  r.add({.name = "LSTMStack", .domain = "anvil", .minInputs = 3, .maxInputs = -1, .minOutputs = 5,
         .maxOutputs = -1, .infer = inferLstmStack,
         .summary = "a stack of forward LSTM layers, each reading the previous one's hidden sequence"});
}

}  // namespace anvil::ir::ops
