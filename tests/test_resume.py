"""Interrupted training resumes exactly: weights, masks, optimizer state, sparsity.

Each run is a fresh Python process (the restart is real), with TensorFlow op
determinism enabled and no shuffling, so uninterrupted and resumed training
must agree bitwise.
"""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "resume_script.py")


def _run(mode, workdir, **env):
    proc = subprocess.run(
        [sys.executable, SCRIPT, mode, str(workdir)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
    )
    return proc


def _state(workdir):
    with np.load(os.path.join(workdir, "state.npz")) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("full")
    proc = _run("full", workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _state(workdir)


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _epochs(workdir):
    return [int(line) for line in (workdir / "epochs.txt").read_text().split()]


def test_uninterrupted_run_prunes(uninterrupted):
    masks = [v for k, v in uninterrupted.items() if k.endswith("kernel_mask")]
    assert len(masks) == 2
    assert all(0 < (m <= 0).mean() < 1 for m in masks)


def test_save_restart_and_continue_equals_one_run(uninterrupted, tmp_path):
    for mode in ("first", "resume"):
        proc = _run(mode, tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert _epochs(tmp_path) == [0, 1, 2, 3]
    _assert_same(_state(tmp_path), uninterrupted)


def test_sigkill_mid_epoch_then_backup_and_restore_equals_one_run(uninterrupted, tmp_path):
    killed = _run("backup", tmp_path, KILL_AT_EPOCH="2")
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "state.npz").exists()
    resumed = _run("backup", tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # Epoch 2 was cut short; the restart resumes there, not from scratch.
    assert _epochs(tmp_path) == [0, 1, 2, 2, 3]
    _assert_same(_state(tmp_path), uninterrupted)
