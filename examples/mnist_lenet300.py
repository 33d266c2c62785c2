"""LeNet-300-100 on MNIST learns its own sparse connectivity with keras_scl.

Run it (the first run downloads MNIST into the TFDS data directory):

    python examples/mnist_lenet300.py --data-dir ../shared/tfds

What happens, top to bottom:
1. MNIST is read through TensorFlow Datasets, flattened to 784 inputs.
2. The dense network 784-300-100-10 is built and trained as usual.
3. `keras_scl.prune_scl` wraps every Dense layer of the trained network:
   each kernel gets a mask variable, the layers compute with
   `kernel * H(mask)` (masks start positive, so the predictions start as
   the dense network's). `--from-scratch` skips step 2 and prunes a freshly
   initialised network instead, with its own recipe.
4. `model.fit` trains masks and weights together; `SCLCallback` puts
   `sparsity` in the progress bar, then freezes the masks so the surviving
   weights fine-tune.
5. `keras_scl.strip_scl` bakes the masks in; the result is a plain Keras
   model with exact zeros, exported as a TF SavedModel, with a per-layer
   table, a JSON summary and a PNG of per-layer sparsity in `--out-dir`.
"""

import os
import sys

import keras

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mnist_common  # noqa: E402

# The recipe measured for this network (see README, "Results on MNIST"): it
# prunes the trained dense network and distils from it, with a fine-tune
# phase longer than the mask phase. Distillation needs a larger strength to
# prune as far (see `mnist_lenet5.py`).
RECIPE = mnist_common.Recipe(
    mask_epochs=20, finetune_epochs=25, strength=1.75e-4, jit_compile=True, distill_temperature=4.0
)
# `--from-scratch`: pruning a freshly initialised network (the ablation and
# budget benchmarks use this one).
RECIPE_FROM_SCRATCH = mnist_common.Recipe(strength=3.5e-5, prune_trained=False)


def build_model():
    """LeNet-300-100: Dense 784-300-100-10 with ReLU."""
    return keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(300, activation="relu", name="fc1"),
            keras.layers.Dense(100, activation="relu", name="fc2"),
            keras.layers.Dense(10, name="fc3"),
        ],
        name="lenet300",
    )


def main(argv=None):
    return mnist_common.run_example(
        argv, "lenet300", build_model, RECIPE, RECIPE_FROM_SCRATCH, flat=True, description=__doc__.splitlines()[0]
    )


if __name__ == "__main__":
    main()
