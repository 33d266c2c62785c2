"""What the MNIST examples share: data, the SCL training recipe, the results.

The examples (`mnist_lenet300.py`, `mnist_lenet5.py`) and the benchmark
harness (`benchmarks/run.py`) all train through `train_scl` and
`train_dense` below, so the benchmark measures exactly what a user runs.
"""

import argparse
import dataclasses
import json
import os
import time

import keras
import numpy as np

import keras_scl

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


# --- Data -----------------------------------------------------------------
def load_mnist(data_dir=None, flat=False, train_limit=None, test_limit=None):
    """MNIST as float32 arrays in [0, 1] through TensorFlow Datasets.

    `data_dir` (or `TFDS_DATA_DIR`) is where TFDS keeps prepared datasets:
    the first run downloads MNIST there, later runs (and machines with a
    prepared copy) read it with no download.
    """
    import tensorflow_datasets as tfds

    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR")
    (x_train, y_train), (x_test, y_test) = tfds.as_numpy(
        tfds.load(
            "mnist",
            split=["train", "test"],
            data_dir=data_dir,
            as_supervised=True,
            batch_size=-1,
        )
    )

    def prepare(x, y, limit):
        x = x[:limit].astype("float32") / 255.0
        return (x.reshape(len(x), -1) if flat else x), y[:limit].astype("int32")

    return prepare(x_train, y_train, train_limit), prepare(x_test, y_test, test_limit)


# --- The recipe -------------------------------------------------------------
@dataclasses.dataclass
class Recipe:
    """How a network is trained, with SCL or densely.

    The dense network trains first, for `mask_epochs + finetune_epochs`
    epochs. With `prune_trained` (the default) SCL then prunes that trained
    network, as pruning is usually done (and as tfmot's guide does it);
    without it SCL starts from a fresh initialisation instead.
    SCL trains in two phases inside one `model.fit`: for `mask_epochs` the
    masks and weights learn together; then `SCLCallback` freezes the masks
    and the weights fine-tune for `finetune_epochs`. The learning rate
    follows a cosine decay in each phase (restarting at the fine-tune); the
    dense training uses the same optimizer, schedule and batch.
    `jit_compile` is passed to `model.compile` for every method (Keras 3
    turns XLA on by itself on GPUs, not on CPUs).
    With `distill_temperature > 0` (only with `prune_trained`), SCL learns
    from the trained dense network as well as from the labels: the loss is
    `keras_scl.DistillationLoss(distill_temperature, distill_weight)` on the
    dense network's logits, computed once before pruning
    (`keras_scl.teacher_targets`; see docs/distillation.md).
    `update_pruned_weights` goes to `prune_scl`: the recipes keep pruned
    weights at their values, as the library did when their results were
    measured (the library's default now updates them, docs/design.md).
    """

    mask_epochs: int = 15
    finetune_epochs: int = 15
    learning_rate: float = 1e-3
    batch_size: int = 128
    strength: float = 3e-5
    initial_mask: float = 0.2
    prune_trained: bool = True
    jit_compile: bool = False
    distill_temperature: float = 0.0
    distill_weight: float = 0.7
    update_pruned_weights: bool = False

    def __post_init__(self):
        if self.distill_temperature < 0:
            raise ValueError(
                "Expected `distill_temperature` >= 0 (0 turns distillation off). "
                f"Received: distill_temperature={self.distill_temperature}"
            )
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ValueError(
                f"Expected `distill_weight` in [0, 1]. Received: distill_weight={self.distill_weight}"
            )
        if self.distill_temperature and not self.prune_trained:
            raise ValueError(
                "Expected `prune_trained=True` with `distill_temperature` > 0: the teacher "
                "is the trained dense network. Received: prune_trained=False, "
                f"distill_temperature={self.distill_temperature}"
            )

    @property
    def epochs(self):
        return self.mask_epochs + self.finetune_epochs

    def schedule(self, steps_per_epoch):
        first = self.mask_epochs * steps_per_epoch
        if not self.finetune_epochs:
            return keras.optimizers.schedules.CosineDecay(self.learning_rate, first)
        return keras.optimizers.schedules.CosineDecayRestarts(
            self.learning_rate,
            first_decay_steps=first,
            t_mul=self.finetune_epochs / self.mask_epochs,
            m_mul=1.0,
        )


def _steps(x, recipe):
    return int(np.ceil(len(x) / recipe.batch_size))


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of every training epoch."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def train_scl(model, train, recipe, verbose=1, extra_callbacks=(), callback_options=None, **prune_options):
    """Wraps `model` with `prune_scl` and trains it with the recipe.

    `callback_options` go to `SCLCallback` (e.g. `target_sparsity=0.95`).

    With distillation (`recipe.distill_temperature`), `model` is the trained
    dense network and the teacher; its pass over the training set is timed
    in `timer.teacher_seconds` (0 without distillation).

    Returns:
        (pruned model, keras History, EpochTimer).
    """
    x, y = train
    loss, metrics, teacher_seconds = LOSS, ["accuracy"], 0.0
    if recipe.distill_temperature:
        start = time.perf_counter()
        y = keras_scl.teacher_targets(model, x, y, batch_size=1000)
        teacher_seconds = time.perf_counter() - start
        loss = keras_scl.DistillationLoss(recipe.distill_temperature, recipe.distill_weight)
        metrics = [keras_scl.LabelAccuracy(name="accuracy")]
    prune_options.setdefault("strength", recipe.strength)
    prune_options.setdefault("initial_mask", recipe.initial_mask)
    prune_options.setdefault("update_pruned_weights", recipe.update_pruned_weights)
    pruned = keras_scl.prune_scl(model, **prune_options)
    pruned.compile(
        optimizer=keras_scl.SCLOptimizer(keras.optimizers.Adam(recipe.schedule(_steps(x, recipe)))),
        loss=loss,
        metrics=metrics,
        jit_compile=recipe.jit_compile,
    )
    timer = EpochTimer()
    timer.teacher_seconds = teacher_seconds
    history = pruned.fit(
        x,
        y,
        batch_size=recipe.batch_size,
        epochs=recipe.epochs,
        verbose=verbose,
        callbacks=[
            keras_scl.SCLCallback(freeze_masks_at_epoch=recipe.mask_epochs, **(callback_options or {})),
            timer,
            *extra_callbacks,
        ],
    )
    return pruned, history, timer


def train_dense(model, train, recipe, verbose=1):
    """Trains `model` without pruning, with the recipe's optimizer and epochs."""
    x, y = train
    model.compile(
        optimizer=keras.optimizers.Adam(recipe.schedule(_steps(x, recipe))),
        loss=LOSS,
        metrics=["accuracy"],
        jit_compile=recipe.jit_compile,
    )
    timer = EpochTimer()
    history = model.fit(
        x, y, batch_size=recipe.batch_size, epochs=recipe.epochs, verbose=verbose, callbacks=[timer]
    )
    return model, history, timer


# --- Results ----------------------------------------------------------------
def test_accuracy(model, test):
    x, y = test
    logits = model.predict(x, batch_size=1000, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def summarize(model, test):
    """Accuracy, sparsity and FLOPs of a plain (stripped or dense) model.

    Live weights are counted as exact non-zeros of the model's own kernels.
    """
    rows = keras_scl.sparsity_report(model)
    total = sum(r.total for r in rows)
    live = sum(r.live for r in rows)
    return {
        "test_accuracy": test_accuracy(model, test),
        "sparsity": keras_scl.global_sparsity(rows),
        "compression": total / max(live, 1),
        "weights": total,
        "live_weights": live,
        "dense_flops": sum(r.dense_flops for r in rows),
        "sparse_flops": sum(r.sparse_flops for r in rows),
        "layers": [r._asdict() for r in rows],
        "deployment": keras_scl.deployment_size(model),
    }


def write_results(pruned, test, out_dir, name, history, timer, recipe, dense_error=None):
    """Strips, prints the per-layer table, exports, and writes JSON and PNG.

    Returns:
        The JSON summary (a dict).
    """
    os.makedirs(out_dir, exist_ok=True)
    final = keras_scl.strip_scl(pruned)
    rows = keras_scl.sparsity_report(final)
    print()
    print(keras_scl.format_report(rows))
    summary = summarize(final, test)
    summary.update(
        network=name,
        recipe=dataclasses.asdict(recipe),
        dense_test_error_percent=dense_error,
        seconds_per_epoch=float(np.mean(timer.seconds)),
        history={k: [float(v) for v in vs] for k, vs in history.history.items()},
    )
    export_dir = os.path.join(out_dir, f"{name}_savedmodel")
    final.export(export_dir, verbose=False)
    keras_scl.plot_sparsity(rows, os.path.join(out_dir, f"{name}_sparsity.png"), title=f"{name}: {summary['sparsity']:.2%} sparse, test error {100 * (1 - summary['test_accuracy']):.2f}%")
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(
        f"\ntest error {100 * (1 - summary['test_accuracy']):.2f}%, sparsity {summary['sparsity']:.2%} "
        f"({summary['compression']:.1f}x), FLOPs {summary['dense_flops']:,} -> {summary['sparse_flops']:,}"
    )
    print(f"SavedModel: {export_dir}\nsummary: {os.path.join(out_dir, name + '.json')}")
    return summary


def run_example(argv, name, build_model, recipe, scratch_recipe, flat, description):
    """The command line shared by the example scripts: train, strip, report.

    `recipe` prunes the trained dense network; `scratch_recipe` (chosen by
    `--from-scratch`) prunes a freshly initialised one.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", default=None, help="TFDS data directory (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    parser.add_argument("--out-dir", default=os.path.join("runs", name))
    parser.add_argument(
        "--from-scratch",
        action="store_true",
        help="prune a freshly initialised network (with its own recipe) instead of the trained dense one",
    )
    parser.add_argument("--mask-epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--strength", type=float, default=None, help="default: the recipe's")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    train, test = load_mnist(args.data_dir, flat=flat)
    if args.from_scratch:
        recipe = scratch_recipe
    overrides = dict(mask_epochs=args.mask_epochs, finetune_epochs=args.finetune_epochs, strength=args.strength)
    recipe = dataclasses.replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    model = build_model()
    dense_error = None
    if recipe.prune_trained:
        print(f"Training the dense network for {recipe.epochs} epochs")
        model, _, _ = train_dense(model, train, recipe)
        dense_error = 100 * (1 - test_accuracy(model, test))
        print(f"dense test error {dense_error:.2f}%\nPruning it with SCL")
    pruned, history, timer = train_scl(model, train, recipe)
    return write_results(pruned, test, args.out_dir, name, history, timer, recipe, dense_error)
