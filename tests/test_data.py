"""FSDD loader and downloader: real files, a real archive built here, bad files skipped."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from digitd.train.config import UnknownMix
from digitd.train.data import (
    DataError,
    download,
    load_fsdd,
    parse_checksums,
    pinned_checksums,
    recordings_dir,
)
from digitd.train.dataset import SAME_ONSET, Corpus, fsdd_splice, unknown_waveform
from digitd.train.evaluate import HELDOUT_MIX

SOME = ["0_george_0.wav", "1_jackson_1.wav", "5_lucas_2.wav", "9_theo_49.wav"]


def _copy_some(recordings: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in SOME:
        shutil.copy(recordings / name, dest / name)
    return dest


def test_pinned_checksums_match_the_shared_copy(fsdd_dir):
    shipped = pinned_checksums()
    assert len(shipped) == 3000
    assert shipped == parse_checksums((fsdd_dir / "SHA256SUMS").read_text())


def test_load_real_fsdd_subset(fsdd_dir):
    data = load_fsdd(fsdd_dir, 8000, limit_per_class=2)
    assert len(data) == 10 * 6 * 2
    assert set(data.speakers) == {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}
    assert sorted(set(data.digits)) == list(range(10))
    assert all(w.dtype == np.float32 and w.ndim == 1 for w in data.waves)


def test_bad_and_misnamed_files_are_skipped_and_counted(recordings, tmp_path, caplog):
    folder = _copy_some(recordings, tmp_path / "recordings")
    (folder / "3_theo_0.wav").write_bytes(b"RIFF\x00\x00not a wave at all")  # corrupt
    shutil.copy(recordings / "2_theo_0.wav", folder / "two-theo.wav")  # misnamed
    (folder / "4_theo_1.wav").write_bytes(b"")  # empty
    data = load_fsdd(tmp_path, 8000)
    assert len(data) == len(SOME)
    assert data.skipped == 3
    assert "misnamed" in caplog.text and "unreadable" in caplog.text


def test_other_rates_and_channels_are_resampled_to_the_model_rate(recordings, tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    wave, rate = sf.read(recordings / "7_nicolas_3.wav", dtype="float32")
    import soxr

    hi = soxr.resample(wave, rate, 44100)
    sf.write(folder / "7_nicolas_3.wav", np.stack([hi, hi * 0.5], axis=1), 44100)
    data = load_fsdd(tmp_path, 8000)
    assert abs(data.waves[0].size - wave.size) <= 2
    # Back at 8 kHz it is the same recording (mono mix = 0.75 x, band-limited round trip).
    n = min(wave.size, data.waves[0].size)
    corr = np.corrcoef(wave[:n], data.waves[0][:n])[0, 1]
    assert corr > 0.99


def test_no_recordings_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="digitd-train download"):
        recordings_dir(tmp_path)


def _archive(recordings: Path, tmp_path: Path, tamper: str | None = None) -> tuple[str, dict]:
    """A tar.gz laid out like GitHub's release archive, with checksums for its files."""
    sums = {}
    buf = tmp_path / "fsdd.tar.gz"
    with tarfile.open(buf, "w:gz") as tar:
        readme = tarfile.TarInfo("free-spoken-digit-dataset-1.0.10/README.md")
        data = b"# FSDD\n"
        readme.size = len(data)
        tar.addfile(readme, io.BytesIO(data))
        for name in SOME:
            content = (recordings / name).read_bytes()
            sums[name] = hashlib.sha256(content).hexdigest()
            if name == tamper:
                content = content[:-10] + b"\x00" * 10
            info = tarfile.TarInfo(f"free-spoken-digit-dataset-1.0.10/recordings/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.as_uri(), sums


def test_download_verifies_and_installs(recordings, tmp_path):
    url, sums = _archive(recordings, tmp_path)
    dest = download(tmp_path / "data" / "fsdd", url=url, checksums=sums)
    assert sorted(p.name for p in (dest / "recordings").iterdir()) == sorted(SOME)
    assert parse_checksums((dest / "SHA256SUMS").read_text()) == sums
    assert len(load_fsdd(dest, 8000)) == len(SOME)


def test_download_rejects_a_tampered_file_and_leaves_nothing(recordings, tmp_path):
    url, sums = _archive(recordings, tmp_path, tamper=SOME[1])
    dest = tmp_path / "data" / "fsdd"
    with pytest.raises(DataError, match=f"checksum mismatch {SOME[1]}"):
        download(dest, url=url, checksums=sums)
    assert not (dest / "recordings").exists()


def test_download_reports_missing_files(recordings, tmp_path):
    url, sums = _archive(recordings, tmp_path)
    sums["8_yweweler_9.wav"] = "0" * 64
    with pytest.raises(DataError, match="missing 8_yweweler_9.wav"):
        download(tmp_path / "d", url=url, checksums=sums)


def test_download_unreachable_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="download of .* failed"):
        download(tmp_path / "d", url=(tmp_path / "nope.tar.gz").as_uri(), checksums={})


def test_download_cli_with_a_local_archive(recordings, tmp_path, monkeypatch, capsys):
    from digitd.train import cli, data

    url, sums = _archive(recordings, tmp_path)
    # The CLI verifies against the pinned sums; pin this small archive's sums instead.
    monkeypatch.setattr(data, "pinned_checksums", lambda: sums)
    assert cli.main(["download", "--dest", str(tmp_path / "fsdd"), "--url", url]) == 0
    assert (tmp_path / "fsdd" / "recordings" / SOME[0]).is_file()


def test_synthetic_digits_repeat_in_the_corpus_as_configured(fsdd_dir, tmp_path, monkeypatch):
    """tts_digit_repeats adds each synthetic digit clip that many times; FSDD and the
    non-digit words are left as they were (one real espeak-ng voice keeps it quick)."""
    from digitd.train import synth
    from digitd.train.config import TrainConfig
    from digitd.train.dataset import build_corpus

    if not synth.engine_available("espeak"):
        pytest.skip("espeak-ng not installed")
    monkeypatch.setattr(synth, "default_voices", lambda seed: [synth.Voice("espeak", "en-us")])
    monkeypatch.setattr(synth, "NON_DIGIT_WORDS", ["garden", "window"])
    fsdd = load_fsdd(fsdd_dir, 8000, limit_per_class=1)
    corpora = [build_corpus(fsdd, TrainConfig(cache_dir=tmp_path, tts_digit_repeats=r,
                                              use_prompt_voices=False, real_pieces=0))
               for r in (1, 3)]
    once, thrice = corpora
    assert once.fsdd_count == thrice.fsdd_count == len(fsdd)
    assert len(once.digit_waves) == len(fsdd) + 10
    assert len(thrice.digit_waves) == len(fsdd) + 30
    assert sorted(thrice.digit_labels[len(fsdd):]) == sorted(list(range(10)) * 3)
    assert len(once.word_waves) == len(thrice.word_waves) == 2
    held_out = build_corpus(fsdd, TrainConfig(cache_dir=tmp_path, use_prompt_voices=False,
                                              real_pieces=0), frozenset({"garden"}))
    assert len(held_out.word_waves) == 1
    assert np.array_equal(held_out.word_waves[0], once.word_waves[1])  # "window" stays


def test_synthetic_digit_repeats_and_towers_are_set_from_the_command_line(capsys):
    from digitd.train import cli
    from digitd.train.config import TrainConfig

    parse = cli.build_parser().parse_args
    assert cli.make_config(parse(["fit"])).tts_digit_repeats == TrainConfig().tts_digit_repeats
    assert cli.make_config(parse(["fit", "--tts-digit-repeats", "4"])).tts_digit_repeats == 4
    assert cli.main(["fit", "--quick", "--tts-digit-repeats", "0"]) == 2
    assert "--tts-digit-repeats must be at least 1" in capsys.readouterr().err
    assert cli.make_config(parse(["fit"])).towers == TrainConfig().towers
    assert cli.make_config(parse(["fit", "--towers", "2"])).towers == 2
    assert cli.main(["fit", "--quick", "--towers", "0"]) == 2
    assert "--towers must be at least 1" in capsys.readouterr().err


def test_heldout_noise_is_drawn_with_the_original_kind_thresholds():
    # Every LOSO run is scored on noise, tones and clicks drawn with these cut points; they
    # must not move when training's own mix (TrainConfig.unknown_mix) does.
    assert np.allclose(HELDOUT_MIX.bounds(), [0.45, 0.6, 0.7, 0.7, 0.85, 0.93, 0.93])
    with pytest.raises(ValueError, match="sum to 1"):
        UnknownMix(words=0.5)
    with pytest.raises(ValueError, match=">= 0"):
        UnknownMix(words=0.6, fsdd_splices=-0.15)


def _tagged_corpus(rng: np.random.Generator) -> Corpus:
    """FSDD-shaped corpus whose clips are random +-1 patterns on a rising ramp, one per clip,
    so a splice's two parts can be traced to the clips (and cut points) they came from."""
    waves, labels, who = [], [], []
    for speaker in ("george", "jackson"):
        for digit in range(10):
            n = int(rng.integers(3000, 6000))
            waves.append(rng.choice([-1.0, 1.0], size=n) * np.linspace(1, 2, n)
                         * rng.uniform(0.05, 0.4))
            labels.append(digit)
            who.append(speaker)
    synthetic_digit = np.ones(4000)  # TTS digits come after FSDD's and are never spliced
    return Corpus(digit_waves=[*waves, synthetic_digit], digit_labels=[*labels, 3],
                  fsdd_count=len(waves), fsdd_speakers=who)


def _trace(spliced: np.ndarray, corpus: Corpus) -> tuple[int, int, int]:
    """(clip of the head, head length, clip of the tail): the head is a clip's start as is;
    the tail is another clip's end times one gain."""
    fsdd = corpus.digit_waves[: corpus.fsdd_count]
    (first,) = [i for i, w in enumerate(fsdd) if np.array_equal(w[:20], spliced[:20])]
    same = spliced[: fsdd[first].size] == fsdd[first][: spliced.size]
    cut = int(np.argmin(same)) if not same.all() else same.size
    tail = spliced[cut:]
    (second,) = [i for i, w in enumerate(fsdd) if w.size >= tail.size and np.allclose(
        tail / w[w.size - tail.size :], tail[0] / w[w.size - tail.size])]
    return first, cut, second


def test_fsdd_splices_join_two_different_digits_of_one_speaker():
    rng = np.random.default_rng(3)
    corpus = _tagged_corpus(rng)
    for _ in range(40):
        spliced = fsdd_splice(corpus, rng)
        assert spliced is not None
        first, cut, second = _trace(spliced, corpus)
        da, db = corpus.digit_labels[first], corpus.digit_labels[second]
        assert corpus.fsdd_speakers[first] == corpus.fsdd_speakers[second]
        assert da != db and {da, db} not in SAME_ONSET
        a_size, b_size = corpus.digit_waves[first].size, corpus.digit_waves[second].size
        assert 0.35 * a_size - 1 <= cut <= 0.65 * a_size
        assert 0.35 * b_size - 1 <= spliced.size - cut <= 0.65 * b_size + 1
        head, tail = spliced[:cut], spliced[cut:]  # one speaking level
        assert np.mean(tail**2) == pytest.approx(np.mean(head**2), rel=1e-6)


def test_unknown_mix_draws_splices_only_from_fsdd_and_falls_through_without_them():
    rng = np.random.default_rng(4)
    corpus = _tagged_corpus(rng)
    only_splices = UnknownMix(words=0, reversed_digits=0, word_joins=0, fsdd_splices=1.0,
                              noise=0, tones=0, music=0, clicks=0)
    for _ in range(20):
        wave, speechy, _ = unknown_waveform(corpus, 8000, rng, only_splices)
        assert speechy
        assert not np.all(wave == 1.0)  # never the synthetic digit
        _trace(wave, corpus)  # an FSDD head and tail
    # Without speakers (a corpus of TTS only) the kind has no material: noise instead.
    no_fsdd = Corpus(digit_waves=[np.ones(4000)], digit_labels=[3])
    wave, speechy, _ = unknown_waveform(no_fsdd, 8000, rng, only_splices)
    assert not speechy and wave.size > 0


def test_word_folds_hold_out_every_non_digit_word_exactly_once():
    from digitd.train import synth
    from digitd.train.config import TrainConfig
    from digitd.train.evaluate import heldout_words

    folds = [synth.fold_heldout_words(i, 6) for i in range(6)]
    assert set().union(*folds) == set(synth.NON_DIGIT_WORDS)
    assert sum(len(f) for f in folds) == len(set(synth.NON_DIGIT_WORDS))  # disjoint
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    assert folds == [synth.fold_heldout_words(i, 6) for i in range(6)]  # fixed, not drawn anew
    # the heldout words of the fixed split are not simply one fold's
    assert all(f != synth.HELDOUT_WORDS for f in folds)
    assert heldout_words(TrainConfig(word_folds=True), 2, 6) == folds[2]
    assert heldout_words(TrainConfig(), 2, 6) == synth.HELDOUT_WORDS
    with pytest.raises(ValueError, match="not one of 6 folds"):
        synth.fold_heldout_words(6, 6)


def _spectral_flatness(x: np.ndarray) -> float:
    """Geometric over arithmetic mean of the power spectrum: ~0.5 for white noise, near 0
    for a few harmonics."""
    power = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2 + 1e-20
    return float(np.exp(np.mean(np.log(power))) / np.mean(power))


def test_music_is_seeded_harmonic_sound_augmented_like_speech():
    only_music = UnknownMix(words=0, reversed_digits=0, word_joins=0, fsdd_splices=0,
                            noise=0, tones=0, music=1.0, clicks=0)
    corpus = Corpus(digit_waves=[np.ones(4000)], digit_labels=[3])
    clips = []
    for seed in range(40):
        wave, speechy, _ = unknown_waveform(corpus, 8000, np.random.default_rng(seed), only_music)
        again, _, _ = unknown_waveform(corpus, 8000, np.random.default_rng(seed), only_music)
        assert np.array_equal(wave, again)
        assert speechy  # played into a room: reverb, colouring and noise like speech
        assert 800 <= wave.size <= 12000 and np.all(np.isfinite(wave))
        assert 0 < np.max(np.abs(wave)) <= 0.9
        clips.append(wave)
    white = np.random.default_rng(0).normal(size=8000)
    assert _spectral_flatness(white) > 0.4
    assert np.median([_spectral_flatness(c) for c in clips]) < 0.02
    assert HELDOUT_MIX.music == 0.0  # LOSO's held-out material: scores stay comparable


WORD_LIST_ENTRIES = {
    # (entry, drawn?): plain words of 3-8 letters that no curated, held-out or benchmark word
    # begins, and that are not a digit, its homophone or a word beginning with a digit
    "lantern": True, "gravel": True, "puzzle": True, "anyone": True, "toast": True,
    "seven": False, "sevens": False, "fourteen": False, "oneself": False, "nineties": False,
    "won": False, "ate": False, "for": False, "too": False, "oh": False,
    "bird": False, "birdie": False,  # a held-out word and a word it begins
    "table": False, "tables": False,  # a curated training word
    "pencil": False, "pencils": False, "keys": False, "nicer": False,  # the benchmark's
    "Apple": False, "can't": False, "café": False, "ox": False, "extraordinary": False,
}


def test_word_list_draw_keeps_only_plain_new_words(tmp_path):
    from digitd.train import synth

    path = tmp_path / "words"
    path.write_text("\n".join(WORD_LIST_ENTRIES) + "\n")
    usable = sorted(w for w, ok in WORD_LIST_ENTRIES.items() if ok)
    assert synth.word_list_words(100, seed=1, path=path) == usable
    draw = synth.word_list_words(3, seed=1, path=path)
    assert len(draw) == 3 and set(draw) <= set(usable)
    assert draw == synth.word_list_words(3, seed=1, path=path)  # seeded
    assert synth.word_list_words(0, seed=1, path=path) == []


def test_a_missing_word_list_is_a_warning_not_a_failure(tmp_path, caplog):
    from digitd.train import synth

    assert synth.word_list_words(10, seed=1, path=tmp_path / "nope") == []
    assert "wamerican" in caplog.text


def test_word_list_clips_are_each_word_by_distinct_training_voices(tmp_path, monkeypatch):
    """Real espeak-ng voices say each drawn word; the clips join the non-digit words."""
    from digitd.train import synth
    from digitd.train.config import TrainConfig
    from digitd.train.dataset import word_list_clips

    if not synth.engine_available("espeak"):
        pytest.skip("espeak-ng not installed")
    voices = [synth.Voice("espeak", v) for v in ("en-us", "en-gb", "en-us+f3")]
    monkeypatch.setattr(synth, "default_voices", lambda seed: voices)
    path = tmp_path / "words"
    path.write_text("lantern\ngravel\npuzzle\nseven\nbird\n")
    monkeypatch.setattr(synth, "WORD_LIST", path)
    cfg = TrainConfig(cache_dir=tmp_path, word_list_words=2, word_list_voices=2)
    clips = word_list_clips(cfg)
    words = {text for _, text, _ in clips}
    assert len(words) == 2 and words <= {"lantern", "gravel", "puzzle"}
    for word in words:
        speakers = [key for key, text, _ in clips if text == word]
        assert len(speakers) == len(set(speakers)) == 2
    assert all(wave.size > 0.2 * 8000 for _, _, wave in clips)
    assert word_list_clips(TrainConfig(cache_dir=tmp_path)) == []  # off by default


def test_word_list_is_set_from_the_command_line(capsys):
    from digitd.train import cli

    parse = cli.build_parser().parse_args
    assert cli.make_config(parse(["fit"])).word_list_words == 0
    assert cli.make_config(parse(["fit", "--word-list", "3000"])).word_list_words == 3000
    assert cli.main(["fit", "--quick", "--word-list", "-1"]) == 2
    assert "--word-list must be at least 0" in capsys.readouterr().err


def test_short_words_are_no_digit_and_nothing_scored():
    from digitd.train import synth

    short = set(synth.SHORT_WORDS)
    assert len(short) == len(synth.SHORT_WORDS)  # no repeats to weigh one word double
    assert not short & (set(synth.DIGIT_WORDS) | synth.DIGIT_HOMOPHONES)
    # held-out, benchmark and phrase words stay unheard; curated ones are not repeated
    assert not short & synth.reserved_words()


def test_short_words_join_the_corpus_when_asked(fsdd_dir, tmp_path, monkeypatch):
    from digitd.train import cli, synth
    from digitd.train.config import TrainConfig
    from digitd.train.dataset import build_corpus

    if not synth.engine_available("espeak"):
        pytest.skip("espeak-ng not installed")
    monkeypatch.setattr(synth, "default_voices", lambda seed: [synth.Voice("espeak", "en-us")])
    monkeypatch.setattr(synth, "NON_DIGIT_WORDS", ["garden"])
    monkeypatch.setattr(synth, "SHORT_WORDS", ["bee", "your"])
    fsdd = load_fsdd(fsdd_dir, 8000, limit_per_class=1)

    def corpus(**kw):
        return build_corpus(fsdd, TrainConfig(cache_dir=tmp_path, real_pieces=0, **kw),
                            frozenset({"your"}))

    assert len(corpus().word_waves) == 1
    assert len(corpus(short_words=True).word_waves) == 2  # "bee"; held-out "your" stays out
    parse = cli.build_parser().parse_args
    assert cli.make_config(parse(["fit"])).short_words is False
    assert cli.make_config(parse(["fit", "--short-words"])).short_words is True


def test_every_speech_example_says_whether_a_recorded_person_spoke(fsdd_dir, tmp_path,
                                                                   monkeypatch):
    """The domain-adversarial head's targets: FSDD's clips (and their reversals and splices)
    are recorded people, synthetic voices' digits and words are not, noise is neither."""
    from digitd.train import synth
    from digitd.train.config import TrainConfig
    from digitd.train.dataset import build_corpus, make_epoch

    if not synth.engine_available("espeak"):
        pytest.skip("espeak-ng not installed")
    monkeypatch.setattr(synth, "default_voices", lambda seed: [synth.Voice("espeak", "en-us")])
    monkeypatch.setattr(synth, "NON_DIGIT_WORDS", ["garden", "window"])
    fsdd = load_fsdd(fsdd_dir, 8000, limit_per_class=1)
    cfg = TrainConfig(cache_dir=tmp_path, use_prompt_voices=False, real_pieces=0)
    corpus = build_corpus(fsdd, cfg)
    assert corpus.digit_recorded == [True] * len(fsdd) + [False] * 20  # two synthetic takes
    assert corpus.word_recorded == [False, False]
    assert corpus.recorded("digit", 0) is True and corpus.recorded("word", 1) is False
    assert corpus.recorded("word", 2) is None  # beyond what is known

    rng = np.random.default_rng(0)
    kinds = {"words": (1, 0, 0, 0, 0, 0, 0, 0), "reversed": (0, 1, 0, 0, 0, 0, 0, 0),
             "splices": (0, 0, 0, 1, 0, 0, 0, 0), "noise": (0, 0, 0, 0, 1, 0, 0, 0)}
    seen = {}
    for kind, shares in kinds.items():
        mix = UnknownMix(*map(float, shares))
        seen[kind] = {unknown_waveform(corpus, 8000, rng, mix)[2] for _ in range(60)}
    assert seen == {"words": {False}, "reversed": {True, False}, "splices": {True},
                    "noise": {None}}

    x, y, voice = make_epoch(corpus, cfg, epoch=0)
    assert x.shape[0] == y.shape[0] == voice.shape[0]
    digits = y < 10
    assert set(voice[digits]) == {0, 1}  # FSDD's men and the synthetic voice
    assert np.mean(voice[digits] == 1) == pytest.approx(len(fsdd) / (len(fsdd) + 20))
    assert set(voice[~digits]) <= {-1, 0, 1} and -1 in set(voice[~digits])


def test_domain_adversarial_strength_is_set_from_the_command_line(capsys):
    from digitd.train import cli

    parse = cli.build_parser().parse_args
    assert cli.make_config(parse(["fit"])).domain_adversarial == 0.0
    assert cli.make_config(parse(["fit", "--domain-adversarial", "0.5"])).domain_adversarial == 0.5
    assert cli.main(["fit", "--quick", "--domain-adversarial", "-1"]) == 2
    assert "--domain-adversarial must be in [0, 10]" in capsys.readouterr().err
    assert cli.main(["fit", "--quick", "--towers", "2", "--domain-adversarial", "1"]) == 2
    assert "one tower only" in capsys.readouterr().err
