"""The shipped int8 TFLite model, its metadata, and the rejection rule.

Every setting the runtime needs (labels, sample rate, feature parameters, quantization,
rejection rule, test-time speeds) is read from the metadata JSON written beside the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .audio import change_speed
from .features import FeatureConfig, check_waveform, extract

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
class RejectionRule:
    """When the model's answer is not printed. Two separate questions: "is it a digit at
    all?" (the unknown class's probability) and "which digit?" (the best probability).
    A word that rhymes with a digit comes out as a fairly sure digit with some unknown
    mass; a hard real digit comes out unsure between digits with little. Voices unlike the
    training data carry more unknown mass on real digits too, so the limits are
    calibrated on such voices as well (train/evaluate.py)."""

    min_confidence: float  # reject when the best probability is below this
    max_unknown: float = 1.0  # reject when p(unknown) reaches this; 1.0 = top label only

    def digits(self, probs: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
        """Decided digit per row of probabilities (n x labels), -1 where rejected."""
        probs = np.atleast_2d(probs)
        best = np.argmax(probs, axis=1)
        digit_of_label = np.array([int(x) if x.isdigit() else -1 for x in labels])
        accept = (digit_of_label[best] >= 0) & (probs[np.arange(len(probs)), best]
                                                >= self.min_confidence)
        if UNKNOWN_LABEL in labels:
            accept &= probs[:, labels.index(UNKNOWN_LABEL)] < self.max_unknown
        return np.where(accept, digit_of_label[best], -1)

    def describe(self) -> str:
        return (f"reject when the arg-max label is '{UNKNOWN_LABEL}', or p({UNKNOWN_LABEL}) >= "
                f"{self.max_unknown:.2f}, or the best probability < {self.min_confidence:.2f}")


@dataclass(frozen=True)
class ModelMetadata:
    labels: tuple[str, ...]
    features: FeatureConfig
    rejection: RejectionRule
    raw: dict[str, Any]
    # The utterance is classified at each of these playback speeds and the probabilities
    # averaged: a voice between the training voices is heard at a speed closer to one of
    # them. The rejection rule was calibrated on those averages, so the two go together.
    test_time_speeds: tuple[float, ...] = (1.0,)

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
            rejection = RejectionRule(
                min_confidence=float(raw["rejection"]["threshold"]),
                # Models exported before the unknown-class rule have no such key.
                max_unknown=float(raw["rejection"].get("unknown_threshold", 1.0)))
            # Models exported before test-time speeds classify once, as recorded.
            speeds = tuple(float(s) for s in raw.get("test_time_speeds", [1.0]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"model metadata {path} is incomplete: {exc!r}") from exc
        if not speeds or not all(0.5 <= s <= 2.0 for s in speeds):
            raise ModelError(f"model metadata {path}: test_time_speeds must be a non-empty "
                             f"list of speeds within 0.5-2.0, not {raw['test_time_speeds']!r}")
        return cls(labels=labels, features=features, rejection=rejection, raw=raw,
                   test_time_speeds=speeds)


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
    try:
        # The runtimes' default XNNPACK delegate runs the int8 network ~3x faster than the
        # plain kernels (0.2 vs 0.6 ms here), for ~1 MB; LOSO calibrates the rejection rule
        # on its outputs. It logs one INFO line on stderr that Python cannot silence.
        interpreter = runtime.Interpreter(model_path=str(model_path), num_threads=num_threads)
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
    """Utterance -> Prediction with the model's rejection rule. One interpreter, reused."""

    def __init__(self, model_path: Path | None = None, num_threads: int = 1) -> None:
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.is_file():
            raise ModelError(f"model file not found: {self.model_path}")
        self.metadata = ModelMetadata.load(metadata_path_for(self.model_path))
        self.rejection = self.metadata.rejection  # settings may replace it (cli)
        self.test_time_speeds = self.metadata.test_time_speeds
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
        """One pass over features already computed (no test-time speeds)."""
        probs = self.probabilities(features)
        return decide(probs, self.metadata.labels, self.rejection)

    def utterance_probabilities(self, waveform: np.ndarray) -> np.ndarray:
        """Mean probabilities over the model's test-time speeds. Raises ValueError on
        non-finite samples (features.check_waveform)."""
        cfg = self.features
        x = check_waveform(waveform)
        return np.mean([self.probabilities(extract(x if speed == 1.0 else change_speed(
            x, speed, cfg.sample_rate), cfg)) for speed in self.test_time_speeds], axis=0)

    def classify_utterance(self, waveform: np.ndarray) -> Prediction:
        """A mono waveform at the model rate holding one word (silence around it is fine)."""
        probs = self.utterance_probabilities(waveform)
        return decide(probs, self.metadata.labels, self.rejection)


def decide(probs: np.ndarray, labels: tuple[str, ...], rule: RejectionRule) -> Prediction:
    """One prediction under the rejection rule that training's calibration also uses."""
    best = int(np.argmax(probs))
    digit = int(rule.digits(probs, labels)[0])
    return Prediction(digit=None if digit < 0 else digit, label=labels[best],
                      confidence=float(probs[best]), probabilities=probs)
