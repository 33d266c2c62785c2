"""Writing a stripped or shrunk model as a LiteRT (TFLite) file (`export_tflite`)."""

import os
import tempfile
import warnings

import keras
import numpy as np
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
            the file gets smaller; float32 sparse weights are expanded back
            to dense by a `DENSIFY` op when the interpreter is prepared.
            LiteRT computes some sparse-encoded weights wrongly (seen with
            fully connected layers whose input width is not a multiple of
            4, which shrinking produces), so the sparse file is checked
            against a dense-encoded conversion on random inputs, and a
            `RuntimeError` is raised, with no file written, if they differ.
            With `quantize="dynamic_int8"`, the default XNNPACK delegate
            refuses the sparse int8 kernels: run the file with
            `experimental_op_resolver_type=
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
        flatbuffer = _convert(saved_model, optimizations)
        if sparse:
            _check_same_outputs(flatbuffer, _convert(saved_model, optimizations[:-1]))
    with open(filepath, "wb") as f:
        f.write(flatbuffer)
    return os.path.getsize(filepath)


def _convert(saved_model, optimizations):
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.optimizations = optimizations
    converter.target_spec.supported_ops = {tf.lite.OpsSet.TFLITE_BUILTINS}
    return converter.convert()


def _run(flatbuffer, seed=0, batch=8):
    """Outputs of a converted model on seeded random inputs, without delegates."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_litert.interpreter import OpResolverType
    except ImportError:  # TensorFlow's own interpreter runs the same kernels
        Interpreter, OpResolverType = tf.lite.Interpreter, tf.lite.experimental.OpResolverType
    interpreter = Interpreter(
        model_content=flatbuffer, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    for spec in interpreter.get_input_details():
        interpreter.resize_tensor_input(spec["index"], [batch if d < 0 else d for d in spec["shape_signature"]])
    interpreter.allocate_tensors()
    rng = np.random.default_rng(seed)
    for spec in interpreter.get_input_details():
        if np.issubdtype(spec["dtype"], np.floating):
            value = rng.standard_normal(spec["shape"]).astype(spec["dtype"])
        else:
            value = np.zeros(spec["shape"], spec["dtype"])
        interpreter.set_tensor(spec["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(spec["index"]) for spec in interpreter.get_output_details()]


def _check_same_outputs(sparse_flatbuffer, dense_flatbuffer):
    for sparse_out, dense_out in zip(_run(sparse_flatbuffer), _run(dense_flatbuffer)):
        scale = max(1.0, float(np.abs(dense_out).max()))
        difference = float(np.abs(sparse_out.astype(np.float64) - dense_out).max())
        if difference > 1e-4 * scale:
            raise RuntimeError(
                "export_tflite: LiteRT computes the sparse-encoded model differently from the "
                f"dense-encoded one (largest output difference {difference:.3g}, outputs up to "
                f"{scale:.3g}), a fault of LiteRT's sparse weights. Export it with sparse=False."
            )
