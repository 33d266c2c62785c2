"""Shared test helpers: layer cases, a reference forward pass, round trips."""

import contextlib

import keras
import numpy as np

import keras_scl

# (id, layer factory, input shape, integer inputs?)
LAYER_CASES = [
    ("dense", lambda: keras.layers.Dense(4), (3, 5), False),
    ("conv1d", lambda: keras.layers.Conv1D(4, 3), (2, 8, 3), False),
    ("conv2d", lambda: keras.layers.Conv2D(4, 3, padding="same"), (2, 6, 6, 3), False),
    ("conv3d", lambda: keras.layers.Conv3D(2, 2), (2, 4, 4, 4, 2), False),
    ("conv1d_transpose", lambda: keras.layers.Conv1DTranspose(3, 3), (2, 5, 2), False),
    ("conv2d_transpose", lambda: keras.layers.Conv2DTranspose(4, 3, strides=2), (2, 4, 4, 3), False),
    ("conv3d_transpose", lambda: keras.layers.Conv3DTranspose(2, 2), (2, 3, 3, 3, 2), False),
    ("depthwise_conv1d", lambda: keras.layers.DepthwiseConv1D(3, depth_multiplier=2), (2, 8, 3), False),
    ("depthwise_conv2d", lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (2, 6, 6, 3), False),
    ("separable_conv1d", lambda: keras.layers.SeparableConv1D(4, 3, depth_multiplier=2), (2, 8, 3), False),
    ("separable_conv2d", lambda: keras.layers.SeparableConv2D(4, 3, depth_multiplier=2), (2, 6, 6, 3), False),
    (
        "einsum_dense",
        lambda: keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 2, 4), bias_axes="de"),
        (2, 3, 5),
        False,
    ),
    ("embedding", lambda: keras.layers.Embedding(10, 4), (2, 6), True),
    ("simple_rnn", lambda: keras.layers.SimpleRNN(4), (2, 5, 3), False),
    ("lstm", lambda: keras.layers.LSTM(4, return_sequences=True), (2, 5, 3), False),
    ("gru", lambda: keras.layers.GRU(4), (2, 5, 3), False),
    ("bidirectional_lstm", lambda: keras.layers.Bidirectional(keras.layers.LSTM(3)), (2, 5, 3), False),
    ("time_distributed_dense", lambda: keras.layers.TimeDistributed(keras.layers.Dense(4)), (2, 5, 3), False),
]
LAYER_IDS = [case[0] for case in LAYER_CASES]


def make_input(shape, integer, seed=0):
    rng = np.random.default_rng(seed)
    if integer:
        return rng.integers(0, 10, size=shape).astype("int32")
    return rng.standard_normal(shape).astype("float32")


def randomize_masks(wrapper, seed=1):
    """Mask values of both signs, so about half the connections are pruned."""
    rng = np.random.default_rng(seed)
    for mask in wrapper.masks:
        mask.assign(rng.standard_normal(mask.shape).astype("float32"))


def reference_output(wrapper, x):
    """The wrapped layer's output computed by a fresh copy of the layer whose
    weights are `w * (m > 0)`, masked in NumPy."""
    layer = wrapper.layer
    reference = layer.__class__.from_config(layer.get_config())
    reference.build_from_config(layer.get_build_config())
    masked = {id(w): w.numpy() * (m.numpy() > 0) for w, m in wrapper.masked_weights}
    reference.set_weights([masked.get(id(w), w.numpy()) for w in layer.weights])
    return keras.ops.convert_to_numpy(reference(x))


def save_and_reload(model, path):
    model.save(path)
    return keras.saving.load_model(path)


def wrapped_model(case, **options):
    """A Functional model around one wrapped layer of `case`, with random masks."""
    _, factory, shape, integer = case
    inputs = keras.Input(shape[1:], dtype="int32" if integer else "float32")
    wrapper = keras_scl.SCLWrapper(factory(), **options)
    model = keras.Model(inputs, wrapper(inputs))
    randomize_masks(wrapper)
    return model, wrapper, make_input(shape, integer)


def hits_onednn_fused_conv_bug(layer, input_shape):
    """Whether a Keras `layer` on inputs of `input_shape` meets the TensorFlow
    bug pinned in `test_tensorflow_issues.py` when it runs in a `tf.function`
    (fit, predict, a reloaded SavedModel): with oneDNN on, Grappler fuses the
    pointwise convolution of a `SeparableConv2D` that reads a single channel
    with its bias add, and the fused kernel fails, with or without keras_scl."""
    return (
        isinstance(layer, keras.layers.SeparableConv2D)
        and layer.use_bias
        and input_shape[-1] * layer.depth_multiplier == 1
    )


@contextlib.contextmanager
def grappler_remapping_off():
    """Turns off Grappler's op fusion for the functions traced inside, then restores it."""
    import tensorflow as tf

    before = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"remapping": False})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"remapping": before.get("remapping", True)})
