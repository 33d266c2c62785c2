import keras
import numpy as np
import pytest

import keras_scl
from helpers import randomize_masks


def _lenet5():
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(20, 5, name="conv1"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(50, 5, name="conv2"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(500, name="fc1"),
            keras.layers.Dense(10, name="fc2"),
        ]
    )


def test_dense_flops_match_hand_count():
    rows = keras_scl.sparsity_report(keras_scl.prune_scl(_lenet5()))
    by_layer = {r.layer: r for r in rows}
    # 2 FLOPs per multiply-add; conv1: 24x24 outputs x 20 filters x 25 taps.
    assert by_layer["conv1"].dense_flops == 2 * 24 * 24 * 20 * 25
    assert by_layer["conv2"].dense_flops == 2 * 8 * 8 * 50 * 5 * 5 * 20
    assert by_layer["fc1"].dense_flops == 2 * 800 * 500
    assert by_layer["fc2"].dense_flops == 2 * 500 * 10
    assert sum(r.total for r in rows) == 430500


def test_wrapped_and_stripped_reports_agree():
    pruned = keras_scl.prune_scl(_lenet5())
    for layer in pruned.layers:
        if isinstance(layer, keras_scl.SCLWrapper):
            randomize_masks(layer)
    wrapped = keras_scl.sparsity_report(pruned)
    stripped = keras_scl.sparsity_report(keras_scl.strip_scl(pruned))
    assert [(r.layer, r.total, r.live, r.sparse_flops) for r in wrapped] == [
        (r.layer, r.total, r.live, r.sparse_flops) for r in stripped
    ]
    for r in wrapped:
        assert r.sparse_flops == r.dense_flops * r.live // r.total
        assert 0.3 < r.sparsity < 0.7


def test_transposed_conv_flops_count_input_positions():
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2DTranspose(2, 3, strides=2)])
    (row,) = keras_scl.sparsity_report(model)
    assert row.dense_flops == 2 * (3 * 3 * 2 * 3) * 4 * 4


def test_global_sparsity_and_format():
    pruned = keras_scl.prune_scl(_lenet5())
    masks = [m for layer in pruned.layers if isinstance(layer, keras_scl.SCLWrapper) for m in layer.masks]
    masks[2].assign(-np.ones(masks[2].shape, "float32"))  # fc1 all pruned
    rows = keras_scl.sparsity_report(pruned)
    assert keras_scl.global_sparsity(rows) == pytest.approx(400000 / 430500)
    text = keras_scl.format_report(rows)
    assert "fc1" in text and "100.00%" in text and "total" in text


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = keras_scl.plot_sparsity(keras_scl.prune_scl(_lenet5()), str(tmp_path / "s.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
