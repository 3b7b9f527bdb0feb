"""Training material: what the noise a model learns to ignore is made of."""

from __future__ import annotations

import numpy as np
from digitd.train import dataset, synth
from digitd.train.config import quick_config
from digitd.train.data import load_fsdd


def test_training_babble_talks_with_real_voices(fsdd_dir, monkeypatch):
    fsdd = load_fsdd(fsdd_dir, 8000, limit_per_class=1)  # 60 real recordings
    rng = np.random.default_rng(0)

    def fake_tts(cfg, texts):  # 20 synthetic voices, without running the engines
        return [(f"voice{v}", text, rng.normal(size=4000) * 0.1)
                for v in range(20) for text in texts]

    monkeypatch.setattr(dataset, "tts_clips", fake_tts)
    corpus = dataset.build_corpus(fsdd, quick_config(use_tts=True), heldout_words=True)
    assert len(corpus.word_waves) == 20 * len(set(synth.NON_DIGIT_WORDS) - synth.HELDOUT_WORDS)
    assert corpus.noise_pool is corpus.babble_waves
    # Every real recording is a talker, reversed so that no digit can be made out in it...
    reversed_real = [w for w in corpus.babble_waves
                     if any(w.size == x.size and np.array_equal(w, x[::-1]) for x in fsdd.waves)]
    assert len(reversed_real) == len(fsdd)
    # ...and the synthetic voices do not outnumber them: a room of people is not TTS.
    synthetic = len(corpus.babble_waves) - len(reversed_real)
    assert 0.5 * len(fsdd) <= synthetic <= 2 * len(fsdd)
