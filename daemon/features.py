"""Waveform -> model input. The one source of truth for features.

Numpy only: the daemon imports this, and training imports the very same functions, so the
model never sees features computed by other code. Every parameter lives in `FeatureConfig`,
which is written into the model's metadata JSON and read back from it at run time.

Pipeline for one utterance (mono float waveform at the model's sample rate):
  trim leading/trailing silence -> centre-pad or crop to a fixed window -> STFT (periodic
  Hann) -> power -> mel (Slaney scale and norm, as librosa) -> dB referenced to the
  utterance's own peak, floored at -top_db -> scaled to [-1, 1].

Referencing each utterance to its own peak is the per-utterance normalization: it removes
gain, and it gives zero padding, digital silence and the quietest noise one shared floor
(-1), the same in training and in the daemon.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = 8000
    window_samples: int = 8000  # 1.0 s: FSDD's 99th percentile is 0.92 s
    n_fft: int = 256
    hop_length: int = 128
    n_mels: int = 40
    fmin: float = 20.0
    fmax: float = 4000.0
    top_db: float = 80.0  # dynamic range kept below the utterance's peak
    amin: float = 1e-14  # power floor before the log
    ref_floor_db: float = -60.0  # peak reference never below this: silence stays at the floor
    trim_db: float = 40.0  # frames quieter than peak - trim_db at the ends are silence
    trim_frame: int = 80  # 10 ms at 8 kHz
    trim_margin_frames: int = 5  # keep 50 ms around the speech so weak onsets (f, s, th) survive

    @property
    def n_frames(self) -> int:
        return 1 + (self.window_samples - self.n_fft) // self.hop_length

    @property
    def shape(self) -> tuple[int, int]:
        """Model input shape without batch and channel: (frames, mels)."""
        return (self.n_frames, self.n_mels)

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
    """Return the waveform as 1-D float64; reject what cannot be an utterance."""
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise ValueError(f"expected a mono 1-D waveform, got shape {x.shape}")
    if x.size == 0:
        raise ValueError("empty waveform")
    x = x.astype(np.float64, copy=False)
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise ValueError(f"waveform has {bad} non-finite sample(s) (NaN or inf)")
    return x


def frame_power(x: np.ndarray, frame: int) -> np.ndarray:
    """Mean power of each consecutive `frame`-sample frame; the last is zero-padded, and an
    empty input is one silent frame."""
    n_frames = max(1, -(-x.size // frame))
    padded = np.zeros(n_frames * frame)
    padded[: x.size] = x
    return np.mean(padded.reshape(n_frames, frame) ** 2, axis=1)


def speech_bounds(x: np.ndarray, frame: int, below_peak_db: float, margin_frames: int = 0
                  ) -> tuple[int, int]:
    """(start, stop) samples from the first to the last `frame`-sample frame within
    below_peak_db of the loudest, widened by margin_frames each side; all of x for
    digital silence."""
    energy_db = 10.0 * np.log10(frame_power(x, frame) + 1e-20)
    peak = energy_db.max()
    if peak < -150.0:  # digital silence: nothing to trim towards
        return 0, x.size
    loud = np.flatnonzero(energy_db >= peak - below_peak_db)
    first = max(0, loud[0] - margin_frames)
    last = min(energy_db.size, loud[-1] + 1 + margin_frames)
    return first * frame, min(x.size, last * frame)


def trim_silence(x: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Cut leading and trailing frames more than trim_db below the loudest frame."""
    start, stop = speech_bounds(x, cfg.trim_frame, cfg.trim_db, cfg.trim_margin_frames)
    return x[start:stop]


def fit_window(x: np.ndarray, cfg: FeatureConfig, position: float = 0.5) -> np.ndarray:
    """Pad with zeros or crop to exactly window_samples.

    Shorter input is placed at `position` (0 = start, 0.5 = centred, 1 = end) in zeros.
    Longer input is cropped to the window holding the most energy, so a long segment keeps
    its word instead of its first second.
    """
    w = cfg.window_samples
    if x.size <= w:
        out = np.zeros(w)
        start = int(round((w - x.size) * min(1.0, max(0.0, position))))
        out[start : start + x.size] = x
        return out
    cumulative = np.concatenate(([0.0], np.cumsum(x * x)))
    window_energy = cumulative[w:] - cumulative[:-w]
    start = int(np.argmax(window_energy))
    return x[start : start + w].copy()


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
def hann_window(n: int) -> np.ndarray:
    """Periodic Hann window (scipy.signal.get_window('hann', n), as librosa uses)."""
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
    w.flags.writeable = False
    return w


def power_spectrogram(x: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """|STFT|^2 without centre padding, shape (frames, n_fft // 2 + 1)."""
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    n_frames = 1 + (x.size - n_fft) // hop_length
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop_length][:n_frames]
    spectrum = np.fft.rfft(frames * hann_window(n_fft), axis=1)
    return spectrum.real**2 + spectrum.imag**2


def mel_power(x: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Mel power spectrogram, shape (frames, n_mels)."""
    basis = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
    return power_spectrogram(x, cfg.n_fft, cfg.hop_length) @ basis.T


def normalize_log(mel: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Power -> dB below the utterance's peak, floored at -top_db, scaled to [-1, 1]."""
    db = 10.0 * np.log10(np.maximum(mel, cfg.amin))
    ref = max(float(db.max()), cfg.ref_floor_db)
    db = np.maximum(db - ref, -cfg.top_db)
    return db / (cfg.top_db / 2.0) + 1.0


def window_features(window: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Features of an already fitted window: float32 (frames, n_mels) in [-1, 1]."""
    return normalize_log(mel_power(window, cfg), cfg).astype(np.float32)


def extract(waveform: np.ndarray, cfg: FeatureConfig, position: float = 0.5) -> np.ndarray:
    """One utterance -> model input (frames, n_mels), float32 in [-1, 1].

    `position` places a short utterance in its window; inference uses the default centre,
    training varies it (time-shift augmentation through the same code path).
    """
    x = check_waveform(waveform)
    return window_features(fit_window(trim_silence(x, cfg), cfg, position), cfg)
