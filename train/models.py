"""The spectrogram CNN: a small depthwise-separable network (DS-CNN, as in ARM's KWS work).

About 25k parameters at width 64: an int8 file of a few tens of KB and well under a
millisecond per utterance, so a Raspberry Pi runs it without noticing. A BC-ResNet in its
place (README, trials: 96 KB at tau 2) came out 5 points behind on a held-out speaker.
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


def _tower(inputs, n_classes: int, width: int, dropout: float, first_pool: tuple[int, int],
           prefix: str = ""):
    x = layers.Conv2D(width * 3 // 4, 3, padding="same", use_bias=False,
                      name=f"{prefix}stem")(inputs)
    x = layers.BatchNormalization(momentum=0.9, name=f"{prefix}stem_bn")(x)
    x = layers.ReLU(name=f"{prefix}stem_relu")(x)
    for i, channels in enumerate((width, width * 3 // 2, width * 2)):
        x = layers.MaxPooling2D(tuple(first_pool) if i == 0 else 2, name=f"{prefix}pool{i}")(x)
        x = _separable_block(x, channels, name=f"{prefix}block{i}")
    x = layers.GlobalAveragePooling2D(name=f"{prefix}gap")(x)
    x = layers.Dropout(dropout, name=f"{prefix}dropout")(x)
    return layers.Dense(n_classes, activation="softmax", name=f"{prefix}probabilities")(x)


def tower_name(i: int) -> str:
    return f"t{i}_"


def build_model(input_shape: tuple[int, int], n_classes: int, width: int = 64,
                dropout: float = 0.25, first_pool: tuple[int, int] = (2, 2),
                towers: int = 1) -> keras.Model:
    """(frames, mels) features -> class probabilities (softmax inside, so int8 output works).

    first_pool is the (time, frequency) pooling before the first block: (2, 1) keeps every
    mel band through it, for about twice the multiply-adds and the same parameters.
    towers > 1 builds that many copies of the network side by side on the same input, each
    initialized apart, and averages their probabilities: an ensemble in one model file.
    training_outputs() gives each tower's own output, so each learns on its own loss.
    """
    if towers < 1:
        raise ValueError(f"towers must be at least 1, got {towers}")
    inputs = keras.Input(shape=(*input_shape, 1), name="features")
    if towers == 1:
        outputs = _tower(inputs, n_classes, width, dropout, first_pool)
    else:
        outputs = layers.Average(name="probabilities")(
            [_tower(inputs, n_classes, width, dropout, first_pool, tower_name(i))
             for i in range(towers)])
    return keras.Model(inputs, outputs, name="digitd_dscnn")


class GradientReversal(layers.Layer):
    """Identity forward; backward multiplies the gradient by -strength (Ganin and Lempitsky
    2015). `strength` is a variable, so training can ramp it up between epochs."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.strength = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                        name="strength")

    def call(self, x):
        import tensorflow as tf  # training runs the TensorFlow backend

        strength = tf.convert_to_tensor(self.strength)

        @tf.custom_gradient
        def reverse(t):
            return tf.identity(t), lambda dy: -strength * dy

        return reverse(x)


def with_voice_head(model: keras.Model, n_classes: int) -> keras.Model:
    """`model` plus a second output, p(the voice is a recorded person, not a synthesizer),
    read from the pooled features through a gradient reversal. The head learns to tell the
    two apart; the network below it is pushed to make them indistinguishable, so the digit
    and unknown decisions cannot lean on "synthetic voice" (train.py; the exported model is
    `model` alone).

    The head also sees the example's target class: synthetic voices say most of the non-digit
    words and recorded people most of the digits, and aligning the two voices' features as a
    whole would pull recorded digits towards synthetic non-digit words. Within a class, it
    only hides which kind of voice spoke.
    """
    target = keras.Input(shape=(n_classes,), name="target")
    pooled = GradientReversal(name="voice_reversal")(model.get_layer("gap").output)
    x = layers.Concatenate(name="voice_input")([pooled, target])
    x = layers.Dense(32, activation="relu", name="voice_hidden")(x)
    voice = layers.Dense(1, activation="sigmoid", name="voice")(x)
    return keras.Model([*model.inputs, target], [model.outputs[0], voice],
                       name="digitd_adversarial")


def masked_voice_loss(y_true, y_pred):
    """Binary cross-entropy of the voice head, zero where the target is -1 (not speech)."""
    from keras import ops

    target = ops.reshape(ops.cast(y_true, "float32"), (-1,))
    p = ops.clip(ops.reshape(y_pred, (-1,)), 1e-6, 1.0 - 1e-6)
    known = ops.cast(target >= 0, "float32")
    target = ops.maximum(target, 0.0)
    return known * -(target * ops.log(p) + (1.0 - target) * ops.log(1.0 - p))


def training_outputs(model: keras.Model, towers: int) -> keras.Model:
    """The model to fit: each tower's probabilities as an output of its own (sharing the
    weights of `model`), so the towers do not learn to lean on one another's mistakes as
    they would through the average."""
    if towers == 1:
        return model
    return keras.Model(model.inputs,
                       [model.get_layer(f"{tower_name(i)}probabilities").output
                        for i in range(towers)], name="digitd_towers")
