"""Speech segments from a stream of fixed-size frames, with webrtcvad.

After py-webrtcvad's example: a ring buffer of recent frames decides when speech starts
(enough voiced frames in it: the trigger ratio), the ring's frames become the pre-roll, and
the segment ends when enough of the latest frames are unvoiced (the hangover). Segments with
too little voiced audio (clicks, breaths) are dropped; a segment that reaches the maximum
length is closed there and marked, so the caller can split or reject it on purpose.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field

import numpy as np

VAD_RATES = (8000, 16000, 32000, 48000)
VAD_FRAME_MS = (10, 20, 30)


@dataclass(frozen=True)
class SegmenterSettings:
    aggressiveness: int = 2  # webrtcvad mode 0 (lenient) .. 3 (strict; misses quiet voices)
    frame_ms: int = 10  # webrtcvad's own overhang is counted in frames: short frames end sooner
    trigger_ms: int = 200  # ring used to decide that speech started
    trigger_ratio: float = 0.6  # share of voiced frames in the ring that starts a segment
    preroll_ms: int = 300  # audio kept from before the trigger: weak onsets (s, f, th) are
    # often unvoiced to webrtcvad, and the word must not lose them
    hangover_ms: int = 100  # trailing audio that must be mostly unvoiced to end a segment
    release_ratio: float = 0.9  # share of unvoiced frames in the hangover that ends it
    min_speech_ms: int = 100  # less voiced audio is a click: dropped (FSDD digits: >= 140)
    max_segment_ms: int = 5000  # longer is closed here and flagged as too long: an 8-digit
    # string said fluently fits
    floor_margin_db: float = 6.0  # voiced also needs this much energy over the noise floor
    floor_window_ms: int = 1500  # the floor is the quietest (smoothed) frame in this window
    onset_db: float = 10.0  # a sound this much louder than all of a running segment so far
    # starts a new one there, and the quieter part before is closed on its own: a word that
    # begins while the room talks must not come with a second of babble before it (0: off)
    release_db: float = 17.0  # inside a segment, frames this far under its loudest frame
    # count as unvoiced: a word ends even when the room keeps talking (babble is "speech";
    # 90: off)
    release_ms: int = 170  # ...once they fill this much of its end: longer than the hangover,
    # so the short dips between the words of a phrase do not cut it into digit-sized pieces

    def validate(self) -> None:
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0-3, got {self.aggressiveness}")
        if self.frame_ms not in VAD_FRAME_MS:
            raise ValueError(f"frame_ms must be one of {VAD_FRAME_MS}, got {self.frame_ms}")
        for name in ("trigger_ratio", "release_ratio"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        for name in ("trigger_ms", "preroll_ms", "hangover_ms", "release_ms", "min_speech_ms",
                     "max_segment_ms"):
            if getattr(self, name) < self.frame_ms:
                raise ValueError(f"{name} must be at least frame_ms ({self.frame_ms})")
        if self.max_segment_ms <= self.min_speech_ms:
            raise ValueError("max_segment_ms must exceed min_speech_ms")
        if not 0.0 <= self.onset_db <= 60.0:
            raise ValueError(f"onset_db must be within 0-60, got {self.onset_db}")
        if not 6.0 <= self.release_db <= 90.0:
            raise ValueError(f"release_db must be within 6-90, got {self.release_db}")
        if not 0.0 <= self.floor_margin_db <= 60.0:
            raise ValueError(f"floor_margin_db must be within 0-60, got {self.floor_margin_db}")
        if self.floor_window_ms < 10 * self.frame_ms:
            raise ValueError(f"floor_window_ms must be at least 10 frames ({10 * self.frame_ms})")


@dataclass(frozen=True)
class Segment:
    samples: np.ndarray  # float32 mono at the segmenter's rate
    start: float  # seconds of stream time
    end: float  # end of the segment, hangover included
    speech_end: float  # end of the last voiced frame: where the word ended
    voiced_ms: int
    truncated: bool  # part of speech that ran past max_segment_ms: not a digit
    # The stream's last preroll_ms when the segment began, the trigger's ring included: the
    # room the word was heard in. Unlike the segment's own pre-roll it runs on through the
    # segment before; shorter only when the stream (or audio after a gap) began later.
    room: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))


class WebRtcVad:
    """webrtcvad's voice detector on 16-bit PCM frames.

    Uses the C core (`_webrtcvad`) directly when present: the package's Python wrapper
    imports importlib.metadata just to read its version, ~3 MB of RSS on a Pi.
    """

    def __init__(self, mode: int) -> None:
        try:
            import _webrtcvad
        except ImportError:  # another build: its public wrapper does the same calls
            import webrtcvad

            self._vad = webrtcvad.Vad(mode)
            self._process = lambda pcm, rate: self._vad.is_speech(pcm, rate)
            return
        self._vad = _webrtcvad.create()
        _webrtcvad.init(self._vad)
        _webrtcvad.set_mode(self._vad, mode)
        self._process = lambda pcm, rate: _webrtcvad.process(self._vad, rate, pcm, len(pcm) // 2)

    def is_speech(self, pcm: bytes, rate: int) -> bool:
        return bool(self._process(pcm, rate))


class VadSegmenter:
    """Feed frames of exactly `frame_samples`; get finished segments back."""

    ONSET_LAG = 5  # frames: a rising onset is compared with the segment before it began

    def __init__(self, rate: int, settings: SegmenterSettings | None = None) -> None:
        if rate not in VAD_RATES:
            raise ValueError(f"webrtcvad needs one of {VAD_RATES} Hz, got {rate}")
        self.settings = settings or SegmenterSettings()
        self.settings.validate()
        self.rate = rate
        self.frame_samples = rate * self.settings.frame_ms // 1000
        self._vad = WebRtcVad(self.settings.aggressiveness)
        s = self.settings
        self._trigger = collections.deque(maxlen=max(1, s.trigger_ms // s.frame_ms))
        self._trigger_voiced = 0  # running count of voiced flags in _trigger
        self._history = collections.deque(maxlen=max(s.preroll_ms, s.trigger_ms) // s.frame_ms)
        self._heard: collections.deque[np.ndarray] = collections.deque(
            maxlen=self._history.maxlen)  # the latest frames, through segments too
        self._room = np.zeros(0, dtype=np.float32)  # _heard when the open segment began
        self._release = collections.deque(maxlen=max(1, s.hangover_ms // s.frame_ms))
        self._settle = collections.deque(maxlen=max(1, s.release_ms // s.frame_ms))
        self._max_frames = s.max_segment_ms // s.frame_ms
        self._frames: list[np.ndarray] = []
        self._voiced = 0
        self._start_frame = 0
        self._position = 0  # frames consumed so far
        self.triggered = False
        self._overlong = False  # inside speech that already ran past max_segment_ms
        self._last_voiced = 0  # frame count at the end of the latest voiced frame
        # webrtcvad calls babble and other speech-like noise "speech"; a frame counts as
        # voiced only if it also stands out from the recent noise floor (minimum statistics).
        self._energy_db = -100.0  # smoothed frame energy
        self._recent = collections.deque(maxlen=s.floor_window_ms // s.frame_ms)
        self._peak_db = -100.0  # loudest smoothed frame of the open segment
        self._onset_peak_db = -100.0  # loudest of it up to ONSET_LAG frames ago
        # Smoothed energy and voiced flag of the latest frames since the trigger: a restart
        # keeps a pre-roll's worth of them.
        self._preroll_frames = max(1, s.preroll_ms // s.frame_ms)
        self._energies: collections.deque[float] = collections.deque(maxlen=self._preroll_frames)
        self._flags: collections.deque[bool] = collections.deque(maxlen=self._preroll_frames)

    @property
    def preroll_samples(self) -> int:
        """Audio a segment keeps from before its trigger fired (the trigger's ring in it)."""
        return self._history.maxlen * self.frame_samples

    def is_speech(self, frame: np.ndarray) -> bool:
        energy_db = 10.0 * math.log10(float(np.dot(frame, frame)) / frame.size + 1e-12)
        self._energy_db = 0.6 * self._energy_db + 0.4 * energy_db
        self._recent.append(self._energy_db)
        if energy_db < min(self._recent) + self.settings.floor_margin_db:
            return False
        pcm = (np.clip(frame, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        return self._vad.is_speech(pcm, self.rate)

    def push(self, frame: np.ndarray) -> Segment | None:
        if frame.shape != (self.frame_samples,):
            raise ValueError(f"expected a frame of {self.frame_samples} samples, got {frame.shape}")
        heard = self.is_speech(frame)  # speech to webrtcvad, and over the noise floor
        self._heard.append(frame)
        voiced = heard
        self._position += 1
        if self.triggered:
            self._peak_db = max(self._peak_db, self._energy_db)
            voiced = heard and self._energy_db >= self._peak_db - self.settings.release_db
        if voiced:
            self._last_voiced = self._position
        if not self.triggered:
            if len(self._trigger) == self._trigger.maxlen:
                self._trigger_voiced -= self._trigger[0]
            self._trigger.append(voiced)
            self._trigger_voiced += voiced
            self._history.append(frame)
            n_voiced = self._trigger_voiced
            if n_voiced >= self.settings.trigger_ratio * self._trigger.maxlen:
                self.triggered = True
                self._frames = list(self._history)  # pre-roll
                self._room = np.concatenate(self._heard)
                self._voiced = n_voiced
                self._start_frame = self._position - len(self._frames)
                self._peak_db = max(list(self._recent)[-len(self._frames):])
                self._onset_peak_db = self._peak_db
                self._energies.clear()
                self._flags.clear()
                self._release.clear()
                self._settle.clear()
                self._trigger.clear()
                self._trigger_voiced = 0
                self._history.clear()
            return None
        self._frames.append(frame)
        self._voiced += voiced
        self._release.append(heard)
        self._settle.append(voiced)
        self._energies.append(self._energy_db)
        self._flags.append(voiced)
        if len(self._energies) > self.ONSET_LAG:
            self._onset_peak_db = max(self._onset_peak_db, self._energies[-self.ONSET_LAG - 1])
        if (self.settings.onset_db > 0 and len(self._flags) == self._preroll_frames
                and len(self._frames) >= 2 * self._preroll_frames
                and self._energy_db >= self._onset_peak_db + self.settings.onset_db):
            return self._restart()
        if self._quiet(self._release) or self._quiet(self._settle):
            return self._close(truncated=self._overlong)
        if len(self._frames) >= self._max_frames:
            # Still talking: emit what we have, flagged, and keep listening in the same
            # utterance so its continuation is flagged too (a monologue is not digits).
            segment = self._close(truncated=True)
            self.triggered, self._overlong = True, True
            self._start_frame = self._position
            return segment
        return None

    def _quiet(self, ring: collections.deque) -> bool:
        """A full ring of recent frames, nearly all of them unvoiced."""
        unvoiced = len(ring) - sum(ring)
        return len(ring) == ring.maxlen and unvoiced >= self.settings.release_ratio * ring.maxlen

    def _restart(self) -> Segment | None:
        """Close all but the last pre-roll of the open segment; go on from there."""
        keep = self._preroll_frames  # _energies and _flags hold exactly these frames
        kept_voiced = sum(self._flags)
        earlier = self._segment(self._frames[:-keep], self._voiced - kept_voiced,
                                self._start_frame, self._position - keep, self._overlong)
        self._frames = self._frames[-keep:]
        self._room = np.concatenate(self._heard)
        self._voiced = kept_voiced
        self._start_frame = self._position - keep
        energies = list(self._energies)
        self._peak_db = max(energies)
        self._onset_peak_db = max(energies[: -self.ONSET_LAG] or energies[:1])
        self._release.clear()
        self._settle.clear()
        return earlier

    def flush(self) -> Segment | None:
        """End of stream: close an open segment."""
        return self._close(truncated=self._overlong) if self.triggered else None

    @property
    def seconds(self) -> float:
        """Stream time consumed so far, the clock of every segment's start and end."""
        return self._position * self.settings.frame_ms / 1000

    def reset(self) -> None:
        """Forget everything in flight (after a gap in the audio, say)."""
        self._end()
        self._heard.clear()

    def _end(self) -> None:
        """Close the open segment's state; the stream's recent frames stay."""
        self.triggered = self._overlong = False
        self._frames, self._voiced = [], 0
        self._trigger.clear()
        self._trigger_voiced = 0
        self._history.clear()
        self._release.clear()
        self._settle.clear()
        self._energies.clear()
        self._flags.clear()

    def _close(self, truncated: bool) -> Segment | None:
        frames, voiced, start = self._frames, self._voiced, self._start_frame
        self._end()
        return self._segment(frames, voiced, start, self._last_voiced, truncated)

    def _segment(self, frames: list[np.ndarray], voiced: int, start: int, last_voiced: int,
                 truncated: bool) -> Segment | None:
        """Frames from frame number `start` -> a Segment, or None when too little is voiced."""
        voiced_ms = voiced * self.settings.frame_ms
        if voiced_ms < self.settings.min_speech_ms:
            return None
        seconds = self.settings.frame_ms / 1000.0
        end = start + len(frames)
        return Segment(
            samples=np.concatenate(frames).astype(np.float32),
            start=start * seconds,
            end=end * seconds,
            speech_end=min(last_voiced, end) * seconds,
            voiced_ms=voiced_ms,
            truncated=truncated,
            room=self._room,
        )
