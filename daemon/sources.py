"""Audio sources: each yields blocks of mono float32 samples at the model's rate.

A source is an iterator of `Block`s; the pipeline does not know which kind it reads.
  FileSource        a file of any format/rate/channels (libsndfile), in 100 ms blocks
  RawPcmSource      raw s16le PCM from a binary stream (stdin:
                    `arecord ... | digitd listen --input -`)
  MicrophoneSource  a sounddevice input stream, reopened with backoff when the device goes
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import queue
import sys
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from .audio import StreamResampler, audio_blocks, pcm_to_mono, to_mono

log = logging.getLogger(__name__)

MIC_RATES = (16000, 48000, 44100, 32000, 22050, 8000)


@dataclass(frozen=True)
class Block:
    samples: np.ndarray  # mono float32 at the model rate
    arrival: float  # time.monotonic() when the last sample was captured
    gap: bool = False  # audio was lost before this block (device reopened)


class FileSource:
    """A file read a block at a time (any length, bounded memory); AudioError from the
    first block when it is unusable, or later when it is damaged part way."""

    def __init__(self, path: str, rate: int, block_seconds: float = 0.1) -> None:
        self.blocks = audio_blocks(path, rate, block_seconds)
        self._first = next(self.blocks)  # a bad header is found before anything is recognized

    def __iter__(self) -> Iterator[Block]:
        yield Block(self._first, time.monotonic())
        for samples in self.blocks:
            yield Block(samples, time.monotonic())


class RawPcmSource:
    """Signed 16-bit little-endian PCM at `rate` with `channels` interleaved."""

    def __init__(self, stream: BinaryIO, rate: int, model_rate: int, channels: int = 1,
                 block_seconds: float = 0.02) -> None:
        self.stream = stream
        self.channels = channels
        self.description = f"stdin (s16le, {rate} Hz, {channels} ch)"
        self.lost = False
        self.block_bytes = max(1, int(rate * block_seconds)) * 2 * channels
        self.resample = StreamResampler(rate, model_rate)

    def __iter__(self) -> Iterator[Block]:
        leftover = b""
        while True:
            chunk = self.stream.read(self.block_bytes)
            if not chunk:
                break
            mono, leftover = pcm_to_mono(leftover + chunk, 2, self.channels)
            yield Block(self.resample(mono), time.monotonic())
        yield Block(self.resample(np.zeros(0, np.float32), last=True), time.monotonic())


class DeviceError(Exception):
    """No usable input device."""


def _sounddevice():
    first = "sounddevice" not in sys.modules
    if first:
        skip_output_only_plugins()
    try:
        import sounddevice as sd  # the first import initialises PortAudio: the device scan
    except OSError as exc:  # the PortAudio shared library is missing
        raise DeviceError(f"PortAudio is not available ({exc}); on Debian/Raspberry Pi OS: "
                          "sudo apt-get install libportaudio2") from exc
    if first:
        release_alsa_plugins()
    return sd


def rescan_devices() -> None:
    """Re-initialise PortAudio, which only sees devices that came or went after a scan.
    No stream may be open."""
    sd = _sounddevice()
    sd._terminate()
    skip_output_only_plugins()
    sd._initialize()
    release_alsa_plugins()


# ALSA PCM plugin types that only play: PortAudio's scan need not open them to find inputs.
# a52 (the AC-3 encoder for S/PDIF) maps libavcodec with all its codecs, ~14 MB resident.
OUTPUT_ONLY_PLUGIN_TYPES = frozenset({"a52"})


def skip_output_only_plugins() -> int:
    """Drop output-only PCMs from alsa-lib's loaded configuration before PortAudio scans.

    The scan opens every PCM in the configuration; for a52 that costs ~14 MB at the moment
    of a rescan, on top of the loaded model. PortAudio reads the configuration already in
    memory, and release_alsa_plugins() frees it afterwards, so the next open sees the full
    configuration again. Returns how many PCMs were skipped; 0 where alsa-lib is absent."""
    try:
        lib = ctypes.CDLL("libasound.so.2")
        top = ctypes.c_void_p.in_dll(lib, "snd_config")
    except (OSError, ValueError):
        return 0
    for name in ("snd_config_iterator_first", "snd_config_iterator_next",
                 "snd_config_iterator_end", "snd_config_iterator_entry"):
        getattr(lib, name).restype = ctypes.c_void_p
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    lib.snd_config_search.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                      ctypes.POINTER(ctypes.c_void_p)]
    lib.snd_config_get_string.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p)]
    lib.snd_config_delete.argtypes = [ctypes.c_void_p]
    pcms = ctypes.c_void_p()
    if lib.snd_config_update() < 0 or lib.snd_config_search(top, b"pcm", ctypes.byref(pcms)):
        return 0
    skipped = []
    item, end = lib.snd_config_iterator_first(pcms), lib.snd_config_iterator_end(pcms)
    while item != end:
        pcm = lib.snd_config_iterator_entry(item)
        kind, text = ctypes.c_void_p(), ctypes.c_char_p()
        if (lib.snd_config_search(pcm, b"type", ctypes.byref(kind)) == 0
                and lib.snd_config_get_string(kind, ctypes.byref(text)) == 0
                and text.value and text.value.decode(errors="replace") in OUTPUT_ONLY_PLUGIN_TYPES):
            skipped.append(pcm)
        item = lib.snd_config_iterator_next(item)
    for pcm in skipped:  # deleted after the walk: deleting unlinks the node being iterated
        lib.snd_config_delete(pcm)
    return len(skipped)


def release_alsa_plugins() -> None:
    """Unload the ALSA plugins that PortAudio's device scan loaded and no stream uses.

    To list devices, PortAudio opens every PCM that ALSA's configuration defines, and each
    plugin it opens (jack, oss, speex, upmix ... with libasound2-plugins) stays mapped for
    the life of the process. Freeing alsa-lib's global configuration unloads every plugin
    no open PCM holds; the next open reads the configuration again. A no-op where
    libasound is not present (macOS, Windows)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libasound.so.2").snd_config_update_free_global()


def input_devices() -> list[dict[str, Any]]:
    sd = _sounddevice()

    devices = []
    for index, info in enumerate(sd.query_devices()):
        if info["max_input_channels"] > 0:
            devices.append({"index": index, "name": info["name"],
                            "default_rate": int(info["default_samplerate"]),
                            "channels": int(info["max_input_channels"])})
    return devices


def describe_devices(devices: list[dict[str, Any]]) -> str:
    if not devices:
        return "  (no input devices found)"
    return "\n".join(f"  {d['index']:>3}  {d['name']}  ({d['default_rate']} Hz, "
                     f"{d['channels']} ch)" for d in devices)


def resolve_device(spec: str | int | None) -> int | None:
    """An index, or a case-insensitive substring of the name; None: the system default."""
    if spec is None or spec == "":
        return None
    devices = input_devices()
    if isinstance(spec, int) or str(spec).isdigit():
        index = int(spec)
        if any(d["index"] == index for d in devices):
            return index
    else:
        matches = [d for d in devices if str(spec).lower() in d["name"].lower()]
        if len(matches) == 1:
            return matches[0]["index"]
        if len(matches) > 1:
            raise DeviceError(f"input device {spec!r} is ambiguous; it matches:\n"
                              + describe_devices(matches))
    raise DeviceError(f"no input device {spec!r}; available input devices:\n"
                      + describe_devices(devices))


class MicrophoneSource:
    """A sounddevice input stream. The callback only copies frames into a bounded queue;
    the consumer thread does the rest. A stream that errors or goes silent (no frames for
    `stall_seconds`) is closed and reopened with backoff until the device returns."""

    def __init__(self, model_rate: int, device: str | int | None = None,
                 block_seconds: float = 0.02, queue_seconds: float = 2.0,
                 stall_seconds: float = 3.0, max_backoff: float = 8.0) -> None:
        self.model_rate = model_rate
        self.device_spec = device
        self.block_seconds = block_seconds
        self.stall_seconds = stall_seconds
        self.max_backoff = max_backoff
        self._queue: queue.Queue = queue.Queue(maxsize=max(2, int(queue_seconds / block_seconds)))
        self._stop = threading.Event()
        self._stream = None
        self.overflows = 0  # PortAudio reported input overflow
        self.dropped_blocks = 0  # our queue was full: the consumer is starved
        self.description = "no device"
        self.lost = False  # the device went away and is being reopened
        self._format: tuple[int, int] | None = None  # (rate, channels) that last worked
        self.device = resolve_device(device)  # raises DeviceError with the list
        sd = _sounddevice()
        try:
            sd.query_devices(self.device, "input")
        except (ValueError, sd.PortAudioError) as exc:  # no default input
            raise DeviceError(f"no usable input device ({exc}); available input devices:\n"
                              + describe_devices(input_devices())) from exc

    def stop(self) -> None:
        self._stop.set()

    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        item = (indata.copy(), time.monotonic())
        try:
            self._queue.put_nowait(item)
        except queue.Full:  # drop the oldest audio, never grow
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()
            self.dropped_blocks += 1
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(item)

    def _formats(self, info: dict) -> list[tuple[int, int]]:
        """(rate, channels) to try: the last one that worked, else the model rate first
        (no resampling), then common rates; mono first, stereo mixed down otherwise."""
        if self._format is not None:
            return [self._format]
        rates = dict.fromkeys([self.model_rate, *MIC_RATES, int(info["default_samplerate"])])
        channels = dict.fromkeys((1, min(2, int(info["max_input_channels"]))))
        return [(rate, ch) for rate in rates for ch in channels]

    def _open(self) -> StreamResampler:
        import sounddevice as sd

        info = sd.query_devices(self.device, "input")
        last_error: Exception | None = None
        for rate, channels in self._formats(info):
            try:
                sd.check_input_settings(device=self.device, samplerate=rate, channels=channels,
                                        dtype="float32")
            except Exception as exc:  # PortAudioError or ValueError, depending on the backend
                last_error = exc
                continue
            try:
                stream = sd.InputStream(device=self.device, samplerate=rate, channels=channels,
                                        dtype="float32", blocksize=int(rate * self.block_seconds),
                                        callback=self._callback)
                stream.start()
            except sd.PortAudioError as exc:  # busy or vanished between check and open
                raise DeviceError(f"{info['name']}: cannot open input stream ({exc})") from exc
            self._stream, self._format = stream, (rate, channels)
            self.description = f"{info['name']} at {rate} Hz, {channels} ch"
            return StreamResampler(rate, self.model_rate)
        raise DeviceError(f"{info['name']}: no supported input format ({last_error})")

    def _close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.abort(ignore_errors=True)
                self._stream.close(ignore_errors=True)
            except Exception as exc:  # the device may be gone already
                log.debug("closing stream: %s", exc)
            self._stream = None
        while not self._queue.empty():
            self._queue.get_nowait()

    def _reopen_forever(self) -> Generator[Block, None, StreamResampler | None]:
        """Open the device, retrying with backoff; returns the resampler, None when stopped.

        Yields an empty gap block about every second while it waits, so the consumer's
        loop keeps turning (systemd watchdog pings, status) through a long absence."""
        delay = 0.5
        logged = False
        while not self._stop.is_set():
            try:
                rescan_devices()
                device = resolve_device(self.device_spec)
                if device != self.device:  # another device now: search its formats again
                    self.device, self._format = device, None
                return self._open()
            except Exception as exc:
                if not logged:
                    log.warning("input device unavailable (%s); retrying with backoff", exc)
                    logged = True
            deadline = time.monotonic() + delay
            while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
                self._stop.wait(min(1.0, left))
                yield Block(np.zeros(0, np.float32), time.monotonic(), gap=True)
            delay = min(self.max_backoff, delay * 2)
        return None

    def __iter__(self) -> Iterator[Block]:
        resample = self._open()
        log.info("listening on %s", self.description)
        gap = False
        reported, last_report = 0, 0.0
        try:
            while not self._stop.is_set():
                try:
                    data, arrival = self._queue.get(timeout=self.stall_seconds)
                except queue.Empty:
                    data = None
                stream_dead = self._stream is None or not self._stream.active
                if data is None or stream_dead:
                    if self._stop.is_set():
                        break
                    log.warning("input stream %s (%s); reopening",
                                "stopped" if stream_dead else
                                f"delivered no audio for {self.stall_seconds:.0f} s",
                                self.description)
                    self._close()
                    self.lost = True
                    resample = yield from self._reopen_forever()
                    if resample is None:
                        break
                    self.lost = False
                    log.info("input device back: listening on %s", self.description)
                    gap = True
                    continue
                if self.overflows + self.dropped_blocks > reported and (
                        time.monotonic() - last_report > 10.0):
                    log.warning("audio lost so far: %d input overflows, %d blocks dropped "
                                "(processing too slow)", self.overflows, self.dropped_blocks)
                    reported, last_report = self.overflows + self.dropped_blocks, time.monotonic()
                yield Block(resample(to_mono(data)), arrival, gap)
                gap = False
        finally:
            self._close()
            if self.overflows or self.dropped_blocks:
                log.info("input overflows: %d, blocks dropped under load: %d",
                         self.overflows, self.dropped_blocks)


def stdin_binary() -> BinaryIO:
    return sys.stdin.buffer
