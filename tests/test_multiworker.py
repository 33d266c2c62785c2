"""SCL under tf.distribute.MultiWorkerMirroredStrategy: two worker processes.

Two CPU workers on localhost train the same wrapped model
(multiworker_worker.py) while a third process trains it alone on the same
global batches; every process is fresh, since a TensorFlow cluster cannot be
set up or torn down inside the test process.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import pytest

import keras_scl

SCRIPT = os.path.join(os.path.dirname(__file__), "multiworker_worker.py")
# Runs took 22 s to 3 minutes on two CPU cores shared with other jobs (load
# averages 5 to 15); only a hang should reach this.
TIMEOUT_S = 300
TARGET_SPARSITY = 0.6
NAMES = ["worker0", "worker1", "single"]


def _free_ports(count):
    """Ports free on the loopback interface now (the OS picks them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start(outdir, tf_config, log):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [sys.executable, SCRIPT, str(outdir), str(TARGET_SPARSITY)], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def _run_once(outdir):
    """Runs the two workers and the single process; returns their exit codes.

    Every process ends within TIMEOUT_S; once one fails the others are
    killed, since a worker left alone waits for its peer's collectives.
    """
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    configs = [{"cluster": cluster, "task": {"type": "worker", "index": i}} for i in range(2)] + [None]
    logs = [open(outdir / f"{name}.log", "w") for name in NAMES]
    procs = []
    try:
        for config, log in zip(configs, logs):
            procs.append(_start(outdir, config, log))
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            codes = [proc.poll() for proc in procs]
            if None not in codes or any(codes):
                break
            time.sleep(0.2)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()
    return {name: proc.returncode for name, proc in zip(NAMES, procs)}


def _failure_report(outdir, codes, chars=3000):
    # The logs of the processes that failed on their own come first.
    failed = sorted((code == -signal.SIGKILL, name) for name, code in codes.items() if code)
    tails = "".join(f"\n--- {name}.log ---\n" + (outdir / f"{name}.log").read_text()[-chars:] for _, name in failed)
    return f"Return codes {codes} (-9: killed after {TIMEOUT_S} s or at another's failure){tails}"


def _train_everywhere(outdir):
    """The arrays each process saved, by process name.

    A cluster that fails is started once more, on new ports, with a warning:
    a port taken between choosing and binding it, or a heartbeat missed on a
    starved machine, should not fail the test; a failure of keras_scl fails
    both runs.
    """
    codes = _run_once(outdir)
    if any(codes.values()):
        warnings.warn("Multi-worker run failed; running it again. " + _failure_report(outdir, codes, chars=500))
        codes = _run_once(outdir)
        if any(codes.values()):
            pytest.fail(_failure_report(outdir, codes))
    return {name: dict(np.load(outdir / f"{name}.npz")) for name in NAMES}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The variables, loss and replica count each process saved, and their directory."""
    outdir = tmp_path_factory.mktemp("multiworker")
    states = _train_everywhere(outdir)
    return states, outdir


def test_each_worker_trains_two_replicas(trained):
    states, _ = trained
    assert [int(states[name]["replicas"]) for name in ("worker0", "worker1", "single")] == [2, 2, 1]


def test_workers_end_with_identical_masks_and_weights(trained):
    states, _ = trained
    worker0, worker1 = states["worker0"], states["worker1"]
    assert sorted(worker1) == sorted(worker0)
    assert any(path.endswith("_mask") for path in worker0)
    for path in worker0:
        # Both apply the same all-reduced updates to the same initial values.
        np.testing.assert_array_equal(worker1[path], worker0[path], err_msg=path)


# The loss `fit` logs on a worker equals the single process's with Keras 3.15;
# with Keras 3.8 it differs (1.184 against 1.131 in the first epoch, as if
# averaged over the worker's own examples) while every variable still
# agrees. Versions in between were not tried.
LOGGED_LOSS_IS_GLOBAL = tuple(int(p) for p in keras.__version__.split(".")[:2]) >= (3, 15)


def test_workers_learn_the_masks_and_weights_of_one_process_on_the_same_global_batch(trained):
    states, _ = trained
    worker, single = states["worker0"], states["single"]
    assert sorted(worker) == sorted(single)
    for path in single:  # the variables, and the loss logged at every epoch
        if path == "replicas" or (path == "loss" and not LOGGED_LOSS_IS_GLOBAL):
            continue
        np.testing.assert_allclose(worker[path], single[path], rtol=1e-5, atol=1e-6, err_msg=path)
    masks = [path for path in single if path.endswith("_mask")]
    for path in masks:
        np.testing.assert_array_equal(worker[path] > 0, single[path] > 0, err_msg=path)
    pruned = sum((single[path] <= 0).sum() for path in masks) / sum(single[path].size for path in masks)
    assert pruned >= TARGET_SPARSITY  # the budget was met
    assert all((single[path] > 0).any() for path in masks)  # ... and no layer was cut off


def test_chief_saves_a_model_that_loads_and_strips(trained):
    states, outdir = trained
    loaded = keras.saving.load_model(outdir / "model.keras")
    trained_paths = [path for path in states["worker0"] if path not in ("loss", "replicas")]
    assert len(loaded.weights) == len(trained_paths)
    for v in loaded.weights:
        # Paths inside a loaded model lack the outer model's name.
        (path,) = [path for path in trained_paths if path == v.path or path.endswith("/" + v.path)]
        np.testing.assert_array_equal(v.numpy(), states["worker0"][path], err_msg=path)
    stripped = keras_scl.strip_scl(loaded)
    assert not any(isinstance(layer, keras_scl.SCLWrapper) for layer in stripped.layers)
    x = np.random.default_rng(1).standard_normal((32, 12)).astype("float32")
    np.testing.assert_allclose(stripped.predict(x, verbose=0), loaded.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
