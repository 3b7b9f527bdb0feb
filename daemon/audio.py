"""Reading audio files and converting them to the model's format (mono, model rate)."""

from __future__ import annotations

from collections.abc import Iterator
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


MAX_RATE = 768_000  # a header claiming more is corrupt, not audio


def pcm_to_mono(data: bytes, width: int, channels: int) -> tuple[np.ndarray, bytes]:
    """Interleaved little-endian PCM (width 1: unsigned 8-bit; 2, 3, 4: signed) -> mono
    float32 in [-1, 1] of its whole frames, and the bytes of a partial last frame, which
    the caller puts before the next chunk."""
    whole = len(data) - len(data) % (width * channels)
    data, rest = data[:whole], data[whole:]
    if width == 1:
        x = (np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 3:
        b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        x = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8).astype(np.float32) / 2**23
    elif width in (2, 4):
        x = np.frombuffer(data, dtype=f"<i{width}").astype(np.float32) / 2 ** (8 * width - 1)
    else:
        raise AudioError(f"unsupported sample width {width} bytes (1-4)")
    return to_mono(x.reshape(-1, channels)), rest


class StreamResampler:
    """Chunked band-limited resampling (libsoxr stream), no-op at equal rates."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in, self.rate_out = rate_in, rate_out
        self._stream = None
        if rate_in != rate_out:
            import soxr

            self._stream = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32",
                                               quality="HQ")

    def __call__(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        samples = samples.astype(np.float32, copy=False)
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples, last=last)


def open_audio(path: str | Path):
    """An open soundfile.SoundFile, or AudioError saying why not (missing, not a file,
    unreadable, an impossible header)."""
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise AudioError(f"{path}: no such file")
    if not p.is_file():
        kind = "a directory" if p.is_dir() else "a device, FIFO or socket"
        raise AudioError(f"{path}: not a regular file ({kind})")
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioError(f"{path}: not readable audio ({exc})") from exc
    if not 1 <= f.samplerate <= MAX_RATE or f.channels < 1:
        f.close()
        raise AudioError(f"{path}: impossible header ({f.samplerate} Hz, {f.channels} "
                         "channels): a damaged file")
    return f


def audio_blocks(path: str | Path, rate: int, block_seconds: float = 0.1
                 ) -> Iterator[np.ndarray]:
    """A file as mono float32 blocks at `rate`, read a block at a time: memory stays the
    same whatever the file's length. AudioError on a bad file, even after some blocks."""
    import soundfile as sf

    with open_audio(path) as f:
        resampler = StreamResampler(f.samplerate, rate)
        size = max(1, int(f.samplerate * block_seconds))
        seen = 0
        try:
            for block in f.blocks(blocksize=size, dtype="float32", always_2d=True):
                mono = to_mono(block)
                if not np.all(np.isfinite(mono)):
                    raise AudioError(f"{path}: contains non-finite samples")
                seen += mono.size
                yield resampler(mono)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"{path}: damaged after {seen / f.samplerate:.1f} s ({exc})"
                             ) from exc
        if seen == 0:
            raise AudioError(f"{path}: contains no samples")
        yield resampler(np.zeros(0, np.float32), last=True)


def read_audio(path: str | Path, rate: int, max_seconds: float | None = None) -> np.ndarray:
    """Any file libsndfile reads (WAV, FLAC, OGG...), any rate or channel count ->
    mono float32 at `rate`. `max_seconds`: longer files are an AudioError, found from the
    header before anything is read. Raises AudioError with the reason on anything unusable."""
    import soundfile as sf

    with open_audio(path) as f:
        seconds = f.frames / f.samplerate
        if max_seconds is not None and seconds > max_seconds:
            raise AudioError(f"{path}: {seconds:.0f} s long, more than the {max_seconds:g} s "
                             "one utterance may be")
        try:
            samples = f.read(dtype="float32", always_2d=False)
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
            raise AudioError(f"{path}: not readable audio ({exc})") from exc
        file_rate = f.samplerate
    samples = to_mono(np.asarray(samples))
    if samples.size == 0:
        raise AudioError(f"{path}: contains no samples")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{path}: contains non-finite samples")
    return resample(samples, int(file_rate), rate)
