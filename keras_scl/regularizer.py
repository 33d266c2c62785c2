"""The live-connection regularizer: `strength * sum(H(m))`."""

import keras
import tensorflow as tf

from keras_scl import step
from keras_scl.registration import register
from keras_scl.validation import check_number


def check_strength(strength):
    return check_number("strength", strength, minimum=0, strict=False)


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

    Example:

    >>> reg = LiveConnections(0.5)
    >>> float(reg(tf.constant([1.0, -2.0, 3.0])))
    1.0
    """

    def __init__(self, strength, ste="identity"):
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

    def __call__(self, mask):
        mask = tf.convert_to_tensor(mask)
        live = tf.reduce_sum(self.ste(tf.cast(mask, "float32")))
        return tf.cast(tf.convert_to_tensor(self.strength), live.dtype) * live

    def get_config(self):
        strength = self.strength
        if isinstance(strength, keras.Variable):
            strength = float(strength.numpy())
        return {"strength": strength, "ste": step.serialize(self.ste)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
