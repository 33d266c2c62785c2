import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_scl


def test_value_is_strength_times_count_of_positive_entries():
    m = np.random.default_rng(0).standard_normal((30, 7)).astype("float32")
    m[0, :3] = 0.0  # exactly zero is not live
    reg = keras_scl.LiveConnections(0.25)
    assert float(reg(tf.constant(m))) == pytest.approx(0.25 * np.count_nonzero(m > 0))


@pytest.mark.parametrize(
    "ste, expected",
    [
        pytest.param("identity", lambda m: np.ones_like(m), id="identity"),
        pytest.param(keras_scl.LeakyReLUSTE(0.5), lambda m: np.where(m > 0, 1.0, 0.5), id="leaky_relu"),
    ],
)
def test_gradient_is_strength_times_proxy(ste, expected):
    m = tf.Variable(np.linspace(-1, 1, 8).astype("float32"))
    with tf.GradientTape() as tape:
        value = keras_scl.LiveConnections(3.0, ste=ste)(m)
    np.testing.assert_allclose(tape.gradient(value, m).numpy(), 3.0 * expected(m.numpy()))


@pytest.mark.parametrize(
    "ste, expected",
    [
        pytest.param("identity", lambda m: np.ones_like(m), id="identity"),
        pytest.param(keras_scl.LeakyReLUSTE(0.5), lambda m: np.where(m > 0, 1.0, 0.5), id="leaky_relu"),
        pytest.param(keras_scl.SoftplusSTE(2.0), lambda m: 1.0 / (1.0 + np.exp(-2.0 * m)), id="softplus"),
    ],
)
def test_non_differentiable_value_gives_its_gradient_apart(ste, expected):
    m = tf.Variable(np.linspace(-1, 1, 8).astype("float32"))
    reg = keras_scl.LiveConnections(3.0, ste=ste, differentiable=False)
    with tf.GradientTape() as tape:
        value = reg(m)
    assert float(value) == pytest.approx(3.0 * np.count_nonzero(m.numpy() > 0))
    assert tape.gradient(value, m) is None
    gradient = np.broadcast_to(reg.gradient(m).numpy(), m.shape)
    np.testing.assert_allclose(gradient, 3.0 * expected(m.numpy()), rtol=1e-6)
    # The same gradient as the differentiable regularizer's.
    with tf.GradientTape() as tape:
        value = keras_scl.LiveConnections(3.0, ste=ste)(m)
    np.testing.assert_allclose(gradient, tape.gradient(value, m).numpy(), rtol=1e-6)


def test_differentiable_must_be_a_bool():
    with pytest.raises(TypeError, match=r"Expected `differentiable` to be a bool\. Received: differentiable=0"):
        keras_scl.LiveConnections(1.0, differentiable=0)


def test_config_round_trip():
    reg = keras_scl.LiveConnections(0.125, ste=keras_scl.SoftplusSTE(2.0), differentiable=False)
    restored = keras.regularizers.deserialize(keras.regularizers.serialize(reg))
    assert isinstance(restored, keras_scl.LiveConnections)
    assert restored.get_config() == reg.get_config()
    assert restored.differentiable is False
    assert restored.ste == keras_scl.SoftplusSTE(2.0)


@pytest.mark.parametrize("strength", [-1e-3, float("nan"), float("inf"), "1e-3", True], ids=["negative", "nan", "inf", "string", "bool"])
def test_rejects_invalid_strength(strength):
    with pytest.raises(ValueError, match=r"Expected `strength` to be a finite number >= 0\. Received: strength="):
        keras_scl.LiveConnections(strength)


def test_strength_can_be_a_scalar_variable_read_at_each_call():
    strength = keras.Variable(0.5, dtype="float32", trainable=False)
    reg = keras_scl.LiveConnections(strength)
    m = tf.constant([1.0, 2.0, -1.0])
    assert float(reg(m)) == pytest.approx(1.0)
    strength.assign(2.0)
    assert float(reg(m)) == pytest.approx(4.0)
    assert reg.get_config()["strength"] == 2.0


def test_strength_variable_must_be_scalar():
    with pytest.raises(ValueError, match=r"scalar variable\. Received: a variable of shape \(2,\)"):
        keras_scl.LiveConnections(keras.Variable([1.0, 2.0]))
