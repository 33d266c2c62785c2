"""The example scripts run end to end (one mask and one fine-tune epoch)."""

import json
import os
import sys

import pytest

from test_benchmark_quick import DATA_DIR
from test_benchmark_quick import ROOT

sys.path.insert(0, os.path.join(ROOT, "examples"))

needs_mnist = pytest.mark.skipif(
    DATA_DIR is None or not os.path.isdir(os.path.join(DATA_DIR, "mnist")),
    reason="needs MNIST prepared by TFDS in $TFDS_DATA_DIR or ../shared/tfds",
)


@needs_mnist
@pytest.mark.parametrize("name", ["lenet300", "lenet5"])
def test_example_trains_strips_exports_and_reports(name, tmp_path):
    module = __import__(f"mnist_{name}")
    summary = module.main(
        ["--data-dir", DATA_DIR, "--out-dir", str(tmp_path), "--mask-epochs", "1", "--finetune-epochs", "1"]
    )
    assert summary["test_accuracy"] > 0.8
    # The recipe prunes the trained dense network; its error is reported.
    assert summary["recipe"]["prune_trained"] is True
    assert 0.0 < summary["dense_test_error_percent"] < 20.0
    assert 0.0 <= summary["sparsity"] < 1.0
    with open(tmp_path / f"{name}.json") as f:
        assert json.load(f)["network"] == name
    assert (tmp_path / f"{name}_sparsity.png").stat().st_size > 0
    assert (tmp_path / f"{name}_savedmodel" / "saved_model.pb").exists()
