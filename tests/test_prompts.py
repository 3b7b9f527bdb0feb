"""The benchmark's recorded voice: the right files become digits and words; bad files and an
absent package are skipped, never fatal. On a tree built here and on Debian's package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench import prompts
from bench.prompts import english_word_files, load_allison

RATE = 8000


def _tone(path: Path, hz: float, seconds: float = 0.5, rate: int = 16000) -> None:
    """A distinct tone per file, so a test can tell which file a wave came from."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.5 * np.sin(2 * np.pi * hz * t), rate)


def _dominant_hz(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(wave.size, 1 / RATE)[np.argmax(spectrum)])


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    en = tmp_path / prompts.ENGLISH
    for d in range(10):
        _tone(en / "digits" / f"{d}.wav", 300 + 100 * d)
    for name in ("digits/oh.wav", "letters/o.wav", "for.wav", "phonetic/9_p.wav",
                 "digits/h-8.wav"):  # said for digits, or a digit plus "th"
        _tone(en / name, 1500)
    for name in ("hello.wav", "letters/b.wav", "phonetic/a_p.wav", "digits/40.wav",
                 "digits/h-3.wav"):
        _tone(en / name, 2000)
    _tone(en / "vm-press-one.wav", 2500)  # a phrase: may hold a digit, left out
    (en / "letters" / "z.wav").write_bytes(b"RIFF not audio")  # corrupt
    sf.write(en / "letters" / "y.wav", np.zeros(8000), 8000)  # an empty take
    return tmp_path


def test_english_words_leave_out_digits_homophones_and_phrases(tree):
    names = {p.relative_to(tree / prompts.ENGLISH).as_posix()
             for p in english_word_files(tree / prompts.ENGLISH)}
    assert names == {"hello.wav", "letters/b.wav", "phonetic/a_p.wav", "digits/40.wav",
                     "digits/h-3.wav", "letters/z.wav", "letters/y.wav"}


def test_load_labels_digits_and_skips_bad_files(tree, caplog):
    voice = load_allison(RATE, tree)
    assert voice.digit_labels == list(range(10))
    assert [round(_dominant_hz(w), -1) for w in voice.digit_waves] == [
        300 + 100 * d for d in range(10)]
    assert len(voice.word_waves) == 5 and voice.skipped == 1  # corrupt counted, silence out
    assert all(round(_dominant_hz(w), -1) == 2000 for w in voice.word_waves)
    assert "unreadable" in caplog.text


def test_an_absent_package_is_a_warning(tmp_path, caplog):
    voice = load_allison(RATE, tmp_path / "nowhere")
    assert not voice.digit_waves and not voice.word_waves
    assert prompts.PACKAGE in caplog.text


def test_debian_package_gives_a_womans_ten_digits_and_words():
    if not (prompts.DEFAULT_DIR / prompts.ENGLISH).is_dir():
        pytest.fail(f"{prompts.PACKAGE} not installed (scripts/install-system-packages)")
    voice = load_allison(RATE)
    assert voice.digit_labels == list(range(10))
    assert all(0.3 * RATE < w.size < 1.5 * RATE for w in voice.digit_waves)
    assert len(voice.word_waves) > 150
