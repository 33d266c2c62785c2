"""Budget mode against tfmot at the same sparsity and epoch budget.

    python benchmarks/budget.py --data-dir ../shared/tfds

For each network and each target sparsity (90 %, 95 %, 98 % by default),
keras_scl trains with `SCLCallback(target_sparsity=...)` and tfmot
`prune_low_magnitude` with a polynomial decay to the same target, both with
the network's recipe (`--mask-epochs` / `--finetune-epochs` override it for
both methods alike). Sparsity is counted on the final weights. Writes
`<out-dir>/budget_<networks>.json`.
"""

import argparse
import dataclasses
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import run  # noqa: E402
from run import NETWORKS  # noqa: E402
from run import mnist_common  # noqa: E402

import keras_scl  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--targets", type=float, nargs="+", default=[0.90, 0.95, 0.98])
    parser.add_argument("--mask-epochs", type=int, default=None)
    parser.add_argument("--finetune-epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    parser.add_argument("--no-tfmot", action="store_true")
    args = parser.parse_args(argv)
    with_tfmot = not args.no_tfmot and run.tfmot_available()
    results = {}
    for network in args.network:
        module, flat = NETWORKS[network]
        overrides = {k: v for k, v in (("mask_epochs", args.mask_epochs), ("finetune_epochs", args.finetune_epochs)) if v}
        recipe = dataclasses.replace(module.RECIPE, **overrides)
        train, test = mnist_common.load_mnist(args.data_dir, flat=flat)
        results[network] = {"recipe": dataclasses.asdict(recipe), "targets": {}}
        for target in args.targets:
            keras.utils.set_random_seed(args.seed)
            pruned, history, _ = mnist_common.train_scl(
                module.build_model(), train, recipe, verbose=0, callback_options={"target_sparsity": target}
            )
            scl = mnist_common.summarize(keras_scl.strip_scl(pruned), test)
            entry = {"scl": {
                "test_error_percent": 100 * (1 - scl["test_accuracy"]),
                "sparsity": scl["sparsity"],
                "off_target_points": 100 * (scl["sparsity"] - target),
                "layer_sparsity": {r["layer"]: r["sparsity"] for r in scl["layers"]},
                "final_strength": float(history.history["scl_strength"][-1]),
            }}
            if with_tfmot:
                model, _ = run.run_tfmot(network, recipe, target, args.seed, args.data_dir, None)
                tf_summary = mnist_common.summarize(model, test)
                entry["tfmot"] = {
                    "test_error_percent": 100 * (1 - tf_summary["test_accuracy"]),
                    "sparsity": tf_summary["sparsity"],
                    "layer_sparsity": {r["layer"]: r["sparsity"] for r in tf_summary["layers"]},
                }
            results[network]["targets"][str(target)] = entry
            print(network, target, json.dumps({m: {k: round(v, 4) for k, v in e.items() if isinstance(v, float)} for m, e in entry.items()}), flush=True)
    os.makedirs(args.out_dir, exist_ok=True)
    name = "budget_" + "_".join(args.network) + ".json"
    with open(os.path.join(args.out_dir, name), "w") as f:
        json.dump({"command": "python benchmarks/budget.py " + " ".join(argv or sys.argv[1:]), "seed": args.seed, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
