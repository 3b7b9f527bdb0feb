"""`digitd recognize --whole` with the shipped model on real FSDD audio, and on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from digitd.daemon.model import (
    DigitClassifier,
    ModelError,
    default_model_path,
    load_interpreter,
)


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digitd.daemon.cli", *args],
                          capture_output=True, text=True, timeout=120, **kwargs)


def test_shipped_model_is_package_data_with_metadata():
    path = default_model_path()
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert path.stat().st_size <= 100 * 1024
    meta = json.loads(path.with_suffix(".json").read_text())
    assert "CC BY-SA 4.0" in meta["license"] and "Zohar Jackson" in meta["license"]
    assert 0.0 < meta["rejection"]["threshold"] < 1.0


def test_runtime_runs_the_network_through_the_default_xnnpack_delegate():
    # LOSO calibrates the rejection rule on what load_interpreter runs, and XNNPACK's int8
    # kernels round a little differently from the plain ones (and are ~3x faster).
    interpreter = load_interpreter(default_model_path())
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "DELEGATE" in ops


def test_shipped_model_recognizes_real_fsdd_files(recordings):
    # Five takes per digit from each of the six speakers (training data for the shipped
    # model, so this checks the whole runtime path, not generalization).
    files = [str(recordings / f"{d}_{s}_{t}.wav")
             for d in range(10) for s in ("george", "jackson", "lucas", "nicolas", "theo",
                                          "yweweler") for t in (3, 17, 29, 38, 44)]
    result = run_cli("recognize", "--whole", "--format", "jsonl", *files)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in rows] == files
    correct = sum(r["digit"] == int(Path(r["file"]).name[0]) for r in rows)
    assert correct / len(rows) >= 0.9, f"only {correct}/{len(rows)} right"


def test_text_format_and_any_rate_or_channels(recordings, tmp_path):
    import soxr

    wave, rate = sf.read(recordings / "4_jackson_30.wav", dtype="float32")
    lead = np.zeros(int(0.9 * 44100), dtype=np.float32)
    hi = np.concatenate([lead, soxr.resample(wave, rate, 44100), lead])
    stereo = tmp_path / "four.flac"
    sf.write(stereo, np.stack([hi, hi], axis=1), 44100)  # 2.2 s stereo FLAC at 44.1 kHz
    mono16 = tmp_path / "four16.wav"
    sf.write(mono16, soxr.resample(wave, rate, 16000), 16000, subtype="PCM_24")
    result = run_cli("recognize", "--whole", str(stereo), str(mono16))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["4", "4"]


def test_bad_files_are_reported_and_the_batch_goes_on(recordings, tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF1234WAVEfmt garbage")
    good = str(recordings / "6_theo_12.wav")
    result = run_cli("recognize", "--whole", "--format", "jsonl", str(corrupt),
                     str(tmp_path / "missing.wav"), good)
    assert result.returncode == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 3
    assert rows[0]["digit"] is None and "not readable" in rows[0]["error"]
    assert rows[1]["digit"] is None and "no such file" in rows[1]["error"]
    assert rows[2] == {"file": good, "digit": 6, "confidence": rows[2]["confidence"]}
    assert "corrupt.wav" in result.stderr and "missing.wav" in result.stderr


def test_silence_and_noise_are_rejected(tmp_path):
    rng = np.random.default_rng(3)
    sf.write(tmp_path / "silence.wav", np.zeros(16000, dtype=np.float32), 16000)
    sf.write(tmp_path / "hiss.wav", (rng.normal(size=16000) * 0.05).astype(np.float32), 16000)
    result = run_cli("recognize", "--whole", str(tmp_path / "silence.wav"),
                     str(tmp_path / "hiss.wav"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["-", "-"]


def test_missing_model_is_a_clear_error(tmp_path, recordings):
    result = run_cli("recognize", "--whole", "--model", str(tmp_path / "nope.tflite"),
                     str(recordings / "1_theo_1.wav"))
    assert result.returncode == 2
    assert "model file not found" in result.stderr
    with pytest.raises(ModelError):
        DigitClassifier(tmp_path / "nope.tflite")


def test_model_without_metadata_is_a_clear_error(tmp_path):
    bare = tmp_path / "m.tflite"
    bare.write_bytes(default_model_path().read_bytes())
    with pytest.raises(ModelError, match="metadata not found"):
        DigitClassifier(bare)


def test_whole_file_path_imports_no_tensorflow_or_librosa(recordings):
    code = (
        "import sys\n"
        "from digitd.daemon import cli\n"
        f"cli.main(['recognize', '--whole', {str(recordings / '2_george_2.wav')!r}])\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'librosa', 'scipy') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
