"""Mixed precision: masks and their gradients stay float32."""

import keras
import numpy as np
import pytest

import keras_scl


@pytest.fixture
def policy(request):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(request.param)
    yield request.param
    keras.config.set_dtype_policy(previous)


def _fit(optimizer, epochs=3):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3, dtype="float32")]
    )
    pruned = keras_scl.prune_scl(model, strength=1e-3, initial_mask=0.02)
    pruned.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 8)).astype("float32")
    y = rng.integers(0, 3, size=128)
    history = pruned.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[keras_scl.SCLCallback()])
    return pruned, history, x


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
def test_trains_with_float32_masks_and_strips_exactly(policy):
    pruned, history, x = _fit(keras.optimizers.Adam(1e-2))
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["sparsity"][-1] > 0
    wrapper = pruned.layers[0]
    assert wrapper.layer.compute_dtype == policy.split("_")[1]
    assert all(m.dtype == "float32" for w in pruned.layers for m in w.masks)
    if policy == "mixed_float16":
        # Keras puts a LossScaleOptimizer around; the callback puts SCL inside it.
        assert isinstance(pruned.optimizer, keras.optimizers.LossScaleOptimizer)
        assert isinstance(pruned.optimizer.inner_optimizer, keras_scl.SCLOptimizer)
    np.testing.assert_array_equal(keras_scl.strip_scl(pruned).predict(x, verbose=0), pruned.predict(x, verbose=0))
