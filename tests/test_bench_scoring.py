"""The benchmark's scoring: matches, misses, false positives, edit distance, latency."""

from __future__ import annotations

from bench.scoring import Emitted, Word, edit_distance, score_stream


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
