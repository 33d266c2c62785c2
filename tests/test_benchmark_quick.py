"""The benchmark harness in `--quick` mode, so it cannot rot unnoticed."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import keras
import pytest
import tensorflow as tf

import keras_scl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "tfds")
DATA_DIR = os.environ.get("TFDS_DATA_DIR") or (SHARED if os.path.isdir(SHARED) else None)


@pytest.mark.skipif(
    DATA_DIR is None or not os.path.isdir(os.path.join(DATA_DIR, "mnist")),
    reason="needs MNIST prepared by TFDS in $TFDS_DATA_DIR or ../shared/tfds",
)
def test_quick_benchmark_writes_results(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import run

    run.main(["--quick", "--network", "lenet300", "--data-dir", DATA_DIR, "--out-dir", str(tmp_path), "--verbose", "0"])
    with open(tmp_path / "lenet300.json") as f:
        result = json.load(f)
    assert result["quick"] and result["network"] == "lenet300"
    assert result["command"].startswith("python benchmarks/run.py --quick")
    assert result["versions"]["keras_scl"] == keras_scl.__version__
    summary = result["summary"]
    for method in ("dense", "scl"):
        assert 0.0 <= summary[method]["test_error_percent"]["mean"] < 30.0
        assert summary[method]["seconds_per_epoch"]["mean"] > 0
    assert summary["dense"]["sparsity"]["mean"] == 0.0
    assert summary["scl"]["epoch_time_ratio_vs_dense"]["mean"] > 0
    assert set(summary["scl"]["layer_sparsity"]) == {"fc1/kernel", "fc2/kernel", "fc3/kernel"}
    assert (tmp_path / "lenet300.png").stat().st_size > 0
    if "tfmot" in summary:
        assert summary["tfmot"]["sparsity"]["mean"] == pytest.approx(summary["scl"]["sparsity"]["mean"], abs=0.02)


@pytest.mark.skipif(
    DATA_DIR is None or not os.path.isdir(os.path.join(DATA_DIR, "mnist")),
    reason="needs MNIST prepared by TFDS in $TFDS_DATA_DIR or ../shared/tfds",
)
@pytest.mark.parametrize("prune_trained", [False, True])
def test_budget_benchmark_meets_its_target_and_aggregates_seeds(tmp_path, prune_trained):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import budget

    budget.main([
        "--network", "lenet300", "--targets", "0.9", "--seeds", "0", "1", "--mask-epochs", "1",
        "--finetune-epochs", "1", "--no-tfmot", "--data-dir", DATA_DIR, "--out-dir", str(tmp_path),
        *(["--prune-trained"] if prune_trained else []),
    ])
    with open(tmp_path / ("budget_lenet300_trained.json" if prune_trained else "budget_lenet300.json")) as f:
        result = json.load(f)
    assert result["results"]["lenet300"]["recipe"]["prune_trained"] == prune_trained
    if prune_trained:
        assert all(0.0 < e < 10.0 for e in result["results"]["lenet300"]["dense_error_percent"])
    entry = result["results"]["lenet300"]["targets"]["0.9"]["scl"]
    assert result["seeds"] == [0, 1] and len(entry["runs"]) == 2
    assert all(abs(r["sparsity"] - 0.9) <= 0.003 for r in entry["runs"])
    errors = [r["test_error_percent"] for r in entry["runs"]]
    assert entry["test_error_percent"] == pytest.approx(sum(errors) / 2)
    assert 0.0 < entry["test_error_percent"] < 30.0


def test_weights_handed_to_the_tfmot_process_round_trip(tmp_path):
    """The trained dense model reaches tfmot's process with the same weights."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import numpy as np
    import run
    import weights_npz

    for network, (module, flat) in run.NETWORKS.items():
        source = module.build_model()
        path = str(tmp_path / f"{network}.npz")
        weights_npz.save(source, path)
        copy = weights_npz.load(module.build_model(), path)
        x = np.random.default_rng(0).random((8, 784) if flat else (8, 28, 28, 1)).astype("float32")
        np.testing.assert_array_equal(copy.predict(x, verbose=0), source.predict(x, verbose=0))


def _git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_results_header_names_the_commit_and_marks_changed_code(tmp_path):
    # A small repository holding this provenance.py, a library file and a results file.
    repo = tmp_path / "repo"
    for folder in ("benchmarks/results", "keras_scl"):
        (repo / folder).mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "benchmarks", "provenance.py"), repo / "benchmarks" / "provenance.py")
    (repo / "keras_scl" / "step.py").write_text("x = 1\n")
    (repo / "benchmarks" / "results" / "lenet300.json").write_text("{}\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    head = _git(repo, "rev-parse", "HEAD")
    spec = importlib.util.spec_from_file_location("provenance_copy", repo / "benchmarks" / "provenance.py")
    provenance = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(provenance)

    header = provenance.header("run.py", ["--quick", "--seeds", "0"])
    assert header["command"] == "python benchmarks/run.py --quick --seeds 0"
    assert header["commit"] == head
    assert header["versions"]["keras"] == keras.__version__
    assert header["versions"]["tensorflow"] == tf.__version__
    # Re-running a benchmark rewrites its results: that is not a code change.
    (repo / "benchmarks" / "results" / "lenet300.json").write_text('{"error": 1.0}\n')
    assert provenance.commit() == head
    # Nor is editing the documentation, in or below the top folder.
    (repo / "README.md").write_text("# notes\n")
    (repo / "benchmarks" / "NOTES.md").write_text("more\n")
    assert provenance.commit() == head
    (repo / "keras_scl" / "step.py").write_text("x = 2\n")
    assert provenance.commit() == head + " with uncommitted changes"
