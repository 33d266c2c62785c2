"""Checkpoints and weight files carry the masks."""

import keras
import numpy as np
import tensorflow as tf

import keras_scl


def _trained(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras_scl.prune_scl(
        keras.Sequential([keras.Input((10,)), keras.layers.Dense(16, activation="relu", name="h"), keras.layers.Dense(2, name="o")]),
        strength=1e-3,
        initial_mask=0.02,
    )
    model.compile(optimizer=keras_scl.SCLOptimizer(keras.optimizers.Adam(1e-2)), loss="mse")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((128, 10)).astype("float32")
    y = x[:, :2]
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    return model, x


def _masks(model):
    return [m.numpy() for layer in model.layers for m in getattr(layer, "masks", [])]


def test_tf_train_checkpoint_restores_masks(tmp_path):
    model, x = _trained()
    masks = _masks(model)
    assert any((m <= 0).any() for m in masks)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    fresh, _ = _trained(seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(_masks(fresh), masks))
    tf.train.Checkpoint(model=fresh).restore(path).assert_existing_objects_matched()
    for a, b in zip(_masks(fresh), masks):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))


def test_model_checkpoint_weights_only_restores_masks_and_sparsity(tmp_path):
    model, x = _trained()
    path = str(tmp_path / "w.weights.h5")
    model.fit(
        x, x[:, :2], epochs=1, verbose=0, callbacks=[keras.callbacks.ModelCheckpoint(path, save_weights_only=True)]
    )
    sparsity = keras_scl.global_sparsity(keras_scl.mask_stats(model))
    assert sparsity > 0
    fresh, _ = _trained(seed=1)
    fresh.load_weights(path)
    assert keras_scl.global_sparsity(keras_scl.mask_stats(fresh)) == sparsity
    for a, b in zip(_masks(fresh), _masks(model)):
        np.testing.assert_array_equal(a, b)
