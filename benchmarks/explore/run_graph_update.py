"""`run.py` with `SCLOptimizer`'s update as graph ops, as before commit 7dbc02c.

    python benchmarks/explore/run_graph_update.py --network lenet5 --seeds 0 --baselines \
        --out-dir /tmp/graph_update --data-dir ../shared/tfds

Every argument goes to `benchmarks/run.py`; the only change is
`SCLOptimizer(jit_compile=False)` wherever the recipe builds one, which
separates the XLA-compiled update's rounding from other changes when a
result moves between commits (docs/known-issues.md, LeNet-5-Caffe).
"""

import functools
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import keras_scl  # noqa: E402

keras_scl.SCLOptimizer = functools.partial(keras_scl.SCLOptimizer, jit_compile=False)
import run  # noqa: E402

if __name__ == "__main__":
    run.main(sys.argv[1:])
