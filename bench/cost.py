"""What recognizing costs: inference time per utterance, start-up, peak memory, and the
daemon's own footprint on a real PortAudio device. Timings are measurements on a shared
machine, reported, never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def time_per_call(fn, items: list, runs: int) -> float:
    """Mean milliseconds of fn(item) over `runs` calls, after a short warm-up."""
    for item in items[:5]:
        fn(item)
    t0 = time.perf_counter()
    for i in range(runs):
        fn(items[i % len(items)])
    return (time.perf_counter() - t0) / runs * 1000.0


def subprocess_footprint(args: list[str], stdin: bytes | None = None) -> dict:
    """Run a command under a tiny wrapper: wall time to its 'READY' line on stderr, total
    wall time, its CPU seconds and its peak RSS (the wrapper's only child)."""
    wrapper = ("import resource, subprocess, sys, time, json\n"
               "t0 = time.monotonic(); ready = None\n"
               "p = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, "
               "stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
               "data = sys.stdin.buffer.read()\n"
               "import threading\n"
               "def feed():\n"
               "    p.stdin.write(data); p.stdin.close()\n"
               "threading.Thread(target=feed, daemon=True).start()\n"
               "err = b''\n"
               "for line in p.stderr:\n"
               "    err += line\n"
               "    if ready is None and b'READY' in line: ready = time.monotonic() - t0\n"
               "out = p.stdout.read(); p.wait(); total = time.monotonic() - t0\n"
               "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
               "print(json.dumps({'ready_s': ready, 'wall_s': total, 'cpu_s': u.ru_utime + "
               "u.ru_stime, 'peak_rss_mb': u.ru_maxrss / 1024, 'rc': p.returncode, "
               "'stdout': out.decode()}))\n")
    done = subprocess.run([sys.executable, "-c", wrapper, *args], input=stdin or b"",
                          capture_output=True, timeout=600, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode())
    return json.loads(done.stdout)


QUIET_SECONDS = 300.0  # long enough that start-up weighs little, as over a day of listening
QUIET_DBFS = -55.0  # RMS of a USB microphone's hiss in a still room


def quiet_room(seconds: float = QUIET_SECONDS) -> dict:
    """`digitd recognize` on a WAV of a quiet room (pink noise at QUIET_DBFS): CPU seconds
    per second of audio, start-up included, and the digits it printed (none is right)."""
    import soundfile as sf
    from digitd.train.augment import coloured_noise

    rate = 16000
    noise = coloured_noise(int(seconds * rate), 1.0, np.random.default_rng(5))
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "quiet-room.wav"
        sf.write(path, (noise / np.std(noise) * 10 ** (QUIET_DBFS / 20)).astype(np.float32),
                 rate, subtype="PCM_16")
        run = subprocess_footprint([sys.executable, "-m", "digitd.daemon.cli", "recognize",
                                    str(path)])
    if run["rc"] != 0:
        raise RuntimeError(f"digitd recognize exited {run['rc']} on {path}")
    return {"seconds": seconds, "level_dbfs": QUIET_DBFS, "cpu_share": run["cpu_s"] / seconds,
            "digits_printed": len(run["stdout"].split())}


def proc_stat(pid: int) -> tuple[float, int]:
    """(CPU seconds, peak RSS bytes) of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    return cpu, hwm


def rss_by_origin(pid: int) -> dict[str, float]:
    """Resident MB of a process by where the pages come from (/proc/PID/smaps)."""
    groups: dict[str, float] = {}
    origin = "anonymous"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and "-" in fields[0] and ":" in fields[3]:  # a mapping's header
            path = fields[5] if len(fields) > 5 else ""
            origin = ("anonymous" if not path.startswith("/") else
                      "LiteRT" if "ai_edge_litert" in path else
                      "numpy" if "/numpy" in path else
                      "Python and other extensions" if "python3" in path else
                      "system libraries (PortAudio, ALSA and what its plugins load)")
        elif fields and fields[0] == "Rss:":
            groups[origin] = groups.get(origin, 0.0) + int(fields[1]) / 1024
    return groups


def daemon_on_pulse(seconds: float) -> dict:
    """`digitd listen` on a PulseAudio null-sink monitor (a real PortAudio device): time to
    ready, share of one core while it hears silence, peak RSS, heavy modules imported.

    A microphone's clock always runs, so the sink is kept running by a player of silence
    at 20 ms latency. An idle null sink renders its first monitor block only ~2 s after a
    recorder connects; readiness there is measured too (`ready_idle_sink_s`)."""
    from tests.pulse import SINK, PulseServer

    with tempfile.TemporaryDirectory() as tmp:
        pulse = PulseServer(Path(tmp)).start()
        try:
            idle = _daemon_run(pulse, Path(tmp) / "idle", 0.0)
            player = subprocess.Popen(
                ["pacat", "--playback", f"--device={SINK}", "--format=s16le", "--rate=16000",
                 "--channels=1", "--latency-msec=20", "/dev/zero"],
                env=pulse.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(1.0)
                running = _daemon_run(pulse, Path(tmp) / "running", seconds, lose_device=True)
                running["cpu_share_bare_stream"] = _bare_stream_share(pulse, seconds)
            finally:
                player.kill()
                player.wait()
        finally:
            pulse.stop()
    return {**running, "ready_idle_sink_s": idle["ready_s"]}


BARE_STREAM = (
    "import queue, sys, sounddevice as sd\n"
    "blocks = queue.Queue()\n"
    "with sd.InputStream(samplerate=16000, channels=1, dtype='float32',\n"
    "                    blocksize=16 * int(sys.argv[1]),\n"
    "                    callback=lambda data, *_: blocks.put(bytes(data))):\n"
    "    while True:\n"
    "        blocks.get()\n")


def _bare_stream_share(pulse, seconds: float) -> float | None:
    """Share of one core that a PortAudio stream costs on its own on the same device, its
    blocks only queued and taken: the audio stack's part of the daemon's idle figure."""
    from digitd.daemon.config import BY_KEY

    if seconds <= 0:
        return None
    proc = subprocess.Popen([sys.executable, "-c", BARE_STREAM,
                             str(BY_KEY["audio.block_ms"].default)], env=pulse.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)  # as the daemon's: stream start-up is not steady state
        cpu0, _ = proc_stat(proc.pid)
        time.sleep(seconds)
        cpu1, _ = proc_stat(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    return (cpu1 - cpu0) / seconds


def wait_for_line(log: list[tuple[float, str]], text: str, timeout: float) -> None:
    """Until a line holding `text` is in `log` (filled by a reader thread)."""
    deadline = time.monotonic() + timeout
    while not any(text in line for _, line in log):
        if time.monotonic() > deadline:
            raise RuntimeError(f"daemon never logged {text!r}: {''.join(x for _, x in log)}")
        time.sleep(0.1)


PROBE = ("import runpy, sys, atexit\n"
         "def report():\n"
         "    heavy = [m for m in ('tensorflow', 'keras', 'librosa', 'scipy') "
         "if m in sys.modules]\n"
         "    print('HEAVY=' + ','.join(heavy), file=sys.stderr, flush=True)\n"
         "atexit.register(report)\n"
         "sys.argv = ['digitd', 'listen', '--device', 'pulse']\n"
         "runpy.run_module('digitd.daemon.cli', run_name='__main__')\n")


def _stop(proc: subprocess.Popen) -> float | None:
    """SIGTERM; seconds until a clean exit, None when it had to be killed."""
    proc.terminate()
    sigterm = time.monotonic()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # a finding to report, not a reason to stop
        proc.kill()
        proc.wait(timeout=10)
    return time.monotonic() - sigterm if proc.returncode == 0 else None


def _daemon_run(pulse, folder: Path, seconds: float, lose_device: bool = False) -> dict:
    """One `digitd listen` on `pulse`, with its own notify socket in `folder`. With
    lose_device, the sink is then unloaded for a few of the daemon's rescans and loaded
    again, as a USB microphone pulled out and plugged back in; the peak RSS is read again
    once the daemon says the device is back."""
    from tests.notify_socket import NotifySocket

    folder.mkdir()
    notify = NotifySocket(path=folder / "notify")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", PROBE],
                            env={**pulse.env, "NOTIFY_SOCKET": notify.address},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log: list[tuple[float, str]] = []

    def read_log() -> None:
        for line in proc.stderr:
            log.append((time.monotonic(), line))

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    try:
        ready = notify.wait_for("READY=1", timeout=30) - started
        cpu0 = cpu1 = 0.0
        if seconds > 0:
            time.sleep(3)  # steady state: stream start-up is not "hearing silence"
            cpu0, _ = proc_stat(proc.pid)
            time.sleep(seconds)
            cpu1, _ = proc_stat(proc.pid)
        _, peak = proc_stat(proc.pid)
        rss = rss_by_origin(proc.pid)
        peak_after_loss = None
        if lose_device:
            pulse.unload_sink()
            wait_for_line(log, "input device unavailable", 15)
            time.sleep(4)  # the daemon rescans with backoff meanwhile
            pulse.load_sink()
            wait_for_line(log, "input device back", 30)
            _, peak_after_loss = proc_stat(proc.pid)
    finally:
        stop_s = _stop(proc)
        reader.join(timeout=5)
        notify.close()
    if stop_s is None:
        print("bench: the daemon did not stop cleanly on SIGTERM; its last lines:\n"
              + "".join(x for _, x in log[-15:]), file=sys.stderr)
    opened = next((t - started for t, line in log if "listening on" in line), None)
    heavy = next((x for _, x in log if x.startswith("HEAVY=")), "HEAVY=?")[6:].strip()
    return {"stream_open_s": opened, "ready_s": ready,
            "cpu_share_silence": (cpu1 - cpu0) / seconds if seconds > 0 else None,
            "peak_rss_mb": peak / 2**20, "rss_mb_by_origin": rss,
            "peak_rss_after_device_loss_mb": peak_after_loss and peak_after_loss / 2**20,
            "heavy_modules": heavy.split(",") if heavy else [],
            "stop_after_sigterm_s": stop_s}


def wyoming_server(clips: list[np.ndarray], rate: int) -> dict:
    """`digitd wyoming` on loopback, one transcription per clip as Home Assistant sends a
    command: transcript latency after audio-stop (p50/p95), digits right, and the server's
    CPU per audio hour (start-up excluded)."""
    import asyncio
    import socket

    from wyoming.asr import Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "digitd.daemon.cli", "wyoming", "--uri",
                             f"tcp://127.0.0.1:{port}", "--log-level", "WARNING"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)

    async def one(pcm: bytes) -> tuple[float, str]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(AudioStart(rate=rate, width=2, channels=1).event())
            for i in range(0, len(pcm), 3200):
                await client.write_event(AudioChunk(rate=rate, width=2, channels=1,
                                                    audio=pcm[i : i + 3200]).event())
            stop = time.perf_counter()
            await client.write_event(AudioStop().event())
            text = Transcript.from_event(await client.read_event()).text
            return (time.perf_counter() - stop) * 1000, text

    async def all_clips() -> list[tuple[float, str]]:
        return [await one((np.clip(c, -1, 1) * 32767).astype("<i2").tobytes()) for c in clips]

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("digitd wyoming did not start") from None
                time.sleep(0.1)
        cpu0, _ = proc_stat(proc.pid)
        answers = asyncio.run(all_clips())
        cpu1, peak = proc_stat(proc.pid)
    finally:
        _stop(proc)  # SIGTERM, then SIGKILL after 10 s: never left running
    latencies = [ms for ms, _ in answers]
    seconds = sum(c.size for c in clips) / rate
    return {"requests": len(clips), "transcripts": [t for _, t in answers],
            "latency_ms_p50": float(np.percentile(latencies, 50)),
            "latency_ms_p95": float(np.percentile(latencies, 95)),
            "cpu_seconds_per_audio_hour": (cpu1 - cpu0) / seconds * 3600,
            "peak_rss_mb": peak / 2**20}


def embedding_macs(frames: int, n_mels: int = 32, phases: int = 1) -> int:
    """Multiply-accumulates of one pass of the speech embedding over `frames` mel frames,
    from its architecture table (unpadded time, frequency padded by one band each side;
    with `phases` grids the last pooling strides 2 // phases and the last convolution is
    dilated by phases, as train.embedding.build_embedding makes it)."""
    from digitd.train.embedding import ARCHITECTURE, LAST_CONV, LAST_POOL

    t, f, channels, macs = frames, n_mels + 2, 1, 0
    for i, layer in enumerate(ARCHITECTURE):
        if layer[0] == "pool":
            size = layer[1][0]
            stride = size // phases if i == LAST_POOL else size
            t, f = (t - size) // stride + 1, f // layer[1][1]
            continue
        _, (kt, kf), padding, out = layer
        dilation = phases if i == LAST_CONV else 1
        t, f = t - (kt - 1) * dilation, (f - kf + 1 if padding == "valid" else f)
        macs += t * f * kt * kf * channels * out
        channels = out
    return macs
