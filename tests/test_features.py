"""The shared feature code: equal to librosa on real audio, sane on edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from digitd.daemon.audio import read_audio
from digitd.daemon.features import (
    FeatureConfig,
    extract,
    fit_window,
    mel_power,
    normalize_log,
    power_spectrogram,
    trim_silence,
)

CFG = FeatureConfig()
FILES = ["0_george_0.wav", "3_jackson_12.wav", "7_lucas_40.wav", "9_yweweler_3.wav",
         "6_nicolas_8.wav", "4_theo_21.wav"]


@pytest.fixture(scope="module", params=FILES)
def window(request, recordings) -> np.ndarray:
    wave = read_audio(recordings / request.param, CFG.sample_rate)
    return fit_window(trim_silence(wave.astype(np.float64), CFG), CFG)


def test_stft_power_equals_librosa(window):
    librosa = pytest.importorskip("librosa")
    ours = power_spectrogram(window, CFG.n_fft, CFG.hop_length)
    ref = np.abs(librosa.stft(window, n_fft=CFG.n_fft, hop_length=CFG.hop_length,
                              window="hann", center=False)) ** 2
    assert ours.shape == ref.T.shape
    # Relative to the loudest bin: float64 FFTs agree to ~1e-12 of full scale.
    assert np.max(np.abs(ours - ref.T)) <= 1e-9 * ref.max()


def test_mel_equals_librosa_melspectrogram(window):
    librosa = pytest.importorskip("librosa")
    ours = mel_power(window, CFG)
    ref = librosa.feature.melspectrogram(
        y=window, sr=CFG.sample_rate, n_fft=CFG.n_fft, hop_length=CFG.hop_length,
        center=False, power=2.0, n_mels=CFG.n_mels, fmin=CFG.fmin, fmax=CFG.fmax,
    )
    assert ours.shape == ref.T.shape == (CFG.n_frames, CFG.n_mels)
    # librosa builds its mel filters in float32, so agreement is float32-deep: the max abs
    # difference is below 1e-6 of the largest mel value (seen: ~2e-8).
    assert np.max(np.abs(ours - ref.T)) <= 1e-6 * ref.max()


def test_mel_filterbank_equals_librosa():
    librosa = pytest.importorskip("librosa")
    from digitd.daemon.features import mel_filterbank

    ours = mel_filterbank(CFG.sample_rate, CFG.n_fft, CFG.n_mels, CFG.fmin, CFG.fmax)
    ref = librosa.filters.mel(sr=CFG.sample_rate, n_fft=CFG.n_fft, n_mels=CFG.n_mels,
                              fmin=CFG.fmin, fmax=CFG.fmax, dtype=np.float64)
    assert np.max(np.abs(ours - ref)) <= 1e-12


def test_log_normalization_equals_librosa_power_to_db(window):
    librosa = pytest.importorskip("librosa")
    mel = mel_power(window, CFG)
    ref_db = librosa.power_to_db(mel, ref=np.max, amin=CFG.amin, top_db=CFG.top_db)
    ours = normalize_log(mel, CFG)
    # Max abs difference on the [-1, 1] scale: 1e-9 (float64 throughout).
    assert np.max(np.abs(ours - (ref_db / (CFG.top_db / 2) + 1))) <= 1e-9


def test_extract_shape_range_dtype(recordings):
    feats = extract(read_audio(recordings / "5_theo_3.wav", CFG.sample_rate), CFG)
    assert feats.shape == CFG.shape
    assert feats.dtype == np.float32
    assert feats.min() >= -1.0 and feats.max() <= 1.0
    assert feats.max() == pytest.approx(1.0)  # the peak is the reference


def test_gain_invariance(recordings):
    wave = read_audio(recordings / "2_lucas_7.wav", CFG.sample_rate)
    a, b = extract(wave, CFG), extract(wave * 0.01, CFG)
    assert np.max(np.abs(a - b)) < 1e-4


def test_silence_is_the_floor():
    feats = extract(np.zeros(8000), CFG)
    assert np.all(feats == -1.0)
    quiet = extract(np.full(8000, 1e-9), CFG)
    assert np.all(np.isfinite(quiet)) and quiet.max() <= -0.99


def test_zero_padding_meets_the_floor(recordings):
    wave = read_audio(recordings / "1_jackson_0.wav", CFG.sample_rate)
    feats = extract(wave, CFG)
    # The word is shorter than the window: the padded frames at both ends sit at the floor.
    assert np.all(feats[0] == -1.0) and np.all(feats[-1] == -1.0)


def test_clipping_is_finite_and_in_range(recordings):
    wave = read_audio(recordings / "8_george_9.wav", CFG.sample_rate)
    clipped = np.clip(wave * 50.0, -1.0, 1.0)
    feats = extract(clipped, CFG)
    assert np.all(np.isfinite(feats)) and feats.min() >= -1 and feats.max() <= 1
    # Out-of-range floats (a hot float WAV) are fine too: the features are gain-invariant.
    assert np.all(np.isfinite(extract(wave * 1000.0, CFG)))


@pytest.mark.parametrize("n", [1, 10, 255, 256, 257])
def test_very_short_input(n):
    rng = np.random.default_rng(n)
    feats = extract(rng.normal(size=n) * 0.1, CFG)
    assert feats.shape == CFG.shape and np.all(np.isfinite(feats))


def test_very_long_input_keeps_the_word(recordings):
    word = read_audio(recordings / "3_theo_5.wav", CFG.sample_rate)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=5 * CFG.sample_rate) * 1e-3
    long = noise.copy()
    start = 3 * CFG.sample_rate
    long[start : start + word.size] += word
    # 5 s in, 1 s out: the crop must hold the word, not the first second of hiss.
    feats = extract(long, CFG)
    assert feats.shape == CFG.shape
    cropped = fit_window(long, CFG)
    assert np.sum(cropped**2) >= 0.99 * np.sum(word**2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_a_clear_error(bad):
    wave = np.zeros(4000)
    wave[100] = bad
    with pytest.raises(ValueError, match="non-finite"):
        extract(wave, CFG)


def test_wrong_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="mono"):
        extract(np.zeros((100, 2)), CFG)
    with pytest.raises(ValueError, match="empty"):
        extract(np.zeros(0), CFG)


def test_trim_keeps_weak_onsets():
    rate = CFG.sample_rate
    rng = np.random.default_rng(1)
    fricative = rng.normal(size=rate // 10) * 0.01  # an 's' 30 dB under the vowel
    vowel = np.sin(2 * np.pi * 150 * np.arange(rate // 3) / rate) * 0.3
    wave = np.concatenate([np.zeros(rate // 2), fricative, vowel, np.zeros(rate // 2)])
    trimmed = trim_silence(wave, CFG)
    assert trimmed.size >= fricative.size + vowel.size
    assert trimmed.size <= fricative.size + vowel.size + 2 * 6 * CFG.trim_frame


def test_config_round_trip_and_unknown_keys():
    assert FeatureConfig.from_dict(CFG.to_dict()) == CFG
    with pytest.raises(ValueError, match="unknown"):
        FeatureConfig.from_dict({**CFG.to_dict(), "hop": 3})
    with pytest.raises(ValueError, match="missing"):
        FeatureConfig.from_dict({"n_fft": 256})
