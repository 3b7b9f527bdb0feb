"""Loaders, downloader, training material and folds: real files, a real archive built here,
bad files skipped, every split by speaker."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from digitd.train.data import (
    DataError,
    download,
    load_fsdd,
    load_speech_commands,
    parse_checksums,
    pinned_checksums,
    recordings_dir,
)

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


def test_speech_commands_loader_reads_words_and_speakers(speech_commands, tmp_path, caplog):
    words = load_speech_commands(speech_commands, 16000, limit_per_word=2)
    assert len(words) == 2 * 26 and {"zero", "nine", "happy", "bed"} <= set(words.words)
    assert all(len(s) == 8 for s in words.speakers)
    assert all(w.size > 8000 and w.dtype == np.float32 for w in words.waves)
    folder = tmp_path / "sc" / "yes"
    folder.mkdir(parents=True)
    shutil.copy(next((speech_commands / "yes").glob("*.flac")), folder / "0123abcd_nohash_0.flac")
    (folder / "89abcdef_nohash_0.flac").write_bytes(b"not audio")
    some = load_speech_commands(tmp_path / "sc", 16000)
    assert (len(some), some.skipped, some.speakers) == (1, 1, ["0123abcd"])
    with pytest.raises(DataError, match="no Speech Commands"):
        load_speech_commands(tmp_path / "none", 16000)


@pytest.fixture(scope="module")
def material(fsdd_dir, speech_commands, tmp_path_factory):
    from digitd.train.config import quick_config
    from digitd.train.dataset import build_material

    cfg = quick_config(cache_dir=tmp_path_factory.mktemp("cache"))
    fsdd = load_fsdd(fsdd_dir, 16000, limit_per_class=1)
    sc = load_speech_commands(speech_commands, 16000, limit_per_word=6)
    return cfg, build_material(cfg, fsdd, sc)


def test_material_has_every_corpus_labelled(material):
    from digitd.train.dataset import UNKNOWN
    from digitd.train.synth import HARD_NEGATIVES

    cfg, m = material
    labels, speakers, corpora, words = m.arrays()
    assert set(corpora) == {"fsdd", "sc", "tts", "voices", "noise"}
    assert set(labels[corpora == "fsdd"]) == set(range(10))
    sc = corpora == "sc"
    assert all((lab == UNKNOWN) == (w not in {"zero", "one", "two", "three", "four", "five",
                                              "six", "seven", "eight", "nine"})
               for lab, w in zip(labels[sc], words[sc], strict=True))
    hard = set(words[(corpora == "voices") & (labels == UNKNOWN)])
    assert hard == set(HARD_NEGATIVES)
    assert not {"for", "to", "ate", "won", "nein"} & set(words)  # homophones are digits
    assert np.sum(corpora == "noise") == cfg.noise_clips


def test_folds_hold_out_speakers_voices_and_word_types(material):
    from digitd.train.dataset import UNKNOWN
    from digitd.train.evaluate import assign_folds, train_mask

    cfg, m = material
    labels, speakers, corpora, words = m.arrays()
    speaker_fold, word_fold = assign_folds(m, cfg.folds)
    for fold in range(cfg.folds):
        train = train_mask(m, speaker_fold, word_fold, fold)
        test = speaker_fold == fold
        assert not set(speakers[train]) & set(speakers[test])  # by speaker, never by clip
        held_words = set(words[test & (labels == UNKNOWN) & (word_fold == fold)])
        assert held_words and not held_words & set(words[train & (labels == UNKNOWN)])
        assert not train[corpora == "voices"].any()
        assert train[corpora == "noise"].all()
    # every FSDD speaker is held out by exactly one fold
    fsdd = corpora == "fsdd"
    assert len({tuple(sorted(set(speakers[fsdd & (speaker_fold == f)])))
                for f in range(cfg.folds)}) == cfg.folds


def test_renditions_are_seeded_and_the_clean_one_is_what_recognize_sees(material):
    from digitd.daemon.features import log_mel, window_mel
    from digitd.train.dataset import render

    cfg, m = material
    wave = m.waves[0]
    clean = render(wave, cfg, np.random.default_rng(1), [], clean=True)
    assert np.array_equal(log_mel(clean, cfg.features), window_mel(wave, cfg.features))
    pool = [w for w, c in zip(m.waves, m.corpora, strict=True) if c == "sc"]
    a = render(wave, cfg, np.random.default_rng([5, 1]), pool, clean=False)
    b = render(wave, cfg, np.random.default_rng([5, 1]), pool, clean=False)
    c = render(wave, cfg, np.random.default_rng([5, 2]), pool, clean=False)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.size == cfg.features.window_samples and np.max(np.abs(a)) <= 1.0


def test_loss_weights_split_digits_between_corpora_and_unknown_by_its_share():
    from digitd.train.config import TrainConfig
    from digitd.train.train import example_weights

    cfg = TrainConfig()
    y = np.array([0] * 600 + [1] * 600 + [0] * 20 + [1] * 20 + [10] * 300)
    corpora = np.array(["fsdd"] * 1200 + ["sc"] * 40 + ["sc"] * 300)
    w = example_weights(y, corpora, 10, cfg)
    assert abs(w.mean() - 1) < 1e-6
    total = w.sum()
    assert abs(w[y == 10].sum() / total - cfg.unknown_share) < 1e-6
    shares = dict(cfg.digit_shares)
    fsdd, sc = w[:1200].sum(), w[1200:1240].sum()  # no TTS here: its share goes to the rest
    assert abs(fsdd / sc - shares["fsdd"] / shares["sc"]) < 1e-6
    assert abs(w[:600].sum() - w[600:1200].sum()) < 1e-3  # each digit alike within a corpus
