"""Training settings: one place, each with why it is what it is."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from digitd.daemon.features import FeatureConfig


@dataclass(frozen=True)
class TrainConfig:
    fsdd: Path | None = None  # FSDD folder; None finds ../shared/data/fsdd or the download
    speech_commands: Path | None = None  # None: ../shared/data/speech_commands
    cache_dir: Path = Path.home() / ".cache" / "digitd"  # TTS audio and embedding caches
    seed: int = 1234
    features: FeatureConfig = field(default_factory=FeatureConfig)

    # Material
    tts_words_per_voice: int = 6  # voices saying each non-digit word: variety over volume
    tts_hard_negative_voices: int = 8  # voices saying each digit-like word: more of them
    # took accented real digits for "not a digit" (FSDD's nicolas: "zero" as "hero")
    noise_clips: int = 1500  # noise, tones, music, clicks, silence: sounds that are no word
    limit_per_class: int | None = None  # first N clips per FSDD digit/speaker, SC word (tests)

    # Renditions embedded once and cached (copy 0 is the clean clip, as `recognize --whole`
    # sees it; the others are augmented). Digits get more: they are fewer and must vary most.
    digit_copies: int = 4
    sc_digit_copies: int = 12  # Speech Commands' digits are few, and the most varied voices
    word_copies: int = 2
    snr_db: tuple[float, float] = (0.0, 30.0)  # background noise over the whole window
    bed_prob: float = 0.75  # share of augmented copies in a noisy room (else digital silence)
    tail_range: tuple[float, float] = (0.0, 0.5)  # word end -> window end, as a VAD leaves it
    reverb_prob: float = 0.4
    speed_range: tuple[float, float] = (0.85, 1.2)  # tape speed: pitch and formants with it
    eq_prob: float = 0.5  # a random microphone colouring
    level_dbfs: tuple[float, float] = (-40.0, -1.0)  # peak level: a far or near microphone

    # Head
    heads: int = 3  # averaged: fewer false accepts and Speech Commands misses than one
    width: int = 64  # channels of the head's convolutions: ~25k weights
    dropout: float = 0.3
    # drops single values of the normalized embeddings before the head reads them: it cannot
    # lean on the few dimensions where FSDD's six men differ from everyone else
    input_dropout: float = 0.2
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 2e-3
    label_smoothing: float = 0.05  # crowd-sourced labels are sometimes wrong
    unknown_share: float = 0.25  # weight of "not a digit" in the loss, against the ten digits
    # each corpus's share of the digits' weight: FSDD's six men are most of the clips, but the
    # many real people of Speech Commands are who the product must hear
    digit_shares: tuple[tuple[str, float], ...] = (("fsdd", 0.3), ("sc", 0.4), ("tts", 0.3))

    # Evaluation: folds hold out speakers of every corpus, TTS voices and word types at once
    folds: int = 6  # FSDD has six speakers: fold k holds out the k-th
    false_accept_cost: float = 2.0  # a digit nobody said costs this many missed digits
    # Tape speeds each word is classified at, the head's probabilities averaged (the model's
    # "speeds"): a voice the head heard too little of is nearer to ones it heard at one of
    # them. One embedding pass each; the folds are scored and the rule calibrated with them.
    test_speeds: tuple[float, ...] = (0.9, 1.0, 1.1)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("fsdd", "speech_commands", "cache_dir"):
            out[key] = None if out[key] is None else str(out[key])
        return out

    def recipe(self) -> dict[str, Any]:
        """What changes the embedded material (the cache key): no paths, no head settings."""
        keys = ("seed", "tts_words_per_voice", "tts_hard_negative_voices", "noise_clips",
                "limit_per_class", "digit_copies", "sc_digit_copies", "word_copies", "snr_db",
                "bed_prob", "tail_range", "reverb_prob", "speed_range", "eq_prob", "level_dbfs")
        out = {k: getattr(self, k) for k in keys}
        out["features"] = asdict(self.features)
        return out


def quick_config(**overrides: Any) -> TrainConfig:
    """A small, fast configuration for tests and smoke runs."""
    base = TrainConfig(limit_per_class=3, tts_words_per_voice=1, tts_hard_negative_voices=1,
                       noise_clips=40, digit_copies=2, word_copies=1, epochs=3, folds=2,
                       heads=2)
    return replace(base, **overrides)
