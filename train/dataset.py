"""Training material: FSDD digits, synthetic voices, and non-digit material; epochs of features.

Labels are "0".."9" and "unknown". Every example goes through digitd.daemon.features, the
exact code the daemon runs, after augmentation of the raw waveform.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from digitd.daemon.features import extract
from digitd.daemon.model import UNKNOWN_LABEL

from . import synth
from .augment import augment_waveform, coloured_noise, random_noise, spec_augment
from .config import TrainConfig
from .data import Utterances

log = logging.getLogger(__name__)

LABELS: tuple[str, ...] = (*(str(d) for d in range(10)), UNKNOWN_LABEL)
UNKNOWN = len(LABELS) - 1


@dataclass
class Corpus:
    """Clean source waveforms; augmentation happens per epoch."""

    digit_waves: list[np.ndarray] = field(default_factory=list)
    digit_labels: list[int] = field(default_factory=list)
    word_waves: list[np.ndarray] = field(default_factory=list)  # non-digit words
    fsdd_count: int = 0

    def summary(self) -> str:
        return (f"{len(self.digit_waves)} digit clips ({self.fsdd_count} FSDD, "
                f"{len(self.digit_waves) - self.fsdd_count} synthetic), "
                f"{len(self.word_waves)} non-digit word clips")


def tts_clips(cfg: TrainConfig, texts: list[str]) -> list[tuple[str, str, np.ndarray]]:
    voices = synth.default_voices(cfg.seed)
    return synth.synthesize(voices, texts, cfg.features.sample_rate, cfg.cache_dir / "synth")


def build_corpus(fsdd: Utterances, cfg: TrainConfig, heldout_words: bool) -> Corpus:
    """FSDD training speakers + (optionally) TTS digits and non-digit words.

    heldout_words=True leaves synth.HELDOUT_WORDS out, so rejection can be measured on
    words the model never heard.
    """
    corpus = Corpus(digit_waves=list(fsdd.waves), digit_labels=list(fsdd.digits),
                    fsdd_count=len(fsdd))
    if cfg.use_tts:
        for _, text, wave in tts_clips(cfg, list(synth.DIGIT_WORDS)) * cfg.tts_digit_repeats:
            corpus.digit_waves.append(wave)
            corpus.digit_labels.append(synth.DIGIT_WORDS.index(text))
        for _, text, wave in tts_clips(cfg, synth.NON_DIGIT_WORDS):
            if not (heldout_words and text in synth.HELDOUT_WORDS):
                corpus.word_waves.append(wave)
    return corpus


def tones(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A few sustained or gliding tones: beeps, whistles, music-like sound."""
    t = np.arange(n) / rate
    out = np.zeros(n)
    for _ in range(int(rng.integers(1, 4))):
        f0, f1 = rng.uniform(100, 3500, size=2)
        phase = 2 * np.pi * np.cumsum(np.linspace(f0, f1 if rng.random() < 0.4 else f0, n)) / rate
        envelope = np.clip(np.sin(np.pi * t / t[-1]) * rng.uniform(1, 4), 0, 1) if n > 1 else 1.0
        out += np.sin(phase) * envelope
    return out


def unknown_waveform(
    corpus: Corpus, rate: int, rng: np.random.Generator
) -> tuple[np.ndarray, bool]:
    """A non-digit example -> (waveform, needs_augment).

    Non-digit words, reversed digits (speech-like but no digit), fragments and joins of
    words, noise bursts and tones. Speech is augmented like digits; noise already is noise.
    """
    kind = rng.random()
    if corpus.word_waves and kind < 0.45:
        return corpus.word_waves[rng.integers(len(corpus.word_waves))], True
    if kind < 0.6:
        return corpus.digit_waves[rng.integers(len(corpus.digit_waves))][::-1].copy(), True
    if corpus.word_waves and kind < 0.7:
        a = corpus.word_waves[rng.integers(len(corpus.word_waves))]
        b = corpus.word_waves[rng.integers(len(corpus.word_waves))]
        return np.concatenate([a[: a.size // 2], b[b.size // 2 :]]), True
    n = int(rng.uniform(0.1, 1.5) * rate)
    if kind < 0.85:
        pool = corpus.word_waves or corpus.digit_waves
        noise = random_noise(n, pool, rng)
    elif kind < 0.93:
        noise = tones(n, rate, rng)
    else:  # clicks and breaths: short bursts
        noise = np.zeros(n)
        burst = min(n, int(rng.uniform(0.01, 0.15) * rate))
        start = int(rng.integers(0, max(1, n - burst)))
        noise[start : start + burst] = coloured_noise(burst, rng.uniform(0, 2), rng)
    return noise * rng.uniform(0.01, 0.9), False


def make_epoch(corpus: Corpus, cfg: TrainConfig, epoch: int, augment: bool = True
               ) -> tuple[np.ndarray, np.ndarray]:
    """All digit clips once plus the configured share of non-digit examples, as features."""
    rng = np.random.default_rng([cfg.seed, epoch])
    rate = cfg.features.sample_rate
    n_digits = len(corpus.digit_waves)
    n_unknown = int(n_digits * cfg.unknown_fraction / (1 - cfg.unknown_fraction))
    order = rng.permutation(n_digits + n_unknown)
    shape = cfg.features.shape
    x = np.empty((order.size, *shape, 1), dtype=np.float32)
    y = np.empty(order.size, dtype=np.int32)
    noise_pool = corpus.word_waves or corpus.digit_waves
    for row, item in enumerate(order):
        if item < n_digits:
            wave, label, speechy = corpus.digit_waves[item], corpus.digit_labels[item], True
        else:
            (wave, speechy), label = unknown_waveform(corpus, rate, rng), UNKNOWN
        if augment and speechy:
            wave = augment_waveform(wave, rate, cfg.augment, rng, noise_pool)
        feats = extract(wave, cfg.features, position=rng.uniform(0.25, 0.75) if augment else 0.5)
        if augment and rng.random() < 0.8:
            feats = spec_augment(feats, cfg.augment, rng)
        x[row, :, :, 0] = feats
        y[row] = label
    return x, y


def clean_features(waves: list[np.ndarray], cfg: TrainConfig) -> np.ndarray:
    """Unaugmented features, as the daemon computes them, shape (n, frames, mels, 1)."""
    out = np.empty((len(waves), *cfg.features.shape, 1), dtype=np.float32)
    for i, wave in enumerate(waves):
        out[i, :, :, 0] = extract(wave, cfg.features)
    return out
