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

It also writes an input X (OUT.X.npy) and the outputs of the ONNX LSTM formulas in float64
on it (OUT.expected/{Y,Y_h,Y_c}.npy); `--check DIR` compares the outputs an engine saved in DIR
(anvil --saveOutputs) with them (tests/runtime/lstm_b1_engine.cmake, at two threads).

    python tests/runtime/make_lstm_b1.py OUT.onnx
    python tests/runtime/make_lstm_b1.py --check OUT.onnx DIR
"""
import os
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


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm_reference(x, inits, name, reverse=False):
    """ONNX LSTM (one direction, default activations, gates i, o, f, c) in float64 on x [S, 1, I]."""
    t = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in inits}
    W, R, B = t[name + "_W"][0], t[name + "_R"][0], t[name + "_B"][0]
    H = R.shape[1]
    b = B[:4 * H] + B[4 * H:]
    h, c = np.zeros(H), np.zeros(H)
    S = x.shape[0]
    y = np.zeros((S, 1, 1, H))
    for step in range(S):
        ti = S - 1 - step if reverse else step
        g = W @ x[ti, 0] + R @ h + b
        i, o, f, cand = sigmoid(g[:H]), sigmoid(g[H:2 * H]), sigmoid(g[2 * H:3 * H]), np.tanh(g[3 * H:])
        c = f * c + i * cand
        h = o * np.tanh(c)
        y[ti, 0, 0] = h
    return y, h.reshape(1, 1, H), c.reshape(1, 1, H)


def check(model, saved):
    want_dir = model + ".expected"
    worst = 0.0
    for name in ("Y", "Y_h", "Y_c"):
        got = np.load(os.path.join(saved, name + ".npy"))
        want = np.load(os.path.join(want_dir, name + ".npy"))
        if got.shape != want.shape:
            print(f"{name}: shape {got.shape}, expected {want.shape}")
            return 1
        worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - want))))
    # float32 kernels over 3 x 24 contracting steps against float64: measured ~1e-6.
    print(f"max |engine - float64 reference| = {worst:.3g}")
    return 0 if worst <= 1e-4 else 1


def main():
    if sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
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
    x = rng.uniform(-1.0, 1.0, size=(S, 1, I)).astype(np.float32)
    np.save(out + ".X.npy", x)
    x0 = x.astype(np.float64)
    y0, _, _ = lstm_reference(x0, inits, "l0")
    y1, _, _ = lstm_reference(y0[:, 0], inits, "l1")
    y2, yh, yc = lstm_reference(y1[:, 0], inits, "l2", reverse=True)
    os.makedirs(out + ".expected", exist_ok=True)
    for name, v in (("Y", y2), ("Y_h", yh), ("Y_c", yc)):
        np.save(os.path.join(out + ".expected", name + ".npy"), v)


if __name__ == "__main__":
    main()
