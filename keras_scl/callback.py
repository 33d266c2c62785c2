"""`SCLCallback`: puts SCL in place for `model.fit` and logs sparsity."""

import math
import warnings

import keras
import tensorflow as tf

from keras_scl import report
from keras_scl.optimizer import SCLOptimizer
from keras_scl.registration import register
from keras_scl.wrapper import find_wrappers


@register
class SCLCallback(keras.callbacks.Callback):
    """Runs SCL inside `model.fit` and writes sparsity into the logs.

    At the start of training, if the compiled optimizer is not an
    `SCLOptimizer` (directly or inside a `LossScaleOptimizer`), it is wrapped
    in one, so `fit(..., callbacks=[SCLCallback()])` alone gives the whole
    method. `logs["sparsity"]` holds the global fraction of pruned
    connections after every batch (shown in the progress bar; recounted every
    `batch_update_freq` batches so it costs nothing measurable); after every
    epoch it is exact, and
    `logs["sparsity/<layer>"]` for each wrapped layer, so both reach
    `History`, `CSVLogger` and `TensorBoard`. A wrapped layer whose masks are
    all off (it disconnects the network) triggers a warning naming it.

    Training is correct without this callback as long as the model is
    compiled with an `SCLOptimizer`; the callback only adds the wrapping,
    the logs and the optional fine-tune phase.

    Args:
        freeze_masks_at_epoch: int or `None`. From this (0-based) epoch on,
            masks are frozen and only weights train: the fine-tune phase.
            Defaults to `None` (masks train throughout).
        log_layer_sparsity: bool. Whether to log per-layer sparsity at the end
            of each epoch. Defaults to `True`.
        batch_update_freq: int. How often (in batches) the batch-level
            `sparsity` is recounted. Defaults to `20`.

    Example:

    >>> model.fit(x, y, epochs=20, callbacks=[keras_scl.SCLCallback(freeze_masks_at_epoch=15)])
    """

    def __init__(self, freeze_masks_at_epoch=None, log_layer_sparsity=True, batch_update_freq=20):
        super().__init__()
        if freeze_masks_at_epoch is not None and (
            isinstance(freeze_masks_at_epoch, bool)
            or not isinstance(freeze_masks_at_epoch, int)
            or freeze_masks_at_epoch < 0
        ):
            raise ValueError(
                "Expected `freeze_masks_at_epoch` to be an int >= 0 or None. "
                f"Received: freeze_masks_at_epoch={freeze_masks_at_epoch!r}"
            )
        if isinstance(batch_update_freq, bool) or not isinstance(batch_update_freq, int) or batch_update_freq < 1:
            raise ValueError(
                "Expected `batch_update_freq` to be an int >= 1. "
                f"Received: batch_update_freq={batch_update_freq!r}"
            )
        self.freeze_masks_at_epoch = freeze_masks_at_epoch
        self.log_layer_sparsity = bool(log_layer_sparsity)
        self.batch_update_freq = batch_update_freq
        self._collapsed = set()
        self._batch_sparsity = None

    def get_config(self):
        return {
            "freeze_masks_at_epoch": self.freeze_masks_at_epoch,
            "log_layer_sparsity": self.log_layer_sparsity,
            "batch_update_freq": self.batch_update_freq,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def on_train_begin(self, logs=None):
        self._wrappers = find_wrappers(self.model)
        if not self._wrappers:
            raise ValueError(
                "Expected a model containing SCLWrapper layers (see keras_scl.prune_scl). "
                f"Received: model {self.model.name!r} with none"
            )
        self._count_live = None  # built at the first batch: subclassed models build late
        self._ensure_scl_optimizer()

    def _batch_level_sparsity(self):
        if self._count_live is None:
            masks = [m for w in self._wrappers for m in w.masks]
            self._total = sum(math.prod(m.shape) for m in masks)
            self._count_live = tf.function(
                lambda: tf.add_n([tf.reduce_sum(tf.cast(m.value > 0, "int64")) for m in masks])
            )
        return 1.0 - float(self._count_live()) / self._total

    def _ensure_scl_optimizer(self):
        optimizer = self.model.optimizer
        if optimizer is None:
            raise ValueError("Expected a compiled model. Received: a model with no optimizer")
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            if not isinstance(optimizer.inner_optimizer, SCLOptimizer):
                optimizer.inner_optimizer = SCLOptimizer(optimizer.inner_optimizer)
                self.model.make_train_function(force=True)
        elif not isinstance(optimizer, SCLOptimizer):
            self.model.optimizer = SCLOptimizer(optimizer)
            self.model.make_train_function(force=True)
        else:
            return
        # Saved models record the compile arguments: record the wrapped optimizer.
        compile_config = getattr(self.model, "_compile_config", None)
        if compile_config is not None:
            compile_config.config["optimizer"] = self.model.optimizer

    def on_epoch_begin(self, epoch, logs=None):
        if self.freeze_masks_at_epoch is None or epoch < self.freeze_masks_at_epoch:
            return
        masks = [m for w in self._wrappers for m in w.masks]
        if any(m.trainable for m in masks):
            for m in masks:
                m.trainable = False
            self.model.make_train_function(force=True)

    def on_train_batch_end(self, batch, logs=None):
        if self._batch_sparsity is None or batch % self.batch_update_freq == 0:
            self._batch_sparsity = self._batch_level_sparsity()
        if logs is not None:
            logs["sparsity"] = self._batch_sparsity

    def on_epoch_end(self, epoch, logs=None):
        rows = report.mask_stats(self.model)
        per_layer = report.layer_sparsity(rows)
        for name, sparsity in per_layer.items():
            if sparsity == 1.0 and name not in self._collapsed:
                self._collapsed.add(name)
                warnings.warn(
                    f"Layer {name!r} has no live connection left after epoch {epoch + 1}: "
                    "it disconnects the network. Lower `strength` or raise `initial_mask`.",
                    stacklevel=2,
                )
        if logs is None:
            return
        self._batch_sparsity = report.global_sparsity(rows)
        logs["sparsity"] = self._batch_sparsity
        if self.log_layer_sparsity:
            for name, sparsity in per_layer.items():
                logs[f"sparsity/{name}"] = sparsity
