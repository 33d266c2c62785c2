"""`SCLWrapper`: a layer whose prunable weights are used as `w * H(m)`."""

import contextlib

import keras

from keras_scl import prunable
from keras_scl import step
from keras_scl.regularizer import LiveConnections
from keras_scl.regularizer import check_strength
from keras_scl.regularizer import note_live_count
from keras_scl.registration import register
from keras_scl.validation import check_number

DEFAULT_STRENGTH = 1e-5
DEFAULT_INITIAL_MASK = 0.05

# Set on every mask variable; the optimizer reads it to normalise per feature.
_FEATURE_AXES_ATTR = "_scl_feature_axes"


def mask_feature_axes(variable):
    """The feature axes of a mask variable, or `None` for any other variable."""
    return getattr(variable, _FEATURE_AXES_ATTR, None)


def mask_regularizer(variable):
    """The regularizer of a mask variable whose gradient the optimizer adds
    (a `LiveConnections` whose value carries none), or `None`."""
    regularizer = getattr(variable, "regularizer", None)
    if mask_feature_axes(variable) is None or not isinstance(regularizer, LiveConnections):
        return None
    return None if regularizer.differentiable else regularizer


def _check_initial_mask(initial_mask):
    return check_number(
        "initial_mask", initial_mask, minimum=0, strict=True,
        reason=", so that training starts from the dense network",
    )


def _unique_names(variables):
    """Names for masks: the variable name (`kernel`), or as many trailing
    components of its path as make the names unique (`query_kernel`)."""
    paths = [v.path.split("/") for v in variables]
    for k in range(1, max(len(p) for p in paths) + 1):
        names = ["_".join(part.lstrip("_") for part in p[-k:]) for p in paths]
        if len(set(names)) == len(names):
            return names
    return [f"{name}_{i}" for i, name in enumerate(names)]


@contextlib.contextmanager
def _substituted(mapping):
    """Reads of the mapped variables return the given tensors inside the scope.

    Composes with an enclosing `StatelessScope`: its substitutions stay
    visible, and updates made inside flow back to it.
    """
    outer = keras.src.backend.get_stateless_scope()
    with keras.StatelessScope(state_mapping=mapping) as scope:
        if outer is not None:
            own = set(scope.state_mapping)
            for key, value in outer.state_mapping.items():
                scope.state_mapping.setdefault(key, value)
        yield
    if outer is not None:
        for key, value in scope.state_mapping.items():
            if key not in own:
                outer.state_mapping[key] = value


@register
class SCLWrapper(keras.layers.Wrapper):
    """Learns the sparse connectivity of a layer with trainable masks.

    Every prunable weight `w` of the wrapped layer (a Dense or convolution
    kernel, an embedding table, ...) gets a trainable mask variable `m` of the
    same shape, named `<weight>_mask` and initialised to `initial_mask > 0`,
    so training starts from the dense layer. The wrapped layer computes with
    `w * H(m)`, `H` the unit step, without overwriting `w`: a pruned weight
    stays in `w` (and by default goes on learning) and comes back if its
    mask turns positive again. Biases are not masked. The backward pass
    uses a straight-through estimator for `dH/dm`, and every mask carries a
    `LiveConnections(strength)` regularizer, so `model.fit` minimises
    `loss + strength * live connections`. The regularizer's gradient is
    added to the mask gradients by `SCLOptimizer` (which `SCLCallback` puts
    in place), not by autodiff: train with it.

    Args:
        layer: `keras.layers.Layer`. The layer to prune; one of the types
            listed by `keras_scl.supported_layers()`.
        ste: Straight-through estimator: `"identity"`, `"leaky_relu"`,
            `"softplus"`, a `StraightThroughEstimator` or a callable proxy.
            Defaults to `"identity"`.
        strength: float. Regularization factor per live connection, >= 0,
            in the units of the loss: the default suits a mean-reduced loss
            such as Keras' cross-entropies; for a loss `C` times larger
            (`reduction="sum"`, `loss_weights`), multiply it by `C`.
            Defaults to `1e-5`.
        initial_mask: float. Initial value of every mask variable, > 0.
            Defaults to `0.05`.
        update_pruned_weights: bool. Whether a pruned weight (mask off) goes
            on receiving the gradient of the loss as if it were live, as in
            Dynamic Network Surgery. Its mask's gradient, `w * dL/d(w H(m))`,
            then follows the weight: a connection pruned while its weight
            was on its way to the other sign comes back once the weight has
            crossed, instead of being pushed further down for good. With
            `False` a pruned weight keeps the value it had when its mask
            went off. Predictions are the same either way. Defaults to
            `True`.
        **kwargs: Base layer keyword arguments, such as `name`.

    Example:

    >>> layer = SCLWrapper(keras.layers.Dense(4))
    >>> y = layer(np.ones((2, 3)))
    >>> [w.name for w in layer.trainable_weights]
    ['kernel', 'bias', 'kernel_mask']
    """

    def __init__(
        self,
        layer,
        ste="identity",
        strength=DEFAULT_STRENGTH,
        initial_mask=DEFAULT_INITIAL_MASK,
        update_pruned_weights=True,
        **kwargs,
    ):
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(
                "Expected `layer` to be a keras.layers.Layer. "
                f"Received: layer={layer!r} of type {type(layer).__name__}"
            )
        if isinstance(layer, SCLWrapper):
            raise ValueError(
                "Expected a layer that is not already an SCLWrapper. "
                f"Received: layer={layer.name!r}, which is already wrapped"
            )
        if not prunable.is_prunable(layer):
            raise ValueError(
                f"Expected a layer of a supported type ({', '.join(prunable.supported_layer_names())}) "
                "or one with a `get_prunable_weights()` method. "
                f"Received: layer={layer.name!r} of type {type(layer).__name__}"
            )
        kwargs.setdefault("name", f"scl_{layer.name}")
        # The wrapper reads raw float32 weights; the inner layer autocasts.
        kwargs["autocast"] = False
        super().__init__(layer, **kwargs)
        self.ste = step.get(ste)
        self.strength = check_strength(strength)
        self.initial_mask = _check_initial_mask(initial_mask)
        if not isinstance(update_pruned_weights, bool):
            raise TypeError(
                "Expected `update_pruned_weights` to be a bool. "
                f"Received: update_pruned_weights={update_pruned_weights!r}"
            )
        self.update_pruned_weights = update_pruned_weights
        self.masks = []

    def build(self, input_shape=None):
        if not self.layer.built:
            if input_shape is None:
                raise ValueError(
                    f"Expected a built layer or an input shape to build {self.layer.name!r}. "
                    "Received: an unbuilt layer and input_shape=None"
                )
        super().build(input_shape)
        # The current regularization factor: starts at `strength`, and is
        # saved with the weights because budget mode adjusts it.
        self.strength_variable = self.add_weight(
            name="strength",
            shape=(),
            initializer=keras.initializers.Constant(self.strength),
            dtype="float32",
            trainable=False,
            autocast=False,
        )
        # Its gradient is added by `SCLOptimizer`, in the same pass as the
        # normalisation, instead of through autodiff.
        regularizer = LiveConnections(self.strength_variable, ste=self.ste, differentiable=False)
        specs = prunable.prunable_weights(self.layer)
        self._masked_weights = []
        self.masks = []
        for spec, name in zip(specs, _unique_names([s.variable for s in specs])):
            mask = self.add_weight(
                name=f"{name}_mask",
                shape=spec.variable.shape,
                initializer=keras.initializers.Constant(self.initial_mask),
                dtype="float32",
                trainable=True,
                regularizer=regularizer,
                autocast=False,
            )
            setattr(mask, _FEATURE_AXES_ATTR, spec.feature_axes)
            self._masked_weights.append(spec.variable)
            self.masks.append(mask)
        self.built = True

    @property
    def masked_weights(self):
        """Pairs `(weight, mask)` of the wrapped layer."""
        return list(zip(self._masked_weights, self.masks))

    def effective_weights(self):
        """The tensors `w * H(m)` the wrapped layer computes with."""
        effective = []
        for w, m in self.masked_weights:
            product, live = step.masked_weight_and_live(
                w.value, m.value, self.ste, update_pruned=self.update_pruned_weights
            )
            # The mask's regularizer, called later in the same trace, takes
            # this count instead of computing `H(m)` a second time.
            note_live_count(m, live)
            effective.append(product)
        return effective

    def call(self, inputs, *args, **kwargs):
        mapping = list(zip(self._masked_weights, self.effective_weights()))
        with _substituted(mapping):
            return self.layer(inputs, *args, **kwargs)

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "ste": step.serialize(self.ste),
                "strength": self.strength,
                "initial_mask": self.initial_mask,
                "update_pruned_weights": self.update_pruned_weights,
            }
        )
        config.pop("autocast", None)
        return config


def find_wrappers(model):
    """All `SCLWrapper`s in a layer or model, nested models included, once each."""
    if isinstance(model, SCLWrapper):
        return [model]
    found, seen = [], set()
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, SCLWrapper) and id(layer) not in seen:
            seen.add(id(layer))
            found.append(layer)
    return found
