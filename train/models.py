"""The classifier head: a few consecutive speech embeddings -> 0-9 or "not a digit".

Per-vector projection, two unpadded convolutions over time (a word is a short pattern of
vectors wherever it sits), the strongest response over the window, a softmax. About 30k
weights: the embedding did the hard part, and a small head on many voices generalizes
better than a big one on the same voices.
"""

from __future__ import annotations


def build_head(n_embeddings: int, dim: int, n_classes: int, width: int = 64,
               dropout: float = 0.3, input_dropout: float = 0.2):
    import keras
    from keras import layers

    inputs = keras.Input(shape=(n_embeddings, dim), name="embeddings")
    x = layers.BatchNormalization(name="scale")(inputs)  # embeddings range over +-70
    x = layers.Dropout(input_dropout, name="input_dropout")(x)
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


def build_strings(dim: int, n_tokens: int, width: int = 96, depth: int = 5,
                  dropout: float = 0.2):
    """The strings stage: any number of embeddings -> per vector, CTC scores of the blank,
    0-9 and "a word that is no digit". Same-padded convolutions over time with residual
    connections: each output hears 1 + 4 * depth vectors, a digit and its neighbours, and
    the network runs on a string of any length. Logits out: the CTC loss takes them."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(None, dim), name="embeddings")
    x = layers.BatchNormalization(name="scale")(inputs)
    x = layers.Conv1D(width, 1, activation="relu", name="project")(x)
    for k in range(depth):
        y = layers.Conv1D(width, 5, padding="same", activation="relu", name=f"time{k}")(x)
        x = layers.Add(name=f"residual{k}")([x, layers.Dropout(dropout)(y)])
    outputs = layers.Conv1D(n_tokens, 1, name="logits")(x)
    return keras.Model(inputs, outputs, name="digit_strings")


def with_softmax(model):
    """The trained strings network ending in probabilities, for export."""
    import keras

    inputs = keras.Input(shape=(None, model.input_shape[-1]), name="embeddings")
    return keras.Model(inputs, keras.layers.Softmax(name="probabilities")(model(inputs)),
                       name="digit_strings")
