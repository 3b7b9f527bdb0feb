"""The microphone path through a real PortAudio device (PulseAudio null-sink monitor)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .daemon import CLI, Daemon
from .notify_socket import NotifySocket
from .pulse import PulseServer
from .streams import build_stream, clear_takes, said_together, write_stream

WANTED = [(2, "jackson"), (9, "theo"), (4, "nicolas"), (7, "lucas"), (0, "george")]
PAUSES = [0.8, 0.6, 0.9, 0.7, 0.8]


@pytest.fixture(scope="module")
def names(recordings):
    return clear_takes(recordings, WANTED)


def alsa_plugins(pid: int) -> set[str]:
    """The ALSA PCM plugins a process has mapped (libasound_module_pcm_NAME.so)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return set(re.findall(r"libasound_module_pcm_(\w+)\.so", maps))


@pytest.fixture()
def pulse(tmp_path):
    server = PulseServer(tmp_path).start()
    yield server
    server.stop()


def test_listen_through_pulseaudio_prints_the_digits_in_order(pulse, recordings, names,
                                                              tmp_path):
    stream = build_stream(recordings, names, PAUSES, rate=44100)
    wav = write_stream(stream, tmp_path / "digits.wav")
    daemon = Daemon("--device", "pulse", env=pulse.env)
    try:
        daemon.wait_for_log("listening on", timeout=30)
        # The device scan opened every PCM in ALSA's configuration (a52 with libavcodec,
        # jack, speex ... with libasound2-plugins); only the stream's own may stay mapped.
        assert alsa_plugins(daemon.proc.pid) <= {"pulse"}
        pulse.play(wav)
        rows = daemon.rows(len(names), timeout=10)
    finally:
        code = daemon.stop()
    assert code == 0
    got = [r["digit"] for r in rows]
    assert got == stream.digits, daemon.log()
    assert all(0 <= r["latency_ms"] < 1000 and r["end"] > r["start"] for r in rows)


def number_heard(pulse, wav: Path) -> tuple[int | None, list[dict], str]:
    """`listen --numbers` on the pulse device while `wav` plays: exit status, the first
    row, the log."""
    daemon = Daemon("--device", "pulse", "--numbers", env=pulse.env)
    try:
        daemon.wait_for_log("listening on", timeout=30)
        pulse.play(wav)
        rows = daemon.rows(1, timeout=10)
    finally:
        code = daemon.stop()
    return code, rows, daemon.log()


def test_listen_numbers_through_pulseaudio(pulse, recordings, names, tmp_path):
    """Three digits with short pauses, then silence: one line, the number, within the gap
    after the last word."""
    stream = build_stream(recordings, names[:3], [0.4, 0.4, 2.0], rate=44100)
    code, rows, log = number_heard(pulse, write_stream(stream, tmp_path / "number.wav"))
    assert code == 0
    assert [r["number"] for r in rows] == ["".join(map(str, stream.digits))], log
    assert 1000 <= rows[0]["latency_ms"] < 1000 + 300


def test_listen_numbers_said_with_no_pause_through_pulseaudio(pulse, recordings, names,
                                                              tmp_path):
    """Four digits run together, no pause between the words: the strings stage reads them
    through the real device and the number comes out as one line."""
    import soundfile as sf

    # 2 s of quiet first: an idle null sink's monitor renders its first blocks late
    samples = said_together(recordings, names[:4], gap=0.0, rate=44100, lead=2.0, tail=2.0)
    wav = tmp_path / "fluent.wav"
    sf.write(wav, samples, 44100, subtype="PCM_16")
    code, rows, log = number_heard(pulse, wav)
    assert code == 0
    assert [r["number"] for r in rows] == ["".join(n[0] for n in names[:4])], log


def test_listen_recovers_when_the_device_disappears(pulse, recordings, names, tmp_path):
    stream = build_stream(recordings, names[:3], PAUSES[:3], rate=16000)
    wav = write_stream(stream, tmp_path / "digits.wav")
    notify = NotifySocket(path=tmp_path / "notify")
    daemon = Daemon("--device", "pulse", env={**pulse.env, "NOTIFY_SOCKET": notify.address,
                                              "WATCHDOG_USEC": "1000000"})
    try:
        daemon.wait_for_log("listening on", timeout=30)
        notify.wait_for("READY=1", timeout=10)
        pulse.play(wav)
        before = daemon.rows(3, timeout=10)
        pulse.unload_sink()  # the microphone is pulled out
        daemon.wait_for_log("reopening", timeout=15)
        assert daemon.proc.poll() is None, "daemon exited when the device went away"
        lost = time.monotonic()
        time.sleep(3)
        # A missing device is the daemon's to handle, not systemd's: it says so in its
        # status and keeps the watchdog fed while it retries (a restart cannot bring the
        # device back and would end in the unit's start limit).
        assert any("input device lost" in s for s in notify.lines("STATUS=")), notify.messages
        assert len(notify.times("WATCHDOG=1", since=lost)) >= 3
        pulse.load_sink()  # ... and plugged back in
        daemon.wait_for_log("input device back", timeout=30)
        assert alsa_plugins(daemon.proc.pid) <= {"pulse"}  # the rescans released theirs too
        pulse.play(wav)
        after = daemon.rows(3, timeout=10)
    finally:
        code = daemon.stop()
        notify.close()
    assert code == 0
    assert [r["digit"] for r in before] == stream.digits
    assert [r["digit"] for r in after] == stream.digits, daemon.log()
    assert any(s.startswith("STATUS=listening on") and "3 digits so far" in s
               for s in notify.lines("STATUS="))
    log = daemon.log()
    assert log.count("input device unavailable") <= 1  # logged once per state change
    # PortAudio's and alsa-lib's lines on every failed reopen, LiteRT's at every model load:
    # not in the journal, only digitd's own (every line "LEVEL logger: message")
    noise = [line for line in log.splitlines()
             if not re.match(r"(DEBUG|INFO|WARNING|ERROR) digitd[.\w]*: ", line)]
    assert not noise, noise


SCAN = """
import ctypes, json, re, sys
from pathlib import Path
from digitd.daemon import sources
skipped = sources.skip_output_only_plugins() if sys.argv[1] == "skip" else 0
import sounddevice as sd  # PortAudio's device scan, as the daemon's first one
mapped = set(re.findall(r"libasound_module_pcm_(\\w+)\\.so", Path("/proc/self/maps").read_text()))
names = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
sources.release_alsa_plugins()
lib = ctypes.CDLL("libasound.so.2")
lib.snd_config_update()
node = ctypes.c_void_p()
found = lib.snd_config_search(ctypes.c_void_p.in_dll(lib, "snd_config"), b"pcm.a52",
                              ctypes.byref(node)) == 0
print(json.dumps([skipped, sorted(mapped), names, found]))
"""


def test_device_scan_skips_output_only_plugins(pulse):
    def scan(mode: str) -> list:  # [skipped, plugins mapped, input names, a52 defined after]
        done = subprocess.run([sys.executable, "-c", SCAN, mode], env=pulse.env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    plain = scan("plain")
    if "a52" not in plain[1]:
        pytest.skip("no a52 plugin (libasound2-plugins) in ALSA's configuration")
    skipped, mapped, names, found_after = scan("skip")
    # The AC-3 encoder (libavcodec, ~14 MB) is never loaded to look for microphones ...
    assert skipped >= 1 and "a52" not in mapped and "pulse" in mapped
    # ... every input is still found, and the configuration is whole again afterwards.
    assert names == plain[2] and "pulse" in names
    assert found_after


def test_devices_lists_the_pulse_device(pulse):
    result = subprocess.run([*CLI, "devices", "--format", "jsonl"], env=pulse.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    names = [json.loads(line)["name"] for line in result.stdout.splitlines()]
    assert "pulse" in names


def test_unknown_device_is_a_clear_error_listing_the_devices(pulse):
    result = subprocess.run([*CLI, "listen", "--device", "no-such-mic"], env=pulse.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "no input device 'no-such-mic'" in result.stderr
    assert "pulse" in result.stderr
