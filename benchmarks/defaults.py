"""What a user who changes nothing gets: the library defaults on several tasks.

    python benchmarks/defaults.py --data-dir ../shared/tfds                # every case
    python benchmarks/defaults.py --data-dir ../shared/tfds --cases lenet300  # some of them

Every case trains a network densely and with keras_scl's defaults, in the
same process, from the same initial weights, the way the README's
quickstart does it: `keras.optimizers.Adam(1e-3)` (constant learning rate),
batch 128, a plain `compile` (no `jit_compile`), and for keras_scl
`prune_scl(model)` with `fit(..., callbacks=[keras_scl.SCLCallback()])` and
nothing else set. No case has a setting of its own.

Cases (`--cases` picks by name prefix):
- `lenet300-<E>-scratch` / `lenet300-<E>-trained`, LeNet-300-100 on MNIST,
  and `cnn-<E>-...`, a small CNN (Conv 32, pool, Conv 64, pool, Dense 128,
  Dense 10) on MNIST, for E = 5, 10 and 20 epochs. `scratch`: both start
  from the same fresh initialisation and train E epochs. `trained`: the
  dense network of the scratch case is pruned (`prune_scl(dense)`) and
  trained E more epochs, against the dense network trained the same E more
  epochs.
- `sequence-<E>`: Embedding + LSTM on a generated sequence task (which of
  four marker tokens occurs most often in a sequence of random tokens).
- `first-marker-<E>`: the same network on the suite's first sequence task
  (which marker comes first). Run and reported, but outside the target:
  the dense network itself does not learn it in 10 epochs on three seeds
  of four (docs/design.md), so it measures when a plateau is left more
  than what pruning costs.
- `noisy-shifted-mnist-<E>`: the small CNN on a harder image task made from
  MNIST: a tenth of the training set, each digit shifted by up to 4 pixels
  and covered in Gaussian noise (standard deviation 0.3), test images
  treated alike.

Target (issue 17): every case but `first-marker-<E>` at least 80 % sparse
and at most 1.0 point of test accuracy below dense, at most 0.5 with 20
epochs. Results are merged into `defaults.json` case by case, so cases can
run in separate invocations.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import mnist_common  # noqa: E402
import mnist_lenet300  # noqa: E402
import provenance  # noqa: E402

import keras_scl  # noqa: E402
from keras_scl import callback as callback_module  # noqa: E402

EPOCHS = (5, 10, 20)
BATCH = 128
MIN_SPARSITY = 0.80


def max_accuracy_drop(epochs):
    """The target: points of test accuracy keras_scl may lose against dense."""
    return 0.5 if epochs >= 20 else 1.0


# --- Networks -----------------------------------------------------------------
def small_cnn(input_shape=(28, 28, 1)):
    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),
    ])


def sequence_model(vocabulary, classes):
    return keras.Sequential([
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(vocabulary, 16),
        keras.layers.LSTM(32),
        keras.layers.Dense(classes),
    ])


# --- Data ---------------------------------------------------------------------
def first_marker_task(n_train=8000, n_test=2000, length=24, vocabulary=32, markers=4, seed=0):
    """Sequences of random tokens; the label is which of the marker tokens
    `1..markers` comes first. Every sequence holds at least one marker.

    Tokens `markers + 1 ..` are filler; the LSTM has to remember order, not
    only presence, since most sequences hold several markers.
    """
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    x = rng.integers(markers + 1, vocabulary, size=(n, length))
    # Each marker appears at a random position with probability 1/2 (at least one appears).
    present = rng.random((n, markers)) < 0.5
    present[~present.any(axis=1), 0] = True
    for i in range(n):
        ids = np.flatnonzero(present[i])
        positions = rng.choice(length, size=len(ids), replace=False)
        x[i, positions] = ids + 1
    is_marker = (x >= 1) & (x <= markers)
    first = np.argmax(is_marker, axis=1)
    y = (x[np.arange(n), first] - 1).astype("int32")
    x = x.astype("int32")
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def majority_marker_task(n_train=8000, n_test=2000, length=24, vocabulary=32, markers=4, seed=0):
    """Sequences of random tokens holding 4 to 13 marker tokens `1..markers`;
    the label is the marker that occurs most often (always strictly).

    The LSTM has to count each marker over the whole sequence. Chosen as the
    suite's sequence task because the dense network learns it within the
    shortest run (5 epochs) on every seed tried (0-4), so a miss is what
    pruning costs, not a late escape from a plateau.
    """
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    x = rng.integers(markers + 1, vocabulary, size=(n, length))
    y = rng.integers(0, markers, size=n)
    for i in range(n):
        counts = rng.multinomial(rng.integers(3, 7), np.full(markers, 1.0 / markers))
        counts[y[i]] = counts.max() + 1
        tokens = np.repeat(np.arange(1, markers + 1), counts)
        x[i, rng.choice(length, size=len(tokens), replace=False)] = tokens
    x, y = x.astype("int32"), y.astype("int32")
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def noisy_shifted(images, labels, rng, shift=4, noise=0.3):
    """Each image shifted by up to `shift` pixels each way (zero fill) and noised."""
    out = np.zeros_like(images)
    h, w = images.shape[1:3]
    for i, image in enumerate(images):
        dy, dx = rng.integers(-shift, shift + 1, size=2)
        src = image[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
        out[i, max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    out = np.clip(out + rng.normal(0.0, noise, out.shape).astype("float32"), 0.0, 1.0)
    return out, labels


# --- Training -----------------------------------------------------------------
def _fit(model, train, epochs, callbacks=()):
    """The quickstart's compile and fit, unchanged; returns seconds per epoch."""
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(*train, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=list(callbacks))
    return (time.perf_counter() - start) / epochs


def _copy(model):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _error(model, test):
    return 100.0 * (1.0 - mnist_common.test_accuracy(model, test))


def _compare(name, start_model, train, test, epochs, start, extra=None):
    """Trains a copy of `start_model` densely and `prune_scl(start_model)` with
    the defaults, each for `epochs`; returns the case's row."""
    dense = _copy(start_model)
    dense_seconds = _fit(dense, train, epochs)
    pruned = keras_scl.prune_scl(start_model)
    scl_seconds = _fit(pruned, train, epochs, [keras_scl.SCLCallback()])
    final = keras_scl.strip_scl(pruned)
    rows = keras_scl.sparsity_report(final)
    dense_error, scl_error = _error(dense, test), _error(final, test)
    sparsity = keras_scl.global_sparsity(rows)
    drop = scl_error - dense_error
    row = {
        "case": name,
        "epochs": epochs,
        "start": start,
        "dense_test_error_percent": dense_error,
        "scl_test_error_percent": scl_error,
        "points_below_dense": drop,
        "sparsity": sparsity,
        "compression": sum(r.total for r in rows) / max(sum(r.live for r in rows), 1),
        "layer_sparsity": {f"{r.layer}/{r.weight}": r.sparsity for r in rows},
        "dense_seconds_per_epoch": dense_seconds,
        "scl_seconds_per_epoch": scl_seconds,
        "max_points_below_dense": max_accuracy_drop(epochs),
        "min_sparsity": MIN_SPARSITY,
        "auto_mask_fraction": callback_module.AUTO_MASK_FRACTION,
        "met": bool(sparsity >= MIN_SPARSITY and drop <= max_accuracy_drop(epochs)),
        **(extra or {}),
    }
    print(
        f"{name}: dense {dense_error:.2f} %, keras_scl {scl_error:.2f} % ({drop:+.2f} points) at "
        f"{sparsity:.2%} sparse -> {'met' if row['met'] else 'MISSED'}",
        flush=True,
    )
    return dense, row


def run_mnist_family(family, build, flat, data_dir, wanted):
    train, test = mnist_common.load_mnist(data_dir, flat=flat)
    if not flat:
        train, test = (train[0][..., None], train[1]), (test[0][..., None], test[1])
    for epochs in EPOCHS:
        names = [f"{family}-{epochs}-scratch", f"{family}-{epochs}-trained"]
        if not any(wanted(n) for n in names):
            continue
        keras.utils.set_random_seed(0)
        fresh = build()
        dense, row = _compare(names[0], fresh, train, test, epochs, "scratch")
        yield row
        if wanted(names[1]):
            keras.utils.set_random_seed(0)
            _, row = _compare(names[1], dense, train, test, epochs, "trained")
            yield row


def run_sequence(family, task, wanted, extra=None):
    train, test = task()
    for epochs in EPOCHS:
        name = f"{family}-{epochs}"
        if wanted(name):
            keras.utils.set_random_seed(0)
            yield _compare(name, sequence_model(32, 4), train, test, epochs, "scratch", extra)[1]


def run_noisy_shifted(data_dir, wanted):
    (x, y), (xt, yt) = mnist_common.load_mnist(data_dir)
    rng = np.random.default_rng(0)
    train = noisy_shifted(x[:6000, ..., None], y[:6000], rng)
    test = noisy_shifted(xt[..., None], yt, rng)
    for epochs in EPOCHS:
        name = f"noisy-shifted-mnist-{epochs}"
        if wanted(name):
            keras.utils.set_random_seed(0)
            yield _compare(name, small_cnn(), train, test, epochs, "scratch")[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cases", nargs="*", default=None, help="case-name prefixes (default: all)")
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    parser.add_argument(
        "--mask-fraction",
        type=float,
        default=None,
        help="for choosing the default schedule: the share of epochs the masks train (default: the library's)",
    )
    parser.add_argument("--table", action="store_true", help="print the Markdown table of defaults.json and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_table(os.path.join(args.out_dir, "defaults.json")))
        return
    if args.mask_fraction is not None:
        callback_module.AUTO_MASK_FRACTION = args.mask_fraction
    wanted = (lambda name: True) if not args.cases else (lambda name: any(name.startswith(c) for c in args.cases))

    os.makedirs(args.out_dir, exist_ok=True)
    results = Results(os.path.join(args.out_dir, "defaults.json"), provenance.header("defaults.py", argv))
    for rows in (
        run_mnist_family("lenet300", mnist_lenet300.build_model, True, args.data_dir, wanted),
        run_mnist_family("cnn", small_cnn, False, args.data_dir, wanted),
        run_sequence("sequence", majority_marker_task, wanted),
        run_sequence("first-marker", first_marker_task, wanted, {"in_target": False}),
        run_noisy_shifted(args.data_dir, wanted),
    ):
        for row in rows:
            results.add(row)
    missed = [r["case"] for r in results.cases.values() if not r["met"] and r.get("in_target", True)]
    print(f"{len(results.cases)} cases in {results.path}; missed: {missed or 'none'}")


def markdown_table(path):
    """The docs' table of a `defaults.json`."""
    with open(path) as f:
        cases = json.load(f)["cases"]
    lines = [
        "| case | epochs | start | dense error % | keras_scl error % | points below dense | sparsity % | target met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(cases, key=lambda r: (not r.get("in_target", True), r["case"].split("-")[0], r["epochs"], r["start"] == "trained")):
        lines.append(
            f"| {r['case']} | {r['epochs']} | {r['start']} | {r['dense_test_error_percent']:.2f} | "
            f"{r['scl_test_error_percent']:.2f} | {r['points_below_dense']:+.2f} (max {r['max_points_below_dense']:g}) | "
            f"{100 * r['sparsity']:.2f} | {_verdict(r)} |"
        )
    return "\n".join(lines)


def _verdict(row):
    if not row.get("in_target", True):
        return "outside the target" + (" (met)" if row["met"] else " (missed)")
    return "yes" if row["met"] else "**no**"


class Results:
    """`defaults.json`, rewritten after every case, so a long run that is
    stopped keeps what it finished; cases of earlier runs are kept unless
    re-run."""

    def __init__(self, path, header):
        self.path, self.header = path, header
        previous = {}
        if os.path.exists(path):
            with open(path) as f:
                previous = json.load(f)
        self.cases = {row["case"]: row for row in previous.get("cases", [])}
        self.runs = previous.get("runs", []) + [{**header, "cases": []}]

    def add(self, row):
        self.cases[row["case"]] = {**row, "commit": self.header["commit"]}
        self.runs[-1]["cases"].append(row["case"])
        with open(self.path, "w") as f:
            json.dump({"runs": self.runs, "cases": sorted(self.cases.values(), key=lambda r: r["case"])}, f, indent=2)

if __name__ == "__main__":
    main()
