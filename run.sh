#!/usr/bin/env bash
# Quick start: installs what is missing, builds the anvil CLI, and runs the bundled
# example model (examples/models/): builds an engine, loads it, runs it and prints the
# performance summary.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
BUILD="${ANVIL_BUILD_DIR:-$ROOT/build}"

ANVIL_SKIP_PYTHON=1 scripts/install_deps.sh
# -O2 without debug info: a clean build on 2 cores is about a third faster than RelWithDebInfo.
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target anvil_cli
MODEL=examples/models/tiny_cnn.onnx
ENGINE="$BUILD/tiny_cnn.engine"
"$BUILD/tools/anvil" --onnx="$MODEL" --checkSupport
# Build an engine (graph passes, tactics timed on this CPU), then load it and run it.
"$BUILD/tools/anvil" --onnx="$MODEL" --saveEngine="$ENGINE" --timingCacheFile="$BUILD/timing.cache" --skipInference
"$BUILD/tools/anvil" --loadEngine="$ENGINE" --loadInputs=input:examples/models/tiny_cnn.input.npy \
  --saveOutputs="$BUILD/example_outputs" --dumpLayerInfo --duration=2
