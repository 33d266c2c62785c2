"""Knowledge distillation for an SCL student: a loss on packed targets, or a Distiller.

Two ways, the same loss (Hinton et al., 2015):

- `DistillationLoss` with `teacher_targets`: the teacher runs once over a
  fixed training set and its logits travel next to the labels in `y`; any
  model compiled with the loss keeps its regularizers, as `Model.compute_loss`
  adds the model's `losses`. This is what the MNIST recipes use.
- `SCLDistiller`: a `keras.distillation.Distiller` that adds the student's
  `losses` (the live-connection regularizer) to its loss; the teacher runs
  at every step, so it also serves data that changes every epoch
  (augmentation), where targets computed once would go stale.
"""

import keras
import numpy as np

from keras_scl.registration import register
from keras_scl.validation import check_int
from keras_scl.validation import check_number
from keras_scl.wrapper import find_wrappers


@register
class DistillationLoss(keras.losses.Loss):
    """Cross-entropy on the labels blended with the teacher's softened logits.

    Per example, with student logits `z`, teacher logits `v`, label `c` and
    temperature `T`:

    `(1 - weight) * CE(c, z) + weight * T**2 * KL(softmax(v / T) || softmax(z / T))`

    The `T**2` keeps the soft term's gradient on the scale of the hard one
    as `T` changes. The targets pack label and teacher logits into one row,
    `[c, v_0, ..., v_{k-1}]`, as `teacher_targets` builds them, so the
    teacher runs once over the training set instead of once per step; the
    model's own `losses` (the live-connection regularizer) are added by
    Keras as with any compiled loss.

    Args:
        temperature: float > 0. Softens both distributions in the KL term.
            Defaults to `4.0`.
        weight: float in [0, 1]. Weight of the KL term; `0` is the plain
            cross-entropy, `1` ignores the labels. Defaults to `0.7`.
        name: str. Name of the loss. Defaults to `"distillation"`.
        reduction: str. How per-example losses are reduced (see
            `keras.losses.Loss`). Defaults to `"sum_over_batch_size"`.

    Call arguments:
        y_true: `[label, teacher logits...]` rows, shape `(batch, 1 + k)`.
        y_pred: the student's logits, shape `(batch, k)`.

    Example:

    >>> y = keras_scl.teacher_targets(teacher, x_train, y_train)
    >>> pruned.compile(optimizer="adam", loss=keras_scl.DistillationLoss(),
    ...                metrics=[keras_scl.LabelAccuracy(name="accuracy")])
    >>> pruned.fit(x_train, y, callbacks=[keras_scl.SCLCallback()])

    References:
        G. Hinton, O. Vinyals, J. Dean, *Distilling the Knowledge in a
        Neural Network*, arXiv 1503.02531, 2015.
    """

    def __init__(self, temperature=4.0, weight=0.7, name="distillation", reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        self.temperature = check_number("temperature", temperature, minimum=0, strict=True)
        self.weight = check_number("weight", weight, minimum=0, strict=False, maximum=1)

    def call(self, y_true, y_pred):
        _check_packed(y_true, y_pred)
        ops = keras.ops
        labels, teacher = ops.cast(y_true[:, 0], "int32"), y_true[:, 1:]
        ce = keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)
        t = self.temperature
        p_teacher = ops.softmax(teacher / t, axis=-1)
        kl = ops.sum(p_teacher * (ops.log_softmax(teacher / t, axis=-1) - ops.log_softmax(y_pred / t, axis=-1)), axis=-1)
        return (1.0 - self.weight) * ce + self.weight * t * t * kl

    def get_config(self):
        return {"temperature": self.temperature, "weight": self.weight, "name": self.name, "reduction": self.reduction}


def _check_packed(y_true, y_pred):
    # Plain labels would leave no teacher columns: the KL term would be a
    # sum over nothing, 0, and the loss plain cross-entropy, silently.
    classes, columns = y_pred.shape[-1], y_true.shape[-1]
    if len(y_true.shape) != 2 or (classes is not None and columns is not None and columns != classes + 1):
        raise ValueError(
            f"Expected targets packed as [label, teacher logits...] (see keras_scl.teacher_targets), "
            f"shape (batch, 1 + {classes}) for student logits of shape {tuple(y_pred.shape)}. "
            f"Received: y_true of shape {tuple(y_true.shape)}"
        )


def label_accuracy(y_true, y_pred):
    """Per-example accuracy against the label column of `teacher_targets` rows."""
    labels = keras.ops.cast(y_true[:, 0], "int32")
    return keras.ops.cast(keras.ops.equal(keras.ops.argmax(y_pred, axis=-1), labels), "float32")


@register
class LabelAccuracy(keras.metrics.MeanMetricWrapper):
    """Accuracy of the student's logits against the labels of packed targets.

    With `DistillationLoss` the targets are `[label, teacher logits...]`
    rows, which Keras' own accuracy metrics cannot read; this one compares
    `argmax(y_pred)` with the label column.

    Args:
        name: str. Name of the metric (`name="accuracy"` keeps the usual
            log key). Defaults to `"label_accuracy"`.
        dtype: dtype of the metric's result. Defaults to `None`.
    """

    def __init__(self, name="label_accuracy", dtype=None):
        super().__init__(fn=label_accuracy, name=name, dtype=dtype)
        self._direction = "up"  # for callbacks that monitor it

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


def teacher_targets(teacher, x, y, batch_size=None):
    """Runs the teacher once and packs its logits next to the labels.

    The rows `[label, teacher logit 0, ..., teacher logit k-1]` (float32)
    are the targets of `DistillationLoss` and `LabelAccuracy`. They are
    computed once, so they fit a training set that stays the same from
    epoch to epoch; with augmentation, or any input that changes between
    epochs, the teacher has to see what the student sees: use
    `SCLDistiller`.

    Args:
        teacher: keras.Model. Returns logits of shape `(n, k)` for `x`.
        x: The training inputs, anything `teacher.predict` accepts with a
            length (an array, or a list/dict of arrays).
        y: Integer labels, `n` of them.
        batch_size: int or `None`. Batch size of the teacher's pass.
            Defaults to `None` (Keras' default).

    Returns:
        A float32 NumPy array of shape `(n, 1 + k)`.
    """
    check_int("batch_size", batch_size, minimum=1, allow_none=True)
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"Expected `y` to be integer labels of shape (n,). Received: y of shape {labels.shape}")
    logits = np.asarray(teacher.predict(x, batch_size=batch_size, verbose=0)).astype("float32")
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(
            f"Expected the teacher to return logits of shape ({len(labels)}, k), one row per label. "
            f"Received: teacher outputs of shape {logits.shape}"
        )
    return np.concatenate([labels.astype("float32").reshape(-1, 1), logits], axis=1)


class _NoDistiller(keras.Model):
    """Stands in for `keras.distillation.Distiller` on Keras before 3.12."""

    def __new__(cls, *args, **kwargs):
        raise ImportError(
            "Expected Keras with `keras.distillation` (3.12 or later) for keras_scl.SCLDistiller. "
            f"Received: keras {keras.__version__}. Without it, distil with keras_scl.DistillationLoss "
            "and keras_scl.teacher_targets."
        )


_Distiller = getattr(getattr(keras, "distillation", None), "Distiller", None) or _NoDistiller


@register
class SCLDistiller(_Distiller):
    """A `keras.distillation.Distiller` whose loss keeps the student's regularizers.

    `keras.distillation.Distiller.compute_loss` returns the student and
    distillation losses only, so an SCL student would lose its
    live-connection regularizer and nothing would be pruned (`SCLCallback`
    refuses a plain `Distiller` for that reason). This subclass adds the
    student's `losses` to that sum and is otherwise the `Distiller`: same
    arguments, same metrics, and `distiller.student` is the model to strip
    and ship. The teacher runs at every step, so the targets follow the
    inputs; with a fixed training set, `DistillationLoss` and
    `teacher_targets` run it once instead.

    With `distillation_losses=keras.distillation.LogitsDistillation(T,
    loss=keras.losses.KLDivergence())` and `student_loss_weight=1 - w`, the
    loss is that of `DistillationLoss(T, w)`. Pass the `KLDivergence`
    instance: up to Keras 3.15 at least, `LogitsDistillation`'s default
    `loss="kl_divergence"` applies the divergence to the scaled logits
    rather than to their softmax.

    Needs Keras 3.12 or later (`keras.distillation`); on earlier versions
    constructing one raises `ImportError`.

    Args:
        teacher: keras.Model. The trained model to learn from, without
            `SCLWrapper` layers (strip a pruned teacher with `strip_scl`);
            frozen by the `Distiller`.
        student: keras.Model. The model to prune, typically
            `prune_scl(...)` of a copy of the teacher's architecture.
        distillation_losses: A `keras.distillation.DistillationLoss`, or a
            list of them.
        distillation_loss_weights: list of floats or `None`. One weight per
            distillation loss. Defaults to `None` (all 1).
        student_loss_weight: float in [0, 1]. Weight of the loss on the
            labels; the distillation losses get `1 - student_loss_weight`.
            Defaults to `0.5`.
        name: str. Defaults to `"scl_distiller"`.
        **kwargs: Passed to `keras.Model`.

    Example:

    >>> student = keras_scl.prune_scl(teacher)
    >>> distiller = keras_scl.SCLDistiller(
    ...     teacher=teacher, student=student, student_loss_weight=0.3,
    ...     distillation_losses=keras.distillation.LogitsDistillation(
    ...         temperature=4.0, loss=keras.losses.KLDivergence()))
    >>> distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> distiller.fit(augmented_dataset, epochs=20, callbacks=[keras_scl.SCLCallback(freeze_masks_at_epoch=10)])
    >>> final = keras_scl.strip_scl(distiller.student)
    """

    def __init__(
        self,
        teacher,
        student,
        distillation_losses,
        distillation_loss_weights=None,
        student_loss_weight=0.5,
        name="scl_distiller",
        **kwargs,
    ):
        if isinstance(teacher, keras.Layer) and find_wrappers(teacher):
            # SCLCallback would count, freeze and budget the teacher's masks with the student's.
            raise ValueError(
                "Expected a teacher without SCLWrapper layers (strip a pruned teacher with "
                f"keras_scl.strip_scl). Received: teacher {teacher.name!r} with "
                f"{len(find_wrappers(teacher))} of them"
            )
        super().__init__(
            teacher=teacher,
            student=student,
            distillation_losses=distillation_losses,
            distillation_loss_weights=distillation_loss_weights,
            student_loss_weight=student_loss_weight,
            name=name,
            **kwargs,
        )
        # A budget given to `prune_scl` lives on the student; SCLCallback reads it from the model it trains.
        budget = getattr(student, "_scl_budget", None)
        if budget is not None:
            self._scl_budget = budget

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        losses = self.student.losses
        if not losses:
            return loss
        return keras.ops.add(loss, keras.ops.sum([keras.ops.cast(v, loss.dtype) for v in losses]))
