"""The live-connection regularizer: `strength * sum(H(m))`."""

import weakref

import keras
import tensorflow as tf

from keras_scl import step
from keras_scl.registration import register
from keras_scl.validation import check_number


# Set on a mask variable by the forward pass that used it: a weak reference
# to the number of live connections it counted, in the graph being traced.
_LIVE_COUNT_ATTR = "_scl_live_count"


def check_strength(strength):
    return check_number("strength", strength, minimum=0, strict=False)


def note_live_count(mask, count):
    """Records `count`, the live connections of the mask variable `mask` that
    a forward pass being traced has counted from its `H(m)`, for the
    regularizer of the same trace to use instead of counting again."""
    if not tf.executing_eagerly():
        setattr(mask, _LIVE_COUNT_ATTR, weakref.ref(count))


def _noted_live_count(mask):
    """The count `note_live_count` recorded for `mask` in the graph being
    traced, or `None` (in eager mode, for a tensor, or for another graph)."""
    ref = getattr(mask, _LIVE_COUNT_ATTR, None)
    if ref is None or tf.executing_eagerly():
        return None
    count = ref()
    if count is None or count.graph is not tf.compat.v1.get_default_graph():
        return None
    return count


@register
class LiveConnections(keras.regularizers.Regularizer):
    """Penalises the number of live connections of a mask variable.

    On a mask variable `m` it returns `strength * sum(H(m))`, where `H` is the
    unit step: exactly `strength` times the number of positive entries. Its
    gradient goes through the straight-through estimator, so with the default
    identity estimator every mask entry is pushed down by `strength` at every
    step unless the task gradient holds it up.

    Args:
        strength: float, or a scalar variable when the factor `lambda` is to
            be adjusted during training (the wrappers do this). >= 0.
        ste: The straight-through estimator for the gradient, a name
            (`"identity"`, `"leaky_relu"`, `"softplus"`) or a
            `StraightThroughEstimator`. Defaults to `"identity"`.
        differentiable: bool. Whether the value carries its gradient
            `strength * proxy(m)`. With `False` the value is a constant to
            autodiff and `gradient(m)` gives that gradient instead:
            `SCLWrapper` does this, and `SCLOptimizer` adds the gradient
            to the mask's inside its update, which saves two passes over
            every mask per step (a broadcast and a sum). Inside a traced
            step such a value is the count the wrapper's forward pass made
            from the same `H(m)`, which saves two more (the step and its
            cast); elsewhere it counts for itself. Defaults to `True`.

    Example:

    >>> reg = LiveConnections(0.5)
    >>> float(reg(tf.constant([1.0, -2.0, 3.0])))
    1.0
    """

    def __init__(self, strength, ste="identity", differentiable=True):
        if isinstance(strength, keras.Variable):
            if tuple(strength.shape) != ():
                raise ValueError(
                    "Expected `strength` to be a number or a scalar variable. "
                    f"Received: a variable of shape {tuple(strength.shape)}"
                )
            # Its value is not read here: wrappers create it while a model may
            # be tracing (subclassed models build on first call).
            self.strength = strength  # adjustable during training (budget mode)
        else:
            self.strength = check_strength(strength)
        self.ste = step.get(ste)
        if not isinstance(differentiable, bool):
            raise TypeError(
                f"Expected `differentiable` to be a bool. Received: differentiable={differentiable!r}"
            )
        self.differentiable = differentiable

    def __call__(self, mask):
        live = None if self.differentiable else _noted_live_count(mask)
        if live is not None:
            # The forward pass of this trace has counted them already.
            live = tf.cast(live, "float32")
        elif self.differentiable:
            live = tf.reduce_sum(self.ste(tf.cast(tf.convert_to_tensor(mask), "float32")))
        else:
            mask = tf.cast(tf.convert_to_tensor(mask), "float32")
            live = tf.reduce_sum(step.heaviside(tf.stop_gradient(mask)))
        return tf.cast(tf.convert_to_tensor(self.strength), live.dtype) * live

    def gradient(self, mask):
        """`d(strength * live) / dm` through the estimator, in float32.

        The estimator's own backward pass with `strength` as the upstream
        gradient: a scalar for the identity estimator, which broadcasts
        against the mask without a pass over it (`mask`, a float32 tensor
        or variable, is then not read).
        """
        return self.ste.backward(tf.cast(tf.convert_to_tensor(self.strength), "float32"), mask)

    def get_config(self):
        strength = self.strength
        if isinstance(strength, keras.Variable):
            strength = float(strength.numpy())
        return {"strength": strength, "ste": step.serialize(self.ste), "differentiable": self.differentiable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
