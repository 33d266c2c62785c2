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
    import baselines
    import run

    # One tfmot run per kind of allocation, one distilling, and keras_scl without distillation.
    methods = ["tfmot_uniform", "tfmot_learned_distill", "tfmot_handmade", "scl_no_distill"]
    argv = ["--quick", "--network", "lenet300", "--data-dir", DATA_DIR, "--out-dir", str(tmp_path), "--verbose", "0"]
    run.main([*argv, "--baselines", *methods])
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
    assert summary["scl"]["sparsity"]["mean"] > 0.5  # the quick recipe prunes, so the allocations differ
    assert set(summary["scl"]["layer_sparsity"]) == {"fc1/kernel", "fc2/kernel", "fc3/kernel"}
    assert (tmp_path / "lenet300.png").stat().st_size > 0
    assert summary["scl_no_distill"]["seeds"] == [0]
    assert result["runs"][0]["scl_no_distill"]["strength"] == run.NO_DISTILL_STRENGTH["lenet300"]
    if result["tfmot"] == "included":
        first = result["runs"][0]
        for key in ("tfmot", "tfmot_learned_distill", "tfmot_handmade"):
            assert summary[key]["sparsity"]["mean"] == pytest.approx(summary["scl"]["sparsity"]["mean"], abs=0.02)
            assert 0.0 <= summary[key]["test_error_percent"]["mean"] < 50.0
        learned = {row["layer"]: row["sparsity"] for row in first["tfmot_learned_distill"]["layers"]}
        assert learned == pytest.approx(baselines.learned_allocation(first["scl"]["layers"]), abs=1e-3)
        assert first["tfmot_learned_distill"]["teacher_seconds"] > 0
        handmade = {row["layer"]: row["sparsity"] for row in first["tfmot_handmade"]["layers"]}
        assert handmade == pytest.approx(first["tfmot_handmade"]["layer_targets"], abs=1e-3)
    # Runs of another recipe are not merged into this file.
    recipe = dict(result["recipe"], strength=1.0)
    with pytest.raises(SystemExit, match="another recipe"):
        run.load_previous(str(tmp_path / "lenet300.json"), True, recipe)
    assert run.load_previous(str(tmp_path / "lenet300.json"), True, result["recipe"])["runs"] == result["runs"]


def test_results_from_before_update_pruned_weights_merge_as_kept(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import dataclasses

    import run

    recipe = dataclasses.asdict(run.NETWORKS["lenet300"][0].RECIPE)
    assert recipe["update_pruned_weights"] is False
    older = {k: v for k, v in recipe.items() if k != "update_pruned_weights"}
    path = tmp_path / "lenet300.json"
    path.write_text(json.dumps({"quick": False, "recipe": older, "runs": []}))
    assert run.load_previous(str(path), False, recipe)["runs"] == []
    with pytest.raises(SystemExit, match="another recipe"):
        run.load_previous(str(path), False, dict(recipe, update_pruned_weights=True))


def test_merge_replaces_runs_of_the_same_seed_and_keeps_the_others():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import run

    # A file from before runs named their seed.
    previous = {"seeds": [0, 1, 2], "runs": [{"scl": "a"}, {"scl": "b"}, {"scl": "c"}]}
    runs = run.merge(previous, [{"seed": 1, "scl": "new"}, {"seed": 10, "scl": "d"}])
    assert runs == [{"seed": 0, "scl": "a"}, {"seed": 1, "scl": "new"}, {"seed": 2, "scl": "c"}, {"seed": 10, "scl": "d"}]
    assert run.merge(None, [{"seed": 3}]) == [{"seed": 3}]


def test_tfmot_distillation_loss_is_keras_scl_s():
    """The loss the Keras 2 process trains tfmot on is `keras_scl.DistillationLoss`."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import numpy as np
    from distillation_tf import distillation_loss

    rng = np.random.default_rng(0)
    logits, teacher = 3 * rng.normal(size=(64, 10)), 3 * rng.normal(size=(64, 10))
    y_true = np.concatenate([rng.integers(0, 10, size=(64, 1)), teacher], axis=1).astype("float32")
    y_pred = logits.astype("float32")
    for temperature, weight in ((4.0, 0.7), (1.0, 0.0), (2.5, 1.0)):
        expected = keras_scl.DistillationLoss(temperature, weight).call(keras.ops.convert_to_tensor(y_true), keras.ops.convert_to_tensor(y_pred))
        got = distillation_loss(tf.constant(y_true), tf.constant(y_pred), temperature, weight)
        np.testing.assert_allclose(got.numpy(), keras.ops.convert_to_numpy(expected), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "sizes, global_sparsity, edges",
    [
        ({"fc1": 235200, "fc2": 30000, "fc3": 1000}, 0.9865, ["fc3"]),  # fc1 holds most weights: pruned as the middle
        ({"conv1": 500, "conv2": 25000, "fc1": 400000, "fc2": 5000}, 0.9955, ["conv1", "fc2"]),
    ],
    ids=["lenet300", "lenet5"],
)
def test_handmade_allocation_keeps_edges_denser_and_meets_the_global_sparsity(sizes, global_sparsity, edges):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import baselines

    allocation = baselines.handmade_allocation(sizes, global_sparsity)
    assert list(allocation) == list(sizes)
    live = sum((1 - allocation[n]) * size for n, size in sizes.items())
    assert live == pytest.approx((1 - global_sparsity) * sum(sizes.values()))
    middle = {allocation[n] for n in sizes if n not in edges}
    assert len(middle) == 1 and middle.pop() > global_sparsity
    assert all(allocation[n] == 0.8 for n in edges)
    # Below the edge layers' cap the rule is uniform.
    assert set(baselines.handmade_allocation(sizes, 0.5).values()) == {0.5}
    with pytest.raises(ValueError, match="middle layers can absorb"):
        baselines.handmade_allocation({"a": 10, "b": 10, "c": 10}, 0.9, edge_sparsity=0.0)


def test_no_distill_strength_search_steps_towards_the_target():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import no_distill_strength

    # One trial: compression taken proportional to strength.
    assert no_distill_strength.next_strength([{"strength": 1e-5, "compression": 50.0}], 75.0) == pytest.approx(1.5e-5)
    # Two trials on compression = c * strength**2: the secant lands on the target.
    trials = [{"strength": s, "compression": 4e10 * s**2} for s in (1e-5, 2e-5)]
    assert no_distill_strength.next_strength(trials, 36.0) == pytest.approx(3e-5)
    # Never more than a factor 4 at once.
    assert no_distill_strength.next_strength([{"strength": 1e-5, "compression": 1.0}], 100.0) == pytest.approx(4e-5)


def test_results_table_pools_seeds_of_one_recipe():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import results_table
    import run

    def entry(error, compression):
        layers = [{"layer": "fc", "weight": "kernel", "sparsity": 1 - 1 / compression}]
        return {
            "test_accuracy": 1 - error / 100, "sparsity": 1 - 1 / compression, "compression": compression,
            "dense_flops": 100.0, "sparse_flops": 100.0 / compression, "seconds_per_epoch": [2.0, 1.0, 1.0], "layers": layers,
        }

    def result(seeds, recipe):
        runs = [{"dense": entry(1.5, 1.0), "scl": entry(1.0 + s, 50.0)} for s in seeds]
        return {"recipe": recipe, "quick": False, "seeds": seeds, "runs": runs}

    recipe = {"mask_epochs": 1}
    runs = results_table.pool([result([10, 11], recipe), result([0], recipe)])
    assert [r["seed"] for r in runs] == [0, 10, 11]
    summary = run.aggregate(runs, 1)
    assert summary["scl"]["test_error_percent"]["mean"] == pytest.approx((1 + 11 + 12) / 3)
    table = results_table.rows(summary)
    assert len(table) == 4 and "| keras_scl (recipe, distils) | 0, 10-11 | 8.00 ± " in table[3]
    with pytest.raises(ValueError, match="seed 0 twice"):
        results_table.pool([result([0], recipe), result([0, 1], recipe)])
    with pytest.raises(ValueError, match="one recipe"):
        results_table.pool([result([0], recipe), result([1], {"mask_epochs": 2})])
    # A file from before the recipe named `update_pruned_weights` was run with False.
    kept = {"mask_epochs": 1, "update_pruned_weights": False}
    assert len(results_table.pool([result([0], recipe), result([1], kept)])) == 2
    with pytest.raises(ValueError, match="one recipe"):
        results_table.pool([result([0], recipe), result([1], dict(kept, update_pruned_weights=True))])


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
