"""systemd readiness, status and watchdog over a real AF_UNIX datagram socket."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from digitd.daemon.notify import Notifier, watchdog_interval

from .notify_socket import NotifySocket
from .streams import build_stream, clear_takes, pcm16

CLI = [sys.executable, "-m", "digitd.daemon.cli"]
WATCHDOG_USEC = 600_000  # pings expected every 0.3 s


class Feeder:
    """Writes 8 kHz PCM to the daemon's stdin in 20 ms pieces at real-time pace."""

    def __init__(self, stdin) -> None:
        self.stdin = stdin
        self.flowing = threading.Event()
        self.queue: list[bytes] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        silence = pcm16(np.random.default_rng(0).normal(size=160) * 1e-3)
        while True:
            self.flowing.wait()
            chunk = self.queue.pop(0) if self.queue else silence
            try:
                self.stdin.write(chunk)
                self.stdin.flush()
            except (BrokenPipeError, ValueError):
                return
            time.sleep(0.02)


@pytest.fixture()
def notify_socket(tmp_path):
    sock = NotifySocket(path=tmp_path / "notify")
    yield sock
    sock.close()


def start_daemon(env: dict) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "listen", "--input", "-", "--rate", "8000", "--format",
                             "jsonl"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def test_ready_after_audio_flows_watchdog_pings_and_stops_when_audio_stalls(
        notify_socket, recordings):
    proc = start_daemon(notify_socket.env(WATCHDOG_USEC))
    feeder = Feeder(proc.stdin)
    try:
        time.sleep(2.0)  # the model is loaded by now, but no audio has arrived
        assert notify_socket.times("READY=1") == []
        assert notify_socket.times("WATCHDOG=1") == []
        feeder.flowing.set()
        flowing_since = time.monotonic()
        ready = notify_socket.wait_for("READY=1", timeout=10)
        assert ready >= flowing_since
        status = notify_socket.lines("STATUS=")
        assert status and status[0].startswith("STATUS=listening on stdin"), status

        # A word makes the status count it.
        stream = build_stream(recordings, clear_takes(recordings, [(4, "theo")]), [0.6])
        feeder.queue += [pcm16(stream.samples[i:i + 160])
                         for i in range(0, stream.samples.size, 160)]
        time.sleep(3.0)
        pings = notify_socket.times("WATCHDOG=1", since=ready)
        assert len(pings) >= 6, pings
        period = statistics.median(np.diff(pings))
        assert 0.2 <= period <= 0.5, f"watchdog period {period:.3f} s, expected ~0.3 s"
        assert any("1 digits so far" in s for s in notify_socket.lines("STATUS=")), (
            notify_socket.messages)

        # The source stalls (stdin stays open, no bytes): the loop stops, so do the pings.
        feeder.flowing.clear()
        time.sleep(0.1)
        stalled = time.monotonic()
        time.sleep(2.0)
        late = notify_socket.times("WATCHDOG=1", since=stalled + 0.1)
        assert late == [], f"pings went on while the audio was stalled: {late}"
        # Audio again: pings again.
        feeder.flowing.set()
        time.sleep(1.5)
        assert notify_socket.times("WATCHDOG=1", since=stalled + 2.0)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stopping = notify_socket.times("STOPPING=1")
    assert stopping and stopping[0] > ready
    assert any(s.startswith("STATUS=stopping") for s in notify_socket.lines("STATUS="))


def test_abstract_notify_socket():
    name = f"digitd-test-{os.getpid()}"
    sock = NotifySocket(abstract=name)
    try:
        proc = start_daemon(sock.env())
        proc.stdin.write(pcm16(np.zeros(8000)))
        proc.stdin.flush()
        sock.wait_for("READY=1", timeout=30)
        proc.stdin.close()  # end of input: the daemon finishes and says it is stopping
        assert proc.wait(timeout=10) == 0
        sock.wait_for("STOPPING=1", timeout=2)
        assert sock.times("WATCHDOG=1") == []  # no WATCHDOG_USEC: no pings
    finally:
        sock.close()


def test_no_op_outside_systemd_and_watchdog_meant_for_another_process():
    notifier = Notifier(environ={})
    assert not notifier.enabled
    notifier.ready("x")
    notifier.heartbeat()
    notifier.stopping()  # nothing to send to, nothing raised
    assert watchdog_interval({"WATCHDOG_USEC": "4000000"}) == 2.0
    assert watchdog_interval({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "4000000",
                              "WATCHDOG_PID": str(os.getpid())}) == 2.0
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None


def test_a_vanished_notify_socket_never_stops_the_daemon(tmp_path, recordings):
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "gone"), "WATCHDOG_USEC": "100000"}
    stream = build_stream(recordings, clear_takes(recordings, [(7, "lucas")]), [0.8])
    done = subprocess.run([*CLI, "listen", "--input", "-", "--rate", "8000"], env=env,
                          input=pcm16(stream.samples), capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["7"]
    assert done.stderr.decode().count("cannot notify systemd") == 1
