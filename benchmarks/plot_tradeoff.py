"""Sparsity-vs-error plot from the committed benchmark results.

    python benchmarks/plot_tradeoff.py

Reads `results/<network>.json` (recipe runs, every seed) and, if present,
`results/budget_<network>.json` (budget-mode runs at fixed targets, every
seed), and
draws keras_scl and tfmot test error against compression for each network
into `results/tradeoff.png`.
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def points(network):
    pts = {"keras_scl": [], "tfmot": [], "dense": []}
    path = os.path.join(RESULTS, f"{network}.json")
    if os.path.exists(path):
        with open(path) as f:
            for run in json.load(f)["runs"]:
                for method, key in (("scl", "keras_scl"), ("tfmot", "tfmot"), ("dense", "dense")):
                    if method in run:
                        pts[key].append((run[method]["compression"], 100 * (1 - run[method]["test_accuracy"])))
    path = os.path.join(RESULTS, f"budget_{network}.json")
    if os.path.exists(path):
        with open(path) as f:
            for entry in json.load(f)["results"][network]["targets"].values():
                for method, key in (("scl", "keras_scl"), ("tfmot", "tfmot")):
                    for run in entry.get(method, {}).get("runs", [entry[method]] if method in entry else []):
                        pts[key].append((1 / (1 - run["sparsity"]), run["test_error_percent"]))
    return pts


def main():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    networks = [n for n in ("lenet300", "lenet5") if os.path.exists(os.path.join(RESULTS, f"{n}.json"))]
    fig, axes = plt.subplots(1, len(networks), figsize=(5 * len(networks), 3.6), squeeze=False)
    for ax, network in zip(axes[0], networks):
        for label, marker in (("dense", "s"), ("keras_scl", "o"), ("tfmot", "^")):
            pts = points(network)[label]
            if pts:
                ax.scatter(*zip(*pts), marker=marker, label=label if label != "tfmot" else "tfmot prune_low_magnitude")
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
