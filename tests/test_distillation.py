"""Distillation: `DistillationLoss` against NumPy, packed targets, and fits that prune."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_scl
from helpers import save_and_reload

HAS_DISTILLER = hasattr(keras, "distillation")
needs_distiller = pytest.mark.skipif(not HAS_DISTILLER, reason="keras.distillation needs Keras >= 3.12")
CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _reference(labels, teacher, student, temperature, weight):
    """Hinton et al.'s loss per example, written out in float64 NumPy."""
    ce = -_log_softmax(student)[np.arange(len(labels)), labels]
    log_pt = _log_softmax(teacher / temperature)
    kl = (np.exp(log_pt) * (log_pt - _log_softmax(student / temperature))).sum(axis=-1)
    return (1 - weight) * ce + weight * temperature**2 * kl


def _batch(n=16, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n)
    teacher = rng.normal(size=(n, classes)) * 3
    student = rng.normal(size=(n, classes)) * 3
    packed = np.concatenate([labels[:, None], teacher], axis=1).astype("float32")
    return labels, teacher, student, packed


@pytest.mark.parametrize(
    "temperature, weight",
    [(4.0, 0.7), (1.0, 0.0), (2.5, 1.0), (10.0, 0.3)],
    ids=["recipe", "plain_cross_entropy", "only_teacher", "hot"],
)
def test_loss_matches_a_numpy_reference(temperature, weight):
    labels, teacher, student, packed = _batch()
    expected = _reference(labels, teacher, student, temperature, weight)
    per_example = keras_scl.DistillationLoss(temperature, weight, reduction=None)(packed, student.astype("float32"))
    np.testing.assert_allclose(np.asarray(per_example), expected, rtol=1e-4, atol=1e-5)
    mean = keras_scl.DistillationLoss(temperature, weight)(packed, student.astype("float32"))
    np.testing.assert_allclose(float(mean), expected.mean(), rtol=1e-4)


def test_weight_zero_is_keras_cross_entropy():
    labels, _, student, packed = _batch(seed=1)
    got = keras_scl.DistillationLoss(temperature=3.0, weight=0.0)(packed, student.astype("float32"))
    np.testing.assert_allclose(float(got), float(CE(labels, student.astype("float32"))), rtol=1e-6)


def test_kl_term_is_zero_when_the_student_copies_the_teacher():
    labels, teacher, _, packed = _batch(seed=2)
    only_kl = keras_scl.DistillationLoss(4.0, 1.0, reduction=None)
    np.testing.assert_allclose(np.asarray(only_kl(packed, teacher.astype("float32"))), 0.0, atol=1e-5)


def test_loss_config_round_trips_through_json():
    loss = keras_scl.DistillationLoss(temperature=2.0, weight=0.25, name="kd", reduction="sum")
    config = {"temperature": 2.0, "weight": 0.25, "name": "kd", "reduction": "sum"}
    assert loss.get_config() == config
    serialized = keras.saving.serialize_keras_object(loss)
    assert serialized["registered_name"] == "keras_scl>DistillationLoss"
    again = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(again, keras_scl.DistillationLoss) and again.get_config() == config


def test_metric_config_round_trips_through_json():
    metric = keras_scl.LabelAccuracy(name="acc", dtype="float64")
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert isinstance(again, keras_scl.LabelAccuracy)
    assert again.get_config() == metric.get_config() == {"name": "acc", "dtype": "float64"}


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(temperature=0.0), r"Expected `temperature` to be a finite number > 0. Received: temperature=0.0"),
        (dict(temperature=-1), r"Received: temperature=-1"),
        (dict(temperature=float("inf")), r"Received: temperature=inf"),
        (dict(temperature="4"), r"Received: temperature='4'"),
        (dict(weight=1.5), r"Expected `weight` to be a finite number >= 0 and <= 1. Received: weight=1.5"),
        (dict(weight=-0.1), r"Received: weight=-0.1"),
        (dict(weight=True), r"Received: weight=True"),
    ],
    ids=["zero_temperature", "negative_temperature", "infinite_temperature", "string_temperature",
         "weight_above_one", "negative_weight", "bool_weight"],
)
def test_loss_rejects_invalid_arguments(options, message):
    with pytest.raises(ValueError, match=message):
        keras_scl.DistillationLoss(**options)


def test_loss_refuses_plain_labels():
    # Without teacher columns the KL term would be a sum over nothing: plain CE, silently.
    labels, _, student, _ = _batch(seed=3)
    with pytest.raises(ValueError, match=r"Expected targets packed as \[label, teacher logits...\]"):
        keras_scl.DistillationLoss()(labels.astype("float32"), student.astype("float32"))


def test_label_accuracy_reads_the_label_column():
    labels, _, student, packed = _batch(n=64, seed=4)
    metric = keras_scl.LabelAccuracy()
    metric.update_state(packed, student.astype("float32"))
    assert float(metric.result()) == pytest.approx(np.mean(student.argmax(axis=1) == labels))


def _data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 20)).astype("float32")
    # Only the first 4 inputs matter: the rest should be pruned.
    y = (x[:, :4] @ rng.standard_normal((4, 3))).argmax(axis=1)
    return x, y


def _teacher(x, y):
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential(
        [keras.Input((20,)), keras.layers.Dense(32, activation="relu", name="hidden"), keras.layers.Dense(3, name="out")]
    )
    teacher.compile(optimizer=keras.optimizers.Adam(1e-2), loss=CE)
    teacher.fit(x, y, epochs=3, verbose=0)
    return teacher


@pytest.fixture(scope="module")
def trained():
    x, y = _data()
    return x, y, _teacher(x, y)


def test_teacher_targets_pack_labels_and_logits(trained):
    x, y, teacher = trained
    packed = keras_scl.teacher_targets(teacher, x, y, batch_size=100)
    assert packed.shape == (len(x), 4) and packed.dtype == np.float32
    np.testing.assert_array_equal(packed[:, 0], y)
    np.testing.assert_allclose(packed[:, 1:], teacher.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    # Labels as a column give the same rows.
    np.testing.assert_array_equal(keras_scl.teacher_targets(teacher, x, y[:, None], batch_size=100), packed)


@pytest.mark.parametrize(
    "labels, options, message",
    [
        ("short", {}, r"Expected the teacher to return logits of shape \(511, k\), one row per label"),
        ("matrix", {}, r"Expected `y` to be integer labels of shape \(n,\). Received: y of shape \(512, 2\)"),
        ("ok", dict(batch_size=0), r"Expected `batch_size` to be an int >= 1 or None. Received: batch_size=0"),
    ],
    ids=["fewer_labels", "label_matrix", "zero_batch_size"],
)
def test_teacher_targets_rejects_invalid_arguments(trained, labels, options, message):
    x, y, teacher = trained
    y = {"short": y[:-1], "matrix": np.stack([y, y], axis=1), "ok": y}[labels]
    with pytest.raises(ValueError, match=message):
        keras_scl.teacher_targets(teacher, x, y, **options)


def _student(teacher, strength, **prune_options):
    # A Distiller freezes its teacher, and a clone of a frozen model is frozen:
    # prune before building one (the fixture's teacher serves several tests).
    teacher.trainable = True
    return keras_scl.prune_scl(teacher, strength=strength, initial_mask=0.05, **prune_options)


def _fit_with_loss(trained, strength, epochs=3):
    x, y, teacher = trained
    student = _student(teacher, strength)
    student.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras_scl.DistillationLoss(temperature=4.0, weight=0.7),
        metrics=[keras_scl.LabelAccuracy(name="accuracy")],
    )
    packed = keras_scl.teacher_targets(teacher, x, y)
    keras.utils.set_random_seed(0)  # the batch order
    history = student.fit(x, packed, batch_size=32, epochs=epochs, verbose=0, callbacks=[keras_scl.SCLCallback()])
    return student, history, packed


def test_fit_with_distillation_loss_prunes(trained):
    student, history, _ = _fit_with_loss(trained, strength=1e-3)
    _, unregularized, _ = _fit_with_loss(trained, strength=0.0)
    # The compiled loss keeps the live-connection regularizer: the factor prunes.
    assert history.history["sparsity"][-1] > unregularized.history["sparsity"][-1] + 0.3
    assert history.history["accuracy"][-1] > 0.8
    # The irrelevant inputs are the ones that went.
    hidden_live = student.get_layer("scl_hidden").masks[0].numpy() > 0
    assert hidden_live[:4].mean() > hidden_live[4:].mean()


def test_model_compiled_with_distillation_loss_saves_and_loads(trained, tmp_path):
    x, _, _ = trained
    student, _, packed = _fit_with_loss(trained, strength=1e-3, epochs=1)
    restored = save_and_reload(student, tmp_path / "student.keras")
    assert isinstance(restored.loss, keras_scl.DistillationLoss)
    assert restored.loss.get_config() == student.loss.get_config()
    np.testing.assert_array_equal(restored.predict(x, verbose=0), student.predict(x, verbose=0))
    before = student.evaluate(x, packed, verbose=0, return_dict=True)
    after = restored.evaluate(x, packed, verbose=0, return_dict=True)
    assert after == pytest.approx(before)


def _distiller(trained, strength, distiller_cls=None, weight=0.7, **prune_options):
    x, y, teacher = trained
    student = _student(teacher, strength, **prune_options)
    distiller = (distiller_cls or keras_scl.SCLDistiller)(
        teacher=teacher,
        student=student,
        distillation_losses=keras.distillation.LogitsDistillation(temperature=4.0, loss=keras.losses.KLDivergence()),
        student_loss_weight=1.0 - weight,
    )
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss=CE, metrics=["accuracy"])
    return distiller


@needs_distiller
def test_scl_distiller_loss_is_distillation_loss_plus_regularizer(trained):
    x, y, teacher = trained
    distiller = _distiller(trained, strength=1e-3)
    x, y = x[:64], y[:64]
    y_pred = distiller(x, training=True)
    got = float(distiller.compute_loss(x, y, y_pred))
    packed = keras_scl.teacher_targets(teacher, x, y)
    regularizer = float(keras.ops.sum(distiller.student.losses))
    assert regularizer > 0
    expected = float(keras_scl.DistillationLoss(4.0, 0.7)(packed, y_pred)) + regularizer
    assert got == pytest.approx(expected, rel=1e-5)


@needs_distiller
def test_scl_distiller_prunes_like_the_distillation_loss(trained):
    x, y, _ = trained
    distiller = _distiller(trained, strength=1e-3)
    keras.utils.set_random_seed(0)
    history = distiller.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[keras_scl.SCLCallback()])
    # The same loss, start and batch order as `_fit_with_loss`: the same masks, up to rounding.
    _, with_loss, _ = _fit_with_loss(trained, strength=1e-3)
    assert history.history["sparsity"] == pytest.approx(with_loss.history["sparsity"], abs=0.02)
    assert history.history["sparsity"][-1] > 0.5
    # The trained student strips to a plain model with the same predictions.
    stripped = keras_scl.strip_scl(distiller.student)
    assert not keras_scl.wrapper.find_wrappers(stripped)
    np.testing.assert_allclose(stripped.predict(x, verbose=0), distiller.student.predict(x, verbose=0), atol=1e-6)


@needs_distiller
def test_scl_distiller_meets_the_budget_given_to_prune_scl(trained):
    x, y, _ = trained
    distiller = _distiller(trained, strength=1e-4, target_sparsity=0.6)
    history = distiller.fit(
        x, y, batch_size=32, epochs=3, verbose=0, callbacks=[keras_scl.SCLCallback(freeze_masks_at_epoch=2)]
    )
    assert "scl_strength" in history.history
    assert history.history["sparsity"][-1] == pytest.approx(0.6, abs=0.01)


@needs_distiller
def test_plain_distiller_is_still_refused(trained):
    x, y, _ = trained
    distiller = _distiller(trained, strength=1e-3, distiller_cls=keras.distillation.Distiller)
    with pytest.raises(ValueError, match="leaves out the student's `losses`"):
        distiller.fit(x, y, epochs=1, verbose=0, callbacks=[keras_scl.SCLCallback()])


@needs_distiller
def test_scl_distiller_refuses_a_pruned_teacher(trained):
    _, _, teacher = trained
    pruned = keras_scl.prune_scl(teacher)
    with pytest.raises(ValueError, match=r"Expected a teacher without SCLWrapper layers .* Received: teacher"):
        keras_scl.SCLDistiller(
            teacher=pruned, student=keras_scl.prune_scl(teacher), distillation_losses=keras.distillation.LogitsDistillation()
        )


def test_without_keras_distillation_the_rest_imports_and_scl_distiller_says_why():
    script = textwrap.dedent(
        """
        import keras
        if hasattr(keras, "distillation"):
            del keras.distillation  # as on Keras < 3.12
        import keras_scl
        assert keras_scl.DistillationLoss()(keras.ops.ones((2, 4)), keras.ops.ones((2, 3))) is not None
        try:
            keras_scl.SCLDistiller(teacher=None, student=None, distillation_losses=None)
        except ImportError as e:
            print(e)
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Expected Keras with `keras.distillation` (3.12 or later)" in proc.stdout
