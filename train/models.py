"""The classifier head: a few consecutive speech embeddings -> 0-9 or "not a digit".

Per-vector projection, two unpadded convolutions over time (a word is a short pattern of
vectors wherever it sits), the strongest response over the window, a softmax. About 30k
weights: the embedding did the hard part, and a small head on many voices generalizes
better than a big one on the same voices.
"""

from __future__ import annotations


def build_head(n_embeddings: int, dim: int, n_classes: int, width: int = 64,
               dropout: float = 0.3):
    import keras
    from keras import layers

    inputs = keras.Input(shape=(n_embeddings, dim), name="embeddings")
    x = layers.BatchNormalization(name="scale")(inputs)  # embeddings range over +-70
    x = layers.Conv1D(width, 1, activation="relu", name="project")(x)
    x = layers.Conv1D(width, 3, activation="relu", name="time1")(x)
    x = layers.Conv1D(width, 3, activation="relu", name="time2")(x)
    x = layers.GlobalMaxPooling1D(name="pool")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="digit_head")


def average_heads(heads: list, n_embeddings: int, dim: int):
    """Heads trained from different seeds, their probabilities averaged in one network: one
    file, one call. Three heads cost nothing beside the embedding and err less alike."""
    import keras

    if len(heads) == 1:
        return heads[0]
    named = [keras.Model(h.inputs[0], h.outputs[0], name=f"digit_head_{k}")
             for k, h in enumerate(heads)]
    inputs = keras.Input(shape=(n_embeddings, dim), name="embeddings")
    outputs = keras.layers.Average(name="probabilities")([h(inputs) for h in named])
    return keras.Model(inputs, outputs, name="digit_heads")
