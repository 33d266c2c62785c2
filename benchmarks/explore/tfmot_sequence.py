"""Can magnitude pruning hold the defaults suite's LSTM within a point of dense at 80 %?

    python benchmarks/explore/tfmot_sequence.py              # 5, 10 and 20 epochs
    python benchmarks/explore/tfmot_sequence.py --epochs 10

An exploration for issue 17 (not a benchmark): the `sequence-<E>` case of
`benchmarks/defaults.py` (Embedding + LSTM on the first-marker task, Adam
1e-3, batch 128, from the same initial weights as that case's models, seed 0)
trained densely and with tfmot's
`prune_low_magnitude`, every prunable layer to 80 % sparse with a
polynomial decay over the first half of the epochs and a fine-tune at 80 %
in the second half (the split keras_scl's default schedule uses). The
driver builds the data with `defaults.first_marker_task` (Keras 3 side) and
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

    (x, y), (xt, yt) = defaults.first_marker_task()
    # The initial weights `defaults.run_sequence` gives both of its models.
    defaults.keras.utils.set_random_seed(0)
    initial = defaults.sequence_model(32, 4).get_weights()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "task.npz")
        np.savez(path, x=x, y=y, xt=xt, yt=yt, **{f"w{i}": w for i, w in enumerate(initial)})
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
        for epochs in args.epochs:
            subprocess.run(
                [sys.executable, __file__, "--worker", path, "--epochs", str(epochs), "--sparsity", str(args.sparsity)],
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
        return keras2.Sequential(
            [
                keras2.Input((None,), dtype="int32"),
                keras2.layers.Embedding(32, 16),
                keras2.layers.LSTM(32),
                keras2.layers.Dense(4),
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
                "case": f"sequence-{epochs}",
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
    parser.add_argument("--epochs", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    worker(args) if args.worker else driver(args)


if __name__ == "__main__":
    main()
