"""Shipping a pruned MNIST network: strip, shrink, SavedModel and LiteRT files.

    python benchmarks/deploy_shrink.py --network lenet300 --data-dir ../shared/tfds
    python benchmarks/deploy_shrink.py --network lenet5 --data-dir ../shared/tfds

1. The network is pruned from scratch with its example's from-scratch recipe
   (`--mask-epochs` / `--finetune-epochs` change it: the point here is a
   pruned network to deploy, not its accuracy), then stripped.
2. `keras_scl.shrink` removes its dead units; the script checks that the
   shrunk model's predictions on the whole MNIST test set equal the
   stripped model's (largest difference, identical argmax).
3. Both are written as LiteRT files with `keras_scl.export_tflite`: float32
   and dynamic-range int8, each with and without the sparse weight
   encoding. Each file runs the test set in LiteRT (`ai-edge-litert`, one
   thread) for its accuracy and its agreement with Keras, and is timed at
   batch 1 and batch 256 (median of `--repeats` invocations), with the
   default XNNPACK delegate and without delegates.
Results go to `<out-dir>/deploy_<network>.json`.
"""

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import keras  # noqa: E402
import mnist_common  # noqa: E402
import mnist_lenet5  # noqa: E402
import mnist_lenet300  # noqa: E402
import provenance  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from ai_edge_litert.interpreter import OpResolverType  # noqa: E402

import keras_scl  # noqa: E402

NETWORKS = {"lenet300": (mnist_lenet300, True), "lenet5": (mnist_lenet5, False)}
RESOLVERS = {"xnnpack": OpResolverType.AUTO, "no_delegate": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}


def _interpreter(path, resolver, batch, sample_shape):
    interpreter = Interpreter(model_path=path, num_threads=1, experimental_op_resolver_type=RESOLVERS[resolver])
    (inputs,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(inputs["index"], (batch, *sample_shape))
    interpreter.allocate_tensors()
    return interpreter, inputs["index"], interpreter.get_output_details()[0]["index"]


def _predict(path, resolver, x, batch=250):
    interpreter, i, o = _interpreter(path, resolver, batch, x.shape[1:])
    out = []
    for start in range(0, len(x), batch):
        interpreter.set_tensor(i, x[start : start + batch])
        interpreter.invoke()
        out.append(interpreter.get_tensor(o).copy())
    return np.concatenate(out)


def _latency_ms(path, resolver, x, batch, repeats):
    interpreter, i, _ = _interpreter(path, resolver, batch, x.shape[1:])
    interpreter.set_tensor(i, x[:batch])
    interpreter.invoke()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def _litert_rows(models, test, repeats, directory):
    x, y = test
    rows = []
    for kind, model in models.items():
        logits = model.predict(x, batch_size=1000, verbose=0)
        expected = logits.argmax(axis=1)
        for quantize in (None, "dynamic_int8"):
            for sparse in (False, True):
                path = os.path.join(directory, f"{kind}_{quantize}_{sparse}.tflite")
                row = {"model": kind, "quantize": quantize or "float32", "sparse_encoding": sparse}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # the XNNPACK one: measured below
                    try:
                        row["bytes"] = keras_scl.export_tflite(model, path, quantize=quantize, sparse=sparse)
                    except RuntimeError as e:  # LiteRT gets this sparse encoding wrong
                        row["export_error"] = str(e)
                        print(json.dumps(row))
                        rows.append(row)
                        continue
                for resolver in RESOLVERS:
                    try:
                        predicted_logits = _predict(path, resolver, x)
                    except RuntimeError as e:
                        row[resolver] = {"error": str(e).splitlines()[0][:200]}
                        continue
                    predicted = predicted_logits.argmax(axis=1)
                    row[resolver] = {
                        "test_error_percent": 100 * float(np.mean(predicted != y)),
                        "max_abs_logit_difference_from_keras": float(np.abs(predicted_logits - logits).max()),
                        "argmax_differs_from_keras": int(np.sum(predicted != expected)),
                        "ms_batch_1": _latency_ms(path, resolver, x, 1, repeats),
                        "ms_batch_256": _latency_ms(path, resolver, x, 256, max(repeats // 10, 5)),
                    }
                print(json.dumps(row))
                rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=NETWORKS, default="lenet300")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    parser.add_argument("--mask-epochs", type=int, default=None, help="default: the from-scratch recipe's")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="default: the from-scratch recipe's")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-models", default=None, help="directory to save stripped.keras and shrunk.keras in")
    args = parser.parse_args(argv)
    result = provenance.header("deploy_shrink.py", argv)
    module, flat = NETWORKS[args.network]
    train, test = mnist_common.load_mnist(args.data_dir, flat=flat)
    keras.utils.set_random_seed(args.seed)
    recipe = module.RECIPE_FROM_SCRATCH
    overrides = {"mask_epochs": args.mask_epochs, "finetune_epochs": args.finetune_epochs}
    recipe = dataclasses.replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    pruned, _, _ = mnist_common.train_scl(module.build_model(), train, recipe, verbose=2)
    stripped = keras_scl.strip_scl(pruned)

    start = time.perf_counter()
    shrunk, report = keras_scl.shrink(stripped, return_report=True)
    shrink_seconds = time.perf_counter() - start
    if args.keep_models:
        os.makedirs(args.keep_models, exist_ok=True)
        stripped.save(os.path.join(args.keep_models, "stripped.keras"))
        shrunk.save(os.path.join(args.keep_models, "shrunk.keras"))
    x, y = test
    before = stripped.predict(x, batch_size=1000, verbose=0)
    after = shrunk.predict(x, batch_size=1000, verbose=0)
    rows = keras_scl.sparsity_report(stripped)
    result.update(
        network=args.network,
        recipe=recipe.__dict__,
        sparsity=keras_scl.global_sparsity(rows),
        shrink_seconds=shrink_seconds,
        widths=[w._asdict() for w in report.widths],
        full_width=report.full_width,
        params={"stripped": stripped.count_params(), "shrunk": shrunk.count_params()},
        live_weights=sum(r.live for r in rows),
        test_error_percent={
            "stripped": 100 * float(np.mean(before.argmax(1) != y)),
            "shrunk": 100 * float(np.mean(after.argmax(1) != y)),
        },
        shrunk_vs_stripped={
            "max_abs_logit_difference": float(np.abs(after - before).max()),
            "argmax_differs": int(np.sum(after.argmax(1) != before.argmax(1))),
        },
        savedmodel={kind: keras_scl.deployment_size(m) for kind, m in (("stripped", stripped), ("shrunk", shrunk))},
    )
    print(json.dumps({k: v for k, v in result.items() if k not in ("widths", "recipe")}, indent=1))
    with tempfile.TemporaryDirectory() as directory:
        result["litert"] = _litert_rows({"stripped": stripped, "shrunk": shrunk}, test, args.repeats, directory)
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, f"deploy_{args.network}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
