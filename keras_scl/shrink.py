"""Removing dead units, filters and channels from a stripped model (`shrink`).

A stripped model keeps every unit at full width with exact zeros where
connections were pruned. `shrink` rebuilds it narrower: per tensor it
decides which channels (the last axis: Dense units, convolution filters,
input features) must stay, slices the neighbouring kernels to match and
folds the constant channels it drops into the next layer's bias.

How a channel is judged, on the exact zeros of the kernels:
1. Forward: a channel is *constant* when nothing input-dependent reaches
   it: a unit whose live inputs are all constant (none at all, typically)
   outputs `activation(bias + constant inputs @ kernel)`. Channelwise
   layers (pooling, normalisation, dropout, activations) map a constant
   channel to a constant channel.
2. Backward, to a fixpoint: a channel is *kept* when a kept unit of a
   consumer reads it through a live weight and cannot fold it (a
   convolution folds a constant input only where no padding zeros are
   mixed into its windows), when an unsupported layer reads it, or when it
   is a model output. Layers that tie channels together (depthwise
   convolutions, `Flatten`, `Add`, `Concatenate`, channelwise layers) keep
   them together.
3. Rebuild: every layer with a kept output is rebuilt with its kept
   channels; a consumer folds each dropped constant input into its bias.
   Layers whose outputs nobody needs disappear. Unread input features are
   dropped by a gather (`keras.ops.take`) right after the input, so the input
   signature does not change and the model stays plain Keras.
"""

import collections
import dataclasses
import math
import warnings

import keras
import numpy as np

from keras_scl.wrapper import find_wrappers

LayerWidth = collections.namedtuple("LayerWidth", ["layer", "kind", "before", "after"])


@dataclasses.dataclass(frozen=True)
class ShrinkReport:
    """What `shrink` removed and what it left alone.

    Attributes:
        widths: list of `LayerWidth(layer, kind, before, after)`: the
            number of output channels (units, filters, features) of every
            model input and every layer of the shrunk model, before and
            after.
        removed_layers: list of str. Layers of the original model that were
            left out because nothing reads their output.
        full_width: dict `{layer name: reason}` of the layers `shrink`
            could not narrow.
    """

    widths: list
    removed_layers: list
    full_width: dict

    @property
    def removed_anything(self):
        return bool(self.removed_layers) or any(w.after < w.before for w in self.widths)

    def __str__(self):
        lines = [f"{'layer':<28}{'kind':<22}{'before':>8}{'after':>8}"]
        for w in self.widths:
            lines.append(f"{w.layer:<28}{w.kind:<22}{w.before:>8}{w.after:>8}")
        for name in self.removed_layers:
            lines.append(f"{name:<28}removed: nothing reads its output")
        for name, reason in self.full_width.items():
            lines.append(f"{name:<28}left at full width: {reason}")
        if not self.removed_anything:
            lines.append("nothing to remove: the shrunk model computes the same function at the same width")
        return "\n".join(lines)


def shrink(model, verbose=True, return_report=False):
    """Removes the units, filters and channels no live path goes through.

    Works on a plain model, the output of `keras_scl.strip_scl`: a wrapped
    model is refused, since its masks are still training. A unit with no
    live outgoing connection is removed; a unit with no live incoming
    connection outputs the constant `activation(bias)`, which is folded into
    the next layer's bias before the unit is removed; input features no
    live connection reads are dropped inside the model. The predictions of
    the result equal those of `model` up to float rounding.

    Supported (exact types, channels-last): `Dense`, `Conv1D/2D/3D`,
    `DepthwiseConv1D/2D`, `SeparableConv1D/2D` with elementwise activations,
    `BatchNormalization` (sliced), `Flatten`, pooling and global pooling,
    dropout and noise layers, elementwise activation layers, padding,
    cropping and up-sampling, `Add`/`Subtract`/`Multiply`/`Average`/
    `Maximum`/`Minimum` (a channel stays if any branch keeps it) and
    `Concatenate` on the last axis. Any other layer, a layer called more
    than once, or a layer called with extra arguments is copied at full
    width, and so are the channels it reads; the report says which and
    why. A convolution with `padding="same"` folds a constant input only
    when its padding is zero for the input size; otherwise the constant
    channel is kept.

    Args:
        model: A built Sequential or Functional model without
            `SCLWrapper` layers.
        verbose: bool. Print the report (per-layer widths, layers left at
            full width and why). Defaults to `True`.
        return_report: bool. Also return the `ShrinkReport`. Defaults to
            `False`.

    Returns:
        A new, uncompiled Functional model with the same inputs and outputs
        (a Sequential model comes back Functional, since a dropped input
        feature is a graph node before the first layer), or
        `(model, report)` with `return_report=True`. `model` is not
        modified. Loading a saved result does not need keras_scl.

    Example:

    >>> stripped = keras_scl.strip_scl(pruned)
    >>> small, report = keras_scl.shrink(stripped, return_report=True)
    >>> small.export("saved_model")
    """
    _check_model(model)
    graph = _Graph(model)
    graph.analyse()
    shrunk = graph.rebuild()
    report = graph.report()
    if verbose:
        print(report)
    if not report.removed_anything:
        warnings.warn(
            f"shrink: nothing to remove in model {model.name!r}; the result computes the same "
            "function at the same width",
            stacklevel=2,
        )
    return (shrunk, report) if return_report else shrunk


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise TypeError(f"Expected a keras.Model to shrink. Received: model={model!r} of type {type(model).__name__}")
    if not isinstance(model, (keras.Sequential, keras.src.models.Functional)):
        raise ValueError(
            "Expected a Sequential or Functional model to shrink. "
            f"Received: a subclassed model {model.name!r} of type {type(model).__name__}"
        )
    if find_wrappers(model):
        raise ValueError(
            "Expected a plain model to shrink: call keras_scl.strip_scl(model) first. "
            f"Received: model {model.name!r}, which contains SCLWrapper layers"
        )
    if not model.built or (isinstance(model, keras.Sequential) and getattr(model, "_functional", None) is None):
        raise ValueError(
            "Expected a built model with a known input shape to shrink. "
            f"Received: model {model.name!r}; build it with keras.Input or model.build(input_shape)"
        )


# ---------------------------------------------------------------- channels


class _Channels:
    """What is known about the last axis of one tensor of the graph.

    `const[c]`: the channel does not depend on the inputs; `value[c]` is
    then its value at every position. `kept[c]`: the shrunk model computes
    the channel. A tensor whose last axis is unknown (or a scalar per
    example) has `size = None` and is always kept whole.
    """

    def __init__(self, tensor):
        shape = tensor.shape
        self.shape = shape
        self.size = shape[-1] if len(shape) >= 2 else None
        n = self.size or 0
        self.const = np.zeros(n, bool)
        self.value = np.zeros(n)
        self.kept = np.zeros(n, bool)

    def keep(self, mask):
        """Marks `mask` kept; says whether anything changed."""
        if self.size is None:
            return False
        new = self.kept | mask
        changed = bool((new != self.kept).any())
        self.kept = new
        return changed

    def keep_all(self):
        return self.keep(np.ones(self.size or 0, bool))


_ELEMENTWISE_ACTIVATIONS = {
    getattr(keras.activations, name)
    for name in (
        "linear", "relu", "relu6", "sigmoid", "tanh", "elu", "selu", "gelu", "silu", "swish",
        "softplus", "softsign", "exponential", "hard_sigmoid", "hard_silu", "hard_swish",
        "leaky_relu", "mish", "log_sigmoid", "celu", "hard_shrink", "hard_tanh", "soft_shrink",
        "sparse_plus", "sparse_sigmoid", "squareplus", "tanh_shrink", "threshold",
    )
    if hasattr(keras.activations, name)  # older Keras has fewer
}  # fmt: skip


def _activation_name(fn):
    return getattr(fn, "__name__", repr(fn))


def _apply_activation(fn, z):
    return keras.ops.convert_to_numpy(fn(keras.ops.convert_to_tensor(z.astype("float32")))).astype(np.float64)


def _padding_free(layer, input_shape):
    """Whether no window of the convolution reaches into padding zeros."""
    if layer.padding == "valid":
        return True
    extents = [(k - 1) * d + 1 for k, d in zip(layer.kernel_size, layer.dilation_rate)]
    if all(e == 1 for e in extents):
        return True
    if layer.padding == "causal":
        return False
    for n, e, s in zip(input_shape[1:-1], extents, layer.strides):
        if n is None or (math.ceil(n / s) - 1) * s + e - n > 0:
            return False
    return True


def _channels_last(layer):
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def _copy(layer, **config_changes):
    config = layer.get_config()
    config.update(config_changes)
    return layer.__class__.from_config(config)


def _weights(variable):
    return None if variable is None else keras.ops.convert_to_numpy(variable).astype(np.float64)


def _assign(variable, value):
    variable.assign(value.astype(variable.dtype))


def _over_window(kernel):
    """A kernel `(*window, in, out)` seen from a constant input: for each
    `(in, out)` pair, whether any window position holds a live weight, and
    the weights summed over the window (what a constant input is multiplied by)."""
    flat = kernel.reshape(-1, *kernel.shape[-2:])
    return (flat != 0).any(axis=0), flat.sum(axis=0)


def _bias(layer, size):
    """The layer's bias as float64, zeros when it has none."""
    return _weights(layer.bias) if layer.use_bias else np.zeros(size)


def _check_nothing_lost(lost, layer):
    # Guaranteed by the keep rules; a failure here is a bug in shrink.
    if np.any(lost):
        raise RuntimeError(f"shrink dropped a live, non-constant input of layer {layer.name!r}")


# ------------------------------------------------------------------- rules
# One rule per layer family: `forward` marks constant outputs, `backward`
# marks kept channels (returns whether anything changed), `build` makes the
# narrowed layer and calls it on the narrowed inputs.


class _Opaque:
    """A layer shrink cannot narrow: everything it reads and writes is kept."""

    def __init__(self, node, reason):
        self.node, self.reason = node, reason

    def forward(self, ins, outs):
        pass

    def backward(self, ins, outs):
        changed = False
        for c in ins + outs:
            changed |= c.keep_all()
        return changed

    def build(self, new_inputs, ins, outs, copies):
        operation = self.node.operation
        if isinstance(operation, keras.layers.Layer):
            if id(operation) not in copies:
                copies[id(operation)] = _copy_built(operation)
            operation = copies[id(operation)]
        args, kwargs = self.node.arguments.fill_in(new_inputs)
        return operation(*args, **kwargs)


def _copy_built(layer):
    if isinstance(layer, keras.Model):
        clone = keras.models.clone_model(layer)
    else:
        clone = layer.__class__.from_config(layer.get_config())
        if layer.built and layer.get_build_config():
            clone.build_from_config(layer.get_build_config())
    clone.set_weights(layer.get_weights())
    return clone


class _Dense:
    """`Dense` (kernel `(in, out)`) and the convolutions (`(*window, in, out)`)."""

    def __init__(self, node, foldable=True):
        self.node = node
        self.layer = node.operation
        self.kernel = _weights(self.layer.kernel)
        self.live, self.summed = _over_window(self.kernel)
        self.bias = _bias(self.layer, self.kernel.shape[-1])
        self.foldable = foldable
        self.elementwise = self.layer.activation in _ELEMENTWISE_ACTIVATIONS

    def forward(self, ins, outs):
        (x,), (y,) = ins, outs
        if not self.elementwise:
            return
        reads_variable = (self.live & ~x.const[:, None]).any(axis=0)
        reads_any = self.live.any(axis=0)
        y.const = ~reads_variable & (self.foldable | ~reads_any)
        y.value = _apply_activation(self.layer.activation, self.bias + (x.value * x.const) @ self.summed)

    def backward(self, ins, outs):
        (x,), (y,) = ins, outs
        changed = False if self.elementwise else y.keep_all()
        foldable = x.const & self.foldable
        needed = self.live[:, y.kept].any(axis=1) & ~foldable
        return x.keep(needed) | changed

    def build(self, new_inputs, ins, outs, copies):
        (x,), (y,) = ins, outs
        dropped_const = ~x.kept & x.const
        _check_nothing_lost((~x.kept & ~x.const)[:, None] & self.live[:, y.kept], self.layer)
        bias = self.bias[y.kept] + (x.value * dropped_const) @ self.summed[:, y.kept]
        use_bias = self.layer.use_bias or bool(np.any(bias != 0))
        width = "units" if isinstance(self.layer, keras.layers.Dense) else "filters"
        layer = _copy(self.layer, **{width: int(y.kept.sum()), "use_bias": use_bias})
        out = layer(new_inputs[id(self.node.input_tensors[0])])
        _assign(layer.kernel, self.kernel[..., x.kept, :][..., y.kept])
        if use_bias:
            _assign(layer.bias, bias)
        return out


class _Depthwise:
    """`DepthwiseConv1D/2D`: output channel `c * M + m` reads input channel `c` only."""

    def __init__(self, node, foldable):
        self.node = node
        self.layer = node.operation
        self.kernel = _weights(self.layer.kernel)  # (*window, C, M)
        self.live, self.summed = _over_window(self.kernel)  # (C, M)
        self.multiplier = self.kernel.shape[-1]
        self.bias = _bias(self.layer, self.live.size)
        self.foldable = foldable
        self.elementwise = self.layer.activation in _ELEMENTWISE_ACTIVATIONS

    def forward(self, ins, outs):
        (x,), (y,) = ins, outs
        if not self.elementwise:
            return
        const = ~self.live | (x.const[:, None] & self.foldable)
        y.const = const.reshape(-1)
        z = self.bias + ((x.value * x.const)[:, None] * self.summed).reshape(-1)
        y.value = _apply_activation(self.layer.activation, z)

    def backward(self, ins, outs):
        (x,), (y,) = ins, outs
        changed = False if self.elementwise else y.keep_all()
        changed |= x.keep(y.kept.reshape(-1, self.multiplier).any(axis=1))
        return y.keep(np.repeat(x.kept, self.multiplier)) | changed

    def build(self, new_inputs, ins, outs, copies):
        (x,), _ = ins, outs
        kept_out = np.repeat(x.kept, self.multiplier)
        layer = _copy(self.layer)
        out = layer(new_inputs[id(self.node.input_tensors[0])])
        _assign(layer.kernel, self.kernel[..., x.kept, :])
        if self.layer.use_bias:
            _assign(layer.bias, self.bias[kept_out])
        return out


class _Separable:
    """`SeparableConv1D/2D`: a depthwise kernel, then a 1x1 kernel over its `C * M` channels."""

    def __init__(self, node, foldable):
        self.node = node
        self.layer = node.operation
        self.depthwise = _weights(self.layer.depthwise_kernel)  # (*window, C, M)
        self.dw_live, self.dw_summed = _over_window(self.depthwise)
        self.multiplier = self.depthwise.shape[-1]
        self.pointwise = _weights(self.layer.pointwise_kernel)
        self.pw = self.pointwise.reshape(-1, self.pointwise.shape[-1])  # (C * M, F)
        self.bias = _bias(self.layer, self.pw.shape[1])
        self.foldable = foldable
        self.elementwise = self.layer.activation in _ELEMENTWISE_ACTIVATIONS

    def _middle(self, x):
        """Constant channels between the two kernels and their values."""
        const = ~self.dw_live | (x.const[:, None] & self.foldable)
        value = (x.value * x.const)[:, None] * self.dw_summed
        return const.reshape(-1), value.reshape(-1)

    def forward(self, ins, outs):
        (x,), (y,) = ins, outs
        if not self.elementwise:
            return
        const, value = self._middle(x)
        y.const = ~((self.pw != 0) & ~const[:, None]).any(axis=0)
        y.value = _apply_activation(self.layer.activation, self.bias + (value * const) @ self.pw)

    def backward(self, ins, outs):
        (x,), (y,) = ins, outs
        changed = False if self.elementwise else y.keep_all()
        const, _ = self._middle(x)
        needed = (self.pw[:, y.kept] != 0).any(axis=1) & ~const
        changed |= x.keep(needed.reshape(-1, self.multiplier).any(axis=1))
        if isinstance(self.layer, keras.layers.SeparableConv2D) and self.multiplier == 1 and x.kept.sum() == 1:
            # TensorFlow's oneDNN kernels fail on a SeparableConv2D reading a
            # single channel in a tf.function (docs/known-issues.md): keep two.
            changed |= x.keep(np.arange(x.size) == np.flatnonzero(~x.kept)[0]) if x.size > 1 else False
        return changed

    def build(self, new_inputs, ins, outs, copies):
        (x,), (y,) = ins, outs
        const, value = self._middle(x)
        middle_kept = np.repeat(x.kept, self.multiplier)
        _check_nothing_lost((~middle_kept & ~const)[:, None] & (self.pw[:, y.kept] != 0), self.layer)
        bias = self.bias[y.kept] + (value * const * ~middle_kept) @ self.pw[:, y.kept]
        use_bias = self.layer.use_bias or bool(np.any(bias != 0))
        layer = _copy(self.layer, filters=int(y.kept.sum()), use_bias=use_bias)
        out = layer(new_inputs[id(self.node.input_tensors[0])])
        _assign(layer.depthwise_kernel, self.depthwise[..., x.kept, :])
        _assign(layer.pointwise_kernel, self.pointwise[..., middle_kept, :][..., y.kept])
        if use_bias:
            _assign(layer.bias, bias)
        return out


def _probe(layer, ins, outs):
    """Runs a channelwise layer on inputs whose constant channels hold their
    value (others 0) and marks the output channels that come out uniform."""
    if not any(c.const.any() for c in ins):
        return
    probes = [
        np.broadcast_to((c.value * c.const).astype("float32"), (1, *[d or 8 for d in c.shape[1:]])) for c in ins
    ]
    result = layer(probes if len(probes) > 1 else probes[0], training=False)
    result = keras.ops.convert_to_numpy(result).astype(np.float64)
    (y,) = outs
    flat = result.reshape(-1, y.size)
    spread = flat.max(axis=0) - flat.min(axis=0)
    uniform = spread <= 1e-6 * np.maximum(1.0, np.abs(flat).max(axis=0))
    const_in = np.logical_and.reduce([c.const for c in ins])
    y.const = const_in & uniform
    y.value = flat.mean(axis=0)


class _Channelwise:
    """Output channel `c` is computed from input channel `c` of each input alone."""

    def __init__(self, node):
        self.node = node
        self.layer = node.operation

    def forward(self, ins, outs):
        _probe(self.layer, ins, outs)

    def backward(self, ins, outs):
        (y,) = outs
        changed = False
        for x in ins:
            changed |= x.keep(y.kept)
            changed |= y.keep(x.kept)
        return changed

    def build(self, new_inputs, ins, outs, copies):
        (y,) = outs
        layer = _copy(self.layer)
        args, kwargs = self.node.arguments.fill_in(new_inputs)
        out = layer(*args, **{key: value for key, value in kwargs.items() if value is not None})
        if isinstance(self.layer, keras.layers.BatchNormalization):
            for new, old in zip(layer.weights, self.layer.weights):
                _assign(new, _weights(old)[y.kept])
        return out


class _Flatten:
    """`Flatten` of `(*positions, C)`: feature `p * C + c` is channel `c` at position `p`."""

    def __init__(self, node):
        self.node = node
        self.layer = node.operation

    def forward(self, ins, outs):
        (x,), (y,) = ins, outs
        positions = y.size // x.size
        y.const, y.value = np.tile(x.const, positions), np.tile(x.value, positions)

    def backward(self, ins, outs):
        (x,), (y,) = ins, outs
        changed = x.keep(y.kept.reshape(-1, x.size).any(axis=0))
        return y.keep(np.tile(x.kept, y.size // x.size)) | changed

    def build(self, new_inputs, ins, outs, copies):
        return _copy(self.layer)(new_inputs[id(self.node.input_tensors[0])])


class _Concatenate:
    """`Concatenate` on the last axis: input `k` fills the output at its offset."""

    def __init__(self, node):
        self.node = node
        self.layer = node.operation

    def _parts(self, ins):
        offsets = np.cumsum([0] + [x.size for x in ins])
        return [slice(a, b) for a, b in zip(offsets[:-1], offsets[1:])]

    def forward(self, ins, outs):
        (y,) = outs
        y.const = np.concatenate([x.const for x in ins])
        y.value = np.concatenate([x.value for x in ins])

    def backward(self, ins, outs):
        (y,) = outs
        changed = False
        for x, part in zip(ins, self._parts(ins)):
            changed |= x.keep(y.kept[part])
            changed |= y.keep(np.pad(x.kept, (part.start, y.size - part.stop)))
        return changed

    def build(self, new_inputs, ins, outs, copies):
        tensors = [new_inputs[id(t)] for t, x in zip(self.node.input_tensors, ins) if x.kept.any()]
        if len(tensors) == 1:
            return tensors[0]
        return _copy(self.layer)(tensors)


_CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
_SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
_SPATIAL_CHANNELWISE = (
    keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D, keras.layers.AveragePooling2D, keras.layers.AveragePooling3D,
    keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D, keras.layers.GlobalMaxPooling3D,
    keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
    keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D,
    keras.layers.Cropping1D, keras.layers.Cropping2D, keras.layers.Cropping3D,
    keras.layers.UpSampling1D, keras.layers.UpSampling2D, keras.layers.UpSampling3D,
    keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D, keras.layers.SpatialDropout3D,
)  # fmt: skip
_CHANNELWISE = (
    keras.layers.Dropout, keras.layers.GaussianDropout, keras.layers.GaussianNoise,
    keras.layers.AlphaDropout, keras.layers.Identity, keras.layers.ReLU, keras.layers.LeakyReLU,
    keras.layers.ELU,
)  # fmt: skip
_MERGES = (
    keras.layers.Add, keras.layers.Subtract, keras.layers.Multiply, keras.layers.Average,
    keras.layers.Maximum, keras.layers.Minimum,
)  # fmt: skip


def _rule(node, calls):
    """The rule for one node of the graph, or `_Opaque` with the reason."""
    op = node.operation
    kind = type(op)
    ins = node.input_tensors
    shapes = [tuple(t.shape) for t in ins + node.outputs]
    if isinstance(op, keras.Model):
        return _Opaque(node, "a nested model: shrink it on its own")
    if not isinstance(op, keras.layers.Layer):
        return _Opaque(node, f"operation {kind.__name__} is not a layer kind shrink supports")
    supported = (keras.layers.Dense, keras.layers.BatchNormalization, keras.layers.Flatten,
                 keras.layers.Activation, keras.layers.Concatenate,
                 *_CONVOLUTIONS, *_DEPTHWISE, *_SEPARABLE, *_SPATIAL_CHANNELWISE, *_CHANNELWISE, *_MERGES)  # fmt: skip
    if kind not in supported:
        return _Opaque(node, f"{kind.__name__} is not a layer kind shrink supports")
    if calls[id(op)] > 1:
        return _Opaque(node, f"the layer is called {calls[id(op)]} times")
    if len(node.arguments.args) != 1 or any(
        not (key == "mask" and value is None or key == "training" and value in (None, False))
        for key, value in node.arguments.kwargs.items()
    ):
        return _Opaque(node, "the layer is called with arguments besides its input (or in training mode)")
    if len(node.outputs) != 1 or any(len(s) < 2 or s[-1] is None for s in shapes):
        return _Opaque(node, "its inputs or outputs have no known last axis")
    if not _channels_last(op):
        return _Opaque(node, f"data_format={op.data_format!r}")
    input_shape = shapes[0]
    if kind is keras.layers.Dense:
        if getattr(op, "quantization_mode", None) or getattr(op, "lora_enabled", False):
            return _Opaque(node, "a quantized or LoRA Dense layer")
        return _Dense(node)
    if kind in _CONVOLUTIONS:
        if op.groups != 1:
            return _Opaque(node, f"groups={op.groups}")
        return _Dense(node, foldable=_padding_free(op, input_shape))
    if kind in _DEPTHWISE:
        return _Depthwise(node, foldable=_padding_free(op, input_shape))
    if kind in _SEPARABLE:
        return _Separable(node, foldable=_padding_free(op, input_shape))
    if kind is keras.layers.Flatten:
        return _Flatten(node)
    if kind is keras.layers.Concatenate:
        if op.axis not in (-1, len(shapes[-1]) - 1):
            return _Opaque(node, f"Concatenate on axis {op.axis}, not the channel axis")
        return _Concatenate(node)
    if kind is keras.layers.BatchNormalization and op.axis not in (-1, len(input_shape) - 1):
        return _Opaque(node, f"BatchNormalization on axis {op.axis}, not the channel axis")
    if kind is keras.layers.Activation and op.activation not in _ELEMENTWISE_ACTIVATIONS:
        return _Opaque(node, f"activation {_activation_name(op.activation)!r} is not elementwise")
    if any(s[-1] != shapes[-1][-1] for s in shapes):
        return _Opaque(node, "its inputs and output differ in width")
    if kind in _MERGES and any(s != shapes[-1] for s in shapes):
        return _Opaque(node, "its inputs are broadcast")
    return _Channelwise(node)


def _take_features(x, indices):
    """The features of `x` at `indices` on its last axis.

    A batch of flat features is gathered as rows of its transpose: LiteRT's
    GATHER copies one element at a time on the last axis but whole rows on
    the first. For 392 of 784 features at batch 256 that is 0.29 ms with
    both transposes against 0.82 ms, where the rest of the shrunk
    LeNet-300-100 takes 0.22 ms (docs/deployment.md).
    """
    if len(x.shape) == 2:
        return keras.ops.transpose(keras.ops.take(keras.ops.transpose(x), indices, axis=0))
    return keras.ops.take(x, indices, axis=-1)


# ------------------------------------------------------------------- graph


class _Graph:
    def __init__(self, model):
        self.model = model
        function = model._functional if isinstance(model, keras.Sequential) else model
        self.function = function
        self.nodes = [
            node
            for depth in sorted(function._nodes_by_depth, reverse=True)
            for node in function._nodes_by_depth[depth]
            if not node.is_input
        ]
        calls = collections.Counter(id(node.operation) for node in self.nodes)
        self.rules = [_rule(node, calls) for node in self.nodes]
        self.channels = {}
        for tensor in function.inputs:
            self.channels[id(tensor)] = _Channels(tensor)
        for node in self.nodes:
            for tensor in node.input_tensors + node.outputs:
                if id(tensor) not in self.channels:
                    self.channels[id(tensor)] = _Channels(tensor)

    def _io(self, node):
        return [self.channels[id(t)] for t in node.input_tensors], [self.channels[id(t)] for t in node.outputs]

    def _live(self, node):
        return any(c.size is None or c.kept.any() for c in self._io(node)[1])

    def analyse(self):
        for node, rule in zip(self.nodes, self.rules):
            rule.forward(*self._io(node))
        for tensor in self.function.outputs:
            self.channels[id(tensor)].keep_all()
        changed = True
        while changed:
            changed = False
            for node, rule in zip(reversed(self.nodes), reversed(self.rules)):
                if not self._live(node):
                    continue
                changed |= rule.backward(*self._io(node))
                if not isinstance(rule, _Concatenate):
                    # A layer that is computed reads at least one channel of each input.
                    for x in self._io(node)[0]:
                        if x.size and not x.kept.any():
                            changed |= x.keep(np.arange(x.size) == 0)

    def rebuild(self):
        new = {}
        self.inputs = []
        for tensor in self.function.inputs:
            history = tensor._keras_history
            x = keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype, name=history.operation.name)
            self.inputs.append(x)
            channels = self.channels[id(tensor)]
            if channels.size and channels.kept.any() and not channels.kept.all():
                new[id(tensor)] = _take_features(x, np.flatnonzero(channels.kept))
            else:
                new[id(tensor)] = x
        copies = {}
        self.built = []
        for node, rule in zip(self.nodes, self.rules):
            if not self._live(node):
                continue
            outputs = rule.build(new, *self._io(node), copies)
            for tensor, value in zip(node.outputs, keras.tree.flatten(outputs)):
                new[id(tensor)] = value
            self.built.append(node)
        model = self.function
        inputs = keras.tree.pack_sequence_as(model._inputs_struct, self.inputs)
        outputs = keras.tree.pack_sequence_as(
            model._outputs_struct, [new[id(t)] for t in model.outputs]
        )
        return keras.Model(inputs, outputs, name=self.model.name)

    def report(self):
        widths = []
        for tensor in self.function.inputs:
            c = self.channels[id(tensor)]
            if c.size:
                widths.append(LayerWidth(tensor._keras_history.operation.name, "input", c.size, int(c.kept.sum())))
        for node in self.built:
            for tensor in node.outputs:
                c = self.channels[id(tensor)]
                if c.size:
                    widths.append(
                        LayerWidth(node.operation.name, type(node.operation).__name__, c.size, int(c.kept.sum()))
                    )
        built = {id(node) for node in self.built}
        removed = [node.operation.name for node in self.nodes if id(node) not in built]
        full_width = {
            node.operation.name: rule.reason
            for node, rule in zip(self.nodes, self.rules)
            if isinstance(rule, _Opaque) and id(node) in built
        }
        for node, rule in zip(self.nodes, self.rules):
            if getattr(rule, "elementwise", True) is False and id(node) in built:
                full_width[node.operation.name] = (
                    f"outputs kept: activation {_activation_name(node.operation.activation)!r} is not elementwise"
                )
        return ShrinkReport(widths=widths, removed_layers=removed, full_width=full_width)
