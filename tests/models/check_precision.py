#!/usr/bin/env python3
"""Checks --precision=auto on a committed trained model (tests/models/precision/<model>):
builds an FP32 engine and an engine with the given precision flags through the anvil CLI,
runs both on the model's test split batch by batch and checks top-1 agreement and the
precision of the linear layers (--exportLayerInfo). No training; a few seconds.

    check_precision.py --anvil build/tools/anvil --model tests/models/precision/digits_mlp \\
        [--min-agreement 0.995] [--min-int8 1] [--high /fc2/Gemm] [--others int8] -- FLAGS...

FLAGS are passed to the build (--calibData defaults to the model's calib/ directory).
--precision=auto gives each layer a floor (the cheapest precision its budget allows) and the
builder may run a more precise kernel where it is faster (precisionReason "cost"; "budget"
when the budget raised the floor), so a layer "at the INT8 floor" is one that runs INT8 or
has reason "cost" with INT8 allowed.
--min-int8 N: at least N linear layers at the INT8 floor; --min-int8-run N: at least N run
INT8 kernels, checked where the CPU has VNNI (there INT8 is the fastest on these layers;
elsewhere the builder may rightly prefer FP32). --high NAME: that layer must run in f32 or
f16 (and under --precision=auto with reason "budget"); --others int8: every other linear layer at the INT8 floor.
Exit code 1 when a check fails, 2 on usage errors.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

LINEAR_TYPES = {"Conv", "Gemm", "MatMul", "anvil.FusedConv", "anvil.FusedGemm", "anvil.FusedMatMul"}


def at_int8_floor(layer):
    return layer["Precision"] == "i8" or layer.get("PrecisionReason") == "cost"


def has_vnni():
    if os.environ.get("ANVIL_MAX_ISA"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return " avx512_vnni" in flags or " avx_vnni" in flags


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        print(p.stdout[-3000:])
        raise SystemExit(f"FAIL: {' '.join(cmd)} exited with {p.returncode}")
    return p.stdout


def build(anvil, model, flags, engine, info):
    log = run([anvil, f"--onnx={model}", "--threads=1", f"--saveEngine={engine}", f"--exportLayerInfo={info}",
               "--skipInference"] + flags)
    for line in log.splitlines():
        if line.startswith("[I] Precision") or line.startswith("[W]"):
            print("  " + line)
    with open(info) as f:
        return [l for l in json.load(f)["Layers"] if l.get("LayerType") in LINEAR_TYPES or l.get("PrecisionReason")]


def infer(anvil, engine, meta, x, work):
    outs, batch = [], meta["batch"]
    for b in range(len(x) // batch):
        f = os.path.join(work, "in.npy")
        np.save(f, np.ascontiguousarray(x[b * batch:(b + 1) * batch]))
        run([anvil, f"--loadEngine={engine}", "--threads=1", f"--loadInputs={meta['input']}:{f}",
             f"--saveOutputs={work}", "--iterations=1", "--warmUp=0", "--duration=0"])
        outs.append(np.load(os.path.join(work, meta["output"] + ".npy")))
    return np.concatenate(outs)


def main():
    argv = sys.argv[1:]
    flags = []
    if "--" in argv:
        at = argv.index("--")
        argv, flags = argv[:at], argv[at + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--anvil", required=True)
    ap.add_argument("--model", required=True, help="directory with model.onnx, meta.json, calib/, test/")
    ap.add_argument("--min-agreement", type=float, default=0.995)
    ap.add_argument("--min-int8", type=int, default=0, help="at least this many linear layers at the int8 floor")
    ap.add_argument("--min-int8-run", type=int, default=0, help="at least this many run int8 kernels (VNNI CPUs)")
    ap.add_argument("--high", action="append", default=[], help="a layer that must stay in f32 or f16")
    ap.add_argument("--others", choices=["int8"], help="the floor every layer not --high must have")
    args = ap.parse_args(argv)
    with open(os.path.join(args.model, "meta.json")) as f:
        meta = json.load(f)
    if meta["task"] != "classification":
        print("FAIL: check_precision.py checks classifiers (top-1 agreement)")
        return 2
    if not any(a.startswith("--calibData") for a in flags):
        flags.append(f"--calibData={os.path.join(args.model, 'calib')}")
    model = os.path.join(args.model, "model.onnx")
    x = np.load(os.path.join(args.model, "test", meta["input"] + ".npy"))
    labels = np.load(os.path.join(args.model, "test", "labels.npy"))
    failures = []
    with tempfile.TemporaryDirectory(prefix="anvil-check-precision-") as work:
        print(f"{os.path.basename(args.model.rstrip('/'))}: FP32 engine")
        build(args.anvil, model, [], os.path.join(work, "f32.engine"), os.path.join(work, "f32.json"))
        print(f"engine with {' '.join(flags)}")
        layers = build(args.anvil, model, flags, os.path.join(work, "p.engine"), os.path.join(work, "p.json"))
        y32 = infer(args.anvil, os.path.join(work, "f32.engine"), meta, x, work)
        y = infer(args.anvil, os.path.join(work, "p.engine"), meta, x, work)
    agreement = float((y.argmax(1) == y32.argmax(1)).mean())
    print(f"layers: " + ", ".join(f"{l['Name']}={l['Precision']} ({l.get('PrecisionReason', '')})" for l in layers))
    print(f"top-1 agreement with FP32 {agreement:.4f} over {len(x)} test samples (need >= {args.min_agreement}); "
          f"accuracy {float((y.argmax(1) == labels).mean()):.4f}, FP32 {float((y32.argmax(1) == labels).mean()):.4f}")
    if agreement < args.min_agreement:
        failures.append(f"top-1 agreement {agreement:.4f} < {args.min_agreement}")
    at_floor = [l for l in layers if at_int8_floor(l)]
    n8 = sum(l["Precision"] == "i8" for l in layers)
    print(f"{len(at_floor)} linear layers at the INT8 floor, {n8} run INT8 kernels")
    if len(at_floor) < args.min_int8:
        failures.append(f"{len(at_floor)} linear layers at the int8 floor, expected at least {args.min_int8}")
    if n8 < args.min_int8_run:
        if has_vnni():
            failures.append(f"{n8} linear layers run int8 kernels, expected at least {args.min_int8_run}")
        else:
            print(f"(no VNNI or ANVIL_MAX_ISA set: not checking that {args.min_int8_run} layers run INT8 kernels)")
    names = {l["Name"] for l in layers}
    for h in args.high:
        if h not in names:
            failures.append(f"no linear layer '{h}' (layers: {sorted(names)})")
            continue
        layer = next(l for l in layers if l["Name"] == h)
        p = layer["Precision"]
        if p not in ("f32", "f16"):
            failures.append(f"badly conditioned layer {h} runs in {p}, expected f32 or f16")
        # Under --precision=auto the budget is what keeps it high, whichever kernel at or above
        # its raised floor won the timing.
        if "--precision=auto" in flags and layer.get("PrecisionReason") != "budget":
            failures.append(f"badly conditioned layer {h} has precision reason "
                            f"'{layer.get('PrecisionReason', '')}', expected 'budget'")
    if args.others:
        for l in layers:
            if l["Name"] not in args.high and not at_int8_floor(l):
                failures.append(f"layer {l['Name']} runs in {l['Precision']} ({l.get('PrecisionReason', '')}), "
                                "expected the int8 floor")
    for f in failures:
        print("FAIL: " + f)
    if not failures:
        print("OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
