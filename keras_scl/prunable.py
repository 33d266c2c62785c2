"""Which weights of a layer are prunable, and which of their axes index features.

A *feature* is one output unit of a layer: a column of a Dense kernel, an
output filter of a convolution, one output channel of a depthwise
convolution. The optimizer normalises mask gradients per feature, so each
prunable weight is described by its attribute name and its feature axes.

The registry maps a layer class to a function returning the layer's
`PrunableWeight`s. Subclasses of a registered class are supported through it.
"""

import collections

import keras

PrunableWeight = collections.namedtuple("PrunableWeight", ["attribute", "feature_axes"])

_REGISTRY = {}


def _einsum_kernel_feature_axes(layer):
    # "abc,cde->abde": kernel axes whose letter appears in the output are the
    # output features; the others are summed over.
    inputs, output = layer.equation.split("->")
    kernel_spec = inputs.split(",")[1]
    return tuple(i for i, letter in enumerate(kernel_spec) if letter in output)


def _fixed(*weights):
    return lambda layer: [PrunableWeight(name, axes) for name, axes in weights]


_REGISTRY.update(
    {
        keras.layers.Dense: _fixed(("kernel", (-1,))),
        keras.layers.EinsumDense: lambda layer: [
            PrunableWeight("kernel", _einsum_kernel_feature_axes(layer))
        ],
        keras.layers.Embedding: _fixed(("embeddings", (-1,))),
        keras.layers.Conv1D: _fixed(("kernel", (-1,))),
        keras.layers.Conv2D: _fixed(("kernel", (-1,))),
        keras.layers.Conv3D: _fixed(("kernel", (-1,))),
        # Transposed kernels are (*spatial, filters, in_channels).
        keras.layers.Conv1DTranspose: _fixed(("kernel", (-2,))),
        keras.layers.Conv2DTranspose: _fixed(("kernel", (-2,))),
        keras.layers.Conv3DTranspose: _fixed(("kernel", (-2,))),
        # Depthwise kernels are (*spatial, in_channels, multiplier): every
        # (channel, multiplier) pair is one output channel.
        keras.layers.DepthwiseConv1D: _fixed(("kernel", (-2, -1))),
        keras.layers.DepthwiseConv2D: _fixed(("kernel", (-2, -1))),
        keras.layers.SeparableConv1D: _fixed(
            ("depthwise_kernel", (-2, -1)), ("pointwise_kernel", (-1,))
        ),
        keras.layers.SeparableConv2D: _fixed(
            ("depthwise_kernel", (-2, -1)), ("pointwise_kernel", (-1,))
        ),
    }
)


def supported_layer_names():
    return sorted(cls.__name__ for cls in _REGISTRY)


def _lookup(layer):
    for cls in type(layer).__mro__:
        if cls in _REGISTRY:
            return _REGISTRY[cls]
    return None


def is_prunable(layer):
    """Whether `layer` has weights keras_scl knows how to prune."""
    return _lookup(layer) is not None


def prunable_weights(layer):
    """Returns the `PrunableWeight`s of `layer`.

    Raises:
        ValueError: if the layer type is not supported.
    """
    spec = _lookup(layer)
    if spec is None:
        raise ValueError(
            f"Expected a layer of a supported type: {', '.join(supported_layer_names())}. "
            f"Received: layer={layer.name!r} of type {type(layer).__name__}"
        )
    return spec(layer)
