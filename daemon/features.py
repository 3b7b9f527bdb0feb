"""Waveform -> log-mel frames for the speech embedding. The one source of truth for features.

Numpy only: the daemon imports this, and training imports the very same functions, so the
model never sees features computed by other code. Every parameter lives in `FeatureConfig`,
which is written into the model's metadata JSON and read back from it at run time.

The front end is the contract of Google's speech_embedding (Lin et al. 2020), as the
`melspectrogram.tflite` that openWakeWord ships computes it, reproduced here (tests prove the
equality on real audio):
  16 kHz samples at int16 scale -> frames of 512 samples every 160 (10 ms), a periodic Hann
  window of 400 samples centred in each frame -> power spectrum -> 32 Slaney mel bands over
  60-3800 Hz -> 10 log10(max(power, 1e-10)) -> floored 80 dB under the loudest value of each
  group of 8 frames (the reference computes 8 frames per call) -> x / 10 + 2.
The embedding network then maps 76 such frames to one 96-dim vector, one every 8 frames
(80 ms), and the classifier reads `head_embeddings` consecutive vectors.

FSDD is 8 kHz: upsampled it has nothing above 4 kHz, and this front end stops at 3.8 kHz, so
"no highs" cannot become a hint of "FSDD".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np

from .audio import change_speed


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = 16000
    n_fft: int = 512  # samples per STFT frame
    win_length: int = 400  # 25 ms periodic Hann, centred in the frame
    hop_length: int = 160  # 10 ms
    n_mels: int = 32
    fmin: float = 60.0
    fmax: float = 3800.0
    amin: float = 1e-10  # power floor before the log
    top_db: float = 80.0  # floor below the loudest value of each group of frames
    floor_group: int = 8  # frames per group for that floor (the reference's chunk)
    input_scale: float = 32768.0  # samples in [-1, 1] -> int16 scale, as the reference takes
    embedding_frames: int = 76  # mel frames per embedding (775 ms)
    embedding_step: int = 8  # mel frames between embeddings (80 ms)
    head_embeddings: int = 16  # embeddings the classifier reads (1.98 s of audio)
    tail_seconds: float = 0.15  # a whole-file word ends this far before the window's end
    pad_dbfs: float = -80.0  # a short clip is padded with noise at its own noise floor, never
    # quieter than this (a quiet room's microphone: digital silence is no room, and its
    # log-mel lies far below anything heard) nor louder than pad_max_dbfs
    pad_max_dbfs: float = -40.0
    trim_db: float = 40.0  # frames quieter than peak - trim_db at the ends are silence
    trim_frame: int = 160  # 10 ms
    trim_margin_frames: int = 5  # keep 50 ms around the speech so weak onsets survive

    @property
    def window_frames(self) -> int:
        """Mel frames behind the classifier's input."""
        return self.embedding_frames + self.embedding_step * (self.head_embeddings - 1)

    @property
    def window_samples(self) -> int:
        """Audio behind the classifier's input."""
        return (self.window_frames - 1) * self.hop_length + self.n_fft

    @property
    def embedding_samples(self) -> int:
        """Audio between two embeddings (80 ms)."""
        return self.embedding_step * self.hop_length

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown feature parameter(s): {sorted(unknown)}")
        missing = known - set(data)
        if missing:
            raise ValueError(f"missing feature parameter(s): {sorted(missing)}")
        return cls(**data)


def check_waveform(waveform: np.ndarray) -> np.ndarray:
    """Return the waveform as 1-D float64 with its mean taken off; reject what cannot be an
    utterance. The mean is a microphone's DC offset: left in, it sets the level a clip's
    room is measured at (its padding) and puts a step at each edge of the word."""
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise ValueError(f"expected a mono 1-D waveform, got shape {x.shape}")
    if x.size == 0:
        raise ValueError("empty waveform")
    x = x.astype(np.float64, copy=False)
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise ValueError(f"waveform has {bad} non-finite sample(s) (NaN or inf)")
    return x - np.mean(x)


def frame_power(x: np.ndarray, frame: int) -> np.ndarray:
    """Mean power of each consecutive `frame`-sample frame; the last is zero-padded, and an
    empty input is one silent frame."""
    n_frames = max(1, -(-x.size // frame))
    padded = np.zeros(n_frames * frame)
    padded[: x.size] = x
    return np.mean(padded.reshape(n_frames, frame) ** 2, axis=1)


def frame_db(x: np.ndarray, frame: int) -> np.ndarray:
    """Energy of each `frame`-sample frame in dB (full scale 0 dB), -200 for digital silence."""
    return 10.0 * np.log10(frame_power(x, frame) + 1e-20)


def speech_bounds(x: np.ndarray, frame: int, below_peak_db: float, margin_frames: int = 0
                  ) -> tuple[int, int]:
    """(start, stop) samples from the first to the last `frame`-sample frame within
    below_peak_db of the loudest, widened by margin_frames each side; all of x for
    digital silence."""
    energy_db = frame_db(x, frame)
    peak = energy_db.max()
    if peak < -150.0:  # digital silence: nothing to trim towards
        return 0, x.size
    loud = np.flatnonzero(energy_db >= peak - below_peak_db)
    first = max(0, loud[0] - margin_frames)
    last = min(energy_db.size, loud[-1] + 1 + margin_frames)
    return first * frame, min(x.size, last * frame)


class DcRemover:
    """A stream's DC offset, followed frame by frame and taken off: what check_waveform does
    for a whole clip, for audio that never ends. The VAD, the room's level and the words'
    edges then see a microphone with an offset as they see one without. The estimate moves
    with a time constant of `seconds` (a high-pass near 0.3 Hz, far under any voice)."""

    def __init__(self, sample_rate: int, seconds: float = 0.5) -> None:
        self._samples = seconds * sample_rate
        self._offset: float | None = None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if frame.size == 0:
            return frame
        mean = float(np.mean(frame))
        if self._offset is None:
            self._offset = mean
        else:
            self._offset += min(1.0, frame.size / self._samples) * (mean - self._offset)
        return (frame - self._offset).astype(frame.dtype, copy=False)

    def reset(self) -> None:
        """A new device or a gap: its offset is learnt anew."""
        self._offset = None


def trim_silence(x: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Cut leading and trailing frames more than trim_db below the loudest frame."""
    start, stop = speech_bounds(x, cfg.trim_frame, cfg.trim_db, cfg.trim_margin_frames)
    return x[start:stop]


def noise_floor(x: np.ndarray, cfg: FeatureConfig, percentile: float = 0.0) -> float:
    """The level of a clip's quietest 10 ms (its room), in dBFS, within pad_dbfs-pad_max_dbfs:
    what pads it, so the window sounds like one room (as training's noisy renditions do),
    not a word in a box of silence. `percentile` > 0 takes that percentile of its 10 ms
    levels instead (pipeline.room_level: the median of a segment's pre-roll)."""
    energy = frame_db(x, cfg.trim_frame)
    energy = energy[energy > -150.0]  # digital silence is no room
    level = float(np.percentile(energy, percentile)) if energy.size else cfg.pad_dbfs
    return min(max(level, cfg.pad_dbfs), cfg.pad_max_dbfs)


def utterance_window(x: np.ndarray, cfg: FeatureConfig, tail: float | None = None,
                     pad_dbfs: float | None = None, lead: int = 0, speed: float = 1.0
                     ) -> np.ndarray:
    """One word -> exactly window_samples of audio, the word ending `tail` seconds (default
    cfg.tail_seconds) before the end, as the end of a VAD segment places it in a stream.
    `speed` plays the word as a tape that many times faster first (the model's test-time
    speeds); the padding is not resampled.

    Shorter input is padded before (and after) with the same seeded noise every time, at
    `pad_dbfs` (default cfg.pad_dbfs); longer input keeps the loudest stretch that fits, so
    a long clip keeps its word instead of its first two seconds. `lead` samples more come
    before the window (the model's second embedding grid starts that much earlier).
    """
    if speed != 1.0:
        x = change_speed(x, speed, cfg.sample_rate)
    w = cfg.window_samples
    tail_samples = int(round((cfg.tail_seconds if tail is None else tail) * cfg.sample_rate))
    tail_samples = min(max(0, tail_samples), w - 1)
    room = w - tail_samples
    if x.size > room:
        cumulative = np.concatenate(([0.0], np.cumsum(x * x)))
        energy = cumulative[room:] - cumulative[:-room]
        start = int(np.argmax(energy))
        x = x[start : start + room]
    level = cfg.pad_dbfs if pad_dbfs is None else pad_dbfs
    out = pad_noise(w + lead, cfg.pad_dbfs) * 10 ** ((level - cfg.pad_dbfs) / 20)
    out[lead + room - x.size : lead + room] = x
    return out


STRING_LEAD_S = 0.3  # quiet before a string of words, as the segmenter's pre-roll leaves it
STRING_TAIL_S = 0.3  # and after its last word: the last embedding must hear the word end
STRING_MULTIPLE = 4  # embeddings per string rounded up to this: few shapes to train on


def string_audio(x: np.ndarray, cfg: FeatureConfig, pad_dbfs: float | None = None,
                 lead: float = STRING_LEAD_S, tail: float = STRING_TAIL_S) -> np.ndarray:
    """Trimmed speech of any length (a string of digits) -> audio for the strings stage:
    `lead` seconds of quiet at `pad_dbfs`, the speech, at least `tail` seconds of quiet,
    lengthened so its embeddings number a multiple of STRING_MULTIPLE."""
    rate = cfg.sample_rate
    lead_n, tail_n = int(round(lead * rate)), int(round(tail * rate))
    frames = 1 + max(0, -(-(lead_n + x.size + tail_n - cfg.n_fft) // cfg.hop_length))
    n = 1 + max(0, -(-(frames - cfg.embedding_frames) // cfg.embedding_step))
    n = -(-n // STRING_MULTIPLE) * STRING_MULTIPLE
    frames = cfg.embedding_frames + cfg.embedding_step * (n - 1)
    total = cfg.n_fft + cfg.hop_length * (frames - 1)
    level = cfg.pad_dbfs if pad_dbfs is None else pad_dbfs
    noise = pad_noise(cfg.window_samples, cfg.pad_dbfs) * 10 ** ((level - cfg.pad_dbfs) / 20)
    out = np.resize(noise, total)
    out[lead_n : lead_n + x.size] = x
    return out


@lru_cache(maxsize=4)
def pad_noise(n: int, dbfs: float) -> np.ndarray:
    """n samples of white noise at dbfs RMS, the same every call."""
    noise = np.random.default_rng(20021322).standard_normal(n) * 10 ** (dbfs / 20)
    noise.flags.writeable = False
    return noise


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    # Slaney's auditory-toolbox scale: linear below 1 kHz, logarithmic above (librosa default).
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(
        hz >= min_log_hz,
        min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep,
        hz / f_sp,
    )


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(
        mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), mel * f_sp
    )


@lru_cache(maxsize=8)
def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float
) -> np.ndarray:
    """Triangular mel filters, shape (n_mels, n_fft // 2 + 1), Slaney-normalized."""
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_points = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2:] - mel_points[:-2]))[:, None]
    weights.flags.writeable = False
    return weights


@lru_cache(maxsize=8)
def frame_window(n_fft: int, win_length: int) -> np.ndarray:
    """Periodic Hann of win_length samples, zero-padded to n_fft and centred in it."""
    w = np.zeros(n_fft)
    offset = (n_fft - win_length) // 2
    w[offset : offset + win_length] = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win_length)
                                                         / win_length)
    w.flags.writeable = False
    return w


def n_mel_frames(n_samples: int, cfg: FeatureConfig) -> int:
    return 0 if n_samples < cfg.n_fft else 1 + (n_samples - cfg.n_fft) // cfg.hop_length


def log_mel(x: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Samples in [-1, 1] -> scaled log-mel frames, float32 (frames, n_mels).

    Frame i covers samples [i * hop, i * hop + n_fft). The 80 dB floor is taken per group of
    floor_group frames counted from the first, so a stream cut at multiples of
    floor_group * hop samples gives the same frames in pieces as whole. The FFT runs in
    float64 (numpy's float32 FFT is several times slower), the rest in float32, as the
    reference does: a Pi has little to spare.
    """
    n = n_mel_frames(x.size, cfg)
    if n == 0:
        return np.zeros((0, cfg.n_mels), dtype=np.float32)
    x = np.asarray(x, dtype=np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(x, cfg.n_fft)[:: cfg.hop_length][:n]
    window, basis = _frame_constants(cfg.n_fft, cfg.win_length, cfg.input_scale,
                                     cfg.sample_rate, cfg.n_mels, cfg.fmin, cfg.fmax)
    spectrum = np.fft.rfft(frames * window, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    db = 10.0 * np.log10(np.maximum(power @ basis, np.float32(cfg.amin)))
    g = cfg.floor_group
    groups = -(-n // g)
    peak = np.full(groups * g, -np.inf, dtype=np.float32)
    peak[:n] = db.max(axis=1)
    floor = np.repeat(peak.reshape(groups, g).max(axis=1) - cfg.top_db, g)[:n]
    return np.maximum(db, floor[:, None]) / 10.0 + 2.0


@lru_cache(maxsize=4)
def _frame_constants(n_fft: int, win_length: int, scale: float, sample_rate: int, n_mels: int,
                     fmin: float, fmax: float) -> tuple[np.ndarray, np.ndarray]:
    """The scaled analysis window (float64, the FFT's) and the mel basis (bins, mels),
    float32."""
    window = frame_window(n_fft, win_length) * scale
    basis = np.ascontiguousarray(mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax).T,
                                 dtype=np.float32)
    window.flags.writeable = basis.flags.writeable = False
    return window, basis


def n_embeddings(n_frames: int, cfg: FeatureConfig) -> int:
    """Embeddings in n_frames mel frames: one per embedding_step once embedding_frames fill."""
    if n_frames < cfg.embedding_frames:
        return 0
    return 1 + (n_frames - cfg.embedding_frames) // cfg.embedding_step


def utterance_audio(waveform: np.ndarray, cfg: FeatureConfig, tail: float | None = None,
                    floor: float | None = None, lead: int = 0, speed: float = 1.0
                    ) -> np.ndarray:
    """One utterance -> the audio behind the classifier's input (window_samples + lead):
    trimmed, played at `speed`, then padded at the clip's noise floor (or `floor`, a
    stream's, in dBFS). `tail` places the word in its window; inference uses the default."""
    x = check_waveform(waveform)
    level = noise_floor(x, cfg) if floor is None else floor
    return utterance_window(trim_silence(x, cfg), cfg, tail, level, lead, speed)


def window_mel(waveform: np.ndarray, cfg: FeatureConfig, tail: float | None = None,
               floor: float | None = None, lead: int = 0, speed: float = 1.0) -> np.ndarray:
    """One utterance -> the mel frames behind the classifier's input (window_frames, n_mels),
    as utterance_audio places it."""
    return log_mel(utterance_audio(waveform, cfg, tail, floor, lead, speed), cfg)
