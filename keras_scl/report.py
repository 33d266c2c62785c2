"""How sparse a wrapped model is, per mask and in total."""

import collections

import numpy as np

from keras_scl.wrapper import find_wrappers

MaskStats = collections.namedtuple("MaskStats", ["layer", "weight", "total", "live"])


def mask_stats(model):
    """One `MaskStats(layer, weight, total, live)` per mask of a wrapped model."""
    rows = []
    for wrapper in find_wrappers(model):
        for weight, mask in wrapper.masked_weights:
            live = int(np.count_nonzero(mask.numpy() > 0))
            rows.append(MaskStats(wrapper.layer.name, weight.name, int(np.prod(mask.shape)), live))
    return rows


def global_sparsity(rows):
    """Fraction of pruned connections over all rows of `mask_stats`."""
    total = sum(r.total for r in rows)
    return 1.0 - sum(r.live for r in rows) / total if total else 0.0


def layer_sparsity(rows):
    """`{layer name: sparsity}` over all masks of each layer."""
    per_layer = collections.defaultdict(lambda: [0, 0])
    for r in rows:
        per_layer[r.layer][0] += r.total
        per_layer[r.layer][1] += r.live
    return {name: 1.0 - live / total for name, (total, live) in per_layer.items()}
