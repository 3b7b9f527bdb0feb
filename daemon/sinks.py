"""Sinks: where recognized events go. stdout here; MQTT in mqtt.py; systemd status in notify.py.

A sink is a callable `sink(events, file)`. `Fanout` feeds every sink and keeps the others
going when one fails: a full disk under stdout must not silence the door lock's MQTT.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import select
import stat
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

log = logging.getLogger(__name__)

Sink = Callable[[list, "str | None"], None]


class OutputError(Exception):
    """Every output failed (or the only one did): nothing would receive the digits."""


class ReaderGone(Exception):
    """stdout's reader closed the pipe (`digitd listen | head -1`) and nothing else listens."""


def emit(line: str, stream: TextIO | None = None) -> None:
    """One result line on stdout, flushed at once so a pipe reader sees it now."""
    out = sys.stdout if stream is None else stream
    out.write(line + "\n")
    out.flush()


class StdoutSink:
    """Events -> stdout lines: the digit (or '-' when verbose shows a rejection), or JSON.
    An event is anything with `digit`, `text()` and `row(file)`."""

    name = "stdout"

    def __init__(self, fmt: str, verbose: bool, stream: TextIO | None = None) -> None:
        self.fmt, self.verbose = fmt, verbose
        self.stream = sys.stdout if stream is None else stream

    def __call__(self, events: Iterable, file: str | None = None) -> None:
        for event in events:
            if event.digit is None and not self.verbose:
                continue
            self.line(json.dumps(event.row(file)) if self.fmt == "jsonl" else event.text())

    def line(self, text: str) -> None:
        emit(text, self.stream)

    def reader_gone(self) -> bool:
        """True once the pipe's reader has closed it: checked between blocks, so a script's
        `digitd listen | head -1` ends now, not when a second digit is said."""
        try:
            fd = self.stream.fileno()
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                return False
            poller = select.poll()
            poller.register(fd, select.POLLERR)
            return any(mask & select.POLLERR for _, mask in poller.poll(0))
        except (OSError, ValueError, AttributeError):
            return False


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{os.strerror(exc.errno)} (errno {errno.errorcode.get(exc.errno, exc.errno)})"
    return str(exc) or type(exc).__name__


class Fanout:
    """Feeds events to every sink. A sink that raises is reported once, clearly, and dropped;
    the rest go on. When none is left, OutputError (or ReaderGone when stdout's reader just
    went away): the caller stops."""

    def __init__(self, sinks: list[Any]) -> None:
        self.sinks = list(sinks)

    def __call__(self, events: list, file: str | None = None) -> None:
        if not events:
            return
        for sink in list(self.sinks):
            try:
                sink(events, file)
            except Exception as exc:  # any sink's failure: report, drop it, keep the others
                self._drop(sink, exc)

    def _drop(self, sink: Any, exc: BaseException) -> None:
        name = getattr(sink, "name", type(sink).__name__)
        self.sinks.remove(sink)
        gone = isinstance(exc, BrokenPipeError)
        if isinstance(sink, StdoutSink) and sink.stream is sys.__stdout__:
            _silence_stdout()
        if self.sinks:
            log.error("output %s %s; the other outputs (%s) go on", name,
                      "closed by its reader" if gone else f"failed: {describe_failure(exc)}",
                      ", ".join(getattr(s, "name", type(s).__name__) for s in self.sinks))
            return
        if gone:
            raise ReaderGone(name)
        raise OutputError(f"cannot write to {name}: {describe_failure(exc)}")

    def check_readers(self) -> None:
        """Drop a stdout whose reader has gone, as if a write had found it."""
        for sink in list(self.sinks):
            if isinstance(sink, StdoutSink) and sink.reader_gone():
                self._drop(sink, BrokenPipeError(errno.EPIPE, "reader gone"))


def _silence_stdout() -> None:
    """After stdout failed, keep Python from failing again when it flushes at exit."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
