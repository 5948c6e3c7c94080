#!/usr/bin/env bash
# anvil's two-party (mpc) inference next to CrypTen's on the repo's digits CNN at batch 1,
# both on loopback: online ms per inference (median), bytes each way, rounds; one table.
#
#   bench/mpc_bench.sh [--runs N] [--skip-crypten] [--skip-anvil] [--provider TFP|TTP|both]
#
# anvil half: the commands of issue 11 exactly (build engine + public engine, mpc-dealer,
# mpc-server in the background, N x mpc-client --exportStats), each output checked bit for
# bit against --mode=fixed. CrypTen half: bench/mpc_crypten.py in its own venv
# (build/crypten-venv, made here: PyPI crypten on top of Debian's torch). ANVIL=path picks
# the CLI (default build/tools/anvil). Writes build/mpc-bench/summary.json.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS=20
SKIP_CRYPTEN=0
SKIP_ANVIL=0
PROVIDERS="TFP TTP"
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --runs=*) RUNS="${1#*=}"; shift ;;
        --skip-crypten) SKIP_CRYPTEN=1; shift ;;
        --skip-anvil) SKIP_ANVIL=1; shift ;;
        --provider) PROVIDERS="$2"; shift 2 ;;
        --provider=*) PROVIDERS="${1#*=}"; shift ;;
        *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done
[ "$PROVIDERS" = both ] && PROVIDERS="TFP TTP"

ANVIL="${ANVIL:-$ROOT/build/tools/anvil}"
MODEL_DIR=tests/models/precision/digits_cnn
MODEL=$MODEL_DIR/model.onnx
OUT="$ROOT/build/mpc-bench"
SYS_PY="${ANVIL_SYSTEM_PYTHON:-/usr/bin/python3}"
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || PY="$SYS_PY"
rm -rf "$OUT"
mkdir -p "$OUT"
log() { echo "[mpc_bench] $*" >&2; }
# run LOG CMD...: CMD's output goes to LOG, shown when it fails.
run() {
    local out="$1"; shift
    "$@" > "$out" 2>&1 || { log "failed: $* (log $out):"; tail -20 "$out" >&2; exit 1; }
}

# --- CrypTen's venv ------------------------------------------------------------------------
# crypten 0.4.1 (the newest on PyPI) needs two things to install next to Debian's torch 1.13:
# its requirement on the deprecated `sklearn` PyPI name, whose sdist refuses to build unless
# SKLEARN_ALLOW_DEPRECATED_SKLEARN_PACKAGE_INSTALL=True (it only pulls scikit-learn), and
# Debian's numpy/scipy kept (pip would bring numpy 2, which Debian's torch cannot load).
CVENV="${ANVIL_CRYPTEN_VENV:-$ROOT/build/crypten-venv}"
CPY="$CVENV/bin/python"
setup_crypten() {
    if [ -x "$CPY" ] && "$CPY" -c "import crypten, torch, onnx" 2>/dev/null; then return 0; fi
    [ -x "$CPY" ] || "$SYS_PY" -m venv --system-site-packages "$CVENV"
    local cons="$CVENV/constraints.txt"
    "$SYS_PY" -c "import numpy, scipy; print('numpy==' + numpy.__version__); print('scipy==' + scipy.__version__)" > "$cons"
    log "installing crypten into $CVENV (log: $OUT/crypten-install.log)"
    if ! SKLEARN_ALLOW_DEPRECATED_SKLEARN_PACKAGE_INSTALL=True "$CPY" -m pip install --disable-pip-version-check \
            -c "$cons" crypten > "$OUT/crypten-install.log" 2>&1; then
        log "pip could not install crypten:"
        tail -25 "$OUT/crypten-install.log" >&2
        return 1
    fi
    "$CPY" -c "import crypten, torch; crypten.init(); print('crypten ok, torch', torch.__version__)" >&2
}

CRYPTEN_JSONS=()
if [ "$SKIP_CRYPTEN" = 0 ]; then
    if setup_crypten; then
        for provider in $PROVIDERS; do
            log "CrypTen, provider $provider, $RUNS runs"
            if "$CPY" -W ignore bench/mpc_crypten.py --runs="$RUNS" --provider="$provider" \
                    --json="$OUT/crypten-$provider.json" > "$OUT/crypten-$provider.log" 2>&1; then
                CRYPTEN_JSONS+=("$OUT/crypten-$provider.json")
            else
                log "CrypTen ($provider) failed:"; tail -20 "$OUT/crypten-$provider.log" >&2
            fi
        done
    else
        echo '{"system": "crypten", "error": "pip install crypten failed, see crypten-install.log"}' > "$OUT/crypten-failed.json"
        CRYPTEN_JSONS+=("$OUT/crypten-failed.json")
    fi
fi

# --- anvil ---------------------------------------------------------------------------------
ANVIL_STATS=()
if [ "$SKIP_ANVIL" = 0 ]; then
    W="$OUT/anvil"
    mkdir -p "$W"
    log "anvil: building the mpc engines"
    run "$W/build.log" "$ANVIL" --onnx=$MODEL --mode=mpc --calibData=$MODEL_DIR/calib --shapes=input:1x1x8x8 \
        --saveEngine="$W/server.engine" --savePublic="$W/public.engine"
    log "anvil: dealer, $RUNS runs"
    run "$W/dealer.log" "$ANVIL" mpc-dealer --loadEngine="$W/public.engine" --runs="$RUNS" --out="$W/OFF"
    # One sample per run from the test set, as 1x1x8x8 .npy files.
    "$PY" -c "
import numpy as np, sys
x = np.load('$MODEL_DIR/test/input.npy')
for i in range($RUNS):
    np.save('$W/x%d.npy' % i, x[i:i + 1].astype(np.float32))
"
    PORT=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    "$ANVIL" mpc-server --loadEngine="$W/server.engine" --offline="$W/OFF/server" --listen=127.0.0.1:$PORT \
        > "$W/server.log" 2>&1 &
    SERVER=$!
    trap 'kill $SERVER 2>/dev/null || true' EXIT
    for ((i = 0; i < RUNS; i++)); do
        if ! "$ANVIL" mpc-client --loadEngine="$W/public.engine" --offline="$W/OFF/client" --connect=127.0.0.1:$PORT \
                --loadInputs=input:"$W/x$i.npy" --saveOutputs="$W/out$i" --exportStats="$W/stats$i.json" \
                > "$W/client$i.log" 2>&1; then
            log "mpc-client run $i failed:"; cat "$W/client$i.log" >&2
            log "mpc-server's log:"; cat "$W/server.log" >&2
            exit 1
        fi
        run "$W/fixed$i.log" "$ANVIL" --loadEngine="$W/server.engine" --mode=fixed --loadInputs=input:"$W/x$i.npy" \
            --saveOutputs="$W/fixed$i"
        ANVIL_STATS+=("$W/stats$i.json")
    done
    wait $SERVER || { log "mpc-server failed:"; cat "$W/server.log" >&2; exit 1; }
    trap - EXIT
fi

# --- the table -----------------------------------------------------------------------------
"$PY" - "$OUT" "$RUNS" "${#ANVIL_STATS[@]}" "${CRYPTEN_JSONS[@]}" <<'EOF'
import glob, json, os, statistics, sys
import numpy as np

out, runs, n_anvil = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
crypten_files = sys.argv[4:]
rows, summary = [], {"runs": runs, "load_avg": os.getloadavg()}

if n_anvil:
    w = os.path.join(out, "anvil")
    stats = [json.load(open(os.path.join(w, "stats%d.json" % i))) for i in range(n_anvil)]
    # The secure run truncates each lookup input to the fixed run's index or a neighbour
    # (docs/mpc.md): outputs match --mode=fixed within that bound, top-1 as a rule.
    exact = top1 = 0
    max_diff = 0.0
    for i in range(n_anvil):
        a = sorted(glob.glob(os.path.join(w, "out%d" % i, "*.npy")))
        b = sorted(glob.glob(os.path.join(w, "fixed%d" % i, "*.npy")))
        if not a or len(a) != len(b):
            continue
        pairs = [(np.load(x), np.load(y)) for x, y in zip(a, b)]
        exact += int(all(np.array_equal(x, y) for x, y in pairs))
        top1 += int(all(np.array_equal(x.argmax(-1), y.argmax(-1)) for x, y in pairs))
        max_diff = max([max_diff] + [float(np.abs(x - y).max()) for x, y in pairs])
    med = lambda k: statistics.median(s[k] for s in stats)
    a = dict(system="anvil mpc", detail="dealer files, %s B per run" % "{:,}".format(int(med("offlineBytes"))), online_ms=med("onlineMs"),
             c2s=med("bytesSent"), s2c=med("bytesReceived"), rounds=med("rounds"),
             offline_bytes=med("offlineBytes"), bit_exact=exact, top1_equal=top1, max_abs_diff=max_diff,
             check="top-1 %d/%d = fixed (%d bit-exact, max diff %.3g)" % (top1, n_anvil, exact, max_diff))
    rows.append(a)
    summary["anvil"] = a

for f in crypten_files:
    c = json.load(open(f))
    if "error" in c:
        rows.append(dict(system="crypten", detail=c["error"]))
        summary.setdefault("crypten", []).append(c)
        continue
    rows.append(dict(system="crypten " + c["crypten_version"], detail="provider " + c["provider"],
                     online_ms=c["online_ms_median"], c2s=c["client_wire_sent"], s2c=c["client_wire_received"],
                     rounds=c["client_rounds"], check="top-1 %s = fp32" % c["top1_agree"]))
    summary.setdefault("crypten", []).append(c)

def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float) and unit == "ms":
        return "%.2f" % v
    return "{:,}".format(int(v)) if isinstance(v, (int, float)) else str(v)

print()
print("digits CNN (tests/models/precision/digits_cnn), batch 1, loopback, median of %d runs; load average %.1f"
      % (runs, os.getloadavg()[0]))
hdr = ("system", "offline / provider", "online ms", "client->server B", "server->client B", "rounds", "check")
print("| " + " | ".join(hdr) + " |")
print("|" + "|".join("---" for _ in hdr) + "|")
for r in rows:
    if "online_ms" not in r:
        print("| %s | %s | - | - | - | - | - |" % (r["system"], r["detail"]))
        continue
    c2s, s2c = fmt(r["c2s"]), fmt(r["s2c"])
    print("| %s | %s | %s | %s | %s | %s | %s |" % (r["system"], r["detail"], fmt(r["online_ms"], "ms"), c2s, s2c,
                                                 fmt(r["rounds"]), r["check"]))
print()
print("CrypTen: bytes are the client's TCP bytes (kernel tcp_info of its gloo sockets; with TTP")
print("they include its exchanges with the third party); rounds are its communicator's count of")
print("communication calls; its model is secret-shared once before the timed runs (not timed).")
print("anvil: bytes and rounds from the client's --exportStats (bytesSent, bytesReceived: the channel's")
print("wire bytes; rounds: client->server->client exchanges); each run claims fresh dealer material and")
print("receives the server's weight masks anew (in server->client).")
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
EOF
