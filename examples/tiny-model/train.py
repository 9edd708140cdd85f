"""Train a tiny classifier on synthetic data and save it as model.keras and model.h5 (seconds on a CPU)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

keras = tf.keras
keras.utils.set_random_seed(7)

rng = np.random.default_rng(7)
x = rng.standard_normal((2048, 16)).astype("float32")
y = (x[:, :4].sum(axis=1) > 0).astype("int64") + (x[:, 4] > 1).astype("int64")

model = keras.Sequential(
    [
        keras.Input((16,), name="features"),
        keras.layers.Normalization(name="normalize", mean=0.0, variance=1.0),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(3, activation="softmax", name="probs"),
    ]
)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=5, batch_size=64, verbose=0)
print("accuracy on the training data: %.3f" % model.evaluate(x, y, verbose=0)[1])
model.save("model.keras")
model.save("model.h5")
