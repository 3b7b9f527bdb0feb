"""Google's speech_embedding as a Keras network, with the weights of openWakeWord's TFLite file.

The network (Lin et al. 2020, "Training keyword spotters with limited and synthesized speech
data", arXiv 2002.01322; Apache-2.0) was trained by Google on a very large multi-speaker
corpus; openWakeWord converted it to `embedding_model.tflite`, which the `pyopen-wakeword`
wheel on PyPI ships (Apache-2.0). Training reads the weights from that file; the daemon never
needs the package: export writes our own quantized copy into models/.

Rebuilt in Keras because (1) all its time convolutions are unpadded and its time pooling
strides multiply to the 8-frame embedding step, so one pass over a long mel sequence gives
every embedding of it at once (training embeds a 2 s window in one call, not 16), and
(2) a Keras model can be converted to int8 with our own calibration data.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

ATTRIBUTION = (
    "Speech embedding: Google's speech_embedding (Lin et al. 2020, 'Training keyword spotters "
    "with limited and synthesized speech data', arXiv:2002.01322), Apache License 2.0, "
    "as converted to TFLite by openWakeWord (David Scripka) and shipped in the pyopen-wakeword "
    "wheel (Michael Hansen, Apache License 2.0); weights re-quantized by digitd."
)

# (kind, kernel/pool (time, freq), padding, channels) in order; "conv" layers are followed by
# LeakyReLU(0.2) and max(x, -0.4) except the last. Time padding is always "valid".
ARCHITECTURE = (
    ("conv", (3, 3), "valid", 24), ("conv", (1, 3), "same", 24), ("conv", (3, 1), "valid", 24),
    ("pool", (2, 2)),
    ("conv", (1, 3), "same", 48), ("conv", (3, 1), "valid", 48),
    ("conv", (1, 3), "same", 48), ("conv", (3, 1), "valid", 48),
    ("pool", (1, 2)),
    ("conv", (1, 3), "same", 72), ("conv", (3, 1), "valid", 72),
    ("conv", (1, 3), "same", 72), ("conv", (3, 1), "valid", 72),
    ("pool", (2, 2)),
    ("conv", (1, 3), "same", 96), ("conv", (3, 1), "valid", 96),
    ("conv", (1, 3), "same", 96), ("conv", (3, 1), "valid", 96),
    ("pool", (1, 2)),
    ("conv", (1, 3), "same", 96), ("conv", (3, 1), "valid", 96),
    ("conv", (1, 3), "same", 96), ("conv", (3, 1), "valid", 96),
    ("pool", (2, 2)),
    ("conv", (3, 1), "valid", 96),
)
# The two layers a second embedding grid changes (build_embedding's `phases`), as indices
# into ARCHITECTURE: everything before the last time pooling moves in steps of 4 frames.
LAST_POOL = max(i for i, layer in enumerate(ARCHITECTURE) if layer[0] == "pool")
LAST_CONV = max(i for i, layer in enumerate(ARCHITECTURE) if layer[0] == "conv")
LEAK = 0.2
FLOOR = -0.4


class EmbeddingError(Exception):
    """The reference weights are missing or not what this code expects."""


def reference_path(name: str = "embedding_model.tflite") -> Path:
    """A file of the pyopen-wakeword wheel (training extra)."""
    try:
        return Path(str(resources.files("pyopen_wakeword").joinpath("models", name)))
    except ModuleNotFoundError as exc:
        raise EmbeddingError("the speech embedding's weights come from the pyopen-wakeword "
                             "package: pip install 'digitd[train]'") from exc


def reference_weights(path: Path | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel (time, freq, in, out), bias) of each convolution of the TFLite file, in order."""
    import tflite

    path = path or reference_path()
    buf = path.read_bytes()
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)

    def array(index: int) -> np.ndarray:
        tensor = graph.Tensors(index)
        data = model.Buffers(tensor.Buffer()).DataAsNumpy()
        return np.frombuffer(data.tobytes(), dtype=np.float32).reshape(tensor.ShapeAsNumpy())

    out = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) != tflite.BuiltinOperator.CONV_2D:
            continue
        inputs = op.InputsAsNumpy()
        out.append((array(inputs[1]).transpose(1, 2, 3, 0), array(inputs[2])))
    convs = [layer for layer in ARCHITECTURE if layer[0] == "conv"]
    shapes = [(w.shape[:2], w.shape[3]) for w, _ in out]
    if shapes != [(layer[1], layer[3]) for layer in convs]:
        raise EmbeddingError(f"{path} is not the speech embedding this code knows: {shapes}")
    return out


def build_embedding(n_mels: int = 32, frames: int | None = None, weights=None,
                    phases: int = 1):
    """Mel frames (batch, frames, n_mels, 1) -> embeddings (batch, (frames - 76) // 8 + 1, 96).
    `frames` None takes any length (training); export fixes it to one embedding.

    `phases` 2: the embeddings every 4 frames instead, (frames - 76) // 4 + 1 of them; the
    even ones are those of phases 1, the odd ones the same network's 40 ms later. Everything
    before the last time pooling moves in steps of 4 frames, so only the last pooling (stride
    1 instead of 2) and the last convolution (dilated by 2) run twice as often: the second
    grid costs almost nothing."""
    if phases not in (1, 2):
        raise ValueError(f"phases must be 1 or 2, not {phases}")
    import keras
    from keras import layers

    weights = reference_weights() if weights is None else weights
    inputs = keras.Input(shape=(frames, n_mels, 1), name="mel")
    x = layers.ZeroPadding2D(((0, 0), (1, 1)))(inputs)
    convs = iter(weights)
    n = 0
    for i, layer in enumerate(ARCHITECTURE):
        if layer[0] == "pool":
            strides = (layer[1][0] // phases, layer[1][1]) if i == LAST_POOL else layer[1]
            x = layers.MaxPooling2D(layer[1], strides, padding="valid")(x)
            continue
        kernel, bias = next(convs)
        conv = layers.Conv2D(layer[3], layer[1], padding=layer[2], name=f"embed_conv{n}",
                             dilation_rate=(phases, 1) if i == LAST_CONV else (1, 1))
        x = conv(x)
        conv.set_weights([kernel, bias])
        if i < LAST_CONV:
            x = layers.LeakyReLU(negative_slope=LEAK)(x)
            x = layers.Lambda(lambda t: keras.ops.maximum(t, FLOOR), name=f"floor{n}")(x)
        n += 1
    outputs = layers.Reshape((-1, 96), name="embedding")(x)
    model = keras.Model(inputs, outputs, name="speech_embedding")
    model.trainable = False
    return model
