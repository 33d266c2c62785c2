import keras
import numpy as np
import pytest

import keras_scl


def _data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 20)).astype("float32")
    # Only the first 4 inputs matter: the rest should be pruned.
    y = (x[:, :4] @ rng.standard_normal((4, 3))).argmax(axis=1)
    return x, y


def _pruned(strength=1e-3):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((20,)), keras.layers.Dense(32, activation="relu", name="hidden"), keras.layers.Dense(3, name="out")]
    )
    return keras_scl.prune_scl(model, strength=strength, initial_mask=0.05)


class MaskSnapshot(keras.callbacks.Callback):
    """Copies of every mask before training (`initial`) and at the end of each epoch (`masks[epoch]`)."""

    def __init__(self):
        super().__init__()
        self.masks = {}

    def on_train_begin(self, logs=None):
        self.initial = [m.numpy().copy() for w in keras_scl.wrapper.find_wrappers(self.model) for m in w.masks]

    def on_epoch_end(self, epoch, logs=None):
        self.masks[epoch] = [m.numpy().copy() for w in keras_scl.wrapper.find_wrappers(self.model) for m in w.masks]


def _compile(model, optimizer):
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def test_short_fit_learns_sparsity_and_logs_it():
    x, y = _data()
    model = _pruned()
    _compile(model, keras.optimizers.Adam(1e-2))
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=[keras_scl.SCLCallback()])
    assert isinstance(model.optimizer, keras_scl.SCLOptimizer)
    losses = history.history["loss"]
    assert all(np.isfinite(losses))
    sparsity = history.history["sparsity"]
    assert sparsity[0] > 0 and sparsity[-1] > sparsity[0]
    assert {"sparsity/hidden", "sparsity/out"} <= set(history.history)
    rows = keras_scl.mask_stats(model)
    assert sparsity[-1] == pytest.approx(keras_scl.global_sparsity(rows))
    # The masks of the 16 irrelevant inputs are the ones that went.
    hidden_live = model.get_layer("scl_hidden").masks[0].numpy() > 0
    assert hidden_live[:4].mean() > hidden_live[4:].mean()
    assert history.history["accuracy"][-1] > 0.8


def test_callback_wraps_plain_optimizer_and_saved_model_keeps_it(tmp_path):
    x, y = _data(128)
    model = _pruned()
    _compile(model, "adam")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[keras_scl.SCLCallback()])
    assert isinstance(model.optimizer, keras_scl.SCLOptimizer)
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(restored.optimizer, keras_scl.SCLOptimizer)
    for a, b in zip(restored.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_callback_keeps_existing_scl_optimizer():
    x, y = _data(64)
    model = _pruned()
    optimizer = keras_scl.SCLOptimizer(keras.optimizers.SGD(0.1), norm="l2")
    _compile(model, optimizer)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[keras_scl.SCLCallback()])
    assert model.optimizer is optimizer


def test_freeze_masks_at_epoch_stops_mask_updates():
    x, y = _data()
    model = _pruned()
    _compile(model, keras_scl.SCLOptimizer(keras.optimizers.Adam(1e-2)))
    snapshot = MaskSnapshot()
    history = model.fit(
        x, y, batch_size=32, epochs=4, verbose=0, callbacks=[keras_scl.SCLCallback(freeze_masks_at_epoch=2), snapshot]
    )
    masks = snapshot.masks
    assert not np.array_equal(masks[0][0], masks[1][0])
    for a, b in zip(masks[1], masks[3]):
        np.testing.assert_array_equal(a, b)
    assert history.history["sparsity"][1] == history.history["sparsity"][3]
    assert history.history["loss"][3] < history.history["loss"][1]


@pytest.mark.parametrize(
    "epochs, mask_epochs", [(1, 1), (2, 1), (3, 2), (4, 3), (5, 4)], ids=["one", "two", "three", "four", "five"]
)
def test_default_schedule_freezes_masks_after_three_quarters_of_the_epochs(epochs, mask_epochs):
    x, y = _data()
    model = _pruned()
    _compile(model, keras_scl.SCLOptimizer(keras.optimizers.Adam(1e-2)))
    snapshot = MaskSnapshot()
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[keras_scl.SCLCallback(), snapshot])
    masks = [snapshot.initial] + [snapshot.masks[e] for e in range(epochs)]
    for epoch in range(epochs):
        changed = not all(np.array_equal(a, b) for a, b in zip(masks[epoch], masks[epoch + 1]))
        assert changed == (epoch < mask_epochs), f"epoch {epoch}"


def test_layer_with_no_live_connection_is_reported_by_name():
    x, y = _data(64)
    model = _pruned(strength=10.0)
    _compile(model, keras_scl.SCLOptimizer(keras.optimizers.SGD(1.0)))
    with pytest.warns(UserWarning, match="Layer 'hidden' has no live connection left"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[keras_scl.SCLCallback()])


def test_model_without_wrappers_is_a_clear_error():
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(3)])
    _compile(model, "adam")
    x, y = _data(32)
    with pytest.raises(ValueError, match="Expected a model containing SCLWrapper layers"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[keras_scl.SCLCallback()])


def _distill(distiller_cls, strength):
    x, y = _data(256)
    teacher = keras.Sequential([keras.Input((20,)), keras.layers.Dense(3)])
    student = _pruned(strength=strength)
    distiller = distiller_cls(
        teacher=teacher, student=student, distillation_losses=keras.distillation.LogitsDistillation(temperature=2.0)
    )
    distiller.compile(
        optimizer=keras_scl.SCLOptimizer(keras.optimizers.Adam(1e-2)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    distiller.fit(x, y, epochs=2, verbose=0, callbacks=[keras_scl.SCLCallback()])
    return keras_scl.report.global_sparsity(keras_scl.report.mask_stats(student))


needs_distiller = pytest.mark.skipif(
    not hasattr(keras, "distillation"), reason="keras.distillation needs Keras >= 3.12"
)

if hasattr(keras, "distillation"):

    class _DistillerWithRegularizers(keras.distillation.Distiller):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            loss = super().compute_loss(x, y, y_pred, sample_weight, training)
            return loss + keras.ops.sum(self.student.losses)


@needs_distiller
def test_distiller_that_drops_the_regularizer_is_a_clear_error():
    with pytest.raises(ValueError, match="keras.distillation.Distiller .* leaves out the student's `losses`"):
        _distill(keras.distillation.Distiller, strength=1e-2)


@needs_distiller
def test_distiller_that_adds_the_student_losses_prunes():
    # The workaround the error names: the regularizer is back in the loss,
    # so a stronger factor prunes more.
    assert _distill(_DistillerWithRegularizers, strength=3e-3) > _distill(_DistillerWithRegularizers, strength=0.0) + 0.2


@pytest.mark.parametrize("epoch", [-1, 1.5, True, "half"], ids=["negative", "float", "bool", "other_string"])
def test_rejects_invalid_freeze_epoch(epoch):
    with pytest.raises(ValueError, match=r"Received: freeze_masks_at_epoch="):
        keras_scl.SCLCallback(freeze_masks_at_epoch=epoch)


def test_config_round_trip():
    config = {
        "freeze_masks_at_epoch": 7,
        "log_layer_sparsity": False,
        "batch_update_freq": 3,
        "target_sparsity": 0.9,
        "target_flops": None,
        "controller_freq": 11,
        "budget_ramp": 0.5,
    }
    callback = keras_scl.SCLCallback(**config)
    assert callback.get_config() == config
    assert keras_scl.SCLCallback.from_config(callback.get_config()).get_config() == config


def test_default_config_round_trip():
    config = keras_scl.SCLCallback().get_config()
    assert config["freeze_masks_at_epoch"] == "auto"
    assert keras_scl.SCLCallback.from_config(config).get_config() == config


def test_batch_logs_carry_sparsity_for_the_progress_bar():
    x, y = _data(256)
    model = _pruned()
    _compile(model, keras.optimizers.Adam(1e-2))
    seen, counted = [], []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            counted.append(keras_scl.global_sparsity(keras_scl.mask_stats(self.model)))

        def on_train_batch_end(self, batch, logs=None):
            seen.append(logs["sparsity"])

    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[keras_scl.SCLCallback(batch_update_freq=1), Spy()])
    assert len(seen) == 16 and seen[-1] > seen[0] >= 0.0
    # The count is taken between two steps, before the batch it is logged with.
    assert seen == pytest.approx(counted)


def test_batch_level_count_is_traced_once_across_fits():
    x, y = _data(128)
    model = _pruned()
    _compile(model, keras.optimizers.Adam(1e-2))
    callback = keras_scl.SCLCallback(freeze_masks_at_epoch=None, batch_update_freq=1)
    for _ in range(3):
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[callback])
    _, total, count = callback._count_live
    assert total == 20 * 32 + 32 * 3
    assert count.experimental_get_tracing_count() == 1


def test_rejects_invalid_batch_update_freq():
    with pytest.raises(ValueError, match=r"Received: batch_update_freq=0"):
        keras_scl.SCLCallback(batch_update_freq=0)


def test_tensorboard_gets_sparsity_scalars_and_mask_histograms(tmp_path):
    import glob

    import tensorflow as tf

    x, y = _data(128)
    model = _pruned()
    _compile(model, "adam")
    model.fit(
        x, y, epochs=2, verbose=0,
        callbacks=[keras_scl.SCLCallback(), keras.callbacks.TensorBoard(str(tmp_path), histogram_freq=1)],
    )
    tags = set()
    for path in glob.glob(str(tmp_path / "**" / "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    assert {"epoch_sparsity", "epoch_sparsity/hidden", "epoch_sparsity/out"} <= tags
    assert any(tag.endswith("kernel_mask/histogram") for tag in tags)
