"""Leave-one-speaker-out evaluation: the honest measure of accuracy on a voice never heard.

For each FSDD speaker: train on the other five (plus synthetic voices), export int8, and
test the float and int8 models on the held-out speaker's 500 files and on non-digit
material the fold never saw (held-out words in every synthetic voice, noise, tones), each
also once more with noise added, since users' rooms are not quiet; and on digits and
held-out words by synthetic voices no training used, since users are not FSDD's six men.
Those three conditions, weighted equally, calibrate the rejection rule shipped with the model.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from digitd.daemon.model import DigitClassifier, RejectionRule

from . import synth
from .augment import add_noise, babble, coloured_noise
from .config import TrainConfig, UnknownMix
from .data import SPEAKERS, Utterances
from .dataset import (
    LABELS,
    UNKNOWN,
    Corpus,
    build_corpus,
    clean_features,
    tts_clips,
    unknown_waveform,
)
from .export import rejection_metadata, to_int8_tflite, write_model
from .train import train_model

log = logging.getLogger(__name__)


@dataclass
class FoldResult:
    speaker: str
    truth: np.ndarray  # digit labels of the held-out speaker's files
    float_probs: np.ndarray  # one pass over the features
    int8_probs: np.ndarray  # as the runtime: averaged over the test-time speeds
    negative_float: np.ndarray  # probabilities on held-out non-digit material
    negative_int8: np.ndarray
    noisy_int8_probs: np.ndarray  # the held-out files again, one noisy copy each
    negative_noisy_int8: np.ndarray
    voices_truth: np.ndarray  # digits by this fold's share of synth.calibration_voices
    voices_int8_probs: np.ndarray
    voices_negative_int8: np.ndarray  # held-out words by the same voices
    int8_one_pass_probs: np.ndarray  # one pass, as float_probs: the int8/float agreement


# The held-out noise, tones and clicks are drawn with these shares, spelled out rather than
# taken from the training default, so that changing how training mixes its non-digit
# examples never changes what every LOSO run is scored on.
HELDOUT_MIX = UnknownMix(words=0.45, reversed_digits=0.15, word_joins=0.10, fsdd_splices=0.0,
                         noise=0.15, tones=0.08, music=0.0, clicks=0.07)


def heldout_words(cfg: TrainConfig, fold: int, n_folds: int) -> frozenset[str]:
    """The non-digit words this fold never trains on and is scored on."""
    return synth.fold_heldout_words(fold, n_folds) if cfg.word_folds else synth.HELDOUT_WORDS


def heldout_negatives(fsdd_test: Utterances, cfg: TrainConfig, fold: int,
                      n_folds: int) -> list[np.ndarray]:
    """Non-digit material this fold never trained on: held-out words, noise, tones, clicks."""
    waves = []
    if cfg.use_tts:
        words = sorted(heldout_words(cfg, fold, n_folds))
        waves += [w for _, _, w in tts_clips(cfg, words)]
    rng = np.random.default_rng([cfg.seed, 999, fold])
    babble_source = Corpus(digit_waves=fsdd_test.waves)  # babble from the held-out voice
    n_noise = 0
    while n_noise < 200:
        wave, speechy, _ = unknown_waveform(babble_source, cfg.features.sample_rate, rng,
                                         HELDOUT_MIX)
        if not speechy:  # keep only the noise, tone and click kinds
            waves.append(wave)
            n_noise += 1
    return waves


# Noise is scaled to the whole clip, word and its silence, so the SNR over the word itself
# is a few dB higher: about 10-30 dB, a quiet to a loud room.
NOISY_SNR_DB = (5.0, 25.0)


def noisy_copies(waves: list[np.ndarray], babble_pool: list[np.ndarray],
                 rng: np.random.Generator) -> list[np.ndarray]:
    """Each wave with white, pink or babble noise at a random SNR in NOISY_SNR_DB."""
    out = []
    for wave in waves:
        kind = rng.integers(3)
        noise = (babble(wave.size, babble_pool, rng, talkers=int(rng.integers(3, 8))) if kind == 2
                 else coloured_noise(wave.size, float(kind), rng))
        out.append(add_noise(wave, noise, rng.uniform(*NOISY_SNR_DB)).astype(np.float32))
    return out


def int8_probabilities(model_path: Path, features: np.ndarray) -> np.ndarray:
    """One pass of the int8 model over features already computed."""
    classifier = DigitClassifier(model_path)
    return np.stack([classifier.probabilities(f[:, :, 0]) for f in features])


def runtime_probabilities(model_path: Path, waves: list[np.ndarray],
                          speeds: tuple[float, ...]) -> np.ndarray:
    """The int8 model on whole utterances as the runtime scores them, at these speeds."""
    if not waves:
        return np.zeros((0, len(LABELS)), dtype=np.float32)
    classifier = DigitClassifier(model_path)
    classifier.test_time_speeds = tuple(speeds)
    return np.stack([classifier.utterance_probabilities(w) for w in waves])


def calibration_voice_clips(cfg: TrainConfig, fold: int, n_folds: int
                            ) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """(digit waves, their digits, held-out word waves) by this fold's share of the
    calibration voices: no fold and no final model trains on those voices."""
    if not cfg.use_tts:
        return [], np.zeros(0, dtype=int), []
    voices = synth.calibration_voices(cfg.seed)[fold::n_folds]
    texts = list(synth.DIGIT_WORDS) + sorted(heldout_words(cfg, fold, n_folds))
    clips = synth.synthesize(voices, texts, cfg.features.sample_rate, cfg.cache_dir / "synth")
    digits = [(synth.DIGIT_WORDS.index(t), w) for _, t, w in clips if t in synth.DIGIT_WORDS]
    words = [w for _, t, w in clips if t not in synth.DIGIT_WORDS]
    return [w for _, w in digits], np.array([d for d, _ in digits], dtype=int), words


def shifted_int8_probabilities(model_path: Path, test_set: Utterances,
                               negatives: list[np.ndarray], cfg: TrainConfig, fold: int,
                               n_folds: int) -> dict[str, np.ndarray]:
    """The fold model, as the runtime runs it, on the held-out material as recorded and
    moved away from FSDD's quiet room and six voices: FoldResult's int8_probs,
    negative_int8, noisy_* and voices_* arrays. Seeded by the fold alone, so saved fold
    models can be scored again (--repredict)."""
    rng = np.random.default_rng([cfg.seed, 998, fold])
    digits = noisy_copies(list(test_set.waves), list(test_set.waves), rng)
    others = noisy_copies(negatives, list(test_set.waves), rng)
    voice_digits, voice_truth, voice_words = calibration_voice_clips(cfg, fold, n_folds)

    def score(waves: list[np.ndarray]) -> np.ndarray:
        return runtime_probabilities(model_path, waves, cfg.test_time_speeds)

    return {"int8_probs": score(list(test_set.waves)), "negative_int8": score(negatives),
            "noisy_int8_probs": score(digits), "negative_noisy_int8": score(others),
            "voices_truth": voice_truth, "voices_int8_probs": score(voice_digits),
            "voices_negative_int8": score(voice_words)}


def run_fold(fsdd: Utterances, speaker: str, cfg: TrainConfig, out_dir: Path,
             fold: int, n_folds: int) -> FoldResult:
    train_mask = np.array([s != speaker for s in fsdd.speakers])
    train_set, test_set = fsdd.subset(train_mask), fsdd.subset(~train_mask)
    corpus = build_corpus(train_set, cfg, heldout_words(cfg, fold, n_folds))
    log.info("fold %s: %s", speaker, corpus.summary())
    model = train_model(corpus, cfg, desc=f"fold {speaker}")
    test_x = clean_features(test_set.waves, cfg)
    negative_waves = heldout_negatives(test_set, cfg, fold, n_folds)
    negatives = clean_features(negative_waves, cfg)
    representative = clean_features(train_set.waves, cfg)
    rng = np.random.default_rng(cfg.seed)
    representative = representative[rng.permutation(len(representative))[
        : cfg.representative_samples]]
    tflite = to_int8_tflite(model, representative)
    path = write_model(
        tflite, out_dir / f"fold-{speaker}.tflite", labels=LABELS,
        features=cfg.features.to_dict(), rejection=RejectionRule(0.0), rejection_note="fold model",
        train_config=cfg.to_dict(), data_hash="", loso=None,
        test_time_speeds=cfg.test_time_speeds, recorded_voices=corpus.recorded_voices,
    )
    result = FoldResult(
        speaker=speaker,
        truth=np.array(test_set.digits),
        float_probs=model.predict(test_x, verbose=0, batch_size=256),
        negative_float=model.predict(negatives, verbose=0, batch_size=256),
        int8_one_pass_probs=int8_probabilities(path, test_x),
        **shifted_int8_probabilities(path, test_set, negative_waves, cfg, fold, n_folds),
    )
    log.info("fold %s: int8 arg-max accuracy %.2f%%, float %.2f%%", speaker,
             100 * np.mean(np.argmax(result.int8_probs, 1) == result.truth),
             100 * np.mean(np.argmax(result.float_probs, 1) == result.truth))
    return result


def decisions(probs: np.ndarray, rule: RejectionRule) -> np.ndarray:
    """Predicted digit per row, -1 where rejected: the runtime's own rule."""
    return rule.digits(probs, LABELS) if len(probs) else np.zeros(0, dtype=int)


def false_accept_rate(probs: np.ndarray, rule: RejectionRule) -> float:
    return float(np.mean(decisions(probs, rule) >= 0)) if len(probs) else 0.0


@dataclass
class Calibration:
    rule: RejectionRule
    note: str
    rates: dict[str, Any]  # per condition, its rates under the chosen rule; and the cost


def outcome_rates(rule: RejectionRule, probs: np.ndarray, truth: np.ndarray,
                  negatives: np.ndarray) -> dict[str, float]:
    said = decisions(probs, rule)
    return {"false_accept": false_accept_rate(negatives, rule),
            "wrong_digit": float(np.mean((said >= 0) & (said != truth))),
            "rejected_digit": float(np.mean(said < 0))}


MIN_CONFIDENCE_GRID = np.round(np.arange(0.0, 0.96, 0.01), 2)
# 1.0 keeps the plain top-label rule among the candidates.
MAX_UNKNOWN_GRID = np.round([*np.arange(0.02, 0.51, 0.01), 1.0], 2)


def conditions(folds: list[FoldResult]) -> dict[str, tuple[np.ndarray, ...]]:
    """Pooled (digit probabilities, their truth, non-digit probabilities) per condition the
    folds were scored in; a condition with no digits (a run without TTS) is left out."""
    out = {
        "clean": ([f.int8_probs for f in folds], [f.truth for f in folds],
                  [f.negative_int8 for f in folds]),
        "noisy": ([f.noisy_int8_probs for f in folds],
                  [f.truth[: len(f.noisy_int8_probs)] for f in folds],
                  [f.negative_noisy_int8 for f in folds]),
        "voices": ([f.voices_int8_probs for f in folds], [f.voices_truth for f in folds],
                   [f.voices_negative_int8 for f in folds]),
    }
    pooled = {name: tuple(np.concatenate(parts) for parts in arrays)
              for name, arrays in out.items()}
    return {name: arrays for name, arrays in pooled.items() if len(arrays[0])}


def calibrate_rejection(folds: list[FoldResult], false_accept_cost: float) -> Calibration:
    """The rule on a grid of (best probability, p(unknown)) minimizing false_accept_cost x
    (share of printed digits nobody said: non-digit clips accepted plus digits printed as
    another digit) + share of digits rejected, averaged over the conditions the held-out
    material was scored in: FSDD's held-out speakers clean, the same with noise, and
    synthetic voices no training used. A wrong digit is a digit nobody said, so it costs
    the same as a false accept. Each condition weighs the same: a rule that only works on
    FSDD's six men in a quiet room is not the rule users need."""
    pooled = conditions(folds)

    def rates_of(rule: RejectionRule) -> dict[str, dict[str, float]]:
        return {name: outcome_rates(rule, *arrays) for name, arrays in pooled.items()}

    def cost(rule: RejectionRule) -> float:
        return float(np.mean([false_accept_cost * (r["false_accept"] + r["wrong_digit"])
                              + r["rejected_digit"] for r in rates_of(rule).values()]))

    scored = [(cost(rule), rule) for rule in (RejectionRule(float(t), float(u))
                                              for t in MIN_CONFIDENCE_GRID
                                              for u in MAX_UNKNOWN_GRID)]
    best = min(c for c, _ in scored)
    # Among equally good rules, the one that prints the fewest digits nobody said.
    rule = min((r for c, r in scored if c <= best + 1e-12),
               key=lambda r: sum(x["false_accept"] for x in rates_of(r).values()))
    rates: dict[str, Any] = {**rates_of(rule), "cost": cost(rule)}
    sizes = ", ".join(f"{name} ({len(a[0])} digits, {len(a[2])} non-digit clips)"
                      for name, a in pooled.items())
    note = (f"best probability in [0, 0.95] and p(unknown) in [0.02, 0.5] or 1.0, minimizing "
            f"{false_accept_cost:g} x (non-digit clips accepted + digits printed wrongly) + "
            f"digits rejected, averaged over held-out conditions: {sizes}; noisy = white, "
            f"pink or babble at {NOISY_SNR_DB[0]:g}-{NOISY_SNR_DB[1]:g} dB SNR over the clip; "
            f"voices = synthetic voices no training used; int8, {len(folds)} LOSO folds")
    return Calibration(rule, note, rates)


def confusion(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """10 x 11 counts: rows truth digit, columns predicted digit or rejected (last)."""
    matrix = np.zeros((10, 11), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        matrix[t, p if p >= 0 else 10] += 1
    return matrix


def summarize(folds: list[FoldResult], calibration: Calibration) -> dict[str, Any]:
    rule = calibration.rule
    per_speaker: dict[str, Any] = {}
    for f in folds:
        fl, q = decisions(f.float_probs, rule), decisions(f.int8_probs, rule)
        per_speaker[f.speaker] = {
            "files": int(f.truth.size),
            "float_accuracy": float(np.mean(fl == f.truth)),
            "int8_accuracy": float(np.mean(q == f.truth)),
            "int8_argmax_accuracy": float(np.mean(np.argmax(f.int8_probs, 1) == f.truth)),
            "int8_rejected": float(np.mean(q < 0)),
            "int8_float_agreement": float(np.mean(
                np.argmax(f.int8_one_pass_probs, 1) == np.argmax(f.float_probs, 1))),
            "nondigit_false_accept_int8": false_accept_rate(f.negative_int8, rule),
            "noisy_int8_accuracy": float(np.mean(
                decisions(f.noisy_int8_probs, rule) == f.truth[: len(f.noisy_int8_probs)])),
            "noisy_nondigit_false_accept_int8": false_accept_rate(f.negative_noisy_int8, rule),
        }
    truth = np.concatenate([f.truth for f in folds])
    int8_pred = np.concatenate([decisions(f.int8_probs, rule) for f in folds])
    negatives = np.concatenate([f.negative_int8 for f in folds])
    neg_argmax_unknown = float(np.mean(np.argmax(negatives, 1) == UNKNOWN))

    def stat(key: str) -> dict[str, float]:
        values = [s[key] for s in per_speaker.values()]
        return {"mean": float(np.mean(values)), "worst": float(np.min(values))}

    return {
        "threshold": rule.min_confidence,
        "unknown_threshold": rule.max_unknown,
        "rejection_rule": rule.describe(),
        "threshold_calibration": calibration.note,
        "calibration_rates_int8": calibration.rates,
        "per_speaker": per_speaker,
        "float_accuracy": stat("float_accuracy"),
        "int8_accuracy": stat("int8_accuracy"),
        "noisy_int8_accuracy": stat("noisy_int8_accuracy"),
        "int8_float_agreement": float(np.mean([s["int8_float_agreement"]
                                               for s in per_speaker.values()])),
        "nondigit_rejection_rate_int8": 1.0 - false_accept_rate(negatives, rule),
        "nondigit_argmax_unknown_rate_int8": neg_argmax_unknown,
        "nondigit_clips": int(len(negatives)),
        "confusion_int8": confusion(truth, int8_pred).tolist(),
        "confusion_columns": [*map(str, range(10)), "rejected"],
    }


def plot_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    matrix = np.array(report["confusion_int8"])
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(matrix / np.maximum(matrix.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if count > matrix.sum(1)[i] * 0.5 else "black")
    ax.set_xticks(range(11), report["confusion_columns"])
    ax.set_yticks(range(10), [str(d) for d in range(10)])
    ax.set_xlabel("predicted (int8, with rejection)")
    ax.set_ylabel("spoken digit")
    ax.set_title("LOSO confusion matrix, all six held-out speakers")
    fig.tight_layout()
    paths.append(out_dir / "loso_confusion.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    speakers = list(report["per_speaker"])
    fig, ax = plt.subplots(figsize=(8, 4))
    xs = np.arange(len(speakers))
    for offset, key, label in ((-0.2, "float_accuracy", "float"), (0.2, "int8_accuracy", "int8")):
        values = [report["per_speaker"][s][key] * 100 for s in speakers]
        ax.bar(xs + offset, values, width=0.4, label=label)
    ax.set_xticks(xs, speakers)
    ax.set_ylim(min(50, min(report["per_speaker"][s]["int8_accuracy"] * 100
                            for s in speakers) - 5), 100)
    ax.set_ylabel("accuracy on the held-out speaker (%)")
    ax.set_title("Leave-one-speaker-out accuracy per speaker")
    ax.legend(loc="lower right")
    fig.tight_layout()
    paths.append(out_dir / "loso_speakers.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


FOLD_ARRAYS = ("truth", "float_probs", "int8_probs", "negative_float", "negative_int8",
               "noisy_int8_probs", "negative_noisy_int8", "voices_truth", "voices_int8_probs",
               "voices_negative_int8", "int8_one_pass_probs")


def report_folds(folds: list[FoldResult], cfg: TrainConfig, out_dir: Path) -> dict[str, Any]:
    """Calibrate the rejection rule on the folds, write it into the fold models, and write
    loso.json, the raw predictions and the plots."""
    calibration = calibrate_rejection(folds, cfg.false_accept_cost)
    for f in folds:  # fold models carry the calibrated rule too (the benchmarks use them)
        meta_path = out_dir / "loso" / f"fold-{f.speaker}.json"
        meta = json.loads(meta_path.read_text())
        meta["rejection"] = rejection_metadata(calibration.rule, calibration.note)
        meta["test_time_speeds"] = list(cfg.test_time_speeds)
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    report = summarize(folds, calibration)
    report["test_time_speeds"] = list(cfg.test_time_speeds)
    report["config"] = cfg.to_dict()
    (out_dir / "loso.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    np.savez_compressed(out_dir / "loso" / "predictions.npz", speakers=[f.speaker for f in folds],
             **{f"{f.speaker}_{k}": getattr(f, k) for f in folds for k in FOLD_ARRAYS})
    plot_report(report, out_dir)
    return report


def run_loso(fsdd: Utterances, cfg: TrainConfig, out_dir: Path,
             speakers: list[str] | None = None) -> dict[str, Any]:
    from tqdm import tqdm

    out_dir = Path(out_dir)
    (out_dir / "loso").mkdir(parents=True, exist_ok=True)
    speakers = speakers or [s for s in SPEAKERS if s in set(fsdd.speakers)]
    folds = [run_fold(fsdd, s, cfg, out_dir / "loso", i, len(speakers))
             for i, s in enumerate(tqdm(speakers, desc="LOSO folds", unit="fold"))]
    return report_folds(folds, cfg, out_dir)


def saved_folds(out_dir: Path) -> list[FoldResult]:
    """The saved fold predictions, in the order the folds ran (their seeds follow it)."""
    saved = np.load(Path(out_dir) / "loso" / "predictions.npz")
    speakers = ([str(s) for s in saved["speakers"]] if "speakers" in saved
                else [s for s in SPEAKERS if f"{s}_truth" in saved])

    def missing(speaker: str, key: str) -> np.ndarray:  # runs saved before these arrays
        if key == "int8_one_pass_probs" and f"{speaker}_int8_probs" in saved:
            return saved[f"{speaker}_int8_probs"]  # runs before test-time speeds: one pass
        return (np.zeros(0, dtype=int) if key.endswith("truth")
                else np.zeros((0, len(LABELS)), dtype=np.float32))

    return [FoldResult(s, *(saved.get(f"{s}_{k}", missing(s, k)) for k in FOLD_ARRAYS))
            for s in speakers]


def recalibrate(cfg: TrainConfig, out_dir: Path) -> dict[str, Any]:
    """Redo calibration and the report from saved fold predictions, without training."""
    return report_folds(saved_folds(out_dir), cfg, Path(out_dir))


def repredict(fsdd: Utterances, cfg: TrainConfig, out_dir: Path) -> dict[str, Any]:
    """Score the saved fold models again on the noisy copies and the calibration voices (for
    runs saved before those existed), then recalibrate. Uses the same held-out material and
    seeds as run_loso."""
    folds = saved_folds(out_dir)
    for fold, f in enumerate(folds):
        test_set = fsdd.subset(np.array([s == f.speaker for s in fsdd.speakers]))
        negatives = heldout_negatives(test_set, cfg, fold, len(folds))
        if (len(test_set), len(negatives)) != (len(f.truth), len(f.negative_int8)):
            raise ValueError(f"fold {f.speaker}: the held-out material is not the one the "
                             "saved predictions were made on (other data or settings?)")
        for key, value in shifted_int8_probabilities(
                Path(out_dir) / "loso" / f"fold-{f.speaker}.tflite", test_set, negatives, cfg,
                fold, len(folds)).items():
            setattr(f, key, value)
    return report_folds(folds, cfg, Path(out_dir))
