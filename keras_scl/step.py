"""The unit step `H(m) = 1[m > 0]` and its straight-through estimators (STEs).

The forward pass of every estimator is the exact unit step; estimators differ
only in the proxy they use for `dH/dm` in the backward pass. The SCL paper
shows that the proxy must be positive for the mask variables to converge, so
every built-in proxy is positive and custom proxies are checked.
"""

import numpy as np
import tensorflow as tf

from keras_scl.registration import register
from keras_scl.validation import check_number


def heaviside(m):
    """Unit step without gradient: `1` where `m > 0`, else `0`."""
    m = tf.convert_to_tensor(m)
    return tf.cast(m > 0, m.dtype)


def _check_positive_finite(name, value):
    return check_number(
        name, value, minimum=0, strict=True,
        reason=", because a straight-through estimator's proxy gradient must be positive",
    )


def masked_weight_and_live(w, m, ste, update_pruned=True):
    """`w * H(m)`, with `ste`'s proxy for `dH/dm` in the mask's gradient,
    and the number of live connections, `sum(H(m))` in `m`'s dtype (no
    gradient), counted from the same `H(m)`.

    The mask's gradient is `ste.backward(w * g, m)` for an upstream gradient
    `g`. The weight's is `g * H(m)` with `update_pruned=False`: a pruned
    weight gets none and keeps its value. With `update_pruned=True` it is `g`
    itself: a pruned weight goes on learning as if it were live (as Dynamic
    Network Surgery updates pruned weights), so the gradient of its mask,
    `w * g`, follows the weight's sign, and a connection whose weight had to
    change sign is not lost for good. That variant also saves the backward
    pass's product with `H(m)`.
    """
    m = tf.convert_to_tensor(m)
    if not update_pruned:
        on = ste(m)
        return w * tf.cast(on, w.dtype), tf.reduce_sum(tf.stop_gradient(on))
    on = heaviside(m)

    @tf.custom_gradient
    def masked(w, m):
        def grad(upstream):
            # The weight's gradient is passed on as it comes: an embedding's
            # stays sparse (`IndexedSlices`), and the optimizer updates the
            # table as it would the unwrapped layer's.
            dense = tf.convert_to_tensor(upstream)
            return upstream, ste.backward(tf.cast(dense * w, m.dtype), m)

        return w * tf.cast(on, w.dtype), grad

    return masked(w, m), tf.reduce_sum(on)


class StraightThroughEstimator:
    """Base class: the unit step forward, `proxy(m)` as `dH/dm` backward.

    Subclasses implement `proxy(m)`, which must be positive for every `m`.
    Calling an estimator on a mask tensor returns `H(m)` with the proxy
    gradient attached.
    """

    def proxy(self, m):
        raise NotImplementedError

    def backward(self, upstream, m):
        """The gradient of the loss with respect to `m`, given `upstream`."""
        return upstream * tf.cast(self.proxy(m), upstream.dtype)

    def __call__(self, m):
        m = tf.convert_to_tensor(m)

        @tf.custom_gradient
        def step(x):
            return heaviside(x), lambda upstream: self.backward(upstream, x)

        return step(m)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@register
class IdentitySTE(StraightThroughEstimator):
    """Identity proxy, `dH/dm := 1`: the paper's choice and the default."""

    def proxy(self, m):
        return tf.ones_like(m)

    def backward(self, upstream, m):
        # Multiplying by a tensor of ones would cost a pass over the mask.
        return upstream


@register
class LeakyReLUSTE(StraightThroughEstimator):
    """Leaky ReLU proxy: `dH/dm := 1` for `m > 0`, else `alpha`.

    Args:
        alpha: float. Proxy for masks that are off; must be > 0.
            Defaults to `0.1`.
    """

    def __init__(self, alpha=0.1):
        self.alpha = _check_positive_finite("alpha", alpha)

    def proxy(self, m):
        return tf.where(m > 0, tf.constant(1.0, m.dtype), tf.constant(self.alpha, m.dtype))

    def get_config(self):
        return {"alpha": self.alpha}


@register
class SoftplusSTE(StraightThroughEstimator):
    """Softplus proxy: `dH/dm := sigmoid(beta * m)`, the derivative of
    `softplus(beta * m) / beta`.

    Args:
        beta: float. Sharpness of the proxy; must be > 0. Defaults to `1.0`.
    """

    def __init__(self, beta=1.0):
        self.beta = _check_positive_finite("beta", beta)

    def proxy(self, m):
        return tf.sigmoid(tf.cast(self.beta, m.dtype) * m)

    def get_config(self):
        return {"beta": self.beta}


# Probe points for custom proxies: both signs, near zero and far from it.
_PROBE = np.concatenate([-np.logspace(-4, 2, 13)[::-1], [0.0], np.logspace(-4, 2, 13)]).astype(
    "float32"
)


@register
class CustomSTE(StraightThroughEstimator):
    """A straight-through estimator with a user-supplied proxy.

    Args:
        proxy_fn: callable. Maps a mask tensor to the proxy of `dH/dm`,
            elementwise and with the same shape. Register it with
            `keras.saving.register_keras_serializable` to save models that
            use it.
        check_positive: bool. If `True`, `proxy_fn` is evaluated on probe
            values of `m` in `[-100, 100]` and rejected if any proxy is not
            positive, following the positivity principle of SCL. Set it to
            `False` only to study what the principle prevents.
            Defaults to `True`.
    """

    def __init__(self, proxy_fn, check_positive=True):
        if isinstance(proxy_fn, dict):
            proxy_fn = _deserialize(proxy_fn)
        if not callable(proxy_fn):
            raise TypeError(
                f"Expected `proxy_fn` to be callable. Received: proxy_fn={proxy_fn!r}"
            )
        self.proxy_fn = proxy_fn
        self.check_positive = bool(check_positive)
        if self.check_positive:
            values = np.asarray(proxy_fn(tf.constant(_PROBE)), dtype="float64")
            if values.shape != _PROBE.shape:
                raise ValueError(
                    "Expected `proxy_fn` to return a tensor of the same shape as "
                    f"its input. Received: output shape {values.shape} for input "
                    f"shape {_PROBE.shape}"
                )
            bad = ~(np.isfinite(values) & (values > 0))
            if bad.any():
                m = float(_PROBE[bad][0])
                raise ValueError(
                    "Expected a proxy gradient that is positive for every mask "
                    "value (the positivity principle of SCL). Received: "
                    f"proxy_fn({m})={float(values[bad][0])}"
                )

    def proxy(self, m):
        return self.proxy_fn(m)

    def get_config(self):
        from keras.saving import serialize_keras_object

        return {
            "proxy_fn": serialize_keras_object(self.proxy_fn),
            "check_positive": self.check_positive,
        }


def _deserialize(config):
    from keras.saving import deserialize_keras_object

    return deserialize_keras_object(config)


_BY_NAME = {
    "identity": IdentitySTE,
    "leaky_relu": LeakyReLUSTE,
    "softplus": SoftplusSTE,
}


def get(identifier):
    """Returns a `StraightThroughEstimator` for a name, config, instance or callable.

    Args:
        identifier: One of `"identity"`, `"leaky_relu"`, `"softplus"`, a
            `StraightThroughEstimator`, its serialized dict, or a callable
            proxy (wrapped in a checked `CustomSTE`).
    """
    if isinstance(identifier, StraightThroughEstimator):
        return identifier
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(
                f"Expected `ste` to be one of {sorted(_BY_NAME)}, a "
                "StraightThroughEstimator or a callable proxy. "
                f"Received: ste={identifier!r}"
            )
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict):
        ste = _deserialize(identifier)
        if isinstance(ste, StraightThroughEstimator):
            return ste
    elif callable(identifier):
        return CustomSTE(identifier)
    raise TypeError(
        f"Expected `ste` to be one of {sorted(_BY_NAME)}, a "
        "StraightThroughEstimator or a callable proxy. "
        f"Received: ste={identifier!r}"
    )


def serialize(ste):
    from keras.saving import serialize_keras_object

    return serialize_keras_object(ste)
