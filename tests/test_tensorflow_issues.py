"""TensorFlow bugs met while testing keras_scl, each pinned by its smallest
reproduction in plain TensorFlow (no keras_scl, no Keras).

Each test is a strict `xfail` where the bug applies: when a TensorFlow
release fixes it, the test passes, strict mode turns that into a failure,
and whoever sees it removes the workaround in the tests that cite it.
"""

import os

import pytest
import tensorflow as tf


def _onednn_enabled():
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # pragma: no cover - layout of a future TensorFlow
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0"
    return bool(_pywrap_util_port.IsMklEnabled())


@pytest.mark.xfail(
    condition=_onednn_enabled(),
    raises=tf.errors.AbortedError,
    strict=True,
    reason=(
        "TensorFlow with oneDNN (the default on x86 CPUs): Grappler's remapper fuses a "
        "separable convolution whose pointwise part reads one channel with the following "
        "bias add, and the fused oneDNN kernel fails with 'could not create a primitive "
        "descriptor for the reorder primitive' (mkl_conv_ops.cc). Plain Keras "
        "SeparableConv2D layers with one input channel and a bias hit it inside any "
        "tf.function, a reloaded SavedModel's `serve` included. TF_ENABLE_ONEDNN_OPTS=0 "
        "or Grappler's `remapping` option off avoids it."
    ),
)
def test_onednn_fused_separable_conv_with_one_channel_runs():
    @tf.function
    def separable_conv_plus_bias(x, depthwise, pointwise, bias):
        return tf.nn.separable_conv2d(x, depthwise, pointwise, [1, 1, 1, 1], "VALID") + bias

    one = tf.ones((1, 1, 1, 1))
    result = separable_conv_plus_bias(tf.ones((1, 2, 2, 1)), one, one, tf.ones((1,)))
    assert result.numpy().ravel().tolist() == [2.0, 2.0, 2.0, 2.0]
