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

from .features import (
    DcRemover,
    FeatureConfig,
    check_waveform,
    frame_db,
    noise_floor,
    trim_silence,
)
from .model import UNKNOWN_LABEL, DigitClassifier, Prediction, StringReading
from .segmenter import Segment, SegmenterSettings, VadSegmenter


@dataclass(frozen=True)
class Event:
    """One recognized (or, with digit None, rejected) utterance."""

    digit: int | None
    confidence: float
    start: float  # seconds of stream time
    end: float  # end of speech (the hangover after it excluded)
    latency_ms: float  # end of speech -> this event, as far as this process can see
    reason: str | None = None  # why rejected: NOT_A_DIGIT, UNSURE, TOO_LONG

    def to_json(self) -> dict:
        out = {"digit": self.digit, "confidence": round(self.confidence, 4),
               "start": round(self.start, 3), "end": round(self.end, 3),
               "latency_ms": round(self.latency_ms, 1)}
        if self.reason:
            out["reason"] = self.reason
        return out

    def text(self) -> str:
        return "-" if self.digit is None else str(self.digit)

    def row(self, file: str | None = None) -> dict:
        """What the sinks publish: the event, the wall-clock time, and the file it came from."""
        out = {**self.to_json(), "time": wall_time()}
        return {"file": file, **out} if file is not None else out


def wall_time() -> str:
    """Now, ISO 8601 in UTC with milliseconds: the "time" of every output line."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


NOT_A_DIGIT = "not a digit"  # the model is sure it heard no digit: a word, a noise
UNSURE = "unsure"  # it leaned to a digit, or read digits among other words
TOO_LONG = "too long"

WORD_SECONDS = 1.0  # longer gap-free speech in a segment is not one digit
STRING_MIN_SECONDS = 0.55  # shorter speech is one word (or none): the strings stage skips it
WORDS_MAX_SECONDS = 1.8  # a longer segment the strings stage did not read is not digits: a
# radio's tones and music, split at their dips, must not reach the one-word classifier


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


def room_level(x: np.ndarray, room: np.ndarray, preroll: int, cfg: FeatureConfig) -> float:
    """What a stream's word is padded at (dBFS): the median 10 ms of `room`, the stream's
    last `preroll` samples when its VAD segment `x` began (the room just before the word;
    the word's onset, which the trigger's ring holds, is the lesser part of it), never under
    the segment's quietest 10 ms. A stream younger than that (a file whose word starts at
    once) has no room to measure: its segment's quietest 10 ms, as for a whole file.

    A segment's quietest 10 ms lies far under the talk or noise a word was heard in (a dip
    between a babble's syllables), and the word would stand in a quiet box, unlike training's
    noisy windows, whose noise fills the window. A whole file keeps its quietest 10 ms: that
    is what training pads its clean clips at."""
    if room.size < preroll:
        return noise_floor(x, cfg)
    return max(noise_floor(x, cfg), noise_floor(room, cfg, percentile=50.0))


def words(samples: np.ndarray, cfg: FeatureConfig) -> tuple[float, list[np.ndarray] | None]:
    """A whole clip -> its room's noise floor (dBFS, its quietest 10 ms, measured before the
    trim) and its words, checked and trimmed once here; None when it holds longer gap-free
    speech than a word. ValueError on non-finite samples."""
    x = check_waveform(samples)
    return noise_floor(x, cfg), split_on_dips(trim_silence(x, cfg), cfg)


class StreamRecognizer:
    """Feed any number of samples; get the events finished by them."""

    def __init__(self, classifier: DigitClassifier,
                 settings: SegmenterSettings | None = None) -> None:
        self.classifier = classifier
        self.features = classifier.features
        self.segmenter = VadSegmenter(self.features.sample_rate, settings)
        self._dc = DcRemover(self.features.sample_rate)
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
            segment = self.segmenter.push(self._dc(data[i * self._frame : (i + 1) * self._frame]))
            if segment is not None:
                events += self._recognize(segment, behind=(n_frames - 1 - i) * self._frame)
        self._pending = data[n_frames * self._frame :].copy()
        return events

    def finish(self) -> list[Event]:
        """End of stream: recognize what is still open."""
        segment = self.segmenter.flush()
        return self._recognize(segment, behind=0) if segment is not None else []

    def reset(self) -> None:
        """A gap in the audio (device lost): drop the partial segment."""
        self.segmenter.reset()
        self._dc.reset()
        self._pending = np.zeros(0, dtype=np.float32)

    def _recognize(self, segment: Segment, behind: int) -> list[Event]:
        hangover = segment.end - segment.speech_end
        rate = self.features.sample_rate

        def latency() -> float:
            # Audio after the segment's last frame already buffered ("behind") plus the
            # time since the newest samples arrived, plus the hangover waited for.
            return ((time.monotonic() - self._last_arrival) + behind / rate + hangover) * 1000

        def event(prediction: Prediction) -> Event:
            reason = (None if prediction.digit is not None else
                      NOT_A_DIGIT if prediction.label == UNKNOWN_LABEL else UNSURE)
            return Event(prediction.digit, prediction.confidence, segment.start,
                         segment.speech_end, latency(), reason)

        if segment.truncated:
            return [Event(None, 0.0, segment.start, segment.speech_end, latency(), TOO_LONG)]
        x = check_waveform(segment.samples)
        floor = room_level(x, segment.room, self.segmenter.preroll_samples, self.features)
        speech = trim_silence(x, self.features)
        reading = (self.classifier.read_string(speech, floor)
                   if speech.size > STRING_MIN_SECONDS * rate else None)
        if reading is not None and len(reading.tokens) > 1:
            return self._string_events(reading, segment, latency())
        if x.size > WORDS_MAX_SECONDS * rate:
            return [Event(None, 0.0, segment.start, segment.speech_end, latency(), TOO_LONG)]
        parts = split_on_dips(speech, self.features)
        if parts is None:
            return [Event(None, 0.0, segment.start, segment.speech_end, latency(), TOO_LONG)]
        # Each word as a file of it is recognized (the path the evaluation measures): trimmed,
        # padded at `floor`, ending tail_seconds before its window's end. One network pass
        # embeds the whole window at once, its time convolutions shared by both grids.
        return [event(self.classifier.classify_word(part, floor)) for part in parts]

    def _string_events(self, reading: StringReading, segment: Segment, latency: float
                       ) -> list[Event]:
        """Several words read at once by the strings stage: one event per digit, in order,
        their times shared out evenly over the speech (the stage knows order, not edges).
        Digits among other words, or one read unsurely, reject all of it: printing the
        rest would print a number nobody said."""
        digits = reading.digits(self.classifier.string_min_confidence)
        if None in digits:
            said_digits = any(t != UNKNOWN_LABEL for t in reading.tokens)
            return [Event(None, min(reading.confidences), segment.start, segment.speech_end,
                          latency, UNSURE if said_digits else NOT_A_DIGIT)]
        step = (segment.speech_end - segment.start) / len(digits)
        return [Event(d, c, segment.start + k * step, segment.start + (k + 1) * step, latency)
                for k, (d, c) in enumerate(zip(digits, reading.confidences, strict=True))]
