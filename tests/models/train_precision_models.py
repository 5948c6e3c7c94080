#!/usr/bin/env python3
"""Trains the small models of the reduced-precision tests and benchmark (issue #9) and
writes them, with their calibration and test data, to tests/models/precision/<model>/.

    .venv/bin/python tests/models/train_precision_models.py [--out DIR] [--models a,b]

Data: scikit-learn's bundled data sets only (no downloads) and one synthetic field.
Fixed seeds and one torch thread: a rerun on the same machine rewrites the same numbers.
Each model trains in 5-40 s on one core (about 1 min 45 s for all five).

Per model directory:
  model.onnx            opset 17, the batch dimension fixed (meta.json "batch")
  calib/<input>.npy     training samples stacked along axis 0 (a multiple of the batch):
                        what --calibData reads; --precision=auto holds the last quarter out
  test/<input>.npy      the held-out test split (a multiple of the batch)
  test/labels.npy       class ids (int64) or regression targets (float32)
  meta.json             task, metric, batch, input/output names and shapes, the FP32
                        accuracy torch measured on the test split, notes

Models:
  digits_cnn          load_digits as 1x8x8 images: 3 Conv+ReLU (+2 MaxPool), Linear head
  digits_mlp          load_digits flattened: 64-128-64-10 MLP (ReLU)
  digits_transformer  load_digits rows as 8 tokens of 8 features: embedding, 2 encoder
                      layers (d_model 32, 4 heads, FF 64), mean pool, Linear head
  flow_mlp            regression "of the CFD kind": potential flow past a cylinder, inputs
                      (x, y, U, R), outputs (u, v, p) = velocity and Bernoulli pressure;
                      4 tanh layers of width 64. Chosen over load_diabetes, whose targets
                      are so noisy (R^2 ~ 0.5) that no precision effect would show.
  digits_mlp_illcond  digits_mlp with one badly conditioned layer by construction: the
                      first hidden layer is emitted twice ([h; h], 128 units) and the
                      second layer's weights become [W2 + K, -K] with K large (|K| ~ 64x
                      |W2|), so the same function is computed while for every output
                      |v| << sum |w||x| (kappa ~ 1e2..1e3). Rounding W2 + K and -K
                      separately (fp16: 2^-11, int8: 1/127 of the row's range) no longer
                      cancels: that layer must stay in fp32 (or fp16), the others may go
                      to int8.
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "precision")
BATCH = 64
FLOW_BATCH = 256
OPSET = 17


def seed_all(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)


# ---------------------------------------------------------------------------------------
# Data

def digits_split():
    """load_digits (1797 x 64, pixel values 0..16) scaled to [0, 1]; a fixed permutation:
    the last 512 samples are the test split, 768 of the rest (12 batches) the calibration samples."""
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    perm = np.random.RandomState(0).permutation(len(x))
    x, y = x[perm], y[perm]
    n_test = 512
    xtr, ytr, xte, yte = x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:]
    calib = xtr[:768]
    return xtr, ytr, xte, yte, calib


def flow_field(n, rng):
    """Potential flow past a cylinder of radius R in a uniform stream U (along x):
    u = U (1 - R^2 (x^2 - y^2) / r^4), v = -2 U R^2 x y / r^4, p = (U^2 - u^2 - v^2) / 2
    (Bernoulli, rho = 1, p = 0 far away). Points in [-3, 3]^2 outside 1.1 R."""
    out = []
    while sum(len(o) for o in out) < n:
        m = 4 * n
        x = rng.uniform(-3, 3, m)
        y = rng.uniform(-3, 3, m)
        U = rng.uniform(0.5, 2.0, m)
        R = rng.uniform(0.5, 1.0, m)
        r2 = x * x + y * y
        keep = r2 > (1.1 * R) ** 2
        x, y, U, R, r2 = x[keep], y[keep], U[keep], R[keep], r2[keep]
        r4 = r2 * r2
        u = U * (1 - R * R * (x * x - y * y) / r4)
        v = -2 * U * R * R * x * y / r4
        p = 0.5 * (U * U - u * u - v * v)
        out.append(np.stack([x, y, U, R, u, v, p], axis=1))
    a = np.concatenate(out)[:n].astype(np.float32)
    return a[:, :4], a[:, 4:]


# ---------------------------------------------------------------------------------------
# Models

class DigitsCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(64 * 2 * 2, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = self.pool(torch.relu(self.conv2(x)))
        x = self.pool(torch.relu(self.conv3(x)))
        return self.fc(torch.flatten(x, 1))


class DigitsMlp(nn.Module):
    def __init__(self, hidden=(128, 64)):
        super().__init__()
        self.fc1 = nn.Linear(64, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], 10)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class DigitsTransformer(nn.Module):
    def __init__(self, d=32, heads=4, ff=64, layers=2):
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.pos = nn.Parameter(0.1 * torch.randn(1, 8, d))
        layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        h = self.encoder(self.embed(x) + self.pos)
        return self.head(h.mean(dim=1))


class FlowMlp(nn.Module):
    def __init__(self, width=64, depth=4):
        super().__init__()
        dims = [4] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = nn.Linear(width, 3)

    def forward(self, x):
        for l in self.hidden:
            x = torch.tanh(l(x))
        return self.out(x)


# ---------------------------------------------------------------------------------------
# Training

def train_classifier(model, xtr, ytr, epochs, lr, batch=64):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    g = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    return model


def accuracy(model, x, y):
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def export(model, example, path, in_name, out_name):
    # Gradients stay enabled: under no_grad torch 1.13 takes the fused transformer fast
    # path, which the exporter rejects.
    model.eval()
    torch.onnx.export(model, (example,), path, opset_version=OPSET, input_names=[in_name],
                      output_names=[out_name], do_constant_folding=True)


def save(out, name, model, in_name, in_shape, calib, xte, labels, meta):
    d = os.path.join(out, name)
    os.makedirs(os.path.join(d, "calib"), exist_ok=True)
    os.makedirs(os.path.join(d, "test"), exist_ok=True)
    batch = in_shape[0]
    assert len(calib) % batch == 0 and len(xte) % batch == 0
    calib = np.ascontiguousarray(calib.reshape((-1,) + tuple(in_shape[1:])), dtype=np.float32)
    xte = np.ascontiguousarray(xte.reshape((-1,) + tuple(in_shape[1:])), dtype=np.float32)
    np.save(os.path.join(d, "calib", in_name + ".npy"), calib)
    np.save(os.path.join(d, "test", in_name + ".npy"), xte)
    np.save(os.path.join(d, "test", "labels.npy"), labels)
    out_name = "logits" if meta["task"] == "classification" else "fields"
    export(model, torch.from_numpy(xte[:batch].copy()), os.path.join(d, "model.onnx"), in_name, out_name)
    meta = dict(meta, batch=batch, input=in_name, input_shape=list(in_shape), output=out_name,
                calib_samples=len(calib), test_samples=len(xte), opset=OPSET)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in meta.items() if k.startswith("fp32")))


def make_digits_cnn(out):
    seed_all(10)
    xtr, ytr, xte, yte, calib = digits_split()
    img = lambda a: a.reshape(-1, 1, 8, 8)
    m = train_classifier(DigitsCnn(), img(xtr), ytr, epochs=30, lr=3e-3)
    acc = accuracy(m, img(xte), yte)
    save(out, "digits_cnn", m, "input", [BATCH, 1, 8, 8], calib, xte, yte,
         {"task": "classification", "metric": "top1", "classes": 10, "data": "sklearn load_digits / 16",
          "fp32_accuracy_torch": round(acc, 6)})


def train_digits_mlp(seed):
    seed_all(seed)
    xtr, ytr, xte, yte, calib = digits_split()
    m = train_classifier(DigitsMlp(), xtr, ytr, epochs=40, lr=2e-3)
    return m, xte, yte, calib


def make_digits_mlp(out):
    m, xte, yte, calib = train_digits_mlp(20)
    save(out, "digits_mlp", m, "input", [BATCH, 64], calib, xte, yte,
         {"task": "classification", "metric": "top1", "classes": 10, "data": "sklearn load_digits / 16",
          "fp32_accuracy_torch": round(accuracy(m, xte, yte), 6)})


def make_digits_transformer(out):
    seed_all(30)
    xtr, ytr, xte, yte, calib = digits_split()
    tok = lambda a: a.reshape(-1, 8, 8)
    m = DigitsTransformer()
    # Perturb the zero-initialised biases: the exporter would otherwise fold identical
    # constants together (see /work/shared/TOOLCHAIN.md).
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith("bias"):
                p.add_(0.01 * torch.randn_like(p))
    m = train_classifier(m, tok(xtr), ytr, epochs=40, lr=2e-3)
    save(out, "digits_transformer", m, "input", [BATCH, 8, 8], calib, xte, yte,
         {"task": "classification", "metric": "top1", "classes": 10,
          "data": "sklearn load_digits / 16, 8 rows as 8 tokens",
          "fp32_accuracy_torch": round(accuracy(m, tok(xte), yte), 6)})


def make_flow_mlp(out):
    seed_all(40)
    rng = np.random.RandomState(40)
    xtr, ytr = flow_field(20000, rng)
    xte, yte = flow_field(8 * FLOW_BATCH, rng)
    m = FlowMlp()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    epochs = 150
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    g = torch.Generator().manual_seed(2)
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), 256):
            idx = perm[i:i + 256]
            loss = nn.functional.mse_loss(m(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    m.eval()
    with torch.no_grad():
        pred = m(torch.from_numpy(xte)).numpy()
    rmse = float(np.sqrt(np.mean((pred - yte) ** 2)))
    rel = float(np.linalg.norm(pred - yte) / np.linalg.norm(yte))
    save(out, "flow_mlp", m, "input", [FLOW_BATCH, 4], xtr[:16 * FLOW_BATCH], xte, yte,
         {"task": "regression", "metric": "relative",
          "data": "synthetic: potential flow past a cylinder, inputs (x, y, U, R), targets (u, v, p)",
          "fp32_rmse_torch": round(rmse, 6), "fp32_relative_error_torch": round(rel, 6)})


def make_digits_mlp_illcond(out, k_scale=64.0):
    base, xte, yte, calib = train_digits_mlp(20)
    h1, h2 = base.fc1.out_features, base.fc2.out_features
    m = DigitsMlp(hidden=(2 * h1, h2))
    rng = torch.Generator().manual_seed(50)
    with torch.no_grad():
        m.fc1.weight.copy_(torch.cat([base.fc1.weight, base.fc1.weight]))
        m.fc1.bias.copy_(torch.cat([base.fc1.bias, base.fc1.bias]))
        w2 = base.fc2.weight
        k = k_scale * w2.abs().max() * torch.randn(w2.shape, generator=rng)
        m.fc2.weight.copy_(torch.cat([w2 + k, -k], dim=1))
        m.fc2.bias.copy_(base.fc2.bias)
        m.fc3.weight.copy_(base.fc3.weight)
        m.fc3.bias.copy_(base.fc3.bias)
    m.eval()
    # The cancellation holds in fp32 to about kappa * 2^-24: the same predictions.
    with torch.no_grad():
        agree = float((m(torch.from_numpy(xte)).argmax(1) == base(torch.from_numpy(xte)).argmax(1)).float().mean())
    assert agree == 1.0, agree
    save(out, "digits_mlp_illcond", m, "input", [BATCH, 64], calib, xte, yte,
         {"task": "classification", "metric": "top1", "classes": 10, "data": "sklearn load_digits / 16",
          "fp32_accuracy_torch": round(accuracy(m, xte, yte), 6),
          "ill_conditioned_layer": "/fc2/Gemm",
          "notes": f"fc1 emitted twice ([h; h]); fc2 weights [W2 + K, -K], K ~ N(0, ({k_scale} max|W2|)^2): "
                   "the function of digits_mlp with |v| << sum |w||x| in fc2 only"})


MODELS = {
    "digits_cnn": make_digits_cnn,
    "digits_mlp": make_digits_mlp,
    "digits_transformer": make_digits_transformer,
    "flow_mlp": make_flow_mlp,
    "digits_mlp_illcond": make_digits_mlp_illcond,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    for name in args.models.split(","):
        MODELS[name](args.out)


if __name__ == "__main__":
    main()
