"""--numbers: digits said together are one line once the speaker pauses; a word that is not a
digit inside a number rejects it; talk with no digit emits nothing. Real recordings, real
Mosquitto, and the grouping rules on their own."""

from __future__ import annotations

import json
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from digitd.daemon.numbers import NumberGrouper
from digitd.daemon.pipeline import Event

from .daemon import CLI
from .mosquitto import Mosquitto, Subscriber
from .streams import clear_takes

SAMPLE = str(resources.files("digitd.daemon").joinpath("samples/four-two-seven.wav"))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def word(digit: int | None, start: float, end: float, reason: str | None = None) -> Event:
    return Event(digit, 0.9, start, end, 100.0, reason)


def test_grouping_rules():
    g = NumberGrouper(gap=1.0)
    assert g.feed([word(4, 0.3, 0.8)], now=1.2) == []
    assert g.feed([], now=2.5, speaking=True) == []  # a word under way: wait for it
    out = g.feed([word(2, 1.5, 2.0)], now=2.6) + g.feed([], now=2.9)
    assert out == [] and g.feed([], now=3.1)[0].number == "42"  # 1.1 s after "two" ended
    # a word that is not a digit inside a number rejects all of it, with the reason
    g.feed([word(1, 0.0, 0.4), word(None, 0.6, 1.0, "not a digit"), word(7, 1.2, 1.6)], 1.7)
    (rejected,) = g.feed([], now=2.7)
    assert rejected.number is None and rejected.digits == (1, 7)
    assert "not a digit" in rejected.reason
    # before or after a number, a cough or a word leaves it as it was said
    g.feed([word(None, 0.0, 0.3, "not a digit"), word(4, 0.5, 0.9), word(2, 1.0, 1.4),
            word(None, 1.5, 1.8, "not a digit")], 1.9)
    (kept,) = g.feed([], now=2.9)
    assert kept.number == "42" and kept.end == 1.4
    # ...but a word the model leaned to take for a digit may have been one: no number
    g.feed([word(4, 0.5, 0.9), word(2, 1.0, 1.4), word(None, 1.5, 1.8, "unsure")], 1.9)
    (unsure,) = g.feed([], now=2.9)
    assert unsure.number is None and "unsure" in unsure.reason
    g.feed([word(None, 0.0, 0.3, "too long"), word(4, 0.5, 0.9)], 1.0)
    assert g.feed([], now=2.0)[0].number is None
    # words that are not digits with no digit around them are no number at all
    assert g.feed([word(None, 0.0, 0.5, "too long")], 0.6) + g.finish(5.0) == []
    # a lost microphone drops the number being said: its rest may have gone unheard
    g.feed([word(4, 0.0, 0.4), word(2, 0.6, 1.0)], now=1.1)
    g.drop("the input was lost")
    assert g.finish(9.0) == []
    # a pause longer than the gap between two words ends the first number
    (first,) = g.feed([word(3, 0.0, 0.4), word(8, 2.0, 2.4)], now=2.5)
    assert first.number == "3" and g.finish(3.0)[0].number == "8"


def test_recognize_numbers_prints_one_line_per_number():
    assert run("recognize", "--numbers", SAMPLE).stdout.split() == ["427"]
    # a gap shorter than the pauses between the words keeps each digit apart
    assert run("recognize", "--numbers", "--number-gap-ms", "400", SAMPLE).stdout.split() == [
        "4", "2", "7"]
    (row,) = [json.loads(x) for x in run("recognize", "--numbers", "--format", "jsonl",
                                         SAMPLE).stdout.splitlines()]
    assert row["number"] == "427" and row["digits"] == [4, 2, 7]
    assert set(row) == {"file", "number", "digits", "confidence", "start", "end",
                        "latency_ms", "time"}
    assert 0 < row["confidence"] <= 1 and row["end"] > row["start"]


@pytest.fixture(scope="module")
def words(speech_commands: Path) -> list[np.ndarray]:
    """Real people saying words that are not digits, at 8 kHz like FSDD."""
    import soxr

    out = []
    for name in ("cat", "backward", "left", "happy", "learn", "follow", "visual", "bed"):
        path = sorted((speech_commands / name).iterdir())[0]
        wave, rate = sf.read(path, dtype="float32")
        out.append(soxr.resample(wave, rate, 8000))
    return out


def write(path: Path, parts: list[np.ndarray], pause: float = 0.35) -> str:
    gap = np.zeros(int(pause * 8000), np.float32)
    x = np.concatenate([gap] + [np.concatenate([p, gap]) for p in parts])
    sf.write(path, x + np.random.default_rng(0).normal(0, 1e-3, x.size), 8000)
    return str(path)


def test_a_word_that_is_not_a_digit_inside_a_number_rejects_it(recordings, words, tmp_path):
    four, seven = (sf.read(recordings / n, dtype="float32")[0] for n in clear_takes(
        recordings, [(4, "jackson"), (7, "theo")]))
    path = write(tmp_path / "four-cat-seven.wav", [four, words[0], seven])
    done = run("recognize", "--numbers", path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # never "47": nobody said forty-seven
    rows = [json.loads(x) for x in run("recognize", "--numbers", "--verbose", "--format",
                                       "jsonl", path).stdout.splitlines()]
    assert [(r["number"], r["digits"]) for r in rows] == [(None, [4, 7])]
    assert rows[0]["reason"].startswith("rejected:")


def test_talk_with_no_digit_emits_nothing(words, tmp_path):
    path = write(tmp_path / "talk.wav", words * 2, pause=0.25)
    done = run("recognize", "--numbers", path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def test_numbers_go_to_their_own_mqtt_topic_with_discovery(tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()
    sub = Subscriber(broker, topic="#")
    try:
        done = run("recognize", "--numbers", SAMPLE, "--mqtt", broker.url(),
                   "--mqtt-device-id", "keypad", "--mqtt-discovery")
        numbers = sub.wait("keypad/number", 1, timeout=10)
        config = sub.wait("homeassistant/event/keypad/number/config", 1, timeout=10)
    finally:
        sub.close()
        broker.stop()
    assert done.returncode == 0, done.stderr
    assert [json.loads(m.payload)["number"] for m in numbers] == ["427"]
    assert json.loads(numbers[0].payload)["event_type"] == "number"
    assert sub.on("keypad/digit") == []  # digits go out as the number, not one by one
    entity = json.loads(config[0].payload)
    assert entity["state_topic"] == "digitd/keypad/number"
    assert entity["event_types"] == ["number"]
