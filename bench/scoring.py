"""Scores: digit error rate by edit distance, and streaming matches in the manner of
TensorFlow's test_streaming_accuracy (each emitted digit is matched to a spoken word near it:
right, wrong, or a false positive; unmatched words are misses)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Word:
    digit: int
    start: float  # seconds of stream time
    end: float


@dataclass(frozen=True)
class Emitted:
    digit: int
    end: float  # where the recognizer says the word ended (stream time)
    emitted: float  # stream time at which the digit came out, processing time included


@dataclass(frozen=True)
class Heard:
    """A segment the recognizer decided on: a digit, or rejected (digit None) for `reason`."""
    start: float
    end: float
    digit: int | None
    reason: str | None = None  # "not a digit", "too long"


def word_outcomes(truth: list[Word], heard: list[Heard], slack: float = 0.1) -> Counter:
    """What became of each spoken word, to tell the segmenter's misses from the model's: of
    the segments overlapping the word (widened by `slack` seconds), a right digit wins, then
    a wrong one, then the first one's rejection reason; "no segment" if none overlaps. The
    parts of a segment split between words share its span, so a part may count for either
    word: a diagnostic, not the score (score_stream is that)."""
    outcomes: Counter = Counter()
    for w in truth:
        near = [h for h in heard if h.start <= w.end + slack and h.end >= w.start - slack]
        if not near:
            outcomes["no segment"] += 1
        elif any(h.digit == w.digit for h in near):
            outcomes["right"] += 1
        elif any(h.digit is not None for h in near):
            outcomes["wrong digit"] += 1
        else:
            outcomes[near[0].reason or "rejected"] += 1
    return outcomes


def edit_distance(a: list, b: list) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def align(said: list, emitted: list) -> dict[str, int]:
    """Digits said vs emitted, by a minimal edit alignment: right (matched), wrong
    (substituted), missed (deleted) and false (inserted)."""
    n, m = len(said), len(emitted)
    cost = np.zeros((n + 1, m + 1), dtype=np.int64)
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1,
                             cost[i - 1, j - 1] + (said[i - 1] != emitted[j - 1]))
    out = {"right": 0, "wrong": 0, "missed": 0, "false": 0}
    i, j = n, m
    while i or j:
        if i and j and cost[i, j] == cost[i - 1, j - 1] + (said[i - 1] != emitted[j - 1]):
            out["right" if said[i - 1] == emitted[j - 1] else "wrong"] += 1
            i, j = i - 1, j - 1
        elif i and cost[i, j] == cost[i - 1, j] + 1:
            out["missed"] += 1
            i -= 1
        else:
            out["false"] += 1
            j -= 1
    return out


@dataclass
class StreamScore:
    words: int = 0
    matched: int = 0  # right digit for a spoken word
    wrong: int = 0  # a spoken word given another digit
    false_positive: int = 0  # a digit where no word was spoken
    missed: int = 0  # a spoken word with no digit
    edits: int = 0  # edit distance between emitted and spoken digit sequences
    latencies_ms: list[float] | None = None

    @property
    def digit_error_rate(self) -> float:
        return self.edits / max(1, self.words)

    def add(self, other: StreamScore) -> None:
        for name in ("words", "matched", "wrong", "false_positive", "missed", "edits"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latencies_ms = (self.latencies_ms or []) + (other.latencies_ms or [])

    def summary(self) -> dict:
        lat = self.latencies_ms or []
        n = max(1, self.words)
        return {
            "words": self.words, "digit_error_rate": self.digit_error_rate,
            "matched": self.matched / n, "wrong": self.wrong / n, "missed": self.missed / n,
            "false_positives": self.false_positive,
            "latency_ms_p50": float(np.percentile(lat, 50)) if lat else None,
            "latency_ms_p95": float(np.percentile(lat, 95)) if lat else None,
        }


def score_stream(truth: list[Word], emitted: list[Emitted], before: float = 0.3,
                 after: float = 1.0) -> StreamScore:
    """Match each emitted digit to the first unmatched word whose span, widened by `before`
    and `after` seconds, holds the emitted word's end."""
    score = StreamScore(words=len(truth), latencies_ms=[])
    used = [False] * len(truth)
    for e in emitted:
        hit = next((i for i, w in enumerate(truth)
                    if not used[i] and w.start - before <= e.end <= w.end + after), None)
        if hit is None:
            score.false_positive += 1
            continue
        used[hit] = True
        if e.digit == truth[hit].digit:
            score.matched += 1
            score.latencies_ms.append((e.emitted - truth[hit].end) * 1000.0)
        else:
            score.wrong += 1
    score.missed = used.count(False)
    score.edits = edit_distance([e.digit for e in emitted], [w.digit for w in truth])
    return score
