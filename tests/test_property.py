"""Property: for any supported layer configuration and input shape,
wrap -> train a step -> strip -> export -> reload never changes predictions.

The examples are the same on every run (see `conftest.py`: derandomized, no
example database).
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf
from hypothesis import HealthCheck
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import keras_scl
from helpers import grappler_remapping_off
from helpers import hits_onednn_fused_conv_bug
from helpers import randomize_masks


@st.composite
def layer_and_input(draw):
    kind = draw(st.sampled_from(["dense", "conv1d", "conv2d", "depthwise2d", "separable2d", "conv2d_transpose", "embedding", "einsum"]))
    units = draw(st.integers(1, 6))
    k = draw(st.integers(1, 3))
    channels = draw(st.integers(1, 4))
    size = draw(st.integers(k, k + 4))
    use_bias = draw(st.booleans())
    if kind == "dense":
        extra = draw(st.lists(st.integers(1, 4), max_size=2))
        return lambda: keras.layers.Dense(units, use_bias=use_bias), (*extra, channels), False
    if kind == "conv1d":
        return lambda: keras.layers.Conv1D(units, k, use_bias=use_bias), (size, channels), False
    if kind == "conv2d":
        padding = draw(st.sampled_from(["valid", "same"]))
        return lambda: keras.layers.Conv2D(units, k, padding=padding, use_bias=use_bias), (size, size, channels), False
    if kind == "depthwise2d":
        return lambda: keras.layers.DepthwiseConv2D(k, depth_multiplier=units, use_bias=use_bias), (size, size, channels), False
    if kind == "separable2d":
        return lambda: keras.layers.SeparableConv2D(units, k, use_bias=use_bias), (size, size, channels), False
    if kind == "conv2d_transpose":
        strides = draw(st.integers(1, 2))
        return lambda: keras.layers.Conv2DTranspose(units, k, strides=strides, use_bias=use_bias), (size, size, channels), False
    if kind == "embedding":
        return lambda: keras.layers.Embedding(draw(st.integers(2, 12)), units), (size,), True
    return lambda: keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, units), bias_axes="d" if use_bias else None), (size, channels), False


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=layer_and_input(), seed=st.integers(0, 2**16))
# The shape that meets the TensorFlow bug of tests/test_tensorflow_issues.py.
@example(case=(lambda: keras.layers.SeparableConv2D(1, 1), (3, 3, 1), False), seed=0)
def test_wrap_train_strip_export_reload_keeps_predictions(case, seed, tmp_path_factory):
    factory, shape, integer = case
    layer = factory()
    # A TensorFlow bug (tests/test_tensorflow_issues.py), not keras_scl's, breaks
    # Grappler's fused kernel for one layer shape, plain Keras included: run that
    # one unfused, so the property is still checked on it.
    bug = hits_onednn_fused_conv_bug(layer, shape)
    with grappler_remapping_off() if bug else contextlib.nullcontext():
        _check_round_trip(layer, shape, integer, seed, tmp_path_factory)


def _check_round_trip(layer, shape, integer, seed, tmp_path_factory):
    rng = np.random.default_rng(seed)
    if integer:
        x = rng.integers(0, layer.input_dim, size=(3, *shape)).astype("int32")
    else:
        x = rng.standard_normal((3, *shape)).astype("float32")
    inputs = keras.Input(shape, dtype="int32" if integer else "float32")
    wrapper = keras_scl.SCLWrapper(layer, strength=1e-2)
    model = keras.Model(inputs, wrapper(inputs))
    randomize_masks(wrapper, seed=seed)
    model.compile(optimizer=keras_scl.SCLOptimizer(keras.optimizers.SGD(0.01)), loss="mse")
    model.train_on_batch(x, np.zeros(model.output_shape[1:], "float32")[None].repeat(3, axis=0))
    expected = model.predict(x, verbose=0)
    stripped = keras_scl.strip_scl(model)
    np.testing.assert_array_equal(stripped.predict(x, verbose=0), expected)
    directory = str(tmp_path_factory.mktemp("export"))
    stripped.export(directory, verbose=False)
    reloaded = tf.saved_model.load(directory)
    np.testing.assert_allclose(reloaded.serve(x).numpy(), expected, rtol=1e-5, atol=1e-5)
