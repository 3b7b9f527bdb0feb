"""`digitd recognize --whole` with the shipped model on real FSDD audio, and on bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from digitd.daemon.audio import read_audio
from digitd.daemon.features import window_mel
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
    meta = json.loads(path.read_text())
    stages = [path.parent / meta["files"][stage] for stage in ("embedding", "head")]
    assert all(stage.is_file() for stage in stages)
    assert sum(stage.stat().st_size for stage in stages) <= 2 * 1024 * 1024
    assert "CC BY-SA 4.0" in meta["license"]
    attribution = " ".join(meta["attribution"])
    for credit in ("Zohar Jackson", "Speech Commands", "CC BY 4.0", "speech_embedding",
                   "Apache License 2.0"):
        assert credit in attribution
    assert 0.0 <= meta["rejection"]["min_confidence"] < 1.0


def test_runtime_runs_both_stages_through_the_default_xnnpack_delegate():
    # The evaluation calibrates the rejection rule on what load_interpreter runs, and
    # XNNPACK's int8 kernels round a little differently from the plain ones.
    meta = json.loads(default_model_path().read_text())
    for stage, shape in (("embedding", (1, 76, 32, 1)), ("head", None)):
        interpreter = load_interpreter(default_model_path().parent / meta["files"][stage],
                                       input_shape=shape)
        ops = {op["op_name"] for op in interpreter._get_ops_details()}
        assert "DELEGATE" in ops, stage


def test_the_shipped_embedding_looks_twice_40_ms_apart(recordings):
    # Its second grid is the same network on audio 40 ms later, exactly (int8 too): the
    # head's two looks at a word differ only in where the word sits.
    classifier = DigitClassifier()
    f = classifier.features
    assert classifier.metadata.phases == 2 and classifier.lead == f.embedding_samples // 2
    mel = window_mel(read_audio(recordings / "7_jackson_12.wav", f.sample_rate), f,
                     lead=classifier.lead)
    vectors = classifier.vectors(mel)
    assert vectors.shape == (2 * f.head_embeddings, 96)
    assert np.array_equal(vectors[0::2], classifier.embeddings(mel))
    assert np.array_equal(vectors[1::2], classifier.embeddings(mel[f.embedding_step // 2 :]))


def test_shipped_model_recognizes_real_fsdd_files(recordings):
    # Five takes per digit from each of the six speakers (training data for the shipped
    # model, so this checks the whole runtime path, not generalization: the evaluation's
    # held-out speakers measure that).
    files = [str(recordings / f"{d}_{s}_{t}.wav")
             for d in range(10) for s in ("george", "jackson", "lucas", "nicolas", "theo",
                                          "yweweler") for t in (3, 17, 29, 38, 44)]
    result = run_cli("recognize", "--whole", "--format", "jsonl", *files)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in rows] == files
    correct = sum(r["digit"] == int(Path(r["file"]).name[0]) for r in rows)
    assert correct / len(rows) >= 0.9, f"only {correct}/{len(rows)} right"


def test_real_people_from_speech_commands_digits_right_and_words_rejected(speech_commands):
    # Real people on their own microphones: two digit clips of each digit and two clips of
    # each non-digit word. The shipped model trained on them, so a clear majority each way
    # checks the runtime path; the evaluation's held-out folds measure generalization.
    digits = [sorted((speech_commands / w).glob("*.flac"))[i]
              for w in ("zero", "one", "two", "three", "four", "five", "six", "seven",
                        "eight", "nine") for i in (0, 5)]
    words = [sorted((speech_commands / w).glob("*.flac"))[i]
             for w in ("bed", "cat", "happy", "down", "left", "right", "stop", "yes", "up",
                       "off", "on", "learn", "visual", "follow") for i in (0, 3)]
    result = run_cli("recognize", "--whole", "--format", "jsonl", *map(str, digits + words))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    names = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    right = sum(r["digit"] == names.index(Path(r["file"]).parent.name)
                for r in rows[: len(digits)])
    rejected = sum(r["digit"] is None for r in rows[len(digits) :])
    assert right >= 0.8 * len(digits), f"{right}/{len(digits)} digits right"
    assert rejected >= 0.8 * len(words), f"{rejected}/{len(words)} words rejected"


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
    assert rows[2] == {"file": good, "digit": 6, "confidence": rows[2]["confidence"],
                       "time": rows[2]["time"]}
    assert "corrupt.wav" in result.stderr and "missing.wav" in result.stderr


def test_one_line_per_file_in_text_mode_and_a_clear_reason(recordings, tmp_path):
    """200 files give 200 lines: '?' for a file that cannot be read, '-' for no digit."""
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF1234WAVEfmt garbage")
    fifo = tmp_path / "fifo.wav"
    os.mkfifo(fifo)
    absurd = tmp_path / "absurd.wav"
    sf.write(absurd, np.zeros(1600, dtype=np.int16), 16000, subtype="PCM_16")
    header = bytearray(absurd.read_bytes())
    header[24:28] = (0xFFFFFFF0).to_bytes(4, "little")  # a sample rate nobody records at
    absurd.write_bytes(bytes(header))
    good = str(recordings / "6_theo_12.wav")
    files = [str(corrupt), str(tmp_path), str(fifo), str(absurd), good]
    result = run_cli("recognize", "--whole", *files)
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["?", "?", "?", "?", "6"]
    errors = result.stderr
    assert "not a regular file (a directory)" in errors
    assert "fifo.wav: not a regular file" in errors
    assert "absurd.wav" in errors and "Traceback" not in errors


def test_a_clip_of_several_words_is_rejected_with_its_reason(recordings, tmp_path):
    a, rate = sf.read(recordings / "4_jackson_3.wav", dtype="float32")
    b, _ = sf.read(recordings / "2_jackson_9.wav", dtype="float32")
    gap = np.zeros(int(0.4 * rate), dtype=np.float32)
    sf.write(tmp_path / "two.wav", np.concatenate([gap, a, gap, b, gap]), rate)
    result = run_cli("recognize", "--whole", "--format", "jsonl", str(tmp_path / "two.wav"))
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["digit"] is None and row["reason"].startswith("several words (2)")
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(16000, dtype=np.float32), 16000)
    result = run_cli("recognize", "--whole", "--format", "jsonl", str(silence))
    assert json.loads(result.stdout)["reason"] == "not a digit"


def test_a_whole_file_longer_than_an_utterance_is_a_per_file_error(recordings, tmp_path):
    long = tmp_path / "long.wav"
    with sf.SoundFile(long, "w", 16000, 1, subtype="PCM_16") as f:
        for _ in range(61):
            f.write(np.zeros(16000, dtype=np.int16))
    result = run_cli("recognize", "--whole", str(long), str(recordings / "6_theo_12.wav"))
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["?", "6"]
    assert "61 s long" in result.stderr


def test_silence_and_noise_are_rejected(tmp_path):
    rng = np.random.default_rng(3)
    sf.write(tmp_path / "silence.wav", np.zeros(16000, dtype=np.float32), 16000)
    sf.write(tmp_path / "hiss.wav", (rng.normal(size=16000) * 0.05).astype(np.float32), 16000)
    result = run_cli("recognize", "--whole", str(tmp_path / "silence.wav"),
                     str(tmp_path / "hiss.wav"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["-", "-"]


def test_missing_model_is_a_clear_error(tmp_path, recordings):
    result = run_cli("recognize", "--whole", "--model", str(tmp_path / "nope.json"),
                     str(recordings / "1_theo_1.wav"))
    assert result.returncode == 2
    assert "model metadata not found" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(ModelError):
        DigitClassifier(tmp_path / "nope.json")


def test_a_missing_or_broken_stage_is_a_clear_error(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    meta = json.loads(default_model_path().read_text())
    (folder / "digitd.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="model file not found"):
        DigitClassifier(folder / "digitd.json")
    for stage in ("embedding", "head"):
        (folder / meta["files"][stage]).write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelError, match="cannot load model"):
        DigitClassifier(folder / "digitd.json")


def test_naming_the_head_file_finds_its_metadata(recordings):
    meta = json.loads(default_model_path().read_text())
    head = default_model_path().parent / meta["files"]["head"]
    result = run_cli("recognize", "--whole", "--model", str(head),
                     str(recordings / "6_theo_12.wav"))
    assert result.returncode == 0 and result.stdout.split() == ["6"], result.stderr


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


def test_a_long_file_streams_in_bounded_memory(tmp_path):
    """recognize reads a file a block at a time: a long 48 kHz stereo recording costs no
    more memory than a short one (it was read whole: 2.5 GB for two hours)."""
    long = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(long, "w", 48000, 2, subtype="PCM_16") as f:
        for _ in range(6 * 60):  # six minutes of a quiet room
            f.write((rng.normal(0, 300, (48000, 2))).astype(np.int16))
    proc = subprocess.Popen([sys.executable, "-m", "digitd.daemon.cli", "recognize", str(long)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # VmHWM of the process itself, polled: a wait4 maximum would count the moment between
    # fork and exec, when the child is a copy of this (large) test process
    peak_mb = 0.0
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak_mb = max(peak_mb, int(status.split("VmHWM:")[1].split()[0]) / 1024)
        except (OSError, IndexError):
            pass
        time.sleep(0.05)
    assert proc.returncode == 0, proc.stderr.read().decode()
    assert proc.stdout.read() == b""
    assert peak_mb < 150, f"peak RSS {peak_mb:.0f} MB for a {long.stat().st_size >> 20} MB file"


def test_the_model_checks_its_runtime_at_load(tmp_path, caplog):
    """The embedding's output on a known input must match what it gave at export: XNNPACK's
    int8 kernels computed garbage on emulated arm64; the built-in kernels take over then,
    and a runtime wrong both ways is a clear error, never wrong digits."""
    import json as js
    import shutil

    path = default_model_path()
    probe = js.loads(path.read_text())["probe"]
    assert np.asarray(probe["embedding"]).shape == (16, 96)
    assert int(np.argmax(probe["head"])) == 4  # the sample's first second: "four"
    with caplog.at_level("WARNING"):
        DigitClassifier(path)
    assert "XNNPACK" not in caplog.text  # agrees here
    folder = tmp_path / "m"
    shutil.copytree(path.parent, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    meta = js.loads((folder / "digitd.json").read_text())
    meta["probe"]["head"] = np.roll(probe["head"], 3).tolist()  # what a broken head gives
    (folder / "digitd.json").write_text(js.dumps(meta))
    with caplog.at_level("WARNING"), pytest.raises(ModelError, match="computes this model"):
        DigitClassifier(folder / "digitd.json")
    assert "using its built-in kernels instead" in caplog.text


def test_a_word_is_heard_at_each_of_the_models_speeds_and_averaged(recordings, tmp_path):
    # The model's "speeds": the word played as a tape at each, one embedding pass each, the
    # head's probabilities averaged (the evaluation scores and calibrates the same way).
    from digitd.daemon.features import check_waveform, noise_floor, trim_silence

    folder = tmp_path / "m"
    shutil.copytree(default_model_path().parent, folder,
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    meta = json.loads((folder / "digitd.json").read_text())
    x = check_waveform(read_audio(recordings / "3_theo_5.wav", 16000))
    f = DigitClassifier().features
    word, floor = trim_silence(x, f), noise_floor(x, f)
    probs = {}
    for speeds in ([0.9], [1.0], [1.1], [0.9, 1.0, 1.1]):
        meta["speeds"] = speeds
        (folder / "digitd.json").write_text(json.dumps(meta))
        classifier = DigitClassifier(folder / "digitd.json")
        probs[tuple(speeds)] = classifier.word_probabilities(word, floor)
    assert not np.allclose(probs[0.9,], probs[1.1,], atol=1e-3)  # each speed is its own look
    mean = (probs[0.9,] + probs[1.0,] + probs[1.1,]) / 3
    assert np.allclose(probs[0.9, 1.0, 1.1], mean, atol=1e-6)
    assert np.allclose(classifier.classify_utterance(x).probabilities, mean, atol=1e-6)
