"""A private PulseAudio server for tests: a null sink whose monitor is the default source.

digitd reads it through PortAudio's ALSA "pulse" device (libasound2-plugins), exactly as
it would read a desktop's microphone; `paplay` speaks into the sink.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

SINK = "digitd_test"


class PulseServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(root), "HOME": str(root),
                    "PULSE_RUNTIME_PATH": str(root / "pulse")}
        self.env.pop("PULSE_SERVER", None)
        self.proc: subprocess.Popen | None = None

    def pactl(self, *args: str) -> str:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True,
                              timeout=20, check=True).stdout

    def start(self) -> PulseServer:
        for tool in ("pulseaudio", "pactl", "paplay"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} not installed (apt-get install pulseaudio "
                                   "pulseaudio-utils libasound2-plugins)")
        with open(self.root / "pulse.log", "wb") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit",
                 "--log-target=stderr", "--load=module-native-protocol-unix"],
                env=self.env, stdout=subprocess.DEVNULL, stderr=log,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                self.pactl("info")
                break
            except subprocess.CalledProcessError:
                time.sleep(0.2)
        else:
            raise RuntimeError("PulseAudio did not start: "
                               + (self.root / "pulse.log").read_text(errors="replace")[-2000:])
        self.load_sink()
        return self

    def load_sink(self) -> None:
        self.pactl("load-module", "module-null-sink", f"sink_name={SINK}")
        self.pactl("set-default-source", f"{SINK}.monitor")

    def unload_sink(self) -> None:
        self.pactl("unload-module", "module-null-sink")

    def play(self, path: Path) -> None:
        subprocess.run(["paplay", f"--device={SINK}", str(path)], env=self.env, check=True,
                       timeout=120)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
