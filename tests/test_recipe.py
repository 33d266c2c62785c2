"""The examples' training recipe: its checks and its distillation from the dense network.

The distillation loss itself is tested in test_distillation.py."""

import os
import sys

import keras
import numpy as np
import pytest

from test_benchmark_quick import ROOT

sys.path.insert(0, os.path.join(ROOT, "examples"))
import mnist_common  # noqa: E402

import keras_scl  # noqa: E402


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
    assert isinstance(pruned.loss, keras_scl.DistillationLoss)
    assert (pruned.loss.temperature, pruned.loss.weight) == (4.0, recipe.distill_weight)
    # Pruning clones: the teacher itself is untouched.
    for w, b in zip(dense.get_weights(), before):
        np.testing.assert_array_equal(w, b)
    # The packed targets carry the teacher's logits next to the labels.
    packed = keras_scl.teacher_targets(dense, x, y)
    np.testing.assert_array_equal(packed[:, 0], y)
    np.testing.assert_allclose(packed[:, 1:], teacher_logits, rtol=1e-6)
