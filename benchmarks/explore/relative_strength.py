"""Exploration: a regularizer push relative to what the loss tells the masks.

    python benchmarks/explore/relative_strength.py CASE S_REL [--data-dir DIR]

Today the live-connection regularizer adds a constant `strength` (1e-5 by
default) to every mask gradient before `SCLOptimizer` normalises it per
feature, so a connection survives while its task gradient `w * dL/dw_eff`
holds it up by more than that constant on average. The constant is an
absolute threshold on a gradient whose size depends on the loss, the
network and the phase of training: in a plateau, where the task says
little, it prunes at full speed.

This probe replaces it (wrappers at strength 0) by `S_REL` times the root
mean square of all mask task gradients of the step (`--statistic
mean_abs`: their mean absolute value), added in the
optimizer before the normalisation: the push scales with the task's own
gradient, so a loss multiplied by ten prunes the same way, and a plateau
prunes slowly. `S_REL = abs<S>` keeps today's constant push `S` through
the same code path (a control). CASE is a `benchmarks/defaults.py` case
name (`sequence-10`, `first-marker-10`, `noisy-shifted-mnist-5`, `lenet300-10-scratch`,
`cnn-5-scratch`, ...); the dense network trains in the same process, as
there. Prints one line: test errors, sparsity, and the mean over the
mask phase of the mask task gradients' global size (`--statistic`). A record for
docs/experiment-log.md, not a benchmark.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import defaults as D  # noqa: E402
import keras_scl  # noqa: E402
import mnist_common  # noqa: E402
import mnist_lenet300  # noqa: E402
from keras_scl.optimizer import SCLOptimizer  # noqa: E402
from keras_scl.wrapper import mask_feature_axes  # noqa: E402

def patch_optimizer(s_rel, absolute, statistic="rms"):
    original = SCLOptimizer.apply

    def apply(self, grads, trainable_variables=None):
        variables = list(trainable_variables if trainable_variables is not None else self._trainable_variables)
        grads = list(grads)
        masks = [i for i, (g, v) in enumerate(zip(grads, variables)) if g is not None and mask_feature_axes(v) is not None]
        if masks:
            count = float(sum(int(np.prod(grads[i].shape)) for i in masks))
            if statistic == "mean_abs":
                size = tf.add_n([tf.reduce_sum(tf.abs(grads[i])) for i in masks]) / count
            else:
                square_sum = tf.add_n([tf.reduce_sum(tf.square(grads[i])) for i in masks])
                size = tf.sqrt(square_sum / count)
            if not hasattr(self, "_size_sum"):
                self._size_sum = tf.Variable(0.0, trainable=False)
                self._size_steps = tf.Variable(0.0, trainable=False)
            self._size_sum.assign_add(size)
            self._size_steps.assign_add(1.0)
            push = tf.constant(s_rel) if absolute else s_rel * size
            for i in masks:
                grads[i] = grads[i] + tf.cast(push, grads[i].dtype)
        return original(self, grads, trainable_variables)

    SCLOptimizer.apply = apply


def data_and_model(case, data_dir):
    parts = case.split("-")
    if parts[0] == "sequence":
        train, test = D.majority_marker_task()
        return train, test, lambda: D.sequence_model(32, 4), int(parts[1]), "scratch"
    if parts[0] == "first":
        train, test = D.first_marker_task()
        return train, test, lambda: D.sequence_model(32, 4), int(parts[2]), "scratch"
    if parts[0] == "noisy":
        (x, y), (xt, yt) = mnist_common.load_mnist(data_dir)
        rng = np.random.default_rng(0)
        train = D.noisy_shifted(x[:6000, ..., None], y[:6000], rng)
        test = D.noisy_shifted(xt[..., None], yt, rng)
        return train, test, D.small_cnn, int(parts[3]), "scratch"
    flat = parts[0] == "lenet300"
    train, test = mnist_common.load_mnist(data_dir, flat=flat)
    if not flat:
        train, test = (train[0][..., None], train[1]), (test[0][..., None], test[1])
    build = mnist_lenet300.build_model if flat else D.small_cnn
    return train, test, build, int(parts[1]), parts[2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("case")
    parser.add_argument("s_rel")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--keep-pruned", action="store_true",
        help="update_pruned_weights=False (the library default before 4525a03; the `--dwg` "
        "flag of earlier commits patched in what is now the default)",
    )
    parser.add_argument(
        "--statistic", choices=("rms", "mean_abs"), default="rms",
        help="the size of the mask task gradients the push is relative to: their root mean "
        "square, or their mean absolute value (less swayed by the few largest)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of both networks' initial weights and shuffling")
    parser.add_argument("--mask-fraction", type=float, default=None, help="AUTO_MASK_FRACTION (default: the library's)")
    args = parser.parse_args()
    if args.mask_fraction is not None:
        from keras_scl import callback

        callback.AUTO_MASK_FRACTION = args.mask_fraction
    absolute = args.s_rel.startswith("abs")
    s_rel = float(args.s_rel[3:] if absolute else args.s_rel)
    patch_optimizer(s_rel, absolute, args.statistic)
    train, test, build, epochs, start = data_and_model(args.case, args.data_dir)
    keras.utils.set_random_seed(args.seed)
    model = build()
    if start == "trained":
        D._fit(model, train, epochs)
    dense = D._copy(model)
    D._fit(dense, train, epochs)
    keras.utils.set_random_seed(args.seed)
    pruned = keras_scl.prune_scl(model, strength=0.0, update_pruned_weights=not args.keep_pruned)
    D._fit(pruned, train, epochs, [keras_scl.SCLCallback()])
    final = keras_scl.strip_scl(pruned)
    rows = keras_scl.sparsity_report(final)
    dense_error, scl_error = D._error(dense, test), D._error(final, test)
    opt = pruned.optimizer
    mean_size = float(opt._size_sum.numpy() / max(opt._size_steps.numpy(), 1.0))
    print(
        f"RESULT {args.case} s={args.s_rel}{' of the mean |g|' if args.statistic == 'mean_abs' else ''}{' keep-pruned' if args.keep_pruned else ''}{f' fraction {args.mask_fraction}' if args.mask_fraction else ''}{f' seed {args.seed}' if args.seed else ''}: dense {dense_error:.2f} %, keras_scl {scl_error:.2f} % "
        f"({scl_error - dense_error:+.2f}) at {keras_scl.global_sparsity(rows):.2%} sparse; "
        f"layers {[round(r.sparsity, 3) for r in rows]}; mean {args.statistic} {mean_size:.3g}",
        flush=True,
    )


if __name__ == "__main__":
    main()
