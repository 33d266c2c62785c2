"""tfmot `prune_low_magnitude` baseline, run by `run.py` in its own process.

The TF Model Optimization Toolkit runs on Keras 2 only, so this script runs
with `TF_USE_LEGACY_KERAS=1` and `tf-keras` installed (`pip install -e
".[bench]"`); keras_scl is never imported here. It trains the same network
(from the weights in `--init`, the trained dense model, when given) with
the same optimizer, schedule, batch size and epoch budget as keras_scl,
pruning with a polynomial decay over the mask phase (then fine-tuning at
that sparsity) to a uniform target sparsity (`--target-sparsity`), or to a
target per layer (`--layer-sparsity '{"fc1": 0.99, ...}'`, each pruned
layer wrapped on its own with its own `PolynomialDecay`, as tfmot's guide
does with `clone_model`). With `--teacher` (a `.npy` of `[label, teacher
logits...]` rows, `keras_scl.teacher_targets` of the training set) it
trains on the recipe's distillation loss (`distillation_tf.py`) instead of
the labels alone. It writes the stripped kernels to an `.npz` file plus a
JSON line with the epoch times.
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
from distillation_tf import distillation_loss  # noqa: E402

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


def prune(model, schedule, target_sparsity=None, layer_sparsity=None):
    """`model` wrapped by `prune_low_magnitude`: uniformly, or layer by layer.

    `schedule(sparsity)` makes the pruning schedule of one target. A layer
    missing from `layer_sparsity`, or at sparsity 0, is left as it is.
    """
    if layer_sparsity is None:
        return tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule(target_sparsity))
    unknown = set(layer_sparsity) - {layer.name for layer in model.layers}
    if unknown:
        raise ValueError(
            f"Expected layer names of the model {[layer.name for layer in model.layers]}. "
            f"Received: layer_sparsity for {sorted(unknown)}"
        )

    def wrap(layer):
        sparsity = layer_sparsity.get(layer.name, 0.0)
        if not sparsity:
            return layer
        # tfmot's schedules take sparsities below 1 and keep one weight at least.
        sparsity = min(sparsity, 1.0 - 1.0 / max(w.shape.num_elements() for w in layer.trainable_weights))
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule(sparsity))

    # Wrapping the trained layers themselves keeps their weights (the clone's default would not).
    return keras2.models.clone_model(model, clone_function=wrap)


def distillation_targets(path, labels):
    """The `[label, teacher logits...]` rows of `path`, checked against this process's labels."""
    targets = np.load(path).astype("float32")
    if targets.ndim != 2 or len(targets) != len(labels) or not np.array_equal(targets[:, 0], labels.astype("float32")):
        raise ValueError(
            f"Expected teacher targets of shape ({len(labels)}, 1 + k) whose first column is the training labels "
            f"in this process's order. Received: {path} of shape {targets.shape}"
        )
    return targets


def distillation(temperature, weight):
    """The recipe's loss as a Keras 2 loss function of packed targets."""

    def loss(y_true, y_pred):
        return distillation_loss(y_true, y_pred, temperature, weight)

    return loss


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--network", required=True, choices=["lenet300", "lenet5"])
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-sparsity", type=float, help="the same sparsity for every layer")
    target.add_argument("--layer-sparsity", type=json.loads, help='JSON object layer name -> sparsity, e.g. \'{"fc1": 0.99}\'')
    p.add_argument("--mask-epochs", type=int, required=True)
    p.add_argument("--finetune-epochs", type=int, required=True)
    p.add_argument("--learning-rate", type=float, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--jit-compile", action="store_true", help="compile the train step with XLA")
    p.add_argument("--init", default=None, help="path of an .npz of weights to start from (the trained dense model)")
    p.add_argument("--teacher", default=None, help="path of a .npy of [label, teacher logits...] rows: distil")
    p.add_argument("--distill-temperature", type=float, default=4.0)
    p.add_argument("--distill-weight", type=float, default=0.7)
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

    def pruning(sparsity):
        return tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=0.0,
            final_sparsity=sparsity,
            begin_step=0,
            end_step=max(first - 1, 1),
            frequency=max(steps // 5, 1),
        )

    start = build(a.network)
    if a.init:
        weights_npz.load(start, a.init)
    model = prune(start, pruning, a.target_sparsity, a.layer_sparsity)
    loss, metrics = keras2.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"]
    if a.teacher:
        y = distillation_targets(a.teacher, y)
        loss = distillation(a.distill_temperature, a.distill_weight)
        metrics = []  # Keras 2's accuracy cannot read packed targets, and nothing reads it
    model.compile(
        optimizer=keras2.optimizers.Adam(schedule),
        loss=loss,
        metrics=metrics,
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
