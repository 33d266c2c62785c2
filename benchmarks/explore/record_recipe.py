"""Longer recipes for the record rows: one dense network, several strengths.

    python benchmarks/explore/record_recipe.py --network lenet300 --seed 20 \
        --mask-epochs 30 --finetune-epochs 60 --strengths 2e-4 2.5e-4 \
        --data-dir ../shared/tfds --out /tmp/record_lenet300_s20.json

Trains the dense network of `--seed` for `mask + finetune` epochs (the
recipe's optimizer, schedule and batch), then keras_scl's recipe (with its
distillation) from that trained network at each strength, and writes test
error and compression per strength (and per `--update-pruned-weights`
setting). Exploration only: it picks a record
recipe on a seed outside the eight the benchmark reports (0-2, 10-14).
"""

import argparse
import dataclasses
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import keras  # noqa: E402

import provenance  # noqa: E402
import run  # noqa: E402

import mnist_common  # noqa: E402  (on the path through run)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=sorted(run.NETWORKS), default="lenet300")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--mask-epochs", type=int, required=True)
    parser.add_argument("--finetune-epochs", type=int, required=True)
    parser.add_argument("--strengths", type=float, nargs="+", required=True)
    parser.add_argument(
        "--update-pruned-weights", choices=["false", "true", "both"], default="false",
        help="SCLWrapper's update_pruned_weights for keras_scl (the benchmark recipes pin false); both: each strength twice",
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    module, flat = run.NETWORKS[args.network]
    recipe = dataclasses.replace(module.RECIPE, mask_epochs=args.mask_epochs, finetune_epochs=args.finetune_epochs)
    train, test = mnist_common.load_mnist(args.data_dir, flat=flat)
    result = dict(provenance.header("explore/record_recipe.py", argv), recipe=dataclasses.asdict(recipe), seed=args.seed, trials=[])

    keras.utils.set_random_seed(args.seed)
    started = time.perf_counter()
    dense, _, _ = mnist_common.train_dense(module.build_model(), train, recipe, verbose=0)
    result["dense_test_error_percent"] = 100 * (1 - mnist_common.test_accuracy(dense, test))
    print(f"dense {result['dense_test_error_percent']:.2f} % ({time.perf_counter() - started:.0f} s)", flush=True)
    settings = {"false": [False], "true": [True], "both": [False, True]}[args.update_pruned_weights]
    for strength, update_pruned in [(s, u) for s in args.strengths for u in settings]:
        keras.utils.set_random_seed(args.seed)
        started = time.perf_counter()
        trial_recipe = dataclasses.replace(recipe, strength=strength, update_pruned_weights=update_pruned)
        entry = run.run_scl(dense, module, train, test, trial_recipe, verbose=0)
        trial = dict(
            strength=strength,
            update_pruned_weights=update_pruned,
            test_error_percent=100 * (1 - entry["test_accuracy"]),
            compression=entry["compression"],
            layers={row["layer"]: 1 - row["live"] / row["total"] for row in entry["layers"]},
            seconds=time.perf_counter() - started,
        )
        result["trials"].append(trial)
        print(json.dumps(trial), flush=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
