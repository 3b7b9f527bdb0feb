"""Connected digits: the strings stage, read from the embedding stream by a small CTC network.

People say a PIN fluently: "four-two-seven" with no pause reaches the daemon as one segment,
which the one-word head cannot read. The strings stage reads a segment's whole embedding
sequence (one vector every 80 ms) and emits per vector "nothing new" (the CTC blank), a digit
or "a word that is no digit"; collapsing the runs gives the string.

Material (all built from training's material, nothing new recorded):
  joined   isolated digit clips of one speaker (FSDD, TTS) or of several (Speech Commands:
           few digits each) joined with gaps from -80 ms (overlapped: fluent speech runs
           words together) to 400 ms; some with a word that is no digit among them
  words    strings of non-digit words only, and noise: the stage must say "no digit" there
  fluent   digit strings said whole by the TTS voices ("four two seven", "oh" for zero),
           some with a word that is no digit inside ("four cat seven"), and phrases of
           words that are no digit ("open the garden window"): talk must read as no digit
Each string is rendered once (speed, microphone colouring, room, a noisy room, level, quiet
before and after as features.string_audio pads a segment), embedded with the frozen
network, and cached like the one-word material. Speech Commands speakers for whom
held_out() is true are left out of it: the benchmark reads their strings as unheard voices.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from digitd.daemon.features import (
    FeatureConfig,
    check_waveform,
    log_mel,
    string_audio,
    trim_silence,
)
from digitd.daemon.model import STRING_TOKENS

from . import synth
from .config import TrainConfig
from .dataset import UNKNOWN, Material, augment, in_room

log = logging.getLogger(__name__)

BLANK = 0
WORD_TOKEN = STRING_TOKENS.index("unknown")  # a word that is no digit, inside a string
MAX_TOKENS = 10


@dataclass(frozen=True)
class StringConfig:
    joined: int = 12000  # strings built from isolated clips
    fluent_per_voice: int = 10  # digit strings each TTS voice says whole
    fluent_with_word: float = 0.25  # share of them with a non-digit word inside
    phrases_per_voice: int = 8  # phrases with no digit each TTS voice says
    fluent_copies: int = 2  # renditions of each fluent string
    lengths: tuple[float, ...] = (6, 14, 16, 16, 16, 14, 10, 8)  # weight of 1..8 digits
    with_word: float = 0.13  # share of joined strings with a non-digit word among the digits
    words_only: float = 0.15  # share that are non-digit words only
    noise_only: float = 0.06  # tones, music, noise and clicks, up to a few seconds of them
    gap_s: tuple[float, float] = (-0.08, 0.4)
    lead_s: tuple[float, float] = (0.1, 0.5)  # quiet before: the segmenter's pre-roll varies
    tail_s: tuple[float, float] = (0.15, 0.6)
    # network (not part of the cached material)
    width: int = 96
    layers: int = 5  # kernel-5 convolutions: each output hears 21 vectors (1.7 s)
    dropout: float = 0.2
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 2e-3
    min_confidence: float = 0.6  # a string with a token read less surely is rejected


    def recipe(self) -> dict:
        """What changes the rendered strings: the cache key."""
        out = asdict(self)
        for key in ("width", "layers", "dropout", "epochs", "batch_size", "learning_rate",
                    "min_confidence"):
            out.pop(key)
        return out


def quick_strings(**overrides) -> StringConfig:
    base = StringConfig(joined=160, fluent_per_voice=1, phrases_per_voice=1, fluent_copies=1,
                        epochs=2)
    return StringConfig(**{**asdict(base), **overrides})


def held_out(speaker: str) -> bool:
    """Speech Commands speakers the strings stage never trains on (a fifth, by name)."""
    if not speaker.startswith("sc:"):
        return False
    return int(hashlib.sha1(speaker.encode()).hexdigest()[:8], 16) % 5 == 0


# Short words of everyday phrases, none a digit's homophone ("to", "for" are left out).
FUNCTION_WORDS = ("the a an is it in on at my your this that what where when how please and "
                  "or of with from turn set call open close play check").split()


def tokens_of(said: list[int | None]) -> list[int]:
    """Digits (None: a word that is no digit) -> CTC targets: each digit, and one
    WORD_TOKEN per run of other words (how many short words a phrase has does not matter;
    that it has one does)."""
    out: list[int] = []
    for d in said:
        token = WORD_TOKEN if d is None else STRING_TOKENS.index(str(d))
        if not (token == WORD_TOKEN and out and out[-1] == WORD_TOKEN):
            out.append(token)
    return out


def fluent_text(digits: list[int], rng: np.random.Generator) -> str:
    names = [("oh" if d == 0 and rng.random() < 0.3 else synth.DIGIT_WORDS[d]) for d in digits]
    return " ".join(names)


def fluent_strings(rng: np.random.Generator, scfg: StringConfig, words: list[str]
                   ) -> list[tuple[str, list[int | None]]]:
    """(text, what it says) for one voice: digit strings, some with a word inside, and
    phrases of words that are no digit."""
    weights = np.array(scfg.lengths[1:]) / np.sum(scfg.lengths[1:])
    out = []
    for _ in range(scfg.fluent_per_voice):
        said: list[int | None] = [int(d) for d in rng.integers(0, 10, size=int(
            rng.choice(len(weights), p=weights)) + 2)]
        text = fluent_text([d for d in said if d is not None], rng).split()
        if rng.random() < scfg.fluent_with_word:
            at = int(rng.integers(1, len(said)))
            said.insert(at, None)
            text.insert(at, str(rng.choice(words)))
        out.append((" ".join(text), said))
    vocabulary = [*words, *FUNCTION_WORDS]
    for _ in range(scfg.phrases_per_voice):
        text = [str(rng.choice(vocabulary)) for _ in range(int(rng.integers(2, 7)))]
        out.append((" ".join(text), [None] * len(text)))
    return out


@dataclass
class Pools:
    """Clip indices of the material by what a string can take from them."""

    by_corpus_digit: dict[str, list[list[int]]]  # corpus -> digit -> clips
    by_speaker: dict[str, list[list[int]]]  # one-speaker corpora: speaker -> digit -> clips
    words: list[int]
    noise: list[int]

    @classmethod
    def of(cls, material: Material) -> Pools:
        corpus_digit: dict[str, list[list[int]]] = {}
        speaker: dict[str, list[list[int]]] = {}
        words, noise = [], []
        for i, (label, who, corpus) in enumerate(zip(material.labels, material.speakers,
                                                     material.corpora, strict=True)):
            if corpus == "voices" or held_out(who):
                continue
            if corpus == "noise":
                noise.append(i)
            elif label == UNKNOWN:
                words.append(i)
            else:
                corpus_digit.setdefault(corpus, [[] for _ in range(10)])[label].append(i)
                if corpus != "sc":
                    speaker.setdefault(who, [[] for _ in range(10)])[label].append(i)
        speaker = {k: v for k, v in speaker.items() if all(v)}
        return cls(corpus_digit, speaker, words, noise)


def compose(i: int, material: Material, pools: Pools, cfg: StringConfig, f: FeatureConfig,
            seed: int) -> tuple[np.ndarray, list[int]]:
    """String i: trimmed clips joined at random gaps, and its tokens."""
    rng = np.random.default_rng([seed, 91, i])
    kind = rng.random()
    if kind < cfg.noise_only:  # a radio's tones or music run on: a few sounds in a row
        picks = [int(rng.choice(pools.noise)) for _ in range(int(rng.integers(1, 4)))]
        return np.concatenate([check_waveform(material.waves[p]) for p in picks]), []
    if kind < cfg.noise_only + cfg.words_only:
        picks = [int(rng.choice(pools.words)) for _ in range(int(rng.integers(1, 5)))]
        return _join(material, picks, rng, cfg, f), tokens_of([None] * len(picks))
    weights = np.array(cfg.lengths) / np.sum(cfg.lengths)
    digits = list(rng.integers(0, 10, size=int(rng.choice(len(weights), p=weights)) + 1))
    corpus = str(rng.choice(["fsdd", "sc", "tts"], p=[0.35, 0.35, 0.3]))
    if corpus == "sc" or corpus not in pools.by_corpus_digit:
        table = pools.by_corpus_digit.get(corpus) or next(iter(pools.by_corpus_digit.values()))
    else:
        names = sorted(k for k in pools.by_speaker if k.startswith(corpus + ":"))
        table = pools.by_speaker[names[int(rng.integers(len(names)))]] if names else \
            pools.by_corpus_digit[corpus]
    said: list[int | None] = [int(d) for d in digits if table[d]]
    picks = [int(rng.choice(table[d])) for d in digits if table[d]]
    if picks and rng.random() < cfg.with_word / (1 - cfg.noise_only - cfg.words_only):
        at = int(rng.integers(0, len(picks) + 1))
        picks.insert(at, int(rng.choice(pools.words)))
        said.insert(at, None)
    return _join(material, picks, rng, cfg, f), tokens_of(said)


def _join(material: Material, picks: list[int], rng: np.random.Generator, cfg: StringConfig,
          f: FeatureConfig) -> np.ndarray:
    """Trimmed clips in a row at gaps drawn per string (fluent, short or mixed), each a few
    dB louder or softer than the last, as one speaker's words are."""
    rate = f.sample_rate
    parts = [trim_silence(check_waveform(material.waves[p]), f) for p in picks]
    parts = [p / (np.sqrt(np.mean(p**2)) + 1e-9) * 10 ** (rng.uniform(-4, 4) / 20)
             for p in parts]
    low, high = cfg.gap_s
    style = rng.integers(3)
    span = ((low, 0.03), (0.0, 0.15), (low, high))[style]
    gaps = [int(rng.uniform(*span) * rate) for _ in parts[1:]]
    total = sum(p.size for p in parts) + sum(gaps) + rate
    out = np.zeros(max(total, 1))
    at = 0
    for k, part in enumerate(parts):
        if k:
            at = max(0, at + gaps[k - 1])
        out[at : at + part.size] += part
        at += part.size
    return out[:at]


def render_string(x: np.ndarray, cfg: TrainConfig, scfg: StringConfig,
                  rng: np.random.Generator, pool: list[np.ndarray]) -> np.ndarray:
    """Joined speech -> audio as the daemon hands a segment to the strings stage, augmented
    as the one-word material is."""
    f = cfg.features
    x = augment(x, cfg, rng)
    audio = string_audio(x, f, f.pad_dbfs, rng.uniform(*scfg.lead_s), rng.uniform(*scfg.tail_s))
    return in_room(audio, x, cfg, rng, pool)


_WORK: tuple | None = None  # for forked workers


def _render(i: int) -> tuple[np.ndarray, list[int], str]:
    material, pools, cfg, scfg, pool, fluent = _WORK
    rng = np.random.default_rng([cfg.seed, 92, i])
    if i < scfg.joined:
        x, tokens = compose(i, material, pools, scfg, cfg.features, cfg.seed)
        kind = "joined"
    else:
        wave, tokens = fluent[(i - scfg.joined) // scfg.fluent_copies]
        x, kind = trim_silence(check_waveform(wave), cfg.features), "fluent"
    mel = log_mel(render_string(x, cfg, scfg, rng, pool), cfg.features)
    return mel.astype(np.float16), tokens, kind


def fluent_material(cfg: TrainConfig, scfg: StringConfig
                    ) -> list[tuple[np.ndarray, list[int]]]:
    """(wave, tokens) of what the training TTS voices say whole."""
    from .dataset import tts_words

    rng = np.random.default_rng([cfg.seed, 93])
    voices = synth.default_voices(cfg.seed)
    if cfg.limit_per_class is not None:
        voices = voices[:: max(1, len(voices) // 4)]
    words = tts_words()
    out = []
    for voice in voices:
        texts = fluent_strings(rng, scfg, words)
        said = synth.synthesize([voice], [t for t, _ in texts], cfg.features.sample_rate,
                                cfg.cache_dir / "synth")
        by_text = {text: wave for _, text, wave in said}
        out += [(by_text[t], tokens_of(s)) for t, s in texts if t in by_text]
    return out


@dataclass
class Strings:
    """Embedded strings: string k is x[offsets[k]:offsets[k + 1]], its tokens likewise."""

    x: np.ndarray  # float16 (total vectors, 96)
    offsets: np.ndarray
    tokens: np.ndarray
    token_offsets: np.ndarray
    kinds: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def item(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        return (self.x[self.offsets[k] : self.offsets[k + 1]],
                self.tokens[self.token_offsets[k] : self.token_offsets[k + 1]])


def embed_strings(material: Material, cfg: TrainConfig, scfg: StringConfig) -> Strings:
    """Render and embed every string, or load an identical earlier run's."""
    key = hashlib.sha256(json.dumps([cfg.recipe(), scfg.recipe(), material.fingerprint()],
                                    sort_keys=True, default=str).encode()).hexdigest()[:16]
    cache = Path(cfg.cache_dir) / f"strings-{key}.npz"
    if cache.is_file():
        with np.load(cache) as data:
            log.info("strings from cache %s", cache)
            return Strings(*(data[k] for k in ("x", "offsets", "tokens", "token_offsets",
                                               "kinds")))
    strings = _embed_all(material, cfg, scfg)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **asdict(strings))
    tmp.replace(cache)
    return strings


def _embed_all(material: Material, cfg: TrainConfig, scfg: StringConfig) -> Strings:
    global _WORK
    from tqdm import tqdm

    from .embedding import build_embedding

    fluent = fluent_material(cfg, scfg)
    pools = Pools.of(material)
    pool = [material.waves[i] for i in pools.words[:2000]]
    _WORK = (material, pools, cfg, scfg, pool, fluent)
    total = scfg.joined + len(fluent) * scfg.fluent_copies
    model = build_embedding(cfg.features.n_mels)
    vectors: list[np.ndarray | None] = [None] * total
    tokens: list[list[int]] = [[] for _ in range(total)]
    kinds = [""] * total
    buckets: dict[int, list[tuple[int, np.ndarray]]] = {}

    def flush(frames: int) -> None:
        batch = buckets.pop(frames)
        mels = np.stack([m for _, m in batch]).astype(np.float32)[..., None]
        out = np.asarray(model(mels, training=False)).astype(np.float16)
        for (k, _), v in zip(batch, out, strict=True):
            vectors[k] = v

    try:
        with multiprocessing.get_context("fork").Pool(2) as workers, \
                tqdm(total=total, desc="strings: render + embed", unit="string",
                     leave=False) as bar:
            for k, (mel, toks, kind) in enumerate(workers.imap(_render, range(total),
                                                               chunksize=16)):
                tokens[k], kinds[k] = toks, kind
                buckets.setdefault(mel.shape[0], []).append((k, mel))
                if len(buckets[mel.shape[0]]) == 32:
                    flush(mel.shape[0])
                bar.update()
            for frames in list(buckets):
                flush(frames)
    finally:
        _WORK = None
    lengths = [v.shape[0] for v in vectors]
    return Strings(np.concatenate(vectors), np.concatenate(([0], np.cumsum(lengths))),
                   np.array([t for ts in tokens for t in ts], dtype=np.int8),
                   np.concatenate(([0], np.cumsum([len(t) for t in tokens]))),
                   np.array(kinds))
