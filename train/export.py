"""Keras -> int8 TFLite files and the metadata JSON beside them (the "freeze" stage).

Every stage is converted to full integer (int8 in and out) with representative data from
the training material; the runtime reads each file's scale and zero point and quantizes
itself. Evaluation compares these files with the float networks on held-out speakers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from digitd.daemon.model import (
    MODEL_FILENAME,
    DigitClassifier,
    ModelMetadata,
    RejectionRule,
)

from .embedding import build_embedding

EMBEDDING_FILENAME = "digitd-embedding.tflite"
HEAD_FILENAME = "digitd-head.tflite"
STRINGS_FILENAME = "digitd-strings.tflite"
# The head looks at each word on two 80 ms embedding grids 40 ms apart and averages: fewer
# digits missed at the same false accepts, for a second pass of one cheap layer.
EMBEDDING_PHASES = 2


def to_int8_tflite(model, representative: np.ndarray) -> bytes:
    import tensorflow as tf

    def samples():
        for row in representative[:400]:
            yield [row[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def embedding_tflite(mels: np.ndarray, phases: int = EMBEDDING_PHASES) -> bytes:
    """The speech embedding over any number of mel frames, int8 (a free time dimension: one
    vector per 8 // phases frames). mels: representative (n, frames, n_mels), e.g. whole
    windows."""
    return to_int8_tflite(build_embedding(mels.shape[2], phases=phases), mels[..., None])


def strings_tflite(model, representative: list[np.ndarray]) -> bytes:
    """The strings network (softmax added) over any number of vectors, int8; representative:
    embedding sequences of strings."""
    from .models import with_softmax

    lengths = [len(r) for r in representative]
    n = max(set(lengths), key=lengths.count)  # calibrate on one length: scales do not depend
    return to_int8_tflite(with_softmax(model),
                          np.stack([r for r in representative if len(r) == n]))


def write_model(out_dir: Path, embedding: bytes, head: bytes, labels: tuple[str, ...],
                cfg, rule: RejectionRule, strings_stage: bytes | None = None,
                phases: int = EMBEDDING_PHASES, **extra: Any) -> Path:
    """Write the stages and the metadata JSON; returns the JSON's path. `embedding` was
    made with `phases` grids. With `strings_stage`, extra holds its settings under
    "strings"."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / EMBEDDING_FILENAME).write_bytes(embedding)
    (out_dir / HEAD_FILENAME).write_bytes(head)
    path = out_dir / MODEL_FILENAME
    files = {"embedding": EMBEDDING_FILENAME, "head": HEAD_FILENAME}
    if strings_stage is not None:
        (out_dir / STRINGS_FILENAME).write_bytes(strings_stage)
        files["strings"] = STRINGS_FILENAME
    extra["embedding_phases"] = phases
    extra["speeds"] = list(cfg.test_speeds)
    ModelMetadata.write(path, labels, cfg.features, rule, files, **extra)
    # what both stages give here on a known input: the runtime checks it at every load
    ModelMetadata.write(path, labels, cfg.features, rule, files, **extra,
                        probe=DigitClassifier(path).probe())
    return path
