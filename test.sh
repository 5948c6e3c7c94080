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
status=0
ctest --output-on-failure -j "$JOBS" "$@" || status=$?
if [ "$status" -ne 0 ]; then
  # ctest prints a failed test's output when it ends, often long before the summary, and CI
  # shows only the last lines: repeat the failing cases (gtest's and the scripts') last.
  echo
  echo "=== where the failing tests failed (Testing/Temporary/LastTest.log) ==="
  grep -hE -A4 ': Failure$|^(FAIL|AssertionError|Traceback)' Testing/Temporary/LastTest*.log | cut -c1-300 | head -60 || true
  echo "=== failing cases ==="
  grep -hE '^\[  FAILED  \] [^ ]+[.]' Testing/Temporary/LastTest*.log | sed 's/ ([0-9]* ms)$//' | sort -u | head -40 || true
  echo "ctest exit $status"
fi
exit "$status"
