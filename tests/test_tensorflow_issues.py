"""TensorFlow bugs met while testing keras_scl, each pinned by its smallest
reproduction in plain TensorFlow (no keras_scl, no Keras).

A reproduction runs in a fresh Python process: the bug can crash the
process, and whether it shows depends on more than the TensorFlow release:
on the machine (with TensorFlow 2.18.1 the reproduction below dies of
SIGILL on one x86 machine with AVX-512 and runs on another) and on what ran
before in a process.
So the test of a bug passes where the reproduction runs, and where it fails
the test checks that it fails the known way and marks itself `xfail`; any
other failure fails the test. The workarounds are tested to work everywhere.
"""

import os
import subprocess
import sys

import pytest

# A separable convolution whose pointwise part reads one channel, then a bias.
SEPARABLE_CONV_ONE_CHANNEL = """
import sys
import tensorflow as tf
if sys.argv[1] == "remapping_off":
    tf.config.optimizer.set_experimental_options({"remapping": False})

@tf.function
def separable_conv_plus_bias(x, depthwise, pointwise, bias):
    return tf.nn.separable_conv2d(x, depthwise, pointwise, [1, 1, 1, 1], "VALID") + bias

one = tf.ones((1, 1, 1, 1))
print(separable_conv_plus_bias(tf.ones((1, 2, 2, 1)), one, one, tf.ones((1,))).numpy().ravel().tolist())
"""


def _run(script, mode="default", **env):
    done = subprocess.run(
        [sys.executable, "-c", script, mode],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout.strip().splitlines()[-1:] or [""], done.stderr


def _onednn_enabled():
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        return False
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # pragma: no cover - layout of a future TensorFlow
        return True
    return bool(_pywrap_util_port.IsMklEnabled())


ONEDNN_FUSED_CONV_FAULT = (
    "TensorFlow with oneDNN (the default on x86 CPUs): Grappler's remapper fuses a "
    "separable convolution whose pointwise part reads one channel with the following "
    "bias add, and the fused oneDNN kernel fails on this machine. Plain Keras "
    "SeparableConv2D layers with one input channel and a bias hit it in fit, predict "
    "and a reloaded SavedModel's `serve` (docs/known-issues.md)."
)


def _is_onednn_fused_conv_fault(code, stderr):
    """How the fused kernel fails: SIGILL (TensorFlow 2.18.1) or an
    AbortedError naming the reorder primitive (2.21.0)."""
    if code == -4:  # SIGILL
        return True
    return "could not create a primitive descriptor for the reorder primitive" in stderr


def test_onednn_fused_separable_conv_with_one_channel_runs():
    code, last_line, stderr = _run(SEPARABLE_CONV_ONE_CHANNEL)
    if code != 0:
        assert _onednn_enabled(), "failed with oneDNN off:\n" + stderr[-2000:]
        assert _is_onednn_fused_conv_fault(code, stderr), (
            f"expected the known oneDNN fault (SIGILL or the reorder primitive error), "
            f"received exit code {code}:\n{stderr[-2000:]}"
        )
        pytest.xfail(ONEDNN_FUSED_CONV_FAULT)
    assert last_line == ["[2.0, 2.0, 2.0, 2.0]"]


@pytest.mark.parametrize(
    "mode, env",
    [("default", {"TF_ENABLE_ONEDNN_OPTS": "0"}), ("remapping_off", {})],
    ids=["onednn_off", "grappler_remapping_off"],
)
def test_workarounds_for_the_fused_separable_conv_bug(mode, env):
    code, last_line, stderr = _run(SEPARABLE_CONV_ONE_CHANNEL, mode, **env)
    assert code == 0, stderr[-2000:]
    assert last_line == ["[2.0, 2.0, 2.0, 2.0]"]
