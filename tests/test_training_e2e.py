"""A small, fast end-to-end training run: train on a subset, export int8, load in LiteRT,
and check the int8 model agrees with the Keras model."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")


@pytest.mark.slow
def test_quick_fit_exports_an_int8_model_that_agrees_with_keras(fsdd_dir, tmp_path):
    import keras
    from digitd.daemon.model import DigitClassifier, RejectionRule
    from digitd.train import cli
    from digitd.train.data import load_fsdd

    out = tmp_path / "m" / "digitd.tflite"
    keras_path = tmp_path / "m" / "float.keras"
    code = cli.main(["fit", "--quick", "--epochs", "6", "--limit-per-class", "8",
                     "--data", str(fsdd_dir), "--reports", str(tmp_path / "reports"),
                     "--output", str(out), "--keras", str(keras_path)])
    assert code == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["labels"] == [*map(str, range(10)), "unknown"]
    assert meta["quantization"]["input"]["dtype"] == "int8"
    assert meta["quantization"]["output"]["dtype"] == "int8"
    assert "CC BY-SA 4.0" in meta["license"]
    assert len(meta["training"]["data_sha256"]) == 64

    classifier = DigitClassifier(out)  # LiteRT, the runtime path
    model = keras.saving.load_model(keras_path)
    fsdd = load_fsdd(fsdd_dir, 8000, limit_per_class=3)
    from digitd.daemon.features import extract

    feats = np.stack([extract(w, classifier.features) for w in fsdd.waves])
    float_probs = model.predict(feats[..., None], verbose=0)
    int8_probs = np.stack([classifier.probabilities(f) for f in feats])
    agreement = np.mean(np.argmax(float_probs, 1) == np.argmax(int8_probs, 1))
    assert agreement >= 0.8, f"int8 and float agree on only {agreement:.0%}"
    assert np.max(np.abs(float_probs - int8_probs)) < 0.25

    # A LOSO report made later is attached to the exported model's metadata.
    reports = tmp_path / "reports"
    reports.mkdir(exist_ok=True)
    loso = {"per_speaker": {"theo": {"int8_accuracy": 0.9}}, "float_accuracy": {"mean": 0.9},
            "int8_accuracy": {"mean": 0.9, "worst": 0.9}, "int8_float_agreement": 1.0,
            "nondigit_rejection_rate_int8": 0.97, "threshold": 0.55,
            "unknown_threshold": 0.2, "threshold_calibration": "test"}
    (reports / "loso.json").write_text(json.dumps(loso))
    assert cli.main(["attach-loso", "--reports", str(reports), "--model", str(out)]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["rejection"]["threshold"] == 0.55
    assert meta["rejection"]["unknown_threshold"] == 0.2
    assert meta["loso"]["int8_accuracy"]["worst"] == 0.9
    assert DigitClassifier(out).metadata.rejection == RejectionRule(0.55, 0.2)


@pytest.mark.slow
def test_quick_loso_writes_the_report_and_plots(fsdd_dir, tmp_path):
    from digitd.train import cli

    reports = tmp_path / "reports"
    code = cli.main(["evaluate", "--loso", "--quick", "--epochs", "2", "--limit-per-class", "4",
                     "--speakers", "theo", "george", "--data", str(fsdd_dir),
                     "--reports", str(reports)])
    assert code == 0
    report = json.loads((reports / "loso.json").read_text())
    assert set(report["per_speaker"]) == {"theo", "george"}
    for row in report["per_speaker"].values():
        assert row["files"] == 40  # 4 takes x 10 digits of the held-out speaker
        assert 0.0 <= row["int8_accuracy"] <= 1.0
        assert 0.0 <= row["int8_float_agreement"] <= 1.0
    assert report["int8_accuracy"]["worst"] <= report["int8_accuracy"]["mean"]
    assert 0.0 <= report["threshold"] <= 0.95
    assert 0.02 <= report["unknown_threshold"] <= 1.0
    for row in report["per_speaker"].values():  # the noisy copies were scored too
        assert 0.0 <= row["noisy_int8_accuracy"] <= 1.0
    matrix = np.array(report["confusion_int8"])
    assert matrix.shape == (10, 11) and matrix.sum() == 80
    for name in ("loso_confusion.png", "loso_speakers.png"):
        assert (reports / name).stat().st_size > 5000
    # Fold models carry the calibrated rule.
    fold = json.loads((reports / "loso" / "fold-theo.json").read_text())
    assert fold["rejection"]["threshold"] == report["threshold"]
    assert fold["rejection"]["unknown_threshold"] == report["unknown_threshold"]
    # ... and the test-time speeds the rule was calibrated with, which scored the folds as
    # the runtime scores a word; the int8/float agreement stays one pass against one pass.
    assert fold["test_time_speeds"] == report["test_time_speeds"]
    assert len(report["test_time_speeds"]) > 1

    # The saved fold models score the same noisy copies again (their seeds follow the fold).
    saved = dict(np.load(reports / "loso" / "predictions.npz"))
    assert not np.allclose(saved["theo_int8_probs"], saved["theo_int8_one_pass_probs"])
    code = cli.main(["evaluate", "--loso", "--repredict", "--quick", "--limit-per-class",
                     "4", "--data", str(fsdd_dir), "--reports", str(reports)])
    assert code == 0
    again = np.load(reports / "loso" / "predictions.npz")
    for key in ("theo_noisy_int8_probs", "george_negative_noisy_int8"):
        assert saved[key].size and np.array_equal(saved[key], again[key]), key

    # Recalibration from the saved predictions, no training: when a digit nobody said
    # costs nothing, fewer digits are rejected and no fewer are printed wrongly.
    code = cli.main(["evaluate", "--loso", "--recalibrate", "--false-accept-cost", "0",
                     "--reports", str(reports)])
    assert code == 0
    relaxed = json.loads((reports / "loso.json").read_text())
    def mean(rates: dict, *keys: str) -> float:  # over the conditions, as calibrated
        return float(np.mean([sum(r[k] for k in keys) for c, r in rates.items()
                              if c != "cost"]))

    strict, free = report["calibration_rates_int8"], relaxed["calibration_rates_int8"]
    assert mean(free, "rejected_digit") <= mean(strict, "rejected_digit")
    assert (mean(free, "false_accept", "wrong_digit")
            >= mean(strict, "false_accept", "wrong_digit"))
    assert relaxed["per_speaker"].keys() == report["per_speaker"].keys()
