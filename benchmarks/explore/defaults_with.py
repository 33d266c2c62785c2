"""Exploration: `benchmarks/defaults.py` cases with other `prune_scl` options.

    python benchmarks/explore/defaults_with.py initial_mask=0.025 -- \\
        --data-dir ../shared/tfds --cases sequence-5 noisy-shifted-mnist-5 --out-dir /tmp/probe

Runs `defaults.py` (everything after `--` is its command line) with the
given `KEY=VALUE` options passed to every `prune_scl` call, numbers only
(`initial_mask`, `strength`). The dense runs, data and seeds are the
suite's, so a case differs from `defaults.json` by the options alone.
Writes where `--out-dir` says, never over the committed results. A record
for docs/experiment-log.md, not a benchmark.
"""

import functools
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import defaults as D  # noqa: E402
import keras_scl  # noqa: E402


def main():
    if "--" not in sys.argv:
        raise SystemExit(__doc__)
    split = sys.argv.index("--")
    options = {}
    for item in sys.argv[1:split]:
        key, _, value = item.partition("=")
        options[key] = float(value)
    suite_args = sys.argv[split + 1:]
    if "--out-dir" not in suite_args:
        raise SystemExit("Give defaults.py an --out-dir, so the committed results stay as they are.")
    keras_scl.prune_scl = functools.partial(keras_scl.prune_scl, **options)
    print(f"prune_scl options: {options}", flush=True)
    D.main(suite_args)


if __name__ == "__main__":
    main()
