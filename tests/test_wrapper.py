import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_scl
from helpers import LAYER_CASES
from helpers import LAYER_IDS
from helpers import make_input
from helpers import randomize_masks
from helpers import reference_output
from helpers import save_and_reload
from helpers import wrapped_model


@pytest.mark.parametrize("case", LAYER_CASES, ids=LAYER_IDS)
def test_output_equals_layer_with_masked_weights(case):
    model, wrapper, x = wrapped_model(case)
    assert all(0 < np.mean(m.numpy() > 0) < 1 for m in wrapper.masks)
    np.testing.assert_allclose(model(x), reference_output(wrapper, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", LAYER_CASES, ids=LAYER_IDS)
def test_forward_pass_does_not_overwrite_weights(case):
    model, wrapper, x = wrapped_model(case)
    before = [w.numpy() for w, _ in wrapper.masked_weights]
    model(x)
    for (weight, _), old in zip(wrapper.masked_weights, before):
        np.testing.assert_array_equal(weight.numpy(), old)
        assert np.count_nonzero(old) == old.size


@pytest.mark.parametrize("case", LAYER_CASES, ids=LAYER_IDS)
def test_masks_are_named_after_weights_shaped_like_them_and_start_dense(case):
    _, factory, shape, integer = case
    wrapper = keras_scl.SCLWrapper(factory(), initial_mask=0.3)
    wrapper(make_input(shape, integer))
    assert wrapper.masks
    for weight, mask in wrapper.masked_weights:
        assert mask.name == f"{weight.name}_mask" or mask.name.endswith("_mask")
        assert tuple(mask.shape) == tuple(weight.shape)
        assert mask.dtype == "float32" and mask.trainable
        np.testing.assert_array_equal(mask.numpy(), np.float32(0.3))
    assert not any("bias" in m.name for m in wrapper.masks)


def test_mask_names_follow_weight_attributes():
    wrapper = keras_scl.SCLWrapper(keras.layers.SeparableConv2D(4, 3))
    wrapper(np.zeros((1, 5, 5, 2), "float32"))
    assert [m.name for m in wrapper.masks] == ["depthwise_kernel_mask", "pointwise_kernel_mask"]
    dense = keras_scl.SCLWrapper(keras.layers.Dense(2))
    dense(np.zeros((1, 3), "float32"))
    assert [m.name for m in dense.masks] == ["kernel_mask"]


@pytest.mark.parametrize("case", LAYER_CASES, ids=LAYER_IDS)
def test_strip_gives_identical_outputs(case):
    model, wrapper, x = wrapped_model(case)
    stripped = keras_scl.strip_scl(model)
    assert not any(isinstance(layer, keras_scl.SCLWrapper) for layer in stripped.layers)
    np.testing.assert_array_equal(stripped(x), model(x))


@pytest.mark.parametrize("case", LAYER_CASES, ids=LAYER_IDS)
def test_config_round_trip(case):
    _, factory, shape, integer = case
    wrapper = keras_scl.SCLWrapper(
        factory(), ste=keras_scl.LeakyReLUSTE(0.3), strength=2e-4, initial_mask=0.7,
        update_pruned_weights=False, name="pruned",
    )
    config = wrapper.get_config()
    restored = keras_scl.SCLWrapper.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    assert restored.ste == keras_scl.LeakyReLUSTE(0.3)
    assert (restored.strength, restored.initial_mask, restored.name) == (2e-4, 0.7, "pruned")
    assert restored.update_pruned_weights is False
    restored(make_input(shape, integer))
    np.testing.assert_array_equal(restored.masks[0].numpy(), np.float32(0.7))


@pytest.mark.parametrize("case", LAYER_CASES, ids=LAYER_IDS)
def test_keras_save_load_round_trip_without_custom_objects(case, tmp_path):
    model, wrapper, x = wrapped_model(case, strength=3e-4)
    model.compile(optimizer=keras_scl.SCLOptimizer(keras.optimizers.Adam(1e-3)), loss="mse")
    model.fit(x, model(x) + 1.0, epochs=1, verbose=0)
    restored = save_and_reload(model, str(tmp_path / "m.keras"))
    np.testing.assert_array_equal(restored(x), model(x))
    restored_wrapper = next(l for l in restored.layers if isinstance(l, keras_scl.SCLWrapper))
    for a, b in zip(restored_wrapper.masks, wrapper.masks):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert restored_wrapper.strength == 3e-4
    assert isinstance(restored.optimizer, keras_scl.SCLOptimizer)
    for a, b in zip(restored.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_regularizer_is_in_layer_losses_and_counts_live_connections():
    wrapper = keras_scl.SCLWrapper(keras.layers.Dense(4), strength=0.5)
    wrapper(np.ones((1, 3), "float32"))
    randomize_masks(wrapper)
    live = np.count_nonzero(wrapper.masks[0].numpy() > 0)
    assert len(wrapper.losses) == 1
    assert float(wrapper.losses[0]) == pytest.approx(0.5 * live)



def _op_count(function, op_type):
    graph = function.get_concrete_function().graph
    return sum(op.type == op_type for op in graph.get_operations())


@pytest.mark.parametrize("update_pruned", [True, False], ids=["update_pruned", "keep_pruned"])
def test_traced_step_counts_live_connections_once_from_the_forward_pass(update_pruned):
    layer = keras.layers.Conv2D(3, 3)
    wrapper = keras_scl.SCLWrapper(layer, strength=0.25, update_pruned_weights=update_pruned)
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 2)).astype("float32")
    wrapper(x)
    randomize_masks(wrapper)
    expected = 0.25 * sum(np.count_nonzero(m.numpy() > 0) for m in wrapper.masks)

    @tf.function
    def step():
        y = wrapper(x, training=True)
        return tf.reduce_sum(y), tf.add_n(wrapper.losses)

    _, regularization = step()
    assert float(regularization) == pytest.approx(expected)
    # One `H(m)` per mask, shared by the product and the regularizer.
    assert _op_count(step, "Greater") == len(wrapper.masks)

    @tf.function
    def losses_alone():
        return tf.add_n(wrapper.losses)

    # Without a forward pass in its trace, the regularizer counts for itself,
    # and it sees masks changed since the forward pass traced above.
    wrapper.masks[0].assign(-tf.abs(wrapper.masks[0]))
    assert float(losses_alone()) == pytest.approx(0.0)
    assert float(step()[1]) == pytest.approx(0.0)
    assert float(wrapper.losses[0]) == pytest.approx(0.0)

@pytest.mark.parametrize("update_pruned", [True, False], ids=["update_pruned", "keep_pruned"])
def test_weight_gradient_reaches_pruned_weights_only_when_asked(update_pruned):
    wrapper = keras_scl.SCLWrapper(
        keras.layers.Dense(3, use_bias=False), strength=0.0, update_pruned_weights=update_pruned
    )
    x = np.random.default_rng(0).standard_normal((5, 4)).astype("float32")
    wrapper(x)
    randomize_masks(wrapper)
    kernel, mask = wrapper.masked_weights[0]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(wrapper(x) ** 2)
    grad_kernel, grad_mask = tape.gradient(loss, [kernel.value, mask.value])
    live = mask.numpy() > 0
    grad_effective = x.T @ (2 * (x @ (kernel.numpy() * live)))
    expected = grad_effective if update_pruned else grad_effective * live
    np.testing.assert_allclose(grad_kernel.numpy(), expected, rtol=1e-5, atol=1e-6)
    # The mask's gradient, dL/dm = dL/d(w H(m)) * w (identity STE), is the
    # same either way, for live and pruned connections alike.
    np.testing.assert_allclose(grad_mask.numpy(), grad_effective * kernel.numpy(), rtol=1e-5, atol=1e-6)


def test_pruned_embedding_rows_get_their_gradient():
    # An embedding's gradient arrives as IndexedSlices.
    wrapper = keras_scl.SCLWrapper(keras.layers.Embedding(6, 2), strength=0.0)
    ids = np.array([[0, 2, 2]])
    wrapper(ids)
    wrapper.masks[0].assign(-np.ones((6, 2), "float32"))
    table, _ = wrapper.masked_weights[0]
    target = np.ones((1, 3, 2), "float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum((wrapper(ids) - target) ** 2)
    grad = tf.convert_to_tensor(tape.gradient(loss, table.value)).numpy()
    expected = np.zeros((6, 2), "float32")
    expected[0], expected[2] = -2.0, -4.0  # output 0 (pruned), target 1, row 2 used twice
    np.testing.assert_allclose(grad, expected, rtol=1e-6)


def test_wrapped_embedding_trains_like_the_unwrapped_one():
    # With every mask on and no regularizer, the table must follow the plain
    # layer's training: its gradient stays sparse (repeated rows summed by
    # the optimizer as Keras does for an unwrapped Embedding), not densified.
    keras.utils.set_random_seed(0)
    plain = keras.Sequential([
        keras.Input((6,), dtype="int32"),
        keras.layers.Embedding(8, 4),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(3),
    ])
    pruned = keras_scl.prune_scl(plain, strength=0.0)
    twin = keras.models.clone_model(plain)
    twin.set_weights(plain.get_weights())
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 3, (64, 6)), rng.integers(0, 3, 64)  # rows repeat within every batch
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    twin.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    pruned.compile(optimizer=keras_scl.SCLOptimizer(keras.optimizers.Adam(1e-3)), loss=loss)
    twin.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    pruned.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    wrapper = pruned.layers[0]
    table, mask = wrapper.masked_weights[0]
    assert np.all(mask.numpy() > 0)
    np.testing.assert_allclose(table.numpy(), twin.layers[0].embeddings.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("update_pruned", [True, False], ids=["update_pruned", "keep_pruned"])
def test_connection_pruned_on_its_way_to_the_other_sign_comes_back_only_when_updated(update_pruned):
    # One weight, 0.5, that has to become -1. Its mask (0.05) goes off first,
    # while the weight is still positive. Updated, the pruned weight crosses
    # zero, its mask's gradient w * g changes sign and the connection comes
    # back; kept, the weight stays positive and the mask falls for good.
    keras.utils.set_random_seed(0)
    wrapper = keras_scl.SCLWrapper(
        keras.layers.Dense(1, use_bias=False, kernel_initializer=keras.initializers.Constant(0.5)),
        strength=0.0,
        update_pruned_weights=update_pruned,
    )
    model = keras.Sequential([keras.Input((1,)), wrapper])
    model.compile(optimizer=keras_scl.SCLOptimizer(keras.optimizers.SGD(0.01)), loss="mse")
    x, y = np.ones((1, 1), "float32"), -np.ones((1, 1), "float32")
    history = model.fit(x, y, epochs=300, verbose=0)
    assert history.history["loss"][10] == 1.0  # the connection is off in both cases
    kernel, mask = wrapper.masked_weights[0]
    if update_pruned:
        assert mask.numpy().item() > 0 and kernel.numpy().item() < 0
        np.testing.assert_allclose(model.predict(x, verbose=0), y, atol=0.05)
    else:
        assert mask.numpy().item() < 0 and kernel.numpy().item() > 0
        np.testing.assert_array_equal(model.predict(x, verbose=0), 0.0)


def test_pruned_weight_revives_when_its_mask_turns_positive():
    wrapper = keras_scl.SCLWrapper(keras.layers.Dense(2, use_bias=False))
    x = np.ones((1, 3), "float32")
    wrapper(x)
    kernel, mask = wrapper.masked_weights[0]
    mask.assign(-np.ones((3, 2), "float32"))
    np.testing.assert_array_equal(wrapper(x), 0.0)
    mask.assign(np.ones((3, 2), "float32"))
    np.testing.assert_allclose(wrapper(x), x @ kernel.numpy(), rtol=1e-6)


def test_builds_from_input_shape():
    wrapper = keras_scl.SCLWrapper(keras.layers.Conv2D(3, 3))
    wrapper.build((None, 8, 8, 2))
    assert wrapper.masks[0].shape == (3, 3, 2, 3)


@pytest.mark.parametrize(
    "layer",
    [keras.layers.BatchNormalization(), keras.layers.MaxPooling2D(), keras.layers.LayerNormalization()],
    ids=["batch_norm", "pooling", "layer_norm"],
)
def test_unsupported_layer_is_rejected_with_supported_list(layer):
    with pytest.raises(ValueError, match=rf"Expected a layer of a supported type \(.*Dense.*Received: layer='{layer.name}' of type {type(layer).__name__}"):
        keras_scl.SCLWrapper(layer)


def test_rejects_non_layer():
    with pytest.raises(TypeError, match=r"(?s)Expected `layer` to be a keras.layers.Layer\. Received: layer=.* of type EagerTensor"):
        keras_scl.SCLWrapper(tf.ones((2, 2)))


def test_rejects_wrapping_twice():
    with pytest.raises(ValueError, match="already wrapped"):
        keras_scl.SCLWrapper(keras_scl.SCLWrapper(keras.layers.Dense(2)))


@pytest.mark.parametrize("initial_mask", [0.0, -0.1, float("nan")], ids=["zero", "negative", "nan"])
def test_rejects_non_positive_initial_mask(initial_mask):
    with pytest.raises(ValueError, match=r"Expected `initial_mask` to be a finite number > 0.*Received: initial_mask="):
        keras_scl.SCLWrapper(keras.layers.Dense(2), initial_mask=initial_mask)


def test_rejects_negative_strength():
    with pytest.raises(ValueError, match=r"Received: strength=-1"):
        keras_scl.SCLWrapper(keras.layers.Dense(2), strength=-1)


def test_rejects_non_bool_update_pruned_weights():
    with pytest.raises(TypeError, match=r"Expected `update_pruned_weights` to be a bool\. Received: update_pruned_weights=1"):
        keras_scl.SCLWrapper(keras.layers.Dense(2), update_pruned_weights=1)


def test_rejects_non_positive_proxy():
    with pytest.raises(ValueError, match="positivity principle"):
        keras_scl.SCLWrapper(keras.layers.Dense(2), ste=lambda m: tf.where(m > 0, 1.0, -1.0))


def test_unbuilt_layer_without_input_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Expected a built layer or an input shape"):
        keras_scl.SCLWrapper(keras.layers.Dense(2)).build(None)
