"""Small ONNX models of the anon tests (committed next to this script; rerun to remake).

anon_cnn.onnx: a conv net with a dynamic batch dim (batch buckets; its compute grows with
    the batch, which the timing test needs).
anon_seq.onnx: a position-wise MLP over [batch, seq, 8] (batch and sequence buckets).
anon_mix.onnx: softmax over the sequence axis: every position depends on the padding, so
    bucketing the sequence must be refused at build time.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(11)


def const(name, shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def cnn(path):
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], transB=1),
    ]
    inits = [const("w1", [16, 1, 3, 3]), const("b1", [16], 0.1), const("w2", [32, 16, 3, 3], 0.1),
             const("b2", [32], 0.1), const("w3", [10, 32]), const("b3", [10], 0.1)]
    g = helper.make_graph(nodes, "anon_cnn",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 32, 32])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    save(g, path)


def seq(path):
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m1"]),
        helper.make_node("Add", ["m1", "b1"], ["a1"]),
        helper.make_node("Relu", ["a1"], ["r1"]),
        helper.make_node("MatMul", ["r1", "w2"], ["y"]),
    ]
    inits = [const("w1", [8, 16]), const("b1", [16], 0.1), const("w2", [16, 4])]
    g = helper.make_graph(nodes, "anon_seq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "S", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "S", 4])], inits)
    save(g, path)


def mix(path):
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m1"]),
        helper.make_node("Softmax", ["m1"], ["y"], axis=1),
    ]
    g = helper.make_graph(nodes, "anon_mix", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "S", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "S", 4])],
                          [const("w1", [8, 4])])
    save(g, path)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
    os.makedirs(out, exist_ok=True)
    cnn(os.path.join(out, "anon_cnn.onnx"))
    seq(os.path.join(out, "anon_seq.onnx"))
    mix(os.path.join(out, "anon_mix.onnx"))
