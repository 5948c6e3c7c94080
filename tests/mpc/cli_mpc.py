#!/usr/bin/env python3
"""The mpc commands end to end with real processes on loopback (docs/mpc.md):

  anvil --mode=mpc (server + public engine) -> mpc-dealer --runs=2 -> mpc-server in the
  background on a free port -> mpc-client twice (two different batches) -> compared with
  --mode=fixed on the same inputs: top-1 identical but for near-ties (a flipped row must
  have a fixed top-2 margin below the secure-vs-fixed deviation), the deviation a few
  percent of the output range, stats.json with its fields, 2 bytes per lookup, one round
  per LUT layer; the server exits 0 after its two runs.

Error cases (--errors): the dealer refuses the server engine; a client with the material
of another build; a client whose material directory is used up, and one whose consumed
run file was copied back; a client of another build against the server (the channel's key
check); a server that dies in the middle of a run (through a relay that cuts the server's
stream near its end and kills it: the client exits non-zero at once when the connection
closes, at its timeout when it goes silent); a server stopped before the handshake.

With --exactTruncation the engines are built with that flag: then the secure outputs must
equal --mode=fixed's byte for byte (the .npy files and their values), and the lookups cost
more than 2 bytes and more than one round (the borrow rounds of the exact truncation).

    cli_mpc.py --anvil build/tools/anvil --model tests/models/precision/digits_mlp \
               --shape 16x64 --out build/tests/mpc/cli_mpc_mlp [--errors] [--exactTruncation]
"""
import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np


def run(args, expect_ok=True, timeout=120):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if expect_ok and p.returncode != 0:
        sys.exit(f"FAILED: {' '.join(args)}\n{p.stdout}")
    if not expect_ok and p.returncode == 0:
        sys.exit(f"FAILED: should have failed: {' '.join(args)}\n{p.stdout}")
    return p.stdout


def expect_words(out, words, what):
    if words.lower() not in out.lower():
        sys.exit(f"FAILED: {what}: expected '{words}' in:\n{out}")


STARTED = []  # background processes this script started: killed when it exits, failed or not


@atexit.register
def _stop_started():
    for p in STARTED:
        if p.poll() is None:
            p.kill()
            p.wait()


class Server:
    """mpc-server in the background; its port parsed from its first line."""

    def __init__(self, anvil, engine, offline, extra=()):
        self.p = subprocess.Popen([anvil, "mpc-server", f"--loadEngine={engine}", f"--offline={offline}",
                                   "--listen=127.0.0.1:0", *extra],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        STARTED.append(self.p)
        line = self.p.stdout.readline()
        if "listening on port" not in line:
            self.p.kill()
            sys.exit(f"FAILED: mpc-server did not start: {line}{self.p.stdout.read()}")
        self.port = int(line.split("listening on port")[1].split(",")[0])
        self.first = line

    def wait(self, timeout=60):
        try:
            out, _ = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            sys.exit("FAILED: mpc-server did not exit after serving its runs")
        return self.p.returncode, self.first + out


class Relay:
    """A TCP relay client <-> server that stops the server's stream after `cut_after` bytes:
    then calls on_cut (kills the server) and closes the client's side or leaves it silent."""

    def __init__(self, server_port, cut_after, on_cut, close_client):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.server_port, self.cut_after, self.on_cut, self.close_client = server_port, cut_after, on_cut, close_client
        self.forwarded, self.cut, self.sockets = 0, False, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        c, _ = self.listener.accept()
        s = socket.create_connection(("127.0.0.1", self.server_port))
        self.sockets = [c, s]
        threading.Thread(target=self._pump, args=(c, s), daemon=True).start()
        while True:
            try:
                data = s.recv(65536)
            except OSError:
                return
            if not data:
                c.close()
                return
            room = self.cut_after - self.forwarded
            if len(data) >= room:
                c.sendall(data[:max(room, 0)])
                self.forwarded += max(room, 0)
                self.cut = True
                self.on_cut()
                if self.close_client:  # shutdown: a FIN now, although _pump still reads c
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                return
            c.sendall(data)
            self.forwarded += len(data)

    @staticmethod
    def _pump(src, dst):
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    return
                dst.sendall(data)
            except OSError:
                return

    def close(self):
        for sock in self.sockets + [self.listener]:
            try:
                sock.close()
            except OSError:
                pass


def top1_check(fixed, secure, name):
    """Top-1 identical on every row but near-ties; returns (agreeing rows, max deviation, of range)."""
    rows = fixed.reshape(fixed.shape[0], -1)
    srows = secure.reshape(secure.shape[0], -1)
    dev = np.abs(rows.astype(np.float64) - srows)
    same = 0
    for i in range(rows.shape[0]):
        if rows[i].argmax() == srows[i].argmax():
            same += 1
            continue
        top = np.sort(rows[i])[::-1]
        margin = float(top[0] - top[1])
        print(f"{name}: row {i} top-1 differs (fixed margin {margin:.4g}, deviation {dev[i].max():.4g})")
        if margin >= 2 * dev[i].max():
            sys.exit(f"FAILED: {name}: row {i} flipped without a near-tie (margin {margin}, deviation {dev[i].max()})")
    rel = float(dev.max() / max(np.abs(rows).max(), 1e-30))
    return same, float(dev.max()), rel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--anvil", required=True)
    ap.add_argument("--model", required=True, help="a tests/models/precision/<model> directory")
    ap.add_argument("--shape", required=True, help="the input shape, e.g. 16x64")
    ap.add_argument("--out", required=True)
    ap.add_argument("--errors", action="store_true", help="also the error cases")
    ap.add_argument("--exactTruncation", action="store_true", help="build with --exactTruncation: bit-exact")
    a = ap.parse_args()
    anvil, out = a.anvil, a.out
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    name = os.path.basename(a.model.rstrip("/"))
    dims = [int(d) for d in a.shape.split("x")]
    batch = dims[0]

    # The engines.
    server_engine, public_engine = f"{out}/server.engine", f"{out}/public.engine"
    exact = ["--exactTruncation"] if a.exactTruncation else []
    built = run([anvil, f"--onnx={a.model}/model.onnx", "--mode=mpc", f"--calibData={a.model}/calib",
                 f"--shapes=input:{a.shape}", f"--saveEngine={server_engine}", f"--savePublic={public_engine}",
                 *exact])
    if a.exactTruncation:
        expect_words(built, "Truncation: exact", "the build's summary with --exactTruncation")
        expect_words(run([anvil, f"--onnx={a.model}/model.onnx", "--mode=mpc", f"--calibData={a.model}/calib",
                          f"--shapes=input:{a.shape}", f"--saveEngine={out}/bad.engine", "--exactTruncation=maybe"],
                         expect_ok=False), "takes no value", "--exactTruncation with a value")
    elif "Truncation: exact" in built:
        sys.exit(f"FAILED: a build without --exactTruncation says it is exact:\n{built}")
    test = np.load(f"{a.model}/test/input.npy").astype(np.float32)
    inputs = []
    for k in range(2):
        x = test[k * batch:(k + 1) * batch].reshape(dims)
        path = f"{out}/x{k}.npy"
        np.save(path, x)
        inputs.append(path)

    # Offline: two runs.
    off = f"{out}/OFF"
    dealer = run([anvil, "mpc-dealer", f"--loadEngine={public_engine}", "--runs=2", f"--out={off}"])
    print(dealer.strip())
    expect_words(dealer, "Offline bytes", "mpc-dealer's summary")
    if a.errors:  # keep a copy of a client run file, to copy it back once it is consumed
        first_run = sorted(f for f in os.listdir(f"{off}/client") if f.endswith(".bin"))[0]
        os.makedirs(f"{out}/saved")
        shutil.copy(f"{off}/client/{first_run}", f"{out}/saved/{first_run}")

    # Online: the server in the background, two clients.
    server = Server(anvil, server_engine, f"{off}/server")
    stats = []
    for k in range(2):
        res = f"{out}/secure{k}"
        summary = run([anvil, "mpc-client", f"--loadEngine={public_engine}", f"--offline={off}/client",
                       f"--connect=127.0.0.1:{server.port}", f"--loadInputs=input:{inputs[k]}",
                       f"--saveOutputs={res}", f"--exportStats={out}/stats{k}.json"])
        print(summary.strip())
        for words in ("Online time", "Rounds", "Bytes sent", "Offline bytes"):
            expect_words(summary, words, "mpc-client's summary")
        with open(f"{out}/stats{k}.json") as f:
            stats.append(json.load(f))
    rc, server_out = server.wait()
    print(server_out.strip())
    if rc != 0:
        sys.exit(f"FAILED: mpc-server exited {rc} after two good runs:\n{server_out}")
    expect_words(server_out, "served 2 run(s)", "mpc-server's last line")

    # The reference: --mode=fixed on the same inputs.
    lut_layers = None
    for k in range(2):
        run([anvil, f"--loadEngine={server_engine}", "--mode=fixed", f"--loadInputs=input:{inputs[k]}",
             f"--saveOutputs={out}/fixed{k}"])
        files = sorted(os.listdir(f"{out}/fixed{k}"))
        if sorted(os.listdir(f"{out}/secure{k}")) != files or not files:
            sys.exit(f"FAILED: output files differ: fixed {files}, secure {sorted(os.listdir(f'{out}/secure{k}'))}")
        for fname in files:
            fixed = np.load(f"{out}/fixed{k}/{fname}")
            secure = np.load(f"{out}/secure{k}/{fname}")
            if fixed.shape != secure.shape:
                sys.exit(f"FAILED: {fname}: shapes {fixed.shape} vs {secure.shape}")
            if a.exactTruncation:
                with open(f"{out}/fixed{k}/{fname}", "rb") as ff, open(f"{out}/secure{k}/{fname}", "rb") as fs:
                    if ff.read() != fs.read() or not np.array_equal(fixed, secure):
                        sys.exit(f"FAILED: {fname} batch {k}: --exactTruncation's secure output differs from "
                                 f"--mode=fixed's (max |diff| {np.abs(fixed.astype(np.float64) - secure).max()})")
                print(f"{name} batch {k}: {fname} secure == fixed byte for byte")
            same, dev, rel = top1_check(fixed, secure, f"{name} batch {k}")
            print(f"{name} batch {k}: top-1 secure == fixed on {same}/{fixed.shape[0]} rows, "
                  f"max |secure - fixed| {dev:.4g} ({rel:.3g} of the output range)")
            if rel >= 0.06:
                sys.exit(f"FAILED: {fname}: deviation {rel} of the output range (bound 0.06)")
        s = stats[k]
        for field in ("bytesSent", "bytesReceived", "rounds", "onlineMs", "offlineBytes", "lutBytesPerActivation",
                      "layers", "offlineBytesServer", "offlineBytesClient", "nonlinearLayers", "lookups"):
            if field not in s:
                sys.exit(f"FAILED: stats{k}.json lacks '{field}'")
        luts = [l for l in s["layers"] if l["kind"] == "Lut"]
        if a.exactTruncation:  # 2-3 rounds a lookup layer, ceil((shift + 8) / 8) bytes + the borrow bits
            if not s["lutBytesPerActivation"] > 2:
                sys.exit(f"FAILED: {s['lutBytesPerActivation']} LUT bytes per activation with --exactTruncation")
            if not luts or any(l["rounds"] < 1 for l in luts) or not any(l["rounds"] >= 2 for l in luts):
                sys.exit(f"FAILED: no LUT layer took the exact truncation's rounds: {luts}")
        else:
            if not 0 < s["lutBytesPerActivation"] <= 2:
                sys.exit(f"FAILED: {s['lutBytesPerActivation']} LUT bytes per activation (at most 2)")
            if not luts or any(l["rounds"] != 1 for l in luts):
                sys.exit(f"FAILED: a LUT layer took other than one round: {luts}")
        if s["bytesSent"] < s["payloadBytesSent"] or s["onlineMs"] <= 0 or s["offlineBytes"] <= 0:
            sys.exit(f"FAILED: implausible stats: {s}")
        if s["runIndex"] != k:
            sys.exit(f"FAILED: client {k} used run {s['runIndex']}")
        lut_layers = len(luts)
    print(f"{name}: stats {json.dumps({k: stats[0][k] for k in ('bytesSent', 'bytesReceived', 'rounds', 'onlineMs', 'offlineBytes', 'lutBytesPerActivation')})}, "
          f"{lut_layers} LUT layers")

    if not a.errors:
        return
    client = lambda engine, offline, port, timeout=10, extra=(): [
        anvil, "mpc-client", f"--loadEngine={engine}", f"--offline={offline}", f"--connect=127.0.0.1:{port}",
        f"--loadInputs=input:{inputs[0]}", f"--timeout={timeout}", *extra]

    # The dealer never takes the server engine.
    expect_words(run([anvil, "mpc-dealer", f"--loadEngine={server_engine}", "--runs=1", f"--out={out}/OFF_bad"],
                     expect_ok=False), "public engine", "dealer given the server engine")

    # An input of another shape is refused before any material is claimed.
    bad = f"{out}/bad.npy"
    np.save(bad, np.zeros([d + 1 for d in dims], np.float32))
    expect_words(run([anvil, "mpc-client", f"--loadEngine={public_engine}", f"--offline={off}/client",
                      "--connect=127.0.0.1:1", f"--loadInputs=input:{bad}"], expect_ok=False), "shape",
                 "an input of another shape")

    # Used-up material: no unused run left; a consumed run file copied back is refused.
    expect_words(run(client(public_engine, f"{off}/client", 1), expect_ok=False), "no offline material left",
                 "used-up client material")
    shutil.copy(f"{out}/saved/{first_run}", f"{off}/client/{first_run}")
    expect_words(run(client(public_engine, f"{off}/client", 1), expect_ok=False), "already used", "a run copied back")

    # Another build of the same model: its own program id and server key.
    other = f"{out}/other"
    os.makedirs(other)
    run([anvil, f"--onnx={a.model}/model.onnx", "--mode=mpc", f"--calibData={a.model}/calib",
         f"--shapes=input:{a.shape}", f"--saveEngine={other}/server.engine", f"--savePublic={other}/public.engine"])
    off_other = f"{other}/OFF"
    run([anvil, "mpc-dealer", f"--loadEngine={other}/public.engine", "--runs=1", f"--out={off_other}"])
    fresh_sets = []

    def fresh():  # one run of material of this build in a new directory (each scenario its own)
        d = f"{out}/OFF_{len(fresh_sets)}"
        run([anvil, "mpc-dealer", f"--loadEngine={public_engine}", "--runs=1", f"--out={d}"])
        fresh_sets.append(d)
        return d
    # Material of the other build with this engine: refused before connecting.
    expect_words(run(client(public_engine, f"{off_other}/client", 1), expect_ok=False), "another engine",
                 "client material of another build")
    # A client of the other build against this server: the channel's key check fails both.
    server = Server(anvil, server_engine, f"{fresh()}/server", extra=("--timeout=5",))
    t0 = time.time()
    out_c = run(client(f"{other}/public.engine", f"{off_other}/client", server.port, 5), expect_ok=False, timeout=30)
    rc, out_s = server.wait(30)
    if rc == 0:
        sys.exit(f"FAILED: the server served a client of another build:\n{out_s}")
    print(f"another build's client: client and server exit non-zero in {time.time() - t0:.2f} s")

    # The server dies in the middle of a run: a relay between client and server forwards the
    # channel's handshake, the hello and the weight masks, then cuts the server's stream a
    # little before its end (inside the last rounds), kills the server and either closes the
    # client's connection or leaves it silent. The client exits non-zero, at once or at its
    # timeout, never hanging.
    total = stats[0]["bytesReceived"]
    for mode, timeout in (("close", 20), ("silent", 2)):
        off2 = fresh()
        server = Server(anvil, server_engine, f"{off2}/server", extra=("--timeout=5",))
        relay = Relay(server.port, cut_after=total - 1500, on_cut=server.p.kill, close_client=mode == "close")
        t0 = time.time()
        c = subprocess.Popen(client(public_engine, f"{off2}/client", relay.port, timeout), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        STARTED.append(c)
        try:
            out_c, _ = c.communicate(timeout=timeout + 10)
        except subprocess.TimeoutExpired:
            c.kill()
            sys.exit(f"FAILED: the client hung after the server died mid-run ({mode})")
        took = time.time() - t0
        server.p.kill()
        server.p.wait()
        relay.close()
        if not relay.cut:
            sys.exit(f"FAILED: the relay never cut the run ({relay.forwarded} bytes forwarded):\n{out_c}")
        if c.returncode == 0:
            sys.exit(f"FAILED: the client succeeded although the server died mid-run:\n{out_c}")
        if took > timeout + 5:
            sys.exit(f"FAILED: the client took {took:.1f} s with a {timeout} s timeout")
        print(f"server dead mid-run ({mode} after {relay.forwarded} of {total} bytes): client exits {c.returncode} "
              f"after {took:.2f} s: {out_c.strip().splitlines()[-1]}")

    # A server that stops before the channel's handshake (SIGSTOP): the client's timeout ends it.
    off2 = fresh()
    server = Server(anvil, server_engine, f"{off2}/server", extra=("--timeout=5",))
    server.p.send_signal(signal.SIGSTOP)
    t0 = time.time()
    out_c = run(client(public_engine, f"{off2}/client", server.port, 2), expect_ok=False, timeout=30)
    took = time.time() - t0
    server.p.kill()
    server.p.wait()
    if took > 10:
        sys.exit(f"FAILED: the client took {took:.1f} s with a 2 s timeout")
    print(f"silent server: client exits non-zero after {took:.2f} s: {out_c.strip().splitlines()[-1]}")
    print("error cases: ok")


if __name__ == "__main__":
    main()
