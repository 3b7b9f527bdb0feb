"""Test-time speeds: the runtime averages the model over the utterance played at a few
speeds, and the metadata says which (the rejection rule was calibrated on those averages)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from digitd.daemon.audio import change_speed
from digitd.daemon.features import extract
from digitd.daemon.model import DigitClassifier, ModelError, default_model_path


def test_change_speed_shortens_and_raises_pitch():
    rate = 8000
    tone = np.sin(2 * np.pi * 500 * np.arange(rate) / rate).astype(np.float32)
    faster = change_speed(tone, 1.1, rate)
    assert abs(faster.size - rate / 1.1) <= 2
    spectrum = np.abs(np.fft.rfft(faster * np.hanning(faster.size)))
    peak_hz = np.argmax(spectrum) * rate / faster.size
    assert peak_hz == pytest.approx(550, abs=5)


def test_shipped_model_records_the_speeds_its_rule_was_calibrated_with():
    meta = json.loads(default_model_path().with_suffix(".json").read_text())
    classifier = DigitClassifier()
    assert classifier.test_time_speeds == tuple(meta["test_time_speeds"])
    assert meta["test_time_speeds"] == meta["loso"]["test_time_speeds"]
    assert 1.0 in classifier.test_time_speeds and len(classifier.test_time_speeds) > 1


def test_utterance_probabilities_are_the_mean_over_the_speeds(recordings):
    wave, rate = sf.read(recordings / "6_yweweler_3.wav", dtype="float32")
    classifier = DigitClassifier()
    assert rate == classifier.features.sample_rate
    speeds = (0.9, 1.0, 1.1)
    one_pass = [classifier.probabilities(extract(change_speed(wave, s, rate), classifier.features))
                for s in speeds]
    classifier.test_time_speeds = speeds
    averaged = classifier.utterance_probabilities(wave)
    np.testing.assert_allclose(averaged, np.mean(one_pass, axis=0), atol=1e-6)
    # The passes differ, or averaging them would be a no-op.
    assert np.max(np.abs(one_pass[0] - one_pass[2])) > 1e-3
    classifier.test_time_speeds = (1.0,)
    np.testing.assert_allclose(classifier.utterance_probabilities(wave),
                               classifier.probabilities(extract(wave, classifier.features)))
    decided = classifier.classify_utterance(wave)
    assert decided.probabilities is not None and decided.label in classifier.metadata.labels


def test_metadata_speeds_default_to_one_pass_and_bad_ones_are_clear_errors(tmp_path):
    model = tmp_path / "m.tflite"
    shutil.copy(default_model_path(), model)
    meta = json.loads(default_model_path().with_suffix(".json").read_text())
    del meta["test_time_speeds"]  # models exported before test-time speeds
    model.with_suffix(".json").write_text(json.dumps(meta))
    assert DigitClassifier(model).test_time_speeds == (1.0,)
    for bad in ([], [0.0, 1.0], ["fast"], 1.1):
        meta["test_time_speeds"] = bad
        model.with_suffix(".json").write_text(json.dumps(meta))
        with pytest.raises(ModelError, match="test_time_speeds|incomplete"):
            DigitClassifier(model)
