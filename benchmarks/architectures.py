"""Real architectures with keras_scl: wrap time, memory, and round-trip checks.

    python benchmarks/architectures.py

For MobileNetV2, ResNet50 and EfficientNetB0 (`keras.applications`,
`weights=None`, 64x64 inputs, 10 classes) and a small Transformer encoder:
wrap with `prune_scl` (timed), train 3 steps with `SCLCallback`, strip,
reload the wrapped `.keras` file and the exported SavedModel, and check that
every path gives the wrapped model's predictions. Memory is the bytes held by
the model's variables, wrapped vs dense (masks double the prunable weights).
Writes `<out-dir>/architectures.json`.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

import keras_scl

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import provenance  # noqa: E402
from test_applications import _transformer_encoder  # noqa: E402

MODELS = {
    "MobileNetV2": (lambda: keras.applications.MobileNetV2(input_shape=(64, 64, 3), weights=None, classes=10), (64, 64, 3), False),
    "ResNet50": (lambda: keras.applications.ResNet50(input_shape=(64, 64, 3), weights=None, classes=10), (64, 64, 3), False),
    "EfficientNetB0": (lambda: keras.applications.EfficientNetB0(input_shape=(64, 64, 3), weights=None, classes=10), (64, 64, 3), False),
    "TransformerEncoder": (_transformer_encoder, (6,), True),
}


def _bytes(model):
    return int(sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in model.weights))


def measure(name, build, shape, integer):
    keras.utils.set_random_seed(0)
    model = build()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 20, size=(4, *shape)).astype("int32") if integer else rng.random((4, *shape)).astype("float32")
    y = rng.integers(0, model.output_shape[-1], size=4)
    start = time.perf_counter()
    pruned = keras_scl.prune_scl(model, strength=1e-4, initial_mask=0.01)
    wrap_seconds = time.perf_counter() - start
    pruned.compile(
        optimizer=keras_scl.SCLOptimizer(keras.optimizers.Adam(1e-3)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=integer),
    )
    pruned.fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[keras_scl.SCLCallback()])
    expected = pruned.predict(x, verbose=0)
    stripped = keras_scl.strip_scl(pruned)
    with tempfile.TemporaryDirectory() as tmp:
        pruned.save(os.path.join(tmp, "w.keras"))
        reloaded = keras.saving.load_model(os.path.join(tmp, "w.keras")).predict(x, verbose=0)
        stripped.export(os.path.join(tmp, "sm"), verbose=False)
        served = tf.saved_model.load(os.path.join(tmp, "sm"))
        exported = served.serve(x).numpy()
    rows = keras_scl.sparsity_report(pruned)
    return {
        "wrap_seconds": wrap_seconds,
        "wrapped_layers": len(keras_scl.wrapper.find_wrappers(pruned)),
        "prunable_weights": sum(r.total for r in rows),
        "dense_variable_bytes": _bytes(model),
        "wrapped_variable_bytes": _bytes(pruned),
        "memory_ratio": _bytes(pruned) / _bytes(model),
        "sparsity_after_3_steps": keras_scl.global_sparsity(rows),
        "max_abs_diff_stripped": float(np.abs(stripped.predict(x, verbose=0) - expected).max()),
        "max_abs_diff_keras_reload": float(np.abs(reloaded - expected).max()),
        "max_abs_diff_savedmodel": float(np.abs(exported - expected).max()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args(argv)
    results = {}
    for name in args.models:
        results[name] = measure(name, *MODELS[name])
        print(name, json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in results[name].items()}), flush=True)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "architectures.json"), "w") as f:
        json.dump({**provenance.header("architectures.py", argv), "models": results}, f, indent=2)


if __name__ == "__main__":
    main()
