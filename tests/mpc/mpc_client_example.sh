#!/usr/bin/env bash
# examples/cpp/mpc_client (the privacy API's client) against a real `anvil mpc-server`
# process on loopback: engines and one run of material from the CLI, the example's top-1
# of 16 digits test rows checked against the labels, then a second call with the material
# spent must fail with the reason.
#   mpc_client_example.sh ANVIL MPC_CLIENT PYTHON MODEL_DIR OUT_DIR
set -euo pipefail
anvil=$1 client=$2 python=$3 model=$4 out=$5
rm -rf "$out" && mkdir -p "$out"
# On a failure, show what the steps wrote (their output goes to files).
trap 'rc=$?; if [ $rc -ne 0 ]; then for f in "$out"/*.log; do echo "== $f"; cat "$f"; done; fi' ERR
"$anvil" --onnx="$model/model.onnx" --mode=mpc --calibData="$model/calib" --shapes=input:16x64 \
  --saveEngine="$out/server.engine" --savePublic="$out/public.engine" > "$out/build.log"
"$anvil" mpc-dealer --loadEngine="$out/public.engine" --runs=1 --out="$out/off" > "$out/dealer.log"
"$python" -c "import numpy as np; np.load('$model/test/input.npy')[:16].astype(np.float32).tofile('$out/x.f32')"
"$anvil" mpc-server --loadEngine="$out/server.engine" --offline="$out/off/server" --listen=127.0.0.1:0 --timeout=20 \
  > "$out/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$out/server.log")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "mpc-server did not start:"; cat "$out/server.log"; exit 1; }
"$client" "$out/public.engine" "$out/off/client" "127.0.0.1:$port" "$out/x.f32" > "$out/client.log"
cat "$out/client.log"
wait $server
grep -q "served 1 run(s)" "$out/server.log"
"$python" - "$model/test/labels.npy" "$out/client.log" <<'PY'
import re, sys
import numpy as np
labels = np.load(sys.argv[1])[:16]
got = [int(m.group(2)) for m in re.finditer(r"row (\d+): class (\d+)", open(sys.argv[2]).read())]
assert len(got) == 16, f"expected 16 rows, got {len(got)}"
right = sum(int(a == b) for a, b in zip(got, labels))
print(f"top-1 right on {right} of 16 rows")
assert right >= 14, "the secure run's classes disagree with the labels"
assert re.search(r"run 0: online [0-9.]+ ms, [1-9][0-9]* rounds", open(sys.argv[2]).read())
PY
if "$client" "$out/public.engine" "$out/off/client" "127.0.0.1:$port" "$out/x.f32" 2> "$out/again.err"; then
  echo "a second run on spent material succeeded"; exit 1
fi
grep -q "no offline material left" "$out/again.err"
echo "mpc_client example: ok"
