"""Real architectures: wrap, train a few steps, strip, save/load and export."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_scl


def _transformer_encoder(seq=6, dim=16, vocab=20):
    tokens = keras.Input((seq,), dtype="int32")
    x = keras.layers.Embedding(vocab, dim, name="embed")(tokens)
    attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8, name="attention")(x, x)
    x = keras.layers.LayerNormalization(name="norm1")(x + attention)
    ff = keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 32), bias_axes="d", activation="relu", name="ff1")(x)
    ff = keras.layers.EinsumDense("abd,dc->abc", output_shape=(None, dim), bias_axes="c", name="ff2")(ff)
    x = keras.layers.LayerNormalization(name="norm2")(x + ff)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(tokens, keras.layers.Dense(3, name="classifier")(x))


CASES = [
    pytest.param(
        lambda: keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=4),
        (32, 32, 3),
        False,
        id="mobilenet_v2",
    ),
    pytest.param(_transformer_encoder, (6,), True, id="transformer_encoder"),
]


@pytest.mark.parametrize("build, shape, integer", CASES)
def test_wrap_train_strip_save_export(build, shape, integer, tmp_path):
    keras.utils.set_random_seed(0)
    model = build()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 20, size=(8, *shape)).astype("int32") if integer else rng.random((8, *shape)).astype("float32")
    y = rng.integers(0, model.output_shape[-1], size=8)
    pruned = keras_scl.prune_scl(model, strength=1e-3, initial_mask=0.01)
    assert keras_scl.mask_stats(pruned)
    pruned.compile(
        optimizer=keras_scl.SCLOptimizer(keras.optimizers.Adam(1e-2)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=integer),
    )
    history = pruned.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[keras_scl.SCLCallback()])
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["sparsity"][-1] > 0
    expected = pruned.predict(x, verbose=0)
    stripped = keras_scl.strip_scl(pruned)
    np.testing.assert_allclose(stripped.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    pruned.save(tmp_path / "wrapped.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "wrapped.keras").predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    stripped.export(str(tmp_path / "exported"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "exported"))  # keep a reference: it owns the variables
    served = reloaded.serve(x).numpy()
    np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-5)
