"""Recorded prompt voices: the right files become digits, words and pieces; bad files and
absent packages are skipped, never fatal. On a tree built here and on Debian's packages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from digitd.train import prompts
from digitd.train.prompts import english_word_files, load_prompt_voices, word_piece

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
    fr = tmp_path / "fr_CA_f_June"
    _tone(fr / "bonjour.wav", 3000, seconds=2.0)
    _tone(fr / "digits" / "6.wav", 1500)  # French "six": never a piece
    _tone(fr / "silence" / "1.wav", 1500)
    sf.write(fr / "silence" / "2.wav", np.zeros(8000), 8000)
    return tmp_path


def test_english_words_leave_out_digits_homophones_and_phrases(tree):
    names = {p.relative_to(tree / prompts.ENGLISH).as_posix()
             for p in english_word_files(tree / prompts.ENGLISH)}
    assert names == {"hello.wav", "letters/b.wav", "phonetic/a_p.wav", "digits/40.wav",
                     "digits/h-3.wav", "letters/z.wav"}


def test_load_labels_digits_and_skips_bad_files(tree, caplog):
    voices = load_prompt_voices(RATE, tree, seed=1)
    assert voices.digit_labels == list(range(10))
    assert [round(_dominant_hz(w), -1) for w in voices.digit_waves] == [
        300 + 100 * d for d in range(10)]
    assert len(voices.word_waves) == 5 and voices.skipped == 1
    assert all(round(_dominant_hz(w), -1) == 2000 for w in voices.word_waves)
    # Only the French prompt, cut to word length; its digits and silence are left out.
    assert len(voices.pieces) == 1
    assert round(_dominant_hz(voices.pieces[0]), -1) == 3000
    assert 0.3 * RATE <= voices.pieces[0].size <= 1.0 * RATE
    assert "unreadable" in caplog.text and "es_MX_f_Allison" in caplog.text


def test_an_absent_package_is_a_warning(tmp_path, caplog):
    voices = load_prompt_voices(RATE, tmp_path / "nowhere")
    assert not voices.digit_waves and not voices.word_waves and not voices.pieces
    assert "asterisk-core-sounds-en-wav" in caplog.text
    assert "asterisk-core-sounds-fr-wav" in caplog.text
    load_prompt_voices(RATE, tmp_path / "nowhere", other_languages=("it_IT_f_Menardi",),
                       english=False)
    assert "it_IT_f_Menardi (Debian packages asterisk-prompt-it-menardi-wav)" in caplog.text


def test_word_piece_is_a_stretch_of_the_recording():
    rng = np.random.default_rng(0)
    wave = np.arange(3 * RATE, dtype=np.float64)
    for _ in range(20):
        piece = word_piece(wave, RATE, rng)
        assert 0.3 * RATE <= piece.size <= RATE
        assert np.array_equal(piece, np.arange(piece[0], piece[0] + piece.size))
    short = np.ones(100)
    assert word_piece(short, RATE, rng) is short


def test_pause_pieces_begin_and_end_in_pauses():
    """Three 'words' (tone bursts) with pauses between them: every piece cut from pause to
    pause holds whole words, never a stretch that starts or stops inside one."""
    rng = np.random.default_rng(0)
    t = np.arange(int(0.25 * RATE)) / RATE
    word, pause = 0.5 * np.sin(2 * np.pi * 440 * t), np.zeros(int(0.2 * RATE))
    wave = np.concatenate([pause, word, pause, word, pause, word, pause])
    points = prompts.pause_points(wave, RATE)
    assert len(points) == 2 + 4 and points[0] == 0 and points[-1] == wave.size
    seen = set()
    for _ in range(50):
        piece = prompts.pause_piece(wave, RATE, rng)
        assert 0.3 * RATE <= piece.size <= RATE
        assert np.abs(piece[:80]).max() < 1e-9 and np.abs(piece[-80:]).max() < 1e-9
        words = np.sum(np.abs(piece) > 0.1) / np.sum(np.abs(word) > 0.1)
        assert abs(words - round(words)) < 1e-9  # whole words inside, never part of one
        seen.add(round(words))  # each word 0.25 s, each pause 0.2
    assert seen == {1, 2}  # one word, or two and the pause between (three: over 1 s)
    # no pauses: the random cut
    steady = 0.5 * np.sin(2 * np.pi * 440 * np.arange(2 * RATE) / RATE)
    assert 0.3 * RATE <= prompts.pause_piece(steady, RATE, rng).size <= RATE


def test_debian_packages_give_a_womans_ten_digits_and_real_speech():
    if not (prompts.DEFAULT_DIR / prompts.ENGLISH).is_dir():
        pytest.fail("asterisk-core-sounds-en-wav not installed (scripts/install-system-packages)")
    voices = load_prompt_voices(RATE)
    assert voices.digit_labels == list(range(10))
    assert all(0.3 * RATE < w.size < 1.5 * RATE for w in voices.digit_waves)
    assert len(voices.word_waves) > 150 and len(voices.pieces) > 1000
