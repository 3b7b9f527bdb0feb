"""Samples -> frames -> VAD segments -> features -> classifier -> events.

`StreamRecognizer` holds the streaming state (a partial frame and the segmenter) and is fed
blocks of mono float samples at the model's rate, from any source. It knows nothing about
microphones, files or stdout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .features import FeatureConfig, check_waveform, extract, trim_silence
from .model import DigitClassifier
from .segmenter import Segment, SegmenterSettings, VadSegmenter


@dataclass(frozen=True)
class Event:
    """One recognized (or, with digit None, rejected) utterance."""

    digit: int | None
    confidence: float
    start: float  # seconds of stream time
    end: float  # end of speech (the hangover after it excluded)
    latency_ms: float  # end of speech -> this event, as far as this process can see
    reason: str | None = None  # why rejected: "not a digit", "too long"

    def to_json(self) -> dict:
        out = {"digit": self.digit, "confidence": round(self.confidence, 4),
               "start": round(self.start, 3), "end": round(self.end, 3),
               "latency_ms": round(self.latency_ms, 1)}
        if self.reason:
            out["reason"] = self.reason
        return out


def split_on_dips(x: np.ndarray, cfg: FeatureConfig, min_dip_db: float = 15.0,
                  depth: int = 0) -> list[np.ndarray] | None:
    """Utterances in a trimmed segment longer than the model window, split at quiet gaps.

    Two digits said with almost no pause arrive as one VAD segment; the quietest 50 ms
    between them splits it. Speech with no such gap is not digits: None (reject it).
    """
    if x.size <= cfg.window_samples:
        return [x]
    if depth >= 4:
        return None
    n = cfg.trim_frame
    frames = x[: x.size // n * n].reshape(-1, n)
    energy = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    smooth = np.convolve(energy, np.ones(5) / 5, mode="same")
    edge = max(1, int(0.15 * cfg.sample_rate) // n)  # no split inside the first/last 150 ms
    if smooth.size <= 2 * edge:
        return None
    cut = edge + int(np.argmin(smooth[edge:-edge]))
    if smooth[cut] > energy.max() - min_dip_db:
        return None
    parts: list[np.ndarray] = []
    for half in (x[: cut * n], x[cut * n :]):
        half = trim_silence(half, cfg)
        sub = split_on_dips(half, cfg, min_dip_db, depth + 1)
        if sub is None:
            return None
        parts += sub
    return parts


class StreamRecognizer:
    """Feed any number of samples; get the events finished by them."""

    def __init__(self, classifier: DigitClassifier,
                 settings: SegmenterSettings | None = None) -> None:
        self.classifier = classifier
        self.features = classifier.features
        self.segmenter = VadSegmenter(self.features.sample_rate, settings)
        self._frame = self.segmenter.frame_samples
        self._pending = np.zeros(0, dtype=np.float32)
        self._frame_buffer = np.zeros(self._frame, dtype=np.float32)
        self._last_arrival = time.monotonic()
        self.samples_seen = 0

    @property
    def stream_time(self) -> float:
        return self.samples_seen / self.features.sample_rate

    def feed(self, samples: np.ndarray, arrival: float | None = None) -> list[Event]:
        """`arrival`: monotonic time the last of these samples was captured (default now)."""
        self._last_arrival = time.monotonic() if arrival is None else arrival
        data = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        n_frames = data.size // self._frame
        events: list[Event] = []
        for i in range(n_frames):
            segment = self.segmenter.push(data[i * self._frame : (i + 1) * self._frame])
            if segment is not None:
                events += self._recognize(segment, behind=(n_frames - 1 - i) * self._frame)
        self._pending = data[n_frames * self._frame :].copy()
        self.samples_seen += samples.size
        return events

    def finish(self) -> list[Event]:
        """End of stream: recognize what is still open."""
        segment = self.segmenter.flush()
        return self._recognize(segment, behind=0) if segment is not None else []

    def reset(self) -> None:
        """A gap in the audio (device lost): drop the partial segment."""
        self.segmenter.reset()
        self._pending = np.zeros(0, dtype=np.float32)

    def _recognize(self, segment: Segment, behind: int) -> list[Event]:
        hangover = segment.end - segment.speech_end
        rate = self.features.sample_rate

        def latency() -> float:
            # Audio after the segment's last frame already buffered ("behind") plus the
            # time since the newest samples arrived, plus the hangover waited for.
            return ((time.monotonic() - self._last_arrival) + behind / rate + hangover) * 1000

        if segment.truncated:
            return [Event(None, 0.0, segment.start, segment.speech_end, latency(), "too long")]
        x = trim_silence(check_waveform(segment.samples), self.features)
        parts = split_on_dips(x, self.features)
        if parts is None:
            return [Event(None, 0.0, segment.start, segment.speech_end, latency(), "too long")]
        events = []
        for part in parts:
            prediction = self.classifier.classify(extract(part, self.features))
            events.append(Event(
                prediction.digit, prediction.confidence, segment.start, segment.speech_end,
                latency(), None if prediction.digit is not None else "not a digit",
            ))
        return events
