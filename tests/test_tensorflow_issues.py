"""TensorFlow bugs met while testing keras_scl, each pinned by its smallest
reproduction in plain TensorFlow (no keras_scl, no Keras).

A reproduction runs in a fresh Python process: the bug can crash the
process, and whether it shows can depend on what ran before in a process
(with TensorFlow 2.18.1 the reproduction below dies of SIGILL in a fresh
process and passed inside a longer test run). The test of the bug itself is
a strict `xfail` where the bug applies: when a TensorFlow release fixes it,
the test passes, strict mode turns that into a failure, and whoever sees it
removes the workaround in the tests that cite it. The workarounds are tested
to work.
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


@pytest.mark.xfail(
    condition=_onednn_enabled(),
    strict=True,
    reason=(
        "TensorFlow with oneDNN (the default on x86 CPUs): Grappler's remapper fuses a "
        "separable convolution whose pointwise part reads one channel with the following "
        "bias add, and the fused oneDNN kernel fails: AbortedError 'could not create a "
        "primitive descriptor for the reorder primitive' (mkl_conv_ops.cc) with TensorFlow "
        "2.21.0, SIGILL with 2.18.1. Plain Keras SeparableConv2D layers with one input "
        "channel and a bias hit it in fit, predict and a reloaded SavedModel's `serve`."
    ),
)
def test_onednn_fused_separable_conv_with_one_channel_runs():
    code, last_line, stderr = _run(SEPARABLE_CONV_ONE_CHANNEL)
    assert code == 0, stderr[-2000:]
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
