import keras
import numpy as np
import pytest

import keras_scl
from keras_scl.budget import project_to_budget


def test_projection_keeps_largest_values_within_budget():
    values = [np.array([[0.5, -0.2], [0.1, 0.9]]), np.array([0.3, -1.0, 0.05])]
    keep = project_to_budget(values, [1.0, 1.0], budget=3)
    np.testing.assert_array_equal(keep[0], [[True, False], [False, True]])
    np.testing.assert_array_equal(keep[1], [True, False, False])


def test_projection_with_costs_matches_greedy_reference():
    rng = np.random.default_rng(0)
    values = [rng.standard_normal((20, 5)), rng.standard_normal(30)]
    costs = [3.0, 1.0]
    keep = project_to_budget(values, costs, budget=100)
    # Reference: walk entries by decreasing value, take while the budget allows.
    entries = sorted(
        [(v, 3.0, (0, i)) for i, v in enumerate(values[0].ravel())] + [(v, 1.0, (1, i)) for i, v in enumerate(values[1].ravel())],
        key=lambda e: -e[0],
    )
    spent, chosen = 0.0, set()
    for _, cost, where in entries:
        if spent + cost > 100:
            break
        spent += cost
        chosen.add(where)
    got = {(0, i) for i in np.flatnonzero(keep[0])} | {(1, i) for i in np.flatnonzero(keep[1])}
    assert got == chosen
    assert sum(costs[k] * keep[k].sum() for k in range(2)) <= 100


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 20)).astype("float32")
    return x, (x[:, :4] @ rng.standard_normal((4, 3))).argmax(axis=1)


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((20,)), keras.layers.Dense(32, activation="relu", name="hidden"), keras.layers.Dense(3, name="out")]
    )
    pruned = keras_scl.prune_scl(model, strength=1e-4, initial_mask=0.05)
    pruned.compile(
        optimizer=keras_scl.SCLOptimizer(keras.optimizers.Adam(1e-2)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return pruned


@pytest.mark.parametrize("target", [0.6, 0.9])
def test_target_sparsity_is_met_and_strength_adapts(target):
    x, y = _data()
    model = _model()
    history = model.fit(
        x, y, batch_size=32, epochs=4, verbose=0,
        callbacks=[keras_scl.SCLCallback(freeze_masks_at_epoch=3, target_sparsity=target, controller_freq=4)],
    )
    sparsity = keras_scl.global_sparsity(keras_scl.sparsity_report(keras_scl.strip_scl(model)))
    assert abs(sparsity - target) <= 0.003
    assert history.history["scl_strength"][0] != pytest.approx(1e-4)


def test_target_flops_is_met():
    x, y = _data()
    model = _model()
    dense_flops = sum(r.dense_flops for r in keras_scl.sparsity_report(model))
    model.fit(
        x, y, batch_size=32, epochs=3, verbose=0,
        callbacks=[keras_scl.SCLCallback(freeze_masks_at_epoch=2, target_flops=0.2 * dense_flops, controller_freq=4)],
    )
    sparse_flops = sum(r.sparse_flops for r in keras_scl.sparsity_report(keras_scl.strip_scl(model)))
    assert 0.197 * dense_flops <= sparse_flops <= 0.2 * dense_flops


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(target_sparsity=0.9), "Expected `freeze_masks_at_epoch` with a budget"),
        (dict(target_sparsity=1.0, freeze_masks_at_epoch=1), r"`target_sparsity` to be a number in \(0, 1\)"),
        (dict(target_flops=-5, freeze_masks_at_epoch=1), "Received: target_flops=-5"),
        (dict(target_sparsity=0.5, target_flops=10, freeze_masks_at_epoch=1), "at most one of"),
        (dict(controller_freq=0), "Received: controller_freq=0"),
    ],
    ids=["no_freeze", "sparsity_one", "negative_flops", "both", "freq"],
)
def test_budget_arguments_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_scl.SCLCallback(**kwargs)
