"""Sparsity-vs-error plot from the committed benchmark results.

    python benchmarks/plot_tradeoff.py

Reads, where present, `results/<network>.json` (the recipe, pruning the
trained dense network, every seed), `results/<network>_from_scratch.json`
(pruning from a fresh initialisation) and `results/budget_<network>.json`
(budget mode at fixed targets, from a fresh initialisation), and draws
keras_scl and tfmot test error against compression for each network into
`results/tradeoff.png`.
"""

import json
import os

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


def points(network):
    pts = {series[0]: [] for series in SERIES}
    for suffix, start in (("", "prunes the trained network"), ("_from_scratch", "from scratch")):
        path = os.path.join(RESULTS, f"{network}{suffix}.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for run in json.load(f)["runs"]:
                for method, key in (("scl", f"keras_scl, {start}"), ("tfmot", f"tfmot, {start}"), ("dense", "dense")):
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
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("compression (total / live weights)")
        ax.set_ylabel("test error (%)")
        ax.set_title(network)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS, "tradeoff.png"), dpi=120)
    print(os.path.join(RESULTS, "tradeoff.png"))


if __name__ == "__main__":
    main()
