"""Layers with sublayers, custom layers, shared layers and subclassed models."""

import keras
import numpy as np
import pytest

import keras_scl
from helpers import randomize_masks
from helpers import save_and_reload
from keras_scl.prunable import register_prunable_layer


def _randomize_all(model):
    for layer in keras_scl.wrapper.find_wrappers(model):
        randomize_masks(layer)


def test_recurrent_masks_cover_input_and_recurrent_kernels():
    wrapper = keras_scl.SCLWrapper(keras.layers.LSTM(4))
    wrapper(np.zeros((1, 3, 2), "float32"))
    assert [m.name for m in wrapper.masks] == ["kernel_mask", "recurrent_kernel_mask"]
    assert [tuple(m.shape) for m in wrapper.masks] == [(2, 16), (4, 16)]


def test_bidirectional_masks_are_distinct_per_direction():
    wrapper = keras_scl.SCLWrapper(keras.layers.Bidirectional(keras.layers.GRU(3)))
    wrapper(np.zeros((1, 4, 2), "float32"))
    names = [m.name for m in wrapper.masks]
    assert len(names) == 4 and len(set(names)) == 4


def _attention_model():
    q = keras.Input((5, 8))
    v = keras.Input((7, 8))
    out = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(q, v)
    return keras.Model([q, v], keras.layers.Dense(3, name="head")(out))


def test_multi_head_attention_projections_are_masked_and_strip_exactly(tmp_path):
    model = _attention_model()
    pruned = keras_scl.prune_scl(model)
    wrapper = next(w for w in keras_scl.wrapper.find_wrappers(pruned) if w.layer.name == "mha")
    assert sorted(m.name for m in wrapper.masks) == [
        "attention_output_kernel_mask",
        "key_kernel_mask",
        "query_kernel_mask",
        "value_kernel_mask",
    ]
    rng = np.random.default_rng(0)
    x = [rng.standard_normal((2, 5, 8)).astype("float32"), rng.standard_normal((2, 7, 8)).astype("float32")]
    np.testing.assert_allclose(pruned.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    _randomize_all(pruned)
    stripped = keras_scl.strip_scl(pruned)
    np.testing.assert_array_equal(stripped.predict(x, verbose=0), pruned.predict(x, verbose=0))
    np.testing.assert_array_equal(save_and_reload(pruned, str(tmp_path / "m.keras")).predict(x, verbose=0), pruned.predict(x, verbose=0))
    zeros = stripped.get_layer("mha")._query_dense.kernel.numpy() == 0
    np.testing.assert_array_equal(zeros, wrapper.masks[[m.name for m in wrapper.masks].index("query_kernel_mask")].numpy() <= 0)


@keras.saving.register_keras_serializable(package="tests")
class Scale(keras.layers.Layer):
    """A custom layer that opts in through the protocol."""

    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), name="w")

    def call(self, x):
        return keras.ops.matmul(x, self.w)

    def get_prunable_weights(self):
        return [self.w]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_custom_layer_with_protocol_is_pruned(tmp_path):
    model = keras.Sequential([keras.Input((4,)), Scale(3, name="scale")])
    pruned = keras_scl.prune_scl(model)
    wrapper = pruned.layers[0]
    assert isinstance(wrapper, keras_scl.SCLWrapper) and [m.name for m in wrapper.masks] == ["w_mask"]
    _randomize_all(pruned)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype("float32")
    expected = x @ (wrapper.layer.w.numpy() * (wrapper.masks[0].numpy() > 0))
    np.testing.assert_allclose(pruned.predict(x, verbose=0), expected, rtol=1e-5)
    np.testing.assert_array_equal(keras_scl.strip_scl(pruned).predict(x, verbose=0), pruned.predict(x, verbose=0))
    np.testing.assert_array_equal(save_and_reload(pruned, str(tmp_path / "c.keras")).predict(x, verbose=0), pruned.predict(x, verbose=0))


def test_registry_makes_a_custom_layer_prunable():
    class Plain(keras.layers.Layer):
        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], 2), name="kernel")

        def call(self, x):
            return keras.ops.matmul(x, self.kernel)

    with pytest.raises(ValueError, match="get_prunable_weights"):
        keras_scl.SCLWrapper(Plain())
    register_prunable_layer(Plain, lambda layer: [(layer.kernel, (-1,))])
    wrapper = keras_scl.SCLWrapper(Plain())
    wrapper(np.ones((1, 3), "float32"))
    assert wrapper.masks[0].shape == (3, 2)


def test_register_rejects_non_layer_class():
    with pytest.raises(TypeError, match="Expected a keras.layers.Layer subclass"):
        register_prunable_layer(int, lambda layer: [])


def test_shared_layer_keeps_one_mask():
    shared = keras.layers.Dense(4, name="shared")
    a, b = keras.Input((3,)), keras.Input((3,))
    model = keras.Model([a, b], keras.layers.Add()([shared(a), shared(b)]))
    pruned = keras_scl.prune_scl(model)
    wrappers = keras_scl.wrapper.find_wrappers(pruned)
    assert len(wrappers) == 1 and len(wrappers[0].masks) == 1
    _randomize_all(pruned)
    x = [np.ones((2, 3), "float32"), np.full((2, 3), 2.0, "float32")]
    kernel = wrappers[0].layer.kernel.numpy() * (wrappers[0].masks[0].numpy() > 0)
    bias = wrappers[0].layer.bias.numpy()
    np.testing.assert_allclose(pruned.predict(x, verbose=0), x[0] @ kernel + bias + x[1] @ kernel + bias, rtol=1e-5)


@keras.saving.register_keras_serializable(package="tests")
class SubclassedNet(keras.Model):
    """The documented way to prune a subclassed model: wrap layers where they are built."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras_scl.SCLWrapper(keras.layers.Dense(16, activation="relu"), strength=1e-3, initial_mask=0.05)
        self.out = keras_scl.SCLWrapper(keras.layers.Dense(2), strength=1e-3, initial_mask=0.05)

    def call(self, x):
        return self.out(self.hidden(x))


def test_subclassed_model_with_wrapped_layers_trains_and_reloads(tmp_path):
    keras.utils.set_random_seed(0)
    model = SubclassedNet()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    x = np.random.default_rng(0).standard_normal((64, 8)).astype("float32")
    # Masks train in every epoch: a subclassed model builds its layers in the first step.
    history = model.fit(x, x[:, :2], epochs=3, verbose=0, callbacks=[keras_scl.SCLCallback(freeze_masks_at_epoch=None)])
    assert isinstance(model.optimizer, keras_scl.SCLOptimizer)
    assert history.history["sparsity"][-1] > 0
    restored = save_and_reload(model, str(tmp_path / "s.keras"))
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
