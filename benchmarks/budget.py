"""Budget mode against tfmot at the same sparsity and epoch budget.

    python benchmarks/budget.py --data-dir ../shared/tfds

For each network and each target sparsity (90 %, 95 %, 98 % by default),
keras_scl trains with `SCLCallback(target_sparsity=...)` and tfmot
`prune_low_magnitude` with a polynomial decay to the same target, both with
the network's recipe for a freshly initialised network
(`RECIPE_FROM_SCRATCH`; `--mask-epochs` / `--finetune-epochs` override it for
both methods alike), once per `--seeds` entry. With `--prune-trained` both
methods instead prune the network's dense baseline, trained first with the
network's `RECIPE` (the protocol of `run.py`). Sparsity is counted on the
final weights. Writes `<out-dir>/budget_<networks>[_trained].json` with every
run and the mean and spread over seeds.
"""

import argparse
import dataclasses
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import provenance  # noqa: E402
import run  # noqa: E402
from run import NETWORKS  # noqa: E402
from run import mnist_common  # noqa: E402

import keras_scl  # noqa: E402


def describe(summary, target):
    return {
        "test_error_percent": 100 * (1 - summary["test_accuracy"]),
        "sparsity": summary["sparsity"],
        "off_target_points": 100 * (summary["sparsity"] - target),
        "layer_sparsity": {r["layer"]: r["sparsity"] for r in summary["layers"]},
    }


def run_scl(module, recipe, train, test, target, seed, start=None):
    keras.utils.set_random_seed(seed)
    pruned, history, _ = mnist_common.train_scl(
        module.build_model() if start is None else start,
        train,
        recipe,
        verbose=0,
        callback_options={"target_sparsity": target},
    )
    result = describe(mnist_common.summarize(keras_scl.strip_scl(pruned), test), target)
    result["final_strength"] = float(history.history["scl_strength"][-1])
    return result


def aggregate(runs):
    """Mean error and sparsity over seeds, the worst miss of the target, every run."""
    errors = [r["test_error_percent"] for r in runs]
    return {
        "test_error_percent": float(np.mean(errors)),
        "test_error_std": float(np.std(errors, ddof=1)) if len(errors) > 1 else 0.0,
        "sparsity": float(np.mean([r["sparsity"] for r in runs])),
        "off_target_points": max((r["off_target_points"] for r in runs), key=abs),
        "runs": runs,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--targets", type=float, nargs="+", default=[0.90, 0.95, 0.98])
    parser.add_argument("--mask-epochs", type=int, default=None)
    parser.add_argument("--finetune-epochs", type=int, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    parser.add_argument("--no-tfmot", action="store_true")
    parser.add_argument("--prune-trained", action="store_true", help="prune the trained dense baseline (RECIPE)")
    args = parser.parse_args(argv)
    with_tfmot = not args.no_tfmot and run.tfmot_available()
    results = {}
    for network in args.network:
        module, flat = NETWORKS[network]
        overrides = {k: v for k, v in (("mask_epochs", args.mask_epochs), ("finetune_epochs", args.finetune_epochs)) if v}
        base = module.RECIPE if args.prune_trained else module.RECIPE_FROM_SCRATCH
        recipe = dataclasses.replace(base, **overrides)
        train, test = mnist_common.load_mnist(args.data_dir, flat=flat)
        results[network] = {"recipe": dataclasses.asdict(recipe), "targets": {}}
        starts = {}
        if recipe.prune_trained:
            for seed in args.seeds:
                keras.utils.set_random_seed(seed)
                starts[seed] = mnist_common.train_dense(module.build_model(), train, recipe, verbose=0)[0]
            results[network]["dense_error_percent"] = [
                100 * (1 - mnist_common.test_accuracy(starts[seed], test)) for seed in args.seeds
            ]
        for target in args.targets:
            runs = {"scl": [], "tfmot": []}
            for seed in args.seeds:
                runs["scl"].append(run_scl(module, recipe, train, test, target, seed, starts.get(seed)))
                if with_tfmot:
                    model, _ = run.run_tfmot(network, recipe, target, seed, args.data_dir, None, starts.get(seed))
                    runs["tfmot"].append(describe(mnist_common.summarize(model, test), target))
            entry = {method: aggregate(rs) for method, rs in runs.items() if rs}
            results[network]["targets"][str(target)] = entry
            print(network, target, json.dumps({m: {k: round(v, 4) for k, v in e.items() if isinstance(v, float)} for m, e in entry.items()}), flush=True)
    os.makedirs(args.out_dir, exist_ok=True)
    name = "budget_" + "_".join(args.network) + ("_trained" if args.prune_trained else "") + ".json"
    with open(os.path.join(args.out_dir, name), "w") as f:
        json.dump({**provenance.header("budget.py", argv), "seeds": args.seeds, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
