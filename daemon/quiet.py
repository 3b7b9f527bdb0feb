"""Keep the C libraries' chatter out of the journal.

LiteRT announces "Created TensorFlow Lite XNNPACK delegate" at every interpreter load, and
PortAudio and alsa-lib print a few lines on every failed reopen while a microphone is
unplugged (about 1,800 an hour). They write to file descriptor 2 directly, past Python. Here
fd 2 becomes a pipe read by a thread that drops those known lines and passes every other
line on; Python's own stderr (logging, tracebacks) writes to the real stderr directly.
"""

from __future__ import annotations

import io
import os
import sys
import threading

NOISE = (b"INFO: Created TensorFlow Lite XNNPACK delegate", b"Expression '", b"ALSA lib ")


def _relay(read_fd: int, out_fd: int) -> None:
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        for line in io.BufferedReader(pipe):
            if line.strip() and not line.startswith(NOISE):
                os.write(out_fd, line)


def filter_c_stderr() -> bool:
    """Route fd 2 through the filter (once per process); False where stderr is no file."""
    if getattr(filter_c_stderr, "done", False):
        return True
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return False
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    sys.stderr = os.fdopen(real, "w", buffering=1, encoding="utf-8", errors="backslashreplace")
    threading.Thread(target=_relay, args=(read_fd, real), name="stderr-filter",
                     daemon=True).start()
    filter_c_stderr.done = True  # type: ignore[attr-defined]
    return True
