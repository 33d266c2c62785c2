"""What a user who changes nothing gets: the library defaults on LeNet-300-100.

    python benchmarks/defaults.py --data-dir ../shared/tfds

Dense baseline and `prune_scl(model)` trained the plain way: Adam(1e-3),
constant learning rate, batch 128, `--epochs` epochs, `SCLCallback()` with
no options. Besides the defaults it runs the candidates the defaults were
chosen from, so the choice can be re-checked. Each setting runs twice:
pruning a fresh initialisation for `--epochs`, and pruning the trained dense
baseline (`prune_scl(dense)`, as the README recommends) for `--epochs` more.
Writes `defaults.json`.
"""

import argparse
import itertools
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import keras  # noqa: E402
import mnist_common  # noqa: E402
import mnist_lenet300  # noqa: E402
import provenance  # noqa: E402

import keras_scl  # noqa: E402
from keras_scl import wrapper  # noqa: E402

CANDIDATES = [(1e-5, 0.05), (1e-5, 0.2), (3e-5, 0.05), (3e-5, 0.2)]


def fit(model, train, epochs, callbacks):
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=mnist_common.LOSS)
    model.fit(*train, batch_size=128, epochs=epochs, verbose=0, callbacks=callbacks)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    train, test = mnist_common.load_mnist(args.data_dir, flat=True)
    results = {}
    keras.utils.set_random_seed(0)
    dense = fit(mnist_lenet300.build_model(), train, args.epochs, [])
    results["dense"] = {"test_error_percent": 100 * (1 - mnist_common.test_accuracy(dense, test))}
    for (strength, initial_mask), start in itertools.product(CANDIDATES, ("scratch", "trained")):
        keras.utils.set_random_seed(0)
        options = {}
        if (strength, initial_mask) != (wrapper.DEFAULT_STRENGTH, wrapper.DEFAULT_INITIAL_MASK):
            options = dict(strength=strength, initial_mask=initial_mask)
        model = dense if start == "trained" else mnist_lenet300.build_model()
        pruned = fit(keras_scl.prune_scl(model, **options), train, args.epochs, [keras_scl.SCLCallback()])
        summary = mnist_common.summarize(keras_scl.strip_scl(pruned), test)
        key = "defaults" if not options else f"strength={strength:g}, initial_mask={initial_mask:g}"
        if start == "trained":
            key += ", pruning the trained dense"
        results[key] = {
            "strength": strength,
            "initial_mask": initial_mask,
            "test_error_percent": 100 * (1 - summary["test_accuracy"]),
            "sparsity": summary["sparsity"],
            "compression": summary["compression"],
        }
        print(key, results[key], flush=True)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "defaults.json"), "w") as f:
        json.dump({**provenance.header("defaults.py", argv), "epochs": args.epochs, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
