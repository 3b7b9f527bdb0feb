"""Samples -> frames -> VAD segments -> features -> classifier -> events.

`StreamRecognizer` holds the streaming state (a partial frame and the segmenter) and is fed
blocks of mono float samples at the model's rate, from any source. It knows nothing about
microphones, files or stdout.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import numpy as np

from .features import FeatureConfig, check_waveform, frame_db, log_mel, trim_silence
from .model import DigitClassifier, Prediction
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

    def row(self, file: str | None = None) -> dict:
        """What the sinks publish: the event, the wall-clock time, and the file it came from."""
        out = {**self.to_json(), "time": wall_time()}
        return {"file": file, **out} if file is not None else out


def wall_time() -> str:
    """Now, ISO 8601 in UTC with milliseconds: the "time" of every output line."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


WORD_SECONDS = 1.0  # longer gap-free speech in a segment is not one digit


def split_on_dips(x: np.ndarray, cfg: FeatureConfig, gap_db: float = 25.0,
                  min_gap_s: float = 0.08, depth: int = 0) -> list[np.ndarray] | None:
    """Utterances in a trimmed segment longer than one word.

    Two digits said with a short pause can arrive as one VAD segment: split at the longest
    quiet gap (>= min_gap_s, near the noise floor) between them. Without such a gap, a
    segment whose speech still fits one word is one word with some noise around it; longer
    gap-free speech is not digits: None, reject it.
    """
    word = int(WORD_SECONDS * cfg.sample_rate)
    if x.size <= word:
        return [x]
    n = cfg.trim_frame
    energy = frame_db(x[: x.size // n * n], n)
    # Speech is gap_db under the peak and 10 dB over the segment's noise floor (its 10th
    # percentile frame): pre-roll and hangover hiss must not count as words.
    threshold = max(energy.max() - gap_db, min(np.percentile(energy, 10) + 10.0,
                                               energy.max() - 6.0))
    loud = np.flatnonzero(energy >= threshold)
    first, last = loud[0], loud[-1]
    # Longest run of quiet frames strictly inside the speech.
    best_len, best_mid, run = 0, 0, 0
    for i in range(first, last + 1):
        run = run + 1 if energy[i] < threshold else 0
        if run > best_len:
            best_len, best_mid = run, i - run // 2
    if best_len * n >= min_gap_s * cfg.sample_rate and depth < 4:
        parts: list[np.ndarray] = []
        for half in (x[: best_mid * n], x[best_mid * n :]):
            sub = split_on_dips(trim_silence(half, cfg), cfg, gap_db, min_gap_s, depth + 1)
            if sub is None:
                return None
            parts += sub
        return parts
    if (last - first + 1) * n <= word:
        return [x]
    return None


class EmbeddingStream:
    """Speech embeddings of a stream, computed only while someone may be speaking.

    Keeps the last few seconds of audio. `advance()` embeds what arrived since the last call
    once `group` new vectors are due (one network pass for several: its time convolutions are
    shared), so at the end of a word only the last few vectors and the head remain. Vector j
    covers stream samples [j * 1280, j * 1280 + 12512): the grid is fixed by the stream, as in
    openWakeWord, and a quiet room costs nothing but the copy into the ring.
    """

    def __init__(self, classifier: DigitClassifier, group: int = 4) -> None:
        self.classifier = classifier
        f = classifier.features
        self.cfg = f
        self.group = group
        self.step = f.embedding_samples
        self.span = (f.embedding_frames - 1) * f.hop_length + f.n_fft
        self.capacity = f.window_samples + 4 * self.step + f.sample_rate
        self._ring = np.zeros(self.capacity, dtype=np.float32)
        self.total = 0  # samples written since the start of the stream
        self._vectors: dict[int, np.ndarray] = {}

    def write(self, samples: np.ndarray) -> None:
        n = samples.size
        if n >= self.capacity:
            samples, n = samples[-self.capacity:], self.capacity
            self.total += samples.size - n
        at = self.total % self.capacity
        first = min(n, self.capacity - at)
        self._ring[at : at + first] = samples[:first]
        self._ring[: n - first] = samples[first:]
        self.total += n

    def audio(self, start: int, stop: int) -> np.ndarray:
        """Stream samples [start, stop); they must still be in the ring."""
        if start < self.total - self.capacity or stop > self.total:
            raise ValueError("audio no longer (or not yet) in the ring")
        idx = np.arange(start, stop) % self.capacity
        return self._ring[idx].astype(np.float64)

    def last_due(self, end: int | None = None) -> int:
        """Index of the newest vector whose audio ends by stream sample `end` (default now)."""
        end = self.total if end is None else end
        return (end - self.span) // self.step

    def _compute(self, first: int, last: int) -> None:
        f = self.cfg
        start = first * self.step
        stop = last * self.step + self.span
        if start < max(0, self.total - self.capacity):
            first = -(-max(0, self.total - self.capacity) // self.step)
            start = first * self.step
        if first > last:
            return
        vectors = self.classifier.embeddings(log_mel(self.audio(start, stop), f))
        for j, vector in zip(range(first, last + 1), vectors, strict=True):
            self._vectors[j] = vector

    def advance(self, final_end: int | None = None) -> None:
        """Embed what is due: in groups while a word goes on, everything up to `final_end`
        (a segment's end) when it is over."""
        last = self.last_due(final_end)
        n = self.cfg.head_embeddings
        missing = [j for j in range(last - n + 1, last + 1) if j >= 0 and j not in self._vectors]
        if not missing or (final_end is None and len(missing) < self.group
                           and last - n + 1 in self._vectors):
            return
        self._compute(missing[0], missing[-1])
        for j in [j for j in self._vectors if j < last - 2 * n]:
            del self._vectors[j]

    def window(self, end: int) -> np.ndarray | None:
        """The head's input: the head_embeddings vectors ending by stream sample `end`."""
        self.advance(final_end=end)
        last = self.last_due(end)
        wanted = range(last - self.cfg.head_embeddings + 1, last + 1)
        if wanted.start < 0 or any(j not in self._vectors for j in wanted):
            return None
        return np.stack([self._vectors[j] for j in wanted])

    def reset(self) -> None:
        self._vectors.clear()


class StreamRecognizer:
    """Feed any number of samples; get the events finished by them."""

    def __init__(self, classifier: DigitClassifier,
                 settings: SegmenterSettings | None = None) -> None:
        self.classifier = classifier
        self.features = classifier.features
        self.segmenter = VadSegmenter(self.features.sample_rate, settings)
        self.embeddings = EmbeddingStream(classifier)
        self._frame = self.segmenter.frame_samples
        self._pending = np.zeros(0, dtype=np.float32)
        self._last_arrival = time.monotonic()

    def feed(self, samples: np.ndarray, arrival: float | None = None) -> list[Event]:
        """`arrival`: monotonic time the last of these samples was captured (default now)."""
        self._last_arrival = time.monotonic() if arrival is None else arrival
        data = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        n_frames = data.size // self._frame
        events: list[Event] = []
        for i in range(n_frames):
            frame = data[i * self._frame : (i + 1) * self._frame]
            self.embeddings.write(frame)
            segment = self.segmenter.push(frame)
            if segment is not None:
                events += self._recognize(segment, behind=(n_frames - 1 - i) * self._frame)
            if self.segmenter.triggered:
                self.embeddings.advance()
        self._pending = data[n_frames * self._frame :].copy()
        return events

    def finish(self) -> list[Event]:
        """End of stream: recognize what is still open."""
        segment = self.segmenter.flush()
        return self._recognize(segment, behind=0) if segment is not None else []

    def reset(self) -> None:
        """A gap in the audio (device lost): drop the partial segment."""
        self.segmenter.reset()
        self.embeddings.reset()
        self._pending = np.zeros(0, dtype=np.float32)

    def _recognize(self, segment: Segment, behind: int) -> list[Event]:
        hangover = segment.end - segment.speech_end
        rate = self.features.sample_rate

        def latency() -> float:
            # Audio after the segment's last frame already buffered ("behind") plus the
            # time since the newest samples arrived, plus the hangover waited for.
            return ((time.monotonic() - self._last_arrival) + behind / rate + hangover) * 1000

        def event(prediction: Prediction) -> Event:
            return Event(prediction.digit, prediction.confidence, segment.start,
                         segment.speech_end, latency(),
                         None if prediction.digit is not None else "not a digit")

        if segment.truncated:
            return [Event(None, 0.0, segment.start, segment.speech_end, latency(), "too long")]
        x = trim_silence(check_waveform(segment.samples), self.features)
        parts = split_on_dips(x, self.features)
        if parts is None:
            return [Event(None, 0.0, segment.start, segment.speech_end, latency(), "too long")]
        if len(parts) > 1:  # words apart in one segment: each one on its own
            return [event(self.classifier.classify_utterance(part)) for part in parts]
        # The segmenter and the ring count the same samples: its end is a stream position.
        window = self.embeddings.window(int(round(segment.end * rate)))
        if window is None:  # the stream began less than a window ago
            return [event(self.classifier.classify_utterance(x))]
        return [event(self.classifier.classify_embeddings(window))]
