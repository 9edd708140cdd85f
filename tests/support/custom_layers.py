"""A custom Keras layer, registered so that a model using it needs --custom-objects to load."""

from __future__ import annotations

import tensorflow as tf


class Scale(tf.keras.layers.Layer):
    def __init__(self, factor: float = 1.0, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):  # type: ignore[no-untyped-def]
        return inputs * self.factor

    def get_config(self):  # type: ignore[no-untyped-def]
        return {**super().get_config(), "factor": self.factor}
