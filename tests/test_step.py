import numpy as np
import pytest
import tensorflow as tf

import keras_scl
from keras_scl import step

M = np.array([-3.0, -0.5, -1e-6, 0.0, 1e-6, 0.5, 3.0], dtype="float32")


def _gradient(ste, m, upstream):
    m = tf.constant(m)
    with tf.GradientTape() as tape:
        tape.watch(m)
        out = ste(m)
        loss = tf.reduce_sum(out * upstream)
    return out.numpy(), tape.gradient(loss, m).numpy()


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize(
    "ste, expected_proxy",
    [
        pytest.param(keras_scl.IdentitySTE(), np.ones_like(M), id="identity"),
        pytest.param(keras_scl.LeakyReLUSTE(0.2), np.where(M > 0, 1.0, 0.2), id="leaky_relu"),
        pytest.param(keras_scl.SoftplusSTE(2.0), _sigmoid(2.0 * M), id="softplus"),
        pytest.param(keras_scl.CustomSTE(lambda m: 1.0 + m * m), 1.0 + M * M, id="custom"),
    ],
)
def test_forward_is_exact_step_and_gradient_is_proxy(ste, expected_proxy):
    upstream = np.linspace(-2, 2, M.size).astype("float32")
    forward, grad = _gradient(ste, M, upstream)
    np.testing.assert_array_equal(forward, (M > 0).astype("float32"))
    np.testing.assert_allclose(grad, upstream * expected_proxy, rtol=1e-6)


def test_heaviside_at_zero_is_off():
    assert step.heaviside(tf.constant(0.0)).numpy() == 0.0


@pytest.mark.parametrize("name, cls", [("identity", keras_scl.IdentitySTE), ("leaky_relu", keras_scl.LeakyReLUSTE), ("softplus", keras_scl.SoftplusSTE)])
def test_get_by_name(name, cls):
    assert isinstance(step.get(name), cls)


@pytest.mark.parametrize(
    "ste",
    [keras_scl.IdentitySTE(), keras_scl.LeakyReLUSTE(0.3), keras_scl.SoftplusSTE(4.0)],
    ids=["identity", "leaky_relu", "softplus"],
)
def test_serialization_round_trip(ste):
    restored = step.get(step.serialize(ste))
    assert restored == ste
    assert restored.get_config() == ste.get_config()


def test_get_rejects_unknown_name():
    with pytest.raises(ValueError, match=r"Expected `ste` to be one of .* Received: ste='sign'"):
        step.get("sign")


def test_get_rejects_non_callable():
    with pytest.raises(TypeError, match="Received: ste=3"):
        step.get(3)


@pytest.mark.parametrize("alpha", [0.0, -0.1, float("nan"), float("inf")], ids=["zero", "negative", "nan", "inf"])
def test_leaky_relu_rejects_non_positive_alpha(alpha):
    with pytest.raises(ValueError, match=r"`alpha` to be a finite number > 0.*Received: alpha="):
        keras_scl.LeakyReLUSTE(alpha)


def test_softplus_rejects_non_positive_beta():
    with pytest.raises(ValueError, match=r"Received: beta=0"):
        keras_scl.SoftplusSTE(0)


def test_custom_proxy_negative_for_off_masks_is_rejected():
    with pytest.raises(ValueError, match=r"positivity principle.*Received: proxy_fn\(-100.0\)=-1.0"):
        keras_scl.CustomSTE(lambda m: tf.sign(m))


def test_custom_proxy_check_can_be_disabled_for_ablations():
    ste = keras_scl.CustomSTE(lambda m: tf.sign(m), check_positive=False)
    _, grad = _gradient(ste, M, np.ones_like(M))
    np.testing.assert_array_equal(grad, np.sign(M))


def test_callable_is_wrapped_in_checked_custom_ste():
    with pytest.raises(ValueError, match="positivity principle"):
        step.get(lambda m: -tf.ones_like(m))
