"""The methods `run.py` compares, and how each tfmot baseline allocates sparsity.

Only the standard library here: `run.py` (Keras 3), `plot_tradeoff.py` and
the tests all import it.

Every tfmot baseline prunes the same trained dense network to the global
sparsity keras_scl's recipe reached with that seed; they differ in how that
sparsity is spread over the layers (`uniform`, `learned`: keras_scl's
per-layer sparsity for the seed, `handmade`: `handmade_allocation`) and in
the loss (`_distill`: the recipe's distillation loss on the same teacher
logits, else the labels alone). `scl_no_distill` is keras_scl as the paper
publishes it: the recipe without distillation, at a strength chosen to land
at the recipe's compression (`NO_DISTILL_STRENGTH` in `run.py`).
"""

# name on the command line -> (key in the results JSON, label in tables and plots)
METHODS = {
    "tfmot_uniform": ("tfmot", "tfmot, uniform"),
    "tfmot_uniform_distill": ("tfmot_uniform_distill", "tfmot, uniform, distils"),
    "tfmot_learned": ("tfmot_learned", "tfmot, keras_scl's per-layer sparsity"),
    "tfmot_learned_distill": ("tfmot_learned_distill", "tfmot, keras_scl's per-layer sparsity, distils"),
    "tfmot_handmade": ("tfmot_handmade", "tfmot, hand-made allocation"),
    "tfmot_handmade_distill": ("tfmot_handmade_distill", "tfmot, hand-made allocation, distils"),
    "scl_no_distill": ("scl_no_distill", "keras_scl without distillation"),
}
# Results keys that are always there, with their labels.
ALWAYS = {"dense": "dense", "scl": "keras_scl (recipe, distils)"}


def label(key):
    """The table and plot label of a results key ("dense", "scl", "tfmot", ...)."""
    labels = {**ALWAYS, **{k: text for k, text in METHODS.values()}}
    return labels[key]


def tfmot_variant(name):
    """(allocation, distils) of a tfmot method name, e.g. `("learned", True)`."""
    if name not in METHODS or not name.startswith("tfmot_"):
        raise ValueError(f"Expected one of the tfmot methods {[m for m in METHODS if m.startswith('tfmot_')]}. Received: name={name!r}")
    parts = name.split("_")
    return parts[1], parts[-1] == "distill"


def learned_allocation(rows):
    """keras_scl's sparsity per layer, from the `layers` rows of a stripped model's summary.

    Args:
        rows: list of dicts with `layer`, `weight` and `sparsity` (the rows of
            `keras_scl.sparsity_report` as `mnist_common.summarize` stores them).

    Returns:
        A dict layer name -> sparsity, in the rows' order.
    """
    allocation = {}
    for row in rows:
        if row["layer"] in allocation:
            raise ValueError(
                "Expected one prunable weight per layer (tfmot prunes layers). "
                f"Received: a second row for layer {row['layer']!r} ({row['weight']!r})"
            )
        allocation[row["layer"]] = float(row["sparsity"])
    return allocation


def handmade_allocation(sizes, global_sparsity, edge_sparsity=0.8):
    """Sparsity per layer by a fixed rule: the first layer and the classifier denser.

    The rule follows Gale, Elsen and Hooker (2019), who keep the first layer
    of ResNet-50 dense and its classifier at most 80 % sparse, and the
    published MNIST allocations, which all keep the first convolution and
    the classifier denser than the large middle layers:

    1. The first and the last prunable layer (in model order) are edge
       layers, kept at `min(global_sparsity, edge_sparsity)`, unless an edge
       layer holds half of the prunable weights or more: then it is where
       the budget has to come from (LeNet-300-100's 784-input layer holds
       88 % of them) and it is pruned with the middle layers.
    2. All other layers share one sparsity, chosen so that the live weights
       of all layers together meet `global_sparsity` (sparsity counted in
       weights, as the benchmark counts it).

    Below `edge_sparsity` every layer is at `global_sparsity` (uniform).

    Args:
        sizes: dict layer name -> number of prunable weights, in model order.
        global_sparsity: float in [0, 1). Fraction of all prunable weights
            to remove.
        edge_sparsity: float in [0, 1). Most the edge layers are pruned.
            Defaults to `0.8`.

    Returns:
        A dict layer name -> sparsity, in the order of `sizes`.
    """
    if not 0.0 <= global_sparsity < 1.0:
        raise ValueError(f"Expected `global_sparsity` in [0, 1). Received: global_sparsity={global_sparsity}")
    if not 0.0 <= edge_sparsity < 1.0:
        raise ValueError(f"Expected `edge_sparsity` in [0, 1). Received: edge_sparsity={edge_sparsity}")
    names = list(sizes)
    total = sum(sizes.values())
    if len(names) < 3:
        raise ValueError(f"Expected at least 3 prunable layers (first, middle, last). Received: sizes={sizes}")
    edges = [n for n in {names[0]: None, names[-1]: None} if 2 * sizes[n] < total]
    edge = min(global_sparsity, edge_sparsity)
    middle = [n for n in names if n not in edges]
    live_middle = (1.0 - global_sparsity) * total - sum((1.0 - edge) * sizes[n] for n in edges)
    inner = 1.0 - live_middle / sum(sizes[n] for n in middle)
    if not 0.0 <= inner < 1.0:
        raise ValueError(
            f"Expected a global sparsity the middle layers can absorb with the edge layers at {edge}. "
            f"Received: global_sparsity={global_sparsity}, sizes={sizes} (middle layers at {inner})"
        )
    return {n: (edge if n in edges else inner) for n in names}
