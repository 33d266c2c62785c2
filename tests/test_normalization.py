import numpy as np
import pytest
import tensorflow as tf

from keras_scl.normalization import feature_norm
from keras_scl.normalization import normalize_per_feature


def _numpy_norm(g, feature_axes, norm):
    axes = tuple(a for a in range(g.ndim) if a not in feature_axes)
    if norm == "rms":
        return np.sqrt(np.mean(g**2, axis=axes, keepdims=True))
    if norm == "l2":
        return np.sqrt(np.sum(g**2, axis=axes, keepdims=True))
    return np.mean(np.abs(g), axis=axes, keepdims=True)


CASES = [
    pytest.param((6, 4), (1,), id="dense"),
    pytest.param((3, 3, 2, 5), (3,), id="conv2d"),
    pytest.param((3, 3, 5, 2), (2,), id="conv2d_transpose"),
    pytest.param((3, 3, 2, 4), (2, 3), id="depthwise"),
    pytest.param((5, 2, 4), (1, 2), id="einsum"),
]


@pytest.mark.parametrize("norm", ["rms", "l2", "mean_abs"])
@pytest.mark.parametrize("shape, feature_axes", CASES)
def test_matches_numpy_reference(shape, feature_axes, norm):
    g = np.random.default_rng(0).standard_normal(shape).astype("float32")
    g *= np.arange(1, shape[feature_axes[0]] + 1).reshape(
        [-1 if a == feature_axes[0] else 1 for a in range(len(shape))]
    )  # unbalanced features
    got = normalize_per_feature(tf.constant(g), feature_axes, norm, epsilon=0.0).numpy()
    np.testing.assert_allclose(got, g / _numpy_norm(g, feature_axes, norm), rtol=1e-5)


@pytest.mark.parametrize("shape, feature_axes", CASES)
def test_every_feature_has_unit_rms_and_normalising_twice_changes_nothing(shape, feature_axes):
    g = tf.constant(np.random.default_rng(1).standard_normal(shape).astype("float32") * 1e-4)
    once = normalize_per_feature(g, feature_axes)
    np.testing.assert_allclose(feature_norm(once, feature_axes).numpy(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(normalize_per_feature(once, feature_axes).numpy(), once.numpy(), rtol=1e-5)


def test_invariant_to_per_feature_scaling():
    g = np.random.default_rng(2).standard_normal((7, 3)).astype("float32")
    scaled = g * np.array([1e-3, 1.0, 1e3], dtype="float32")
    np.testing.assert_allclose(
        normalize_per_feature(tf.constant(g), (1,)).numpy(),
        normalize_per_feature(tf.constant(scaled), (1,)).numpy(),
        rtol=1e-5,
    )


def test_all_zero_feature_stays_zero():
    g = np.zeros((4, 2), dtype="float32")
    g[:, 1] = 1.0
    out = normalize_per_feature(tf.constant(g), (1,)).numpy()
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[:, 0], 0.0)


def test_unknown_norm_is_rejected():
    with pytest.raises(ValueError, match="Received: norm='max'"):
        feature_norm(tf.ones((2, 2)), (1,), "max")
