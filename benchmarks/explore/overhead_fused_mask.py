"""Exploration: can XLA or `tf.where` make keras_scl's per-step mask work cheaper without XLA?

    python benchmarks/explore/overhead_fused_mask.py BATCH

A training step of LeNet-300-100's three kernels in plain TensorFlow (a
`tf.function`, not Keras, so only the mask arithmetic differs), timed in
alternating rounds of 200 steps (15 rounds, median), variants:
- `dense`: the kernels as they are;
- `graph`: keras_scl's way, `w * H(m)` with a custom-gradient step, and
  the live-connection regularizer `strength * sum(H(m))`;
- `graph_no_regularizer`: the same without the regularizer;
- `xla`: the masked kernel and its gradient, and the regularizer and its
  gradient, each an XLA-compiled function called from the graph;
- `xla_masked_kernel`: only the masked kernel compiled with XLA;
- `where`: `tf.where(m > 0, w, 0)` instead of the product.
Prints milliseconds per step and the difference to `dense`. A record for
docs/overhead.md, not a benchmark.
"""

import statistics
import sys
import time

import numpy as np
import tensorflow as tf

SHAPES = [(784, 300), (300, 100), (100, 10)]


def _step_of(masked, regularizer, weights, masks, x, strength):
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            h = x
            for i, (w, m) in enumerate(zip(weights, masks)):
                h = tf.matmul(h, masked(w, m) if masked else w)
                if i < len(weights) - 1:
                    h = tf.nn.relu(h)
            loss = tf.reduce_mean(h * h)
            if regularizer:
                loss += tf.add_n([regularizer(m, tf.convert_to_tensor(strength)) for m in masks])
        variables = weights + (masks if masked else [])
        grads = tape.gradient(loss, variables)
        return tf.add_n([tf.reduce_sum(g[:1]) for g in grads])

    return step


def _unit_step(m):
    @tf.custom_gradient
    def step(v):
        return tf.cast(v > 0, v.dtype), lambda upstream: upstream

    return step(m)


def graph_masked(w, m):
    return w * _unit_step(m)


def graph_regularizer(m, strength):
    return strength * tf.reduce_sum(_unit_step(m))


@tf.function(jit_compile=True, autograph=False)
def _xla_masked_forward(w, m):
    return tf.where(m > 0, w, tf.zeros_like(w))


@tf.function(jit_compile=True, autograph=False)
def _xla_masked_backward(g, w, m):
    return tf.where(m > 0, g, tf.zeros_like(g)), g * w


def xla_masked(w, m):
    @tf.custom_gradient
    def masked(w, m):
        return _xla_masked_forward(w, m), lambda g: _xla_masked_backward(g, w, m)

    return masked(w, m)


@tf.function(jit_compile=True, autograph=False)
def _xla_count(m, strength):
    return strength * tf.reduce_sum(tf.cast(m > 0, tf.float32))


@tf.function(jit_compile=True, autograph=False)
def _xla_count_backward(upstream, m, strength):
    return upstream * strength * tf.ones_like(m)


def xla_regularizer(m, strength):
    @tf.custom_gradient
    def count(m, strength):
        return _xla_count(m, strength), lambda up: (_xla_count_backward(up, m, strength), tf.zeros_like(strength))

    return count(m, strength)


def where_masked(w, m):
    @tf.custom_gradient
    def masked(w, m):
        live = m > 0
        return tf.where(live, w, tf.zeros_like(w)), lambda g: (tf.where(live, g, tf.zeros_like(g)), g * w)

    return masked(w, m)


def main(batch):
    rng = np.random.default_rng(0)
    weights = [tf.Variable(rng.normal(size=s).astype("float32")) for s in SHAPES]
    masks = [tf.Variable(rng.normal(0.05, 0.05, size=s).astype("float32")) for s in SHAPES]
    x = tf.constant(rng.random((batch, 784), dtype="float32"))
    strength = tf.Variable(1e-5)
    variants = {
        "dense": (None, None),
        "graph": (graph_masked, graph_regularizer),
        "graph_no_regularizer": (graph_masked, None),
        "xla": (xla_masked, xla_regularizer),
        "xla_masked_kernel": (xla_masked, graph_regularizer),
        "where": (where_masked, graph_regularizer),
    }
    steps = {k: _step_of(*v, weights, masks, x, strength) for k, v in variants.items()}
    for step in steps.values():
        step(), step()
    times = {k: [] for k in steps}
    for r in range(15):
        for key in steps if r % 2 else list(steps)[::-1]:
            start = time.perf_counter()
            for _ in range(200):
                steps[key]()
            times[key].append((time.perf_counter() - start) / 200 * 1e3)
    dense = statistics.median(times["dense"])
    for key, values in times.items():
        print(f"batch {batch} {key:22s} {statistics.median(values):7.3f} ms  +{statistics.median(values) - dense:.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 32)
