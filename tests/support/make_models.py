"""Save small real models in every supported form. Runs *inside* a target TF environment.

usage: python make_models.py OUTDIR
Writes: dense.h5, dense.keras, dense_savedmodel/, dense_otherweights.h5 (same architecture, other
weights), custom.h5 and custom_seq.keras (need a custom layer from custom_layers.py), lambda.h5,
lambda.keras and lambda_savedmodel/ (a Lambda layer holding Python code: the Keras formats need unsafe
deserialization), truncated.h5 (the first half of dense.h5), cnn.keras (a small CNN),
cnn_hard_sigmoid.keras (the same CNN with a hard_sigmoid convolution: Keras 3 changed hard_sigmoid's
slope from 0.2 to 1/6, so a Keras 2 model computes other numbers under Keras 3 on any CPU).
"""

from __future__ import annotations

import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import tensorflow as tf
from custom_layers import Scale

keras = tf.keras
KERAS3 = (
    int(getattr(keras, "__version__", "2").split(".")[0]) >= 3 if hasattr(keras, "__version__") else False
)


def dense(seed: int) -> "keras.Model":
    tf.random.set_seed(seed)
    np.random.seed(seed)
    inputs = keras.Input((8,), name="features")
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(hidden)
    return keras.Model(inputs, outputs, name="dense")


def cnn(seed: int, activation: str, name: str) -> "keras.Model":
    """A small CNN on 16x16 images; `activation` is its convolution's."""
    tf.random.set_seed(seed)
    return keras.Sequential(
        [
            keras.Input((16, 16, 1), name="image"),
            keras.layers.Conv2D(4, 3, activation=activation),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name=name,
    )


def export_savedmodel(model: "keras.Model", path: str) -> None:
    if hasattr(model, "export"):
        model.export(path)
    else:
        tf.saved_model.save(model, path)


def main(outdir: str) -> None:
    os.makedirs(outdir, exist_ok=True)
    model = dense(1)
    model.save(os.path.join(outdir, "dense.h5"))
    if KERAS3 or hasattr(keras.saving, "save_model"):
        model.save(os.path.join(outdir, "dense.keras"))
    export_savedmodel(model, os.path.join(outdir, "dense_savedmodel"))
    dense(2).save(os.path.join(outdir, "dense_otherweights.h5"))

    inputs = keras.Input((4,), name="x")
    keras.Model(inputs, Scale(3.0, name="scale")(inputs)).save(os.path.join(outdir, "custom.h5"))

    custom_seq = keras.Sequential(
        [keras.Input((4,), name="x"), Scale(2.0, name="scale"), keras.layers.Dense(2)]
    )
    custom_seq.save(os.path.join(outdir, "custom_seq.keras"))

    inputs = keras.Input((4,), name="x")
    lam = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs))
    lam.save(os.path.join(outdir, "lambda.keras"))
    lam.save(os.path.join(outdir, "lambda.h5"))
    export_savedmodel(lam, os.path.join(outdir, "lambda_savedmodel"))

    cnn(3, "relu", "cnn").save(os.path.join(outdir, "cnn.keras"))
    cnn(4, "hard_sigmoid", "cnn_hard_sigmoid").save(os.path.join(outdir, "cnn_hard_sigmoid.keras"))

    with open(os.path.join(outdir, "dense.h5"), "rb") as handle:
        data = handle.read()
    with open(os.path.join(outdir, "truncated.h5"), "wb") as handle:
        handle.write(data[: len(data) // 2])
    shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "custom_layers.py"), outdir)


if __name__ == "__main__":
    main(sys.argv[1])
