"""Shipping pruned networks: size, multiply-adds and latency of dense, stripped, shrunk and tfmot models.

    python benchmarks/deployment.py --data-dir ../shared/tfds
    python benchmarks/deployment.py --network lenet5 --epochs lenet5 5 5 --data-dir ../shared/tfds
    python benchmarks/deployment.py --table          # the Markdown table of results/deployment.json
    python benchmarks/deployment.py --gather-check   # LiteRT time of a shrunk MLP's input gather

For LeNet-300-100 and LeNet-5-Caffe (MNIST, seed `--seed`) it trains, with
the functions of `run.py` and the recipes it benchmarks (`RECIPE` of each
example; `--epochs NETWORK MASK FINETUNE` shortens one, and the JSON records
the recipe used):
- `dense`: the dense network (`mnist_common.train_dense`);
- `scl_stripped`: keras_scl's recipe on it, stripped (`strip_scl`);
- `scl_shrunk`: that model after `keras_scl.shrink`;
- `tfmot_stripped`: tfmot `prune_low_magnitude`, uniform over the layers, to
  keras_scl's global sparsity, from the same dense network, with the same
  epochs, optimizer and schedule (`run.run_tfmot`, the `tfmot_uniform`
  baseline of `run.py`, in a Keras 2 child process), stripped.
For MobileNetV2 (`keras.applications`, `weights=None`, 64x64x3, 10
classes), which has no data set here, only latency and size mean anything:
it is pruned briefly by keras_scl on generated data in budget mode
(`--mobilenet-sparsity`), and `dense` (the untrained initialisation),
`scl_stripped` and `scl_shrunk` are compared.

Per model (row): parameters; multiply-adds per example of its Dense and
convolution layers at the shapes it has (a shrunk model's narrower ones;
zeros are counted: what a dense kernel computes); the SavedModel's
`variables/` bytes and their .tar.gz (`keras_scl.deployment_size`); the
`.tflite` bytes (`keras_scl.export_tflite`) in float32 and dynamic-range
int8, each with and without the converter's sparse weight encoding; the
latency of each `.tflite` in LiteRT (`ai_edge_litert`, 2 threads, the
default XNNPACK delegate, or none where XNNPACK refuses the file) and of the
exported SavedModel's `serve` function (`tf.saved_model.load`), at batch 1
and 256; and every runtime's largest output difference from the stripped
Keras model, with the argmax agreement (and the test error for MNIST).

Latency: for each batch size and runtime the rows of one network are timed
one after the other, in an order that rotates, for `--rounds` rounds, so
the load of a shared machine hits them alike. In each slot a fresh
interpreter (or the loaded SavedModel) is run once untimed, then timed
call by call for about `--slot-seconds`; the result is the median of all
timed calls, with its quartiles.

Results (with the targets of issue 18, met or missed) are merged into
`<out-dir>/deployment.json` after each network.
"""

import argparse
import collections
import dataclasses
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import provenance  # noqa: E402
import run  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from ai_edge_litert.interpreter import OpResolverType  # noqa: E402

import keras_scl  # noqa: E402

NETWORKS = ("lenet300", "lenet5", "mobilenetv2")
LABELS = {
    "dense": "dense",
    "scl_stripped": "keras_scl, stripped",
    "scl_shrunk": "keras_scl, shrunk",
    "tfmot_stripped": "tfmot uniform, stripped",
}
TFLITE = {
    "float32": (None, False),
    "float32_sparse": (None, True),
    "dynamic_int8": ("dynamic_int8", False),
    "dynamic_int8_sparse": ("dynamic_int8", True),
}
BATCHES = (1, 256)
THREADS = 2
MOBILENET_SHAPE = (64, 64, 3)
QUICK = dict(train_limit=6000, test_limit=2000, recipe=dict(mask_epochs=1, finetune_epochs=1, initial_mask=0.02))


# --------------------------------------------------------------- the models


def mnist_models(network, recipe, data, data_dir, seed, train_limit, verbose):
    """Dense, keras_scl stripped and shrunk, tfmot stripped: `(models, facts)`."""
    module, _ = run.NETWORKS[network]
    train, _ = data
    keras.utils.set_random_seed(seed)
    dense, _, _ = run.mnist_common.train_dense(module.build_model(), train, recipe, verbose=verbose)
    keras.utils.set_random_seed(seed)
    start = dense if recipe.prune_trained else module.build_model()
    pruned, _, _ = run.mnist_common.train_scl(start, train, recipe, verbose=verbose)
    stripped = keras_scl.strip_scl(pruned)
    shrunk, report = keras_scl.shrink(stripped, verbose=False, return_report=True)
    models = {"dense": dense, "scl_stripped": stripped, "scl_shrunk": shrunk}
    facts = {"shrink_widths": [w._asdict() for w in report.widths]}
    if not run.tfmot_available():
        facts["tfmot"] = "skipped: tensorflow-model-optimization / tf-keras not installed (pip install -e '.[bench]')"
        return models, facts
    target = round(keras_scl.global_sparsity(keras_scl.sparsity_report(stripped)), 4)
    models["tfmot_stripped"], _ = run.run_tfmot(
        network, recipe, target, seed, data_dir, train_limit, dense if recipe.prune_trained else None
    )
    return models, {**facts, "tfmot_target_sparsity": target}


def mobilenet_data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *MOBILENET_SHAPE), dtype="float32"), rng.integers(0, 10, size=n)


def mobilenet_models(seed, sparsity, mask_epochs, finetune_epochs, steps, verbose):
    """MobileNetV2 dense (untrained), pruned on generated data to `sparsity`, stripped, shrunk."""
    keras.utils.set_random_seed(seed)
    dense = keras.applications.MobileNetV2(input_shape=MOBILENET_SHAPE, weights=None, classes=10)
    pruned = keras_scl.prune_scl(dense, initial_mask=0.02)
    pruned.compile(
        optimizer=keras_scl.SCLOptimizer(keras.optimizers.Adam(1e-3)),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    )
    x, y = mobilenet_data(8 * 32, seed=1)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).repeat()
    clock = time.perf_counter()
    pruned.fit(
        data,
        epochs=mask_epochs + finetune_epochs,
        steps_per_epoch=steps,
        verbose=verbose,
        callbacks=[keras_scl.SCLCallback(freeze_masks_at_epoch=mask_epochs, target_sparsity=sparsity)],
    )
    seconds = time.perf_counter() - clock
    stripped = keras_scl.strip_scl(pruned)
    shrunk, report = keras_scl.shrink(stripped, verbose=False, return_report=True)
    facts = {
        "pruning": dict(
            data="generated: uniform [0, 1) images, random labels (256 examples, repeated)",
            target_sparsity=sparsity,
            mask_epochs=mask_epochs,
            finetune_epochs=finetune_epochs,
            steps_per_epoch=steps,
            batch_size=32,
            initial_mask=0.02,
            optimizer="SCLOptimizer(Adam(1e-3))",
            seconds=seconds,
        ),
        "shrink_widths": [w._asdict() for w in report.widths],
        "shrink_full_width": dict(report.full_width),
    }
    return {"dense": dense, "scl_stripped": stripped, "scl_shrunk": shrunk}, facts


# ------------------------------------------------------------- the runtimes


def _interpreter(path, batch, sample_shape, resolver):
    interpreter = Interpreter(model_path=path, num_threads=THREADS, experimental_op_resolver_type=resolver)
    (inputs,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(inputs["index"], (batch, *sample_shape))
    interpreter.allocate_tensors()
    return interpreter, inputs["index"], interpreter.get_output_details()[0]["index"]


def _resolver(path, sample_shape):
    """XNNPACK (LiteRT's default) where it takes the file, else the builtin kernels alone."""
    try:
        _interpreter(path, 1, sample_shape, OpResolverType.AUTO)
        return "xnnpack", OpResolverType.AUTO
    except RuntimeError:  # XNNPACK refuses sparse int8 weights ("failed to delegate")
        return "no_delegate", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES


def _litert_predict(path, resolver, x, batch=250):
    interpreter, i, o = _interpreter(path, batch, x.shape[1:], resolver)
    out = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        if len(chunk) < batch:
            interpreter, i, o = _interpreter(path, len(chunk), x.shape[1:], resolver)
        interpreter.set_tensor(i, chunk)
        interpreter.invoke()
        out.append(interpreter.get_tensor(o).copy())
    return np.concatenate(out)


def _serve(loaded):
    return loaded.serve if hasattr(loaded, "serve") else loaded.signatures["serving_default"]


def _savedmodel_predict(serve, x, batch=250):
    out = [serve(tf.constant(x[s : s + batch])) for s in range(0, len(x), batch)]
    return np.concatenate([np.asarray(keras.tree.flatten(o)[0]) for o in out])


def _agreement(outputs, reference, labels):
    entry = {
        "max_abs_difference_from_stripped": float(np.abs(outputs.astype(np.float64) - reference).max()),
        "argmax_differs_from_stripped": int(np.sum(outputs.argmax(1) != reference.argmax(1))),
    }
    if labels is not None:
        entry["test_error_percent"] = 100 * float(np.mean(outputs.argmax(1) != labels))
    return entry


def measure_row(model, directory, x, labels, reference, files=tuple(TFLITE)):
    """Everything but latency for one model; also returns its runners for timing.

    `files` names the `.tflite` variants (keys of `TFLITE`) to write and run.
    """
    rows = keras_scl.sparsity_report(model)
    sizes = keras_scl.deployment_size(model)
    row = {
        "params": int(model.count_params()),
        "multiply_adds": sum(r.dense_flops for r in rows) // 2,
        "sparsity": keras_scl.global_sparsity(rows),
        "live_weights": sum(r.live for r in rows),
        "variables_bytes": sizes["variables_bytes"],
        "variables_gzip_bytes": sizes["variables_gzip_bytes"],
        "keras": _agreement(model.predict(x, batch_size=250, verbose=0), reference, labels),
    }
    saved = os.path.join(directory, "savedmodel")
    model.export(saved, verbose=False)
    loaded = tf.saved_model.load(saved)  # kept: its serving function reads its variables
    row["savedmodel"] = _agreement(_savedmodel_predict(_serve(loaded), x), reference, labels)
    runners = {"savedmodel": loaded}
    row["tflite"] = {}
    for name in files:
        quantize, sparse = TFLITE[name]
        path = os.path.join(directory, f"{name}.tflite")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the XNNPACK one: `_resolver` handles it
            try:
                size = keras_scl.export_tflite(model, path, quantize=quantize, sparse=sparse)
            except RuntimeError as e:  # LiteRT computes this sparse encoding wrongly
                row["tflite"][name] = {"export_error": str(e)}
                continue
        resolver_name, resolver = _resolver(path, x.shape[1:])
        row["tflite"][name] = {
            "bytes": size,
            "resolver": resolver_name,
            **_agreement(_litert_predict(path, resolver, x), reference, labels),
        }
        runners[f"litert_{name}"] = (path, resolver)
    return row, runners


# ------------------------------------------------------------------ timing


def _prepared(runner, x):
    """A no-argument callable running one batch `x`, set up (untimed)."""
    if isinstance(runner, tuple):
        path, resolver, *columns = runner  # `columns`: the input features the file reads
        if columns:
            x = x[:, columns[0]]
        interpreter, i, _ = _interpreter(path, len(x), x.shape[1:], resolver)
        interpreter.set_tensor(i, x)
        return interpreter.invoke
    serve, tensor = _serve(runner), tf.constant(x)
    return lambda: serve(tensor)


def time_rows(runners, x, rounds, slot_seconds, log=print):
    """Latency of every (row, runtime, batch), the rows alternating.

    `runners` maps row -> runtime -> runner. Returns row -> runtime ->
    `batch_<n>` -> `{median_ms, p25_ms, p75_ms, calls}`.
    """
    calls = collections.defaultdict(list)
    rows = list(runners)
    runtimes = list(dict.fromkeys(r for row in rows for r in runners[row]))
    for round_ in range(rounds):
        order = rows[round_ % len(rows) :] + rows[: round_ % len(rows)]
        started = time.perf_counter()
        for batch in BATCHES:
            for runtime in runtimes:
                for row in order:
                    if runtime not in runners[row]:
                        continue
                    fn = _prepared(runners[row][runtime], x[:batch])
                    fn()  # warm-up, excluded
                    clock = time.perf_counter()
                    fn()
                    first = time.perf_counter() - clock
                    times = [first]
                    for _ in range(int(np.clip(slot_seconds / max(first, 1e-6), 2, 500))):
                        clock = time.perf_counter()
                        fn()
                        times.append(time.perf_counter() - clock)
                    calls[(row, runtime, batch)] += times
        log(f"  timing round {round_ + 1}/{rounds}: {time.perf_counter() - started:.0f} s")
    out = {row: {} for row in rows}
    for (row, runtime, batch), times in calls.items():
        ms = 1000 * np.asarray(times)
        out[row].setdefault(runtime, {})[f"batch_{batch}"] = {
            "median_ms": float(np.median(ms)),
            "p25_ms": float(np.percentile(ms, 25)),
            "p75_ms": float(np.percentile(ms, 75)),
            "calls": len(ms),
        }
    return out


def gather_check(widths, rounds, slot_seconds, directory, log=print):
    """LiteRT latency of the input gather of a shrunk MLP, with random weights.

    Times, alternating, float32 files of: the dense MLP 784-300-100-10; the
    MLP with the shrunk `widths` (input features, then units) behind a
    gather of the features on the last axis (`keras.ops.take(x, i,
    axis=-1)`, what `shrink` wrote before commit e3d581e); behind the
    transposed gather `shrink` writes now; and without a gather, fed the
    kept features (as when they are selected before the model).
    """
    rng = np.random.default_rng(0)
    kept = np.sort(rng.choice(784, widths[0], replace=False))

    def mlp(units, gather):
        inputs = keras.Input((784,) if gather else (units[0],))
        x = inputs
        if gather == "last_axis":
            x = keras.ops.take(x, kept, axis=-1)
        elif gather == "transposed":
            x = keras.ops.transpose(keras.ops.take(keras.ops.transpose(x), kept, axis=0))
        for i, n in enumerate(units[1:]):
            x = keras.layers.Dense(n, activation="relu" if i < len(units) - 2 else None)(x)
        return keras.Model(inputs, x)

    variants = {
        "dense": (mlp([784, 300, 100, 10], None), None),
        "shrunk_gather_last_axis": (mlp(widths, "last_axis"), None),
        "shrunk_gather_transposed": (mlp(widths, "transposed"), None),
        "shrunk_no_gather": (mlp(widths, None), kept),
    }
    runners = {}
    for name, (model, columns) in variants.items():
        path = os.path.join(directory, f"{name}.tflite")
        keras_scl.export_tflite(model, path)
        runners[name] = {"litert_float32": (path, OpResolverType.AUTO) + (() if columns is None else (columns,))}
    x = np.random.default_rng(1).random((max(BATCHES), 784), dtype="float32")
    latency = time_rows(runners, x, rounds, slot_seconds, log)
    return {"widths": list(widths), "latency": {name: t["litert_float32"] for name, t in latency.items()}}


# ----------------------------------------------------------------- targets


def _ms(row, runtime, batch):
    return row["latency"].get(runtime, {}).get(f"batch_{batch}", {}).get("median_ms")


def _smallest_float32(rows, keys):
    sizes = [
        (rows[k]["tflite"][name]["bytes"], f"{k}/{name}")
        for k in keys
        for name in ("float32", "float32_sparse")
        if "bytes" in rows[k]["tflite"].get(name, {})
    ]
    return min(sizes)


def targets(network, rows):
    """The targets of issue 18 for `network`, each with its numbers and met or missed."""
    if network == "mobilenetv2":
        return {}
    dense, shrunk = rows["dense"], rows["scl_shrunk"]
    dense_f32 = dense["tflite"]["float32"]["bytes"]
    smallest, which = _smallest_float32(rows, ["scl_stripped", "scl_shrunk"])
    speedup = {
        runtime: _ms(dense, runtime, 256) / _ms(shrunk, runtime, 256)
        for runtime in ("litert_float32", "litert_dynamic_int8", "savedmodel")
        if _ms(dense, runtime, 256) and _ms(shrunk, runtime, 256)
    }
    out = {
        "tflite_float32_tenfold": {
            "goal": "smallest float32 .tflite of keras_scl <= 1/10 of the dense float32 .tflite",
            "dense_bytes": dense_f32,
            "smallest_bytes": smallest,
            "smallest_is": which,
            "ratio": dense_f32 / smallest,
            "met": smallest * 10 <= dense_f32,
        }
    }
    if network == "lenet300":
        macs = dense["multiply_adds"] / shrunk["multiply_adds"]
        out["multiply_adds_fourfold"] = {
            "goal": "shrunk >= 4x fewer multiply-adds than dense",
            "dense": dense["multiply_adds"],
            "shrunk": shrunk["multiply_adds"],
            "ratio": macs,
            "met": macs >= 4,
        }
        out["litert_speedup_batch256"] = {
            "goal": "shrunk >= 2.5x lower LiteRT latency than dense at batch 256 (float32 files, XNNPACK)",
            "dense_ms": _ms(dense, "litert_float32", 256),
            "shrunk_ms": _ms(shrunk, "litert_float32", 256),
            "ratio": speedup["litert_float32"],
            "ratio_other_runtimes": speedup,
            "met": speedup["litert_float32"] >= 2.5,
        }
        differs = shrunk["keras"]["argmax_differs_from_stripped"]
        out["identical_argmax"] = {
            "goal": "shrunk and stripped (Keras) give the same argmax on the whole test set",
            "argmax_differs": differs,
            "argmax_differs_litert_float32": shrunk["tflite"]["float32"]["argmax_differs_from_stripped"],
            "met": differs == 0,
        }
    else:
        out["faster_batch256"] = {
            "goal": "shrunk faster than dense at batch 256 in LiteRT (float32 files, XNNPACK); report the factor",
            "dense_ms": _ms(dense, "litert_float32", 256),
            "shrunk_ms": _ms(shrunk, "litert_float32", 256),
            "ratio": speedup["litert_float32"],
            "ratio_other_runtimes": speedup,
            "met": speedup["litert_float32"] > 1,
        }
    return out


# -------------------------------------------------------------------- main


def one_network(network, args, log=print):
    started = time.perf_counter()
    entry = {}
    if network == "mobilenetv2":
        x, _ = mobilenet_data(256, seed=2)
        labels = None
        steps = 4 if args.quick else args.mobilenet_steps
        models, facts = mobilenet_models(
            args.seed, args.mobilenet_sparsity, *args.mobilenet_epochs, steps, args.verbose
        )
        entry["evaluated_on"] = "256 generated images (uniform [0, 1)); outputs are softmax probabilities"
        # Each conversion of MobileNetV2 takes a minute here: the sparse encodings are left out.
        files = ("float32", "dynamic_int8")
    else:
        module, flat = run.NETWORKS[network]
        limits = QUICK if args.quick else {}
        recipe = dataclasses.replace(module.RECIPE, **limits.get("recipe", {}))
        if network in args.epochs:
            recipe = dataclasses.replace(recipe, mask_epochs=args.epochs[network][0], finetune_epochs=args.epochs[network][1])
        data = run.mnist_common.load_mnist(
            args.data_dir, flat=flat, train_limit=limits.get("train_limit"), test_limit=limits.get("test_limit")
        )
        models, facts = mnist_models(
            network, recipe, data, args.data_dir, args.seed, limits.get("train_limit"), args.verbose
        )
        x, labels = data[1]
        entry["recipe"] = dataclasses.asdict(recipe)
        entry["recipe_differs_from_run_py"] = {
            k: {"run_py": v, "used": entry["recipe"][k]}
            for k, v in dataclasses.asdict(module.RECIPE).items()
            if entry["recipe"][k] != v
        }
        entry["evaluated_on"] = f"MNIST test set ({len(x)} images); outputs are logits"
        files = tuple(TFLITE)
    entry.update(seed=args.seed, **facts)
    entry["training_seconds"] = time.perf_counter() - started
    reference = models["scl_stripped"].predict(x, batch_size=250, verbose=0).astype(np.float64)
    rows, runners = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, model in models.items():
            log(f"  measuring {key}")
            directory = os.path.join(tmp, key)
            os.makedirs(directory)
            rows[key], runners[key] = measure_row(model, directory, x, labels, reference, files)
        sample = np.concatenate([x] * int(np.ceil(max(BATCHES) / len(x))))[: max(BATCHES)]
        latency = time_rows(runners, sample, 2 if args.quick else args.rounds, args.slot_seconds, log)
    for key in rows:
        rows[key]["latency"] = latency[key]
    entry["rows"] = rows
    entry["targets"] = targets(network, rows)
    entry["wall_seconds"] = time.perf_counter() - started
    return entry


def write(path, header, network, entry, quick):
    result = {}
    if os.path.exists(path):
        with open(path) as f:
            result = json.load(f)
        if result.get("quick") != quick:
            result = {}  # a smoke run never mixes with a real one
    result.update(header, quick=quick)
    result.setdefault("networks", {})[network] = {"command": header["command"], "commit": header["commit"], **entry}
    with open(path, "w") as f:
        json.dump(result, f, indent=1)


# ------------------------------------------------------------------- table


def _kb(n):
    return f"{n / 1000:,.1f}"


def _tflite_kb(row, name):
    entry = row["tflite"].get(name)
    if entry is None:
        return "-"  # not written for this network
    return _kb(entry["bytes"]) if "bytes" in entry else "fails"


def _latency(row, runtime, batch):
    ms = _ms(row, runtime, batch)
    if ms is None:
        return "-"
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def table(result):
    """Markdown tables of a deployment.json: one per network, one row per model."""
    names = {"lenet300": "LeNet-300-100", "lenet5": "LeNet-5-Caffe", "mobilenetv2": "MobileNetV2 (64x64, 10 classes)"}
    lines = []
    for network, entry in result["networks"].items():
        lines += [f"**{names.get(network, network)}** (`{entry['command']}`, commit {entry['commit']})", ""]
        lines.append(
            "| model | params | multiply-adds | variables/ .tar.gz KB | .tflite f32 KB (sparse enc.) "
            "| .tflite int8 KB (sparse enc.) | LiteRT f32 ms b1 / b256 | LiteRT int8 ms b256 "
            "| SavedModel ms b1 / b256 | max diff vs stripped | argmax differs | test error % |"
        )
        lines.append("|" + "---|" + "--:|" * 11)
        for key, row in entry["rows"].items():
            error = row["keras"].get("test_error_percent")
            lines.append(
                f"| {LABELS[key]} | {row['params']:,} | {row['multiply_adds']:,} | {_kb(row['variables_gzip_bytes'])} "
                f"| {_tflite_kb(row, 'float32')} ({_tflite_kb(row, 'float32_sparse')}) "
                f"| {_tflite_kb(row, 'dynamic_int8')} ({_tflite_kb(row, 'dynamic_int8_sparse')}) "
                f"| {_latency(row, 'litert_float32', 1)} / {_latency(row, 'litert_float32', 256)} "
                f"| {_latency(row, 'litert_dynamic_int8', 256)} "
                f"| {_latency(row, 'savedmodel', 1)} / {_latency(row, 'savedmodel', 256)} "
                f"| {row['keras']['max_abs_difference_from_stripped']:.3g} "
                f"| {row['keras']['argmax_differs_from_stripped']} "
                f"| {'-' if error is None else f'{error:.2f}'} |"
            )
        lines.append("")
        for target in entry.get("targets", {}).values():
            ratio = f" (factor {target['ratio']:.2f})" if "ratio" in target else ""
            lines.append(f"- {target['goal']}: {'met' if target['met'] else 'missed'}{ratio}")
        lines.append("")
    return "\n".join(lines)


def _epochs(values):
    network, mask, finetune = values
    if network not in ("lenet300", "lenet5"):
        raise argparse.ArgumentTypeError(f"Expected lenet300 or lenet5. Received: {network!r}")
    return network, (int(mask), int(finetune))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--epochs",
        nargs=3,
        action="append",
        default=[],
        metavar=("NETWORK", "MASK", "FINETUNE"),
        help="shorten a recipe: mask and fine-tune epochs of NETWORK (the dense training takes their sum)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds over the rows of a network")
    parser.add_argument("--slot-seconds", type=float, default=0.5, help="timed calls per slot: about this long")
    parser.add_argument("--mobilenet-sparsity", type=float, default=0.9)
    parser.add_argument("--mobilenet-epochs", type=int, nargs=2, default=[2, 1], metavar=("MASK", "FINETUNE"))
    parser.add_argument("--mobilenet-steps", type=int, default=40, help="steps per epoch of the MobileNetV2 pruning")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1+1 epochs on 6000 images, 2 rounds")
    parser.add_argument("--verbose", type=int, default=2)
    parser.add_argument("--table", action="store_true", help="print the Markdown table of <out-dir>/deployment.json")
    parser.add_argument(
        "--gather-check",
        action="store_true",
        help="only time the input gather of a shrunk LeNet-300-100 in LiteRT (random weights, its widths "
        "from deployment.json); adds `input_gather_check` to it",
    )
    args = parser.parse_args(argv)
    path = os.path.join(args.out_dir, "deployment.json")
    if args.table:
        with open(path) as f:
            print(table(json.load(f)))
        return
    if args.gather_check:
        with open(path) as f:
            result = json.load(f)
        widths = [w["after"] for w in result["networks"]["lenet300"]["shrink_widths"]]
        with tempfile.TemporaryDirectory() as tmp:
            check = gather_check(widths, args.rounds, args.slot_seconds, tmp)
        header = provenance.header("deployment.py", argv)
        result["input_gather_check"] = {"command": header["command"], "commit": header["commit"], **check}
        with open(path, "w") as f:
            json.dump(result, f, indent=1)
        print(json.dumps(result["input_gather_check"], indent=1))
        return
    args.epochs = dict(_epochs(e) for e in args.epochs)
    header = provenance.header("deployment.py", argv)
    os.makedirs(args.out_dir, exist_ok=True)
    for network in args.network:
        print(f"== {network}", flush=True)
        entry = one_network(network, args, log=lambda m: print(m, flush=True))
        write(path, header, network, entry, args.quick)
        print(json.dumps(entry["targets"], indent=1), flush=True)
        print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
