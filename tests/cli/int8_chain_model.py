"""A small residual CNN for the INT8-chain test (tests/cli/int8_chain_test.cmake).

x -> c1 (3x3, ReLU) -> a -> c2 (1x1, ReLU) -> b -> p2 (MaxPool 3x3, stride 1, pad 1) -> m -> c3 (3x3) + a
  -> ReLU -> d -> c4 (1x1, stride 2) -> out
Writes MODEL.onnx, DIR/calib/input.npy (16 samples) and DIR/input.npy (one sample).
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main(model_path, out_dir):
    rng = np.random.default_rng(11)

    def conv(name, x, cin, cout, k, stride=1, pad=0):
        w = (rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
        b = (0.1 * rng.standard_normal(cout)).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, name + ".w"), numpy_helper.from_array(b, name + ".b")])
        nodes.append(helper.make_node("Conv", [x, name + ".w", name + ".b"], [name + ".y"], name=name,
                                      kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4))
        return name + ".y"

    nodes, inits = [], []
    a0 = conv("c1", "input", 3, 16, 3, pad=1)
    nodes.append(helper.make_node("Relu", [a0], ["a"], name="r1"))
    b0 = conv("c2", "a", 16, 16, 1)
    nodes.append(helper.make_node("Relu", [b0], ["b"], name="r2"))
    nodes.append(helper.make_node("MaxPool", ["b"], ["m"], name="p2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    c0 = conv("c3", "m", 16, 16, 3, pad=1)
    nodes.append(helper.make_node("Add", [c0, "a"], ["s"], name="add"))
    nodes.append(helper.make_node("Relu", ["s"], ["d"], name="r3"))
    out = conv("c4", "d", 16, 8, 1, stride=2)
    nodes.append(helper.make_node("Identity", [out], ["output"], name="id"))
    graph = helper.make_graph(nodes, "int8_chain", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 12, 12])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8, 6, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, model_path)
    x = rng.standard_normal((17, 3, 12, 12)).astype(np.float32)
    np.save(out_dir + "/calib/input.npy", x[:16])
    np.save(out_dir + "/input.npy", x[16:])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
