#!/usr/bin/env python3
"""Export anvil's offline model set and its onnxruntime oracle.

Usage:
    .venv/bin/python tests/models/export_models.py OUTDIR [--force] [--models a,b] [--list-ops]
    .venv/bin/python tests/models/export_models.py build/models-bench --bench

--bench exports the benchmark-only models (BENCH_MODELS: squeezenet1_1, mobilenet_v3_small,
a small ViT, convnext_tiny, a 2-layer LSTM with hidden 64 over 50 steps) instead of the test
set. They go to their own directory and manifest so that the test suite (which compares
every model of build/models/manifest.json at several optimization levels) does not grow;
bench/ reads both directories.

For every model this writes, into OUTDIR:
    <name>.onnx                       the model (random weights, fixed seed, opset 17)
    <name>.in.<input>.npy             one fixed-seed input per graph input
    <name>.out.<output>.npy           onnxruntime's output (CPUExecutionProvider, all
                                      graph optimizations disabled: plain ONNX semantics)
    manifest.json                     per model: file, inputs, outputs, op counts
Names in file names are sanitized: every character outside [A-Za-z0-9._-] becomes '_'.

Idempotent: a model whose manifest entry and files all exist is skipped unless --force.
--list-ops prints the op types (with counts) of every model in the manifest.

Needs the venv made by scripts/setup_python.sh (Debian torch 1.13 + PyPI onnx 1.17 and
onnxruntime 1.20.1). NOTE: onnx and onnxruntime must be imported BEFORE torch: Debian's
torch links libonnx_proto.so (ONNX 1.12), which registers the older onnx.proto in the C++
protobuf descriptor pool, and a later `import onnx` then fails with
"cannot import name 'IR_VERSION_2021_7_30'".
"""

import argparse
import collections
import json
import os
import re
import sys
import time
import traceback
import warnings
import zlib

# Order matters, see the module docstring: onnx / onnxruntime before torch.
try:
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    import torch.nn as nn
except ImportError as _e:
    sys.exit(f"export_models.py: {_e}\n  run with the venv python: PY=$(scripts/setup_python.sh); "
             f"$PY tests/models/export_models.py OUTDIR")

OPSET = 17
BASE_SEED = 20240601

_SANITIZE_RE = re.compile(r"[^A-Za-z0-9._-]")


def sanitize(name):
    """Replace every character outside [A-Za-z0-9._-] with '_' (anvil CLI convention)."""
    return _SANITIZE_RE.sub("_", name)


def model_seed(name):
    return (BASE_SEED + zlib.crc32(name.encode())) % (2**31)


# --------------------------------------------------------------------------------------
# Weight perturbation helpers
# --------------------------------------------------------------------------------------

def perturb_all_params(module, gen, scale=0.05):
    """Add small random noise to every parameter so that no two tensors are identical,
    no bias is all zeros and no LayerNorm is the identity affine map."""
    with torch.no_grad():
        for _, p in module.named_parameters():
            ref = float(p.abs().mean()) if p.numel() > 1 else 0.0
            s = scale * (ref if ref > 0 else 1.0)
            p.add_(torch.randn(p.shape, generator=gen) * s)


def perturb_and_calibrate_bn(model, gen, input_shape, steps=3, batch=4):
    """Randomize BatchNorm affine params and zero biases, then compute BN running
    statistics from a few random batches (train mode, no grad) so that activations stay
    in a realistic range through the network. The model is left in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in bns:
            m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 1.0 + 0.5)  # [0.5, 1.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
        for name, p in model.named_parameters():
            if name.endswith("bias") and torch.count_nonzero(p) == 0:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average over the calibration batches
        model.train()
        for _ in range(steps):
            x = torch.rand((batch,) + tuple(input_shape[1:]), generator=gen) * 2 - 1
            model(x)
        for m in bns:
            m.momentum = 0.1
            # Nudge the stats a little so they are not exactly the batch statistics.
            m.running_var.mul_(torch.rand(m.running_var.shape, generator=gen) * 0.2 + 0.9)
    model.eval()


# --------------------------------------------------------------------------------------
# Model definitions
# --------------------------------------------------------------------------------------

class BertLike(nn.Module):
    """Token + position embedding, embedding LayerNorm, 2-layer post-norm
    nn.TransformerEncoder (GELU), tanh pooler on token 0 and a small classifier."""

    def __init__(self, vocab=1000, seq=16, d_model=64, nhead=4, ff=128, layers=2, classes=3):
        super().__init__()
        self.seq = seq
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(seq, d_model)
        self.emb_norm = nn.LayerNorm(d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=ff, dropout=0.0,
                                           activation="gelu", batch_first=True)
        # enable_nested_tensor=False: avoid the nested-tensor conversion path while tracing.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.pool = nn.Linear(d_model, d_model)
        self.head = nn.Linear(d_model, classes)
        self.register_buffer("pos_ids", torch.arange(seq).unsqueeze(0), persistent=False)

    def forward(self, input_ids, attention_mask):
        h = self.tok(input_ids) + self.pos(self.pos_ids)
        h = self.emb_norm(h)
        h = self.encoder(h, src_key_padding_mask=(attention_mask == 0))
        pooled = torch.tanh(self.pool(h[:, 0]))
        return h, self.head(pooled)


class MLP(nn.Module):
    def __init__(self, d_in=64, hidden=128, d_out=10):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, d_out)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = nn.functional.gelu(self.fc2(x))
        return self.fc3(x)


class LSTMModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(input_size=16, hidden_size=32, num_layers=2, batch_first=True)

    def forward(self, x):
        y, (h, c) = self.lstm(x)
        return y, h, c


class LSTMBench(nn.Module):
    """The issue's LSTM: 2 layers, hidden 64, 50 steps (bench only)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(input_size=64, hidden_size=64, num_layers=2, batch_first=True)

    def forward(self, x):
        y, (h, c) = self.lstm(x)
        return y, h, c


def build_lstm_h64(name, gen, rng):
    model = LSTMBench()
    perturb_all_params(model, gen)
    model.eval()
    x = rng.standard_normal(size=(1, 50, 64)).astype(np.float32)
    return dict(model=model, input_names=["input"], output_names=["output", "h_n", "c_n"],
                inputs=[x],
                dynamic_axes={"input": {0: "N"}, "output": {0: "N"}, "h_n": {1: "N"},
                              "c_n": {1: "N"}})


# Each builder returns a dict:
#   model, input_names, output_names, inputs (list of np arrays), dynamic_axes
def _vision(arch, image=224):
    def build(name, gen, rng):
        import torchvision
        model = getattr(torchvision.models, arch)(weights=None)
        perturb_and_calibrate_bn(model, gen, (1, 3, image, image))
        x = rng.uniform(-1.0, 1.0, size=(1, 3, image, image)).astype(np.float32)
        return dict(model=model, input_names=["input"], output_names=["output"], inputs=[x],
                    dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    return build


def build_bert(name, gen, rng):
    vocab, seq = 1000, 16
    model = BertLike(vocab=vocab, seq=seq)
    perturb_all_params(model, gen)
    model.eval()
    ids = rng.integers(0, vocab, size=(2, seq), dtype=np.int64)
    mask = np.ones((2, seq), dtype=np.int64)
    mask[1, 11:] = 0  # second sequence: last 5 positions are padding
    return dict(model=model, input_names=["input_ids", "attention_mask"],
                output_names=["last_hidden_state", "logits"], inputs=[ids, mask],
                dynamic_axes={"input_ids": {0: "N"}, "attention_mask": {0: "N"},
                              "last_hidden_state": {0: "N"}, "logits": {0: "N"}})


def build_bert_base4(name, gen, rng):
    """BERT-base width (d 768, 12 heads, FFN 3072) at 4 layers, sequence 128, batch 1: the
    per-layer cost of a BERT-base encoder at a third of its depth (bench/int8.py's encoder)."""
    vocab, seq = 8000, 128
    model = BertLike(vocab=vocab, seq=seq, d_model=768, nhead=12, ff=3072, layers=4, classes=2)
    perturb_all_params(model, gen)
    model.eval()
    ids = rng.integers(0, vocab, size=(1, seq), dtype=np.int64)
    mask = np.ones((1, seq), dtype=np.int64)
    return dict(model=model, input_names=["input_ids", "attention_mask"],
                output_names=["last_hidden_state", "logits"], inputs=[ids, mask],
                dynamic_axes={"input_ids": {0: "N"}, "attention_mask": {0: "N"},
                              "last_hidden_state": {0: "N"}, "logits": {0: "N"}})


def build_mlp(name, gen, rng):
    model = MLP()
    perturb_all_params(model, gen)
    model.eval()
    x = rng.standard_normal(size=(4, 64)).astype(np.float32)
    # The output name deliberately contains characters that get sanitized ('/' and ':'),
    # so the <name>.out.<sanitized>.npy convention is exercised: mlp.out.mlp_logits_0.npy.
    return dict(model=model, input_names=["input"], output_names=["mlp/logits:0"],
                inputs=[x], dynamic_axes={"input": {0: "N"}, "mlp/logits:0": {0: "N"}})


def build_lstm(name, gen, rng):
    model = LSTMModel()
    perturb_all_params(model, gen)
    model.eval()
    x = rng.standard_normal(size=(2, 10, 16)).astype(np.float32)
    # y is [N, 10, 32]; h_n and c_n are [layers=2, N, 32] (batch is dim 1 there).
    return dict(model=model, input_names=["input"], output_names=["output", "h_n", "c_n"],
                inputs=[x],
                dynamic_axes={"input": {0: "N"}, "output": {0: "N"}, "h_n": {1: "N"},
                              "c_n": {1: "N"}})


class SmallViT(nn.Module):
    """ViT-like encoder at a small size: 16x16 patch embedding (a strided Conv), class token,
    learned position embedding, pre-norm nn.TransformerEncoder (GELU), LayerNorm and a
    linear head on the class token. Default: dim 192, depth 4, 3 heads, MLP 768, 224x224."""

    def __init__(self, image=224, patch=16, dim=192, depth=4, heads=3, mlp=768, classes=1000):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        tokens = (image // patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=mlp, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        h = self.patch(x).flatten(2).transpose(1, 2)  # [N, tokens, dim]
        h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1) + self.pos
        h = self.norm(self.encoder(h))
        return self.head(h[:, 0])


def build_small_vit(name, gen, rng):
    model = SmallViT()
    # Zero-initialized class token, position embedding and biases would leave constants
    # the exporter folds or dedups: give every parameter its own noise.
    perturb_all_params(model, gen, scale=0.2)
    model.eval()
    x = rng.uniform(-1.0, 1.0, size=(1, 3, 224, 224)).astype(np.float32)
    return dict(model=model, input_names=["input"], output_names=["output"], inputs=[x],
                dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})


def _perturbed_image_model(model, gen, rng, image):
    """A model without BatchNorm, its layer scales set to 0.1 (1e-6 would make every ConvNeXt
    block ~identity) and every parameter perturbed, with an image input of image x image."""
    with torch.no_grad():
        for mod in model.modules():
            if hasattr(mod, "layer_scale") and isinstance(mod.layer_scale, nn.Parameter):
                mod.layer_scale.fill_(0.1)
    perturb_all_params(model, gen)
    model.eval()
    x = rng.uniform(-1.0, 1.0, size=(1, 3, image, image)).astype(np.float32)
    return dict(model=model, input_names=["input"], output_names=["output"], inputs=[x],
                dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})


def _vision_perturbed(arch):
    """torchvision models without BatchNorm (ConvNeXt: LayerNorm, layer scale initialized
    to a constant 1e-6): perturb every parameter instead of calibrating BatchNorm."""
    def build(name, gen, rng):
        import torchvision
        return _perturbed_image_model(getattr(torchvision.models, arch)(weights=None), gen, rng, 224)
    return build


def build_convnext_s64(name, gen, rng):
    """A two-stage ConvNeXt (torchvision's blocks: 32 and 64 channels, two blocks each) on a
    64x64 image: the channels-last block (Permute -> LayerNorm -> MLP -> Permute, layer scale,
    residual) of convnext_tiny, small enough for the test set."""
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    model = ConvNeXt([CNBlockConfig(32, 64, 2), CNBlockConfig(64, None, 2)], num_classes=10)
    return _perturbed_image_model(model, gen, rng, 64)


MODELS = collections.OrderedDict([
    ("resnet18", _vision("resnet18")),
    ("mobilenet_v2", _vision("mobilenet_v2")),
    ("efficientnet_b0", _vision("efficientnet_b0")),
    ("bert_tiny", build_bert),
    ("mlp", build_mlp),
    ("lstm", build_lstm),
    # The CNNs at 32x32: small enough to run through the CUDA simulator (CUDA engines built
    # without a GPU and run with --simulate, tests/CMakeLists.txt model_sim_*).
    ("resnet18_s32", _vision("resnet18", image=32)),
    ("mobilenet_v2_s32", _vision("mobilenet_v2", image=32)),
    ("efficientnet_b0_s32", _vision("efficientnet_b0", image=32)),
    # Channels-last blocks (transpose-cancellation's anvil.ConvNhwc and Transpose sinking).
    ("convnext_s64", build_convnext_s64),
])

# Benchmark-only models (bench/, docs/performance.md): exported with --bench into their own
# directory, never part of the test suite's manifest.
BENCH_MODELS = collections.OrderedDict([
    ("squeezenet1_1", _vision("squeezenet1_1")),
    ("mobilenet_v3_small", _vision("mobilenet_v3_small")),
    ("vit_small", build_small_vit),
    ("convnext_tiny", _vision_perturbed("convnext_tiny")),
    ("lstm_h64_s50", build_lstm_h64),
    ("bert_base4", build_bert_base4),
])
ALL_MODELS = collections.OrderedDict(list(MODELS.items()) + list(BENCH_MODELS.items()))


# --------------------------------------------------------------------------------------
# Export / oracle
# --------------------------------------------------------------------------------------

def op_counts(model_proto):
    """Op-type counts over the main graph and all subgraphs (If/Loop/Scan bodies)."""
    counts = collections.Counter()

    def walk(graph):
        for n in graph.node:
            key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
            counts[key] += 1
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for g in a.graphs:
                        walk(g)

    walk(model_proto.graph)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def value_info_shape(vi):
    dims = []
    for d in vi.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def ort_session(path):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
    so.log_severity_level = 3
    return ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])


def save_npy_atomic(path, arr):
    tmp = path + ".tmp.npy"
    np.save(tmp, arr)
    os.replace(tmp, path)


def expected_files(entry):
    files = [entry["file"]]
    files += [i["file"] for i in entry["inputs"]]
    files += [o["file"] for o in entry["outputs"]]
    return files


def entry_complete(outdir, entry):
    return entry is not None and all(os.path.isfile(os.path.join(outdir, f))
                                     for f in expected_files(entry))


def export_one(name, builder, outdir):
    seed = model_seed(name)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)

    spec = builder(name, gen, rng)
    model = spec["model"]
    inputs_np = spec["inputs"]
    in_names = spec["input_names"]
    out_names = spec["output_names"]
    inputs_t = tuple(torch.from_numpy(a.copy()) for a in inputs_np)

    onnx_file = f"{name}.onnx"
    onnx_path = os.path.join(outdir, onnx_file)
    tmp_onnx = onnx_path + ".tmp"

    # Export with gradients ENABLED: under no_grad, torch 1.13 takes the fused
    # transformer fast path (aten::_transformer_encoder_layer_fwd) the exporter rejects.
    with torch.enable_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, inputs_t, tmp_onnx, opset_version=OPSET,
                          input_names=in_names, output_names=out_names,
                          dynamic_axes=spec["dynamic_axes"], do_constant_folding=True)
        ref = model(*inputs_t)
    if isinstance(ref, torch.Tensor):
        ref = (ref,)
    ref = [r.detach().numpy() for r in ref]

    mp = onnx.load(tmp_onnx)
    onnx.checker.check_model(mp)
    graph_in = [i.name for i in mp.graph.input
                if i.name not in {t.name for t in mp.graph.initializer}]
    graph_out = [o.name for o in mp.graph.output]
    if graph_in != in_names or graph_out != out_names:
        raise RuntimeError(f"graph I/O {graph_in} -> {graph_out} does not match the "
                           f"requested {in_names} -> {out_names}")
    ops = op_counts(mp)

    sess = ort_session(tmp_onnx)
    feeds = dict(zip(in_names, inputs_np))
    outs = sess.run(out_names, feeds)

    # Sanity check: onnxruntime vs torch (the oracle is onnxruntime; this only catches
    # broken exports).
    for oname, o, r in zip(out_names, outs, ref):
        if o.shape != r.shape:
            raise RuntimeError(f"{oname}: ORT shape {o.shape} != torch shape {r.shape}")
        rng_ = float(r.max() - r.min()) if r.size else 0.0
        err = float(np.max(np.abs(o.astype(np.float64) - r))) / max(rng_, 1e-12)
        if not np.all(np.isfinite(o)):
            raise RuntimeError(f"{oname}: onnxruntime output has non-finite values")
        if err > 1e-3:
            raise RuntimeError(f"{oname}: onnxruntime vs torch relative error {err:.3g}")

    entry = {"file": onnx_file, "opset": OPSET, "seed": seed, "inputs": [], "outputs": [],
             "ops": ops}
    vi_in = {i.name: i for i in mp.graph.input}
    vi_out = {o.name: o for o in mp.graph.output}
    for iname, arr in zip(in_names, inputs_np):
        f = f"{name}.in.{sanitize(iname)}.npy"
        save_npy_atomic(os.path.join(outdir, f), arr)
        entry["inputs"].append({"name": iname, "file": f, "dtype": str(arr.dtype),
                                "shape": list(arr.shape),
                                "model_shape": value_info_shape(vi_in[iname])})
    for oname, arr in zip(out_names, outs):
        f = f"{name}.out.{sanitize(oname)}.npy"
        save_npy_atomic(os.path.join(outdir, f), arr)
        entry["outputs"].append({"name": oname, "file": f, "dtype": str(arr.dtype),
                                 "shape": list(arr.shape),
                                 "model_shape": value_info_shape(vi_out[oname])})
    os.replace(tmp_onnx, onnx_path)
    # Remove stale input/output files of this model from an earlier, different export.
    keep = set(expected_files(entry))
    for f in os.listdir(outdir):
        if (f.startswith(f"{name}.in.") or f.startswith(f"{name}.out.")) and \
                f.endswith(".npy") and f not in keep:
            os.remove(os.path.join(outdir, f))
    return entry


def load_manifest(path):
    if os.path.isfile(path):
        try:
            with open(path) as f:
                m = json.load(f)
            if isinstance(m.get("models"), dict):
                return m
        except (OSError, ValueError):
            pass
    return {"models": {}}


def write_manifest(path, manifest):
    manifest["format"] = 1
    manifest["generator"] = "tests/models/export_models.py"
    manifest["versions"] = {"torch": torch.__version__, "onnx": onnx.__version__,
                            "onnxruntime": ort.__version__, "numpy": np.__version__}
    ordered = collections.OrderedDict()
    for k in ALL_MODELS:
        if k in manifest["models"]:
            ordered[k] = manifest["models"][k]
    for k, v in manifest["models"].items():
        ordered.setdefault(k, v)
    manifest["models"] = ordered
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def print_ops(name, entry, outdir):
    ops = entry.get("ops")
    if ops is None:  # old manifest without op counts: read the model
        ops = op_counts(onnx.load(os.path.join(outdir, entry["file"]), load_external_data=False))
    total = sum(ops.values())
    print(f"{name}: {total} nodes, {len(ops)} op types")
    print("    " + ", ".join(f"{k} x{v}" for k, v in ops.items()))
    if "Identity" in ops:
        print(f"    WARNING: {name} contains Identity nodes (degenerate weights?)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--force", action="store_true", help="re-export even if files exist")
    ap.add_argument("--models", default="",
                    help="comma-separated subset (default: all of the test set, or of the bench "
                         "set with --bench): " + ",".join(ALL_MODELS))
    ap.add_argument("--bench", action="store_true",
                    help="export the benchmark-only models (" + ",".join(BENCH_MODELS) + ")")
    ap.add_argument("--list-ops", action="store_true",
                    help="print the op types (with counts) of each model")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--allow-skip", action="store_true",
                    help="exit 0 even if some model failed to export (it is skipped)")
    args = ap.parse_args(argv)

    names = [m for m in args.models.split(",") if m] or list(BENCH_MODELS if args.bench else MODELS)
    unknown = [m for m in names if m not in ALL_MODELS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; known: {list(ALL_MODELS)}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    os.makedirs(args.outdir, exist_ok=True)
    manifest_path = os.path.join(args.outdir, "manifest.json")
    manifest = load_manifest(manifest_path)
    failed = []
    t_all = time.time()
    for name in names:
        entry = manifest["models"].get(name)
        if not args.force and entry_complete(args.outdir, entry):
            print(f"[skip] {name}: already exported (use --force to redo)", flush=True)
            continue
        t0 = time.time()
        print(f"[export] {name} ...", flush=True)
        try:
            entry = export_one(name, ALL_MODELS[name], args.outdir)
        except Exception as e:  # keep going with the other models
            tmp = os.path.join(args.outdir, f"{name}.onnx.tmp")
            if os.path.exists(tmp):
                os.remove(tmp)
            manifest["models"].pop(name, None)
            write_manifest(manifest_path, manifest)
            print(f"[SKIPPED] {name}: export failed: {type(e).__name__}: {e}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            failed.append(name)
            continue
        manifest["models"][name] = entry
        write_manifest(manifest_path, manifest)
        size = os.path.getsize(os.path.join(args.outdir, entry["file"]))
        print(f"[done] {name}: {time.time() - t0:.1f}s, {size / 1e6:.1f} MB, "
              f"{sum(entry['ops'].values())} nodes", flush=True)
    if not os.path.isfile(manifest_path):
        write_manifest(manifest_path, manifest)
    print(f"total {time.time() - t_all:.1f}s; manifest: {manifest_path}")

    if args.list_ops:
        print()
        for name in names:
            if name in manifest["models"]:
                print_ops(name, manifest["models"][name], args.outdir)
        union = collections.Counter()
        for name in names:
            if name in manifest["models"]:
                union.update(manifest["models"][name].get("ops", {}))
        print(f"all models: {len(union)} op types: " + ", ".join(sorted(union)))

    if failed:
        print(f"export failed (models skipped): {', '.join(failed)}", file=sys.stderr)
        return 0 if args.allow_skip else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
