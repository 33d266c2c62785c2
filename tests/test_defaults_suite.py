"""The defaults suite's generated tasks and its table (benchmarks/defaults.py)."""

import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
sys.path.insert(0, os.path.join(ROOT, "examples"))

import defaults  # noqa: E402


def test_majority_marker_label_is_the_strictly_most_frequent_marker():
    (x, y), (xt, yt) = defaults.majority_marker_task(n_train=300, n_test=100, seed=3)
    x, y = np.concatenate([x, xt]), np.concatenate([y, yt])
    assert x.shape == (400, 24) and x.dtype == np.int32 and y.dtype == np.int32
    for tokens, label in zip(x, y):
        counts = np.array([np.sum(tokens == marker) for marker in (1, 2, 3, 4)])
        assert 4 <= counts.sum() <= 13
        assert counts[label] > np.delete(counts, label).max()
    assert np.all((x >= 1) & (x < 32))
    # Every class occurs, roughly equally often.
    assert np.bincount(y, minlength=4).min() > 60


def test_majority_marker_task_is_the_same_for_the_same_seed():
    first, second = defaults.majority_marker_task(50, 10, seed=1), defaults.majority_marker_task(50, 10, seed=1)
    np.testing.assert_array_equal(first[0][0], second[0][0])
    np.testing.assert_array_equal(first[1][1], second[1][1])


def test_first_marker_label_is_the_marker_that_comes_first():
    (x, y), _ = defaults.first_marker_task(n_train=200, n_test=10, seed=2)
    for tokens, label in zip(x, y):
        markers = [t for t in tokens if 1 <= t <= 4]
        assert markers and markers[0] == label + 1


def test_table_marks_cases_outside_the_target(tmp_path):
    row = {
        "epochs": 5, "start": "scratch", "dense_test_error_percent": 1.0, "scl_test_error_percent": 9.0,
        "points_below_dense": 8.0, "max_points_below_dense": 1.0, "sparsity": 0.9, "met": False,
    }
    path = tmp_path / "defaults.json"
    path.write_text(json.dumps({"cases": [
        {**row, "case": "first-marker-5", "in_target": False},
        {**row, "case": "sequence-5"},
    ]}))
    lines = defaults.markdown_table(str(path)).splitlines()
    assert lines[2].startswith("| sequence-5 ") and lines[2].endswith("| **no** |")
    assert lines[3].startswith("| first-marker-5 ") and lines[3].endswith("| outside the target (missed) |")
