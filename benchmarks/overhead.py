"""What keras_scl costs per training step and in memory, against the dense model.

    python benchmarks/overhead.py                 # 4 models x batch 32, 128 x XLA off, on
    python benchmarks/overhead.py --quick         # smoke run, about a minute
    python benchmarks/overhead.py --models lenet300 --batch-sizes 32 --xla off --no-rss \
        --variants dense_xla_update scl_forward_only scl_no_regularizer scl scl_graph_update \
        --out-name overhead_components.json       # where keras_scl's time goes
    python benchmarks/overhead.py --table benchmarks/results/overhead.json   # the docs' table

For each model, batch size and XLA setting (XLA for the LeNets unless
`--xla-models` says otherwise) it builds the dense model and
`keras_scl.prune_scl` of it, compiles both as a user would (Adam 1e-3,
sparse categorical cross-entropy, accuracy metric, `jit_compile` off or
on) and trains both with `fit` on generated data, keras_scl with
`SCLCallback()`. Rounds of `fit` over the same number of steps alternate
between the two models, in an order that flips every round, so that the
load of a shared machine hits both alike; a warm-up round (tracing, XLA
compilation) is not counted. There are `--rounds` timed rounds, or more
where more fit in `--setting-seconds` (the LeNets get many, ResNet50 few). Seconds per step are timed from the start of
a round's second step to the end of its last, before any callback's
end-of-epoch work; the rest of each `fit` (its first step, callbacks at
its start and end) is reported apart, as `per_fit_seconds`, as it does not
grow with the steps of an epoch. Reported per model: the median
and minimum seconds per step of each, and the ratios keras_scl / dense:
the median of the per-round ratios (each round pairs neighbouring runs),
the ratio of the medians and the ratio of the minima; also the process's
CPU seconds per step (all threads), which time-slicing on a loaded
machine inflates less than the wall clock. `--variants` adds models that
take keras_scl apart (see `VARIANTS`), timed in the same alternation.

Memory: bytes of the variables, split into weights, masks (and the
per-layer strength scalars) and optimizer slots, read from the models
after training; and, unless `--no-rss`, the peak resident memory of a
fresh process that builds one model and trains it for a few steps (batch
`--rss-batch`, XLA off), with its resident memory after importing
TensorFlow and Keras and after training. For small models the peak is
TensorFlow's own and the same for both.

Models: LeNet-300-100 and LeNet-5-Caffe on 28x28x1 inputs (LeNet-300-100
flattens them), MobileNetV2 and ResNet50 (`keras.applications`,
`weights=None`) on 64x64x3, 10 classes. Writes `<out-dir>/<out-name>`
(`benchmarks/results/overhead.json`).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_scl  # noqa: E402
import provenance  # noqa: E402
from keras_scl.wrapper import find_wrappers  # noqa: E402
from keras_scl.wrapper import mask_feature_axes  # noqa: E402


def lenet300():
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="lenet300",
    )


def lenet5():
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(20, 5, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(50, 5, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(500, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="lenet5",
    )


# name: (builder, input shape, whether the outputs are logits)
MODELS = {
    "lenet300": (lenet300, (28, 28, 1), True),
    "lenet5": (lenet5, (28, 28, 1), True),
    "mobilenetv2": (
        lambda: keras.applications.MobileNetV2(input_shape=(64, 64, 3), weights=None, classes=10),
        (64, 64, 3),
        False,
    ),
    "resnet50": (
        lambda: keras.applications.ResNet50(input_shape=(64, 64, 3), weights=None, classes=10),
        (64, 64, 3),
        False,
    ),
}
MAX_ROUNDS = 24
# The targets keras_scl's time per step is held to (keras_scl / dense, the
# median of the paired ratios), by (model, batch size, XLA); other settings
# are measured without one.
TARGETS = {
    ("lenet300", 32, False): 1.15,
    ("lenet300", 128, False): 1.10,
    ("lenet5", 32, False): 1.10,
    ("mobilenetv2", 32, False): 1.10,
    ("resnet50", 32, False): 1.10,
    ("lenet300", 32, True): 1.10,
    ("lenet300", 128, True): 1.10,
}
# Distinct batches in the generated data set, which repeats.
DATA_BATCHES = 8
RSS_STEPS = 5


def _dataset(name, batch_size):
    _, shape, _ = MODELS[name]
    rng = np.random.default_rng(0)
    n = DATA_BATCHES * batch_size
    x = rng.random((n, *shape), dtype="float32")
    y = rng.integers(0, 10, size=n)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).repeat().prefetch(2)


def _compile(model, name, jit_compile, optimizer=None):
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=MODELS[name][2]),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    return model


class _RecountingLiveConnections(keras_scl.LiveConnections):
    """Counts live connections itself, as before it took the forward pass's count."""

    def __call__(self, mask):
        live = tf.reduce_sum(keras_scl.step.heaviside(tf.stop_gradient(tf.cast(mask, "float32"))))
        return tf.cast(tf.convert_to_tensor(self.strength), live.dtype) * live


def _pruned(dense, name, jit_compile, optimizer=None, masks_trainable=True, regularizer=True, update_pruned=True):
    """`regularizer`: `True` (as the library does: its gradient added by the
    optimizer), `False` (none), `"autodiff"` (its gradient through
    autodiff, as before the optimizer added it), or `"recount"` (its value
    counted again rather than taken from the forward pass). `update_pruned`:
    the wrappers' `update_pruned_weights`."""
    model = keras_scl.prune_scl(dense, update_pruned_weights=update_pruned)
    for wrapper in find_wrappers(model):
        for mask in wrapper.masks:
            mask.trainable = masks_trainable
            if not regularizer:
                mask.regularizer = None
            elif regularizer == "autodiff":
                mask.regularizer = keras_scl.LiveConnections(wrapper.strength_variable, ste=wrapper.ste)
            elif regularizer == "recount":
                mask.regularizer = _RecountingLiveConnections(
                    wrapper.strength_variable, ste=wrapper.ste, differentiable=False
                )
    return _compile(model, name, jit_compile, optimizer)


def _dense_copy(dense, name, jit_compile, optimizer):
    model = keras.models.clone_model(dense)
    model.set_weights(dense.get_weights())
    return _compile(model, name, jit_compile, optimizer)


def _scl_adam(jit_compile=True):
    return keras_scl.SCLOptimizer(keras.optimizers.Adam(1e-3), jit_compile=jit_compile)


# What is timed against the dense model. keras_scl trains as a user's would:
# compiled with the dense model's optimizer, which `SCLCallback` wraps in an
# `SCLOptimizer`. The others take keras_scl apart, to see where its time goes.
VARIANTS = {
    "scl": lambda dense, name, jit: _pruned(dense, name, jit),
    # The update as TensorFlow graph ops: keras_scl before it compiled the update with XLA.
    "scl_graph_update": lambda dense, name, jit: _pruned(dense, name, jit, _scl_adam(jit_compile=False)),
    # The dense model with keras_scl's XLA-compiled update (Adam on the weights alone).
    "dense_xla_update": lambda dense, name, jit: _dense_copy(dense, name, jit, _scl_adam()),
    # Masks frozen: the forward pass computes with w * H(m), and nothing else
    # (no mask gradient, mask update or regularizer: Keras leaves frozen
    # variables' regularizers out of the loss).
    "scl_forward_only": lambda dense, name, jit: _pruned(dense, name, jit, masks_trainable=False),
    # Masks train, without the live-connection regularizer.
    "scl_no_regularizer": lambda dense, name, jit: _pruned(dense, name, jit, regularizer=False),
    # The regularizer's gradient through autodiff (a broadcast and a sum per
    # mask), as before `SCLOptimizer` added it in its update.
    "scl_autodiff_regularizer": lambda dense, name, jit: _pruned(dense, name, jit, regularizer="autodiff"),
    # Pruned weights keep their values (the weight's gradient times H(m)),
    # as before `update_pruned_weights=True` became the default.
    "scl_keep_pruned": lambda dense, name, jit: _pruned(dense, name, jit, update_pruned=False),
    # The regularizer computes H(m) and counts for itself, as before it took
    # the count of the forward pass in the same step.
    "scl_recount": lambda dense, name, jit: _pruned(dense, name, jit, regularizer="recount"),
}


def _models(name, jit_compile, variants):
    """The dense model and the `variants` of it, compiled alike."""
    keras.utils.set_random_seed(0)
    dense = MODELS[name][0]()
    models = {"dense": _compile(dense, name, jit_compile)}
    for key in variants:
        models[key] = VARIANTS[key](dense, name, jit_compile)
    return models


class _StepTimer(keras.callbacks.Callback):
    """Seconds from the start of the second step to the end of the epoch.

    The first step and what callbacks do before it (at the start of `fit`)
    or after the last one (at the end of the epoch) are per-`fit` costs,
    reported apart: with steps in the thousands they vanish per step.
    """

    async_safe = True  # it must not change how Keras dispatches the others

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 1:
            self.start = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start[0]
        self.cpu_seconds = time.process_time() - self.start[1]


def _fit(model, data, steps, extra_callbacks):
    """Seconds and CPU seconds per step (after the first), and the rest of the time `fit` took."""
    timer = _StepTimer()
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer, *extra_callbacks])
    total = time.perf_counter() - start
    return timer.seconds / (steps - 1), timer.cpu_seconds / (steps - 1), total - timer.seconds


def _bytes(variables):
    return int(sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables))


def variable_bytes(model):
    """Bytes of a trained model's variables: weights, keras_scl's own, optimizer slots."""
    masks = [m for w in find_wrappers(model) for m in w.masks]
    scalars = [w.strength_variable for w in find_wrappers(model)]
    own = {id(v) for v in masks + scalars}
    weights = [v for v in model.weights if id(v) not in own]
    return {
        "weights": _bytes(weights),
        "masks": _bytes(masks),
        "strength_scalars": _bytes(scalars),
        "optimizer": _bytes(model.optimizer.variables),
        "total": _bytes(model.weights) + _bytes(model.optimizer.variables),
    }


def measure(name, batch_size, jit_compile, rounds, round_seconds, variants=("scl",), setting_seconds=0.0):
    """Alternating timed rounds of the dense model and `variants` for one setting."""
    data = _dataset(name, batch_size)
    models = _models(name, jit_compile, variants)
    keys = list(models)
    callbacks = {key: [keras_scl.SCLCallback()] if find_wrappers(models[key]) else [] for key in keys}
    warmup = {}
    for key in keys:
        start = time.perf_counter()
        models[key].fit(data, steps_per_epoch=2, epochs=1, verbose=0, callbacks=callbacks[key])
        warmup[key] = time.perf_counter() - start
    # Steps per round from a short timed run of the dense model.
    per_step, _, _ = _fit(models["dense"], data, 3, [])
    steps = int(min(400, max(3, round(round_seconds / per_step))))
    # More rounds where they are cheap: as many as fit in `setting_seconds`.
    rounds = max(rounds, min(MAX_ROUNDS, int(setting_seconds / (len(keys) * steps * per_step))))
    times, cpu, per_fit = ({key: [] for key in keys} for _ in range(3))
    for r in range(rounds + 1):
        for key in keys if r % 2 == 0 else keys[::-1]:
            seconds, cpu_seconds, rest = _fit(models[key], data, steps, callbacks[key])
            if r > 0:  # round 0 is a further warm-up
                times[key].append(seconds)
                cpu[key].append(cpu_seconds)
                per_fit[key].append(rest)

    def ratios(key):
        return {
            "median_of_paired": statistics.median(s / d for s, d in zip(times[key], times["dense"])),
            "of_medians": statistics.median(times[key]) / statistics.median(times["dense"]),
            "of_minima": min(times[key]) / min(times["dense"]),
            "cpu_median_of_paired": statistics.median(s / d for s, d in zip(cpu[key], cpu["dense"])),
        }

    return {
        "steps_per_round": steps,
        "rounds": rounds,
        "warmup_seconds": warmup,
        "seconds_per_step": {
            key: {"median": statistics.median(v), "min": min(v), "all": v} for key, v in times.items()
        },
        "cpu_seconds_per_step": {key: {"median": statistics.median(v), "all": v} for key, v in cpu.items()},
        "per_fit_seconds": {key: statistics.median(v) for key, v in per_fit.items()},
        "ratio": {key: ratios(key) for key in keys if key != "dense"},
        "variable_bytes": {key: variable_bytes(model) for key, model in models.items()},
    }


def _status_bytes(field):
    """A memory figure of this process from /proc/self/status (Linux), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def rss_child(name, variant, batch_size):
    """Runs in a fresh process: peak resident memory of training one model.

    The keras_scl process holds the dense model it pruned, as a user's does.
    """
    after_import = _status_bytes("VmRSS")
    keras.utils.set_random_seed(0)
    model, callbacks = MODELS[name][0](), []
    if variant == "scl":
        model, callbacks = keras_scl.prune_scl(model), [keras_scl.SCLCallback()]
    _compile(model, name, False)
    model.fit(_dataset(name, batch_size), steps_per_epoch=RSS_STEPS, epochs=1, verbose=0, callbacks=callbacks)
    # VmHWM, not getrusage's ru_maxrss: Linux carries the latter over fork and
    # exec, so a child would report its parent's peak when that is larger.
    print(
        json.dumps(
            {
                "peak_rss_bytes": _status_bytes("VmHWM"),
                "rss_after_import_bytes": after_import,
                "rss_after_training_bytes": _status_bytes("VmRSS"),
            }
        )
    )


def measure_rss(name, batch_size):
    found = {}
    for variant in ("dense", "scl"):
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--rss-child", name, variant, str(batch_size)],
            capture_output=True,
            text=True,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
            check=True,
        )
        found[variant] = json.loads(done.stdout.strip().splitlines()[-1])
        found[variant]["peak_minus_import_bytes"] = (
            found[variant]["peak_rss_bytes"] - found[variant]["rss_after_import_bytes"]
        )
    return found


def check_targets(results):
    """Adds `target` and `met` to each result row that has a target."""
    for row in results:
        target = TARGETS.get((row["model"], row["batch_size"], row["jit_compile"]))
        row["target"] = target
        row["met"] = None if target is None else row["ratio"]["scl"]["median_of_paired"] <= target
    return results


def table(path):
    """The Markdown table of an overhead JSON file."""
    with open(path) as f:
        data = json.load(f)
    lines = [
        "| model | batch | XLA | dense ms/step | keras_scl ms/step | ratio (median of paired) | ratio of minima | CPU-time ratio | target | met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in check_targets(data["results"]):
        ratio = row["ratio"]["scl"]
        per_step = row["seconds_per_step"]
        target = "" if row["target"] is None else f"<= {row['target']:.2f}"
        met = "" if row["met"] is None else ("yes" if row["met"] else "**no**")
        lines.append(
            f"| {row['model']} | {row['batch_size']} | {'on' if row['jit_compile'] else 'off'} "
            f"| {per_step['dense']['median'] * 1e3:.2f} | {per_step['scl']['median'] * 1e3:.2f} "
            f"| {ratio['median_of_paired']:.3f} | {ratio['of_minima']:.3f} | {ratio['cpu_median_of_paired']:.3f} "
            f"| {target} | {met} |"
        )
    memory = data.get("peak_rss", {}).get("models", {})
    if memory:
        lines += [
            "",
            "| model | weights MiB | masks MiB | optimizer slots MiB (dense / keras_scl) | peak RSS above import MiB (dense / keras_scl) |",
            "|---|---|---|---|---|",
        ]
        for name, rss in memory.items():
            row = next(r for r in data["results"] if r["model"] == name)
            scl, dense = row["variable_bytes"]["scl"], row["variable_bytes"]["dense"]
            mib = 2**20
            lines.append(
                f"| {name} | {scl['weights'] / mib:.1f} | {scl['masks'] / mib:.1f} "
                f"| {dense['optimizer'] / mib:.1f} / {scl['optimizer'] / mib:.1f} "
                f"| {rss['dense']['peak_minus_import_bytes'] / mib:.0f} / {rss['scl']['peak_minus_import_bytes'] / mib:.0f} |"
            )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), help="defaults to all four")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 128])
    parser.add_argument(
        "--xla",
        choices=("both", "off", "on"),
        help="without XLA, with it (jit_compile=True), or both (the default); XLA only for --xla-models",
    )
    parser.add_argument(
        "--xla-models",
        nargs="+",
        default=["lenet300", "lenet5"],
        choices=list(MODELS),
        help="models also timed with XLA (on CPU, XLA compiles the MobileNetV2 and ResNet50 "
        "convolutions into steps about ten times slower than without)",
    )
    parser.add_argument("--rounds", type=int, default=4, help="timed rounds per model and setting, at least")
    parser.add_argument(
        "--setting-seconds",
        type=float,
        default=45.0,
        help=f"more rounds (up to {MAX_ROUNDS}) where they fit in about this many seconds per setting",
    )
    parser.add_argument(
        "--round-seconds", type=float, default=1.5, help="about how long one round of the dense model trains"
    )
    parser.add_argument("--rss-batch", type=int, default=32, help="batch size of the peak-memory runs")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak resident memory runs")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["scl"],
        choices=list(VARIANTS),
        help="what to time against the dense model (see VARIANTS); scl_graph_update is keras_scl "
        "with SCLOptimizer(jit_compile=False), the update before XLA",
    )
    parser.add_argument("--out-name", default="overhead.json", help="file name of the results in --out-dir")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2 short rounds, no peak memory; LeNets and no XLA unless --models, --xla say otherwise",
    )
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    parser.add_argument("--table", metavar="JSON", help="print the Markdown table of a results file and exit")
    parser.add_argument(
        "--resummarize", metavar="JSON", help="add the targets and whether they are met to a results file and exit"
    )
    parser.add_argument("--rss-child", nargs=3, metavar=("MODEL", "VARIANT", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.table:
        print(table(args.table))
        return
    if args.resummarize:
        with open(args.resummarize) as f:
            data = json.load(f)
        check_targets(data["results"])
        data["targets_met"] = all(row["met"] for row in data["results"] if row["met"] is not None)
        with open(args.resummarize, "w") as f:
            json.dump(data, f, indent=2)
        return
    if args.rss_child:
        name, variant, batch = args.rss_child
        rss_child(name, variant, int(batch))
        return
    if "scl" not in args.variants:
        parser.error("--variants must include scl")
    if args.quick:
        args.rounds, args.round_seconds, args.setting_seconds, args.no_rss = 2, 0.2, 0.0, True
    args.models = args.models or (["lenet300", "lenet5"] if args.quick else list(MODELS))
    args.xla = args.xla or ("off" if args.quick else "both")
    settings = {"off": [False], "on": [True], "both": [False, True]}[args.xla]
    start = time.perf_counter()
    results = []
    for name in args.models:
        for batch_size in args.batch_sizes:
            for jit_compile in settings:
                if jit_compile and name not in args.xla_models:
                    continue
                row = {"model": name, "batch_size": batch_size, "jit_compile": jit_compile}
                row.update(
                    measure(
                        name, batch_size, jit_compile, args.rounds, args.round_seconds, args.variants, args.setting_seconds
                    )
                )
                results.append(row)
                ratios = ", ".join(f"{key} {r['median_of_paired']:.3f}" for key, r in row["ratio"].items())
                print(
                    f"{name:12s} batch {batch_size:4d} xla {str(jit_compile):5s} "
                    f"dense {row['seconds_per_step']['dense']['median'] * 1e3:8.2f} ms; ratios: {ratios}",
                    flush=True,
                )
    memory = {}
    if not args.no_rss:
        for name in args.models:
            memory[name] = measure_rss(name, args.rss_batch)
            print(name, "peak RSS MiB", {k: round(v["peak_rss_bytes"] / 2**20) for k, v in memory[name].items()}, flush=True)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, args.out_name), "w") as f:
        json.dump(
            {
                **provenance.header("overhead.py", argv),
                "quick": args.quick,
                "threads": {
                    "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                },
                "load_average_at_end": os.getloadavg(),
                "seconds": time.perf_counter() - start,
                "results": check_targets(results),
                "targets_met": all(row["met"] for row in results if row["met"] is not None),
                "peak_rss": {"batch_size": args.rss_batch, "steps": RSS_STEPS, "jit_compile": False, "models": memory},
            },
            f,
            indent=2,
        )


if __name__ == "__main__":
    main()
