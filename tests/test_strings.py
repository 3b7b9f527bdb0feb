"""Connected digits: the strings stage reads numbers said with no pause between the words,
from real recordings through `digitd recognize`; its padding and CTC reading on their own."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from digitd.daemon.features import FeatureConfig, n_embeddings, n_mel_frames, string_audio
from digitd.daemon.model import STRING_TOKENS, DigitClassifier, StringReading

from .daemon import CLI
from .streams import clear_takes, said_together

STRINGS = [[(4, "jackson"), (2, "theo"), (7, "lucas")],
           [(1, "george"), (9, "jackson"), (5, "theo"), (3, "george")],
           [(8, "lucas"), (0, "george"), (6, "jackson")],
           [(2, "yweweler"), (5, "yweweler"), (5, "yweweler"), (1, "yweweler")],
           [(3, "nicolas"), (7, "nicolas"), (0, "nicolas")],
           [(6, "theo"), (6, "theo"), (9, "theo"), (4, "theo"), (8, "theo")],
           [(9, "george"), (1, "george"), (2, "george")],
           [(5, "lucas"), (8, "lucas"), (4, "lucas"), (0, "lucas")]]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=180)


def test_string_audio_pads_quietly_and_rounds_to_few_lengths():
    cfg = FeatureConfig()
    for seconds in (0.2, 1.0, 2.7, 4.1):
        speech = np.full(int(seconds * 16000), 0.3)
        audio = string_audio(speech, cfg, pad_dbfs=-60.0)
        n = n_embeddings(n_mel_frames(audio.size, cfg), cfg)
        assert n % 4 == 0 and audio.size >= speech.size + int(0.6 * 16000)
        lead = audio[: int(0.3 * 16000)]
        assert 20 * np.log10(np.sqrt(np.mean(lead**2))) == pytest.approx(-60.0, abs=1.0)
        assert np.all(audio[int(0.3 * 16000) : int(0.3 * 16000) + speech.size] == 0.3)


def test_a_ctc_reading_collapses_runs_and_keeps_repeats_split_by_a_blank():
    blank, four, seven, word = (STRING_TOKENS.index(t) for t in ("blank", "4", "7", "unknown"))
    path = [blank, four, four, blank, four, seven, seven, blank, word, blank]
    probs = np.full((len(path), len(STRING_TOKENS)), 0.02)
    for t, k in enumerate(path):
        probs[t, k] = 0.8 if t != 2 else 0.9
    reading = StringReading.of(probs)
    assert reading.tokens == ("4", "4", "7", "unknown")
    assert reading.confidences[0] == pytest.approx(0.9) and reading.positions[0] == 2
    assert reading.digits(0.85) == [4, None, None, None]
    assert reading.digits(0.5) == [4, 4, 7, None]


def test_the_shipped_model_has_a_strings_stage_checked_at_load():
    classifier = DigitClassifier()
    assert classifier.strings is not None
    assert "strings" in classifier.metadata.raw["probe"]
    assert 0.0 < classifier.string_min_confidence < 1.0


@pytest.fixture(scope="module")
def takes(recordings):
    return {s: clear_takes(recordings, wanted) for s, wanted in enumerate(STRINGS)}


def test_recognize_reads_numbers_said_with_no_pause(recordings, takes, tmp_path):
    files, truth = [], []
    for k, names in takes.items():
        path = tmp_path / f"string-{k}.wav"
        sf.write(path, said_together(recordings, names, gap=0.0), 16000)
        files.append(str(path))
        truth.append("".join(n[0] for n in names))
    done = run("recognize", "--numbers", "--format", "jsonl", *files)
    assert done.returncode == 0, done.stderr
    got: dict[str, list[str]] = {}
    for row in map(json.loads, done.stdout.splitlines()):
        got.setdefault(Path(row["file"]).name, []).append(row["number"])
    said = {Path(f).name: t for f, t in zip(files, truth, strict=True)}
    right = [name for name, t in said.items() if got.get(name) == [t]]
    wrong = [name for name, t in said.items() if any(n not in (None, t) for n in
                                                   got.get(name, []))]
    assert len(right) >= 6, (got, said)
    assert len(wrong) <= 1, (got, said)


def test_a_word_said_inside_a_fluent_number_rejects_it(recordings, speech_commands, tmp_path):
    import soxr

    four, seven = clear_takes(recordings, [(4, "jackson"), (7, "theo")])
    cat_path = sorted((speech_commands / "cat").iterdir())[0]
    cat, rate = sf.read(cat_path, dtype="float32")
    sf.write(tmp_path / "cat.wav", soxr.resample(cat, rate, 8000), 8000)
    x = said_together(recordings, [four], tail=0.0)
    y = said_together(tmp_path, ["cat.wav"], lead=0.0, tail=0.0)
    z = said_together(recordings, [seven], lead=0.0)
    path = tmp_path / "four-cat-seven.wav"
    sf.write(path, np.concatenate([x, y, z]), 16000)
    done = run("recognize", "--numbers", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # never 47: nobody said forty-seven
