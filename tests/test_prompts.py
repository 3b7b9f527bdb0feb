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


def test_corpus_takes_the_digits_repeated_and_the_rest_as_non_digits(tree, fsdd_dir):
    from digitd.train.config import TrainConfig
    from digitd.train.data import load_fsdd
    from digitd.train.dataset import build_corpus

    fsdd = load_fsdd(fsdd_dir, RATE, limit_per_class=1)
    cfg = TrainConfig(use_tts=False, use_prompt_voices=True, prompt_voices_dir=tree,
                      prompt_digit_repeats=3)
    corpus = build_corpus(fsdd, cfg)
    assert corpus.fsdd_count == len(fsdd)
    assert corpus.digit_labels[len(fsdd):] == list(range(10)) * 3
    assert len(corpus.word_waves) == 5 + 1  # English words + the French piece
    without = build_corpus(fsdd, TrainConfig(use_tts=False, real_pieces=0))
    assert len(without.digit_waves) == len(fsdd) and not without.word_waves


def test_real_pieces_are_other_peoples_speech_cut_at_several_places(tree, fsdd_dir, capsys):
    """--real-pieces: the French, Italian and Russian voices only (not Allison Smith, whose
    English the benchmark keeps unheard), N pieces from each recording longer than a piece,
    all non-digit speech by recorded people; no digit is added."""
    from digitd.train import cli
    from digitd.train.config import TrainConfig
    from digitd.train.data import load_fsdd
    from digitd.train.dataset import build_corpus

    _tone(tree / "fr_CA_f_June" / "oui.wav", 3500, seconds=0.2)  # shorter than any piece
    _tone(tree / "es_MX_f_Allison" / "hola.wav", 900, seconds=2.0)  # Allison: never
    voices = load_prompt_voices(RATE, tree, seed=1, other_languages=prompts.OTHER_PEOPLE,
                                english=False, pieces_per_file=3)
    assert not voices.digit_waves and not voices.word_waves
    hz = sorted(round(_dominant_hz(w), -1) for w in voices.pieces)
    assert hz == [3000, 3000, 3000, 3500]  # three cuts of "bonjour", "oui" once, whole
    bonjour = [p for p in voices.pieces if p.size != int(0.2 * RATE)]
    assert len({p.size for p in bonjour}) > 1  # independent cuts, not one piece thrice

    fsdd = load_fsdd(fsdd_dir, RATE, limit_per_class=1)
    corpus = build_corpus(fsdd, TrainConfig(use_tts=False, real_pieces=3,
                                            prompt_voices_dir=tree))
    assert len(corpus.digit_waves) == len(fsdd) == corpus.fsdd_count
    assert len(corpus.word_waves) == 4 and corpus.word_recorded == [True] * 4
    # only June's folder exists in this tree: she alone is whom the model must credit
    assert corpus.recorded_voices == ["fr_CA_f_June"]

    parse = cli.build_parser().parse_args
    assert cli.make_config(parse(["fit"])).real_pieces == TrainConfig().real_pieces == 3
    assert cli.make_config(parse(["fit", "--real-pieces", "0"])).real_pieces == 0
    assert cli.make_config(parse(["fit", "--quick"])).real_pieces == 0  # FSDD only
    assert cli.main(["fit", "--quick", "--real-pieces", "-1"]) == 2
    assert "--real-pieces must be at least 0" in capsys.readouterr().err
    assert TrainConfig().real_people == prompts.OTHER_PEOPLE
    assert not cli.make_config(parse(["fit"])).real_pieces_at_pauses
    assert cli.make_config(parse(["fit", "--pieces-at-pauses"])).real_pieces_at_pauses
    both = cli.make_config(parse(["fit", "--real-people", "it_IT_f_Menardi, fr_CA_f_June"]))
    assert both.real_people == ("it_IT_f_Menardi", "fr_CA_f_June")
    # Allison Smith is the benchmark's; a folder without a credit is never trained on
    for bad in ("en_US_f_Allison", "fr_CA_f_June,xx_XX_nobody", ","):
        assert cli.main(["fit", "--quick", "--real-people", bad]) == 2
        assert "--real-people takes voices among" in capsys.readouterr().err


def test_pieces_of_the_chosen_people_only(tree):
    """TrainConfig.real_people picks whose prompts are cut; a chosen voice that is not
    installed is skipped, and is not among the voices read."""
    from digitd.train.config import TrainConfig
    from digitd.train.data import Utterances
    from digitd.train.dataset import build_corpus

    _tone(tree / "it_IT_f_Menardi" / "ciao.wav", 1000, seconds=2.0)
    _tone(tree / "it_IT_f_Menardi" / "digits" / "3.wav", 1500)  # "tre": never a piece
    empty = Utterances()
    for people, voices, hz in ((("it_IT_f_Menardi",), ["it_IT_f_Menardi"], {1000}),
                               (prompts.PIECE_PEOPLE, ["fr_CA_f_June", "it_IT_f_Menardi"],
                                {1000, 3000})):
        corpus = build_corpus(empty, TrainConfig(use_tts=False, real_pieces=2,
                                                 real_people=people, prompt_voices_dir=tree))
        assert corpus.recorded_voices == voices
        assert {round(_dominant_hz(w), -1) for w in corpus.word_waves} == hz
    with pytest.raises(ValueError, match="no credit known for xx_XX_nobody"):
        build_corpus(empty, TrainConfig(use_tts=False, real_people=("xx_XX_nobody",),
                                        prompt_voices_dir=tree))


@pytest.mark.parametrize(("voices", "named", "not_named"), [
    ((), [], ["Asterisk", "recorded people"]),
    (prompts.OTHER_PEOPLE, ["June Wallack", "Carlo Flora", "Maxim Topal"],
     ["Allison", "Menardi"]),
    (("fr_CA_f_June",), ["June Wallack"], ["Carlo Flora", "Maxim Topal", "Allison"]),
    (("it_IT_f_Menardi",), ["Marco Menardi and Paola Dal Zot", "www.voip.ammdomus.it"],
     ["June Wallack"]),
    (("en_US_f_Allison", "es_MX_f_Allison", "fr_CA_f_June"), ["Allison Smith", "June Wallack"],
     ["Carlo Flora"]),
])
def test_model_metadata_credits_the_recorded_voices_it_was_trained_on(tmp_path, voices, named,
                                                                    not_named):
    """CC BY and CC BY-SA ask for attribution: the licence beside a model names the
    recorded people training read, and no others (the recipe's real_pieces is ignored: a
    voice that was not installed was not trained on)."""
    import json

    pytest.importorskip("tensorflow")
    from digitd.daemon.model import RejectionRule, default_model_path
    from digitd.train.export import write_model

    path = write_model(default_model_path().read_bytes(), tmp_path / "m.tflite",
                       labels=tuple("0123456789") + ("unknown",), features={},
                       rejection=RejectionRule(0.5), rejection_note="",
                       train_config={"real_pieces": 3}, data_hash="0", loso=None,
                       test_time_speeds=(1.0,), recorded_voices=voices)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert "Zohar Jackson" in meta["license"]
    assert all(name in meta["license"] for name in named)
    assert not any(name in meta["license"] for name in not_named)
    assert meta["training"]["recorded_voices"] == list(voices)
