"""LeNet-5-Caffe on MNIST learns its own sparse connectivity with keras_scl.

Run it (the first run downloads MNIST into the TFDS data directory):

    python examples/mnist_lenet5.py --data-dir ../shared/tfds

The network is the Caffe variant used in the pruning literature: Conv 5x5x20,
max-pool 2, Conv 5x5x50, max-pool 2, Dense 500, Dense 10, ReLU (431k
weights). `prune_scl` wraps both convolutions and both Dense layers; the
pooling and flattening layers are kept as they are. Training, stripping and
export follow `mnist_lenet300.py`; the per-layer table shows how SCL shares
the sparsity between layers, which uniform magnitude pruning cannot do.
"""

import os
import sys

import keras

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mnist_common  # noqa: E402

# The recipe measured for this network (see README, "Results on MNIST"): it
# prunes the trained dense network and distils from it. At the strength of
# the recipe without distillation (4e-5) it prunes far less, presumably as
# the distillation loss keeps sizeable gradients where the cross-entropy's
# vanish (on examples the network already fits); 3e-4 prunes as far.
RECIPE = mnist_common.Recipe(mask_epochs=10, finetune_epochs=10, strength=3e-4, distill_temperature=4.0)
# `--from-scratch`: pruning a freshly initialised network (the ablation and
# budget benchmarks use this one).
RECIPE_FROM_SCRATCH = mnist_common.Recipe(mask_epochs=8, finetune_epochs=6, strength=4e-5, prune_trained=False)


def build_model():
    """LeNet-5-Caffe: Conv(20,5) - pool - Conv(50,5) - pool - Dense 500 - Dense 10."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(20, 5, activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(2, name="pool1"),
            keras.layers.Conv2D(50, 5, activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(2, name="pool2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(500, activation="relu", name="fc1"),
            keras.layers.Dense(10, name="fc2"),
        ],
        name="lenet5",
    )


def main(argv=None):
    return mnist_common.run_example(
        argv, "lenet5", build_model, RECIPE, RECIPE_FROM_SCRATCH, flat=False, description=__doc__.splitlines()[0]
    )


if __name__ == "__main__":
    main()
