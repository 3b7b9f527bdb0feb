"""The benchmark's recorded voices outside FSDD: KLettres' letters and syllables and Allison
Smith's Asterisk prompts, read from disk, scored, and written into BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench import material, report
from bench.run import BenchConfig, recorded_voices


def _klettres_tree(root: Path, recordings: Path) -> Path:
    """Two languages laid out as klettres-data is: <lang>/alpha and <lang>/syllab, OGG."""
    wave, rate = sf.read(recordings / "3_theo_0.wav")
    for lang, names in (("en", ["alpha/a", "alpha/O", "syllab/dog"]), ("fr", ["alpha/b"])):
        for name in names:
            path = root / lang / f"{name}.ogg"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wave, rate, format="OGG", subtype="VORBIS")
    (root / "fr" / "alpha" / "c.ogg").write_bytes(b"not audio at all")
    (root / "pics").mkdir()  # not a language: no alpha folder
    return root


def test_klettres_clips_leave_out_o_and_count_unreadable_files(recordings, tmp_path):
    root = _klettres_tree(tmp_path / "klettres", recordings)
    clips, unreadable = material.klettres_clips(root)
    assert {k: len(v) for k, v in clips.items()} == {"en": 2, "fr": 1}  # O left out
    assert unreadable == 1
    assert all(c.ndim == 1 and c.size > 0.2 * material.RATE for v in clips.values() for c in v)
    only, _ = material.klettres_clips(root, languages=("fr",))
    assert list(only) == ["fr"]


def test_missing_material_is_reported_as_not_measured(tmp_path):
    assert material.allison(tmp_path) == ([], [])
    assert material.klettres_clips(tmp_path / "nowhere") == ({}, 0)
    text = "\n".join(report.recorded_section(
        {"allison_digits": 0, "allison_words": 0, "klettres_clips": {},
         "klettres_unreadable": 0}))
    assert "Not measured" in text


class TakesEverything:
    """A recognizer that hears a 7 in anything: every non-digit clip is a false accept."""

    def isolated(self, wave: np.ndarray) -> int:
        return 7


def test_recorded_voices_section_scores_real_recordings(recordings, tmp_path, monkeypatch):
    """digitd's shipped model on Allison Smith's real prompts (when installed) and on real
    OGG clips in KLettres' layout, beside a recognizer that takes everything."""
    digits, words = material.allison()
    if not digits:
        pytest.skip("asterisk-core-sounds-en-wav not installed")
    assert [d for d, _ in digits] == list(range(10)) and len(words) > 100
    root = _klettres_tree(tmp_path / "klettres", recordings)
    monkeypatch.setattr(material, "KLETTRES", root)
    monkeypatch.setattr(material, "QUICK_LANGUAGES", ("en", "fr"))
    out = recorded_voices(BenchConfig.quick_mode(), TakesEverything())
    assert out["klettres_clips"] == {"en": 2, "fr": 1} and out["klettres_unreadable"] == 1
    assert out["pocketsphinx"]["allison_digits_right"] == 1  # only her 7
    assert out["pocketsphinx"]["allison_words_taken"] == 1.0
    assert out["pocketsphinx"]["klettres_taken"] == {"en": 1.0, "fr": 1.0}
    ours = out["digitd"]
    assert 0 <= ours["allison_digits_right"] <= 10
    # a clear majority of a real woman's digits: the model is not rejecting her voice
    assert ours["allison_digits_right"] >= 6
    assert ours["allison_words_taken"] < 0.5  # while most of her other words are refused
    # the test's KLettres clips are FSDD's "three": digitd should take them (as 3)
    assert ours["klettres_taken"]["en"] == 1.0
    text = "\n".join(report.recorded_section(out))
    assert f"{ours['allison_digits_right']} of 10" in text
    assert "| en | 2 | 100.0% / 100.0% |" in text


def test_fold_models_of_a_run_are_scored_on_recorded_voices(recordings, tmp_path, monkeypatch,
                                                            capsys):
    """`python -m bench.recorded --reports DIR`: a run's fold models (here the shipped model
    twice) on the recorded voices, at the run's calibrated rule and at the limits asked."""
    import json
    import shutil

    from digitd.daemon.model import default_model_path, metadata_path_for

    from bench import recorded

    if not material.allison()[0]:
        pytest.skip("asterisk-core-sounds-en-wav not installed")
    monkeypatch.setattr(material, "KLETTRES", _klettres_tree(tmp_path / "kl", recordings))
    run = tmp_path / "run"
    assert recorded.main(["--reports", str(run)]) == 2
    assert "no LOSO run" in capsys.readouterr().err
    (run / "loso").mkdir(parents=True)
    for speaker in ("george", "theo"):
        shutil.copy(default_model_path(), run / "loso" / f"fold-{speaker}.tflite")
        shutil.copy(metadata_path_for(default_model_path()),
                    run / "loso" / f"fold-{speaker}.json")
    (run / "loso.json").write_text(json.dumps({"threshold": 0.41, "unknown_threshold": 0.14}))
    assert recorded.main(["--reports", str(run), "--max-unknown", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "2 fold models" in out and "KLettres 3 clips in 2 languages (1 unreadable)" in out
    rows = [line for line in out.splitlines() if line.startswith("| calibrated")
            or line.startswith("| p(unknown) < 1 ")]
    assert len(rows) == 2
    # the same model twice: twice its count of Allison's ten digits, out of 20
    calibrated = rows[0].split("|")
    assert calibrated[2].strip().endswith("of 20")
    # with no limit on p(unknown), at least as many digits and words pass as at the rule
    right = [int(r.split("|")[2].split()[0]) for r in rows]
    taken = [float(r.split("|")[3].strip().rstrip("%")) for r in rows]
    assert right[1] >= right[0] and taken[1] >= taken[0]
