"""Exploration: the defaults suite's sequence cases on other seeds.

    python benchmarks/explore/sequence_seeds.py                      # first-marker, 10 epochs, seeds 1-3
    python benchmarks/explore/sequence_seeds.py --task majority --epochs 5 --seeds 0 1 2 3 4 --dense-only

`benchmarks/defaults.py`'s sequence network on one of its generated tasks
(`first-marker`, the suite's first sequence case; `majority`, the one that
replaced it), dense and with the defaults in one process from the same
initial weights, as a case of the suite, or the dense network alone
(`--dense-only`, how the replacement task was checked: it must be learned
by the dense network within the shortest run on every seed). Prints one
line per seed. A record for docs/experiment-log.md.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import defaults as D  # noqa: E402

TASKS = {"first-marker": D.first_marker_task, "majority": D.majority_marker_task}

parser = argparse.ArgumentParser()
parser.add_argument("--task", choices=sorted(TASKS), default="first-marker")
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
parser.add_argument("--dense-only", action="store_true")
args = parser.parse_args()

train, test = TASKS[args.task]()
for seed in args.seeds:
    keras.utils.set_random_seed(seed)
    model = D.sequence_model(32, 4)
    name = f"{args.task}-{args.epochs} seed {seed}"
    if args.dense_only:
        D._fit(model, train, args.epochs)
        print(f"{name}: dense {D._error(model, test):.2f} %", flush=True)
    else:
        D._compare(name, model, train, test, args.epochs, "scratch")
