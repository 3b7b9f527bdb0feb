"""The spectrogram CNN: a small depthwise-separable network (DS-CNN, as in ARM's KWS work).

About 25k parameters at width 64: an int8 file of a few tens of KB and well under a
millisecond per utterance, so a Raspberry Pi runs it without noticing.
"""

from __future__ import annotations

import keras
from keras import layers


def _separable_block(x, channels: int, name: str):
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_pw_bn")(x)
    return layers.ReLU(name=f"{name}_pw_relu")(x)


def build_model(input_shape: tuple[int, int], n_classes: int, width: int = 64,
                dropout: float = 0.25, first_pool: tuple[int, int] = (2, 2)) -> keras.Model:
    """(frames, mels) features -> class probabilities (softmax inside, so int8 output works).

    first_pool is the (time, frequency) pooling before the first block: (2, 1) keeps every
    mel band through it, for about twice the multiply-adds and the same parameters.
    """
    inputs = keras.Input(shape=(*input_shape, 1), name="features")
    x = layers.Conv2D(width * 3 // 4, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for i, channels in enumerate((width, width * 3 // 2, width * 2)):
        x = layers.MaxPooling2D(tuple(first_pool) if i == 0 else 2, name=f"pool{i}")(x)
        x = _separable_block(x, channels, name=f"block{i}")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="digitd_dscnn")
