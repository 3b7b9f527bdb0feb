"""digitd as a Wyoming speech-to-text server, for Home Assistant's voice pipeline.

A client sends `transcribe` (optional), `audio-start`, `audio-chunk`s at any rate, width and
channel count, and `audio-stop`; digitd answers a `transcript` whose text is the digits heard,
"4 2 7" (empty when nothing was a digit). `describe` gets `info`. Each connection has its own
stream state; the model is loaded once and shared (one asyncio thread, so no two
connections use an interpreter at once). Audio is recognized as it arrives, so memory stays
bounded whatever a client sends, and `transcript` follows `audio-stop` at once.

A client that sends garbage, an event too large, chunks before `audio-start` or events it
should not, is logged; a bad connection is closed, the others go on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from .audio import AudioError, StreamResampler, pcm_to_mono
from .model import DigitClassifier
from .pipeline import StreamRecognizer
from .segmenter import SegmenterSettings

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024  # an event's JSON line
MAX_DATA_BYTES = 64 * 1024  # its data block
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024  # one audio chunk: seconds of audio, never minutes
MAX_SECONDS = 120.0  # audio recognized per transcription; the rest is read and ignored
MAX_DIGITS = 64  # digits in one transcript


class ProtocolError(Exception):
    """The client broke the protocol: close its connection."""


async def read_event(reader: asyncio.StreamReader) -> Any | None:
    """The next event (wyoming.event.Event), None at the end of the stream. Like
    wyoming.event.async_read_event, with limits: a client cannot make us buffer gigabytes."""
    from wyoming.event import Event

    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise ProtocolError("connection closed in the middle of an event") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError(f"an event header longer than {MAX_HEADER_BYTES} bytes") from exc
    try:
        header = json.loads(line)
        kind = header["type"]
        data = header.get("data") or {}
        data_length = int(header.get("data_length") or 0)
        payload_length = int(header.get("payload_length") or 0)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ProtocolError(f"not a Wyoming event: {line[:60]!r}") from exc
    if not (0 <= data_length <= MAX_DATA_BYTES and 0 <= payload_length <= MAX_PAYLOAD_BYTES):
        raise ProtocolError(f"{kind}: data {data_length} / payload {payload_length} bytes, "
                            "more than a Wyoming client sends")
    if data_length:
        try:
            data = {**data, **json.loads(await reader.readexactly(data_length))}
        except (ValueError, TypeError) as exc:
            raise ProtocolError(f"{kind}: its data is not a JSON object") from exc
    payload = await reader.readexactly(payload_length) if payload_length else None
    return Event(type=str(kind), data=data, payload=payload)


@dataclass
class Transcription:
    """One audio-start ... audio-stop: the client's format, our stream state, the digits."""

    recognizer: StreamRecognizer
    rate: int
    width: int
    channels: int
    resampler: StreamResampler
    digits: list[int] = field(default_factory=list)
    seconds: float = 0.0
    leftover: bytes = b""

    def feed(self, audio: bytes, last: bool = False) -> None:
        if self.seconds >= MAX_SECONDS and not last:
            self.leftover = b""  # past the cap: read and ignored
            return
        mono, self.leftover = pcm_to_mono(self.leftover + audio, self.width, self.channels)
        self.seconds += mono.size / self.rate
        events = self.recognizer.feed(self.resampler(mono, last=last))
        if last:
            events += self.recognizer.finish()
        self.digits += [e.digit for e in events if e.digit is not None]

    def text(self) -> str:
        return " ".join(str(d) for d in self.digits[:MAX_DIGITS])


class Connection:
    """One client: its events in, our answers out."""

    def __init__(self, server: WyomingServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server, self.reader, self.writer = server, reader, writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "a local client"
        self.current: Transcription | None = None
        self.warned: set[str] = set()

    async def run(self) -> None:
        try:
            while (event := await read_event(self.reader)) is not None:
                await self.handle(event)
        except ProtocolError as exc:
            log.warning("Wyoming client %s: %s; closing its connection", self.peer, exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            log.info("Wyoming client %s went away%s", self.peer,
                     " mid-stream" if self.current else "")
        except AudioError as exc:
            log.warning("Wyoming client %s: %s; closing its connection", self.peer, exc)
        finally:
            self.writer.close()

    def warn_once(self, key: str, message: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            log.warning("Wyoming client %s: %s", self.peer, message)

    async def handle(self, event: Any) -> None:
        from wyoming.asr import Transcript
        from wyoming.audio import AudioChunk, AudioStart, AudioStop
        from wyoming.event import async_write_event
        from wyoming.info import Describe

        if Describe.is_type(event.type):
            await async_write_event(self.server.info().event(), self.writer)
        elif AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            self.current = self.server.transcription(start.rate, start.width, start.channels)
        elif AudioChunk.is_type(event.type):
            if self.current is None:
                self.warn_once("early", "audio-chunk before audio-start: ignored")
                return
            self.current.feed(event.payload or b"")
            if self.current.seconds >= MAX_SECONDS:
                self.warn_once("long", f"more than {MAX_SECONDS:g} s of audio in one "
                               "transcription: the rest is ignored")
        elif AudioStop.is_type(event.type):
            if self.current is None:
                self.warn_once("stop", "audio-stop without audio-start: an empty transcript")
                text = ""
            else:
                self.current.feed(b"", last=True)
                text, self.current = self.current.text(), None
            await async_write_event(Transcript(text=text, language="en").event(), self.writer)
            log.info("Wyoming client %s: transcript %r", self.peer, text)
        elif event.type != "transcribe":  # transcribe only names the language: en is ours
            self.warn_once(f"unknown {event.type}", f"unexpected event {event.type!r}: ignored")


class WyomingServer:
    """Serves one loaded model to every connection."""

    def __init__(self, classifier: DigitClassifier, segmenter: SegmenterSettings) -> None:
        self.classifier, self.segmenter = classifier, segmenter
        self.connections: dict[asyncio.Task, Connection] = {}

    def transcription(self, rate: int, width: int, channels: int) -> Transcription:
        if not (1000 <= rate <= 384000 and 1 <= width <= 4 and 1 <= channels <= 32):
            raise ProtocolError(f"audio-start: unusable format {rate} Hz, {width} bytes, "
                                f"{channels} channels")
        model_rate = self.classifier.features.sample_rate
        return Transcription(StreamRecognizer(self.classifier, self.segmenter), rate, width,
                             channels, StreamResampler(rate, model_rate))

    def info(self) -> Any:
        from wyoming.info import AsrModel, AsrProgram, Attribution, Info

        from digitd import __version__

        meta = self.classifier.metadata
        model = AsrModel(
            name="digitd-digits", languages=["en"], installed=True, version=__version__,
            description="Spoken digits 0-9: Google's speech embedding and digitd's head",
            attribution=Attribution(name=" ".join(meta.attribution),
                                    url="https://github.com/Jakobovski/free-spoken-digit-dataset"))
        program = AsrProgram(
            name="digitd", installed=True, version=__version__, models=[model],
            description="digitd: offline spoken-digit recognition",
            attribution=Attribution(name="digitd", url="https://github.com/digitd/digitd"))
        return Info(asr=[program])

    async def connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                        ) -> None:
        task = asyncio.current_task()
        connection = Connection(self, reader, writer)
        if task is not None:
            self.connections[task] = connection
        try:
            await connection.run()
        finally:
            if task is not None:
                self.connections.pop(task, None)

    async def serve(self, uri: str, ready: Any = None) -> None:
        """Listen on `uri` until SIGTERM or SIGINT; `ready(description)` once listening.
        At the end, every client's connection is closed and its handler left to finish."""
        import signal
        from urllib.parse import urlsplit

        parts = urlsplit(uri)
        if parts.scheme == "unix":
            server = await asyncio.start_unix_server(self.connected, parts.path,
                                                     limit=MAX_HEADER_BYTES)
        else:
            server = await asyncio.start_server(self.connected, parts.hostname, parts.port,
                                                limit=MAX_HEADER_BYTES)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        log.info("Wyoming speech-to-text server listening on %s", uri)
        if ready is not None:
            ready(f"Wyoming server on {uri}")
        await stop.wait()
        log.info("stopping the Wyoming server (%d clients connected)", len(self.connections))
        server.close()
        for connection in self.connections.values():
            connection.writer.close()
            connection.reader.feed_eof()
        if self.connections:
            await asyncio.wait(list(self.connections), timeout=5)
        await server.wait_closed()
