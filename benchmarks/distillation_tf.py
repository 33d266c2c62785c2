"""The recipe's distillation loss in plain TensorFlow, for the Keras 2 (tfmot) process.

keras_scl cannot be imported under Keras 2, so `tfmot_baseline.py` computes
the loss of `keras_scl.DistillationLoss` with this function instead; a test
checks that the two agree on random numbers.
"""

import tensorflow as tf


def distillation_loss(y_true, y_pred, temperature, weight):
    """Per-example `(1 - weight) * CE(label, z) + weight * T**2 * KL(softmax(v / T) || softmax(z / T))`.

    Args:
        y_true: `[label, teacher logits...]` rows, shape `(batch, 1 + k)`
            (`keras_scl.teacher_targets`).
        y_pred: the student's logits `z`, shape `(batch, k)`.
        temperature: float > 0, `T`.
        weight: float in [0, 1]. Weight of the KL term.

    Returns:
        The loss of every example, shape `(batch,)`.
    """
    y_pred = tf.convert_to_tensor(y_pred)
    y_true = tf.cast(y_true, y_pred.dtype)
    labels, teacher = tf.cast(y_true[:, 0], tf.int32), y_true[:, 1:]
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=y_pred)
    t = temperature
    kl = tf.reduce_sum(
        tf.nn.softmax(teacher / t, axis=-1) * (tf.nn.log_softmax(teacher / t, axis=-1) - tf.nn.log_softmax(y_pred / t, axis=-1)),
        axis=-1,
    )
    return (1.0 - weight) * ce + weight * t * t * kl
