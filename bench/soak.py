"""A soak you can rerun: `digitd listen` on a real PulseAudio device, publishing to a real
Mosquitto, for M minutes of digits, noise bursts and music-like tones played in real time,
with the microphone unplugged and replugged and the broker killed and restarted during it.

    python -m bench.soak --minutes 60       # a person's run; CI runs --minutes 1

Reports digits played / right / wrong / missed / false, MQTT messages delivered, dropped as
stale (older than the daemon's max age: by design) or lost, the daemon's RSS at start and
end, and its CPU per audio hour. Figures, not asserts: results.json and a table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from bench import material
from bench.cost import proc_stat
from bench.scoring import align
from tests.daemon import CLI
from tests.mosquitto import Mosquitto, Subscriber
from tests.pulse import PulseServer

CHUNK_SECONDS = 30.0
MAX_AGE_S = 10.0


def chunk(waves: list[np.ndarray], digits: list[int], rng: np.random.Generator
          ) -> tuple[np.ndarray, list[int]]:
    """CHUNK_SECONDS of a room: digits with pauses, a noise burst or a few tones between
    some of them, a quiet hiss under everything."""
    rate = material.RATE
    parts, said, total = [np.zeros(rate // 2)], [], rate // 2
    while total < (CHUNK_SECONDS - 7) * rate:  # a word, a pause and a sound: under 6 s
        i = int(rng.integers(len(waves)))
        word = waves[i] / (np.max(np.abs(waves[i])) + 1e-9) * rng.uniform(0.2, 0.6)
        gap = np.zeros(int(rng.uniform(0.6, 1.5) * rate))
        if rng.random() < 0.3:  # something that is no word, with silence around it
            other = (material.tones(int(rng.uniform(0.5, 2.0) * rate), rng) if rng.random() < 0.5
                     else rng.normal(size=int(rng.uniform(0.1, 1.0) * rate)))
            other = other / (np.max(np.abs(other)) + 1e-9) * rng.uniform(0.05, 0.3)
            gap = np.concatenate([gap, other, np.zeros(int(0.8 * rate))])
        parts += [word, gap]
        said.append(digits[i])
        total += word.size + gap.size
    x = np.concatenate(parts)
    x = np.concatenate([x, np.zeros(int(CHUNK_SECONDS * rate) - x.size)])
    return (x + rng.normal(size=x.size) * 3e-4).astype(np.float32), said


class Soak:
    def __init__(self, workdir: Path) -> None:
        (workdir / "pulse").mkdir()
        self.pulse = PulseServer(workdir / "pulse").start()
        self.broker = Mosquitto(workdir / "broker").start()
        self.sub = Subscriber(self.broker, topic="digitd/soak/digit")
        self.log, self.out = workdir / "daemon.log", workdir / "digits.jsonl"
        with open(self.out, "w") as out, open(self.log, "w") as log:  # the child keeps copies
            self.daemon = subprocess.Popen(
                [*CLI, "listen", "--device", "pulse", "--format", "jsonl", "--mqtt",
                 self.broker.url(), "--mqtt-device-id", "soak", "--mqtt-max-age",
                 str(MAX_AGE_S)], env=self.pulse.env, stdout=out, stderr=log)
        self.wav = workdir / "chunk.wav"

    def play(self, x: np.ndarray) -> None:
        sf.write(self.wav, x, material.RATE, subtype="PCM_16")
        self.pulse.play(self.wav)

    def unplug(self, seconds: float) -> None:
        self.pulse.unload_sink()
        time.sleep(seconds)
        self.pulse.load_sink()
        deadline = time.monotonic() + 30
        while "input device back" not in self.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)

    def close(self) -> list[dict]:
        try:
            self.daemon.terminate()
            try:
                self.daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
            self.sub.close()
        finally:
            self.broker.stop()
            self.pulse.stop()
        return [json.loads(line) for line in self.out.read_text().splitlines()
                if line.startswith("{")]


def _play(soak: Soak, chunks: int, waves: list, digits: list, rng: np.random.Generator
          ) -> tuple[list[int], float, float, dict]:
    """The chunks in real time, with the microphone unplugged and the broker killed."""
    time.sleep(3)  # model loaded, stream open
    rss_start = proc_stat(soak.daemon.pid)[1] / 2**20
    cpu_start = proc_stat(soak.daemon.pid)[0]
    said: list[int] = []
    events = {"unplugged_at_chunk": chunks // 3, "broker_killed_at_chunk": 2 * chunks // 3}
    started = time.monotonic()
    for k in range(chunks):
        x, words = chunk(waves, digits, rng)
        if k == events["unplugged_at_chunk"] and k:
            soak.unplug(5.0)
        if k == events["broker_killed_at_chunk"] and k:
            soak.broker.kill()  # down while this chunk's first digits are said
            soak.play(x[: 8 * material.RATE])
            soak.broker.start()
            soak.play(x[8 * material.RATE :])
        else:
            soak.play(x)
        said += words
        print(f"[{time.monotonic() - started:5.0f} s] chunk {k + 1}/{chunks}", file=sys.stderr)
    time.sleep(2)
    return said, cpu_start, rss_start, events


def run(minutes: float, data: Path, workdir: Path, seed: int = 0) -> dict:
    fsdd = material.load_fsdd(data, per_digit=5)
    waves, digits = [w.astype(np.float64) for w in fsdd.waves], fsdd.digits
    rng = np.random.default_rng(seed)
    chunks = max(1, int(round(minutes * 60 / CHUNK_SECONDS)))
    soak = Soak(workdir)
    try:
        said, cpu_start, rss_start, events = _play(soak, chunks, waves, digits, rng)
        cpu_end, rss_end = proc_stat(soak.daemon.pid)
        delivered = soak.sub.on("soak/digit")
    finally:  # the daemon, the broker and PulseAudio go, whatever happened
        rows = soak.close()
    emitted = [r["digit"] for r in rows if r.get("digit") is not None]
    counts = align(said, emitted)
    log = soak.log.read_text()
    stale = sum(int(n) for n in _numbers_before(log, " digit(s) older than"))
    late = [m for m in delivered if _age(m) > MAX_AGE_S]
    return {"minutes": chunks * CHUNK_SECONDS / 60, "digits_played": len(said), **counts,
            "emitted": len(emitted), "mqtt_delivered": len(delivered),
            "mqtt_dropped_stale": stale, "mqtt_late": len(late),
            "mqtt_lost": len(emitted) - len(delivered) - stale,
            "rss_mb_start": rss_start, "rss_mb_end": rss_end / 2**20,
            "cpu_s_per_audio_hour": (cpu_end - cpu_start) / (chunks * CHUNK_SECONDS) * 3600,
            **events, "traceback_in_log": "Traceback" in log}


def _numbers_before(text: str, marker: str) -> list[str]:
    return [line.split("MQTT: ")[-1].split(marker)[0] for line in text.splitlines()
            if marker in line]


def _age(message) -> float:
    """Seconds between a digit's "time" and its arrival here (paho stamps a message with
    time.monotonic() when it arrives)."""
    import datetime as dt

    said = dt.datetime.fromisoformat(json.loads(message.payload)["time"]).timestamp()
    arrived = time.time() - (time.monotonic() - message.timestamp)
    return arrived - said


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--data", type=Path,
                        default=Path(__file__).resolve().parent.parent.parent / "shared" / "data"
                        / "fsdd")
    parser.add_argument("--out", type=Path, default=Path("reports/soak"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args.minutes, args.data, Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    width = max(map(len, results))
    print("\n".join(f"{k:{width}}  {v:.1f}" if isinstance(v, float) else f"{k:{width}}  {v}"
                    for k, v in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
