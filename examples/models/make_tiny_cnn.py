"""Writes the bundled example model: a small digit-classifier-shaped CNN with random
weights (fixed seed), 1x28x28 input, plus an input .npy and onnxruntime's output.

    .venv/bin/python examples/models/make_tiny_cnn.py examples/models
"""
import sys
import os

import onnx  # import before anything that may load Debian's torch (see TOOLCHAIN.md)
from onnx import helper, numpy_helper, TensorProto
import numpy as np


def main(out_dir: str) -> None:
    rng = np.random.default_rng(7)

    def init(name, shape, scale=0.2):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [
        init("conv1.w", (8, 1, 3, 3)), init("conv1.b", (8,), 0.05),
        init("conv2.w", (16, 8, 3, 3), 0.1), init("conv2.b", (16,), 0.05),
        init("fc.w", (10, 16 * 7 * 7), 0.05), init("fc.b", (10,), 0.05),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv1.w", "conv1.b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.w", "conv2.b"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p2"], name="pool2", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="anvil-examples")
    model.ir_version = 8
    onnx.checker.check_model(model)
    os.makedirs(out_dir, exist_ok=True)
    onnx.save(model, os.path.join(out_dir, "tiny_cnn.onnx"))
    x = rng.uniform(0, 1, (1, 1, 28, 28)).astype(np.float32)
    np.save(os.path.join(out_dir, "tiny_cnn.input.npy"), x)
    import onnxruntime as ort
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.save(os.path.join(out_dir, "tiny_cnn.expected.npy"), sess.run(None, {"input": x})[0])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
