"""Outputs that fail or go away: one failing sink never stops the others, a closed reader is
noticed at once, `--count` ends a script's read, no traceback reaches the user."""

from __future__ import annotations

import json
import os
import subprocess
import time
from importlib import resources

import numpy as np
import pytest
import soundfile as sf

from .daemon import CLI
from .mosquitto import Mosquitto, Subscriber
from .streams import pcm16

SAMPLE = resources.files("digitd.daemon").joinpath("samples/four-two-seven.wav")
RATE = sf.info(str(SAMPLE)).samplerate


def sample_pcm(silence_after: float = 1.0) -> bytes:
    wave, _ = sf.read(str(SAMPLE), dtype="float32")
    return pcm16(np.concatenate([wave, np.zeros(int(silence_after * RATE), np.float32)]))


def listen(*args: str, stdout=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "listen", "--input", "-", "--rate", str(RATE), *args],
                            stdin=subprocess.PIPE, stdout=stdout, stderr=subprocess.PIPE)


def test_stdout_failing_alone_is_a_clear_error_with_its_own_status():
    with open("/dev/full", "w") as full:
        proc = listen(stdout=full)
        _, err = proc.communicate(sample_pcm(), timeout=60)
    err = err.decode()
    assert proc.returncode == 3, err
    assert "cannot write to stdout: No space left on device" in err
    assert "Traceback" not in err


def test_stdout_failing_leaves_mqtt_going(tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()
    sub = Subscriber(broker, topic="#")
    try:
        with open("/dev/full", "w") as full:
            proc = listen("--mqtt", broker.url(), "--mqtt-device-id", "door", stdout=full)
            _, err = proc.communicate(sample_pcm(), timeout=60)
        digits = [json.loads(m.payload)["digit"] for m in sub.wait("door/digit", 3, timeout=10)]
    finally:
        sub.close()
        broker.stop()
    err = err.decode()
    assert digits == [4, 2, 7]
    assert proc.returncode == 0, err
    assert err.count("output stdout failed") == 1 and "(mqtt) go on" in err
    assert "Traceback" not in err


def test_a_closed_reader_ends_listen_at_once():
    """`pin=$(digitd listen | head -1)`: the first digit, then digitd ends without waiting
    for a second one to find the pipe closed."""
    proc = listen()
    try:
        proc.stdin.write(sample_pcm(silence_after=0.0)[: int(RATE * 1.3) * 2])  # "four"
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == b"4"
        proc.stdout.close()  # what `head -1` does after its line
        silence = pcm16(np.zeros(RATE // 10, np.float32))
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                proc.stdin.write(silence)  # a quiet room: no digit would ever hit the pipe
                proc.stdin.flush()
            except BrokenPipeError:
                break
            time.sleep(0.1)
        proc.wait(timeout=5)
    finally:
        proc.kill()
    err = proc.stderr.read().decode()
    assert proc.returncode == 0, err
    assert time.monotonic() < deadline, "still running 10 s after its reader went away"
    assert "Traceback" not in err


@pytest.mark.parametrize("count", [1, 2])
def test_count_stops_after_that_many_digits(count):
    proc = listen("--count", str(count))
    proc.stdin.write(sample_pcm())  # stdin stays open: only the count can end it
    proc.stdin.flush()
    try:
        proc.wait(timeout=30)
    finally:
        proc.kill()
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    assert proc.returncode == 0, err
    assert out.split() == ["4", "2"][:count]


def test_level_shows_the_input_level_in_dbfs():
    t = np.arange(RATE * 3) / RATE
    tone = 0.1 * np.sqrt(2) * np.sin(2 * np.pi * 440 * t)  # RMS 0.1: -20 dBFS
    done = subprocess.run([*CLI, "level", "--input", "-", "--rate", str(RATE)],
                          input=pcm16(tone), capture_output=True, timeout=60)
    lines = done.stdout.decode().splitlines()
    assert done.returncode == 0, done.stderr.decode()
    assert len(lines) == 12  # four a second
    assert all(line.split()[0] == "-20.0" and "peak  -17.0" in line for line in lines), lines


def test_level_reads_a_quiet_room_on_a_dc_offset_as_quiet_and_names_the_offset():
    room = np.random.default_rng(1).normal(0, 10 ** (-60 / 20), RATE * 2)  # -60 dBFS
    for offset, named in ((0.05, True), (0.0, False)):
        done = subprocess.run([*CLI, "level", "--input", "-", "--rate", str(RATE)],
                              input=pcm16(room + offset), capture_output=True, timeout=60)
        lines = done.stdout.decode().splitlines()
        assert done.returncode == 0 and len(lines) == 8, done.stderr.decode()
        assert all(abs(float(line.split()[0]) + 60) < 1 for line in lines), lines
        assert all(("DC offset -26 dBFS" in line) == named for line in lines), lines


def test_a_muted_microphone_is_warned_about_and_shown_in_the_status(tmp_path):
    from .notify_socket import NotifySocket

    notify = NotifySocket(path=tmp_path / "notify")
    env = {**os.environ, "NOTIFY_SOCKET": notify.address}
    muted = pcm16(np.zeros(RATE * 25, np.float32))  # 25 s of digital silence ...
    room = pcm16(np.random.default_rng(0).normal(0, 0.003, RATE * 2))  # ... then a quiet room
    try:
        done = subprocess.run([*CLI, "listen", "--input", "-", "--rate", str(RATE)],
                              input=muted + room, capture_output=True, timeout=60, env=env)
        statuses = notify.lines("STATUS=")
    finally:
        notify.close()
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert err.count("digital silence for 20 s: is the microphone muted or dead?") == 1
    assert "the input has sound again" in err
    assert any("input is digital silence" in s for s in statuses), statuses
    assert statuses[-2].startswith("STATUS=listening on"), statuses
