"""Training material and its embeddings: who said what, rendered and embedded once, cached.

Material is one list of clips, each one word (or one non-word sound) with its label, speaker,
corpus and word:
  fsdd    FSDD's six men saying digits (8 kHz, upsampled)
  sc      Speech Commands: 1,660 real people, mostly saying words that are not digits
  tts     local TTS voices: every digit, non-digit words, and words that sound like digits
  voices  other TTS voices, never trained on: digits and digit-like words for evaluation
  noise   noise, tones, music, clicks and silence
Each clip is rendered into `copies` windows (copy 0 clean, exactly as `digitd recognize
--whole` sees the file; the others augmented: speed, microphone colouring, room, a noisy room
or digital silence around it, level, where the word ends), every window goes through
digitd.daemon.features (the daemon's code) and the speech embedding, and the embeddings are
cached on disk keyed by the recipe and the material, as openWakeWord trains its heads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from digitd.daemon.audio import change_speed
from digitd.daemon.features import (
    check_waveform,
    log_mel,
    trim_silence,
    utterance_audio,
    utterance_window,
)
from digitd.daemon.model import UNKNOWN_LABEL

from . import synth
from .augment import (
    coloured_noise,
    music,
    random_eq,
    random_noise,
    reverberate,
    synthetic_rir,
    tones,
)
from .config import TrainConfig
from .data import DIGIT_NAMES, Utterances, Words

log = logging.getLogger(__name__)

LABELS: tuple[str, ...] = (*(str(d) for d in range(10)), UNKNOWN_LABEL)
UNKNOWN = len(LABELS) - 1


@dataclass
class Material:
    waves: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)  # 0-9, UNKNOWN
    speakers: list[str] = field(default_factory=list)  # "fsdd:george", "sc:0a2b400e", ...
    corpora: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)  # what was said; "" for non-speech

    def add(self, wave: np.ndarray, label: int, speaker: str, corpus: str, word: str) -> None:
        # kept as every utterance is heard (mean off), so the cache key follows the front end
        self.waves.append(check_waveform(wave))
        self.labels.append(label)
        self.speakers.append(speaker)
        self.corpora.append(corpus)
        self.words.append(word)

    def __len__(self) -> int:
        return len(self.waves)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (np.array(self.labels), np.array(self.speakers), np.array(self.corpora),
                np.array(self.words))

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for i in range(len(self)):
            digest.update(f"{self.labels[i]}|{self.speakers[i]}|{self.corpora[i]}|"
                          f"{self.words[i]}|".encode())
            digest.update(np.ascontiguousarray(self.waves[i], dtype=np.float32).tobytes())
        return digest.hexdigest()

    def summary(self) -> str:
        labels, _, corpora, _ = self.arrays()
        parts = []
        for corpus in dict.fromkeys(self.corpora):
            mask = corpora == corpus
            parts.append(f"{corpus} {int(np.sum(mask & (labels < UNKNOWN)))} digits / "
                         f"{int(np.sum(mask & (labels == UNKNOWN)))} other")
        return ", ".join(parts)


def tts_words() -> list[str]:
    """Non-digit words for the TTS voices: the curated list, none of the benchmark's words
    (it scores them as words no training heard), the digit-like words apart."""
    reserved = set(synth.BENCHMARK_WORDS) | set(synth.HARD_NEGATIVES)
    return [w for w in dict.fromkeys(synth.NON_DIGIT_WORDS) if w not in reserved]


def _add_tts(material: Material, cfg: TrainConfig, voices: list[synth.Voice], corpus: str,
             words: list[str], per_word: int) -> None:
    rate, cache = cfg.features.sample_rate, cfg.cache_dir / "synth"
    for key, text, wave in synth.synthesize(voices, list(DIGIT_NAMES), rate, cache):
        material.add(wave, DIGIT_NAMES.index(text), f"{corpus}:{key}", corpus, text)
    for voice, texts in synth.assign_voices(words, voices, per_word, cfg.seed).items():
        for key, text, wave in synth.synthesize([voice], texts, rate, cache):
            material.add(wave, UNKNOWN, f"{corpus}:{key}", corpus, text)


def noise_clip(i: int, cfg: TrainConfig, pool: list[np.ndarray]) -> np.ndarray:
    """Sound that is no word: noise bursts, babble, tones, music, clicks, near silence."""
    rng = np.random.default_rng([cfg.seed, 7, i])
    rate = cfg.features.sample_rate
    n = int(rng.uniform(0.2, 1.8) * rate)
    kind = i % 5
    if kind == 0:
        x = random_noise(n, pool, rng)
    elif kind == 1:
        x = tones(n, rate, rng)
    elif kind == 2:
        x = music(n, rate, rng)
    elif kind == 3:  # clicks, knocks and breaths
        x = np.zeros(n)
        for _ in range(int(rng.integers(1, 4))):
            burst = min(n, int(rng.uniform(0.005, 0.15) * rate))
            start = int(rng.integers(0, max(1, n - burst)))
            x[start : start + burst] += coloured_noise(burst, rng.uniform(0, 2), rng)
    else:  # a quiet room
        x = coloured_noise(n, rng.uniform(0, 2), rng) * 10 ** (rng.uniform(-5, -2))
    return x / (np.max(np.abs(x)) + 1e-12) * 10 ** (rng.uniform(-40, -1) / 20)


def build_material(cfg: TrainConfig, fsdd: Utterances, sc: Words) -> Material:
    """Every clip training or evaluation may use; evaluate.py decides which fold sees what."""
    material = Material()
    for wave, digit, speaker in zip(fsdd.waves, fsdd.digits, fsdd.speakers, strict=True):
        material.add(wave, digit, f"fsdd:{speaker}", "fsdd", DIGIT_NAMES[digit])
    for wave, word, speaker in zip(sc.waves, sc.words, sc.speakers, strict=True):
        label = DIGIT_NAMES.index(word) if word in DIGIT_NAMES else UNKNOWN
        material.add(wave, label, f"sc:{speaker}", "sc", word)
    voices = synth.default_voices(cfg.seed)
    words = tts_words()
    if cfg.limit_per_class is not None:  # tests: a few voices, a few words
        voices, words = voices[:: max(1, len(voices) // 4)], words[:: max(1, len(words) // 8)]
    _add_tts(material, cfg, voices, "tts", words, cfg.tts_words_per_voice)
    _add_tts(material, cfg, voices, "tts", list(synth.HARD_NEGATIVES),
             cfg.tts_hard_negative_voices)
    held = synth.calibration_voices(cfg.seed)
    if cfg.limit_per_class is not None:
        held = held[:: max(1, len(held) // 4)]
    _add_tts(material, cfg, held, "voices", list(synth.HARD_NEGATIVES), len(held))
    pool = [w for w, word in zip(sc.waves, sc.words, strict=True) if word not in DIGIT_NAMES]
    for i in range(cfg.noise_clips):
        material.add(noise_clip(i, cfg, pool[:2000]), UNKNOWN, "noise", "noise", "")
    log.info("material: %s", material.summary())
    return material


def copies_of(label: int, corpus: str, cfg: TrainConfig) -> int:
    if corpus == "voices":  # never trained on: the clean clip is all evaluation needs
        return 1
    if label == UNKNOWN:
        return cfg.word_copies
    return cfg.sc_digit_copies if corpus == "sc" else cfg.digit_copies


def augment(x: np.ndarray, cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """Trimmed speech as another voice, microphone and room say it: tape speed, a random
    microphone colouring, reverb, a peak level from far to near."""
    rate = cfg.features.sample_rate
    x = change_speed(x, rng.uniform(*cfg.speed_range), rate).astype(np.float64)
    if rng.random() < cfg.eq_prob:
        x = random_eq(x, rate, rng)
    if rng.random() < cfg.reverb_prob:
        x = reverberate(x, synthetic_rir(rng.uniform(0.1, 0.8), rate, rng))
    return x / (np.max(np.abs(x)) + 1e-12) * 10 ** (rng.uniform(*cfg.level_dbfs) / 20)


def in_room(audio: np.ndarray, speech: np.ndarray, cfg: TrainConfig,
            rng: np.random.Generator, pool: list[np.ndarray]) -> np.ndarray:
    """`audio` (the `speech` placed in quiet padding) in a noisy room, bed_prob of the time,
    at an SNR over the speech drawn from snr_db; clipped to [-1, 1]."""
    if rng.random() < cfg.bed_prob:
        bed = random_noise(audio.size, pool, rng)
        power = np.mean(speech**2) / 10 ** (rng.uniform(*cfg.snr_db) / 10)
        audio = audio + bed * np.sqrt(power / (np.mean(bed**2) + 1e-20))
    return np.clip(audio, -1.0, 1.0)


def render(wave: np.ndarray, cfg: TrainConfig, rng: np.random.Generator,
           pool: list[np.ndarray], clean: bool) -> np.ndarray:
    """One clip -> one window of audio for the classifier (features.utterance_window)."""
    f = cfg.features
    if clean:  # what `recognize --whole` computes
        return utterance_audio(wave, f)
    x = augment(trim_silence(check_waveform(wave), f), cfg, rng)
    return in_room(utterance_window(x, f, tail=rng.uniform(*cfg.tail_range)), x, cfg, rng,
                   pool)


_WORK: tuple[Material, TrainConfig, list[np.ndarray]] | None = None  # for forked workers


def _render_clip(i: int) -> np.ndarray:
    material, cfg, pool = _WORK
    out = []
    for copy in range(copies_of(material.labels[i], material.corpora[i], cfg)):
        rng = np.random.default_rng([cfg.seed, i, copy])
        window = render(material.waves[i], cfg, rng, pool, clean=copy == 0)
        out.append(log_mel(window, cfg.features))
    return np.stack(out).astype(np.float16)


def rendered_mels(material: Material, cfg: TrainConfig, pool: list[np.ndarray],
                  workers: int = 2) -> Iterator[tuple[int, np.ndarray]]:
    """(clip, mel windows of its copies) for every clip, rendered in `workers` processes."""
    global _WORK
    _WORK = (material, cfg, pool)
    try:
        if workers <= 1:
            yield from ((i, _render_clip(i)) for i in range(len(material)))
            return
        with multiprocessing.get_context("fork").Pool(workers) as processes:
            yield from enumerate(processes.imap(_render_clip, range(len(material)),
                                                chunksize=16))
    finally:
        _WORK = None


@dataclass
class Embedded:
    """The embeddings of every rendered window: row r is copy `copy[r]` of clip `clip[r]`."""

    x: np.ndarray  # float16 (windows, head_embeddings, 96)
    clip: np.ndarray
    copy: np.ndarray

    def rows(self, clips: np.ndarray, copies: str = "all") -> np.ndarray:
        """Rows of the given clip mask: "all" copies, "clean" (copy 0) or "augmented"."""
        keep = clips[self.clip]
        if copies == "clean":
            keep &= self.copy == 0
        elif copies == "augmented":
            keep &= self.copy > 0
        return np.flatnonzero(keep)


def embed_material(material: Material, cfg: TrainConfig, batch: int = 128) -> Embedded:
    """Render and embed every clip, or load the result of an identical earlier run."""
    key = hashlib.sha256(json.dumps([cfg.recipe(), material.fingerprint()],
                                    sort_keys=True, default=str).encode()).hexdigest()[:16]
    cache = Path(cfg.cache_dir) / f"embeddings-{key}.npz"
    if cache.is_file():
        with np.load(cache) as data:
            log.info("embeddings from cache %s", cache)
            return Embedded(data["x"], data["clip"], data["copy"])
    from tqdm import tqdm

    from .embedding import build_embedding

    model = build_embedding(cfg.features.n_mels)
    pool = [w for w, c, lab in zip(material.waves, material.corpora, material.labels,
                                   strict=True) if c == "sc" and lab == UNKNOWN][:2000]
    pool = pool or [w for w, c in zip(material.waves, material.corpora, strict=True)
                    if c != "noise"]
    xs, clips, copies, pending, owners = [], [], [], [], []

    def flush() -> None:
        mels = np.stack(pending).astype(np.float32)[..., None]
        xs.append(np.asarray(model(mels, training=False)).astype(np.float16))
        pending.clear()

    total = sum(copies_of(label, corpus, cfg)
                for label, corpus in zip(material.labels, material.corpora, strict=True))
    with tqdm(total=total, desc="render + embed", unit="window", leave=False) as bar:
        for i, mels in rendered_mels(material, cfg, pool):
            for copy, mel in enumerate(mels):
                pending.append(mel)
                owners.append((i, copy))
                if len(pending) == batch:
                    flush()
            bar.update(len(mels))
        if pending:
            flush()
    clips = np.array([o[0] for o in owners], dtype=np.int32)
    copies = np.array([o[1] for o in owners], dtype=np.int8)
    x = np.concatenate(xs)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, x=x, clip=clips, copy=copies)
    tmp.replace(cache)
    return Embedded(x, clips, copies)
