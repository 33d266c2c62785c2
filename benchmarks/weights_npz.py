"""Model weights as an .npz keyed "<layer name>/<index>".

How weights cross the process boundary between `run.py` (Keras 3) and
`tfmot_baseline.py` (Keras 2): only numpy here, so both sides can import it,
and any model with `layers` whose layers have `get_weights` / `set_weights`
works.
"""

import numpy as np


def save(model, path):
    np.savez(path, **{f"{layer.name}/{i}": w for layer in model.layers for i, w in enumerate(layer.get_weights())})


def load(model, path):
    """Sets `model`'s weights from `path`, layer by layer; returns `model`."""
    weights = np.load(path)
    for layer in model.layers:
        values = [weights[f"{layer.name}/{i}"] for i in range(len(layer.weights))]
        if values:
            layer.set_weights(values)
    return model
