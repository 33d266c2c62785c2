"""Exploration: the default push against the scale of the loss.

    python benchmarks/explore/loss_scale.py --scales 1 0.1 10 128 --data-dir ../shared/tfds
    python benchmarks/explore/loss_scale.py --scales 10 128 --scale-strength --data-dir ../shared/tfds

The live-connection regularizer adds `strength` to every mask gradient, so
it is measured in the units of the loss: a loss `C` times larger (a
`loss_weights` entry, `reduction="sum"`, which multiplies a mean loss by
the batch size, a regression target in larger units) makes the task's
gradients `C` times larger and the same `strength` `C` times weaker
beside them. `defaults.py`'s LeNet-300-100 case (from scratch, the
quickstart's training, seed 0), dense and with the defaults in one
process for each `C`, the loss multiplied by `C`; `--scale-strength`
multiplies `strength` by `C` too. Prints one line per scale. A record for
docs/experiment-log.md.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import defaults as D  # noqa: E402
import keras_scl  # noqa: E402
import mnist_common  # noqa: E402
import mnist_lenet300  # noqa: E402

DEFAULT_STRENGTH = 1e-5


def fit(model, train, epochs, scale, callbacks=()):
    """`defaults._fit` with the loss multiplied by `scale`."""
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=lambda y, logits: scale * cross_entropy(y, logits),
        metrics=["accuracy"],
    )
    model.fit(*train, batch_size=D.BATCH, epochs=epochs, verbose=0, callbacks=list(callbacks))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.1, 10.0, 128.0])
    parser.add_argument("--scale-strength", action="store_true")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    train, test = mnist_common.load_mnist(args.data_dir, flat=True)
    for scale in args.scales:
        keras.utils.set_random_seed(0)
        model = mnist_lenet300.build_model()
        dense = D._copy(model)
        fit(dense, train, args.epochs, scale)
        keras.utils.set_random_seed(0)
        strength = DEFAULT_STRENGTH * (scale if args.scale_strength else 1.0)
        pruned = keras_scl.prune_scl(model, strength=strength)
        fit(pruned, train, args.epochs, scale, [keras_scl.SCLCallback()])
        final = keras_scl.strip_scl(pruned)
        rows = keras_scl.sparsity_report(final)
        dense_error, scl_error = D._error(dense, test), D._error(final, test)
        print(
            f"RESULT lenet300-{args.epochs}-scratch, loss x{scale:g}, strength {strength:g}: "
            f"dense {dense_error:.2f} %, keras_scl {scl_error:.2f} % ({scl_error - dense_error:+.2f}) "
            f"at {keras_scl.global_sparsity(rows):.2%} sparse; layers {[round(r.sparsity, 3) for r in rows]}",
            flush=True,
        )


if __name__ == "__main__":
    main()
