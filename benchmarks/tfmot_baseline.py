"""tfmot `prune_low_magnitude` baseline, run by `run.py` in its own process.

The TF Model Optimization Toolkit runs on Keras 2 only, so this script runs
with `TF_USE_LEGACY_KERAS=1` and `tf-keras` installed (`pip install -e
".[bench]"`); keras_scl is never imported here. It trains the same network
(from the weights in `--init`, the trained dense model, when given) with
the same optimizer, schedule, batch size and epoch budget as keras_scl,
pruning with a polynomial decay to a uniform target sparsity over the mask
phase (then fine-tuning at that sparsity), and writes the stripped kernels
to an `.npz` file plus a JSON line with the epoch times.
"""

import argparse
import json
import os
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import weights_npz  # noqa: E402

keras2 = tf.keras


def build(network):
    L = keras2.layers
    if network == "lenet300":
        return keras2.Sequential(
            [
                keras2.Input((784,)),
                L.Dense(300, activation="relu", name="fc1"),
                L.Dense(100, activation="relu", name="fc2"),
                L.Dense(10, name="fc3"),
            ]
        )
    return keras2.Sequential(
        [
            keras2.Input((28, 28, 1)),
            L.Conv2D(20, 5, activation="relu", name="conv1"),
            L.MaxPooling2D(2, name="pool1"),
            L.Conv2D(50, 5, activation="relu", name="conv2"),
            L.MaxPooling2D(2, name="pool2"),
            L.Flatten(name="flatten"),
            L.Dense(500, activation="relu", name="fc1"),
            L.Dense(10, name="fc2"),
        ]
    )


class Timer(keras2.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.t)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--network", required=True, choices=["lenet300", "lenet5"])
    p.add_argument("--target-sparsity", type=float, required=True)
    p.add_argument("--mask-epochs", type=int, required=True)
    p.add_argument("--finetune-epochs", type=int, required=True)
    p.add_argument("--learning-rate", type=float, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--jit-compile", action="store_true", help="compile the train step with XLA")
    p.add_argument("--init", default=None, help="path of an .npz of weights to start from (the trained dense model)")
    p.add_argument("--out", required=True, help="path of the .npz of stripped weights")
    a = p.parse_args()

    keras2.utils.set_random_seed(a.seed)
    x, y = tfds.as_numpy(
        tfds.load("mnist", split="train", data_dir=a.data_dir, as_supervised=True, batch_size=-1)
    )
    x = x[: a.train_limit].astype("float32") / 255.0
    y = y[: a.train_limit]
    if a.network == "lenet300":
        x = x.reshape(len(x), -1)
    steps = int(np.ceil(len(x) / a.batch_size))
    first = a.mask_epochs * steps
    schedule = keras2.optimizers.schedules.CosineDecayRestarts(
        a.learning_rate, first, t_mul=max(a.finetune_epochs, 1) / a.mask_epochs, m_mul=1.0
    )
    pruning = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=a.target_sparsity,
        begin_step=0,
        end_step=max(first - 1, 1),
        frequency=max(steps // 5, 1),
    )
    start = build(a.network)
    if a.init:
        weights_npz.load(start, a.init)
    model = tfmot.sparsity.keras.prune_low_magnitude(start, pruning_schedule=pruning)
    model.compile(
        optimizer=keras2.optimizers.Adam(schedule),
        loss=keras2.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=a.jit_compile,
    )
    timer = Timer()
    model.fit(
        x,
        y,
        batch_size=a.batch_size,
        epochs=a.mask_epochs + a.finetune_epochs,
        verbose=0,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep(), timer],
    )
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    weights_npz.save(stripped, a.out)
    print(json.dumps({"seconds_per_epoch": timer.seconds}))


if __name__ == "__main__":
    main()
