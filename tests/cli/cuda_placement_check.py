"""Checks a CUDA engine's --exportLayerInfo: every layer has a Device (cuda or cpu), copies
are anvil.Copy layers on cuda, at least --min-cuda of the other layers run on cuda, and with
--untimed every CUDA layer of the cross-build is marked Untimed (and none Timed)."""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("layer_info")
    ap.add_argument("--min-cuda", type=float, default=0.9)
    ap.add_argument("--untimed", action="store_true")
    a = ap.parse_args()
    layers = json.load(open(a.layer_info))["Layers"]
    errors = []
    compute = [l for l in layers if l["LayerType"] != "anvil.Copy"]
    copies = [l for l in layers if l["LayerType"] == "anvil.Copy"]
    for l in layers:
        if l.get("Device") not in ("cuda", "cpu"):
            errors.append(f"{l['Name']}: Device {l.get('Device')!r}")
        if a.untimed and l.get("Device") == "cuda" and l.get("TacticName") != "view" and (
                not l.get("Untimed") or l.get("Timed")):
            errors.append(f"{l['Name']}: a cross-built CUDA layer not marked untimed")
        if l.get("Device") == "cpu" and l.get("Untimed"):
            errors.append(f"{l['Name']}: a CPU layer marked untimed")
    for l in copies:
        if l["Device"] != "cuda":
            errors.append(f"{l['Name']}: a copy on {l['Device']}")
    on_cuda = sum(1 for l in compute if l["Device"] == "cuda")
    share = on_cuda / max(len(compute), 1)
    cpu_ops = sorted({l["LayerType"] for l in compute if l["Device"] == "cpu"})
    print(f"{on_cuda}/{len(compute)} layers on cuda ({100 * share:.1f}%), {len(copies)} copies; "
          f"on cpu: {', '.join(cpu_ops) or 'none'}")
    if share < a.min_cuda:
        errors.append(f"only {100 * share:.1f}% of the layers on cuda (want >= {100 * a.min_cuda:.0f}%)")
    for e in errors:
        print("error: " + e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
