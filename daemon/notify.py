"""systemd's sd_notify protocol in a few lines: readiness, status, watchdog, stopping.

A datagram of `KEY=value` lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a leading
'@' means the Linux abstract namespace). Outside systemd the variable is unset and every
call is a no-op. A failed send is logged once and never stops the daemon: losing a status
line must not lose digits.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if address.startswith("@"):
            self.address = "\0" + address[1:]
        elif address.startswith("/"):
            self.address = address
        self.watchdog_interval = watchdog_interval(env)
        self._socket: socket.socket | None = None
        self._last_ping = 0.0
        self._last_status = ""
        self._failed = False
        self.ready_sent = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> None:
        if self.address is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX,
                                             socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            if not self._failed:
                log.warning("cannot notify systemd at %s: %s", self.address.lstrip("\0"), exc)
                self._failed = True

    def ready(self, status: str) -> None:
        """Model loaded and audio flowing: the service is up."""
        if not self.ready_sent:
            self._last_status = status
            self.send("READY=1", f"STATUS={status}")
            self.ready_sent = True
            self._last_ping = time.monotonic()

    def status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self.send(f"STATUS={text}")

    def heartbeat(self) -> None:
        """Called from the audio loop on every block: a WATCHDOG=1 at half the timeout.
        A loop that stops turning stops the pings, and systemd restarts the service."""
        if self.watchdog_interval is None or not self.ready_sent:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def stopping(self, status: str = "stopping") -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval(env: dict[str, str] | os._Environ[str]) -> float | None:
    """Half of $WATCHDOG_USEC in seconds, when the watchdog is meant for this process."""
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2e6


class ServiceState:
    """The systemd side of the audio loop: READY once audio flows, a watchdog ping from
    every turn of the loop, STATUS when the device, its silence or the digit count changes."""

    def __init__(self, notifier: Notifier, source: Any, loop: Any, watch: Any = None) -> None:
        self.notifier, self.source, self.loop, self.watch = notifier, source, loop, watch
        self._shown: tuple | None = None

    def status(self) -> str:
        digits = f"{self.loop.digits} digits so far"
        if self.source.lost:
            return f"input device lost ({self.source.description}), reopening; {digits}"
        if self.watch is not None and self.watch.silent:
            return (f"input is digital silence ({self.source.description}): microphone muted "
                    f"or dead?; {digits}")
        return f"listening on {self.source.description}; {digits}"

    def _state(self) -> tuple:
        return (self.source.lost, self.watch is not None and self.watch.silent, self.loop.digits)

    def __call__(self, block: Any) -> None:
        if self.watch is not None:
            self.watch(block.samples)
        if not self.notifier.ready_sent:
            if block.samples.size == 0:
                return
            self.notifier.ready(self.status())
            self._shown = self._state()
        self.notifier.heartbeat()
        state = self._state()
        if state != self._shown:
            self._shown = state
            self.notifier.status(self.status())
