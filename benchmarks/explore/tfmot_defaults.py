"""Can magnitude pruning meet the defaults suite's target where keras_scl's defaults miss it?

    python benchmarks/explore/tfmot_defaults.py                       # sequence, 5, 10 and 20 epochs
    python benchmarks/explore/tfmot_defaults.py --case noisy-shifted-mnist --epochs 5 --data-dir ../shared/tfds

An exploration for issue 17 (not a benchmark): the `sequence-<E>` case of
`benchmarks/defaults.py` (Embedding + LSTM on the first-marker task) or its
`noisy-shifted-mnist-<E>` case (the small CNN), with Adam 1e-3, batch 128,
from the same data and initial weights as that case's models (seed 0),
trained densely and with tfmot's
`prune_low_magnitude`, every prunable layer to 80 % sparse with a
polynomial decay over the first half of the epochs and a fine-tune at 80 %
in the second half (the split keras_scl's default schedule uses). The
driver builds the data and initial weights with `defaults.py` (Keras 3 side) and
runs the tfmot part in its own process with `TF_USE_LEGACY_KERAS=1`, as
`run.py` does; it prints one JSON line per number of epochs.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def driver(args):
    sys.path.insert(0, os.path.join(HERE, ".."))
    import numpy as np

    import defaults

    if args.case == "sequence":
        (x, y), (xt, yt) = defaults.first_marker_task()
        build = lambda: defaults.sequence_model(32, 4)  # noqa: E731
    else:
        (images, labels), (test_images, test_labels) = defaults.mnist_common.load_mnist(args.data_dir)
        rng = np.random.default_rng(0)
        x, y = defaults.noisy_shifted(images[:6000, ..., None], labels[:6000], rng)
        xt, yt = defaults.noisy_shifted(test_images[..., None], test_labels, rng)
        build = defaults.small_cnn
    # The initial weights `defaults.py` gives both of the case's models.
    defaults.keras.utils.set_random_seed(0)
    initial = build().get_weights()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "task.npz")
        np.savez(path, x=x, y=y, xt=xt, yt=yt, **{f"w{i}": w for i, w in enumerate(initial)})
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
        for epochs in args.epochs:
            subprocess.run(
                [sys.executable, __file__, "--worker", path, "--case", args.case, "--epochs", str(epochs)]
                + ["--sparsity", str(args.sparsity)],
                env=env,
                check=True,
            )


def worker(args):
    import numpy as np
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot

    keras2 = tf.keras
    data = np.load(args.worker)
    epochs = args.epochs[0]
    batch = 128

    def build():
        L = keras2.layers
        if args.case == "sequence":
            return keras2.Sequential([keras2.Input((None,), dtype="int32"), L.Embedding(32, 16), L.LSTM(32), L.Dense(4)])
        return keras2.Sequential(
            [
                keras2.Input((28, 28, 1)),
                L.Conv2D(32, 3, activation="relu"),
                L.MaxPooling2D(),
                L.Conv2D(64, 3, activation="relu"),
                L.MaxPooling2D(),
                L.Flatten(),
                L.Dense(128, activation="relu"),
                L.Dense(10),
            ]
        )

    def fit(model, callbacks=()):
        model.compile(
            optimizer=keras2.optimizers.Adam(1e-3),
            loss=keras2.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        model.fit(data["x"], data["y"], batch_size=batch, epochs=epochs, verbose=0, callbacks=list(callbacks))
        return 100.0 * (1.0 - model.evaluate(data["xt"], data["yt"], verbose=0)[1])

    keras2.utils.set_random_seed(0)
    start = build()
    start.set_weights([data[f"w{i}"] for i in range(len(start.get_weights()))])
    dense = keras2.models.clone_model(start)
    dense.set_weights(start.get_weights())
    dense_error = fit(dense)

    steps = int(np.ceil(len(data["x"]) / batch)) * epochs
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=args.sparsity, begin_step=0, end_step=steps // 2, frequency=10
    )
    pruned = tfmot.sparsity.keras.prune_low_magnitude(start, pruning_schedule=schedule)
    pruned_error = fit(pruned, [tfmot.sparsity.keras.UpdatePruningStep()])
    final = tfmot.sparsity.keras.strip_pruning(pruned)
    total = live = 0
    for layer in final.layers:
        for weight in layer.weights:
            if "bias" in weight.name:
                continue
            w = weight.numpy()
            total += w.size
            live += int(np.count_nonzero(w))
    print(
        json.dumps(
            {
                "case": f"{args.case}-{epochs}",
                "dense_test_error_percent": round(dense_error, 2),
                "tfmot_test_error_percent": round(pruned_error, 2),
                "points_below_dense": round(pruned_error - dense_error, 2),
                "sparsity": round(1 - live / total, 4),
            }
        ),
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["sequence", "noisy-shifted-mnist"], default="sequence")
    parser.add_argument("--epochs", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    worker(args) if args.worker else driver(args)


if __name__ == "__main__":
    main()
