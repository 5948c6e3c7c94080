#!/usr/bin/env python3
"""CrypTen's two-party inference of the repo's digits CNN at batch 1: the peer that
`anvil mpc-client`/`mpc-server` are measured against (issue 11, bench/mpc_bench.sh).

Two processes (world size 2, gloo on 127.0.0.1) run CrypTen with its default
configuration; rank 1 holds the model (the server), rank 0 the input (the client) and
learns the output. The correlated randomness comes from CrypTen's provider: "TFP" (its
default trusted first party: both parties derive it from shared seeds, no third process)
or "TTP" (a trusted third party process, the analog of anvil's dealer, asked during the
run). Online time per inference = from sharing the input to the plaintext logits at rank
0 (median over --runs); the model is encrypted once before the timed runs, as CrypTen
serves it. Bytes: the client's real TCP bytes each way (the kernel's tcp_info counters
of its sockets) and CrypTen's own communicator counts (nelement x 8 per collective, per
party); rounds: CrypTen's count of communication calls per party.

Run it with the venv that bench/mpc_bench.sh makes (build/crypten-venv):
  build/crypten-venv/bin/python bench/mpc_crypten.py --runs=20 --provider=TFP --json=out.json
"""
import argparse
import io
import json
import os
import socket
import statistics
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MODEL_DIR = os.path.join(REPO, "tests", "models", "precision", "digits_cnn")


def batch1_onnx_bytes(path):
    """The model file fixes batch 64; CrypTen's importer takes shapes from the graph, so
    the input's batch dimension is set to 1 (weights untouched)."""
    import onnx

    model = onnx.load(path)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        if len(dims) > 0:
            dims[0].dim_value = 1
    return model.SerializeToString()


def plaintext_logits(onnx_bytes, x):
    import onnx
    from onnx import numpy_helper
    import torch
    import torch.nn.functional as F

    model = onnx.load_from_string(onnx_bytes)
    w = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
    h = torch.from_numpy(x)
    h = F.relu(F.conv2d(h, w["conv1.weight"], w["conv1.bias"], padding=1))
    h = F.relu(F.conv2d(h, w["conv2.weight"], w["conv2.bias"], padding=1))
    h = F.max_pool2d(h, 2)
    h = F.relu(F.conv2d(h, w["conv3.weight"], w["conv3.bias"], padding=1))
    h = F.max_pool2d(h, 2)
    return F.linear(h.flatten(1), w["fc.weight"], w["fc.bias"]).numpy()


def tcp_bytes():
    """(sent, received) over every TCP socket of this process: the kernel's tcp_info
    counters (tcpi_bytes_acked at offset 120, tcpi_bytes_received at 128), i.e. the real
    bytes gloo put on the wire, headers included."""
    sent = received = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink("/proc/self/fd/" + fd).startswith("socket:"):
                continue
            s = socket.fromfd(int(fd), socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            continue
        try:
            info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
            if len(info) >= 136:
                sent += int.from_bytes(info[120:128], "little")
                received += int.from_bytes(info[128:136], "little")
        except OSError:
            pass  # not a TCP socket
        finally:
            s.close()
    return sent, received


def party(rank, port, args, queue):
    # WORLD_SIZE counts the two parties; CrypTen's TTP, when used, is rank 2 beside them.
    os.environ.update(
        WORLD_SIZE="2",
        RANK=str(rank),
        RENDEZVOUS="tcp://127.0.0.1:%d" % port,
        DISTRIBUTED_BACKEND="gloo",
        GLOO_SOCKET_IFNAME="lo",
    )
    warnings.filterwarnings("ignore")
    import crypten
    import crypten.communicator as comm
    import torch

    crypten.cfg.mpc.provider = args.provider
    crypten.cfg.communicator.verbose = True
    torch.set_num_threads(args.threads)
    if rank == 2:
        crypten.mpc.provider.TTPServer()  # initializes itself; serves until rank 0 ends
        return
    crypten.init()

    onnx_bytes = batch1_onnx_bytes(args.model)
    load_start = time.perf_counter()
    model = crypten.nn.from_onnx(io.BytesIO(onnx_bytes))
    model.encrypt(src=1)  # the server's weights, secret-shared once
    model.eval()
    setup_s = time.perf_counter() - load_start

    inputs = np.load(os.path.join(MODEL_DIR, "test", "input.npy"))[: args.runs + args.warmup]
    times, stats, outputs, wire = [], [], [], []
    # The wire counts of a run are read after a barrier that follows it (so every byte is
    # acknowledged); the barrier's own bytes, measured here, are taken off.
    comm.get().barrier()
    b0 = tcp_bytes()
    comm.get().barrier()
    b1 = tcp_bytes()
    barrier = (b1[0] - b0[0], b1[1] - b0[1])
    for i in range(args.runs + args.warmup):
        x = torch.from_numpy(inputs[i : i + 1].copy()) if rank == 0 else torch.empty(1, 1, 8, 8)
        comm.get().barrier()
        before = tcp_bytes()
        comm.get().reset_communication_stats()
        start = time.perf_counter()
        xe = crypten.cryptensor(x, src=0)
        logits = model(xe).get_plain_text(dst=0)
        elapsed = time.perf_counter() - start
        s = comm.get().get_communication_stats()
        comm.get().barrier()
        after = tcp_bytes()
        if i >= args.warmup:
            times.append(elapsed)
            stats.append(s)
            wire.append((after[0] - before[0] - barrier[0], after[1] - before[1] - barrier[1]))
            if rank == 0:
                outputs.append(logits.numpy().reshape(-1).tolist())
    crypten.uninit()
    queue.put(
        dict(
            rank=rank,
            setup_s=setup_s,
            online_ms=[t * 1e3 for t in times],
            bytes=[s["bytes"] for s in stats],
            rounds=[s["rounds"] for s in stats],
            wire_sent=[w[0] for w in wire],
            wire_received=[w[1] for w in wire],
            outputs=outputs,
        )
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(MODEL_DIR, "model.onnx"))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--provider", default="TFP", choices=["TFP", "TTP"])
    ap.add_argument("--threads", type=int, default=1, help="torch threads per party")
    ap.add_argument("--json", help="write the summary here")
    args = ap.parse_args()

    import multiprocessing as mp

    import crypten

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    world = 2
    port = free_port()
    nprocs = world + (1 if args.provider == "TTP" else 0)
    procs = [ctx.Process(target=party, args=(r, port, args, queue)) for r in range(nprocs)]
    for p in procs:
        p.start()
    results = {}
    deadline = time.time() + 600
    while len(results) < world and time.time() < deadline:
        try:
            r = queue.get(timeout=5)
            results[r["rank"]] = r
        except Exception:
            if any(p.exitcode not in (None, 0) for p in procs):
                break
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.terminate()
    if len(results) < world:
        print("crypten: a party failed (exit codes %s)" % [p.exitcode for p in procs], file=sys.stderr)
        sys.exit(1)

    client, server = results[0], results[1]
    inputs = np.load(os.path.join(MODEL_DIR, "test", "input.npy"))[args.warmup : args.warmup + args.runs]
    ref = plaintext_logits(batch1_onnx_bytes(args.model), inputs)
    got = np.array(client["outputs"])
    top1_agree = int((got.argmax(1) == ref.argmax(1)).sum())
    # Wall time of a run is the slower party's (the client finishes when it has the logits).
    online = [max(a, b) for a, b in zip(client["online_ms"], server["online_ms"])]
    summary = dict(
        system="crypten",
        crypten_version=getattr(crypten, "__version__", "0.4.1"),
        provider=args.provider,
        model=os.path.relpath(args.model, REPO),
        batch=1,
        runs=args.runs,
        threads_per_party=args.threads,
        online_ms_median=statistics.median(online),
        online_ms_min=min(online),
        model_setup_s=max(client["setup_s"], server["setup_s"]),
        # Per party per inference, CrypTen's own counts (median over runs).
        client_bytes=statistics.median(client["bytes"]),
        server_bytes=statistics.median(server["bytes"]),
        client_rounds=statistics.median(client["rounds"]),
        # The client's TCP bytes per inference (median): to the server and, with TTP, to the
        # third party too.
        client_wire_sent=statistics.median(client["wire_sent"]),
        client_wire_received=statistics.median(client["wire_received"]),
        server_rounds=statistics.median(server["rounds"]),
        max_abs_err_vs_fp32=float(np.abs(got - ref).max()),
        top1_agree=f"{top1_agree}/{args.runs}",
    )
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
