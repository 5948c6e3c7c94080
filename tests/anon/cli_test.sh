#!/usr/bin/env bash
# The anon mode's four commands end to end, as a user runs them, on one store
# (sqlite or redis): build, worker in the background (--jobs), submit, fetch; outputs equal
# the standard engine's; a request above the top bucket, forged and wrong capabilities and
# a corrupted result box exit non-zero with a clear message; bad flags are errors.
# usage: cli_test.sh ANVIL PYTHON MODELS_DIR OUT_DIR sqlite|redis   (exit 77: skipped)
set -u
ANVIL=$1 PY=$2 MODELS=$3 OUT=$4 KIND=$5
WPID="" RPID=""
cleanup() {
  [ -n "$WPID" ] && kill "$WPID" 2>/dev/null
  [ -n "$RPID" ] && kill "$RPID" 2>/dev/null
  wait 2>/dev/null
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  [ -f "$OUT/worker.log" ] && { echo "--- worker.log"; cat "$OUT/worker.log"; }
  exit 1
}
# expect_fail "what" "message part" cmd...: non-zero exit and the message in stderr
expect_fail() {
  local what=$1 msg=$2
  shift 2
  "$@" >"$OUT/last.out" 2>"$OUT/last.err" && fail "$what: exited 0"
  grep -q -- "$msg" "$OUT/last.err" || fail "$what: no '$msg' in: $(cat "$OUT/last.err")"
  echo "ok (refused): $what: $(head -c 200 "$OUT/last.err")"
}

rm -rf "$OUT" && mkdir -p "$OUT" && cd "$OUT" || exit 1
if [ "$KIND" = redis ]; then
  command -v redis-server >/dev/null || { echo "SKIP: redis-server is not installed (apt-get install redis-server)"; exit 77; }
  PORT=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >redis.log 2>&1 &
  RPID=$!
  for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  STORE=redis://127.0.0.1:$PORT
else
  STORE=sqlite:$OUT/s.db
fi

"$ANVIL" --onnx="$MODELS/anon_cnn.onnx" --mode=anon --shapeBuckets=input:1x1x32x32,8x1x32x32 \
  --saveEngine=anon.engine --timingRuns=50 >build.log 2>&1 || fail "build: $(cat build.log)"
grep -q "latency ladder" build.log || fail "build printed no ladder"
cat build.log

"$PY" - <<'PYEOF' || fail "making inputs"
import numpy as np
rng = np.random.default_rng(5)
for n, b in (("x3", 3), ("x8", 8), ("big", 9)):
    np.save(n + ".npy", rng.standard_normal((b, 1, 32, 32)).astype(np.float32))
PYEOF
for b in 3 8; do
  "$ANVIL" --onnx="$MODELS/anon_cnn.onnx" --shapes=input:${b}x1x32x32 --loadInputs=input:x$b.npy --saveOutputs=ref$b \
    --iterations=1 --duration=0 --warmUp=0 >/dev/null || fail "reference run at batch $b"
done

expect_fail "submit before any worker published" "no worker has published" \
  "$ANVIL" anon-submit --store="$STORE" --loadInputs=input:x3.npy --capability=none.json

"$ANVIL" anon-worker --loadEngine=anon.engine --store="$STORE" --jobs=3 --idleExit=60 >worker.log 2>&1 &
WPID=$!
for _ in $(seq 300); do grep -q ready worker.log && break; sleep 0.1; done
grep -q ready worker.log || fail "the worker did not start"

"$ANVIL" anon-submit --store="$STORE" --loadInputs=input:x3.npy --capability=cap3.json || fail "submit x3"
"$ANVIL" anon-submit --store="$STORE" --loadInputs=input:x8.npy --capability=cap8.json || fail "submit x8"
"$ANVIL" anon-fetch --store="$STORE" --capability=cap3.json --saveOutputs=out3 --wait=30 || fail "fetch x3"
"$ANVIL" anon-fetch --store="$STORE" --capability=cap8.json --saveOutputs=out8 --wait=30 || fail "fetch x8"
"$PY" - <<'PYEOF' || fail "anon outputs differ from the standard engine's"
import json, numpy as np
for b in (3, 8):
    a, r = np.load(f"out{b}/logits.npy"), np.load(f"ref{b}/logits.npy")
    assert a.shape == r.shape == (b, 10), (a.shape, r.shape)
    err = float(np.abs(a - r).max())
    print(f"batch {b}: max abs difference to the standard engine {err:.3g}")
    assert err <= 1e-5 * max(1.0, float(np.abs(r).max()))
cap = json.load(open("cap3.json"))
assert set(cap) == {"version", "requestId", "resultBox", "resultKey"}, cap
PYEOF

expect_fail "an anon engine run as a standard one" "is an anon engine (built with --mode=anon)" \
  "$ANVIL" --loadEngine=anon.engine
expect_fail "a request above the top bucket" "exceeds the top bucket" \
  "$ANVIL" anon-submit --store="$STORE" --loadInputs=input:big.npy --capability=big.json
[ -e big.json ] && fail "a refused submit wrote a capability"

"$PY" - <<'PYEOF' || fail "forging capabilities"
import json
cap = json.load(open("cap3.json"))
k = cap["resultKey"]
json.dump(dict(cap, resultKey=("1" if k[0] != "1" else "2") + k[1:]), open("wrongkey.json", "w"))
b = cap["resultBox"]
json.dump(dict(cap, resultBox=("1" if b[0] != "1" else "2") + b[1:]), open("wrongbox.json", "w"))
r = cap["requestId"]
json.dump(dict(cap, requestId=("1" if r[0] != "1" else "2") + r[1:]), open("wrongid.json", "w"))
json.dump(dict(cap, resultKey="zz"), open("garbage.json", "w"))
open("notjson.json", "w").write("{not json")
PYEOF
expect_fail "a capability with a wrong key" "fails authentication" \
  "$ANVIL" anon-fetch --store="$STORE" --capability=wrongkey.json --saveOutputs=o
expect_fail "a capability naming another box" "no result" \
  "$ANVIL" anon-fetch --store="$STORE" --capability=wrongbox.json --saveOutputs=o --wait=0.5
expect_fail "a capability with another request id" "request id" \
  "$ANVIL" anon-fetch --store="$STORE" --capability=wrongid.json --saveOutputs=o
expect_fail "a malformed capability" "not a hex string" \
  "$ANVIL" anon-fetch --store="$STORE" --capability=garbage.json --saveOutputs=o
expect_fail "a capability that is not JSON" "not JSON" \
  "$ANVIL" anon-fetch --store="$STORE" --capability=notjson.json --saveOutputs=o

# Corrupt x8's result box at rest.
BOX=$("$PY" -c "import json; print(json.load(open('cap8.json'))['resultBox'])")
if [ "$KIND" = redis ]; then
  redis-cli -p "$PORT" SETRANGE "anon:box:$BOX" 100 XYZ >/dev/null || fail "corrupting the box"
else
  "$PY" -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE boxes SET content = zeroblob(length(content)) WHERE id = x'\" + sys.argv[2] + \"'\"); c.commit()" "$OUT/s.db" "$BOX" || fail "corrupting the box"
fi
expect_fail "a corrupted result box" "corrupted or forged" \
  "$ANVIL" anon-fetch --store="$STORE" --capability=cap8.json --saveOutputs=o

# The third job; then the worker exits on its own (--jobs=3).
"$ANVIL" anon-submit --store="$STORE" --loadInputs=input:x3.npy --capability=cap3b.json || fail "submit x3 again"
"$ANVIL" anon-fetch --store="$STORE" --capability=cap3b.json --saveOutputs=out3b --wait=30 || fail "fetch x3 again"
cmp -s out3/logits.npy out3b/logits.npy || fail "the same input gave another output"
wait "$WPID"
rc=$?
WPID=""
[ $rc -eq 0 ] || fail "the worker exited $rc"
grep -q "3 job(s) done" worker.log || fail "the worker did not report 3 jobs"
cat worker.log

# --noBuckets: the same request at its own shape, released without a hold (same outputs).
"$ANVIL" anon-worker --loadEngine=anon.engine --store="$STORE" --jobs=1 --idleExit=60 --noBuckets >worker_nb.log 2>&1 &
WPID=$!
for _ in $(seq 300); do grep -q ready worker_nb.log && break; sleep 0.1; done
grep -q "ready.*unbucketed" worker_nb.log || fail "the --noBuckets worker did not start: $(cat worker_nb.log)"
"$ANVIL" anon-submit --store="$STORE" --loadInputs=input:x3.npy --capability=capnb.json || fail "submit (noBuckets)"
"$ANVIL" anon-fetch --store="$STORE" --capability=capnb.json --saveOutputs=outnb --wait=30 || fail "fetch (noBuckets)"
wait "$WPID" || fail "the --noBuckets worker failed"
WPID=""
cmp -s out3/logits.npy outnb/logits.npy || fail "--noBuckets gave other outputs than the padded run"
grep -q "job 4 (attempt 1): result" worker_nb.log || fail "the --noBuckets worker did not serve job 4"
grep "job 4" worker_nb.log | grep -q rung && fail "--noBuckets held a job to a rung: $(cat worker_nb.log)"
cat worker_nb.log

# SQL on the store file through Python's sqlite3 module (no sqlite3 CLI needed).
sql() { "$PY" -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); r = c.execute(sys.argv[2]).fetchall(); c.commit(); print(r[0][0] if r else '')" "$OUT/s.db" "$1"; }

# A replay: job 1's sealed blob queued again (as a store could). The worker refuses it
# without computing or writing; the original result is still the one fetched.
if [ "$KIND" = redis ]; then
  redis-cli -p "$PORT" EVAL "local s = redis.call('HGET', 'anon:job:1', 'sealed'); local id = redis.call('INCR', 'anon:jobseq'); redis.call('HSET', 'anon:job:' .. id, 'sealed', s, 'state', 'pending', 'attempts', 0); redis.call('RPUSH', 'anon:pending', id); return id" 0 >/dev/null || fail "replaying job 1"
  BOXES_BEFORE=$(redis-cli -p "$PORT" --scan --pattern 'anon:box:*' | wc -l)
else
  sql "INSERT INTO jobs(sealed) SELECT sealed FROM jobs WHERE id = 1" >/dev/null || fail "replaying job 1"
  BOXES_BEFORE=$(sql "SELECT COUNT(*) FROM boxes")
fi
"$ANVIL" anon-worker --loadEngine=anon.engine --store="$STORE" --jobs=1 --idleExit=30 >worker_replay.log 2>&1 || fail "replay worker"
grep -q "job 5 (attempt 1): refused.*replayed request" worker_replay.log || fail "the replay was not refused: $(cat worker_replay.log)"
if [ "$KIND" = redis ]; then
  BOXES_AFTER=$(redis-cli -p "$PORT" --scan --pattern 'anon:box:*' | wc -l)
else
  BOXES_AFTER=$(sql "SELECT COUNT(*) FROM boxes")
fi
[ "$BOXES_BEFORE" = "$BOXES_AFTER" ] || fail "the replay wrote a box ($BOXES_BEFORE -> $BOXES_AFTER)"
"$ANVIL" anon-fetch --store="$STORE" --capability=cap3.json --saveOutputs=out3r || fail "fetch after the replay"
cmp -s out3/logits.npy out3r/logits.npy || fail "the result changed after the replay"
grep "job 5" worker_replay.log

expect_fail "an unknown worker flag" "unknown flag" "$ANVIL" anon-worker --bogus=1
expect_fail "a worker without an engine" "needs --loadEngine" "$ANVIL" anon-worker --store="$STORE"
expect_fail "a bad store spec" "expected sqlite:PATH or redis://HOST:PORT" \
  "$ANVIL" anon-fetch --store=ftp://x --capability=cap3.json --saveOutputs=o
expect_fail "buckets listed largest first" "smallest to largest" \
  "$ANVIL" --onnx="$MODELS/anon_cnn.onnx" --mode=anon --shapeBuckets=input:8x1x32x32,1x1x32x32 --saveEngine=x.engine
expect_fail "a standard engine given to the worker" "not an anon engine" \
  "$ANVIL" anon-worker --loadEngine="$MODELS/anon_cnn.onnx" --store="$STORE"
echo "PASS"
