#!/usr/bin/env python3
"""Single-op models outside the zoo (decoders, detection heads, style transfer), anvil next
to onnxruntime in the same run.

Usage:
    build/bench-venv/bin/python bench/ops.py [--threads 1,2] [--rounds 3] [--duration 1]
        [--anvil build/tools/anvil] [--bench-bin build/bench/anvil_bench_runtime]
        [--only resize,convtranspose] [--json out.json]

Each model is one node over a batch-1 activation of a typical size (an FPN's x2 nearest
upsampling, a segmentation head's bilinear x2, a UNet's and a GAN's ConvTranspose, a
reflect Pad and an InstanceNormalization of style transfer, a GroupNormalization of a
diffusion UNet, a PRelu, a channel ArgMax, a TopK over YOLO's 25200 boxes, ...). anvil and
onnxruntime are timed exactly as bench/compare.py times them (the engine built by the CLI
and run by `anvil_bench_runtime --latency`; onnxruntime's CPU EP with IOBinding), in
interleaved rounds, the median of the rounds' medians. Prints a markdown table (what
docs/performance.md's "Ops outside the zoo" section holds).
"""

import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402  (the runtimes and the timing loop)
from compare import np, helper, numpy_helper, TensorProto  # noqa: E402


def op_models():
    """(name, what, input shape, nodes, initializers) of every single-op model."""
    rng = np.random.default_rng(0)

    def w(name, *shape, scale=0.05):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    def i64(name, values):
        return numpy_helper.from_array(np.array(values, np.int64), name)

    def f32(name, values):
        return numpy_helper.from_array(np.array(values, np.float32), name)

    n = helper.make_node
    return [
        ("resize_nearest_x2", "Resize nearest x2 (FPN / YOLO neck) [1,256,40,40]", [1, 256, 40, 40],
         [n("Resize", ["x", "", "s"], ["y"], mode="nearest", coordinate_transformation_mode="asymmetric",
            nearest_mode="floor")], [f32("s", [1, 1, 2, 2])]),
        ("resize_bilinear_x2", "Resize bilinear x2, half_pixel [1,64,128,128]", [1, 64, 128, 128],
         [n("Resize", ["x", "", "s"], ["y"], mode="linear", coordinate_transformation_mode="pytorch_half_pixel")],
         [f32("s", [1, 1, 2, 2])]),
        ("convtranspose_k4s2", "ConvTranspose 4x4 s2 256->128 [1,256,16,16]", [1, 256, 16, 16],
         [n("ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1])],
         [w("w", 256, 128, 4, 4), w("b", 128)]),
        ("convtranspose_k2s2", "ConvTranspose 2x2 s2 128->64 (UNet) [1,128,64,64]", [1, 128, 64, 64],
         [n("ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
         [w("w", 128, 64, 2, 2), w("b", 64)]),
        ("convtranspose_gan", "ConvTranspose 4x4 s2 512->256 (GAN) [1,512,4,4]", [1, 512, 4, 4],
         [n("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1])],
         [w("w", 512, 256, 4, 4)]),
        ("pad_reflect", "Pad reflect 3 [1,64,128,128]", [1, 64, 128, 128],
         [n("Pad", ["x", "p"], ["y"], mode="reflect")], [i64("p", [0, 0, 3, 3, 0, 0, 3, 3])]),
        ("instancenorm", "InstanceNormalization [1,64,128,128]", [1, 64, 128, 128],
         [n("InstanceNormalization", ["x", "s", "b"], ["y"])], [w("s", 64, scale=1.0), w("b", 64)]),
        ("groupnorm", "GroupNormalization 32 groups [1,320,32,32]", [1, 320, 32, 32],
         [n("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=32)], [w("s", 320, scale=1.0), w("b", 320)]),
        ("prelu", "PRelu per channel [1,64,112,112]", [1, 64, 112, 112],
         [n("PRelu", ["x", "s"], ["y"])], [w("s", 64, 1, 1, scale=0.25)]),
        ("depthtospace", "DepthToSpace 2 (sub-pixel conv) [1,64,64,64]", [1, 64, 64, 64],
         [n("DepthToSpace", ["x"], ["y"], blocksize=2)], []),
        ("argmax_channels", "ArgMax over 21 classes [1,21,256,256]", [1, 21, 256, 256],
         [n("ArgMax", ["x"], ["y"], axis=1)], []),
        ("topk_boxes", "TopK 100 of 25200 [1,25200]", [1, 25200],
         [n("TopK", ["x", "k"], ["y", "i"])], [i64("k", [100])]),
        ("reducemax_channels", "ReduceMax over channels (CBAM) [1,256,56,56]", [1, 256, 56, 56],
         [n("ReduceMax", ["x", "a"], ["y"], keepdims=1)], [i64("a", [1])]),
    ]


def build(name, shape, nodes, inits, tmp):
    # Indices (ArgMax's output, TopK's second) are int64, every other output f32.
    def elem(node, o):
        return TensorProto.INT64 if node.op_type == "ArgMax" or (node.op_type == "TopK" and o == node.output[1]) \
            else TensorProto.FLOAT
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info(o, elem(nd, o), None) for nd in nodes for o in nd.output],
                          inits)
    opset = 21 if any(nd.op_type == "GroupNormalization" for nd in nodes) else 18
    path = os.path.join(tmp, f"{name}.onnx")
    with open(path, "wb") as f:
        f.write(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString())
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    return compare.Model(name, path, {"x": x}, tmp)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=1.0)
    p.add_argument("--anvil", default=os.path.join(compare.ROOT, "build", "tools", "anvil"))
    p.add_argument("--bench-bin", default=os.path.join(compare.ROOT, "build", "bench", "anvil_bench_runtime"))
    p.add_argument("--only", default="", help="comma-separated name prefixes")
    p.add_argument("--json")
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    only = [s for s in args.only.split(",") if s]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, what, shape, nodes, inits in op_models():
            if only and not any(name.startswith(o) for o in only):
                continue
            model = build(name, shape, nodes, inits, tmp)
            for t in threads:
                a = compare.Anvil(args, model, t, tmp)
                o = compare.Ort(args, model, t, tmp)
                am, om = [], []
                for r in range(args.rounds):
                    order = [0, 1] if r % 2 == 0 else [1, 0]
                    for k in order:
                        if k == 0:
                            am.append(a.time(args.duration, 100)["median_ms"])
                        else:
                            om.append(compare.time_calls(o.call, args.duration, 100)["median_ms"])
                rows.append({"model": name, "what": what, "threads": t, "anvil_ms": compare.statistics.median(am),
                             "ort_ms": compare.statistics.median(om)})
                r = rows[-1]
                print(f"{name} t{t}: anvil {r['anvil_ms']:.4g} ms, onnxruntime {r['ort_ms']:.4g} ms, "
                      f"{r['anvil_ms'] / r['ort_ms']:.2f}x", file=sys.stderr, flush=True)
    print("| op model | threads | anvil ms | onnxruntime ms | anvil/onnxruntime |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['what']} | {r['threads']} | {r['anvil_ms']:.3g} | {r['ort_ms']:.3g} | "
              f"{r['anvil_ms'] / r['ort_ms']:.2f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
