"""How big a stripped model is on disk, compressed, against the ideal.

The documented path to a small artifact: `strip_scl` (pruned weights become
exact zeros) -> `model.export(dir)` (a SavedModel) -> gzip of the
SavedModel's `variables/` directory. Runs of zeros compress to almost
nothing, so the archive approaches the *ideal* size: the live weights'
values plus one bit per prunable entry for where they are (a bitmap).
"""

import io
import math
import os
import tarfile
import tempfile

import numpy as np

from keras_scl import report


def _gzip_tar_size(directory):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=9) as tar:
        tar.add(directory, arcname=os.path.basename(directory))
    return buffer.tell()


def _dir_size(directory):
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(directory) for f in files)


def deployment_size(model):
    """Sizes in bytes of a plain (stripped or dense) model's SavedModel.

    Returns:
        A dict with `savedmodel_bytes` (the export directory),
        `variables_bytes` (its `variables/`), `variables_gzip_bytes` (that
        directory as a .tar.gz), `dense_weights_bytes` (all weights as
        float32) and `ideal_bytes` (non-prunable weights, live prunable
        values, and a one-bit-per-entry bitmap of the prunable weights).
    """
    rows = report.sparsity_report(model)
    prunable_total = sum(r.total for r in rows)
    live = sum(r.live for r in rows)
    all_weights = sum(int(np.prod(w.shape)) for w in model.weights)
    itemsize = 4
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "savedmodel")
        model.export(path, verbose=False)
        variables = os.path.join(path, "variables")
        sizes = {
            "savedmodel_bytes": _dir_size(path),
            "variables_bytes": _dir_size(variables),
            "variables_gzip_bytes": _gzip_tar_size(variables),
        }
    sizes["dense_weights_bytes"] = all_weights * itemsize
    sizes["ideal_bytes"] = (all_weights - prunable_total + live) * itemsize + math.ceil(prunable_total / 8)
    return sizes
