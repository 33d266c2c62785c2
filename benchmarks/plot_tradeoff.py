"""Sparsity-vs-error plot from the committed benchmark results.

    python benchmarks/plot_tradeoff.py

Reads, where present, `results/<network>.json` (the recipe, pruning the
trained dense network, every seed), `results/<network>_from_scratch.json`
(pruning from a fresh initialisation) and `results/budget_<network>.json`
(budget mode at fixed targets, from a fresh initialisation), and draws
keras_scl and tfmot test error against compression for each network into
`results/tradeoff.png`, with every baseline of `run.py` that the results
hold (tfmot with other allocations and with distillation, keras_scl
without distillation).
"""

import json
import os

import baselines

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


# (series label, marker, colour, filled): one colour per method, hollow for from scratch
SERIES = (
    ("dense", "s", "C0", True),
    ("keras_scl, prunes the trained network", "o", "C1", True),
    ("tfmot, prunes the trained network", "^", "C2", True),
    ("keras_scl, from scratch", "o", "C1", False),
    ("tfmot, from scratch", "^", "C2", False),
)


# Baselines of `run.py` beyond uniform tfmot, by results key: marker per
# allocation (v keras_scl's, D hand-made), colour per method.
BASELINES = {
    "scl_no_distill": ("o", "C4"),
    "tfmot_uniform_distill": ("^", "C3"),
    "tfmot_learned": ("v", "C5"),
    "tfmot_learned_distill": ("v", "C6"),
    "tfmot_handmade": ("D", "C7"),
    "tfmot_handmade_distill": ("D", "C8"),
}
# The same marker and colour for a results key in every plot.
STYLES = {"dense": ("s", "C0"), "scl": ("o", "C1"), "tfmot": ("^", "C2"), **BASELINES}


def scatter(ax, key, pts, label, filled=True):
    """Draws the (compression, error %) points of results key `key` on `ax`."""
    if not pts:
        return
    marker, color = STYLES[key]
    style = dict(color=color) if filled else dict(facecolors="none", edgecolors=color)
    ax.scatter(*zip(*pts), marker=marker, label=label, **style)


def points(network):
    pts = {series[0]: [] for series in SERIES}
    pts.update({baselines.label(key): [] for key in BASELINES})
    for suffix, start in (("", "prunes the trained network"), ("_from_scratch", "from scratch")):
        path = os.path.join(RESULTS, f"{network}{suffix}.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for run in json.load(f)["runs"]:
                named = (("scl", f"keras_scl, {start}"), ("tfmot", f"tfmot, {start}"), ("dense", "dense"))
                if not suffix:
                    named += tuple((key, baselines.label(key)) for key in BASELINES)
                for method, key in named:
                    if method in run and (method != "dense" or not suffix):
                        pts[key].append((run[method]["compression"], 100 * (1 - run[method]["test_accuracy"])))
    path = os.path.join(RESULTS, f"budget_{network}.json")
    if os.path.exists(path):
        with open(path) as f:
            for entry in json.load(f)["results"][network]["targets"].values():
                for method, key in (("scl", "keras_scl, from scratch"), ("tfmot", "tfmot, from scratch")):
                    for run in entry.get(method, {}).get("runs", [entry[method]] if method in entry else []):
                        pts[key].append((1 / (1 - run["sparsity"]), run["test_error_percent"]))
    return pts


def main():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    networks = [n for n in ("lenet300", "lenet5") if any(points(n).values())]
    fig, axes = plt.subplots(1, len(networks), figsize=(5 * len(networks), 3.6), squeeze=False)
    for ax, network in zip(axes[0], networks):
        series = points(network)
        for label, marker, color, filled in SERIES:
            if series[label]:
                style = dict(color=color) if filled else dict(facecolors="none", edgecolors=color)
                ax.scatter(*zip(*series[label]), marker=marker, label=label, **style)
        for key in BASELINES:
            scatter(ax, key, series[baselines.label(key)], baselines.label(key))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("compression (total / live weights)")
        ax.set_ylabel("test error (%)")
        ax.set_title(network)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS, "tradeoff.png"), dpi=120)
    print(os.path.join(RESULTS, "tradeoff.png"))


if __name__ == "__main__":
    main()
