#!/usr/bin/env bash
# Create (or repair) the Python venv used for model export and the onnxruntime oracle.
#
#   scripts/setup_python.sh            -> prints the venv's python path on stdout (last line)
#   PY=$(scripts/setup_python.sh)      -> capture it; progress messages go to stderr
#
# The venv lives at <repo>/.venv (override with ANVIL_VENV=/path). It is made by
#   /usr/bin/python3 -m venv --system-site-packages .venv
# so it sees Debian's python3-torch (1.13, CPU), python3-torchvision and python3-numpy,
# and gets the pinned PyPI packages below on top. Idempotent: when the venv is complete and
# the pins are installed it only checks them (about 1.5 s) and prints the path.
#
# Apt packages (python3-venv python3-torch python3-torchvision python3-numpy python3-sklearn:
# the bundled data sets of tests/models/train_precision_models.py) are installed
# by another script; this one only checks for them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ANVIL_VENV:-$ROOT/.venv}"
SYS_PY="${ANVIL_SYSTEM_PYTHON:-/usr/bin/python3}"
PINS=("onnx==1.17.0" "onnxruntime==1.20.1" "numpy<2")
PY="$VENV/bin/python"

log() { echo "[setup_python] $*" >&2; }
die() { echo "[setup_python] ERROR: $*" >&2; exit 1; }

# Light check of the venv: right kind (system site packages), python runs, pip runs.
venv_ok() {
    [ -x "$PY" ] &&
        grep -qE '^include-system-site-packages *= *true' "$VENV/pyvenv.cfg" 2>/dev/null &&
        "$PY" -m pip --version >/dev/null 2>&1
}

# Pinned PyPI packages, checked through package metadata (the venv's site-packages come
# before Debian's, so Debian's onnx 1.12 does not count). Prints the missing/wrong pins.
PIN_CHECK='
import sys
import importlib.metadata as md

def parse(v):
    out = []
    for p in v.split("."):
        n = "".join(c for c in p if c.isdigit())
        out.append(int(n) if n else 0)
    return tuple(out)

bad = []
for pin in sys.argv[1:]:
    for op in ("==", "<"):
        if op in pin:
            name, want = pin.split(op, 1)
            break
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        bad.append(pin)
        continue
    if op == "==" and have != want:
        bad.append(pin)
    elif op == "<" and not parse(have) < parse(want):
        bad.append(pin)
print(" ".join(bad))
'
missing_pins() { "$PY" -c "$PIN_CHECK" "${PINS[@]}"; }

# onnx/onnxruntime must be imported before torch: Debian's torch loads libonnx_proto.so
# (ONNX 1.12) whose protobuf descriptors break a later `import onnx` (1.17).
FINAL_CHECK='
import onnx, onnxruntime, numpy, torch, torchvision
print("onnx", onnx.__version__, "onnxruntime", onnxruntime.__version__,
      "numpy", numpy.__version__, "torch", torch.__version__,
      "torchvision", torchvision.__version__)
'
final_check() { "$PY" -c "$FINAL_CHECK" 2>&1; }

# ---- fast path: everything already in place ----------------------------------------------
if venv_ok && [ -z "$(missing_pins 2>/dev/null || echo error)" ] && versions="$(final_check)"; then
    log "ok: $versions"
    echo "$PY"
    exit 0
fi

# ---- system prerequisites ----------------------------------------------------------------
[ -x "$SYS_PY" ] || die "$SYS_PY not found (need Debian's python3: apt-get install python3)"
sysmissing="$("$SYS_PY" -c '
import importlib
bad = []
for mod, pkg in (("torch", "python3-torch"), ("torchvision", "python3-torchvision"),
                 ("numpy", "python3-numpy"), ("sklearn", "python3-sklearn"), ("ensurepip", "python3-venv"),
                 ("venv", "python3-venv")):
    try:
        importlib.import_module(mod)
    except Exception as e:
        bad.append(f"{mod} [{pkg}] ({type(e).__name__}: {e})")
print("; ".join(bad))
' 2>&1)" || die "$SYS_PY does not run: $sysmissing"
[ -z "$sysmissing" ] ||
    die "$SYS_PY cannot import: $sysmissing -- install the Debian packages:" \
        "apt-get install python3-venv python3-torch python3-torchvision python3-numpy python3-sklearn"

# ---- the venv itself ---------------------------------------------------------------------
if ! venv_ok; then
    if [ -e "$VENV" ]; then
        # Only remove something that looks like a (broken) venv or an empty directory.
        if [ -f "$VENV/pyvenv.cfg" ] || { [ -d "$VENV" ] && [ -z "$(ls -A "$VENV")" ]; }; then
            log "venv at $VENV is incomplete or broken; recreating it"
            rm -rf "$VENV"
        else
            die "$VENV exists but is not a venv; move it away or set ANVIL_VENV"
        fi
    fi
    log "creating venv $VENV (system site packages: Debian torch/torchvision/numpy)"
    "$SYS_PY" -m venv --system-site-packages "$VENV" || die "python3 -m venv failed"
    venv_ok || die "the new venv at $VENV cannot run pip"
fi

# ---- pinned PyPI packages ----------------------------------------------------------------
missing="$(missing_pins)" || die "cannot query the installed packages in $VENV"
if [ -n "$missing" ]; then
    log "installing into the venv: $missing"
    # shellcheck disable=SC2086  # intentional word splitting of the pin list
    "$PY" -m pip install --disable-pip-version-check --quiet $missing >&2 ||
        die "pip install failed for: $missing (network or package index problem?)"
fi

# ---- final check -------------------------------------------------------------------------
versions="$(final_check)" || die "the venv cannot import its packages: $versions"
log "ok: $versions"
echo "$PY"
