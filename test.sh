#!/usr/bin/env bash
# Installs what is missing, builds anvil and runs the whole test suite (ctest).
#   ./test.sh                 everything
#   ./test.sh -R conformance  extra arguments go to ctest
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
BUILD="${ANVIL_BUILD_DIR:-$ROOT/build}"
JOBS="${ANVIL_JOBS:-$(nproc)}"

scripts/install_deps.sh
# -O2 without debug info: a clean build on 2 cores is about a third faster than RelWithDebInfo.
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" >/dev/null
cmake --build "$BUILD" -j "$JOBS"
# The model set (random weights, fixed seeds) and its onnxruntime outputs, made offline.
.venv/bin/python tests/models/export_models.py "$BUILD/models" >/dev/null
# Q/DQ models quantized by onnxruntime's quantize_static (from the set above), with its outputs.
.venv/bin/python tests/models/export_qdq.py "$BUILD/models-qdq" 2>/dev/null >/dev/null
cd "$BUILD"
ctest --output-on-failure -j "$JOBS" "$@"
