"""Compares `anvil --mode=fixed` logits with onnxruntime's float outputs of the same model.

usage: check_fixed_outputs.py MODEL_DIR fixed_logits.npy MIN_TOP1_AGREEMENT
"""
import sys

import numpy as np
import onnxruntime as ort

model_dir, fixed_path, min_agree = sys.argv[1], sys.argv[2], float(sys.argv[3])
x = np.load(f"{model_dir}/test/input.npy")
labels = np.load(f"{model_dir}/test/labels.npy")
sess = ort.InferenceSession(f"{model_dir}/model.onnx")
batch = sess.get_inputs()[0].shape[0]
ref = np.concatenate([sess.run(None, {sess.get_inputs()[0].name: x[i:i + batch]})[0]
                      for i in range(0, len(x), batch)])
fixed = np.load(fixed_path)
assert fixed.shape == ref.shape, (fixed.shape, ref.shape)
agree = float((fixed.argmax(1) == ref.argmax(1)).mean())
rel = float(np.linalg.norm(fixed - ref) / np.linalg.norm(ref))
print(f"fixed vs onnxruntime: top-1 agreement {agree:.4f}, relative error {rel:.4f}, "
      f"accuracy fixed {(fixed.argmax(1) == labels).mean():.4f} float {(ref.argmax(1) == labels).mean():.4f}")
sys.exit(0 if agree >= min_agree else 1)
