"""`shrink`: dead units, filters and channels go; predictions stay."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import keras_scl
from helpers import randomize_masks
from helpers import save_and_reload

L = keras.layers


def _kill(layer, reads=(), units=(), bias=0.5, attribute="kernel"):
    """Zeroes the kernel where `layer` reads input channels `reads`, and every
    incoming weight of its output channels `units`, whose bias becomes `bias`
    (so each such unit outputs the constant `activation(bias)`)."""
    kernel = getattr(layer, attribute).numpy()
    kernel[..., list(reads), :] = 0
    kernel[..., list(units)] = 0
    getattr(layer, attribute).assign(kernel)
    if units and layer.use_bias:
        b = layer.bias.numpy()
        b[list(units)] = bias
        layer.bias.assign(b)


def _random_biases(model, seed=3):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.uniform(-0.5, 0.5, layer.bias.shape).astype("float32"))
        if isinstance(layer, L.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype("float32"))
            layer.beta.assign(rng.uniform(-0.5, 0.5, c).astype("float32"))
            layer.moving_mean.assign(rng.uniform(-0.5, 0.5, c).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, c).astype("float32"))


def _x(model, batch=8, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, *model.input_shape[1:])).astype("float32")


def _shrunk(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "nothing to remove": tests read the report
        shrunk, report = keras_scl.shrink(model, verbose=False, return_report=True)
    return shrunk, report, {w.layer: (w.before, w.after) for w in report.widths}


def _assert_same_predictions(model, shrunk, x, graph=True):
    if graph:
        expected, actual = model.predict(x, verbose=0), shrunk.predict(x, verbose=0)
    else:
        expected, actual = model(x, training=False).numpy(), shrunk(x, training=False).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def _functional(layers, input_shape, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, name="x")
    x = inputs
    for layer in layers:
        x = layer(x)
    model = keras.Model(inputs, x)
    _random_biases(model)
    return model


# Each case: a model with some units dead (no live outgoing connection, or
# no live incoming one with a non-zero bias), and the widths expected after.


def _dense():
    model = _functional([L.Dense(8, "relu", name="a"), L.Dense(6, "tanh", name="b"), L.Dense(3, name="out")], (10,))
    _kill(model.get_layer("a"), reads=[2, 7], units=[1])  # inputs 2 and 7 unread, unit a1 = relu(0.5)
    _kill(model.get_layer("b"), reads=[5], units=[4])  # a5 has no outgoing connection, b4 = tanh(0.5)
    return model, {"x": (10, 8), "a": (8, 6), "b": (6, 5), "out": (3, 3)}


def _conv1d():
    layers = [
        L.Conv1D(5, 3, activation="relu", name="a"),
        L.Conv1D(4, 3, name="b"),
        L.Flatten(name="f"),
        L.Dense(2, name="out"),
    ]
    model = _functional(layers, (12, 3))
    _kill(model.get_layer("a"), reads=[0], units=[2])  # a2 constant, folded through a 'valid' window
    _kill(model.get_layer("b"), reads=[4])
    return model, {"x": (3, 2), "a": (5, 3), "b": (4, 4)}


def _conv2d():
    layers = [
        L.Conv2D(6, 3, padding="same", activation="relu", name="a"),
        L.MaxPooling2D(name="pool"),
        L.Conv2D(4, 3, name="b"),
        L.GlobalAveragePooling2D(name="gap"),
        L.Dense(2, name="out"),
    ]
    model = _functional(layers, (8, 8, 3))
    _kill(model.get_layer("a"), units=[0, 3])  # constants, max-pooled, then folded through 'valid'
    _kill(model.get_layer("b"), reads=[5], units=[1])  # b1 = 0.5 averaged and folded into out
    return model, {"a": (6, 3), "pool": (6, 3), "b": (4, 3), "gap": (4, 3)}


def _depthwise():
    layers = [
        L.Conv2D(4, 1, activation="relu", name="a"),
        L.DepthwiseConv2D(3, depth_multiplier=2, name="dw"),
        L.Conv2D(3, 1, name="b"),
        L.Flatten(),
        L.Dense(2, name="out"),
    ]
    model = _functional(layers, (6, 6, 2))
    _kill(model.get_layer("b"), reads=[2, 3, 6])  # dw outputs 2, 3 (input channel 1) and 6
    _kill(model.get_layer("a"), units=[3])  # a3 constant: dw outputs 6, 7 fold into b
    return model, {"a": (4, 2), "dw": (8, 4), "b": (3, 3)}


def _separable():
    layers = [
        L.SeparableConv2D(5, 3, depth_multiplier=2, activation="relu", name="a"),
        L.SeparableConv2D(4, 3, depth_multiplier=2, name="b"),
        L.GlobalMaxPooling2D(),
        L.Dense(2, name="out"),
    ]
    model = _functional(layers, (7, 7, 3))
    _kill(model.get_layer("a"), units=[1], attribute="pointwise_kernel")
    b = model.get_layer("b")
    kernel = b.pointwise_kernel.numpy()
    kernel[:, :, 6:8, :] = 0  # both middle channels of input a3
    b.pointwise_kernel.assign(kernel)
    return model, {"a": (5, 3), "b": (4, 4)}


def _batchnorm():
    layers = [
        L.Conv2D(5, 3, name="a"),
        L.BatchNormalization(name="bn"),
        L.ReLU(name="relu"),
        L.Conv2D(3, 3, name="b"),
        L.Flatten(),
        L.Dense(2, name="out"),
    ]
    model = _functional(layers, (7, 7, 2))
    _kill(model.get_layer("a"), units=[2])  # constant through batch norm and ReLU, folded
    _kill(model.get_layer("b"), reads=[4])
    return model, {"a": (5, 3), "bn": (5, 3), "relu": (5, 3), "b": (3, 3)}


def _flatten():
    layers = [L.Conv2D(4, 2, activation="sigmoid", name="a"), L.Flatten(name="f"), L.Dense(3, name="out")]
    model = _functional(layers, (4, 4, 2))
    _kill(model.get_layer("a"), units=[0])  # sigmoid(0.5) at all 9 positions, folded
    out = model.get_layer("out")
    kernel = out.kernel.numpy()
    kernel[np.arange(9) * 4 + 2] = 0  # filter a2 at every position
    out.kernel.assign(kernel)
    return model, {"a": (4, 2), "f": (36, 18)}


def _pooling():
    layers = [
        L.Conv1D(4, 3, padding="same", name="a"),
        L.AveragePooling1D(2, padding="same", name="avg"),
        L.MaxPooling1D(2, name="max"),
        L.Conv1D(3, 1, padding="same", name="b"),
        L.GlobalAveragePooling1D(),
        L.Dense(2, name="out"),
    ]
    model = _functional(layers, (9, 2))
    _kill(model.get_layer("a"), units=[1])  # constant, pooled, folded by a 1x1 'same' window
    return model, {"a": (4, 3), "avg": (4, 3), "max": (4, 3)}


def _dropout():
    layers = [L.Dense(6, "relu", name="a"), L.Dropout(0.5, name="drop"), L.Dense(2, name="out")]
    model = _functional(layers, (5,))
    _kill(model.get_layer("a"), units=[0])
    _kill(model.get_layer("out"), reads=[4])
    return model, {"a": (6, 4), "drop": (6, 4)}


def _add():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(4, 1, name="stem")(inputs)
    branch = L.Conv2D(4, 3, padding="same", name="branch")(x)
    y = L.Add(name="add")([x, branch])
    y = L.Conv2D(3, 1, name="head")(y)
    model = keras.Model(inputs, L.Dense(2, name="out")(L.Flatten()(y)))
    _random_biases(model)
    # Channel 3: read by neither the branch nor the head, it goes everywhere.
    # Channel 1: the head does not read the sum, but the branch reads the
    # stem's channel, so the sum's channel stays (the Add ties them).
    _kill(model.get_layer("head"), reads=[1, 3])
    _kill(model.get_layer("branch"), reads=[3])
    return model, {"stem": (4, 3), "branch": (4, 3), "add": (4, 3)}


def _concatenate():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    left = L.Dense(4, name="left")(inputs)
    right = L.Dense(3, "relu", name="right")(inputs)
    x = L.Concatenate(name="cat")([left, right])
    model = keras.Model(inputs, L.Dense(2, name="out")(x))
    _random_biases(model)
    _kill(model.get_layer("out"), reads=[1, 4])
    _kill(model.get_layer("right"), units=[2])
    return model, {"left": (4, 3), "right": (3, 1), "cat": (7, 4)}


CASES = {
    "dense": _dense,
    "conv1d": _conv1d,
    "conv2d": _conv2d,
    "depthwise_conv2d": _depthwise,
    "separable_conv2d": _separable,
    "batch_normalization": _batchnorm,
    "flatten": _flatten,
    "pooling": _pooling,
    "dropout": _dropout,
    "add_residual": _add,
    "concatenate": _concatenate,
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_shrink_removes_dead_units_keeps_predictions_saves_and_exports(case, tmp_path):
    model, expected = case()
    shrunk, report, widths = _shrunk(model)
    for name, before_after in expected.items():
        assert widths[name] == before_after, name
    assert report.removed_anything and not report.full_width
    assert shrunk.count_params() < model.count_params()
    x = _x(model)
    _assert_same_predictions(model, shrunk, x)
    reloaded = save_and_reload(shrunk, str(tmp_path / "shrunk.keras"))
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), shrunk.predict(x, verbose=0))
    shrunk.export(str(tmp_path / "export"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_allclose(served.serve(x).numpy(), shrunk.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_constant_channel_read_through_same_padding_is_kept():
    # Padding zeros make a constant input channel vary at the borders of the
    # next 3x3 'same' convolution, so it cannot be folded into a bias.
    model = _functional([L.Conv2D(4, 3, padding="same", name="a"), L.Conv2D(2, 3, padding="same", name="b")], (5, 5, 1))
    _kill(model.get_layer("a"), units=[1])
    shrunk, report, widths = _shrunk(model)
    assert widths["a"] == (4, 4)
    assert not report.removed_anything
    _assert_same_predictions(model, shrunk, _x(model), graph=False)


def test_same_padding_that_pads_nothing_folds_constants():
    # A 2x2 'same' window with stride 2 on a 6x6 input pads nothing.
    layers = [L.Conv2D(3, 1, name="a"), L.Conv2D(2, 2, strides=2, padding="same", name="b"), L.Flatten(), L.Dense(2)]
    model = _functional(layers, (6, 6, 2))
    _kill(model.get_layer("a"), units=[0])
    shrunk, _, widths = _shrunk(model)
    assert widths["a"] == (3, 2)
    _assert_same_predictions(model, shrunk, _x(model), graph=False)


def test_folding_a_constant_gives_a_layer_without_bias_one():
    layers = [L.Dense(4, "relu", name="a"), L.Dense(2, use_bias=False, name="out")]
    model = _functional(layers, (3,))
    _kill(model.get_layer("a"), units=[1])
    shrunk, _, widths = _shrunk(model)
    assert widths["a"] == (4, 3)
    assert shrunk.get_layer("out").use_bias
    _assert_same_predictions(model, shrunk, _x(model), graph=False)


def test_shared_layer_is_left_at_full_width():
    keras.utils.set_random_seed(0)
    shared = L.Dense(3, name="shared")
    inputs = keras.Input((4,))
    x = L.Dense(3, name="a")(inputs)
    model = keras.Model(inputs, shared(shared(x)))
    _kill(model.get_layer("a"), units=[0])
    shrunk, report, widths = _shrunk(model)
    assert widths["a"] == (3, 3)
    assert report.full_width == {"shared": "the layer is called 2 times"}
    _assert_same_predictions(model, shrunk, _x(model), graph=False)


def test_separable_conv2d_keeps_two_input_channels_where_one_is_read():
    # One channel would meet TensorFlow's oneDNN fault (docs/known-issues.md).
    model = _functional([L.SeparableConv2D(1, 1, name="sep"), L.Flatten(), L.Dense(2)], (4, 4, 3))
    _kill(model.get_layer("sep"), reads=[1, 2], attribute="depthwise_kernel")
    shrunk, _, widths = _shrunk(model)
    assert widths["x"] == (3, 2)
    _assert_same_predictions(model, shrunk, _x(model))  # in a tf.function


def test_unread_input_features_are_dropped_inside_the_model():
    model, _ = _dense()
    shrunk = keras_scl.shrink(model, verbose=False)
    assert shrunk.input_shape == model.input_shape
    # Flat features are gathered as rows of the transposed batch (fast in LiteRT).
    ops = [op.__class__.__name__ for op in shrunk.operations]
    assert ops[:5] == ["InputLayer", "Transpose", "Take", "Transpose", "Dense"]
    assert shrunk.get_layer("a").kernel.shape == (8, 6)
    _assert_same_predictions(model, shrunk, _x(model))


def test_unsupported_layer_is_left_at_full_width_with_its_reason():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 3))
    x = L.Dense(4, name="a")(inputs)
    x = L.LSTM(3, name="lstm")(x)
    model = keras.Model(inputs, L.Dense(2, name="out")(L.Dense(4, name="c")(x)))
    _random_biases(model)
    _kill(model.get_layer("a"), units=[0])  # read by the LSTM: kept
    _kill(model.get_layer("c"), units=[1])
    shrunk, report, widths = _shrunk(model)
    assert widths["a"] == (4, 4) and widths["lstm"] == (3, 3) and widths["c"] == (4, 3)
    assert report.full_width == {"lstm": "LSTM is not a layer kind shrink supports"}
    assert "lstm" in str(report) and "not a layer kind shrink supports" in str(report)
    _assert_same_predictions(model, shrunk, _x(model), graph=False)


def test_non_elementwise_activation_keeps_all_units():
    model = _functional([L.Dense(5, "softmax", name="a"), L.Dense(2, name="out")], (4,))
    _kill(model.get_layer("out"), reads=[0, 1])
    shrunk, report, widths = _shrunk(model)
    assert widths["a"] == (5, 5)
    assert report.full_width == {"a": "outputs kept: activation 'softmax' is not elementwise"}
    _assert_same_predictions(model, shrunk, _x(model), graph=False)


def test_layer_with_no_reader_is_removed():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    side = L.Dense(3, name="side")(inputs)
    main = L.Dense(3, name="main")(inputs)
    model = keras.Model(inputs, L.Dense(2, name="out")(L.Concatenate()([main, side])))
    _kill(model.get_layer("out"), reads=[3, 4, 5])
    shrunk, report, _ = _shrunk(model)
    assert report.removed_layers == ["side"]
    assert "side" not in [layer.name for layer in shrunk.layers]
    _assert_same_predictions(model, shrunk, _x(model), graph=False)


def test_nothing_to_remove_returns_the_same_function_and_says_so(capsys):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), L.Dense(4, "relu"), L.Dense(2)])
    with pytest.warns(UserWarning, match="nothing to remove"):
        shrunk = keras_scl.shrink(model)
    assert "nothing to remove" in capsys.readouterr().out
    assert shrunk.count_params() == model.count_params()
    x = _x(model)
    np.testing.assert_array_equal(shrunk.predict(x, verbose=0), model.predict(x, verbose=0))


def test_shrinks_sequential_stripped_model_and_leaves_it_unchanged():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,)), L.Dense(16, "relu"), L.Dense(8, "relu"), L.Dense(3)])
    pruned = keras_scl.prune_scl(model)
    for wrapper in pruned.layers:
        randomize_masks(wrapper)
        wrapper.masks[0].assign(wrapper.masks[0].numpy() - 1.2)
    stripped = keras_scl.strip_scl(pruned)
    weights = [w.copy() for w in stripped.get_weights()]
    shrunk, report, _ = _shrunk(stripped)
    assert isinstance(shrunk, keras.Model) and not isinstance(shrunk, keras.Sequential)
    assert report.removed_anything
    for before, after in zip(weights, stripped.get_weights()):
        np.testing.assert_array_equal(before, after)
    _assert_same_predictions(stripped, shrunk, _x(stripped, batch=64))


def test_shrink_refuses_wrapped_and_subclassed_models():
    model = keras.Sequential([keras.Input((3,)), L.Dense(2)])
    with pytest.raises(ValueError, match="call keras_scl.strip_scl"):
        keras_scl.shrink(keras_scl.prune_scl(model))
    with pytest.raises(TypeError, match="Expected a keras.Model"):
        keras_scl.shrink(L.Dense(2))

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="subclassed model"):
        keras_scl.shrink(Subclassed())


# A property over generated stacks: random layer kinds, random exact zeros
# (whole rows, whole columns and single entries), random biases.


def _generated_model(spec, seed):
    rng = np.random.default_rng(seed)
    image, conv_layers, dense_units = spec
    keras.utils.set_random_seed(seed)
    layers = []
    for kind, width, size, padding in conv_layers:
        if kind == "conv":
            layers.append(L.Conv2D(width, size, padding=padding, activation="relu"))
        elif kind == "depthwise":
            layers.append(L.DepthwiseConv2D(size, depth_multiplier=2, padding=padding, activation="tanh"))
        elif kind == "separable":
            layers.append(L.SeparableConv2D(width, size, padding=padding))
        elif kind == "batchnorm":
            layers.append(L.BatchNormalization())
        else:
            layers.append(L.MaxPooling2D(padding=padding))
    if conv_layers:
        layers.append(L.Flatten() if rng.random() < 0.5 else L.GlobalAveragePooling2D())
    layers += [L.Dense(units, activation="relu") for units in dense_units] + [L.Dense(3)]
    model = _functional(layers, (6, 6, 3) if image else (7,), seed=seed)
    for layer in model.layers:
        for name in ("kernel", "depthwise_kernel", "pointwise_kernel"):
            variable = getattr(layer, name, None)
            if variable is None or variable.shape[-1] == 3 and layer is model.layers[-1] and rng.random() < 0.5:
                continue
            kernel = variable.numpy()
            kernel[..., rng.random(kernel.shape[-2]) < 0.3, :] = 0
            kernel[..., rng.random(kernel.shape[-1]) < 0.3] = 0
            kernel[rng.random(kernel.shape) < 0.4] = 0
            variable.assign(kernel)
    return model


_conv_layer = st.tuples(
    st.sampled_from(["conv", "depthwise", "separable", "batchnorm", "pool"]),
    st.integers(2, 5),
    st.sampled_from([1, 3]),
    st.sampled_from(["valid", "same"]),
)
_stack = st.one_of(
    st.tuples(st.just(True), st.lists(_conv_layer, min_size=1, max_size=3), st.lists(st.integers(2, 8), max_size=1)),
    st.tuples(st.just(False), st.just([]), st.lists(st.integers(2, 8), min_size=1, max_size=3)),
)


@settings(derandomize=True, database=None, max_examples=10, deadline=None)
@given(spec=_stack, seed=st.integers(0, 2**16))
def test_property_shrink_keeps_predictions_of_generated_stacks(spec, seed):
    model = _generated_model(spec, seed)
    shrunk, report, _ = _shrunk(model)
    assert shrunk.count_params() <= model.count_params()
    _assert_same_predictions(model, shrunk, _x(model, batch=16, seed=seed), graph=False)
    # Shrinking again finds nothing left to remove.
    assert not _shrunk(shrunk)[1].removed_anything
