"""Exploration: the defaults suite's sequence case on other seeds.

    python benchmarks/explore/sequence_seeds.py

`benchmarks/defaults.py`'s `sequence-10` case (dense and the defaults, in
one process, from the same initial weights) with seeds 1-3 instead of 0.
Prints one line per seed. A record for docs/experiment-log.md.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import defaults as D  # noqa: E402

train, test = D.first_marker_task()
for seed in (1, 2, 3):
    keras.utils.set_random_seed(seed)
    D._compare(f"sequence-10 seed {seed}", D.sequence_model(32, 4), train, test, 10, "scratch")
