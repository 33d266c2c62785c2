"""Exploration: where a keras_scl training step's time goes, kernel by kernel.

    python benchmarks/explore/profile_step.py [--network dense|scl] [--batch 32] [--steps 200]

One training step of LeNet-300-100 (forward, loss with `model.losses`,
gradient, optimizer update) in a plain `tf.function`, without XLA but
for `SCLOptimizer`'s own compiled update: `dense` with
`keras.optimizers.Adam(1e-3)`, `scl` (`prune_scl` of it) with
`SCLOptimizer` around the same. After 50 warm-up steps, `--steps` steps
run under TensorFlow's profiler, and the time of every kernel on the
compute threads is summed by name and printed per step, largest first
(µs). Kernels of the same name on several threads are added together, so
the top lines (the executor's own bookkeeping) overlap the rest. A record
for docs/overhead.md, not a benchmark.
"""

import argparse
import collections
import glob
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

import keras_scl  # noqa: E402


def lenet300():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


def train_step(network, batch):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((batch, 784), dtype="float32"))
    y = tf.constant(rng.integers(0, 10, batch))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model = lenet300()
    optimizer = keras.optimizers.Adam(1e-3)
    if network == "scl":
        model = keras_scl.prune_scl(model)
        optimizer = keras_scl.SCLOptimizer(optimizer)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
            if model.losses:
                loss = loss + tf.add_n(model.losses)
        variables = model.trainable_variables
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    return step


def kernel_times(logdir, steps):
    """Microseconds per step by kernel name, and calls per step."""
    path = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    total, calls = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if not (line.name.startswith("tf_Compute") or "Eigen" in line.name):
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "?")
                total[name] += event.duration_ps / 1e6 / steps
                calls[name] += 1 / steps
    return total, calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=("dense", "scl"), default="scl")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    step = train_step(args.network, args.batch)
    for _ in range(50):
        step()
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(args.steps):
            step()
        tf.profiler.experimental.stop()
        total, calls = kernel_times(logdir, args.steps)
    for name, micros in total.most_common(args.top):
        print(f"{micros:9.1f} µs  {calls[name]:5.1f} calls  {name[:100]}")


if __name__ == "__main__":
    main()
