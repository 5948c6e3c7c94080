#!/usr/bin/env python3
"""anvil vs onnxruntime, side by side in one run: latency per model as a ratio.

Usage:
    .venv/bin/python bench/compare_ort.py --anvil build/tools/anvil [--models-dir build/models]
        [--models resnet18,mlp] [--threads 1[,2]] [--rounds 3] [--duration 2]
        [--mlp bench/models/mlp_9_100_100_100_6.onnx] [--mlp-calls 20000] [--json FILE]

For every model of export_models.py's manifest (plus the issue's MLP when present, see
make_mlp.py), and every thread count N:
  * anvil: the engine is built once (`anvil --onnx=... --saveEngine=... --threads=N
    --skipInference`, tuned at the saved inputs' shapes), then each round runs
    `anvil --loadEngine=... --threads=N --duration=D --loadInputs=...` and reads its
    trtexec-style summary line "Latency: min = ... median = X ms, percentile(99%) = Y ms".
  * onnxruntime: one InferenceSession (CPUExecutionProvider, intra_op_num_threads=N,
    inter_op_num_threads=1, ORT_SEQUENTIAL, ORT_ENABLE_ALL), made once; each round times
    sess.run() call by call for D seconds after a warm-up, on the same inputs.
Rounds alternate which of the two goes first, so drift of a shared machine hits both.
Per model the table shows the median over rounds of each round's median and p99, and
anvil/onnxruntime (below 1: anvil is faster).
onnxruntime is timed from Python: each call carries the Python binding's overhead (a few
microseconds; it matters only for the tiny models). The last table times the MLPs call by
call through that Python API, next to anvil_bench_runtime's C API per-call figure.
"""

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:
    sys.exit(f"compare_ort.py: {e}; run it with the venv python (.venv/bin/python)")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ISSUE_MLP = os.path.join(HERE, "models", "mlp_9_100_100_100_6.onnx")

LATENCY_RE = re.compile(r"Latency: min = ([0-9.]+) ms, max = ([0-9.]+) ms, mean = ([0-9.]+) ms, "
                        r"median = ([0-9.]+) ms(?:.*?percentile\(99%\) = ([0-9.]+) ms)?")


def percentile(sorted_values, p):
    """The value below which p% of the samples fall (the anvil CLI's and trtexec's rule)."""
    idx = max(0, math.ceil(p / 100.0 * len(sorted_values)) - 1)
    return sorted_values[min(idx, len(sorted_values) - 1)]


def parse_latency(text):
    """(median_ms, p99_ms) from the CLI's performance summary."""
    m = LATENCY_RE.search(text)
    if not m:
        raise RuntimeError("no 'Latency: ... median = ...' line in the anvil output:\n" + text[-2000:])
    median = float(m.group(4))
    p99 = float(m.group(5)) if m.group(5) else float("nan")
    return median, p99


class Model:
    def __init__(self, name, onnx, inputs):
        self.name = name
        self.onnx = onnx
        self.inputs = inputs  # [(input name, .npy path)]
        self.feeds = {n: np.load(p) for n, p in inputs}


def zoo(models_dir):
    path = os.path.join(models_dir, "manifest.json")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        manifest = json.load(f)
    out = []
    for name, entry in manifest["models"].items():
        ins = [(i["name"], os.path.join(models_dir, i["file"])) for i in entry["inputs"]]
        out.append(Model(name, os.path.join(models_dir, entry["file"]), ins))
    return out


def issue_mlp(path, tmp):
    """The 9-100-100-100-6 MLP with one fixed random input (saved so anvil reads the same)."""
    x = np.random.default_rng(1).standard_normal((1, 9)).astype(np.float32)
    npy = os.path.join(tmp, "mlp_9_100_100_100_6.in.input.npy")
    np.save(npy, x)
    return Model("mlp_9_100_100_100_6", path, [("input", npy)])


def run(cmd, timeout):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}")
    return p.stdout


def shapes_flag(model):
    return ",".join(f"{n}:{'x'.join(str(d) for d in model.feeds[n].shape)}" for n, _ in model.inputs)


def inputs_flag(model):
    return ",".join(f"{n}:{p}" for n, p in model.inputs)


def build_engine(anvil, model, threads, tmp):
    engine = os.path.join(tmp, f"{model.name}.t{threads}.engine")
    cmd = [anvil, f"--onnx={model.onnx}", f"--saveEngine={engine}", "--skipInference", f"--threads={threads}"]
    if model.inputs:
        cmd.append(f"--shapes={shapes_flag(model)}")
    run(cmd, timeout=1800)
    return engine


def time_anvil(anvil, model, engine, threads, duration, warmup_ms):
    cmd = [anvil, f"--loadEngine={engine}", f"--threads={threads}", f"--duration={duration}",
           f"--warmUp={warmup_ms}", "--iterations=10", "--percentile=99"]
    if model.inputs:
        cmd.append(f"--loadInputs={inputs_flag(model)}")
    return parse_latency(run(cmd, timeout=600 + 10 * duration))


def ort_session(model, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model.onnx, sess_options=so, providers=["CPUExecutionProvider"])


def time_ort(sess, feeds, duration, warmup_ms, min_calls=10):
    """Per-call latencies (ms) of sess.run over `duration` seconds, after a warm-up."""
    t_end = time.perf_counter() + warmup_ms / 1000.0
    while True:
        sess.run(None, feeds)
        if time.perf_counter() >= t_end:
            break
    lat = []
    t0 = time.perf_counter()
    while len(lat) < min_calls or time.perf_counter() - t0 < duration:
        a = time.perf_counter()
        sess.run(None, feeds)
        lat.append((time.perf_counter() - a) * 1000.0)
    lat.sort()
    return statistics.median(lat), percentile(lat, 99)


def per_call(sess, feeds, calls):
    """Per-call microseconds of sess.run through the Python API, one call at a time."""
    for _ in range(max(100, calls // 10)):
        sess.run(None, feeds)
    us = []
    for _ in range(calls):
        a = time.perf_counter()
        sess.run(None, feeds)
        us.append((time.perf_counter() - a) * 1e6)
    us.sort()
    return {"median": statistics.median(us), "p99": percentile(us, 99), "mean": statistics.fmean(us),
            "min": us[0], "n": len(us)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--anvil", default=os.path.join(ROOT, "build", "tools", "anvil"), help="the anvil CLI")
    ap.add_argument("--models-dir", default=os.path.join(ROOT, "build", "models"),
                    help="export_models.py's output (manifest.json)")
    ap.add_argument("--models", default="", help="comma-separated subset (default: all, plus the issue's MLP)")
    ap.add_argument("--threads", default="1", help="comma-separated intra-op thread counts (default 1)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per model, engine and round (default 2)")
    ap.add_argument("--warmup-ms", type=float, default=200.0, help="warm-up before each timing (default 200)")
    ap.add_argument("--mlp", default=ISSUE_MLP, help="the issue's MLP (bench/make_mlp.py writes it)")
    ap.add_argument("--mlp-calls", type=int, default=20000, help="calls for the Python per-call timing")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    if not os.path.isfile(args.anvil):
        ap.error(f"no anvil CLI at {args.anvil} (build the anvil_cli target)")
    tmp = tempfile.mkdtemp(prefix="anvil-vs-ort-")
    models = zoo(args.models_dir)
    if not models:
        print(f"[W] no model set at {args.models_dir} (tests/models/export_models.py writes it)", file=sys.stderr)
    if os.path.isfile(args.mlp):
        models.append(issue_mlp(args.mlp, tmp))
    else:
        print(f"[W] no {args.mlp} (bench/make_mlp.py writes it)", file=sys.stderr)
    if args.models:
        want = args.models.split(",")
        models = [m for m in models if m.name in want]
    if not models:
        sys.exit("compare_ort.py: no models")
    thread_counts = [int(t) for t in args.threads.split(",")]

    print(f"onnxruntime {ort.__version__}; {os.cpu_count()} CPUs; {args.rounds} rounds x {args.duration:g} s "
          f"per model and runtime; threads {thread_counts}", flush=True)
    engines, sessions = {}, {}
    for m in models:
        for t in thread_counts:
            engines[m.name, t] = build_engine(args.anvil, m, t, tmp)
            sessions[m.name, t] = ort_session(m, t)

    samples = {key: {"anvil": [], "ort": []} for key in engines}
    for r in range(args.rounds):
        for m in models:
            for t in thread_counts:
                key = (m.name, t)
                order = ["anvil", "ort"] if r % 2 == 0 else ["ort", "anvil"]
                for who in order:
                    if who == "anvil":
                        res = time_anvil(args.anvil, m, engines[key], t, args.duration, args.warmup_ms)
                    else:
                        res = time_ort(sessions[key], m.feeds, args.duration, args.warmup_ms)
                    samples[key][who].append(res)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    rows = []
    for m in models:
        for t in thread_counts:
            s = samples[m.name, t]
            row = {"model": m.name, "threads": t}
            for who in ("anvil", "ort"):
                row[f"{who}_median_ms"] = statistics.median(x[0] for x in s[who])
                row[f"{who}_p99_ms"] = statistics.median(x[1] for x in s[who])
                row[f"{who}_round_medians_ms"] = [x[0] for x in s[who]]
            row["ratio"] = row["anvil_median_ms"] / row["ort_median_ms"]
            rows.append(row)

    print("\n| model | threads | onnxruntime median ms | onnxruntime p99 ms | anvil median ms | anvil p99 ms "
          "| anvil/onnxruntime |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['model']} | {row['threads']} | {row['ort_median_ms']:.4f} | {row['ort_p99_ms']:.4f} | "
              f"{row['anvil_median_ms']:.4f} | {row['anvil_p99_ms']:.4f} | {row['ratio']:.2f} |")
    ratios = [row["ratio"] for row in rows]
    geo = float(np.exp(np.mean(np.log(ratios))))
    print(f"\ngeometric mean anvil/onnxruntime: {geo:.2f} (below 1: anvil is faster)")

    # The MLPs call by call through onnxruntime's Python API, one thread.
    mlps = [m for m in models if m.name in ("mlp", "mlp_9_100_100_100_6")]
    python_calls = {}
    if mlps:
        print("\nonnxruntime per call through its Python API, one thread (includes the binding's overhead; "
              "compare with anvil_bench_runtime's C API per-call latency):")
        print("| model | median us | p99 us | mean us | min us |")
        print("|---|---:|---:|---:|---:|")
        for m in mlps:
            sess = sessions.get((m.name, 1)) or ort_session(m, 1)
            pc = per_call(sess, m.feeds, args.mlp_calls)
            python_calls[m.name] = pc
            print(f"| {m.name} | {pc['median']:.2f} | {pc['p99']:.2f} | {pc['mean']:.2f} | {pc['min']:.2f} |")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"onnxruntime": ort.__version__, "cpus": os.cpu_count(), "rounds": args.rounds,
                       "duration_s": args.duration, "rows": rows, "geomean_ratio": geo,
                       "ort_python_per_call_us": python_calls}, f, indent=2)
            f.write("\n")
        print(f"\nwrote {args.json}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
