"""The stream loop: a source's blocks -> StreamRecognizer -> the sinks, until the source ends,
a signal arrives, enough digits were said, or nobody reads any more.

    for block in source:                                  # microphone, stdin PCM or a file
        output(recognizer.feed(block.samples, block.arrival))
    output(recognizer.finish())
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from .sinks import Fanout


class Shutdown(Exception):
    """SIGTERM or SIGINT: stop cleanly."""


def _on_signal(signum: int, frame: Any) -> None:
    raise Shutdown(signal.Signals(signum).name)


def stop_on_signals() -> None:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


class StreamLoop:
    """Runs sources through a recognizer into the sinks; counts the digits delivered.

    stop_after: end once this many digits have gone out (`--count`: `pin=$(digitd listen
    --count 4)` returns after the fourth digit instead of running until stopped).
    """

    def __init__(self, output: Fanout, stop_after: int | None = None,
                 number_gap: float | None = None) -> None:
        self.output, self.stop_after = output, stop_after
        self.number_gap = number_gap  # --numbers: digits said together are one event
        self.digits = 0  # digits (or numbers) delivered

    @property
    def done(self) -> bool:
        return self.stop_after is not None and self.digits >= self.stop_after

    def run(self, source: Any, recognizer: Any, file: str | None = None,
            on_block: Callable[[Any], None] | None = None) -> None:
        from .numbers import NumberGrouper

        numbers = NumberGrouper(self.number_gap) if self.number_gap is not None else None
        clock = recognizer.segmenter
        for block in source:
            if block.gap:
                recognizer.reset()
                if numbers is not None:  # the rest of it may have been said unheard
                    numbers.drop("the input was lost while it was said")
            events = recognizer.feed(block.samples, block.arrival)
            if numbers is not None:
                events = numbers.feed(events, clock.seconds, clock.triggered)
            self._deliver(events, file)
            if self.done:
                return
            self.output.check_readers()
            if on_block is not None:
                on_block(block)
        events = recognizer.finish()
        if numbers is not None:
            events = numbers.feed(events, clock.seconds) + numbers.finish(clock.seconds)
        self._deliver(events, file)

    def _deliver(self, events: list, file: str | None) -> None:
        if self.stop_after is not None:  # nothing past the count, not even a rejection
            room = self.stop_after - self.digits
            keep = []
            for event in events:
                if room <= 0:
                    break
                keep.append(event)
                room -= event.digit is not None
            events = keep
        self.digits += sum(event.digit is not None for event in events)
        self.output(events, file)
