import json
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_scl


def _numpy_normalized(g, reduce_axes):
    return g / (np.sqrt(np.mean(g**2, axis=reduce_axes, keepdims=True)) + 1e-12)


@pytest.mark.parametrize(
    "layer, x_shape, reduce_axes",
    [
        pytest.param(keras.layers.Dense(5), (8, 6), (0,), id="dense"),
        pytest.param(keras.layers.Conv2D(4, 3), (2, 7, 7, 3), (0, 1, 2), id="conv2d"),
        pytest.param(keras.layers.Conv2DTranspose(4, 3), (2, 5, 5, 3), (0, 1, 3), id="conv2d_transpose"),
        pytest.param(keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (2, 7, 7, 3), (0, 1), id="depthwise"),
    ],
)
@pytest.mark.parametrize("jit_compile", [True, False], ids=["xla", "graph"])
def test_sgd_step_moves_masks_by_normalized_gradient_and_weights_by_raw_gradient(layer, x_shape, reduce_axes, jit_compile):
    keras.utils.set_random_seed(0)
    wrapper = keras_scl.SCLWrapper(layer, strength=1e-3)
    x = np.random.default_rng(0).standard_normal(x_shape).astype("float32")
    wrapper(x)
    rng = np.random.default_rng(1)
    wrapper.masks[0].assign(rng.standard_normal(wrapper.masks[0].shape).astype("float32"))
    variables = wrapper.trainable_variables
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(wrapper(x))) + tf.add_n(wrapper.losses)
    grads = tape.gradient(loss, variables)
    before = [v.numpy() for v in variables]
    optimizer = keras_scl.SCLOptimizer(keras.optimizers.SGD(learning_rate=1.0), jit_compile=jit_compile)
    optimizer.apply_gradients(zip(grads, variables))
    for variable, old, grad in zip(variables, before, grads):
        grad = grad.numpy()
        if variable is wrapper.masks[0]:
            # The regularizer's value carries no gradient: the optimizer adds
            # `strength` (the identity estimator's) before normalising.
            expected = old - _numpy_normalized(grad + 1e-3, reduce_axes)
        else:
            expected = old - grad
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-6, err_msg=variable.name)


def test_norm_none_passes_mask_gradients_through():
    wrapper = keras_scl.SCLWrapper(keras.layers.Dense(3), strength=0.25)
    wrapper(np.ones((2, 4), "float32"))
    mask = wrapper.masks[0]
    grad = tf.constant(np.arange(12, dtype="float32").reshape(4, 3))
    before = mask.numpy()
    keras_scl.SCLOptimizer(keras.optimizers.SGD(1.0), norm=None).apply_gradients([(grad, mask)])
    np.testing.assert_allclose(mask.numpy(), before - (grad.numpy() + 0.25))


def test_masks_are_excluded_from_inner_weight_decay():
    wrapper = keras_scl.SCLWrapper(keras.layers.Dense(3, use_bias=False), initial_mask=1.0, strength=0.0)
    wrapper(np.ones((2, 4), "float32"))
    kernel, mask = wrapper.layer.kernel, wrapper.masks[0]
    kernel_before = kernel.numpy()
    optimizer = keras_scl.SCLOptimizer(keras.optimizers.SGD(0.1, weight_decay=0.5))
    optimizer.apply_gradients([(tf.zeros_like(kernel), kernel), (tf.zeros_like(mask), mask)])
    np.testing.assert_allclose(mask.numpy(), 1.0)
    np.testing.assert_allclose(kernel.numpy(), kernel_before * (1 - 0.1 * 0.5), rtol=1e-6)


def test_proxies_learning_rate_and_iterations_of_inner():
    inner = keras.optimizers.Adam(0.01)
    optimizer = keras_scl.SCLOptimizer(inner)
    assert float(optimizer.learning_rate) == pytest.approx(0.01)
    optimizer.learning_rate = 0.5
    assert float(inner.learning_rate) == pytest.approx(0.5)
    assert optimizer.iterations is inner.iterations


def test_config_round_trip():
    optimizer = keras_scl.SCLOptimizer(
        keras.optimizers.SGD(0.3, momentum=0.9), norm="l2", epsilon=1e-6, jit_compile=False, name="scl"
    )
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, keras_scl.SCLOptimizer)
    assert restored.get_config() == optimizer.get_config()
    assert restored.inner_optimizer.get_config() == optimizer.inner_optimizer.get_config()


def test_rejects_unknown_kwargs_by_name():
    with pytest.raises(ValueError, match="does not support arguments: `clipnorm`"):
        keras_scl.SCLOptimizer(keras.optimizers.SGD(), clipnorm=1.0)


def test_rejects_non_optimizer():
    with pytest.raises(TypeError, match="Received: inner_optimizer=.adam."):
        keras_scl.SCLOptimizer("adam")


def test_rejects_double_wrapping():
    with pytest.raises(TypeError, match="other than SCLOptimizer"):
        keras_scl.SCLOptimizer(keras_scl.SCLOptimizer(keras.optimizers.SGD()))


@pytest.mark.parametrize("arg", ["inner_optimizer", "mask_optimizer"])
def test_rejects_ema_overwrite_during_training(arg):
    ema = keras.optimizers.SGD(use_ema=True, ema_overwrite_frequency=10)
    kwargs = {"inner_optimizer": keras.optimizers.SGD(), arg: ema}
    with pytest.raises(ValueError, match=f"Expected `{arg}` with `ema_overwrite_frequency=None`.*Received: ema_overwrite_frequency=10"):
        keras_scl.SCLOptimizer(**kwargs)


def test_rejects_unknown_norm():
    with pytest.raises(ValueError, match="Received: norm='max'"):
        keras_scl.SCLOptimizer(keras.optimizers.SGD(), norm="max")


def test_mask_optimizer_updates_masks_and_inner_updates_weights():
    wrapper = keras_scl.SCLWrapper(keras.layers.Dense(3, use_bias=False), initial_mask=1.0)
    wrapper(np.ones((2, 4), "float32"))
    kernel, mask = wrapper.masked_weights[0]
    g_kernel = np.full((4, 3), 2.0, "float32")
    g_mask = np.random.default_rng(0).standard_normal((4, 3)).astype("float32")
    k0, m0 = kernel.numpy(), mask.numpy()
    optimizer = keras_scl.SCLOptimizer(keras.optimizers.SGD(0.5), mask_optimizer=keras.optimizers.SGD(0.1))
    optimizer.apply_gradients([(tf.constant(g_kernel), kernel), (tf.constant(g_mask), mask)])
    np.testing.assert_allclose(kernel.numpy(), k0 - 0.5 * g_kernel, rtol=1e-6)
    np.testing.assert_allclose(mask.numpy(), m0 - 0.1 * _numpy_normalized(g_mask, (0,)), rtol=1e-5)
    assert len(optimizer.variables) == len(optimizer._variables) + len(optimizer.inner_optimizer.variables) + len(optimizer.mask_optimizer.variables)


def test_config_round_trip_with_mask_optimizer():
    optimizer = keras_scl.SCLOptimizer(keras.optimizers.Adam(1e-3), mask_optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    restored = keras.optimizers.deserialize(json.loads(json.dumps(keras.optimizers.serialize(optimizer))))
    assert restored.get_config() == optimizer.get_config()
    assert isinstance(restored.mask_optimizer, keras.optimizers.SGD)


@pytest.mark.parametrize("jit_compile", [True, False], ids=["xla", "graph"])
@pytest.mark.parametrize("norm", ["rms", None])
@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_non_finite_mask_gradient_raises_with_mask_name_and_leaves_variables_unchanged(bad, norm, jit_compile):
    wrapper = keras_scl.SCLWrapper(keras.layers.Dense(3), name="pruned_dense")
    wrapper(np.ones((2, 4), "float32"))
    mask = wrapper.masks[0]
    before = mask.numpy()
    kernel = wrapper.layer.kernel
    kernel_before = kernel.numpy()
    grad = np.ones((4, 3), "float32")
    grad[1, 2] = bad
    optimizer = keras_scl.SCLOptimizer(keras.optimizers.SGD(0.1), norm=norm, jit_compile=jit_compile)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Non-finite gradient for mask variable 'pruned_dense/kernel_mask'"):
        optimizer.apply_gradients([(tf.ones((4, 3)), kernel), (tf.constant(grad), mask)])
    np.testing.assert_array_equal(mask.numpy(), before)
    np.testing.assert_array_equal(kernel.numpy(), kernel_before)
    assert int(optimizer.iterations) == 0


def test_non_finite_loss_during_fit_stops_training_before_masks_change():
    keras.utils.set_random_seed(0)
    model = keras_scl.prune_scl(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    model.compile(optimizer=keras_scl.SCLOptimizer(keras.optimizers.SGD(0.1)), loss="mse")
    before = [m.numpy() for layer in model.layers for m in layer.masks]
    x = np.ones((8, 4), "float32")
    y = np.full((8, 2), np.inf, "float32")
    with pytest.raises(tf.errors.InvalidArgumentError, match="Non-finite gradient for mask variable"):
        model.fit(x, y, epochs=1, verbose=0)
    for mask, old in zip([m for layer in model.layers for m in layer.masks], before):
        np.testing.assert_array_equal(mask.numpy(), old)


def test_non_finite_loss_under_xla_model_skips_the_step():
    # Inside a model compiled with XLA nothing can raise: the update is skipped.
    keras.utils.set_random_seed(0)
    model = keras_scl.prune_scl(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    model.compile(optimizer=keras_scl.SCLOptimizer(keras.optimizers.SGD(0.1)), loss="mse", jit_compile=True)
    before = [v.numpy() for v in model.weights]
    x = np.ones((8, 4), "float32")
    y = np.full((8, 2), np.inf, "float32")
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert not np.isfinite(history.history["loss"][0])
    for variable, old in zip(model.weights, before):
        np.testing.assert_array_equal(variable.numpy(), old, err_msg=variable.path)
    assert int(model.optimizer.iterations) == 0


@pytest.mark.parametrize("inner", ["adam", "sgd_momentum"])
def test_xla_and_graph_updates_agree(inner):
    # Training with the XLA-compiled update matches the TensorFlow graph one
    # up to float rounding (XLA fuses multiply-adds and computes powers its own way).
    def train(jit_compile):
        keras.utils.set_random_seed(0)
        model = keras_scl.prune_scl(
            keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]),
            strength=1e-3,
        )
        optimizer = keras.optimizers.Adam(1e-2) if inner == "adam" else keras.optimizers.SGD(0.05, momentum=0.9)
        model.compile(optimizer=keras_scl.SCLOptimizer(optimizer, jit_compile=jit_compile), loss="mse")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((32, 6)).astype("float32")
        y = rng.standard_normal((32, 3)).astype("float32")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
        return model

    xla, graph = train(True), train(False)
    for a, b in zip(xla.weights, graph.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)
    for a, b in zip(xla.optimizer.variables, graph.optimizer.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_rejects_non_bool_jit_compile():
    with pytest.raises(TypeError, match=r"Expected `jit_compile` to be a bool\. Received: jit_compile='auto'"):
        keras_scl.SCLOptimizer(keras.optimizers.SGD(), jit_compile="auto")


def test_ema_overwrites_weights_with_their_average_and_leaves_masks_as_trained():
    # Reference: the moving average computed here from the kernel after every
    # step (Keras copies the variable at the first step, then averages).
    keras.utils.set_random_seed(0)
    model = keras_scl.prune_scl(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), initial_mask=0.05)
    wrapper = model.layers[0]
    kernel, mask = wrapper.masked_weights[0]
    model.compile(
        optimizer=keras_scl.SCLOptimizer(keras.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5)),
        loss="mse",
    )
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((kernel.numpy(), mask.numpy()))

    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype("float32")
    y = rng.standard_normal((32, 2)).astype("float32")
    # The masks freeze after the first epoch, so they leave the trainable variables.
    model.fit(
        x, y, batch_size=8, epochs=2, verbose=0,
        callbacks=[keras_scl.SCLCallback(freeze_masks_at_epoch=1), Record()],
    )
    average = seen[0][0]
    for value, _ in seen[1:]:
        average = 0.5 * average + 0.5 * value
    np.testing.assert_allclose(kernel.numpy(), average, rtol=1e-5, atol=1e-7)
    assert not np.allclose(kernel.numpy(), seen[-1][0])
    np.testing.assert_array_equal(mask.numpy(), seen[-1][1])
    assert not np.array_equal(seen[0][1], seen[3][1])  # the masks did train in the first epoch


def test_ema_finalize_overwrites_only_the_variables_it_is_given():
    wrapper = keras_scl.SCLWrapper(keras.layers.Dense(3), initial_mask=1.0)
    wrapper(np.ones((2, 4), "float32"))
    kernel, mask = wrapper.masked_weights[0]
    bias = wrapper.layer.bias
    optimizer = keras_scl.SCLOptimizer(keras.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5))
    for _ in range(2):
        optimizer.apply_gradients(
            [(tf.ones((4, 3)), kernel), (tf.ones((3,)), bias), (tf.ones((4, 3)), mask)]
        )
    kernel_before, mask_before = kernel.numpy(), mask.numpy()
    # SGD from 0 with gradient 1: the bias is -0.1 then -0.2; its average 0.5 * (-0.1) + 0.5 * (-0.2).
    optimizer.finalize_variable_values([bias])
    np.testing.assert_allclose(bias.numpy(), np.full(3, -0.15), rtol=1e-6)
    np.testing.assert_array_equal(kernel.numpy(), kernel_before)
    np.testing.assert_array_equal(mask.numpy(), mask_before)


def test_gradient_accumulation_averages_per_micro_batch_normalised_mask_gradients():
    # The semantics the README states: each micro-batch's mask gradient is
    # normalised, then Keras averages the accumulated ones at the update.
    wrapper = keras_scl.SCLWrapper(keras.layers.Dense(3, use_bias=False), initial_mask=1.0)
    wrapper(np.ones((2, 4), "float32"))
    kernel, mask = wrapper.masked_weights[0]
    rng = np.random.default_rng(0)
    g1, g2 = (rng.standard_normal((4, 3)).astype("float32") for _ in range(2))
    m0 = mask.numpy()
    optimizer = keras_scl.SCLOptimizer(keras.optimizers.SGD(0.1, gradient_accumulation_steps=2))
    optimizer.apply_gradients([(tf.zeros((4, 3)), kernel), (tf.constant(g1), mask)])
    np.testing.assert_array_equal(mask.numpy(), m0)  # accumulating, no update yet
    optimizer.apply_gradients([(tf.zeros((4, 3)), kernel), (tf.constant(g2), mask)])
    expected = m0 - 0.1 * (_numpy_normalized(g1, (0,)) + _numpy_normalized(g2, (0,))) / 2
    np.testing.assert_allclose(mask.numpy(), expected, rtol=1e-5)


def _fit_lenet_like(regularizer_through_autodiff, update_jit_compile):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((20,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(3),
    ])
    pruned = keras_scl.prune_scl(model, initial_mask=0.01, strength=1e-4)
    if regularizer_through_autodiff:
        for wrapper in keras_scl.wrapper.find_wrappers(pruned):
            for mask in wrapper.masks:
                mask.regularizer = keras_scl.LiveConnections(wrapper.strength_variable, ste=wrapper.ste)
    pruned.compile(
        optimizer=keras_scl.SCLOptimizer(keras.optimizers.Adam(1e-3), jit_compile=update_jit_compile),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((256, 20)).astype("float32"), rng.integers(0, 3, 256)
    history = pruned.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[keras_scl.SCLCallback(freeze_masks_at_epoch=None)])
    return pruned.get_weights(), history.history


@pytest.mark.parametrize("jit_compile", [True, False], ids=["xla", "graph"])
def test_regularizer_gradient_added_by_optimizer_trains_as_autodiff_did(jit_compile):
    # The reference: the same regularizer with its gradient through autodiff.
    weights, history = _fit_lenet_like(False, jit_compile)
    reference, reference_history = _fit_lenet_like(True, jit_compile)
    assert history["sparsity"][-1] > 0.05  # the regularizer did prune
    assert history["loss"] == reference_history["loss"]
    for got, want in zip(weights, reference):
        np.testing.assert_array_equal(got, want)


def test_mask_the_loss_does_not_reach_is_still_pushed_down():
    wrapper = keras_scl.SCLWrapper(keras.layers.Dense(3), strength=0.5, initial_mask=1.0)
    wrapper(np.ones((2, 4), "float32"))
    mask = wrapper.masks[0]
    keras_scl.SCLOptimizer(keras.optimizers.SGD(0.1), norm=None).apply_gradients([(None, mask)])
    np.testing.assert_allclose(mask.numpy(), 1.0 - 0.1 * 0.5)
