"""How sparse a model is: per prunable weight, per layer, in total, and in FLOPs.

Works on wrapped models (live = mask entries > 0) and on plain models such as
the output of `strip_scl` (live = non-zero weight entries), so the same report
describes training and deployment.
"""

import collections
import math

import keras
import numpy as np

from keras_scl import prunable
from keras_scl.wrapper import SCLWrapper
from keras_scl.wrapper import find_wrappers

MaskStats = collections.namedtuple("MaskStats", ["layer", "weight", "total", "live"])

ReportRow = collections.namedtuple(
    "ReportRow", ["layer", "weight", "total", "live", "sparsity", "dense_flops", "sparse_flops"]
)


def mask_stats(model):
    """One `MaskStats(layer, weight, total, live)` per mask of a wrapped model."""
    rows = []
    for wrapper in find_wrappers(model):
        for weight, mask in wrapper.masked_weights:
            live = int(np.count_nonzero(mask.numpy() > 0))
            rows.append(MaskStats(wrapper.layer.name, weight.name, math.prod(mask.shape), live))
    return rows


def global_sparsity(rows):
    """Fraction of pruned connections over all rows of `mask_stats` or a report."""
    total = sum(r.total for r in rows)
    return 1.0 - sum(r.live for r in rows) / total if total else 0.0


def layer_sparsity(rows):
    """`{layer name: sparsity}` over all prunable weights of each layer."""
    per_layer = collections.defaultdict(lambda: [0, 0])
    for r in rows:
        per_layer[r.layer][0] += r.total
        per_layer[r.layer][1] += r.live
    return {name: 1.0 - live / total for name, (total, live) in per_layer.items()}


_FLOP_LAYERS = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
)
_TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)
_SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)


def _spatial(layer, shape):
    return shape[1:-1] if getattr(layer, "data_format", "channels_last") == "channels_last" else shape[2:]


def _uses_per_example(layer, spec):
    """How often each entry of a prunable weight is multiplied per example.

    A weight with F features computing an output of E elements is used
    E / F times (once per output position for a convolution, once for a
    Dense kernel); a transposed convolution uses its kernel once per input
    position. Counted for Dense, EinsumDense and convolution layers only
    (0 for others, e.g. embeddings, whose lookups multiply nothing).
    """
    if not isinstance(layer, _FLOP_LAYERS):
        return 0
    input_shape = (layer.get_build_config() or {}).get("input_shape")
    if input_shape is None:
        return 0
    if isinstance(layer, _TRANSPOSED):
        return math.prod(_spatial(layer, input_shape))
    output_shape = layer.compute_output_shape(input_shape)
    if isinstance(layer, _SEPARABLE):
        return math.prod(_spatial(layer, output_shape))
    features = math.prod(spec.variable.shape[a] for a in spec.feature_axes)
    return math.prod(d for d in output_shape[1:] if d is not None) // features


def _prunable_layers(model):
    """Wrappers and plain prunable layers, outermost first, none inside another."""
    if not isinstance(model, keras.Model):
        return [model]
    found, covered = [], set()
    for layer in model._flatten_layers(include_self=False):
        if id(layer) in covered:
            continue
        if isinstance(layer, SCLWrapper) or (prunable.is_prunable(layer) and layer.built):
            found.append(layer)
            covered.update(id(sub) for sub in layer._flatten_layers(include_self=True))
    return found


def sparsity_report(model):
    """Per prunable weight: total and live entries, sparsity and FLOPs.

    For an `SCLWrapper`, a connection is live when its mask is positive; for a
    plain supported layer (a stripped model), when the weight is non-zero.
    FLOPs count one multiply and one add per live connection use, per
    example, for Dense, EinsumDense and convolution layers.

    Args:
        model: A layer or model, wrapped or plain.

    Returns:
        A list of `ReportRow(layer, weight, total, live, sparsity,
        dense_flops, sparse_flops)`; use `format_report` to print it.
    """
    rows = []
    for layer in _prunable_layers(model):
        if isinstance(layer, SCLWrapper):
            inner = layer.layer
            live_of = {id(w): m.numpy() > 0 for w, m in layer.masked_weights}
        else:
            inner, live_of = layer, {}
        for spec in prunable.prunable_weights(inner):
            live_entries = live_of.get(id(spec.variable))
            if live_entries is None:
                live_entries = spec.variable.numpy() != 0
            total = live_entries.size
            live = int(np.count_nonzero(live_entries))
            uses = _uses_per_example(inner, spec)
            rows.append(
                ReportRow(
                    layer=inner.name,
                    weight=spec.variable.name,
                    total=total,
                    live=live,
                    sparsity=1.0 - live / total,
                    dense_flops=2 * total * uses,
                    sparse_flops=2 * live * uses,
                )
            )
    return rows


def format_report(rows):
    """The rows of `sparsity_report` as a text table with a total line."""
    header = f"{'layer':<24}{'weight':<20}{'weights':>10}{'live':>10}{'sparsity':>10}{'FLOPs dense':>14}{'FLOPs sparse':>14}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.layer:<24}{r.weight:<20}{r.total:>10}{r.live:>10}{r.sparsity:>10.2%}"
            f"{r.dense_flops:>14,}{r.sparse_flops:>14,}"
        )
    total = sum(r.total for r in rows)
    live = sum(r.live for r in rows)
    dense = sum(r.dense_flops for r in rows)
    sparse = sum(r.sparse_flops for r in rows)
    lines.append("-" * len(header))
    lines.append(
        f"{'total':<44}{total:>10}{live:>10}{global_sparsity(rows):>10.2%}{dense:>14,}{sparse:>14,}"
    )
    if live:
        lines.append(f"compression {total / live:.1f}x, FLOPs reduction {dense / max(sparse, 1):.1f}x")
    return "\n".join(lines)


def plot_sparsity(model_or_rows, path, title=None):
    """Writes a PNG bar chart of per-layer sparsity (needs matplotlib).

    Args:
        model_or_rows: A model, or rows of `sparsity_report`.
        path: Where to write the PNG.
        title: Optional figure title.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("plot_sparsity needs matplotlib: pip install matplotlib") from e
    rows = model_or_rows if isinstance(model_or_rows, list) else sparsity_report(model_or_rows)
    labels = [f"{r.layer}\n{r.weight}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(5.5, 1.4 * len(rows)), 3.8))
    bars = ax.bar(labels, [100 * r.sparsity for r in rows], color="tab:blue")
    for bar, r in zip(bars, rows):
        ax.annotate(
            f"{r.live}/{r.total}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_ylabel("sparsity (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title or f"global sparsity {global_sparsity(rows):.2%}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
