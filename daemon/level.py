"""The input's level: a meter to set up a microphone (`digitd level`), and a watch that
notices a muted or dead one (digital silence, or one constant value) while listening."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FLOOR_DBFS = -96.0  # 16-bit silence; what a level of exactly zero shows as


def dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale; FLOOR_DBFS for silence."""
    if samples.size == 0:
        return FLOOR_DBFS
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64))))
    return max(FLOOR_DBFS, 20 * math.log10(rms)) if rms > 0 else FLOOR_DBFS


def meter_lines(blocks: Iterable[Any], rate: int, interval: float = 0.25,
                width: int = 40) -> Iterator[str]:
    """A line every `interval` seconds of audio: RMS and peak in dBFS, and a bar from -80 to
    0 dBFS. Speech at a good distance shows about -35 to -15; a quiet room below -60."""
    want = max(1, int(rate * interval))
    pending = np.zeros(0, dtype=np.float32)
    for block in blocks:
        pending = np.concatenate([pending, block.samples])
        while pending.size >= want:
            x, pending = pending[:want], pending[want:]
            yield _meter_line(x, width)


OFFSET_SHOWN_DBFS = -60.0  # a DC offset at least this large is named on the meter's line


def _meter_line(x: np.ndarray, width: int) -> str:
    """The level recognition hears: a DC offset is taken off first (as the pipeline does),
    and named when it is large enough to matter, so a quiet room reads as quiet."""
    offset = float(np.mean(x, dtype=np.float64))
    x = x - offset
    level = dbfs(x)
    peak = FLOOR_DBFS if not np.any(x) else max(
        FLOOR_DBFS, 20 * math.log10(float(np.max(np.abs(x)))))
    filled = int(round(width * min(1.0, max(0.0, (level + 80) / 80))))
    line = f"{level:6.1f} dBFS  peak {peak:6.1f}  |{'#' * filled}{'.' * (width - filled)}|"
    offset_db = 20 * math.log10(abs(offset)) if offset else FLOOR_DBFS
    if offset_db >= OFFSET_SHOWN_DBFS:
        line += f"  DC offset {offset_db:.0f} dBFS (taken off)"
    return line


class SilenceWatch:
    """Says once when the input has been flat (every sample equal: a muted or dead
    microphone gives digital silence or a constant value) for `seconds`, and once when
    sound returns. A quiet room is never flat: its noise moves the samples."""

    def __init__(self, rate: int, seconds: float = 20.0) -> None:
        self.limit = int(rate * seconds)
        self.seconds = seconds
        self.flat_samples = 0
        self.silent = False

    def __call__(self, samples: np.ndarray) -> None:
        if samples.size == 0:
            return
        if float(np.ptp(samples)) > 0.0:
            self.flat_samples = 0
            if self.silent:
                self.silent = False
                log.info("the input has sound again")
            return
        self.flat_samples += samples.size
        if not self.silent and self.flat_samples >= self.limit:
            self.silent = True
            log.warning("the input has been digital silence for %g s: is the microphone muted "
                        "or dead? (`digitd level` shows what it hears)", self.seconds)
