import keras
import numpy as np
import pytest

import keras_scl
from keras_scl.budget import BudgetController
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


def _model(**compile_options):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((20,)), keras.layers.Dense(32, activation="relu", name="hidden"), keras.layers.Dense(3, name="out")]
    )
    pruned = keras_scl.prune_scl(model, strength=1e-4, initial_mask=0.05)
    pruned.compile(
        optimizer=keras_scl.SCLOptimizer(keras.optimizers.Adam(1e-2)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **compile_options,
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


@pytest.mark.parametrize("steps_per_execution", [1, 4])
def test_controller_steps_every_controller_freq_batches_whatever_steps_per_execution(steps_per_execution, monkeypatch):
    # 16 batches per epoch, controller_freq=5: periods start at batches 0,
    # 5, 10, 15, so 4 updates per epoch of the mask phase. With 4 steps per
    # execution the hooks see batches 0, 4, 8, 12: periods are crossed at
    # 0, 8, 12 (5 and 15 fall inside executions), and `batch % 5 == 0`
    # would have fired at batch 0 only.
    calls = []
    original = BudgetController.update
    monkeypatch.setattr(BudgetController, "update", lambda self, progress=1.0: calls.append(progress) or original(self, progress))
    x, y = _data()
    model = _model(steps_per_execution=steps_per_execution)
    model.fit(
        x, y, batch_size=32, epochs=3, verbose=0,
        callbacks=[keras_scl.SCLCallback(freeze_masks_at_epoch=2, target_sparsity=0.9, controller_freq=5)],
    )
    assert len(calls) == (2 * 4 if steps_per_execution == 1 else 2 * 3)


def test_budget_given_to_prune_scl_is_met():
    x, y = _data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(3)])
    pruned = keras_scl.prune_scl(model, target_sparsity=0.8, strength=1e-4, initial_mask=0.05)
    pruned.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[keras_scl.SCLCallback(freeze_masks_at_epoch=2)])
    sparsity = keras_scl.global_sparsity(keras_scl.sparsity_report(keras_scl.strip_scl(pruned)))
    assert abs(sparsity - 0.8) <= 0.003


def test_budget_given_to_prune_scl_is_met_with_the_default_schedule():
    # SCLCallback() freezes the masks after half the epochs, where the budget is met.
    x, y = _data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(3)])
    pruned = keras_scl.prune_scl(model, target_sparsity=0.8, strength=1e-4, initial_mask=0.05)
    pruned.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=[keras_scl.SCLCallback()])
    sparsity = keras_scl.global_sparsity(keras_scl.sparsity_report(keras_scl.strip_scl(pruned)))
    assert abs(sparsity - 0.8) <= 0.003


@pytest.mark.parametrize(
    "freeze, epochs, message",
    [
        (None, 2, r"Received: freeze_masks_at_epoch=None in a fit of 2 epoch"),
        ("auto", 1, r"Received: freeze_masks_at_epoch='auto' in a fit of 1 epoch"),
    ],
    ids=["no_fine_tune", "auto_with_one_epoch"],
)
def test_budget_given_to_prune_scl_needs_a_fine_tune_phase(freeze, epochs, message):
    x, y = _data()
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(3)])
    pruned = keras_scl.prune_scl(model, target_sparsity=0.5)
    pruned.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match=r"Expected a fine-tune phase with a budget \(target_sparsity=0.5.*" + message):
        pruned.fit(x, y, epochs=epochs, verbose=0, callbacks=[keras_scl.SCLCallback(freeze_masks_at_epoch=freeze)])


def test_budget_for_a_single_layer_is_refused():
    with pytest.raises(ValueError, match="a budget is global"):
        keras_scl.prune_scl(keras.layers.Dense(3), target_sparsity=0.5)


def test_scheduled_budget_falls_from_dense_to_target_then_holds():
    model = _model()
    model.build((None, 20))
    controller = BudgetController(model, target_sparsity=0.9, ramp=0.5)
    total = 20 * 32 + 32 * 3
    path = [controller.scheduled_budget(p) for p in np.linspace(0, 1, 21)]
    assert path[0] == pytest.approx(total)
    assert all(a >= b for a, b in zip(path, path[1:]))
    # Reference: the cubic of gradual pruning, reaching the budget at half the phase.
    assert path[5] == pytest.approx(0.1 * total + 0.9 * total * (1 - 0.25 / 0.5) ** 3)
    assert path[10:] == pytest.approx([0.1 * total] * 11)


def test_controller_factor_is_bounded_and_follows_the_sign_of_the_error():
    # Rises by at most max_step, falls by at most min_step, stays in [min_scale, max_scale].
    model = _model()
    model.build((None, 20))
    controller = BudgetController(
        model, target_sparsity=0.9, ramp=0.5, max_step=1.05, min_step=0.8, min_scale=0.1, max_scale=10
    )
    initial = float(controller.wrappers[0].strength_variable.numpy())
    # All masks are live (dense) at the end of the ramp: far over budget.
    assert controller.update(progress=1.0) == pytest.approx(1.05)
    for _ in range(200):
        controller.update(progress=1.0)
    assert float(controller.wrappers[0].strength_variable.numpy()) == pytest.approx(10 * initial)
    for mask in controller.masks:
        mask.assign(-np.ones(mask.shape, "float32"))  # nothing live: under budget
    assert controller.update(progress=1.0) == pytest.approx(0.8)
    for _ in range(200):
        controller.update(progress=1.0)
    assert float(controller.wrappers[0].strength_variable.numpy()) == pytest.approx(0.1 * initial)


def _set_live_fraction(controller, fraction):
    """Makes the first `fraction` of every mask's entries live, the rest pruned."""
    for mask in controller.masks:
        flat = -np.ones(int(np.prod(mask.shape)), "float32")
        flat[: int(round(fraction * flat.size))] = 1.0
        mask.assign(flat.reshape(mask.shape))


def test_controller_does_not_wind_down_while_over_the_final_budget():
    # Under the path (early in the ramp) but over the final budget: the
    # factor asks to ease off, and the strengths stay at their initial values.
    model = _model()
    model.build((None, 20))
    controller = BudgetController(model, target_sparsity=0.9, ramp=1.0, min_step=0.8, min_scale=0.1)
    initial = float(controller.wrappers[0].strength_variable.numpy())
    _set_live_fraction(controller, 0.5)  # 50 % live: under the path at progress 0, over the 10 % budget
    for _ in range(50):
        assert controller.update(progress=0.0) == pytest.approx(0.8)
    assert float(controller.wrappers[0].strength_variable.numpy()) == pytest.approx(initial)
    # Under the final budget the strengths ease off, down to min_scale.
    _set_live_fraction(controller, 0.05)
    for _ in range(50):
        controller.update(progress=1.0)
    assert float(controller.wrappers[0].strength_variable.numpy()) == pytest.approx(0.1 * initial)


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
        (dict(target_sparsity=0.9, freeze_masks_at_epoch=None), "Expected `freeze_masks_at_epoch` with a budget"),
        (dict(target_sparsity=1.0, freeze_masks_at_epoch=1), r"`target_sparsity` to be a finite number > 0 and < 1\. Received: target_sparsity=1\.0"),
        (dict(target_flops=-5, freeze_masks_at_epoch=1), "Received: target_flops=-5"),
        (dict(target_sparsity=0.5, target_flops=10, freeze_masks_at_epoch=1), "at most one of"),
        (dict(controller_freq=0), "Received: controller_freq=0"),
        (dict(budget_ramp=1.5), r"`budget_ramp` to be a finite number > 0 and <= 1 \(a fraction of the mask phase\)\. Received: budget_ramp=1\.5"),
        (dict(budget_ramp=0), "Received: budget_ramp=0"),
    ],
    ids=["no_freeze", "sparsity_one", "negative_flops", "both", "freq", "ramp_above_one", "ramp_zero"],
)
def test_budget_arguments_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_scl.SCLCallback(**kwargs)


def test_budget_runs_are_reproducible_with_asynchronous_batch_logs():
    # SCLCallback lets Keras dispatch batch-end hooks asynchronously; the
    # controller runs between steps, so a seeded run is repeatable exactly.
    x, y = _data()
    results = []
    for _ in range(2):
        model = _model()
        history = model.fit(
            x, y, batch_size=32, epochs=3, verbose=0,
            callbacks=[keras_scl.SCLCallback(freeze_masks_at_epoch=2, target_sparsity=0.7, controller_freq=2)],
        )
        results.append((history.history["scl_strength"], [w.numpy() for w in model.weights]))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)
    assert keras.callbacks.CallbackList([keras_scl.SCLCallback()])._async_train == keras.src.backend.IS_THREAD_SAFE
