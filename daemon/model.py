"""The shipped int8 TFLite model, its metadata, and the rejection rule.

Every setting the runtime needs (labels, sample rate, feature parameters, quantization,
rejection threshold) is read from the metadata JSON written beside the model at export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .features import FeatureConfig

MODEL_FILENAME = "digitd.tflite"
UNKNOWN_LABEL = "unknown"


class ModelError(Exception):
    """The model or its metadata is missing or unusable."""


def default_model_path() -> Path:
    """The model shipped as package data in digitd.models."""
    return Path(str(resources.files("digitd.models").joinpath(MODEL_FILENAME)))


def metadata_path_for(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


@dataclass(frozen=True)
class ModelMetadata:
    labels: tuple[str, ...]
    features: FeatureConfig
    threshold: float  # reject when the best digit's probability is below this
    raw: dict[str, Any]

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    @classmethod
    def load(cls, path: Path) -> ModelMetadata:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ModelError(f"model metadata not found: {path}") from exc
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"model metadata unreadable: {path}: {exc}") from exc
        try:
            labels = tuple(str(label) for label in raw["labels"])
            features = FeatureConfig.from_dict(raw["features"])
            threshold = float(raw["rejection"]["threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model metadata {path} is incomplete: {exc!r}") from exc
        return cls(labels=labels, features=features, threshold=threshold, raw=raw)


def load_interpreter(model_path: Path, num_threads: int = 1) -> Any:
    """A TFLite interpreter from the first runtime installed: LiteRT, tflite_runtime, TF."""
    try:
        from ai_edge_litert import interpreter as runtime
    except ImportError:
        try:
            from tflite_runtime import interpreter as runtime
        except ImportError:
            try:
                import tensorflow as tf  # last resort: heavy, but present on training machines

                runtime = tf.lite
            except ImportError as exc:
                raise ModelError(
                    "no TFLite runtime installed: pip install ai-edge-litert "
                    "(or tflite-runtime on platforms LiteRT does not support)"
                ) from exc
    options = {}
    resolver = getattr(runtime, "OpResolverType", None) or getattr(
        getattr(runtime, "experimental", None), "OpResolverType", None)
    if resolver is not None:
        # The model is tiny: plain int8 kernels take ~0.4 ms, and skipping the XNNPACK
        # delegate saves its thread pool and a few MB on a Pi.
        options["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = runtime.Interpreter(model_path=str(model_path), num_threads=num_threads,
                                          **options)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load model {model_path}: {exc}") from exc
    return interpreter


@dataclass(frozen=True)
class Prediction:
    digit: int | None  # None: rejected (not a digit, or not sure enough)
    label: str  # the arg-max label, "unknown" included
    confidence: float  # probability of the arg-max label
    probabilities: np.ndarray


class DigitClassifier:
    """Features -> Prediction with the model's rejection rule. One interpreter, reused."""

    def __init__(self, model_path: Path | None = None, num_threads: int = 1) -> None:
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.is_file():
            raise ModelError(f"model file not found: {self.model_path}")
        self.metadata = ModelMetadata.load(metadata_path_for(self.model_path))
        self._interpreter = load_interpreter(self.model_path, num_threads)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        expected = (1, *self.metadata.features.shape, 1)
        if tuple(self._input["shape"]) != expected:
            raise ModelError(
                f"model input shape {tuple(self._input['shape'])} does not match its "
                f"metadata's feature shape {expected}"
            )
        # Read quantization from the interpreter, never assume it.
        self._in_scale, self._in_zero = self._input["quantization"]
        self._out_scale, self._out_zero = self._output["quantization"]
        self._in_buffer = np.zeros(expected, dtype=self._input["dtype"])

    @property
    def features(self) -> FeatureConfig:
        return self.metadata.features

    def _quantize(self, features: np.ndarray) -> np.ndarray:
        if self._in_buffer.dtype == np.float32:
            return features.astype(np.float32)
        info = np.iinfo(self._in_buffer.dtype)
        q = np.round(features / self._in_scale + self._in_zero)
        return np.clip(q, info.min, info.max).astype(self._in_buffer.dtype)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        self._in_buffer[0, :, :, 0] = self._quantize(features)
        self._interpreter.set_tensor(self._input["index"], self._in_buffer)
        self._interpreter.invoke()
        out = self._interpreter.get_tensor(self._output["index"])[0]
        if out.dtype != np.float32:
            out = (out.astype(np.float32) - self._out_zero) * self._out_scale
        return out

    def classify(self, features: np.ndarray) -> Prediction:
        probs = self.probabilities(features)
        return decide(probs, self.metadata.labels, self.metadata.threshold)


def decide(probs: np.ndarray, labels: tuple[str, ...], threshold: float) -> Prediction:
    """The rejection rule, shared by training's calibration and the runtime."""
    best = int(np.argmax(probs))
    label = labels[best]
    confidence = float(probs[best])
    digit = int(label) if label.isdigit() and confidence >= threshold else None
    return Prediction(digit=digit, label=label, confidence=confidence, probabilities=probs)
