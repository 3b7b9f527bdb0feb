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
from digitd.train.data import (
    DataError,
    download,
    load_fsdd,
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
    corpora = [build_corpus(fsdd, TrainConfig(cache_dir=tmp_path, tts_digit_repeats=r),
                            heldout_words=False) for r in (1, 3)]
    once, thrice = corpora
    assert once.fsdd_count == thrice.fsdd_count == len(fsdd)
    assert len(once.digit_waves) == len(fsdd) + 10
    assert len(thrice.digit_waves) == len(fsdd) + 30
    assert sorted(thrice.digit_labels[len(fsdd):]) == sorted(list(range(10)) * 3)
    assert len(once.word_waves) == len(thrice.word_waves) == 2
