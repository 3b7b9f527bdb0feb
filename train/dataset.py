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
from .config import TrainConfig, UnknownMix
from .data import Utterances
from .prompts import PEOPLE_CREDITS, load_prompt_voices

log = logging.getLogger(__name__)

LABELS: tuple[str, ...] = (*(str(d) for d in range(10)), UNKNOWN_LABEL)
UNKNOWN = len(LABELS) - 1


@dataclass
class Corpus:
    """Clean source waveforms; augmentation happens per epoch."""

    digit_waves: list[np.ndarray] = field(default_factory=list)
    digit_labels: list[int] = field(default_factory=list)
    word_waves: list[np.ndarray] = field(default_factory=list)  # non-digit words
    fsdd_count: int = 0  # digit_waves[:fsdd_count] are FSDD's
    fsdd_speakers: list[str] = field(default_factory=list)  # speaker of each FSDD clip
    # which clips are recorded people (FSDD, prompt voices) and which synthetic voices, for
    # the domain-adversarial head (TrainConfig.domain_adversarial); empty: not known
    digit_recorded: list[bool] = field(default_factory=list)
    word_recorded: list[bool] = field(default_factory=list)
    # the recorded prompt voices (train/prompts.py folder names) any clip came from: whom
    # the model's licence must credit
    recorded_voices: list[str] = field(default_factory=list)

    def recorded(self, kind: str, index: int) -> bool | None:
        """Whether digit or word clip `index` is a recorded person; None if not known."""
        flags = self.digit_recorded if kind == "digit" else self.word_recorded
        return flags[index] if index < len(flags) else None

    def summary(self) -> str:
        return (f"{len(self.digit_waves)} digit clips ({self.fsdd_count} FSDD, "
                f"{len(self.digit_waves) - self.fsdd_count} synthetic), "
                f"{len(self.word_waves)} non-digit word clips")


def tts_clips(cfg: TrainConfig, texts: list[str]) -> list[tuple[str, str, np.ndarray]]:
    voices = synth.default_voices(cfg.seed)
    return synth.synthesize(voices, texts, cfg.features.sample_rate, cfg.cache_dir / "synth")


def word_list_clips(cfg: TrainConfig) -> list[tuple[str, str, np.ndarray]]:
    """cfg.word_list_words words from the system word list, each by cfg.word_list_voices
    training voices. They avoid every curated and benchmark word (held-out ones included), so
    LOSO and the benchmark still score words no training heard."""
    words = synth.word_list_words(cfg.word_list_words, cfg.seed)
    if not words:
        return []
    by_voice = synth.assign_voices(words, synth.default_voices(cfg.seed), cfg.word_list_voices,
                                   cfg.seed)
    cache = cfg.cache_dir / "synth"
    clips = [clip for voice, texts in by_voice.items()
             for clip in synth.synthesize([voice], texts, cfg.features.sample_rate, cache)]
    log.info("word list: %d words, %d clips", len(words), len(clips))
    return clips


def build_corpus(fsdd: Utterances, cfg: TrainConfig,
                 heldout_words: frozenset[str] = frozenset()) -> Corpus:
    """FSDD training speakers + (optionally) TTS digits and non-digit words, and recorded
    prompt voices (train/prompts.py).

    heldout_words are left out, so rejection can be measured on words the model never heard.
    """
    corpus = Corpus(digit_waves=list(fsdd.waves), digit_labels=list(fsdd.digits),
                    fsdd_count=len(fsdd), fsdd_speakers=list(fsdd.speakers))
    if cfg.use_tts:
        for _, text, wave in tts_clips(cfg, list(synth.DIGIT_WORDS)) * cfg.tts_digit_repeats:
            corpus.digit_waves.append(wave)
            corpus.digit_labels.append(synth.DIGIT_WORDS.index(text))
        for _, text, wave in tts_clips(cfg, synth.NON_DIGIT_WORDS):
            if text not in heldout_words:
                corpus.word_waves.append(wave)
        if cfg.short_words:
            corpus.word_waves += [w for _, text, w in tts_clips(cfg, synth.SHORT_WORDS)
                                  if text not in heldout_words]
        corpus.word_waves += [w for _, _, w in word_list_clips(cfg)]
    corpus.digit_recorded = [i < corpus.fsdd_count for i in range(len(corpus.digit_waves))]
    corpus.word_recorded = [False] * len(corpus.word_waves)
    if cfg.use_prompt_voices:
        voices = load_prompt_voices(cfg.features.sample_rate, cfg.prompt_voices_dir, cfg.seed)
        log.info("recorded prompt voices: %s", voices.summary())
        corpus.digit_waves += voices.digit_waves * cfg.prompt_digit_repeats
        corpus.digit_labels += voices.digit_labels * cfg.prompt_digit_repeats
        corpus.word_waves += voices.word_waves + voices.pieces
        corpus.digit_recorded += [True] * (len(corpus.digit_waves) - len(corpus.digit_recorded))
        corpus.word_recorded += [True] * (len(corpus.word_waves) - len(corpus.word_recorded))
        corpus.recorded_voices = voices.voices
    elif cfg.real_pieces:
        uncredited = [v for v in cfg.real_people if v not in PEOPLE_CREDITS]
        if uncredited:  # before training, not at export: whom the licence could not name
            raise ValueError(f"real_people: no credit known for {', '.join(uncredited)} "
                             f"(prompts.PEOPLE_CREDITS)")
        voices = load_prompt_voices(cfg.features.sample_rate, cfg.prompt_voices_dir, cfg.seed,
                                    tuple(cfg.real_people), english=False,
                                    pieces_per_file=cfg.real_pieces,
                                    at_pauses=cfg.real_pieces_at_pauses)
        log.info("recorded non-digit speech: %d pieces of %s", len(voices.pieces),
                 ", ".join(voices.voices) or "nobody")
        corpus.word_waves += voices.pieces
        corpus.word_recorded += [True] * len(voices.pieces)
        corpus.recorded_voices = voices.voices
    return corpus


def tones(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A few sustained or gliding sine tones: beeps, whistles."""
    t = np.arange(n) / rate
    out = np.zeros(n)
    for _ in range(int(rng.integers(1, 4))):
        f0, f1 = rng.uniform(100, 3500, size=2)
        phase = 2 * np.pi * np.cumsum(np.linspace(f0, f1 if rng.random() < 0.4 else f0, n)) / rate
        envelope = np.clip(np.sin(np.pi * t / t[-1]) * rng.uniform(1, 4), 0, 1) if n > 1 else 1.0
        out += np.sin(phase) * envelope
    return out


def music(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Music as a radio or TV in the room plays it: notes of one to three instruments, each a
    random harmonic timbre (spectral slope, odd/even balance, a piano's stretched partials)
    with its own attack, decay and vibrato, sometimes over drum hits. Voiced and harmonic
    like speech, so the model must learn that harmonics alone are not a word."""
    out = np.zeros(n)
    for _ in range(int(rng.integers(1, 4))):
        k = np.arange(1, int(rng.integers(1, 13)) + 1)
        amps = k ** -rng.uniform(0.5, 2.5) * np.where(k % 2 == 0, rng.uniform(0, 1), 1.0)
        stretch = np.sqrt(1 + rng.uniform(0, 1e-3) * k**2)
        attack, decay = rng.uniform(0.002, 0.1), rng.uniform(0.0, 8.0)
        vibrato_depth, vibrato_hz = rng.uniform(0, 0.01), rng.uniform(4, 7)
        low = int(rng.integers(36, 72))  # lowest note, MIDI 36-71: 65-494 Hz
        t = int(rng.integers(0, max(1, n // 4)))
        while t < n:
            seg = min(n - t, int(rng.uniform(0.08, 0.9) * rate))
            time = np.arange(seg) / rate
            f0 = 440.0 * 2 ** ((low + int(rng.integers(0, 15)) - 69) / 12)
            phase = 2 * np.pi * f0 * np.cumsum(
                1 + vibrato_depth * np.sin(2 * np.pi * vibrato_hz * time)) / rate
            keep = f0 * k * stretch < rate / 2
            note = np.sin(np.outer(phase, k[keep] * stretch[keep])) @ amps[keep]
            envelope = np.minimum(1.0, time / attack) * np.exp(-decay * time)
            out[t : t + seg] += note * envelope * rng.uniform(0.3, 1.0)
            t += seg + (int(rng.uniform(0, 0.3) * rate) if rng.random() < 0.3 else 0)
    # Drums: noise hits on a beat. Each hit is scaled by the loudest sample so far, earlier
    # hits included, so later hits can outgrow the notes (hit peak over notes' peak: median
    # 2.3x, up to 37x); the LOSO trial in config.UnknownMix.music ran with this. Scaling by
    # the notes alone would change what was measured.
    if rng.random() < 0.4:
        beat = int(rng.uniform(0.2, 0.6) * rate)
        for start in range(int(rng.integers(0, beat)), n, beat):
            hit = min(n - start, int(0.15 * rate))
            out[start : start + hit] += (coloured_noise(hit, rng.uniform(0, 2), rng)
                                         * np.exp(-np.arange(hit) / (0.03 * rate))
                                         * rng.uniform(0.2, 1.0) * np.abs(out).max(initial=1))
    return out / (np.abs(out).max() + 1e-12)


# Digits whose first halves sound alike: a splice of one's start onto the other's end
# could be heard as the second digit, so such pairs are never spliced.
SAME_ONSET = ({2, 3}, {4, 5}, {6, 7})


def fsdd_splice(corpus: Corpus, rng: np.random.Generator) -> np.ndarray | None:
    """The start of one FSDD digit joined to the end of another digit by the same speaker:
    speech in FSDD's own voices that is no digit ("sev-ee", "fo-ine"), so the unknown class
    is not mostly synthetic voices. None when the corpus has no such pair."""
    if corpus.fsdd_count < 2 or len(corpus.fsdd_speakers) != corpus.fsdd_count:
        return None
    first = int(rng.integers(corpus.fsdd_count))
    digit, speaker = corpus.digit_labels[first], corpus.fsdd_speakers[first]
    partners = [i for i in range(corpus.fsdd_count)
                if corpus.fsdd_speakers[i] == speaker and corpus.digit_labels[i] != digit
                and {digit, corpus.digit_labels[i]} not in SAME_ONSET]
    if not partners:
        return None
    a, b = corpus.digit_waves[first], corpus.digit_waves[partners[rng.integers(len(partners))]]
    a = a[: int(a.size * rng.uniform(0.35, 0.65))]
    b = b[int(b.size * rng.uniform(0.35, 0.65)) :]
    b = b * np.sqrt((np.mean(a**2) + 1e-12) / (np.mean(b**2) + 1e-12))  # one speaking level
    return np.concatenate([a, b])


def unknown_waveform(
    corpus: Corpus, rate: int, rng: np.random.Generator, mix: UnknownMix | None = None
) -> tuple[np.ndarray, bool, bool | None]:
    """A non-digit example -> (waveform, needs_augment, recorded), its kind drawn by `mix`.

    Non-digit words, reversed digits (speech-like but no digit), joins of word halves,
    splices of FSDD digits, noise bursts, tones and music. A kind the corpus lacks material for
    falls through to the next one. `recorded` says whether the speech is a recorded person's
    (False: a synthetic voice; None: not speech, or not known).
    """
    words, reversed_, joins, splices, noise_, tones_, music_ = (mix or UnknownMix()).bounds()
    kind = rng.random()
    if corpus.word_waves and kind < words:
        i = int(rng.integers(len(corpus.word_waves)))
        return corpus.word_waves[i], True, corpus.recorded("word", i)
    if kind < reversed_:
        i = int(rng.integers(len(corpus.digit_waves)))
        return corpus.digit_waves[i][::-1].copy(), True, corpus.recorded("digit", i)
    if corpus.word_waves and kind < joins:
        i, j = rng.integers(len(corpus.word_waves), size=2)
        a, b = corpus.word_waves[i], corpus.word_waves[j]
        same = corpus.recorded("word", int(i)) == corpus.recorded("word", int(j))
        return (np.concatenate([a[: a.size // 2], b[b.size // 2 :]]), True,
                corpus.recorded("word", int(i)) if same else None)
    if joins <= kind < splices:
        spliced = fsdd_splice(corpus, rng)
        if spliced is not None:
            return spliced, True, True
    n = int(rng.uniform(0.1, 1.5) * rate)
    if kind < noise_:
        pool = corpus.word_waves or corpus.digit_waves
        noise = random_noise(n, pool, rng)
    elif kind < tones_:
        noise = tones(n, rate, rng)
    elif kind < music_:  # played into a room like speech: augmented like it
        return music(n, rate, rng) * rng.uniform(0.01, 0.9), True, None
    else:  # clicks and breaths: short bursts
        noise = np.zeros(n)
        burst = min(n, int(rng.uniform(0.01, 0.15) * rate))
        start = int(rng.integers(0, max(1, n - burst)))
        noise[start : start + burst] = coloured_noise(burst, rng.uniform(0, 2), rng)
    return noise * rng.uniform(0.01, 0.9), False, None


def make_epoch(corpus: Corpus, cfg: TrainConfig, epoch: int, augment: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All digit clips once plus the configured share of non-digit examples, as features
    x, labels y, and each example's voice: 1 a recorded person, 0 a synthetic voice, -1 not
    speech or not known."""
    rng = np.random.default_rng([cfg.seed, epoch])
    rate = cfg.features.sample_rate
    n_digits = len(corpus.digit_waves)
    n_unknown = int(n_digits * cfg.unknown_fraction / (1 - cfg.unknown_fraction))
    order = rng.permutation(n_digits + n_unknown)
    shape = cfg.features.shape
    x = np.empty((order.size, *shape, 1), dtype=np.float32)
    y = np.empty(order.size, dtype=np.int32)
    voice = np.full(order.size, -1, dtype=np.int8)
    noise_pool = corpus.word_waves or corpus.digit_waves
    for row, item in enumerate(order):
        if item < n_digits:
            wave, label, speechy = corpus.digit_waves[item], corpus.digit_labels[item], True
            recorded = corpus.recorded("digit", int(item))
        else:
            wave, speechy, recorded = unknown_waveform(corpus, rate, rng, cfg.unknown_mix)
            label = UNKNOWN
        if augment and speechy:
            wave = augment_waveform(wave, rate, cfg.augment, rng, noise_pool)
        feats = extract(wave, cfg.features, position=rng.uniform(0.25, 0.75) if augment else 0.5)
        if augment and rng.random() < 0.8:
            feats = spec_augment(feats, cfg.augment, rng)
        x[row, :, :, 0] = feats
        y[row] = label
        if recorded is not None:
            voice[row] = int(recorded)
    return x, y, voice


def clean_features(waves: list[np.ndarray], cfg: TrainConfig) -> np.ndarray:
    """Unaugmented features, as the daemon computes them, shape (n, frames, mels, 1)."""
    out = np.empty((len(waves), *cfg.features.shape, 1), dtype=np.float32)
    for i, wave in enumerate(waves):
        out[i, :, :, 0] = extract(wave, cfg.features)
    return out
