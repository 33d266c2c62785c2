import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_scl
from helpers import randomize_masks
from helpers import save_and_reload


def _sequential():
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(3, name="classifier"),
        ]
    )


def _functional():
    inputs = keras.Input((10,))
    a = keras.layers.Dense(8, activation="relu", name="a")(inputs)
    b = keras.layers.Dense(8, activation="relu", name="b")(inputs)
    merged = keras.layers.Concatenate(name="concat")([a, b])
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(merged))


def _x(model, seed=0):
    return np.random.default_rng(seed).standard_normal((4, *model.input_shape[1:])).astype("float32")


def _wrapped_names(model):
    return sorted(w.layer.name for w in model.layers if isinstance(w, keras_scl.SCLWrapper))


@pytest.mark.parametrize("build", [_sequential, _functional], ids=["sequential", "functional"])
def test_prune_wraps_supported_layers_and_keeps_outputs(build):
    model = build()
    pruned = keras_scl.prune_scl(model)
    assert type(pruned) is type(model)
    supported = sorted(l.name for l in model.layers if isinstance(l, (keras.layers.Dense, keras.layers.Conv2D)))
    assert _wrapped_names(pruned) == supported
    x = _x(model)
    np.testing.assert_allclose(pruned(x), model(x), rtol=1e-6, atol=1e-6)


def test_unsupported_layers_inside_model_are_kept_as_they_are():
    pruned = keras_scl.prune_scl(_sequential())
    kinds = [type(l).__name__ for l in pruned.layers]
    assert kinds == ["SCLWrapper", "BatchNormalization", "MaxPooling2D", "Flatten", "SCLWrapper", "SCLWrapper"]


def test_original_model_is_not_shared_or_modified():
    model = _sequential()
    before = [w.numpy() for w in model.weights]
    pruned = keras_scl.prune_scl(model)
    for w in pruned.trainable_weights:
        w.assign(w.numpy() + 1.0)
    assert not {id(l) for l in model.layers} & {id(getattr(l, "layer", l)) for l in pruned.layers}
    for w, old in zip(model.weights, before):
        np.testing.assert_array_equal(w.numpy(), old)


@pytest.mark.parametrize(
    "exclude",
    [pytest.param("classifier", id="name"), pytest.param(["classifier"], id="names"), pytest.param(lambda l: l.name == "classifier", id="predicate")],
)
def test_exclude_leaves_chosen_layers_dense(exclude):
    pruned = keras_scl.prune_scl(_sequential(), exclude=exclude)
    assert _wrapped_names(pruned) == ["conv", "hidden"]
    assert isinstance(pruned.get_layer("classifier"), keras.layers.Dense)


def test_options_reach_every_wrapper():
    pruned = keras_scl.prune_scl(_functional(), ste="softplus", strength=1e-3, initial_mask=0.4)
    wrappers = [l for l in pruned.layers if isinstance(l, keras_scl.SCLWrapper)]
    assert len(wrappers) == 3
    for w in wrappers:
        assert (w.strength, w.initial_mask, w.ste) == (1e-3, 0.4, keras_scl.SoftplusSTE())


def test_already_wrapped_layers_are_not_wrapped_twice():
    once = keras_scl.prune_scl(_sequential())
    twice = keras_scl.prune_scl(once)
    assert [type(l).__name__ for l in twice.layers] == [type(l).__name__ for l in once.layers]
    assert all(not isinstance(l.layer, keras_scl.SCLWrapper) for l in twice.layers if isinstance(l, keras_scl.SCLWrapper))


def test_nested_model_is_pruned_recursively():
    inner = _functional()
    outer = keras.Sequential([keras.Input((10,)), inner, keras.layers.Dense(1, name="head")])
    pruned = keras_scl.prune_scl(outer)
    assert len(keras_scl.mask_stats(pruned)) == 4
    x = _x(outer)
    np.testing.assert_allclose(pruned(x), outer(x), rtol=1e-6, atol=1e-6)
    stripped = keras_scl.strip_scl(pruned)
    assert not keras_scl.mask_stats(stripped)
    np.testing.assert_array_equal(stripped(x), pruned(x))


def test_prune_single_layer_returns_wrapper_around_it():
    layer = keras.layers.Dense(3)
    wrapper = keras_scl.prune_scl(layer, strength=1e-4)
    assert isinstance(wrapper, keras_scl.SCLWrapper) and wrapper.layer is layer and wrapper.strength == 1e-4


def test_strip_bakes_masks_into_exact_zeros_and_keeps_predictions(tmp_path):
    pruned = keras_scl.prune_scl(_sequential())
    for w in pruned.layers:
        if isinstance(w, keras_scl.SCLWrapper):
            randomize_masks(w)
    x = _x(pruned)
    stripped = keras_scl.strip_scl(pruned)
    np.testing.assert_array_equal(stripped.predict(x, verbose=0), pruned.predict(x, verbose=0))
    for w in pruned.layers:
        if isinstance(w, keras_scl.SCLWrapper):
            kernel = stripped.get_layer(w.layer.name).kernel.numpy()
            mask = w.masks[0].numpy()
            np.testing.assert_array_equal(kernel == 0, mask <= 0)
    # No keras_scl object is left: the stripped model loads in a process
    # that never imported keras_scl (checked on the saved config here).
    stripped.save(tmp_path / "s.keras")
    import zipfile

    config = zipfile.ZipFile(tmp_path / "s.keras").read("config.json").decode()
    assert "keras_scl" not in config and "_mask" not in config
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "s.keras").predict(x, verbose=0), stripped.predict(x, verbose=0))


def test_strip_does_not_modify_wrapped_model():
    pruned = keras_scl.prune_scl(_functional())
    before = [w.numpy() for w in pruned.weights]
    keras_scl.strip_scl(pruned)
    for w, old in zip(pruned.weights, before):
        np.testing.assert_array_equal(w.numpy(), old)


def test_exported_stripped_model_reloads_with_same_outputs(tmp_path):
    pruned = keras_scl.prune_scl(_sequential())
    for w in pruned.layers:
        if isinstance(w, keras_scl.SCLWrapper):
            randomize_masks(w)
    stripped = keras_scl.strip_scl(pruned)
    stripped.export(str(tmp_path / "exported"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "exported"))
    x = _x(pruned)
    np.testing.assert_allclose(loaded.serve(x).numpy(), pruned.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_wrapped_functional_model_save_load(tmp_path):
    pruned = keras_scl.prune_scl(_functional())
    for w in pruned.layers:
        if isinstance(w, keras_scl.SCLWrapper):
            randomize_masks(w)
    restored = save_and_reload(pruned, str(tmp_path / "p.keras"))
    x = _x(pruned)
    np.testing.assert_array_equal(restored(x), pruned(x))


def test_strip_model_without_wrappers_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Expected a model containing SCLWrapper layers to strip\. Received: model .* which has none"):
        keras_scl.strip_scl(_functional())


def test_strip_rejects_non_model():
    with pytest.raises(TypeError, match="Expected an SCLWrapper or a keras.Model to strip"):
        keras_scl.strip_scl(keras.layers.Dense(2))


def test_prune_model_without_supported_layer_is_a_clear_error():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.1)])
    with pytest.raises(ValueError, match=r"at least one layer of a supported type"):
        keras_scl.prune_scl(model)


def test_prune_rejects_unsupported_single_layer():
    with pytest.raises(ValueError, match=r"Expected a layer of a supported type \(.*Received: layer='pool'"):
        keras_scl.prune_scl(keras.layers.MaxPooling2D(name="pool"))


def test_prune_rejects_tensor():
    with pytest.raises(TypeError, match=r"(?s)Expected `to_prune` to be a keras.layers.Layer or a keras.Model\. Received: .*EagerTensor"):
        keras_scl.prune_scl(tf.ones((2,)))


def test_prune_rejects_bad_options_before_cloning():
    with pytest.raises(ValueError, match="Received: strength=-0.5"):
        keras_scl.prune_scl(_functional(), strength=-0.5)


def test_prune_rejects_subclassed_model_with_guidance():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(ValueError, match="subclassed model"):
        keras_scl.prune_scl(Net())


@pytest.mark.parametrize("function", [keras_scl.prune_scl, keras_scl.strip_scl], ids=["prune", "strip"])
def test_a_file_path_instead_of_a_model_is_a_clear_error(function):
    with pytest.raises(TypeError, match=r"Received: .*='model.keras' of type str"):
        function("model.keras")


def test_a_loaded_plain_model_is_not_a_keras_scl_model(tmp_path):
    _functional().save(tmp_path / "plain.keras")
    with pytest.raises(ValueError, match="which has none"):
        keras_scl.strip_scl(keras.saving.load_model(tmp_path / "plain.keras"))


def test_stripped_model_is_uncompiled_and_carries_no_scl_optimizer():
    class PrivateAdam(keras.optimizers.Adam):  # not registered: cannot be deserialized
        pass

    pruned = keras_scl.prune_scl(_sequential())
    pruned.compile(optimizer=keras_scl.SCLOptimizer(PrivateAdam(1e-3)), loss="mse")
    stripped = keras_scl.strip_scl(pruned)
    assert not stripped.compiled
    assert pruned.compiled and isinstance(pruned.optimizer, keras_scl.SCLOptimizer)
    model = _functional()
    model.compile(optimizer="adam", loss="mse")
    assert not keras_scl.prune_scl(model).compiled and model.compiled
