import keras
import numpy as np

import keras_scl
from helpers import randomize_masks


def test_sparse_model_compresses_towards_ideal_size():
    keras.utils.set_random_seed(0)
    dense = keras.Sequential([keras.Input((200,)), keras.layers.Dense(100), keras.layers.Dense(10)])
    pruned = keras_scl.prune_scl(dense)
    for wrapper in pruned.layers:
        randomize_masks(wrapper)
        wrapper.masks[0].assign(wrapper.masks[0].numpy() - 1.5)  # about 93 % pruned
    stripped = keras_scl.strip_scl(pruned)
    sparse_size = keras_scl.deployment_size(stripped)
    dense_size = keras_scl.deployment_size(dense)
    rows = keras_scl.sparsity_report(stripped)
    live, total = sum(r.live for r in rows), sum(r.total for r in rows)
    assert sparse_size["dense_weights_bytes"] == dense_size["dense_weights_bytes"] == 4 * (200 * 100 + 100 + 100 * 10 + 10)
    assert sparse_size["ideal_bytes"] == 4 * (110 + live) + int(np.ceil(total / 8))
    # Random float32 weights do not compress; zeros do.
    assert dense_size["variables_gzip_bytes"] > 0.85 * dense_size["dense_weights_bytes"]
    assert sparse_size["variables_gzip_bytes"] < 0.3 * dense_size["variables_gzip_bytes"]
    assert sparse_size["variables_gzip_bytes"] > sparse_size["ideal_bytes"] * 0.5
