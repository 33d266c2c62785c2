"""Benchmark harness: dense vs keras_scl vs tfmot on MNIST, same machine, same budget.

    python benchmarks/run.py --data-dir ../shared/tfds            # both networks, 3 seeds
    python benchmarks/run.py --quick --data-dir ../shared/tfds    # smoke run, < 3 minutes

For every network and seed it runs, one after the other in this process
(tfmot in a child process, see `tfmot_baseline.py`):
1. the dense network with the recipe's optimizer, schedule, batch and epochs;
2. keras_scl with the recipe of the example script (`examples/`), pruning
   the trained dense network of step 1 (`Recipe.prune_trained`);
3. tfmot `prune_low_magnitude` on the same trained dense network,
   polynomial decay to the sparsity keras_scl reached with that seed, same
   epoch budget (skipped, and said so in the JSON, when
   `tensorflow-model-optimization` is not installed).
Sparsity and FLOPs are counted from the final weights (exact zeros) of the
stripped models, with the same code for all three methods. Results go to
`<out-dir>/<network>.json` and a sparsity-vs-error plot `<network>.png`.
"""

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import keras  # noqa: E402
import mnist_common  # noqa: E402
import mnist_lenet5  # noqa: E402
import mnist_lenet300  # noqa: E402
import provenance  # noqa: E402
import weights_npz  # noqa: E402

import keras_scl  # noqa: E402

NETWORKS = {
    "lenet300": (mnist_lenet300, True),
    "lenet5": (mnist_lenet5, False),
}
QUICK = dict(train_limit=6000, test_limit=2000, recipe=dict(mask_epochs=1, finetune_epochs=1))


def tfmot_available():
    return all(importlib.util.find_spec(m) for m in ("tensorflow_model_optimization", "tf_keras"))


def run_tfmot(network, recipe, target_sparsity, seed, data_dir, train_limit, start=None):
    """tfmot in a child process; `start` is the model whose weights it prunes."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "weights.npz")
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
        cmd = [
            sys.executable,
            os.path.join(HERE, "tfmot_baseline.py"),
            f"--network={network}",
            f"--target-sparsity={target_sparsity}",
            f"--mask-epochs={recipe.mask_epochs}",
            f"--finetune-epochs={recipe.finetune_epochs}",
            f"--learning-rate={recipe.learning_rate}",
            f"--batch-size={recipe.batch_size}",
            f"--seed={seed}",
            f"--out={out}",
        ]
        if data_dir:
            cmd.append(f"--data-dir={data_dir}")
        if train_limit:
            cmd.append(f"--train-limit={train_limit}")
        if recipe.jit_compile:
            cmd.append("--jit-compile")
        if start is not None:
            weights_npz.save(start, os.path.join(tmp, "start.npz"))
            cmd.append(f"--init={os.path.join(tmp, 'start.npz')}")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"tfmot baseline failed:\n{proc.stderr[-3000:]}")
        timing = json.loads(proc.stdout.strip().splitlines()[-1])
        model = weights_npz.load(NETWORKS[network][0].build_model(), out)
    return model, timing["seconds_per_epoch"]


def one_seed(network, seed, recipe, data, data_dir, train_limit, with_tfmot, verbose):
    module, _ = NETWORKS[network]
    train, test = data
    record = {}

    keras.utils.set_random_seed(seed)
    dense, _, timer = mnist_common.train_dense(module.build_model(), train, recipe, verbose=verbose)
    record["dense"] = dict(mnist_common.summarize(dense, test), seconds_per_epoch=timer.seconds)

    # With `prune_trained` both pruning methods start from the trained dense model.
    start = dense if recipe.prune_trained else None
    keras.utils.set_random_seed(seed)
    pruned, history, timer = mnist_common.train_scl(
        module.build_model() if start is None else start, train, recipe, verbose=verbose
    )
    stripped = keras_scl.strip_scl(pruned)
    record["scl"] = dict(
        mnist_common.summarize(stripped, test),
        seconds_per_epoch=timer.seconds,
        teacher_seconds=timer.teacher_seconds,
        sparsity_history=[float(v) for v in history.history["sparsity"]],
    )

    if with_tfmot:
        target = round(record["scl"]["sparsity"], 4)
        model, seconds = run_tfmot(network, recipe, target, seed, data_dir, train_limit, start)
        record["tfmot"] = dict(mnist_common.summarize(model, test), seconds_per_epoch=seconds, target_sparsity=target)
    return record


def _stats(values):
    values = np.asarray(values, dtype="float64")
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0, "values": values.tolist()}


def steady_epoch_seconds(seconds, mask_epochs):
    """Typical epoch time of one run on a shared machine.

    Other jobs on the machine only ever add time, so within each phase (the
    mask phase, then the fine-tune phase, which is cheaper for keras_scl) the
    lower quartile of the epoch times is taken, leaving out the first epoch
    (tracing); the result is the epoch-weighted mean of the two phases.
    """
    phases = [seconds[1:mask_epochs], seconds[mask_epochs:]]
    phases = [p for p in phases if p] or [seconds]
    weights = [mask_epochs, len(seconds) - mask_epochs] if len(phases) == 2 else [1]
    return float(np.average([np.percentile(p, 25) for p in phases], weights=weights))


def aggregate(records, mask_epochs):
    """Mean and spread over seeds of the headline numbers, per method."""
    out = {}
    methods = [m for m in ("dense", "scl", "tfmot") if all(m in r for r in records)]
    for method in methods:
        rs = [r[method] for r in records]
        # The teacher's one pass (distillation) is spread over the epochs.
        epoch = [
            steady_epoch_seconds(r["seconds_per_epoch"], mask_epochs) + r.get("teacher_seconds", 0.0) / len(r["seconds_per_epoch"])
            for r in rs
        ]
        out[method] = {
            "test_error_percent": _stats([100 * (1 - r["test_accuracy"]) for r in rs]),
            "sparsity": _stats([r["sparsity"] for r in rs]),
            "compression": _stats([r["compression"] for r in rs]),
            "flops_reduction": _stats([r["dense_flops"] / max(r["sparse_flops"], 1) for r in rs]),
            "seconds_per_epoch": _stats(epoch),
            **{
                f"deployment_{key}": _stats([r["deployment"][key] for r in rs])
                for key in ("variables_gzip_bytes", "ideal_bytes", "dense_weights_bytes")
                if all("deployment" in r for r in rs)
            },
            "layer_sparsity": {
                row["layer"] + "/" + row["weight"]: _stats([r["layers"][i]["sparsity"] for r in rs])
                for i, row in enumerate(rs[0]["layers"])
            },
        }
    for method in methods:
        if method != "dense":
            out[method]["epoch_time_ratio_vs_dense"] = _stats(
                [s / d for s, d in zip(out[method]["seconds_per_epoch"]["values"], out["dense"]["seconds_per_epoch"]["values"])]
            )
    return out


def plot(network, records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for method, marker in (("dense", "s"), ("scl", "o"), ("tfmot", "^")):
        pts = [(r[method]["compression"], 100 * (1 - r[method]["test_accuracy"])) for r in records if method in r]
        if pts:
            ax.scatter(*zip(*pts), marker=marker, label={"scl": "keras_scl", "tfmot": "tfmot prune_low_magnitude"}.get(method, method))
    ax.set_xscale("log")
    ax.set_xlabel("compression (total / live weights)")
    ax.set_ylabel("test error (%)")
    ax.set_title(f"{network}: one point per seed")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    parser.add_argument("--quick", action="store_true", help="1+1 epochs on 6000 images, one seed")
    parser.add_argument("--no-tfmot", action="store_true")
    parser.add_argument(
        "--from-scratch",
        action="store_true",
        help="prune freshly initialised networks (RECIPE_FROM_SCRATCH); results go to <network>_from_scratch.json",
    )
    parser.add_argument("--verbose", type=int, default=2)
    parser.add_argument("--resummarize", action="store_true", help="recompute the summaries of existing JSON results from their runs")
    args = parser.parse_args(argv)
    suffix = "_from_scratch" if args.from_scratch else ""
    if args.resummarize:
        for network in args.network:
            path = os.path.join(args.out_dir, f"{network}{suffix}.json")
            with open(path) as f:
                result = json.load(f)
            result["summary"] = aggregate(result["runs"], result["recipe"]["mask_epochs"])
            with open(path, "w") as f:
                json.dump(result, f, indent=2)
            plot(network, result["runs"], os.path.join(args.out_dir, f"{network}{suffix}.png"))
        return None

    seeds = args.seeds[:1] if args.quick else args.seeds
    limits = QUICK if args.quick else {}
    with_tfmot = not args.no_tfmot and tfmot_available()
    os.makedirs(args.out_dir, exist_ok=True)
    results = {}
    for network in args.network:
        module, flat = NETWORKS[network]
        base = module.RECIPE_FROM_SCRATCH if args.from_scratch else module.RECIPE
        recipe = dataclasses.replace(base, **limits.get("recipe", {}))
        data = mnist_common.load_mnist(
            args.data_dir, flat=flat, train_limit=limits.get("train_limit"), test_limit=limits.get("test_limit")
        )
        records = []
        started = time.perf_counter()
        for seed in seeds:
            print(f"== {network} seed {seed}", flush=True)
            records.append(one_seed(network, seed, recipe, data, args.data_dir, limits.get("train_limit"), with_tfmot, args.verbose))
        result = {
            **provenance.header("run.py", argv),
            "network": network,
            "quick": args.quick,
            "recipe": dataclasses.asdict(recipe),
            "seeds": seeds,
            "tfmot": "included" if with_tfmot else "skipped: tensorflow-model-optimization / tf-keras not installed (pip install -e '.[bench]')" if not args.no_tfmot else "skipped: --no-tfmot",
            "wall_seconds": time.perf_counter() - started,
            "summary": aggregate(records, recipe.mask_epochs),
            "runs": records,
        }
        with open(os.path.join(args.out_dir, f"{network}{suffix}.json"), "w") as f:
            json.dump(result, f, indent=2)
        plot(network, records, os.path.join(args.out_dir, f"{network}{suffix}.png"))
        results[network] = result
        print(json.dumps({k: {m: {q: round(v["mean"], 4) for q, v in s.items() if isinstance(v, dict) and "mean" in v} for m, s in result["summary"].items()} for k in [network]}, indent=1))
    return results


if __name__ == "__main__":
    main()
