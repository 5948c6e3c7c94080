#!/usr/bin/env python3
"""INT8 against FP32, and against onnxruntime's own static INT8, on the same model and data.

Usage:
    build/bench-venv/bin/python bench/int8.py --anvil build/tools/anvil \
        [--models resnet50,resnet18,bert_tiny,bert_base4] [--threads 1] [--rounds 3] [--duration 2] [--json F]

Per model (export_models.py's resnet18 / bert_tiny in build/models and bert_base4 -- BERT-base width,
4 layers, sequence 128 -- in build/models-bench (--bench), export_resnet50.py's
resnet50 in build/models-resnet50):
  * data: 24 samples made from the exported input (images: the input plus Gaussian noise,
    sigma 0.3; token ids: random ids, the same mask), 16 for calibration, 8 held out;
  * anvil FP32: `--saveEngine`, then `--loadEngine --duration=D` rounds (median latency);
  * anvil INT8: `--int8 --calibData=DIR` (the default percentile calibrator), same timing;
  * onnxruntime FP32 and onnxruntime INT8: `quantize_static` (QDQ, per-channel int8
    weights, uint8 activations -- onnxruntime's recommended U8S8 form for x86 --, MinMax
    calibration on the same 16 samples), sessions at
    ORT_ENABLE_ALL with the same threads, timed call by call;
  * accuracy on the 8 held-out samples against each runtime's own FP32: the relative
    output error ||y - y32|| / ||y32|| (mean) and the top-1 agreement of output 0.
Rounds alternate anvil and onnxruntime. Each round's pair of timings per runtime (FP32 then
INT8) goes through compare.py's guards: repeated (up to --retries more times, the least
disturbed attempt kept) while other processes took more than --max-foreign CPUs during it
or, at several threads, while the host ran the two CPUs far apart (`anvil_bench_runtime
--core-rtt` over --far-ns before or after it; two-thread runs on these hosts are ~20-75%
slower far, INT8 more than FP32). Prints a table and writes --json (with the pairs repeated
and those kept far).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import core_rtt_ns, guarded  # noqa: E402  (the same guards as the zoo comparison)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAT_RE = re.compile(r"Latency: min = ([0-9.]+) ms, max = ([0-9.]+) ms, mean = ([0-9.]+) ms, median = ([0-9.]+) ms")


def model_paths(name):
    if name == "resnet50":
        d = os.path.join(ROOT, "build", "models-resnet50")
    elif name == "bert_base4":  # export_models.py --bench
        d = os.path.join(ROOT, "build", "models-bench")
    else:
        d = os.path.join(ROOT, "build", "models")
    man = json.load(open(os.path.join(d, "manifest.json")))
    entry = man["models"][name]
    inputs = {i["name"]: np.load(os.path.join(d, i["file"])) for i in entry["inputs"]}
    return os.path.join(d, entry["file"]), inputs


def make_samples(inputs, n, rng):
    samples = []
    for _ in range(n):
        s = {}
        for name, x in inputs.items():
            if x.dtype.kind == "f":
                s[name] = (x + rng.normal(0, 0.3, x.shape)).astype(x.dtype)
            elif name == "input_ids":
                s[name] = rng.integers(1, 1000, x.shape).astype(x.dtype)
            else:
                s[name] = x.copy()
        samples.append(s)
    return samples


def sanitize(name):
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def anvil_build(anvil, onnx_path, engine, threads, extra):
    cmd = [anvil, f"--onnx={onnx_path}", f"--saveEngine={engine}", f"--threads={threads}", "--skipInference"] + extra
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"anvil build failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    m = re.search(r"Precision: linear layers (.*)", r.stdout)
    return m.group(1) if m else "f32 only"


def anvil_time(anvil, engine, threads, duration, feeds_dir, inputs):
    loads = ",".join(f"{n}:{os.path.join(feeds_dir, sanitize(n) + '.npy')}" for n in inputs)
    r = subprocess.run([anvil, f"--loadEngine={engine}", f"--threads={threads}", f"--duration={duration}",
                        "--warmUp=300", f"--loadInputs={loads}"], capture_output=True, text=True)
    m = LAT_RE.search(r.stdout)
    if not m:
        raise RuntimeError(f"no latency in anvil output:\n{r.stdout}\n{r.stderr}")
    return float(m.group(4))


def anvil_outputs(anvil, engine, sample, work):
    feeds = os.path.join(work, "feeds")
    outs = os.path.join(work, "outs")
    shutil.rmtree(outs, ignore_errors=True)
    os.makedirs(feeds, exist_ok=True)
    for n, x in sample.items():
        np.save(os.path.join(feeds, sanitize(n) + ".npy"), x)
    loads = ",".join(f"{n}:{os.path.join(feeds, sanitize(n) + '.npy')}" for n in sample)
    r = subprocess.run([anvil, f"--loadEngine={engine}", "--iterations=1", "--duration=0", "--warmUp=0",
                        f"--loadInputs={loads}", f"--saveOutputs={outs}"], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"anvil run failed:\n{r.stdout}\n{r.stderr}")
    return [np.load(os.path.join(outs, f)) for f in sorted(os.listdir(outs))]


def ort_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_time(sess, feeds, duration):
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:
        sess.run(None, feeds)
    times = []
    end = time.perf_counter() + duration
    while time.perf_counter() < end or len(times) < 10:
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def ort_outputs(sess, sample):
    names = sorted(o.name for o in sess.get_outputs())
    res = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, sample)))
    return [res[n] for n in names]


def accuracy(ref, got):
    rel = [float(np.linalg.norm(g[0].astype(np.float64) - r[0]) / max(np.linalg.norm(r[0]), 1e-30))
           for r, g in zip(ref, got)]
    top1 = []
    for r, g in zip(ref, got):
        a, b = r[0].reshape(-1, r[0].shape[-1]), g[0].reshape(-1, g[0].shape[-1])
        top1.extend((a.argmax(-1) == b.argmax(-1)).tolist())
    return float(np.mean(rel)), float(np.mean(top1))


class Reader(CalibrationDataReader):
    def __init__(self, samples):
        self.it = iter(samples)

    def get_next(self):
        return next(self.it, None)


# Hand-written sections of docs/int8.md (the Q/DQ models one) sit below this line; writing
# the doc keeps them (as bench/report.py keeps docs/performance.md's).
KEEP_MARKER = "<!-- bench/int8.py keeps everything below this line on a rerun -->"


def write_doc(json_files, doc):
    """docs/int8.md from one or more --json files of earlier runs (no measuring)."""
    import platform
    rows, versions = [], set()
    for jf in json_files:
        d = json.load(open(jf))
        rows.extend(d["rows"])
        versions.add(d.get("onnxruntime", "?"))
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    revs = sorted({r.get("anvil_rev", "") for r in rows} - {""})
    rev = ", ".join(revs) if revs else "(revision not recorded)"
    out = ["# INT8: anvil against its FP32 and against onnxruntime's static INT8", "",
           "Generated by `bench/int8.py` (see its header for the method); rerun with",
           "`build/bench-venv/bin/python bench/int8.py --models resnet50,resnet18,bert_tiny,bert_base4 --threads N --json build/bench/int8_tN.json`",
           "per thread count (and with `ANVIL_MAX_ISA=avx512` / `avx2` in the environment, `--models resnet50,bert_base4",
           "--json build/bench/int8_t1_<isa>.json`, for the capped rows), then `build/bench-venv/bin/python bench/int8.py",
           "--doc docs/int8.md --from <those JSON files, comma-separated>`.",
           "", f"- Machine: {cpu}, {os.cpu_count()} cores ({platform.machine()}); anvil {rev}; onnxruntime "
           f"{', '.join(sorted(versions))}, `quantize_static` QDQ, per-channel int8 weights, uint8 activations (U8S8), MinMax",
           "- Data: 16 calibration samples, 8 held-out samples (the exported input plus noise: the zoo's weights are",
           "  random, so accuracy is agreement with each runtime's own FP32, not a task accuracy)",
           "- Latency: median of 3 interleaved rounds of 2 s each, batch 1", "",
           "- anvil ISA: `native` = every feature of this CPU; `avx512` = `ANVIL_MAX_ISA=avx512` (AMX hidden: an AVX-512",
           "  VNNI CPU's kernels, FP32 and INT8); `avx2` = `ANVIL_MAX_ISA=avx2` (an AVX2-only CPU's kernels). The cap is",
           "  anvil's only: onnxruntime runs with every feature of the CPU in every row, so the ratio to onnxruntime",
           "  is a like-for-like comparison in the `native` rows alone", "",
           "| model | anvil ISA | threads | anvil FP32 ms | anvil INT8 ms | INT8 / FP32 | onnxruntime FP32 ms | onnxruntime INT8 ms | "
           "anvil INT8 / onnxruntime INT8 | rel. error anvil / ort | top-1 anvil / ort | anvil layers |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['model']} | {r.get('isa', 'native')} | {r['threads']} | {r['anvil_f32_ms']:.3f} | {r['anvil_i8_ms']:.3f} | "
                   f"{r['anvil_i8_ms'] / r['anvil_f32_ms']:.2f}x | {r['ort_f32_ms']:.3f} | {r['ort_i8_ms']:.3f} | "
                   f"{r['anvil_i8_ms'] / r['ort_i8_ms']:.2f}x | {r['anvil_i8_rel_err']:.4f} / {r['ort_i8_rel_err']:.4f} | "
                   f"{r['anvil_i8_top1']:.3f} / {r['ort_i8_top1']:.3f} | {r['anvil_layers']} |")
    # The checks, from the rows: INT8 <= 0.4x anvil's FP32 on resnet50 and the BERT-like
    # encoder (<= 0.55x without VNNI), and faster than onnxruntime's INT8 at equal or better accuracy.
    flags = ""
    try:
        flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split()
    except (OSError, StopIteration):
        flags = []
    vnni = "avx512_vnni" in flags or "avx_vnni" in flags
    out += ["", "Goal check (the issue: INT8 <= 0.4x anvil's FP32 on resnet50 and the BERT-like encoder, <= 0.55x on "
            "CPUs without VNNI, faster than onnxruntime's static INT8 at equal or better accuracy; this CPU has %s%s):" % (
                "VNNI" if vnni else "no VNNI", " and AMX-INT8" if "amx_int8" in flags else ""), ""]
    for r in rows:
        if r["model"] not in ("resnet50", "bert_base4"):
            continue
        bar = 0.55 if r.get("isa") == "avx2" or not vnni else 0.4
        q = r["anvil_i8_ms"] / r["anvil_f32_ms"]
        o = r["anvil_i8_ms"] / r["ort_i8_ms"]
        acc = r["anvil_i8_rel_err"] <= r["ort_i8_rel_err"] and r["anvil_i8_top1"] >= r["ort_i8_top1"]
        out.append(f"- {r['model']}, ISA {r.get('isa', 'native')}, {r['threads']} thread(s): INT8 / FP32 {q:.2f}x "
                   f"(bar {bar}: {'met' if q <= bar else 'not met'}); "
                   f"/ onnxruntime INT8 {o:.2f}x ({'faster' if o < 1 else 'slower'}), accuracy "
                   f"{'equal or better' if acc else 'worse'} (rel. error {r['anvil_i8_rel_err']:.4f} vs "
                   f"{r['ort_i8_rel_err']:.4f}, top-1 {r['anvil_i8_top1']:.3f} vs {r['ort_i8_top1']:.3f})")
    out += ["", "How: activations between INT8 layers stay u8 (the INT8 chains of docs/design.md), the INT8 Conv and",
            "MatMul kernels are timed per layer among the families the CPU has (AMX-INT8 tiles, AVX-512 VNNI, AVX-VNNI,",
            "AVX2, portable), and the layer info (`--dumpLayerInfo`) names the tactic of each layer."]
    kept = ""
    if os.path.exists(doc):
        with open(doc) as f:
            page = f.read()
        if KEEP_MARKER in page:
            kept = page[page.index(KEEP_MARKER) + len(KEEP_MARKER):]
    with open(doc, "w") as f:
        f.write("\n".join(out) + "\n\n" + KEEP_MARKER + kept)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--doc", default="", help="write this markdown from --from's JSON files instead of measuring")
    ap.add_argument("--from", dest="from_", default="", help="comma-separated --json files of earlier runs (with --doc)")
    ap.add_argument("--anvil", default=os.path.join(ROOT, "build", "tools", "anvil"))
    ap.add_argument("--models", default="resnet50,resnet18,bert_tiny")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--json", default=os.path.join(ROOT, "build", "bench", "int8.json"))
    ap.add_argument("--bench-bin", default=os.path.join(ROOT, "build", "bench", "anvil_bench_runtime"),
                    help="anvil_bench_runtime, for --core-rtt before and after each multi-thread pair")
    ap.add_argument("--far-ns", type=float, default=300.0, help="core round trip above which a pair ran far")
    ap.add_argument("--max-foreign", type=float, default=0.05, help="CPUs others may take during a pair")
    ap.add_argument("--retries", type=int, default=3)
    args = ap.parse_args()
    if args.doc:
        write_doc([f for f in args.from_.split(",") if f] or [args.json], args.doc)
        return
    rng = np.random.default_rng(7)
    rows = []
    for name in args.models.split(","):
        path, base = model_paths(name)
        samples = make_samples(base, 24, rng)
        calib, test = samples[:16], samples[16:]
        work = tempfile.mkdtemp(prefix=f"anvil-int8-{name}-")
        try:
            cdir = os.path.join(work, "calib")
            os.makedirs(cdir)
            for n in base:
                np.save(os.path.join(cdir, sanitize(n) + ".npy"), np.concatenate([s[n] for s in calib]))
            fdir = os.path.join(work, "feeds0")
            os.makedirs(fdir)
            for n, x in base.items():
                np.save(os.path.join(fdir, sanitize(n) + ".npy"), x)
            e32, e8 = os.path.join(work, "f32.engine"), os.path.join(work, "i8.engine")
            p32 = anvil_build(args.anvil, path, e32, args.threads, [f"--loadInputs=" + ",".join(
                f"{n}:{os.path.join(fdir, sanitize(n) + '.npy')}" for n in base)])
            p8 = anvil_build(args.anvil, path, e8, args.threads, ["--int8", f"--calibData={cdir}", "--loadInputs=" + ",".join(
                f"{n}:{os.path.join(fdir, sanitize(n) + '.npy')}" for n in base)])
            qpath = os.path.join(work, "ort_int8.onnx")
            quantize_static(path, qpath, Reader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
            s32, s8 = ort_session(path, args.threads), ort_session(qpath, args.threads)
            t = {"anvil_f32": [], "anvil_i8": [], "ort_f32": [], "ort_i8": []}
            rtt = (lambda: core_rtt_ns(args.bench_bin)) if args.threads > 1 and os.path.exists(args.bench_bin) else None
            repeated = far_kept = 0
            for r in range(args.rounds):
                order = [0, 1] if r % 2 == 0 else [1, 0]
                for o in order:
                    if o == 0:
                        who, pair = "anvil", lambda: {
                            "f32": anvil_time(args.anvil, e32, args.threads, args.duration, fdir, base),
                            "i8": anvil_time(args.anvil, e8, args.threads, args.duration, fdir, base)}
                    else:
                        who, pair = "ort", lambda: {"f32": ort_time(s32, base, args.duration),
                                                    "i8": ort_time(s8, base, args.duration)}
                    res = guarded(pair, args.max_foreign, args.retries, rtt=rtt, far_ns=args.far_ns)
                    repeated += res["attempts"] > 1
                    far_kept += any(res.get(k) is not None and res[k] > args.far_ns
                                    for k in ("core_rtt_ns", "core_rtt_after_ns"))
                    t[f"{who}_f32"].append(res["f32"])
                    t[f"{who}_i8"].append(res["i8"])
            med = {k: statistics.median(v) for k, v in t.items()}
            a32 = [anvil_outputs(args.anvil, e32, s, work) for s in test]
            a8 = [anvil_outputs(args.anvil, e8, s, work) for s in test]
            o32 = [ort_outputs(s32, s) for s in test]
            o8 = [ort_outputs(s8, s) for s in test]
            arel, atop = accuracy(a32, a8)
            orel, otop = accuracy(o32, o8)
            rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip()
            row = {"model": name, "threads": args.threads, "anvil_rev": rev,
                   "isa": os.environ.get("ANVIL_MAX_ISA", "native"), **{k + "_ms": v for k, v in med.items()},
                   "anvil_layers": p8, "anvil_i8_rel_err": arel, "anvil_i8_top1": atop,
                   "ort_i8_rel_err": orel, "ort_i8_top1": otop, "round_ms": t, "pairs_repeated": repeated,
                   "pairs_kept_far": far_kept}
            rows.append(row)
            print(f"{name:10s} t{args.threads}  anvil f32 {med['anvil_f32']:8.3f} ms  i8 {med['anvil_i8']:8.3f} ms "
                  f"({med['anvil_i8'] / med['anvil_f32']:.2f}x; {p8})  |  ort f32 {med['ort_f32']:8.3f}  i8 "
                  f"{med['ort_i8']:8.3f} ms  |  anvil i8 / ort i8 {med['anvil_i8'] / med['ort_i8']:.2f}  |  "
                  f"rel err anvil {arel:.4f} ort {orel:.4f}  top1 anvil {atop:.3f} ort {otop:.3f}  "
                  f"(pairs repeated {repeated}, kept far {far_kept})", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"rows": rows, "onnxruntime": ort.__version__}, f, indent=1)


if __name__ == "__main__":
    main()
