#!/usr/bin/env python3
"""Checks that level-3 optimization fuses every transformer block of the exported BERT.

    python3 tests/models/check_bert_fusion.py --manifest OUTDIR/manifest.json --anvil build/tools/anvil \
        [--model bert_tiny] [--shapes input_ids:2x16,attention_mask:2x16]

Builds the model at --builderOptimizationLevel=3 with static shapes (--shapes), reads the
engine's layer list (--exportLayerInfo: {"Layers": [{"Name", "LayerType", ...}]}) and the
final IR (--dumpGraph), and requires:
  - every LayerNorm is one LayerNormalization node: as many as the ONNX model has
    LayerNormalization nodes plus decomposed ones (Sqrt nodes), and no ReduceMean, Sqrt,
    Pow or Div left;
  - every GELU is one node: as many Gelu nodes or linear layers with activation="Gelu" as
    the ONNX model has Erf (or GELU-tanh) nodes, and no Erf left;
  - every attention block is one anvil.Attention: as many as the ONNX model has Softmax
    nodes, and no Softmax or plain MatMul left;
  - every anvil.Attention is the packed form (qkv_packed=1) reading the QKV projection in
    place (layout bshd): no Slice and no Transpose left (the head split/merge and the
    [S, N, E] <-> [N, S, E] swaps around the projections are gone), and no more layers in
    all than MAX_LAYERS says (bert_tiny: 56 before the fold, 34 after);
  - no shape computation survives: no Shape, Unsqueeze, Squeeze, Concat, ConstantOfShape,
    Range, Size; every Gather reads data (an embedding table, the hidden states), and none
    reads a shape.
Prints what it counted; exit code 1 on a failed check, 2 on usage errors.
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

# The most layers a model may have after level 3 (the count when the fold landed).
MAX_LAYERS = {"bert_tiny": 34}
SHAPE_OPS = {"Shape", "Unsqueeze", "Squeeze", "Concat", "ConstantOfShape", "Range", "Size"}


def onnx_counts(path):
    import onnx  # noqa: PLC0415  (import onnx before torch; nothing else is needed here)

    model = onnx.load(path, load_external_data=False)
    return collections.Counter(n.op_type for n in model.graph.node)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", required=True, help="manifest.json from export_models.py")
    ap.add_argument("--anvil", required=True, help="path to the anvil CLI binary")
    ap.add_argument("--model", default="bert_tiny")
    ap.add_argument("--shapes", default="input_ids:2x16,attention_mask:2x16")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args(argv)

    try:
        with open(args.manifest) as f:
            entry = json.load(f)["models"][args.model]
    except (OSError, KeyError, ValueError) as e:
        print(f"cannot read model '{args.model}' from {args.manifest}: {e}", file=sys.stderr)
        return 2
    model_path = os.path.join(os.path.dirname(os.path.abspath(args.manifest)), entry["file"])
    src = onnx_counts(model_path)
    want_ln = src["LayerNormalization"] + src["Sqrt"]
    want_gelu = src["Erf"]  # the export's GELUs are the erf form (one Erf each)
    want_attn = src["Softmax"]

    with tempfile.TemporaryDirectory() as tmp:
        layers_file = os.path.join(tmp, "layers.json")
        dump = os.path.join(tmp, "ir")
        cmd = [args.anvil, f"--onnx={model_path}", f"--shapes={args.shapes}", "--builderOptimizationLevel=3",
               "--skipInference", f"--exportLayerInfo={layers_file}", f"--dumpGraph={dump}"]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=args.timeout)
        if p.returncode != 0:
            print(f"anvil failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout.decode(errors='replace')}")
            return 1
        with open(layers_file) as f:
            # Layout Reorders (blocked-layout region boundaries) are not part of the fusion count.
            layers = [l for l in json.load(f)["Layers"] if l["LayerType"] != "anvil.Reorder"]
        dumps = sorted(os.listdir(dump))
        with open(os.path.join(dump, dumps[-1])) as f:
            final_ir = f.read()

    types = collections.Counter(l["LayerType"] for l in layers)
    print(f"{args.model}: {sum(src.values())} ONNX nodes -> {len(layers)} layers")
    print("  layers: " + ", ".join(f"{t}={c}" for t, c in sorted(types.items())))
    failures = []

    def expect(cond, what):
        print(f"  {'ok  ' if cond else 'FAIL'} {what}")
        if not cond:
            failures.append(what)

    # LayerNorm.
    expect(types["LayerNormalization"] == want_ln,
           f"LayerNormalization layers: {types['LayerNormalization']} (want {want_ln})")
    left = {op: types[op] for op in ("ReduceMean", "Sqrt", "Pow", "Div") if types[op]}
    expect(not left, f"no decomposed LayerNorm ops left {left or ''}")

    # GELU: standalone Gelu nodes or absorbed into a fused linear layer's epilogue (the
    # pooler's Tanh is an activation of its own, not a GELU).
    gelu_nodes = len(re.findall(r"= Gelu\(", final_ir)) + len(re.findall(r'activation="Gelu(Tanh)?"', final_ir))
    expect(gelu_nodes == want_gelu, f"GELU nodes (Gelu or activation=Gelu): {gelu_nodes} (want {want_gelu})")
    expect(types["Erf"] == 0, f"no Erf left ({types['Erf']})")

    # Attention.
    expect(types["anvil.Attention"] == want_attn, f"anvil.Attention layers: {types['anvil.Attention']} (want {want_attn})")
    expect(types["Softmax"] == 0 and types["MatMul"] == 0,
           f"no Softmax ({types['Softmax']}) or plain MatMul ({types['MatMul']}) left")

    # The head split and merge folded into the attention node.
    packed = len(re.findall(r"= anvil\.Attention\([^)]*\) \{[^}]*qkv_packed=1", final_ir))
    expect(packed == want_attn, f"packed anvil.Attention (qkv_packed=1): {packed} (want {want_attn})")
    expect(types["Slice"] == 0, f"no Slice left ({types['Slice']})")
    expect(types["Transpose"] == 0, f"no Transpose left ({types['Transpose']})")
    if args.model in MAX_LAYERS:
        expect(len(layers) <= MAX_LAYERS[args.model], f"layers: {len(layers)} (want <= {MAX_LAYERS[args.model]})")

    # Shape chains.
    shape_left = {op: types[op] for op in SHAPE_OPS if types[op]}
    expect(not shape_left, f"no shape computation left {shape_left or ''}")
    produced_by = {o: l for l in layers for o in l["Outputs"]}
    bad_gathers = [l["Name"] for l in layers if l["LayerType"] == "Gather" and l["Inputs"]
                   and produced_by.get(l["Inputs"][0], {}).get("LayerType") in SHAPE_OPS]
    expect(not bad_gathers, f"no Gather of a shape {bad_gathers or ''}")

    print("PASS" if not failures else f"FAIL: {len(failures)} check(s)")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
