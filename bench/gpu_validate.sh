#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: runs the CUDA device tests, the ONNX conformance suite as
# CUDA engines (--device=cuda), the zoo models against onnxruntime as CUDA engines, and the
# GPU benchmark (resnet50 and the BERT-like encoder, FP32 and FP16, next to onnxruntime's CUDA
# execution provider where the installed onnxruntime has it), and writes one report.
# Without a GPU it says so, runs the device tests (which skip, saying why) and exits 0.
#
#   bench/gpu_validate.sh [BUILD_DIR]      # default build; report: BUILD_DIR/gpu_report.md
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
REPORT=$BUILD/gpu_report.md
ANVIL=$BUILD/tools/anvil
PY=.venv/bin/python
BPY=$BUILD/bench-venv/bin/python
[ -x "$BPY" ] || BPY=$PY
LOG=$BUILD/gpu_validate
mkdir -p "$LOG"
failures=0
: > "$REPORT"
say() { echo "$*" | tee -a "$REPORT"; }
step() {  # step NAME CMD...: runs, records pass/fail and the last lines
  local name=$1; shift
  echo "== $name: $*"
  if "$@" > "$LOG/$name.log" 2>&1; then
    say "- $name: passed"
  else
    say "- $name: FAILED (exit $?; $LOG/$name.log)"
    failures=$((failures + 1))
  fi
  tail -n 3 "$LOG/$name.log" | sed 's/^/    /' | tee -a "$REPORT"
}

say "# anvil GPU validation, $(date -u +%Y-%m-%dT%H:%MZ)"
say ""
if ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L > /dev/null 2>&1; then
  say "No NVIDIA GPU on this machine (nvidia-smi finds none): nothing to validate on a device."
  step device_tests "$BUILD/tests/cuda/cuda_device_tests"
  exit 0
fi
GPU=$(nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader | head -n 1)
CC=$(echo "$GPU" | awk -F', ' '{print $2}')
say "GPU: $GPU"
say ""
say "## Checks"
step device_tests "$BUILD/tests/cuda/cuda_device_tests"
step tactic_tests "$BUILD/tests/cuda/cuda_tactic_tests"
step engine_tests "$BUILD/tests/cuda/cuda_engine_tests"
NODE=$($PY -c "import onnx,os;print(os.path.join(os.path.dirname(onnx.__file__),'backend','test','data','node'))")
step conformance_cuda "$BUILD/tests/anvil_conformance" --quiet --path=cli --opt-level=3 --anvil="$ANVIL" \
  --anvil-arg=--device=cuda --data=onnx-pypi:"$NODE" --data=onnx-debian:/usr/share/libonnx-testdata/data/node \
  --exclude=tests/conformance/exclusions.txt --baseline=tests/conformance/baseline.txt
step zoo_cuda "$PY" tests/models/compare.py --manifest "$BUILD/models/manifest.json" --anvil "$ANVIL" \
  --models resnet18,mobilenet_v2,efficientnet_b0,bert_tiny,mlp --extra=--device=cuda
step zoo_cuda_graph "$PY" tests/models/compare.py --manifest "$BUILD/models/manifest.json" --anvil "$ANVIL" \
  --models resnet18,mobilenet_v2,mlp --extra=--device=cuda --extra=--useCudaGraph

say ""
say "## Throughput (inferences/s), anvil --device=cuda vs onnxruntime CUDA EP"
say ""
say "| model | precision | anvil qps | anvil GPU compute ms | onnxruntime qps | ratio |"
say "|---|---|---|---|---|---|"
bench() {  # bench MODEL_PATH SHAPES PRECISION_FLAG LABEL
  local model=$1 shapes=$2 flag=$3 label=$4 out
  out=$("$ANVIL" --onnx="$model" --device=cuda --shapes="$shapes" $flag --duration=5 --warmUp=500 2>&1)
  local qps gpu
  qps=$(echo "$out" | sed -n 's/.*Throughput: \([0-9.]*\) qps.*/\1/p' | head -n 1)
  gpu=$(echo "$out" | sed -n 's/.*GPU Compute Time: .*mean = \([0-9.]*\) ms.*/\1/p' | head -n 1)
  local ort
  ort=$("$BPY" - "$model" "$shapes" "$flag" <<'PYEOF' 2>/dev/null
import sys, time, numpy as np, onnxruntime as ort
model, shapes, flag = sys.argv[1:4]
if "CUDAExecutionProvider" not in ort.get_available_providers():
    print("n/a"); sys.exit(0)
s = ort.InferenceSession(model, providers=["CUDAExecutionProvider"])
dims = {kv.split(":")[0]: [int(d) for d in kv.split(":")[1].split("x")] for kv in shapes.split(",")}
feeds = {}
for i in s.get_inputs():
    d = dims.get(i.name) or [x if isinstance(x, int) else 1 for x in i.shape]
    feeds[i.name] = (np.random.rand(*d).astype(np.float32) if "float" in i.type else np.ones(d, np.int64))
for _ in range(20): s.run(None, feeds)
n, t0 = 0, time.time()
while time.time() - t0 < 5: s.run(None, feeds); n += 1
print(f"{n / (time.time() - t0):.1f}")
PYEOF
  )
  local ratio="-"
  if [ -n "$qps" ] && [ -n "$ort" ] && [ "$ort" != "n/a" ]; then ratio=$(awk -v a="$qps" -v b="$ort" 'BEGIN{printf "%.2fx", a/b}'); fi
  say "| $label | ${flag:-fp32} | ${qps:-failed} | ${gpu:--} | ${ort:-failed} | $ratio |"
}
R50=$BUILD/models-resnet50/resnet50.onnx
BB4=$BUILD/models-bench/bert_base4.onnx
for flag in "" "--fp16"; do
  [ -f "$R50" ] && bench "$R50" input:1x3x224x224 "$flag" resnet50
  [ -f "$BB4" ] && bench "$BB4" input_ids:1x128,attention_mask:1x128 "$flag" bert_base4
done
say ""
say "Compute capability $CC; $failures check(s) failed."
[ "$failures" -eq 0 ]
