"""The examples' training recipe: its checks and its distillation from the dense network."""

import os
import sys

import keras
import numpy as np
import pytest

from test_benchmark_quick import ROOT

sys.path.insert(0, os.path.join(ROOT, "examples"))
import mnist_common  # noqa: E402


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _reference_distillation(labels, teacher, student, temperature, weight):
    """Hinton et al.'s loss written out in float64 numpy."""
    ce = -_log_softmax(student)[np.arange(len(labels)), labels]
    log_pt = _log_softmax(teacher / temperature)
    kl = (np.exp(log_pt) * (log_pt - _log_softmax(student / temperature))).sum(axis=-1)
    return (1 - weight) * ce + weight * temperature**2 * kl


@pytest.mark.parametrize("temperature, weight", [(4.0, 0.7), (1.0, 0.0), (2.5, 1.0)])
def test_distillation_loss_matches_a_numpy_reference(temperature, weight):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=16)
    teacher = rng.normal(size=(16, 10)) * 3
    student = rng.normal(size=(16, 10)) * 3
    y_true = np.concatenate([labels[:, None], teacher], axis=1).astype("float32")
    loss = mnist_common.DistillationLoss(temperature, weight, reduction=None)
    got = np.asarray(loss(y_true, student.astype("float32")))
    np.testing.assert_allclose(got, _reference_distillation(labels, teacher, student, temperature, weight), rtol=1e-4, atol=1e-5)


def test_distillation_loss_is_zero_kl_when_the_student_copies_the_teacher():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(8, 10)).astype("float32")
    labels = np.argmax(logits, axis=1)
    y_true = np.concatenate([labels[:, None], logits], axis=1).astype("float32")
    only_kl = mnist_common.DistillationLoss(4.0, 1.0, reduction=None)
    np.testing.assert_allclose(np.asarray(only_kl(y_true, logits)), 0.0, atol=1e-5)


def test_distillation_loss_config_round_trips():
    loss = mnist_common.DistillationLoss(3.0, 0.4)
    again = mnist_common.DistillationLoss.from_config(loss.get_config())
    assert (again.temperature, again.weight) == (3.0, 0.4)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(distill_temperature=-1.0), "Expected `distill_temperature` >= 0"),
        (dict(distill_temperature=4.0, distill_weight=1.5), r"Expected `distill_weight` in \[0, 1\]"),
        (dict(distill_temperature=4.0, prune_trained=False), "Expected `prune_trained=True`"),
    ],
)
def test_recipe_rejects_inconsistent_distillation(options, message):
    with pytest.raises(ValueError, match=message):
        mnist_common.Recipe(**options)


def test_train_scl_distils_from_the_network_it_prunes():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(256, 12)).astype("float32")
    y = (x[:, :3].sum(axis=1) > 0).astype("int32") + 2 * (x[:, 3] > 0)
    keras.utils.set_random_seed(0)
    dense = keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4)])
    dense.compile(optimizer="adam", loss=mnist_common.LOSS)
    dense.fit(x, y, epochs=3, verbose=0)
    before = [w.copy() for w in dense.get_weights()]
    teacher_logits = dense.predict(x, verbose=0)

    recipe = mnist_common.Recipe(mask_epochs=1, finetune_epochs=1, batch_size=64, distill_temperature=4.0)
    pruned, history, timer = mnist_common.train_scl(dense, (x, y), recipe, verbose=0)

    # The teacher pass was timed, and accuracy is measured against the labels.
    assert timer.teacher_seconds > 0
    assert 0.0 <= history.history["accuracy"][-1] <= 1.0
    assert isinstance(pruned.loss, mnist_common.DistillationLoss)
    # Pruning clones: the teacher itself is untouched.
    for w, b in zip(dense.get_weights(), before):
        np.testing.assert_array_equal(w, b)
    # The packed targets carry the teacher's logits next to the labels.
    packed = mnist_common.teacher_targets(dense, x, y)
    np.testing.assert_array_equal(packed[:, 0], y)
    np.testing.assert_allclose(packed[:, 1:], teacher_logits, rtol=1e-6)
