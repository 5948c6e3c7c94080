"""Two inverted-residual blocks whose expansion and depthwise convolutions the builder fuses
into anvil.FusedConvDw (tests/cli/convdw_test.cmake), and one too small to fuse.

x [1, 16, 96, 96] -> 1x1 16->96 + Clip(0, 6) -> depthwise 3x3 stride 2 + Clip(0, 6)
  (96 x 96 x 96 floats between them: 3.4 MiB, fused at one and at two threads)
  -> 1x1 96->32 -> 1x1 32->144 + SiLU -> depthwise 5x5 stride 1 + SiLU
  (144 x 48 x 48 floats: 1.27 MiB, fused at one thread only) -> 1x1 144->24 -> y [1, 24, 48, 48]
and a second image path at 32 x 32 (x2 [1, 32, 32, 32] -> 1x1 32->144 + SiLU -> depthwise
5x5 stride 1 + SiLU: 576 KiB, never fused -> 1x1 144->8 -> y2).
Writes MODEL.onnx and DIR/x.npy, DIR/x2.npy.
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main(model_path, out_dir):
    rng = np.random.default_rng(11)
    inits, nodes = [], []

    def const(name, a):
        inits.append(numpy_helper.from_array(a.astype(np.float32), name))
        return name

    def conv(name, x, cin, cout, k=1, stride=1, group=1, pads=0):
        w = const(name + "_w", rng.standard_normal((cout, cin // group, k, k)) / np.sqrt(cin // group * k * k))
        b = const(name + "_b", 0.1 * rng.standard_normal(cout))
        nodes.append(helper.make_node("Conv", [x, w, b], [name], name=name, kernel_shape=[k, k], strides=[stride, stride],
                                      pads=[pads] * 4, group=group))
        return name

    def clip(x):
        lo, hi = const(x + "_lo", np.array(0.0)), const(x + "_hi", np.array(6.0))
        nodes.append(helper.make_node("Clip", [x, lo, hi], [x + "_clip"], name=x + "_clip"))
        return x + "_clip"

    def silu(x):
        nodes.append(helper.make_node("Sigmoid", [x], [x + "_sig"], name=x + "_sig"))
        nodes.append(helper.make_node("Mul", [x, x + "_sig"], [x + "_silu"], name=x + "_silu"))
        return x + "_silu"

    h = clip(conv("expand1", "x", 16, 96))
    h = clip(conv("dw1", h, 96, 96, k=3, stride=2, group=96, pads=1))
    h = conv("project1", h, 96, 32)
    h = silu(conv("expand2", h, 32, 144))
    h = silu(conv("dw2", h, 144, 144, k=5, group=144, pads=2))
    nodes.append(helper.make_node("Identity", [conv("project2", h, 144, 24)], ["y"], name="out"))
    h2 = silu(conv("expand3", "x2", 32, 144))
    h2 = silu(conv("dw3", h2, 144, 144, k=5, group=144, pads=2))
    nodes.append(helper.make_node("Identity", [conv("project3", h2, 144, 8)], ["y2"], name="out2"))
    g = helper.make_graph(nodes, "convdw",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 96, 96]),
                           helper.make_tensor_value_info("x2", TensorProto.FLOAT, [1, 32, 32, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 24, 48, 48]),
                           helper.make_tensor_value_info("y2", TensorProto.FLOAT, [1, 8, 32, 32])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, model_path)
    np.save(out_dir + "/x.npy", rng.standard_normal((1, 16, 96, 96)).astype(np.float32))
    np.save(out_dir + "/x2.npy", rng.standard_normal((1, 32, 32, 32)).astype(np.float32))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
