#!/usr/bin/env python3
"""Run the anvil CLI on the exported model set and compare with the onnxruntime oracle.

Usage:
    python3 tests/models/compare.py --manifest OUTDIR/manifest.json --anvil build/anvil \
        [--models a,b] [--tol 1e-4] [--extra "--builderOptimizationLevel=3"] [-- ANVIL_ARGS...]

For each model this runs
    anvil --onnx=<model.onnx> --loadInputs=name:file[,name:file...] --saveOutputs=TMPDIR [extra...]
reads TMPDIR/<sanitized output name>.npy for every output and computes
    rel_err = max|a - b| / max(max(b) - min(b), tiny)        (b: onnxruntime output)
A model passes when every output has the oracle's shape, no NaN/Inf where the oracle is
finite, and rel_err <= --tol (or the manifest entry's own "tol"). Prints one line per model and a summary line; exits 1 if any
model fails, 2 on a usage error. Needs only numpy.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
except ImportError:
    sys.exit("compare.py: numpy is missing; run it with the venv python "
             "(PY=$(scripts/setup_python.sh)) or /usr/bin/python3")

TINY = 1e-12
_SANITIZE_RE = re.compile(r"[^A-Za-z0-9._-]")


def sanitize(name):
    return _SANITIZE_RE.sub("_", name)


def rel_error(actual, expected):
    """max|a-b| / max(range(b), TINY), in float64. Returns (err, note)."""
    a = np.asarray(actual)
    b = np.asarray(expected)
    if a.shape != b.shape:
        return float("inf"), f"shape {list(a.shape)} != expected {list(b.shape)}"
    if b.size == 0:
        return 0.0, ""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    fin_b = np.isfinite(b)
    fin_a = np.isfinite(a)
    if np.any(fin_a != fin_b):
        n = int(np.count_nonzero(fin_a != fin_b))
        return float("inf"), f"{n} non-finite value(s) differ from the oracle"
    # Non-finite in both: must match exactly (same inf sign, or both NaN).
    nf = ~fin_b
    if np.any(nf):
        same = (np.isnan(a[nf]) & np.isnan(b[nf])) | (a[nf] == b[nf])
        if not np.all(same):
            return float("inf"), "non-finite values differ from the oracle"
    if not np.any(fin_b):
        return 0.0, ""
    diff = float(np.max(np.abs(a[fin_b] - b[fin_b])))
    span = float(np.max(b[fin_b]) - np.min(b[fin_b]))
    return diff / max(span, TINY), ""


RUN_ONCE = ["--iterations=1", "--duration=0", "--warmUp=0"]


ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 9: np.bool_,
               10: np.float16, 11: np.float64}


def run_model(name, entry, base, anvil, extra, tol, timeout, keep, verbose, via_engine=False, runner=None):
    """Returns (passed, err, detail, seconds)."""
    model_path = os.path.join(base, entry["file"])
    for f in [entry["file"]] + [i["file"] for i in entry["inputs"]] + \
             [o["file"] for o in entry["outputs"]]:
        if not os.path.isfile(os.path.join(base, f)):
            return False, float("inf"), f"missing file {f} (re-run export_models.py)", 0.0
    load = ",".join(f"{i['name']}:{os.path.join(base, i['file'])}" for i in entry["inputs"])
    # Engines are built for a profile (as trtexec's): the inputs' own shapes.
    shapes = "--shapes=" + ",".join(
        f"{i['name']}:{'x'.join(str(d) for d in np.load(os.path.join(base, i['file']), mmap_mode='r').shape)}"
        for i in entry["inputs"])
    tmp = tempfile.mkdtemp(prefix=f"anvil-cmp-{name}-")
    if via_engine:
        # Build and save the engine first, then load it in a second process.
        engine = os.path.join(tmp, name + ".engine")
        build = [anvil, f"--onnx={model_path}", f"--saveEngine={engine}", "--skipInference", shapes] + extra
        if verbose:
            print("  $ " + " ".join(shlex.quote(c) for c in build), flush=True)
        try:
            b = subprocess.run(build, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False, float("inf"), f"engine build timed out after {timeout}s", 0.0
        if b.returncode != 0:
            tail = " | ".join(b.stdout.decode(errors="replace").strip().splitlines()[-5:])
            return False, float("inf"), f"engine build exit code {b.returncode}: {tail}", 0.0
        if runner:
            # A program on the C API: raw inputs with their shapes; outputs k.bin + k.shape.
            specs = []
            for i in entry["inputs"]:
                arr = np.load(os.path.join(base, i["file"]))
                raw = os.path.join(tmp, sanitize(i["name"]) + ".bin")
                arr.tofile(raw)
                specs.append(f"{i['name']}:{'x'.join(str(d) for d in arr.shape)}:{raw}")
            cmd = [runner, engine, tmp] + specs
        else:
            cmd = [anvil, f"--loadEngine={engine}", f"--loadInputs={load}", f"--saveOutputs={tmp}"] + RUN_ONCE
    else:
        cmd = [anvil, f"--onnx={model_path}", f"--loadInputs={load}", f"--saveOutputs={tmp}", shapes] + RUN_ONCE
        cmd += extra
    if verbose:
        print("  $ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    t0 = time.time()
    try:
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            return False, float("inf"), f"anvil timed out after {timeout}s", time.time() - t0
        except OSError as e:
            return False, float("inf"), f"cannot run anvil: {e}", time.time() - t0
        dt = time.time() - t0
        log = p.stdout.decode(errors="replace")
        if verbose and log:
            print("\n".join("  | " + ln for ln in log.rstrip().splitlines()), flush=True)
        if p.returncode != 0:
            tail = " | ".join(log.strip().splitlines()[-5:])
            return False, float("inf"), f"anvil exit code {p.returncode}: {tail}", dt
        worst, worst_name, notes = 0.0, "", []
        if runner:  # convert the runner's raw outputs to .npy named like the CLI's
            for k, o in enumerate(entry["outputs"]):
                shape_file = os.path.join(tmp, f"{k}.shape")
                if os.path.isfile(shape_file):
                    dims, code = open(shape_file).read().split()
                    shape = [int(d) for d in dims.split("x")] if dims else []
                    arr = np.fromfile(os.path.join(tmp, f"{k}.bin"), dtype=ONNX_DTYPES[int(code)]).reshape(shape)
                    np.save(os.path.join(tmp, sanitize(o["name"]) + ".npy"), arr)
        for o in entry["outputs"]:
            got_path = os.path.join(tmp, sanitize(o["name"]) + ".npy")
            if not os.path.isfile(got_path):
                notes.append(f"{o['name']}: no output file {os.path.basename(got_path)}")
                worst = float("inf")
                worst_name = worst_name or o["name"]
                continue
            try:
                got = np.load(got_path, allow_pickle=False)
            except Exception as e:  # malformed .npy
                notes.append(f"{o['name']}: unreadable .npy ({e})")
                worst = float("inf")
                continue
            exp = np.load(os.path.join(base, o["file"]), allow_pickle=False)
            err, note = rel_error(got, exp)
            if note:
                notes.append(f"{o['name']}: {note}")
            elif err > tol:
                notes.append(f"{o['name']}: rel_err {err:.3e}")
            if verbose:
                print(f"  {o['name']}: rel_err {err:.3e} {note}", flush=True)
            if err >= worst:
                worst, worst_name = err, o["name"]
        passed = worst <= tol and not notes
        detail = "; ".join(notes) if notes else f"worst output {worst_name}"
        return passed, worst, detail, dt
    finally:
        if keep:
            print(f"  outputs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", required=True, help="manifest.json from export_models.py")
    ap.add_argument("--anvil", required=True, help="path to the anvil CLI binary")
    ap.add_argument("--models", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--tol", type=float, default=1e-4, help="max relative error (1e-4)")
    ap.add_argument("--runner", default=None,
                    help="run the saved engine with this C-API program (tests/runtime/capi_run.c) instead of the CLI")
    ap.add_argument("--via-engine", action="store_true",
                    help="build with --saveEngine, then run with --loadEngine in a second process")
    ap.add_argument("--extra", action="append", default=[],
                    help="extra arguments passed through to anvil (shell-split; repeatable)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per model (600)")
    ap.add_argument("--keep", action="store_true", help="keep anvil's output directories")
    ap.add_argument("-v", "--verbose", action="store_true")
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough = []
    if "--" in argv:  # everything after a bare "--" goes to anvil verbatim
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1:]
    # argparse refuses an option value that starts with "-" ("--extra --foo=1"):
    # glue such values on ("--extra=--foo=1").
    fixed, i = [], 0
    while i < len(argv):
        if argv[i] == "--extra" and i + 1 < len(argv):
            fixed.append("--extra=" + argv[i + 1])
            i += 2
        else:
            fixed.append(argv[i])
            i += 1
    args = ap.parse_args(fixed)

    try:
        with open(args.manifest) as f:
            manifest = json.load(f)
        models = manifest["models"]
    except (OSError, ValueError, KeyError) as e:
        print(f"error: cannot read manifest {args.manifest}: {e}", file=sys.stderr)
        return 2
    base = os.path.dirname(os.path.abspath(args.manifest))
    anvil = args.anvil
    if os.sep in anvil:
        anvil = os.path.abspath(anvil)
    if not (shutil.which(anvil)):
        print(f"error: anvil binary {args.anvil!r} not found or not executable", file=sys.stderr)
        return 2
    names = [m for m in args.models.split(",") if m] or list(models)
    unknown = [m for m in names if m not in models]
    if unknown:
        print(f"error: model(s) {unknown} not in manifest; available: {list(models)}",
              file=sys.stderr)
        return 2
    extra = [a for e in args.extra for a in shlex.split(e)] + passthrough

    failed = []
    width = max(len(n) for n in names) if names else 0
    for name in names:
        # A manifest entry may carry its own bar (export_qdq.py: one quantization step).
        tol = models[name].get("tol", args.tol)
        ok, err, detail, dt = run_model(name, models[name], base, anvil, extra, tol,
                                        args.timeout, args.keep, args.verbose, args.via_engine or bool(args.runner),
                                        args.runner)
        status = "PASS" if ok else "FAIL"
        print(f"{status} {name:<{width}}  rel_err={err:.3e}  time={dt:.2f}s  ({detail})",
              flush=True)
        if not ok:
            failed.append(name)
    n = len(names)
    summary = f"SUMMARY: {n - len(failed)}/{n} passed (tol {args.tol:g})"
    if failed:
        summary += f"; FAILED: {', '.join(failed)}"
    print(summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
