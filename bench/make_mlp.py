#!/usr/bin/env python3
"""Writes the issue's per-call latency model: an MLP 9-100-100-100-6 (Gemm + Relu, random
weights with a fixed seed, batch 1, static shapes), the smallest network whose run time is
dominated by the runtime's per-call overhead rather than by its kernels.

    .venv/bin/python bench/make_mlp.py [OUT.onnx]     (default bench/models/mlp_9_100_100_100_6.onnx)
"""
import os
import sys

import onnx  # before anything that may load Debian's torch (see tests/models/export_models.py)
from onnx import TensorProto, helper, numpy_helper
import numpy as np

WIDTHS = [9, 100, 100, 100, 6]


def make(path):
    rng = np.random.default_rng(9100)
    inits, nodes = [], []
    x = "input"
    for i, (k, n) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:])):
        w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
        b = (rng.standard_normal(n) * 0.05).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"fc{i}.w"), numpy_helper.from_array(b, f"fc{i}.b")]
        last = i == len(WIDTHS) - 2
        y = "output" if last else f"h{i}"
        nodes.append(helper.make_node("Gemm", [x, f"fc{i}.w", f"fc{i}.b"], [y if last else f"g{i}"],
                                      name=f"fc{i}", transB=1))
        if not last:
            nodes.append(helper.make_node("Relu", [f"g{i}"], [y], name=f"relu{i}"))
        x = y
    graph = helper.make_graph(
        nodes, "mlp_9_100_100_100_6",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, WIDTHS[0]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, WIDTHS[-1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # onnxruntime 1.20 reads up to 10; 8 is what opset 17 exports carry
    onnx.checker.check_model(model)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, path)


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "models", "mlp_9_100_100_100_6.onnx")
    make(out)
    print(out)
