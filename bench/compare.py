#!/usr/bin/env python3
"""anvil, onnxruntime and OpenVINO side by side: one run, one machine, equal threads.

Usage (bench/run_all.sh does all of it):
    build/bench-venv/bin/python bench/compare.py [--threads 1,2] [--rounds 3] [--duration 1]
        [--models a,b] [--skip-gemm] [--json build/bench/compare.json]

What it measures, for every model of the zoo manifests (build/models: the test set,
build/models-bench: the bench-only set, build/models-resnet50), and the issue's MLP
(bench/make_mlp.py), all at batch 1 (the zoo's saved inputs cut to their first row):
  * anvil: an engine per thread count N, built once by the CLI (`anvil --onnx=M
    --saveEngine=E --threads=N --shapes=...`, tuned at the batch-1 shapes); each round runs
    `anvil_bench_runtime --latency --engine=E --threads=N --input=...` which loads it through
    the C API, warms up, and times every anvil_context_run alone, in process, with no copies.
  * onnxruntime: CPUExecutionProvider, intra_op_num_threads=N, inter_op_num_threads=1,
    ORT_SEQUENTIAL, ORT_ENABLE_ALL; inputs and outputs bound once (IOBinding), each
    run_with_iobinding timed alone from Python.
  * OpenVINO: the model reshaped to the batch-1 shapes, compiled for CPU with
    PERFORMANCE_HINT=LATENCY, INFERENCE_NUM_THREADS=N, INFERENCE_PRECISION_HINT=f32 (no
    bf16 on CPUs with AMX/AVX-512 BF16); one infer request, tensors set once, each infer()
    timed alone from Python.
Rounds are interleaved: per round, per model and thread count, each runtime runs for
--duration seconds after a warm-up, and the order rotates (anvil, ort, ov / ort, ov, anvil /
...) so drift on a shared machine hits all three. Per model the result is the median over
rounds of each round's median and p99.

Disturbance guard: around every timing, /proc/stat's busy and steal ticks of all CPUs are
compared with the CPU time of this process and its finished children; the difference is
what other processes and the hypervisor took while the runtime was timed ("foreign", in
CPUs: 0.5 = half a CPU on average). A timing with more than --max-foreign (default 0.05)
is repeated after a pause, up to --retries times, and the least disturbed attempt is kept;
each sample records its foreign and steal fractions and the number of attempts. (A 2-thread
timing on 2 cores with a compiler running beside it measured 1.3-1.9x slower in the 07:48
run of 2026-12-06: resnet50's five 2-thread rounds 136.8, 197.0, 107.9, 107.3, 96.6 ms.)
What the CPU times cannot show is where the host runs the two virtual CPUs: before and
after every multi-thread timing, `anvil_bench_runtime --core-rtt` measures one cache line's
round trip between two threads (the sample's core_rtt_ns and core_rtt_after_ns: near
~30-100 ns, far ~300-900 on the 2-vCPU EPYC guests). Far, two-thread runs are up to ~20%
slower on the Zen 1 guests and about as slow as one thread on the Zen 4 ones (mobilenet_v2,
anvil and onnxruntime alike, 2026-12-06), and the state lasts seconds to minutes, so a
timing that ran far (either figure over --far-ns, default 300) is repeated like a disturbed
one and a near attempt is kept where there was one: the two-thread cells compare the
runtimes on the same placement.

Small nets (the zoo's mlp and lstm, the issue's MLP and LSTM) are also timed per call, one
thread: anvil through the C API (as above, microseconds), onnxruntime and OpenVINO through
their Python APIs (so each call includes a binding's overhead of a few microseconds: the
wheels ship no C headers to write a C caller against), and PyTorch eager (torch.no_grad, one
thread) on the very torch module the ONNX file was exported from (rebuilt from the export
script's seed; outputs checked against onnxruntime).

GEMM roofline (unless --skip-gemm): the weight GEMMs of every model (MatMul and Gemm with a
constant B, 1x1 convolutions with group 1 as M = output pixels, K = Cin, N = Cout), taken
from one onnxruntime run with those tensors exposed as outputs; each distinct (M, K, N) is
written as a one-node MatMul model, built by the CLI at one thread and timed like the
models, next to onnxruntime; plus `anvil_bench_runtime --fma-peak` for the roofs. The
issue's target shapes M = N = K (--gemm-squares, default 512,1024) join them, listed as
"square" (report.py: anvil's % of the FMA peak). The GEMM alone, cold weights included:
`build/tests/unit_tests --gtest_also_run_disabled_tests --gtest_filter=*GemmDriver`.
"""

import argparse
import atexit
import datetime
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import onnx  # before torch (see tests/models/export_models.py)
    from onnx import TensorProto, helper, numpy_helper
    import onnxruntime as ort
    import openvino as ov
except ImportError as e:
    sys.exit(f"compare.py: {e}; run it with the bench venv (scripts/setup_bench.sh)")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
sys.path.insert(0, HERE)

SMALL_NETS = ("floor_relu_1x1", "mlp", "mlp_9_100_100_100_6", "lstm", "lstm_h64_s50")
RUNTIMES = ("anvil", "ort", "ov")


def percentile(sorted_values, p):
    """The value below which p% of the samples fall (the rule anvil_bench_runtime uses)."""
    idx = max(0, math.ceil(p / 100.0 * len(sorted_values)) - 1)
    return sorted_values[min(idx, len(sorted_values) - 1)]


def summary_ms(lat_ms):
    lat_ms = sorted(lat_ms)
    return {"median_ms": statistics.median(lat_ms), "p99_ms": percentile(lat_ms, 99),
            "mean_ms": statistics.fmean(lat_ms), "min_ms": lat_ms[0], "n": len(lat_ms)}


def run(cmd, timeout=1800, env=None):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}")
    return p.stdout


class Model:
    """One ONNX model with batch-1 inputs saved as .npy (what all three runtimes read)."""

    def __init__(self, name, onnx_path, feeds, tmp):
        self.name, self.onnx = name, onnx_path
        self.feeds = feeds
        self.inputs = []  # [(name, npy path)]
        for n, a in feeds.items():
            path = os.path.join(tmp, f"{name}.in.{len(self.inputs)}.npy")
            np.save(path, a)
            self.inputs.append((n, path))

    def shapes_flag(self):
        return ",".join(f"{n}:{'x'.join(str(d) for d in a.shape)}" for n, a in self.feeds.items())


def batch1(a):
    return np.ascontiguousarray(a[:1]) if a.ndim >= 1 and a.shape[0] > 1 else a


def floor_model(tmp):
    """One Relu on a [1,1] tensor: what a call costs each runtime (and its API) when the
    model does nothing; the per-call table's first row."""
    path = os.path.join(tmp, "floor_relu_1x1.onnx")
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "floor",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])])
    mp = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    mp.ir_version = 8
    onnx.save(mp, path)
    return Model("floor_relu_1x1", path, {"x": np.ones((1, 1), np.float32)}, tmp)


def collect_models(args, tmp):
    models = []
    for d in args.models_dirs.split(","):
        path = os.path.join(d, "manifest.json")
        if not os.path.isfile(path):
            print(f"[W] no {path}", file=sys.stderr)
            continue
        with open(path) as f:
            manifest = json.load(f)
        for name, entry in manifest["models"].items():
            feeds = {i["name"]: batch1(np.load(os.path.join(d, i["file"]))) for i in entry["inputs"]}
            models.append(Model(name, os.path.join(d, entry["file"]), feeds, tmp))
    if not os.path.isfile(args.mlp):
        import make_mlp
        make_mlp.make(args.mlp)
    x = np.random.default_rng(1).standard_normal((1, 9)).astype(np.float32)
    models.append(Model("mlp_9_100_100_100_6", args.mlp, {"input": x}, tmp))
    models.append(floor_model(tmp))
    if args.models:
        want = args.models.split(",")
        models = [m for m in models if m.name in want]
    return models


# ---- the three runtimes -----------------------------------------------------------------

class Anvil:
    max_isa = None  # ANVIL_MAX_ISA for both the build and the timing (AnvilAvx2)

    def __init__(self, args, model, threads, tmp):
        self.bin, self.model, self.threads = args.bench_bin, model, threads
        self.env = dict(os.environ)
        self.env.pop("ANVIL_MAX_ISA", None)
        if self.max_isa:
            self.env["ANVIL_MAX_ISA"] = self.max_isa
        tag = f".{self.max_isa}" if self.max_isa else ""
        self.engine = os.path.join(tmp, f"{model.name}.t{threads}{tag}.engine")
        t0 = time.perf_counter()
        run([args.anvil, f"--onnx={model.onnx}", f"--saveEngine={self.engine}", "--skipInference",
             f"--threads={threads}", f"--shapes={model.shapes_flag()}"], env=self.env)
        self.build_s = time.perf_counter() - t0

    def time(self, duration, warmup_ms):
        cmd = [self.bin, "--latency", f"--engine={self.engine}", f"--threads={self.threads}",
               f"--seconds={duration}", f"--warmup-ms={warmup_ms}"]
        cmd += [f"--input={n}:{p}" for n, p in self.model.inputs]
        try:
            out = run(cmd, timeout=600 + 10 * duration, env=self.env)
        except RuntimeError as e:
            if "this runtime has version" in str(e):  # the bench target is not in `all`: easily stale
                raise RuntimeError(f"{e}\n{self.bin} is older than the CLI that built the engine: "
                                   "cmake --build build --target anvil_cli anvil_bench_runtime "
                                   "(bench/run_all.sh builds both)") from None
            raise
        return json.loads(out.strip().splitlines()[-1])


class AnvilAvx2(Anvil):
    """anvil restricted to the kernels of an AVX2-only CPU (ANVIL_MAX_ISA=avx2)."""
    max_isa = "avx2"


class Ort:
    def __init__(self, args, model, threads, tmp):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(model.onnx, sess_options=so, providers=["CPUExecutionProvider"])
        outs = self.sess.run(None, model.feeds)
        # Inputs and outputs bound once: each timed call is the run alone (no allocation of
        # outputs, no numpy conversion), the closest the Python API gets to a bound C call.
        self.io = self.sess.io_binding()
        self.keep = []
        for n, a in model.feeds.items():
            self.io.bind_cpu_input(n, a)
        for o, a in zip(self.sess.get_outputs(), outs):
            v = ort.OrtValue.ortvalue_from_numpy(np.empty_like(a))
            self.keep.append(v)
            self.io.bind_ortvalue_output(o.name, v)
        self.outputs = outs

    def call(self):
        self.sess.run_with_iobinding(self.io)


class OpenVino:
    core = None

    def __init__(self, args, model, threads, tmp):
        if OpenVino.core is None:
            OpenVino.core = ov.Core()
        m = OpenVino.core.read_model(model.onnx)
        m.reshape({n: list(a.shape) for n, a in model.feeds.items()})
        self.compiled = OpenVino.core.compile_model(m, "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": 1})
        self.req = self.compiled.create_infer_request()
        for n, a in model.feeds.items():
            self.req.set_tensor(n, ov.Tensor(a, shared_memory=True))
        self.req.infer()

    def call(self):
        self.req.infer()


class OpenVinoAvx2:
    """OpenVINO restricted to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2): oneDNN reads the variable once
    per process, so each timing runs in a child process (this script in --ov-worker mode).
    The like-for-like peer of anvil_avx2 on an AVX-512 host."""

    def __init__(self, args, model, threads, tmp):
        self.model, self.threads = model, threads
        self.env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2")
        self.time(0.0, 0.0)  # compiles once: a model OpenVINO cannot take fails here

    def time(self, duration, warmup_ms):
        cmd = [sys.executable, os.path.abspath(__file__), "--ov-worker", self.model.onnx, str(self.threads),
               str(duration), str(warmup_ms)] + [f"{n}={p}" for n, p in self.model.inputs]
        out = run(cmd, timeout=600 + 10 * duration, env=self.env)
        return json.loads(out.strip().splitlines()[-1])


class OrtAvx2:
    """onnxruntime on an AVX2-only view of the CPU: a child process (this script in
    --ort-worker mode) under the bench/cpuid_avx2.c shim (LD_PRELOAD), which hides AVX-512,
    AVX-VNNI and AMX from CPUID, so MLAS dispatches to the kernels it runs on an AVX2-only
    machine. The worker refuses to time when the shim did not take effect. The like-for-like
    peer of anvil_avx2 on an AVX-512 host."""

    def __init__(self, args, model, threads, tmp):
        if not os.path.isfile(args.cpuid_shim):
            raise RuntimeError(f"no {args.cpuid_shim} (build the anvil_cpuid_avx2 target)")
        self.model, self.threads = model, threads
        self.env = dict(os.environ, LD_PRELOAD=os.path.abspath(args.cpuid_shim),
                        GLIBC_TUNABLES="glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD")
        self.time(0.0, 0.0)  # creates the session once: a model it cannot take fails here

    def time(self, duration, warmup_ms):
        cmd = [sys.executable, os.path.abspath(__file__), "--ort-worker", self.model.onnx, str(self.threads),
               str(duration), str(warmup_ms)] + [f"{n}={p}" for n, p in self.model.inputs]
        out = run(cmd, timeout=600 + 10 * duration, env=self.env)
        return json.loads(out.strip().splitlines()[-1])


def worker(kind, argv):
    """--ov-worker / --ort-worker MODEL THREADS DURATION WARMUP_MS NAME=NPY...: times OpenVINO
    or onnxruntime as the OpenVino / Ort classes do and prints the summary as one JSON line."""
    if kind == "ort" and os.environ.get("ANVIL_CPUID_MASK") != "avx2":
        sys.exit("compare.py --ort-worker: the CPUID mask is not active (LD_PRELOAD of bench/cpuid_avx2.c "
                 "failed: see its message above; it needs Linux >= 4.12 and cpuid_fault in /proc/cpuinfo)")
    onnx_path, threads, duration, warmup_ms = argv[0], int(argv[1]), float(argv[2]), float(argv[3])
    feeds = {kv.split("=", 1)[0]: np.load(kv.split("=", 1)[1]) for kv in argv[4:]}
    tmp = tempfile.mkdtemp(prefix=f"anvil-{kind}-")
    atexit.register(shutil.rmtree, tmp, True)
    model = Model(os.path.basename(onnx_path)[:-5], onnx_path, feeds, tmp)
    p = (Ort if kind == "ort" else OpenVino)(None, model, threads, None)
    print(json.dumps(time_calls(p.call, duration, warmup_ms)))
    return 0


def cpu_ticks():
    """(busy, steal) ticks of all CPUs together since boot (/proc/stat), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = v
    return user + nice + system + irq + softirq + steal, steal


def own_cpu_s():
    """CPU seconds of this process (all its threads) and of its children that have exited."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def core_rtt_ns(bench_bin):
    """`anvil_bench_runtime --core-rtt`: one cache line's round trip between two threads (ns),
    None where it cannot be had. Near CPUs ~70-100 ns on the EPYC guests, far ones ~500."""
    try:
        out = subprocess.run([bench_bin, "--core-rtt"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, timeout=60).stdout
        ns = json.loads(out.strip().splitlines()[-1])["core_rtt_ns"]
        return None if ns is None else round(ns, 1)
    except Exception:
        return None


def guarded(measure, max_foreign, retries, pause_s=2.0, rtt=None, far_ns=0):
    """measure() (a timing's summary dict) repeated while others took more than max_foreign
    CPUs during it, or (rtt given: the multi-thread timings; far_ns > 0) while the host ran
    the two CPUs far apart (rtt() over far_ns just before or just after it), up to `retries`
    more attempts. Kept: the first clean attempt, else the least bad one (not disturbed
    before disturbed, near before far, then the fewest foreign CPUs), with foreign_cpus,
    steal_cpus and attempts added, and core_rtt_ns / core_rtt_after_ns (rtt() before and
    after it) where rtt is given."""
    hz = os.sysconf("SC_CLK_TCK")
    best, best_key = None, None
    for attempt in range(1 + max(0, retries)):
        if attempt:
            time.sleep(pause_s)  # disturbances (a build step, a test) and placements last seconds
        before = rtt() if rtt else None
        c0, o0, w0 = cpu_ticks(), own_cpu_s(), time.perf_counter()
        res = measure()
        c1, o1, w1 = cpu_ticks(), own_cpu_s(), time.perf_counter()
        far = False
        if rtt:
            after = rtt()
            res = dict(res, core_rtt_ns=before, core_rtt_after_ns=after)
            far = far_ns > 0 and any(x is not None and x > far_ns for x in (before, after))
        if c0 is None or c1 is None:
            return dict(res, attempts=1)
        wall = max(w1 - w0, 1e-9)
        foreign = max(0.0, (c1[0] - c0[0]) / hz - (o1 - o0)) / wall
        res = dict(res, foreign_cpus=round(foreign, 3), steal_cpus=round((c1[1] - c0[1]) / hz / wall, 3))
        key = (foreign > max_foreign, far, foreign)
        if best is None or key < best_key:
            best, best_key = res, key
        if foreign <= max_foreign and not far:
            break
    best["attempts"] = attempt + 1
    return best


def time_calls(call, duration, warmup_ms, min_calls=10):
    """Per-call latencies (ms) of call() for `duration` seconds, after a warm-up."""
    t_end = time.perf_counter() + warmup_ms / 1000.0
    calls = 0
    while calls < 3 or time.perf_counter() < t_end:  # at least 3 calls, as anvil's --latency
        call()
        calls += 1
    lat = []
    t0 = time.perf_counter()
    while len(lat) < min_calls or time.perf_counter() - t0 < duration:
        a = time.perf_counter()
        call()
        lat.append((time.perf_counter() - a) * 1000.0)
    return summary_ms(lat)


# ---- small nets in PyTorch eager ----------------------------------------------------------

def torch_module(name, model):
    """The torch module `model` was exported from, with its weights; None when unknown."""
    import torch
    if name == "floor_relu_1x1":
        return torch.nn.ReLU()
    if name == "mlp_9_100_100_100_6":
        mp = onnx.load(model.onnx)
        w = {t.name: numpy_helper.to_array(t) for t in mp.graph.initializer}
        layers = []
        for i in range(4):
            lin = torch.nn.Linear(w[f"fc{i}.w"].shape[1], w[f"fc{i}.w"].shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w[f"fc{i}.w"].copy()))
                lin.bias.copy_(torch.from_numpy(w[f"fc{i}.b"].copy()))
            layers += [lin, torch.nn.ReLU()] if i < 3 else [lin]
        return torch.nn.Sequential(*layers).eval()
    import export_models as em
    builders = em.ALL_MODELS
    if name not in builders:
        return None
    seed = em.model_seed(name)  # the same seeding as export_models.export_one
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    spec = builders[name](name, gen, np.random.default_rng(seed))
    return spec["model"].eval()


def time_torch(module, model, reference, duration, warmup_ms):
    import torch
    torch.set_num_threads(1)
    xs = [torch.from_numpy(a) for a in model.feeds.values()]
    with torch.no_grad():
        out = module(*xs)
        out = out if isinstance(out, (tuple, list)) else (out,)
        for o, r in zip(out, reference):
            err = float(np.max(np.abs(o.numpy() - r)))
            if err > 1e-3 * max(1.0, float(np.max(np.abs(r)))):
                raise RuntimeError(f"{model.name}: torch module differs from the ONNX model by {err}")
        return time_calls(lambda: module(*xs), duration, warmup_ms)


# ---- GEMM shapes and the roofline ---------------------------------------------------------

def gemm_shapes(model):
    """{(M, K, N): [op descriptions]} of the weight GEMMs of a model, at its batch-1 inputs."""
    mp = onnx.load(model.onnx)
    consts = {t.name for t in mp.graph.initializer}
    consts |= {n.output[0] for n in mp.graph.node if n.op_type == "Constant"}
    want = []
    for n in mp.graph.node:
        if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in consts:
            want.append((n, n.input[0], n.input[1]))
        elif n.op_type == "Conv" and n.input[1] in consts:
            want.append((n, n.input[0], n.output[0]))
    if not want:
        return {}
    names = sorted({x for _, a, b in want for x in (a, b)} - {o.name for o in mp.graph.output})
    for nm in names:
        mp.graph.output.append(helper.make_tensor_value_info(nm, TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    inits = {t.name: numpy_helper.to_array(t) for t in mp.graph.initializer}
    sess = ort.InferenceSession(mp.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, model.feeds)))
    shape = lambda nm: tuple(outs[nm].shape) if nm in outs else tuple(inits[nm].shape)
    found = {}
    for n, a, b in want:
        attrs = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        if n.op_type == "MatMul":
            sa, sb = shape(a), shape(b)
            if len(sb) != 2:
                continue
            key = (int(np.prod(sa[:-1])), sb[0], sb[1])
        elif n.op_type == "Gemm":
            sa, sb = shape(a), shape(b)
            m, k = (sa[1], sa[0]) if attrs.get("transA", 0) else sa
            key = (m, k, sb[0] if attrs.get("transB", 0) else sb[1])
        else:
            w = shape(n.input[1])
            if len(w) != 4 or w[2:] != (1, 1) or attrs.get("group", 1) != 1:
                continue
            so_ = shape(b)
            key = (so_[2] * so_[3], w[1], w[0])
        found.setdefault(tuple(int(v) for v in key), []).append(f"{model.name}:{n.op_type}")
    return found


def one_gemm_model(m, k, n, path):
    rng = np.random.default_rng(m * 7 + k * 13 + n)
    w = (rng.standard_normal((k, n)) / math.sqrt(k)).astype(np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["A", "B"], ["Y"])], "gemm",
                          [helper.make_tensor_value_info("A", TensorProto.FLOAT, [m, k])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [m, n])],
                          [numpy_helper.from_array(w, "B")])
    mp = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    mp.ir_version = 8
    onnx.save(mp, path)


def roofline(args, models, tmp):
    peaks = json.loads(run([args.bench_bin, "--fma-peak"]).strip().splitlines()[-1])
    shapes = {}
    for model in models:
        try:
            for key, where in gemm_shapes(model).items():
                shapes.setdefault(key, []).extend(where)
        except Exception as e:  # a model onnxruntime cannot expose stays out of the plot
            print(f"[W] {model.name}: GEMM shapes not read: {e}", file=sys.stderr)
    for sq in (int(v) for v in args.gemm_squares.split(",") if v):
        shapes.setdefault((sq, sq, sq), []).append("square:MatMul")
    rows = []
    for (m, k, n), where in sorted(shapes.items()):
        path = os.path.join(tmp, f"gemm_{m}x{k}x{n}.onnx")
        one_gemm_model(m, k, n, path)
        a = np.random.default_rng(m + k + n).standard_normal((m, k)).astype(np.float32)
        gm = Model(f"gemm_{m}x{k}x{n}", path, {"A": a}, tmp)
        flops = 2.0 * m * k * n
        row = {"M": m, "K": k, "N": n, "flops": flops, "bytes": 4.0 * (m * k + k * n + m * n),
               "models": sorted({w.split(":")[0] for w in where}), "uses": len(where)}
        try:
            a = Anvil(args, gm, 1, tmp)
            info = run([args.anvil, f"--loadEngine={a.engine}", "--dumpLayerInfo", "--skipInference"])
            row["anvil_tactic"] = ",".join(re.findall(r"tactic=(\S+)", info))
            r = a.time(args.gemm_duration, 50)
            row["anvil_ms"] = r["median_ms"]
            row["anvil_gflops"] = flops / (r["median_ms"] * 1e6)
        except Exception as e:
            row["anvil_error"] = str(e)[-300:]
        r = time_calls(Ort(args, gm, 1, tmp).call, args.gemm_duration, 50)
        row["ort_ms"] = r["median_ms"]
        row["ort_gflops"] = flops / (r["median_ms"] * 1e6)
        rows.append(row)
        print(f"gemm {m}x{k}x{n}: anvil {row.get('anvil_gflops', float('nan')):.1f} GFLOP/s, "
              f"onnxruntime {row['ort_gflops']:.1f}", file=sys.stderr, flush=True)
    return {"peaks": peaks, "gemms": rows}


# ---- the machine ----------------------------------------------------------------------------

def machine():
    info = {"python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                info["isa"] = [f for f in ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw",
                                           "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                                           "avx_vnni", "amx_tile", "amx_bf16") if f in flags]
                break
    except OSError:
        pass
    try:
        info["lscpu"] = {k.strip(): v.strip() for k, v in
                         (l.split(":", 1) for l in run(["lscpu"]).splitlines() if ":" in l)
                         if k.strip() in ("Model name", "Core(s) per socket", "Thread(s) per core",
                                          "L1d cache", "L2 cache", "L3 cache", "Hypervisor vendor")}
    except Exception:
        pass
    return info


def versions():
    v = {"onnxruntime": ort.__version__, "openvino": ov.get_version(), "onnx": onnx.__version__,
         "numpy": np.__version__}
    try:
        import torch
        v["torch"] = torch.__version__
    except ImportError:
        pass
    try:
        sha = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).strip()
        dirty = run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"]).strip()
        v["anvil"] = sha + ("-dirty" if dirty else "")
        # The last commit that changed anvil itself (not its benchmarks, tests or docs: *.md
        # anywhere, the README included).
        v["anvil_code"] = run(["git", "-C", ROOT, "log", "-1", "--format=%h", "--", ".", ":!bench", ":!docs",
                               ":!scripts", ":!tests", ":!*.md"]).strip()
    except Exception:
        v["anvil"] = "unknown"
    return v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--anvil", default=os.path.join(ROOT, "build", "tools", "anvil"), help="the anvil CLI")
    ap.add_argument("--bench-bin", default=os.path.join(ROOT, "build", "bench", "anvil_bench_runtime"))
    ap.add_argument("--models-dirs", default=",".join(os.path.join(ROOT, "build", d)
                                                      for d in ("models", "models-bench", "models-resnet50")),
                    help="comma-separated directories with a manifest.json (default: build/models, "
                         "build/models-bench, build/models-resnet50)")
    ap.add_argument("--mlp", default=os.path.join(HERE, "models", "mlp_9_100_100_100_6.onnx"))
    ap.add_argument("--models", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=1.0, help="seconds per model, runtime and round")
    ap.add_argument("--warmup-ms", type=float, default=200.0)
    ap.add_argument("--small-duration", type=float, default=2.0, help="seconds per small-net per-call timing")
    ap.add_argument("--gemm-duration", type=float, default=0.3)
    ap.add_argument("--skip-gemm", action="store_true")
    ap.add_argument("--max-foreign", type=float, default=0.05,
                    help="repeat a timing during which other processes and the hypervisor took more than this "
                         "many CPUs on average (default 0.05; see 'Disturbance guard' above)")
    ap.add_argument("--retries", type=int, default=3, help="repeats of a disturbed timing (default 3)")
    ap.add_argument("--far-ns", type=float, default=300.0,
                    help="repeat a multi-thread timing (up to --retries times) when one cache line's round trip "
                         "between the two CPUs, just before or after it, took longer than this: the host ran "
                         "them far apart (0: record the placement only)")
    ap.add_argument("--gemm-squares", default="512,1024", help="M = N = K GEMMs added to the roofline")
    ap.add_argument("--keep-work", action="store_true",
                    help="keep the temporary directory with the engines and inputs (printed) instead of "
                         "removing it at exit")
    ap.add_argument("--json", default=os.path.join(ROOT, "build", "bench", "compare.json"))
    ap.add_argument("--ov-avx2", action="store_true",
                    help="also time OpenVINO with ONEDNN_MAX_CPU_ISA=AVX2 (a child process per timing), as "
                         "the runtime 'ov_avx2': with --anvil-avx2, an AVX2-against-AVX2 comparison")
    ap.add_argument("--ort-avx2", action="store_true",
                    help="also time onnxruntime on an AVX2-only view of the CPU (the bench/cpuid_avx2.c "
                         "shim hides AVX-512, AVX-VNNI and AMX from CPUID; a child process per timing), as "
                         "the runtime 'ort_avx2': with --anvil-avx2, an AVX2-against-AVX2 comparison")
    ap.add_argument("--cpuid-shim", default=os.path.join(ROOT, "build", "bench", "libanvil_cpuid_avx2.so"),
                    help="the shim --ort-avx2 preloads (target anvil_cpuid_avx2)")
    ap.add_argument("--avx2", action="store_true",
                    help="shorthand for --anvil-avx2 --ort-avx2 --ov-avx2")
    ap.add_argument("--anvil-avx2", action="store_true",
                    help="also time anvil with ANVIL_MAX_ISA=avx2 (on an AVX-512 host: the kernels an "
                         "AVX2-only CPU gets), as the runtime 'anvil_avx2'")
    args = ap.parse_args(argv)
    if args.avx2:
        args.anvil_avx2 = args.ort_avx2 = args.ov_avx2 = True
    runtimes = RUNTIMES + tuple(w for w, on in (("anvil_avx2", args.anvil_avx2), ("ort_avx2", args.ort_avx2),
                                                ("ov_avx2", args.ov_avx2)) if on)
    classes = {"anvil": Anvil, "ort": Ort, "ov": OpenVino, "anvil_avx2": AnvilAvx2, "ort_avx2": OrtAvx2,
               "ov_avx2": OpenVinoAvx2}
    for path, what in ((args.anvil, "anvil_cli"), (args.bench_bin, "anvil_bench_runtime")):
        if not os.path.isfile(path):
            ap.error(f"no {path} (build the {what} target)")

    tmp = tempfile.mkdtemp(prefix="anvil-compare-")
    if args.keep_work:
        print(f"engines and inputs stay in {tmp}", file=sys.stderr)
    else:  # an engine per model and thread count: ~2 GB for the whole zoo
        atexit.register(shutil.rmtree, tmp, True)
    threads = [int(t) for t in args.threads.split(",")]
    out = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "command": " ".join([os.path.relpath(sys.executable, ROOT)] + sys.argv),
           "load_before": os.getloadavg(), "machine": machine(), "versions": versions(),
           "threads": threads, "rounds": args.rounds, "duration_s": args.duration,
           "max_foreign_cpus": args.max_foreign, "retries": args.retries, "far_ns": args.far_ns}
    print(json.dumps(out["versions"]), file=sys.stderr)
    models = collect_models(args, tmp)
    if not models:
        sys.exit("compare.py: no models (tests/models/export_models.py writes them)")

    # Prepare every (model, threads, runtime) once; a failure leaves that cell empty. anvil's
    # engines first, all of them: its builder times kernels, layouts and task splits, and
    # with the peers' sessions alive in this process their thread pools can still be busy
    # from the compile or first run before it (a resnet18_s32 engine built in the 14:06 run of
    # 2026-12-06 had its blocked region cut into parts with Reorders between them, where six
    # builds alone kept it whole, and ran 1.36x onnxruntime at two threads).
    prepared, errors = {}, {}
    builders = [w for w in runtimes if w.startswith("anvil")]
    for phase in (builders, [w for w in runtimes if w not in builders]):
        for m in models:
            for t in threads:
                for who in phase:
                    try:
                        prepared[m.name, t, who] = classes[who](args, m, t, tmp)
                    except Exception as e:
                        errors[f"{m.name}/{t}/{who}"] = str(e)[-500:]
                        print(f"[W] {m.name} threads={t} {who}: {str(e)[-300:]}", file=sys.stderr)
            print(f"prepared {m.name} ({', '.join(phase)})", file=sys.stderr, flush=True)

    samples = {}
    for r in range(args.rounds):
        k = r % len(runtimes)
        order = runtimes[k:] + runtimes[:k]
        for m in models:
            for t in threads:
                for who in order:
                    p = prepared.get((m.name, t, who))
                    if p is None:
                        continue
                    if hasattr(p, "time"):  # anvil and the child-process runtimes time themselves
                        measure = lambda p=p: p.time(args.duration, args.warmup_ms)
                    else:
                        measure = lambda p=p: time_calls(p.call, args.duration, args.warmup_ms)
                    res = guarded(measure, args.max_foreign, args.retries,
                                  rtt=(lambda: core_rtt_ns(args.bench_bin)) if t > 1 else None,
                                  far_ns=args.far_ns)
                    if res["attempts"] > 1:
                        print(f"[I] {m.name} threads={t} {who}: {res['attempts']} attempts (others took "
                              f"{res['foreign_cpus']:.2f} CPUs during the one kept)", file=sys.stderr, flush=True)
                    samples.setdefault((m.name, t, who), []).append(res)
        out.setdefault("load_per_round", []).append(os.getloadavg()[0])
        print(f"round {r + 1}/{args.rounds} done (load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)

    rows = []
    for m in models:
        if m.name == "floor_relu_1x1":  # only in the per-call table
            continue
        for t in threads:
            row = {"model": m.name, "threads": t}
            for who in runtimes:
                s = samples.get((m.name, t, who))
                if s:
                    row[f"{who}_median_ms"] = statistics.median(x["median_ms"] for x in s)
                    row[f"{who}_p99_ms"] = statistics.median(x["p99_ms"] for x in s)
                    row[f"{who}_round_medians_ms"] = [x["median_ms"] for x in s]
                    row[f"{who}_round_foreign_cpus"] = [x.get("foreign_cpus") for x in s]
                    row[f"{who}_round_attempts"] = [x.get("attempts", 1) for x in s]
                    if t > 1:
                        row[f"{who}_round_core_rtt_ns"] = [x.get("core_rtt_ns") for x in s]
                        row[f"{who}_round_core_rtt_after_ns"] = [x.get("core_rtt_after_ns") for x in s]
            if (m.name, t, "anvil") in prepared:
                row["anvil_build_s"] = prepared[m.name, t, "anvil"].build_s
            rows.append(row)
    out["rows"] = rows
    out["errors"] = errors

    # Small nets, call by call, one thread.
    small = []
    for m in sorted((m for m in models if m.name in SMALL_NETS), key=lambda m: SMALL_NETS.index(m.name)):
        row = {"model": m.name}
        for who in RUNTIMES:
            p = prepared.get((m.name, 1, who))
            if p is None:
                continue
            measure = (lambda p=p: p.time(args.small_duration, 500)) if who == "anvil" else \
                (lambda p=p: time_calls(p.call, args.small_duration, 500))
            res = guarded(measure, args.max_foreign, args.retries)
            row[f"{who}_median_us"] = res["median_ms"] * 1000
            row[f"{who}_p99_us"] = res["p99_ms"] * 1000
        try:
            module = torch_module(m.name, m)
            ref = prepared[m.name, 1, "ort"].outputs if (m.name, 1, "ort") in prepared else None
            if module is not None and ref is not None:
                res = guarded(lambda: time_torch(module, m, ref, args.small_duration, 500), args.max_foreign,
                              args.retries)
                row["torch_median_us"] = res["median_ms"] * 1000
                row["torch_p99_us"] = res["p99_ms"] * 1000
        except Exception as e:
            errors[f"{m.name}/torch"] = str(e)[-500:]
            print(f"[W] {m.name} torch: {e}", file=sys.stderr)
        small.append(row)
    out["small"] = small

    if not args.skip_gemm:
        out["roofline"] = roofline(args, [m for m in models if m.name not in SMALL_NETS], tmp)
    out["load_after"] = os.getloadavg()
    out["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")

    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("--ov-worker", "--ort-worker"):
        sys.exit(worker(sys.argv[1][2:-7], sys.argv[2:]))
    sys.exit(main())
