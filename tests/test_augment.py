"""Waveform augmentation on real FSDD audio: the voice change sets pitch apart from formants."""

from __future__ import annotations

import numpy as np
import parselmouth
import pytest
from digitd.daemon.audio import read_audio
from digitd.train.augment import AugmentConfig, augment_waveform, change_voice
from parselmouth.praat import call

RATE = 8000


def median_pitch(x: np.ndarray) -> float:
    pitch = call(parselmouth.Sound(x, sampling_frequency=RATE), "To Pitch", 0.0, 75, 600)
    return call(pitch, "Get quantile", 0, 0, 0.5, "Hertz")


def spectral_centroid(x: np.ndarray) -> float:
    """Where the power sits; it moves with the formants (the harmonics carry no power
    of their own, only the envelope's)."""
    power = np.abs(np.fft.rfft(x)) ** 2
    return float(np.sum(power * np.fft.rfftfreq(x.size, 1 / RATE)) / np.sum(power))


@pytest.fixture(scope="module")
def man(recordings) -> np.ndarray:
    return read_audio(recordings / "3_nicolas_0.wav", RATE).astype(np.float64)


@pytest.mark.parametrize("target", [110.0, 220.0, 300.0])
def test_voice_change_moves_the_pitch_and_keeps_the_length(man, target):
    assert median_pitch(man) < 150  # an adult man
    changed = change_voice(man, RATE, 1.0, target, 1.0)
    assert changed.size == man.size
    assert abs(median_pitch(changed) - target) < 0.1 * target


@pytest.mark.parametrize("ratio", [0.9, 1.2])
def test_voice_change_moves_formants_without_the_pitch(man, ratio):
    changed = change_voice(man, RATE, ratio, 0.0, 1.0)  # 0: pitch median kept
    assert abs(median_pitch(changed) - median_pitch(man)) < 10
    moved = spectral_centroid(changed) / spectral_centroid(man)
    assert abs(moved - ratio) < 0.05, moved


def test_no_voice_keeps_its_spectrum():
    noise = np.random.default_rng(0).normal(size=RATE // 2) * 0.1
    changed = change_voice(noise, RATE, 1.2, 200.0, 1.0)
    assert changed.size == noise.size
    assert abs(spectral_centroid(changed) / spectral_centroid(noise) - 1) < 0.02
    assert not np.any(change_voice(np.zeros(RATE // 2), RATE, 1.2, 200.0, 1.0))


def test_augmentation_is_seeded_and_uses_the_voice_change(man, monkeypatch):
    a = augment_waveform(man, RATE, AugmentConfig(), np.random.default_rng(5), [man])
    b = augment_waveform(man, RATE, AugmentConfig(), np.random.default_rng(5), [man])
    assert np.array_equal(a, b)
    calls = []
    from digitd.train import augment

    monkeypatch.setattr(augment, "change_voice_guarded",
                        lambda x, *args: calls.append(args) or x)
    rng = np.random.default_rng(1)
    for _ in range(200):
        augment_waveform(man, RATE, AugmentConfig(voice_prob=0.35), rng, [man])
    assert 40 < len(calls) < 100
    assert all(rate == RATE and 0.9 <= ratio <= 1.25 and 80 <= hz <= 320
               for rate, ratio, hz, _ in calls)
    calls.clear()
    augment_waveform(man, RATE, AugmentConfig(voice_prob=0.0), rng, [man])
    assert not calls


def _never_returns(x: np.ndarray, *args) -> np.ndarray:
    import time

    time.sleep(60)
    return -x


def _crashes(x: np.ndarray, *args) -> np.ndarray:
    import os

    os._exit(3)


def test_a_voice_change_that_hangs_or_crashes_is_given_up_and_the_worker_replaced(man):
    from digitd.train import augment

    before = augment._praat.given_up
    assert augment._praat.run(_never_returns, man, timeout=1.0) is man
    assert augment._praat.run(_crashes, man, timeout=10.0) is man
    assert augment._praat.given_up == before + 2
    # the next call gets a fresh worker and a real answer
    changed = augment.change_voice_guarded(man, RATE, 1.0, 220.0, 1.0)
    assert abs(median_pitch(changed) - 220.0) < 22.0


def test_voice_change_is_off_by_default_and_set_from_the_command_line(capsys):
    from digitd.train import cli

    assert AugmentConfig().voice_prob == 0.0  # measured even-to-worse in LOSO
    args = cli.build_parser().parse_args(["fit", "--prompt-voices", "--voice-change", "0.35"])
    cfg = cli.make_config(args)
    assert cfg.augment.voice_prob == 0.35 and cfg.use_prompt_voices
    assert cfg.augment.speed_range == AugmentConfig().speed_range  # the rest kept
    assert cli.main(["fit", "--quick", "--voice-change", "2"]) == 2
    assert "--voice-change must be in [0, 1]" in capsys.readouterr().err


def test_edge_cuts_take_a_bounded_share_of_the_word_and_keep_the_rest(recordings):
    from digitd.daemon.features import frame_power
    from digitd.train.augment import cut_edges

    # lucas says "six" with silence on both sides, so a cut end is seen losing its silence
    word = read_audio(recordings / "6_lucas_3.wav", RATE).astype(np.float64)
    power_db = 10 * np.log10(frame_power(word, RATE // 100) + 1e-20)
    loud = np.flatnonzero(power_db >= power_db.max() - 40)
    first, last = loud[0] * (RATE // 100), (loud[-1] + 1) * (RATE // 100)
    assert first > 0 and last < word.size
    extent = last - first
    rng = np.random.default_rng(3)
    assert np.array_equal(cut_edges(word, RATE, 0.0, (0.15, 0.3), rng), word)
    starts_cut = ends_cut = 0
    for _ in range(200):
        cut = cut_edges(word, RATE, 0.5, (0.15, 0.3), rng)
        # a contiguous piece of the word: find where it starts
        windows = np.lib.stride_tricks.sliding_window_view(word, 50)
        start = int(np.flatnonzero((windows == cut[:50]).all(axis=1))[0])
        assert np.array_equal(word[start : start + cut.size], cut)
        end = start + cut.size
        assert start == 0 or first <= start <= first + 0.15 * extent
        assert end == word.size or last - 0.3 * extent <= end <= last
        starts_cut += start > 0
        ends_cut += end < word.size
    assert 60 < starts_cut < 140 and 60 < ends_cut < 140  # each end about half the time


def test_edge_cuts_are_off_by_default_and_wired_into_augmentation(man, monkeypatch):
    from digitd.train import augment

    assert AugmentConfig().edge_cut_prob == 0.0
    calls = []
    monkeypatch.setattr(augment, "cut_edges",
                        lambda x, rate, prob, share, rng: calls.append((prob, share)) or x[:-80])
    rng = np.random.default_rng(7)
    augment_waveform(man, RATE, AugmentConfig(), rng, [man])
    assert not calls
    augment_waveform(man, RATE, AugmentConfig(edge_cut_prob=0.3), rng, [man])
    assert calls == [(0.3, AugmentConfig().edge_cut_share)]
