"""A two-layer MLP whose MatMuls the Strassen tactics serve (tests/cli/strassen_test.cmake).

x [64, 256] -> MatMul W1 [256, 384] + b1 -> Relu -> MatMul W2 [384, 256] + b2 -> y [64, 256]
Writes MODEL.onnx and DIR/x.npy (one input).
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main(model_path, out_dir):
    rng = np.random.default_rng(5)
    w1 = (rng.standard_normal((256, 384)) / 16).astype(np.float32)
    b1 = (0.1 * rng.standard_normal(384)).astype(np.float32)
    w2 = (rng.standard_normal((384, 256)) / 20).astype(np.float32)
    b2 = (0.1 * rng.standard_normal(256)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"], name="fc1"),
        helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1_bias"),
        helper.make_node("Relu", ["h1"], ["h"], name="fc1_relu"),
        helper.make_node("MatMul", ["h", "w2"], ["y0"], name="fc2"),
        helper.make_node("Add", ["y0", "b2"], ["y"], name="fc2_bias"),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    g = helper.make_graph(nodes, "strassen_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 256])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 256])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, model_path)
    np.save(out_dir + "/x.npy", rng.standard_normal((64, 256)).astype(np.float32))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
