"""`digitd listen --format jsonl` as a subprocess, its output collected by threads."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time

import numpy as np

from .streams import pcm16

CLI = [sys.executable, "-m", "digitd.daemon.cli"]


class Daemon:
    def __init__(self, *args: str, env: dict | None = None, stdin: bool = False) -> None:
        self.proc = subprocess.Popen([*CLI, "listen", "--format", "jsonl", *args], env=env,
                                     stdin=subprocess.PIPE if stdin else None,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put),
                         daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append),
                         daemon=True).start()

    @staticmethod
    def _pump(stream, sink) -> None:
        for line in stream:
            sink(line.decode())

    def log(self) -> str:
        return "".join(self.stderr)

    def say(self, samples: np.ndarray) -> None:
        """Audio into `--input -` (s16le)."""
        self.proc.stdin.write(pcm16(samples))
        self.proc.stdin.flush()

    def wait_for_log(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.stderr):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} in daemon log:\n" + self.log())

    def rows(self, count: int, timeout: float) -> list[dict]:
        """Up to `count` JSON lines from stdout, waiting at most `timeout` seconds."""
        rows: list[dict] = []
        deadline = time.monotonic() + timeout
        while len(rows) < count and time.monotonic() < deadline:
            try:
                rows.append(json.loads(self.lines.get(timeout=0.1)))
            except queue.Empty:
                continue
        return rows

    def digits(self, count: int, timeout: float) -> list[int]:
        return [row["digit"] for row in self.rows(count, timeout)]

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
