"""The benchmark's scoring: matches, misses, false positives, edit distance, latency."""

from __future__ import annotations

from bench.scoring import Emitted, Heard, Word, edit_distance, score_stream, word_outcomes


def test_edit_distance():
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert edit_distance([1, 3], [1, 2, 3]) == 1  # a deletion
    assert edit_distance([1, 2, 9, 3], [1, 2, 3]) == 1  # an insertion
    assert edit_distance([1, 5, 3], [1, 2, 3]) == 1  # a substitution
    assert edit_distance([], [4, 2]) == 2


def test_stream_score_counts_each_outcome():
    truth = [Word(4, 1.0, 1.5), Word(2, 3.0, 3.4), Word(7, 5.0, 5.6)]
    emitted = [Emitted(4, 1.45, 1.62),  # right, 120 ms after the word's end
               Emitted(3, 3.38, 3.60),  # wrong digit for the second word
               Emitted(9, 8.00, 8.10)]  # nothing was said there
    score = score_stream(truth, emitted)
    assert (score.matched, score.wrong, score.false_positive, score.missed) == (1, 1, 1, 1)
    assert score.edits == edit_distance([4, 3, 9], [4, 2, 7]) == 2
    assert [round(x) for x in score.latencies_ms] == [120]
    assert score.summary()["digit_error_rate"] == 2 / 3


def test_one_word_is_matched_once():
    truth = [Word(1, 1.0, 1.4)]
    score = score_stream(truth, [Emitted(1, 1.3, 1.5), Emitted(1, 1.4, 1.6)])
    assert (score.matched, score.false_positive) == (1, 1)


def test_word_outcomes_tell_the_segmenters_misses_from_the_models():
    truth = [Word(4, 1.0, 1.5), Word(2, 3.0, 3.4), Word(7, 5.0, 5.6), Word(1, 7.0, 7.4),
             Word(8, 9.0, 9.5)]
    heard = [Heard(0.9, 1.2, 9), Heard(1.2, 1.5, 4),  # split in two: a right part wins
             Heard(2.9, 3.2, None, "not a digit"), Heard(3.2, 3.4, 3),  # a wrong part wins
             Heard(4.95, 5.5, None, "not a digit"),  # the model said no
             Heard(6.8, 7.5, None, "too long"),  # the segmenter ran it into chatter
             Heard(9.7, 10.0, 8)]  # starts after the word ended: not this word's segment
    assert word_outcomes(truth, heard) == {"right": 1, "wrong digit": 1, "not a digit": 1,
                                           "too long": 1, "no segment": 1}


def test_digit_stream_puts_every_word_at_the_stated_snr(recordings):
    """theo's takes differ by ~25 dB; a noise set from the stream's mean power would leave
    most of his words far under the SNR the benchmark reports."""
    import numpy as np
    from digitd.daemon.audio import read_audio

    from bench.material import RATE, active_power, digit_stream

    files = sorted(recordings.glob("*_theo_*.wav"))
    waves = [read_audio(f, RATE).astype(np.float64) for f in files]
    levels = 10 * np.log10([active_power(w) for w in waves])
    assert levels.max() - np.median(levels) > 15  # the material is what the test is about
    snr, spread = 20.0, 3.0
    stream = digit_stream("t", waves, [0] * len(waves), 30, snr, "white", [], seed=5,
                          level_spread_db=spread)
    x = stream.samples.astype(np.float64)
    silence = x[: int(0.45 * RATE)]  # before the first word: noise alone
    noise_power = np.mean(silence**2)
    word_snrs = [10 * np.log10(active_power(x[int(w.start * RATE):int(w.end * RATE)])
                               / noise_power - 1) for w in stream.truth]
    # active level includes the noise under the word, hence the "- 1"; the silence sample is
    # short, so allow 1 dB for its own estimate
    assert min(word_snrs) > snr - spread - 1.5, word_snrs
    assert max(word_snrs) < snr + spread + 1.5, word_snrs
