"""Recognize files as single utterances (`digitd recognize --whole`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .audio import AudioError, read_audio
from .model import DigitClassifier, Prediction


@dataclass(frozen=True)
class FileResult:
    file: str
    prediction: Prediction | None
    error: str | None = None

    def to_json(self) -> dict:
        if self.prediction is None:
            return {"file": self.file, "digit": None, "confidence": None, "error": self.error}
        return {"file": self.file, "digit": self.prediction.digit,
                "confidence": round(self.prediction.confidence, 4)}


def recognize_whole(path: str | Path, classifier: DigitClassifier) -> Prediction:
    """The whole file is one utterance: trimmed, centred or cropped, classified."""
    wave = read_audio(path, classifier.features.sample_rate)
    return classifier.classify_utterance(wave)


def recognize_files(paths: list[str], classifier: DigitClassifier) -> Iterator[FileResult]:
    """One result per path, in order; a bad file yields an error result, never an exception."""
    for path in paths:
        try:
            yield FileResult(path, recognize_whole(path, classifier))
        except (AudioError, ValueError) as exc:
            yield FileResult(path, None, str(exc))
