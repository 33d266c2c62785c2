"""Wrapping a model for SCL (`prune_scl`) and baking the masks in (`strip_scl`)."""

import keras
import numpy as np

from keras_scl import budget
from keras_scl import prunable
from keras_scl.wrapper import SCLWrapper
from keras_scl.wrapper import find_wrappers


def _copy_layer(layer):
    """A fresh layer with the same config and weights, so the user's model is never shared."""
    if not isinstance(layer, keras.layers.Layer):
        return layer  # a stateless operation such as `x + y` in a Functional model
    clone = layer.__class__.from_config(layer.get_config())
    if layer.built:
        build_config = layer.get_build_config()
        if build_config:
            clone.build_from_config(build_config)
        clone.set_weights(layer.get_weights())
    return clone


def _clone(model, clone_function):
    """`keras.models.clone_model`, returning an uncompiled model.

    Keras compiles a clone with its source's compile config; a stripped model
    would then carry the `SCLOptimizer`, and an unregistered optimizer would
    not deserialize at all. The source's `compiled` flag is lowered for the
    duration of the clone only.
    """
    compiled = getattr(model, "compiled", False)
    model.compiled = False
    try:
        return keras.models.clone_model(model, clone_function=clone_function)
    finally:
        model.compiled = compiled


def _is_model(obj):
    return isinstance(obj, keras.Model)


def _check_clonable(model, action):
    if not isinstance(model, (keras.Sequential, keras.src.models.Functional)):
        raise ValueError(
            f"Expected a keras.layers.Layer, a Sequential or a Functional model to {action}. "
            f"Received: a subclassed model {model.name!r} of type {type(model).__name__}; "
            "wrap its layers with keras_scl.SCLWrapper where the model builds them"
        )


def _excluded_predicate(exclude):
    if exclude is None:
        return lambda layer: False
    if callable(exclude):
        return exclude
    if isinstance(exclude, str):
        exclude = [exclude]
    try:
        names = set(exclude)
    except TypeError:
        raise TypeError(
            "Expected `exclude` to be a layer name, a list of layer names or a "
            f"callable `layer -> bool`. Received: exclude={exclude!r}"
        ) from None
    if not all(isinstance(n, str) for n in names):
        raise TypeError(
            "Expected `exclude` to be a layer name, a list of layer names or a "
            f"callable `layer -> bool`. Received: exclude={exclude!r}"
        )
    return lambda layer: layer.name in names


def prune_scl(to_prune, exclude=None, target_sparsity=None, target_flops=None, **wrapper_options):
    """Makes a layer or a model learn its own sparse connectivity.

    Like `tfmot.sparsity.keras.prune_low_magnitude`: a model is cloned and
    every supported layer of the clone is wrapped in an `SCLWrapper`; other
    layers (pooling, normalisation, ...) are copied as they are. The clone
    starts with the same weights as `to_prune`, which is never modified.
    Layers already wrapped are not wrapped twice; nested models are pruned
    recursively.

    Args:
        to_prune: A `keras.layers.Layer` of a supported type, or a
            Sequential or Functional model.
        exclude: Layers to leave dense: a layer name, a list of names, or a
            callable `layer -> bool`. Defaults to `None` (prune everything
            supported).
        target_sparsity: float in (0, 1) or `None`. Budget mode for a
            model: `SCLCallback` steers the training to this global
            sparsity and meets it when the masks freeze (the same as
            `SCLCallback(target_sparsity=...)`, which takes precedence).
            The budget is a training setting: it is not saved with the
            model. Defaults to `None` (SCL chooses the sparsity).
        target_flops: number or `None`. The same with a budget of FLOPs per
            example (see `sparsity_report`). Defaults to `None`.
        **wrapper_options: Passed to every `SCLWrapper`: `ste`, `strength`,
            `initial_mask`, `update_pruned_weights`.

    Returns:
        An `SCLWrapper` for a layer, or a new, uncompiled model of the same
        kind.

    Example:

    >>> pruned = keras_scl.prune_scl(model, exclude=["classifier"])
    >>> pruned = keras_scl.prune_scl(model, target_sparsity=0.95)
    """
    budget.check_budget(target_sparsity, target_flops)
    has_budget = target_sparsity is not None or target_flops is not None
    if has_budget and not _is_model(to_prune):
        raise ValueError(
            "Expected a model with `target_sparsity` / `target_flops`: a budget is global. "
            f"Received: to_prune of type {type(to_prune).__name__}"
        )
    if _is_model(to_prune):
        _check_clonable(to_prune, "prune")
        is_excluded = _excluded_predicate(exclude)
        # Validate the options once, before any cloning.
        SCLWrapper(keras.layers.Dense(1), **wrapper_options)

        def clone(layer):
            if _is_model(layer):
                return prune_scl(layer, exclude=exclude, **wrapper_options)
            if isinstance(layer, SCLWrapper):
                return _copy_layer(layer)
            copy = _copy_layer(layer)
            if prunable.is_prunable(layer) and not is_excluded(layer):
                return SCLWrapper(copy, **wrapper_options)
            return copy

        pruned = _clone(to_prune, clone)
        if not find_wrappers(pruned):
            raise ValueError(
                "Expected a model with at least one layer of a supported type "
                f"({', '.join(prunable.supported_layer_names())}) that is not excluded. "
                f"Received: model {to_prune.name!r} with layers "
                f"{[layer.__class__.__name__ for layer in to_prune.layers]}"
            )
        if has_budget:
            pruned._scl_budget = (target_sparsity, target_flops)
        return pruned
    if isinstance(to_prune, SCLWrapper):
        return to_prune
    if isinstance(to_prune, keras.layers.Layer):
        return SCLWrapper(to_prune, **wrapper_options)
    raise TypeError(
        "Expected `to_prune` to be a keras.layers.Layer or a keras.Model. "
        f"Received: to_prune={to_prune!r} of type {type(to_prune).__name__}"
    )


def _stripped_layer(wrapper):
    layer = _copy_layer(wrapper.layer)
    masked = {id(w): eff for (w, _), eff in zip(wrapper.masked_weights, wrapper.effective_weights())}
    values = [
        np.asarray(masked[id(w)]) if id(w) in masked else w.numpy() for w in wrapper.layer.weights
    ]
    layer.set_weights(values)
    return layer


def strip_scl(model):
    """Replaces every `SCLWrapper` by its layer with `w * H(m)` baked in.

    The result is plain Keras: no keras_scl object, mask or regularizer is
    left in it, pruned weights are exact zeros, and its predictions equal
    those of the wrapped model in inference mode. `model` is not modified.

    Args:
        model: An `SCLWrapper`, or a Sequential or Functional model that
            contains at least one.

    Returns:
        The inner layer with masked weights, or a new model.
    """
    if isinstance(model, SCLWrapper):
        return _stripped_layer(model)
    if not _is_model(model):
        raise TypeError(
            "Expected an SCLWrapper or a keras.Model to strip. "
            f"Received: model={model!r} of type {type(model).__name__}"
        )
    _check_clonable(model, "strip")
    if not find_wrappers(model):
        raise ValueError(
            "Expected a model containing SCLWrapper layers to strip. "
            f"Received: model {model.name!r}, which has none (was it already stripped?)"
        )

    def clone(layer):
        if isinstance(layer, SCLWrapper):
            return _stripped_layer(layer)
        if _is_model(layer) and find_wrappers(layer):
            return strip_scl(layer)
        return _copy_layer(layer)

    return _clone(model, clone)
