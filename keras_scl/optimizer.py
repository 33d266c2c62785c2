"""`SCLOptimizer`: normalises mask gradients per feature, then delegates."""

import keras
import tensorflow as tf
from keras.src.utils import tracking

from keras_scl import normalization
from keras_scl.registration import register
from keras_scl.validation import check_number
from keras_scl.wrapper import mask_feature_axes
from keras_scl.wrapper import mask_regularizer


@register
class SCLOptimizer(keras.optimizers.Optimizer):
    """Wraps an optimizer and normalises the gradient of every mask per feature.

    For each mask variable created by an `SCLWrapper`, the gradient (task
    loss and live-connection regularizer together: the regularizer's part,
    `strength * proxy(m)`, is added here rather than by autodiff, in the
    same compiled pass) is divided by its norm over each output feature:
    one output unit of a Dense layer, one output filter of a convolution,
    one output channel of a depthwise convolution.
    Mask gradients of different features are otherwise very unbalanced.
    Gradients of all other variables pass through untouched. The result goes
    to `inner_optimizer`, which holds all optimizer state; mask variables are
    excluded from its weight decay. With `use_ema`, the weights (never the
    masks) are overwritten with their moving averages at the end of `fit`.

    A mask gradient that is not finite stops training with an
    `InvalidArgumentError` naming the mask, and no variable is updated with
    it. Inside a model compiled with XLA, where nothing can raise, the step
    is skipped instead (with `jit_compile`, the default).

    Args:
        inner_optimizer: `keras.optimizers.Optimizer`. The optimizer doing
            the updates (of every variable, unless `mask_optimizer` is set).
        mask_optimizer: `keras.optimizers.Optimizer` or `None`. If set, it
            updates the mask variables and `inner_optimizer` the rest, so
            masks can have their own optimizer and learning rate.
            Defaults to `None`.
        norm: `"rms"`, `"l2"`, `"mean_abs"`, or `None` to leave mask
            gradients as they are. Defaults to `"rms"`.
        epsilon: float. Added to the norm, so all-zero features stay zero.
            Defaults to `1e-12`.
        jit_compile: bool. Whether to compile the update (normalisation,
            non-finite check and the optimizers' steps) with XLA even when
            the model is not, which fuses its many elementwise passes over
            the weights, masks and optimizer slots. Not used under a
            distribution strategy. Set it to `False` for an inner optimizer
            that XLA cannot compile. Defaults to `True`.
        name: string. Defaults to `None`.

    Example:

    >>> optimizer = SCLOptimizer(keras.optimizers.Adam(1e-3))
    >>> model.compile(optimizer=optimizer, loss="mse")
    """

    def __init__(
        self,
        inner_optimizer,
        mask_optimizer=None,
        norm="rms",
        epsilon=1e-12,
        jit_compile=True,
        name=None,
        **kwargs,
    ):
        if kwargs:
            raise ValueError(
                "SCLOptimizer does not support arguments: "
                f"`{'`, `'.join(kwargs)}`. Set them on the `inner_optimizer`."
            )
        for arg, value in (("inner_optimizer", inner_optimizer), ("mask_optimizer", mask_optimizer)):
            if value is None and arg == "mask_optimizer":
                continue
            if isinstance(value, SCLOptimizer) or not isinstance(value, keras.optimizers.Optimizer):
                raise TypeError(
                    f"Expected `{arg}` to be a keras.optimizers.Optimizer other than "
                    f"SCLOptimizer. Received: {arg}={value!r}"
                )
            if value.use_ema and value.ema_overwrite_frequency:
                raise ValueError(
                    f"Expected `{arg}` with `ema_overwrite_frequency=None`: overwriting the "
                    "variables with their averages during training would overwrite the masks, "
                    "whose average is not a connectivity the weights were trained for (with "
                    "`use_ema`, the weights alone take their averages at the end of `fit`). "
                    f"Received: ema_overwrite_frequency={value.ema_overwrite_frequency!r}"
                )
        if norm is not None and norm not in normalization.NORMS:
            raise ValueError(
                f"Expected `norm` to be one of {normalization.NORMS} or None. "
                f"Received: norm={norm!r}"
            )
        epsilon = check_number("epsilon", epsilon, minimum=0, strict=True)
        if not isinstance(jit_compile, bool):
            raise TypeError(f"Expected `jit_compile` to be a bool. Received: jit_compile={jit_compile!r}")
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = inner_optimizer
        self.mask_optimizer = mask_optimizer
        self.norm = norm
        self.epsilon = float(epsilon)
        self.jit_compile = jit_compile

    @tracking.no_automatic_dependency_tracking
    def build(self, var_list):
        masks = [v for v in var_list if mask_feature_axes(v) is not None]
        if self.mask_optimizer is None:
            if not self.inner_optimizer.built:
                if masks and self.inner_optimizer.weight_decay:
                    self.inner_optimizer.exclude_from_weight_decay(var_list=masks)
                self.inner_optimizer.build(var_list)
        else:
            if not self.inner_optimizer.built:
                self.inner_optimizer.build([v for v in var_list if mask_feature_axes(v) is None])
            if not self.mask_optimizer.built:
                if self.mask_optimizer.weight_decay:
                    self.mask_optimizer.exclude_from_weight_decay(var_list=masks)
                self.mask_optimizer.build(masks)
        # One XLA-compiled update per list of variables updated together, in a
        # holder TensorFlow's checkpointing does not track (a plain dict would
        # be wrapped and its tuple keys refused by `tf.train.Checkpoint`).
        self._compiled_updates = _FunctionCache()
        super().build(var_list)

    @property
    def variables(self):
        variables = self._variables + self.inner_optimizer.variables
        if self.mask_optimizer is not None:
            variables += self.mask_optimizer.variables
        return variables

    def transform_gradient(self, grad, variable):
        """The gradient the inner optimizer receives for `variable`.

        A mask gradient that is not finite raises `InvalidArgumentError`
        naming the mask, before the mask can be updated with it.
        """
        axes = mask_feature_axes(variable)
        if grad is None or axes is None:
            return grad
        message = _non_finite_message(variable)
        grad = self._regularized(grad, variable)
        return self._normalize(grad, axes, lambda t: tf.debugging.check_numerics(t, message))

    @staticmethod
    def _regularized(grad, variable):
        """`grad` plus the gradient of the mask's live-connection regularizer, if it has one."""
        regularizer = mask_regularizer(variable)
        if regularizer is None:
            return grad
        grad = tf.convert_to_tensor(grad)
        return grad + tf.cast(regularizer.gradient(variable), grad.dtype)

    def _normalize(self, grad, axes, check):
        """`grad` normalised per feature; `check` sees the norms (or, unnormalised, `grad`)."""
        grad = tf.convert_to_tensor(grad)
        if self.norm is None:
            return check(grad)
        return normalization.normalize_per_feature(grad, axes, self.norm, self.epsilon, check_norms=check)

    def _transform_all(self, grads, variables):
        masks = [
            i for i, (g, v) in enumerate(zip(grads, variables))
            if g is not None and mask_feature_axes(v) is not None
        ]
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if self.norm is None or not masks or replicas == 1:
            return [self.transform_gradient(g, v) for g, v in zip(grads, variables)]
        # Under a distribution strategy each replica holds part of the
        # gradient, and normalising is not linear: normalise the summed
        # gradient, then hand each replica 1/replicas of it for the inner
        # optimizer's own all-reduce (a sum) to restore.
        summed = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, [tf.convert_to_tensor(grads[i]) for i in masks]
        )
        for i, g in zip(masks, summed):
            grads[i] = self.transform_gradient(g, variables[i]) / replicas
        return grads

    def apply(self, grads, trainable_variables=None):
        if not self.built:
            with keras.src.backend.name_scope(self.name, caller=self):
                self.build(trainable_variables)
            self.built = True
        variables = list(
            trainable_variables if trainable_variables is not None else self._trainable_variables
        )
        grads = list(grads)
        # A mask the loss does not reach still has its regularizer's gradient.
        for i, (g, v) in enumerate(zip(grads, variables)):
            if g is None and mask_regularizer(v) is not None and v.trainable:
                grads[i] = tf.zeros(v.shape, v.dtype)
        if self.jit_compile and not tf.distribute.has_strategy():
            non_finite = self._compiled_update(variables, trainable_variables is None)(grads)
            # XLA cannot raise: the compiled update skips the step, and
            # raising is left to these checks, which run after it.
            for i, value in non_finite.items():
                tf.debugging.check_numerics(value, _non_finite_message(variables[i]))
            return
        self._apply_inner(self._transform_all(grads, variables), variables, trainable_variables)

    def _compiled_update(self, variables, own_variables):
        """The update of `variables` as one XLA-compiled function of the gradients.

        It returns, for each mask with a gradient, a scalar that is finite
        exactly when that gradient is, and updates nothing unless all are.
        """
        key = (tuple(id(v) for v in variables), own_variables)
        if key not in self._compiled_updates.functions:

            def update(grads):
                grads = list(grads)
                non_finite = {}
                for i, (g, v) in enumerate(zip(grads, variables)):
                    axes = mask_feature_axes(v)
                    if g is None or axes is None:
                        continue

                    def check(t, i=i):
                        # The sum of the non-finite entries: NaN or infinite if
                        # there is any, else 0, whatever the size of the others.
                        non_finite[i] = tf.reduce_sum(tf.where(tf.math.is_finite(t), tf.zeros_like(t), t))
                        return t

                    grads[i] = self._normalize(self._regularized(g, v), axes, check)
                trainable = None if own_variables else variables
                if not non_finite:
                    self._apply_inner(grads, variables, trainable)
                    return non_finite
                finite = tf.reduce_all(tf.math.is_finite(tf.stack(list(non_finite.values()))))
                tf.cond(finite, lambda: self._apply_inner(grads, variables, trainable), lambda: None)
                return non_finite

            self._compiled_updates.functions[key] = tf.function(update, jit_compile=True, autograph=False)
        return self._compiled_updates.functions[key]

    def _apply_inner(self, grads, variables, trainable_variables):
        """Hands the transformed gradients to the inner (and mask) optimizer."""
        if self.mask_optimizer is None:
            self.inner_optimizer.apply(grads, trainable_variables=trainable_variables)
            return
        is_mask = [mask_feature_axes(v) is not None for v in variables]
        weight_pairs = [(g, v) for g, v, m in zip(grads, variables, is_mask) if not m]
        mask_pairs = [(g, v) for g, v, m in zip(grads, variables, is_mask) if m]
        if weight_pairs:
            self.inner_optimizer.apply(*map(list, zip(*weight_pairs)))
        if mask_pairs:
            self.mask_optimizer.apply(*map(list, zip(*mask_pairs)))

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        raise NotImplementedError("SCLOptimizer supports the TensorFlow backend only.")

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    def scale_loss(self, loss):
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list):
        """With `use_ema`, overwrites the weights (never the masks) with their averages.

        Masks keep the values training left them with: an average of mask
        values is not a connectivity the weights were trained for. The
        averages are paired with the variables the optimizers were built
        with, which need not be `var_list` (frozen masks leave it); only
        variables in `var_list` are overwritten.
        """
        wanted = {id(v) for v in var_list}
        for optimizer in (self.inner_optimizer, self.mask_optimizer):
            if optimizer is None or not optimizer.use_ema:
                continue
            for variable, average in zip(
                optimizer._trainable_variables, optimizer._model_variables_moving_average
            ):
                if average is not None and mask_feature_axes(variable) is None and id(variable) in wanted:
                    variable.assign(average)

    def get_config(self):
        return {
            "name": self.name,
            "inner_optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
            "mask_optimizer": (
                None
                if self.mask_optimizer is None
                else keras.saving.serialize_keras_object(self.mask_optimizer)
            ),
            "norm": self.norm,
            "epsilon": self.epsilon,
            "jit_compile": self.jit_compile,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(
            config.pop("inner_optimizer"), custom_objects=custom_objects
        )
        mask = config.pop("mask_optimizer", None)
        if mask is not None:
            mask = keras.saving.deserialize_keras_object(mask, custom_objects=custom_objects)
        return cls(inner, mask, **config)


def _non_finite_message(variable):
    return (
        f"Non-finite gradient for mask variable {variable.path!r}; masks are not updated "
        "with it. Lower the learning rate, or use a LossScaleOptimizer under float16"
    )


class _FunctionCache:
    """Compiled functions by key, out of sight of TensorFlow's checkpointing."""

    def __init__(self):
        self.functions = {}
