#!/usr/bin/env python3
"""Export torchvision ResNet-50 and check anvil's fusion of it against onnxruntime.

Usage:
    .venv/bin/python tests/models/export_resnet50.py --outdir BUILD/models-resnet50 \
        --anvil BUILD/tools/anvil [--compare] [--models-manifest /tmp/anvil-models/manifest.json]

1. Exports resnet50 (random weights with the fixed seed and BatchNorm calibration of
   tests/models/export_models.py, opset 17, ~100 MB) into OUTDIR with its input, the
   onnxruntime output and a manifest.json that compare.py reads. Skipped when present.
   Unlike export_models.py it keeps the 53 BatchNormalization nodes (torch would fold
   them itself), so that anvil's batchnorm-folding is what removes them.
2. Saves onnxruntime's ORT_ENABLE_ALL optimized graph (SessionOptions.optimized_model_filepath)
   and counts its nodes.
3. Builds the anvil engine at --builderOptimizationLevel=3 with --exportLayerInfo and
   --dumpGraph, counts its layers and reads the final IR.
Checks: anvil's layer count <= onnxruntime's node count; no BatchNormalization, Relu or
Add layer is left (every Conv carries its BatchNorm, ReLU and residual Add: 16 residual
Adds, one per bottleneck block, sit inside FusedConvs). With --compare, the outputs are
also compared with onnxruntime's (compare.py, rel. error 1e-4).
--models-manifest also prints the same node counts (ONNX, anvil level 3, onnxruntime) for
the models of an export_models.py manifest, without checks.
Exits 1 when a check fails.
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import export_models as em  # noqa: E402  (imports onnx and onnxruntime before torch)
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

NAME = "resnet50"


def _keep_batchnorm():
    """Exports keep BatchNormalization nodes (TrainingMode.PRESERVE on an eval() model):
    torch's default EVAL export folds them into the convs itself, which would leave
    anvil's batchnorm-folding nothing to do."""
    import torch
    if getattr(torch.onnx.export, "_keeps_bn", False):
        return
    original = torch.onnx.export

    def export_keeping_bn(*args, **kwargs):
        kwargs.setdefault("training", torch.onnx.TrainingMode.PRESERVE)
        return original(*args, **kwargs)

    export_keeping_bn._keeps_bn = True
    torch.onnx.export = export_keeping_bn


def export(outdir):
    os.makedirs(outdir, exist_ok=True)
    manifest_path = os.path.join(outdir, "manifest.json")
    manifest = em.load_manifest(manifest_path)
    entry = manifest["models"].get(NAME)
    if em.entry_complete(outdir, entry):
        print(f"[skip] {NAME}: already exported in {outdir}")
        return entry
    print(f"[export] {NAME} ...", flush=True)
    _keep_batchnorm()
    entry = em.export_one(NAME, em._vision(NAME), outdir)
    if not entry["ops"].get("BatchNormalization"):
        sys.exit("the export folded BatchNormalization away; the check needs it")
    manifest["models"][NAME] = entry
    em.write_manifest(manifest_path, manifest)
    return entry


def onnx_nodes(path):
    return len(onnx.load(path, load_external_data=False).graph.node)


def ort_optimized_nodes(model_path, out_path):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = out_path
    so.log_severity_level = 3
    ort.InferenceSession(model_path, sess_options=so, providers=["CPUExecutionProvider"])
    m = onnx.load(out_path, load_external_data=False)
    ops = {}
    for n in m.graph.node:
        key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
        ops[key] = ops.get(key, 0) + 1
    return len(m.graph.node), ops


def anvil_build(anvil, model_path, workdir, level=3):
    """Builds the engine; returns (layers, parsed node count, final IR text)."""
    info = os.path.join(workdir, f"layers{level}.json")
    dump = os.path.join(workdir, f"ir{level}")
    cmd = [anvil, f"--onnx={model_path}", f"--builderOptimizationLevel={level}", f"--exportLayerInfo={info}",
           f"--dumpGraph={dump}", "--skipInference"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=3000)
    log = p.stdout.decode(errors="replace")
    if p.returncode != 0:
        sys.exit(f"anvil failed ({p.returncode}):\n{log}")
    with open(info) as f:
        layers = json.load(f)["Layers"]
    m = re.search(r"Graph: (\d+) nodes parsed", log)
    parsed = int(m.group(1)) if m else -1
    dumps = sorted(glob.glob(os.path.join(dump, "*.ir")))
    final = open(dumps[-1]).read() if dumps else ""
    return layers, parsed, final


def layer_types(layers):
    types = {}
    for l in layers:
        types[l["LayerType"]] = types.get(l["LayerType"], 0) + 1
    return types


def fmt(types):
    return ", ".join(f"{k} x{v}" for k, v in sorted(types.items(), key=lambda kv: (-kv[1], kv[0])))


def check_resnet50(args):
    os.makedirs(args.outdir, exist_ok=True)
    entry = export(args.outdir)
    model = os.path.join(args.outdir, entry["file"])
    ort_count, ort_ops = ort_optimized_nodes(model, os.path.join(args.outdir, f"{NAME}.ort_all.onnx"))
    work = tempfile.mkdtemp(prefix="anvil-r50-", dir=args.outdir)
    layers, parsed, final_ir = anvil_build(args.anvil, model, work)
    types = layer_types(layers)
    print(f"{NAME}: ONNX {onnx_nodes(model)} nodes; onnxruntime ORT_ENABLE_ALL {ort_count} nodes ({fmt(ort_ops)})")
    print(f"{NAME}: anvil level 3: {len(layers)} layers ({fmt(types)}); parsed {parsed}")
    failures = []
    # Layout reorders are not fusion: anvil.Reorder layers (blocked-layout boundaries) and
    # onnxruntime's NCHWc ReorderInput/ReorderOutput nodes are left out on both sides.
    anvil_compute = sum(1 for l in layers if l["LayerType"] != "anvil.Reorder")
    ort_compute = ort_count - sum(v for k, v in ort_ops.items() if k.split(".")[-1].startswith("Reorder"))
    print(f"{NAME}: without layout reorders: anvil {anvil_compute} layers, onnxruntime {ort_compute} nodes")
    if anvil_compute > ort_compute:
        failures.append(f"anvil has {anvil_compute} compute layers, more than onnxruntime's {ort_compute}")
    for op in ("BatchNormalization", "Relu", "Add"):
        if types.get(op):
            failures.append(f"{types[op]} {op} layer(s) left unfused")
    residual = len(re.findall(r"has_residual=1", final_ir))
    relu = len(re.findall(r"anvil\.FusedConv\([^)]*\) \{[^}]*activation=\"Relu\"", final_ir))
    convs = types.get("anvil.FusedConv", 0) + types.get("Conv", 0)
    print(f"{NAME}: {convs} convolutions, {relu} with ReLU, {residual} with the residual Add")
    if convs != 53:
        failures.append(f"expected 53 convolutions, found {convs}")
    if residual != 16:
        failures.append(f"expected 16 residual Adds fused, found {residual}")
    # Every conv but the 4 downsampling 1x1 convs (whose sum goes into the other branch's
    # FusedConv) ends in a ReLU.
    if relu != 49:
        failures.append(f"expected 49 convolutions with a fused ReLU, found {relu}")
    if args.compare:
        cmd = [sys.executable, os.path.join(HERE, "compare.py"), "--manifest", os.path.join(args.outdir, "manifest.json"),
               "--anvil", args.anvil, "--models", NAME, "--extra=--builderOptimizationLevel=3"]
        if subprocess.run(cmd).returncode != 0:
            failures.append("outputs differ from onnxruntime")
    return failures


def report_manifest(args):
    with open(args.models_manifest) as f:
        models = json.load(f)["models"]
    base = os.path.dirname(os.path.abspath(args.models_manifest))
    names = [m for m in args.models.split(",") if m] or list(models)
    work = tempfile.mkdtemp(prefix="anvil-counts-")
    for name in names:
        path = os.path.join(base, models[name]["file"])
        ort_count, _ = ort_optimized_nodes(path, os.path.join(work, f"{name}.ort_all.onnx"))
        layers, parsed, _ = anvil_build(args.anvil, path, work)
        print(f"{name}: ONNX {onnx_nodes(path)} nodes -> anvil level 3 {len(layers)} layers "
              f"({fmt(layer_types(layers))}); onnxruntime ORT_ENABLE_ALL {ort_count}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--outdir", help="where resnet50 is exported (in the build dir, not the repo)")
    ap.add_argument("--anvil", required=True, help="the anvil CLI")
    ap.add_argument("--compare", action="store_true", help="also compare outputs with onnxruntime")
    ap.add_argument("--models-manifest", help="also report node counts for these models")
    ap.add_argument("--models", default="", help="subset of --models-manifest")
    args = ap.parse_args()
    failures = []
    if args.outdir:
        failures = check_resnet50(args)
    if args.models_manifest:
        report_manifest(args)
    for f in failures:
        print("FAIL: " + f)
    print("PASS" if not failures else "FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
