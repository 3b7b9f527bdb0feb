"""Recognize files as single utterances (`digitd recognize --whole`).

A file is one word: its silence trimmed, the word classified once, as the evaluation scores
clips. A file holding several words, or more speech than a word, is rejected with that
reason rather than answered with one confident digit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .audio import AudioError, read_audio
from .model import DigitClassifier, Prediction
from .pipeline import wall_time, words

MAX_WHOLE_SECONDS = 60.0  # one word with generous silence; longer files are streams


@dataclass(frozen=True)
class FileResult:
    file: str
    prediction: Prediction | None
    error: str | None = None
    reason: str | None = None  # why no digit: "not a digit", "several words", "too long"

    @property
    def digit(self) -> int | None:
        return None if self.prediction is None else self.prediction.digit

    def to_json(self) -> dict:
        if self.prediction is None:
            out = {"file": self.file, "digit": None, "confidence": None}
            return {**out, "error": self.error} if self.error else {**out,
                                                                     "reason": self.reason}
        out = {"file": self.file, "digit": self.prediction.digit,
               "confidence": round(self.prediction.confidence, 4)}
        return {**out, "reason": self.reason} if self.reason else out

    def row(self, file: str | None = None) -> dict:
        """What the sinks publish: to_json() and the wall-clock time."""
        return {**self.to_json(), "time": wall_time()}

    def text(self) -> str:
        """The text-mode line: the digit, '-' for no digit, '?' for an unusable file."""
        if self.error is not None:
            return "?"
        return "-" if self.digit is None else str(self.digit)


def recognize_whole(path: str | Path, classifier: DigitClassifier) -> FileResult:
    """The whole file is one utterance: trimmed, padded, classified."""
    wave = read_audio(path, classifier.features.sample_rate, MAX_WHOLE_SECONDS)
    floor, parts = words(wave, classifier.features)
    if parts is None:
        return FileResult(str(path), None, reason="too long: more speech than one word")
    if len(parts) > 1:
        return FileResult(str(path), None, reason=f"several words ({len(parts)}): "
                          "recognize without --whole reads each")
    prediction = classifier.classify_word(parts[0], floor)
    return FileResult(str(path), prediction,
                      reason=None if prediction.digit is not None else "not a digit")


def recognize_files(paths: list[str], classifier: DigitClassifier) -> Iterator[FileResult]:
    """One result per path, in order; a bad file yields an error result, never an exception."""
    for path in paths:
        try:
            yield recognize_whole(path, classifier)
        except (AudioError, ValueError) as exc:
            yield FileResult(path, None, str(exc))
        except MemoryError:
            yield FileResult(path, None, f"{path}: too large to read in this memory")
