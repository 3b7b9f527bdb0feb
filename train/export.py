"""Keras model -> full-integer int8 TFLite (int8 in, int8 out) + the metadata JSON beside it.

Keras 3 path: model.export() writes a SavedModel, TFLiteConverter.from_saved_model reads it.
The metadata holds every setting the daemon needs; the daemon has no copies of them.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from digitd.daemon.model import RejectionRule, metadata_path_for

from .data import FSDD_ATTRIBUTION, FSDD_VERSION
from .prompts import attribution

log = logging.getLogger(__name__)


def to_int8_tflite(model, representative: np.ndarray) -> bytes:
    """Quantize with a representative set of real feature arrays, shape (n, frames, mels, 1)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "saved_model"
        model.export(str(saved), format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def samples():
            for row in representative:
                yield [row[np.newaxis].astype(np.float32)]

        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        return converter.convert()


def input_quantization(tflite_model: bytes) -> dict[str, Any]:
    from digitd.daemon.model import load_interpreter

    with tempfile.NamedTemporaryFile(suffix=".tflite") as tmp:
        Path(tmp.name).write_bytes(tflite_model)
        interpreter = load_interpreter(Path(tmp.name))
        inp = interpreter.get_input_details()[0]
        out = interpreter.get_output_details()[0]
    return {
        "input": {"dtype": np.dtype(inp["dtype"]).name,
                  "scale": float(inp["quantization"][0]),
                  "zero_point": int(inp["quantization"][1]),
                  "shape": [int(s) for s in inp["shape"]]},
        "output": {"dtype": np.dtype(out["dtype"]).name,
                   "scale": float(out["quantization"][0]),
                   "zero_point": int(out["quantization"][1])},
    }


def rejection_metadata(rule: RejectionRule, note: str) -> dict[str, Any]:
    """The metadata's "rejection" block, which ModelMetadata.load reads back."""
    return {"rule": rule.describe(), "threshold": rule.min_confidence,
            "unknown_threshold": rule.max_unknown, "calibration": note}


def write_model(
    tflite_model: bytes,
    path: Path,
    *,
    labels: tuple[str, ...],
    features: dict[str, Any],
    rejection: RejectionRule,
    rejection_note: str,
    train_config: dict[str, Any],
    data_hash: str,
    loso: dict[str, Any] | None,
    test_time_speeds: tuple[float, ...],
    recorded_voices: list[str] | tuple[str, ...] = (),
) -> Path:
    """The model and its metadata. recorded_voices: the prompt voices training read
    (Corpus.recorded_voices), credited in the licence: what was on disk, not what the recipe
    asked for, since training goes on without a voice that is not installed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    credit = attribution(recorded_voices)
    path.write_bytes(tflite_model)
    metadata = {
        "format": "digitd-model/1",
        "labels": list(labels),
        "features": features,
        "quantization": input_quantization(tflite_model),
        "rejection": rejection_metadata(rejection, rejection_note),
        "test_time_speeds": list(test_time_speeds),
        "training": {
            "data": f"FSDD {FSDD_VERSION} (all six speakers) + local TTS voices and "
                    "non-digit words" + ("".join(f" + Asterisk prompts {v}"
                                                 for v in recorded_voices)),
            "recorded_voices": list(recorded_voices),
            "data_sha256": data_hash,
            "config": train_config,
        },
        "loso": loso,
        "license": FSDD_ATTRIBUTION + (" " + credit if credit else ""),
        "size_bytes": len(tflite_model),
    }
    metadata_path_for(path).write_text(json.dumps(metadata, indent=2, default=str) + "\n")
    log.info("wrote %s (%d bytes) and its metadata", path, len(tflite_model))
    return path
