"""Budget mode: steer SCL to a target sparsity or FLOPs, then meet it exactly.

SCL learns *where* connections live; a budget says *how many*. During the
mask phase a multiplicative controller scales the regularization factor of
every wrapper by `(live cost / budget) ** gain` every few steps, so the
network prunes harder while it is over budget and eases off under it. When
the masks freeze, `project_to_budget` keeps the connections with the largest
mask values that fit the budget, so the final model meets it to within one
connection: the layer-wise allocation is still the learned one.

Costs: with a sparsity target every connection costs 1; with a FLOPs target
a connection costs the FLOPs it adds per example (see `report`).
"""

import numpy as np

from keras_scl import report
from keras_scl.wrapper import find_wrappers

# Projected masks are set this far on the right side of zero.
_MARGIN = 1e-3


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
    """Adjusts the wrappers' regularization factors towards a budget.

    Args:
        model: the wrapped model.
        target_sparsity: float in (0, 1), or `None`.
        target_flops: number > 0 (FLOPs per example of the prunable
            layers), or `None`. Exactly one of the two is set.
        gain: float. Exponent of the multiplicative update.
    """

    def __init__(self, model, target_sparsity=None, target_flops=None, gain=1.0):
        self.wrappers = find_wrappers(model)
        if target_flops is None:
            pairs = [(m, 1.0) for w in self.wrappers for m in w.masks]
            self.budget = (1.0 - target_sparsity) * sum(m.numpy().size for m, _ in pairs)
        else:
            pairs = mask_costs(model)
            self.budget = float(target_flops)
        self.masks = [m for m, _ in pairs]
        self.costs = [c for _, c in pairs]
        self.gain = gain

    def live_cost(self):
        return float(sum(c * np.count_nonzero(m.numpy() > 0) for m, c in zip(self.masks, self.costs)))

    def update(self):
        """One controller step; returns the factor applied to the strengths."""
        ratio = max(self.live_cost(), 1.0) / max(self.budget, 1.0)
        factor = float(np.clip(ratio**self.gain, 0.5, 2.0))
        for wrapper in self.wrappers:
            wrapper.strength_variable.assign(wrapper.strength_variable * factor)
        return factor

    def project(self):
        """Sets the masks so that exactly the budget's best connections are live."""
        values = [m.numpy() for m in self.masks]
        keep = project_to_budget(values, self.costs, self.budget)
        for mask, value, k in zip(self.masks, values, keep):
            mask.assign(np.where(k, np.maximum(value, _MARGIN), np.minimum(value, -_MARGIN)).astype("float32"))

    def strength(self):
        return float(self.wrappers[0].strength_variable.numpy()) if self.wrappers else 0.0
