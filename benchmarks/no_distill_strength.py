"""Picks `run.NO_DISTILL_STRENGTH`: keras_scl without distillation at the recipe's compression.

    python benchmarks/no_distill_strength.py --network lenet300 --data-dir ../shared/tfds

On one seed (10 by default: `run.py`'s results use seeds 0-2) it trains
the dense network, prunes it with the recipe (which distils) for the
compression to match, then prunes it again with distillation off, searching
the strength by secant steps on log(compression) against log(strength),
from `run.NO_DISTILL_STRENGTH`, until the compression is within
`--tolerance` (relative) of the recipe's or `--trials` runs are spent. The
test error is recorded but plays no part in the choice. Writes every trial
to `<out-dir>/no_distill_strength_<network>.json`; the strength closest to
the target goes into `NO_DISTILL_STRENGTH` by hand, with this file as its
reference.
"""

import argparse
import dataclasses
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import keras  # noqa: E402
import mnist_common  # noqa: E402
import provenance  # noqa: E402
import run  # noqa: E402


def next_strength(trials, target, max_factor=4.0):
    """The next strength to try after `trials` (dicts with `strength` and `compression`).

    A secant step in log-log through the two trials closest to `target`
    (from one trial, compression taken proportional to strength); a step
    never changes the strength by more than `max_factor`.
    """
    ranked = sorted(trials, key=lambda t: abs(math.log(t["compression"] / target)))
    best = ranked[0]
    slope = 1.0
    if len(ranked) > 1:
        other = ranked[1]
        d_compression = math.log(best["compression"] / other["compression"])
        d_strength = math.log(best["strength"] / other["strength"])
        # Compression grows with strength; a noisy pair that says otherwise keeps slope 1.
        if d_strength and d_compression / d_strength > 0:
            slope = d_compression / d_strength
    step = math.log(target / best["compression"]) / slope
    step = max(-math.log(max_factor), min(math.log(max_factor), step))
    return best["strength"] * math.exp(step)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", required=True, choices=list(run.NETWORKS))
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--tolerance", type=float, default=0.03, help="relative difference in compression")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args(argv)

    module, flat = run.NETWORKS[args.network]
    recipe = module.RECIPE
    train, test = mnist_common.load_mnist(args.data_dir, flat=flat)
    keras.utils.set_random_seed(args.seed)
    dense = mnist_common.train_dense(module.build_model(), train, recipe, verbose=args.verbose)[0]
    keras.utils.set_random_seed(args.seed)
    reference = run.run_scl(dense, module, train, test, recipe, args.verbose)
    target = reference["compression"]
    trials = []
    strength = run.NO_DISTILL_STRENGTH[args.network]
    for _ in range(args.trials):
        keras.utils.set_random_seed(args.seed)
        plain = dataclasses.replace(recipe, distill_temperature=0.0, strength=strength)
        entry = run.run_scl(dense, module, train, test, plain, args.verbose)
        trials.append(
            {"strength": strength, "compression": entry["compression"], "test_error_percent": 100 * (1 - entry["test_accuracy"])}
        )
        print(json.dumps(trials[-1]), flush=True)
        if abs(entry["compression"] / target - 1) <= args.tolerance:
            break
        strength = next_strength(trials, target)
    chosen = min(trials, key=lambda t: abs(math.log(t["compression"] / target)))
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, f"no_distill_strength_{args.network}.json"), "w") as f:
        json.dump(
            {
                **provenance.header("no_distill_strength.py", argv),
                "network": args.network,
                "seed": args.seed,
                "recipe": dataclasses.asdict(recipe),
                "target_compression": target,
                "recipe_test_error_percent": 100 * (1 - reference["test_accuracy"]),
                "trials": trials,
                "chosen_strength": chosen["strength"],
            },
            f,
            indent=2,
        )
    print(f"{args.network}: strength {chosen['strength']:.3g} lands at {chosen['compression']:.1f}x (recipe {target:.1f}x)")


if __name__ == "__main__":
    main()
