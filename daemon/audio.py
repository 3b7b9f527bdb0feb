"""Reading audio files and converting them to the model's format (mono, model rate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class AudioError(Exception):
    """An audio file could not be read or is not usable audio."""


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(n,) or (n, channels) -> (n,) by averaging channels."""
    if samples.ndim == 1:
        return samples
    if samples.ndim == 2:
        return samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1)
    raise AudioError(f"unexpected sample array shape {samples.shape}")


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling (libsoxr, high quality). No-op when the rates match."""
    if rate_in == rate_out:
        return samples.astype(np.float32, copy=False)
    import soxr  # small, C-backed; imported lazily so feature-only users do not pay for it

    return soxr.resample(samples.astype(np.float32, copy=False), rate_in, rate_out, quality="HQ")


def change_speed(samples: np.ndarray, factor: float, rate: int) -> np.ndarray:
    """Play `factor` times faster: 1/factor as long, pitch and formants scaled by `factor`
    (a shorter or longer vocal tract), as a tape played at another speed."""
    return resample(samples, round(rate * factor), rate)


def read_audio(path: str | Path, rate: int) -> np.ndarray:
    """Any file libsndfile reads (WAV, FLAC, OGG...), any rate or channel count ->
    mono float32 at `rate`. Raises AudioError with the reason on anything unusable."""
    import soundfile as sf

    if not Path(path).is_file():
        raise AudioError(f"{path}: no such file")
    try:
        samples, file_rate = sf.read(str(path), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioError(f"{path}: not readable audio ({exc})") from exc
    samples = to_mono(np.asarray(samples))
    if samples.size == 0:
        raise AudioError(f"{path}: contains no samples")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{path}: contains non-finite samples")
    return resample(samples, int(file_rate), rate)
