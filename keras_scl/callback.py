"""`SCLCallback`: puts SCL in place for `model.fit` and logs sparsity."""

import math
import warnings

import keras
import tensorflow as tf

from keras_scl import budget
from keras_scl import report
from keras_scl.optimizer import SCLOptimizer
from keras_scl.registration import register
from keras_scl.validation import check_int
from keras_scl.validation import check_number
from keras_scl.wrapper import find_wrappers

AUTO = "auto"
# With `freeze_masks_at_epoch="auto"`, the share of `fit`'s epochs in which
# the masks learn (rounded up, leaving at least one epoch); the rest
# fine-tunes the weights on the frozen connectivity. Three quarters, as
# chosen by measurement (docs/design.md, "The default schedule").
AUTO_MASK_FRACTION = 0.75


def _check_loss_keeps_regularizers(model):
    """Refuses models known to leave the live-connection regularizer out of the loss.

    `keras.distillation.Distiller.compute_loss` adds the student and
    distillation losses only, not the models' `losses`, so the masks of an
    SCL student would get no pruning pressure and nothing would be pruned,
    silently.
    """
    distiller = getattr(getattr(keras, "distillation", None), "Distiller", None)
    if distiller is None or not isinstance(model, distiller):
        return
    if type(model).compute_loss is distiller.compute_loss:
        raise ValueError(
            "Expected a model whose loss includes the live-connection regularizer. Received: "
            f"a keras.distillation.Distiller ({model.name!r}), whose `compute_loss` leaves out "
            "the student's `losses`, so nothing would be pruned. Use keras_scl.SCLDistiller, "
            "which adds them, or a subclass whose `compute_loss` returns "
            "`super().compute_loss(...) + keras.ops.sum(self.student.losses)`."
        )


@register
class SCLCallback(keras.callbacks.Callback):
    """Runs SCL inside `model.fit` and writes sparsity into the logs.

    At the start of training, if the compiled optimizer is not an
    `SCLOptimizer` (directly or inside a `LossScaleOptimizer`), it is wrapped
    in one, so `fit(..., callbacks=[SCLCallback()])` alone gives the whole
    method. `logs["sparsity"]` holds the global fraction of pruned
    connections at every batch (shown in the progress bar; counted before
    the batch, every `batch_update_freq` batches, so it costs nothing
    measurable); after every epoch it is exact, and
    `logs["sparsity/<layer>"]` for each wrapped layer, so both reach
    `History`, `CSVLogger` and `TensorBoard`. A wrapped layer whose masks are
    all off (it disconnects the network) triggers a warning naming it.

    Training is correct without this callback as long as the model is
    compiled with an `SCLOptimizer`; the callback only adds the wrapping,
    the logs and the optional fine-tune phase.

    Args:
        freeze_masks_at_epoch: `"auto"`, int or `None`. From this (0-based)
            epoch on, masks are frozen and only weights train: the
            fine-tune phase. `"auto"` freezes them after the first three
            quarters of the epochs `fit` is given (rounded up, leaving at
            least one: 1 of 2, 4 of 5, 8 of 10, 15 of 20), so every run
            ends with a fine-tune of the connectivity it learned; a `fit` of
            a single epoch has no room for one, and its masks train
            throughout. `None`: masks train throughout. Defaults to
            `"auto"`.
        log_layer_sparsity: bool. Whether to log per-layer sparsity at the end
            of each epoch. Defaults to `True`.
        batch_update_freq: int. How often (in batches) the batch-level
            `sparsity` is recounted. Defaults to `20`.
        target_sparsity: float in (0, 1) or `None`. Budget mode: during the
            mask phase the regularization factor is steered so the global
            sparsity approaches this target, and when the masks freeze the
            connections with the largest mask values that fit the budget are
            kept, so the final sparsity meets it. Needs a fine-tune phase
            (`freeze_masks_at_epoch` not `None`). Defaults to `None`.
        target_flops: number or `None`. The same with a budget of FLOPs per
            example, counted over Dense, EinsumDense and convolution layers
            (see `sparsity_report`). Defaults to `None`.
        controller_freq: int. Batches between two controller steps in budget
            mode. Defaults to `10`.
        budget_ramp: float in (0, 1]. In budget mode, the fraction of the
            mask phase over which the scheduled budget falls from dense to
            the target (see `keras_scl.budget.BudgetController`). Defaults
            to `0.6`.

    Example:

    >>> model.fit(x, y, epochs=20, callbacks=[keras_scl.SCLCallback()])  # masks freeze at epoch 15
    >>> model.fit(x, y, epochs=20, callbacks=[keras_scl.SCLCallback(freeze_masks_at_epoch=15)])
    """

    def __init__(
        self,
        freeze_masks_at_epoch="auto",
        log_layer_sparsity=True,
        batch_update_freq=20,
        target_sparsity=None,
        target_flops=None,
        controller_freq=10,
        budget_ramp=0.6,
    ):
        super().__init__()
        budget.check_budget(target_sparsity, target_flops)
        if (target_sparsity is not None or target_flops is not None) and freeze_masks_at_epoch is None:
            raise ValueError(
                "Expected `freeze_masks_at_epoch` with a budget: the budget is met exactly when "
                "the masks freeze. Received: freeze_masks_at_epoch=None"
            )
        if not (isinstance(freeze_masks_at_epoch, str) and freeze_masks_at_epoch == AUTO):
            try:
                check_int("freeze_masks_at_epoch", freeze_masks_at_epoch, minimum=0, allow_none=True)
            except ValueError:
                raise ValueError(
                    f'Expected `freeze_masks_at_epoch` to be "{AUTO}", an int >= 0 or None. '
                    f"Received: freeze_masks_at_epoch={freeze_masks_at_epoch!r}"
                ) from None
        check_int("batch_update_freq", batch_update_freq, minimum=1)
        check_int("controller_freq", controller_freq, minimum=1)
        check_number("budget_ramp", budget_ramp, minimum=0, strict=True, maximum=1, reason=" (a fraction of the mask phase)")
        self.target_sparsity = target_sparsity
        self.target_flops = target_flops
        self.controller_freq = controller_freq
        self.budget_ramp = float(budget_ramp)
        self._epoch = 0
        self._controller = None
        self._frozen = False
        self.freeze_masks_at_epoch = freeze_masks_at_epoch
        self.log_layer_sparsity = bool(log_layer_sparsity)
        self.batch_update_freq = batch_update_freq
        self._collapsed = set()
        self._batch_sparsity = None
        self._count_live = None
        self._ticks = {}

    def get_config(self):
        return {
            "freeze_masks_at_epoch": self.freeze_masks_at_epoch,
            "log_layer_sparsity": self.log_layer_sparsity,
            "batch_update_freq": self.batch_update_freq,
            "target_sparsity": self.target_sparsity,
            "target_flops": self.target_flops,
            "controller_freq": self.controller_freq,
            "budget_ramp": self.budget_ramp,
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
        _check_loss_keeps_regularizers(self.model)
        self._freeze_epoch = self._resolve_freeze_epoch()
        self._resolve_budget()
        self._ensure_scl_optimizer()

    def _resolve_freeze_epoch(self):
        """The epoch the masks freeze at in this `fit`, or `None`."""
        if self.freeze_masks_at_epoch is None or isinstance(self.freeze_masks_at_epoch, int):
            return self.freeze_masks_at_epoch
        epochs = (self.params or {}).get("epochs") or 0
        if epochs < 2:
            return None
        return min(math.ceil(epochs * AUTO_MASK_FRACTION), epochs - 1)

    def _resolve_budget(self):
        """The callback's budget, else the one given to `prune_scl`."""
        sparsity, flops = self.target_sparsity, self.target_flops
        if sparsity is None and flops is None:
            sparsity, flops = getattr(self.model, "_scl_budget", (None, None))
        if (sparsity is not None or flops is not None) and self._freeze_epoch is None:
            raise ValueError(
                f"Expected a fine-tune phase with a budget (target_sparsity={sparsity!r}, "
                f"target_flops={flops!r}): it is met exactly when the masks freeze. Received: "
                f"freeze_masks_at_epoch={self.freeze_masks_at_epoch!r} in a fit of "
                f"{(self.params or {}).get('epochs')} epoch(s) (\"auto\" needs at least 2)"
            )
        self._target_sparsity, self._target_flops = sparsity, flops

    def _batch_level_sparsity(self):
        # Built at the first batch (subclassed models build late) and kept
        # across `fit` calls for the same masks, so it is traced once.
        masks = [m for w in self._wrappers for m in w.masks]
        key = tuple(id(m) for m in masks)
        if self._count_live is None or self._count_live[0] != key:
            count = tf.function(
                autograph=False,
                func=lambda: tf.add_n([tf.reduce_sum(tf.cast(m.value > 0, "int64")) for m in masks])
            )
            self._count_live = (key, sum(math.prod(m.shape) for m in masks), count)
        _, total, count = self._count_live
        return 1.0 - float(count()) / total

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

    def _budget(self):
        if self._controller is None and (self._target_sparsity is not None or self._target_flops is not None):
            self._controller = budget.BudgetController(
                self.model,
                target_sparsity=self._target_sparsity,
                target_flops=self._target_flops,
                ramp=self.budget_ramp,
            )
        return self._controller

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._ticks = {}
        self._frozen = self._freeze_epoch is not None and epoch >= self._freeze_epoch
        if not self._frozen:
            return
        masks = [m for w in self._wrappers for m in w.masks]
        if any(m.trainable for m in masks):
            if self._budget() is not None:
                self._budget().project()
                self._batch_sparsity = None
            for m in masks:
                m.trainable = False
            self.model.make_train_function(force=True)

    # Keras runs batch-end hooks of async-safe callbacks in a worker thread,
    # so the next step starts without waiting for the logs. The batch-end
    # hook below only copies a number into the logs; everything that reads
    # or changes variables runs at batch begin, between two steps, on the
    # main thread, so training stays deterministic.
    async_safe = True

    def on_train_batch_begin(self, batch, logs=None):
        if not all(w.built for w in self._wrappers):
            # A subclassed model builds its layers in its first step: nothing is pruned yet.
            self._batch_sparsity = 0.0
            return
        if not self._frozen and self._due("controller", batch, self.controller_freq) and self._budget() is not None:
            self._budget().update(self._mask_phase_progress(batch))
        if self._due("sparsity", batch, self.batch_update_freq) or self._batch_sparsity is None:
            self._batch_sparsity = self._batch_level_sparsity()

    def _due(self, name, batch, freq):
        """Whether `batch` starts a new period of `freq` batches since the last call.

        With `steps_per_execution` > 1 Keras calls the batch hooks only every
        that many batches, so the test is a period crossed, not `batch % freq == 0`.
        """
        tick = batch // freq
        if self._ticks.get(name) == tick:
            return False
        self._ticks[name] = tick
        return True

    def on_train_batch_end(self, batch, logs=None):
        if logs is not None:
            logs["sparsity"] = self._batch_sparsity

    def _mask_phase_progress(self, batch):
        """Fraction of the mask phase done before `batch` of the current epoch."""
        steps = (self.params or {}).get("steps")
        within = batch / steps if steps else 0.0
        return (self._epoch + min(within, 1.0)) / self._freeze_epoch

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
        if self._controller is not None:
            logs["scl_strength"] = self._controller.strength()
            if self._target_flops is not None:
                logs["sparse_flops"] = self._controller.live_cost()
        if self.log_layer_sparsity:
            for name, sparsity in per_layer.items():
                logs[f"sparsity/{name}"] = sparsity
