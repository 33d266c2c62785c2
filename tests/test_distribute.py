"""SCL under tf.distribute.MirroredStrategy on two logical CPU devices.

Logical devices must be configured before TensorFlow initialises, so the
comparison runs in a fresh subprocess.
"""

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import keras_scl

    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 12)).astype("float32")
    y = (x[:, :3].sum(axis=1) > 0).astype("int32")

    def train(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)])
            pruned = keras_scl.prune_scl(model, strength=1e-3, initial_mask=0.05)
            pruned.compile(
                optimizer=keras_scl.SCLOptimizer(keras.optimizers.SGD(0.01)),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
        pruned.fit(x, y, batch_size=64, epochs=3, shuffle=False, verbose=0, callbacks=[keras_scl.SCLCallback()])
        return [m.numpy().tolist() for l in pruned.layers for m in l.masks]

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    print(json.dumps({
        "replicas": mirrored.num_replicas_in_sync,
        "one": train(tf.distribute.get_strategy()),
        "two": train(mirrored),
    }))
    """
)


def test_mirrored_strategy_learns_the_same_masks_as_one_device():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    import numpy as np

    for one, two in zip(result["one"], result["two"]):
        one, two = np.array(one), np.array(two)
        np.testing.assert_allclose(two, one, atol=1e-4)
        assert np.array_equal(one > 0, two > 0)
    assert any((np.array(m) <= 0).any() for m in result["one"])  # something was pruned
