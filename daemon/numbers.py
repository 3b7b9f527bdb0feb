"""Whole numbers: digits said together become one event once the speaker pauses.

`NumberGrouper` sits between the recognizer and the sinks (`--numbers`). Digits whose words
follow each other within `gap` seconds form one number, emitted when `gap` has passed after
the last word: "four two seven", a pause, -> 427. A rejected word inside a number (not a
digit, unsure, too long) rejects the whole number instead of emitting the digits around it:
a door lock must not act on "4_7" when someone said "four, uh, seven" or "four dog seven".
Inside means between two digits, or next to one for a word the model leaned to take for a
digit (unsure, too long): it may have been part of the number. A cough or a word that is
clearly no digit just before or after a number leaves it as it was said.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .pipeline import NOT_A_DIGIT, Event, wall_time

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NumberEvent:
    """A number said (or, with number None, a string rejected for the reason given)."""

    number: str | None
    digits: tuple[int, ...]
    confidence: float  # the least sure of its digits
    start: float
    end: float  # end of its last word, stream seconds
    latency_ms: float  # end of the last word -> this event
    reason: str | None = None

    @property
    def digit(self) -> str | None:
        """What counts as delivered (StreamLoop's --count, the sinks' "nothing heard")."""
        return self.number

    def text(self) -> str:
        return "-" if self.number is None else self.number

    def to_json(self) -> dict:
        out = {"number": self.number, "digits": list(self.digits),
               "confidence": round(self.confidence, 4), "start": round(self.start, 3),
               "end": round(self.end, 3), "latency_ms": round(self.latency_ms, 1)}
        return {**out, "reason": self.reason} if self.reason else out

    def row(self, file: str | None = None) -> dict:
        out = {**self.to_json(), "time": wall_time()}
        return {"file": file, **out} if file is not None else out


class NumberGrouper:
    """Events in, numbers out: feed() each recognizer event list, tick() every block with
    the stream's time, finish() at its end."""

    def __init__(self, gap: float, max_digits: int = 32) -> None:
        self.gap, self.max_digits = gap, max_digits
        self.words: list[Event] = []  # the number being said
        self.spoiled: str | None = None  # why the number being said will be rejected

    def feed(self, events: list[Event], now: float, speaking: bool = False
             ) -> list[NumberEvent]:
        """The recognizer's events of one block, then the clock: `now` is stream seconds,
        `speaking` whether a word is being said (the segmenter is triggered)."""
        out: list[NumberEvent] = []
        for event in events:
            if self.words and event.start - self.words[-1].end > self.gap:
                out += self._close(now)
            if event.digit is None:
                if self.words or event.reason != NOT_A_DIGIT:
                    self.words.append(event)  # spoils the number if a digit follows
                continue
            rejected = [w for w in self.words if w.digit is None]
            if rejected and not self.spoiled:  # a word that is not a digit inside rejects it
                self.spoiled = f"'{rejected[0].reason or NOT_A_DIGIT}' among its words"
            self.words.append(event)
            if len([w for w in self.words if w.digit is not None]) > self.max_digits:
                self.spoiled = f"more than {self.max_digits} digits"
        return out + self.tick(now, speaking)

    def tick(self, now: float, speaking: bool = False) -> list[NumberEvent]:
        """The number closes `gap` after its last word, unless another word is under way
        (its event comes when it ends, and decides whether it belongs to the number)."""
        if self.words and not speaking and now - self.words[-1].end > self.gap:
            return self._close(now)
        return []

    def drop(self, why: str) -> None:
        """Forget the number being said, never emitting part of it."""
        if any(w.digit is not None for w in self.words):
            log.warning("a number being said was dropped: %s", why)
        self.words, self.spoiled = [], None

    def finish(self, now: float) -> list[NumberEvent]:
        return self._close(now) if self.words else []

    def _close(self, now: float) -> list[NumberEvent]:
        words, spoiled = self.words, self.spoiled
        self.words, self.spoiled = [], None
        digits = tuple(int(w.digit) for w in words if w.digit is not None)
        if not digits:
            return []
        after = words[max(i for i, w in enumerate(words) if w.digit is not None) + 1 :]
        maybe_digit = [w for w in after if w.reason != NOT_A_DIGIT]
        if maybe_digit and not spoiled:
            spoiled = f"'{maybe_digit[0].reason}' next to it"
        last = [w for w in words if w.digit is not None][-1]
        latency = (now - last.end) * 1000  # the pause that closed it, as heard
        confidence = min(w.confidence for w in words if w.digit is not None)
        number = None if spoiled else "".join(map(str, digits))
        return [NumberEvent(number, digits, confidence, words[0].start, last.end, latency,
                            spoiled and f"rejected: {spoiled}")]
