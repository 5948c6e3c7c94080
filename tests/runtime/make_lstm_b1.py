"""Writes a batch-1 three-layer LSTM (random weights, fixed seed) for the runtime thread tests:
X [24, 1, 64] -> LSTM forward, hidden 64 -> LSTM forward, hidden 64 -> LSTM reverse,
hidden 48 -> Y, Y_h, Y_c.

The two forward layers fuse into one anvil.LSTMStack (passes/lstm_stack_fusion.cpp), whose
layers an engine built for two threads runs overlapped on two tasks (the streamed run of
cpu/tactics/native_sequence_rnn.cpp: layers claimed in order, steps and projection blocks
handed over through atomics); the reverse layer stays an LSTM with enough input projection
for the LSTM kernel's pipelined projection (its blocks on a second task while the recurrence
runs, also through atomics). runtime_threads checks the outputs bitwise across contexts,
and tests/runtime/tsan_test.cmake runs it under ThreadSanitizer.

    python tests/runtime/make_lstm_b1.py OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def lstm_weights(rng, name, inputs, hidden):
    scale = 1.0 / np.sqrt(hidden)
    w = rng.uniform(-scale, scale, size=(1, 4 * hidden, inputs)).astype(np.float32)
    r = rng.uniform(-scale, scale, size=(1, 4 * hidden, hidden)).astype(np.float32)
    b = rng.uniform(-scale, scale, size=(1, 8 * hidden)).astype(np.float32)
    return [numpy_helper.from_array(w, name + "_W"), numpy_helper.from_array(r, name + "_R"),
            numpy_helper.from_array(b, name + "_B")]


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(11)
    S, I, H1, H2 = 24, 64, 64, 48
    inits = lstm_weights(rng, "l1", I, H1) + lstm_weights(rng, "l2", H1, H2) + lstm_weights(rng, "l0", I, H1)
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
    nodes = [
        helper.make_node("LSTM", ["X", "l0_W", "l0_R", "l0_B"], ["y0"], hidden_size=H1),
        helper.make_node("Squeeze", ["y0", "axis1"], ["x1"]),  # [S, 1, 1, H1] -> [S, 1, H1]
        helper.make_node("LSTM", ["x1", "l1_W", "l1_R", "l1_B"], ["y1"], hidden_size=H1),
        helper.make_node("Squeeze", ["y1", "axis1"], ["x2"]),
        helper.make_node("LSTM", ["x2", "l2_W", "l2_R", "l2_B"], ["Y", "Y_h", "Y_c"], hidden_size=H2,
                         direction="reverse"),
    ]
    graph = helper.make_graph(
        nodes, "lstm_b1",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [S, 1, I])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [S, 1, 1, H2]),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, 1, H2]),
         helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, [1, 1, H2])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, out)


if __name__ == "__main__":
    main()
