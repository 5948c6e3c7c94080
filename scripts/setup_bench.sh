#!/usr/bin/env bash
# The benchmark venv for bench/compare.py: onnxruntime (newest), OpenVINO (newest) and
# matplotlib from PyPI, on top of Debian's torch/torchvision/numpy. Separate from the
# project venv (.venv, made by setup_python.sh), whose onnxruntime is pinned as the test
# oracle: ./test.sh never installs or imports any of this.
#
#   scripts/setup_bench.sh     -> prints the bench venv's python on stdout (last line)
#
# Location: <repo>/build/bench-venv (override with ANVIL_BENCH_VENV=/path). Idempotent: with
# everything importable it only prints the versions. ANVIL_BENCH_UPGRADE=1 re-resolves the
# newest onnxruntime and OpenVINO.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ANVIL_BENCH_VENV:-$ROOT/build/bench-venv}"
SYS_PY="${ANVIL_SYSTEM_PYTHON:-/usr/bin/python3}"
PY="$VENV/bin/python"
# onnx as the project venv pins it (export_models.py's imports); numpy<2 keeps Debian's torch working.
PKGS=("onnx==1.17.0" "numpy<2" "ml_dtypes<0.5" onnxruntime openvino matplotlib)

log() { echo "[setup_bench] $*" >&2; }
CHECK='
import onnx, onnxruntime, openvino, matplotlib, numpy, torch, torchvision, ml_dtypes
print("onnxruntime", onnxruntime.__version__, "openvino", openvino.get_version(),
      "matplotlib", matplotlib.__version__, "torch", torch.__version__)
'
if [ -x "$PY" ] && [ "${ANVIL_BENCH_UPGRADE:-0}" != 1 ] && v="$("$PY" -c "$CHECK" 2>/dev/null)"; then
    log "ok: $v"
    echo "$PY"
    exit 0
fi
[ -x "$PY" ] || { log "creating $VENV"; "$SYS_PY" -m venv --system-site-packages "$VENV"; }
log "installing ${PKGS[*]}"
"$PY" -m pip install --disable-pip-version-check --quiet --upgrade "${PKGS[@]}" >&2
v="$("$PY" -c "$CHECK")"
log "ok: $v"
echo "$PY"
