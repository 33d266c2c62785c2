"""One decorator that makes a keras_scl class loadable without `custom_objects`."""

import keras

PACKAGE = "keras_scl"


def register(cls):
    """Registers `cls` with Keras serialization under the `keras_scl` package.

    Saved models refer to the class as `keras_scl>ClassName`, so
    `keras.saving.load_model` finds it once `keras_scl` is imported.
    """
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)
