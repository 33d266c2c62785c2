"""Budget mode: steer SCL to a target sparsity or FLOPs, then meet it exactly.

SCL learns *where* connections live; a budget says *how many*. During the
mask phase a multiplicative controller scales the regularization factor of
every wrapper by `(live cost / scheduled budget) ** gain` every few steps,
where the scheduled budget falls gradually from the dense cost to the
target, so the network prunes harder while it is over the path and eases
off under it. When
the masks freeze, `project_to_budget` keeps the connections with the largest
mask values that fit the budget, so the final model meets it to within one
connection: the layer-wise allocation is still the learned one.

Costs: with a sparsity target every connection costs 1; with a FLOPs target
a connection costs the FLOPs it adds per example (see `report`).
"""

import numpy as np

from keras_scl import report
from keras_scl.validation import check_number
from keras_scl.wrapper import find_wrappers

# Projected masks are set this far on the right side of zero.
_MARGIN = 1e-3


def check_budget(target_sparsity, target_flops):
    """Validates a budget as `prune_scl` and `SCLCallback` receive it."""
    if target_sparsity is not None and target_flops is not None:
        raise ValueError(
            "Expected at most one of `target_sparsity` and `target_flops`. "
            f"Received: target_sparsity={target_sparsity!r}, target_flops={target_flops!r}"
        )
    if target_sparsity is not None:
        check_number("target_sparsity", target_sparsity, minimum=0, strict=True, maximum=1, strict_maximum=True)
    if target_flops is not None:
        check_number("target_flops", target_flops, minimum=0, strict=True)


def mask_costs(model):
    """`[(mask, cost per entry)]` for a FLOPs budget, from `sparsity_report`."""
    wrappers = find_wrappers(model)
    masks = [m for w in wrappers for m in w.masks]
    rows = report.sparsity_report(model)
    return [(m, r.dense_flops / r.total) for m, r in zip(masks, rows)]


def project_to_budget(values, costs, budget):
    """Which entries to keep: the largest values whose total cost fits `budget`.

    Args:
        values: list of arrays, the mask values.
        costs: list of floats, the cost of one entry of each array.
        budget: float, the total cost allowed.

    Returns:
        A list of boolean arrays shaped like `values`.
    """
    flat = np.concatenate([np.ravel(v) for v in values])
    cost = np.concatenate([np.full(np.size(v), c, dtype="float64") for v, c in zip(values, costs)])
    order = np.argsort(-flat, kind="stable")
    keep_sorted = np.cumsum(cost[order]) <= budget + 1e-9
    keep = np.zeros(flat.shape, dtype=bool)
    keep[order[keep_sorted]] = True
    out, start = [], 0
    for v in values:
        out.append(keep[start : start + np.size(v)].reshape(np.shape(v)))
        start += np.size(v)
    return out


class BudgetController:
    """Steers the wrappers' regularization factors along a path to a budget.

    The live cost should not drop to the budget at once: connections pruned
    in a hurry are pruned before the task gradient has told the masks which
    matter. So the controller follows a scheduled budget that falls from the
    dense cost to the final budget along a cubic curve (the shape of gradual
    magnitude pruning) over the first `ramp` fraction of the mask phase and
    then holds. Every step it scales every wrapper's regularization factor
    by `(live cost / scheduled budget) ** gain`, clipped to
    `[min_step, max_step]`: over the path it prunes harder, under it it
    eases off and the task gradient revives connections, but not below the
    initial factors while the live cost is still over the final budget
    (anti-windup; see `update`). It rises slowly
    and falls fast, because the live cost lags the factor by hundreds of
    steps (a mask has to travel to zero): a factor that kept rising until
    the live cost caught up would overshoot the budget. The factors stay
    within `[min_scale, max_scale]` times their initial values, which keeps
    the controller from winding up while the live cost cannot follow (dead
    inputs are pruned at once whatever the factor).

    Args:
        model: the wrapped model.
        target_sparsity: float in (0, 1), or `None`.
        target_flops: number > 0 (FLOPs per example of the prunable
            layers), or `None`. Exactly one of the two is set.
        ramp: float in (0, 1]. Fraction of the mask phase over which the
            scheduled budget falls to the final one.
        gain: float. Exponent of the multiplicative update.
        max_step: float > 1. Largest rise of the factors in one step.
        min_step: float in (0, 1). Largest fall, as a factor.
        min_scale, max_scale: floats, the bounds of the factors relative to
            their initial values.
    """

    def __init__(
        self,
        model,
        target_sparsity=None,
        target_flops=None,
        ramp=0.6,
        gain=4.0,
        max_step=1.05,
        min_step=0.5,
        min_scale=1e-2,
        max_scale=1e2,
    ):
        self.wrappers = find_wrappers(model)
        if target_flops is None:
            pairs = [(m, 1.0) for w in self.wrappers for m in w.masks]
            self.budget = (1.0 - target_sparsity) * sum(m.numpy().size for m, _ in pairs)
        else:
            pairs = mask_costs(model)
            self.budget = float(target_flops)
        self.masks = [m for m, _ in pairs]
        self.costs = [c for _, c in pairs]
        self.dense_cost = float(sum(c * m.numpy().size for m, c in pairs))
        self.ramp, self.gain, self.max_step, self.min_step = ramp, gain, max_step, min_step
        self.min_scale, self.max_scale = min_scale, max_scale
        self.initial = [float(w.strength_variable.numpy()) for w in self.wrappers]
        self.scale = 1.0

    def live_cost(self):
        return float(sum(c * np.count_nonzero(m.numpy() > 0) for m, c in zip(self.masks, self.costs)))

    def scheduled_budget(self, progress):
        """The budget to be at when a `progress` fraction of the mask phase is done."""
        left = 1.0 - min(max(progress, 0.0) / self.ramp, 1.0)
        return self.budget + (self.dense_cost - self.budget) * left**3

    def update(self, progress=1.0):
        """One controller step; returns the factor the live cost asks for.

        The strengths are scaled by it, except where the anti-windup floor
        below stops them from easing off.
        """
        live = self.live_cost()
        ratio = max(live, 1.0) / max(self.scheduled_budget(progress), 1.0)
        factor = float(np.clip(ratio**self.gain, self.min_step, self.max_step))
        # Anti-windup: while the live cost is over the final budget, the
        # factors do not ease off below their initial values. A network that
        # is under the path there prunes connections no task gradient holds
        # up (a trained network sheds them in its first epoch); a weaker
        # factor cannot bring those back, and winding it down would only
        # leave it a long way to climb when the path catches up.
        floor = 1.0 if live > self.budget else self.min_scale
        self.scale = float(np.clip(self.scale * factor, min(floor, self.scale), self.max_scale))
        for wrapper, initial in zip(self.wrappers, self.initial):
            wrapper.strength_variable.assign(initial * self.scale)
        return factor

    def project(self):
        """Sets the masks so that exactly the budget's best connections are live."""
        values = [m.numpy() for m in self.masks]
        keep = project_to_budget(values, self.costs, self.budget)
        for mask, value, k in zip(self.masks, values, keep):
            mask.assign(np.where(k, np.maximum(value, _MARGIN), np.minimum(value, -_MARGIN)).astype("float32"))

    def strength(self):
        return float(self.wrappers[0].strength_variable.numpy()) if self.wrappers else 0.0
