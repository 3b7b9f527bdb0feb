"""The audio every recognizer hears: FSDD by held-out speaker, voices training never used,
long streams of digits with pauses and noise (truth times kept, written as CSV), and long
stretches of audio that holds no digit. Everything is built from a seed: the same run
rebuilds the same audio."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from digitd.daemon.features import frame_power
from digitd.train import synth
from digitd.train.data import Utterances

from bench.scoring import Word

RATE = 16000  # the model's rate; FSDD is upsampled, as training reads it
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
# espeak-ng variants absent from training's voices (train/synth.py), in four accents
UNSEEN_VARIANTS = ("+Alicia", "+Andrea", "+anika", "+grandma", "+shelby", "+steph",
                   "+whisperf", "+Andy", "+Diogo", "+Henrique", "+john", "+max", "+michel",
                   "+norbert", "+rob", "+travis")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029")
# Words no training run heard (train.dataset.tts_words leaves them out).
NEW_WORDS = synth.BENCHMARK_WORDS
PHRASES = synth.BENCHMARK_PHRASES


def load_fsdd(data: Path, per_digit: int | None = None) -> Utterances:
    """FSDD through training's loader (bad files skipped and counted): all takes, or the
    first `per_digit` per digit and speaker."""
    from digitd.train.data import load_fsdd as load

    return load(data, RATE, per_digit)


def of_speaker(fsdd: Utterances, speaker: str) -> tuple[list[np.ndarray], list[int]]:
    keep = [s == speaker for s in fsdd.speakers]
    return ([w for w, k in zip(fsdd.waves, keep, strict=True) if k],
            [d for d, k in zip(fsdd.digits, keep, strict=True) if k])


def unseen_voices(count: int | None = None):
    from digitd.train import synth

    rng = np.random.default_rng(0)
    voices = [synth.Voice("espeak", accent + variant, float(rng.uniform(0.85, 1.15)),
                          int(rng.integers(30, 80)))
              for accent in ACCENTS for variant in UNSEEN_VARIANTS]
    return voices[:count] if count else voices


def unseen_speech(count: int | None, cache: Path) -> list[np.ndarray]:
    """Words and phrases that hold no digit, by the voices training never used."""
    return [w for _, w in synthesized(unseen_voices(count), non_digit_words() + list(PHRASES),
                                      cache)]


def synthesized(voices, texts: list[str], cache: Path) -> list[tuple[str, np.ndarray]]:
    from digitd.train import synth

    return [(text, wave) for _, text, wave in synth.synthesize(voices, texts, RATE, cache)]


def non_digit_words() -> list[str]:
    """The benchmark's words: training's word list leaves every one of them out."""
    return sorted(set(NEW_WORDS))


def noise(kind: str, n: int, rng: np.random.Generator, babble_pool: list[np.ndarray]
          ) -> np.ndarray:
    from digitd.train.augment import coloured_noise

    if kind == "white":
        return coloured_noise(n, 0.0, rng)
    if kind == "pink":
        return coloured_noise(n, 1.0, rng)
    if kind == "babble":
        # eight overlapping talkers, reversed so that no digit can be heard in it; the caller
        # gives voices the model under test never heard
        out = np.zeros(n)
        for _ in range(8):
            src = babble_pool[rng.integers(len(babble_pool))][::-1]
            reps = np.tile(src, n // src.size + 2)
            offset = int(rng.integers(src.size))
            out += reps[offset : offset + n]
        return out / (np.std(out) + 1e-12)
    raise ValueError(kind)


@dataclass
class DigitStream:
    name: str
    samples: np.ndarray
    truth: list[Word]

    def write_csv(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{self.name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["digit", "start_s", "end_s"])
            writer.writerows([w.digit, f"{w.start:.3f}", f"{w.end:.3f}"] for w in self.truth)


def active_power(wave: np.ndarray, frame: int = RATE // 100, range_db: float = 30.0) -> float:
    """Mean power of a clip's speech: its 10 ms frames within `range_db` of the loudest (a
    simple active speech level, after ITU-T P.56), so padding silence does not count."""
    frames = frame_power(np.asarray(wave, dtype=np.float64), frame)
    return float(np.mean(frames[frames >= frames.max() * 10 ** (-range_db / 10)]))


def digit_stream(name: str, waves: list[np.ndarray], digits: list[int], count: int,
                 snr_db: float, kind: str, babble_pool: list[np.ndarray], seed: int,
                 level_spread_db: float) -> DigitStream:
    """`count` of the speaker's digits with 0.3-1.5 s pauses, each word at `snr_db` (give or
    take `level_spread_db`, as a talker's loudness varies) over the noise.

    Each word is levelled first: FSDD's takes of one speaker differ by up to 30 dB (theo's
    were recorded in sessions at very different gains), and a noise set from the mean power
    of such a stream sits 20 dB under its loudest take and a few dB under the rest."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(waves), size=min(count, len(waves)), replace=False)
    parts, truth, t = [np.zeros(RATE // 2)], [], 0.5
    for i in picks:
        wave = waves[i].astype(np.float64)
        gain_db = rng.uniform(-level_spread_db, level_spread_db)
        wave = wave * 10 ** (gain_db / 20) / np.sqrt(active_power(wave) + 1e-20)
        pause = int(rng.uniform(0.3, 1.5) * RATE)
        truth.append(Word(digits[i], t, t + wave.size / RATE))
        parts += [wave, np.zeros(pause)]
        t += (wave.size + pause) / RATE
    speech = np.concatenate(parts)  # every word's active level is now 1 +- the spread
    noisy = speech + noise(kind, speech.size, rng, babble_pool) / np.sqrt(10 ** (snr_db / 10))
    return DigitStream(name, (0.5 * noisy / np.max(np.abs(noisy))).astype(np.float32), truth)


def tones(n: int, rng: np.random.Generator) -> np.ndarray:
    """Music-like: chords of harmonic tones with note envelopes."""
    out = np.zeros(n)
    t = 0
    while t < n:
        length = int(rng.uniform(0.15, 0.8) * RATE)
        seg = np.arange(min(length, n - t)) / RATE
        envelope = np.exp(-seg * rng.uniform(1, 6))
        for _ in range(int(rng.integers(1, 4))):
            f0 = 110 * 2 ** (int(rng.integers(0, 36)) / 12)
            out[t : t + seg.size] += sum(np.sin(2 * np.pi * f0 * k * seg) / k
                                         for k in range(1, 5) if f0 * k < RATE / 2) * envelope
        t += seg.size
    return out


def non_digit_stream(kind: str, seconds: float, speech: list[np.ndarray], seed: int
                     ) -> np.ndarray:
    """`seconds` of audio with no digit in it: noise bursts and clicks, music-like tones, or
    speech that holds no digit (words and phrases by voices training never used)."""
    from digitd.train.augment import coloured_noise

    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    parts: list[np.ndarray] = []
    total = 0
    while total < n:
        if kind == "noise":
            length = int(rng.uniform(0.05, 3.0) * RATE)
            part = coloured_noise(length, rng.uniform(0, 2), rng) * rng.uniform(0.01, 0.5)
        elif kind == "tones":
            part = tones(int(rng.uniform(1.0, 6.0) * RATE), rng) * rng.uniform(0.05, 0.3)
        else:
            part = speech[rng.integers(len(speech))] * rng.uniform(0.3, 1.0)
        gap = np.zeros(int(rng.uniform(0.2, 1.5) * RATE))
        parts += [part, gap]
        total += part.size + gap.size
    x = np.concatenate(parts)[:n]
    x = x + rng.normal(size=x.size) * 1e-3
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


# Recorded people, for measuring only (no training run reads these):
# - Allison Smith's English Asterisk prompts (Debian's asterisk-core-sounds-en-wav, CC BY-SA
#   3.0): her ten digits and her one-word prompts that are no digit (bench/prompts.py);
# - KLettres' letters and syllables (Debian's klettres-data, GPL-2+): native speakers of 20
#   languages saying their alphabet and syllables. Never trained on: its licence is not the
#   shipped model's.
KLETTRES = Path("/usr/share/klettres")
QUICK_LANGUAGES = ("en", "en_GB", "de")


def klettres_clips(root: Path | None = None, languages: tuple[str, ...] | None = None
                   ) -> tuple[dict[str, list[np.ndarray]], int]:
    """{language: clips} of every letter and syllable recording under `root` (default
    KLETTRES), and how many files could not be read. The letter O is left out: "oh" is said
    for zero."""
    from digitd.daemon.audio import AudioError, read_audio

    out: dict[str, list[np.ndarray]] = {}
    unreadable = 0
    folders = sorted(p for p in (root or KLETTRES).glob("*") if (p / "alpha").is_dir())
    for folder in folders:
        if languages and folder.name not in languages:
            continue
        for path in sorted(folder.glob("*/*.ogg")):
            if path.stem.lower().split("-")[0] == "o":
                continue
            try:
                out.setdefault(folder.name, []).append(read_audio(path, RATE))
            except AudioError:
                unreadable += 1
    return out, unreadable


def allison(root: Path | None = None) -> tuple[list[tuple[int, np.ndarray]], list[np.ndarray]]:
    """Allison Smith's ten digits as (digit, clip) and her non-digit words; empty if the
    prompts are not installed."""
    from bench import prompts

    voice = prompts.load_allison(RATE, root or prompts.DEFAULT_DIR)
    return list(zip(voice.digit_labels, voice.digit_waves, strict=True)), voice.word_waves
