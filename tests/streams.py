"""Build test streams from real FSDD recordings, with the truth of where each digit is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf


@dataclass
class DigitStream:
    samples: np.ndarray  # float32 at `rate`
    rate: int
    digits: list[int]
    spans: list[tuple[float, float]]  # seconds of each spoken digit


def build_stream(recordings: Path, names: list[str], pauses: list[float], rate: int = 8000,
                 noise: float = 0.001, lead: float = 0.5, seed: int = 0) -> DigitStream:
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(lead * 8000), np.float32)]
    spans, digits, t = [], [], lead
    for name, pause in zip(names, pauses, strict=True):
        wave, file_rate = sf.read(recordings / name, dtype="float32")
        assert file_rate == 8000
        spans.append((t, t + wave.size / 8000))
        digits.append(int(name[0]))
        parts += [wave, np.zeros(int(pause * 8000), np.float32)]
        t += (wave.size + int(pause * 8000)) / 8000
    x = np.concatenate(parts)
    x = x + (rng.normal(size=x.size) * noise).astype(np.float32)
    if rate != 8000:
        import soxr

        x = soxr.resample(x, 8000, rate)
    return DigitStream(x.astype(np.float32), rate, digits, spans)


def write_stream(stream: DigitStream, path: Path) -> Path:
    sf.write(path, stream.samples, stream.rate, subtype="PCM_16")
    return path


def clear_takes(recordings: Path, wanted: list[tuple[int, str]], margin: float = 0.15,
                ) -> list[str]:
    """For each (digit, speaker), the first take the shipped model recognizes whole-file
    with a clear margin inside its rejection rule. Device and streaming tests use these, so
    they test the audio path, not the model's accuracy (the evaluation measures that)."""
    from digitd.daemon.audio import read_audio
    from digitd.daemon.model import UNKNOWN_LABEL, DigitClassifier

    classifier = DigitClassifier()
    unknown = classifier.metadata.labels.index(UNKNOWN_LABEL)
    names = []
    for digit, speaker in wanted:
        for take in range(50):
            name = f"{digit}_{speaker}_{take}.wav"
            wave = read_audio(recordings / name, classifier.features.sample_rate)
            prediction = classifier.classify_utterance(wave)
            rule = classifier.metadata.rejection
            if (prediction.digit == digit
                    and prediction.confidence >= rule.min_confidence + margin
                    and prediction.probabilities[unknown] <= rule.max_unknown / 2):
                names.append(name)
                break
        else:
            raise AssertionError(f"no take of {digit} by {speaker} is clearly recognized")
    return names


def pcm16(samples: np.ndarray) -> bytes:
    """Float samples as raw s16le PCM, what `digitd listen --input -` reads."""
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def said_together(recordings: Path, names: list[str], gap: float = 0.0, rate: int = 16000,
                  lead: float = 0.5, tail: float = 1.5, seed: int = 0) -> np.ndarray:
    """FSDD takes with their silence trimmed, `gap` seconds apart (0: no pause at all, as a
    number said fluently), quiet before and after: float32 at `rate`."""
    from digitd.daemon.audio import read_audio
    from digitd.daemon.features import FeatureConfig, trim_silence

    cfg = FeatureConfig()
    parts: list[np.ndarray] = [np.zeros(int(lead * 16000))]
    for name in names:
        word = trim_silence(read_audio(recordings / name, 16000).astype(np.float64), cfg)
        parts += [word / np.max(np.abs(word)) * 0.5, np.zeros(int(gap * 16000))]
    x = np.concatenate([*parts, np.zeros(int(tail * 16000))])
    x = x + np.random.default_rng(seed).normal(0, 1e-3, x.size)
    if rate != 16000:
        import soxr

        x = soxr.resample(x, 16000, rate)
    return x.astype(np.float32)
