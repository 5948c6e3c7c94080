#!/usr/bin/env bash
# One command for docs/performance.md: builds the CLI and the bench binary, exports the
# model zoo (test set, bench-only set, resnet50), times anvil, onnxruntime and OpenVINO side
# by side (bench/compare.py) and writes the page and its plots (bench/report.py).
#
#   bench/run_all.sh [compare.py flags...]     e.g. --threads 1 --rounds 5 --skip-gemm
#
# ANVIL_BUILD=dir picks the build directory (default build); ANVIL_BENCH_NO_RESNET50=1 skips
# resnet50 (~100 MB export). The page records the load average: on a shared machine,
# rerun when it is high.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ANVIL_BUILD:-$ROOT/build}"
cd "$ROOT"

PY="$(scripts/setup_python.sh)"      # the project venv: export and its pinned oracle
BPY="$(scripts/setup_bench.sh)"      # newest onnxruntime, OpenVINO, matplotlib

[ -f "$BUILD/build.ninja" ] || [ -f "$BUILD/Makefile" ] ||
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" --target anvil_cli anvil_bench_runtime anvil_cpuid_avx2

"$PY" tests/models/export_models.py "$BUILD/models" >/dev/null
"$PY" tests/models/export_models.py "$BUILD/models-bench" --bench >/dev/null
dirs="$BUILD/models,$BUILD/models-bench"
if [ "${ANVIL_BENCH_NO_RESNET50:-0}" != 1 ]; then
    "$PY" -c "import sys; sys.path.insert(0, 'tests/models'); import export_resnet50 as r; \
r.export('$BUILD/models-resnet50')" >/dev/null
    dirs="$dirs,$BUILD/models-resnet50"
fi
"$PY" bench/make_mlp.py >/dev/null

"$BPY" bench/compare.py --anvil "$BUILD/tools/anvil" --bench-bin "$BUILD/bench/anvil_bench_runtime" \
    --models-dirs "$dirs" --json "$BUILD/bench/compare.json" "$@"
"$BPY" bench/report.py "$BUILD/bench/compare.json"
