"""Which weights of a layer are prunable, and which of their axes index features.

A *feature* is one output unit of a layer: a column of a Dense kernel, an
output filter of a convolution, one output channel of a depthwise
convolution, one gate unit of a recurrent kernel. The optimizer normalises
mask gradients per feature, so each prunable weight comes with its feature
axes.

Two ways in, looked up in this order:
1. The protocol: a layer with a `get_prunable_weights()` method returning
   its prunable variables, each either a variable (features on the last
   axis) or a `(variable, feature_axes)` pair.
2. The registry: `register_prunable_layer(cls, fn)` with `fn(layer)`
   returning `(variable, feature_axes)` pairs for a built layer. Subclasses
   of a registered class are supported through it. All supported Keras
   layers are registered below.
"""

import collections

import keras

PrunableWeight = collections.namedtuple("PrunableWeight", ["variable", "feature_axes"])

_REGISTRY = {}


def register_prunable_layer(cls, weights_fn):
    """Makes layers of type `cls` (and its subclasses) prunable.

    Args:
        cls: A `keras.layers.Layer` subclass.
        weights_fn: Callable `layer -> [(variable, feature_axes), ...]` for a
            built layer.
    """
    if not (isinstance(cls, type) and issubclass(cls, keras.layers.Layer)):
        raise TypeError(f"Expected a keras.layers.Layer subclass. Received: cls={cls!r}")
    if not callable(weights_fn):
        raise TypeError(f"Expected `weights_fn` to be callable. Received: weights_fn={weights_fn!r}")
    _REGISTRY[cls] = weights_fn


def _einsum_kernel_feature_axes(layer):
    # "abc,cde->abde": kernel axes whose letter appears in the output are the
    # output features; the others are summed over.
    inputs, output = layer.equation.split("->")
    kernel_spec = inputs.split(",")[1]
    return tuple(i for i, letter in enumerate(kernel_spec) if letter in output)


def _attributes(*pairs):
    return lambda layer: [(getattr(layer, name), axes) for name, axes in pairs]


def _nested(*sublayer_attributes):
    return lambda layer: [
        pair for name in sublayer_attributes for pair in prunable_weights(getattr(layer, name))
    ]


_DENSE = _attributes(("kernel", (-1,)))
# Transposed kernels are (*spatial, filters, in_channels).
_TRANSPOSED = _attributes(("kernel", (-2,)))
# Depthwise kernels are (*spatial, in_channels, multiplier): every
# (channel, multiplier) pair is one output channel.
_DEPTHWISE = _attributes(("kernel", (-2, -1)))
_SEPARABLE = _attributes(("depthwise_kernel", (-2, -1)), ("pointwise_kernel", (-1,)))
# Recurrent kernels are (inputs or units, gates * units): columns are features.
_RECURRENT = lambda layer: [(layer.cell.kernel, (-1,)), (layer.cell.recurrent_kernel, (-1,))]  # noqa: E731

for _cls, _fn in {
    keras.layers.Dense: _DENSE,
    keras.layers.EinsumDense: lambda layer: [(layer.kernel, _einsum_kernel_feature_axes(layer))],
    keras.layers.Embedding: _attributes(("embeddings", (-1,))),
    keras.layers.Conv1D: _DENSE,
    keras.layers.Conv2D: _DENSE,
    keras.layers.Conv3D: _DENSE,
    keras.layers.Conv1DTranspose: _TRANSPOSED,
    keras.layers.Conv2DTranspose: _TRANSPOSED,
    keras.layers.Conv3DTranspose: _TRANSPOSED,
    keras.layers.DepthwiseConv1D: _DEPTHWISE,
    keras.layers.DepthwiseConv2D: _DEPTHWISE,
    keras.layers.SeparableConv1D: _SEPARABLE,
    keras.layers.SeparableConv2D: _SEPARABLE,
    keras.layers.SimpleRNN: _RECURRENT,
    keras.layers.LSTM: _RECURRENT,
    keras.layers.GRU: _RECURRENT,
    keras.layers.MultiHeadAttention: _nested("_query_dense", "_key_dense", "_value_dense", "_output_dense"),
    keras.layers.Bidirectional: _nested("forward_layer", "backward_layer"),
    keras.layers.TimeDistributed: _nested("layer"),
}.items():
    register_prunable_layer(_cls, _fn)


def supported_layer_names():
    return sorted(cls.__name__ for cls in _REGISTRY)


def _lookup(layer):
    if callable(getattr(layer, "get_prunable_weights", None)):
        return _from_protocol
    for cls in type(layer).__mro__:
        if cls in _REGISTRY:
            return _REGISTRY[cls]
    return None


def _from_protocol(layer):
    return [item if isinstance(item, tuple) else (item, (-1,)) for item in layer.get_prunable_weights()]


def is_prunable(layer):
    """Whether keras_scl knows how to prune `layer` (before or after it is built)."""
    spec = _lookup(layer)
    if spec is None:
        return False
    if isinstance(layer, (keras.layers.Bidirectional, keras.layers.TimeDistributed)):
        inner = getattr(layer, "forward_layer", None) or getattr(layer, "layer", None)
        return is_prunable(inner)
    return True


def prunable_weights(layer):
    """Returns the `PrunableWeight(variable, feature_axes)`s of a built `layer`.

    Raises:
        ValueError: if the layer type is not supported, or a weight is not a
            plain variable (LoRA or quantization enabled).
    """
    spec = _lookup(layer)
    if spec is None:
        raise ValueError(
            f"Expected a layer of a supported type ({', '.join(supported_layer_names())}) or "
            "one with a `get_prunable_weights()` method. "
            f"Received: layer={layer.name!r} of type {type(layer).__name__}"
        )
    weights = []
    for variable, axes in spec(layer):
        if not isinstance(variable, keras.Variable):
            raise ValueError(
                f"Expected the prunable weights of layer {layer.name!r} to be variables. "
                f"Received: {type(variable).__name__} (is LoRA or quantization enabled on it?)"
            )
        ndim = len(variable.shape)
        axes = tuple(sorted(a % ndim for a in axes))
        weights.append(PrunableWeight(variable, axes))
    return weights
