"""Writing a stripped or shrunk model as a LiteRT (TFLite) file (`export_tflite`)."""

import os
import tempfile
import warnings

import keras
import tensorflow as tf

from keras_scl.wrapper import find_wrappers

_QUANTIZE = (None, "dynamic_int8")


def export_tflite(model, filepath, quantize=None, sparse=False):
    """Writes a plain model as a `.tflite` file that LiteRT runs as it is.

    The model is exported as a SavedModel (`model.export`) and converted
    with `tf.lite.TFLiteConverter.from_saved_model`, restricted to LiteRT's
    builtin operations, so the file needs no TensorFlow (Flex) kernels at
    run time. The batch dimension stays dynamic: resize the interpreter's
    input to the batch you run.

    Args:
        model: A built Keras model without `SCLWrapper` layers, such as the
            output of `keras_scl.strip_scl` or `keras_scl.shrink`.
        filepath: str or path ending in `.tflite`.
        quantize: `None` (float32 weights) or `"dynamic_int8"` (weights
            stored as int8 with per-channel scales, activations computed in
            float: dynamic-range quantization, `tf.lite.Optimize.DEFAULT`).
            Defaults to `None`.
        sparse: bool. Let the converter store weights that are mostly zeros
            in its sparse encoding (`tf.lite.Optimize.EXPERIMENTAL_SPARSITY`):
            the file gets smaller; float32 sparse weights are densified when
            the interpreter is prepared. With `quantize="dynamic_int8"`, the
            default XNNPACK delegate refuses the sparse int8 kernels: run
            the file with `experimental_op_resolver_type=
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES` (a warning
            says so). Defaults to `False`.

    Returns:
        The size of the file in bytes.

    Example:

    >>> keras_scl.export_tflite(keras_scl.shrink(stripped), "model.tflite", quantize="dynamic_int8")
    >>> from ai_edge_litert.interpreter import Interpreter
    >>> interpreter = Interpreter(model_path="model.tflite")
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"Expected a keras.Model to export. Received: model={model!r} of type {type(model).__name__}")
    if find_wrappers(model):
        raise ValueError(
            "Expected a plain model to export: call keras_scl.strip_scl(model) first. "
            f"Received: model {model.name!r}, which contains SCLWrapper layers"
        )
    if quantize not in _QUANTIZE:
        raise ValueError(f"Expected `quantize` to be one of {_QUANTIZE}. Received: quantize={quantize!r}")
    if not isinstance(sparse, bool):
        raise TypeError(f"Expected `sparse` to be a bool. Received: sparse={sparse!r}")
    filepath = str(filepath)
    if not filepath.endswith(".tflite"):
        raise ValueError(f"Expected a filepath ending in '.tflite'. Received: filepath={filepath!r}")
    optimizations = []
    if quantize == "dynamic_int8":
        optimizations.append(tf.lite.Optimize.DEFAULT)
    if sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    if sparse and quantize:
        warnings.warn(
            "export_tflite: LiteRT's default XNNPACK delegate does not run sparse int8 weights "
            "('failed to delegate'); create the interpreter with experimental_op_resolver_type="
            "OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES",
            stacklevel=2,
        )
    with tempfile.TemporaryDirectory() as saved_model:
        model.export(saved_model, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        converter.optimizations = optimizations
        converter.target_spec.supported_ops = {tf.lite.OpsSet.TFLITE_BUILTINS}
        flatbuffer = converter.convert()
    with open(filepath, "wb") as f:
        f.write(flatbuffer)
    return os.path.getsize(filepath)
