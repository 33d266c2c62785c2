"""Per-feature normalisation of mask gradients, as a pure function.

Kept apart from the optimizer so the maths can be tested on its own.
"""

import tensorflow as tf

NORMS = ("rms", "l2", "mean_abs")


def feature_norm(grad, feature_axes, norm="rms"):
    """The norm of `grad` over each feature, broadcastable against `grad`.

    Args:
        grad: tensor. The gradient of one mask variable.
        feature_axes: tuple of int. Axes of `grad` that index features; the
            norm is taken over all the other axes.
        norm: `"rms"` (root mean square), `"l2"` or `"mean_abs"`.
    """
    ndim = len(grad.shape)
    reduce_axes = [a for a in range(ndim) if a not in feature_axes]
    if norm == "rms":
        return tf.sqrt(tf.reduce_mean(tf.square(grad), axis=reduce_axes, keepdims=True))
    if norm == "l2":
        return tf.sqrt(tf.reduce_sum(tf.square(grad), axis=reduce_axes, keepdims=True))
    if norm == "mean_abs":
        return tf.reduce_mean(tf.abs(grad), axis=reduce_axes, keepdims=True)
    raise ValueError(f"Expected `norm` to be one of {NORMS}. Received: norm={norm!r}")


def normalize_per_feature(grad, feature_axes, norm="rms", epsilon=1e-12, check_norms=None):
    """Divides `grad` by its per-feature norm (`epsilon` guards all-zero features).

    After this, every feature's gradient has norm 1 (or is all zero).
    `check_norms`, if given, is applied to the norms before dividing (a
    non-finite entry makes its feature's norm non-finite, so checking the
    norms checks the gradient, at the cost of one value per feature).
    """
    norms = feature_norm(grad, feature_axes, norm)
    if check_norms is not None:
        norms = check_norms(norms)
    return grad * tf.math.reciprocal(norms + epsilon)
