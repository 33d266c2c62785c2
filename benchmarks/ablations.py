"""Ablations of the SCL design choices on LeNet-300-100, same budget for all.

    python benchmarks/ablations.py --data-dir ../shared/tfds

Each variant trains a freshly initialised network with the LeNet-300-100
recipe for that (`mnist_lenet300.RECIPE_FROM_SCRATCH`) and changes
one thing: the straight-through estimator (identity, leaky ReLU, softplus,
and a deliberately non-positive proxy), or the mask-gradient normalisation
(on / off) with Adam or SGD with momentum as the mask optimizer, or where
the regularizer's gradient joins it (before normalisation, the library's
choice, or after, in normalised units). Results go
to `<out-dir>/ablations.json`.
"""

import argparse
import dataclasses
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import keras  # noqa: E402
import mnist_common  # noqa: E402
import mnist_lenet300  # noqa: E402
import provenance  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_scl  # noqa: E402


def _sign_proxy(m):
    # Positive for live masks, negative for pruned ones: violates the
    # positivity principle on purpose.
    return tf.where(m > 0, tf.ones_like(m), -tf.ones_like(m))


class RegularizerAfterNormalization(keras_scl.SCLOptimizer):
    """The design alternative to the library's choice: normalise only the
    task part of a mask gradient, then add the regularizer's push in
    normalised units (`pressure` per entry, identity STE)."""

    def __init__(self, inner, strength, pressure):
        super().__init__(inner)
        self.strength, self.pressure = strength, pressure

    def transform_gradient(self, grad, variable):
        axes = keras_scl.wrapper.mask_feature_axes(variable)
        if grad is None or axes is None:
            return grad
        task = tf.convert_to_tensor(grad) - self.strength  # identity STE: d(reg)/dm = strength
        return keras_scl.normalization.normalize_per_feature(task, axes) + self.pressure


def _variants(recipe):
    sgd_lr = 3e-5  # SGD+momentum step on unit-RMS normalised mask gradients
    return {
        "identity STE (default)": dict(ste="identity"),
        "leaky ReLU STE (alpha=0.1)": dict(ste=keras_scl.LeakyReLUSTE(0.1)),
        "softplus STE (beta=1)": dict(ste=keras_scl.SoftplusSTE(1.0)),
        "non-positive proxy (-1 for m <= 0)": dict(ste=keras_scl.CustomSTE(_sign_proxy, check_positive=False)),
        "Adam masks, no normalisation": dict(norm=None),
        "SGD-momentum masks, normalised": dict(mask_optimizer=("sgd", sgd_lr)),
        "SGD-momentum masks, no normalisation": dict(mask_optimizer=("sgd", sgd_lr), norm=None),
        "regularizer after normalisation (0.2 per entry)": dict(after=0.2),
        "regularizer after normalisation (0.5 per entry)": dict(after=0.5),
    }


def run_variant(options, recipe, train, test, seed):
    keras.utils.set_random_seed(seed)
    x, y = train
    ste = options.get("ste", "identity")
    pruned = keras_scl.prune_scl(
        mnist_lenet300.build_model(), ste=ste, strength=recipe.strength, initial_mask=recipe.initial_mask,
        update_pruned_weights=recipe.update_pruned_weights,
    )
    steps = -(-len(x) // recipe.batch_size)
    mask_optimizer = None
    if "mask_optimizer" in options:
        _, lr = options["mask_optimizer"]
        mask_optimizer = keras.optimizers.SGD(
            keras.optimizers.schedules.CosineDecay(lr, recipe.mask_epochs * steps), momentum=0.9
        )
    if "after" in options:
        optimizer = RegularizerAfterNormalization(
            keras.optimizers.Adam(recipe.schedule(steps)), recipe.strength, options["after"]
        )
    else:
        optimizer = keras_scl.SCLOptimizer(
            keras.optimizers.Adam(recipe.schedule(steps)),
            mask_optimizer=mask_optimizer,
            norm=options.get("norm", "rms"),
        )
    pruned.compile(optimizer=optimizer, loss=mnist_common.LOSS)
    history = pruned.fit(
        x,
        y,
        batch_size=recipe.batch_size,
        epochs=recipe.epochs,
        verbose=0,
        callbacks=[keras_scl.SCLCallback(freeze_masks_at_epoch=recipe.mask_epochs)],
    )
    summary = mnist_common.summarize(keras_scl.strip_scl(pruned), test)
    return {
        "test_error_percent": 100 * (1 - summary["test_accuracy"]),
        "sparsity": summary["sparsity"],
        "compression": summary["compression"],
        "layer_sparsity": {r["layer"]: r["sparsity"] for r in summary["layers"]},
        "final_loss": float(history.history["loss"][-1]),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    recipe = mnist_lenet300.RECIPE_FROM_SCRATCH
    limits = {}
    if args.quick:
        recipe = dataclasses.replace(recipe, mask_epochs=1, finetune_epochs=1)
        limits = dict(train_limit=6000, test_limit=2000)
    train, test = mnist_common.load_mnist(args.data_dir, flat=True, **limits)
    results = {}
    for name, options in _variants(recipe).items():
        results[name] = run_variant(options, recipe, train, test, args.seed)
        print(f"{name:<40} error {results[name]['test_error_percent']:.2f}%  sparsity {results[name]['sparsity']:.2%}", flush=True)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "ablations.json"), "w") as f:
        json.dump(
            {
                **provenance.header("ablations.py", argv),
                "recipe": dataclasses.asdict(recipe),
                "seed": args.seed,
                "quick": args.quick,
                "variants": results,
            },
            f,
            indent=2,
        )
    return results


if __name__ == "__main__":
    main()
