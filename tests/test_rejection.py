"""The rejection rule: the runtime's decision and the held-out calibration that chooses it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from digitd.daemon.model import (
    DigitClassifier,
    ModelError,
    ModelMetadata,
    RejectionRule,
    decide,
    default_model_path,
)

LABELS = (*map(str, range(10)), "unknown")


def probs(digit: int, p_digit: float, p_unknown: float) -> np.ndarray:
    """A probability vector: `digit` at p_digit, unknown at p_unknown, the rest spread."""
    out = np.full(11, (1.0 - p_digit - p_unknown) / 9, dtype=np.float32)
    out[digit], out[10] = p_digit, p_unknown
    return out


def test_unknown_probability_rejects_a_digit_that_is_confident_enough():
    p = probs(4, p_digit=0.8, p_unknown=0.15)
    assert decide(p, LABELS, RejectionRule(min_confidence=0.36)).digit == 4
    rejected = decide(p, LABELS, RejectionRule(min_confidence=0.36, max_unknown=0.1))
    assert rejected.digit is None
    assert rejected.label == "4" and rejected.confidence == pytest.approx(0.8)
    # Below the unknown limit the confidence floor still applies on its own.
    assert decide(probs(4, 0.3, 0.05), LABELS, RejectionRule(0.36, 0.1)).digit is None
    assert decide(probs(4, 0.4, 0.05), LABELS, RejectionRule(0.36, 0.1)).digit == 4


def test_top_label_unknown_is_always_rejected():
    p = probs(2, p_digit=0.3, p_unknown=0.6)
    assert decide(p, LABELS, RejectionRule(min_confidence=0.0, max_unknown=1.0)).digit is None


def test_batch_decisions_equal_one_at_a_time():
    rng = np.random.default_rng(3)
    batch = rng.dirichlet(np.full(11, 0.3), size=500).astype(np.float32)
    rule = RejectionRule(min_confidence=0.4, max_unknown=0.1)
    one_by_one = [decide(p, LABELS, rule).digit for p in batch]
    assert list(rule.digits(batch, LABELS)) == [-1 if d is None else d for d in one_by_one]
    assert 0 < sum(d is None for d in one_by_one) < len(batch)  # both outcomes exercised


def test_shipped_metadata_carries_both_limits():
    meta = ModelMetadata.load(default_model_path())
    assert 0.0 <= meta.rejection.min_confidence < 1.0
    assert 0.0 < meta.rejection.max_unknown <= 1.0
    assert meta.raw["rejection"]["rule"] == meta.rejection.describe()


def test_metadata_of_another_format_or_incomplete_is_a_clear_error(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(default_model_path().parent, folder,
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    meta = json.loads((folder / "digitd.json").read_text())
    meta["rejection"] = {"min_confidence": 0.51, "max_unknown": 0.2}
    (folder / "digitd.json").write_text(json.dumps(meta))
    assert DigitClassifier(folder / "digitd.json").metadata.rejection == RejectionRule(0.51, 0.2)
    meta["embedding_phases"] = 3  # the network has one or two grids
    (folder / "digitd.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="incomplete"):
        DigitClassifier(folder / "digitd.json")
    meta["embedding_phases"] = 1  # the shipped embedding file has two grids
    (folder / "digitd.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="embedding_phases says 1"):
        DigitClassifier(folder / "digitd.json")
    meta["embedding_phases"] = 2
    for speeds in ([], [1.0, 5.0], "fast"):  # a tape speed is a factor near 1
        meta["speeds"] = speeds
        (folder / "digitd.json").write_text(json.dumps(meta))
        with pytest.raises(ModelError, match="incomplete"):
            DigitClassifier(folder / "digitd.json")
    meta["speeds"] = [1.0]
    meta["rejection"] = {"min_confidence": 0.5, "max_unknown": "high"}
    (folder / "digitd.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="incomplete"):
        DigitClassifier(folder / "digitd.json")
    meta["format"] = "digitd-model/1"  # the FSDD-only CNN's metadata
    (folder / "digitd.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="another digitd version"):
        DigitClassifier(folder / "digitd.json")


def sets(digits, truth, negatives) -> dict:
    """Condition sets as evaluate.condition_sets gives them: the digit conditions and the
    held-out word conditions calibration weighs."""
    from digitd.train.evaluate import DIGIT_CONDITIONS, WORD_CONDITIONS

    empty = (np.zeros((0, 11)), np.zeros(0, dtype=int))
    out = {name: empty for name, _ in DIGIT_CONDITIONS}
    out.update({name: empty for name, *_ in WORD_CONDITIONS})
    out["FSDD"] = (np.stack(digits), np.array(truth))
    out["real people, held-out word types"] = (np.stack(negatives),
                                               np.full(len(negatives), 10))
    return out


def scene(rng, n: int, top: tuple[float, float], unknown: tuple[float, float], negatives: int,
          negative_top: tuple[float, float], negative_unknown: tuple[float, float]):
    """n digits (top probability and unknown mass drawn from the ranges) and non-digit
    clips that look like some digit: truth, digits' probabilities, negatives'."""
    truth = [int(x) for x in rng.integers(0, 10, n)]
    digits = [probs(t, rng.uniform(*top), rng.uniform(*unknown)) for t in truth]
    fakes = [probs(int(rng.integers(10)), rng.uniform(*negative_top),
                   rng.uniform(*negative_unknown)) for _ in range(negatives)]
    return truth, digits, fakes


def test_calibration_uses_the_unknown_probability_when_it_separates():
    from digitd.train.evaluate import calibrate, rates

    # Held-out digits are unsure (top 0.5-0.6) but clearly not "unknown"; the non-digit
    # clips look like confident digits with some unknown mass, as "hive" looks like "five".
    # No confidence floor alone can tell them apart.
    truth, digits, negatives = scene(np.random.default_rng(0), 200, (0.5, 0.6), (0.0, 0.04),
                                     300, (0.7, 0.9), (0.08, 0.2))
    rule, cost = calibrate(sets(digits, truth, negatives), false_accept_cost=2.0)
    assert cost == 0.0 and 0.04 <= rule.max_unknown <= 0.08
    assert rates(rule, np.stack(digits), np.array(truth))["right"] == 1.0

    # Where only the confidence floor can reject, the calibration lowers it to keep digits
    # when a false accept costs little...
    flat = [p.copy() for p in negatives]
    for p in flat:
        p[10] = 0.0
    rule, _ = calibrate(sets(digits, truth, flat), false_accept_cost=0.5)
    assert rates(rule, np.stack(flat), np.full(300, 10))["accepted"] == 1.0
    # ...and rejects everything when a false accept costs more than all the digits.
    rule, _ = calibrate(sets(digits, truth, flat), false_accept_cost=2.0)
    assert rates(rule, np.stack(flat), np.full(300, 10))["accepted"] == 0.0
    assert rates(rule, np.stack(digits), np.array(truth))["rejected"] == 1.0


def test_calibration_weighs_each_condition_the_same():
    from digitd.train.evaluate import calibrate, rates

    # On FSDD p(unknown) separates digits from non-digits; Speech Commands' real people's
    # digits carry as much unknown mass as the non-digits, and only the confidence floor
    # separates them there, though they are a tenth of the clips.
    rng = np.random.default_rng(1)
    truth, fsdd, negatives = scene(rng, 300, (0.5, 0.6), (0.0, 0.04), 300, (0.4, 0.45),
                                   (0.1, 0.2))
    out = sets(fsdd, truth, negatives)
    sc_truth = np.array([int(x) for x in rng.integers(0, 10, 30)])
    out["Speech Commands"] = (np.stack([probs(t, rng.uniform(0.7, 0.8), rng.uniform(0.1, 0.2))
                                        for t in sc_truth]), sc_truth)
    rule, _ = calibrate(out, false_accept_cost=2.0)
    assert rates(rule, *out["Speech Commands"])["rejected"] == 0.0
    assert rates(rule, np.stack(negatives), np.full(300, 10))["accepted"] == 0.0
    assert rule.max_unknown >= 0.2 and 0.45 <= rule.min_confidence <= 0.5


def test_rejection_limits_can_be_set_on_the_command_line_and_in_the_config_file(
        recordings, tmp_path):
    from tests.test_recognize import run_cli

    files = [str(recordings / f"{d}_{s}_{t}.wav") for d in range(10)
             for s in ("jackson", "lucas", "nicolas") for t in (5, 6)]

    def printed(*args: str) -> list[str]:
        result = run_cli("recognize", "--whole", *args, *files)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    model_rule = printed()
    assert len(model_rule) == len(files) and model_rule.count("-") < len(files)
    # Nothing gets through a confidence floor of 1.
    assert printed("--min-confidence", "1") == ["-"] * len(files)
    # A tighter limit on p(unknown) rejects more than the model's rule. (These files are
    # training data for the shipped model, so its own rule may reject few of them.)
    strict = printed("--max-unknown", "0.02")
    assert model_rule.count("-") < strict.count("-") < len(files)
    # Without the limits, only segments whose top label is "unknown" are rejected.
    permissive = printed("--max-unknown", "1", "--min-confidence", "0")
    assert permissive.count("-") <= model_rule.count("-")
    assert all(p == m for p, m in zip(permissive, model_rule, strict=True) if m != "-")
    # The same from a config file; the command line wins over it.
    config = tmp_path / "digitd.toml"
    config.write_text("[rejection]\nmax_unknown = 0.0\n")
    assert printed("--config", str(config)) == ["-"] * len(files)
    assert printed("--config", str(config), "--max-unknown", "1", "--min-confidence", "0"
                   ) == permissive


def test_calibration_voices_are_neither_training_nor_benchmark_voices():
    from digitd.train import synth

    from bench.material import UNSEEN_VARIANTS

    def variant(voice) -> str:
        return voice.name.partition("+")[2].lower()

    calibration = {variant(v) for v in synth.calibration_voices()}
    assert len(calibration) == len(synth.CALIBRATION_VARIANTS)
    assert not calibration & {variant(v) for v in synth.default_voices() if v.engine == "espeak"}
    assert not calibration & {v.lstrip("+").lower() for v in UNSEEN_VARIANTS}
