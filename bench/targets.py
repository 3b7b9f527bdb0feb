"""Measure digitd against its targets and write reports/benchmarks.json.

  python bench/targets.py [--quick]

Reads reports/loso.json and the LOSO fold models in reports/loso/ (from
`digitd-train evaluate --loso`) and the shipped model. Measures:
  - LOSO accuracy of the int8 models (mean, worst), int8/float agreement, non-digit rejection
  - model size; per-utterance time of features and of int8 inference (LiteRT, one thread)
  - streaming: for each held-out speaker, a long stream of that speaker's digits with
    0.3-1.5 s pauses and noise at 20 and 10 dB SNR, recognized by that speaker's fold model:
    digit error rate (edit distance) and end-of-word -> emit latency p50/p95
  - the daemon (`digitd listen` on a PulseAudio null-sink monitor): ready time, CPU share
    while hearing silence, peak RSS, and whether TensorFlow, librosa or scipy got imported
Timings are measurements on a shared machine, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digitd.daemon.audio import read_audio  # noqa: E402
from digitd.daemon.features import extract  # noqa: E402
from digitd.daemon.model import DigitClassifier, default_model_path  # noqa: E402
from digitd.daemon.pipeline import StreamRecognizer  # noqa: E402
from digitd.train.augment import coloured_noise  # noqa: E402 (pink noise, as training)


def edit_distance(a: list, b: list) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def stream_for(speaker: str, recordings: Path, count: int, snr_db: float, seed: int):
    """Held-out speaker's digits with random pauses in pink noise at snr_db (speech-active
    power vs noise power); returns samples, truth digits and true word end times."""
    rng = np.random.default_rng(seed)
    files = sorted(recordings.glob(f"*_{speaker}_*.wav"))
    picks = rng.choice(len(files), size=count, replace=False)
    parts, truth, ends, t = [np.zeros(4000)], [], [], 0.5
    speech_power = []
    for i in picks:
        wave = read_audio(files[i], 8000).astype(np.float64)
        wave /= np.max(np.abs(wave)) + 1e-9
        speech_power.append(np.mean(wave**2))
        pause = rng.uniform(0.3, 1.5)
        parts += [wave, np.zeros(int(pause * 8000))]
        truth.append(int(files[i].name[0]))
        ends.append(t + wave.size / 8000)
        t += wave.size / 8000 + int(pause * 8000) / 8000
    x = np.concatenate(parts)
    noise = coloured_noise(x.size, 1.0, rng) * np.sqrt(np.mean(speech_power) / 10 ** (snr_db / 10))
    x = 0.3 * (x + noise) / np.max(np.abs(x + noise))
    return x.astype(np.float32), truth, ends


def run_stream(model: Path, samples: np.ndarray, block: int = 160):
    recognizer = StreamRecognizer(DigitClassifier(model))
    emitted = []
    for start in range(0, samples.size, block):
        t0 = time.perf_counter()
        events = recognizer.feed(samples[start : start + block])
        cost = time.perf_counter() - t0
        stream_now = min(samples.size, start + block) / 8000
        emitted += [(e, stream_now + cost) for e in events]
    emitted += [(e, samples.size / 8000) for e in recognizer.finish()]
    return emitted


def streaming(reports: Path, recordings: Path, count: int) -> dict:
    out: dict = {}
    for snr in (20, 10):
        errors = words = 0
        latencies: list[float] = []
        per_speaker = {}
        for k, model in enumerate(sorted((reports / "loso").glob("fold-*.tflite"))):
            speaker = model.stem.removeprefix("fold-")
            samples, truth, ends = stream_for(speaker, recordings, count, snr, seed=100 + k)
            emitted = run_stream(model, samples)
            digits = [e.digit for e, _ in emitted if e.digit is not None]
            err = edit_distance(digits, truth)
            per_speaker[speaker] = err / len(truth)
            errors, words = errors + err, words + len(truth)
            for event, at in emitted:
                if event.digit is None:
                    continue
                nearest = min(ends, key=lambda e, ev=event: abs(e - ev.end))
                if abs(nearest - event.end) < 0.5:
                    latencies.append((at - nearest) * 1000)
        out[f"{snr}dB"] = {
            "digit_error_rate": errors / max(1, words), "digits": words,
            "per_speaker_der": per_speaker,
            "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else None,
            "latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else None,
        }
    return out


def inference_cost(recordings: Path, runs: int) -> dict:
    classifier = DigitClassifier()
    waves = [read_audio(p, 8000) for p in sorted(recordings.glob("*_theo_*.wav"))[:50]]
    feats = [extract(w, classifier.features) for w in waves]
    for f in feats[:10]:
        classifier.probabilities(f)
    t0 = time.perf_counter()
    for i in range(runs):
        classifier.probabilities(feats[i % len(feats)])
    infer = (time.perf_counter() - t0) / runs
    t0 = time.perf_counter()
    for i in range(runs):
        extract(waves[i % len(waves)], classifier.features)
    feat = (time.perf_counter() - t0) / runs
    return {"int8_inference_ms": infer * 1000, "features_ms": feat * 1000}


def proc_stat(pid: int) -> tuple[float, int]:
    """(CPU seconds, peak RSS bytes) of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    return cpu, hwm


def daemon_cost(seconds: float) -> dict:
    import tempfile

    from tests.pulse import PulseServer

    with tempfile.TemporaryDirectory() as tmp:
        pulse = PulseServer(Path(tmp)).start()
        probe = ("import runpy, sys, atexit\n"
                 "def report():\n"
                 "    heavy = [m for m in ('tensorflow', 'keras', 'librosa', 'scipy') "
                 "if m in sys.modules]\n"
                 "    print('HEAVY=' + ','.join(heavy), file=sys.stderr, flush=True)\n"
                 "atexit.register(report)\n"
                 "sys.argv = ['digitd', 'listen', '--device', 'pulse']\n"
                 "runpy.run_module('digitd.daemon.cli', run_name='__main__')\n")
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", probe], env=pulse.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = None
        log_lines = []
        while proc.poll() is None:
            line = proc.stderr.readline()
            log_lines.append(line)
            if "listening on" in line:
                ready = time.monotonic() - started
                break
        time.sleep(3)  # steady state: stream start-up is not "hearing silence"
        cpu0, _ = proc_stat(proc.pid)
        time.sleep(seconds)  # the null sink's monitor delivers silence
        cpu1, peak = proc_stat(proc.pid)
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        pulse.stop()
    heavy = next((x for x in (err or "").splitlines() if x.startswith("HEAVY=")), "HEAVY=?")
    return {"ready_s": ready, "cpu_share_of_one_core_silence": (cpu1 - cpu0) / seconds,
            "peak_rss_mb": peak / 2**20, "heavy_modules_imported": heavy[6:].split(",")
            if heavy[6:] else []}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=Path, default=REPO / "reports")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "fsdd")
    parser.add_argument("--quick", action="store_true", help="smaller streams, shorter runs")
    args = parser.parse_args()
    recordings = args.data / "recordings"
    results: dict = {"machine": {"cpus": os.cpu_count()}}
    loso_path = args.reports / "loso.json"
    if loso_path.is_file():
        loso = json.loads(loso_path.read_text())
        results["loso"] = {k: loso[k] for k in ("int8_accuracy", "float_accuracy",
                                                "int8_float_agreement",
                                                "nondigit_rejection_rate_int8", "threshold")}
        results["loso"]["per_speaker_int8"] = {s: v["int8_accuracy"]
                                               for s, v in loso["per_speaker"].items()}
        results["streaming"] = streaming(args.reports, recordings, 20 if args.quick else 60)
    model = default_model_path()
    results["model_bytes"] = model.stat().st_size
    results["cost"] = inference_cost(recordings, 200 if args.quick else 2000)
    results["daemon"] = daemon_cost(5 if args.quick else 30)
    out = args.reports / "benchmarks.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
