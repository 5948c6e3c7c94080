#!/usr/bin/env python3
"""Where a model's time goes, layer by layer, next to onnxruntime and the FMA peak.

Usage:
    build/bench-venv/bin/python bench/layers.py --model build/models/efficientnet_b0.onnx
        [--threads 1] [--duration 3] [--top 15] [--anvil build/tools/anvil]
        [--bench-bin build/bench/anvil_bench_runtime] [--json out.json]

anvil: an engine built by the CLI at --threads (tuned at the model's static input shapes,
dynamic dimensions taken as 1), run with `--dumpProfile`-style per-layer timing
(`--exportProfile`, medians) and `--exportLayerInfo` for the tactic of every layer.
onnxruntime: CPUExecutionProvider at intra_op_num_threads=--threads, ORT_SEQUENTIAL, all
graph optimizations, its per-node profiler (median of the runs). The FMA peak is
`anvil_bench_runtime --fma-peak` (one core's AVX2 or AVX-512 FMA roof) times --threads.

Layers are grouped by what they compute: convolutions by kernel size, stride and kind
(depthwise, grouped, pointwise), MatMul/Gemm as "gemm", everything else by op type. FLOPs
count 2 per multiply-add of the convolutions and GEMMs (from the ONNX shapes), so GF/s and
the share of the peak mean the same for both runtimes. Read the rows with care where one
runtime fuses what the other runs separately: anvil folds activations, residual adds and
bias into the conv and GEMM epilogues (their time counts in the conv rows), onnxruntime runs
some of them as their own nodes (QuickGelu, Sigmoid, Mul, Add rows) and adds Reorder nodes
for its NCHWc layout.

Profiling costs a little per layer (both runtimes time every node); the model's latency
without it is what bench/compare.py measures.
"""

import argparse
import collections
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx


def median(values):
    s = sorted(values)
    return s[len(s) // 2] if s else 0.0


def attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def conv_kind(w, x, y, group):
    """Kind of a Conv from its weight (OIHW), input and output shapes and group count."""
    kh, kw = (w[2], w[3]) if len(w) == 4 else (w[2], 1)
    stride = max(1, round(x[2] / y[2])) if len(x) >= 3 and len(y) >= 3 and y[2] else 1
    cin = x[1] if len(x) > 1 else 0
    if group > 1 and w[1] == 1 and group == cin:
        base = "dw %dx%d" % (kh, kw)
    elif group > 1:
        base = "grouped %dx%d" % (kh, kw)
    else:
        base = "conv %dx%d" % (kh, kw)
    if stride > 1:
        base += " s%d" % stride
    if group == 1 and cin <= 4 and kh * kw > 1:  # an image's few channels (not a squeeze-excite 1x1)
        base += " (stem)"
    return base


def conv_flops(w, y, group):
    # 2 * output elements * (Cin / group) * kh * kw; w is [Cout, Cin/group, kh, kw]
    return 2 * math.prod(y) * math.prod(w[1:])


def static_shape(dims):
    return [d if isinstance(d, int) and d > 0 else 1 for d in dims]


def model_feeds(model, model_path):
    """The inputs timed: the zoo's saved inputs next to the model (<stem>.in.<input>.npy, as
    tests/models/export_models.py writes them) where they exist, else seeded random data at
    the static shape (dynamic dimensions 1)."""
    feeds = {}
    inits = {i.name for i in model.graph.initializer}
    rng = np.random.default_rng(7)
    stem = os.path.splitext(model_path)[0]
    for i in model.graph.input:
        if i.name in inits:
            continue
        saved = "%s.in.%s.npy" % (stem, i.name)
        if os.path.exists(saved):
            feeds[i.name] = np.load(saved)
            continue
        t = i.type.tensor_type
        dims = static_shape([d.dim_value if d.HasField("dim_value") else 0 for d in t.shape.dim])
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        feeds[i.name] = (rng.random(dims) if dtype.kind == "f" else np.ones(dims)).astype(dtype)
    return feeds


def layer_shapes(model, feeds):
    """Per Conv/MatMul/Gemm node name: (kind, flops, shape text), from the shapes of one
    onnxruntime run of the unoptimized model with those nodes' tensors exposed as outputs
    (shape inference loses them behind the dynamic Reshapes of exported transformers)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {t.name: tuple(t.dims) for t in m.graph.initializer}
    nodes = [n for n in m.graph.node if n.op_type in ("Conv", "MatMul", "Gemm") and len(n.input) > 1]
    have = {o.name for o in m.graph.output}
    for nm in sorted({x for n in nodes for x in (n.input[0], n.input[1], n.output[0])} - set(inits) - have):
        m.graph.output.append(helper.make_tensor_value_info(nm, TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    shape = lambda nm: list(outs[nm].shape) if nm in outs else list(inits.get(nm, ()))
    out = {}
    for n in nodes:
        a, b, y = shape(n.input[0]), shape(n.input[1]), shape(n.output[0])
        if not a or not b or not y:
            continue
        if n.op_type == "Conv":
            g = attr(n, "group", 1)
            out[n.name] = (conv_kind(b, a, y, g), conv_flops(b, y, g),
                           "%dx%dx%d->%d k%dx%d g%d" % (a[1], a[2], a[3] if len(a) > 3 else 1, y[1], b[2],
                                                        b[3] if len(b) > 3 else 1, g))
        else:
            k = a[-2] if n.op_type == "Gemm" and attr(n, "transA", 0) else a[-1]
            rows = math.prod(y[:-1])
            out[n.name] = ("gemm", 2 * math.prod(y) * k, "%dx%dx%d%s" % (rows, k, y[-1], "" if n.input[1] in inits else " (activations)"))
    return out


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), r.stdout[-3000:], r.stderr[-3000:]))
    return r.stdout


def time_anvil(args, model_path, shapes, layers, tmp):
    engine = os.path.join(tmp, "model.engine")
    shape_flag = ",".join("%s:%s" % (n, "x".join(map(str, d))) for n, d in shapes.items())
    run([args.anvil, "--onnx=" + model_path, "--saveEngine=" + engine, "--threads=%d" % args.threads,
         "--shapes=" + shape_flag])
    prof, info = os.path.join(tmp, "profile.json"), os.path.join(tmp, "layers.json")
    run([args.anvil, "--loadEngine=" + engine, "--threads=%d" % args.threads, "--duration=%g" % args.duration,
         "--shapes=" + shape_flag, "--exportProfile=" + prof, "--exportLayerInfo=" + info])
    tactic = {l["Name"]: l.get("TacticName", "") for l in json.load(open(info))["Layers"]}
    rows = []
    for e in json.load(open(prof))[1:]:
        name = e["name"]
        kind, flops, text = layers.get(name, (None, 0, ""))
        rows.append({"name": name, "ms": e["medianMs"], "kind": kind or tactic_op(name, tactic),
                     "flops": flops, "shape": text, "tactic": tactic.get(name, "")})
    return rows


def tactic_op(name, tactic):
    """A layer anvil made (a Reorder, a fused chain) or an op without FLOPs: its op from the
    name's last part."""
    last = name.rsplit("/", 1)[-1]
    if "reorder" in last:
        return "Reorder"
    return last.rstrip("_0123456789") or name


def time_ort(args, model_path, feeds, tmp):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tmp, "ort")
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    t_end = time.time() + args.duration
    runs = 0
    while runs < 10 or time.time() < t_end:
        sess.run(None, feeds)
        runs += 1
    events = json.load(open(sess.end_profiling()))
    times, meta = collections.defaultdict(list), {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            n = e["name"][: -len("_kernel_time")]
            times[n].append(e["dur"] / 1000.0)
            meta[n] = e["args"]
    rows = []
    for n, t in times.items():
        a = meta[n]
        op = a.get("op_name", "?")
        ins = [list(d.values())[0] for d in a.get("input_type_shape", [])]
        outs = [list(d.values())[0] for d in a.get("output_type_shape", [])]
        kind, flops = op, 0
        if op in ("Conv", "FusedConv", "NchwcConv") and len(ins) > 1 and outs and len(ins[1]) >= 3:
            w, x, y = ins[1], ins[0], outs[0]
            g = x[1] // w[1] if w[1] and x[1] % w[1] == 0 else 1
            kind, flops = conv_kind(w, x, y, g), conv_flops(w, y, g)
        elif op in ("MatMul", "Gemm", "FusedMatMul", "FusedGemm") and ins and ins[0] and outs and outs[0]:
            kind, flops = "gemm", 2 * math.prod(outs[0]) * ins[0][-1]
        rows.append({"name": n, "ms": median(t), "kind": kind, "flops": flops})
    return rows


def by_kind(rows):
    agg = collections.OrderedDict()
    for r in sorted(rows, key=lambda r: -r["ms"]):
        a = agg.setdefault(r["kind"], {"n": 0, "ms": 0.0, "flops": 0})
        a["n"] += 1
        a["ms"] += r["ms"]
        a["flops"] += r["flops"]
    return agg


def gfs(flops, ms):
    return flops / ms / 1e6 if ms > 0 and flops else 0.0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--anvil", default="build/tools/anvil")
    p.add_argument("--bench-bin", default="build/bench/anvil_bench_runtime")
    p.add_argument("--no-ort", action="store_true", help="anvil alone")
    p.add_argument("--json")
    args = p.parse_args(argv)

    model = onnx.load(args.model)
    feeds = model_feeds(model, args.model)
    shapes = {n: list(v.shape) for n, v in feeds.items()}
    layers = layer_shapes(model, feeds)
    peak = 0.0
    if os.path.exists(args.bench_bin):
        roofs = json.loads(run([args.bench_bin, "--fma-peak"]).strip().splitlines()[-1])
        peak = (roofs.get("avx512_fma_gflops") or roofs.get("avx2_fma_gflops") or 0.0) * args.threads
    with tempfile.TemporaryDirectory() as tmp:
        anvil_rows = time_anvil(args, args.model, shapes, layers, tmp)
        ort_rows = [] if args.no_ort else time_ort(args, args.model, feeds, tmp)

    a_kind, o_kind = by_kind(anvil_rows), by_kind(ort_rows)
    a_total, o_total = sum(r["ms"] for r in anvil_rows), sum(r["ms"] for r in ort_rows)
    print("%s, %d thread(s); FMA peak %.1f GFLOP/s%s" % (os.path.basename(args.model), args.threads, peak,
                                                        "" if peak else " (no --bench-bin: no peak)"))
    print("sum of per-layer medians: anvil %.3f ms%s" % (a_total, ", onnxruntime %.3f ms" % o_total if ort_rows else ""))
    print()
    print("| kind | anvil n | anvil ms | anvil GF/s | % peak | onnxruntime n | onnxruntime ms | onnxruntime GF/s | anvil/onnxruntime |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    kinds = list(a_kind) + [k for k in o_kind if k not in a_kind]
    for k in kinds:
        a, o = a_kind.get(k), o_kind.get(k)
        ag, og = gfs(a["flops"], a["ms"]) if a else 0, gfs(o["flops"], o["ms"]) if o else 0
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            k, a["n"] if a else "", "%.3f" % a["ms"] if a else "", "%.1f" % ag if ag else "",
            "%.0f%%" % (100 * ag / peak) if ag and peak else "", o["n"] if o else "", "%.3f" % o["ms"] if o else "",
            "%.1f" % og if og else "", "%.2fx" % (a["ms"] / o["ms"]) if a and o and o["ms"] > 0 else ""))
    print()
    print("anvil's %d slowest layers:" % args.top)
    print("| layer | shape | tactic | ms | GF/s | % peak |")
    print("|---|---|---|---:|---:|---:|")
    for r in sorted(anvil_rows, key=lambda r: -r["ms"])[: args.top]:
        g = gfs(r["flops"], r["ms"])
        print("| %s | %s | %s | %.3f | %s | %s |" % (r["name"], r["shape"], r["tactic"], r["ms"],
                                                     "%.1f" % g if g else "", "%.0f%%" % (100 * g / peak) if g and peak else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "threads": args.threads, "peak_gflops": peak,
                       "anvil": anvil_rows, "onnxruntime": ort_rows}, f, indent=1)


if __name__ == "__main__":
    main()
