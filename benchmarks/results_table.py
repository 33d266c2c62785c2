"""The results page's method tables, pooled over every results file of a network.

    python benchmarks/results_table.py --network lenet300
    python benchmarks/results_table.py --network lenet5 --files benchmarks/results/lenet5.json

`run.py` writes seeds 0-2 to `benchmarks/results/<network>.json` and the
held-out seeds 10-14 to `benchmarks/results/more_seeds/<network>.json`;
this pools the runs of both (by default), refusing files of different
recipes or the same seed twice, summarises them with `run.aggregate` (the
summary `run.py` writes, so the numbers are the same code's) and prints one
markdown row per method: mean ± standard deviation over the seeds that ran
it, and which seeds those are. `--json` prints the pooled summary instead.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import baselines  # noqa: E402
import provenance  # noqa: E402

COLUMNS = ("method", "seeds", "test error %", "sparsity %", "compression", "FLOPs reduction", "time vs dense")


def default_files(network, results_dir=os.path.join(HERE, "results")):
    """The results files of `network` that exist: seeds 0-2, then the held-out seeds."""
    paths = [os.path.join(results_dir, f"{network}.json"), os.path.join(results_dir, "more_seeds", f"{network}.json")]
    return [p for p in paths if os.path.exists(p)]


def pool(results):
    """The runs of several results dicts of one recipe, sorted by seed."""
    if not results:
        raise ValueError("Expected at least one results file. Received: none")
    recipe = provenance.recipe_of(results[0])
    runs = {}
    for result in results:
        if provenance.recipe_of(result) != recipe or result.get("quick") != results[0].get("quick"):
            raise ValueError(
                f"Expected results of one recipe ({recipe}, quick={results[0].get('quick')}). "
                f"Received: a file with recipe {provenance.recipe_of(result)}, quick={result.get('quick')}"
            )
        for seed, run in zip(result["seeds"], result["runs"]):
            if seed in runs:
                raise ValueError(f"Expected each seed in one file only. Received: seed {seed} twice")
            runs[seed] = {"seed": seed, **run}
    return [runs[seed] for seed in sorted(runs)]


def _seeds(seeds):
    """`[0, 1, 2, 10, 11]` -> "0-2, 10-11"."""
    spans, start = [], None
    for i, seed in enumerate(seeds):
        if start is None:
            start = seed
        if i + 1 == len(seeds) or seeds[i + 1] != seed + 1:
            spans.append(str(start) if start == seed else f"{start}-{seed}")
            start = None
    return ", ".join(spans)


def rows(summary):
    """Markdown table rows (header included) of a `run.aggregate` summary."""

    def pm(stats, scale=1.0, digits=2):
        return f"{scale * stats['mean']:.{digits}f} ± {scale * stats['std']:.{digits}f}"

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for key, s in summary.items():
        ratio = s.get("epoch_time_ratio_vs_dense")
        cells = [
            baselines.label(key),
            _seeds(s["seeds"]),
            pm(s["test_error_percent"]),
            pm(s["sparsity"], 100),
            f"{s['compression']['mean']:.1f}x ± {s['compression']['std']:.1f}",
            f"{s['flops_reduction']['mean']:.1f}x",
            pm(ratio) if ratio else "1",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", required=True)
    parser.add_argument("--files", nargs="+", help="results files to pool (default: results/ and results/more_seeds/)")
    parser.add_argument("--json", action="store_true", help="print the pooled summary as JSON")
    args = parser.parse_args(argv)
    paths = args.files or default_files(args.network)
    results = []
    for path in paths:
        with open(path) as f:
            results.append(json.load(f))
    runs = pool(results)
    import run  # Keras and TensorFlow load only here.

    summary = run.aggregate(runs, results[0]["recipe"]["mask_epochs"])
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"{args.network}: {len(runs)} seeds from {', '.join(os.path.relpath(p) for p in paths)}")
        print("\n".join(rows(summary)))
    return summary


if __name__ == "__main__":
    main()
